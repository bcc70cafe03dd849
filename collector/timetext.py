"""Durations and points in time as typed on the command line (``90``, ``15m``, ``-21d``, ISO 8601).

Apart from ``simulate`` (which re-exports them) so that the command line can parse its options without
importing numpy and the signal synthesiser.
"""

from __future__ import annotations

import datetime as dt
import re

from twitchwatch.errors import UserError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SimulationError(UserError, ValueError):
    """A simulation option is invalid; the message names the option."""


def parse_duration(text: str, option: str = "--duration") -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``21d`` → seconds."""
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise SimulationError(f"{option}: {text!r} is not a positive duration like 90, 15m, 6h or 21d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_start(text: str | None, now: dt.datetime) -> dt.datetime:
    """``None`` → now; ``-21d`` → that long before now; else an ISO 8601 time (local if no offset)."""
    if text is None or text == "now":
        return now
    if text.startswith("-"):
        return now - dt.timedelta(seconds=parse_duration(text[1:], "--start"))
    return parse_iso_time(text, "--start", "a relative time like -21d")


def parse_iso_time(text: str, option: str, alternative: str) -> dt.datetime:
    """An ISO 8601 time, local when it has no offset; the error names the option and what else it takes."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SimulationError(f"{option}: {text!r} is neither ISO 8601 nor {alternative}") from None
    return when if when.tzinfo else when.astimezone()
