"""Home Assistant MQTT discovery: the twitch rate per muscle and one binary sensor per flag kind.

Everything here is a pure message builder; the worker publishes the messages (retained, at a low
rate: never raw samples). Topics, with ``<prefix>`` = Home Assistant's discovery prefix:

- ``<prefix>/sensor/twitchwatch_<user>/<muscle>_rate/config`` → state on
  ``twitchwatch/<user>/ha/<muscle>/rate``: twitches per hour *at rest* over the last hour (the muscle
  relaxed and still, ``processing/rest.py``), or ``None`` (Home Assistant shows "unknown") when the muscle
  was not at rest in that hour; on ``…/rate/attributes`` (JSON) the twitches at rest, hours at rest and
  hours worn beside it, and, where the hour holds minutes stored before rest tracking, their twitches and
  hours worn apart (``before_rest_tracking``), never in the rate.
- ``<prefix>/binary_sensor/twitchwatch_<user>/<kind>/config`` for each flag kind → state on
  ``twitchwatch/<user>/ha/flag/<kind>``: ``ON`` while any flag of that kind is raised; the muscles and
  the flags' explanations on ``…/flag/<kind>/attributes`` (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from twitchwatch.collector.topics import ROOT, check_segment
from twitchwatch.processing.events import MinuteRate, RestTally, muscle_minutes
from twitchwatch.processing.flags import FlagKind, FlagSet

RATE_WINDOW_NS = 3_600_000_000_000


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool = True


def _device(user: str) -> dict[str, object]:
    return {
        "identifiers": [f"twitchwatch_{user}"],
        "name": f"twitchwatch {user}",
        "manufacturer": "twitchwatch",
        "model": "twitch monitor (not a medical device)",
    }


def rate_state_topic(user: str, muscle: str) -> str:
    return f"{ROOT}/{check_segment(user, 'user')}/ha/{check_segment(muscle, 'muscle')}/rate"


def flag_state_topic(user: str, kind: FlagKind) -> str:
    return f"{ROOT}/{check_segment(user, 'user')}/ha/flag/{kind.value}"


def _object_id(text: str) -> str:
    """Home Assistant's node and object ids allow ``[a-zA-Z0-9_-]`` only."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text)


def rate_config(prefix: str, user: str, muscle: str) -> Message:
    node, obj = _object_id(f"twitchwatch_{user}"), _object_id(f"{muscle}_rate")
    payload = {
        "name": f"{muscle} twitch rate at rest",
        "unique_id": f"{node}_{obj}",
        "state_topic": rate_state_topic(user, muscle),
        "json_attributes_topic": f"{rate_state_topic(user, muscle)}/attributes",
        "unit_of_measurement": "twitches/h",
        "state_class": "measurement",
        "icon": "mdi:pulse",
        "device": _device(user),
    }
    return Message(f"{prefix}/sensor/{node}/{obj}/config", json.dumps(payload, sort_keys=True))


def flag_config(prefix: str, user: str, kind: FlagKind) -> Message:
    node = _object_id(f"twitchwatch_{user}")
    state = flag_state_topic(user, kind)
    payload = {
        "name": f"{kind.value.replace('_', ' ')} flag",
        "unique_id": f"{node}_{kind.value}",
        "state_topic": state,
        "json_attributes_topic": f"{state}/attributes",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "problem",
        "device": _device(user),
    }
    return Message(f"{prefix}/binary_sensor/{node}/{kind.value}/config", json.dumps(payload, sort_keys=True))


def discovery_messages(prefix: str, user: str, muscles: Iterable[str]) -> list[Message]:
    return [rate_config(prefix, user, m) for m in sorted(set(muscles))] + [
        flag_config(prefix, user, k) for k in FlagKind
    ]


def rate_tally(rates: Sequence[MinuteRate], muscle: str) -> RestTally:
    """``muscle``'s twitches and time in ``rates`` (``muscle_minutes``: one minute however many devices watch
    it, a replay of live minutes left out), at rest and before rest tracking apart."""
    return RestTally.of(muscle_minutes(rates).get(muscle, {}).values())


def rate_per_hour(rates: Sequence[MinuteRate], muscle: str) -> float | None:
    """Twitches per hour at rest of ``muscle`` in ``rates``; None when it was never at rest there."""
    return rate_tally(rates, muscle).per_hour


def rate_attributes(tally: RestTally) -> dict[str, object]:
    out: dict[str, object] = {
        "twitches_at_rest": tally.twitches,
        "hours_at_rest": round(tally.rest_h, 3),
        "hours_worn": round(tally.all_worn_h, 3),
        "window_h": RATE_WINDOW_NS / 3_600_000_000_000,
    }
    if tally.untracked_worn_s > 0:
        out["before_rest_tracking"] = {
            "twitches": tally.untracked_twitches,
            "hours_worn": round(tally.untracked_worn_s / 3600.0, 3),
        }
    return out


def rate_messages(user: str, muscles: Iterable[str], recent: Sequence[MinuteRate]) -> list[Message]:
    out = []
    for muscle in sorted(set(muscles)):
        tally = rate_tally(recent, muscle)
        rate = tally.per_hour
        state = rate_state_topic(user, muscle)
        out.append(Message(state, "None" if rate is None else f"{rate:.1f}"))
        out.append(Message(f"{state}/attributes", json.dumps(rate_attributes(tally), sort_keys=True)))
    return out


def flag_messages(flag_set: FlagSet) -> list[Message]:
    out = []
    for kind in FlagKind:
        flags = [f for f in flag_set.flags if f.kind is kind]
        state = flag_state_topic(flag_set.user, kind)
        attributes = {
            "where": [f.muscle or f.device for f in flags],
            "details": [f.text for f in flags],
            "computed_at": flag_set.to_json_dict()["computed_at"],
        }
        out.append(Message(state, "ON" if flags else "OFF"))
        out.append(Message(f"{state}/attributes", json.dumps(attributes, sort_keys=True)))
    return out
