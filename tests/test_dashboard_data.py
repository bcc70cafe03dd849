"""``dashboard.data``: known inputs in, exact numbers out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.harness.dashboard import NS, event
from twitchwatch.dashboard import app, data
from twitchwatch.processing.events import EventKind, MinuteRate, RestTally, Source, muscle_minutes
from twitchwatch.processing.flags import histories
from twitchwatch.processing.homeassistant import rate_per_hour
from twitchwatch.processing.journal import Factor, JournalEntry, factor_effects
from twitchwatch.processing.localtime import hour_offset_ns, to_ns
from twitchwatch.processing.report import build_report
from twitchwatch.processing.store import EventQuery, HourCount
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.timeunits import HOUR_NS

H = HOUR_NS
T0 = 1_700_000_000 * NS // H * H  # an exact UTC hour (2023-11-14 22:00 UTC)
UTC = dt.UTC
PLUS2 = dt.timezone(dt.timedelta(hours=2))
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")  # UTC+5:30: its clock hours start at :30 UTC


def rate(muscle: str, minute: int, monitored_s: float, rest_s: float | None = -1.0) -> MinuteRate:
    """A minute rate; at rest the whole time it was worn unless ``rest_s`` says otherwise."""
    rest = monitored_s if rest_s == -1.0 else rest_s
    return MinuteRate("me", muscle, "dev", "live", T0 + minute * 60 * NS, 0, monitored_s, rest)


# ---- ranges ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "hours"),
    [("Last 1 h", 1), ("Last 6 h", 6), ("Last 24 h", 24), ("Last 7 d", 168), ("Last 30 d", 720)],
)
def test_preset_range_ends_now_and_spans_the_label(label: str, hours: int) -> None:
    now = T0 + 123_456_789
    tr = data.preset_range(label, now)
    assert tr == data.TimeRange(now - hours * H, now)
    assert tr.hours == hours


def test_range_choices_offer_every_preset_then_custom() -> None:
    assert data.RANGE_CHOICES == (
        "Last 1 h",
        "Last 6 h",
        "Last 24 h",
        "Last 7 d",
        "Last 30 d",
        "Custom dates",
    )


def test_dates_range_covers_whole_local_days() -> None:
    far_future = T0 + 10_000 * H
    tr = data.dates_range(dt.date(2024, 3, 1), dt.date(2024, 3, 2), PLUS2, far_future)
    since = dt.datetime(2024, 2, 29, 22, tzinfo=UTC)  # midnight at UTC+2
    assert tr.since_ns == int(since.timestamp()) * NS
    assert tr.until_ns == tr.since_ns + 48 * H
    assert tr.hours == 48


def test_dates_range_stops_at_now() -> None:
    since = int(dt.datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * NS
    now = since + 5 * H + 7
    tr = data.dates_range(dt.date(2024, 3, 1), dt.date(2024, 3, 1), UTC, now)
    assert tr == data.TimeRange(since, now)


def test_dates_range_swaps_reversed_dates() -> None:
    now = T0 + 10_000 * H
    forward = data.dates_range(dt.date(2024, 3, 1), dt.date(2024, 3, 3), UTC, now)
    assert data.dates_range(dt.date(2024, 3, 3), dt.date(2024, 3, 1), UTC, now) == forward


def test_dates_range_in_the_future_is_empty_not_inverted() -> None:
    now = int(dt.datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp()) * NS
    tr = data.dates_range(dt.date(2024, 3, 5), dt.date(2024, 3, 6), UTC, now)
    assert tr.until_ns == tr.since_ns
    assert tr.hours == 0


# ---- frequency ------------------------------------------------------------------------------------
NAN = float("nan")


def records(table: pd.DataFrame) -> list[dict[str, object]]:
    """Rows with NaN as None, so they compare."""
    return [
        {str(k): (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in table.to_dict("records")
    ]


def test_frequency_is_per_hour_at_rest_with_hours_worn_beside_it_else_the_range() -> None:
    twitches = [
        HourCount("calf_left", T0, 3),
        HourCount("calf_right", T0, 1),
        HourCount("calf_left", T0 + H, 2),
        HourCount("calf_right", T0 + H, 3),
    ]
    sustained = [HourCount("calf_right", T0, 2)]
    moved = [HourCount("calf_left", T0, 4)]
    # calf_left: 30 minutes worn, at rest 30 s of each = 0.25 h at rest; biceps: worn 45 s × 40, at rest all
    # of it, no twitches.
    rates = [rate("calf_left", m, 60.0, 30.0) for m in range(30)] + [
        rate("biceps", m, 45.0) for m in range(40)
    ]
    table = data.frequency_table(twitches, sustained, rates, range_hours=2.0, movement_counts=moved)
    assert records(table) == [
        {
            "muscle": "biceps",
            "twitches": 0,
            "twitches per hour at rest": 0.0,
            "hours at rest": 0.5,
            "hours worn": 0.5,
            "per-hour basis": "time at rest",
            "before rest tracking": "—",
            "during movement (not counted)": 0,
            "sustained activity": 0,
        },
        {
            "muscle": "calf_left",
            "twitches": 5,
            "twitches per hour at rest": 20.0,  # 5 in 0.25 h at rest, not 10 per hour worn
            "hours at rest": 0.25,
            "hours worn": 0.5,
            "per-hour basis": "time at rest",
            "before rest tracking": "—",
            "during movement (not counted)": 4,
            "sustained activity": 0,
        },
        {
            "muscle": "calf_right",
            "twitches": 4,
            "twitches per hour at rest": 2.0,
            "hours at rest": None,
            "hours worn": None,
            "per-hour basis": "range length",
            "before rest tracking": "—",
            "during movement (not counted)": 0,
            "sustained activity": 2,
        },
    ]


def test_hours_before_rest_tracking_are_shown_apart_never_as_all_rest() -> None:
    """An upgrade in the middle of the range: the first hour's rows carry no rest (and 6 twitches), the
    second's do. The rate at rest is the second hour's alone; the first is apart, per hour worn."""
    twitches = [HourCount("calf", T0, 6), HourCount("calf", T0 + H, 2), HourCount("neck", T0, 3)]
    rates = [rate("calf", m, 60.0, None) for m in range(60)] + [
        rate("calf", 60 + m, 60.0, 30.0) for m in range(60)
    ]
    rates += [rate("neck", m, 60.0, None) for m in range(30)]  # only before rest tracking
    table = data.frequency_table(twitches, [], rates, range_hours=2.0)
    rows = {r["muscle"]: r for r in records(table)}
    assert rows["calf"]["twitches"] == 8
    assert rows["calf"]["twitches per hour at rest"] == 4.0  # 2 in the half hour at rest
    assert (rows["calf"]["hours at rest"], rows["calf"]["hours worn"]) == (0.5, 2.0)
    assert rows["calf"]["before rest tracking"] == "6 in 1.0 h worn (6.00 per hour worn)"
    assert rows["neck"]["twitches per hour at rest"] is None  # unknown: not 0, not 6 per hour
    assert rows["neck"]["per-hour basis"] == "no time at rest"
    assert rows["neck"]["before rest tracking"] == "3 in 0.5 h worn (6.00 per hour worn)"
    assert data.UNTRACKED_CAPTION in data.basis_caption(table)
    # An hour with both kinds of minute goes wholly before rest tracking: its twitches cannot be split.
    mixed = [rate("calf", m, 60.0, None if m < 10 else 60.0) for m in range(60)]
    row = records(data.frequency_table([HourCount("calf", T0, 5)], [], mixed, 1.0))[0]
    assert (row["twitches per hour at rest"], row["before rest tracking"]) == (
        None,
        "5 in 1.0 h worn (5.00 per hour worn)",
    )


def test_worn_but_never_at_rest_has_no_rate_not_a_rate_of_zero() -> None:
    table = data.frequency_table([], [], [rate("calf", m, 60.0, 0.0) for m in range(10)], 1.0)
    row = records(table)[0]
    assert (row["twitches per hour at rest"], row["per-hour basis"]) == (None, "no time at rest")
    assert data.frequency_display(table).loc[0, "twitches per hour at rest"] == "—"


def test_frequency_ignores_rates_without_monitored_time() -> None:
    # A muscle whose only rates say "0 s monitored" neither appears nor switches to time at rest.
    table = data.frequency_table(
        [HourCount("calf_left", T0, 6)], [], [rate("calf_left", 0, 0.0), rate("ghost", 0, 0.0)], 3.0
    )
    assert list(table["muscle"]) == ["calf_left"]
    assert table.loc[0, "twitches per hour at rest"] == 2.0
    assert table.loc[0, "per-hour basis"] == "range length"


def test_sustained_only_muscle_has_zero_twitches() -> None:
    table = data.frequency_table([], [HourCount("neck", T0, 4)], [], 1.0)
    assert records(table) == [
        {
            "muscle": "neck",
            "twitches": 0,
            "twitches per hour at rest": 0.0,
            "hours at rest": None,
            "hours worn": None,
            "per-hour basis": "range length",
            "before rest tracking": "—",
            "during movement (not counted)": 0,
            "sustained activity": 4,
        }
    ]


def test_frequency_of_an_empty_range_is_empty_and_zero_hours_do_not_divide() -> None:
    assert data.frequency_table([], [], [], 24.0).empty
    table = data.frequency_table([HourCount("calf_left", T0, 2)], [], [], 0.0)
    assert table.loc[0, "twitches per hour at rest"] == 0.0


def test_frequency_display_shows_two_decimals() -> None:
    table = data.frequency_table(
        [HourCount("calf_left", T0, 7)],
        [HourCount("calf_left", T0, 1)],
        [rate("calf_left", 0, 60.0, 45.0)],
        3.0,
    )
    shown = data.frequency_display(table)
    assert shown.to_dict("records") == [
        {
            "muscle": "calf_left",
            "twitches": "7",
            "twitches per hour at rest": "560.00",
            "hours at rest": "0.01",
            "hours worn": "0.02",
            "per-hour basis": "time at rest",
            "before rest tracking": "—",
            "during movement (not counted)": "0",
            "sustained activity": "1",
        }
    ]


def test_short_time_at_rest_is_named_with_its_minutes() -> None:
    twitches = [HourCount("a", T0, 5), HourCount("b", T0, 5), HourCount("c", T0, 5)]
    rates = [rate("a", m, 60.0) for m in range(3)] + [rate("b", m, 60.0) for m in range(60)]
    rates += [rate("d", 0, 20.0)]
    table = data.frequency_table(twitches, [], rates, 24.0)  # c: no rates, divided by the range
    assert data.short_monitoring_caption(table) == (
        "At rest under 1 h in this range: a (3 min), d (under 1 min). Their rates at rest are "
        "extrapolated from that little time and will move as more is recorded."
    )
    assert data.short_monitoring_caption(data.frequency_table(twitches[1:2], [], rates[3:63], 1.0)) is None
    # Worn the whole hour, at rest 10 minutes of it: short.
    walking = [rate("b", m, 60.0, 10.0) for m in range(60)]
    assert "b (10 min)" in str(
        data.short_monitoring_caption(data.frequency_table(twitches[1:2], [], walking, 1.0))
    )


def test_basis_caption_names_the_divisor() -> None:
    at_rest = data.frequency_table([HourCount("a", T0, 1)], [], [rate("a", 0, 60.0)], 1.0)
    by_range = data.frequency_table([HourCount("a", T0, 1)], [], [], 1.0)
    mixed = data.frequency_table([HourCount("a", T0, 1), HourCount("b", T0, 1)], [], [rate("a", 0, 60)], 1)
    assert "÷ time at rest" in data.basis_caption(at_rest)
    assert "range" not in data.basis_caption(at_rest)
    assert "length of the selected range" in data.basis_caption(by_range)
    assert "divided by the range length instead" in data.basis_caption(mixed)
    assert data.UNTRACKED_CAPTION not in data.basis_caption(at_rest)


# ---- timeline -------------------------------------------------------------------------------------
def test_timeline_fills_quiet_hours_with_zero() -> None:
    tr = data.TimeRange(T0 + 10 * NS, T0 + 2 * H + 5 * NS)  # touches hours T0, T0+H, T0+2H
    counts = [HourCount("calf_left", T0, 4), HourCount("calf_right", T0 + 2 * H, 1)]
    frame = data.timeline_frame(counts, tr, ["calf_left", "calf_right"])
    hours = [pd.Timestamp(T0 + i * H, unit="ns", tz="UTC") for i in range(3)]
    assert list(frame.columns) == ["hour", "muscle", "twitches"]
    assert str(frame["hour"].dtype) == "datetime64[ns, UTC]"
    assert list(frame.itertuples(index=False, name=None)) == [
        (hours[0], "calf_left", 4),
        (hours[0], "calf_right", 0),
        (hours[1], "calf_left", 0),
        (hours[1], "calf_right", 0),
        (hours[2], "calf_left", 0),
        (hours[2], "calf_right", 1),
    ]


def test_timeline_range_ending_on_the_hour_excludes_that_hour() -> None:
    frame = data.timeline_frame([], data.TimeRange(T0, T0 + 2 * H), ["m"])
    assert list(frame["twitches"]) == [0, 0]


def test_timeline_too_long_to_fill_keeps_only_observed_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "MAX_TIMELINE_CELLS", 5)
    counts = [HourCount("a", T0, 2), HourCount("a", T0 + 5 * H, 3)]
    frame = data.timeline_frame(counts, data.TimeRange(T0, T0 + 10 * H), ["a"])
    assert list(frame["twitches"]) == [2, 3]


def test_timeline_hours_are_the_configured_zones_wall_clock() -> None:
    """The chart draws UTC time units, so the frame must carry New York's clock: 22:00 UTC is 17:00 EST."""
    ny = zoneinfo.ZoneInfo("America/New_York")
    frame = data.timeline_frame([HourCount("a", T0, 2)], data.TimeRange(T0, T0 + H), ["a"], ny)
    local = dt.datetime.fromtimestamp(T0 / 1e9, ny)
    assert list(frame["hour"]) == [pd.Timestamp(local.replace(tzinfo=None), tz="UTC")]
    assert frame["hour"][0].hour == (22 - 5) % 24


