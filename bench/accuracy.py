"""Detection accuracy: twitchwatch beside NeuroKit2 and BioSPPy on the same data, scored the same way.

Run: ``.venv/bin/python -m bench.accuracy`` (a minute or two; ``--quick`` for a ~30-s run).

(a) generated signals over a range of SNRs, every event class (``bench.data.generate``); and generated rest
    (fasciculations alone, 30 a minute) at 1 kHz and 200 Hz at ``DECENT_SNR_DB`` and ``FAINT_SNR_DB``
    through detector + rest gate, the issue-13 targets' generated half;
(b) the real recordings in ``../shared/data`` with twitches injected on their rest spans
    (``bench.data.inject``), scored on the rest spans; ``REAL_SEEDS`` injection schedules per recording,
    pooled (one schedule's ~100 true events move F1 by ±0.02), with the spread over the seeds; hybrid
    ground truth: a method's detections of the recording's own events (found before injection) are
    neither matches nor false positives, and are reported apart (``bench.scoring``);
(c) false twitches per lane-minute during the recordings' real voluntary activity (nothing injected);
(d) every part runs each method of ``bench.baselines.METHODS`` on the same arrays;
(e) every everyday recording (``../shared/data/realworld``, found by format) and the older ones through the
    detectors *and* the rest gate: twitch-class events per lane-minute of activity before and after the
    gate, what the gate rejected and why, the assessable fraction, and — nothing injected — the events
    counted in each recording's rest per lane-minute of rest (``bench.realworld``).

twitchwatch in (a) and (c) is the detector alone (as the offline tools are), except (a)'s generated rest;
in (b) and (e) it is the full chain the worker runs, detector + rest gate
(``bench.baselines.twitchwatch_gated``), so that a gate that vetoes real rest shows as a falling F1.

Scoring: ``bench.scoring`` (one-to-one matching, ±50 ms tolerance; offline tools' activations count as
``twitch`` events). Targets (issue 13): fasciculation F1 at rest ≥ 0.95 at ``DECENT_SNR_DB`` and ≥ 0.85 at
``FAINT_SNR_DB`` (1 kHz, generated and injected on real rest), ≥ 0.85 at ``DECENT_SNR_DB`` for EMG sampled at
≤ 250 Hz; the real-rest recordings' own twitch-class events (nothing injected) ≤ 2 per lane-minute of rest on
every recording, reported beside the hybrid F1 as the strict F1 that counts them as false; ≤ 0.3 twitch-class
events per lane-minute of everyday activity, EMG and accelerometer alike. Progress goes to stderr, tables to
stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench import data, realworld
from bench.baselines import LABELS, METHODS, NotApplicable, twitchwatch_gated
from bench.data import Recording, SignalKind
from bench.scoring import (
    CLASSES,
    TOLERANCE_S,
    TWITCH,
    Counts,
    Event,
    Span,
    false_twitches,
    merge,
    score,
    span_seconds,
    spread,
    within,
)
from twitchwatch.collector import synth

# A decent surface electrode: the detector work's reference SNR, Physiology's default (collector/synth.py; the
# SNR is 20·log10(fasciculation peak / band-limited robust noise RMS)).
DECENT_SNR_DB = float(synth.Physiology().snr_db)
FAINT_SNR_DB = 14.0  # a potential five times the rest noise: common with dry consumer electrodes
F1_TARGET = 0.95
F1_FAINT_TARGET = 0.85
F1_LOW_RATE_TARGET = 0.85  # EMG sampled at ≤ LOW_RATE_HZ, at DECENT_SNR_DB
LOW_RATE_HZ = 250.0
FALSE_PER_MIN_TARGET = 1.0

GENERATED_RATES = {"fasciculation": 30.0, "myoclonic_jerk": 4.0, "sustained": 2.0, "artifact": 1.0}
ACC_EXTRA_RATES = {"posture_changes": 0.5, "walking": 0.5}  # truth class "sustained" (gross movement)
INJECTED_RATES = {"fasciculation": 30.0, "myoclonic_jerk": 4.0, "sustained": 0.0, "artifact": 0.0}
REST_RATES = {"fasciculation": 30.0, "myoclonic_jerk": 0.0, "sustained": 0.0, "artifact": 0.0}
REST_CONFIGS = (1000.0, LOW_RATE_HZ - 50.0)  # generated rest: a 1-kHz sensor and a Myo-class 200-Hz one
REAL_SEEDS = 5  # injection seeds per recording in (b): one seed's ~100 true events move F1 by ±0.02
SEED_STRIDE = 100
WARMUP_S = 2.0  # nothing is injected in a recording's first seconds: every detector learns its noise there


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """A method's result on one piece of data: scores, or why it could not run."""

    counts: dict[str, Counts] = field(default_factory=dict)
    false: int = 0
    lane_minutes: float = 0.0
    seconds: float = 0.0
    error: str = ""

    def add(self, other: Outcome) -> Outcome:
        return Outcome(
            merge(self.counts, other.counts),
            self.false + other.false,
            self.lane_minutes + other.lane_minutes,
            self.seconds + other.seconds,
            self.error or other.error,
        )

    @property
    def per_minute(self) -> float:
        return self.false / self.lane_minutes if self.lane_minutes else float("nan")


