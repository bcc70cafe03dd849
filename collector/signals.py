"""Signal kinds: what each kind of stream carries, in one table for the whole project.

A wearable's stream is EMG, an accelerometer, a gyroscope or an orientation quaternion (:data:`StreamKind`).
EMG and accelerometer streams go through a twitch detector (:data:`TwitchSignal`, ``processing.detector``);
gyroscope and orientation streams only tell the rest gate about movement (:data:`MotionSignal`,
``processing.motion``). :data:`KINDS` gives each kind its wire unit (``collector.frames.Unit``: what the
samples are in after scaling), its EDF physical dimension (ASCII, as EDF headers are: ``uV``, never ``µV``),
the word a recording's channel label starts with and its axes; :data:`DIMENSIONS` maps every physical
dimension a file may give to a kind and the factor to its unit. Everything that needs one of these looks it
up here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np

from twitchwatch.collector.frames import Unit

StreamKind = Literal["emg", "acc", "gyro", "orientation"]
TwitchSignal = Literal["emg", "acc"]  # streams a twitch detector reads
MotionSignal = Literal["gyro", "orientation"]  # streams that only show movement
STREAM_KINDS: Final[tuple[StreamKind, ...]] = get_args(StreamKind)
TWITCH_SIGNALS: Final[tuple[TwitchSignal, ...]] = get_args(TwitchSignal)
MOTION_SIGNALS: Final[tuple[MotionSignal, ...]] = get_args(MotionSignal)

STANDARD_GRAVITY: Final = 9.80665  # m/s² per g


@dataclass(frozen=True)
class Kind:
    """What a signal kind is in a recording: the unit its samples are read in, the EDF physical dimension
    (ASCII: EDF headers are), the word a label starts with, and the axis names of its sensors in the order
    the detector takes them (sessions number gyroscope axes 1–3)."""

    unit: Unit
    dimension: str
    word: str
    axes: str
    family: str  # what its dimension is, for notes


KINDS: Final[dict[StreamKind, Kind]] = {
    "emg": Kind(Unit.MICROVOLT, "uV", "EMG", "", "voltage"),
    "acc": Kind(Unit.G, "g", "ACC", "XYZ", "acceleration"),
    "gyro": Kind(Unit.DEG_PER_S, "deg/s", "GYR", "XYZ123", "angular rate"),
    "orientation": Kind(Unit.UNITLESS, "", "ORI", "WXYZ1234", "quaternion"),
}

# Physical dimension → (signal type, factor to the kind's unit: µV for EMG, g for acceleration, °/s).
DIMENSIONS: Final[dict[str, tuple[StreamKind, float]]] = {
    "uV": ("emg", 1.0),
    "µV": ("emg", 1.0),  # micro sign
    "μV": ("emg", 1.0),  # Greek mu
    "mV": ("emg", 1e3),
    "V": ("emg", 1e6),
    "g": ("acc", 1.0),
    "m/s^2": ("acc", 1.0 / STANDARD_GRAVITY),
    "m/s2": ("acc", 1.0 / STANDARD_GRAVITY),
    "m/s²": ("acc", 1.0 / STANDARD_GRAVITY),
    "mg": ("acc", 1e-3),  # milli-g (Daphnet, Axivity exports): no sensor file means milligrams
    "deg/s": ("gyro", 1.0),
    "°/s": ("gyro", 1.0),
    "dps": ("gyro", 1.0),
    "rad/s": ("gyro", 180.0 / np.pi),
}


# Wire unit → kind, the first kind of each unit (asked for every frame a worker takes).
_KIND_OF_UNIT: Final[dict[Unit, StreamKind]] = {
    info.unit: k for k, info in reversed(KINDS.items()) if info.unit is not Unit.UNITLESS
}


def kind_of_unit(unit: Unit) -> StreamKind | None:
    """The signal kind a wire unit means; None for a unitless stream (device counts or a quaternion)."""
    return _KIND_OF_UNIT.get(unit)


def stream_kind(name: str) -> StreamKind | None:
    """``name`` ("emg", "acc", "gyro", "orientation") as a signal kind; None for anything else."""
    return next((kind for kind in KINDS if kind == name), None)


def unit_symbol(kind: StreamKind) -> str:
    return KINDS[kind].unit.symbol
