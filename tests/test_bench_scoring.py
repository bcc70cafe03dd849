"""Benchmark scoring and loaders (bench/scoring.py, bench/data.py): fast, no NeuroKit2/BioSPPy needed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import accuracy, data, rest_diagnosis
from bench.baselines import pair_crossings, run_twitchwatch
from bench.scoring import (
    TWITCH,
    Counts,
    Event,
    false_twitches,
    false_twitches_per_minute,
    match_count,
    match_pairs,
    merge,
    score,
    spread,
    within,
)
from tests.datafiles import RECORDINGS, shared_only


def ev(start: float, end: float, kind: str = "fasciculation", lane: int = 0) -> Event:
    return Event(lane, start, end, kind)


# --- matching --------------------------------------------------------------------------------------------


def test_one_detection_spanning_two_events_matches_one() -> None:
    truth = [ev(1.0, 1.01), ev(1.2, 1.21)]
    c = score(truth, [ev(0.99, 1.25)], classes=("fasciculation",))["fasciculation"]
    assert (c.n_true, c.n_detected, c.matched) == (2, 1, 1)
    assert c.sensitivity == 0.5
    assert c.precision == 1.0


def test_two_detections_on_one_event_give_one_false_positive() -> None:
    c = score([ev(1.0, 1.05)], [ev(1.0, 1.02), ev(1.03, 1.05)], classes=("fasciculation",))["fasciculation"]
    assert (c.matched, c.n_detected) == (1, 2)
    assert c.precision == 0.5
    assert math.isclose(c.f1, 2 / 3)


def test_tolerance_is_either_side_of_the_true_event() -> None:
    truth = [ev(1.0, 1.01)]
    assert match_count(truth, [ev(1.059, 1.07)], tolerance_s=0.05) == 1
    assert match_count(truth, [ev(1.061, 1.07)], tolerance_s=0.05) == 0
    assert match_count(truth, [ev(0.90, 0.951)], tolerance_s=0.05) == 1
    assert match_count(truth, [ev(0.90, 0.949)], tolerance_s=0.05) == 0


def test_lanes_and_classes_are_kept_apart_but_twitch_merges_the_twitch_classes() -> None:
    truth = [ev(1.0, 1.01, "fasciculation"), ev(2.0, 2.1, "myoclonic_jerk"), ev(3.0, 4.0, "sustained")]
    dets = [ev(1.0, 1.01, "myoclonic_jerk"), ev(2.0, 2.1, "fasciculation", lane=1), ev(3.0, 4.0, TWITCH)]
    s = score(truth, dets)
    assert s["fasciculation"].matched == 0
    assert s["myoclonic_jerk"].matched == 0
    assert s["sustained"] == Counts(1, 0, 0)
    # Twitch: the class mix-up on lane 0 still counts; the wrong lane does not; an activation on a
    # contraction is a false twitch.
    assert s[TWITCH] == Counts(2, 3, 1)


def test_the_recordings_own_events_are_neither_matches_nor_false_positives() -> None:
    truth = [ev(1.0, 1.01)]
    own = [ev(5.0, 5.01, "myoclonic_jerk"), ev(7.0, 7.01, lane=1)]
    # On the truth; on an own event (any class, within the tolerance); on lane 0 where the own event is
    # on lane 1; far from everything.
    dets = [ev(1.0, 1.01), ev(5.04, 5.05), ev(7.0, 7.01), ev(9.0, 9.01)]
    c = score(truth, dets, classes=("fasciculation",), own=own)["fasciculation"]
    assert c == Counts(n_true=1, n_detected=3, matched=1, own=1)
    assert math.isclose(c.f1, 2 / 4)
    assert math.isclose(c.f1_counting_own, 2 / 5)
    assert score(truth, dets, classes=("fasciculation",))["fasciculation"] == Counts(1, 4, 1, 0)


def test_an_injected_event_on_an_own_event_is_matched_first() -> None:
    truth = [ev(5.0, 5.01)]
    c = score(truth, [ev(5.0, 5.01)], classes=("fasciculation",), own=[ev(5.0, 5.01)])["fasciculation"]
    assert c == Counts(1, 1, 1, 0)
    assert c.f1 == 1.0


def test_matching_prefers_the_detection_that_leaves_room_for_the_next_event() -> None:
    truth = [ev(0.0, 5.0), ev(4.0, 6.0)]
    dets = [ev(4.5, 4.6), ev(0.0, 1.0)]  # the first true event can take either; only one fits the second
    assert match_count(truth, dets, tolerance_s=0.0) == 2
    assert sorted(match_pairs(truth, dets, tolerance_s=0.0)) == [(0, 1), (1, 0)]


def _max_matching(truth: list[Event], dets: list[Event], tol: float) -> int:
    """Brute force: augmenting paths over the overlap graph."""
    adj = [[j for j, d in enumerate(dets) if d.start < t.end + tol and d.end > t.start - tol] for t in truth]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(truth)))


intervals = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda p: ev(p[0] / 100, (p[0] + p[1]) / 100)),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(truth=intervals, dets=intervals, tol=st.sampled_from([0.0, 0.02, 0.05]))
def test_matching_is_a_maximum_one_to_one_matching(truth: list[Event], dets: list[Event], tol: float) -> None:
    pairs = match_pairs(truth, dets, tol)
    assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs})
    for i, j in pairs:
        assert dets[j].start < truth[i].end + tol
        assert dets[j].end > truth[i].start - tol
    assert len(pairs) == _max_matching(truth, dets, tol)


def test_counts_metrics_and_merge() -> None:
    assert math.isnan(Counts(0, 3, 0).sensitivity)
    assert Counts(0, 3, 0).f1 == 0.0
    assert math.isnan(Counts(4, 0, 0).precision)
    assert math.isnan(Counts().f1)
    m = merge({"a": Counts(2, 2, 1)}, {"a": Counts(3, 1, 1), "b": Counts(1, 0, 0)})
    assert m == {"a": Counts(5, 3, 2), "b": Counts(1, 0, 0)}


def test_spread_over_runs() -> None:
    s = spread([0.8, 0.9, float("nan"), 1.0])  # a run with nothing to score is left out
    assert (s.n, s.lo, s.hi) == (3, 0.8, 1.0)
    assert s.mean == pytest.approx(0.9)
    assert s.sd == pytest.approx(0.1)  # sample SD (n − 1)
    assert s.sem == pytest.approx(0.1 / math.sqrt(3))
    one = spread([0.5])
    assert one.mean == 0.5
    assert math.isnan(one.sd)
    assert math.isnan(one.sem)
    assert spread([]).n == 0


def test_event_rejects_negative_duration() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        ev(2.0, 1.0)


# --- false twitches --------------------------------------------------------------------------------------


def test_false_twitches_count_twitch_detections_that_start_in_the_spans() -> None:
    spans = [(10.0, 40.0), (70.0, 100.0)]  # one minute in all
    dets = [
        ev(9.9, 10.5),  # starts before: not counted
        ev(10.0, 10.1),
        ev(39.99, 41.0, "myoclonic_jerk"),
        ev(20.0, 30.0, "sustained"),  # activity, not a twitch
        ev(50.0, 50.1),  # between the spans
        ev(80.0, 80.5, TWITCH),
        ev(99.0, 99.01, "artifact"),
    ]
    assert [e.start for e in within(dets, spans)] == [10.0, 39.99, 20.0, 80.0, 99.0]
    assert false_twitches(dets, spans) == 3
    assert false_twitches_per_minute(dets, spans, lanes=3) == pytest.approx(1.0)
    assert math.isnan(false_twitches_per_minute(dets, [], lanes=1))


def test_pair_crossings_of_offline_tools() -> None:
    assert pair_crossings([5, 1, 9, 3], 20) == [(1, 3), (5, 9)]
    assert pair_crossings([2, 7, 11], 20) == [(2, 7), (11, 20)]
    assert pair_crossings([], 20) == []


# --- spans and segmentation ------------------------------------------------------------------------------


def test_mask_and_spans_round_trip() -> None:
    mask = np.zeros(100, dtype=bool)
    mask[10:20] = mask[50:100] = True
    spans = data.mask_to_spans(mask, 10.0)
    assert spans == ((1.0, 2.0), (5.0, 10.0))
    assert np.array_equal(data.spans_to_mask(spans, 100, 10.0), mask)


def test_envelope_rule_finds_a_contraction_and_the_rest_around_it() -> None:
    rate = 1000.0
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3.0, (20_000, 1))
    x[8000:11000, 0] += rng.normal(0, 60.0, 3000)
    rest, active = data.envelope_segments(x, rate)
    assert len(active) == 1
    assert 7.5 < active[0][0] < 8.0
    assert 11.0 < active[0][1] < 11.5
    # Rest ends 0.3 s before the contraction and begins the rest gate's guard behind it (2 s).
    assert all(b <= active[0][0] - 0.3 or a >= active[0][1] + data.AFTER_ACTIVITY_S for a, b in rest)
    assert any(abs(a - (active[0][1] + data.AFTER_ACTIVITY_S)) < 0.01 for a, _ in rest)
    assert sum(b - a for a, b in rest) > 12.0


# --- loaders ---------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_biosppy_text_emg_counts_to_microvolts(tmp_path: Path) -> None:
    header = "# Simple Text Format\n# Sampling Rate (Hz):= 1000.00\n# Resolution:= 12\n# Labels:= EMG\n"
    samples = "\n".join(str(2048 + k % 3 - 1) for k in range(3000))
    rec = data.load_biosppy_emg(_write(tmp_path / "emg.txt", header + samples + "\n"))
    assert rec.rate == 1000.0
    assert rec.x.shape == (3000, 1)
    assert rec.unit == "µV"
    assert set(np.round(rec.x[:, 0] / data.BITALINO_UV_PER_COUNT).astype(int)) == {-1, 0, 1}
    assert pytest.approx(0.7985, abs=1e-4) == data.BITALINO_UV_PER_COUNT


def test_biosppy_text_needs_a_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Sampling Rate"):
        data.load_biosppy_emg(_write(tmp_path / "emg.txt", "# Resolution:= 12\n2048\n2049\n"))


def test_accelerometer_units_follow_the_numbers_not_the_header() -> None:
    g = np.tile([[0.0, 0.0, 1.0]], (10, 1))
    assert np.array_equal(data.acc_to_g(g, "m/s^2")[0], g)
    assert np.allclose(data.acc_to_g(g * data.G, "m/s^2")[0], g)
    with pytest.raises(ValueError, match="neither"):
        data.acc_to_g(g * 100, "m/s^2")


def test_shared_accelerometer_is_in_g() -> None:
    rec = data.load_biosppy_acc(RECORDINGS / "biosppy_examples" / "acc.txt")
    assert rec.rate == 100.0
    assert rec.x.shape == (2000, 3)
    assert 0.9 < np.median(np.linalg.norm(rec.x, axis=1)) < 1.1
    assert "header unit" in rec.note


def _wfdb(tmp_path: Path, raw: np.ndarray, gain: str = "200(100)/mV", checksum: int | None = None) -> Path:
    raw.astype("<i2").tofile(tmp_path / "r.dat")
    cs = int(raw.astype(np.int64).sum()) & 0xFFFF if checksum is None else checksum
    cs = cs - 65536 if cs >= 32768 else cs
    hea = f"r 1 500 {raw.size}\nr.dat 16 {gain} 12 0 {raw[0]} {cs} 0 EMG\n# a comment\n"
    return _write(tmp_path / "r.hea", hea)


def test_wfdb_gain_baseline_and_units(tmp_path: Path) -> None:
    raw = np.array([100, 300, -100, 32000], dtype=np.int64)
    rate, x, signals = data.read_wfdb(_wfdb(tmp_path, raw))
    assert rate == 500.0
    assert signals[0].baseline == 100
    assert signals[0].gain == 200.0
    assert np.allclose(x[:, 0], (raw - 100) / 200 * 1000)  # mV → µV


def test_wfdb_checksum_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checksum"):
        data.read_wfdb(_wfdb(tmp_path, np.array([1, 2, 3]), checksum=7))


def test_physionet_emgdb_records() -> None:
    why = "PhysioNet emgdb: its licence could not be checked, so it is not copied"
    healthy = shared_only("physionet_emgdb/emg_healthy.hea", why)
    shared_only("physionet_emgdb/emg_healthy.dat", why)
    myopathy = shared_only("physionet_emgdb/emg_myopathy.hea", why)
    rec = data.load_emgdb(healthy)
    assert rec.rate == 4000.0
    assert rec.x.shape == (50860, 1)
    assert not rec.surface
    assert rec.x[0, 0] == pytest.approx(-333 / 10000 * 1000)  # first sample −333 at 10000/mV, in µV
    _, _, n, signals = data.read_wfdb_header(myopathy)
    assert n == 110337
    assert signals[0].unit == "mv"
    assert signals[0].gain == 10000.0


def test_myo_is_held_at_200_hz_with_labels(tmp_path: Path) -> None:
    rows = ["time\t" + "\t".join(f"channel{i}" for i in range(1, 9)) + "\tclass"]
    for t in range(1, 3001):  # 3 s of rows 1 ms apart; values change every 10 ms
        v = ((t // 10) % 5 - 2) * 1e-5
        rows.append(f"{t}\t" + "\t".join(str(v) for _ in range(8)) + f"\t{1 if t < 1500 else 3}")
    rec = data.load_myo(_write(tmp_path / "1_raw_data_x.txt", "\n".join(rows) + "\n"))
    assert rec.rate == 200.0
    assert rec.x.shape == (600, 8)
    assert rec.labels is not None
    assert rec.labels[0] == 1
    assert rec.labels[-1] == 3
    assert np.allclose(rec.x[:4, 0], np.array([-20.0, -20.0, -10.0, -10.0]))  # held values, µV


def test_hold_resampling_takes_the_latest_row() -> None:
    t = np.array([0.0, 4.0, 5.0, 12.0])
    v = np.array([1, 2, 3, 4])
    assert list(data.resample_hold(t, v, 200.0)) == [1, 3, 3]  # ticks at 0, 5 and 10 ms


def test_openhdemg_ramp() -> None:
    rec = data.load_otb(shared_only("openhdemg_otb/otb_testfile.mat", "openhdemg's data is GPL-3.0"))
    assert rec.rate == 2048.0
    assert rec.x.shape == (66560, len(data.OTB_CHANNELS))
    assert len(rec.active) == 1
    assert 1.0 < rec.active[0][0] < 3.0
    assert 29.0 < rec.active[0][1] < 32.0
    assert all(b <= rec.active[0][0] or a >= rec.active[0][1] for a, b in rec.rest)


# --- synthetic data (collector.synth's generator, or the local stand-in) ---------------------------------


def test_generated_truth_lies_inside_the_signal() -> None:
    phys = data.physiology(20.0, fasciculation=30.0, myoclonic_jerk=6.0, sustained=3.0, artifact=3.0)
    x, truth = data.generate("emg", 1000.0, 30.0, phys, seed=3)
    events = data.truth_events(truth, lane=2)
    assert x.shape[0] == 30_000
    assert events
    assert all(e.lane == 2 and 0.0 <= e.start < e.end <= 30.0 for e in events)
    assert {e.kind for e in events} <= {"fasciculation", "myoclonic_jerk", "sustained", "artifact"}


def test_injected_events_stay_on_the_rest_mask() -> None:
    rate = 1000.0
    background = np.random.default_rng(1).normal(0, 3.0, (40_000, 1))
    mask = np.zeros(40_000, dtype=bool)
    mask[5_000:15_000] = mask[25_000:38_000] = True
    phys = data.physiology(20.0, fasciculation=60.0, myoclonic_jerk=10.0, sustained=0.0, artifact=0.0)
    x, truth = data.inject(background, "emg", rate, phys, seed=2, rest_mask=mask)
    events = data.truth_events(truth)
    assert x.shape == background.shape
    assert len(events) >= 5
    for e in events:
        assert mask[round(e.start * rate) : round(e.end * rate)].all()
    assert np.array_equal(x[~mask], background[~mask])  # nothing outside the rest mask changes


def test_injection_seeds_never_share_a_lane_schedule() -> None:
    seeds = accuracy.injection_seeds(1, 5)
    assert len(seeds) == 5
    lane_seeds = [s + lane for s in seeds for lane in range(accuracy.SEED_STRIDE)]  # inject uses seed + lane
    assert len(set(lane_seeds)) == len(lane_seeds)


def test_injected_pools_seeds_per_recording_and_recordings_per_seed() -> None:
    rec = data.Recording(
        "noise",
        "emg",
        1000.0,
        np.random.default_rng(4).normal(0, 3.0, (30_000, 2)),
        "µV",
        rest=((0.0, 30.0),),
    )
    res = accuracy.injected(
        [rec], 20.0, ["twitchwatch"], accuracy.injection_seeds(7, 3), min_fasciculations=0
    )
    per_seed = [by["twitchwatch"].counts[TWITCH] for by in res.by_seed.values()]
    assert len(per_seed) == 3
    assert len({c.n_true for c in per_seed}) > 1  # different schedules
    pooled = res.by_rec["noise"]["twitchwatch"].counts[TWITCH]
    assert pooled == sum(per_seed, Counts())
    # one run of the same seed, scored on its own, is one of the pooled parts
    _, truth, rest = accuracy.inject_rest(rec, data.physiology(20.0, **accuracy.INJECTED_RATES), 107)
    assert {e.lane for e in truth} == {0, 1}  # each channel its own schedule
    assert rest[0][0] >= accuracy.WARMUP_S
    assert per_seed[1].n_true == len(truth)


def test_a_recording_with_little_rest_gets_more_schedules_outside_the_per_seed_spread() -> None:
    rec = data.Recording(
        "short rest",
        "emg",
        1000.0,
        np.random.default_rng(5).normal(0, 3.0, (12_000, 1)),
        "µV",
        rest=((0.0, 12.0),),
    )
    seeds = accuracy.injection_seeds(7, 2)
    res = accuracy.injected([rec], 20.0, ["twitchwatch"], seeds, min_fasciculations=20)
    assert len(res.by_seed) == 2  # the spread stays over the common seeds
    pooled = res.by_rec["short rest"]["twitchwatch"].counts["fasciculation"]
    spread = sum((by["twitchwatch"].counts["fasciculation"] for by in res.by_seed.values()), Counts())
    assert spread.n_true < 20 <= pooled.n_true  # more schedules until it holds 20


def test_a_method_that_cannot_run_on_a_recording_is_pooled_over_the_others() -> None:
    res = accuracy.Injected()
    res.add("a", 1, "m", accuracy.Outcome({TWITCH: Counts(4, 4, 3)}))
    res.add("myo", 1, "m", accuracy.Outcome(error="cannot run at 200 Hz"))
    assert res.by_rec["myo"]["m"].error  # shown as n/a in its row
    assert res.by_seed[1]["m"].counts == {TWITCH: Counts(4, 4, 3)}
    assert not res.by_seed[1]["m"].error


def test_streaming_run_reports_the_chunk_each_detection_came_back_in() -> None:
    phys = data.physiology(30.0, fasciculation=40.0, myoclonic_jerk=0.0, sustained=0.0, artifact=0.0)
    x, truth = data.generate("emg", 1000.0, 20.0, phys, seed=5)
    emitted = run_twitchwatch(x, 1000.0, "emg", chunk=100)
    assert emitted
    assert len(truth) > 5
    for e in emitted:
        if e.emitted_at is not None:
            assert e.emitted_at % 100 == 0 or e.emitted_at == x.shape[0]
            assert e.emitted_at >= round(e.event.end * 1000.0)


def test_rest_diagnosis_sees_what_the_detector_emits_and_the_blips() -> None:
    phys = data.physiology(20.0, fasciculation=40.0, myoclonic_jerk=6.0, sustained=2.0, artifact=1.0)
    x, _ = data.generate("emg", 1000.0, 30.0, phys, seed=6)
    released = rest_diagnosis.trace(x, 1000.0)  # raises if its rule disagrees with the engine's class
    emitted = [e.event for e in run_twitchwatch(x, 1000.0, "emg", chunk=100)]
    shown = [(r.lane, r.start, r.end, r.kind.value) for r in released if not r.blip]
    assert sorted(shown) == sorted((e.lane, e.start, e.end, e.kind) for e in emitted)
    assert {r.rule for r in released} >= {"isolated", "jerk"}
