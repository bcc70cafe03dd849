"""Session-wide real services. Under CI=true a missing service fails the run instead of skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from hypothesis import settings as hypothesis_settings

from tests.harness import ServiceMissing, clear_settings, unavailable
from tests.harness.influx import InfluxServer
from tests.harness.mosquitto import MosquittoServer
from tests.harness.rabbitmq import RabbitServer
from twitchwatch.processing.store import EventStore
from twitchwatch.processing.store.influx import InfluxStore
from twitchwatch.processing.store.sqlite import SQLiteStore

# Property-based tests repeat exactly in CI (a failure there is reproducible as is); locally they explore.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


class _Service(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Service)


def _serve(start: Callable[[Path], S], workdir: Path) -> Iterator[S]:
    try:
        server = start(workdir)
    except ServiceMissing as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TWITCHWATCH_*`` setting of the developer's leaks into the test: settings come from what the test
    sets. (A subprocess gets ``tests.harness.environ_without_settings()``.)"""
    clear_settings(monkeypatch)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    yield from _serve(MosquittoServer.start, tmp_path_factory.mktemp("mosquitto"))


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    yield from _serve(InfluxServer.start, tmp_path_factory.mktemp("influxdb"))


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    """A private RabbitMQ node (MQTT and consistent-hash plugins); it takes several seconds to boot."""
    yield from _serve(RabbitServer.start, tmp_path_factory.mktemp("rabbitmq"))


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """Each backend in turn: a fresh SQLite file, or a fresh database on the harness's InfluxDB (created
    by the store itself on open, as the worker's is, dropped afterwards)."""
    if request.param == "sqlite":
        with SQLiteStore(tmp_path / "events.db") as sqlite_store:
            yield sqlite_store
        return
    yield request.getfixturevalue("influx_store")


@pytest.fixture
def influx_store(influxdb: InfluxServer) -> Iterator[InfluxStore]:
    """A fresh database on the harness's InfluxDB, created by the store itself on open (as the worker's
    is) and dropped afterwards."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with InfluxStore(influxdb.base_url, database, influxdb.auth, create=True) as influx_store:
            yield influx_store
    finally:
        influxdb.drop_database(database)
