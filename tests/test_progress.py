"""The progress helper: a bar on a real terminal (a pseudo-terminal), one plain line a minute elsewhere."""

from __future__ import annotations

import io
import os
import select
from collections.abc import Iterator

import pytest

from twitchwatch.progress import Progress, format_left, is_terminal


class Clock:
    """Time the test moves by hand: the rule under test is about minutes, nobody waits for them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A real pseudo-terminal: the helper writes to its slave side, the test reads the master side."""
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 - closed below
    try:
        yield stream, master
    finally:
        stream.close()
        os.close(master)


def _read(master: int) -> str:
    out = b""
    while select.select([master], [], [], 0.2)[0]:
        chunk = os.read(master, 65536)
        if not chunk:
            break
        out += chunk
    return out.decode()


def test_plain_output_is_at_most_one_line_a_minute() -> None:
    out, clock = io.StringIO(), Clock()
    assert not is_terminal(out)
    progress = Progress("export events", total=1000, unit="rows", stream=out, clock=clock)
    for step in range(100):  # 100 updates over 150 s
        clock.now += 1.5
        progress.advance(10)
        if step == 20:
            assert out.getvalue() == ""  # the first minute stays silent: short work writes nothing
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # at 60 s and at 120 s: never more than one line in any minute
    assert lines[0].startswith("export events:  40% · 400 of 1,000 rows · about 2 min left")
    assert "\r" not in out.getvalue()
    assert "\033" not in out.getvalue()


def test_plain_lines_without_a_total_show_the_count() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("copy", stream=out, unit="events", clock=clock, plain_every_s=60)
    clock.now += 61
    progress.update(12_345, detail="calf_left")
    assert out.getvalue() == "copy: 12,345 events · calf_left\n"


def test_the_bar_is_redrawn_in_place_on_a_terminal(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, master = terminal
    clock = Clock()
    progress = Progress("import", total=200, unit="rows", stream=stream, clock=clock)
    assert progress.interactive
    progress.advance(50)
    clock.now += 0.05
    progress.advance(50)  # too soon after the last draw: not redrawn
    clock.now += 1.0
    progress.advance(50)
    clock.now += 0.01
    progress.advance(50)  # finished: drawn at once
    progress.close()
    shown = _read(master)
    frames = [f for f in shown.replace("\r\n", "\n").split("\r\x1b[K") if f]
    assert len(frames) == 3  # 50, 150 and 200; the update at 100 was folded into the next
    assert frames[0].startswith("import [#")
    assert "25% · 50 of 200 rows" in frames[0]
    assert "75% · 150 of 200 rows" in frames[1]
    assert frames[2].rstrip("\n").endswith("100% · 200 of 200 rows")
    assert shown.endswith("\n")  # the finished bar keeps its line


def test_clear_blanks_the_bar_before_other_output(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, master = terminal
    progress = Progress("detect", total=10, stream=stream, clock=Clock())
    progress.advance(3)
    progress.clear()
    stream.write("an event\n")
    stream.flush()
    shown = _read(master)
    assert shown.endswith("\r\x1b[Kan event\r\n")


def test_callback_shape_sets_the_total() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("simulate", stream=out, clock=clock)
    clock.now += 120
    progress(30.0, 120.0)
    assert out.getvalue().startswith("simulate:  25% · 30 of 120 · ")


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(5, "under a minute left"), (150, "about 2 min left"), (3 * 3600 + 7 * 60, "about 3 h 07 min left")],
)
def test_time_left_in_words(seconds: float, words: str) -> None:
    assert format_left(seconds) == words


def test_an_error_clears_the_bar_instead_of_finishing_it(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, master = terminal
    progress = Progress("x", total=4, stream=stream, clock=Clock())
    progress.advance(1)
    progress.__exit__(RuntimeError, RuntimeError("boom"), None)
    assert _read(master).endswith("\r\x1b[K")
