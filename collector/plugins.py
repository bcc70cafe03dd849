"""Finding plug-in modules by a scan: one module per device profile (``collector/devices``) or recording
format (``collector/recordings/formats``), nobody keeping a list. Loud by design: a module that fails to
import is an error the caller names, never skipped."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from types import ModuleType


def public_modules(package: str, failed: Callable[[str, Exception], Exception]) -> Iterator[ModuleType]:
    """Every public module of ``package`` (names not starting with ``_``), imported, in name order. An
    import failure raises ``failed(module name, exception)``."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise failed(name, exc) from exc
        yield module


def own_classes(module: ModuleType) -> list[type]:
    """The classes ``module`` defines itself (not those it imports)."""
    return [
        obj for obj in vars(module).values() if isinstance(obj, type) and obj.__module__ == module.__name__
    ]
