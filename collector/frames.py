"""Binary sample frames: the wire contract between a collector and the processing worker.

A frame carries one chunk of samples of one stream (e.g. a 3-axis accelerometer or 8 EMG channels).

Layout, little-endian, 24-byte header then the samples interleaved sample by sample
(``s0c0 s0c1 … s1c0 …``):

====== ====== =============================================================
offset bytes  field
====== ====== =============================================================
0      1      format version (``FORMAT_VERSION``)
1      1      low nibble: sample type (``SampleType``); high nibble: unit (``Unit``)
2      1      channel count (1–255)
3      1      stream id (device-local index of the stream; the topic names it)
4      4      sequence number, u32, wraps; +1 per frame of the stream
8      8      device timestamp of the first sample, i64 ns since the Unix epoch
16     4      sample rate in Hz, float32 (> 0)
20     4      scale, float32: physical value = raw × scale, in ``unit``
====== ====== =============================================================

The header is fixed so a decoder never has to guess; its cost on the wire is 24 / (n·c) bytes per
sample value for n samples of c channels — see ``wire_bytes_per_value``.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.limits import RejectedError

FORMAT_VERSION: Final = 1
HEADER = struct.Struct("<BBBBIqff")
HEADER_SIZE: Final = HEADER.size
MAX_SEQUENCE: Final = 2**32


class SampleType(enum.IntEnum):
    """Raw sample encodings; values are on-wire codes."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    FLOAT32 = 4

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(_DTYPES[self])


_DTYPES: Final = {
    SampleType.INT8: "<i1",
    SampleType.INT16: "<i2",
    SampleType.INT32: "<i4",
    SampleType.FLOAT32: "<f4",
}


class Unit(enum.IntEnum):
    """Physical unit after scaling; it also tells the worker which detector a stream needs."""

    MICROVOLT = 1  # surface EMG
    G = 2  # accelerometer, standard gravity
    DEG_PER_S = 3  # gyroscope
    UNITLESS = 4

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS: Final = {Unit.MICROVOLT: "µV", Unit.G: "g", Unit.DEG_PER_S: "°/s", Unit.UNITLESS: "1"}


# The decoder's look-ups (an enum call and a dtype per frame cost more than the rest of the header).
_SAMPLE_TYPE_OF: Final = {int(t): t for t in SampleType}
_UNIT_OF: Final = {int(u): u for u in Unit}
_DTYPE_OF: Final = {t: t.dtype for t in SampleType}


