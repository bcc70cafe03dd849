"""Counting at rest in the worker: a real Mosquitto (the harness's), a real SQLite file and InfluxDB.

Signals come from ``collector.synth``'s physiology: EMG with fasciculations (24 dB) and voluntary
contractions, accelerometers with walking bouts; seeds are picked so a walk and a contraction lie inside
the recording, apart. The truth says where they are; the detector finds them to within a fraction of a
second, so the checks allow ``EDGE_S`` at each end of a veto.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from tests.harness.mosquitto import MosquittoServer
from tests.test_bursts import tremor
from tests.test_recordings import add_potential
from twitchwatch.collector import synth
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.events import TWITCH_KINDS, EventKind, TwitchEvent
from twitchwatch.processing.rest import GateParams
from twitchwatch.processing.store import EventQuery, EventStore
from twitchwatch.processing.worker import Worker

pytestmark = pytest.mark.mosquitto

USER = "rest"
T0 = 1_700_000_000_000_000_000 // 60_000_000_000 * 60_000_000_000  # a minute start
LIVE_GAP_S = 0.05  # between frames published ``live``: longer than the worker gathers a batch (GATHER_S)
S = 1_000_000_000
SECONDS = 150.0
GUARDS = GateParams()  # the worker's defaults
WARMUP_S = 1.0  # the detectors learn their noise floor for their first second: blind time
EDGE_S = 1.0  # how far the detector's view of a walk or a contraction may be from the truth's
REST_ONLY = synth.Physiology(fasciculation=20, myoclonic_jerk=0, sustained=0, artifact=0, snr_db=24)
CONTRACTING = synth.Physiology(fasciculation=20, myoclonic_jerk=0, sustained=0.5, artifact=0, snr_db=24)
WALKING = synth.Physiology(fasciculation=0, myoclonic_jerk=0, sustained=0, artifact=0, walking=0.6)
SEED = 12  # EMG: a contraction 8.8–15.4 s; accelerometer: a walk 33.5–57.6 s


@dataclass(frozen=True)
class Stream:
    device: str
    name: str
    signal: str  # emg, acc or gyro
    x: np.ndarray
    truth: list[synth.TruthEvent]

    @property
    def fs(self) -> float:
        return 1000.0 if self.signal == "emg" else 100.0

    def frames(self) -> list[tuple[int, str, bytes]]:
        """(time, topic, payload) of 100-ms frames, as a wearable sends them."""
        n = round(self.fs / 10)
        scale, unit = {
            "emg": (0.5, Unit.MICROVOLT),
            "acc": (1 / 4096, Unit.G),
            "gyro": (1 / 16, Unit.DEG_PER_S),  # the Myo's gyroscope scale
        }[self.signal]
        topic = f"twitchwatch/{USER}/{self.device}/raw/{self.name}"
        out = []
        for i in range(self.x.shape[0] // n):
            raw = np.clip(np.round(self.x[i * n : (i + 1) * n] / scale), -32768, 32767).astype(np.int16)
            t = T0 + i * 100_000_000
            out.append((t, topic, encode(Frame(0, i, t, self.fs, scale, unit, SampleType.INT16, raw))))
        return out

    def spans(self, kind: str = "sustained") -> list[tuple[float, float]]:
        return [(e.start_ns / S, e.end_ns / S) for e in self.truth if e.kind == kind]

    def twitches(self) -> list[float]:
        return [e.start_ns / S for e in self.truth if e.kind == "fasciculation"]


def stream(device: str, name: str, signal: synth.Signal, physiology: synth.Physiology, seed: int) -> Stream:
    fs = 1000.0 if signal == "emg" else 100.0
    x, truth = synth.generate(signal, fs, SECONDS, physiology, seed)
    return Stream(device, name, signal, x, truth)


def status(streams: Sequence[Stream], muscles: dict[str, str]) -> bytes:
    info = {
        s.name: StreamInfo(i, s.signal, s.fs, (muscles.get(s.name, ""),) * (1 if s.signal == "emg" else 3))
        for i, s in enumerate(streams)
    }
    return DeviceStatus("online", "sim", "live", "run1", None, info).to_json()


async def until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll the worker's counters; past ``seconds`` the asserts that follow say what is amiss."""
    deadline = time.monotonic() + seconds
    while True:
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def run_worker(
    target: MqttTarget,
    store: EventStore,
    devices: dict[str, tuple[list[Stream], dict[str, str]]],
    client_id: str,
    segment_map: Callable[[str], str | None] | None = None,
    live: tuple[float, float] | None = None,
) -> Worker:
    """Publish the devices' statuses and frames (in time order, as they would arrive) into the broker
    while the worker runs; stop it cleanly once it has processed them all. Published as fast as the broker
    takes them, the worker gets many frames a batch (as when it replays a backlog); ``live``: the frames
    between these two times (s) come one batch each, spaced as a wearable's frames reach a worker that
    keeps up — each alone through the detector, the gate and the writer."""
    worker = Worker(
        target, store, user=USER, client_id=client_id, flush_interval=0.2, segment_map=segment_map
    )
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(worker.connected.wait(), 15)
    frames = sorted(f for streams, _ in devices.values() for s in streams for f in s.frames())
    async with target.client() as client:
        for device, (streams, muscles) in devices.items():
            await client.publish(f"twitchwatch/{USER}/{device}/status", status(streams, muscles), qos=1)
        for t, topic, payload in frames:
            await client.publish(topic, payload, qos=1)
            if live is not None and live[0] <= (t - T0) / S <= live[1]:
                await asyncio.sleep(LIVE_GAP_S)
    await until(lambda: worker.stats.frames >= len(frames), 120)
    worker.stop()
    await asyncio.wait_for(task, 60)
    assert (worker.stats.frames, worker.stats.gaps, worker.stats.store_errors) == (len(frames), 0, 0)
    return worker


