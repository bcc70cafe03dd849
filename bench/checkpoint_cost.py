"""What a worker's checkpoint costs as streams grow, and the share of time it takes under the fixed 1-s rule
(the baseline) and under the adaptive interval (``processing.worker.checkpoint_interval``).

Run: ``python -m bench.checkpoint_cost [--streams 24 96 384]``. Each row: a worker with a state directory
(processing/wal.py), N devices of 1-kHz single-channel EMG, 2 s of 50-ms frames handled, then five forced
checkpoints timed (median); the snapshot's size; the interval that follows; the share of wall time the
snapshots take at one a second against at that interval.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import CHECKPOINT_S, Worker, checkpoint_interval

T0 = 1_700_000_000_000_000_000
USER = "bench"


def checkpoint_seconds(streams: int, work: Path) -> tuple[float, int]:
    """Median seconds of a forced checkpoint and the snapshot's bytes, for ``streams`` warm EMG streams."""
    worker = Worker(
        MqttTarget("127.0.0.1", 1), SQLiteStore(work / "w.db"), user=USER, state_dir=work / "state"
    )
    worker._recover()
    rng = np.random.default_rng(0)
    for d in range(streams):
        info = {"emg": StreamInfo(0, "emg", 1000.0, (f"muscle{d}",))}
        status = DeviceStatus("online", "sim", "live", "run", None, info).to_json()
        worker.handle(f"twitchwatch/{USER}/d{d}/status", status)
    for i in range(40):
        for d in range(streams):
            raw = np.round(rng.normal(0, 6, (50, 1))).astype(np.int16)
            frame = Frame(0, i, T0 + i * 50_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
            worker.handle(f"twitchwatch/{USER}/d{d}/raw/emg", encode(frame))
    took = []
    for _ in range(5):
        t = time.perf_counter()
        worker._checkpoint(force=True)
        took.append(time.perf_counter() - t)
    journal = worker._journal
    assert journal is not None
    size = journal.snapshot_bytes
    journal.close()
    return statistics.median(took), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[24, 96, 384])
    args = parser.parse_args()
    head = f"{'streams':>7} {'snapshot MB':>11} {'checkpoint ms':>13} {'next in s':>9}"
    print(f"{head} {'share at 1 s':>12} {'share now':>9}")
    for n in args.streams:
        with tempfile.TemporaryDirectory(prefix="twitchwatch-checkpoint-") as tmp:
            took, size = checkpoint_seconds(n, Path(tmp))
        every = checkpoint_interval(took)
        print(
            f"{n:>7} {size / 1e6:>11.1f} {took * 1000:>13.0f} {every:>9.1f} "
            f"{took / CHECKPOINT_S:>12.1%} {took / every:>9.1%}"
        )


if __name__ == "__main__":
    main()
