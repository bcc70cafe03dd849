"""EDF, EDF+, BDF and BDF+: the one place their headers are checked, read and written.

Reading (:class:`EdfReader`): the header is checked against the standard and the file's size first
(:func:`check_edf_header`; errors name the header bytes and the field), then pyedflib streams the samples;
each signal keeps its own rate. The start time is the header's date and time (local time, as the standard
says) plus, for EDF+/BDF+, the subsecond in the first data record's time-keeping annotation (pyedflib's own
``getStartdatetime`` scales that subsecond wrongly, hence :func:`edf_start_ns`); the EDF+ annotations are
read from the annotation signal's time-stamped annotation lists (``truth <kind> <muscle>`` and
``marker <text>``, as the export writes them, come back as what they were; any other text is a marker).

Writing (:func:`export_edf`): a twitchwatch session digit for digit, with its gaps filled and marked, or any
other recording twitchwatch reads quantised to 24 bits (BDF+); ground truth and markers become annotations.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pyedflib

from twitchwatch.collector.frames import SampleType
from twitchwatch.collector.recordings.formats.session import (
    Session,
    SessionError,
    SessionReader,
    StreamRecord,
    channel_labels,
)
from twitchwatch.collector.recordings.model import (
    ANNOTATION_LABELS,
    DEFAULT_CHUNK_S,
    Annotation,
    Channel,
    Chunk,
    FloatArray,
    Group,
    Recording,
    RecordingError,
    Series,
    infer_channel,
    motion_axes,
    stepped_chunks,
)
from twitchwatch.collector.recordings.reader import RecordingReader
from twitchwatch.collector.signals import KINDS, StreamKind, kind_of_unit

# ---- the header ------------------------------------------------------------------------------------
EDF_MAGIC: Final = b"0       "
BDF_MAGIC: Final = b"\xffBIOSEMI"
_EDF_MAIN: Final = (
    ("version", 8),
    ("patient identification", 80),
    ("recording identification", 80),
    ("start date", 8),
    ("start time", 8),
    ("number of header bytes", 8),
    ("reserved", 44),
    ("number of data records", 8),
    ("data record duration", 8),
    ("number of signals", 4),
)
_EDF_SIGNAL: Final = (
    ("label", 16),
    ("transducer type", 80),
    ("physical dimension", 8),
    ("physical minimum", 8),
    ("physical maximum", 8),
    ("digital minimum", 8),
    ("digital maximum", 8),
    ("prefiltering", 80),
    ("samples per data record", 8),
    ("reserved", 32),
)


@dataclass(frozen=True)
class EdfHeader:
    """What :func:`check_edf_header` found: enough to know the file is whole, what it holds and where."""

    bdf: bool
    reserved: str  # "EDF+C", "EDF+D", "BDF+C", ... or blank for plain EDF/BDF
    records: int
    record_s: float
    labels: tuple[str, ...]
    samples_per_record: tuple[int, ...] = ()

    @property
    def discontinuous(self) -> bool:
        return self.reserved.startswith(("EDF+D", "BDF+D"))

    @property
    def header_bytes(self) -> int:
        return 256 * (len(self.labels) + 1)

    @property
    def sample_bytes(self) -> int:
        return 3 if self.bdf else 2

    @property
    def record_bytes(self) -> int:
        return sum(self.samples_per_record) * self.sample_bytes

    @property
    def annotation_signals(self) -> tuple[int, ...]:
        return tuple(i for i, label in enumerate(self.labels) if label in ANNOTATION_LABELS)


def check_edf_header(head: bytes, file_size: int, where: str = "EDF file") -> EdfHeader:
    """Validate an EDF/BDF header against the standard and the file's size; errors name the byte range and
    the field. ``head`` is at least the whole header (or all the file has). Pure: no I/O."""
    return _HeaderCheck(head, file_size, where).run()


class _HeaderCheck:
    def __init__(self, head: bytes, file_size: int, where: str) -> None:
        self.head, self.size, self.where = head, file_size, where
        self.ns = 0
        self.labels: list[str] = []

    def fail(self, offset: int, width: int, name: str, problem: str) -> RecordingError:
        return RecordingError(f"{self.where}: header bytes {offset}–{offset + width - 1} ({name}): {problem}")

    def text(self, offset: int, width: int, name: str) -> str:
        raw = self.head[offset : offset + width]
        bad = next((i for i, b in enumerate(raw) if not 32 <= b <= 126), None)
        if bad is not None:
            problem = f"byte {offset + bad} is 0x{raw[bad]:02X}; EDF headers are printable ASCII"
            raise self.fail(offset, width, name, problem)
        return raw.decode("ascii").strip()

    def number(self, offset: int, width: int, name: str, integer: bool, low: float) -> float:
        text = self.text(offset, width, name)
        try:
            value: float = int(text) if integer else float(text)
        except ValueError:
            what = "an integer" if integer else "a number"
            raise self.fail(offset, width, name, f"{text!r} is not {what}") from None
        if not np.isfinite(value) or value < low:
            raise self.fail(offset, width, name, f"{text!r} is out of range (at least {low:g})")
        return value

    def main(self, name: str) -> tuple[int, int, str]:
        offset = 0
        for field_name, width in _EDF_MAIN:
            if field_name == name:
                return offset, width, name
            offset += width
        raise KeyError(name)

    def signal(self, name: str, i: int) -> tuple[int, int, str]:
        """Where signal ``i``'s field is (the signal header is laid out field by field), and its name."""
        offset = 256
        for field_name, width in _EDF_SIGNAL:
            if field_name == name:
                label = f" {self.labels[i]!r}" if i < len(self.labels) else ""
                return offset + i * width, width, f"signal {i}{label} {name}"
            offset += self.ns * width
        raise KeyError(name)

    def run(self) -> EdfHeader:
        if len(self.head) < 256:
            raise RecordingError(f"{self.where}: {self.size} bytes, shorter than an EDF header (256 bytes)")
        version = self.head[:8]
        if version not in (EDF_MAGIC, BDF_MAGIC):
            raise self.fail(0, 8, "version", f"{version!r} is neither '0' (EDF) nor 0xFF 'BIOSEMI' (BDF)")
        bdf = version[0] == 0xFF
        for name, _ in _EDF_MAIN[1:]:
            self.text(*self.main(name))
        self.ns = int(self.number(*self.main("number of signals"), integer=True, low=1))
        header_bytes = int(self.number(*self.main("number of header bytes"), integer=True, low=0))
        if header_bytes != 256 * (self.ns + 1):
            problem = f"{header_bytes}, expected 256 × (1 + {self.ns} signals)"
            raise self.fail(*self.main("number of header bytes"), problem)
        if self.text(*self.main("number of data records")) == "-1":
            raise self.fail(*self.main("number of data records"), "-1: the recording was never finished")
        records = int(self.number(*self.main("number of data records"), integer=True, low=0))
        record_s = self.number(*self.main("data record duration"), integer=False, low=0)
        if len(self.head) < header_bytes:
            raise RecordingError(
                f"{self.where}: {self.size} bytes, shorter than its own header "
                f"({header_bytes} bytes for {self.ns} signals)"
            )
        self.labels = [self.text(*self.signal("label", i)) for i in range(self.ns)]
        spr = tuple(self._check_signal(i) for i in range(self.ns))
        record_bytes = sum(spr) * (3 if bdf else 2)
        expected = header_bytes + records * record_bytes
        if self.size != expected:
            raise RecordingError(
                f"{self.where}: {self.size} bytes, but its header describes {expected} "
                f"({records} data records of {record_bytes} bytes after a {header_bytes}-byte header): "
                f"{'truncated' if self.size < expected else 'extra bytes at the end'}"
            )
        if records and record_s <= 0:
            raise self.fail(*self.main("data record duration"), "0 s in a file with data")
        reserved = self.text(*self.main("reserved"))
        return EdfHeader(bdf, reserved, records, record_s, tuple(self.labels), spr)

    def _check_signal(self, i: int) -> int:
        """Signal ``i``'s fields; returns its samples per data record."""
        for name, _ in _EDF_SIGNAL:
            self.text(*self.signal(name, i))
        pmin = self.number(*self.signal("physical minimum", i), integer=False, low=-np.inf)
        pmax = self.number(*self.signal("physical maximum", i), integer=False, low=-np.inf)
        dmin = self.number(*self.signal("digital minimum", i), integer=True, low=-np.inf)
        dmax = self.number(*self.signal("digital maximum", i), integer=True, low=-np.inf)
        spr = int(self.number(*self.signal("samples per data record", i), integer=True, low=1))
        if pmin == pmax:
            raise self.fail(*self.signal("physical maximum", i), f"{pmax:g} equals the physical minimum")
        if dmin >= dmax:
            raise self.fail(*self.signal("digital maximum", i), f"{dmax:g} is not above the digital minimum")
        return spr


