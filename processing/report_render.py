"""Rendering of a ``ReportData``: a PDF a physician reads in a minute, and a CSV of daily counts.

Page 1 is the summary table, the flags and the key plot (daily twitch rate per muscle); then where and
when (body map, hour of day), how long (durations, episodes), and the journal, flags' rules and data
coverage. Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state), so rendering is
safe from the dashboard's script threads.

Dates, hours of day and clock times are local to ``report.tz`` (the configured zone), and say so: times
carry the zone's abbreviation, tables and axes its name.
"""

from __future__ import annotations

import csv
import datetime as dt
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Ellipse, FancyBboxPatch, Rectangle

from twitchwatch.processing.localtime import format_clock, local_datetime, zone_name

if TYPE_CHECKING:
    from twitchwatch.processing.report import ReportData

A4 = (8.27, 11.69)
CSV_COLUMNS = (
    "date",
    "muscle",
    "twitches_at_rest",
    "hours_at_rest",
    "twitches_per_hour_at_rest",
    "hours_worn",
    "during_movement",
    "twitches_before_rest_tracking",
    "hours_worn_before_rest_tracking",
    "timezone",
)
RATE_WORDS = (
    "Rates are twitches per hour at rest: a twitch can be told apart only in a relaxed, still muscle, so "
    "time the muscle contracted or the limb moved is not counted, and twitch-like events then are listed "
    "as during movement, not counted."
)
UNTRACKED_WORDS = (
    "Part of this period was recorded before rest tracking: its twitches and hours worn are shown apart "
    "(per hour worn, movement included) and are not in the rates at rest."
)


# ---- CSV -------------------------------------------------------------------------------------------


