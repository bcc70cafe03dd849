"""Start the Streamlit dashboard as a child process (``twitchwatch dashboard`` and ``twitchwatch demo``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ENTRY = Path(__file__).resolve().with_name("dashboard_entry.py")
_WILDCARDS = {"0.0.0.0", "::", ""}
# How long the child gets to stop after a forwarded signal before it is killed.
STOP_GRACE_S = 10.0


def dashboard_command(host: str, port: int) -> list[str]:
    """argv for ``streamlit run`` on the dashboard: bound to ``host``, no prompts, no network calls."""
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY),
        "--server.address",
        host,
        "--server.port",
        str(port),
        # headless: no browser opened, no first-run e-mail prompt on stdin.
        "--server.headless",
        "true",
        "--server.showEmailPrompt",
        "false",
        "--browser.gatherUsageStats",
        "false",
        # An installed app, not a Streamlit checkout: no dev-server CORS relaxations, info logging.
        "--global.developmentMode",
        "false",
        # Nothing to hot-reload in an installed app; watching files only costs CPU.
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        # No "Deploy" button (it links to Streamlit's cloud) or developer menu items.
        "--client.toolbarMode",
        "viewer",
    ]
    if host not in _WILDCARDS:
        # With a concrete address Streamlit prints that one URL and matches WebSocket origins against
        # it, instead of asking checkip.amazonaws.com for the machine's external IP.
        argv += ["--browser.serverAddress", host]
    return argv


def run_dashboard(host: str, port: int) -> int:
    """Run the dashboard until it exits; SIGINT/SIGTERM sent to us are passed on to it.

    The child runs in its own process group so a terminal Ctrl-C reaches it once (via us) rather
    than twice (directly and forwarded). Returns its exit code, 128+N if it died from signal N.
    """
    proc = subprocess.Popen(dashboard_command(host, port), process_group=0)
    stop_requested_at: list[float] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)
        if not stop_requested_at:
            stop_requested_at.append(time.monotonic())

    previous = _install_handlers(forward)
    try:
        code = _wait(proc, stop_requested_at)
    finally:
        _restore_handlers(previous)
        if proc.poll() is None:  # we are leaving on an exception: do not orphan the server
            proc.kill()
            proc.wait()
    return code if code >= 0 else 128 - code


def _wait(proc: subprocess.Popen[bytes], stop_requested_at: list[float]) -> int:
    # Short timeouts rather than one blocking wait, so a child that ignores the forwarded signal
    # is killed after the grace period.
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if stop_requested_at and time.monotonic() - stop_requested_at[0] > STOP_GRACE_S:
                proc.kill()


# What ``signal.signal`` takes and returns (typeshed's private ``signal._HANDLER``).
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _install_handlers(handler: Handler) -> dict[signal.Signals, Handler]:
    # signal.signal only works in the main thread; elsewhere the caller handles stopping.
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict[signal.Signals, Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
