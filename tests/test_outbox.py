"""The collector's outbox: what it keeps while the broker is away, what it drops (oldest first, counted),
and how a collector's publishers close together when the broker is away at shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.bumble_bleak.harness import wait_for
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.frames import Frame, SampleType, Unit
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.outbox import LivePublisher, Message, Outbox, Reconnect, opened
from twitchwatch.collector.status import DeviceStatus

SECOND = 1_000_000_000


def _msg(i: int, t_s: float, size: int = 10) -> Message:
    return Message(f"t/{i}", bytes(size), round(t_s * SECOND))


def test_keeps_everything_within_its_span_in_order() -> None:
    box = Outbox(buffer_s=10.0)
    for i in range(11):
        assert box.put(_msg(i, i * 1.0)) == 0
    assert len(box) == 11
    assert [m.topic for m in box.take(3)] == ["t/0", "t/1", "t/2"]
    assert box.bytes == 80
    assert box.dropped == 0


def test_drops_the_oldest_beyond_its_span_and_counts_them() -> None:
    box = Outbox(buffer_s=2.0)
    dropped = [box.put(_msg(i, i * 0.5)) for i in range(10)]
    assert sum(dropped) == box.dropped == 5
    assert [m.topic for m in box.take(100)] == ["t/5", "t/6", "t/7", "t/8", "t/9"]  # 2.0 s, both ends kept


def test_drops_the_oldest_beyond_its_bytes() -> None:
    box = Outbox(buffer_s=3600.0, max_bytes=25)
    for i in range(4):
        box.put(_msg(i, i, size=10))
    assert box.dropped == 2
    assert box.bytes == 20
    assert [m.topic for m in box.take(10)] == ["t/2", "t/3"]


def test_restore_puts_an_unsent_batch_back_in_front_in_order() -> None:
    box = Outbox(buffer_s=60.0)
    for i in range(5):
        box.put(_msg(i, i))
    batch = box.take(3)
    box.put(_msg(5, 5))
    assert box.restore(batch) == 0
    assert [m.topic for m in box.take(10)] == [f"t/{i}" for i in range(6)]
    assert box.bytes == 0


def test_a_restored_batch_that_no_longer_fits_loses_its_oldest() -> None:
    box = Outbox(buffer_s=1.0)
    box.put(_msg(0, 0.0))
    box.put(_msg(1, 0.5))
    batch = box.take(2)
    box.put(_msg(2, 1.2))  # while the batch was out: now t/0 is 1.2 s older than the newest
    assert box.restore(batch) == 1
    assert [m.topic for m in box.take(10)] == ["t/1", "t/2"]


def test_a_frame_stamped_ahead_stops_counting_once_it_is_sent() -> None:
    """One frame an hour ahead of the rest (a host clock stepped back after it, a device clock that wrapped)
    is sent; the span is measured to what is still queued, not to it: 100 frames over 10 s, all kept."""
    box = Outbox(buffer_s=600.0)
    box.put(_msg(0, 3600.0))
    assert len(box.take(10)) == 1
    assert sum(box.put(_msg(i, i * 0.1)) for i in range(1, 101)) == 0
    assert len(box) == 100
    box.restore(box.take(50))  # a batch put back keeps its own times
    assert len(box) == 100
    assert box.put(_msg(101, 700.0)) == 100  # ... and the span still counts within what is queued
    assert box.dropped == 100


def test_a_single_message_is_always_kept() -> None:
    box = Outbox(buffer_s=1.0, max_bytes=5)
    assert box.put(_msg(0, 0.0, size=50)) == 0
    assert len(box) == 1


@pytest.mark.parametrize(("span", "size"), [(0.0, 10), (-1.0, 10), (1.0, 0)])
def test_bad_bounds_are_refused(span: float, size: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Outbox(buffer_s=span, max_bytes=size)


def _frame(seq: int) -> Frame:
    raw = np.zeros((50, 1), dtype=np.int16)
    return Frame(0, seq, seq * 50_000_000, 1000.0, 1.0, Unit.MICROVOLT, SampleType.INT16, raw)


def _publishers(broker: MosquittoServer, n: int, drain_s: float) -> list[LivePublisher]:
    mqtt = parse_mqtt_url(broker.url)
    return [
        LivePublisher(
            mqtt,
            "u",
            f"dev{i}",
            DeviceStatus.offline("open", "live", f"s{i}"),
            reconnect=Reconnect(drain_s=drain_s),
        )
        for i in range(n)
    ]


async def _lose_the_broker(broker: MosquittoServer, pubs: list[LivePublisher], frames_after: int) -> None:
    """A first frame each reaches the broker; then it stops and ``frames_after`` more each wait."""
    for p in pubs:
        await p.publish("emg", _frame(0))
    await wait_for(lambda: all(p.frames_sent == 1 for p in pubs), 30, "the first frames sent")
    broker.stop()
    for p in pubs:  # a publish is what finds the connection gone
        for seq in range(1, frames_after + 1):
            await p.publish("emg", _frame(seq))
    await wait_for(lambda: not any(p.connected.is_set() for p in pubs), 30, "the broker gone")


@pytest.mark.mosquitto
async def test_publishers_wait_for_the_broker_together_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three devices, the broker away at Ctrl-C: their drains overlap (one window, not three in a row), the
    wait is announced once, and what they held is delivered when the broker comes back in time."""
    broker = MosquittoServer.start(tmp_path / "broker", persistence=True)
    try:
        pubs = _publishers(broker, 3, drain_s=60)
        release = asyncio.Event()

        async def collect() -> None:
            async with opened(pubs):
                await _lose_the_broker(broker, pubs, frames_after=1)
                await release.wait()

        task = asyncio.create_task(collect())
        await wait_for(lambda: all(p.frames_waiting == 1 for p in pubs), 30, "a frame waiting on each")
        with caplog.at_level(logging.WARNING, logger="twitchwatch.collector.outbox"):
            release.set()
            await wait_for(lambda: all(p.draining for p in pubs), 30, "all three draining at once")
            broker.restart()
            await asyncio.wait_for(task, 60)
        announced = [r for r in caplog.records if "waiting up to" in r.getMessage()]
        assert len(announced) == 1
        assert "3 buffered frames from 3 device(s)" in announced[0].getMessage()
        assert [(p.frames_sent, p.frames_waiting, p.draining) for p in pubs] == [(2, 0, False)] * 3
    finally:
        broker.stop()


@pytest.mark.mosquitto
async def test_a_drain_cut_short_says_what_is_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A second Ctrl-C cancels the shutdown while the publishers wait for a broker that is away: they stop at
    once, and each logs the frames it never handed over instead of dropping them silently."""
    broker = MosquittoServer.start(tmp_path / "broker")
    try:
        pubs = _publishers(broker, 2, drain_s=600)

        async def collect() -> None:
            async with opened(pubs):
                await _lose_the_broker(broker, pubs, frames_after=2)

        with caplog.at_level(logging.ERROR, logger="twitchwatch.collector.outbox"):
            task = asyncio.create_task(collect())
            await wait_for(lambda: all(p.draining for p in pubs), 60, "both draining")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        lost = sorted(r.getMessage() for r in caplog.records if "they are lost" in r.getMessage())
        assert len(lost) == 2
        assert all("2 frames" in m and "cut short" in m for m in lost), lost
        assert not any(p.draining for p in pubs)
    finally:
        broker.stop()
