"""What a recording is, whatever its format: the :class:`Recording` value and the rules for its channels.

A :class:`Recording` describes one file: each channel's label, physical dimension, rate, inferred signal type
and muscle (:class:`Channel`), how its samples map to time (``seconds``; ``start_ns`` where the file says when
it began), its annotations and notes. Its ``streams`` are the channels as a wearable would send them: the EMG
channels of one rate together, each accelerometer, gyroscope or orientation sensor with its axes
(:class:`Group`). Readers (``collector.recordings.reader``) fill it in and stream :class:`Chunk` s of samples
in the detectors' units.

Signal type per channel, from its physical dimension (µV, uV, mV, V → EMG, converted to µV; g, mg, m/s² →
accelerometer, converted to g; deg/s, °/s, dps, rad/s → gyroscope, converted to °/s) or, where the file
gives none, from a word of the label (``EMG``, ``ACC``/``accel``/``accelerometer``, ``GYR``/``gyro``,
``ORI``/``QUAT``: an orientation quaternion, w x y z; ``acc_x``, ``EMG1`` and ``accX`` count). A 3-axis
accelerometer with no unit is read in the unit gravity shows in it (``gravity_unit``: g, m/s² or milli-g).
A label like ``EMG calf_left`` or ``ACC calf_left X`` also names the muscle (the word after the type) and,
for an accelerometer, gyroscope or orientation, the axis; otherwise the muscle is the label's words other
than the type, or the label itself, made safe for topics and tags (``[A-Za-z0-9_.:-]``). Axes of one sensor
(same label apart from a trailing X/Y/Z, W, or 1–4, or an ``x-axis`` word) are one stream. Channels with
any other dimension (temperature, force, EDF+ annotations, ...) are skipped with a note saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.signals import DIMENSIONS, KINDS, STANDARD_GRAVITY, StreamKind, unit_symbol
from twitchwatch.errors import UserError

FloatArray = npt.NDArray[np.float64]
Category = Literal["truth", "marker"]
Role = Literal["", "time", "counter", "label"]

DEFAULT_CHUNK_S: Final = 1.0
MAX_CHUNK_S: Final = 60.0


class RecordingError(UserError, ValueError):
    """A recording cannot be read or written as asked; the message names the file and the line, byte or
    field."""


_TYPE_WORDS: Final[dict[str, StreamKind]] = {
    "EMG": "emg",
    "SEMG": "emg",
    "EXG": "emg",  # OpenBCI's GUI names its electrode channels so (µV); on a muscle they record its EMG
    "ACC": "acc",
    "ACCEL": "acc",
    "ACCELERATION": "acc",
    "ACCELEROMETER": "acc",
    "GYR": "gyro",
    "GYRO": "gyro",
    "GYROSCOPE": "gyro",
    "ORI": "orientation",
    "QUAT": "orientation",
}
# Labels of other body signals, recorded beside EMG by the same amplifiers (a Polar H10's ECG, an OpenBCI
# board's EEG) and in the same µV: their beats and waves are no muscle's twitches.
_OTHER_WORDS: Final = frozenset({"ECG", "EKG", "EEG", "EOG", "PPG", "BVP", "EDA", "GSR", "RESP"})
_AXIS_SUFFIX: Final = re.compile(r"^(.*?[^\s_.-])[\s_.-]+([WXYZwxyz1-4])$")  # acc_x, wrist-Y, calf z, gyr 2
_CAMEL_AXIS: Final = re.compile(r"^(.*[a-z])([WXYZ])$")  # accX, wristGyrZ
# "accelerometer x-axis", "gyro Y axis"
_AXIS_WORD: Final = re.compile(r"^(.*?)[\s_.-]*\b([XYZxyz])[\s_-]?axis$", re.IGNORECASE)
_WORD_SEP: Final = re.compile(r"[\s_.-]+")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:-]+")
ANNOTATION_LABELS: Final = frozenset({"EDF Annotations", "BDF Annotations"})


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
    scale: float = 1.0  # file values × scale (+ offset) = µV (EMG), g (accelerometer) or °/s (gyroscope)
    sensor: str = ""  # axes of one accelerometer, gyroscope or orientation share one stream
    axis: str = ""  # X, Y, Z (accelerometer, gyroscope), W (orientation) or a number 1–4
    note: str = ""
    block: str = ""  # channels of different blocks never share a stream (a session's stream parts)
    offset: float = 0.0  # added after ``scale``: ADC counts whose zero is not the unit's (PLUX's sensors)
    # A column that is the file's time, sample count or labels (a class, a marker): never a signal, even by
    # --signal.
    role: Role = ""
    # How gravity reads in this column's sensor (its three axes together; median over the file's first
    # rows), where the file gives no unit: what tells g, m/s² and milli-g apart (``gravity_unit``).
    gravity: float | None = None

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


def infer_channel(
    index: int,
    label: str,
    dimension: str,
    rate: float,
    gravity: float | None = None,
    sensor: tuple[str, str] = ("", ""),
) -> Channel:
    """Signal type, unit conversion, muscle and sensor axis from a label and a physical dimension.
    ``gravity``: how gravity reads in the column's sensor (``Channel.gravity``); ``sensor``: (sensor, axis)
    where the file's layout says so and the label does not (``named``)."""
    dim = dimension.strip()
    word = _type_word(label)
    base = Channel(
        index, label, dim, rate, None, sanitise(label), gravity=gravity, sensor=sensor[0], axis=sensor[1]
    )
    if label.strip() in ANNOTATION_LABELS:
        return replace(base, note="annotation signal, not used for detection")
    if (other := _other_word(label)) is not None and word is None:
        return replace(
            base,
            note=f"the label says {other}: not a muscle's signal (--channels and --signal run it anyway)",
        )
    known = DIMENSIONS.get(dim)
    if ((known is not None and known[0] != "emg") or word in ("acc", "gyro")) and _derived(label):
        return replace(base, note="a magnitude derived from the axes, not an axis: the axes are read instead")
    if known is not None:
        signal, scale = known
        note = ""
        if word is not None and word != signal:
            family = KINDS[signal].family
            note = f"the label says {word.upper()} but {dim} is a {family}: used as {signal.upper()}"
        elif signal == "acc" and gravity is not None and not _is_gravity(gravity * scale):
            found = gravity_unit(gravity)
            if found is not None:  # gravity is 1 g: a file that says otherwise names the wrong unit
                scale = found[1]
                note = (
                    f"the file says {dim}, but gravity reads {gravity:.4g} in its sensor: taken as {found[0]}"
                )
        return named(replace(base, signal=signal, scale=scale, note=note))
    if dim:
        return replace(
            base, note=f"dimension {dim!r} is neither a voltage, an acceleration nor an angular rate"
        )
    if word == "orientation":
        return named(replace(base, signal=word, note="orientation: values taken as a unit quaternion"))
    if word is not None:
        return undimensioned(base, word)
    return replace(
        base,
        note="no physical dimension and no EMG/ACC/GYR/ORI in the label (name the type with --signal)",
    )