def run(
    method: str, x: np.ndarray, rate: float, signal: SignalKind, rest_ref: Span, gated: bool = False
) -> tuple[list[Event], float, str]:
    """A method over ``x``; ``gated``: twitchwatch as the full chain (detector + rest gate)."""
    t0 = time.perf_counter()
    fn = twitchwatch_gated if gated and method == "twitchwatch" else METHODS[method]
    try:
        events = fn(x, rate, signal, rest_ref)
    except NotApplicable as exc:
        return [], 0.0, str(exc)
    return events, time.perf_counter() - t0, ""


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def f(v: float, width: int = 5) -> str:
    return f"{'—':>{width}}" if np.isnan(v) else f"{v:>{width}.2f}"


CELL = 17  # "0.98  0.91  0.94"
SUB = f"{'Se':>5} {'P':>5} {'F1':>5}"


def triple(c: Counts | None) -> str:
    if c is None or (c.n_true == 0 and c.n_detected == 0):
        return f"{'—':>{CELL}}"
    return f"{f(c.sensitivity)} {f(c.precision)} {f(c.f1)}"


# --- (a) generated data ----------------------------------------------------------------------------------


def generated(
    snrs: Sequence[float], seconds: float, methods: Sequence[str], seed: int, signal: SignalKind, rate: float
) -> dict[float, dict[str, Outcome]]:
    out: dict[float, dict[str, Outcome]] = {}
    for i, snr in enumerate(snrs):
        extra = ACC_EXTRA_RATES if signal == "acc" else {}
        phys = data.physiology(snr, **GENERATED_RATES, **extra)
        x, truth = data.generate(signal, rate, seconds, phys, seed + i, muscle="m")
        true_events = [e for e in data.truth_events(truth) if e.start >= 1.0]  # after the detector's warm-up
        out[snr] = {}
        for m in methods:
            events, secs, err = run(m, x, rate, signal, (0.0, 0.5))
            events = [e for e in events if e.start >= 1.0 - TOLERANCE_S]
            out[snr][m] = Outcome(score(true_events, events), seconds=secs, error=err)
        progress(f"  generated {signal} {snr:g} dB: {len(true_events)} true events")
    return out


