"""The shared real recordings (``../shared/data``), their rest/activity segmentation; synthetic signals.

Loaders return a :class:`Recording`: samples × channels in physical units (EMG µV, accelerometer g), the rate,
and the spans (seconds) where the muscle is at rest — events are injected there — and where it is voluntarily
active — detections there are false twitches. Time between the two (transitions, doubtful stretches) is used
for neither.

Conversions (each one stated, because the detector's artifact limits are in physical units):

- BioSPPy ``emg*.txt``: 12-bit ADC counts from a BITalino-type EMG sensor (BioSPPy comes from the group that
  makes BITalino). We assume its published transfer function, EMG = (ADC/2¹² − ½)·VCC/G with VCC = 3.3 V and
  G = 1009, i.e. ``(ADC − 2048) × 0.7985 µV``. Scoring is relative to each recording's own background (the
  injected events' SNR is measured on it), so a wrong scale would move only the absolute amplitude limits.
- BioSPPy ``acc.txt``: the header says m/s², but its vector magnitude at rest is ≈ 1.03 and it swings about 1,
  so the values are in g. The loader checks the magnitude against gravity and converts m/s² (÷ 9.80665) only
  where the numbers are m/s²; it records which it did in ``note``.
- PhysioNet emgdb: WFDB format 16, parsed from the ``.hea`` here (gain, baseline, checksum, initial value).
- openhdemg ``otb_testfile.mat``: ``Data`` columns 0–63 µV at 2048 Hz, column 74 force in %MVC.
- UCI Myo: rows about 1 ms apart whose values change about 100 times a second; resampled to 200 Hz by holding
  the latest row at each 5-ms tick (the stream is itself sample-and-hold, so nothing is invented), V → µV.

Segmentation (see :func:`envelope_segments` for the envelope rule):

- BioSPPy EMG: the envelope rule. Myo: the envelope rule checked against the labels — activity spans must
  overlap a gesture label (2–7) and rest spans must not contain one (the labels mark only ~2-s steady states;
  activity starts about a second before them, so they are not used as boundaries).
- openhdemg: the force channel — active where force ≥ 5 %MVC, rest where < 2 %MVC and clear of activity as
  below (0.3 s before it, ``AFTER_ACTIVITY_S`` after it).
- PhysioNet emgdb: all activity. Needle EMG of a gently contracting muscle: motor-unit potentials fire at
  17–30 a second in every second of all three records; no stretch is rest. Needle EMG at 4 kHz is outside
  the detector's design (surface EMG, 200 Hz–2 kHz), so it is reported apart.
- BioSPPy ``acc.txt``: all activity (2-Hz body movement, magnitude swinging ±0.3 g, throughout its 20 s).

Everyday recordings (``realworld/``, :func:`realworld`): every file a format of ``bench.formats`` claims,
wherever it lies under the folder — so recordings of the same kinds added later are scored too — as a
:class:`Capture` of :class:`~bench.formats.Stream` s (a device's EMG, accelerometer and gyroscope). Their
segmentation is independent of the detectors: EMG by the envelope rule, accelerometers by the movement-band
rule (:func:`movement_segments`). :func:`captures` adds the older recordings as one-stream captures that keep
their own segmentation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.io
from scipy import signal as sps

from bench.formats import Stream, read_any
from bench.scoring import Event, Span
from twitchwatch.collector import synth
from twitchwatch.processing.rest import GateParams

SignalKind = Literal["emg", "acc"]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

BITALINO_UV_PER_COUNT = 3.3 / (4096 * 1009) * 1e6  # ≈ 0.7985 µV
# Rest begins where the rest gate lets a muscle be assessed again: behind its own activity and behind
# movement (processing.rest.GateParams), so that no event is injected or counted where the gate vetoes.
AFTER_ACTIVITY_S = GateParams().after_activity_ns / 1e9
AFTER_MOVEMENT_S = GateParams().after_ns / 1e9
G = 9.80665
MYO_RATE = 200.0
OTB_CHANNELS = (0, 21, 42, 63)  # spread over the 64-electrode grid
OTB_FORCE = 74
GESTURES = frozenset(range(2, 8))


@dataclass(frozen=True)
class Recording:
    name: str
    signal: SignalKind
    rate: float
    x: FloatArray  # (samples, channels), µV or g
    unit: str
    rest: tuple[Span, ...] = ()
    active: tuple[Span, ...] = ()
    surface: bool = True  # False for needle EMG (outside the detector's design)
    note: str = ""
    labels: npt.NDArray[np.int64] | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        return float(self.x.shape[0] / self.rate)

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    def rest_mask(self) -> BoolArray:
        return spans_to_mask(self.rest, self.x.shape[0], self.rate)


# --- spans -----------------------------------------------------------------------------------------------


def mask_to_spans(mask: npt.ArrayLike, rate: float) -> tuple[Span, ...]:
    """Runs of True as half-open (start, end) spans in seconds."""
    m = np.asarray(mask, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], m, [False]]).astype(np.int8)))
    return tuple((float(a) / rate, float(b) / rate) for a, b in zip(edges[::2], edges[1::2], strict=True))


def spans_to_mask(spans: Sequence[Span], n: int, rate: float) -> BoolArray:
    mask = np.zeros(n, dtype=bool)
    for a, b in spans:
        mask[max(0, round(a * rate)) : min(n, round(b * rate))] = True
    return mask


def _dilate(mask: BoolArray, k: int) -> BoolArray:
    if k <= 0:
        return mask
    return np.convolve(mask.astype(float), np.ones(2 * k + 1), mode="same") > 0.5


def _close_gaps(mask: BoolArray, k: int) -> BoolArray:
    """Fill False runs shorter than ``k`` samples that lie between True runs."""
    out = mask.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[True], mask, [True]]).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if a > 0 and b < mask.size and b - a < k:
            out[a:b] = True
    return out


def _clear_of(active: BoolArray, before: int, after: int) -> BoolArray:
    """True where no activity is within ``before`` samples ahead or ``after`` samples behind."""
    near = active.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[False], active, [False]]).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        near[max(0, a - before) : min(active.size, b + after)] = True
    return ~near


def _min_length(mask: BoolArray, k: int) -> BoolArray:
    out = np.zeros_like(mask)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= k:
            out[a:b] = True
    return out


# --- the envelope rule -----------------------------------------------------------------------------------


def band(x: FloatArray, rate: float) -> FloatArray:
    """Zero-phase 20–450 Hz band-pass (upper edge ≤ 0.45 × rate), for segmentation and noise estimates."""
    sos = sps.butter(4, (20.0, min(450.0, 0.45 * rate)), btype="bandpass", fs=rate, output="sos")
    return np.asarray(sps.sosfiltfilt(sos, x, axis=0))


def moving_rms(x: FloatArray, n: int) -> FloatArray:
    """Centred moving RMS over ``n`` samples, per column."""
    k = np.ones(n) / n
    p = np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, x * x)
    return np.asarray(np.sqrt(np.maximum(p, 0.0)), dtype=float)


def envelope_segments(
    x: FloatArray,
    rate: float,
    window_s: float = 0.25,
    active_factor: float = 3.0,
    rest_factor: float = 2.0,
    min_rest_s: float = 1.0,
) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    """Rest and active spans of an EMG recording from its own envelope (offline, zero-phase).

    1. band-pass 20–450 Hz; moving RMS over ``window_s`` per channel;
    2. each channel's quiet level q is the 10th percentile of its RMS (the recording must rest ≥ 10 % of the
       time);
    3. active where any channel's RMS exceeds ``active_factor`` × q; gaps under 0.5 s closed; padded 0.3 s
       each side (so onsets and offsets of a contraction count as activity);
    4. rest where the channels' mean of RMS/q stays under ``rest_factor``, at least 0.3 s before activity
       and ``AFTER_ACTIVITY_S`` after it (the rest gate's guard behind a muscle's own activity: residual
       motor-unit firing outlasts a contraction; docs/detection.md), in runs of at least ``min_rest_s``.
    """
    rms = moving_rms(band(x, rate), max(1, round(window_s * rate)))
    q = np.percentile(rms, 10, axis=0)
    q = np.where(q > 0, q, np.finfo(float).tiny)
    rel = rms / q
    active = _dilate(_close_gaps(rel.max(axis=1) > active_factor, round(0.5 * rate)), round(0.3 * rate))
    rest = (rel.mean(axis=1) < rest_factor) & _clear_of(
        active, round(0.3 * rate), round(AFTER_ACTIVITY_S * rate)
    )
    rest = _min_length(rest, round(min_rest_s * rate))
    return mask_to_spans(rest, rate), mask_to_spans(active, rate)


# --- loaders ---------------------------------------------------------------------------------------------


def read_biosppy_text(path: Path) -> tuple[dict[str, str], FloatArray]:
    """BioSPPy/OpenSignals "Simple Text Format": ``# key:= value`` header lines, then one sample a row."""
    header: dict[str, str] = {}
    rows: list[list[float]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("#"):
                key, sep, value = line[1:].partition(":=")
                if sep:
                    header[key.strip()] = value.strip()
            elif line:
                rows.append([float(v) for v in line.split()])
    if not rows:
        raise ValueError(f"{path}: no samples")
    return header, np.asarray(rows, dtype=float)


def _rate(header: dict[str, str], path: Path) -> float:
    try:
        return float(header["Sampling Rate (Hz)"])
    except (KeyError, ValueError):
        raise ValueError(f"{path}: no 'Sampling Rate (Hz)' header line") from None


def load_biosppy_emg(path: Path) -> Recording:
    header, counts = read_biosppy_text(path)
    bits = int(float(header.get("Resolution", "12")))
    rate = _rate(header, path)
    x = (counts[:, :1] - 2 ** (bits - 1)) * BITALINO_UV_PER_COUNT
    rest, active = envelope_segments(x, rate)
    return Recording(
        f"biosppy/{path.stem}",
        "emg",
        rate,
        x,
        "µV",
        rest,
        active,
        note=f"{bits}-bit counts × {BITALINO_UV_PER_COUNT:.4f} µV (BITalino EMG transfer function, assumed)",
    )


def acc_to_g(a: FloatArray, unit: str) -> tuple[FloatArray, str]:
    """Convert to g, trusting the numbers over the header: gravity is ≈ 1 in g and ≈ 9.8 in m/s²."""
    magnitude = float(np.median(np.linalg.norm(a, axis=1)))
    if 0.5 < magnitude < 2.0:
        return a, f"values already in g (median |a| = {magnitude:.2f}; header unit {unit!r} ignored)"
    if 5.0 < magnitude < 20.0:
        return a / G, f"m/s² → g (median |a| = {magnitude:.2f} m/s²)"
    raise ValueError(f"median |a| = {magnitude:.3g} {unit} is neither about 1 g nor about 9.8 m/s²")


def load_biosppy_acc(path: Path) -> Recording:
    header, a = read_biosppy_text(path)
    rate = _rate(header, path)
    x, note = acc_to_g(a, header.get("Units", "?"))
    whole: tuple[Span, ...] = ((0.0, x.shape[0] / rate),)
    return Recording(f"biosppy/{path.stem}", "acc", rate, x, "g", (), whole, note=note)


@dataclass(frozen=True)
class WfdbSignal:
    file: str
    fmt: int
    gain: float  # ADC units per physical unit
    baseline: int
    unit: str
    adc_zero: int
    initial: int
    checksum: int
    description: str


_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+]?\d+)\))?(?:/(\S+))?$")


