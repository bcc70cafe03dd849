"""The twitchwatch open profile: a documented GATT service a DIY ESP32 / nRF52 board can implement.

The specification a firmware author follows is ``docs/open-profile.md``; this module is its reference
decoder and encoder. In short: one service with a control point (write + indicate) and a data
characteristic (notify). Every data notification is one self-describing frame, little-endian::

    0   u8   protocol version (1)
    1   u8   stream id: 0 = emg (µV), 1 = acc (g), 2 = gyro (°/s), 3-15 = auxN (any unit)
    2   u8   format: bits 0-3 sample type (1 int8, 2 int16, 3 int32, 4 float32, 5 int24),
             bits 4-7 unit (1 µV, 2 g, 3 °/s, 4 unitless) — the codes of twitchwatch's wire frames
    3   u8   channel count (1-32)
    4   u32  sequence number, +1 per frame of this stream, wraps
    8   u64  device time of the first sample, µs (monotonic clock of the board)
    16  f32  sample rate, Hz
    20  f32  scale: physical value = raw × scale, in the unit
    24  …    samples, interleaved sample by sample (s0c0 s0c1 … s1c0 …)

Control point commands and their indicated responses ``F0 <op> <status> <stream> [payload]``:
``01 <stream> <rate u16> <range u16>`` start (0 = device default), ``02 <stream|FF>`` stop,
``03`` list streams (payload: count, then per stream: id, format, channels, maximum rate u16).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from twitchwatch.collector.devices import (
    Chunk,
    ControlError,
    Decoder,
    DeviceProfile,
    GattWrite,
    NotificationError,
    Plan,
    ProfileSettings,
    StatelessDecoder,
    StreamSpec,
    need,
    uniform_times,
)
from twitchwatch.collector.frames import SampleType, Unit

SERVICE: Final = "2ea10001-c8c6-4f65-b0fd-1e2a1953559d"
CONTROL_POINT: Final = "2ea10002-c8c6-4f65-b0fd-1e2a1953559d"  # write with response, indicate
DATA: Final = "2ea10003-c8c6-4f65-b0fd-1e2a1953559d"  # notify

VERSION: Final = 1
HEADER: Final = struct.Struct("<BBBBIQff")
HEADER_SIZE: Final = HEADER.size  # 24
MAX_CHANNELS: Final = 32
MAX_RATE_HZ: Final = 100_000.0
RESPONSE_CODE: Final = 0xF0
ALL_STREAMS: Final = 0xFF
MIN_MTU: Final = 64  # hosts request 247; a frame must fit in one notification (≤ MTU − 3 bytes)

STREAM_NAMES: Final[Mapping[int, str]] = {
    0: "emg",
    1: "acc",
    2: "gyro",
    **{i: f"aux{i}" for i in range(3, 16)},
}
STREAM_IDS: Final[Mapping[str, int]] = {name: i for i, name in STREAM_NAMES.items()}
FIXED_UNITS: Final[Mapping[int, Unit]] = {0: Unit.MICROVOLT, 1: Unit.G, 2: Unit.DEG_PER_S}


class SampleFormat(enum.IntEnum):
    INT8 = 1
    INT16 = 2
    INT32 = 3
    FLOAT32 = 4
    INT24 = 5

    @property
    def size(self) -> int:
        return 3 if self is SampleFormat.INT24 else self.dtype.itemsize

    @property
    def dtype(self) -> np.dtype[np.generic]:
        """Codes 1-4 are the wire frame's own sample types (INT24 has no numpy type: it is unpacked)."""
        if self is SampleFormat.INT24:
            raise ValueError("int24 has no numpy dtype")
        return SampleType(self.value).dtype


class OpCode(enum.IntEnum):
    START = 0x01
    STOP = 0x02
    LIST = 0x03


class Status(enum.IntEnum):
    OK = 0
    UNKNOWN_OPCODE = 1
    UNKNOWN_STREAM = 2
    INVALID_PARAMETER = 3
    ALREADY_IN_STATE = 4
    BUSY = 5


# ------------------------------------------------------------------------------------------- frames


@dataclass(frozen=True, eq=False)
class OpenFrame:
    stream_id: int
    sequence: int
    timestamp_us: int
    sample_rate: float
    scale: float
    unit: Unit
    sample_format: SampleFormat
    raw: npt.NDArray[Any]  # (samples, channels); int32 for int24

    @property
    def stream(self) -> str:
        return STREAM_NAMES[self.stream_id]


