"""Time to build weeks of history: ``twitchwatch simulate --speed max`` into ``twitchwatch process``.

Run: ``.venv/bin/python -m bench.history_build [--days 21] [--rate-hz 50]``. Starts a private Mosquitto (as
the tests do) and a SQLite store in a temp dir, runs the real commands as processes and reports wall time as a
ratio to the baseline measured in the same run: the simulator publishing the same history, nobody listening.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.mosquitto import MosquittoServer

MUSCLES = ("calf_left", "calf_right")


def simulate_argv(days: int, rate_hz: float) -> list[str]:
    muscles = [arg for m in MUSCLES for arg in ("--muscle", m)]
    return [
        *(sys.executable, "-m", "twitchwatch", "simulate", "--signal", "acc", "--sample-rate", str(rate_hz)),
        *muscles,
        *("--chunk", "500", "--start", f"-{days + 1}d", "--duration", f"{days}d"),
        *("--wear", "08:00-22:00", "--speed", "max", "--rate", "6"),
    ]


def monitored_hours(db: Path) -> float:
    try:
        with sqlite3.connect(db) as con:
            return float(con.execute("SELECT coalesce(sum(monitored_s), 0) FROM rates").fetchone()[0]) / 3600
    except sqlite3.Error:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--rate-hz", type=float, default=50.0)
    args = parser.parse_args()
    expected_h = args.days * 14 * len(MUSCLES)
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer.start(Path(tmp) / "mqtt")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
        env |= {"TWITCHWATCH_MQTT_URL": broker.url, "TWITCHWATCH_USER": "bench"}
        try:
            t0 = time.perf_counter()
            subprocess.run(
                simulate_argv(args.days, args.rate_hz), env=env, check=True, stderr=subprocess.DEVNULL
            )
            baseline = time.perf_counter() - t0

            db = Path(tmp) / "history.db"
            env["TWITCHWATCH_STORE_URL"] = f"sqlite:///{db}"
            env["TWITCHWATCH_STATE_DIR"] = str(Path(tmp) / "state")
            worker = subprocess.Popen(
                [sys.executable, "-m", "twitchwatch", "process", "--client-id", "bench"],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(2)  # let it subscribe
            t0 = time.perf_counter()
            subprocess.run(
                simulate_argv(args.days, args.rate_hz), env=env, check=True, stderr=subprocess.DEVNULL
            )
            published = time.perf_counter() - t0
            while monitored_hours(db) < expected_h - 0.5:
                time.sleep(0.5)
            total = time.perf_counter() - t0
            worker.terminate()
            worker.wait(60)
        finally:
            broker.stop()
    print(f"history: {args.days} days × 14 h × {len(MUSCLES)} muscles, accelerometer at {args.rate_hz:g} Hz")
    print(f"simulator alone (baseline):       {baseline:7.1f} s")
    print(f"simulator with the worker:        {published:7.1f} s  ({published / baseline:.2f}× baseline)")
    print(f"until every minute is stored:     {total:7.1f} s  ({total / baseline:.2f}× baseline)")
    print(
        f"signal processed per wall second: {expected_h * 3600 / total:,.0f} s (monitored hours {expected_h})"
    )


if __name__ == "__main__":
    main()
