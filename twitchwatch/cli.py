"""The ``twitchwatch`` command line.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage.

Each command imports what it uses inside its handler: building the parser and the quick commands
(``--help``, ``events``, ``flags``, ``journal``, ``config check``) load neither numpy, scipy nor h5py, nor
the MQTT, BLE or Streamlit stacks (tests/test_cli_imports.py; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from twitchwatch import broker_cli, data_cli, person_cli, quarantine_cli
from twitchwatch.collector.timetext import SimulationError, parse_duration
from twitchwatch.errors import TwitchwatchError, UserError
from twitchwatch.processing.events import EventKind
from twitchwatch.progress import Progress, SignalProgress, is_terminal

if TYPE_CHECKING:
    import asyncio

    from twitchwatch.collector.emulate.motion import Movement
    from twitchwatch.collector.record import Recorder
    from twitchwatch.collector.simulate import SimulationPlan
    from twitchwatch.collector.synth import TruthEvent
    from twitchwatch.config import DeviceMap, Settings
    from twitchwatch.processing.periodic import FlagTask
    from twitchwatch.processing.recordings import DetectionRun, Plan, RecordingEvent
    from twitchwatch.processing.store import EventQuery, EventStore
    from twitchwatch.processing.worker import Worker

log = logging.getLogger("twitchwatch")
T = TypeVar("T")

NOTICE = "twitchwatch is not a medical device and does not diagnose anything."


class CliError(TwitchwatchError):
    """A failure the user can act on: printed without a traceback, exit code 1."""


def _version() -> str:
    """The installed distribution's version (a checkout that was never installed says so)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("twitchwatch")
    except PackageNotFoundError:
        return "unknown (not installed: pip install .)"


