"""The doctor-visit report: ReportData from both real stores, a PDF parsed back, the CSV against the
store's own counts, and the building blocks on known inputs."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import zoneinfo
from collections import Counter
from pathlib import Path

import pypdf
import pytest

from twitchwatch.processing.events import TWITCH_KINDS, EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.flags import FlagKind
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.localtime import day_end_ns, day_of, day_start_ns, to_ns
from twitchwatch.processing.report import (
    NOTICE,
    Episode,
    Gap,
    ReportData,
    build_report,
    episodes_of,
    gaps_of,
)
from twitchwatch.processing.report_render import body_position, render_csv, render_pdf
from twitchwatch.processing.store import EventQuery, EventStore, QueryError
from twitchwatch.processing.store.sqlite import SQLiteStore

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
DAY0 = dt.date(2026, 10, 1)
START = day_start_ns(DAY0)


def twitch(muscle: str, t: int, kind: EventKind = EventKind.FASCICULATION, ms: int = 80) -> TwitchEvent:
    return TwitchEvent("alice", muscle, "dev1", "acc", 0, kind, t, t + ms * 1_000_000, 0.1, "g", 0.9)


def history() -> tuple[list[TwitchEvent], list[MinuteRate]]:
    """16 days worn 08-20 UTC. calf_left: at 10:00 an episode of 6 twitches 1 min apart, and 3 lone
    twitches at 15:00, 17:00, 19:00, every day; thigh_right from day 10 only, one twitch at 09:30;
    forearm_left worn, never twitching; one sustained event and one artifact on calf_left; and one
    calf_left twitch 40 days before the period (first recorded)."""
    events = []
    for i in range(16):
        day = START + i * DAY
        events += [twitch("calf_left", day + 10 * HOUR + k * MINUTE) for k in range(6)]
        events += [twitch("calf_left", day + h * HOUR, ms=150) for h in (15, 17, 19)]
        if i >= 10:
            events.append(twitch("thigh_right", day + 9 * HOUR + 30 * MINUTE))
    events.append(twitch("calf_left", START + 12 * HOUR, EventKind.SUSTAINED, ms=4000))
    events.append(twitch("calf_left", START + 13 * HOUR, EventKind.ARTIFACT))
    per_minute = Counter((e.muscle, e.start_ns - e.start_ns % MINUTE) for e in events if e.kind.is_twitch)
    rates = [
        MinuteRate("alice", muscle, "dev1", "live", t, per_minute[(muscle, t)], 60.0, 60.0)
        for i in range(16)
        for t in range(START + i * DAY + 8 * HOUR, START + i * DAY + 20 * HOUR, MINUTE)
        for muscle in ("calf_left", "thigh_right", "forearm_left")
    ]
    events.append(twitch("calf_left", START - 40 * DAY + 12 * HOUR))
    return events, rates


def seed(store: EventStore) -> None:
    events, rates = history()
    store.write_events(events)
    store.write_rates(rates)
    store.add_journal_entry(JournalEntry("alice", START + 2 * DAY + 8 * HOUR, Factor.CAFFEINE, "3 espressos"))
    store.add_journal_entry(
        JournalEntry("alice", START + 11 * DAY + 9 * HOUR, Factor.SYMPTOM, "", "thigh cramp", "thigh_right")
    )


def test_report_data_from_the_store(store: EventStore) -> None:
    seed(store)
    steps: list[str] = []
    report = build_report(store, START, START + 16 * DAY, "alice", progress=steps.append)
    assert steps[0] == "reading events"
    assert [m.muscle for m in report.muscles] == ["calf_left", "forearm_left", "thigh_right"]
    calf, forearm, thigh = report.muscles
    assert calf.first_recorded == DAY0 - dt.timedelta(days=40)
    assert thigh.first_recorded == DAY0 + dt.timedelta(days=10)
    assert forearm.first_recorded is None
    assert (calf.twitches, thigh.twitches, forearm.twitches) == (16 * 9, 6, 0)
    assert calf.sustained == 1
    assert calf.monitored_h == 16 * 12
    assert calf.per_hour == pytest.approx(9 / 12)
    assert (calf.twitching_days, calf.monitored_days) == (16, 16)
    assert calf.episodes == 16
    assert calf.longest_episode_min == pytest.approx(5 + 0.08 / 60)
    assert calf.median_duration_ms == 80.0
    assert calf.p90_duration_ms == 150.0
    assert thigh.episodes == 0
    assert report.hour_of_day["calf_left"][10] == 16 * 6
    assert report.hour_of_day["thigh_right"][9] == 6
    assert report.daily_twitches["thigh_right"] == (0,) * 10 + (1,) * 6
    assert report.coverage.monitored_h == 16 * 12
    assert report.coverage.days_with_data == 16
    assert len(report.coverage.gaps) == 15  # every night
    assert report.coverage.gaps[0] == Gap(START + 20 * HOUR, START + DAY + 8 * HOUR)
    assert [e.factor for e in report.journal] == [Factor.CAFFEINE, Factor.SYMPTOM]
    assert [e.note for e in report.symptoms] == ["thigh cramp"]
    assert [(f.kind, f.muscle) for f in report.flags.flags] == [(FlagKind.PERSISTENT, "calf_left")]
    assert report.flags.computed_by == "report"


def test_a_replayed_live_session_is_counted_once(store: EventStore) -> None:
    seed(store)
    events, rates = history()
    first_day = [e for e in events if START <= e.start_ns < START + DAY]
    store.write_events([dataclasses.replace(e, source="replay", session_id="rerun") for e in first_day])
    store.write_rates(
        [dataclasses.replace(r, source="replay") for r in rates if START <= r.minute_ns < START + DAY]
    )
    report = build_report(store, START, START + 16 * DAY, "alice")
    calf = report.muscles[0]
    assert (calf.muscle, calf.twitches, calf.monitored_h) == ("calf_left", 16 * 9, 16 * 12)
    assert report.daily_twitches["calf_left"][0] == 9
    assert report.hour_of_day["calf_left"][10] == 16 * 6


def test_the_body_map_shows_a_muscle_never_at_rest_hollow_not_as_no_twitching(store: EventStore) -> None:
    """calf_left: two hours at rest, no twitch (a true 0); calf_right: two hours worn, never at rest (no
    rate). Both were drawn in the colour of 0 a hour: a doctor would read the moving calf as quiet."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    from twitchwatch.processing.report_render import _body_map

    def minute(muscle: str, i: int, rest: float) -> MinuteRate:
        return MinuteRate("alice", muscle, "dev1", "live", START + i * MINUTE, 0, 60.0, rest)

    store.write_rates([minute("calf_left", i, 60.0) for i in range(120)])
    store.write_rates([minute("calf_right", i, 0.0) for i in range(120)])
    report = build_report(store, START, START + 2 * HOUR, "alice")
    assert {m.muscle: m.per_hour for m in report.muscles} == {"calf_left": 0.0, "calf_right": None}
    fig = Figure()
    ax = fig.add_axes((0, 0, 1, 1))
    _body_map(ax, report)
    dots = [d for d in ax.patches if isinstance(d, Circle) and d.get_radius() == 0.035]
    assert sorted(d.get_fill() for d in dots) == [False, True]  # the moving calf hollow, the quiet one filled


