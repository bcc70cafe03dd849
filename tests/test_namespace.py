"""The installed distribution has one importable name: every project module is imported as ``twitchwatch.…``.

The repository keeps its top-level ``collector/``, ``processing/`` and ``dashboard/`` folders, reached from
``twitchwatch/`` through symlinks. From a checkout they are importable by their bare names too (the working
directory is on ``sys.path``), which would load a second copy of every module (two ``Frame`` classes, two
registries) and work only in a checkout, never from the wheel: this test fails on any bare import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.source_tree import LINKED, ROOT, python_files, syntax

BARE = LINKED


def _bare_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in BARE]
    return found


def test_no_module_is_imported_by_its_bare_name() -> None:
    files = python_files()  # every package's, the tests' and the benchmarks' included
    assert len(files) > 100, "the scan found too few files to be the project"
    offenders = [hit for path in files for hit in _bare_imports(path)]
    assert offenders == [], "import these as twitchwatch.<package>…:\n" + "\n".join(offenders)


def test_the_symlinks_lead_to_the_top_level_folders() -> None:
    for name in BARE:
        link = ROOT / "twitchwatch" / name
        assert link.is_symlink(), f"twitchwatch/{name} should be a symlink to ../{name}"
        assert link.resolve() == (ROOT / name).resolve()
