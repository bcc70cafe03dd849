"""The worker's periodic flag task and Home Assistant discovery, against the harness's real Mosquitto
and a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import zoneinfo
from pathlib import Path

import pytest

from tests.harness import free_port
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.cli import flag_task_from
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.config import load_settings
from twitchwatch.processing.events import MinuteRate
from twitchwatch.processing.flags import FlagKind, FlagRules, FlagSet, flags_topic
from twitchwatch.processing.homeassistant import flag_state_topic, rate_messages, rate_state_topic
from twitchwatch.processing.localtime import day_end_ns, day_of, day_start_ns, to_ns
from twitchwatch.processing.periodic import FlagTask, HaDiscovery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def seed(store: SQLiteStore, now_ns: int) -> None:
    """21 days, worn 00-24 UTC: calf_left twitching 4/h every day, control_arm never; then the last
    30 minutes of calf_left at one twitch a minute, at rest half of each minute (120/h at rest), for the
    Home Assistant rate."""
    today = day_of(now_ns)
    last_minute = now_ns - now_ns % MINUTE
    rates = []
    for back in range(20, 0, -1):
        start = day_start_ns(today - dt.timedelta(days=back))
        for minute in range(24 * 60):
            t = start + minute * MINUTE
            if t >= last_minute - 60 * MINUTE:
                continue  # in the first hour of a day, yesterday's end would fall in Home Assistant's hour
            rates.append(
                MinuteRate("alice", "calf_left", "dev1", "live", t, int(minute % 15 == 0), 60.0, 60.0)
            )
            rates.append(MinuteRate("alice", "control_arm", "dev2", "live", t, 0, 60.0, 60.0))
    for k in range(1, 31):
        rates.append(
            MinuteRate("alice", "calf_left", "dev1", "live", last_minute - k * MINUTE, 1, 60.0, 30.0)
        )
    store.write_rates(rates)


async def collect_retained(target: MqttTarget, topics: list[str], seconds: float) -> dict[str, str]:
    """The retained payload of every topic in ``topics``; waits up to ``seconds`` for all of them."""
    got: dict[str, str] = {}
    async with target.client() as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)

        async def read() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                got[str(message.topic)] = payload.decode()
                if all(t in got for t in topics):
                    return

        with contextlib.suppress(TimeoutError):  # the asserts that follow say which topic is missing
            await asyncio.wait_for(read(), seconds)
    return got


@pytest.mark.mosquitto
async def test_worker_computes_stores_and_publishes_retained_flags_and_ha_discovery(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    target = parse_mqtt_url(mosquitto.url)
    store = SQLiteStore(tmp_path / "events.db")
    seed(store, time.time_ns())
    task_config = FlagTask(
        FlagRules(stale_after_s=30),
        interval_s=3600,
        devices=("dev1",),
        ha=HaDiscovery(prefix="hatest", interval_s=3600),
    )
    worker = Worker(target, store, user="alice", client_id="flags-worker", flags=task_config)
    worker.started_ns -= 60 * 1_000_000_000  # watching for a minute, and dev1 has said nothing
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 30)
        await asyncio.wait_for(worker.flags_computed.wait(), 120)
        stored = store.current_flags("alice")
        assert stored is not None
        assert stored.computed_by == "worker"
        assert [(f.kind, f.muscle or f.device) for f in stored.flags] == [
            (FlagKind.PERSISTENT, "calf_left"),
            (FlagKind.STALE_SENSOR, "dev1"),
        ]
        ha_topics = [
            "hatest/sensor/twitchwatch_alice/calf_left_rate/config",
            "hatest/sensor/twitchwatch_alice/control_arm_rate/config",
            *(f"hatest/binary_sensor/twitchwatch_alice/{k.value}/config" for k in FlagKind),
            rate_state_topic("alice", "calf_left"),
            f"{rate_state_topic('alice', 'calf_left')}/attributes",
            rate_state_topic("alice", "control_arm"),
            flag_state_topic("alice", FlagKind.PERSISTENT),
            flag_state_topic("alice", FlagKind.RISING),
            f"{flag_state_topic('alice', FlagKind.PERSISTENT)}/attributes",
        ]
        # A client that connects after the fact still gets everything: it is all retained.
        got = await collect_retained(target, [flags_topic("alice"), *ha_topics], 60)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 60)
        store.close()
    assert FlagSet.from_json(got[flags_topic("alice")]) == stored
    for topic in ha_topics:
        assert topic in got, topic
    rate_cfg = json.loads(got["hatest/sensor/twitchwatch_alice/calf_left_rate/config"])
    assert rate_cfg["state_topic"] == rate_state_topic("alice", "calf_left")
    assert rate_cfg["unit_of_measurement"] == "twitches/h"
    flag_cfg = json.loads(got["hatest/binary_sensor/twitchwatch_alice/persistent/config"])
    assert flag_cfg["state_topic"] == flag_state_topic("alice", FlagKind.PERSISTENT)
    assert got[rate_state_topic("alice", "calf_left")] == "120.0"  # 30 twitches in 15 min at rest
    assert json.loads(got[f"{rate_state_topic('alice', 'calf_left')}/attributes"]) == {
        "twitches_at_rest": 30,
        "hours_at_rest": 0.25,
        "hours_worn": 0.5,
        "window_h": 1.0,
    }
    assert rate_cfg["json_attributes_topic"] == f"{rate_state_topic('alice', 'calf_left')}/attributes"
    assert got[rate_state_topic("alice", "control_arm")] == "None"  # not worn in the last hour
    assert got[flag_state_topic("alice", FlagKind.PERSISTENT)] == "ON"
    assert got[flag_state_topic("alice", FlagKind.RISING)] == "OFF"
    attributes = json.loads(got[f"{flag_state_topic('alice', FlagKind.PERSISTENT)}/attributes"])
    assert attributes["where"] == ["calf_left"]
    assert "persistent" in attributes["details"][0]
    assert worker.stats.flag_errors == 0
    assert worker.stats.flags_published >= 1


async def test_flags_computed_while_the_broker_is_unreachable_are_stored_and_the_worker_stops_cleanly(
    tmp_path: Path,
) -> None:
    target = MqttTarget("127.0.0.1", free_port())  # nothing listens there
    store = SQLiteStore(tmp_path / "events.db")
    seed(store, time.time_ns())
    worker = Worker(target, store, user="alice", flags=FlagTask(FlagRules(), interval_s=3600))
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.flags_computed.wait(), 120)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 60)
    stored = store.current_flags("alice")
    store.close()
    assert stored is not None
    assert [f.kind for f in stored.flags] == [FlagKind.PERSISTENT]
    assert worker.stats.flags_published == 0


def test_flag_users_include_the_configured_and_the_seen(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "e.db") as store:
        worker = Worker(
            MqttTarget("127.0.0.1", 1), store, user="+", flags=FlagTask(FlagRules(), users=("bob",))
        )
        assert worker.flag_users() == ["bob"]
        worker._last_frame_wall[("carol", "dev9")] = 1
        assert worker.flag_users() == ["bob", "carol"]


async def test_configured_devices_are_watched_for_the_configured_user_only(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "e.db") as store:
        task = FlagTask(FlagRules(stale_after_s=30), devices=("polar1",), users=("bob",))
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="+", flags=task)
        worker.started_ns -= 60 * 1_000_000_000  # watching for a minute, and polar1 has said nothing
        worker._last_frame_wall[("carol", "dev9")] = time.time_ns()
        await worker.compute_flags_once(task)
        bob, carol = store.current_flags("bob"), store.current_flags("carol")
    assert bob is not None
    assert carol is not None
    assert [(f.kind, f.device) for f in bob.flags] == [(FlagKind.STALE_SENSOR, "polar1")]
    assert carol.flags == ()


@pytest.mark.mosquitto
async def test_a_muscle_that_appears_later_gets_its_discovery_config(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    target = parse_mqtt_url(mosquitto.url)
    store = SQLiteStore(tmp_path / "events.db")
    task_config = FlagTask(FlagRules(), interval_s=3600, ha=HaDiscovery(prefix="hanew", interval_s=0.2))
    worker = Worker(target, store, user="bob", client_id="flags-worker-ha", flags=task_config)
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.flags_computed.wait(), 60)
        first = await collect_retained(target, ["hanew/binary_sensor/twitchwatch_bob/rising/config"], 30)
        assert "hanew/binary_sensor/twitchwatch_bob/rising/config" in first  # no muscle yet, flags already
        now = time.time_ns()
        minute = now - now % MINUTE - MINUTE
        store.write_rates([MinuteRate("bob", "neck", "dev7", "live", minute, 3, 60.0, 60.0)])
        topics = ["hanew/sensor/twitchwatch_bob/neck_rate/config", rate_state_topic("bob", "neck")]
        got = await collect_retained(target, topics, 60)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 60)
        store.close()
    assert json.loads(got[topics[0]])["name"] == "neck twitch rate at rest"
    assert got[topics[1]] == "180.0"  # 3 twitches in one monitored minute


async def test_the_worker_counts_flag_days_in_its_zone(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three weeks of twitching at 23:30 New York time, up to yesterday: the worker's flag days are the
    New York dates (in UTC each is a day later), with the zone the settings give the task."""
    monkeypatch.setenv("TWITCHWATCH_TIMEZONE", "America/New_York")
    monkeypatch.setenv("TWITCHWATCH_USER", "alice")
    task = flag_task_from(load_settings())
    zone = zoneinfo.ZoneInfo("America/New_York")
    assert task.tz == zone
    today = day_of(time.time_ns(), zone)
    evenings = [today - dt.timedelta(days=back) for back in range(21, 0, -1)]
    rates = []
    for day in evenings:
        start = to_ns(dt.datetime.combine(day, dt.time(21), tzinfo=zone))
        for t in range(start, day_end_ns(day, zone), MINUTE):
            n = 6 if t == start + 150 * MINUTE else 0  # 23:30
            rates.append(MinuteRate("alice", "calf_left", "dev1", "live", t, n, 60.0, 60.0))
    with SQLiteStore(tmp_path / "e.db") as store:
        store.write_rates(rates)
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="alice", flags=task)
        await worker.compute_flags_once(task)
        stored = store.current_flags("alice")
    assert stored is not None
    [flag] = stored.flags
    assert flag.kind is FlagKind.PERSISTENT
    assert flag.days == tuple(evenings)


