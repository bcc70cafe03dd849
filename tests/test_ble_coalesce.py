"""Coalescing a stream's notifications into frames of up to a span: the pure grouping, and the framer
numbering the groups, checked against what the same chunks give one frame per notification (the worker's
view)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from tests.bumble_bleak.harness import TEST_TIMING, Radio, radio, wait_for
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.ble.coalesce import Coalescer, Placed, Run
from twitchwatch.collector.ble.connection import Connection, Events
from twitchwatch.collector.ble.errors import Disconnected
from twitchwatch.collector.ble.framing import SLEW, Framer
from twitchwatch.collector.ble.runtime import Collector
from twitchwatch.collector.ble.scan import find
from twitchwatch.collector.ble.target import DeviceTarget, Timing
from twitchwatch.collector.continuity import continuity
from twitchwatch.collector.devices import Chunk, get_profile
from twitchwatch.collector.emulate import EmulatedDevice, emulate
from twitchwatch.collector.frames import MAX_SEQUENCE, Frame, SampleType, Unit, decode
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.topics import raw_filter
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

NOW = 1_790_000_000_000_000_000
USER = "tester"
SPAN = 50_000_000


def _acc(
    first: int, n: int = 1, rate: float = 100.0, lost: int = 0, channels: int = 3, counter: int | None = None
) -> Chunk:
    """``n`` samples whose raw values count up from ``first``: a lost or repeated sample shows. ``counter``:
    the device's own frame counter (the open profile's)."""
    raw = np.arange(first, first + n, dtype=np.int16).repeat(channels).reshape(n, channels)
    return Chunk("acc", raw, 1 / 8192, Unit.G, rate, sequence=counter, lost_samples=lost)


Feed = Sequence[tuple[Chunk, int] | None]  # (chunk, arrival) or None for a reconnect


def _per_notification(feed: Feed, profile: str = "metamotion") -> list[Frame]:
    """The frames one per notification (coalescing off: what the collector sent before)."""
    framer, frames = Framer(get_profile(profile)), []
    for item in feed:
        if item is None:
            framer.mark_reconnect()
        elif (frame := framer.frame(*item)) is not None:
            frames.append(frame)
    return frames


def _coalesced(feed: Feed, span_ns: int = SPAN, profile: str = "metamotion") -> list[Frame]:
    """The same chunks coalesced as a connection does: pending runs flushed at every reconnect."""
    framer, coalescer, frames = Framer(get_profile(profile)), Coalescer(span_ns), []
    for item in feed:
        if item is None:
            frames += [framer.number(run) for run in coalescer.flush()]
            framer.mark_reconnect()
        elif (placed := framer.place(*item)) is not None:
            frames += [framer.number(run) for run in coalescer.add(placed)]
    return frames + [framer.number(run) for run in coalescer.flush()]


def _steps(frames: Sequence[Frame]) -> dict[int, tuple[str, int]]:
    """Sample index where each frame starts → how it follows the previous frame (step, frames missing)."""
    out: dict[int, tuple[str, int]] = {}
    index = 0
    for before, frame in zip([None, *frames], frames, strict=False):
        if before is not None:
            step = continuity(before.sequence, before.t0_ns + before.duration_ns, frame)
            out[index] = (step.step, min(step.missing, 1))
        index += frame.samples
    return out


def _times(frames: Sequence[Frame]) -> np.ndarray:
    return np.concatenate([f.t0_ns + np.rint(np.arange(f.samples) * 1e9 / f.sample_rate) for f in frames])


def assert_same_signal(coalesced: Sequence[Frame], reference: Sequence[Frame]) -> None:
    """What the worker reconstructs is the same: samples, rates, units, scales; each coalesced frame starts at
    a reference frame's start with its t0; every reference gap is at a coalesced frame boundary, seen the same
    way; inside a coalesced frame the reference frames all continued; and the sample times agree."""
    np.testing.assert_array_equal(
        np.concatenate([f.raw for f in coalesced]), np.concatenate([f.raw for f in reference])
    )
    starts, index = {}, 0
    for frame in reference:
        starts[index] = frame
        index += frame.samples
    index = 0
    for frame in coalesced:
        ref = starts[index]
        assert (frame.t0_ns, frame.sample_rate, frame.scale, frame.unit, frame.sample_type) == (
            ref.t0_ns,
            ref.sample_rate,
            ref.scale,
            ref.unit,
            ref.sample_type,
        )
        index += frame.samples
    ours, theirs = _steps(coalesced), _steps(reference)
    for at, step in theirs.items():
        if at in ours:
            assert ours[at] == step, f"at sample {at}"
        else:
            assert step == ("next", 0), f"a {step} at sample {at} was merged over"
    # Within a frame samples are spaced at the nominal rate; the framer's steering of a host-clocked stream
    # (at most SLEW of each chunk: collector/ble/framing.py) moves the next frame's start instead.
    slewed = SLEW * max(f.duration_ns for f in coalesced)
    assert np.abs(_times(coalesced) - _times(reference)).max() < 1_000 + slewed  # ns
    assert [f.sequence for f in coalesced][:1] == [0]


def _steady(
    n: int, rate: float = 100.0, per: int = 1, start: int = 0, t: int = NOW
) -> list[tuple[Chunk, int]]:
    """``n`` notifications of ``per`` samples arriving on time."""
    step = 1e9 / rate
    return [(_acc(start + k * per, per, rate), t + round((k + 1) * per * step)) for k in range(n)]


@pytest.mark.parametrize(("rate", "per_frame"), [(100.0, 5), (50.0, 2), (12.5, 1), (200.0, 10)])
def test_one_sample_notifications_become_frames_of_up_to_the_span(rate: float, per_frame: int) -> None:
    feed = _steady(40, rate)
    frames = _coalesced(feed)
    assert {f.samples for f in frames} == {per_frame}
    assert [f.sequence for f in frames] == list(range(len(frames)))
    assert_same_signal(frames, _per_notification(feed))


def test_chunks_longer_than_the_span_are_framed_as_before() -> None:
    feed = _steady(10, 130.0, per=73)  # a Polar PMD frame: 0.56 s
    assert _coalesced(feed) == _per_notification(feed)


def _emg(first: int, rate: float = 1000.0) -> Chunk:
    raw = np.arange(first, first + 1, dtype=np.int16).reshape(1, 1)
    return Chunk("emg", raw, 0.5, Unit.MICROVOLT, rate)


def test_motion_streams_have_their_own_span() -> None:
    """One connection, a 50-Hz accelerometer and 1-kHz EMG notifying a sample at a time: the EMG in frames of
    the span (50 ms), the accelerometer of the motion span (100 ms: five samples, not two)."""
    framer, coalescer = Framer(get_profile("open")), Coalescer(SPAN, 2 * SPAN)
    frames: list[Frame] = []
    for k in range(1000):
        t = NOW + (k + 1) * 1_000_000
        if (placed := framer.place(_emg(k), t)) is not None:
            frames += [framer.number(run) for run in coalescer.add(placed)]
        if k % 20 == 19 and (placed := framer.place(_acc(k // 20, rate=50.0), t)) is not None:
            frames += [framer.number(run) for run in coalescer.add(placed)]
    frames += [framer.number(run) for run in coalescer.flush()]
    sizes = {unit: {f.samples for f in frames if f.unit is unit} for unit in (Unit.MICROVOLT, Unit.G)}
    assert sizes == {Unit.MICROVOLT: {50}, Unit.G: {5}}
    assert coalescer.longest_ns == 2 * SPAN
    assert Coalescer(SPAN).longest_ns == SPAN  # no motion span: the span for every stream


def test_off_is_one_frame_per_notification() -> None:
    feed = _steady(12)
    assert _coalesced(feed, span_ns=0) == _per_notification(feed)


def test_a_counted_loss_mid_window_ends_the_frame_and_stays_a_gap() -> None:
    feed = [*_steady(7), (_acc(9, lost=2), NOW + 100_000_000), *_steady(5, start=10, t=NOW + 100_000_000)]
    frames = _coalesced(feed)
    assert [f.samples for f in frames] == [5, 2, 5, 1]
    assert [f.sequence for f in frames] == [0, 1, 4, 5]  # the loss: 2 samples, as many 1-sample frames
    assert_same_signal(frames, _per_notification(feed))


def test_a_device_counter_jump_mid_window_ends_the_frame_even_with_seamless_time() -> None:
    """No device time and no lost samples the decoder saw: only the counter says frames went missing."""
    counters = [0, 1, 2, 3, 4, 5, 6, 9, 10, 11]
    feed = [(_acc(k, counter=c), NOW + (k + 1) * 10_000_000) for k, c in enumerate(counters)]
    frames = _coalesced(feed)
    assert [f.samples for f in frames] == [5, 2, 3]
    assert [f.sequence for f in frames] == [0, 1, 4]
    assert_same_signal(frames, _per_notification(feed))


def test_a_reconnect_mid_window_is_flushed_and_stays_a_gap() -> None:
    later = NOW + 2_000_000_000
    feed = [*_steady(8), None, *_steady(8, start=100, t=later)]
    frames = _coalesced(feed)
    assert [f.samples for f in frames] == [5, 3, 5, 3]
    assert frames[2].sequence - frames[1].sequence > 1
    assert frames[2].t0_ns == later
    assert_same_signal(frames, _per_notification(feed))


def test_a_re_anchored_time_is_never_merged_over() -> None:
    """Samples dropped unsaid: every notification after them arrives 1.5 s past its place, at the normal
    pace. Once a second of samples came so, the framer anchors to arrival again and marks a gap: that chunk
    starts a frame of its own."""
    late = NOW + 30_000_000 + 1_500_000_000
    feed = [*_steady(3), *_steady(250, start=3, t=late)]
    frames = _coalesced(feed)
    gaps = [(a, b) for a, b in itertools.pairwise(frames) if b.sequence != a.sequence + 1]
    [(before, after)] = gaps
    assert after.t0_ns - (before.t0_ns + before.duration_ns) > 1_000_000_000
    arrival = dict((id(c), t) for c, t in feed)
    first = next(c for c, _ in feed if int(c.raw[0, 0]) == int(after.raw[0, 0]))
    assert after.t0_ns == arrival[id(first)] - 10_000_000  # anchored to its arrival
    assert_same_signal(frames, _per_notification(feed))


def test_a_rate_or_channel_change_starts_a_new_frame() -> None:
    feed = [
        *_steady(3),
        (_acc(3, rate=50.0), NOW + 50_000_000),
        (_acc(4, channels=1), NOW + 60_000_000),
        (_acc(5, channels=1), NOW + 70_000_000),
    ]
    frames = _coalesced(feed)
    assert [(f.samples, f.channels, f.sample_rate) for f in frames] == [
        (3, 3, 100.0),
        (1, 3, 50.0),
        (2, 1, 100.0),
    ]
    assert [f.sequence for f in frames] == [0, 1, 2]


def test_wrapping_sequence_numbers_stay_contiguous() -> None:
    framer, coalescer = Framer(get_profile("metamotion")), Coalescer(SPAN)
    framer.number(Run((framer.place(*_steady(1)[0]) or pytest.fail("no rate"),)))
    framer._tracks["acc"].sequence = MAX_SEQUENCE - 2  # as after some 2**32 frames
    frames = []
    for chunk, arrived in _steady(15, start=1, t=NOW + 10_000_000):
        placed = framer.place(chunk, arrived)
        assert placed is not None
        frames += [framer.number(run) for run in coalescer.add(placed)]
    assert [f.sequence for f in frames] == [MAX_SEQUENCE - 1, 0, 1]


def _placed(received_ns: int, stream: str = "acc", samples: int = 1, t0: int = NOW) -> Placed:
    raw = np.zeros((samples, 3), dtype=np.int16)
    return Placed(stream, t0, 100.0, 1.0, Unit.G, SampleType.INT16, raw, 0, received_ns)


def test_a_pending_frame_is_due_when_its_first_sample_has_waited_the_span() -> None:
    coalescer = Coalescer(SPAN)
    assert coalescer.deadline_ns() is None
    assert coalescer.add(_placed(NOW)) == []
    assert coalescer.add(_placed(NOW + 5_000_000, "gyro")) == []
    assert coalescer.add(_placed(NOW + 10_000_000, t0=NOW + 10_000_000)) == []
    assert coalescer.deadline_ns() == NOW + SPAN  # the first sample's arrival, not the latest's
    assert coalescer.due(NOW + SPAN - 1) == []
    (acc,) = coalescer.due(NOW + SPAN)
    assert (acc.stream, acc.samples) == ("acc", 2)
    assert coalescer.deadline_ns() == NOW + 5_000_000 + SPAN
    assert coalescer.pending_samples == 1


def test_flush_hands_out_everything_pending_or_one_stream() -> None:
    coalescer = Coalescer(SPAN)
    coalescer.add(_placed(NOW))
    coalescer.add(_placed(NOW, "gyro"))
    assert [r.stream for r in coalescer.flush("gyro")] == ["gyro"]
    assert [r.stream for r in coalescer.flush()] == ["acc"]
    assert coalescer.flush() == []
    assert coalescer.deadline_ns() is None


def test_a_negative_span_is_refused() -> None:
    with pytest.raises(ValueError, match="span_ns"):
        Coalescer(-1)


# ---- on the real BLE stack: emulated wearables on a Bumble virtual link, the collector's Connection --------


@dataclass
class _Tap(Framer):
    """The connection's framer, keeping the chunks it placed and the reconnects it was told of, so the same
    input can be framed once more one frame per notification for reference."""

    feed: list[tuple[Chunk, int] | None] = field(default_factory=list)

    def place(self, chunk: Chunk, received_ns: int) -> Placed | None:
        self.feed.append((chunk, received_ns))
        return super().place(chunk, received_ns)

    def mark_reconnect(self) -> None:
        self.feed.append(None)
        super().mark_reconnect()


async def _ignore(*_args: object) -> None:
    return None


@dataclass
class _Session:
    """One emulated wearable and the collector's connections to it, as ``DeviceRunner`` makes them."""

    r: Radio
    device: EmulatedDevice
    target: DeviceTarget
    span_s: float
    motion_span_s: float
    tap: _Tap
    silence_s: float = TEST_TIMING.silence_s
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    frames: list[tuple[str, Frame]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)

    async def _frame(self, stream: str, frame: Frame) -> None:
        self.frames.append((stream, frame))

    async def connect(self) -> tuple[Connection, asyncio.Task[None]]:
        found = await find(self.target, TEST_TIMING.scan_s, self.r.backend)
        assert found is not None
        self.tap.mark_reconnect()
        timing = dataclasses.replace(
            TEST_TIMING,
            frame_span_s=self.span_s,
            motion_frame_span_s=self.motion_span_s,
            silence_s=self.silence_s,
        )
        events = Events(self._frame, _ignore, _ignore, _ignore)
        connection = Connection(
            self.target, self.r.backend, timing, self.tap, events, asyncio.Lock(), self.stop_event
        )
        self.connections.append(connection)
        task = asyncio.create_task(connection.run(found))
        await wait_for(lambda: connection.stats.frames >= 3, 60, "frames flowing")
        return connection, task

    async def stop(self, task: asyncio.Task[None]) -> None:
        self.stop_event.set()
        async with asyncio.timeout(60):
            await task

    def published(self, stream: str) -> list[Frame]:
        return [f for s, f in self.frames if s == stream]

    def reference(self, stream: str) -> list[Frame]:
        feed = [item for item in self.tap.feed if item is None or item[0].stream == stream]
        return _per_notification(feed, self.target.profile.NAME)


