"""Values the worker produces and the stores keep."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from twitchwatch.processing.timeunits import MINUTE_NS

_MINUTE_S = 60.0
Source = Literal["live", "replay"]
SOURCES: tuple[Source, ...] = ("live", "replay")


class EventKind(enum.StrEnum):
    FASCICULATION = "fasciculation"
    MYOCLONIC_JERK = "myoclonic_jerk"
    SUSTAINED = "sustained"
    ARTIFACT = "artifact"
    # Twitch-shaped, but found while its muscle could not be assessed (contracting, or the limb moving):
    # kept and shown, never counted (processing/rest.py); ``TwitchEvent.reason`` says what it looked like
    # and why.
    DURING_MOVEMENT = "during_movement"

    @property
    def is_twitch(self) -> bool:
        """Only brief involuntary events count as twitches; sustained activity and artifacts do not."""
        return self in _TWITCH_SET  # a set lookup: asked per event by the detector, worker and reports


_TWITCH_SET = frozenset((EventKind.FASCICULATION, EventKind.MYOCLONIC_JERK))
TWITCH_KINDS: tuple[EventKind, ...] = tuple(k for k in EventKind if k.is_twitch)


@dataclass(frozen=True)
class TwitchEvent:
    """One detected event on one muscle. Times are ns since the Unix epoch (device clock)."""

    user: str
    muscle: str
    device: str
    stream: str
    channel: int
    kind: EventKind
    start_ns: int
    end_ns: int
    amplitude: float  # peak, in ``unit``
    unit: str
    confidence: float
    source: Source = "live"
    session_id: str = ""
    # Power-weighted RMS frequency of the band-passed event, Hz; None where it was not measured (events
    # stored before it was kept). A surface fasciculation sits in roughly 50-250 Hz, movement far lower.
    dominant_hz: float | None = None
    # Why the event is of its kind where that is not self-evident (a rejected twitch: what it looked like and
    # what vetoed it); "" otherwise.
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end_ns < self.start_ns:
            raise ValueError(f"event ends ({self.end_ns}) before it starts ({self.start_ns})")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} outside 0..1")
        if not math.isfinite(self.amplitude):
            raise ValueError("amplitude must be finite")
        if not self.muscle:
            raise ValueError("muscle must not be empty")
        if self.dominant_hz is not None and not (math.isfinite(self.dominant_hz) and self.dominant_hz >= 0):
            raise ValueError(f"dominant_hz {self.dominant_hz} must be a finite, non-negative frequency")

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_json_dict(self) -> dict[str, object]:
        return {
            "user": self.user,
            "muscle": self.muscle,
            "device": self.device,
            "stream": self.stream,
            "channel": self.channel,
            "kind": self.kind.value,
            "start": self.start_ns / 1e9,
            "end": self.end_ns / 1e9,
            "duration_ms": round(self.duration_ms, 3),
            "amplitude": self.amplitude,
            "unit": self.unit,
            "confidence": self.confidence,
            "source": self.source,
            "session_id": self.session_id,
            "dominant_hz": self.dominant_hz,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class MinuteRate:
    """Twitches on one muscle in one wall-clock minute, with how much of it was monitored (worn) and how
    much of that the muscle was at rest and still: assessable for twitches (``processing/rest.py``).

    ``rest_s`` None means unknown: a row stored by a worker from before rest tracking, whose ``twitches``
    counted every twitch-shaped event, during movement too. Such minutes are never counted
    at rest (``RestTally``). Since rest tracking, ``twitches`` counts only the twitches at rest.

    ``end_s``: seconds into the minute where its monitored time ends (the last sample's time); a worker
    started anew in the minute tells by it whether its data goes on from the row or is the row's own data
    again. None: unknown (a row stored before it was kept), taken as ``monitored_s``."""

    user: str
    muscle: str
    device: str
    source: Source
    minute_ns: int  # start of the minute
    twitches: int
    monitored_s: float
    rest_s: float | None
    end_s: float | None = None

    def __post_init__(self) -> None:
        if self.rest_s is not None and not (math.isfinite(self.rest_s) and self.rest_s >= 0):
            raise ValueError(f"rest_s {self.rest_s} must be a finite number of seconds ≥ 0, or None")
        if self.end_s is not None and not (math.isfinite(self.end_s) and self.end_s >= 0):
            raise ValueError(f"end_s {self.end_s} must be a finite number of seconds ≥ 0, or None")


def rerun_free_rates(rates: Sequence[MinuteRate]) -> list[MinuteRate]:
    """``rates`` without the replayed minutes that a device also recorded live.

    ``twitchwatch replay`` keeps a recording's timestamps by default, so replaying a session recorded live
    puts the same twitches into the store a second time, tagged ``replay``. Counted with the live rows they
    would double a muscle's rate (and could raise a flag); a replayed minute with no live row of its own
    device — an imported EDF file, a recording made elsewhere — is the only record there is and counts."""
    live = _live_minutes(rates)
    return [r for r in rates if r.source == "live" or (r.user, r.muscle, r.device, r.minute_ns) not in live]


def rerun_free_events(events: Sequence[TwitchEvent], rates: Sequence[MinuteRate]) -> list[TwitchEvent]:
    """``events`` without replayed ones in minutes their device also recorded live (see ``rerun_free_rates``);
    ``rates`` must cover the events' minutes."""
    live = _live_minutes(rates)
    return [
        e
        for e in events
        if e.source == "live" or (e.user, e.muscle, e.device, e.start_ns - e.start_ns % MINUTE_NS) not in live
    ]


# One muscle's minutes: minute start (ns) → (twitches, seconds worn 0–60, seconds at rest 0–worn or None when
# unknown: a minute stored before rest tracking). Plain tuples, not dataclasses: a 60-day flag run folds ~10⁵
# minutes per muscle, and objects there cost more than the fold.
MuscleMinutes = dict[int, tuple[int, float, float | None]]


def muscle_minutes(rates: Sequence[MinuteRate]) -> dict[str, MuscleMinutes]:
    """One user's stored minute rates as each muscle's minutes (in the rates' order): the one place every
    rate shown (dashboard, journal, flags, report, Home Assistant) is counted from, so they agree.

    Replays of live minutes are left out (``rerun_free_rates``). Several devices on one muscle are one
    muscle: their twitches add (the worker fuses a twitch two streams saw into one event) but their
    monitored time does not — a minute is monitored or it is not, so it counts the longest device's time,
    never more than the minute. Summed instead, an EMG and an accelerometer on one calf would halve its
    rate. Time at rest folds the same way (the worker judges a muscle's rest with the same vetoes for each
    of its devices, so they differ only in how long each was worn), and is unknown for the minute if any of
    its rows is from before rest tracking: those rows' twitches were counted during movement too, and must
    not be mixed into a rate at rest."""
    out: dict[str, MuscleMinutes] = {}
    for r in rerun_free_rates(rates):
        minutes = out.get(r.muscle)
        if minutes is None:
            minutes = out[r.muscle] = {}
        seconds = min(r.monitored_s, _MINUTE_S)
        rest = None if r.rest_s is None else min(r.rest_s, seconds)
        seen = minutes.get(r.minute_ns)
        if seen is None:
            minutes[r.minute_ns] = (r.twitches, seconds, rest)
        else:
            both = None if rest is None or seen[2] is None else max(seen[2], rest)
            minutes[r.minute_ns] = (seen[0] + r.twitches, max(seen[1], seconds), both)
    return out


@dataclass(frozen=True)
class RestTally:
    """Twitches and time summed over minutes, split the way every view shows a rate.

    The headline is twitches per hour *at rest* (``per_hour``: the twitches of minutes with rest tracking,
    which only counts twitches at rest, ÷ their seconds at rest), with hours worn and hours at rest beside
    it. Minutes stored before rest tracking (rest unknown) are kept apart — ``untracked_*`` — and shown as
    such, with their rate per hour *worn* (``untracked_per_hour``): their twitches include movement, so
    folded into the rate at rest they would raise it, and read as all-rest they would lower it."""

    twitches: int = 0  # at rest, in minutes with rest tracking
    worn_s: float = 0.0  # worn, in minutes with rest tracking
    rest_s: float = 0.0
    untracked_twitches: int = 0  # minutes stored before rest tracking
    untracked_worn_s: float = 0.0

    @classmethod
    def of(cls, minutes: Iterable[tuple[int, float, float | None]]) -> RestTally:
        """The sum of ``muscle_minutes`` values (twitches, seconds worn, seconds at rest or None)."""
        n = worn = rest = 0.0
        un = un_worn = 0.0
        for twitches, seconds, at_rest in minutes:
            if at_rest is None:
                un += twitches
                un_worn += seconds
            else:
                n += twitches
                worn += seconds
                rest += at_rest
        return cls(int(n), worn, rest, int(un), un_worn)

    def plus(self, other: RestTally) -> RestTally:
        return RestTally(
            self.twitches + other.twitches,
            self.worn_s + other.worn_s,
            self.rest_s + other.rest_s,
            self.untracked_twitches + other.untracked_twitches,
            self.untracked_worn_s + other.untracked_worn_s,
        )

    @property
    def per_hour(self) -> float | None:
        """Twitches per hour at rest; None without any time at rest."""
        return self.twitches * 3600.0 / self.rest_s if self.rest_s > 0 else None

    @property
    def untracked_per_hour(self) -> float | None:
        """Twitches per hour worn before rest tracking; None without any such time."""
        return self.untracked_twitches * 3600.0 / self.untracked_worn_s if self.untracked_worn_s > 0 else None

    @property
    def all_worn_s(self) -> float:
        return self.worn_s + self.untracked_worn_s

    @property
    def rest_h(self) -> float:
        return self.rest_s / 3600.0

    @property
    def all_worn_h(self) -> float:
        return self.all_worn_s / 3600.0


def _live_minutes(rates: Sequence[MinuteRate]) -> set[tuple[str, str, str, int]]:
    """(user, muscle, device, minute) of every live minute rate: what a replay would repeat."""
    return {(r.user, r.muscle, r.device, r.minute_ns) for r in rates if r.source == "live"}
