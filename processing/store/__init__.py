"""Event stores. ``open_store(url)`` picks the backend from the URL scheme.

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's convention)
- ``influxdb://host:port/database`` (``influxdbs://`` for HTTPS): InfluxDB's v1-compatible HTTP API
"""

from __future__ import annotations

from twitchwatch.processing.store.base import (
    EventQuery,
    EventStore,
    HourCount,
    QueryError,
    StoreError,
    StoreRejected,
    stored_minute,
)
from twitchwatch.processing.store.spec import (
    InfluxAuth,
    InfluxSpec,
    SQLiteSpec,
    StoreUrlError,
    parse_store_url,
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
    "stored_minute",
]


def open_store(url: str, auth: InfluxAuth | None = None, *, create: bool = False) -> EventStore:
    """``create``: an InfluxDB database is made sure of on open (the worker's store); otherwise only
    before the first write, so that commands that only read never create one."""
    spec = parse_store_url(url)
    if isinstance(spec, SQLiteSpec):
        from twitchwatch.processing.store.sqlite import SQLiteStore

        return SQLiteStore(spec.path)
    from twitchwatch.processing.store.influx import InfluxStore

    return InfluxStore(spec.base_url, spec.database, auth or InfluxAuth(), create=create)
