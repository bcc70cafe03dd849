"""The project's module import graph, read statically (``ast``) from every file: no module may reach itself.

Every import counts — at the top, inside a function (a "lazy" import is still a dependency), under
``TYPE_CHECKING`` — because a cycle is two modules that cannot be understood, tested or moved apart, whether
Python happens to survive it at start-up or not. ``from package import name`` is an edge to
``package.name`` when that is a module, else to the package; the implicit import of a module's parent
packages is not an edge (every submodule would otherwise form a cycle with an ``__init__`` that imports it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.source_tree import ROOT, module_name, python_files, syntax

# The report's renderers load matplotlib (seconds, tens of MB): only the report command and page may.
RENDERERS = "processing.report_render"
REPORT_PAGE = ("dashboard.pages.report", "dashboard.report_view")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: frozenset[str]  # project modules
    external: frozenset[str]  # top-level names of everything else (numpy, matplotlib, …)


def _imported_names(module: str, path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name or None) for every import statement anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(syntax(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name


@cache
def graph() -> Mapping[str, Module]:
    # Every package's files, a folder linked in from elsewhere read once as its own package.
    files = {module_name(f): f for f in python_files()}

    def longest(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    def resolve(name: str) -> str | None:
        # ``twitchwatch.collector.x`` is ``collector.x`` where twitchwatch/ links to the top-level folders.
        found = longest(name)
        if found == "twitchwatch" and name.startswith("twitchwatch."):
            return longest(name.removeprefix("twitchwatch.")) or found
        return found

    modules: dict[str, Module] = {}
    for name, path in files.items():
        inside: set[str] = set()
        outside: set[str] = set()
        for target, member in _imported_names(name, path):
            full = f"{target}.{member}" if member else target
            found = full if full in files else resolve(target)
            if found is None:
                outside.add(target.partition(".")[0])
            elif found != name:
                inside.add(found)
        modules[name] = Module(name, path, frozenset(inside), frozenset(outside))
    return modules


def cycles(modules: Mapping[str, Module]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each as one cycle
    through its members so that the message shows the path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(modules[root].imports)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(modules[nxt].imports))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(_cycle_through(set(component), modules))
    return components


def _cycle_through(component: set[str], modules: Mapping[str, Module]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for target in sorted(modules[node].imports & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    nxt.append(target)
        frontier = nxt
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def reachable(modules: Mapping[str, Module], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for target in modules[todo.pop()].imports - seen:
            seen.add(target)
            todo.append(target)
    return seen


def _by_suffix(modules: Mapping[str, Module], suffix: str) -> str:
    """The module named ``suffix``, whether the packages are top level or under a namespace."""
    found = [m for m in modules if m == suffix or m.endswith("." + suffix)]
    assert len(found) == 1, f"{suffix}: expected one module, found {found}"
    return found[0]


def test_the_graph_sees_every_kind_of_import() -> None:
    """The reader itself: a function-level import and a TYPE_CHECKING import are edges, ``from pkg import
    module`` is an edge to the module."""
    modules = graph()
    # twitchwatch.cli imports the replay player inside its command functions only.
    cli = modules[_by_suffix(modules, "twitchwatch.cli")]
    assert _by_suffix(modules, "collector.recordings.playback") in cli.imports
    # the reader names the replay source for type checking only.
    reader = modules[_by_suffix(modules, "collector.recordings.reader")]
    assert _by_suffix(modules, "collector.recordings.source") in reader.imports
    # ``from package import name``: the package when the name is not a module (a class), else the module.
    flag_service = modules[_by_suffix(modules, "processing.flag_service")]
    assert _by_suffix(modules, "processing.store") in flag_service.imports
    store = modules[_by_suffix(modules, "processing.store")]
    assert _by_suffix(modules, "processing.store.spec") in store.imports
    assert "numpy" in modules[_by_suffix(modules, "processing.core")].external


def test_cycles_are_found_and_named() -> None:
    """The cycle finder on a made-up graph: a three-module loop and a self-contained pair are reported
    as paths; a diamond is not a cycle."""
    made_up = {
        name: Module(name, ROOT, frozenset(targets), frozenset())
        for name, targets in {
            "a": {"b"},
            "b": {"c"},
            "c": {"a", "d"},
            "d": set(),
            "e": {"f", "g"},
            "f": {"h"},
            "g": {"h"},
            "h": set(),
            "x": {"y"},
            "y": {"x"},
        }.items()
    }
    assert sorted(cycles(made_up)) == [["a", "b", "c", "a"], ["x", "y", "x"]]


def test_no_module_imports_itself_through_others() -> None:
    found = cycles(graph())
    assert not found, "import cycles (each module imports the next):\n" + "\n".join(
        "  " + " → ".join(c) for c in found
    )


def test_only_the_report_command_and_page_load_the_renderers() -> None:
    """The dashboard's other pages, the worker and the collector never load matplotlib."""
    modules = graph()
    renderers = _by_suffix(modules, RENDERERS)
    allowed = {_by_suffix(modules, m) for m in REPORT_PAGE} | {_by_suffix(modules, "twitchwatch.person_cli")}
    importers = {m.name for m in modules.values() if renderers in m.imports}
    assert importers - allowed - {_by_suffix(modules, "tests.test_report")} == set()
    for start in (
        "dashboard.app",
        "processing.worker",
        "collector.record",
        "processing.report",
    ):
        module = _by_suffix(modules, start)
        loaded = reachable(modules, module)
        assert renderers not in loaded, f"{module} reaches {renderers}"
        assert not any("matplotlib" in modules[m].external for m in loaded), f"{module} reaches matplotlib"


def test_importing_the_app_worker_and_cli_leaves_matplotlib_unloaded() -> None:
    """The same at run time, third-party imports included: a fresh interpreter imports the dashboard app, the
    worker, the report's data and the CLI, and matplotlib is not among its modules."""
    code = (
        "import sys\n"
        "import twitchwatch.dashboard.app, twitchwatch.processing.worker, twitchwatch.processing.report\n"
        "import twitchwatch.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
