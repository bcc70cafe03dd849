"""Retained ``…/status`` payload: whether a device is online and what its streams carry.

The worker reads it to learn each channel's muscle when the TOML config does not say.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from twitchwatch.errors import UserError

State = Literal["online", "offline"]


class StatusError(UserError, ValueError):
    """A status payload is not valid JSON of the expected shape; ``key`` names the offending key."""

    def __init__(self, reason: str, key: str = "") -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key


@dataclass(frozen=True)
class StreamInfo:
    stream_id: int
    signal: str  # "emg" | "acc" | …
    sample_rate: float
    channels: tuple[str, ...]  # muscle per channel ("" when unmapped)


@dataclass(frozen=True)
class DeviceStatus:
    state: State
    profile: str = ""
    source: str = "live"  # "replay" when a recording is played back; the worker stores it with each event
    session_id: str = ""
    battery_percent: int | None = None
    streams: dict[str, StreamInfo] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def offline(cls, profile: str = "", source: str = "live", session_id: str = "") -> DeviceStatus:
        return cls(state="offline", profile=profile, source=source, session_id=session_id)

    @classmethod
    def from_json(cls, payload: bytes | str) -> DeviceStatus:
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StatusError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise StatusError("status must be a JSON object")
        state = obj.get("state")
        if state not in ("online", "offline"):
            raise StatusError(f"state must be 'online' or 'offline', got {state!r}", "state")
        streams_obj = obj.get("streams", {})
        if not isinstance(streams_obj, dict):
            raise StatusError("must be an object", "streams")
        streams = {name: _stream(name, value) for name, value in streams_obj.items()}
        battery = obj.get("battery_percent")
        if battery is not None and not isinstance(battery, int):
            raise StatusError("must be an integer or null", "battery_percent")
        source = obj.get("source", "live")
        if source not in ("live", "replay"):
            raise StatusError(f"must be 'live' or 'replay', got {source!r}", "source")
        return cls(
            state, str(obj.get("profile", "")), source, str(obj.get("session_id", "")), battery, streams
        )


def _stream(name: str, value: Any) -> StreamInfo:
    key = f"streams.{name}"
    if not isinstance(value, dict):
        raise StatusError("must be an object", key)
    try:
        channels = tuple(str(c) for c in value["channels"])
        return StreamInfo(
            int(value["stream_id"]), str(value["signal"]), float(value["sample_rate"]), channels
        )
    except KeyError as exc:
        raise StatusError("missing", f"{key}.{exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise StatusError(f"bad value: {exc}", key) from None
