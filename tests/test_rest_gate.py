"""The rest gate (processing/rest.py): vetoes, guards, settling, stale sources; the settled index."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twitchwatch.collector import synth
from twitchwatch.processing.detector import StreamingDetector
from twitchwatch.processing.events import EventKind, TwitchEvent
from twitchwatch.processing.rest import GateParams, RestGate, scopes_of
from twitchwatch.processing.rest_streams import RestStreams

S = 1_000_000_000
EMG = ("me", "dev1", "emg")
ACC = ("me", "dev1", "acc")
OTHER = ("me", "dev2", "acc")
CALF = scopes_of("me", "calf_left", "dev1", "lower_leg_left")


def twitch(start_s: float, end_s: float, kind: EventKind = EventKind.FASCICULATION) -> TwitchEvent:
    return TwitchEvent(
        "me", "calf_left", "dev1", "emg", 0, kind, round(start_s * S), round(end_s * S), 40.0, "µV", 0.9
    )


def gate() -> RestGate:
    guards = GateParams(
        before_ns=S // 2,
        after_ns=2 * S,
        stale_ns=10 * S,
        after_activity_ns=2 * S,
        before_activity_ns=S // 2,
        before_movement_ns=S // 2,
    )
    g = RestGate(guards)
    g.watch(EMG, [("me", "muscle", "calf_left")])
    g.watch(ACC, [("me", "device", "dev1")])
    g.watch(OTHER, [("me", "device", "dev2"), ("me", "segment", "lower_leg_left")])
    return g


def test_a_twitch_inside_a_guarded_veto_is_marked_with_what_it_looked_like_and_why() -> None:
    g = gate()
    g.veto(ACC, 10 * S, 20 * S, "walking")
    moved = g.judge(twitch(21.5, 21.51), CALF)  # 1.5 s after the walk: inside the 2-s guard
    assert moved.kind is EventKind.DURING_MOVEMENT
    assert moved.reason == "fasciculation: walking"
    early = g.judge(twitch(9.6, 9.61), CALF)  # 0.4 s before it: inside the 0.5-s guard
    assert early.kind is EventKind.DURING_MOVEMENT
    assert g.judge(twitch(22.5, 22.51), CALF).kind is EventKind.FASCICULATION
    assert g.judge(twitch(9.0, 9.01), CALF).kind is EventKind.FASCICULATION


def test_a_transient_in_the_second_before_a_movement_is_its_build_up() -> None:
    """A movement builds up below the movement detector's thresholds before it is found (a jump's
    countermovement, a shift of weight): a transient 0.15-0.4 s before it was counted as a twitch with the
    100-ms guard (four in the jump recordings). Ahead of movement the guard is a second, judged finally once
    known, as ahead of a muscle's own activity; twitches are still released provisionally after 100 ms."""
    g = RestGate()
    g.watch(ACC, [("me", "device", "dev1")])
    g.settle(ACC, 10 * S)
    assert g.ready(CALF, round(9.75 * S), provisional=True)  # 100 ms known past it: reported
    assert not g.ready(CALF, round(9.75 * S))  # the second ahead of a movement is not known yet
    g.veto(ACC, 10 * S, 12 * S, "movement 0.3–5 Hz 2.0 s")
    g.settle(ACC, 13 * S)
    assert g.judge(twitch(9.7, 9.75), CALF).kind is EventKind.DURING_MOVEMENT
    assert g.judge(twitch(8.9, 8.95), CALF).kind is EventKind.FASCICULATION


def test_vetoes_apply_only_to_their_scopes() -> None:
    g = gate()
    g.veto(OTHER, 10 * S, 20 * S, "other device on the segment moved")
    assert g.judge(twitch(15, 15.01), CALF).kind is EventKind.DURING_MOVEMENT
    elsewhere = scopes_of("me", "forearm", "dev1", "forearm_left")
    assert g.judge(twitch(15, 15.01), elsewhere).kind is EventKind.FASCICULATION
    other_user = scopes_of("you", "calf_left", "dev1", "lower_leg_left")
    assert g.first_veto(other_user, 15 * S, 16 * S) is None


