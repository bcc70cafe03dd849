"""Start-up time of the quick commands: ``twitchwatch --help``, ``events``, ``flags``, ``journal list`` and
``config check``, each as a whole process.

Run: ``.venv/bin/python -m bench.cli_start [--runs 9] [--source DIR]``. Each command runs ``--runs`` times
(interleaved, so that a burst of load on a shared machine hits every command alike) against a SQLite store
in a temp dir holding a day of history; the figures are wall time and CPU time (user + system of the child,
which other work on the machine inflates far less), min and median, and their ratio to the baseline
measured in the same run: ``python -c pass``, the interpreter starting and doing nothing.

``--source DIR`` times another checkout of the code (``git archive <commit> | tar -x -C DIR``) with this
venv's libraries: how the figures before a change are measured on the same machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import open_store
from twitchwatch.processing.timeunits import HOUR_NS, MINUTE_NS

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "events": ["events", "--since", "2d"],
    "flags": ["flags"],
    "journal list": ["journal", "list"],
    "config check": ["config", "check"],
}
BASELINE = "python -c pass"
USER = "bench"


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float


def seed_store(db: Path) -> None:
    """A day of one user's history: minute rates, two events and a journal entry."""
    t0 = (time.time_ns() - 20 * HOUR_NS) // HOUR_NS * HOUR_NS
    with open_store(f"sqlite:///{db}", create=True) as store:
        store.write_rates(
            [
                MinuteRate(USER, "calf_left", "d1", "live", t0 + m * MINUTE_NS, m % 3, 60.0, 60.0)
                for m in range(0, 18 * 60)
            ]
        )
        store.write_events(
            [
                TwitchEvent(
                    USER, "calf_left", "d1", "emg", 0, EventKind.FASCICULATION, t, t + 10**7, 1.0, "mV", 0.9
                )
                for t in (t0 + MINUTE_NS, t0 + 3 * HOUR_NS)
            ]
        )
        store.add_journal_entry(JournalEntry(USER, t0 + HOUR_NS, Factor.CAFFEINE, "2 cups"))


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


def measure(runs: int, source: Path | None) -> dict[str, list[Sample]]:
    with tempfile.TemporaryDirectory(prefix="twitchwatch-cli-start-") as tmp:
        work = Path(tmp)
        seed_store(work / "history.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
        env |= {
            "TWITCHWATCH_STORE_URL": f"sqlite:///{work / 'history.db'}",
            "TWITCHWATCH_USER": USER,
            "XDG_DATA_HOME": str(work / "data"),
        }
        # An installed wheel has its bytecode compiled by pip; a shell that sets PYTHONDONTWRITEBYTECODE
        # would otherwise time compiling every module from source on every run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if source is not None:
            env["PYTHONPATH"] = str(source.resolve())
        argvs = {BASELINE: [sys.executable, "-c", "pass"]}
        argvs |= {name: [sys.executable, "-m", "twitchwatch", *args] for name, args in COMMANDS.items()}
        samples: dict[str, list[Sample]] = {name: [] for name in argvs}
        for argv in argvs.values():  # once untimed: bytecode written, files in the page cache for every run
            run_once(argv, env, work)
        for _ in range(runs):
            for name, argv in argvs.items():
                samples[name].append(run_once(argv, env, work))
    return samples


def report(samples: dict[str, list[Sample]]) -> str:
    base = samples[BASELINE]
    base_wall = statistics.median(s.wall_s for s in base)
    base_cpu = statistics.median(s.cpu_s for s in base)
    head = f"{'command':<16} {'wall min':>9} {'median':>8} {'× base':>7}"
    lines = [f"{head}   {'CPU min':>8} {'median':>8} {'× base':>7}"]
    for name, runs in samples.items():
        wall = [s.wall_s for s in runs]
        cpu = [s.cpu_s for s in runs]
        wall_median, cpu_median = statistics.median(wall), statistics.median(cpu)
        lines.append(
            f"{name:<16} {min(wall):>8.3f}s {wall_median:>7.3f}s {wall_median / base_wall:>6.1f}×   "
            f"{min(cpu):>7.3f}s {cpu_median:>7.3f}s {cpu_median / base_cpu:>6.1f}×"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--source", type=Path, default=None, help="time this checkout instead of the installed one"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load average {load:.1f} at the start")
    print(report(measure(args.runs, args.source)))


if __name__ == "__main__":
    main()
