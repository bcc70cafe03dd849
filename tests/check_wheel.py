"""Tested from the built artifact (issue 16 item 2): what a person installs is what runs.

Run: ``.venv/bin/python -m tests.check_wheel`` (``make test`` does, after the suite). Steps:

1. ``python -m build``: the sdist, then the wheel built *from that sdist* — so the symlinks
   twitchwatch/{collector,processing,dashboard} must have survived into the sdist as the files they point
   at. The wheel must hold only ``twitchwatch/`` (nothing generic in site-packages), every module and
   Streamlit page of the tree, and py.typed.
2. A fresh venv in a temp dir, the wheel installed into it with its dependencies at the versions of
   constraints.txt (pip's cache makes this a few tens of seconds after the first time).
3. From a directory outside the checkout (nothing of it importable): ``twitchwatch --help``,
   ``--version`` (the project's version), ``config check``, ``detect`` on a small recording, the
   Dockerfile's own CMD, and a short ``demo``: it must store events and serve every dashboard page with
   HTTP 200 and no exception on the page, as Debian's chromium renders it (Streamlit shows a page's
   exception only in the rendered page; the tests' browser harness drives it).

Exit status 0 when every check passed; the first failure is printed with the command's output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.harness import free_port
from tests.harness.dashboard import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("Overview", "Live", "History", "Journal", "Report", "Analyse")
RECORDING = ROOT / "tests" / "data" / "recordings" / "biosppy_examples" / "emg_1.txt"
WAIT_S = 120  # for the demo's first events and its dashboard: a wait, not a speed requirement
RENDER_MS = 60_000


class CheckFailed(Exception):
    pass


_T0 = time.monotonic()


def step(what: str) -> None:
    print(f"check-wheel [{time.monotonic() - _T0:5.0f} s]: {what}", flush=True)


def run(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise CheckFailed(
            f"{shlex.join(argv)} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}"
        )
    return proc.stdout + proc.stderr


# ---- build ------------------------------------------------------------------------------------------


def build(out: Path) -> tuple[Path, Path]:
    """sdist, then the wheel from the sdist (``python -m build``'s default)."""
    step("building the sdist and, from it, the wheel (python -m build)")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT)
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckFailed(f"expected one sdist and one wheel in {out}, found {sdists + wheels}")
    return sdists[0], wheels[0]


def tracked_modules() -> set[str]:
    """Every module, Streamlit page and py.typed under the packages, as the wheel must name them."""
    listed = run(["git", "ls-files", "collector", "processing", "dashboard", "twitchwatch"], cwd=ROOT)
    wanted = set()
    for path in listed.split():
        if path.endswith((".py", "py.typed")):
            wanted.add(path if path.startswith("twitchwatch/") else f"twitchwatch/{path}")
    return wanted


def check_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    if top != {"twitchwatch"}:
        raise CheckFailed(f"{wheel.name} installs {sorted(top)} at the top level, not only twitchwatch")
    missing = sorted(tracked_modules() - names)
    if missing:
        raise CheckFailed(f"{wheel.name} lacks {len(missing)} file(s) of the tree: {missing[:10]}")
    pages = [n for n in names if n.startswith("twitchwatch/dashboard/pages/") and n.endswith(".py")]
    step(
        f"{wheel.name}: {len(names)} files, only twitchwatch/ at the top, {len(pages)} dashboard page modules"
    )


# ---- install and run --------------------------------------------------------------------------------


def install(wheel: Path, where: Path) -> Path:
    step(f"installing {wheel.name} into a fresh venv ({where})")
    run([sys.executable, "-m", "venv", str(where)], cwd=where.parent)
    python = where / "bin" / "python"
    # --no-compile: byte-compiling scipy, pandas and Streamlit up front would be much of the install's time.
    quiet = ["--quiet", "--disable-pip-version-check", "--no-compile"]
    # The dependency versions the suite passed with (constraints.txt), as the Dockerfile installs them.
    tested = ["--constraint", str(ROOT / "constraints.txt")]
    run([str(python), "-m", "pip", "install", *quiet, *tested, str(wheel)], cwd=where)
    return where / "bin" / "twitchwatch"


