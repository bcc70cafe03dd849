"""Emulated BLE wearables: Bumble GATT peripherals that behave like the devices twitchwatch supports.

Public API (stable; extended only by keyword arguments with defaults)::

    from twitchwatch.collector.emulate import EmulatedDevice, emulate, emulated_profiles
    from twitchwatch.collector.emulate.link import VirtualLink, RadioHub, open_hci_device

    async with VirtualLink() as link:
        async with await emulate("polar-h10", link, muscles=("calf_left",), rate_per_min=10.0,
                                 seed=0, speed=1.0, address=None, name=None, truth=None) as dev:
            dev.address            # "C0:..": the random static address it advertises with
            dev.name               # "Polar H10 1A2B3C4D"
            dev.device             # the bumble.device.Device (peripheral side)
            await dev.drop_link()  # disconnect the current central, keep advertising
            await dev.set_silent(True)   # no control-point replies, no notifications; still advertising
            dev.notifications_sent # data notifications actually sent to a subscribed central
            await dev.connected.wait() / dev.disconnected.wait()   # asyncio.Events of the current link
        central = await link.new_device(name="central")   # a powered-on bumble Device on the same link

``emulate(profile, link=None, transport=None, ...)``: with ``link`` the device gets its own controller on that
``VirtualLink``; with ``transport`` (a Bumble transport name such as ``usb:0`` or
``tcp-client:127.0.0.1:9001``) it drives that controller; with neither it makes a private ``VirtualLink``
(closed with the device). The returned ``EmulatedDevice`` is already advertising; ``async with`` (or
``await dev.close()``) stops it. ``emulate`` also takes ``recording=`` (a ``SampleSource`` factory, see
``collector.emulate.source``) instead of the generator, and ``compressed=True`` for Polar H10 delta frames.

Samples come from the synthetic generator (``collector.synth``) for ``muscles`` at ``rate_per_min`` twitches
a minute; each twitch is handed to ``truth`` as a ``TruthEvent`` once its samples were notified (times in
Unix ns of the device clock, which is the wall clock at the stream's start advanced at ``speed``×).
``movement=Movement(posture_changes=…, walking=…, limb_jerks=…)`` (per minute; default: none) makes the
wearer move: the device's accelerometer, gyroscope and orientation all show it
(``collector.emulate.motion``), and each movement is handed to ``truth`` too (kind ``sustained`` with detail
``posture``/``walking``, or ``myoclonic_jerk`` with detail ``limb jerk``; amplitude = peak rate in °/s).

Device modules live in ``collector/emulate/devices/`` and are found by scanning that package (one
``Peripheral`` subclass per profile, keyed by ``PROFILE``); see ``docs/ble-emulation.md``.
"""

from __future__ import annotations

import contextlib
import zlib
from asyncio import Event
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from bumble.device import Device

from twitchwatch.collector.emulate.link import (
    HciDevice,
    LinkError,
    VirtualLink,
    open_hci_device,
    random_static_address,
)
from twitchwatch.collector.emulate.motion import MotionTimeline, Movement
from twitchwatch.collector.emulate.peripheral import EmulationOptions, Peripheral, SourceFactory
from twitchwatch.collector.emulate.source import (
    EmulationError,
    MovingAccSource,
    SampleSource,
    SynthSource,
    motion_source,
)
from twitchwatch.collector.plugins import own_classes, public_modules
from twitchwatch.collector.synth import Signal, TruthEvent

__all__ = [
    "EmulatedDevice",
    "EmulationError",
    "LinkError",
    "Movement",
    "TruthEvent",
    "VirtualLink",
    "emulate",
    "emulated_profiles",
]

_registry: dict[str, type[Peripheral]] | None = None


def emulated_profiles() -> Mapping[str, type[Peripheral]]:
    """Every emulated device by profile name (found by scanning ``collector.emulate.devices``)."""
    global _registry
    if _registry is None:
        found: dict[str, type[Peripheral]] = {}
        for module in public_modules("twitchwatch.collector.emulate.devices", _import_failed):
            for obj in own_classes(module):
                if issubclass(obj, Peripheral) and "PROFILE" in obj.__dict__:
                    if obj.PROFILE in found:
                        raise EmulationError(f"two emulators claim profile {obj.PROFILE!r}")
                    found[obj.PROFILE] = obj
        _registry = found
    return dict(_registry)


def _import_failed(module: str, exc: Exception) -> Exception:
    return EmulationError(f"the emulator module {module} cannot be imported: {exc!r}")


def _serial(address: str) -> str:
    return f"{zlib.crc32(address.encode()):08X}"


