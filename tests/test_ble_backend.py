"""The project's bleak backend on Bumble, exercised only through bleak's public API (and
bleak-retry-connector) against a small Bumble GATT peripheral built here, over a virtual link."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak_retry_connector import establish_connection
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from tests.bumble_bleak import BumbleBackend, bumble_backend
from tests.bumble_bleak.advertising import uuid_from_le
from tests.bumble_bleak.harness import wait_for
from twitchwatch.collector.emulate.link import VirtualLink

SERVICE = "7e570001-0000-4000-8000-00805f9b34fb"
DATA = "7e570002-0000-4000-8000-00805f9b34fb"
COMMAND = "7e570003-0000-4000-8000-00805f9b34fb"
OTHER_SERVICE = "7e57ffff-0000-4000-8000-00805f9b34fb"
BATTERY = "00002a19-0000-1000-8000-00805f9b34fb"


@dataclass
class Peripheral:
    device: Device
    data: Characteristic[bytes]
    commands: asyncio.Queue[bytes]

    @property
    def address(self) -> str:
        return str(self.device.random_address).removesuffix("/P")

    def connection(self) -> Connection:
        return next(iter(self.device.connections.values()))


def _uuid128_le(text: str) -> bytes:
    return bytes(reversed(bytes.fromhex(text.replace("-", ""))))


@contextlib.asynccontextmanager
async def _setup() -> AsyncIterator[tuple[Peripheral, BumbleBackend]]:
    async with VirtualLink() as link:
        central = await link.new_device(name="central")
        device = await link.new_device(name="Test Sensor")
        commands: asyncio.Queue[bytes] = asyncio.Queue()
        data = Characteristic(DATA, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b"")
        command = Characteristic(
            COMMAND,
            Characteristic.Properties.WRITE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=lambda _conn, value: commands.put_nowait(bytes(value))),
        )
        battery = Characteristic(
            BATTERY,
            Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
            Characteristic.READABLE,
            bytes([64]),
        )
        device.add_services([Service(SERVICE, [data, command]), Service("180F", [battery])])
        # 28 of the 31 bytes a legacy advertisement holds: shortened name, service, company id.
        adv = (
            bytes([5, 0x08]) + b"Test"
            + bytes([17, 0x07]) + _uuid128_le(SERVICE)
            + bytes([3, 0xFF]) + struct.pack("<H", 0x0059)
        )  # fmt: skip
        await device.start_advertising(auto_restart=True, advertising_data=adv)
        yield Peripheral(device, data, commands), bumble_backend(central)


async def test_scan_filters_on_service_uuid_and_reports_advertising_data() -> None:
    async with _setup() as (peripheral, backend):
        found = await BleakScanner.find_device_by_filter(
            lambda d, _a: d.address == peripheral.address,
            20,
            service_uuids=[SERVICE],
            backend=backend.scanner,
        )
        assert found is not None
        seen = await BleakScanner.discover(
            2, return_adv=True, service_uuids=[SERVICE], backend=backend.scanner
        )
        device, adv = seen[peripheral.address]
        assert adv.service_uuids == [SERVICE]
        assert adv.local_name == "Test"
        assert adv.manufacturer_data == {0x0059: b""}
        assert adv.rssi < 0
        assert device.name == "Test"
        hidden = await BleakScanner.discover(
            1, return_adv=True, service_uuids=[OTHER_SERVICE], backend=backend.scanner
        )
        assert peripheral.address not in hidden


async def test_connect_discovers_services_reads_writes_and_notifies() -> None:
    async with _setup() as (peripheral, backend):
        device = await BleakScanner.find_device_by_address(peripheral.address, 20, backend=backend.scanner)
        assert device is not None
        async with BleakClient(device, backend=backend.client, timeout=20) as client:
            assert client.is_connected
            assert client.mtu_size == 247  # the ATT MTU exchange ran (Bumble's maximum is larger)
            assert {s.uuid for s in client.services} >= {SERVICE, "0000180f-0000-1000-8000-00805f9b34fb"}
            data_char = client.services.get_characteristic(DATA)
            assert data_char is not None
            assert data_char.properties == ["notify"]
            assert "00002902-0000-1000-8000-00805f9b34fb" in {d.uuid for d in data_char.descriptors}
            assert await client.read_gatt_char(BATTERY) == bytearray([64])

            await client.write_gatt_char(COMMAND, b"\x01\x02", response=True)
            assert await asyncio.wait_for(peripheral.commands.get(), 10) == b"\x01\x02"

            received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

            def on_data(char: BleakGATTCharacteristic, value: bytearray) -> None:
                received.put_nowait((char.uuid, bytes(value)))

            await client.start_notify(DATA, on_data)
            await peripheral.device.notify_subscribers(peripheral.data, b"\xaa" * 200)
            assert await asyncio.wait_for(received.get(), 10) == (DATA, b"\xaa" * 200)
            await client.stop_notify(DATA)
        assert not client.is_connected


async def test_disconnect_callback_fires_when_the_peripheral_drops_the_link() -> None:
    async with _setup() as (peripheral, backend):
        dropped = asyncio.Event()
        device = await BleakScanner.find_device_by_address(peripheral.address, 20, backend=backend.scanner)
        assert device is not None
        client = BleakClient(device, lambda _c: dropped.set(), backend=backend.client, timeout=20)
        await client.connect()
        await peripheral.connection().disconnect()
        await asyncio.wait_for(dropped.wait(), 20)
        assert not client.is_connected


async def test_own_disconnect_does_not_call_the_disconnect_callback() -> None:
    async with _setup() as (peripheral, backend):
        calls: list[object] = []
        device = await BleakScanner.find_device_by_address(peripheral.address, 20, backend=backend.scanner)
        assert device is not None
        client = BleakClient(device, calls.append, backend=backend.client, timeout=20)
        await client.connect()
        await client.disconnect()
        await wait_for(lambda: not peripheral.device.connections, 20, "the peripheral seeing the link end")
        assert calls == []


async def test_connect_by_address_text_scans_for_it() -> None:
    async with (
        _setup() as (peripheral, backend),
        BleakClient(peripheral.address, backend=backend.client, timeout=20) as client,
    ):
        assert client.services.get_service(SERVICE) is not None


async def test_bleak_retry_connector_connects_through_the_backend() -> None:
    async with _setup() as (peripheral, backend):
        device = await BleakScanner.find_device_by_address(peripheral.address, 20, backend=backend.scanner)
        assert device is not None
        client = await establish_connection(
            BleakClient, device, "test sensor", max_attempts=2, backend=backend.client
        )
        try:
            assert client.is_connected
            assert client.services.get_characteristic(COMMAND) is not None
        finally:
            await client.disconnect()


@pytest.mark.parametrize(
    ("le_bytes", "text"),
    [
        (b"\x0d\x18", "0000180d-0000-1000-8000-00805f9b34fb"),
        (_uuid128_le(SERVICE), SERVICE),
    ],
)
def test_uuid_conversion(le_bytes: bytes, text: str) -> None:
    assert uuid_from_le(le_bytes) == text
