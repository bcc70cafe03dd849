"""Recordings laid out as particular devices' software writes them, read by ``formats.csv``.

- **Empatica** (E4's ``ACC.csv``, ``BVP.csv`` …): a first row of one Unix time repeated for each column, a
  second of one rate likewise, then the samples; ``ACC.csv``'s counts are 64 a g (±2 g in 8 bits).
- **PLUX OpenSignals text** (``# OpenSignals Text File Format``): a ``# {…}`` JSON header line keyed by the
  device's MAC with its ``sampling rate``, ``column`` names, the analog channels' ``label``, ``sensor`` and
  ``resolution``, ``date`` and ``time``; then tab-separated ADC counts, which PLUX's transfer functions
  (``collector.recordings.plux``) make µV and g.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from twitchwatch.collector.recordings.csvhead import delimiter_of, in_epoch, split_fields
from twitchwatch.collector.recordings.model import Channel, named
from twitchwatch.collector.recordings.plux import channel_label, conversion

E4_COUNTS_PER_G: Final = 64.0  # Empatica E4's accelerometer: ±2 g in 8 bits


def empatica(head: Sequence[tuple[str, int, int]]) -> tuple[int, float] | None:
    """(start in ns, rate) where a file starts as Empatica's exports do: a row of one Unix time (2000–2100)
    repeated for each column, then a row of one rate likewise; None otherwise."""
    if len(head) < 2:
        return None
    rows = [split_fields(line, delimiter_of(line)) for line, _, _ in head[:2]]
    try:
        (start,), (rate,) = ({Decimal(v) for v in row} for row in rows)
    except (ValueError, InvalidOperation):  # not one value a row
        return None
    if len(rows[0]) != len(rows[1]) or not in_epoch(start) or not 0 < rate <= 100_000:
        return None
    return int(start * 1_000_000_000), float(rate)


def empatica_acc(path: Path, columns: int) -> bool:
    return path.stem.upper() == "ACC" and columns == 3


def empatica_channel(ch: Channel) -> Channel:
    note = f"Empatica's accelerometer: {E4_COUNTS_PER_G:g} counts a g"
    return named(replace(ch, signal="acc", scale=1 / E4_COUNTS_PER_G, note=note))


def empatica_labels(path: Path, columns: int) -> list[tuple[str, str]]:
    """An Empatica export's columns: named by its file (``ACC.csv``: x, y, z; ``BVP.csv``, ``EDA.csv`` …)."""
    if empatica_acc(path, columns):
        return [(f"ACC {axis}", "") for axis in "XYZ"]
    return [(path.stem, "")] * columns


@dataclass(frozen=True)
class OpenSignalsHeader:
    """A PLUX OpenSignals text file's header (its ``# {…}`` JSON line), the first device's."""

    device: str  # its MAC
    model: str  # "biosignalsplux", "bitalino_rev" …
    rate: float
    columns: tuple[str, ...]  # "nSeq", "DI", "CH1" …
    sensors: dict[str, tuple[str, int]]  # analog column → (sensor, bits)
    date: str
    time: str


def opensignals_header(comments: Sequence[str], columns: int) -> OpenSignalsHeader | None:
    """The OpenSignals header among a file's comment lines, if its first device's columns are the file's."""
    for text in comments:
        if not text.startswith("{"):
            continue
        try:
            devices = json.loads(text)
        except ValueError:
            return None
        if not isinstance(devices, dict) or not devices:
            return None
        mac, info = next(iter(devices.items()))
        try:
            names = tuple(str(c) for c in info["column"])
            labels, sensors, bits = info["label"], info["sensor"], info["resolution"]
            rate = float(info["sampling rate"])
            analog = {str(lab): (str(sen), int(b)) for lab, sen, b in zip(labels, sensors, bits, strict=True)}
        except (KeyError, TypeError, ValueError):
            return None
        if len(names) != columns or not rate > 0 or info.get("convertedValues", 0):
            return None  # another device's columns too, or values already converted: read as plain CSV
        model = str(info.get("device", ""))
        return OpenSignalsHeader(
            str(mac), model, rate, names, analog, str(info.get("date", "")), str(info.get("time", ""))
        )
    return None


def plux_channels(channels: list[Channel], plux: OpenSignalsHeader) -> list[Channel]:
    """The analog columns of an OpenSignals text file, in µV or g by PLUX's transfer functions (``plux``);
    its accelerometer channels, three by three in column order, one sensor each."""
    out: list[Channel] = []
    axes = 0
    for ch in channels:
        found = plux.sensors.get(ch.label)
        if found is None or ch.role:
            out.append(ch)
            continue
        how = conversion(*found, plux.model)
        if isinstance(how, str):
            out.append(replace(ch, signal=None, note=how))
            continue
        label = channel_label(how, ch.label, plux.device, axes)
        axes += how.kind == "acc"
        read = Channel(
            ch.index, label, "", ch.rate, how.kind, "", how.scale, note=how.note, offset=how.offset
        )
        out.append(named(read))
    return out
