"""One error base for the project, and what ``twitchwatch`` makes of each kind of failure."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

from tests.source_tree import module_name, python_files, syntax
from twitchwatch.cli import main, run_command
from twitchwatch.errors import TwitchwatchError, UserError
from twitchwatch.processing.store.sqlite import SQLiteStore

PACKAGES = ("collector", "processing", "dashboard", "twitchwatch", "bench")
# Exceptions used as control flow, never shown to anyone: not errors.
EXCEPTION_BASES = ("Error", "Exception", "Exposed", "Disconnected", "Profile")
NOT_ERRORS = {"twitchwatch.collector.ble.connection._Stopping", "bench.baselines.NotApplicable"}


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every class in the project whose name or bases say it is an exception."""
    found: list[tuple[str, str]] = []
    for path in python_files(*PACKAGES):  # the linked folders once, under their own names
        module = module_name(path, installed=True)  # imported under the one installed name
        for node in ast.walk(syntax(path)):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(b) for b in node.bases]
            if any(b.endswith(("Error", "Exception", "Exposed", "Disconnected", "Profile")) for b in bases):
                found.append((module, node.name))
    return found


def test_every_project_error_derives_from_the_one_base() -> None:
    classes = _exception_classes()
    assert len(classes) >= 29  # the issue counted 29 error classes; the scan must see at least those
    strays = []
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, BaseException) or f"{module}.{name}" in NOT_ERRORS:
            continue
        if not issubclass(cls, TwitchwatchError):
            strays.append(f"{module}.{name}")
    assert strays == []


def test_a_user_error_exits_2_with_the_message_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "notes.edf"
    garbage.write_bytes(b"this is not an EDF header at all")
    assert main(["detect", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "notes.edf" in err
    assert "Traceback" not in err


def test_a_failure_twitchwatch_explains_exits_1_with_the_message_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store that cannot be opened (a directory where the file should be) is not the user's input being
    wrong, and not a bug either."""

    def open_a_directory() -> int:
        SQLiteStore(tmp_path)
        return 0

    assert run_command(open_a_directory) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open SQLite store")
    assert str(tmp_path) in err
    assert "Traceback" not in err


def test_a_bug_exits_1_with_the_traceback_even_as_a_value_error(capsys: pytest.CaptureFixture[str]) -> None:
    """numpy's ValueError is a bug of ours (a wrong shape), not a usage error: it must not exit 2 as if the
    user had typed something wrong, and its traceback is shown so that it can be reported."""

    def wrong_shape() -> int:
        return int(np.reshape(np.arange(3), (2, 2)).sum())

    assert run_command(wrong_shape) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: cannot reshape" in err
    assert "wrong_shape" in err  # the frame that failed
    assert not err.startswith("error: ")


def test_user_errors_stay_value_errors_where_they_were() -> None:
    """Code that catches ``ValueError`` around the project's own parsers still catches them."""
    from twitchwatch.collector.frames import FrameError
    from twitchwatch.collector.recordings.model import RecordingError
    from twitchwatch.config import ConfigError

    for cls in (FrameError, RecordingError, ConfigError):
        assert issubclass(cls, UserError)
        assert issubclass(cls, ValueError)


def test_a_twitchwatch_error_inside_a_task_group_is_said_as_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An asyncio TaskGroup wraps what its task raised in an ExceptionGroup: the worker's "queue
    twitchwatch.p00 does not exist: run 'twitchwatch broker setup' first" came out as a bug with a traceback.
    One twitchwatch error in a group (nested too) is that error; a group holding a bug stays a bug."""
    from twitchwatch.processing.amqp import AmqpError

    def before_setup() -> int:
        missing = AmqpError("queue twitchwatch.p00 does not exist: run 'twitchwatch broker setup' first")
        raise ExceptionGroup("worker", [ExceptionGroup("tasks", [missing])])

    assert run_command(before_setup) == 1
    err = capsys.readouterr().err
    assert err == "error: queue twitchwatch.p00 does not exist: run 'twitchwatch broker setup' first\n"

    def two_failures() -> int:
        raise ExceptionGroup("tasks", [UserError("bad"), ValueError("a bug")])

    assert run_command(two_failures) == 1
    assert "this is a bug in twitchwatch" in capsys.readouterr().err
