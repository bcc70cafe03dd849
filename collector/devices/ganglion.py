"""OpenBCI Ganglion: 4 EMG/EEG channels at 200 Hz over BLE (Simblee firmware), per OpenBCI's
"Ganglion Data Format" documentation.

Every notification is 20 bytes, ``[packet id][19 bytes]``:

=========  ==================================================================================
id         content
=========  ==================================================================================
0          raw: four 24-bit signed (two's complement) big-endian samples, channels 1-4
1-100      18-bit deltas: two samples × four channels, MSB-first bit stream (+ 1 accelerometer byte)
101-200    19-bit deltas: two samples × four channels
201-205    impedance of channels 1-4 and reference, ASCII
206 / 207  part / end of an ASCII message
=========  ==================================================================================

The firmware sends one raw packet, then 100 compressed packets (ids 1-100 or 101-200), then raw again:
201 samples per cycle. Each delta is ``previous − current`` and a sample is rebuilt as
``current = previous − delta``.

**Sign of a delta (the disputed part).** OpenBCI's documentation states it plainly: "18-bit and 19-bit
compression store the signed bit in the bit 0 or LSB position! Negative numbers always have a 1 in the LSB
and positive numbers always have 0 in the LSB", and shows the firmware doing it
(``bitWrite(delta, 0, bitRead(delta, 31))`` on the 32-bit difference, then sending its low 18/19 bits).
Decoding that: take the N-bit field; if its LSB is 1 the difference was negative, so extend it with ones
above bit N−1 (value − 2^N); if 0 it was positive. That is the rule of OpenBCI's JavaScript utilities and
the one implemented here; the documentation's worked examples are exactly the four vectors in
``ganglion.json`` (e.g. ``0b001111100011100011`` = −198429 "because of the 1 in the LSB"). BrainFlow's
MSB-two's-complement-minus-one rule disagrees on every negative delta; we do not follow it. The cost of the
firmware's trick is bit 0 of every delta (±1 count = ±0.0019 µV), which accumulates harmlessly until the
next raw packet resets it.

State (required by the protocol): the last rebuilt sample and the last packet id. Compressed packets before
the first raw packet, or after a lost packet, cannot be rebuilt and are dropped until the next raw packet;
the next chunk reports how many samples were lost or dropped in ``lost_samples``.

Scale: 1.2 V / (8388607 × 1.5 × 51) per count = 0.001869917 µV (the documentation's figure).
The 10 Hz 8-bit accelerometer riding on 18-bit packets is not decoded (too slow for twitches).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

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

SERVICE: Final = "0000fe84-0000-1000-8000-00805f9b34fb"
RECEIVE: Final = "2d30c082-f39f-4ce6-923f-3484ea480596"  # notify: data from the board
SEND: Final = "2d30c083-f39f-4ce6-923f-3484ea480596"  # write: ASCII commands
DISCONNECT: Final = "2d30c084-f39f-4ce6-923f-3484ea480596"

START_STREAMING: Final = b"b"
STOP_STREAMING: Final = b"s"

SAMPLE_RATE_HZ: Final = 200.0
SCALE_UV: Final = 1.2e6 / (8388607 * 1.5 * 51)
CYCLE: Final = 101  # packet positions per cycle: raw (0) then compressed 1..100
PACKET_SIZE: Final = 20


def delta_bits(packet_id: int) -> int | None:
    """18 or 19 for a compressed packet id, else None."""
    if 1 <= packet_id <= 100:
        return 18
    if 101 <= packet_id <= 200:
        return 19
    return None


def decode_deltas(block: bytes, bits: int) -> npt.NDArray[np.int32]:
    """Eight ``bits``-wide deltas (MSB-first stream) → (2 samples, 4 channels), sign in the LSB."""
    if bits not in (18, 19):
        raise ValueError("Ganglion deltas are 18 or 19 bits")
    size = (8 * bits + 7) // 8  # 18 or 19 bytes
    need(block, 0, size, f"{bits}-bit delta block")
    bitstream = np.unpackbits(np.frombuffer(block[:size], dtype=np.uint8))[: 8 * bits].reshape(8, bits)
    weights = np.left_shift(np.int64(1), np.arange(bits - 1, -1, -1, dtype=np.int64))
    fields = bitstream.astype(np.int64) @ weights
    values = np.where(fields & 1, fields - (1 << bits), fields)  # LSB set: negative
    return values.astype(np.int32).reshape(2, 4)


@dataclass(frozen=True)
class GanglionState:
    last: tuple[int, int, int, int] | None = None  # last rebuilt sample (counts); None = not in sync
    last_id: int | None = None
    missing: int = 0  # samples lost or dropped since the last emitted chunk


def _position(packet_id: int) -> int:
    return 0 if packet_id == 0 else (packet_id - 1) % 100 + 1


@dataclass(frozen=True)
class GanglionDecoder(Decoder[GanglionState]):
    streams: frozenset[str] = frozenset({"emg"})

    def initial_state(self) -> GanglionState:
        return GanglionState()

    def decode(self, data: bytes, state: GanglionState) -> tuple[tuple[Chunk, ...], GanglionState]:
        data = bytes(data)
        need(data, 0, 1, "packet id")
        if len(data) > PACKET_SIZE:
            raise NotificationError(f"a Ganglion packet is {PACKET_SIZE} bytes, got {len(data)}", PACKET_SIZE)
        packet_id = data[0]
        if 201 <= packet_id <= 207:
            return (), state  # impedance or ASCII text: valid, not samples
        if packet_id > 207:
            raise NotificationError(f"packet id {packet_id} is not in the Ganglion data format", 0)
        missing = state.missing
        in_sync = state.last is not None
        if state.last_id is not None:
            gap = (_position(packet_id) - _position(state.last_id) - 1) % CYCLE
            if gap:
                # each lost compressed packet held 2 samples, a lost raw packet 1
                position = _position(packet_id)
                lost_raw = 1 if 0 < position <= _position(state.last_id) else 0
                missing += 2 * (gap - lost_raw) + lost_raw
                in_sync = False
        if packet_id == 0:
            need(data, 1, 12, "raw samples")
            octets = np.frombuffer(data[1:13], dtype=np.uint8).astype(np.int64).reshape(4, 3)
            counts = (octets[:, 0] << 16) | (octets[:, 1] << 8) | octets[:, 2]
            counts = np.where(counts >= 1 << 23, counts - (1 << 24), counts)
            sample = _four(counts)
            chunk = Chunk(
                "emg", counts.astype(np.int32).reshape(1, 4), SCALE_UV, Unit.MICROVOLT, SAMPLE_RATE_HZ
            )
            chunk = _with_lost(chunk, missing)
            return (chunk,), GanglionState(sample, 0, 0)
        bits = delta_bits(packet_id)
        assert bits is not None
        deltas = decode_deltas(data[1:], bits)
        if not in_sync or state.last is None:
            return (), GanglionState(None, packet_id, missing + 2)
        first = np.array(state.last, dtype=np.int64) - deltas[0]
        second = first - deltas[1]
        rebuilt = np.stack([first, second])
        if np.abs(rebuilt).max() >= 2**31:
            raise NotificationError("rebuilt sample overflows 32 bits", 1)
        chunk = _with_lost(
            Chunk("emg", rebuilt.astype(np.int32), SCALE_UV, Unit.MICROVOLT, SAMPLE_RATE_HZ), missing
        )
        return (chunk,), GanglionState(_four(second), packet_id, 0)


def _four(values: npt.NDArray[np.int64]) -> tuple[int, int, int, int]:
    a, b, c, d = (int(v) for v in values)
    return a, b, c, d


def _with_lost(chunk: Chunk, missing: int) -> Chunk:
    if not missing:
        return chunk
    return Chunk(chunk.stream, chunk.raw, chunk.scale, chunk.unit, chunk.sample_rate, lost_samples=missing)


@dataclass(frozen=True)
class DeltaBlockDecoder(StatelessDecoder):
    """Debugging aid: a bare 18/19-byte delta block (no packet id) → its (2, 4) deltas, in counts."""

    bits: int = 19
    streams: frozenset[str] = frozenset({"deltas"})

    def decode_one(self, data: bytes) -> tuple[Chunk, ...]:
        size = (8 * self.bits + 7) // 8
        if len(data) > size + 1:  # + the 18-bit packets' accelerometer byte
            raise NotificationError(
                f"a {self.bits}-bit delta block is {size} bytes, got {len(data)}", size + 1
            )
        return (Chunk("deltas", decode_deltas(data, self.bits), 1.0, Unit.UNITLESS),)


class GanglionSettings(ProfileSettings):
    type: Literal["ganglion"] = "ganglion"
    sample_rate_hz: Literal[200] = 200  # fixed over BLE


class _DecodeParams(BaseModel):
    """``bits`` / ``sign_rule`` as named in ``ganglion.json`` (stream ``deltas``), or the sample preceding a
    compressed packet (``reference_counts="c1,c2,c3,c4"``) to rebuild it out of context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: Literal[18, 19] | None = None
    sign_rule: Literal["lsb"] = "lsb"  # the documented rule; no other is implemented
    reference_counts: str | None = None


