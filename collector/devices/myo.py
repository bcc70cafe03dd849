"""Thalmic Labs Myo armband: 8-channel EMG at 200 Hz and the IMU at 50 Hz, per Thalmic's ``myohw.h``.

EMG: four notify characteristics (``EMG_DATA``) each carry 16 bytes = two consecutive samples of eight
int8 channels; the armband rotates through them, so 200 Hz arrives as 4 × 25 notifications of 2 samples.
Nothing in a notification orders it: the runtime keeps arrival order. No device timestamps.

Units. Myo EMG is the armband's int8 ADC output after its own front end; Thalmic never published a gain,
so there is no honest conversion to µV. The decoder reports it as ``Unit.UNITLESS`` (scale 1, counts
−128…127) and the stream is marked ``signal="emg"`` so the runtime/worker can still pick the EMG detector
(the detector works on the noise floor, not on absolute µV). The IMU is physical: quaternion /16384,
accelerometer /2048 g, gyroscope /16 °/s (``MYOHW_*_SCALE``).

Also decoded: the ``fv`` characteristic (eight uint16 "feature values" + a mask byte; sent by an
``emg_mode`` 0x01 that ``myohw.h`` does not document, kept for completeness, not started by ``plan``),
classifier events and motion (tap) events as messages.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

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
    need,
    validate_model,
)
from twitchwatch.collector.frames import Unit


def _uuid(short: int) -> str:
    return f"d506{short:04x}-a904-deb9-4748-2c7f4a124842"


CONTROL_SERVICE: Final = _uuid(0x0001)  # advertised; also holds the command characteristic
COMMAND: Final = _uuid(0x0401)
IMU_DATA: Final = _uuid(0x0402)
MOTION_EVENT: Final = _uuid(0x0502)
CLASSIFIER_EVENT: Final = _uuid(0x0103)
FV_DATA: Final = _uuid(0x0104)
EMG_DATA: Final = tuple(_uuid(short) for short in (0x0105, 0x0205, 0x0305, 0x0405))

EMG_RATE_HZ: Final = 200.0
IMU_RATE_HZ: Final = 50.0
ORIENTATION_SCALE: Final = 16384.0
ACCELEROMETER_SCALE: Final = 2048.0
GYROSCOPE_SCALE: Final = 16.0


class EmgMode(enum.IntEnum):
    NONE = 0x00
    FILTERED = 0x02  # myohw_emg_mode_send_emg
    RAW = 0x03  # myohw_emg_mode_send_emg_raw


class ImuMode(enum.IntEnum):
    NONE = 0x00
    DATA = 0x01
    EVENTS = 0x02
    ALL = 0x03
    RAW = 0x04


def set_mode(emg: EmgMode, imu: ImuMode, classifier: bool = False) -> bytes:
    """``myohw_command_set_mode``: command 0x01, payload size 3, EMG mode, IMU mode, classifier mode."""
    return bytes([0x01, 3, emg, imu, int(classifier)])


def set_sleep_mode(never_sleep: bool) -> bytes:
    """``myohw_command_set_sleep_mode``: 0x09, size 1, 0 = normal, 1 = never sleep."""
    return bytes([0x09, 1, int(never_sleep)])


# ---------------------------------------------------------------------------------------- decoders


def _exact(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise NotificationError(f"{what} is {size} bytes, got {len(data)}", min(len(data), size))


@dataclass(frozen=True)
class EmgDecoder(StatelessDecoder):
    streams: frozenset[str] = frozenset({"emg"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        _exact(data, 16, "an EMG notification")
        raw = np.frombuffer(data, dtype=np.int8).reshape(2, 8).copy()
        return (Chunk("emg", raw, 1.0, Unit.UNITLESS, EMG_RATE_HZ),)


@dataclass(frozen=True)
class ImuDecoder(StatelessDecoder):
    streams: frozenset[str] = frozenset({"orientation", "acc", "gyro"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        _exact(data, 20, "an IMU notification")
        v = np.frombuffer(data, dtype="<i2").astype(np.int16)
        return (
            Chunk("orientation", v[0:4].reshape(1, 4), 1 / ORIENTATION_SCALE, Unit.UNITLESS, IMU_RATE_HZ),
            Chunk("acc", v[4:7].reshape(1, 3), 1 / ACCELEROMETER_SCALE, Unit.G, IMU_RATE_HZ),
            Chunk("gyro", v[7:10].reshape(1, 3), 1 / GYROSCOPE_SCALE, Unit.DEG_PER_S, IMU_RATE_HZ),
        )


@dataclass(frozen=True)
class FvDecoder(StatelessDecoder):
    streams: frozenset[str] = frozenset({"fv"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        return (Chunk("fv", np.array([parse_fv(data).fv], dtype=np.int32), 1.0, Unit.UNITLESS),)


@dataclass(frozen=True)
class FvData:
    fv: tuple[int, ...]
    mask: int


def parse_fv(data: bytes) -> FvData:
    _exact(data, 17, "an FV notification")
    values = np.frombuffer(data[:16], dtype="<u2")
    return FvData(tuple(int(v) for v in values), data[16])


# -------------------------------------------------------------------------------------------- events


class ClassifierEventType(enum.IntEnum):
    ARM_SYNCED = 0x01
    ARM_UNSYNCED = 0x02
    POSE = 0x03
    UNLOCKED = 0x04
    LOCKED = 0x05
    SYNC_FAILED = 0x06


@dataclass(frozen=True)
class ClassifierEvent:
    type: int
    arm: int | None = None  # 1 right, 2 left, 0xff unknown
    x_direction: int | None = None  # 1 toward wrist, 2 toward elbow, 0xff unknown
    pose: int | None = None
    sync_result: int | None = None


def parse_classifier_event(data: bytes) -> ClassifierEvent:
    """``myohw_classifier_event_t`` (3 bytes; firmware pads the notification to 6)."""
    need(data, 0, 3, "classifier event")
    kind = data[0]
    if kind == ClassifierEventType.ARM_SYNCED:
        return ClassifierEvent(kind, arm=data[1], x_direction=data[2])
    if kind == ClassifierEventType.POSE:
        return ClassifierEvent(kind, pose=int.from_bytes(data[1:3], "little"))
    if kind == ClassifierEventType.SYNC_FAILED:
        return ClassifierEvent(kind, sync_result=data[1])
    if kind in {t.value for t in ClassifierEventType}:
        return ClassifierEvent(kind)
    raise NotificationError(f"classifier event type {kind} is not in myohw.h", 0)


@dataclass(frozen=True)
class MotionEvent:
    type: int
    tap_direction: int
    tap_count: int


def parse_motion_event(data: bytes) -> MotionEvent:
    """``myohw_motion_event_t``: type (0 = tap), tap direction, tap count."""
    need(data, 0, 3, "motion event")
    if data[0] != 0:
        raise NotificationError(f"motion event type {data[0]} is not in myohw.h (0 = tap)", 0)
    return MotionEvent(data[0], data[1], data[2])


# ------------------------------------------------------------------------------------------- profile


class MyoSettings(ProfileSettings):
    type: Literal["myo"] = "myo"
    emg_mode: Literal["raw", "filtered"] = "raw"
    never_sleep: bool = True  # stay awake while strapped on but still


class _DecodeParams(BaseModel):
    """``myo.json`` names the IMU scales; they are fixed by the firmware, so only those values pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orientation_scale: float = ORIENTATION_SCALE
    accelerometer_scale: float = ACCELEROMETER_SCALE
    gyroscope_scale: float = GYROSCOPE_SCALE

    @model_validator(mode="after")
    def _fixed(self) -> Self:
        fixed = (ORIENTATION_SCALE, ACCELEROMETER_SCALE, GYROSCOPE_SCALE)
        if (self.orientation_scale, self.accelerometer_scale, self.gyroscope_scale) != fixed:
            raise ValueError(f"the Myo firmware fixes the IMU scales at {fixed}")
        return self


