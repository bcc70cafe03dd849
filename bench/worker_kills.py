"""A worker killed at random moments loses and misnames nothing (issue 14 item 3; docs/reliability.md).

One trial: a real Mosquitto (tests/harness), the simulator streaming two 1-kHz EMG muscles with twitches
injected at known times, and two workers on the same frames: ``twitchwatch process`` in a subprocess with
its own SQLite file and state directory, SIGKILLed at random moments and started again after a random
pause, and an in-process control worker that is never killed. Afterwards the killed worker's store must
hold exactly the control's events (same muscle, kind and time) and minute rows, and every injected twitch
(the simulator's truth, ±0.5 s) exactly once under its muscle.

    python -m bench.worker_kills --trials 4 --kills 5 --seconds 120 --speed 2

prints one line per trial and the totals (injected / stored once / misnamed / lost / duplicated) that
docs/reliability.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.processing.events import TWITCH_KINDS, EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

MUSCLES = ("calf_left", "calf_right")
MATCH_S = 0.5
SHAPED = (*TWITCH_KINDS, EventKind.DURING_MOVEMENT)


@dataclass
class TrialResult:
    kills: list[float] = field(default_factory=list)  # wall seconds after the simulation began
    injected: int = 0  # truth twitches the control worker found (its detector's own misses set aside)
    truth: int = 0  # every truth twitch
    stored_once: int = 0  # of those, found in the killed worker's store exactly once under its muscle
    misnamed: int = 0  # events stored under a name that is no injected muscle
    lost: int = 0  # found by the control, absent from the killed worker's store
    duplicated: int = 0  # found more than once
    events_differ: int = 0  # events (any kind) in one store and not the other
    minutes_differ: int = 0  # minute rows that differ between the two stores
    replayed: list[int] = field(default_factory=list)  # messages each restart took from the journal
    caught_up: bool = True  # its minute rows covered the whole simulation in the end

    @property
    def perfect(self) -> bool:
        return self.caught_up and (
            self.misnamed,
            self.lost,
            self.duplicated,
            self.events_differ,
            self.minutes_differ,
        ) == (
            0,
            0,
            0,
            0,
            0,
        )


def _key(e: TwitchEvent) -> tuple[str, str, str, int, int]:
    return (e.muscle, e.device, e.kind.value, e.start_ns, e.end_ns)


def _rate_key(r: MinuteRate) -> tuple[str, str, int, int, float, float | None]:
    return (
        r.muscle,
        r.device,
        r.minute_ns,
        r.twitches,
        round(r.monitored_s, 3),
        r.rest_s and round(r.rest_s, 3),
    )


def _found(events: Sequence[TwitchEvent], truth: list[dict[str, Any]], muscle: str) -> list[int]:
    """Per truth twitch of ``muscle``: how many twitch-shaped events of that muscle are nearest to it
    within ±``MATCH_S``."""
    mine = sorted(t["start"] for t in truth if t["muscle"] == muscle)
    counts = [0] * len(mine)
    for e in events:
        if e.muscle != muscle or e.kind not in SHAPED or not mine:
            continue
        start = e.start_ns / 1e9
        nearest = min(range(len(mine)), key=lambda i: abs(mine[i] - start))
        if abs(mine[nearest] - start) <= MATCH_S:
            counts[nearest] += 1
    return counts


def compare(
    killed: SQLiteStore, control: SQLiteStore, user: str, truth: list[dict[str, Any]], result: TrialResult
) -> None:
    got = killed.events(EventQuery(user=user))
    want = control.events(EventQuery(user=user))
    result.misnamed = sum(e.muscle not in MUSCLES for e in got)
    result.events_differ = len({_key(e) for e in got} ^ {_key(e) for e in want})
    rates_got = {_rate_key(r) for r in killed.rates(EventQuery(user=user))}
    rates_want = {_rate_key(r) for r in control.rates(EventQuery(user=user))}
    result.minutes_differ = len(rates_got ^ rates_want)
    result.truth = len(truth)
    for muscle in MUSCLES:
        reference = _found(want, truth, muscle)
        counts = _found(got, truth, muscle)
        for ref, n in zip(reference, counts, strict=True):
            if ref == 0:
                continue  # the detector's own miss (the control missed it too): not the kill's doing
            result.injected += 1
            result.stored_once += n == 1
            result.lost += n == 0
            result.duplicated += n > 1


def _env(broker: MosquittoServer, workdir: Path, user: str) -> dict[str, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    return env | {
        "TWITCHWATCH_MQTT_URL": broker.url,
        "TWITCHWATCH_STORE_URL": f"sqlite:///{workdir / 'killed.db'}",
        "TWITCHWATCH_USER": user,
        "TWITCHWATCH_STATE_DIR": str(workdir / "state"),
    }


class _KilledWorker:
    """``twitchwatch process`` as a subprocess, its log per start in the work directory."""

    def __init__(self, env: dict[str, str], workdir: Path, client_id: str) -> None:
        self.env, self.workdir, self.client_id = env, workdir, client_id
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "twitchwatch", "process", "--client-id", self.client_id],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def replayed(self) -> int | None:
        """How many journaled messages this start resumed from (None: it has not said yet)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if "journaled message(s)" in line:
                return int(line.rsplit("then ", 1)[1].split()[0])
        return None


