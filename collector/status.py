"""Retained ``…/status`` payload: whether a device is online and what its streams carry.

The worker reads it to learn each channel's muscle when the TOML config does not say.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from twitchwatch.collector.limits import (
    MAX_CHANNELS,
    MAX_STATUS_BYTES,
    MAX_STREAMS,
    SESSION_ID,
    SIGNALS,
    RejectedError,
    check_json_depth,
    check_name,
    check_payload_size,
    check_status_rate,
    check_stream_id,
)

State = Literal["online", "offline"]


class StatusError(RejectedError):
    """A status payload is not valid JSON of the expected shape, or breaks a limit (collector/limits.py);
    ``key`` names the offending key, ``kind`` the fault for counting (``status.format``,
    ``status.stream_id`` …)."""

    def __init__(
        self, reason: str, key: str = "", kind: str = "status.format", offset: int | None = None
    ) -> None:
        super().__init__(kind, reason, key=key, offset=offset)


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
        """Parse and validate a status (limits in collector/limits.py); raises ``StatusError``."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        obj = _load(data)
        if not isinstance(obj, dict):
            raise StatusError("status must be a JSON object")
        state = obj.get("state")
        if state not in ("online", "offline"):
            raise StatusError(f"state must be 'online' or 'offline', got {state!r}"[:120], "state")
        streams_obj = obj.get("streams", {})
        if not isinstance(streams_obj, dict):
            raise StatusError("must be an object", "streams")
        if len(streams_obj) > MAX_STREAMS:
            raise StatusError(
                f"{len(streams_obj)} streams, more than {MAX_STREAMS}", "streams", "status.streams"
            )
        streams = {
            _checked(check_name, name, f"streams.{name[:80]!r}"): _stream(name, value)
            for name, value in streams_obj.items()
        }
        battery = obj.get("battery_percent")
        if battery is not None and (isinstance(battery, bool) or not isinstance(battery, int)):
            raise StatusError("must be an integer or null", "battery_percent")
        if battery is not None and not 0 <= battery <= 100:
            raise StatusError(f"{battery} outside 0..100", "battery_percent")
        source = obj.get("source", "live")
        if source not in ("live", "replay"):
            raise StatusError(f"must be 'live' or 'replay', got {source!r}"[:120], "source")
        profile = obj.get("profile", "")
        if profile != "":
            _checked(check_name, profile, "profile")
        session_id = obj.get("session_id", "")
        if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
            raise StatusError(
                f"{session_id!r}"[:80] + " must be up to 128 characters of A-Z a-z 0-9 _ . : -",
                "session_id",
                "status.name",
            )
        return cls(state, profile, source, session_id, battery, streams)


def _load(data: bytes) -> Any:
    """JSON within the size and nesting limits: neither a 10-MB status nor a bracket bomb reaches
    ``json.loads`` (whose recursion a deep array exhausts)."""
    try:
        check_payload_size(data, MAX_STATUS_BYTES, "status.size")
        check_json_depth(data)
    except RejectedError as exc:
        raise StatusError(exc.reason, "", exc.kind, exc.offset) from None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatusError(f"not JSON: {exc}", "", "status.json") from None


def _checked(check: Callable[[object, str, str], str], value: object, key: str) -> str:
    try:
        return check(value, key, "status.name")
    except RejectedError as exc:
        raise StatusError(exc.reason, exc.key, exc.kind) from None


def _stream(name: str, value: Any) -> StreamInfo:
    key = f"streams.{name}"
    if not isinstance(value, dict):
        raise StatusError("must be an object", key)
    missing = next((k for k in ("stream_id", "signal", "sample_rate", "channels") if k not in value), None)
    if missing is not None:
        raise StatusError("missing", f"{key}.{missing}")
    signal = value["signal"]
    if not isinstance(signal, str) or signal not in SIGNALS:  # a list is unhashable: checked first
        raise StatusError(
            f"{signal!r}"[:80] + f" is not one of {', '.join(sorted(SIGNALS))}", f"{key}.signal"
        )
    channels = value["channels"]
    if not isinstance(channels, list) or len(channels) > MAX_CHANNELS:
        raise StatusError(
            f"must be a list of at most {MAX_CHANNELS} muscle names", f"{key}.channels", "status.channels"
        )
    muscles = tuple(
        "" if c == "" else _checked(check_name, c, f"{key}.channels[{i}]") for i, c in enumerate(channels)
    )
    try:
        stream_id = check_stream_id(value["stream_id"], f"{key}.stream_id")
        rate = check_status_rate(value["sample_rate"], signal, f"{key}.sample_rate")
    except RejectedError as exc:
        raise StatusError(exc.reason, exc.key, exc.kind) from None
    return StreamInfo(stream_id, signal, rate, muscles)
