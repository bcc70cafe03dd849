""" "I felt that": twitches a person marked, and how they compare with the detected ones.

A mark is a journal entry of factor ``felt`` (``processing.journal``), with the time and, optionally, the
muscle. It comes from ``twitchwatch felt``, the Live page's button, or the MQTT topic
``twitchwatch/<user>/felt`` (``collector.topics.felt_topic``) a phone shortcut or a Home Assistant button
publishes to; the worker stores those (``felt_entry`` reads the payload).

**The window.** A mark comes after the twitch: the person has to notice it, decide it was one, and press
a button or a shortcut. A simple reaction to a touch takes 0.2–0.4 s, but that is to an expected stimulus
with a finger on the key; noticing an unexpected twitch and reaching a phone takes seconds. So a detected
twitch is *near* a mark when it starts up to ``FELT_BEFORE_S`` = 10 s before it, or up to
``FELT_AFTER_S`` = 2 s after it (the wearable's clock and the phone's or the worker's clock differ by up
to a second or so, and a mark made with ``--at`` is only as exact as the time typed). A mark naming a muscle
is compared with that muscle's twitches, one naming none with every muscle's.

**What this does and does not measure.** It is the only ground truth a person can give, and a weak one:

- a person feels only some twitches (small or deep ones go unnoticed, and nobody attends all day), so
  detections far outnumber marks and most detections have no mark near them — that says nothing against
  them;
- a person also feels twitches the sensor cannot see (another muscle, one too small at the skin, one
  during movement, when nothing is counted), so a mark without a detection is not a missed twitch for
  certain;
- the mark's time is delayed and imprecise, so with many detections some fall near a mark by chance:
  ``chance`` estimates how many marks would have a detection near them anyway, from each muscle's
  detection rate around the marks.

So it is not a validation of the detector (docs/detection.md scores it against known truth); it shows
whether what a person notices and what the sensor records go together.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from twitchwatch.collector.limits import (
    MAX_JSON_DEPTH,
    MAX_TIME_NS,
    RejectedError,
    check_json_depth,
    is_finite_number,
)
from twitchwatch.collector.topics import TopicError, check_segment
from twitchwatch.errors import UserError
from twitchwatch.processing.events import TwitchEvent
from twitchwatch.processing.journal import Factor, JournalEntry, new_entry_id
from twitchwatch.processing.timeunits import NS_PER_S

FELT_BEFORE_S = 10.0
FELT_AFTER_S = 2.0
# The detection rate a mark is judged against (for ``chance``) is counted this long either side of it.
CHANCE_SPAN_S = 600.0
# What a Home Assistant MQTT button publishes when nothing else is configured.
HA_DEFAULT_PRESS = "PRESS"
# A mark is a muscle name and a time: far under this. A bigger payload is no mark.
MAX_FELT_BYTES = 4096


class FeltError(UserError, ValueError):
    """A felt mark's payload is not usable; ``key`` names the offending field."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key


def felt_entry(user: str, payload: bytes, received_ns: int) -> JournalEntry:
    """The journal entry for a payload on ``twitchwatch/<user>/felt``: JSON ``{"muscle": …, "at": …}``,
    both optional — ``at`` an ISO 8601 time with its offset or Unix seconds, default the time it was
    received. An empty payload, ``{}`` or Home Assistant's default ``PRESS`` mark "now, somewhere". A mark
    with its time carries an id made from it, so a redelivered message replaces itself instead of
    counting twice."""
    fields = _fields(payload)
    if not isinstance(fields, dict):
        raise FeltError('must be a JSON object like {"muscle": "calf_left"}', "(payload)")
    unknown = sorted(set(fields) - {"muscle", "at"})
    if unknown:
        raise FeltError("unknown field; a mark has only 'muscle' and 'at'", unknown[0])
    muscle = fields.get("muscle") or ""
    if not isinstance(muscle, str):
        raise FeltError(f"{muscle!r} is not a muscle name", "muscle")
    if muscle:
        try:
            check_segment(muscle, "muscle")
        except TopicError as exc:
            raise FeltError(str(exc), "muscle") from None
    at = fields.get("at")
    time_ns = received_ns if at is None else _time_ns(at)
    entry_id = new_entry_id() if at is None else _stable_id(user, muscle, time_ns)
    return JournalEntry(user, time_ns, Factor.FELT, note="", muscle=muscle, entry_id=entry_id)


def with_arrival_time(payload: bytes, received_ns: int) -> bytes:
    """A mark's payload as the worker journals and handles it: one without its own time gets the time it
    arrived (``at``, Unix seconds to the microsecond), so a mark replayed from the journal of a worker killed
    before storing it is stored at that time and under the same id — once. A payload that is not a mark's
    is returned as it is, for ``felt_entry`` to refuse."""
    try:
        fields = _fields(payload)
    except FeltError:
        return payload
    if not isinstance(fields, dict) or "at" in fields:
        return payload
    return json.dumps({**fields, "at": round(received_ns / 1000) / 1e6}).encode()


