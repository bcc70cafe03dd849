"""Event-level scoring: detected against true events, one-to-one, per class; false twitches per minute.

Events are intervals in seconds on a lane (an EMG channel, or an accelerometer's one vector-magnitude lane).

Matching rule (the same for twitchwatch and for the offline tools it is compared with):

- a detection *can* match a true event when both are on the same lane and the detection overlaps the true
  interval widened by ``tolerance_s`` on each side (default ``TOLERANCE_S`` = 50 ms: envelope smoothing and
  hysteresis move a detected start or end by tens of ms; events of one class are never closer than that);
- matching is one-to-one: a detection that spans two true events counts for one of them, the other is missed;
  two detections on one true event give one match and one false positive;
- among the possible matches, a maximum number is taken (greedy over true events in order of their widened
  end, each taking the compatible unmatched detection that ends first: optimal for intervals).

Per class, only a detection of that class matches a true event of that class. The pseudo-class ``TWITCH``
merges fasciculations and myoclonic jerks on both sides, which is how offline burst detectors (which do not
classify) are scored, and how twitchwatch is compared with them.

Hybrid ground truth (events injected into a real recording): only the injected events are known. A real
recording's rest may hold potentials of its own (a healthy muscle's occasional fasciculation, a unit that
never fully relaxed), so, as in hybrid spike-sorting evaluations, a detection that matches no injected event
but coincides with one the same method found in the unmodified recording (``own``: same lane, overlapping
within the tolerance) is the recording's own event — neither a match nor a false positive. ``Counts.own``
keeps their number, and ``f1_counting_own`` the score that counts them as false positives.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

TOLERANCE_S = 0.05
TWITCH = "twitch"  # pseudo-class: fasciculation or myoclonic jerk
TWITCH_CLASSES = frozenset({"fasciculation", "myoclonic_jerk"})
CLASSES = ("fasciculation", "myoclonic_jerk", "sustained", "artifact")


@dataclass(frozen=True)
class Event:
    """One event: ``[start, end)`` in seconds from the recording's first sample, on one lane."""

    lane: int
    start: float
    end: float
    kind: str

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"event ends ({self.end}) before it starts ({self.start})")

    @property
    def is_twitch(self) -> bool:
        return self.kind in TWITCH_CLASSES or self.kind == TWITCH


@dataclass(frozen=True)
class Counts:
    """Matches of one class; add counts from several runs or lanes (micro-average)."""

    n_true: int = 0
    n_detected: int = 0  # scored detections: matches and false positives
    matched: int = 0
    own: int = 0  # unmatched detections of the recording's own events (hybrid ground truth), not scored

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.n_true + other.n_true,
            self.n_detected + other.n_detected,
            self.matched + other.matched,
            self.own + other.own,
        )

    @property
    def sensitivity(self) -> float:
        return self.matched / self.n_true if self.n_true else float("nan")

    @property
    def precision(self) -> float:
        return self.matched / self.n_detected if self.n_detected else float("nan")

    @property
    def f1(self) -> float:
        # 2·TP / (2·TP + FP + FN): defined whenever there is anything to score.
        total = self.n_true + self.n_detected
        return 2 * self.matched / total if total else float("nan")

    @property
    def f1_counting_own(self) -> float:
        """F1 with the recording's own events counted as false positives (a lower bound)."""
        total = self.n_true + self.n_detected + self.own
        return 2 * self.matched / total if total else float("nan")


@dataclass(frozen=True)
class Spread:
    """How a score varies over repeated runs (e.g. injection seeds): mean, sample standard deviation,
    range, and the standard error of the mean (SD / √n), which bounds how far the pooled value may be from
    the long-run value when the runs are independent."""

    n: int
    mean: float
    sd: float
    lo: float
    hi: float

    @property
    def sem(self) -> float:
        return self.sd / math.sqrt(self.n) if self.n > 1 else float("nan")


def spread(values: Iterable[float]) -> Spread:
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if not v.size:
        return Spread(0, *(float("nan"),) * 4)
    sd = float(v.std(ddof=1)) if v.size > 1 else float("nan")
    return Spread(int(v.size), float(v.mean()), sd, float(v.min()), float(v.max()))


def is_class(e: Event, cls: str) -> bool:
    return e.is_twitch if cls == TWITCH else e.kind == cls


