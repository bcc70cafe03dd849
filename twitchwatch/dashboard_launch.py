"""Start the Streamlit dashboard as a child process (``twitchwatch dashboard`` and ``twitchwatch demo``)."""

from __future__ import annotations

import importlib.util
import ipaddress
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from twitchwatch.errors import UserError

if TYPE_CHECKING:
    from twitchwatch.config import Settings

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


class DashboardExposed(UserError, ValueError):
    """The dashboard would serve other machines without a login; the message says how to set one."""


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host``: a loopback address or ``localhost``. Any other name may
    resolve to an address other machines reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def streamlit_auth_configured(cwd: Path, home: Path) -> bool:
    """An ``[auth]`` section in a secrets file Streamlit reads (its default ``secrets.files``)."""
    for path in (home / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml"):
        try:
            secrets = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DashboardExposed(f"cannot read Streamlit's secrets {path}: {exc}") from None
        except RecursionError:  # tomllib parses nested arrays and tables recursively
            raise DashboardExposed(
                f"cannot read Streamlit's secrets {path}: arrays or tables nested too deeply"
            ) from None
        if isinstance(secrets.get("auth"), dict):
            return True
    return False


def require_login_beyond_loopback(
    host: str, settings: Settings, cwd: Path | None = None, home: Path | None = None
) -> None:
    """Health data is served to other machines only behind a login: a password, or Streamlit's OIDC
    login limited to named e-mail addresses."""
    if is_loopback(host) or settings.dashboard_password is not None:
        return
    if settings.dashboard_oidc_emails:
        if not streamlit_auth_configured(cwd or Path.cwd(), home or Path.home()):
            raise DashboardExposed(
                "TWITCHWATCH_DASHBOARD_OIDC_EMAILS is set, but no [auth] section was found in "
                "~/.streamlit/secrets.toml or ./.streamlit/secrets.toml: configure the OIDC provider "
                "there (docs/reliability.md, Access control)"
            )
        if importlib.util.find_spec("authlib") is None:
            raise DashboardExposed(
                "Streamlit's OIDC login needs Authlib: pip install 'twitchwatch[oidc]' (or Authlib>=1.3.2)"
            )
        return
    raise DashboardExposed(
        f"refusing to serve the dashboard on {host}, where other machines can reach it, without a login. "
        "Set a password: write one to a file only you can read (openssl rand -base64 18 > FILE; "
        "chmod 600 FILE) and set TWITCHWATCH_DASHBOARD_PASSWORD_FILE=FILE (or "
        "TWITCHWATCH_DASHBOARD_PASSWORD); or configure Streamlit's OIDC login with "
        "TWITCHWATCH_DASHBOARD_OIDC_EMAILS (docs/reliability.md, Access control). Or keep the default "
        "--host 127.0.0.1."
    )


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
