"""MQTT topic layout: ``twitchwatch/<user>/<device>/{raw/<stream>,events,status}``, and per user
``twitchwatch/<user>/felt`` ("I felt that": a twitch the person marked, published by a phone shortcut or a
Home Assistant button, stored by the worker; docs/wire-format.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from twitchwatch.collector.limits import NAME, RejectedError

ROOT: Final = "twitchwatch"

Kind = Literal["raw", "events", "status", "flags"]


class TopicError(RejectedError):
    """A topic or one of its segments is not part of the twitchwatch layout."""

    def __init__(self, reason: str, kind: str = "topic") -> None:
        super().__init__(kind, reason)


def check_segment(value: str, what: str) -> str:
    # Topic segments become MQTT levels and InfluxDB tag values: keep them to a safe, readable set.
    if not NAME.fullmatch(value):
        raise TopicError(f"{what} {value[:80]!r} must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


@dataclass(frozen=True)
class Topic:
    user: str
    device: str
    kind: Kind
    stream: str | None = None

    def __post_init__(self) -> None:
        check_segment(self.user, "user")
        check_segment(self.device, "device")
        if (self.kind == "raw") != (self.stream is not None):
            raise TopicError("a stream name goes with raw topics, and only with them")
        if self.stream is not None:
            check_segment(self.stream, "stream")

    def __str__(self) -> str:
        tail = f"raw/{self.stream}" if self.stream is not None else self.kind
        return f"{ROOT}/{self.user}/{self.device}/{tail}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != ROOT:
            raise TopicError(f"not a twitchwatch topic: {topic!r}")
        _, user, device, *rest = parts
        if rest[0] == "raw" and len(rest) == 2:
            return cls(user, device, "raw", rest[1])
        if len(rest) == 1 and rest[0] in ("events", "status", "flags"):
            return cls(user, device, rest[0])  # type: ignore[arg-type]
        raise TopicError(f"unknown twitchwatch topic kind in {topic!r}")


def raw_filter(user: str = "+") -> str:
    return f"{ROOT}/{user}/+/raw/+"


def status_filter(user: str = "+") -> str:
    return f"{ROOT}/{user}/+/status"


def felt_topic(user: str) -> str:
    """``twitchwatch/<user>/felt``: JSON ``{"muscle": …, "at": …}`` (both optional) marks a felt twitch."""
    return f"{ROOT}/{check_segment(user, 'user')}/felt"


def felt_filter(user: str = "+") -> str:
    return f"{ROOT}/{user}/felt"


def felt_user(topic: str) -> str | None:
    """The user of a felt topic, or None when ``topic`` is not one (a malformed user raises
    ``TopicError``)."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != ROOT or parts[2] != "felt":
        return None
    return check_segment(parts[1], "user")
