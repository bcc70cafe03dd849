"""Journal values and the rate-after-factor analysis, on inputs whose answer is known."""

from __future__ import annotations

import pytest

from twitchwatch.processing.events import MINUTE_NS, MinuteRate
from twitchwatch.processing.journal import (
    HOUR_NS,
    Factor,
    JournalEntry,
    JournalError,
    RateSum,
    factor_effects,
    parse_factor,
)

T0 = 1_780_000_000 * 1_000_000_000 // HOUR_NS * HOUR_NS


def hours(muscle: str, first_hour: int, n_hours: int, per_hour: int) -> list[MinuteRate]:
    """``n_hours`` monitored hours from T0 + first_hour, ``per_hour`` twitches in each (one per minute)."""
    out = []
    for h in range(first_hour, first_hour + n_hours):
        for m in range(60):
            out.append(
                MinuteRate(
                    "alice",
                    muscle,
                    "d1",
                    "live",
                    T0 + h * HOUR_NS + m * MINUTE_NS,
                    int(m < per_hour),
                    60.0,
                    60.0,
                )
            )
    return out


def test_rate_after_caffeine_vs_baseline_per_muscle() -> None:
    rates = hours("calf", 0, 10, 6) + hours("calf", 10, 6, 18) + hours("calf", 16, 8, 6)
    rates += hours("arm", 0, 24, 3)
    coffee = JournalEntry("alice", T0 + 10 * HOUR_NS, Factor.CAFFEINE, "2 cups")
    effects = factor_effects([coffee], rates)
    assert [(e.factor, e.muscle) for e in effects] == [(Factor.CAFFEINE, "arm"), (Factor.CAFFEINE, "calf")]
    arm, calf = effects
    assert calf.after == RateSum(108, 6 * 3600.0)
    assert calf.baseline == RateSum(108, 18 * 3600.0)
    assert calf.after.per_hour == 18.0
    assert calf.baseline.per_hour == 6.0
    assert calf.ratio == 3.0
    assert arm.ratio == 1.0
    assert calf.entries == 1
    assert calf.window_h == 6.0


def test_unworn_time_is_not_zero_twitching_and_windows_are_per_factor() -> None:
    # Worn only 2 h inside the caffeine window (at 12/h) and 4 h outside (at 4/h): the empty hours
    # inside the window must not dilute the rate.
    rates = hours("calf", 0, 4, 4) + hours("calf", 6, 2, 12)
    coffee = JournalEntry("alice", T0 + 5 * HOUR_NS, Factor.CAFFEINE)
    run = JournalEntry("alice", T0 + 6 * HOUR_NS, Factor.EXERCISE, "5 km")
    effects = factor_effects([coffee, run], rates, windows_ns={Factor.EXERCISE: 1 * HOUR_NS})
    by_factor = {e.factor: e for e in effects}
    assert by_factor[Factor.CAFFEINE].after.per_hour == 12.0
    assert by_factor[Factor.CAFFEINE].baseline.per_hour == 4.0
    assert by_factor[Factor.EXERCISE].after == RateSum(12, 3600.0)
    assert by_factor[Factor.EXERCISE].window_h == 1.0


def test_overlapping_windows_count_each_minute_once_and_no_monitoring_gives_no_ratio() -> None:
    rates = hours("calf", 0, 2, 6) + hours("calf", 2, 4, 12)
    entries = [
        JournalEntry("alice", T0 + 2 * HOUR_NS, Factor.STRESS),
        JournalEntry("alice", T0 + 3 * HOUR_NS, Factor.STRESS),
    ]
    (effect,) = factor_effects(entries, rates)
    assert effect.entries == 2
    assert effect.after == RateSum(48, 4 * 3600.0)
    assert effect.ratio == 2.0
    # All monitored time after the entry: no baseline, so no ratio rather than a division by zero.
    (alone,) = factor_effects([JournalEntry("alice", T0, Factor.SLEEP)], hours("calf", 0, 2, 6))
    assert alone.baseline.per_hour is None
    assert alone.ratio is None


def test_no_entries_no_effects() -> None:
    assert factor_effects([], hours("calf", 0, 1, 1)) == []


def test_entry_validation_names_the_field() -> None:
    with pytest.raises(JournalError) as info:
        JournalEntry("alice", T0, "coffee")  # type: ignore[arg-type]
    assert info.value.key == "factor"
    with pytest.raises(JournalError) as info:
        JournalEntry("alice", T0, Factor.OTHER, note="x" * 3000)
    assert info.value.key == "note"
    with pytest.raises(JournalError) as info:
        JournalEntry("alice", T0, Factor.OTHER, entry_id="../x")
    assert info.value.key == "entry_id"
    assert parse_factor(" Caffeine ") is Factor.CAFFEINE
    with pytest.raises(JournalError, match="caffeine, exercise"):
        parse_factor("coffee")
    assert JournalEntry("a", T0, Factor.OTHER).entry_id != JournalEntry("a", T0, Factor.OTHER).entry_id