class _VersionAction(argparse.Action):
    """``--version``: the distribution's metadata is read only when asked for (importlib.metadata scans
    site-packages, a cost every other command would pay at parser build)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        print(f"{parser.prog} {_version()}")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twitchwatch", description=f"Muscle-twitch tracking. {NOTICE}")
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_simulate(sub)
    p = sub.add_parser(
        "process",
        help="run the worker: MQTT frames (or RabbitMQ partitions, TWITCHWATCH_AMQP_URL) → events → store",
    )
    p.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id (default twitchwatch-worker-<user>; with TWITCHWATCH_AMQP_URL, …-<host>-<pid>)",
    )
    p = sub.add_parser("dashboard", help="start the Streamlit dashboard")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default localhost only; any other needs TWITCHWATCH_DASHBOARD_PASSWORD_FILE)",
    )
    p.add_argument("--port", type=int, default=8501)
    p = sub.add_parser("demo", help="everything in one process on embedded defaults")
    p.add_argument("--port", type=int, default=8501, help="dashboard port")
    p.add_argument("--rate", type=float, default=12.0, help="simulated twitches per minute per muscle")
    p.add_argument("--signal", choices=["emg", "acc"], default="emg")
    p.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="where the demo's simulated events go (default: its own SQLite file, demo.db beside the default "
        "store; never TWITCHWATCH_STORE_URL, so simulated twitches stay out of your own history and report)",
    )
    _add_events(sub)
    _add_devices(sub)
    p = sub.add_parser("collect", help="stream the device map's BLE wearables to MQTT (docs/ble.md)")
    p.add_argument("--device", action="append", default=None, help="only this device; repeat for several")
    _add_detect(sub)
    _add_record(sub)
    _add_export(sub)
    _add_replay(sub)
    person_cli.add_parsers(sub)
    data_cli.add_parser(sub)
    broker_cli.add_parser(sub)
    quarantine_cli.add_parser(sub)
    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_command", required=True
    )
    check = config.add_parser("check", help="validate the environment and a TOML device map")
    check.add_argument("path", nargs="?", type=Path, help="TOML file (default: TWITCHWATCH_CONFIG)")
    return parser


def _add_simulate(sub: Any) -> None:
    p = sub.add_parser("simulate", help="a simulated wearable publishing synthetic frames with ground truth")
    p.add_argument("--muscle", action="append", required=True, help="muscle name; repeat for several")
    p.add_argument("--signal", choices=["emg", "acc"], default="emg")
    p.add_argument("--duration", default="60", help="SECONDS or 15m, 6h, 21d (default 60 s)")
    p.add_argument("--speed", default="1", help="1 (real time), N (N× faster) or max")
    p.add_argument("--start", default=None, help="ISO 8601 time or relative like -21d (default now)")
    p.add_argument("--wear", default=None, help="daily wear window HH:MM-HH:MM (local time)")
    p.add_argument("--rate", type=float, default=10.0, help="twitches per minute per muscle (0 allowed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", type=Path, default=None, help="write ground truth here as JSON lines")
    p.add_argument("--sample-rate", type=float, default=None, help="Hz (default EMG 1000, ACC 100)")
    p.add_argument("--chunk", type=int, default=50, help="samples per frame (default 50)")
    ble = p.add_argument_group("BLE wearable (--ble): a Bumble peripheral instead of MQTT frames")
    ble.add_argument(
        "--ble", action="store_true", help="emulate a real device over BLE (docs/ble-emulation.md)"
    )
    ble.add_argument(
        "--profile", default="polar-h10", help="device to emulate: any device profile (default polar-h10)"
    )
    ble.add_argument("--transport", default=None, help="Bumble HCI transport, e.g. usb:0 (a USB dongle)")
    ble.add_argument(
        "--serve-hci", default=None, metavar="HOST:PORT", help="virtual radio for centrals in other processes"
    )
    ble.add_argument("--recording", type=Path, default=None, help="stream this session / EDF+ file instead")
    ble.add_argument("--address", default=None, help="random static address to advertise with")
    ble.add_argument("--name", default=None, help="advertised name (default: the device's own pattern)")
    ble.add_argument("--compressed", action="store_true", help="Polar H10: delta-compressed frames (0x81)")
    ble.add_argument(
        "--movement",
        default=None,
        metavar="KIND=PER_MIN,…",
        help="the wearer moves: walking, posture, jerks per minute, e.g. walking=0.5,posture=1",
    )


def _add_devices(sub: Any) -> None:
    devices = sub.add_parser("devices", help="supported wearables").add_subparsers(
        dest="devices_command", required=True
    )
    devices.add_parser("list", help="the device profiles twitchwatch can decode")
    p = devices.add_parser("decode", help="decode one BLE notification given as hex; prints JSON")
    p.add_argument("--profile", required=True, help="profile name (see 'twitchwatch devices list')")
    p.add_argument(
        "--stream", default=None, help="stream or message kind (default: the profile's main stream)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a value the notification does not carry (Polar factor, MetaWear range_g, …)",
    )
    p.add_argument("hex", help="the notification's bytes in hex")
    p = devices.add_parser("scan", help="list supported wearables nearby with their signal strength")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to scan (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per device")


def _add_events(sub: Any) -> None:
    p = sub.add_parser("events", help="list stored events")
    p.add_argument("--since", default="1h", help="relative (1h, 7d) or ISO 8601 (default 1h)")
    p.add_argument("--until", default=None, help="relative or ISO 8601 (default now)")
    p.add_argument("--muscle", default=None)
    p.add_argument("--kind", action="append", choices=[k.value for k in EventKind], default=None)
    p.add_argument("--source", choices=["live", "replay"], default=None)
    p.add_argument("--limit", type=int, default=None)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines")
    fmt.add_argument("--csv", action="store_true")


# Options whose values may start with a dash (``--start -21d``), which argparse would take for an option.
_DASH_VALUES = ("--start", "--since", "--until", "--at")


def join_dash_values(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in _DASH_VALUES:
            value = next(it, None)
            out.append(f"{arg}={value}" if value is not None else arg)
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    # twitchwatch uses no pydantic plug-ins; looking for them scans every installed distribution's
    # metadata when the settings model is built (~35 ms of a quick command's start). A person who does
    # use one sets the variable themselves.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = build_parser().parse_args(join_dash_values(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "httpx", "fontTools", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "simulate": cmd_simulate,
        "process": cmd_process,
        "dashboard": cmd_dashboard,
        "demo": cmd_demo,
        "events": cmd_events,
        "detect": cmd_detect,
        "config": cmd_config_check,
        "devices": cmd_devices,
        "collect": cmd_collect,
        "record": cmd_record,
        "export": cmd_export,
        "replay": cmd_replay,
        **person_cli.HANDLERS,
        **data_cli.HANDLERS,
        **broker_cli.HANDLERS,
        **quarantine_cli.HANDLERS,
    }
    return run_command(lambda: handlers[args.command](args))


def _unwrapped(command: Callable[[], int]) -> int:
    """``command()``; an exception group of one twitchwatch error (an asyncio TaskGroup wraps what its
    tasks raise: the worker's "queue twitchwatch.p00 does not exist: run 'twitchwatch broker setup' first"
    came out as a bug with a traceback) is that error."""
    try:
        return command()
    except BaseExceptionGroup as group:
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if isinstance(inner, TwitchwatchError):
            raise inner from None
        raise


def run_command(command: Callable[[], int]) -> int:
    """A command's exit status: its own, 2 for a user error (bad input or configuration: the message
    says what to fix), 1 for another failure twitchwatch explains (the message) and 1 with the traceback
    for anything else — a bug, even when it is a ``ValueError`` from numpy, is not a usage error."""
    try:
        return _unwrapped(command)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TwitchwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "error: this is a bug in twitchwatch; please report it with the traceback above", file=sys.stderr
        )
        return 1


def run_until_signal(make: Callable[[asyncio.Event], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; SIGINT/SIGTERM set the stop event it was given, so it can shut down cleanly. A second
    one cancels it and raises ``KeyboardInterrupt`` (exit 130): the user does not want to wait."""
    import asyncio

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        again = False

        def on_signal() -> None:
            nonlocal again
            if stop.is_set() and main is not None:
                # A second Ctrl-C during a shutdown that waits (a broker to take buffered frames, a store to
                # take the last events): stop now; each part logs what it had not handed over.
                again = True
                log.warning("interrupted again: stopping without waiting any longer")
                main.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            return await make(stop)
        except asyncio.CancelledError:
            if again:
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())


