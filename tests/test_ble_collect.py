"""End to end over a virtual radio: emulated wearables (Bumble peripherals) → the collect runtime (bleak's
public API on the project's Bumble backend) → real Mosquitto → processing worker → SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from tests.bumble_bleak.harness import TEST_TIMING, Radio, radio, wait_for
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.cli import run_until_signal
from twitchwatch.collector.ble.runtime import Collector
from twitchwatch.collector.ble.target import DeviceTarget, Timing
from twitchwatch.collector.devices import get_profile
from twitchwatch.collector.emulate import Movement, emulate
from twitchwatch.collector.frames import Frame, Unit, decode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.outbox import LivePublisher
from twitchwatch.collector.publisher import PublishError
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.collector.topics import Topic, raw_filter
from twitchwatch.processing.events import TWITCH_KINDS
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

pytestmark = pytest.mark.mosquitto
USER = "tester"


def _target(name: str, profile: str, address: str, muscle: str, stream: str = "acc") -> DeviceTarget:
    return DeviceTarget(
        name, get_profile(profile)(), (stream,), address=address, muscle_for=lambda _s, _c: muscle
    )


def _polar_collector(
    r: Radio, name: str, address: str, muscle: str, mqtt: MqttTarget, timing: Timing = TEST_TIMING
) -> Collector:
    """``collect`` for one emulated Polar H10's accelerometer on ``muscle``."""
    return Collector(
        [_target(name, "polar-h10", address, muscle)], mqtt, USER, backend=r.backend, timing=timing
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
    mosquitto: MosquittoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="twitchwatch.collector.ble.session")
    mqtt = parse_mqtt_url(mosquitto.url)
    db = tmp_path / "ble.db"
    async with radio() as r, await emulate("polar-h10", r.link, rate_per_min=40, seed=3) as polar:
        collector = _polar_collector(r, "polar1", polar.address, "calf_left", mqtt)
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
        # …after the stop command was answered (the session waits for the device's reply to log this).
        assert any(
            r.getMessage().startswith("polar1 (polar-h10") and "streams stopped" in r.getMessage()
            for r in caplog.records
        )
        assert not polar.peripheral.streaming("acc")
    store = SQLiteStore(db)
    events = store.events(EventQuery(user=USER, muscle="calf_left", kinds=TWITCH_KINDS))
    assert len(events) >= 3
    assert {e.source for e in events} == {"live"}
    assert {e.device for e in events} == {"polar1"}
    assert worker.stats.gaps == 0
    assert worker.stats.bad_frames == 0


