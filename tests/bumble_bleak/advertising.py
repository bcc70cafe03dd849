"""Advertising payload (AD structures) → the fields of bleak's ``AdvertisementData``.

Parsed from the raw AD structures so the result does not depend on how a Bumble release types its
parsed objects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from bleak.uuids import normalize_uuid_str

_UUID16_LISTS: Final = (0x02, 0x03, 0x14)
_UUID32_LISTS: Final = (0x04, 0x05, 0x1F)
_UUID128_LISTS: Final = (0x06, 0x07, 0x15)
_SHORT_NAME: Final = 0x08
_COMPLETE_NAME: Final = 0x09
_TX_POWER: Final = 0x0A
_SERVICE_DATA16: Final = 0x16
_SERVICE_DATA128: Final = 0x21
_MANUFACTURER: Final = 0xFF


def uuid_from_le(data: bytes) -> str:
    """Little-endian 2-, 4- or 16-byte UUID → bleak's normalised 128-bit string."""
    if len(data) == 16:
        return str(uuid.UUID(bytes=bytes(reversed(data))))
    return normalize_uuid_str(bytes(reversed(data)).hex())


@dataclass
class ParsedAdvertisement:
    local_name: str | None = None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    service_uuids: list[str] = field(default_factory=list)
    tx_power: int | None = None


def parse(
    structures: list[tuple[int, bytes]], into: ParsedAdvertisement | None = None
) -> ParsedAdvertisement:
    """Merge AD structures into ``into`` (advertising data, then the scan response)."""
    out = into or ParsedAdvertisement()
    for ad_type, data in structures:
        kind = int(ad_type)
        if kind in _UUID16_LISTS:
            _extend(out.service_uuids, [uuid_from_le(data[i : i + 2]) for i in range(0, len(data) - 1, 2)])
        elif kind in _UUID32_LISTS:
            _extend(out.service_uuids, [uuid_from_le(data[i : i + 4]) for i in range(0, len(data) - 3, 4)])
        elif kind in _UUID128_LISTS:
            _extend(out.service_uuids, [uuid_from_le(data[i : i + 16]) for i in range(0, len(data) - 15, 16)])
        elif kind == _COMPLETE_NAME or (kind == _SHORT_NAME and out.local_name is None):
            out.local_name = data.decode("utf-8", "replace")
        elif kind == _TX_POWER and data:
            out.tx_power = int.from_bytes(data[:1], "little", signed=True)
        elif kind == _MANUFACTURER and len(data) >= 2:
            out.manufacturer_data[int.from_bytes(data[:2], "little")] = bytes(data[2:])
        elif kind == _SERVICE_DATA16 and len(data) >= 2:
            out.service_data[uuid_from_le(data[:2])] = bytes(data[2:])
        elif kind == _SERVICE_DATA128 and len(data) >= 16:
            out.service_data[uuid_from_le(data[:16])] = bytes(data[16:])
    return out


def _extend(target: list[str], items: list[str]) -> None:
    target.extend(u for u in items if u not in target)
