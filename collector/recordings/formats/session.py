"""The project's own recordings: raw frames exactly as they crossed the wire, in one HDF5 file (h5py).

``SessionWriter`` appends frames, retained statuses and annotations in chunks (resizable datasets), so a
long recording never sits in memory; ``Session`` opens a file read-only, checks it against the layout and
streams the frames back. :class:`SessionReader` is the file as a recording (``twitchwatch detect``, export):
each stream part one block of channels, labelled as the EDF+ export labels them, times from the frames'
device clocks; its replay (:class:`SessionSource`) is every frame as recorded. The layout — and what each
attribute means — is in docs/sessions.md; ``FORMAT_VERSION`` is the root attribute ``format_version``,
bumped by every incompatible change.

Anything wrong with a file raises :class:`SessionError` (a ``RecordingError``) naming the file, the HDF5
object and the attribute, field or row that is wrong.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Literal

import h5py
import numpy as np
import numpy.typing as npt

from twitchwatch.collector.continuity import continuity
from twitchwatch.collector.frames import Frame, SampleType, Unit
from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    Annotation,
    Channel,
    Chunk,
    Group,
    Recording,
    RecordingError,
    Series,
    check_chunk_seconds,
    force_signal,
    group_channels,
    infer_channel,
    named,
    sanitise,
)
from twitchwatch.collector.recordings.reader import (
    HDF5_DAMAGE,
    HDF5_MAGIC,
    RecordingReader,
    hdf5_holds,
    hdf5_sound,
)
from twitchwatch.collector.recordings.source import ReplayError, ReplaySource, ReplayStream, select_devices
from twitchwatch.collector.signals import KINDS, kind_of_unit, stream_kind
from twitchwatch.collector.status import DeviceStatus, StatusError, StreamInfo

log = logging.getLogger(__name__)

FORMAT_NAME: Final = "twitchwatch-session"
FORMAT_VERSION: Final = 1

# Buffered samples (values, all streams) that force a flush even before the caller's next periodic one.
MAX_BUFFERED_VALUES: Final = 2_000_000

_STR = h5py.string_dtype()
FRAME_DTYPE: Final = np.dtype(
    [
        ("sequence", "<u4"),
        ("t0_ns", "<i8"),
        ("first_sample", "<i8"),
        ("samples", "<u4"),
        ("received_ns", "<i8"),
    ]
)
GAP_KINDS: Final = {"lost": 1, "time_jump": 2, "restart": 3}
GapKind = Literal["lost", "time_jump", "restart"]
GAP_DTYPE: Final = np.dtype(
    [
        ("frame", "<i8"),
        ("kind", h5py.enum_dtype(GAP_KINDS, basetype="u1")),
        ("previous_sequence", "<u4"),
        ("sequence", "<u4"),
        ("missing_frames", "<u4"),
        ("expected_t0_ns", "<i8"),
        ("t0_ns", "<i8"),
    ]
)
ANNOTATION_DTYPE: Final = np.dtype(
    [
        ("onset_ns", "<i8"),
        ("duration_ns", "<i8"),
        ("category", _STR),
        ("muscle", _STR),
        ("text", _STR),
        ("data", _STR),
    ]
)
FrameOutcome = Literal["ok", "duplicate", "gap"]
EDF_LABEL_LEN: Final = 16  # labels fit an EDF header's label field


class SessionError(RecordingError):
    """A session file cannot be written or read as asked; the message names the file and what is wrong."""


class _Unreadable(SessionError):
    """The HDF5 library cannot read a part of the file (a damaged chunk), as against a part that reads but
    says something impossible."""


# ---- values ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gap:
    """A discontinuity before frame ``frame`` of a stream part (``collector.continuity``): frames lost
    (``lost``), device time jumping by more than ``CLOCK_JITTER_NS`` with no frame lost (``time_jump``), or
    the sequence starting over while time went on (``restart``, a device that rebooted)."""

    frame: int
    kind: GapKind
    previous_sequence: int
    sequence: int
    missing_frames: int
    expected_t0_ns: int
    t0_ns: int

    @property
    def time_gap_ns(self) -> int:
        """Device time missing (negative: the clock went back)."""
        return self.t0_ns - self.expected_t0_ns


@dataclass(frozen=True)
class StreamRecord:
    """One stream part in a file: a device's stream while its frame parameters stayed the same."""

    path: str  # HDF5 group
    device: str
    stream: str
    part: int
    stream_id: int
    signal: str
    unit: Unit
    sample_type: SampleType
    sample_rate: float
    scale: float
    channels: int
    muscles: tuple[str, ...]
    frames: int
    samples: int
    first_t0_ns: int
    end_ns: int  # last frame's t0 + its duration
    duplicates: int = 0

    @property
    def label(self) -> str:
        return f"{self.device}/{self.stream}" + (f"#{self.part}" if self.part else "")


@dataclass(frozen=True)
class DeviceRecord:
    name: str
    profile: str
    source: str
    session_ids: tuple[str, ...]
    status: DeviceStatus | None  # the last retained status received


# ---- writing ---------------------------------------------------------------------------------------
def _software() -> str:
    try:
        return f"twitchwatch {metadata.version('twitchwatch')}"
    except metadata.PackageNotFoundError:
        return "twitchwatch"


def _h5name(name: str) -> str:
    """Topic segments are valid HDF5 link names except ``.`` and ``..``; attributes keep the real name."""
    return name.replace(".", "%2E") if set(name) == {"."} else name


def _append(ds: h5py.Dataset, rows: npt.NDArray[Any]) -> None:
    if len(rows):
        n = ds.shape[0]
        ds.resize(n + len(rows), axis=0)
        ds[n:] = rows


