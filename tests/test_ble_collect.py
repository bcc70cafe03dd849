"""End to end over a virtual radio: emulated wearables (Bumble peripherals) → the collect runtime (bleak's
public API on the project's Bumble backend) → real Mosquitto → processing worker → SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collector.ble.runtime import Collector
from collector.ble.target import DeviceTarget
from collector.devices import get_profile
from collector.emulate import emulate
from collector.mqtt import MqttTarget, parse_mqtt_url
from collector.status import DeviceStatus
from collector.topics import Topic
from processing.events import TWITCH_KINDS
from processing.store import EventQuery
from processing.store.sqlite import SQLiteStore
from processing.worker import Worker
from tests.bumble_bleak.harness import TEST_TIMING, radio, wait_for
from tests.harness.mosquitto import MosquittoServer

pytestmark = pytest.mark.mosquitto
USER = "tester"


def _target(name: str, profile: str, address: str, muscle: str, stream: str = "acc") -> DeviceTarget:
    return DeviceTarget(
        name, get_profile(profile)(), (stream,), address=address, muscle_for=lambda _s, _c: muscle
    )


@contextlib.asynccontextmanager
async def _running(collector: Collector) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(collector.run())
    try:
        yield task
    finally:
        collector.stop()
        async with asyncio.timeout(60):
            await task


@contextlib.asynccontextmanager
async def _worker(mqtt: MqttTarget, db: Path, client_id: str) -> AsyncIterator[Worker]:
    worker = Worker(mqtt, SQLiteStore(db), user=USER, client_id=client_id, flush_interval=0.2)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.connected.wait(), 30)
    try:
        yield worker
    finally:
        worker.stop()
        async with asyncio.timeout(60):
            await task


async def _retained_status(mqtt: MqttTarget, device: str) -> DeviceStatus:
    async with mqtt.client(f"status-reader-{device}") as client:
        await client.subscribe(str(Topic(USER, device, "status")), qos=1)
        async with asyncio.timeout(30):
            async for message in client.messages:
                assert message.retain
                assert isinstance(message.payload, bytes)
                return DeviceStatus.from_json(message.payload)
    raise AssertionError("no retained status")


async def test_polar_h10_streams_into_the_store_with_status(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    mqtt = parse_mqtt_url(mosquitto.url)
    db = tmp_path / "ble.db"
    async with radio() as r, await emulate("polar-h10", r.link, rate_per_min=40, seed=3) as polar:
        collector = Collector(
            [_target("polar1", "polar-h10", polar.address, "calf_left")],
            mqtt,
            USER,
            backend=r.backend,
            timing=TEST_TIMING,
        )
        async with _worker(mqtt, db, "ble-e2e-worker") as worker, _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            runner = collector.runners["polar1"]
            await wait_for(lambda: worker.stats.events_stored >= 3, 120, "three events stored")
            status = await _retained_status(mqtt, "polar1")
            assert status.state == "online"
            assert status.profile == "polar-h10"
            assert status.source == "live"
            assert status.battery_percent == 87  # the emulated H10's Battery Level characteristic
            assert status.streams["acc"].channels == ("calf_left",) * 3
            assert status.streams["acc"].sample_rate == 200.0
            assert runner.stats.frames_published > 0
        offline = await _retained_status(mqtt, "polar1")
        assert offline.state == "offline"
        assert offline.session_id == status.session_id
        assert polar.disconnected.is_set()  # the collector hung up on shutdown
    store = SQLiteStore(db)
    events = store.events(EventQuery(user=USER, muscle="calf_left", kinds=TWITCH_KINDS))
    assert len(events) >= 3
    assert {e.source for e in events} == {"live"}
    assert {e.device for e in events} == {"polar1"}
    assert worker.stats.gaps == 0
    assert worker.stats.bad_frames == 0