async def until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Run ``work`` until it finishes or ``stop`` is set; on stop it is cancelled and None is returned."""
    import asyncio

    task = asyncio.create_task(work)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


# ---- simulate --------------------------------------------------------------------------------------
def plan_from_args(args: argparse.Namespace, user: str) -> SimulationPlan:
    from twitchwatch.collector.simulate import SimulationPlan, WearWindow, parse_start

    now = dt.datetime.now().astimezone()
    speed = None if args.speed == "max" else _positive_float(args.speed, "--speed")
    return SimulationPlan(
        muscles=tuple(args.muscle),
        signal=args.signal,
        start=parse_start(args.start, now),
        duration_s=parse_duration(args.duration),
        speed=speed,
        per_minute=args.rate,
        seed=args.seed,
        user=user,
        wear=WearWindow.parse(args.wear) if args.wear else None,
        sample_rate=args.sample_rate,
        chunk=args.chunk,
    )


def _positive_float(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SimulationError(f"{option}: {text!r} is not a number (or 'max')") from None
    if value <= 0:
        raise SimulationError(f"{option}: must be > 0")
    return value


def _hms_tenths(seconds: float) -> str:
    """hh:mm:ss.s (under a day): an assessable time of a few seconds still reads as more than nothing."""
    tenths = int(seconds * 10 + 0.5)
    s = tenths // 10
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}.{tenths % 10}"


def _hms(seconds: float) -> str:
    s = int(seconds)
    return (
        f"{s // 86400}d {s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
        if s >= 86400
        else (f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}")
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.ble:
        return cmd_simulate_ble(args)
    from twitchwatch.collector.simulate import run_simulation, truth_file
    from twitchwatch.config import load_settings

    settings = load_settings()
    plan = plan_from_args(args, settings.user)
    progress = SignalProgress("simulate")
    out = truth_file(args.truth)

    async def go(stop: asyncio.Event) -> int:
        stats = await until_stopped(run_simulation(plan, settings.mqtt, out, progress), stop)
        progress.close()
        if stats is None:
            print("stopped", file=sys.stderr)
            return 0
        print(
            f"published {stats.frames} frames ({stats.samples} samples, "
            f"{stats.signal_seconds:.0f} s of signal per muscle), {stats.truth_events} twitches injected; "
            f"{stats.broker_reconnects} broker reconnect(s), {stats.frames_dropped} frames lost",
            file=sys.stderr,
        )
        return 0

    try:
        return run_until_signal(go)
    finally:
        if out:
            out.close()


def parse_movement(text: str | None) -> Movement:
    """``walking=0.5,posture=1,jerks=0.2`` (events per minute) → ``Movement``; None → a still wearer."""
    from twitchwatch.collector.emulate.motion import Movement

    if not text:
        return Movement()
    names = {"walking": "walking", "posture": "posture_changes", "jerks": "limb_jerks"}
    rates: dict[str, float] = {}
    for part in text.split(","):
        kind, _, value = part.partition("=")
        field_name = names.get(kind.strip())
        if field_name is None:
            raise SimulationError(f"--movement: {kind.strip()!r} is not one of {', '.join(names)}")
        try:
            rates[field_name] = float(value)
        except ValueError:
            raise SimulationError(
                f"--movement {kind.strip()}: {value.strip()!r} is not a rate per minute"
            ) from None
    try:
        return Movement(**rates)
    except ValueError as exc:
        raise SimulationError(f"--movement: {exc}") from None


def cmd_simulate_ble(args: argparse.Namespace) -> int:
    from twitchwatch.collector.emulate.run import BleSimulation, run_ble_simulation
    from twitchwatch.collector.emulate.source import RecordingSources
    from twitchwatch.collector.recordings.playback import open_source
    from twitchwatch.collector.simulate import truth_file

    speed = _positive_float(args.speed, "--speed") if args.speed != "max" else None
    if speed is None:
        raise SimulationError("--speed: a BLE wearable streams paced; give a number (e.g. 10), not max")
    sim = BleSimulation(
        args.profile,
        tuple(args.muscle),
        args.rate,
        args.seed,
        speed,
        args.transport,
        args.serve_hci,
        args.address,
        args.name,
        args.compressed,
        parse_movement(args.movement),
    )
    recording = open_source(args.recording) if args.recording else None
    out = truth_file(args.truth)

    def write_truth(event: TruthEvent) -> None:
        if out is not None:
            out.write(json.dumps(event.to_json_dict()) + "\n")
            out.flush()

    try:
        sources = RecordingSources(recording) if recording else None
        return run_until_signal(lambda stop: run_ble_simulation(sim, stop, sys.stdout, write_truth, sources))
    finally:
        if out:
            out.close()
        if recording:
            recording.close()


# ---- process ---------------------------------------------------------------------------------------
def muscle_map_from(settings: Settings) -> Callable[[str, str, int], str | None]:
    return settings.device_file().muscle_for


def segment_map_from(settings: Settings) -> Callable[[str], str | None]:
    """Each device's body segment as the device map sets it (else the worker derives it from muscles)."""
    return settings.device_file().segment_for


