"""The History page: twitches, hours at rest and hours worn per muscle per day, the trend of twitches per
hour at rest, the twitch-like events not counted (during movement, with why) and how the twitches the
person marked as felt compare with the detected ones; filtered by dates, source and session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import altair as alt
import pandas as pd
import streamlit as st

from twitchwatch.dashboard import data
from twitchwatch.dashboard.app import Context, date_pair, page_header, show_felt
from twitchwatch.processing.events import TWITCH_KINDS, EventKind, MinuteRate, TwitchEvent, rerun_free_events
from twitchwatch.processing.felt import compare_by_muscle
from twitchwatch.processing.journal import Factor
from twitchwatch.processing.localtime import day_of, zone_name
from twitchwatch.processing.store import EventQuery, StoreError

HEADING_DAILY = "Twitches per day"
HEADING_TRENDS = "Trends"
HEADING_MOVEMENT = "Not counted: during movement"
MAX_MOVEMENT_ROWS = 200
DEFAULT_DAYS = 14
ALL_SESSIONS = "all sessions"
# Loading more events than this takes seconds per rerun; the page asks for a shorter range instead.
MAX_EVENTS = 200_000


def render(ctx: Context) -> None:
    page_header("History")
    tz = ctx.tz
    now_ns = time.time_ns()
    today = day_of(now_ns, tz)
    first, last = date_pair(
        st.sidebar.date_input(
            "Dates",
            value=(today - dt.timedelta(days=DEFAULT_DAYS - 1), today),
            max_value=today,
            key="history_dates",
        ),
        today,
    )
    first, last = min(first, last), max(first, last)
    source_label = str(
        st.sidebar.radio("Source", tuple(data.SOURCE_CHOICES), key="history_source", horizontal=True)
    )
    time_range = data.dates_range(first, last, tz, now_ns)
    source = data.SOURCE_CHOICES[source_label]
    try:
        query = EventQuery(
            time_range.since_ns,
            time_range.until_ns,
            user=ctx.user,
            source=source,
            kinds=(*TWITCH_KINDS, EventKind.DURING_MOVEMENT),
            limit=MAX_EVENTS + 1,  # one more tells "too many" apart from "exactly the cap"
        )
        events = ctx.store.events(query)
        # The minute rates give the hours worn and at rest per day and tell a replay of live minutes, which
        # "all" counts once.
        rates = ctx.store.rates(dataclasses.replace(query, kinds=None, limit=None))
        events = rerun_free_events(events, rates)
        marks = [
            e
            for e in ctx.store.journal_entries(time_range.since_ns, time_range.until_ns, ctx.user)
            if e.factor is Factor.FELT
        ]
    except StoreError as exc:
        st.error(f"Cannot read the event store: {exc}")
        return
    if len(events) > MAX_EVENTS:
        st.warning(
            f"More than {MAX_EVENTS} twitches from {first.isoformat()} to {last.isoformat()}: "
            "pick fewer days in the sidebar."
        )
        return
    session_label = str(
        st.sidebar.selectbox(
            "Session",
            (ALL_SESSIONS, *data.sessions(events)),
            key="history_session",
            help="A session is one run of a sensor or one replayed recording.",
        )
    )
    session = None if session_label == ALL_SESSIONS else session_label
    st.caption(
        f"{first.isoformat()} to {last.isoformat()} ({zone_name(tz)}) · source: {source_label} · "
        f"session: {session_label}"
    )
    if session is None:
        daily_sections(events, first, last, tz, rates)
    else:  # the minute rates carry no session: hours worn would be every session's
        events = data.in_session(events, session)
        daily_sections(events, first, last, tz, None)
    movement_section(events, tz)
    show_felt(compare_by_muscle(marks, events))


def daily_sections(
    events: list[TwitchEvent], first: dt.date, last: dt.date, tz: dt.tzinfo, rates: list[MinuteRate] | None
) -> None:
    """``rates``: the days' minute rates, or None when a session is picked (they cannot be split by one)."""
    st.header(HEADING_DAILY)
    daily = data.daily_counts(events, first, last, tz, rates or ())
    if daily.empty:
        st.info(
            "No twitches on these days with these filters. "
            "Pick other dates, source or session in the sidebar."
        )
        return
    st.altair_chart(daily_chart(daily), width="stretch")
    st.caption(
        "Bars: twitches (fasciculations and myoclonic jerks) per local day. A day's count depends on how "
        "long the muscle was at rest and still (a twitch can only be told apart then): the table gives the "
        "hours at rest and worn (— : not worn, which is no data, not a quiet day; “before rest tracking”: "
        "recorded before the time at rest was known), and the trend below compares rates per hour at rest. "
        "Twitch-like events while the muscle moved are not counted (listed below)."
    )
    st.table(data.daily_table(daily, with_worn=rates is not None), hide_index=True)
    st.header(HEADING_TRENDS)
    if rates is None:
        st.info("The per-hour trend needs the hours worn, which cover all sessions: pick “all sessions”.")
        return
    fitted = data.trends(daily)
    if not fitted:
        st.info(
            f"A trend needs at least two days with ≥ {data.TREND_MIN_HOURS:g} h at rest each: pick a longer "
            "date range, or wear the sensor longer while sitting or lying still."
        )
        return
    days = [d.isoformat() for d in sorted(set(daily[data.COL_DAY]))]
    st.altair_chart(trend_chart(data.trend_frame(daily, fitted), days), width="stretch")
    st.table(data.trend_display(fitted), hide_index=True)
    st.caption(
        f"Twitches per hour at rest on each day with ≥ {data.TREND_MIN_HOURS:g} h at rest (as the rising "
        "flag counts an observed day), with a least-squares line; change per week = its slope × 7. A "
        "description, not a test of significance (the rising flag tests). Days before rest tracking are "
        "not fitted."
    )


