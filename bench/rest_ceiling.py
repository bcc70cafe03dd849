"""How many injected fasciculations a detector could find on real rest at all: the matched filter that knows
each potential's time, against the real background's own potentials (``bench.accuracy`` part (b)).

Run: ``PYTHONPATH=. .venv/bin/python -m bench.rest_ceiling [--seeds 5]`` (~30 s).

``bench.ideal`` bounds the detector on white Gaussian noise. Real rest is not Gaussian: it carries the
muscle's own small potentials, and a threshold that must not count them (a relaxed muscle's own events are
false twitches to a person reading the rate) has to stand above them. Here, per real-rest recording at
≥ 1 kHz and per SNR:

- **Statistic**: the detector's own matched-filter bank (``processing.emg.matched_bank``: its six
  motor-unit potential templates through its band-pass, without the spike pulses), each template's output
  power over its noise gain × the band power around it (robust, over ±1 s: what the SNR definition
  measures at an injected event), the largest over the templates: χ²₁ around 1 on Gaussian noise. No
  colour normalisation (that only ever makes the detector stricter).
- **The background**: the recording's rest (nothing injected, from 2 s on) in 20-ms blocks, each block's
  largest statistic; ``level``: what its blocks pass ``RATE_PER_MIN`` times a minute (the detector's
  background-tail target; the k-th largest block, so a short rest gives a coarse level), beside the level
  band-passed Gaussian noise passes as often (``GAUSS_S`` of seeded noise) and their ratio.
- **The oracle** knows each injected fasciculation's time: its statistic is the largest within the event's
  span (+ a template's length); ``oracle Se``: the share passing ``level``. It need not find the potential
  in time nor tell its shape; its threshold is set on the very background it is scored on.
- **The price of a sensitivity** (``own/min @Se``): the level that share of the injected potentials pass,
  and how many times a minute the rest's own blocks pass it (runs of blocks) — the recording's own events
  a detector that finds that share would count, at best.

The detector's measured fasciculation sensitivity on the same injections (detector + rest gate, as
``bench.accuracy`` (b)) is printed beside it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy import signal as sps

from bench import data
from bench.accuracy import INJECTED_RATES, REAL_SEEDS, inject_rest, injection_seeds, reference
from bench.baselines import twitchwatch_gated
from bench.data import Recording
from bench.scoring import Span, score, span_seconds, within
from twitchwatch.processing.emg import EmgEngine, emg_params

FloatArray = npt.NDArray[np.float64]
RATE_PER_MIN = 1.0  # as the detector's background tail (processing.emg: tail_rate_per_min)
BLOCK_S = 0.02
GAUSS_S = 600.0
LOCAL_S = 1.0  # the SNR definition's σ_n: robust, within ±1 s of the event (bench.data.inject)
MIN_RATE_HZ = 1000.0  # the matched filter works from 1 kHz


class Bank:
    """The detector's potential templates and band-pass for one sample rate."""

    def __init__(self, rate: float) -> None:
        engine = EmgEngine(rate, 1, emg_params(rate))
        if engine._bank is None:
            raise ValueError(f"no matched filter at {rate:g} Hz")
        k = engine._potentials
        self.rate = rate
        self.sos = engine._sos
        self.rows = engine._bank[:k]
        self.gains = 1.0 / engine._bank_scale[:k]

    def band(self, x: FloatArray) -> FloatArray:
        return np.asarray(sps.sosfilt(self.sos, x), dtype=np.float64)

    def statistic(self, y: FloatArray, power: FloatArray) -> FloatArray:
        """Per sample: the largest template output power over its noise gain × ``power`` (per sample)."""
        out = np.zeros_like(y)
        for row, gain in zip(self.rows, self.gains, strict=True):
            z = np.convolve(y, row[::-1], mode="full")[: y.shape[0]]
            np.maximum(out, z * z / (gain * power), out=out)
        return out


def local_power(y: FloatArray, rate: float) -> FloatArray:
    """The band power around each sample as the SNR definition measures it at an injected event: robust,
    over ±``LOCAL_S`` (1.4826 × the moving median of |y|, squared)."""
    size = 2 * round(LOCAL_S * rate) + 1
    med = ndimage.median_filter(np.abs(y), size=size, mode="nearest")
    return np.asarray(np.maximum((1.4826 * med) ** 2, 1e-300), dtype=np.float64)


