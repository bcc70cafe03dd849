"""Replay: a recording played back through a simulated device, frame for frame as a wearable sends them.

A :class:`ReplaySource` describes what a recording holds (devices, streams, the muscle of each channel) and
yields wire frames in device-time order. Two kinds are built here, neither knowing any file format beyond
the project's own: :class:`SessionSource` (an HDF5 session: the recorded frames, unchanged — sequence
numbers, timestamps, raw samples, scale) and :class:`ChunkSource` (any iterator of float sample chunks — the
composition root feeds it EDF+/BDF+ files — cut into float32 frames of ``FRAME_SAMPLES``).

:func:`run_replay` publishes them with one :class:`~collector.publisher.FramePublisher` per device, whose
retained status says ``source: "replay"`` (so the worker stores the events with ``source=replay``) and
carries a fresh ``session_id``. Time: ``recorded`` keeps the recording's own timestamps (events land where
the live run put them); ``now`` shifts every timestamp by one constant so the first replayed sample is at
the wall-clock time the replay starts. By default ``--speed max`` keeps recorded time, a paced replay uses
``now``.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from collector.frames import MAX_SEQUENCE, Frame, SampleType, Unit
from collector.mqtt import MqttTarget
from collector.publisher import FramePublisher
from collector.session import Session, StreamRecord
from collector.simulate import _Pacer
from collector.status import DeviceStatus, StreamInfo
from collector.topics import TopicError, check_segment

log = logging.getLogger(__name__)

FRAME_SAMPLES: Final = 50  # per frame cut from chunks: a BLE notification's worth, as the simulator sends
# Between passes of --loop: more than the worker's 1 s time-jump limit, so each pass starts a new segment
# (filters restarted) instead of splicing the end of the recording onto its beginning.
LOOP_PAUSE_NS: Final = 2_000_000_000

Clock = Literal["recorded", "now"]
# (signal seconds done, total so far): with --loop both grow by one pass at a time
Progress = Callable[[float, float], None]


class ReplayError(ValueError):
    """A replay cannot start as asked; the message names the option or the file."""


@dataclass(frozen=True)
class ReplayStream:
    """One stream of one replayed device. ``keys`` lists, per channel, the names ``--muscle-map`` knows it
    by."""

    device: str
    stream: str
    stream_id: int
    signal: str
    unit: Unit
    sample_rate: float
    muscles: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    profile: str = "replay"

    def info(self) -> StreamInfo:
        return StreamInfo(self.stream_id, self.signal, self.sample_rate, self.muscles)


class ReplaySource(abc.ABC):
    streams: tuple[ReplayStream, ...]
    start_ns: int  # the recording's first sample, in its own time
    end_ns: int
    description: str

    @abc.abstractmethod
    def frames(self, from_ns: int) -> Iterator[tuple[int, Frame]]:
        """``(index into streams, frame)`` in device-time order, from the frame holding ``from_ns`` on."""

    def close(self) -> None:  # noqa: B027 (sources without resources need nothing)
        pass

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def map_muscles(self, items: Sequence[str]) -> None:
        """``CH=MUSCLE`` items: CH is a channel's key (see ``ReplayStream.keys``) or its current muscle."""
        self.streams = apply_muscle_map(self.streams, items)


def apply_muscle_map(streams: Sequence[ReplayStream], items: Sequence[str]) -> tuple[ReplayStream, ...]:
    muscles = [list(s.muscles) for s in streams]
    for item in items:
        key, sep, muscle = item.partition("=")
        if not sep or not key or not muscle:
            raise ReplayError(f"--muscle-map {item!r}: expected CHANNEL=MUSCLE")
        try:
            check_segment(muscle, "muscle")
        except TopicError as exc:
            raise ReplayError(f"--muscle-map {item!r}: {exc}") from None
        hits = 0
        for si, s in enumerate(streams):
            for ci in range(len(s.muscles)):
                if key in s.keys[ci] or key == s.muscles[ci]:
                    muscles[si][ci] = muscle
                    hits += 1
        if not hits:
            known = "; ".join(
                f"{s.device}/{s.stream}: "
                + ", ".join(f"{k[0]!r} ({m or 'no muscle'})" for k, m in zip(s.keys, s.muscles, strict=True))
                for s in streams
            )
            raise ReplayError(f"--muscle-map {item!r}: no channel {key!r} (channels: {known})")
    return tuple(dataclasses.replace(s, muscles=tuple(m)) for s, m in zip(streams, muscles, strict=True))


