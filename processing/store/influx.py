"""InfluxDB backend over the v1-compatible HTTP API: ``/write`` (line protocol) and ``/query`` (InfluxQL).

The same two endpoints exist on InfluxDB 1.x, on 2.x (2.4+ maps a database to a bucket automatically)
and on 3.x Core, so one client serves all three. Schema:

- ``twitch_events``: tags user, muscle, device, source; fields kind, amplitude, duration_ms, confidence,
  end_ns, stream, channel, unit, session_id, dominant_hz (absent where not measured), reason (absent in
  points written before rest tracking: read as ""); timestamp = start_ns.
- ``twitch_rates``: tags user, muscle, device, source; fields twitches, monitored_s, rest_s (absent where
  unknown: points written before rest tracking, read as None); timestamp = minute_ns.
- ``journal``: tags user, entry_id; fields factor, amount, note, muscle; timestamp = time_ns. Replacing or
  deleting an entry uses InfluxQL ``DELETE`` (1.x; 2.x/3.x refuse it through this API).
- ``flag_sets``: tag user; fields document (the ``FlagSet`` JSON), computed_at_ns; timestamp =
  computed_at_ns. The newest point is the current set; older ones are deleted after each write (best
  effort: where ``DELETE`` is refused they stay, and the newest still wins).

A point is identified by measurement + tag set + timestamp, which is exactly the ABC's identity
(user, muscle, device, source, start), so rewriting a point replaces it: writes are idempotent.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from twitchwatch.processing.events import SOURCES, TWITCH_KINDS, EventKind, MinuteRate, Source, TwitchEvent
from twitchwatch.processing.flags import FlagError, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store.base import (
    EventQuery,
    EventStore,
    HourCount,
    StoreError,
    StoreRejected,
    check_hour_offset,
    check_range,
)
from twitchwatch.processing.store.spec import InfluxAuth

log = logging.getLogger(__name__)

EVENTS = "twitch_events"
RATES = "twitch_rates"
JOURNAL = "journal"
FLAG_SETS = "flag_sets"
TAG_KEYS = ("device", "muscle", "source", "user")  # sorted: InfluxDB indexes tags in this order
WRITE_BATCH = 5000  # lines per POST: well under 1.x's default 25 MB body limit
CHUNK_SIZE = 10_000  # rows per chunk of a chunked query answer

# InfluxDB's storable time range (1.x ``models.MinNanoTime``/``MaxNanoTime``): int64's extremes are
# reserved as sentinels, so points outside it are refused here with a clear message.
MIN_TIME_NS = -9_223_372_036_854_775_806
MAX_TIME_NS = 9_223_372_036_854_775_806
_INT64 = (-(2**63), 2**63 - 1)

_EVENT_FIELDS = (
    "kind",
    "amplitude",
    "confidence",
    "end_ns",
    "stream",
    "channel",
    "unit",
    "session_id",
    "dominant_hz",
    "reason",
)
_RATE_FIELDS = ("twitches", "monitored_s", "rest_s", "end_s")
_SOURCES: dict[str, Source] = {s: s for s in SOURCES}
_CREDENTIALS_HINT = (
    "check TWITCHWATCH_INFLUX_TOKEN (InfluxDB 2.x/3.x) or TWITCHWATCH_INFLUX_USERNAME/"
    "TWITCHWATCH_INFLUX_PASSWORD (1.x)"
)

Row = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------------
# Line protocol


class Dialect(enum.Enum):
    """How the server's line-protocol parser treats a backslash inside a measurement, tag key or value.

    The Go parser (InfluxDB 1.x and 2.x) only unescapes ``\\,`` ``\\=`` ``\\ ``: every other backslash,
    including ``\\\\``, is kept literally. The Rust parser (3.x) also unescapes ``\\\\`` to one
    backslash. No single spelling of ``a\\\\b`` means the same to both, so the store asks the server
    which one it is talking to.
    """

    GO = "go"
    RUST = "rust"


def dialect_for_version(version: str) -> Dialect:
    """``1.6.7~rc0``, ``v2.7.10``, ``3.0.1`` … → the line-protocol dialect; unknown means Go (1.x/2.x)."""
    match = re.match(r"\s*v?(\d+)", version)
    return Dialect.RUST if match and int(match.group(1)) >= 3 else Dialect.GO


def _check_key_text(value: str, what: str) -> None:
    """Reject what no line-protocol escape can carry in a measurement, tag key or tag value."""
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise StoreRejected(
            f"InfluxDB cannot store {what} {value!r}: line protocol has no escape for the control "
            f"character {bad!r} (U+{ord(bad):04X}) in a tag; remove it from the name"
        )
    if value.endswith("\\"):
        # Both parsers read the backslash as escaping the separator after it, and refuse the line.
        raise StoreRejected(
            f"InfluxDB cannot store {what} {value!r}: line protocol tags may not end with a backslash; "
            "rename it"
        )


def _escape(value: str, specials: str, dialect: Dialect, what: str) -> str:
    _check_key_text(value, what)
    out: list[str] = []
    for ch in value:
        if ch in specials or (ch == "\\" and dialect is Dialect.RUST):
            out.append("\\")
        out.append(ch)
    return "".join(out)


def escape_measurement(name: str, dialect: Dialect) -> str:
    return _escape(name, ", ", dialect, "measurement")


def escape_tag(value: str, dialect: Dialect, what: str = "tag") -> str:
    """A tag key or value: comma, equals sign and space are escaped (and backslash on 3.x)."""
    return _escape(value, ",= ", dialect, what)


def quote_field_string(value: str) -> str:
    """A string field value: both parsers unescape ``\\\\`` and ``\\"`` inside the quotes; a newline
    inside the quotes is part of the value."""
    if any(unicodedata.category(c) == "Cs" for c in value):
        raise StoreRejected(f"cannot store {value!r}: it contains a lone surrogate, which is not UTF-8")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(value: float, what: str) -> str:
    if not math.isfinite(value):
        raise StoreRejected(f"InfluxDB cannot store {what} = {value}: only finite numbers fit a float field")
    return repr(float(value))  # shortest text that parses back to the identical double


def format_int(value: int, what: str) -> str:
    if not _INT64[0] <= value <= _INT64[1]:
        raise StoreRejected(f"InfluxDB cannot store {what} = {value}: integer fields are 64-bit")
    return f"{value}i"


def _check_time(ns: int, what: str) -> int:
    if not MIN_TIME_NS <= ns <= MAX_TIME_NS:
        raise StoreRejected(f"InfluxDB cannot store {what} = {ns} ns: outside {MIN_TIME_NS}..{MAX_TIME_NS}")
    return ns


def _tag_set(tags: Mapping[str, str], dialect: Dialect) -> str:
    # InfluxDB refuses an empty tag value; a missing tag reads back as null and matches ``= ''``,
    # so leaving it out stores the empty string faithfully.
    return "".join(
        f",{escape_tag(key, dialect)}={escape_tag(value, dialect, key)}"
        for key, value in sorted(tags.items())
        if value != ""
    )


@dataclass(frozen=True)
class Line:
    """One point in line protocol. ``alone``: it must be the only line of its request (see below)."""

    text: str
    alone: bool = False


def _line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, str], ns: int, d: Dialect) -> Line:
    field_set = ",".join(f"{escape_tag(key, d)}={value}" for key, value in fields.items())
    text = f"{escape_measurement(measurement, d)}{_tag_set(tags, d)} {field_set} {ns}"
    # The Go server first splits a request into lines, reading backslashes as escape *pairs*, and
    # only then parses each point, where a backslash escapes just the character after it. A literal
    # backslash before an escaped space in a tag (``a\\ b`` for "a\ b") thus looks like an
    # unescaped space to the splitter, which may then take a later quote for the start of a string
    # field and swallow the next line. A line alone in its request cannot swallow anything.
    alone = d is Dialect.GO and any("\\" in value for value in tags.values())
    return Line(text, alone)


def _tags(user: str, muscle: str, device: str, source: str) -> dict[str, str]:
    return {"user": user, "muscle": muscle, "device": device, "source": source}


def event_line(e: TwitchEvent, dialect: Dialect) -> Line:
    fields = {
        "kind": quote_field_string(e.kind.value),
        "amplitude": format_float(e.amplitude, "amplitude"),
        "duration_ms": format_float(e.duration_ms, "duration_ms"),
        "confidence": format_float(e.confidence, "confidence"),
        "end_ns": format_int(e.end_ns, "end_ns"),
        "stream": quote_field_string(e.stream),
        "channel": format_int(e.channel, "channel"),
        "unit": quote_field_string(e.unit),
        "session_id": quote_field_string(e.session_id),
        "reason": quote_field_string(e.reason),
    }
    # A point rewritten without the field keeps the earlier value (InfluxDB merges a point's fields):
    # acceptable, as an unmeasured frequency never replaces a measured one for the same event.
    if e.dominant_hz is not None:
        fields["dominant_hz"] = format_float(e.dominant_hz, "dominant_hz")
    tags = _tags(e.user, e.muscle, e.device, e.source)
    return _line(EVENTS, tags, fields, _check_time(e.start_ns, "start_ns"), dialect)


def rate_line(r: MinuteRate, dialect: Dialect) -> Line:
    fields = {
        "twitches": format_int(r.twitches, "twitches"),
        "monitored_s": format_float(r.monitored_s, "monitored_s"),
    }
    # Unknown rest is left out, as InfluxDB has no null. A point rewritten without it keeps an earlier
    # value; the worker writes a minute's rest either always or never (``processing/worker.py``).
    if r.rest_s is not None:
        fields["rest_s"] = format_float(r.rest_s, "rest_s")
    if r.end_s is not None:
        fields["end_s"] = format_float(r.end_s, "end_s")
    tags = _tags(r.user, r.muscle, r.device, r.source)
    return _line(RATES, tags, fields, _check_time(r.minute_ns, "minute_ns"), dialect)


def journal_line(entry: JournalEntry, dialect: Dialect) -> Line:
    fields = {
        "factor": quote_field_string(entry.factor.value),
        "amount": quote_field_string(entry.amount),
        "note": quote_field_string(entry.note),
        "muscle": quote_field_string(entry.muscle),
    }
    tags = {"user": entry.user, "entry_id": entry.entry_id}
    return _line(JOURNAL, tags, fields, _check_time(entry.time_ns, "time_ns"), dialect)


def flag_set_line(flag_set: FlagSet, dialect: Dialect) -> Line:
    fields = {
        "document": quote_field_string(flag_set.to_json()),
        "computed_at_ns": format_int(flag_set.computed_at_ns, "computed_at_ns"),
    }
    ns = _check_time(flag_set.computed_at_ns, "computed_at_ns")
    return _line(FLAG_SETS, {"user": flag_set.user}, fields, ns, dialect)


# ---------------------------------------------------------------------------------------------------
# InfluxQL


def quote_ident(name: str) -> str:
    """A double-quoted identifier (also keeps keywords such as ``user`` from being parsed as such)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_literal(value: str) -> str:
    """A single-quoted string literal; InfluxQL knows the escapes ``\\\\`` ``\\'`` ``\\"`` ``\\n``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _time_range(since_ns: int, until_ns: int | None) -> str:
    # Integer literals compared with ``time`` are nanoseconds. An explicit upper bound matters:
    # without one, GROUP BY time() queries stop at now() and would drop events from a fast device clock.
    since = max(since_ns, MIN_TIME_NS)
    until = MAX_TIME_NS + 1 if until_ns is None else min(until_ns, MAX_TIME_NS + 1)
    return f"time >= {since} AND time < {until}"


def where_clause(query: EventQuery, kinds: Sequence[EventKind] | None) -> str:
    clauses = [_time_range(query.since_ns, query.until_ns)]
    for key in ("user", "muscle", "source"):
        value = getattr(query, key)
        if value is not None:
            clauses.append(f"{quote_ident(key)} = {quote_literal(value)}")
    if kinds is not None:
        clauses.append("(" + " OR ".join(f'"kind" = {quote_literal(k.value)}' for k in kinds) + ")")
    return " AND ".join(clauses)


def _select(columns: Sequence[str], measurement: str, where: str, tail: str = "") -> str:
    cols = ", ".join(quote_ident(c) for c in columns)
    return f"SELECT {cols} FROM {quote_ident(measurement)} WHERE {where}{tail}"


# ---------------------------------------------------------------------------------------------------
# Query answers


@dataclass(frozen=True)
class Series:
    """One series of a query answer; a chunked answer may split one series over several chunks."""

    name: str
    tags: Mapping[str, str]
    columns: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def rows(self) -> Iterator[Row]:
        for values in self.values:
            yield {**self.tags, **dict(zip(self.columns, values, strict=True))}


def _json_documents(text: str) -> Iterator[Any]:
    """A chunked answer is one JSON document per chunk (newline-separated); a plain one is one."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise StoreError(f"InfluxDB sent something that is not JSON: {text[:200]!r}") from exc
        yield doc


