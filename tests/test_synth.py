"""Synthetic physiology: determinism, the SNR definition, event shapes and classes, injection on a real
background."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from tests.datafiles import RECORDINGS
from twitchwatch.collector.synth import (
    LEAD_S,
    MIN_SPACING_S,
    REST_MARGIN_S,
    SNR_SPREAD_DB,
    Physiology,
    _Muap,
    analysis_band,
    generate,
    inject,
    noise_level,
)

QUIET = Physiology(fasciculation=0, myoclonic_jerk=0, sustained=0, artifact=0)
ONLY_FASC = Physiology(fasciculation=30, myoclonic_jerk=0, sustained=0, artifact=0)
EVERYTHING = Physiology(fasciculation=20, myoclonic_jerk=4, sustained=2, artifact=4)
BIOSPPY = RECORDINGS / "biosppy_examples" / "emg.txt"


def test_deterministic_by_seed() -> None:
    a = generate("emg", 1000.0, 60, EVERYTHING, seed=1)
    b = generate("emg", 1000.0, 60, EVERYTHING, seed=1)
    c = generate("emg", 1000.0, 60, EVERYTHING, seed=2)
    assert np.array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (60000, 1)
    g = generate("acc", 100.0, 30, Physiology(posture_changes=2, walking=1), seed=1)
    assert g[0].shape == (3000, 3)
    assert g[1] == generate("acc", 100.0, 30, Physiology(posture_changes=2, walking=1), seed=1)[1]


@pytest.mark.parametrize(("signal", "fs"), [("emg", 200.0), ("emg", 1000.0), ("emg", 2000.0), ("acc", 50.0)])
def test_fasciculation_amplitude_follows_the_snr_definition(signal: str, fs: float) -> None:
    """A = 10^(snr/20) · σ_n within the ±3 dB spread, σ_n the band-limited robust noise RMS; the median
    event sits at snr_db."""
    for snr in (14.0, 20.0, 26.0):
        phys = Physiology(fasciculation=30, myoclonic_jerk=0, sustained=0, artifact=0, snr_db=snr)
        _, truth = generate(signal, fs, 120, phys, seed=3)  # type: ignore[arg-type]
        background, _ = generate(signal, fs, 120, QUIET, seed=3)  # type: ignore[arg-type]
        sigma = float(noise_level(background, signal, fs)[0])  # type: ignore[arg-type]
        db = 20 * np.log10(np.array([t.amplitude for t in truth]) / sigma)
        assert len(truth) > 40
        assert np.all(np.abs(db - snr) <= SNR_SPREAD_DB + 0.3)
        assert np.median(db) == pytest.approx(snr, abs=1.0)


def test_sampled_peak_is_the_amplitude() -> None:
    x, truth = generate("emg", 1000.0, 60, ONLY_FASC, seed=4)
    base = np.median(x[:, 0])
    for t in truth[:10]:
        i0, i1 = int(t.start_ns / 1e6), int(t.end_ns / 1e6) + 1
        wave = x[i0:i1, 0] - base
        assert np.max(np.abs(wave)) == pytest.approx(t.amplitude, rel=0.25)  # noise and wander ride on it


def test_rates_classes_and_spacing() -> None:
    phys = Physiology(fasciculation=30, myoclonic_jerk=3, sustained=1, artifact=2)
    _, truth = generate("emg", 1000.0, 1800, phys, seed=5)
    counts = Counter(t.kind for t in truth)
    minutes = 30
    assert counts["fasciculation"] == pytest.approx(30 * minutes, rel=0.15)
    assert counts["myoclonic_jerk"] == pytest.approx(3 * minutes, rel=0.35)
    assert counts["sustained"] == pytest.approx(1 * minutes, rel=0.5)
    assert counts["artifact"] == pytest.approx(2 * minutes, rel=0.35)
    assert {t.detail for t in truth if t.kind == "artifact"} == {"pop", "motion", "saturation"}
    assert {t.detail for t in truth if t.kind == "sustained"} == {"voluntary", "cramp"}
    starts = [t.start_ns for t in truth]
    assert starts == sorted(starts)
    assert truth[0].start_ns >= LEAD_S * 1e9
    for a, b in itertools.pairwise(truth):  # never overlapping, twitches isolated
        assert b.start_ns - a.end_ns >= MIN_SPACING_S * 1e9 - 1e6 - 0.05e9  # a pop's truth ends at τ
    jerks = [t for t in truth if t.kind == "myoclonic_jerk"]
    assert all(0.02 <= (t.end_ns - t.start_ns) / 1e9 <= 0.25 for t in jerks)
    fascs = [t for t in truth if t.kind == "fasciculation"]
    assert all(0.005 <= (t.end_ns - t.start_ns) / 1e9 <= 0.015 for t in fascs)
    assert all(t.unit == "µV" and t.muscle == "m" for t in truth)


def test_motor_unit_potentials_are_bi_and_triphasic_with_zero_area() -> None:
    rng = np.random.default_rng(6)
    phases: Counter[int] = Counter()
    for _ in range(200):
        m = _Muap.draw(rng, float(rng.uniform(0.005, 0.015)))
        t = np.linspace(-0.02, 0.02, 4001)
        w = m.wave(t, 1e5)
        assert abs(np.sum(w) * (t[1] - t[0])) < 1e-3 * np.max(np.abs(w)) * 0.02  # no net area
        big = w[np.abs(w) > 0.2 * np.max(np.abs(w))]
        phases[int(np.count_nonzero(np.diff(np.sign(big)) != 0)) + 1] += 1
    assert phases[2] > 20
    assert phases[3] > 20


def test_artifacts_and_saturation_look_as_they_should() -> None:
    phys = Physiology(fasciculation=0, myoclonic_jerk=0, sustained=0, artifact=6)
    x, truth = generate("emg", 1000.0, 300, phys, seed=7)
    by = {d: [t for t in truth if t.detail == d] for d in ("pop", "saturation", "motion")}
    assert all(by.values())
    sat = by["saturation"][0]
    i0 = round(sat.start_ns / 1e6)
    flat = x[i0 + 1 : i0 + 15, 0]
    assert np.all(flat == flat[0])  # the amplifier sits at its rail: identical samples
    pop = by["pop"][0]
    i0 = round(pop.start_ns / 1e6)
    before, after = np.median(x[i0 - 50 : i0 - 5, 0]), np.median(x[i0 + 2 : i0 + 10, 0])
    assert abs(after - before) == pytest.approx(pop.amplitude, rel=0.2)  # a step


def test_accelerometer_posture_and_walking() -> None:
    fs = 100.0
    phys = Physiology(
        fasciculation=0, myoclonic_jerk=0, sustained=0, artifact=0, posture_changes=1, walking=1
    )
    x, truth = generate("acc", fs, 600, phys, seed=8)
    posture = next(t for t in truth if t.detail == "posture")
    a, b = round(posture.start_ns / 1e9 * fs), round(posture.end_ns / 1e9 * fs)
    g0, g1 = x[a - 50 : a].mean(axis=0), x[b : b + 50].mean(axis=0)
    assert np.linalg.norm(g1) == pytest.approx(1.0, abs=0.05)  # still 1 g, pointing elsewhere
    assert np.linalg.norm(g1 - g0) == pytest.approx(posture.amplitude, rel=0.1)
    assert np.degrees(np.arccos(np.clip(g0 @ g1 / np.linalg.norm(g0) / np.linalg.norm(g1), -1, 1))) > 15
    walk = next(t for t in truth if t.detail == "walking")
    a, b = round(walk.start_ns / 1e9 * fs) + 100, round(walk.end_ns / 1e9 * fs) - 100
    mag = np.linalg.norm(x[a:b], axis=1) - 1.0
    spectrum = np.abs(np.fft.rfft(mag - mag.mean()))
    freqs = np.fft.rfftfreq(mag.size, 1 / fs)
    assert 1.5 <= freqs[np.argmax(spectrum)] <= 2.3  # ~2 steps a second
    assert 0.1 <= np.max(np.abs(mag)) <= 1.0  # heel strikes of 0.1–0.5 g on the bounce


def test_inject_on_a_background_respects_rest_and_local_noise() -> None:
    fs = 1000.0
    rng = np.random.default_rng(9)
    bg = rng.normal(0, 2.0, (240000, 1)) + 2048.0
    bg[120000:] = rng.normal(0, 8.0, (120000, 1)) + 2048.0  # the second half is 12 dB noisier
    rest = np.ones(bg.shape[0], dtype=bool)
    rest[60000:90000] = False  # "voluntary activity" here: no events may land in it
    before = bg.copy()
    x, truth = inject(bg, "emg", fs, ONLY_FASC, seed=1, rest_mask=rest)
    assert np.array_equal(bg, before)  # the caller's array is left alone
    assert len(truth) > 60
    margin = REST_MARGIN_S * 1e9
    for t in truth:
        assert not (60e9 - margin < t.end_ns and t.start_ns < 90e9 + margin)
    quiet = [t.amplitude for t in truth if t.end_ns < 119e9]
    loud = [t.amplitude for t in truth if t.start_ns > 121e9]
    assert np.median(loud) / np.median(quiet) == pytest.approx(4.0, rel=0.2)  # scaled to local noise
    again = inject(bg, "emg", fs, ONLY_FASC, seed=1, rest_mask=rest)
    assert np.array_equal(again[0], x)
    assert again[1] == truth


def test_inject_on_the_real_biosppy_recording() -> None:
    raw = np.loadtxt(BIOSPPY)[:, None]
    _, truth = inject(raw, "emg", 1000.0, ONLY_FASC, seed=2)
    assert len(truth) > 20
    sigma = float(noise_level(raw, "emg", 1000.0)[0])
    db = 20 * np.log10(np.median([t.amplitude for t in truth]) / sigma)
    assert db == pytest.approx(20.0, abs=2.5)  # local noise ≈ global noise on this quiet recording


def test_analysis_band() -> None:
    assert analysis_band("emg", 1000.0) == (20.0, 450.0)
    assert analysis_band("emg", 200.0) == (20.0, 90.0)
    assert analysis_band("acc", 25.0) == (5.0, 11.25)
    assert analysis_band("acc", 416.0) == (5.0, 100.0)


def test_physiology_validation() -> None:
    with pytest.raises(ValueError, match="fasciculation"):
        Physiology(fasciculation=-1)
    with pytest.raises(ValueError, match="noise"):
        Physiology(noise=-3.0)
    with pytest.raises(ValueError, match="signal"):
        generate("ecg", 1000.0, 10, ONLY_FASC, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3 axes"):
        inject(np.zeros((1000, 2)), "acc", 100.0, ONLY_FASC, seed=0)
    with pytest.raises(ValueError, match="rest_mask"):
        inject(np.zeros((1000, 1)), "emg", 1000.0, ONLY_FASC, seed=0, rest_mask=np.ones(10, dtype=bool))
