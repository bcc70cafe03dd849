"""What a recording is, whatever its format: the :class:`Recording` value and the rules for its channels.

A :class:`Recording` describes one file: each channel's label, physical dimension, rate, inferred signal type
and muscle (:class:`Channel`), how its samples map to time (``seconds``; ``start_ns`` where the file says when
it began), its annotations and notes. Its ``streams`` are the channels as a wearable would send them: the EMG
channels of one rate together, each accelerometer, gyroscope or orientation sensor with its axes
(:class:`Group`). Readers (``collector.recordings.reader``) fill it in and stream :class:`Chunk` s of samples
in the detectors' units.

Signal type per channel, from its physical dimension (µV, uV, mV, V → EMG, converted to µV; g, m/s² →
accelerometer, converted to g; deg/s, °/s, dps, rad/s → gyroscope, converted to °/s) or, where the file gives
none, from a label that starts with ``EMG``, ``ACC``, ``GYR`` or ``ORI`` (an orientation quaternion, w x y z).
A label like ``EMG calf_left`` or ``ACC calf_left X`` also names the muscle (the word after the type) and, for
an accelerometer, gyroscope or orientation, the axis; otherwise the muscle is the label itself, made safe for
topics and tags (``[A-Za-z0-9_.:-]``). Axes of one sensor (same label apart from a trailing X/Y/Z, W, or 1–4)
are one stream. Channels with any other dimension (temperature, force, EDF+ annotations, ...) are skipped with
a note saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.frames import Unit

FloatArray = npt.NDArray[np.float64]
StreamKind = Literal["emg", "acc", "gyro", "orientation"]
Category = Literal["truth", "marker"]

STANDARD_GRAVITY: Final = 9.80665  # m/s² per g
DEFAULT_CHUNK_S: Final = 1.0
MAX_CHUNK_S: Final = 60.0


class RecordingError(ValueError):
    """A recording cannot be read or written as asked; the message names the file and the line, byte or
    field."""


# ---- signal kinds: one table ------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """What a signal kind is in a recording: the unit its samples are read in, the EDF physical dimension
    (ASCII: EDF headers are), the word a label starts with, and the axis names of its sensors in the order
    the detector takes them (sessions number gyroscope axes 1–3)."""

    unit: Unit
    dimension: str
    word: str
    axes: str
    family: str  # what its dimension is, for notes


KINDS: Final[dict[StreamKind, Kind]] = {
    "emg": Kind(Unit.MICROVOLT, "uV", "EMG", "", "voltage"),
    "acc": Kind(Unit.G, "g", "ACC", "XYZ", "acceleration"),
    "gyro": Kind(Unit.DEG_PER_S, "deg/s", "GYR", "XYZ123", "angular rate"),
    "orientation": Kind(Unit.UNITLESS, "", "ORI", "WXYZ1234", "quaternion"),
}

# Physical dimension → (signal type, factor to the kind's unit: µV for EMG, g for acceleration, °/s).
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
_AXIS_SUFFIX: Final = re.compile(r"^(.*?[^\s_.-])[\s_.-]+([WXYZwxyz1-4])$")  # acc_x, wrist-Y, calf z, gyr 2
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:-]+")
ANNOTATION_LABELS: Final = frozenset({"EDF Annotations", "BDF Annotations"})


def kind_of_unit(unit: Unit) -> StreamKind | None:
    """The signal kind a wire unit means; None for a unitless stream (device counts or a quaternion)."""
    return next((k for k, info in KINDS.items() if info.unit is unit and unit is not Unit.UNITLESS), None)


def stream_kind(name: str) -> StreamKind | None:
    """``name`` ("emg", "acc", "gyro", "orientation") as a signal kind; None for anything else."""
    return next((kind for kind in KINDS if kind == name), None)


def unit_symbol(kind: StreamKind) -> str:
    return KINDS[kind].unit.symbol


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
    scale: float = 1.0  # file values × scale = µV (EMG), g (accelerometer) or °/s (gyroscope)
    sensor: str = ""  # axes of one accelerometer, gyroscope or orientation share one stream
    axis: str = ""  # X, Y, Z (accelerometer, gyroscope), W (orientation) or a number 1–4
    note: str = ""
    block: str = ""  # channels of different blocks never share a stream (a session's stream parts)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise RecordingError(
                f"channel {self.index} {self.label!r}: sample rate {self.rate} Hz is not positive"
            )

    @property
    def unit(self) -> str:
        return unit_symbol(self.signal) if self.signal else self.dimension

    @property
    def display(self) -> str:
        dim = f" ({self.dimension})" if self.dimension else ""
        return f"#{self.index} {self.label!r}{dim}"


def sanitise(name: str) -> str:
    """A muscle name from free text, kept to the topic segment rule (collector.topics)."""
    return _UNSAFE.sub("_", name).strip("_")[:64] or "unknown"


def infer_channel(index: int, label: str, dimension: str, rate: float) -> Channel:
    """Signal type, unit conversion, muscle and sensor axis from a label and a physical dimension."""
    dim = dimension.strip()
    word = _type_word(label)
    base = Channel(index, label, dim, rate, None, sanitise(label))
    if label.strip() in ANNOTATION_LABELS:
        return replace(base, note="annotation signal, not used for detection")
    known = _DIMENSIONS.get(dim)
    if known is not None:
        signal, scale = known
        note = ""
        if word is not None and word != signal:
            family = KINDS[signal].family
            note = f"the label says {word.upper()} but {dim} is a {family}: used as {signal.upper()}"
        return named(replace(base, signal=signal, scale=scale, note=note))
    if dim:
        return replace(
            base, note=f"dimension {dim!r} is neither a voltage, an acceleration nor an angular rate"
        )
    if word == "orientation":
        return named(replace(base, signal=word, note="orientation: values taken as a unit quaternion"))
    if word is not None:
        return named(
            replace(base, signal=word, note=f"no physical dimension: values taken as {unit_symbol(word)}")
        )
    return replace(
        base,
        note="no physical dimension and no EMG/ACC/GYR/ORI in the label (name the type with --signal)",
    )


def force_signal(ch: Channel, signal: StreamKind, named_by_user: bool) -> Channel:
    """``--signal``: the type for a channel whose dimension is blank or a unit of that signal, and for a
    channel the user named explicitly (``named_by_user``) whatever its dimension (values then taken as they
    are)."""
    if ch.label.strip() in ANNOTATION_LABELS:
        return ch
    known = _DIMENSIONS.get(ch.dimension)
    unit = unit_symbol(signal)
    if known is not None and known[0] == signal:
        return named(replace(ch, signal=signal, scale=known[1], note=""))
    if not ch.dimension:
        return named(
            replace(ch, signal=signal, scale=1.0, note=f"no physical dimension: values taken as {unit}")
        )
    if named_by_user:
        return named(
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


def _type_word(label: str) -> StreamKind | None:
    tokens = label.split()
    return _TYPE_WORDS.get(tokens[0].upper()) if tokens else None


def named(ch: Channel) -> Channel:
    """Muscle, sensor and axis of a channel whose signal type is known."""
    tokens = ch.label.split()
    sensor, axis = ch.label.strip(), ""
    axes = KINDS[ch.signal].axes if ch.signal is not None else ""
    if axes:
        if len(tokens) >= 2 and len(tokens[-1]) == 1 and tokens[-1].upper() in axes:
            sensor, axis = " ".join(tokens[:-1]), tokens[-1].upper()
        elif (m := _AXIS_SUFFIX.match(sensor)) is not None and m.group(2).upper() in axes:
            sensor, axis = m.group(1), m.group(2).upper()
    words = sensor.split()
    muscle = words[1] if len(words) >= 2 and words[0].upper() in _TYPE_WORDS else sensor
    return replace(ch, muscle=sanitise(muscle), sensor=sensor, axis=axis)


# ---- streams: channels as a wearable sends them ------------------------------------------------------
@dataclass(frozen=True)
class Lane:
    """One detector lane as the user sees it: an EMG channel, or one accelerometer (all its axes)."""

    label: str
    muscle: str
    signal: StreamKind
    rate: float

    @property
    def unit(self) -> str:
        return unit_symbol(self.signal)

    @property
    def twitches(self) -> bool:
        """Whether the lane can show twitches (EMG, accelerometer); a gyroscope or orientation only vetoes."""
        return self.signal in ("emg", "acc")


@dataclass(frozen=True)
class Group:
    """Channels that travel and are detected together: one rate and signal type; a sensor's axes together."""

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