def parse_query_answer(text: str, query: str) -> list[Series]:
    """Every series of every chunk, in order; a statement error anywhere raises."""
    out: list[Series] = []
    for doc in _json_documents(text):
        if not isinstance(doc, dict):
            raise StoreError(f"unexpected InfluxDB answer {doc!r} to {query}")
        if "error" in doc:
            raise StoreError(f"InfluxDB query failed: {doc['error']}; query: {query}")
        for result in doc.get("results", ()):
            if "error" in result:
                raise StoreError(f"InfluxDB query failed: {result['error']}; query: {query}")
            for s in result.get("series", ()):
                values = tuple(tuple(v) for v in s.get("values", ()))
                out.append(Series(s.get("name", ""), s.get("tags") or {}, tuple(s["columns"]), values))
    return out


def _rows(series: Sequence[Series]) -> list[Row]:
    return [row for s in series for row in s.rows()]


def _text(row: Row, key: str) -> str:
    value = row.get(key)
    if value is None:  # a tag the point does not have: stored as the empty string (see _tag_set)
        return ""
    if not isinstance(value, str):
        raise StoreError(f"InfluxDB column {key!r} holds {value!r}, expected a string")
    return value


def _int(row: Row, key: str) -> int:
    value = row.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoreError(f"InfluxDB column {key!r} holds {value!r}, expected an integer")
    return value