# ---- sources ---------------------------------------------------------------------------------------
def _device_map(available: Sequence[str], specs: Sequence[str]) -> dict[str, str]:
    """``--device D`` selects a recorded device, ``--device D=NEW`` also renames it; none: all, as
    recorded."""
    if not specs:
        return {d: d for d in available}
    out: dict[str, str] = {}
    for spec in specs:
        old, _, new = spec.partition("=")
        if old not in available:
            raise ReplayError(
                f"--device {spec!r}: the recording has no device {old!r} (it has {', '.join(available)})"
            )
        try:
            out[old] = check_segment(new or old, "--device")
        except TopicError as exc:
            raise ReplayError(str(exc)) from None
    if len(set(out.values())) < len(out):
        raise ReplayError("--device: two devices renamed to the same name")
    return out


class SessionSource(ReplaySource):
    """A recorded session: every frame as recorded. Parts of one stream (a rate or scale change) replay in
    turn under the stream's name."""

    def __init__(self, session: Session, devices: Sequence[str] = ()) -> None:
        self.session = session
        if not session.streams:
            raise ReplayError(f"{session.path}: the session holds no frames")
        recorded = list(dict.fromkeys(s.device for s in session.streams))
        names = _device_map(recorded, devices)
        self._parts: list[StreamRecord] = [s for s in session.streams if s.device in names]
        index: dict[tuple[str, str], int] = {}
        streams: list[ReplayStream] = []
        for p in self._parts:
            if (p.device, p.stream) in index:
                continue
            index[(p.device, p.stream)] = len(streams)
            dev = session.devices.get(p.device)
            keys = tuple((f"{p.device}.{p.stream}.{i}", f"{p.stream}.{i}") for i in range(p.channels))
            streams.append(
                ReplayStream(
                    names[p.device],
                    p.stream,
                    p.stream_id,
                    p.signal,
                    p.unit,
                    p.sample_rate,
                    p.muscles,
                    keys,
                    (dev.profile if dev and dev.profile else "replay"),
                )
            )
        self._index = {p.path: index[(p.device, p.stream)] for p in self._parts}
        self.streams = tuple(streams)
        self.start_ns = min(p.first_t0_ns for p in self._parts)
        self.end_ns = max(p.end_ns for p in self._parts)
        self.description = f"{session.path.name}: session of {len(names)} device(s)"
        if not session.complete:
            log.warning("%s was not closed cleanly: it ends where the recorder last flushed", session.path)

    def frames(self, from_ns: int) -> Iterator[tuple[int, Frame]]:
        for part, frame in self.session.timeline(from_ns, self._parts):
            yield self._index[part.path], frame

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True)
class SampleChunk:
    """Consecutive samples of one stream in its unit (µV, g): ``data`` is (samples, channels); ``start`` is
    the index of its first sample from the recording's start."""

    stream: int
    start: int
    data: npt.NDArray[np.float64]