# Words of a column that is the axes' magnitude (phyphox's "Absolute acceleration", ActiGraph's "Vector
# Magnitude", a logger's "norm"): read as a one-axis sensor it was a lane of its own, whose every step
# looked like a jolt beside the sensor that already holds it.
_DERIVED_WORDS: Final = frozenset({"absolute", "magnitude", "resultant", "norm", "vm", "svm", "enmo"})


def _derived(label: str) -> bool:
    return any(w.lower() in _DERIVED_WORDS for w in label_words(label))


# How gravity's 1 g reads in each unit a file may leave unsaid. An accelerometer's median magnitude over a
# few seconds stays within a factor of 2 of 1 g whatever its wearer does (walking, running: peaks of
# 2-3 g, but the median stays near 1 g), and the three ranges are a decade apart: no overlap.
_GRAVITY_UNITS: Final = (("g", 1.0), ("m/s²", 1.0 / STANDARD_GRAVITY), ("milli-g", 1e-3))


def _is_gravity(g: float) -> bool:
    """A worn accelerometer's median magnitude, in g, can be this."""
    return 0.5 <= g <= 2.0


def gravity_unit(gravity: float) -> tuple[str, float] | None:
    """(unit name, factor to g) of the unit in which gravity reads ``gravity``, or None for none of them."""
    return next(((name, scale) for name, scale in _GRAVITY_UNITS if _is_gravity(gravity * scale)), None)


