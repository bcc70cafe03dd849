"""Recording files streamed through the twitch detectors, chunk by chunk (``twitchwatch detect``).

A reader opens a file, describes it (a :class:`Recording`: each channel's label, physical dimension, rate,
inferred signal type and muscle) and yields about a second of signal at a time per detector group, so a
day-long file needs no more memory than a short one. Readers are found by file extension: a subclass of
:class:`RecordingReader` that names its ``EXTENSIONS`` registers itself (EDF/BDF, CSV and the project's own
HDF5 session files, :class:`SessionReader`).

Signal type per channel, from its physical dimension (µV, uV, mV, V → EMG, converted to µV; g, m/s² →
accelerometer, converted to g; deg/s, °/s, dps, rad/s → gyroscope, converted to °/s) or, where the file gives
none (CSV), from a label that starts with ``EMG``, ``ACC``, ``GYR`` or ``ORI`` (an orientation quaternion,
w x y z). A label like ``EMG calf_left`` or ``ACC calf_left X`` also names the muscle (the word after the
type) and, for an accelerometer, gyroscope or orientation, the axis; otherwise the muscle is the label itself,
made safe for topics and tags (``[A-Za-z0-9_.:-]``). Axes of one sensor (same label apart from a trailing
X/Y/Z, W, or 1–4) share one detector. Channels with any other dimension (temperature, force, EDF+
annotations, ...) are skipped with a note saying why.

A recording's streams are one device, and its detectors run through the rest gate (``processing.gating``):
its accelerometer and gyroscope movement vetoes every muscle of the file, each EMG lane's own activity its
muscle; a twitch found while vetoed comes out as ``during_movement`` with the reason, and each twitch lane
counts the seconds it was assessable.

Malformed files raise :class:`RecordingError`, naming the file and the line, column, byte or header field.
"""

from __future__ import annotations

import abc
import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
import pyedflib

from collector.frames import Unit
from collector.session import Session, SessionError, StreamRecord, channel_labels
from collector.topics import check_segment
from processing.detector import SignalKind
from processing.events import EventKind
from processing.gating import Detector, GatedRun, GateStream, Judged, StreamKind, make_detector

FloatArray = npt.NDArray[np.float64]

STANDARD_GRAVITY: Final = 9.80665  # m/s² per g
DEFAULT_CHUNK_S: Final = 1.0
MAX_CHUNK_S: Final = 60.0

# Physical dimension → (signal type, factor to the detector's unit: µV for EMG, g for acceleration).
_DIMENSIONS: Final[dict[str, tuple[StreamKind, float]]] = {
    "uV": ("emg", 1.0),
    "µV": ("emg", 1.0),  # micro sign
    "μV": ("emg", 1.0),  # Greek mu
    "mV": ("emg", 1e3),
    "V": ("emg", 1e6),
    "g": ("acc", 1.0),
    "m/s^2": ("acc", 1.0 / STANDARD_GRAVITY),
    "m/s2": ("acc", 1.0 / STANDARD_GRAVITY),
    "m/s²": ("acc", 1.0 / STANDARD_GRAVITY),
    "deg/s": ("gyro", 1.0),
    "°/s": ("gyro", 1.0),
    "dps": ("gyro", 1.0),
    "rad/s": ("gyro", 180.0 / np.pi),
}
_TYPE_WORDS: Final[dict[str, StreamKind]] = {
    "EMG": "emg",
    "ACC": "acc",
    "GYR": "gyro",
    "GYRO": "gyro",
    "ORI": "orientation",
    "QUAT": "orientation",
}
_UNITS: Final[dict[StreamKind, str]] = {
    "emg": Unit.MICROVOLT.symbol,
    "acc": Unit.G.symbol,
    "gyro": Unit.DEG_PER_S.symbol,
    "orientation": Unit.UNITLESS.symbol,
}
# Axis names per sensor kind, in the order the detector takes them (sessions number gyroscope axes 1–3).
_AXES: Final[dict[StreamKind, str]] = {"acc": "XYZ", "gyro": "XYZ123", "orientation": "WXYZ1234"}
_AXIS_SUFFIX: Final = re.compile(r"^(.*?[^\s_.-])[\s_.-]+([WXYZwxyz1-4])$")  # acc_x, wrist-Y, calf z, gyr 2
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:-]+")
_ANNOTATION_LABELS: Final = frozenset({"EDF Annotations", "BDF Annotations"})


class RecordingError(ValueError):
    """A recording cannot be read as asked; the message names the file and the line, byte or field."""


