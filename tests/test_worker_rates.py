"""Per-minute rates: finished minutes leave the book; open minutes are written as they grow."""

from __future__ import annotations

from processing.events import MINUTE_NS, MinuteRate, Source
from processing.worker import RATE_GRACE_NS, RateBook

KEY: tuple[str, str, str, Source] = ("u", "calf_left", "dev", "live")
T0 = 1_700_000_040 * 10**9  # a minute boundary


def test_coverage_splits_across_minutes_and_counts_twitches() -> None:
    book = RateBook()
    book.cover(KEY, T0 + 30 * 10**9, T0 + 90 * 10**9)
    book.count(KEY, T0 + 45 * 10**9)
    book.count(KEY, T0 + 61 * 10**9)
    rates = book.take(None)
    assert [(r.minute_ns - T0, r.twitches, r.monitored_s) for r in rates] == [
        (0, 1, 30.0),
        (MINUTE_NS, 1, 30.0),
    ]
    assert book.take(None) == []


def test_minute_is_final_only_after_the_grace_period() -> None:
    book = RateBook()
    book.cover(KEY, T0, T0 + MINUTE_NS)
    assert book.take({("u", "dev"): T0 + MINUTE_NS + RATE_GRACE_NS - 1}) == []
    [rate] = book.take({("u", "dev"): T0 + MINUTE_NS + RATE_GRACE_NS})
    assert rate.monitored_s == 60.0


def test_open_minutes_are_reported_when_changed() -> None:
    book = RateBook()
    book.cover(KEY, T0, T0 + 10 * 10**9)
    [first] = book.changed_open()
    assert (first.monitored_s, first.twitches) == (10.0, 0)
    assert book.changed_open() == []  # nothing new since
    book.count(KEY, T0 + 5 * 10**9)
    book.cover(KEY, T0 + 10 * 10**9, T0 + 20 * 10**9)
    [second] = book.changed_open()
    assert (second.monitored_s, second.twitches) == (20.0, 1)
    book.mark_dirty([second])  # a failed write asks again
    assert book.changed_open() == [second]
    assert book.take(None) == [second]  # still in the book until final


def test_a_key_waits_for_its_stored_minute_then_adds_to_it() -> None:
    book = RateBook(ask_prior=True)
    book.cover(KEY, T0 + 20 * 10**9, T0 + 30 * 10**9)  # a restart 20 s into the minute
    book.count(KEY, T0 + 25 * 10**9)
    assert book.lookups() == [(KEY, T0)]
    assert book.lookups() == []  # handed out once
    assert book.changed_open() == []  # held back: the store has not answered
    assert book.take(None) == []
    book.resolve(KEY, MinuteRate(*KEY, T0, 2, 20.0, 20.0))
    [rate] = book.take(None)
    assert (rate.twitches, rate.monitored_s) == (3, 30.0)


def test_the_same_data_again_replaces_the_stored_minute() -> None:
    book = RateBook(ask_prior=True)
    book.cover(KEY, T0, T0 + 30 * 10**9)  # starts where the stored run started: a replay
    book.lookups()
    book.resolve(KEY, MinuteRate(*KEY, T0, 2, 20.0, 20.0))
    [rate] = book.take(None)
    assert (rate.twitches, rate.monitored_s) == (0, 30.0)
