"""``twitchwatch data export|import|copy``: a person's whole history as one archive they can keep, read
and take to another store (``processing/archive.py``, docs/data.md). Registered by ``twitchwatch.cli``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twitchwatch import __version__
from twitchwatch.errors import UserError
from twitchwatch.progress import Progress

# The archive, the store and the settings model are imported when a data command runs, not when the
# command line is parsed (twitchwatch --help and the quick commands do without them).
if TYPE_CHECKING:
    from twitchwatch.config import Settings
    from twitchwatch.processing.archive import CheckedArchive
    from twitchwatch.processing.store import EventStore


class DataCliError(UserError):
    """Bad input to a data command (an output that exists, a user the store does not hold): printed
    without a traceback, exit code 2."""


def add_parser(sub: Any) -> None:
    data = sub.add_parser(
        "data", help="export your whole history to an archive, import one, copy between stores"
    )
    cmds = data.add_subparsers(dest="data_command", required=True)
    p = cmds.add_parser(
        "export", help="write events, minute rates, journal, felt marks, flags and device map to a ZIP"
    )
    p.add_argument("out", type=Path, metavar="OUT", help="the archive to write (a new .zip file)")
    p.add_argument(
        "--store", default=None, metavar="URL", help="read this store (default TWITCHWATCH_STORE_URL)"
    )
    _add_users(p)
    p = cmds.add_parser("import", help="read an archive into a store (checked in full first; idempotent)")
    p.add_argument(
        "archive", type=Path, metavar="ARCHIVE", help="a .zip from 'data export', or its unpacked folder"
    )
    p.add_argument(
        "--store", default=None, metavar="URL", help="write this store (default TWITCHWATCH_STORE_URL)"
    )
    p.add_argument(
        "--device-map-to",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the archive's device map here (never over a different file)",
    )
    p = cmds.add_parser("copy", help="move a history from one store to another (SQLite ↔ InfluxDB)")
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the store to read")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the store to write")
    _add_users(p)


def _add_users(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--user",
        action="append",
        default=None,
        help="whose history (default TWITCHWATCH_USER); repeat for several",
    )
    who.add_argument("--all-users", action="store_true", help="everyone the store holds anything of")


class _Stages:
    """A ``processing.archive.Reporter`` that shows each stage as its own progress bar (or, off a terminal,
    at most one line a minute)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._stage = ""
        self._progress: Progress | None = None

    def __call__(self, stage: str, done: float, total: float | None, unit: str) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            if total == 0:
                return  # nothing to do in this stage: no bar
            self._progress = Progress(f"{self.prefix} {stage}", total, unit=unit)
        if self._progress is not None:
            self._progress(done, total or 0)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def abandon(self) -> None:
        if self._progress is not None:
            self._progress.clear()
            self._progress = None


def _run(work: Callable[[Settings, _Stages], int], prefix: str) -> int:
    from twitchwatch.config import load_settings
    from twitchwatch.processing.archive import ArchiveError
    from twitchwatch.processing.store import StoreError

    settings = load_settings()
    stages = _Stages(prefix)
    try:
        code = work(settings, stages)
    except (ArchiveError, DataCliError, StoreError) as exc:
        stages.abandon()
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UserError) else 1
    except BaseException:
        stages.abandon()
        raise
    stages.close()
    return code


def _open(url: str, settings: Settings, *, create: bool = False) -> EventStore:
    from twitchwatch.processing.store import open_store

    return open_store(url, settings.influx_auth, create=create)


def _users(store: EventStore, args: argparse.Namespace, settings: Settings) -> list[str]:
    stored = store.users()
    if args.all_users:
        if not stored:
            raise DataCliError(f"the store {store.url} holds nothing to export")
        return stored
    wanted = list(dict.fromkeys(args.user or [settings.user]))
    absent = [u for u in wanted if u not in stored]
    if absent:
        holds = f"it holds: {', '.join(stored)}" if stored else "it is empty"
        raise DataCliError(
            f"the store {store.url} holds nothing of {', '.join(map(repr, absent))} ({holds}): "
            "name a user with --user, or --all-users"
        )
    return wanted


def _counts(rows: Mapping[str, int]) -> str:
    from twitchwatch.processing.archive import EVENTS, FELT, FLAGS, JOURNAL, RATES

    words = {
        EVENTS: "events",
        RATES: "minute rates",
        JOURNAL: "journal entries",
        FELT: "felt marks",
        FLAGS: "flag sets",
    }
    return ", ".join(f"{word} {rows[name]:,}" for name, word in words.items() if name in rows)


