"""Scale-out on a real RabbitMQ (tests/harness/rabbitmq.py): twenty simulated wearables of twenty people,
two ``twitchwatch process`` workers on the partition queues, one of them SIGKILLed mid-stream, or its
connection closed mid-stream; a broker restart with frames queued and unacknowledged; a worker with little
credit; a lone wearer whose device falls silent without an offline status.

What counts: every event a worker that is never interrupted stores from the same frames (the same pipeline
fed by hand, ``_reference``) is stored exactly once — one stored event within ±0.5 s, never two, none
beside them — and those are the injected twitches (the detector may miss one in a stream's first seconds,
as tests/test_e2e.py allows). A worker taking partitions over starts its detectors afresh on redelivered
frames that reach ``processing.amqp.LEAD_NS`` back into stored time, so its blind first second loses
nothing; the twitches it finds again there are looked up in the store and not stored twice (without that
look-up this test fails with duplicates).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.mqtt_wire import LeanPublisher
from tests.harness.rabbitmq import RabbitServer
from tests.test_worker_rest import REST_ONLY
from tests.test_worker_rest import T0 as REST_T0
from tests.test_worker_rest import USER as REST_USER
from tests.test_worker_rest import status as rest_status
from tests.test_worker_rest import stream as rest_stream
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.processing.amqp import UNASSIGNED, AmqpSource, partition_of, queue_name, setup_broker
from twitchwatch.processing.events import TWITCH_KINDS, EventKind
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker as ProcessWorker

PARTITIONS = 8
MUSCLE = "calf_left"
# Minute tallies vs stored twitches of a wearer whose partition moved (see the check).
MAX_TALLY_OFF_AT_MOVE = 8  # measured 0-5 of ~27 over repeated runs
MAX_SECONDS_OVER_AT_MOVE = 6.0  # measured up to 4.1 s of 40
MAX_MISSED = 2  # as tests/test_e2e.py: the detector's first seconds of a stream
MATCH_S = 0.5
SHAPED = (*TWITCH_KINDS, EventKind.DURING_MOVEMENT)


class Worker:
    """``twitchwatch process`` on the harness broker, as an operator runs it: a process of its own."""

    def __init__(self, rabbit: RabbitServer, store_url: str, slot: str, log: Path, partitions: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
        env.update(
            TWITCHWATCH_MQTT_URL=rabbit.mqtt_url,
            TWITCHWATCH_AMQP_URL=rabbit.amqp_url,
            TWITCHWATCH_AMQP_PARTITIONS=str(partitions),
            TWITCHWATCH_AMQP_SLOT=slot,
            TWITCHWATCH_STORE_URL=store_url,
            TWITCHWATCH_STATE_DIR=str(log.parent / "state"),  # never the developer's
        )
        self.log = log
        self.name = f"worker-{slot.replace('/', 'of')}"
        with log.open("wb") as err:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "twitchwatch", "process", "--client-id", self.name],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def stats(self) -> dict[str, int]:
        """The counters the worker logs when it stops."""
        m = re.search(r"worker stopped: WorkerStats\((.*)\)", self.log.read_text(errors="replace"))
        assert m, self.log.read_text(errors="replace")[-3000:]
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        if w.process.poll() is None:
            w.process.kill()
            w.process.wait()


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.5)


def _plans(users: list[str], seconds: float, speed: float, seed: int) -> list[SimulationPlan]:
    start = dt.datetime.now().astimezone().replace(microsecond=0) - dt.timedelta(hours=1)
    return [
        SimulationPlan((MUSCLE,), "emg", start, seconds, speed, 40.0, seed + i, user, chunk=100)
        for i, user in enumerate(users)
    ]


Recorded = list[tuple[str, bytes]]  # (topic, payload) as a subscriber saw them, in order


async def _simulate(
    rabbit: RabbitServer, plans: list[SimulationPlan]
) -> tuple[dict[str, list[float]], Recorded]:
    """Every plan at once (one wearable per person): each person's injected twitch starts (s), and every
    frame and status as an MQTT subscriber on the same broker received them."""
    target = parse_mqtt_url(rabbit.mqtt_url)
    truths = {p.user: io.StringIO() for p in plans}
    seen: Recorded = []
    frames = 0
    async with target.client(f"recorder-{plans[0].seed}") as listener:
        await listener.subscribe("twitchwatch/+/+/raw/+", qos=1)
        await listener.subscribe("twitchwatch/+/+/status", qos=1)

        async def record() -> None:
            async for m in listener.messages:
                assert isinstance(m.payload, bytes)
                seen.append((str(m.topic), m.payload))

        recorder = asyncio.create_task(record())
        stats = await asyncio.gather(*(run_simulation(p, target, truths[p.user]) for p in plans))
        frames = sum(s.frames for s in stats)
        deadline = time.monotonic() + 30
        while sum("/raw/" in t for t, _ in seen) < frames and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # polling what the recorder has seen, as the other waits here do
        recorder.cancel()
    assert sum("/raw/" in t for t, _ in seen) == frames
    truth = {
        user: [float(json.loads(line)["start"]) for line in t.getvalue().splitlines()]
        for user, t in truths.items()
    }
    return truth, seen


def _reference(recorded: Recorded, db: Path) -> None:
    """What one worker that is never interrupted stores from the same frames: the same pipeline, fed by
    hand."""
    with SQLiteStore(db) as store:
        worker = ProcessWorker(parse_mqtt_url("mqtt://127.0.0.1:1"), store, user="+")
        for topic, payload in recorded:
            worker.handle(topic, payload)
        asyncio.run(worker.drain())


def _check_exactly_once(
    db: Path,
    reference: Path,
    truth: dict[str, list[float]],
    plans: list[SimulationPlan],
    monitored_s: float,
    moved: frozenset[str] = frozenset(),
) -> None:
    """Every event an uninterrupted worker stores is stored exactly once (±0.5 s), nothing else is; and those
    events are the injected twitches (the detector may miss one in a stream's first seconds, as always)."""
    with SQLiteStore(db) as store, SQLiteStore(reference) as ref:
        for plan in plans:
            query = EventQuery(user=plan.user, muscle=MUSCLE, kinds=SHAPED)
            starts = [e.start_ns / 1e9 for e in store.events(query)]
            expected = [e.start_ns / 1e9 for e in ref.events(query)]
            injected = truth[plan.user]
            assert len(injected) > 10
            found = [sum(abs(s - t) <= MATCH_S for s in starts) for t in expected]
            first = plan.start.timestamp()
            twice = [t - first for t, n in zip(expected, found, strict=True) if n > 1]
            lost = [t - first for t, n in zip(expected, found, strict=True) if n == 0]
            stray = [s - first for s in starts if not any(abs(s - t) <= MATCH_S for t in expected)]
            assert not twice, (plan.user, "stored twice (s into the stream)", twice)
            assert not lost, (plan.user, "lost (s into the stream)", lost)
            assert not stray, (plan.user, "stored, not found by an uninterrupted worker", stray)
            matched = sum(any(abs(s - t) <= MATCH_S for s in starts) for t in injected)
            assert matched >= len(injected) - MAX_MISSED, (plan.user, matched, len(injected))
            # The minute rates cover the stream once. Their twitch counts agree with the stored events
            # exactly, except for a wearer whose partition moved: there they may differ by a few around the
            # move (a known limit, docs/scaling.md: the tally the dead worker stored and the redelivered
            # twitches it had judged are reconciled only approximately).
            counted = store.events(EventQuery(user=plan.user, muscle=MUSCLE, kinds=TWITCH_KINDS))
            rates = store.rates(EventQuery(user=plan.user, muscle=MUSCLE))
            tallied = sum(r.twitches for r in rates)
            allowed = MAX_TALLY_OFF_AT_MOVE if plan.user in moved else 0
            assert abs(tallied - len(counted)) <= allowed, (plan.user, tallied, len(counted), rates)
            # The monitored time covers the stream once. Around a move it may lack what the killed worker
            # had received but not yet stored, or count a few redelivered seconds twice where the dead
            # worker's tally and the standby's meet (the same known limit, measured up to +4.1 s).
            monitored = sum(r.monitored_s for r in rates)
            over = MAX_SECONDS_OVER_AT_MOVE if plan.user in moved else 0.5
            assert monitored_s - 2.0 <= monitored <= monitored_s + over, (plan.user, monitored, rates)


def _two_workers(
    rabbitmq: RabbitServer, tmp_path: Path, workers: list[Worker], db: Path
) -> tuple[Worker, Worker]:
    """Workers a (slot 0/2) and b (1/2) on one SQLite store, once each is the active consumer of its own
    share of the partitions (a also of the unassigned queue) and stands by for the other's."""
    store_url = f"sqlite:///{db}"
    workers.append(Worker(rabbitmq, store_url, "0/2", tmp_path / "w0.log", PARTITIONS))
    workers.append(Worker(rabbitmq, store_url, "1/2", tmp_path / "w1.log", PARTITIONS))
    a, b = workers
    queues = [*(queue_name(p) for p in range(PARTITIONS)), UNASSIGNED]
    _wait(lambda: len(rabbitmq.active_consumers()) == len(queues), 60, "both workers to consume")
    active = rabbitmq.active_consumers()
    assert {q for q, tag in active.items() if tag.startswith(a.name)} == {
        *(queue_name(p) for p in range(0, PARTITIONS, 2)),
        UNASSIGNED,
    }, active
    assert {q for q, tag in active.items() if tag.startswith(b.name)} == {
        queue_name(p) for p in range(1, PARTITIONS, 2)
    }, active
    return a, b


def test_two_workers_split_the_partitions_and_one_takes_over_when_the_other_is_killed(
    rabbitmq: RabbitServer, tmp_path: Path, workers: list[Worker]
) -> None:
    users = [f"wearer{i:02d}" for i in range(20)]
    report = asyncio.run(setup_broker(rabbitmq.amqp_url, PARTITIONS, users))
    assert {u for u, _ in report.bound} == set(users)
    assert asyncio.run(setup_broker(rabbitmq.amqp_url, PARTITIONS, users)).created == ()  # idempotent
    shares = {p % 2 for p in {partition_of(u, PARTITIONS) for u in users}}
    assert shares == {0, 1}  # both workers have wearers of their own

    db = tmp_path / "events.db"
    a, b = _two_workers(rabbitmq, tmp_path, workers, db)
    queues = [*(queue_name(p) for p in range(PARTITIONS)), UNASSIGNED]

    plans = _plans(users, seconds=40, speed=2.0, seed=10)

    async def run_and_kill() -> tuple[dict[str, list[float]], Recorded]:
        sim = asyncio.create_task(_simulate(rabbitmq, plans))
        await asyncio.sleep(8)  # a third of the way in: its partitions have unacknowledged frames
        a.process.send_signal(signal.SIGKILL)
        return await sim

    truth, recorded = asyncio.run(run_and_kill())
    a.process.wait(10)
    # Every queue, the killed worker's too, now has the survivor as its active consumer.
    moved = rabbitmq.active_consumers()
    assert set(moved) == set(queues)
    assert all(tag.startswith(b.name) for tag in moved.values()), moved
    # Drained: every frame is acknowledged (stored) once the survivor ended the streams the simulator closed.
    _wait(lambda: rabbitmq.messages() == 0, 90, "every frame acknowledged")
    b.stop()
    stats = b.stats()
    assert stats["redelivered_frames"] > 0  # it took frames the killed worker had not acknowledged
    assert stats["events_already_stored"] > 0  # and found in the store what that one had stored of them
    assert stats["bad_frames"] == stats["bad_topics"] == 0
    _reference(recorded, tmp_path / "reference.db")
    killed = frozenset(u for u in users if partition_of(u, PARTITIONS) % 2 == 0)  # worker a's share
    _check_exactly_once(db, tmp_path / "reference.db", truth, plans, 40, moved=killed)


def test_a_broker_restart_loses_nothing(
    rabbitmq: RabbitServer, tmp_path: Path, workers: list[Worker]
) -> None:
    users = [f"restart{i}" for i in range(4)]
    asyncio.run(setup_broker(rabbitmq.amqp_url, PARTITIONS, users))
    db = tmp_path / "events.db"
    workers.append(Worker(rabbitmq, f"sqlite:///{db}", "0/1", tmp_path / "w.log", PARTITIONS))
    (w,) = workers
    _wait(lambda: len(rabbitmq.active_consumers()) == PARTITIONS + 1, 60, "the worker to consume")
    before = _plans(users, seconds=20, speed=2.0, seed=50)

    async def run_and_pause() -> tuple[dict[str, list[float]], Recorded]:
        sim = asyncio.create_task(_simulate(rabbitmq, before))
        await asyncio.sleep(5)
        w.process.send_signal(
            signal.SIGSTOP
        )  # frames pile up: some delivered and unacknowledged, most queued
        return await sim

    truth, recorded = asyncio.run(run_and_pause())
    assert rabbitmq.messages() > 0
    rabbitmq.restart()  # the queued frames wait on disk; the unacknowledged go back to their queues
    w.process.send_signal(signal.SIGCONT)  # it finds its connections gone and reconnects
    after = [
        SimulationPlan(
            p.muscles,
            p.signal,
            p.start + dt.timedelta(seconds=30),
            20,
            2.0,
            40.0,
            p.seed + 100,
            p.user,
            chunk=100,
        )
        for p in before
    ]
    _wait(lambda: len(rabbitmq.active_consumers()) == PARTITIONS + 1, 60, "the worker to reconnect")
    truth_after, recorded_after = asyncio.run(_simulate(rabbitmq, after))
    _wait(lambda: rabbitmq.messages() == 0, 90, "every frame acknowledged")
    w.stop()
    assert w.process.returncode == 0
    assert w.stats()["redelivered_frames"] > 0
    _reference(recorded + recorded_after, tmp_path / "reference.db")
    # Each person wore it twice, 20 s before the restart and 20 s after: 40 s monitored in all.
    _check_exactly_once(db, tmp_path / "reference.db", truth, before, 40)
    _check_exactly_once(db, tmp_path / "reference.db", truth_after, after, 40)


def test_a_worker_with_little_credit_acknowledges_every_frame(rabbitmq: RabbitServer, tmp_path: Path) -> None:
    """A worker comes to a backlog with little credit (prefetch 200 a queue, 20 s of one wearer's frames):
    it acknowledges frames one by one while deliveries keep arriving, in batches, during every
    acknowledgement it awaits. None may be lost from its list of outstanding deliveries — an
    acknowledgement round used to replace that list, dropping what arrived meanwhile (never acknowledged:
    a queue stalls once its credit is spent), or fail on it changing underneath (it did: ``deque mutated
    during iteration`` stopped the worker) — and every twitch is stored exactly once."""
    users = [f"credit{i}" for i in range(4)]
    asyncio.run(setup_broker(rabbitmq.amqp_url, PARTITIONS, users))
    plans = _plans(users, seconds=30, speed=4.0, seed=70)
    truth, recorded = asyncio.run(_simulate(rabbitmq, plans))  # no worker yet: the frames wait queued
    assert rabbitmq.messages() > 0
    db = tmp_path / "events.db"

    async def consume() -> ProcessWorker:
        with SQLiteStore(db) as store:
            source = AmqpSource(rabbitmq.amqp_url, PARTITIONS, prefetch=200, ack_interval_s=0.05)
            worker = ProcessWorker(parse_mqtt_url(rabbitmq.mqtt_url), store, user="+", ingest=source)
            task = asyncio.create_task(worker.run())
            deadline = time.monotonic() + 120
            # Polling the broker's counts (rabbitmqctl, off the event loop the worker runs on).
            while time.monotonic() < deadline and not task.done():
                if await asyncio.to_thread(rabbitmq.messages) == 0:
                    break
                await asyncio.sleep(0.5)
            worker.stop()
            await asyncio.wait_for(task, 60)  # re-raises what stopped its ingest
            return worker

    worker = asyncio.run(consume())
    assert rabbitmq.messages() == 0, "frames left unacknowledged"
    assert worker.stats.rejected.get("internal", 0) == 0
    assert worker.stats.batches > 0
    _reference(recorded, tmp_path / "reference.db")
    _check_exactly_once(db, tmp_path / "reference.db", truth, plans, 30)


def test_a_lone_wearer_who_vanishes_without_an_offline_status_is_ended(
    rabbitmq: RabbitServer, tmp_path: Path
) -> None:
    """One wearer, the only one this worker serves, whose device stops without an offline status (its
    battery died, its collector lost power before its will could be set): no frame of any stream comes
    any more. The worker must still end the stream after ``idle_ns`` — store the twitch its detector held
    in the last frame and acknowledge the last frames — while it runs, not only when it is stopped. The
    ingest clock used to advance only with frames, so here it never did: the last frames stayed
    unacknowledged and the twitch unstored until the worker stopped."""
    user = "vanished"
    asyncio.run(setup_broker(rabbitmq.amqp_url, PARTITIONS, [user]))
    leg = rest_stream("leg", "emg", "emg", REST_ONLY, 5)
    x = leg.x[:20_000].copy()  # 20 s, with a twitch in the last frame: only the stream's end releases it
    x[19_950:19_960, 0] += 30 * float(np.std(x[:10_000])) * np.hanning(10)
    leg = dataclasses.replace(leg, x=x)
    topic = f"twitchwatch/{REST_USER}/leg/status"
    messages = [(topic, rest_status([leg], {"emg": MUSCLE}))]
    messages += [(t, p) for _, t, p in leg.frames()]
    messages = [(m[0].replace(f"/{REST_USER}/", f"/{user}/", 1), m[1]) for m in messages]
    reference = tmp_path / "reference.db"
    _reference(messages, reference)
    with SQLiteStore(reference) as ref:
        expected = [e.start_ns for e in ref.events(EventQuery(user=user, kinds=SHAPED))]
    assert any(t >= REST_T0 + 19_900_000_000 for t in expected), "the last frame's twitch is an event"
    target = parse_mqtt_url(rabbitmq.mqtt_url)
    with LeanPublisher.connect(
        target.host, target.port, "vanishing", target.username, target.password
    ) as pub:
        pub.publish(messages, timeout=60)
    db = tmp_path / "events.db"

    async def consume() -> tuple[list[int], int]:
        with SQLiteStore(db) as store, SQLiteStore(db) as reader:
            source = AmqpSource(rabbitmq.amqp_url, PARTITIONS, ack_interval_s=0.2, idle_ns=2_000_000_000)
            worker = ProcessWorker(parse_mqtt_url(rabbitmq.mqtt_url), store, user="+", ingest=source)
            task = asyncio.create_task(worker.run())
            deadline = time.monotonic() + 60
            stored: list[int] = []
            left = -1
            # While it runs: the broker's counts (rabbitmqctl) lag by seconds, so both must hold.
            while time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.5)
                stored = [e.start_ns for e in reader.events(EventQuery(user=user, kinds=SHAPED))]
                left = await asyncio.to_thread(rabbitmq.messages)
                if len(stored) >= len(expected) and left == 0:
                    break
            worker.stop()
            await asyncio.wait_for(task, 60)
            return stored, left

    stored, left = asyncio.run(consume())
    assert len(stored) == len(expected), "the last frame's twitch was not stored while the worker ran"
    assert all(abs(s - e) <= MATCH_S * 1e9 for s, e in zip(sorted(stored), sorted(expected), strict=True))
    assert left == 0, f"{left} frames still unacknowledged a minute after the device fell silent"


