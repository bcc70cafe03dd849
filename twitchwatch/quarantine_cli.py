"""``twitchwatch quarantine [list|retry]``: the rows a store refused (processing/quarantine.py), shown and
written again. Registered by ``twitchwatch.cli``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twitchwatch.processing.events import MinuteRate, TwitchEvent
from twitchwatch.processing.quarantine import FILE_NAME, Entry, Quarantine, QuarantineError

if TYPE_CHECKING:  # the settings model (pydantic) and the stores are imported when the command runs
    from twitchwatch.config import Settings
    from twitchwatch.processing.store import EventStore


def quarantine_of(settings: Settings) -> Quarantine:
    return Quarantine(settings.state_dir / FILE_NAME)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("quarantine", help="rows the store refused: list them, or write them again")
    cmds = p.add_subparsers(dest="quarantine_command")
    cmds.add_parser("list", help="every quarantined row with when and why (the default)")
    r = cmds.add_parser("retry", help="write every quarantined row again; keep only those still refused")
    r.add_argument(
        "--store", default=None, metavar="URL", help="write this store (default TWITCHWATCH_STORE_URL)"
    )


def cmd_quarantine(args: argparse.Namespace) -> int:
    from twitchwatch.config import load_settings

    settings = load_settings()
    quarantine = quarantine_of(settings)
    try:
        if args.quarantine_command == "retry":
            return _retry(quarantine, args.store or settings.store_url, settings)
        return _list(quarantine)
    except QuarantineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _list(quarantine: Quarantine) -> int:
    entries = quarantine.entries()
    if not entries:
        print(f"the quarantine {quarantine.path} is empty")
        return 0
    for e in entries:
        when = dt.datetime.fromtimestamp(e.at_ns / 1e9, dt.UTC).isoformat(timespec="seconds")
        print(f"{when}  {e.what:5}  {_describe(e)}  {e.store}\n    why: {e.reason}")
    kinds = Counter(e.what for e in entries)
    print(f"{kinds['event']} events and {kinds['rate']} minute rates in {quarantine.path}")
    return 0


def _describe(e: Entry) -> str:
    r = e.row
    if isinstance(r, TwitchEvent):
        return f"{r.user} {r.muscle!r} {r.device} {r.kind.value} at {r.start_ns}"
    return f"{r.user} {r.muscle!r} {r.device} minute {r.minute_ns}: {r.twitches} twitches"


def _retry(quarantine: Quarantine, url: str, settings: Settings) -> int:
    """One row at a time, so each refusal is its own; a store that cannot be reached stops it with the
    quarantine unchanged (writes are idempotent, so rows written before that are harmless to keep)."""
    from twitchwatch.processing.store import StoreError, StoreRejected, open_store

    entries, read_bytes = quarantine.snapshot()
    if not entries:
        print(f"the quarantine {quarantine.path} is empty")
        return 0
    store: EventStore = open_store(url, settings.influx_auth, create=True)
    still: list[Entry] = []
    superseded = 0
    try:
        for e in entries:
            try:
                superseded += not _write(store, e)
            except StoreRejected as exc:
                still.append(Entry(e.at_ns, e.store, str(exc), e.row))
    except StoreError as exc:
        print(f"error: {exc}; the quarantine is unchanged", file=sys.stderr)
        return 1
    finally:
        store.close()
    quarantine.replace(still, read_bytes)
    stored = len(entries) - len(still) - superseded
    kept = (
        f"; {superseded} minute rows left as stored (the store's covers more of the minute)"
        if superseded
        else ""
    )
    print(f"stored {stored} rows in {store.url}{kept}; {len(still)} still refused")
    return 0 if not still else 1


def _write(store: EventStore, e: Entry) -> bool:
    """Write the row; False for a minute the store holds a fuller row of. A minute quarantined when a worker
    stopped with the store down is a running tally; the worker that came next finished that minute, and its
    row counts more of it — written over, the minute went from 43 twitches in 60 s to 17 in 25."""
    if isinstance(e.row, TwitchEvent):
        store.write_events([e.row])
        return True
    from twitchwatch.processing.store import stored_minute

    r = e.row
    stored = stored_minute(store, r.user, r.muscle, r.device, r.source, r.minute_ns)
    if stored is not None and _covers_more(stored, r):
        return False
    store.write_rates([r])
    return True


def _covers_more(stored: MinuteRate, row: MinuteRate) -> bool:
    if stored.monitored_s > row.monitored_s:
        return True
    return stored.end_s is not None and row.end_s is not None and stored.end_s > row.end_s


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"quarantine": cmd_quarantine}
