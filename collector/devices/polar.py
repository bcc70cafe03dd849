"""Polar H10 and Verity Sense over the PMD (Polar Measurement Data) service: the accelerometer stream.

Built from Polar's public BLE SDK behaviour as recorded in ``../shared/test-vectors/polar_pmd.json``
(bytes and values only; no SDK code).

Data notification (characteristic ``PMD_DATA``), little-endian::

    0     measurement type (low 6 bits; ACC = 2)
    1..8  u64 timestamp of the LAST sample, ns since 2000-01-01 (Polar epoch)
    9     frame type: bit 7 = compressed (delta) frame, bits 0-6 = type
    10..  content

ACC content: raw type 0/1/2 = int8/int16/int24 x,y,z per sample. Compressed types 0 and 1 = an int16
x,y,z reference sample, then blocks ``[bit width][sample count]`` of signed deltas packed LSB-first,
channel-interleaved. Compressed type 0 counts are in units of FACTOR g; the SDK reports
``mG = trunc(float32(count) × float32(FACTOR·1000))`` and so does this decoder (vector-pinned; it costs the
resolution below 1 mG). Every other type is in mG (× FACTOR when FACTOR ≠ 1).

FACTOR arrives in the start-measurement response on the control point (setting TLV ``05 01 <float32>``);
``parse_start_response`` returns it as a typed ``StartResult`` and ``decoders(..., replies)`` uses it.

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

from collector.devices import (
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
from collector.frames import Unit

PMD_SERVICE: Final = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
# Polar sensors advertise the Heart Rate service and Polar Electro's company id rather than PMD.
HEART_RATE_SERVICE: Final = "0000180d-0000-1000-8000-00805f9b34fb"
POLAR_COMPANY_ID: Final = 0x006B
PMD_CONTROL_POINT: Final = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"  # read, write, indicate
PMD_DATA: Final = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"  # notify
POLAR_EPOCH_NS: Final = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
PMD_MTU: Final = 232  # the SDK negotiates this before starting a stream (status ERROR_INVALID_MTU otherwise)

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


def _raw_counts(content: bytes, size: int) -> npt.NDArray[np.int64]:
    stride = 3 * size
    if not content:
        raise NotificationError("ACC frame has no samples", HEADER_SIZE)
    if len(content) % stride:
        raise NotificationError(
            f"{len(content)} content bytes is not a whole number of {stride}-byte samples",
            HEADER_SIZE + (len(content) // stride) * stride,
        )
    octets = np.frombuffer(content, dtype=np.uint8).astype(np.int64).reshape(-1, 3, size)
    weights = np.left_shift(np.int64(1), 8 * np.arange(size, dtype=np.int64))
    return _signed(octets @ weights, 8 * size)


def _compressed_counts(content: bytes) -> npt.NDArray[np.int64]:
    need(content, 0, 6, "reference sample of a compressed ACC frame")
    last = np.frombuffer(content[:6], dtype="<i2").astype(np.int64)
    parts = [last.reshape(1, 3)]
    pos = 6
    while pos < len(content):  # each pass consumes ≥ 2 bytes
        at = HEADER_SIZE + pos
        if len(content) - pos < 2:
            raise NotificationError("truncated delta block header", at)
        width, count = content[pos], content[pos + 1]
        if width > 32:
            raise NotificationError(f"delta width of {width} bits is impossible", at)
        size = (width * count * 3 + 7) // 8
        if pos + 2 + size > len(content):
            raise NotificationError(
                f"truncated delta block: {size} bytes needed, {len(content) - pos - 2} left", at
            )
        deltas = _unpack_lsb_first(content[pos + 2 : pos + 2 + size], width, count * 3).reshape(count, 3)
        block = last + np.cumsum(deltas, axis=0)
        if count:
            if np.abs(block).max() >= 2**31:
                raise NotificationError("delta block overflows 32-bit samples", at)
            parts.append(block)
            last = block[-1]
        pos += 2 + size
    return np.concatenate(parts)


def parse_acc_frame(data: bytes) -> AccFrame:
    """Header and raw counts of an ACC frame (any supported frame type)."""
    header = parse_frame_header(data)
    if header.measurement_type != MeasurementType.ACC:
        raise NotificationError(
            f"measurement type {header.measurement_type} is not ACC ({MeasurementType.ACC})", 0
        )
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


# ----------------------------------------------------------------------------------------- timestamps


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


@dataclass(frozen=True)
class PmdAccDecoder(Decoder[PmdState]):
    """ACC frames on ``PMD_DATA`` → one ``acc`` chunk in g with per-sample Polar-epoch times."""

    factor: float = 1.0
    sample_rate_hz: float = 0.0  # 0 = unknown (then times need a previous frame)
    rounding: Rounding = "half_even"
    streams: frozenset[str] = frozenset({"acc"})

    def __post_init__(self) -> None:
        if not (np.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"FACTOR must be finite and > 0, got {self.factor}")
        if not (np.isfinite(self.sample_rate_hz) and self.sample_rate_hz >= 0):
            raise ValueError(f"sample rate must be finite and ≥ 0, got {self.sample_rate_hz}")

    def initial_state(self) -> PmdState:
        return PmdState()

    def decode(self, data: bytes, state: PmdState) -> tuple[tuple[Chunk, ...], PmdState]:
        frame = parse_acc_frame(bytes(data))
        raw, scale = acc_milli_g(frame, self.factor)
        header = frame.header
        times = sample_times(
            header.timestamp_ns, state.previous_for(header), len(raw), self.sample_rate_hz, self.rounding
        )
        stamps = None
        if times is not None:
            if max(times) >= 2**63 or min(times) < -(2**63):
                raise NotificationError("frame timestamp does not fit in int64 nanoseconds", 1)
            stamps = np.array(times, dtype=np.int64)
        rate = self.sample_rate_hz or None
        return (Chunk("acc", raw, scale, Unit.G, rate, stamps),), state.after(header)


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
    if not (isinstance(factor, float) and np.isfinite(factor) and factor > 0):
        raise ControlError(f"start response carries an unusable FACTOR {factor!r}")
    return StartResult(measurement_type, factor)


# ------------------------------------------------------------------------------------------ profiles


class _PolarSettings(ProfileSettings):
    rate_hz: int
    range_g: int


class PolarH10Settings(_PolarSettings):
    type: Literal["polar-h10"] = "polar-h10"
    rate_hz: Literal[25, 50, 100, 200] = 200
    range_g: Literal[2, 4, 8] = 8


class PolarVeritySettings(_PolarSettings):
    type: Literal["polar-verity"] = "polar-verity"
    rate_hz: Literal[52] = 52
    range_g: Literal[8] = 8


class _DecodeParams(BaseModel):
    """Context a single frame does not carry, named as in ``polar_pmd.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: float = Field(1.0, gt=0, allow_inf_nan=False)
    factor_is_float32: Literal[True] = True  # FACTOR is always used as the float32 the device sent
    sample_rate_hz: float | None = Field(None, ge=0, allow_inf_nan=False)
    previous_timestamp_ns: int = Field(0, ge=0, lt=2**64)
    timestamp_rounding: Rounding = "half_even"
    range_g: int | None = None  # informational; checked against the model's ranges


