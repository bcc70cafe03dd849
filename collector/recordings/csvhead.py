"""What the head of a text recording says besides its numbers: date-times, and a device's header block.

Wearables' own exports put a block of ``key,value`` lines before the data (GENEActiv: ``Measurement
Frequency,50.0 Hz``, ``Time Zone,GMT -04``, then per column ``Sensor type,…`` and ``Units,…``; OpenBCI's
GUI: ``%Sample Rate = 200 Hz``), and time
their rows with date-times (``2019-08-06 10:25:50:000``, ``1970-01-01 00:04:40.015``, ISO 8601 with a
zone). ``formats.csv`` reads the numbers; this module reads those, and nothing here touches a file.
"""

from __future__ import annotations

import calendar
import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

# Year-month-day, then the time of day; the fraction after ".", "," or ":" (GENEActiv writes
# ``10:25:50:000``); an optional zone (Z, +02:00, +0200, UTC+2).
_DATETIME: Final = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})[T ](\d{1,2}):(\d{2}):(\d{2})(?:[.,:](\d{1,9}))?"
    r"\s*(Z|(?:UTC|GMT)?\s*[+-]\s*\d{1,2}(?::?\d{2})?|UTC|GMT)?$",
    re.IGNORECASE,
)
# Day and month first, in either order (``6/8/2019 10:25:50.000``: ActiGraph's "M/d/yyyy", Europe's
# d/M/yyyy): which is which comes from the file's header or from a day past 12 in its rows (``DateOrder``).
_SLASHED: Final = re.compile(
    r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})[T ](\d{1,2}):(\d{2}):(\d{2})(?:[.,:](\d{1,9}))?$"
)
_SLASHED_DATE: Final = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$")
# ActiGraph's first line: "… date format M/d/yyyy at 30 Hz  Filter Normal …".
_DATE_FORMAT: Final = re.compile(r"date format\s+([dMy]+)[/.-]([dMy]+)[/.-]([dMy]+)", re.IGNORECASE)
_AT_HZ: Final = re.compile(r"\bat\s+([0-9]+(?:\.[0-9]+)?)\s*Hz\b", re.IGNORECASE)
_START_LINE: Final = re.compile(r"^start\s+(time|date)\s+(\S+)$", re.IGNORECASE)
_OFFSET: Final = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
# A header block's sample rate: "Measurement Frequency", "Sample rate", "Sampling frequency (Hz)", "Fs".
_RATE_KEY: Final = re.compile(
    r"^(?:(?:measurement|sample|sampling)\s*)?(?:frequency|rate)(?:\s*\(hz\))?$|^fs$", re.IGNORECASE
)
_RATE_VALUE: Final = re.compile(r"^([0-9]+(?:\.[0-9]*)?)\s*(?:hz)?$", re.IGNORECASE)
# A block's "key = value" line: OpenBCI's "%Sample Rate = 200 Hz", BioSPPy's "# Sampling Rate (Hz):= 1000.00".
_KEY_VALUE: Final = re.compile(r"^\s*[%;]?\s*([^=:]+?)\s*(?::=|[=:])\s*(.*)$")
# Unix seconds of 2000-01-01 and 2100-01-01: a first time in between is a date, not seconds from the start.
EPOCH_RANGE: Final = (946_684_800, 4_102_444_800)
_ZONE_KEYS: Final = frozenset({"time zone", "timezone", "tz", "utc offset"})


def utc_offset_s(text: str) -> int | None:
    """Seconds east of UTC from ``GMT -04``, ``UTC+01:00``, ``+0200``, ``Z`` or ``UTC``; None if not one."""
    t = text.strip()
    if t.upper() in ("Z", "UTC", "GMT"):
        return 0
    m = _OFFSET.match(t)
    if m is None:
        return None
    sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    offset = hours * 3600 + minutes * 60
    return -offset if sign == "-" else offset


DateOrder = Literal["dmy", "mdy"]


def _ymd(first: int, second: int, year: int, order: DateOrder) -> tuple[int, int, int]:
    return (year, second, first) if order == "dmy" else (year, first, second)


def datetime_ns(text: str, order: DateOrder | None = None) -> tuple[int, int | None] | None:
    """(ns since the Unix epoch reading the clock as UTC, the zone's offset east of UTC in seconds or None
    where the text gives none) of a date-time; None if ``text`` is not one. A date with the day and month
    first (``6/8/2019 10:25:50``) is read in ``order``; without one, it is none."""
    text = text.strip()
    if (s := _SLASHED.match(text)) is not None:
        if order is None:
            return None
        a, b, year, hour, minute, second = (int(g) for g in s.groups()[:6])
        return _clock_ns(*_ymd(a, b, year, order), hour, minute, second, s.group(7) or "", None)
    m = _DATETIME.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone = m.group(8)
    offset = utc_offset_s(zone) if zone else None
    if zone and offset is None:
        return None
    return _clock_ns(year, month, day, hour, minute, second, m.group(7) or "", offset)


