"""Pure data shaping for the dashboard: store results in, pandas DataFrames out.

Nothing here talks to Streamlit or to a store, so every number the page shows can be unit-tested
with known inputs (``tests/test_dashboard_data.py``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from twitchwatch.processing.events import (
    EventKind,
    MinuteRate,
    MuscleMinutes,
    RestTally,
    Source,
    TwitchEvent,
    muscle_minutes,
    rerun_free_events,
    rerun_free_rates,
)
from twitchwatch.processing.felt import FELT_AFTER_S, FELT_BEFORE_S, FeltComparison
from twitchwatch.processing.flags import Flag, FlagRules
from twitchwatch.processing.journal import FactorEffect, JournalEntry
from twitchwatch.processing.localtime import (
    day_end_ns,
    day_of,
    day_start_ns,
    hour_of_day,
    hour_offset_ns,
    local_datetime,
)
from twitchwatch.processing.report import ReportData
from twitchwatch.processing.store import HourCount
from twitchwatch.processing.timeunits import HOUR_NS, MINUTE_NS, NS_PER_S

if TYPE_CHECKING:  # the Analyse page's values; the other pages need no detectors loaded
    from twitchwatch.processing.recordings import LaneSummary, RecordingEvent

RANGE_PRESETS: dict[str, dt.timedelta] = {
    "Last 1 h": dt.timedelta(hours=1),
    "Last 6 h": dt.timedelta(hours=6),
    "Last 24 h": dt.timedelta(hours=24),
    "Last 7 d": dt.timedelta(days=7),
    "Last 30 d": dt.timedelta(days=30),
}
CUSTOM_RANGE = "Custom dates"
RANGE_CHOICES: tuple[str, ...] = (*RANGE_PRESETS, CUSTOM_RANGE)

SOURCE_CHOICES: dict[str, Source | None] = {"all": None, "live": "live", "replay": "replay"}

LIVE_SHORT_S = 60
LIVE_LONG_S = 600
NO_TIME = "—"

# Column names double as the table headers on the page, so they are written for people.
COL_MUSCLE = "muscle"
COL_TWITCHES = "twitches"
COL_PER_HOUR = "twitches per hour at rest"
COL_REST_H = "hours at rest"
COL_WORN_H = "hours worn"
COL_BASIS = "per-hour basis"
COL_SUSTAINED = "sustained activity"
COL_MOVEMENT = "during movement (not counted)"
COL_UNTRACKED = "before rest tracking"
COL_LAST_SHORT = "twitches, last 60 s"
COL_LAST_LONG = "twitches, last 10 min"
COL_LATEST = "latest twitch"
COL_RATE_NOW = "per hour at rest, last 10 min"
COL_REST_NOW = "at rest, last 10 min"
COL_WORN_NOW = "worn, last 10 min"
COL_MOVED_NOW = "during movement, last 10 min"
BASIS_REST = "time at rest"
BASIS_NO_REST = "no time at rest"
BASIS_RANGE = "range length"

# Above this many (hour, muscle) cells the timeline is not zero-filled: a years-long custom range
# would otherwise ship hundreds of thousands of zeros to the browser.
MAX_TIMELINE_CELLS = 50_000


@dataclass(frozen=True)
class TimeRange:
    """Half-open [since_ns, until_ns), the same convention as ``EventQuery``."""

    since_ns: int
    until_ns: int

    @property
    def hours(self) -> float:
        return (self.until_ns - self.since_ns) / HOUR_NS

    def hour_offset_ns(self, tz: dt.tzinfo) -> int:
        """Where ``tz``'s clock hours start within each UTC hour over this range (its end's offset)."""
        return hour_offset_ns(tz, self.until_ns)


def preset_range(label: str, now_ns: int) -> TimeRange:
    """The last N hours/days up to now; ``label`` is a key of ``RANGE_PRESETS``."""
    span_ns = int(RANGE_PRESETS[label].total_seconds()) * NS_PER_S
    return TimeRange(now_ns - span_ns, now_ns)


def dates_range(first: dt.date, last: dt.date, tz: dt.tzinfo, now_ns: int) -> TimeRange:
    """Whole local days ``first``..``last`` inclusive, cut at now.

    Cutting at now matters for the per-hour fallback: the not-yet-lived rest of today would
    otherwise dilute the rate. Reversed dates are swapped rather than rejected, since a date
    picker makes that easy to do by accident.
    """
    first, last = min(first, last), max(first, last)
    since_ns = day_start_ns(first, tz)
    until_ns = max(since_ns, min(day_end_ns(last, tz), now_ns))
    return TimeRange(since_ns, until_ns)


def format_time(ns: int, tz: dt.tzinfo, with_date: bool = False) -> str:
    return local_datetime(ns, tz).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _sum_by_muscle(counts: Iterable[HourCount]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for c in counts:
        totals[c.muscle] += c.twitches
    return totals


def rest_split(
    counts: Sequence[HourCount], rates: Sequence[MinuteRate], offset_ns: int = 0
) -> dict[str, RestTally]:
    """Per muscle: the hourly twitch counts and the minute rates' time, at rest and before rest tracking
    apart (``RestTally``). Hourly counts carry no minute, so an hour holding any minute stored before rest
    tracking goes wholly to "before rest tracking" — its twitches and the worn time of all its minutes —
    and never into the rate at rest. ``offset_ns``: the counts' hour grid (``hourly_twitch_counts``)."""
    minutes = muscle_minutes(rates)
    untracked = {
        m: {_hour_start(t, offset_ns) for t, (_, _, rest) in mm.items() if rest is None}
        for m, mm in minutes.items()
    }
    totals: dict[str, list[float]] = {}  # twitches, worn, rest, untracked twitches, untracked worn
    for muscle, mm in minutes.items():
        slot = totals.setdefault(muscle, [0, 0.0, 0.0, 0, 0.0])
        old = untracked[muscle]
        for t, (_, worn, rest) in mm.items():
            if rest is None or _hour_start(t, offset_ns) in old:
                slot[4] += worn
            else:
                slot[1] += worn
                slot[2] += rest
    for c in counts:
        slot = totals.setdefault(c.muscle, [0, 0.0, 0.0, 0, 0.0])
        slot[3 if c.hour_ns in untracked.get(c.muscle, ()) else 0] += c.twitches
    return {m: RestTally(int(n), w, r, int(un), uw) for m, (n, w, r, un, uw) in totals.items()}