def read_header(path: Path) -> tuple[bytes, EdfHeader]:
    """The header bytes of ``path``, checked (``RecordingError`` naming the bytes and field otherwise)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(256)
        if len(head) == 256 and head[252:256].strip().isdigit():
            head += f.read(256 * int(head[252:256]))
    return head, check_edf_header(head, size, str(path))


# ---- time and annotations ------------------------------------------------------------------------------
_TAL: Final = re.compile(rb"^([+-]\d+(?:\.\d*)?)(?:\x15(\d+(?:\.\d*)?))?\x14(.*)$", re.DOTALL)


def _header_start_ns(path: Path, head: bytes) -> int:
    """The header's start date and time, whole seconds, as ns since the Unix epoch (local time)."""
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
    return round(start.timestamp()) * 1_000_000_000


def _seconds_ns(text: bytes) -> int | None:
    try:
        return int(Decimal(text.decode("ascii")) * 1_000_000_000)
    except (InvalidOperation, UnicodeDecodeError):
        return None


def _tal_bytes(path: Path, header: EdfHeader, record: int, signal: int) -> bytes:
    at = header.header_bytes + record * header.record_bytes
    at += header.sample_bytes * sum(header.samples_per_record[:signal])
    with path.open("rb") as f:
        f.seek(at)
        return f.read(header.sample_bytes * header.samples_per_record[signal])


