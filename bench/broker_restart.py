"""What each long-running command does when the broker restarts (issue 14 item 4; docs/reliability.md).

A real Mosquitto (tests/harness, sessions kept over the restart as deploy/mosquitto does) is stopped while
frames flow and started again on the same port ``--down`` seconds later. For the worker with ``simulate``
(paced, and at full speed), ``replay`` and ``record`` it prints the frames produced, those that reached the
worker or the file, those counted as lost or as a gap, the reconnects, and how long after the broker was back
each one was connected again (the backoff is at most 5 s between tries):

    python -m bench.broker_restart --down 3 --down 12
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.harness.mosquitto import MosquittoServer
from tests.test_recordings import Sig, write_edf
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.record import Recorder
from twitchwatch.collector.recordings.formats.session import SessionWriter
from twitchwatch.collector.recordings.playback import open_source
from twitchwatch.collector.replay import ReplayOptions, run_replay
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker


@dataclass
class Outcome:
    command: str
    down_s: float
    produced: int
    delivered: int  # frames at the worker (or in the file), each once
    lost: int  # counted by the producer as never sent
    gap_frames: int  # counted by the receiver as missing
    reconnects: int
    worker_back_s: float  # after the broker was back
    note: str = ""


async def _poll(condition: Callable[[], bool], within_s: float) -> float:
    """Seconds until ``condition`` held (``within_s`` if it never did)."""
    began = time.monotonic()
    while True:
        if condition() or time.monotonic() - began > within_s:
            return time.monotonic() - began
        await asyncio.sleep(0.05)


async def _outage(broker: MosquittoServer, worker: Worker, down_s: float) -> float:
    broker.stop()
    await _poll(lambda: not worker.connected.is_set(), 30)
    await asyncio.sleep(down_s)
    broker.restart()
    return await _poll(worker.connected.is_set, 60)


async def _scenario(tmp: Path, name: str, down_s: float) -> Outcome:
    broker = MosquittoServer.start(tmp / f"broker-{name}-{down_s:g}", persistence=True)
    target = parse_mqtt_url(broker.url)
    user = name.replace(" ", "-")
    store = SQLiteStore(tmp / f"{user}-{down_s:g}.db")
    worker = Worker(target, store, user=user, client_id=f"bench-{user}", flush_interval=0.2)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 30)
        start = dt.datetime.now().astimezone().replace(microsecond=0)
        if name.startswith("simulate"):
            speed = None if name.endswith("max") else 2.0
            seconds = 600 if speed is None else 40
            plan = SimulationPlan(("calf_left", "calf_right"), "emg", start, seconds, speed, 30, 3, user)
            sim = asyncio.create_task(run_simulation(plan, target))
            await _poll(lambda: worker.stats.frames >= 100, 60)
            back = await _outage(broker, worker, down_s)
            stats = await sim
            produced, lost, reconnects = stats.frames, stats.frames_dropped, stats.broker_reconnects
        elif name == "replay":
            rng = np.random.default_rng(3)
            path = write_edf(
                tmp / f"rec-{down_s:g}.edf", [Sig("EMG", "uV", 1000, rng.normal(0, 3.0, 60_000))]
            )
            source = open_source(path, (), ("EMG=calf_left",))
            replay = asyncio.create_task(run_replay(source, target, ReplayOptions(user, speed=3.0)))
            await _poll(lambda: worker.stats.frames >= 50, 60)
            back = await _outage(broker, worker, down_s)
            rstats = await replay
            source.close()
            produced, lost, reconnects = rstats.frames, rstats.frames_lost, rstats.broker_reconnects
        else:  # record, with a paced simulation to record
            writer = SessionWriter(tmp / f"s-{down_s:g}.h5", user=user, broker=target.display)
            recorder = Recorder(target, writer, user=user)
            stop = asyncio.Event()
            recording = asyncio.create_task(recorder.run(stop))
            await asyncio.wait_for(recorder.subscribed.wait(), 30)
            plan = SimulationPlan(("calf_left", "calf_right"), "emg", start, 40, 2.0, 30, 3, user)
            sim = asyncio.create_task(run_simulation(plan, target))
            await _poll(lambda: recorder.stats.frames >= 100, 60)
            back = await _outage(broker, worker, down_s)
            back = max(back, await _poll(recorder.subscribed.is_set, 60))
            stats = await sim
            counts = writer.counts
            await _poll(lambda: recorder.stats.frames + counts.missing_frames >= stats.frames, 60)
            stop.set()
            await recording
            writer.close()
            return Outcome(
                name,
                down_s,
                stats.frames,
                recorder.stats.frames,
                stats.frames_dropped,
                recorder.stats.missing_frames,
                stats.broker_reconnects,
                back,
                f"{recorder.stats.gaps} gap(s) marked in the file",
            )
        await _poll(lambda: worker.stats.frames + worker.stats.missing_frames >= produced, 120)
        return Outcome(
            name,
            down_s,
            produced,
            worker.stats.frames,
            lost,
            worker.stats.missing_frames,
            reconnects,
            back,
            f"{worker.stats.duplicates} repeats dropped by the worker",
        )
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
        store.close()
        broker.stop()


HEADER = (
    "| command | broker away | frames produced | reached the worker / file | lost (counted) | gap (counted) "
    "| reconnects | receiver back after | note |"
)


async def _main(downs: Sequence[float]) -> None:
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for down in downs:
            for name in ("simulate", "simulate max", "replay", "record"):
                o = await _scenario(Path(tmp), name, down)
                cells: tuple[object, ...] = (o.command, f"{o.down_s:g} s", o.produced, o.delivered, o.lost)
                cells += (o.gap_frames,)
                cells += (o.reconnects, f"{o.worker_back_s:.1f} s", o.note)
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--down", type=float, action="append", help="seconds the broker stays away (repeat)")
    args = p.parse_args(argv)
    asyncio.run(_main(args.down or [3.0]))


if __name__ == "__main__":
    main()
