"""The doctor-visit report: what a physician asks, answered from the store.

``build_report(store, since_ns, until_ns, user)`` gathers a ``ReportData`` (pure values); rendering is
in ``processing.report_render`` (``render_pdf``, ``render_csv``, re-exported here).

Definitions used throughout (docs/flags-and-report.md):

- a *twitch* is an event whose kind ``is_twitch`` (fasciculation, myoclonic jerk); sustained activity
  is counted apart; artifacts are left out; twitch-shaped events found while the muscle moved or
  contracted (``during_movement``) are counted apart and never as twitches;
- *rates* are twitches per hour *at rest* (``processing/rest.py``): the twitches of minutes with rest
  tracking over their seconds at rest, with hours worn and hours at rest beside them. Minutes stored
  before rest tracking (rest unknown) are never in that rate: their twitches and hours worn are shown
  apart, as *before rest tracking*, with their rate per hour worn;
- *first recorded* is the day of a muscle's first stored twitch, whenever that was (not only in the
  report's period);
- an *episode* is a cluster of twitches on one muscle, each within ``EPISODE_GAP_S`` of the previous,
  with at least ``EPISODE_MIN_TWITCHES`` twitches; it lasts from the first twitch's start to the last
  one's end;
- *monitored* time comes from the minute rates: a minute counts when any sensor watched the muscle
  (for coverage: any muscle), so unworn time is never read as "no twitching"; a *gap* is a stretch of
  at least ``GAP_MIN_S`` without any monitoring between the period's first and last monitored minute;
- *felt* twitches are the journal's ``felt`` marks ("I felt that"), compared with the detected twitches
  near them (``processing.felt``: what that does and does not measure);
- *days* and *hours of day* are local to the report's zone (``tz``, the configured
  ``TWITCHWATCH_TIMEZONE``): a day runs from local midnight to local midnight, 23 or 25 h long on DST
  change days, and the hour-of-day histogram counts local clock hours.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from twitchwatch.processing.events import (
    MINUTE_NS,
    TWITCH_KINDS,
    EventKind,
    MinuteRate,
    TwitchEvent,
    muscle_minutes,
    rerun_free_events,
)
from twitchwatch.processing.felt import FeltComparison, compare_by_muscle
from twitchwatch.processing.flags import HOUR_NS, FlagRules, FlagSet, compute_flag_set
from twitchwatch.processing.journal import Factor, FactorEffect, JournalEntry, factor_effects
from twitchwatch.processing.localtime import day_of, hour_of_day
from twitchwatch.processing.report_render import render_csv, render_pdf
from twitchwatch.processing.store import EventQuery, EventStore, QueryError

NOTICE = (
    "twitchwatch is not a medical device. This report summarises what its sensors recorded; it does not "
    "diagnose anything. Discuss it with a physician."
)
EPISODE_GAP_S = 300.0
EPISODE_MIN_TWITCHES = 3
GAP_MIN_S = 3600.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MuscleSummary:
    """One muscle over the report's period. The rate is per hour *at rest*; minutes stored before rest
    tracking are apart (``untracked_*``), with their rate per hour worn."""

    muscle: str
    first_recorded: dt.date | None  # first stored twitch, any time
    twitches: int  # at rest (minutes with rest tracking)
    sustained: int
    monitored_h: float  # worn, every minute
    twitching_days: int  # days with ≥ 1 twitch (at rest, or before rest tracking)
    monitored_days: int  # days with any monitoring
    median_duration_ms: float | None
    p90_duration_ms: float | None
    episodes: int
    median_episode_min: float | None
    longest_episode_min: float | None
    rest_h: float = 0.0
    during_movement: int = 0  # twitch-shaped, while the muscle was not assessable: not counted
    untracked_twitches: int = 0  # in minutes stored before rest tracking
    untracked_worn_h: float = 0.0

    @property
    def per_hour(self) -> float | None:
        """Twitches per hour at rest; None without time at rest."""
        return self.twitches / self.rest_h if self.rest_h > 0 else None

    @property
    def untracked_per_hour(self) -> float | None:
        """Twitches per hour worn before rest tracking; None without such time."""
        return self.untracked_twitches / self.untracked_worn_h if self.untracked_worn_h > 0 else None


@dataclass(frozen=True)
class Episode:
    muscle: str
    start_ns: int
    end_ns: int
    twitches: int

    @property
    def minutes(self) -> float:
        return (self.end_ns - self.start_ns) / MINUTE_NS


@dataclass(frozen=True)
class Gap:
    start_ns: int
    end_ns: int

    @property
    def hours(self) -> float:
        return (self.end_ns - self.start_ns) / HOUR_NS


@dataclass(frozen=True)
class Coverage:
    monitored_h: float  # minutes in which any muscle was monitored (worn)
    days_with_data: int
    days_in_period: int
    first_ns: int | None
    last_ns: int | None
    gaps: tuple[Gap, ...]
    daily_monitored_h: tuple[float, ...]  # aligned with ReportData.days
    rest_h: float = 0.0  # of it, time some muscle was at rest (minutes with rest tracking)
    daily_rest_h: tuple[float, ...] = ()
    untracked_h: float = 0.0  # worn time stored before rest tracking (rest unknown)


@dataclass(frozen=True)
class ReportData:
    user: str
    since_ns: int
    until_ns: int
    generated_at_ns: int
    days: tuple[dt.date, ...]  # every local day of the period (in ``tz``)
    muscles: tuple[MuscleSummary, ...]
    daily_twitches: Mapping[str, tuple[int, ...]]  # muscle → twitches at rest per day, aligned with days
    daily_monitored_h: Mapping[str, tuple[float, ...]]  # muscle → hours worn per day
    hour_of_day: Mapping[str, tuple[int, ...]]  # muscle → twitches per local hour of day (24)
    durations_ms: Mapping[str, tuple[float, ...]]  # muscle → every twitch's duration
    episodes: tuple[Episode, ...]
    journal: tuple[JournalEntry, ...]
    symptoms: tuple[JournalEntry, ...]  # the journal's symptom entries
    effects: tuple[FactorEffect, ...]
    flags: FlagSet
    coverage: Coverage
    tz: dt.tzinfo = dt.UTC  # the zone of days, hours of day and printed times
    notice: str = NOTICE
    daily_rest_h: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # muscle → hours at rest
    daily_during_movement: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    daily_untracked_twitches: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    daily_untracked_h: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # worn, before tracking
    # "I felt that" marks against the detections: all muscles first, then each muscle a mark names.
    felt: tuple[FeltComparison, ...] = ()

    @property
    def total_twitches(self) -> int:
        """Twitches at rest, and before rest tracking where the period reaches back that far."""
        return sum(m.twitches + m.untracked_twitches for m in self.muscles)

    @property
    def untracked(self) -> bool:
        """Whether any minute of the period was stored before rest tracking."""
        return self.coverage.untracked_h > 0

    def summary(self, muscle: str) -> MuscleSummary:
        return next(m for m in self.muscles if m.muscle == muscle)


def episodes_of(
    events: Sequence[TwitchEvent], gap_s: float = EPISODE_GAP_S, min_twitches: int = EPISODE_MIN_TWITCHES
) -> list[Episode]:
    """Clusters of twitches per muscle (``events`` sorted by start)."""
    clusters: dict[str, list[list[TwitchEvent]]] = {}
    gap_ns = round(gap_s * 1e9)
    for e in events:
        if not e.kind.is_twitch:
            continue
        runs = clusters.setdefault(e.muscle, [])
        if runs and e.start_ns - runs[-1][-1].start_ns <= gap_ns:
            runs[-1].append(e)
        else:
            runs.append([e])
    out = [
        Episode(muscle, run[0].start_ns, max(e.end_ns for e in run), len(run))
        for muscle, runs in clusters.items()
        for run in runs
        if len(run) >= min_twitches
    ]
    return sorted(out, key=lambda ep: (ep.start_ns, ep.muscle))


Seconds = tuple[float, float | None]  # (worn, at rest or None: stored before rest tracking)


def _minutes_by_muscle(rates: Sequence[MinuteRate]) -> dict[str, dict[int, Seconds]]:
    """Seconds worn and at rest per muscle per minute (``muscle_minutes``: several devices on one muscle
    count once, replays of live minutes not at all)."""
    return {
        muscle: {minute_ns: (worn, rest) for minute_ns, (_, worn, rest) in minutes.items()}
        for muscle, minutes in muscle_minutes(rates).items()
    }


def gaps_of(monitored_minutes: Sequence[int], min_gap_s: float = GAP_MIN_S) -> list[Gap]:
    """Stretches of ≥ ``min_gap_s`` between monitored minutes (sorted minute starts)."""
    out = []
    for a, b in itertools.pairwise(monitored_minutes):
        if b - (a + MINUTE_NS) >= min_gap_s * 1e9:
            out.append(Gap(a + MINUTE_NS, b))
    return out


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _first_recorded(
    store: EventStore, user: str, muscle: str, until_ns: int, tz: dt.tzinfo
) -> dt.date | None:
    first = store.events(EventQuery(0, until_ns, user, muscle, kinds=TWITCH_KINDS, limit=1))
    return day_of(first[0].start_ns, tz) if first else None


@dataclass
class _Tallies:
    """Per-muscle counters over the period's days (built once, then frozen into ``ReportData``)."""

    daily_twitches: dict[str, list[int]]  # at rest
    daily_monitored_h: dict[str, list[float]]  # worn
    hour_of_day: dict[str, list[int]]
    durations_ms: dict[str, list[float]]
    sustained: dict[str, int]
    daily_rest_h: dict[str, list[float]]
    daily_during_movement: dict[str, list[int]]
    daily_untracked_twitches: dict[str, list[int]]
    daily_untracked_h: dict[str, list[float]]