def read_wfdb_header(path: Path) -> tuple[str, float, int, list[WfdbSignal]]:
    """(record, rate, samples per signal, signals) from a WFDB ``.hea`` file (single-segment records)."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    rec = lines[0].split()
    name, nsig = rec[0], int(rec[1])
    rate = float(rec[2].split("/")[0].split("(")[0]) if len(rec) > 2 else 250.0
    n = int(rec[3]) if len(rec) > 3 else -1
    signals = []
    for line in lines[1 : 1 + nsig]:
        f = line.split(maxsplit=8)
        m = _GAIN.match(f[2]) if len(f) > 2 else None
        if m is None:
            raise ValueError(f"{path}: cannot read the gain field of {line!r}")
        gain = float(m.group(1)) or 200.0  # WFDB: a gain of 0 means 200
        adc_zero = int(f[4]) if len(f) > 4 else 0
        baseline = int(m.group(2)) if m.group(2) is not None else adc_zero
        signals.append(
            WfdbSignal(
                file=f[0],
                fmt=int(f[1].split("x")[0].split(":")[0]),
                gain=gain,
                baseline=baseline,
                unit=m.group(3) or "mV",
                adc_zero=adc_zero,
                initial=int(f[5]) if len(f) > 5 else 0,
                checksum=int(f[6]) if len(f) > 6 else 0,
                description=f[8] if len(f) > 8 else "",
            )
        )
    return name, rate, n, signals


_TO_UV = {"mv": 1e3, "uv": 1.0, "µv": 1.0, "v": 1e6}


def read_wfdb(hea: Path) -> tuple[float, FloatArray, list[WfdbSignal]]:
    """Format-16 WFDB record → (rate, samples × signals in µV, signals); checks checksum and first value."""
    _, rate, n, signals = read_wfdb_header(hea)
    cols = []
    for s in signals:
        if s.fmt != 16:
            raise ValueError(f"{hea}: format {s.fmt} is not supported (only 16)")
        scale = _TO_UV.get(s.unit.lower())
        if scale is None:
            raise ValueError(f"{hea}: unit {s.unit!r} is not a voltage")
        raw = np.fromfile(hea.parent / s.file, dtype="<i2")  # one signal a file here
        if len(signals) > 1 and signals[0].file == s.file:
            raise ValueError(f"{hea}: interleaved signals are not supported")
        if n >= 0 and raw.size != n:
            raise ValueError(f"{hea}: {raw.size} samples in {s.file}, header says {n}")
        checksum = int(raw.astype(np.int64).sum()) & 0xFFFF
        if checksum != s.checksum & 0xFFFF:
            raise ValueError(f"{hea}: checksum of {s.file} is {checksum}, header says {s.checksum & 0xFFFF}")
        if raw.size and int(raw[0]) != s.initial:
            raise ValueError(f"{hea}: first sample {raw[0]}, header says {s.initial}")
        cols.append((raw.astype(float) - s.baseline) / s.gain * scale)
    return rate, np.stack(cols, axis=1), signals


def load_emgdb(hea: Path) -> Recording:
    rate, x, signals = read_wfdb(hea)
    whole: tuple[Span, ...] = ((0.0, x.shape[0] / rate),)
    return Recording(
        f"emgdb/{hea.stem.removeprefix('emg_')}",
        "emg",
        rate,
        x,
        "µV",
        (),
        whole,
        surface=False,
        note=f"needle EMG, {signals[0].gain:g}/{signals[0].unit}; all activity (motor units fire throughout)",
    )


def load_otb(path: Path, channels: Sequence[int] = OTB_CHANNELS) -> Recording:
    mat = scipy.io.loadmat(path)
    data = np.asarray(mat["Data"][0, 0] if mat["Data"].dtype == object else mat["Data"], dtype=float)
    rate = float(np.asarray(mat["SamplingFrequency"]).ravel()[0]) if "SamplingFrequency" in mat else 2048.0
    force = data[:, OTB_FORCE]
    half_s = round(0.5 * rate)  # the force trace is noisy: no flicker of spans shorter than 0.5 s
    active = mask_to_spans(_min_length(_close_gaps(force >= 5.0, half_s), half_s), rate)
    active_mask = spans_to_mask(active, force.size, rate)
    clear = _clear_of(active_mask, round(0.3 * rate), round(AFTER_ACTIVITY_S * rate))
    rest = mask_to_spans(_min_length((force < 2.0) & clear, half_s), rate)
    return Recording(
        "openhdemg/ramp",
        "emg",
        rate,
        data[:, list(channels)],
        "µV",
        rest,
        active,
        note=f"channels {', '.join(map(str, channels))} of 64; active: force ≥ 5 %MVC, rest: < 2 %MVC",
    )


def resample_hold(t_ms: FloatArray, values: npt.NDArray[Any], rate: float) -> npt.NDArray[Any]:
    """The latest row at or before each tick of a ``rate`` grid starting at the first row's time."""
    ticks = t_ms[0] + np.arange(int((t_ms[-1] - t_ms[0]) * rate / 1e3) + 1) * (1e3 / rate)
    idx = np.searchsorted(t_ms, ticks, side="right") - 1
    out: npt.NDArray[Any] = values[idx]
    return out


