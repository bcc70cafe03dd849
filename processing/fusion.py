"""Fusion: one muscle watched by several streams (EMG and accelerometer) reports one event per twitch.

A muscle can be covered by an EMG channel and an accelerometer on the same limb, or by several EMG
channels mapped to one muscle. Each stream's detector reports the twitch on its own; counted twice, the
dashboard's rate would double. ``Fuser`` keeps a short per-(user, muscle) buffer of events:

* **Co-occurrence.** Two twitch events (fasciculation or myoclonic jerk) of one muscle from different
  streams or channels co-occur when the accelerometer event starts between ``lead_ns`` before the EMG
  event's start and ``lag_ns`` after its end — or, for two channels of one kind, when they start within
  ``lead_ns`` of each other. The mechanical response follows the electrical
  one by the electromechanical delay (EMG→mechanomyogram onset ≈ 20 ms, Begovic et al. 2014) and a
  twitch's movement outlasts its potential, so an accelerometer event may start up to ``lag_ns`` =
  100 ms after the EMG event ends; ``lead_ns`` = 50 ms allows for clock skew between two wearables and
  for the accelerometer's timing resolution at low rates (40 ms a sample at 25 Hz). A design choice, not
  a measured optimum.
* **Merge.** Co-occurring events become one: the span of both, the EMG event's kind, amplitude, unit,
  device and channel (EMG says fasciculation or jerk more precisely; µV are comparable across users), the
  streams joined with ``+``. Confidence rises: ``1 − (1 − c₁)(1 − c₂)`` when an EMG and an accelerometer
  event agree (independent evidence), the larger of the two when two channels of one kind agree (they see
  the same potential). Each event merges at most once.
* **Hold.** An event waits until every *other* stream of its muscle has processed data up to
  ``end + lag_ns + partner_latency_ns`` (its detector has then released any partner), or until its own
  stream is ``max_wait_ns`` past its end (a stalled partner never blocks). Events leave in start order.
  A muscle with a single stream holds nothing: its events pass straight through.

Sustained activity and artifacts pass through unmerged: they are not counted, and an accelerometer's
movement gating already acts within its own stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

from twitchwatch.processing.core import SignalKind
from twitchwatch.processing.events import TwitchEvent

StreamId = tuple[str, str, str]  # (user, device, stream)
MuscleKey = tuple[str, str]  # (user, muscle)


@dataclass(frozen=True)
class FusionParams:
    lead_ns: int = 50_000_000
    lag_ns: int = 100_000_000
    partner_latency_ns: int = 300_000_000  # slowest twitch release of a partner's detector (acc at 25 Hz)
    max_wait_ns: int = 2_000_000_000


@dataclass
class _Held:
    event: TwitchEvent
    origin: StreamId
    kind: SignalKind
    merged: bool = False


@dataclass
class _Muscle:
    index: int  # the order muscles were first seen in: the order their events leave
    streams: dict[StreamId, SignalKind] = field(default_factory=dict)
    held: list[_Held] = field(default_factory=list)


class Fuser:
    """Per-(user, muscle) buffers of events from every stream that covers the muscle."""

    def __init__(self, params: FusionParams | None = None) -> None:
        self.params = params or FusionParams()
        self._muscles: dict[MuscleKey, _Muscle] = {}
        # Muscles holding events: the only ones ``release`` visits (a frame of one stream need not look
        # at every muscle of every user).
        self._busy: set[MuscleKey] = set()
        self._watermark: dict[StreamId, int] = {}
        self.merged = 0  # events that found a partner

    def register(self, muscle: MuscleKey, stream: StreamId, kind: SignalKind) -> None:
        """``stream`` covers ``muscle`` (idempotent)."""
        self._muscle(muscle).streams[stream] = kind

    def advance(self, stream: StreamId, t_ns: int) -> None:
        """``stream`` has processed data up to ``t_ns`` (device time)."""
        if t_ns > self._watermark.get(stream, -(2**62)):
            self._watermark[stream] = t_ns

    def add(self, stream: StreamId, kind: SignalKind, event: TwitchEvent) -> None:
        key = (event.user, event.muscle)
        m = self._muscle(key)
        m.streams.setdefault(stream, kind)
        new = _Held(event, stream, kind)
        if event.kind.is_twitch:
            for h in m.held:
                if self._pairs(h, new):
                    h.event = self._merge(h, new)
                    h.merged = True
                    self.merged += 1
                    return
        m.held.append(new)
        self._busy.add(key)

    def drop(self, user: str, device: str) -> None:
        """Forget the device's streams and the events of it still held (another worker has their frames
        now: ``Worker.detach_streams``)."""
        for m in self._muscles.values():
            m.held = [h for h in m.held if (h.event.user, h.event.device) != (user, device)]
            for stream in [s for s in m.streams if s[:2] == (user, device)]:
                del m.streams[stream]
        for stream in [s for s in self._watermark if s[:2] == (user, device)]:
            del self._watermark[stream]

    def _muscle(self, key: MuscleKey) -> _Muscle:
        m = self._muscles.get(key)
        if m is None:
            m = self._muscles[key] = _Muscle(len(self._muscles))
        return m

    def release(self) -> list[TwitchEvent]:
        """Events no partner can join any more, in start order per muscle, muscles in the order first seen."""
        if not self._busy:
            return []
        out: list[TwitchEvent] = []
        for key in sorted(self._busy, key=lambda k: self._muscles[k].index):
            m = self._muscles[key]
            out.extend(self._ready(m, everything=False))
            if not m.held:
                self._busy.discard(key)
        return out

    def held_events(self) -> Iterator[TwitchEvent]:
        """Every event still waiting for a partner."""
        for k in self._busy:
            for h in self._muscles[k].held:
                yield h.event

    def flush(self) -> list[TwitchEvent]:
        """Everything held (shutdown)."""
        out: list[TwitchEvent] = []
        for m in self._muscles.values():
            out.extend(self._ready(m, everything=True))
        self._busy.clear()
        return out

    def _pairs(self, h: _Held, new: _Held) -> bool:
        a, b = h.event, new.event
        if h.merged or not a.kind.is_twitch or (h.origin, a.channel) == (new.origin, b.channel):
            return False
        p = self.params
        if h.kind == new.kind:  # two channels of one kind see one potential at the same time
            return abs(a.start_ns - b.start_ns) <= p.lead_ns
        emg, acc = (a, b) if h.kind == "emg" else (b, a)
        return emg.start_ns - p.lead_ns <= acc.start_ns <= emg.end_ns + p.lag_ns

    def _merge(self, h: _Held, new: _Held) -> TwitchEvent:
        emg, other = (h, new) if h.kind == "emg" or new.kind != "emg" else (new, h)
        a, b = emg.event, other.event
        if h.kind != new.kind:  # independent evidence: EMG and movement agree
            confidence = 1.0 - (1.0 - a.confidence) * (1.0 - b.confidence)
        else:  # two channels of one kind seeing the same potential
            confidence = max(a.confidence, b.confidence)
        streams = a.stream if a.stream == b.stream else f"{a.stream}+{b.stream}"
        return dataclasses.replace(
            a,
            start_ns=min(a.start_ns, b.start_ns),
            end_ns=max(a.end_ns, b.end_ns),
            stream=streams,
            confidence=round(min(confidence, 0.99), 3),
        )

    def _ready(self, m: _Muscle, everything: bool) -> list[TwitchEvent]:
        m.held.sort(key=lambda h: h.event.start_ns)
        n = 0
        for h in m.held:
            if not (everything or self._final(m, h)):
                break
            n += 1
        done, m.held = m.held[:n], m.held[n:]
        return [h.event for h in done]

    def _final(self, m: _Muscle, h: _Held) -> bool:
        if h.merged or not h.event.kind.is_twitch:
            return True
        p, end = self.params, h.event.end_ns
        if self._watermark.get(h.origin, -(2**62)) >= end + p.max_wait_ns:
            return True  # a partner that has not caught up by now is stalled
        horizon = end + p.lag_ns + p.partner_latency_ns
        return all(self._watermark.get(s, -(2**62)) >= horizon for s in m.streams if s != h.origin)
