"""Recorded sessions: raw frames exactly as they crossed the wire, in one HDF5 file (h5py).

``SessionWriter`` appends frames, retained statuses and annotations in chunks (resizable datasets), so a
long recording never sits in memory; ``Session`` opens a file read-only, checks it against the layout and
streams the frames back; ``export_edf`` writes EDF+/BDF+. The layout — and what each attribute means — is in
docs/sessions.md; ``FORMAT_VERSION`` is the root attribute ``format_version``, bumped by every incompatible
change.

Anything wrong with a file raises :class:`SessionError` (a ``ValueError``) naming the file, the HDF5 object
and the attribute, field or row that is wrong.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import h5py
import numpy as np
import numpy.typing as npt

from collector.frames import Frame, SampleType, Unit, sequence_gap
from collector.status import DeviceStatus, StatusError

FORMAT_NAME: Final = "twitchwatch-session"
FORMAT_VERSION: Final = 1

# Device clocks jitter; a frame that starts within this of where the previous one ended is contiguous.
TIME_TOLERANCE_NS: Final = 50_000_000
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
Category = Literal["truth", "marker"]
FrameOutcome = Literal["ok", "duplicate", "gap"]
_SIGNALS: Final = {Unit.MICROVOLT: "emg", Unit.G: "acc", Unit.DEG_PER_S: "gyro"}


class SessionError(ValueError):
    """A session file cannot be written or read as asked; the message names the file and what is wrong."""


# ---- values ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Annotation:
    """Ground truth (``truth``: ``text`` is the event kind) or a user's marker (``marker``: ``text`` is the
    note).
    ``data`` is JSON with anything else (truth: amplitude, unit, detail)."""

    onset_ns: int
    duration_ns: int
    category: Category
    text: str
    muscle: str = ""
    data: str = ""

    def __post_init__(self) -> None:
        if self.category not in ("truth", "marker"):
            raise ValueError(f"annotation category must be 'truth' or 'marker', not {self.category!r}")
        if self.duration_ns < 0:
            raise ValueError(f"annotation duration {self.duration_ns} ns is negative")


@dataclass(frozen=True)
class Gap:
    """A discontinuity before frame ``frame`` of a stream part: frames lost (``lost``), device time jumping by
    more than ``TIME_TOLERANCE_NS`` with no frame lost (``time_jump``), or the sequence starting over while
    time went on (``restart``, a device that rebooted)."""

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


def signal_for(unit: Unit) -> str:
    return _SIGNALS.get(unit, "")


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
        rows = max(1024, 65536 // c)
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
            "frames", shape=(0,), maxshape=(None,), dtype=FRAME_DTYPE, chunks=(4096,), compression="gzip"
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
            gap = sequence_gap(self.last_seq, frame.sequence)
            jump = frame.t0_ns - self.expected_t0
            kind = 0
            if gap < 0 and frame.t0_ns <= self.last_t0:
                self.duplicates += 1  # a QoS-1 redelivery or a reordered frame: already stored
                return "duplicate", 0
            if gap < 0:
                kind = GAP_KINDS["restart"]
            elif gap > 0:
                kind = GAP_KINDS["lost"]
            elif abs(jump) > TIME_TOLERANCE_NS:
                kind = GAP_KINDS["time_jump"]
            if kind:
                missing = max(gap, 0)
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

    def flush(self) -> None:
        if self._raw:
            _append(self.group["samples"], np.concatenate(self._raw, axis=0))
            _append(self.group["frames"], np.array(self._rows, dtype=FRAME_DTYPE))
            self._raw.clear()
            self._rows.clear()
            self.buffered_values = 0
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
                part.flush()
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
    def flush(self) -> None:
        self._check_open()
        for part in self._parts.values():
            part.flush()
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
            self.flush()
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
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise SessionError(f"{path}: not a readable HDF5 file ({_h5_reason(exc)})") from None
        try:
            self._check()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, where: str, problem: str) -> SessionError:
        return SessionError(f"{self.path}: {where}: {problem}")

    def _attr(self, obj: h5py.HLObject, name: str, kind: type) -> Any:
        where = f"{obj.name} attribute {name!r}"
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
        for g in devices.values():
            if not isinstance(g, h5py.Group):
                raise self._fail(g.name, "is not a group")
            self.devices[self._attr(g, "device", str)] = self._device_record(g)
            parts.extend(self._part(p) for p in g.values())
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

    def _part(self, g: h5py.HLObject) -> StreamRecord:
        if not isinstance(g, h5py.Group):
            raise self._fail(g.name, "is not a group (a stream part)")
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
        if n == 0:
            raise self._fail(frames.name, "no frames (a stream part starts with its first frame)")
        try:
            first, last = frames[0], frames[n - 1]
        except OSError as exc:
            raise self._fail(frames.name, f"unreadable ({_h5_reason(exc)})") from None
        if int(first["first_sample"]) != 0:
            raise self._fail(f"{frames.name} row 0", f"first_sample is {first['first_sample']}, expected 0")
        end = int(last["first_sample"]) + int(last["samples"])
        if end != samples.shape[0]:
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
            int(samples.shape[0]),
            int(first["t0_ns"]),
            int(last["t0_ns"]) + round(int(last["samples"]) * 1e9 / rate),
            int(g.attrs.get("duplicates", 0)),
        )

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
        except OSError as exc:
            raise self._fail(
                f"{ds.name} rows {sl.start}–{sl.stop}", f"unreadable ({_h5_reason(exc)})"
            ) from None

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
        ds = self._file[stream.path]["gaps"]
        names = {v: k for k, v in GAP_KINDS.items()}
        out = []
        for i, r in enumerate(self._read(ds, slice(0, ds.shape[0]))):
            kind = names.get(int(r["kind"]))
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
        ds = self._file[stream.path]["frames"]
        return self._read(ds, slice(start, stream.frames if stop is None else stop))

    def frame_times(self, stream: StreamRecord) -> npt.NDArray[np.int64]:
        ds = self._file[stream.path]["frames"]
        try:
            return np.asarray(ds.fields("t0_ns")[:], dtype=np.int64)
        except OSError as exc:
            raise self._fail(ds.name, f"unreadable ({_h5_reason(exc)})") from None

    def samples(self, stream: StreamRecord, start: int, stop: int) -> npt.NDArray[np.generic]:
        return self._read(self._file[stream.path]["samples"], slice(start, stop))

    def frames(self, stream: StreamRecord, start: int = 0, block: int = 2048) -> Iterator[Frame]:
        """The part's frames from index ``start``, exactly as received; reads ``block`` frames at a time."""
        i = start
        expected: int | None = None
        while i < stream.frames:
            rows = self.frame_table(stream, i, min(i + block, stream.frames))
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
            for k, r in enumerate(rows):
                lo = int(offsets[k]) - a
                yield Frame(
                    stream.stream_id,
                    int(r["sequence"]),
                    int(r["t0_ns"]),
                    stream.sample_rate,
                    stream.scale,
                    stream.unit,
                    stream.sample_type,
                    raw[lo : lo + int(counts[k])],
                )
            expected = b
            i += len(rows)

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


