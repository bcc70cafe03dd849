"""``twitchwatch.dashboard_launch``: the argv it builds, and that ``run_dashboard`` passes stop
signals on to the real Streamlit server and reports its exit code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import free_port
from tests.harness.dashboard import USER, DashboardProcess
from twitchwatch.dashboard_launch import ENTRY, dashboard_command


def flags(argv: list[str]) -> dict[str, str]:
    """``--name value`` pairs after the script path."""
    rest = argv[argv.index(str(ENTRY)) + 1 :]
    return dict(zip(rest[::2], rest[1::2], strict=True))


def test_command_runs_the_entry_script_with_this_python() -> None:
    argv = dashboard_command("127.0.0.1", 8765)
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(ENTRY)]
    assert ENTRY.is_file()
    assert ENTRY.name == "dashboard_entry.py"


def test_command_binds_the_address_and_never_prompts_or_phones_home() -> None:
    opts = flags(dashboard_command("127.0.0.1", 8765))
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8765"
    assert opts["--server.headless"] == "true"
    assert opts["--server.showEmailPrompt"] == "false"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert opts["--global.developmentMode"] == "false"
    # A concrete address also stops Streamlit from looking up the external IP.
    assert opts["--browser.serverAddress"] == "127.0.0.1"


def test_wildcard_bind_does_not_advertise_the_wildcard() -> None:
    opts = flags(dashboard_command("0.0.0.0", 8501))
    assert opts["--server.address"] == "0.0.0.0"
    assert "--browser.serverAddress" not in opts


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_dashboard_forwards_stop_signals(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    env = dict(
        os.environ,
        TWITCHWATCH_STORE_URL=f"sqlite:///{tmp_path / 'events.db'}",
        TWITCHWATCH_USER=USER,
        HOME=str(tmp_path),  # Streamlit's per-user files stay in the temp dir
    )
    code = (
        "import sys; from twitchwatch.dashboard_launch import run_dashboard; "
        f"sys.exit(run_dashboard('127.0.0.1', {port}))"
    )
    log = tmp_path / "launcher.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    server = DashboardProcess(port, proc, log)
    try:
        server.wait_healthy(60)
        proc.send_signal(signum)  # to the launcher only: the server is in its own process group
        assert proc.wait(30) == 0, server.log_tail()
        assert not _port_open(port), "the Streamlit server outlived its launcher"
    finally:
        server.stop()
