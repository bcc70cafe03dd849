"""Frame continuity: the one rule the recorder, the worker and the live feed share."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_import_graph import _by_suffix, graph
from twitchwatch.collector.continuity import CLOCK_JITTER_NS, DETECTOR_BRIDGE_NS, continuity
from twitchwatch.collector.frames import MAX_SEQUENCE, Frame, SampleType, Unit

RATE = 100.0
SAMPLES = 10
DURATION_NS = 100_000_000  # 10 samples at 100 Hz
T0 = 1_700_000_000_000_000_000


def frame(sequence: int, t0_ns: int) -> Frame:
    raw = np.zeros((SAMPLES, 1), dtype=np.int16)
    return Frame(1, sequence % MAX_SEQUENCE, t0_ns, RATE, 1.0, Unit.MICROVOLT, SampleType.INT16, raw)


END = T0 + DURATION_NS  # where frame #7 at T0 ends


@pytest.mark.parametrize(
    ("sequence", "t0_ns", "step", "missing", "gap", "bridgeable"),
    [
        (8, END, "next", 0, False, True),
        (8, END + CLOCK_JITTER_NS, "next", 0, False, True),  # jitter up to the tolerance
        (8, END - CLOCK_JITTER_NS, "next", 0, False, True),
        (8, END + CLOCK_JITTER_NS + 1, "time_jump", 0, True, True),
        (8, END + DETECTOR_BRIDGE_NS + 1, "time_jump", 0, True, False),
        (7, T0, "duplicate", 0, False, False),  # a QoS-1 redelivery
        (5, T0 - 2 * DURATION_NS, "duplicate", 0, False, False),  # arrived out of order
        (0, END, "restart", 0, True, True),  # rebooted, time went on
        (0, END + 10 * DETECTOR_BRIDGE_NS, "restart", 0, True, False),
        (11, END + 3 * DURATION_NS, "lost", 3, True, False),
    ],
)
def test_each_way_a_frame_can_follow_the_last(
    sequence: int, t0_ns: int, step: str, missing: int, gap: bool, bridgeable: bool
) -> None:
    c = continuity(7, END, frame(sequence, t0_ns))
    assert (c.step, c.missing, c.is_gap, c.bridgeable) == (step, missing, gap, bridgeable)
    assert c.jump_ns == t0_ns - END


def test_the_sequence_wraps_without_a_gap() -> None:
    c = continuity(MAX_SEQUENCE - 1, END, frame(MAX_SEQUENCE, END))
    assert (c.step, c.missing) == ("next", 0)


def test_recorder_worker_and_live_feed_all_use_it() -> None:
    modules = graph()
    rule = _by_suffix(modules, "collector.continuity")
    for user in (
        "collector.recordings.formats.session",
        "processing.worker",
        "dashboard.livefeed",
    ):
        assert rule in modules[_by_suffix(modules, user)].imports, user