# ---- channels and what they hold ---------------------------------------------------------------------
@dataclass(frozen=True)
class Channel:
    """One signal in a file. ``signal`` is None when the channel is skipped; ``note`` says why, or which
    assumption was made about its values."""

    index: int  # EDF signal number / CSV column, from 0
    label: str
    dimension: str  # as written in the file ("" when it gives none)
    rate: float  # Hz
    signal: StreamKind | None
    muscle: str
    scale: float = 1.0  # file values × scale = µV (EMG) or g (accelerometer)
    sensor: str = ""  # axes of one accelerometer, gyroscope or orientation share one detector
    axis: str = ""  # X, Y, Z (accelerometer, gyroscope), W (orientation) or a number 1–4
    note: str = ""
    block: str = ""  # channels of different blocks never share a detector (a session's stream parts)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise RecordingError(
                f"channel {self.index} {self.label!r}: sample rate {self.rate} Hz is not positive"
            )

    @property
    def unit(self) -> str:
        return _UNITS[self.signal] if self.signal else self.dimension

    @property
    def display(self) -> str:
        dim = f" ({self.dimension})" if self.dimension else ""
        return f"#{self.index} {self.label!r}{dim}"


SampleClock = Callable[["Group", npt.NDArray[np.int64]], FloatArray]


def steady_seconds(group: Group, samples: npt.NDArray[np.int64]) -> FloatArray:
    return samples / group.rate


@dataclass(frozen=True)
class Recording:
    path: Path
    format: str  # "EDF+", "BDF+", "CSV", ...
    channels: tuple[Channel, ...]
    duration_s: float  # longest channel; for CSV estimated from the line count
    notes: tuple[str, ...] = ()
    # Sample indices of a group (from its first sample) → seconds from the file's start. Formats whose
    # samples follow one another at the rate keep the default; a session maps them through its frames'
    # device times, so events after a gap land when they happened, whoever runs the detection.
    seconds: SampleClock = field(default=steady_seconds, compare=False, repr=False)


def sanitise(name: str) -> str:
    """A muscle name from free text, kept to the topic segment rule (collector.topics)."""
    return _UNSAFE.sub("_", name).strip("_")[:64] or "unknown"


def infer_channel(index: int, label: str, dimension: str, rate: float) -> Channel:
    """Signal type, unit conversion, muscle and accelerometer axis from a label and a physical dimension."""
    dim = dimension.strip()
    word = _type_word(label)
    base = Channel(index, label, dim, rate, None, sanitise(label))
    if label.strip() in _ANNOTATION_LABELS:
        return replace(base, note="annotation signal, not used for detection")
    known = _DIMENSIONS.get(dim)
    if known is not None:
        signal, scale = known
        note = ""
        if word is not None and word != signal:
            note = f"the label says {word.upper()} but {dim} is a {_family(signal)}: used as {signal.upper()}"
        return _named(replace(base, signal=signal, scale=scale, note=note))
    if dim:
        return replace(
            base, note=f"dimension {dim!r} is neither a voltage, an acceleration nor an angular rate"
        )
    if word == "orientation":
        return _named(replace(base, signal=word, note="orientation: values taken as a unit quaternion"))
    if word is not None:
        return _named(
            replace(base, signal=word, note=f"no physical dimension: values taken as {_UNITS[word]}")
        )
    return replace(
        base,
        note="no physical dimension and no EMG/ACC/GYR/ORI in the label (name the type with --signal)",
    )


def force_signal(ch: Channel, signal: SignalKind, named: bool) -> Channel:
    """``--signal``: the type for a channel whose dimension is blank or a unit of that signal, and for a
    channel the user named explicitly (``named``) whatever its dimension (values then taken as they are)."""
    if ch.label.strip() in _ANNOTATION_LABELS:
        return ch
    known = _DIMENSIONS.get(ch.dimension)
    unit = _UNITS[signal]
    if known is not None and known[0] == signal:
        return _named(replace(ch, signal=signal, scale=known[1], note=""))
    if not ch.dimension:
        return _named(
            replace(ch, signal=signal, scale=1.0, note=f"no physical dimension: values taken as {unit}")
        )
    if named:
        return _named(
            replace(
                ch,
                signal=signal,
                scale=1.0,
                note=f"dimension {ch.dimension!r} forced: values taken as {unit}",
            )
        )
    return replace(
        ch,
        signal=None,
        note=f"dimension {ch.dimension!r} is not {signal.upper()}: name it with --channels to force --signal",
    )


