"""Mains interference on EMG (``processing.mains``, docs/detection.md "Mains interference"): found per lane,
followed and subtracted, so that the hum neither becomes the floor nor the background's tail; bursts of hum
are not twitches; and everything stays the same for any chunking and across a snapshot.

The signals are generated: a background without hum (``Physiology(hum=0)``), potentials at a known SNR over
it, then hum added as a wearable picks it up — a fundamental off its nominal frequency with odd harmonics.
"""

from __future__ import annotations

import dataclasses
import itertools
import pickle
from collections import Counter

import numpy as np
import pytest

from twitchwatch.collector.synth import Physiology, TruthEvent, generate
from twitchwatch.processing.detector import Detection, StreamingDetector, default_params
from twitchwatch.processing.events import EventKind

QUIET = Physiology(fasciculation=0, myoclonic_jerk=0, sustained=0, artifact=0, hum=0.0)
REST = Physiology(fasciculation=20, myoclonic_jerk=0, sustained=0, artifact=0, hum=0.0, snr_db=20.0)


def _hum(n: int, fs: float, f0: float, amp: float, start_s: float = 0.0) -> np.ndarray:
    """A mains pickup: the fundamental and its 3rd and 5th harmonics (below Nyquist), from ``start_s``."""
    t = np.arange(n) / fs
    h = amp * np.sin(2 * np.pi * f0 * t)
    for k, rel in ((3, 0.3), (5, 0.1)):
        if k * f0 < 0.45 * fs:
            h += amp * rel * np.sin(2 * np.pi * k * f0 * t + k)
    h[t < start_s] = 0.0
    return h


def _run(x: np.ndarray, fs: float, params: object = None, chunk: int = 100) -> list[Detection]:
    det = StreamingDetector("emg", fs, x.shape[1], params)  # type: ignore[arg-type]
    out: list[Detection] = []
    for i in range(0, x.shape[0], chunk):
        out += det.process(x[i : i + chunk])
    return out + det.finish()


def _found(
    dets: list[Detection], truth: list[TruthEvent], fs: float, after_s: float = 0.0
) -> tuple[int, int]:
    """Fasciculations found as twitches (overlapping within 50 ms), of those starting after ``after_s``."""
    tw = [d for d in dets if d.kind.is_twitch]
    want = [t for t in truth if t.kind == "fasciculation" and t.start_ns / 1e9 >= after_s]
    hits = sum(
        any(d.start / fs - 0.05 < t.end_ns / 1e9 and d.end / fs + 0.05 > t.start_ns / 1e9 for d in tw)
        for t in want
    )
    return hits, len(want)


def _no_mains(fs: float) -> object:
    return dataclasses.replace(default_params("emg", fs), mains_hz=(), mains_share=0.0)


@pytest.mark.parametrize(
    ("fs", "f0", "amp"),
    [(1000.0, 50.0, 30.0), (1000.0, 59.6, 100.0), (2000.0, 50.4, 30.0), (200.0, 60.3, 30.0)],
)
def test_hum_from_the_start_hides_no_potential(fs: float, f0: float, amp: float) -> None:
    """Hum 20–60 dB above the noise from the first sample, off its nominal frequency: the detector finds
    the 20-dB potentials as without hum; without the canceller it found hardly any."""
    x, truth = generate("emg", fs, 90, REST, seed=21)
    clean_hits, n = _found(_run(x, fs), truth, fs)
    x = x + _hum(x.shape[0], fs, f0, amp)[:, None]
    hits, _ = _found(_run(x, fs), truth, fs)
    plain, _ = _found(_run(x, fs, _no_mains(fs)), truth, fs)
    assert n > 20
    assert hits >= clean_hits - 1, (hits, clean_hits, n)
    assert plain <= 0.3 * n, (plain, n)


