"""The gyroscope and orientation movement detector (processing/motion.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twitchwatch.processing.events import EventKind
from twitchwatch.processing.motion import MotionDetection, MotionDetector, MotionParams

RATE = 100.0


def rest(seconds: float, seed: int = 0, bias: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A gyroscope on a limb at rest (°/s): MEMS noise (0.05 °/s RMS per axis, the MPU-6050's figure, doubled)
    and physiological tremor (9 Hz, 0.5 °/s), plus a zero-rate offset."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = rng.normal(0.0, 0.1, (n, 3))
    x[:, 0] += 0.5 * np.sin(2 * np.pi * 9.0 * t)
    out: np.ndarray = x + np.asarray(bias)
    return out


def add_turn(x: np.ndarray, start_s: float, seconds: float, peak_dps: float, axis: int = 2) -> None:
    """A voluntary rotation: angular rate a raised-cosine bump (a turn that starts and ends at rest)."""
    a, n = int(start_s * RATE), int(seconds * RATE)
    x[a : a + n, axis] += peak_dps * 0.5 * (1 - np.cos(2 * np.pi * np.arange(n) / n))


def run(x: np.ndarray, chunk: int = 10, kind: str = "gyro") -> list[MotionDetection]:
    det = MotionDetector(kind, RATE, x.shape[1])  # type: ignore[arg-type]
    out: list[MotionDetection] = []
    for i in range(0, x.shape[0], chunk):
        out += det.process(x[i : i + chunk])
    return out + det.finish()


def crossing_span(peak: float, start_s: float, seconds: float, p: MotionParams) -> tuple[float, float]:
    """Where a raised-cosine bump is above on_dps first and above off_dps last."""
    on = np.arccos(1 - 2 * p.on_dps / peak) / (2 * np.pi) * seconds
    off = np.arccos(1 - 2 * p.off_dps / peak) / (2 * np.pi) * seconds
    return start_s + on, start_s + seconds - off


def test_a_limb_at_rest_gives_nothing_even_with_a_large_zero_rate_offset() -> None:
    assert run(rest(120.0)) == []
    assert run(rest(120.0, seed=1, bias=(12.0, -15.0, 6.0))) == []  # MPU-9150: ±20 °/s at 25 °C


def test_turns_are_movement_with_their_span_and_reason() -> None:
    x = rest(60.0, bias=(3.0, -2.0, 1.0))
    bouts = [(10.0, 2.0, 60.0), (25.0, 4.0, 30.0), (40.0, 1.5, 200.0)]
    for start, seconds, peak in bouts:
        add_turn(x, start, seconds, peak)
    found = run(x)
    assert [d.kind for d in found] == [EventKind.SUSTAINED] * 3
    p = MotionParams()
    for d, (start, seconds, peak) in zip(found, bouts, strict=True):
        a, b = crossing_span(peak, start, seconds, p)
        assert abs(d.start / RATE - a) <= 0.03  # one 20-ms block, plus the noise
        assert abs(d.end / RATE - b) <= 0.03
        assert d.peak == pytest.approx(peak, rel=0.1)  # the block RMS at the crest
        assert d.reason == f"rotation up to {d.peak:.0f} °/s for {(d.end - d.start) / RATE:.1f} s"


def test_a_brief_swing_is_left_to_the_twitch_detectors() -> None:
    x = rest(30.0)
    add_turn(x, 10.0, 0.3, 80.0)  # a myoclonic jerk's swing: above 5 °/s for ~0.27 s
    assert run(x) == []


def test_dips_shorter_than_the_gap_do_not_split_a_walk() -> None:
    x = rest(40.0)
    for k in range(10):  # steps: 0.4-s swings with 0.2-s pauses
        add_turn(x, 10.0 + 0.6 * k, 0.4, 60.0, axis=k % 2)
    (d,) = run(x)
    assert 9.9 < d.start / RATE < 10.2
    assert 15.6 < d.end / RATE < 16.0


def test_the_bias_is_learnt_from_a_still_start_and_follows_a_drift() -> None:
    x = rest(200.0, bias=(10.0, 0.0, 0.0))
    x[:, 0] += np.linspace(0.0, 4.0, x.shape[0])  # temperature drift, 4 °/s over 200 s
    det = MotionDetector("gyro", RATE, 3)
    assert det.process(x) == []
    assert det.bias[0] == pytest.approx(14.0, abs=0.5)


def test_a_wearable_that_starts_moving_finds_its_bias_once_still() -> None:
    x = rest(40.0, bias=(8.0, 0.0, 0.0))
    add_turn(x, 0.0, 4.0, 50.0)
    found = run(x)
    assert len(found) == 1
    assert found[0].start / RATE == pytest.approx(1.0)  # the first block after the warm-up
    det = MotionDetector("gyro", RATE, 3)
    det.process(x)
    assert det.bias[0] == pytest.approx(8.0, abs=0.3)


@given(cuts=st.lists(st.integers(1, 400), min_size=1, max_size=40), seed=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_chunking_does_not_change_the_bouts(cuts: list[int], seed: int) -> None:
    x = rest(40.0, seed=seed, bias=(5.0, 1.0, -2.0))
    add_turn(x, 8.0 + seed, 2.0, 40.0)
    add_turn(x, 20.0, 0.3, 80.0)
    add_turn(x, 30.0, 6.0, 25.0, axis=1)
    whole = run(x, chunk=x.shape[0])
    det = MotionDetector("gyro", RATE, 3)
    pieces: list[MotionDetection] = []
    i = 0
    for c in cuts * 50:
        if i >= x.shape[0]:
            break
        pieces += det.process(x[i : i + c])
        i += c
    pieces += det.process(x[i:]) + det.finish()
    assert pieces == whole
    assert len(whole) == 2


def test_settled_waits_for_a_bout_and_open_activity_reports_it_once_it_is_movement() -> None:
    x = rest(20.0)
    add_turn(x, 8.0, 3.0, 50.0)
    det = MotionDetector("gyro", RATE, 3)
    p = det.params
    a, _ = crossing_span(50.0, 8.0, 3.0, p)
    seen_open = False
    for i in range(0, x.shape[0], 5):
        det.process(x[i : i + 5])
        now = (i + 5) / RATE
        opened = det.open_activity()
        if a + 0.05 < now < a + p.min_ms / 1e3 - 0.05:
            assert det.settled / RATE == pytest.approx(a, abs=0.03)  # a bout too short to call yet
            assert opened == []
        if opened:
            seen_open = True
            ((lane, start, end),) = opened
            assert lane == 0
            assert start / RATE == pytest.approx(a, abs=0.03)
            assert end <= det.settled
    assert seen_open


def quaternions(rate_dps: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) of a rotation about ``axis`` integrated from angular rates (°/s)."""
    angle = np.radians(np.cumsum(rate_dps) / RATE)
    u = axis / np.linalg.norm(axis)
    return np.column_stack([np.cos(angle / 2), np.outer(np.sin(angle / 2), u)])