def _family(signal: StreamKind) -> str:
    return {"emg": "voltage", "acc": "acceleration", "gyro": "angular rate"}.get(signal, "quaternion")


def _type_word(label: str) -> StreamKind | None:
    tokens = label.split()
    return _TYPE_WORDS.get(tokens[0].upper()) if tokens else None


def _named(ch: Channel) -> Channel:
    """Muscle, sensor and axis of a channel whose signal type is known."""
    tokens = ch.label.split()
    sensor, axis = ch.label.strip(), ""
    axes = _AXES.get(ch.signal) if ch.signal is not None else None
    if axes is not None:
        if len(tokens) >= 2 and len(tokens[-1]) == 1 and tokens[-1].upper() in axes:
            sensor, axis = " ".join(tokens[:-1]), tokens[-1].upper()
        elif (m := _AXIS_SUFFIX.match(sensor)) is not None and m.group(2).upper() in axes:
            sensor, axis = m.group(1), m.group(2).upper()
    words = sensor.split()
    muscle = words[1] if len(words) >= 2 and words[0].upper() in _TYPE_WORDS else sensor
    return replace(ch, muscle=sanitise(muscle), sensor=sensor, axis=axis)


# ---- what runs: detector groups ----------------------------------------------------------------------
@dataclass(frozen=True)
class Lane:
    """One detector lane as the user sees it: an EMG channel, or one accelerometer (all its axes)."""

    label: str
    muscle: str
    signal: StreamKind
    rate: float

    @property
    def unit(self) -> str:
        return _UNITS[self.signal]

    @property
    def twitches(self) -> bool:
        """Whether the lane can show twitches (EMG, accelerometer); a gyroscope or orientation only vetoes."""
        return self.signal in ("emg", "acc")


@dataclass(frozen=True)
class Group:
    """Channels that go through one detector: one rate and signal type; a sensor's axes together."""

    signal: StreamKind
    rate: float
    channels: tuple[Channel, ...]

    @property
    def lanes(self) -> tuple[Lane, ...]:
        if self.signal == "emg":
            return tuple(Lane(c.label, c.muscle, "emg", self.rate) for c in self.channels)
        first = self.channels[0]
        if len(self.channels) == 1:
            label = first.label
        else:
            label = f"{first.sensor} {'/'.join(c.axis or '?' for c in self.channels)}"
        return (Lane(label, first.muscle, self.signal, self.rate),)

    def chunk_samples(self, chunk_seconds: float) -> int:
        return max(1, round(chunk_seconds * self.rate))


@dataclass(frozen=True)
class Plan:
    recording: Recording
    groups: tuple[Group, ...]
    skipped: tuple[Channel, ...]  # selected but not detectable, each with its note
    unselected: int = 0


def plan_detection(
    recording: Recording,
    select: Sequence[str] | None = None,
    signal: SignalKind | None = None,
    muscle: str | None = None,
) -> Plan:
    """Which channels go through which detector. ``select`` holds labels or indices (``--channels``),
    ``signal`` overrides the inferred type (``--signal``), ``muscle`` names the muscle of every selected
    channel (``--muscle``)."""
    if muscle is not None:
        check_segment(muscle, "muscle")
    chosen = _select(recording, select) if select else list(recording.channels)
    if signal is not None:
        chosen = [force_signal(c, signal, named=bool(select)) for c in chosen]
    if muscle is not None:
        chosen = [replace(c, muscle=muscle) if c.signal else c for c in chosen]
    used = [c for c in chosen if c.signal is not None]
    skipped = tuple(c for c in chosen if c.signal is None)
    if not used:
        why = "; ".join(f"{c.display}: {c.note}" for c in skipped) or "the file has no signals"
        raise RecordingError(
            f"{recording.path}: no EMG or accelerometer channel to run a detector on ({why})"
        )
    return Plan(recording, _group(used), skipped, len(recording.channels) - len(chosen))


def _select(recording: Recording, select: Sequence[str]) -> list[Channel]:
    by_label = {c.label: c for c in recording.channels}
    by_index = {c.index: c for c in recording.channels}
    out: list[Channel] = []
    for name in select:
        ch = by_label.get(name) or by_label.get(name.strip())
        if ch is None and name.strip().isdigit():
            ch = by_index.get(int(name))
        if ch is None:
            known = ", ".join(f"{c.index}={c.label!r}" for c in recording.channels)
            raise RecordingError(f"{recording.path}: no channel {name!r} (channels: {known})")
        if ch not in out:
            out.append(ch)
    return sorted(out, key=lambda c: c.index)


