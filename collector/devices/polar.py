"""Polar H10 and Verity Sense over the PMD (Polar Measurement Data) service: accelerometer and gyroscope.

Built from Polar's public BLE SDK behaviour as recorded in ``../shared/test-vectors/polar_pmd.json`` and
``tests/data/vectors/polar_pmd_gyro.json``, and from Polar's "Polar Measurement Data" description
(``technical_documentation/online_measurement.pdf``, version 1.0, 2024) — bytes and values only; no SDK code.

Data notification (characteristic ``PMD_DATA``), little-endian::

    0     measurement type (low 6 bits; ACC = 2, GYRO = 5)
    1..8  u64 timestamp of the LAST sample, ns since 2000-01-01 (Polar epoch)
    9     frame type: bit 7 = compressed (delta) frame, bits 0-6 = type
    10..  content

ACC content: raw type 0/1/2 = int8/int16/int24 x,y,z per sample. Compressed types 0 and 1 = an int16
x,y,z reference sample, then blocks ``[bit width][sample count]`` of signed deltas packed LSB-first,
channel-interleaved. Compressed type 0 counts are in units of FACTOR g; the SDK reports
``mG = trunc(float32(count) × float32(FACTOR·1000))`` and so does this decoder (vector-pinned; it costs the
resolution below 1 mG). Every other type is in mG (× FACTOR when FACTOR ≠ 1).

GYRO content (°/s): type 0 = int16 x,y,z counts × FACTOR; type 1 = float32 x,y,z in °/s (× FACTOR when
FACTOR ≠ 1). Compressed type 0 is laid out like the ACC delta frames; compressed type 1 has a reference
sample of three 32-bit words and its deltas are added to the words' integer bit patterns, which are then
read as IEEE 754 floats — so the Android SDK does, and its test asserts it. Both SDKs parse only compressed
gyro frames (iOS only type 0); the raw types follow the layout Polar's description documents.

Which model has what: the H10 streams ACC only; the Verity Sense ACC and GYRO (52 Hz, ±2000 °/s without
SDK mode). The control point's read value says which measurement types a device offers (``0F`` then a
bitmap, bit *n* = measurement type *n*: ``parse_features``).

FACTOR arrives in the start-measurement response on the control point (setting TLV ``05 01 <float32>``);
``parse_start_response`` returns it as a typed ``StartResult`` and ``decoders(..., replies)`` uses it —
one response per started measurement, in the plan's order.

Per-sample times (the only state): with the previous frame's timestamp P of the same (measurement type,
frame type) and this frame's T over n samples, sample i is ``round(P + (T−P)·(i+1)/n)``, the last is T;
without a previous frame (P = 0) they count back from T at 1e9/sample_rate. Rounding is half-to-even
like the Android SDK (``kotlin.math.round``); the iOS SDK rounds half away from zero
(``timestamp_rounding``). Computed exactly in integers. Unlike the SDK, a T not after P (a device clock
reset) falls back to counting back at the sample rate rather than producing times that run backwards.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from twitchwatch.collector.devices import (
    Chunk,
    ControlError,
    Decoder,
    DeviceProfile,
    GattWrite,
    NotificationError,
    ParamError,
    Plan,
    ProfileSettings,
    ScanMatch,
    StreamSpec,
    need,
    validate_model,
)
from twitchwatch.collector.frames import Unit

PMD_SERVICE: Final = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
# Polar sensors advertise the Heart Rate service and Polar Electro's company id rather than PMD.
HEART_RATE_SERVICE: Final = "0000180d-0000-1000-8000-00805f9b34fb"
POLAR_COMPANY_ID: Final = 0x006B
PMD_CONTROL_POINT: Final = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"  # read, write, indicate
PMD_DATA: Final = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"  # notify
POLAR_EPOCH_NS: Final = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
PMD_MTU: Final = 232  # the SDK negotiates this before starting a stream (status ERROR_INVALID_MTU otherwise)
FACTOR_RANGE: Final = (1e-9, 1e9)  # a usable FACTOR from a start response (g or mV per count)

RESPONSE_CODE: Final = 0xF0
ONLINE_MEASUREMENT_STOPPED: Final = 0x01
MAX_FRAME_TYPE: Final = 10  # the SDK's frame-type enum ends at TYPE_10; it rejects e.g. 0x7F
HEADER_SIZE: Final = 10


class MeasurementType(enum.IntEnum):
    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAGNETOMETER = 6
    SDK_MODE = 9
    LOCATION = 10
    PRESSURE = 11
    TEMPERATURE = 12


class OpCode(enum.IntEnum):
    GET_MEASUREMENT_SETTINGS = 1
    REQUEST_MEASUREMENT_START = 2
    STOP_MEASUREMENT = 3


class Status(enum.IntEnum):
    SUCCESS = 0
    ERROR_INVALID_OP_CODE = 1
    ERROR_INVALID_MEASUREMENT_TYPE = 2
    ERROR_NOT_SUPPORTED = 3
    ERROR_INVALID_LENGTH = 4
    ERROR_INVALID_PARAMETER = 5
    ERROR_ALREADY_IN_STATE = 6
    ERROR_INVALID_RESOLUTION = 7
    ERROR_INVALID_SAMPLE_RATE = 8
    ERROR_INVALID_RANGE = 9
    ERROR_INVALID_MTU = 10
    ERROR_INVALID_NUMBER_OF_CHANNELS = 11
    ERROR_INVALID_STATE = 12
    ERROR_DEVICE_IN_CHARGER = 13


class Setting(enum.IntEnum):
    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5
    SECURITY = 6


# Value format per setting (struct codes; SECURITY is 16 opaque bytes). RANGE_MILLIUNIT is signed, as the
# Android SDK reads it (iOS reads it unsigned).
_SETTING_FORMAT: Final[Mapping[Setting, str]] = {
    Setting.SAMPLE_RATE: "<H",
    Setting.RESOLUTION: "<H",
    Setting.RANGE: "<H",
    Setting.RANGE_MILLIUNIT: "<i",
    Setting.CHANNELS: "<B",
    Setting.FACTOR: "<f",
    Setting.SECURITY: "16s",
}

SettingValue = int | float | bytes
Rounding = Literal["half_even", "half_away_from_zero"]


# --------------------------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class FrameHeader:
    measurement_type: int
    timestamp_ns: int  # time of the last sample, Polar epoch
    frame_type: int  # 0-127, without the compressed bit
    compressed: bool
    content: bytes

    @property
    def frame_type_byte(self) -> int:
        return self.frame_type | (0x80 if self.compressed else 0)


def parse_frame_header(data: bytes) -> FrameHeader:
    """Split a PMD data notification into header fields and content."""
    need(data, 0, HEADER_SIZE, "PMD frame header")
    type_byte = data[9]
    if type_byte & 0x7F > MAX_FRAME_TYPE:
        raise NotificationError(f"frame type 0x{type_byte:02X} is not a known PMD frame type", 9)
    return FrameHeader(
        measurement_type=data[0] & 0x3F,
        timestamp_ns=int.from_bytes(data[1:9], "little"),
        frame_type=type_byte & 0x7F,
        compressed=bool(type_byte & 0x80),
        content=bytes(data[HEADER_SIZE:]),
    )


@dataclass(frozen=True, eq=False)
class AccFrame:
    header: FrameHeader
    counts: npt.NDArray[np.int64]  # (samples, 3) as sent, before FACTOR


_RAW_SIZES: Final = {0: 1, 1: 2, 2: 3}


def _signed(values: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.int64]:
    if bits == 0:
        return values
    return np.where(values >= (1 << (bits - 1)), values - (1 << bits), values)


def _unpack_lsb_first(block: bytes, width: int, count: int) -> npt.NDArray[np.int64]:
    """``count`` signed ``width``-bit integers packed LSB-first."""
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(block, dtype=np.uint8), bitorder="little")[: count * width]
    weights = np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))
    return _signed(bits.reshape(count, width).astype(np.int64) @ weights, width)


def _raw_counts(content: bytes, size: int, what: str = "ACC") -> npt.NDArray[np.int64]:
    stride = 3 * size
    if not content:
        raise NotificationError(f"{what} frame has no samples", HEADER_SIZE)
    if len(content) % stride:
        raise NotificationError(
            f"{len(content)} content bytes is not a whole number of {stride}-byte samples",
            HEADER_SIZE + (len(content) // stride) * stride,
        )
    octets = np.frombuffer(content, dtype=np.uint8).astype(np.int64).reshape(-1, 3, size)
    weights = np.left_shift(np.int64(1), 8 * np.arange(size, dtype=np.int64))
    return _signed(octets @ weights, 8 * size)


def _compressed_counts(
    content: bytes, size: int = 2, what: str = "ACC", words: bool = False
) -> npt.NDArray[np.int64]:
    """Reference sample of three ``size``-byte signed values, then delta blocks. ``words``: the values are
    32-bit patterns (a float frame), so sums wrap modulo 2³² as the SDK's ``Int`` arithmetic does."""
    if len(content) < 3 * size:  # offsets name the notification's byte, not the content's
        raise NotificationError(
            f"truncated reference sample of a compressed {what} frame: needs {3 * size} bytes, "
            f"{len(content)} left",
            HEADER_SIZE + len(content),
        )
    last = _signed(
        np.frombuffer(content[: 3 * size], dtype=np.uint8).astype(np.int64).reshape(3, size)
        @ np.left_shift(np.int64(1), 8 * np.arange(size, dtype=np.int64)),
        8 * size,
    )
    parts = [last.reshape(1, 3)]
    pos = 3 * size
    while pos < len(content):  # each pass consumes ≥ 2 bytes
        at = HEADER_SIZE + pos
        if len(content) - pos < 2:
            raise NotificationError("truncated delta block header", at)
        width, count = content[pos], content[pos + 1]
        if width > 32:
            raise NotificationError(f"delta width of {width} bits is impossible", at)
        nbytes = (width * count * 3 + 7) // 8
        if pos + 2 + nbytes > len(content):
            raise NotificationError(
                f"truncated delta block: {nbytes} bytes needed, {len(content) - pos - 2} left", at
            )
        deltas = _unpack_lsb_first(content[pos + 2 : pos + 2 + nbytes], width, count * 3).reshape(count, 3)
        block = last + np.cumsum(deltas, axis=0)
        if count:
            if words:
                block = _signed(block & 0xFFFFFFFF, 32)
            elif np.abs(block).max() >= 2**31:
                raise NotificationError("delta block overflows 32-bit samples", at)
            parts.append(block)
            last = block[-1]
        pos += 2 + nbytes
    return np.concatenate(parts)


