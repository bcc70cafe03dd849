"""Device profiles: each wearable model's BLE protocol as pure decoders plus a small start/stop plan.

One module per model lives in this package; each defines one or more ``DeviceProfile`` subclasses keyed by
a class constant ``NAME``. Nobody keeps a list: ``profiles()`` scans the package (collector/plugins.py) and
imports every public module. A module that fails to import fails the scan (``ProfileImportError``), a
module without a profile is an error, and two profiles with one ``NAME`` are an error
(``DuplicateProfileError``). Modules whose names start with ``_`` are private helpers and are not scanned.

A profile has:

- ``SETTINGS``: its own pydantic model (unknown keys rejected), discriminated on ``type`` == ``NAME``;
- ``STREAMS``: what it can deliver (name, signal, unit, channel labels, the characteristic carrying it);
- ``plan(streams)``: the GATT writes that start and stop those streams, and the characteristics to
  subscribe to (``Plan``); replies the device sends to a write (Polar's start response carrying FACTOR)
  are parsed into typed results by the profile module;
- ``decoders(streams, replies)``: one ``Decoder`` per notifying characteristic. A decoder is pure:
  ``decode(data, state) -> (chunks, new_state)``; no I/O, and it never changes the state it is given.
  State exists only where the protocol needs it (Polar's previous frame time, Ganglion's last sample);
  everything else uses ``None``.

A decoder either returns chunks (possibly none, for a valid notification that carries no samples) or
raises ``NotificationError`` naming the byte offset where the notification stopped making sense. Its work is
bounded by the notification's length: no loop runs longer than the payload allows.

Device timestamps are reported in the device's own clock (``Chunk.timestamps_ns``; ``None`` when the
device sends none): mapping them to the Unix epoch is the runtime's job (``DeviceProfile.DEVICE_EPOCH_NS``
says where a device's clock counts from when it has an absolute one).

``decode_hex`` is the debugging entry point (``twitchwatch devices decode``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, Self, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from twitchwatch.collector.frames import SampleType, Unit
from twitchwatch.collector.plugins import own_classes, public_modules
from twitchwatch.collector.signals import StreamKind
from twitchwatch.errors import TwitchwatchError, UserError

__all__ = [
    "Chunk",
    "ControlError",
    "Decoder",
    "DeviceProfile",
    "DuplicateProfileError",
    "GattWrite",
    "NotificationError",
    "ParamError",
    "Plan",
    "ProfileError",
    "ProfileImportError",
    "ProfileSettings",
    "ScanMatch",
    "StatelessDecoder",
    "StreamSpec",
    "UnknownProfile",
    "decode_hex",
    "discover",
    "get_profile",
    "profiles",
    "validate_settings",
]

# ---------------------------------------------------------------------------------------------- errors


class NotificationError(UserError, ValueError):
    """A notification could not be decoded. ``offset`` is the byte at which decoding failed."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class ControlError(UserError, ValueError):
    """The device refused a command, or answered with something this profile cannot use."""


class ParamError(UserError, ValueError):
    """Settings or decode parameters are invalid. ``problems`` are (key path, reason) pairs."""

    def __init__(self, what: str, problems: Sequence[tuple[str, str]]) -> None:
        self.what = what
        self.problems = list(problems)
        lines = "; ".join(f"{key}: {reason}" for key, reason in self.problems)
        super().__init__(f"invalid {what}: {lines}")

    @classmethod
    def from_validation(cls, what: str, exc: ValidationError) -> ParamError:
        return cls(
            what, [(".".join(str(p) for p in e["loc"]) or "(top level)", e["msg"]) for e in exc.errors()]
        )


class UnknownProfile(UserError, ValueError):
    """No registered profile has this name."""


class ProfileError(TwitchwatchError, RuntimeError):
    """The profile package itself is broken (found at discovery, never silently skipped)."""


class ProfileImportError(ProfileError):
    """A profile module raised while being imported."""

    def __init__(self, module: str, exc: BaseException) -> None:
        super().__init__(f"device profile module {module} failed to import: {type(exc).__name__}: {exc}")
        self.module = module


class DuplicateProfileError(ProfileError):
    """Two profile classes claim the same ``NAME``."""