def test_the_hum_is_neither_floor_nor_tail_and_its_frequency_is_followed() -> None:
    fs = 1000.0
    x, _ = generate("emg", fs, 60, QUIET, 3)
    quiet = StreamingDetector("emg", fs, 1)
    quiet.process(x)
    x = x + _hum(x.shape[0], fs, 49.7, 30.0)[:, None]
    det = StreamingDetector("emg", fs, 1)
    det.process(x)
    floor, tail = det.noise_floor[0], det._engine.tail[0]
    assert floor < 1.2 * quiet.noise_floor[0], (floor, quiet.noise_floor[0])
    assert tail < 1.1
    (level,) = det.mains
    assert level is not None
    hz, rms = level
    assert abs(hz - 49.7) < 0.01
    assert rms == pytest.approx(30.0 * np.sqrt((1 + 0.09 + 0.01) / 2), rel=0.05)
    plain = StreamingDetector("emg", fs, 1, _no_mains(fs))  # type: ignore[arg-type]
    plain.process(x)
    assert plain.noise_floor[0] > 50 * quiet.noise_floor[0]
    assert plain.mains == [None]


def test_a_potential_keeps_its_shape_under_the_hum() -> None:
    """The same potentials with and without 100 µV of hum: the same peaks and times within the noise."""
    fs = 1000.0
    x, _ = generate("emg", fs, 60, REST, seed=8)
    a = [d for d in _run(x, fs) if d.kind.is_twitch]
    b = [d for d in _run(x + _hum(x.shape[0], fs, 50.2, 100.0)[:, None], fs) if d.kind.is_twitch]
    assert len(a) > 10
    pairs = [(d, e) for d in a for e in b if abs(d.start - e.start) <= 3]
    assert len(pairs) >= len(a) - 1
    for d, e in pairs:
        assert e.peak == pytest.approx(d.peak, rel=0.1)
        assert abs(e.end - d.end) <= 3


def test_no_line_is_found_in_noise_or_potentials() -> None:
    """Gaussian noise and potentials (no hum, no ECG) on 8 lanes for two minutes: no lane is taken on."""
    fs = 1000.0
    x = np.hstack([generate("emg", fs, 120, REST, seed=s)[0] for s in range(30, 38)])
    det = StreamingDetector("emg", fs, 8)
    for i in range(0, x.shape[0], 100):
        det.process(x[i : i + 100])
    assert det.mains == [None] * 8


def test_hum_that_starts_later_is_taken_out_within_seconds() -> None:
    """Hum switched on 60 s into a rest recording: found at the next look (every 2 s), and the potentials
    after it are found again; no minute-long noisy piece vetoes the rest."""
    fs = 1000.0
    x, truth = generate("emg", fs, 150, REST, seed=14)
    x = x + _hum(x.shape[0], fs, 60.2, 30.0, start_s=60.0)[:, None]
    dets = _run(x, fs)
    hits, n = _found(dets, truth, fs, after_s=66.0)
    assert hits >= n - 2, (hits, n)
    noisy = [d for d in dets if "noisy" in d.reason]
    assert not noisy
    vetoed = sum(d.end - d.start for d in dets if d.vetoes and d.start > 60 * fs) / fs
    assert vetoed < 6.0


