"""Thalmic Labs Myo armband: raw EMG (8 × int8 at 200 Hz) and the IMU (50 Hz), per ``myohw.h``'s layout.

Encoders (pure, inverses of ``collector.devices.myo``):

- EMG: two consecutive 8-channel samples as 16 int8 per notification. The armband's gain was never
  published, so the decoder reports counts; the emulation maps the generator's µV to counts at
  ``UV_PER_COUNT`` (1 µV per count, an assumption) and clips at ±127/−128 like a saturating front end.
  Successive notifications rotate over the four EMG characteristics, as the armband does.
- IMU: 10 × int16 — quaternion w,x,y,z (×16384), accelerometer x,y,z (×2048 per g), gyroscope x,y,z
  (×16 per °/s), all three sampled at the same instants from the generator: at rest the identity
  orientation and the gyroscope's noise, and when the wearer moves (``movement=``) the same movement in all
  three (``collector.emulate.motion``).

GATT: control service (info, firmware version, command), IMU service (IMU data notify, motion events
indicate), classifier service (classifier events indicate, the undocumented FV characteristic), EMG data
service (four EMG characteristics), plus Battery. Commands: ``set_mode`` (0x01) starts/stops EMG (raw
0x03 or filtered 0x02 — both stream the same samples here) and the IMU (data 0x01, all 0x03, raw 0x04);
``set_sleep_mode``, ``vibrate``, ``unlock``, ``user_action`` are accepted and do nothing; anything else
is ignored, as the armband does (writes get the ATT write response; the Myo sends no command replies).

Advertising: flags and the control service UUID; the name ("Myo") in the scan response.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices.myo import (
    ACCELEROMETER_SCALE,
    CLASSIFIER_EVENT,
    COMMAND,
    CONTROL_SERVICE,
    EMG_DATA,
    EMG_RATE_HZ,
    FV_DATA,
    GYROSCOPE_SCALE,
    IMU_DATA,
    IMU_RATE_HZ,
    MOTION_EVENT,
    ORIENTATION_SCALE,
    EmgMode,
    ImuMode,
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


def _uuid(short: int) -> str:
    return f"d506{short:04x}-a904-deb9-4748-2c7f4a124842"


INFO: Final = _uuid(0x0101)
FIRMWARE_VERSION: Final = _uuid(0x0201)
IMU_SERVICE: Final = _uuid(0x0002)
CLASSIFIER_SERVICE: Final = _uuid(0x0003)
EMG_SERVICE: Final = _uuid(0x0005)
UV_PER_COUNT: Final = 1.0
SET_MODE: Final = 0x01
EMG_SAMPLES_PER_NOTIFICATION: Final = 2
FIRMWARE: Final = (1, 5, 1970, 2)  # major, minor, patch, hardware revision (Myo retail, "1.5.1970")


def encode_emg(values_uv: npt.ArrayLike) -> bytes:
    """Two 8-channel samples (µV) → one 16-byte EMG notification."""
    v = np.asarray(values_uv, dtype=np.float64)
    if v.shape != (2, 8):
        raise ValueError(f"an EMG notification carries (2, 8) samples, got {v.shape}")
    return np.clip(np.rint(v / UV_PER_COUNT), -128, 127).astype(np.int8).tobytes()


def encode_imu(
    orientation: npt.ArrayLike = (1.0, 0.0, 0.0, 0.0),
    acc_g: npt.ArrayLike = (0.0, 0.0, 0.0),
    gyro_dps: npt.ArrayLike = (0.0, 0.0, 0.0),
) -> bytes:
    """One IMU sample → the 20-byte notification (each field rounded and clipped to int16)."""
    scaled = np.concatenate(
        [
            np.asarray(orientation, dtype=np.float64) * ORIENTATION_SCALE,
            np.asarray(acc_g, dtype=np.float64) * ACCELEROMETER_SCALE,
            np.asarray(gyro_dps, dtype=np.float64) * GYROSCOPE_SCALE,
        ]
    )
    if scaled.shape != (10,):
        raise ValueError("an IMU sample is 4 orientation, 3 acceleration and 3 gyroscope values")
    return bytes(np.clip(np.rint(scaled), -32768, 32767).astype("<i2").tobytes())


def fw_info(serial: bytes) -> bytes:
    """``myohw_fw_info_t``: serial (6), unlock pose (u16), classifier type, index, has custom classifier,
    stream indicating, SKU (black = 1), 7 reserved bytes."""
    return serial[:6].ljust(6, b"\0") + struct.pack("<HBBBBB", 0x0000, 0, 0, 0, 0, 1) + bytes(7)


class MyoPeripheral(Peripheral):
    PROFILE = "myo"
    DEFAULT_NAME = "Myo"
    MANUFACTURER = "Thalmic Labs"
    MODEL = "Myo"

    def services(self) -> list[Service]:
        serial = bytes(self.device.random_address.address_bytes[:6])
        read, notify, indicate = (
            Characteristic.Properties.READ,
            Characteristic.Properties.NOTIFY,
            Characteristic.Properties.INDICATE,
        )
        control = [
            Characteristic(INFO, read, Characteristic.READABLE, fw_info(serial)),
            Characteristic(FIRMWARE_VERSION, read, Characteristic.READABLE, struct.pack("<4H", *FIRMWARE)),
            self.writable(COMMAND, self._on_command, Characteristic.Properties.WRITE),
        ]
        self.imu = self.notifying(IMU_DATA)
        self.emg = [self.notifying(uuid) for uuid in EMG_DATA]
        return [
            Service(CONTROL_SERVICE, control),
            Service(
                IMU_SERVICE, [self.imu, Characteristic(MOTION_EVENT, indicate, Characteristic.READABLE, b"")]
            ),
            Service(
                CLASSIFIER_SERVICE,
                [
                    Characteristic(CLASSIFIER_EVENT, indicate, Characteristic.READABLE, b""),
                    Characteristic(FV_DATA, notify, Characteristic.READABLE, b""),
                ],
            ),
            Service(EMG_SERVICE, self.emg),
        ]

    def advertising(self) -> tuple[bytes, bytes]:
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_COMPLETE_128, uuid128_le(CONTROL_SERVICE)),
        )
        return data, advertising_payload(ad_structure(AD_COMPLETE_NAME, self.device.name.encode()))

    def _on_command(self, data: bytes) -> None:
        if len(data) < 2 or len(data) != 2 + data[1]:
            return  # the armband ignores malformed commands
        if data[0] == SET_MODE and data[1] == 3:
            self._set_mode(data[2], data[3])

    def _set_mode(self, emg_mode: int, imu_mode: int) -> None:
        if emg_mode in (EmgMode.RAW, EmgMode.FILTERED):
            if not self.streaming("emg"):
                self._start_emg()
        elif emg_mode == EmgMode.NONE:
            self.stop_stream("emg")
        if imu_mode in (ImuMode.DATA, ImuMode.ALL, ImuMode.RAW):
            if not self.streaming("imu"):
                self._start_imu()
        elif imu_mode in (ImuMode.NONE, ImuMode.EVENTS):
            self.stop_stream("imu")

    def _start_emg(self) -> None:
        source, start_ns = self.new_source("emg", EMG_RATE_HZ, 8)
        rotation = 0

        def encode(values: FloatArray, first: int) -> list[Notification]:
            nonlocal rotation
            out: list[Notification] = []
            for k in range(0, len(values) - 1, EMG_SAMPLES_PER_NOTIFICATION):
                out.append((self.emg[rotation % 4], encode_emg(values[k : k + 2])))
                rotation += 1
            return out

        # Eight samples a block: one pass over the four characteristics every 40 ms.
        self.start_stream(Stream("emg", source, 8, encode, start_ns))

    def _start_imu(self) -> None:
        source, start_ns = self.new_sources([("orientation", 4), ("acc", 3), ("gyro", 3)], IMU_RATE_HZ)

        def encode(values: FloatArray, first: int) -> list[Notification]:
            return [(self.imu, encode_imu(row[0:4], row[4:7], row[7:10])) for row in values]

        self.start_stream(Stream("imu", source, 5, encode, start_ns))