def undimensioned(ch: Channel, signal: StreamKind) -> Channel:
    """``ch`` as a ``signal`` channel whose file gives no unit. An accelerometer's unit is read off gravity
    where its three axes are known (``Channel.gravity``); one that fits no unit is left out, since taking
    raw counts as g would make every moment movement, and no twitch would ever be counted."""
    unit = unit_symbol(signal)
    if signal != "acc" or ch.gravity is None:
        return named(
            replace(ch, signal=signal, scale=1.0, note=f"no physical dimension: values taken as {unit}")
        )
    found = gravity_unit(ch.gravity)
    if found is None:
        guess = "no gravity in it: taken out, or mostly zeros" if ch.gravity < 1.0 else "raw counts?"
        return replace(
            ch,
            signal=None,
            note=(
                f"no physical dimension, and gravity reads {ch.gravity:.4g} in its sensor: neither g, m/s² "
                f"nor milli-g ({guess}); give the unit in the header, e.g. 'acc x [m/s^2]'"
            ),
        )
    name, scale = found
    converted = "" if scale == 1.0 else f", converted to {unit}"
    read = f"gravity reads {ch.gravity:.4g} in its sensor"
    note = f"no physical dimension: values taken as {name}{converted} ({read})"
    return named(replace(ch, signal=signal, scale=scale, note=note))


def force_signal(ch: Channel, signal: StreamKind, named_by_user: bool) -> Channel:
    """``--signal``: the type for a channel whose dimension is blank or a unit of that signal, and for a
    channel the user named explicitly (``named_by_user``) whatever its dimension (values then taken as they
    are). A file's time or sample-count column stays what it is unless the user named it."""
    if ch.label.strip() in ANNOTATION_LABELS:
        return ch
    if not named_by_user and (ch.role or (_other_word(ch.label) and _type_word(ch.label) is None)):
        return ch
    known = DIMENSIONS.get(ch.dimension)
    unit = unit_symbol(signal)
    if known is not None and known[0] == signal:
        return named(replace(ch, signal=signal, scale=known[1], note=""))
    if not ch.dimension:
        return undimensioned(ch, signal)
    if named_by_user:
        return named(
            replace(
                ch,
                signal=signal,
                scale=1.0,
                note=f"dimension {ch.dimension!r} taken as {unit} (forced with --channels and --signal)",
            )
        )
    return replace(
        ch,
        signal=None,
        note=f"dimension {ch.dimension!r} is not {signal.upper()}: name it with --channels to force --signal",
    )


def _type_word(label: str) -> StreamKind | None:
    """The signal type a label names: its first word (split on spaces, ``_``, ``-`` and ``.``) that is a
    type word, alone or with a channel number or an axis letter stuck to it (``EMG1``, ``accX``)."""
    for token in label_words(label):
        word = token.upper()
        for stem in (word, word.rstrip("0123456789"), word[:-1] if word[-1:] in "XYZ" else ""):
            kind = _TYPE_WORDS.get(stem)
            if kind is not None:
                return kind
    return None


def _other_word(label: str) -> str | None:
    return next(
        (w.upper() for w in label_words(label) if w.upper().rstrip("0123456789") in _OTHER_WORDS), None
    )


def untyped(label: str) -> bool:
    """A label that names no signal type, nor a signal twitchwatch leaves alone (ECG …)."""
    return _type_word(label) is None and _other_word(label) is None


def sensor_axis(label: str, axes: str) -> tuple[str, str]:
    """(sensor, axis) as a label names them: a last word of one axis letter (``ACC wrist X``), an axis
    word (``accelerometer x-axis``), an axis after a separator (``acc_x``, ``wrist-Y``) or stuck to a
    lowercase word (``accX``); else (label, "")."""
    sensor = label.strip()
    if len(sensor) == 1 and sensor.upper() in axes:  # "X", "y": the file's only sensor
        return "", sensor.upper()
    tokens = sensor.split()
    if len(tokens) >= 2 and len(tokens[-1]) == 1 and tokens[-1].upper() in axes:
        return " ".join(tokens[:-1]), tokens[-1].upper()
    for rule in (_AXIS_WORD, _AXIS_SUFFIX, _CAMEL_AXIS):
        if (m := rule.match(sensor)) is not None and m.group(2).upper() in axes:
            return m.group(1), m.group(2).upper()
    return sensor, ""