def test_home_assistant_rate_is_at_rest_and_minutes_before_rest_tracking_stay_apart() -> None:
    now = 1_700_000_000_000_000_000 // MINUTE * MINUTE
    recent = [
        MinuteRate("alice", "calf_left", "dev1", "live", now - 3 * MINUTE, 2, 60.0, 20.0),
        MinuteRate("alice", "calf_left", "dev1", "live", now - 2 * MINUTE, 9, 60.0, None),  # an old row
        MinuteRate("alice", "neck", "dev2", "live", now - 2 * MINUTE, 4, 60.0, None),
    ]
    messages = {m.topic: m.payload for m in rate_messages("alice", ["calf_left", "neck"], recent)}
    assert messages[rate_state_topic("alice", "calf_left")] == "360.0"  # 2 in 20 s at rest; the 9 apart
    assert json.loads(messages[f"{rate_state_topic('alice', 'calf_left')}/attributes"]) == {
        "twitches_at_rest": 2,
        "hours_at_rest": round(20 / 3600, 3),
        "hours_worn": round(120 / 3600, 3),
        "window_h": 1.0,
        "before_rest_tracking": {"twitches": 9, "hours_worn": round(60 / 3600, 3)},
    }
    assert messages[rate_state_topic("alice", "neck")] == "None"  # never counted as all-rest
