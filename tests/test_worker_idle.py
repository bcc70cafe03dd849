"""A stream is ended as idle when other streams' frames keep coming without it, or when the source says
nothing waits for the worker (``Worker.end_idle``, ``Worker.source_quiet``), not when nothing came at all:
after a pause in which no frame arrived (a broker restarting, the worker stopped), the first frames to come
back must not end the streams whose frames are still on their way."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

USER = "idle"
T0 = 1_700_000_000_000_000_000
FRAME_NS = 100_000_000
IDLE_NS = 300_000_000


def _frame(device: str, seq: int) -> tuple[str, bytes]:
    raw = np.random.default_rng(seq).normal(0, 6, (100, 1)).astype(np.int16)
    frame = Frame(0, seq, T0 + seq * FRAME_NS, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
    return f"twitchwatch/{USER}/{device}/raw/emg", encode(frame)


def _worker(tmp_path: Path) -> Worker:
    worker = Worker(MqttTarget("127.0.0.1", 1), SQLiteStore(tmp_path / "e.db"), user=USER, client_id="idle")
    worker.ingest_pause_ns = 100_000_000
    for device in ("a", "b"):
        worker.handle(f"twitchwatch/{USER}/{device}/status", DeviceStatus("online").to_json())
    return worker


def _ended(worker: Worker, device: str) -> bool:
    return worker._streams[(USER, device, "emg")].ended


def test_a_pause_in_which_nothing_arrives_ends_no_stream(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    worker.handle(*_frame("a", 0))
    worker.handle(*_frame("b", 0))
    time.sleep(0.6)  # nothing arrives: twice the idle time
    worker.handle(*_frame("a", 1))  # a's frames come back first; b's are still on their way
    worker.end_idle(IDLE_NS)
    assert not _ended(worker, "b")
    worker.handle(*_frame("b", 1))
    assert worker.stats.gaps == 0
    assert not _ended(worker, "b")


def test_a_stream_silent_while_others_go_on_is_ended(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    worker.handle(*_frame("a", 0))
    worker.handle(*_frame("b", 0))
    for seq in range(1, 8):  # a goes on for 0.7 s, b says nothing
        time.sleep(0.1)
        worker.handle(*_frame("a", seq))
    worker.end_idle(IDLE_NS)
    assert _ended(worker, "b")
    assert not _ended(worker, "a")


def test_a_quiet_source_ends_streams_that_all_fell_silent(tmp_path: Path) -> None:
    """Every stream falls silent at once (a lone wearer's device switched off without an offline status):
    no frame advances the ingest clock, but a source that is connected with nothing waiting says so
    (``source_quiet``), and the clock runs on."""
    worker = _worker(tmp_path)
    worker.handle(*_frame("a", 0))
    worker.handle(*_frame("b", 0))
    for _ in range(7):  # 0.7 s of a quiet source: more than the idle time
        time.sleep(0.1)
        worker.source_quiet()
    worker.end_idle(IDLE_NS)
    assert _ended(worker, "a")
    assert _ended(worker, "b")


def test_a_quiet_source_after_a_pause_counts_it_as_a_pause(tmp_path: Path) -> None:
    """The first ``source_quiet`` after this worker was stopped or starved may come before its deliveries
    are read: it counts the pause as one (``ingest_pause_ns``), not as the wall time it lasted."""
    worker = _worker(tmp_path)
    worker.handle(*_frame("a", 0))
    time.sleep(0.6)
    worker.source_quiet()
    worker.end_idle(IDLE_NS)
    assert not _ended(worker, "a")


def test_a_stream_not_heard_of_after_the_connection_was_lost_is_left_to_another_worker(
    tmp_path: Path,
) -> None:
    """After the source lost its connection (``detach_streams``), a stream whose frames come again is still
    this worker's; one never heard of again went, with its unacknowledged frames, to another worker: it
    is dropped, and nothing of its minutes is written here (a stale partial tally would overwrite the
    other worker's)."""
    worker = _worker(tmp_path)
    for seq in range(5):
        worker.handle(*_frame("a", seq))
        worker.handle(*_frame("b", seq))
    worker.detach_streams()
    for seq in range(5, 12):  # a's frames go on here; b's went elsewhere
        time.sleep(0.1)
        worker.handle(*_frame("a", seq))
    worker.end_idle(IDLE_NS)
    assert _ended(worker, "b")
    assert not _ended(worker, "a")
    assert worker.stats.streams_handed_over == 1
    asyncio.run(worker.drain())
    rates = worker.store.rates(EventQuery(user=USER))
    assert {r.device for r in rates} == {"a"}
    assert sum(r.monitored_s for r in rates) == pytest.approx(1.2)


async def test_a_device_gone_offline_closes_its_last_minute_and_lets_old_vetoes_go(tmp_path: Path) -> None:
    """A minute closed only once its device's own data moved past it: a device gone offline kept its last
    minute open until shutdown, and with it the floor below which the rest gate's vetoes are pruned — for
    every device of every user. The vetoes of a device still streaming (a contraction every 6 s) grew by
    ten a minute for good, and each check of them grew slower. Once a device's streams have ended, its
    minutes are written, and the vetoes are pruned as if it had never been."""
    worker = _worker(tmp_path)
    worker.handle(*_frame("b", 0))
    worker.handle(f"twitchwatch/{USER}/b/status", DeviceStatus("offline").to_json())
    worker.offline_grace_s = 0.0
    worker._end_offline()
    rng = np.random.default_rng(3)
    for seq in range(1, 10 * 60 * 10):  # 10 minutes of device a, contracting 1 s every 6 s
        raw = rng.normal(0, 6, (100, 1))
        if seq % 60 < 10:
            raw += rng.normal(0, 200, (100, 1))
        frame = Frame(
            0,
            seq,
            T0 + seq * FRAME_NS,
            1000.0,
            0.5,
            Unit.MICROVOLT,
            SampleType.INT16,
            np.round(raw / 0.5).astype(np.int16),
        )
        worker.handle(f"twitchwatch/{USER}/a/raw/emg", encode(frame))
        if seq % 5 == 0:
            await worker._flush(final=False)
            worker._prune_vetoes()
    held = sum(len(v) for v in worker._rest.gate._vetoes.values())
    assert held < 40, f"{held} vetoes held after 10 minutes: pruning is pinned"
    rows = worker.store.rates(EventQuery(user=USER))
    assert [r.device for r in rows if r.device == "b"] == ["b"], "the offline device's minute is not written"
    await worker._finish()


async def test_the_writer_ends_a_stream_silent_without_an_offline_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On MQTT only an offline status (a collector's will) ended a device's streams: one that went silent
    without it (a hand-rolled publisher, one frame under a made-up name) held its last minute open, and
    the pruning of vetoes with it, until shutdown. The writer's round ends streams silent for
    ``SILENT_END_NS`` of the ingest clock, as RabbitMQ's source does."""
    from twitchwatch.processing import worker as worker_module

    monkeypatch.setattr(worker_module, "SILENT_END_NS", IDLE_NS)
    worker = _worker(tmp_path)
    worker.flush_interval = 0.1
    writer = asyncio.create_task(worker._writer_loop())
    worker.handle(*_frame("b", 0))
    for seq in range(8):  # a goes on for 0.8 s, b says nothing
        worker.handle(*_frame("a", seq))
        await asyncio.sleep(0.1)
    worker.stop()
    await asyncio.wait_for(writer, 10)
    assert _ended(worker, "b")
    assert not _ended(worker, "a")