def _check_type(header: FrameHeader, expected: MeasurementType) -> None:
    if header.measurement_type != expected:
        raise NotificationError(
            f"measurement type {header.measurement_type} is not {expected.name} ({expected.value})", 0
        )


def parse_acc_frame(data: bytes) -> AccFrame:
    """Header and raw counts of an ACC frame (any supported frame type)."""
    header = parse_frame_header(data)
    _check_type(header, MeasurementType.ACC)
    if header.compressed:
        if header.frame_type not in (0, 1):
            raise NotificationError(f"compressed ACC frame type {header.frame_type} is not supported", 9)
        counts = _compressed_counts(header.content)
    else:
        if header.frame_type not in _RAW_SIZES:
            raise NotificationError(f"raw ACC frame type {header.frame_type} is not supported", 9)
        counts = _raw_counts(header.content, _RAW_SIZES[header.frame_type])
    return AccFrame(header, counts)


def acc_milli_g(frame: AccFrame, factor: float) -> tuple[npt.NDArray[np.int32], float]:
    """(raw, scale) with raw × scale in g, following the SDK's rules (see the module docstring)."""
    f32 = np.float32(factor)
    if frame.header.compressed and frame.header.frame_type == 0:
        with np.errstate(over="ignore", invalid="ignore"):
            product = frame.counts.astype(np.float32) * (f32 * np.float32(1000.0))
        if not np.isfinite(product).all() or np.abs(product).max() >= 2**31:
            raise NotificationError("sample × FACTOR does not fit 32-bit milli-g", HEADER_SIZE)
        return np.trunc(product).astype(np.int32), 0.001
    return frame.counts.astype(np.int32), float(f32) * 0.001 if f32 != 1 else 0.001


