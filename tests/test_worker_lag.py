"""A worker that falls behind says so: live frames handled long after they ended are counted and logged."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import (
    GATHER_MAX_S,
    GATHER_S,
    LAG_WARN_NS,
    Worker,
    gather_backlog,
    gather_s,
)


def _frame(seq: int, end_ns: int) -> bytes:
    raw = np.zeros((50, 1), dtype=np.int16)
    return encode(Frame(0, seq, end_ns - 50_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw))


def test_late_live_frames_are_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with SQLiteStore(tmp_path / "events.db") as store:
        worker = Worker(parse_mqtt_url("mqtt://127.0.0.1:1"), store, user="+")
        now = time.time_ns()
        topic = "twitchwatch/u/d/raw/emg"
        worker.handle(topic, _frame(0, now - 100_000_000))  # on time
        assert worker.stats.behind == 0
        assert 0 <= worker.stats.lag_ms < LAG_WARN_NS // 1_000_000
        with caplog.at_level(logging.WARNING):
            worker.handle(topic, _frame(1, now - 2 * LAG_WARN_NS))
        assert worker.stats.behind == 1
        assert worker.stats.lag_ms >= 2 * LAG_WARN_NS // 1_000_000
        assert "falling behind" in caplog.text
        # Old data (a backfill, a replay of last month) is not live: no lag to speak of.
        worker.handle("twitchwatch/u/old/raw/emg", _frame(0, now - 3600 * 10**9))
        assert worker.stats.behind == 1


def test_a_worker_behind_gathers_longer_batches(tmp_path: Path) -> None:
    """How long the reader gathers a batch follows how far behind the live frames the worker is: the
    usual 20 ms while it keeps up, a quarter of its lag when behind (each stream's detector then gets
    several frames a call, each cheaper: how it catches up), never more than half a second; a lag seen
    more than a second ago (since then only old frames, or none) no longer counts."""
    assert gather_s(0.0) == GATHER_S
    assert gather_s(0.05) == GATHER_S
    assert gather_s(1.0) == pytest.approx(0.25)
    assert gather_s(30.0) == GATHER_MAX_S
    with SQLiteStore(tmp_path / "events.db") as store:
        worker = Worker(parse_mqtt_url("mqtt://127.0.0.1:1"), store, user="+")
        assert worker.behind_s() == 0.0
        now = time.time_ns()
        worker.handle("twitchwatch/u/d/raw/emg", _frame(0, now - 1_200_000_000))
        assert 1.2 <= worker.behind_s() < 5.0
        assert gather_s(worker.behind_s()) >= 0.3
        worker._lag_seen -= 1.5  # a second and a half without a live frame
        assert worker.behind_s() == 0.0


async def _gathered(produce_every_s: float, stop_after: int | None, limit: int, seconds: float) -> int:
    """Run ``gather_backlog`` while a producer adds an item every ``produce_every_s`` (until it has added
    ``stop_after``, or for ever); the items there when it returned."""
    items: list[int] = []

    async def producer() -> None:
        while stop_after is None or len(items) < stop_after:
            items.append(len(items))
            await asyncio.sleep(produce_every_s)

    task = asyncio.create_task(producer())
    try:
        # A bound for a wait that ends on its own; the asserts after it say what happened.
        await asyncio.wait_for(gather_backlog(lambda: len(items), limit, seconds), 30.0)
    finally:
        task.cancel()
    return len(items)


def test_gathering_ends_when_messages_stop_or_the_batch_is_full() -> None:
    """A batch is not held for its whole window once nothing more comes (a broker waiting for
    acknowledgements before it sends more, a trickle of frames): ten items then silence, with a minute's
    window, returns with the ten; items that keep coming end it at the limit."""
    assert asyncio.run(_gathered(0.0, 10, limit=4096, seconds=60.0)) == 10
    assert asyncio.run(_gathered(0.0, None, limit=50, seconds=60.0)) >= 50
