"""PLUX's transfer functions (biosignalsplux, its hubs, BITalino): a channel's ADC counts in µV or g.

From PLUX's sensor data sheets, n the channel's resolution in bits:

- **EMG**: µV = (ADC / 2ⁿ − ½) · VCC / G · 10⁶, with VCC 3 V and gain 1000 (biosignalsplux and its hubs),
  3.3 V and 1009 (BITalino);
- **accelerometer** (``XYZ``, ``ACC``, ``cACC``): g = 2 (ADC · 2^(16−n) − Cmin) / (Cmax − Cmin) − 1 with
  PLUX's default calibration, Cmin 28000 and Cmax 38000 (a few per cent off without the device's own values).
  BITalino's accelerometer has no published default calibration: it is not read.

Any other sensor (force platform, ECG, EDA …) is not read either. Both OpenSignals formats use these: the HDF5
files (``formats.opensignals``) and the text files (``formats.csv``, from their JSON header line).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

from twitchwatch.collector.signals import TwitchSignal

PLUX_EMG: Final = (3.0, 1000.0)  # (VCC in volts, EMG sensor gain): biosignalsplux and its hubs ("channeller")
BITALINO_EMG: Final = (3.3, 1009.0)
ACC_SENSORS: Final = frozenset({"XYZ", "ACC", "CACC"})
ACC_CMIN, ACC_CMAX = 28000.0, 38000.0  # PLUX's default accelerometer calibration, at 16 bits
_DATE: Final = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")  # "2017-1-23"
_TIME: Final = re.compile(r"^(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?$")  # "10:28:51.69"


@dataclass(frozen=True)
class Conversion:
    """A channel read: its kind, value = counts × scale + offset, and a note saying how."""

    kind: TwitchSignal
    scale: float
    offset: float
    note: str


def emg_transfer(bits: int, bitalino: bool = False) -> tuple[float, float]:
    """(µV per count, µV at count 0) of PLUX's EMG transfer function."""
    vcc, gain = BITALINO_EMG if bitalino else PLUX_EMG
    full = vcc / gain * 1e6  # µV across the ADC's range
    return full / 2**bits, -full / 2


def acc_transfer(bits: int) -> tuple[float, float]:
    """(g per count, g at count 0) of PLUX's accelerometer with its default calibration."""
    span = ACC_CMAX - ACC_CMIN
    return 2 * 2 ** (16 - bits) / span, -2 * ACC_CMIN / span - 1


def conversion(sensor: str, bits: int, device: str) -> Conversion | str:
    """How a channel of ``sensor`` (OpenSignals' name) at ``bits`` on ``device`` becomes units, or why it
    is not read."""
    bitalino = device.lower().startswith("bitalino")
    kind = sensor.strip().upper()
    if kind == "EMG":
        vcc, gain = BITALINO_EMG if bitalino else PLUX_EMG
        note = f"ADC counts → µV by PLUX's EMG transfer function ({vcc:g} V, gain {gain:g}, {bits}-bit)"
        return Conversion("emg", *emg_transfer(bits, bitalino), note)
    if kind in ACC_SENSORS and not bitalino:
        note = f"ADC counts → g by PLUX's default accelerometer calibration ({bits}-bit)"
        return Conversion("acc", *acc_transfer(bits), note)
    if kind in ACC_SENSORS:
        return "a BITalino accelerometer has no default calibration"
    return f"sensor {sensor or '?'!r} is neither EMG nor an accelerometer"


def channel_label(how: Conversion, label: str, device: str, axes: int) -> str:
    """What a channel read by ``how`` is called, in either OpenSignals format: ``EMG <its label>``, or for
    a device's ``axes``-th accelerometer channel ``ACC <device> X`` (three to a sensor, X, Y, Z in channel
    order; ``ACC <device> 2 X`` … for a second sensor)."""
    if how.kind == "emg":
        return f"EMG {label}"
    sensor = f"ACC {device}" + (f" {axes // 3 + 1}" if axes >= 3 else "")
    return f"{sensor} {'XYZ'[axes % 3]}"


def start_ns(date: str, time: str, notes: list[str]) -> int | None:
    """When a device started, from OpenSignals' ``date`` and ``time``: the recording computer's local time,
    read as this computer's (as EDF's start is). None, with a note where they are no date."""
    d, t = _DATE.match(date.strip()), _TIME.match(time.strip())
    if d is None or t is None:
        return None
    year, month, day = (int(g) for g in d.groups())
    hour, minute, second = (int(g) for g in t.groups()[:3])
    micro = int((t.group(4) or "").ljust(6, "0"))
    try:
        when = dt.datetime(year, month, day, hour, minute, second, micro).astimezone()
    except ValueError:
        notes.append(f"its start ({date} {time}) is no date: times from the file's start")
        return None
    return round(when.timestamp() * 1e6) * 1000