class _PolarProfile(DeviceProfile):
    SERVICE = PMD_SERVICE
    STREAMS = (StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), PMD_DATA),)
    DEFAULT_STREAM = "acc"
    DEVICE_EPOCH_NS = POLAR_EPOCH_NS
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {
        "pmd-header": parse_frame_header,
        "pmd-control": parse_control_point,
        "pmd-settings": parse_settings_block,
    }
    EXTRA_START_SETTINGS: ClassVar[tuple[tuple[Setting, int], ...]] = ()

    @property
    def polar_settings(self) -> _PolarSettings:
        assert isinstance(self.settings, _PolarSettings)
        return self.settings

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        s = self.polar_settings
        acc = MeasurementType.ACC
        settings = [(Setting.SAMPLE_RATE, s.rate_hz), (Setting.RESOLUTION, 16), (Setting.RANGE, s.range_g)]
        return Plan(
            streams=chosen,
            notify=(PMD_CONTROL_POINT, PMD_DATA),
            start=(
                GattWrite(
                    PMD_CONTROL_POINT, start_request(acc, [*settings, *self.EXTRA_START_SETTINGS]), reply=True
                ),
            ),
            stop=(GattWrite(PMD_CONTROL_POINT, stop_request(acc), reply=True),),
            min_mtu=PMD_MTU,
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        self.check_streams(streams)
        if len(replies) != 1:
            raise ControlError(f"{self.NAME} needs the one start-measurement response (it carries FACTOR)")
        started = parse_start_response(replies[0], MeasurementType.ACC)
        return {PMD_DATA: PmdAccDecoder(started.factor, float(self.polar_settings.rate_hz))}

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        cls.spec(stream)
        p = validate_model(_DecodeParams, params, f"{cls.NAME} decode parameters")
        ranges = get_args(cls.SETTINGS.model_fields["range_g"].annotation)
        if p.range_g is not None and p.range_g not in ranges:
            raise ParamError(
                f"{cls.NAME} decode parameters", [("range_g", f"{cls.NAME} ranges are {ranges}")]
            )
        default_rate = cls.SETTINGS.model_fields["rate_hz"].default
        rate = p.sample_rate_hz if p.sample_rate_hz is not None else float(default_rate)
        decoder = PmdAccDecoder(p.factor, rate, p.timestamp_rounding)
        state = PmdState()
        if p.previous_timestamp_ns:
            header = parse_frame_header(data)
            state = PmdState({(header.measurement_type, header.frame_type_byte): p.previous_timestamp_ns})
        return decoder, state


class PolarH10(_PolarProfile):
    """Polar H10 chest strap: ACC 25-200 Hz, ±2/4/8 g, raw int16 frames in mG."""

    NAME = "polar-h10"
    TITLE = "Polar H10"
    SETTINGS = PolarH10Settings
    SCAN = ScanMatch((PMD_SERVICE, HEART_RATE_SERVICE), (POLAR_COMPANY_ID,), ("Polar H10",))


class PolarVeritySense(_PolarProfile):
    """Polar Verity Sense: ACC 52 Hz, ±8 g (frame type not pinned by any published vector)."""

    NAME = "polar-verity"
    TITLE = "Polar Verity Sense"
    SETTINGS = PolarVeritySettings
    SCAN = ScanMatch((PMD_SERVICE, HEART_RATE_SERVICE), (POLAR_COMPANY_ID,), ("Polar Sense",))
    EXTRA_START_SETTINGS = ((Setting.CHANNELS, 3),)
