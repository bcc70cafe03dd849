"""Persistent-activity flags: pure rules over stored minute rates and events, each explained.

A ``Flag`` says which rule fired on which muscle, the rule in words with its thresholds, the numbers
that met it and the dates that raised it. A ``FlagSet`` is one computation for one user: stores keep
the latest set per user (``EventStore.replace_flags`` / ``current_flags``), the worker publishes it
retained on ``flags_topic(user)``, and ``twitchwatch flags --json`` and the dashboard both show
``FlagSet.to_json_dict()`` of the set ``processing.flag_service.flags_for_display`` returns.

This module is pure: values and rules, no store. Reading a store and evaluating the rules over it is
``processing.flag_service`` (the store imports the values here, so the rules must not import the store).

The rules (thresholds in ``FlagRules``; docs/flags-and-report.md says why each default):

Every rate is twitches per hour *at rest* (``processing/rest.py``), and "observed" time is time at rest: a
twitch can only be seen in a relaxed, still muscle. Minutes stored before rest tracking are not used (their
counts include movement); so after the upgrade the rules build their history again.

- ``elevated``: a muscle's hourly rate is ≥ ``elevated_factor`` × its own baseline (the median of the
  hourly rates of the previous ``baseline_days`` days) for ≥ ``elevated_hours`` consecutive hours with ≥
  ``min_hour_monitored_s`` at rest.
- ``persistent``: a muscle twitched (≥ ``twitch_day_min_twitches`` twitches on a day with ≥
  ``min_monitored_hours`` hours at rest) on ≥ ``persistent_days_per_week`` of every 7 consecutive days,
  for a run of ≥ ``persistent_min_days`` days.
- ``spreading``: a muscle's first twitching day is within the last ``spreading_recent_days`` days while
  another muscle had ≥ ``spreading_other_days`` twitching days before it.
- ``rising``: the daily rate (twitches per hour at rest) rises over ≥ ``rising_min_days`` observed
  days with a Mann–Kendall p-value < ``rising_p_value``; the Theil–Sen slope gives the size.
- ``stale_sensor``: a configured device sent no frame for > ``stale_after_s`` seconds.

Days and hours are local calendar days and clock hours in the ``tz`` the caller passes (the configured
``TWITCHWATCH_TIMEZONE``; UTC by default), so a twitch at 23:30 belongs to the day the person lived it.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from twitchwatch.collector.limits import is_finite_number
from twitchwatch.collector.topics import ROOT, check_segment
from twitchwatch.errors import UserError
from twitchwatch.processing.events import MinuteRate, muscle_minutes
from twitchwatch.processing.localtime import day_of, day_start_ns, format_clock, hour_start_ns
from twitchwatch.processing.timeunits import HOUR_NS

ComputedBy = Literal["worker", "cli", "dashboard", "report", "test"]
COMPUTED_BY: tuple[ComputedBy, ...] = ("worker", "cli", "dashboard", "report", "test")


RATES_WORDS = (
    "twitches per hour at rest; observed time is time at rest; minutes stored before rest tracking are not "
    "used"
)


def flags_topic(user: str) -> str:
    """``twitchwatch/<user>/flags``: the user's current ``FlagSet`` as JSON, retained."""
    return f"{ROOT}/{check_segment(user, 'user')}/flags"


