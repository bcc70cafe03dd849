"""The detectors of one person's streams and the rest gate between them, for a run over recorded data.

``GatedRun`` is the chain the worker runs live, for streams known up front (a recording file, a benchmark):
each stream's detector (EMG and accelerometer: ``StreamingDetector``; gyroscope and orientation:
``MotionDetector``) reports what vetoes assessment to the gate (``processing/rest.py``), and every
twitch-class detection is held until the gate can judge it, then released as it counts — a twitch, or
``during_movement`` with the reason. Each twitch lane also accumulates the seconds it was assessable.

Which detections veto what (the scopes of ``processing/rest.py``):

- an EMG lane's ``sustained`` (voluntary activity) and ``artifact`` events veto its own muscle;
- an accelerometer's ``sustained`` (movement) and ``artifact`` (a jolt beyond 1 g, saturation) events, and
  a gyroscope's or orientation stream's movement, veto every muscle of the device (and the body segment,
  where one is given).

Reasons read "<what> on <stream>", the what being one of ``VETO_WHAT``; a judged twitch's reason is prefixed
with what it looked like ("fasciculation: movement on ACC thigh").

Times: each stream's sample indices map to seconds through its clock (default: index / rate) and to integer
ns for the gate. The run never goes stale (``stale_ns`` is for live wearables that drop out): a recording's
streams are all there, only interleaved in chunks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.signals import STREAM_KINDS, StreamKind
from twitchwatch.processing.core import Detection, FloatArray
from twitchwatch.processing.detector import StreamingDetector
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.motion import MOTION_KINDS, MotionDetection, MotionDetector
from twitchwatch.processing.rest import GateParams, RestGate, Scope, SourceId, scopes_of
from twitchwatch.processing.rest_streams import WARMING_UP

VETO_WHAT: dict[tuple[StreamKind, EventKind], str] = {
    ("emg", EventKind.SUSTAINED): "voluntary activity",
    ("emg", EventKind.ARTIFACT): "artifact",
    ("acc", EventKind.SUSTAINED): "movement",
    ("acc", EventKind.ARTIFACT): "jolt",
    ("gyro", EventKind.SUSTAINED): "rotation",
    ("orientation", EventKind.SUSTAINED): "rotation",
}
NEVER_STALE_NS = 2**64  # beyond any lag, even of a source that has not settled at all (at -2**62)
Clock = Callable[[npt.NDArray[np.int64]], FloatArray]


class Detector(Protocol):
    """What the chain needs of a detector (``StreamingDetector`` and ``MotionDetector`` have it)."""

    lanes: int

    @property
    def settled(self) -> int: ...

    def open_activity(self) -> list[tuple[int, int, int]]: ...

    def process(self, chunk: FloatArray) -> Sequence[Detection]: ...

    def finish(self) -> Sequence[Detection]: ...


def make_detector(kind: StreamKind, rate: float, channels: int) -> Detector:
    """The detector for a stream kind (raises ValueError for a rate or channel count it cannot take)."""
    if kind in MOTION_KINDS:
        return MotionDetector(kind, rate, channels)
    if kind in ("emg", "acc"):
        return StreamingDetector(kind, rate, channels)
    raise ValueError(f"no detector for a {kind!r} stream (known: {', '.join(STREAM_KINDS)})")


def veto_what(reason: str) -> str:
    """What vetoed, from a judged event's or a veto's reason ("movement", "rotation", …)."""
    body = reason.split(": ", 1)[-1]
    return body.split(" on ", 1)[0]


@dataclass(frozen=True)
class GateStream:
    """One stream as the chain sees it. ``muscles``: the muscle of each twitch lane (EMG: one per channel;
    accelerometer: one); empty for a gyroscope or orientation stream, which only vetoes."""

    label: str
    kind: StreamKind
    rate: float
    channels: int
    device: str
    muscles: tuple[str, ...] = ()
    segment: str | None = None
    lane_labels: tuple[str, ...] = ()  # per lane, for reasons (default: the stream label)

    def __post_init__(self) -> None:
        if self.kind not in STREAM_KINDS:
            raise ValueError(f"unknown stream kind {self.kind!r}")
        lanes = self.channels if self.kind == "emg" else 1
        if self.kind in MOTION_KINDS:
            if self.muscles:
                raise ValueError(
                    f"{self.label}: a {self.kind} stream has no twitch lanes to name muscles for"
                )
        elif len(self.muscles) != lanes:
            raise ValueError(f"{self.label}: {lanes} lane(s) but {len(self.muscles)} muscle(s)")

    @property
    def lanes(self) -> int:
        return self.channels if self.kind == "emg" else 1

    def lane_label(self, lane: int) -> str:
        return self.lane_labels[lane] if self.lane_labels else self.label


@dataclass(frozen=True)
class Judged:
    """A detection after the gate: its stream, its own kind, the kind it counts as and why."""

    stream: int
    detection: Detection
    kind: EventKind
    reason: str
    start_s: float
    end_s: float

    @property
    def rejected(self) -> bool:
        return self.kind is EventKind.DURING_MOVEMENT


@dataclass
class _Lane:
    """A twitch lane's gate scopes and its assessable-time bookkeeping (ns)."""

    stream: int
    lane: int
    scopes: tuple[Scope, ...]
    counted_ns: int = 0
    assessable_ns: int = 0