def clean_env(home: Path) -> dict[str, str]:
    """No TWITCHWATCH_* of the caller, no PYTHONPATH: only the installed wheel is importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "PYTHON", "VIRTUAL_ENV"))}
    return env | {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")}


def check_imports_from_venv(venv: Path, cwd: Path, env: dict[str, str]) -> None:
    where = run(
        [str(venv / "bin" / "python"), "-c", "import twitchwatch; print(twitchwatch.__file__)"], cwd=cwd
    )
    if not where.strip().startswith(str(venv)):
        raise CheckFailed(f"twitchwatch was imported from {where.strip()}, not from the fresh venv {venv}")


def check_commands(tw: Path, cwd: Path, env: dict[str, str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    step("twitchwatch --help, --version, config check, detect")
    if "COMMAND" not in run([str(tw), "--help"], cwd=cwd, env=env):
        raise CheckFailed("twitchwatch --help printed no command list")
    said = run([str(tw), "--version"], cwd=cwd, env=env).strip()
    if said != f"twitchwatch {version}":
        raise CheckFailed(f"twitchwatch --version said {said!r}, not 'twitchwatch {version}'")
    if "environment: OK" not in run([str(tw), "config", "check"], cwd=cwd, env=env):
        raise CheckFailed("config check did not say the environment is OK")
    out = run(
        [str(tw), "detect", str(RECORDING), "--rate", "1000", "--signal", "emg", "--json"], cwd=cwd, env=env
    )
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not events:
        raise CheckFailed(f"detect found no events in {RECORDING.name} (voluntary bursts):\n{out[-2000:]}")
    step(f"detect {RECORDING.name}: {len(events)} events")


def dockerfile_command() -> list[str]:
    """The Dockerfile's CMD (exec form), which the image runs by default."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    found = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    if len(found) != 1:
        raise CheckFailed("the Dockerfile has no single exec-form CMD [...]")
    argv = json.loads(found[0])
    if not isinstance(argv, list) or not argv or argv[0] != "twitchwatch":
        raise CheckFailed(f"the Dockerfile's CMD {found[0]} does not run twitchwatch")
    return [str(a) for a in argv]


def check_dockerfile(tw: Path, cwd: Path, env: dict[str, str]) -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    if not re.search(r"pip install[^\n]*\.whl", text):
        raise CheckFailed("the Dockerfile does not install the wheel (pip install … .whl)")
    argv = dockerfile_command()
    step(f"the Dockerfile's CMD: {shlex.join(argv)}")
    run([str(tw), *argv[1:]], cwd=cwd, env=env)


# ---- the demo and its dashboard ---------------------------------------------------------------------


def stored_events(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except OSError:
        return 0


def wait_for(what: str, ready: Callable[[], bool], demo: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if demo.poll() is not None:
            raise CheckFailed(f"the demo exited ({demo.returncode}) before {what}")
        time.sleep(0.5)
    raise CheckFailed(f"no {what} within {WAIT_S} s")


def check_pages(url: str) -> None:
    """Each page through the sidebar menu, as a person opens it: its heading shows, the script run ends,
    and no exception box, page error or console error appears."""
    if not CHROMIUM.exists():
        raise CheckFailed(f"{CHROMIUM} not found: install Debian's chromium (make system-deps)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            for title in PAGES:
                page.goto(url)
                nav = page.locator("[data-testid='stSidebarNav']")
                nav.get_by_text(title, exact=True).click(timeout=RENDER_MS)
                expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=RENDER_MS)
                app = page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")
                expect(app).to_have_count(1, timeout=RENDER_MS)
                exceptions = page.locator("[data-testid='stException']")
                if exceptions.count():
                    raise CheckFailed(
                        f"the {title} page shows an exception:\n{exceptions.first.inner_text()}"
                    )
                if errors:
                    raise CheckFailed(
                        f"the browser reported errors on the {title} page:\n" + "\n".join(errors)
                    )
                step(f"dashboard page {title}: rendered, no exception")
        finally:
            browser.close()


def check_demo(tw: Path, cwd: Path, env: dict[str, str]) -> None:
    port = free_port()
    db = Path(env["XDG_DATA_HOME"]) / "twitchwatch" / "demo.db"
    step(f"twitchwatch demo --port {port}: events stored, every dashboard page served")
    log_path = cwd / "demo.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [str(tw), "demo", "--port", str(port), "--rate", "120"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for("stored events", lambda: stored_events(db) > 0, demo)
        wait_for("a healthy dashboard", lambda: http_status(f"{url}/_stcore/health") == 200, demo)
        for path in ("/", *(f"/{p.lower()}" for p in PAGES[1:])):
            if (status := http_status(url + path)) != 200:
                raise CheckFailed(f"GET {path} answered {status}, not 200")
        check_pages(url)
        step(f"demo: {stored_events(db)} events stored")
        demo.send_signal(signal.SIGINT)
        t = time.monotonic()
        try:
            code = demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise CheckFailed("the demo did not stop within 90 s of Ctrl-C") from None
        if code != 0:
            raise CheckFailed(f"the demo exited with {code} after Ctrl-C")
        step(f"demo: stopped by Ctrl-C (exit 0) after {time.monotonic() - t:.0f} s")
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}\n--- demo log\n{log_path.read_text(errors='replace')[-3000:]}") from None
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="twitchwatch-wheel-") as tmp:
        work = Path(tmp)
        try:
            _sdist, wheel = build(work / "dist")
            check_wheel_contents(wheel)
            venv = work / "venv"
            tw = install(wheel, venv)
            outside = work / "elsewhere"  # the commands run here: nothing of the checkout is importable
            outside.mkdir()
            env = clean_env(outside)
            check_imports_from_venv(venv, outside, env)
            check_commands(tw, outside, env)
            check_dockerfile(tw, outside, env)
            check_demo(tw, outside, env)
        except CheckFailed as exc:
            print(f"check-wheel: FAILED: {exc}", file=sys.stderr)
            return 1
    step("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
