"""CSV, TSV and other text files of numeric columns: one sample per row.

Found by extension (``.csv``, ``.tsv``) or by content: any UTF-8 text whose first lines include a row of
numbers (BioSPPy's ``.txt`` exports, a ``.dat`` file). ``#`` lines and blank lines are skipped. An optional
header row names the channels; a label may carry its unit in brackets (``EMG calf [mV]``). Delimiter: tab,
semicolon, comma or whitespace, whichever the first data row uses. Text is UTF-8 (a byte-order mark is fine).
A device's header block before the data (``key,value`` lines: GENEActiv's exports) is skipped, and read for
the sample rate, the time zone and the columns' descriptions (``collector.recordings.csvhead``).

All columns share one rate: the caller's (``--rate``), the header block's, else the file's time column's (a
column named ``time``, ``t``, ``timestamp`` … in seconds unless its header says ``[ms]``, ``[us]`` or
``[ns]``, or a column of date-times), estimated from its first rows. A first time that is a date between 2000
and 2100 also says when the recording started; samples still follow one another at the rate. A sample
counter (``samples``) is neither signal nor time. Three columns with no unit that make one accelerometer get
the unit gravity shows in them (``model.gravity_unit``).
"""

from __future__ import annotations

import csv
import datetime as dt
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar, Final

import numpy as np

from twitchwatch.collector.recordings.csvhead import (
    Preamble,
    date_order,
    datetime_ns,
    delimiter_of,
    in_epoch,
    is_datetime,
    read_preamble,
    split_fields,
    utc_offset_s,
)
from twitchwatch.collector.recordings.layouts import (
    empatica,
    empatica_acc,
    empatica_channel,
    empatica_labels,
    opensignals_header,
    plux_channels,
)
from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    Annotation,
    Channel,
    Chunk,
    FloatArray,
    Group,
    Recording,
    RecordingError,
    Series,
    check_chunk_seconds,
    gravity_unit,
    infer_channel,
    label_words,
    numbered_triples,
    sanitise,
    sensor_axis,
    undimensioned,
    untyped,
)
from twitchwatch.collector.recordings.plux import start_ns as plux_start_ns
from twitchwatch.collector.recordings.reader import GZIP_DAMAGE, HEAD_BYTES, RecordingReader, open_binary
from twitchwatch.collector.signals import DIMENSIONS, KINDS

_TIME_NAMES: Final = frozenset(
    {"time", "t", "timestamp", "timestamps", "datetime", "date_time", "date time", "time_s", "seconds", "ts"}
    | {"seconds_elapsed", "elapsed", "elapsed time", "elapsed_time"}
    | {"epoch", "unix time", "unix_time", "unixtime"}  # MetaBase (MetaMotion): ``epoch (ms)``
)
# Words that name an axis by its direction (Daphnet's ankle_horiz_fwd, ankle_vert, ankle_horiz_lateral).
_DIRECTIONS: Final = frozenset(
    {
        "vert",
        "vertical",
        "horiz",
        "horizontal",
        "fwd",
        "forward",
        "lateral",
        "lat",
        "ap",
        "ml",
        "si",
        "up",
        "side",
    }
)
# Times since 1970 with no unit said, by size: ms (Android's currentTimeMillis), µs, ns (Sensor Logger).
_EPOCH_SCALES: Final = ((Decimal("1e-3"), "ms"), (Decimal("1e-6"), "µs"), (Decimal("1e-9"), "ns"))
# A file named for another sensor: its bare x, y, z are not an accelerometer's (Sensor Logger's Gyroscope).
_NOT_ACCELEROMETER: Final = frozenset(
    {"gyro", "gyroscope", "magnetometer", "mag", "magnetic", "orientation", "rotation", "compass"}
)
# Words that name a column of labels or markers, not a signal (with whole-number values: ``_labels_column``).
_LABEL_WORDS: Final = frozenset(
    {"class", "label", "labels", "annotation", "annotations", "anomaly", "stimulus", "restimulus"}
    | {"repetition", "rerepetition", "marker", "markers", "trigger", "triggers", "event", "events"}
    | {"gesture", "button", "task", "condition"}
)
# Below this, a time column of no unit read as seconds times no muscle signal: whole numbers are then ms.
_SLOWEST_HZ: Final = 10.0
_BARE_AXES: Final = "three axes of no type, carrying gravity: taken as an accelerometer"
_LABEL_VALUES: Final = 64  # distinct values a column of labels holds at most in its first rows
_COUNTER_NAMES: Final = frozenset(
    {
        "sample",
        "samples",
        "sample index",
        "sample_index",
        "sample number",
        "sample_number",
        "index",
        "n",
        "nseq",
    }
)
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
_CAL_WORDS: Final = frozenset({"CAL", "RAW", "UNCAL"})  # Shimmer's row saying which values are calibrated
_LABEL_UNIT: Final = re.compile(r"^(.*?)\s*[\[(]\s*([^\])]*?)\s*[\])]\s*$")  # "EMG calf [mV]", "acc_x (g)"
RATE_ROWS: Final = 1000  # rows of the time column a rate is estimated from (and gravity's magnitude)
GRAVITY_ROWS: Final = 10  # rows at least that tell how gravity reads in a sensor's columns
HEAD_LINES: Final = 400  # lines a device's header block may take before the first data row
HEADER_RUN: Final = 11  # a header and the rows under it that tell it from a header block


