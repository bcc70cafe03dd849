"""What the worker's journal costs (docs/benchmarks.md): simulator → Mosquitto → worker at full speed, with
and without a state directory, alternating in one run so both see the same machine.

    python -m bench.journal_cost --rounds 3 --hours 2

Each round simulates ``--hours`` of two 50-Hz accelerometers (500 samples a frame) as fast as possible into
a fresh worker and times it until the worker has processed every frame; the ratio journal / none is the
figure (the journal appends every frame and status before acknowledging it, and checkpoints once a second).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker


async def _one(broker: MosquittoServer, tmp: Path, name: str, journal: bool, hours: float) -> float:
    target = parse_mqtt_url(broker.url)
    store = SQLiteStore(tmp / f"{name}.db")
    state = tmp / f"state-{name}" if journal else None
    worker = Worker(target, store, user=name, client_id=f"cost-{name}", state_dir=state)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.connected.wait(), 30)
        start = dt.datetime.now().astimezone() - dt.timedelta(days=2)
        plan = SimulationPlan(("a", "b"), "acc", start, hours * 3600, None, 6, 1, name, None, 50, 500)
        began = time.perf_counter()
        stats = await run_simulation(plan, target)
        deadline = time.monotonic() + 600
        while True:
            if worker.stats.frames >= stats.frames or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        if worker.stats.frames != stats.frames:
            raise RuntimeError(f"{name}: the worker processed {worker.stats.frames} of {stats.frames} frames")
        return time.perf_counter() - began
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
        store.close()


async def _main(rounds: int, hours: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer.start(Path(tmp) / "broker")
        times: dict[bool, list[float]] = {False: [], True: []}
        try:
            for n in range(rounds):
                for journal in (False, True):
                    seconds = await _one(broker, Path(tmp), f"r{n}{'j' if journal else 'n'}", journal, hours)
                    times[journal].append(seconds)
                    print(f"round {n}: {'journal' if journal else 'none   '} {seconds:.2f} s", flush=True)
        finally:
            broker.stop()
    none, with_journal = statistics.median(times[False]), statistics.median(times[True])
    print(f"median: none {none:.2f} s, journal {with_journal:.2f} s, ratio {with_journal / none:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hours", type=float, default=2.0, help="simulated hours per run")
    args = p.parse_args(argv)
    asyncio.run(_main(args.rounds, args.hours))


if __name__ == "__main__":
    main()
