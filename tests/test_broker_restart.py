"""Every long-running command survives a broker restart (issue 14 item 4): the harness's Mosquitto is stopped
mid-stream and started again on the same port, keeping its sessions as deploy/mosquitto does. The simulator,
a replay, the recorder and the worker reconnect (at most 5 s between tries) and go on; every frame produced
meanwhile reaches the worker after the reconnect, or is counted as lost — never silently. (``collect``:
tests/test_ble_collect.py, over the Bumble virtual link.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.bumble_bleak.harness import wait_for
from tests.harness.mosquitto import MosquittoServer
from tests.test_recordings import Sig, write_edf
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.record import Recorder
from twitchwatch.collector.recordings.formats.session import Session, SessionWriter
from twitchwatch.collector.recordings.playback import open_source
from twitchwatch.collector.replay import ReplayOptions, run_replay
from twitchwatch.collector.simulate import SimulationPlan, SimulationStats, run_simulation
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import OFFLINE_GRACE_S, Worker

pytestmark = pytest.mark.mosquitto

DOWN_S = 3.0  # how long the broker stays away: longer than the first retry, shorter than the buffer


@asynccontextmanager
async def _broker_and_worker(tmp_path: Path, user: str) -> AsyncIterator[tuple[MosquittoServer, Worker]]:
    broker = MosquittoServer.start(tmp_path / "broker", persistence=True)
    store = SQLiteStore(tmp_path / "w.db")
    worker = Worker(
        parse_mqtt_url(broker.url),
        store,
        user=user,
        client_id=f"restart-{user}",
        flush_interval=0.2,
        offline_grace_s=OFFLINE_GRACE_S,  # as twitchwatch process
    )
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 30)
        yield broker, worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
        store.close()
        broker.stop()


async def _restart_when(broker: MosquittoServer, ready: Callable[[], bool], worker: Worker) -> None:
    """Once ``ready``, stop the broker for ``DOWN_S`` and start it again; the worker must notice both."""
    await wait_for(ready, 60, "the stream under way")
    broker.stop()
    await wait_for(lambda: not worker.connected.is_set(), 30, "the worker noticing the broker is gone")
    await asyncio.sleep(DOWN_S)
    broker.restart()
    await wait_for(worker.connected.is_set, 30, "the worker reconnecting within its 5-s backoff")


def _plan(user: str, seconds: float, speed: float | None) -> SimulationPlan:
    start = dt.datetime.now().astimezone().replace(microsecond=0)
    return SimulationPlan(("calf_left", "calf_right"), "emg", start, seconds, speed, 30, 7, user)


async def test_simulate_and_the_worker_go_on_through_a_broker_restart(tmp_path: Path) -> None:
    """A paced simulation (a wearable's pace: it does not wait) keeps its frames in the outbox while the
    broker is away and sends them after; the worker processes every frame once, with no gap."""
    async with _broker_and_worker(tmp_path, "sim") as (broker, worker):
        plan = _plan("sim", 24, 2.0)
        sim = asyncio.create_task(run_simulation(plan, parse_mqtt_url(broker.url)))
        await _restart_when(broker, lambda: worker.stats.frames >= 100, worker)
        stats = await asyncio.wait_for(sim, 120)
        assert (stats.broker_reconnects, stats.frames_dropped) == (2, 0)  # one per device, nothing lost
        await wait_for(lambda: worker.stats.frames >= stats.frames, 60, "every frame at the worker")
        assert (worker.stats.frames, worker.stats.gaps, worker.stats.missing_frames) == (stats.frames, 0, 0)
        # The offline wills the restarted broker fired did not end the streams: each is one from the start
        # (no second spent warming up again).
        first_t0 = {st.device: st.seg_t0_ns for st in worker._streams.values()}
        start_ns = round(plan.start.timestamp() * 1e9)
        assert first_t0 == dict.fromkeys((plan.device(m) for m in plan.muscles), start_ns)
        rates = worker.store.rates(EventQuery(user="sim"))
    for muscle in plan.muscles:  # after the worker's final write: every second of both muscles covered
        covered = sum(r.monitored_s for r in rates if r.muscle == muscle)
        assert covered >= 24 - 0.5


async def test_a_simulation_at_full_speed_waits_and_drops_nothing(tmp_path: Path) -> None:
    """At full speed the simulator waits for the broker instead of buffering; frames of 10 s each (a 50-Hz
    accelerometer, 500 samples a frame) must not trip the outbox's time bound (they did: 128 waiting frames
    are 21 minutes of signal, beyond its 10)."""
    async with _broker_and_worker(tmp_path, "fast") as (broker, worker):
        start = dt.datetime.now().astimezone().replace(microsecond=0) - dt.timedelta(days=1)
        plan = SimulationPlan(
            ("calf_left", "calf_right"), "acc", start, 3 * 3600, None, 6, 7, "fast", None, 50, 500
        )
        sim = asyncio.create_task(run_simulation(plan, parse_mqtt_url(broker.url)))
        await _restart_when(broker, lambda: worker.stats.frames >= 200, worker)
        stats = await asyncio.wait_for(sim, 120)
        assert stats.frames == 2 * 3 * 3600 // 10
        assert stats.frames_dropped == 0
        await wait_for(lambda: worker.stats.frames >= stats.frames, 60, "every frame at the worker")
        assert (worker.stats.frames, worker.stats.gaps, worker.stats.missing_frames) == (stats.frames, 0, 0)


async def test_a_simulation_beyond_its_buffer_counts_what_it_dropped(tmp_path: Path) -> None:
    """The broker away longer than the outbox holds: the oldest frames are dropped, counted by the simulator
    and seen by the worker as one gap of exactly that many frames."""
    async with _broker_and_worker(tmp_path, "lossy") as (broker, worker):
        plan = _plan("lossy", 24, 2.0)
        sim = asyncio.create_task(run_simulation(plan, parse_mqtt_url(broker.url), broker_buffer_s=1.0))
        await _restart_when(broker, lambda: worker.stats.frames >= 100, worker)
        stats = await asyncio.wait_for(sim, 120)
        assert stats.frames_dropped > 0
        await wait_for(
            lambda: worker.stats.frames + worker.stats.missing_frames >= stats.frames, 60, "frames or gaps"
        )
        assert worker.stats.frames + worker.stats.missing_frames == stats.frames
        assert worker.stats.missing_frames == stats.frames_dropped
        assert worker.stats.gaps == 2  # one per device


async def test_replay_waits_for_the_broker_and_loses_nothing(tmp_path: Path) -> None:
    """A file can wait: the replay pauses while the broker is away, then goes on from where it was."""
    rng = np.random.default_rng(3)
    emg = rng.normal(0, 3.0, 30_000)
    for at in range(1500, 29_000, 1300):
        emg[at : at + 10] += 150 * np.hanning(10)
    path = write_edf(tmp_path / "rec.edf", [Sig("EMG", "uV", 1000, emg)])
    source = open_source(path, (), ("EMG=calf_left",))
    try:
        async with _broker_and_worker(tmp_path, "rep") as (broker, worker):
            options = ReplayOptions("rep", speed=3.0)
            replay = asyncio.create_task(run_replay(source, parse_mqtt_url(broker.url), options))
            await _restart_when(broker, lambda: worker.stats.frames >= 50, worker)
            stats = await asyncio.wait_for(replay, 120)
            assert (stats.broker_reconnects, stats.frames_lost) == (1, 0)
            await wait_for(lambda: worker.stats.frames >= stats.frames, 60, "every frame at the worker")
            assert (worker.stats.frames, worker.stats.gaps) == (stats.frames, 0)
    finally:
        source.close()


async def test_record_goes_on_and_marks_what_it_missed(tmp_path: Path) -> None:
    """The recorder's session is clean (a recorder gone must not leave the broker queueing for it): it
    reconnects and what was published before it subscribed again is a gap in the file, counted."""
    async with _broker_and_worker(tmp_path, "rec") as (broker, worker):
        target = parse_mqtt_url(broker.url)
        writer = SessionWriter(tmp_path / "s.h5", user="rec", broker=target.display)
        recorder = Recorder(target, writer, user="rec")
        stop = asyncio.Event()
        recording = asyncio.create_task(recorder.run(stop))
        await asyncio.wait_for(recorder.subscribed.wait(), 30)
        stats = await _simulate_through_restart(broker, worker, "rec", recorder)
        counts = writer.counts
        await wait_for(
            lambda: recorder.stats.frames + counts.missing_frames >= stats.frames, 60, "frames or gaps"
        )
        stop.set()
        await asyncio.wait_for(recording, 60)
        writer.close()
        assert recorder.stats.frames + recorder.stats.missing_frames == stats.frames
        # Each device that lost frames while the recorder was away has its gap marked in the file, and
        # counted. Whether both lost some depends on where each was in its frame when the broker stopped
        # (CI once saw one device's frames all survive): the count follows the file, not an assumption.
        with Session(tmp_path / "s.h5") as session:
            marked = [g for p in session.streams for g in session.gaps(p)]
            lost = {p.device for p in session.streams if any(g.missing_frames for g in session.gaps(p))}
        assert recorder.stats.gaps == len(marked)  # counted as marked
        assert sum(g.missing_frames for g in marked) == recorder.stats.missing_frames
        assert len(lost) <= 2
        assert bool(lost) == (recorder.stats.missing_frames > 0)
        assert len(recorder.stats.devices) == 2


async def _simulate_through_restart(
    broker: MosquittoServer, worker: Worker, user: str, recorder: Recorder
) -> SimulationStats:
    plan = _plan(user, 20, 2.0)
    sim = asyncio.create_task(run_simulation(plan, parse_mqtt_url(broker.url)))
    await _restart_when(broker, lambda: recorder.stats.frames >= 100, worker)
    await wait_for(recorder.subscribed.is_set, 30, "the recorder subscribed again")
    return await asyncio.wait_for(sim, 120)


async def test_the_simulate_command_survives_a_broker_restart(tmp_path: Path) -> None:
    """``twitchwatch simulate`` used to die with ``MqttCodeError [code:4] … not currently connected``."""
    broker = MosquittoServer.start(tmp_path / "broker", persistence=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    env |= {"TWITCHWATCH_MQTT_URL": broker.url, "TWITCHWATCH_USER": "cli"}
    try:
        async with parse_mqtt_url(broker.url).client() as listener:
            await listener.subscribe("twitchwatch/cli/+/raw/+", qos=1)
            sim = await asyncio.create_subprocess_exec(
                *(
                    sys.executable,
                    "-m",
                    "twitchwatch",
                    "simulate",
                    "--muscle",
                    "calf_left",
                    "--duration",
                    "16",
                ),
                env=env,
                stderr=subprocess.PIPE,
            )
            async for _ in listener.messages:  # streaming: now take the broker away
                break
        broker.stop()
        await asyncio.sleep(DOWN_S)
        broker.restart()
        _, err = await asyncio.wait_for(sim.communicate(), 120)
    finally:
        broker.stop()
    assert sim.returncode == 0, err.decode()
    assert "published 320 frames" in err.decode(), err.decode()
    assert "1 broker reconnect(s), 0 frames lost" in err.decode(), err.decode()
