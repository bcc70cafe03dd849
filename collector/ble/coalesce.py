"""Consecutive chunks of a stream merged into frames of up to a time span: the broker's and the worker's cost
is per frame, and some wearables (MetaMotion, Thingy:52, the Myo's IMU) notify one sample at a time.

Pure: no clock, no I/O. The framing (``collector.ble.framing.Framer``) places each chunk in its stream's time
first (``Placed``: its t0, and how many sequence numbers to skip before it for a gap), exactly as it would
without coalescing; here placed chunks are grouped into ``Run``s; the framer then numbers each run as one
frame. A chunk joins the run pending for its stream only when the worker could not tell the difference:

- it marks no gap (``skip == 0``: no reconnect, device counter jump or lost samples before it);
- it has the run's rate, scale, unit, sample type and channel count;
- it starts where the run's last chunk ends to within half a sample period (a re-anchored or jittered time
  stays a frame boundary, so every frame still starts at the t0 the chunk had on its own; the framer's
  steering of a host-clocked stream, a small fraction of each chunk, does not);
- the run with it still spans at most ``span_ns`` of samples (``motion_span_ns`` for an accelerometer or a
  gyroscope: its samples are few and its frames were mostly header; only a veto waits on it).

Otherwise the pending run is complete and the chunk starts the next one. A run is also complete once another
chunk of the size just added would not fit, so a frame goes out as soon as its span is known to be full rather
than when the next notification arrives. Chunks longer than the span on their own (Polar PMD, Myo EMG,
Ganglion) are single-chunk runs at once: those devices' frames do not change.

Latency: ``deadline_ns`` is when the oldest pending chunk has waited ``span_ns`` since it arrived; the owner
calls ``due`` then (``collector.ble.connection`` enqueues a tick), so a stalled device holds no sample back
longer than the span. ``flush`` hands out everything pending (disconnect, stop, before a status change).
``span_ns == 0`` is off: every chunk is its own run at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.frames import SampleType, Unit
from twitchwatch.collector.signals import kind_of_unit


@dataclass(frozen=True, eq=False)
class Placed:
    """One chunk placed in its stream's time by the framer. ``skip``: sequence numbers to leave out before the
    frame it starts (0: it continues its stream); ``received_ns``: when its notification arrived."""

    stream: str
    t0_ns: int
    rate: float
    scale: float
    unit: Unit
    sample_type: SampleType
    raw: npt.NDArray[Any]
    skip: int
    received_ns: int

    @property
    def samples(self) -> int:
        return int(self.raw.shape[0])

    def shape(self) -> tuple[float, float, Unit, SampleType, int]:
        return (self.rate, self.scale, self.unit, self.sample_type, int(self.raw.shape[1]))


@dataclass(frozen=True, eq=False)
class Run:
    """Placed chunks of one stream that become one frame, starting at the first's t0 after its skip."""

    parts: tuple[Placed, ...]

    @property
    def stream(self) -> str:
        return self.parts[0].stream

    @property
    def first(self) -> Placed:
        return self.parts[0]

    @property
    def samples(self) -> int:
        return sum(p.samples for p in self.parts)

    @property
    def duration_ns(self) -> int:
        return round(self.samples * 1e9 / self.first.rate)

    def raw(self) -> npt.NDArray[Any]:
        if len(self.parts) == 1:
            return self.parts[0].raw
        return np.concatenate([p.raw for p in self.parts])


@dataclass
class _Pending:
    parts: list[Placed]
    samples: int
    deadline_ns: int

    def _last_end_ns(self) -> int:
        last = self.parts[-1]
        return last.t0_ns + round(last.samples * 1e9 / last.rate)

    def span_with(self, samples: int) -> int:
        return round((self.samples + samples) * 1e9 / self.parts[0].rate)

    def takes(self, chunk: Placed, span_ns: int) -> bool:
        first = self.parts[0]
        return (
            chunk.skip == 0
            and chunk.shape() == first.shape()
            # Half a sample: the chunk's first sample is the run's next one, not a sample early or late.
            # Measured from the run's last chunk: the framer steers a host-clocked stream's time a little
            # at every chunk (collector/ble/framing.py), which the run's nominal end would add up.
            and abs(chunk.t0_ns - self._last_end_ns()) * first.rate < 0.5e9
            and self.span_with(chunk.samples) <= span_ns
        )


@dataclass
class Coalescer:
    """Pending runs of one connection's streams (at most one per stream). ``motion_span_ns``: the span of
    accelerometer and gyroscope streams (by their unit, ``kind_of_unit``); None: ``span_ns`` too."""

    span_ns: int
    motion_span_ns: int | None = None
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("span_ns", "motion_span_ns"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be ≥ 0, got {value}")

    @property
    def longest_ns(self) -> int:
        """The longest any sample waits (the timer's bound)."""
        return max(self.span_ns, self.motion_span_ns or 0)

    def span_of(self, chunk: Placed) -> int:
        if self.motion_span_ns is not None and kind_of_unit(chunk.unit) in ("acc", "gyro"):
            return self.motion_span_ns
        return self.span_ns

    def add(self, chunk: Placed) -> list[Run]:
        """Runs complete now, in order (none, the one ``chunk`` ended, and/or the one it filled)."""
        span = self.span_of(chunk)
        if span == 0:
            return [*self.flush(chunk.stream), Run((chunk,))]
        done: list[Run] = []
        pending = self._pending.get(chunk.stream)
        if pending is not None and pending.takes(chunk, span):
            pending.parts.append(chunk)
            pending.samples += chunk.samples
        else:
            if pending is not None:
                done.append(self._complete(chunk.stream))
            pending = self._pending[chunk.stream] = _Pending([chunk], chunk.samples, chunk.received_ns + span)
        if pending.span_with(chunk.samples) > span:  # another chunk like this one would not fit
            done.append(self._complete(chunk.stream))
        return done

    def deadline_ns(self) -> int | None:
        """When the oldest pending chunk will have waited the span (None: nothing pending)."""
        return min((p.deadline_ns for p in self._pending.values()), default=None)

    def due(self, at_ns: int) -> list[Run]:
        """The runs whose first chunk has waited the span by ``at_ns``."""
        return [self._complete(s) for s, p in list(self._pending.items()) if p.deadline_ns <= at_ns]

    def flush(self, stream: str | None = None) -> list[Run]:
        """Everything pending (of ``stream`` only, when given)."""
        streams = [s for s in self._pending if stream is None or s == stream]
        return [self._complete(s) for s in streams]

    @property
    def pending_samples(self) -> int:
        return sum(p.samples for p in self._pending.values())

    def _complete(self, stream: str) -> Run:
        return Run(tuple(self._pending.pop(stream).parts))
