"""The history archive: everything a store keeps of a person — events, minute rates, journal, felt marks,
flags — and the device map, in one documented, versioned ZIP file of open formats (docs/data.md), for
``twitchwatch data export``, ``import`` and ``copy``.

Inside the ZIP (or a directory holding the same files):

- ``manifest.json``: the format and its version, who wrote it and when, the users, and per file its rows,
  bytes and SHA-256;
- ``events.csv``, ``rates.csv``, ``journal.csv``, ``felt.csv``: UTF-8 CSV with a header line, one stored row
  a line; times as integer ns since the Unix epoch plus a readable UTC copy (``*_utc``, checked on import);
  numbers written so they read back to the same double; an empty cell is "unknown" in a column that may be
  unknown (``dominant_hz``, ``rest_s``), the empty string in a text column;
- ``flags.jsonl``: each user's current flag set, one JSON document a line (the stores keep no history of
  flags, only the last set computed: see docs/data.md);
- ``device-map.toml``: the TOML device map, byte for byte, when one was configured.

Reading never trusts the archive: ``check_archive`` reads every file in full — sizes and checksums, the
header of each table against its format version, every cell, every value's own rules, and whether the
target store can hold it (``EventStore.check_writable``) — before ``load_archive`` writes anything, so a
damaged archive is refused with the file and line named and leaves the store as it was. Older format
versions are read through the migrations below, one version step at a time.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import math
import os
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

from twitchwatch.errors import UserError
from twitchwatch.processing.events import SOURCES, EventKind, MinuteRate, Source, TwitchEvent
from twitchwatch.processing.flags import FlagError, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry, JournalError
from twitchwatch.processing.store import EventQuery, EventStore, StoreError
from twitchwatch.processing.timeunits import DAY_NS

FORMAT = "twitchwatch-archive"
FORMAT_VERSION = 3  # 1: stores before rest tracking (no reason, no rest_s, no felt marks); 2: no end_s
MANIFEST = "manifest.json"
EVENTS, RATES, JOURNAL, FELT, FLAGS = "events.csv", "rates.csv", "journal.csv", "felt.csv", "flags.jsonl"
DEVICE_MAP = "device-map.toml"

ALL_TIME_NS = -(2**63)  # "since the beginning": stores take it as no lower bound
BATCH = 5000  # rows per store write (and per check)
_INT64 = (-(2**63), 2**63 - 1)
_READ_CHUNK = 1 << 20

# ---------------------------------------------------------------------------------------------------
# The format: columns per file and version, and the migrations between versions

ColumnType = Literal["text", "int", "float", "float?", "utc"]

# A column name means the same in every file and every version. A ``utc`` column is the readable copy of
# the ns column it is named after (``start_utc`` of ``start_ns``).
TYPES: Mapping[str, ColumnType] = {
    "user": "text",
    "muscle": "text",
    "device": "text",
    "source": "text",
    "stream": "text",
    "channel": "int",
    "kind": "text",
    "start_ns": "int",
    "end_ns": "int",
    "start_utc": "utc",
    "amplitude": "float",
    "unit": "text",
    "confidence": "float",
    "session_id": "text",
    "dominant_hz": "float?",
    "reason": "text",
    "minute_ns": "int",
    "minute_utc": "utc",
    "twitches": "int",
    "monitored_s": "float",
    "rest_s": "float?",
    "end_s": "float?",
    "entry_id": "text",
    "time_ns": "int",
    "time_utc": "utc",
    "factor": "text",
    "amount": "text",
    "note": "text",
}

_EVENTS_V1 = (
    "user",
    "muscle",
    "device",
    "source",
    "stream",
    "channel",
    "kind",
    "start_ns",
    "end_ns",
    "start_utc",
    "amplitude",
    "unit",
    "confidence",
    "session_id",
    "dominant_hz",
)
_RATES_V1 = ("user", "muscle", "device", "source", "minute_ns", "minute_utc", "twitches", "monitored_s")
_JOURNAL = ("entry_id", "user", "time_ns", "time_utc", "factor", "amount", "muscle", "note")
_FELT = ("entry_id", "user", "time_ns", "time_utc", "muscle", "amount", "note")

# The CSV files of each format version and their columns, in the order export writes them (import takes
# any order, but exactly these names).
TABLES: Mapping[int, Mapping[str, tuple[str, ...]]] = {
    1: {EVENTS: _EVENTS_V1, RATES: _RATES_V1, JOURNAL: _JOURNAL},
    2: {EVENTS: (*_EVENTS_V1, "reason"), RATES: (*_RATES_V1, "rest_s"), JOURNAL: _JOURNAL, FELT: _FELT},
    3: {
        EVENTS: (*_EVENTS_V1, "reason"),
        RATES: (*_RATES_V1, "rest_s", "end_s"),
        JOURNAL: _JOURNAL,
        FELT: _FELT,
    },
}
JSONL_FILES: Mapping[int, tuple[str, ...]] = {1: (FLAGS,), 2: (FLAGS,), 3: (FLAGS,)}
OPTIONAL_FILES = (DEVICE_MAP,)

Row = dict[str, Any]


def _v1_to_v2(file: str, row: Row) -> Row:
    """Rest tracking: a v1 minute's time at rest is unknown (shown as "before rest tracking", never as all
    rest, as the stores migrate their own rows), and a v1 event has no reason."""
    if file == EVENTS:
        return {**row, "reason": ""}
    if file == RATES:
        return {**row, "rest_s": None}
    return row


def _v2_to_v3(file: str, row: Row) -> Row:
    """Where a v2 minute's monitored time ends is unknown (as the stores migrate their own rows)."""
    return {**row, "end_s": None} if file == RATES else row


