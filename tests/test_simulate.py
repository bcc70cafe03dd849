"""Simulator options and the synthetic generator's determinism."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from twitchwatch.collector.simulate import (
    SimulationError,
    SimulationPlan,
    WearWindow,
    parse_duration,
    parse_start,
)
from twitchwatch.collector.synth import MIN_SPACING_S, MuscleSegment, spec_for


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("21d", 1814400)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "3w", "abc"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(SimulationError, match="--duration"):
        parse_duration(text)


def test_parse_start_relative_and_iso() -> None:
    now = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    assert parse_start("-21d", now) == now - dt.timedelta(days=21)
    assert parse_start("2026-11-01T08:00:00+00:00", now) == dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    with pytest.raises(SimulationError, match="--start"):
        parse_start("yesterday", now)


def test_wear_window_segments_cover_only_the_window() -> None:
    tz = dt.datetime.now().astimezone().tzinfo
    start = dt.datetime(2026, 11, 1, 0, 0, tzinfo=tz)
    segs = list(WearWindow.parse("08:00-22:00").segments(start, start + dt.timedelta(days=3)))
    assert len(segs) == 3
    assert all(a.hour == 8 and b.hour == 22 and (b - a) == dt.timedelta(hours=14) for a, b in segs)
    wrap = list(WearWindow.parse("22:00-06:00").segments(start, start + dt.timedelta(days=1)))
    assert [(a.hour, b.hour) for a, b in wrap] == [(0, 6), (22, 0)]


@pytest.mark.parametrize("text", ["8-22", "25:00-10:00", "08:00-08:00"])
def test_wear_window_rejects(text: str) -> None:
    with pytest.raises(SimulationError, match="--wear"):
        WearWindow.parse(text)


def test_plan_validation() -> None:
    now = dt.datetime.now().astimezone()
    with pytest.raises(SimulationError, match="--muscle"):
        SimulationPlan((), "emg", now, 10, 1.0, 1, 0, "me")
    with pytest.raises(SimulationError, match="--rate"):
        SimulationPlan(("a",), "emg", now, 10, 1.0, -1, 0, "me")
    with pytest.raises(ValueError, match="muscle"):
        SimulationPlan(("calf left",), "emg", now, 10, 1.0, 1, 0, "me")


def test_generator_is_deterministic_and_chunk_independent_in_truth() -> None:
    spec = spec_for("emg")
    a = MuscleSegment("m", spec, 0, 120, 30, seed=4)
    b = MuscleSegment("m", spec, 0, 120, 30, seed=4)
    assert a.truth() == b.truth()
    xa = np.vstack([a.next_chunk(50)[1] for _ in range(a.total // 50)])
    xb = np.vstack([b.next_chunk(50)[1] for _ in range(b.total // 50)])
    assert np.array_equal(xa, xb)


@pytest.mark.parametrize("signal", ["emg", "acc"])
def test_the_signal_is_the_same_whatever_the_frame_size(signal: str) -> None:
    """A twitch split across two chunks (frames) is the same twitch: each part used to be scaled by its own
    peak, so the tail of a potential in the next frame came out as large as the whole potential, and the
    signal — and what a worker found in it — depended on the collector's frame size."""
    spec = spec_for(signal)  # type: ignore[arg-type]
    out = []
    for chunk in (50, 7, 20, 1000):
        seg = MuscleSegment("m", spec, 0, 60, 40, seed=11)
        parts = []
        while seg.remaining:
            parts.append(seg.next_chunk(chunk)[1])
        out.append(np.vstack(parts))
    assert len(MuscleSegment("m", spec, 0, 60, 40, seed=11).truth()) > 20
    for x in out[1:]:
        assert np.array_equal(x, out[0])


def test_rate_and_spacing_of_injected_twitches() -> None:
    seg = MuscleSegment("m", spec_for("acc"), 0, 3600, 12, seed=9)
    starts = np.array([t.start_ns for t in seg.truth()]) / 1e9
    assert 12 * 60 * 0.85 < starts.size < 12 * 60 * 1.15
    assert np.diff(starts).min() >= MIN_SPACING_S - 1e-9


def test_long_segments_draw_their_schedule_as_they_stream() -> None:
    month = MuscleSegment("m", spec_for("acc"), 0, 30 * 86400, 12, seed=6)
    month.next_chunk(1000)  # the first 10 s
    streamed = month.take_truth()
    assert streamed, "12 a minute should give a twitch within 10 s"
    assert all(e.start_ns < 10 * 10**9 for e in streamed)
    assert month.take_truth() == []  # each twitch is handed out once
    minute = MuscleSegment("m", spec_for("acc"), 0, 60, 12, seed=6)
    assert minute.truth()[: len(streamed)] == streamed  # the schedule does not depend on the length
