"""The simulated wearable: one device per muscle, publishing the frames a BLE device would.

Each muscle is its own device (``sim-<muscle>``), as one sensor is strapped on one muscle. With a daily
wear window the device streams only inside it, so ``--start -21d --wear 08:00-22:00 --speed max`` builds
weeks of history with realistic off-body gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from twitchwatch.collector.frames import Frame, SampleType
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.outbox import LivePublisher, opened
from twitchwatch.collector.publisher import IN_FLIGHT
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.collector.synth import MuscleSegment, Signal, SignalSpec, TruthEvent, quantise, spec_for
from twitchwatch.collector.timetext import SimulationError as SimulationError
from twitchwatch.collector.timetext import parse_duration as parse_duration
from twitchwatch.collector.timetext import parse_iso_time as parse_iso_time
from twitchwatch.collector.timetext import parse_start as parse_start
from twitchwatch.collector.topics import check_segment

BROKER_BUFFER_S = 600.0  # as `collect`'s default: ten minutes of signal wait for a broker that went away


@dataclass(frozen=True)
class WearWindow:
    """A daily window in local time, e.g. 08:00-22:00 (may wrap past midnight: 22:00-06:00)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> WearWindow:
        m = re.match(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$", text.strip())
        try:
            if not m:
                raise ValueError
            a = dt.time(int(m.group(1)), int(m.group(2)))
            b = dt.time(int(m.group(3)), int(m.group(4)))
        except ValueError:
            raise SimulationError(f"--wear: {text!r} is not HH:MM-HH:MM") from None
        if a == b:
            raise SimulationError("--wear: start and end are equal; omit --wear to wear the sensor all day")
        return cls(a, b)

    def segments(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The parts of [start, end) inside the window, in order."""
        day = start.astimezone().date() - dt.timedelta(days=1)
        tz = start.astimezone().tzinfo
        while True:
            lo = dt.datetime.combine(day, self.start, tz)
            hi = dt.datetime.combine(
                day if self.end > self.start else day + dt.timedelta(days=1), self.end, tz
            )
            if lo >= end:
                return
            a, b = max(lo, start), min(hi, end)
            if b > a:
                yield a, b
            day += dt.timedelta(days=1)


@dataclass(frozen=True)
class SimulationPlan:
    muscles: tuple[str, ...]
    signal: Signal
    start: dt.datetime
    duration_s: float
    speed: float | None  # None: as fast as possible
    per_minute: float
    seed: int
    user: str
    wear: WearWindow | None = None
    sample_rate: float | None = None
    chunk: int = 50  # samples per frame: a BLE notification's worth, as real devices send
    source: str = "live"

    def __post_init__(self) -> None:
        if not self.muscles:
            raise SimulationError("--muscle: name at least one muscle")
        if len(set(self.muscles)) != len(self.muscles):
            raise SimulationError("--muscle: each muscle once")
        for m in self.muscles:
            check_segment(m, "muscle")
        if self.per_minute < 0:
            raise SimulationError("--rate: twitches per minute must be ≥ 0")
        if self.speed is not None and self.speed <= 0:
            raise SimulationError("--speed: must be > 0, or 'max'")
        if not 1 <= self.chunk <= 10000:
            raise SimulationError("--chunk: 1..10000 samples per frame")

    @property
    def spec(self) -> SignalSpec:
        return spec_for(self.signal, self.sample_rate)

    def segments(self) -> list[tuple[dt.datetime, dt.datetime]]:
        end = self.start + dt.timedelta(seconds=self.duration_s)
        return list(self.wear.segments(self.start, end)) if self.wear else [(self.start, end)]

    def device(self, muscle: str) -> str:
        return f"sim-{muscle}"


@dataclass
class SimulationStats:
    frames: int = 0
    samples: int = 0
    truth_events: int = 0
    signal_seconds: float = 0.0
    frames_dropped: int = 0  # the broker was away longer than the outbox holds: the worker sees a gap
    broker_reconnects: int = 0


Progress = Callable[[float, float], None]  # (signal seconds done, total)


def _to_ns(when: dt.datetime) -> int:
    return round(when.timestamp() * 1e9)


def _status(plan: SimulationPlan, muscle: str, session: str) -> DeviceStatus:
    spec = plan.spec
    info = StreamInfo(0, spec.signal, spec.sample_rate, (muscle,) * spec.channels)
    return DeviceStatus("online", "sim", plan.source, session, None, {spec.signal: info})


async def run_simulation(
    plan: SimulationPlan,
    target: MqttTarget,
    truth: IO[str] | None = None,
    progress: Progress | None = None,
    broker_buffer_s: float = BROKER_BUFFER_S,
) -> SimulationStats:
    """Stream the plan to the broker; write ground truth as JSON lines as segments begin. A broker that goes
    away is waited for (``broker_buffer_s`` of signal kept per device when paced: collector/outbox.py)."""
    session = uuid.uuid4().hex[:12]
    stats = SimulationStats()
    segments = plan.segments()
    total = sum((b - a).total_seconds() for a, b in segments)
    async with publishers(plan, target, session, stats, broker_buffer_s) as pubs:
        pace = _Pacer(plan.speed)
        seq = dict.fromkeys(plan.muscles, 0)
        for index, (a, b) in enumerate(segments):
            gens = [
                MuscleSegment(
                    m,
                    plan.spec,
                    _to_ns(a),
                    (b - a).total_seconds(),
                    plan.per_minute,
                    seed=_seed(plan.seed, i, index),
                )
                for i, m in enumerate(plan.muscles)
            ]
            await pace.jump_to(_to_ns(a))
            while gens[0].remaining:
                for gen in gens:
                    frame = _next_frame(gen, plan.chunk, seq[gen.muscle])
                    seq[gen.muscle] = (seq[gen.muscle] + 1) % 2**32
                    await pubs[gen.muscle].publish(plan.spec.signal, frame)
                    stats.frames += 1
                    stats.samples += frame.samples * frame.channels
                _write_truth(truth, [e for g in gens for e in g.take_truth()], stats)
                stats.signal_seconds += frame.samples / plan.spec.sample_rate
                await pace.wait_until(frame.t0_ns + frame.duration_ns)
                if progress:
                    progress(stats.signal_seconds, total)
    return stats


def _seed(seed: int, muscle_index: int, segment_index: int) -> int:
    return int(np.random.SeedSequence([seed, muscle_index, segment_index]).generate_state(1)[0])


def _next_frame(gen: MuscleSegment, chunk: int, sequence: int) -> Frame:
    first, x = gen.next_chunk(chunk)
    spec = gen.spec
    t0 = gen.start_ns + round(first * 1e9 / spec.sample_rate)
    return Frame(
        0, sequence, t0, spec.sample_rate, spec.scale, spec.unit, SampleType.INT16, quantise(x, spec)
    )


def _write_truth(out: IO[str] | None, events: list[TruthEvent], stats: SimulationStats) -> None:
    stats.truth_events += len(events)
    if out is None:
        return
    for e in sorted(events, key=lambda e: (e.start_ns, e.muscle)):
        out.write(json.dumps(e.to_json_dict()) + "\n")
    out.flush()


@contextlib.asynccontextmanager
async def publishers(
    plan: SimulationPlan, target: MqttTarget, session: str, stats: SimulationStats, buffer_s: float
) -> AsyncIterator[dict[str, LivePublisher]]:
    """One publisher per muscle, outlasting a broker restart (collector/outbox.py): paced, the simulated
    wearable goes on and its frames wait in the outbox as a real one's do; at full speed it waits for the
    broker instead. Closed together; what never reached the broker is counted in ``stats``."""
    pubs = {
        m: LivePublisher(
            target,
            plan.user,
            plan.device(m),
            _status(plan, m, session),
            buffer_s=buffer_s,
            max_waiting=IN_FLIGHT * 2 if plan.speed is None else None,
        )
        for m in plan.muscles
    }
    try:
        async with opened(list(pubs.values())):
            yield pubs
    finally:
        stats.frames_dropped = sum(p.frames_dropped + p.frames_waiting for p in pubs.values())
        stats.broker_reconnects = sum(p.reconnects for p in pubs.values())


class _Pacer:
    """Maps signal time to wall time at the requested speed; across wear gaps it jumps, never sleeps."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._anchor: tuple[int, float] | None = None  # (signal ns, monotonic s)

    async def jump_to(self, signal_ns: int) -> None:
        self._anchor = (signal_ns, time.monotonic())

    async def wait_until(self, signal_ns: int) -> None:
        if self.speed is None or self._anchor is None:
            await asyncio.sleep(0)  # let publish tasks and the network run
            return
        due = self._anchor[1] + (signal_ns - self._anchor[0]) / 1e9 / self.speed
        delay = due - time.monotonic()
        await asyncio.sleep(max(delay, 0.0))


def truth_file(path: Path | None) -> IO[str] | None:
    return path.open("w", encoding="utf-8") if path else None