def _fields(payload: bytes) -> object:
    """A payload's JSON value; an empty one, or Home Assistant's default press, is no fields at all. Sized
    and nested as a mark can be before it is parsed: ``json.loads`` recurses into nesting, and a deep enough
    one raised RecursionError where the worker reads its messages, before any handler could refuse it."""
    if len(payload) > MAX_FELT_BYTES:
        raise FeltError(f"{len(payload)} bytes, more than the {MAX_FELT_BYTES} a mark needs", "(payload)")
    try:
        check_json_depth(payload, MAX_JSON_DEPTH)
    except RejectedError as exc:
        raise FeltError(str(exc), "(payload)") from None
    text = payload.decode("utf-8", errors="replace").strip()
    return {} if text in ("", HA_DEFAULT_PRESS) else _json(text)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise FeltError(f"not JSON: {text[:80]!r}", "(payload)") from None


def _time_ns(at: object) -> int:
    ns = _parsed_ns(at)
    if not 0 < ns < MAX_TIME_NS:  # as frames: a store cannot hold every time, and 64 bits of ns end in 2262
        raise FeltError(f"{at!r} is outside 1970..2100", "at")
    return ns


def _parsed_ns(at: object) -> int:
    if isinstance(at, bool):
        raise FeltError(f"{at!r} is not a time", "at")
    if isinstance(at, int | float):
        if not is_finite_number(at) or not 0 < at < 1e11:
            raise FeltError(f"{at!r} is not Unix seconds", "at")
        return round(at * 1e6) * 1000  # microseconds: a double cannot hold today's time in ns exactly
    if isinstance(at, str):
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise FeltError(f"{at!r} is not an ISO 8601 time", "at") from None
        if when.tzinfo is None:
            raise FeltError(
                f"{at!r} has no UTC offset (add Z or +01:00): the worker cannot guess the zone", "at"
            )
        return round(when.timestamp()) * NS_PER_S + when.microsecond * 1000
    raise FeltError(f"{at!r} is not a time (ISO 8601 text or Unix seconds)", "at")


def _stable_id(user: str, muscle: str, time_ns: int) -> str:
    return hashlib.sha256(f"felt|{user}|{muscle}|{time_ns}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FeltComparison:
    """Felt marks against detected twitches over one period (one muscle, or all: ``muscle`` "").

    ``felt_near``: marks with a detected twitch near them; ``detections_near``: detected twitches with a
    mark near them; ``chance``: how many of the marks would have a detection near them by chance alone."""

    muscle: str
    felt: int
    felt_near: int
    detections: int
    detections_near: int
    chance: float
    before_s: float = FELT_BEFORE_S
    after_s: float = FELT_AFTER_S

    def words(self) -> str:
        """The comparison in a sentence."""
        if not self.felt:
            return "No twitch was marked as felt."
        return (
            f"{self.felt_near} of {self.felt} felt twitch(es) had a detected twitch within "
            f"{self.before_s:g} s before to {self.after_s:g} s after the mark (about {self.chance:.1f} would "
            "by chance); "
            f"{self.detections_near} of {self.detections} detected twitch(es) were near a felt one."
        )


def compare_felt(
    marks: Sequence[JournalEntry],
    detections: Sequence[TwitchEvent],
    muscle: str = "",
    before_s: float = FELT_BEFORE_S,
    after_s: float = FELT_AFTER_S,
) -> FeltComparison:
    """``marks`` (felt entries) against ``detections`` (twitches: the kinds that are counted) over one
    period, for ``muscle`` or, with "", all of them. A mark naming no muscle matches any muscle's twitch;
    when a muscle is asked for, it counts there too."""
    before, after = round(before_s * NS_PER_S), round(after_s * NS_PER_S)
    felt = [m for m in marks if m.factor is Factor.FELT and (not muscle or m.muscle in ("", muscle))]
    twitches = sorted(
        (e for e in detections if e.kind.is_twitch and (not muscle or e.muscle == muscle)),
        key=lambda e: e.start_ns,
    )
    starts = [e.start_ns for e in twitches]

    def candidates(mark: JournalEntry, lo: int, hi: int) -> list[TwitchEvent]:
        i = bisect.bisect_left(starts, mark.time_ns - lo)
        j = bisect.bisect_right(starts, mark.time_ns + hi)
        return [e for e in twitches[i:j] if not mark.muscle or e.muscle == mark.muscle]

    felt_near = sum(1 for m in felt if candidates(m, before, after))
    near_ids = {id(e) for m in felt for e in candidates(m, before, after)}
    span = round(CHANCE_SPAN_S * NS_PER_S)
    window_s = before_s + after_s
    chance = 0.0
    for m in felt:
        around = len(candidates(m, span, span))
        rate_per_s = around / (2 * CHANCE_SPAN_S)
        chance += 1.0 - math.exp(-rate_per_s * window_s)
    return FeltComparison(
        muscle, len(felt), felt_near, len(twitches), len(near_ids), chance, before_s, after_s
    )


def compare_by_muscle(
    marks: Sequence[JournalEntry], detections: Sequence[TwitchEvent]
) -> list[FeltComparison]:
    """One comparison over every muscle (muscle ""), then one per muscle some mark names."""
    named = sorted({m.muscle for m in marks if m.factor is Factor.FELT and m.muscle})
    return [compare_felt(marks, detections), *(compare_felt(marks, detections, m) for m in named)]
