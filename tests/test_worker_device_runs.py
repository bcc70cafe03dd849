"""The worker across device runs: restarts are not duplicates, muscles outlive the offline status, and a
restart mid-minute adds to the stored minute even when the store is slow to say what it holds."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.harness import ServiceMissing, unavailable
from tests.harness.influx import InfluxServer
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.influx import InfluxStore
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

T0 = 1_700_000_000_000_000_000
RAW = "twitchwatch/u/dev/raw/emg"
STATUS = "twitchwatch/u/dev/status"


def _worker(tmp_path: Path) -> tuple[Worker, SQLiteStore]:
    store = SQLiteStore(tmp_path / "w.db")
    return Worker(MqttTarget("127.0.0.1", 1), store, user="u"), store  # never connects: fed by handle()


def _status(session: str, state: str = "online", streams: bool = True) -> bytes:
    info = {"emg": StreamInfo(0, "emg", 1000.0, ("calf_left",))} if streams else {}
    return DeviceStatus(state, "sim", "live", session, None, info).to_json()  # type: ignore[arg-type]


def _frames(x: np.ndarray, t0_ns: int, first_seq: int = 0) -> list[bytes]:
    out = []
    for i in range(x.shape[0] // 100):
        raw = np.round(x[i * 100 : (i + 1) * 100] / 0.5).astype(np.int16)
        frame = Frame(
            0, first_seq + i, t0_ns + i * 100_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw
        )
        out.append(encode(frame))
    return out


def _noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3.0, (int(seconds * 1000), 1))


def test_a_new_run_restarting_its_sequence_is_not_taken_for_duplicates(tmp_path: Path) -> None:
    worker, store = _worker(tmp_path)
    worker.handle(STATUS, _status("run-a"))
    first = _frames(_noise(3, 1), T0)
    for payload in first:
        worker.handle(RAW, payload)
    worker.handle(RAW, first[-1])  # a QoS-1 redelivery: a real duplicate
    worker.handle(STATUS, _status("run-b"))
    for payload in _frames(_noise(3, 2), T0 + 60 * 10**9):  # sequence 0 again, a minute later
        worker.handle(RAW, payload)
    # Without a new status too: sequence back to 0 while time goes on is a restart, not a repeat.
    for payload in _frames(_noise(3, 3), T0 + 120 * 10**9):
        worker.handle(RAW, payload)
    store.close()
    assert worker.stats.frames == 90
    assert worker.stats.duplicates == 1
    assert worker.stats.gaps == 0


async def test_events_released_after_the_offline_status_keep_their_muscle(tmp_path: Path) -> None:
    worker, store = _worker(tmp_path)
    x = _noise(3, 4)
    x[2950:2960, 0] += 150 * np.hanning(10)  # a twitch in the last 50 ms: released only at the end
    worker.handle(STATUS, _status("run-a"))
    for payload in _frames(x, T0):
        worker.handle(RAW, payload)
    worker.handle(STATUS, _status("run-a", "offline", streams=False))
    await worker._finish()  # what a clean stop does: release and write everything
    events = store.events(EventQuery())
    store.close()
    assert [e.muscle for e in events] == ["calf_left"]


async def test_unitless_emg_is_routed_by_the_status_signal(tmp_path: Path) -> None:
    """The Myo sends raw EMG in device counts (unit 1): the status's ``signal`` says it is EMG."""
    worker, store = _worker(tmp_path)
    rng = np.random.default_rng(5)
    x = rng.normal(0, 2.0, (200 * 6, 8))  # 6 s at 200 Hz, 8 channels
    for start in (600, 900):  # two potentials on channel 3, 1.5 s apart
        x[start : start + 3, 3] += [40.0, -60.0, 25.0]
    raw = np.clip(np.round(x), -128, 127).astype(np.int8)
    frames = [
        encode(
            Frame(
                0,
                i,
                T0 + i * 250_000_000,
                200.0,
                1.0,
                Unit.UNITLESS,
                SampleType.INT8,
                raw[i * 50 : (i + 1) * 50],
            )
        )
        for i in range(raw.shape[0] // 50)
    ]
    for payload in frames:  # no status yet: nothing says what the counts are
        worker.handle("twitchwatch/u/myo/raw/emg", payload)
    assert worker.stats.frames == 0
    muscles = tuple(f"forearm_{i}" for i in range(8))
    status = DeviceStatus("online", "myo", "live", "s", 90, {"emg": StreamInfo(0, "emg", 200.0, muscles)})
    worker.handle("twitchwatch/u/myo/status", status.to_json())
    for payload in frames:
        worker.handle("twitchwatch/u/myo/raw/emg", payload)
    await worker._finish()
    events = store.events(EventQuery())
    store.close()
    assert worker.stats.frames == len(frames)
    assert [(e.muscle, e.kind.value, e.unit) for e in events] == [("forearm_3", "fasciculation", "1")] * 2
    assert [round((e.start_ns - T0) / 1e9, 1) for e in events] == [3.0, 4.5]


async def _run_worker(tmp_path: Path, frames: list[bytes]) -> list[tuple[int, int, float]]:
    """A fresh worker (a restart) over ``frames``, stopped cleanly; the stored minute rows after it."""
    worker, store = _worker(tmp_path)
    worker.handle(STATUS, _status("run-a"))
    for payload in frames:
        worker.handle(RAW, payload)
    await worker._finish()
    rows = [(r.minute_ns, r.twitches, r.monitored_s) for r in store.rates(EventQuery())]
    store.close()
    return rows


async def test_a_worker_restarted_mid_minute_adds_to_the_stored_minute(tmp_path: Path) -> None:
    minute = T0 - T0 % 60_000_000_000
    x = _noise(40, 6)
    for second in (5, 15, 25, 35):  # one twitch every 10 s, two before the restart, two after
        x[second * 1000 : second * 1000 + 10, 0] += 150 * np.hanning(10)
    frames = _frames(x, minute)
    before, after = frames[:200], frames[200:]  # the first worker stops 20 s into the minute
    assert await _run_worker(tmp_path, before) == [(minute, 2, 20.0)]
    assert await _run_worker(tmp_path, after) == [(minute, 4, 40.0)]
    # The same data again (a replay): the stored row is replaced, not added to.
    assert await _run_worker(tmp_path, before + after) == [(minute, 4, 40.0)]


async def test_a_frozen_store_holds_up_no_frame_and_loses_no_count(tmp_path: Path) -> None:
    """A restarted worker reads the stored rate of each key's first minute off the event loop: with the
    InfluxDB process frozen (SIGSTOP: a hung server, the worst case — a refused connection fails at once)
    every frame is processed while the read waits, the minute is held back meanwhile, and once InfluxDB
    answers the predecessor's count is added to, not overwritten."""
    try:
        server = InfluxServer.start(tmp_path / "influxdb")  # an own instance: this test freezes it
    except ServiceMissing as exc:
        unavailable(str(exc))
    try:
        minute = T0 - T0 % 60_000_000_000
        x = _noise(40, 6)
        for second in (5, 15, 25, 35):
            x[second * 1000 : second * 1000 + 10, 0] += 150 * np.hanning(10)
        frames = _frames(x, minute)
        before, after = frames[:200], frames[200:]
        with InfluxStore(server.base_url, server.database, server.auth) as store:
            earlier = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
            earlier.handle(STATUS, _status("run-a"))
            for payload in before:
                earlier.handle(RAW, payload)
            await earlier._finish()
            restarted = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                restarted.handle(STATUS, _status("run-a"))
                for i, payload in enumerate(after):
                    restarted.handle(RAW, payload)
                    if i == 0:
                        await asyncio.sleep(0.05)  # the read starts and hangs on the frozen server
                assert restarted.stats.frames == len(after)
                assert restarted._rates.unresolved == 1  # still waiting for the store
                assert restarted._rates.take(None) == []  # nothing written over the stored minute meanwhile
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            await restarted._finish()
            rows = [(r.minute_ns, r.twitches, r.monitored_s) for r in store.rates(EventQuery())]
        assert rows == [(minute, 4, 40.0)]
    finally:
        server.stop()


async def test_a_worker_stopped_without_waiting_says_what_it_had_not_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A second Ctrl-C cancels the worker before its last write: what it held is said as not confirmed
    stored, and without a quarantine each row is logged in full (with one, it is kept there:
    tests/test_hostile_input.py)."""
    store = SQLiteStore(tmp_path / "w.db")
    worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u", flush_interval=3600, flush_on_release=False)
    x = _noise(10, 7)
    for second in (3, 6):
        x[second * 1000 : second * 1000 + 10, 0] += 150 * np.hanning(10)
    worker.handle(STATUS, _status("run-a"))
    for payload in _frames(x, T0):
        worker.handle(RAW, payload)
    assert worker._pending  # detected, not yet written (the writer waits an hour)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)  # running: its MQTT loop retries an unreachable broker
    with caplog.at_level(logging.ERROR, logger="twitchwatch.processing.worker"):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    store.close()
    messages = [r.getMessage() for r in caplog.records]
    [said] = [m for m in messages if m.startswith("stopped without waiting")]
    assert f": {len(worker._pending)} events and 1 minute rates not confirmed stored" in said
    rows = [m for m in messages if m.startswith("not stored and not quarantined")]
    assert len(rows) == len(worker._pending) + 1


async def test_a_rejected_event_keeps_the_detectors_reason(tmp_path: Path) -> None:
    """The detector says why an event is not a twitch; the worker passes it on in ``TwitchEvent.reason`` and
    the store keeps it."""
    store = SQLiteStore(tmp_path / "r.db")
    worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
    x = _noise(6, 5)
    x[3000:5000, 0] += np.random.default_rng(6).normal(0, 40.0, 2000)  # a 2-s contraction
    worker.handle(STATUS, _status("run-a"))
    for payload in _frames(x, T0):
        worker.handle(RAW, payload)
    await worker._finish()
    stored = store.events(EventQuery())
    store.close()
    assert [(e.kind, e.reason) for e in stored] == [(EventKind.SUSTAINED, "activity 2.0 s")]