def load_myo(path: Path, rate: float = MYO_RATE) -> Recording:
    table = np.loadtxt(path, skiprows=1, delimiter="\t")
    if table.ndim != 2 or table.shape[1] != 10:
        raise ValueError(f"{path}: expected 10 tab-separated columns, got shape {table.shape}")
    held = resample_hold(table[:, 0], table[:, 1:], rate)
    x, labels = held[:, :8] * 1e6, held[:, 8].astype(np.int64)
    rest, active = envelope_segments(x, rate)
    gesture = np.isin(labels, list(GESTURES))
    active = tuple(s for s in active if gesture[spans_to_mask([s], len(labels), rate)].any())
    rest = tuple(s for s in rest if not gesture[spans_to_mask([s], len(labels), rate)].any())
    series = path.name.split("_")[0]
    return Recording(
        f"myo/{path.parent.name}-{series}",
        "emg",
        rate,
        x,
        "µV",
        rest,
        active,
        note="resampled to 200 Hz (sample-and-hold); envelope rule checked against gesture labels",
        labels=labels,
    )


def recordings(root: Path = DATA_DIR) -> list[Recording]:
    """Every shared recording, in a fixed order."""
    bio = root / "biosppy_examples"
    out = [load_biosppy_emg(bio / "emg.txt"), load_biosppy_emg(bio / "emg_1.txt")]
    out += [load_myo(p) for p in sorted((root / "uci_myo_gestures").glob("*/*.txt"))]
    out.append(load_otb(root / "openhdemg_otb" / "otb_testfile.mat"))
    out += [load_emgdb(p) for p in sorted((root / "physionet_emgdb").glob("*.hea"))]
    out.append(load_biosppy_acc(bio / "acc.txt"))
    return out


