"""Time in nanoseconds, as every timestamp of the project is (frames, events, minute rates, the store).

The one definition of each unit; a module that needs one imports it from here. Calendar days and clock
hours in the person's zone are not these fixed spans: ``processing.localtime`` computes those (a local day
is 23 or 25 h long on DST change days).
"""

from __future__ import annotations

from typing import Final

NS_PER_S: Final = 1_000_000_000
MINUTE_NS: Final = 60 * NS_PER_S  # minute rates are per wall-clock minute
HOUR_NS: Final = 60 * MINUTE_NS
DAY_NS: Final = 24 * HOUR_NS  # a fixed 24 h (the archive reads a long history a day of data at a time)
