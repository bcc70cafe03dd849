"""The detectors compared: twitchwatch's streaming detector and what a user would pick instead.

Every method takes a (samples × channels) array in physical units and its rate, plus the span of the
recording it may treat as a rest reference (the offline tools' rest-statistics arguments; twitchwatch learns
its floor from its own first second), and returns :class:`bench.scoring.Event` s in seconds.

NeuroKit2 and BioSPPy are offline burst-onset tools: they find activations, one channel at a time, and do
not classify them. **Mapping:** every activation (onset → offset) becomes one event of class ``twitch`` on
that channel, so it is scored against fasciculations and myoclonic jerks together, and during voluntary
activity each activation counts as a false twitch.

- ``neurokit2``: ``nk.emg_process(x, sampling_rate)`` with its defaults (BioSPPy-style 100-Hz high-pass,
  TKEO envelope, threshold 0.1 × SD of the envelope, activations ≥ 50 ms); events from ``EMG_Onsets`` /
  ``EMG_Offsets``.
- ``biosppy``: ``biosppy.signals.emg.emg(x, rate, show=False)`` (100-Hz high-pass, ``find_onsets`` with its
  default 50-ms window and threshold). Its ``onsets`` hold both threshold crossings of each burst, in order
  (up, down, up, down …), so consecutive pairs are the activations.
- ``solnik`` / ``bonato``: BioSPPy's ``solnik_onset_detector`` / ``bonato_onset_detector`` on ``emg()``'s
  filtered signal, with the rest reference. They have no default thresholds; the values here are fixed a
  priori (not tuned on the benchmark), set for brief events: Solnik threshold = mean + 15 SD of the rest
  period's Teager–Kaiser energy (passed as the ``rest`` dict: BioSPPy's own statistics for ``rest=[a, b]``
  would be of the raw signal, in different units from the TKEO it thresholds), 5 ms minimum state;
  Bonato threshold 10 (false-alarm probability ≈ 0.7 % per sample pair for Gaussian noise), 5-ms minimum
  state, up to 2 samples tolerated on the other side of the threshold. Their outputs are crossings too,
  paired the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.data import SignalKind
from bench.scoring import TWITCH, Event, Span
from twitchwatch.processing.detector import Detection, StreamingDetector
from twitchwatch.processing.gating import GatedRun, GateStream

FloatArray = npt.NDArray[np.float64]


class NotApplicable(Exception):
    """The method cannot run on this input (e.g. a fixed 100-Hz high-pass at a 200-Hz rate)."""


@dataclass(frozen=True)
class Emitted:
    """A detection and the sample index at which the detector handed it over (end of that chunk)."""

    event: Event
    emitted_at: int | None  # None: only released by finish() at the end of the stream
    peak: float
    confidence: float


def run_twitchwatch(x: FloatArray, rate: float, signal: SignalKind, chunk: int) -> list[Emitted]:
    """The streaming detector over ``x`` in chunks of ``chunk`` samples, as the worker feeds it."""
    det = StreamingDetector(signal, rate, x.shape[1])
    out: list[Emitted] = []
    for i in range(0, x.shape[0], chunk):
        end = min(i + chunk, x.shape[0])
        for d in det.process(x[i:end]):
            out.append(_emitted(d, rate, end))
    out.extend(_emitted(d, rate, None) for d in det.finish())
    return out


def _emitted(d: Detection, rate: float, at: int | None) -> Emitted:
    e = Event(d.lane, d.start / rate, d.end / rate, d.kind.value)
    return Emitted(e, at, d.peak, d.confidence)


def twitchwatch(
    x: FloatArray, rate: float, signal: SignalKind, rest: Span, chunk_s: float = 0.1
) -> list[Event]:
    return [e.event for e in run_twitchwatch(x, rate, signal, max(1, round(chunk_s * rate)))]


def twitchwatch_gated(
    x: FloatArray, rate: float, signal: SignalKind, rest: Span, chunk_s: float = 0.05
) -> list[Event]:
    """The full chain the worker runs: the detector, then the rest gate (``processing.gating``) with the
    recording as one device and each EMG channel its own muscle. A twitch the gate rejects comes back as
    ``during_movement``, which is neither a twitch nor a match: a gate that vetoes real rest lowers F1."""
    lanes = x.shape[1] if signal == "emg" else 1
    muscles = tuple(f"m{k}" for k in range(lanes))
    run = GatedRun([GateStream(signal, signal, rate, x.shape[1], "device", muscles)])
    step = max(1, round(chunk_s * rate))
    judged = []
    for i in range(0, x.shape[0], step):
        judged += run.feed(0, x[i : i + step])
    judged += run.finish()
    return [Event(j.detection.lane, j.start_s, j.end_s, j.kind.value) for j in judged]


def pair_crossings(crossings: npt.ArrayLike, n: int) -> list[tuple[int, int]]:
    """Threshold crossings (up, down, up, …) → (onset, offset) pairs; a last lone onset runs to ``n``."""
    c = np.unique(np.asarray(crossings, dtype=np.int64))
    pairs = [(int(a), int(b)) for a, b in zip(c[0::2], c[1::2], strict=False)]
    if c.size % 2:
        pairs.append((int(c[-1]), n))
    return pairs


def _events(pairs: Sequence[tuple[int, int]], lane: int, rate: float) -> list[Event]:
    return [Event(lane, a / rate, max(a, b) / rate, TWITCH) for a, b in pairs]


def _per_channel(
    fn: Callable[[FloatArray, float, tuple[int, int]], list[tuple[int, int]]],
) -> Callable[[FloatArray, float, SignalKind, Span], list[Event]]:
    def run(x: FloatArray, rate: float, signal: SignalKind, rest: Span) -> list[Event]:
        if signal != "emg":
            raise NotApplicable("EMG-only tool")
        r = (round(rest[0] * rate), round(rest[1] * rate))
        out: list[Event] = []
        for lane in range(x.shape[1]):
            with warnings.catch_warnings():
                # Library chatter (pandas/NumPy deprecations inside NeuroKit2/BioSPPy), not our business.
                warnings.simplefilter("ignore", category=FutureWarning)
                warnings.simplefilter("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", message="No events found")  # NeuroKit2, quiet channel
                try:
                    pairs = fn(np.ascontiguousarray(x[:, lane]), rate, r)
                except ValueError as exc:
                    if "critical frequencies" in str(exc) or "Wn" in str(exc):
                        raise NotApplicable(f"fixed 100-Hz high-pass at {rate:g} Hz: {exc}") from exc
                    if "threshold specified exceeds" in str(exc):
                        pairs = []  # NeuroKit2's way of saying: no activation
                    else:
                        raise
            out.extend(_events(pairs, lane, rate))
        return out

    return run


def _neurokit(x: FloatArray, rate: float, rest: tuple[int, int]) -> list[tuple[int, int]]:
    import neurokit2 as nk

    _, info = nk.emg_process(x, sampling_rate=rate)
    onsets = np.asarray(info["EMG_Onsets"], dtype=np.int64)
    offsets = np.asarray(info["EMG_Offsets"], dtype=np.int64)
    # NeuroKit2 drops an offset past the end of the signal: that activation runs to the end.
    ends = np.concatenate([offsets, np.full(max(0, onsets.size - offsets.size), x.size)])
    return [(int(a), int(b)) for a, b in zip(onsets, ends[: onsets.size], strict=True)]


def _biosppy_filtered(x: FloatArray, rate: float) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    from biosppy.signals import emg

    out = emg.emg(signal=x, sampling_rate=rate, show=False)
    return np.asarray(out["filtered"], dtype=float), np.asarray(out["onsets"], dtype=np.int64)


def _biosppy(x: FloatArray, rate: float, rest: tuple[int, int]) -> list[tuple[int, int]]:
    _, crossings = _biosppy_filtered(x, rate)
    return pair_crossings(crossings, x.size)


def tkeo(x: FloatArray) -> FloatArray:
    """|x[k]² − x[k−1]·x[k+1]|, the test function of BioSPPy's Solnik detector."""
    return np.abs(x[1:-1] ** 2 - x[2:] * x[:-2])


