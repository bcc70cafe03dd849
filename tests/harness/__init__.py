"""Real services for the tests: each starts its own instance on a free loopback port in a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import NoReturn

import pytest


class ServiceMissing(RuntimeError):
    """A service binary is not installed; ``make test`` installs it from Debian's packages."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """A prerequisite is missing: skip on a developer's machine, fail under CI (where nothing may skip)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: it must be present, nothing skips)")
    pytest.skip(reason)


SETTINGS_PREFIX = "TWITCHWATCH_"  # every setting twitchwatch reads from the environment


def environ_without_settings(**extra: str) -> dict[str, str]:
    """A subprocess's environment: this one without the developer's ``TWITCHWATCH_*``, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)} | extra


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ``TWITCHWATCH_*`` variable for this test (``monkeypatch`` puts them back)."""
    for key in [k for k in os.environ if k.startswith(SETTINGS_PREFIX)]:
        monkeypatch.delenv(key)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        raise ServiceMissing(f"{name} not found: install Debian's {package!r} package (make test does this)")
    return path


def wait_for_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s; log:\n{tail}")
