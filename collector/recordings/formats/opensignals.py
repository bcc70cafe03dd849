"""PLUX OpenSignals recordings (biosignalsplux, its hubs, BITalino): the HDF5 files OpenSignals saves.

One group per device, named by its MAC, with attributes ``sampling rate``, ``channels`` (the analog
channels' numbers), ``resolution`` (bits, in the order of ``channels``), ``device``, ``date`` and ``time``
(when it started, the recording computer's local time); datasets ``raw/channel_N`` (samples × 1, ADC counts)
with attributes ``sensor`` and ``label``. ``raw/nSeq`` (a sample counter) and the digital inputs are no
signals. HDF5 also holds twitchwatch sessions: a file is this format when a root group has a ``sampling
rate`` and a ``raw`` group (``claims_file``).

Counts become physical units by PLUX's transfer functions (its sensor data sheets):

- **EMG**: µV = (ADC / 2ⁿ − ½) · VCC / G · 10⁶, with VCC 3 V and gain 1000 (biosignalsplux and its hubs),
  3.3 V and 1009 (BITalino);
- **accelerometer** (``XYZ``, ``ACC``, ``cACC``): g = 2 (ADC · 2^(16−n) − Cmin) / (Cmax − Cmin) − 1 with
  PLUX's default calibration, Cmin 28000 and Cmax 38000 (a few per cent off without the device's own values).
  BITalino's accelerometer has no published default calibration: it is skipped with a note.

Any other sensor (force platform, ECG, EDA …) is skipped with a note. Each device is its own stream block
(``Channel.block``); a device's accelerometer channels, three by three in channel order, are one sensor.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import h5py
import numpy as np
import numpy.typing as npt

from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    Annotation,
    Channel,
    Chunk,
    FloatArray,
    Group,
    Recording,
    RecordingError,
    Series,
    infer_channel,
    named,
    stepped_chunks,
)
from twitchwatch.collector.recordings.reader import HDF5_MAGIC, RecordingReader, hdf5_holds
from twitchwatch.collector.signals import KINDS

# (VCC in volts, EMG sensor gain): biosignalsplux and its hubs ("channeller"), BITalino.
_PLUX_EMG: Final = (3.0, 1000.0)
_BITALINO_EMG: Final = (3.3, 1009.0)
_ACC_SENSORS: Final = frozenset({"XYZ", "ACC", "CACC"})
ACC_CMIN, ACC_CMAX = 28000.0, 38000.0  # PLUX's default accelerometer calibration, at 16 bits
_DATE: Final = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_TIME: Final = re.compile(r"^(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?$")


@dataclass(frozen=True)
class _Source:
    """Where a channel's counts are and how they become units: value = counts × scale + offset."""

    dataset: str  # "<device>/raw/channel_N"
    scale: float
    offset: float
    samples: int


def _is_device(group: Any) -> bool:
    return isinstance(group, h5py.Group) and "sampling rate" in group.attrs and "raw" in group


def _text(value: Any) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).ravel()]