def warmup_samples(detector: object) -> int:
    """Samples a detector spends after a start learning what it needs (noise floor, gyro bias), during
    which it detects nothing: blind time for the rest gate, vetoed as such."""
    if isinstance(detector, StreamingDetector):
        return detector.warmup_samples
    if isinstance(detector, MotionDetector):
        return round(detector.params.warmup_s * detector.rate)
    return 0


def reach_back_samples(detector: object) -> int:
    """Samples before its settled point that a detector may still report a veto at (``StreamingDetector.
    reach_back_samples``: rhythmic bursting is known a few bursts after it began); 0 for the others."""
    return detector.reach_back_samples if isinstance(detector, StreamingDetector) else 0


class GatedRun:
    """Detectors over known streams, their vetoes through a rest gate, twitches judged as they settle."""

    def __init__(
        self,
        streams: Sequence[GateStream],
        params: GateParams | None = None,
        clocks: Sequence[Clock | None] | None = None,
        user: str = "me",
        detectors: Sequence[Detector] | None = None,
        judge: bool = True,
        provisional: bool = False,
    ) -> None:
        """``detectors``: one per stream, already made (default: ``make_detector``); ``judge=False``: every
        detection is released as the detector gave it, at once (the detectors alone, for comparison);
        ``provisional``: a twitch is judged as soon as the worker first writes it (``before_ns`` past its
        end known), not once the whole guard ahead of its muscle's activity is — for measuring latency;
        the verdicts are then the worker's first, before any re-write."""
        base = params or GateParams()
        self.params = dataclasses.replace(base, stale_ns=NEVER_STALE_NS)
        self.streams = tuple(streams)
        self.gate = RestGate(self.params)
        self.user = user
        self.judging = judge
        self.provisional = provisional
        if detectors is None:
            detectors = [make_detector(s.kind, s.rate, s.channels) for s in self.streams]
        if len(detectors) != len(self.streams):
            raise ValueError(f"{len(detectors)} detectors for {len(self.streams)} streams")
        self.detectors = list(detectors)
        self._clocks = list(clocks) if clocks is not None else [None] * len(self.streams)
        self._done = [0] * len(self.streams)  # samples fed per stream
        self._settled_ns = [0] * len(self.streams)
        self._sources: list[list[SourceId]] = []
        self._lanes: list[_Lane] = []
        self._held: list[Judged] = []
        for i, s in enumerate(self.streams):
            self._watch(i, s)

    # ---- feeding -----------------------------------------------------------------------------------
    def feed(self, stream: int, chunk: FloatArray) -> list[Judged]:
        """The next samples of one stream; returns what is judged now (any stream's held twitches too)."""
        self._done[stream] += int(chunk.shape[0])
        found = self.detectors[stream].process(chunk)
        self._report(stream, found)
        det = self.detectors[stream]
        self._open(stream, det.open_activity())
        self._settled_ns[stream] = self._ns(stream, det.settled)
        for sid in self._sources[stream]:
            self.gate.settle(sid, self._settled_ns[stream])
        return self._advance()

    def finish(self) -> list[Judged]:
        """End of every stream: the detectors' last events, then everything held, judged."""
        for i, det in enumerate(self.detectors):
            self._report(i, det.finish())
            self._open(i, [])
        for sources in self._sources:
            for sid in sources:
                self.gate.forget(sid)
        out = self._advance()
        return sorted(out, key=lambda j: (j.start_s, j.stream))

    def assessable_s(self, stream: int, lane: int) -> float:
        """Seconds of the lane judged assessable so far (complete after ``finish``)."""
        for ln in self._lanes:
            if (ln.stream, ln.lane) == (stream, lane):
                return ln.assessable_ns / 1e9
        raise KeyError(f"stream {stream} lane {lane} is not a twitch lane")

    def fed_s(self, stream: int) -> float:
        return self._done[stream] / self.streams[stream].rate

    # ---- internals ---------------------------------------------------------------------------------
    def _watch(self, i: int, s: GateStream) -> None:
        u = self.user
        # A veto reported up to this long behind the stream's settled point (twice the nominal time:
        # a recording's clock may run slower than its rate says, and offline waiting costs nothing).
        reach = reach_back_samples(self.detectors[i])
        reach_ns = 2 * math.ceil(reach * 1e9 / s.rate) if reach else 0
        if s.kind == "emg":
            sources = [(u, s.device, f"{s.label}#{k}") for k in range(s.channels)]
            for sid, muscle in zip(sources, s.muscles, strict=True):
                self.gate.watch(sid, [(u, "muscle", muscle)], reach_ns)
        else:
            sources = [(u, s.device, s.label)]
            device: list[Scope] = [(u, "device", s.device)]
            if s.segment:
                device.append((u, "segment", s.segment))
            self.gate.watch(sources[0], device, reach_ns)
        self._sources.append(sources)
        # Blind while it learns, as in the worker: the assessable time starts after the warm-up (it was
        # counted from the stream's first sample — a 0.8-s file "assessable 0.8 s" with nothing detectable).
        warm = warmup_samples(self.detectors[i])
        if warm:
            for sid in sources:
                self.gate.veto(sid, self._ns(i, 0), self._ns(i, warm), WARMING_UP, guard=False)
        for lane, muscle in enumerate(s.muscles):
            self._lanes.append(_Lane(i, lane, scopes_of(u, muscle, s.device, s.segment)))

    def _ns(self, stream: int, index: int) -> int:
        return int(self._seconds(stream, np.array([index], dtype=np.int64))[0] * 1e9 + 0.5)

    def _seconds(self, stream: int, index: npt.NDArray[np.int64]) -> FloatArray:
        clock = self._clocks[stream]
        if clock is None:
            return np.asarray(index / self.streams[stream].rate, dtype=np.float64)
        return clock(index)

    def _source(self, stream: int, lane: int) -> SourceId:
        sources = self._sources[stream]
        return sources[lane] if len(sources) > 1 else sources[0]

    def _report(self, i: int, found: Sequence[Detection]) -> None:
        if not found:
            return
        s = self.streams[i]
        bounds = np.array([(d.start, max(d.end - 1, d.start)) for d in found], dtype=np.int64)
        secs = self._seconds(i, bounds.ravel()).reshape(bounds.shape)
        secs[:, 1] += 1.0 / s.rate  # an end is exclusive: the last sample's time plus one period
        for d, (a, b) in zip(found, secs, strict=True):
            what = VETO_WHAT.get((s.kind, d.kind)) if d.vetoes else None
            if what is not None:
                reason = self._reason(what, i, d)
                if d.veto_span is None:
                    self.gate.veto(self._source(i, d.lane), int(a * 1e9 + 0.5), int(b * 1e9 + 0.5), reason)
                else:  # exactly where the detector saw activity (its context and hold)
                    na, nb = self._ns(i, d.veto_span[0]), self._ns(i, d.veto_span[1])
                    self.gate.veto(self._source(i, d.lane), na, nb, reason, guard=False)
            self._held.append(Judged(i, d, d.kind, "", float(a), float(b)))

    def _reason(self, what: str, i: int, d: Detection) -> str:
        s = self.streams[i]
        text = f"{what} on {s.lane_label(d.lane)}"
        if isinstance(d, MotionDetection):
            text += f" (up to {d.peak:.0f} °/s for {(d.end - d.start) / s.rate:.1f} s)"
        return text

    def _open(self, i: int, spans: list[tuple[int, int, int]]) -> None:
        s = self.streams[i]
        what = VETO_WHAT.get((s.kind, EventKind.SUSTAINED), "activity")
        by_source: dict[SourceId, list[tuple[int, int, str]]] = {sid: [] for sid in self._sources[i]}
        for lane, a, b in spans:
            na, nb = self._ns(i, a), self._ns(i, b)
            by_source[self._source(i, lane)].append((na, nb, f"{what} on {s.lane_label(lane)}"))
        for sid, open_spans in by_source.items():
            self.gate.open(sid, open_spans)

    def _advance(self) -> list[Judged]:
        out, keep = [], []
        for j in self._held:
            if not j.kind.is_twitch or not self.judging:
                out.append(j)
                continue
            scopes = self._scopes(j)
            end_ns = int(j.end_s * 1e9 + 0.5)
            if not self.gate.ready(scopes, end_ns, provisional=self.provisional):
                keep.append(j)
                continue
            v = self.gate.first_veto(scopes, int(j.start_s * 1e9 + 0.5), end_ns)
            if v is None:
                out.append(j)
            else:
                reason = v.why(j.kind.value, end_ns)
                out.append(
                    Judged(j.stream, j.detection, EventKind.DURING_MOVEMENT, reason, j.start_s, j.end_s)
                )
        self._held = keep
        self._count()
        return out

    def _scopes(self, j: Judged) -> tuple[Scope, ...]:
        for ln in self._lanes:
            if ln.stream == j.stream and ln.lane == j.detection.lane:
                return ln.scopes
        raise KeyError(f"stream {j.stream} lane {j.detection.lane} has no twitch lane")  # pragma: no cover

    def _count(self) -> None:
        """Assessable time of each twitch lane, up to where the gate is settled for its scopes (and the
        lane's own stream has data); then vetoes nothing will ask about again are dropped."""
        for ln in self._lanes:
            upto = min(self.gate.horizon(ln.scopes), self._ns(ln.stream, self._done[ln.stream]))
            if upto > ln.counted_ns:
                span = upto - ln.counted_ns
                ln.assessable_ns += span - self.gate.vetoed_ns(ln.scopes, ln.counted_ns, upto)
                ln.counted_ns = upto
        floor = min(
            [ln.counted_ns for ln in self._lanes]
            + [int(j.start_s * 1e9) for j in self._held]
            + [min(self._settled_ns, default=0)]
        )
        self.gate.prune(floor)