def _solnik(x: FloatArray, rate: float, rest: tuple[int, int]) -> list[tuple[int, int]]:
    from biosppy.signals import emg

    filtered, _ = _biosppy_filtered(x, rate)
    ref = filtered[rest[0] : rest[1]]
    energy = tkeo(ref - ref.mean())
    out = emg.solnik_onset_detector(
        signal=filtered,
        rest={"mean": float(energy.mean()), "std_dev": float(energy.std())},
        sampling_rate=rate,
        threshold=15,
        active_state_duration=max(1, round(0.005 * rate)),
    )
    return pair_crossings(out["onsets"], x.size)


def _bonato(x: FloatArray, rate: float, rest: tuple[int, int]) -> list[tuple[int, int]]:
    from biosppy.signals import emg

    filtered, _ = _biosppy_filtered(x, rate)
    out = emg.bonato_onset_detector(
        signal=filtered,
        rest=[rest[0], rest[1]],
        sampling_rate=rate,
        threshold=10,
        active_state_duration=max(1, round(0.005 * rate / 2)),  # it steps by sample pairs
        samples_above_fail=2,
        fail_size=2,
    )
    return pair_crossings(out["onsets"], x.size)


Method = Callable[[FloatArray, float, SignalKind, Span], list[Event]]

METHODS: dict[str, Method] = {
    "twitchwatch": twitchwatch,
    "neurokit2": _per_channel(_neurokit),
    "biosppy": _per_channel(_biosppy),
    "solnik": _per_channel(_solnik),
    "bonato": _per_channel(_bonato),
}
LABELS = {
    "twitchwatch": "twitchwatch",
    "neurokit2": "NeuroKit2",
    "biosppy": "BioSPPy emg",
    "solnik": "BioSPPy Solnik",
    "bonato": "BioSPPy Bonato",
}
