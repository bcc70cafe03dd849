"""``BaseBleakScanner`` on a Bumble ``Device`` acting as the central.

One Bumble device scans for every bleak scanner bound to it: the hub starts the radio's scan with the
first scanner and stops it with the last, as BlueZ shares one discovery between its clients.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bumble.device import Advertisement, Device

from tests.bumble_bleak.advertising import ParsedAdvertisement, parse

log = logging.getLogger(__name__)

Listener = Callable[[Advertisement], None]


class ScanHub:
    """The scan of one Bumble device, shared by the scanners bound to it."""

    _hubs: ClassVar[weakref.WeakKeyDictionary[Device, ScanHub]] = weakref.WeakKeyDictionary()

    def __init__(self, device: Device) -> None:
        self.device = device
        self.listeners: set[Listener] = set()
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)

    @classmethod
    def of(cls, device: Device) -> ScanHub:
        hub = cls._hubs.get(device)
        if hub is None:
            hub = cls._hubs[device] = cls(device)
        return hub

    async def add(self, listener: Listener, active: bool) -> None:
        first = not self.listeners
        self.listeners.add(listener)
        if first:
            await self.device.start_scanning(active=active, filter_duplicates=False)

    async def remove(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and self.device.is_scanning:
            await self.device.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self.listeners):
            listener(advertisement)


class BumbleScanner(BaseBleakScanner):
    """Bound to a central by ``bumble_backend``; bleak instantiates it through ``BleakScanner(backend=…)``."""

    central: ClassVar[Device]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._merged: dict[str, ParsedAdvertisement] = {}
        self._running = False

    async def start(self) -> None:
        self.seen_devices = {}
        self._merged = {}
        await ScanHub.of(self.central).add(self._on_advertisement, self._active)
        self._running = True

    async def stop(self) -> None:
        if self._running:
            self._running = False
            await ScanHub.of(self.central).remove(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        address = str(advertisement.address).split("/")[0]
        structures = [(int(t), bytes(d)) for t, d in advertisement.data.ad_structures]
        # An advertising PDU and its scan response arrive separately; a host merges them per device.
        if not advertisement.is_scan_response:
            self._merged[address] = parse(structures)
        merged = parse(structures, self._merged.setdefault(address, ParsedAdvertisement()))
        if not self.is_allowed_uuid(merged.service_uuids):
            return
        data = AdvertisementData(
            local_name=merged.local_name,
            manufacturer_data=dict(merged.manufacturer_data),
            service_data=dict(merged.service_data),
            service_uuids=list(merged.service_uuids),
            tx_power=merged.tx_power,
            rssi=int(advertisement.rssi),
            platform_data=(advertisement,),
        )
        # details: no BlueZ "path", so bleak-retry-connector skips its D-Bus bookkeeping for this device.
        details = {"source": "bumble", "address": advertisement.address}
        device = self.create_or_update_device(address, address, merged.local_name, details, data)
        self.call_detection_callbacks(device, data)
