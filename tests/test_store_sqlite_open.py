"""Several processes opening one SQLite store at the same moment: ``make demo``'s worker and dashboard, two
workers sharing a file. SQLite answers some of the steps of opening (switching to WAL, two connections
upgrading their read locks) with "database is locked" at once instead of waiting; such a step is tried
again, and an old store is migrated by exactly one of them. Real processes (fork), a real file."""

from __future__ import annotations

import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from tests.test_store_migration import _old_sqlite
from twitchwatch.processing.store import EventQuery, StoreError
from twitchwatch.processing.store.sqlite import SQLiteStore

OPENERS = 6
TRIALS = 20  # before the retry, 4 trials in 20 had an opener fail


def _open(path: Path, barrier: Barrier, results: multiprocessing.Queue[str]) -> None:
    barrier.wait()
    try:
        with SQLiteStore(path) as store:
            store.rates(EventQuery())
        results.put("ok")
    except StoreError as exc:
        results.put(str(exc))


def _open_at_once(path: Path) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(OPENERS)
    results: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(path, barrier, results)) for _ in range(OPENERS)]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    return out


@pytest.mark.parametrize("old", [False, True], ids=["new file", "old store to migrate"])
def test_processes_opening_one_store_at_once_all_get_it(tmp_path: Path, old: bool) -> None:
    for trial in range(TRIALS):
        path = tmp_path / f"events-{trial}.db"
        if old:
            _old_sqlite(path)
        results = _open_at_once(path)
        assert results == ["ok"] * OPENERS, (trial, [r for r in results if r != "ok"])
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.close()
