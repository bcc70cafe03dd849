"""Where an emulated wearable's samples come from: the synthetic generator, or a recording.

A ``SampleSource`` hands out consecutive blocks of samples in physical units (µV for EMG, g for
accelerometers), shape (samples, channels), at a fixed rate, plus the ground truth of what it put in them.
The emulated device encodes those blocks into its own notification bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from collector.frames import Unit
from collector.replay import ReplaySource
from collector.synth import MuscleSegment, Signal, TruthEvent, spec_for

FloatArray = npt.NDArray[np.float64]

# A started stream is one generator segment this long; a wearable streams for hours, not weeks, and the
# generator draws lazily, so the length costs nothing.
SEGMENT_S: Final = 7 * 24 * 3600.0


class EmulationError(ValueError):
    """The emulation cannot run as asked; the message names the option."""


class SampleSource(ABC):
    signal: Signal
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
        signal: Signal,
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
    """A ``SourceFactory`` playing one stream of a recording (``collector.replay.ReplaySource``): the
    first stream of the requested signal, from its start each time the device starts streaming,
    resampled to the rate the central asked for, its channels fitted to the device's."""

    def __init__(self, recording: ReplaySource) -> None:
        self.recording = recording

    def stream_for(self, signal: str) -> int:
        for index, stream in enumerate(self.recording.streams):
            if stream.signal == signal:
                return index
        have = ", ".join(f"{s.stream} ({s.signal})" for s in self.recording.streams) or "nothing"
        raise EmulationError(
            f"--recording: {self.recording.description} has no {signal} stream (it has {have})"
        )

    def __call__(self, signal: str, rate: float, channels: int, start_ns: int) -> SampleSource:
        index = self.stream_for(signal)
        stream = self.recording.streams[index]
        frames = (f.values() for i, f in self.recording.frames(self.recording.start_ns) if i == index)
        blocks = (fit_channels(b, channels) for b in resample(frames, stream.sample_rate, rate))
        kind: Signal = "emg" if signal == "emg" else "acc"
        return ArraySource(kind, rate, stream.unit, blocks, channels)


class StillSource(SampleSource):
    """A sensor at rest in a quantity the generator does not make (a gyroscope): zeros, forever."""

    def __init__(self, sample_rate: float, channels: int, unit: Unit) -> None:
        self.signal = "acc"  # nominal: nothing reads it for a still source
        self.sample_rate = sample_rate
        self.channels = channels
        self.unit = unit

    def read(self, n: int) -> FloatArray:
        return np.zeros((n, self.channels))