def group_channels(channels: Iterable[Channel]) -> tuple[Group, ...]:
    """Channels with a signal type as streams: all EMG channels of one rate (and block) together, each
    other sensor on its own with its axes in the detector's order."""
    keyed: dict[tuple[StreamKind, float, str, str], list[Channel]] = {}
    for c in channels:
        if c.signal is None:
            raise RecordingError(f"channel {c.display} has no signal type to stream")
        key = (c.signal, c.rate, "" if c.signal == "emg" else c.sensor, c.block)
        keyed.setdefault(key, []).append(c)
    groups = []
    for (signal, rate, _, _), members in keyed.items():
        if signal != "emg":
            order = KINDS[signal].axes
            members.sort(key=lambda c: (order.find(c.axis) if c.axis else len(order), c.index))
        groups.append(Group(signal, rate, tuple(members)))
    return tuple(groups)


# ---- samples and time --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of one group, in µV, g or °/s: ``data`` is (samples, channels of the group)."""

    group: int
    start: int  # sample index from the file's start, at the group's rate
    data: FloatArray
    rate: float

    @property
    def end_s(self) -> float:
        return (self.start + int(self.data.shape[0])) / self.rate


SampleClock = Callable[[Group, npt.NDArray[np.int64]], FloatArray]


def steady_seconds(group: Group, samples: npt.NDArray[np.int64]) -> FloatArray:
    return samples / group.rate


