"""The Live page: an "I felt a twitch" button, twitch counts from the store, device status and the last
seconds of raw signal from the MQTT bus, all but the button refreshed by one fragment every
``LIVE_REFRESH_S``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import altair as alt
import streamlit as st

from twitchwatch.dashboard import data, live_data
from twitchwatch.dashboard.app import LIVE_REFRESH_S, Context, page_header
from twitchwatch.dashboard.livefeed import FeedSnapshot, LiveFeed
from twitchwatch.processing.events import MINUTE_NS, TWITCH_KINDS, EventKind, TwitchEvent
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import EventQuery, EventStore, StoreError

HEADING_TWITCHES = "Twitches now"
FELT_BUTTON = "I felt a twitch"
SOMEWHERE = "not sure where"
HEADING_DEVICES = "Devices"
HEADING_SIGNAL = "Signal"
SIGNAL_WINDOW_S = 20.0
MAX_POINTS = 800  # per channel: twice the chart's width in bars at most, plenty for the eye
NO_DEVICES = (
    "No device has reported on the MQTT bus since the dashboard started. Start a sensor "
    "(`twitchwatch collect`) or the simulator (`twitchwatch simulate --muscle calf_left`)."
)


def render(ctx: Context) -> None:
    page_header("Live")
    felt_button(ctx)
    live_section(ctx.store, ctx.user, ctx.feed, ctx.tz)


def felt_button(ctx: Context) -> None:
    """Mark a twitch the person felt, now: a journal entry of factor ``felt`` the History and Report pages
    compare with the detections (processing/felt.py). Outside the refreshing fragment, so a click is never
    lost to a refresh."""
    try:
        muscles = ctx.store.muscles(ctx.user)
    except StoreError:
        muscles = []  # the section below says how the store failed
    where, press = st.columns([2, 1], vertical_alignment="bottom")
    muscle = str(where.selectbox("Where", (SOMEWHERE, *muscles), key="felt_muscle"))
    if not press.button(FELT_BUTTON, key="felt", type="primary"):
        return
    now = time.time_ns()
    entry = JournalEntry(ctx.user, now, Factor.FELT, muscle="" if muscle == SOMEWHERE else muscle)
    try:
        ctx.store.add_journal_entry(entry)
    except StoreError as exc:
        st.error(f"Not marked: {exc}")
        return
    on = f" on {entry.muscle}" if entry.muscle else ""
    st.success(
        f"Marked a felt twitch{on} at {data.format_time(now, ctx.tz)}. The History and Report pages compare "
        "the marks with the detected twitches."
    )


@st.fragment(run_every=LIVE_REFRESH_S)
def live_section(store: EventStore, user: str, feed: Callable[[], LiveFeed], tz: dt.tzinfo) -> None:
    now_ns = time.time_ns()
    events = twitches_section(store, user, now_ns, tz)
    snapshot = feed().snapshot()
    broker_line(snapshot)
    devices_section(snapshot)
    signal_section(snapshot, events)
    st.caption(f"Updates every {LIVE_REFRESH_S:g} s · last update {data.format_time(now_ns, tz)}")


def twitches_section(store: EventStore, user: str, now_ns: int, tz: dt.tzinfo) -> list[TwitchEvent]:
    st.header(HEADING_TWITCHES)
    since_ns = now_ns - data.LIVE_LONG_S * data.NS_PER_S
    try:
        events = store.events(
            EventQuery(since_ns, user=user, kinds=(*TWITCH_KINDS, EventKind.DURING_MOVEMENT))
        )
        rates = store.rates(EventQuery(since_ns - since_ns % MINUTE_NS, user=user))  # from its first minute
        muscles = store.muscles(user)
    except StoreError as exc:
        st.error(f"Cannot read the event store: {exc}")
        return []
    table = data.live_table(events, muscles, now_ns, tz, rates)
    st.markdown(f"**{data.live_summary(table)}**")
    if not table.empty:
        st.table(table, hide_index=True)
    st.caption(
        "Counted from the detected events in the store (live and replayed); per hour at rest = twitches at "
        "rest ÷ the time the muscle was at rest and still in the last 10 min, as on the Overview. "
        "Twitch-like events while the muscle contracted or the limb moved are counted apart (during "
        "movement) and never as twitches."
    )
    return events


def broker_line(snapshot: FeedSnapshot) -> None:
    if snapshot.state == "connected":
        st.caption(f"Raw signal from the MQTT broker {snapshot.broker}.")
    elif snapshot.state == "connecting":
        st.info(f"Connecting to the MQTT broker {snapshot.broker} for the raw signal …")
    else:
        st.warning(
            f"No live signal: the MQTT broker {snapshot.broker} is not reachable ({snapshot.problem}). "
            "Check TWITCHWATCH_MQTT_URL and that the broker runs; twitch counts above still come "
            "from the store. The dashboard keeps retrying."
        )


def devices_section(snapshot: FeedSnapshot) -> None:
    st.header(HEADING_DEVICES)
    table = live_data.device_table(snapshot)
    if table.empty:
        st.info(NO_DEVICES)
        return
    st.table(table, hide_index=True)
    st.caption(
        "State and battery are what each device last announced (retained status); frames are "
        "counted since this dashboard started; gaps come from missing sequence numbers."
    )


def signal_section(snapshot: FeedSnapshot, events: list[TwitchEvent]) -> None:
    st.header(HEADING_SIGNAL)
    windows = live_data.signal_windows(snapshot, events, SIGNAL_WINDOW_S, MAX_POINTS)
    if not windows:
        st.info("No raw signal received yet.")
        return
    for w in windows:
        st.subheader(f"{w.muscle} · {w.stream}")
        st.altair_chart(signal_chart(w), width="stretch")
        moved = int((w.markers["kind"] == EventKind.DURING_MOVEMENT.value).sum()) if len(w.markers) else 0
        st.caption(
            f"Last {SIGNAL_WINDOW_S:g} s from {w.device}, in {w.unit}; red lines: "
            f"{len(w.markers) - moved} detected twitch(es) in this window; grey dashed lines: {moved} "
            "twitch-like event(s) during movement, not counted."
        )


def signal_chart(w: live_data.SignalWindow) -> alt.LayerChart:
    x = alt.X(
        "seconds:Q", title="seconds before the newest sample", scale=alt.Scale(domain=[-SIGNAL_WINDOW_S, 0])
    )
    line = (
        alt.Chart(w.signal, height=160).mark_line(strokeWidth=1).encode(x=x, y=alt.Y("value:Q", title=w.unit))
    )
    moving = EventKind.DURING_MOVEMENT.value
    counted = w.markers[w.markers["kind"] != moving]
    moved = w.markers[w.markers["kind"] == moving]
    marks = alt.Chart(counted).mark_rule(color="red", strokeWidth=2).encode(x=x, tooltip=["kind:N"])
    not_counted = (
        alt.Chart(moved)
        .mark_rule(color="grey", strokeWidth=2, strokeDash=[4, 3])
        .encode(x=x, tooltip=["kind:N", alt.Tooltip("reason:N", title="why not counted")])
    )
    chart: alt.LayerChart = alt.LayerChart(layer=[line, marks, not_counted])
    return chart
