"""The ideal-detector bound (bench/ideal.py): its formulas against its own Monte-Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal as sps

from bench import ideal
from bench.data import SignalKind


def test_upcrossing_formula_counts_what_a_correlated_gaussian_sequence_does() -> None:
    """A unit-variance Gaussian sequence with lag-1 correlation r (white noise through a short FIR): the
    formula's expected upcrossings per sample against a count over 4 M samples."""
    rng = np.random.default_rng(0)
    taps = np.hanning(9)
    y = sps.lfilter(taps, 1.0, rng.normal(size=4_000_000))[20:]
    y /= np.sqrt(np.sum(taps**2))
    r = float(np.sum(taps[1:] * taps[:-1]) / np.sum(taps**2))
    for u in (2.5, 3.0, 3.5):
        counted = np.sum((y[:-1] <= u) & (y[1:] > u)) / (y.size - 1)
        expected = ideal.upcrossings_per_sample(u, r)
        assert counted == pytest.approx(expected, rel=0.08), u
    q = 0.5 * math.erfc(3.0 / math.sqrt(2.0))
    assert ideal.upcrossings_per_sample(3.0, 0.0) == pytest.approx((1 - q) * q, rel=1e-6)  # independent


def test_threshold_gives_its_false_alarm_rate() -> None:
    u = ideal.threshold(1000.0, 0.9, per_hour=1.0)
    assert ideal.upcrossings_per_sample(u, 0.9) * 1000.0 * 3600.0 == pytest.approx(1.0, rel=1e-3)
    assert ideal.threshold(200.0, 0.9) < u  # fewer samples an hour: a lower threshold for the same rate
    assert ideal.threshold(1000.0, 0.99) < u  # a smoother output crosses less often


@pytest.mark.parametrize(("signal", "rate"), [("emg", 200.0), ("acc", 100.0)])
def test_detection_probability_agrees_with_its_monte_carlo(signal: SignalKind, rate: float) -> None:
    snr = 14.0 if signal == "emg" else 9.0  # where P_d is neither 0 nor 1
    i = ideal.ideal(signal, rate, snr, 60.0, seed=5, mc=40)
    assert i.events > 20
    assert 0.1 < i.pd < 0.95
    assert i.pd_mc == pytest.approx(i.pd, abs=4 * i.mc_se + 0.01)


def test_matched_filter_false_alarms_counted_on_noise_match_the_formula() -> None:
    for per_hour, got, n in ideal.false_alarm_check("emg", 200.0, 300.0, seed=2, per_hour=(2000.0,)):
        assert n > 300
        assert got == pytest.approx(per_hour, rel=0.2)


def test_band_energy_and_noise_share_give_d() -> None:
    """d = ρ·√(e·β·k): the mean d of a rendering against the mean over its events' own terms."""
    i = ideal.ideal("emg", 1000.0, 14.0, 60.0, seed=1, mc=1)
    rho = 10 ** (14.0 / 20)
    assert i.d == pytest.approx(rho * np.sqrt(i.energy * i.beta), rel=0.25)  # the ±3 dB spread averages out
    assert 0.75 < i.beta < 0.9  # 20–450 Hz of white noise's 0–500 Hz through a 4th-order Butterworth