def _float(row: Row, key: str) -> float:
    value = row.get(key)  # Go's JSON writes 2.0 as 2, so ints are floats here too
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise StoreError(f"InfluxDB column {key!r} holds {value!r}, expected a number")
    return float(value)


def _source(row: Row) -> Source:
    value = _text(row, "source")
    if value not in _SOURCES:
        raise StoreError(f"InfluxDB tag 'source' holds {value!r}, expected one of {', '.join(SOURCES)}")
    return _SOURCES[value]


def _event(row: Row) -> TwitchEvent:
    try:
        return TwitchEvent(
            user=_text(row, "user"),
            muscle=_text(row, "muscle"),
            device=_text(row, "device"),
            stream=_text(row, "stream"),
            channel=_int(row, "channel"),
            kind=EventKind(_text(row, "kind")),
            start_ns=_int(row, "time"),
            end_ns=_int(row, "end_ns"),
            amplitude=_float(row, "amplitude"),
            unit=_text(row, "unit"),
            confidence=_float(row, "confidence"),
            source=_source(row),
            session_id=_text(row, "session_id"),
            dominant_hz=None if row.get("dominant_hz") is None else _float(row, "dominant_hz"),
            reason=_text(row, "reason"),
        )
    except ValueError as exc:
        raise StoreError(f"a point in {EVENTS} is not a valid event ({exc}): {dict(row)!r}") from exc


