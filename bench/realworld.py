"""Twitch-class events in everyday recordings, before and after the rest gate (``bench.accuracy`` part (e)).

Every capture of ``bench.data.captures`` (the older shared recordings and everything found under
``../shared/data/realworld``) runs through the full chain the worker runs — each stream's detector, the rest
gate between them (``processing.gating.GatedRun``) — fed in ``CHUNK_S`` pieces, streams interleaved as
frames reach the worker. A capture's streams belong to the devices its format names (one device per file,
except where sensors are separate wearables, e.g. Daphnet's ankle, thigh and trunk sensors).

Per capture and lane type (EMG lane: a channel; accelerometer lane: one sensor's three axes):

- **lane-minutes of activity**: the streams' own detector-independent segmentation (``bench.data``:
  EMG envelope rule, accelerometer movement-band rule, or the older recordings' force/labels), × lanes;
- **counted**: twitch-class events (fasciculation, myoclonic jerk) that still count after the gate;
  **before**: the detector's twitch-class events before the gate; each per lane-minute of activity (events
  that start inside activity) and per lane-minute of the whole recording (all events);
- **rest**: counted events that start inside the stream's rest spans (after ``WARMUP_S``), per lane-minute
  of that rest — nothing is injected here, so on a relaxed muscle these are the recording's own
  twitch-class events, which a person would see counted;
- **rejected**: events the gate turned into ``during_movement``, by what vetoed them;
- **assessable**: the fraction of lane time the gate judged assessable.

No recording has labelled twitches: every twitch-class event here is a candidate false alarm. Targets:
≤ ``TARGET_PER_MIN`` counted events per lane-minute of activity, EMG and accelerometer alike; ≤
``REST_TARGET_PER_MIN`` per lane-minute of rest on every surface-EMG recording with rest (a healthy person at
rest twitches a few times a minute or less).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench.data import Capture
from bench.formats import Stream
from bench.scoring import span_seconds, within_mask
from twitchwatch.processing.gating import GatedRun, GateStream, Judged, veto_what
from twitchwatch.processing.rest import GateParams

TARGET_PER_MIN = 0.3
REST_TARGET_PER_MIN = 2.0
CHUNK_S = 0.05  # the worker's frames: ≤ 50 ms
WARMUP_S = 2.0  # rest before this is not scored: the detectors learn their noise there (as in part (b))


@dataclass
class Tally:
    """Counts of one lane type over one or more captures."""

    lanes: int = 0
    lane_s: float = 0.0
    active_lane_s: float = 0.0
    assessable_s: float = 0.0
    before_active: int = 0
    counted_active: int = 0
    before: int = 0
    counted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rest_lane_s: float = 0.0
    counted_rest: int = 0

    def add(self, other: Tally) -> Tally:
        return Tally(
            self.lanes + other.lanes,
            self.lane_s + other.lane_s,
            self.active_lane_s + other.active_lane_s,
            self.assessable_s + other.assessable_s,
            self.before_active + other.before_active,
            self.counted_active + other.counted_active,
            self.before + other.before,
            self.counted + other.counted,
            self.rejected + other.rejected,
            self.rest_lane_s + other.rest_lane_s,
            self.counted_rest + other.counted_rest,
        )

    @property
    def active_min(self) -> float:
        return self.active_lane_s / 60.0

    @property
    def lane_min(self) -> float:
        return self.lane_s / 60.0

    @staticmethod
    def rate(n: int, minutes: float) -> float:
        return n / minutes if minutes > 0 else float("nan")

    @property
    def counted_per_active_min(self) -> float:
        return self.rate(self.counted_active, self.active_min)

    @property
    def before_per_active_min(self) -> float:
        return self.rate(self.before_active, self.active_min)

    @property
    def rest_min(self) -> float:
        return self.rest_lane_s / 60.0

    @property
    def counted_per_rest_min(self) -> float:
        return self.rate(self.counted_rest, self.rest_min)

    @property
    def assessable(self) -> float:
        return self.assessable_s / self.lane_s if self.lane_s else float("nan")


def lane_type(stream: Stream, capture: Capture) -> str:
    if stream.kind == "acc":
        return "accelerometer"
    return "surface EMG" if capture.surface else "needle EMG"


def gate_streams(capture: Capture) -> list[GateStream]:
    out = []
    for s in capture.streams:
        if s.kind == "emg":
            muscles: tuple[str, ...] = tuple(f"{s.label}#{k}" for k in range(s.lanes))
        elif s.kind == "acc":
            muscles = (s.label,)
        else:
            muscles = ()
        out.append(GateStream(s.label, s.kind, s.rate, int(s.x.shape[1]), s.device, muscles))
    return out


def run_chain(
    streams: Sequence[GateStream],
    signals: Sequence[npt.NDArray[np.float64]],
    params: GateParams | None = None,
    chunk_s: float = CHUNK_S,
) -> tuple[list[Judged], GatedRun]:
    """The streams through detectors and gate, interleaved in ``chunk_s`` pieces (each stream's samples up
    to the same signal time before the next piece)."""
    arrays = [np.asarray(x, dtype=np.float64) for x in signals]
    run = GatedRun(streams, params)
    out: list[Judged] = []
    pos = [0] * len(arrays)
    step = 0
    while any(p < x.shape[0] for p, x in zip(pos, arrays, strict=True)):
        step += 1
        for i, (x, s) in enumerate(zip(arrays, streams, strict=True)):
            n = min(round(step * chunk_s * s.rate), x.shape[0])
            if n > pos[i]:
                out += run.feed(i, x[pos[i] : n])
                pos[i] = n
    out += run.finish()
    return out, run


def assess(capture: Capture, params: GateParams | None = None) -> dict[str, Tally]:
    """One capture through the chain: a tally per lane type."""
    streams = gate_streams(capture)
    judged, run = run_chain(streams, [s.x for s in capture.streams], params)
    out: dict[str, Tally] = {}
    for i, s in enumerate(capture.streams):
        if not streams[i].muscles:
            continue
        mine = [j for j in judged if j.stream == i and j.detection.kind.is_twitch]
        inside = (
            within_mask([j.start_s for j in mine], s.active) if mine and s.active else [False] * len(mine)
        )
        rest = scored_rest(s.rest)
        at_rest = within_mask([j.start_s for j in mine], rest) if mine and rest else [False] * len(mine)
        t = Tally(
            lanes=s.lanes,
            lane_s=s.duration_s * s.lanes,
            active_lane_s=span_seconds(s.active) * s.lanes,
            assessable_s=sum(run.assessable_s(i, k) for k in range(s.lanes)),
            before=len(mine),
            counted=sum(1 for j in mine if not j.rejected),
            before_active=int(sum(inside)),
            counted_active=sum(1 for j, a in zip(mine, inside, strict=True) if a and not j.rejected),
            rejected=Counter(veto_what(j.reason) for j in mine if j.rejected),
            rest_lane_s=span_seconds(rest) * s.lanes,
            counted_rest=sum(1 for j, r in zip(mine, at_rest, strict=True) if r and not j.rejected),
        )
        key = lane_type(s, capture)
        out[key] = out[key].add(t) if key in out else t
    return out


def scored_rest(rest: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A stream's rest spans from ``WARMUP_S`` on."""
    return [(max(a, WARMUP_S), b) for a, b in rest if b > WARMUP_S]