def untracked_words(tally: RestTally) -> str:
    """Twitches and hours worn before rest tracking, with their rate per hour worn; "—" for none."""
    if tally.untracked_worn_s <= 0:
        return NO_TIME
    rate = tally.untracked_per_hour or 0.0
    hours = tally.untracked_worn_s / 3600
    return f"{tally.untracked_twitches} in {hours:.1f} h worn ({rate:.2f} per hour worn)"


def frequency_table(
    twitch_counts: Sequence[HourCount],
    sustained_counts: Sequence[HourCount],
    rates: Sequence[MinuteRate],
    range_hours: float,
    movement_counts: Sequence[HourCount] = (),
    offset_ns: int = 0,
) -> pd.DataFrame:
    """One row per muscle: twitches, twitches per hour at rest with the hours at rest and worn beside it,
    what the rate was divided by, twitches before rest tracking (apart), and what was not counted.

    The rate is twitches at rest ÷ time at rest (the muscle relaxed and still; ``rest_split``): a sensor
    worn through a walk is not read as seeing no twitches in it, and twitch-like events during movement are
    counted apart (``movement_counts``), never as twitches. Time recorded before rest tracking is shown
    apart with its rate per hour worn, never in the rate at rest. A muscle worn but never at rest has no
    rate ("no time at rest"). Without any minute records (events only) the rate is twitches ÷ the range
    length, and says so. Muscles that were monitored but never twitched get a row with 0, which is
    information too. Sustained activity is counted apart and never as a twitch.
    """
    twitches = _sum_by_muscle(twitch_counts)
    sustained = _sum_by_muscle(sustained_counts)
    moved = _sum_by_muscle(movement_counts)
    split = rest_split(twitch_counts, rates, offset_ns)
    worn = {m: t for m, t in split.items() if t.all_worn_s > 0}
    muscles = sorted(set(twitches) | set(sustained) | set(moved) | set(worn))
    rows = []
    for muscle in muscles:
        tally = worn.get(muscle)
        if tally is None:
            per_hour = twitches[muscle] / range_hours if range_hours > 0 else 0.0
            rest_h = worn_h = float("nan")
            basis = BASIS_RANGE
            before = NO_TIME
        else:
            rate = tally.per_hour
            per_hour = float("nan") if rate is None else rate
            rest_h, worn_h = tally.rest_h, tally.all_worn_h
            basis = BASIS_REST if tally.rest_s > 0 else BASIS_NO_REST
            before = untracked_words(tally)
        rows.append(
            {
                COL_MUSCLE: muscle,
                COL_TWITCHES: twitches[muscle],
                COL_PER_HOUR: per_hour,
                COL_REST_H: rest_h,
                COL_WORN_H: worn_h,
                COL_BASIS: basis,
                COL_UNTRACKED: before,
                COL_MOVEMENT: moved[muscle],
                COL_SUSTAINED: sustained[muscle],
            }
        )
    columns = [
        COL_MUSCLE,
        COL_TWITCHES,
        COL_PER_HOUR,
        COL_REST_H,
        COL_WORN_H,
        COL_BASIS,
        COL_UNTRACKED,
        COL_MOVEMENT,
        COL_SUSTAINED,
    ]
    return pd.DataFrame(rows, columns=columns).astype(
        {
            COL_TWITCHES: "int64",
            COL_PER_HOUR: "float64",
            COL_REST_H: "float64",
            COL_WORN_H: "float64",
            COL_MOVEMENT: "int64",
            COL_SUSTAINED: "int64",
        }
    )


def frequency_display(table: pd.DataFrame) -> pd.DataFrame:
    """The frequency table as the strings the page shows (2 decimals, "—" where there is no number), so
    tests can compare text."""
    shown = table.copy()
    for col in (COL_PER_HOUR, COL_REST_H, COL_WORN_H):
        shown[col] = [_two(v) for v in table[col]]
    for col in (COL_TWITCHES, COL_MOVEMENT, COL_SUSTAINED):
        shown[col] = [str(v) for v in table[col]]
    return shown


def _two(value: float) -> str:
    return NO_TIME if math.isnan(value) else f"{value:.2f}"


UNTRACKED_CAPTION = (
    "Time recorded before rest tracking is shown apart (“before rest tracking”: its twitches per hour "
    "worn, movement included), never in the rate at rest."
)


def basis_caption(table: pd.DataFrame) -> str:
    """Say what the per-hour numbers were divided by: the reader cannot tell from the numbers."""
    bases = set(table[COL_BASIS])
    at_rest = (
        "Twitches per hour at rest = twitches at rest ÷ time at rest: the time the muscle was relaxed and "
        "still (no voluntary activity on it, no movement of its limb), from the worker's per-minute "
        "records; a twitch cannot be told apart from movement during a contraction or a walk. Twitch-like "
        "events then are counted apart (during movement) and never as twitches."
    )
    if bases == {BASIS_RANGE}:
        text = (
            "Twitches per hour = twitches ÷ length of the selected range (no per-minute records in this "
            "range, so neither the time worn nor the time at rest is known)."
        )
    elif BASIS_RANGE in bases:
        text = at_rest + " Muscles without per-minute records are divided by the range length instead (see "
        text += "the per-hour basis column)."
    else:
        text = at_rest
    if (table[COL_UNTRACKED] != NO_TIME).any():
        text += " " + UNTRACKED_CAPTION
    return text


