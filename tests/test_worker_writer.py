"""The worker's writer: events go to the store as soon as they are released, not at the next interval, and
each write carries the running tally of the minutes its twitches were counted in; the minute rates follow
a device's status when it names the muscles mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.test_worker_device_runs import RAW, STATUS, T0, _frames, _noise, _status
from twitchwatch.collector.mqtt import MqttTarget
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
