"""Long commands show a progress bar where a person watches (a terminal) and keep logs plain elsewhere
(issue 16 item 5): each command runs as its own process, once with stderr on a pseudo-terminal and once on
a pipe. Off a terminal the progress helper writes at most one line a minute (its own test moves a clock
through minutes: tests/test_progress.py); these runs take seconds, so a pipe gets no progress at all."""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.mosquitto import MosquittoServer


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    return {**keep, "XDG_DATA_HOME": str(tmp_path / "data"), "TERM": "xterm", "COLUMNS": "100", **more}


def on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """What ``twitchwatch ARGS`` writes to stderr when stderr is a terminal (stdout stays a pipe)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twitchwatch", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    out = b""
    try:
        while True:  # read while it runs: a full terminal buffer would block the writer
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process closed its side (Linux: EIO)
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(timeout=120)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    return out.decode("utf-8", "replace")


def on_pipe(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "twitchwatch", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def emg_csv(path: Path, seconds: int = 30, rate: int = 1000) -> Path:
    """A plain CSV recording: one EMG column at ``rate`` Hz (Gaussian noise, tens of µV)."""
    rng = random.Random(1)
    rows = "\n".join(f"{rng.gauss(0.0, 2e-5):.7f}" for _ in range(seconds * rate))
    path.write_text(f"EMG calf_left\n{rows}\n", encoding="utf-8")
    return path


def assert_bar(text: str, label: str) -> None:
    assert "\r" in text  # redrawn in place
    bars = [part for part in text.split("\r") if part.lstrip("\x1b[K").startswith(label)]
    assert bars, text[-2000:]
    assert any("[" in b and "#" in b for b in bars), bars[-3:]
    assert "100%" in bars[-1], bars[-3:]


def assert_plain(text: str, label: str) -> None:
    assert "\r" not in text, text[-2000:]
    assert "\x1b[" not in text, text[-2000:]
    # Short work: nothing in the first minute, so no progress line at all.
    assert not [line for line in text.splitlines() if line.startswith(label)], text[-2000:]


def test_export_shows_a_bar_on_a_terminal_and_nothing_on_a_pipe(tmp_path: Path) -> None:
    source = emg_csv(tmp_path / "emg.csv")
    env = environment(tmp_path)
    args = ["export", str(source), "--rate", "1000", "--edf"]
    assert_bar(on_terminal([*args, str(tmp_path / "a.edf")], env, tmp_path), "export emg.csv")
    piped = on_pipe([*args, str(tmp_path / "b.edf")], env, tmp_path)
    assert_plain(piped, "export emg.csv")
    assert "b.bdf: BDF+" in piped  # the command's own summary is still there


@pytest.mark.mosquitto
def test_simulate_shows_a_bar_on_a_terminal_and_nothing_on_a_pipe(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    env = environment(tmp_path, TWITCHWATCH_MQTT_URL=mosquitto.url, TWITCHWATCH_USER="progress")
    args = ["simulate", "--muscle", "calf_left", "--signal", "acc", "--duration", "10m", "--speed", "max"]
    assert_bar(on_terminal(args, env, tmp_path), "simulate")
    piped = on_pipe(args, env, tmp_path)
    assert_plain(piped, "simulate")
    assert "published" in piped


def test_detect_writes_no_carriage_return_to_a_pipe(tmp_path: Path) -> None:
    source = emg_csv(tmp_path / "emg.csv")
    assert_plain(
        on_pipe(["detect", str(source), "--rate", "1000"], environment(tmp_path), tmp_path), "detect"
    )