def _h5_reason(exc: OSError) -> str:
    text = str(exc).removeprefix("Unable to synchronously open file ").removeprefix("Unable to open file ")
    return text[1:-1] if text.startswith("(") and text.endswith(")") else text


# ---- EDF+ / BDF+ export ----------------------------------------------------------------------------
EDF_LABEL_LEN: Final = 16
EDF_ANNOTATION_BYTES: Final = 40  # edflib keeps at most this many bytes of an annotation's text
EDF_MAX_ANNOTATION_SIGNALS: Final = 64
_EDF_BOUNDS: Final = (-32768, 32767)
_BDF_BOUNDS: Final = (-8388608, 8388607)
_TYPE_BOUNDS: Final = {SampleType.INT8: (-128, 127), SampleType.INT16: _EDF_BOUNDS}
_DIMENSIONS: Final = {Unit.MICROVOLT: "uV", Unit.G: "g", Unit.DEG_PER_S: "deg/s", Unit.UNITLESS: ""}
_TYPE_WORDS: Final = {"emg": "EMG", "acc": "ACC", "gyro": "GYR"}
_BLOCK_ROWS: Final = 65536


@dataclass(frozen=True)
class ExportResult:
    path: Path
    filetype: Literal["EDF+", "BDF+"]
    labels: tuple[str, ...]
    records: int
    record_s: float
    annotations: int
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Scaling:
    """How one stream part's raw samples become EDF digital values, and the header limits that go with
    them."""

    mode: Literal["exact", "shift", "float"]
    dmin: int
    dmax: int
    pmin: float
    pmax: float
    shift: int = 0

    def digital(self, raw: npt.NDArray[np.generic], scale: float) -> npt.NDArray[np.int32]:
        if self.mode == "exact":
            return raw.astype(np.int32)
        if self.mode == "shift":
            return np.round(raw.astype(np.float64) / 2.0**self.shift).astype(np.int32)
        gain = (self.pmax - self.pmin) / (self.dmax - self.dmin)
        values = raw.astype(np.float64) * float(np.float32(scale))
        d = np.round((values - self.pmin) / gain) + self.dmin
        return np.clip(d, self.dmin, self.dmax).astype(np.int32)