# MIGRATIONS[v] turns a row of format v into one of format v + 1.
MIGRATIONS: Mapping[int, Callable[[str, Row], Row]] = {1: _v1_to_v2, 2: _v2_to_v3}


def upgrade(file: str, row: Row, version: int) -> Row:
    for v in range(version, FORMAT_VERSION):
        row = MIGRATIONS[v](file, row)
    return row


# ---------------------------------------------------------------------------------------------------
# Errors and progress


class ArchiveError(UserError):
    """The archive cannot be read or is damaged; ``file`` and ``line`` (1-based) say where, when known."""

    def __init__(self, reason: str, file: str | None = None, line: int | None = None) -> None:
        where = file if line is None else f"{file} line {line}"
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason, self.file, self.line = reason, file, line


class Reporter(Protocol):
    """Told how far each stage has got (``done`` of ``total``; ``unit`` what they count)."""

    def __call__(self, stage: str, done: float, total: float | None, unit: str) -> None: ...


def _silent(stage: str, done: float, total: float | None, unit: str) -> None:
    return None


# ---------------------------------------------------------------------------------------------------
# Cells


def utc_text(ns: int) -> str:
    """``2026-05-29T12:00:00.123456789Z``: the instant to the nanosecond, readable."""
    seconds, frac = divmod(ns, 1_000_000_000)
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def _format_cell(kind: ColumnType, value: Any) -> str:
    if kind == "text":
        return str(value)
    if kind == "int":
        return str(int(value))
    if kind in ("float", "float?"):
        return "" if value is None else repr(float(value))  # the shortest text of the identical double
    return utc_text(int(value))


def _parse_cell(name: str, kind: ColumnType, text: str) -> Any:
    if kind == "text" or kind == "utc":
        return text
    if kind == "float?" and text == "":
        return None
    if kind == "int":
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a whole number") from None
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"{name}: {text} does not fit a 64-bit integer")
        return value
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: {text!r} is not a finite number")
    return number


# ---------------------------------------------------------------------------------------------------
# Rows <-> values


# A table's columns are its value's field names (``tests/test_archive.py`` checks every field has one), plus
# the readable ``*_utc`` copies; ``vars`` of a value is its row.


def event_row(e: TwitchEvent) -> Row:
    return {**vars(e), "kind": e.kind.value, "start_utc": e.start_ns}


def rate_row(r: MinuteRate) -> Row:
    return {**vars(r), "minute_utc": r.minute_ns}


def journal_row(j: JournalEntry) -> Row:
    return {**vars(j), "factor": j.factor.value, "time_utc": j.time_ns}


def _fields(row: Row, *exclude: str) -> Row:
    """The row without its readable times and ``exclude``: the value's keyword arguments."""
    return {k: v for k, v in row.items() if TYPES[k] != "utc" and k not in exclude}


def _source(text: str) -> Source:
    for s in SOURCES:
        if s == text:
            return s
    raise ValueError(f"source: {text!r} is not one of {', '.join(SOURCES)}")


def _kind(text: str) -> EventKind:
    try:
        return EventKind(text)
    except ValueError:
        raise ValueError(f"kind: {text!r} is not one of {', '.join(k.value for k in EventKind)}") from None