class OpenSignalsReader(RecordingReader):
    """PLUX OpenSignals HDF5: EMG and accelerometer channels in µV and g by PLUX's transfer functions."""

    MAGIC: ClassVar[tuple[bytes, ...]] = (HDF5_MAGIC,)
    NOUN: ClassVar[str] = "a PLUX OpenSignals file"
    DESCRIPTION: ClassVar[str] = "a PLUX OpenSignals file (HDF5)"
    DEVICE_PREFIX: ClassVar[str] = "plux"

    @classmethod
    def claims_file(cls, path: Path) -> bool:
        """An HDF5 file with a device group: a ``sampling rate`` and a ``raw`` group."""
        return hdf5_holds(path, lambda root: any(_is_device(g) for g in root.values()))

    def __init__(self, path: Path, rate: float | None = None) -> None:
        if rate is not None:
            raise RecordingError(f"{path}: an OpenSignals file carries its rate (--rate is for CSV)")
        self.path = path
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise RecordingError(f"{path}: not a readable HDF5 file ({exc})") from None
        try:
            self.recording = self._describe()
        except BaseException:
            self._file.close()
            raise

    def _describe(self) -> Recording:
        channels: list[Channel] = []
        self._sources: dict[int, _Source] = {}
        self._others: set[int] = set()
        notes: list[str] = []
        starts: list[int] = []
        for mac, group in self._file.items():
            if not _is_device(group):
                continue
            rate = float(np.asarray(group.attrs["sampling rate"]).ravel()[0])
            start = self._start(group, notes)
            starts += [start] if start is not None else []
            channels += self._device(mac, group, rate, notes)
        if not channels:
            raise RecordingError(f"{self.path}: no device group with a 'sampling rate' and raw channels")
        duration = max(
            (s.samples / c.rate for c in channels if (s := self._sources.get(c.index))), default=0.0
        )
        start_ns = min(starts, default=None)
        return Recording(self.path, "OpenSignals", tuple(channels), duration, tuple(notes), start_ns=start_ns)

    def _device(self, mac: str, group: h5py.Group, rate: float, notes: list[str]) -> list[Channel]:
        """A device's analog channels, in channel order; its accelerometer channels three by three as the
        axes of one sensor."""
        where = f"{self.path}: device {mac}"
        numbers = _ints(group.attrs.get("channels", []))
        bits = _ints(group.attrs.get("resolution", []))
        if len(bits) != len(numbers):
            raise RecordingError(f"{where}: {len(numbers)} channels but {len(bits)} resolutions")
        device = _text(group.attrs.get("device", "")).lower()
        bitalino = device.startswith("bitalino")
        out: list[Channel] = []
        axes = 0
        for n, nbits in zip(numbers, bits, strict=True):
            name = f"channel_{n}"
            if name not in group["raw"]:
                raise RecordingError(f"{where}: 'channels' names {n} but raw/{name} is missing")
            ds = group["raw"][name]
            sensor = _text(ds.attrs.get("sensor", "")).upper()
            label = _text(ds.attrs.get("label", "")) or f"CH{n}"
            index = len(self._sources) + len(self._others)
            source = f"{mac}/raw/{name}"
            if sensor == "EMG":
                vcc, gain = _BITALINO_EMG if bitalino else _PLUX_EMG
                self._sources[index] = _Source(source, *emg_transfer(nbits, bitalino), int(ds.shape[0]))
                note = (
                    f"ADC counts → µV by PLUX's EMG transfer function ({vcc:g} V, gain {gain:g}, {nbits}-bit)"
                )
                out.append(
                    named(Channel(index, f"EMG {label}", "", rate, "emg", label, note=note, block=mac))
                )
            elif sensor in _ACC_SENSORS and not bitalino:
                sensor_name = f"ACC {mac}" + (f" {axes // 3 + 1}" if axes >= 3 else "")
                self._sources[index] = _Source(source, *acc_transfer(nbits), int(ds.shape[0]))
                note = f"ADC counts → g by PLUX's default accelerometer calibration ({nbits} bits)"
                ch = Channel(
                    index, f"{sensor_name} {'XYZ'[axes % 3]}", "", rate, "acc", mac, note=note, block=mac
                )
                out.append(named(ch))
                axes += 1
            else:
                why = (
                    "a BITalino accelerometer has no default calibration"
                    if sensor in _ACC_SENSORS
                    else (f"sensor {sensor or '?'!r} is neither EMG nor an accelerometer")
                )
                self._others.add(index)
                out.append(Channel(index, label, "", rate, None, label, note=why, block=mac))
        if axes % 3:
            notes.append(f"device {mac}: {axes} accelerometer channel(s), not three per sensor")
        return out

    def _start(self, group: h5py.Group, notes: list[str]) -> int | None:
        """When the device started, from its ``date`` and ``time`` (local time of the computer that
        recorded, read as this computer's, as EDF's start is)."""
        date = _DATE.match(_text(group.attrs.get("date", "")))
        time = _TIME.match(_text(group.attrs.get("time", "")))
        if date is None or time is None:
            return None
        year, month, day = (int(g) for g in date.groups())
        hour, minute, second = (int(g) for g in time.groups()[:3])
        micro = int((time.group(4) or "").ljust(6, "0"))
        try:
            when = dt.datetime(year, month, day, hour, minute, second, micro).astimezone()
        except ValueError:
            notes.append(
                f"its start ({date.group(0)} {time.group(0)}) is no date: times from the file's start"
            )
            return None
        return round(when.timestamp() * 1e6) * 1000

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        def read(gi: int, start: int, n: int) -> FloatArray:
            data = np.empty((n, len(groups[gi].channels)))
            for j, ch in enumerate(groups[gi].channels):
                src = self._sources[ch.index]
                counts = np.asarray(self._file[src.dataset][start : start + n], dtype=np.float64).reshape(-1)
                data[:, j] = counts * src.scale + src.offset
            return data

        totals = [min(self._sources[c.index].samples for c in g.channels) for g in groups]
        return stepped_chunks(groups, chunk_seconds, totals, read)

    @classmethod
    def write(
        cls, path: Path, series: Sequence[Series], start_ns: int, annotations: Sequence[Annotation] = ()
    ) -> Path:
        """A biosignalsplux-like file: a device group per muscle (an EMG channel, or an accelerometer's
        three axes), 24-bit counts by the transfer functions above, the start as local date and time."""
        if annotations:
            raise RecordingError(f"{path}: an OpenSignals file has no place for annotations")
        devices: dict[str, list[tuple[Series, Channel]]] = {}
        for i, s in enumerate(series):
            if s.kind not in ("emg", "acc"):
                raise RecordingError(
                    f"{path}: an OpenSignals file holds EMG and accelerometers, not {s.kind}"
                )
            ch = infer_channel(i, s.label, KINDS[s.kind].dimension, s.rate)
            devices.setdefault(ch.muscle, []).append((s, ch))
        when = dt.datetime.fromtimestamp(start_ns / 1e9).astimezone()
        with h5py.File(path, "w") as f:
            for name, members in devices.items():
                rates = {s.rate for s, _ in members}
                if len(rates) != 1:
                    raise RecordingError(f"{path}: device {name!r} has channels at several rates")
                g = f.create_group(name)
                g.attrs["sampling rate"] = rates.pop()
                g.attrs["channels"] = np.arange(1, len(members) + 1, dtype=np.int32)
                g.attrs["resolution"] = np.full(len(members), WRITE_BITS, dtype=np.int32)
                g.attrs["device"] = "biosignalsplux"
                g.attrs["date"] = f"{when.year}-{when.month}-{when.day}"
                g.attrs["time"] = f"{when.hour}:{when.minute}:{when.second}.{when.microsecond:06d}"
                for n, (s, ch) in enumerate(members, start=1):
                    ds = g.create_dataset(f"raw/channel_{n}", data=_counts(path, s, ch).reshape(-1, 1))
                    ds.attrs["sensor"] = "EMG" if s.kind == "emg" else "XYZ"
                    ds.attrs["label"] = name if s.kind == "emg" else f"CH{n}"
        return path

    def close(self) -> None:
        self._file.close()