def flag_task_from(settings: Settings) -> FlagTask:
    from twitchwatch.processing.periodic import FlagTask, HaDiscovery

    ha = HaDiscovery(settings.ha_prefix, settings.ha_interval_s) if settings.ha_discovery else None
    return FlagTask(
        settings.flag_rules,
        settings.flags_interval_s,
        settings.flag_devices,
        (settings.user,),
        ha,
        settings.tz,
    )


def cmd_process(args: argparse.Namespace) -> int:
    import socket

    from twitchwatch.config import load_settings
    from twitchwatch.processing.amqp import AmqpSource, display_url
    from twitchwatch.processing.store import open_store
    from twitchwatch.processing.worker import OFFLINE_GRACE_S, STATUS_WAIT_S, Worker

    settings = load_settings()
    store = open_store(settings.store_url, settings.influx_auth, create=True)
    amqp_url = settings.amqp_url_value()
    # From RabbitMQ's partitions every user's frames come (each partition holds many people); the MQTT
    # connection then only publishes, under a client id of its own (workers must not take each other's).
    default_id = f"twitchwatch-worker-{settings.user}"
    if amqp_url:
        default_id = f"twitchwatch-worker-{socket.gethostname()}-{os.getpid()}"
    client_id = args.client_id or default_id
    ingest = (
        AmqpSource(amqp_url, settings.amqp_partitions, settings.amqp_slot_value(), consumer_prefix=client_id)
        if amqp_url
        else None
    )
    worker = Worker(
        settings.mqtt,
        store,
        user="+" if ingest is not None else settings.user,
        muscle_map=muscle_map_from(settings),
        client_id=client_id,
        flags=flag_task_from(settings),
        segment_map=segment_map_from(settings),
        ingest=ingest,
        state_dir=settings.state_dir,
        status_wait_s=STATUS_WAIT_S,
        offline_grace_s=OFFLINE_GRACE_S,
        quarantine=quarantine_cli.quarantine_of(settings),
    )
    source = display_url(amqp_url) if amqp_url else settings.mqtt.display
    log.info("worker: %s → %s (user %s)", source, store.url, "any" if ingest else settings.user)
    try:
        run_until_signal(lambda stop: _run_worker(worker, stop))
    finally:
        store.close()
        log.info("worker stopped: %s", worker.stats)
    return 0


async def _run_worker(worker: Worker, stop: asyncio.Event) -> None:
    import asyncio

    async def stopper() -> None:
        await stop.wait()
        worker.stop()

    # Not a TaskGroup: it wraps what ``run`` raises in an ExceptionGroup, and the worker's own refusals
    # ("another worker is using …", a state directory it cannot write) came out as "a bug in twitchwatch".
    stop_task = asyncio.create_task(stopper())
    try:
        await worker.run()
    finally:
        stop_task.cancel()
        await asyncio.gather(stop_task, return_exceptions=True)