def _bursts(
    n: int, fs: float, f0: float, amp: float, seed: int
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Bursts of hum of 0.1–0.4 s under a Hann envelope every 5 s (a hand moving near a mains lead)."""
    rng = np.random.default_rng(seed)
    env, spans = np.zeros(n), []
    for k in range(int(n / fs / 5)):
        i0, m = int((2.5 + 5 * k + rng.uniform(-1, 1)) * fs), int(rng.uniform(0.1, 0.4) * fs)
        env[i0 : i0 + m] = np.hanning(m)
        spans.append((i0 / fs, (i0 + m) / fs))
    return _hum(n, fs, f0, amp) * env, spans


@pytest.mark.parametrize(("fs", "f0"), [(1000.0, 50.0), (1000.0, 60.0), (200.0, 50.0)])
def test_bursts_of_hum_are_interference_not_twitches(fs: float, f0: float) -> None:
    x, _ = generate("emg", fs, 100, QUIET, 5)
    h, spans = _bursts(x.shape[0], fs, f0, 60.0, seed=2)
    dets = _run(x + h[:, None], fs)
    assert not [d for d in dets if d.kind.is_twitch]
    kinds = Counter(d.kind for d in dets)
    mains = [d for d in dets if d.reason.startswith("mains interference")]
    assert len(mains) >= 0.8 * len(spans), kinds
    for d in mains:
        assert d.kind is EventKind.ARTIFACT
        assert d.vetoes
        assert d.veto_span == (d.start, d.end)
    # Twitches amid the bursts, away from them, are still found.
    y, truth = generate("emg", fs, 100, REST, seed=5)
    got = _run(y + h[:, None], fs)
    away = [
        t
        for t in truth
        if t.kind == "fasciculation" and all(abs(t.start_ns / 1e9 - (a + b) / 2) > 0.7 for a, b in spans)
    ]
    tw = [d for d in got if d.kind.is_twitch]
    hits = sum(any(abs(d.start / fs - t.start_ns / 1e9) < 0.05 for d in tw) for t in away)
    assert hits >= len(away) - 1


def test_chunking_and_a_snapshot_change_nothing() -> None:
    """Hum on two of three lanes (one stepping up, one with bursts): any chunking, and a detector pickled
    and restored mid-stream, give the same events to the bit."""
    fs = 1000.0
    phys = Physiology(fasciculation=30, myoclonic_jerk=4, sustained=2, artifact=2, hum=0.0, snr_db=22.0)
    x = np.hstack([generate("emg", fs, 40, phys, seed=s)[0] for s in (44, 45, 46)])
    n = x.shape[0]
    x[:, 0] += _hum(n, fs, 50.3, 40.0) * np.where(np.arange(n) < 20 * fs, 1.0, 2.0)
    x[:, 1] += _bursts(n, fs, 50.3, 50.0, seed=4)[0] + _hum(n, fs, 50.3, 5.0)
    whole = _run(x, fs, chunk=n)
    assert any(d.reason.startswith("mains") for d in whole)
    rng = np.random.default_rng(9)
    for cuts in (
        list(range(20, n, 20)),
        list(range(137, n, 137)),
        np.cumsum(rng.integers(1, 700, n)).tolist(),
    ):
        det = StreamingDetector("emg", fs, 3)
        out: list[Detection] = []
        edges = [0, *[c for c in cuts if c < n], n]
        for k, (a, b) in enumerate(itertools.pairwise(edges)):
            out += det.process(x[a:b])
            if k == len(edges) // 2:
                det = pickle.loads(pickle.dumps(det))
        assert out + det.finish() == whole


def test_hum_that_swings_faster_than_it_is_followed_makes_the_time_noisy() -> None:
    """Hum whose amplitude swings ±60 % at 0.7 Hz (a limb swaying by a mains cable) is only partly taken
    out: what is left is as loud as the noise, so that time is not assessable (a noisy background that
    says why) rather than counted as rest with its twitches missed. Steady hum on the other lane is not."""
    fs = 1000.0
    x = np.hstack([generate("emg", fs, 60, REST, seed=s)[0] for s in (51, 52)])
    n = x.shape[0]
    sway = 1.0 + 0.6 * np.sin(2 * np.pi * 0.7 * np.arange(n) / fs)
    x[:, 0] += _hum(n, fs, 50.0, 20.0) * sway
    x[:, 1] += _hum(n, fs, 50.0, 20.0)
    dets = _run(x, fs)
    why = "noisy background: mains interference that cannot be taken out"
    hum = [d for d in dets if d.reason.startswith(why)]
    assert {d.lane for d in hum} == {0}
    assert sum(d.end - d.start for d in hum) > 0.8 * n
    for d in hum:
        assert d.vetoes
        assert d.veto_span == (d.start, d.end)