class EmulatedDevice:
    """One running emulated wearable (advertising from creation until ``close``)."""

    def __init__(
        self,
        peripheral: Peripheral,
        owned_link: VirtualLink | None = None,
        hci: HciDevice | None = None,
        link: VirtualLink | None = None,
    ) -> None:
        self.peripheral = peripheral
        self.device: Device = peripheral.device
        self.address = str(peripheral.device.random_address).removesuffix("/P")
        self.name = peripheral.device.name
        self.profile = peripheral.PROFILE
        self._owned_link = owned_link
        self._hci = hci
        self._link = link or owned_link
        self._closed = False

    @property
    def notifications_sent(self) -> int:
        return self.peripheral.notifications_sent

    @property
    def connected(self) -> Event:
        return self.peripheral.connected

    @property
    def disconnected(self) -> Event:
        return self.peripheral.disconnected

    @property
    def silent(self) -> bool:
        return self.peripheral.silent

    async def drop_link(self) -> None:
        """Disconnect the current central (it may reconnect: the device keeps advertising)."""
        await self.peripheral.drop_link()

    async def set_silent(self, silent: bool) -> None:
        """Stop (or resume) answering the control point and notifying; advertising goes on."""
        self.peripheral.silent = silent

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.peripheral.close()
        if self._hci is not None:
            await self._hci.close()
        elif self._link is not None:
            controller = self.device.host.controller
            with contextlib.suppress(KeyError):  # leave the link: scanners stop seeing it
                self._link.link.remove_controller(controller)  # type: ignore[arg-type]
        if self._owned_link is not None:
            await self._owned_link.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def synth_sources(options: EmulationOptions) -> SourceFactory:
    """Sources from the generator; each started stream gets its own seed (restart n → a new segment). The
    device's movement is one timeline for all its streams, starting with its first stream."""
    starts = 0
    timeline: MotionTimeline | None = None

    def make(signal: str, rate: float, channels: int, start_ns: int) -> SampleSource:
        nonlocal starts, timeline
        seed = options.seed * 1000 + starts
        starts += 1
        if timeline is None:
            muscle = options.muscles[0] if options.muscles else "unmapped"  # none: SynthSource says so
            timeline = MotionTimeline(options.movement, options.seed, start_ns, muscle)
        if signal in ("gyro", "orientation"):
            return motion_source(signal, timeline, rate, channels, start_ns, seed)
        if signal not in ("emg", "acc"):
            raise EmulationError(f"the generator makes emg, acc, gyro or orientation, not {signal!r}")
        kind: Signal = "emg" if signal == "emg" else "acc"
        # An accelerometer sits on one muscle: the first (an armband's EMG channels may cover several).
        muscles = options.muscles[:1] if kind == "acc" else options.muscles
        source = SynthSource(kind, rate, channels, muscles, options.rate_per_min, seed, start_ns)
        return MovingAccSource(source, timeline, start_ns) if kind == "acc" else source

    return make


async def emulate(
    profile: str,
    link: VirtualLink | None = None,
    *,
    transport: str | None = None,
    muscles: Sequence[str] = ("calf_left",),
    rate_per_min: float = 10.0,
    seed: int = 0,
    speed: float = 1.0,
    address: str | None = None,
    name: str | None = None,
    truth: Callable[[TruthEvent], None] | None = None,
    recording: SourceFactory | None = None,
    compressed: bool = False,
    battery_percent: int = 87,
    movement: Movement | None = None,
) -> EmulatedDevice:
    """Start an emulated ``profile`` device, advertising; see the module docstring."""
    registry = emulated_profiles()
    if profile not in registry:
        raise EmulationError(f"no emulation for profile {profile!r}; emulated: {', '.join(sorted(registry))}")
    if link is not None and transport is not None:
        raise EmulationError("give a virtual link or a transport, not both")
    cls = registry[profile]
    options = EmulationOptions(
        tuple(muscles), rate_per_min, seed, speed, battery_percent, compressed, movement or Movement()
    )
    # Deterministic per (profile, seed), so runs are repeatable; several on one link get distinct ones.
    chosen = address or random_static_address(zlib.crc32(f"{profile}/{seed}".encode()) | (seed << 32))
    if address is None and link is not None:
        chosen = link.unique_address(chosen)
    serial = _serial(chosen)
    label = name or cls.DEFAULT_NAME.format(serial=serial, short=serial[-4:])
    owned: VirtualLink | None = None
    hci: HciDevice | None = None
    if transport is not None:
        hci = await open_hci_device(transport, chosen, label)
        device = hci.device
    else:
        if link is None:
            owned = link = VirtualLink()
        device = await link.new_device(chosen, label)
    try:
        peripheral = cls(device, options, recording or synth_sources(options), truth)
        peripheral.install()
        await peripheral.start_advertising()
    except BaseException:
        if hci is not None:
            await hci.close()
        if owned is not None:
            await owned.close()
        raise
    return EmulatedDevice(peripheral, owned, hci, link)