def inside(t: float, spans: Sequence[tuple[float, float]], before: float, after: float) -> bool:
    return any(a - before <= t <= b + after for a, b in spans)


def vetoed(
    spans: Sequence[tuple[float, float]], activity: Sequence[tuple[float, float]] = ()
) -> list[tuple[float, float]]:
    """The truth's movement and the muscle's own activity as the gate vetoes them: guards on both sides
    (activity's own ones: a contraction's first units come before it), plus the warm-up."""
    guarded = [(a - GUARDS.before_ns / S, b + GUARDS.after_ns / S) for a, b in spans]
    ahead = GUARDS.before_activity_ns / S
    guarded += [(a - ahead, b + GUARDS.after_activity_ns / S) for a, b in activity]
    return [(0.0, WARMUP_S), *guarded]


def union_s(spans: Sequence[tuple[float, float]], upto: float) -> float:
    total, reach = 0.0, 0.0
    for a, b in sorted(spans):
        a, b = max(a, reach, 0.0), min(b, upto)
        if b > a:
            total += b - a
            reach = b
    return total


def check_muscle(
    store: EventStore,
    muscle: str,
    twitches: Sequence[float],
    movement: Sequence[tuple[float, float]],
    reason: str,
    activity: Sequence[tuple[float, float]] = (),
) -> tuple[list[TwitchEvent], list[TwitchEvent]]:
    """The muscle's twitches inside the movement are stored during_movement with ``reason`` and not
    counted; its rest is its worn time less the movement and guards; its rate at rest is its counted
    twitches over its rest. Returns (counted, during movement)."""
    kinds = (*TWITCH_KINDS, EventKind.DURING_MOVEMENT)
    events = store.events(EventQuery(user=USER, muscle=muscle, kinds=kinds))
    counted = [e for e in events if e.kind.is_twitch]
    moved = [e for e in events if e.kind is EventKind.DURING_MOVEMENT]
    at = [(e.start_ns - T0) / S for e in moved]
    guards = (GUARDS.before_ns / S + EDGE_S, GUARDS.after_ns / S + EDGE_S)
    ahead = (GUARDS.before_activity_ns / S + EDGE_S, GUARDS.after_activity_ns / S + EDGE_S)
    # Every event marked lies in the movement or activity (guards included), says what it looked like and
    # why.
    assert all(inside(t, movement, *guards) or inside(t, activity, *ahead) for t in at), at
    assert all(e.reason.startswith("fasciculation: ") and reason in e.reason for e in moved), moved[:3]
    # Every twitch injected well inside the movement was found and marked, none of them counted (inside a
    # contraction the EMG detector sees activity, not the twitch).
    deep = [t for t in twitches if inside(t, movement, -EDGE_S, -EDGE_S)]
    assert len(deep) >= 3
    assert all(any(abs(t - m) < 0.05 for m in at) for t in deep), (deep, at)
    busy = [*movement, *activity]
    assert not any(inside((e.start_ns - T0) / S, busy, -EDGE_S, -EDGE_S) for e in counted)
    # Counted twitches are the ones injected outside the vetoed time (give or take the edges).
    outside = [t for t in twitches if not inside(t, vetoed(movement, activity), 0.0, 0.0)]
    assert len(outside) - 3 <= len(counted) <= len(outside) + 1, (len(counted), len(outside))
    rates = store.rates(EventQuery(user=USER, muscle=muscle))
    monitored = sum(r.monitored_s for r in rates)
    rest = sum(r.rest_s for r in rates if r.rest_s is not None)
    assert all(r.rest_s is not None and 0 <= r.rest_s <= r.monitored_s for r in rates)
    assert monitored == pytest.approx(SECONDS, abs=0.01)
    expected_vetoed = union_s(vetoed(movement, activity), SECONDS)
    assert monitored - rest == pytest.approx(expected_vetoed, abs=EDGE_S), (monitored - rest, expected_vetoed)
    assert sum(r.twitches for r in rates) == len(counted)
    return counted, moved


