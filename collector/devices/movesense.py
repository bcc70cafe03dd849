"""Movesense over the GATT SensorData Protocol (GSP) of Movesense's ``gatt_sensordata_app`` firmware sample.

Built from the sample's public description; no published fixed frames exist, so it is verified against the
documented layout only (frames constructed in the tests).

Commands, written to ``WRITE``::

    HELLO       00 <ref>
    SUBSCRIBE   01 <ref> <resource path, ASCII>   e.g. 01 01 "/Meas/Acc/104"
    UNSUBSCRIBE 02 <ref>                          (ref as given to SUBSCRIBE; never 0)

Notifications on ``NOTIFY``::

    COMMAND_RESULT 01 <ref> <result>          "Hello", or a 2-byte HTTP-style status
    DATA           02 <ref> <SBEM payload>

The SBEM payload of ``/Meas/Acc/{rate}`` and ``/Meas/Gyro/{rate}`` is a u32 LE timestamp in ms (the
sensor's local clock, time of the FIRST sample) followed by n × (x, y, z) float32 LE — m/s² for the
accelerometer (converted here to g, 1 g = 9.80665 m/s²), °/s for the gyroscope. Per-sample times are
``timestamp + i / rate``. The ms clock is relative (since the sensor booted) and wraps after 49.7 days.
The measurement range is not settable through GSP (it needs ``/Meas/Acc/Config``), so the sensor's default
applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal

import numpy as np

from twitchwatch.collector.devices import (
    Chunk,
    Decoder,
    DeviceProfile,
    GattWrite,
    NotificationError,
    Plan,
    ProfileSettings,
    StatelessDecoder,
    StreamSpec,
    need,
    uniform_times,
)
from twitchwatch.collector.frames import Unit

SERVICE: Final = "34802252-7185-4d5d-b431-630e7050e8f0"
WRITE: Final = "34800001-7185-4d5d-b431-630e7050e8f0"
NOTIFY: Final = "34800002-7185-4d5d-b431-630e7050e8f0"

HELLO: Final = 0x00
SUBSCRIBE: Final = 0x01
UNSUBSCRIBE: Final = 0x02
COMMAND_RESULT: Final = 0x01
DATA: Final = 0x02

STANDARD_GRAVITY: Final = 9.80665
Rate = Literal[13, 26, 52, 104, 208, 416, 833, 1666]

# Fixed client references, one per stream.
REFERENCES: Final[Mapping[str, int]] = {"acc": 0x01, "gyro": 0x02}
_RESOURCE: Final[Mapping[str, str]] = {"acc": "/Meas/Acc", "gyro": "/Meas/Gyro"}


def subscribe_command(reference: int, path: str) -> bytes:
    if not 1 <= reference <= 255:
        raise ValueError("a GSP reference is 1-255")
    return bytes([SUBSCRIBE, reference]) + path.encode("ascii")


def unsubscribe_command(reference: int) -> bytes:
    return bytes([UNSUBSCRIBE, reference])


@dataclass(frozen=True)
class CommandResult:
    """``01 <ref> …``: the sample firmware answers HELLO with "Hello" and failures with a 2-byte status
    written high byte first (507 = ``01 FB``)."""

    reference: int
    status: int | None
    text: str | None


def parse_command_result(data: bytes) -> CommandResult:
    need(data, 0, 2, "GSP command result")
    if data[0] != COMMAND_RESULT:
        raise NotificationError(f"GSP message type {data[0]} is not a command result ({COMMAND_RESULT})", 0)
    payload = bytes(data[2:])
    if len(payload) == 2:
        return CommandResult(data[1], int.from_bytes(payload, "big"), None)
    return CommandResult(data[1], None, payload.decode("ascii", errors="replace"))


@dataclass(frozen=True)
class _Route:
    stream: str
    rate: float
    unit: Unit
    scale: float


@dataclass(frozen=True)
class GspDecoder(StatelessDecoder):
    """DATA notifications → chunks of the stream subscribed under that reference."""

    routes: Mapping[int, _Route] = field(default_factory=dict)
    streams: frozenset[str] = frozenset()

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        need(data, 0, 2, "GSP message header")
        kind, reference = data[0], data[1]
        if kind == COMMAND_RESULT:
            return ()
        if kind != DATA:
            raise NotificationError(f"GSP message type {kind} is neither command result nor data", 0)
        route = self.routes.get(reference)
        if route is None:
            raise NotificationError(f"no stream was subscribed under reference {reference}", 1)
        need(data, 2, 4, "SBEM timestamp")
        body = len(data) - 6
        if body == 0 or body % 12:
            raise NotificationError(
                f"{body} sample bytes is not a whole number (≥ 1) of 12-byte x,y,z float32 samples",
                6 + (body // 12) * 12,
            )
        raw = np.frombuffer(data, dtype="<f4", offset=6).astype(np.float32).reshape(-1, 3)
        finite = np.isfinite(raw.reshape(-1))
        if not finite.all():
            raise NotificationError("non-finite float sample", 6 + 4 * int(np.flatnonzero(~finite)[0]))
        t0_ms = int.from_bytes(data[2:6], "little")
        times = uniform_times(t0_ms * 1_000_000, len(raw), route.rate, 2)
        return (Chunk(route.stream, raw, route.scale, route.unit, route.rate, times),)


class MovesenseSettings(ProfileSettings):
    type: Literal["movesense"] = "movesense"
    acc_rate_hz: Rate = 104
    gyro_rate_hz: Rate = 104


class Movesense(DeviceProfile):
    """Movesense sensor running the GATT SensorData Protocol firmware (accelerometer, gyroscope)."""

    NAME = "movesense"
    TITLE = "Movesense (GATT SensorData Protocol)"
    SERVICE = SERVICE
    SETTINGS = MovesenseSettings
    STREAMS = (
        StreamSpec("acc", "acc", Unit.G, ("x", "y", "z"), NOTIFY),
        StreamSpec("gyro", "gyro", Unit.DEG_PER_S, ("x", "y", "z"), NOTIFY),
    )
    DEFAULT_STREAM = "acc"
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {"command-result": parse_command_result}

    @property
    def ms_settings(self) -> MovesenseSettings:
        assert isinstance(self.settings, MovesenseSettings)
        return self.settings

    def _rate(self, stream: str) -> int:
        s = self.ms_settings
        return s.acc_rate_hz if stream == "acc" else s.gyro_rate_hz

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        return Plan(
            streams=chosen,
            notify=(NOTIFY,),
            start=tuple(
                GattWrite(WRITE, subscribe_command(REFERENCES[s], f"{_RESOURCE[s]}/{self._rate(s)}"))
                for s in chosen
            ),
            stop=tuple(GattWrite(WRITE, unsubscribe_command(REFERENCES[s])) for s in chosen),
            min_mtu=161,  # the firmware sample's MTU; a 104 Hz acc notification is 6 + 8 × 12 bytes
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        chosen = self.check_streams(streams)
        routes = {
            REFERENCES[s]: _Route(
                s,
                float(self._rate(s)),
                self.spec(s).unit,
                1 / STANDARD_GRAVITY if s == "acc" else 1.0,
            )
            for s in chosen
        }
        assert all(math.isfinite(r.scale) for r in routes.values())
        return {NOTIFY: GspDecoder(routes, frozenset(chosen))}
