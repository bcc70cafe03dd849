"""The worker's writer: events go to the store as soon as they are released, not at the next interval, and
each write carries the running tally of the minutes its twitches were counted in; the minute rates follow
a device's status when it names the muscles mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.harness.mosquitto import MosquittoServer
from tests.test_worker_device_runs import RAW, STATUS, T0, _frames, _noise, _status
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.timeunits import MINUTE_NS
from twitchwatch.processing.worker import Worker


async def _until(condition: Callable[[], bool], what: str) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - polls the store another task writes
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), 60)  # a hang guard, not a speed assertion
    except TimeoutError:
        raise AssertionError(f"never: {what}") from None


async def test_released_events_are_stored_before_the_interval_with_their_minutes_count(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "w.db")
    # The interval is an hour: only a write on release can store anything while the test runs.
    worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u", flush_interval=3600)
    x = _noise(12, 7)
    for second in (3, 6):
        x[second * 1000 : second * 1000 + 10, 0] += 150 * np.hanning(10)
    task = asyncio.create_task(worker.run())
    try:
        worker.handle(STATUS, _status("run-a"))
        for payload in _frames(x, T0):
            worker.handle(RAW, payload)
            await asyncio.sleep(0)  # the writer runs between frames, as between MQTT messages
        await _until(lambda: len(store.events(EventQuery(user="u"))) == 2, "both twitches stored")
        minute = T0 - T0 % MINUTE_NS
        stored = store.events(EventQuery(user="u"))
        assert all(e.kind.is_twitch for e in stored)
        # The minute's running tally went with them: it counts exactly the stored twitches.
        [rate] = store.rates(EventQuery(user="u"))
        assert (rate.minute_ns, rate.twitches) == (minute, 2)
    finally:
        worker.stop()
        await task
    store.close()


async def test_without_release_writes_events_wait_for_the_interval(tmp_path: Path) -> None:
    """The control: with ``flush_on_release=False`` the same frames store nothing until the worker stops."""
    store = SQLiteStore(tmp_path / "w.db")
    worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u", flush_interval=3600, flush_on_release=False)
    x = _noise(12, 7)
    for second in (3, 6):
        x[second * 1000 : second * 1000 + 10, 0] += 150 * np.hanning(10)
    task = asyncio.create_task(worker.run())
    worker.handle(STATUS, _status("run-a"))
    for payload in _frames(x, T0):
        worker.handle(RAW, payload)
        await asyncio.sleep(0)
    await _until(lambda: len(worker._pending) == 2, "both twitches released")
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert store.events(EventQuery(user="u")) == []
    worker.stop()
    await task
    assert len(store.events(EventQuery(user="u"))) == 2
    store.close()


async def test_a_status_naming_the_muscles_mid_stream_moves_its_minutes_to_the_named_muscle(
    tmp_path: Path,
) -> None:
    """Frames before their device's status are counted under the channel's name; once the status names the
    muscle, coverage and counts go to it (the per-stream rate keys are worked out again)."""
    store = SQLiteStore(tmp_path / "w.db")
    worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
    x = _noise(12, 7)
    x[8000:8010, 0] += 150 * np.hanning(10)
    frames = _frames(x, T0)
    for payload in frames[:40]:  # 4 s unannounced
        worker.handle(RAW, payload)
    worker.handle(STATUS, _status("run-a"))
    for payload in frames[40:]:
        worker.handle(RAW, payload)
    await worker._finish()
    rates = {r.muscle: r for r in store.rates(EventQuery(user="u"))}
    store.close()
    assert set(rates) == {"dev.emg.ch0", "calf_left"}
    assert rates["dev.emg.ch0"].monitored_s == 4.0
    assert rates["calf_left"].monitored_s == 8.0
    assert rates["calf_left"].twitches == 1


@pytest.mark.mosquitto
async def test_a_broker_slow_to_acknowledge_does_not_hold_back_storing(tmp_path: Path) -> None:
    """The writer publishes what it stored on ``…/events``; the broker's acknowledgement of that comes in
    the same TCP stream as every frame queued for the worker, so a worker behind would wait for its whole
    backlog before its next store write (aiomqtt's publish waits up to 10 s, then gives up). Here the broker
    is frozen (SIGSTOP) after the worker connected: the second twitch must still be stored while it is —
    within 8 s, before aiomqtt's 10-s timeout could have freed a writer waiting for the first one's
    acknowledgement. Thawed, the broker gets both notifications before the worker disconnects."""
    broker = MosquittoServer.start(tmp_path / "broker")
    store = SQLiteStore(tmp_path / "w.db")
    worker = Worker(parse_mqtt_url(broker.url), store, user="u", flush_interval=3600, client_id="slow-ack")
    x = _noise(12, 7)
    for second in (3, 8):
        x[second * 1000 : second * 1000 + 10, 0] += 150 * np.hanning(10)
    frames = _frames(x, T0)
    task = asyncio.create_task(worker.run())
    frozen = False
    try:
        await asyncio.wait_for(worker.connected.wait(), 15)
        os.kill(broker.process.pid, signal.SIGSTOP)
        frozen = True
        worker.handle(STATUS, _status("run-a"))
        for payload in frames[:60]:  # 6 s: the first twitch, released and stored, its notification sent
            worker.handle(RAW, payload)
            await asyncio.sleep(0)
        await _until(lambda: len(store.events(EventQuery(user="u"))) == 1, "the first twitch stored")
        for payload in frames[60:]:
            worker.handle(RAW, payload)
            await asyncio.sleep(0)

        async def second_stored() -> None:
            while len(store.events(EventQuery(user="u"))) < 2:  # noqa: ASYNC110 - another task writes
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(second_stored(), 8)
        except TimeoutError:
            raise AssertionError("the second twitch waited for the broker's acknowledgement") from None
        os.kill(broker.process.pid, signal.SIGCONT)
        frozen = False
    finally:
        if frozen:
            os.kill(broker.process.pid, signal.SIGCONT)
        worker.stop()
        await task
        broker.stop()
    assert worker._unconfirmed == [], "both notifications reached the broker before the worker stopped"
    store.close()