def _group(channels: list[Channel]) -> tuple[Group, ...]:
    keyed: dict[tuple[StreamKind, float, str, str], list[Channel]] = {}
    for c in channels:
        assert c.signal is not None
        # All EMG channels of one rate share a vectorised detector; each other sensor gets its own.
        key = (c.signal, c.rate, "" if c.signal == "emg" else c.sensor, c.block)
        keyed.setdefault(key, []).append(c)
    groups = []
    for (signal, rate, _, _), members in keyed.items():
        if signal != "emg":
            order = _AXES[signal]
            members.sort(key=lambda c: (order.find(c.axis) if c.axis else len(order), c.index))
        groups.append(Group(signal, rate, tuple(members)))
    return tuple(groups)


# ---- readers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of one group, in µV or g: ``data`` is (samples, channels of the group)."""

    group: int
    start: int  # sample index from the file's start, at the group's rate
    data: FloatArray
    rate: float

    @property
    def end_s(self) -> float:
        return (self.start + int(self.data.shape[0])) / self.rate


class RecordingReader(abc.ABC):
    """Open a file, describe it, stream it. Subclasses register themselves by ``EXTENSIONS``."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[RecordingReader]]] = {}

    recording: Recording

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for ext in cls.__dict__.get("EXTENSIONS", ()):  # its own, not those it inherits
            other = RecordingReader._registry.setdefault(ext.lower(), cls)
            if other is not cls:
                raise TypeError(f"{cls.__name__} and {other.__name__} both claim {ext!r}")

    @classmethod
    def supported(cls) -> tuple[str, ...]:
        return tuple(sorted(cls._registry))

    @classmethod
    def reader_for(cls, path: Path) -> type[RecordingReader]:
        found = cls._registry.get(path.suffix.lower())
        if found is None:
            raise RecordingError(
                f"{path}: unsupported file type {path.suffix or '(no extension)'!r} "
                f"(supported: {', '.join(cls.supported())})"
            )
        return found

    @abc.abstractmethod
    def __init__(self, path: Path, rate: float | None = None) -> None: ...

    @abc.abstractmethod
    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        """Every sample of every group, at most ``group.chunk_samples(chunk_seconds)`` per chunk, the groups
        interleaved so they advance through the file together."""

    def close(self) -> None:  # noqa: B027 (readers without resources need nothing)
        pass

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_recording(path: Path, rate: float | None = None) -> RecordingReader:
    """The reader for ``path``'s extension. ``rate`` (Hz) is for formats that do not carry one (CSV)."""
    cls = RecordingReader.reader_for(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise RecordingError(f"{path}: sample rate must be a positive number of Hz, not {rate}")
    try:
        return cls(path, rate)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _check_chunk_seconds(chunk_seconds: float) -> None:
    if not 0 < chunk_seconds <= MAX_CHUNK_S:
        raise RecordingError(f"chunk length must be > 0 and at most {MAX_CHUNK_S:g} s, not {chunk_seconds}")


# ---- EDF / EDF+ / BDF / BDF+ -------------------------------------------------------------------------
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
    """What :func:`check_edf_header` found: enough to know the file is whole and what it holds."""

    bdf: bool
    reserved: str  # "EDF+C", "EDF+D", "BDF+C", ... or blank for plain EDF/BDF
    records: int
    record_s: float
    labels: tuple[str, ...]

    @property
    def discontinuous(self) -> bool:
        return self.reserved.startswith(("EDF+D", "BDF+D"))


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
        if version not in (b"0       ", b"\xffBIOSEMI"):
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
        per_record = sum(self._check_signal(i) for i in range(self.ns))
        record_bytes = per_record * (3 if bdf else 2)
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
        return EdfHeader(bdf, reserved, records, record_s, tuple(self.labels))

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


class EdfReader(RecordingReader):
    """EDF, EDF+, BDF and BDF+ through pyedflib; each signal keeps its own rate. EDF+ annotations are not
    read (detection does not need them)."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".edf", ".bdf")

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is not None:
            raise RecordingError(f"{path}: EDF and BDF files carry each signal's rate (--rate is for CSV)")
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(256)
            if len(head) == 256 and head[252:256].strip().isdigit():
                head += f.read(256 * int(head[252:256]))
        # Checked here first: edflib's own messages are vaguer, and it prints size mismatches to stdout.
        header = check_edf_header(head, size, str(path))
        try:
            self._edf = pyedflib.EdfReader(str(path), pyedflib.DO_NOT_READ_ANNOTATIONS)
        except OSError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            raise RecordingError(f"{path}: cannot read: {reason}") from None
        try:
            self.recording = self._describe(path, header)
        except BaseException:
            self._edf.close()
            raise

    def _describe(self, path: Path, header: EdfHeader) -> Recording:
        edf = self._edf
        kind = {0: "EDF", 1: "EDF+", 2: "BDF", 3: "BDF+"}.get(edf.filetype, "EDF")
        self._samples = [int(edf.samples_in_file(i)) for i in range(edf.signals_in_file)]
        channels = tuple(
            infer_channel(i, edf.getLabel(i), edf.getPhysicalDimension(i), float(edf.getSampleFrequency(i)))
            for i in range(edf.signals_in_file)
        )
        notes = []
        hidden = len(header.labels) - len(channels)
        if hidden:
            notes.append(f"{hidden} EDF+ annotation signal(s) not used for detection")
        if header.discontinuous:
            notes.append(f"{kind} discontinuous (+D): times count recorded samples; gaps are not included")
        duration = max((n / c.rate for n, c in zip(self._samples, channels, strict=True)), default=0.0)
        return Recording(path, kind, channels, duration, tuple(notes))

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        _check_chunk_seconds(chunk_seconds)
        sizes = [g.chunk_samples(chunk_seconds) for g in groups]
        totals = [self._samples[g.channels[0].index] for g in groups]
        step = 0
        while any(step * n < total for n, total in zip(sizes, totals, strict=True)):
            for gi, group in enumerate(groups):
                start = step * sizes[gi]
                n = min(sizes[gi], totals[gi] - start)
                if n <= 0:
                    continue
                data = np.empty((n, len(group.channels)))
                for j, ch in enumerate(group.channels):
                    data[:, j] = self._edf.readSignal(ch.index, start, n)
                    data[:, j] *= ch.scale
                yield Chunk(gi, start, data, group.rate)
            step += 1

    def close(self) -> None:
        self._edf.close()


# ---- CSV / TSV / text ------------------------------------------------------------------------------
_TIME_NAMES: Final = frozenset({"time", "t", "timestamp"})
_LABEL_UNIT: Final = re.compile(r"^(.*?)\s*[\[(]\s*([^\])]*?)\s*[\])]\s*$")  # "EMG calf [mV]", "acc_x (g)"


class CsvReader(RecordingReader):
    """Numeric columns, one sample per row, at one rate given by the caller. ``#`` lines and blank lines
    are skipped. An optional header row names the channels; a label may carry its unit in brackets
    (``EMG calf [mV]``); a column named time, t or timestamp is skipped. Delimiter: tab, semicolon, comma
    or whitespace, whichever the first data row uses. Text is UTF-8 (a byte-order mark is fine)."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".csv", ".tsv", ".txt")

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is None:
            raise RecordingError(f"{path}: a CSV file has no sample rate: pass it (--rate HZ)")
        self.path, self.rate = path, rate
        self._file = path.open("rb")
        self._line_no = 0
        self._started = False
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _next_line(self) -> str | None:
        """The next non-blank, non-comment line (stripped), counting physical lines."""
        for raw in self._file:
            self._line_no += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                where = f"{self.path}: line {self._line_no}, character {exc.start + 1}"
                raise RecordingError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02X})") from None
            line = line.removeprefix("\ufeff").strip() if self._line_no == 1 else line.strip()
            if line and not line.startswith("#"):
                return line
        return None

    def _split(self, line: str) -> list[str]:
        if self._delimiter is None:
            return line.split()
        return [f.strip() for f in next(csv.reader([line], delimiter=self._delimiter))]

    @staticmethod
    def _delimiter_of(row: str) -> str | None:
        """Tab, semicolon or comma if the row has one; whitespace (None) between several values; a single
        column otherwise (split on a comma it does not have)."""
        found = next((d for d in ("\t", ";", ",") if d in row), None)
        if found is None and len(row.split()) == 1:
            return ","
        return found

    def _open(self) -> None:
        first = self._next_line()
        if first is None:
            raise RecordingError(f"{self.path}: no data rows")
        first_no = self._line_no
        self._delimiter = self._delimiter_of(first)
        fields = self._split(first)
        header = not all(_is_number(f) for f in fields)
        row, row_no = first, first_no
        if header:
            data = self._next_line()
            if data is None:
                raise RecordingError(f"{self.path}: no data rows after the header on line {first_no}")
            row, row_no = data, self._line_no
            self._delimiter = self._delimiter_of(row)
            fields = self._split(first)
            values = len(self._split(row))
            if values != len(fields):
                spaces = (
                    " (whitespace-separated: labels cannot contain spaces)" if self._delimiter is None else ""
                )
                raise RecordingError(
                    f"{self.path}: {len(fields)} labels in the header on line {first_no}, but line {row_no} "
                    f"has {values} values{spaces}"
                )
        self._columns = len(fields)
        self._pending: tuple[str, int] | None = (row, row_no)
        self._data_start_line = row_no
        channels: list[Channel] = []
        notes: list[str] = []
        for i, name in enumerate(fields if header else [f"ch{i}" for i in range(len(fields))]):
            label, unit = name, ""
            if (m := _LABEL_UNIT.match(name)) is not None:
                label, unit = m.group(1), m.group(2)
            label = label or f"ch{i}"
            if header and label.lower() in _TIME_NAMES:
                channels.append(Channel(i, label, unit, self.rate, None, sanitise(label), note="time column"))
            else:
                channels.append(infer_channel(i, label, unit, self.rate))
        if len({c.label for c in channels}) < len(channels):
            notes.append("repeated column labels: select those channels by index")
        rows = self._count_rows()
        self.recording = Recording(self.path, "CSV", tuple(channels), rows / self.rate, tuple(notes))

    def _count_rows(self) -> int:
        """Rows from the first data row on, from a byte scan for newlines (for progress; blank and comment
        lines among the data count too)."""
        lines, last = 0, b"\n"
        with self.path.open("rb") as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"
        return max(0, lines - self._data_start_line + 1)

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        _check_chunk_seconds(chunk_seconds)
        if self._started:
            raise RecordingError(f"{self.path}: a CSV file streams once; open it again to reread")
        self._started = True
        n = max(1, round(chunk_seconds * self.rate))
        used = sorted({c.index for g in groups for c in g.channels})
        where = {col: k for k, col in enumerate(used)}
        picks = [np.array([where[c.index] for c in g.channels]) for g in groups]
        scales = [np.array([c.scale for c in g.channels]) for g in groups]
        start = 0
        while True:
            lines, numbers = self._take(n)
            if not lines:
                return
            block = self._parse(lines, numbers, used)
            for gi, group in enumerate(groups):
                yield Chunk(gi, start, block[:, picks[gi]] * scales[gi], group.rate)
            start += len(lines)

    def _take(self, n: int) -> tuple[list[str], list[int]]:
        lines: list[str] = []
        numbers: list[int] = []
        if self._pending is not None:
            lines.append(self._pending[0])
            numbers.append(self._pending[1])
            self._pending = None
        while len(lines) < n and (line := self._next_line()) is not None:
            lines.append(line)
            numbers.append(self._line_no)
        return lines, numbers

    def _parse(self, lines: list[str], numbers: list[int], used: list[int]) -> FloatArray:
        """numpy's parser for the whole block; on any doubt, the row-by-row check names line and column."""
        if self._delimiter is not None:
            expected = self._columns - 1
            if any(line.count(self._delimiter) != expected for line in lines):
                self._check_rows(lines, numbers, used)  # or a quoted delimiter, which is fine
        try:
            block = np.loadtxt(
                lines,
                dtype=np.float64,
                delimiter=self._delimiter,
                usecols=used,
                ndmin=2,
                comments=None,
                quotechar='"' if self._delimiter is not None else None,
            )
        except ValueError as exc:
            self._check_rows(lines, numbers, used)
            raise RecordingError(f"{self.path}: lines {numbers[0]}–{numbers[-1]}: {exc}") from None
        if block.shape != (len(lines), len(used)) or not np.isfinite(block).all():
            self._check_rows(lines, numbers, used)
            raise RecordingError(f"{self.path}: lines {numbers[0]}–{numbers[-1]} are not all finite numbers")
        return block

    def _check_rows(self, lines: list[str], numbers: list[int], used: list[int]) -> None:
        """Row by row, in Python: raise naming the first bad line and column."""
        labels = {c.index: c.label for c in self.recording.channels}
        for line, number in zip(lines, numbers, strict=True):
            fields = self._split(line)
            if len(fields) != self._columns:
                raise RecordingError(
                    f"{self.path}: line {number}: {len(fields)} fields, expected {self._columns}"
                )
            for col in used:
                text = fields[col]
                where = f"{self.path}: line {number}, column {col + 1} ({labels[col]!r})"
                if not _is_number(text):
                    raise RecordingError(f"{where}: {text!r} is not a number")
                if not np.isfinite(float(text)):
                    raise RecordingError(f"{where}: {text!r} is not a finite number")

    def close(self) -> None:
        self._file.close()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- twitchwatch sessions (HDF5) ---------------------------------------------------------------------