@dataclass(frozen=True, eq=False)
class GyroFrame:
    """A GYRO frame's samples as sent, before FACTOR: int16-derived counts (type 0) or float32 °/s
    (type 1)."""

    header: FrameHeader
    values: npt.NDArray[np.int64] | npt.NDArray[np.float32]  # (samples, 3)

    @property
    def floats(self) -> bool:
        return self.header.frame_type == 1


def parse_gyro_frame(data: bytes) -> GyroFrame:
    """Header and samples of a GYRO frame: types 0 (int16) and 1 (float32), raw or compressed."""
    header = parse_frame_header(data)
    _check_type(header, MeasurementType.GYRO)
    kind = "compressed" if header.compressed else "raw"
    if header.frame_type not in (0, 1):
        raise NotificationError(f"{kind} GYRO frame type {header.frame_type} is not supported", 9)
    floats = header.frame_type == 1
    size = 4 if floats else 2
    if header.compressed:
        counts = _compressed_counts(header.content, size, "GYRO", words=floats)
    else:
        counts = _raw_counts(header.content, size, "GYRO")
    if not floats:
        return GyroFrame(header, counts)
    values = counts.astype(np.int32).view(np.float32)
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        at = HEADER_SIZE + (row * 3 * size if not header.compressed else 0)
        raise NotificationError("GYRO sample is not a finite number", at)
    return GyroFrame(header, values)