def test_pdf_is_valid_and_holds_the_key_text(store: EventStore) -> None:
    seed(store)
    report = build_report(store, START, START + 16 * DAY, "alice")
    buffer = io.BytesIO()
    render_pdf(report, buffer)
    reader = pypdf.PdfReader(io.BytesIO(buffer.getvalue()))
    assert len(reader.pages) == 4
    first = reader.pages[0].extract_text()
    for needle in ("calf_left", "thigh_right", "forearm_left", "2026-08-22", "2026-10-11", "persistent"):
        assert needle in first, needle
    everything = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    assert " ".join(NOTICE.split()) in everything
    assert "thigh cramp" in everything
    assert "twitching on ≥ 5 of every 7 consecutive days" in everything


def test_csv_numbers_equal_the_stores_counts(store: EventStore, tmp_path: Path) -> None:
    seed(store)
    report = build_report(store, START, START + 16 * DAY, "alice")
    out = io.StringIO()
    render_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 3 * 16
    counted = Counter(
        (day_of(e.start_ns).isoformat(), e.muscle)
        for e in store.events(EventQuery(START, START + 16 * DAY, "alice", kinds=TWITCH_KINDS))
    )
    monitored = Counter[tuple[str, str]]()
    for r in store.rates(EventQuery(START, START + 16 * DAY, "alice")):
        monitored[(day_of(r.minute_ns).isoformat(), r.muscle)] += int(r.monitored_s)
    for row in rows:
        key = (row["date"], row["muscle"])
        assert int(row["twitches_at_rest"]) == counted.get(key, 0), key
        assert float(row["hours_worn"]) == pytest.approx(monitored[key] / 3600)
        assert float(row["hours_at_rest"]) == pytest.approx(monitored[key] / 3600)  # seeded all at rest
        assert (row["during_movement"], row["twitches_before_rest_tracking"]) == ("0", "0")
    assert sum(int(r["twitches_at_rest"]) for r in rows) == sum(counted.values())


