"""Shared page furniture and the Overview page.

The dashboard is a Streamlit multipage app (``st.navigation`` over the page scripts in
``dashboard/pages/``). The composition root (``twitchwatch/dashboard_entry.py``) opens the store and
the live feed, puts them in a ``Context`` for this session and runs the selected page; each page
script gets the context with ``context()`` and calls its view's ``render``.

Data shaping lives in ``dashboard.data`` (pure, unit-tested); the views only query the store, call
those functions and lay out the results. Headings and captions are fixed strings (the constants
below) because the AppTest and browser tests look for them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from twitchwatch.dashboard import bodymap, data
from twitchwatch.dashboard.livefeed import LiveFeed
from twitchwatch.processing.events import (
    TWITCH_KINDS,
    EventKind,
    MinuteRate,
    Source,
    rerun_free_events,
    rerun_free_rates,
)
from twitchwatch.processing.felt import FeltComparison
from twitchwatch.processing.flags import FlagSet
from twitchwatch.processing.journal import Factor
from twitchwatch.processing.localtime import day_of, zone_name
from twitchwatch.processing.report import ReportData
from twitchwatch.processing.store import EventQuery, EventStore, HourCount, StoreError

TITLE = "twitchwatch"
PAGES_DIR = Path(__file__).resolve().with_name("pages")
CONTEXT_KEY = "twitchwatch_context"
NOTICE = (
    "twitchwatch is not a medical device and does not diagnose anything. "
    "If twitching is persistent, spreading or comes with weakness, see a doctor."
)
EMPTY_MESSAGE = (
    "No data yet. Run `make demo` (or `twitchwatch demo`) to watch simulated twitches flow through "
    "the whole pipeline, or start the worker with `twitchwatch process` and feed it with "
    "`twitchwatch simulate --muscle calf_left --duration 10m` or a real sensor. "
    "This page looks for data every few seconds and shows it as soon as it arrives."
)
HEADING_FREQUENCY = "Twitch frequency by muscle"
HEADING_TIMELINE = "Timeline"
HEADING_HOURLY = "Twitches per hour over time"
HEADING_EVENTS = "Individual events"
HEADING_BODY_MAP = "Body map"
HEADING_HEATMAP = "Twitches by hour of day"
HEADING_FLAGS = "Persistent-activity flags"
NO_FLAGS = "No persistent-activity flags are raised."
FLAGS_NOTE = (
    "Flags compare you with your own history; they are a reason to look closer or talk to a doctor, "
    "not a diagnosis."
)
SUSTAINED_NOTE = (
    "Sustained activity (longer contractions, e.g. voluntary movement) is shown apart and not counted as "
    "twitching; neither are twitch-like events found while the muscle contracted or the limb moved "
    "(during movement: listed, with why, among the individual events)."
)

LIVE_REFRESH_S = 2.0
RANGE_REFRESH_S = 10.0
EMPTY_POLL_S = 5.0
MAX_SCATTER_EVENTS = 5000


@dataclass(frozen=True)
class Context:
    """What every page works with, set by the composition root on each run."""

    store: EventStore
    user: str
    # Started on first use by the Live page only, so the other pages never touch the broker.
    feed: Callable[[], LiveFeed]
    # The current flags exactly as ``twitchwatch flags`` gets them (the worker's stored set while it
    # is fresh, else computed now), with the configured thresholds and devices.
    flags: Callable[[], FlagSet]
    # The doctor-visit report of [since_ns, until_ns), built as ``twitchwatch report`` builds it.
    report: Callable[[int, int], ReportData]
    # How long after each kind of journal entry counts as "after" it (TWITCHWATCH_JOURNAL_WINDOWS_H).
    journal_windows_ns: Mapping[Factor, int]
    # The zone of every day, hour of day and clock time shown (TWITCHWATCH_TIMEZONE), the same the
    # flags and the report count in.
    tz: dt.tzinfo


def set_context(ctx: Context) -> None:
    st.session_state[CONTEXT_KEY] = ctx


def context() -> Context | None:
    """The session's context, or None (after an error was shown) when the page was started without
    the composition root, e.g. ``streamlit run dashboard/pages/live.py``."""
    ctx = st.session_state.get(CONTEXT_KEY)
    if isinstance(ctx, Context):
        return ctx
    st.error("Start the dashboard with `twitchwatch dashboard`: this page needs its store and settings.")
    return None


def page_header(title: str) -> None:
    """Every page starts with its title and the not-a-medical-device notice."""
    st.title(title)
    st.warning(NOTICE, icon="⚕️")


# Page scripts, in menu order; the first is the default page. No icons: Streamlit fetches a page's
# Material icon from fonts.gstatic.com for the favicon, and the dashboard makes no outside requests.
PAGE_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("overview.py", "Overview"),
    ("live.py", "Live"),
    ("history.py", "History"),
    ("journal.py", "Journal"),
    ("report.py", "Report"),
    ("analyse.py", "Analyse"),
)


def pages() -> list[st.Page]:
    return [
        st.Page(PAGES_DIR / script, title=title, default=i == 0)
        for i, (script, title) in enumerate(PAGE_SCRIPTS)
    ]


@dataclass(frozen=True)
class Controls:
    range_label: str
    time_range: data.TimeRange
    source_label: str
    source: Source | None


@dataclass(frozen=True)
class RangeData:
    """Everything the range-dependent sections need, queried once per run."""

    query: EventQuery
    twitch_counts: list[HourCount]
    sustained_counts: list[HourCount]
    rates: list[MinuteRate]
    movement_counts: list[HourCount]
    offset_ns: int  # the hour grid of the counts (the zone's clock hours)


def render_overview(ctx: Context) -> None:
    page_header("Overview")
    tz = ctx.tz
    controls = sidebar_controls(time.time_ns(), tz)
    try:
        muscles = ctx.store.muscles(ctx.user)
    except StoreError as exc:
        st.error(f"Cannot read the event store: {exc}")
        return
    if not muscles:
        wait_for_data(ctx.store, ctx.user)
        return
    range_sections(ctx.store, ctx.user, controls, tz)
    flags_section(ctx, tz)


@st.fragment(run_every=RANGE_REFRESH_S)
def range_sections(store: EventStore, user: str, controls: Controls, tz: dt.tzinfo) -> None:
    """Frequency and timeline, rerun on their own so "Last 24 h" keeps meaning the last 24 hours and a
    muscle's first twitches show up without a reload."""
    controls = anchored_to_now(controls, time.time_ns())
    try:
        range_data = load_range(store, user, controls, tz)
    except StoreError as exc:
        st.error(f"Cannot read the event store: {exc}")
        return
    table = frequency_section(range_data, controls, tz)
    if table is not None:
        body_map_section(table)
        heatmap_section(range_data, tz)
    timeline_section(store, range_data, controls, tz)