def gyro_deg_per_s(frame: GyroFrame, factor: float) -> tuple[npt.NDArray[Any], float]:
    """(raw, scale) with raw × scale in °/s. Integer counts keep their value and carry FACTOR as the
    scale; float samples are multiplied by FACTOR in float32, as the SDK does (scale 1)."""
    f32 = np.float32(factor)
    if not frame.floats:
        return frame.values.astype(np.int32), float(f32)
    values = frame.values.astype(np.float32)
    if f32 == 1:
        return values, 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        product = values * f32
    if not np.isfinite(product).all():
        raise NotificationError("sample × FACTOR does not fit a float32", HEADER_SIZE)
    return product, 1.0


# ----------------------------------------------------------------------------------------- timestamps


# A frame whose previous frame's timestamp lies more samples back than it holds, by more than this many
# samples plus this share of its count, follows samples that never came (``_frame_stamps``): consecutive
# frames are one frame apart to the sample by the device's own clock; the share allows a rate some % off
# nominal. Compressed frames vary in size with the signal, so a ratio of spans (1.5 frames, before) missed a
# lost 12-sample frame before a 60-sample one, and spread the 72 samples' time over 60.
LOST_SLACK_SAMPLES = 2
LOST_SLACK_SHARE = 0.05


def _round_ratio(num: int, den: int, rounding: Rounding) -> int:
    quotient, remainder = divmod(num, den)
    twice = 2 * remainder
    if twice != den:
        return quotient + (twice > den)
    if rounding == "half_even":
        return quotient + (quotient & 1)
    return quotient + 1 if num > 0 else quotient


def sample_times(
    timestamp: int, previous: int, count: int, sample_rate: float, rounding: Rounding = "half_even"
) -> list[int] | None:
    """Per-sample times of a frame whose last sample is at ``timestamp`` (see the module docstring).

    ``None`` when neither a previous timestamp nor a sample rate is known."""
    if count == 0:
        return []
    if 0 < previous < timestamp:
        span = timestamp - previous
        head = [_round_ratio(previous * count + span * (i + 1), count, rounding) for i in range(count - 1)]
        return [*head, timestamp]
    if sample_rate > 0:
        rate = Fraction(sample_rate)
        num, den = rate.numerator, rate.denominator
        return [
            _round_ratio(timestamp * num - (count - 1 - i) * 10**9 * den, num, rounding) for i in range(count)
        ]
    return None


@dataclass(frozen=True)
class PmdState:
    """Previous frame timestamp per (measurement type, frame type byte); 0 = none yet."""

    previous: Mapping[tuple[int, int], int] = field(default_factory=dict)

    def previous_for(self, header: FrameHeader) -> int:
        return self.previous.get((header.measurement_type, header.frame_type_byte), 0)

    def after(self, header: FrameHeader) -> PmdState:
        key = (header.measurement_type, header.frame_type_byte)
        return PmdState({**self.previous, key: header.timestamp_ns})


