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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

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


# OpenSignals' digital columns: biosignalsplux's ``DI``, BITalino's inputs and outputs.
_DIGITAL_IO = frozenset({"DI", "I1", "I2", "O1", "O2"})


@dataclass(frozen=True)
class OpenSignalsHeader:
    """A PLUX OpenSignals text file's header (its ``# {…}`` JSON line): the columns of every device in it,
    in order, and what each analog column is."""

    rate: float
    columns: tuple[str, ...]  # "nSeq", "DI", "CH1" …; a second device's analog columns carry its MAC
    sensors: dict[str, tuple[str, int]]  # analog column → (sensor, bits)
    devices: dict[str, tuple[str, str]]  # analog column → (its device's MAC, model: "biosignalsplux" …)
    date: str
    time: str


def opensignals_header(comments: Sequence[str], columns: int) -> OpenSignalsHeader | None:
    """The OpenSignals header among a file's comment lines, if its devices' columns are the file's.

    One device, or several recorded together (OpenSignals writes their columns side by side, in the
    header's order, at one rate): a later device's analog columns are named with its MAC (``CH1
    00:07:80:D8:AB:46``), as their names repeat. ``resolution`` is per analog channel on biosignalsplux
    and per column on BITalino (``nSeq``, the digital I/O, then the analog ones)."""
    for text in comments:
        if not text.startswith("{"):
            continue
        try:
            devices = json.loads(text)
        except ValueError:
            return None
        if not isinstance(devices, dict) or not devices:
            return None
        try:
            parts = [
                _device_columns(str(mac), info, first=n == 0) for n, (mac, info) in enumerate(devices.items())
            ]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        rates = {part[0] for part in parts}
        names = tuple(name for part in parts for name in part[1])
        if len(names) != columns or len(rates) != 1 or any(part[4] for part in parts):
            return None  # not these columns, devices at several rates, or values already converted
        first = next(iter(devices.values()))
        sensors = {k: v for part in parts for k, v in part[2].items()}
        owners = {k: v for part in parts for k, v in part[3].items()}
        return OpenSignalsHeader(
            rates.pop(), names, sensors, owners, str(first.get("date", "")), str(first.get("time", ""))
        )
    return None


def _device_columns(
    mac: str, info: Mapping[str, Any], first: bool
) -> tuple[float, list[str], dict[str, tuple[str, int]], dict[str, tuple[str, str]], bool]:
    """One device's rate, column names (qualified unless it is the first), its analog columns' sensors and
    owners, and whether its values are converted already."""
    names = [str(c) for c in info["column"]]
    labels = [str(lab) for lab in info["label"]]
    sensors = [str(sen) for sen in info["sensor"]]
    bits = [int(b) for b in info["resolution"]]
    if len(bits) == len(names) != len(labels):  # BITalino: one resolution per column
        by_column = dict(zip(names, bits, strict=True))
        bits = [by_column[lab] for lab in labels]
    rate = float(info["sampling rate"])
    if not rate > 0:
        raise ValueError("sampling rate")
    qualify = (lambda n: n) if first else (lambda n: f"{n} {mac}")
    model = str(info.get("device", ""))
    analog = {qualify(lab): (sen, b) for lab, sen, b in zip(labels, sensors, bits, strict=True)}
    columns = [qualify(n) if n in labels else n for n in names]
    return rate, columns, analog, dict.fromkeys(analog, (mac, model)), bool(info.get("convertedValues", 0))


def plux_channels(channels: list[Channel], plux: OpenSignalsHeader) -> list[Channel]:
    """The analog columns of an OpenSignals text file, in µV or g by PLUX's transfer functions (``plux``);
    each device's accelerometer channels, three by three in column order, one sensor each."""
    out: list[Channel] = []
    axes: dict[str, int] = {}  # per device
    for ch in channels:
        found = plux.sensors.get(ch.label)
        if found is None and not ch.role and ch.label in _DIGITAL_IO:
            out.append(replace(ch, signal=None, note="the device's digital input or output", role="label"))
            continue
        if found is None or ch.role:
            out.append(ch)
            continue
        mac, model = plux.devices[ch.label]
        how = conversion(*found, model)
        if isinstance(how, str):
            out.append(replace(ch, signal=None, note=how))
            continue
        label = channel_label(how, ch.label, mac, axes.get(mac, 0))
        axes[mac] = axes.get(mac, 0) + (how.kind == "acc")
        read = Channel(
            ch.index, label, "", ch.rate, how.kind, "", how.scale, note=how.note, offset=how.offset
        )
        out.append(named(read))
    return out
