"""``twitchwatch broker setup``: the RabbitMQ layout that several workers share (``processing/amqp.py``,
docs/scaling.md). Registered by ``twitchwatch.cli``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twitchwatch.collector.topics import TopicError, check_segment
from twitchwatch.errors import UserError

# The settings model and the AMQP client are imported when the command runs, not for every command's
# parser (twitchwatch --help and the quick commands do without them: tests/test_cli_imports.py).


class BrokerOptionError(UserError, ValueError):
    """A ``broker setup`` option or users file is wrong; the message names the option or the file's line."""


def add_parser(sub: Any) -> None:
    broker = sub.add_parser("broker", help="the RabbitMQ layout for several workers (docs/scaling.md)")
    cmds = broker.add_subparsers(dest="broker_command", required=True)
    p = cmds.add_parser(
        "setup",
        help="declare exchanges, partition queues and users' bindings on TWITCHWATCH_AMQP_URL (idempotent)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partition queues (default TWITCHWATCH_AMQP_PARTITIONS, itself 16 unless set); fixed for a "
        "deployment: changing it moves users between queues",
    )
    p.add_argument("--user", action="append", default=[], help="bind this user's messages; repeat")
    p.add_argument("--users-file", type=Path, default=None, help="users to bind, one per line")


def _users(args: argparse.Namespace) -> list[str]:
    """--user values, then the users file's (one per line; blank lines and # comments skipped), each checked
    as a topic segment; an error names the option or the file's line."""
    named: list[tuple[str, str]] = [("--user", u) for u in args.user]
    if args.users_file is not None:
        try:
            lines = args.users_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            reason = exc.strerror or exc
            raise BrokerOptionError(f"--users-file {args.users_file}: cannot read ({reason})") from None
        named += [
            (f"--users-file {args.users_file} line {n}", line.strip())
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    for where, user in named:
        try:
            check_segment(user, "user")
        except TopicError as exc:
            raise BrokerOptionError(f"{where}: {exc}") from None
    return list(dict.fromkeys(user for _, user in named))


def cmd_broker(args: argparse.Namespace) -> int:
    from twitchwatch.config import load_settings
    from twitchwatch.processing.amqp import AmqpError, display_url, setup_broker

    settings = load_settings()
    url = settings.amqp_url_value()
    if url is None:
        print("error: TWITCHWATCH_AMQP_URL is not set (or TWITCHWATCH_AMQP_URL_FILE)", file=sys.stderr)
        return 2
    partitions = settings.amqp_partitions if args.partitions is None else args.partitions  # 0 is refused
    users = _users(args)
    try:
        import asyncio

        report = asyncio.run(setup_broker(url, partitions, users))
    except (AmqpError, OSError) as exc:
        print(f"error: {display_url(url)}: {exc}", file=sys.stderr)
        return 1
    print(f"{display_url(url)}: {partitions} partitions")
    for line in report.lines():
        print(f"  {line}")
    if not users:
        print("  no users bound: every user's messages go to twitchwatch.unassigned (one worker) until bound")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"broker": cmd_broker}