def generated_rest(
    snrs: Sequence[float], seconds: float, seeds: Sequence[int]
) -> dict[tuple[float, float], Counts]:
    """Generated rest (fasciculations alone, ``REST_RATES``) through detector + rest gate: (rate, SNR) →
    fasciculation counts pooled over the seeds, after the detector's warm-up."""
    out: dict[tuple[float, float], Counts] = {}
    for rate in REST_CONFIGS:
        for snr in snrs:
            total = Counts()
            for seed in seeds:
                x, truth = data.generate("emg", rate, seconds, data.physiology(snr, **REST_RATES), seed)
                true_events = [e for e in data.truth_events(truth) if e.start >= 1.0]
                events = [e for e in twitchwatch_gated(x, rate, "emg", (0.0, 0.5)) if e.start >= 0.95]
                total = total + score(true_events, events)["fasciculation"]
            out[(rate, snr)] = total
            progress(f"  generated rest {rate:g} Hz {snr:g} dB: {total.n_true} fasciculations")
    return out


def rest_target(rate: float, snr: float) -> float:
    """The issue-13 fasciculation-F1 target at rest for a sample rate and SNR (NaN: none)."""
    if rate <= LOW_RATE_HZ:
        return F1_LOW_RATE_TARGET if snr >= DECENT_SNR_DB else float("nan")
    return F1_TARGET if snr >= DECENT_SNR_DB else F1_FAINT_TARGET if snr >= FAINT_SNR_DB else float("nan")


def target_note(value: float, target: float) -> str:
    return f"({verdict(value >= target)}: ≥ {target:g})" if target == target else "(no target)"


def print_generated_rest(res: dict[tuple[float, float], Counts]) -> None:
    print("\n(a) generated rest (fasciculations alone, 30 a minute), detector + rest gate: fasciculations")
    print(f"{'rate Hz':>8} {'SNR dB':>7} {SUB} {'n':>5}")
    for (rate, snr), c in res.items():
        print(f"{rate:>8g} {snr:>7g} {triple(c)} {c.n_true:>5}")


def print_generated_classes(res: dict[float, dict[str, Outcome]], title: str) -> None:
    print(f"\n{title}: twitchwatch per class (Se sensitivity, P precision; n true events)")
    print(f"{'':>6}" + "".join(f"  {c:>{CELL + 6}}" for c in CLASSES))
    print(f"{'SNR dB':>6}" + "".join(f"  {SUB} {'n':>5}" for _ in CLASSES))
    for snr, by in res.items():
        tw = by["twitchwatch"].counts
        cells = "".join(f"  {triple(tw.get(c))} {tw[c].n_true if c in tw else 0:>5}" for c in CLASSES)
        print(f"{snr:>6g}{cells}")


def print_side_by_side(
    res: dict[str, dict[str, Outcome]], methods: Sequence[str], row: str, title: str
) -> None:
    print(f"\n{title}: twitches (fasciculation or jerk; offline tools: every activation)")
    print(f"{'':>22}" + "".join(f"  {LABELS[m]:>{CELL}}" for m in methods))
    print(f"{row:>22}" + "".join(f"  {SUB}" for _ in methods))
    for key, by in res.items():
        cells = []
        for m in methods:
            o = by.get(m)
            cells.append(f"{'n/a':>{CELL}}" if o is None or o.error else triple(o.counts.get(TWITCH)))
        print(f"{key:>22}" + "".join(f"  {c}" for c in cells))


# --- (b) injected on real rest ---------------------------------------------------------------------------


def reference(rec: Recording) -> Span:
    """The offline tools' rest reference: the first second of the first rest span (else of the recording)."""
    a = rec.rest[0][0] if rec.rest else 0.0
    return (a, a + 1.0)


def injection_seeds(seed: int, n: int) -> list[int]:
    """``n`` injection seeds from ``seed``, ``SEED_STRIDE`` apart: each lane injects with seed + lane, so
    no two runs share a schedule on recordings of up to ``SEED_STRIDE`` channels."""
    return [seed + SEED_STRIDE * k for k in range(n)]


