"""Readers for the recording formats of ``../shared/data/realworld``, found by what a file *is*, not by name.

Every file under a folder is offered to each registered format (``FORMATS``); the first whose ``sniff``
accepts it reads it into :class:`Stream` s in physical units. So another recording of a known kind dropped
into any folder is read too; a file no format claims (licences, READMEs, the PLUX ``*_info.json``) is
skipped. Each reader raises :class:`FormatError` naming the file and the line or field when a file claims
a format but breaks it.

Formats and conversions (``realworld/README.md`` states the units):

- **PLUX OpenSignals HDF5** (``.h5``): one group per device (its MAC), attributes ``sampling rate``,
  ``channels`` and ``resolution`` (bits per channel, in the order of ``channels``); datasets
  ``raw/channel_N`` with attribute ``sensor``. ``EMG``: mV = (raw / 2^bits − ½) × 3.0 (PLUX's EMG transfer
  function, 3-V supply, gain 1000), stored in µV. ``XYZ`` and ``cACC`` (PLUX's accelerometers): g =
  2 × (2^(16−bits) × raw − 28000) / 10000 − 1 (PLUX's default calibration, Cmin 28000, Cmax 38000; a few
  per cent off without the device's own calibration values), three channels per accelerometer in channel
  order. Any other sensor (``FORCEPLATFORM`` …) is skipped with a note. The ``*_info.json`` beside a file
  is only used when a channel lacks its ``sensor`` attribute.
- **Mobilise-D CSV**: header ``samples, acc_x, acc_y, acc_z, gyr_x, gyr_y, gyr_z``; 100 Hz (the Mobilise-D
  lower-back data standard; the file carries no rate), acceleration in g, angular rate in °/s; one device
  with an accelerometer and a gyroscope.
- **Daphnet (aeon) CSV**: header ``timestamp, <sensor>_<axis> …, is_anomaly``; timestamps give the rate;
  milli-g → g. Columns sharing the part of their name before the first ``_`` are one 3-axis accelerometer,
  each worn on its own body segment: each is its own device (Daphnet's ankle, thigh and trunk sensors).
- **GENEActiv CSV**: a header block starting ``Device Type,GENEActiv`` whose ``Measurement Frequency``
  gives the rate, then rows ``time, x, y, z, lux, button, temperature``, acceleration in g.
- A gyroscope column set (``gyr_*``, ``gyro_*``) in any of the CSV formats becomes a gyroscope stream of the
  same device.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from bench.scoring import Span
from twitchwatch.collector.signals import KINDS, STREAM_KINDS, StreamKind
from twitchwatch.errors import UserError

FloatArray = npt.NDArray[np.float64]

UNITS: dict[StreamKind, str] = {kind: KINDS[kind].unit.symbol for kind in STREAM_KINDS}
PLUX_EMG_SPAN_MV = 3.0  # full ADC range at the electrodes: 3-V supply over a gain of 1000, in mV
PLUX_ACC_CMIN, PLUX_ACC_CMAX = 28000.0, 38000.0
PLUX_ACC_SENSORS = frozenset({"XYZ", "CACC", "ACC"})
MOBILISED_RATE = 100.0


class FormatError(UserError, ValueError):
    """A file claims a format but breaks it; the message names the file and the line, group or field."""


@dataclass(frozen=True)
class Stream:
    """One sensor of one device: an EMG channel set, a 3-axis accelerometer or gyroscope, an orientation.

    ``x`` is samples × channels in µV, g, °/s or unit quaternions (w, x, y, z). ``active``/``rest`` are the
    detector-independent segmentation (``bench.data.segment``), filled in after reading."""

    label: str
    kind: StreamKind
    rate: float
    x: FloatArray = field(repr=False)
    device: str
    active: tuple[Span, ...] = ()
    rest: tuple[Span, ...] = ()

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    @property
    def lanes(self) -> int:
        """Detector lanes: one per EMG channel, one per accelerometer/gyroscope (its axes together)."""
        return int(self.x.shape[1]) if self.kind == "emg" else 1

    @property
    def duration_s(self) -> float:
        return float(self.x.shape[0] / self.rate)


@dataclass(frozen=True)
class Loaded:
    """What a reader found in one file."""

    format: str
    streams: tuple[Stream, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Format:
    name: str
    sniff: Callable[[Path], bool]  # cheap: does the file look like this format?
    read: Callable[[Path], Loaded]


FORMATS: list[Format] = []


def register(name: str, sniff: Callable[[Path], bool]) -> Callable[[Callable[[Path], Loaded]], Format]:
    def wrap(read: Callable[[Path], Loaded]) -> Format:
        fmt = Format(name, sniff, read)
        FORMATS.append(fmt)
        return fmt

    return wrap


def read_any(path: Path) -> Loaded | None:
    """The first registered format that claims ``path``, read; None when no format does."""
    for fmt in FORMATS:
        if fmt.sniff(path):
            return fmt.read(path)
    return None


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            return f.readline().strip().lstrip("\ufeff")
    except OSError:
        return ""


def _header(path: Path) -> list[str]:
    return [c.strip().lower() for c in _first_line(path).split(",")]


# --- PLUX OpenSignals HDF5 ------------------------------------------------------------------------------


def _is_opensignals(path: Path) -> bool:
    if path.suffix.lower() not in (".h5", ".hdf5") or not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return any(
            isinstance(g, h5py.Group) and "sampling rate" in g.attrs and "raw" in g for g in f.values()
        )


def plux_emg_uv(raw: FloatArray, bits: int) -> FloatArray:
    return (raw / 2.0**bits - 0.5) * PLUX_EMG_SPAN_MV * 1000.0


def plux_acc_g(raw: FloatArray, bits: int) -> FloatArray:
    return 2.0 * ((2.0 ** (16 - bits) * raw - PLUX_ACC_CMIN) / (PLUX_ACC_CMAX - PLUX_ACC_CMIN)) - 1.0


def _info_sensors(path: Path) -> list[str]:
    """The ``Signal Type`` list of the ``*_info.json`` beside an OpenSignals file, in channel order."""
    info = path.with_name(f"{path.stem}_info.json")
    if not info.is_file():
        return []
    try:
        types = json.loads(info.read_text(encoding="utf-8")).get("Signal Type", "")
    except (ValueError, OSError) as exc:
        raise FormatError(f"{info}: cannot read: {exc}") from None
    return [t.strip() for t in str(types).split(",") if t.strip()]


@register("PLUX OpenSignals HDF5", _is_opensignals)
def read_opensignals(path: Path) -> Loaded:
    spare = _info_sensors(path)
    streams: list[Stream] = []
    notes: list[str] = []
    k_json = 0
    with h5py.File(path, "r") as f:
        for mac, g in f.items():
            if not (isinstance(g, h5py.Group) and "raw" in g and "sampling rate" in g.attrs):
                continue
            rate = float(np.asarray(g.attrs["sampling rate"]).ravel()[0])
            numbers = [int(c) for c in np.asarray(g.attrs.get("channels", [])).ravel()]
            bits_of = dict(
                zip(numbers, (int(b) for b in np.asarray(g.attrs["resolution"]).ravel()), strict=False)
            )
            emg: list[FloatArray] = []
            acc: list[FloatArray] = []
            for n in numbers:
                name = f"channel_{n}"
                if name not in g["raw"]:
                    raise FormatError(f"{path}: device {mac}: 'channels' names {n} but raw/{name} is missing")
                ds = g["raw"][name]
                sensor = ds.attrs.get("sensor")
                if sensor is None:
                    sensor = spare[k_json] if k_json < len(spare) else ""
                k_json += 1
                sensor = (sensor.decode() if isinstance(sensor, bytes) else str(sensor)).strip()
                raw = np.asarray(ds[...], dtype=np.float64).reshape(-1)
                bits = bits_of.get(n)
                if bits is None:
                    raise FormatError(f"{path}: device {mac}: no resolution for channel {n}")
                if sensor.upper() == "EMG":
                    emg.append(plux_emg_uv(raw, bits))
                elif sensor.upper() in PLUX_ACC_SENSORS:
                    acc.append(plux_acc_g(raw, bits))
                else:
                    notes.append(
                        f"{mac} {name}: sensor {sensor or '?'!r} is neither EMG nor an accelerometer"
                    )
            if emg:
                streams.append(Stream(f"{mac} EMG", "emg", rate, np.stack(emg, axis=1), mac))
            if len(acc) % 3:
                raise FormatError(
                    f"{path}: device {mac}: {len(acc)} accelerometer channels, not 3 per sensor"
                )
            for i in range(0, len(acc), 3):
                label = f"{mac} ACC" + (f" {i // 3 + 1}" if len(acc) > 3 else "")
                streams.append(Stream(label, "acc", rate, np.stack(acc[i : i + 3], axis=1), mac))
    return Loaded("PLUX OpenSignals HDF5", tuple(streams), tuple(notes))


# --- CSV formats -----------------------------------------------------------------------------------------

_GYRO = re.compile(r"^(gyr|gyro)[_ ]?([xyz])$")
_ACC = re.compile(r"^(acc)[_ ]?([xyz])$")


def _axes(columns: Sequence[str], pattern: re.Pattern[str]) -> list[int] | None:
    """Indices of the x, y, z columns matching ``pattern``, or None when not all three are there."""
    found = {m.group(2): i for i, c in enumerate(columns) if (m := pattern.match(c))}
    return [found[a] for a in "xyz"] if set(found) >= set("xyz") else None


def _is_mobilised(path: Path) -> bool:
    cols = _header(path)
    return (
        path.suffix.lower() == ".csv"
        and bool(cols)
        and cols[0] == "samples"
        and _axes(cols, _ACC) is not None
    )


def _numeric_table(path: Path, skip: int, usecols: Sequence[int]) -> FloatArray:
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=skip, usecols=usecols, ndmin=2)
    except ValueError as exc:
        raise FormatError(f"{path}: {exc}") from None
    if not np.isfinite(table).all():
        row = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])
        raise FormatError(f"{path}: line {skip + row + 1} holds a value that is not a finite number")
    return np.asarray(table, dtype=np.float64)


@register("Mobilise-D CSV", _is_mobilised)
def read_mobilised(path: Path) -> Loaded:
    cols = _header(path)
    acc = _axes(cols, _ACC)
    gyr = _axes(cols, _GYRO)
    assert acc is not None
    use = [0, *acc, *(gyr or [])]
    table = _numeric_table(path, 1, use)
    if table.shape[0] > 1 and not np.all(np.diff(table[:, 0]) == 1):
        bad = int(np.flatnonzero(np.diff(table[:, 0]) != 1)[0])
        raise FormatError(f"{path}: line {bad + 3}: the 'samples' column skips (samples lost?)")
    device = path.parent.name or "imu"
    streams = [Stream(f"{device} ACC", "acc", MOBILISED_RATE, table[:, 1:4], device)]
    if gyr is not None:
        streams.append(Stream(f"{device} GYR", "gyro", MOBILISED_RATE, table[:, 4:7], device))
    return Loaded("Mobilise-D CSV", tuple(streams))


def _is_daphnet(path: Path) -> bool:
    cols = _header(path)
    return path.suffix.lower() == ".csv" and len(cols) >= 4 and cols[0] == "timestamp" and "_" in cols[1]


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.:]\d+)?$")


def parse_time(text: str, where: str) -> float:
    """``YYYY-MM-DD hh:mm:ss[.fff]`` or GENEActiv's ``…:ss:fff`` → seconds (UTC, for differences only)."""
    t = text.strip()
    if not _TIMESTAMP.match(t):
        raise FormatError(f"{where}: {t!r} is not a timestamp")
    head, frac = t[:19], t[20:]
    stamp = datetime.fromisoformat(head.replace(" ", "T") + "+00:00").timestamp()
    return stamp + (float(f"0.{frac}") if frac else 0.0)