def match_pairs(
    truth: Sequence[Event], detected: Sequence[Event], tolerance_s: float = TOLERANCE_S
) -> list[tuple[int, int]]:
    """Largest one-to-one matching between true and detected events (one lane, one class), as
    (index into ``truth``, index into ``detected``) pairs."""
    if not truth or not detected:
        return []
    order = sorted(range(len(detected)), key=lambda i: detected[i].start)
    starts = [detected[i].start for i in order]
    ends = np.array([detected[i].end for i in order])
    longest = float(np.max(ends - np.array(starts)))
    used = np.zeros(len(order), dtype=bool)
    pairs: list[tuple[int, int]] = []
    for ti in sorted(range(len(truth)), key=lambda i: truth[i].end):
        t = truth[ti]
        lo_t, hi_t = t.start - tolerance_s, t.end + tolerance_s
        # Candidates start before hi_t and end after lo_t; none starting before lo_t - longest can reach it.
        lo = bisect.bisect_left(starts, lo_t - longest)
        hi = bisect.bisect_left(starts, hi_t)
        if lo >= hi:
            continue
        ok = np.flatnonzero((ends[lo:hi] > lo_t) & ~used[lo:hi])
        if ok.size:
            best = lo + int(ok[np.argmin(ends[lo:hi][ok])])
            used[best] = True
            pairs.append((ti, order[best]))
    return pairs


def match_count(truth: Sequence[Event], detected: Sequence[Event], tolerance_s: float = TOLERANCE_S) -> int:
    return len(match_pairs(truth, detected, tolerance_s))


def score(
    truth: Iterable[Event],
    detected: Iterable[Event],
    classes: Sequence[str] = (*CLASSES, TWITCH),
    tolerance_s: float = TOLERANCE_S,
    own: Iterable[Event] = (),
) -> dict[str, Counts]:
    """Per class: true and detected counts and one-to-one matches, lane by lane. ``own``: the method's
    detections (any class) on the recording before injection; unmatched detections that coincide with one
    are counted apart (module docstring)."""
    truth, detected, own = list(truth), list(detected), list(own)
    out: dict[str, Counts] = {}
    for cls in classes:
        t_cls = [e for e in truth if is_class(e, cls)]
        d_cls = [e for e in detected if is_class(e, cls)]
        matched = n_own = 0
        for lane in {e.lane for e in d_cls}:
            t_lane = [e for e in t_cls if e.lane == lane]
            d_lane = [e for e in d_cls if e.lane == lane]
            pairs = match_pairs(t_lane, d_lane, tolerance_s)
            matched += len(pairs)
            taken = {di for _, di in pairs}
            unmatched = [d for i, d in enumerate(d_lane) if i not in taken]
            n_own += _coinciding(unmatched, [e for e in own if e.lane == lane], tolerance_s)
        out[cls] = Counts(len(t_cls), len(d_cls) - n_own, matched, n_own)
    return out


def _coinciding(events: Sequence[Event], others: Sequence[Event], tolerance_s: float) -> int:
    """How many of ``events`` overlap one of ``others`` widened by the tolerance."""
    if not events or not others:
        return 0
    starts = np.array([o.start for o in others]) - tolerance_s
    ends = np.array([o.end for o in others]) + tolerance_s
    return sum(1 for e in events if bool(np.any((starts < e.end) & (ends > e.start))))


def merge(a: dict[str, Counts], b: dict[str, Counts]) -> dict[str, Counts]:
    return {k: a.get(k, Counts()) + b.get(k, Counts()) for k in {*a, *b}}


Span = tuple[float, float]


def within_mask(times: Sequence[float], spans: Sequence[Span]) -> np.ndarray:
    starts = np.array([a for a, _ in spans])
    ends = np.array([b for _, b in spans])
    i = np.searchsorted(starts, np.asarray(times, dtype=float), side="right") - 1
    ok = i >= 0
    ok[ok] = np.asarray(times, dtype=float)[ok] < ends[i[ok]]
    return ok


def within(events: Iterable[Event], spans: Sequence[Span]) -> list[Event]:
    """Events that start inside the spans (each event counted once, whatever it overlaps afterwards)."""
    events = list(events)
    if not events or not spans:
        return []
    mask = within_mask([e.start for e in events], spans)
    return [e for e, m in zip(events, mask, strict=True) if m]


def span_seconds(spans: Sequence[Span]) -> float:
    return float(sum(b - a for a, b in spans))


def false_twitches(detected: Iterable[Event], spans: Sequence[Span]) -> int:
    """Twitch detections (fasciculation or myoclonic jerk) that start inside spans with no true twitch."""
    return sum(1 for e in within(detected, spans) if e.is_twitch)


def false_twitches_per_minute(detected: Iterable[Event], spans: Sequence[Span], lanes: int) -> float:
    """False twitches per lane-minute over the spans (``lanes`` lanes observed throughout them)."""
    minutes = span_seconds(spans) * lanes / 60.0
    return false_twitches(detected, spans) / minutes if minutes > 0 else float("nan")
