"""The skeleton detector on synthetic signals with known truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.synth import MuscleSegment, Signal, TruthEvent, quantise, spec_for
from processing.detector import Detection, StreamingDetector
from processing.events import EventKind

# Detected and true intervals match when they overlap within this slack (envelope smoothing delays ends).
SLACK_S = 0.05


def _signal(
    sig: Signal, seconds: float, rate: float, seed: int
) -> tuple[np.ndarray, list[TruthEvent], float]:
    spec = spec_for(sig)
    seg = MuscleSegment("m", spec, 0, seconds, rate, seed)
    _, x = seg.next_chunk(seg.total)
    return quantise(x, spec) * spec.scale, seg.truth(), spec.sample_rate


def _run(sig: Signal, x: np.ndarray, fs: float, cuts: Sequence[int]) -> list[Detection]:
    det = StreamingDetector(sig, fs, x.shape[1])
    out: list[Detection] = []
    for a, b in zip([0, *cuts], [*cuts, x.shape[0]], strict=True):
        out += det.process(x[a:b])
    return sorted(out + det.finish(), key=lambda d: (d.start, d.lane))


def _score(dets: list[Detection], truth: list[TruthEvent], fs: float) -> tuple[int, int]:
    intervals = [(d.start / fs, d.end / fs) for d in dets]
    spans = [(t.start_ns / 1e9 - SLACK_S, t.end_ns / 1e9 + SLACK_S) for t in truth]
    hits = sum(any(a < hi and b > lo for a, b in intervals) for lo, hi in spans)
    false = sum(not any(a < hi and b > lo for lo, hi in spans) for a, b in intervals)
    return hits, false


@pytest.mark.parametrize("sig", ["emg", "acc"])
def test_finds_injected_twitches(sig: Signal) -> None:
    x, truth, fs = _signal(sig, 300, 20, seed=3)
    dets = _run(sig, x, fs, range(50, x.shape[0], 50))
    measurable = [t for t in truth if t.start_ns >= 1.1e9]  # the first second learns the noise floor
    hits, false = _score(dets, measurable, fs)
    assert len(measurable) > 80
    assert hits >= 0.97 * len(measurable)
    assert false <= 2
    assert all(d.kind is EventKind.FASCICULATION for d in dets)


def test_quiet_signal_gives_no_events() -> None:
    x, truth, fs = _signal("emg", 120, 0, seed=5)
    assert truth == []
    assert _run("emg", x, fs, range(100, x.shape[0], 100)) == []


def test_burst_and_contraction_are_classified_apart() -> None:
    fs = 1000.0
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3.0, (12000, 1))
    x[4000:4120, 0] += rng.normal(0, 60.0, 120)  # 120 ms burst: a myoclonic jerk
    x[7000:9000, 0] += rng.normal(0, 40.0, 2000)  # 2 s interference pattern: voluntary contraction
    kinds = [d.kind for d in _run("emg", x, fs, [])]
    assert kinds == [EventKind.MYOCLONIC_JERK, EventKind.SUSTAINED]
    assert not any(k.is_twitch for k in kinds[1:])


def test_huge_pop_is_an_artifact() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3.0, (5000, 1))
    x[3000:3010, 0] += 20000.0 * np.hanning(10)
    assert [d.kind for d in _run("emg", x, 1000.0, [])] == [EventKind.ARTIFACT]


def test_channels_are_independent_lanes() -> None:
    x1, t1, fs = _signal("emg", 60, 20, seed=7)
    x2, _, _ = _signal("emg", 60, 0, seed=8)
    dets = _run("emg", np.hstack([x1, x2]), fs, range(0, x1.shape[0], 100))
    assert {d.lane for d in dets} == {0}
    assert _score(dets, [t for t in t1 if t.start_ns >= 1.1e9], fs)[1] == 0


_FIXED = {sig: _signal(sig, 40, 30, seed=11) for sig in ("emg", "acc")}


@settings(max_examples=25, deadline=None)
@given(sig=st.sampled_from(["emg", "acc"]), sizes=st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_chunking_does_not_change_events(sig: Signal, sizes: list[int]) -> None:
    x, _, fs = _FIXED[sig]
    cuts = list(np.cumsum(sizes * (x.shape[0] // sum(sizes) + 1)))
    cuts = [int(c) for c in cuts if c < x.shape[0]]
    reference = _run(sig, x, fs, [])
    assert len(reference) > 10
    assert _run(sig, x, fs, cuts) == reference
