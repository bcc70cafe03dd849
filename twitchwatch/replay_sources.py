"""What ``twitchwatch replay`` can play: a twitchwatch HDF5 session, or an EDF/EDF+/BDF/BDF+ file.

This is composition-root wiring: the collector's replay engine is generic (frames from a session, or sample
chunks plus channel metadata), and the EDF side reuses the readers of ``twitchwatch detect``
(``processing.recordings``) — the same channel inference (type and muscle from the label and physical
dimension, an accelerometer's axes as one stream), the same header checks, the same streaming.

Files are told apart by their first bytes, not their names.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from collector.frames import Unit
from collector.replay import ChunkSource, ReplayError, ReplaySource, ReplayStream, SampleChunk, SessionSource
from collector.session import Session
from collector.topics import TopicError, check_segment
from processing.recordings import EdfReader, RecordingError, plan_detection, sanitise

log = logging.getLogger(__name__)

HDF5_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
# Each detector group's stream unit; gyroscope and orientation groups replay as the wearables send them.
_UNITS: Final[dict[str, Unit]] = {
    "emg": Unit.MICROVOLT,
    "acc": Unit.G,
    "gyro": Unit.DEG_PER_S,
    "orientation": Unit.UNITLESS,
}
_TAL_ONSET: Final = re.compile(rb"^([+-]\d+(?:\.\d+)?)\x14\x14")


def open_source(path: Path, devices: Sequence[str] = (), muscle_map: Sequence[str] = ()) -> ReplaySource:
    """The replay source for ``path``; ``devices`` as ``--device`` gives them, ``muscle_map`` as
    ``--muscle-map``. Raises a ``ValueError`` (SessionError, RecordingError, ReplayError) naming what is
    wrong."""
    if not path.is_file():
        raise ReplayError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(8)
    source: ReplaySource
    if head == HDF5_SIGNATURE:
        source = SessionSource(Session(path), devices)
    elif head in (b"0       ", b"\xffBIOSEMI"):
        source = edf_source(path, devices)
    else:
        raise ReplayError(f"{path}: neither a twitchwatch session (HDF5) nor an EDF/EDF+/BDF/BDF+ file")
    try:
        source.map_muscles(muscle_map)
    except BaseException:
        source.close()
        raise
    return source


def edf_source(path: Path, devices: Sequence[str] = ()) -> ChunkSource:
    """One device (``--device NAME``, default ``edf-<file name>``) with a stream per detector group: the
    EMG channels of one rate as ``emg`` (``emg2``, … for further rates), each accelerometer as ``acc``
    (``acc2``, …), each gyroscope as ``gyro`` and orientation as ``orientation``. Other channels (annotations,
    temperature, …) are left out, with a log line."""
    if len(devices) > 1:
        raise ReplayError("--device: an EDF file is one device; give one name")
    name = devices[0] if devices else f"edf-{sanitise(path.stem)}"[:64]
    try:
        check_segment(name, "--device")
    except TopicError as exc:
        raise ReplayError(str(exc)) from None
    reader = EdfReader(path)
    try:
        rec = reader.recording
        plan = plan_detection(rec)
        for c in plan.skipped:
            log.info("%s: channel %s not replayed: %s", path.name, c.display, c.note)
        streams = []
        seen: dict[str, int] = {}
        for gi, g in enumerate(plan.groups):
            seen[g.signal] = seen.get(g.signal, 0) + 1
            stream = g.signal + (str(seen[g.signal]) if seen[g.signal] > 1 else "")
            keys = tuple((c.label, str(c.index)) for c in g.channels)
            muscles = tuple(c.muscle for c in g.channels)
            streams.append(
                ReplayStream(name, stream, gi, g.signal, _UNITS[g.signal], g.rate, muscles, keys, "edf")
            )
        start_ns = edf_start_ns(path)
    except BaseException:
        reader.close()
        raise

    def chunks() -> Iterator[SampleChunk]:
        for c in reader.chunks(plan.groups, 1.0):
            yield SampleChunk(c.group, c.start, c.data)

    return ChunkSource(
        streams,
        chunks,
        start_ns,
        rec.duration_s,
        f"{path.name} ({rec.format}, {sum(len(g.channels) for g in plan.groups)} channel(s)) as {name}",
        reader.close,
    )


def edf_start_ns(path: Path) -> int:
    """The recording's start in ns since the Unix epoch: the header's date and time (local time, as the
    standard says), plus — for EDF+/BDF+ — the subsecond in the first data record's time-keeping annotation.
    (pyedflib's ``getStartdatetime`` scales that subsecond wrongly, hence this.) The header has been checked
    by ``processing.recordings`` before this runs."""
    with path.open("rb") as f:
        head = f.read(256)
        ns = int(head[252:256])
        signal_header = f.read(256 * ns)
    try:
        day, month, yy = (int(x) for x in head[168:176].decode("ascii").split("."))
        hour, minute, second = (int(x) for x in head[176:184].decode("ascii").split("."))
        year = 1900 + yy if yy >= 85 else 2000 + yy
        m = re.search(rb"Startdate \d{2}-[A-Z]{3}-(\d{4})", head[88:168])
        if m:  # EDF+ writes the four-digit year here (needed after 2084)
            year = int(m.group(1))
        start = dt.datetime(year, month, day, hour, minute, second).astimezone()
    except ValueError as exc:
        raise RecordingError(f"{path}: header bytes 168–183 (start date/time): {exc}") from None
    whole = round(start.timestamp()) * 1_000_000_000
    labels = [signal_header[16 * i : 16 * i + 16].decode("ascii", "replace").strip() for i in range(ns)]
    annotation = next(
        (i for i, label in enumerate(labels) if label in ("EDF Annotations", "BDF Annotations")), None
    )
    if annotation is None:
        return whole
    width = 3 if head[0] == 0xFF else 2
    spr_at = ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
    spr = [int(signal_header[spr_at + 8 * i : spr_at + 8 * i + 8]) for i in range(ns)]
    with path.open("rb") as f:
        f.seek(256 * (ns + 1) + width * sum(spr[:annotation]))
        tal = f.read(width * spr[annotation])
    m = _TAL_ONSET.match(tal)
    if m is None:
        return whole
    try:
        return whole + int(Decimal(m.group(1).decode()) * 1_000_000_000)
    except InvalidOperation:
        return whole