def block_maxima(s: FloatArray, rate: float, spans: Sequence[Span]) -> FloatArray:
    k = round(BLOCK_S * rate)
    out = []
    for a, b in spans:
        seg = s[round(a * rate) : round(b * rate)]
        n = seg.shape[0] // k * k
        if n:
            out.append(seg[:n].reshape(-1, k).max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def level_at(maxima: FloatArray, minutes: float, per_min: float) -> float:
    """The level ``maxima`` pass ``per_min`` times a minute (the k-th largest block)."""
    k = max(1, round(per_min * minutes))
    if maxima.shape[0] < k:
        return math.inf
    return float(np.sort(maxima)[-k])


def passes(maxima: FloatArray, level: float) -> int:
    """How many times the blocks pass ``level``: runs of blocks above it (a potential on a block edge,
    or one with its ringing, is one)."""
    above = maxima >= level
    return int(np.count_nonzero(above[1:] & ~above[:-1]) + int(above[:1].sum()))


def gaussian_level(bank: Bank, seed: int = 7) -> float:
    n = round(GAUSS_S * bank.rate)
    y = bank.band(np.random.default_rng(seed).standard_normal(n))
    s = bank.statistic(y, local_power(y, bank.rate))
    return level_at(block_maxima(s, bank.rate, [(1.0, GAUSS_S)]), GAUSS_S / 60.0, RATE_PER_MIN)


def oracle(rec: Recording, bank: Bank, snr: float, seeds: Sequence[int]) -> tuple[FloatArray, int, int]:
    """(the oracle's statistic of each injected fasciculation, found by the detector, its false ones)."""
    phys = data.physiology(snr, **INJECTED_RATES)
    stats: list[float] = []
    det_found = det_false = 0
    length = bank.rows.shape[1]
    for seed in seeds:
        x, truth, rest = inject_rest(rec, phys, seed)
        for lane in range(rec.channels):
            y = bank.band(x[:, lane])
            s = bank.statistic(y, local_power(bank.band(rec.x[:, lane]), rec.rate))
            for t in truth:
                if t.lane != lane or t.kind != "fasciculation":
                    continue
                a, b = round(t.start * rec.rate), round(t.end * rec.rate) + length
                stats.append(float(s[a:b].max()))
        events = twitchwatch_gated(x, rec.rate, rec.signal, reference(rec))
        c = score(truth, within(events, rest)).get("fasciculation")
        if c is not None:
            det_found += c.matched
            det_false += c.n_detected - c.matched
    return np.asarray(stats), det_found, det_false


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=REAL_SEEDS)
    parser.add_argument("--snr", type=float, nargs="+", default=[20.0, 17.0, 14.0])
    parser.add_argument(
        "--target", type=float, nargs="+", default=[0.95, 0.85], help="sensitivities to find the price of"
    )
    args = parser.parse_args(argv)
    seeds = injection_seeds(1, args.seeds)
    recs = [
        r
        for r in data.recordings()
        if r.signal == "emg" and r.rate >= MIN_RATE_HZ and span_seconds(r.rest) > 0
    ]
    print(
        f"oracle matched filter on real rest: found where it passes the level the rest's own blocks pass "
        f"{RATE_PER_MIN:g}× a minute; {len(seeds)} injection seeds"
    )
    cols = " ".join(f"{'own/min @' + format(t, 'g'):>13}" for t in args.target)
    print(
        f"{'recording':>16} {'rest min':>8} {'level':>7} {'Gauss':>6} {'ratio':>5} {'SNR':>4} {'n':>4} "
        f"{'oracle Se':>9} {'detector Se':>11} {cols}"
    )
    for rec in recs:
        bank = Bank(rec.rate)
        gauss = gaussian_level(bank)
        rest = [(max(a, 2.0), b) for a, b in rec.rest if b > 2.0]
        maxima = np.concatenate(
            [
                block_maxima(
                    bank.statistic(y := bank.band(rec.x[:, lane]), local_power(y, rec.rate)), rec.rate, rest
                )
                for lane in range(rec.channels)
            ]
        )
        minutes = span_seconds(rest) * rec.channels / 60.0
        if not minutes:
            continue
        level = level_at(maxima, minutes, RATE_PER_MIN)
        for snr in args.snr:
            stats, det, _ = oracle(rec, bank, snr, seeds)
            n = stats.shape[0]
            # The price of a sensitivity: the level that many of the injected potentials pass, and how often
            # a minute the rest's own blocks pass it (events of its own a detector would count there).
            price = " ".join(
                f"{np.count_nonzero(maxima >= np.quantile(stats, 1.0 - t)) / minutes:13.1f}"
                for t in args.target
            )
            print(
                f"{rec.name:>16} {minutes:8.2f} {level:7.1f} {gauss:6.1f} {level / gauss:5.2f} "
                f"{snr:4g} {n:4d} {np.mean(stats >= level):9.3f} {det / max(n, 1):11.3f} {price}"
            )


if __name__ == "__main__":
    main()