def test_non_twitch_events_pass_unchanged() -> None:
    g = gate()
    g.veto(ACC, 10 * S, 20 * S, "walking")
    sustained = twitch(12, 14, EventKind.SUSTAINED)
    assert g.judge(sustained, CALF) is sustained


def test_ready_waits_for_every_source_of_the_scopes_until_it_goes_stale() -> None:
    g = gate()
    for sid in (EMG, ACC, OTHER):
        g.settle(sid, 5 * S)
    assert not g.ready(CALF, 5 * S)  # a veto starting within before_ns after the end would reach back
    g.settle(EMG, 6 * S)
    g.settle(ACC, 6 * S)
    assert not g.ready(CALF, 5 * S)  # the other device on the segment has not settled
    g.settle(OTHER, 6 * S)
    assert g.ready(CALF, 5 * S)
    assert g.horizon(CALF) == 6 * S - S // 2 - 1  # settled past end + guard, not up to it
    g.settle(EMG, 20 * S)  # OTHER silent while the user's streams went 14 s on: stale, ignored
    g.settle(ACC, 20 * S)
    assert g.ready(CALF, 19 * S)
    g.forget(OTHER)
    assert g.horizon(CALF) == 20 * S - S // 2 - 1


def test_live_a_source_far_ahead_does_not_make_the_others_stale_but_silence_does() -> None:
    """Live (a clock given), stale means behind *and* silent for ``stale_ns``. One frame stamped in 2096 from
    another device of the user made every other source of the user stale for good: the gate judged a twitch
    before the contraction that followed it was known. A source that stopped still goes stale."""
    now = [1000 * S]
    g = RestGate(gate().params, clock=lambda: now[0])
    g.watch(EMG, [("me", "muscle", "calf_left")])
    g.watch(ACC, [("me", "device", "dev1")])
    g.watch(OTHER, [("me", "device", "dev2"), ("me", "segment", "lower_leg_left")])
    glitch = ("me", "dev9", "emg")
    g.watch(glitch, [("me", "device", "dev9")])
    for sid in (EMG, ACC, OTHER):
        g.settle(sid, 5 * S)
    g.settle(glitch, 4_000_000_000 * S)  # 2096: the user's latest, decades ahead
    now[0] += S
    g.settle(EMG, 6 * S)
    g.settle(ACC, 6 * S)
    assert not g.ready(CALF, 5 * S)  # OTHER is heard from: still waited for, not stale
    now[0] += 11 * S  # OTHER silent for 12 s by the clock (and behind): stale, no longer waited for
    g.settle(EMG, 7 * S)
    g.settle(ACC, 7 * S)
    assert g.ready(CALF, 5 * S)


