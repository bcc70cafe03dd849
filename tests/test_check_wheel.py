"""The artifact check's own judgement of a wheel's contents (tests/check_wheel.py), on wheels made here:
one that squats a generic top-level package, and one that lost a module, must both be refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.check_wheel import CheckFailed, check_wheel_contents, tracked_modules


def wheel(path: Path, names: set[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(names):
            zf.writestr(name, "")
        zf.writestr("twitchwatch-0.1.0.dist-info/METADATA", "Name: twitchwatch\n")
    return path


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    check_wheel_contents(wheel(tmp_path / "ok.whl", tracked_modules()))


def test_a_generic_top_level_package_is_refused(tmp_path: Path) -> None:
    names = tracked_modules() | {"collector/__init__.py"}
    with pytest.raises(CheckFailed, match=r"\['collector', 'twitchwatch'\]"):
        check_wheel_contents(wheel(tmp_path / "squat.whl", names))


def test_a_missing_module_is_refused(tmp_path: Path) -> None:
    names = tracked_modules()
    # The symlinked folders are listed under twitchwatch/, as the wheel holds them.
    assert "twitchwatch/collector/ble/__init__.py" in names
    with pytest.raises(CheckFailed, match=r"collector/ble/__init__\.py"):
        check_wheel_contents(wheel(tmp_path / "lost.whl", names - {"twitchwatch/collector/ble/__init__.py"}))
