"""Where an emulated wearable's samples come from: the synthetic generator, or a recording.

A ``SampleSource`` hands out consecutive blocks of samples in physical units (µV for EMG, g for
accelerometers, °/s for gyroscopes, a unit quaternion w,x,y,z for orientation), shape (samples, channels),
at a fixed rate, plus the ground truth of what it put in them. The emulated device encodes those blocks into
its own notification bytes.

The generator's sources of one device share its ``MotionTimeline`` (``collector.emulate.motion``): when the
wearer moves, the accelerometer, the gyroscope and the orientation of that device show the same movement at
the same moments. At rest a gyroscope reads its noise (0.07 °/s RMS) around a small constant zero-rate
offset (0.3 °/s per axis, drawn by seed), as an uncalibrated MEMS gyroscope does.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.emulate.motion import MotionTimeline
from twitchwatch.collector.frames import Unit
from twitchwatch.collector.recordings.playback import ReplaySource
from twitchwatch.collector.synth import MuscleSegment, Signal, TruthEvent, spec_for

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
SourceSignal = Literal["emg", "acc", "gyro", "orientation"]
GYRO_NOISE_DPS: Final = 0.07  # white noise RMS per axis, as a BMI160-class gyroscope at ~50 Hz bandwidth
GYRO_BIAS_DPS: Final = 0.3  # spread of the per-axis zero-rate offset
IDENTITY: Final = (1.0, 0.0, 0.0, 0.0)

# A started stream is one generator segment this long; a wearable streams for hours, not weeks, and the
# generator draws lazily, so the length costs nothing.
SEGMENT_S: Final = 7 * 24 * 3600.0


class EmulationError(ValueError):
    """The emulation cannot run as asked; the message names the option."""


class SampleSource(ABC):
    signal: SourceSignal
    sample_rate: float
    channels: int
    unit: Unit

    @abstractmethod
    def read(self, n: int) -> FloatArray:
        """The next ``n`` samples, shape (≤ n, channels); empty once the source is exhausted."""

    def take_truth(self) -> list[TruthEvent]:
        """Ground-truth events in the samples read since the last call (none for a recording)."""
        return []


class SynthSource(SampleSource):
    """The simulator's generator (``collector.synth.MuscleSegment``) as a device's channels.

    Accelerometer: one sensor on one muscle, three axes from one segment. EMG: muscle *i* on channel *i*;
    channels beyond the muscles carry rest noise (a segment without twitches)."""

    def __init__(
        self,
        signal: Signal,
        sample_rate: float,
        channels: int,
        muscles: Sequence[str],
        per_minute: float,
        seed: int,
        start_ns: int,
    ) -> None:
        if not muscles:
            raise EmulationError("--muscle: name at least one muscle")
        spec = spec_for(signal, sample_rate)
        self.signal = signal
        self.sample_rate = sample_rate
        self.channels = channels
        self.unit = spec.unit
        if signal == "acc":
            if channels != 3:
                raise ValueError("an accelerometer source has three axes")
            if len(muscles) != 1:
                raise EmulationError(f"--muscle: an accelerometer sits on one muscle, got {len(muscles)}")
            self._segments = [MuscleSegment(muscles[0], spec, start_ns, SEGMENT_S, per_minute, seed)]
            self._truthful = 1
            return
        if len(muscles) > channels:
            raise EmulationError(
                f"--muscle: this device has {channels} EMG channels, got {len(muscles)} muscles"
            )
        seeds = np.random.SeedSequence(seed).spawn(channels)
        self._segments = [
            MuscleSegment(
                muscles[i] if i < len(muscles) else f"rest-ch{i + 1}",
                spec,
                start_ns,
                SEGMENT_S,
                per_minute if i < len(muscles) else 0.0,
                int(seeds[i].generate_state(1)[0]),
            )
            for i in range(channels)
        ]
        self._truthful = len(muscles)

    def read(self, n: int) -> FloatArray:
        blocks = [segment.next_chunk(n)[1] for segment in self._segments]
        return np.concatenate(blocks, axis=1)

    def take_truth(self) -> list[TruthEvent]:
        events = [e for segment in self._segments[: self._truthful] for e in segment.take_truth()]
        return sorted(events, key=lambda e: (e.start_ns, e.muscle))


class ArraySource(SampleSource):
    """Samples given up front or as an iterator of blocks (a recording, a test's exact values)."""

    def __init__(
        self,
        signal: SourceSignal,
        sample_rate: float,
        unit: Unit,
        blocks: Iterator[FloatArray] | FloatArray,
        channels: int | None = None,
    ) -> None:
        if isinstance(blocks, np.ndarray):
            if blocks.ndim != 2:
                raise ValueError("samples must be (samples, channels)")
            channels = blocks.shape[1]
            blocks = iter([blocks])
        if channels is None:
            raise ValueError("channels must be given with an iterator of blocks")
        self.signal = signal
        self.sample_rate = sample_rate
        self.unit = unit
        self.channels = channels
        self._blocks = blocks
        self._pending: FloatArray = np.empty((0, channels))

    def read(self, n: int) -> FloatArray:
        while len(self._pending) < n:
            block = next(self._blocks, None)
            if block is None:
                break
            if block.ndim != 2 or block.shape[1] != self.channels:
                raise EmulationError(f"recording block of shape {block.shape}, expected (n, {self.channels})")
            self._pending = np.concatenate([self._pending, block.astype(np.float64)])
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


def resample(blocks: Iterator[FloatArray], from_hz: float, to_hz: float) -> Iterator[FloatArray]:
    """Blocks at ``from_hz`` → blocks at ``to_hz`` by linear interpolation, continuous across blocks."""
    if from_hz == to_hz:
        yield from blocks
        return
    held: FloatArray | None = None  # input samples not yet passed, from absolute index ``base``
    base = 0
    produced = 0  # output samples so far
    for block in blocks:
        held = block if held is None else np.concatenate([held, block])
        last = base + len(held) - 1  # absolute index of the newest input sample
        stop = int(np.floor(last * to_hz / from_hz)) + 1  # outputs whose time is covered by the input
        if stop <= produced:
            continue
        at = np.arange(produced, stop) * (from_hz / to_hz) - base  # positions within ``held``
        out = np.stack(
            [np.interp(at, np.arange(len(held)), held[:, c]) for c in range(held.shape[1])], axis=1
        )
        produced = stop
        # Inputs before the next output's left neighbour are done with; never more than arrived.
        keep = min(max(int(np.floor(produced * from_hz / to_hz)) - base, 0), len(held))
        held, base = held[keep:], base + keep
        yield out


def fit_channels(block: FloatArray, channels: int) -> FloatArray:
    """A recording's channels on a device's: the first ones carried over, missing ones zero."""
    if block.shape[1] >= channels:
        return block[:, :channels]
    return np.concatenate([block, np.zeros((len(block), channels - block.shape[1]))], axis=1)


class RecordingSources:
    """A ``SourceFactory`` playing one stream of a recording (``collector.recordings.playback``): the
    first stream of the requested signal, from its start each time the device starts streaming,
    resampled to the rate the central asked for, its channels fitted to the device's. A gyroscope or
    orientation the recording does not hold is played as a sensor at rest (said once in the log): the
    recording's movement is then in its accelerometer only."""

    def __init__(self, recording: ReplaySource) -> None:
        self.recording = recording
        self._told: set[str] = set()

    def stream_for(self, signal: str) -> int:
        for index, stream in enumerate(self.recording.streams):
            if stream.signal == signal:
                return index
        have = ", ".join(f"{s.stream} ({s.signal})" for s in self.recording.streams) or "nothing"
        raise EmulationError(
            f"--recording: {self.recording.description} has no {signal} stream (it has {have})"
        )

    def __call__(self, signal: str, rate: float, channels: int, start_ns: int) -> SampleSource:
        if signal in _STILL and not any(s.signal == signal for s in self.recording.streams):
            if signal not in self._told:
                self._told.add(signal)
                log.info(
                    "%s has no %s stream: it plays as a sensor at rest", self.recording.description, signal
                )
            unit, value = _STILL[signal]
            return StillSource(rate, channels, unit, _KIND[signal], value)
        index = self.stream_for(signal)
        stream = self.recording.streams[index]
        frames = (f.values() for i, f in self.recording.frames(self.recording.start_ns) if i == index)
        blocks = (fit_channels(b, channels) for b in resample(frames, stream.sample_rate, rate))
        return ArraySource(_KIND.get(signal, "acc"), rate, stream.unit, blocks, channels)


_KIND: Final[dict[str, SourceSignal]] = {"emg": "emg", "gyro": "gyro", "orientation": "orientation"}
# What plays for a movement quantity a recording lacks: (unit, the still value; None = zeros)
_STILL: Final[dict[str, tuple[Unit, tuple[float, ...] | None]]] = {
    "gyro": (Unit.DEG_PER_S, None),
    "orientation": (Unit.UNITLESS, IDENTITY),
}


class StillSource(SampleSource):
    """A sensor that never moves, for a quantity a recording does not hold: ``value`` (zeros by default;
    the identity quaternion for orientation), forever."""

    def __init__(
        self,
        sample_rate: float,
        channels: int,
        unit: Unit,
        signal: SourceSignal = "gyro",
        value: Sequence[float] | None = None,
    ) -> None:
        self.signal = signal
        self.sample_rate = sample_rate
        self.channels = channels
        self.unit = unit
        self._row = np.zeros(channels) if value is None else np.asarray(value, dtype=np.float64)
        if self._row.shape != (channels,):
            raise ValueError(f"a still value needs {channels} channels")

    def read(self, n: int) -> FloatArray:
        return np.tile(self._row, (n, 1))


class _Clocked(SampleSource):
    """A source whose sample ``i`` is at ``start_ns + i/rate`` on a device's motion timeline."""

    def __init__(self, timeline: MotionTimeline, sample_rate: float, start_ns: int) -> None:
        self.timeline = timeline
        self.sample_rate = sample_rate
        self._t0_s = float(timeline.seconds(start_ns))
        self._next = 0

    def _times(self, n: int) -> FloatArray:
        t = self._t0_s + (self._next + np.arange(n)) / self.sample_rate
        self._next += n
        return np.asarray(t, dtype=np.float64)

    def take_truth(self) -> list[TruthEvent]:
        return self.timeline.take_truth(self._t0_s + self._next / self.sample_rate)


class MovingAccSource(_Clocked):
    """An accelerometer source carried by the moving limb: each sample turned into the moved sensor frame,
    plus the movement's own acceleration. Samples pass unchanged while the wearer keeps still."""

    def __init__(self, inner: SampleSource, timeline: MotionTimeline, start_ns: int) -> None:
        super().__init__(timeline, inner.sample_rate, start_ns)
        if inner.channels != 3:
            raise ValueError("a moving accelerometer has three axes")
        self.inner = inner
        self.signal = inner.signal
        self.channels = 3
        self.unit = inner.unit

    def read(self, n: int) -> FloatArray:
        block = self.inner.read(n)
        t = self._times(len(block))
        if self.timeline.still:
            return block
        motion = self.timeline.at(t, self.sample_rate)
        turned = np.einsum("nji,nj->ni", motion.rotation, block)  # Rᵀ·sample: into the moved sensor frame
        return np.asarray(turned + motion.linear_g, dtype=np.float64)

    def take_truth(self) -> list[TruthEvent]:
        events = self.inner.take_truth() + super().take_truth()
        return sorted(events, key=lambda e: (e.start_ns, e.muscle))


class GyroSource(_Clocked):
    """The gyroscope of a device on the timeline: its angular rate (°/s), a zero-rate offset per axis and
    white noise, drawn from ``seed``."""

    def __init__(self, timeline: MotionTimeline, sample_rate: float, start_ns: int, seed: int) -> None:
        super().__init__(timeline, sample_rate, start_ns)
        self.signal = "gyro"
        self.channels = 3
        self.unit = Unit.DEG_PER_S
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6779726F]))  # "gyro"
        self._bias = self._rng.normal(0.0, GYRO_BIAS_DPS, 3)

    def read(self, n: int) -> FloatArray:
        t = self._times(n)
        noise = self._rng.normal(0.0, GYRO_NOISE_DPS, (n, 3)) + self._bias
        if self.timeline.still:
            return noise
        return self.timeline.at(t, self.sample_rate).angular_rate_dps + noise


