"""The project's own bleak backend on Bumble's BLE host stack, for tests over a virtual radio.

Bumble runs real link-layer controllers on an in-process ``LocalLink``: advertising, connection set-up,
L2CAP, ATT and GATT are the real protocol code, only the radio is virtual. ``bumble_backend(central)``
binds bleak's backend interfaces to one Bumble ``Device`` that plays the central (the computer's
adapter); code under test receives the classes through bleak's public ``backend=`` parameters::

    backend = bumble_backend(central)
    await BleakScanner.discover(backend=backend.scanner)
    async with BleakClient(ble_device, backend=backend.client) as client: ...

This is test code: it does not pair, and it is no substitute for a real adapter's quirks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bumble.device import Device

from tests.bumble_bleak.client import BumbleClient
from tests.bumble_bleak.scanner import BumbleScanner

__all__ = ["BumbleBackend", "BumbleClient", "BumbleScanner", "bumble_backend"]


@dataclass(frozen=True)
class BumbleBackend:
    scanner: type[BumbleScanner]
    client: type[BumbleClient]


def bumble_backend(central: Device) -> BumbleBackend:
    """Scanner and client classes bound to ``central`` (bleak instantiates backend classes itself)."""
    scanner = type("BumbleScanner", (BumbleScanner,), {"central": central})
    client = type("BumbleClient", (BumbleClient,), {"central": central})
    return BumbleBackend(scanner, client)