def edf_start_ns(path: Path, header: EdfHeader | None = None, head: bytes | None = None) -> int:
    """The recording's start in ns since the Unix epoch: the header's date and time (local time, as the
    standard says), plus — for EDF+/BDF+ — the subsecond in the first data record's time-keeping
    annotation."""
    if header is None or head is None:
        head, header = read_header(path)
    whole = _header_start_ns(path, head)
    if not header.annotation_signals or not header.records:
        return whole
    m = _TAL.match(_tal_bytes(path, header, 0, header.annotation_signals[0]).split(b"\x00", 1)[0])
    onset = _seconds_ns(m.group(1)) if m else None
    return whole if onset is None else whole + onset


def _annotation(onset_ns: int, duration_ns: int, text: str) -> Annotation:
    word, _, rest = text.partition(" ")
    if word == "truth" and rest:
        kind, _, muscle = rest.partition(" ")
        return Annotation(onset_ns, duration_ns, "truth", kind, muscle)
    return Annotation(onset_ns, duration_ns, "marker", rest if word == "marker" and rest else text)


def read_annotations(path: Path, header: EdfHeader, whole_ns: int) -> tuple[list[Annotation], str]:
    """Every EDF+ annotation of the file (onsets from the header's whole-second start), and a note where a
    time-stamped annotation list cannot be read (the annotations before it are kept)."""
    out: list[Annotation] = []
    with path.open("rb") as f:
        for record in range(header.records):
            for signal in header.annotation_signals:
                at = header.header_bytes + record * header.record_bytes
                at += header.sample_bytes * sum(header.samples_per_record[:signal])
                f.seek(at)
                data = f.read(header.sample_bytes * header.samples_per_record[signal])
                offset = at
                for tal in data.split(b"\x00"):
                    if tal:
                        m = _TAL.match(tal)
                        onset = _seconds_ns(m.group(1)) if m else None
                        duration = _seconds_ns(m.group(2)) if m and m.group(2) else 0
                        if m is None or onset is None or duration is None:
                            return out, (
                                f"EDF+ annotations: data record {record}, byte {offset}: not a time-stamped "
                                "annotation list; the annotations from there on are not read"
                            )
                        for text in m.group(3).split(b"\x14"):
                            if text:
                                label = text.decode("utf-8", "replace")
                                out.append(_annotation(whole_ns + onset, duration, label))
                    offset += len(tal) + 1
    return out, ""