WRITE_BITS: Final = 24  # finer than PLUX's 16 bits: a written file reads back within 2^-15 of its range


def emg_transfer(bits: int, bitalino: bool = False) -> tuple[float, float]:
    """(µV per count, µV at count 0) of PLUX's EMG transfer function."""
    vcc, gain = _BITALINO_EMG if bitalino else _PLUX_EMG
    full = vcc / gain * 1e6  # µV across the ADC's range
    return full / 2**bits, -full / 2


def acc_transfer(bits: int) -> tuple[float, float]:
    """(g per count, g at count 0) of PLUX's accelerometer with its default calibration."""
    span = ACC_CMAX - ACC_CMIN
    return 2 * 2 ** (16 - bits) / span, -2 * ACC_CMIN / span - 1


def _counts(path: Path, s: Series, ch: Channel) -> npt.NDArray[np.uint32]:
    scale, offset = emg_transfer(WRITE_BITS) if s.kind == "emg" else acc_transfer(WRITE_BITS)
    counts = np.rint((s.values - offset) / scale)
    top = 2**WRITE_BITS - 1
    if counts.min() < 0 or counts.max() > top:
        lo, hi = offset, offset + top * scale
        raise RecordingError(f"{path}: {ch.label!r} goes past what the ADC holds ({lo:g} to {hi:g})")
    return counts.astype(np.uint32)
