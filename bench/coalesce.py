"""Frame coalescing in the collector (``collect.frame_span``): MQTT messages and collector CPU for wearables
that notify one accelerometer sample at a time, with coalescing off (one frame per notification) and on, in
one run.

Run: ``nice .venv/bin/python -m bench.coalesce [--devices 8] [--seconds 20] [--spans 0 0.05 0.1]
[--pipeline-devices 50] [--pipeline-seconds 60]``.

Two measurements, each span in the same run against span 0 (off), in the order given and then again in reverse
(drift of a shared machine shows as a difference between the two passes):

- **link**: ``--devices`` emulated MetaMotion boards (BMI160 accelerometer at 100 Hz, unpacked: one sample per
  notification) on one Bumble virtual link, streamed by the collector (``Collector``, the real BLE stack) into
  a Mosquitto the harness starts, at real time for ``--seconds`` per phase. Messages per second are the
  collector's published frames (``frames_published``) over the phase; CPU is this process's over wall time,
  which here also carries the emulated devices and both sides of the virtual link (equal in every phase:
  the difference between phases is the collector's).
- **pipeline**: the collector's own work per notification alone — the MetaMotion decoder, framing,
  coalescing, the frame encoding and the MQTT publisher into the same Mosquitto — fed with the emulator's
  notification bytes of ``--pipeline-devices`` boards as fast as it goes, stamped with the arrival times
  they would have had. CPU seconds per second of signal ("cores" a real-time collector would need), per
  board, and boards per core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.throughput import cpu_s
from tests.bumble_bleak.harness import TEST_TIMING, Radio, radio, wait_for
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.ble.coalesce import Coalescer
from twitchwatch.collector.ble.framing import Framer
from twitchwatch.collector.ble.runtime import Collector
from twitchwatch.collector.ble.target import DeviceTarget
from twitchwatch.collector.devices import get_profile
from twitchwatch.collector.emulate import emulate
from twitchwatch.collector.emulate.devices.metamotion import encode_acc
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.outbox import LivePublisher, opened
from twitchwatch.collector.status import DeviceStatus

RATE_HZ = 100.0
USER = "bench"


@dataclass(frozen=True)
class Phase:
    span_s: float
    seconds: float
    notifications: int
    messages: int
    cpu_s: float
    broker_cpu_s: float

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def cores(self) -> float:
        return self.cpu_s / self.seconds

    @property
    def broker_cores(self) -> float:
        return self.broker_cpu_s / self.seconds


def _metamotion() -> DeviceTarget:
    return DeviceTarget("mm", get_profile("metamotion").from_params({"odr_hz": RATE_HZ}), ("acc",))


# ---- link: the real BLE stack at real time ---------------------------------------------------------------


async def _link_phase(
    mqtt: MqttTarget, broker: int, r: Radio, addresses: Sequence[str], span_s: float, seconds: float
) -> Phase:
    base = _metamotion()
    targets = [dataclasses.replace(base, name=f"mm{i}", address=a) for i, a in enumerate(addresses)]
    timing = dataclasses.replace(TEST_TIMING, frame_span_s=span_s, motion_frame_span_s=span_s)
    collector = Collector(targets, mqtt, USER, backend=r.backend, timing=timing)
    task = asyncio.create_task(collector.run())
    try:
        await asyncio.wait_for(collector.started.wait(), 60)
        runners = list(collector.runners.values())
        await wait_for(lambda: all(x.online.is_set() for x in runners), 120, "every board streaming")
        await asyncio.sleep(2.0)  # past the start: connections settled
        frames0 = sum(x.stats.frames_published for x in runners)
        notes0 = sum(x.stats.connection.notifications for x in runners)
        cpu0, broker0, wall0 = time.process_time(), cpu_s(broker), time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - wall0
        cpu, broker_cpu = time.process_time() - cpu0, cpu_s(broker) - broker0
        frames = sum(x.stats.frames_published for x in runners) - frames0
        notes = sum(x.stats.connection.notifications for x in runners) - notes0
    finally:
        collector.stop()
        await asyncio.wait_for(task, 60)
    return Phase(span_s, wall, notes, frames, cpu, broker_cpu)


async def link(
    mqtt: MqttTarget, broker: int, devices: int, seconds: float, spans: Sequence[float]
) -> list[Phase]:
    phases = []
    async with radio() as r, contextlib.AsyncExitStack() as stack:
        boards = [
            await stack.enter_async_context(await emulate("metamotion", r.link, seed=i))
            for i in range(devices)
        ]
        addresses = [b.address for b in boards]
        for span in _passes(spans):
            phases.append(await _link_phase(mqtt, broker, r, addresses, span, seconds))
            print(_line("link", phases[-1], devices), flush=True)
    return phases


# ---- pipeline: the collector's per-notification work alone ----------------------------------------------


def _notifications(seconds: float, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 0.05, (round(seconds * RATE_HZ), 3)) + np.array([0.0, 0.0, 1.0])  # 1 g down
    return [encode_acc(values[i : i + 1], 4) for i in range(len(values))]


async def _pipeline_phase(
    mqtt: MqttTarget, broker: int, notes: Sequence[bytes], boards: int, span_s: float
) -> Phase:
    target = _metamotion()
    profile = target.profile
    (decoder,) = profile.decoders(profile.plan(target.streams).streams).values()
    start = time.time_ns()
    step = 1e9 / RATE_HZ
    publishers = [
        LivePublisher(
            mqtt, USER, f"pipe{b}", DeviceStatus.offline(profile.NAME, "live", "bench"), buffer_s=3600
        )
        for b in range(boards)
    ]
    async with opened(publishers):
        framers = [Framer(type(profile)) for _ in range(boards)]
        coalescers = [Coalescer(round(span_s * 1e9)) for _ in range(boards)]
        states = [decoder.initial_state() for _ in range(boards)]
        cpu0, broker0, frames = time.process_time(), cpu_s(broker), 0
        for i, data in enumerate(notes):
            arrived = start + round((i + 1) * step)
            for b in range(boards):  # boards interleaved, as their notifications arrive
                chunks, states[b] = decoder.decode(data, states[b])
                for chunk in chunks:
                    placed = framers[b].place(chunk, arrived)
                    assert placed is not None
                    for run in coalescers[b].add(placed):
                        await publishers[b].publish(run.stream, framers[b].number(run))
                        frames += 1
            if i % 64 == 0:
                await asyncio.sleep(0)  # the publishers' senders get their turn
        for b in range(boards):
            for run in coalescers[b].flush():
                await publishers[b].publish(run.stream, framers[b].number(run))
                frames += 1
        for pub in publishers:
            await pub.drain()
        cpu, broker_cpu = time.process_time() - cpu0, cpu_s(broker) - broker0
    signal_s = len(notes) / RATE_HZ
    return Phase(span_s, signal_s, len(notes) * boards, frames, cpu, broker_cpu)


async def pipeline(
    mqtt: MqttTarget, broker: int, boards: int, seconds: float, spans: Sequence[float]
) -> list[Phase]:
    notes = _notifications(seconds, 7)
    phases = []
    for span in _passes(spans):
        phases.append(await _pipeline_phase(mqtt, broker, notes, boards, span))
        print(_line("pipeline", phases[-1], boards), flush=True)
    return phases


# ---- report ----------------------------------------------------------------------------------------------


def _passes(spans: Sequence[float]) -> list[float]:
    order = [0.0, *(s for s in spans if s > 0)]
    return order + order[::-1]


def _line(kind: str, p: Phase, boards: int) -> str:
    return (
        f"  {kind:8s} span {p.span_s * 1000:4.0f} ms: {p.notifications / p.seconds:8.0f} notifications/s "
        f"{p.messages_per_s:8.0f} messages/s  CPU {p.cores:5.3f} cores "
        f"({p.cpu_s / p.seconds / boards * 1000:6.2f} ms per signal-second per board), "
        f"broker {p.broker_cores:5.3f} cores"
    )


def summary(kind: str, phases: Sequence[Phase], boards: int) -> None:
    spans = sorted({p.span_s for p in phases})
    off = [p for p in phases if p.span_s == 0]
    off_msgs = sum(p.messages_per_s for p in off) / len(off)
    off_cpu = sum(p.cores for p in off) / len(off)
    off_broker = sum(p.broker_cores for p in off) / len(off)
    print(f"{kind}: {boards} boards, 1 sample per notification at {RATE_HZ:g} Hz (means of both passes)")
    for span in spans:
        same = [p for p in phases if p.span_s == span]
        msgs = sum(p.messages_per_s for p in same) / len(same)
        cores = sum(p.cores for p in same) / len(same)
        broker = sum(p.broker_cores for p in same) / len(same)
        # The link's CPU carries the emulated boards and the virtual link as well: no per-board figure.
        per_core = f", {boards / cores:5.0f} boards per core" if kind == "pipeline" and cores else ""
        print(
            f"  span {span * 1000:4.0f} ms: {msgs:8.0f} messages/s ({msgs / off_msgs:.3f}× off), "
            f"CPU {cores:5.3f} cores ({cores / off_cpu:.3f}× off){per_core}; "
            f"broker {broker:5.3f} cores ({broker / off_broker:.3f}× off)"
        )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer.start(Path(tmp) / "mosquitto")
        try:
            mqtt = parse_mqtt_url(broker.url)
            pid = broker.process.pid
            if args.pipeline_devices:
                piped = await pipeline(mqtt, pid, args.pipeline_devices, args.pipeline_seconds, args.spans)
                summary("pipeline", piped, args.pipeline_devices)
            if args.devices:
                linked = await link(mqtt, pid, args.devices, args.seconds, args.spans)
                summary("link", linked, args.devices)
        finally:
            broker.stop()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.coalesce", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=8, help="emulated boards on the link (0: skip)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per link phase")
    parser.add_argument("--spans", type=float, nargs="+", default=[0.05, 0.1], help="frame spans (s)")
    parser.add_argument(
        "--pipeline-devices", type=int, default=50, help="boards fed to the pipeline (0: skip)"
    )
    parser.add_argument(
        "--pipeline-seconds", type=float, default=60.0, help="signal seconds per pipeline phase"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
