"""``twitchwatch devices decode``: every test vector's check (shared and the repository's) runs through the
command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

import tests.test_devices as vectors
from twitchwatch.cli import main
from twitchwatch.collector.devices import NotificationError, decode_hex


def test_every_vector_passes_through_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []

    def via_cli(
        profile: str, hex: str, stream: str | None = None, params: Mapping[str, str] | None = None
    ) -> Any:
        argv = ["devices", "decode", "--profile", profile, *(["--stream", stream] if stream else [])]
        argv += [arg for k, v in (params or {}).items() for arg in ("--param", f"{k}={v}")]
        capsys.readouterr()
        code = main([*argv, hex])
        out, err = capsys.readouterr()
        calls.append(argv)
        if code == 2:
            raise NotificationError(err.strip(), 0)  # the vector checks expect the decoder's own error here
        assert code == 0, err
        return json.loads(out)

    monkeypatch.setattr(vectors, "decode_hex", via_cli)
    cases = [c for c in vectors._vector_params() if c.values[2] is not None]
    for case in cases:
        profile, file, vector = case.values
        vectors.test_vector(profile, file, vector)
    # Control-point requests and settings TLVs are built, not decoded; notifications all go through the CLI.
    assert len(cases) == 146
    assert len(calls) == 99
    gyro = [c for c in calls if "--stream" in c and c[c.index("--stream") + 1] == "gyro"]
    assert {c[c.index("--profile") + 1] for c in gyro} == {"polar-verity", "metamotion", "myo"}


def test_the_console_command_prints_json_and_fails_with_exit_2() -> None:
    hex_ = "0102030405060708f1f2f3f4f5f6f7f8"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "twitchwatch",
            "devices",
            "decode",
            "--profile",
            "myo",
            "--stream",
            "emg",
            hex_,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == decode_hex("myo", hex_, "emg")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "twitchwatch",
            "devices",
            "decode",
            "--profile",
            "myo",
            "--stream",
            "emg",
            "0102",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "error:" in bad.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "twitchwatch", "devices", "decode", "--profile", "nope", "00"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2
    assert "polar-h10" in unknown.stderr  # names the profiles that exist
