"""MbientLab MetaMotion (MetaWear): the Bosch accelerometer (BMI160 on MetaMotion R, BMI270 on MetaMotion S).

MetaWear speaks ``[module][register][payload]`` both ways: commands are written to ``COMMAND``, answers
and data are notified on ``NOTIFY``. The accelerometer is module 0x03:

- register 0x04: one int16 LE x,y,z sample per notification (8 bytes);
- packed register (BMI160 0x1c, BMI270 0x05): three samples, oldest first (20 bytes), for high rates;
- 0x03 data config ``[odr/bandwidth byte][range byte]``, 0x02 sampling enable/disable, 0x01 power.

Counts → g: 16384 / 8192 / 4096 / 2048 LSB per g at ±2 / 4 / 8 / 16 g. The range is not in the frame;
it comes from the settings (``range_g``). Other modules' and registers' notifications (battery, step
counter, read responses) share the characteristic: the decoder returns no chunk for them. No device
timestamps: MetaWear's own SDK stamps samples with the host clock, and so must the runtime.
Vectors: ``../shared/test-vectors/metawear.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from collector.devices import (
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
from collector.frames import Unit

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


def data_register(chip: Chip, packed: bool) -> int:
    return PACKED_REGISTER[chip] if packed else REG_DATA


def subscribe(chip: Chip, packed: bool) -> bytes:
    return bytes([MODULE_ACC, data_register(chip, packed), 0x01])


def unsubscribe(chip: Chip, packed: bool) -> bytes:
    return bytes([MODULE_ACC, data_register(chip, packed), 0x00])


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
        samples = 1 if register == REG_DATA else 3
        size = 2 + 6 * samples
        if len(data) != size:
            what = f"register 0x{register:02x} carries {samples} sample(s) = {size} bytes"
            raise NotificationError(f"{what}, got {len(data)}", min(len(data), size))
        raw = np.frombuffer(data, dtype="<i2", offset=2).astype(np.int16).reshape(samples, 3)
        return (Chunk("acc", raw, 1 / LSB_PER_G[self.range_g], Unit.G, self.sample_rate_hz),)


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


class MetaMotionSettings(ProfileSettings):
    type: Literal["metamotion"] = "metamotion"
    chip: Annotated[Chip, BeforeValidator(lowercase)] = "bmi160"
    odr_hz: float = 100.0
    range_g: Literal[2, 4, 8, 16] = 4
    packed: bool | None = None  # None: packed above 100 Hz (unpacked streaming tops out near 100 Hz)

    @field_validator("odr_hz")
    @classmethod
    def _odr(cls, value: float) -> float:
        if float(value) not in ODR_CODE:
            raise ValueError(f"odr_hz must be one of {sorted(ODR_CODE)}")
        return float(value)

    @property
    def use_packed(self) -> bool:
        return self.odr_hz > 100 if self.packed is None else self.packed


class _DecodeParams(BaseModel):
    """Settings plus ``packed_register`` as named in ``metawear.json`` (checked against the chip)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chip: Annotated[Chip, BeforeValidator(lowercase)] = "bmi160"
    range_g: Literal[2, 4, 8, 16] = 4
    odr_hz: float | None = None
    packed_register: int | None = None


class MetaMotion(DeviceProfile):
    """MbientLab MetaMotion R/S accelerometer."""

    NAME = "metamotion"
    TITLE = "MbientLab MetaMotion (BMI160 / BMI270 accelerometer)"
    SERVICE = SERVICE
    SETTINGS = MetaMotionSettings
    STREAMS = (StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), NOTIFY),)
    DEFAULT_STREAM = "acc"
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {"register": parse_register_value}

    @property
    def mm_settings(self) -> MetaMotionSettings:
        assert isinstance(self.settings, MetaMotionSettings)
        return self.settings

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        s = self.mm_settings
        return Plan(
            streams=chosen,
            notify=(NOTIFY,),
            start=tuple(
                GattWrite(COMMAND, cmd)
                for cmd in (
                    config_command(s.chip, s.odr_hz, s.range_g),
                    subscribe(s.chip, s.use_packed),
                    ENABLE_SAMPLING,
                    START,
                )
            ),
            stop=tuple(
                GattWrite(COMMAND, cmd) for cmd in (STOP, DISABLE_SAMPLING, unsubscribe(s.chip, s.use_packed))
            ),
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        self.check_streams(streams)
        s = self.mm_settings
        return {NOTIFY: AccDecoder(s.chip, s.range_g, s.odr_hz)}

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        cls.spec(stream)
        p = validate_model(_DecodeParams, params, "metamotion decode parameters")
        if p.packed_register is not None and p.packed_register != PACKED_REGISTER[p.chip]:
            expected = PACKED_REGISTER[p.chip]
            raise ParamError(
                "metamotion decode parameters", [("packed_register", f"{p.chip} packs on {expected}")]
            )
        if p.odr_hz is not None and float(p.odr_hz) not in ODR_CODE:
            raise ParamError(
                "metamotion decode parameters", [("odr_hz", f"must be one of {sorted(ODR_CODE)}")]
            )
        decoder = AccDecoder(p.chip, p.range_g, p.odr_hz)
        return decoder, None
