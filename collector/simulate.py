"""The simulated wearable: one device per muscle, publishing the frames a BLE device would.

Each muscle is its own device (``sim-<muscle>``), as one sensor is strapped on one muscle. With a daily
wear window the device streams only inside it, so ``--start -21d --wear 08:00-22:00 --speed max`` builds
weeks of history with realistic off-body gaps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from twitchwatch.collector.frames import Frame, SampleType
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.publisher import FramePublisher
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.collector.synth import MuscleSegment, Signal, SignalSpec, TruthEvent, quantise, spec_for
from twitchwatch.collector.topics import check_segment

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SimulationError(ValueError):
    """A simulation option is invalid; the message names the option."""


def parse_duration(text: str, option: str = "--duration") -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``21d`` → seconds."""
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise SimulationError(f"{option}: {text!r} is not a positive duration like 90, 15m, 6h or 21d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_start(text: str | None, now: dt.datetime) -> dt.datetime:
    """``None`` → now; ``-21d`` → that long before now; else an ISO 8601 time (local if no offset)."""
    if text is None or text == "now":
        return now
    if text.startswith("-"):
        return now - dt.timedelta(seconds=parse_duration(text[1:], "--start"))
    return parse_iso_time(text, "--start", "a relative time like -21d")


def parse_iso_time(text: str, option: str, alternative: str) -> dt.datetime:
    """An ISO 8601 time, local when it has no offset; the error names the option and what else it takes."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SimulationError(f"{option}: {text!r} is neither ISO 8601 nor {alternative}") from None
    return when if when.tzinfo else when.astimezone()


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
) -> SimulationStats:
    """Stream the plan to the broker; write ground truth as JSON lines as segments begin."""
    session = uuid.uuid4().hex[:12]
    stats = SimulationStats()
    segments = plan.segments()
    total = sum((b - a).total_seconds() for a, b in segments)
    async with _Publishers(plan, target, session) as pubs:
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


class _Publishers:
    """Opens one publisher per muscle and closes them all, whatever happens."""

    def __init__(self, plan: SimulationPlan, target: MqttTarget, session: str) -> None:
        self._pubs = {
            m: FramePublisher(target, plan.user, plan.device(m), _status(plan, m, session))
            for m in plan.muscles
        }
        self._open: list[FramePublisher] = []

    async def __aenter__(self) -> dict[str, FramePublisher]:
        try:
            for pub in self._pubs.values():
                await pub.__aenter__()
                self._open.append(pub)
        except BaseException:
            await self.__aexit__(*sys.exc_info())
            raise
        return self._pubs

    async def __aexit__(self, *exc: object) -> None:
        for pub in reversed(self._open):
            await pub.__aexit__(*exc)  # type: ignore[arg-type]
        self._open.clear()


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