def _pending_for_long(connection: Connection) -> bool:
    due = connection.pending_due_ns()
    return connection.pending_samples > 0 and due is not None and due - time.time_ns() > 100_000_000


@contextlib.asynccontextmanager
async def _session(
    profile: str,
    settings: dict[str, object],
    streams: tuple[str, ...],
    span_s: float,
    motion_span_s: float | None = None,
) -> AsyncIterator[_Session]:
    """``motion_span_s``: the accelerometers' and gyroscopes' span, ``span_s`` unless given."""
    async with radio() as r, await emulate(profile, r.link, seed=61) as device:
        cls = get_profile(profile)
        target = DeviceTarget("dev", cls.from_params(settings), streams, address=device.address)
        motion = span_s if motion_span_s is None else motion_span_s
        yield _Session(r, device, target, span_s, motion, _Tap(cls))


@pytest.mark.parametrize(
    ("profile", "settings", "streams", "per_frame"),
    [
        # Accelerometers and gyroscopes in frames of up to 100 ms (``motion_frame_span_s``), EMG of 50 ms.
        ("metamotion", {"odr_hz": 100}, ("acc",), 10),  # one sample per notification, unpacked
        ("thingy52", {"rate_hz": 50}, ("acc", "gyro"), 5),  # one sample of each per notification
        ("myo", {}, ("emg",), 10),  # two 8-channel samples per notification at 200 Hz, four characteristics
        ("ganglion", {}, ("emg",), 10),  # two samples per packet at 200 Hz, packet ids
    ],
)
async def test_a_small_notification_device_sends_frames_of_the_span_with_the_same_samples_and_times(
    profile: str, settings: dict[str, object], streams: tuple[str, ...], per_frame: int
) -> None:
    async with _session(profile, settings, streams, 0.05, Timing().motion_frame_span_s) as s:
        connection, task = await s.connect()
        await wait_for(lambda: sum(f.samples for _, f in s.frames) >= 400, 60, "two seconds of samples")
        await s.stop(task)
    assert connection.pending_samples == 0
    for stream in streams:
        frames, reference = s.published(stream), s.reference(stream)
        assert max(f.samples for f in frames) == per_frame
        # The emulators notify in 100-ms bursts: a burst's last frame may be short (sent when due).
        assert len(frames) <= 0.6 * len(reference) + 2
        assert_same_signal(frames, reference)


