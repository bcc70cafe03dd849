"""Persistent-activity flags: every rule with known inputs, positive and negative, and the 21-day
history through both real stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Sequence

import numpy as np
import pytest

from twitchwatch.processing.events import (
    EventKind,
    MinuteRate,
    TwitchEvent,
    rerun_free_events,
    rerun_free_rates,
)
from twitchwatch.processing.flag_service import compute_flag_set, flags_for_display
from twitchwatch.processing.flags import (
    Flag,
    FlagError,
    FlagKind,
    FlagRules,
    FlagSet,
    evaluate,
    histories,
)
from twitchwatch.processing.localtime import day_end_ns, day_start_ns, to_ns
from twitchwatch.processing.store import EventQuery, EventStore

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
DAY0 = dt.date(2026, 10, 1)
RULES = FlagRules()


def hour_rates(muscle: str, hour_ns: int, twitches: int, monitored_min: int = 60) -> list[MinuteRate]:
    """One hour of minute rates, ``twitches`` spread over its first minutes."""
    out = []
    for m in range(monitored_min):
        n = twitches // monitored_min + (1 if m < twitches % monitored_min else 0)
        out.append(MinuteRate("alice", muscle, "dev1", "live", hour_ns + m * MINUTE, n, 60.0, 60.0))
    return out


def day_rates(
    muscle: str, day: dt.date, per_hour: float, hours: Sequence[int] = range(8, 22)
) -> list[MinuteRate]:
    """A day worn during ``hours`` (UTC) at a steady ``per_hour`` twitches per hour."""
    out = []
    for h in hours:
        out.extend(hour_rates(muscle, day_start_ns(day) + h * HOUR, round(per_hour)))
    return out


def at(day: dt.date, hour: int = 23) -> int:
    return day_start_ns(day) + hour * HOUR


def days(n: int, start: dt.date = DAY0) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def kinds(flags: Sequence[Flag], muscle: str) -> set[FlagKind]:
    return {f.kind for f in flags if f.muscle == muscle}


# --- persistent -------------------------------------------------------------------------------------


def three_weeks() -> list[MinuteRate]:
    rates = []
    for d in days(21):
        rates += day_rates("calf_left", d, 4)  # 56 twitches a day: twitching every day
        rates += day_rates("control_arm", d, 0)  # worn as long, never twitching
    return rates


def test_daily_twitching_for_21_days_is_persistent_and_the_control_is_not() -> None:
    last = DAY0 + dt.timedelta(days=20)
    flags = evaluate(three_weeks(), user="alice", now_ns=at(last), rules=RULES)
    persistent = [f for f in flags if f.kind is FlagKind.PERSISTENT]
    assert [f.muscle for f in persistent] == ["calf_left"]
    flag = persistent[0]
    assert flag.first_day == DAY0
    assert flag.last_day == last
    assert flag.days == tuple(days(21))
    assert flag.numbers["twitching_days"] == 21
    assert "≥ 5 of every 7 consecutive days" in flag.rule
    assert "≥ 14 days" in flag.rule
    assert "2026-10-01" in flag.text
    assert "2026-10-21" in flag.text
    assert "21 of 21 days" in flag.text
    assert kinds(flags, "control_arm") == set()


def test_four_days_a_week_is_not_persistent() -> None:
    rates = []
    for i, d in enumerate(days(21)):
        rates += day_rates("calf_left", d, 4 if i % 7 < 4 else 0)
    flags = evaluate(rates, user="alice", now_ns=at(DAY0 + dt.timedelta(days=20)), rules=RULES)
    assert FlagKind.PERSISTENT not in kinds(flags, "calf_left")


def test_persistent_that_stopped_a_week_ago_is_no_longer_raised() -> None:
    rates = three_weeks()
    for back in (6, 7):
        now = at(DAY0 + dt.timedelta(days=20 + back))
        flags = evaluate(rates, user="alice", now_ns=now, rules=RULES)
        assert (FlagKind.PERSISTENT in kinds(flags, "calf_left")) == (back < 7), back


def test_persistent_needs_two_weeks_and_monitored_days() -> None:
    short = [r for d in days(12) for r in day_rates("calf_left", d, 4)]
    assert not evaluate(short, user="alice", now_ns=at(DAY0 + dt.timedelta(days=11)), rules=RULES)
    # Worn one hour a day only: below min_monitored_hours, so these days do not count as twitching.
    brief = [r for d in days(21) for r in day_rates("calf_left", d, 10, hours=[9])]
    flags = evaluate(brief, user="alice", now_ns=at(DAY0 + dt.timedelta(days=20)), rules=RULES)
    assert FlagKind.PERSISTENT not in kinds(flags, "calf_left")
    looser = FlagRules(min_monitored_hours=1.0)
    flags = evaluate(brief, user="alice", now_ns=at(DAY0 + dt.timedelta(days=20)), rules=looser)
    assert FlagKind.PERSISTENT in kinds(flags, "calf_left")


def test_observed_time_is_time_at_rest_not_time_worn() -> None:
    """Worn 14 h a day but at rest only 1 h of them (a walking job): the day is not observed, however
    many twitches it had at rest; with 3 h at rest a day it is."""

    def at_rest(rest_s: float) -> list[MinuteRate]:
        return [
            dataclasses.replace(
                r, twitches=r.twitches if r.minute_ns % HOUR < 20 * MINUTE else 0, rest_s=rest_s
            )
            for d in days(21)
            for r in day_rates("calf_left", d, 30)
        ]

    now = at(DAY0 + dt.timedelta(days=20))
    busy = at_rest(60.0 / 14)  # 1 h at rest a day, its twitches in it
    assert sum(r.rest_s or 0 for r in busy) / 21 == pytest.approx(3600.0)
    assert FlagKind.PERSISTENT not in kinds(
        evaluate(busy, user="alice", now_ns=now, rules=RULES), "calf_left"
    )
    calmer = at_rest(3 * 60.0 / 14)
    flags = evaluate(calmer, user="alice", now_ns=now, rules=RULES)
    assert FlagKind.PERSISTENT in kinds(flags, "calf_left")
    assert "h at rest" in next(f for f in flags if f.kind is FlagKind.PERSISTENT).rule


def test_minutes_stored_before_rest_tracking_raise_no_flag() -> None:
    """Three weeks of daily twitching recorded by a worker from before rest tracking: those counts include
    movement, so the rules do not read them; the same weeks recorded with rest tracking do."""
    old = [dataclasses.replace(r, rest_s=None) for r in three_weeks()]
    now = at(DAY0 + dt.timedelta(days=20))
    assert evaluate(old, user="alice", now_ns=now, rules=RULES) == []
    assert all(not h.hours and not h.days for h in histories(old).values())
    assert FlagKind.PERSISTENT in kinds(
        evaluate(three_weeks(), user="alice", now_ns=now, rules=RULES), "calf_left"
    )


# --- elevated ---------------------------------------------------------------------------------------


def elevated_history(hot_hours: int) -> tuple[list[MinuteRate], int]:
    rates = [r for d in days(14) for r in day_rates("calf_left", d, 6)]
    today = DAY0 + dt.timedelta(days=14)
    rates += day_rates("calf_left", today, 6, hours=range(8, 12))
    rates += day_rates("calf_left", today, 30, hours=range(12, 12 + hot_hours))
    rates += day_rates("calf_left", today, 6, hours=range(12 + hot_hours, 20))
    return rates, at(today, 21)


def test_three_hours_at_five_times_the_baseline_are_elevated() -> None:
    rates, now = elevated_history(3)
    flags = [f for f in evaluate(rates, user="alice", now_ns=now, rules=RULES) if f.kind is FlagKind.ELEVATED]
    assert len(flags) == 1
    flag = flags[0]
    assert flag.numbers == {"periods": 1, "longest_hours": 3, "peak_per_h": 30.0, "baseline_per_h": 6.0}
    assert flag.days == (DAY0 + dt.timedelta(days=14),)
    assert "2026-10-15 12:00 UTC" in flag.summary
    assert "2× the muscle's own baseline" in flag.rule
    assert "≥ 3 consecutive hours" in flag.rule


def replayed(rates: Sequence[MinuteRate]) -> list[MinuteRate]:
    return [dataclasses.replace(r, source="replay") for r in rates]


def test_a_replay_of_live_minutes_is_not_counted_twice() -> None:
    """Two weeks at 6/h, then an afternoon at 10/h that the user also replayed from its recording: counted
    twice it would be 20/h, elevated; counted once it is not. A replayed day nobody saw live counts."""
    rates = [r for d in days(14) for r in day_rates("calf_left", d, 6)]
    today = DAY0 + dt.timedelta(days=14)
    afternoon = day_rates("calf_left", today, 10, hours=range(12, 17))
    now = at(today, 21)
    assert FlagKind.ELEVATED in kinds(
        evaluate(rates + afternoon * 2, user="alice", now_ns=now, rules=RULES), "calf_left"
    )
    flags = evaluate(rates + afternoon + replayed(afternoon), user="alice", now_ns=now, rules=RULES)
    assert FlagKind.ELEVATED not in kinds(flags, "calf_left")
    # Persistent from replayed days alone (an imported recording, no live rows): the only record there is.
    only_replayed = replayed([r for d in days(21) for r in day_rates("calf_left", d, 6)])
    assert FlagKind.PERSISTENT in kinds(
        evaluate(only_replayed, user="alice", now_ns=at(DAY0 + dt.timedelta(days=20)), rules=RULES),
        "calf_left",
    )


def test_rerun_free_keeps_live_and_what_only_a_replay_recorded() -> None:
    t = day_start_ns(DAY0)
    live = MinuteRate("alice", "calf_left", "dev1", "live", t, 3, 60.0, 60.0)
    again = dataclasses.replace(live, source="replay", twitches=4)
    other_device = dataclasses.replace(again, device="dev2")
    other_minute = dataclasses.replace(again, minute_ns=t + MINUTE)
    other_user = dataclasses.replace(again, user="bob")
    kept = rerun_free_rates([again, live, other_device, other_minute, other_user])
    assert kept == [live, other_device, other_minute, other_user]
    twitch = TwitchEvent(
        "alice", "calf_left", "dev1", "acc", 0, EventKind.FASCICULATION, t + 5, t + 9, 1.0, "g", 0.9
    )
    replayed_twitch = dataclasses.replace(twitch, source="replay")
    late = dataclasses.replace(replayed_twitch, start_ns=t + MINUTE + 1, end_ns=t + MINUTE + 5)
    assert rerun_free_events([twitch, replayed_twitch, late], [live, again, other_minute]) == [twitch, late]


def test_two_hot_hours_or_no_baseline_are_not_elevated() -> None:
    rates, now = elevated_history(2)
    assert FlagKind.ELEVATED not in kinds(evaluate(rates, user="alice", now_ns=now, rules=RULES), "calf_left")
    # The same hot afternoon with no earlier history: there is no baseline to be above.
    today = DAY0 + dt.timedelta(days=14)
    alone = day_rates("calf_left", today, 30, hours=range(12, 18))
    assert FlagKind.ELEVATED not in kinds(evaluate(alone, user="alice", now_ns=now, rules=RULES), "calf_left")


def test_a_zero_baseline_needs_the_minimum_rate() -> None:
    rates = [r for d in days(14) for r in day_rates("calf_left", d, 0)]
    today = DAY0 + dt.timedelta(days=14)
    rates += day_rates("calf_left", today, 5, hours=range(12, 17))  # 5/h: above 2×0 but below 10/h
    now = at(today, 20)
    assert not evaluate(rates, user="alice", now_ns=now, rules=RULES)
    rates += day_rates("calf_left", today, 12, hours=range(17, 20))
    flags = evaluate(rates, user="alice", now_ns=now, rules=RULES)
    assert [f.kind for f in flags] == [FlagKind.ELEVATED]
    assert flags[0].numbers["longest_hours"] == 3


# --- spreading --------------------------------------------------------------------------------------


def spreading_history(other_days: int, quiet_days: int) -> tuple[list[MinuteRate], int]:
    rates: list[MinuteRate] = []
    for i, d in enumerate(days(14)):
        if i >= 14 - other_days:
            rates += day_rates("calf_left", d, 4)
        if i >= 11 - quiet_days:
            rates += day_rates("thigh_right", d, 4 if i >= 11 else 0)
    return rates, at(DAY0 + dt.timedelta(days=13))


def test_a_new_muscle_twitching_while_another_has_long_been_is_spreading() -> None:
    rates, now = spreading_history(other_days=14, quiet_days=5)
    flags = [
        f for f in evaluate(rates, user="alice", now_ns=now, rules=RULES) if f.kind is FlagKind.SPREADING
    ]
    assert [f.muscle for f in flags] == ["thigh_right"]
    flag = flags[0]
    assert flag.first_day == DAY0 + dt.timedelta(days=11)
    assert flag.numbers["quiet_days_before"] == 5
    assert flag.numbers["other_twitching_days"] == 11
    assert "calf_left had 11 twitching days" in flag.summary
    assert "2026-10-12" in flag.summary


@pytest.mark.parametrize(
    ("other_days", "quiet_days", "why"),
    [(5, 5, "the other muscle twitched only 2 days before"), (14, 0, "a new sensor has no history")],
)
def test_not_spreading(other_days: int, quiet_days: int, why: str) -> None:
    rates, now = spreading_history(other_days, quiet_days)
    flags = evaluate(rates, user="alice", now_ns=now, rules=RULES)
    assert FlagKind.SPREADING not in kinds(flags, "thigh_right"), why


def test_an_old_onset_is_not_spreading() -> None:
    rates, _ = spreading_history(other_days=14, quiet_days=5)
    later = at(DAY0 + dt.timedelta(days=25))  # the onset is 15 days back by then
    assert FlagKind.SPREADING not in kinds(
        evaluate(rates, user="alice", now_ns=later, rules=RULES), "thigh_right"
    )


# --- rising -----------------------------------------------------------------------------------------


def trend_history(slope_per_day: float, seed: int) -> tuple[list[MinuteRate], int]:
    rng = np.random.default_rng(seed)
    rates = []
    for i, d in enumerate(days(28)):
        per_hour = max(0.0, 10 + slope_per_day * i + rng.normal(0, 2))
        rates += day_rates("calf_left", d, per_hour)
    return rates, at(DAY0 + dt.timedelta(days=27))


def test_an_upward_trend_over_four_weeks_is_rising() -> None:
    rates, now = trend_history(0.5, seed=1)
    flags = [f for f in evaluate(rates, user="alice", now_ns=now, rules=RULES) if f.kind is FlagKind.RISING]
    assert len(flags) == 1
    flag = flags[0]
    assert flag.numbers["p_value"] < 0.05
    assert 0.3 < flag.numbers["slope_per_h_per_day"] < 0.7
    assert flag.first_day == DAY0
    assert flag.last_day == DAY0 + dt.timedelta(days=27)
    assert "Mann–Kendall" in flag.rule


@pytest.mark.parametrize("slope", [0.0, -0.5])
def test_a_flat_or_falling_rate_is_not_rising(slope: float) -> None:
    rates, now = trend_history(slope, seed=2)
    assert FlagKind.RISING not in kinds(evaluate(rates, user="alice", now_ns=now, rules=RULES), "calf_left")


def test_two_weeks_of_rise_are_too_short() -> None:
    rates, _ = trend_history(0.5, seed=1)
    short = [r for r in rates if r.minute_ns < day_start_ns(DAY0 + dt.timedelta(days=14))]
    now = at(DAY0 + dt.timedelta(days=13))
    assert FlagKind.RISING not in kinds(evaluate(short, user="alice", now_ns=now, rules=RULES), "calf_left")


# --- stale_sensor -----------------------------------------------------------------------------------


def test_a_silent_configured_device_is_stale_and_a_recent_one_is_not() -> None:
    now = at(DAY0, 12)
    frames: dict[str, int | None] = {"polar1": now - 20 * MINUTE, "myo1": now - 5 * MINUTE, "new1": None}
    flags = evaluate(
        [], user="alice", now_ns=now, rules=RULES, last_frame_ns=frames, watched_since_ns=now - HOUR
    )
    assert [(f.kind, f.device) for f in flags] == [
        (FlagKind.STALE_SENSOR, "new1"),
        (FlagKind.STALE_SENSOR, "polar1"),
    ]
    polar = flags[1]
    assert polar.numbers["silent_s"] == 1200
    assert "20 min" in polar.summary
    assert "> 10 min" in polar.rule
    assert "no frame seen since" in flags[0].summary
    patient = FlagRules(stale_after_s=7200)
    assert not evaluate(
        [], user="alice", now_ns=now, rules=patient, last_frame_ns=frames, watched_since_ns=now - HOUR
    )


# --- values and rules -------------------------------------------------------------------------------


def test_flag_set_json_round_trip_and_bad_documents_name_the_key() -> None:
    flags = evaluate(three_weeks(), user="alice", now_ns=at(DAY0 + dt.timedelta(days=20)), rules=RULES)
    flag_set = FlagSet("alice", at(DAY0), "worker", tuple(flags))
    assert FlagSet.from_json(flag_set.to_json()) == flag_set
    with pytest.raises(FlagError) as info:
        FlagSet.from_json('{"user": "a", "computed_at_ns": 1, "computed_by": "me", "flags": []}')
    assert info.value.key == "computed_by"
    with pytest.raises(FlagError) as info:
        FlagSet.from_json(
            '{"user": "a", "computed_at_ns": 1, "computed_by": "cli", "flags": [{"kind": "x"}]}'
        )
    assert info.value.key == "kind"
    with pytest.raises(FlagError) as info:
        FlagSet.from_json(
            '{"user": "a", "computed_at_ns": 1, "computed_by": "cli", "flags": [{"kind": "rising"}]}'
        )
    assert info.value.key == "numbers"


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ('{"user": "a", "computed_at_ns": 1, "computed_by": "cli", "flags": [1]}', "flags"),
        ('{"user": "a", "computed_at_ns": [1], "computed_by": "cli", "flags": []}', "computed_at_ns"),
        ('{"user": "a", "computed_at_ns": Infinity, "computed_by": "cli", "flags": []}', "computed_at_ns"),
        ('{"user": "a", "computed_at_ns": 1e30, "computed_by": "cli", "flags": []}', "computed_at_ns"),
        # an integer no float holds: OverflowError, raised out of the document's parsing
        (
            '{"user": "a", "computed_at_ns": 1' + "0" * 400 + ', "computed_by": "cli", "flags": []}',
            "computed_at_ns",
        ),
        ('{"user": "a", "computed_at_ns": "x", "computed_by": "cli", "flags": []}', "computed_at_ns"),
    ],
)
def test_a_damaged_flag_document_is_a_flag_error(document: str, key: str) -> None:
    """What an archive or a store may hold damaged: a flag that is no object, a time that is no 64-bit
    number of ns. Each was a TypeError or an OverflowError, which the archive import did not catch."""
    with pytest.raises(FlagError) as info:
        FlagSet.from_json(document)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("elevated_factor", 0.0),
        ("persistent_days_per_week", 8),
        ("rising_p_value", 1.5),
        ("persistent_min_days", 3),
    ],
)
def test_bad_thresholds_name_the_key(field: str, value: float) -> None:
    with pytest.raises(FlagError) as info:
        FlagRules(**{field: value})  # type: ignore[arg-type]
    assert info.value.key == field


# --- through the real stores ------------------------------------------------------------------------


def test_21_day_history_in_a_store_flags_the_daily_muscle_only(store: EventStore) -> None:
    store.write_rates(three_weeks())
    now = at(DAY0 + dt.timedelta(days=20), 22) + 5 * MINUTE  # dev1's last frame: 22:00
    computed = compute_flag_set(
        store, user="alice", now_ns=now, rules=RULES, computed_by="test", devices=["dev1", "gone1"]
    )
    assert [(f.kind, f.muscle or f.device) for f in computed.flags] == [
        (FlagKind.PERSISTENT, "calf_left"),
        (FlagKind.STALE_SENSOR, "gone1"),  # configured, never in the store
    ]
    assert computed.flags[0].days == tuple(days(21))
    # Nothing stored yet: the display function computes, and says so.
    shown = flags_for_display(store, user="alice", rules=RULES, devices=["dev1"], now_ns=now)
    assert shown.computed_by == "cli"
    assert [f.kind for f in shown.flags] == [FlagKind.PERSISTENT]
    # Once the worker has stored a set, that set is what is shown while it is fresh.
    worker_set = FlagSet("alice", now - MINUTE, "worker", computed.flags)
    store.replace_flags(worker_set)
    assert flags_for_display(store, user="alice", rules=RULES, now_ns=now) == worker_set
    stale = flags_for_display(store, user="alice", rules=RULES, now_ns=now + HOUR, max_age_s=600)
    assert stale.computed_by == "cli"
    assert stale.computed_at_ns == now + HOUR


# --- local days and hours (TWITCHWATCH_TIMEZONE) ----------------------------------------------------

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def local_ns(day: dt.date, hour: int, minute: int = 0, tz: dt.tzinfo = NEW_YORK) -> int:
    return to_ns(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz))


def worn_all_day(first: dt.date, last: dt.date) -> list[MinuteRate]:
    """Every minute of local days ``first``..``last`` in New York, one twitch at half past each hour."""
    return [
        MinuteRate("alice", "calf_left", "dev1", "live", t, int((t // MINUTE) % 60 == 30), 60.0, 60.0)
        for t in range(day_start_ns(first, NEW_YORK), day_end_ns(last, NEW_YORK), MINUTE)
    ]


def test_days_across_dst_changes_are_local_and_23_or_25_hours_long(store: EventStore) -> None:
    spring = (dt.date(2026, 3, 7), dt.date(2026, 3, 9))  # clocks go forward on 8 March
    autumn = (dt.date(2026, 10, 31), dt.date(2026, 11, 2))  # and back on 1 November
    store.write_rates(worn_all_day(*spring) + worn_all_day(*autumn))
    rates = store.rates(EventQuery(0, day_end_ns(autumn[1], NEW_YORK), "alice"))
    history = histories(rates, NEW_YORK)["calf_left"]
    expected_hours = {
        dt.date(2026, 3, 7): 24,
        dt.date(2026, 3, 8): 23,
        dt.date(2026, 3, 9): 24,
        dt.date(2026, 10, 31): 24,
        dt.date(2026, 11, 1): 25,
        dt.date(2026, 11, 2): 24,
    }
    assert {d: t.rest_s / 3600 for d, t in history.days.items()} == expected_hours
    assert {d: t.twitches for d, t in history.days.items()} == expected_hours  # one per local hour
    assert len(history.hours) == sum(expected_hours.values())
    assert all(t.rest_s == 3600 and t.twitches == 1 for t in history.hours.values())


def evening_history(last: dt.date, n_days: int = 21) -> list[MinuteRate]:
    """``n_days`` up to ``last``, worn 21:00-24:00 New York time, six twitches from 23:30 each day:
    in UTC every one of them is on the next day."""
    rates = []
    for i in range(n_days):
        day = last - dt.timedelta(days=n_days - 1 - i)
        for t in range(local_ns(day, 21), day_end_ns(day, NEW_YORK), MINUTE):
            n = 6 if t == local_ns(day, 23, 30) else 0
            rates.append(MinuteRate("alice", "calf_left", "dev1", "live", t, n, 60.0, 60.0))
    return rates


def test_a_twitch_at_2330_counts_on_the_local_day_and_the_flag_says_local_dates(store: EventStore) -> None:
    last = DAY0 + dt.timedelta(days=20)
    store.write_rates(evening_history(last))
    now = local_ns(last + dt.timedelta(days=1), 1)
    computed = compute_flag_set(store, user="alice", now_ns=now, rules=RULES, computed_by="test", tz=NEW_YORK)
    [flag] = computed.flags
    assert flag.kind is FlagKind.PERSISTENT
    assert (flag.first_day, flag.last_day) == (DAY0, last)
    assert flag.days == tuple(days(21))
    assert "from 2026-10-01 to 2026-10-21" in flag.text
    shown = flags_for_display(store, user="alice", rules=RULES, now_ns=now, tz=NEW_YORK)
    assert shown.flags == computed.flags


def test_elevated_and_stale_times_are_local_with_the_zone_abbreviation() -> None:
    # Baseline over the autumn DST change, the hot afternoon after it: Eastern Standard Time.
    first = dt.date(2026, 10, 25)
    today = first + dt.timedelta(days=14)
    rates = []
    for i in range(14):
        day = first + dt.timedelta(days=i)
        rates += [r for h in range(8, 20) for r in hour_rates("calf_left", local_ns(day, h), 6)]
    rates += [r for h in range(12, 15) for r in hour_rates("calf_left", local_ns(today, h), 30)]
    now = local_ns(today, 21)
    flags = evaluate(rates, user="alice", now_ns=now, rules=RULES, tz=NEW_YORK)
    [elevated] = [f for f in flags if f.kind is FlagKind.ELEVATED]
    assert elevated.numbers["longest_hours"] == 3
    assert elevated.days == (today,)
    assert "longest 3 h from 2026-11-08 12:00 EST" in elevated.summary

    summer_noon = local_ns(DAY0, 12)
    frames: dict[str, int | None] = {"polar1": summer_noon - 20 * MINUTE}
    [stale] = evaluate([], user="alice", now_ns=summer_noon, rules=RULES, last_frame_ns=frames, tz=NEW_YORK)
    assert "last frame 2026-10-01 11:40 EDT" in stale.summary


def test_hours_are_local_clock_hours_in_a_half_hour_zone() -> None:
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")  # UTC+05:30
    utc_hour = day_start_ns(DAY0) + 9 * HOUR  # 14:30-15:30 in Kolkata
    history = histories(hour_rates("calf_left", utc_hour, 60), kolkata)["calf_left"]
    assert list(history.hours) == [local_ns(DAY0, 14, tz=kolkata), local_ns(DAY0, 15, tz=kolkata)]
    assert [t.rest_s for t in history.hours.values()] == [1800.0, 1800.0]