def _factor(text: str) -> Factor:
    try:
        factor = Factor(text)
    except ValueError:
        raise ValueError(f"factor: {text!r} is not one of {', '.join(f.value for f in Factor)}") from None
    if factor is Factor.FELT:
        raise ValueError(f"factor: felt marks belong in {FELT}, not in {JOURNAL}")
    return factor


def event_value(row: Row) -> TwitchEvent:
    return TwitchEvent(
        **_fields(row, "kind", "source"), kind=_kind(row["kind"]), source=_source(row["source"])
    )


def rate_value(row: Row) -> MinuteRate:
    """A minute's rate as a worker writes it: twitches counted from 0, at most a minute monitored (worn),
    at rest for at most as long as monitored. An archive that says otherwise would skew every rate and
    flag it enters (-50 twitches, 1e300 s)."""
    monitored, rest, twitches = row["monitored_s"], row["rest_s"], row["twitches"]
    if not (isinstance(twitches, int) and twitches >= 0):
        raise ValueError(f"twitches: {twitches!r} is not a count")
    if not (math.isfinite(monitored) and 0 <= monitored <= MINUTE_S + SECONDS_SLACK):
        raise ValueError(f"monitored_s: {monitored!r} is not within a minute (0..60 s)")
    if rest is not None and not (math.isfinite(rest) and 0 <= rest <= monitored + SECONDS_SLACK):
        raise ValueError(f"rest_s: {rest!r} is not within the {monitored!r} s monitored")
    end = row["end_s"]
    if end is not None and not (math.isfinite(end) and 0 <= end <= MINUTE_S + SECONDS_SLACK):
        raise ValueError(f"end_s: {end!r} is not within a minute (0..60 s)")
    return MinuteRate(**_fields(row, "source"), source=_source(row["source"]))


MINUTE_S = 60.0
SECONDS_SLACK = 1e-6  # seconds summed from frames' durations in floating point


def journal_value(row: Row) -> JournalEntry:
    return JournalEntry(**_fields(row, "factor"), factor=_factor(row["factor"]))


def felt_value(row: Row) -> JournalEntry:
    return JournalEntry(**_fields(row), factor=Factor.FELT)


_VALUES: Mapping[str, Callable[[Row], Any]] = {
    EVENTS: event_value,
    RATES: rate_value,
    JOURNAL: journal_value,
    FELT: felt_value,
}


# ---------------------------------------------------------------------------------------------------
# Export


@dataclass
class _FileStats:
    rows: int = 0
    size: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)

    def entry(self, rows: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows} if rows else {}
        return {**out, "bytes": self.size, "sha256": self.sha256.hexdigest()}


