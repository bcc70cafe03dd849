"""The quick commands import only what they use (issue 16 item 4): a structural check, not a timed one.

Each command runs as its own process under ``python -X importtime``, which lists every module the process
imported; the heavy libraries (numpy, scipy, pandas, h5py, Streamlit, matplotlib, the MQTT, BLE and HTTP
stacks) must not be among them. How fast that makes the commands is measured in bench/cli_start.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import open_store
from twitchwatch.processing.timeunits import HOUR_NS, MINUTE_NS

# Libraries none of the quick commands needs: the detector's numerics, the dashboard, sessions and EDF,
# plotting, and the clients of MQTT, BLE and InfluxDB (a SQLite store is read here).
HEAVY = (
    "numpy",
    "scipy",
    "pandas",
    "h5py",
    "pyedflib",
    "streamlit",
    "altair",
    "matplotlib",
    "aiomqtt",
    "paho",
    "bleak",
    "bumble",
    "httpx",
)
# asyncio alone costs ~45 ms of a start; only the commands that stream import it.
QUICK_HEAVY = (*HEAVY, "asyncio")
# --help validates no configuration: not even pydantic loads.
HELP_HEAVY = (*QUICK_HEAVY, "pydantic")

USER = "alice"
T0 = 1_780_000_000 * 1_000_000_000 // HOUR_NS * HOUR_NS


def imported(args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    """The modules ``twitchwatch ARGS`` imports, as ``-X importtime`` reports them."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "twitchwatch", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = {
        line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")
    }
    assert "twitchwatch.cli" in modules  # the report was read: a parse that found nothing fails here
    return modules


def heavy_in(modules: set[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in heavy)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A store holding a day of one user's history (events, minute rates, a journal entry): ``flags``
    computes from it (no worker stored a flag set), ``events`` and ``journal list`` have rows to print."""
    db = tmp_path / "history.db"
    with open_store(f"sqlite:///{db}", create=True) as store:
        rates = [
            MinuteRate(USER, "calf_left", "d1", "live", T0 + m * MINUTE_NS, m % 3, 60.0, 60.0)
            for m in range(0, 24 * 60, 7)
        ]
        store.write_rates(rates)
        store.write_events(
            [
                TwitchEvent(
                    USER, "calf_left", "d1", "emg", 0, EventKind.FASCICULATION, t, t + 10**7, 1.0, "mV", 0.9
                )
                for t in (T0 + MINUTE_NS, T0 + 3 * HOUR_NS)
            ]
        )
        store.add_journal_entry(JournalEntry(USER, T0 + HOUR_NS, Factor.CAFFEINE, "2 cups"))
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    return {
        **keep,
        "TWITCHWATCH_STORE_URL": f"sqlite:///{db}",
        "TWITCHWATCH_USER": USER,
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


@pytest.mark.parametrize(
    "args",
    [
        ["events", "--since", "3000d"],
        ["flags"],
        ["journal", "list", "--since", "3000d"],
        ["config", "check"],
    ],
    ids=" ".join,
)
def test_quick_commands_import_no_heavy_library(args: list[str], env: dict[str, str], tmp_path: Path) -> None:
    assert heavy_in(imported(args, env, tmp_path), QUICK_HEAVY) == []


def test_help_loads_no_configuration_model(env: dict[str, str], tmp_path: Path) -> None:
    modules = imported(["--help"], env, tmp_path)
    assert heavy_in(modules, HELP_HEAVY) == []
    # Every command's options are listed without their modules: the parser names commands whose
    # handlers would import the detector, sessions and the dashboard.
    assert "twitchwatch.processing.recordings" not in modules
    assert "twitchwatch.processing.archive" not in modules
    assert "twitchwatch.processing.store" not in modules


def test_config_check_of_simulated_devices_imports_no_profile(env: dict[str, str], tmp_path: Path) -> None:
    device_map = tmp_path / "devices.toml"
    device_map.write_text('[devices.sim1.streams.emg]\nmuscle = "calf_left"\n', encoding="utf-8")
    assert heavy_in(imported(["config", "check", str(device_map)], env, tmp_path), HEAVY) == []


def test_the_check_sees_a_heavy_import(env: dict[str, str], tmp_path: Path) -> None:
    # A command whose work needs numpy (the device profiles decode with it) is caught by the same check:
    # the assertions above would fail if a quick command imported it.
    assert "numpy" in heavy_in(imported(["devices", "list"], env, tmp_path), HEAVY)


def test_version_is_read_only_when_asked_for(env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twitchwatch", "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"twitchwatch {version('twitchwatch')}"
    # Building the parser does not read the distribution's metadata (a scan of site-packages).
    assert "importlib.metadata" not in imported(["--help"], env, tmp_path)