class FlagError(UserError, ValueError):
    """A stored or received flag is malformed; ``key`` names the offending field."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


class FlagKind(enum.StrEnum):
    ELEVATED = "elevated"
    PERSISTENT = "persistent"
    SPREADING = "spreading"
    RISING = "rising"
    STALE_SENSOR = "stale_sensor"

    @property
    def is_symptom(self) -> bool:
        """``stale_sensor`` is a fault of the equipment, not something the body does."""
        return self is not FlagKind.STALE_SENSOR


@dataclass(frozen=True)
class Flag:
    """One raised flag.

    ``muscle`` is empty for ``stale_sensor`` (which names ``device`` instead). ``rule`` is the rule in
    words with its thresholds; ``summary`` the numbers in words; ``numbers`` the same numbers by name;
    ``days`` the qualifying dates, local to the zone the flags were computed in (first_day/last_day
    bound them); ``raised_at_ns`` when it was computed.
    """

    user: str
    kind: FlagKind
    muscle: str
    rule: str
    summary: str
    numbers: Mapping[str, float]
    first_day: dt.date
    last_day: dt.date
    days: tuple[dt.date, ...]
    raised_at_ns: int
    device: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FlagKind):
            raise FlagError(f"{self.kind!r} is not a flag kind", "kind")
        if self.last_day < self.first_day:
            raise FlagError(f"{self.last_day} is before first_day {self.first_day}", "last_day")
        if self.kind is FlagKind.STALE_SENSOR and not self.device:
            raise FlagError("a stale_sensor flag names its device", "device")
        if self.kind is not FlagKind.STALE_SENSOR and not self.muscle:
            raise FlagError(f"a {self.kind.value} flag names its muscle", "muscle")

    @property
    def text(self) -> str:
        """One line for people: what, where, why."""
        where = self.muscle or f"device {self.device}"
        return f"{self.kind.value} — {where}: {self.summary} (rule: {self.rule})"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "kind": self.kind.value,
            "muscle": self.muscle,
            "device": self.device,
            "rule": self.rule,
            "summary": self.summary,
            "text": self.text,
            "numbers": dict(self.numbers),
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "days": [d.isoformat() for d in self.days],
            "raised_at_ns": self.raised_at_ns,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Flag:
        if not isinstance(data, Mapping):
            raise FlagError(f"a flag must be an object, got {type(data).__name__}", "flags")
        try:
            kind = FlagKind(data["kind"])
        except KeyError:
            raise FlagError("missing", "kind") from None
        except ValueError:
            raise FlagError(f"{data['kind']!r} is not one of {', '.join(FlagKind)}", "kind") from None
        try:
            numbers = data["numbers"]
            if not isinstance(numbers, Mapping):
                raise FlagError("must be an object", "numbers")
            return cls(
                user=str(data["user"]),
                kind=kind,
                muscle=str(data["muscle"]),
                rule=str(data["rule"]),
                summary=str(data["summary"]),
                numbers={str(k): float(v) for k, v in numbers.items()},
                first_day=dt.date.fromisoformat(data["first_day"]),
                last_day=dt.date.fromisoformat(data["last_day"]),
                days=tuple(dt.date.fromisoformat(d) for d in data["days"]),
                raised_at_ns=time_ns(data["raised_at_ns"], "raised_at_ns"),
                device=str(data.get("device", "")),
            )
        except KeyError as exc:
            raise FlagError("missing", str(exc.args[0])) from None
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, FlagError):
                raise
            raise FlagError(str(exc), "flag") from None


def time_ns(value: object, key: str) -> int:
    """A stored time in ns since 1970: a whole number that fits 64 bits (a document written by hand or
    damaged may hold anything)."""
    if not is_finite_number(value):  # an integer past a float's range too (math.isfinite overflowed)
        raise FlagError(f"must be a number of ns, got {value!r}"[:120], key)
    if value != int(value) or not 0 <= value < 2**63:
        raise FlagError(f"{value!r} is not a time in ns since 1970"[:120], key)
    return int(value)


@dataclass(frozen=True)
class FlagSet:
    """The current flags of one user, as computed at ``computed_at_ns`` by ``computed_by``."""

    user: str
    computed_at_ns: int
    computed_by: ComputedBy
    flags: tuple[Flag, ...] = field(default_factory=tuple)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "computed_at_ns": self.computed_at_ns,
            "computed_at": dt.datetime.fromtimestamp(self.computed_at_ns / 1e9, dt.UTC).isoformat(),
            "computed_by": self.computed_by,
            # What every rate in the flags is (a document read back may lack it: it is not read).
            "rates": RATES_WORDS,
            "flags": [f.to_json_dict() for f in self.flags],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FlagSet:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FlagError(f"not JSON: {exc}", "(document)") from None
        if not isinstance(data, dict):
            raise FlagError("must be a JSON object", "(document)")
        by = data.get("computed_by")
        if by not in COMPUTED_BY:
            raise FlagError(f"{by!r} is not one of {', '.join(COMPUTED_BY)}", "computed_by")
        raw_flags = data.get("flags")
        if not isinstance(raw_flags, list):
            raise FlagError("must be a list", "flags")
        try:
            return cls(
                user=str(data["user"]),
                computed_at_ns=time_ns(data["computed_at_ns"], "computed_at_ns"),
                computed_by=by,
                flags=tuple(Flag.from_json_dict(f) for f in raw_flags),
            )
        except KeyError as exc:
            raise FlagError("missing", str(exc.args[0])) from None


# ---------------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class FlagRules:
    """Thresholds of every rule (defaults and reasons in docs/flags-and-report.md)."""

    lookback_days: int = 42
    twitch_day_min_twitches: int = 5
    # Observed time is time at rest; the names stay as TWITCHWATCH_FLAG_RULES has always spelt them.
    min_monitored_hours: float = 2.0  # hours at rest that make a day observed
    min_hour_monitored_s: float = 1800.0  # seconds at rest that make an hour observed
    elevated_factor: float = 2.0
    elevated_hours: int = 3
    elevated_min_rate_per_h: float = 10.0
    elevated_recent_days: int = 7
    baseline_days: int = 14
    baseline_min_hours: float = 24.0
    persistent_days_per_week: int = 5
    persistent_min_days: int = 14
    persistent_recent_days: int = 7
    spreading_recent_days: int = 7
    spreading_other_days: int = 7
    spreading_prior_quiet_days: int = 3
    rising_min_days: int = 21
    rising_min_monitored_days: int = 14
    rising_p_value: float = 0.05
    stale_after_s: float = 600.0

    def __post_init__(self) -> None:
        positive = (
            "lookback_days",
            "twitch_day_min_twitches",
            "min_hour_monitored_s",
            "elevated_factor",
            "elevated_hours",
            "baseline_days",
            "persistent_min_days",
            "persistent_recent_days",
            "spreading_recent_days",
            "spreading_other_days",
            "rising_min_days",
            "rising_min_monitored_days",
            "stale_after_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise FlagError(f"must be positive, got {getattr(self, name)}", name)
        for name in ("min_monitored_hours", "elevated_min_rate_per_h", "baseline_min_hours"):
            if getattr(self, name) < 0:
                raise FlagError(f"must not be negative, got {getattr(self, name)}", name)
        if not 1 <= self.persistent_days_per_week <= 7:
            raise FlagError("must be 1..7", "persistent_days_per_week")
        if not 0 < self.rising_p_value < 1:
            raise FlagError("must be between 0 and 1", "rising_p_value")
        if self.min_monitored_hours > 24:
            raise FlagError("a day has 24 hours", "min_monitored_hours")
        if self.min_hour_monitored_s > 3600:
            raise FlagError("an hour has 3600 s", "min_hour_monitored_s")
        if self.persistent_min_days < 7:
            raise FlagError("must be at least 7 (one week window)", "persistent_min_days")


@dataclass(frozen=True)
class Tally:
    """Twitches at rest over seconds at rest (what a flag's rule reads as observed time), and the seconds
    worn, of minutes with rest tracking."""

    twitches: int = 0
    rest_s: float = 0.0
    worn_s: float = 0.0

    @property
    def per_hour(self) -> float:
        """Twitches per hour at rest (0 without any time at rest)."""
        return self.twitches * 3600.0 / self.rest_s if self.rest_s > 0 else 0.0


@dataclass(frozen=True)
class MuscleHistory:
    """One muscle's twitches at rest, seconds at rest and seconds worn per local clock hour and per local
    day, from the minutes with rest tracking.

    Several devices on one muscle are one muscle (``processing.events.muscle_minutes``). Minutes stored
    before rest tracking are left out: their counts include twitch-like movement the rules must not read
    as twitching, and their rate is not comparable with a rate at rest (docs/flags-and-report.md).
    """

    muscle: str
    hours: Mapping[int, Tally]  # start ns of the local clock hour → tally
    days: Mapping[dt.date, Tally]


def histories(rates: Sequence[MinuteRate], tz: dt.tzinfo = dt.UTC) -> dict[str, MuscleHistory]:
    """Per muscle: tallies of one user's minute rates (``muscle_minutes``: any device, replays of live
    minutes left out) per local hour and local day, from the minutes with rest tracking only."""
    hours: dict[str, dict[int, list[float]]] = {}
    hour_of_minute: dict[int, int] = {}  # the zone lookup once per minute, not once per muscle
    for muscle, minutes in muscle_minutes(rates).items():
        by_hour = hours.setdefault(muscle, {})
        for minute_ns, (n, seconds, rest) in minutes.items():
            if rest is None:
                continue  # stored before rest tracking
            hour = hour_of_minute.get(minute_ns)
            if hour is None:
                hour = hour_of_minute[minute_ns] = hour_start_ns(minute_ns, tz)
            slot = by_hour.get(hour)
            if slot is None:
                by_hour[hour] = [n, rest, seconds]
            else:
                slot[0] += n
                slot[1] += rest
                slot[2] += seconds
    out: dict[str, MuscleHistory] = {}
    for muscle, by_hour in hours.items():
        days: dict[dt.date, list[float]] = {}
        for hour, (twitches, rest, worn) in by_hour.items():
            slot = days.setdefault(day_of(hour, tz), [0, 0.0, 0.0])
            slot[0] += twitches
            slot[1] += rest
            slot[2] += worn
        out[muscle] = MuscleHistory(
            muscle,
            {h: Tally(int(t), r, w) for h, (t, r, w) in sorted(by_hour.items())},
            {d: Tally(int(t), r, w) for d, (t, r, w) in sorted(days.items())},
        )
    return out


def is_twitching_day(tally: Tally | None, rules: FlagRules) -> bool:
    return (
        tally is not None
        and tally.twitches >= rules.twitch_day_min_twitches
        and tally.rest_s >= rules.min_monitored_hours * 3600.0
    )


def is_monitored_day(tally: Tally | None, rules: FlagRules) -> bool:
    """A day observed long enough: ≥ ``min_monitored_hours`` at rest."""
    return tally is not None and tally.rest_s >= rules.min_monitored_hours * 3600.0


def _day_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def twitching_day_words(rules: FlagRules) -> str:
    return (
        f"a twitching day has ≥ {rules.twitch_day_min_twitches} twitches and "
        f"≥ {_fmt(rules.min_monitored_hours)} h at rest"
    )


# -- persistent --------------------------------------------------------------------------------------


def persistent_rule(rules: FlagRules) -> str:
    return (
        f"persistent: twitching on ≥ {rules.persistent_days_per_week} of every 7 consecutive days for "
        f"≥ {rules.persistent_min_days} days, the last within the past {rules.persistent_recent_days} days "
        f"({twitching_day_words(rules)}; days with less time at rest count as not twitching)"
    )


def check_persistent(
    history: MuscleHistory, user: str, today: dt.date, rules: FlagRules, raised_at_ns: int
) -> Flag | None:
    """The latest run of 7-day windows each holding ≥ ``persistent_days_per_week`` twitching days,
    if the run spans ≥ ``persistent_min_days`` days."""
    if not history.days:
        return None
    days = _day_range(min(history.days), today)
    twitching = [is_twitching_day(history.days.get(d), rules) for d in days]
    good = [sum(twitching[i : i + 7]) >= rules.persistent_days_per_week for i in range(max(0, len(days) - 6))]
    best: tuple[int, int] | None = None  # (first window, last window) of the latest run
    i = 0
    while i < len(good):
        if not good[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(good) and good[j + 1]:
            j += 1
        if j - i + 7 >= rules.persistent_min_days:
            best = (i, j)
        i = j + 1
    if best is None:
        return None
    span = range(best[0], best[1] + 7)
    qualifying = tuple(days[k] for k in span if twitching[k])
    first, last = qualifying[0], qualifying[-1]
    if (today - last).days >= rules.persistent_recent_days:
        return None  # it was persistent once, but has stopped: not a current flag
    n_days = (last - first).days + 1
    return Flag(
        user=user,
        kind=FlagKind.PERSISTENT,
        muscle=history.muscle,
        rule=persistent_rule(rules),
        summary=(
            f"twitching on {len(qualifying)} of {n_days} days from {first.isoformat()} to {last.isoformat()}"
        ),
        numbers={"twitching_days": float(len(qualifying)), "span_days": float(n_days)},
        first_day=first,
        last_day=last,
        days=qualifying,
        raised_at_ns=raised_at_ns,
    )


# -- elevated ----------------------------------------------------------------------------------------


def elevated_rule(rules: FlagRules) -> str:
    return (
        f"elevated: hourly rate at rest ≥ {_fmt(rules.elevated_factor)}× the muscle's own baseline (median "
        f"hourly rate at rest of the previous {rules.baseline_days} days, from ≥ "
        f"{_fmt(rules.baseline_min_hours)} such hours) and ≥ {_fmt(rules.elevated_min_rate_per_h)}/h, for ≥ "
        f"{rules.elevated_hours} consecutive hours (each ≥ {_fmt(rules.min_hour_monitored_s / 60)} min at "
        f"rest) within the last {rules.elevated_recent_days} days"
    )


@dataclass(frozen=True)
class _Run:
    start_ns: int
    hours: int
    peak_per_h: float
    baseline_per_h: float


def _baseline(history: MuscleHistory, hour_ns: int, rules: FlagRules, tz: dt.tzinfo) -> float | None:
    """Median hourly rate over the ``baseline_days`` local days before the day of ``hour_ns``."""
    day = day_of(hour_ns, tz)
    day0 = day_start_ns(day, tz)
    since = day_start_ns(day - dt.timedelta(days=rules.baseline_days), tz)
    rates = [
        t.per_hour
        for h, t in history.hours.items()
        if since <= h < day0 and t.rest_s >= rules.min_hour_monitored_s
    ]
    if len(rates) < max(1.0, rules.baseline_min_hours):
        return None
    return float(statistics.median(rates))


def check_elevated(
    history: MuscleHistory,
    user: str,
    now_ns: int,
    rules: FlagRules,
    raised_at_ns: int,
    tz: dt.tzinfo = dt.UTC,
) -> Flag | None:
    since = day_start_ns(day_of(now_ns, tz) - dt.timedelta(days=rules.elevated_recent_days - 1), tz)
    baselines: dict[dt.date, float | None] = {}
    runs: list[_Run] = []
    current: list[tuple[int, float, float]] = []  # (hour, rate, baseline)

    def close_run() -> None:
        if len(current) >= rules.elevated_hours:
            runs.append(_Run(current[0][0], len(current), max(r for _, r, _ in current), current[0][2]))
        current.clear()

    for hour, tally in history.hours.items():
        if hour < since or hour >= now_ns:
            continue
        day = day_of(hour, tz)
        if day not in baselines:
            baselines[day] = _baseline(history, hour, rules, tz)
        base = baselines[day]
        rate = tally.per_hour
        elevated = (
            base is not None
            and tally.rest_s >= rules.min_hour_monitored_s
            and rate >= rules.elevated_factor * base
            and rate >= rules.elevated_min_rate_per_h
        )
        # Consecutive in elapsed time: the repeated hour of a DST fall-back follows its twin.
        if current and hour != current[-1][0] + HOUR_NS:
            close_run()
        if elevated and base is not None:
            current.append((hour, rate, base))
        else:
            close_run()
    close_run()
    if not runs:
        return None
    longest = max(runs, key=lambda r: (r.hours, r.start_ns))
    days = tuple(sorted({day_of(r.start_ns + k * HOUR_NS, tz) for r in runs for k in range(r.hours)}))
    return Flag(
        user=user,
        kind=FlagKind.ELEVATED,
        muscle=history.muscle,
        rule=elevated_rule(rules),
        summary=(
            f"{len(runs)} elevated period(s); longest {longest.hours} h from "
            f"{format_clock(longest.start_ns, tz)}, peak {longest.peak_per_h:.0f}/h at rest vs baseline "
            f"{longest.baseline_per_h:.1f}/h"
        ),
        numbers={
            "periods": float(len(runs)),
            "longest_hours": float(longest.hours),
            "peak_per_h": round(longest.peak_per_h, 3),
            "baseline_per_h": round(longest.baseline_per_h, 3),
        },
        first_day=days[0],
        last_day=days[-1],
        days=days,
        raised_at_ns=raised_at_ns,
    )


# -- spreading ---------------------------------------------------------------------------------------


def spreading_rule(rules: FlagRules) -> str:
    return (
        f"spreading: a muscle's first twitching day is within the last {rules.spreading_recent_days} days, "
        f"after ≥ {rules.spreading_prior_quiet_days} observed days without twitching, while another "
        f"muscle already had ≥ {rules.spreading_other_days} twitching days ({twitching_day_words(rules)})"
    )


def check_spreading(
    all_histories: Mapping[str, MuscleHistory], user: str, today: dt.date, rules: FlagRules, raised_at_ns: int
) -> list[Flag]:
    twitch_days = {
        m: sorted(d for d, t in h.days.items() if is_twitching_day(t, rules))
        for m, h in all_histories.items()
    }
    recent_from = today - dt.timedelta(days=rules.spreading_recent_days - 1)
    flags = []
    for muscle, days in sorted(twitch_days.items()):
        if not days or days[0] < recent_from:
            continue
        onset = days[0]
        quiet = [d for d, t in all_histories[muscle].days.items() if d < onset and is_monitored_day(t, rules)]
        if len(quiet) < rules.spreading_prior_quiet_days:
            continue  # a new sensor placement has no history to compare with: not spreading
        others = {
            other: [d for d in odays if d < onset] for other, odays in twitch_days.items() if other != muscle
        }
        earlier = {o: ds for o, ds in others.items() if len(ds) >= rules.spreading_other_days}
        if not earlier:
            continue
        lead, lead_days = max(sorted(earlier.items()), key=lambda kv: len(kv[1]))
        flags.append(
            Flag(
                user=user,
                kind=FlagKind.SPREADING,
                muscle=muscle,
                rule=spreading_rule(rules),
                summary=(
                    f"first twitching day {onset.isoformat()} after {len(quiet)} quiet observed days; "
                    f"{lead} had {len(lead_days)} twitching days before it (since "
                    f"{lead_days[0].isoformat()})"
                    + (
                        f"; also {', '.join(sorted(o for o in earlier if o != lead))}"
                        if len(earlier) > 1
                        else ""
                    )
                ),
                numbers={
                    "quiet_days_before": float(len(quiet)),
                    "other_muscles": float(len(earlier)),
                    "other_twitching_days": float(len(lead_days)),
                    "twitching_days_since_onset": float(len(days)),
                },
                first_day=onset,
                last_day=days[-1],
                days=tuple(days),
                raised_at_ns=raised_at_ns,
            )
        )
    return flags


# -- rising ------------------------------------------------------------------------------------------


def rising_rule(rules: FlagRules) -> str:
    return (
        "rising: the daily rate (twitches per hour at rest, days with ≥ "
        f"{_fmt(rules.min_monitored_hours)} h at rest) trends upward over ≥ {rules.rising_min_days} "
        f"days with ≥ {rules.rising_min_monitored_days} such days (Mann–Kendall one-sided p < "
        f"{rules.rising_p_value:g}; Theil–Sen slope > 0)"
    )


def check_rising(history: MuscleHistory, user: str, rules: FlagRules, raised_at_ns: int) -> Flag | None:
    days = [d for d, t in history.days.items() if is_monitored_day(t, rules)]
    if len(days) < rules.rising_min_monitored_days:
        return None
    if (days[-1] - days[0]).days + 1 < rules.rising_min_days:
        return None
    # Only a trend test needs numpy and scipy.stats (about a second to import): the store's values, the
    # worker's other rules and the quick commands that read flags (events, flags, journal) load neither.
    import numpy as np
    from scipy import stats

    x = np.array([(d - days[0]).days for d in days], dtype=float)
    y = np.array([history.days[d].per_hour for d in days], dtype=float)
    if np.all(y == y[0]):
        return None  # no variation, no trend (kendalltau would answer NaN)
    tau = stats.kendalltau(x, y, alternative="greater")
    p = float(tau.pvalue)
    slope = float(stats.theilslopes(y, x).slope)
    if not (p < rules.rising_p_value and slope > 0):
        return None
    first, last = days[0], days[-1]
    span = (last - first).days
    start_rate = float(np.median(y[: max(1, len(y) // 4)]))
    end_rate = float(np.median(y[-max(1, len(y) // 4) :]))
    return Flag(
        user=user,
        kind=FlagKind.RISING,
        muscle=history.muscle,
        rule=rising_rule(rules),
        summary=(
            f"daily rate at rest rose by {slope:.2f}/h per day from {first.isoformat()} to "
            f"{last.isoformat()} "
            f"({len(days)} observed days; about {start_rate:.1f}/h at the start, {end_rate:.1f}/h at the "
            f"end; p = {p:.3g})"
        ),
        numbers={
            "slope_per_h_per_day": round(slope, 4),
            "p_value": p,
            "kendall_tau": round(float(tau.statistic), 4),
            "monitored_days": float(len(days)),
            "span_days": float(span + 1),
            "start_per_h": round(start_rate, 3),
            "end_per_h": round(end_rate, 3),
        },
        first_day=first,
        last_day=last,
        days=tuple(days),
        raised_at_ns=raised_at_ns,
    )


# -- stale_sensor ------------------------------------------------------------------------------------


def stale_rule(rules: FlagRules) -> str:
    return f"stale_sensor: a configured device sent no frame for > {_fmt(rules.stale_after_s / 60)} min"


def check_stale(
    last_frame_ns: Mapping[str, int | None],
    user: str,
    now_ns: int,
    rules: FlagRules,
    raised_at_ns: int,
    watched_since_ns: int,
    tz: dt.tzinfo = dt.UTC,
) -> list[Flag]:
    """``last_frame_ns``: every configured device → wall time of its last frame (None: none seen since
    ``watched_since_ns``, when watching began)."""
    flags = []
    for device, last in sorted(last_frame_ns.items()):
        reference = last if last is not None else watched_since_ns
        silent_s = (now_ns - reference) / 1e9
        if silent_s <= rules.stale_after_s:
            continue
        since = day_of(reference, tz)
        today = day_of(now_ns, tz)
        if last is None:
            seen = f"no frame seen since watching began {format_clock(reference, tz)}"
        else:
            seen = f"last frame {format_clock(last, tz)}"
        flags.append(
            Flag(
                user=user,
                kind=FlagKind.STALE_SENSOR,
                muscle="",
                device=device,
                rule=stale_rule(rules),
                summary=f"silent for {_duration(silent_s)} ({seen}); check its battery, strap and link",
                numbers={"silent_s": round(silent_s, 1), "never_seen": float(last is None)},
                first_day=since,
                last_day=max(since, today),
                days=tuple(_day_range(since, max(since, today))),
                raised_at_ns=raised_at_ns,
            )
        )
    return flags


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# -- all rules ---------------------------------------------------------------------------------------

KIND_ORDER = {k: i for i, k in enumerate(FlagKind)}


def evaluate(
    rates: Sequence[MinuteRate],
    *,
    user: str,
    now_ns: int,
    rules: FlagRules,
    last_frame_ns: Mapping[str, int | None] | None = None,
    watched_since_ns: int | None = None,
    tz: dt.tzinfo = dt.UTC,
) -> list[Flag]:
    """Every rule over ``rates`` (minute rates of ``user``; only those before ``now_ns`` are used),
    with days and hours local to ``tz``. A replay of minutes recorded live is not counted twice
    (``histories``).

    Flags come ordered by muscle (device for stale sensors last), then by kind."""
    today = day_of(now_ns, tz)
    hist = histories([r for r in rates if r.minute_ns < now_ns and r.user == user], tz)
    flags: list[Flag] = []
    for muscle in sorted(hist):
        h = hist[muscle]
        for found in (
            check_elevated(h, user, now_ns, rules, now_ns, tz),
            check_persistent(h, user, today, rules, now_ns),
            check_rising(h, user, rules, now_ns),
        ):
            if found is not None:
                flags.append(found)
    flags.extend(check_spreading(hist, user, today, rules, now_ns))
    flags.extend(
        check_stale(
            last_frame_ns or {},
            user,
            now_ns,
            rules,
            now_ns,
            now_ns if watched_since_ns is None else watched_since_ns,
            tz,
        )
    )
    return sorted(
        flags, key=lambda f: (f.kind is FlagKind.STALE_SENSOR, f.muscle, f.device, KIND_ORDER[f.kind])
    )


def last_frames_from_rates(rates: Sequence[MinuteRate], devices: Sequence[str]) -> dict[str, int | None]:
    last: dict[str, int | None] = dict.fromkeys(devices)
    for r in rates:
        if r.device in last and r.monitored_s > 0:
            end = r.minute_ns + round(min(r.monitored_s, 60.0) * 1e9)
            previous = last[r.device]
            last[r.device] = end if previous is None else max(previous, end)
    return last