class _Member:
    """One file being written into the ZIP, hashed and counted on the way."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self.stats = _FileStats()
        info = zipfile.ZipInfo(name, dt.datetime.now().timetuple()[:6])  # the ZIP's local clock time
        info.compress_type = zipfile.ZIP_DEFLATED
        self._out = zf.open(info, "w", force_zip64=True)  # a long history may pass 4 GB

    def write(self, data: bytes) -> None:
        self.stats.sha256.update(data)
        self.stats.size += len(data)
        self._out.write(data)

    def close(self, rows: bool = True) -> dict[str, Any]:
        """Finish the file; its manifest entry."""
        self._out.close()
        return self.stats.entry(rows)


class _CsvMember(_Member):
    def __init__(self, zf: zipfile.ZipFile, name: str, columns: Sequence[str]) -> None:
        super().__init__(zf, name)
        self.name, self.columns = name, columns
        self._lines([list(columns)])

    def _lines(self, rows: list[list[str]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self.write(buf.getvalue().encode("utf-8"))

    def rows(self, rows: Sequence[Row]) -> None:
        self._lines([[_format_cell(TYPES[c], r[c]) for c in self.columns] for r in rows])
        self.stats.rows += len(rows)


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    users: tuple[str, ...]
    rows: Mapping[str, int]  # per file
    device_map: bool


T = TypeVar("T")


def _windows(
    read: Callable[[EventQuery], list[T]],
    span: tuple[int, int],
    user: str,
    time_of: Callable[[T], int],
    tick: Callable[[int], None],
) -> Iterator[list[T]]:
    """Everything of ``user`` in ``span``, a day of data at a time; a stretch without data is jumped over
    (one query finds where the data goes on). ``tick`` gets the time reached."""
    cursor, last = span
    while cursor <= last:
        end = cursor + DAY_NS
        rows = read(EventQuery(since_ns=cursor, until_ns=end if end <= last else None, user=user))
        if rows:
            yield rows
        tick(min(end, last + 1))
        if end > last:
            return
        if not rows:
            after = read(EventQuery(since_ns=end, user=user, limit=1))
            if not after:
                return
            end = time_of(after[0])
        cursor = end


def export_archive(
    store: EventStore,
    out: Path,
    users: Sequence[str],
    *,
    producer: str,
    device_map: Path | None = None,
    report: Reporter = _silent,
    now: dt.datetime | None = None,
) -> ExportSummary:
    """Write everything ``store`` holds of ``users`` (and the device map file, byte for byte) to the ZIP
    archive ``out``. It is written beside ``out`` and renamed into place when complete, so a failed or
    interrupted export leaves no partial archive."""
    if out.exists():
        raise ArchiveError(f"{out} exists already: choose a new name, or remove it first")
    partial = out.with_name(out.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            files = _write_members(zf, store, users, device_map, report)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "documentation": "docs/data.md in the twitchwatch repository",
                "created_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
                "created_by": producer,
                "store": store.url,
                "users": list(users),
                "files": files,
            }
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    rows = {name: entry["rows"] for name, entry in files.items() if "rows" in entry}
    return ExportSummary(out, tuple(users), rows, DEVICE_MAP in files)


def _write_members(
    zf: zipfile.ZipFile,
    store: EventStore,
    users: Sequence[str],
    device_map: Path | None,
    report: Reporter,
) -> dict[str, dict[str, Any]]:
    columns = TABLES[FORMAT_VERSION]
    files: dict[str, dict[str, Any]] = {}

    events = _CsvMember(zf, EVENTS, columns[EVENTS])
    _export_timed(store.events, store.event_span, lambda e: e.start_ns, event_row, events, users, report)
    files[EVENTS] = events.close()

    rates = _CsvMember(zf, RATES, columns[RATES])
    _export_timed(store.rates, store.rate_span, lambda r: r.minute_ns, rate_row, rates, users, report)
    files[RATES] = rates.close()

    # A ZIP takes one file at a time; felt marks are few (a person presses a button), so they wait.
    journal, felt = _CsvMember(zf, JOURNAL, columns[JOURNAL]), list[Row]()
    for i, user in enumerate(users):
        report("journal", i, len(users), "users")
        entries = store.journal_entries(ALL_TIME_NS, None, user)
        journal.rows([journal_row(j) for j in entries if j.factor is not Factor.FELT])
        felt += [journal_row(j) for j in entries if j.factor is Factor.FELT]
    report("journal", len(users), len(users), "users")
    files[JOURNAL] = journal.close()
    felt_member = _CsvMember(zf, FELT, columns[FELT])
    felt_member.rows(felt)
    files[FELT] = felt_member.close()

    flags = _Member(zf, FLAGS)
    for user in users:
        current = store.current_flags(user)
        if current is not None:
            flags.write((current.to_json() + "\n").encode("utf-8"))
            flags.stats.rows += 1
    files[FLAGS] = flags.close()

    if device_map is not None:
        member = _Member(zf, DEVICE_MAP)
        member.write(device_map.read_bytes())
        files[DEVICE_MAP] = member.close(rows=False)
    return files


def _export_timed(
    read: Callable[[EventQuery], list[T]],
    span_of: Callable[[EventQuery], tuple[int, int] | None],
    time_of: Callable[[T], int],
    to_row: Callable[[T], Row],
    member: _CsvMember,
    users: Sequence[str],
    report: Reporter,
) -> None:
    stage = member.name.removesuffix(".csv")
    spans = {u: span_of(EventQuery(since_ns=ALL_TIME_NS, user=u)) for u in users}
    total = sum((s[1] - s[0] + 1) / DAY_NS for s in spans.values() if s is not None)
    before = 0.0
    report(stage, 0, total, "days")
    for user, span in spans.items():
        if span is None:
            continue

        def tick(reached: int, first: int = span[0], base: float = before) -> None:
            report(stage, base + (reached - first) / DAY_NS, total, "days")

        for rows in _windows(read, span, user, time_of, tick):
            member.rows([to_row(x) for x in rows])
        before += (span[1] - span[0] + 1) / DAY_NS
    report(stage, total, total, "days")


# ---------------------------------------------------------------------------------------------------
# Reading an archive: a ZIP file or a directory


class _Files(Protocol):
    label: str

    def names(self) -> list[str]: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> IO[bytes]: ...

    def close(self) -> None: ...


def _junk(name: str) -> bool:
    """What zipping a folder on a Mac or with a file manager adds, never the archive's own files."""
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or name.endswith("/")


