"""The project's own Python source, walked in one place for the tests that read it rather than run it: the
import graph (``test_import_graph``), one definition per concept (``test_one_definition``), no bare imports
(``test_namespace``) and the one error base (``test_errors``)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Top-level folders that ``twitchwatch/`` links to: installed, and imported, as ``twitchwatch.<folder>``.
LINKED = ("collector", "processing", "dashboard")


def packages() -> list[Path]:
    """Every top-level package of the repository (a folder with an ``__init__.py``), sorted."""
    return sorted(p.parent for p in ROOT.glob("*/__init__.py") if not p.parent.name.startswith("."))


def python_files(*names: str) -> list[Path]:
    """The ``.py`` files of the named top-level packages (default: every package), package by package, each
    sorted. Every file once: a folder linked in from elsewhere (``twitchwatch/collector``) is its own
    package's, read there and not again through the link."""
    roots = [ROOT / name for name in names] if names else packages()
    return [path for root in roots for path in sorted(root.rglob("*.py")) if not _through_link(path)]


def _through_link(path: Path) -> bool:
    folders = path.relative_to(ROOT).parents
    return any((ROOT / folder).is_symlink() for folder in folders if folder != Path("."))


def module_name(path: Path, *, installed: bool = False) -> str:
    """A source file's dotted name as the repository lays it out (``collector.frames``), or with ``installed``
    as it is imported (``twitchwatch.collector.frames``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if installed and parts[0] in LINKED:
        parts.insert(0, "twitchwatch")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def syntax(path: Path) -> ast.Module:
    """A source file's syntax tree, parsed once however many tests read it (none changes it)."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