_SESSION_DIMENSIONS: Final[dict[Unit, str]] = {Unit.MICROVOLT: "µV", Unit.G: "g", Unit.DEG_PER_S: "°/s"}
_COUNTS_SIGNALS: Final[dict[str, SignalKind]] = {"emg": "emg", "acc": "acc"}


class SessionReader(RecordingReader):
    """The project's own HDF5 session files (``twitchwatch record``; collector/session.py). Each stream
    part is its own detector block, labelled as ``twitchwatch export`` labels it (``EMG calf_left``,
    ``ACC calf_left X``), so detecting on a session and on its EDF+ export name the same lanes. Times
    come from the frames' device clocks: an event after a lost frame or a clock jump is reported when it
    happened, not shifted by the missing span (the detector itself sees the samples back to back, as the
    worker does live)."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".h5", ".hdf5")

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is not None:
            raise RecordingError(f"{path}: a session carries each stream's rate (--rate is for CSV)")
        try:
            self._session = Session(path)
        except SessionError as exc:
            raise RecordingError(str(exc)) from None
        try:
            self.recording = self._describe(path)
        except BaseException:
            self._session.close()
            raise

    def _describe(self, path: Path) -> Recording:
        s = self._session
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
            path, "twitchwatch session", tuple(channels), s.duration_s, tuple(notes), self._seconds
        )

    @staticmethod
    def _channel(index: int, label: str, part: StreamRecord) -> Channel:
        rate = part.sample_rate
        dimension = _SESSION_DIMENSIONS.get(part.unit)
        if dimension is not None:
            ch = infer_channel(index, label, dimension, rate)
        elif part.unit is Unit.UNITLESS and part.signal == "orientation":
            ch = replace(infer_channel(index, label, "", rate), signal="orientation")
            ch = _named(replace(ch, note=f"{part.label}: orientation, values taken as a unit quaternion"))
        elif part.unit is Unit.UNITLESS and (kind := _COUNTS_SIGNALS.get(part.signal)) is not None:
            # Myo-class EMG arrives in device units: the detector's thresholds are relative to the
            # noise floor it learns, so it runs; absolute limits (artifacts) do not apply as designed.
            ch = force_signal(infer_channel(index, label, "", rate), kind, named=True)
            ch = replace(ch, note=f"{part.label}: no physical unit (device counts): values used as they are")
        else:
            ch = replace(
                infer_channel(index, label, part.unit.symbol, rate),
                signal=None,
                note=f"{part.label}: a {part.signal or part.unit.symbol} stream, not EMG, acceleration, "
                "angular rate or orientation",
            )
        return replace(ch, block=part.path)

    def _seconds(self, group: Group, samples: npt.NDArray[np.int64]) -> FloatArray:
        part = self._parts[group.channels[0].index]
        first, t0 = self._frames_of(part)
        k = np.clip(np.searchsorted(first, samples, side="right") - 1, 0, len(first) - 1)
        offset_ns = (samples - first[k]) * (1e9 / part.sample_rate)
        return ((t0[k] - self._session.start_ns) + offset_ns) / 1e9

    def _frames_of(self, part: StreamRecord) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Each frame's first sample and device time, read once per part (16 bytes a frame) rather than
        on every chunk that releases events."""
        cached = self._frame_times.get(part.path)
        if cached is None:
            frames = self._session.frame_table(part)
            cached = (frames["first_sample"].astype(np.int64), frames["t0_ns"].astype(np.int64))
            self._frame_times[part.path] = cached
        return cached

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        _check_chunk_seconds(chunk_seconds)
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
                try:
                    raw = self._session.samples(parts[gi], start, stop)
                except SessionError as exc:
                    raise RecordingError(str(exc)) from None
                data = raw[:, columns[gi]].astype(np.float64) * float(np.float32(parts[gi].scale))
                data *= np.array([c.scale for c in group.channels])
                yield Chunk(gi, start, data, group.rate)
            step += 1

    def _columns(self, group: Group) -> list[int]:
        """Each channel's column in its part's sample table (channels were numbered part by part)."""
        part = self._parts[group.channels[0].index]
        first = min(i for i, p in self._parts.items() if p is part)
        return [c.index - first for c in group.channels]

    def close(self) -> None:
        self._session.close()