def check_chunk_seconds(chunk_seconds: float) -> None:
    if not 0 < chunk_seconds <= MAX_CHUNK_S:
        raise RecordingError(f"chunk length must be > 0 and at most {MAX_CHUNK_S:g} s, not {chunk_seconds}")


@dataclass(frozen=True, eq=False)
class Series:
    """One channel's samples to write: its label (``EMG calf_left``, ``ACC calf_left X``: what reading it
    back infers kind, muscle and axis from), kind, rate and values in the kind's unit (µV, g, °/s)."""

    label: str
    kind: StreamKind
    rate: float
    values: FloatArray

    def __post_init__(self) -> None:
        if self.values.ndim != 1:
            raise ValueError(f"{self.label}: one channel's values, not shape {self.values.shape}")
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"{self.label}: sample rate {self.rate} Hz is not positive")


@dataclass(frozen=True)
class Annotation:
    """Ground truth (``truth``: ``text`` is the event kind) or a note (``marker``: a user's marker, or an
    annotation another program wrote). ``onset_ns`` is on the recording's clock (ns since the Unix epoch
    where the file says when it started). ``data`` is JSON with anything else (truth: amplitude, unit,
    detail)."""

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
class Recording:
    """One recording file as read: its channels, how long it is, what was noticed while reading it, its
    clock and annotations."""

    path: Path
    format: str  # "EDF+", "BDF+", "CSV", "twitchwatch session", ...
    channels: tuple[Channel, ...]
    duration_s: float  # longest channel; for CSV estimated from the line count
    notes: tuple[str, ...] = ()
    # Sample indices of a group (from its first sample) → seconds from the file's start. Formats whose
    # samples follow one another at the rate keep the default; a session maps them through its frames'
    # device times, so events after a gap land when they happened, whoever runs the detection.
    seconds: SampleClock = field(default=steady_seconds, compare=False, repr=False)
    start_ns: int | None = None  # the first sample, ns since the Unix epoch, where the file says
    annotations: tuple[Annotation, ...] = ()

    @property
    def streams(self) -> tuple[Group, ...]:
        """The channels with a signal type, as a wearable would send them (what replay publishes)."""
        return group_channels(c for c in self.channels if c.signal is not None)