def _edf_value(x: float) -> int | float:
    """The value as given to the header (integers without ``.0``, as edflib prints them)."""
    return int(x) if float(x).is_integer() else float(x)


def _edf_number(x: float) -> bool:
    """Whether the header's 8 ASCII characters hold ``x`` exactly."""
    text = str(_edf_value(x))
    return len(text) <= 8 and "e" not in text and "n" not in text


def _round8(x: float, up: bool) -> float:
    """``x`` rounded outward to a number the 8-character header field holds."""
    for decimals in range(7, -1, -1):
        q = 10.0**decimals
        y = (math.ceil(x * q) if up else math.floor(x * q)) / q
        if _edf_number(y):
            return y
    raise SessionError(f"physical value {x:g} does not fit the 8 characters of an EDF header field")


def _exact_limits(scale: float, lo: int, hi: int, bounds: tuple[int, int]) -> tuple[int, int] | None:
    """Digital limits (within ``bounds``, around the data's ``lo``..``hi``) whose physical values the header
    holds exactly, so that physical = digital × scale with no offset and no rounding of the gain."""
    dmax = next(
        (d for d in range(bounds[1], max(hi, bounds[1] - 100_000) - 1, -1) if _edf_number(d * scale)), None
    )
    dmin = next(
        (d for d in range(bounds[0], min(lo, bounds[0] + 100_000) + 1) if _edf_number(d * scale)), None
    )
    if dmin is None or dmax is None or dmin > lo or dmax < hi or dmin >= dmax:
        return None
    return dmin, dmax


def _scaling(s: StreamRecord, lo: int | float, hi: int | float, bdf: bool, notes: list[str]) -> _Scaling:
    file_bounds = _BDF_BOUNDS if bdf else _EDF_BOUNDS
    scale = float(np.float32(s.scale))
    if s.sample_type is not SampleType.FLOAT32:
        bounds = _TYPE_BOUNDS.get(s.sample_type, file_bounds)
        shift = 0
        while int(hi) >> shift > file_bounds[1] or int(lo) >> shift < file_bounds[0]:
            shift += 1
        d_lo, d_hi, d_scale = int(lo) >> shift, -(-int(hi) >> shift), scale * 2.0**shift
        if shift:
            notes.append(f"{s.label}: values need more than 24 bits; stored ÷ 2^{shift} (lossy)")
            bounds = file_bounds
        limits = _exact_limits(d_scale, d_lo, d_hi, bounds)
        if limits is not None:
            dmin, dmax = limits
            return _Scaling("shift" if shift else "exact", dmin, dmax, dmin * d_scale, dmax * d_scale, shift)
        notes.append(
            f"{s.label}: scale {scale:g} has no exact 8-character physical range; values within half a "
            "digital step"
        )
    else:
        notes.append(f"{s.label}: float samples quantised to {'24' if bdf else '16'} bits")
    vmin, vmax = sorted((float(lo) * scale, float(hi) * scale))
    if vmin == vmax:
        vmin, vmax = vmin - 1.0, vmax + 1.0
    return _Scaling("float", file_bounds[0], file_bounds[1], _round8(vmin, up=False), _round8(vmax, up=True))


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", "ignore")


def channel_labels(s: StreamRecord) -> list[str]:
    """``EMG calf_left``, ``ACC calf_left X``: what ``twitchwatch detect`` reads type, muscle and axis
    from."""
    word = _TYPE_WORDS.get(s.signal, (s.signal or s.stream).upper()[:3])
    axes = "XYZ" if s.signal == "acc" and s.channels <= 3 else None
    out = []
    for i, muscle in enumerate(s.muscles):
        name = muscle or s.device
        suffix = f" {axes[i]}" if axes and s.channels > 1 else (f" {i + 1}" if s.channels > 1 else "")
        room = EDF_LABEL_LEN - len(word) - 1 - len(suffix)
        out.append(f"{word} {name[:room]}{suffix}")
    return out


