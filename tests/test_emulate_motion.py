"""The emulated wearer's movement (``collector.emulate.motion``) and the generator's movement sources: a still
gyroscope reads noise around its offset, a moving one the rotation the accelerometer and the orientation
show; everything is deterministic by seed and the same however it is read in blocks."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.test_recordings import Sig, write_edf
from twitchwatch.collector.emulate import synth_sources
from twitchwatch.collector.emulate.motion import MotionTimeline, Movement, quaternion, rotation
from twitchwatch.collector.emulate.peripheral import EmulationOptions
from twitchwatch.collector.emulate.source import (
    GYRO_BIAS_DPS,
    GYRO_NOISE_DPS,
    CombinedSource,
    EmulationError,
    GyroSource,
    MovingAccSource,
    OrientationSource,
    RecordingSources,
    SampleSource,
    SynthSource,
)
from twitchwatch.collector.recordings.playback import open_source

FloatArray = npt.NDArray[np.float64]
T0 = 1_700_000_000_000_000_000
BUSY = Movement(posture_changes=4, walking=1, limb_jerks=4)


def _read(source: SampleSource, n: int, block: int) -> FloatArray:
    return np.concatenate([source.read(min(block, n - k)) for k in range(0, n, block)])


def test_movement_rates_are_validated() -> None:
    with pytest.raises(ValueError, match="walking"):
        Movement(walking=-1)
    with pytest.raises(ValueError, match="limb_jerks"):
        Movement(limb_jerks=math.nan)
    assert Movement().still
    assert not BUSY.still


def test_a_still_wearer_gyroscope_reads_noise_around_its_offset_and_the_rest_passes_unchanged() -> None:
    timeline = MotionTimeline(Movement(), seed=3, start_ns=T0)
    gyro = GyroSource(timeline, 100.0, T0, seed=11)
    x = gyro.read(60_000)
    assert x.shape == (60_000, 3)
    centred = x - x.mean(axis=0)
    assert np.std(centred, axis=0) == pytest.approx([GYRO_NOISE_DPS] * 3, rel=0.05)
    assert np.all(np.abs(x.mean(axis=0)) < 4 * GYRO_BIAS_DPS)
    assert np.abs(x).max() < 2.0  # °/s: no movement anywhere
    orientation = OrientationSource(timeline, 50.0, T0).read(100)
    np.testing.assert_array_equal(orientation, np.tile([1.0, 0.0, 0.0, 0.0], (100, 1)))
    synth = SynthSource("acc", 100.0, 3, ["calf_left"], 30.0, 5, T0)
    moved = MovingAccSource(SynthSource("acc", 100.0, 3, ["calf_left"], 30.0, 5, T0), timeline, T0)
    np.testing.assert_array_equal(moved.read(5000), synth.read(5000))
    assert moved.take_truth() == synth.take_truth()


def test_the_same_seed_gives_the_same_movement_in_any_blocks() -> None:
    def sources() -> tuple[SampleSource, SampleSource, SampleSource]:
        timeline = MotionTimeline(BUSY, seed=21, start_ns=T0)
        acc = MovingAccSource(SynthSource("acc", 100.0, 3, ["calf_left"], 10.0, 2, T0), timeline, T0)
        return acc, GyroSource(timeline, 100.0, T0, 4), OrientationSource(timeline, 100.0, T0)

    first, second = sources(), sources()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(_read(a, 12_000, 7), _read(b, 12_000, 500))
    other = MotionTimeline(BUSY, seed=22, start_ns=T0)
    assert not np.array_equal(
        GyroSource(other, 100.0, T0, 4).read(12_000),
        GyroSource(MotionTimeline(BUSY, 21, T0), 100.0, T0, 4).read(12_000),
    )


def test_gyroscope_orientation_and_accelerometer_show_one_movement() -> None:
    """Integrating the gyroscope gives the orientation; the accelerometer's resting reading turns with it;
    every movement starts when its truth says."""
    fs = 200.0
    timeline = MotionTimeline(BUSY, seed=8, start_ns=T0, muscle="calf_left")
    acc_inner = SynthSource("acc", fs, 3, ["calf_left"], 0.0, 9, T0)
    still = SynthSource("acc", fs, 3, ["calf_left"], 0.0, 9, T0).read(int(fs * 300))
    acc = MovingAccSource(acc_inner, timeline, T0).read(int(fs * 300))
    gyro = GyroSource(timeline, fs, T0, 1).read(int(fs * 300))
    quat = OrientationSource(timeline, fs, T0).read(int(fs * 300))

    # Orientation from the gyroscope (less its offset, taken from the first still second).
    rate = np.radians(gyro - gyro[: int(fs)].mean(axis=0)) / fs
    r = np.eye(3)
    worst = 0.0
    for i in range(1, len(rate)):
        step = (rate[i - 1] + rate[i]) / 2
        angle = float(np.linalg.norm(step))
        if angle > 0:
            r = r @ rotation(step / angle, np.array([angle]))[0]
        if i % int(fs * 10) == 0:
            q = quaternion(r[None])[0]
            worst = max(worst, math.degrees(2 * math.acos(min(1.0, abs(float(q @ quat[i]))))))
    assert worst < 3.0, f"gyroscope and orientation disagree by {worst:.2f}°"

    # Between movements the accelerometer is the resting reading turned by the orientation.
    truth = timeline.take_truth(300.0)
    busy = np.zeros(len(acc), dtype=bool)
    for event in truth:
        i0, i1 = ((np.array([event.start_ns, event.end_ns]) - T0) / 1e9 * fs).astype(int)
        busy[max(i0 - 1, 0) : i1 + 2] = True
    matrices = np.stack([_matrix(q) for q in quat[~busy]])
    turned = np.einsum("nji,nj->ni", matrices, still[~busy])
    np.testing.assert_allclose(acc[~busy], turned, atol=1e-6)  # the quaternion holds ~1e-8
    # ... and the gyroscope is back at its noise there.
    assert np.abs(gyro[~busy] - gyro[: int(fs)].mean(axis=0)).max() < 8 * GYRO_NOISE_DPS
    # During movements it is not.
    assert np.abs(gyro[busy]).max() > 20.0
    assert {e.detail for e in truth} == {"posture", "walking", "limb jerk"}
    assert {e.unit for e in truth} == {"°/s"}


def _matrix(q: FloatArray) -> FloatArray:
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_movements_keep_their_rates_and_postures_come_back() -> None:
    timeline = MotionTimeline(Movement(posture_changes=3, walking=0.5, limb_jerks=6), seed=2, start_ns=T0)
    turns = timeline.turns_until(3600.0)
    minutes = 60.0
    counts = {k: sum(1 for t in turns if t.kind == k) / minutes for k in ("posture", "walking", "jerk")}
    assert counts["posture"] == pytest.approx(3, rel=0.25)
    assert counts["walking"] == pytest.approx(0.5, rel=0.35)
    assert counts["jerk"] == pytest.approx(6, rel=0.25)
    assert all(a.end_s < b.start_s for a, b in itertools.pairwise(turns))  # never overlapping
    postures = [t for t in turns if t.kind == "posture"]
    for out, back in zip(postures[::2], postures[1::2], strict=False):
        np.testing.assert_allclose(back.after, out.before, atol=1e-12)  # sat down, stood up


def test_truth_is_handed_out_once_across_the_devices_streams() -> None:
    options = EmulationOptions(muscles=("calf_left",), seed=4, movement=BUSY)
    make = synth_sources(options)
    acc = make("acc", 100.0, 3, T0)
    gyro = make("gyro", 50.0, 3, T0 + 5_000_000)
    orientation = make("orientation", 50.0, 4, T0)
    for source in (acc, gyro, orientation):
        source.read(100 * 120)
    handed = acc.take_truth() + gyro.take_truth() + orientation.take_truth()
    movement = [e for e in handed if e.unit == "°/s"]
    assert movement, "two minutes of a busy wearer hold movements"
    assert len({(e.start_ns, e.detail) for e in movement}) == len(movement)
    assert all(e.muscle == "calf_left" for e in movement)
    with pytest.raises(EmulationError, match="no 4-channel 'gyro'"):
        make("gyro", 50.0, 4, T0)
    with pytest.raises(EmulationError, match="emg, acc, gyro or orientation"):
        make("temperature", 1.0, 1, T0)


def test_combined_sources_line_up_their_channels() -> None:
    timeline = MotionTimeline(BUSY, seed=5, start_ns=T0)
    parts = [OrientationSource(timeline, 50.0, T0), GyroSource(timeline, 50.0, T0, 3)]
    combined = CombinedSource(parts)
    assert combined.channels == 7
    block = combined.read(25)
    assert block.shape == (25, 7)
    np.testing.assert_allclose(np.linalg.norm(block[:, :4], axis=1), 1.0)
    with pytest.raises(ValueError, match="one rate"):
        CombinedSource([GyroSource(timeline, 50.0, T0, 1), GyroSource(timeline, 100.0, T0, 1)])


def test_a_recording_without_a_gyroscope_plays_one_at_rest(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(0, 0.01, (300, 3)) + np.array([0.0, 0.0, 1.0])
    path = write_edf(
        tmp_path / "acc.edf", [Sig(f"ACC calf_left {a}", "g", 100, x[:, i]) for i, a in enumerate("xyz")]
    )
    sources = RecordingSources(open_source(path))
    gyro = sources("gyro", 52.0, 3, T0)
    assert (gyro.signal, gyro.channels) == ("gyro", 3)
    np.testing.assert_array_equal(gyro.read(10), np.zeros((10, 3)))
    orientation = sources("orientation", 50.0, 4, T0)
    np.testing.assert_array_equal(orientation.read(3), np.tile([1.0, 0.0, 0.0, 0.0], (3, 1)))
    acc = sources("acc", 100.0, 3, T0)
    assert acc.read(300).shape == (300, 3)
    with pytest.raises(EmulationError, match="has no emg stream"):
        sources("emg", 1000.0, 1, T0)
