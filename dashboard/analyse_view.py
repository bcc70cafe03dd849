"""The Analyse page: a recording a person uploads (an app's or a wearable's export, EDF, a WFDB record, a
session) run through the worker's detectors and the rest gate, as ``twitchwatch detect`` runs it, with what
was found per channel and every event. Nothing is stored: the history is the worker's; ``twitchwatch
replay FILE`` adds a recording to it.

The upload is written to a temporary folder under its own name (a WFDB record is its header and its signal
file together) and read from there by the same readers as ``detect``; it is gone when the run ends. The
result is kept in the session, so the page's reruns do not run the detectors again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import altair as alt
import pandas as pd
import streamlit as st

from twitchwatch.collector.signals import TwitchSignal
from twitchwatch.dashboard import data
from twitchwatch.dashboard.app import Context, page_header

HEADING_FILE = "Recording"
HEADING_FOUND = "What was found"
HEADING_EVENTS = "Events in the recording"
INTRO = (
    "Run twitchwatch's detectors over a recording of your own: a wearable's or an app's export (CSV or "
    "text), EDF/BDF, a PhysioNet WFDB record (its .hea and .dat together), a PLUX OpenSignals file or a "
    "twitchwatch session. Twitches while the muscle worked or the body moved are listed apart. Nothing "
    "here is saved to your history (`twitchwatch replay FILE` adds a recording to it)."
)
SIGNALS: dict[str, TwitchSignal | None] = {"as the file says": None, "EMG": "emg", "accelerometer": "acc"}
RESULT_KEY = "analyse_result"
MAX_SHOWN_EVENTS = 500  # rows in the page's table (and chart); the download has them all


class Upload(Protocol):
    """What Streamlit's uploader gives for a file."""

    name: str

    def getvalue(self) -> bytes: ...


@dataclass(frozen=True)
class Analysis:
    """One run's outcome: the file, what was found, or why it could not be read."""

    name: str
    error: str = ""
    description: str = ""
    lanes: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()


def render(ctx: Context) -> None:
    del ctx  # nothing of the person's store is read or written here
    page_header("Analyse")
    st.caption(INTRO)
    st.header(HEADING_FILE)
    files = st.file_uploader("Recording file", accept_multiple_files=True, key="analyse_files")
    left, right = st.columns(2)
    signal = SIGNALS[str(left.selectbox("Signal", tuple(SIGNALS), key="analyse_signal"))]
    rate = right.number_input(
        "Sample rate (Hz), for a file without a time column", min_value=0.0, value=0.0, key="analyse_rate"
    )
    if st.button("Analyse", disabled=not files, type="primary"):
        st.session_state[RESULT_KEY] = analyse(files or [], signal, float(rate) or None)
    result = st.session_state.get(RESULT_KEY)
    if isinstance(result, Analysis):
        show(result)


def main_file(names: Sequence[str]) -> str:
    """Which of the uploaded files is the recording: a WFDB record's header, or the only file."""
    headers = [n for n in names if n.lower().endswith(".hea")]
    if len(headers) == 1:
        return headers[0]
    if len(names) == 1:
        return names[0]
    raise ValueError(
        f"{len(names)} files: upload one recording at a time (a WFDB record: its .hea and its .dat together)"
    )


def analyse(files: Sequence[Upload], signal: TwitchSignal | None, rate: float | None) -> Analysis:
    """The uploads through ``detect``'s code path, with a progress bar; every error a message."""
    from twitchwatch.collector.recordings import RecordingError  # the detectors load on first use only

    names = [Path(f.name).name for f in files]
    try:
        main = main_file(names)
    except ValueError as exc:
        return Analysis(", ".join(names), error=str(exc))
    with tempfile.TemporaryDirectory(prefix="twitchwatch-analyse-") as folder:
        for name, f in zip(names, files, strict=True):
            (Path(folder) / name).write_bytes(f.getvalue())
        try:
            return _detect(Path(folder) / main, signal, rate)
        except RecordingError as exc:
            return Analysis(main, error=str(exc).replace(f"{folder}/", ""))


def _detect(path: Path, signal: TwitchSignal | None, rate: float | None) -> Analysis:
    from twitchwatch.collector.recordings import open_recording
    from twitchwatch.processing.recordings import DetectionRun, plan_detection

    with open_recording(path, rate=rate) as reader:
        rec = reader.recording
        plan = plan_detection(rec, signal=signal)
        run = DetectionRun(plan)
        events = []
        bar = st.progress(0.0, text=f"Detecting in {path.name} …")
        for chunk in reader.chunks(plan.groups):
            events += run.feed(chunk)
            done = min(chunk.end_s, rec.duration_s) / rec.duration_s if rec.duration_s > 0 else 1.0
            bar.progress(min(max(done, 0.0), 1.0), text=f"Detecting in {path.name} … {done:.0%}")
        events += run.finish()
        bar.empty()
    channels = sum(len(g.channels) for g in plan.groups)
    description = (
        f"{path.name}: {rec.format}, {data.length_text(rec.duration_s)}, {len(run.lane_summaries)} "
        f"detector lane(s) from {channels} channel(s)"
    )
    notes = tuple(rec.notes) + tuple(f"skipped {c.display}: {c.note}" for c in plan.skipped)
    return Analysis(
        path.name,
        description=description,
        lanes=data.analysis_lanes(run.lane_summaries),
        events=data.analysis_events(sorted(events, key=lambda e: (e.start, e.channel))),
        notes=notes,
    )


# What the readers' messages ask of the command line, and where that is on this page.
_OPTIONS_HERE: Final = (("--rate", "the sample rate above"), ("--signal", "the signal above"))


def error_text(name: str, error: str) -> str:
    """The reader's message, pointing at this page's fields where it names ``detect``'s options."""
    hints = [f"set {where}" for option, where in _OPTIONS_HERE if option in error]
    return f"Could not analyse {name}: {error}" + (f" ({'; '.join(hints)})" if hints else "")


def show(result: Analysis) -> None:
    if result.error:
        st.error(error_text(result.name, result.error))
        return
    assert result.lanes is not None
    assert result.events is not None
    st.header(HEADING_FOUND)
    st.write(result.description)
    st.table(result.lanes, hide_index=True)
    st.caption(
        "At rest and still: time with no movement on the file's accelerometers or gyroscopes and no activity "
        "of the channel's own muscle; twitches per minute at rest counts only that time."
    )
    for note in result.notes:
        st.caption(note)
    st.header(HEADING_EVENTS)
    events = result.events
    if events.empty:
        st.info("No events found.")
        return
    chart = (
        alt.Chart(events.head(MAX_SHOWN_EVENTS))
        .mark_tick(thickness=2)
        .encode(
            x=alt.X("start (s):Q", title="seconds from the start"),
            y=alt.Y("channel:N", title=None),
            color=alt.Color("kind:N", title="kind"),
            tooltip=["start (s)", "channel", "kind", "duration (ms)", "reason"],
        )
    )
    st.altair_chart(chart, width="stretch")
    if len(events) > MAX_SHOWN_EVENTS:
        st.caption(f"The first {MAX_SHOWN_EVENTS} of {len(events)} events; the download has them all.")
    st.table(events.head(MAX_SHOWN_EVENTS), hide_index=True)
    st.download_button(
        "Download events (CSV)",
        events.to_csv(index=False).encode(),
        file_name=f"{Path(result.name).stem}-events.csv",
        mime="text/csv",
    )
