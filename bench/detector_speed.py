"""Throughput of the streaming detector and the frame codec, as ratios to baselines measured in the same run.

Run: ``make bench`` (or ``.venv/bin/python -m bench.detector_speed [--seconds 60] [--channels 1 8 64 256]``).
Baselines for the detector, on the same (samples × channels) array of 1-kHz EMG:

- one ``scipy.signal.sosfilt`` pass (the detector's band-pass alone, whole array at once);
- NeuroKit2 ``emg_process`` and BioSPPy ``emg.emg(show=False)``, one channel at a time (they take one
  channel; their throughput does not depend on how many there are, so they are timed on
  ``--baseline-channels`` channels and compared with every row). Skipped with ``--no-baselines`` or when
  the bench extra is not installed.

Single-threaded throughout (one core): samples/s here are samples/s per core. ``--by-rate`` times only the
detector at 64 channels for several event rates (quiet rest to a busy muscle).
``numpy.frombuffer`` of the same bytes is the baseline for the frame decoder.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
from scipy import signal as sps

from bench import data
from bench.accuracy import DECENT_SNR_DB
from twitchwatch.collector.frames import Frame, SampleType, Unit, decode, encode
from twitchwatch.processing.detector import StreamingDetector

RATE = 1000.0
CHUNK = 100  # 100 ms at 1 kHz


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# Events per minute per channel: (fasciculations, myoclonic jerks, contractions of 1-8 s). The default is a
# busy muscle (ALS muscles: a median of ~40 fasciculations a minute); the others for --by-rate.
DEFAULT_RATES = (20.0, 2.0, 1.0)
BY_RATE = (
    (0.0, 0.0, 0.0),
    (2.0, 0.0, 0.0),
    (5.0, 0.5, 0.0),
    (5.0, 0.5, 0.5),
    (20.0, 2.0, 0.0),
    DEFAULT_RATES,
)


def emg(
    seconds: float, channels: int, distinct: int = 16, rates: tuple[float, float, float] = DEFAULT_RATES
) -> np.ndarray:
    """Generated rest EMG with fasciculations; ``distinct`` channels generated, tiled to ``channels``."""
    fasc, jerk, contraction = rates
    phys = data.physiology(
        DECENT_SNR_DB, fasciculation=fasc, myoclonic_jerk=jerk, sustained=contraction, artifact=0.0
    )
    cols = [
        data.generate("emg", RATE, seconds, phys, seed=ch)[0][:, 0] for ch in range(min(channels, distinct))
    ]
    base = np.stack(cols, axis=1)
    return np.ascontiguousarray(np.tile(base, (1, -(-channels // base.shape[1])))[:, :channels])


def band_hz() -> tuple[float, float]:
    params = StreamingDetector("emg", RATE, 1).params
    lo, hi = getattr(params, "band_hz", (20.0, 450.0))
    return float(lo), float(hi)


def detector_row(x: np.ndarray) -> tuple[float, float]:
    def run() -> None:
        det = StreamingDetector("emg", RATE, x.shape[1])
        for i in range(0, x.shape[0], CHUNK):
            det.process(x[i : i + CHUNK])
        det.finish()

    sos = sps.butter(4, band_hz(), btype="bandpass", fs=RATE, output="sos")
    return best_of(run), best_of(lambda: sps.sosfilt(sos, x, axis=0))


def baseline_rates(x: np.ndarray) -> dict[str, float]:
    """Samples/s of NeuroKit2 and BioSPPy, channel by channel over ``x`` (best of 2)."""
    out: dict[str, float] = {}
    if importlib.util.find_spec("neurokit2") is not None:
        import neurokit2 as nk

        def nk_run() -> None:
            for c in range(x.shape[1]):
                nk.emg_process(x[:, c], sampling_rate=RATE)

        out["NeuroKit2"] = x.size / _quietly(nk_run)
    if importlib.util.find_spec("biosppy") is not None:
        from biosppy.signals import emg as bio

        def bio_run() -> None:
            for c in range(x.shape[1]):
                bio.emg(signal=x[:, c], sampling_rate=RATE, show=False)

        out["BioSPPy"] = x.size / _quietly(bio_run)
    return out


def _quietly(fn: Callable[[], object]) -> float:
    with warnings.catch_warnings():  # deprecation chatter from inside the libraries
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="No events found")  # NeuroKit2 on a quiet channel
        return best_of(fn, repeats=2)


def acc_row(rate: float, seconds: float) -> tuple[float, float, int]:
    """(detector time, one sosfilt pass of its band over the 3 axes, samples per axis) for one stream."""
    phys = data.physiology(DECENT_SNR_DB, fasciculation=6.0, myoclonic_jerk=1.0, sustained=0.5, artifact=0.2)
    x, _ = data.generate("acc", rate, seconds, phys, seed=1)
    chunk = round(10 * rate)

    def run() -> None:
        det = StreamingDetector("acc", rate, 3)
        for i in range(0, x.shape[0], chunk):
            det.process(x[i : i + chunk])
        det.finish()

    band = getattr(StreamingDetector("acc", rate, 3).params, "band_hz", (5.0, 0.45 * rate))
    sos = sps.butter(4, band, btype="bandpass", fs=rate, output="sos")
    return best_of(run), best_of(lambda: sps.sosfilt(sos, x, axis=0)), x.shape[0]


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


def by_rate(seconds: float, channels: int = 64) -> None:
    """The detector's cost grows with what happens in the signal: the ratio by event rate."""
    print(f"detector by event rate: 1-kHz EMG, {CHUNK}-sample chunks, {channels} channels, {seconds:.0f} s")
    head = ["fasc/min", "jerks/min", "contractions/min", "Msamples/s", "detector/sosfilt"]
    print(" ".join(f"{h:>9}" for h in head))
    for rates in BY_RATE:
        print(f"  {rates} …", file=sys.stderr, flush=True)
        x = emg(seconds, channels, rates=rates)
        t_det, t_sos = detector_row(x)
        fasc, jerk, contraction = rates
        cells = [f"{fasc:>9g}", f"{jerk:>9g}", f"{contraction:>16g}", f"{x.size / t_det / 1e6:>10.1f}"]
        print(" ".join([*cells, f"{t_det / t_sos:>16.1f}"]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="signal length per channel")
    parser.add_argument("--channels", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument(
        "--baseline-channels", type=int, default=4, help="channels NeuroKit2/BioSPPy are timed on"
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip NeuroKit2 and BioSPPy")
    parser.add_argument(
        "--by-rate", action="store_true", help="only: the ratio to sosfilt at 64 channels by event rate"
    )
    args = parser.parse_args()
    if args.by_rate:
        by_rate(args.seconds)
        return
    rates: dict[str, float] = {}
    if not args.no_baselines:
        print("  timing NeuroKit2 and BioSPPy …", file=sys.stderr, flush=True)
        rates = baseline_rates(emg(args.seconds, args.baseline_channels))
    print(f"detector: 1-kHz EMG, {CHUNK}-sample chunks, {args.seconds:.0f} s per channel, one core")
    for name, r in rates.items():
        print(
            f"  {name}: {r / 1e6:.3f} Msamples/s (one channel at a time; timed on {args.baseline_channels})"
        )
    header = ["channels", "detector Msamples/s", "sosfilt Msamples/s", "detector/sosfilt time"]
    header += [f"speed-up vs {name}" for name in rates]
    print(" ".join(f"{h:>{max(8, len(h))}}" for h in header))
    for c in args.channels:
        print(f"  {c} channels …", file=sys.stderr, flush=True)
        x = emg(args.seconds, c)
        t_det, t_sos = detector_row(x)
        cells = [f"{c:>8}", f"{x.size / t_det / 1e6:>19.2f}", f"{x.size / t_sos / 1e6:>18.2f}"]
        cells.append(f"{t_det / t_sos:>21.1f}")
        cells += [f"{x.size / t_det / r:>{len(f'speed-up vs {name}')}.1f}×" for name, r in rates.items()]
        print(" ".join(cells))
    print("\naccelerometer (3 axes, one lane), 10-s chunks as the simulator sends them")
    head = f"{'rate Hz':>8} {'detector samples/s (×3 axes)':>29} {'× real time':>12}"
    print(f"{head} {'detector/sosfilt time':>21}")
    for rate in (50.0, 100.0):
        t_det, t_sos, n = acc_row(rate, args.seconds * 10)
        print(f"{rate:>8g} {n / t_det:>29,.0f} {n / rate / t_det:>12,.0f} {t_det / t_sos:>21.1f}")
    print("\nframe decode: 50 int16 samples per frame")
    print(f"{'channels':>8} {'decode µs/frame':>16} {'frombuffer µs/frame':>20} {'ratio':>6}")
    for c in (1, 3, 8):
        t_dec, t_base = codec_row(c)
        print(f"{c:>8} {t_dec * 1e6:>16.2f} {t_base * 1e6:>20.2f} {t_dec / t_base:>6.1f}")


if __name__ == "__main__":
    main()