def _frame_stamps(
    header: FrameHeader, state: PmdState, count: int, sample_rate: float, rounding: Rounding
) -> tuple[npt.NDArray[np.int64] | None, int]:
    """Per-sample times and the samples lost before the frame. Where the rate is known and the previous
    frame's timestamp lies well over a frame before this one's (a frame that never arrived, or arrived cut
    and was refused), the samples are counted back from this frame's timestamp at the rate and the span
    between is lost: spread over it, they would put this frame a whole frame early, with no gap shown."""
    previous, lost = state.previous_for(header), 0
    if previous and sample_rate > 0 and count:
        span_samples = (header.timestamp_ns - previous) * sample_rate / 1e9
        if span_samples - count > LOST_SLACK_SAMPLES + LOST_SLACK_SHARE * count:
            previous, lost = 0, round(span_samples) - count
    times = sample_times(header.timestamp_ns, previous, count, sample_rate, rounding)
    if times is None:
        return None, 0
    if max(times) >= 2**63 or min(times) < -(2**63):
        raise NotificationError("frame timestamp does not fit in int64 nanoseconds", 1)
    return np.array(times, dtype=np.int64), lost


@dataclass(frozen=True)
class _PmdStreamDecoder(Decoder[PmdState]):
    factor: float = 1.0
    sample_rate_hz: float = 0.0  # 0 = unknown (then times need a previous frame)
    rounding: Rounding = "half_even"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"FACTOR must be finite and > 0, got {self.factor}")
        if not (np.isfinite(self.sample_rate_hz) and self.sample_rate_hz >= 0):
            raise ValueError(f"sample rate must be finite and ≥ 0, got {self.sample_rate_hz}")

    def initial_state(self) -> PmdState:
        return PmdState()


@dataclass(frozen=True)
class PmdAccDecoder(_PmdStreamDecoder):
    """ACC frames on ``PMD_DATA`` → one ``acc`` chunk in g with per-sample Polar-epoch times."""

    streams: frozenset[str] = frozenset({"acc"})

    def decode(self, data: bytes, state: PmdState) -> tuple[tuple[Chunk, ...], PmdState]:
        frame = parse_acc_frame(bytes(data))
        raw, scale = acc_milli_g(frame, self.factor)
        stamps, lost = _frame_stamps(frame.header, state, len(raw), self.sample_rate_hz, self.rounding)
        rate = self.sample_rate_hz or None
        chunk = Chunk("acc", raw, scale, Unit.G, rate, stamps, lost_samples=lost)
        return (chunk,), state.after(frame.header)


@dataclass(frozen=True)
class PmdGyroDecoder(_PmdStreamDecoder):
    """GYRO frames on ``PMD_DATA`` → one ``gyro`` chunk in °/s with per-sample Polar-epoch times."""

    streams: frozenset[str] = frozenset({"gyro"})

    def decode(self, data: bytes, state: PmdState) -> tuple[tuple[Chunk, ...], PmdState]:
        frame = parse_gyro_frame(bytes(data))
        raw, scale = gyro_deg_per_s(frame, self.factor)
        stamps, lost = _frame_stamps(frame.header, state, len(raw), self.sample_rate_hz, self.rounding)
        rate = self.sample_rate_hz or None
        chunk = Chunk("gyro", raw, scale, Unit.DEG_PER_S, rate, stamps, lost_samples=lost)
        return (chunk,), state.after(frame.header)


@dataclass(frozen=True, eq=False)
class PmdDecoder(Decoder[PmdState]):
    """Several measurements on the one ``PMD_DATA`` characteristic: each frame goes to the decoder of its
    measurement type; the timestamp state is shared (it is keyed by measurement type already)."""

    by_type: Mapping[int, _PmdStreamDecoder]
    streams: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams", frozenset().union(*(d.streams for d in self.by_type.values())))

    def initial_state(self) -> PmdState:
        return PmdState()

    def decode(self, data: bytes, state: PmdState) -> tuple[tuple[Chunk, ...], PmdState]:
        need(data, 0, 1, "PMD measurement type")
        mtype = data[0] & 0x3F
        decoder = self.by_type.get(mtype)
        if decoder is None:
            started = ", ".join(_type_name(t) for t in sorted(self.by_type))
            raise NotificationError(f"a frame of {_type_name(mtype)}, but only {started} were started", 0)
        return decoder.decode(data, state)


def _type_name(mtype: int) -> str:
    try:
        return MeasurementType(mtype).name
    except ValueError:
        return f"measurement type {mtype}"


