"""Persistent-activity flags: pure rules over stored minute rates and events, each explained.

A ``Flag`` says which rule fired on which muscle, the rule in words with its thresholds, the numbers
that met it and the dates that raised it. A ``FlagSet`` is one computation for one user: stores keep
the latest set per user (``EventStore.replace_flags`` / ``current_flags``), the worker publishes it
retained on ``flags_topic(user)``, and ``twitchwatch flags --json`` and the dashboard both show
``FlagSet.to_json_dict()`` of the set ``flags_for_display`` returns.

The rules (thresholds in ``FlagRules``; docs/flags-and-report.md says why each default):

- ``elevated``: a muscle's hourly rate is ≥ ``elevated_factor`` × its own baseline (the median of the
  hourly rates of the previous ``baseline_days`` days) for ≥ ``elevated_hours`` consecutive monitored
  hours.
- ``persistent``: a muscle twitched (≥ ``twitch_day_min_twitches`` twitches on a day with ≥
  ``min_monitored_hours`` monitored hours) on ≥ ``persistent_days_per_week`` of every 7 consecutive days,
  for a run of ≥ ``persistent_min_days`` days.
- ``spreading``: a muscle's first twitching day is within the last ``spreading_recent_days`` days while
  another muscle had ≥ ``spreading_other_days`` twitching days before it.
- ``rising``: the daily rate (twitches per monitored hour) rises over ≥ ``rising_min_days`` monitored
  days with a Mann–Kendall p-value < ``rising_p_value``; the Theil–Sen slope gives the size.
- ``stale_sensor``: a configured device sent no frame for > ``stale_after_s`` seconds.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ComputedBy = Literal["worker", "cli", "dashboard", "test"]


class FlagError(ValueError):
    """A stored or received flag is malformed; ``key`` names the offending field."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


class FlagKind(enum.StrEnum):
    ELEVATED = "elevated"
    PERSISTENT = "persistent"
    SPREADING = "spreading"
    RISING = "rising"
    STALE_SENSOR = "stale_sensor"

    @property
    def is_symptom(self) -> bool:
        """``stale_sensor`` is a fault of the equipment, not something the body does."""
        return self is not FlagKind.STALE_SENSOR


@dataclass(frozen=True)
class Flag:
    """One raised flag.

    ``muscle`` is empty for ``stale_sensor`` (which names ``device`` instead). ``rule`` is the rule in
    words with its thresholds; ``summary`` the numbers in words; ``numbers`` the same numbers by name;
    ``days`` the qualifying UTC dates (first_day/last_day bound them); ``raised_at_ns`` when it was
    computed.
    """

    user: str
    kind: FlagKind
    muscle: str
    rule: str
    summary: str
    numbers: Mapping[str, float]
    first_day: dt.date
    last_day: dt.date
    days: tuple[dt.date, ...]
    raised_at_ns: int
    device: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FlagKind):
            raise FlagError(f"{self.kind!r} is not a flag kind", "kind")
        if self.last_day < self.first_day:
            raise FlagError(f"{self.last_day} is before first_day {self.first_day}", "last_day")
        if self.kind is FlagKind.STALE_SENSOR and not self.device:
            raise FlagError("a stale_sensor flag names its device", "device")
        if self.kind is not FlagKind.STALE_SENSOR and not self.muscle:
            raise FlagError(f"a {self.kind.value} flag names its muscle", "muscle")

    @property
    def text(self) -> str:
        """One line for people: what, where, why."""
        where = self.muscle or f"device {self.device}"
        return f"{self.kind.value} — {where}: {self.summary} (rule: {self.rule})"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "kind": self.kind.value,
            "muscle": self.muscle,
            "device": self.device,
            "rule": self.rule,
            "summary": self.summary,
            "text": self.text,
            "numbers": dict(self.numbers),
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "days": [d.isoformat() for d in self.days],
            "raised_at_ns": self.raised_at_ns,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Flag:
        try:
            numbers = data["numbers"]
            if not isinstance(numbers, Mapping):
                raise FlagError("must be an object", "numbers")
            return cls(
                user=str(data["user"]),
                kind=FlagKind(data["kind"]),
                muscle=str(data["muscle"]),
                rule=str(data["rule"]),
                summary=str(data["summary"]),
                numbers={str(k): float(v) for k, v in numbers.items()},
                first_day=dt.date.fromisoformat(data["first_day"]),
                last_day=dt.date.fromisoformat(data["last_day"]),
                days=tuple(dt.date.fromisoformat(d) for d in data["days"]),
                raised_at_ns=int(data["raised_at_ns"]),
                device=str(data.get("device", "")),
            )
        except KeyError as exc:
            raise FlagError("missing", str(exc.args[0])) from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, FlagError):
                raise
            raise FlagError(str(exc), "flag") from None


@dataclass(frozen=True)
class FlagSet:
    """The current flags of one user, as computed at ``computed_at_ns`` by ``computed_by``."""

    user: str
    computed_at_ns: int
    computed_by: ComputedBy
    flags: tuple[Flag, ...] = field(default_factory=tuple)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "computed_at_ns": self.computed_at_ns,
            "computed_at": dt.datetime.fromtimestamp(self.computed_at_ns / 1e9, dt.UTC).isoformat(),
            "computed_by": self.computed_by,
            "flags": [f.to_json_dict() for f in self.flags],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FlagSet:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FlagError(f"not JSON: {exc}", "(document)") from None
        if not isinstance(data, dict):
            raise FlagError("must be a JSON object", "(document)")
        by = data.get("computed_by")
        if by not in ("worker", "cli", "dashboard", "test"):
            raise FlagError(f"{by!r} is not worker, cli, dashboard or test", "computed_by")
        raw_flags = data.get("flags")
        if not isinstance(raw_flags, list):
            raise FlagError("must be a list", "flags")
        try:
            return cls(
                user=str(data["user"]),
                computed_at_ns=int(data["computed_at_ns"]),
                computed_by=by,
                flags=tuple(Flag.from_json_dict(f) for f in raw_flags),
            )
        except KeyError as exc:
            raise FlagError("missing", str(exc.args[0])) from None