def need(data: bytes, offset: int, size: int, what: str) -> None:
    """Raise ``NotificationError`` unless ``data`` holds ``size`` bytes at ``offset``."""
    if len(data) < offset + size:
        have = max(len(data) - offset, 0)
        raise NotificationError(f"truncated {what}: needs {size} bytes, {have} left", len(data))


# ------------------------------------------------------------------------------------------ settings


class ProfileSettings(BaseModel):
    """Base of every profile's settings model: frozen, unknown keys rejected, ``type`` names the profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


def lowercase(value: object) -> object:
    """A ``BeforeValidator`` for case-insensitive choices (vector files spell chips ``BMI160``)."""
    return value.lower() if isinstance(value, str) else value


def coerce_params(params: Mapping[str, object]) -> dict[str, object]:
    """Turn command-line strings into JSON scalars where they parse (``"8"`` → 8, ``"true"`` → True)."""
    out: dict[str, object] = {}
    for key, value in params.items():
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value
            out[key] = parsed if isinstance(parsed, int | float | bool) or parsed is None else value
        else:
            out[key] = value
    return out


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], params: Mapping[str, object], what: str) -> M:
    try:
        return model.model_validate(coerce_params(params))
    except ValidationError as exc:
        raise ParamError.from_validation(what, exc) from None


# ---------------------------------------------------------------------------------------------- values

Signal = StreamKind | Literal["other"]  # collector.signals, or a channel the pipeline does not use

_SAMPLE_TYPES: Final = {
    np.dtype(np.int8): SampleType.INT8,
    np.dtype(np.int16): SampleType.INT16,
    np.dtype(np.int32): SampleType.INT32,
    np.dtype(np.float32): SampleType.FLOAT32,
}


@dataclass(frozen=True)
class StreamSpec:
    """One stream a profile can deliver. ``channels`` are labels; empty means the device decides."""

    name: str
    signal: Signal
    unit: Unit
    channels: tuple[str, ...]
    characteristic: str


@dataclass(frozen=True, eq=False)
class Chunk:
    """Samples of one stream from one notification.

    ``raw`` has shape (samples, channels) and dtype int8/int16/int32/float32 (so it maps onto a wire
    ``Frame`` without re-quantising); the physical value is ``raw × scale`` in ``unit``.
    ``timestamps_ns`` are per-sample device times in the device's clock, or ``None`` when the device
    sends none. ``sequence`` is the device's frame counter where it has one; ``lost_samples`` counts
    samples the decoder knows are missing just before this chunk (only decoders with state can know).
    """

    stream: str
    raw: npt.NDArray[Any]
    scale: float
    unit: Unit
    sample_rate: float | None = None
    timestamps_ns: npt.NDArray[np.int64] | None = None
    sequence: int | None = None
    lost_samples: int = 0

    def __post_init__(self) -> None:
        if self.raw.ndim != 2 or self.raw.shape[1] < 1:
            raise ValueError(f"raw must be (samples, channels ≥ 1), got shape {self.raw.shape}")
        if self.raw.dtype not in _SAMPLE_TYPES:
            raise ValueError(f"raw dtype {self.raw.dtype} is not one of int8, int16, int32, float32")
        if not (math.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"scale must be finite and non-zero, got {self.scale}")
        if self.sample_rate is not None and not (math.isfinite(self.sample_rate) and self.sample_rate > 0):
            raise ValueError(f"sample_rate must be finite and > 0, got {self.sample_rate}")
        if self.timestamps_ns is not None and self.timestamps_ns.shape != (self.raw.shape[0],):
            raise ValueError("timestamps_ns must have one entry per sample")
        if self.lost_samples < 0:
            raise ValueError("lost_samples must be ≥ 0")
        self.raw.flags.writeable = False
        if self.timestamps_ns is not None:
            self.timestamps_ns.flags.writeable = False

    @property
    def samples(self) -> int:
        return int(self.raw.shape[0])

    @property
    def channels(self) -> int:
        return int(self.raw.shape[1])

    @property
    def sample_type(self) -> SampleType:
        return _SAMPLE_TYPES[self.raw.dtype]

    def values(self) -> npt.NDArray[np.float64]:
        """Samples in physical units, shape (samples, channels)."""
        return self.raw.astype(np.float64) * self.scale

    def to_json(self) -> dict[str, Any]:
        """``{"samples": [[…], …], "timestamps_ns": [...] or null, "units": "g"}`` (15 significant digits)."""
        return {
            "samples": [[float(f"{v:.15g}") for v in row] for row in self.values().tolist()],
            "timestamps_ns": None if self.timestamps_ns is None else [int(t) for t in self.timestamps_ns],
            "units": self.unit.symbol,
        }


def uniform_times(t0_ns: int, samples: int, sample_rate: float, offset: int) -> npt.NDArray[np.int64]:
    """``t0 + round(i · 1e9 / rate)``; ``NotificationError`` at ``offset`` if it leaves int64."""
    last = t0_ns + round((samples - 1) * 1e9 / sample_rate)
    if not (-(2**63) <= t0_ns < 2**63 and -(2**63) <= last < 2**63):
        raise NotificationError("device timestamp does not fit in int64 nanoseconds", offset)
    steps = np.rint(np.arange(samples, dtype=np.float64) * (1e9 / sample_rate)).astype(np.int64)
    return steps + np.int64(t0_ns)


@dataclass(frozen=True)
class GattWrite:
    """One write. ``reply``: the device answers on the same characteristic (an indication) and the runtime
    must wait for it and hand it back to ``DeviceProfile.decoders`` in order."""

    characteristic: str
    data: bytes
    with_response: bool = True
    reply: bool = False


@dataclass(frozen=True)
class Plan:
    """How to start and stop a set of streams: subscribe to ``notify`` (in order), then write ``start``;
    to stop, write ``stop`` then unsubscribe. ``min_mtu`` is the ATT MTU the runtime must negotiate."""

    streams: tuple[str, ...]
    notify: tuple[str, ...]
    start: tuple[GattWrite, ...]
    stop: tuple[GattWrite, ...]
    min_mtu: int = 23


@dataclass(frozen=True)
class ScanMatch:
    """How a model shows itself in advertisements, for scanning (``DeviceProfile.scan_match``).

    An advertisement matches when it lists one of ``services`` or carries manufacturer data from one of
    ``manufacturer_ids`` (Bluetooth SIG company identifiers), and — when ``name_prefixes`` are given and the
    device advertises a name — its name starts with one of them. UUIDs are lowercase 128-bit strings.
    """

    services: tuple[str, ...] = ()
    manufacturer_ids: tuple[int, ...] = ()
    name_prefixes: tuple[str, ...] = ()

    def matches(self, services: Collection[str], manufacturer_ids: Collection[int], name: str | None) -> bool:
        advertised = {u.lower() for u in services}
        by_id = any(u in advertised for u in self.services) or any(
            m in manufacturer_ids for m in self.manufacturer_ids
        )
        by_name = not self.name_prefixes or name is None or name.startswith(self.name_prefixes)
        return by_id and by_name


# -------------------------------------------------------------------------------------------- decoders

S = TypeVar("S")


class Decoder(ABC, Generic[S]):
    """Pure notification decoder for one characteristic: ``decode(data, state) -> (chunks, new_state)``."""

    streams: frozenset[str]

    @abstractmethod
    def initial_state(self) -> S: ...

    @abstractmethod
    def decode(self, data: bytes, state: S) -> tuple[tuple[Chunk, ...], S]: ...


class StatelessDecoder(Decoder[None]):
    """A decoder whose protocol needs no memory between notifications."""

    def initial_state(self) -> None:
        return None

    def decode(self, data: bytes, state: None) -> tuple[tuple[Chunk, ...], None]:
        return self.decode_one(bytes(data)), None

    @abstractmethod
    def decode_one(self, data: bytes) -> tuple[Chunk, ...]: ...


# -------------------------------------------------------------------------------------------- profiles

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class DeviceProfile(ABC):
    """A wearable model. Subclasses set the class constants and implement ``plan`` and ``decoders``."""

    NAME: ClassVar[str]
    TITLE: ClassVar[str]
    SERVICE: ClassVar[str]  # the primary service to filter scans on
    # What the device advertises when that is more than SERVICE (see ``scan_match``).
    SCAN: ClassVar[ScanMatch | None] = None
    SETTINGS: ClassVar[type[ProfileSettings]]
    STREAMS: ClassVar[tuple[StreamSpec, ...]]
    DEFAULT_STREAM: ClassVar[str]
    DEVICE_EPOCH_NS: ClassVar[int | None] = None  # Unix ns of the device clock's zero, when absolute
    # Non-sample messages ``decode_hex`` can show: kind -> parser returning a frozen dataclass.
    MESSAGES: ClassVar[Mapping[str, Callable[[bytes], object]]] = {}

    def __init__(self, settings: ProfileSettings | None = None) -> None:
        chosen = self.SETTINGS() if settings is None else settings  # type: ignore[call-arg]
        if not isinstance(chosen, self.SETTINGS):
            raise TypeError(f"{self.NAME} takes {self.SETTINGS.__name__}, not {type(chosen).__name__}")
        self.settings = chosen

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> Self:
        """Validate settings given as a mapping (strings from the command line are coerced)."""
        return cls(validate_model(cls.SETTINGS, {"type": cls.NAME, **params}, f"{cls.NAME} settings"))

    @classmethod
    def scan_match(cls) -> ScanMatch:
        """How scans recognise this model: ``SCAN`` when set, else an advertised ``SERVICE``."""
        return cls.SCAN if cls.SCAN is not None else ScanMatch(services=(cls.SERVICE.lower(),))

    @classmethod
    def spec(cls, stream: str) -> StreamSpec:
        for spec in cls.STREAMS:
            if spec.name == stream:
                return spec
        known = ", ".join(s.name for s in cls.STREAMS)
        raise ParamError(
            f"{cls.NAME} stream", [("stream", f"unknown stream {stream!r}; {cls.NAME} has {known}")]
        )

    @classmethod
    def movement_streams(cls) -> tuple[str, ...]:
        """The streams that tell whether the wearable moves, started beside the chosen ones so that the rest
        gate sees movement: its gyroscope, else its orientation (the Myo's comes from the same IMU packets).
        A profile whose hardware may lack them (the open DIY board) offers none."""
        gyro = tuple(s.name for s in cls.STREAMS if s.signal == "gyro")
        return gyro or tuple(s.name for s in cls.STREAMS if s.signal == "orientation")

    @classmethod
    def check_streams(cls, streams: Collection[str]) -> tuple[str, ...]:
        if not streams:
            raise ParamError(f"{cls.NAME} streams", [("streams", "choose at least one stream")])
        return tuple(cls.spec(s).name for s in sorted(set(streams)))

    @abstractmethod
    def plan(self, streams: Collection[str]) -> Plan:
        """The writes that start and stop ``streams`` with these settings."""

    @abstractmethod
    def decoders(self, streams: Collection[str], replies: Sequence[bytes] = ()) -> Mapping[str, Decoder[Any]]:
        """Characteristic UUID -> decoder for the notifications of ``streams``.

        ``replies`` are the device's answers to the plan's ``reply`` writes, in order."""

    @classmethod
    def debug_decoder(cls, stream: str, params: Mapping[str, str], data: bytes) -> tuple[Decoder[Any], Any]:
        """Decoder and state for decoding one notification out of context (``decode_hex``).

        By default ``params`` are this profile's settings; profiles whose frames lean on context (Polar's
        FACTOR and previous timestamp) accept those too, named as in the shared vector files."""
        profile = cls.from_params(params)
        for decoder in profile.decoders([stream]).values():
            if stream in decoder.streams:
                return decoder, decoder.initial_state()
        raise ParamError(f"{cls.NAME} stream", [("stream", f"no decoder delivers {stream!r}")])


# ---------------------------------------------------------------------------------------------- registry

_registry: dict[str, type[DeviceProfile]] | None = None


def discover(package: str = __name__) -> dict[str, type[DeviceProfile]]:
    """Import every public module of ``package`` and collect its profile classes by ``NAME``.

    Loud by design: an import failure, a module without a profile, a malformed or duplicate ``NAME`` each
    raise ``ProfileError``; nothing is skipped silently."""
    found: dict[str, type[DeviceProfile]] = {}
    for module in public_modules(package, ProfileImportError):
        module_name = module.__name__
        classes = [c for c in own_classes(module) if issubclass(c, DeviceProfile) and "NAME" in c.__dict__]
        if not classes:
            raise ProfileError(f"{module_name} defines no device profile (a class with its own NAME)")
        for cls in classes:
            name = cls.NAME
            if not isinstance(name, str) or not _NAME.match(name):
                raise ProfileError(
                    f"{cls.__qualname__} in {module_name}: NAME {name!r} is not 1-32 of a-z 0-9 -"
                )
            if name in found:
                other = found[name]
                raise DuplicateProfileError(
                    f"profile name {name!r} is claimed by {other.__module__}.{other.__qualname__} "
                    f"and {module_name}.{cls.__qualname__}"
                )
            declared = cls.SETTINGS.model_fields.get("type")
            if declared is None or declared.default != name:
                raise ProfileError(
                    f"{module_name}.{cls.__qualname__}: SETTINGS.type must default to {name!r}"
                )
            found[name] = cls
    return found


def profiles() -> Mapping[str, type[DeviceProfile]]:
    """All registered profiles by name (discovered once)."""
    global _registry
    if _registry is None:
        _registry = discover()
    return dict(_registry)


def get_profile(name: str) -> type[DeviceProfile]:
    registry = profiles()
    if name not in registry:
        raise UnknownProfile(f"unknown device profile {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]


@functools.cache
def _settings_adapter(classes: tuple[type[ProfileSettings], ...]) -> TypeAdapter[ProfileSettings]:
    union = functools.reduce(operator.or_, classes)
    adapter: TypeAdapter[ProfileSettings] = TypeAdapter(Annotated[union, Field(discriminator="type")])  # type: ignore[arg-type]
    return adapter


def validate_settings(data: Mapping[str, object]) -> ProfileSettings:
    """Validate settings for any profile, chosen by ``type``; errors name the key path."""
    classes = tuple(p.SETTINGS for _, p in sorted(profiles().items()))
    try:
        return _settings_adapter(classes).validate_python(dict(data))
    except ValidationError as exc:
        raise ParamError.from_validation("device settings", exc) from None


# ------------------------------------------------------------------------------------------ decode_hex


def parse_hex(text: str) -> bytes:
    """Hex digits, optionally separated by spaces, ``:`` or ``-``, with an optional ``0x`` prefix."""
    cleaned = re.sub(r"[\s:-]", "", text)
    cleaned = cleaned[2:] if cleaned[:2].lower() == "0x" else cleaned
    bad = re.search(r"[^0-9a-fA-F]", cleaned)
    if bad:
        raise NotificationError(f"not hexadecimal: {bad.group()!r}", bad.start() // 2)
    if len(cleaned) % 2:
        raise NotificationError("odd number of hex digits", len(cleaned) // 2)
    return bytes.fromhex(cleaned)


def jsonable(value: object) -> object:
    """Dataclasses, enums, bytes and tuples as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str):
        return [jsonable(v) for v in value]
    return value