def test_event_times_are_the_configured_zones_wall_clock() -> None:
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")  # +05:30: a half-hour offset shows in the minutes too
    frame = data.events_frame([event("calf_left", T0)], kolkata)
    stamp = frame["time"][0]
    assert (stamp.day, stamp.hour, stamp.minute) == (15, 3, 30)  # 22:00 UTC on the 14th
    assert str(stamp.tz) == "UTC"


# ---- events ---------------------------------------------------------------------------------------
def test_events_frame_keeps_one_row_per_event() -> None:
    events = [
        event("calf_left", T0, amplitude=0.5),
        event("calf_right", T0 + NS, EventKind.SUSTAINED, amplitude=1.5),
    ]
    frame = data.events_frame(events)
    assert list(frame.columns) == ["time", "muscle", "kind", "amplitude", "unit", "duration_ms", "reason"]
    assert list(frame["time"]) == [
        pd.Timestamp(T0, unit="ns", tz="UTC"),
        pd.Timestamp(T0 + NS, unit="ns", tz="UTC"),
    ]
    assert list(frame["kind"]) == ["fasciculation", "sustained"]
    assert list(frame["amplitude"]) == [0.5, 1.5]
    assert list(frame["duration_ms"]) == [30.0, 30.0]


def test_events_frame_of_nothing_has_the_columns() -> None:
    frame = data.events_frame([])
    assert frame.empty
    assert list(frame.columns) == ["time", "muscle", "kind", "amplitude", "unit", "duration_ms", "reason"]