# Under this much time at rest a muscle's per-hour rate is an extrapolation from minutes: say so.
SHORT_MONITORING_H = 1.0


def short_monitoring_caption(table: pd.DataFrame) -> str | None:
    """Name the muscles whose rate at rest rests on under ``SHORT_MONITORING_H`` at rest (a few twitches in
    the first minutes of wearing a sensor read as hundreds an hour), or None."""
    short = table[(table[COL_BASIS] == BASIS_REST) & (table[COL_REST_H] < SHORT_MONITORING_H)]
    if short.empty:
        return None
    rows = zip(short[COL_MUSCLE], short[COL_REST_H], strict=True)
    parts = [f"{m} ({_minutes_text(h * 60)})" for m, h in rows]
    return (
        f"At rest under {SHORT_MONITORING_H:g} h in this range: {', '.join(parts)}. Their rates at rest are "
        "extrapolated from that little time and will move as more is recorded."
    )


def _minutes_text(minutes: float) -> str:
    return "under 1 min" if minutes < 1 else f"{minutes:.0f} min"


def rerun_free_counts(
    live: Sequence[HourCount], replay: Sequence[HourCount], rates: Sequence[MinuteRate], offset_ns: int = 0
) -> list[HourCount]:
    """Hourly counts of live and replayed twitches together, a replay of live data counted once, minute by
    minute as ``processing.events.rerun_free_rates`` decides: an hour of a muscle without live minutes
    takes its replayed count whole; in an hour with live minutes, the replayed minutes without a live row of
    their device (a replay filling a dropped link) add their own twitches, from their minute rates (which
    count the twitches stored in them), since hourly counts carry no minute. Left out whole, they made the
    twitches shrink while their time at rest still counted. ``offset_ns``: the counts' hour grid
    (``EventStore.hourly_twitch_counts``)."""
    live_hours = {(r.muscle, _hour_start(r.minute_ns, offset_ns)) for r in rates if r.source == "live"}
    merged: dict[tuple[int, str], int] = {(c.hour_ns, c.muscle): c.twitches for c in live}
    for c in replay:
        if (c.muscle, c.hour_ns) not in live_hours:
            merged[(c.hour_ns, c.muscle)] = merged.get((c.hour_ns, c.muscle), 0) + c.twitches
    for r in rerun_free_rates(rates):
        hour = _hour_start(r.minute_ns, offset_ns)
        if r.source == "replay" and r.twitches and (r.muscle, hour) in live_hours:
            merged[(hour, r.muscle)] = merged.get((hour, r.muscle), 0) + r.twitches
    return [HourCount(muscle, hour, n) for (hour, muscle), n in sorted(merged.items())]


def _hour_start(ns: int, offset_ns: int) -> int:
    return ns - (ns - offset_ns) % HOUR_NS


def wall_clock(times: pd.Series, tz: dt.tzinfo) -> pd.Series:
    """UTC instants as the clock on the wall in ``tz``, labelled UTC. The browser's chart library draws
    times in the *browser's* zone unless told they are UTC; the charts draw these with UTC time units, so
    they show the configured zone's clock (the one every caption names) wherever the page is opened."""
    local = times.dt.tz_convert(tz).dt.tz_localize(None)
    out: pd.Series = local.dt.tz_localize("UTC")
    return out


def timeline_frame(
    counts: Sequence[HourCount], time_range: TimeRange, muscles: Sequence[str], tz: dt.tzinfo = dt.UTC
) -> pd.DataFrame:
    """Hourly twitch counts per muscle, with hours without twitches filled in as 0.

    The store only returns hours that had events; filling the rest makes the chart's time axis span
    the chosen range (a quiet morning shows as quiet, not as missing) and keeps every hour in the
    tooltips and data. Hours are ``tz``'s clock hours (counts from ``hourly_twitch_counts`` with
    ``time_range.hour_offset_ns(tz)``). Columns: hour (``tz``'s wall clock, see ``wall_clock``), muscle,
    twitches.
    """
    offset = time_range.hour_offset_ns(tz)
    first_hour = _hour_start(time_range.since_ns, offset)
    last_hour = _hour_start(max(time_range.until_ns, time_range.since_ns + 1) - 1, offset)
    hours = range(first_hour, last_hour + HOUR_NS, HOUR_NS)
    names = sorted(set(muscles) | {c.muscle for c in counts})
    observed = {(c.hour_ns, c.muscle): c.twitches for c in counts}
    if len(hours) * len(names) <= MAX_TIMELINE_CELLS:
        cells = [(h, m, observed.get((h, m), 0)) for h in hours for m in names]
    else:
        cells = [(c.hour_ns, c.muscle, c.twitches) for c in counts]
    frame = pd.DataFrame(cells, columns=["hour_ns", COL_MUSCLE, COL_TWITCHES])
    frame.insert(0, "hour", wall_clock(pd.to_datetime(frame.pop("hour_ns"), unit="ns", utc=True), tz))
    return frame.astype({COL_TWITCHES: "int64"})


