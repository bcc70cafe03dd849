"""Per-minute rates: finished minutes leave the book; open minutes are written as they grow."""

from __future__ import annotations

from twitchwatch.processing.events import MinuteRate, Source
from twitchwatch.processing.timeunits import MINUTE_NS
from twitchwatch.processing.worker import RATE_GRACE_NS, RateBook

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


def test_a_stream_that_began_mid_minute_is_told_from_its_replay_by_where_the_row_ends() -> None:
    """A stream began 40 s into its minute and a worker stored 15 s of it (40-55 s). The same data again
    (``twitchwatch replay`` of the same file after a worker restart) starts at 40 s: past the row's 15 s
    taken from the minute's start, it was added to the row (15 twitches of 20 s counted 30, 40 s worn in
    the last 20 s of a minute). The row says where it ends now."""
    stored = MinuteRate(*KEY, T0, 2, 15.0, 15.0, 55.0)
    assert stored.end_s == 55.0
    again = RateBook(ask_prior=True)
    again.cover(KEY, T0 + 40 * 10**9, T0 + 60 * 10**9)
    again.lookups()
    again.resolve(KEY, stored)
    [rate] = again.take(None)
    assert (rate.twitches, rate.monitored_s, rate.end_s) == (0, 20.0, 60.0)  # replaced
    later = RateBook(ask_prior=True)
    later.cover(KEY, T0 + 56 * 10**9, T0 + 58 * 10**9)  # a worker restarted after the row's end
    later.lookups()
    later.resolve(KEY, stored)
    [rate] = later.take(None)
    assert (rate.twitches, rate.monitored_s, rate.end_s) == (2, 17.0, 58.0)  # carried


def test_a_written_minute_says_where_its_monitored_time_ends() -> None:
    book = RateBook(ask_prior=True)
    book.cover(KEY, T0 + 40 * 10**9, T0 + 50 * 10**9)
    book.lookups()
    book.resolve(KEY, MinuteRate(*KEY, T0, 1, 5.0, 5.0, 35.0))  # a predecessor's row, ending before
    [rate] = book.changed_open()
    assert (rate.monitored_s, rate.end_s) == (15.0, 50.0)
    book = RateBook(ask_prior=True)
    book.cover(KEY, T0 + 20 * 10**9, T0 + 30 * 10**9)
    book.lookups()
    book.resolve(KEY, MinuteRate(*KEY, T0, 1, 5.0, 5.0, None))  # a row from before end_s: from 0 s
    [rate] = book.changed_open()
    assert (rate.twitches, rate.monitored_s, rate.end_s) == (1, 15.0, 30.0)


class Vetoes:
    """The gate as a book sees it: fixed vetoed spans, ready from ``ready_from`` on."""

    def __init__(self, spans: list[tuple[int, int]], ready_from: int = 0) -> None:
        self.spans = spans
        self.ready_from = ready_from

    def ready(self, user: str, muscle: str, end_ns: int) -> bool:
        return end_ns <= self.ready_from

    def vetoed_ns(self, user: str, muscle: str, start_ns: int, end_ns: int) -> int:
        return sum(max(0, min(b, end_ns) - max(a, start_ns)) for a, b in self.spans)


def test_two_streams_of_one_device_on_one_muscle_cover_a_second_once() -> None:
    """A wearable's EMG and accelerometer both watch the calf: 30 s of both is 30 s monitored, not 60 (a
    minute the sensor was put on halfway through read as fully worn before)."""
    book = RateBook()
    for k in range(300):  # interleaved 100-ms frames of the two streams
        t = T0 + 30 * 10**9 + k * 10**8
        book.cover(KEY, t, t + 10**8)
        book.cover(KEY, t, t + 10**8)
    book.cover(KEY, T0 + 10 * 10**9, T0 + 12 * 10**9)  # late, out of order: merged in place
    [rate] = book.take(None)
    assert (rate.monitored_s, rate.rest_s) == (32.0, 32.0)


def test_rest_is_covered_time_less_what_the_gate_vetoes_and_waits_for_the_gate() -> None:
    gate = Vetoes([(T0 + 10 * 10**9, T0 + 25 * 10**9), (T0 + 200 * 10**9, T0 + 210 * 10**9)])
    book = RateBook(rest=gate)
    book.cover(KEY, T0 + 20 * 10**9, T0 + MINUTE_NS)  # worn from 20 s: the veto's last 5 s count
    book.count(KEY, T0 + 40 * 10**9)
    watermark = {("u", "dev"): T0 + MINUTE_NS + RATE_GRACE_NS}
    [running] = book.changed_open()
    assert (running.monitored_s, running.rest_s) == (40.0, 35.0)  # provisional, from what is known
    assert book.take(watermark) == []  # the gate is not ready for the minute: it waits
    gate.ready_from = T0 + MINUTE_NS
    [rate] = book.take(watermark)
    assert (rate.twitches, rate.monitored_s, rate.rest_s) == (1, 40.0, 35.0)