async def _caught_up(store_path: Path, user: str, seconds: float, within_s: float) -> bool:
    """Whether the killed worker's store covers the whole simulation within ``within_s`` (it does not when
    frames were lost: the trial is then reported, not aborted)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with SQLiteStore(store_path) as store:
            monitored = [
                sum(r.monitored_s for r in store.rates(EventQuery(user=user, muscle=m))) for m in MUSCLES
            ]
        if min(monitored) >= seconds - 0.5:
            return True
        await asyncio.sleep(0.5)
    return False


async def trial(
    broker: MosquittoServer, workdir: Path, *, seconds: float, speed: float, kills: int, seed: int
) -> TrialResult:
    """One simulation of ``seconds`` at ``speed``× real time, the worker SIGKILLed ``kills`` times at
    random moments (seeded) and restarted after a random pause of 0-1.5 s."""
    rng = random.Random(seed)
    user = f"kill{seed}"
    target = parse_mqtt_url(broker.url)
    result = TrialResult()
    wall = seconds / speed
    result.kills = sorted(rng.uniform(0.5, wall - 0.5) for _ in range(kills))
    pauses = [rng.uniform(0.0, 1.5) for _ in range(kills)]
    env = _env(broker, workdir, user)
    control_store = SQLiteStore(workdir / "control.db")
    control = Worker(target, control_store, user=user, client_id=f"control-{user}", flush_interval=0.2)
    control_task = asyncio.create_task(control.run())
    killed = _KilledWorker(env, workdir, f"killed-{user}")
    try:
        await asyncio.wait_for(control.connected.wait(), 30)
        killed.start()
        await _logged(killed, "worker connected", 60)  # its session exists: the broker keeps its frames
        start = dt.datetime.now().astimezone().replace(microsecond=0) - dt.timedelta(hours=1)
        plan = SimulationPlan(MUSCLES, "emg", start, seconds, speed, 30, seed, user, chunk=50)
        truth_out = io.StringIO()
        began = time.monotonic()
        sim = asyncio.create_task(run_simulation(plan, target, truth_out))
        for at, pause in zip(result.kills, pauses, strict=True):
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            killed.kill()
            await asyncio.sleep(pause)
            killed.start()
            await _logged(killed, "worker connected", 60)
            result.replayed.append(killed.replayed() or 0)
        stats = await sim
        deadline = time.monotonic() + 120
        while True:
            if control.stats.frames >= stats.frames or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        result.caught_up = await _caught_up(workdir / "killed.db", user, seconds, 120)
        if killed.stop() != 0:
            raise AssertionError(f"the worker did not stop cleanly: {killed.log.read_text()[-2000:]}")
        control.stop()
        await asyncio.wait_for(control_task, 60)
        truth = [json.loads(line) for line in truth_out.getvalue().splitlines()]
        with SQLiteStore(workdir / "killed.db") as killed_store:
            compare(killed_store, control_store, user, truth, result)
        return result
    finally:
        if killed.proc is not None and killed.proc.poll() is None:
            killed.kill()
        if not control_task.done():
            control.stop()
            await asyncio.wait_for(control_task, 60)
        control_store.close()


async def _logged(worker: _KilledWorker, text: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if text in worker.log.read_text(errors="replace"):
            return
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited: {worker.log.read_text()[-3000:]}")
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"the worker did not log {text!r} within {within_s} s: {worker.log.read_text()[-3000:]}"
    )


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer.start(Path(tmp) / "broker")
        totals = TrialResult()
        try:
            for n in range(args.trials):
                r = await trial(
                    broker,
                    Path(tmp) / f"trial{n}",
                    seconds=args.seconds,
                    speed=args.speed,
                    kills=args.kills,
                    seed=args.seed + n,
                )
                print(
                    f"trial {n}: {len(r.kills)} kills at {', '.join(f'{k:.1f}' for k in r.kills)} s; "
                    f"journal replayed {r.replayed}; twitches injected {r.truth}, found by the control "
                    f"{r.injected}, stored once {r.stored_once}, misnamed {r.misnamed}, lost {r.lost}, "
                    f"duplicated {r.duplicated}; events differing {r.events_differ}, minute rows "
                    f"differing {r.minutes_differ}{'' if r.caught_up else '; minutes never complete'}",
                    flush=True,
                )
                totals.kills += r.kills
                for name in ("truth", "injected", "stored_once", "misnamed", "lost", "duplicated"):
                    setattr(totals, name, getattr(totals, name) + getattr(r, name))
                totals.caught_up &= r.caught_up
                totals.events_differ += r.events_differ
                totals.minutes_differ += r.minutes_differ
        finally:
            broker.stop()
    print(
        f"total: {len(totals.kills)} kills in {args.trials} trials; twitches injected {totals.truth}, "
        f"found by the control {totals.injected}, stored once {totals.stored_once}, misnamed "
        f"{totals.misnamed}, lost {totals.lost}, duplicated {totals.duplicated}; events differing "
        f"{totals.events_differ}, minute rows differing {totals.minutes_differ}"
    )
    return 0 if totals.perfect else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs per trial")
    p.add_argument("--seconds", type=float, default=120.0, help="simulated signal per trial")
    p.add_argument("--speed", type=float, default=2.0, help="times real time")
    p.add_argument("--seed", type=int, default=1)
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
