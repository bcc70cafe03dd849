"""Does a frame continue its stream? One rule for the recorder, the worker and the dashboard's live feed.

A frame follows the previous frame of its stream (same device, same stream) in one of five ways, decided from
its sequence number (``collector.frames.sequence_gap``, across the u32 wrap) and its device time against where
the previous frame ended:

- ``next``: the following sequence number, starting within ``CLOCK_JITTER_NS`` of where the previous ended;
- ``duplicate``: the sequence number went back and so did time (before the previous frame's end) — a QoS-1
  redelivery or a frame that arrived out of order: already handled, to be skipped;
- ``restart``: the sequence number went back but time went on — the device rebooted; nothing was lost;
- ``lost``: sequence numbers were skipped; ``missing`` frames never arrived;
- ``time_jump``: the following sequence number, but device time moved by more than ``CLOCK_JITTER_NS``.

The tolerances, in one place:

- ``CLOCK_JITTER_NS`` (50 ms): how far a frame may start from where the previous one ended and still be
  contiguous. Device clocks and timestamps taken on arrival jitter by a few ms; 50 ms is well above that and
  below any real interruption. A recorded session marks every discontinuity beyond it (docs/sessions.md).
- ``DETECTOR_BRIDGE_NS`` (1 s): the worker keeps a detector's state (its filters, noise floor, open events)
  across a restart or a time jump up to this; beyond it the stream starts a new segment (sensor taken off,
  link down), because filter state is meaningless across it and a fresh start costs only the warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from twitchwatch.collector.frames import Frame, sequence_gap

CLOCK_JITTER_NS: Final = 50_000_000
DETECTOR_BRIDGE_NS: Final = 1_000_000_000

Step = Literal["next", "duplicate", "restart", "lost", "time_jump"]


@dataclass(frozen=True)
class Continuity:
    """How a frame follows the previous one: ``step``, the frames lost before it and how far its start is from
    where the previous frame ended (ns; positive: later)."""

    step: Step
    missing: int
    jump_ns: int

    @property
    def is_gap(self) -> bool:
        """A discontinuity a recording marks: frames lost, a restart or a time jump."""
        return self.step in ("lost", "restart", "time_jump")

    @property
    def bridgeable(self) -> bool:
        """Whether a detector may carry its state over: nothing lost, and time within ``DETECTOR_BRIDGE_NS``
        of where it should be (a restart that went on in time, or a jump a link hiccup explains)."""
        return self.step in ("next", "restart", "time_jump") and abs(self.jump_ns) <= DETECTOR_BRIDGE_NS


def continuity(last_sequence: int, expected_t0_ns: int, frame: Frame) -> Continuity:
    """How ``frame`` follows a frame numbered ``last_sequence`` that ended at ``expected_t0_ns``."""
    gap = sequence_gap(last_sequence, frame.sequence)
    jump = frame.t0_ns - expected_t0_ns
    if gap < 0:
        return Continuity("duplicate" if frame.t0_ns < expected_t0_ns else "restart", 0, jump)
    if gap > 0:
        return Continuity("lost", gap, jump)
    return Continuity("time_jump" if abs(jump) > CLOCK_JITTER_NS else "next", 0, jump)
