"""Session-wide real services. Under CI=true a missing service fails the run instead of skipping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ServiceMissing, in_ci
from tests.harness.influx import InfluxServer
from tests.harness.mosquitto import MosquittoServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _unavailable(exc: ServiceMissing) -> None:
    if in_ci():
        pytest.fail(f"{exc} (CI=true: services must be present, nothing skips)")
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    try:
        server = MosquittoServer.start(tmp_path_factory.mktemp("mosquitto"))
    except ServiceMissing as exc:
        _unavailable(exc)
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        exc = ServiceMissing(f"../shared not found at {SHARED}: the tests read real recordings from it")
        _unavailable(exc)
    return SHARED


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    try:
        server = InfluxServer.start(tmp_path_factory.mktemp("influxdb"))
    except ServiceMissing as exc:
        _unavailable(exc)
        raise
    yield server
    server.stop()
