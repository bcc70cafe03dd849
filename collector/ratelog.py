"""Rate-limited warnings for services that must count bad input, say so, and go on."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict


class RateLimitedLog:
    """At most one line per ``every`` seconds per key, with the number suppressed in between."""

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self.logger = logger
        self.every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = defaultdict(int)

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.WARNING, key, msg, args, exc_info=False)

    def exception(self, key: str, msg: str, *args: object) -> None:
        """An error with the traceback of the exception being handled, under the same limit."""
        self._log(logging.ERROR, key, msg, args, exc_info=True)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...], exc_info: bool) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) < self.every:
            self._suppressed[key] += 1
            return
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        text = msg + (f" ({n} more like this suppressed)" if n else "")
        self.logger.log(level, text, *args, exc_info=exc_info)
