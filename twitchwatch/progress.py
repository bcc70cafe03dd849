"""Progress of long work: a bar a person can watch on a terminal, and elsewhere (a log file, a service's
journal, a pipe) at most one plain line a minute, so that logs stay readable.

One helper for every long command: ``simulate``, ``replay``, ``detect``, ``record``, ``export`` and ``data
export``/``import``/``copy`` (``Progress`` is also the ``(done, total)`` callback the collector's and
processing's long loops accept)::

    with Progress("export events", total=n, unit="rows") as progress:
        for batch in batches:
            ...
            progress.advance(len(batch))

On a terminal the bar is redrawn in place (``\\r``) a few times a second at most and ends with a newline
when the work is done; ``clear()`` blanks it before other output goes to the same terminal. Off a
terminal nothing is written in the first minute (short work stays silent) and then one line a minute.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TextIO

PLAIN_EVERY_S = 60.0  # off a terminal: at most one line this often
REDRAW_EVERY_S = 0.2  # on a terminal: the bar is redrawn at most this often
_ETA_AFTER_S = 2.0  # a time left estimated from less work than this is noise


def is_terminal(stream: TextIO) -> bool:
    """A person watches: the stream is a terminal that understands ``\\r`` (not TERM=dumb)."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


def format_left(seconds: float) -> str:
    """Time left in words a person reads at a glance: under a minute, minutes, or hours and minutes."""
    if seconds < 60:
        return "under a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


class Progress:
    """Progress of one piece of work towards ``total`` (None: unknown, the count alone is shown).

    ``interactive`` None asks the stream (``is_terminal``); ``clock`` is injectable so that the
    one-line-a-minute rule can be tested without waiting.
    """

    def __init__(
        self,
        label: str,
        total: float | None = None,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        interactive: bool | None = None,
        plain_every_s: float = PLAIN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        self.plain_every_s = plain_every_s
        self._clock = clock
        self._t0 = clock()
        self._last_out = self._t0  # the first plain line comes a whole interval after the start
        self._drawn = False  # a bar is on the terminal's current line
        self._stale = False  # the state changed since the bar was drawn
        self.done = 0.0
        self.detail = ""

    # -- updates ------------------------------------------------------------------------------------

    def update(self, done: float, detail: str | None = None) -> None:
        detail = self.detail if detail is None else detail
        if self._drawn and not self._stale and (done, detail) == (self.done, self.detail):
            return  # nothing new to show
        self.done, self.detail = done, detail
        self._stale = True
        self._maybe_show()

    def advance(self, amount: float = 1, detail: str | None = None) -> None:
        self.update(self.done + amount, detail)

    def __call__(self, done: float, total: float) -> None:
        """The ``(done, total)`` callback shape the collector's and processing's long loops take."""
        if total != self.total:
            self.total, self._stale = total, True
        self.update(done)

    # -- output -------------------------------------------------------------------------------------

    def text(self, width: int | None = None) -> str:
        """The current state in one line; with ``width``, a bar fitted into that many columns."""
        parts = []
        if self.total:
            fraction = min(max(self.done / self.total, 0.0), 1.0)
            parts.append(f"{100 * fraction:3.0f}%")
            count = f"{_number(self.done)} of {_number(self.total)}"
        else:
            fraction = None
            count = _number(self.done)
        parts.append(f"{count} {self.unit}".rstrip())
        if self.detail:
            parts.append(self.detail)
        left = self._left()
        if left:
            parts.append(left)
        tail = " · ".join(parts)
        if width is None or fraction is None:
            return f"{self.label}: {tail}"
        room = width - len(self.label) - len(tail) - 4
        bar_width = min(40, room)
        if bar_width < 10:
            return f"{self.label}: {tail}"[: max(width - 1, 0)]
        filled = round(fraction * bar_width)
        return f"{self.label} [{'#' * filled}{'.' * (bar_width - filled)}] {tail}"

    def _left(self) -> str:
        elapsed = self._clock() - self._t0
        if not self.total or self.done <= 0 or elapsed < _ETA_AFTER_S or self.done >= self.total:
            return ""
        return format_left(elapsed * (self.total - self.done) / self.done)

    def _maybe_show(self) -> None:
        now = self._clock()
        finished = self.total is not None and self.done >= self.total
        if self.interactive:
            if now - self._last_out >= REDRAW_EVERY_S or finished or not self._drawn:
                self._draw()
                self._last_out = now
        elif now - self._last_out >= self.plain_every_s:
            self._write(self.text() + "\n")
            self._last_out = now

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        self._write("\r\033[K" + self.text(width - 1))
        self._drawn, self._stale = True, False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def clear(self) -> None:
        """Blank the bar (before other output to the same terminal); the next update redraws it."""
        if self.interactive and self._drawn:
            self._write("\r\033[K")
            self._drawn = False

    def close(self) -> None:
        """On a terminal, leave the final state on its own line; off one, write nothing more (the command
        says what it did)."""
        if self.interactive:
            if self._stale or not self._drawn:
                self._draw()
            self._write("\n")
            self._drawn = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.clear()


class SignalProgress(Progress):
    """Progress through seconds of signal (simulate, replay, detect, export): shown with how many times
    faster than real time the work goes."""

    def __init__(self, label: str, total: float | None = None, **kwargs: Any) -> None:
        super().__init__(label, total, unit="s of signal", **kwargs)

    def __call__(self, done: float, total: float) -> None:
        elapsed = self._clock() - self._t0
        if elapsed > 0 and done > 0:
            self.detail = f"{done / elapsed:,.0f}× real time"
        super().__call__(done, total)
