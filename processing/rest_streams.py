"""The worker's streams as sources of the rest gate (``processing/rest.py``), and its questions per muscle.

Which stream vetoes what:

- an **EMG** lane vetoes its muscle (scope ``muscle``): its sustained activity or artifacts mean the muscle
  was contracting or the electrode moved;
- an **accelerometer** lane, and a **gyroscope or orientation** stream, veto their device (scope
  ``device``: every muscle that device watches — an accelerometer that is itself a muscle's twitch sensor
  vetoes that muscle this way) and the device's body segment(s) (scope ``segment``: the muscles other
  wearables watch there). A device's segment is the device map's ``segment`` if given, else the segment
  of each muscle it watches (``processing.segments``).

A muscle is judged by its own scope, the device scope of every device that watches it and the segment of
each (the configured one, else its own). So a twitch on the calf counts only when no EMG lane mapped to
the calf saw activity, no wearable watching the calf moved, and nothing else on the lower leg moved.

Each lane is its own source, ``(user, device, "stream#lane")``: one EMG channel's contraction says nothing
about its neighbour's muscle. A stream's detector learns its noise floor for its first ``warmup`` samples
and detects nothing then: that is blind time, vetoed exactly (no guards) with reason
``detector warming up``. When a stream ends (a gap, a restart, the device going offline, shutdown) its
sources are forgotten: they hold nothing back any more, their closed vetoes stay.

Events the fuser releases are held here until the gate can judge them (``ready`` for their muscle's
scopes up to their end, provisionally: ``before_ns`` past it); a twitch is written then and judged again,
finally, once the whole guard ahead of its muscle's own activity is known (a contraction starting within it
re-writes the event as ``during_movement``); only final twitches are counted. Minute rates ask the final
question of their minute (``RateBook``). Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from twitchwatch.collector.signals import StreamKind
from twitchwatch.processing.events import EventKind, TwitchEvent
from twitchwatch.processing.rest import Blocker, GateParams, RestGate, Scope, SourceId
from twitchwatch.processing.segments import segment_of

StreamKey = tuple[str, str, str]  # (user, device, stream)
SegmentMap = Callable[[str], str | None]  # device → its configured body segment
WARMING_UP = "detector warming up"
_SPAN_SAID = re.compile(r"\d s$")  # a detector's reason that already gives the duration
_WHAT = {
    ("emg", EventKind.SUSTAINED): "sustained EMG activity",
    ("emg", EventKind.ARTIFACT): "EMG artifact",
    ("acc", EventKind.SUSTAINED): "movement",
    ("acc", EventKind.ARTIFACT): "accelerometer artifact",
    ("gyro", EventKind.SUSTAINED): "rotation",
    ("orientation", EventKind.SUSTAINED): "rotation",
}


def veto_reason(
    kind: StreamKind, detected: EventKind, seconds: float, where: str, why: str = "", ongoing: bool = False
) -> str:
    """Why a detection vetoes: the detector's own reason when it gives one, else what it was and how long,
    e.g. ``sustained EMG activity 2.3 s (myo1/emg ch3)``, or for activity still going on when a twitch
    was judged ``movement going on for 10.0 s (leg/acc)``."""
    what = why or _WHAT.get((kind, detected), detected.value)
    if not ongoing and _SPAN_SAID.search(what):  # "activity 1.6 s", "movement 0.3–5 Hz 1.2 s": said once
        return f"{what} ({where})"
    return f"{what} {'going on for ' if ongoing else ''}{seconds:.1f} s ({where})"


def is_veto(kind: EventKind) -> bool:
    """Detections that mean the muscle could not be assessed: activity and artifacts."""
    return kind in (EventKind.SUSTAINED, EventKind.ARTIFACT)


@dataclass
class _Lanes:
    kind: StreamKind
    sources: list[SourceId]
    muscles: list[str | None]  # per lane (None: a movement stream, which watches no muscle)
    # Lanes whose last report had open activity: a lane quiet before and now is not reported again (most
    # frames of most lanes), which keeps the gate's cost per frame low.
    open_lanes: set[int] = field(default_factory=set)


@dataclass
class RestStreams:
    """The worker's bookkeeping around one ``RestGate``."""

    params: GateParams = field(default_factory=GateParams)
    segment_map: SegmentMap = field(default=lambda _device: None)  # nothing configured
    clock: Callable[[], int] | None = None  # the wall clock, live (``RestGate``)
    gate: RestGate = field(init=False)
    _streams: dict[StreamKey, _Lanes] = field(default_factory=dict)
    _device_muscles: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _muscle_scopes: dict[tuple[str, str], frozenset[Scope]] = field(default_factory=dict)
    # Events waiting for the gate, each with what it waited for when last asked (``RestGate.blocker``):
    # asked again only once that source lets go, not on every frame of every stream.
    _held: list[tuple[TwitchEvent, Blocker | None]] = field(default_factory=list)
    # Twitches written before the whole guard ahead of their muscle's activity was known (likewise), and
    # those finally judged at rest and not yet counted.
    _provisional: list[tuple[TwitchEvent, Blocker | None]] = field(default_factory=list)
    _counted: list[TwitchEvent] = field(default_factory=list)
    retracted: int = 0  # provisional twitches re-written as during_movement

    def __post_init__(self) -> None:
        self.gate = RestGate(self.params, self.clock)

    # ---- streams ---------------------------------------------------------------------------------
    def start(
        self,
        key: StreamKey,
        kind: StreamKind,
        muscles: list[str | None],
        t0_ns: int,
        warmup_ns: int,
        reach_back_ns: int = 0,
    ) -> None:
        """A stream (re)starts at ``t0_ns`` with one muscle per lane (None for a movement stream); its
        detector is blind for ``warmup_ns``, and may report a veto up to ``reach_back_ns`` before where it
        has settled (``RestGate.watch``)."""
        self.end(key)
        user, device, stream = key
        lanes = _Lanes(kind, [(user, device, f"{stream}#{lane}") for lane in range(len(muscles))], muscles)
        self._streams[key] = lanes
        for muscle in muscles:
            if muscle is not None:
                self._add_muscle(user, device, muscle)
        for lane, source in enumerate(lanes.sources):
            self.gate.watch(source, self._lane_scopes(user, device, kind, muscles[lane]), reach_back_ns)
            self.gate.settle(source, t0_ns)  # from its start on: not stale before its first report
            if warmup_ns > 0:
                self.gate.veto(source, t0_ns, t0_ns + warmup_ns, WARMING_UP, guard=False)

    def end(self, key: StreamKey) -> None:
        """The stream ended: its sources hold nothing back any more (their vetoes stay)."""
        lanes = self._streams.pop(key, None)
        if lanes is not None:
            for source in lanes.sources:
                self.gate.forget(source)

    def drop(self, key: StreamKey) -> None:
        """The stream went to another worker (``Worker.detach_streams``): it holds nothing back, and the
        events of its device still held here, or written and not yet final, are that worker's to judge
        again from the same frames."""
        self.end(key)
        device = key[:2]
        self._held = [(e, b) for e, b in self._held if (e.user, e.device) != device]
        self._provisional = [(e, b) for e, b in self._provisional if (e.user, e.device) != device]

    def veto(
        self, key: StreamKey, lane: int, start_ns: int, end_ns: int, reason: str, guard: bool = True
    ) -> None:
        lanes = self._streams.get(key)
        if lanes is not None and lane < len(lanes.sources):
            self.gate.veto(lanes.sources[lane], start_ns, end_ns, reason, guard=guard)

    def progress(
        self, key: StreamKey, settled_ns: int, open_spans: Iterable[tuple[int, int, int, str]]
    ) -> None:
        """After a frame: no veto of the stream starts before ``settled_ns`` any more, and ``open_spans``
        (lane, start, end so far, reason) are going on."""
        lanes = self._streams.get(key)
        if lanes is None:
            return
        by_lane: dict[int, list[tuple[int, int, str]]] = {}
        for lane, start, end, reason in open_spans:
            if lane < len(lanes.sources):
                by_lane.setdefault(lane, []).append((start, end, reason))
        for lane in lanes.open_lanes | set(by_lane):
            self.gate.open(lanes.sources[lane], by_lane.get(lane, []))
        lanes.open_lanes = set(by_lane)
        for source in lanes.sources:
            self.gate.settle(source, settled_ns)

    def kind(self, key: StreamKey) -> StreamKind | None:
        lanes = self._streams.get(key)
        return None if lanes is None else lanes.kind

    # ---- scopes ----------------------------------------------------------------------------------
    def _device_segments(self, user: str, device: str) -> set[str]:
        configured = self.segment_map(device)
        if configured:
            return {configured}
        found = (segment_of(m) for m in self._device_muscles.get((user, device), ()))
        return {s for s in found if s}

    def _lane_scopes(self, user: str, device: str, kind: StreamKind, muscle: str | None) -> list[Scope]:
        if kind == "emg":
            return [(user, "muscle", muscle)] if muscle is not None else []
        scopes: list[Scope] = [(user, "device", device)]
        scopes += [(user, "segment", s) for s in sorted(self._device_segments(user, device))]
        return scopes

    def _add_muscle(self, user: str, device: str, muscle: str) -> None:
        """``device`` watches ``muscle``: the muscle is judged by the device too, and the device's movement
        streams now also veto the muscle's segment."""
        muscles = self._device_muscles.setdefault((user, device), set())
        if muscle in muscles:
            return
        muscles.add(muscle)
        segments = self._device_segments(user, device)
        for (u, d, _), lanes in self._streams.items():
            if (u, d) == (user, device) and lanes.kind != "emg":
                for source in lanes.sources:
                    self.gate.watch(source, [(user, "segment", s) for s in segments])
        self._muscle_scopes.pop((user, muscle), None)

    def scopes(self, user: str, muscle: str) -> frozenset[Scope]:
        """What a muscle is judged by: its own scope, each device that watches it, and their segments."""
        cached = self._muscle_scopes.get((user, muscle))
        if cached is not None:
            return cached
        scopes: set[Scope] = {(user, "muscle", muscle)}
        for (u, device), muscles in self._device_muscles.items():
            if u == user and muscle in muscles:
                scopes.add((user, "device", device))
                configured = self.segment_map(device)
                segment = configured or segment_of(muscle)
                if segment:
                    scopes.add((user, "segment", segment))
        frozen = frozenset(scopes)
        self._muscle_scopes[(user, muscle)] = frozen
        return frozen

    # ---- questions -------------------------------------------------------------------------------
    def ready(self, user: str, muscle: str, end_ns: int) -> bool:
        return self.gate.ready(self.scopes(user, muscle), end_ns)

    def vetoed_ns(self, user: str, muscle: str, start_ns: int, end_ns: int) -> int:
        return self.gate.vetoed_ns(self.scopes(user, muscle), start_ns, end_ns)

    # ---- events ----------------------------------------------------------------------------------
    def hold(self, events: Iterable[TwitchEvent]) -> None:
        self._held.extend((e, None) for e in events)

    def release(self, everything: bool = False) -> list[TwitchEvent]:
        """Events to write now (all, finally judged, with ``everything``). A twitch comes out as soon as
        the gate can judge it provisionally (``before_ns`` past its end known): as ``during_movement``
        with the reason if its muscle was not assessable, else as a twitch, kept until the whole guard
        ahead is known — then a contraction that began right after it re-writes it (the same event, same
        key) as ``during_movement``. Other kinds pass at once. Twitches finally judged at rest are handed
        out by ``counted``."""
        out: list[TwitchEvent] = []
        keep: list[tuple[TwitchEvent, Blocker | None]] = []
        gate = self.gate
        for e, blocker in self._held:
            if not e.kind.is_twitch:
                out.append(e)
                continue
            if not everything and blocker is not None and gate.blocks(blocker):
                keep.append((e, blocker))  # not provisionally ready, so not finally either
                continue
            scopes = self.scopes(e.user, e.muscle)
            final = everything or gate.ready(scopes, e.end_ns)
            if not final:
                blocker = gate.blocker(scopes, e.end_ns, provisional=True)
                if blocker is not None:
                    keep.append((e, blocker))
                    continue
            judged = gate.judge(e, scopes)
            out.append(judged)
            if judged.kind.is_twitch:
                if final:
                    self._counted.append(judged)
                else:
                    self._provisional.append((judged, None))
        self._held = keep
        out += self._confirm(everything)
        return out

    def _confirm(self, everything: bool) -> list[TwitchEvent]:
        """Provisional twitches whose guard ahead is known now: confirmed (counted), or re-written."""
        out: list[TwitchEvent] = []
        keep: list[tuple[TwitchEvent, Blocker | None]] = []
        gate = self.gate
        for e, blocker in self._provisional:
            if not everything and blocker is not None and gate.blocks(blocker):
                keep.append((e, blocker))
                continue
            scopes = self.scopes(e.user, e.muscle)
            if not everything:
                blocker = gate.blocker(scopes, e.end_ns)
                if blocker is not None:
                    keep.append((e, blocker))
                    continue
            judged = gate.judge(e, scopes)
            if judged.kind.is_twitch:
                self._counted.append(judged)
            else:
                out.append(judged)
                self.retracted += 1
        self._provisional = keep
        return out

    def counted(self) -> list[TwitchEvent]:
        """Twitches finally judged at rest since last asked: what a minute's count may include."""
        out, self._counted = self._counted, []
        return out

    @property
    def held(self) -> int:
        return len(self._held) + len(self._provisional)

    def oldest_held_ns(self) -> int | None:
        return min((e.start_ns for e in self.held_events()), default=None)

    def held_events(self) -> Iterator[TwitchEvent]:
        """Every event waiting for the gate, and every provisional twitch not judged finally."""
        for e, _ in (*self._held, *self._provisional):
            yield e
