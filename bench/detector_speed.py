"""Throughput of the streaming detector and the frame codec, as ratios to baselines measured in the same run.

Run: ``make bench`` (or ``.venv/bin/python -m bench.detector_speed [--seconds 60] [--channels 1 8 32]``).
Baselines: one ``scipy.signal.sosfilt`` pass (the detector's band-pass alone, whole array at once) for the
detector; ``numpy.frombuffer`` of the same bytes for the frame decoder.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import signal as sps

from collector.frames import Frame, SampleType, Unit, decode, encode
from collector.synth import MuscleSegment, quantise, spec_for
from processing.detector import DetectorParams, StreamingDetector

RATE = 1000.0
CHUNK = 100  # 100 ms at 1 kHz


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def emg(seconds: float, channels: int) -> np.ndarray:
    spec = spec_for("emg", RATE)
    cols = []
    for ch in range(channels):
        seg = MuscleSegment(f"m{ch}", spec, 0, seconds, 20, seed=ch)
        cols.append(quantise(seg.next_chunk(seg.total)[1], spec)[:, 0] * spec.scale)
    return np.stack(cols, axis=1)


def detector_row(x: np.ndarray) -> tuple[float, float]:
    def run() -> None:
        det = StreamingDetector("emg", RATE, x.shape[1])
        for i in range(0, x.shape[0], CHUNK):
            det.process(x[i : i + CHUNK])

    band = DetectorParams.for_signal("emg", RATE).band_hz
    sos = sps.butter(4, band, btype="bandpass", fs=RATE, output="sos")
    return best_of(run), best_of(lambda: sps.sosfilt(sos, x, axis=0))


def codec_row(channels: int, n_frames: int = 20000) -> tuple[float, float]:
    raw = np.arange(50 * channels, dtype=np.int16).reshape(50, channels)
    data = encode(Frame(0, 1, 0, RATE, 0.5, Unit.MICROVOLT, SampleType.INT16, raw))

    def run() -> None:
        for _ in range(n_frames):
            decode(data)

    def base() -> None:
        for _ in range(n_frames):
            np.frombuffer(data, dtype="<i2", offset=24)

    return best_of(run) / n_frames, best_of(base) / n_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="signal length per channel")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    print(f"detector: 1-kHz EMG, {CHUNK}-sample chunks, {args.seconds:.0f} s per channel")
    header = ("channels", "detector Msamples/s", "sosfilt Msamples/s", "detector/sosfilt time")
    print(f"{header[0]:>8} {header[1]:>20} {header[2]:>19} {header[3]:>22}")
    for c in args.channels:
        x = emg(args.seconds, c)
        t_det, t_sos = detector_row(x)
        print(f"{c:>8} {x.size / t_det / 1e6:>20.2f} {x.size / t_sos / 1e6:>19.2f} {t_det / t_sos:>22.1f}")
    print("\nframe decode: 50 int16 samples per frame")
    print(f"{'channels':>8} {'decode µs/frame':>16} {'frombuffer µs/frame':>20} {'ratio':>6}")
    for c in (1, 3, 8):
        t_dec, t_base = codec_row(c)
        print(f"{c:>8} {t_dec * 1e6:>16.2f} {t_base * 1e6:>20.2f} {t_dec / t_base:>6.1f}")


if __name__ == "__main__":
    main()
