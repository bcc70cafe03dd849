"""The journal: what the person logged (caffeine, exercise, sleep, stress, medication, symptoms …) and
how twitching went in the hours after each entry compared with their own baseline.

Values (``JournalEntry``, ``Factor``) are stored by every ``EventStore`` (``add_journal_entry``,
``journal_entries``, ``delete_journal_entry``); the analysis below is pure and works on stored minute
rates at rest, so unworn time — and time the muscle moved or contracted — never counts as "no
twitching".
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twitchwatch.errors import UserError
from twitchwatch.processing.events import MinuteRate, muscle_minutes
from twitchwatch.processing.timeunits import HOUR_NS

_FAR = 2**63  # sorts after any end time
NOTE_MAX = 2000  # characters: a journal note, not a document


class JournalError(UserError, ValueError):
    """A journal entry is invalid; ``key`` names the offending field."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


class Factor(enum.StrEnum):
    CAFFEINE = "caffeine"
    EXERCISE = "exercise"
    SLEEP = "sleep"
    STRESS = "stress"
    MEDICATION = "medication"
    SYMPTOM = "symptom"
    OTHER = "other"
    # "I felt that": a twitch the person felt (processing/felt.py) — an observation compared with the
    # detections, not a factor whose effect on the rate is measured.
    FELT = "felt"


def new_entry_id() -> str:
    import uuid  # here: uuid brings platform and ~4 ms to every command that reads the journal's types

    return uuid.uuid4().hex


@dataclass(frozen=True)
class JournalEntry:
    """One logged factor at one time (ns since the Unix epoch).

    ``amount`` is free text ("2 cups", "45 min run", "6 h"); ``note`` is free text; ``muscle`` optionally
    says where a symptom was felt. ``entry_id`` identifies the entry for deletion (a fresh UUID by
    default); writing an entry with an existing id replaces it.
    """

    user: str
    time_ns: int
    factor: Factor
    amount: str = ""
    note: str = ""
    muscle: str = ""
    entry_id: str = field(default_factory=new_entry_id)

    def __post_init__(self) -> None:
        if not isinstance(self.factor, Factor):
            raise JournalError(
                f"{self.factor!r} is not one of {', '.join(f.value for f in Factor)}", "factor"
            )
        if not self.entry_id or not self.entry_id.isalnum():
            raise JournalError(f"{self.entry_id!r} must be non-empty letters and digits", "entry_id")
        for key in ("amount", "note", "muscle"):
            if len(getattr(self, key)) > NOTE_MAX:
                raise JournalError(f"longer than {NOTE_MAX} characters", key)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "user": self.user,
            "time": self.time_ns / 1e9,
            "time_ns": self.time_ns,
            "factor": self.factor.value,
            "amount": self.amount,
            "note": self.note,
            "muscle": self.muscle,
        }


def parse_factor(text: str) -> Factor:
    try:
        return Factor(text.strip().lower())
    except ValueError:
        raise JournalError(f"{text!r} is not one of {', '.join(f.value for f in Factor)}", "factor") from None


# ---------------------------------------------------------------------------------------------------
# Analysis: twitch rate in the window after each entry vs the person's baseline


DEFAULT_WINDOW_NS = 6 * HOUR_NS


@dataclass(frozen=True)
class RateSum:
    """Twitches at rest over seconds at rest; ``per_hour`` is None without any time at rest."""

    twitches: int = 0
    rest_s: float = 0.0

    @property
    def per_hour(self) -> float | None:
        return self.twitches * 3600.0 / self.rest_s if self.rest_s > 0 else None

    def plus(self, twitches: int, rest_s: float) -> RateSum:
        return RateSum(self.twitches + twitches, self.rest_s + rest_s)


@dataclass(frozen=True)
class FactorEffect:
    """One factor kind on one muscle: the rate inside the windows after its entries vs the baseline.

    ``ratio`` = after / baseline (None when either side has no monitored time or the baseline is 0).
    """

    factor: Factor
    muscle: str
    window_h: float
    entries: int
    after: RateSum
    baseline: RateSum

    @property
    def ratio(self) -> float | None:
        after, base = self.after.per_hour, self.baseline.per_hour
        if after is None or base is None or base == 0:
            return None
        return after / base

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor.value,
            "muscle": self.muscle,
            "window_h": self.window_h,
            "entries": self.entries,
            "after_per_hour": self.after.per_hour,
            "after_rest_h": self.after.rest_s / 3600.0,
            "baseline_per_hour": self.baseline.per_hour,
            "baseline_rest_h": self.baseline.rest_s / 3600.0,
            "ratio": self.ratio,
        }


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _inside(minute_ns: int, intervals: Sequence[tuple[int, int]]) -> bool:
    """``intervals`` merged and sorted. A minute belongs to a window when it starts inside it: minutes
    are the rates' resolution."""
    i = bisect.bisect_right(intervals, (minute_ns, _FAR)) - 1
    return i >= 0 and intervals[i][0] <= minute_ns < intervals[i][1]


def factor_effects(
    entries: Sequence[JournalEntry],
    rates: Sequence[MinuteRate],
    windows_ns: Mapping[Factor, int] | None = None,
    default_window_ns: int = DEFAULT_WINDOW_NS,
) -> list[FactorEffect]:
    """Per factor kind and muscle: twitch rate at rest in the window after each entry vs the baseline.

    Rates are twitches per hour at rest; minutes stored before rest tracking are left out (their counts
    include movement). The baseline is the rate over every such minute outside *all* entries' windows (any
    factor),
    so one factor's effect does not leak into another's baseline. Windows of one factor that overlap
    are merged, so a minute is counted once. Rates are one user's, counted per muscle minute
    (``muscle_minutes``: two devices on a muscle do not halve its rate, a replay does not double it).
    Only factors with entries appear; every muscle with rates appears for each of them, ordered by factor
    then muscle.
    """
    windows_ns = windows_ns or {}
    by_factor: dict[Factor, list[tuple[int, int]]] = {}
    entries = [e for e in entries if e.factor is not Factor.FELT]  # observations, compared elsewhere
    for e in entries:
        width = windows_ns.get(e.factor, default_window_ns)
        by_factor.setdefault(e.factor, []).append((e.time_ns, e.time_ns + width))
    merged = {f: _merge(iv) for f, iv in by_factor.items()}
    everything = _merge(iv for ivs in merged.values() for iv in ivs)
    counts = {f: sum(1 for e in entries if e.factor is f) for f in merged}

    baseline: dict[str, RateSum] = {}
    after: dict[tuple[Factor, str], RateSum] = {}
    muscles: set[str] = set()
    for muscle, minutes in muscle_minutes(rates).items():
        muscles.add(muscle)
        for minute_ns, (twitches, _worn, rest) in minutes.items():
            if rest is None:
                continue  # stored before rest tracking
            if not _inside(minute_ns, everything):
                baseline[muscle] = baseline.get(muscle, RateSum()).plus(twitches, rest)
                continue
            for f, ivs in merged.items():
                if _inside(minute_ns, ivs):
                    key = (f, muscle)
                    after[key] = after.get(key, RateSum()).plus(twitches, rest)
    return [
        FactorEffect(
            f,
            m,
            windows_ns.get(f, default_window_ns) / HOUR_NS,
            counts[f],
            after.get((f, m), RateSum()),
            baseline.get(m, RateSum()),
        )
        for f in sorted(merged, key=lambda x: list(Factor).index(x))
        for m in sorted(muscles)
    ]
