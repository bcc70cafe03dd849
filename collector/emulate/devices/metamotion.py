"""MbientLab MetaMotion R (BMI160): the accelerometer and gyroscope modules of the MetaWear command protocol.

Encoders (pure, the inverses of ``collector.devices.metamotion``): ``03 04 <x y z int16>`` (one sample) or
``03 1C <3 × x y z int16>`` (packed, oldest first), counts of 1/LSB g for the configured range
(16384/8192/4096/2048 LSB per g at ±2/4/8/16 g); the gyroscope the same on module 0x13, ``13 05`` or
packed ``13 07``, counts of 1/LSB °/s (16.4/32.8/65.6/131.2/262.4 LSB per °/s at ±2000/1000/500/250/125
°/s). Rounded and clipped to int16.

Peripheral: the MetaWear service (command: write / write without response; notify), Battery, Device
Information. Per module (0x03 accelerometer, 0x13 gyroscope): data config ``<module> 03 <conf> <range>``
(accelerometer ODR code in the low nibble, 0.78-1600 Hz, BMI160 range codes 03/05/08/0C; gyroscope ODR
codes 6-13 = 25-3200 Hz, range codes 0-4 = ±2000-125 °/s), data and packed subscribe/unsubscribe
(``03 04``/``03 1C``, ``13 05``/``13 07``, then ``01|00``), sampling ``<module> 02 01 00`` / ``02 00 01``,
power ``<module> 01 01|00``. A sensor's samples flow while it is powered, its sampling is enabled and one of
its data registers is subscribed, at its configured rate; power off stops them. Other modules' commands are
accepted and ignored (the real board answers some of them; no profile here waits for those answers).
Defaults before any config: the SDK's, accelerometer 100 Hz ±4 g, gyroscope 100 Hz ±2000 °/s.

Advertising: flags, the MetaWear service UUID and the name ``MetaWear``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices.metamotion import (
    COMMAND,
    GYRO_DATA_REGISTER,
    GYRO_ODR_CODE,
    GYRO_PACKED_REGISTER,
    GYRO_RANGE_CODE,
    LSB_PER_DPS,
    LSB_PER_G,
    MODULE_ACC,
    MODULE_GYRO,
    NOTIFY,
    ODR_CODE,
    PACKED_REGISTER,
    RANGE_CODE,
    REG_CONFIG,
    REG_DATA,
    REG_POWER,
    REG_SAMPLING,
    SERVICE,
)
from twitchwatch.collector.emulate.peripheral import (
    AD_COMPLETE_128,
    AD_COMPLETE_NAME,
    AD_FLAGS,
    LE_GENERAL_DISCOVERABLE_NO_BREDR,
    Notification,
    Peripheral,
    Stream,
    ad_structure,
    advertising_payload,
    uuid128_le,
)

FloatArray = npt.NDArray[np.float64]

PACKED: Final = PACKED_REGISTER["bmi160"]
GYRO_DATA: Final = GYRO_DATA_REGISTER["bmi160"]
GYRO_PACKED: Final = GYRO_PACKED_REGISTER["bmi160"]


def _encode(module: int, register: int, single: int, values: npt.ArrayLike, lsb: float) -> bytes:
    v = np.asarray(values, dtype=np.float64)
    samples = 1 if register == single else 3
    if v.shape != (samples, 3):
        raise ValueError(f"register 0x{register:02x} carries ({samples}, 3) samples, got {v.shape}")
    counts = np.clip(np.rint(v * lsb), -32768, 32767).astype("<i2")
    return bytes([module, register]) + counts.tobytes()


def encode_acc(values_g: npt.ArrayLike, range_g: int, register: int = REG_DATA) -> bytes:
    """One sample (data register) or three (packed register), in g → the notification."""
    return _encode(MODULE_ACC, register, REG_DATA, values_g, LSB_PER_G[range_g])


def encode_gyro(values_dps: npt.ArrayLike, range_dps: int, register: int = GYRO_DATA) -> bytes:
    """One sample (``13 05``) or three (packed, ``13 07``), in °/s → the notification (BMI160)."""
    return _encode(MODULE_GYRO, register, GYRO_DATA, values_dps, LSB_PER_DPS[range_dps])


@dataclass
class _Sensor:
    """One module's state as the board keeps it."""

    stream: str
    data: int  # single-sample data register
    packed: int
    rate_of_code: dict[int, float]
    range_of_code: dict[int, int]
    rate_hz: float
    range_: int
    subscribed: set[int] = field(default_factory=set)
    sampling: bool = False
    powered: bool = False

    @property
    def running(self) -> bool:
        return self.powered and self.sampling and bool(self.subscribed)

    def command(self, register: int, payload: bytes) -> None:
        if register == REG_CONFIG and len(payload) == 2:
            rate = self.rate_of_code.get(payload[0] & 0x0F)
            range_ = self.range_of_code.get(payload[1])
            if rate is not None and range_ is not None:
                self.rate_hz, self.range_ = rate, range_
        elif register in (self.data, self.packed) and len(payload) == 1:
            if payload[0]:
                self.subscribed.add(register)
            else:
                self.subscribed.discard(register)
        elif register == REG_SAMPLING and len(payload) == 2:
            self.sampling = payload[0] == 1
        elif register == REG_POWER and len(payload) == 1:
            self.powered = payload[0] == 1


