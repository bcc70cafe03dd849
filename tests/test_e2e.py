"""Simulator → broker → worker → store, end to end, against real services.

Tolerance: the simulator injects twitches 12–40× the noise RMS, at least 0.6 s apart, so the detector
should find every one — except in the first second of each stream, which it spends learning the noise
floor (at most one twitch at these rates). So per muscle, stored twitches may be at most 2 fewer than
injected and never more; beyond counts, ≥ 97 % of injected twitches must be matched in time (±50 ms).
Twitch-shaped events the rest gate marked during movement count as found (not as counted twitches).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import numpy as np
import pytest

from tests.harness import free_port
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.demo import embedded_broker
from twitchwatch.processing.events import TWITCH_KINDS, EventKind
from twitchwatch.processing.store import EventQuery, EventStore, open_store
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

if TYPE_CHECKING:
    from tests.harness.influx import InfluxServer

MUSCLES = ("calf_left", "calf_right")
MAX_MISSED = 2
MATCH_S = 0.05


def _plan(signal: str = "emg", seconds: float = 240, rate: float = 30, seed: int = 1) -> SimulationPlan:
    start = dt.datetime.now().astimezone().replace(microsecond=0) - dt.timedelta(hours=2)
    return SimulationPlan(MUSCLES, signal, start, seconds, None, rate, seed, "tester", chunk=100)  # type: ignore[arg-type]


def _truth(text: str) -> dict[str, list[dict[str, float]]]:
    rows = [json.loads(line) for line in text.splitlines()]
    return {m: [r for r in rows if r["muscle"] == m] for m in MUSCLES}


def check_against_truth(
    store: EventStore, truth: dict[str, list[dict[str, float]]], user: str = "tester"
) -> None:
    shaped_kinds = (*TWITCH_KINDS, EventKind.DURING_MOVEMENT)
    for muscle in MUSCLES:
        events = store.events(EventQuery(user=user, muscle=muscle, kinds=shaped_kinds))
        expected = truth[muscle]
        assert len(expected) > 60
        assert len(expected) - MAX_MISSED <= len(events) <= len(expected), (
            muscle,
            len(events),
            len(expected),
        )
        starts = np.array([e.start_ns / 1e9 for e in events])
        matched = sum(bool(np.any(np.abs(starts - t["start"]) < MATCH_S)) for t in expected)
        assert matched >= 0.97 * len(expected)
        # Every stored twitch carries its dominant frequency, inside the detection band (EMG 20-450 Hz,
        # accelerometer 5-100 Hz).
        hz = [e.dominant_hz for e in events]
        assert all(f is not None and 5.0 <= f <= 450.0 for f in hz), hz[:10]
        # The simulator injects twitches at rest only. The detector may still call a twitch activity (one
        # in a train); the rest gate then marks a neighbour within its guards as during movement — found
        # and stored with the reason, not counted.
        moved = [e for e in events if e.kind is EventKind.DURING_MOVEMENT]
        assert len(moved) <= MAX_MISSED
        assert all(e.reason.startswith(("fasciculation: ", "myoclonic_jerk: ")) for e in moved), moved
        rates = store.rates(EventQuery(user=user, muscle=muscle))
        monitored = sum(r.monitored_s for r in rates)
        assert monitored == pytest.approx(240.0, abs=0.5)
        assert sum(r.twitches for r in rates) == len(events) - len(moved)
        # At rest: all but the detector's first second (blind while it learns the noise floor) and what the
        # activity it reported vetoed (its span and the gate's guards, 0.5 s before and 2 s after).
        rest = sum(r.rest_s or 0.0 for r in rates)
        vetoes = store.events(
            EventQuery(user=user, muscle=muscle, kinds=(EventKind.SUSTAINED, EventKind.ARTIFACT))
        )
        at_most = sum((e.end_ns - e.start_ns) / 1e9 + 2.5 for e in vetoes)
        assert monitored - 1.0 - at_most - 1e-3 <= rest <= monitored - 1.0 + 1e-3, (rest, monitored, at_most)


async def until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll the worker's counters; past ``seconds`` the asserts that follow say what is amiss."""
    deadline = time.monotonic() + seconds
    while True:
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def _pipeline(target: MqttTarget, store: EventStore, plan: SimulationPlan, client_id: str) -> str:
    worker = Worker(target, store, user=plan.user, client_id=client_id, flush_interval=0.2)
    published: list[dict[str, object]] = []
    async with target.client() as listener:
        await listener.subscribe(f"twitchwatch/{plan.user}/+/events", qos=1)
        collect = asyncio.create_task(_collect_events(listener, published))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 15)
        truth = io.StringIO()
        stats = await run_simulation(plan, target, truth)
        await until(lambda: worker.stats.frames >= stats.frames, 120)
        worker.stop()
        await asyncio.wait_for(task, 30)
        await until(lambda: len(published) >= worker.stats.events_stored, 10)
        collect.cancel()
    assert worker.stats.frames == stats.frames
    assert (worker.stats.bad_frames, worker.stats.gaps, worker.stats.store_errors) == (0, 0, 0)
    stored = store.events(EventQuery(user=plan.user))
    assert sorted((e["muscle"], e["start"]) for e in published) == sorted(
        (e.muscle, e.start_ns / 1e9) for e in stored
    )
    return truth.getvalue()


async def _collect_events(client: aiomqtt.Client, into: list[dict[str, object]]) -> None:
    async for message in client.messages:
        assert isinstance(message.payload, bytes | bytearray)
        into.extend(json.loads(message.payload))


