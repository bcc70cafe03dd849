"""When a muscle can be assessed for twitches: at rest and still.

Clinicians look for fasciculations in a relaxed muscle at rest: inside a contraction a twitch hides among
voluntary motor units, and during a walk or a gesture the accelerometer and the EMG see movement far larger
than any twitch. A wearable that counts all day has to know when it could have seen one. So a twitch-class
event found while its muscle was not assessable is kept but marked (``EventKind.DURING_MOVEMENT``, with the
reason) and never counted, and a rate divides by the seconds that were assessable, not by the seconds worn.

A muscle is not assessable while any *veto* that applies to it holds. Vetoes live in scopes:

- ``("muscle", name)``: voluntary activity on the muscle itself (an EMG lane mapped to it reports sustained
  activity or an artifact);
- ``("device", name)``: the wearable moves (its accelerometer, gyroscope or orientation stream reports
  movement): every muscle that device watches is vetoed;
- ``("segment", name)``: something on the same body segment moves (another device there, through the device
  map).

Each veto is widened by a guard ahead of it: ``before_movement_ns`` ahead of movement (a shift of weight, a
jump's countermovement build up below the detector's thresholds before it is found) and
``before_activity_ns`` ahead of a muscle's own
activity (a contraction recruits its first motor units singly, at low rates, before its envelope rises: a
twitch-shaped potential shortly before a contraction is usually its first motor unit); and a guard behind
it: ``after_activity_ns`` behind a muscle's own activity (motor units go on firing for a second or more
after a contraction), ``after_ns`` behind movement (a limb and the body settle after a walk or a turn).

The gate is streaming. Sources (the worker's streams) report vetoes as they are found — open ones too,
replaced as they grow — and how far they have *settled*: no veto will start before that time any more. A
question about an interval is answered only once every source of the scopes involved has settled past the
interval's end plus its guard ahead (a veto starting there would still reach back over it), or has gone
*stale*: its user's other streams are ``stale_ns`` ahead of it (a wearable that disconnected must not hold
its peers' events back forever).

A *provisional* answer (``ready(..., provisional=True)``) needs every source settled only ``before_ns``
past the end: the worker reports a twitch then (the latency target leaves no room for a second's wait)
and, once the whole guard ahead is known, judges it again — a contraction or a movement that began
within its guard after it re-writes it as ``during_movement`` before its minute is final
(``processing/rest_streams.py``). Offline runs (``processing/gating.py``) judge once, finally.

A source may report a veto that starts before where it has settled, by at most the ``reach_back_ns`` it was
watched with (an EMG lane's rhythmic bursting is known a few bursts after it began: ``processing.bursts``);
a final answer waits until it has settled that far past the interval too.

Pure: no I/O, no clock. Times are ns (device clock, like the events).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from twitchwatch.processing.events import EventKind, TwitchEvent

ScopeKind = Literal["muscle", "device", "segment"]
Scope = tuple[str, ScopeKind, str]  # (user, kind, name)
SourceId = tuple[str, str, str]  # (user, device, stream), as the worker keys its streams

_PAST = -(2**62)


@dataclass(frozen=True)
class GateParams:
    """Guards and patience; docs/detection.md ("The rest gate") gives the reasons for the values.

    ``before_ns`` 100 ms: the electromechanical delay (EMG leads the movement it causes by 20–50 ms), the
    time a movement takes to reach a detector's onset threshold, and one motor-unit interval at recruitment
    (8–10 Hz); also the most the latency target leaves room for, since every twitch waits for its sources to
    settle this far past its end (bench.latency: p95 150 ms at 50-ms frames, 100 ms at 0–50 ms of guard).
    ``after_ns`` 2 s, behind movement (a source watching a device or a body segment): a limb and the body
    settle after a walk, a turn or a landing (stopping gait and regaining a still posture take 1–3 s).
    ``before_activity_ns`` 1 s, ahead of a muscle's own activity (a source watching only muscles): a
    voluntary contraction starts with its lowest-threshold motor units firing singly at 5–10 Hz, several of
    their potentials before the surface envelope rises enough for the detector (on the Myo recordings,
    potentials 0.1–0.7 s before a gesture's activity); a potential found then is the contraction's first
    unit, not a twitch of a relaxed muscle. Twitches are reported provisionally after ``before_ns`` and
    re-written when a contraction follows within this guard.
    ``after_activity_ns`` 2 s, behind a muscle's own activity (a source watching only muscles): the surface
    EMG envelope falls within a few hundred ms of a contraction's release, but low-threshold motor units
    go on firing for a second or more after it (self-sustained firing), and a muscle is assessed for
    fasciculations once fully relaxed; the benchmark's rest spans begin as far behind activity.
    ``stale_ns`` 10 s: twice a typical 4–6-s BLE supervision timeout, a third of the 30 s after which a
    device is called silent.
    ``before_movement_ns`` 1 s, ahead of movement (a source watching a device or a segment): a movement
    builds up below the movement detector's thresholds before it is found — a shift of weight, a jump's
    countermovement, the postural adjustments that precede a voluntary movement — and a transient in that
    build-up is the movement starting, not a twitch (on the everyday recordings: four "twitches" 0.15–0.4 s
    before jumps, a jerk 0.8 s before a trunk movement, counted with 100 ms). Like the guard ahead of
    activity it is judged finally once known; twitches are reported provisionally after ``before_ns``."""

    before_ns: int = 100_000_000
    after_ns: int = 2_000_000_000
    stale_ns: int = 10_000_000_000
    after_activity_ns: int = 2_000_000_000
    before_activity_ns: int = 1_000_000_000
    before_movement_ns: int = 1_000_000_000

    def __post_init__(self) -> None:
        guards = (
            self.before_ns,
            self.after_ns,
            self.after_activity_ns,
            self.before_activity_ns,
            self.before_movement_ns,
        )
        if min(guards) < 0 or self.stale_ns <= 0:
            raise ValueError("guards must be ≥ 0 and stale_ns > 0")


@dataclass(frozen=True)
class Veto:
    """A span (guards included) during which a scope could not be assessed, and why; ``onset_ns``: when the
    activity or movement itself began (``start_ns`` less the guard ahead)."""

    start_ns: int
    end_ns: int
    reason: str
    onset_ns: int

    def why(self, kind: str, end_ns: int) -> str:
        """The reason a ``kind`` event ending at ``end_ns`` is not counted: the veto's, and for activity that
        began only after it, how long after (the first motor units of a contraction)."""
        if self.onset_ns > end_ns:
            return f"{kind}: {self.reason} {(self.onset_ns - end_ns) / 1e9:.1f} s after it"
        return f"{kind}: {self.reason}"


def scopes_of(user: str, muscle: str, device: str, segment: str | None) -> tuple[Scope, ...]:
    """The scopes whose vetoes apply to a muscle watched by ``device``, on ``segment`` if known."""
    scopes: list[Scope] = [(user, "muscle", muscle), (user, "device", device)]
    if segment:
        scopes.append((user, "segment", segment))
    return tuple(scopes)


@dataclass(frozen=True, eq=False)
class Blocker:
    """A source that holds a ``RestGate.ready`` answer back, and how far it must settle to let it go
    (``need_ns``: settled at least that far)."""

    source: SourceId
    state: _Source
    need_ns: int


@dataclass
class _Source:
    scopes: set[Scope] = field(default_factory=set)
    settled_ns: int = _PAST
    open: list[Veto] = field(default_factory=list)  # vetoes still growing, replaced on every report
    heard_ns: int = _PAST  # when it last settled, by the gate's clock (live only)
    reach_back_ns: int = 0  # how far behind where it settled a veto of it may still start


class RestGate:
    """Vetoes per scope, the sources that report them, and the answers: is this interval assessable?

    ``clock`` (ns; the worker's wall clock): live, a source is stale only if it is also silent — it has
    not settled for ``stale_ns`` by this clock. Device time alone cannot tell a device that stopped from
    one whose user has a frame stamped far ahead: one frame from 2096 (another device of the user, or a
    clock glitch) made every other source of the user stale for good, and the gate judged twitches before
    the contraction that followed them was known. Offline (a recording, ``clock`` None) device time is all
    there is."""

    def __init__(self, params: GateParams | None = None, clock: Callable[[], int] | None = None) -> None:
        self.params = params or GateParams()
        self._clock = clock
        self._sources: dict[SourceId, _Source] = {}
        self._by_scope: dict[Scope, set[SourceId]] = {}
        self._vetoes: dict[Scope, list[Veto]] = {}  # closed vetoes, sorted by start
        self._latest: dict[str, int] = {}  # per user: the furthest any of its sources has settled

    # ---- what sources report -----------------------------------------------------------------------
    def watch(self, source: SourceId, scopes: Iterable[Scope], reach_back_ns: int = 0) -> None:
        """``source`` reports vetoes for ``scopes`` (idempotent; scopes add up). ``reach_back_ns``: a veto
        it reports (guards included) may start this far before where it has settled — activity recognised
        only some time after it began, such as rhythmic bursting (``processing.bursts``): a question is
        answered finally only once the source has settled that far past the interval too."""
        if reach_back_ns < 0:
            raise ValueError("reach_back_ns must be ≥ 0")
        s = self._sources.setdefault(source, _Source())
        s.reach_back_ns = max(s.reach_back_ns, reach_back_ns)
        for scope in scopes:
            s.scopes.add(scope)
            self._by_scope.setdefault(scope, set()).add(source)

    def veto(self, source: SourceId, start_ns: int, end_ns: int, reason: str, *, guard: bool = True) -> None:
        """A finished span of activity or movement seen by ``source``; it vetoes the source's scopes.
        ``guard=False``: exactly the span, for blind time that has no build-up or after-effect (a detector
        learning its noise floor after a start)."""
        v = self._widen(start_ns, end_ns, reason, source) if guard else self._exact(start_ns, end_ns, reason)
        for scope in self._sources[source].scopes:
            spans = self._vetoes.setdefault(scope, [])
            bisect.insort(spans, v, key=lambda x: x.start_ns)

    def open(self, source: SourceId, spans: Iterable[tuple[int, int, str]]) -> None:
        """The source's activity still going on (start, end so far, reason): replaces what it said before."""
        self._sources[source].open = [self._widen(a, b, r, source) for a, b, r in spans]

    def settle(self, source: SourceId, t_ns: int) -> None:
        """No veto of ``source`` will start before ``t_ns`` any more (only forwards)."""
        s = self._sources[source]
        if self._clock is not None:
            s.heard_ns = self._clock()
        if t_ns > s.settled_ns:
            s.settled_ns = t_ns
            user = source[0]
            self._latest[user] = max(self._latest.get(user, _PAST), t_ns)

    def forget(self, source: SourceId) -> None:
        """The source ended (stream closed, device restarted): it holds nothing back any more. Its closed
        vetoes stay; its open ones were reported as closed by then or are dropped."""
        s = self._sources.pop(source, None)
        if s is None:
            return
        for scope in s.scopes:
            peers = self._by_scope.get(scope)
            if peers is not None:
                peers.discard(source)

    # ---- questions ---------------------------------------------------------------------------------
    def ready(self, scopes: Iterable[Scope], end_ns: int, provisional: bool = False) -> bool:
        """Is everything known that could veto any time before ``end_ns`` in these scopes? ``provisional``:
        known as far as ``before_ns`` past it (a contraction beginning later may still reach back)."""
        return self.blocker(scopes, end_ns, provisional) is None

    def blocker(self, scopes: Iterable[Scope], end_ns: int, provisional: bool = False) -> Blocker | None:
        """What ``ready`` waits for: a source not settled far enough and not stale, and how far it must
        settle (None: ready). While ``blocks`` says it still does, ``ready`` is False — a source leaves a
        scope only when forgotten, and scopes only grow — so a caller asking again and again (every frame)
        need only check that one source until it lets go, then ask ``blocker`` afresh."""
        for scope in scopes:
            for sid in self._by_scope.get(scope, ()):
                s = self._sources[sid]
                # A veto may still start where the source has settled, and ``first_veto`` counts one
                # starting (guard included) at the interval's very end: settled past it, not up to it.
                need = end_ns + (self.params.before_ns if provisional else self._before(sid)) + 1
                if s.settled_ns < need and not self._stale(sid, s):
                    return Blocker(sid, s, need)
        return None

    def blocks(self, b: Blocker) -> bool:
        """Does the source ``blocker`` named still hold its answer back (not settled that far, not stale,
        not forgotten or replaced)?"""
        s = self._sources.get(b.source)
        return s is b.state and s.settled_ns < b.need_ns and not self._stale(b.source, s)

    def horizon(self, scopes: Iterable[Scope]) -> int:
        """Up to when these scopes are settled (``ready`` holds for any end ≤ the answer)."""
        upto = 2**62
        for scope in scopes:
            for sid in self._by_scope.get(scope, ()):
                s = self._sources[sid]
                if not self._stale(sid, s):
                    upto = min(upto, s.settled_ns - self._before(sid) - 1)
        return upto

    def first_veto(self, scopes: Iterable[Scope], start_ns: int, end_ns: int) -> Veto | None:
        """The earliest veto overlapping [start_ns, end_ns] in any of the scopes, or None."""
        best: Veto | None = None
        for v in self._overlapping(scopes, start_ns, end_ns):
            if best is None or v.start_ns < best.start_ns:
                best = v
        return best

    def vetoed_ns(self, scopes: Iterable[Scope], start_ns: int, end_ns: int) -> int:
        """How much of [start_ns, end_ns) the scopes' vetoes cover (their union, clipped)."""
        spans = sorted(
            (max(v.start_ns, start_ns), min(v.end_ns, end_ns))
            for v in self._overlapping(scopes, start_ns, end_ns)
        )
        total, reach = 0, start_ns
        for a, b in spans:
            a = max(a, reach)
            if b > a:
                total += b - a
                reach = b
        return total

    def judge(self, event: TwitchEvent, scopes: Iterable[Scope]) -> TwitchEvent:
        """``event`` as it counts: a twitch while its muscle was not assessable becomes ``during_movement``
        with the veto's reason (prefixed by what it looked like); anything else is returned unchanged."""
        if not event.kind.is_twitch:
            return event
        v = self.first_veto(scopes, event.start_ns, event.end_ns)
        if v is None:
            return event
        reason = v.why(event.kind.value, event.end_ns)
        return dataclasses.replace(event, kind=EventKind.DURING_MOVEMENT, reason=reason)

    def prune(self, before_ns: int) -> None:
        """Forget closed vetoes that ended before ``before_ns`` (nothing will ask about that time again)."""
        for scope, spans in self._vetoes.items():
            self._vetoes[scope] = [v for v in spans if v.end_ns >= before_ns]

    # ---- internals ---------------------------------------------------------------------------------
    def _muscle_only(self, source: SourceId) -> bool:
        scopes = self._sources[source].scopes
        return bool(scopes) and all(kind == "muscle" for _, kind, _ in scopes)

    def _after(self, source: SourceId) -> int:
        """The guard behind a source's vetoes: a muscle's own activity ends sooner than a movement settles."""
        return self.params.after_activity_ns if self._muscle_only(source) else self.params.after_ns

    def _ahead(self, source: SourceId) -> int:
        """The guard ahead of a source's vetoes: a contraction's first units fire before it is seen, and a
        movement builds up before it is found."""
        p = self.params
        return max(p.before_ns, p.before_activity_ns if self._muscle_only(source) else p.before_movement_ns)

    def _before(self, source: SourceId) -> int:
        """How far past an interval a source must have settled for a final answer: the guard ahead of its
        vetoes, or how far behind its settled point it may still report one (``watch``), the longer."""
        return max(self._ahead(source), self._sources[source].reach_back_ns)

    def _widen(self, start_ns: int, end_ns: int, reason: str, source: SourceId) -> Veto:
        if end_ns < start_ns:
            raise ValueError(f"veto ends ({end_ns}) before it starts ({start_ns})")
        return Veto(start_ns - self._ahead(source), end_ns + self._after(source), reason, start_ns)

    @staticmethod
    def _exact(start_ns: int, end_ns: int, reason: str) -> Veto:
        if end_ns < start_ns:
            raise ValueError(f"veto ends ({end_ns}) before it starts ({start_ns})")
        return Veto(start_ns, end_ns, reason, start_ns)

    def _stale(self, sid: SourceId, s: _Source) -> bool:
        behind = self._latest.get(sid[0], _PAST) - s.settled_ns > self.params.stale_ns
        return behind and (self._clock is None or self._clock() - s.heard_ns > self.params.stale_ns)

    def _overlapping(self, scopes: Iterable[Scope], start_ns: int, end_ns: int) -> Iterable[Veto]:
        for scope in set(scopes):
            spans = self._vetoes.get(scope, [])
            # Closed vetoes are sorted by start; the widest possible one begins no earlier than this.
            for v in spans[: bisect.bisect_right(spans, end_ns, key=lambda x: x.start_ns)]:
                if v.end_ns >= start_ns:
                    yield v
            for sid in self._by_scope.get(scope, ()):
                for v in self._sources[sid].open:
                    if v.start_ns <= end_ns and v.end_ns >= start_ns:
                        yield v