# ------------------------------------------------------------------------------------- control point


def settings_request(measurement_type: int) -> bytes:
    return bytes([OpCode.GET_MEASUREMENT_SETTINGS, measurement_type])


def start_request(
    measurement_type: int, settings: Sequence[tuple[Setting, SettingValue]], offline: bool = False
) -> bytes:
    """REQUEST_MEASUREMENT_START: op, type (| 0x80 for offline recording), then one TLV per setting."""
    out = bytearray([OpCode.REQUEST_MEASUREMENT_START, measurement_type | (0x80 if offline else 0)])
    for setting, value in settings:
        out += bytes([setting, 1]) + struct.pack(_SETTING_FORMAT[setting], value)
    return bytes(out)


def stop_request(measurement_type: int) -> bytes:
    return bytes([OpCode.STOP_MEASUREMENT, measurement_type])


def parse_settings(data: bytes) -> dict[Setting, tuple[SettingValue, ...]]:
    """Setting TLVs ``[type][count][count × value]`` (a settings or start response's parameters)."""
    out: dict[Setting, tuple[SettingValue, ...]] = {}
    pos = 0
    while pos < len(data):  # each pass consumes ≥ 2 bytes
        if len(data) - pos < 2:
            raise NotificationError("truncated setting header", pos)
        try:
            setting = Setting(data[pos])
        except ValueError:
            raise NotificationError(f"unknown PMD setting type {data[pos]}", pos) from None
        fmt = struct.Struct(_SETTING_FORMAT[setting])
        count = data[pos + 1]
        need(data, pos + 2, count * fmt.size, f"{setting.name} values")
        values = tuple(fmt.unpack_from(data, pos + 2 + k * fmt.size)[0] for k in range(count))
        out[setting] = values
        pos += 2 + count * fmt.size
    return out


@dataclass(frozen=True)
class SettingsBlock:
    settings: Mapping[Setting, tuple[SettingValue, ...]]


def parse_settings_block(data: bytes) -> SettingsBlock:
    return SettingsBlock(parse_settings(data))


@dataclass(frozen=True)
class ControlResponse:
    """``F0 <op> <measurement type> <status> [<more> <parameters…>]`` indicated on the control point."""

    response_code: int
    op_code: int
    measurement_type: int
    status: int
    more: bool
    parameters: bytes

    @property
    def status_name(self) -> str:
        try:
            return Status(self.status).name
        except ValueError:
            return f"UNKNOWN_{self.status}"


@dataclass(frozen=True)
class ServiceNotification:
    """Device-initiated indication, e.g. ``01 <types…>``: these online measurements stopped."""

    op_code: int
    measurement_types: tuple[int, ...]


def parse_control_point(data: bytes) -> ControlResponse | ServiceNotification:
    need(data, 0, 1, "control point message")
    if data[0] == RESPONSE_CODE:
        need(data, 0, 4, "control point response")
        return ControlResponse(
            response_code=data[0],
            op_code=data[1],
            measurement_type=data[2],
            status=data[3],
            more=len(data) > 4 and data[4] != 0,
            parameters=bytes(data[5:]),
        )
    if data[0] == ONLINE_MEASUREMENT_STOPPED:
        return ServiceNotification(data[0], tuple(data[1:]))
    raise NotificationError(f"control point message type 0x{data[0]:02X} is unknown", 0)


FEATURES_READ: Final = 0x0F


@dataclass(frozen=True)
class Features:
    """The control point's read value: ``0F`` then a little-endian bitmap, bit *n* = measurement type *n*
    offered (a Verity Sense reads ``0F 6E 02 00…``: PPG, ACC, PPI, GYRO, MAGNETOMETER, SDK_MODE)."""

    measurement_types: tuple[int, ...]
    names: tuple[str, ...]

    def offers(self, measurement_type: int) -> bool:
        return measurement_type in self.measurement_types


def parse_features(data: bytes) -> Features:
    need(data, 0, 2, "PMD features read")
    if data[0] != FEATURES_READ:
        raise NotificationError(f"a PMD features read starts with 0F, not {data[0]:02X}", 0)
    bitmap = int.from_bytes(data[1:], "little")
    types = tuple(n for n in range(8 * (len(data) - 1)) if bitmap >> n & 1)
    return Features(types, tuple(_type_name(t) for t in types))