# ---- reading ---------------------------------------------------------------------------------------
class EdfReader(RecordingReader):
    """EDF, EDF+, BDF and BDF+ through pyedflib; each signal keeps its own rate."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".edf", ".bdf")
    MAGIC: ClassVar[tuple[bytes, ...]] = (EDF_MAGIC, BDF_MAGIC)
    NOUN: ClassVar[str] = "an EDF file"
    DESCRIPTION: ClassVar[str] = "an EDF/EDF+/BDF/BDF+ file"
    DEVICE_PREFIX: ClassVar[str] = "edf"

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is not None:
            raise RecordingError(f"{path}: EDF and BDF files carry each signal's rate (--rate is for CSV)")
        # Checked here first: edflib's own messages are vaguer, and it prints size mismatches to stdout.
        head, header = read_header(path)
        try:
            self._edf = pyedflib.EdfReader(str(path), pyedflib.DO_NOT_READ_ANNOTATIONS)
        except OSError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            raise RecordingError(f"{path}: cannot read: {reason}") from None
        try:
            self.recording = self._describe(path, head, header)
        except BaseException:
            self._edf.close()
            raise

    def _describe(self, path: Path, head: bytes, header: EdfHeader) -> Recording:
        edf = self._edf
        kind = {0: "EDF", 1: "EDF+", 2: "BDF", 3: "BDF+"}.get(edf.filetype, "EDF")
        self._samples = [int(edf.samples_in_file(i)) for i in range(edf.signals_in_file)]
        described = [(edf.getLabel(i), edf.getPhysicalDimension(i)) for i in range(edf.signals_in_file)]
        axes = motion_axes(described)
        channels = tuple(
            infer_channel(i, label, dim, float(edf.getSampleFrequency(i)), sensor=axes.get(i, ("", "")))
            for i, (label, dim) in enumerate(described)
        )
        notes = []
        hidden = len(header.labels) - len(channels)
        if hidden:
            notes.append(f"{hidden} EDF+ annotation signal(s) not used for detection")
        if header.discontinuous:
            notes.append(f"{kind} discontinuous (+D): times count recorded samples; gaps are not included")
        start_ns: int | None = None
        annotations: list[Annotation] = []
        try:  # neither is needed to detect: a file that garbles them is still read, with a note
            start_ns = edf_start_ns(path, header, head)
        except RecordingError as exc:
            notes.append(f"{str(exc).removeprefix(f'{path}: ')}: no start time")
        if start_ns is not None and header.annotation_signals:
            annotations, problem = read_annotations(path, header, _header_start_ns(path, head))
            if problem:
                notes.append(problem)
        duration = max((n / c.rate for n, c in zip(self._samples, channels, strict=True)), default=0.0)
        return Recording(
            path, kind, channels, duration, tuple(notes), start_ns=start_ns, annotations=tuple(annotations)
        )

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        def read(gi: int, start: int, n: int) -> FloatArray:
            data = np.empty((n, len(groups[gi].channels)))
            for j, ch in enumerate(groups[gi].channels):
                data[:, j] = self._edf.readSignal(ch.index, start, n)
                data[:, j] *= ch.scale
            return data

        totals = [self._samples[g.channels[0].index] for g in groups]
        return stepped_chunks(groups, chunk_seconds, totals, read)

    @classmethod
    def write(
        cls, path: Path, series: Sequence[Series], start_ns: int, annotations: Sequence[Annotation] = ()
    ) -> Path:
        """EDF+ (BDF+ for a ``.bdf`` name), each series quantised over its range."""
        bdf = path.suffix.lower() == ".bdf"
        start_ns = start_ns // 100_000 * 100_000
        notes: list[str] = []
        feeds: list[_Feed] = []
        headers: list[dict[str, Any]] = []
        for s in series:
            lo, hi = (float(s.values.min()), float(s.values.max())) if s.values.size else (0.0, 0.0)
            scaling = _float_scaling(lo, hi, bdf)
            feeds.append(_ArrayFeed(s.label, s.values[:, None], s.rate, scaling))
            headers.append(_signal_header(s.label, KINDS[s.kind].dimension, s.rate, scaling, ""))
        marks = [_mark(a) for a in annotations]
        return _write(path, bdf, feeds, headers, marks, start_ns, path.stem, notes).path

    def close(self) -> None:
        self._edf.close()


# ---- writing -----------------------------------------------------------------------------------------
EDF_LABEL_LEN: Final = 16
EDF_ANNOTATION_BYTES: Final = 40  # edflib keeps at most this many bytes of an annotation's text
EDF_MAX_ANNOTATION_SIGNALS: Final = 64
_EDF_BOUNDS: Final = (-32768, 32767)
_BDF_BOUNDS: Final = (-8388608, 8388607)
_TYPE_BOUNDS: Final = {SampleType.INT8: (-128, 127), SampleType.INT16: _EDF_BOUNDS}
_BLOCK_ROWS: Final = 65536
UNKNOWN_START: Final = dt.datetime(1985, 1, 1)  # EDF's earliest date, for a recording that does not say


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
    """How one stream's values become EDF digital values, and the header limits that go with them."""

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
        # EDF holds no NaN or infinity: such a sample is written as 0 (``_data_range`` notes how many).
        values[~np.isfinite(values)] = 0.0
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
    raise RecordingError(f"physical value {x:g} does not fit the 8 characters of an EDF header field")


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


