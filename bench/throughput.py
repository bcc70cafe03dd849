"""End-to-end capacity: simulated wearables → broker → ``twitchwatch process`` worker(s) → SQLite, measured.

Run: ``nice .venv/bin/python -m bench.throughput [--streams 48 96] [--seconds 40]
[--signal emg|acc] [--paths mosquitto rabbit1 rabbit2]``.

Each path starts its own broker (tests/harness: Mosquitto, or a RabbitMQ node with ``broker setup``), its
worker process(es) and a publisher process (``run_simulation`` at real-time pace, one device per stream, the
frames a wearable sends: EMG 1 kHz in 50-ms frames, or a 3-axis accelerometer). Mosquitto: one user, one
worker (as `make demo`). RabbitMQ: the streams spread over 16 users (16 partitions), one worker, or two on
slots 0/2 and 1/2. Figures over the publishing window:

- worker, broker and publisher CPU (cores, from /proc: user + system time over wall time);
- latency from a detected twitch's end (device time = wall time: the simulator paces frames by the clock) to
  the event **published** (an MQTT subscriber's arrival time) and to the event **stored** (first seen by
  polling the SQLite file every 50 ms: ±50 ms);
- *keeps up*: the worker stores every frame's events within the publishing window plus 5 s, and its p99
  latency to stored stays under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.harness.mosquitto import MosquittoServer
from tests.harness.rabbitmq import RabbitServer
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.processing.amqp import setup_broker

USERS = 16
PARTITIONS = 16
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its live descendants (a RabbitMQ node is beam.smp under a shell)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_s(p)
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return total


@dataclass(frozen=True)
class Result:
    path: str
    streams: int
    channels: int
    workers: int
    worker_cores: float
    broker_cores: float
    publisher_cores: float
    published: list[float]
    stored: list[float]
    events: int
    drained: bool
    publisher_lag_p99: float

    def row(self) -> str:
        def pct(xs: list[float]) -> str:
            if not xs:
                return "   -     -     -"
            p = np.percentile(np.array(xs) * 1000, [50, 95, 99])
            return " ".join(f"{v:5.0f}" for v in p)

        per_core = self.channels / self.worker_cores if self.worker_cores > 0 else float("nan")
        return (
            f"{self.path:9s} {self.streams:5d} {self.channels:6d} {self.workers:2d} {self.worker_cores:6.2f} "
            f"{per_core:8.0f} {self.broker_cores:6.2f} {self.publisher_cores:6.2f} {self.events:6d} "
            f"{pct(self.stored)}  {pct(self.published)}  {self.publisher_lag_p99 * 1000:6.0f}  "
            f"{'yes' if self.keeps_up else 'NO'}"
        )

    @property
    def keeps_up(self) -> bool:
        return self.drained and bool(self.stored) and float(np.percentile(self.stored, 99)) < 2.0


HEADER = (
    "path      streams  chans  w  wcores ch/wcore bcores pcores events  stored p50/p95/p99 ms  "
    "published p50/p95/p99  pub lag p99  keeps up"
)


def _plans(
    streams: int, users: int, seconds: float, signal: str, ago: dt.timedelta = dt.timedelta(0)
) -> list[SimulationPlan]:
    start = dt.datetime.now().astimezone() - ago
    per_user = [streams // users + (1 if i < streams % users else 0) for i in range(users)]
    return [
        SimulationPlan(
            tuple(f"m{i:02d}x{j:03d}" for j in range(n)),
            signal,  # type: ignore[arg-type]
            start,
            seconds,
            1.0,
            6.0,
            100 + i,
            f"bench{i:02d}",
            chunk=50 if signal == "emg" else 5,
        )
        for i, n in enumerate(per_user)
        if n
    ]


def publish_main(url: str, streams: int, users: int, seconds: float, signal: str) -> None:
    """The publisher process: every plan at once, paced by the clock. Prints how far behind the clock it
    published (s, p99 and max over its frame steps): latency is measured from device time, so a publisher
    that cannot keep up adds its own lag to every figure."""
    target = parse_mqtt_url(url)
    lags: list[float] = []
    t0 = time.time()

    def progress(done_s: float, _total: float) -> None:
        lags.append(time.time() - t0 - done_s)

    async def run() -> None:
        plans = _plans(streams, users, seconds, signal)
        await asyncio.gather(*(run_simulation(p, target, progress=progress) for p in plans))

    asyncio.run(run())
    print(json.dumps({"lag_p99": float(np.percentile(lags, 99)), "lag_max": max(lags)}))


async def _watch(url: str, db: Path, until: float, published: list[float], stored: list[float]) -> int:
    """Subscribe to events (arrival − end) and poll the store (first seen − end) until ``until``."""
    target = parse_mqtt_url(url)
    seen: set[tuple[str, str, int]] = set()

    async def poll() -> None:
        while time.time() < until:
            await asyncio.sleep(0.05)
            now = time.time()
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                    rows = con.execute("SELECT user, muscle, start_ns, end_ns FROM events").fetchall()
            except sqlite3.Error:  # not created yet, or busy: the next poll
                continue
            for user, muscle, start_ns, end_ns in rows:
                if (user, muscle, start_ns) not in seen:
                    seen.add((user, muscle, start_ns))
                    stored.append(now - end_ns / 1e9)

    async with target.client(f"bench-watch-{os.getpid()}") as client:
        await client.subscribe("twitchwatch/+/+/events", qos=1)

        async def listen() -> None:
            async for m in client.messages:
                now = time.time()
                assert isinstance(m.payload, bytes)
                for e in json.loads(m.payload):
                    published.append(now - float(e["end"]))

        listener = asyncio.create_task(listen())
        await poll()
        listener.cancel()  # and let it end before the client closes under it
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    return len(seen)


def _worker_env(
    base: dict[str, str], mqtt_url: str, db: Path, amqp: str | None, slot: str | None
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("TWITCHWATCH_")}
    env.update(
        TWITCHWATCH_MQTT_URL=mqtt_url, TWITCHWATCH_STORE_URL=f"sqlite:///{db}", TWITCHWATCH_USER="bench00"
    )
    if amqp:
        env.update(TWITCHWATCH_AMQP_URL=amqp, TWITCHWATCH_AMQP_PARTITIONS=str(PARTITIONS))
    if slot:
        env["TWITCHWATCH_AMQP_SLOT"] = slot
    return env


def run_path(path: str, streams: int, seconds: float, signal: str, workdir: Path) -> Result:
    workdir.mkdir(parents=True)
    rabbit = path.startswith("rabbit")
    workers_n = 2 if path == "rabbit2" else 1
    users = USERS if rabbit else 1
    server: MosquittoServer | RabbitServer
    if rabbit:
        server = RabbitServer.start(workdir / "broker")
        mqtt_url, amqp = server.mqtt_url, server.amqp_url
        asyncio.run(setup_broker(amqp, PARTITIONS, [f"bench{i:02d}" for i in range(users)]))
        broker_pid = server.process.pid
    else:
        server = MosquittoServer.start(workdir / "broker")
        mqtt_url, amqp = server.url, None
        broker_pid = server.process.pid
    db = workdir / "events.db"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(workers_n):
            slot = f"{i}/{workers_n}" if rabbit else None
            env = _worker_env(dict(os.environ), mqtt_url, db, amqp, slot)
            with (workdir / f"worker{i}.log").open("wb") as err:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "twitchwatch", "process", "--client-id", f"bench-worker-{i}"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        time.sleep(8 if rabbit else 4)  # imports, connections; RabbitMQ: the standby subscriptions
        cpu0 = [cpu_s(p.pid) for p in procs]
        b0 = tree_cpu_s(broker_pid)
        t0 = time.time()
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.throughput",
                "--publish",
                mqtt_url,
                str(streams),
                str(users),
                str(seconds),
                signal,
            ],
            stdout=subprocess.PIPE,
        )
        published: list[float] = []
        stored: list[float] = []
        events = asyncio.run(_watch(mqtt_url, db, t0 + seconds + 5, published, stored))
        # The publisher's own CPU, from its exit status (os.wait4), not from every child waited for since.
        assert publisher.stdout is not None
        report = json.loads(publisher.stdout.read() or b'{"lag_p99": NaN}')
        _, status, usage = os.wait4(publisher.pid, 0)
        publisher.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        worker_cores = sum(cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True)) / wall
        broker_cores = (tree_cpu_s(broker_pid) - b0) / wall
        drained = _drained(server) if isinstance(server, RabbitServer) else True
        channels = streams * (1 if signal == "emg" else 3)
        return Result(
            path,
            streams,
            channels,
            workers_n,
            worker_cores,
            broker_cores,
            (usage.ru_utime + usage.ru_stime) / wall,
            published,
            stored,
            events,
            drained,
            float(report["lag_p99"]),
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        server.stop()


def _drained(server: RabbitServer) -> bool:
    """At the end of the window no frame waits unconsumed in a partition queue."""
    rows = server.ctl("list_queues", "name", "messages_ready")
    ready = sum(int(str(r["messages_ready"])) for r in rows if str(r["name"]).startswith("twitchwatch."))
    return ready == 0


def profile_worker(streams: int, seconds: float, signal: str, top: int = 14) -> None:
    """The worker's own CPU per frame, without broker or network: the frames ``streams`` wearables send over
    ``seconds`` (made first, not measured), handed to ``Worker.handle`` in arrival order (a SQLite store in a
    temp dir, flushed at the end), timed with process CPU time, then again under cProfile for where it
    goes."""
    import cProfile
    import pstats

    from twitchwatch.collector.frames import encode
    from twitchwatch.collector.simulate import _next_frame
    from twitchwatch.collector.status import DeviceStatus, StreamInfo
    from twitchwatch.collector.synth import MuscleSegment
    from twitchwatch.collector.topics import Topic
    from twitchwatch.processing.store.sqlite import SQLiteStore
    from twitchwatch.processing.worker import Worker

    lanes = 8 if signal == "emg8" else 1  # an 8-channel EMG wearable: eight muscles' signals in one frame
    (plan,) = _plans(streams, 1, seconds, signal.removesuffix("8"), dt.timedelta(hours=1))  # not live: no lag
    start_ns = round(plan.start.timestamp() * 1e9)
    devices = {
        plan.device(m): [
            MuscleSegment(f"{m}c{c}", plan.spec, start_ns, seconds, plan.per_minute, seed=i * lanes + c)
            for c in range(lanes)
        ]
        for i, m in enumerate(plan.muscles)
    }
    spec = plan.spec
    messages = []
    for device, gens in devices.items():
        muscles = tuple(g.muscle for g in gens for _ in range(spec.channels))
        status = DeviceStatus(
            "online",
            "sim",
            "live",
            "s1",
            None,
            {spec.signal: StreamInfo(0, spec.signal, spec.sample_rate, muscles)},
        )
        messages.append((str(Topic(plan.user, device, "status")), status.to_json()))
    seq = 0
    while next(iter(devices.values()))[0].remaining:
        for device, gens in devices.items():
            parts = [_next_frame(g, plan.chunk, seq) for g in gens]
            frame = dataclasses.replace(parts[0], raw=np.hstack([f.raw for f in parts]))
            messages.append((str(Topic(plan.user, device, "raw", spec.signal)), encode(frame)))
        seq += 1
    frames = len(messages) - streams

    def run() -> Worker:
        with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "events.db") as store:
            worker = Worker(parse_mqtt_url("mqtt://127.0.0.1:1"), store, user=plan.user)
            for topic, payload in messages:
                worker.handle(topic, payload)
            asyncio.run(worker.drain())
            return worker

    cpu0 = time.process_time()
    worker = run()
    cpu = time.process_time() - cpu0
    channels = streams * plan.spec.channels * lanes
    per_frame_us = cpu / frames * 1e6
    print(
        f"worker alone: {streams} {signal} streams ({channels} channels), {seconds:.0f} s, {frames} frames, "
        f"{worker.stats.events_stored} events: {cpu:.2f} s CPU, {per_frame_us:.0f} µs per frame -> "
        f"{channels * seconds / cpu:.0f} channels per core in real time"
    )
    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--publish"]:
        url, streams, users, seconds, signal = argv[1:]
        publish_main(url, int(streams), int(users), float(seconds), signal)
        return
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[48, 96])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--signal", choices=["emg", "acc", "emg8"], default="emg")
    parser.add_argument("--paths", nargs="+", default=["mosquitto", "rabbit1", "rabbit2"])
    parser.add_argument(
        "--profile", action="store_true", help="the worker alone, no broker: CPU per frame and where"
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile_worker(args.streams[0], args.seconds, args.signal)
        return
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"{args.signal}, {args.seconds:.0f} s per run"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="twitchwatch-throughput-") as tmp:
        for streams in args.streams:
            for path in args.paths:
                result = run_path(path, streams, args.seconds, args.signal, Path(tmp) / f"{path}-{streams}")
                print(result.row(), flush=True)


if __name__ == "__main__":
    main()
