"""``twitchwatch simulate --ble``: run one emulated wearable until stopped.

Three ways to put it on a radio:

- ``transport`` (``usb:0``, ``serial:/dev/ttyUSB0``, ``tcp-client:HOST:PORT``, …): a real controller — a
  second laptop with a USB dongle becomes the wearable;
- ``serve_hci`` (``HOST:PORT``, port 0 picks one): the device lives on an in-process virtual link that also
  has a controller served as HCI over TCP, so a central in another process on this machine connects with
  the Bumble transport ``tcp-client:HOST:PORT`` — a virtual radio between processes;
- neither: an in-process virtual link only (useful to check that the emulation runs; nothing outside this
  process can reach it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from twitchwatch.collector.emulate import emulate
from twitchwatch.collector.emulate.link import LinkError, ServedController, VirtualLink, serve_hci
from twitchwatch.collector.emulate.motion import Movement
from twitchwatch.collector.emulate.peripheral import SourceFactory
from twitchwatch.collector.emulate.source import EmulationError
from twitchwatch.collector.synth import TruthEvent


@dataclass(frozen=True)
class BleSimulation:
    profile: str
    muscles: tuple[str, ...]
    rate_per_min: float = 10.0
    seed: int = 0
    speed: float = 1.0
    transport: str | None = None
    serve_hci: str | None = None  # HOST:PORT
    address: str | None = None
    name: str | None = None
    compressed: bool = False
    movement: Movement = field(default_factory=Movement)  # the wearer keeps still unless told

    def __post_init__(self) -> None:
        if self.transport and self.serve_hci:
            raise EmulationError("--transport and --serve-hci exclude each other: one radio per wearable")
        if self.serve_hci is not None:
            parse_host_port(self.serve_hci)


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise EmulationError(
            f"--serve-hci: {text!r} is not HOST:PORT (e.g. 127.0.0.1:9101, port 0 picks one)"
        )
    return host, int(port)


async def run_ble_simulation(
    sim: BleSimulation,
    stop: asyncio.Event,
    out: TextIO,
    truth: Callable[[TruthEvent], None] | None = None,
    recording: SourceFactory | None = None,
) -> int:
    """Advertise and serve ``sim.profile`` until ``stop`` is set; one JSON line on ``out`` says where."""
    link: VirtualLink | None = None
    served: ServedController | None = None
    try:
        if sim.transport is None:
            link = VirtualLink()
        if sim.serve_hci is not None:
            assert link is not None
            served = await serve_hci(link, *parse_host_port(sim.serve_hci))
        device = await emulate(
            sim.profile,
            link,
            transport=sim.transport,
            muscles=sim.muscles,
            rate_per_min=sim.rate_per_min,
            seed=sim.seed,
            speed=sim.speed,
            address=sim.address,
            name=sim.name,
            truth=truth,
            recording=recording,
            compressed=sim.compressed,
            movement=sim.movement,
        )
        async with device:
            radio = (
                f"transport {sim.transport}"
                if sim.transport
                else f"virtual radio; centrals connect with {served.transport_name}"
                if served
                else "in-process virtual link only (use --transport usb:0 or --serve-hci to be reachable)"
            )
            ready = {"profile": sim.profile, "name": device.name, "address": device.address, "radio": radio}
            if served:
                ready["central_transport"] = served.transport_name
            out.write(json.dumps(ready) + "\n")
            out.flush()
            await stop.wait()
            sent = device.notifications_sent
        out.write(json.dumps({"stopped": True, "notifications_sent": sent}) + "\n")
        out.flush()
        return 0
    except LinkError as exc:
        raise EmulationError(str(exc)) from None
    finally:
        if served is not None:
            await served.close()
        if link is not None:
            await link.close()
