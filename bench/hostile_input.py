"""Issue 14's hostile messages through one worker, in one process: what each does, and the worker's memory.

Run: ``.venv/bin/python -m bench.hostile_input [--only big]``. Each message goes to ``Worker.handle`` (as
the MQTT loop hands it over) beside a good 1-kHz EMG device; the table says per message what happened —
the kind it was dropped under, or the exception that would have stopped ``twitchwatch process`` — and the
worker's resident memory (VmRSS) and peak (VmHWM) after it. Only APIs that exist before and after issue 14
are used, so the same file measures an older tree: ``git archive <commit> | tar -x -C /tmp/old`` and
``PYTHONPATH=/tmp/old python -m bench.hostile_input`` (from a directory holding this file as bench/).
Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

T0 = 1_700_000_000_000_000_000
HEADER = struct.Struct("<BBBBIqff")


def _frame(rate: float, unit: Unit, channels: int = 1, samples: int = 100, t0: int = T0) -> bytes:
    header = HEADER.pack(1, (int(unit) << 4) | int(SampleType.INT16), channels, 0, 0, t0, rate, 1.0)
    return header + bytes(2 * samples * channels)


def _status(stream: str) -> bytes:
    return ('{"state":"online","streams":{"emg":' + stream + "}}").encode()


MESSAGES: list[tuple[str, str, bytes]] = [
    (
        "stream_id 1e999",
        "bad1/status",
        _status('{"stream_id":1e999,"signal":"emg","sample_rate":1000,"channels":["calf"]}'),
    ),
    ("30,000-deep JSON array", "bad2/status", b"[" * 30_000 + b"]" * 30_000),
    (
        "muscle with a newline",
        "bad3/status",
        _status('{"stream_id":0,"signal":"emg","sample_rate":1000,"channels":["calf\\nleft"]}'),
    ),
    ("10-Hz EMG frame", "bad4/raw/emg", _frame(10.0, Unit.MICROVOLT)),
    ("1e-30-Hz accelerometer frame", "bad5/raw/acc", _frame(1e-30, Unit.G)),
    ("255-channel frame", "bad6/raw/emg", _frame(1000.0, Unit.MICROVOLT, channels=255, samples=4)),
    ("t0 = -2**63", "bad8/raw/emg", _frame(1000.0, Unit.MICROVOLT, t0=-(2**63))),
    ("10-MB frame (valid header)", "big/raw/emg", _frame(1000.0, Unit.MICROVOLT, samples=5_000_000)),
]


def _memory_mb() -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _good(worker: Worker) -> None:
    x = np.random.default_rng(1).normal(0, 3.0, (2000, 1))
    for k in range(20):
        raw = np.round(x[k * 100 : (k + 1) * 100] / 0.5).astype(np.int16)
        frame = Frame(0, k, T0 + k * 100_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
        worker.handle("twitchwatch/u/good/raw/emg", encode(frame))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="only messages whose label contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, SQLiteStore(Path(folder) / "w.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
        _good(worker)
        rss, peak = _memory_mb()
        print(f"{'message':32} {'outcome':44} {'s':>6} {'RSS MB':>7} {'peak MB':>8}")
        print(f"{'(good device, 2 s of EMG)':32} {'':44} {'':>6} {rss:7.0f} {peak:8.0f}")
        for label, topic, payload in MESSAGES:
            if args.only and args.only not in label:
                continue
            before = dict(getattr(worker.stats, "rejected", {}))
            start = time.perf_counter()
            try:
                worker.handle(f"twitchwatch/u/{topic}", payload)
            except (Exception, RecursionError) as exc:  # what would have stopped `twitchwatch process`
                outcome = f"CRASH {type(exc).__name__}: {exc}"[:44]
            else:
                after = dict(getattr(worker.stats, "rejected", {}))
                kinds = [k for k in after if after[k] != before.get(k, 0)]
                outcome = f"dropped [{', '.join(kinds)}]" if kinds else "accepted"
            seconds = time.perf_counter() - start
            rss, peak = _memory_mb()
            print(f"{label:32} {outcome:44} {seconds:6.2f} {rss:7.0f} {peak:8.0f}")
        print("per-kind counts:", dict(sorted(getattr(worker.stats, "rejected", {}).items())))
        print(f"bad_frames={worker.stats.bad_frames} bad_status={worker.stats.bad_status}")


if __name__ == "__main__":
    main()