def parse_frame(data: bytes) -> OpenFrame:
    """Validate and split one data notification; ``NotificationError`` names the offending byte."""
    need(data, 0, HEADER_SIZE, "open-profile frame header")
    version, stream_id, fmt, channels, sequence, t0_us, rate, scale = HEADER.unpack_from(data)
    if version != VERSION:
        raise NotificationError(f"protocol version {version} (this decoder reads {VERSION})", 0)
    if stream_id not in STREAM_NAMES:
        raise NotificationError(f"stream id {stream_id} is outside 0-15", 1)
    try:
        sample_format = SampleFormat(fmt & 0x0F)
    except ValueError:
        raise NotificationError(f"unknown sample type {fmt & 0x0F}", 2) from None
    try:
        unit = Unit(fmt >> 4)
    except ValueError:
        raise NotificationError(f"unknown unit {fmt >> 4}", 2) from None
    if stream_id in FIXED_UNITS and unit is not FIXED_UNITS[stream_id]:
        raise NotificationError(
            f"stream {STREAM_NAMES[stream_id]} must be in {FIXED_UNITS[stream_id].symbol}", 2
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise NotificationError(f"channel count {channels} is outside 1-{MAX_CHANNELS}", 3)
    if t0_us >= 2**63 // 1000:
        raise NotificationError("timestamp beyond 2^63 ns", 8)
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_HZ):
        raise NotificationError(f"sample rate {rate} is not in (0, {MAX_RATE_HZ:g}] Hz", 16)
    if not (math.isfinite(scale) and scale != 0):
        raise NotificationError(f"scale {scale} is not a finite non-zero number", 20)
    body = len(data) - HEADER_SIZE
    stride = sample_format.size * channels
    if body == 0:
        raise NotificationError("frame has no samples", HEADER_SIZE)
    if body % stride:
        raise NotificationError(
            f"{body} sample bytes is not whole {channels}-channel {sample_format.name.lower()} samples",
            HEADER_SIZE + (body // stride) * stride,
        )
    if sample_format is SampleFormat.INT24:
        octets = np.frombuffer(data, dtype=np.uint8, offset=HEADER_SIZE).astype(np.int32).reshape(-1, 3)
        values = octets[:, 0] | (octets[:, 1] << 8) | (octets[:, 2] << 16)
        raw = np.where(values >= 1 << 23, values - (1 << 24), values).astype(np.int32).reshape(-1, channels)
    else:
        raw = np.frombuffer(data, dtype=sample_format.dtype, offset=HEADER_SIZE).reshape(-1, channels)
        raw = raw.astype(raw.dtype.newbyteorder("="))
        if sample_format is SampleFormat.FLOAT32:
            finite = np.isfinite(raw.reshape(-1))
            if not finite.all():
                raise NotificationError(
                    "non-finite float sample", HEADER_SIZE + 4 * int(np.flatnonzero(~finite)[0])
                )
    return OpenFrame(stream_id, sequence, t0_us, float(rate), float(scale), unit, sample_format, raw)


def encode_frame(
    stream_id: int,
    sequence: int,
    timestamp_us: int,
    sample_rate: float,
    scale: float,
    unit: Unit,
    sample_format: SampleFormat,
    raw: npt.ArrayLike,
) -> bytes:
    """What a board sends: the reference encoder (tests, the BLE simulator, firmware authors)."""
    values = np.asarray(raw)
    if values.ndim != 2:
        raise ValueError("raw must be (samples, channels)")
    header = HEADER.pack(
        VERSION,
        stream_id,
        int(sample_format) | (int(unit) << 4),
        values.shape[1],
        sequence,
        timestamp_us,
        sample_rate,
        scale,
    )
    if sample_format is SampleFormat.INT24:
        ints = values.astype(np.int64).reshape(-1)
        if ints.size and (ints.min() < -(1 << 23) or ints.max() >= 1 << 23):
            raise ValueError("int24 samples must lie in -2^23 … 2^23-1")
        ints = ints & 0xFFFFFF
        body = (
            np.stack([ints & 0xFF, (ints >> 8) & 0xFF, (ints >> 16) & 0xFF], axis=1)
            .astype(np.uint8)
            .tobytes()
        )
    else:
        body = np.ascontiguousarray(values, dtype=sample_format.dtype).tobytes()
    return header + body


@dataclass(frozen=True)
class FrameDecoder(StatelessDecoder):
    streams: frozenset[str] = frozenset(STREAM_NAMES.values())

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        frame = parse_frame(data)
        times = uniform_times(frame.timestamp_us * 1000, len(frame.raw), frame.sample_rate, 8)
        chunk = Chunk(
            frame.stream, frame.raw, frame.scale, frame.unit, frame.sample_rate, times, frame.sequence
        )
        return (chunk,)


# ------------------------------------------------------------------------------------- control point


def start_command(stream_id: int, rate_hz: int = 0, range_value: int = 0) -> bytes:
    return struct.pack("<BBHH", OpCode.START, stream_id, rate_hz, range_value)


def stop_command(stream_id: int = ALL_STREAMS) -> bytes:
    return bytes([OpCode.STOP, stream_id])


LIST_COMMAND: Final = bytes([OpCode.LIST])


@dataclass(frozen=True)
class StreamInfo:
    stream_id: int
    sample_format: SampleFormat
    unit: Unit
    channels: int
    max_rate_hz: int


@dataclass(frozen=True)
class Response:
    op_code: int
    status: int
    stream_id: int
    streams: tuple[StreamInfo, ...] = ()  # LIST only

    @property
    def status_name(self) -> str:
        try:
            return Status(self.status).name
        except ValueError:
            return f"UNKNOWN_{self.status}"


def parse_response(data: bytes) -> Response:
    need(data, 0, 4, "control point response")
    if data[0] != RESPONSE_CODE:
        raise NotificationError(f"response code 0x{data[0]:02X} is not 0xF0", 0)
    op, status, stream_id = data[1], data[2], data[3]
    if op != OpCode.LIST or status != Status.OK:
        return Response(op, status, stream_id)
    need(data, 4, 1, "stream count")
    count = data[4]
    infos = []
    for k in range(count):
        at = 5 + 5 * k
        need(data, at, 5, f"stream descriptor {k}")
        sid, fmt, channels, max_rate = struct.unpack_from("<BBBH", data, at)
        try:
            info = StreamInfo(sid, SampleFormat(fmt & 0x0F), Unit(fmt >> 4), channels, max_rate)
        except ValueError:
            raise NotificationError(
                f"stream descriptor {k} has an unknown format byte 0x{fmt:02X}", at + 1
            ) from None
        infos.append(info)
    return Response(op, status, stream_id, tuple(infos))


def check_started(data: bytes, stream_id: int) -> Response:
    """The reply to ``start_command``; ``ControlError`` unless it is OK for this stream."""
    try:
        response = parse_response(data)
    except NotificationError as exc:
        raise ControlError(f"malformed start response {data.hex()}: {exc}") from None
    if response.op_code != OpCode.START or response.stream_id != stream_id:
        raise ControlError(f"expected the start response for stream {stream_id}, got {data.hex()}")
    if response.status != Status.OK:
        raise ControlError(
            f"device refused to start stream {STREAM_NAMES.get(stream_id)}: {response.status_name}"
        )
    return response


# ------------------------------------------------------------------------------------------- profile

_U16 = Field(0, ge=0, le=65535)


class OpenSettings(ProfileSettings):
    type: Literal["open"] = "open"
    emg_rate_hz: int = _U16  # 0 = the board's default
    acc_rate_hz: int = _U16
    gyro_rate_hz: int = _U16
    emg_range: int = _U16  # board-specific (e.g. a gain code); 0 = default
    acc_range_g: int = _U16
    gyro_range_dps: int = _U16


class OpenProfile(DeviceProfile):
    """DIY board implementing ``docs/open-profile.md``."""

    NAME = "open"
    TITLE = "twitchwatch open profile (DIY ESP32 / nRF52)"
    SERVICE = SERVICE
    SETTINGS = OpenSettings
    STREAMS = (
        StreamSpec("emg", "emg", Unit.MICROVOLT, (), DATA),
        StreamSpec("acc", "acc", Unit.G, (), DATA),
        StreamSpec("gyro", "gyro", Unit.DEG_PER_S, (), DATA),
    )
    DEFAULT_STREAM = "emg"
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {"response": parse_response}

    @classmethod
    def movement_streams(cls) -> tuple[str, ...]:
        return ()  # a board may be built without a gyroscope: stream it only when the device map says so

    @property
    def open_settings(self) -> OpenSettings:
        assert isinstance(self.settings, OpenSettings)
        return self.settings

    def _rate_range(self, stream: str) -> tuple[int, int]:
        s = self.open_settings
        return {
            "emg": (s.emg_rate_hz, s.emg_range),
            "acc": (s.acc_rate_hz, s.acc_range_g),
            "gyro": (s.gyro_rate_hz, s.gyro_range_dps),
        }[stream]

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        return Plan(
            streams=chosen,
            notify=(CONTROL_POINT, DATA),
            start=tuple(
                GattWrite(CONTROL_POINT, start_command(STREAM_IDS[s], *self._rate_range(s)), reply=True)
                for s in chosen
            ),
            stop=tuple(GattWrite(CONTROL_POINT, stop_command(STREAM_IDS[s]), reply=True) for s in chosen),
            min_mtu=MIN_MTU,
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        chosen = self.check_streams(streams)
        if replies:
            if len(replies) != len(chosen):
                raise ControlError(f"expected {len(chosen)} start responses, got {len(replies)}")
            for stream, reply in zip(chosen, replies, strict=True):
                check_started(reply, STREAM_IDS[stream])
        return {DATA: FrameDecoder()}