@pytest.mark.mosquitto
@pytest.mark.influx
async def test_simulator_mosquitto_worker_influxdb(
    mosquitto: MosquittoServer, influxdb: InfluxServer
) -> None:
    store = open_store(influxdb.store_url, influxdb.auth)
    try:
        truth = await _pipeline(parse_mqtt_url(mosquitto.url), store, _plan(), "e2e-influx")
        check_against_truth(store, _truth(truth))
    finally:
        store.close()


async def test_simulator_embedded_broker_worker_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e2e.db")
    try:
        async with embedded_broker(free_port()) as target:
            truth = await _pipeline(target, store, _plan(seed=2), "e2e-sqlite")
        check_against_truth(store, _truth(truth))
    finally:
        store.close()


@pytest.mark.mosquitto
async def test_worker_survives_bad_frames_and_marks_gaps(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    target = parse_mqtt_url(mosquitto.url)
    store = SQLiteStore(tmp_path / "bad.db")
    worker = Worker(target, store, user="tester", client_id="e2e-bad", flush_interval=0.1)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.connected.wait(), 15)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3.0, (6000, 1))
    x[4500:4510, 0] += 150 * np.hanning(10)  # a twitch after the junk and the gap: processing went on
    topic = "twitchwatch/tester/dev1/raw/emg"
    t0 = 1_700_000_000_000_000_000
    async with target.client() as client:
        await client.publish(topic, b"\x01\x02garbage", qos=1)
        await client.publish("twitchwatch/tester/dev1/status", b"{not json", qos=1)
        for seq in [*range(0, 29), *range(31, 60)]:  # frames 29 and 30 are lost
            raw = np.round(x[seq * 100 : (seq + 1) * 100] / 0.5).astype(np.int16)
            frame = Frame(0, seq, t0 + seq * 100_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
            await client.publish(topic, encode(frame), qos=1)
    await until(lambda: worker.stats.frames + worker.stats.bad_frames >= 59, 30)
    worker.stop()
    await asyncio.wait_for(task, 30)
    store_events = store.events(EventQuery())
    store.close()
    assert (worker.stats.bad_frames, worker.stats.bad_status) == (1, 1)
    assert (worker.stats.gaps, worker.stats.missing_frames) == (1, 2)
    assert worker.stats.frames == 58
    assert [round(e.start_ns / 1e6 - t0 / 1e6, -1) for e in store_events] == [4500.0]
    assert (
        store_events[0].muscle == "dev1.emg.ch0"
    )  # no config and no status: a name that says where it came from


# ---- the real commands, as subprocesses -----------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    return env | extra


@pytest.fixture
def worker_process(
    mosquitto: MosquittoServer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    env = _env(
        TWITCHWATCH_MQTT_URL=mosquitto.url,
        TWITCHWATCH_STORE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        TWITCHWATCH_USER="cli",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "twitchwatch", "process", "--client-id", "cli-worker"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc, env
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()


@pytest.mark.mosquitto
def test_cli_simulate_process_events(
    worker_process: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    proc, env = worker_process
    time.sleep(1.5)  # let the worker subscribe; its persistent session would keep frames anyway
    truth_path = tmp_path / "truth.jsonl"
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "twitchwatch",
            "simulate",
            "--muscle",
            MUSCLES[0],
            "--muscle",
            MUSCLES[1],
            "--signal",
            "acc",
            "--duration",
            "4m",
            "--speed",
            "max",
            "--start",
            "-3h",
            "--rate",
            "30",
            "--seed",
            "5",
            "--truth",
            str(truth_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sim.returncode == 0, sim.stderr
    assert "twitches injected" in sim.stderr
    store = SQLiteStore(tmp_path / "cli.db")
    try:
        _wait_for_monitoring(store, "cli", 240.0 - 0.5)  # open minutes are written as they grow
    finally:
        store.close()
    proc.send_signal(signal.SIGTERM)  # a clean stop writes the last events and the partial minute
    assert proc.wait(30) == 0
    with SQLiteStore(tmp_path / "cli.db") as store:
        check_against_truth(store, _truth(truth_path.read_text()), user="cli")
    listed = subprocess.run(
        [sys.executable, "-m", "twitchwatch", "events", "--since", "4h", "--json", "--muscle", MUSCLES[0]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["muscle"] for r in rows} == {MUSCLES[0]}
    assert len(rows) >= len(_truth(truth_path.read_text())[MUSCLES[0]]) - MAX_MISSED
    assert set(rows[0]) >= {"start", "end", "kind", "amplitude", "duration_ms", "confidence", "muscle"}


def _wait_for_monitoring(store: EventStore, user: str, seconds: float, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        per_muscle = [
            sum(r.monitored_s for r in store.rates(EventQuery(user=user, muscle=m))) for m in MUSCLES
        ]
        if min(per_muscle) >= seconds:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker did not catch up within {timeout} s: monitored {per_muscle}")


@pytest.mark.mosquitto
async def test_frames_sent_while_worker_is_down_are_processed_on_return(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    target = parse_mqtt_url(mosquitto.url)
    store = SQLiteStore(tmp_path / "resume.db")
    plan = SimulationPlan(
        ("calf_left",), "emg", dt.datetime.now().astimezone(), 30, None, 30, 3, "resume", chunk=100
    )

    first = Worker(target, store, user="resume", client_id="resume-worker")
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.connected.wait(), 15)
    first.stop()
    await task  # the broker now holds a persistent session with the subscriptions

    truth = io.StringIO()
    stats = await run_simulation(plan, target, truth)  # nobody is listening right now

    second = Worker(target, store, user="resume", client_id="resume-worker", flush_interval=0.1)
    task = asyncio.create_task(second.run())
    await until(lambda: second.stats.frames >= stats.frames, 60)
    second.stop()
    await task
    store.close()
    assert second.stats.frames == stats.frames == 300
    assert second.stats.gaps == 0
