"""The ``EventStore`` contract every backend meets (checked by ``tests/test_store_contract.py``)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from twitchwatch.errors import TwitchwatchError, UserError
from twitchwatch.processing.events import EventKind, MinuteRate, Source, TwitchEvent
from twitchwatch.processing.flags import FlagSet
from twitchwatch.processing.journal import JournalEntry
from twitchwatch.processing.timeunits import HOUR_NS, MINUTE_NS


class StoreError(TwitchwatchError, RuntimeError):
    """A store rejected a request or could not be reached; the message says what to do next."""


class StoreRejected(StoreError):
    """The store refused the values it was given (one it cannot hold: a name line protocol cannot carry,
    a time outside its range, a type conflict with older data), not that it was unreachable: the same
    write fails again, so a writer splits the batch and keeps the refused row aside (the worker's
    quarantine) instead of retrying it forever."""


class QueryError(StoreError, UserError, ValueError):
    """A query was malformed (e.g. an inverted time range); ``key`` names the offending field."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


@dataclass(frozen=True)
class EventQuery:
    """Half-open time range [since_ns, until_ns) plus optional filters."""

    since_ns: int = 0
    until_ns: int | None = None
    user: str | None = None
    muscle: str | None = None
    source: Source | None = None
    kinds: tuple[EventKind, ...] | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.until_ns is not None and self.until_ns < self.since_ns:
            raise QueryError(f"until ({self.until_ns}) is before since ({self.since_ns})", "until_ns")
        if self.limit is not None and self.limit <= 0:
            raise QueryError("must be positive", "limit")
        if self.kinds is not None and not self.kinds:
            raise QueryError("must name at least one kind, or be None for all", "kinds")


def stored_minute(
    store: EventStore, user: str, muscle: str, device: str, source: Source, minute_ns: int
) -> MinuteRate | None:
    """The store's row for one muscle's minute from one device (raises ``StoreError``)."""
    rows = store.rates(EventQuery(minute_ns, minute_ns + MINUTE_NS, user, muscle, source))
    return next((r for r in rows if r.device == device and r.minute_ns == minute_ns), None)


def check_range(since_ns: int, until_ns: int | None) -> None:
    if until_ns is not None and until_ns < since_ns:
        raise QueryError(f"until ({until_ns}) is before since ({since_ns})", "until_ns")


@dataclass(frozen=True)
class HourCount:
    muscle: str
    hour_ns: int
    twitches: int


def check_hour_offset(offset_ns: int) -> int:
    if not 0 <= offset_ns < HOUR_NS:
        raise QueryError(f"must be in [0, {HOUR_NS}) ns (under one hour), got {offset_ns}", "offset_ns")
    return offset_ns


class EventStore(abc.ABC):
    """Writes are idempotent: the same event (user, muscle, device, source, start) or minute rate
    written twice is stored once, the later write winning.

    Besides events and rates a store keeps, per user:

    - the journal (``JournalEntry``): ``add_journal_entry`` (an existing ``entry_id`` is replaced),
      ``journal_entries(since_ns, until_ns, user)`` ordered by time then id, ``delete_journal_entry(id)``;
    - the current flags (``FlagSet``): ``replace_flags`` swaps the whole set of that user for a new one,
      ``current_flags(user)`` returns it, or None when flags were never computed for that user.
    """

    url: str

    @abc.abstractmethod
    def write_events(self, events: Sequence[TwitchEvent]) -> None: ...

    @abc.abstractmethod
    def write_rates(self, rates: Sequence[MinuteRate]) -> None: ...

    @abc.abstractmethod
    def events(self, query: EventQuery) -> list[TwitchEvent]:
        """Matching events ordered by start time (then muscle)."""

    @abc.abstractmethod
    def rates(self, query: EventQuery) -> list[MinuteRate]:
        """Matching minute rates ordered by minute (then muscle); ``kinds`` is ignored."""

    @abc.abstractmethod
    def hourly_twitch_counts(self, query: EventQuery, offset_ns: int = 0) -> list[HourCount]:
        """Twitch events (``EventKind.is_twitch`` unless ``query.kinds`` says otherwise) per muscle per
        hour, only hours with at least one event, ordered by hour then muscle. Hours start ``offset_ns``
        after each UTC hour (``check_hour_offset``): a zone whose UTC offset is not a whole number of
        hours passes ``processing.localtime.hour_offset_ns`` so the hours are its clock hours."""

    @abc.abstractmethod
    def muscles(self, user: str | None = None) -> list[str]:
        """Every muscle with at least one stored event or rate, sorted."""

    @abc.abstractmethod
    def users(self) -> list[str]:
        """Every user with anything stored (an event, a minute rate, a journal entry or flags), sorted."""

    @abc.abstractmethod
    def event_span(self, query: EventQuery) -> tuple[int, int] | None:
        """The first and last ``start_ns`` of the events ``query`` matches (its ``limit`` ignored); None
        when it matches none. Lets a reader of a long history go through it in windows."""

    @abc.abstractmethod
    def rate_span(self, query: EventQuery) -> tuple[int, int] | None:
        """The first and last ``minute_ns`` of the minute rates ``query`` matches (``kinds`` and ``limit``
        ignored); None when it matches none."""

    @abc.abstractmethod
    def check_writable(
        self,
        events: Sequence[TwitchEvent] = (),
        rates: Sequence[MinuteRate] = (),
        journal: Sequence[JournalEntry] = (),
        flag_sets: Sequence[FlagSet] = (),
    ) -> None:
        """Raise ``StoreError`` for the first of these values this store could not hold (a number out of its
        range, a name its protocol cannot carry), without writing or sending anything: a caller that must
        not leave a write half done (``twitchwatch data import``) checks everything first."""

    # -- journal ------------------------------------------------------------------------------

    @abc.abstractmethod
    def add_journal_entry(self, entry: JournalEntry) -> None:
        """Store one entry; an entry with the same ``entry_id`` is replaced."""

    @abc.abstractmethod
    def journal_entries(
        self, since_ns: int = 0, until_ns: int | None = None, user: str | None = None
    ) -> list[JournalEntry]:
        """Entries with ``since_ns <= time_ns < until_ns`` (of ``user`` if given), by time then id."""

    @abc.abstractmethod
    def delete_journal_entry(self, entry_id: str) -> bool:
        """Delete the entry with this id; False when there was none."""

    # -- flags --------------------------------------------------------------------------------

    @abc.abstractmethod
    def replace_flags(self, flag_set: FlagSet) -> None:
        """Make ``flag_set`` the current flags of ``flag_set.user`` (the previous set is gone)."""

    @abc.abstractmethod
    def current_flags(self, user: str) -> FlagSet | None:
        """The last set stored by ``replace_flags`` for ``user``; None if there was never one."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
