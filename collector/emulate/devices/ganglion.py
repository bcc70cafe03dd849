"""OpenBCI Ganglion: 4 channels at 200 Hz in the documented packet cycle (raw, then 100 delta packets).

Encoder (``GanglionEncoder``: a small state machine, no I/O) — what the firmware does, per OpenBCI's
"Ganglion Data Format": one raw packet (id 0, four 24-bit big-endian samples, zero-padded to 20 bytes), then
100 packets of 19-bit deltas (ids 101-200; the 18-bit ids 1-100 carry the accelerometer, which the emulated
board leaves off), each two samples × four channels, MSB-first. A delta is ``previous − current`` with its
sign written into bit 0 (``bitWrite(delta, 0, bitRead(delta, 31))``) and its low 19 bits sent — the
documented rule our decoder follows (``docs/devices.md`` explains the dispute with BrainFlow). The emulation
therefore agrees with our decoder by construction; the independent checks are the four ``ganglion.json``
delta blocks, which ``encode_deltas`` reproduces. Losing bit 0 costs ±1 count per delta, which accumulates
until the next raw packet (at most 200 counts ≈ 0.37 µV), as on the real board. A difference too large for
19 bits (beyond ±524287 counts ≈ ±980 µV in 5 ms) is clipped.

Counts: µV / (1.2 V / (8388607 × 1.5 × 51)), rounded, clipped to 24 bits.

Peripheral: the Simblee service ``FE84`` with receive (notify), send (write: ``b`` starts streaming, ``s``
stops; other commands are ignored) and disconnect (write) characteristics; no Battery Service (the board
has none). Each ``b`` starts a new cycle with a raw packet. Advertising: flags, ``FE84``, name
``Ganglion-XXXX``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from bumble.gatt import Characteristic, Service

from twitchwatch.collector.devices.ganglion import (
    DISCONNECT,
    PACKET_SIZE,
    RECEIVE,
    SAMPLE_RATE_HZ,
    SCALE_UV,
    SEND,
    SERVICE,
    START_STREAMING,
    STOP_STREAMING,
)
from twitchwatch.collector.emulate.peripheral import (
    AD_COMPLETE_16,
    AD_COMPLETE_NAME,
    AD_FLAGS,
    LE_GENERAL_DISCOVERABLE_NO_BREDR,
    Notification,
    Peripheral,
    Stream,
    ad_structure,
    advertising_payload,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BITS: Final = 19
FIRST_19_BIT_ID: Final = 101
PACKETS_PER_CYCLE: Final = 100


def wire_delta(difference: IntArray, bits: int = BITS) -> IntArray:
    """A true ``previous − current`` difference as the firmware sends it: bit 0 replaced by the sign,
    clipped to what ``bits`` can carry (|d| < 2^bits)."""
    d = np.clip(np.asarray(difference, dtype=np.int64), -(1 << bits) + 1, (1 << bits) - 2)
    return np.where(d < 0, d | 1, d & ~np.int64(1))


def encode_deltas(deltas: npt.ArrayLike, bits: int) -> bytes:
    """Eight wire deltas (2 samples × 4 channels, LSB = sign) → the ``bits``-wide MSB-first block."""
    d = np.asarray(deltas, dtype=np.int64).reshape(-1)
    if d.shape != (8,):
        raise ValueError("a delta block holds 2 samples × 4 channels")
    negative, odd = d < 0, (d & 1) == 1
    if (negative != odd).any():
        raise ValueError("a wire delta is odd exactly when negative (its sign lives in bit 0)")
    if d.min() <= -(1 << bits) or d.max() >= 1 << bits:
        raise ValueError(f"a delta does not fit in {bits} bits")
    fields = np.where(negative, d + (1 << bits), d).astype(np.uint64)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    stream = ((fields[:, None] >> shifts) & np.uint64(1)).astype(np.uint8).reshape(-1)
    return np.packbits(stream).tobytes()


def raw_packet(counts: npt.ArrayLike) -> bytes:
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (4,) or c.min() < -(1 << 23) or c.max() >= 1 << 23:
        raise ValueError("a raw packet carries four 24-bit samples")
    body = b"".join(int(v).to_bytes(3, "big", signed=True) for v in c)
    return (bytes([0]) + body).ljust(PACKET_SIZE, b"\0")


def to_counts(values_uv: npt.ArrayLike) -> IntArray:
    return np.clip(
        np.rint(np.asarray(values_uv, dtype=np.float64) / SCALE_UV), -(1 << 23), (1 << 23) - 1
    ).astype(np.int64)


class GanglionEncoder:
    """Samples (µV, n × 4) → packets, keeping the cycle position and the previous sample between calls."""

    def __init__(self) -> None:
        self.position = 0  # 0: the next packet is raw; k: the k-th delta packet of the cycle
        self.previous: IntArray | None = None
        self.pending: IntArray = np.empty((0, 4), dtype=np.int64)

    def encode(self, values_uv: npt.ArrayLike) -> list[bytes]:
        self.pending = np.concatenate([self.pending, to_counts(values_uv).reshape(-1, 4)])
        out: list[bytes] = []
        while True:
            if self.position == 0:
                if len(self.pending) < 1:
                    break
                sample, self.pending = self.pending[0], self.pending[1:]
                out.append(raw_packet(sample))
                self.previous, self.position = sample, 1
                continue
            if len(self.pending) < 2 or self.previous is None:
                break
            pair, self.pending = self.pending[:2], self.pending[2:]
            first = wire_delta(self.previous - pair[0])
            second = wire_delta(pair[0] - pair[1])
            packet_id = FIRST_19_BIT_ID - 1 + self.position
            out.append(bytes([packet_id]) + encode_deltas(np.stack([first, second]), BITS))
            self.previous = pair[1]  # the firmware differences true samples, not what the host rebuilds
            self.position = self.position + 1 if self.position < PACKETS_PER_CYCLE else 0
        return out


class GanglionPeripheral(Peripheral):
    PROFILE = "ganglion"
    DEFAULT_NAME = "Ganglion-{short}"
    MANUFACTURER = "OpenBCI"
    MODEL = "Ganglion"
    HAS_BATTERY = False

    def services(self) -> list[Service]:
        self.receive = self.notifying(RECEIVE)
        send = self.writable(
            SEND,
            self._on_send,
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
        )
        disconnect = self.writable(DISCONNECT, self._on_disconnect, Characteristic.Properties.WRITE)
        return [Service(SERVICE, [self.receive, send, disconnect])]

    def advertising(self) -> tuple[bytes, bytes]:
        data = advertising_payload(
            ad_structure(AD_FLAGS, bytes([LE_GENERAL_DISCOVERABLE_NO_BREDR])),
            ad_structure(AD_COMPLETE_16, bytes.fromhex(SERVICE[4:8])[::-1]),
            ad_structure(AD_COMPLETE_NAME, self.device.name.encode()),
        )
        return data, b""

    def _on_send(self, data: bytes) -> None:
        if data == START_STREAMING and not self.streaming("emg"):
            self._start()
        elif data == STOP_STREAMING:
            self.stop_stream("emg")

    def _on_disconnect(self, data: bytes) -> None:
        self.spawn(self.drop_link())

    def _start(self) -> None:
        source, start_ns = self.new_source("emg", SAMPLE_RATE_HZ, 4)
        encoder = GanglionEncoder()

        def encode(values: FloatArray, first: int) -> list[Notification]:
            return [(self.receive, packet) for packet in encoder.encode(values)]

        self.start_stream(Stream("emg", source, 20, encode, start_ns))
