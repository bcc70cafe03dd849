"""What an ideal detector would find: a matched filter for the known shape in white Gaussian noise.

Run: ``.venv/bin/python -m bench.ideal`` (seconds; ``--quick`` for fewer events).

The model, for each configuration (1-kHz and 200-Hz EMG, a 100-Hz accelerometer) and SNR:

- **Signal**: ``collector.synth``'s fasciculations exactly as ``synth.generate`` renders them (random
  motor-unit potential shapes of 5–15 ms with the device's anti-aliasing, or the accelerometer's
  15–30-Hz sin²-windowed transients, at their sub-sample timing), each at the configuration's SNR ± 3 dB
  (``synth.SNR_SPREAD_DB``) under the project's definition SNR = 20·log10(A / σ_n): A the event's sampled
  peak, σ_n the band-passed robust RMS of the background (``synth.noise_level``).
- **Background**: white Gaussian noise only (``Physiology(hum=0, wander=0)``), per-sample σ_w; σ_n is what
  ``synth`` measures on it.
- **The ideal detector** sees the analysis band (``synth.analysis_band``: outside it real backgrounds are
  motion, wander, hum and aliasing) — a brick-wall projection P over a ``WINDOW_S`` window around the
  event — knows the shape s, its direction (accelerometer) and its time, and correlates the data with
  the template P·s. Its output at the event is Gaussian with mean d and unit variance, where

      d = ‖P·s‖ / σ_w        (σ_w: per axis for the accelerometer)

  so d = ρ·√(e·β·k) with ρ = 10^(SNR/20), e = ‖P·s‖²/A² (the shape's energy in the band relative to its
  peak², in samples), β = σ_n²/σ_w² (the share of white noise the analysis band passes) and k = 3 axes
  for the accelerometer (σ_n sums the axes in power), 1 for EMG.
- **Threshold** u for ``FALSE_PER_HOUR`` false alarms per hour per lane: the expected number of upcrossings
  of u by the (unit-variance, stationary) matched-filter output per sample is exactly
  P(y₀ ≤ u < y₁) = ∫ᵤ^∞ φ(y)·Φ((u − r·y)/√(1−r²)) dy, r the template's lag-1 autocorrelation; u solves
  fs × that = 1/3600 s.
- **Detection probability** of one event: P_d = Q(u − d); the table gives its mean over the events.

Monte-Carlo (``MC_NOISE`` fresh white-noise realisations per event): the same statistic computed on the
data — ⟨P·s, s + n⟩ / (σ_w‖P·s‖) — compared with each event's u; and the false-alarm rate counted on long
noise at thresholds where a count is possible (100 and 1000 per hour), against the formula.

Beside it, the detector's measured fasciculation sensitivity on the same generated signals (rest: only
fasciculations, 30 a minute, white background) through the full chain (detector + rest gate).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import integrate, optimize
from scipy import signal as sps
from scipy.stats import norm

from bench import data
from bench.baselines import twitchwatch_gated
from bench.data import SignalKind
from bench.scoring import score
from twitchwatch.collector import synth

FloatArray = npt.NDArray[np.float64]

SNRS = (11.0, 14.0, 17.0, 20.0)
CONFIGS: tuple[tuple[SignalKind, float], ...] = (("emg", 1000.0), ("emg", 200.0), ("acc", 100.0))
FALSE_PER_HOUR = 1.0
WINDOW_S = 0.5  # the projection window around an event: ≫ a 5–90-ms shape and the band's ringing
MC_NOISE = 20  # fresh noise realisations per event in the Monte-Carlo
RATE_PER_MIN = 30.0
NOISE = {"emg": 3.0, "acc": 0.002}  # µV, g: synth's defaults (σ_w)


@dataclass(frozen=True)
class Shape:
    """One rendered event: its samples (window × axes), sampled peak A, and where it sits."""

    samples: FloatArray  # W × channels, the event alone (noise-free), window centred on it
    peak: float
    start_s: float
    end_s: float
    center: int  # sample index of the window's first sample in the recording


# --- the analytic side -----------------------------------------------------------------------------------


def band_projection(n: int, rate: float, band: tuple[float, float]) -> FloatArray:
    """The real-FFT bins of an n-sample window inside the band (1.0) or not (0.0)."""
    f = np.fft.rfftfreq(n, 1.0 / rate)
    return ((f >= band[0]) & (f <= band[1])).astype(np.float64)


def project(x: FloatArray, mask: FloatArray) -> FloatArray:
    """Brick-wall band projection of each column of a window (symmetric and idempotent)."""
    return np.asarray(np.fft.irfft(np.fft.rfft(x, axis=0) * mask[:, None], n=x.shape[0], axis=0))


def upcrossings_per_sample(u: float, r: float) -> float:
    """Expected upcrossings of u per sample by a stationary unit-variance Gaussian sequence with lag-1
    correlation r: P(y₀ ≤ u < y₁)."""
    if r >= 1.0:
        return 0.0
    s = math.sqrt(1.0 - r * r)
    val, _ = integrate.quad(lambda y: norm.pdf(y) * norm.cdf((u - r * y) / s), u, np.inf)
    return float(val)


def threshold(rate: float, r: float, per_hour: float = FALSE_PER_HOUR) -> float:
    """Matched-filter threshold (in output σ) for ``per_hour`` false alarms an hour at ``rate`` samples/s."""
    target = per_hour / 3600.0 / rate
    return float(optimize.brentq(lambda u: upcrossings_per_sample(u, r) - target, 0.0, 12.0, xtol=1e-6))


def lag1(t: FloatArray) -> float:
    """Lag-1 autocorrelation of the matched filter's output on white noise: the (samples × axes) template's
    own, summed over its axes as the output is."""
    return float(np.sum(t[1:] * t[:-1]) / np.sum(t * t))


def detection_probability(d: float, u: float) -> float:
    return float(norm.sf(u - d))


# --- the synthetic events --------------------------------------------------------------------------------


def rest_physiology(snr_db: float) -> synth.Physiology:
    return synth.Physiology(
        fasciculation=RATE_PER_MIN,
        myoclonic_jerk=0.0,
        sustained=0.0,
        artifact=0.0,
        snr_db=snr_db,
        hum=0.0,
        wander=0.0,
    )


def rendered(
    signal: SignalKind, rate: float, seconds: float, snr_db: float, seed: int
) -> tuple[FloatArray, FloatArray, float, list[Shape]]:
    """(signal with events, background alone, σ_n, the events alone in their windows): ``synth.generate``
    twice with one seed — the same background and schedule, the second with events too faint to matter."""
    phys = rest_physiology(snr_db)
    x, truth = synth.generate(signal, rate, seconds, phys, seed)
    bg, _ = synth.generate(signal, rate, seconds, rest_physiology(-300.0), seed)
    sigma_n = float(synth.noise_level(bg, signal, rate)[0])
    alone = x - bg
    w = round(WINDOW_S * rate)
    shapes = []
    for t in truth:
        if t.kind != "fasciculation":
            continue
        mid = round((t.start_ns + t.end_ns) / 2e9 * rate)
        a = mid - w // 2
        if a < 0 or a + w > x.shape[0]:
            continue
        shapes.append(Shape(alone[a : a + w].copy(), t.amplitude, t.start_ns / 1e9, t.end_ns / 1e9, a))
    return np.asarray(x), np.asarray(bg), sigma_n, shapes


@dataclass(frozen=True)
class Ideal:
    """One configuration at one SNR: the analytic and Monte-Carlo detection probabilities."""

    signal: SignalKind
    rate: float
    snr_db: float
    events: int
    energy: float  # mean e = ‖P·s‖²/A² (samples)
    beta: float  # σ_n² / σ_w²
    u: float  # mean threshold (output σ)
    d: float  # mean d
    pd: float  # analytic, mean over events
    pd_mc: float  # Monte-Carlo
    trials: int

    @property
    def mc_se(self) -> float:
        return math.sqrt(max(self.pd_mc * (1 - self.pd_mc), 1e-12) / self.trials)


def ideal(
    signal: SignalKind, rate: float, snr_db: float, seconds: float, seed: int, mc: int = MC_NOISE
) -> Ideal:
    _, _, sigma_n, shapes = rendered(signal, rate, seconds, snr_db, seed)
    sigma_w = NOISE[signal]
    beta = (sigma_n / sigma_w) ** 2 / (3.0 if signal == "acc" else 1.0)  # per axis for the accelerometer
    mask = band_projection(round(WINDOW_S * rate), rate, synth.analysis_band(signal, rate))
    rng = np.random.default_rng(seed + 7)
    pds, hits, us, ds, es = [], 0, [], [], []
    for sh in shapes:
        t = project(sh.samples, mask)
        norm_t = float(np.sqrt(np.sum(t * t)))
        d = norm_t / sigma_w
        u = threshold(rate, lag1(t))
        pds.append(detection_probability(d, u))
        us.append(u)
        ds.append(d)
        es.append(norm_t**2 / sh.peak**2)
        noise = rng.normal(0.0, sigma_w, (mc, *sh.samples.shape))
        stat = np.einsum("ij,mij->m", t, sh.samples[None] + noise) / (sigma_w * norm_t)
        hits += int(np.sum(stat > u))
    n = len(shapes)
    return Ideal(
        signal,
        rate,
        snr_db,
        n,
        float(np.mean(es)),
        beta,
        float(np.mean(us)),
        float(np.mean(ds)),
        float(np.mean(pds)),
        hits / (n * mc),
        n * mc,
    )


def false_alarm_check(
    signal: SignalKind, rate: float, seconds: float, seed: int, per_hour: Sequence[float] = (100.0, 1000.0)
) -> list[tuple[float, float, int]]:
    """(false alarms per hour the formula sets the threshold for, counted per hour, count) on white noise,
    pooled over the templates of one rendering."""
    _, _, _, shapes = rendered(signal, rate, 60.0, 20.0, seed)
    sigma_w = NOISE[signal]
    mask = band_projection(round(WINDOW_S * rate), rate, synth.analysis_band(signal, rate))
    rng = np.random.default_rng(seed + 11)
    n = int(seconds * rate)
    counts = dict.fromkeys(per_hour, 0)
    hours = 0.0
    for sh in shapes[:8]:
        t = project(sh.samples, mask)
        noise = rng.normal(0.0, sigma_w, (n, t.shape[1]))
        y = sum(sps.fftconvolve(noise[:, a], t[::-1, a], mode="valid") for a in range(t.shape[1]))
        y = np.asarray(y) / (sigma_w * float(np.sqrt(np.sum(t * t))))
        hours += y.size / rate / 3600.0
        r = lag1(t)
        for lam in per_hour:
            u = threshold(rate, r, lam)
            counts[lam] += int(np.sum((y[:-1] <= u) & (y[1:] > u)))
    return [(lam, counts[lam] / hours, counts[lam]) for lam in per_hour]


# --- the detector on the same signals --------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    sensitivity: float
    f1: float
    false_per_hour: float
    n_true: int


def measured(signal: SignalKind, rate: float, snr_db: float, seconds: float, seed: int) -> Measured:
    """The full chain (detector + rest gate) on the same rendering: fasciculation sensitivity and F1, false
    fasciculations per hour."""
    x, _, _, _ = rendered(signal, rate, seconds, snr_db, seed)
    _, truth = synth.generate(signal, rate, seconds, rest_physiology(snr_db), seed)
    true_events = [e for e in data.truth_events(truth) if e.start >= 1.0]
    found = [e for e in twitchwatch_gated(x, rate, signal, (0.0, 0.5)) if e.start >= 0.95]
    c = score(true_events, found, classes=("fasciculation",))["fasciculation"]
    false = c.n_detected - c.matched
    return Measured(c.sensitivity, c.f1, false / (seconds - 1.0) * 3600.0, c.n_true)


# --- main ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="60-s renderings instead of 180 s")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    seconds = 60.0 if args.quick else 180.0
    t0 = time.perf_counter()
    print(
        f"ideal detector: matched filter for the known shape, white Gaussian noise, threshold for "
        f"{FALSE_PER_HOUR:g} false alarm per hour per lane; synth events at the SNR "
        f"± {synth.SNR_SPREAD_DB:g} dB; {RATE_PER_MIN:g} fasciculations/min, {seconds:g} s per cell"
    )
    head = (
        f"{'signal':>12} {'SNR dB':>6} {'n':>4} {'e=E/A²':>7} {'β':>5} {'d':>6} {'u':>5} "
        f"{'Pd ideal':>8} {'Pd MC':>12} {'detector Se':>11} {'F1':>5} {'false/h':>7}"
    )
    print(head)
    for signal, rate in CONFIGS:
        for snr in SNRS:
            print(f"  {signal} {rate:g} Hz {snr:g} dB …", file=sys.stderr, flush=True)
            i = ideal(signal, rate, snr, seconds, args.seed)
            m = measured(signal, rate, snr, seconds, args.seed)
            print(
                f"{signal + ' ' + format(rate, 'g') + ' Hz':>12} {snr:>6g} {i.events:>4} {i.energy:>7.2f} "
                f"{i.beta:>5.2f} {i.d:>6.2f} {i.u:>5.2f} {i.pd:>8.3f} {i.pd_mc:>6.3f} ±{i.mc_se:.3f} "
                f"{m.sensitivity:>11.3f} {m.f1:>5.2f} {m.false_per_hour:>7.0f}"
            )
    print("\nfalse alarms of the matched filter on white noise, counted against the formula:")
    for signal, rate in CONFIGS:
        checks = false_alarm_check(signal, rate, 600.0 if args.quick else 1800.0, args.seed)
        cells = "; ".join(f"set {lam:g}/h → counted {got:.0f}/h ({n})" for lam, got, n in checks)
        print(f"{signal + ' ' + format(rate, 'g') + ' Hz':>12}  {cells}")
    print(f"\nwhole run {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
