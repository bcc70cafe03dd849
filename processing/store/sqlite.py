"""SQLite backend (stdlib ``sqlite3``, WAL): the embedded default store."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twitchwatch.processing.events import TWITCH_KINDS, EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.flags import FlagError, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store.base import (
    EventQuery,
    EventStore,
    HourCount,
    StoreError,
    StoreRejected,
    check_hour_offset,
    check_range,
)
from twitchwatch.processing.timeunits import HOUR_NS

# Journal and flags: separate tables, created on open of an existing file too (additive schema).
_PERSON_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    entry_id TEXT PRIMARY KEY, user TEXT NOT NULL, time_ns INTEGER NOT NULL, factor TEXT NOT NULL,
    amount TEXT NOT NULL, note TEXT NOT NULL, muscle TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_time ON journal (time_ns);
CREATE TABLE IF NOT EXISTS flag_sets (
    user TEXT PRIMARY KEY, computed_at_ns INTEGER NOT NULL, document TEXT NOT NULL
);
"""
_JOURNAL_COLUMNS = "user, time_ns, factor, amount, note, muscle, entry_id"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    user TEXT NOT NULL, muscle TEXT NOT NULL, device TEXT NOT NULL, source TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, stream TEXT NOT NULL, channel INTEGER NOT NULL,
    kind TEXT NOT NULL, amplitude REAL NOT NULL, unit TEXT NOT NULL, confidence REAL NOT NULL,
    session_id TEXT NOT NULL, dominant_hz REAL, reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user, muscle, device, source, start_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (start_ns);
CREATE TABLE IF NOT EXISTS rates (
    user TEXT NOT NULL, muscle TEXT NOT NULL, device TEXT NOT NULL, source TEXT NOT NULL,
    minute_ns INTEGER NOT NULL, twitches INTEGER NOT NULL, monitored_s REAL NOT NULL, rest_s REAL, end_s REAL,
    PRIMARY KEY (user, muscle, device, source, minute_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rates_by_time ON rates (minute_ns);
"""
_SCHEMA_VERSION = 4
# What a row itself causes (a number beyond INTEGER, text that is not UTF-8, a NULL in a NOT NULL column):
# the same row fails again however often it is sent.
_REFUSED = (OverflowError, UnicodeEncodeError, sqlite3.IntegrityError, sqlite3.DataError)
_INT64 = (-(2**63), 2**63 - 1)
_EVENT_COLUMNS = (
    "user, muscle, device, stream, channel, kind, start_ns, end_ns, amplitude, unit, confidence, "
    "source, session_id, dominant_hz, reason"
)
_RATE_COLUMNS = "user, muscle, device, source, minute_ns, twitches, monitored_s, rest_s, end_s"


# How long opening a store waits for other processes opening or writing it (SQLite's busy timeout too).
OPEN_WAIT_S = 30.0


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store written by an older twitchwatch up to this schema, in place and losslessly.

    Version 1 had no ``dominant_hz``; its events keep NULL there (not measured) rather than a made-up 0.
    Version 2 had no rest tracking: its minute rates keep ``rest_s`` NULL (unknown, shown as "before rest
    tracking", never as all-rest) and its events an empty ``reason``. Version 3 did not keep where a
    minute's monitored time ends: ``end_s`` NULL (unknown).
    """
    # Looked at and changed in one write transaction: two processes opening the store at once (a worker
    # and the dashboard) would otherwise both see a column missing and both add it.
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        events = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        rates = {row[1] for row in db.execute("PRAGMA table_info(rates)")}
        if "dominant_hz" not in events:
            db.execute("ALTER TABLE events ADD COLUMN dominant_hz REAL")
        if "reason" not in events:
            db.execute("ALTER TABLE events ADD COLUMN reason TEXT NOT NULL DEFAULT ''")
        if "rest_s" not in rates:
            db.execute("ALTER TABLE rates ADD COLUMN rest_s REAL")
        if "end_s" not in rates:
            db.execute("ALTER TABLE rates ADD COLUMN end_s REAL")
        if version < _SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock this step needs, where SQLite does not wait for it: switching to
    WAL, or two connections both upgrading their read locks (it answers one of them at once rather than
    deadlock)."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # extended codes too


def _open(path: Path) -> sqlite3.Connection:
    """A connection to the store at ``path``, its schema created or brought up to date. Several processes
    may open one file at the same moment (``make demo``: the worker and the dashboard; workers sharing a
    file): a step SQLite answers "database is locked" without waiting is tried again, for up to
    ``OPEN_WAIT_S``."""
    deadline = time.monotonic() + OPEN_WAIT_S
    while True:
        # One connection shared across threads (the worker writes from a thread, Streamlit reads from its
        # script threads); the store's lock serialises use of it.
        db = sqlite3.connect(path, check_same_thread=False, timeout=OPEN_WAIT_S)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _migrate(db)
            db.executescript(_PERSON_SCHEMA)
            return db
        except sqlite3.Error as exc:
            db.close()
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.01, 0.05))