class _ChunkAppender:
    """Rows appended to a compressed dataset in whole chunks only, each written once; the rows short of a
    chunk wait in memory until more come or the file is closed (``final``). A compressed chunk written
    again, as a flush of a partial chunk does, is compressed anew and may move: a crash in the middle of
    that leaves the file's index pointing at bytes half rewritten, and the whole chunk — up to a minute
    of one channel — unreadable with every read of its stream. A chunk written once is whole or absent."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds = ds
        self.rows = int(ds.chunks[0])
        self._tail: list[npt.NDArray[Any]] = []
        self._tail_rows = 0

    def add(self, rows: npt.NDArray[Any]) -> None:
        if len(rows):
            self._tail.append(rows)
            self._tail_rows += len(rows)

    def write(self, final: bool = False) -> None:
        whole = self._tail_rows if final else self._tail_rows - self._tail_rows % self.rows
        if not whole:
            return
        rows = np.concatenate(self._tail, axis=0)
        _append(self.ds, rows[:whole])
        rest = rows[whole:]
        self._tail, self._tail_rows = ([rest] if len(rest) else []), len(rest)


def _chunk_rows(rate: float, channels: int) -> int:
    """About a second of a stream's samples per chunk (a power of two, 64 rows at least): what a crash
    before the next whole chunk loses. Larger chunks compress a little better and lose more."""
    per_second = 1 << max(6, math.ceil(math.log2(max(rate, 1.0))))
    return max(64, min(per_second, 65536 // channels))


def _frame_chunk_rows(frame_ns: int) -> int:
    """About a second of a stream's frames per chunk of its frame table (a power of two, 1 to 32): what a
    crash before the next whole chunk loses. At a fixed 32 a Polar accelerometer's frames (one a
    notification, 1.4 s each at 25 Hz) lost 45 s of a recording to a crash."""
    per_second = 1e9 / max(frame_ns, 1)
    return 1 << max(0, min(5, math.floor(math.log2(max(per_second, 1.0)))))


def signal_for(unit: Unit) -> str:
    """The signal a wire unit stands for; "" for a unitless stream (device counts, a quaternion)."""
    return kind_of_unit(unit) or ""


class _PartWriter:
    """Buffers one stream part's frames and appends them to its datasets on flush."""

    def __init__(self, group: h5py.Group, device: str, stream: str, part: int, frame: Frame) -> None:
        self.group = group
        self.params = (
            frame.stream_id,
            frame.sample_type,
            frame.channels,
            frame.unit,
            frame.sample_rate,
            frame.scale,
        )
        c = frame.channels
        a = group.attrs
        a["device"], a["stream"], a["part"] = device, stream, part
        a["stream_id"] = frame.stream_id
        a["signal"] = signal_for(frame.unit)
        a["unit"], a["unit_code"] = frame.unit.symbol, int(frame.unit)
        a["sample_type"] = frame.sample_type.name.lower()
        a["sample_rate"], a["scale"] = float(np.float32(frame.sample_rate)), float(np.float32(frame.scale))
        a["channels"] = c
        a["muscles"] = np.array([""] * c, dtype=_STR)
        a["duplicates"] = 0
        rows = _chunk_rows(frame.sample_rate, c)
        group.create_dataset(
            "samples",
            shape=(0, c),
            maxshape=(None, c),
            dtype=frame.sample_type.dtype,
            chunks=(rows, c),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
        group.create_dataset(
            "frames",
            shape=(0,),
            maxshape=(None,),
            dtype=FRAME_DTYPE,
            chunks=(_frame_chunk_rows(frame.duration_ns),),
            compression="gzip",
        )
        group.create_dataset("gaps", shape=(0,), maxshape=(None,), dtype=GAP_DTYPE, chunks=(256,))
        self.frames = 0  # written + buffered
        self.samples = 0
        self.duplicates = 0
        self.last_seq = frame.sequence
        self.last_t0 = frame.t0_ns
        self.expected_t0 = frame.t0_ns
        self.buffered_values = 0
        self._raw: list[npt.NDArray[np.generic]] = []
        self._rows: list[tuple[int, int, int, int, int]] = []
        self._gaps: list[tuple[int, int, int, int, int, int, int]] = []
        self._samples_out = _ChunkAppender(group["samples"])
        self._frames_out = _ChunkAppender(group["frames"])

    def matches(self, frame: Frame) -> bool:
        return self.params == (
            frame.stream_id,
            frame.sample_type,
            frame.channels,
            frame.unit,
            frame.sample_rate,
            frame.scale,
        )

    def add(self, frame: Frame, received_ns: int) -> tuple[FrameOutcome, int]:
        """Buffer a frame; returns what it was and how many frames were lost before it."""
        result: FrameOutcome = "ok"
        missing = 0
        if self.frames:
            step = continuity(self.last_seq, self.expected_t0, frame)
            if step.step == "duplicate":
                self.duplicates += 1  # a QoS-1 redelivery or a reordered frame: already stored
                return "duplicate", 0
            if step.is_gap:
                missing = step.missing
                kind = GAP_KINDS[step.step]
                self._gaps.append(
                    (self.frames, kind, self.last_seq, frame.sequence, missing, self.expected_t0, frame.t0_ns)
                )
                result = "gap"
        self._raw.append(frame.raw)
        self.buffered_values += frame.raw.size
        self._rows.append((frame.sequence, frame.t0_ns, self.samples, frame.samples, received_ns))
        self.frames += 1
        self.samples += frame.samples
        self.last_seq, self.last_t0 = frame.sequence, frame.t0_ns
        self.expected_t0 = frame.t0_ns + frame.duration_ns
        return result, missing

    def set_muscles(self, muscles: Sequence[str]) -> None:
        self.group.attrs["muscles"] = np.array(list(muscles), dtype=_STR)

    def set_signal(self, signal: str) -> None:
        if signal:
            self.group.attrs["signal"] = signal

    def flush(self, final: bool = False) -> None:
        """What is buffered, in whole chunks (all of it when ``final``: the file is being closed)."""
        if self._raw:
            self._samples_out.add(np.concatenate(self._raw, axis=0))
            self._frames_out.add(np.array(self._rows, dtype=FRAME_DTYPE))
            self._raw.clear()
            self._rows.clear()
            self.buffered_values = 0
        self._samples_out.write(final)
        self._frames_out.write(final)
        if self._gaps:
            _append(self.group["gaps"], np.array(self._gaps, dtype=GAP_DTYPE))
            self._gaps.clear()
        self.group.attrs["duplicates"] = self.duplicates


@dataclass
class WriterCounts:
    frames: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing_frames: int = 0
    annotations: int = 0


class SessionWriter:
    """``with SessionWriter(path, user=...) as w: w.add_status(...); w.add_frame(...)``.

    Nothing reaches the file until ``flush()`` (call it every second or so) or ``close()``; a buffer larger
    than ``MAX_BUFFERED_VALUES`` flushes on its own. The root attribute ``complete`` turns true only in
    ``close()``, so a reader can tell a recording that was cut off.
    """

    def __init__(self, path: Path, *, user: str = "", broker: str = "", note: str = "") -> None:
        self.path = path
        try:
            self._file = h5py.File(path, "x")
        except FileExistsError:
            raise SessionError(f"{path}: already exists; choose another name or remove it") from None
        except OSError as exc:
            raise SessionError(f"{path}: cannot create: {exc}") from None
        a = self._file.attrs
        a["format"], a["format_version"] = FORMAT_NAME, FORMAT_VERSION
        a["software"] = _software()
        a["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        a["user"], a["broker"], a["note"] = user, broker, note
        a["complete"] = False
        self._devices = self._file.create_group("devices")
        self._annotations = self._file.create_dataset(
            "annotations", shape=(0,), maxshape=(None,), dtype=ANNOTATION_DTYPE, chunks=(1024,)
        )
        self._parts: dict[tuple[str, str], _PartWriter] = {}
        self._part_count: dict[tuple[str, str], int] = {}
        self._status: dict[str, DeviceStatus] = {}
        self._pending_annotations: list[Annotation] = []
        self.counts = WriterCounts()
        self.muscles: set[str] = set()  # named by the statuses of recorded streams
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.closed = False

    # -- input ---------------------------------------------------------------------------------------
    def _device(self, device: str) -> h5py.Group:
        name = _h5name(device)
        if name in self._devices:
            return self._devices[name]
        g = self._devices.create_group(name)
        g.attrs["device"] = device
        g.attrs["profile"], g.attrs["source"], g.attrs["status"] = "", "", ""
        g.attrs["session_ids"] = np.array([], dtype=_STR)
        return g

    def add_status(self, device: str, status: DeviceStatus) -> None:
        """The device's retained status: profile, source, session and each stream's muscles."""
        self._check_open()
        g = self._device(device)
        g.attrs["profile"], g.attrs["source"] = status.profile, status.source
        g.attrs["status"] = status.to_json().decode()
        ids = [str(s) for s in g.attrs["session_ids"]]
        if status.session_id and status.session_id not in ids:
            g.attrs["session_ids"] = np.array([*ids, status.session_id], dtype=_STR)
        self._status[device] = status
        for (dev, stream), part in self._parts.items():
            if dev == device:
                self._apply_status(part, stream, status)

    def _apply_status(self, part: _PartWriter, stream: str, status: DeviceStatus) -> None:
        info = status.streams.get(stream)
        if info is not None and len(info.channels) == part.params[2]:
            part.set_muscles(info.channels)
            part.set_signal(info.signal)
            self.muscles.update(m for m in info.channels if m)

    def add_frame(self, device: str, stream: str, frame: Frame, received_ns: int = 0) -> FrameOutcome:
        """Append one frame; a change of stream id, sample type, channels, unit, rate or scale starts a new
        part."""
        self._check_open()
        key = (device, stream)
        part = self._parts.get(key)
        if part is None or not part.matches(frame):
            if part is not None:
                part.flush(final=True)  # it gets no more rows: its last partial chunks are written now
            n = self._part_count.get(key, 0)
            self._part_count[key] = n + 1
            g = self._device(device)
            name = _h5name(stream) + (f"#{n}" if n else "")
            part = _PartWriter(g.create_group(name), device, stream, n, frame)
            self._parts[key] = part
            status = self._status.get(device)
            if status is not None:
                self._apply_status(part, stream, status)
        result, missing = part.add(frame, received_ns)
        if result == "gap":
            self.counts.gaps += 1
            self.counts.missing_frames += missing
        if result == "duplicate":
            self.counts.duplicates += 1
            return result
        self.counts.frames += 1
        end = frame.t0_ns + frame.duration_ns
        self.start_ns = frame.t0_ns if self.start_ns is None else min(self.start_ns, frame.t0_ns)
        self.end_ns = end if self.end_ns is None else max(self.end_ns, end)
        if sum(p.buffered_values for p in self._parts.values()) > MAX_BUFFERED_VALUES:
            self.flush()
        return result

    def add_annotation(self, annotation: Annotation) -> None:
        self._check_open()
        self._pending_annotations.append(annotation)
        self.counts.annotations += 1

    def set_attrs(self, **values: int | str) -> None:
        """Root attributes the caller owns (e.g. the recorder's counters)."""
        self._check_open()
        for k, v in values.items():
            self._file.attrs[k] = v

    # -- output --------------------------------------------------------------------------------------
    def flush(self, final: bool = False) -> None:
        self._check_open()
        for part in self._parts.values():
            part.flush(final)
        if self._pending_annotations:
            rows = [
                (a.onset_ns, a.duration_ns, a.category, a.muscle, a.text, a.data)
                for a in self._pending_annotations
            ]
            _append(self._annotations, np.array(rows, dtype=ANNOTATION_DTYPE))
            self._pending_annotations.clear()
        a = self._file.attrs
        a["frames"], a["duplicates"] = self.counts.frames, self.counts.duplicates
        a["gaps"], a["missing_frames"] = self.counts.gaps, self.counts.missing_frames
        if self.start_ns is not None and self.end_ns is not None:
            a["start_ns"], a["end_ns"] = self.start_ns, self.end_ns
        self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush(final=True)
            self._file.attrs["complete"] = True
        finally:
            self.closed = True
            self._file.close()

    def _check_open(self) -> None:
        if self.closed:
            raise SessionError(f"{self.path}: session already closed")

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---- reading ---------------------------------------------------------------------------------------
_PART_ATTRS: Final[dict[str, type]] = {
    "device": str,
    "stream": str,
    "part": int,
    "stream_id": int,
    "signal": str,
    "unit_code": int,
    "sample_type": str,
    "sample_rate": float,
    "scale": float,
    "channels": int,
}


def _fields(dtype: np.dtype[Any]) -> tuple[str, ...]:
    return tuple(dtype.names or ())


class Session:
    """A session file opened read-only and checked: ``with Session(path) as s: for f in s.frames(...)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise SessionError(f"{path}: no such file")
        hdf5_sound(path, SessionError)
        try:
            self._file = h5py.File(path, "r")
        except HDF5_DAMAGE as exc:
            raise SessionError(f"{path}: not a readable HDF5 file ({_h5_reason(exc)})") from None
        self._at = "root"  # the object being checked: what a damaged file's error names
        try:
            self._check()
        except SessionError:
            self._file.close()
            raise
        except HDF5_DAMAGE as exc:  # the HDF5 library's own errors on a damaged file, not a layout problem
            self._file.close()
            raise self._fail(self._at, f"damaged ({_h5_reason(exc)})") from None
        except BaseException:
            self._file.close()
            raise

    def _fail(self, where: str, problem: str) -> SessionError:
        return SessionError(f"{self.path}: {where}: {problem}")

    def _attr(self, obj: h5py.HLObject, name: str, kind: type) -> Any:
        where = f"{obj.name} attribute {name!r}"
        self._at = where
        if name not in obj.attrs:
            raise self._fail(where, "missing")
        value = obj.attrs[name]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if kind is str:
            if not isinstance(value, str):
                raise self._fail(where, f"{value!r} is not text")
            return value
        if kind is int:
            if not isinstance(value, int | np.integer) or isinstance(value, bool | np.bool_):
                raise self._fail(where, f"{value!r} is not an integer")
            return int(value)
        if kind is float:
            if not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(
                float(value)
            ):
                raise self._fail(where, f"{value!r} is not a finite number")
            return float(value)
        if kind is bool:
            if not isinstance(value, bool | np.bool_):
                raise self._fail(where, f"{value!r} is not a boolean")
            return bool(value)
        raise TypeError(kind)

    def _dataset(self, group: h5py.Group, name: str, dtype: np.dtype[Any] | None) -> h5py.Dataset:
        where = f"{group.name.rstrip('/')}/{name}"
        self._at = where
        obj = group.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise self._fail(where, "missing" if obj is None else "is not a dataset")
        if dtype is not None:
            if _fields(obj.dtype) != _fields(dtype):
                raise self._fail(where, f"fields {list(_fields(obj.dtype))}, expected {list(_fields(dtype))}")
            if obj.ndim != 1:
                raise self._fail(where, f"{obj.ndim}-dimensional, expected 1")
        return obj

    def _check(self) -> None:
        f = self._file
        fmt = f.attrs.get("format")
        if fmt is None:
            raise self._fail("root", "not a twitchwatch session (no 'format' attribute)")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != FORMAT_NAME:
            raise self._fail("root attribute 'format'", f"{fmt!r}, expected {FORMAT_NAME!r}")
        self.format_version = self._attr(f, "format_version", int)
        if self.format_version != FORMAT_VERSION:
            newer = " (written by a newer twitchwatch)" if self.format_version > FORMAT_VERSION else ""
            raise self._fail(
                "root attribute 'format_version'",
                f"{self.format_version} is not supported{newer}; this twitchwatch reads {FORMAT_VERSION}",
            )
        self.user = self._attr(f, "user", str)
        self.software = self._attr(f, "software", str)
        self.created = self._attr(f, "created", str)
        self.broker = self._attr(f, "broker", str)
        self.complete = self._attr(f, "complete", bool)
        devices = f.get("devices")
        if not isinstance(devices, h5py.Group):
            raise self._fail("/devices", "missing" if devices is None else "is not a group")
        self._annotations = self._dataset(f, "annotations", ANNOTATION_DTYPE)
        self.devices: dict[str, DeviceRecord] = {}
        parts: list[StreamRecord] = []
        self._at = "/devices"
        for name in devices:
            self._at = f"/devices/{name}"
            g = devices.get(name)  # None for a link to nothing
            if not isinstance(g, h5py.Group):
                raise self._fail(self._at, "is not a group")
            self.devices[self._attr(g, "device", str)] = self._device_record(g)
            self._at = g.name
            for part in g:
                self._at = f"{g.name}/{part}"
                record = self._part(g.get(part), self._at)
                if record is not None:
                    parts.append(record)
        parts.sort(key=lambda p: (p.first_t0_ns, p.device, p.stream, p.part))
        self.streams: tuple[StreamRecord, ...] = tuple(parts)

    def _device_record(self, g: h5py.Group) -> DeviceRecord:
        status_text = self._attr(g, "status", str)
        status = None
        if status_text:
            try:
                status = DeviceStatus.from_json(status_text)
            except StatusError as exc:
                raise self._fail(f"{g.name} attribute 'status'", str(exc)) from None
        ids = g.attrs.get("session_ids", [])
        return DeviceRecord(
            self._attr(g, "device", str),
            self._attr(g, "profile", str),
            self._attr(g, "source", str),
            tuple(str(i.decode() if isinstance(i, bytes) else i) for i in ids),
            status,
        )

    def _part(self, g: h5py.HLObject | None, where: str) -> StreamRecord | None:
        """A stream part, checked; None for a part of a recording cut off (``complete`` false) before any
        of its frames reached the file."""
        if not isinstance(g, h5py.Group):
            raise self._fail(where, "is not a group (a stream part)")
        v = {name: self._attr(g, name, kind) for name, kind in _PART_ATTRS.items()}
        try:
            unit = Unit(v["unit_code"])
        except ValueError:
            raise self._fail(f"{g.name} attribute 'unit_code'", f"unknown unit {v['unit_code']}") from None
        try:
            sample_type = SampleType[v["sample_type"].upper()]
        except KeyError:
            raise self._fail(f"{g.name} attribute 'sample_type'", f"unknown {v['sample_type']!r}") from None
        if not v["sample_rate"] > 0:
            raise self._fail(f"{g.name} attribute 'sample_rate'", f"{v['sample_rate']} is not > 0")
        if v["scale"] == 0:
            raise self._fail(f"{g.name} attribute 'scale'", "is 0")
        c = v["channels"]
        if not 1 <= c <= 255:
            raise self._fail(f"{g.name} attribute 'channels'", f"{c} is not 1..255")
        muscles = tuple(str(m.decode() if isinstance(m, bytes) else m) for m in g.attrs.get("muscles", []))
        if len(muscles) != c:
            raise self._fail(f"{g.name} attribute 'muscles'", f"{len(muscles)} names for {c} channels")
        samples = self._dataset(g, "samples", None)
        if samples.ndim != 2 or samples.shape[1] != c or samples.dtype != sample_type.dtype:
            raise self._fail(
                samples.name,
                f"shape {samples.shape} of {samples.dtype}, expected (n, {c}) of {sample_type.dtype} "
                f"({v['sample_type']})",
            )
        frames = self._dataset(g, "frames", FRAME_DTYPE)
        self._dataset(g, "gaps", GAP_DTYPE)
        n = frames.shape[0]
        if not self.complete:
            n = self._whole_frames(frames, samples.shape[0])
            if n == 0:
                return None
        if n == 0:
            raise self._fail(frames.name, "no frames (a stream part starts with its first frame)")
        first, last = self._read(frames, slice(0, 1))[0], self._read(frames, slice(n - 1, n))[0]
        if int(first["first_sample"]) != 0:
            raise self._fail(f"{frames.name} row 0", f"first_sample is {first['first_sample']}, expected 0")
        end = int(last["first_sample"]) + int(last["samples"])
        if end != samples.shape[0] and (self.complete or end > samples.shape[0]):
            raise self._fail(
                f"{frames.name} row {n - 1}",
                f"frames describe {end} samples but {samples.name} holds {samples.shape[0]} (truncated?)",
            )
        rate = v["sample_rate"]
        return StreamRecord(
            g.name,
            v["device"],
            v["stream"],
            v["part"],
            v["stream_id"],
            v["signal"],
            unit,
            sample_type,
            rate,
            v["scale"],
            c,
            muscles,
            n,
            end,
            int(first["t0_ns"]),
            int(last["t0_ns"]) + round(int(last["samples"]) * 1e9 / rate),
            int(g.attrs.get("duplicates", 0)),
        )

    def _whole_frames(self, frames: h5py.Dataset, samples: int) -> int:
        """In a recording cut off, the frames whose samples all reached the file: the writer writes the
        frame table and the samples in whole chunks each, so either may hold rows the other does not yet
        (the samples past the last such frame are not read)."""
        n = frames.shape[0]
        if n == 0:
            return 0
        ends = self._read(frames, slice(0, n))
        stops = ends["first_sample"].astype(np.int64) + ends["samples"].astype(np.int64)
        return int(np.searchsorted(stops, samples, side="right"))

    # -- contents ------------------------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        return min((s.first_t0_ns for s in self.streams), default=0)

    @property
    def end_ns(self) -> int:
        return max((s.end_ns for s in self.streams), default=0)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def _read(self, ds: h5py.Dataset, sl: slice) -> npt.NDArray[Any]:
        try:
            return np.asarray(ds[sl])
        except HDF5_DAMAGE as exc:
            where, problem = f"{ds.name} rows {sl.start}–{sl.stop}", f"unreadable ({_h5_reason(exc)})"
            raise _Unreadable(f"{self.path}: {where}: {problem}") from None

    def annotations(self) -> list[Annotation]:
        rows = self._read(self._annotations, slice(0, self._annotations.shape[0]))
        out = []
        for i, r in enumerate(rows):
            try:
                out.append(
                    Annotation(
                        int(r["onset_ns"]),
                        int(r["duration_ns"]),
                        _text(r["category"]),  # type: ignore[arg-type]
                        _text(r["text"]),
                        _text(r["muscle"]),
                        _text(r["data"]),
                    )
                )
            except ValueError as exc:
                raise self._fail(f"/annotations row {i}", str(exc)) from None
        return out

    def gaps(self, stream: StreamRecord) -> list[Gap]:
        ds = self._part_dataset(stream, "gaps")
        names = {v: k for k, v in GAP_KINDS.items()}
        out = []
        for i, r in enumerate(self._read(ds, slice(0, ds.shape[0]))):
            kind = names.get(int(r["kind"]))
            if kind is not None and int(r["frame"]) >= stream.frames and not self.complete:
                # A recording cut off: the gaps table is written at every flush, the frame table in whole
                # chunks, so a gap can fall among frames that never reached the file. They are gone, and
                # so is the gap before them.
                continue
            if kind is None or not 0 <= int(r["frame"]) < stream.frames:
                raise self._fail(
                    f"{ds.name} row {i}", f"kind {int(r['kind'])} / frame {int(r['frame'])} invalid"
                )
            out.append(
                Gap(
                    int(r["frame"]),
                    kind,  # type: ignore[arg-type]
                    int(r["previous_sequence"]),
                    int(r["sequence"]),
                    int(r["missing_frames"]),
                    int(r["expected_t0_ns"]),
                    int(r["t0_ns"]),
                )
            )
        return out

    def frame_table(self, stream: StreamRecord, start: int = 0, stop: int | None = None) -> npt.NDArray[Any]:
        ds = self._part_dataset(stream, "frames")
        return self._read(ds, slice(start, stream.frames if stop is None else stop))

    def frame_times(self, stream: StreamRecord) -> npt.NDArray[np.int64]:
        ds = self._part_dataset(stream, "frames")
        try:
            return np.asarray(ds.fields("t0_ns")[:], dtype=np.int64)
        except HDF5_DAMAGE as exc:
            raise self._fail(ds.name, f"unreadable ({_h5_reason(exc)})") from None

    def samples(self, stream: StreamRecord, start: int, stop: int) -> npt.NDArray[np.generic]:
        return self._read(self._part_dataset(stream, "samples"), slice(start, stop))

    def _part_dataset(self, stream: StreamRecord, name: str) -> h5py.Dataset:
        try:
            ds = self._file[stream.path][name]
        except HDF5_DAMAGE as exc:
            raise self._fail(f"{stream.path}/{name}", f"unreadable ({_h5_reason(exc)})") from None
        if not isinstance(ds, h5py.Dataset):
            raise self._fail(f"{stream.path}/{name}", "is not a dataset")
        return ds

    def frames(self, stream: StreamRecord, start: int = 0, block: int = 2048) -> Iterator[Frame]:
        """The part's frames from index ``start``, exactly as received; reads ``block`` frames at a time.

        A block the file cannot give whole (a damaged chunk of its samples or of its frame table) is read
        again frame by frame: the frames that read are given, the others skipped with a warning — their
        sequence numbers are missing, so a worker sees the skip as frames lost. Failing at the first, one
        damaged chunk 30 s into a session cost the replay everything after it."""
        i = start
        expected: int | None = None
        while i < stream.frames:
            stop = min(i + block, stream.frames)
            try:
                frames = self._block(stream, i, stop, expected)
            except _Unreadable as exc:
                frames = list(self._salvaged(stream, i, stop, exc))
                expected = None
            else:
                expected = frames[-1][0] + frames[-1][1].samples
            yield from (f for _, f in frames)
            i = stop

    def _block(
        self, stream: StreamRecord, i: int, stop: int, expected: int | None
    ) -> list[tuple[int, Frame]]:
        """Frames ``i`` to ``stop`` with their first sample index; raises ``SessionError``."""
        rows = self.frame_table(stream, i, stop)
        a = int(rows[0]["first_sample"])
        b = int(rows[-1]["first_sample"]) + int(rows[-1]["samples"])
        offsets = rows["first_sample"].astype(np.int64)
        counts = rows["samples"].astype(np.int64)
        bad = np.flatnonzero((counts <= 0) | (np.diff(offsets, append=b) != counts))
        if (expected is not None and a != expected) or bad.size or b > stream.samples:
            row = i + (int(bad[0]) if bad.size else 0)
            raise self._fail(
                f"{stream.path}/frames row {row}",
                "first_sample/samples do not follow on from the row before",
            )
        raw = self.samples(stream, a, b)
        return [
            (
                int(offsets[k]),
                self._frame(stream, r, raw[int(offsets[k]) - a : int(offsets[k]) - a + int(counts[k])]),
            )
            for k, r in enumerate(rows)
        ]

    def _salvaged(
        self, stream: StreamRecord, i: int, stop: int, cause: SessionError
    ) -> Iterator[tuple[int, Frame]]:
        skipped: list[int] = []
        for k in range(i, stop):
            try:
                yield from self._block(stream, k, k + 1, None)
            except _Unreadable:
                skipped.append(k)
        if skipped:
            log.warning(
                "%s: %d of frames %d–%d of %s unreadable (%s): skipped, the rest read",
                self.path,
                len(skipped),
                skipped[0],
                skipped[-1],
                stream.label,
                cause,
            )

    @staticmethod
    def _frame(stream: StreamRecord, row: Any, raw: npt.NDArray[np.generic]) -> Frame:
        return Frame(
            stream.stream_id,
            int(row["sequence"]),
            int(row["t0_ns"]),
            stream.sample_rate,
            stream.scale,
            stream.unit,
            stream.sample_type,
            raw,
        )

    def timeline(
        self, start_ns: int | None = None, parts: Sequence[StreamRecord] | None = None
    ) -> Iterator[tuple[StreamRecord, Frame]]:
        """Every part's frames (or those of ``parts``) merged by device time, from the frame containing
        ``start_ns`` on."""
        iters = []
        for k, s in enumerate(self.streams if parts is None else parts):
            first = 0
            if start_ns is not None:
                if s.end_ns <= start_ns:
                    continue
                first = max(0, int(np.searchsorted(self.frame_times(s), start_ns, side="right")) - 1)
            iters.append(self._keyed(k, s, first))
        for _t, _k, s, f in heapq.merge(*iters, key=lambda x: (x[0], x[1])):
            yield s, f

    def _keyed(self, k: int, s: StreamRecord, first: int) -> Iterator[tuple[int, int, StreamRecord, Frame]]:
        for f in self.frames(s, first):
            yield f.t0_ns, k, s, f

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _h5_reason(exc: Exception) -> str:
    text = str(exc).removeprefix("Unable to synchronously open file ").removeprefix("Unable to open file ")
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


# ---- the session as a recording ------------------------------------------------------------------------
def channel_labels(s: StreamRecord) -> list[str]:
    """``EMG calf_left``, ``ACC calf_left X``: what ``twitchwatch detect`` reads type, muscle and axis
    from (the EDF+ export writes them)."""
    kind = stream_kind(s.signal)
    word = KINDS[kind].word if kind is not None else (s.signal or s.stream).upper()[:3]
    axes = "XYZ" if s.signal == "acc" and s.channels <= 3 else None
    out = []
    for i, muscle in enumerate(s.muscles):
        name = muscle or s.device
        suffix = f" {axes[i]}" if axes and s.channels > 1 else (f" {i + 1}" if s.channels > 1 else "")
        room = EDF_LABEL_LEN - len(word) - 1 - len(suffix)
        out.append(f"{word} {name[:room]}{suffix}")
    return out


_COUNTS_SIGNALS: Final = ("emg", "acc")
FRAME_SAMPLES: Final = 50  # per frame when a session is written from samples


class SessionReader(RecordingReader):
    """The project's own HDF5 session files (``twitchwatch record``). Each stream part is its own block of
    channels, labelled as ``twitchwatch export`` labels it (``EMG calf_left``, ``ACC calf_left X``), so
    detecting on a session and on its EDF+ export name the same lanes. Times come from the frames' device
    clocks: an event after a lost frame or a clock jump is reported when it happened, not shifted by the
    missing span (the detector itself sees the samples back to back, as the worker does live)."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".h5", ".hdf5")
    MAGIC: ClassVar[tuple[bytes, ...]] = (HDF5_MAGIC,)
    NOUN: ClassVar[str] = "a twitchwatch session"
    DESCRIPTION: ClassVar[str] = "a twitchwatch session (HDF5)"
    DEVICE_PREFIX: ClassVar[str] = "session"

    @classmethod
    def claims_file(cls, path: Path) -> bool:
        """An HDF5 file whose root says it is a session (its ``format`` attribute)."""
        return hdf5_holds(path, lambda root: "format" in root.attrs)

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is not None:
            raise RecordingError(f"{path}: a session carries each stream's rate (--rate is for CSV)")
        self.session = Session(path)
        try:
            self.recording = self._describe(path)
        except BaseException:
            self.session.close()
            raise

    def _describe(self, path: Path) -> Recording:
        s = self.session
        channels: list[Channel] = []
        self._parts: dict[int, StreamRecord] = {}
        self._frame_times: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        notes: list[str] = []
        for part in s.streams:
            for label in channel_labels(part):
                index = len(channels)
                self._parts[index] = part
                channels.append(self._channel(index, label, part))
            gaps = s.gaps(part)
            lost = sum(g.missing_frames for g in gaps)
            jumps = sum(1 for g in gaps if g.kind != "lost")
            if lost or jumps:
                notes.append(
                    f"{part.label}: {lost} frame(s) lost, {jumps} clock jump(s) or restart(s); "
                    "event times follow the device clock across them"
                )
        return Recording(
            path,
            "twitchwatch session",
            tuple(channels),
            s.duration_s,
            tuple(notes),
            self._seconds,
            s.start_ns if s.streams else None,
            tuple(s.annotations()),
        )

    @staticmethod
    def _channel(index: int, label: str, part: StreamRecord) -> Channel:
        rate = part.sample_rate
        if kind_of_unit(part.unit) is not None:
            ch = infer_channel(index, label, part.unit.symbol, rate)
        elif part.unit is Unit.UNITLESS and part.signal == "orientation":
            ch = replace(infer_channel(index, label, "", rate), signal="orientation")
            ch = named(replace(ch, note=f"{part.label}: orientation, values taken as a unit quaternion"))
        elif part.unit is Unit.UNITLESS and (kind := stream_kind(part.signal)) in _COUNTS_SIGNALS:
            # Myo-class EMG arrives in device units: the detector's thresholds are relative to the
            # noise floor it learns, so it runs; absolute limits (artifacts) do not apply as designed.
            assert kind is not None
            ch = force_signal(infer_channel(index, label, "", rate), kind, named_by_user=True)
            ch = replace(ch, note=f"{part.label}: no physical unit (device counts): values used as they are")
        else:
            ch = replace(
                infer_channel(index, label, part.unit.symbol, rate),
                signal=None,
                note=f"{part.label}: a {part.signal or part.unit.symbol} stream, not EMG, acceleration, "
                "angular rate or orientation",
            )
        return replace(ch, block=part.path)

    def _seconds(self, group: Group, samples: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        part = self._parts[group.channels[0].index]
        first, t0 = self._frames_of(part)
        k = np.clip(np.searchsorted(first, samples, side="right") - 1, 0, len(first) - 1)
        offset_ns = (samples - first[k]) * (1e9 / part.sample_rate)
        return ((t0[k] - self.session.start_ns) + offset_ns) / 1e9

    def _frames_of(self, part: StreamRecord) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Each frame's first sample and device time, read once per part (16 bytes a frame) rather than
        on every chunk that releases events."""
        cached = self._frame_times.get(part.path)
        if cached is None:
            frames = self.session.frame_table(part)
            cached = (frames["first_sample"].astype(np.int64), frames["t0_ns"].astype(np.int64))
            self._frame_times[part.path] = cached
        return cached

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        check_chunk_seconds(chunk_seconds)
        sizes = [g.chunk_samples(chunk_seconds) for g in groups]
        parts = [self._parts[g.channels[0].index] for g in groups]
        columns = [self._columns(g) for g in groups]
        step = 0
        while any(step * n < part.samples for n, part in zip(sizes, parts, strict=True)):
            for gi, group in enumerate(groups):
                start = step * sizes[gi]
                stop = min(start + sizes[gi], parts[gi].samples)
                if stop <= start:
                    continue
                raw = self.session.samples(parts[gi], start, stop)
                data = raw[:, columns[gi]].astype(np.float64) * float(np.float32(parts[gi].scale))
                data *= np.array([c.scale for c in group.channels])
                yield Chunk(gi, start, data, group.rate)
            step += 1

    def _columns(self, group: Group) -> list[int]:
        """Each channel's column in its part's sample table (channels were numbered part by part)."""
        part = self._parts[group.channels[0].index]
        first = min(i for i, p in self._parts.items() if p is part)
        return [c.index - first for c in group.channels]

    def replay_source(self, devices: Sequence[str]) -> SessionSource:
        return SessionSource(self.session, devices)

    @classmethod
    def write(
        cls, path: Path, series: Sequence[Series], start_ns: int, annotations: Sequence[Annotation] = ()
    ) -> Path:
        """One device (named after the file) with a stream per sensor — each EMG channel, each
        accelerometer with its axes — in float32 frames of ``FRAME_SAMPLES``, its muscles in the status."""
        device = sanitise(path.stem)
        channels = [
            # Each EMG channel its own stream, so its label reads back as written ("EMG calf_left").
            replace(
                infer_channel(i, s.label, KINDS[s.kind].dimension, s.rate), block=s.label * (s.kind == "emg")
            )
            for i, s in enumerate(series)
        ]
        groups = group_channels(channels)
        names: list[str] = []
        for g in groups:
            n = sum(1 for other in names if other.rstrip("0123456789") == g.signal)
            names.append(g.signal + (str(n + 1) if n else ""))
        infos = {
            name: StreamInfo(k, g.signal, g.rate, tuple(c.muscle for c in g.channels))
            for k, (name, g) in enumerate(zip(names, groups, strict=True))
        }
        with SessionWriter(path, note="written from samples") as w:
            w.add_status(device, DeviceStatus("online", "recording", "live", "", None, infos))
            for k, (name, g) in enumerate(zip(names, groups, strict=True)):
                values = np.stack([series[c.index].values for c in g.channels], axis=1)
                for seq, at in enumerate(range(0, len(values), FRAME_SAMPLES)):
                    raw = np.ascontiguousarray(values[at : at + FRAME_SAMPLES], dtype=np.float32)
                    t0 = start_ns + round(at * 1e9 / g.rate)
                    unit = KINDS[g.signal].unit
                    w.add_frame(device, name, Frame(k, seq, t0, g.rate, 1.0, unit, SampleType.FLOAT32, raw))
            for a in annotations:
                w.add_annotation(a)
        return path

    def close(self) -> None:
        self.session.close()


class SessionSource(ReplaySource):
    """A recorded session: every frame as recorded. Parts of one stream (a rate or scale change) replay in
    turn under the stream's name."""

    def __init__(self, session: Session, devices: Sequence[str] = ()) -> None:
        self.session = session
        if not session.streams:
            raise ReplayError(f"{session.path}: the session holds no frames")
        recorded = list(dict.fromkeys(s.device for s in session.streams))
        names = select_devices(recorded, devices)
        self._parts: list[StreamRecord] = [s for s in session.streams if s.device in names]
        index: dict[tuple[str, str], int] = {}
        streams: list[ReplayStream] = []
        for p in self._parts:
            if (p.device, p.stream) in index:
                continue
            index[(p.device, p.stream)] = len(streams)
            dev = session.devices.get(p.device)
            keys = tuple((f"{p.device}.{p.stream}.{i}", f"{p.stream}.{i}") for i in range(p.channels))
            streams.append(
                ReplayStream(
                    names[p.device],
                    p.stream,
                    p.stream_id,
                    p.signal,
                    p.unit,
                    p.sample_rate,
                    p.muscles,
                    keys,
                    (dev.profile if dev and dev.profile else "replay"),
                )
            )
        self._index = {p.path: index[(p.device, p.stream)] for p in self._parts}
        self.streams = tuple(streams)
        self.start_ns = min(p.first_t0_ns for p in self._parts)
        self.end_ns = max(p.end_ns for p in self._parts)
        self.description = f"{session.path.name}: session of {len(names)} device(s)"
        if not session.complete:
            log.warning("%s was not closed cleanly: it ends where the recorder last flushed", session.path)

    def frames(self, from_ns: int) -> Iterator[tuple[int, Frame]]:
        for part, frame in self.session.timeline(from_ns, self._parts):
            yield self._index[part.path], frame

    def close(self) -> None:
        self.session.close()