@dataclass(frozen=True)
class StartResult:
    """A successful start: the FACTOR the device will scale this stream's frames by."""

    measurement_type: int
    factor: float


def parse_start_response(data: bytes, measurement_type: int) -> StartResult:
    """The control point's answer to ``start_request``; ``ControlError`` when it refused or is malformed."""
    try:
        message = parse_control_point(data)
        settings = parse_settings(message.parameters) if isinstance(message, ControlResponse) else {}
    except NotificationError as exc:
        raise ControlError(f"malformed start response {data.hex()}: {exc}") from None
    if not isinstance(message, ControlResponse) or message.op_code != OpCode.REQUEST_MEASUREMENT_START:
        raise ControlError(f"expected a start-measurement response, got {data.hex()}")
    if message.measurement_type != measurement_type:
        raise ControlError(
            f"start response is for measurement type {message.measurement_type}, not {measurement_type}"
        )
    if message.status != Status.SUCCESS:
        raise ControlError(
            f"device refused to start measurement type {measurement_type}: {message.status_name}"
        )
    factor = settings.get(Setting.FACTOR, (1.0,))[0]
    # Published factors are 1.0 and 2.44e-4 (g per count); one far outside made a frame scale that is 0
    # (or inf) as the float32 on the wire, and the worker refused every frame of the stream.
    if not (isinstance(factor, float) and FACTOR_RANGE[0] <= factor <= FACTOR_RANGE[1]):
        raise ControlError(
            f"start response carries an unusable FACTOR {factor!r} (expected {FACTOR_RANGE[0]:g} to "
            f"{FACTOR_RANGE[1]:g})"
        )
    return StartResult(measurement_type, factor)


# ------------------------------------------------------------------------------------------ profiles


class _PolarSettings(ProfileSettings):
    rate_hz: int
    range_g: int

    def rate_and_range(self, stream: str) -> tuple[int, int]:
        """Sample rate (Hz) and range (g, or °/s for the gyroscope) a stream is started with."""
        return self.rate_hz, self.range_g


class PolarH10Settings(_PolarSettings):
    type: Literal["polar-h10"] = "polar-h10"
    rate_hz: Literal[25, 50, 100, 200] = 200
    range_g: Literal[2, 4, 8] = 8


class PolarVeritySettings(_PolarSettings):
    """Without SDK mode the Verity Sense offers one setting each (Polar's product page): ACC 52 Hz ±8 g,
    GYRO 52 Hz ±2000 °/s."""

    type: Literal["polar-verity"] = "polar-verity"
    rate_hz: Literal[52] = 52
    range_g: Literal[8] = 8
    gyro_rate_hz: Literal[52] = 52
    gyro_range_dps: Literal[2000] = 2000

    def rate_and_range(self, stream: str) -> tuple[int, int]:
        return (self.gyro_rate_hz, self.gyro_range_dps) if stream == "gyro" else (self.rate_hz, self.range_g)