class SQLiteStore(EventStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = _open(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open SQLite store {self.path}: {exc}; check the path and permissions"
            ) from exc
        self._lock = threading.Lock()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite query failed on {self.path}: {exc}") from exc
            except OverflowError as exc:  # a bound beyond INTEGER (sqlite3 does not wrap it in its own)
                raise StoreError(f"SQLite query on {self.path} has a number beyond 64 bits: {exc}") from exc

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._lock:
            try:
                with self._db:
                    self._db.executemany(sql, rows)
            except _REFUSED as exc:
                raise StoreRejected(f"SQLite cannot store a row in {self.path}: {exc}") from exc
            except sqlite3.Error as exc:  # locked, read-only, disk full: the same write may pass later
                raise StoreError(f"SQLite write failed on {self.path}: {exc}") from exc

    def write_events(self, events: Sequence[TwitchEvent]) -> None:
        self._write(
            f"INSERT OR REPLACE INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.user,
                    e.muscle,
                    e.device,
                    e.stream,
                    e.channel,
                    e.kind.value,
                    e.start_ns,
                    e.end_ns,
                    e.amplitude,
                    e.unit,
                    e.confidence,
                    e.source,
                    e.session_id,
                    e.dominant_hz,
                    e.reason,
                )
                for e in events
            ],
        )

    def write_rates(self, rates: Sequence[MinuteRate]) -> None:
        self._write(
            f"INSERT OR REPLACE INTO rates ({_RATE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.user,
                    r.muscle,
                    r.device,
                    r.source,
                    r.minute_ns,
                    r.twitches,
                    r.monitored_s,
                    r.rest_s,
                    r.end_s,
                )
                for r in rates
            ],
        )

    @staticmethod
    def _where(query: EventQuery, time_col: str, kinds: bool) -> tuple[str, list[Any]]:
        clauses, params = [f"{time_col} >= ?"], list[Any]([query.since_ns])
        if query.until_ns is not None:
            clauses.append(f"{time_col} < ?")
            params.append(query.until_ns)
        for col in ("user", "muscle", "source"):
            value = getattr(query, col)
            if value is not None:
                clauses.append(f"{col} = ?")
                params.append(value)
        if kinds and query.kinds is not None:
            clauses.append(f"kind IN ({','.join('?' * len(query.kinds))})")
            params.extend(k.value for k in query.kinds)
        return " AND ".join(clauses), params

    @staticmethod
    def _limit(query: EventQuery) -> str:
        return f" LIMIT {int(query.limit)}" if query.limit is not None else ""

    def events(self, query: EventQuery) -> list[TwitchEvent]:
        where, params = self._where(query, "start_ns", kinds=True)
        rows = self._run(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} "
            f"ORDER BY start_ns, muscle{self._limit(query)}",
            params,
        )
        return [
            TwitchEvent(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                EventKind(r[5]),
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
                r[11],
                r[12],
                r[13],
                r[14],
            )
            for r in rows
        ]

    def rates(self, query: EventQuery) -> list[MinuteRate]:
        where, params = self._where(query, "minute_ns", kinds=False)
        rows = self._run(
            f"SELECT {_RATE_COLUMNS} FROM rates WHERE {where} ORDER BY minute_ns, muscle{self._limit(query)}",
            params,
        )
        return [MinuteRate(*r) for r in rows]

    def hourly_twitch_counts(self, query: EventQuery, offset_ns: int = 0) -> list[HourCount]:
        off = check_hour_offset(offset_ns)  # an int in range: safe to put in the statement
        kinds = query.kinds if query.kinds is not None else TWITCH_KINDS
        where, params = self._where(
            EventQuery(query.since_ns, query.until_ns, query.user, query.muscle, query.source, kinds),
            "start_ns",
            kinds=True,
        )
        rows = self._run(
            f"SELECT muscle, ((start_ns - {off}) / {HOUR_NS}) * {HOUR_NS} + {off} AS hour, COUNT(*) "
            f"FROM events WHERE {where} GROUP BY hour, muscle ORDER BY hour, muscle",
            params,
        )
        return [HourCount(r[0], r[1], r[2]) for r in rows]

    def muscles(self, user: str | None = None) -> list[str]:
        cond, params = ("WHERE user = ?", [user]) if user is not None else ("", [])
        rows = self._run(
            f"SELECT muscle FROM events {cond} UNION SELECT muscle FROM rates {cond} ORDER BY muscle",
            params * 2,
        )
        return [r[0] for r in rows]

    def users(self) -> list[str]:
        rows = self._run(
            "SELECT user FROM events UNION SELECT user FROM rates UNION SELECT user FROM journal "
            "UNION SELECT user FROM flag_sets ORDER BY user"
        )
        return [r[0] for r in rows]

    def _span(self, table: str, time_col: str, query: EventQuery, kinds: bool) -> tuple[int, int] | None:
        where, params = self._where(query, time_col, kinds=kinds)
        ((first, last),) = self._run(
            f"SELECT MIN({time_col}), MAX({time_col}) FROM {table} WHERE {where}", params
        )
        return None if first is None else (first, last)

    def event_span(self, query: EventQuery) -> tuple[int, int] | None:
        return self._span("events", "start_ns", query, kinds=True)

    def rate_span(self, query: EventQuery) -> tuple[int, int] | None:
        return self._span("rates", "minute_ns", query, kinds=False)

    def check_writable(
        self,
        events: Sequence[TwitchEvent] = (),
        rates: Sequence[MinuteRate] = (),
        journal: Sequence[JournalEntry] = (),
        flag_sets: Sequence[FlagSet] = (),
    ) -> None:
        # SQLite holds any text and any double; only its INTEGER is bounded (sqlite3 raises OverflowError,
        # not an sqlite3.Error, for a Python int beyond it).
        checks = [
            *((f"event {e.muscle!r} at {e.start_ns}", (e.start_ns, e.end_ns, e.channel)) for e in events),
            *((f"minute rate {r.muscle!r} at {r.minute_ns}", (r.minute_ns, r.twitches)) for r in rates),
            *((f"journal entry {j.entry_id}", (j.time_ns,)) for j in journal),
            *((f"flags of {f.user!r}", (f.computed_at_ns,)) for f in flag_sets),
        ]
        for what, numbers in checks:
            for n in numbers:
                if not _INT64[0] <= n <= _INT64[1]:
                    raise StoreRejected(f"SQLite cannot store {what}: {n} does not fit a 64-bit integer")

    def add_journal_entry(self, entry: JournalEntry) -> None:
        self._write(
            f"INSERT OR REPLACE INTO journal ({_JOURNAL_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            [
                (
                    entry.user,
                    entry.time_ns,
                    entry.factor.value,
                    entry.amount,
                    entry.note,
                    entry.muscle,
                    entry.entry_id,
                )
            ],
        )

    def journal_entries(
        self, since_ns: int = 0, until_ns: int | None = None, user: str | None = None
    ) -> list[JournalEntry]:
        check_range(since_ns, until_ns)
        clauses, params = ["time_ns >= ?"], list[Any]([since_ns])
        if until_ns is not None:
            clauses.append("time_ns < ?")
            params.append(until_ns)
        if user is not None:
            clauses.append("user = ?")
            params.append(user)
        rows = self._run(
            f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE {' AND '.join(clauses)} "
            "ORDER BY time_ns, entry_id",
            params,
        )
        try:
            return [JournalEntry(r[0], r[1], Factor(r[2]), r[3], r[4], r[5], r[6]) for r in rows]
        except ValueError as exc:
            raise StoreError(f"a journal row in {self.path} is invalid: {exc}") from exc

    def delete_journal_entry(self, entry_id: str) -> bool:
        with self._lock:
            try:
                with self._db:
                    cursor = self._db.execute("DELETE FROM journal WHERE entry_id = ?", (entry_id,))
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite delete failed on {self.path}: {exc}") from exc
        return cursor.rowcount > 0

    def replace_flags(self, flag_set: FlagSet) -> None:
        self._write(
            "INSERT OR REPLACE INTO flag_sets (user, computed_at_ns, document) VALUES (?,?,?)",
            [(flag_set.user, flag_set.computed_at_ns, flag_set.to_json())],
        )

    def current_flags(self, user: str) -> FlagSet | None:
        rows = self._run("SELECT document FROM flag_sets WHERE user = ?", (user,))
        if not rows:
            return None
        try:
            return FlagSet.from_json(rows[0][0])
        except FlagError as exc:
            raise StoreError(f"the stored flags of {user!r} in {self.path} are invalid: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