def test_a_source_settled_exactly_to_the_guard_past_the_end_still_holds_the_answer() -> None:
    """``settle(t)``: no veto starts before t, but one may start at t, and a veto whose guard ahead reaches
    exactly to an event's end covers it (``first_veto`` counts closed intervals). So the answer waits for
    every source to settle *past* end + guard: settled up to it, the worker counted a twitch when its
    frames came one at a time and vetoed the same twitch when they came in a batch (a 50-Hz accelerometer
    in 100-ms frames, a train of transients starting exactly 100 ms after the twitch's end)."""
    g = gate()
    end = 5 * S
    for sid in (EMG, ACC, OTHER):
        g.settle(sid, end + S // 2)  # before_ns and before_activity_ns are S // 2 here
    assert not g.ready(CALF, end)
    assert not g.ready(CALF, end, provisional=True)
    assert g.horizon(CALF) < end
    g.veto(ACC, end + S // 2, end + S, "train of transients")  # starts where ACC had settled
    assert g.first_veto(CALF, end - S // 100, end) is not None  # and reaches back over the end
    for sid in (EMG, ACC, OTHER):
        g.settle(sid, end + S // 2 + 1)
    assert g.ready(CALF, end)
    assert g.horizon(CALF) == end
    assert g.judge(twitch(4.99, 5.0), CALF).kind is EventKind.DURING_MOVEMENT


def test_a_blocker_holds_the_answer_back_until_its_source_settles_goes_stale_or_is_forgotten() -> None:
    """What ``RestStreams`` relies on to skip asking again: while ``blocks`` is True, ``ready`` is False."""
    g = gate()
    for sid in (EMG, ACC, OTHER):
        g.settle(sid, 5 * S)
    b = g.blocker(CALF, 5 * S)
    assert b is not None
    assert not g.ready(CALF, 5 * S)
    for step in range(1, 4):  # the blocker's source settles in steps: blocked exactly while short of need
        g.settle(b.source, 5 * S + step * S // 8)
        assert g.blocks(b) == (5 * S + step * S // 8 < b.need_ns)
        if g.blocks(b):
            assert not g.ready(CALF, 5 * S)
    g.settle(b.source, b.need_ns)
    assert not g.blocks(b)
    # stale: the user's other streams went on while the blocking one stayed behind
    g2 = gate()
    b2 = g2.blocker(CALF, 5 * S)
    assert b2 is not None
    assert g2.blocks(b2)
    g2.settle(ACC if b2.source != ACC else EMG, 30 * S)
    assert not g2.blocks(b2)
    # forgotten, and replaced by a source of the same name starting afresh: asked again
    g3 = gate()
    b3 = g3.blocker(CALF, 5 * S)
    assert b3 is not None
    g3.forget(b3.source)
    assert not g3.blocks(b3)
    g3.watch(b3.source, [("me", "muscle", "calf_left")])
    assert not g3.blocks(b3)  # a new source: the caller asks ``blocker`` afresh
    assert g3.blocker(CALF, 5 * S) is not None


def test_open_activity_vetoes_while_it_lasts_and_is_replaced_as_it_grows() -> None:
    g = gate()
    g.open(EMG, [(10 * S, 12 * S, "contraction")])
    assert g.first_veto(CALF, 13 * S, 13 * S) is not None  # within the after-guard of its end so far
    assert g.first_veto(CALF, 15 * S, 15 * S) is None
    g.open(EMG, [(10 * S, 30 * S, "contraction")])
    assert g.first_veto(CALF, 15 * S, 15 * S) is not None
    g.open(EMG, [])
    assert g.first_veto(CALF, 15 * S, 15 * S) is None


def test_vetoed_time_is_the_union_of_overlapping_vetoes_clipped_to_the_interval() -> None:
    g = gate()
    g.veto(EMG, 10 * S, 20 * S, "contraction")  # widened: 9.5 .. 22
    g.veto(ACC, 15 * S, 25 * S, "walking")  # widened: 14.5 .. 27
    assert g.vetoed_ns(CALF, 0, 60 * S) == 27 * S - (9 * S + S // 2)
    assert g.vetoed_ns(CALF, 20 * S, 30 * S) == 7 * S
    assert g.vetoed_ns(CALF, 30 * S, 40 * S) == 0
    g.prune(28 * S)
    assert g.vetoed_ns(CALF, 0, 60 * S) == 0


@given(
    spans=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 30)), max_size=8),
    a=st.integers(0, 150),
    n=st.integers(0, 60),
)
@settings(max_examples=200, deadline=None)
def test_vetoed_time_matches_a_per_second_count(spans: list[tuple[int, int]], a: int, n: int) -> None:
    g = RestGate(GateParams(before_ns=0, after_ns=0, after_activity_ns=0, before_activity_ns=0))
    g.watch(EMG, [("me", "muscle", "calf_left")])
    covered = np.zeros(200, dtype=bool)
    for start, length in spans:
        g.veto(EMG, start * S, (start + length) * S, "x")
        covered[start : start + length] = True
    assert g.vetoed_ns(CALF, a * S, (a + n) * S) == int(covered[a : a + n].sum()) * S


def test_a_muscles_own_activity_is_followed_by_a_shorter_guard_than_movement() -> None:
    g = RestGate(GateParams(before_ns=0, after_ns=2 * S, after_activity_ns=S // 2, before_activity_ns=0))
    g.watch(EMG, [("me", "muscle", "calf_left")])
    g.watch(ACC, [("me", "device", "dev1")])
    g.veto(EMG, 10 * S, 20 * S, "voluntary activity")
    g.veto(ACC, 30 * S, 40 * S, "movement")
    assert g.judge(twitch(20.4, 20.41), CALF).kind is EventKind.DURING_MOVEMENT
    assert g.judge(twitch(20.6, 20.61), CALF).kind is EventKind.FASCICULATION
    assert g.judge(twitch(41.9, 41.91), CALF).kind is EventKind.DURING_MOVEMENT
    g.open(EMG, [(50 * S, 55 * S, "voluntary activity")])
    assert g.first_veto(CALF, 55 * S + S // 4, 56 * S) is not None
    assert g.first_veto(CALF, 55 * S + S // 2 + 1, 56 * S) is None


def test_a_veto_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        gate().veto(EMG, 2 * S, S, "x")


@pytest.mark.parametrize(("signal", "fs"), [("emg", 1000.0), ("acc", 100.0)])
def test_no_detection_comes_before_what_the_detector_said_was_settled(signal: str, fs: float) -> None:
    physiology = synth.Physiology(fasciculation=30.0, sustained=2.0, snr_db=20.0)
    x, _truth = synth.generate(signal, fs, 60.0, physiology, seed=3)  # type: ignore[arg-type]
    det = StreamingDetector(signal, fs, x.shape[1])  # type: ignore[arg-type]
    settled, seen = 0, 0
    for i in range(0, x.shape[0], int(fs // 10)):
        for d in det.process(x[i : i + int(fs // 10)]):
            assert d.start >= settled
            seen += 1
        assert det.settled >= settled
        settled = det.settled
        for _lane, start, end in det.open_activity():
            assert start <= end
    assert seen > 10


def test_blind_time_is_vetoed_exactly_without_guards() -> None:
    g = gate()
    g.veto(EMG, 0, S, "detector warming up", guard=False)
    assert g.vetoed_ns(CALF, -10 * S, 10 * S) == S
    assert g.judge(twitch(1.2, 1.21), CALF).kind is EventKind.FASCICULATION


def test_an_emg_lane_vetoes_its_own_muscle_and_movement_streams_the_device_and_segment() -> None:
    """The worker's sources (processing/rest_streams.py): each EMG channel its muscle; an accelerometer its
    device and the segments of the device's muscles, learnt as the device's streams appear."""
    guards = GateParams(
        before_ns=0, after_ns=0, after_activity_ns=0, before_activity_ns=0, before_movement_ns=0
    )
    rs = RestStreams(guards)
    rs.start(("me", "myo", "emg"), "emg", ["forearm_flexor_left", "forearm_extensor_left"], 0, S)
    rs.start(("me", "leg", "acc"), "acc", ["calf_left"], 0, 0)
    rs.start(("me", "band", "gyro"), "gyro", [None], 0, 0)  # a device with no muscle of its own yet
    rs.veto(("me", "myo", "emg"), 1, 10 * S, 20 * S, "sustained EMG activity 10.0 s (myo/emg ch1)")
    assert rs.vetoed_ns("me", "forearm_extensor_left", 0, 60 * S) == 11 * S  # warm-up + contraction
    assert rs.vetoed_ns("me", "forearm_flexor_left", 0, 60 * S) == S
    rs.veto(("me", "leg", "acc"), 0, 30 * S, 35 * S, "movement 5.0 s (leg/acc)")
    assert rs.vetoed_ns("me", "calf_left", 0, 60 * S) == 5 * S
    rs.start(("me", "band", "emg"), "emg", ["soleus_left"], 40 * S, 0)  # now the band is on the lower leg
    rs.veto(("me", "band", "gyro"), 0, 50 * S, 52 * S, "movement 2.0 s (band/gyro)")
    assert rs.vetoed_ns("me", "calf_left", 0, 60 * S) == 7 * S
    assert rs.scopes("me", "soleus_left") >= {("me", "device", "band"), ("me", "segment", "lower_leg_left")}


def test_held_events_are_judged_once_every_source_of_their_muscle_has_settled() -> None:
    rs = RestStreams(GateParams(before_ns=S // 2, after_ns=2 * S))
    rs.start(("me", "dev1", "emg"), "emg", ["calf_left"], 0, 0)
    rs.start(("me", "dev1", "acc"), "acc", ["calf_left"], 0, 0)
    rs.hold([twitch(5.0, 5.01), twitch(5.5, 5.6, EventKind.SUSTAINED)])
    rs.progress(("me", "dev1", "emg"), 9 * S, [])
    assert [e.kind for e in rs.release()] == [EventKind.SUSTAINED]  # activity passes; the twitch waits
    rs.progress(("me", "dev1", "acc"), 5 * S, [(0, 4 * S, 5 * S, "movement going on for 1.0 s (dev1/acc)")])
    assert rs.release() == []  # the accelerometer has not settled past the twitch + before_ns
    rs.end(("me", "dev1", "acc"))  # it ended: its open movement no longer vetoes, nothing holds back
    assert [e.kind for e in rs.release()] == [EventKind.FASCICULATION]


def test_a_twitch_shortly_before_its_muscles_own_activity_is_its_first_motor_unit() -> None:
    """The guard ahead of a muscle's own activity is longer than ahead of movement, and the answer that
    covers it is final; a provisional one knows only ``before_ns`` past the end."""
    guards = GateParams(before_ns=S // 10, before_activity_ns=S, after_ns=2 * S, after_activity_ns=2 * S)
    g = RestGate(dataclasses.replace(guards, before_movement_ns=S // 10))
    g.watch(EMG, [("me", "muscle", "calf_left")])
    g.watch(ACC, [("me", "device", "dev1")])
    g.settle(EMG, 10 * S + S // 5)
    g.settle(ACC, 20 * S)
    assert g.ready(CALF, 10 * S, provisional=True)
    assert not g.ready(CALF, 10 * S)  # a contraction starting up to 1 s after the end would still reach it
    g.veto(EMG, 10 * S + S // 2, 12 * S, "voluntary activity on calf")
    g.settle(EMG, 11 * S + 1)  # past end + guard: a veto starting at 11 s would reach 10 s
    assert g.ready(CALF, 10 * S)
    first_unit = g.judge(twitch(9.99, 10.0), CALF)
    assert first_unit.kind is EventKind.DURING_MOVEMENT
    assert first_unit.reason == "fasciculation: voluntary activity on calf 0.5 s after it"
    assert g.judge(twitch(9.3, 9.31), CALF).kind is EventKind.FASCICULATION  # 1.19 s before: at rest
    g.veto(ACC, 15 * S, 16 * S, "walking")  # movement keeps the short guard ahead
    assert g.judge(twitch(14.8, 14.81), CALF).kind is EventKind.FASCICULATION
    assert g.judge(twitch(14.95, 14.96), CALF).kind is EventKind.DURING_MOVEMENT


def test_a_provisional_twitch_is_rewritten_if_its_muscle_contracts_right_after_and_else_counted() -> None:
    rs = RestStreams(
        GateParams(before_ns=S // 10, before_activity_ns=S, after_ns=2 * S, after_activity_ns=2 * S)
    )
    key = ("me", "dev1", "emg")
    rs.start(key, "emg", ["calf_left"], 0, 0)
    rs.hold([twitch(5.0, 5.01), twitch(20.0, 20.01)])
    rs.progress(key, round(5.2 * S), [])
    first = rs.release()
    assert [e.kind for e in first] == [EventKind.FASCICULATION]  # written after 100 ms, as before
    assert rs.counted() == []
    assert rs.held == 2
    rs.veto(key, 0, round(5.6 * S), 7 * S, "sustained EMG activity 1.4 s (dev1/emg)")
    rs.progress(key, 7 * S, [])
    rewritten = rs.release()
    assert [(e.kind, e.start_ns) for e in rewritten] == [(EventKind.DURING_MOVEMENT, first[0].start_ns)]
    assert rewritten[0].reason == "fasciculation: sustained EMG activity 1.4 s (dev1/emg) 0.6 s after it"
    assert rs.counted() == []
    assert rs.retracted == 1
    rs.progress(key, 22 * S, [])
    later = rs.release()
    assert [e.kind for e in later] == [EventKind.FASCICULATION]
    assert rs.counted() == later
    assert rs.held == 0


def test_a_source_that_reaches_back_is_waited_for_that_long_before_a_final_answer() -> None:
    """Rhythmic bursting is known a few bursts after it began, and then vetoes back to its first burst:
    such a source says how far behind its settled point a veto of it may still start, and a final answer
    waits that long (a provisional one does not); the guards of its other vetoes stay as they were."""
    guards = GateParams(before_ns=S // 10, before_activity_ns=S, after_ns=2 * S, after_activity_ns=2 * S)
    g = RestGate(guards)
    g.watch(EMG, [("me", "muscle", "calf_left")], reach_back_ns=5 * S)
    g.settle(EMG, 12 * S)
    assert g.ready(CALF, 10 * S, provisional=True)
    assert not g.ready(CALF, 10 * S)  # 2 s past it: a veto reported now may still start 3 s before it
    assert g.horizon(CALF) == 7 * S - 1
    why = "rhythmic bursting at 5.0 Hz (tremor or voluntary activity) for 5.0 s"
    g.veto(EMG, 8 * S, 13 * S, why, guard=False)
    g.settle(EMG, 15 * S + 1)
    assert g.ready(CALF, 10 * S)
    tremor = g.judge(twitch(9.99, 10.0), CALF)
    assert tremor.kind is EventKind.DURING_MOVEMENT
    assert tremor.reason == f"fasciculation: {why}"
    g.veto(EMG, 20 * S, 21 * S, "voluntary activity on calf")  # guarded as before: 1 s ahead, 2 s behind
    assert g.vetoed_ns(CALF, 17 * S, 25 * S) == 4 * S  # 19-23 s
    with pytest.raises(ValueError, match="reach_back_ns"):
        g.watch(ACC, [("me", "device", "dev1")], reach_back_ns=-1)


def test_a_provisional_twitch_in_rhythmic_bursting_found_later_is_taken_back() -> None:
    """The worker's path: a twitch is written after ``before_ns``; the bursting it belonged to is seen
    seconds later and vetoes back over it; the final judgement re-writes it and the minute never counts it.
    A stream started without reach back would have counted it."""
    guards = GateParams(before_ns=S // 10, before_activity_ns=S, after_ns=2 * S, after_activity_ns=2 * S)
    key = ("me", "dev1", "emg")
    for reach, counted in ((5 * S, False), (0, True)):
        rs = RestStreams(guards)
        rs.start(key, "emg", ["calf_left"], 0, 0, reach)
        rs.hold([twitch(5.0, 5.05)])
        rs.progress(key, round(5.2 * S), [])
        assert [e.kind for e in rs.release()] == [EventKind.FASCICULATION]  # as soon as before
        rs.progress(key, round(6.5 * S), [])
        assert rs.release() == []
        rs.veto(key, 0, round(4.8 * S), round(7.2 * S), "rhythmic bursting", guard=False)
        rs.progress(key, 11 * S, [])
        out = rs.release()
        if counted:  # judged at 6.5 s already (its 1-s guard known): the bursting came too late
            assert (out, [e.kind for e in rs.counted()]) == ([], [EventKind.FASCICULATION])
        else:
            assert [(e.kind, e.reason) for e in out] == [
                (EventKind.DURING_MOVEMENT, "fasciculation: rhythmic bursting")
            ]
            assert (rs.counted(), rs.retracted, rs.held) == ([], 1, 0)


def test_a_veto_reason_says_the_duration_once() -> None:
    """The detector's reason already ends with the duration ("activity 1.6 s"): stored as "activity 1.6 s
    1.6 s (good/emg)" before; a reason without one gets it, and activity going on says how long so far."""
    from twitchwatch.processing.rest_streams import veto_reason

    assert (
        veto_reason("emg", EventKind.SUSTAINED, 1.6, "good/emg", "activity 1.6 s")
        == "activity 1.6 s (good/emg)"
    )
    assert veto_reason("acc", EventKind.SUSTAINED, 1.2, "leg/acc") == "movement 1.2 s (leg/acc)"
    moving = veto_reason("acc", EventKind.SUSTAINED, 10.0, "leg/acc", ongoing=True)
    assert moving == "movement going on for 10.0 s (leg/acc)"
    saturated = veto_reason("emg", EventKind.ARTIFACT, 0.2, "good/emg", "saturation")
    assert saturated == "saturation 0.2 s (good/emg)"
