"""``twitchwatch devices scan`` and the collector's search: matching advertisements to profiles."""

from __future__ import annotations

import json

import pytest
from bleak.backends.scanner import AdvertisementData

from tests.bumble_bleak.harness import radio
from twitchwatch.collector.ble.scan import (
    Nearby,
    find,
    matching_profiles,
    render_nearby,
    scan_nearby,
    service_filter,
)
from twitchwatch.collector.ble.target import DeviceTarget
from twitchwatch.collector.devices import get_profile, profiles
from twitchwatch.collector.devices.polar import HEART_RATE_SERVICE, POLAR_COMPANY_ID
from twitchwatch.collector.emulate import emulate


def _adv(name: str | None, services: list[str], companies: tuple[int, ...] = ()) -> AdvertisementData:
    return AdvertisementData(name, dict.fromkeys(companies, b""), {}, services, None, -60, ())


@pytest.mark.parametrize(
    ("adv", "expected"),
    [
        (_adv("Polar H10 1A2B3C4D", [HEART_RATE_SERVICE], (POLAR_COMPANY_ID,)), ("polar-h10",)),
        (_adv("Polar Sense 0F0E0D0C", [], (POLAR_COMPANY_ID,)), ("polar-verity",)),
        (_adv(None, [HEART_RATE_SERVICE]), ("polar-h10", "polar-verity")),  # cannot tell them apart
        (_adv("TICKR 1234", [HEART_RATE_SERVICE]), ()),  # another maker's heart-rate strap
        (_adv("board", [get_profile("open").SERVICE]), ("open",)),
        (_adv("Thingy", ["ef680100-9b35-4933-9b10-52ffa9740042"]), ("thingy52",)),
        (_adv("Headphones", []), ()),
    ],
)
def test_advertisements_map_to_profiles(adv: AdvertisementData, expected: tuple[str, ...]) -> None:
    assert matching_profiles(adv) == expected


def test_every_profile_can_be_scanned_for_by_service() -> None:
    services = service_filter(profiles().values())
    assert services is not None
    for profile in profiles().values():
        assert profile.SERVICE.lower() in services or profile.scan_match().services


async def test_devices_scan_lists_the_emulated_devices_with_rssi() -> None:
    async with (
        radio() as r,
        await emulate("polar-h10", r.link, seed=11) as h10,
        await emulate("polar-verity", r.link, seed=12) as verity,
        await emulate("open", r.link, seed=13) as board,
        await emulate("myo", r.link, seed=14) as myo,
    ):
        found = await scan_nearby(3.0, r.backend)
    by_address = {n.address: n for n in found}
    # The central itself does not advertise.
    assert set(by_address) == {h10.address, verity.address, board.address, myo.address}
    assert by_address[board.address].profiles == ("open",)
    assert by_address[myo.address].profiles == ("myo",)
    assert by_address[h10.address].profiles == ("polar-h10",)
    assert by_address[h10.address].name == h10.name
    assert by_address[verity.address].profiles == ("polar-verity",)
    for n in found:
        assert -127 < n.rssi < 0
    table = render_nearby(found, as_json=False).splitlines()
    assert table[0].split() == ["ADDRESS", "RSSI", "PROFILE", "NAME"]
    row = next(line for line in table if line.startswith(h10.address))
    assert f"{by_address[h10.address].rssi} dBm" in row
    assert "polar-h10" in row
    assert row.endswith(h10.name)
    rows = [json.loads(line) for line in render_nearby(found, as_json=True).splitlines()]
    assert {r["address"] for r in rows} == set(by_address)
    assert all(isinstance(r["rssi"], int) for r in rows)


def test_an_empty_scan_says_what_to_check() -> None:
    assert "switched on" in render_nearby([], as_json=False)
    assert render_nearby([], as_json=True) == ""
    assert Nearby("AA:BB:CC:DD:EE:FF", None, ("open",), -40).to_json()["name"] is None


async def test_a_device_is_found_by_its_advertised_name() -> None:
    async with (
        radio() as r,
        await emulate("polar-h10", r.link, seed=21) as first,
        await emulate("polar-h10", r.link, seed=22, name="Polar H10 CAFE0001") as second,
    ):
        target = DeviceTarget("h10", get_profile("polar-h10")(), ("acc",), advertised_name=second.name)
        device = await find(target, 5.0, r.backend)
        assert device is not None
        assert device.address == second.address != first.address