class _ZipFiles:
    def __init__(self, path: Path) -> None:
        self.label = str(path)
        try:
            self._zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise ArchiveError(
                f"{path} is not a ZIP archive, or it was cut short (its directory at the end is "
                f"missing): {exc}"
            ) from None
        except OSError as exc:
            raise ArchiveError(f"cannot read {path}: {exc}") from None
        members = [i.filename for i in self._zf.infolist() if not _junk(i.filename)]
        # Zipping the unpacked folder again puts every file under one top folder: read it from there.
        self._prefix = ""
        if MANIFEST not in members:
            tops = {m.split("/", 1)[0] for m in members}
            if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST}" in members:
                self._prefix = next(iter(tops)) + "/"
        self._names = [m[len(self._prefix) :] for m in members if m.startswith(self._prefix)]

    def names(self) -> list[str]:
        return list(self._names)

    def size(self, name: str) -> int:
        return self._zf.getinfo(self._prefix + name).file_size

    def open(self, name: str) -> IO[bytes]:
        return self._zf.open(self._prefix + name)

    def close(self) -> None:
        self._zf.close()


class _DirFiles:
    def __init__(self, path: Path) -> None:
        self.label = str(path)
        self._root = path

    def names(self) -> list[str]:
        out = []
        for p in sorted(self._root.rglob("*")):
            name = p.relative_to(self._root).as_posix()
            if p.is_file() and not _junk(name):
                out.append(name)
        return out

    def size(self, name: str) -> int:
        return (self._root / name).stat().st_size

    def open(self, name: str) -> IO[bytes]:
        return (self._root / name).open("rb")

    def close(self) -> None:
        return None


def _open_files(path: Path) -> _Files:
    if path.is_dir():
        return _DirFiles(path)
    if not path.exists():
        raise ArchiveError(f"{path} does not exist")
    return _ZipFiles(path)


class _Hashing(io.RawIOBase):
    """Reads through to ``raw``, hashing and counting every byte read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.sha256, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def drain(self) -> str:
        """Hash what is left unread; the file's SHA-256."""
        while chunk := self.raw.read(_READ_CHUNK):
            self.sha256.update(chunk)
            self.size += len(chunk)
        return self.sha256.hexdigest()


# ---------------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class FileEntry:
    name: str
    rows: int | None
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    version: int
    created_at: str
    created_by: str
    users: tuple[str, ...]
    files: Mapping[str, FileEntry]

    @property
    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.files.values())


def _expected_files(version: int) -> tuple[str, ...]:
    return (*TABLES[version], *JSONL_FILES[version])


def read_manifest(files: _Files) -> Manifest:
    names = files.names()
    if MANIFEST not in names:
        raise ArchiveError(f"no {MANIFEST}: this is not a twitchwatch archive (or not all of one)", MANIFEST)
    with _readable(MANIFEST), files.open(MANIFEST) as f:
        raw = f.read()
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ArchiveError("not UTF-8 text", MANIFEST) from None
    except json.JSONDecodeError as exc:
        raise ArchiveError(f"not valid JSON: {exc.msg}", MANIFEST, exc.lineno) from None
    if not isinstance(doc, dict):
        raise ArchiveError("must be a JSON object", MANIFEST)
    if doc.get("format") != FORMAT:
        raise ArchiveError(f"format: {doc.get('format')!r}, expected {FORMAT!r}", MANIFEST)
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArchiveError(f"format_version: {version!r} is not a format version", MANIFEST)
    if version > FORMAT_VERSION:
        raise ArchiveError(
            f"format_version {version} was written by a newer twitchwatch (this one reads versions 1 to "
            f"{FORMAT_VERSION}): upgrade twitchwatch to import it",
            MANIFEST,
        )
    users = doc.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ArchiveError("users: must be a list of names", MANIFEST)
    entries = doc.get("files")
    if not isinstance(entries, dict):
        raise ArchiveError("files: must be an object naming each file", MANIFEST)
    expected = _expected_files(version)
    out: dict[str, FileEntry] = {}
    for name, entry in entries.items():
        if name not in expected and name not in OPTIONAL_FILES:
            raise ArchiveError(
                f"files: {name!r} is not a file of format {version} ({', '.join(expected)}, "
                f"{', '.join(OPTIONAL_FILES)})",
                MANIFEST,
            )
        out[name] = _file_entry(name, entry, with_rows=name in expected)
    missing = [n for n in expected if n not in out]
    if missing:
        raise ArchiveError(f"files: {', '.join(missing)} missing from the list", MANIFEST)
    absent = [n for n in out if n not in names]
    if absent:
        raise ArchiveError(f"listed in {MANIFEST} but not in the archive", absent[0])
    extra = [n for n in names if n != MANIFEST and n not in out]
    if extra:
        raise ArchiveError(
            f"in the archive but not listed in {MANIFEST}: not part of format {version}", extra[0]
        )
    return Manifest(
        version, str(doc.get("created_at", "")), str(doc.get("created_by", "")), tuple(users), out
    )