def _float_scaling(lo: float, hi: float, bdf: bool) -> _Scaling:
    """Physical values quantised over their range ``lo``..``hi`` to the file's digital range."""
    bounds = _BDF_BOUNDS if bdf else _EDF_BOUNDS
    vmin, vmax = sorted((lo, hi))
    if vmin == vmax:
        vmin, vmax = vmin - 1.0, vmax + 1.0
    return _Scaling("float", bounds[0], bounds[1], _round8(vmin, up=False), _round8(vmax, up=True))


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
    return _float_scaling(float(lo) * scale, float(hi) * scale, bdf)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", "ignore")


def _signal_header(label: str, dimension: str, rate: float, sc: _Scaling, transducer: str) -> dict[str, Any]:
    return {
        "label": label,
        "dimension": dimension,
        # A session stores rates as float32 (51.2 is 51.20000076): its shortest decimal is the rate meant,
        # for which edflib finds a whole record (5 s of 256 samples, not 3.066 s that drift 130 ppm).
        "sample_frequency": float(str(np.float32(rate))),
        "physical_min": _edf_value(sc.pmin),
        "physical_max": _edf_value(sc.pmax),
        "digital_min": sc.dmin,
        "digital_max": sc.dmax,
        "transducer": transducer[:80],
        "prefilter": "",
    }


def _mark(a: Annotation) -> tuple[int, int, str]:
    text = f"truth {a.text} {a.muscle}".rstrip() if a.category == "truth" else f"marker {a.text}"
    return a.onset_ns, a.duration_ns, text


class _Feed(Protocol):
    """One stream laid on the EDF time grid, as digital values, ``take(n)`` rows at a time."""

    name: str  # what a BAD_no_data mark at its end names
    channels: int
    rate: float
    length: int  # samples on the grid, fills included

    def start(self, total: int) -> None: ...

    def take(self, n: int) -> npt.NDArray[np.int32]: ...


class _Rows:
    """Rows pulled from a generator of blocks, ``take(n)`` at a time."""

    def __init__(self) -> None:
        self._parts: list[npt.NDArray[np.int32]] = []
        self._have = 0
        self._gen: Iterator[npt.NDArray[np.int32]] | None = None

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


class _SessionFeed(_Rows):
    """One session stream part on the grid: leading fill, the samples with gap fills, trailing fill. Fills
    repeat the nearest real sample (zero-order hold)."""

    def __init__(
        self, session: Session, s: StreamRecord, offset: int, fills: list[tuple[int, int]], name: str
    ) -> None:
        super().__init__()
        self.session, self.s, self.offset, self.name = session, s, offset, name
        self.channels, self.rate = s.channels, s.sample_rate
        self.fills = fills  # (sample index the fill goes before, samples of fill), sorted
        self.length = offset + s.samples + sum(n for _, n in fills)
        self.scaling: _Scaling | None = None

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