async def test_dropped_link_reconnects_and_the_worker_records_the_gap(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    mqtt = parse_mqtt_url(mosquitto.url)
    async with radio() as r, await emulate("polar-h10", r.link, rate_per_min=0, seed=4) as polar:
        collector = _polar_collector(r, "polar-drop", polar.address, "calf_right", mqtt)
        async with _worker(mqtt, tmp_path / "drop.db", "ble-drop-worker") as worker, _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            runner = collector.runners["polar-drop"]
            await wait_for(lambda: worker.stats.frames >= 20, 60, "frames before the drop")
            assert worker.stats.gaps == 0
            await polar.drop_link()
            await wait_for(lambda: runner.stats.drops == 1, 30, "the collector noticing the drop")
            await wait_for(lambda: runner.stats.connects == 2 and runner.online.is_set(), 60, "reconnected")
            before = worker.stats.frames
            await wait_for(lambda: worker.stats.frames >= before + 20, 60, "frames after the reconnect")
            assert worker.stats.gaps == 1
            assert worker.stats.missing_frames >= 1
            assert runner.framer.stats.gaps_marked == 1
            assert worker.stats.duplicates == 0
        status = await _retained_status(mqtt, "polar-drop")
        assert status.state == "offline"


async def test_silent_and_absent_devices_are_retried_while_the_others_stream(
    mosquitto: MosquittoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="twitchwatch.collector.ble.runtime")
    mqtt = parse_mqtt_url(mosquitto.url)
    async with (
        radio() as r,
        await emulate("polar-h10", r.link, seed=5) as silent,
        await emulate("polar-verity", r.link, seed=6) as verity,
        await emulate("polar-h10", r.link, seed=7) as other,
    ):
        await silent.set_silent(True)
        targets = [
            _target("quiet", "polar-h10", silent.address, "calf_left"),
            _target("verity", "polar-verity", verity.address, "forearm_left"),
            _target("absent", "polar-h10", "C0:00:00:00:0A:BC", "calf_right"),
            # A Polar configured as an open-profile board: it has none of that profile's characteristics.
            _target("wrong", "open", other.address, "calf_right", stream="emg"),
        ]
        collector = Collector(targets, mqtt, USER, backend=r.backend, timing=TEST_TIMING)
        async with _worker(mqtt, tmp_path / "many.db", "ble-many-worker") as worker, _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            quiet, absent = collector.runners["quiet"], collector.runners["absent"]
            await wait_for(lambda: quiet.stats.failures.get("start", 0) >= 2, 90, "two start timeouts")
            await wait_for(lambda: absent.stats.failures.get("scan", 0) >= 2, 90, "two fruitless scans")
            wrong = collector.runners["wrong"]
            await wait_for(lambda: wrong.stats.failures.get("services", 0) >= 1, 90, "the profile mismatch")
            assert "wrong (open, " in wrong.stats.last_error
            assert "Is 'open' the right profile for it?" in wrong.stats.last_error
            assert collector.runners["verity"].online.is_set()
            assert worker.stats.frames > 0
            assert "quiet (polar-h10, " in quiet.stats.last_error
            assert "start failed: no answer to the start command" in quiet.stats.last_error
            assert "switch it off and on" in quiet.stats.last_error
            assert (
                "absent (polar-h10, C0:00:00:00:0A:BC): scan failed: not seen in" in absent.stats.last_error
            )
            logged = [rec.getMessage() for rec in caplog.records]
            assert any(m.startswith("quiet (polar-h10") and "Next try in" in m for m in logged)
            await silent.set_silent(False)  # it comes back: the next attempt streams
            await wait_for(quiet.online.is_set, 60, "the once-silent device streaming")
            assert not absent.online.is_set()
        stored_devices = {f.device for f in SQLiteStore(tmp_path / "many.db").rates(EventQuery(user=USER))}
        assert {"quiet", "verity"} <= stored_devices
        assert not {"absent", "wrong"} & stored_devices


def test_sigterm_stops_collect_cleanly(mosquitto: MosquittoServer) -> None:
    """The CLI's signal wiring (``run_until_signal`` + ``Collector.run_until``) with a real SIGTERM."""
    mqtt = parse_mqtt_url(mosquitto.url)

    async def scenario(stop: asyncio.Event) -> tuple[int, bool]:
        async with radio() as r, await emulate("polar-h10", r.link, seed=9) as polar:
            collector = _polar_collector(r, "polar-sig", polar.address, "calf_left", mqtt)
            task = asyncio.create_task(collector.run_until(stop))
            await asyncio.wait_for(collector.started.wait(), 30)
            runner = collector.runners["polar-sig"]
            await wait_for(lambda: runner.stats.frames_published >= 10, 60, "frames published")
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(60):
                await task
            return runner.stats.frames_published, polar.disconnected.is_set()

    frames, hung_up = run_until_signal(scenario)
    assert frames >= 10
    assert hung_up
    status = asyncio.run(_retained_status(mqtt, "polar-sig"))
    assert status.state == "offline"


async def test_three_models_stream_at_once(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    mqtt = parse_mqtt_url(mosquitto.url)
    async with (
        radio() as r,
        await emulate("polar-h10", r.link, seed=31) as polar,
        await emulate("open", r.link, seed=32, muscles=("forearm_left",)) as board,
        await emulate("myo", r.link, seed=33, muscles=("forearm_right",)) as myo,
    ):
        targets = [
            _target("polar", "polar-h10", polar.address, "calf_left"),
            _target("board", "open", board.address, "forearm_left", stream="emg"),
            _target("myo", "myo", myo.address, "forearm_right", stream="emg"),
        ]
        collector = Collector(targets, mqtt, USER, backend=r.backend, timing=TEST_TIMING)
        async with _worker(mqtt, tmp_path / "three.db", "ble-three-worker") as worker, _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            runners = collector.runners
            await wait_for(
                lambda: all(runner.stats.frames_published >= 20 for runner in runners.values()),
                90,
                "20 frames from each device",
            )
            for name in ("polar", "board", "myo"):
                status = await _retained_status(mqtt, name)
                assert status.state == "online", name
                assert status.profile == runners[name].target.profile.NAME
            assert worker.stats.bad_frames == 0
            for runner in runners.values():
                assert runner.stats.session.notifications >= 20
                assert runner.stats.session.bad_notifications == 0
    monitored = {rate.device for rate in SQLiteStore(tmp_path / "three.db").rates(EventQuery(user=USER))}
    # Myo EMG arrives in raw ADC counts (no unit): the worker takes its detector from the status's signal.
    assert monitored == {"polar", "board", "myo"}


async def test_the_other_four_models_stream_into_the_worker(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """MetaMotion, Movesense, Ganglion and Thingy:52 through the whole runtime, each with its own start
    commands and notification framing."""
    mqtt = parse_mqtt_url(mosquitto.url)
    models = {"meta": "metamotion", "move": "movesense", "gang": "ganglion", "thingy": "thingy52"}
    streams = {"gang": "emg"}
    async with contextlib.AsyncExitStack() as stack:
        r = await stack.enter_async_context(radio())
        targets = []
        for seed, (name, profile) in enumerate(models.items(), start=41):
            muscles = (f"{name}_muscle",)
            device = await stack.enter_async_context(
                await emulate(profile, r.link, seed=seed, muscles=muscles)
            )
            targets.append(
                _target(name, profile, device.address, muscles[0], stream=streams.get(name, "acc"))
            )
        collector = Collector(targets, mqtt, USER, backend=r.backend, timing=TEST_TIMING)
        async with _worker(mqtt, tmp_path / "four.db", "ble-four-worker") as worker, _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            runners = collector.runners
            await wait_for(
                lambda: all(runner.stats.frames_published >= 20 for runner in runners.values()),
                120,
                "20 frames from each device",
            )
            for name, profile in models.items():
                status = await _retained_status(mqtt, name)
                assert (status.state, status.profile) == ("online", profile), name
            assert worker.stats.bad_frames == 0
            for runner in runners.values():
                assert runner.stats.session.bad_notifications == 0
    rates = SQLiteStore(tmp_path / "four.db").rates(EventQuery(user=USER))
    assert {rate.device for rate in rates} == set(models)
    assert {rate.muscle for rate in rates} == {f"{name}_muscle" for name in models}


async def test_gyroscopes_and_orientation_stream_to_the_broker_beside_the_accelerometer(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """The wearer moves. The Verity Sense's and the MetaMotion's gyroscope (each started with the
    accelerometer by one plan) and the Myo's gyroscope and orientation reach the broker decoded, as
    streams ``gyro`` (°/s, x y z) and ``orientation`` (unitless w x y z), and the retained status names
    their signals; the worker takes the accelerometers and leaves the movement streams alone."""
    mqtt = parse_mqtt_url(mosquitto.url)
    moving = Movement(posture_changes=20, limb_jerks=20)
    wanted = {
        ("verity", "acc"),
        ("verity", "gyro"),
        ("meta", "acc"),
        ("meta", "gyro"),
        ("myo", "gyro"),
        ("myo", "orientation"),
    }
    frames: dict[tuple[str, str], list[Frame]] = {key: [] for key in wanted}
    async with (
        radio() as r,
        await emulate("polar-verity", r.link, seed=51, movement=moving) as verity,
        await emulate("metamotion", r.link, seed=52, movement=moving) as meta,
        await emulate("myo", r.link, seed=53, movement=moving) as myo,
        mqtt.client("movement-reader") as reader,
    ):
        await reader.subscribe(raw_filter(USER), qos=1)
        targets = [
            DeviceTarget(
                "verity",
                get_profile("polar-verity")(),
                ("acc", "gyro"),
                verity.address,
                None,
                _on("calf_left"),
            ),
            DeviceTarget(
                "meta", get_profile("metamotion")(), ("acc", "gyro"), meta.address, None, _on("calf_right")
            ),
            DeviceTarget(
                "myo", get_profile("myo")(), ("gyro", "orientation"), myo.address, None, _on("forearm_left")
            ),
        ]
        collector = Collector(targets, mqtt, USER, backend=r.backend, timing=TEST_TIMING)
        async with _worker(mqtt, tmp_path / "gyro.db", "ble-gyro-worker") as worker, _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            async with asyncio.timeout(120):
                async for message in reader.messages:
                    topic = Topic.parse(str(message.topic))
                    assert isinstance(message.payload, bytes)
                    assert topic.stream is not None
                    frames.setdefault((topic.device, topic.stream), []).append(decode(message.payload))
                    if _seconds(frames, wanted) >= 10:  # past the 1.5-s lead, 40 movements a minute
                        break
            statuses = {name: await _retained_status(mqtt, name) for name in ("verity", "meta", "myo")}
            assert worker.stats.bad_frames == 0
    assert set(frames) == wanted  # nothing else was published
    for (device, stream), got in frames.items():
        values = np.concatenate([f.values() for f in got])
        info = statuses[device].streams[stream]
        assert info.signal == stream
        assert info.sample_rate == got[0].sample_rate
        if stream == "gyro":
            assert {(f.unit, f.channels) for f in got} == {(Unit.DEG_PER_S, 3)}
            assert len(info.channels) == 3
            assert np.abs(values).max() > 10.0, f"{device}: the wearer's movement is in the gyroscope"
        elif stream == "orientation":
            assert {(f.unit, f.channels) for f in got} == {(Unit.UNITLESS, 4)}
            np.testing.assert_allclose(np.linalg.norm(values, axis=1), 1.0, atol=4 / 16384)
        else:
            assert {f.unit for f in got} == {Unit.G}
    assert statuses["verity"].streams["gyro"].sample_rate == 52.0
    assert statuses["meta"].streams["gyro"].channels == ("calf_right",) * 3
    monitored = {rate.device for rate in SQLiteStore(tmp_path / "gyro.db").rates(EventQuery(user=USER))}
    assert monitored == {"verity", "meta"}  # the accelerometers; gyroscopes carry no detector yet


def _seconds(frames: dict[tuple[str, str], list[Frame]], wanted: set[tuple[str, str]]) -> float:
    """The signal time the least-filled of ``wanted`` streams holds."""
    return min(sum(f.samples / f.sample_rate for f in frames.get(key, [])) for key in wanted)


def _on(muscle: str) -> Callable[[str, int], str | None]:
    return lambda _stream, _channel: muscle


@contextlib.asynccontextmanager
async def _broker_collect(
    tmp_path: Path, r: Radio, address: str, timing: Timing
) -> AsyncIterator[tuple[MosquittoServer, Collector, Worker]]:
    """A private broker that keeps sessions over a restart (as deploy/mosquitto does), a worker and a
    collector streaming one emulated Polar H10."""
    broker = MosquittoServer.start(tmp_path / "broker", persistence=True)
    try:
        mqtt = parse_mqtt_url(broker.url)
        collector = _polar_collector(r, "polar-mq", address, "calf_left", mqtt, timing)
        async with _worker(mqtt, tmp_path / "restart.db", "ble-restart-worker") as worker:
            yield broker, collector, worker
    finally:
        broker.stop()


async def _broker_away(broker: MosquittoServer, pub: LivePublisher, frames: int) -> None:
    """Stop the broker until ``frames`` more frames have been queued, then start it again."""
    broker.stop()
    await wait_for(lambda: not pub.connected.is_set(), 30, "the publisher noticing the broker is gone")
    queued = pub.frames_queued
    await wait_for(lambda: pub.frames_queued >= queued + frames, 60, "frames queued while the broker is away")
    assert pub.frames_waiting > 0
    broker.restart()


async def test_a_broker_restart_loses_no_frames(tmp_path: Path) -> None:
    async with (
        radio() as r,
        await emulate("polar-h10", r.link, rate_per_min=0, seed=41) as polar,
        _broker_collect(tmp_path, r, polar.address, TEST_TIMING) as (broker, collector, worker),
    ):
        async with _running(collector) as task:
            await asyncio.wait_for(collector.started.wait(), 30)
            runner = collector.runners["polar-mq"]
            pub = runner.publisher
            await wait_for(lambda: worker.stats.frames >= 10, 60, "frames before the broker goes")
            await _broker_away(broker, pub, 20)
            await wait_for(lambda: pub.reconnects == 1, 60, "the publisher reconnecting")
            await wait_for(lambda: pub.frames_waiting == 0, 60, "the backlog delivered")
            assert not task.done()  # collect kept running through it ...
            assert runner.stats.connects == 1
            assert runner.stats.drops == 0
        published = runner.stats.frames_published
        assert pub.frames_dropped == 0
        assert pub.frames_sent >= published
        await wait_for(lambda: worker.stats.frames == published, 60, "every frame at the worker")
        assert worker.stats.gaps == 0
        assert worker.stats.missing_frames == 0
        assert (await _retained_status(parse_mqtt_url(broker.url), "polar-mq")).state == "offline"


async def test_a_broker_away_longer_than_the_buffer_costs_a_counted_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timing = dataclasses.replace(TEST_TIMING, broker_buffer_s=0.5)
    caplog.set_level(logging.WARNING, logger="twitchwatch.collector.outbox")
    async with (
        radio() as r,
        await emulate("polar-h10", r.link, rate_per_min=0, seed=42) as polar,
        _broker_collect(tmp_path, r, polar.address, timing) as (broker, collector, worker),
    ):
        async with _running(collector):
            await asyncio.wait_for(collector.started.wait(), 30)
            runner = collector.runners["polar-mq"]
            pub = runner.publisher
            await wait_for(lambda: worker.stats.frames >= 10, 60, "frames before the broker goes")
            await _broker_away(broker, pub, 40)
            assert pub.frames_dropped > 0
            await wait_for(lambda: pub.frames_waiting == 0 and pub.reconnects == 1, 60, "the rest delivered")
        published, dropped = runner.stats.frames_published, pub.frames_dropped
        await wait_for(
            lambda: worker.stats.frames + worker.stats.missing_frames == published, 60, "frames or gaps"
        )
        assert worker.stats.gaps == 1
        assert worker.stats.missing_frames == dropped
    assert "raise [collect] broker_buffer to keep more" in caplog.text
    assert "buffering frames" in caplog.text


async def test_an_unreachable_broker_at_the_start_is_a_clear_error(tmp_path: Path) -> None:
    broker = MosquittoServer.start(tmp_path / "broker")
    mqtt = parse_mqtt_url(broker.url)
    broker.stop()
    async with radio() as r, await emulate("polar-h10", r.link, seed=43) as polar:
        collector = _polar_collector(r, "polar-mq", polar.address, "calf_left", mqtt)
        with pytest.raises(
            PublishError, match=r"cannot connect to MQTT broker mqtt://127\.0\.0\.1:\d+: .+ is it"
        ):
            async with asyncio.timeout(60):
                await collector.run()
        assert not collector.runners
        assert not polar.connected.is_set()