def test_orientation_quaternions_give_angular_speed_whatever_their_sign() -> None:
    n = int(30 * RATE)
    rate = np.zeros(n)
    rate[1000:1300] = 45.0  # 3 s at 45 °/s
    q = quaternions(rate, np.array([0.3, -0.5, 0.8]))
    q[::7] *= -1  # the same orientations, half the sphere away
    q += np.random.default_rng(0).normal(0, 6e-5, q.shape)  # the Myo's 1/16384 quantisation
    (d,) = run(q, kind="orientation")
    assert d.start / RATE == pytest.approx(10.0, abs=0.03)
    assert d.end / RATE == pytest.approx(13.0, abs=0.03)
    assert d.peak == pytest.approx(45.0, rel=0.05)
    still = quaternions(np.zeros(n), np.array([1.0, 0.0, 0.0])) + np.random.default_rng(1).normal(
        0, 6e-5, (n, 4)
    )
    assert run(still, kind="orientation") == []


def test_zero_and_non_finite_quaternions_are_no_movement_and_do_not_stop_the_stream() -> None:
    """A Myo sends zero quaternions while its IMU starts; a glitch must not end the stream or fake a turn."""
    n = int(30 * RATE)
    rate = np.zeros(n)
    rate[1000:1300] = 45.0
    q = quaternions(rate, np.array([0.0, 0.0, 1.0]))
    q[:50] = 0.0  # the IMU starting
    q[2000:2003] = np.nan
    q[2500] = 0.0
    (d,) = run(q, kind="orientation")
    assert d.start / RATE == pytest.approx(10.0, abs=0.03)
    assert d.end / RATE == pytest.approx(13.0, abs=0.03)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="3 channels"):
        MotionDetector("gyro", RATE, 4)
    with pytest.raises(ValueError, match="'gyro' or 'orientation'"):
        MotionDetector("acc", RATE, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="off_dps"):
        MotionParams(on_dps=5.0, off_dps=10.0)