def cmd_data(args: argparse.Namespace) -> int:
    handlers: dict[str, tuple[Callable[[argparse.Namespace, Settings, _Stages], int], str]] = {
        "export": (_export, "export"),
        "import": (_import, "import"),
        "copy": (_copy, "copy"),
    }
    handler, prefix = handlers[args.data_command]
    return _run(lambda settings, stages: handler(args, settings, stages), prefix)


# ---- export ----------------------------------------------------------------------------------------


def _device_map(settings: Settings) -> Path | None:
    if settings.config is None:
        return None
    if not settings.config.is_file():
        raise DataCliError(
            f"TWITCHWATCH_CONFIG names {settings.config}, which is not a file: fix or unset it"
        )
    return settings.config


def _export(args: argparse.Namespace, settings: Settings, stages: _Stages) -> int:
    from twitchwatch.processing.archive import export_archive

    out: Path = args.out
    if out.exists():
        raise DataCliError(f"{out} exists already: choose a new name, or remove it first")
    device_map = _device_map(settings)
    with _open(args.store or settings.store_url, settings) as store:
        users = _users(store, args, settings)
        summary = export_archive(
            store, out, users, producer=f"twitchwatch {__version__}", device_map=device_map, report=stages
        )
    stages.close()
    extra = f", the device map ({device_map})" if summary.device_map else ""
    print(f"wrote {out}: {_counts(summary.rows)}{extra}; users: {', '.join(users)}")
    return 0


# ---- import ----------------------------------------------------------------------------------------


def _check_device_map_target(checked: CheckedArchive, target: Path | None) -> None:
    from twitchwatch.processing.archive import DEVICE_MAP

    if target is None:
        return
    if checked.device_map is None:
        raise DataCliError(f"--device-map-to: the archive holds no device map ({DEVICE_MAP})")
    if target.exists() and target.read_bytes() != checked.device_map:
        raise DataCliError(
            f"--device-map-to: {target} exists and differs from the archive's: choose another path"
        )


def _import_checked(
    checked: CheckedArchive, store: EventStore, stages: _Stages, device_map_to: Path | None
) -> str:
    from twitchwatch.processing.archive import load_archive

    summary = load_archive(checked, store, report=stages)
    stages.close()
    # Rows the store had already are replaced by the archive's: importing twice changes nothing.
    lines = [f"written {_counts(summary.rows)}"]
    if summary.flags_kept:
        lines.append(f"the store's own flags of {', '.join(summary.flags_kept)} are newer and stay current")
    if device_map_to is not None and checked.device_map is not None:
        device_map_to.parent.mkdir(parents=True, exist_ok=True)
        device_map_to.write_bytes(checked.device_map)
        lines.append(f"the device map written to {device_map_to} (point TWITCHWATCH_CONFIG at it)")
    elif checked.device_map is not None:
        lines.append("the archive holds a device map: --device-map-to PATH writes it out")
    return "; ".join(lines)


def _import(args: argparse.Namespace, settings: Settings, stages: _Stages) -> int:
    from twitchwatch.processing.archive import check_archive

    url = args.store or settings.store_url
    # Opened to write (an absent database or file is created, empty) but written only once the whole
    # archive has been read and checked against it.
    with _open(url, settings, create=True) as store:
        checked = check_archive(args.archive, store, report=stages)
        _check_device_map_target(checked, args.device_map_to)
        stages.close()
        m = checked.manifest
        whose = ", ".join(m.users) or "nobody"
        print(
            f"checked {args.archive}: format {m.version}, {m.rows:,} rows of {whose}, "
            f"written by {m.created_by or 'an unknown program'} at {m.created_at or 'an unknown time'}"
        )
        done = _import_checked(checked, store, stages, args.device_map_to)
    print(f"imported into {store.url}: {done}")
    return 0


# ---- copy ------------------------------------------------------------------------------------------


def _copy(args: argparse.Namespace, settings: Settings, stages: _Stages) -> int:
    from twitchwatch.processing.archive import check_archive, export_archive

    if args.source == args.target:
        raise DataCliError("--from and --to name the same store")
    with tempfile.TemporaryDirectory(prefix="twitchwatch-copy-") as tmp:
        archive = Path(tmp) / "history.zip"
        # Through an archive: the copy is checked in full against the target before the first write, the
        # same as an import.
        with _open(args.source, settings) as source:
            users = _users(source, args, settings)
            export_archive(source, archive, users, producer=f"twitchwatch {__version__}", report=stages)
        with _open(args.target, settings, create=True) as target:
            checked = check_archive(archive, target, report=stages)
            done = _import_checked(checked, target, stages, None)
    print(f"copied {', '.join(users)} from {source.url} to {target.url}: {done}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"data": cmd_data}
