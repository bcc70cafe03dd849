"""CSV, TSV and other text files of numeric columns: one sample per row.

Found by extension (``.csv``, ``.tsv``) or by content: any UTF-8 text whose first lines include a row of
numbers (BioSPPy's ``.txt`` exports, a ``.dat`` file). ``#`` lines and blank lines are skipped. An optional
header row names the channels; a label may carry its unit in brackets (``EMG calf [mV]``). Delimiter: tab,
semicolon, comma or whitespace, whichever the first data row uses. Text is UTF-8 (a byte-order mark is fine).

All columns share one rate: the caller's (``--rate``), else the file's time column's (a column named
``time``, ``t`` or ``timestamp``, in seconds unless its header says ``[ms]``, ``[us]`` or ``[ns]``), estimated
from its first rows. A time column whose first value is a date between 2000 and 2100 (Unix seconds) also says
when the recording started; samples still follow one another at the rate.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar, Final

import numpy as np

from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    KINDS,
    Annotation,
    Channel,
    Chunk,
    FloatArray,
    Group,
    Recording,
    RecordingError,
    Series,
    check_chunk_seconds,
    infer_channel,
    sanitise,
)
from twitchwatch.collector.recordings.reader import HEAD_BYTES, RecordingReader

_TIME_NAMES: Final = frozenset({"time", "t", "timestamp"})
_TIME_UNITS: Final = {
    unit: Decimal(factor)
    for units, factor in (
        (("", "s"), "1"),
        (("ms",), "1e-3"),
        (("us", "µs", "μs"), "1e-6"),
        (("ns",), "1e-9"),
    )
    for unit in units
}
_LABEL_UNIT: Final = re.compile(r"^(.*?)\s*[\[(]\s*([^\])]*?)\s*[\])]\s*$")  # "EMG calf [mV]", "acc_x (g)"
RATE_ROWS: Final = 1000  # rows of the time column a rate is estimated from
# Unix seconds of 2000-01-01 and 2100-01-01: a first time in between is a date, not seconds from the start.
_EPOCH_RANGE: Final = (946_684_800, 4_102_444_800)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _delimiter_of(row: str) -> str | None:
    """Tab, semicolon or comma if the row has one; whitespace (None) between several values; a single
    column otherwise (split on a comma it does not have)."""
    found = next((d for d in ("\t", ";", ",") if d in row), None)
    if found is None and len(row.split()) == 1:
        return ","
    return found


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]


class CsvReader(RecordingReader):
    """Numeric columns, one sample per row, at one rate (the caller's, or the time column's)."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".csv", ".tsv")
    NOUN: ClassVar[str] = "a CSV file"
    DESCRIPTION: ClassVar[str] = "CSV/TSV text of numeric columns"
    DEVICE_PREFIX: ClassVar[str] = "csv"

    @classmethod
    def claims(cls, head: bytes) -> bool:
        """Text with a row of numbers among its first lines (a file's magic, for a format without one)."""
        if b"\x00" in head:
            return False
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not a character cut at the end of the head
                return False
            text = head[: exc.start].decode("utf-8")
        lines = text.removeprefix("\ufeff").splitlines()
        if len(head) >= HEAD_BYTES and lines:
            lines.pop()  # possibly cut
        for raw in lines:
            line = raw.strip()
            if line and not line.startswith("#"):
                try:
                    fields = _split(line, _delimiter_of(line))
                except csv.Error:
                    return False
                if fields and all(_is_number(f) for f in fields):
                    return True
        return False

    def __init__(self, path: Path, rate: float | None = None) -> None:
        self.path = path
        self._file = path.open("rb")
        self._line_no = 0
        try:
            self._open(rate)
        except BaseException:
            self._file.close()
            raise

    def _next_line(self) -> str | None:
        """The next non-blank, non-comment line (stripped), counting physical lines; ``_line_pos`` is where
        it starts in the file."""
        while True:
            pos = self._file.tell()
            raw = self._file.readline()
            if not raw:
                return None
            self._line_no += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                where = f"{self.path}: line {self._line_no}, character {exc.start + 1}"
                raise RecordingError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02X})") from None
            line = line.removeprefix("\ufeff").strip() if self._line_no == 1 else line.strip()
            if line and not line.startswith("#"):
                self._line_pos = pos
                return line

    def _split(self, line: str) -> list[str]:
        return _split(line, self._delimiter)

    def _open(self, rate: float | None) -> None:
        first = self._next_line()
        if first is None:
            raise RecordingError(f"{self.path}: no data rows")
        first_no = self._line_no
        self._delimiter = _delimiter_of(first)
        fields = self._split(first)
        header = not all(_is_number(f) for f in fields)
        row_no, row_pos = first_no, self._line_pos
        if header:
            data = self._next_line()
            if data is None:
                raise RecordingError(f"{self.path}: no data rows after the header on line {first_no}")
            row_no, row_pos = self._line_no, self._line_pos
            self._delimiter = _delimiter_of(data)
            fields = self._split(first)
            values = len(self._split(data))
            if values != len(fields):
                spaces = (
                    " (whitespace-separated: labels cannot contain spaces)" if self._delimiter is None else ""
                )
                raise RecordingError(
                    f"{self.path}: {len(fields)} labels in the header on line {first_no}, but line {row_no} "
                    f"has {values} values{spaces}"
                )
        self._columns = len(fields)
        self._data = (row_pos, row_no - 1)  # where the first data row starts, and the lines before it
        names = fields if header else [f"ch{i}" for i in range(len(fields))]
        labels: list[tuple[str, str]] = []
        for i, name in enumerate(names):
            label, unit = name, ""
            if (m := _LABEL_UNIT.match(name)) is not None:
                label, unit = m.group(1), m.group(2)
            labels.append((label or f"ch{i}", unit))
        time_column = next(
            (i for i, (label, _) in enumerate(labels) if header and label.lower() in _TIME_NAMES), None
        )
        notes: list[str] = []
        start_ns: int | None = None
        if time_column is not None:
            rate, start_ns, note = self._from_time_column(time_column, *labels[time_column], rate)
            notes.extend([note] if note else [])
        if rate is None:
            raise RecordingError(f"{self.path}: a CSV file has no sample rate: pass it (--rate HZ)")
        self.rate = rate
        channels: list[Channel] = []
        for i, (label, unit) in enumerate(labels):
            if i == time_column or (header and label.lower() in _TIME_NAMES):
                channels.append(Channel(i, label, unit, rate, None, sanitise(label), note="time column"))
            else:
                channels.append(infer_channel(i, label, unit, rate))
        if len({c.label for c in channels}) < len(channels):
            notes.append("repeated column labels: select those channels by index")
        rows = self._count_rows(row_no)
        self.recording = Recording(
            self.path, "CSV", tuple(channels), rows / rate, tuple(notes), start_ns=start_ns
        )

    def _from_time_column(
        self, column: int, label: str, unit: str, rate: float | None
    ) -> tuple[float | None, int | None, str]:
        """The rate (unless given) and the start (if a date) from the first rows of the time column, and a
        note saying what was taken from it."""
        factor = _TIME_UNITS.get(unit)
        texts: list[str] = []
        self._rewind()
        while len(texts) < RATE_ROWS and (line := self._next_line()) is not None:
            fields = self._split(line)
            if len(fields) != self._columns:
                break  # the stream names the line
            texts.append(fields[column])
        self._rewind()
        try:
            seconds = [Decimal(t) * factor for t in texts] if factor is not None else []
        except InvalidOperation:
            seconds = []
        if not seconds or not all(s.is_finite() for s in seconds):
            if rate is None:
                raise RecordingError(
                    f"{self.path}: a CSV file has no sample rate: pass it (--rate HZ); its {label!r} column "
                    "holds no times in seconds, ms, us or ns"
                )
            return rate, None, ""
        start_ns = None
        if _EPOCH_RANGE[0] <= seconds[0] < _EPOCH_RANGE[1]:
            start_ns = int(seconds[0] * 1_000_000_000)
        if rate is not None:
            return rate, start_ns, ""
        steps = np.diff(np.array([float(s - seconds[0]) for s in seconds]))
        if not steps.size or not np.all(steps > 0):
            raise RecordingError(
                f"{self.path}: a CSV file has no sample rate: pass it (--rate HZ); its {label!r} column does "
                "not increase from row to row"
            )
        usual = steps[np.abs(steps - np.median(steps)) <= 0.1 * np.median(steps)]  # not across a gap
        estimate = 1.0 / float(usual.mean())
        whole = round(estimate)
        found = float(whole) if abs(estimate - whole) <= 1e-3 * estimate else round(estimate, 3)
        return found, start_ns, f"sample rate {found:g} Hz from the {label!r} column"

    def _rewind(self) -> None:
        self._file.seek(self._data[0])
        self._line_no = self._data[1]

    def _count_rows(self, first_row: int) -> int:
        """Rows from the first data row on, from a byte scan for newlines (for progress; blank and comment
        lines among the data count too)."""
        lines, last = 0, b"\n"
        with self.path.open("rb") as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"
        return max(0, lines - first_row + 1)

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        check_chunk_seconds(chunk_seconds)
        self._rewind()
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

    @classmethod
    def write(
        cls, path: Path, series: Sequence[Series], start_ns: int, annotations: Sequence[Annotation] = ()
    ) -> Path:
        """A ``time [s]`` column (Unix seconds, to the ns) and one column per series, its unit in the
        header; every value as Python writes it, so it reads back exactly. One rate for all: CSV has one."""
        rates = {s.rate for s in series}
        if len(rates) != 1 or len({len(s.values) for s in series}) != 1:
            raise RecordingError(f"{path}: a CSV file holds one rate and one length for all its columns")
        if annotations:
            raise RecordingError(f"{path}: a CSV file has no place for annotations")
        (rate,) = rates
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        header = ["time [s]", *(f"{s.label} [{KINDS[s.kind].dimension}]" for s in series)]
        columns = np.stack([s.values for s in series], axis=1)
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write(delimiter.join(header) + "\n")
            for i, row in enumerate(columns):
                ns = start_ns + round(i * 1e9 / rate)
                f.write(delimiter.join([f"{ns // 10**9}.{ns % 10**9:09d}", *map(repr, row.tolist())]) + "\n")
        return path

    def close(self) -> None:
        self._file.close()
