"""Polar H10 and Verity Sense: the PMD accelerometer and (Verity) gyroscope, as the device sends them.

Encoder (pure, the inverse of ``collector.devices.polar``): samples → counts → one PMD data notification
``[measurement type][u64 timestamp of the LAST sample, ns since 2000-01-01][frame type][content]``:

- ACC raw type 1 (``0x01``): int16 x,y,z per sample, in mG × FACTOR;
- ACC compressed type 1 (``0x81``): an int16 reference sample, then ONE block ``[width][count]`` of signed
  deltas packed LSB-first, channel-interleaved, same units;
- ACC compressed type 0 (``0x80``): the same layout, counts in units of FACTOR g;
- GYRO compressed type 0 (``0x80``, measurement type 5): the same layout, counts in units of FACTOR °/s.

The delta width is the smallest that holds every delta unless one is given: the SDK's own test frames use
wider blocks than necessary (10 bits where 9 suffice), which the encoder reproduces when told the width.

Peripheral: the PMD service (control point: read, write, indicate; data: notify), the Heart Rate service
the H10 advertises (present, no heart-rate notifications), Device Information and Battery. The control
point's read value lists the measurements the emulation offers (``0F`` + bitmap: ACC on the H10, ACC and
GYRO on the Verity Sense; a real Verity Sense also lists PPG, PPI, magnetometer and SDK mode, which are not
emulated). It answers ``GET_MEASUREMENT_SETTINGS`` with a measurement's supported settings and
``REQUEST_MEASUREMENT_START`` with ``F0 02 <type> 00 00 05 01 <FACTOR float32>``, then that measurement's
frames flow; ``STOP_MEASUREMENT`` stops it. A measurement the model does not have (the H10's gyroscope) is
refused with ``ERROR_NOT_SUPPORTED``. Like the SDK requires, a start on a link whose ATT MTU is below 232
is refused with ``ERROR_INVALID_MTU``; unsupported rates, ranges and resolutions get their error statuses.

Which frame each model sends: the H10 emulation sends raw type 1 (``0x01``, FACTOR 1.0) by default and
compressed type 1 (``0x81``) with ``frame="compressed"``; the Verity Sense emulation sends compressed
type 0 (``0x80``) for both, ACC with FACTOR 2.44e-4 (1/4096 g, the ±8 g setting of the SDK's test frame)
and GYRO with FACTOR 2000/32768 °/s (±2000 °/s over int16). No public capture pins either model's choice
or the gyroscope's FACTOR: these are the frame types the published vectors exercise, and the FACTOR is the
range spread over the int16 counts.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices import NotificationError
from twitchwatch.collector.devices.polar import (
    FEATURES_READ,
    HEADER_SIZE,
    PMD_CONTROL_POINT,
    PMD_DATA,
    PMD_MTU,
    PMD_SERVICE,
    POLAR_EPOCH_NS,
    RESPONSE_CODE,
    MeasurementType,
    OpCode,
    Setting,
    Status,
    parse_settings,
)
from twitchwatch.collector.emulate.peripheral import (
    AD_COMPLETE_128,
    AD_COMPLETE_NAME,
    AD_FLAGS,
    AD_INCOMPLETE_16,
    AD_MANUFACTURER,
    LE_GENERAL_DISCOVERABLE_NO_BREDR,
    Notification,
    Peripheral,
    Stream,
    ad_structure,
    advertising_payload,
    uuid128_le,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HEART_RATE_SERVICE: Final = "180D"
HEART_RATE_MEASUREMENT: Final = "2A37"
POLAR_SERVICE_16: Final = 0xFEEE  # Polar's member service UUID, in the H10's advertisement
POLAR_COMPANY_ID: Final = 0x006B  # Polar Electro Oy (Bluetooth SIG company identifier)
_READ, _WRITE, _INDICATE = (
    Characteristic.Properties.READ,
    Characteristic.Properties.WRITE,
    Characteristic.Properties.INDICATE,
)


# ---------------------------------------------------------------------------------------- encoder


@dataclass(frozen=True)
class FrameFormat:
    """How counts are carried: ``compressed`` and the frame type (bits 0-6)."""

    compressed: bool
    frame_type: int

    @property
    def type_byte(self) -> int:
        return self.frame_type | (0x80 if self.compressed else 0)

    @property
    def counts_in_factor_g(self) -> bool:
        """ACC: compressed type 0 counts FACTOR g; every other ACC type counts mG (× FACTOR)."""
        return self.compressed and self.frame_type == 0


RAW_TYPE1: Final = FrameFormat(False, 1)
COMPRESSED_TYPE0: Final = FrameFormat(True, 0)
COMPRESSED_TYPE1: Final = FrameFormat(True, 1)


def acc_counts(values_g: npt.ArrayLike, fmt: FrameFormat, factor: float) -> IntArray:
    """Samples in g → the integer counts ``fmt`` carries (the decoder's scale inverted, rounded)."""
    values = np.asarray(values_g, dtype=np.float64)
    f32 = float(np.float32(factor))
    per_count = f32 if fmt.counts_in_factor_g else f32 * 0.001 if f32 != 1 else 0.001
    return np.rint(values / per_count).astype(np.int64)


def gyro_counts(values_dps: npt.ArrayLike, factor: float) -> IntArray:
    """Samples in °/s → the integer counts of a GYRO type 0 frame (FACTOR °/s each), rounded."""
    return np.rint(np.asarray(values_dps, dtype=np.float64) / float(np.float32(factor))).astype(np.int64)


def signed_width(values: IntArray) -> int:
    """Bits of the narrowest two's-complement field holding every value (at least 1)."""
    if values.size == 0:
        return 1
    hi, lo = int(values.max()), int(values.min())
    return max(hi.bit_length() + 1, (~lo).bit_length() + 1 if lo < 0 else 1, 1)


def pack_lsb_first(values: IntArray, width: int) -> bytes:
    """Signed ``width``-bit fields packed LSB-first into bytes (the last byte zero-padded)."""
    if values.size == 0:
        return b""
    if signed_width(values) > width:
        raise ValueError(f"a delta does not fit in {width} bits")
    unsigned = np.where(values < 0, values + (1 << width), values).astype(np.uint64)
    bits = ((unsigned[:, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def _header(timestamp_ns: int, fmt: FrameFormat, measurement_type: int) -> bytes:
    if not 0 <= timestamp_ns < 2**64:
        raise ValueError("PMD timestamps are unsigned 64-bit ns since 2000-01-01")
    return bytes([measurement_type]) + timestamp_ns.to_bytes(8, "little") + bytes([fmt.type_byte])


def encode_acc_frame(
    counts: npt.ArrayLike,
    timestamp_ns: int,
    fmt: FrameFormat,
    width: int | None = None,
    measurement_type: int = MeasurementType.ACC,
) -> bytes:
    """An ACC (or, with ``measurement_type`` GYRO, a gyroscope type 0) data notification carrying ``counts``
    (samples × 3); ``timestamp_ns`` is the last sample's Polar-epoch time. ``width`` forces the delta width
    of a compressed frame."""
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 2 or c.shape[1] != 3 or len(c) == 0:
        raise ValueError("counts must be (samples ≥ 1, 3)")
    if measurement_type == MeasurementType.GYRO and fmt != COMPRESSED_TYPE0:
        raise ValueError("the gyroscope encoder writes compressed type 0 (int16 counts) only")
    if not fmt.compressed:
        sizes = {0: 1, 1: 2, 2: 3}
        if fmt.frame_type not in sizes:
            raise ValueError(f"raw ACC frame type {fmt.frame_type} is not one the decoder reads")
        size = sizes[fmt.frame_type]
        lo, hi = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
        if c.min() < lo or c.max() > hi:
            raise ValueError(f"a sample is outside the {8 * size}-bit range of raw type {fmt.frame_type}")
        body = b"".join(int(v).to_bytes(size, "little", signed=True) for v in c.reshape(-1))
        return _header(timestamp_ns, fmt, measurement_type) + body
    if fmt.frame_type not in (0, 1):
        raise ValueError(f"compressed ACC frame type {fmt.frame_type} is not one the decoder reads")
    if c[0].min() < -32768 or c[0].max() > 32767:
        raise ValueError("the reference sample of a compressed frame is int16")
    deltas = np.diff(c, axis=0).reshape(-1)
    bits = signed_width(deltas) if width is None else width
    if not 1 <= bits <= 32:
        raise ValueError(f"delta width {bits} is outside 1-32 bits")
    count = len(c) - 1
    if count > 255:
        raise ValueError("one delta block carries at most 255 samples")
    reference = struct.pack("<3h", *(int(v) for v in c[0]))
    block = bytes([bits, count]) + pack_lsb_first(deltas, bits) if count else b""
    return _header(timestamp_ns, fmt, measurement_type) + reference + block


def frame_size(samples: int, fmt: FrameFormat, width: int) -> int:
    if not fmt.compressed:
        return HEADER_SIZE + samples * 3 * {0: 1, 1: 2, 2: 3}[fmt.frame_type]
    return HEADER_SIZE + 6 + (2 + (width * 3 * (samples - 1) + 7) // 8 if samples > 1 else 0)


def encode_acc_notifications(
    values_g: FloatArray,
    last_time_ns: Sequence[int] | npt.NDArray[np.int64],
    fmt: FrameFormat,
    factor: float,
    max_bytes: int,
    measurement_type: int = MeasurementType.ACC,
) -> list[bytes]:
    """Samples (n × 3, g — or °/s for GYRO) with each sample's Polar-epoch time → frames of at most
    ``max_bytes`` each, split where a frame would not fit (a wide delta, a small MTU)."""
    gyro = measurement_type == MeasurementType.GYRO
    counts = gyro_counts(values_g, factor) if gyro else acc_counts(values_g, fmt, factor)
    times = np.asarray(last_time_ns, dtype=np.int64)
    out: list[bytes] = []
    start = 0
    while start < len(counts):
        end = len(counts)
        while True:
            part = counts[start:end]
            width = signed_width(np.diff(part, axis=0).reshape(-1)) if fmt.compressed else 0
            if frame_size(len(part), fmt, width) <= max_bytes and (not fmt.compressed or len(part) <= 256):
                break
            if end - start == 1:
                raise ValueError(f"one ACC sample does not fit in {max_bytes} bytes")
            end = start + max(1, (end - start) // 2)
        out.append(encode_acc_frame(part, int(times[end - 1]), fmt, measurement_type=measurement_type))
        start = end
    return out


def control_response(op: int, measurement_type: int, status: int, parameters: bytes = b"") -> bytes:
    """``F0 <op> <type> <status> <more=0> [parameters]`` (the SDK's test responses carry ``more`` even on
    errors)."""
    return bytes([RESPONSE_CODE, op, measurement_type, status, 0]) + parameters


def settings_tlv(setting: Setting, values: Sequence[int | float]) -> bytes:
    fmt = {Setting.FACTOR: "<f", Setting.CHANNELS: "<B"}.get(setting, "<H")
    return bytes([setting, len(values)]) + b"".join(struct.pack(fmt, v) for v in values)


def start_response(factor: float, measurement_type: int = MeasurementType.ACC) -> bytes:
    """The success answer to a start request: carries FACTOR as setting TLV ``05 01 <float32>``."""
    tlv = settings_tlv(Setting.FACTOR, [factor])
    return control_response(OpCode.REQUEST_MEASUREMENT_START, measurement_type, Status.SUCCESS, tlv)


@dataclass(frozen=True)
class Measurement:
    """One measurement a model emulates: its stream, what it offers, and how its frames are sent."""

    stream: str  # the generator's signal, too
    rates: tuple[int, ...]
    ranges: tuple[int, ...]
    factor: float
    frame: FrameFormat
    channels_setting: bool = False  # the model's settings answer lists CHANNELS 3


# -------------------------------------------------------------------------------------- peripheral


class _PolarPeripheral(Peripheral):
    MANUFACTURER = "Polar Electro Oy"
    MEASUREMENTS: ClassVar[Mapping[int, Measurement]]

    def frame_format(self, measurement_type: int) -> FrameFormat:
        return self.MEASUREMENTS[measurement_type].frame

    _starting: frozenset[int] = frozenset()

    def services(self) -> list[Service]:
        self.control_point = self.writable(
            PMD_CONTROL_POINT,
            self._on_control,
            _READ | _WRITE | _INDICATE,
            read=self._features,
        )
        self.data = self.notifying(PMD_DATA)
        heart_rate = self.notifying(HEART_RATE_MEASUREMENT)
        pmd = Service(PMD_SERVICE, [self.control_point, self.data])
        return [pmd, Service(HEART_RATE_SERVICE, [heart_rate])]

    def advertising(self) -> tuple[bytes, bytes]:
        name = self.device.name.encode()
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_INCOMPLETE_16, struct.pack("<HH", 0x180D, POLAR_SERVICE_16)),
            ad_structure(AD_COMPLETE_NAME, name),
        )
        scan_response = advertising_payload(
            ad_structure(AD_COMPLETE_128, uuid128_le(PMD_SERVICE)),
            ad_structure(AD_MANUFACTURER, struct.pack("<H", POLAR_COMPANY_ID) + b"\x00"),
        )
        return data, scan_response

    def _features(self) -> bytes:
        """The control point's read value: ``0F`` then a bitmap of the measurement types offered."""
        bits = sum(1 << t for t in self.MEASUREMENTS)
        return bytes([FEATURES_READ]) + bits.to_bytes(2, "little")

    def _on_control(self, data: bytes) -> None:
        reply, then = self._handle(data)
        self.spawn(self._answer(reply, then))

    async def _answer(self, reply: bytes, then: Callable[[], None] | None) -> None:
        # The response goes out before the first data frame, as the device sends them.
        await self.indicate(self.control_point, reply)
        if then is not None:
            then()

    def _handle(self, data: bytes) -> tuple[bytes, Callable[[], None] | None]:
        if len(data) < 2:
            return control_response(data[0] if data else 0, 0, Status.ERROR_INVALID_LENGTH), None
        op, mtype = data[0], data[1] & 0x7F
        if op not in tuple(OpCode):
            return control_response(op, mtype, Status.ERROR_INVALID_OP_CODE), None
        measurement = self.MEASUREMENTS.get(mtype)
        if measurement is None:
            return control_response(op, mtype, Status.ERROR_NOT_SUPPORTED), None
        if op == OpCode.GET_MEASUREMENT_SETTINGS:
            tlvs = (
                settings_tlv(Setting.SAMPLE_RATE, measurement.rates)
                + settings_tlv(Setting.RESOLUTION, [16])
                + settings_tlv(Setting.RANGE, measurement.ranges)
                + (settings_tlv(Setting.CHANNELS, [3]) if measurement.channels_setting else b"")
            )
            return control_response(op, mtype, Status.SUCCESS, tlvs), None
        if op == OpCode.STOP_MEASUREMENT:
            if not self.streaming(measurement.stream):
                return control_response(op, mtype, Status.ERROR_ALREADY_IN_STATE), None
            self.stop_stream(measurement.stream)
            return control_response(op, mtype, Status.SUCCESS), None
        return self._start(data, mtype, measurement)

    def _start(
        self, data: bytes, mtype: int, measurement: Measurement
    ) -> tuple[bytes, Callable[[], None] | None]:
        op = OpCode.REQUEST_MEASUREMENT_START

        def refuse(status: Status) -> tuple[bytes, None]:
            return control_response(op, mtype, status), None

        if data[1] & 0x80:
            return refuse(Status.ERROR_NOT_SUPPORTED)  # offline recording
        if self.streaming(measurement.stream) or mtype in self._starting:
            return refuse(Status.ERROR_ALREADY_IN_STATE)
        if self.att_mtu() < PMD_MTU:
            return refuse(Status.ERROR_INVALID_MTU)
        try:
            settings = parse_settings(data[2:])
        except NotificationError:
            return refuse(Status.ERROR_INVALID_PARAMETER)
        rate = settings.get(Setting.SAMPLE_RATE, (None,))[0]
        if not isinstance(rate, int) or rate not in measurement.rates:
            return refuse(Status.ERROR_INVALID_SAMPLE_RATE)
        if settings.get(Setting.RESOLUTION, (16,))[0] != 16:
            return refuse(Status.ERROR_INVALID_RESOLUTION)
        if settings.get(Setting.RANGE, (measurement.ranges[-1],))[0] not in measurement.ranges:
            return refuse(Status.ERROR_INVALID_RANGE)
        self._starting = self._starting | {mtype}
        return start_response(measurement.factor, mtype), lambda: self._begin(mtype, rate)

    def _begin(self, mtype: int, rate: int) -> None:
        self._starting = self._starting - {mtype}
        if self.connection is None:
            return  # the link dropped between the response and the first frame
        measurement = self.MEASUREMENTS[mtype]
        source, start_ns = self.new_source(measurement.stream, float(rate), 3)
        fmt, factor = self.frame_format(mtype), measurement.factor
        max_bytes = self.att_mtu() - 3
        # About ten frames a second, as the devices send; fewer samples only when they would not fit.
        block = max(1, min(math.ceil(rate / 10), 255))
        device_t0 = start_ns - POLAR_EPOCH_NS
        period = 1e9 / rate

        def encode(values: FloatArray, first: int) -> list[Notification]:
            index = first + np.arange(len(values))
            times = device_t0 + np.rint(index * period).astype(np.int64)
            frames = encode_acc_notifications(values, times, fmt, factor, max_bytes, mtype)
            return [(self.data, frame) for frame in frames]

        self.start_stream(Stream(measurement.stream, source, block, encode, start_ns))


ACC: Final = MeasurementType.ACC
GYRO: Final = MeasurementType.GYRO


class PolarH10Peripheral(_PolarPeripheral):
    PROFILE = "polar-h10"
    DEFAULT_NAME = "Polar H10 {serial}"
    MODEL = "H10"
    MEASUREMENTS: ClassVar[Mapping[int, Measurement]] = {
        ACC: Measurement("acc", (25, 50, 100, 200), (2, 4, 8), 1.0, RAW_TYPE1)
    }

    def frame_format(self, measurement_type: int) -> FrameFormat:
        return COMPRESSED_TYPE1 if self.options.compressed else RAW_TYPE1


class PolarVerityPeripheral(_PolarPeripheral):
    PROFILE = "polar-verity"
    DEFAULT_NAME = "Polar Sense {serial}"
    MODEL = "Verity Sense"
    MEASUREMENTS: ClassVar[Mapping[int, Measurement]] = {
        ACC: Measurement("acc", (52,), (8,), 2.44e-4, COMPRESSED_TYPE0, channels_setting=True),
        GYRO: Measurement("gyro", (52,), (2000,), 2000 / 32768, COMPRESSED_TYPE0, channels_setting=True),
    }
