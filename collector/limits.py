"""Explicit limits on what the worker accepts from the bus, and the one error a rejected message raises.

Everything a collector publishes passes these checks before it reaches a detector or a store: a frame's
size, shape, sample rate and clock; a status message's size, JSON nesting and every name that becomes a
tag or a topic. The limits are physical (no surface EMG is sampled at 10 Hz, no clock reads 1677) or
protective (one frame may not take the worker's memory or its event loop): each says why below.

A message that fails raises :class:`RejectedError` carrying a short reason *kind* (``frame.rate``,
``status.json_depth`` …) — the worker counts and logs per kind, so one kind of bad input never hides
another — and the offending key or byte offset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeGuard

from twitchwatch.errors import UserError

# ---- frames ---------------------------------------------------------------------------------------

# Values (samples x channels) per frame. A BLE notification carries tens; the simulator's largest chunk
# (--chunk 10000) of one channel fits. At 10 kHz EMG on 8 lanes 65,536 values take the detector 0.3 s,
# so no single frame holds the event loop for long, and a frame's samples cost at most 512 KiB as float64.
MAX_FRAME_VALUES: Final = 65_536
MAX_FRAME_SAMPLES: Final = 10_000  # per channel: the simulator's --chunk maximum
# Header + the largest body (int32/float32 samples): checked on the payload before anything is parsed,
# so a 10-MB message costs nothing beyond the bytes the MQTT client already holds.
MAX_FRAME_BYTES: Final = 24 + 4 * MAX_FRAME_VALUES
# The open profile's channel maximum (collector/devices/open.py): a 255-channel frame would create 255
# muscles, each with its detector.
MAX_CHANNELS: Final = 32
# Motion detectors read whole vectors: three gyroscope axes, a quaternion's four components.
EXACT_CHANNELS: Final[Mapping[str, int]] = {"gyro": 3, "orientation": 4}


@dataclass(frozen=True)
class RateRange:
    low_hz: float
    high_hz: float
    why: str

    def __contains__(self, rate: object) -> bool:
        return isinstance(rate, int | float) and self.low_hz <= rate <= self.high_hz


# Sample rates a wearable of each signal type really uses, with room on both sides. Below the low end the
# detector's filters do not exist (EMG's 20-Hz high-pass needs more than 40 Hz); above the high end one
# second of data costs the detector more than a second.
SAMPLE_RATE_HZ: Final[Mapping[str, RateRange]] = {
    "emg": RateRange(100.0, 10_000.0, "surface EMG: the Myo's 200 Hz to high-density arrays' 10 kHz"),
    "acc": RateRange(12.5, 4_000.0, "accelerometer: its 5-Hz twitch band needs more than 11 Hz"),
    "gyro": RateRange(1.0, 4_000.0, "gyroscope"),
    "orientation": RateRange(1.0, 4_000.0, "orientation (quaternions)"),
}

# Device clocks: the Unix epoch to 2100. Recordings replayed with their own start are later than 1970;
# the bounds keep a minute's start and a frame's end far inside int64 and InfluxDB's time range.
MIN_TIME_NS: Final = 0
MAX_TIME_NS: Final = 4_102_444_800 * 1_000_000_000  # 2100-01-01T00:00:00Z

# ---- status messages ------------------------------------------------------------------------------

MAX_STATUS_BYTES: Final = 64 * 1024  # a status lists a few streams; a Myo's is under 1 KiB
# The largest message the worker can accept of any kind (a felt mark is smaller still): a bigger one is
# refused unread, and not journaled first.
MAX_MESSAGE_BYTES: Final = max(MAX_FRAME_BYTES, MAX_STATUS_BYTES)
# object → streams → stream → channels is depth 4; a little room for additions, none for a bomb.
MAX_JSON_DEPTH: Final = 8
MAX_STREAMS: Final = 16
STREAM_IDS: Final = range(256)  # a frame's one-byte stream id
SIGNALS: Final = frozenset({"emg", "acc", "gyro", "orientation", "other"})  # collector.devices.Signal

# ---- names ----------------------------------------------------------------------------------------

# Every name that becomes an MQTT topic level or an InfluxDB tag (user, device, stream, muscle, profile):
# the topic segment rule of collector/topics.py. No control character, no backslash, no quote, no space:
# nothing line protocol or a topic filter would have to escape.
NAME: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_NAME_CHARS: Final = 64
# Stored as a field, shown in the dashboard: printable, bounded.
SESSION_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{0,128}")


class RejectedError(UserError, ValueError):
    """A message failed validation and is dropped. ``kind`` is the reason's short name, one per kind of
    fault (the worker counts and logs per kind); ``key`` names the offending JSON key, ``offset`` the
    byte where a binary payload stopped making sense."""

    def __init__(self, kind: str, reason: str, *, key: str = "", offset: int | None = None) -> None:
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(f"{key}: {reason}{where}" if key else f"{reason}{where}")
        self.kind = kind
        self.reason = reason
        self.key = key
        self.offset = offset


def check_name(value: object, key: str, kind: str = "name") -> str:
    """A name that becomes a tag or a topic level (see ``NAME``)."""
    if not isinstance(value, str):
        raise RejectedError(kind, f"must be a string, got {type(value).__name__}", key=key)
    if not NAME.fullmatch(value):
        raise RejectedError(
            kind, f"{value[:80]!r} must be 1-{MAX_NAME_CHARS} characters of A-Z a-z 0-9 _ . : -", key=key
        )
    return value


def check_payload_size(payload: bytes, limit: int, kind: str) -> None:
    if len(payload) > limit:
        raise RejectedError(kind, f"{len(payload)} bytes, more than the {limit} allowed", offset=limit)


def check_json_depth(payload: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` before ``json.loads`` recurses into it (a deep enough
    array raises RecursionError there). One pass over the bytes, skipping string contents."""
    depth = 0
    in_string = escaped = False
    for offset, byte in enumerate(payload):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise RejectedError(
                    "status.json_depth", f"JSON nested deeper than {limit} levels", offset=offset
                )
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1


