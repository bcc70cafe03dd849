"""A worker that has fallen behind takes its backlog in batches (``Worker.handle_many``): each stream's frames
of a batch go through its detector in one call. What it stores must not depend on that: the same messages,
handled one at a time or in batches of any size, give the same events, minute rates and counters — with
the things that could see a stream between two of its frames in the middle of the batches (a status that
renames a muscle, a gap, a duplicate, a bad frame, a felt mark, a change of sample rate, a device going
offline). A real SQLite file; the signals are ``collector.synth``'s physiology (twitches, a contraction, a
walk on the accelerometer that vetoes the muscle)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.mqtt_wire import LeanPublisher
from bench.throughput import Wearable, status_message, wearable_frames
from tests.harness.mosquitto import MosquittoServer
from tests.test_worker_rest import (
    CONTRACTING,
    REST_ONLY,
    SEED,
    T0,
    USER,
    WALKING,
    status,
    stream,
    until,
)
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

S = 1_000_000_000
Message = tuple[str, bytes]


def _messages() -> list[Message]:
    """Two wearables' statuses and frames in time order, with what happens to wearables on the way."""
    arm = [
        stream("arm", "emg", "emg", CONTRACTING, SEED),
        stream("arm", "acc", "acc", WALKING, SEED),
    ]
    leg = [stream("leg", "emg", "emg", REST_ONLY, 3)]
    # A twitch in the last frame before the gap: only the end of its stream (the gap) releases it.
    x = leg[0].x
    x[39_950:39_960, 0] += 30 * float(np.std(x[:30_000])) * np.hanning(10)
    arm_muscles = {"emg": "forearm", "acc": "forearm"}
    timed: list[tuple[int, int, str, bytes]] = []  # (time, order at that time, topic, payload)
    for k, s in enumerate([*arm, *leg]):
        timed += [(t, k, topic, payload) for t, topic, payload in s.frames()]
    timed.sort()
    out: list[Message] = [
        (f"twitchwatch/{USER}/arm/status", status(arm, arm_muscles)),
        (f"twitchwatch/{USER}/leg/status", status(leg, {"emg": "calf"})),
    ]
    leg_emg = f"twitchwatch/{USER}/leg/raw/emg"
    arm_emg = f"twitchwatch/{USER}/arm/raw/emg"
    for t, _, topic, payload in timed:
        at = (t - T0) / S
        if topic == leg_emg and 40.0 <= at < 40.3:
            continue  # three frames lost: a gap, the stream restarts
        out.append((topic, payload))
        if topic == arm_emg and 20.0 <= at < 20.1:
            out.append((topic, payload))  # delivered twice (QoS 1)
            out.append((topic, b"\x00garbage"))  # and a frame that cannot be decoded
        if topic == leg_emg and 60.0 <= at < 60.1:
            out.append((f"twitchwatch/{USER}/leg/status", status(leg, {"emg": "calf_left"})))
        if topic == leg_emg and 70.0 <= at < 70.1:
            felt = {"muscle": "calf_left", "at": (t - 2 * S) / S}
            out.append((f"twitchwatch/{USER}/felt", json.dumps(felt).encode()))
    out += _faster_leg(T0 + 160 * S)  # the same device, now at 2 kHz: a new stream
    offline = DeviceStatus("offline", "sim", "live", "run1", None, {}).to_json()
    out.append((f"twitchwatch/{USER}/arm/status", offline))
    out += _faster_leg(T0 + 175 * S, first=150)
    return out


