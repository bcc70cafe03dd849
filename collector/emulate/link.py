"""Radios for emulated wearables: Bumble controllers on an in-process virtual link, or a real HCI transport.

- ``VirtualLink`` owns one ``bumble.link.LocalLink``. Every ``await link.new_device(...)`` makes a Bumble
  ``Controller`` on that link, a ``Host`` and a ``Device`` on top, powers it on and returns the ``Device``:
  peripherals (``collector.emulate``) and centrals (the tests' host stack) on one link see each other's
  advertisements and connect as over the air. Everything stays inside one process and one event loop.
- ``open_hci_device(transport, ...)`` opens a Bumble transport by name — ``usb:0`` (a USB Bluetooth dongle),
  ``serial:/dev/ttyUSB0``, ``tcp-client:127.0.0.1:9001``, ``android-netsim`` … — and returns a powered-on
  ``Device`` driving that controller (``HciDevice``, an async context manager that closes the transport).
- ``RadioHub`` is a virtual radio shared between processes: a ``VirtualLink`` whose controllers are served
  as HCI over TCP on loopback (``tcp-server``). A process that opens ``tcp-client:127.0.0.1:PORT`` drives
  one of those controllers as if it were a dongle, so an emulated wearable in one process and a central
  in another talk over the hub's link. (Bumble's own cross-process link relay was removed upstream.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

from bumble import hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import Transport
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from twitchwatch.errors import TwitchwatchError

__all__ = [
    "HciDevice",
    "LinkError",
    "RadioHub",
    "ServedController",
    "VirtualLink",
    "open_hci_device",
    "random_static_address",
    "serve_hci",
]


class LinkError(TwitchwatchError, RuntimeError):
    """A radio could not be opened; the message names the transport and what to try."""


def random_static_address(seed: int) -> str:
    """A deterministic random static LE address (top two bits set, as the Core spec requires)."""
    octets = [(seed >> (8 * i)) & 0xFF for i in range(6)]
    octets[5] |= 0xC0
    if all(o == 0xFF for o in octets[:5]) or all(o == 0 for o in octets[:5]):
        octets[0] ^= 0x5A  # all-ones / all-zeros random parts are forbidden
    return ":".join(f"{o:02X}" for o in reversed(octets))


def _scan_response_of(link: LocalLink, address: Address) -> bytes | None:
    """The scan response data the controller advertising as ``address`` on ``link`` would send."""
    for controller in link.controllers:
        legacy = controller.le_legacy_advertiser
        if legacy.enabled and legacy.address == address:
            return bytes(legacy.scan_response_data)
        for adv_set in controller.advertising_sets.values():
            own = adv_set.random_address or controller.random_address
            if adv_set.enabled and own == address:
                return bytes(adv_set.scan_response_data)
    return None


class ScanResponseController(Controller):
    """Bumble's virtual controller, except that an active scan's scan response carries the advertiser's scan
    response data (upstream repeats the advertising data there), and none is reported when the advertiser
    has none. Real wearables put part of what a scanner filters on (Polar's PMD service UUID) there."""

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if isinstance(
            packet, hci.HCI_LE_Extended_Advertising_Report_Event | hci.HCI_LE_Advertising_Report_Event
        ):
            packet = self._with_scan_responses(packet)
            if not packet.reports:
                return
        super().send_hci_packet(packet)

    def _with_scan_responses(self, packet: _Report) -> _Report:
        reports: list[Any] = []
        for report in packet.reports:
            if _is_scan_response(report):
                data = _scan_response_of(self.link, report.address)
                if not data:
                    continue
                report = dataclasses.replace(report, data=data)
            reports.append(report)
        return dataclasses.replace(cast(Any, packet), reports=reports)  # type: ignore[no-any-return]


_Report = hci.HCI_LE_Extended_Advertising_Report_Event | hci.HCI_LE_Advertising_Report_Event


def _is_scan_response(report: object) -> bool:
    if isinstance(report, hci.HCI_LE_Extended_Advertising_Report_Event.Report):
        return bool(report.event_type & hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCAN_RESPONSE)
    if isinstance(report, hci.HCI_LE_Advertising_Report_Event.Report):
        return bool(report.event_type == hci.HCI_LE_Advertising_Report_Event.EventType.SCAN_RSP)
    return False


class VirtualLink:
    """One in-process virtual radio. Use as an async context manager, or call ``close()``."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self._devices: list[Device] = []
        self._counter = itertools.count(1)

    def next_address(self) -> str:
        """A fresh random static address on this link (devices made without one get these)."""
        return self.unique_address(random_static_address(0xC0FFEE_000000 + next(self._counter)))

    def unique_address(self, preferred: str) -> str:
        """``preferred`` unless a device on this link has it; then the next free one after it."""
        taken = {str(d.random_address).removesuffix("/P") for d in self._devices}
        candidate, bump = preferred, 0
        while candidate in taken:
            bump += 1
            candidate = random_static_address(int(preferred.replace(":", ""), 16) + bump)
        return candidate

    def serve_controller(self, name: str, transport: Transport) -> Controller:
        """A controller on the link driven over ``transport`` by a host elsewhere (``RadioHub``)."""
        return ScanResponseController(
            name, host_source=transport.source, host_sink=transport.sink, link=self.link
        )

    async def new_device(self, address: str | None = None, name: str = "twitchwatch") -> Device:
        """A powered-on Bumble ``Device`` with its own controller on this link."""
        host = Host()
        host.controller = ScanResponseController(f"{name} controller", link=self.link)
        device = Device(name, address=Address(address or self.next_address()), host=host)
        await device.power_on()
        self._devices.append(device)
        return device

    async def close(self) -> None:
        devices, self._devices = self._devices, []
        for device in devices:
            with contextlib.suppress(Exception):  # a device already torn down by its owner is fine
                await device.power_off()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@dataclass
class HciDevice:
    """A powered-on ``Device`` on a real (or TCP) HCI transport; closing it closes the transport."""

    device: Device
    transport: Transport

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.device.power_off()
        await self.transport.close()

    async def __aenter__(self) -> Device:
        return self.device

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def open_hci_device(transport: str, address: str | None = None, name: str = "twitchwatch") -> HciDevice:
    """Open ``transport`` (a Bumble transport name) and power on a ``Device`` driving its controller.

    ``address`` is the random static address to advertise with; ``None`` keeps a generated one."""
    try:
        opened = await open_transport(transport)
    except Exception as exc:
        raise LinkError(
            f"cannot open Bluetooth transport {transport!r}: {type(exc).__name__}: {exc}. "
            "For a USB dongle use usb:0 (see docs/ble-emulation.md: the dongle must not be claimed by the "
            "kernel's Bluetooth driver), for a radio hub tcp-client:127.0.0.1:PORT"
        ) from exc
    chosen = Address(address or random_static_address(hash(transport) & 0xFFFF_FFFF_FFFF))
    device = Device.with_hci(name, chosen, opened.source, opened.sink)
    try:
        await device.power_on()
    except BaseException:
        await opened.close()
        raise
    return HciDevice(device, opened)


@dataclass
class ServedController:
    """A controller on a ``VirtualLink`` driven over HCI on TCP (``serve_hci``); ``close`` stops serving."""

    link: VirtualLink
    controller: Controller
    transport: Transport
    host: str
    port: int

    @property
    def transport_name(self) -> str:
        """What the host process passes as its Bumble transport."""
        return f"tcp-client:{self.host}:{self.port}"

    async def close(self) -> None:
        # Bumble's TCP server transport closes neither its listening socket nor the accepted connection.
        connection = getattr(self.transport.sink, "transport", None)
        if connection is not None:
            connection.close()
        server = getattr(self.transport, "server", None)
        if server is not None:
            server.close()
            await server.wait_closed()
        await self.transport.close()
        with contextlib.suppress(KeyError):
            self.link.link.remove_controller(self.controller)


async def serve_hci(link: VirtualLink, host: str, port: int) -> ServedController:
    """A new controller on ``link`` driven by whichever host connects to ``host:port`` (HCI over TCP, one
    host at a time); ``port`` 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LinkError(f"cannot listen for an HCI host on {host}:{port}: {exc}") from exc
    bound = int(sock.getsockname()[1])
    transport = await open_tcp_server_transport_with_socket(sock)
    controller = link.serve_controller(f"HCI controller on {host}:{bound}", transport)
    return ServedController(link, controller, transport, host, bound)


@dataclass
class RadioHub:
    """A ``VirtualLink`` whose controllers are all served as HCI over TCP on loopback, one port each.

    ``ports`` are known once ``start()`` returns; each accepts one host process at a time."""

    count: int = 2
    host: str = "127.0.0.1"
    link: VirtualLink = field(default_factory=VirtualLink)
    served: list[ServedController] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.served]

    async def start(self, ports: Sequence[int] = ()) -> list[int]:
        if ports and len(ports) != self.count:
            raise LinkError(f"radio hub: {self.count} controllers need {self.count} ports, got {len(ports)}")
        for index in range(self.count):
            self.served.append(await serve_hci(self.link, self.host, ports[index] if ports else 0))
        return self.ports

    def transport_names(self) -> list[str]:
        """What the processes pass as ``--transport`` (one each)."""
        return [s.transport_name for s in self.served]

    async def close(self) -> None:
        served, self.served = self.served, []
        for s in served:
            await s.close()
        await self.link.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