# --- everyday recordings: several streams of one or more devices, found by format ----------------------

REALWORLD = "realworld"
# Movement-band rule for accelerometers (``movement_segments``); docs/benchmarks.md gives the reasons.
ACC_BAND_HZ = (0.25, 20.0)
ACC_ACTIVE_G = 0.02
ACC_REST_G = 0.01


@dataclass(frozen=True)
class Capture:
    """A recording of everyday life: the streams of one or more wearables, no labelled twitches. Every
    twitch-class event in it is a candidate false alarm (healthy people twitch rarely)."""

    name: str
    format: str
    streams: tuple[Stream, ...]
    notes: tuple[str, ...] = ()
    surface: bool = True  # False for needle EMG (outside the detector's design)

    @property
    def duration_s(self) -> float:
        return max(s.duration_s for s in self.streams)

    @property
    def signal(self) -> str:
        """What the recording holds: "EMG", "acc", "acc+gyro", … (its stream kinds in order)."""
        kinds = dict.fromkeys(s.kind for s in self.streams)
        return "+".join("EMG" if k == "emg" else k for k in kinds)


def movement_segments(
    x: FloatArray, rate: float, window_s: float = 1.0
) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    """Rest and active spans of an accelerometer (g) from its movement band (offline, zero-phase).

    1. band-pass each axis 0.25–20 Hz (upper edge ≤ 0.45 × rate; zero-phase, 2nd order): posture and
       gravity below, the twitch band's upper part above; the vector of the three;
    2. its moving RMS over ``window_s``;
    3. active where it reaches ``ACC_ACTIVE_G`` (0.02 g), gaps under 0.5 s closed, padded 0.3 s each side;
       rest where it stays under ``ACC_REST_G`` (0.01 g), at least 0.3 s before activity and
       ``AFTER_MOVEMENT_S`` after it (the rest gate's guard behind movement), in runs ≥ 1 s.

    Absolute, not relative to the recording's quiet level (as the EMG envelope rule is): acceleration has a
    physical scale, and several recordings here move throughout."""
    hi = min(ACC_BAND_HZ[1], 0.45 * rate)
    sos = sps.butter(2, (ACC_BAND_HZ[0], hi), btype="bandpass", fs=rate, output="sos")
    y = np.asarray(sps.sosfiltfilt(sos, x, axis=0))
    rms = moving_rms(np.linalg.norm(y, axis=1)[:, None], max(1, round(window_s * rate)))[:, 0]
    active = _dilate(_close_gaps(rms >= ACC_ACTIVE_G, round(0.5 * rate)), round(0.3 * rate))
    clear = _clear_of(active, round(0.3 * rate), round(AFTER_MOVEMENT_S * rate))
    rest = _min_length((rms < ACC_REST_G) & clear, round(1.0 * rate))
    return mask_to_spans(rest, rate), mask_to_spans(active, rate)