async def test_twitches_during_a_walk_or_a_contraction_of_the_same_device_are_marked_not_counted(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    emg = stream("leg", "emg", "emg", CONTRACTING, SEED)
    acc = stream("leg", "acc", "acc", WALKING, SEED)
    walk, contraction = acc.spans(), emg.spans()
    assert (len(walk), len(contraction)) == (1, 1)
    assert walk[0][0] > contraction[0][1] + 10
    target = parse_mqtt_url(mosquitto.url)
    worker = await run_worker(
        target, store, {"leg": ([emg, acc], {"emg": "calf_left", "acc": "calf_left"})}, "rest-1"
    )
    counted, moved = check_muscle(store, "calf_left", emg.twitches(), walk, "", contraction)
    assert any("movement" in e.reason and "(leg/acc)" in e.reason for e in moved)
    assert worker.stats.events_during_movement == len(moved)
    # The rate at rest: counted twitches per hour at rest, near the 20 a minute injected at rest.
    rates = store.rates(EventQuery(user=USER, muscle="calf_left"))
    per_hour = len(counted) * 3600 / sum(r.rest_s or 0.0 for r in rates)
    assert per_hour == pytest.approx(20 * 60, rel=0.2)


async def test_a_walk_seen_by_another_device_on_the_same_segment_vetoes_this_one(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    """The calf's EMG wearable sees no movement; a second wearable on the shin (same lower leg) walks. A
    forearm EMG on the same user is on another segment and keeps all its rest."""
    calf = stream("calfemg", "emg", "emg", REST_ONLY, SEED)
    shin = stream("shinacc", "acc", "acc", WALKING, SEED)
    arm = stream("armemg", "emg", "emg", REST_ONLY, SEED + 1)
    walk = shin.spans()
    devices = {
        "calfemg": ([calf], {"emg": "calf_left"}),
        "shinacc": ([shin], {"acc": "tibialis_anterior_left"}),
        "armemg": ([arm], {"emg": "forearm_flexor_left"}),
    }
    await run_worker(parse_mqtt_url(mosquitto.url), store, devices, "rest-2")
    _, moved = check_muscle(store, "calf_left", calf.twitches(), walk, "movement")
    assert all("(shinacc/acc)" in e.reason for e in moved)
    arm_events = store.events(EventQuery(user=USER, muscle="forearm_flexor_left"))
    assert not [e for e in arm_events if e.kind is EventKind.DURING_MOVEMENT]
    arm_rates = store.rates(EventQuery(user=USER, muscle="forearm_flexor_left"))
    lost = sum(r.monitored_s - (r.rest_s or 0.0) for r in arm_rates)
    assert lost == pytest.approx(WARMUP_S, abs=0.01)  # its detector's first second, nothing else


async def test_the_device_map_puts_a_device_on_a_segment_its_muscle_names_do_not_say(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    """A wearable whose stream is named after its channel, not a muscle, moves nothing until the device map
    says it sits on the lower leg."""
    calf = stream("calfemg", "emg", "emg", REST_ONLY, SEED)
    strap = stream("strap", "acc", "acc", WALKING, SEED)
    devices = {"calfemg": ([calf], {"emg": "calf_left"}), "strap": ([strap], {"acc": "strap.acc"})}
    segments = {"strap": "lower_leg_left"}
    await run_worker(parse_mqtt_url(mosquitto.url), store, devices, "rest-3", segments.get)
    check_muscle(store, "calf_left", calf.twitches(), strap.spans(), "(strap/acc)")


def rotating(device: str, spans: Sequence[tuple[float, float]], seed: int) -> Stream:
    """A gyroscope (°/s, 100 Hz) at rest — a zero-rate offset of a few °/s and 0.5 °/s of noise — turning
    back and forth at up to 60 °/s (1 Hz) within ``spans``, with half-second ramps."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(SECONDS * 100)) / 100
    x = np.array([2.0, -3.0, 1.0]) + rng.normal(0, 0.5, (t.size, 3))
    for a, b in spans:
        ramp = np.clip(np.minimum(t - a, b - t) / 0.5, 0.0, 1.0)
        x[:, 1] += 60 * ramp * np.sin(2 * np.pi * t)
    truth = [synth.TruthEvent("", round(a * S), round(b * S), "sustained", 60.0, "°/s") for a, b in spans]
    return Stream(device, "gyro", "gyro", x, truth)


async def test_a_gyroscope_s_rotation_vetoes_the_muscles_of_its_device(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    """An EMG wearable with a gyroscope (a Myo, a MetaMotion): the arm turning makes its muscle not
    assessable, though the EMG sees no contraction."""
    emg = stream("band", "emg", "emg", REST_ONLY, SEED)
    gyro = rotating("band", [(40.0, 60.0)], SEED)
    devices = {"band": ([emg, gyro], {"emg": "forearm_flexor_left"})}
    await run_worker(parse_mqtt_url(mosquitto.url), store, devices, "rest-4")
    _, moved = check_muscle(store, "forearm_flexor_left", emg.twitches(), gyro.spans(), "(band/gyro)")
    assert all("rotation" in e.reason for e in moved)  # "rotation up to … °/s for … s", or "… going on for …"


async def test_a_twitch_right_before_its_muscles_contraction_is_rewritten_and_never_counted(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    """A potential 0.5 s before a contraction (its first motor unit) is written as a twitch within the
    latency target, then re-written as during_movement once the contraction is seen; the minute counts only
    what stayed a twitch."""
    emg = stream("arm", "emg", "emg", CONTRACTING, SEED)
    (contraction,) = emg.spans()
    first_unit = contraction[0] - 0.5
    add_potential(emg.x[:, 0], emg.fs, first_unit, 60.0)
    target = parse_mqtt_url(mosquitto.url)
    # Frames as they come live around the potential and the contraction's start: the potential is judged
    # (provisionally) before the frames that show the contraction are in.
    worker = await run_worker(
        target,
        store,
        {"arm": ([emg], {"emg": "biceps_left"})},
        "rest-retract",
        live=(first_unit - 1.0, contraction[0] + 2.0),
    )
    kinds = (*TWITCH_KINDS, EventKind.DURING_MOVEMENT)
    events = store.events(EventQuery(user=USER, muscle="biceps_left", kinds=kinds))
    at = [e for e in events if abs((e.start_ns - T0) / S - first_unit) < 0.05]
    assert len(at) == 1, at  # one event, re-written in place
    assert at[0].kind is EventKind.DURING_MOVEMENT
    assert at[0].reason.startswith("fasciculation: "), at[0].reason
    assert at[0].reason.endswith(" s after it"), at[0].reason
    assert worker.stats.twitches_retracted >= 1
    rates = store.rates(EventQuery(user=USER, muscle="biceps_left"))
    assert sum(r.twitches for r in rates) == sum(1 for e in events if e.kind.is_twitch)


async def test_a_rest_tremor_is_not_counted_and_its_first_bursts_are_taken_back(
    mosquitto: MosquittoServer, store: EventStore
) -> None:
    """An 8-s parkinsonian rest tremor (bursts at 5 Hz) on a resting forearm: its first bursts are written
    as twitches within the latency target, before the rhythm shows, and re-written once it does; none of
    them is counted, and the tremor's time is not rest. The fasciculations around it still count."""
    emg = stream("hand", "emg", "emg", REST_ONLY, SEED)
    episode = (60.0, 68.0)
    onsets = tremor(emg.x[:, 0], np.random.default_rng(5), episode, 5.0)
    worker = await run_worker(
        parse_mqtt_url(mosquitto.url),
        store,
        {"hand": ([emg], {"emg": "forearm_flexor_left"})},
        "rest-tremor",
        live=(episode[0] - 1.0, episode[1] + 6.0),
    )
    kinds = (*TWITCH_KINDS, EventKind.DURING_MOVEMENT)
    events = store.events(EventQuery(user=USER, muscle="forearm_flexor_left", kinds=kinds))
    at = [(e, (e.start_ns - T0) / S) for e in events]
    during = [(e, t) for e, t in at if episode[0] - 0.1 <= t <= episode[1] + 0.1]
    assert during
    assert not [e for e, _ in during if e.kind.is_twitch]
    assert all("bursting" in e.reason for e, _ in during), during[:3]
    assert [e for e, t in during if t < onsets[6]]  # the first bursts, written before the rhythm showed
    assert worker.stats.twitches_retracted >= 1
    counted = [t for e, t in at if e.kind.is_twitch]
    outside = [t for t in emg.twitches() if not inside(t, [(0.0, WARMUP_S), episode], 0.0, 0.5)]
    assert len(outside) - 3 <= len(counted) <= len(outside) + 1, (len(counted), len(outside))
    rates = store.rates(EventQuery(user=USER, muscle="forearm_flexor_left"))
    assert sum(r.twitches for r in rates) == len(counted)
    not_rest = sum(r.monitored_s - (r.rest_s or 0.0) for r in rates)
    assert episode[1] - episode[0] - 0.5 <= not_rest - WARMUP_S <= episode[1] - episode[0] + 1.5