# ---- live -----------------------------------------------------------------------------------------
def test_live_table_counts_both_windows_and_the_latest_time() -> None:
    now = T0 + 30 * 60 * NS  # 22:30:00 UTC
    events = [
        event("calf_left", now - 601 * NS),  # outside both windows
        event("calf_left", now - 599 * NS),
        event("calf_left", now - 61 * NS),
        event("calf_left", now - 60 * NS),  # the 60 s window is [now-60 s, ...)
        event("calf_left", now - 10 * NS),
        event("calf_right", now - 300 * NS),
        event("calf_right", now - 200 * NS, EventKind.DURING_MOVEMENT),  # listed apart, not counted
    ]
    # Both worn all 10 minutes (the running minute 22:29 fully written), calf_right at rest half of it.
    rates = [rate("calf_left", minute, 60.0) for minute in range(20, 30)]
    rates += [rate("calf_right", minute, 60.0, 30.0) for minute in range(20, 30)]
    table = data.live_table(events, ["calf_left", "calf_right", "neck"], now, UTC, rates)
    assert table.to_dict("records") == [
        {
            "muscle": "calf_left",
            "twitches, last 60 s": 2,
            "twitches, last 10 min": 4,
            "per hour at rest, last 10 min": "24",  # 4 in 10 min at rest
            "at rest, last 10 min": "10.0 min",
            "worn, last 10 min": "10.0 min",
            "during movement, last 10 min": 0,
            "latest twitch": "22:29:50",
        },
        {
            "muscle": "calf_right",
            "twitches, last 60 s": 0,
            "twitches, last 10 min": 1,
            "per hour at rest, last 10 min": "12",  # 1 in 5 min at rest
            "at rest, last 10 min": "5.0 min",
            "worn, last 10 min": "10.0 min",
            "during movement, last 10 min": 1,
            "latest twitch": "22:25:00",
        },
        {
            "muscle": "neck",
            "twitches, last 60 s": 0,
            "twitches, last 10 min": 0,
            "per hour at rest, last 10 min": "—",  # never monitored: no rate, not a rate of 0
            "at rest, last 10 min": "0.0 min",
            "worn, last 10 min": "0.0 min",
            "during movement, last 10 min": 0,
            "latest twitch": "—",
        },
    ]
    assert data.live_summary(table) == (
        "Last 60 s: 2 twitches · last 10 min: 5 twitches (1 more during movement, not counted)"
    )


