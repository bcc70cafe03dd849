"""Per-minute rates: finished minutes leave the book; open minutes are written as they grow."""

from __future__ import annotations

from processing.events import MINUTE_NS, Source
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
