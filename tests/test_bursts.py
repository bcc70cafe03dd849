"""Rhythmic or dense bursting at rest is activity, not fasciculation (``processing.bursts``).

A parkinsonian rest tremor fires bursts of a few motor-unit potentials (40–80 ms) at 4–6 Hz; a hand that
types fires a burst per keystroke, several a second, irregularly. Each burst alone passes the per-event
rules (it is another size than the one before, or the lane has seen few of its size), and the rules that
do turn bursts down never vetoed: 106 counted "twitches" in 5 minutes of intermittent tremor, all the time
"assessable". Fasciculations fire irregularly and rarely more than once a second: at 60 a minute nothing
here may change. Signals are generated (seeded): noise, potentials, bursts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import pytest

from twitchwatch.processing.detector import Detection, StreamingDetector, default_params
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.gating import GatedRun, GateStream, Judged

FS = 1000.0
NOISE_UV = 3.0


def _potential(x: np.ndarray, centre: int, peak: float, width_ms: float, phases: int) -> None:
    """A bi- (1st Gaussian derivative) or triphasic (2nd) potential, ``width_ms`` wide (± 3 s.d.)."""
    s = width_ms / 6.0 * FS / 1000.0
    t = np.arange(-round(4 * s), round(4 * s) + 1) / s
    w = -t * np.exp(-0.5 * t * t) if phases == 2 else (1 - t * t) * np.exp(-0.5 * t * t)
    lo = centre - t.size // 2
    if lo >= 0 and lo + t.size <= x.shape[0]:
        x[lo : lo + t.size] += w / np.max(np.abs(w)) * peak


def _burst(x: np.ndarray, at_s: float, rng: np.random.Generator, peak: tuple[float, float]) -> None:
    """A burst of 3–7 motor-unit potentials within 40–80 ms, each of its own size and shape."""
    length = rng.uniform(0.04, 0.08)
    for dt in np.sort(rng.uniform(0.0, length, int(rng.integers(3, 8)))):
        size = rng.uniform(*peak) * rng.choice([-1.0, 1.0])
        _potential(x, round((at_s + dt) * FS), size, rng.uniform(5, 12), int(rng.choice([2, 3])))


def tremor(
    x: np.ndarray,
    rng: np.random.Generator,
    span_s: tuple[float, float],
    hz: float,
    peak: tuple[float, float] = (20.0, 60.0),
) -> list[float]:
    """Rest-tremor bursts at ``hz`` (period ± 8 %) over ``span_s``; their onsets."""
    t, out = span_s[0], []
    while t < span_s[1]:
        _burst(x, t, rng, peak)
        out.append(t)
        t += (1.0 + rng.normal(0.0, 0.08)) / hz
    return out


def typing(x: np.ndarray, rng: np.random.Generator, span_s: tuple[float, float]) -> list[float]:
    """A burst per keystroke (sizes 30–150 µV): words of 3–8 keys 0.12–0.25 s apart, 0.3–0.6 s between
    words — about 4 a second, with no steady period."""
    t, out = span_s[0], []
    while t < span_s[1]:
        for _ in range(int(rng.integers(3, 9))):
            _burst(x, t, rng, (30.0, 150.0))
            out.append(t)
            t += rng.uniform(0.12, 0.25)
        t += rng.uniform(0.3, 0.6)
    return out


def fasciculations(x: np.ndarray, rng: np.random.Generator, times: Sequence[float]) -> None:
    for t in times:
        size = rng.uniform(30.0, 60.0) * rng.choice([-1.0, 1.0])
        _potential(x, round(t * FS), size, rng.uniform(5, 15), int(rng.choice([2, 3])))


def poisson(rng: np.random.Generator, per_min: float, span_s: tuple[float, float]) -> list[float]:
    t = span_s[0]
    out: list[float] = []
    while True:
        t += rng.exponential(60.0 / per_min)
        if t >= span_s[1]:
            return out
        out.append(t)


def _gated(x: np.ndarray, bursts: bool = True, frame: int = 50) -> tuple[list[Judged], float]:
    """Detector + rest gate over one EMG lane, fed in ``frame``-sample frames: (judged, assessable s)."""
    params = default_params("emg", FS)
    if not bursts:
        params = dataclasses.replace(params, burst_window_s=0.0)
    run = GatedRun(
        [GateStream("emg", "emg", FS, 1, "dev", ("forearm",))],
        detectors=[StreamingDetector("emg", FS, 1, params)],
    )
    out: list[Judged] = []
    for a in range(0, x.shape[0], frame):
        out += run.feed(0, x[a : a + frame])
    out += run.finish()
    return out, run.assessable_s(0, 0)


def _counted_in(judged: Sequence[Judged], span: tuple[float, float]) -> list[Judged]:
    return [j for j in judged if j.kind.is_twitch and span[0] - 0.1 <= j.start_s <= span[1] + 0.1]


def _found(judged: Sequence[Judged], times: Sequence[float]) -> int:
    return sum(any(j.kind.is_twitch and abs(j.start_s - t) < 0.05 for j in judged) for t in times)


def test_a_rest_tremor_is_activity_and_its_time_is_not_assessed() -> None:
    """Twitches at rest before and after an 8-s parkinsonian tremor (5 Hz) count; the tremor's bursts do
    not — not even its first ones, reported as twitches before the rhythm was seen and taken back — and
    its time is not assessable. Without the rule its bursts counted."""
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, NOISE_UV, (round(40 * FS), 1))
    rest = [3.0, 5.5, 8.0, 27.0, 31.0, 35.5]
    fasciculations(x[:, 0], rng, rest)
    episode = (12.0, 20.0)
    onsets = tremor(x[:, 0], rng, episode, 5.0)
    judged, assessable = _gated(x)
    assert _counted_in(judged, episode) == []
    assert _found(judged, rest) == len(rest)
    assert sum(j.kind.is_twitch for j in judged) == len(rest)
    # The tremor's time is vetoed: what is left is the warm-up-free rest around it.
    assert assessable <= 40.0 - 1.0 - (episode[1] - episode[0]) + 0.5
    assert assessable >= 40.0 - 1.0 - (episode[1] - episode[0]) - 1.5
    said = {j.detection.reason for j in judged if j.detection.kind is EventKind.SUSTAINED}
    rates = [float(m[1]) for r in said if (m := re.match(r"rhythmic bursting at ([\d.]+) Hz", r))]
    assert rates, said
    assert all(4.4 <= f <= 5.6 for f in rates), said  # 5 Hz ± its jitter
    assert all(r.endswith(" s") for r in said if "bursting" in r)  # "… for 4.2 s"
    # The first bursts, written as twitches before the rhythm showed, are judged during_movement.
    first = [j for j in judged if j.kind is EventKind.DURING_MOVEMENT and j.start_s < onsets[6]]
    assert first
    before, _ = _gated(x, bursts=False)
    assert len(_counted_in(before, episode)) >= 3  # what the audit found: bursts counted


def test_dense_irregular_bursting_is_activity() -> None:
    """Typing: a burst per keystroke, about 4 a second, with no steady period — dense, not rhythmic. Over
    five hands at work, what counted without the rule mostly does not; a bout of a dozen keystrokes (3 s)
    that a contraction cuts short is too brief to tell from a burst of twitches (one of the five)."""
    episode = (8.0, 20.0)
    rest = [3.0, 5.0, 25.0, 28.0]
    with_rule = without = 0
    said: list[str] = []
    for seed in range(12, 17):
        rng = np.random.default_rng(seed)
        x = rng.normal(0.0, NOISE_UV, (round(30 * FS), 1))
        typing(x[:, 0], rng, episode)
        fasciculations(x[:, 0], rng, rest)
        judged, assessable = _gated(x)
        with_rule += len(_counted_in(judged, episode))
        assert _found(judged, rest) == len(rest)
        assert assessable <= 30.0 - 1.0 - 0.5 * (episode[1] - episode[0])
        said += [j.detection.reason for j in judged]
        without += len(_counted_in(_gated(x, bursts=False)[0], episode))
    assert without >= 50
    assert with_rule <= 0.2 * without
    assert any(re.match(r"bursting [\d.]+ a second \(tremor or voluntary activity\) for", r) for r in said)


@pytest.mark.parametrize(("per_min", "seed"), [(30.0, 1), (60.0, 2), (60.0, 3)])
def test_irregular_fasciculations_at_high_rates_are_not_bursting(per_min: float, seed: int) -> None:
    """Fasciculations fire irregularly (a Poisson process), at up to about one a second in ALS: at 60 a
    minute for 5 minutes nothing is taken for bursting — the same twitches count as without the rule, and
    the same time is assessable."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, NOISE_UV, (round(300 * FS), 1))
    times = poisson(rng, per_min, (1.5, 299.0))
    fasciculations(x[:, 0], rng, times)
    judged, assessable = _gated(x, frame=1000)
    assert not [j for j in judged if "bursting" in j.detection.reason]
    without, assessable_without = _gated(x, bursts=False, frame=1000)
    # (judged later with the rule — the gate waits its reach back — so in another order)
    assert sorted((j.start_s, j.kind) for j in judged) == sorted((j.start_s, j.kind) for j in without)
    assert assessable == assessable_without
    assert _found(judged, times) >= 0.8 * len(times)