def anchored_to_now(controls: Controls, now_ns: int) -> Controls:
    if controls.range_label == data.CUSTOM_RANGE:
        return controls  # chosen dates stay as chosen
    return dataclasses.replace(controls, time_range=data.preset_range(controls.range_label, now_ns))


# ---- controls ----------------------------------------------------------------------------------------
def sidebar_controls(now_ns: int, tz: dt.tzinfo) -> Controls:
    st.sidebar.header("Show")
    label = str(
        st.sidebar.radio(
            "Time range", data.RANGE_CHOICES, index=data.RANGE_CHOICES.index("Last 24 h"), key="range"
        )
    )
    if label == data.CUSTOM_RANGE:
        today = day_of(now_ns, tz)
        picked = st.sidebar.date_input(
            "Dates", value=(today - dt.timedelta(days=6), today), max_value=today, key="dates"
        )
        first, last = date_pair(picked, today)
        time_range = data.dates_range(first, last, tz, now_ns)
    else:
        time_range = data.preset_range(label, now_ns)
    source_label = str(
        st.sidebar.radio(
            "Source",
            tuple(data.SOURCE_CHOICES),
            key="source",
            horizontal=True,
            help="live: recorded as it happened; replay: recordings fed through the worker again",
        )
    )
    return Controls(label, time_range, source_label, data.SOURCE_CHOICES[source_label])


def date_pair(picked: object, today: dt.date) -> tuple[dt.date, dt.date]:
    """``st.date_input`` with a range gives a 2-tuple, but a 1-tuple while the second date is being
    picked (and the app reruns then): treat that as a single day rather than failing."""
    if isinstance(picked, dt.date):
        return picked, picked
    if isinstance(picked, Sequence):
        days = [d for d in picked if isinstance(d, dt.date)]
        if days:
            return days[0], days[-1]
    return today, today


