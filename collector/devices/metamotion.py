"""MbientLab MetaMotion (MetaWear): the Bosch IMU's accelerometer and gyroscope (BMI160 on MetaMotion R,
BMI270 on MetaMotion S).

MetaWear speaks ``[module][register][payload]`` both ways: commands are written to ``COMMAND``, answers
and data are notified on ``NOTIFY``. The accelerometer is module 0x03:

- register 0x04: one int16 LE x,y,z sample per notification (8 bytes);
- packed register (BMI160 0x1c, BMI270 0x05): three samples, oldest first (20 bytes), for high rates;
- 0x03 data config ``[odr/bandwidth byte][range byte]``, 0x02 sampling enable/disable, 0x01 power.

The gyroscope is module 0x13, laid out the same way with its own register numbers: data BMI160 0x05 /
BMI270 0x04, packed BMI160 0x07 / BMI270 0x05, config 0x03 ``[0x20 | ODR code][range code]`` (bandwidth 2,
the SDK's default; ODR 25 Hz = 6 … 3200 Hz = 13; range ±2000 °/s = 0 … ±125 °/s = 4), sampling 0x02,
power 0x01. Note that BMI160's gyro data register (0x05) is BMI270's packed one: the chip must be known.

Counts → g: 16384 / 8192 / 4096 / 2048 LSB per g at ±2 / 4 / 8 / 16 g; counts → °/s: 16.4 / 32.8 / 65.6 /
131.2 / 262.4 LSB per °/s at ±2000 / 1000 / 500 / 250 / 125 °/s (the SDK's table). The ranges are not in
the frame; they come from the settings (``range_g``, ``gyro_range_dps``). Other modules' and registers'
notifications (battery, step counter, read responses) share the characteristic: the decoder returns no
chunk for them. No device timestamps: MetaWear's own SDK stamps samples with the host clock, and so must
the runtime. Vectors: ``../shared/test-vectors/metawear.json`` (accelerometer) and
``tests/data/vectors/metawear_gyro.json`` (gyroscope, BMI160; the BMI270's gyro registers are from the
SDK's source, no published test exercises them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from twitchwatch.collector.devices import (
    Chunk,
    Decoder,
    DeviceProfile,
    GattWrite,
    NotificationError,
    ParamError,
    Plan,
    ProfileSettings,
    StatelessDecoder,
    StreamSpec,
    lowercase,
    need,
    validate_model,
)
from twitchwatch.collector.frames import Unit

SERVICE: Final = "326a9000-85cb-9195-d9dd-464cfbbae75a"
COMMAND: Final = "326a9001-85cb-9195-d9dd-464cfbbae75a"  # write
NOTIFY: Final = "326a9006-85cb-9195-d9dd-464cfbbae75a"  # notify

MODULE_ACC: Final = 0x03
REG_POWER: Final = 0x01
REG_SAMPLING: Final = 0x02
REG_CONFIG: Final = 0x03
REG_DATA: Final = 0x04
READ_BIT: Final = 0x80  # set in the register byte of a read response

Chip = Literal["bmi160", "bmi270"]
PACKED_REGISTER: Final[Mapping[str, int]] = {"bmi160": 0x1C, "bmi270": 0x05}
ODR_CODE: Final[Mapping[float, int]] = {
    0.78125: 1,
    1.5625: 2,
    3.125: 3,
    6.25: 4,
    12.5: 5,
    25.0: 6,
    50.0: 7,
    100.0: 8,
    200.0: 9,
    400.0: 10,
    800.0: 11,
    1600.0: 12,
}
RANGE_CODE: Final[Mapping[str, Mapping[int, int]]] = {
    "bmi160": {2: 0x03, 4: 0x05, 8: 0x08, 16: 0x0C},
    "bmi270": {2: 0x00, 4: 0x01, 8: 0x02, 16: 0x03},
}
# High bits of the config byte by (chip, below 12.5 Hz): bit 7 + bandwidth in bits 4-6.
_CONF_BITS: Final[Mapping[tuple[str, bool], int]] = {
    ("bmi160", True): 0x80,  # undersampling, bandwidth 0
    ("bmi160", False): 0x20,  # normal bandwidth 2
    ("bmi270", True): 0x20,  # power mode, bandwidth 2
    ("bmi270", False): 0xA0,  # filter performance mode, bandwidth 2
}
LSB_PER_G: Final[Mapping[int, int]] = {2: 16384, 4: 8192, 8: 4096, 16: 2048}


def config_command(chip: Chip, odr_hz: float, range_g: int) -> bytes:
    """``03 03 <conf> <range>``. Below 12.5 Hz the BMI160 undersamples (bit 7, bandwidth 0) and the BMI270
    leaves performance mode (bit 7 clear); from 12.5 Hz both use normal bandwidth (2) — bit 7 set on
    the BMI270 (filter performance), clear on the BMI160."""
    code = ODR_CODE[float(odr_hz)]
    low = odr_hz < 12.5
    return bytes([MODULE_ACC, REG_CONFIG, _CONF_BITS[chip, low] | code, RANGE_CODE[chip][range_g]])


ENABLE_SAMPLING: Final = bytes([MODULE_ACC, REG_SAMPLING, 0x01, 0x00])
DISABLE_SAMPLING: Final = bytes([MODULE_ACC, REG_SAMPLING, 0x00, 0x01])
START: Final = bytes([MODULE_ACC, REG_POWER, 0x01])
STOP: Final = bytes([MODULE_ACC, REG_POWER, 0x00])


MODULE_GYRO: Final = 0x13
GYRO_DATA_REGISTER: Final[Mapping[str, int]] = {"bmi160": 0x05, "bmi270": 0x04}
GYRO_PACKED_REGISTER: Final[Mapping[str, int]] = {"bmi160": 0x07, "bmi270": 0x05}
GYRO_ODR_CODE: Final[Mapping[float, int]] = {
    25.0: 6,
    50.0: 7,
    100.0: 8,
    200.0: 9,
    400.0: 10,
    800.0: 11,
    1600.0: 12,
    3200.0: 13,
}
GYRO_RANGE_CODE: Final[Mapping[int, int]] = {2000: 0, 1000: 1, 500: 2, 250: 3, 125: 4}
LSB_PER_DPS: Final[Mapping[int, float]] = {2000: 16.4, 1000: 32.8, 500: 65.6, 250: 131.2, 125: 262.4}
GYRO_BANDWIDTH_NORMAL: Final = 0x20  # bits 4-5 = 2: the SDK's default filter
GyroRange = Literal[125, 250, 500, 1000, 2000]


def gyro_config_command(odr_hz: float, range_dps: int) -> bytes:
    """``13 03 <0x20 | ODR code> <range code>``: the same for both chips, as the SDK writes it."""
    return bytes(
        [
            MODULE_GYRO,
            REG_CONFIG,
            GYRO_BANDWIDTH_NORMAL | GYRO_ODR_CODE[float(odr_hz)],
            GYRO_RANGE_CODE[range_dps],
        ]
    )


GYRO_ENABLE_SAMPLING: Final = bytes([MODULE_GYRO, REG_SAMPLING, 0x01, 0x00])
GYRO_DISABLE_SAMPLING: Final = bytes([MODULE_GYRO, REG_SAMPLING, 0x00, 0x01])
GYRO_START: Final = bytes([MODULE_GYRO, REG_POWER, 0x01])
GYRO_STOP: Final = bytes([MODULE_GYRO, REG_POWER, 0x00])


def gyro_register(chip: Chip, packed: bool) -> int:
    return GYRO_PACKED_REGISTER[chip] if packed else GYRO_DATA_REGISTER[chip]


def gyro_subscribe(chip: Chip, packed: bool) -> bytes:
    return bytes([MODULE_GYRO, gyro_register(chip, packed), 0x01])


def gyro_unsubscribe(chip: Chip, packed: bool) -> bytes:
    return bytes([MODULE_GYRO, gyro_register(chip, packed), 0x00])


def data_register(chip: Chip, packed: bool) -> int:
    return PACKED_REGISTER[chip] if packed else REG_DATA


def subscribe(chip: Chip, packed: bool) -> bytes:
    return bytes([MODULE_ACC, data_register(chip, packed), 0x01])


def unsubscribe(chip: Chip, packed: bool) -> bytes:
    return bytes([MODULE_ACC, data_register(chip, packed), 0x00])


def _samples(data: bytes, register: int, single: int, what: str) -> npt.NDArray[np.int16]:
    """The int16 x,y,z samples of a data (one sample) or packed (three) notification."""
    samples = 1 if register == single else 3
    size = 2 + 6 * samples
    if len(data) != size:
        reason = f"{what} register 0x{register:02x} carries {samples} sample(s) = {size} bytes"
        raise NotificationError(f"{reason}, got {len(data)}", min(len(data), size))
    return np.frombuffer(data, dtype="<i2", offset=2).astype(np.int16).reshape(samples, 3)


@dataclass(frozen=True)
class AccDecoder(StatelessDecoder):
    chip: Chip = "bmi160"
    range_g: int = 4
    sample_rate_hz: float | None = None
    streams: frozenset[str] = frozenset({"acc"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        need(data, 0, 2, "MetaWear module and register")
        module, register = data[0], data[1]
        if module != MODULE_ACC or register not in (REG_DATA, PACKED_REGISTER[self.chip]):
            return ()  # another module's or register's answer (battery, step counter, …): not samples
        raw = _samples(data, register, REG_DATA, "accelerometer")
        return (Chunk("acc", raw, 1 / LSB_PER_G[self.range_g], Unit.G, self.sample_rate_hz),)


@dataclass(frozen=True)
class GyroDecoder(StatelessDecoder):
    chip: Chip = "bmi160"
    range_dps: int = 2000
    sample_rate_hz: float | None = None
    streams: frozenset[str] = frozenset({"gyro"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        need(data, 0, 2, "MetaWear module and register")
        module, register = data[0], data[1]
        single = GYRO_DATA_REGISTER[self.chip]
        if module != MODULE_GYRO or register not in (single, GYRO_PACKED_REGISTER[self.chip]):
            return ()  # another module's or register's answer: not samples
        raw = _samples(data, register, single, "gyroscope")
        return (Chunk("gyro", raw, 1 / LSB_PER_DPS[self.range_dps], Unit.DEG_PER_S, self.sample_rate_hz),)


@dataclass(frozen=True)
class ImuDecoder(StatelessDecoder):
    """Accelerometer and gyroscope notifications share ``NOTIFY``: each goes to its module's decoder."""

    acc: AccDecoder
    gyro: GyroDecoder
    streams: frozenset[str] = frozenset({"acc", "gyro"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        return self.acc.decode_one(data) or self.gyro.decode_one(data)


@dataclass(frozen=True)
class RegisterValue:
    """A small unsigned value from any module (step counter, step detector, …)."""

    module: int
    register: int
    read_response: bool
    value: int


def parse_register_value(data: bytes) -> RegisterValue:
    need(data, 0, 3, "MetaWear register value")
    if len(data) > 6:
        raise NotificationError(f"a register value is at most 4 bytes, got {len(data) - 2}", 6)
    return RegisterValue(data[0], data[1], bool(data[1] & READ_BIT), int.from_bytes(data[2:], "little"))


MAX_UNPACKED_PER_S: Final = 100.0  # notifications a second above which the packed registers are used


class MetaMotionSettings(ProfileSettings):
    type: Literal["metamotion"] = "metamotion"
    chip: Annotated[Chip, BeforeValidator(lowercase)] = "bmi160"
    odr_hz: float = 100.0
    range_g: Literal[2, 4, 8, 16] = 4
    gyro_odr_hz: float = 100.0
    gyro_range_dps: GyroRange = 2000
    # None: packed when the streams started would otherwise send more than 100 notifications a second
    # (unpacked streaming tops out near that; acc and gyro at 100 Hz each are packed).
    packed: bool | None = None

    @field_validator("odr_hz")
    @classmethod
    def _odr(cls, value: float) -> float:
        if float(value) not in ODR_CODE:
            raise ValueError(f"odr_hz must be one of {sorted(ODR_CODE)}")
        return float(value)

    @field_validator("gyro_odr_hz")
    @classmethod
    def _gyro_odr(cls, value: float) -> float:
        if float(value) not in GYRO_ODR_CODE:
            raise ValueError(f"gyro_odr_hz must be one of {sorted(GYRO_ODR_CODE)}")
        return float(value)

    def packs(self, streams: Collection[str]) -> bool:
        if self.packed is not None:
            return self.packed
        rate = {"acc": self.odr_hz, "gyro": self.gyro_odr_hz}
        return sum(rate[s] for s in streams) > MAX_UNPACKED_PER_S


class _DecodeParams(BaseModel):
    """Settings plus ``packed_register`` as named in ``metawear.json`` (checked against the chip)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chip: Annotated[Chip, BeforeValidator(lowercase)] = "bmi160"
    range_g: Literal[2, 4, 8, 16] = 4
    gyro_range_dps: GyroRange = 2000
    odr_hz: float | None = None
    gyro_odr_hz: float | None = None
    packed_register: int | None = None


class MetaMotion(DeviceProfile):
    """MbientLab MetaMotion R/S accelerometer and gyroscope."""

    NAME = "metamotion"
    TITLE = "MbientLab MetaMotion (BMI160 / BMI270 accelerometer and gyroscope)"
    SERVICE = SERVICE
    SETTINGS = MetaMotionSettings
    STREAMS = (
        StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), NOTIFY),
        StreamSpec("gyro", "gyro", Unit.DEG_PER_S, ("x", "y", "z"), NOTIFY),
    )
    DEFAULT_STREAM = "acc"
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {"register": parse_register_value}

    @property
    def mm_settings(self) -> MetaMotionSettings:
        assert isinstance(self.settings, MetaMotionSettings)
        return self.settings

    def plan(self, streams: Collection[str]) -> Plan:
        """Each sensor as the SDK starts it — configure, subscribe, enable sampling, power on — the
        accelerometer first; stopped in the reverse order of those steps."""
        chosen = self.check_streams(streams)
        s = self.mm_settings
        packed = s.packs(chosen)
        start: list[bytes] = []
        stop: list[bytes] = []
        if "acc" in chosen:
            start += [config_command(s.chip, s.odr_hz, s.range_g), subscribe(s.chip, packed)]
            start += [ENABLE_SAMPLING, START]
            stop += [STOP, DISABLE_SAMPLING, unsubscribe(s.chip, packed)]
        if "gyro" in chosen:
            start += [gyro_config_command(s.gyro_odr_hz, s.gyro_range_dps), gyro_subscribe(s.chip, packed)]
            start += [GYRO_ENABLE_SAMPLING, GYRO_START]
            stop += [GYRO_STOP, GYRO_DISABLE_SAMPLING, gyro_unsubscribe(s.chip, packed)]
        return Plan(
            streams=chosen,
            notify=(NOTIFY,),
            start=tuple(GattWrite(COMMAND, cmd) for cmd in start),
            stop=tuple(GattWrite(COMMAND, cmd) for cmd in stop),
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        chosen = self.check_streams(streams)
        s = self.mm_settings
        acc = AccDecoder(s.chip, s.range_g, s.odr_hz)
        gyro = GyroDecoder(s.chip, s.gyro_range_dps, s.gyro_odr_hz)
        if set(chosen) == {"acc", "gyro"}:
            return {NOTIFY: ImuDecoder(acc, gyro)}
        return {NOTIFY: acc if "acc" in chosen else gyro}

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        cls.spec(stream)
        p = validate_model(_DecodeParams, params, "metamotion decode parameters")
        packed = PACKED_REGISTER if stream == "acc" else GYRO_PACKED_REGISTER
        if p.packed_register is not None and p.packed_register != packed[p.chip]:
            raise ParamError(
                "metamotion decode parameters",
                [("packed_register", f"{p.chip} packs {stream} on {packed[p.chip]}")],
            )
        for key, value, codes in (
            ("odr_hz", p.odr_hz, ODR_CODE),
            ("gyro_odr_hz", p.gyro_odr_hz, GYRO_ODR_CODE),
        ):
            if value is not None and float(value) not in codes:
                raise ParamError("metamotion decode parameters", [(key, f"must be one of {sorted(codes)}")])
        if stream == "gyro":
            return GyroDecoder(p.chip, p.gyro_range_dps, p.gyro_odr_hz), None
        return AccDecoder(p.chip, p.range_g, p.odr_hz), None
