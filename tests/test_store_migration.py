"""Stores written by the release before rest tracking (main at f03cbc1) open and read with this one.

The SQLite file is rebuilt from ``tests/data/store-v2-f03cbc1.sql`` (what that release's ``SQLiteStore``
wrote, dumped as text) and the InfluxDB points from ``tests/data/influx-v2-f03cbc1.lp`` (its
``event_line``/``rate_line``). Their minutes must read back with ``rest_s`` None — unknown — and be
kept apart as "before rest tracking", never counted as if the whole minute had been at rest.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.influx import InfluxServer
from twitchwatch.processing.events import EventKind, MinuteRate, RestTally, muscle_minutes
from twitchwatch.processing.journal import Factor
from twitchwatch.processing.store import EventQuery, EventStore
from twitchwatch.processing.store.influx import InfluxStore, Line
from twitchwatch.processing.store.sqlite import SQLiteStore

DATA = Path(__file__).with_name("data")
T0 = 1_700_000_040_000_000_000  # the old store's first minute
MINUTE = 60_000_000_000


def _old_sqlite(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript((DATA / "store-v2-f03cbc1.sql").read_text())
    db.close()
    return path


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """A store holding what the previous release wrote, opened by this release."""
    if request.param == "sqlite":
        with SQLiteStore(_old_sqlite(tmp_path / "old.db")) as store:
            yield store
        return
    server: InfluxServer = request.getfixturevalue("influxdb")
    database = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with InfluxStore(server.base_url, database, server.auth) as store:
            lines = (DATA / "influx-v2-f03cbc1.lp").read_text().splitlines()
            store._write_lines([Line(text) for text in lines if text and not text.startswith("#")])
            yield store
    finally:
        server.drop_database(database)


def test_old_minutes_read_back_with_rest_unknown_and_old_events_without_a_reason(
    old_store: EventStore,
) -> None:
    rates = old_store.rates(EventQuery(user="alice"))
    assert [(r.minute_ns, r.twitches, r.monitored_s, r.rest_s, r.end_s) for r in rates] == [
        (T0, 1, 60.0, None, None),
        (T0 + MINUTE, 1, 45.5, None, None),
    ]
    events = old_store.events(EventQuery(user="alice"))
    assert [(e.kind, e.reason, e.dominant_hz) for e in events] == [
        (EventKind.FASCICULATION, "", 42.5),
        (EventKind.FASCICULATION, "", 30.0),
        (EventKind.SUSTAINED, "", 3.0),
    ]


def test_old_minutes_are_counted_apart_from_new_ones_never_as_all_rest(old_store: EventStore) -> None:
    new_minute = T0 + 2 * MINUTE
    old_store.write_rates([MinuteRate("alice", "calf_left", "polar1", "live", new_minute, 2, 60.0, 30.0)])
    tally = RestTally.of(muscle_minutes(old_store.rates(EventQuery(user="alice")))["calf_left"].values())
    # The new minute alone makes the rate at rest; the two old ones are shown apart, per hour worn.
    assert (tally.twitches, tally.rest_s, tally.per_hour) == (2, 30.0, 2 * 3600 / 30)
    assert (tally.untracked_twitches, tally.untracked_worn_s) == (2, 105.5)
    assert tally.untracked_per_hour == pytest.approx(2 * 3600 / 105.5)


def test_the_old_sqlite_file_is_migrated_in_place_once(tmp_path: Path) -> None:
    path = _old_sqlite(tmp_path / "old.db")
    with SQLiteStore(path) as store:
        assert [e.factor for e in store.journal_entries(user="alice")] == [Factor.CAFFEINE]
        store.write_rates(
            [MinuteRate("alice", "calf_left", "polar1", "live", T0 + 2 * MINUTE, 0, 60.0, 59.5, 60.0)]
        )
    with SQLiteStore(path) as reopened:  # a second open changes nothing
        assert [(r.rest_s, r.end_s) for r in reopened.rates(EventQuery())] == [
            (None, None),
            (None, None),
            (59.5, 60.0),
        ]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (4,)
    assert {row[1] for row in db.execute("PRAGMA table_info(rates)")} >= {"rest_s", "end_s", "monitored_s"}
    assert {row[1] for row in db.execute("PRAGMA table_info(events)")} >= {"reason", "dominant_hz"}
    db.close()