# ---- dashboard / demo ------------------------------------------------------------------------------
def cmd_dashboard(args: argparse.Namespace) -> int:
    from twitchwatch.config import load_settings

    settings = load_settings()  # fail fast, with a clear message, before Streamlit starts
    from twitchwatch.dashboard_launch import require_login_beyond_loopback, run_dashboard

    require_login_beyond_loopback(args.host, settings)  # exit 2 with how to set one
    return run_dashboard(args.host, args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from twitchwatch.config import default_demo_store_url, load_settings
    from twitchwatch.demo import run_demo
    from twitchwatch.processing.store import parse_store_url

    store_url = args.store or default_demo_store_url()
    parse_store_url(store_url)  # a bad --store fails here (exit 2), before anything starts
    settings = load_settings(store_url=store_url)
    return run_until_signal(lambda stop: run_demo(settings, stop, args.port, args.rate, args.signal))


# ---- events ----------------------------------------------------------------------------------------
def cmd_events(args: argparse.Namespace) -> int:
    from twitchwatch.config import load_settings
    from twitchwatch.processing.store import EventQuery, open_store
    from twitchwatch.timeargs import parse_when

    settings = load_settings()
    now = dt.datetime.now(settings.tz)
    since = parse_when(args.since, now, "--since")
    until = parse_when(args.until, now, "--until") if args.until else None
    query = EventQuery(
        since_ns=round(since.timestamp() * 1e9),
        until_ns=round(until.timestamp() * 1e9) if until else None,
        user=settings.user,
        muscle=args.muscle,
        source=args.source,
        kinds=tuple(EventKind(k) for k in args.kind) if args.kind else None,
        limit=args.limit,
    )
    with open_store(settings.store_url, settings.influx_auth) as store:
        print_events(store, query, "json" if args.json else "csv" if args.csv else "table", settings.tz)
    return 0


_COLUMNS = [
    "start",
    "end",
    "muscle",
    "kind",
    "duration_ms",
    "amplitude",
    "unit",
    "confidence",
    "device",
    "source",
    "reason",
]


def print_events(store: EventStore, query: EventQuery, fmt: str, tz: dt.tzinfo = dt.UTC) -> None:
    """Events as JSON lines, CSV or a table. Those of kind ``during_movement`` are listed with their reason
    (what they looked like and what made the muscle not assessable): they are never counted as twitches."""
    events = store.events(query)
    rows = [e.to_json_dict() for e in events]
    if fmt == "json":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    for e in events:
        when = dt.datetime.fromtimestamp(e.start_ns / 1e9, tz).isoformat(timespec="milliseconds")
        why = f"  ({e.reason})" if e.reason else ""
        print(
            f"{when}  {e.muscle:<20} {e.kind.value:<15} {e.duration_ms:7.1f} ms  {e.amplitude:10.3f} {e.unit}"
            f"{why}"
        )
    moved = sum(1 for e in events if e.kind is EventKind.DURING_MOVEMENT)
    note = f" ({moved} during movement: not counted as twitches)" if moved else ""
    print(f"{len(events)} events{note}", file=sys.stderr)


# ---- detect ----------------------------------------------------------------------------------------
# Progress on stderr only where someone watches it (a terminal) and only when there is time to watch:
# redirected stderr stays free of carriage-return lines, and short files finish before a bar would help.
DETECT_PROGRESS_MIN_S = 600.0


def _add_detect(sub: Any) -> None:
    p = sub.add_parser(
        "detect",
        help="run the twitch detectors over a recording file (EDF/EDF+/BDF+, HDF5 session, OpenSignals, CSV)",
        description="Stream a recording through the worker's twitch detectors and its rest gate (the file's "
        "streams are one device: its accelerometer and gyroscope movement, and each EMG channel's own "
        "activity, mark twitches found meanwhile as during_movement, with the reason); events on stdout, a "
        f"per-channel summary with the time each muscle could be assessed on stderr. {NOTICE}",
    )
    p.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help=(
            "EDF/BDF(+), a twitchwatch session, a PLUX OpenSignals file or CSV/TSV text "
            "(told by content, then by extension)"
        ),
    )
    p.add_argument("--json", action="store_true", help="events as JSON lines (default: a table)")
    p.add_argument(
        "--channels",
        nargs="+",
        action="extend",
        metavar="LABEL|INDEX",
        help="only these channels (label, or number from 0 as in the summary); put PATH first",
    )
    p.add_argument("--muscle", default=None, help="muscle name for every selected channel")
    p.add_argument("--signal", choices=["emg", "acc"], default=None, help="override the inferred signal type")
    p.add_argument(
        "--no-gate",
        action="store_true",
        help="the detectors alone: no twitch is marked during_movement, no assessable time",
    )
    p.add_argument(
        "--rate", type=_hz, default=None, help="sample rate in Hz (CSV only; else from its time column)"
    )
    p.add_argument(
        "--chunk-seconds", type=_chunk_seconds, default=1.0, help="signal per detector call (default 1 s)"
    )


def _hz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of Hz") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
    return value


def _chunk_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    from twitchwatch.collector.recordings import MAX_CHUNK_S

    if not 0 < value <= MAX_CHUNK_S:
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0 and at most {MAX_CHUNK_S:g}")
    return value


def cmd_detect(args: argparse.Namespace) -> int:
    from twitchwatch.collector.recordings import open_recording
    from twitchwatch.processing.recordings import DetectionRun, plan_detection

    # Malformed files raise RecordingError (a ValueError): main prints it and exits 2.
    with open_recording(args.path, rate=args.rate) as reader:
        rec = reader.recording
        plan = plan_detection(rec, select=args.channels, signal=args.signal, muscle=args.muscle)
        run = DetectionRun(plan, gate=not args.no_gate)
        progress = SignalProgress(
            f"detect {rec.path.name}",
            rec.duration_s,
            interactive=is_terminal(sys.stderr) and rec.duration_s >= DETECT_PROGRESS_MIN_S,
        )
        shares_terminal = progress.interactive and sys.stdout.isatty()
        out = _DetectOutput(args.json)
        try:
            for chunk in reader.chunks(plan.groups, args.chunk_seconds):
                events = run.feed(chunk)
                if events and shares_terminal:
                    progress.clear()
                out.write(events)
                progress(min(chunk.end_s, rec.duration_s), rec.duration_s)
            out.write(run.finish())
            sys.stdout.flush()
        except BrokenPipeError:  # `detect ... | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        finally:
            progress.close()
    _print_detect_summary(plan, run)
    return 0


class _DetectOutput:
    _HEADER = (
        f"{'start_s':>10} {'end_s':>10}  {'channel':<18} {'muscle':<16} {'kind':<15} "
        f"{'dur_ms':>7} {'amplitude':>11} {'unit':<4} {'conf':>5} {'dom_Hz':>6}  reason"
    )

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._header_done = False

    def write(self, events: Sequence[RecordingEvent]) -> None:
        for e in events:
            if self.as_json:
                print(json.dumps(e.to_json_dict()))
                continue
            if not self._header_done:
                print(self._HEADER)
                self._header_done = True
            hz = "-" if e.dominant_hz is None else f"{e.dominant_hz:.1f}"
            print(
                f"{e.start:10.3f} {e.end:10.3f}  {e.channel:<18} {e.muscle:<16} {e.kind.value:<15} "
                f"{e.duration_ms:7.1f} {e.amplitude:11.3f} {e.unit:<4} {e.confidence:5.2f} {hz:>6}  "
                f"{e.reason}".rstrip()
            )


