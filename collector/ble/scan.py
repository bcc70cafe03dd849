"""Finding supported wearables in advertisements: ``twitchwatch devices scan`` and the collector's search."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from twitchwatch.collector.ble.target import BleBackend, DeviceTarget
from twitchwatch.collector.devices import DeviceProfile, profiles


@dataclass(frozen=True)
class Nearby:
    """A supported device seen while scanning."""

    address: str
    name: str | None
    profiles: tuple[str, ...]  # more than one when the advertisement cannot tell them apart
    rssi: int

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "name": self.name,
            "profiles": list(self.profiles),
            "rssi": self.rssi,
        }


def matching_profiles(
    adv: AdvertisementData, candidates: Mapping[str, type[DeviceProfile]] | None = None
) -> tuple[str, ...]:
    """Names of the profiles whose scan match accepts this advertisement, sorted."""
    pool = profiles() if candidates is None else candidates
    ids = list(adv.manufacturer_data)
    return tuple(
        sorted(
            name
            for name, profile in pool.items()
            if profile.scan_match().matches(adv.service_uuids, ids, adv.local_name)
        )
    )


def service_filter(candidates: Iterable[type[DeviceProfile]]) -> list[str] | None:
    """Service UUIDs to let the OS filter on, or None when some profile is recognised without one (then a
    filter would hide its devices and matching happens here instead)."""
    services: list[str] = []
    for profile in candidates:
        match = profile.scan_match()
        if not match.services:
            return None
        services.extend(u for u in match.services if u not in services)
    return services


async def scan_nearby(seconds: float, backend: BleBackend | None = None) -> list[Nearby]:
    """Scan for ``seconds``; supported devices, strongest signal first."""
    pool = profiles()
    found = await BleakScanner.discover(
        seconds, return_adv=True, **_scanner_args(service_filter(pool.values()), backend or BleBackend())
    )
    out = []
    for device, adv in found.values():
        names = matching_profiles(adv, pool)
        if names:
            out.append(Nearby(device.address, adv.local_name or device.name, names, adv.rssi))
    return sorted(out, key=lambda n: (-n.rssi, n.address))


def target_filter(target: DeviceTarget) -> tuple[list[str] | None, Any]:
    """(service filter, predicate) that pick ``target`` out of advertisements."""
    profile = type(target.profile)
    if target.address is not None:
        wanted = target.address.upper()
        # By address the device is known; a service filter would only hide models that advertise none.
        return None, lambda d, _a: d.address.upper() == wanted

    def accepts(_device: BLEDevice, adv: AdvertisementData) -> bool:
        if target.advertised_name is not None and adv.local_name != target.advertised_name:
            return False
        return profile.NAME in matching_profiles(adv, {profile.NAME: profile})

    return service_filter([profile]), accepts


async def find(target: DeviceTarget, seconds: float, backend: BleBackend) -> BLEDevice | None:
    services, accepts = target_filter(target)
    return await BleakScanner.find_device_by_filter(accepts, seconds, **_scanner_args(services, backend))


def _scanner_args(services: list[str] | None, backend: BleBackend) -> dict[str, Any]:
    """``BleakScanner`` keyword arguments; absent ones keep bleak's defaults (no filter, platform backend)."""
    args: dict[str, Any] = {}
    if services is not None:
        args["service_uuids"] = services
    if backend.scanner is not None:
        args["backend"] = backend.scanner
    return args


def render_nearby(found: Sequence[Nearby], as_json: bool) -> str:
    """``twitchwatch devices scan`` output: a table, or one JSON object per line."""
    if as_json:
        return "\n".join(json.dumps(n.to_json()) for n in found)
    if not found:
        return "no supported devices found (switched on, near, and not connected to a phone?)"
    rows = [("ADDRESS", "RSSI", "PROFILE", "NAME")]
    rows += [(n.address, f"{n.rssi} dBm", "|".join(n.profiles), n.name or "") for n in found]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows
    )