def _vectors(rows: Sequence[Sequence[str]], cols: Sequence[int]) -> FloatArray | None:
    """Three columns over ``rows`` as vectors (rows that are not all finite numbers left out); None with
    fewer than ``GRAVITY_ROWS`` such rows."""
    values: list[list[float]] = []
    for fields in rows:
        try:
            values.append([float(fields[c]) for c in cols])
        except ValueError:
            continue
    with np.errstate(over="ignore", invalid="ignore"):  # 1e308 in a row: an infinite norm, left out
        kept = np.array(values).reshape(-1, 3)
        kept = kept[np.isfinite(np.linalg.norm(kept, axis=1))]
    return kept if kept.shape[0] >= GRAVITY_ROWS else None


def _median_magnitude(rows: Sequence[Sequence[str]], cols: Sequence[int]) -> float | None:
    """The median vector magnitude of three columns over ``rows``: how gravity reads in them if they are an
    accelerometer's."""
    vectors = _vectors(rows, cols)
    return None if vectors is None else float(np.median(np.linalg.norm(vectors, axis=1)))


def _holds_gravity(rows: Sequence[Sequence[str]], cols: Sequence[int]) -> bool:
    """Whether three columns carry a steady vector, as an accelerometer carries gravity: their mean vector is
    at least half their median magnitude. EMG swings about zero, and a turning gyroscope's mean is small
    beside its magnitude; an accelerometer worn through everyday life keeps gravity's direction on average
    over seconds."""
    vectors = _vectors(rows, cols)
    if vectors is None:
        return False
    median = float(np.median(np.linalg.norm(vectors, axis=1)))
    return median > 0 and float(np.linalg.norm(vectors.mean(axis=0))) >= 0.5 * median


def _is_time_name(label: str) -> bool:
    """A time column's name: ``time``, ``timestamp`` … or a label ending in one (``Phone timestamp``), or
    with the word timestamp anywhere (Shimmer's ``Shimmer_8A2B_Timestamp_Unix``)."""
    low = label.lower().strip()
    words = label_words(low)
    return (
        low in _TIME_NAMES
        or (len(words) > 1 and words[-1] == "time")
        or any(w in ("timestamp", "timestamps") for w in words)
    )


def _times(texts: Sequence[str], unit: str, preamble: Preamble) -> tuple[list[Decimal], int | None, str]:
    """A time column's first values in seconds, the start in ns since the Unix epoch where they are dates
    between 2000 and 2100, and a note on the time zone taken; no seconds if they are not times."""
    factor = _TIME_UNITS.get(unit)
    if factor is not None:
        try:
            seconds = [Decimal(t) * factor for t in texts]
        except InvalidOperation:
            seconds = []
        if seconds and all(s.is_finite() for s in seconds):
            note = ""
            if not unit:  # no unit said: a time since 1970 in ms, µs or ns shows by its size
                scaled = next(((f, name) for f, name in _EPOCH_SCALES if in_epoch(seconds[0] * f)), None)
                if scaled is not None:
                    seconds = [s * scaled[0] for s in seconds]
                    note = f"times since 1970 in {scaled[1]} (their size says so)"
            start = int(seconds[0] * 1_000_000_000) if in_epoch(seconds[0]) else None
            return seconds, start, note
    order = preamble.date_order or date_order(texts)
    stamps = [datetime_ns(t, order) for t in texts]
    if not stamps or any(s is None for s in stamps):
        return [], None, ""
    ns = [s[0] - (s[1] if s[1] is not None else 0) * 1_000_000_000 for s in stamps if s is not None]
    first = stamps[0]
    assert first is not None
    note = ""
    if first[1] is None:  # a clock with no zone: the column's, the header block's, else this computer's
        offset, note = _zone(ns[0], unit, preamble)
        ns = [t - offset * 1_000_000_000 for t in ns]
    seconds = [Decimal(t - ns[0]) / Decimal(1_000_000_000) for t in ns]
    start = ns[0] if in_epoch(Decimal(ns[0]).scaleb(-9)) else None
    if start is None:
        note = ""  # a clock from zero (``1970-01-01 00:04:40``): times from the start, no date
    return seconds, start, note


