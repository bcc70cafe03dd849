"""Ctrl-C: the first asks for a clean shutdown (which may wait for a broker or a store); a second
stops at once."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from twitchwatch.cli import run_until_signal


def test_a_first_interrupt_lets_the_shutdown_finish() -> None:
    async def work(stop: asyncio.Event) -> str:
        os.kill(os.getpid(), signal.SIGINT)
        await stop.wait()
        await asyncio.sleep(0.01)  # a shutdown step
        return "clean"

    assert run_until_signal(work) == "clean"


def test_a_second_interrupt_stops_a_waiting_shutdown_at_once(caplog: pytest.LogCaptureFixture) -> None:
    stages: list[str] = []

    async def work(stop: asyncio.Event) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        await stop.wait()
        stages.append("stopping")
        os.kill(os.getpid(), signal.SIGINT)  # the user does not want to wait
        try:
            await asyncio.sleep(3600)  # a drain that would wait for a broker that is not coming back
        except asyncio.CancelledError:
            stages.append("cut short")
            raise
        return "drained"

    with pytest.raises(KeyboardInterrupt):
        run_until_signal(work)
    assert stages == ["stopping", "cut short"]
    assert any("interrupted again" in r.getMessage() for r in caplog.records)