# ---- detection over a recording ----------------------------------------------------------------------
@dataclass(frozen=True)
class RecordingEvent:
    """A detected event, times in seconds from the file's start. ``reason``: why a twitch-shaped event does
    not count (``during_movement``: what it looked like and what vetoed it), else ""."""

    start: float
    end: float
    kind: EventKind
    channel: str
    muscle: str
    amplitude: float
    unit: str
    confidence: float
    dominant_hz: float | None
    reason: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1e3

    def to_json_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind.value,
            "channel": self.channel,
            "muscle": self.muscle,
            "amplitude": self.amplitude,
            "unit": self.unit,
            "duration_ms": round(self.duration_ms, 3),
            "confidence": self.confidence,
            "dominant_hz": self.dominant_hz,
            "reason": self.reason,
        }


@dataclass
class LaneSummary:
    lane: Lane
    samples: int = 0
    counts: Counter[EventKind] = field(default_factory=Counter)
    assessable_s: float | None = None  # after finish(), for twitch lanes when the gate ran

    @property
    def seconds(self) -> float:
        return self.samples / self.lane.rate

    @property
    def twitches(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind.is_twitch)

    @property
    def per_minute(self) -> float:
        return self.twitches * 60.0 / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_assessable_minute(self) -> float | None:
        """Twitches per minute the lane could be assessed (at rest and still): the rate that means
        something; None where it is not known (no gate, a gyroscope) or no time was assessable."""
        if self.assessable_s is None or self.assessable_s <= 0:
            return None
        return self.twitches * 60.0 / self.assessable_s


