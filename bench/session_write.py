"""What recording a session costs: 1-kHz EMG of 1 and 8 channels in 50-ms frames, flushed every second as
``twitchwatch record`` does, against the same samples written to one HDF5 dataset with the same chunks and
compression in one call (the baseline: the least any recorder could spend on them).

Run: ``python -m bench.session_write [--minutes 10]``. Prints per row the writer's time, the baseline's, their
ratio, the file's size and the time to read every sample back. To compare two trees, run it from each
(``PYTHONPATH=<tree>``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from twitchwatch.collector.frames import Frame, SampleType, Unit
from twitchwatch.collector.recordings.formats.session import Session, SessionWriter

T0 = 1_700_000_000_000_000_000
RATE = 1000.0
FRAME = 50  # samples per frame: 50 ms
FLUSH_EVERY = 20  # frames: one flush a second


def session_seconds(data: np.ndarray, path: Path) -> tuple[float, float, int]:
    """(write s, read-back s, file bytes) through ``SessionWriter``."""
    start = time.perf_counter()
    with SessionWriter(path) as w:
        for k in range(data.shape[0] // FRAME):
            raw = data[k * FRAME : (k + 1) * FRAME]
            t0 = T0 + k * FRAME * 1_000_000
            w.add_frame("d", "emg", Frame(0, k, t0, RATE, 0.5, Unit.MICROVOLT, SampleType.INT16, raw))
            if k % FLUSH_EVERY == FLUSH_EVERY - 1:
                w.flush()
    wrote = time.perf_counter() - start
    start = time.perf_counter()
    with Session(path) as s:
        stream = s.streams[0]
        s.samples(stream, 0, stream.samples)
    return wrote, time.perf_counter() - start, path.stat().st_size


def baseline_seconds(data: np.ndarray, path: Path, chunk_rows: int) -> float:
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "samples",
            data=data,
            chunks=(chunk_rows, data.shape[1]),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'channels':>8} {'write s':>8} {'baseline s':>10} {'ratio':>6} {'MB':>6} {'read s':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for channels in (1, 8):
            n = round(args.minutes * 60 * RATE) // FRAME * FRAME
            data = rng.normal(0, 30, (n, channels)).astype(np.int16)
            wrote, read, size = session_seconds(data, Path(tmp) / f"s{channels}.h5")
            with Session(Path(tmp) / f"s{channels}.h5") as s:
                group = s.streams[0].path
            with h5py.File(Path(tmp) / f"s{channels}.h5", "r") as f:
                chunk = int(f[group]["samples"].chunks[0])
            base = baseline_seconds(data, Path(tmp) / f"b{channels}.h5", chunk)
            ratio = wrote / base
            print(f"{channels:>8} {wrote:>8.2f} {base:>10.2f} {ratio:>6.1f} {size / 1e6:>6.2f} {read:>7.2f}")


if __name__ == "__main__":
    main()