def assess_all(captures: Sequence[Capture], params: GateParams | None = None) -> dict[str, dict[str, Tally]]:
    """capture name → lane type → tally."""
    return {c.name: assess(c, params) for c in captures}


def totals(res: dict[str, dict[str, Tally]]) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for by in res.values():
        for key, t in by.items():
            out[key] = out[key].add(t) if key in out else t
    return out


def _cell(v: float) -> str:
    return f"{'—':>6}" if v != v else f"{v:>6.2f}"


def _reasons(c: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in c.most_common()) or "—"


def print_table(res: dict[str, dict[str, Tally]]) -> None:
    print(
        "\n(e) everyday recordings through detector + rest gate: twitch-class events per lane-minute "
        "(counted after the gate / before it)"
    )
    print(
        "    activity: EMG envelope rule, accelerometer movement-band rule (≥ 0.02 g RMS in 0.25–20 Hz), or "
        "the recording's own force/labels; 'whole' divides every event by the whole recording; 'rest' counts "
        f"the events in the rest spans (from {WARMUP_S:g} s on) per lane-minute of rest"
    )
    head = (
        f"{'recording':>58} {'lanes':>5} {'type':>13} {'lane-min':>8} {'act-min':>7} "
        f"{'act: cnt':>8} {'before':>6} {'whole: cnt':>10} {'before':>6} {'rest-min':>8} {'rest: cnt':>9} "
        f"{'assess':>6}  rejected by"
    )
    print(head)
    for name, by in res.items():
        for key, t in by.items():
            print(_row(name, key, t))
    print("    totals per lane type:")
    for key, t in totals(res).items():
        print(_row(f"all {key}", key, t))


def _row(name: str, key: str, t: Tally) -> str:
    return (
        f"{name[-58:]:>58} {t.lanes:>5} {key:>13} {t.lane_min:>8.2f} {t.active_min:>7.2f} "
        f"{_cell(t.counted_per_active_min):>8} {_cell(t.before_per_active_min)} "
        f"{_cell(Tally.rate(t.counted, t.lane_min)):>10} {_cell(Tally.rate(t.before, t.lane_min))} "
        f"{t.rest_min:>8.2f} {_cell(t.counted_per_rest_min):>9} "
        f"{t.assessable:>6.0%}  {_reasons(t.rejected)}"
    )