def inject_rest(
    rec: Recording, phys: synth.Physiology, seed: int
) -> tuple[np.ndarray, list[Event], list[Span]]:
    """The recording with events injected on its rest (after the warm-up, off the rest reference), each
    channel its own schedule; the truth; the spans that are scored."""
    ref = reference(rec)
    allowed = data.spans_to_mask(
        [(max(a, WARMUP_S), b) for a, b in rec.rest if b > WARMUP_S], rec.x.shape[0], rec.rate
    ) & ~data.spans_to_mask([ref], rec.x.shape[0], rec.rate)
    cols, truth = [], []
    for lane in range(rec.channels):
        x, t = data.inject(
            rec.x[:, lane : lane + 1],
            rec.signal,
            rec.rate,
            phys,
            seed + lane,
            muscle=f"ch{lane}",
            rest_mask=allowed,
        )
        cols.append(x[:, 0])
        truth += data.truth_events(t, lane)
    return np.stack(cols, axis=1), truth, list(data.mask_to_spans(allowed, rec.rate))


@dataclass
class Injected:
    """(b)'s outcomes: per recording pooled over the seeds, and per seed pooled over the recordings."""

    by_rec: dict[str, dict[str, Outcome]] = field(default_factory=dict)
    by_seed: dict[int, dict[str, Outcome]] = field(default_factory=dict)

    def add(self, name: str, seed: int, method: str, o: Outcome) -> None:
        rows = [self.by_rec.setdefault(name, {})]
        if not o.error:  # a seed pools the recordings the method could run on
            rows.append(self.by_seed.setdefault(seed, {}))
        for row in rows:
            row[method] = row[method].add(o) if method in row else o


def injected(recs: Sequence[Recording], snr: float, methods: Sequence[str], seeds: Sequence[int]) -> Injected:
    out = Injected()
    phys = data.physiology(snr, **INJECTED_RATES)
    for rec in recs:
        n_true = 0
        own: dict[str, list[Event]] = {}
        for seed in seeds:
            x_all, truth, rest = inject_rest(rec, phys, seed)
            if not truth:
                break
            n_true += len(truth)
            for m in methods:
                if m not in own:  # the recording's own events, as this method sees them (hybrid truth)
                    before, _, _ = run(m, rec.x, rec.rate, rec.signal, reference(rec), gated=True)
                    own[m] = within(before, rest)
                events, secs, err = run(m, x_all, rec.rate, rec.signal, reference(rec), gated=True)
                counts = score(truth, within(events, rest), own=own[m])
                lane_min = span_seconds(rest) * rec.channels / 60.0
                o = Outcome(counts, lane_minutes=lane_min, seconds=secs, error=err)
                out.add(rec.name, seed, m, o)
        if not n_true:
            progress(
                f"  injected {rec.name}: no rest span long enough for an event with its margins; skipped"
            )
            continue
        lane_s = span_seconds(rest) * rec.channels
        progress(
            f"  injected {rec.name}: {n_true} events over {len(seeds)} seeds on {lane_s:.0f} lane-s of rest"
        )
    return out


def print_own(res: Injected, methods: Sequence[str]) -> None:
    """The detections left unscored as the recordings' own events, and F1 had they counted as false."""
    print("    the recordings' own events (found before injection; not scored), count and per lane-minute:")
    print(f"{'':>22}" + "".join(f"  {LABELS[m]:>{CELL}}" for m in methods))
    for name, by in res.by_rec.items():
        cells = []
        for m in methods:
            o = by.get(m)
            if o is None or o.error or not o.lane_minutes:
                cells.append(f"{'n/a':>{CELL}}")
                continue
            n = o.counts.get(TWITCH, Counts()).own
            cells.append(f"{n / o.lane_minutes:>10.2f} ({n:>4})")
        print(f"{name:>22}" + "".join(f"  {c}" for c in cells))