def decode_hex(
    profile: str, hex: str, stream: str | None = None, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Decode one notification given as hex, out of context, for people debugging a device.

    Returns ``{"samples": [[…], …], "timestamps_ns": [...] | None, "units": "g"}`` for a sample
    stream (``stream`` defaults to the profile's main one). ``timestamps_ns`` is ``None`` when the device
    sends no clock. When ``stream`` names one of the profile's message kinds (``MESSAGES``, e.g. Myo's
    ``classifier``, Polar's ``pmd-control``) it returns ``{"message": {...}}`` instead. ``params`` are
    strings named as in the shared vector files (Polar ``factor``, ``previous_timestamp_ns``,
    ``sample_rate_hz``; MetaWear ``range_g``, ``chip``; …). Raises ``UnknownProfile``, ``ParamError`` or
    ``NotificationError`` (all ``ValueError``)."""
    cls = get_profile(profile)
    data = parse_hex(hex)
    name = stream or cls.DEFAULT_STREAM
    if name in cls.MESSAGES:
        if params:
            raise ParamError(f"{profile} {name}", [(k, "messages take no parameters") for k in params])
        return {"message": jsonable(cls.MESSAGES[name](data))}
    decoder, state = cls.debug_decoder(name, dict(params or {}), data)
    chunks, _ = decoder.decode(data, state)
    for chunk in chunks:
        if chunk.stream == name:
            return chunk.to_json()
    raise NotificationError(f"this notification carries no {name!r} samples", 0)