def test_live_rate_divides_by_the_time_at_rest_in_the_window() -> None:
    """A sensor put on 2.5 minutes ago with 5 twitches since is at 120 an hour, not 30 (5 per 10 min);
    the minute the window starts in counts for its part inside the window. A twitch in a minute stored
    before rest tracking counts in the totals, not in the rate at rest."""
    now = T0 + 30 * 60 * NS + 30 * NS  # 22:30:30: the window starts at 22:20:30
    events = [event("calf", now - k * 20 * NS) for k in range(5)]
    rates = [rate("calf", 28, 60.0), rate("calf", 29, 60.0), rate("calf", 30, 30.0)]  # the running minute
    rates += [rate("neck", 20, 60.0)]  # 22:20: half of it inside the window
    rates += [rate("arm", 29, 60.0, None)]  # an old worker's row
    events += [event("arm", now - 40 * NS)]
    table = data.live_table(events, ["calf", "neck", "arm"], now, UTC, rates)
    rows = {r["muscle"]: r for r in table.to_dict("records")}
    assert rows["calf"]["per hour at rest, last 10 min"] == "120"
    assert rows["calf"]["at rest, last 10 min"] == "2.5 min"
    assert rows["neck"]["worn, last 10 min"] == "0.5 min"
    assert rows["neck"]["per hour at rest, last 10 min"] == "0"
    assert (rows["arm"]["twitches, last 10 min"], rows["arm"]["per hour at rest, last 10 min"]) == (1, "—")
    assert rows["arm"]["worn, last 10 min"] == "1.0 min"