def check_stream_id(value: object, key: str) -> int:
    """A JSON integer 0..255 (``1e999`` parses as a float, infinity: refused, not converted)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RejectedError("status.stream_id", f"must be an integer, got {value!r}"[:120], key=key)
    if value not in STREAM_IDS:
        raise RejectedError("status.stream_id", f"{value} outside 0..255"[:120], key=key)
    return value


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A JSON number a float can hold: not a bool, not NaN or infinite, and not an integer past a float's
    range (JSON's ``1`` followed by 400 zeros parses as an int that ``math.isfinite`` cannot convert)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_status_rate(value: object, signal: str, key: str) -> float:
    """A stream's announced rate: a finite number, within the signal's range where it has one."""
    if not is_finite_number(value):
        raise RejectedError("status.sample_rate", f"must be a finite number, got {value!r}"[:120], key=key)
    rate = float(value)
    allowed = SAMPLE_RATE_HZ.get(signal)
    if allowed is not None and rate not in allowed:
        raise RejectedError("status.sample_rate", _rate_reason(rate, signal, allowed), key=key)
    if not rate > 0:
        raise RejectedError("status.sample_rate", f"{rate} Hz is not positive", key=key)
    return rate


def check_frame_rate(rate: float, signal: str) -> None:
    """A frame's sample rate for the detector its signal type needs (header byte 16)."""
    allowed = SAMPLE_RATE_HZ[signal]
    if rate not in allowed:
        raise RejectedError("frame.rate", _rate_reason(rate, signal, allowed), offset=16)


def check_frame_channels(channels: int, signal: str) -> None:
    """Channels per frame (header byte 2)."""
    exact = EXACT_CHANNELS.get(signal)
    if exact is not None and channels != exact:
        raise RejectedError(
            "frame.channels", f"a {signal} frame has {exact} channels, not {channels}", offset=2
        )
    if channels > MAX_CHANNELS:
        raise RejectedError("frame.channels", f"{channels} channels, more than {MAX_CHANNELS}", offset=2)


def check_frame_shape(samples: int, channels: int) -> None:
    if samples > MAX_FRAME_SAMPLES:
        raise RejectedError(
            "frame.samples", f"{samples} samples per channel, more than {MAX_FRAME_SAMPLES}", offset=24
        )
    if samples * channels > MAX_FRAME_VALUES:
        raise RejectedError(
            "frame.samples", f"{samples} x {channels} values, more than {MAX_FRAME_VALUES}", offset=24
        )


def check_frame_time(t0_ns: int, duration_ns: int) -> None:
    """The first sample's time (header byte 8) and the last's inside the sane clock range."""
    if not MIN_TIME_NS <= t0_ns <= MAX_TIME_NS - duration_ns:
        raise RejectedError(
            "frame.t0", f"device time {t0_ns} ns is outside 1970..2100 (the clock is not set?)", offset=8
        )


def _rate_reason(rate: float, signal: str, allowed: RateRange) -> str:
    return f"{rate:g} Hz is outside {allowed.low_hz:g}..{allowed.high_hz:g} Hz for {signal} ({allowed.why})"


def check_frame(signal: str, *, sample_rate: float, channels: int, samples: int, t0_ns: int) -> None:
    """Everything the worker asks of a decoded frame before its detector sees it, in header order."""
    check_frame_channels(channels, signal)
    check_frame_rate(sample_rate, signal)
    check_frame_shape(samples, channels)
    check_frame_time(t0_ns, round(samples * 1e9 / sample_rate))