def _tally(
    events: Sequence[TwitchEvent],
    minutes: Mapping[str, Mapping[int, Seconds]],
    days: Sequence[dt.date],
    tz: dt.tzinfo,
) -> _Tallies:
    """Events by day and hour of day: a twitch counts at rest unless its minute was stored before rest
    tracking (then it counts before rest tracking)."""
    index = {d: i for i, d in enumerate(days)}
    names = sorted(set(minutes) | {e.muscle for e in events})
    n = len(days)
    t = _Tallies(
        {m: [0] * n for m in names},
        {m: [0.0] * n for m in names},
        {m: [0] * 24 for m in names},
        {m: [] for m in names},
        dict.fromkeys(names, 0),
        {m: [0.0] * n for m in names},
        {m: [0] * n for m in names},
        {m: [0] * n for m in names},
        {m: [0.0] * n for m in names},
    )
    for e in events:
        day = index[day_of(e.start_ns, tz)]
        if e.kind is EventKind.DURING_MOVEMENT:
            t.daily_during_movement[e.muscle][day] += 1
            continue
        if not e.kind.is_twitch:
            t.sustained[e.muscle] += 1
            continue
        seconds = minutes.get(e.muscle, {}).get(e.start_ns - e.start_ns % MINUTE_NS)
        if seconds is not None and seconds[1] is None:
            t.daily_untracked_twitches[e.muscle][day] += 1
        else:  # the worker judged it (a minute without a rate has none stored before rest tracking)
            t.daily_twitches[e.muscle][day] += 1
        t.hour_of_day[e.muscle][hour_of_day(e.start_ns, tz)] += 1
        t.durations_ms[e.muscle].append(e.duration_ms)
    for m, by_minute in minutes.items():
        # Summed in seconds, divided once: sums of whole hours stay exact.
        worn, rest, untracked = [0.0] * n, [0.0] * n, [0.0] * n
        for minute_ns, (w, r) in by_minute.items():
            i = index[day_of(minute_ns, tz)]
            worn[i] += w
            if r is None:
                untracked[i] += w
            else:
                rest[i] += r
        t.daily_monitored_h[m] = [x / 3600.0 for x in worn]
        t.daily_rest_h[m] = [x / 3600.0 for x in rest]
        t.daily_untracked_h[m] = [x / 3600.0 for x in untracked]
    return t