def events_frame(events: Sequence[TwitchEvent], tz: dt.tzinfo = dt.UTC) -> pd.DataFrame:
    """Individual events for the scatter: time (``tz``'s wall clock, see ``wall_clock``), muscle, kind,
    amplitude, unit, duration and, for an event not counted, why."""
    frame = pd.DataFrame(
        [(e.start_ns, e.muscle, e.kind.value, e.amplitude, e.unit, e.duration_ms, e.reason) for e in events],
        columns=["time_ns", COL_MUSCLE, "kind", "amplitude", "unit", "duration_ms", "reason"],
    )
    times = pd.to_datetime(frame.pop("time_ns").astype("int64"), unit="ns", utc=True)
    frame.insert(0, "time", wall_clock(times, tz))
    return frame.astype({"amplitude": "float64", "duration_ms": "float64"})


def live_table(
    events: Sequence[TwitchEvent],
    muscles: Sequence[str],
    now_ns: int,
    tz: dt.tzinfo,
    rates: Sequence[MinuteRate] = (),
) -> pd.DataFrame:
    """Per muscle: twitches in the last 60 s and 10 min, the current rate (twitches per hour at rest over
    the last 10 min, as the Overview counts it), the time at rest and worn it rests on, the twitch-like
    events during movement (not counted) and the time of the latest twitch.

    ``events`` are the twitches and during-movement events of the last 10 min and ``rates`` the minute
    rates overlapping it (the caller queries exactly that window), so a muscle quiet for longer shows 0 / 0
    / "—". A sensor worn for 2 of the 10 minutes, or at rest for 2 of them, gives its rate over those 2,
    not a fifth of it; with no time at rest (none recorded yet, or the muscle moving all along) the rate is
    "—". Twitches in minutes stored before rest tracking count in the totals, not in the rate. A replay of
    live minutes is counted once. Every known muscle gets a row, so a quiet sensor is visible as quiet
    rather than missing. Events stamped after ``now_ns`` (a device clock running ahead) still count: they
    are the freshest data there is.
    """
    short_since = now_ns - LIVE_SHORT_S * NS_PER_S
    long_since = now_ns - LIVE_LONG_S * NS_PER_S
    short: Counter[str] = Counter()
    long: Counter[str] = Counter()
    at_rest: Counter[str] = Counter()
    moved: Counter[str] = Counter()
    latest: dict[str, int] = {}
    minutes = muscle_minutes(rates)
    for e in rerun_free_events(events, rates):
        if e.start_ns < long_since:
            continue
        if e.kind is EventKind.DURING_MOVEMENT:
            moved[e.muscle] += 1
            continue
        if not e.kind.is_twitch:
            continue
        long[e.muscle] += 1
        if e.start_ns >= short_since:
            short[e.muscle] += 1
        if not _before_tracking(minutes, e):
            at_rest[e.muscle] += 1
        latest[e.muscle] = max(latest.get(e.muscle, e.start_ns), e.start_ns)
    worn, rest = _time_since(minutes, long_since)
    names = sorted(set(muscles) | set(long) | set(moved))
    rows = [
        {
            COL_MUSCLE: m,
            COL_LAST_SHORT: short[m],
            COL_LAST_LONG: long[m],
            COL_RATE_NOW: f"{at_rest[m] * 3600 / rest[m]:.0f}" if rest[m] > 0 else NO_TIME,
            COL_REST_NOW: f"{rest[m] / 60:.1f} min",
            COL_WORN_NOW: f"{worn[m] / 60:.1f} min",
            COL_MOVED_NOW: moved[m],
            COL_LATEST: format_time(latest[m], tz) if m in latest else NO_TIME,
        }
        for m in names
    ]
    columns = [
        COL_MUSCLE,
        COL_LAST_SHORT,
        COL_LAST_LONG,
        COL_RATE_NOW,
        COL_REST_NOW,
        COL_WORN_NOW,
        COL_MOVED_NOW,
        COL_LATEST,
    ]
    return pd.DataFrame(rows, columns=columns).astype(
        {COL_LAST_SHORT: "int64", COL_LAST_LONG: "int64", COL_MOVED_NOW: "int64"}
    )


def _before_tracking(minutes: Mapping[str, MuscleMinutes], e: TwitchEvent) -> bool:
    """Whether the twitch's minute was stored before rest tracking (its rest unknown). The worker judges
    every twitch it stores, so one without a minute rate yet (the running minute) is at rest."""
    seen = minutes.get(e.muscle, {}).get(e.start_ns - e.start_ns % MINUTE_NS)
    return seen is not None and seen[2] is None


def _time_since(
    minutes: Mapping[str, MuscleMinutes], since_ns: int
) -> tuple[defaultdict[str, float], defaultdict[str, float]]:
    """Seconds worn and at rest per muscle from ``since_ns`` on (``muscle_minutes``). The minute
    ``since_ns`` falls in counts for the part after it, as if worn evenly; the running minute counts what
    the worker has written of it so far. Minutes stored before rest tracking add no time at rest."""
    worn: defaultdict[str, float] = defaultdict(float)
    rest: defaultdict[str, float] = defaultdict(float)
    for muscle, by_minute in minutes.items():
        for minute_ns, (_, seconds, at_rest) in by_minute.items():
            after = minute_ns + MINUTE_NS - max(minute_ns, since_ns)
            if after > 0:
                share = min(after / MINUTE_NS, 1.0)
                worn[muscle] += seconds * share
                rest[muscle] += (at_rest or 0.0) * share
    return worn, rest


def live_summary(table: pd.DataFrame) -> str:
    """One findable line with the totals, e.g. ``Last 60 s: 3 twitches · last 10 min: 41 twitches``, and
    what was not counted."""
    short = int(table[COL_LAST_SHORT].sum())
    long = int(table[COL_LAST_LONG].sum())
    moved = int(table[COL_MOVED_NOW].sum())
    line = f"Last 60 s: {_twitches(short)} · last 10 min: {_twitches(long)}"
    return line + (f" ({moved} more during movement, not counted)" if moved else "")


def _twitches(n: int) -> str:
    return f"{n} twitch" if n == 1 else f"{n} twitches"