def rate_from_times(t: FloatArray, where: str) -> float:
    """Sample rate from timestamps (first to last), refusing gaps: a step over 2.5 periods is one."""
    if t.size < 2 or t[-1] <= t[0]:
        raise FormatError(f"{where}: fewer than two increasing timestamps")
    rate = (t.size - 1) / (t[-1] - t[0])
    steps = np.diff(t) * rate
    if steps.max() > 2.5 or steps.min() < 0:
        k = int(np.argmax(steps > 2.5) if steps.max() > 2.5 else np.argmax(steps < 0))
        raise FormatError(
            f"{where}: line {k + 3}: timestamps jump ({steps[k]:.1f} periods): a gap or disorder"
        )
    return float(rate)


@register("Daphnet CSV", _is_daphnet)
def read_daphnet(path: Path) -> Loaded:
    cols = _header(path)
    sensors: dict[str, list[int]] = {}
    for i, c in enumerate(cols[1:], start=1):
        if c in ("is_anomaly", "label", "annotation"):
            continue
        sensors.setdefault(c.split("_")[0], []).append(i)
    for name, idx in sensors.items():
        if len(idx) != 3:
            raise FormatError(f"{path}: sensor {name!r} has {len(idx)} columns, not 3 axes")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    t = np.array([parse_time(r[0], f"{path}: line {k + 2}") for k, r in enumerate(rows)])
    rate = rate_from_times(t, str(path))
    use = [i for idx in sensors.values() for i in idx]
    table = _numeric_table(path, 1, use)
    streams = []
    for k, (name, _) in enumerate(sensors.items()):
        streams.append(Stream(f"{name} ACC", "acc", rate, table[:, 3 * k : 3 * k + 3] / 1000.0, name))
    return Loaded("Daphnet CSV", tuple(streams), (f"rate {rate:.2f} Hz from the timestamps",))


