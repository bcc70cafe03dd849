"""Shared pieces of the BLE tests: a virtual radio with a central, and event-driven waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tests.bumble_bleak import bumble_backend
from twitchwatch.collector.ble.target import BleBackend, Timing
from twitchwatch.collector.emulate.link import VirtualLink

# Short timeouts and backoff so failures and reconnects happen within a test; still generous for a
# loaded 2-core machine (nothing here asserts on time).
TEST_TIMING = Timing(
    scan_s=5.0, connect_s=15.0, response_s=3.0, backoff_initial_s=0.2, backoff_max_s=1.0, connect_attempts=2
)


@dataclass(frozen=True)
class Radio:
    link: VirtualLink
    backend: BleBackend


@contextlib.asynccontextmanager
async def radio() -> AsyncIterator[Radio]:
    """A virtual link with one Bumble central (the 'computer's adapter') and a bleak backend on it."""
    async with VirtualLink() as link:
        central = await link.new_device(name="twitchwatch-central")
        classes = bumble_backend(central)
        yield Radio(link, BleBackend(scanner=classes.scanner, client=classes.client))


async def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll counters that event handlers advance; fail naming what was awaited after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        if condition():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for: {what}")
        await asyncio.sleep(0.05)
