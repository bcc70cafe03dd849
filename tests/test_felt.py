""" "I felt that": the marks' payloads, their comparison with detections, and the three ways in — the CLI,
MQTT into the worker (the harness Mosquitto, SQLite and InfluxDB), and (tests/test_dashboard_*.py) the
Live page's button."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from pathlib import Path

import pytest

from tests.harness.mosquitto import MosquittoServer
from tests.test_worker_rest import until
from twitchwatch.cli import main
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.topics import TopicError, felt_filter, felt_topic, felt_user
from twitchwatch.processing.events import EventKind, TwitchEvent
from twitchwatch.processing.felt import (
    FELT_AFTER_S,
    FELT_BEFORE_S,
    FeltError,
    compare_by_muscle,
    compare_felt,
    felt_entry,
)
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import EventStore
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

S = 1_000_000_000
T0 = 1_700_000_000 * S


def twitch(muscle: str, t_s: float, kind: EventKind = EventKind.FASCICULATION) -> TwitchEvent:
    t = T0 + round(t_s * S)
    return TwitchEvent("me", muscle, "d", "emg", 0, kind, t, t + 10_000_000, 40.0, "µV", 0.9)


def mark(t_s: float, muscle: str = "") -> JournalEntry:
    return JournalEntry("me", T0 + round(t_s * S), Factor.FELT, muscle=muscle)


# ---- payloads -------------------------------------------------------------------------------------
def test_the_felt_topic_is_one_level_under_the_user() -> None:
    assert felt_topic("alice") == "twitchwatch/alice/felt"
    assert felt_filter() == "twitchwatch/+/felt"
    assert felt_user("twitchwatch/alice/felt") == "alice"
    assert felt_user("twitchwatch/alice/dev/status") is None
    with pytest.raises(TopicError, match="user"):
        felt_user("twitchwatch/al ice/felt")


@pytest.mark.parametrize(
    ("payload", "muscle", "time_ns"),
    [
        (b"", "", T0),
        (b"{}", "", T0),
        (b"PRESS", "", T0),  # a Home Assistant MQTT button's default payload
        (b'{"muscle": "calf_left"}', "calf_left", T0),
        (b'{"at": 1700000000.25}', "", T0 + S // 4),
        (b'{"muscle": "calf_left", "at": "2023-11-14T22:13:20.5Z"}', "calf_left", T0 + S // 2),
        (b'{"at": "2023-11-14T23:13:20+01:00"}', "", T0),
    ],
)
def test_a_payload_gives_a_felt_entry(payload: bytes, muscle: str, time_ns: int) -> None:
    entry = felt_entry("me", payload, received_ns=T0)
    assert (entry.factor, entry.muscle, entry.time_ns, entry.user) == (Factor.FELT, muscle, time_ns, "me")


def test_a_redelivered_mark_with_its_time_keeps_its_id_and_one_without_gets_a_new_one() -> None:
    timed = b'{"muscle": "calf_left", "at": 1700000000}'
    assert felt_entry("me", timed, T0).entry_id == felt_entry("me", timed, T0 + S).entry_id
    assert felt_entry("me", b"{}", T0).entry_id != felt_entry("me", b"{}", T0).entry_id


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b"[1, 2]", "(payload)"),
        (b"hello", "(payload)"),
        (b'{"where": "calf"}', "where"),
        (b'{"muscle": 3}', "muscle"),
        (b'{"muscle": "calf left"}', "muscle"),
        (b'{"at": "yesterday"}', "at"),
        (b'{"at": "2023-11-14T22:13:20"}', "at"),  # no offset: the worker cannot know the zone
        (b'{"at": true}', "at"),
        (b'{"at": 1e300}', "at"),
        # Past 2100 (and past 64-bit ns in 2262): the store refused it, and the worker retried it forever,
        # its checkpoints held back meanwhile.
        (b'{"at": 9999999999}', "at"),
        (b'{"at": "2262-04-12T00:00:00Z"}', "at"),
        (b'{"at": "1969-12-31T23:59:59Z"}', "at"),
        (b'{"at": 1' + b"0" * 400 + b"}", "at"),  # an int no float holds: OverflowError, untyped
        # Nesting json.loads recursed into until RecursionError, where the worker reads its messages: it
        # stopped, and the unacknowledged mark stopped every restart the same way.
        (b"[" * 100_000 + b"]" * 100_000, "(payload)"),
        (b'{"muscle": "' + b"a" * 5000 + b'"}', "(payload)"),  # no mark is 4 KiB
    ],
)
def test_a_bad_payload_names_the_key(payload: bytes, key: str) -> None:
    with pytest.raises(FeltError) as err:
        felt_entry("me", payload, T0)
    assert err.value.key == key


# ---- comparison -----------------------------------------------------------------------------------
def test_a_detection_is_near_a_mark_from_ten_seconds_before_to_two_after() -> None:
    assert (FELT_BEFORE_S, FELT_AFTER_S) == (10.0, 2.0)
    detections = [twitch("calf", t) for t in (100.0, 89.9, 200.0, 212.1)] + [twitch("calf", 300)]
    marks = [mark(100.0), mark(110.0), mark(210.0), mark(400.0)]
    c = compare_felt(marks, detections)
    # 100 s: the twitch at 100 (and 89.9 is 10.1 s before: too early); 110 s: 100 is exactly 10 s before;
    # 210 s: 200 is 10 s before, 212.1 is 2.1 s after; 400 s: nothing.
    assert (c.felt, c.felt_near) == (4, 3)
    assert (c.detections, c.detections_near) == (5, 2)  # the twitches at 100 and 200
    assert "3 of 4 felt twitch(es)" in c.words()


def test_a_mark_naming_a_muscle_matches_only_its_twitches_one_naming_none_any() -> None:
    detections = [
        twitch("calf", 50.0),
        twitch("neck", 100.0),
        twitch("calf", 105.0, EventKind.DURING_MOVEMENT),
    ]
    marks = [mark(101.0, "calf"), mark(51.0, "neck"), mark(101.0)]
    overall = compare_felt(marks, detections)
    assert (overall.felt, overall.felt_near) == (3, 1)  # only the unnamed mark finds the neck's twitch
    calf = compare_felt(marks, detections, "calf")
    assert (calf.felt, calf.felt_near, calf.detections) == (
        2,
        0,
        1,
    )  # a twitch during movement is no detection
    rows = compare_by_muscle(marks, detections)
    assert [r.muscle for r in rows] == ["", "calf", "neck"]


def test_chance_is_what_a_marks_detection_rate_would_give_anyway() -> None:
    """One twitch a minute around a mark: a 12-s window catches one by chance 1 - e^(-0.2) of the time."""
    detections = [twitch("calf", t) for t in range(0, 1201, 60)]
    c = compare_felt([mark(600.0 + 30)], detections)
    assert c.chance == pytest.approx(1 - math.exp(-(20 / 1200) * 12), rel=1e-6)  # 20 in the 20 min around
    assert compare_felt([], detections).words() == "No twitch was marked as felt."


# ---- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def db(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "tw.db"
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("TWITCHWATCH_USER", "alice")
    return path


def test_felt_from_the_command_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SQLiteStore(db) as store:
        store.write_events([dataclasses.replace(twitch("forearm_left", 0), user="alice")])
    before = time.time_ns()
    assert main(["felt", "--muscle", "calf_left", "--at", "30s"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("marked a felt twitch on calf_left at ")
    assert "nothing was detected on calf_left yet" in err  # a typo or a muscle never watched: said so
    assert main(["felt"]) == 0
    assert capsys.readouterr().out.startswith("marked a felt twitch at ")
    with SQLiteStore(db) as store:
        entries = store.journal_entries(user="alice")
    assert [(e.factor, e.muscle) for e in entries] == [(Factor.FELT, "calf_left"), (Factor.FELT, "")]
    assert before - 31 * S <= entries[0].time_ns <= before - 29 * S
    assert main(["journal", "list", "--json"]) == 0
    assert [json.loads(line)["factor"] for line in capsys.readouterr().out.splitlines()] == ["felt", "felt"]


def test_felt_with_a_bad_muscle_name_says_so(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["felt", "--muscle", "calf left"]) == 2
    assert "--muscle 'calf left' must be" in capsys.readouterr().err


# ---- MQTT into the worker -------------------------------------------------------------------------
@pytest.mark.mosquitto
async def test_felt_marks_published_on_mqtt_are_stored_by_the_worker(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    target = parse_mqtt_url(mosquitto.url)
    worker = Worker(target, store, user="alice", client_id="felt-worker", flush_interval=0.2)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.connected.wait(), 15)
    timed = json.dumps({"muscle": "calf_left", "at": "2026-12-01T10:00:05Z"}).encode()
    sent_ns = time.time_ns()
    async with target.client() as client:
        await client.publish(felt_topic("alice"), timed, qos=1)
        await client.publish(felt_topic("alice"), timed, qos=1)  # the same mark again: stored once
        await client.publish(felt_topic("alice"), b"PRESS", qos=1)  # Home Assistant's default payload
        await client.publish(felt_topic("alice"), b'{"muscle": "calf left"}', qos=1)  # refused, counted
        await client.publish(felt_topic("alice"), b"[" * 100_000 + b"]" * 100_000, qos=1)  # refused too
        await client.publish(felt_topic("bob"), b"{}", qos=1)  # not this worker's user
    await until(lambda: worker.stats.felt_marks + worker.stats.bad_felt >= 5, 30)
    worker.stop()
    await asyncio.wait_for(task, 30)
    assert (worker.stats.felt_marks, worker.stats.bad_felt) == (3, 2)
    entries = store.journal_entries(user="alice")
    assert len(entries) == 2
    assert entries[0].muscle == "calf_left"
    assert entries[0].time_ns == 1796119205 * S  # 2026-12-01T10:00:05Z
    assert entries[1].muscle == ""
    assert sent_ns - S <= entries[1].time_ns <= time.time_ns()  # stamped when the worker got it
    assert store.journal_entries(user="bob") == []


async def test_a_mark_delivered_again_after_a_worker_died_is_stored_once(store: EventStore) -> None:
    """RabbitMQ hands a worker's unacknowledged messages to the next one, marked redelivered. A mark with
    no time of its own gets the time it arrives, hence a new id, and one the dead worker had stored was
    stored twice (a SIGKILL after the store write, before the acknowledgement). Redelivered, a mark of the
    same muscle stored in the minutes before is taken for it; a fresh press is stored as ever."""
    from twitchwatch.collector.mqtt import MqttTarget

    worker = Worker(MqttTarget("127.0.0.1", 1), store, client_id="felt-redelivered")
    press = json.dumps({"muscle": "calf_left"}).encode()
    worker.handle(felt_topic("alice"), press)  # the first worker's: stored, then it died unacknowledged
    await asyncio.gather(*worker._felt_writes)
    worker.handle(felt_topic("alice"), press, redelivered=True)  # the same, to the next worker
    await asyncio.gather(*worker._felt_writes)
    assert len(store.journal_entries(user="alice")) == 1
    worker.handle(felt_topic("alice"), json.dumps({"muscle": "calf_right"}).encode(), redelivered=True)
    worker.handle(felt_topic("alice"), press)  # pressed again: a new mark
    await asyncio.gather(*worker._felt_writes)
    assert [e.muscle for e in store.journal_entries(user="alice")] == ["calf_left", "calf_right", "calf_left"]