def test_an_empty_period_still_renders(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "empty.db") as store:
        report = build_report(store, START, START + 3 * DAY, "alice")
        assert report.muscles == ()
        assert report.coverage.monitored_h == 0
        buffer = io.BytesIO()
        render_pdf(report, buffer)
        reader = pypdf.PdfReader(io.BytesIO(buffer.getvalue()))
        assert "nothing recorded" in reader.pages[0].extract_text()
        with pytest.raises(QueryError):
            build_report(store, START, START, "alice")


def test_episodes_are_clusters_of_three_or_more_within_five_minutes() -> None:
    t = START
    events = [
        twitch("calf", t),
        twitch("calf", t + 4 * MINUTE),
        twitch("calf", t + 8 * MINUTE),  # 3 within 5 min of each previous: an episode of 8 min
        twitch("calf", t + 20 * MINUTE),
        twitch("calf", t + 21 * MINUTE),  # only 2: not an episode
        twitch("calf", t + 22 * MINUTE, EventKind.SUSTAINED),  # not a twitch: does not extend it
        twitch("arm", t + MINUTE),
        twitch("arm", t + 2 * MINUTE),
        twitch("arm", t + 3 * MINUTE, ms=500),
    ]
    events.sort(key=lambda e: e.start_ns)
    assert episodes_of(events) == [
        Episode("calf", t, t + 8 * MINUTE + 80_000_000, 3),
        Episode("arm", t + MINUTE, t + 3 * MINUTE + 500_000_000, 3),
    ]


def test_gaps_between_monitored_minutes() -> None:
    minutes = [START, START + MINUTE, START + 2 * HOUR, START + 2 * HOUR + 30 * MINUTE]
    assert gaps_of(minutes) == [Gap(START + 2 * MINUTE, START + 2 * HOUR)]
    assert gaps_of(minutes, min_gap_s=1700) == [
        Gap(START + 2 * MINUTE, START + 2 * HOUR),
        Gap(START + 2 * HOUR + MINUTE, START + 2 * HOUR + 30 * MINUTE),
    ]
    assert gaps_of([]) == []


@pytest.mark.parametrize(
    ("muscle", "expected"),
    [
        ("calf_left", ("back", -0.08, 0.2)),  # from behind, the person's left is on the viewer's left
        ("calf_right", ("back", 0.08, 0.2)),
        ("forearm_flexor_left", ("front", 0.24, 0.6)),  # facing us, their left is on our right
        ("quadriceps_r", ("front", -0.08, 0.38)),
        ("neck", ("back", 0.0, 0.86)),
        ("polar1.acc.ch0", None),
    ],
)
def test_body_map_positions(muscle: str, expected: tuple[str, float, float] | None) -> None:
    assert body_position(muscle) == expected