def _print_detect_summary(plan: Plan, run: DetectionRun) -> None:
    from twitchwatch.processing.recordings import MIN_RATE_S

    rec = plan.recording
    lanes = run.lane_summaries
    kinds = list(EventKind)
    err = sys.stderr
    print(
        f"{rec.path.name}: {rec.format}, {len(lanes)} detector lane(s) from "
        f"{sum(len(g.channels) for g in plan.groups)} channel(s)",
        file=err,
    )
    print(
        f"  {'channel':<18} {'muscle':<16} {'signal':<6} {'rate_Hz':>8} {'duration':>11} {'assessable':>11} "
        + " ".join(f"{k.value:>15}" for k in kinds)
        + f" {'twitches/min':>12} {'at_rest/min':>11}",
        file=err,
    )
    for s in lanes:
        at_rest = s.per_assessable_minute
        print(
            f"  {s.lane.label:<18} {s.lane.muscle:<16} {s.lane.signal:<6} {s.lane.rate:>8g} "
            f"{_hms(s.seconds):>11} {_hms_tenths(s.assessable_s) if s.assessable_s is not None else '-':>11} "
            + " ".join(f"{s.counts.get(k, 0):>15}" for k in kinds)
            + (f" {s.per_minute:>12.2f}" if s.lane.twitches else f" {'-':>12}")
            + f" {'-' if at_rest is None else f'{at_rest:.2f}':>11}",
            file=err,
        )
    if run.gated:
        print(
            "  assessable: time at rest and still (no movement on the file's accelerometers or gyroscopes, "
            "no activity on the channel's muscle); at_rest/min: twitches per assessable minute, from "
            f"{MIN_RATE_S:g} s assessable",
            file=err,
        )
    for s in lanes:
        if s.mains is not None:
            hz, rms = s.mains
            print(
                f"  note {s.lane.label}: mains interference taken out: {hz:.2f} Hz and its harmonics, "
                f"{rms:.3g} {s.lane.unit} RMS",
                file=err,
            )
    for c in plan.skipped:
        print(f"  skipped {c.display}: {c.note}", file=err)
    for g in plan.groups:
        for c in g.channels:
            if c.note:
                print(f"  note {c.display}: {c.note}", file=err)
    if plan.unselected:
        print(f"  {plan.unselected} channel(s) not selected", file=err)
    for note in rec.notes:
        print(f"  note: {note}", file=err)
    print(NOTICE, file=err)


# ---- config check ----------------------------------------------------------------------------------
def cmd_config_check(args: argparse.Namespace) -> int:
    from twitchwatch.config import load_device_file, load_settings

    settings = load_settings()
    path = args.path or settings.config
    print(
        f"environment: OK (MQTT {settings.mqtt.display}, store {settings.store_url}, user {settings.user}, "
        f"time zone {settings.timezone})"
    )
    if path is None:
        print("no device map given (pass PATH or set TWITCHWATCH_CONFIG)")
        return 0
    devices = load_device_file(path)
    streams = sum(len(d.streams) for d in devices.devices.values())
    print(f"{path}: OK ({len(devices.devices)} devices, {streams} streams)")
    for name, device in sorted(devices.devices.items()):
        print(f"  {name}: body segment {_segment_words(device)}")
    return 0


def _segment_words(device: DeviceMap) -> str:
    """What the worker's rest gate takes as the device's body segment, and why."""
    from twitchwatch.processing.segments import segment_of

    if device.segment:
        return f"{device.segment} (set in the map)"
    muscles = sorted({m for s in device.streams.values() for m in (s.muscle, *s.channels.values()) if m})
    found = sorted({seg for m in muscles if (seg := segment_of(m))})
    if found:
        return f"{', '.join(found)} (from {', '.join(muscles)})"
    return "unknown (no muscle name it recognises; set `segment = …` to let movement there count)"


# ---- devices ---------------------------------------------------------------------------------------
def cmd_devices(args: argparse.Namespace) -> int:
    from twitchwatch.collector import devices

    if args.devices_command == "scan":
        return cmd_devices_scan(args)
    if args.devices_command == "list":
        for name, profile in sorted(devices.profiles().items()):
            streams = ", ".join(s.name for s in profile.STREAMS)
            print(f"{name:<14} {streams}")
        return 0
    print(json.dumps(devices.decode_hex(args.profile, args.hex, args.stream, parse_params(args.param))))
    return 0


def cmd_devices_scan(args: argparse.Namespace) -> int:
    import asyncio

    from bleak.exc import BleakError

    from twitchwatch.collector.ble.scan import render_nearby, scan_nearby

    if not args.timeout > 0:
        raise CliError("--timeout: seconds to scan, > 0")
    try:
        found = asyncio.run(scan_nearby(args.timeout))
    except BleakError as exc:
        raise CliError(f"cannot scan: {exc}; is there a Bluetooth adapter, and is it switched on?") from None
    except OSError as exc:  # on Linux: no D-Bus system bus, so no BlueZ to ask
        raise CliError(
            f"cannot reach the system's Bluetooth service ({exc}); on Linux, is bluetoothd running?"
        ) from None
    print(render_nearby(found, args.json))
    return 0