class FrameError(RejectedError):
    """A frame could not be decoded. ``offset`` is the byte where decoding failed; ``kind`` names the
    fault for counting (``frame.truncated``, ``frame.version`` …)."""

    offset: int

    def __init__(self, reason: str, offset: int, kind: str = "frame.format") -> None:
        super().__init__(kind, reason, offset=offset)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded chunk. ``raw`` has shape (samples, channels); ``values`` applies the scale."""

    stream_id: int
    sequence: int
    t0_ns: int
    sample_rate: float
    scale: float
    unit: Unit
    sample_type: SampleType
    raw: npt.NDArray[np.generic]

    def __post_init__(self) -> None:
        if self.raw.ndim != 2 or not 1 <= self.raw.shape[1] <= 255:
            raise ValueError(f"raw must be (samples, 1..255 channels), got shape {self.raw.shape}")
        if not 0 <= self.stream_id <= 255:
            raise ValueError(f"stream_id {self.stream_id} outside 0..255")
        if not 0 <= self.sequence < MAX_SEQUENCE:
            raise ValueError(f"sequence {self.sequence} outside u32")
        if not (self.sample_rate > 0 and math.isfinite(self.sample_rate)):
            raise ValueError(f"sample_rate must be finite and > 0, got {self.sample_rate}")
        if not (math.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"scale must be finite and non-zero, got {self.scale}")

    @property
    def samples(self) -> int:
        return int(self.raw.shape[0])

    @property
    def channels(self) -> int:
        return int(self.raw.shape[1])

    @property
    def duration_ns(self) -> int:
        return round(self.samples * 1e9 / self.sample_rate)

    def values(self) -> npt.NDArray[np.float64]:
        """Samples in physical units, shape (samples, channels)."""
        return self.raw.astype(np.float64) * float(np.float32(self.scale))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.header_tuple() == other.header_tuple()
            and self.raw.dtype == other.raw.dtype
            and np.array_equal(self.raw, other.raw)
        )

    __hash__ = None  # type: ignore[assignment]

    def header_tuple(self) -> tuple[int, int, int, float, float, Unit, SampleType]:
        return (
            self.stream_id,
            self.sequence,
            self.t0_ns,
            float(np.float32(self.sample_rate)),
            float(np.float32(self.scale)),
            self.unit,
            self.sample_type,
        )


def encode(frame: Frame) -> bytes:
    """Serialise a frame; ``frame.raw`` is cast to the frame's sample type."""
    raw = np.ascontiguousarray(frame.raw, dtype=frame.sample_type.dtype)
    header = HEADER.pack(
        FORMAT_VERSION,
        (int(frame.unit) << 4) | int(frame.sample_type),
        frame.channels,
        frame.stream_id,
        frame.sequence,
        frame.t0_ns,
        frame.sample_rate,
        frame.scale,
    )
    return header + raw.tobytes()


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """Parse a frame; raises ``FrameError`` naming the offending byte offset."""
    buf = bytes(data)
    if len(buf) < HEADER_SIZE:
        raise FrameError(f"truncated header: {len(buf)} of {HEADER_SIZE} bytes", len(buf), "frame.truncated")
    version, type_unit, channels, stream_id, sequence, t0_ns, rate, scale = HEADER.unpack_from(buf)
    if version != FORMAT_VERSION:
        raise FrameError(
            f"unsupported format version {version} (this decoder reads {FORMAT_VERSION})", 0, "frame.version"
        )
    sample_type = _SAMPLE_TYPE_OF.get(type_unit & 0x0F)
    if sample_type is None:
        raise FrameError(f"unknown sample type {type_unit & 0x0F}", 1, "frame.sample_type")
    unit = _UNIT_OF.get(type_unit >> 4)
    if unit is None:
        raise FrameError(f"unknown unit {type_unit >> 4}", 1, "frame.unit")
    if channels == 0:
        raise FrameError("channel count is 0", 2, "frame.channels")
    if not (rate > 0 and math.isfinite(rate)):
        raise FrameError(f"sample rate {rate} is not a finite positive number", 16, "frame.rate")
    if not (math.isfinite(scale) and scale != 0):
        raise FrameError(f"scale {scale} is not a finite non-zero number", 20, "frame.scale")
    body = len(buf) - HEADER_SIZE
    dtype = _DTYPE_OF[sample_type]
    stride = dtype.itemsize * channels
    if body == 0:
        raise FrameError("frame has no samples", HEADER_SIZE, "frame.truncated")
    if body % stride:
        whole = HEADER_SIZE + (body // stride) * stride
        raise FrameError(
            f"truncated samples: {body} bytes is not a whole number of {channels}-channel "
            f"{sample_type.name.lower()} samples",
            whole,
            "frame.truncated",
        )
    raw = np.frombuffer(buf, dtype=dtype, offset=HEADER_SIZE).reshape(-1, channels)
    if sample_type is SampleType.FLOAT32 and not np.isfinite(raw).all():
        bad = int(np.flatnonzero(~np.isfinite(raw.reshape(-1)))[0])
        raise FrameError(
            "non-finite float sample", HEADER_SIZE + bad * sample_type.dtype.itemsize, "frame.nonfinite"
        )
    return _checked_frame(stream_id, sequence, t0_ns, float(rate), float(scale), unit, sample_type, raw)


def _checked_frame(
    stream_id: int,
    sequence: int,
    t0_ns: int,
    rate: float,
    scale: float,
    unit: Unit,
    sample_type: SampleType,
    raw: npt.NDArray[np.generic],
) -> Frame:
    """A frame whose fields ``decode`` has checked already (the header's field widths bound the ids, the
    rest it tested): built without ``Frame.__post_init__`` checking them again, for every frame a worker
    takes."""
    frame = Frame.__new__(Frame)
    frame.__dict__.update(
        stream_id=stream_id,
        sequence=sequence,
        t0_ns=t0_ns,
        sample_rate=rate,
        scale=scale,
        unit=unit,
        sample_type=sample_type,
        raw=raw,
    )
    return frame


def wire_bytes_per_value(samples: int, channels: int, sample_type: SampleType = SampleType.INT16) -> float:
    """Bytes on the wire per sample value for a frame of this shape (MQTT framing excluded)."""
    return (HEADER_SIZE + samples * channels * sample_type.dtype.itemsize) / (samples * channels)


def sequence_gap(previous: int, current: int) -> int:
    """Frames missing between two sequence numbers, across the u32 wrap; 0 when contiguous.

    A negative result means ``current`` is a repeat or arrived out of order.
    """
    delta = (current - previous - 1) % MAX_SEQUENCE
    return delta - MAX_SEQUENCE if delta >= MAX_SEQUENCE // 2 else delta