# ---- local days and hours of day (TWITCHWATCH_TIMEZONE) -------------------------------------------

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
AUTUMN = (dt.date(2026, 10, 30), dt.date(2026, 11, 2))  # clocks go back on 1 November


def local_ns(day: dt.date, hour: int, minute: int = 0) -> int:
    return to_ns(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK))


def seed_autumn(store: EventStore) -> None:
    """Worn every minute of four New York days around the DST change; a twitch at 09:15 local each
    day and one more at 23:30 on 31 October (which is 1 November in UTC)."""
    first, last = AUTUMN
    days = [first + dt.timedelta(days=i) for i in range(4)]
    events = [twitch("calf_left", local_ns(d, 9, 15)) for d in days]
    events.append(twitch("calf_left", local_ns(dt.date(2026, 10, 31), 23, 30)))
    per_minute = Counter(e.start_ns - e.start_ns % MINUTE for e in events)
    store.write_events(events)
    store.write_rates(
        [
            MinuteRate("alice", "calf_left", "dev1", "live", t, per_minute[t], 60.0, 60.0)
            for t in range(day_start_ns(first, NEW_YORK), day_end_ns(last, NEW_YORK), MINUTE)
        ]
    )


def autumn_report(store: EventStore) -> ReportData:
    first, last = AUTUMN
    return build_report(
        store, day_start_ns(first, NEW_YORK), day_end_ns(last, NEW_YORK), "alice", tz=NEW_YORK
    )


def test_report_days_and_hours_of_day_are_local_across_a_dst_change(store: EventStore) -> None:
    seed_autumn(store)
    report = autumn_report(store)
    assert report.days == tuple(AUTUMN[0] + dt.timedelta(days=i) for i in range(4))
    assert report.coverage.daily_monitored_h == (24.0, 24.0, 25.0, 24.0)
    assert report.daily_monitored_h["calf_left"] == (24.0, 24.0, 25.0, 24.0)
    assert report.daily_twitches["calf_left"] == (1, 2, 1, 1)  # 23:30 stays on 31 October
    hours = report.hour_of_day["calf_left"]
    assert (hours[9], hours[23], sum(hours)) == (4, 1, 5)
    assert report.coverage.days_with_data == report.coverage.days_in_period == 4
    assert report.summary("calf_left").first_recorded == AUTUMN[0]