def _mixed() -> np.ndarray:
    rng = np.random.default_rng(13)
    x = rng.normal(0.0, NOISE_UV, (round(40 * FS), 1))
    fasciculations(x[:, 0], rng, [3.0, 26.0, 38.0])
    tremor(x[:, 0], rng, (5.0, 12.0), 4.5)
    typing(x[:, 0], rng, (15.0, 23.0))
    tremor(x[:, 0], rng, (29.0, 33.0), 7.0, (15.0, 40.0))
    return x


def _detections(x: np.ndarray, cuts: Sequence[int]) -> tuple[list[Detection], list[tuple[int, int]]]:
    """Every detection in emitted order, and per ``process`` call (settled before it, reach back)."""
    det = StreamingDetector("emg", FS, 1)
    out: list[Detection] = []
    limits: list[tuple[int, int]] = []
    for a, b in zip([0, *cuts], [*cuts, x.shape[0]], strict=True):
        before = det.settled
        got = det.process(x[a:b])
        limits += [(before, det.reach_back_samples)] * len(got)
        out += got
    fin = det.finish()
    return out + fin, limits + [(det.settled, det.reach_back_samples)] * len(fin)


def test_a_burst_veto_reaches_back_no_further_than_the_detector_says() -> None:
    """The rest gate judges a twitch finally once its muscle's sources have settled ``reach_back`` past it:
    every burst veto starts at most that far before where the detector had settled before the frame that
    reported it — and some do reach back behind it (the run's first bursts, reported already)."""
    x = _mixed()
    dets, limits = _detections(x, list(range(50, x.shape[0], 50)))
    spans = [(d, lim) for d, lim in zip(dets, limits, strict=True) if "bursting" in d.reason]
    assert spans
    assert all(d.veto_span is not None and d.vetoes for d, _ in spans)
    assert all(d.veto_span[0] >= settled - reach for d, (settled, reach) in spans if d.veto_span)
    assert any(d.veto_span[0] < settled for d, (settled, _) in spans if d.veto_span)
    assert StreamingDetector("acc", 100.0, 3).reach_back_samples == 0  # accelerometers: no such rule


@pytest.mark.parametrize("size", [20, 137, 1000])
def test_chunking_does_not_change_burst_events(size: int) -> None:
    """The burst rule reads the lane's events in the order they are decided: the same for any chunking."""
    x = _mixed()
    whole, _ = _detections(x, [])
    assert any("rhythmic" in d.reason for d in whole)
    assert any("a second" in d.reason for d in whole)
    rng = np.random.default_rng(size)
    cuts = np.cumsum(rng.integers(1, size + 1, size=x.shape[0]))
    got, _ = _detections(x, cuts[cuts < x.shape[0]].tolist())
    assert got == whole
    fixed, _ = _detections(x, list(range(size, x.shape[0], size)))
    assert fixed == whole