def test_every_view_of_a_muscles_rate_agrees(tmp_path: Path) -> None:
    """One hour of one user's data through every place that shows a rate: the Overview, the Live page,
    the journal's baseline, the flags' hourly tallies, the report and Home Assistant. ``calf`` is watched
    by an EMG and an accelerometer wearable at once (30 twitches in the hour, each counted by one of
    them after fusion; 5 more during movement, not counted), at rest half of each minute, and its first
    half hour was replayed from a recording of the EMG one; ``neck`` was worn for half of each minute and at
    rest a quarter (15 twitches). Both twitch 60 times per hour at rest. Summing the two devices' time
    halved the calf's rate on the Overview and in the journal; counting the replay doubled it in Home
    Assistant and the journal."""
    minute = 60 * NS
    now = T0 + H
    emg = [dataclasses.replace(event("calf", T0 + m * minute), device="emg") for m in range(24)]
    acc = [dataclasses.replace(event("calf", T0 + m * minute), device="acc") for m in range(52, 58)]
    neck = [dataclasses.replace(event("neck", T0 + m * minute), device="n") for m in range(45, 60)]
    replayed = [dataclasses.replace(e, source="replay") for e in emg]
    moved = [
        dataclasses.replace(event("calf", T0 + m * minute + 30 * NS, EventKind.DURING_MOVEMENT), device="emg")
        for m in range(54, 59)
    ]
    count = Counter((e.device, e.source, e.start_ns // minute * minute) for e in emg + acc + neck + replayed)
    worn: list[tuple[str, str, Source, range, float, float]] = [
        ("calf", "emg", "live", range(60), 60.0, 30.0),
        ("calf", "acc", "live", range(60), 60.0, 30.0),
        ("calf", "emg", "replay", range(30), 60.0, 30.0),
        ("neck", "n", "live", range(60), 30.0, 15.0),
    ]
    rates = [
        MinuteRate("me", muscle, dev, src, T0 + m * minute, count[(dev, src, T0 + m * minute)], seconds, rest)
        for muscle, dev, src, minutes, seconds, rest in worn
        for m in minutes
    ]
    with SQLiteStore(tmp_path / "e.db") as store:
        store.write_events(emg + acc + neck + replayed + moved)
        store.write_rates(rates)
        stored = store.rates(EventQuery(T0, now, user="me"))
        controls = app.Controls("custom", data.TimeRange(T0, now), "all", None)
        range_data = app.load_range(store, "me", controls, UTC)
        overview = data.frequency_table(
            range_data.twitch_counts,
            range_data.sustained_counts,
            range_data.rates,
            1.0,
            range_data.movement_counts,
            range_data.offset_ns,
        )
        report = build_report(store, T0, now, "me")
        live = data.live_table(
            store.events(EventQuery(now - 600 * NS, user="me")), ["calf", "neck"], now, UTC, stored
        )
    later = JournalEntry("me", now + H, Factor.CAFFEINE)  # every minute is baseline
    journal = {e.muscle: e.baseline.per_hour for e in factor_effects([later], stored)}
    tallies = {m: h.hours[T0] for m, h in histories(stored).items()}
    expected = {"calf": 60.0, "neck": 60.0}
    assert dict(zip(overview["muscle"], overview["twitches per hour at rest"], strict=True)) == expected
    assert dict(zip(overview["muscle"], overview["during movement (not counted)"], strict=True)) == {
        "calf": 5,
        "neck": 0,
    }
    assert {m.muscle: m.per_hour for m in report.muscles} == expected
    assert journal == expected
    assert {m: t.per_hour for m, t in tallies.items()} == expected
    assert {m: rate_per_hour(stored, m) for m in expected} == expected
    # The last 10 minutes: calf 6 twitches in 5 minutes at rest (10 worn), neck 10 in 2.5 (5 worn).
    assert list(live["per hour at rest, last 10 min"]) == ["72", "240"]
    assert list(live["during movement, last 10 min"]) == [5, 0]


def test_muscle_minutes_fold_devices_and_drop_replays_of_live_minutes() -> None:
    t = T0
    rates = [
        MinuteRate("me", "calf", "emg", "live", t, 2, 60.0, 60.0),
        MinuteRate("me", "calf", "acc", "live", t, 1, 45.0, 40.0),
        MinuteRate("me", "calf", "emg", "replay", t, 2, 60.0, 60.0),  # a rerun of the live minute
        MinuteRate("me", "calf", "edf", "replay", t + 60 * NS, 4, 60.0, 60.0),  # an import: the only record
        MinuteRate("me", "neck", "n", "live", t, 0, 61.0, 61.0),  # a clock's leap: never more than the minute
        MinuteRate("me", "arm", "old", "live", t, 5, 60.0, None),  # stored before rest tracking
        MinuteRate("me", "arm", "new", "live", t, 1, 30.0, 20.0),  # the upgraded worker, same minute
    ]
    assert muscle_minutes(rates) == {
        "calf": {t: (3, 60.0, 60.0), t + 60 * NS: (4, 60.0, 60.0)},
        "neck": {t: (0, 60.0, 60.0)},
        "arm": {t: (6, 60.0, None)},  # one row of unknown rest makes the minute's rest unknown
    }


def test_rest_tally_keeps_minutes_before_rest_tracking_apart() -> None:
    tally = RestTally.of([(2, 60.0, 30.0), (1, 60.0, 60.0), (7, 60.0, None), (0, 30.0, None)])
    assert (tally.twitches, tally.worn_s, tally.rest_s) == (3, 120.0, 90.0)
    assert (tally.untracked_twitches, tally.untracked_worn_s) == (7, 90.0)
    assert tally.per_hour == 3 * 3600 / 90  # at rest: the untracked minutes neither add nor dilute
    assert tally.untracked_per_hour == 7 * 3600 / 90  # per hour worn, shown apart
    assert tally.all_worn_h == 210 / 3600
    assert RestTally.of([(4, 60.0, None)]).per_hour is None


def test_live_table_latest_time_is_local() -> None:
    table = data.live_table([event("a", T0)], ["a"], T0 + NS, PLUS2)
    assert table.loc[0, "latest twitch"] == "00:00:00"  # 22:00 UTC


def test_live_summary_singular() -> None:
    table = data.live_table([event("a", T0)], [], T0 + NS, UTC)
    assert data.live_summary(table) == "Last 60 s: 1 twitch · last 10 min: 1 twitch"


def test_live_table_with_no_muscles_is_empty() -> None:
    table = data.live_table([], [], T0, UTC)
    assert table.empty
    assert data.live_summary(table) == "Last 60 s: 0 twitches · last 10 min: 0 twitches"


# ---- hour of day --------------------------------------------------------------------------------------
def test_hour_of_day_moves_utc_hours_to_local_hours_and_fills_zeros() -> None:
    # T0 is 22:00 UTC = 00:00 at UTC+2; the next day's 22:00 UTC adds to the same local hour.
    counts = [HourCount("a", T0, 3), HourCount("a", T0 + 24 * H, 2), HourCount("b", T0 + H, 1)]
    frame = data.hour_of_day_frame(counts, PLUS2, ["a", "b", "c"])
    assert len(frame) == 3 * 24
    got = {(r["muscle"], r["hour of day"]): r["twitches"] for r in frame.to_dict("records") if r["twitches"]}
    assert got == {("a", 0): 5, ("b", 1): 1}
    assert frame.loc[frame["muscle"] == "c", "twitches"].sum() == 0


def test_hour_offsets_of_zones() -> None:
    minute = 60 * NS
    assert hour_offset_ns(KOLKATA, T0) == 30 * minute
    assert hour_offset_ns(zoneinfo.ZoneInfo("Asia/Kathmandu"), T0) == 45 * minute
    assert hour_offset_ns(zoneinfo.ZoneInfo("America/St_Johns"), T0) == 30 * minute  # −3:30
    assert hour_offset_ns(zoneinfo.ZoneInfo("America/New_York"), T0) == 0
    assert hour_offset_ns(UTC, T0) == 0


def test_half_hour_zone_counts_land_in_its_clock_hours(tmp_path: Path) -> None:
    """16:10 and 16:40 in Kolkata (10:40 and 11:10 UTC) are one local hour: the UTC-hour grid split them
    between 15:00 and 16:00 on the heatmap, and the timeline's bars sat at :30."""
    day = T0 + 2 * H  # 00:00 UTC
    tr = data.TimeRange(day, day + 24 * H)
    controls = app.Controls("custom", tr, "live", "live")
    with SQLiteStore(tmp_path / "e.db") as store:
        store.write_events(
            [event("calf", day + 10 * H + 40 * 60 * NS), event("calf", day + 11 * H + 10 * 60 * NS)]
        )
        range_data = app.load_range(store, "me", controls, KOLKATA)
    assert range_data.twitch_counts == [HourCount("calf", day + 10 * H + 30 * 60 * NS, 2)]
    heat = data.hour_of_day_frame(range_data.twitch_counts, KOLKATA, ["calf"])
    assert {r["hour of day"]: r["twitches"] for r in heat.to_dict("records") if r["twitches"]} == {16: 2}
    line = data.timeline_frame(range_data.twitch_counts, tr, ["calf"], KOLKATA)
    assert {t.minute for t in line["hour"]} == {0}
    assert [t.hour for t, n in zip(line["hour"], line["twitches"], strict=True) if n] == [16]


def test_rerun_free_counts_on_a_half_hour_grid() -> None:
    half = H // 2
    live_minute = MinuteRate("me", "a", "dev", "live", T0 + half + 10 * 60 * NS, 1, 60.0, 60.0)
    replay = [HourCount("a", T0 - half, 4), HourCount("a", T0 + half, 5)]
    # The live minute lies in the clock hour starting at T0 + half: that replayed hour is a rerun.
    assert data.rerun_free_counts([], replay, [live_minute], half) == [HourCount("a", T0 - half, 4)]


def test_a_replay_filling_a_dropped_link_counts_its_twitches_with_its_time() -> None:
    """Live for the first half hour, then the link dropped; the device's recording replayed over the whole
    hour. The replay's first half repeats the live minutes (left out), its second half is the only record
    (counted: 30 twitches with their 30 minutes at rest). Before, the whole replayed hour was left out while
    its second half's time at rest still counted: the rate at rest was halved."""
    mins = range(60)
    rates = [MinuteRate("me", "a", "dev", "live", T0 + m * 60 * NS, 1, 60.0, 60.0) for m in mins if m < 30]
    rates += [MinuteRate("me", "a", "dev", "replay", T0 + m * 60 * NS, 1, 60.0, 60.0) for m in mins]
    counts = data.rerun_free_counts([HourCount("a", T0, 30)], [HourCount("a", T0, 60)], rates)
    assert counts == [HourCount("a", T0, 60)]
    table = data.frequency_table(counts, [], rates, 1.0)
    assert table.loc[0, data.COL_PER_HOUR] == pytest.approx(60.0)
    # Replayed on another device (a second sensor's own recording): its minutes all count.
    other = [MinuteRate("me", "a", "sd", "replay", T0 + m * 60 * NS, 1, 60.0, 60.0) for m in range(30, 60)]
    both = rates[:30] + other
    assert data.rerun_free_counts([HourCount("a", T0, 30)], [HourCount("a", T0, 30)], both) == [
        HourCount("a", T0, 60)
    ]


# ---- history ------------------------------------------------------------------------------------------
def test_daily_counts_per_local_day_with_zero_days_and_no_sustained() -> None:
    day1 = dt.date(2023, 11, 15)  # T0 = 2023-11-14 22:00 UTC = 2023-11-15 00:00 at UTC+2
    events = [
        event("a", T0),
        event("a", T0 + H),
        event("a", T0 + 48 * H),
        event("a", T0 + 2 * H, EventKind.SUSTAINED),
        event("a", T0 + 3 * H, EventKind.DURING_MOVEMENT),
        event("b", T0 + 25 * H, EventKind.MYOCLONIC_JERK),
    ]
    # "a" worn 90 minutes from 23:00 local on the 15th, at rest 40 s of each: 1 h worn that day, 0.5 h the
    # next; "c" worn before rest tracking, quiet.
    rates = [rate("a", m, 60.0, 40.0) for m in range(23 * 60, 23 * 60 + 90)] + [
        rate("c", 50 * 60, 30.0, None)
    ]
    daily = data.daily_counts(events, day1, day1 + dt.timedelta(days=2), PLUS2, rates)
    table = data.daily_table(daily)
    assert table.to_dict("records") == [
        {"day": "2023-11-15", "a": "2", "a hours at rest": "0.7 h", "a hours worn": "1.0 h",
         "a during movement (not counted)": "1", "b": "0", "b hours at rest": "0 h", "b hours worn": "—",
         "c": "0", "c hours at rest": "0 h", "c hours worn": "—"},
        {"day": "2023-11-16", "a": "0", "a hours at rest": "0.3 h", "a hours worn": "0.5 h",
         "a during movement (not counted)": "0", "b": "1", "b hours at rest": "0 h", "b hours worn": "—",
         "c": "0", "c hours at rest": "0 h", "c hours worn": "—"},
        {"day": "2023-11-17", "a": "1", "a hours at rest": "0 h", "a hours worn": "—",
         "a during movement (not counted)": "0", "b": "0", "b hours at rest": "0 h", "b hours worn": "—",
         "c": "0", "c hours at rest": "before rest tracking", "c hours worn": "< 0.1 h"},
    ]  # fmt: skip
    # The worker judges every twitch it stores: only a minute stored before rest tracking ("c"'s) keeps
    # its twitches out of the count at rest.
    assert list(daily[daily["muscle"] == "a"]["twitches at rest"]) == [2, 0, 1]
    old = data.daily_counts([event("c", T0 + 50 * H + NS)], day1, day1 + dt.timedelta(days=2), PLUS2, rates)
    assert list(old[old["muscle"] == "c"]["twitches"]) == [0, 0, 1]
    assert list(old[old["muscle"] == "c"]["twitches at rest"]) == [0, 0, 0]
    assert list(data.daily_table(daily, with_worn=False).columns) == [
        "day",
        "a",
        "a during movement (not counted)",
        "b",
        "c",
    ]


def daily_frame(rows: list[tuple[int, int, float]], muscle: str = "a") -> pd.DataFrame:
    """(day number from 2024-01-01, twitches at rest, hours at rest) rows as ``daily_counts`` gives them."""
    first = dt.date(2024, 1, 1)
    return pd.DataFrame(
        [(first + dt.timedelta(days=d), muscle, n, n, 2 * h, h, 0.0, 0) for d, n, h in rows],
        columns=[
            "day",
            "muscle",
            "twitches",
            "twitches at rest",
            "hours worn",
            "hours at rest",
            "hours worn before rest tracking",
            "during movement (not counted)",
        ],
    )


def test_trend_is_the_least_squares_slope_of_the_rate_per_hour_at_rest() -> None:
    daily = daily_frame([(0, 10, 10.0), (1, 60, 20.0), (2, 25, 5.0), (3, 28, 4.0)])  # 1, 3, 5, 7 per hour
    [trend] = data.trends(daily)
    assert trend.per_day_change == pytest.approx(2.0)
    assert trend.mean_per_hour == pytest.approx(4.0)
    line = data.trend_frame(daily, [trend])
    assert list(line["twitches per hour at rest"]) == pytest.approx([1.0, 3.0, 5.0, 7.0])
    assert list(line["trend"]) == pytest.approx([1.0, 3.0, 5.0, 7.0])
    assert data.trend_display([trend]).to_dict("records") == [
        {
            "muscle": "a",
            "twitches per hour at rest (mean)": "4.0",
            "change per week": "+14.0 per hour",
            "days": "4",
        }
    ]


def test_days_not_worn_are_no_data_not_quiet_days() -> None:
    """Thirteen days without the sensor, then two days worn: counted as zeros, the first days of wearing
    it read as a steep rise (+6.6 a week on a demo's first day). Only the days at rest long enough are
    fitted, at their true distance in days; days with less than TREND_MIN_HOURS at rest do not count."""
    rows = [(d, 0, 0.0) for d in range(13)] + [(13, 40, 8.0), (15, 40, 8.0), (16, 9, 1.0)]
    [trend] = data.trends(daily_frame(rows))
    assert data.TREND_MIN_HOURS == 2.0
    assert trend.days == 2
    assert trend.per_day_change == pytest.approx(0.0)
    assert trend.mean_per_hour == pytest.approx(5.0)
    assert data.trends(daily_frame([(d, 0, 0.0) for d in range(13)] + [(13, 33, 3.0)])) == []


def test_the_same_rate_worn_longer_is_no_trend() -> None:
    # 10 twitches in 2 h at rest, then 70 in 14 h: the count rose sevenfold, the rate did not move.
    [trend] = data.trends(daily_frame([(0, 10, 2.0), (1, 70, 14.0)]))
    assert trend.per_day_change == pytest.approx(0.0)


def test_a_single_day_has_no_trend() -> None:
    assert data.trends(daily_frame([(0, 3, 10.0)])) == []


def test_sessions_and_session_filter() -> None:
    import dataclasses

    events = [
        dataclasses.replace(event("a", T0), session_id="s1"),
        dataclasses.replace(event("a", T0 + NS), session_id="s2"),
        dataclasses.replace(event("a", T0 + 2 * NS), session_id=""),
    ]
    assert data.sessions(events) == [data.NO_SESSION, "s1", "s2"]
    assert [e.start_ns for e in data.in_session(events, "s2")] == [T0 + NS]
    assert [e.start_ns for e in data.in_session(events, data.NO_SESSION)] == [T0 + 2 * NS]
    assert len(data.in_session(events, None)) == 3


# ---- live signal --------------------------------------------------------------------------------------
def test_decimate_keeps_a_one_sample_spike_and_the_bound() -> None:
    import numpy as np

    t = np.arange(10_000, dtype=np.int64)
    v = np.zeros(10_000)
    v[4321] = 9.0
    v[777] = -3.0
    td, vd = data.decimate(t, v, 200)
    assert len(vd) <= 200
    assert vd.max() == 9.0
    assert vd.min() == -3.0
    assert 4321 in td
    assert 777 in td
    assert list(td) == sorted(td)


def test_decimate_leaves_short_signals_alone() -> None:
    import numpy as np

    t = np.arange(5, dtype=np.int64)
    v = np.arange(5, dtype=np.float64)
    _td, vd = data.decimate(t, v, 200)
    assert list(vd) == [0, 1, 2, 3, 4]


def test_drawn_trend_stops_at_zero() -> None:
    daily = daily_frame([(0, 0, 4.0), (1, 0, 4.0), (2, 0, 4.0), (3, 36, 4.0)])  # 0, 0, 0, 9 per hour
    [trend] = data.trends(daily)
    line = list(data.trend_frame(daily, [trend])["trend"])
    assert line[0] == 0.0  # the fit is 2.25 - 2.7 × 1.5 = -1.8 there
    assert line[3] == pytest.approx(2.25 + 2.7 * 1.5)


def test_report_file_names_its_local_dates(tmp_path: Path) -> None:
    zone = zoneinfo.ZoneInfo("America/New_York")
    since = to_ns(dt.datetime(2026, 11, 1, tzinfo=zone))
    until = to_ns(dt.datetime(2026, 11, 3, 22, 0, tzinfo=zone))  # 4 November in UTC
    with SQLiteStore(tmp_path / "e.db") as store:
        report = build_report(store, since, until, "alice", tz=zone)
    assert data.report_file_stem(report) == "twitchwatch-report-alice-2026-11-01-to-2026-11-03"


def test_a_day_of_walking_is_not_a_quiet_day_in_the_trend() -> None:
    """Two days worn 10 h: at rest 8 h with 8 twitches, then at rest 1 h (a hike) with 1. Per hour worn the
    second day read as a fall from 0.8 to 0.1; at rest both are 1 per hour, and the hike day, under
    TREND_MIN_HOURS at rest, is not fitted at all."""
    first = dt.date(2024, 1, 1)
    rows = [
        (first, "a", 8, 8, 10.0, 8.0, 0.0, 0),
        (first + dt.timedelta(days=1), "a", 1, 1, 10.0, 1.0, 0.0, 40),
    ]
    daily = pd.DataFrame(rows, columns=daily_frame([]).columns)
    assert data.trends(daily) == []  # one day fitted: no trend, not a falling one


# ---- Analyse ---------------------------------------------------------------------------------------------
def test_analyse_picks_the_recording_among_the_uploads() -> None:
    from twitchwatch.dashboard.analyse_view import main_file

    assert main_file(["walk.csv"]) == "walk.csv"
    assert main_file(["emg_healthy.dat", "emg_healthy.hea"]) == "emg_healthy.hea"  # a WFDB record
    with pytest.raises(ValueError, match=r"2 files: upload one recording at a time"):
        main_file(["a.csv", "b.csv"])


def test_analyse_errors_point_at_the_pages_fields_not_the_command_line() -> None:
    from twitchwatch.dashboard.analyse_view import error_text

    message = "x.csv: a CSV file has no sample rate: pass it (--rate HZ)"
    assert error_text("x.csv", message) == f"Could not analyse x.csv: {message} (set the sample rate above)"
    assert error_text("y.edf", "y.edf: no such file") == "Could not analyse y.edf: y.edf: no such file"