class OrientationSource(_Clocked):
    """The orientation of a device on the timeline as a unit quaternion (w, x, y, z), relative to how it
    lay when the timeline began (the identity while the wearer keeps still)."""

    def __init__(self, timeline: MotionTimeline, sample_rate: float, start_ns: int) -> None:
        super().__init__(timeline, sample_rate, start_ns)
        self.signal = "orientation"
        self.channels = 4
        self.unit = Unit.UNITLESS

    def read(self, n: int) -> FloatArray:
        t = self._times(n)
        if self.timeline.still:
            return np.tile(np.asarray(IDENTITY), (n, 1))
        return self.timeline.at(t, self.sample_rate).orientation


class CombinedSource(SampleSource):
    """Several sources read together, their channels side by side (an IMU notification carrying
    orientation, acceleration and rotation rate of the same instant)."""

    def __init__(self, parts: Sequence[SampleSource]) -> None:
        if not parts or len({p.sample_rate for p in parts}) != 1:
            raise ValueError("combined sources need at least one part, all at one rate")
        self.parts = list(parts)
        self.signal = parts[0].signal
        self.sample_rate = parts[0].sample_rate
        self.channels = sum(p.channels for p in parts)
        self.unit = parts[0].unit

    def read(self, n: int) -> FloatArray:
        blocks = [p.read(n) for p in self.parts]
        k = min(len(b) for b in blocks)
        return np.concatenate([b[:k] for b in blocks], axis=1)

    def take_truth(self) -> list[TruthEvent]:
        events = [e for p in self.parts for e in p.take_truth()]
        return sorted(events, key=lambda e: (e.start_ns, e.muscle))


def motion_source(
    signal: str, timeline: MotionTimeline, sample_rate: float, channels: int, start_ns: int, seed: int
) -> SampleSource:
    """The generator's source for a movement quantity (``gyro`` or ``orientation``) on ``timeline``."""
    if signal == "gyro" and channels == 3:
        return GyroSource(timeline, sample_rate, start_ns, seed)
    if signal == "orientation" and channels == 4:
        return OrientationSource(timeline, sample_rate, start_ns)
    raise EmulationError(f"the generator has no {channels}-channel {signal!r} source")
