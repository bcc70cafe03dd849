"""Nordic Thingy:52, Thingy Motion Service (TMS), raw data characteristic.

Built from Nordic's public Thingy:52 firmware description (``m_motion.c``, ``ble_tms.h``); no published
notification vectors exist, so it is verified against the documented layout only (frames constructed in
the tests).

Raw data (``RAW_DATA``, notify), 18 bytes, nine int16 LE fixed-point values per notification (one sample):

========  ===========  ===============  ======
bytes     quantity     format           unit
========  ===========  ===============  ======
0-5       accel x,y,z  Q6.10 (÷ 1024)   g
6-11      gyro x,y,z   Q11.5 (÷ 32)     °/s
12-17     compass x,y,z Q12.4 (÷ 16)    µT (not decoded: twitchwatch has no µT unit)
========  ===========  ===============  ======

The firmware shifts its Q16.16 readings right by 6 / 11 / 12 bits ("integer bits") before sending, which
leaves 10 / 5 / 4 fractional bits. (Some third-party Web Bluetooth code divides by 64 / 2048 / 4096 — the
shift counts — and is off by 16×; the firmware is the reference.) The accelerometer therefore saturates at
±32 g and resolves 1/1024 g.

Start: write the motion configuration (``MOTION_CONFIG``, 9 bytes: step counter interval ms, temperature
compensation interval ms, magnetometer compensation interval ms, motion processing frequency Hz — all
u16 LE — and wake-on-motion u8), then enable notifications on ``RAW_DATA``: the firmware runs the raw feature
while notifications are on. Stop: disable the notifications. No device timestamps.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from pydantic import Field

from twitchwatch.collector.devices import (
    Chunk,
    Decoder,
    DeviceProfile,
    GattWrite,
    NotificationError,
    Plan,
    ProfileSettings,
    ScanMatch,
    StatelessDecoder,
    StreamSpec,
)
from twitchwatch.collector.frames import Unit


def _uuid(short: int) -> str:
    return f"ef68{short:04x}-9b35-4933-9b10-52ffa9740042"


MOTION_SERVICE: Final = _uuid(0x0400)
CONFIGURATION_SERVICE: Final = _uuid(0x0100)  # what the firmware advertises
MOTION_CONFIG: Final = _uuid(0x0401)
RAW_DATA: Final = _uuid(0x0406)

ACC_SCALE: Final = 1 / 1024  # Q6.10 → g
GYRO_SCALE: Final = 1 / 32  # Q11.5 → °/s
COMPASS_SCALE: Final = 1 / 16  # Q12.4 → µT
RAW_SIZE: Final = 18
_CONFIG: Final = struct.Struct("<HHHHB")


def config_payload(
    step_interval_ms: int,
    temp_comp_interval_ms: int,
    mag_comp_interval_ms: int,
    motion_freq_hz: int,
    wake_on_motion: bool,
) -> bytes:
    return _CONFIG.pack(
        step_interval_ms, temp_comp_interval_ms, mag_comp_interval_ms, motion_freq_hz, wake_on_motion
    )


@dataclass(frozen=True)
class RawDecoder(StatelessDecoder):
    sample_rate_hz: float | None = None
    streams: frozenset[str] = frozenset({"acc", "gyro"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        if len(data) != RAW_SIZE:
            raise NotificationError(
                f"raw motion data is {RAW_SIZE} bytes, got {len(data)}", min(len(data), RAW_SIZE)
            )
        v = np.frombuffer(data, dtype="<i2").astype(np.int16)
        rate = self.sample_rate_hz
        return (
            Chunk("acc", v[0:3].reshape(1, 3), ACC_SCALE, Unit.G, rate),
            Chunk("gyro", v[3:6].reshape(1, 3), GYRO_SCALE, Unit.DEG_PER_S, rate),
        )


class Thingy52Settings(ProfileSettings):
    type: Literal["thingy52"] = "thingy52"
    rate_hz: int = Field(100, ge=5, le=200)  # motion processing unit frequency
    step_interval_ms: int = Field(1000, ge=100, le=5000)
    temp_comp_interval_ms: int = Field(500, ge=100, le=5000)
    mag_comp_interval_ms: int = Field(500, ge=100, le=1000)
    wake_on_motion: bool = True


class Thingy52(DeviceProfile):
    """Nordic Thingy:52 (raw accelerometer and gyroscope, 5-200 Hz)."""

    NAME = "thingy52"
    TITLE = "Nordic Thingy:52"
    SERVICE = MOTION_SERVICE
    SCAN = ScanMatch((CONFIGURATION_SERVICE, MOTION_SERVICE))
    SETTINGS = Thingy52Settings
    STREAMS = (
        StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), RAW_DATA),
        StreamSpec("gyro", "gyro", Unit.DEG_PER_S, ("x", "y", "z"), RAW_DATA),
    )
    DEFAULT_STREAM = "acc"

    @property
    def thingy_settings(self) -> Thingy52Settings:
        assert isinstance(self.settings, Thingy52Settings)
        return self.settings

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        s = self.thingy_settings
        payload = config_payload(
            s.step_interval_ms, s.temp_comp_interval_ms, s.mag_comp_interval_ms, s.rate_hz, s.wake_on_motion
        )
        return Plan(streams=chosen, notify=(RAW_DATA,), start=(GattWrite(MOTION_CONFIG, payload),), stop=())

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        self.check_streams(streams)
        return {RAW_DATA: RawDecoder(float(self.thingy_settings.rate_hz))}