# ---- overview: hour-of-day heatmap --------------------------------------------------------------------
COL_HOUR_OF_DAY = "hour of day"
COL_DAY = "day"
COL_AT_REST = "twitches at rest"
COL_UNTRACKED_H = "hours worn before rest tracking"
COL_RATE_REST = "twitches per hour at rest"
NOT_WORN = "—"
# A day counts in the per-hour trend with this long at rest: an observed day as the rising flag counts it.
TREND_MIN_HOURS = FlagRules().min_monitored_hours
COL_TREND = "trend"


def hour_of_day_frame(counts: Sequence[HourCount], tz: dt.tzinfo, muscles: Sequence[str]) -> pd.DataFrame:
    """Twitches per muscle per local hour of day (0-23), summed over the range, zero-filled.

    Counts arrive per clock hour of ``tz`` (``hourly_twitch_counts`` on the range's
    ``hour_offset_ns``, so UTC+5:30's hours start at :30 UTC); each is given to the local hour it starts
    in. Columns: muscle, hour of day, twitches.
    """
    totals: Counter[tuple[str, int]] = Counter()
    for c in counts:
        totals[(c.muscle, hour_of_day(c.hour_ns, tz))] += c.twitches
    names = sorted(set(muscles) | {c.muscle for c in counts})
    rows = [(m, h, totals[(m, h)]) for m in names for h in range(24)]
    frame = pd.DataFrame(rows, columns=[COL_MUSCLE, COL_HOUR_OF_DAY, COL_TWITCHES])
    return frame.astype({COL_HOUR_OF_DAY: "int64", COL_TWITCHES: "int64"})


# ---- history: daily counts and trends ---------------------------------------------------------------------
def sessions(events: Iterable[TwitchEvent]) -> list[str]:
    """Session ids seen in ``events``, sorted; events without one are listed as ``NO_SESSION``."""
    return sorted({e.session_id or NO_SESSION for e in events})


NO_SESSION = "(no session)"


def in_session(events: Iterable[TwitchEvent], session: str | None) -> list[TwitchEvent]:
    if session is None:
        return list(events)
    return [e for e in events if (e.session_id or NO_SESSION) == session]


