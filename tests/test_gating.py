"""Detectors and the rest gate over known streams (processing/gating.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tests.test_motion import add_turn, rest
from tests.test_recordings import add_potential
from twitchwatch.processing.detector import StreamingDetector
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.gating import GatedRun, GateStream, Judged, veto_what
from twitchwatch.processing.rest import GateParams

EMG_RATE, GYRO_RATE, SECONDS = 1000.0, 100.0, 40.0
TWITCHES = (3.0, 6.0, 11.0, 14.5, 20.5, 26.0, 31.0, 36.0)  # s, on each EMG channel
# The EMG detector learns its noise floor for this long after a start, detecting nothing: not assessable.
EMG_WARMUP_S = StreamingDetector("emg", EMG_RATE, 1).warmup_samples / EMG_RATE
PARAMS = GateParams(before_ns=100_000_000, after_ns=1_000_000_000, before_movement_ns=100_000_000)


def emg(seed: int, channels: int = 2) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0.0, 3.0, (int(SECONDS * EMG_RATE), channels))
    for c in range(channels):
        for t in TWITCHES:
            add_potential(x[:, c], EMG_RATE, t + 0.1 * c, 40.0)  # 20 dB over 3 µV
    return x


def feed(run: GatedRun, signals: Sequence[np.ndarray], chunk_s: float = 0.05) -> list[Judged]:
    """The streams interleaved in chunks, as frames reach the worker."""
    out: list[Judged] = []
    pos = [0] * len(signals)
    t = 0.0
    while any(p < s.shape[0] for p, s in zip(pos, signals, strict=True)):
        t += chunk_s
        for i, (s, gs) in enumerate(zip(signals, run.streams, strict=True)):
            n = min(round(t * gs.rate), s.shape[0])
            if n > pos[i]:
                out += run.feed(i, s[pos[i] : n])
                pos[i] = n
    return out + run.finish()


def twitches(judged: Sequence[Judged], stream: int = 0) -> list[Judged]:
    return [j for j in judged if j.stream == stream and j.detection.kind.is_twitch]


def near(js: Sequence[Judged], t: float) -> Judged:
    return min(js, key=lambda j: abs(j.start_s - t))


def test_a_device_that_turns_vetoes_its_emg_and_says_why() -> None:
    gyro = rest(SECONDS, bias=(4.0, -3.0, 2.0))
    add_turn(gyro, 10.0, 6.0, 60.0)  # above 5 °/s from ≈10.6 to ≈15.4 s
    streams = [
        GateStream(
            "EMG arm",
            "emg",
            EMG_RATE,
            2,
            "band",
            ("biceps", "triceps"),
            lane_labels=("EMG biceps", "EMG triceps"),
        ),
        GateStream("GYR band", "gyro", GYRO_RATE, 3, "band"),
    ]
    run = GatedRun(streams, PARAMS)
    out = feed(run, [emg(1), gyro])
    seen = twitches(out)
    assert len(seen) == 2 * len(TWITCHES)
    for j in seen:
        inside = 10.4 < j.start_s < 16.5  # the bout widened by 0.1 s before and 1 s after
        assert j.rejected is inside, j
        if inside:
            # judged while the turn went on (its reason has no peak yet) or after it (with its peak)
            assert j.reason.startswith(f"{j.detection.kind.value}: rotation on GYR band")
            assert veto_what(j.reason) == "rotation"
        else:
            assert j.kind is j.detection.kind
            assert j.reason == ""
    bout = next(j for j in out if j.stream == 1)
    assert bout.kind is EventKind.SUSTAINED
    vetoed = (bout.end_s + 1.0) - (bout.start_s - 0.1)
    for lane in (0, 1):  # nor the EMG detector's warm-up: blind, as in the worker
        assert run.assessable_s(0, lane) == pytest.approx(SECONDS - vetoed - EMG_WARMUP_S, abs=0.01)


def test_another_device_does_not_veto_and_an_emg_lane_vetoes_only_its_muscle() -> None:
    gyro = rest(SECONDS)
    add_turn(gyro, 10.0, 6.0, 60.0)
    x = emg(2)
    x[20_000:24_000, 1] += np.random.default_rng(5).normal(0.0, 60.0, 4000)  # triceps contracts 20–24 s
    streams = [
        GateStream("EMG arm", "emg", EMG_RATE, 2, "band", ("biceps", "triceps")),
        GateStream("GYR ankle", "gyro", GYRO_RATE, 3, "anklet"),
    ]
    long_after = GateParams(before_ns=100_000_000, after_activity_ns=3_000_000_000)
    run = GatedRun(streams, long_after)
    out = feed(run, [x, gyro])
    biceps = [j for j in twitches(out) if j.detection.lane == 0]
    # The biceps potential while the triceps contracts (20.5 s) is taken for part of that contraction by
    # the detector ("activity on 1 other channels", processing/emg.py), not a twitch, but it vetoes
    # nothing: every other biceps twitch counts, and the biceps stays assessable throughout.
    during = [j for j in out if j.stream == 0 and j.detection.lane == 0 and 20.0 < j.start_s < 21.0]
    assert [(j.kind, j.detection.reason, j.detection.vetoes) for j in during] == [
        (EventKind.SUSTAINED, "activity on 1 other channels", False)
    ]
    assert len(biceps) == len(TWITCHES) - 1
    assert all(not j.rejected for j in biceps)  # the anklet turned, not the armband; the triceps contracted
    assert run.assessable_s(0, 0) == pytest.approx(SECONDS - EMG_WARMUP_S, abs=0.01)
    triceps = [j for j in twitches(out) if j.detection.lane == 1]
    after = near(triceps, 26.1)  # 2.1 s after the contraction: inside its 3-s guard
    assert after.rejected
    assert after.reason == "fasciculation: voluntary activity on EMG arm"
    assert not near(triceps, 31.1).rejected


def test_the_emg_of_a_moving_device_is_vetoed_by_its_accelerometer() -> None:
    rng = np.random.default_rng(7)
    n = int(SECONDS * GYRO_RATE)
    t = np.arange(n) / GYRO_RATE
    acc = np.tile([0.0, 0.0, 1.0], (n, 1)) + rng.normal(0, 0.002, (n, 3))
    walk = (t >= 12.0) & (t < 22.0)
    acc[walk, 2] += 0.2 * np.sin(2 * np.pi * 1.8 * t[walk])  # steps: 1.8 Hz, 0.2 g
    streams = [
        GateStream("EMG calf", "emg", EMG_RATE, 1, "shin", ("calf",)),
        GateStream("ACC shin", "acc", GYRO_RATE, 3, "shin", ("calf",)),
    ]
    run = GatedRun(streams, PARAMS)
    out = feed(run, [emg(3, channels=1), acc])
    for j in twitches(out):
        assert j.rejected is (12.0 < j.start_s < 23.5), j
        if j.rejected:
            assert veto_what(j.reason) == "movement"
    assert run.assessable_s(0, 0) < SECONDS - 10.0
    assert run.assessable_s(1, 0) == pytest.approx(run.assessable_s(0, 0), abs=1.0)


def test_chunking_does_not_change_what_is_judged() -> None:
    gyro = rest(SECONDS)
    add_turn(gyro, 10.0, 6.0, 60.0)
    x = emg(4)

    def judged(chunk_s: float) -> tuple[list[tuple[object, ...]], float]:
        streams = [
            GateStream("EMG arm", "emg", EMG_RATE, 2, "band", ("biceps", "triceps")),
            GateStream("GYR band", "gyro", GYRO_RATE, 3, "band"),
        ]
        run = GatedRun(streams, PARAMS)
        out = feed(run, [x, gyro], chunk_s)
        return sorted((j.stream, j.start_s, j.kind, j.reason) for j in out), run.assessable_s(0, 1)

    assert judged(0.02) == judged(0.5) == judged(3.0)


def test_a_twitch_waits_for_every_source_of_its_scopes() -> None:
    x = emg(5, channels=1)
    gyro = rest(SECONDS)
    streams = [
        GateStream("EMG calf", "emg", EMG_RATE, 1, "shin", ("calf",)),
        GateStream("GYR shin", "gyro", GYRO_RATE, 3, "shin"),
    ]
    run = GatedRun(streams, PARAMS)
    early = run.feed(0, x)  # all the EMG, none of the gyroscope yet
    assert twitches(early) == []
    held = run.feed(1, gyro[: int(4.0 * GYRO_RATE)])
    assert [round(j.start_s) for j in twitches(held)] == [3]  # only what the gyroscope has settled past
    rest_of = run.feed(1, gyro[int(4.0 * GYRO_RATE) :]) + run.finish()
    assert len(twitches(rest_of)) == len(TWITCHES) - 1


def test_streams_are_checked() -> None:
    with pytest.raises(ValueError, match="2 lane"):
        GateStream("EMG", "emg", 1000.0, 2, "d", ("only_one",))
    with pytest.raises(ValueError, match="no twitch lanes"):
        GateStream("GYR", "gyro", 100.0, 3, "d", ("m",))
    with pytest.raises(ValueError, match="unknown stream kind"):
        GateStream("X", "ppg", 100.0, 1, "d", ("m",))  # type: ignore[arg-type]


def test_a_potential_in_weak_activity_vetoes_only_where_the_activity_was_seen() -> None:
    """A brief potential turned down for the activity around it vetoes its context window and hold, not
    the guards of a contraction: a twitch 1.5 s after the weak activity ends still counts."""
    x = np.random.default_rng(5).normal(0.0, 3.0, (int(20 * EMG_RATE), 1))
    x[6000:10000] *= 1.6  # 4 s of weak activity: 2.6 x the rest's power, below any onset
    add_potential(x[:, 0], EMG_RATE, 9.5, 60.0)
    add_potential(x[:, 0], EMG_RATE, 11.5, 60.0)
    run = GatedRun([GateStream("EMG", "emg", EMG_RATE, 1, "dev", ("calf",))], PARAMS)
    judged = feed(run, [x])
    around = near(judged, 9.5)
    d = around.detection
    assert (d.kind, d.reason) == (EventKind.SUSTAINED, "activity around it")
    assert d.veto_span is not None
    assert d.veto_span[0] == d.start - int(EMG_RATE)  # the second of context before it
    assert 0 < d.veto_span[1] - d.end <= 0.1 * EMG_RATE  # and its hold after it
    after = near(judged, 11.5)
    assert after.kind is EventKind.FASCICULATION, after.reason