class Ganglion(DeviceProfile):
    """OpenBCI Ganglion, 4 channels at 200 Hz."""

    NAME = "ganglion"
    TITLE = "OpenBCI Ganglion"
    SERVICE = SERVICE
    SETTINGS = GanglionSettings
    STREAMS = (StreamSpec("emg", "emg", Unit.MICROVOLT, ("ch1", "ch2", "ch3", "ch4"), RECEIVE),)
    DEFAULT_STREAM = "emg"

    def plan(self, streams: Collection[str]) -> Plan:
        chosen = self.check_streams(streams)
        return Plan(
            streams=chosen,
            notify=(RECEIVE,),
            start=(GattWrite(SEND, START_STREAMING),),
            stop=(GattWrite(SEND, STOP_STREAMING),),
        )

    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        self.check_streams(streams)
        return {RECEIVE: GanglionDecoder()}

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        p = validate_model(_DecodeParams, params, "ganglion decode parameters")
        if stream == "deltas":
            if p.bits is None:
                raise ParamError(
                    "ganglion decode parameters", [("bits", "give 18 or 19 for a bare delta block")]
                )
            return DeltaBlockDecoder(p.bits), None
        cls.spec(stream)
        if p.bits is not None:
            raise ParamError(
                "ganglion decode parameters", [("bits", "only for stream 'deltas'; packets say it")]
            )
        state = GanglionState()
        if p.reference_counts is not None:
            try:
                values = np.array([int(v) for v in p.reference_counts.split(",")], dtype=np.int64)
            except (ValueError, OverflowError):
                values = np.zeros(0, dtype=np.int64)
            if len(values) != 4 or np.abs(values).max() >= 1 << 23:
                problem = "four 24-bit integers, comma-separated"
                raise ParamError("ganglion decode parameters", [("reference_counts", problem)])
            state = GanglionState(_four(values), None)
        return GanglionDecoder(), state
