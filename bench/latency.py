"""Latency of the streaming detector: signal time from a true event's end to the detection's emission.

Run: ``.venv/bin/python -m bench.latency [--seconds 300] [--chunks-ms 100 50 20]``.

A detection is *emitted* when ``process()`` returns it; the chunk it came back with ends at sample k, so the
detection could not reach anyone before signal time k / rate. Latency = k / rate − true end. It is signal
time, not wall time (processing a 100-ms chunk takes microseconds; see ``bench.detector_speed``). Detections
are matched one-to-one to true twitches (``bench.scoring``, ±50 ms, any twitch class); those released only
by ``finish()`` at the end of the stream are counted apart. Target: ≤ 150 ms.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from bench import data
from bench.accuracy import DECENT_SNR_DB
from bench.baselines import run_twitchwatch
from bench.data import SignalKind
from bench.scoring import TWITCH, TWITCH_CLASSES, Event, is_class, match_pairs

TARGET_MS = 150.0
RATES = {"fasciculation": 30.0, "myoclonic_jerk": 6.0, "sustained": 1.0, "artifact": 0.5}


def latencies(
    x: np.ndarray, rate: float, signal: SignalKind, truth: Sequence[Event], chunk: int
) -> tuple[dict[str, list[float]], int, int]:
    """Latencies (ms) of matched twitches emitted while streaming, by true class; how many were released only
    by finish(); how many were missed."""
    emitted = [e for e in run_twitchwatch(x, rate, signal, chunk) if is_class(e.event, TWITCH)]
    twitches = [t for t in truth if is_class(t, TWITCH)]
    out: dict[str, list[float]] = {k: [] for k in TWITCH_CLASSES}
    at_finish = 0
    for lane in {t.lane for t in twitches}:
        t_lane = [t for t in twitches if t.lane == lane]
        e_lane = [e for e in emitted if e.event.lane == lane]
        for ti, di in match_pairs(t_lane, [e.event for e in e_lane]):
            k = e_lane[di].emitted_at
            if k is None:
                at_finish += 1
            else:
                out[t_lane[ti].kind].append((k / rate - t_lane[ti].end) * 1e3)
    matched = sum(len(v) for v in out.values())
    return out, at_finish, len(twitches) - matched - at_finish


def row(label: str, lat: list[float], extra: str = "") -> str:
    if not lat:
        return f"{label:>36} {0:>7}{'—':>10}{'—':>8}{'—':>8}{'—':>8}  {extra}".rstrip()
    a = np.asarray(lat)
    return (
        f"{label:>36} {a.size:>7} {np.median(a):>9.0f} {np.percentile(a, 95):>7.0f} {a.max():>7.0f} "
        f"{np.mean(a <= TARGET_MS):>7.0%}  {extra}".rstrip()
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--chunks-ms", type=float, nargs="+", default=[100.0, 50.0, 20.0])
    parser.add_argument("--snr", type=float, default=DECENT_SNR_DB)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"latency: true twitch end → emission (end of the chunk it came back in); {args.snr:g} dB")
    head = f"{'signal, chunk, true class':>36} {'matched':>7} {'median ms':>9} {'p95 ms':>7} {'max ms':>7}"
    print(f"{head} {'≤150 ms':>7}")
    for signal, rate in (("emg", 1000.0), ("acc", 100.0)):
        sig: SignalKind = "emg" if signal == "emg" else "acc"
        x, truth = data.generate(sig, rate, args.seconds, data.physiology(args.snr, **RATES), args.seed)
        true_events = [e for e in data.truth_events(truth) if e.start >= 1.0]
        for chunk_ms in args.chunks_ms:
            chunk = max(1, round(chunk_ms * 1e-3 * rate))
            print(f"  {signal} {chunk_ms:g}-ms chunks …", file=sys.stderr, flush=True)
            by_class, at_finish, missed = latencies(x, rate, sig, true_events, chunk)
            head = f"{signal} {rate:g} Hz, {chunk_ms:g} ms"
            for kind in sorted(by_class):
                print(row(f"{head}, {kind}", by_class[kind]))
            everything = [v for lat in by_class.values() for v in lat]
            print(
                row(f"{head}, all twitches", everything, f"(missed {missed}, only at finish() {at_finish})")
            )


if __name__ == "__main__":
    main()