class MetaMotionPeripheral(Peripheral):
    PROFILE = "metamotion"
    DEFAULT_NAME = "MetaWear"
    MANUFACTURER = "MbientLab Inc"
    MODEL = "MetaMotion R (BMI160)"

    def services(self) -> list[Service]:
        self.sensors = {
            MODULE_ACC: _Sensor(
                "acc",
                REG_DATA,
                PACKED,
                {code: rate for rate, code in ODR_CODE.items()},
                {code: g for g, code in RANGE_CODE["bmi160"].items()},
                100.0,
                4,
            ),
            MODULE_GYRO: _Sensor(
                "gyro",
                GYRO_DATA,
                GYRO_PACKED,
                {code: rate for rate, code in GYRO_ODR_CODE.items()},
                {code: dps for dps, code in GYRO_RANGE_CODE.items()},
                100.0,
                2000,
            ),
        }
        command = self.writable(
            COMMAND,
            self._on_command,
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
        )
        self.notify_char = self.notifying(NOTIFY)
        return [Service(SERVICE, [command, self.notify_char])]

    def advertising(self) -> tuple[bytes, bytes]:
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_COMPLETE_128, uuid128_le(SERVICE)),
            ad_structure(AD_COMPLETE_NAME, self.device.name.encode()),
        )
        return data, b""

    def _on_command(self, data: bytes) -> None:
        sensor = self.sensors.get(data[0]) if len(data) >= 3 else None
        if sensor is None:
            return
        sensor.command(data[1], data[2:])
        if sensor.running and not self.streaming(sensor.stream):
            self._start(sensor)
        elif not sensor.running:
            self.stop_stream(sensor.stream)

    def _start(self, sensor: _Sensor) -> None:
        register = sensor.packed if sensor.packed in sensor.subscribed else sensor.data
        per_notification = 3 if register == sensor.packed else 1
        source, start_ns = self.new_source(sensor.stream, sensor.rate_hz, 3)
        range_ = sensor.range_
        encoder = encode_acc if sensor.stream == "acc" else encode_gyro

        def encode(values: FloatArray, first: int) -> list[Notification]:
            usable = len(values) - len(values) % per_notification
            return [
                (self.notify_char, encoder(values[k : k + per_notification], range_, register))
                for k in range(0, usable, per_notification)
            ]

        block = per_notification * max(1, round(sensor.rate_hz / 10 / per_notification))
        self.start_stream(Stream(sensor.stream, source, block, encode, start_ns))