def segment(stream: Stream) -> Stream:
    """The stream with its detector-independent rest and activity spans: EMG by the envelope rule,
    accelerometers by the movement-band rule; gyroscopes carry no twitch lane and are not segmented."""
    if stream.kind == "emg":
        rest, active = envelope_segments(stream.x, stream.rate)
    elif stream.kind == "acc":
        rest, active = movement_segments(stream.x, stream.rate)
    else:
        return stream
    return replace(stream, rest=rest, active=active)


def realworld(root: Path = DATA_DIR / REALWORLD) -> list[Capture]:
    """Every recording under ``root`` that a format of ``bench.formats`` claims, sorted by path. Other
    recordings of the same kinds dropped into these folders are found and scored too."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        loaded = read_any(path)
        if loaded is None:
            continue
        name = path.relative_to(root).with_suffix("").as_posix()
        out.append(Capture(name, loaded.format, tuple(segment(s) for s in loaded.streams), loaded.notes))
    return out


def as_capture(rec: Recording) -> Capture:
    """An older shared recording as one device with one stream, keeping its own segmentation."""
    stream = Stream(rec.name, rec.signal, rec.rate, rec.x, rec.name, rec.active, rec.rest)
    return Capture(rec.name, "shared", (stream,), (rec.note,) if rec.note else (), rec.surface)


def captures(root: Path = DATA_DIR) -> list[Capture]:
    """The older shared recordings, then every everyday recording under ``root/realworld``."""
    return [as_capture(r) for r in recordings(root)] + realworld(root / REALWORLD)


# --- synthetic signals: collector.synth's generator ------------------------------------------------------


def physiology(snr_db: float, **rates: float) -> synth.Physiology:
    """A ``collector.synth.Physiology`` with ``snr_db`` and per-minute rates by class name."""
    return synth.Physiology(snr_db=snr_db, **rates)


def truth_events(truth: Sequence[synth.TruthEvent], lane: int = 0) -> list[Event]:
    """TruthEvents (ns from sample 0) → scoring events on ``lane``."""
    return [Event(lane, t.start_ns / 1e9, t.end_ns / 1e9, str(t.kind)) for t in truth]


def generate(
    signal: SignalKind, rate: float, duration_s: float, phys: synth.Physiology, seed: int, muscle: str = "m"
) -> tuple[FloatArray, list[synth.TruthEvent]]:
    x, truth = synth.generate(signal, rate, duration_s, phys, seed, muscle=muscle)
    return np.asarray(x, dtype=float), list(truth)


def inject(
    background: FloatArray,
    signal: SignalKind,
    rate: float,
    phys: synth.Physiology,
    seed: int,
    muscle: str = "m",
    rest_mask: BoolArray | None = None,
) -> tuple[FloatArray, list[synth.TruthEvent]]:
    x, truth = synth.inject(background, signal, rate, phys, seed, muscle=muscle, rest_mask=rest_mask)
    return np.asarray(x, dtype=float), list(truth)