def test_report_files_say_local_dates_and_the_zone(store: EventStore) -> None:
    seed_autumn(store)
    report = autumn_report(store)
    out = io.StringIO()
    render_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["date"], r["twitches_at_rest"], r["hours_worn"]) for r in rows] == [
        ("2026-10-30", "1", "24.000"),
        ("2026-10-31", "2", "24.000"),
        ("2026-11-01", "1", "25.000"),
        ("2026-11-02", "1", "24.000"),
    ]
    assert {r["timezone"] for r in rows} == {"America/New_York"}
    buffer = io.BytesIO()
    render_pdf(report, buffer)
    pages = [" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(buffer.getvalue())).pages]
    assert "2026-10-30 00:00 EDT – 2026-11-03 00:00 EST (America/New_York)" in pages[0]
    assert "hour of day (America/New_York)" in pages[1]
    assert "UTC" not in " ".join(pages)


def upgraded(store: EventStore) -> None:
    """calf_left: day 1 recorded before rest tracking (an hour worn, 5 twitches, rest unknown); day 2 with
    it (an hour worn, half of each minute at rest, 6 twitches at rest and 3 twitch-like events during
    movement, not counted)."""
    events, rates = [], []
    for k in range(60):
        t1, t2 = START + 10 * HOUR + k * MINUTE, START + DAY + 10 * HOUR + k * MINUTE
        old = [twitch("calf_left", t1 + 5 * SECOND)] if k < 5 else []
        new = [twitch("calf_left", t2 + 5 * SECOND)] if k < 6 else []
        if 10 <= k < 13:
            moved = twitch("calf_left", t2 + 40 * SECOND, EventKind.DURING_MOVEMENT)
            new.append(dataclasses.replace(moved, reason="fasciculation: movement 12.0 s (dev1/acc)"))
        events += old + new
        rates.append(MinuteRate("alice", "calf_left", "dev1", "live", t1, len(old), 60.0, None))
        rates.append(MinuteRate("alice", "calf_left", "dev1", "live", t2, min(len(new), 1), 60.0, 30.0))
    store.write_events(events)
    store.write_rates(rates)


def test_the_report_counts_at_rest_and_shows_time_before_rest_tracking_apart(store: EventStore) -> None:
    upgraded(store)
    report = build_report(store, START, START + 2 * DAY, "alice")
    [calf] = report.muscles
    assert (calf.twitches, calf.rest_h, calf.monitored_h) == (6, 0.5, 2.0)
    assert calf.per_hour == 12.0  # the 6 at rest over the half hour at rest: neither the old day nor the 3
    assert (calf.untracked_twitches, calf.untracked_worn_h, calf.untracked_per_hour) == (5, 1.0, 5.0)
    assert calf.during_movement == 3
    assert report.total_twitches == 11
    assert report.untracked
    assert (report.coverage.monitored_h, report.coverage.rest_h, report.coverage.untracked_h) == (
        2.0,
        0.5,
        1.0,
    )
    out = io.StringIO()
    render_csv(report, out)
    rows = {r["date"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    day1, day2 = rows[DAY0.isoformat()], rows[(DAY0 + dt.timedelta(days=1)).isoformat()]
    assert (day1["twitches_at_rest"], day1["twitches_per_hour_at_rest"]) == ("0", "")  # not "0 per hour"
    assert (day1["twitches_before_rest_tracking"], day1["hours_worn_before_rest_tracking"]) == ("5", "1.000")
    assert (day2["twitches_at_rest"], day2["hours_at_rest"], day2["twitches_per_hour_at_rest"]) == (
        "6",
        "0.500",
        "12.000",
    )
    assert (day2["hours_worn"], day2["during_movement"]) == ("1.000", "3")
    buffer = io.BytesIO()
    render_pdf(report, buffer)
    pages = [" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(buffer.getvalue())).pages]
    assert "Rates are twitches per hour at rest" in pages[0]
    assert "recorded before rest tracking" in pages[0]
    assert "5 in 1.0 h worn (5.00/h worn)" in pages[0]
    assert (
        "2.0 h worn on 2 of 2 days, 0.5 h of them at rest and 1.0 h recorded before rest tracking" in pages[3]
    )


def test_the_report_compares_felt_twitches_with_detections(store: EventStore) -> None:
    """Day 2 of the upgraded history: twitches at 10:00:05, 10:01:05 … 10:05:05. Marks 3 s after the first
    two (on calf_left), one 30 s after the third (too late to be near), and one at 15:00 with nothing near."""
    upgraded(store)
    day2 = START + DAY + 10 * HOUR
    for t, muscle in (
        (day2 + 8 * SECOND, "calf_left"),
        (day2 + MINUTE + 8 * SECOND, ""),
        (day2 + 2 * MINUTE + 35 * SECOND, "calf_left"),
        (START + DAY + 15 * HOUR, ""),
    ):
        store.add_journal_entry(JournalEntry("alice", t, Factor.FELT, muscle=muscle))
    report = build_report(store, START, START + 2 * DAY, "alice")
    overall, calf = report.felt
    assert (overall.muscle, overall.felt, overall.felt_near) == ("", 4, 2)
    assert (overall.detections, overall.detections_near) == (11, 2)  # every counted twitch of the period
    assert (calf.muscle, calf.felt, calf.felt_near) == ("calf_left", 4, 2)
    assert not [e for e in report.effects if e.factor is Factor.FELT]  # an observation, not a factor
    buffer = io.BytesIO()
    render_pdf(report, buffer)
    last = " ".join(pypdf.PdfReader(io.BytesIO(buffer.getvalue())).pages[3].extract_text().split())
    assert "all muscles: 2 of 4 felt twitch(es) had a detected twitch within 10 s before to 2 s after" in last
    assert "it is not a test of the detector" in last