class _ArrayFeed(_Rows):
    """Values in memory (a series to write), held at the last value past their end."""

    def __init__(self, name: str, values: npt.NDArray[np.float64], rate: float, scaling: _Scaling) -> None:
        super().__init__()
        self.name, self.rate, self.channels, self.length = name, rate, values.shape[1], len(values)
        self._digital = scaling.digital(values, 1.0)

    def start(self, total: int) -> None:
        last = self._digital[-1:] if len(self._digital) else np.zeros((1, self.channels), dtype=np.int32)
        self._gen = iter([self._digital, np.repeat(last, total - self.length, axis=0)])


class _ChunkFeeds:
    """A reader's streams, each a feed: one pass over ``chunks`` shared by all, every group's values kept
    until its feed takes them (groups advance through a file together, so this stays about a chunk)."""

    def __init__(
        self, reader: RecordingReader, groups: Sequence[Group], scalings: Sequence[_Scaling]
    ) -> None:
        self.reader, self.groups, self.scalings = reader, groups, scalings
        self.queues: list[deque[npt.NDArray[np.int32]]] = [deque() for _ in groups]
        self._chunks: Iterator[Chunk] | None = None

    def pull(self, group: int) -> npt.NDArray[np.int32] | None:
        if self._chunks is None:
            self._chunks = self.reader.chunks(self.groups, DEFAULT_CHUNK_S)
        while not self.queues[group]:
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            digital = self.scalings[chunk.group].digital(chunk.data, 1.0)
            self.queues[chunk.group].append(digital)
        return self.queues[group].popleft()


class _GroupFeed(_Rows):
    def __init__(self, feeds: _ChunkFeeds, group: int, samples: int, name: str) -> None:
        super().__init__()
        self.feeds, self.group, self.name = feeds, group, name
        g = feeds.groups[group]
        self.channels, self.rate, self.length = len(g.channels), g.rate, samples

    def _blocks(self, total: int) -> Iterator[npt.NDArray[np.int32]]:
        last = np.zeros((1, self.channels), dtype=np.int32)
        while (block := self.feeds.pull(self.group)) is not None:
            if len(block):
                last = block[-1:]
                yield block
        yield np.repeat(last, total - self.length, axis=0)

    def start(self, total: int) -> None:
        self._gen = self._blocks(total)


def _session_parts(
    session: Session, start_ns: int, bdf: bool, notes: list[str]
) -> tuple[list[_Feed], list[dict[str, Any]], list[tuple[int, int, str]]]:
    """Every stream part of a session on one grid from ``start_ns``: its raw samples as digital values
    (exact where the header can say so), gaps filled and marked."""
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
        feed = _SessionFeed(session, s, offset, fills, name)
        lo, hi = _data_range(session, s, notes)
        feed.scaling = sc = _scaling(s, lo, hi, bdf, notes)
        feeds.append(feed)
        if offset:
            marks.append((start_ns, round(offset * 1e9 / s.sample_rate), f"BAD_no_data {name}"))
        dimension = KINDS[kind].dimension if (kind := kind_of_unit(s.unit)) else ""
        for i, label in enumerate(labels):
            headers.append(
                _signal_header(label, dimension, s.sample_rate, sc, f"{s.label} ch{i} {s.muscles[i]}")
            )
    return feeds, headers, marks


def _data_range(session: Session, s: StreamRecord, notes: list[str]) -> tuple[float, float]:
    """The stream's smallest and largest stored values, over those that are numbers; a float stream's NaN or
    infinite samples (a sensor's dropout) are counted and written as 0, with a note."""
    lo, hi, bad = math.inf, -math.inf, 0
    for a in range(0, s.samples, _BLOCK_ROWS * 4):
        block = session.samples(s, a, min(s.samples, a + _BLOCK_ROWS * 4))
        if block.dtype.kind == "f":
            finite = np.isfinite(block)
            bad += int(block.size - np.count_nonzero(finite))
            block = block[finite]
        if block.size:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    if bad:
        notes.append(f"{s.label}: {bad} samples that are not numbers (NaN or infinity) written as 0")
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def export_edf(
    source: Session | RecordingReader, out: Path, progress: Callable[[float, float], None] | None = None
) -> ExportResult:
    """Write a recording as EDF+ or BDF+.

    A twitchwatch session: EDF+, or BDF+ when a stream's samples need 24 bits (int32 or float32 on the wire).
    Every stream part is one signal per channel on a common time grid starting at the earliest sample, digit
    for digit where the header can say so. Where a stream has no data — before its first frame, after its
    last, lost frames, a forward jump of its clock — the signal holds the nearest real value and a
    ``BAD_gap`` / ``BAD_no_data`` annotation marks the span.

    Any other recording twitchwatch reads: BDF+, each stream of it (EMG, accelerometer, gyroscope,
    orientation; other channels are left out with a note) in its unit, quantised to 24 bits over its range.

    Ground truth and markers become annotations. An ``.edf``/``.bdf`` name gets the extension of the type
    written. ``progress`` is told (seconds of signal written, seconds in all) after each data record.
    """
    if isinstance(source, SessionReader):
        source = source.session
    if isinstance(source, Session):
        return _export_session(source, out, progress)
    return _export_recording(source, out, progress)