def describe_range(controls: Controls, tz: dt.tzinfo) -> str:
    tr = controls.time_range
    since = data.format_time(tr.since_ns, tz, with_date=True)
    until = data.format_time(tr.until_ns, tz, with_date=True)
    return f"{controls.range_label}: {since} to {until} ({zone_name(tz)}) · source: {controls.source_label}"


# ---- data ---------------------------------------------------------------------------------------------
def load_range(store: EventStore, user: str, controls: Controls, tz: dt.tzinfo) -> RangeData:
    tr = controls.time_range
    query = EventQuery(tr.since_ns, tr.until_ns, user=user, source=controls.source)
    rates = store.rates(query)
    offset = tr.hour_offset_ns(tz)  # the zone's clock hours, also where they start at :30 or :45 UTC

    def counts(kinds: tuple[EventKind, ...]) -> list[HourCount]:
        # Counting in the store (per hour) instead of loading every event keeps 30-day ranges cheap.
        if controls.source is not None:
            return store.hourly_twitch_counts(dataclasses.replace(query, kinds=kinds), offset)
        live, replay = (
            store.hourly_twitch_counts(dataclasses.replace(query, kinds=kinds, source=source), offset)
            for source in ("live", "replay")
        )
        # "all": a replay of live hours counts once
        return data.rerun_free_counts(live, replay, rates, offset)

    return RangeData(
        query=query,
        twitch_counts=counts(TWITCH_KINDS),
        sustained_counts=counts((EventKind.SUSTAINED,)),
        rates=rerun_free_rates(rates),
        movement_counts=counts((EventKind.DURING_MOVEMENT,)),
        offset_ns=offset,
    )


# ---- sections -----------------------------------------------------------------------------------------
def wait_for_data(store: EventStore, user: str) -> None:
    st.info(EMPTY_MESSAGE)
    _poll_for_first_data(store, user)


@st.fragment(run_every=EMPTY_POLL_S)
def _poll_for_first_data(store: EventStore, user: str) -> None:
    # Rerun the whole page once data shows up, so `make demo` users need not reload by hand.
    try:
        if store.muscles(user):
            st.rerun(scope="app")
    except StoreError:
        pass  # the full run already reported how the store failed; keep polling


def frequency_section(range_data: RangeData, controls: Controls, tz: dt.tzinfo) -> pd.DataFrame | None:
    st.header(HEADING_FREQUENCY)
    st.caption(describe_range(controls, tz))
    table = data.frequency_table(
        range_data.twitch_counts,
        range_data.sustained_counts,
        range_data.rates,
        controls.time_range.hours,
        range_data.movement_counts,
        range_data.offset_ns,
    )
    if table.empty:
        st.info(
            f"Nothing recorded in this range (source: {controls.source_label}). "
            "Pick a longer time range or another source in the sidebar."
        )
        return None
    st.altair_chart(frequency_chart(table), width="stretch")
    st.table(data.frequency_display(table), hide_index=True)
    st.caption(data.basis_caption(table))
    short = data.short_monitoring_caption(table)
    if short:
        st.caption(short)
    st.caption(SUSTAINED_NOTE)
    return table


def body_map_section(table: pd.DataFrame) -> None:
    st.header(HEADING_BODY_MAP)
    show_body_map(
        {str(m): float(r) for m, r in zip(table[data.COL_MUSCLE], table[data.COL_PER_HOUR], strict=True)}
    )


def show_body_map(rates: Mapping[str, float | None]) -> None:
    """The figure with its numbers beside it; ``rates`` are twitches per hour at rest by muscle (None or
    NaN: no time at rest, so no rate to colour by — named below the figure)."""
    known = {m: r for m, r in rates.items() if r is not None and not math.isnan(r)}
    unknown = sorted(set(rates) - set(known))
    figure = bodymap.body_map(known, "twitches per hour at rest")
    left, right = st.columns([3, 2])
    with left:
        # As an <img> data URI: Streamlit's HTML sanitiser drops inline <svg> elements.
        st.html(bodymap.as_img(figure))
    with right:
        st.table(data.body_map_display(known, figure.placed, figure.unplaced), hide_index=True)
        st.caption(
            "Colour = twitches per hour at rest in the selected range (darker is more); the figure's plain "
            "areas have no sensor or no data. The front view faces you, so the person's right is on "
            "your left."
        )
        if unknown:
            st.caption(f"Not coloured (no time at rest in this range): {', '.join(unknown)}.")


