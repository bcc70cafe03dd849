"""Event stores. ``open_store(url)`` picks the backend from the URL scheme.

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's convention)
- ``influxdb://host:port/database`` (``influxdbs://`` for HTTPS): InfluxDB's v1-compatible HTTP API
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from twitchwatch.processing.store.base import (
    EventQuery,
    EventStore,
    HourCount,
    QueryError,
    StoreError,
    StoreRejected,
)

__all__ = [
    "EventQuery",
    "EventStore",
    "HourCount",
    "InfluxAuth",
    "InfluxSpec",
    "QueryError",
    "SQLiteSpec",
    "StoreError",
    "StoreRejected",
    "StoreUrlError",
    "open_store",
    "parse_store_url",
]


class StoreUrlError(ValueError):
    """A store URL is malformed; the message shows the accepted forms."""


@dataclass(frozen=True)
class InfluxAuth:
    """Token auth (InfluxDB 2.x/3.x) or username/password (1.x); both empty means no auth."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never print secrets
        return f"InfluxAuth(token={'***' if self.token else None}, username={self.username!r})"


@dataclass(frozen=True)
class SQLiteSpec:
    path: Path


@dataclass(frozen=True)
class InfluxSpec:
    base_url: str
    database: str


_FORMS = "sqlite:///path/to/file.db or influxdb://host:port/database (influxdbs:// for TLS)"


def parse_store_url(url: str) -> SQLiteSpec | InfluxSpec:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise StoreUrlError(f"bad SQLite URL {url!r}: use {_FORMS}")
        return SQLiteSpec(Path(parts.path[1:]))
    if parts.scheme in ("influxdb", "influxdbs"):
        database = parts.path.strip("/")
        if not parts.hostname or not database or "/" in database:
            raise StoreUrlError(f"bad InfluxDB URL {url!r}: use {_FORMS}")
        if parts.username or parts.password:
            raise StoreUrlError(
                "put InfluxDB credentials in TWITCHWATCH_INFLUX_TOKEN or TWITCHWATCH_INFLUX_USERNAME/"
                "_PASSWORD (or their *_FILE forms), not in the URL"
            )
        try:
            port = parts.port or 8086
        except ValueError as exc:
            raise StoreUrlError(f"bad port in {url!r}: {exc}") from None
        http = "https" if parts.scheme == "influxdbs" else "http"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return InfluxSpec(f"{http}://{host}:{port}", database)
    raise StoreUrlError(f"unknown store URL scheme {parts.scheme!r} in {url!r}: use {_FORMS}")


def open_store(url: str, auth: InfluxAuth | None = None, *, create: bool = False) -> EventStore:
    """``create``: an InfluxDB database is made sure of on open (the worker's store); otherwise only
    before the first write, so that commands that only read never create one."""
    spec = parse_store_url(url)
    if isinstance(spec, SQLiteSpec):
        from twitchwatch.processing.store.sqlite import SQLiteStore

        return SQLiteStore(spec.path)
    from twitchwatch.processing.store.influx import InfluxStore

    return InfluxStore(spec.base_url, spec.database, auth or InfluxAuth(), create=create)
