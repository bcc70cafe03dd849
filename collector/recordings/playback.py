"""A recording played as a wearable sends it: devices, streams and wire frames in device-time order.

A :class:`ReplaySource` describes what a recording holds for replay (devices, streams, the muscle of each
channel) and yields frames in device-time order; ``twitchwatch replay`` publishes them
(``collector.replay``) and ``twitchwatch simulate --ble --recording`` encodes them as a wearable's
notifications (``collector.emulate.source``). :func:`open_source` opens any file a reader takes
(``collector.recordings.reader``): a format that keeps frames gives its own source (the project's sessions:
every frame as recorded); any other is cut into frames here (:class:`ChunkSource`) from its reader's streams —
so a new format replays as soon as its reader reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.frames import MAX_SEQUENCE, Frame, SampleType
from twitchwatch.collector.recordings.model import DEFAULT_CHUNK_S, Chunk, RecordingError, sanitise
from twitchwatch.collector.recordings.reader import RecordingReader, UnknownFormat, open_recording
from twitchwatch.collector.recordings.source import ReplayError, ReplaySource, ReplayStream
from twitchwatch.collector.signals import KINDS
from twitchwatch.collector.topics import TopicError, check_segment

log = logging.getLogger(__name__)

FRAME_SAMPLES: Final = 50  # per frame cut from chunks: a BLE notification's worth, as the simulator sends


# ---- any reader's streams, cut into frames ----------------------------------------------------------
class ChunkSource(ReplaySource):
    """Float sample chunks → float32 frames (scale 1) of ``frame_samples``, timestamped
    ``start_ns + index / rate``; sequence numbers count from 0 per stream. ``chunks`` starts the recording
    over each time it is called (every pass of ``--loop``; every start of an emulated stream)."""

    def __init__(
        self,
        streams: Sequence[ReplayStream],
        chunks: Callable[[], Iterator[Chunk]],
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
            i, s = chunk.group, self.streams[chunk.group]
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


def chunk_source(reader: RecordingReader, devices: Sequence[str] = ()) -> ChunkSource:
    """A file as one device (``--device NAME``, default ``<format>-<file name>``) with a stream per sensor
    stream of its recording: the EMG channels of one rate as ``emg`` (``emg2``, … for further rates), each
    accelerometer as ``acc`` (``acc2``, …), each gyroscope as ``gyro`` and orientation as ``orientation``.
    Other channels (annotations, temperature, …) are left out, with a log line. A file that does not say
    when it started plays as if it started now."""
    rec = reader.recording
    if len(devices) > 1:
        raise ReplayError(f"--device: {reader.NOUN} is one device; give one name")
    name = devices[0] if devices else f"{reader.DEVICE_PREFIX}-{sanitise(rec.path.stem)}"[:64]
    try:
        check_segment(name, "--device")
    except TopicError as exc:
        raise ReplayError(str(exc)) from None
    groups = rec.streams
    if not groups:
        why = "; ".join(f"{c.display}: {c.note}" for c in rec.channels) or "the file has no signals"
        raise RecordingError(f"{rec.path}: no EMG, accelerometer or gyroscope channel to replay ({why})")
    for c in rec.channels:
        if c.signal is None:
            log.info("%s: channel %s not replayed: %s", rec.path.name, c.display, c.note)
    streams = []
    seen: dict[str, int] = {}
    for gi, g in enumerate(groups):
        seen[g.signal] = seen.get(g.signal, 0) + 1
        stream = g.signal + (str(seen[g.signal]) if seen[g.signal] > 1 else "")
        keys = tuple((c.label, str(c.index)) for c in g.channels)
        muscles = tuple(c.muscle for c in g.channels)
        unit = KINDS[g.signal].unit
        streams.append(
            ReplayStream(name, stream, gi, g.signal, unit, g.rate, muscles, keys, reader.DEVICE_PREFIX)
        )
    start_ns = rec.start_ns
    when = ""
    if start_ns is None:
        start_ns = time.time_ns() // 1_000_000 * 1_000_000
        when = ", no start time in the file: starting now"

    def chunks() -> Iterator[Chunk]:
        return reader.chunks(groups, DEFAULT_CHUNK_S)

    return ChunkSource(
        streams,
        chunks,
        start_ns,
        rec.duration_s,
        f"{rec.path.name} ({rec.format}, {sum(len(g.channels) for g in groups)} channel(s){when}) as {name}",
        reader.close,
    )


def open_source(
    path: Path, devices: Sequence[str] = (), muscle_map: Sequence[str] = (), rate: float | None = None
) -> ReplaySource:
    """The replay source for ``path``, whatever its format; ``devices`` as ``--device`` gives them,
    ``muscle_map`` as ``--muscle-map``, ``rate`` for a CSV file without a time column. Raises a
    ``ValueError`` (ReplayError, RecordingError and the format's own) naming what is wrong."""
    try:
        reader = open_recording(path, rate)
    except UnknownFormat as exc:
        raise ReplayError(str(exc)) from None
    try:
        source = reader.replay_source(devices) or chunk_source(reader, devices)
    except BaseException:
        reader.close()
        raise
    try:
        source.map_muscles(muscle_map)
    except BaseException:
        source.close()
        raise
    return source