def _file_entry(name: str, entry: Any, with_rows: bool) -> FileEntry:
    if not isinstance(entry, dict):
        raise ArchiveError(f"files: {name}: must be an object with bytes and sha256", MANIFEST)
    rows = entry.get("rows")
    size, sha = entry.get("bytes"), entry.get("sha256")
    if with_rows and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise ArchiveError(f"files: {name}: rows: {rows!r} is not a count", MANIFEST)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArchiveError(f"files: {name}: bytes: {size!r} is not a size", MANIFEST)
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ArchiveError(f"files: {name}: sha256: {sha!r} is not a SHA-256 in lowercase hex", MANIFEST)
    return FileEntry(name, rows if with_rows else None, size, sha)


# ---------------------------------------------------------------------------------------------------
# Reading the files


@contextlib.contextmanager
def _readable(name: str) -> Iterator[None]:
    """A file the ZIP cannot give back (a damaged deflate stream, a CRC that does not match) or the disk
    cannot read is refused by name, like any other damage."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot be read, the archive is damaged ({exc}): export it again", name) from None


def _checksum_note(entry: FileEntry, actual: str) -> str:
    if actual == entry.sha256:
        return ""
    return " (and the file's SHA-256 does not match the manifest's: it was changed after export)"


def _csv_values(files: _Files, entry: FileEntry, manifest: Manifest) -> Iterator[tuple[int, Any]]:
    """(line, value) of every row of a CSV file, migrated to the current format; the file's checksum and
    row count are checked at its end."""
    name, version = entry.name, manifest.version
    expected = TABLES[version][name]
    users = set(manifest.users)
    line = count = 0
    with _readable(name), files.open(name) as raw:
        hashing = _Hashing(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing, _READ_CHUNK), encoding="utf-8", newline="")
        reader = csv.reader(text, strict=True)
        try:
            try:
                header = next(reader, None)
                if header is None:
                    raise ArchiveError("empty: expected a header line", name, 1)
                _check_header(header, expected, name, version)
                line = reader.line_num
                for cells in reader:
                    first, line = line + 1, reader.line_num
                    yield first, _value(name, header, cells, version, users, first)
                    count += 1
            except csv.Error as exc:
                raise ArchiveError(f"malformed CSV: {exc}", name, reader.line_num) from None
            except UnicodeDecodeError:
                raise ArchiveError(f"not UTF-8 text (after line {line})", name) from None
        except ArchiveError as exc:
            note = _checksum_note(entry, hashing.drain())
            raise ArchiveError(exc.reason + note, exc.file, exc.line) from None
        actual = hashing.drain()
    _check_end(entry, actual, count)


def _check_end(entry: FileEntry, actual: str, count: int) -> None:
    if actual != entry.sha256:
        raise ArchiveError(
            f"SHA-256 {actual} does not match the manifest's {entry.sha256}: the file was changed after "
            "export (or damaged); export it again, or fix the manifest if you changed it on purpose",
            entry.name,
        )
    if entry.rows is not None and count != entry.rows:
        raise ArchiveError(f"{count} rows, the manifest says {entry.rows}", entry.name)


def _check_header(header: list[str], expected: tuple[str, ...], name: str, version: int) -> None:
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise ArchiveError(f"column {column!r} appears twice in the header", name, 1)
        seen.add(column)
        if column not in expected:
            raise ArchiveError(
                f"unknown column {column!r} (format {version} has {', '.join(expected)})", name, 1
            )
    missing = [c for c in expected if c not in seen]
    if missing:
        raise ArchiveError(f"the header lacks the column(s) {', '.join(missing)}", name, 1)


def _value(name: str, header: list[str], cells: list[str], version: int, users: set[str], line: int) -> Any:
    if len(cells) != len(header):
        what = "an empty line" if not cells else f"{len(cells)} fields"
        raise ArchiveError(f"{what}, the header has {len(header)} columns", name, line)
    try:
        row = {c: _parse_cell(c, TYPES[c], text) for c, text in zip(header, cells, strict=True)}
        for c in header:
            if TYPES[c] == "utc":
                ns_column = c.removesuffix("_utc") + "_ns"
                if row[c] != utc_text(row[ns_column]):
                    raise ValueError(
                        f"{c}: {row[c]!r} is not {ns_column} {row[ns_column]} ({utc_text(row[ns_column])}); "
                        f"if you changed one, change the other"
                    )
        if row["user"] not in users:
            raise ValueError(f"user: {row['user']!r} is not among the manifest's users")
        return _VALUES[name](upgrade(name, row, version))
    except (ValueError, JournalError) as exc:
        raise ArchiveError(str(exc), name, line) from None


def _flag_values(files: _Files, entry: FileEntry, manifest: Manifest) -> Iterator[tuple[int, FlagSet]]:
    users, seen = set(manifest.users), set[str]()
    count = 0
    with _readable(entry.name), files.open(entry.name) as raw:
        hashing = _Hashing(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing, _READ_CHUNK), encoding="utf-8", newline="\n")
        line = 0
        try:
            try:
                for line, content in enumerate(text, start=1):
                    flag_set = _flag_set(content.rstrip("\n"), users, seen)
                    seen.add(flag_set.user)
                    yield line, flag_set
                    count += 1
            except UnicodeDecodeError:
                raise ArchiveError(f"not UTF-8 text (after line {line})", entry.name) from None
            except ValueError as exc:
                raise ArchiveError(str(exc), entry.name, line) from None
        except ArchiveError as exc:
            note = _checksum_note(entry, hashing.drain())
            raise ArchiveError(exc.reason + note, exc.file, exc.line) from None
        actual = hashing.drain()
    _check_end(entry, actual, count)


def _flag_set(content: str, users: set[str], seen: set[str]) -> FlagSet:
    if not content.strip():
        raise ValueError("an empty line; each line is one flag set")
    try:
        doc = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    try:
        flag_set = FlagSet.from_json(content)
    except FlagError as exc:
        raise ValueError(f"not a flag set: {exc}") from None
    _unknown_keys(doc, flag_set.to_json_dict(), "")
    if flag_set.user not in users:
        raise ValueError(f"user: {flag_set.user!r} is not among the manifest's users")
    if flag_set.user in seen:
        raise ValueError(f"a second flag set of {flag_set.user!r}; a user has one current set")
    return flag_set


def _unknown_keys(doc: Any, known: Any, path: str) -> None:
    """Keys of ``doc`` the flag set written back does not have: written by something else."""
    if isinstance(doc, dict) and isinstance(known, dict):
        for key, value in doc.items():
            if key not in known:
                raise ValueError(f"unknown key {path}{key!r}")
            if key == "flags" and isinstance(value, list):
                for i, (a, b) in enumerate(zip(value, known[key], strict=False)):
                    _unknown_keys(a, b, f"{path}flags[{i}].")


def _device_map(files: _Files, entry: FileEntry) -> bytes:
    with _readable(entry.name), files.open(entry.name) as raw:
        data = raw.read()
    actual = hashlib.sha256(data).hexdigest()
    try:
        tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ArchiveError(f"not a TOML file: {exc}" + _checksum_note(entry, actual), entry.name) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ArchiveError(
            "not a TOML file: arrays or tables nested too deeply" + _checksum_note(entry, actual), entry.name
        ) from None
    _check_end(entry, actual, 0)
    return data


# ---------------------------------------------------------------------------------------------------
# Import


@dataclass(frozen=True)
class CheckedArchive:
    """An archive read in full and found whole; ``load_archive`` writes it."""

    path: Path
    manifest: Manifest
    device_map: bytes | None


@dataclass(frozen=True)
class ImportSummary:
    rows: Mapping[str, int]  # per file: rows written (idempotently: rows already there are rewritten)
    flags_kept: tuple[str, ...]  # users whose stored flags were newer than the archive's


def _check_sizes(files: _Files, manifest: Manifest) -> None:
    for entry in manifest.files.values():
        size = files.size(entry.name)
        if size < entry.size:
            raise ArchiveError(f"cut short: {size} of {entry.size} bytes", entry.name)
        if size > entry.size:
            raise ArchiveError(
                f"{size} bytes, the manifest says {entry.size}: it was changed after export", entry.name
            )


def _tables(manifest: Manifest) -> list[FileEntry]:
    return [manifest.files[name] for name in TABLES[manifest.version]]


def check_archive(path: Path, store: EventStore | None = None, report: Reporter = _silent) -> CheckedArchive:
    """Read the whole archive and check everything — sizes, checksums, headers, every cell and value —
    and, given the target ``store``, that it can hold every value. Nothing is written."""
    files = _open_files(path)
    try:
        manifest = read_manifest(files)
        _check_sizes(files, manifest)
        total, done = manifest.rows, 0
        checks: dict[str, Callable[[list[Any]], None]] = {
            EVENTS: lambda b: store.check_writable(events=b) if store else None,
            RATES: lambda b: store.check_writable(rates=b) if store else None,
            JOURNAL: lambda b: store.check_writable(journal=b) if store else None,
            FELT: lambda b: store.check_writable(journal=b) if store else None,
            FLAGS: lambda b: store.check_writable(flag_sets=b) if store else None,
        }
        for entry, values in _all_values(files, manifest):
            batch: list[tuple[int, Any]] = []
            for numbered in values:
                batch.append(numbered)
                if len(batch) == BATCH:
                    _check_batch(checks[entry.name], batch, entry.name)
                    done += len(batch)
                    report("check", done, total, "rows")
                    batch = []
            _check_batch(checks[entry.name], batch, entry.name)
            done += len(batch)
            report("check", done, total, "rows")
        device_map = manifest.files.get(DEVICE_MAP)
        data = _device_map(files, device_map) if device_map else None
    finally:
        files.close()
    return CheckedArchive(path, manifest, data)


def _all_values(files: _Files, manifest: Manifest) -> Iterator[tuple[FileEntry, Iterator[tuple[int, Any]]]]:
    for entry in _tables(manifest):
        yield entry, _csv_values(files, entry, manifest)
    for name in JSONL_FILES[manifest.version]:
        yield manifest.files[name], _flag_values(files, manifest.files[name], manifest)


def _check_batch(check: Callable[[list[Any]], None], batch: list[tuple[int, Any]], name: str) -> None:
    """Whether the target store can hold every value; the first it cannot is named by its line."""
    if not batch:
        return
    try:
        check([value for _, value in batch])
    except StoreError:
        for line, value in batch:
            try:
                check([value])
            except StoreError as exc:
                raise ArchiveError(f"the target store cannot hold this row: {exc}", name, line) from None
        raise


def load_archive(checked: CheckedArchive, store: EventStore, report: Reporter = _silent) -> ImportSummary:
    """Write a checked archive into ``store``. Every write is idempotent (rows are identified as the store
    identifies them; a journal entry by its id), so importing the same archive again changes nothing. A
    user's flags are replaced only by a newer set than the store holds."""
    files = _open_files(checked.path)
    written: dict[str, int] = {}
    kept: list[str] = []
    total, done = checked.manifest.rows, 0
    try:
        for entry, values in _all_values(files, checked.manifest):
            count = 0
            batch: list[Any] = []
            for _, value in values:
                batch.append(value)
                if len(batch) == BATCH:
                    kept += _write(store, entry.name, batch)
                    count, done = count + len(batch), done + len(batch)
                    report("write", done, total, "rows")
                    batch = []
            kept += _write(store, entry.name, batch)
            count, done = count + len(batch), done + len(batch)
            report("write", done, total, "rows")
            written[entry.name] = count
    finally:
        files.close()
    return ImportSummary(written, tuple(kept))


def _write(store: EventStore, name: str, batch: list[Any]) -> list[str]:
    if not batch:
        return []
    if name == EVENTS:
        store.write_events(batch)
    elif name == RATES:
        store.write_rates(batch)
    elif name in (JOURNAL, FELT):
        for entry in batch:
            store.add_journal_entry(entry)
    else:
        kept = []
        for flag_set in batch:
            current = store.current_flags(flag_set.user)
            if current is not None and current.computed_at_ns > flag_set.computed_at_ns:
                kept.append(flag_set.user)  # the store's own, newer set stays current
            elif current != flag_set:
                store.replace_flags(flag_set)
        return kept
    return []
