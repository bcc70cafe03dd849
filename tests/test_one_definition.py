"""Concepts written down once: the signal kinds (``collector/signals.py``) and the time units
(``processing/timeunits.py``). A second copy drifts — the EDF dimension of microvolts was ``uV`` in one module
and ``µV`` in another, and ``HOUR_NS`` was defined in four — so a test finds any new one."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.source_tree import ROOT, python_files, syntax
from twitchwatch.collector.frames import Unit
from twitchwatch.collector.signals import DIMENSIONS, KINDS, STREAM_KINDS, kind_of_unit
from twitchwatch.processing.timeunits import DAY_NS, HOUR_NS, MINUTE_NS, NS_PER_S

PACKAGES = ("collector", "processing", "dashboard", "twitchwatch", "bench")
SIGNALS_HOME = Path("collector/signals.py")
TIME_HOME = Path("processing/timeunits.py")
TIME_NAMES = {"NS", "NS_PER_S", "SECOND_NS", "MINUTE_NS", "HOUR_NS", "DAY_NS"}


def _trees() -> Iterator[tuple[Path, ast.Module]]:
    for path in python_files(*PACKAGES):
        yield path.relative_to(ROOT), syntax(path)


def _literal_strings(node: ast.Subscript) -> set[str]:
    return {c.value for c in ast.walk(node.slice) if isinstance(c, ast.Constant) and isinstance(c.value, str)}


def test_signal_kinds_are_spelt_out_in_one_module() -> None:
    """No ``Literal["emg", …]`` outside collector/signals.py: other modules name its types."""
    copies = [
        f"{path}:{node.lineno}"
        for path, tree in _trees()
        if path != SIGNALS_HOME
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and ast.unparse(node.value).endswith("Literal")
        and _literal_strings(node) & set(STREAM_KINDS)
    ]
    assert copies == []


def test_time_units_are_defined_in_one_module() -> None:
    copies = [
        f"{path}:{node.lineno}"
        for path, tree in _trees()
        if path != TIME_HOME
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id in TIME_NAMES
    ]
    assert copies == []


def test_the_signal_table_agrees_with_itself() -> None:
    """Each kind's unit maps back to it; its EDF dimension is ASCII (EDF headers are) and reads back as that
    kind with no conversion."""
    for kind, info in KINDS.items():
        if info.unit is not Unit.UNITLESS:
            assert kind_of_unit(info.unit) == kind
            assert info.dimension.isascii()
            assert DIMENSIONS[info.dimension] == (kind, 1.0)
    assert KINDS["emg"].dimension == "uV"
    assert set(KINDS) == set(STREAM_KINDS)


def test_the_time_units_nest() -> None:
    assert (NS_PER_S, MINUTE_NS // NS_PER_S, HOUR_NS // MINUTE_NS, DAY_NS // HOUR_NS) == (10**9, 60, 60, 24)
