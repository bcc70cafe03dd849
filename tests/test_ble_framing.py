"""Chunks → wire frames: sequence numbers, gap marking the worker counts, device time → epoch."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from twitchwatch.collector.ble.framing import CLOCK_TRUST_NS, SLEW, Framer
from twitchwatch.collector.devices import Chunk, get_profile
from twitchwatch.collector.devices.polar import POLAR_EPOCH_NS
from twitchwatch.collector.frames import Frame, Unit, encode
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.topics import Topic
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

NOW = 1_790_000_000_000_000_000  # a fixed "host clock" reading (2026)
RATE = 200.0
N = 40  # samples per chunk: 0.2 s


def _polar_chunk(last_device_ns: int, n: int = N, rate: float | None = RATE) -> Chunk:
    step = round(1e9 / RATE)
    times = np.arange(last_device_ns - (n - 1) * step, last_device_ns + 1, step, dtype=np.int64)
    raw = np.zeros((n, 3), dtype=np.int32)
    return Chunk("acc", raw, 0.001, Unit.G, rate, times)


def _plain_chunk(lost: int = 0) -> Chunk:
    return Chunk("emg", np.zeros((N, 8), dtype=np.int8), 1.0, Unit.UNITLESS, RATE, lost_samples=lost)


def _framer(profile: str = "polar-h10") -> Framer:
    return Framer(get_profile(profile))


def test_sequence_numbers_count_up_per_stream_from_zero() -> None:
    framer = _framer()
    device_now = NOW - POLAR_EPOCH_NS
    frames = [
        framer.frame(_polar_chunk(device_now + i * 200_000_000), NOW + i * 200_000_000) for i in range(3)
    ]
    assert [f.sequence for f in frames if f] == [0, 1, 2]
    assert framer.stats.gaps_marked == 0


def test_a_trusted_absolute_clock_maps_to_the_epoch() -> None:
    framer = _framer()
    last = NOW - POLAR_EPOCH_NS - 30_000_000_000  # 30 s behind the host: still within the trust window
    frame = framer.frame(_polar_chunk(last), NOW)
    assert frame is not None
    assert frame.t0_ns == POLAR_EPOCH_NS + last - (N - 1) * 5_000_000
    assert frame.sample_rate == RATE


def test_a_clock_that_was_never_set_is_anchored_to_arrival() -> None:
    framer = _framer()
    uptime = 3_600_000_000_000  # an H10 whose clock counts from 2000-01-01 + one hour
    first = framer.frame(_polar_chunk(uptime), NOW)
    second = framer.frame(_polar_chunk(uptime + 200_000_000), NOW + 250_000_000)
    assert first is not None
    assert second is not None
    assert first.t0_ns + first.duration_ns - 5_000_000 == NOW  # last sample = arrival
    assert second.t0_ns == first.t0_ns + 200_000_000  # spacing from the device clock, not arrival jitter
    assert abs(POLAR_EPOCH_NS + uptime - NOW) > CLOCK_TRUST_NS


def test_chunks_without_timestamps_continue_through_jitter_and_a_stall() -> None:
    """A Myo's EMG carries no time: its samples are counted at the nominal rate from the first chunk's
    arrival. A chunk 30 ms late is jitter; a 1.5-s stall then a burst of what the link held is latency — the
    samples were taken on time. Snapped to arrival once 0.5 s off, the stall stepped the stream 1.5 s forward
    and the burst back, unmarked."""
    framer = _framer("myo")
    frames = [framer.frame(_plain_chunk(), NOW), framer.frame(_plain_chunk(), NOW + 230_000_000)]
    stall_end = NOW + 2_000_000_000
    frames += [framer.frame(_plain_chunk(), stall_end + k * 1_000_000) for k in range(8)]  # the burst
    frames += [framer.frame(_plain_chunk(), NOW + 2_000_000_000 + k * 200_000_000) for k in range(1, 20)]
    assert all(f is not None for f in frames)
    steps = [b.t0_ns - (a.t0_ns + a.duration_ns) for a, b in itertools.pairwise(frames) if a and b]
    assert max(abs(s) for s in steps) <= SLEW * 200_000_000  # steered by at most SLEW of a chunk
    assert [f.sequence for f in frames if f] == list(range(len(frames)))
    assert framer.stats.reanchored == 0


def test_a_second_of_chunks_all_arriving_late_is_anchored_again_with_a_gap() -> None:
    """Samples the device dropped without saying (its queue overflowed): every chunk after them arrives
    1.5 s after its place, at the normal pace. After a second of samples so, the stream is anchored to
    arrival again, and the jump is marked."""
    framer = _framer("myo")
    frames = [framer.frame(_plain_chunk(), NOW + k * 200_000_000) for k in range(5)]
    late = NOW + 1_000_000_000 + 1_500_000_000
    frames += [framer.frame(_plain_chunk(), late + k * 200_000_000) for k in range(10)]
    assert all(f is not None for f in frames)
    jumps = [(a, b) for a, b in itertools.pairwise(frames) if a and b and b.sequence != a.sequence + 1]
    [(before, after)] = jumps
    assert after.t0_ns - (before.t0_ns + before.duration_ns) > 1_000_000_000
    assert framer.stats.reanchored == 1


def test_a_host_clocked_device_off_its_nominal_rate_is_followed_without_a_step() -> None:
    """A MEMS accelerometer's oscillator is off by up to a percent or so: at 1 % the sample count runs
    0.5 s behind arrival after 50 s. The timeline is steered a little at every chunk; before, it snapped to
    arrival every 50 s, back 0.5 s (overlapping what was sent), unmarked."""
    for true_rate in (0.99 * RATE, 1.01 * RATE):
        framer = _framer("myo")
        period = 1e9 / true_rate
        frames, errors = [], []
        for k in range(3000):  # 10 minutes of 0.2-s chunks
            taken = NOW + round(k * N * period)
            arrival = taken + round(N * period) + 10_000_000 + (k % 7) * 3_000_000  # latency 10-28 ms
            frame = framer.frame(_plain_chunk(), arrival)
            assert frame is not None
            frames.append(frame)
            errors.append(frame.t0_ns - taken)
        steps = [b.t0_ns - (a.t0_ns + a.duration_ns) for a, b in itertools.pairwise(frames)]
        assert max(abs(s) for s in steps) <= SLEW * 200_000_000
        assert max(abs(e) for e in errors[-1000:]) < 60_000_000  # within the latency, not 0.5 s
        assert framer.stats.reanchored == 0


def test_reconnect_skips_sequence_numbers_for_the_silence() -> None:
    framer = _framer()
    device_now = NOW - POLAR_EPOCH_NS
    for i in range(3):
        framer.frame(_polar_chunk(device_now + i * 200_000_000), NOW + i * 200_000_000)
    framer.mark_reconnect()
    # The frames that would have ended at 0.6, 0.8, … 2.2 s never came: nine lost.
    after = framer.frame(_polar_chunk(device_now + 2_400_000_000), NOW + 2_400_000_000)
    assert after is not None
    assert after.sequence == 2 + 1 + 9
    assert framer.stats.gaps_marked == 1
    assert framer.stats.frames_skipped == 9


def test_a_reconnect_marks_at_least_one_missing_frame() -> None:
    framer = _framer("myo")
    framer.frame(_plain_chunk(), NOW)
    framer.mark_reconnect()
    after = framer.frame(_plain_chunk(), NOW + 1)  # no measurable silence
    assert after is not None
    assert after.sequence == 2


def test_samples_the_decoder_knows_are_lost_mark_a_gap() -> None:
    framer = _framer("myo")
    framer.frame(_plain_chunk(), NOW)
    after = framer.frame(_plain_chunk(lost=N), NOW + 400_000_000)
    assert after is not None
    assert after.sequence == 1 + 1
    assert after.t0_ns == NOW + 200_000_000  # continues after the lost samples' time
    more = framer.frame(_plain_chunk(lost=2 * N + 1), NOW + 1_000_000_000)
    assert more is not None
    assert more.sequence == 2 + 1 + 3


def test_a_jump_in_the_devices_own_counter_marks_a_gap() -> None:
    framer = _framer("open")

    def chunk(sequence: int) -> Chunk:
        return Chunk("emg", np.zeros((N, 2), dtype=np.int16), 0.1, Unit.MICROVOLT, RATE, sequence=sequence)

    numbers = [
        framer.frame(chunk(seq), NOW + i * 200_000_000) for i, seq in enumerate([2**32 - 2, 2**32 - 1, 3])
    ]
    assert [f.sequence for f in numbers if f] == [0, 1, 1 + 1 + 3]  # device frames 0, 1, 2 never arrived
    assert framer.stats.frames_skipped == 3


def test_a_repeated_or_late_device_frame_is_known_as_such() -> None:
    """The open profile's counter not advancing (a notification delivered twice, or late) is a repeat: its
    samples are not framed again as if new. After a gap (a reconnect) any counter starts afresh."""
    framer = _framer("open")

    def chunk(sequence: int) -> Chunk:
        return Chunk("emg", np.zeros((N, 2), dtype=np.int16), 0.1, Unit.MICROVOLT, RATE, sequence=sequence)

    assert not framer.repeated(chunk(10))  # nothing before it
    framer.frame(chunk(10), NOW)
    framer.frame(chunk(11), NOW + 200_000_000)
    assert framer.repeated(chunk(11))
    assert framer.repeated(chunk(9))
    assert not framer.repeated(chunk(12))
    framer.mark_reconnect()
    assert not framer.repeated(chunk(0))


def test_device_time_that_jumps_is_anchored_to_arrival_again() -> None:
    """A device clock of ms since power-on wraps after 49.7 days (Movesense's u32); a timestamp can be
    absurd. Placed by the old anchor, every later frame would sit weeks in the past (or overflow int64):
    device time is anchored to arrival again, and the next frame marks a gap."""
    framer = _framer("movesense")
    wrap_ns = 2**32 * 1_000_000
    first = framer.frame(_polar_chunk(wrap_ns - 300_000_000), NOW)
    assert first is not None
    wrapped = framer.frame(_polar_chunk(100_000_000), NOW + 400_000_000)
    assert wrapped is not None
    assert wrapped.t0_ns + wrapped.duration_ns - 5_000_000 == NOW + 400_000_000  # at its arrival
    assert wrapped.sequence == 2  # one number skipped: a gap
    assert framer.stats.reanchored == 1
    following = framer.frame(_polar_chunk(300_000_000), NOW + 600_000_000)
    assert following is not None
    assert following.t0_ns == wrapped.t0_ns + 200_000_000  # device time drives the spacing again
    absurd = framer.frame(_polar_chunk(2**62), NOW + 800_000_000)
    assert absurd is not None
    assert absurd.t0_ns + absurd.duration_ns - 5_000_000 == NOW + 800_000_000
    assert framer.stats.reanchored == 2


def test_no_sample_rate_means_no_frame_and_is_counted() -> None:
    framer = _framer()
    chunk = Chunk("acc", np.zeros((1, 3), dtype=np.int16), 1.0, Unit.G)
    assert framer.frame(chunk, NOW) is None
    assert framer.stats.no_rate == 1


def test_the_rate_is_derived_from_device_timestamps_when_missing() -> None:
    framer = _framer()
    frame = framer.frame(_polar_chunk(NOW - POLAR_EPOCH_NS, rate=None), NOW)
    assert frame is not None
    assert frame.sample_rate == pytest.approx(RATE)


def test_the_worker_counts_a_marked_gap(tmp_path: Path) -> None:
    """The contract with processing/worker.py: a reconnect's sequence jump is a gap, not a duplicate."""
    worker = Worker(parse_mqtt_url("mqtt://localhost:1"), SQLiteStore(tmp_path / "w.db"), user="u")
    framer = _framer()
    topic = str(Topic("u", "polar1", "raw", "acc"))
    device_now = NOW - POLAR_EPOCH_NS

    def send(i: int) -> None:
        frame = framer.frame(_polar_chunk(device_now + i * 200_000_000), NOW + i * 200_000_000)
        assert isinstance(frame, Frame)
        worker.handle(topic, encode(frame))

    for i in range(5):
        send(i)
    framer.mark_reconnect()
    for i in range(12, 15):
        send(i)
    assert worker.stats.frames == 8
    assert worker.stats.gaps == 1
    assert worker.stats.missing_frames == 12 - 5
    assert worker.stats.duplicates == 0
