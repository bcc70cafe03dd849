"""PhysioNet WFDB records: a ``.hea`` header (text) and its signal files (``.dat``), as PhysioNet publishes
its EMG, ECG and movement databases.

The header's record line names the record, the number of signals, the sampling frequency, the number of
samples and the start; each signal line names its file, storage format, gain (ADC units per physical unit),
baseline, unit, first value and description. Signals in one file are stored frame by frame, one sample of
each in turn. Read here: formats 16 (16-bit little-endian, PhysioNet's usual), 61 (big-endian), 80 (8-bit
offset), 160 (16-bit offset), 212 (two 12-bit samples in three bytes: older ECG databases), 24 and 32; one
sample per frame (``xsamp``) and one segment. Physical value = (ADC − baseline) / gain; a gain of 0 means
"uncalibrated" and is WFDB's default 200. The header's first value of each signal is checked against the
file: a wrong format or byte offset is caught there, not as nonsense detections. Units are the header's,
read case-blind for volts (emgdb writes ``mv``). Writes format 16 (the round trip, and a BDF-free way to
hand a recording to WFDB tools).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    Annotation,
    Channel,
    Chunk,
    Group,
    Recording,
    RecordingError,
    Series,
    infer_channel,
    motion_axes,
    stepped_chunks,
)
from twitchwatch.collector.recordings.reader import RecordingReader

FloatArray = npt.NDArray[np.float64]

DEFAULT_RATE: Final = 250.0  # WFDB's, where the record line gives none
DEFAULT_GAIN: Final = 200.0
PART_OF_HEADERS: Final = 200  # headers looked into for the one naming a signal file
# Storage format → (bytes per sample, numpy type, offset subtracted); 212 is packed and handled apart.
_FORMATS: Final[dict[int, tuple[int, str, int]]] = {
    16: (2, "<i2", 0),
    61: (2, ">i2", 0),
    80: (1, "u1", 128),
    160: (2, "<u2", 32768),
    24: (3, "", 0),
    32: (4, "<i4", 0),
    212: (0, "", 0),
}
_FORMAT_FIELD: Final = re.compile(r"^(\d+)(?:x(\d+))?(?::(-?\d+))?(?:\+(\d+))?$")
_GAIN_FIELD: Final = re.compile(r"^([-+0-9.eE]+)(?:\((-?\d+)\))?(?:/(\S+))?$")
_VOLTS: Final = {"mv": "mV", "uv": "uV", "µv": "uV", "v": "V"}
# PhysioNet's ECG records name a signal by its lead alone (MIT-BIH: MLII, V5), in mV like EMG: run as EMG,
# every heartbeat would count as a twitch.
_ECG_LEADS: Final = frozenset(
    {"I", "II", "III", "AVR", "AVL", "AVF", "ML", "MLI", "MLII", "MLIII", "D1", "D2", "D3"}
    | {f"{p}V{n}" for p in ("", "M") for n in range(1, 7)}
)
_WRITE_RANGE: Final = 30000  # of int16's 32767: room for rounding


@dataclass(frozen=True)
class _Signal:
    file: str
    format: int
    offset: int  # bytes before the first frame
    gain: float
    baseline: int
    units: str
    initial: int | None
    description: str


def _lines(text: str) -> list[str]:
    return [s for raw in text.splitlines() if (s := raw.split("#", 1)[0].strip())]


def _signal_line(fields: list[str], where: str) -> _Signal:
    m = _FORMAT_FIELD.match(fields[1])
    if m is None:
        raise RecordingError(f"{where}: storage format {fields[1]!r} is not a WFDB format field")
    fmt, xsamp, offset = int(m.group(1)), int(m.group(2) or 1), int(m.group(4) or 0)
    if fmt not in _FORMATS:
        known = ", ".join(str(f) for f in sorted(_FORMATS))
        raise RecordingError(f"{where}: storage format {fmt} is not read (formats read: {known})")
    if xsamp != 1:
        raise RecordingError(f"{where}: {xsamp} samples per frame (a multi-frequency record) are not read")
    gain, baseline, units = DEFAULT_GAIN, None, "mV"
    if len(fields) > 2:
        g = _GAIN_FIELD.match(fields[2])
        if g is None:
            raise RecordingError(f"{where}: gain field {fields[2]!r} is not gain[(baseline)][/units]")
        try:
            gain = float(g.group(1)) or DEFAULT_GAIN
        except ValueError:
            raise RecordingError(f"{where}: gain {g.group(1)!r} is not a number") from None
        baseline = int(g.group(2)) if g.group(2) is not None else None
        units = g.group(3) or units
    if not math.isfinite(gain):
        raise RecordingError(f"{where}: gain {gain} is not a finite number")
    ints = [_int(fields[i], where) if len(fields) > i else None for i in (4, 5)]  # adczero, initial value
    if baseline is None:
        baseline = ints[0] or 0
    description = " ".join(fields[8:]) if len(fields) > 8 else ""
    units = _VOLTS.get(units.lower(), units)
    return _Signal(fields[0], fmt, offset, gain, baseline, units, ints[1], description)


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RecordingError(f"{where}: {text!r} is not an integer") from None


def _start(fields: list[str], notes: list[str]) -> int | None:
    """The record line's base time and date (local time, as EDF's start; WFDB gives no zone)."""
    if len(fields) < 5:
        return None
    if len(fields) < 6:
        notes.append("the header gives a start time but no date: the start is not known")
        return None
    try:
        clock = [Decimal(p) for p in fields[4].split(":")]
        if not 1 <= len(clock) <= 3 or not all(c.is_finite() and c >= 0 for c in clock):
            raise ValueError(fields[4])
        seconds = sum((c * 60**k for k, c in enumerate(reversed(clock))), Decimal(0))
        day, month, year = (int(p) for p in fields[5].split("/"))
        midnight = dt.datetime(year, month, day).astimezone()  # local, as the format means
    except (ValueError, OverflowError, InvalidOperation):
        notes.append(f"base time/date {' '.join(fields[4:6])!r} not understood: the start is not known")
        return None
    return round(midnight.timestamp()) * 10**9 + int(seconds * 10**9)


def _is_header(lines: list[str]) -> bool:
    if not lines:
        return False
    record = lines[0].split()
    if len(record) < 2 or not record[1].isdigit():
        return False
    nsig = int(record[1])  # a record of no signals (annotations only) holds nothing to read
    signals = [line.split() for line in lines[1 : 1 + nsig]]
    return 0 < len(signals) == nsig and all(
        len(f) >= 2 and not f[0].lstrip("-").isdigit() and _FORMAT_FIELD.match(f[1]) for f in signals
    )


class WfdbReader(RecordingReader):
    """A PhysioNet WFDB record, opened by its ``.hea`` header; its signal files beside it."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".hea",)
    NOUN: ClassVar[str] = "a WFDB record"
    DESCRIPTION: ClassVar[str] = "a PhysioNet WFDB record (.hea with its .dat)"
    DEVICE_PREFIX: ClassVar[str] = "wfdb"

    @classmethod
    def claims(cls, head: bytes) -> bool:
        """A record line (name, number of signals) and that many signal lines (file, format)."""
        if b"\x00" in head:
            return False
        return _is_header(_lines(head.decode("utf-8", "replace")))

    @classmethod
    def part_of(cls, path: Path) -> Path | None:
        """A signal file a header beside it names: its namesake first, then up to ``PART_OF_HEADERS``
        others (a PhysioNet database's folder holds thousands)."""
        same = path.with_suffix(".hea")
        others = itertools.islice((h for h in path.parent.glob("*.hea") if h != same), PART_OF_HEADERS)
        for header in itertools.chain([same] if same.is_file() else [], others):
            try:
                text = header.read_text("utf-8", "replace")
            except OSError:
                continue
            lines = _lines(text)
            if _is_header(lines) and any(line.split()[0] == path.name for line in lines[1:]):
                return header
        return None

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is not None:
            raise RecordingError(f"{path}: a WFDB header carries the rate (--rate is for CSV)")
        if (header := self.part_of(path)) is not None and path.suffix.lower() != ".hea":
            raise RecordingError(f"{path}: a WFDB record's signal file: open its header, {header}")
        self.path = path
        try:
            text = path.read_text("utf-8", "replace")
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
        self.recording = self._describe(_lines(text))

    def _describe(self, lines: list[str]) -> Recording:
        if not _is_header(lines):
            raise RecordingError(
                f"{self.path}: not a WFDB header (a record line 'name signals [rate [samples]]', then one "
                "line per signal: 'file format [gain/units ...]')"
            )
        record = lines[0].split()
        if "/" in record[0]:
            raise RecordingError(f"{self.path}: a multi-segment record ({record[0]}) is not read")
        self._rate = self._record_rate(record)
        notes: list[str] = []
        self._signals = [
            _signal_line(line.split(), f"{self.path}: line {k + 2}")
            for k, line in enumerate(lines[1:])
            if k < int(record[1])
        ]
        stated = _int(record[3], f"{self.path}: record line") if len(record) > 3 else None
        self._samples = self._check_files(stated, notes)
        self._check_first_values()
        described = [(s.description or f"signal {i}", s.units) for i, s in enumerate(self._signals)]
        axes = motion_axes(described)
        channels = [
            infer_channel(i, label, units, self._rate, sensor=axes.get(i, ("", "")))
            for i, (label, units) in enumerate(described)
        ]
        channels = [_own(ch, s) for ch, s in zip(channels, self._signals, strict=True)]
        start_ns = _start(record, notes)
        return Recording(
            self.path, "WFDB", tuple(channels), self._samples / self._rate, tuple(notes), start_ns=start_ns
        )

    def _record_rate(self, record: list[str]) -> float:
        if len(record) < 3:
            return DEFAULT_RATE
        try:
            rate = float(record[2].split("/")[0].split("(")[0])
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise RecordingError(
                f"{self.path}: record line: sampling frequency {record[2]!r} is not positive"
            )
        return rate

    def _files(self) -> dict[str, list[int]]:
        """Signal file → the signals stored in it, in frame order."""
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self._signals):
            out.setdefault(s.file, []).append(i)
        for name, members in out.items():
            first = self._signals[members[0]]
            if any(
                (self._signals[i].format, self._signals[i].offset) != (first.format, first.offset)
                for i in members
            ):
                raise RecordingError(f"{self.path}: signals in {name} are stored in different formats")
            if name == "~" or Path(name).name != name:
                raise RecordingError(f"{self.path}: signal file {name!r} is not a file beside the header")
        return out

    def _frames_held(self, members: list[int], size: int) -> int:
        """Whole frames in ``size`` bytes of a file holding ``members``."""
        fmt, k = self._signals[members[0]].format, len(members)
        if fmt == 212:  # whole triplets only: an odd last sample may be written in two bytes
            return size // 3 * 2 // k
        return size // (_FORMATS[fmt][0] * k)

    def _check_files(self, stated: int | None, notes: list[str]) -> int:
        """How many samples every signal has: the header's count, or what the files hold."""
        held: list[int] = []
        for name, members in self._files().items():
            file = self.path.parent / name
            try:
                size = file.stat().st_size - self._signals[members[0]].offset
            except OSError as exc:
                raise RecordingError(f"{self.path}: signal file {name}: {exc.strerror or exc}") from None
            held.append(max(0, self._frames_held(members, size)))
        samples = min(held) if stated is None else stated
        if stated is not None and min(held) < stated:
            notes.append(f"the header says {stated} samples, the signal files hold {min(held)}: read those")
            samples = min(held)
        if samples <= 0:
            raise RecordingError(f"{self.path}: no samples in the signal files")
        return samples

    def _check_first_values(self) -> None:
        for name, members in self._files().items():
            first = self._raw(name, members, 0, 1)
            for j, i in enumerate(members):
                s = self._signals[i]
                if s.initial is not None and int(first[0, j]) != s.initial:
                    raise RecordingError(
                        f"{self.path}: signal {i} ({name}): first value {int(first[0, j])}, the header says "
                        f"{s.initial}: wrong storage format or byte offset"
                    )

    def _raw(self, name: str, members: list[int], start: int, n: int) -> npt.NDArray[np.int64]:
        """ADC values of ``members`` (one file's signals), frames ``start`` to ``start + n``."""
        s = self._signals[members[0]]
        k = len(members)
        width = _FORMATS[s.format][0]
        if s.format == 212:
            first, last = start * k, (start + n) * k  # sample numbers in the file, pairs in 3 bytes
            a, b = first - first % 2, last + last % 2
            packed = (
                self._bytes(name, s.offset + a // 2 * 3, (b - a) // 2 * 3).reshape(-1, 3).astype(np.int64)
            )
            values = np.empty(b - a, np.int64)
            values[0::2] = packed[:, 0] | ((packed[:, 1] & 0x0F) << 8)
            values[1::2] = packed[:, 2] | ((packed[:, 1] & 0xF0) << 4)
            values = np.where(values >= 2048, values - 4096, values)
            return values[first - a : last - a].reshape(n, k)
        data = self._bytes(name, s.offset + start * k * width, n * k * width)
        if s.format == 24:
            b3 = data.reshape(-1, 3).astype(np.int64)
            values = b3[:, 0] | (b3[:, 1] << 8) | (b3[:, 2] << 16)
            values = np.where(values >= 1 << 23, values - (1 << 24), values)
        else:
            values = np.frombuffer(data.tobytes(), _FORMATS[s.format][1]).astype(np.int64)
            values -= _FORMATS[s.format][2]
        return values.reshape(n, k)

    def _bytes(self, name: str, at: int, count: int) -> npt.NDArray[np.uint8]:
        try:
            with (self.path.parent / name).open("rb") as f:
                f.seek(at)
                data = f.read(count)
        except OSError as exc:
            raise RecordingError(f"{self.path}: signal file {name}: {exc.strerror or exc}") from None
        if len(data) != count:
            raise RecordingError(
                f"{self.path}: signal file {name}: ends at byte {at + len(data)}, before {at + count}"
            )
        return np.frombuffer(data, np.uint8)

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        files = self._files()
        where = {i: (name, members.index(i)) for name, members in files.items() for i in members}

        def read(gi: int, start: int, n: int) -> FloatArray:
            out = np.empty((n, len(groups[gi].channels)))
            raws: dict[str, npt.NDArray[np.int64]] = {}
            for j, ch in enumerate(groups[gi].channels):
                name, column = where[ch.index]
                if name not in raws:
                    raws[name] = self._raw(name, files[name], start, n)
                s = self._signals[ch.index]
                out[:, j] = (raws[name][:, column] - s.baseline) / s.gain * ch.scale
            return out

        return stepped_chunks(groups, chunk_seconds, [self._samples] * len(groups), read)

    @classmethod
    def write(
        cls, path: Path, series: Sequence[Series], start_ns: int, annotations: Sequence[Annotation] = ()
    ) -> Path:
        """A format-16 record: ``path`` with ``.hea``, its samples in ``.dat`` beside it; each signal's gain
        and baseline spread its range over 16 bits."""
        if annotations:
            raise RecordingError(
                f"{path}: a WFDB header has no place for annotations (WFDB keeps them apart)"
            )
        rates = {s.rate for s in series}
        lengths = {s.values.size for s in series}
        if len(rates) != 1 or len(lengths) != 1:
            raise RecordingError(f"{path}: a WFDB record's signals share one rate and length")
        header, dat = path.with_suffix(".hea"), path.with_suffix(".dat")
        record = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)
        n = lengths.pop()
        counts = np.empty((n, len(series)), "<i2")
        lines = []
        for j, s in enumerate(series):
            lo, hi = (float(s.values.min()), float(s.values.max())) if n else (0.0, 0.0)
            gain = float(f"{_WRITE_RANGE / ((hi - lo) / 2):.9g}") if hi > lo else 1.0
            baseline = -round((hi + lo) / 2 * gain)  # the range's middle at ADC 0: 16 bits across the range
            counts[:, j] = np.rint(s.values * gain) + baseline
            unit = {"emg": "uV", "acc": "g", "gyro": "deg/s"}.get(s.kind, "")
            if not unit:
                raise RecordingError(
                    f"{path}: a WFDB record holds EMG, accelerometers and gyroscopes, not {s.kind}"
                )
            first = int(counts[0, j]) if n else 0
            lines.append(f"{dat.name} 16 {gain:.9g}({baseline})/{unit} 16 0 {first} 0 0 {s.label}")
        whole, ns = divmod(start_ns, 10**9)
        when = dt.datetime.fromtimestamp(whole).astimezone()
        clock = f"{when:%H:%M:%S}.{ns:09d} {when:%d/%m/%Y}"
        rate = rates.pop()
        header.write_text(f"{record} {len(series)} {rate:.9g} {n} {clock}\n" + "\n".join(lines) + "\n")
        dat.write_bytes(counts.tobytes())
        return header


def _own(ch: Channel, s: _Signal) -> Channel:
    """The channel, an ECG lead skipped. (Its ``scale`` stays the unit's, as for EDF's physical values: the
    gain is applied on reading, so ``--signal`` can set the unit without losing it.)"""
    lead = s.description.strip()
    if lead.upper() in _ECG_LEADS:
        note = f"{lead} is an ECG lead: not a muscle's signal (--channels and --signal run it)"
        return replace(ch, signal=None, note=note)
    return ch
