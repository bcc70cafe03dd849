"""Session-wide real services. Under CI=true a missing service fails the run instead of skipping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from tests.harness import ServiceMissing, unavailable
from tests.harness.influx import InfluxServer
from tests.harness.mosquitto import MosquittoServer


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


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    yield from _serve(MosquittoServer.start, tmp_path_factory.mktemp("mosquitto"))


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    yield from _serve(InfluxServer.start, tmp_path_factory.mktemp("influxdb"))