def print_spread(res: Injected, methods: Sequence[str]) -> None:
    n = len(res.by_seed)
    print(f"    over the {n} injection seeds (each seed pooled over the recordings a method runs on), F1:")
    print(f"{'':>22} {'pooled':>7} {'mean':>7} {'SD':>7} {'min':>7} {'max':>7} {'own as false':>12}")
    rows = [("twitchwatch", "fasciculation", "twitchwatch fasc."), *[(m, TWITCH, LABELS[m]) for m in methods]]
    for m, cls, label in rows:
        per_seed = [by[m] for by in res.by_seed.values() if m in by]
        if not per_seed:
            print(f"{label:>22} {'n/a':>7}")
            continue
        pooled = Outcome()
        for o in per_seed:
            pooled = pooled.add(o)
        s = spread(o.counts.get(cls, Counts()).f1 for o in per_seed)
        c = pooled.counts.get(cls, Counts())
        print(
            f"{label:>22} {c.f1:>7.3f} {s.mean:>7.3f} {s.sd:>7.3f} {s.lo:>7.3f} {s.hi:>7.3f} "
            f"{c.f1_counting_own:>12.3f}"
        )


# --- (c) false twitches during voluntary activity --------------------------------------------------------


def activity(recs: Sequence[Recording], methods: Sequence[str]) -> dict[str, dict[str, Outcome]]:
    out: dict[str, dict[str, Outcome]] = {}
    for rec in recs:
        out[rec.name] = {}
        lane_minutes = span_seconds(rec.active) * (1 if rec.signal == "acc" else rec.channels) / 60.0
        for m in methods:
            events, secs, err = run(m, rec.x, rec.rate, rec.signal, reference(rec))
            out[rec.name][m] = Outcome(
                false=false_twitches(events, rec.active), lane_minutes=lane_minutes, seconds=secs, error=err
            )
        progress(f"  activity {rec.name}: {lane_minutes:.1f} lane-minutes")
    return out


def group(rec: Recording) -> str:
    if rec.signal == "acc":
        return "accelerometer"
    return "surface EMG" if rec.surface else "needle EMG"


def print_activity(
    res: dict[str, dict[str, Outcome]], methods: Sequence[str], recs: Sequence[Recording]
) -> None:
    print("\n(c) false twitches per lane-minute during real voluntary activity (count)")
    print(f"{'recording':>22} {'lane-min':>8}" + "".join(f"  {LABELS[m]:>{CELL}}" for m in methods))
    for name in dict.fromkeys(group(r) for r in recs):
        total: dict[str, Outcome] = {m: Outcome() for m in methods}
        members = [r for r in recs if group(r) == name]
        for rec in members:
            by = res[rec.name]
            for m in methods:
                if not by[m].error:
                    total[m] = total[m].add(by[m])
            print(
                f"{rec.name:>22} {by[methods[0]].lane_minutes:>8.1f}"
                + "".join(f"  {rate_cell(by[m])}" for m in methods)
            )
        if len(members) > 1:
            label = f"all {name}"
            lane_min = total[methods[0]].lane_minutes
            print(f"{label:>22} {lane_min:>8.1f}" + "".join(f"  {rate_cell(total[m])}" for m in methods))


def rate_cell(o: Outcome) -> str:
    if o.error or not o.lane_minutes:
        return f"{'n/a':>{CELL}}"
    return f"{o.per_minute:>10.2f} ({o.false:>4})"