@pytest.mark.parametrize(
    ("profile", "stream"),
    [("polar-h10", "acc"), ("movesense", "acc"), ("open", "emg")],
)
async def test_devices_that_notify_a_span_or_more_send_the_frames_they_sent_before(
    profile: str, stream: str
) -> None:
    async with _session(profile, {}, (stream,), 0.05, Timing().motion_frame_span_s) as s:
        connection, task = await s.connect()
        await wait_for(lambda: sum(f.samples for _, f in s.frames) >= 200, 60, "samples")
        await s.stop(task)
    assert s.published(stream) == s.reference(stream)
    assert connection.stats.span_flushes == connection.stats.end_flushes == 0


async def test_a_drop_or_stop_mid_frame_is_flushed_and_the_reconnect_still_shows_as_a_gap() -> None:
    """A 0.23-s span: 23 samples of a 100-Hz accelerometer notified in 10-sample bursts, so samples are
    pending nearly always (the drop and the stop wait for them to be far from due)."""
    async with _session("metamotion", {"odr_hz": 100}, ("acc",), 0.23) as s:
        first, task = await s.connect()
        await wait_for(lambda: _pending_for_long(first), 30, "samples pending")
        await s.device.drop_link()
        with pytest.raises(Disconnected):
            async with asyncio.timeout(60):
                await task
        assert first.pending_samples == 0
        assert first.stats.end_flushes == 1
        second, task = await s.connect()
        await wait_for(lambda: _pending_for_long(second), 30, "samples pending")
        await s.stop(task)
        assert second.pending_samples == 0
        assert second.stats.end_flushes == 1  # stop sent what was pending
    frames, reference = s.published("acc"), s.reference("acc")
    assert_same_signal(frames, reference)
    gaps = [b for a, b in itertools.pairwise(frames) if b.sequence != a.sequence + 1]
    assert len(gaps) == 1
    assert gaps[0] is s.frames[first.stats.frames][1]  # the second connection's first frame
    assert max(f.samples for f in frames) == 23