def _is_geneactiv(path: Path) -> bool:
    line = _first_line(path).lower().replace(" ", "")
    return line.startswith("devicetype,geneactiv")


@register("GENEActiv CSV", _is_geneactiv)
def read_geneactiv(path: Path) -> Loaded:
    header: dict[str, str] = {}
    start = 0
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for k, line in enumerate(f):
            cells = [c.strip() for c in line.strip().split(",")]
            if cells and _TIMESTAMP.match(cells[0]):
                start = k
                break
            if len(cells) >= 2 and cells[0] and cells[0] not in header:
                header[cells[0]] = cells[1]
        else:
            raise FormatError(f"{path}: no data rows after the header")
    freq = header.get("Measurement Frequency", "")
    m = re.match(r"^\s*([0-9.]+)\s*Hz", freq)
    if m is None or float(m.group(1)) <= 0:
        raise FormatError(f"{path}: header 'Measurement Frequency' is {freq!r}, not a rate in Hz")
    rate = float(m.group(1))
    table = _numeric_table(path, start, [1, 2, 3])
    device = header.get("Device Location Code", "").strip() or header.get(
        "Device Unique Serial Code", "geneactiv"
    )
    return Loaded("GENEActiv CSV", (Stream(f"{device} ACC", "acc", rate, table, device),))
