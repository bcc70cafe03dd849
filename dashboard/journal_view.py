"""The Journal page: log a factor with its time, list entries, delete one after a confirmation, and
compare the twitch rate in the hours after each kind of factor with the person's baseline."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st

from twitchwatch.dashboard import data
from twitchwatch.dashboard.app import Context, page_header
from twitchwatch.processing.journal import Factor, JournalEntry, JournalError, factor_effects
from twitchwatch.processing.localtime import local_datetime
from twitchwatch.processing.store import EventQuery, StoreError

HEADING_ADD = "Add an entry"
HEADING_ENTRIES = "Entries"
HEADING_EFFECTS = "Twitch rate after each factor"
PERIODS: dict[str, int | None] = {"Last 7 d": 7, "Last 30 d": 30, "Last 90 d": 90, "Everything": None}
PENDING_DELETE = "journal_pending_delete"
ADDED = "journal_added"


def render(ctx: Context) -> None:
    page_header("Journal")
    tz = ctx.tz
    now_ns = time.time_ns()
    add_form(ctx, tz, now_ns)
    period = str(st.sidebar.radio("Show entries from", tuple(PERIODS), index=1, key="journal_period"))
    days = PERIODS[period]
    since_ns = 0 if days is None else now_ns - days * 24 * 3600 * data.NS_PER_S
    try:
        entries = ctx.store.journal_entries(since_ns, None, user=ctx.user)
    except StoreError as exc:
        st.error(f"Cannot read the journal: {exc}")
        return
    entries_section(ctx, entries, tz, period)
    effects_section(ctx, entries, since_ns, now_ns)


def add_form(ctx: Context, tz: dt.tzinfo, now_ns: int) -> None:
    st.header(HEADING_ADD)
    if ADDED in st.session_state:
        st.success(f"Added: {st.session_state.pop(ADDED)}")
    now = local_datetime(now_ns, tz)
    with st.form("journal_add", clear_on_submit=True):
        factor = st.selectbox("What", [f.value for f in Factor], key="journal_factor")
        left, right = st.columns(2)
        day = left.date_input("Day", value=now.date(), max_value=now.date(), key="journal_day")
        at = right.time_input("Time", value=now.time().replace(second=0, microsecond=0), key="journal_time")
        amount = st.text_input("Amount", placeholder="2 cups, 45 min run, 6 h sleep …", key="journal_amount")
        muscle = st.text_input("Where (optional)", placeholder="calf_left", key="journal_muscle")
        note = st.text_area("Note (optional)", key="journal_note")
        submitted = st.form_submit_button("Add entry")
    if not submitted:
        return
    when = dt.datetime.combine(
        day if isinstance(day, dt.date) else now.date(),
        at if isinstance(at, dt.time) else now.time(),
        tzinfo=tz,
    )
    try:
        entry = JournalEntry(
            ctx.user,
            int(when.timestamp()) * data.NS_PER_S,
            Factor(str(factor)),
            amount.strip(),
            note.strip(),
            muscle.strip(),
        )
        ctx.store.add_journal_entry(entry)
    except (JournalError, StoreError) as exc:
        st.error(f"Not added: {exc}")
        return
    # Rerun so the list below includes the new entry; the message survives the rerun.
    st.session_state[ADDED] = data.entry_label(entry, tz)
    st.rerun()


def entries_section(ctx: Context, entries: list[JournalEntry], tz: dt.tzinfo, period: str) -> None:
    st.header(HEADING_ENTRIES)
    if not entries:
        st.info(f"No journal entries ({period.lower()}). Add one above.")
        return
    st.table(data.journal_display(entries, tz), hide_index=True)
    count = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    st.caption(f"{count} ({period.lower()}), newest first.")
    delete_with_confirmation(ctx, entries, tz)


def delete_with_confirmation(ctx: Context, entries: list[JournalEntry], tz: dt.tzinfo) -> None:
    """Two steps: choose and ask, then confirm or cancel. Nothing is deleted by the first click."""
    by_id = {e.entry_id: e for e in entries}
    with st.expander("Delete an entry"):
        chosen = st.selectbox(
            "Entry",
            list(reversed(list(by_id))),
            format_func=lambda entry_id: data.entry_label(by_id[entry_id], tz),
            key="journal_delete_choice",
        )
        if st.button("Delete…", key="journal_delete"):
            st.session_state[PENDING_DELETE] = chosen
        pending = st.session_state.get(PENDING_DELETE)
        if pending is None or pending not in by_id:
            return
        st.warning(f"Delete “{data.entry_label(by_id[pending], tz)}”? This cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key="journal_delete_yes", type="primary"):
            del st.session_state[PENDING_DELETE]
            try:
                ctx.store.delete_journal_entry(pending)
            except StoreError as exc:
                st.error(f"Not deleted: {exc}")
                return
            st.rerun()
        if no.button("Cancel", key="journal_delete_no"):
            del st.session_state[PENDING_DELETE]
            st.rerun()


def effects_section(ctx: Context, entries: list[JournalEntry], since_ns: int, now_ns: int) -> None:
    st.header(HEADING_EFFECTS)
    if not entries:
        st.info("Log factors above to compare the twitch rate after them with your baseline.")
        return
    try:
        rates = ctx.store.rates(EventQuery(since_ns, now_ns, user=ctx.user))
    except StoreError as exc:
        st.error(f"Cannot read the rates: {exc}")
        return
    table = data.effects_display(factor_effects(entries, rates, ctx.journal_windows_ns))
    if table.empty:
        st.info(
            "No time at rest in this period: the rate comparison needs the worker's per-minute records "
            "with rest tracking."
        )
        return
    st.table(table, hide_index=True)
    st.caption(
        "Per hour at rest after = twitches at rest ÷ time at rest in the hours after each entry of that "
        "kind; baseline = the same over all other time at rest in the period (time recorded before rest "
        "tracking is left out). A ratio above 1 means more twitching after that factor. Correlation only: "
        "it does not show a cause."
    )