class Myo(DeviceProfile):
    """Thalmic Labs Myo armband (raw EMG 8 × 200 Hz, IMU 50 Hz)."""

    NAME = "myo"
    TITLE = "Thalmic Labs Myo armband"
    SERVICE = CONTROL_SERVICE
    SETTINGS = MyoSettings
    STREAMS = (
        StreamSpec("emg", "emg", Unit.UNITLESS, tuple(f"ch{i}" for i in range(1, 9)), EMG_DATA[0]),
        StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), IMU_DATA),
        StreamSpec("gyro", "gyro", Unit.DEG_PER_S, ("x", "y", "z"), IMU_DATA),
        StreamSpec("orientation", "orientation", Unit.UNITLESS, ("w", "x", "y", "z"), IMU_DATA),
        StreamSpec("fv", "other", Unit.UNITLESS, tuple(f"ch{i}" for i in range(1, 9)), FV_DATA),
    )
    DEFAULT_STREAM = "emg"
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {
        "classifier": parse_classifier_event,
        "motion": parse_motion_event,
    }

    @property
    def myo_settings(self) -> MyoSettings:
        assert isinstance(self.settings, MyoSettings)
        return self.settings

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        if "fv" in chosen:
            raise ParamError(
                "myo streams", [("fv", "FV needs an EMG mode myohw.h does not document; not started")]
            )
        emg = "emg" in chosen
        imu = bool({"acc", "gyro", "orientation"} & set(chosen))
        s = self.myo_settings
        emg_mode = (EmgMode.RAW if s.emg_mode == "raw" else EmgMode.FILTERED) if emg else EmgMode.NONE
        notify = (*(EMG_DATA if emg else ()), *((IMU_DATA,) if imu else ()))
        return Plan(
            streams=chosen,
            notify=notify,
            start=(
                GattWrite(COMMAND, set_mode(emg_mode, ImuMode.DATA if imu else ImuMode.NONE)),
                GattWrite(COMMAND, set_sleep_mode(s.never_sleep)),
            ),
            stop=(
                GattWrite(COMMAND, set_mode(EmgMode.NONE, ImuMode.NONE)),
                GattWrite(COMMAND, set_sleep_mode(False)),
            ),
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        chosen = set(self.check_streams(streams))
        out: dict[str, Decoder[Any]] = {}
        if "emg" in chosen:
            emg = EmgDecoder()
            out.update(dict.fromkeys(EMG_DATA, emg))
        if {"acc", "gyro", "orientation"} & chosen:
            out[IMU_DATA] = ImuDecoder()
        if "fv" in chosen:
            out[FV_DATA] = FvDecoder()
        return out

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        validate_model(_DecodeParams, params, "myo decode parameters")
        return super().debug_decoder(stream, {}, data)
