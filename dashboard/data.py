"""Pure data shaping for the dashboard: store results in, pandas DataFrames out.

Nothing here talks to Streamlit or to a store, so every number the page shows can be unit-tested
with known inputs (``tests/test_dashboard_data.py``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from processing.events import MinuteRate, Source, TwitchEvent
from processing.store import HourCount

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S

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
COL_PER_HOUR = "twitches per hour"
COL_HOURS = "hours"
COL_BASIS = "per-hour basis"
COL_SUSTAINED = "sustained activity"
COL_LAST_SHORT = "twitches, last 60 s"
COL_LAST_LONG = "twitches, last 10 min"
COL_LATEST = "latest twitch"
BASIS_MONITORED = "monitored time"
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
    since = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    since_ns = _to_ns(since)
    until_ns = max(since_ns, min(_to_ns(until), now_ns))
    return TimeRange(since_ns, until_ns)


def _to_ns(when: dt.datetime) -> int:
    # Integer arithmetic: float seconds would lose the nanoseconds.
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000


def format_time(ns: int, tz: dt.tzinfo, with_date: bool = False) -> str:
    when = dt.datetime.fromtimestamp(ns / NS_PER_S, tz)
    return when.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _sum_by_muscle(counts: Iterable[HourCount]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for c in counts:
        totals[c.muscle] += c.twitches
    return totals


def _monitored_s_by_muscle(rates: Iterable[MinuteRate]) -> defaultdict[str, float]:
    seconds: defaultdict[str, float] = defaultdict(float)
    for r in rates:
        seconds[r.muscle] += r.monitored_s
    return seconds


def frequency_table(
    twitch_counts: Sequence[HourCount],
    sustained_counts: Sequence[HourCount],
    rates: Sequence[MinuteRate],
    range_hours: float,
) -> pd.DataFrame:
    """One row per muscle: twitches, twitches per hour, the hours divided by and where they came from.

    Hours are the muscle's monitored time (sum of its ``MinuteRate.monitored_s``) when the worker
    recorded any, because a sensor worn 2 h of a 24 h range should not read as 1/12 the rate;
    otherwise the range length. Muscles that were monitored but never twitched get a row with 0,
    which is information too. Sustained activity is counted apart and never as a twitch.
    """
    twitches = _sum_by_muscle(twitch_counts)
    sustained = _sum_by_muscle(sustained_counts)
    monitored_s = _monitored_s_by_muscle(rates)
    muscles = sorted(set(twitches) | set(sustained) | {m for m, s in monitored_s.items() if s > 0})
    rows = []
    for muscle in muscles:
        seconds = monitored_s.get(muscle, 0.0)
        hours, basis = (seconds / 3600, BASIS_MONITORED) if seconds > 0 else (range_hours, BASIS_RANGE)
        rows.append(
            {
                COL_MUSCLE: muscle,
                COL_TWITCHES: twitches[muscle],
                COL_PER_HOUR: twitches[muscle] / hours if hours > 0 else 0.0,
                COL_HOURS: hours,
                COL_BASIS: basis,
                COL_SUSTAINED: sustained[muscle],
            }
        )
    columns = [COL_MUSCLE, COL_TWITCHES, COL_PER_HOUR, COL_HOURS, COL_BASIS, COL_SUSTAINED]
    return pd.DataFrame(rows, columns=columns).astype(
        {COL_TWITCHES: "int64", COL_PER_HOUR: "float64", COL_HOURS: "float64", COL_SUSTAINED: "int64"}
    )


def frequency_display(table: pd.DataFrame) -> pd.DataFrame:
    """The frequency table as the strings the page shows (2 decimals), so tests can compare text."""
    shown = table.copy()
    for col in (COL_PER_HOUR, COL_HOURS):
        shown[col] = [f"{v:.2f}" for v in table[col]]
    for col in (COL_TWITCHES, COL_SUSTAINED):
        shown[col] = [str(v) for v in table[col]]
    return shown


def basis_caption(table: pd.DataFrame) -> str:
    """Say what the per-hour numbers were divided by: the reader cannot tell from the numbers."""
    bases = set(table[COL_BASIS])
    if bases == {BASIS_MONITORED}:
        return "Twitches per hour = twitches ÷ monitored time (from the worker's per-minute records)."
    if bases == {BASIS_RANGE}:
        return (
            "Twitches per hour = twitches ÷ length of the selected range "
            "(no monitored-time records in this range)."
        )
    return (
        "Twitches per hour = twitches ÷ monitored time where it was recorded, "
        "else ÷ length of the selected range (see the per-hour basis column)."
    )


def timeline_frame(
    counts: Sequence[HourCount], time_range: TimeRange, muscles: Sequence[str]
) -> pd.DataFrame:
    """Hourly twitch counts per muscle, with hours without twitches filled in as 0.

    The store only returns hours that had events; filling the rest makes the chart's time axis span
    the chosen range (a quiet morning shows as quiet, not as missing) and keeps every hour in the
    tooltips and data. Columns: hour (UTC, tz-aware), muscle, twitches.
    """
    first_hour = time_range.since_ns // HOUR_NS * HOUR_NS
    last_hour = (max(time_range.until_ns, time_range.since_ns + 1) - 1) // HOUR_NS * HOUR_NS
    hours = range(first_hour, last_hour + HOUR_NS, HOUR_NS)
    names = sorted(set(muscles) | {c.muscle for c in counts})
    observed = {(c.hour_ns, c.muscle): c.twitches for c in counts}
    if len(hours) * len(names) <= MAX_TIMELINE_CELLS:
        cells = [(h, m, observed.get((h, m), 0)) for h in hours for m in names]
    else:
        cells = [(c.hour_ns, c.muscle, c.twitches) for c in counts]
    frame = pd.DataFrame(cells, columns=["hour_ns", COL_MUSCLE, COL_TWITCHES])
    frame.insert(0, "hour", pd.to_datetime(frame.pop("hour_ns"), unit="ns", utc=True))
    return frame.astype({COL_TWITCHES: "int64"})


def events_frame(events: Sequence[TwitchEvent]) -> pd.DataFrame:
    """Individual events for the scatter: time (UTC, tz-aware), muscle, kind, amplitude, unit, duration."""
    frame = pd.DataFrame(
        [(e.start_ns, e.muscle, e.kind.value, e.amplitude, e.unit, e.duration_ms) for e in events],
        columns=["time_ns", COL_MUSCLE, "kind", "amplitude", "unit", "duration_ms"],
    )
    frame.insert(0, "time", pd.to_datetime(frame.pop("time_ns").astype("int64"), unit="ns", utc=True))
    return frame.astype({"amplitude": "float64", "duration_ms": "float64"})


def live_table(
    events: Sequence[TwitchEvent], muscles: Sequence[str], now_ns: int, tz: dt.tzinfo
) -> pd.DataFrame:
    """Per muscle: twitches in the last 60 s and 10 min, and the time of the latest one.

    ``events`` are the twitches of the last 10 min (the caller queries exactly that window), so a
    muscle quiet for longer shows 0 / 0 / "—". Every known muscle gets a row, so a quiet sensor is
    visible as quiet rather than missing. Events stamped after ``now_ns`` (a device clock running
    ahead) still count: they are the freshest data there is.
    """
    short_since = now_ns - LIVE_SHORT_S * NS_PER_S
    long_since = now_ns - LIVE_LONG_S * NS_PER_S
    short: Counter[str] = Counter()
    long: Counter[str] = Counter()
    latest: dict[str, int] = {}
    for e in events:
        if e.start_ns < long_since:
            continue
        long[e.muscle] += 1
        if e.start_ns >= short_since:
            short[e.muscle] += 1
        latest[e.muscle] = max(latest.get(e.muscle, e.start_ns), e.start_ns)
    names = sorted(set(muscles) | set(long))
    rows = [
        {
            COL_MUSCLE: m,
            COL_LAST_SHORT: short[m],
            COL_LAST_LONG: long[m],
            COL_LATEST: format_time(latest[m], tz) if m in latest else NO_TIME,
        }
        for m in names
    ]
    columns = [COL_MUSCLE, COL_LAST_SHORT, COL_LAST_LONG, COL_LATEST]
    return pd.DataFrame(rows, columns=columns).astype({COL_LAST_SHORT: "int64", COL_LAST_LONG: "int64"})


def live_summary(table: pd.DataFrame) -> str:
    """One findable line with the totals, e.g. ``Last 60 s: 3 twitches · last 10 min: 41 twitches``."""
    short = int(table[COL_LAST_SHORT].sum())
    long = int(table[COL_LAST_LONG].sum())
    return f"Last 60 s: {_twitches(short)} · last 10 min: {_twitches(long)}"


def _twitches(n: int) -> str:
    return f"{n} twitch" if n == 1 else f"{n} twitches"
