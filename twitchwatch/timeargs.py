"""Points in time as people type them on the command line: ``now``, a duration ago (``2h``, ``-2h``, ``30d``)
or an ISO 8601 time."""

from __future__ import annotations

import datetime as dt

from twitchwatch.collector.simulate import SimulationError, parse_duration, parse_iso_time


def parse_when(text: str, now: dt.datetime, option: str) -> dt.datetime:
    """``now`` carries the zone a time typed without an offset is read in (the configured one)."""
    if text == "now":
        return now
    try:
        # "2h" and "-2h" both mean two hours ago: these options never point into the future.
        return now - dt.timedelta(seconds=parse_duration(text.removeprefix("-"), option))
    except SimulationError:
        when = parse_iso_time(text, option, "now or a duration like 2h or 30d (ago)")
    wall = dt.datetime.fromisoformat(text)
    return wall.replace(tzinfo=now.tzinfo) if wall.tzinfo is None and now.tzinfo else when
