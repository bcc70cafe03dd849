"""`twitchwatch demo` as a user starts it: its simulated twitches go to its own store, never to the one a user
records themselves in (they would show in that history, its flags and the doctor-visit report)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import free_port
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore


def _events(db: Path) -> int:
    if not db.exists():
        return 0
    with SQLiteStore(db) as store:
        return len(store.events(EventQuery()))


def test_the_demo_keeps_its_simulated_twitches_out_of_your_store(tmp_path: Path) -> None:
    own = tmp_path / "mine.db"
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), TWITCHWATCH_STORE_URL=f"sqlite:///{own}")
    demo_db = tmp_path / "data" / "twitchwatch" / "demo.db"
    twitchwatch = Path(sys.executable).with_name("twitchwatch")
    proc = subprocess.Popen(
        [str(twitchwatch), "demo", "--port", str(free_port()), "--rate", "120"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120  # a wait for the first twitches, not a speed assertion
        while _events(demo_db) == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == 0, text
    assert _events(demo_db) > 0, text
    assert f"store:      sqlite:///{demo_db}" in text
    assert not own.exists()  # TWITCHWATCH_STORE_URL is not the demo's


def test_a_bad_demo_store_fails_before_anything_starts(tmp_path: Path) -> None:
    twitchwatch = Path(sys.executable).with_name("twitchwatch")
    done = subprocess.run(
        [str(twitchwatch), "demo", "--store", "postgres://nowhere/db"],
        env=dict(os.environ, XDG_DATA_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "postgres" in done.stderr
