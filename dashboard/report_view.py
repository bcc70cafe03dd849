"""The Report page: the doctor-visit report's summary on screen, with the PDF and CSV as downloads.

The report itself (``processing.report.build_report``) and its files (``processing.report_render``)
are the same the ``twitchwatch report`` command writes; the files are rendered only when a download
button is clicked.
"""

from __future__ import annotations

import datetime as dt
import io
import time

import streamlit as st

from twitchwatch.dashboard import data
from twitchwatch.dashboard.app import Context, date_pair, page_header, show_body_map, show_felt, show_flags
from twitchwatch.processing.localtime import day_of
from twitchwatch.processing.report import ReportData
from twitchwatch.processing.report_render import render_csv, render_pdf
from twitchwatch.processing.store import StoreError

HEADING_SUMMARY = "Summary"
HEADING_MUSCLES = "By muscle"
HEADING_WHERE = "Where"
HEADING_FLAGS = "Flags raised"
HEADING_SYMPTOMS = "Other symptoms (journal)"
HEADING_DOWNLOADS = "Downloads"
EMPTY = "Nothing recorded in this period: the report would be empty. Pick a longer period in the sidebar."


def render(ctx: Context) -> None:
    page_header("Report")
    period, since_ns, until_ns = period_controls(ctx.tz, time.time_ns())
    try:
        with st.spinner("Building the report…"):
            report = ctx.report(since_ns, until_ns)
    except StoreError as exc:
        st.error(f"Cannot build the report: {exc}")
        return
    downloads(report)
    summary(report, period)


def period_controls(tz: dt.tzinfo, now_ns: int) -> tuple[str, int, int]:
    """The period's name and [since, until): the last 7/30/90 local days, today's so far included, or whole
    local days picked (the days since the twitching started, the months between two visits). A preset of
    N × 24 h before now began in the middle of a day: "Last 7 d" reported 8 days, two of them partial."""
    choices = (*data.REPORT_PERIODS, data.CUSTOM_RANGE)
    period = str(st.sidebar.radio("Period", choices, index=1, key="report_period"))
    today = day_of(now_ns, tz)
    if period != data.CUSTOM_RANGE:
        first = today - dt.timedelta(days=data.REPORT_PERIODS[period] - 1)
        tr = data.dates_range(first, today, tz, now_ns)
        return period, tr.since_ns, tr.until_ns
    picked = st.sidebar.date_input(
        "Dates", value=(today - dt.timedelta(days=29), today), max_value=today, key="report_dates"
    )
    first, last = date_pair(picked, today)
    first, last = min(first, last), max(first, last)
    tr = data.dates_range(first, last, tz, now_ns)
    return f"{first.isoformat()} to {last.isoformat()}", tr.since_ns, tr.until_ns


def downloads(report: ReportData) -> None:
    st.header(HEADING_DOWNLOADS)
    stem = data.report_file_stem(report)
    left, right = st.columns(2)
    left.download_button(
        "Download PDF",
        data=lambda: pdf_bytes(report),
        file_name=f"{stem}.pdf",
        mime="application/pdf",
        key="report_pdf",
        on_click="ignore",
    )
    right.download_button(
        "Download CSV (daily counts)",
        data=lambda: csv_text(report),
        file_name=f"{stem}.csv",
        mime="text/csv",
        key="report_csv",
        on_click="ignore",
    )
    st.caption(
        "The PDF is what `twitchwatch report --pdf` writes: a summary a physician can read in a "
        "minute, then the plots."
    )


def pdf_bytes(report: ReportData) -> bytes:
    buffer = io.BytesIO()
    render_pdf(report, buffer)
    return buffer.getvalue()


def csv_text(report: ReportData) -> str:
    buffer = io.StringIO()
    render_csv(report, buffer)
    return buffer.getvalue()


def summary(report: ReportData, period: str) -> None:
    tz = report.tz
    st.header(HEADING_SUMMARY)
    st.markdown(
        f"**{period}: {report.total_twitches} twitches on {len(report.muscles)} "
        f"muscle{'' if len(report.muscles) == 1 else 's'}.** {data.report_coverage(report)}"
    )
    if not report.muscles:
        st.info(EMPTY)
        return
    st.header(HEADING_MUSCLES)
    st.table(data.report_muscles(report), hide_index=True)
    st.caption(
        "Twitches are fasciculations and myoclonic jerks; the rate is per hour at rest (the muscle relaxed "
        "and still), with hours at rest and worn beside it. Sustained activity, and twitch-like events "
        "while the muscle contracted or the limb moved (during movement), are counted apart, never as "
        "twitches. An episode is a run of twitches close together on one muscle."
    )
    st.header(HEADING_WHERE)
    show_body_map({m.muscle: m.per_hour for m in report.muscles})
    st.header(HEADING_FLAGS)
    show_flags(report.flags, tz)
    st.header(HEADING_SYMPTOMS)
    if report.symptoms:
        st.table(data.journal_display(report.symptoms, tz), hide_index=True)
    else:
        st.caption("No symptoms logged in the journal in this period.")
    show_felt(report.felt)