def daily_counts(
    events: Sequence[TwitchEvent],
    first: dt.date,
    last: dt.date,
    tz: dt.tzinfo,
    rates: Sequence[MinuteRate] = (),
) -> pd.DataFrame:
    """Twitches, hours worn and hours at rest per muscle per local day ``first``..``last``, days without
    twitches as 0.

    ``events`` are twitches and during-movement events (the caller queries those kinds); anything else is
    ignored, so sustained activity can never inflate a day, and events during movement are counted in their
    own column, never as twitches. A twitch counts *at rest* unless its minute was stored before rest
    tracking; then it counts in the day's twitches but not at rest, and that minute's worn time is in its
    own column. Hours are from the minute rates (``muscle_minutes``); 0 where the sensor was off — or
    where ``rates`` were not given. A muscle that was worn but never twitched gets its rows too. Columns:
    day (date), muscle, twitches, twitches at rest, hours worn, hours at rest, hours worn before rest
    tracking, during movement.
    """
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    starts = [day_start_ns(d, tz) for d in days]  # a bisect per minute, not a zone lookup
    ends = [day_end_ns(d, tz) for d in days]
    minutes = muscle_minutes(rates)
    counts: Counter[tuple[dt.date, str]] = Counter()
    resting: Counter[tuple[dt.date, str]] = Counter()
    moved: Counter[tuple[dt.date, str]] = Counter()
    for e in events:
        key = (day_of(e.start_ns, tz), e.muscle)
        if e.kind is EventKind.DURING_MOVEMENT:
            moved[key] += 1
        elif e.kind.is_twitch:
            counts[key] += 1
            if not _before_tracking(minutes, e):
                resting[key] += 1
    hours: defaultdict[tuple[dt.date, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for muscle, by_minute in minutes.items():
        for minute_ns, (_, seconds, rest) in by_minute.items():
            i = bisect.bisect_right(starts, minute_ns) - 1
            if i >= 0 and minute_ns < ends[i]:
                slot = hours[(days[i], muscle)]
                slot[0] += seconds / 3600.0
                if rest is None:
                    slot[2] += seconds / 3600.0
                else:
                    slot[1] += rest / 3600.0
    names = sorted(
        {m for _, m in counts} | {m for _, m in moved} | {m for (_, m), h in hours.items() if h[0] > 0}
    )
    rows = [
        (d, m, counts[(d, m)], resting[(d, m)], *hours.get((d, m), (0.0, 0.0, 0.0)), moved[(d, m)])
        for d in days
        for m in names
    ]
    columns = [
        COL_DAY,
        COL_MUSCLE,
        COL_TWITCHES,
        COL_AT_REST,
        COL_WORN_H,
        COL_REST_H,
        COL_UNTRACKED_H,
        COL_MOVEMENT,
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype(
        {
            COL_TWITCHES: "int64",
            COL_AT_REST: "int64",
            COL_WORN_H: "float64",
            COL_REST_H: "float64",
            COL_UNTRACKED_H: "float64",
            COL_MOVEMENT: "int64",
        }
    )


@dataclass(frozen=True)
class Trend:
    muscle: str
    per_day_change: float  # least-squares slope of twitches per hour at rest, per day
    mean_per_hour: float  # mean of the fitted days' twitches per hour at rest
    days: int  # days in the fit (at rest ≥ TREND_MIN_HOURS)


def trends(daily: pd.DataFrame, min_hours: float = TREND_MIN_HOURS) -> list[Trend]:
    """A least-squares line through each muscle's daily rate (twitches per hour at rest), over the days at
    rest at least ``min_hours`` (two such days or more), at their true distance in days.

    Rates, not counts: a day worn 2 h and a day worn 14 h have different counts at the same rate, and a
    day not worn at all is no data, not a day without twitches — fitted as 0, the first days of wearing
    the sensor read as a steep rise. At rest, not worn: a day of walking is not a day without twitches
    either. Days before rest tracking have no time at rest and are not fitted. The slope is descriptive
    only: no significance test here (the ``rising`` flag does that).
    """
    result = []
    for muscle, group in daily.groupby(COL_MUSCLE, sort=True):
        xs, ys = _fit_points(group, min_hours)
        n = len(ys)
        if n < 2:
            continue
        mean_x, mean_y = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mean_x) ** 2 for x in xs)
        sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
        result.append(Trend(str(muscle), sxy / sxx, mean_y, n))
    return result


def _fit_points(group: pd.DataFrame, min_hours: float) -> tuple[list[float], list[float]]:
    """(day number from the epoch, twitches per hour at rest) of the days at rest at least ``min_hours``."""
    kept = group[group[COL_REST_H] >= max(min_hours, 1e-9)].sort_values(COL_DAY)
    xs = [float(d.toordinal()) for d in kept[COL_DAY]]
    ys = [float(t) / float(h) for t, h in zip(kept[COL_AT_REST], kept[COL_REST_H], strict=True)]
    return xs, ys


def trend_frame(
    daily: pd.DataFrame, fitted: Sequence[Trend], min_hours: float = TREND_MIN_HOURS
) -> pd.DataFrame:
    """Each fitted day's rate and the fitted line there, for drawing. Columns: day, muscle, twitches per
    hour at rest, trend.

    Drawn values stop at 0: a steep line can dip below zero at its start, and a negative rate would only
    confuse (the slope in the table is the fitted one)."""
    rows = []
    for t in fitted:
        group = daily[daily[COL_MUSCLE] == t.muscle]
        xs, ys = _fit_points(group, min_hours)
        mean_x = sum(xs) / len(xs)
        for x, y in zip(xs, ys, strict=True):
            line = max(0.0, t.mean_per_hour + t.per_day_change * (x - mean_x))
            rows.append((dt.date.fromordinal(int(x)), t.muscle, y, line))
    columns = [COL_DAY, COL_MUSCLE, COL_RATE_REST, COL_TREND]
    return pd.DataFrame(rows, columns=columns).astype({COL_RATE_REST: "float64", COL_TREND: "float64"})


def trend_display(fitted: Sequence[Trend]) -> pd.DataFrame:
    columns = [COL_MUSCLE, "twitches per hour at rest (mean)", "change per week", "days"]
    rows = [
        dict(
            zip(
                columns,
                (t.muscle, f"{t.mean_per_hour:.1f}", f"{t.per_day_change * 7:+.1f} per hour", str(t.days)),
                strict=True,
            )
        )
        for t in fitted
    ]
    return pd.DataFrame(rows, columns=columns)


BEFORE_TRACKING = "before rest tracking"


def daily_table(daily: pd.DataFrame, with_worn: bool = True) -> pd.DataFrame:
    """Days as rows; per muscle its twitches, and (``with_worn``) the hours it was at rest and worn: "—" for
    a day without the sensor, so a day not worn never reads as a quiet day, and "before rest tracking"
    where the time at rest is not known."""
    if daily.empty:
        return pd.DataFrame(columns=[COL_DAY])
    shown = pd.DataFrame({COL_DAY: [d.isoformat() for d in sorted(set(daily[COL_DAY]))]})
    for muscle, group in daily.groupby(COL_MUSCLE, sort=True):
        ordered = group.sort_values(COL_DAY)
        shown[str(muscle)] = [str(int(n)) for n in ordered[COL_TWITCHES]]
        if with_worn:
            shown[f"{muscle} {COL_REST_H}"] = [
                _rest(r, u) for r, u in zip(ordered[COL_REST_H], ordered[COL_UNTRACKED_H], strict=True)
            ]
            shown[f"{muscle} {COL_WORN_H}"] = [_worn(h) for h in ordered[COL_WORN_H]]
        moved = ordered[COL_MOVEMENT]
        if moved.any():
            shown[f"{muscle} {COL_MOVEMENT}"] = [str(int(n)) for n in moved]
    return shown


def _rest(rest_h: float, untracked_h: float) -> str:
    if untracked_h > 0:
        known = f"{_worn(rest_h)} + " if rest_h > 0 else ""
        return f"{known}{BEFORE_TRACKING}"
    return _worn(rest_h) if rest_h > 0 else "0 h"


def _worn(hours: float) -> str:
    if hours <= 0:
        return NOT_WORN
    return f"{hours:.1f} h" if hours >= 0.05 else "< 0.1 h"


def movement_display(events: Sequence[TwitchEvent], tz: dt.tzinfo, limit: int) -> pd.DataFrame:
    """Twitch-like events found while the muscle could not be assessed, newest first, with why: listed,
    never counted."""
    moved = sorted((e for e in events if e.kind is EventKind.DURING_MOVEMENT), key=lambda e: -e.start_ns)
    rows = [
        {
            "time": format_time(e.start_ns, tz, with_date=True),
            COL_MUSCLE: e.muscle,
            "why not counted": e.reason,
        }
        for e in moved[:limit]
    ]
    return pd.DataFrame(rows, columns=["time", COL_MUSCLE, "why not counted"])


# ---- live: signal for display ---------------------------------------------------------------------------
def decimate(
    t_ns: npt.NDArray[np.int64], values: npt.NDArray[np.float64], max_points: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """At most ``max_points`` points that keep the signal's envelope: each bucket contributes its
    minimum and its maximum (in time order), so a 1 ms twitch spike survives decimation where
    plain striding would skip it."""
    n = len(values)
    if n <= max_points:
        return t_ns, values
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep: list[int] = []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        lo = a + int(np.argmin(values[a:b]))
        hi = a + int(np.argmax(values[a:b]))
        keep += sorted({lo, hi})
    idx = np.asarray(keep, dtype=np.int64)
    return t_ns[idx], values[idx]


# ---- flags --------------------------------------------------------------------------------------------
COL_FLAG = "flag"
COL_WHERE = "where"
COL_WHAT = "what was seen"
COL_RULE = "rule"
COL_DATES = "dates"


def flags_display(flags: Sequence[Flag]) -> pd.DataFrame:
    """One row per flag with its rule, its numbers in words and the dates that raised it; symptoms
    first, then sensor faults, each by muscle."""
    ordered = sorted(flags, key=lambda f: (not f.kind.is_symptom, f.muscle or f.device, f.kind.value))
    rows = [
        {
            COL_FLAG: f.kind.value if f.kind.is_symptom else f"{f.kind.value} (sensor fault)",
            COL_WHERE: f.muscle or f"device {f.device}",
            COL_WHAT: f.summary,
            COL_RULE: f.rule,
            COL_DATES: (
                f.first_day.isoformat()
                if f.first_day == f.last_day
                else f"{f.first_day.isoformat()} – {f.last_day.isoformat()}"
            ),
        }
        for f in ordered
    ]
    return pd.DataFrame(rows, columns=[COL_FLAG, COL_WHERE, COL_WHAT, COL_RULE, COL_DATES])


# ---- journal ------------------------------------------------------------------------------------------
JOURNAL_COLUMNS = ["time", "factor", "amount", "muscle", "note"]
COL_AFTER = "per hour at rest after"
COL_BASELINE = "per hour at rest baseline"
COL_EFFECT_HOURS = "at rest after / baseline"
COL_RATIO = "after ÷ baseline"


def journal_display(entries: Sequence[JournalEntry], tz: dt.tzinfo) -> pd.DataFrame:
    """Entries newest first, as text."""
    rows = [
        {
            "time": format_time(e.time_ns, tz, with_date=True)[:16],
            "factor": e.factor.value,
            "amount": e.amount,
            "muscle": e.muscle,
            "note": e.note,
        }
        for e in sorted(entries, key=lambda e: (e.time_ns, e.entry_id), reverse=True)
    ]
    return pd.DataFrame(rows, columns=JOURNAL_COLUMNS)


def entry_label(entry: JournalEntry, tz: dt.tzinfo) -> str:
    amount = f" {entry.amount}" if entry.amount else ""
    return f"{format_time(entry.time_ns, tz, with_date=True)[:16]} · {entry.factor.value}{amount}"


def _per_hour(value: float | None) -> str:
    return NO_TIME if value is None else f"{value:.2f}"


def effects_display(effects: Sequence[FactorEffect]) -> pd.DataFrame:
    """Per factor and muscle: the twitch rate in the hours after the entries vs the baseline, as text.

    Rows where neither side had time at rest say nothing and are left out."""
    rows = [
        {
            "factor": e.factor.value,
            COL_MUSCLE: e.muscle,
            "entries": str(e.entries),
            "window": f"{e.window_h:g} h after",
            COL_AFTER: _per_hour(e.after.per_hour),
            COL_BASELINE: _per_hour(e.baseline.per_hour),
            COL_RATIO: NO_TIME if e.ratio is None else f"×{e.ratio:.2f}",
            COL_EFFECT_HOURS: f"{e.after.rest_s / 3600:.1f} h / {e.baseline.rest_s / 3600:.1f} h",
        }
        for e in effects
        if e.after.rest_s > 0 or e.baseline.rest_s > 0
    ]
    columns = [
        "factor",
        COL_MUSCLE,
        "entries",
        "window",
        COL_AFTER,
        COL_BASELINE,
        COL_RATIO,
        COL_EFFECT_HOURS,
    ]
    return pd.DataFrame(rows, columns=columns)


# ---- body map -----------------------------------------------------------------------------------------
COL_ON_MAP = "on the body map"


def body_map_display(
    rates: Mapping[str, float], placed: Mapping[str, str], unplaced: Sequence[str]
) -> pd.DataFrame:
    """The body map's numbers as a table beside it: every muscle, its rate and whether (and in which
    colour) the figure shows it; names the figure does not know are listed as not shown."""
    rows = [
        {
            COL_MUSCLE: m,
            COL_PER_HOUR: f"{rates[m]:.2f}",
            COL_ON_MAP: f"yes ({placed[m]})" if m in placed else "no: name not recognised",
        }
        for m in sorted(rates)
        if m in placed or m in unplaced
    ]
    return pd.DataFrame(rows, columns=[COL_MUSCLE, COL_PER_HOUR, COL_ON_MAP])


# ---- felt ---------------------------------------------------------------------------------------------
COL_FELT = "felt"
COL_FELT_NEAR = "felt, with a detection near"
COL_CHANCE = "by chance alone (about)"
COL_DETECTED = "detected"
COL_DETECTED_NEAR = "detected, near a felt one"
FELT_CAPTION = (
    "A detection is near a felt mark when it starts up to {before:g} s before the mark or {after:g} s after "
    "it (noticing a twitch and pressing a button takes seconds; the clocks differ by about a second). This "
    "shows whether what you noticed and what the sensor recorded go together — it is not a test of the "
    "detector: you feel only some twitches (most detections have no mark, which says nothing against them), "
    "may feel twitches the sensor cannot see, and mark them late, so some detections fall near a mark by "
    "chance (the column says how many to expect)."
)


def felt_display(comparisons: Sequence[FeltComparison]) -> pd.DataFrame:
    """Felt marks against detections: all muscles, then each muscle a mark named."""
    rows = [
        {
            COL_MUSCLE: c.muscle or "all muscles",
            COL_FELT: str(c.felt),
            COL_FELT_NEAR: str(c.felt_near),
            COL_CHANCE: f"{c.chance:.1f}",
            COL_DETECTED: str(c.detections),
            COL_DETECTED_NEAR: str(c.detections_near),
        }
        for c in comparisons
    ]
    columns = [COL_MUSCLE, COL_FELT, COL_FELT_NEAR, COL_CHANCE, COL_DETECTED, COL_DETECTED_NEAR]
    return pd.DataFrame(rows, columns=columns)


def felt_caption(comparisons: Sequence[FeltComparison]) -> str:
    c = comparisons[0] if comparisons else None
    before, after = (c.before_s, c.after_s) if c else (FELT_BEFORE_S, FELT_AFTER_S)
    return FELT_CAPTION.format(before=before, after=after)


# ---- report -------------------------------------------------------------------------------------------
REPORT_PERIODS: dict[str, int] = {"Last 7 d": 7, "Last 30 d": 30, "Last 90 d": 90}


def _opt(value: float | None, fmt: str) -> str:
    return NO_TIME if value is None else fmt.format(value)


def report_muscles(report: ReportData) -> pd.DataFrame:
    """The report's per-muscle summary as the page shows it (the column "before rest tracking" only where
    the period reaches back before rest tracking)."""
    rows = [
        {
            COL_MUSCLE: m.muscle,
            "first recorded": m.first_recorded.isoformat() if m.first_recorded else NO_TIME,
            COL_AT_REST: str(m.twitches),
            COL_PER_HOUR: _opt(m.per_hour, "{:.2f}"),
            COL_REST_H: f"{m.rest_h:.1f} h",
            COL_WORN_H: f"{m.monitored_h:.1f} h",
            "days with twitches / monitored": f"{m.twitching_days} / {m.monitored_days}",
            "median duration": _opt(m.median_duration_ms, "{:.0f} ms"),
            "episodes": str(m.episodes),
            "longest episode": _opt(m.longest_episode_min, "{:.0f} min"),
            COL_MOVEMENT: str(m.during_movement),
            COL_SUSTAINED: str(m.sustained),
            COL_UNTRACKED: untracked_words(
                RestTally(untracked_twitches=m.untracked_twitches, untracked_worn_s=m.untracked_worn_h * 3600)
            ),
        }
        for m in report.muscles
    ]
    columns = [
        COL_MUSCLE,
        "first recorded",
        COL_AT_REST,
        COL_PER_HOUR,
        COL_REST_H,
        COL_WORN_H,
        "days with twitches / monitored",
        "median duration",
        "episodes",
        "longest episode",
        COL_MOVEMENT,
        COL_SUSTAINED,
    ]
    if report.untracked:
        columns.append(COL_UNTRACKED)
    return pd.DataFrame(rows, columns=columns)


def report_coverage(report: ReportData) -> str:
    c = report.coverage
    gaps = len(c.gaps)
    text = (
        f"Worn {c.monitored_h:.1f} h on {c.days_with_data} of {c.days_in_period} days, {c.rest_h:.1f} h of "
        f"them at rest; {gaps} gap{'' if gaps == 1 else 's'} in the recording."
    )
    if report.untracked:
        text += f" {c.untracked_h:.1f} h were recorded before rest tracking: " + UNTRACKED_CAPTION[0].lower()
        text += UNTRACKED_CAPTION[1:]
    return text


def report_file_stem(report: ReportData) -> str:
    first = day_of(report.since_ns, report.tz)
    last = day_of(report.until_ns - 1, report.tz)
    return f"twitchwatch-report-{report.user}-{first.isoformat()}-to-{last.isoformat()}"


# ---- Analyse: a recording through the detectors ------------------------------------------------------
def length_text(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def analysis_lanes(summaries: Sequence[LaneSummary]) -> pd.DataFrame:
    """One row per detector lane: what ``twitchwatch detect`` prints in its summary."""
    rows = []
    for s in summaries:
        at_rest = s.per_assessable_minute
        rows.append(
            {
                "channel": s.lane.label,
                "muscle": s.lane.muscle,
                "signal": s.lane.signal.upper(),
                "rate (Hz)": f"{s.lane.rate:g}",
                "length": length_text(s.seconds),
                "at rest and still": "—" if s.assessable_s is None else length_text(s.assessable_s),
                "twitches": s.twitches if s.lane.twitches else "—",
                "during movement": s.counts.get(EventKind.DURING_MOVEMENT, 0),
                "sustained": s.counts.get(EventKind.SUSTAINED, 0),
                "artifacts": s.counts.get(EventKind.ARTIFACT, 0),
                "twitches per minute at rest": "—" if at_rest is None else f"{at_rest:.2f}",
            }
        )
    return pd.DataFrame(rows)


ANALYSIS_EVENT_COLUMNS = (
    "start (s)",
    "end (s)",
    "channel",
    "muscle",
    "kind",
    "duration (ms)",
    "amplitude",
    "unit",
    "reason",
)


def analysis_events(events: Sequence[RecordingEvent]) -> pd.DataFrame:
    """Every event found, in file time (seconds from its start)."""
    rows = [
        (
            e.start,
            e.end,
            e.channel,
            e.muscle,
            e.kind.value,
            round(e.duration_ms, 1),
            e.amplitude,
            e.unit,
            e.reason,
        )
        for e in events
    ]
    return pd.DataFrame(rows, columns=list(ANALYSIS_EVENT_COLUMNS))
