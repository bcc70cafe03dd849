"""The History page: twitches per muscle per day with a trend line, filtered by dates, source and session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.app import Context, date_pair, page_header
from processing.events import TWITCH_KINDS, TwitchEvent, rerun_free_events
from processing.localtime import day_of, zone_name
from processing.store import EventQuery, StoreError

HEADING_DAILY = "Twitches per day"
HEADING_TRENDS = "Trends"
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
            kinds=TWITCH_KINDS,
            limit=MAX_EVENTS + 1,  # one more tells "too many" apart from "exactly the cap"
        )
        events = ctx.store.events(query)
        # "all": a replay of live minutes is the same twitches again, counted once (the minute rates that
        # tell so are read only when there is a replay to judge).
        if source is None and any(e.source == "replay" for e in events):
            live_rates = ctx.store.rates(dataclasses.replace(query, source="live", limit=None))
            events = rerun_free_events(events, live_rates)
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
    daily_sections(data.in_session(events, session), first, last, tz)


def daily_sections(events: list[TwitchEvent], first: dt.date, last: dt.date, tz: dt.tzinfo) -> None:
    st.header(HEADING_DAILY)
    daily = data.daily_counts(events, first, last, tz)
    if daily.empty:
        st.info(
            "No twitches on these days with these filters. "
            "Pick other dates, source or session in the sidebar."
        )
        return
    fitted = data.trends(daily)
    st.altair_chart(daily_chart(daily, data.trend_frame(daily, fitted)), width="stretch")
    st.caption(
        "Bars: twitches (fasciculations and myoclonic jerks) per local day. Lines: a least-squares "
        "trend per muscle. Days without the sensor worn count as 0 here; the Overview's per-hour "
        "rates account for monitored time."
    )
    st.table(data.daily_table(daily), hide_index=True)
    st.header(HEADING_TRENDS)
    if fitted:
        st.table(data.trend_display(fitted), hide_index=True)
        st.caption("Change per week = the trend line's slope × 7; a description, not a test of significance.")
    else:
        st.info("A trend needs at least two days: pick a longer date range.")


def daily_chart(daily: pd.DataFrame, trend: pd.DataFrame) -> alt.LayerChart:
    # Days as ordinal text: a date sent as a timestamp would be read as UTC midnight and drawn on the
    # previous day west of Greenwich.
    daily = daily.assign(**{data.COL_DAY: [d.isoformat() for d in daily[data.COL_DAY]]})
    trend = trend.assign(**{data.COL_DAY: [d.isoformat() for d in trend[data.COL_DAY]]})
    x = alt.X(f"{data.COL_DAY}:O", title="day", axis=alt.Axis(labelAngle=-45))
    color = alt.Color(f"{data.COL_MUSCLE}:N", title="muscle")
    bars = (
        alt.Chart(daily, height=300)
        .mark_bar(opacity=0.55)
        .encode(
            x=x,
            y=alt.Y(f"{data.COL_TWITCHES}:Q", title="twitches per day", stack=None),
            xOffset=f"{data.COL_MUSCLE}:N",
            color=color,
            tooltip=[f"{data.COL_DAY}:O", f"{data.COL_MUSCLE}:N", f"{data.COL_TWITCHES}:Q"],
        )
    )
    lines = alt.Chart(trend).mark_line(strokeWidth=2).encode(x=x, y=f"{data.COL_TREND}:Q", color=color)
    chart: alt.LayerChart = alt.LayerChart(layer=[bars, lines])
    return chart