def movement_section(events: list[TwitchEvent], tz: dt.tzinfo) -> None:
    st.header(HEADING_MOVEMENT)
    table = data.movement_display(events, tz, MAX_MOVEMENT_ROWS)
    if table.empty:
        st.caption("No twitch-like event was found while a muscle moved or contracted on these days.")
        return
    st.table(table, hide_index=True)
    total = sum(1 for e in events if e.kind is EventKind.DURING_MOVEMENT)
    shown = f"the newest {MAX_MOVEMENT_ROWS} of {total}" if total > MAX_MOVEMENT_ROWS else f"{total}"
    st.caption(
        f"{shown} twitch-like events found while the muscle could not be assessed: a contraction on it, or "
        "movement of its limb. They are kept and shown, never counted as twitches."
    )


def _days_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    # Days as ordinal text: a date sent as a timestamp would be read as UTC midnight and drawn on the
    # previous day west of Greenwich.
    return frame.assign(**{data.COL_DAY: [d.isoformat() for d in frame[data.COL_DAY]]})


def daily_chart(daily: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(_days_as_text(daily), height=300)
        .mark_bar(opacity=0.7)
        .encode(
            x=alt.X(f"{data.COL_DAY}:O", title="day", axis=alt.Axis(labelAngle=-45)),
            y=alt.Y(f"{data.COL_TWITCHES}:Q", title="twitches per day", stack=None),
            xOffset=f"{data.COL_MUSCLE}:N",
            color=alt.Color(f"{data.COL_MUSCLE}:N", title="muscle"),
            tooltip=[
                f"{data.COL_DAY}:O",
                f"{data.COL_MUSCLE}:N",
                f"{data.COL_TWITCHES}:Q",
                alt.Tooltip(f"{data.COL_REST_H}:Q", format=".1f"),
                alt.Tooltip(f"{data.COL_WORN_H}:Q", format=".1f"),
            ],
        )
    )
    return chart


def trend_chart(points: pd.DataFrame, days: list[str]) -> alt.LayerChart:
    """The fitted days' rates and lines on every day of the range, so days apart are drawn apart."""
    x = alt.X(f"{data.COL_DAY}:O", title="day", axis=alt.Axis(labelAngle=-45), scale=alt.Scale(domain=days))
    y = alt.Y(f"{data.COL_RATE_REST}:Q", title="twitches per hour at rest", axis=alt.Axis(format="~g"))
    color = alt.Color(f"{data.COL_MUSCLE}:N", title="muscle")
    frame = _days_as_text(points)
    dots = alt.Chart(frame, height=220).mark_point(filled=True, size=60).encode(x=x, y=y, color=color)
    lines = alt.Chart(frame).mark_line(strokeWidth=2).encode(x=x, y=f"{data.COL_TREND}:Q", color=color)
    chart: alt.LayerChart = alt.LayerChart(layer=[dots, lines])
    return chart
