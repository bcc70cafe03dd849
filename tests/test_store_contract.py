"""The ``EventStore`` contract, run against every backend: SQLite (a real file) and a real InfluxDB."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.harness import free_port
from tests.harness.influx import InfluxServer
from twitchwatch.processing.events import EventKind, MinuteRate, Source, TwitchEvent
from twitchwatch.processing.flags import Flag, FlagKind, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import (
    EventQuery,
    EventStore,
    HourCount,
    InfluxAuth,
    InfluxSpec,
    QueryError,
    SQLiteSpec,
    StoreError,
    StoreUrlError,
    open_store,
    parse_store_url,
)
from twitchwatch.processing.store.influx import (
    Dialect,
    InfluxStore,
    dialect_for_version,
    escape_tag,
    quote_field_string,
    quote_literal,
)
from twitchwatch.processing.store.sqlite import SQLiteStore

HOUR = 3_600_000_000_000
MINUTE = 60_000_000_000
T0 = 1_780_000_000 * 1_000_000_000 // HOUR * HOUR  # an exact UTC hour in 2026


def event(
    start_ns: int,
    muscle: str = "calf_left",
    *,
    kind: EventKind = EventKind.FASCICULATION,
    user: str = "alice",
    device: str = "polar1",
    source: Source = "live",
    amplitude: float = 0.125,
    session_id: str = "s1",
) -> TwitchEvent:
    return TwitchEvent(
        user=user,
        muscle=muscle,
        device=device,
        stream="acc",
        channel=0,
        kind=kind,
        start_ns=start_ns,
        end_ns=start_ns + 80_000_000,
        amplitude=amplitude,
        unit="mg",
        confidence=0.9,
        source=source,
        session_id=session_id,
    )


def rate(minute_ns: int, muscle: str = "calf_left", *, user: str = "alice", twitches: int = 3) -> MinuteRate:
    return MinuteRate(user, muscle, "polar1", "live", minute_ns, twitches, 60.0, 60.0)


def fresh_db() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


# --- round trips and idempotence ------------------------------------------------------------------


def test_empty_store(store: EventStore) -> None:
    q = EventQuery()
    assert store.events(q) == []
    assert store.rates(q) == []
    assert store.hourly_twitch_counts(q) == []
    assert store.muscles() == []
    assert store.muscles("alice") == []


def test_sqlite_store_from_before_dominant_hz_is_migrated_in_place(tmp_path: Path) -> None:
    """A version-1 file (no dominant_hz column) opens, keeps its events with the frequency unknown, and
    takes new events with one."""
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE events (user TEXT NOT NULL, muscle TEXT NOT NULL, device TEXT NOT NULL,"
        " source TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, stream TEXT NOT NULL,"
        " channel INTEGER NOT NULL, kind TEXT NOT NULL, amplitude REAL NOT NULL, unit TEXT NOT NULL,"
        " confidence REAL NOT NULL, session_id TEXT NOT NULL,"
        " PRIMARY KEY (user, muscle, device, source, start_ns)) WITHOUT ROWID;"
        "PRAGMA user_version = 1;"
    )
    old = event(T0)
    db.execute(
        "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            old.user,
            old.muscle,
            old.device,
            old.source,
            old.start_ns,
            old.end_ns,
            old.stream,
            old.channel,
            old.kind.value,
            old.amplitude,
            old.unit,
            old.confidence,
            old.session_id,
        ),
    )
    db.commit()
    db.close()
    new = replace(old, start_ns=T0 + MINUTE, end_ns=T0 + MINUTE + 1, dominant_hz=120.0)
    with SQLiteStore(path) as migrated:
        migrated.write_events([new])
        assert migrated.events(EventQuery()) == [old, new]
        assert old.dominant_hz is None
    with SQLiteStore(path) as reopened:  # migrating twice is a no-op
        assert reopened.events(EventQuery()) == [old, new]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone() == (4,)


def test_events_round_trip_every_field(store: EventStore) -> None:
    alice = event(T0, amplitude=0.1 + 0.2, session_id="sess-1")
    events = [
        replace(alice, channel=2, end_ns=T0 + 1, confidence=1.0, dominant_hz=0.1 + 0.2),
        replace(
            alice,
            user="",
            device="",
            muscle="forearm",
            stream="emg\nraw",
            channel=7,
            unit="µV",
            kind=EventKind.ARTIFACT,
            start_ns=T0 + 5,
            end_ns=T0 + 5,
            amplitude=-1e-300,
            confidence=0.0,
            source="replay",
            session_id="",
            dominant_hz=187.5,
        ),
        replace(
            alice,
            user="bob",
            device="myo1",
            stream='a "quoted" \\ stream',
            unit="",
            kind=EventKind.MYOCLONIC_JERK,
            start_ns=T0 + HOUR,
            end_ns=T0 + HOUR + 10**12,
            amplitude=12345678.5,
            confidence=0.5,
            session_id="x",
        ),
        event(T0 + 2 * HOUR, kind=EventKind.SUSTAINED, amplitude=3.0),
        replace(
            event(T0 + 3 * HOUR, kind=EventKind.DURING_MOVEMENT),
            reason='fasciculation: walking 12.5 s on "polar1"\nacc',
        ),
    ]
    store.write_events(events)
    assert store.events(EventQuery()) == events


def test_rates_round_trip(store: EventStore) -> None:
    rates = [
        MinuteRate("alice", "calf_left", "polar1", "live", T0, 4, 59.25, 41.125, 59.75),
        MinuteRate("alice", "forearm", "myo1", "replay", T0, 0, 0.0, 0.0, 0.0),
        MinuteRate("alice", "neck", "myo1", "live", T0, 3, 60.0, None),  # rest and end unknown
        MinuteRate("", "calf_left", "", "live", T0 + MINUTE, 2**40, 60.0, 60.0),
    ]
    store.write_rates(rates)
    assert store.rates(EventQuery()) == rates


def test_rewriting_an_event_stores_it_once_and_the_later_write_wins(store: EventStore) -> None:
    first = event(T0, amplitude=1.0)
    later = replace(first, amplitude=2.0, kind=EventKind.ARTIFACT, end_ns=T0 + 5, session_id="s2")
    store.write_events([first])
    store.write_events([later])
    store.write_events([later])
    assert store.events(EventQuery()) == [later]


def test_rewriting_a_rate_stores_it_once_and_the_later_write_wins(store: EventStore) -> None:
    store.write_rates([rate(T0, twitches=1), rate(T0, twitches=7)])  # within one write, too
    assert store.rates(EventQuery()) == [rate(T0, twitches=7)]
    store.write_rates([rate(T0, twitches=9)])
    assert store.rates(EventQuery()) == [rate(T0, twitches=9)]


def test_events_differing_only_in_one_identity_field_are_distinct(store: EventStore) -> None:
    base = event(T0)
    events = [base, replace(base, user="bob"), replace(base, device="d2"), replace(base, source="replay")]
    store.write_events(events)
    assert sorted(store.events(EventQuery()), key=repr) == sorted(events, key=repr)


def test_awkward_tag_text_in_one_write(store: EventStore) -> None:
    # '\\ \\="' once made InfluxDB 1.x read this line and the next as one (see influx.Line).
    nasty = ['\\ \\="', "a b", "a,b=c", 'q"uote', "\\x", "a\\,b", "'", "ü 🦵", "#hash", "x\\ y", "=\\=,"]
    events = [event(T0 + i, m, device=m, user=m) for i, m in enumerate(nasty)]
    events.append(event(T0 + len(nasty)))
    store.write_events(events)
    assert store.events(EventQuery()) == events
    assert store.muscles() == sorted({e.muscle for e in events})


def test_writing_nothing_is_fine(store: EventStore) -> None:
    store.write_events([])
    store.write_rates([])
    assert store.events(EventQuery()) == []


# --- filters ----------------------------------------------------------------------------------------

MIXED = [
    event(T0, "calf_left"),
    event(T0 + 10, "forearm", user="bob", kind=EventKind.MYOCLONIC_JERK),
    event(T0 + 20, "calf_left", kind=EventKind.SUSTAINED, source="replay"),
    event(T0 + 30, "forearm", kind=EventKind.ARTIFACT),
    event(T0 + 40, "neck", user="bob", source="replay"),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EventQuery(), [0, 1, 2, 3, 4]),
        (EventQuery(since_ns=T0 + 10), [1, 2, 3, 4]),
        (EventQuery(until_ns=T0 + 30), [0, 1, 2]),  # half-open: the event at until is out
        (EventQuery(since_ns=T0 + 10, until_ns=T0 + 11), [1]),
        (EventQuery(since_ns=T0 + 10, until_ns=T0 + 10), []),
        (EventQuery(user="bob"), [1, 4]),
        (EventQuery(user="carol"), []),
        (EventQuery(muscle="calf_left"), [0, 2]),
        (EventQuery(source="replay"), [2, 4]),
        (EventQuery(source="live"), [0, 1, 3]),
        (EventQuery(kinds=(EventKind.SUSTAINED, EventKind.ARTIFACT)), [2, 3]),
        (EventQuery(kinds=(EventKind.FASCICULATION,)), [0, 4]),
        (EventQuery(user="bob", source="replay", muscle="neck", kinds=(EventKind.FASCICULATION,)), [4]),
        (EventQuery(limit=2), [0, 1]),
        (EventQuery(since_ns=T0 + 5, user="alice", limit=1), [2]),
    ],
)
def test_event_filters(store: EventStore, query: EventQuery, expected: list[int]) -> None:
    store.write_events(MIXED)
    assert store.events(query) == [MIXED[i] for i in expected]


def test_order_is_time_then_muscle_and_limit_cuts_inside_a_tie(store: EventStore) -> None:
    events = [event(T0, "b"), event(T0, "a"), event(T0 + 1, "d"), event(T0 + 1, "c"), event(T0 + 1, "a")]
    store.write_events(events)
    ordered = [events[1], events[0], events[4], events[3], events[2]]
    assert store.events(EventQuery()) == ordered
    for limit in range(1, 7):
        assert store.events(EventQuery(limit=limit)) == ordered[:limit]


def test_rate_filters_ignore_kinds(store: EventStore) -> None:
    rates = [rate(T0, "b"), rate(T0, "a", user="bob"), rate(T0 + MINUTE, "a"), rate(T0 + 2 * MINUTE, "c")]
    store.write_rates(rates)
    ordered = [rates[1], rates[0], rates[2], rates[3]]
    assert store.rates(EventQuery()) == ordered
    assert store.rates(EventQuery(kinds=(EventKind.ARTIFACT,))) == ordered
    assert store.rates(EventQuery(since_ns=T0 + MINUTE, until_ns=T0 + 2 * MINUTE)) == [rates[2]]
    assert store.rates(EventQuery(user="bob")) == [rates[1]]
    assert store.rates(EventQuery(muscle="a")) == [rates[1], rates[2]]
    assert store.rates(EventQuery(source="replay")) == []
    assert store.rates(EventQuery(limit=1)) == [rates[1]]
    assert store.rates(EventQuery(limit=3)) == ordered[:3]


def test_inverted_range_is_a_query_error(store: EventStore) -> None:
    with pytest.raises(QueryError) as err:
        store.events(EventQuery(since_ns=T0 + 1, until_ns=T0))
    assert err.value.key == "until_ns"
    assert isinstance(err.value, StoreError)


# --- aggregates -------------------------------------------------------------------------------------


def test_hourly_counts_only_twitches_by_utc_hour_and_muscle(store: EventStore) -> None:
    store.write_events(
        [
            event(T0 + 1, "calf"),
            event(T0 + HOUR - 1, "calf", kind=EventKind.MYOCLONIC_JERK),
            event(T0 + 5, "arm"),
            event(T0 + 6, "arm", kind=EventKind.SUSTAINED),
            event(T0 + 7, "arm", kind=EventKind.ARTIFACT),
            event(T0 + HOUR, "calf"),  # the next hour starts exactly here
            event(T0 + 3 * HOUR + 17, "arm", user="bob"),
            event(T0 + 4 * HOUR, "neck", kind=EventKind.ARTIFACT),  # no twitch: the hour is absent
        ]
    )
    assert store.hourly_twitch_counts(EventQuery()) == [
        HourCount("arm", T0, 1),
        HourCount("calf", T0, 2),
        HourCount("calf", T0 + HOUR, 1),
        HourCount("arm", T0 + 3 * HOUR, 1),
    ]
    assert store.hourly_twitch_counts(EventQuery(user="bob")) == [HourCount("arm", T0 + 3 * HOUR, 1)]
    assert store.hourly_twitch_counts(EventQuery(since_ns=T0 + 2, until_ns=T0 + HOUR)) == [
        HourCount("arm", T0, 1),
        HourCount("calf", T0, 1),
    ]
    assert store.hourly_twitch_counts(EventQuery(kinds=(EventKind.ARTIFACT, EventKind.SUSTAINED))) == [
        HourCount("arm", T0, 2),
        HourCount("neck", T0 + 4 * HOUR, 1),
    ]
    assert store.hourly_twitch_counts(EventQuery(muscle="calf", source="replay")) == []


def test_hourly_counts_on_a_half_hour_grid_for_half_hour_zones(store: EventStore) -> None:
    half = HOUR // 2  # Asia/Kolkata's clock hours start at :30 UTC
    store.write_events(
        [
            event(T0 + half - 1, "calf"),  # the clock hour before
            event(T0 + half, "calf"),  # starts exactly here
            event(T0 + HOUR + 5, "calf"),  # the same clock hour, the next UTC hour
            event(T0 + HOUR + half + 1, "arm"),
        ]
    )
    assert store.hourly_twitch_counts(EventQuery(), offset_ns=half) == [
        HourCount("calf", T0 - half, 1),
        HourCount("calf", T0 + half, 2),
        HourCount("arm", T0 + HOUR + half, 1),
    ]
    assert store.hourly_twitch_counts(EventQuery(), offset_ns=0) == [
        HourCount("calf", T0, 2),
        HourCount("arm", T0 + HOUR, 1),
        HourCount("calf", T0 + HOUR, 1),
    ]
    for bad in (-1, HOUR):
        with pytest.raises(QueryError) as err:
            store.hourly_twitch_counts(EventQuery(), offset_ns=bad)
        assert err.value.key == "offset_ns"


def test_muscles_from_events_and_rates(store: EventStore) -> None:
    store.write_events([event(T0, "calf"), event(T0, "arm", user="bob"), event(T0 + 1, "calf", user="")])
    store.write_rates([rate(T0, "neck"), rate(T0, "zygomatic", user="carol")])
    assert store.muscles() == ["arm", "calf", "neck", "zygomatic"]
    assert store.muscles("alice") == ["calf", "neck"]
    assert store.muscles("bob") == ["arm"]
    assert store.muscles("") == ["calf"]
    assert store.muscles("nobody") == []


def test_users_with_anything_stored(store: EventStore) -> None:
    assert store.users() == []
    store.write_events([event(T0, user="bob"), event(T0 + 1, user="")])
    store.write_rates([rate(T0, user="alice")])
    store.add_journal_entry(JournalEntry("carol", T0, Factor.CAFFEINE, entry_id="j1"))
    store.replace_flags(FlagSet("dave", T0, "test", ()))
    assert store.users() == ["", "alice", "bob", "carol", "dave"]


def test_spans_of_events_and_rates(store: EventStore) -> None:
    assert store.event_span(EventQuery()) is None
    assert store.rate_span(EventQuery()) is None
    store.write_events(
        [
            event(T0 + 5, "calf"),
            event(T0 - HOUR, "arm", kind=EventKind.ARTIFACT),
            event(T0 + 2 * HOUR, "calf", user="bob"),
        ]
    )
    store.write_rates([rate(T0 + 3 * MINUTE), rate(T0 - 7 * MINUTE, "neck"), rate(T0, user="bob")])
    assert store.event_span(EventQuery()) == (T0 - HOUR, T0 + 2 * HOUR)
    assert store.event_span(EventQuery(user="alice", limit=1)) == (T0 - HOUR, T0 + 5)
    assert store.event_span(EventQuery(kinds=(EventKind.FASCICULATION,), user="alice")) == (T0 + 5, T0 + 5)
    assert store.event_span(EventQuery(since_ns=T0 + 6, until_ns=T0 + HOUR)) is None
    assert store.rate_span(EventQuery(user="alice")) == (T0 - 7 * MINUTE, T0 + 3 * MINUTE)
    assert store.rate_span(EventQuery(muscle="neck", kinds=(EventKind.ARTIFACT,))) == (
        T0 - 7 * MINUTE,
        T0 - 7 * MINUTE,
    )
    assert store.rate_span(EventQuery(since_ns=T0 + 4 * MINUTE)) is None


def test_check_writable_refuses_what_the_store_cannot_hold_and_writes_nothing(store: EventStore) -> None:
    good = [event(T0), event(T0 + 1, "arm")]
    entry = JournalEntry("alice", T0, Factor.FELT, muscle="calf_left", entry_id="f1")
    flags = FlagSet("alice", T0, "test", (_flag(FlagKind.PERSISTENT, "calf_left", T0),))
    store.check_writable(good, [rate(T0)], [entry], [flags])
    with pytest.raises(StoreError, match="64-bit"):
        store.check_writable([*good, replace(good[0], channel=2**63)])
    with pytest.raises(StoreError, match="64-bit"):
        store.check_writable(rates=[rate(T0, twitches=-(2**63) - 1)])
    assert store.users() == []  # checking wrote nothing
    assert store.events(EventQuery()) == []


@pytest.mark.influx
def test_influx_check_writable_refuses_a_tag_line_protocol_cannot_carry(influx_store: InfluxStore) -> None:
    with pytest.raises(StoreError, match="control character"):
        influx_store.check_writable([event(T0), event(T0 + 1, "calf\x01left")])
    with pytest.raises(StoreError, match="backslash"):
        influx_store.check_writable(journal=[JournalEntry("alice\\", T0, Factor.SLEEP, entry_id="j1")])
    assert influx_store.users() == []


# --- arbitrary strings against the real server ------------------------------------------------------

# Line protocol's and InfluxQL's special characters and escape-like pairs, often; any printable text too.
_PIECES = st.one_of(
    st.sampled_from([" ", ",", "=", '"', "'", "\\", "#", "\\ ", "\\,", "\\=", "\\\\", "\\'", "\\n"]),
    st.characters(exclude_categories=("Cc", "Cs")),
)
# Line protocol cannot end a tag with a backslash (the store refuses it; tested below).
_TAG_TEXT = (
    st.lists(_PIECES, min_size=1, max_size=8).map("".join).map(lambda s: s + "x" if s.endswith("\\") else s)
)
_LABELS = st.lists(st.tuples(_TAG_TEXT, _TAG_TEXT, _TAG_TEXT, _TAG_TEXT), min_size=1, max_size=4)


@pytest.mark.influx
@settings(max_examples=60, deadline=None)
@given(labels=_LABELS)
@example(labels=[("a b", "c,d", "e=f", 'g"h'), ("\\\\x", "a\\,b", "a\\ b\\=c", "'; DROP DATABASE x")])
@example(labels=[("ü ✓ 🦵", "\\'", "\\n", "\\\\\\ \\y")])
def test_arbitrary_strings_round_trip_and_filter(
    influxdb: InfluxServer, labels: list[tuple[str, str, str, str]]
) -> None:
    events = [
        event(T0 + i * MINUTE, muscle, user=user, device=device, session_id=session)
        for i, (user, muscle, device, session) in enumerate(labels)
    ]
    database = fresh_db()
    try:
        with InfluxStore(influxdb.base_url, database, influxdb.auth) as store:
            store.write_events(events)
            assert store.events(EventQuery()) == events
            assert store.muscles() == sorted({e.muscle for e in events})
            for e in events:
                assert store.events(EventQuery(user=e.user)) == [x for x in events if x.user == e.user]
                assert store.events(EventQuery(muscle=e.muscle)) == [
                    x for x in events if x.muscle == e.muscle
                ]
                assert store.muscles(e.user) == sorted({x.muscle for x in events if x.user == e.user})
    finally:
        influxdb.drop_database(database)


# --- InfluxDB specifics -----------------------------------------------------------------------------


@pytest.mark.influx
@pytest.mark.parametrize(
    ("value", "why"), [("a\nb", "control character"), ("tab\there", "control"), ("ends\\", "backslash")]
)
def test_unrepresentable_tags_are_refused_before_anything_is_sent(
    influx_store: InfluxStore, value: str, why: str
) -> None:
    good = event(T0)
    with pytest.raises(StoreError, match=why) as err:
        influx_store.write_events([good, replace(good, start_ns=T0 + 1, muscle=value)])
    assert repr(value) in str(err.value)
    assert influx_store.events(EventQuery()) == []


@pytest.mark.influx
def test_batches_and_chunked_answers(influx_store: InfluxStore) -> None:
    events = [event(T0 + i * 1_000_000, f"m{i % 3}") for i in range(12_001)]  # > 2 batches, > 1 chunk
    influx_store.write_events(events)
    assert influx_store.events(EventQuery()) == events
    assert influx_store.events(EventQuery(limit=10_500)) == events[:10_500]
    counts = influx_store.hourly_twitch_counts(EventQuery())
    assert sum(c.twitches for c in counts) == len(events)


@pytest.mark.influx
def test_url_and_open_store(influxdb: InfluxServer) -> None:
    with open_store(influxdb.store_url, influxdb.auth) as s:
        assert isinstance(s, InfluxStore)
        assert s.url == influxdb.store_url
        assert s.dialect is Dialect.GO  # the harness runs 1.x


@pytest.mark.influx
def test_wrong_password_says_which_settings_to_check(influxdb: InfluxServer) -> None:
    with pytest.raises(StoreError, match="TWITCHWATCH_INFLUX_PASSWORD") as err:
        InfluxStore(influxdb.base_url, influxdb.database, InfluxAuth(username="admin", password="wrong"))
    assert "401" in str(err.value)
    assert "wrong" not in str(err.value)


@pytest.mark.influx
def test_missing_database_is_reported_on_write_with_how_to_create_it(influxdb: InfluxServer) -> None:
    user, password = f"u{uuid.uuid4().hex[:8]}", "pw-not-admin"
    influxdb.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}'")  # not an admin: cannot create
    database = fresh_db()
    try:
        auth = InfluxAuth(username=user, password=password)
        with InfluxStore(influxdb.base_url, database, auth) as s, pytest.raises(StoreError) as err:
            s.write_events([event(T0)])
    finally:
        influxdb.query(f'DROP USER "{user}"')
    message = str(err.value)
    assert "database not found" in message
    assert f'CREATE DATABASE "{database}"' in message


@pytest.mark.influx
def test_field_type_conflict_is_raised_not_dropped(influxdb: InfluxServer, influx_store: InfluxStore) -> None:
    # Someone else wrote "amplitude" as a string into the same shard: InfluxDB answers 400 partial write.
    response = httpx.post(
        f"{influx_store.base_url}/write",
        params={"db": influx_store.database, "precision": "ns"},
        content=b'twitch_events,muscle=x amplitude="loud" 1',
        auth=(influxdb.username, influxdb.password),
    )
    assert response.status_code == 204
    with pytest.raises(StoreError, match="field type conflict"):
        influx_store.write_events([event(2)])


def test_unreachable_server_names_the_url() -> None:
    port = free_port()  # nothing listens here
    with pytest.raises(StoreError) as err:
        InfluxStore(f"http://127.0.0.1:{port}", "db", InfluxAuth(), timeout=2)
    assert f"http://127.0.0.1:{port}" in str(err.value)
    assert "running" in str(err.value)


def test_influxdb_3_by_protocol_token_dialect_and_refused_create() -> None:
    """No 3.x server here: a stand-in answers as InfluxDB 3 Core does where it differs from 1.x."""
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/ping":
            return httpx.Response(200, json={"version": "3.0.1", "revision": "abc"})
        if request.method == "POST" and request.url.path == "/query":
            return httpx.Response(400, json={"error": "CREATE DATABASE is not supported"})
        return httpx.Response(404, json={"error": "database not found: tw"})

    auth = InfluxAuth(token="t0ken")
    with InfluxStore("http://influx3:8181", "tw", auth, transport=httpx.MockTransport(server)) as s:
        assert s.dialect is Dialect.RUST
        with pytest.raises(StoreError, match="influxdb3 create database tw") as err:
            s.write_events([event(T0, "a\\b c")])
    assert "CREATE DATABASE is not supported" in str(err.value)  # why creating it on open did not help
    assert "t0ken" not in str(err.value)
    assert all(r.headers["Authorization"] == "Token t0ken" for r in seen)
    assert b"muscle=a\\\\b\\ c," in seen[-1].content  # 3.x unescapes a doubled backslash


# --- pure encoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "go", "rust"),
    [
        ("plain", "plain", "plain"),
        ("a b,c=d", "a\\ b\\,c\\=d", "a\\ b\\,c\\=d"),
        ("a\\b", "a\\b", "a\\\\b"),
        ("a\\,b", "a\\\\,b", "a\\\\\\,b"),
    ],
)
def test_tag_escaping_per_dialect(value: str, go: str, rust: str) -> None:
    assert escape_tag(value, Dialect.GO) == go
    assert escape_tag(value, Dialect.RUST) == rust


def test_dialect_follows_the_server_version() -> None:
    assert dialect_for_version("1.6.7~rc0") is Dialect.GO
    assert dialect_for_version("v2.7.10") is Dialect.GO
    assert dialect_for_version("3.0.1") is Dialect.RUST
    assert dialect_for_version("") is Dialect.GO


def test_string_escaping() -> None:
    assert quote_field_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert quote_literal("it's a \\ path\n") == "'it\\'s a \\\\ path\\n'"


# --- store URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "spec"),
    [
        ("sqlite:///data/events.db", SQLiteSpec(Path("data/events.db"))),
        ("sqlite:////var/lib/tw/events.db", SQLiteSpec(Path("/var/lib/tw/events.db"))),
        ("influxdb://influx:8087/twitch", InfluxSpec("http://influx:8087", "twitch")),
        ("influxdb://influx/twitch/", InfluxSpec("http://influx:8086", "twitch")),
        ("influxdbs://db.example.org/tw", InfluxSpec("https://db.example.org:8086", "tw")),
        ("influxdb://[::1]:9999/tw", InfluxSpec("http://[::1]:9999", "tw")),
    ],
)
def test_parse_store_url_accepts(url: str, spec: SQLiteSpec | InfluxSpec) -> None:
    assert parse_store_url(url) == spec


@pytest.mark.parametrize(
    "url",
    [
        "",
        "events.db",
        "postgres://host/db",
        "sqlite://host/events.db",
        "sqlite:///",
        "influxdb://influx:8086",
        "influxdb://influx:8086/",
        "influxdb://influx/a/b",
        "influxdb:///db",
        "influxdb://influx:99999/db",
        "influxdb://admin:hunter2@influx/db",
    ],
)
def test_parse_store_url_rejects(url: str) -> None:
    with pytest.raises(StoreUrlError) as err:
        parse_store_url(url)
    assert "hunter2" not in str(err.value)


# --- journal and flags ------------------------------------------------------------------------------


def test_journal_round_trip_order_filters_and_delete(store: EventStore) -> None:
    coffee = JournalEntry("alice", T0 + HOUR, Factor.CAFFEINE, "2 cups", 'espresso, "double"', entry_id="a1")
    cramp = JournalEntry("alice", T0, Factor.SYMPTOM, "", "cramp\nat night", "calf_left", entry_id="b2")
    same_time = JournalEntry("alice", T0, Factor.STRESS, "high", entry_id="a0")
    bob = JournalEntry("bob", T0 + 2 * HOUR, Factor.SLEEP, "5 h", entry_id="c3")
    for entry in (coffee, cramp, same_time, bob):
        store.add_journal_entry(entry)
    assert store.journal_entries() == [same_time, cramp, coffee, bob]
    assert store.journal_entries(user="alice") == [same_time, cramp, coffee]
    assert store.journal_entries(T0 + 1, T0 + 2 * HOUR) == [coffee]
    assert store.journal_entries(T0 + 3 * HOUR) == []
    with pytest.raises(QueryError) as info:
        store.journal_entries(T0, T0 - 1)
    assert info.value.key == "until_ns"

    assert store.delete_journal_entry("b2") is True
    assert store.delete_journal_entry("b2") is False
    assert store.delete_journal_entry("nonexistent") is False
    assert store.journal_entries(user="alice") == [same_time, coffee]
    assert store.events(EventQuery()) == []  # the journal is apart from events


def test_journal_entry_with_an_existing_id_is_replaced_even_when_moved(store: EventStore) -> None:
    first = JournalEntry("alice", T0, Factor.EXERCISE, "30 min", entry_id="x1")
    store.add_journal_entry(first)
    moved = replace(first, time_ns=T0 + HOUR, amount="45 min")
    store.add_journal_entry(moved)
    assert store.journal_entries() == [moved]


def _flag(kind: FlagKind, muscle: str, at: int, device: str = "") -> Flag:
    day = date(2026, 11, 1)
    return Flag(
        user="alice",
        kind=kind,
        muscle=muscle,
        rule="a rule with thresholds",
        summary="numbers in words",
        numbers={"days": 14.0, "rate_per_h": 12.5},
        first_day=day,
        last_day=day + timedelta(days=13),
        days=(day, day + timedelta(days=13)),
        raised_at_ns=at,
        device=device,
    )


def test_flags_are_replaced_per_user(store: EventStore) -> None:
    assert store.current_flags("alice") is None
    first = FlagSet("alice", T0, "worker", (_flag(FlagKind.PERSISTENT, "calf_left", T0),))
    bob = FlagSet("bob", T0, "cli", ())
    store.replace_flags(first)
    store.replace_flags(bob)
    assert store.current_flags("alice") == first
    assert store.current_flags("bob") == bob
    second = FlagSet(
        "alice",
        T0 + MINUTE,
        "worker",
        (
            _flag(FlagKind.RISING, "calf_right", T0 + MINUTE),
            _flag(FlagKind.STALE_SENSOR, "", T0 + MINUTE, device="polar1"),
        ),
    )
    store.replace_flags(second)
    assert store.current_flags("alice") == second
    assert store.current_flags("bob") == bob
    assert store.current_flags("carol") is None


@pytest.mark.influx
def test_influx_keeps_one_flag_set_point_per_user(influxdb: InfluxServer, influx_store: InfluxStore) -> None:
    for k in range(3):
        influx_store.replace_flags(FlagSet("alice", T0 + k * MINUTE, "worker", ()))
    influx_store.replace_flags(FlagSet("bob", T0, "worker", ()))
    response = httpx.get(
        f"{influxdb.base_url}/query",
        params={
            "db": influx_store.database,
            "q": 'SELECT count("document") FROM "flag_sets" GROUP BY "user"',
        },
        auth=(influxdb.username, influxdb.password),
    )
    series = response.json()["results"][0]["series"]
    assert {s["tags"]["user"]: s["values"][0][1] for s in series} == {"alice": 1, "bob": 1}
    current = influx_store.current_flags("alice")
    assert current is not None
    assert current.computed_at_ns == T0 + 2 * MINUTE
