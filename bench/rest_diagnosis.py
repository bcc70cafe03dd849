"""Why twitchwatch misses or adds fasciculations on real rest (``bench.accuracy`` part (b)), event by event.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.rest_diagnosis [--seeds 5] [--list]``.

Injects exactly as ``bench.accuracy`` does (same seeds and rest spans), runs the EMG engine with the features
of every released cluster recorded — blips included — and attributes

- each missed fasciculation to the largest cluster overlapping it (±50 ms): the classification rule that
  decided it (``train``, ``busy``, ``context``, ``others``, ``sparse``, ``jerk`` …), ``blip`` (never reached
  ``report_margin`` × onset), or ``not detected``;
- each false positive to whether the unmodified recording gives a detection there too (a potential that is in
  the recording itself) or not.

Overlap stands in for the benchmark's one-to-one matching here, so the counts can differ from its table by an
event or two. The rule is read from the reason ``EmgEngine.classify`` gives (``Verdict.reason``) and checked
against the class the engine gave, so a drift between the two stops the run.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench import data
from bench.accuracy import DECENT_SNR_DB, INJECTED_RATES, REAL_SEEDS, inject_rest, injection_seeds
from bench.data import Recording
from bench.scoring import TOLERANCE_S, Event, Span, span_seconds, within
from twitchwatch.processing.core import Features, FloatArray, Verdict
from twitchwatch.processing.emg import EmgEngine, emg_params
from twitchwatch.processing.events import EventKind

REASON_RULE = (
    ("train", "train"),
    ("among other", "busy"),
    ("activity around", "context"),
    ("sparse", "sparse"),
    ("activity on", "others"),
    ("activity ", "long"),
)
RULE_KIND = {
    "artifact": EventKind.ARTIFACT,
    "long": EventKind.SUSTAINED,
    "train": EventKind.SUSTAINED,
    "busy": EventKind.SUSTAINED,
    "context": EventKind.SUSTAINED,
    "others": EventKind.SUSTAINED,
    "sparse": EventKind.SUSTAINED,
    "jerk": EventKind.MYOCLONIC_JERK,
    "isolated": EventKind.FASCICULATION,
}


@dataclass(frozen=True)
class Released:
    """One released cluster as classification saw it (times in seconds, group delay taken off)."""

    lane: int
    start: float
    end: float
    kind: EventKind
    rule: str
    blip: bool
    peak_sigma: float  # peak / RMS of the floor
    margin: float  # peak of the smoothed power / onset threshold
    context: float
    since_ms: float
    previous_ratio: float  # previous cluster's peak / this one's
    recent: int
    core_ms: float
    fill: float

    def describe(self) -> str:
        return (
            f"{self.start:8.3f}–{self.end:.3f} {self.kind.value[:5]:5} {self.rule:8} blip={int(self.blip)} "
            f"peak={self.peak_sigma:5.1f}σ margin={self.margin:5.2f} context={self.context:4.2f} "
            f"since={self.since_ms:6.0f} ms prev/this={self.previous_ratio:5.2f} recent={self.recent} "
            f"core={self.core_ms:3.0f} ms fill={self.fill:.2f}"
        )


def rule(verdict: Verdict) -> str:
    """The rule of ``EmgEngine.classify`` that decided a cluster, from the reason it gives."""
    if verdict.kind is EventKind.FASCICULATION:
        return "isolated"
    if verdict.kind is EventKind.MYOCLONIC_JERK:
        return "jerk"
    for prefix, name in REASON_RULE:
        if verdict.reason.startswith(prefix):
            return name
    return "artifact" if verdict.kind is EventKind.ARTIFACT else "long"


class TracedEmg(EmgEngine):
    """The EMG engine, recording every released cluster (it uses the engine's internals: a bench tool)."""

    def __init__(self, sample_rate: float, channels: int) -> None:
        super().__init__(sample_rate, channels, emg_params(sample_rate))
        self.released: list[Released] = []

    def classify(self, f: Features) -> Verdict:
        verdict = super().classify(f)
        kind = verdict.kind
        c, why = f.cluster, rule(verdict)
        if RULE_KIND[why] is not kind:
            raise RuntimeError(f"rule {why!r} does not give {kind}: update bench.rest_diagnosis.rule")
        floor_rms = math.sqrt(max(c.floor, 1e-300))
        self.released.append(
            Released(
                f.lane,
                max(c.start - self.delay, 0) / self.rate,
                max(c.end - self.delay, 1) / self.rate,
                kind,
                why,
                self._blip(f.lane, c, kind),
                c.peak / floor_rms,
                c.peak_env / max(self.params.on_factor * self.w * c.floor, 1e-300),
                f.context,
                f.since_previous_ms,
                f.previous_peak / max(c.peak, 1e-300),
                len(c.recent),
                c.core_ms(self.rate),
                c.fill(),
            )
        )
        return verdict


def trace(x: FloatArray, rate: float, chunk_s: float = 0.1) -> list[Released]:
    eng = TracedEmg(rate, x.shape[1])
    step = max(1, round(chunk_s * rate))
    for i in range(0, x.shape[0], step):
        eng.process(x[i : i + step])
    eng.finish()
    return eng.released


def near(a: Event | Released, lane: int, start: float, end: float) -> bool:
    return a.lane == lane and a.end > start - TOLERANCE_S and a.start < end + TOLERANCE_S


def fasciculations(released: Sequence[Released], rest: Sequence[Span]) -> list[Event]:
    events = [Event(r.lane, r.start, r.end, r.kind.value) for r in released if not r.blip]
    return [e for e in within(events, rest) if e.kind == EventKind.FASCICULATION.value]


def diagnose(rec: Recording, seeds: Sequence[int], listing: bool) -> tuple[Counter[str], Counter[str]]:
    misses: Counter[str] = Counter()
    false: Counter[str] = Counter()
    in_recording = [r for r in trace(rec.x, rec.rate) if not r.blip and r.kind.is_twitch]
    phys = data.physiology(DECENT_SNR_DB, **INJECTED_RATES)
    for seed in seeds:
        x, truth, rest = inject_rest(rec, phys, seed)
        released = trace(x, rec.rate)
        found = fasciculations(released, rest)
        for t in truth:
            if t.kind != EventKind.FASCICULATION.value or any(near(e, t.lane, t.start, t.end) for e in found):
                continue
            over = [r for r in released if near(r, t.lane, t.start, t.end)]
            top = max(over, key=lambda r: r.peak_sigma) if over else None
            why = "not detected" if top is None else "blip" if top.blip else top.rule
            misses[why] += 1
            if listing:
                print(f"  seed {seed} miss lane {t.lane} {t.start:8.3f}  {why}")
                for r in over:
                    print(f"      {r.describe()}")
        for e in found:
            if any(near(t, e.lane, e.start, e.end) for t in truth):
                continue
            real = any(near(r, e.lane, e.start, e.end) for r in in_recording)
            false["in the recording" if real else "not in the recording"] += 1
            if listing:
                also = "(also without injection)" if real else ""
                print(f"  seed {seed} false lane {e.lane} {e.start:8.3f}  {also}")
    return misses, false


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=REAL_SEEDS, help="injection seeds (as bench.accuracy)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="every miss and false positive, with features")
    args = parser.parse_args(argv)
    seeds = injection_seeds(args.seed, args.seeds)
    print(f"fasciculations missed (by cause) and false (by origin), {len(seeds)} seeds, {DECENT_SNR_DB:g} dB")
    total_m: Counter[str] = Counter()
    total_f: Counter[str] = Counter()
    for rec in data.recordings():
        if rec.signal != "emg" or not span_seconds(rec.rest):
            continue
        if args.list:
            print(rec.name)
        misses, false = diagnose(rec, seeds, args.list)
        if not misses and not false:
            continue
        total_m += misses
        total_f += false
        print(f"{rec.name:>16}  misses: {dict(misses.most_common())}  false: {dict(false.most_common())}")
    print(f"{'all':>16}  misses: {dict(total_m.most_common())}  false: {dict(total_f.most_common())}")


if __name__ == "__main__":
    main()
