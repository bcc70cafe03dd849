"""Movesense running the GATT SensorData Protocol sample firmware (``gatt_sensordata_app``).

Encoder (pure, the inverse of ``collector.devices.movesense``): ``02 <ref> <u32 ms timestamp of the first
sample> <n × x,y,z float32>`` — the accelerometer in m/s² (g × 9.80665), the gyroscope in °/s.

Peripheral: the GSP service (write characteristic, notify characteristic) and Device Information; the
sample firmware exposes no Battery Service (its battery is a Whiteboard resource), so none is offered.
Commands: ``HELLO`` (``00 <ref>``) is answered ``01 <ref> "Hello"``; ``SUBSCRIBE`` (``01 <ref> <path>``) to
``/Meas/Acc/<rate>`` or ``/Meas/Gyro/<rate>`` (13-1666 Hz) starts that stream under ``ref`` with no
answer (data follows); an unknown path or rate is answered with status 404 (``01 <ref> 01 94``, high byte
first); ``UNSUBSCRIBE`` (``02 <ref>``) stops it. Samples per notification: rate / 13 (8 at 104 Hz), fewer if
the MTU is smaller. The gyroscope comes from the generator too: its noise at rest, the wearer's movement
when there is some (the same movement the accelerometer shows).
Timestamps: ms since the emulated sensor booted.

Advertising: flags and the name (``Movesense XXXXXXXX``); the GSP service UUID in the scan response.
"""

from __future__ import annotations

import re
from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices.movesense import (
    COMMAND_RESULT,
    DATA,
    HELLO,
    NOTIFY,
    SERVICE,
    STANDARD_GRAVITY,
    SUBSCRIBE,
    UNSUBSCRIBE,
    WRITE,
    Rate,
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

RATES: Final = frozenset(Rate.__args__)  # type: ignore[attr-defined]
PATH: Final = re.compile(r"^/Meas/(Acc|Gyro)/(\d+)$")
NOT_FOUND: Final = 404


def encode_data(reference: int, t0_ms: int, values: npt.ArrayLike) -> bytes:
    """One DATA notification: samples (n × 3) already in the resource's unit (m/s², °/s)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError("samples must be (n ≥ 1, 3)")
    return bytes([DATA, reference]) + (t0_ms % 2**32).to_bytes(4, "little") + v.astype("<f4").tobytes()


def command_result(reference: int, status: int | None = None, text: str | None = None) -> bytes:
    payload = status.to_bytes(2, "big") if status is not None else (text or "").encode("ascii")
    return bytes([COMMAND_RESULT, reference]) + payload


class MovesensePeripheral(Peripheral):
    PROFILE = "movesense"
    DEFAULT_NAME = "Movesense {serial}"
    MANUFACTURER = "Movesense Oy"
    MODEL = "Movesense (gatt_sensordata_app)"
    HAS_BATTERY = False

    def services(self) -> list[Service]:
        self.boot_ns = self.clock_ns()
        write = self.writable(
            WRITE,
            self._on_command,
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
        )
        self.notify_char = self.notifying(NOTIFY)
        return [Service(SERVICE, [write, self.notify_char])]

    def advertising(self) -> tuple[bytes, bytes]:
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_COMPLETE_NAME, self.device.name.encode()),
        )
        return data, advertising_payload(ad_structure(AD_COMPLETE_128, uuid128_le(SERVICE)))

    def _reply(self, payload: bytes) -> None:
        async def send() -> None:
            await self.notify(self.notify_char, payload)

        self.spawn(send())

    def _on_command(self, data: bytes) -> None:
        if len(data) < 2:
            return
        op, reference = data[0], data[1]
        if op == HELLO:
            self._reply(command_result(reference, text="Hello"))
        elif op == UNSUBSCRIBE:
            self.stop_stream(f"ref{reference}")
        elif op == SUBSCRIBE:
            match = PATH.match(data[2:].decode("ascii", errors="replace"))
            if match is None or int(match.group(2)) not in RATES or reference == 0:
                self._reply(command_result(reference, status=NOT_FOUND))
                return
            self._subscribe(reference, match.group(1), int(match.group(2)))

    def _subscribe(self, reference: int, resource: str, rate: int) -> None:
        signal, to_unit = ("acc", STANDARD_GRAVITY) if resource == "Acc" else ("gyro", 1.0)
        source, start_ns = self.new_source(signal, float(rate), 3)
        per_notification = max(1, min(rate // 13, (self.att_mtu() - 3 - 6) // 12))
        t0_ms = (start_ns - self.boot_ns) // 1_000_000

        def encode(values: FloatArray, first: int) -> list[Notification]:
            out: list[Notification] = []
            for k in range(0, len(values), per_notification):
                t_ms = t0_ms + round((first + k) * 1000 / rate)
                block = values[k : k + per_notification] * to_unit
                out.append((self.notify_char, encode_data(reference, t_ms, block)))
            return out

        self.start_stream(Stream(f"ref{reference}", source, per_notification, encode, start_ns))