def _rate(row: Row) -> MinuteRate:
    try:
        return MinuteRate(
            user=_text(row, "user"),
            muscle=_text(row, "muscle"),
            device=_text(row, "device"),
            source=_source(row),
            minute_ns=_int(row, "time"),
            twitches=_int(row, "twitches"),
            monitored_s=_float(row, "monitored_s"),
            rest_s=None if row.get("rest_s") is None else _float(row, "rest_s"),
            end_s=None if row.get("end_s") is None else _float(row, "end_s"),
        )
    except ValueError as exc:
        raise StoreError(f"a point in {RATES} is not a valid minute rate ({exc}): {dict(row)!r}") from exc


def _order(row: Row) -> tuple[int, str, str, str, str]:
    # The ABC orders by time then muscle; user/device/source only make ties deterministic.
    return (
        _int(row, "time"),
        _text(row, "muscle"),
        _text(row, "user"),
        _text(row, "device"),
        _text(row, "source"),
    )


# ---------------------------------------------------------------------------------------------------
# HTTP


def _server_message(response: httpx.Response) -> str:
    """1.x and 3.x answer ``{"error": …}``, 2.x ``{"code": …, "message": …}``; proxies answer HTML."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text.strip()[:500] or response.reason_phrase


def _next_step(status: int, message: str, database: str) -> str:
    lowered = message.lower()
    if status == 401:
        return f"authentication failed: {_CREDENTIALS_HINT}"
    if "database not found" in lowered or "bucket not found" in lowered or status == 404:
        return (
            f'database not found: create it with CREATE DATABASE "{database}" (1.x, as an admin), '
            f"a bucket with a DBRP mapping for {database!r} (2.x) "
            f"or `influxdb3 create database {database}` (3.x)"
        )
    if status == 403:
        return f"not authorised: give these credentials read and write access to database {database!r}"
    if status == 413:
        return "request too large: raise the server's [http] max-body-size"
    if "unable to parse" in lowered:
        return "the server could not parse the line protocol shown: please report this as a twitchwatch bug"
    if "partial write" in lowered or status in (400, 422):
        return (
            "InfluxDB rejected the points (a field type conflict with older data, or a timestamp outside "
            "the retention policy); nothing was dropped silently: fix the cause and write again "
            "(writes are idempotent)"
        )
    return "see the InfluxDB server's log, then retry (writes are idempotent)"


def _refused(status: int, message: str) -> bool:
    """A write the server refused for what it holds (400/422: unparsable, a type conflict, outside the
    retention policy; 413: too large, which a smaller batch cures), not for where it went: sent again as
    it is, it fails again."""
    return status in (400, 413, 422) and "database not found" not in message.lower()


def _http_auth(auth: InfluxAuth) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    # A token goes in the header InfluxDB 2.x/3.x expect; 1.x users use basic auth (keeping the
    # password out of URLs and access logs, unlike the ``u``/``p`` parameters).
    if auth.token:
        return {"Authorization": f"Token {auth.token}"}, None
    if auth.username or auth.password:
        return {}, httpx.BasicAuth(auth.username or "", auth.password or "")
    return {}, None


def _store_url(base_url: str, database: str) -> str:
    parts = urlsplit(base_url)
    scheme = "influxdbs" if parts.scheme == "https" else "influxdb"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = parts.port or (443 if parts.scheme == "https" else 8086)
    return f"{scheme}://{host}:{port}/{database}"


def _request_bodies(lines: Sequence[Line]) -> Iterator[bytes]:
    """Batches of up to WRITE_BATCH lines; a line marked ``alone`` gets a request of its own. Two
    writes of one point have the same tags, hence the same mark, so their order is kept."""
    batch: list[str] = []
    for line in lines:
        if line.alone:
            yield line.text.encode()
            continue
        batch.append(line.text)
        if len(batch) == WRITE_BATCH:
            yield "\n".join(batch).encode()
            batch = []
    if batch:
        yield "\n".join(batch).encode()


def check_database_name(name: str) -> str:
    """A database name goes into InfluxQL only double-quoted (``quote_ident``) and into URLs only as a
    query parameter; what no quoting carries is refused outright."""
    if not name:
        raise StoreError("the InfluxDB database name is empty: give it in the store URL")
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise StoreError(
            f"InfluxDB database name {name!r} contains the control character U+{ord(bad):04X}: rename it"
        )
    return name


class InfluxStore(EventStore):
    """``create``: make sure the database exists on open (the worker, which reads back what it stored
    before it writes). Otherwise it is created just before this store's first write, and never for a
    store that only reads: a read of a missing database is an error that says so."""

    def __init__(
        self,
        base_url: str,
        database: str,
        auth: InfluxAuth,
        *,
        create: bool = False,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,  # tests stand in for servers not installed here
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.database = check_database_name(database)
        self.url = _store_url(self.base_url, database)
        headers, basic = _http_auth(auth)
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, auth=basic, timeout=timeout, transport=transport
        )
        self._create_tried = False
        self._create_error: str | None = None
        try:
            self.dialect = self._ping()
            self._check_login()
            if create:
                self._ensure_database()
        except BaseException:
            self._client.close()
            raise

    # -- transport ------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise StoreError(
                f"cannot reach InfluxDB at {self.base_url} ({detail}); "
                f"check the server is running and that {self.url} is its address"
            ) from exc

    def _fail(self, response: httpx.Response, action: str) -> StoreError:
        message = _server_message(response)
        step = _next_step(response.status_code, message, self.database)
        if self._create_error and "database not found" in step:
            step += f" (creating it on open failed: {self._create_error})"
        return StoreError(f"InfluxDB {action} failed: HTTP {response.status_code} {message}; {step}")

    def _ping(self) -> Dialect:
        response = self._send("GET", "/ping")
        if response.status_code == 401:
            raise self._fail(response, f"ping of {self.base_url}")
        version = response.headers.get("X-Influxdb-Version", "")
        if not version and response.content:
            try:  # 3.x may answer /ping with {"version": …}
                body = response.json()
            except ValueError:
                body = {}
            version = str(body.get("version", "")) if isinstance(body, dict) else ""
        return dialect_for_version(version)

    def _check_login(self) -> None:
        """Wrong credentials fail on open, not at the first query. ``SHOW DATABASES`` changes nothing
        and any user may run it (1.x lists only the databases the user may read)."""
        response = self._send("GET", "/query", params={"q": "SHOW DATABASES"})
        if response.status_code == 401:
            raise self._fail(response, "login")

    def _ensure_database(self) -> None:
        # 1.x creates the database (a no-op if it exists). 2.x/3.x refuse the statement, or the user
        # may lack admin rights: carry on and let a write report a missing database with a hint.
        self._create_tried = True
        statement = f"CREATE DATABASE {quote_ident(self.database)}"
        response = self._send("POST", "/query", data={"q": statement})
        if response.status_code == 401:
            raise self._fail(response, "login")
        if not response.is_success:
            self._create_error = _server_message(response)
            return
        try:
            parse_query_answer(response.text, statement)
        except StoreError as exc:
            self._create_error = str(exc)

    def _query(self, statement: str) -> list[Series]:
        params = {
            "db": self.database,
            "q": statement,
            "epoch": "ns",
            # Chunked answers are never cut at the server's max-row-limit (unchunked ones are).
            "chunked": "true",
            "chunk_size": str(CHUNK_SIZE),
        }
        response = self._send("GET", "/query", params=params)
        if not response.is_success:
            raise self._fail(response, f"query {statement!r}")
        try:
            return parse_query_answer(response.text, statement)
        except StoreError as exc:
            if "database not found" not in str(exc):
                raise
            raise StoreError(
                f"InfluxDB at {self.base_url} has no database {self.database!r}: twitchwatch creates it on "
                "its first write (start the worker, `twitchwatch process`), never on a read; if it should "
                "exist, check the name in TWITCHWATCH_STORE_URL"
            ) from exc

    def _before_write(self) -> None:
        if not self._create_tried:
            self._ensure_database()

    def _write_lines(self, lines: Sequence[Line]) -> None:
        if lines:
            self._before_write()
        params = {"db": self.database, "precision": "ns"}
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        for body in _request_bodies(lines):
            response = self._send("POST", "/write", params=params, content=body, headers=headers)
            if not response.is_success:  # includes 1.x's "400 partial write": never drop silently
                error = self._fail(response, f"write of {len(lines)} points to {self.database!r}")
                if _refused(response.status_code, str(error)):
                    raise StoreRejected(str(error)) from None
                raise error

    # -- EventStore -----------------------------------------------------------------------------

    def write_events(self, events: Sequence[TwitchEvent]) -> None:
        # Encode everything first: a value InfluxDB cannot hold fails the call before anything is sent.
        self._write_lines([event_line(e, self.dialect) for e in events])

    def write_rates(self, rates: Sequence[MinuteRate]) -> None:
        self._write_lines([rate_line(r, self.dialect) for r in rates])

    def _fetch(self, build: Callable[[EventQuery], str], query: EventQuery) -> list[Row]:
        """Rows of ``build(query)`` ordered by (time, muscle, …), cut at ``query.limit``.

        InfluxDB orders by time only, so the server's LIMIT may cut a group of rows that share the last
        timestamp in the wrong place; that group is fetched whole and the cut is made here."""
        limit = query.limit
        tail = f" ORDER BY time ASC LIMIT {limit}" if limit is not None else ""
        rows = _rows(self._query(build(query) + tail))
        if limit is not None and len(rows) >= limit:
            edge = _int(rows[-1], "time")
            at_edge = replace(query, since_ns=edge, until_ns=edge + 1, limit=None)
            rows = [r for r in rows if _int(r, "time") < edge] + _rows(self._query(build(at_edge)))
        rows.sort(key=_order)
        return rows if limit is None else rows[:limit]

    def events(self, query: EventQuery) -> list[TwitchEvent]:
        def build(q: EventQuery) -> str:
            return _select((*_EVENT_FIELDS, *TAG_KEYS), EVENTS, where_clause(q, q.kinds))

        return [_event(row) for row in self._fetch(build, query)]

    def rates(self, query: EventQuery) -> list[MinuteRate]:
        def build(q: EventQuery) -> str:
            return _select((*_RATE_FIELDS, *TAG_KEYS), RATES, where_clause(q, None))

        return [_rate(row) for row in self._fetch(build, query)]

    def _data_span(
        self, where: str, measurement: str = EVENTS, column: str = "amplitude"
    ) -> tuple[int, int] | None:
        """First and last matching timestamps (``column``: a field every point has). Bounding GROUP BY
        time() by the data, not by the query's open-ended range, keeps servers with max-select-buckets set
        from refusing it."""
        ends: list[int] = []
        for direction in ("ASC", "DESC"):
            rows = _rows(
                self._query(_select((column,), measurement, where, f" ORDER BY time {direction} LIMIT 1"))
            )
            if not rows:
                return None
            ends.append(_int(rows[0], "time"))
        return ends[0], ends[1]

    def event_span(self, query: EventQuery) -> tuple[int, int] | None:
        return self._data_span(where_clause(query, query.kinds))

    def rate_span(self, query: EventQuery) -> tuple[int, int] | None:
        return self._data_span(where_clause(query, None), RATES, "twitches")

    def hourly_twitch_counts(self, query: EventQuery, offset_ns: int = 0) -> list[HourCount]:
        # InfluxQL's GROUP BY time(interval, offset) shifts the buckets; a whole-hour zone sends none.
        off = check_hour_offset(offset_ns)
        shift = f", {off}ns" if off else ""
        kinds = query.kinds if query.kinds is not None else TWITCH_KINDS
        span = self._data_span(where_clause(query, kinds))
        if span is None:
            return []
        bounded = replace(query, since_ns=span[0], until_ns=span[1] + 1, limit=None)
        statement = (
            f'SELECT count("amplitude") AS "twitches" FROM {quote_ident(EVENTS)} '
            f'WHERE {where_clause(bounded, kinds)} GROUP BY time(1h{shift}), "muscle" fill(none)'
        )
        counts = [
            HourCount(_text(row, "muscle"), _int(row, "time"), _int(row, "twitches"))
            for row in _rows(self._query(statement))
            if row.get("twitches")
        ]
        return sorted(counts, key=lambda c: (c.hour_ns, c.muscle))

    def muscles(self, user: str | None = None) -> list[str]:
        # The tag index answers this without reading points. The all-time range is a no-op on 1.x and
        # stops 3.x from limiting SHOW TAG VALUES to its default recent window.
        where = _time_range(MIN_TIME_NS, None)
        if user is not None:
            where += f' AND "user" = {quote_literal(user)}'
        found: set[str] = set()
        for measurement in (EVENTS, RATES):
            statement = f'SHOW TAG VALUES FROM {quote_ident(measurement)} WITH KEY = "muscle" WHERE {where}'
            found.update(_text(row, "value") for row in _rows(self._query(statement)))
        return sorted(found)

    def users(self) -> list[str]:
        where = _time_range(MIN_TIME_NS, None)
        found: set[str] = set()
        for measurement, column in (
            (EVENTS, "amplitude"),
            (RATES, "twitches"),
            (JOURNAL, "factor"),
            (FLAG_SETS, "document"),
        ):
            statement = f'SHOW TAG VALUES FROM {quote_ident(measurement)} WITH KEY = "user" WHERE {where}'
            found.update(_text(row, "value") for row in _rows(self._query(statement)))
            # The empty user is stored as a point without the tag (``_tag_set``), which the tag index
            # does not list.
            if "" not in found and _rows(
                self._query(_select((column,), measurement, f"{where} AND \"user\" = ''", " LIMIT 1"))
            ):
                found.add("")
        return sorted(found)

    def check_writable(
        self,
        events: Sequence[TwitchEvent] = (),
        rates: Sequence[MinuteRate] = (),
        journal: Sequence[JournalEntry] = (),
        flag_sets: Sequence[FlagSet] = (),
    ) -> None:
        # Encoding is where everything InfluxDB cannot hold is refused; nothing is sent.
        for e in events:
            event_line(e, self.dialect)
        for r in rates:
            rate_line(r, self.dialect)
        for j in journal:
            journal_line(j, self.dialect)
        for f in flag_sets:
            flag_set_line(f, self.dialect)

    # -- journal and flags ----------------------------------------------------------------------

    def _statement(self, statement: str) -> None:
        """A statement that changes data (DELETE): sent as POST, as InfluxDB requires."""
        response = self._send("POST", "/query", data={"db": self.database, "q": statement})
        if not response.is_success:
            raise self._fail(response, f"statement {statement!r}")
        parse_query_answer(response.text, statement)

    def _journal_ids(self, entry_id: str) -> list[Row]:
        where = f'{_time_range(MIN_TIME_NS, None)} AND "entry_id" = {quote_literal(entry_id)}'
        return _rows(self._query(_select(("factor",), JOURNAL, where)))

    def add_journal_entry(self, entry: JournalEntry) -> None:
        line = journal_line(entry, self.dialect)  # fails before anything changes if it cannot be stored
        self._before_write()  # the lookup below reads the database the write may have to create
        if self._journal_ids(entry.entry_id):
            self.delete_journal_entry(entry.entry_id)  # it may have moved in time: one point per id
        self._write_lines([line])

    def journal_entries(
        self, since_ns: int = 0, until_ns: int | None = None, user: str | None = None
    ) -> list[JournalEntry]:
        check_range(since_ns, until_ns)
        where = _time_range(since_ns, until_ns)
        if user is not None:
            where += f' AND "user" = {quote_literal(user)}'
        columns = ("factor", "amount", "note", "muscle", "user", "entry_id")
        entries = []
        for row in _rows(self._query(_select(columns, JOURNAL, where))):
            try:
                entries.append(
                    JournalEntry(
                        user=_text(row, "user"),
                        time_ns=_int(row, "time"),
                        factor=Factor(_text(row, "factor")),
                        amount=_text(row, "amount"),
                        note=_text(row, "note"),
                        muscle=_text(row, "muscle"),
                        entry_id=_text(row, "entry_id"),
                    )
                )
            except ValueError as exc:
                raise StoreError(f"a point in {JOURNAL} is not a valid entry ({exc}): {dict(row)!r}") from exc
        return sorted(entries, key=lambda e: (e.time_ns, e.entry_id))

    def delete_journal_entry(self, entry_id: str) -> bool:
        if not self._journal_ids(entry_id):
            return False
        self._statement(f'DELETE FROM {quote_ident(JOURNAL)} WHERE "entry_id" = {quote_literal(entry_id)}')
        return True

    def replace_flags(self, flag_set: FlagSet) -> None:
        self._write_lines([flag_set_line(flag_set, self.dialect)])
        older = (
            f'DELETE FROM {quote_ident(FLAG_SETS)} WHERE "user" = {quote_literal(flag_set.user)} '
            f"AND time < {flag_set.computed_at_ns}"
        )
        try:
            self._statement(older)
        except StoreError as exc:
            # The newest point is the current set whatever stays behind; only housekeeping failed.
            log.debug("could not delete older flag sets of %r: %s", flag_set.user, exc)

    def current_flags(self, user: str) -> FlagSet | None:
        where = f'{_time_range(MIN_TIME_NS, None)} AND "user" = {quote_literal(user)}'
        rows = _rows(self._query(_select(("document",), FLAG_SETS, where, " ORDER BY time DESC LIMIT 1")))
        if not rows:
            return None
        try:
            return FlagSet.from_json(_text(rows[0], "document"))
        except FlagError as exc:
            raise StoreError(f"the stored flags of {user!r} in {self.database!r} are invalid: {exc}") from exc

    def close(self) -> None:
        self._client.close()