def _zone(clock_ns: int, unit: str, preamble: Preamble) -> tuple[int, str]:
    """The offset east of UTC (seconds) of a clock reading with no zone, and a note saying whence: the zone
    its column's name gives (MetaBase: ``time (-05:00)``), the header block's, else this computer's (as
    EDF's start)."""
    if (stated := utc_offset_s(unit)) is not None:
        return stated, f"date-times in UTC{stated / 3600:+g} h, as the column's name says"
    if preamble.utc_offset is not None:
        offset, key = preamble.utc_offset
        return offset, f"date-times in UTC{offset / 3600:+g} h from its {key!r} line"
    offset = _local_offset_s(clock_ns)
    local = f"this computer's local time (UTC{offset / 3600:+g} h)"
    return offset, f"date-times with no time zone: taken as {local}"


def _block_start(preamble: Preamble, notes: list[str]) -> int | None:
    """The start a header block gives on lines of its own (ActiGraph's ``Start Date`` and ``Start Time``),
    in its date order and zone (``_zone``)."""
    assert preamble.start is not None
    date, clock = preamble.start
    stamp = datetime_ns(f"{date} {clock}", preamble.date_order or date_order([date]))
    if stamp is None:
        notes.append(f"start {date} {clock} not understood (day and month order?): the start is not known")
        return None
    offset, note = _zone(stamp[0], "", preamble)
    notes.append(f"start from the header block's start date and time; {note}")
    return stamp[0] - offset * 1_000_000_000


def _local_offset_s(clock_ns: int) -> int:
    """This computer's offset from UTC, in seconds, at a local clock reading (ns as if UTC)."""
    naive = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=clock_ns // 1000)
    offset = naive.astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _starts_data(line: str, after: str | None) -> bool:
    """``line`` is the first data row: a row, followed by the end or by a line of its width (a lone number
    in a header block is not data)."""
    if not _is_row(line):
        return False
    if after is None:
        return True
    try:
        return len(split_fields(after, delimiter_of(line))) == len(split_fields(line, delimiter_of(line)))
    except csv.Error:
        return False


def _block_fields(line: str) -> list[str]:
    """A header block line's fields: split on its tab, semicolon or comma; a line with none is one field
    (``%Sample Rate = 200 Hz`` is a key and a value, not five columns)."""
    delimiter = delimiter_of(line)
    try:
        return split_fields(line, delimiter) if delimiter is not None else [line]
    except csv.Error:
        return [line]


def _column_type(field: str) -> str:
    """n(umber), t(ime), s(tring), or "" for an empty field (a marker column's rows without a mark)."""
    return "n" if _is_number(field) else "t" if is_datetime(field) else "s" if field else ""


def _typed_run(header: Sequence[str], lines: Sequence[str]) -> bool:
    """``lines`` start rows under ``header``: those of its width (at least the first) keep one type per
    column (empty fields aside), one of them numbers."""
    types: list[set[str]] = [set() for _ in header]
    rows = 0
    for line in lines:
        try:
            fields = split_fields(line, delimiter_of(line))
        except csv.Error:
            break
        if len(fields) != len(header):
            break
        rows += 1
        for seen, field in zip(types, fields, strict=True):
            seen.add(_column_type(field))
    kept = [seen - {""} for seen in types]
    return rows > 0 and all(len(t) <= 1 for t in kept) and any(t == {"n"} for t in kept)


def _unit_word(field: str) -> str | None:
    """``field`` as a unit where it is one (Shimmer writes ``m/(s^2)``), else None."""
    text = field.strip().replace("(", "").replace(")", "")
    return text if text in DIMENSIONS or (text and text in _TIME_UNITS) else None


def _names_over_units(
    head: Sequence[tuple[str, int, int]], k: int, fields: list[str]
) -> tuple[list[str], list[str], int]:
    """The header's names, units and how many lines it takes: where the line over the data is a row of
    units under the names (Shimmer's Consensys exports: names, a row of ``CAL``/``RAW``, units), the names
    come from above it; otherwise the header is one line and says no units apart."""
    blank = ("", "no_units")  # Shimmer's word for a column without one
    if k < 2 or not any(map(_unit_word, fields)):
        return fields, [], 1
    if not all(_unit_word(f) or f.strip() in blank for f in fields):
        return fields, [], 1
    delimiter = delimiter_of(head[k][0])
    above = k - 2
    said = {f.strip().upper() for f in split_fields(head[above][0], delimiter)} - {""}
    if above >= 1 and said and said <= _CAL_WORDS:
        above -= 1
    names = split_fields(head[above][0], delimiter)
    if len(names) != len(fields) or any(_is_number(f) for f in names):
        return fields, [], 1
    calibrated = above < k - 2
    if calibrated:  # every name carries its calibration as a suffix (``_CAL``): it is not the sensor's
        names = [re.sub(r"[_ ](CAL|RAW|UNCAL)$", "", n.strip(), flags=re.IGNORECASE) for n in names]
    return names, [_unit_word(f) or "" for f in fields], k - above


