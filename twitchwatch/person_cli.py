"""``twitchwatch flags``, ``twitchwatch journal …``, ``twitchwatch felt`` and ``twitchwatch report``: the
person-facing commands over the store (registered by ``twitchwatch.cli``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from twitchwatch.collector.topics import TopicError, check_segment
from twitchwatch.errors import UserError
from twitchwatch.processing.journal import Factor, JournalEntry, parse_factor
from twitchwatch.processing.localtime import local_datetime, to_ns, zone_name
from twitchwatch.timeargs import parse_when

if TYPE_CHECKING:
    from twitchwatch.config import Settings
    from twitchwatch.processing.flags import FlagSet
    from twitchwatch.processing.store import EventStore

NOTICE = "twitchwatch is not a medical device and does not diagnose anything."


class PersonCliError(UserError):
    """Bad input to a person's command (a muscle name, an entry id, a missing output): ``twitchwatch.cli``
    prints it and exits 2."""


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("flags", help="the current persistent-activity flags (computed if the worker has not)")
    p.add_argument("--json", action="store_true", help="the flag set as JSON (what the dashboard shows)")
    _add_journal(sub)
    _add_felt(sub)
    _add_report(sub)


def _add_journal(sub: Any) -> None:
    journal = sub.add_parser("journal", help="log caffeine, exercise, sleep, stress, medication, symptoms")
    cmds = journal.add_subparsers(dest="journal_command", required=True)
    add = cmds.add_parser("add", help="add an entry")
    add.add_argument("factor", help=", ".join(f.value for f in Factor))
    add.add_argument("--amount", default="", help='free text, e.g. "2 cups", "45 min", "6 h"')
    add.add_argument("--note", default="", help="free text")
    add.add_argument("--muscle", default="", help="where a symptom was felt")
    add.add_argument("--at", default="now", help="when: now, relative like 2h (ago) or ISO 8601")
    ls = cmds.add_parser("list", help="list entries")
    ls.add_argument("--since", default="30d", help="relative (7d) or ISO 8601 (default 30d)")
    ls.add_argument("--until", default=None, help="relative or ISO 8601 (default now)")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    rm = cmds.add_parser("delete", help="delete an entry by id (asks first)")
    rm.add_argument("entry_id", help="the id 'journal list' shows")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _add_felt(sub: Any) -> None:
    p = sub.add_parser(
        "felt",
        help="mark a twitch you felt now (or --at a time): compared with the detections in the report",
    )
    p.add_argument(
        "--muscle", default="", help="where you felt it, as the device map names it (e.g. calf_left)"
    )
    p.add_argument("--at", default="now", help="when: now, relative like 30s or 2m (ago) or ISO 8601")


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="the doctor-visit report: PDF with plots, CSV of daily counts")
    p.add_argument("--since", default="30d", help="relative (30d) or ISO 8601 (default 30d)")
    p.add_argument("--until", default=None, help="relative or ISO 8601 (default now)")
    p.add_argument("--pdf", type=Path, default=None, help="write the PDF here")
    p.add_argument("--csv", type=Path, default=None, help="write daily twitch counts per muscle here")


# ---- shared ----------------------------------------------------------------------------------------


def _local(ns: int, tz: dt.tzinfo) -> str:
    return local_datetime(ns, tz).isoformat(timespec="minutes")


def load_settings() -> Settings:
    """The validated configuration, imported when a command runs: pydantic's settings need not load for
    ``twitchwatch --help``."""
    from twitchwatch.config import load_settings as load

    return load()


def _open(settings: Settings) -> EventStore:
    from twitchwatch.processing.store import open_store

    return open_store(settings.store_url, settings.influx_auth)


def flag_display_args(settings: Settings) -> dict[str, Any]:
    """The arguments of ``flags_for_display`` from the settings; the dashboard's composition root
    passes the same, so ``flags --json`` and the dashboard agree."""
    return {
        "user": settings.user,
        "rules": settings.flag_rules,
        "devices": settings.flag_devices,
        "max_age_s": settings.flags_max_age_s,
        "tz": settings.tz,
    }


def report_args(settings: Settings) -> dict[str, Any]:
    """The settings-derived arguments of ``build_report`` (besides store and period); the dashboard's
    composition root passes the same, so its download equals ``twitchwatch report``."""
    return {
        "user": settings.user,
        "rules": settings.flag_rules,
        "journal_windows_ns": settings.journal_windows_ns,
        "tz": settings.tz,
    }


# ---- flags -----------------------------------------------------------------------------------------


def cmd_flags(args: argparse.Namespace) -> int:
    from twitchwatch.processing.flag_service import flags_for_display

    out = sys.stdout
    settings = load_settings()
    with _open(settings) as store:
        flag_set = flags_for_display(store, computed_by="cli", **flag_display_args(settings))
    if args.json:
        print(json.dumps(flag_set.to_json_dict(), indent=2, ensure_ascii=False), file=out)
        return 0
    print_flags(flag_set, settings.flags_interval_s, out, settings.tz)
    return 0


def print_flags(flag_set: FlagSet, interval_s: float, out: TextIO, tz: dt.tzinfo = dt.UTC) -> None:
    from twitchwatch.processing.flags import RATES_WORDS

    if flag_set.computed_by == "worker":
        origin = f"computed by the worker at {_local(flag_set.computed_at_ns, tz)}"
    else:
        origin = (
            f"computed now from the store: the worker has stored none in the last "
            f"{3 * interval_s / 60:.0f} min (is 'twitchwatch process' running?)"
        )
    print(f"Flags for {flag_set.user}: {len(flag_set.flags)} raised; {origin}.", file=out)
    print(f"Rates: {RATES_WORDS}.", file=out)
    for f in flag_set.flags:
        where = f.muscle or f"device {f.device}"
        print(f"\n[{f.kind.value}] {where}", file=out)
        print(f"  {f.summary}", file=out)
        dates = f"{f.first_day.isoformat()} … {f.last_day.isoformat()}"
        print(f"  dates ({zone_name(tz)}): {dates} ({len(f.days)} days)", file=out)
        print(f"  rule: {f.rule}", file=out)
    print(f"\n{NOTICE}", file=out)


# ---- journal ---------------------------------------------------------------------------------------


def cmd_journal(args: argparse.Namespace) -> int:
    stdin, out = sys.stdin, sys.stdout
    settings = load_settings()
    tz = settings.tz
    now = dt.datetime.now(tz)
    with _open(settings) as store:
        if args.journal_command == "add":
            entry = JournalEntry(
                user=settings.user,
                time_ns=to_ns(parse_when(args.at, now, "--at")),
                factor=parse_factor(args.factor),
                amount=args.amount,
                note=args.note,
                muscle=args.muscle,
            )
            store.add_journal_entry(entry)
            print(f"added {entry.entry_id}: {_entry_line(entry, tz)}", file=out)
            return 0
        if args.journal_command == "list":
            since = parse_when(args.since, now, "--since")
            until = parse_when(args.until, now, "--until") if args.until else None
            entries = store.journal_entries(to_ns(since), to_ns(until) if until else None, settings.user)
            for e in entries:
                print(
                    json.dumps(e.to_json_dict(), ensure_ascii=False) if args.json else _entry_row(e, tz),
                    file=out,
                )
            if not args.json:
                print(f"{len(entries)} entries", file=sys.stderr)
            return 0
        return _delete(store, args.entry_id, settings.user, args.yes, stdin, out, tz)


def _entry_line(e: JournalEntry, tz: dt.tzinfo) -> str:
    parts = [e.factor.value, e.amount, f"({e.muscle})" if e.muscle else "", e.note]
    return f"{_local(e.time_ns, tz)} " + " ".join(p for p in parts if p)


def _entry_row(e: JournalEntry, tz: dt.tzinfo) -> str:
    return f"{e.entry_id}  {_entry_line(e, tz)}"


def _delete(
    store: EventStore, entry_id: str, user: str, yes: bool, stdin: TextIO, out: TextIO, tz: dt.tzinfo
) -> int:
    matches = [e for e in store.journal_entries(user=user) if e.entry_id == entry_id]
    if not matches:
        raise PersonCliError(
            f"no journal entry {entry_id!r} for {user}; 'twitchwatch journal list' shows the ids"
        )
    if not yes:
        print(f"Delete {_entry_row(matches[0], tz)}? [y/N] ", end="", file=out, flush=True)
        answer = stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("not deleted", file=out)
            return 1
    store.delete_journal_entry(entry_id)
    print(f"deleted {entry_id}", file=out)
    return 0


# ---- felt ------------------------------------------------------------------------------------------


def cmd_felt(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    settings = load_settings()
    tz = settings.tz
    if args.muscle:
        try:
            check_segment(args.muscle, "--muscle")
        except TopicError as exc:
            raise PersonCliError(str(exc)) from None
    when = to_ns(parse_when(args.at, dt.datetime.now(tz), "--at"))
    entry = JournalEntry(settings.user, when, Factor.FELT, muscle=args.muscle)
    with _open(settings) as store:
        store.add_journal_entry(entry)
        known = store.muscles(settings.user)
    where = f" on {entry.muscle}" if entry.muscle else ""
    at = local_datetime(when, tz).isoformat(timespec="seconds")
    print(f"marked a felt twitch{where} at {at} ({entry.entry_id})", file=out)
    if entry.muscle and known and entry.muscle not in known:
        print(
            f"note: nothing was detected on {entry.muscle} yet, so the report cannot compare this mark; the "
            f"muscles with detections are {', '.join(known)}",
            file=err,
        )
    return 0


# ---- report ----------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    err = sys.stderr
    from twitchwatch.processing.report import build_report
    from twitchwatch.processing.report_render import render_csv, render_pdf

    if args.pdf is None and args.csv is None:
        raise PersonCliError("say where to write the report: --pdf OUT.pdf and/or --csv OUT.csv")
    settings = load_settings()
    now = dt.datetime.now(settings.tz)
    since = parse_when(args.since, now, "--since")
    until = parse_when(args.until, now, "--until") if args.until else now
    progress: Callable[[str], None] = lambda step: print(f"report: {step}", file=err, flush=True)  # noqa: E731
    with _open(settings) as store:
        report = build_report(store, to_ns(since), to_ns(until), progress=progress, **report_args(settings))
    if args.pdf is not None:
        progress(f"rendering the PDF to {args.pdf}")
        render_pdf(report, args.pdf)
    if args.csv is not None:
        progress(f"writing daily counts to {args.csv}")
        with args.csv.open("w", newline="", encoding="utf-8") as f:
            render_csv(report, f)
    cov = report.coverage
    progress(
        f"done: {len(report.muscles)} muscles, {cov.monitored_h:.1f} h monitored "
        f"({cov.rest_h:.1f} h at rest) from {since:%Y-%m-%d} to {until:%Y-%m-%d}"
    )
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "flags": cmd_flags,
    "journal": cmd_journal,
    "felt": cmd_felt,
    "report": cmd_report,
}