_NUMBERED: Final = re.compile(r"^(.*?[^\s_.-])[\s_.-]*\d+$")


def numbered_triples(labels: Mapping[int, str]) -> dict[str, list[int]]:
    """Three channels of one label, numbered and naming no axis (OpenBCI's ``Accel Channel 0``, ``… 1``,
    ``… 2``): one sensor's X, Y, Z in channel order, keyed by the label's stem."""
    by_stem: dict[str, list[int]] = {}
    for i, label in sorted(labels.items()):
        if not sensor_axis(label, "XYZ")[1] and (m := _NUMBERED.match(label)) is not None:
            by_stem.setdefault(m.group(1), []).append(i)
    return {stem: cols for stem, cols in by_stem.items() if len(cols) == 3}


def motion_axes(channels: Sequence[tuple[str, str]]) -> dict[int, tuple[str, str]]:
    """(sensor, axis) of numbered accelerometer and gyroscope channels (``numbered_triples``) among a file's
    (label, physical dimension) pairs, for ``infer_channel``: every format groups them as the CSV reader
    does (an OpenBCI BDF's three ``Accel Channel`` signals were three one-axis sensors)."""
    motion = {
        i: label
        for i, (label, dim) in enumerate(channels)
        if DIMENSIONS.get(dim.strip(), ("",))[0] in ("acc", "gyro") or _type_word(label) in ("acc", "gyro")
    }
    triples = numbered_triples(motion).items()
    return {i: (stem, axis) for stem, cols in triples for i, axis in zip(cols, "XYZ", strict=True)}


def label_words(label: str) -> list[str]:
    """A label's words, split on spaces, ``_``, ``-`` and ``.`` (``ankle_horiz_fwd`` → three)."""
    return [w for w in _WORD_SEP.split(label.strip()) if w]


def _muscle_of(sensor: str) -> str:
    """A sensor's muscle: the words after a leading type word (``EMG calf_left``; ``EXG Channel 0`` →
    ``Channel 0``, four of which must stay apart), else the sensor's words other than type words
    (``left_wrist_acc`` → ``left_wrist``), else the sensor itself."""
    words = sensor.split()
    if len(words) >= 2 and words[0].upper() in _TYPE_WORDS:
        return " ".join(words[1:])
    tokens = label_words(sensor)
    rest = [w for w in tokens if _type_word(w) is None]
    return "_".join(rest) if rest and len(rest) < len(tokens) else sensor


def named(ch: Channel) -> Channel:
    """Muscle, sensor and axis of a channel whose signal type is known. Where the label names no axis, the
    sensor and axis the file's layout gave (``infer_channel``'s ``sensor``) stand."""
    axes = KINDS[ch.signal].axes if ch.signal is not None else ""
    sensor, axis = sensor_axis(ch.label, axes) if axes else (ch.label.strip(), "")
    if axes and not axis and ch.sensor and ch.axis in axes:
        sensor, axis = ch.sensor, ch.axis
    if not sensor and ch.signal is not None:  # bare axis labels: the sensor is named by its kind
        sensor = KINDS[ch.signal].word
    return replace(ch, muscle=sanitise(_muscle_of(sensor)), sensor=sensor, axis=axis)


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


def stepped_chunks(
    groups: Sequence[Group],
    chunk_seconds: float,
    totals: Sequence[int],
    read: Callable[[int, int, int], FloatArray],
) -> Iterator[Chunk]:
    """Chunks of ``groups`` advancing through a file together, ``chunk_seconds`` of each a step, for formats
    that can read any span of a channel: ``read(group, start, n)`` gives a group's samples in its units,
    ``totals`` how many each group has."""
    check_chunk_seconds(chunk_seconds)
    sizes = [g.chunk_samples(chunk_seconds) for g in groups]
    step = 0
    while any(step * n < total for n, total in zip(sizes, totals, strict=True)):
        for gi, group in enumerate(groups):
            start = step * sizes[gi]
            n = min(sizes[gi], totals[gi] - start)
            if n > 0:
                yield Chunk(gi, start, read(gi, start, n), group.rate)
        step += 1


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