def test_a_worker_whose_connection_drops_leaves_its_partitions_to_the_standby_cleanly(
    rabbitmq: RabbitServer, tmp_path: Path, workers: list[Worker]
) -> None:
    """Worker a's connection to the broker is closed mid-stream (a network blip): its partitions go to b, the
    standby, with a's unacknowledged frames; a reconnects as standby. What a still holds of those wearers
    (their detectors, the twitches not yet stored, the minute being counted) came from frames b now
    processes again, so a must drop it, not finish it: finished, a's partial minute tallies (18 s of 35)
    overwrote b's complete ones (``Worker.detach_streams``). Every twitch stored exactly once, every
    minute counted once."""
    users = [f"blip{i:02d}" for i in range(20)]
    asyncio.run(setup_broker(rabbitmq.amqp_url, PARTITIONS, users))
    db = tmp_path / "events.db"
    a, b = _two_workers(rabbitmq, tmp_path, workers, db)
    plans = _plans(users, seconds=40, speed=2.0, seed=90)

    async def run_and_cut() -> tuple[dict[str, list[float]], Recorded]:
        sim = asyncio.create_task(_simulate(rabbitmq, plans))
        await asyncio.sleep(8)
        assert await asyncio.to_thread(rabbitmq.close_connections, a.name, "network blip (test)") == 1
        return await sim

    truth, recorded = asyncio.run(run_and_cut())
    cut = frozenset(u for u in users if partition_of(u, PARTITIONS) % 2 == 0)  # a's share
    _wait(lambda: rabbitmq.messages() == 0, 90, "every frame acknowledged")
    moved = rabbitmq.active_consumers()
    assert all(tag.startswith(b.name) for tag in moved.values()), moved  # a came back as standby
    # a hears nothing of its wearers any more: it leaves them to b (10 s on), without writing a thing.
    _wait(lambda: a.log.read_text().count("left to the worker") == len(cut), 60, "a to hand its streams over")
    b.stop()  # b first: a stopping after it must not write over b's minutes either
    a.stop()
    assert a.stats()["streams_handed_over"] == len(cut)
    assert b.stats()["redelivered_frames"] > 0
    _reference(recorded, tmp_path / "reference.db")
    _check_exactly_once(db, tmp_path / "reference.db", truth, plans, 40, moved=cut)
