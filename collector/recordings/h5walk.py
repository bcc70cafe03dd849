"""Walk an HDF5 file's whole structure, run as a child process by ``reader.hdf5_sound``.

A damaged HDF5 file can send the HDF5 library (C) into a loop that never returns, or make it allocate what a
damaged size field claims (gigabytes, page by page: seconds of system time, or the machine's memory), and
nothing in Python interrupts C code, not even Ctrl-C. So before a reader opens an HDF5 file in its own
process, this script reads everything a reader could touch except the samples themselves (every group's
links, every attribute, every dataset's shape, type and chunk index) in a child that the parent kills at a
deadline, with its memory capped. Other errors are expected here and skipped: the reader reports them,
naming what is wrong. Exit status: 0 walked; ``OVERSIZED`` an object needs more memory than the cap (no
attribute of a sound file comes near it: the reader would have tried to allocate it too), named on stdout.

Standalone on purpose (h5py only, run by path): the child starts in a fraction of a second without importing
twitchwatch or the formats.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import h5py

MAX_OBJECTS = 100_000  # links are walked, not objects: a damaged file's hard links can form a cycle
MAX_DEPTH = 32
MEMORY_CAP = 1 << 30  # bytes of address space the walk may add to what the interpreter and h5py take
OVERSIZED = 3


class _Walk:
    def __init__(self) -> None:
        self.budget = MAX_OBJECTS
        self.oversized: str | None = None  # the first object that could not be allocated

    def attempt(self, read: Callable[[], Any], where: str) -> Any:
        """``read()``, or None where it fails: every failure is the reader's to report, but one that could
        not allocate what the file claims marks the file."""
        try:
            return read()
        except MemoryError:
            self.oversized = self.oversized or where
        except Exception as exc:  # the library's errors on damage come in every type
            if "memory allocation failed" in str(exc):
                self.oversized = self.oversized or where
        return None

    def attributes(self, obj: Any, where: str) -> None:
        for name in self.attempt(lambda: list(obj.attrs), where) or ():
            self.attempt(partial(obj.attrs.__getitem__, name), f"{where} attribute {name!r}")

    def dataset(self, ds: Any, where: str) -> None:
        shape = self.attempt(lambda: ds.shape, where)
        self.attempt(lambda: ds.dtype, where)
        if self.attempt(lambda: ds.chunks, where) is not None:
            self.attempt(lambda: ds.id.chunk_iter(lambda _info: None), where)  # the chunk index: a B-tree
        elif shape and all(shape):
            self.attempt(lambda: ds[(0,) * len(shape)], where)

    def group(self, group: Any, where: str, depth: int) -> None:
        self.attributes(group, where or "/")
        if depth >= MAX_DEPTH:
            return
        for name in self.attempt(lambda: list(group), where or "/") or ():
            self.budget -= 1
            if self.budget < 0:
                return
            path = f"{where}/{name}"
            obj = self.attempt(partial(group.get, name), path)
            if isinstance(obj, h5py.Group):
                self.group(obj, path, depth + 1)
            elif isinstance(obj, h5py.Dataset):
                self.attributes(obj, path)
                self.dataset(obj, path)


def _cap_memory() -> None:
    """Cap the address space at what is in use now plus ``MEMORY_CAP``, so that allocating a damaged size
    fails at once instead of taking the machine's memory (Linux; elsewhere the deadline alone guards)."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            in_use = int(f.read().split()[0]) * resource.getpagesize()
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = in_use + MEMORY_CAP if hard == resource.RLIM_INFINITY else min(in_use + MEMORY_CAP, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, OSError, ValueError):
        pass


def main(path: str) -> int:
    _cap_memory()
    walk = _Walk()
    f = walk.attempt(lambda: h5py.File(path, "r"), "/")
    if f is not None:  # else not HDF5, or unreadable: the reader says which
        with f:
            walk.group(f, "", 0)
    if walk.oversized:
        print(walk.oversized)
        return OVERSIZED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