def test_a_stored_row_from_before_rest_tracking_makes_the_minute_s_rest_unknown() -> None:
    book = RateBook(ask_prior=True)
    book.cover(KEY, T0 + 20 * 10**9, T0 + 30 * 10**9)
    book.lookups()
    book.resolve(KEY, MinuteRate(*KEY, T0, 2, 20.0, None))  # the old worker's row for this minute
    [rate] = book.take(None)
    assert (rate.twitches, rate.monitored_s, rate.rest_s) == (2, 30.0, None)
    book = RateBook(ask_prior=True)
    book.cover(KEY, T0 + 20 * 10**9, T0 + 30 * 10**9)
    book.lookups()
    book.resolve(KEY, MinuteRate(*KEY, T0, 2, 20.0, 12.5))  # a row with rest: added to
    [rate] = book.take(None)
    assert (rate.twitches, rate.monitored_s, rate.rest_s) == (2, 30.0, 22.5)


def test_a_minute_reopened_after_its_vetoes_were_pruned_keeps_the_rest_it_had() -> None:
    """A device's minute closed (it went offline) with a 10-s contraction in it; its buffered frames of that
    minute come minutes later (the collector's outbox after Wi-Fi is back), once the gate has pruned the
    contraction's veto. Its seconds at rest were asked again for every span: the contraction counted at
    rest. Only the spans added since are asked about."""
    gate = Vetoes([(T0 + 10 * 10**9, T0 + 20 * 10**9)], ready_from=T0 + MINUTE_NS)
    book = RateBook(rest=gate)
    book.cover(KEY, T0, T0 + 30 * 10**9)
    [first] = book.take({("u", "dev"): T0 + 2 * MINUTE_NS})
    assert (first.monitored_s, first.rest_s) == (30.0, 20.0)
    gate.spans = []  # pruned
    book.cover(KEY, T0 + 40 * 10**9, T0 + 50 * 10**9)  # the late frames
    [again] = book.take(None)
    assert (again.monitored_s, again.rest_s) == (40.0, 30.0)


def test_a_minute_handed_back_by_a_failed_write_keeps_its_rest() -> None:
    book = RateBook(rest=Vetoes([(T0, T0 + 15 * 10**9)]))
    book.cover(KEY, T0, T0 + MINUTE_NS)
    done = book.take(None)
    assert [(r.monitored_s, r.rest_s) for r in done] == [(60.0, 45.0)]
    book.requeue(done)
    assert book.take(None) == done


def test_a_minute_reopened_while_its_failed_write_was_in_flight_is_not_counted_twice() -> None:
    """A device offline at 30 s: its minute is taken and written; the store hangs, and the device is back
    at 40 s before the write fails. The data reopened the minute's tally, which holds the taken row
    already: carried onto it again, 30 twitches in 40 s became 45 in 60."""
    book = RateBook()
    book.cover(KEY, T0, T0 + 30 * 10**9)
    for s in range(20):
        book.count(KEY, T0 + s * 10**9)
    done = book.take({("u", "dev"): T0 + 2 * MINUTE_NS})  # the minute is final: its device went offline
    book.cover(KEY, T0 + 40 * 10**9, T0 + 50 * 10**9)  # back, during the write
    for s in range(10):
        book.count(KEY, T0 + (40 + s) * 10**9)
    book.requeue(done)  # the write failed
    book.cover(KEY, T0 + 20 * 10**9, T0 + 30 * 10**9)  # and data it held already, delivered again
    [rate] = book.take(None)
    assert (rate.twitches, rate.monitored_s, rate.end_s) == (30, 40.0, 50.0)


def test_data_for_a_minute_already_written_reopens_its_tally() -> None:
    """A frame stamped ahead moves its device's watermark past the open minute, which is written; the data
    that then comes for that minute (or after a device clock stepped back) adds to its tally. A fresh tally
    would have replaced the stored row: 20 twitches in 40 s became 4 in 10 s."""
    book = RateBook()
    book.cover(KEY, T0, T0 + 40 * 10**9)
    for s in range(20):
        book.count(KEY, T0 + (2 * s + 1) * 10**9)
    [written] = book.take({("u", "dev"): T0 + 10 * MINUTE_NS})  # the watermark far ahead
    assert (written.twitches, written.monitored_s) == (20, 40.0)
    book.cover(KEY, T0 + 40 * 10**9, T0 + 50 * 10**9)
    for s in range(4):
        book.count(KEY, T0 + (41 + 2 * s) * 10**9)
    book.count(KEY, T0 + 3 * 10**9, delta=-1)  # and a re-write takes one back
    [again] = book.take(None)
    assert (again.minute_ns, again.twitches, again.monitored_s) == (T0, 23, 50.0)


def test_only_the_last_two_hours_of_written_minutes_are_kept_to_reopen() -> None:
    book = RateBook()
    for m in range(200):
        book.cover(KEY, T0 + m * MINUTE_NS, T0 + m * MINUTE_NS + 10**9)
    assert len(book.take(None)) == 200
    assert len(book._closed[KEY]) == 120
    assert min(book._closed[KEY]) == T0 + 80 * MINUTE_NS