def _is_row(line: str) -> bool:
    """A data row: every field a number or a date-time, at least one a number."""
    try:
        fields = split_fields(line, delimiter_of(line))
    except csv.Error:
        return False
    numbers = [_is_number(f) for f in fields]
    return any(numbers) and all(n or is_datetime(f) for n, f in zip(numbers, fields, strict=True))


_COMMA_DECIMAL: Final = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")
_POINT_DECIMAL: Final = re.compile(r"^[+-]?\d*\.\d+(?:[eE][+-]?\d+)?$")


def _decimal_comma(text: str) -> bool:
    """Whether the rows write decimal commas (``0,98849``: a spreadsheet set to a European locale, which
    then separates fields with semicolons or tabs): some field is such a number, and none has a point."""
    seen = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or (";" not in line and "\t" not in line):
            continue
        fields = [f.strip().strip('"') for f in line.replace("\t", ";").split(";")]
        if any(_POINT_DECIMAL.match(f) for f in fields):
            return False
        seen = seen or any(_COMMA_DECIMAL.match(f) for f in fields)
    return seen


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class CsvReader(RecordingReader):
    """Numeric columns, one sample per row, at one rate (the caller's, or the time column's)."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = (".csv", ".tsv")
    NOUN: ClassVar[str] = "a CSV file"
    DESCRIPTION: ClassVar[str] = "CSV/TSV text of numeric columns"
    DEVICE_PREFIX: ClassVar[str] = "csv"
    COMPRESSED: ClassVar[bool] = True  # data sets ship big CSV files as .csv.gz

    @classmethod
    def claims(cls, head: bytes) -> bool:
        """Text with a row of numbers (and date-times) among its first lines (a file's magic, for a format
        without one)."""
        if b"\x00" in head:
            return False
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not a character cut at the end: Windows' code page, or binary
                try:
                    text = head.decode("cp1252")
                except UnicodeDecodeError:
                    return False
            else:
                text = head[: exc.start].decode("utf-8")
        if _decimal_comma(text):
            text = text.replace(",", ".")
        lines = text.removeprefix("\ufeff").splitlines()
        if len(head) >= HEAD_BYTES and lines:
            lines.pop()  # possibly cut
        return any(_is_row(line) for raw in lines if (line := raw.strip()) and not line.startswith("#"))

    def __init__(self, path: Path, rate: float | None = None) -> None:
        self.path = path
        self._file = open_binary(path)
        self._line_no = 0
        self._comments: list[tuple[int, str]] | None = None  # comment lines, while the head is read
        self._rows: list[list[str]] | None = None  # the first data rows' fields, once read (``_first_rows``)
        self._comma = False  # decimal commas, read as points (``_decimal_comma``)
        self._cp1252 = 0  # the first line that was not UTF-8, read as Windows-1252 (``_windows_text``)
        try:
            self._comma = _decimal_comma(self._file.read(HEAD_BYTES).decode("utf-8", errors="ignore"))
            self._file.seek(0)
            self._open(rate)
        except BaseException:
            self._file.close()
            raise

    def _next_line(self) -> str | None:
        """The next non-blank, non-comment line (stripped), counting physical lines; ``_line_pos`` is where
        it starts in the file."""
        while True:
            pos = self._file.tell()
            try:
                raw = self._file.readline()
            except GZIP_DAMAGE as exc:  # a damaged .gz, found where it breaks
                raise RecordingError(
                    f"{self.path}: after line {self._line_no}: cannot unpack: {exc}"
                ) from None
            if not raw:
                return None
            self._line_no += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = self._windows_text(raw, exc)
            line = line.removeprefix("\ufeff").strip() if self._line_no == 1 else line.strip()
            if self._comma:
                line = line.replace(",", ".")
            if line.startswith("#") and self._comments is not None:
                self._comments.append((self._line_no, line.lstrip("#").strip()))
            elif line and not line.startswith("#"):
                self._line_pos = pos
                return line

    def _windows_text(self, raw: bytes, exc: UnicodeDecodeError) -> str:
        """A line that is not UTF-8, in the 8-bit code page Excel and Windows tools write (``µV`` as byte
        0xB5): a header names its units so; data rows are ASCII either way. Refused before, naming the byte
        but not what to do. A byte the code page leaves undefined is no text at all: refused as before."""
        try:
            line = raw.decode("cp1252")
        except UnicodeDecodeError:
            where = f"{self.path}: line {self._line_no}, character {exc.start + 1}"
            raise RecordingError(
                f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02X}): save it as UTF-8"
            ) from None
        if not self._cp1252:
            self._cp1252 = self._line_no
        return line

    def _split(self, line: str) -> list[str]:
        return split_fields(line, self._delimiter)

    def _head(self) -> list[tuple[str, int, int]]:
        """(line, line number, byte position) of the first non-blank, non-comment lines: enough to hold a
        device's header block, then the first data row and the one after it. The comment lines among them
        are kept too (``_comments``): BioSPPy's ``# Sampling Rate (Hz):= 1000.00`` is a header block."""
        head: list[tuple[str, int, int]] = []
        while len(head) < HEAD_LINES and (line := self._next_line()) is not None:
            head.append((line, self._line_no, self._line_pos))
            if len(head) >= 2 and _starts_data(head[-2][0], head[-1][0]):
                break
        return head

    def _open(self, rate: float | None) -> None:
        self._comments = []
        head = self._head()
        comments, self._comments = self._comments, None
        if not head:
            raise RecordingError(f"{self.path}: no data rows")
        head, k, fields, e4 = self._locate(head)
        data, row_no, row_pos = head[k]
        self._delimiter = delimiter_of(data)
        values = len(self._split(data))
        fields, units, header_lines = _names_over_units(head, k, fields)
        block = head[: k - header_lines if fields else k]
        said = [text for number, text in comments if number < row_no and text]  # comments before the data
        preamble = read_preamble([_block_fields(line) for line in [*said, *(line for line, _, _ in block)]])
        self._columns = values
        self._data = (row_pos, row_no - 1)  # where the first data row starts, and the lines before it
        notes: list[str] = []
        if block:
            notes.append(f"lines {block[0][1]}–{block[-1][1]}: the device's header block, not data")
        if self._comma:
            notes.append("decimal commas (0,98): read as decimal points")
        if self._cp1252:
            notes.append(f"line {self._cp1252} is not UTF-8: read as Windows-1252 (Excel's µ is byte 0xB5)")
        first = self._split(data)
        plux = opensignals_header(said, len(first))
        labels = [(name, "") for name in plux.columns] if plux and not fields else []
        if e4 is not None:
            labels = empatica_labels(self.path, len(first))
            rate = rate or e4[1]
            notes.append(f"Empatica's layout: the start on line 1, the rate on line 2 ({e4[1]:g} Hz)")
        labels = labels or self._labels(fields, first, preamble, notes)
        if units:  # Shimmer's layout: names, a calibration row, units
            labels = [(label, unit or said) for (label, said), unit in zip(labels, units, strict=True)]
            notes.append(f"units from line {head[k - 1][1]}, the row under the column names")
        if rate is None and plux is not None:
            rate = plux.rate
            notes.append(f"sample rate {rate:g} Hz from its OpenSignals header")
        if rate is None and preamble.rate is not None:
            rate = preamble.rate[0]
            notes.append(f"sample rate {rate:g} Hz from its {preamble.rate[1]!r} line")
        time_column, rate, start_ns = self._time(labels, first, rate, preamble, notes)
        if start_ns is None and plux is not None:
            start_ns = plux_start_ns(plux.date, plux.time, notes)
        if start_ns is None and e4 is not None:
            start_ns = e4[0]
        if start_ns is None and preamble.start is not None:
            start_ns = _block_start(preamble, notes)
        counters = [
            i for i, (label, _) in enumerate(labels) if label.lower() in _COUNTER_NAMES and i != time_column
        ]
        if rate is None:
            counted = (
                f" (its {labels[counters[0]][0]!r} column counts samples, it does not time them)"
                if counters
                else ""
            )
            raise RecordingError(f"{self.path}: a CSV file has no sample rate: pass it (--rate HZ){counted}")
        self.rate = rate
        channels = self._channels(labels, time_column, counters)
        if plux is not None:
            channels = plux_channels(channels, plux)
        if e4 is not None and empatica_acc(self.path, len(first)):
            channels = [empatica_channel(c) for c in channels]
        if len({c.label for c in channels}) < len(channels):
            notes.append("repeated column labels: select those channels by index")
        self._rows = None  # what opening needed of them
        rows = self._count_rows(row_no)
        self.recording = Recording(
            self.path, "CSV", tuple(channels), rows / rate, tuple(notes), start_ns=start_ns
        )

    def _locate(
        self, head: list[tuple[str, int, int]]
    ) -> tuple[list[tuple[str, int, int]], int, list[str], tuple[int, float] | None]:
        """The head (longer by a line where it had to be), where its data starts, the header's fields, and
        Empatica's start and rate where the file is laid out as its exports are."""
        e4 = empatica(head)
        if e4 is None:
            return head, *self._find_data(head), None
        if (line := self._next_line()) is None:  # the first sample, after the start and the rate
            raise RecordingError(f"{self.path}: no data rows after its start and rate (Empatica's layout)")
        return [*head[:2], (line, self._line_no, self._line_pos)], 2, [], e4

    def _find_data(self, head: list[tuple[str, int, int]]) -> tuple[int, list[str]]:
        """Where the data starts among the head's lines, and the header's fields (none if no header).

        A file starts with its data, or with a header whose next lines are rows of its width whose columns
        each keep one type (numbers, date-times or text: ``noon,1``, ``night,2`` are rows of a time column
        that holds text). Otherwise a header block comes first (``Device Model,1.1``, ``Device Firmware
        Version,Ver4.08a``: one width, but no column keeps its type); the data then starts at the first row of
        numbers and date-times that the next line matches in width, after the header right before it (if
        that line has its width)."""
        if _starts_data(head[0][0], head[1][0] if len(head) > 1 else None):
            return 0, []
        first = split_fields(head[0][0], delimiter_of(head[1][0] if len(head) > 1 else head[0][0]))
        if _typed_run(first, [line for line, _, _ in head[1:HEADER_RUN]]):
            return 1, first
        after = [line for line, _, _ in head[1:]] + [None]
        k = next((i for i, (line, _, _) in enumerate(head) if _starts_data(line, after[i])), None)
        if k is None and len(head) == 1:
            raise RecordingError(f"{self.path}: no data rows after the header on line {head[0][1]}")
        if k is None or k == 1:  # a header alone before the rows: it must fit them
            delimiter = delimiter_of(head[1][0])
            width = len(split_fields(head[1][0], delimiter))
            if width != len(first):
                spaces = " (whitespace-separated: labels cannot contain spaces)" if delimiter is None else ""
                raise RecordingError(
                    f"{self.path}: {len(first)} labels in the header on line {head[0][1]}, but line "
                    f"{head[1][1]} has {width} values{spaces}"
                )
        if k is None:
            raise RecordingError(f"{self.path}: no row of numbers in its first {len(head)} lines")
        before = split_fields(head[k - 1][0], delimiter_of(head[k][0])) if k >= 1 else []
        width = len(split_fields(head[k][0], delimiter_of(head[k][0])))
        named = len(before) == width and not any(
            _is_number(f) for f in before
        )  # a header names, it holds no numbers
        return k, before if named else []

    def _channels(
        self, labels: list[tuple[str, str]], time_column: int | None, counters: list[int]
    ) -> list[Channel]:
        """Each column as a channel: the time and sample-count columns in their roles, the rest inferred."""
        rate = self.rate
        marks = [i for i, (label, unit) in enumerate(labels) if self._labels_column(i, label, unit)]
        gravity, layout = self._sensors(labels, {time_column, *counters, *marks})
        channels: list[Channel] = []
        for i, (label, unit) in enumerate(labels):
            if i == time_column or _is_time_name(label):
                ch = Channel(i, label, unit, rate, None, sanitise(label), note="time column", role="time")
            elif i in counters:
                ch = Channel(
                    i, label, unit, rate, None, sanitise(label), note="sample counter", role="counter"
                )
            elif i in marks:
                note = "labels or markers (whole numbers), not a signal"
                ch = Channel(i, label, unit, rate, None, sanitise(label), note=note, role="label")
            else:
                ch = infer_channel(i, label, unit, rate, gravity.get(i), layout.get(i, ("", "")))
            channels.append(ch)
        return self._bare_accelerometer(channels)

    def _bare_accelerometer(self, channels: list[Channel]) -> list[Channel]:
        """Three axes of one sensor, of no unit and no type — named by nothing but x, y, z (CAPTURE-24's
        ``time,x,y,z``, Sensor Logger's ``z,y,x``) or by a body part and directions (Daphnet's
        ``ankle_vert`` …) — taken as an accelerometer where gravity says so: its magnitude fits a unit
        (``gravity_unit``) and the three carry it as a steady vector (``_holds_gravity``). A file or a
        sensor named for another kind of sensor (``Gyroscope.csv``, ``mag_x``) is left alone."""
        by_sensor: dict[str, list[Channel]] = {}
        for c in channels:
            candidate = not (c.signal or c.role or c.dimension) and c.gravity is not None
            if candidate and untyped(c.label):
                # its sensor: the layout's (``ankle_vert``), else its label's (``wrist_x``)
                by_sensor.setdefault(c.sensor or sensor_axis(c.label, "XYZ")[0], []).append(c)
        stem = {w.lower() for w in label_words(self.path.name.split(".")[0])}
        if stem & _NOT_ACCELEROMETER:
            return channels
        taken: dict[int, Channel] = {}
        for sensor, axes in by_sensor.items():
            if len(axes) != 3 or len({c.gravity for c in axes}) != 1:  # (one gravity: measured together)
                continue
            if {w.lower() for w in label_words(sensor)} & _NOT_ACCELEROMETER:
                continue
            gravity = axes[0].gravity
            if gravity is None or gravity_unit(gravity) is None:
                continue
            if not _holds_gravity(self._first_rows(), [c.index for c in axes]):
                continue
            for c in axes:
                acc = undimensioned(c, "acc")
                taken[c.index] = replace(acc, note=f"{_BARE_AXES}; {acc.note}")
        return [taken.get(c.index, c) for c in channels]

    def _labels_column(self, index: int, label: str, unit: str) -> bool:
        """A column of labels or markers — a class, an annotation, a stimulus, an anomaly flag, a button's
        events (UCI's ``class``, Daphnet's ``is_anomaly``, Ninapro's ``restimulus``, GENEActiv's ``User
        button event marker``) — by its name and its values: whole numbers, few of them, or text. Never a
        signal, even by --signal (an anomaly flag is no accelerometer)."""
        if unit or not untyped(label) or not _LABEL_WORDS.intersection(w.lower() for w in label_words(label)):
            return False
        values: set[float] = set()
        for fields in self._first_rows():
            text = fields[index].strip()
            if not _is_number(text):
                continue  # text (an activity's name) or nothing: a label's too
            value = float(text)
            if not value.is_integer():
                return False
            values.add(value)
        return len(values) <= _LABEL_VALUES

    def _labels(
        self, fields: list[str], first: list[str], preamble: Preamble, notes: list[str]
    ) -> list[tuple[str, str]]:
        """(label, unit) per column: from the header row; without one, from the header block's column
        descriptions where they fit the columns after a date-time; else ``ch0``, ``ch1``, …"""
        if fields:
            out: list[tuple[str, str]] = []
            for i, name in enumerate(fields):
                label, unit = name, ""
                if (m := _LABEL_UNIT.match(name)) is not None:
                    label, unit = m.group(1), m.group(2)
                out.append((label or f"ch{i}", unit))
            return out
        out = [(f"ch{i}", "") for i in range(len(first))]
        if len(preamble.labels) == len(first):  # "Labels:= acc_x acc_y acc_z" (and "Units:= …" for all)
            notes.append("column names from the header block's labels")
            return [(label, preamble.units) for label in preamble.labels]
        described = list(preamble.columns)
        dated = [i for i, text in enumerate(first) if is_datetime(text)]
        rest = [i for i in range(len(first)) if i not in dated[:1]]
        if described and len(described) == len(rest):
            for i, (label, unit) in zip(rest, described, strict=True):
                out[i] = (label or f"ch{i}", unit)
            notes.append("column names and units from the header block's sensor descriptions")
        return out

    def _first_rows(self) -> list[list[str]]:
        """Fields of the first ``RATE_ROWS`` data rows (up to a row of the wrong width, which the stream
        names when it gets there), read once: the time column and gravity both look at them."""
        if self._rows is None:
            rows: list[list[str]] = []
            self._rewind()
            while len(rows) < RATE_ROWS and (line := self._next_line()) is not None:
                fields = self._split(line)
                if len(fields) != self._columns:
                    break
                rows.append(fields)
            self._rewind()
            self._rows = rows
        return self._rows

    def _sensors(
        self, labels: list[tuple[str, str]], skip: set[int | None]
    ) -> tuple[dict[int, float], dict[int, tuple[str, str]]]:
        """For three columns with no unit or an acceleration's that make one 3-axis sensor: how gravity reads
        in them (column →
        median magnitude over the first rows) and, where the labels name no axes, the sensor and axis their
        layout gives (three columns sharing a first word and naming a direction, ``ankle_vert`` …, or a
        header-less file's only three), X, Y, Z in column order."""
        bare = [
            i
            for i, (_, unit) in enumerate(labels)
            if (not unit or DIMENSIONS.get(unit, ("",))[0] == "acc") and i not in skip
        ]
        triples: list[list[int]] = []
        layout: dict[int, tuple[str, str]] = {}
        by_sensor: dict[str, dict[str, int]] = {}
        unaxed: list[int] = []
        for i in bare:
            sensor, axis = sensor_axis(labels[i][0], "XYZ")
            if axis:
                by_sensor.setdefault(sensor, {})[axis] = i
            else:
                unaxed.append(i)
        triples += [
            [axes["X"], axes["Y"], axes["Z"]]
            for axes in by_sensor.values()
            if sorted(axes) == ["X", "Y", "Z"]
        ]
        by_word: dict[str, list[int]] = {}
        for i in unaxed:
            words = [w.lower() for w in label_words(labels[i][0])]
            if len(words) >= 2 and _DIRECTIONS.intersection(words[1:]):  # ankle_vert, not left_calf
                by_word.setdefault(words[0], []).append(i)
        groups = {label_words(labels[cols[0]][0])[0]: cols for cols in by_word.values() if len(cols) == 3}
        grouped = {i for cols in groups.values() for i in cols}
        groups |= numbered_triples({i: labels[i][0] for i in unaxed if i not in grouped})
        if not groups and len(unaxed) == 3 and all(re.fullmatch(r"ch\d+", labels[i][0]) for i in unaxed):
            groups = {"ch": unaxed}  # a header-less file's only three columns besides its time
        for name, cols in groups.items():
            layout.update({i: (name, axis) for i, axis in zip(cols, "XYZ", strict=True)})
            triples.append(cols)
        if not triples:
            return {}, layout
        rows = self._first_rows()
        gravity: dict[int, float] = {}
        for cols in triples:
            g = _median_magnitude(rows, cols)
            if g is not None:
                gravity.update(dict.fromkeys(cols, g))
        return gravity, layout

    def _time(
        self,
        labels: list[tuple[str, str]],
        first: list[str],
        rate: float | None,
        preamble: Preamble,
        notes: list[str],
    ) -> tuple[int | None, float | None, int | None]:
        """The time column, the rate (unless given) and the start (if a date) from the first rows. Of the
        columns named as times or holding date-times, the first whose values increase row by row times the
        samples (Polar Sensor Logger's sensor clock, not the phone's, which stamps whole batches alike); the
        start comes from it, else from any of them that holds a date."""
        named = [i for i, (label, _) in enumerate(labels) if _is_time_name(label)]
        candidates = named + [i for i, text in enumerate(first) if is_datetime(text) and i not in named]
        if not candidates:
            return None, rate, None
        rows = self._first_rows()
        timed = {i: _times([r[i] for r in rows], labels[i][1], preamble) for i in candidates}
        rising = [
            i
            for i in candidates
            if len(timed[i][0]) > 1 and all(map(operator.lt, timed[i][0], timed[i][0][1:]))
        ]
        column = (rising or candidates)[0]
        seconds, start_ns, note = timed[column]
        if start_ns is None:
            start_ns, note = next(((t[1], t[2]) for t in timed.values() if t[1] is not None), (None, note))
        label = labels[column][0]
        notes.extend([note] if note else [])
        if not seconds:
            if rate is None:
                holds = "no times in seconds, ms, us or ns, nor date-times"
                if is_datetime(first[column]):  # day and month first, and nothing says which is which
                    holds = (
                        f"dates with the day and month first ({first[column]!r}) but no day past 12 and no "
                        "'date format' line to tell which is which"
                    )
                raise RecordingError(
                    f"{self.path}: a CSV file has no sample rate: pass it (--rate HZ); its {label!r} column "
                    f"holds {holds}"
                )
            return column, rate, None
        if rate is not None:
            return column, rate, start_ns
        steps = np.diff(np.array([float(s - seconds[0]) for s in seconds]))
        if not steps.size or not np.all(steps > 0):
            raise RecordingError(
                f"{self.path}: a CSV file has no sample rate: pass it (--rate HZ); its {label!r} column does "
                "not increase from row to row"
            )
        # Steps across a gap (a sample or more lost: twice the usual step or more) are left out; every other
        # step counts, so that the times' jitter cancels between neighbours (a late stamp makes one step
        # longer and the next shorter) and the rate is the rows over the time they span. Keeping only steps
        # near the median instead biased it by the jitter's shape: ±0.2 ms at 1 kHz read as 993-997 Hz.
        usual = steps[np.abs(steps - np.median(steps)) < 0.5 * np.median(steps)]
        estimate = usual.size / float(usual.sum())
        if (
            not labels[column][1]
            and estimate < _SLOWEST_HZ
            and all(s == s.to_integral_value() for s in seconds)
        ):
            # Whole numbers a few apart, no unit: an Arduino's millis(), a logger's ms (UCI's Myo files). As
            # seconds no muscle signal is that slow; pass --rate where they are seconds after all.
            notes.append(
                f"the {label!r} column counts whole numbers and gives no unit: taken as milliseconds (as "
                f"seconds its rate would be {estimate:.3g} Hz)"
            )
            estimate *= 1000.0
        whole = round(estimate)
        found = float(whole) if abs(estimate - whole) <= 1e-3 * estimate else round(estimate, 3)
        notes.append(f"sample rate {found:g} Hz from the {label!r} column")
        return column, found, start_ns

    def _rewind(self) -> None:
        self._file.seek(self._data[0])
        self._line_no = self._data[1]

    def _count_rows(self, first_row: int) -> int:
        """Rows from the first data row on, from a byte scan for newlines (for progress; blank and comment
        lines among the data count too)."""
        lines, last = 0, b"\n"
        try:
            with open_binary(self.path) as f:
                while block := f.read(1 << 20):
                    lines += block.count(b"\n")
                    last = block[-1:]
        except GZIP_DAMAGE as exc:  # a damaged .gz: refused at opening, not part way through a run
            raise RecordingError(f"{self.path}: after line {lines}: cannot unpack: {exc}") from None
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
        offsets = [np.array([c.offset for c in g.channels]) for g in groups]
        start = 0
        while True:
            lines, numbers = self._take(n)
            if not lines:
                return
            block = self._parse(lines, numbers, used)
            for gi, group in enumerate(groups):
                yield Chunk(gi, start, block[:, picks[gi]] * scales[gi] + offsets[gi], group.rate)
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
