"""Nordic Thingy:52: the Thingy Motion Service's raw data, as the firmware sends it.

Encoder (pure, the inverse of ``collector.devices.thingy52``): one sample → 18 bytes, nine int16 LE:
accelerometer Q6.10 (1/1024 g), gyroscope Q11.5 (1/32 °/s), compass Q12.4 (1/16 µT), each rounded and
clipped to int16. Acceleration and rotation rate come from the generator, sampled at the same instants (the
gyroscope's noise at rest; the wearer's movement, when there is some, in both); the compass reads zero.

Peripheral: the motion service with its configuration (read/write, 9 bytes: step, temperature and
magnetometer compensation intervals in ms, motion processing frequency in Hz — u16 each — and
wake-on-motion u8) and raw data (notify); Battery and Device Information. Like the firmware, the raw
feature runs while notifications on raw data are enabled, at the configured frequency (default 100 Hz);
writing a new frequency restarts it at that rate; disabling notifications stops it. Frequencies outside
5-200 Hz are ignored (the firmware rejects them), so are configurations of the wrong length.

Advertising: flags, the Thingy configuration service UUID and the name ("Thingy"); the motion service
UUID in the scan response.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.device import Connection
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices.thingy52 import (
    ACC_SCALE,
    COMPASS_SCALE,
    GYRO_SCALE,
    MOTION_CONFIG,
    MOTION_SERVICE,
    RAW_DATA,
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

CONFIGURATION_SERVICE: Final = "ef680100-9b35-4933-9b10-52ffa9740042"
DEFAULT_CONFIG: Final = (1000, 500, 500, 100, 1)
MIN_HZ, MAX_HZ = 5, 200
CONFIG: Final = struct.Struct("<HHHHB")  # the 9-byte configuration, as ble_tms.h lays it out


def encode_raw(
    acc_g: npt.ArrayLike,
    gyro_dps: npt.ArrayLike = (0.0, 0.0, 0.0),
    compass_ut: npt.ArrayLike = (0.0, 0.0, 0.0),
) -> bytes:
    """One raw motion sample → the 18-byte notification."""
    scaled = np.concatenate(
        [
            np.asarray(acc_g, dtype=np.float64) / ACC_SCALE,
            np.asarray(gyro_dps, dtype=np.float64) / GYRO_SCALE,
            np.asarray(compass_ut, dtype=np.float64) / COMPASS_SCALE,
        ]
    )
    if scaled.shape != (9,):
        raise ValueError("a raw motion sample is 3 acceleration, 3 gyroscope and 3 compass values")
    return bytes(np.clip(np.rint(scaled), -32768, 32767).astype("<i2").tobytes())


class Thingy52Peripheral(Peripheral):
    PROFILE = "thingy52"
    DEFAULT_NAME = "Thingy"
    MANUFACTURER = "Nordic Semiconductor ASA"
    MODEL = "Thingy:52"

    def services(self) -> list[Service]:
        self.config: tuple[int, ...] = DEFAULT_CONFIG
        self.raw = self.notifying(RAW_DATA)
        self.raw.on(self.raw.EVENT_SUBSCRIPTION, self._on_subscription)
        config = self.writable(
            MOTION_CONFIG,
            self._on_config,
            Characteristic.Properties.READ | Characteristic.Properties.WRITE,
            read=lambda: CONFIG.pack(*self.config),
        )
        return [Service(MOTION_SERVICE, [config, self.raw])]

    def advertising(self) -> tuple[bytes, bytes]:
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_COMPLETE_128, uuid128_le(CONFIGURATION_SERVICE)),
            ad_structure(AD_COMPLETE_NAME, self.device.name.encode()),
        )
        return data, advertising_payload(ad_structure(AD_COMPLETE_128, uuid128_le(MOTION_SERVICE)))

    @property
    def rate_hz(self) -> int:
        return self.config[3]

    def _on_config(self, data: bytes) -> None:
        if len(data) != CONFIG.size:
            return
        values = CONFIG.unpack(data)
        if not MIN_HZ <= values[3] <= MAX_HZ:
            return
        changed = values[3] != self.rate_hz
        self.config = values
        if changed and self.streaming("raw"):
            self._start()

    def _on_subscription(self, connection: Connection, notify: bool, indicate: bool) -> None:
        if self.silent:
            return
        if notify and not self.streaming("raw"):
            self._start()
        elif not notify:
            self.stop_stream("raw")

    def _start(self) -> None:
        rate = self.rate_hz
        source, start_ns = self.new_sources([("acc", 3), ("gyro", 3)], float(rate))

        def encode(values: FloatArray, first: int) -> list[Notification]:
            return [(self.raw, encode_raw(row[0:3], row[3:6])) for row in values]

        # One sample per notification, as the firmware sends; blocks of a tenth of a second.
        self.start_stream(Stream("raw", source, max(1, rate // 10), encode, start_ns))