def _summary(
    muscle: str,
    t: _Tallies,
    seconds: Mapping[int, Seconds],
    episodes: Sequence[Episode],
    first_recorded: dt.date | None,
) -> MuscleSummary:
    lengths = [ep.minutes for ep in episodes if ep.muscle == muscle]
    durations = t.durations_ms[muscle]
    counted = [
        a + b for a, b in zip(t.daily_twitches[muscle], t.daily_untracked_twitches[muscle], strict=True)
    ]
    return MuscleSummary(
        muscle=muscle,
        first_recorded=first_recorded,
        twitches=sum(t.daily_twitches[muscle]),
        sustained=t.sustained[muscle],
        monitored_h=sum(w for w, _ in seconds.values()) / 3600.0,
        twitching_days=sum(1 for n in counted if n > 0),
        monitored_days=sum(1 for h in t.daily_monitored_h[muscle] if h > 0),
        median_duration_ms=statistics.median(durations) if durations else None,
        p90_duration_ms=_percentile(durations, 0.9),
        episodes=len(lengths),
        median_episode_min=statistics.median(lengths) if lengths else None,
        longest_episode_min=max(lengths) if lengths else None,
        rest_h=sum(r for _, r in seconds.values() if r is not None) / 3600.0,
        during_movement=sum(t.daily_during_movement[muscle]),
        untracked_twitches=sum(t.daily_untracked_twitches[muscle]),
        untracked_worn_h=sum(w for w, r in seconds.values() if r is None) / 3600.0,
    )


