"""Recording files streamed through the twitch detectors, chunk by chunk (``twitchwatch detect``).

The file is read by ``collector.recordings`` (any format it reads: EDF/BDF(+), CSV, the project's HDF5
sessions): a :class:`~collector.recordings.Recording` describes each channel (label, dimension, rate, inferred
signal type and muscle) and the reader yields about a second of signal at a time per stream. Here
:func:`plan_detection` decides which channels go through which detector (``--channels``, ``--signal``,
``--muscle``) and :class:`DetectionRun` runs them.

A recording's streams are one device, and its detectors run through the rest gate (``processing.gating``):
its accelerometer and gyroscope movement vetoes every muscle of the file, each EMG lane's own activity its
muscle; a twitch found while vetoed comes out as ``during_movement`` with the reason, and each twitch lane
counts the seconds it was assessable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Final

from twitchwatch.collector.recordings import (
    Channel,
    Chunk,
    Group,
    Lane,
    Recording,
    RecordingError,
    force_signal,
    group_channels,
)
from twitchwatch.collector.topics import check_segment
from twitchwatch.processing.detector import SignalKind, StreamingDetector
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.gating import Detector, GatedRun, GateStream, Judged, make_detector


# ---- what runs: detector groups ----------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    recording: Recording
    groups: tuple[Group, ...]
    skipped: tuple[Channel, ...]  # selected but not detectable, each with its note
    unselected: int = 0


def plan_detection(
    recording: Recording,
    select: Sequence[str] | None = None,
    signal: SignalKind | None = None,
    muscle: str | None = None,
) -> Plan:
    """Which channels go through which detector. ``select`` holds labels or indices (``--channels``),
    ``signal`` overrides the inferred type (``--signal``), ``muscle`` names the muscle of every selected
    channel (``--muscle``)."""
    if muscle is not None:
        check_segment(muscle, "muscle")
    chosen = _select(recording, select) if select else list(recording.channels)
    if signal is not None:
        chosen = [force_signal(c, signal, named_by_user=bool(select)) for c in chosen]
    if muscle is not None:
        chosen = [replace(c, muscle=muscle) if c.signal else c for c in chosen]
    used = [c for c in chosen if c.signal is not None]
    skipped = tuple(c for c in chosen if c.signal is None)
    if not used:
        why = "; ".join(f"{c.display}: {c.note}" for c in skipped) or "the file has no signals"
        raise RecordingError(
            f"{recording.path}: no EMG or accelerometer channel to run a detector on ({why})"
        )
    return Plan(recording, group_channels(used), skipped, len(recording.channels) - len(chosen))


def _select(recording: Recording, select: Sequence[str]) -> list[Channel]:
    by_label = {c.label: c for c in recording.channels}
    by_index = {c.index: c for c in recording.channels}
    out: list[Channel] = []
    for name in select:
        ch = by_label.get(name) or by_label.get(name.strip())
        if ch is None and name.strip().isdigit():
            ch = by_index.get(int(name))
        if ch is None:
            known = ", ".join(f"{c.index}={c.label!r}" for c in recording.channels)
            raise RecordingError(f"{recording.path}: no channel {name!r} (channels: {known})")
        if ch not in out:
            out.append(ch)
    return sorted(out, key=lambda c: c.index)


# ---- detection over a recording ----------------------------------------------------------------------
@dataclass(frozen=True)
class RecordingEvent:
    """A detected event, times in seconds from the file's start. ``reason``: why a twitch-shaped event does
    not count (``during_movement``: what it looked like and what vetoed it), else ""."""

    start: float
    end: float
    kind: EventKind
    channel: str
    muscle: str
    amplitude: float
    unit: str
    confidence: float
    dominant_hz: float | None
    reason: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1e3

    def to_json_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind.value,
            "channel": self.channel,
            "muscle": self.muscle,
            "amplitude": self.amplitude,
            "unit": self.unit,
            "duration_ms": round(self.duration_ms, 3),
            "confidence": self.confidence,
            "dominant_hz": self.dominant_hz,
            "reason": self.reason,
        }


@dataclass
class LaneSummary:
    lane: Lane
    samples: int = 0
    counts: Counter[EventKind] = field(default_factory=Counter)
    assessable_s: float | None = None  # after finish(), for twitch lanes when the gate ran
    # After finish(): the mains interference its detector was taking out at the end (EMG): the mains
    # frequency followed (Hz) and the hum's RMS (the signal's unit, band-passed); None where none was.
    mains: tuple[float, float] | None = None

    @property
    def seconds(self) -> float:
        return self.samples / self.lane.rate

    @property
    def twitches(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind.is_twitch)

    @property
    def per_minute(self) -> float:
        return self.twitches * 60.0 / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_assessable_minute(self) -> float | None:
        """Twitches per minute the lane could be assessed (at rest and still): the rate that means
        something; None where it is not known (no gate, a gyroscope) or less than ``MIN_RATE_S`` was
        assessable — two twitches in 5.5 s at rest read as 21.7 a minute."""
        if self.assessable_s is None or self.assessable_s < MIN_RATE_S:
            return None
        return self.twitches * 60.0 / self.assessable_s


DEVICE: Final = "recording"  # a recording's streams are one device
# Assessable time below which a lane's rate at rest is not given: a handful of twitches in a few seconds is no
# rate (at 20 a minute, 30 s holds about 10; their count's Poisson spread is then ±30 %).
MIN_RATE_S: Final = 30.0


class DetectionRun:
    """The worker's streaming detectors over a plan's groups, through the rest gate (``gate=False``: the
    detectors alone): feed chunks, get events in file time (the recording's own ``seconds`` clock)."""

    def __init__(self, plan: Plan, gate: bool = True) -> None:
        self.plan = plan
        self.gated = gate
        detectors: list[Detector] = []
        for g in plan.groups:
            try:
                detectors.append(make_detector(g.signal, g.rate, len(g.channels)))
            except ValueError as exc:
                names = ", ".join(repr(c.label) for c in g.channels)
                raise RecordingError(
                    f"{plan.recording.path}: the {g.signal.upper()} detector cannot run at {g.rate:g} Hz "
                    f"({names}): {exc}"
                ) from None
        streams = [_gate_stream(gi, g) for gi, g in enumerate(plan.groups)]
        clocks = [partial(plan.recording.seconds, g) for g in plan.groups]
        self._detectors = detectors
        self._run = GatedRun(streams, clocks=clocks, detectors=detectors, judge=gate)
        self.summaries = [[LaneSummary(lane) for lane in g.lanes] for g in plan.groups]

    def feed(self, chunk: Chunk) -> list[RecordingEvent]:
        for s in self.summaries[chunk.group]:
            s.samples += chunk.data.shape[0]
        return self._events(self._run.feed(chunk.group, chunk.data))

    def finish(self) -> list[RecordingEvent]:
        out = self._events(self._run.finish())
        for det, group in zip(self._detectors, self.summaries, strict=True):
            if isinstance(det, StreamingDetector):
                for s, level in zip(group, det.mains, strict=True):
                    s.mains = level
        if self.gated:
            for gi, group in enumerate(self.summaries):
                for lane, s in enumerate(group):
                    if s.lane.twitches:
                        s.assessable_s = self._run.assessable_s(gi, lane)
        return out

    def _events(self, judged: list[Judged]) -> list[RecordingEvent]:
        out = []
        for j in judged:
            lane = self.plan.groups[j.stream].lanes[j.detection.lane]
            self.summaries[j.stream][j.detection.lane].counts[j.kind] += 1
            d = j.detection
            out.append(
                RecordingEvent(
                    round(j.start_s, 6),
                    round(j.end_s, 6),
                    j.kind,
                    lane.label,
                    lane.muscle,
                    round(float(d.peak), 6),
                    lane.unit,
                    d.confidence,
                    round(float(d.dominant_hz), 2) if lane.twitches else None,
                    j.reason,
                )
            )
        return sorted(out, key=lambda e: (e.start, e.channel))

    @property
    def lane_summaries(self) -> list[LaneSummary]:
        return [s for group in self.summaries for s in group]


def _gate_stream(gi: int, g: Group) -> GateStream:
    """A detector group as the gate sees it: one device; EMG lanes each their channel's muscle, a sensor
    its first channel's."""
    lanes = g.lanes
    twitch = lanes[0].twitches
    muscles = tuple(lane.muscle for lane in lanes) if twitch else ()
    return GateStream(
        f"group{gi}",
        g.signal,
        g.rate,
        len(g.channels),
        DEVICE,
        muscles,
        lane_labels=tuple(lane.label for lane in lanes),
    )