def render_csv(report: ReportData, out: IO[str]) -> None:
    """One row per local day and muscle: twitches at rest, hours at rest and their ratio (empty without
    time at rest), hours worn, twitch-like events during movement (not counted), and twitches and hours
    worn stored before rest tracking (apart, never in the rate); the last column names the zone the dates
    are local to."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    zone = zone_name(report.tz)
    for muscle in sorted(report.daily_twitches):
        columns = (
            report.daily_twitches[muscle],
            report.daily_rest_h[muscle],
            report.daily_monitored_h[muscle],
            report.daily_during_movement[muscle],
            report.daily_untracked_twitches[muscle],
            report.daily_untracked_h[muscle],
        )
        for day, n, rest, worn, moved, old_n, old_h in zip(report.days, *columns, strict=True):
            rate = f"{n / rest:.3f}" if rest > 0 else ""
            row = (
                day.isoformat(),
                muscle,
                n,
                f"{rest:.3f}",
                rate,
                f"{worn:.3f}",
                moved,
                old_n,
                f"{old_h:.3f}",
            )
            writer.writerow((*row, zone))


# ---- PDF -------------------------------------------------------------------------------------------


def render_pdf(report: ReportData, out: str | Path | BinaryIO) -> None:
    # TrueType fonts keep the text extractable (and searchable) in the PDF.
    with mpl.rc_context({"pdf.fonttype": 42, "font.size": 8}), PdfPages(out) as pdf:
        info = pdf.infodict()
        info["Title"] = f"twitchwatch report for {report.user}"
        info["Subject"] = report.notice
        for page in (_summary_page, _where_when_page, _duration_page, _journal_flags_page):
            fig = page(report)
            pdf.savefig(fig)


def _day(d: dt.date | None) -> str:
    return d.isoformat() if d else "—"


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def _period(report: ReportData) -> str:
    first = format_clock(report.since_ns, report.tz)
    last = format_clock(report.until_ns, report.tz)
    return f"{first} – {last} ({zone_name(report.tz)})"


def _clock(ns: int, report: ReportData, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return local_datetime(ns, report.tz).strftime(fmt)


def _page(title: str, report: ReportData) -> Figure:
    fig = Figure(figsize=A4)
    fig.text(0.06, 0.965, title, fontsize=14, weight="bold")
    fig.text(0.06, 0.948, f"{report.user} · {_period(report)}", fontsize=8, color="0.3")
    fig.text(0.06, 0.015, report.notice, fontsize=7, color="#8a1c1c", wrap=True)
    return fig


def _table(ax: Axes, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
    ax.axis("off")
    if not rows:
        ax.text(0, 0.5, "nothing recorded", fontsize=9, color="0.4")
        return
    table = ax.table(
        cellText=[list(r) for r in rows],
        colLabels=list(header),
        colWidths=list(widths),
        loc="upper left",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.25)
    tall = any("\n" in h for h in header)  # two-line headers need a taller first row
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#e8eef5")
            cell.set_text_props(weight="bold")
            if tall:
                cell.set_height(cell.get_height() * 1.9)


def _summary_rows(report: ReportData) -> list[list[str]]:
    rows = []
    for m in report.muscles:
        row = [
            m.muscle,
            _day(m.first_recorded),
            str(m.twitches),
            _num(m.per_hour, "{:.2f}"),  # a few a day is ~0.1/h: one decimal would read as none
            f"{m.rest_h:.1f} / {m.monitored_h:.1f}",
            f"{m.twitching_days}/{m.monitored_days}",
            _num(m.median_duration_ms, "{:.0f}"),
            str(m.episodes),
            str(m.during_movement),
            str(m.sustained),
        ]
        if report.untracked:
            row.append(untracked_words(m.untracked_twitches, m.untracked_worn_h))
        rows.append(row)
    return rows


def untracked_words(twitches: int, worn_h: float) -> str:
    """Twitches and hours worn before rest tracking, with their rate per hour worn ("—": none)."""
    if worn_h <= 0:
        return "—"
    return f"{twitches} in {worn_h:.1f} h worn ({twitches / worn_h:.2f}/h worn)"


SUMMARY_HEADER = (
    "Muscle",
    "First\nrecorded",
    "Twitches\nat rest",
    "Per hour\nat rest",
    "Hours at\nrest / worn",
    "Days tw./\nmonitored",
    "Median\nms",
    "Episodes",
    "During\nmovement",
    "Sustained",
)
UNTRACKED_HEADER = "Before rest tracking\n(not in the rates)"


def _summary_page(report: ReportData) -> Figure:
    fig = _page("Muscle twitching: summary for the doctor", report)
    cov = report.coverage
    lines = [
        f"Worn {cov.monitored_h:.1f} h on {cov.days_with_data} of {cov.days_in_period} days, at rest "
        f"{cov.rest_h:.1f} h of them; {report.total_twitches} twitches on {len(report.muscles)} muscle(s). "
        f"{len(cov.gaps)} gap(s) of ≥ 1 h without monitoring.",
        *textwrap.wrap(RATE_WORDS, 125),
        *(textwrap.wrap(UNTRACKED_WORDS, 125) if report.untracked else []),
    ]
    fig.text(0.06, 0.93, "\n".join(lines), fontsize=8, va="top")
    ax = fig.add_axes((0.06, 0.655, 0.88, 0.19))
    header: tuple[str, ...] = SUMMARY_HEADER
    widths: tuple[float, ...] = (0.14, 0.1, 0.09, 0.09, 0.11, 0.1, 0.07, 0.09, 0.1, 0.1)
    if report.untracked:
        header, widths = (*header, UNTRACKED_HEADER), (*(w * 0.79 for w in widths), 0.21)
    _table(ax, header, _summary_rows(report), widths)

    symptom_flags = [f for f in report.flags.flags if f.kind.is_symptom]
    flag_lines = [f"• {f.kind.value} — {f.muscle}: {f.summary}" for f in symptom_flags] or [
        "• no persistent-activity flag was raised"
    ]
    wrapped = "\n".join(textwrap.fill(line, 120, subsequent_indent="   ") for line in flag_lines[:8])
    fig.text(0.06, 0.64, "Flags (rules on page 4)", fontsize=10, weight="bold", va="top")
    fig.text(0.06, 0.62, wrapped, fontsize=7.5, va="top")

    ax = fig.add_axes((0.09, 0.1, 0.85, 0.36))
    _daily_rate_plot(ax, report)
    return fig


def _daily_rate_plot(ax: Axes, report: ReportData) -> None:
    if not report.daily_twitches:
        ax.axis("off")
        ax.text(0, 0.5, "no muscle was monitored in this period", fontsize=9, color="0.4")
        return
    x = np.array([np.datetime64(d) for d in report.days])
    for muscle in sorted(report.daily_twitches):
        counts = np.array(report.daily_twitches[muscle], dtype=float)
        hours = np.array(report.daily_rest_h[muscle], dtype=float)
        rate = np.where(hours > 0, counts / np.where(hours > 0, hours, 1), np.nan)
        ax.plot(x, rate, marker="o", markersize=3, label=muscle)
    ax.set_title("Twitches per hour at rest, per day (gaps: no time at rest recorded)", fontsize=9)
    ax.set_ylabel("twitches / h at rest")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(axis="x", labelrotation=45)


# ---- where and when --------------------------------------------------------------------------------

# Body-map positions: (view, x, y) on a 0..1 figure of a person seen from the front or the back.
# The person's left is on the viewer's right in the front view and on the viewer's left from behind.
_PARTS: dict[str, tuple[str, float, float]] = {
    "face": ("front", 0.0, 0.93),
    "eye": ("front", 0.03, 0.94),
    "neck": ("back", 0.0, 0.86),
    "shoulder": ("front", 0.17, 0.8),
    "deltoid": ("front", 0.17, 0.8),
    "chest": ("front", 0.08, 0.75),
    "pector": ("front", 0.08, 0.75),
    "biceps": ("front", 0.21, 0.7),
    "triceps": ("back", 0.21, 0.7),
    "forearm": ("front", 0.24, 0.6),
    "hand": ("front", 0.26, 0.5),
    "abdom": ("front", 0.05, 0.62),
    "abs": ("front", 0.05, 0.62),
    "back": ("back", 0.07, 0.7),
    "glute": ("back", 0.07, 0.5),
    "thigh": ("front", 0.08, 0.38),
    "quad": ("front", 0.08, 0.38),
    "hamstring": ("back", 0.08, 0.38),
    "shin": ("front", 0.08, 0.2),
    "tibialis": ("front", 0.08, 0.2),
    "calf": ("back", 0.08, 0.2),
    "foot": ("front", 0.08, 0.05),
}


def body_position(muscle: str) -> tuple[str, float, float] | None:
    """Where ``muscle`` goes on the body map: (view, x, y), or None when the name is not recognised."""
    name = muscle.lower()
    part = next((p for p in _PARTS if p in name), None)
    if part is None:
        return None
    view, dx, y = _PARTS[part]
    tokens = set(name.replace("-", "_").replace(".", "_").split("_"))
    left = "left" in tokens or "l" in tokens
    right = "right" in tokens or "r" in tokens
    if dx == 0.0 or left == right:
        sign = 0.0 if dx == 0.0 or not (left or right) else 1.0
        return view, (sign * dx), y
    # Front: the person's left is the viewer's right; back: the viewer's left.
    sign = 1.0 if left else -1.0
    if view == "back":
        sign = -sign
    return view, sign * dx, y


def _outline(ax: Axes, cx: float) -> None:
    style: dict[str, Any] = {"fill": False, "edgecolor": "0.55", "linewidth": 1.0}
    ax.add_patch(Circle((cx, 0.93), 0.05, **style))
    ax.add_patch(FancyBboxPatch((cx - 0.13, 0.5), 0.26, 0.34, boxstyle="round,pad=0.01", **style))
    for side in (-1, 1):
        ax.add_patch(Rectangle((cx + side * 0.16 - 0.035, 0.5), 0.07, 0.32, angle=side * -8, **style))
        ax.add_patch(Ellipse((cx + side * 0.26, 0.47), 0.05, 0.07, **style))
        ax.add_patch(Rectangle((cx + side * 0.07 - 0.045, 0.03), 0.09, 0.47, **style))


def _body_map(ax: Axes, report: ReportData) -> list[str]:
    centres = {"front": 0.3, "back": 0.9}
    for view, cx in centres.items():
        _outline(ax, cx)
        ax.text(cx, -0.02, view, ha="center", fontsize=8, color="0.4")
    # A muscle without time at rest has no rate: a hollow grey dot, not the colour of "no twitches".
    rates = {m.muscle: m.per_hour for m in report.muscles}
    top = max((r for r in rates.values() if r is not None), default=0.0) or 1.0
    cmap = mpl.colormaps["YlOrRd"]
    unplaced = []
    for muscle, rate in sorted(rates.items()):
        where = body_position(muscle)
        if where is None:
            unplaced.append(muscle)
            continue
        view, dx, y = where
        centre = (centres[view] + dx, y)
        if rate is None:
            ax.add_patch(Circle(centre, 0.035, fill=False, edgecolor="0.55", linestyle="--", zorder=3))
        else:
            ax.add_patch(Circle(centre, 0.035, color=cmap(0.15 + 0.85 * rate / top), zorder=3))
        ax.text(centres[view] + dx, y - 0.055, muscle, ha="center", fontsize=6, zorder=4)
    ax.set_xlim(0, 1.2)
    ax.set_ylim(-0.05, 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    sm = mpl.cm.ScalarMappable(cmap=cmap, norm=mpl.colors.Normalize(0, top))
    fig = ax.get_figure()
    if isinstance(fig, Figure):
        fig.colorbar(sm, ax=ax, shrink=0.6, label="twitches per hour at rest")
    return unplaced


def _where_when_page(report: ReportData) -> Figure:
    fig = _page("Where and when", report)
    ax = fig.add_axes((0.06, 0.5, 0.88, 0.42))
    unplaced = _body_map(ax, report)
    notes = []
    if any(m.per_hour is None for m in report.muscles):
        notes.append("Hollow dots: no time at rest recorded, no rate")
    if unplaced:
        notes.append("Not on the map (name not recognised): " + ", ".join(unplaced))
    if notes:
        fig.text(0.06, 0.49, ". ".join(notes), fontsize=7)
    ax = fig.add_axes((0.2, 0.1, 0.72, 0.3))
    muscles = sorted(report.hour_of_day)
    if not muscles:
        ax.axis("off")
        ax.text(0, 0.5, "nothing recorded in this period", fontsize=9, color="0.4")
        return fig
    grid = np.array([report.hour_of_day[m] for m in muscles], dtype=float).reshape(len(muscles), 24)
    image = ax.imshow(grid, aspect="auto", cmap="Blues")
    ax.set_yticks(range(len(muscles)), muscles)
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel(f"hour of day ({zone_name(report.tz)})")
    ax.set_title("Twitches by hour of day", fontsize=9)
    fig.colorbar(image, ax=ax, label="twitches")
    return fig


# ---- how long --------------------------------------------------------------------------------------


def _duration_page(report: ReportData) -> Figure:
    fig = _page("How long twitches and episodes last", report)
    ax = fig.add_axes((0.1, 0.64, 0.84, 0.26))
    for muscle in sorted(report.durations_ms):
        values = report.durations_ms[muscle]
        if values:
            ax.hist(values, bins=30, alpha=0.5, label=muscle)
    ax.set_xlabel("twitch duration (ms)")
    ax.set_ylabel("twitches")
    ax.set_title("Duration of single twitches", fontsize=9)
    if any(report.durations_ms.values()):
        ax.legend(fontsize=7)
    fig.text(
        0.06,
        0.585,
        "An episode is a cluster of ≥ 3 twitches on one muscle, each within 5 min of the previous; it lasts "
        "from the first twitch to the end of the last.",
        fontsize=7.5,
    )
    longest = sorted(report.episodes, key=lambda e: e.minutes, reverse=True)[:20]
    rows = [
        [
            e.muscle,
            _clock(e.start_ns, report),
            f"{e.minutes:.1f}",
            str(e.twitches),
        ]
        for e in longest
    ]
    ax = fig.add_axes((0.06, 0.08, 0.88, 0.48))
    ax.set_title("Longest episodes", fontsize=9, loc="left")
    start = f"Start ({zone_name(report.tz)})"
    _table(ax, ("Muscle", start, "Minutes", "Twitches"), rows, (0.3, 0.3, 0.2, 0.2))
    return fig


# ---- journal, flags, coverage ----------------------------------------------------------------------

FELT_WORDS = (
    "This shows whether what you noticed and what the sensor recorded go together; it is not a test of the "
    "detector. A person feels only some twitches (most detections have no mark, which says nothing against "
    "them), may feel twitches the sensor cannot see, and marks them seconds late, so some detections fall "
    "near a mark by chance."
)


def felt_lines(report: ReportData, width: int) -> list[str]:
    """The felt-vs-detected comparison as wrapped lines: all muscles, each muscle named, what it means."""
    if not report.felt or not report.felt[0].felt:
        return [
            "No twitch was marked as felt in this period (twitchwatch felt, the Live page's button, or the "
            "MQTT topic twitchwatch/<user>/felt)."
        ]
    lines = [f"• {c.muscle or 'all muscles'}: {c.words()}" for c in report.felt]
    wrapped = [textwrap.fill(line, width, subsequent_indent="   ") for line in lines[:4]]
    return [*wrapped, textwrap.fill(FELT_WORDS, width)]


def _journal_flags_page(report: ReportData) -> Figure:
    fig = _page("Journal, symptoms, flags and data coverage", report)
    y = 0.925
    effects = [e for e in report.effects if e.after.rest_s > 0]
    fig.text(
        0.06,
        y,
        "Twitch rate at rest in the hours after each logged factor vs the rest of the time",
        fontsize=9,
        weight="bold",
    )
    rows = [
        [
            e.factor.value,
            e.muscle,
            str(e.entries),
            f"{e.window_h:g}",
            _num(e.after.per_hour),
            _num(e.baseline.per_hour),
            _num(e.ratio, "{:.2f}×"),
        ]
        for e in effects[:12]
    ]
    ax = fig.add_axes((0.06, 0.76, 0.88, 0.15))
    _table(
        ax,
        ("Factor", "Muscle", "Entries", "Window h", "After /h at rest", "Baseline /h at rest", "Ratio"),
        rows,
        (0.15, 0.2, 0.1, 0.1, 0.15, 0.15, 0.15),
    )

    fig.text(0.06, 0.745, "Journal entries (symptoms first)", fontsize=9, weight="bold")
    ordered = list(report.symptoms) + [e for e in report.journal if e not in report.symptoms]
    rows = [
        [
            _clock(e.time_ns, report),
            e.factor.value,
            e.muscle,
            textwrap.shorten(" ".join(p for p in (e.amount, e.note) if p), 70) or "",
        ]
        for e in ordered[:14]
    ]
    ax = fig.add_axes((0.06, 0.58, 0.88, 0.15))
    header = (f"Time ({zone_name(report.tz)})", "Factor", "Muscle", "Amount / note")
    _table(ax, header, rows[:12], (0.18, 0.12, 0.15, 0.55))

    fig.text(0.06, 0.565, "Flags and the rules that raised them", fontsize=9, weight="bold")
    lines = []
    for f in report.flags.flags:
        where = f.muscle or f"device {f.device}"
        lines.append(f"• {f.kind.value} — {where}: {f.summary}; days {f.first_day} … {f.last_day}")
        lines.append(f"   rule: {f.rule}")
    text = "\n".join(textwrap.fill(line, 125, subsequent_indent="     ") for line in lines[:12])
    fig.text(0.06, 0.545, text or "none raised", fontsize=7, va="top")

    fig.text(0.06, 0.385, "Felt twitches (marked “I felt that”) and detections", fontsize=9, weight="bold")
    fig.text(0.06, 0.365, "\n".join(felt_lines(report, 125)), fontsize=7, va="top")

    cov = report.coverage
    gaps = sorted(cov.gaps, key=lambda g: g.hours, reverse=True)[:6]
    gap_text = "; ".join(
        f"{format_clock(g.start_ns, report.tz, '%m-%d %H:%M')} ({g.hours:.1f} h)" for g in gaps
    )
    fig.text(0.06, 0.27, "Data coverage", fontsize=9, weight="bold")
    fig.text(
        0.06,
        0.255,
        textwrap.fill(
            f"{cov.monitored_h:.1f} h worn on {cov.days_with_data} of {cov.days_in_period} days, "
            f"{cov.rest_h:.1f} h of them at rest"
            + (f" and {cov.untracked_h:.1f} h recorded before rest tracking" if report.untracked else "")
            + f". Longest gaps: {gap_text or 'none'}.",
            125,
        ),
        fontsize=7.5,
        va="top",
    )
    ax = fig.add_axes((0.1, 0.08, 0.84, 0.13))
    x = np.array([np.datetime64(d) for d in report.days])
    ax.bar(x, cov.daily_monitored_h, color="0.75", label="worn")
    ax.bar(x, cov.daily_rest_h, color="0.4", width=0.5, label="at rest")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_ylabel(f"h per day ({zone_name(report.tz)})")
    ax.set_ylim(0, max([24.0, *cov.daily_monitored_h]))  # a DST fall-back day has 25 h
    ax.tick_params(axis="x", labelrotation=45)
    return fig