class ChunkSource(ReplaySource):
    """Float sample chunks → float32 frames (scale 1) of ``frame_samples``, timestamped
    ``start_ns + index / rate``; sequence numbers count from 0 per stream."""

    def __init__(
        self,
        streams: Sequence[ReplayStream],
        chunks: Callable[[], Iterator[SampleChunk]],
        start_ns: int,
        duration_s: float,
        description: str,
        close: Callable[[], None] | None = None,
        frame_samples: int = FRAME_SAMPLES,
    ) -> None:
        self.streams = tuple(streams)
        self._chunks = chunks
        self.start_ns = start_ns
        self.end_ns = start_ns + round(duration_s * 1e9)
        self.description = description
        self._close = close
        self.frame_samples = frame_samples

    def frames(self, from_ns: int) -> Iterator[tuple[int, Frame]]:
        n = self.frame_samples
        # Frames start at whole frames from the first replayed sample.
        first = [max(0, int((from_ns - self.start_ns) * s.sample_rate // 1e9)) for s in self.streams]
        pending: dict[int, list[npt.NDArray[np.float64]]] = {i: [] for i in range(len(self.streams))}
        held = [0] * len(self.streams)
        nxt = list(first)  # index of the next sample to put in a frame
        seq = [0] * len(self.streams)
        for chunk in self._chunks():
            i, s = chunk.stream, self.streams[chunk.stream]
            data = chunk.data
            end = chunk.start + len(data)
            if end <= first[i]:
                continue
            if chunk.start < first[i]:
                data = data[first[i] - chunk.start :]
            pending[i].append(data)
            held[i] += len(data)
            while held[i] >= n:
                yield i, self._frame(i, s, pending, n, nxt[i], seq[i])
                held[i] -= n
                nxt[i] += n
                seq[i] += 1
        for i, s in enumerate(self.streams):
            if held[i]:
                yield i, self._frame(i, s, pending, held[i], nxt[i], seq[i])

    def _frame(
        self,
        i: int,
        s: ReplayStream,
        pending: dict[int, list[npt.NDArray[np.float64]]],
        n: int,
        at: int,
        seq: int,
    ) -> Frame:
        data = np.concatenate(pending[i]) if len(pending[i]) > 1 else pending[i][0]
        pending[i] = [data[n:]] if len(data) > n else []
        t0 = self.start_ns + round(at * 1e9 / s.sample_rate)
        raw = np.ascontiguousarray(data[:n], dtype=np.float32)
        return Frame(s.stream_id, seq % MAX_SEQUENCE, t0, s.sample_rate, 1.0, s.unit, SampleType.FLOAT32, raw)

    def close(self) -> None:
        if self._close is not None:
            self._close()


# ---- playing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayOptions:
    user: str
    speed: float | None = 1.0  # None: as fast as possible
    loop: bool = False
    start_s: float = 0.0
    clock: Clock | None = None  # None: "recorded" at max speed, "now" when paced
    max_passes: int | None = None  # with loop: stop after this many (tests); None: until stopped

    def __post_init__(self) -> None:
        check_segment(self.user, "user")
        if self.speed is not None and not self.speed > 0:
            raise ReplayError("--speed: must be > 0, or 'max'")
        if not self.start_s >= 0:
            raise ReplayError("--start: seconds into the recording, ≥ 0")

    @property
    def effective_clock(self) -> Clock:
        return self.clock or ("recorded" if self.speed is None else "now")


@dataclass
class ReplayStats:
    session_id: str
    frames: int = 0
    passes: int = 0
    signal_seconds: float = 0.0
    time_shift_ns: int = 0  # added to the recording's timestamps in the first pass


async def run_replay(
    source: ReplaySource, target: MqttTarget, options: ReplayOptions, progress: Progress | None = None
) -> ReplayStats:
    """Publish the source's frames (from ``options.start_s`` on) until it ends — or, with ``loop``, until
    cancelled; devices are marked offline at the end either way."""
    from_ns = source.start_ns + round(options.start_s * 1e9)
    if from_ns >= source.end_ns:
        raise ReplayError(
            f"--start {options.start_s:g}: past the end of the recording ({source.duration_s:.1f} s long)"
        )
    stats = ReplayStats(uuid.uuid4().hex[:12])
    per_pass_s = (source.end_ns - from_ns) / 1e9
    shift = time.time_ns() - from_ns if options.effective_clock == "now" else 0
    stats.time_shift_ns = shift
    devices: dict[str, dict[str, StreamInfo]] = {}
    profiles: dict[str, str] = {}
    for s in source.streams:
        devices.setdefault(s.device, {})[s.stream] = s.info()
        profiles.setdefault(s.device, s.profile)
    log.info(
        "replaying %s from %.1f s, %s time%s (session %s)",
        source.description,
        options.start_s,
        options.effective_clock,
        f" shifted by {shift / 1e9:+.3f} s" if shift else "",
        stats.session_id,
    )
    async with contextlib.AsyncExitStack() as stack:
        pubs: dict[str, FramePublisher] = {}
        for device, streams in devices.items():
            status = DeviceStatus("online", profiles[device], "replay", stats.session_id, None, streams)
            pubs[device] = await stack.enter_async_context(
                FramePublisher(target, options.user, device, status)
            )
        pace = _Pacer(options.speed)
        seq_shift = [0] * len(source.streams)
        while True:
            await pace.jump_to(from_ns + shift)
            first: dict[int, int] = {}
            last: dict[int, int] = {}
            for i, frame in source.frames(from_ns):
                s = source.streams[i]
                first.setdefault(i, frame.sequence)
                last[i] = frame.sequence
                out = dataclasses.replace(
                    frame, sequence=(frame.sequence + seq_shift[i]) % MAX_SEQUENCE, t0_ns=frame.t0_ns + shift
                )
                await pubs[s.device].publish(s.stream, out)
                stats.frames += 1
                end = out.t0_ns + out.duration_ns
                done = min(per_pass_s, (frame.t0_ns + frame.duration_ns - from_ns) / 1e9)
                stats.signal_seconds = stats.passes * per_pass_s + done
                await pace.wait_until(end)
                if progress:
                    progress(stats.signal_seconds, (stats.passes + 1) * per_pass_s)
            stats.passes += 1
            if not options.loop or not last or (options.max_passes and stats.passes >= options.max_passes):
                break
            shift += source.end_ns - from_ns + LOOP_PAUSE_NS
            for i in last:
                seq_shift[i] += (last[i] - first[i]) % MAX_SEQUENCE + 1
    return stats
