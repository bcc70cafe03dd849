"""End-to-end capacity: simulated wearables → broker → ``twitchwatch process`` worker(s) → SQLite, measured.

Run: ``nice .venv/bin/python -m bench.throughput [--streams 48 96] [--seconds 40]
[--signal emg|emg8|acc|acc50] [--frame-span S] [--paths mosquitto rabbit1 rabbit2] [--paho-publisher]``.

Each path starts its own broker (tests/harness: Mosquitto, or a RabbitMQ node with ``broker setup``), its
worker process(es) and ``--publishers`` publisher processes (one simulated device per stream, the frames a
wearable sends: EMG 1 kHz in 50-ms frames, or a 3-axis accelerometer at 100 or 50 Hz in frames of up to
``--frame-span`` as the collector's coalescing makes them, made beforehand and published at real-time
pace). The publishers are a lean wire-level MQTT client (``bench/mqtt_wire.py``: every PUBLISH packet built
beforehand, one ``sendall`` per burst, PUBACKs counted by a thread): they share the machine with
the broker and the worker, and with paho-mqtt's per-message cost (~0.65 of a core for 3,840 messages a
second) the machine was full before the worker was — the figures measured the publisher.
``--paho-publisher`` publishes with paho-mqtt, to compare. Mosquitto: one user, one worker (as `make demo`).
RabbitMQ: the streams spread over 16 users (16 partitions), one worker, or two on slots 0/2 and 1/2.
Figures over the publishing window:

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
import bisect
import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.mqtt_wire import LeanPublisher
from tests.harness.mosquitto import MosquittoServer
from tests.harness.rabbitmq import RabbitServer
from twitchwatch.collector.frames import HEADER as FRAME_HEADER
from twitchwatch.collector.frames import encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.simulate import _next_frame
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.collector.synth import MuscleSegment, SignalSpec, spec_for
from twitchwatch.collector.topics import Topic
from twitchwatch.processing.amqp import setup_broker

USERS = 16
PARTITIONS = 16
TICKS = os.sysconf("SC_CLK_TCK")
T0_OFFSET = 8  # where a frame's device timestamp sits in its header (collector/frames.py)


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


@dataclass(frozen=True)
class Wearable:
    """One simulated device: its user, its name, and one muscle (with its own signal seed) per lane."""

    user: str
    device: str
    muscles: tuple[str, ...]
    seeds: tuple[int, ...]


def _wearables(streams: int, users: int, lanes: int) -> list[Wearable]:
    """``streams`` devices spread over ``users`` users, ``lanes`` muscles each (an 8-channel EMG wearable:
    eight muscles' signals in one frame), every muscle with its own seed (those the profile always used)."""
    per_user = [streams // users + (1 if i < streams % users else 0) for i in range(users)]
    out: list[Wearable] = []
    for u, n in enumerate(per_user):
        for j in range(n):
            name = f"m{u:02d}x{j:03d}"
            first = len(out) * lanes
            out.append(
                Wearable(
                    f"bench{u:02d}",
                    f"sim-{name}",
                    tuple(f"{name}c{c}" for c in range(lanes)),
                    tuple(first + c for c in range(lanes)),
                )
            )
    return out


SIGNALS = ("emg", "emg8", "acc", "acc50")
FRAME_SPAN_S = 0.05  # the collector's default ``[collect] frame_span``


def _spec(signal: str) -> SignalSpec:
    """``emg``: 1-kHz single-channel EMG; ``emg8``: 8-channel wearables; ``acc``: 3-axis accelerometers at
    100 Hz; ``acc50``: at 50 Hz, as the issue's targets name them."""
    if signal == "acc50":
        return spec_for("acc", 50.0)
    return spec_for(signal.removesuffix("8"))  # type: ignore[arg-type]


def _chunk(signal: str, span_s: float = FRAME_SPAN_S) -> int:
    """Samples a frame: as many as the collector's coalescing puts in ``span_s`` (a frame never spans more:
    50 ms is 50 samples at 1 kHz, 5 at 100 Hz, 2 at 50 Hz), at least one."""
    return max(1, math.floor(span_s * _spec(signal).sample_rate + 1e-9))


def _lanes(signal: str) -> int:
    return 8 if signal == "emg8" else 1


def status_message(w: Wearable, signal: str, session: str, state: str = "online") -> tuple[str, bytes]:
    spec = _spec(signal)
    muscles = tuple(m for m in w.muscles for _ in range(spec.channels))
    info = StreamInfo(0, spec.signal, spec.sample_rate, muscles)
    status = DeviceStatus(state, "sim", "live", session, None, {spec.signal: info})  # type: ignore[arg-type]
    return str(Topic(w.user, w.device, "status")), status.to_json()


def wearable_frames(
    w: Wearable, signal: str, start_ns: int, seconds: float, span_s: float = FRAME_SPAN_S
) -> tuple[str, list[bytes]]:
    """The raw topic of a wearable and its encoded frames over ``seconds`` from ``start_ns``, 6 twitches a
    minute per muscle (collector/synth.py); frame k covers [start + k·d, start + (k+1)·d)."""
    spec, chunk = _spec(signal), _chunk(signal, span_s)
    gens = [
        MuscleSegment(m, spec, start_ns, seconds, 6.0, seed=s)
        for m, s in zip(w.muscles, w.seeds, strict=True)
    ]
    frames = []
    seq = 0
    while gens[0].remaining:
        parts = [_next_frame(g, chunk, seq) for g in gens]
        frames.append(encode(dataclasses.replace(parts[0], raw=np.hstack([f.raw for f in parts]))))
        seq += 1
    return str(Topic(w.user, w.device, "raw", spec.signal)), frames


def publish_main(
    url: str,
    streams: int,
    users: int,
    seconds: float,
    signal: str,
    part: int,
    parts: int,
    paho: bool = False,
    span_s: float = FRAME_SPAN_S,
) -> None:
    """One publisher process, ``part`` of ``parts``: the wearables ``w`` with ``w mod parts == part``.

    Every frame is made and encoded first, each wearable at its own phase within a frame (real devices are
    not in step); the process connects (one MQTT connection, QoS 1 as the collectors publish), publishes the
    retained statuses, says ``ready`` and reads the start time (ns) from stdin. The frames' device times are
    moved to it (the timestamp field, in place) and each is published when it ends by the clock. Prints how
    far behind the clock it published (s, p99 and max over its bursts): latency is measured from device time,
    so a publisher that falls behind adds its lag to every figure. ``paho``: paho-mqtt's client (its network
    thread) instead of the lean one (``bench.mqtt_wire``), to compare what each costs."""
    target = parse_mqtt_url(url)
    mine = _wearables(streams, users, _lanes(signal))[part::parts]
    spec = _spec(signal)
    frame_ns = round(_chunk(signal, span_s) * 1e9 / spec.sample_rate)
    session = f"bench{part}-{os.getpid()}"
    origin = time.time_ns()
    timeline: list[tuple[int, str, bytearray]] = []
    for i, w in enumerate(mine):
        phase = (i * parts + part) * frame_ns // max(streams, 1)
        topic, frames = wearable_frames(w, signal, origin + phase, seconds, span_s)
        timeline += [(origin + phase + (k + 1) * frame_ns, topic, bytearray(f)) for k, f in enumerate(frames)]
    timeline.sort(key=lambda item: item[0])
    online = [status_message(w, signal, session) for w in mine]
    # The wearables go offline at the end, as a collector says when it stops: their last events follow.
    offline = [status_message(w, signal, session, "offline") for w in mine]
    client_id = f"bench-pub-{part}-{os.getpid()}"
    publish = _publish_paho if paho else _publish_lean
    lags = publish(target, client_id, timeline, origin, online, offline)
    print(
        json.dumps(
            {"lag_p99": float(np.percentile(lags, 99)) if lags else 0.0, "lag_max": max(lags, default=0.0)}
        )
    )


def _start_shift(origin: int) -> int:
    """Say ``ready``, read the start time (ns) from stdin: how far the frames' times move."""
    print("ready", flush=True)
    return int(sys.stdin.readline()) - origin


def _shift_t0(buf: bytearray, at: int, shift: int) -> None:
    """Move the device time of the frame at ``buf[at:]`` by ``shift`` ns, in place."""
    t0 = FRAME_HEADER.unpack_from(buf, at)[5]
    struct.pack_into("<q", buf, at + T0_OFFSET, t0 + shift)


Message = tuple[str, bytes]


def _publish_lean(
    target: MqttTarget,
    client_id: str,
    timeline: list[tuple[int, str, bytearray]],
    origin: int,
    online: list[Message],
    offline: list[Message],
) -> list[float]:
    """Every frame's PUBLISH packet built before the start (its device time patched in at the start), then
    one ``sendall`` per burst of due packets; waiting for room under the in-flight bound counts as lag."""
    if target.tls:
        raise SystemExit("the lean publisher speaks plain mqtt:// only; --paho-publisher for mqtts://")
    with LeanPublisher.connect(
        target.host, target.port, client_id, target.username, target.password, keepalive=60, max_inflight=1000
    ) as client:
        client.publish(online, retain=True)
        packets = [client.prepare(topic, frame) for _, topic, frame in timeline]
        shift = _start_shift(origin)
        for p in packets:
            _shift_t0(p.data, p.payload_at, shift)
        dues = [due + shift for due, _, _ in timeline]
        data = [p.data for p in packets]
        lags: list[float] = []
        i, n = 0, len(dues)
        while i < n:
            now = time.time_ns()
            if dues[i] > now:
                time.sleep((dues[i] - now) / 1e9)
                continue
            j = bisect.bisect_right(dues, now, i)
            client.send(data[i:j])
            lags.append((time.time_ns() - dues[j - 1]) / 1e9)
            i = j
        client.wait_acknowledged(60)
        client.publish(offline, retain=True)
    return lags


def _publish_paho(
    target: MqttTarget,
    client_id: str,
    timeline: list[tuple[int, str, bytearray]],
    origin: int,
    online: list[Message],
    offline: list[Message],
) -> list[float]:
    """paho-mqtt's client, one ``publish`` call per frame (the first publisher; ``--paho-publisher``)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(target.username, target.password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(target.host, target.port, keepalive=60)
    client.loop_start()
    for topic, payload in online:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
    shift = _start_shift(origin)
    for _, _, buf in timeline:
        _shift_t0(buf, 0, shift)
    lags: list[float] = []
    i, n = 0, len(timeline)
    last = None
    while i < n:
        now = time.time_ns()
        due = timeline[i][0] + shift
        if due > now:
            time.sleep((due - now) / 1e9)
            continue
        while i < n and timeline[i][0] + shift <= now:
            last = client.publish(timeline[i][1], bytes(timeline[i][2]), qos=1)
            i += 1
        lags.append((time.time_ns() - (timeline[i - 1][0] + shift)) / 1e9)
    if last is not None:
        last.wait_for_publish(60)
    for topic, payload in offline:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return lags


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
    base: dict[str, str], mqtt_url: str, db: Path, amqp: str | None, slot: str | None, state: Path
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("TWITCHWATCH_")}
    env.update(
        TWITCHWATCH_MQTT_URL=mqtt_url,
        TWITCHWATCH_STORE_URL=f"sqlite:///{db}",
        TWITCHWATCH_USER="bench00",
        # The run's own state directory: a journal left by another run under the same client id would be
        # replayed into this one.
        TWITCHWATCH_STATE_DIR=str(state),
    )
    if amqp:
        env.update(TWITCHWATCH_AMQP_URL=amqp, TWITCHWATCH_AMQP_PARTITIONS=str(PARTITIONS))
    if slot:
        env["TWITCHWATCH_AMQP_SLOT"] = slot
    return env


def run_path(
    path: str,
    streams: int,
    seconds: float,
    signal: str,
    workdir: Path,
    publishers: int,
    profile_dir: Path | None = None,
    paho_publisher: bool = False,
    span_s: float = FRAME_SPAN_S,
) -> Result:
    """One row; ``profile_dir``: each worker runs under cProfile (its event loop's thread), the profile
    written there when it stops; ``paho_publisher``: the publishers publish with paho-mqtt."""
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
            env = _worker_env(dict(os.environ), mqtt_url, db, amqp, slot, workdir / "state")
            profiled = (
                ["-m", "cProfile", "-o", str(profile_dir / f"{path}-{streams}-w{i}.prof")]
                if profile_dir
                else []
            )
            with (workdir / f"worker{i}.log").open("wb") as err:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            *profiled,
                            "-m",
                            "twitchwatch",
                            "process",
                            "--client-id",
                            f"bench-worker-{i}",
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        pubs = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.throughput", "--publish", mqtt_url]
                + [str(a) for a in (streams, users, seconds, signal, part, publishers, span_s)]
                + (["--paho"] if paho_publisher else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for part in range(publishers)
        ]
        for pub in pubs:  # frames made and encoded, statuses published
            assert pub.stdout is not None
            if pub.stdout.readline().strip() != b"ready":
                raise RuntimeError("a publisher process failed before publishing")
        time.sleep(
            8 if rabbit else 2
        )  # the workers' imports, connections; RabbitMQ: the standby subscriptions
        cpu0 = [cpu_s(p.pid) for p in procs]
        b0 = tree_cpu_s(broker_pid)
        p0 = [cpu_s(p.pid) for p in pubs]
        t0 = time.time()
        for pub in pubs:
            assert pub.stdin is not None
            pub.stdin.write(f"{round(t0 * 1e9)}\n".encode())
            pub.stdin.close()
        published: list[float] = []
        stored: list[float] = []
        events = asyncio.run(_watch(mqtt_url, db, t0 + seconds + 5, published, stored))
        # The publishers' own CPU since the start, from their exit status (os.wait4).
        reports = []
        pub_cpu = 0.0
        for pub, before in zip(pubs, p0, strict=True):
            assert pub.stdout is not None
            reports.append(json.loads(pub.stdout.read() or b'{"lag_p99": NaN}'))
            _, status, usage = os.wait4(pub.pid, 0)
            pub.returncode = os.waitstatus_to_exitcode(status)
            pub_cpu += usage.ru_utime + usage.ru_stime - before
        wall = time.time() - t0
        worker_cores = sum(cpu_s(p.pid) - c for p, c in zip(procs, cpu0, strict=True)) / wall
        broker_cores = (tree_cpu_s(broker_pid) - b0) / wall
        drained = _drained(server) if isinstance(server, RabbitServer) else True
        channels = streams * _spec(signal).channels * _lanes(signal)
        return Result(
            path,
            streams,
            channels,
            workers_n,
            worker_cores,
            broker_cores,
            pub_cpu / wall,
            published,
            stored,
            events,
            drained,
            max(float(r["lag_p99"]) for r in reports),
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


def profile_worker(
    streams: int,
    seconds: float,
    signal: str,
    top: int = 14,
    sort: str = "tottime",
    backlogs: Sequence[int] = (0, 1, 2, 4),
    span_s: float = FRAME_SPAN_S,
) -> None:
    """The worker's own CPU per frame, without broker or network: the frames ``streams`` wearables send over
    ``seconds`` (made first, not measured), handed to the worker in arrival order (a SQLite store in a
    temp dir, flushed at the end), timed with process CPU time, then again under cProfile for where it
    goes. ``backlogs``: frames per stream in each batch handed to ``Worker.handle_many`` — what a worker
    that is that many frames behind takes from its queue at once; 0: one ``Worker.handle`` call per
    message, the baseline (a worker that keeps up). Every backlog must store the same events."""
    import cProfile
    import pstats

    from twitchwatch.collector.frames import decode
    from twitchwatch.processing.detector import StreamingDetector
    from twitchwatch.processing.store import EventQuery
    from twitchwatch.processing.store.sqlite import SQLiteStore
    from twitchwatch.processing.worker import Worker

    lanes = _lanes(signal)
    wearables = _wearables(streams, 1, lanes)
    start_ns = time.time_ns() - 3600 * 10**9  # an hour ago: not live, so no lag warnings
    statuses = [status_message(w, signal, "s1") for w in wearables]
    made = [wearable_frames(w, signal, start_ns, seconds, span_s) for w in wearables]
    messages = list(statuses)
    for k in range(len(made[0][1])):  # in arrival order: every wearable's frame k, then k + 1
        messages += [(topic, frames[k]) for topic, frames in made]
    frames = len(messages) - streams

    def run(backlog: int) -> tuple[Worker, list[tuple[object, ...]]]:
        with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "events.db") as store:
            worker = Worker(parse_mqtt_url("mqtt://127.0.0.1:1"), store, user=wearables[0].user)
            if backlog == 0:
                for topic, payload in messages:
                    worker.handle(topic, payload)
            else:
                size = backlog * streams
                for at in range(0, len(messages), size):
                    worker.handle_many([(t, p, False) for t, p in messages[at : at + size]])
            asyncio.run(worker.drain())
            query = EventQuery(user=wearables[0].user)
            rows = [dataclasses.astuple(e) for e in store.events(query)]
            rows += [dataclasses.astuple(r) for r in store.rates(query)]
            return worker, sorted(rows, key=repr)

    baseline = 0.0
    reference: list[tuple[object, ...]] | None = None
    for backlog in backlogs:
        cpu0 = time.process_time()
        worker, stored = run(backlog)
        cpu = time.process_time() - cpu0
        baseline = baseline or cpu
        reference = stored if reference is None else reference
        channels = streams * _spec(signal).channels * lanes
        label = "one message at a time" if backlog == 0 else f"backlog of {backlog} frame(s) per stream"
        print(
            f"worker alone, {label}: {streams} {signal} streams ({channels} channels), {seconds:.0f} s, "
            f"{frames} frames, {worker.stats.events_stored} events"
            f"{'' if stored == reference else ' (NOT the same events)'}: {cpu:.2f} s CPU, "
            f"{cpu / frames * 1e6:.0f} µs per frame (x{cpu / baseline:.2f}) -> "
            f"{channels * seconds / cpu:.0f} channels per core in real time",
            flush=True,
        )
    # What the detectors alone cost on the same frames: one per stream, as the worker runs them, and
    # every stream as a lane of one detector fed one (samples × streams) array per tick — what batching
    # frames across streams (issue 15 item 3, not done) could reach. Decoding is not timed.
    chunks = [decode(payload).values() for _, frames_of in made for payload in frames_of]
    per_stream = len(made[0][1])
    spec = _spec(signal)
    # The accelerometer's engine takes its axes together as one lane: it has no lanes to batch streams into.
    batchable = not signal.startswith("acc")
    for label, batched in (("one detector per stream", False), ("all streams as lanes of one", True)):
        if batched and not batchable:
            continue
        if batched:
            ticks = [
                np.hstack([chunks[w * per_stream + k] for w in range(streams)]) for k in range(per_stream)
            ]
            detectors = [StreamingDetector(spec.signal, spec.sample_rate, streams * spec.channels * lanes)]
        else:
            ticks = chunks
            detectors = [
                StreamingDetector(spec.signal, spec.sample_rate, spec.channels * lanes)
                for _ in range(streams)
            ]
        found = 0
        cpu0 = time.process_time()
        for i, chunk in enumerate(ticks):
            found += len(detectors[i // per_stream if not batched else 0].process(chunk))
        cpu = time.process_time() - cpu0
        print(f"detectors alone, {label}: {cpu / frames * 1e6:.0f} µs per frame ({found} detections)")
    profiler = cProfile.Profile()
    profiler.runcall(run, backlogs[-1])
    stats = pstats.Stats(profiler)
    stats.sort_stats(sort).print_stats(top)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--publish"]:
        url, streams, users, seconds, signal, part, parts, span, *paho = argv[1:]
        publish_main(
            url,
            int(streams),
            int(users),
            float(seconds),
            signal,
            int(part),
            int(parts),
            paho == ["--paho"],
            float(span),
        )
        return
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--streams", type=int, nargs="+", default=[48, 96])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--signal", choices=SIGNALS, default="emg", help="acc: 100 Hz; acc50: 50 Hz")
    parser.add_argument(
        "--frame-span",
        type=float,
        default=FRAME_SPAN_S,
        metavar="S",
        help="seconds of signal a frame spans at most, as the collector's [collect] frame_span",
    )
    parser.add_argument("--paths", nargs="+", default=["mosquitto", "rabbit1", "rabbit2"])
    parser.add_argument(
        "--publishers", type=int, default=2, help="publisher processes (frames made beforehand)"
    )
    parser.add_argument(
        "--paho-publisher",
        action="store_true",
        help="publish with paho-mqtt instead of the lean wire-level client (bench/mqtt_wire.py), to compare",
    )
    parser.add_argument(
        "--profile-workers", type=Path, metavar="DIR", help="run the workers under cProfile, profiles to DIR"
    )
    parser.add_argument(
        "--profile", action="store_true", help="the worker alone, no broker: CPU per frame and where"
    )
    parser.add_argument("--sort", default="tottime", help="--profile: pstats order (tottime, cumulative)")
    parser.add_argument("--top", type=int, default=14, help="--profile: functions listed")
    parser.add_argument(
        "--backlogs",
        type=int,
        nargs="+",
        default=[0, 1, 2, 4],
        help="--profile: frames per stream per batch (0: one message at a time, the baseline); "
        "the last one is profiled",
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile_worker(
            args.streams[0], args.seconds, args.signal, args.top, args.sort, args.backlogs, args.frame_span
        )
        return
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"{args.signal} in frames of {_chunk(args.signal, args.frame_span)} samples, "
        f"{args.seconds:.0f} s per run"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="twitchwatch-throughput-") as tmp:
        for streams in args.streams:
            for path in args.paths:
                result = run_path(
                    path,
                    streams,
                    args.seconds,
                    args.signal,
                    Path(tmp) / f"{path}-{streams}",
                    args.publishers,
                    args.profile_workers,
                    args.paho_publisher,
                    args.frame_span,
                )
                print(result.row(), flush=True)


if __name__ == "__main__":
    main()
