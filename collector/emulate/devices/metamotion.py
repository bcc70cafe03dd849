"""MbientLab MetaMotion R (BMI160): the accelerometer module of the MetaWear command protocol.

Encoder (pure, the inverse of ``collector.devices.metamotion``): ``03 04 <x y z int16>`` (one sample) or
``03 1C <3 × x y z int16>`` (packed, oldest first), counts of 1/LSB g for the configured range
(16384/8192/4096/2048 LSB per g at ±2/4/8/16 g), rounded and clipped to int16.

Peripheral: the MetaWear service (command: write / write without response; notify), Battery, Device
Information. Module 0x03 registers: data config ``03 03 <conf> <range>`` (ODR code in the low nibble:
0.78-1600 Hz; BMI160 range codes 03/05/08/0C), data ``03 04 01|00`` and packed ``03 1C 01|00``
subscribe/unsubscribe, sampling ``03 02 01 00`` / ``03 02 00 01``, power ``03 01 01|00``. Samples flow while
the accelerometer is powered, sampling is enabled and a data register is subscribed, at the configured rate;
power off stops them. Other modules' commands are accepted and ignored (the real board answers some of
them; no profile here waits for those answers). Defaults before any config: 100 Hz, ±4 g (the SDK's).

Advertising: flags, the MetaWear service UUID and the name ``MetaWear``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from collector.devices.metamotion import (
    COMMAND,
    LSB_PER_G,
    MODULE_ACC,
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
from collector.emulate.peripheral import (
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
RATE_OF_CODE: Final = {code: rate for rate, code in ODR_CODE.items()}
RANGE_OF_CODE: Final = {code: g for g, code in RANGE_CODE["bmi160"].items()}


def encode_acc(values_g: npt.ArrayLike, range_g: int, register: int = REG_DATA) -> bytes:
    """One sample (data register) or three (packed register), in g → the notification."""
    v = np.asarray(values_g, dtype=np.float64)
    samples = 1 if register == REG_DATA else 3
    if v.shape != (samples, 3):
        raise ValueError(f"register 0x{register:02x} carries ({samples}, 3) samples, got {v.shape}")
    counts = np.clip(np.rint(v * LSB_PER_G[range_g]), -32768, 32767).astype("<i2")
    return bytes([MODULE_ACC, register]) + counts.tobytes()


class MetaMotionPeripheral(Peripheral):
    PROFILE = "metamotion"
    DEFAULT_NAME = "MetaWear"
    MANUFACTURER = "MbientLab Inc"
    MODEL = "MetaMotion R (BMI160)"

    def services(self) -> list[Service]:
        self.rate_hz = 100.0
        self.range_g = 4
        self.subscribed_registers: set[int] = set()
        self.sampling = False
        self.powered = False
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
        if len(data) < 3 or data[0] != MODULE_ACC:
            return
        register, payload = data[1], data[2:]
        if register == REG_CONFIG and len(payload) == 2:
            rate = RATE_OF_CODE.get(payload[0] & 0x0F)
            range_g = RANGE_OF_CODE.get(payload[1])
            if rate is not None and range_g is not None:
                self.rate_hz, self.range_g = rate, range_g
        elif register in (REG_DATA, PACKED) and len(payload) == 1:
            if payload[0]:
                self.subscribed_registers.add(register)
            else:
                self.subscribed_registers.discard(register)
        elif register == REG_SAMPLING and len(payload) == 2:
            self.sampling = payload[0] == 1
        elif register == REG_POWER and len(payload) == 1:
            self.powered = payload[0] == 1
        self._update()

    def _update(self) -> None:
        running = self.powered and self.sampling and bool(self.subscribed_registers)
        if running and not self.streaming("acc"):
            self._start()
        elif not running:
            self.stop_stream("acc")

    def _start(self) -> None:
        register = PACKED if PACKED in self.subscribed_registers else REG_DATA
        per_notification = 3 if register == PACKED else 1
        source, start_ns = self.new_source("acc", self.rate_hz, 3)
        range_g = self.range_g

        def encode(values: FloatArray, first: int) -> list[Notification]:
            usable = len(values) - len(values) % per_notification
            return [
                (self.notify_char, encode_acc(values[k : k + per_notification], range_g, register))
                for k in range(0, usable, per_notification)
            ]

        block = per_notification * max(1, round(self.rate_hz / 10 / per_notification))
        self.start_stream(Stream("acc", source, block, encode, start_ns))