async def test_a_stalled_device_partial_frame_goes_out_when_due_while_still_connected() -> None:
    async with _session("metamotion", {"odr_hz": 100}, ("acc",), 0.23) as s:
        connection, task = await s.connect()
        await wait_for(lambda: _pending_for_long(connection), 30, "samples pending")
        await s.device.set_silent(True)
        await wait_for(lambda: connection.pending_samples == 0, 30, "the pending frame sent when due")
        assert connection.stats.span_flushes >= 1
        assert connection.stats.end_flushes == 0
        assert not task.done()  # no disconnect, no stop: the span's timer sent it
        await s.stop(task)
    assert_same_signal(s.published("acc"), s.reference("acc"))


async def test_a_connected_device_that_stops_sending_data_is_dropped_after_the_silence_timeout() -> None:
    """Connected, but its notifications stop (another app stopped the measurement, its firmware hung): the
    connection ends as a drop does after ``silence_s``, so its runner marks it offline and reconnects,
    instead of showing it online while nothing is recorded. The partial frame still went out when due."""
    async with _session("metamotion", {"odr_hz": 100}, ("acc",), 0.23) as s:
        s.silence_s = 1.0
        connection, task = await s.connect()
        await s.device.set_silent(True)
        with pytest.raises(Disconnected, match="no data for 1 s"):
            async with asyncio.timeout(30):
                await task
        assert connection.stats.silences == 1
        assert connection.pending_samples == 0
    assert_same_signal(s.published("acc"), s.reference("acc"))


