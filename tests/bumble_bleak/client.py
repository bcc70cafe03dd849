"""``BaseBleakClient`` on Bumble's host stack: a Bumble ``Device`` is the central, its GATT client the
transport. Connect does what BlueZ and CoreBluetooth do on their own: the ATT MTU exchange, then full
service discovery (services, characteristics, descriptors) into bleak's service collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Final

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble import hci
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy, ServiceProxy

from tests.bumble_bleak.scanner import ScanHub

log = logging.getLogger(__name__)

# What BlueZ asks for by default; the peripheral answers with its own maximum and the lower one wins.
REQUESTED_MTU: Final = 247

_PROPERTY_NAMES: Final = (
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
)


def bleak_uuid(value: Any) -> str:
    """A Bumble ``UUID`` → bleak's lowercase 128-bit string."""
    return str(uuid.UUID(bytes=bytes(reversed(value.uuid_128_bytes))))


class BumbleClient(BaseBleakClient):
    """Bound to a central by ``bumble_backend``; bleak instantiates it through ``BleakClient(backend=…)``."""

    central: ClassVar[Device]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, **kwargs)
        self._peer_address: hci.Address | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            details = address_or_ble_device.details
            if isinstance(details, dict) and isinstance(details.get("address"), hci.Address):
                self._peer_address = details["address"]
            self._name = address_or_ble_device.name or address_or_ble_device.address
        else:
            self._name = address_or_ble_device
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._closing = False

    # ---- connection ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu_size(self) -> int:
        return int(self._connection.att_mtu) if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        timeout = float(kwargs.get("timeout", self._timeout))
        async with asyncio.timeout(timeout):
            address = self._peer_address or await self._find(self.address)
            try:
                connection = await self.central.connect(address, timeout=None)
            except hci.HCI_Error as exc:
                raise BleakError(f"connecting to {self.address} failed: {exc}") from exc
            self._connection = connection
            self._closing = False
            connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
            try:
                peer = Peer(connection)
                await peer.request_mtu(REQUESTED_MTU)
                self.services = await self._discover(peer)
                self._peer = peer
            except BaseException:
                await self._drop(connection)
                raise

    async def _find(self, address: str) -> hci.Address:
        """Address given as text: scan until it advertises (as bleak's platform backends do)."""
        found: asyncio.Future[hci.Address] = asyncio.get_running_loop().create_future()

        def listener(advertisement: Any) -> None:
            if str(advertisement.address).split("/")[0].upper() == address.upper() and not found.done():
                found.set_result(advertisement.address)

        hub = ScanHub.of(self.central)
        await hub.add(listener, active=True)
        try:
            return await found  # the caller's connect timeout bounds the wait
        finally:
            await hub.remove(listener)

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        services: list[ServiceProxy] = await peer.discover_services()
        for service in services:
            bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            characteristics: list[CharacteristicProxy[Any]] = await peer.discover_characteristics(
                service=service
            )
            for char in characteristics:
                await peer.discover_descriptors(char)
                bleak_char = BleakGATTCharacteristic(
                    char,
                    char.handle,
                    bleak_uuid(char.uuid),
                    [name for flag, name in _PROPERTY_NAMES if char.properties & flag],  # type: ignore[misc]
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                descriptors: list[DescriptorProxy] = char.descriptors
                for desc in descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, bleak_uuid(desc.type), bleak_char)
                    )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        log.debug("%s disconnected (reason 0x%02X)", self.address, reason)
        callback = self._disconnected_callback
        if callback is not None and not self._closing:
            callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is not None:
            self._closing = True
            await self._drop(connection)

    async def _drop(self, connection: Connection) -> None:
        with contextlib.suppress(hci.HCI_Error, asyncio.TimeoutError, AttributeError):
            async with asyncio.timeout(10):
                await connection.disconnect()
        self._connection = None
        self._peer = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the Bumble test backend does not pair")

    async def unpair(self) -> None:
        raise NotImplementedError("the Bumble test backend does not pair")

    # ---- GATT ---------------------------------------------------------------------------------------
    def _require(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"{self.address}: not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require().read_value(characteristic.obj))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require().read_value(descriptor.obj))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        await self._require().write_value(characteristic.obj, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await self._require().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        await self._require().subscribe(characteristic.obj, subscriber, prefer_notify=True)
        self._subscribers[characteristic.handle] = subscriber

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._require().unsubscribe(characteristic.obj, subscriber)