# --- main ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer SNRs, shorter signals, 3 recordings and 2 seeds in (b), the offline tools at 20 dB only",
    )
    parser.add_argument("--snr", type=float, nargs="+", help="SNRs in dB (default 0 5 … 30)")
    parser.add_argument("--seconds", type=float, help="length of each generated signal (default 180)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument(
        "--real-snr",
        type=float,
        nargs="+",
        help=f"SNRs injected on real rest (default {DECENT_SNR_DB:g} {FAINT_SNR_DB:g})",
    )
    parser.add_argument(
        "--real-seeds",
        type=int,
        help=f"injection seeds per recording in (b), pooled (default {REAL_SEEDS}; --quick: 2)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    snrs = args.snr or ([0.0, 10.0, 20.0, 30.0] if args.quick else [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0])
    seconds = args.seconds or (40.0 if args.quick else 180.0)
    methods = ["twitchwatch", *[m for m in args.methods if m != "twitchwatch"]]
    t0 = time.perf_counter()

    print(f"accuracy: tolerance ±{TOLERANCE_S * 1e3:.0f} ms, one-to-one; synthetic data: collector.synth")
    print(
        f"decent surface electrode: {DECENT_SNR_DB:g} dB; targets: fasciculation F1 at rest ≥ {F1_TARGET} "
        f"({DECENT_SNR_DB:g} dB), ≥ {F1_FAINT_TARGET} ({FAINT_SNR_DB:g} dB), ≥ {F1_LOW_RATE_TARGET} at "
        f"≤ {LOW_RATE_HZ:g} Hz ({DECENT_SNR_DB:g} dB); ≤ {realworld.TARGET_PER_MIN:g} twitch-class "
        "events per lane-minute of everyday activity"
    )

    progress("(a) generated data")
    emg = generated(snrs, seconds, methods, args.seed, "emg", 1000.0)
    acc = generated(snrs, seconds / 2, ["twitchwatch"], args.seed + 100, "acc", 100.0)
    print_generated_classes(emg, f"(a) generated EMG, 1 kHz, {seconds:g} s per SNR")
    print_side_by_side(
        {f"{s:g} dB": by for s, by in emg.items()}, methods, "SNR", "(a) generated EMG, side by side"
    )
    print_generated_classes(acc, f"(a) generated accelerometer, 100 Hz, {seconds / 2:g} s per SNR")
    rest_snrs = sorted({DECENT_SNR_DB, FAINT_SNR_DB}, reverse=True)
    gen_rest = generated_rest(
        rest_snrs, 120.0 if args.quick else 300.0, [args.seed + k for k in range(1 if args.quick else 3)]
    )
    print_generated_rest(gen_rest)

    progress("(b) real recordings, events injected on rest (detector + rest gate)")
    recs = data.recordings()
    with_rest = [r for r in recs if r.signal == "emg" and span_seconds(r.rest) > 0]
    if args.quick:
        with_rest = with_rest[:3]
    real_snrs = args.real_snr or [DECENT_SNR_DB, FAINT_SNR_DB]
    seeds = injection_seeds(args.seed, args.real_seeds or (2 if args.quick else REAL_SEEDS))
    inj: dict[float, Injected] = {}
    for snr in real_snrs:
        # --quick: the offline tools (NeuroKit2 takes most of the time) only at the decent SNR
        at = methods if not args.quick or snr == DECENT_SNR_DB else ["twitchwatch"]
        res = inj[snr] = injected(with_rest, snr, at, seeds)
        title = (
            f"(b) real rest + injected twitches at {snr:g} dB, {len(seeds)} injection seeds pooled, "
            "twitchwatch = detector + rest gate"
        )
        print_side_by_side(res.by_rec, methods, "recording", title)
        print("    twitchwatch per class:")
        for name, by in res.by_rec.items():
            c = by["twitchwatch"].counts
            cells = "  ".join(
                f"{k} {triple(c.get(k))} {c[k].n_true:>4}" for k in ("fasciculation", "myoclonic_jerk")
            )
            print(f"{name:>22}  {cells}")
        print_own(res, methods)
        print_spread(res, methods)

    progress("(c) false twitches during voluntary activity")
    active = [r for r in recs if span_seconds(r.active) > 0]
    act = activity(active, methods)
    print_activity(act, methods, active)

    progress("(e) everyday recordings through detector + rest gate")
    everyday = realworld.assess_all(data.captures())
    realworld.print_table(everyday)

    print("\ntargets:")
    decent = min(emg, key=lambda s: abs(s - DECENT_SNR_DB))
    f1 = emg[decent]["twitchwatch"].counts["fasciculation"].f1
    print(
        f"  fasciculation F1 at {decent:g} dB, generated, every class (detector alone): {f1:.3f} "
        f"({verdict(f1 >= F1_TARGET)})"
    )
    for (rate, snr), gc in gen_rest.items():
        print(
            f"  fasciculation F1 at rest, generated, {rate:g} Hz, {snr:g} dB (detector + gate): {gc.f1:.3f} "
            f"{target_note(gc.f1, rest_target(rate, snr))}"
        )
    for snr, res in inj.items():
        print_real_target(res, snr, with_rest)
    print_rest_target(everyday)
    surface = Outcome()
    for r in active:
        if r.surface and r.signal == "emg":
            surface = surface.add(act[r.name]["twitchwatch"])
    pm = surface.per_minute
    print(
        f"  false twitches/min in surface-EMG activity, detector alone (c): {pm:.2f} "
        f"({verdict(pm <= FALSE_PER_MIN_TARGET)} against the former ≤ {FALSE_PER_MIN_TARGET:g})"
    )
    for key, t in realworld.totals(everyday).items():
        v = t.counted_per_active_min
        ok = verdict(v <= realworld.TARGET_PER_MIN) if key != "needle EMG" else "outside the design"
        print(
            f"  twitch-class events per lane-minute of everyday activity, {key}, after the gate (e): {v:.2f} "
            f"(before it {t.before_per_active_min:.2f}; {t.active_min:.1f} lane-min) ({ok})"
        )
    spent = {m: 0.0 for m in methods}
    for by in [*emg.values(), *(b for res in inj.values() for b in res.by_rec.values()), *act.values()]:
        for m, o in by.items():
            spent[m] += o.seconds
    cells = ", ".join(f"{LABELS[m]} {spent[m]:.1f} s" for m in methods)
    print(
        f"\ntime inside each method, (a) EMG + (b) + (c): {cells}; whole run {time.perf_counter() - t0:.0f} s"
    )


def print_real_target(res: Injected, snr: float, with_rest: Sequence[Recording]) -> None:
    """Fasciculation F1 on real rest at one SNR (detector + gate), pooled and by sample rate."""
    if not res.by_rec:
        return
    real = Outcome()
    for by in res.by_rec.values():
        real = real.add(by["twitchwatch"])
    fasc = real.counts.get("fasciculation", Counts())
    s = spread(by["twitchwatch"].counts["fasciculation"].f1 for by in res.by_seed.values())
    print(
        f"  fasciculation F1 at {snr:g} dB, real rest, detector + gate: {fasc.f1:.3f} pooled over all "
        f"rates and {s.n} seeds (per seed {s.lo:.3f}–{s.hi:.3f}, SD {s.sd:.3f}, SD/√n {s.sem:.3f}); "
        f"{fasc.f1_counting_own:.3f} counting the recordings' own {fasc.own} as false"
    )
    for rate in sorted({r.rate for r in with_rest if r.name in res.by_rec}, reverse=True):
        pooled = Outcome()
        for r in with_rest:
            if r.rate == rate and r.name in res.by_rec:
                pooled = pooled.add(res.by_rec[r.name]["twitchwatch"])
        c = pooled.counts.get("fasciculation", Counts())
        print(
            f"    recordings at {rate:g} Hz: F1 {c.f1:.3f} {target_note(c.f1, rest_target(rate, snr))}, "
            f"{c.f1_counting_own:.3f} counting their own {c.own} as false ({c.n_true} fasciculations)"
        )


def print_rest_target(everyday: dict[str, dict[str, realworld.Tally]]) -> None:
    """The recordings' own twitch-class events at rest, nothing injected, against the per-recording target."""
    rows = [(name, t) for name, by in everyday.items() for key, t in by.items() if key == "surface EMG"]
    rows = [(name, t) for name, t in rows if t.rest_min > 0]
    worst = max((t.counted_per_rest_min for _, t in rows), default=float("nan"))
    ok = verdict(worst <= realworld.REST_TARGET_PER_MIN)
    cells = ", ".join(f"{name} {t.counted_per_rest_min:.2f} ({t.counted_rest})" for name, t in rows)
    print(
        f"  real rest, nothing injected: counted twitch-class events per lane-minute of rest, on every "
        f"surface-EMG recording ≤ {realworld.REST_TARGET_PER_MIN:g} ({ok}; worst {worst:.2f}): {cells}"
    )


if __name__ == "__main__":
    main()
