"""Local calendar days and hours of day in one time zone (``TWITCHWATCH_TIMEZONE``).

Stored times stay UTC nanoseconds; only grouping and display use a zone. A local day is not always
24 h long (23 h and 25 h on DST change days), so day boundaries come from dates and zone-aware
midnights, never from adding multiples of 24 h. Every function takes the ``tzinfo`` explicitly, UTC
by default, so library code stays pure and the caller (CLI, worker, dashboard) passes the configured
zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from twitchwatch.processing.timeunits import HOUR_NS, NS_PER_S

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def local_datetime(ns: int, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // NS_PER_S, tz)


def day_of(ns: int, tz: dt.tzinfo = dt.UTC) -> dt.date:
    """The local calendar date of the instant ``ns``."""
    return local_datetime(ns, tz).date()


def to_ns(when: dt.datetime) -> int:
    # Integer arithmetic: float seconds would lose the nanoseconds.
    return (when - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def day_start_ns(day: dt.date, tz: dt.tzinfo = dt.UTC) -> int:
    """The first instant of local ``day``. Where midnight falls in a DST gap, wall time 00:00 is read
    with the offset before the change (zoneinfo's fold=0), which is the instant the day began."""
    return to_ns(dt.datetime.combine(day, dt.time(), tzinfo=tz))


def day_end_ns(day: dt.date, tz: dt.tzinfo = dt.UTC) -> int:
    """The first instant after local ``day`` (23, 24 or 25 h after its start)."""
    return day_start_ns(day + dt.timedelta(days=1), tz)


def hour_start_ns(ns: int, tz: dt.tzinfo = dt.UTC) -> int:
    """The instant the local clock hour holding ``ns`` began (differs from the UTC hour in zones with
    a half-hour offset such as Asia/Kolkata)."""
    local = local_datetime(ns, tz)
    return ns - ns % NS_PER_S - (local.minute * 60 + local.second) * NS_PER_S


def hour_offset_ns(tz: dt.tzinfo, at_ns: int) -> int:
    """Where the zone's clock hours start within each UTC hour at ``at_ns``: 0 for whole-hour offsets,
    30 min for Asia/Kolkata (+5:30) and America/St_Johns (−3:30), 45 min for Asia/Kathmandu. Hourly
    counts grouped on this grid are the zone's local clock hours."""
    offset = local_datetime(at_ns, tz).utcoffset() or dt.timedelta()
    return to_ns(_EPOCH + offset) % HOUR_NS


def hour_of_day(ns: int, tz: dt.tzinfo = dt.UTC) -> int:
    """The local hour of day, 0-23."""
    return local_datetime(ns, tz).hour


def zone_name(tz: dt.tzinfo) -> str:
    """The zone's IANA name where it has one (``America/New_York``), else its fixed name (``UTC``,
    ``UTC+05:30``): for labels that cover a whole period, across DST changes."""
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz.key
    return tz.tzname(None) or "UTC"


def format_clock(ns: int, tz: dt.tzinfo = dt.UTC, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Local wall time with the zone's abbreviation or offset at that instant (EST, EDT, +0530)."""
    when = local_datetime(ns, tz)
    return f"{when.strftime(fmt)} {when.tzname() or zone_name(tz)}"
