"""A board implementing the twitchwatch open profile (``docs/open-profile.md``), as a firmware author would.

The board offers two streams (answered by ``LIST``): ``emg`` — one channel per muscle (at least two), int16,
0.5 µV per count, 250/500/1000/2000 Hz (default 1000) — and ``acc`` — three axes, int16, ±2/4/8/16 g (default
8 g, scale range/32768 g), 25-400 Hz (default 100). It has no gyroscope: starting ``gyro`` is answered
``UNKNOWN_STREAM``. A rate it does not offer is refused with ``INVALID_PARAMETER`` (the spec says: use
exactly the requested rate or refuse). Frames come from the reference encoder (``open.encode_frame``):
sequence 0 at each start, +1 per frame; timestamps in µs of the board's monotonic clock (µs since the
emulated board booted); as many whole samples as fit in one notification, at least ten frames a second.

Advertising: flags and the service UUID; the complete name in the scan response.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices.open import (
    ALL_STREAMS,
    CONTROL_POINT,
    DATA,
    HEADER_SIZE,
    RESPONSE_CODE,
    SERVICE,
    STREAM_IDS,
    STREAM_NAMES,
    OpCode,
    SampleFormat,
    Status,
    encode_frame,
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
from twitchwatch.collector.frames import Unit

FloatArray = npt.NDArray[np.float64]

EMG_SCALE_UV: Final = 0.5
FRAMES_PER_SECOND: Final = 10  # the spec's latency bound: a frame at least every 100 ms


@dataclass(frozen=True)
class BoardStream:
    stream_id: int
    signal: str
    unit: Unit
    rates: tuple[int, ...]
    default_rate: int
    ranges: tuple[int, ...]  # accepted range codes besides 0 (= default)
    default_range: int

    def scale(self, range_code: int) -> float:
        if self.signal == "emg":
            return EMG_SCALE_UV
        return (range_code or self.default_range) / 32768.0


BOARD_STREAMS: Final = {
    "emg": BoardStream(STREAM_IDS["emg"], "emg", Unit.MICROVOLT, (250, 500, 1000, 2000), 1000, (), 0),
    "acc": BoardStream(STREAM_IDS["acc"], "acc", Unit.G, (25, 50, 100, 200, 400), 100, (2, 4, 8, 16), 8),
}


def response(op: int, status: int, stream_id: int, payload: bytes = b"") -> bytes:
    return bytes([RESPONSE_CODE, op, status, stream_id]) + payload


def list_payload(streams: dict[str, tuple[BoardStream, int]]) -> bytes:
    """``<count>`` then per stream ``<id> <format> <channels> <max rate u16>`` (int16 samples)."""
    out = bytearray([len(streams)])
    for board, channels in streams.values():
        fmt = int(SampleFormat.INT16) | (int(board.unit) << 4)
        out += struct.pack("<BBBH", board.stream_id, fmt, channels, max(board.rates))
    return bytes(out)


def encode_samples(
    values: FloatArray, stream_id: int, sequence: int, t0_us: int, rate: float, scale: float, unit: Unit
) -> bytes:
    """Physical samples → one open-profile frame of int16 counts (clipped to the int16 range)."""
    raw = np.clip(np.rint(values / scale), -32768, 32767).astype(np.int16)
    return encode_frame(stream_id, sequence % 2**32, t0_us, rate, scale, unit, SampleFormat.INT16, raw)


def samples_per_frame(rate: int, channels: int, max_bytes: int) -> int:
    fit = (max_bytes - HEADER_SIZE) // (2 * channels)
    if fit < 1:
        raise ValueError(f"not one {channels}-channel sample fits in {max_bytes} bytes")
    return max(1, min(fit, math.ceil(rate / FRAMES_PER_SECOND)))


class OpenBoardPeripheral(Peripheral):
    PROFILE = "open"
    DEFAULT_NAME = "twitchwatch-{serial}"
    MANUFACTURER = "twitchwatch DIY"
    MODEL = "open profile v1 (emulated)"

    def services(self) -> list[Service]:
        self.boot_ns = self.clock_ns()
        emg_channels = max(2, len(self.options.muscles))
        self.board = {"emg": (BOARD_STREAMS["emg"], emg_channels), "acc": (BOARD_STREAMS["acc"], 3)}
        self.control_point = self.writable(
            CONTROL_POINT,
            self._on_control,
            Characteristic.Properties.WRITE | Characteristic.Properties.INDICATE,
        )
        self.data = self.notifying(DATA)
        return [Service(SERVICE, [self.control_point, self.data])]

    def advertising(self) -> tuple[bytes, bytes]:
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_COMPLETE_128, uuid128_le(SERVICE)),
        )
        return data, advertising_payload(ad_structure(AD_COMPLETE_NAME, self.device.name.encode()))

    def _on_control(self, data: bytes) -> None:
        reply, then = self._handle(data)
        self.spawn(self._answer(reply, then))

    async def _answer(self, reply: bytes, then: Callable[[], None] | None) -> None:
        await self.indicate(self.control_point, reply)
        if then is not None:
            then()

    def _handle(self, data: bytes) -> tuple[bytes, Callable[[], None] | None]:
        op = data[0] if data else 0
        if op == OpCode.LIST and len(data) == 1:
            return response(op, Status.OK, ALL_STREAMS, list_payload(self.board)), None
        if op == OpCode.STOP and len(data) == 2:
            return self._stop(data[1]), None
        if op == OpCode.START and len(data) == 6:
            return self._start(*struct.unpack("<BHH", data[1:]))
        if op in (OpCode.LIST, OpCode.STOP, OpCode.START):
            return response(op, Status.INVALID_PARAMETER, data[1] if len(data) > 1 else ALL_STREAMS), None
        return response(op, Status.UNKNOWN_OPCODE, data[1] if len(data) > 1 else ALL_STREAMS), None

    def _stop(self, stream_id: int) -> bytes:
        if stream_id == ALL_STREAMS:
            self.stop_all_streams()
            return response(OpCode.STOP, Status.OK, stream_id)
        name = STREAM_NAMES.get(stream_id)
        if name not in self.board:
            return response(OpCode.STOP, Status.UNKNOWN_STREAM, stream_id)
        if not self.streaming(name):
            return response(OpCode.STOP, Status.ALREADY_IN_STATE, stream_id)
        self.stop_stream(name)
        return response(OpCode.STOP, Status.OK, stream_id)

    def _start(self, stream_id: int, rate: int, range_code: int) -> tuple[bytes, Callable[[], None] | None]:
        name = STREAM_NAMES.get(stream_id)
        if name is None or name not in self.board:
            return response(OpCode.START, Status.UNKNOWN_STREAM, stream_id), None
        board = self.board[name][0]
        chosen = rate or board.default_rate
        if chosen not in board.rates or (range_code and range_code not in board.ranges):
            return response(OpCode.START, Status.INVALID_PARAMETER, stream_id), None
        if self.streaming(name):
            return response(OpCode.START, Status.ALREADY_IN_STATE, stream_id), None
        return response(OpCode.START, Status.OK, stream_id), lambda: self._begin(name, chosen, range_code)

    def _begin(self, name: str, rate: int, range_code: int) -> None:
        if self.connection is None:
            return
        board, channels = self.board[name]
        source, start_ns = self.new_source(board.signal, float(rate), channels)
        scale = board.scale(range_code)
        block = samples_per_frame(rate, channels, self.att_mtu() - 3)
        t0_us = (start_ns - self.boot_ns) // 1000
        sequence = 0

        def encode(values: FloatArray, first: int) -> list[Notification]:
            nonlocal sequence
            t_us = t0_us + round(first * 1e6 / rate)
            frame = encode_samples(values, board.stream_id, sequence, t_us, float(rate), scale, board.unit)
            sequence += 1
            return [(self.data, frame)]

        self.start_stream(Stream(name, source, block, encode, start_ns))