class _Feed:
    """One stream part laid on the EDF time grid: leading fill, the samples with gap fills, trailing fill —
    all as digital values, pulled ``take(n)`` rows at a time. Fills repeat the nearest real sample
    (zero-order hold)."""

    def __init__(self, session: Session, s: StreamRecord, offset: int, fills: list[tuple[int, int]]) -> None:
        self.session, self.s, self.offset = session, s, offset
        self.fills = fills  # (sample index the fill goes before, samples of fill), sorted
        self.length = offset + s.samples + sum(n for _, n in fills)
        self.scaling: _Scaling | None = None
        self._parts: list[npt.NDArray[np.int32]] = []
        self._have = 0
        self._gen: Iterator[npt.NDArray[np.int32]] | None = None

    def _blocks(self, total: int) -> Iterator[npt.NDArray[np.int32]]:
        assert self.scaling is not None
        s, scale = self.s, self.s.scale
        first = self.scaling.digital(self.session.samples(s, 0, 1), scale)
        yield np.repeat(first, self.offset, axis=0)
        last = first
        pos = 0
        for at, n in [*self.fills, (s.samples, 0)]:
            while pos < at:
                stop = min(at, pos + _BLOCK_ROWS)
                block = self.scaling.digital(self.session.samples(s, pos, stop), scale)
                yield block
                last = block[-1:]
                pos = stop
            if n:
                yield np.repeat(last, n, axis=0)
        yield np.repeat(last, total - self.length, axis=0)

    def start(self, total: int) -> None:
        self._gen = self._blocks(total)

    def take(self, n: int) -> npt.NDArray[np.int32]:
        assert self._gen is not None
        while self._have < n:
            block = next(self._gen)
            self._parts.append(block)
            self._have += len(block)
        data = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        out, rest = data[:n], data[n:]
        self._parts, self._have = ([rest] if len(rest) else []), len(rest)
        return out


def _data_range(session: Session, s: StreamRecord) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for a in range(0, s.samples, _BLOCK_ROWS * 4):
        block = session.samples(s, a, min(s.samples, a + _BLOCK_ROWS * 4))
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi


def export_edf(session: Session, out: Path) -> ExportResult:
    """Write the session as EDF+ (BDF+ when a stream's samples need 24 bits: int32 or float32 on the wire).

    Every stream part is one signal per channel on a common time grid starting at the earliest sample. Where a
    stream has no data — before its first frame, after its last, lost frames, a forward jump of its clock —
    the signal holds the nearest real value and a ``BAD_gap`` / ``BAD_no_data`` annotation marks the span.
    Ground truth and markers become annotations too. An ``.edf``/``.bdf`` name gets the extension of the type
    written.
    """
    import pyedflib  # the EDF C library loads only for export
    from pyedflib._extensions import _pyedflib as edflib  # pyedflib's own subsecond start is off by 10×

    if not session.streams:
        raise SessionError(f"{session.path}: no frames to export")
    bdf = any(s.sample_type in (SampleType.INT32, SampleType.FLOAT32) for s in session.streams)
    if out.suffix.lower() in (".edf", ".bdf"):
        out = out.with_suffix(".bdf" if bdf else ".edf")
    notes: list[str] = []
    # EDF+ start: whole seconds in the header, the subsecond in the first record's time stamp. On a 0.1 ms
    # boundary, because edflib writes annotation onsets to 0.1 ms after adding the subsecond (truncating).
    start_ns = session.start_ns // 100_000 * 100_000
    feeds: list[_Feed] = []
    headers: list[dict[str, Any]] = []
    marks: list[tuple[int, int, str]] = []  # (onset ns, duration ns, text)
    for s in session.streams:
        labels = channel_labels(s)
        name = labels[0].removesuffix(" X") if s.signal == "acc" else labels[0]
        offset = round((s.first_t0_ns - start_ns) * s.sample_rate / 1e9)
        fills: list[tuple[int, int]] = []
        filled = 0
        for g in session.gaps(s):
            at = int(session.frame_table(s, g.frame, g.frame + 1)[0]["first_sample"])
            onset = start_ns + round((offset + at + filled) * 1e9 / s.sample_rate)
            n = round(g.time_gap_ns * s.sample_rate / 1e9)
            if n > 0:
                fills.append((at, n))
                filled += n
                marks.append((onset, round(n * 1e9 / s.sample_rate), f"BAD_gap {name}"))
            else:
                marks.append((onset, 0, f"{'clock_back' if g.time_gap_ns < 0 else g.kind} {name}"))
        feed = _Feed(session, s, offset, fills)
        lo, hi = _data_range(session, s)
        feed.scaling = sc = _scaling(s, lo, hi, bdf, notes)
        feeds.append(feed)
        if offset:
            marks.append((start_ns, round(offset * 1e9 / s.sample_rate), f"BAD_no_data {name}"))
        for i, label in enumerate(labels):
            headers.append(
                {
                    "label": label,
                    "dimension": _DIMENSIONS[s.unit],
                    "sample_frequency": s.sample_rate,
                    "physical_min": _edf_value(sc.pmin),
                    "physical_max": _edf_value(sc.pmax),
                    "digital_min": sc.dmin,
                    "digital_max": sc.dmax,
                    "transducer": f"{s.label} ch{i} {s.muscles[i]}"[:80],
                    "prefilter": "",
                }
            )
    for a in session.annotations():
        text = f"truth {a.text} {a.muscle}".rstrip() if a.category == "truth" else f"marker {a.text}"
        marks.append((a.onset_ns, a.duration_ns, text))
    if len({h["label"] for h in headers}) < len(headers):
        notes.append("repeated labels: two stream parts carry the same channel")
    filetype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    try:
        writer = pyedflib.EdfWriter(str(out), len(headers), filetype)
    except OSError as exc:
        raise SessionError(f"{out}: cannot create: {exc}") from None
    try:
        writer.setSignalHeaders(headers)
        first_signal = np.cumsum([0] + [f.s.channels for f in feeds])
        spr = [writer.get_smp_per_record(int(first_signal[k])) for k in range(len(feeds))]
        record_s = float(writer.record_duration)
        records = max(math.ceil(f.length / n) for f, n in zip(feeds, spr, strict=True))
        end_ns = start_ns + round(records * record_s * 1e9)
        for f, n in zip(feeds, spr, strict=True):
            if records * n > f.length:
                tail = start_ns + round(f.length * 1e9 / f.s.sample_rate)
                name = (
                    channel_labels(f.s)[0].removesuffix(" X")
                    if f.s.signal == "acc"
                    else channel_labels(f.s)[0]
                )
                marks.append((tail, end_ns - tail, f"BAD_no_data {name}"))
            f.start(records * n)
        kept = sorted(m for m in marks if start_ns <= m[0] < end_ns)
        if len(kept) < len(marks):
            notes.append(f"{len(marks) - len(kept)} annotation(s) outside the recorded time left out")
        capacity = EDF_MAX_ANNOTATION_SIGNALS * records
        if len(kept) > capacity:
            notes.append(
                f"{len(kept) - capacity} annotation(s) beyond EDF+'s {capacity} for this length left out"
            )
            kept = kept[:capacity]
        writer.set_number_of_annotation_signals(
            max(1, min(EDF_MAX_ANNOTATION_SIGNALS, -(-len(kept) // records)))
        )
        writer.setEquipment("twitchwatch")
        writer.setRecordingAdditional(
            re.sub(r"[^A-Za-z0-9_.-]", "_", session.path.stem)[:40]
        )  # ASCII, no spaces
        writer.setStartdatetime(
            dt.datetime.fromtimestamp(start_ns // 1_000_000_000)
        )  # local time, as EDF+ wants
        # Last, after every header call (each rewrites the start): pyedflib's own subsecond is off by 10×.
        edflib.set_starttime_subsecond(writer.handle, start_ns % 1_000_000_000 // 100)
        for _ in range(records):
            block = np.concatenate([f.take(n).T.reshape(-1) for f, n in zip(feeds, spr, strict=True)])
            if writer.blockWriteDigitalSamples(np.ascontiguousarray(block, dtype=np.int32)) < 0:
                raise SessionError(f"{out}: edflib refused a data record")
        for onset, duration, text in kept:
            writer.writeAnnotation(
                (onset - start_ns) / 1e9, duration / 1e9 if duration else -1, _truncate_utf8(text, 40)
            )
    except BaseException:
        writer.close()
        out.unlink(missing_ok=True)
        raise
    writer.close()
    return ExportResult(
        out,
        "BDF+" if bdf else "EDF+",
        tuple(h["label"] for h in headers),
        records,
        record_s,
        len(kept),
        tuple(notes),
    )