def _export_session(
    session: Session, out: Path, progress: Callable[[float, float], None] | None
) -> ExportResult:
    if not session.streams:
        raise SessionError(f"{session.path}: no frames to export")
    bdf = any(s.sample_type in (SampleType.INT32, SampleType.FLOAT32) for s in session.streams)
    notes: list[str] = []
    if not session.complete:
        notes.append(f"{session.path.name} was not closed cleanly; exported what it holds")
    # EDF+ start: whole seconds in the header, the subsecond in the first record's time stamp. On a 0.1 ms
    # boundary, because edflib writes annotation onsets to 0.1 ms after adding the subsecond (truncating).
    start_ns = session.start_ns // 100_000 * 100_000
    feeds, headers, marks = _session_parts(session, start_ns, bdf, notes)
    marks.extend(_mark(a) for a in session.annotations())
    if len({h["label"] for h in headers}) < len(headers):
        notes.append("repeated labels: two stream parts carry the same channel")
    return _write(out, bdf, feeds, headers, marks, start_ns, session.path.stem, notes, progress)


def _export_recording(
    reader: RecordingReader, out: Path, progress: Callable[[float, float], None] | None
) -> ExportResult:
    rec = reader.recording
    groups = rec.streams
    if not groups:
        why = "; ".join(f"{c.display}: {c.note}" for c in rec.channels) or "the file has no signals"
        raise RecordingError(f"{rec.path}: no EMG, accelerometer or gyroscope channel to export ({why})")
    notes = [f"{c.display} left out: {c.note}" for c in rec.channels if c.signal is None]
    # Two passes: the header needs each signal's range before the first data record.
    lo = [np.full(len(g.channels), np.inf) for g in groups]
    hi = [np.full(len(g.channels), -np.inf) for g in groups]
    samples = [0] * len(groups)
    for chunk in reader.chunks(groups, DEFAULT_CHUNK_S):
        lo[chunk.group] = np.minimum(lo[chunk.group], chunk.data.min(axis=0))
        hi[chunk.group] = np.maximum(hi[chunk.group], chunk.data.max(axis=0))
        samples[chunk.group] += len(chunk.data)
    if not all(samples):
        empty = ", ".join(g.lanes[0].label for g, n in zip(groups, samples, strict=True) if not n)
        raise RecordingError(f"{rec.path}: no samples to export ({empty})")
    headers: list[dict[str, Any]] = []
    group_scalings: list[_Scaling] = []
    for gi, g in enumerate(groups):
        # One scaling per stream (the feed converts its rows together): the widest range of its channels.
        scaling = _float_scaling(float(lo[gi].min()), float(hi[gi].max()), bdf=True)
        group_scalings.append(scaling)
        for c in g.channels:
            label = _export_label(c, g.signal)
            if label != c.label:
                notes.append(f"{c.display}: labelled {label!r} (EDF labels hold {EDF_LABEL_LEN} characters)")
            dimension = KINDS[g.signal].dimension
            headers.append(_signal_header(label, dimension, g.rate, scaling, f"{rec.path.name} {c.display}"))
    notes.append(f"samples quantised to 24 bits over each stream's range, in {_units(groups)}")
    shared = _ChunkFeeds(reader, groups, group_scalings)
    feeds: list[_Feed] = [
        _GroupFeed(shared, gi, samples[gi], g.lanes[0].label if g.signal != "emg" else g.channels[0].label)
        for gi, g in enumerate(groups)
    ]
    start_ns = rec.start_ns
    if start_ns is None:
        notes.append(
            f"{rec.path.name} does not say when it started: the file starts {UNKNOWN_START:%Y-%m-%d}"
        )
        start_ns = round(UNKNOWN_START.astimezone().timestamp()) * 1_000_000_000
    start_ns = start_ns // 100_000 * 100_000
    if len({h["label"] for h in headers}) < len(headers):
        notes.append("repeated labels: two channels have the same label")
    marks = [_mark(a) for a in rec.annotations]
    return _write(out, True, feeds, headers, marks, start_ns, rec.path.stem, notes, progress)