class _DecodeParams(BaseModel):
    """Context a single frame does not carry, named as in ``polar_pmd.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: float = Field(1.0, gt=0, allow_inf_nan=False)
    factor_is_float32: Literal[True] = True  # FACTOR is always used as the float32 the device sent
    sample_rate_hz: float | None = Field(None, ge=0, allow_inf_nan=False)
    previous_timestamp_ns: int = Field(0, ge=0, lt=2**64)
    timestamp_rounding: Rounding = "half_even"
    range_g: int | None = None  # informational; checked against the model's ranges


# Which measurement carries each stream, and the decoder that reads its frames.
_MEASUREMENT: Final[Mapping[str, MeasurementType]] = {
    "acc": MeasurementType.ACC,
    "gyro": MeasurementType.GYRO,
}
_DECODER: Final[Mapping[str, type[_PmdStreamDecoder]]] = {"acc": PmdAccDecoder, "gyro": PmdGyroDecoder}


class _PolarProfile(DeviceProfile):
    SERVICE = PMD_SERVICE
    STREAMS: ClassVar[tuple[StreamSpec, ...]] = (StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), PMD_DATA),)
    DEFAULT_STREAM = "acc"
    DEVICE_EPOCH_NS = POLAR_EPOCH_NS
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {
        "pmd-header": parse_frame_header,
        "pmd-control": parse_control_point,
        "pmd-settings": parse_settings_block,
        "pmd-features": parse_features,
    }
    EXTRA_START_SETTINGS: ClassVar[tuple[tuple[Setting, int], ...]] = ()

    @property
    def polar_settings(self) -> _PolarSettings:
        assert isinstance(self.settings, _PolarSettings)
        return self.settings

    def start_settings(self, stream: str) -> list[tuple[Setting, SettingValue]]:
        """The setting TLVs of ``stream``'s start request."""
        rate, range_ = self.polar_settings.rate_and_range(stream)
        base = [(Setting.SAMPLE_RATE, rate), (Setting.RESOLUTION, 16), (Setting.RANGE, range_)]
        return [*base, *self.EXTRA_START_SETTINGS]

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        types = [_MEASUREMENT[stream] for stream in chosen]
        return Plan(
            streams=chosen,
            notify=(PMD_CONTROL_POINT, PMD_DATA),
            start=tuple(
                GattWrite(PMD_CONTROL_POINT, start_request(t, self.start_settings(stream)), reply=True)
                for stream, t in zip(chosen, types, strict=True)
            ),
            stop=tuple(GattWrite(PMD_CONTROL_POINT, stop_request(t), reply=True) for t in types),
            min_mtu=PMD_MTU,
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        chosen = self.check_streams(streams)
        if len(replies) != len(chosen):
            raise ControlError(
                f"{self.NAME} needs one start-measurement response per stream ({len(chosen)}: each carries "
                f"its FACTOR), got {len(replies)}"
            )
        by_type: dict[int, _PmdStreamDecoder] = {}
        for stream, reply in zip(chosen, replies, strict=True):
            started = parse_start_response(reply, _MEASUREMENT[stream])
            rate, _ = self.polar_settings.rate_and_range(stream)
            by_type[_MEASUREMENT[stream]] = _DECODER[stream](started.factor, float(rate))
        if len(by_type) == 1:
            (only,) = by_type.values()
            return {PMD_DATA: only}
        return {PMD_DATA: PmdDecoder(by_type)}

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        cls.spec(stream)
        p = validate_model(_DecodeParams, params, f"{cls.NAME} decode parameters")
        ranges = get_args(cls.SETTINGS.model_fields["range_g"].annotation)
        if p.range_g is not None and p.range_g not in ranges:
            raise ParamError(
                f"{cls.NAME} decode parameters", [("range_g", f"{cls.NAME} ranges are {ranges}")]
            )
        default_rate, _ = cls.from_params({}).polar_settings.rate_and_range(stream)
        rate = p.sample_rate_hz if p.sample_rate_hz is not None else float(default_rate)
        decoder = _DECODER[stream](p.factor, rate, p.timestamp_rounding)
        state = PmdState()
        if p.previous_timestamp_ns:
            header = parse_frame_header(data)
            state = PmdState({(header.measurement_type, header.frame_type_byte): p.previous_timestamp_ns})
        return decoder, state


class PolarH10(_PolarProfile):
    """Polar H10 chest strap: ACC 25-200 Hz, ±2/4/8 g, raw int16 frames in mG. No gyroscope."""

    NAME = "polar-h10"
    TITLE = "Polar H10"
    SETTINGS = PolarH10Settings
    SCAN = ScanMatch((PMD_SERVICE, HEART_RATE_SERVICE), (POLAR_COMPANY_ID,), ("Polar H10",))


class PolarVeritySense(_PolarProfile):
    """Polar Verity Sense: ACC 52 Hz ±8 g and GYRO 52 Hz ±2000 °/s (frame types not pinned by any
    published capture; the decoder reads every type the SDK does)."""

    NAME = "polar-verity"
    TITLE = "Polar Verity Sense"
    SETTINGS = PolarVeritySettings
    SCAN = ScanMatch((PMD_SERVICE, HEART_RATE_SERVICE), (POLAR_COMPANY_ID,), ("Polar Sense",))
    STREAMS = (
        StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), PMD_DATA),
        StreamSpec("gyro", "gyro", Unit.DEG_PER_S, ("x", "y", "z"), PMD_DATA),
    )
    EXTRA_START_SETTINGS = ((Setting.CHANNELS, 3),)
