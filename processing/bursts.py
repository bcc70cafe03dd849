"""Rhythmic or dense bursting on a lane: tremor or voluntary activity, not fasciculation.

Fasciculations fire irregularly, and even in ALS a muscle's rate rarely exceeds about one a second. A rest
tremor (parkinsonian 4–6 Hz, essential and enhanced physiological tremor up to ~12 Hz) or a hand at work
(typing: a burst of a few motor-unit potentials per keystroke, several a second) fires bursts far more
often and, in tremor, at a steady period. Each burst alone looks like a twitch or a jerk, and the core's
per-event rules let many through: a burst of another size than the one before is no "train", and one a
lane has seen few of its size around is not "among other potentials". Nor do those rules veto: a small
unit's single repeat says nothing about another unit's twitch. This part looks at a lane's events
together, within ``burst_window_s`` (5 s) before each:

- **rhythm**: the last ``burst_rhythm_intervals`` (6) intervals between event onsets all lie within a
  3–12-Hz period (``burst_hz``) and vary by at most ``burst_rhythm_cv`` (0.3, coefficient of variation) —
  a periodic burster, caught after seven bursts (1.4 s at 5 Hz);
- **density**: at least ``burst_short_count`` (12) intervals shorter than ``burst_short_s`` (0.4 s: faster
  than 2.5 a second) in the lane's current bout — its events since the last ``burst_pause_s`` (1 s) without
  one — bursting for most of the window, periodic or not (typing).

The event deciding it must be part of it (its own interval in the band, or short), so a twitch after a
tremor is not. Fed Poisson event times (idealised: every event seen, none merged; 30 000 s each), the two
together put 0.07 % of the events of 60 a minute into vetoed time, 0.7 % at 80, 13 % at 120 (2 a second:
activity by the physiology above); through the detector and the rest gate (20 minutes each) none at 60 or
80 a minute, and 0.2 % of the twitches found at 120.

Once either holds, the event is activity, and so is the time since its run began (at most the window
back): it vetoes ``[run start, its end + two periods)`` exactly — the next burst of the rhythm may be
missed once. The run's earlier bursts, already reported as twitches, are taken back by the rest gate's
final judgement: a source's vetoes may start up to ``reach_back`` samples before where it had settled,
and the gate waits that long before judging finally (``RestGate.watch``). A lane's vetoes join end to start
(the gate's lists stay short). Events that are not brief (activity: bursts merged by the hold) count as
events of the bout but are not re-classified: they veto on their own. State: per lane two short deques of
onsets and ends (picklable; fed in decision order, the same for any chunking).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

_NEVER = -(2**62)  # a lane without a burst veto yet


@dataclass(frozen=True, slots=True)
class Burst:
    """A lane's event found in rhythmic or dense bursting: the span it vetoes ``[start, end)`` (samples,
    detector time) and why."""

    start: int
    end: int
    reason: str
    rhythmic: bool


class BurstWatch:
    """Per lane, the onsets of recent brief events and whether they burst (module docstring)."""

    def __init__(
        self,
        lanes: int,
        sample_rate: float,
        window_s: float,
        band_hz: tuple[float, float],
        intervals: int,
        cv: float,
        short_s: float,
        short_count: int,
        pause_s: float,
    ) -> None:
        """The ``DetectorParams`` ``burst_*`` settings (``processing.core``) at ``sample_rate``."""
        if not (0 < band_hz[0] < band_hz[1]) or intervals < 2 or short_count < 1 or not short_s < pause_s:
            raise ValueError(
                "need 0 < burst_hz low < high, burst_rhythm_intervals ≥ 2, burst_short_count ≥ 1 and "
                "burst_short_s < burst_pause_s"
            )
        self.rate = sample_rate
        self.window = round(window_s * sample_rate)
        self.shortest = sample_rate / band_hz[1]  # samples: the fastest rhythm's period
        self.longest = sample_rate / band_hz[0]  # ... the slowest's
        self.intervals = intervals
        self.cv = cv
        self.short = short_s * sample_rate  # intervals shorter than this are "short"
        self.short_count = short_count
        self.pause = pause_s * sample_rate  # an interval longer than this ends a bout
        self._onsets: list[deque[int]] = [deque() for _ in range(lanes)]
        self._ends: list[deque[int]] = [deque() for _ in range(lanes)]  # ... and their ends
        # The span the lane's burst vetoes cover without a break, [from, until): a new one that begins
        # inside it vetoes only what lies beyond it (the gate's vetoes stay few and disjoint).
        self._from = [_NEVER] * lanes
        self._until = [_NEVER] * lanes

    @property
    def reach_back(self) -> int:
        """Samples before the onset of the event being decided that a burst veto may start."""
        return self.window

    def add(self, lane: int, start: int, end: int, brief: bool = True) -> Burst | None:
        """An event on ``lane`` (decided in order); a ``Burst`` if it is brief and part of rhythmic or dense
        bursting. One that is not brief (activity, which vetoes on its own: bursts merged by the hold)
        only counts as an event of the bout. Cost: a look at its last few intervals; at the bout's only
        while it goes on briskly."""
        onsets, ends = self._onsets[lane], self._ends[lane]
        while onsets and onsets[0] < start - self.window:
            onsets.popleft()
            ends.popleft()
        if onsets and onsets[-1] > start:  # never: a lane's events are decided in order
            raise ValueError(f"events out of order on lane {lane}: {start} after {onsets[-1]}")
        onsets.append(start)
        ends.append(end)
        if not brief:
            return None
        found = self._rhythm(onsets)
        if found is not None:
            first, period = found
            why = f"rhythmic bursting at {self.rate / period:.1f} Hz"
        elif len(onsets) > self.short_count and start - onsets[-2] < self.short:
            dense = self._dense(onsets, ends)
            if dense is None:
                return None
            first, period, count = dense
            why = f"bursting {count * self.rate / max(start - first, 1):.1f} a second"
        else:
            return None
        hi = end + round(2 * period)  # the next burst of the rhythm, one missed
        since, until = self._from[lane], self._until[lane]
        if since <= first <= until:  # the run goes on: only what lies beyond the span vetoed already
            lo, began = min(until, hi), since
            self._until[lane] = max(until, hi)
        else:
            lo, began = first, first
            joined = first < since <= hi  # reaches back over the span: one span again
            self._from[lane], self._until[lane] = first, max(until, hi) if joined else hi
        seconds = (end - began) / self.rate
        reason = f"{why} (tremor or voluntary activity) for {seconds:.1f} s"
        return Burst(lo, hi, reason, found is not None)

    def _rhythm(self, onsets: deque[int]) -> tuple[int, float] | None:
        """(onset where the run of rhythm-band intervals begins, within the window; mean period) if the
        last ``intervals`` intervals are all within the band and regular."""
        k, n = self.intervals, len(onsets)
        if n <= k:
            return None
        gaps = [onsets[i] - onsets[i - 1] for i in range(n - k, n)]
        if min(gaps) < self.shortest or max(gaps) > self.longest:
            return None
        mean = sum(gaps) / k
        if math.sqrt(sum((g - mean) ** 2 for g in gaps) / k) > self.cv * mean:
            return None
        i = n - k - 1  # back while the intervals stay in the band: the run's first burst
        while i > 0 and self.shortest <= onsets[i] - onsets[i - 1] <= self.longest:
            i -= 1
        return onsets[i], mean

    def _dense(self, onsets: deque[int], ends: deque[int]) -> tuple[int, float, int] | None:
        """Back from the newest event to the bout's start (a pause: this long without an event, from one's
        end to the next's onset) or the window's: (onset where its first short interval begins, median
        short interval, intervals counted) if at least ``short_count`` are short."""
        gaps: list[int] = []
        first = onsets[-1]
        for i in range(len(onsets) - 1, 0, -1):
            if onsets[i] - ends[i - 1] > self.pause:
                break
            gap = onsets[i] - onsets[i - 1]
            if gap < self.short:
                gaps.append(gap)
                first = onsets[i - 1]
        if len(gaps) < self.short_count:
            return None
        gaps.sort()
        return first, float(gaps[len(gaps) // 2]), len(gaps)