def _export_label(c: Channel, signal: StreamKind) -> str:
    """The channel's own label where it fits EDF's 16 characters and reads back as the same signal and
    axis; else its type word, muscle and axis (``ACC MEMS X``), the muscle cut to fit, which ``detect``
    reads back as the same sensor (a cut ``MEMS accelerometer x-axis`` would lose its axis)."""
    kind = KINDS[signal]
    if len(c.label) <= EDF_LABEL_LEN:
        back = infer_channel(c.index, c.label, kind.dimension, c.rate)
        if back.signal == signal and back.axis == c.axis:
            return c.label
    tail = f" {c.axis}" if c.axis else ""
    return f"{kind.word} {c.muscle[: EDF_LABEL_LEN - len(kind.word) - 1 - len(tail)]}{tail}"


def _units(groups: Sequence[Group]) -> str:
    symbols = dict.fromkeys(KINDS[g.signal].unit.symbol for g in groups)
    return ", ".join(symbols)


def _write(
    out: Path,
    bdf: bool,
    feeds: Sequence[_Feed],
    headers: list[dict[str, Any]],
    marks: list[tuple[int, int, str]],
    start_ns: int,
    stem: str,
    notes: list[str],
    progress: Callable[[float, float], None] | None = None,
) -> ExportResult:
    """The one EDF+/BDF+ writer: header, data records from the feeds (in order, their channels side by
    side), annotations; the start's subsecond in the first record's time stamp. ``start_ns`` is on a 0.1 ms
    boundary, because edflib writes annotation onsets to 0.1 ms after adding the subsecond (truncating)."""
    if out.suffix.lower() in (".edf", ".bdf"):
        out = out.with_suffix(".bdf" if bdf else ".edf")
    filetype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    from pyedflib._extensions import _pyedflib as edflib  # pyedflib's own subsecond start is off by 10×

    try:
        writer = pyedflib.EdfWriter(str(out), len(headers), filetype)
    except OSError as exc:
        raise RecordingError(f"{out}: cannot create: {exc}") from None
    try:
        writer.setSignalHeaders(headers)
        first_signal = np.cumsum([0] + [f.channels for f in feeds])
        spr = [writer.get_smp_per_record(int(first_signal[k])) for k in range(len(feeds))]
        record_s = float(writer.record_duration)
        records = max(math.ceil(f.length / n) for f, n in zip(feeds, spr, strict=True))
        end_ns = start_ns + round(records * record_s * 1e9)
        for f, n in zip(feeds, spr, strict=True):
            if records * n > f.length:
                tail = start_ns + round(f.length * 1e9 / f.rate)
                marks.append((tail, end_ns - tail, f"BAD_no_data {f.name}"))
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
        writer.setRecordingAdditional(re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:40])  # ASCII, no spaces
        writer.setStartdatetime(
            dt.datetime.fromtimestamp(start_ns // 1_000_000_000)
        )  # local time, as EDF+ wants
        # Last, after every header call (each rewrites the start): pyedflib's own subsecond is off by 10×.
        edflib.set_starttime_subsecond(writer.handle, start_ns % 1_000_000_000 // 100)
        for index in range(records):
            block = np.concatenate([f.take(n).T.reshape(-1) for f, n in zip(feeds, spr, strict=True)])
            if writer.blockWriteDigitalSamples(np.ascontiguousarray(block, dtype=np.int32)) < 0:
                raise RecordingError(f"{out}: edflib refused a data record")
            if progress is not None:
                progress((index + 1) * record_s, records * record_s)
        for onset, duration, text in kept:
            writer.writeAnnotation(
                (onset - start_ns) / 1e9,
                duration / 1e9 if duration else -1,
                _truncate_utf8(text, EDF_ANNOTATION_BYTES),
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