def _coverage(
    minutes: Mapping[str, Mapping[int, Seconds]], days: Sequence[dt.date], tz: dt.tzinfo
) -> Coverage:
    any_minute: dict[int, float] = {}
    rest_minute: dict[int, float] = {}
    untracked_minute: dict[int, float] = {}
    for by_minute in minutes.values():
        for minute_ns, (worn, rest) in by_minute.items():
            any_minute[minute_ns] = max(any_minute.get(minute_ns, 0.0), worn)
            if rest is None:
                untracked_minute[minute_ns] = max(untracked_minute.get(minute_ns, 0.0), worn)
            else:
                rest_minute[minute_ns] = max(rest_minute.get(minute_ns, 0.0), rest)
    monitored = sorted(t for t, s in any_minute.items() if s > 0)
    index = {d: i for i, d in enumerate(days)}
    daily, daily_rest = [0.0] * len(days), [0.0] * len(days)
    for minute_ns, seconds in any_minute.items():
        daily[index[day_of(minute_ns, tz)]] += seconds
    for minute_ns, seconds in rest_minute.items():
        daily_rest[index[day_of(minute_ns, tz)]] += seconds
    daily_h = [s / 3600.0 for s in daily]
    return Coverage(
        monitored_h=sum(any_minute.values()) / 3600.0,
        days_with_data=sum(1 for h in daily_h if h > 0),
        days_in_period=len(days),
        first_ns=monitored[0] if monitored else None,
        last_ns=monitored[-1] + MINUTE_NS if monitored else None,
        gaps=tuple(gaps_of(monitored)),
        daily_monitored_h=tuple(daily_h),
        rest_h=sum(rest_minute.values()) / 3600.0,
        daily_rest_h=tuple(s / 3600.0 for s in daily_rest),
        untracked_h=sum(untracked_minute.values()) / 3600.0,
    )


