"""The streaming detector's events do not depend on how the stream is chunked: the same signal, fed block by
block, in frames of 20, 50 or 137 samples, in frames of random sizes or whole, gives the same detections —
every field to the bit, in the same order.

A real-time worker's frames vary in size (the device, the broker's batching, a replay), so a decision that
read how far the stream happened to be written would change events with the frames. The cases below are
ones where it did (``processing.core``, "release"): a cluster completed before its hold was written (the
EMG case the fix started from, seed 1059 at 1 kHz: its context after it, and so its confidence), a piece
held by slow activity that the power took over at a frame's edge (one piece or two), and an accelerometer
transient judged on movement before it as far back as the history happened to reach (the kind changed).
``test_detector.py`` samples chunkings with hypothesis over other signals; this file pins these cases
through every chunking above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from scipy import signal as sps

from twitchwatch.collector import synth
from twitchwatch.processing.detector import Detection, StreamingDetector

LOUD = synth.Physiology(fasciculation=30, myoclonic_jerk=4, sustained=2, artifact=4, snr_db=30)
BUSY = synth.Physiology(fasciculation=60, myoclonic_jerk=8, sustained=3, artifact=3, snr_db=22)
TWITCHING = synth.Physiology(fasciculation=30, myoclonic_jerk=3, sustained=0, artifact=2, snr_db=22)
MOVING = synth.Physiology(
    fasciculation=40, myoclonic_jerk=6, sustained=2, artifact=3, snr_db=20, posture_changes=3.0, walking=1.0
)

# name: (signal, rate, seconds, physiology, seeds: one EMG lane each, or the accelerometer's)
CASES: dict[str, tuple[synth.Signal, float, float, synth.Physiology, tuple[int, ...]]] = {
    # The event at sample 3139 had confidence 0.779 in 20-sample frames and 0.773 in 50-sample ones.
    "emg 1 kHz, loud, seed 1059": ("emg", 1000.0, 40.0, LOUD, (1059,)),
    # Lane 2: a contraction's piece held by slow activity was one piece or two (core 1.6 s or 1.7 s).
    "emg 1 kHz, 4 loud lanes": ("emg", 1000.0, 30.0, LOUD, (1065, 1066, 1067, 1068)),
    "emg 200 Hz, 4 busy lanes": ("emg", 200.0, 30.0, BUSY, (1097, 1098, 1099, 1100)),
    "acc 50 Hz, moving": ("acc", 50.0, 60.0, MOVING, (3,)),
    "acc 100 Hz, moving": ("acc", 100.0, 60.0, MOVING, (4,)),
    # Jerks far above a twitch's size: judged by the limb's motion through their hold (impacts, jerks).
    "acc 100 Hz, loud": ("acc", 100.0, 60.0, LOUD, (5,)),
    # A tremor from 20 to 45 s (``_signal``): spectra at epochs' ends, reports after the segment's decisions.
    "acc 25 Hz, tremor": ("acc", 25.0, 60.0, TWITCHING, (6,)),
    "acc 100 Hz, tremor": ("acc", 100.0, 60.0, TWITCHING, (7,)),
}


def _signal(case: str) -> np.ndarray:
    signal, rate, seconds, phys, seeds = CASES[case]
    x = np.hstack([synth.generate(signal, rate, seconds, phys, seed)[0] for seed in seeds])
    if "tremor" in case:  # 5 milli-g at 4-6 Hz in one direction, from 20 to 45 s
        a, b = round(20.0 * rate), round(45.0 * rate)
        sos = sps.butter(4, (4.0, 6.0), "bandpass", fs=rate, output="sos")
        y = sps.sosfilt(sos, np.random.default_rng(seeds[0]).standard_normal(b - a + 500))[500:]
        x[a:b] += (0.005 * y / y.std())[:, None] * np.array([0.8, 0.5, 0.33])[None, :]
    return x


def _run(case: str, x: np.ndarray, cuts: Sequence[int]) -> list[Detection]:
    """Every detection in the order the detector emits it (``process`` calls, then ``finish``)."""
    signal, rate, *_ = CASES[case]
    det = StreamingDetector(signal, rate, x.shape[1])
    out: list[Detection] = []
    for a, b in zip([0, *cuts], [*cuts, x.shape[0]], strict=True):
        out += det.process(x[a:b])
    return out + det.finish()


def _chunkings(case: str, n: int) -> dict[str, list[int]]:
    """Where each chunking cuts a stream of n samples: one block (the detector's unit), 20, 50 and 137
    samples, random sizes from 1 sample to 700 and from 1 to 3 blocks."""
    signal, rate, *_ = CASES[case]
    blk = StreamingDetector(signal, rate, 1 if signal == "emg" else 3)._engine.blk
    plans = {f"{size} samples": list(range(size, n, size)) for size in (20, 50, 137)}
    plans["one block"] = list(range(blk, n, blk))
    rng = np.random.default_rng(sum(map(ord, case)))
    for name, top in (("random up to 700", 700), ("random up to 3 blocks", 3 * blk)):
        cuts = np.cumsum(rng.integers(1, top + 1, size=n))
        plans[name] = cuts[cuts < n].tolist()
    return plans


@pytest.mark.parametrize("case", list(CASES))
def test_every_chunking_gives_the_same_events(case: str) -> None:
    x = _signal(case)
    whole = _run(case, x, [])
    assert len(whole) > 10
    assert len({d.kind for d in whole}) >= 3
    for name, cuts in _chunkings(case, x.shape[0]).items():
        got = _run(case, x, cuts)
        if got != whole:
            i = next((i for i, (a, b) in enumerate(zip(got, whole, strict=False)) if a != b), len(whole))
            pair = got[i : i + 1], whole[i : i + 1]
            pytest.fail(
                f"{name}: {len(got)} events against {len(whole)} whole; event {i}: {pair[0]} != {pair[1]}"
            )