def heatmap_section(range_data: RangeData, tz: dt.tzinfo) -> None:
    st.header(HEADING_HEATMAP)
    muscles = sorted({c.muscle for c in range_data.twitch_counts})
    if not muscles:
        st.info("No twitches in this range.")
        return
    frame = data.hour_of_day_frame(range_data.twitch_counts, tz, muscles)
    st.altair_chart(heatmap_chart(frame), width="stretch")
    st.caption(
        f"Twitches per muscle in each hour of the day (local time, {zone_name(tz)}), summed over the "
        "selected range. Hours the sensor was not worn look the same as quiet hours here."
    )


def heatmap_chart(frame: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (  # altair's fluent methods are untyped (Any); this keeps the return typed
        alt.Chart(frame, height=alt.Step(28))
        .mark_rect()
        .encode(
            x=alt.X(f"{data.COL_HOUR_OF_DAY}:O", title="hour of day", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{data.COL_MUSCLE}:N", title="muscle"),
            color=alt.Color(
                f"{data.COL_TWITCHES}:Q", title="twitches", scale=alt.Scale(scheme="yelloworangered")
            ),
            tooltip=[
                alt.Tooltip(f"{data.COL_MUSCLE}:N"),
                alt.Tooltip(f"{data.COL_HOUR_OF_DAY}:O"),
                alt.Tooltip(f"{data.COL_TWITCHES}:Q"),
            ],
        )
    )
    return chart


def flags_section(ctx: Context, tz: dt.tzinfo) -> None:
    st.header(HEADING_FLAGS)
    try:
        flag_set = ctx.flags()
    except StoreError as exc:
        st.error(f"Cannot read or compute the flags: {exc}")
        return
    show_flags(flag_set, tz)


HEADING_FELT = "Felt twitches and detections"
NO_FELT = (
    "No twitch was marked as felt here. Mark one with the Live page's “I felt a twitch” button, "
    "`twitchwatch felt`, or a phone shortcut or Home Assistant button publishing to twitchwatch/<user>/felt."
)


def show_felt(comparisons: Sequence[FeltComparison]) -> None:
    """Felt marks ("I felt that") against the detections: the report's period, or the History page's
    days."""
    st.header(HEADING_FELT)
    if not comparisons or not comparisons[0].felt:
        st.caption(NO_FELT)
        return
    st.table(data.felt_display(comparisons), hide_index=True)
    st.caption(data.felt_caption(comparisons))


def show_flags(flag_set: FlagSet, tz: dt.tzinfo) -> None:
    computed = data.format_time(flag_set.computed_at_ns, tz, with_date=True)
    if not flag_set.flags:
        st.success(NO_FLAGS)
    else:
        st.table(data.flags_display(flag_set.flags), hide_index=True)
    st.caption(f"Computed {computed} by the {flag_set.computed_by}. {FLAGS_NOTE}")


def frequency_chart(table: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (  # altair's fluent methods are untyped (Any); this keeps the return typed
        alt.Chart(table, height=260)
        .mark_bar()
        .encode(
            x=alt.X(f"{data.COL_MUSCLE}:N", title="muscle", sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{data.COL_PER_HOUR}:Q", title="twitches per hour at rest"),
            tooltip=[
                alt.Tooltip(f"{data.COL_MUSCLE}:N"),
                alt.Tooltip(f"{data.COL_TWITCHES}:Q"),
                alt.Tooltip(f"{data.COL_PER_HOUR}:Q", format=".2f"),
                alt.Tooltip(f"{data.COL_REST_H}:Q", format=".2f"),
                alt.Tooltip(f"{data.COL_WORN_H}:Q", format=".2f"),
                alt.Tooltip(f"{data.COL_BASIS}:N"),
            ],
        )
    )
    return chart


def timeline_section(store: EventStore, range_data: RangeData, controls: Controls, tz: dt.tzinfo) -> None:
    st.header(HEADING_TIMELINE)
    st.subheader(HEADING_HOURLY)
    muscles = sorted({c.muscle for c in range_data.twitch_counts})
    if not muscles:
        st.info("No twitches in this range.")
    else:
        frame = data.timeline_frame(range_data.twitch_counts, controls.time_range, muscles, tz)
        st.altair_chart(hourly_chart(frame, controls.time_range.hours), width="stretch")
        st.caption("Twitches (fasciculations and myoclonic jerks) per clock hour, stacked by muscle.")
    st.subheader(HEADING_EVENTS)
    scatter_section(store, range_data.query, tz, range_data.rates)


def time_axis(range_hours: float) -> alt.Axis:
    """Ticks on whole hours/days suited to the range. Vega's automatic ticks fall on half hours
    too, which the hour-binned bars then label twice with the same hour. (Only plain interval names
    here: the Vega in Streamlit's frontend fails on {"interval": ..., "step": ...} tick counts.)"""
    if range_hours <= 12:
        return alt.Axis(title="time", tickCount="hour", format="%H:%M")
    if range_hours <= 48:
        # Label overlap removal thins the 24-48 hourly labels to what fits.
        return alt.Axis(title="time", tickCount="hour", format="%a %H:%M", labelOverlap=True)
    if range_hours <= 24 * 10:
        return alt.Axis(title="time", tickCount="day", format="%a %d %b")
    return alt.Axis(title="time", tickCount="week", format="%d %b")


def hourly_chart(frame: pd.DataFrame, range_hours: float) -> alt.Chart:
    # Stacked bars, one per clock hour: a count belongs to the whole hour, which a line between
    # hourly points would misstate. The hours timeUnit makes each bar as wide as its hour.
    chart: alt.Chart = (  # altair's fluent methods are untyped (Any); this keeps the return typed
        alt.Chart(frame, height=300)
        .mark_bar()
        .encode(
            # UTC time units: the frame holds the configured zone's wall clock (data.wall_clock).
            x=alt.X("utcyearmonthdatehours(hour):T", axis=time_axis(range_hours)),
            y=alt.Y(f"sum({data.COL_TWITCHES}):Q", title="twitches in the hour"),
            color=alt.Color(f"{data.COL_MUSCLE}:N", title="muscle"),
            tooltip=[
                alt.Tooltip("utcyearmonthdatehours(hour):T", title="hour", format="%Y-%m-%d %H:00"),
                alt.Tooltip(f"{data.COL_MUSCLE}:N"),
                alt.Tooltip(f"sum({data.COL_TWITCHES}):Q", title="twitches"),
            ],
        )
    )
    return chart


def scatter_section(
    store: EventStore, query: EventQuery, tz: dt.tzinfo, rates: Sequence[MinuteRate] = ()
) -> None:
    """The range's events one by one; a replay of live minutes shown once (``rerun_free_events``, with the
    range's minute ``rates``), as every count on the page is."""
    kinds = (*TWITCH_KINDS, EventKind.SUSTAINED, EventKind.DURING_MOVEMENT)
    try:
        # One more than the cap tells "too many" apart from "exactly the cap" without counting them all.
        events = store.events(dataclasses.replace(query, kinds=kinds, limit=MAX_SCATTER_EVENTS + 1))
    except StoreError as exc:
        st.error(f"Cannot read the event store: {exc}")
        return
    if len(events) <= MAX_SCATTER_EVENTS:
        events = rerun_free_events(events, rates)
    if not events:
        st.info("No events in this range.")
    elif len(events) > MAX_SCATTER_EVENTS:
        st.caption(
            f"More than {MAX_SCATTER_EVENTS} events in this range: "
            "pick a shorter time range to see them one by one."
        )
    else:
        st.altair_chart(events_chart(data.events_frame(events, tz)), width="stretch")
        st.caption(
            f"{len(events)} events. Dot size is the event's peak amplitude in its sensor's unit "
            "(not comparable across sensor types); during_movement events are not counted (their tooltip "
            "says why)."
        )


def events_chart(frame: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (  # altair's fluent methods are untyped (Any); this keeps the return typed
        alt.Chart(frame)
        .mark_circle(opacity=0.6)
        .encode(
            x=alt.X("time:T", title="time", scale=alt.Scale(type="utc")),  # wall clock: data.wall_clock
            y=alt.Y(f"{data.COL_MUSCLE}:N", title="muscle"),
            size=alt.Size("amplitude:Q", title="amplitude", legend=alt.Legend(format=".3g")),
            color=alt.Color("kind:N", title="kind"),
            tooltip=[
                alt.Tooltip(
                    "utcyearmonthdatehoursminutesseconds(time):T", title="time", format="%Y-%m-%d %H:%M:%S"
                ),
                alt.Tooltip(f"{data.COL_MUSCLE}:N"),
                alt.Tooltip("kind:N"),
                alt.Tooltip("amplitude:Q", format=".3g"),
                alt.Tooltip("unit:N"),
                alt.Tooltip("duration_ms:Q", format=".0f"),
                alt.Tooltip("reason:N", title="why not counted"),
            ],
        )
    )
    return chart