# ---- collect ---------------------------------------------------------------------------------------
def cmd_collect(args: argparse.Namespace) -> int:
    from twitchwatch.collector.ble.runtime import Collector
    from twitchwatch.config import load_settings

    settings = load_settings()
    targets, timing = settings.device_file().collect_plan(args.device)
    if not targets:
        raise CliError("no BLE devices in the device map: add [devices.NAME] with a profile (docs/ble.md)")
    collector = Collector(targets, settings.mqtt, settings.user, timing=timing)
    print(NOTICE, file=sys.stderr)
    try:
        run_until_signal(collector.run_until)
    finally:
        for name, runner in collector.runners.items():
            s, pub = runner.stats, runner.publisher
            lost = f", {pub.frames_dropped} dropped (broker away too long)" if pub.frames_dropped else ""
            print(
                f"{name}: {s.frames_published} frames{lost}, {s.connects} connection(s), {s.drops} drop(s), "
                f"{pub.reconnects} broker reconnect(s), failures {s.failures or 'none'}",
                file=sys.stderr,
            )
    return 0


def parse_params(items: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param {item!r}: expected KEY=VALUE")
        params[key] = value
    return params


# ---- record / export / replay (sessions: docs/sessions.md) ----------------------------------------
def _add_record(sub: Any) -> None:
    p = sub.add_parser(
        "record",
        help="record raw frames, device metadata and annotations from MQTT to an HDF5 session",
        description="Subscribe to the user's raw frames and device statuses and write them, exactly as they "
        "arrive, to an HDF5 session (docs/sessions.md). Ctrl-C or SIGTERM closes the file cleanly.",
    )
    p.add_argument("out", type=Path, metavar="OUT.h5", help="session file to create (must not exist)")
    p.add_argument("--duration", default=None, help="stop after SECONDS or 15m, 6h (default: until Ctrl-C)")
    p.add_argument("--device", action="append", default=None, help="only this device; repeat for several")
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="ground truth written by 'simulate --truth', stored as annotations when the recording ends",
    )
    p.add_argument(
        "--markers", action="store_true", help="each line typed on stdin is a marker at the time it arrives"
    )
    p.add_argument(
        "--stop-when-offline",
        action="store_true",
        help="stop once every device that streamed has gone offline (e.g. a simulation ended)",
    )


def cmd_record(args: argparse.Namespace) -> int:
    import asyncio

    from twitchwatch.collector.record import Recorder, RecordError, TruthError, read_truth, select_truth
    from twitchwatch.collector.recordings.formats.session import SessionWriter
    from twitchwatch.config import load_settings

    settings = load_settings()
    duration = parse_duration(args.duration) if args.duration else None
    if args.truth is not None and args.truth.exists():
        read_truth(args.truth)  # a broken truth file fails now (exit 2), not after a long recording
    writer = SessionWriter(args.out, user=settings.user, broker=settings.mqtt.display)
    try:
        recorder = Recorder(settings.mqtt, writer, user=settings.user, devices=args.device)
    except BaseException:
        writer.close()
        args.out.unlink()
        raise

    progress = Progress(f"record {args.out.name}", duration, unit="s")

    async def go(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        reading = args.markers and _read_markers(loop, recorder.marker)
        ticker = asyncio.create_task(_record_progress(recorder, progress))
        try:
            await recorder.run(stop, duration, args.stop_when_offline)
        finally:
            ticker.cancel()
            progress.close()
            if reading:
                loop.remove_reader(sys.stdin.fileno())

    status = 0
    try:
        run_until_signal(go)
    except RecordError as exc:
        writer.close()
        args.out.unlink()  # nothing was recorded
        raise CliError(str(exc)) from None
    except BaseException:
        writer.close()
        raise
    try:
        if args.truth is not None:
            try:
                truth, dropped = select_truth(
                    read_truth(args.truth), writer.start_ns, writer.end_ns, writer.muscles
                )
            except TruthError as exc:
                print(f"error: {exc}; the session is saved without ground truth", file=sys.stderr)
                status = 1
            else:
                for a in truth:
                    writer.add_annotation(a)
                print(
                    f"{len(truth)} truth annotations ({dropped} on other muscles or times left out)",
                    file=sys.stderr,
                )
    finally:
        writer.close()
    s = recorder.stats
    print(
        f"recorded {s.frames} frames of {len(s.streams)} stream(s) from {len(s.devices)} device(s) to "
        f"{args.out}: {s.gaps} gap(s) ({s.missing_frames} frames lost), {s.duplicates} duplicates and "
        f"{s.bad_frames} malformed frames skipped, {s.markers} marker(s)",
        file=sys.stderr,
    )
    return status


async def _record_progress(recorder: Recorder, progress: Progress) -> None:
    """Seconds recorded and frames taken, once a second (the progress rate-limits what it shows)."""
    import asyncio

    t0 = time.monotonic()
    while True:
        progress.update(time.monotonic() - t0, f"{recorder.stats.frames:,} frames")
        await asyncio.sleep(1.0)


def _read_markers(loop: asyncio.AbstractEventLoop, marker: Callable[[str], None]) -> bool:
    """Each line on stdin becomes a marker when it arrives; False when stdin cannot be watched (a file)."""
    fd = sys.stdin.fileno()
    buffer = b""

    def readable() -> None:
        nonlocal buffer
        data = os.read(fd, 4096)
        if not data:
            loop.remove_reader(fd)
            return
        *lines, buffer = (buffer + data).split(b"\n")
        for line in lines:
            if text := line.decode("utf-8", "replace").strip():
                marker(text)
                log.info("marker: %s", text)

    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError) as exc:
        log.warning("--markers: cannot watch stdin (%s); no markers", exc)
        return False
    print("type a note and press Enter to mark this moment", file=sys.stderr)
    return True


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="convert a recording (a session, EDF/BDF, CSV) to EDF+ or BDF+ with annotations",
        description="Write a recording as EDF+ or BDF+ with labels such as 'EMG calf_left' and "
        "'ACC calf_left X' that 'twitchwatch detect' understands, and ground truth, markers and gaps as "
        "annotations. A session's samples are kept digit for digit (BDF+ when a stream needs 24 bits); any "
        "other recording is quantised to 24 bits (BDF+) (docs/sessions.md).",
    )
    p.add_argument(
        "session",
        type=Path,
        metavar="PATH",
        help="a recording: an HDF5 session from 'twitchwatch record', EDF/BDF(+) or CSV",
    )
    p.add_argument(
        "--edf", type=Path, required=True, metavar="OUT", help="file to write (.edf; .bdf if needed)"
    )
    p.add_argument("--rate", type=_hz, default=None, help="sample rate in Hz of a CSV without a time column")