def _clock_ns(
    year: int, month: int, day: int, hour: int, minute: int, second: int, fraction: str, offset: int | None
) -> tuple[int, int | None] | None:
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None  # (no year 0: the calendar has none, and no clock writes one)
    if hour > 23 or minute > 59 or second > 60:
        return None
    ns = int(fraction.ljust(9, "0")) if fraction else 0
    days = calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0)) // 86400
    clock = ((days * 24 + hour) * 60 + minute) * 60 + second
    return clock * 1_000_000_000 + ns, offset


def is_datetime(text: str) -> bool:
    """A date-time in any order the reader knows (day and month first: either way round)."""
    if datetime_ns(text) is not None:
        return True
    return _SLASHED.match(text.strip()) is not None and any(
        datetime_ns(text, order) is not None for order in ("mdy", "dmy")
    )


def date_order(texts: Sequence[str]) -> DateOrder | None:
    """How day-and-month-first dates are written, from a day past 12 among ``texts``: None where they say
    nothing (every field 12 or less, or none such a date)."""
    firsts, seconds = [], []
    for text in texts:
        date = text.strip().split()[0] if text.strip() else ""
        if (m := _SLASHED_DATE.match(date.split("T")[0])) is not None:
            firsts.append(int(m.group(1)))
            seconds.append(int(m.group(2)))
    if any(f > 12 for f in firsts) and all(s <= 12 for s in seconds):
        return "dmy"
    if any(s > 12 for s in seconds) and all(f <= 12 for f in firsts):
        return "mdy"
    return None


@dataclass(frozen=True)
class Preamble:
    """What a header block said, each with the key it came from (for the notes)."""

    lines: int = 0  # lines of the block (non-blank)
    rate: tuple[float, str] | None = None  # Hz, key
    date_order: DateOrder | None = None  # ActiGraph's "date format M/d/yyyy"
    start: tuple[str, str] | None = None  # ActiGraph's "Start Date 6/8/2019", "Start Time 10:00:00"
    utc_offset: tuple[int, str] | None = None  # seconds east of UTC, key
    columns: tuple[tuple[str, str], ...] = ()  # (label, unit) per column it describes, in order
    labels: tuple[str, ...] = ()  # the columns' names on one line (BioSPPy's "Labels:= acc_x acc_y acc_z")
    units: str = ""  # one unit for every column ("Units:= m/s^2")


def read_preamble(rows: Sequence[Sequence[str]]) -> Preamble:
    """The sample rate, the time zone and the column descriptions (``Sensor type`` / ``Units`` pairs) of
    a header block, given as its rows of fields."""
    rate: tuple[float, str] | None = None
    offset: tuple[int, str] | None = None
    columns: list[tuple[str, str]] = []
    labels: tuple[str, ...] = ()
    units = ""
    order: DateOrder | None = None
    start: dict[str, str] = {}
    for fields in rows:
        if not fields:
            continue
        line = " ".join(fields)
        if order is None and (f := _DATE_FORMAT.search(line)) is not None:
            letters = [g[0].lower() for g in f.groups()]
            order = "dmy" if letters == ["d", "m", "y"] else "mdy" if letters == ["m", "d", "y"] else None
        if rate is None and (phrase := _AT_HZ.search(line)) is not None and float(phrase.group(1)) > 0:
            rate = (float(phrase.group(1)), phrase.group(0))
        if (st := _START_LINE.match(line.strip())) is not None:
            start[st.group(1).lower()] = st.group(2)
            continue
        if (m := _KEY_VALUE.match(fields[0])) is not None:  # "%Sample Rate = 200 Hz", "Labels:= a<TAB>b"
            fields = [m.group(1), m.group(2), *fields[1:]]
        key, value = fields[0].strip().lstrip("%;").strip(), (fields[1].strip() if len(fields) > 1 else "")
        low = " ".join(key.lower().split())
        if rate is None and _RATE_KEY.match(low) and (m := _RATE_VALUE.match(value)) is not None:
            hz = float(m.group(1))
            rate = (hz, key) if hz > 0 else None
        elif offset is None and low in _ZONE_KEYS and (s := utc_offset_s(value)) is not None:
            offset = (s, key)
        elif low == "sensor type":
            columns.append((value, ""))
        elif low == "units" and columns and not columns[-1][1]:
            columns[-1] = (columns[-1][0], value)
        elif low == "units" and not columns:
            units = value
        elif low in ("labels", "columns", "channels") and not labels:
            many = [f.strip() for f in fields[1:] if f.strip()]
            labels = tuple(many) if len(many) > 1 else tuple(value.split())
    when = (start["date"], start["time"]) if {"date", "time"} <= start.keys() else None
    return Preamble(len(rows), rate, order, when, offset, tuple(columns), labels, units)


def in_epoch(seconds: Decimal) -> bool:
    """Unix seconds between 2000 and 2100: a date, not seconds from a recording's start."""
    return EPOCH_RANGE[0] <= seconds < EPOCH_RANGE[1]


def delimiter_of(row: str) -> str | None:
    """Tab, semicolon or comma if the row has one; whitespace (None) between several values; a single
    column otherwise (split on a comma it does not have)."""
    found = next((d for d in ("\t", ";", ",") if d in row), None)
    if found is None and len(row.split()) == 1:
        return ","
    return found


def split_fields(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]