def _faster_leg(t0: int, first: int = 0) -> list[Message]:
    """15 s of the leg's EMG at 2 kHz (a twitch a second), as 100-ms frames."""
    rng = np.random.default_rng(first)
    x = rng.normal(0, 3.0, (30_000, 1))
    for at in range(3000, 30_000, 2000):
        x[at : at + 20, 0] += 150 * np.hanning(20)
    out = []
    for i in range(150):
        raw = np.round(x[i * 200 : (i + 1) * 200] / 0.5).astype(np.int16)
        frame = Frame(0, first + i, t0 + i * S // 10, 2000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
        out.append((f"twitchwatch/{USER}/leg/raw/emg", encode(frame)))
    return out


def _worker(path: Path) -> Worker:
    return Worker(MqttTarget("127.0.0.1", 1), SQLiteStore(path), user=USER, client_id="batch-test")


@dataclass(frozen=True)
class Outcome:
    events: list[tuple[str, str, str, str, int, int, float, float]]
    rates: list[tuple[str, str, int, int, float, float | None]]
    journal: list[tuple[str | None, int]]
    counters: tuple[object, ...]


async def _outcome(worker: Worker) -> Outcome:
    await worker.drain()
    query = EventQuery(user=USER)
    stats = worker.stats
    return Outcome(
        sorted(
            (e.muscle, e.device, e.stream, e.kind.value, e.start_ns, e.end_ns, e.amplitude, e.confidence)
            for e in worker.store.events(query)
        ),
        sorted(
            (r.muscle, r.device, r.minute_ns, r.twitches, r.monitored_s, r.rest_s)
            for r in worker.store.rates(query)
        ),
        sorted((e.muscle, e.time_ns) for e in worker.store.journal_entries(user=USER)),
        (
            stats.frames,
            stats.samples,
            stats.gaps,
            stats.missing_frames,
            stats.duplicates,
            stats.bad_frames,
            stats.events_detected,
            stats.events_stored,
            stats.vetoes,
            stats.twitches_retracted,
            dict(stats.rejected),
        ),
    )


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return _messages()


async def test_the_messages_exercise_what_a_batch_must_respect(
    tmp_path: Path, messages: list[Message]
) -> None:
    """The control run sees twitches on every muscle, vetoes, a gap, a duplicate, a bad frame, a felt mark
    and the renamed muscle: otherwise the comparison below would prove less than it says."""
    worker = _worker(tmp_path / "one.db")
    for topic, payload in messages:
        worker.handle(topic, payload)
    outcome = await _outcome(worker)
    muscles = {e[0] for e in outcome.events}
    assert {"forearm", "calf", "calf_left"} <= muscles
    assert worker.stats.vetoes > 0
    assert worker.stats.gaps >= 1
    assert worker.stats.duplicates >= 1
    assert worker.stats.bad_frames == 1
    assert outcome.journal
    assert [e for e in outcome.events if e[1] == "leg" and 39.9 <= (e[4] - T0) / S < 40.0]  # before the gap


@pytest.mark.parametrize("size", [2, 7, 64, 1000, 100_000])
async def test_batches_of_any_size_store_what_one_message_at_a_time_stores(
    tmp_path: Path, messages: list[Message], size: int
) -> None:
    one = _worker(tmp_path / "one.db")
    for topic, payload in messages:
        one.handle(topic, payload)
    batched = _worker(tmp_path / "batched.db")
    receipts = []
    for at in range(0, len(messages), size):
        receipts += batched.handle_many([(t, p, False) for t, p in messages[at : at + size]])
    assert len(receipts) == len(messages)
    assert await _outcome(batched) == await _outcome(one)


@pytest.mark.parametrize("size", [2, 4])
async def test_a_veto_starting_exactly_at_the_guard_past_a_twitch_is_seen_however_frames_come(
    tmp_path: Path, size: int
) -> None:
    """Two simulated 50-Hz accelerometers in 100-ms frames (the collector's motion framing) whose twitch is
    followed, exactly 100 ms (the rest gate's guard ahead of movement) after its end, by a train of
    transients. One message at a time, the gate used to answer as soon as the stream had settled up to
    end + guard, before the train (starting right there) was known: the twitch was counted; in batches it
    was vetoed. Settled past end + guard, both veto it."""
    wearables = [Wearable("bench00", f"sim-m00x{i}", (f"m00x{i}c0",), (i,)) for i in (359, 466)]
    messages = [status_message(w, "acc50", "s1") for w in wearables]
    made = [wearable_frames(w, "acc50", T0, 20.0, 0.1) for w in wearables]
    for k in range(len(made[0][1])):
        messages += [(topic, frames[k]) for topic, frames in made]

    async def stored(worker: Worker) -> list[tuple[str, str, int]]:
        await worker.drain()
        rows = worker.store.events(EventQuery(user="bench00"))
        return sorted((e.muscle, e.kind.value, e.start_ns - T0) for e in rows)

    one = Worker(MqttTarget("127.0.0.1", 1), SQLiteStore(tmp_path / "one.db"), user="bench00")
    for topic, payload in messages:
        one.handle(topic, payload)
    batched = Worker(MqttTarget("127.0.0.1", 1), SQLiteStore(tmp_path / "batched.db"), user="bench00")
    for at in range(0, len(messages), size * len(wearables)):
        batched.handle_many([(t, p, False) for t, p in messages[at : at + size * len(wearables)]])
    expected = await stored(batched)
    assert [e for e in expected if e[1] == "during_movement"], "the case this test is about"
    assert await stored(one) == expected


async def test_a_batch_gives_each_message_the_receipt_handle_gives_it(
    tmp_path: Path, messages: list[Message]
) -> None:
    """The AMQP source acknowledges each delivery by its receipt (its stream and frame end)."""
    one = _worker(tmp_path / "one.db")
    expected = [one.handle(t, p) for t, p in messages[:500]]
    batched = _worker(tmp_path / "batched.db")
    assert batched.handle_many([(t, p, False) for t, p in messages[:500]]) == expected


def _publish_and_wait(target: MqttTarget, messages: list[Message]) -> None:
    """Publish at QoS 1 and wait until the broker has acknowledged every message, blocking the caller's
    event loop all the while. The bench's lean publisher, whose waits end in an error naming what is still
    unacknowledged: a paho publisher on its own network thread once spent five minutes on 2,500 messages
    in CI, and the test hung on it instead of failing."""
    with LeanPublisher.connect(
        target.host, target.port, "batch-publisher", target.username, target.password
    ) as publisher:
        publisher.publish(messages, timeout=60)


@pytest.mark.mosquitto
async def test_a_worker_behind_gathers_its_backlog_from_the_socket(
    tmp_path: Path, messages: list[Message], mosquitto: MosquittoServer
) -> None:
    """A worker that falls behind — here its event loop is blocked while frames keep coming — finds them
    waiting in its socket. paho reads one message per turn of the event loop; the reader lets the loop
    turn while messages keep arriving and takes them as one batch (``largest_batch``), instead of handling
    them one or two at a time, and stores what a worker handling them one at a time stores."""
    backlog = messages[:2500]
    target = parse_mqtt_url(mosquitto.url)
    worker = Worker(target, SQLiteStore(tmp_path / "live.db"), user=USER, client_id="batch-live")
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.connected.wait(), 15)
    _publish_and_wait(target, backlog)  # blocks the event loop, the worker's too, meanwhile
    expected_frames = sum(1 for t, _ in backlog if "/raw/" in t) - 2  # one duplicate, one undecodable
    await until(lambda: worker.stats.frames >= expected_frames, 60)
    worker.stop()
    await asyncio.wait_for(task, 60)
    assert worker.stats.frames == expected_frames
    assert worker.stats.largest_batch >= 100, worker.stats

    one = _worker(tmp_path / "one.db")
    for topic, payload in backlog:
        one.handle(topic, payload)
    control = await _outcome(one)
    stored = EventQuery(user=USER)
    assert (
        sorted(
            (e.muscle, e.device, e.stream, e.kind.value, e.start_ns, e.end_ns, e.amplitude, e.confidence)
            for e in worker.store.events(stored)
        )
        == control.events
    )