def build_report(
    store: EventStore,
    since_ns: int,
    until_ns: int,
    user: str,
    *,
    rules: FlagRules | None = None,
    flag_set: FlagSet | None = None,
    progress: Progress | None = None,
    now_ns: int | None = None,
    journal_windows_ns: Mapping[Factor, int] | None = None,
    tz: dt.tzinfo = dt.UTC,
) -> ReportData:
    """Everything the report shows for ``user`` in [since_ns, until_ns), days and hours local to ``tz``.

    ``flag_set``: the flags to show; by default they are computed as of ``until_ns`` with ``rules``.
    ``journal_windows_ns``: hours after each factor compared with the baseline (default 6 h each)."""
    if until_ns <= since_ns:
        raise QueryError(f"until ({until_ns}) must be after since ({since_ns})", "until_ns")
    say = progress or (lambda _step: None)
    first_day, last_day = day_of(since_ns, tz), day_of(until_ns - 1, tz)
    days = tuple(first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1))

    say("reading events")
    query = EventQuery(since_ns, until_ns, user)
    stored = [e for e in store.events(query) if e.kind is not EventKind.ARTIFACT]
    say(f"reading minute rates ({len(stored)} events)")
    rates = store.rates(query)
    # A replay of a session recorded live holds the same twitches again: counted once (the rates'
    # readers, ``muscle_minutes``, leave such minutes out themselves).
    events = rerun_free_events(stored, rates)
    say(f"reading the journal ({len(rates)} minute rates)")
    journal = store.journal_entries(since_ns, until_ns, user)

    minutes = _minutes_by_muscle(rates)
    tallies = _tally(events, minutes, days, tz)
    say("finding episodes")
    episodes = episodes_of(events)
    say("first recorded days")
    summaries = tuple(
        _summary(m, tallies, minutes.get(m, {}), episodes, _first_recorded(store, user, m, until_ns, tz))
        for m in sorted(tallies.sustained)
    )
    say("journal effects and flags")
    if flag_set is None:
        flag_set = compute_flag_set(
            store, user=user, now_ns=until_ns, rules=rules or FlagRules(), computed_by="report", tz=tz
        )
    return ReportData(
        user=user,
        since_ns=since_ns,
        until_ns=until_ns,
        generated_at_ns=time.time_ns() if now_ns is None else now_ns,
        days=days,
        muscles=summaries,
        daily_twitches={m: tuple(v) for m, v in tallies.daily_twitches.items()},
        daily_monitored_h={m: tuple(v) for m, v in tallies.daily_monitored_h.items()},
        hour_of_day={m: tuple(v) for m, v in tallies.hour_of_day.items()},
        durations_ms={m: tuple(v) for m, v in tallies.durations_ms.items()},
        daily_rest_h={m: tuple(v) for m, v in tallies.daily_rest_h.items()},
        daily_during_movement={m: tuple(v) for m, v in tallies.daily_during_movement.items()},
        daily_untracked_twitches={m: tuple(v) for m, v in tallies.daily_untracked_twitches.items()},
        daily_untracked_h={m: tuple(v) for m, v in tallies.daily_untracked_h.items()},
        episodes=tuple(episodes),
        journal=tuple(journal),
        symptoms=tuple(e for e in journal if e.factor is Factor.SYMPTOM),
        felt=tuple(compare_by_muscle(journal, events)),
        effects=tuple(factor_effects(journal, rates, journal_windows_ns)),
        flags=flag_set,
        coverage=_coverage(minutes, days, tz),
        tz=tz,
    )


__all__ = [
    "NOTICE",
    "Coverage",
    "Episode",
    "Gap",
    "MuscleSummary",
    "ReportData",
    "build_report",
    "episodes_of",
    "gaps_of",
    "render_csv",
    "render_pdf",
]