def cmd_export(args: argparse.Namespace) -> int:
    from twitchwatch.collector.recordings import open_recording
    from twitchwatch.collector.recordings.formats.edf import export_edf

    with (
        open_recording(args.session, rate=args.rate) as reader,
        SignalProgress(f"export {args.session.name}") as progress,
    ):
        result = export_edf(reader, args.edf, progress)
    print(
        f"{result.path}: {result.filetype}, {len(result.labels)} signal(s) ({', '.join(result.labels)}), "
        f"{result.records} × {result.record_s:g} s records, {result.annotations} annotation(s)",
        file=sys.stderr,
    )
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def _add_replay(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="play a recording (session, EDF/BDF, CSV) through a simulated device (events: source=replay)",
        description="Publish a recording's frames as a device would, with a retained status saying "
        "source=replay. Time: --speed max keeps the recording's timestamps; a paced replay shifts them so "
        "the replay starts now (--clock overrides). docs/sessions.md has the details.",
    )
    p.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="HDF5 session, EDF/BDF(+) or CSV/TSV (told by content, then by extension)",
    )
    p.add_argument("--speed", default="1", help="1 (real time), N (N× faster) or max")
    p.add_argument("--loop", action="store_true", help="start over at the end, until Ctrl-C")
    p.add_argument(
        "--start", type=_start_seconds, default=0.0, help="skip SECONDS (or 90s, 15m) into the file"
    )
    p.add_argument(
        "--muscle-map",
        action="append",
        default=[],
        metavar="CH=MUSCLE",
        help="muscle for a channel: a file's channel label or number (as detect shows it), DEVICE.STREAM.N / "
        "STREAM.N of a session, or the channel's current muscle; repeat for several",
    )
    p.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="NAME",
        help="EDF, CSV: the device name (default edf-<file>, csv-<file>); session: replay only this recorded "
        "device, or OLD=NEW to rename it; repeat for several",
    )
    p.add_argument("--clock", choices=["recorded", "now"], default=None, help="override the time rule above")
    p.add_argument(
        "--rate", type=_hz, default=None, help="sample rate in Hz (CSV only; else from its time column)"
    )


def _start_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        try:
            return parse_duration(text, "--start")
        except SimulationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: seconds into the file, ≥ 0")
    return value


def cmd_replay(args: argparse.Namespace) -> int:
    from twitchwatch.collector.recordings.playback import open_source
    from twitchwatch.collector.replay import ReplayOptions, run_replay
    from twitchwatch.config import load_settings

    settings = load_settings()
    speed = None if args.speed == "max" else _positive_float(args.speed, "--speed")
    options = ReplayOptions(settings.user, speed, args.loop, args.start, args.clock)
    # Before connecting: bad files exit 2.
    source = open_source(args.path, args.device, args.muscle_map, args.rate)
    progress = SignalProgress(f"replay {args.path.name}")

    async def go(stop: asyncio.Event) -> int:
        stats = await until_stopped(run_replay(source, settings.mqtt, options, progress), stop)
        progress.close()
        if stats is None:
            print("stopped", file=sys.stderr)
            return 0
        print(
            f"replayed {stats.frames} frames ({stats.signal_seconds:.1f} s of signal, "
            f"{stats.passes} pass(es))"
            f" as session {stats.session_id}, source=replay, {options.effective_clock} time; "
            f"{stats.broker_reconnects} broker reconnect(s), {stats.frames_lost} frames lost",
            file=sys.stderr,
        )
        return 0

    try:
        return run_until_signal(go)
    finally:
        source.close()
