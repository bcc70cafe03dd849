"""PLUX OpenSignals recordings (biosignalsplux, its hubs, BITalino): the HDF5 files OpenSignals saves.

One group per device, named by its MAC, with attributes ``sampling rate``, ``channels`` (the analog
channels' numbers), ``resolution`` (bits, in the order of ``channels``), ``device``, ``date`` and ``time``
(when it started, the recording computer's local time); datasets ``raw/channel_N`` (samples × 1, ADC counts)
with attributes ``sensor`` and ``label``. ``raw/nSeq`` (a sample counter) and the digital inputs are no
signals. HDF5 also holds twitchwatch sessions: a file is this format when a root group has a ``sampling
rate`` and a ``raw`` group (``claims_file``).

Counts become µV and g by PLUX's transfer functions (``collector.recordings.plux``); any other sensor (force
platform, ECG, EDA …) is skipped with a note. Each device is its own stream block (``Channel.block``); a
device's accelerometer channels, three by three in channel order, are one sensor.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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
from twitchwatch.collector.recordings.plux import (
    acc_transfer,
    channel_label,
    conversion,
    emg_transfer,
    start_ns,
)
from twitchwatch.collector.recordings.reader import (
    HDF5_DAMAGE,
    HDF5_MAGIC,
    RecordingReader,
    hdf5_holds,
    hdf5_sound,
)
from twitchwatch.collector.signals import KINDS


@dataclass(frozen=True)
class _Source:
    """Where a channel's counts are (its ``scale`` and ``offset`` make them units)."""

    dataset: str  # "<device>/raw/channel_N"
    samples: int


def _is_device(group: Any) -> bool:
    return (
        isinstance(group, h5py.Group)
        and "sampling rate" in group.attrs
        and isinstance(group.get("raw"), h5py.Group)
    )


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
        hdf5_sound(path)
        try:
            self._file = h5py.File(path, "r")
        except HDF5_DAMAGE as exc:
            raise RecordingError(f"{path}: not a readable HDF5 file ({exc})") from None
        try:
            self.recording = self._describe()
        except HDF5_DAMAGE as exc:
            self._file.close()
            raise RecordingError(f"{path}: a damaged HDF5 file ({type(exc).__name__}: {exc})") from None
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
            rate = self._rate(mac, group.attrs["sampling rate"])
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

    def _rate(self, mac: str, value: Any) -> float:
        try:
            rate = float(np.asarray(value).ravel()[0])
        except (ValueError, TypeError, IndexError):
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            shown = np.asarray(value).ravel().tolist()
            raise RecordingError(
                f"{self.path}: device {mac}: 'sampling rate' {shown} is not a positive number"
            )
        return rate

    def _check(self, where: str, ds: Any, bits: int) -> None:
        """A channel's dataset: numbers, one column; its resolution a real ADC's."""
        if not isinstance(ds, h5py.Dataset) or not np.issubdtype(ds.dtype, np.number):
            raise RecordingError(f"{where}: not a dataset of numbers")
        if ds.ndim not in (1, 2) or (ds.ndim == 2 and ds.shape[1] != 1):
            raise RecordingError(f"{where}: shape {ds.shape}, not samples × 1")
        if not 1 <= bits <= 32:
            raise RecordingError(f"{where}: resolution {bits} bits is not an ADC's (1 to 32)")
        # A damaged header can claim billions of samples that were never stored (HDF5 reads them as zeros).
        stored, needed = ds.id.get_storage_size(), ds.size * ds.dtype.itemsize
        if needed and (
            stored == 0 or (stored < needed and not ds.compression) or needed > MAX_RATIO * stored
        ):
            raise RecordingError(f"{where}: {ds.shape[0]} samples, but {stored} bytes stored for them")

    def _device(self, mac: str, group: h5py.Group, rate: float, notes: list[str]) -> list[Channel]:
        """A device's analog channels, in channel order; its accelerometer channels three by three as the
        axes of one sensor."""
        where = f"{self.path}: device {mac}"
        numbers = _ints(group.attrs.get("channels", []))
        bits = _ints(group.attrs.get("resolution", []))
        if len(bits) != len(numbers):
            raise RecordingError(f"{where}: {len(numbers)} channels but {len(bits)} resolutions")
        device = _text(group.attrs.get("device", ""))
        out: list[Channel] = []
        axes = 0
        for n, nbits in zip(numbers, bits, strict=True):
            name = f"channel_{n}"
            if name not in group["raw"]:
                raise RecordingError(f"{where}: 'channels' names {n} but raw/{name} is missing")
            ds = group["raw"][name]
            self._check(f"{where}: raw/{name}", ds, nbits)
            sensor = _text(ds.attrs.get("sensor", ""))
            label = _text(ds.attrs.get("label", "")) or f"CH{n}"
            index = len(self._sources) + len(self._others)
            how = conversion(sensor, nbits, device)
            if isinstance(how, str):
                self._others.add(index)
                out.append(Channel(index, label, "", rate, None, label, note=how, block=mac))
                continue
            self._sources[index] = _Source(f"{mac}/raw/{name}", int(ds.shape[0]))
            called = channel_label(how, label, mac, axes)
            axes += how.kind == "acc"
            ch = Channel(index, called, "", rate, how.kind, label, how.scale, note=how.note, block=mac)
            out.append(named(replace(ch, offset=how.offset)))
        if axes % 3:
            notes.append(f"device {mac}: {axes} accelerometer channel(s), not three per sensor")
        return out

    def _start(self, group: h5py.Group, notes: list[str]) -> int | None:
        """When the device started (``plux.start_ns``)."""
        return start_ns(_text(group.attrs.get("date", "")), _text(group.attrs.get("time", "")), notes)

    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        def read(gi: int, start: int, n: int) -> FloatArray:
            data = np.empty((n, len(groups[gi].channels)))
            for j, ch in enumerate(groups[gi].channels):
                name = self._sources[ch.index].dataset
                try:
                    counts = np.asarray(self._file[name][start : start + n], dtype=np.float64).reshape(-1)
                except HDF5_DAMAGE as exc:
                    raise RecordingError(
                        f"{self.path}: {name} samples {start}–{start + n}: unreadable ({exc})"
                    ) from None
                if not np.isfinite(counts).all():
                    bad = start + int(np.flatnonzero(~np.isfinite(counts))[0])
                    raise RecordingError(f"{self.path}: {name}: sample {bad} is not a finite number")
                data[:, j] = counts * ch.scale + ch.offset
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


MAX_RATIO: Final = 1000  # most samples a compressed dataset may hold for each byte stored
WRITE_BITS: Final = 24  # finer than PLUX's 16 bits: a written file reads back within 2^-15 of its range


def _counts(path: Path, s: Series, ch: Channel) -> npt.NDArray[np.uint32]:
    scale, offset = emg_transfer(WRITE_BITS) if s.kind == "emg" else acc_transfer(WRITE_BITS)
    counts = np.rint((s.values - offset) / scale)
    top = 2**WRITE_BITS - 1
    if counts.min() < 0 or counts.max() > top:
        lo, hi = offset, offset + top * scale
        raise RecordingError(f"{path}: {ch.label!r} goes past what the ADC holds ({lo:g} to {hi:g})")
    return counts.astype(np.uint32)