# ---- through the broker to the worker ----------------------------------------------------------------------


@pytest.mark.mosquitto
async def test_the_worker_sees_a_coalesced_stream_whole_and_a_drop_as_one_gap(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """``collect`` (the device runner, its publisher) → Mosquitto → worker, for a one-sample-per-notification
    board: frames of the motion span at the broker (10 samples at 100 Hz), no gap while it streams, exactly
    one over a dropped link."""
    per_frame = round(TEST_TIMING.motion_frame_span_s * 100)
    mqtt = parse_mqtt_url(mosquitto.url)
    at_broker: list[Frame] = []

    async def read(reader: aiomqtt.Client) -> None:
        async for message in reader.messages:
            assert isinstance(message.payload, bytes)
            at_broker.append(decode(message.payload))

    async with (
        radio() as r,
        await emulate("metamotion", r.link, seed=62) as board,
        mqtt.client("coalesce-reader") as reader,
    ):
        await reader.subscribe(raw_filter(USER), qos=1)
        reading = asyncio.create_task(read(reader))
        cls = get_profile("metamotion")
        target = DeviceTarget("meta", cls.from_params({"odr_hz": 100}), ("acc",), address=board.address)
        collector = Collector([target], mqtt, USER, backend=r.backend, timing=TEST_TIMING)
        worker = Worker(
            mqtt, SQLiteStore(tmp_path / "w.db"), user=USER, client_id="coalesce-w", flush_interval=0.2
        )
        working = asyncio.create_task(worker.run())
        collecting = asyncio.create_task(collector.run())
        try:
            await asyncio.wait_for(worker.connected.wait(), 30)
            await asyncio.wait_for(collector.started.wait(), 30)
            runner = collector.runners["meta"]
            await wait_for(lambda: worker.stats.frames >= 40, 60, "frames before the drop")
            assert worker.stats.gaps == 0
            await board.drop_link()
            await wait_for(lambda: runner.stats.connects == 2 and runner.online.is_set(), 60, "reconnected")
            before = worker.stats.frames
            await wait_for(lambda: worker.stats.frames >= before + 40, 60, "frames after the reconnect")
            collector.stop()
            await asyncio.wait_for(collecting, 60)
            await wait_for(lambda: worker.stats.frames == len(at_broker), 30, "the worker took every frame")
        finally:
            collector.stop()
            await asyncio.wait_for(collecting, 60)
            worker.stop()
            await asyncio.wait_for(working, 60)
            reading.cancel()
    assert worker.stats.gaps == 1
    assert worker.stats.duplicates == 0
    assert runner.framer.stats.gaps_marked == 1
    assert max(f.samples for f in at_broker) == per_frame
    assert sum(f.samples == per_frame for f in at_broker) >= 0.9 * len(at_broker)
    jumps = [
        b.sequence - a.sequence for a, b in itertools.pairwise(at_broker) if b.sequence != a.sequence + 1
    ]
    assert len(jumps) == 1
    assert jumps[0] > 1


@pytest.mark.parametrize("span_s", [-0.01, 0.26, float("nan")])
def test_timing_refuses_a_span_outside_0_to_a_quarter_second(span_s: float) -> None:
    with pytest.raises(ValueError, match="frame_span_s"):
        Timing(frame_span_s=span_s)
    with pytest.raises(ValueError, match="motion_frame_span_s"):
        Timing(motion_frame_span_s=span_s)
    with pytest.raises(ValueError, match="motion_span_ns"):
        Coalescer(SPAN, -1)