DEVICE: Final = "recording"  # a recording's streams are one device


class DetectionRun:
    """The worker's streaming detectors over a plan's groups, through the rest gate (``gate=False``: the
    detectors alone): feed chunks, get events in file time (the recording's own ``seconds`` clock)."""

    def __init__(self, plan: Plan, gate: bool = True) -> None:
        self.plan = plan
        self.gated = gate
        detectors: list[Detector] = []
        for g in plan.groups:
            try:
                detectors.append(make_detector(g.signal, g.rate, len(g.channels)))
            except ValueError as exc:
                names = ", ".join(repr(c.label) for c in g.channels)
                raise RecordingError(
                    f"{plan.recording.path}: the {g.signal.upper()} detector cannot run at {g.rate:g} Hz "
                    f"({names}): {exc}"
                ) from None
        streams = [_gate_stream(gi, g) for gi, g in enumerate(plan.groups)]
        clocks = [partial(plan.recording.seconds, g) for g in plan.groups]
        self._run = GatedRun(streams, clocks=clocks, detectors=detectors, judge=gate)
        self.summaries = [[LaneSummary(lane) for lane in g.lanes] for g in plan.groups]

    def feed(self, chunk: Chunk) -> list[RecordingEvent]:
        for s in self.summaries[chunk.group]:
            s.samples += chunk.data.shape[0]
        return self._events(self._run.feed(chunk.group, chunk.data))

    def finish(self) -> list[RecordingEvent]:
        out = self._events(self._run.finish())
        if self.gated:
            for gi, group in enumerate(self.summaries):
                for lane, s in enumerate(group):
                    if s.lane.twitches:
                        s.assessable_s = self._run.assessable_s(gi, lane)
        return out

    def _events(self, judged: list[Judged]) -> list[RecordingEvent]:
        out = []
        for j in judged:
            lane = self.plan.groups[j.stream].lanes[j.detection.lane]
            self.summaries[j.stream][j.detection.lane].counts[j.kind] += 1
            d = j.detection
            out.append(
                RecordingEvent(
                    round(j.start_s, 6),
                    round(j.end_s, 6),
                    j.kind,
                    lane.label,
                    lane.muscle,
                    round(float(d.peak), 6),
                    lane.unit,
                    d.confidence,
                    round(float(d.dominant_hz), 2) if lane.twitches else None,
                    j.reason,
                )
            )
        return sorted(out, key=lambda e: (e.start, e.channel))

    @property
    def lane_summaries(self) -> list[LaneSummary]:
        return [s for group in self.summaries for s in group]


def _gate_stream(gi: int, g: Group) -> GateStream:
    """A detector group as the gate sees it: one device; EMG lanes each their channel's muscle, a sensor
    its first channel's."""
    lanes = g.lanes
    twitch = lanes[0].twitches
    muscles = tuple(lane.muscle for lane in lanes) if twitch else ()
    return GateStream(
        f"group{gi}",
        g.signal,
        g.rate,
        len(g.channels),
        DEVICE,
        muscles,
        lane_labels=tuple(lane.label for lane in lanes),
    )
