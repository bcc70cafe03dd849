"""The machinery every emulated wearable shares: GATT plumbing, streams paced in real time, silence.

A device module (``collector/emulate/devices/*.py``) subclasses ``Peripheral``: it builds its GATT services
and advertising data and answers its control protocol by calling ``start_stream`` / ``stop_stream``. A
stream pulls blocks from a ``SampleSource``, encodes each block into one or more notifications (the
device's own bytes, from the module's pure encoder) and sends them paced at the sample rate × ``speed``.

Like the real devices, a peripheral stops every measurement when the central disconnects; a new
connection must start them again. ``silent`` models a device that stopped answering: control-point
writes get no reply and nothing is notified, while it keeps advertising and accepting connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from twitchwatch.collector.emulate.motion import Movement
from twitchwatch.collector.emulate.source import CombinedSource, SampleSource
from twitchwatch.collector.synth import TruthEvent

log = logging.getLogger(__name__)

BATTERY_SERVICE: Final = "180F"
BATTERY_LEVEL: Final = "2A19"
DEVICE_INFORMATION_SERVICE: Final = "180A"
MANUFACTURER_NAME: Final = "2A29"
MODEL_NUMBER: Final = "2A24"

# AD types (Core Supplement, Part A)
AD_FLAGS: Final = 0x01
AD_INCOMPLETE_16: Final = 0x02
AD_COMPLETE_16: Final = 0x03
AD_INCOMPLETE_128: Final = 0x06
AD_COMPLETE_128: Final = 0x07
AD_COMPLETE_NAME: Final = 0x09
AD_MANUFACTURER: Final = 0xFF
LE_GENERAL_DISCOVERABLE_NO_BREDR: Final = 0x06
MAX_AD_BYTES: Final = 31


def ad_structure(ad_type: int, payload: bytes) -> bytes:
    return bytes([len(payload) + 1, ad_type]) + payload


def uuid128_le(uuid: str) -> bytes:
    """A 128-bit UUID as advertising data carries it (little-endian)."""
    return bytes.fromhex(uuid.replace("-", ""))[::-1]


def advertising_payload(*structures: bytes) -> bytes:
    payload = b"".join(structures)
    if len(payload) > MAX_AD_BYTES:
        raise ValueError(f"advertising payload of {len(payload)} bytes exceeds {MAX_AD_BYTES}")
    return payload


@dataclass(frozen=True)
class EmulationOptions:
    """What every emulated device is told: the sample source's parameters and the pace."""

    muscles: tuple[str, ...] = ("calf_left",)
    rate_per_min: float = 10.0
    seed: int = 0
    speed: float = 1.0
    battery_percent: int = 87
    compressed: bool = False  # devices that can send delta-compressed frames do (Polar H10: 0x81)
    # How the wearer moves (the generator's accelerometer, gyroscope and orientation show it).
    movement: Movement = field(default_factory=Movement)

    def __post_init__(self) -> None:
        if not (self.speed > 0):
            raise ValueError("speed must be > 0")
        if not 0 <= self.battery_percent <= 100:
            raise ValueError("battery_percent must be 0..100")


Notification = tuple[Characteristic[bytes], bytes]
Encoder = Callable[[Any, int], Sequence[Notification]]  # (samples block, index of its first sample)
SourceFactory = Callable[[str, float, int, int], SampleSource]  # (signal, rate, channels, start_ns)
TruthSink = Callable[[TruthEvent], None]


@dataclass
class Stream:
    """One running measurement: ``encode(block, first_index)`` → notifications for a block of
    ``block_samples`` samples, sent every ``block_samples / sample_rate / speed`` seconds."""

    name: str
    source: SampleSource
    block_samples: int
    encode: Encoder
    start_ns: int  # device-clock time of sample 0, Unix ns


class Peripheral(ABC):
    """One emulated wearable on one Bumble ``Device``. Subclasses set ``PROFILE`` and ``DEFAULT_NAME``."""

    PROFILE: ClassVar[str]
    DEFAULT_NAME: ClassVar[str]
    MANUFACTURER: ClassVar[str] = ""
    MODEL: ClassVar[str] = ""
    HAS_BATTERY: ClassVar[bool] = True

    def __init__(
        self,
        device: Device,
        options: EmulationOptions,
        sources: SourceFactory,
        truth: TruthSink | None = None,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        self.device = device
        self.options = options
        self.sources = sources
        self.truth = truth
        self.clock_ns = clock_ns or _wall_clock_ns
        self.silent = False
        self.notifications_sent = 0
        self.connection: Connection | None = None
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnected.set()

    # ------------------------------------------------------------------ what a device module provides

    @abstractmethod
    def services(self) -> list[Service]:
        """The device's own GATT services (Battery and Device Information are added by ``install``)."""

    @abstractmethod
    def advertising(self) -> tuple[bytes, bytes]:
        """(advertising data, scan response data) as the real device sends them."""

    # --------------------------------------------------------------------------------- lifecycle

    def install(self) -> None:
        services = self.services()
        if self.MANUFACTURER or self.MODEL:
            services.append(self._device_information())
        if self.HAS_BATTERY:
            services.append(self._battery())
        self.device.add_services(services)
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)

    async def start_advertising(self) -> None:
        data, scan_response = self.advertising()
        await self.device.start_advertising(
            auto_restart=True, advertising_data=data, scan_response_data=scan_response
        )

    async def close(self) -> None:
        """Stop streams and owned tasks, disconnect, stop advertising."""
        self.stop_all_streams()
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.device.stop_advertising()
        await self.drop_link()

    async def drop_link(self) -> None:
        connection = self.connection
        if connection is None:
            return
        waiter = self.disconnected
        with contextlib.suppress(Exception):  # already gone is what we wanted
            await connection.disconnect()
        await waiter.wait()

    # ------------------------------------------------------------------------------- connections

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        self.disconnected = asyncio.Event()
        self.connected.set()
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(connection))

    def _on_disconnection(self, connection: Connection) -> None:
        if self.connection is connection:
            self.connection = None
            self.connected = asyncio.Event()
        self.stop_all_streams()  # the real devices end every measurement with the link
        self.disconnected.set()

    def att_mtu(self) -> int:
        return self.connection.att_mtu if self.connection is not None else 23

    # -------------------------------------------------------------------------------------- I/O

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task this peripheral owns (cancelled by ``close``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s emulation task failed", self.PROFILE, exc_info=task.exception())

    def subscribed(self, characteristic: Characteristic[bytes], indicate: bool = False) -> bool:
        connection = self.connection
        if connection is None:
            return False
        cccd = self.device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
        if not cccd or len(cccd) != 2:
            return False
        return bool(cccd[0] & (0x02 if indicate else 0x01))

    async def notify(self, characteristic: Characteristic[bytes], payload: bytes) -> bool:
        """Notify the connected central if it subscribed; ``False`` when nothing was sent."""
        connection = self.connection
        if self.silent or connection is None or not self.subscribed(characteristic):
            return False
        if len(payload) > connection.att_mtu - 3:
            raise ValueError(
                f"{self.PROFILE}: {len(payload)}-byte notification exceeds the ATT MTU {connection.att_mtu}"
            )
        await self.device.notify_subscriber(connection, characteristic, payload)
        self.notifications_sent += 1
        return True

    async def indicate(self, characteristic: Characteristic[bytes], payload: bytes) -> bool:
        connection = self.connection
        if self.silent or connection is None or not self.subscribed(characteristic, indicate=True):
            return False
        await self.device.indicate_subscriber(connection, characteristic, payload)
        return True

    # ------------------------------------------------------------------------------------ streams

    def streaming(self, name: str) -> bool:
        return name in self._streams

    def start_stream(self, stream: Stream) -> None:
        self.stop_stream(stream.name)
        task = asyncio.get_running_loop().create_task(self._run_stream(stream), name=stream.name)
        self._streams[stream.name] = task
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._stream_done(stream.name, done))

    def _stream_done(self, name: str, task: asyncio.Task[None]) -> None:
        if self._streams.get(name) is task:  # ended by itself (source exhausted, or failed)
            del self._streams[name]
        self._task_done(task)

    def stop_stream(self, name: str) -> None:
        task = self._streams.pop(name, None)
        if task is not None:
            task.cancel()

    def stop_all_streams(self) -> None:
        for name in list(self._streams):
            self.stop_stream(name)

    async def _run_stream(self, stream: Stream) -> None:
        loop = asyncio.get_running_loop()
        rate = stream.source.sample_rate
        speed = self.options.speed
        anchor = loop.time()
        sent = 0
        while True:
            block = stream.source.read(stream.block_samples)
            if len(block) == 0:
                log.info("%s: %s source exhausted", self.PROFILE, stream.name)
                return
            for characteristic, payload in stream.encode(block, sent):
                await self.notify(characteristic, payload)
            if self.truth is not None:
                for event in stream.source.take_truth():
                    self.truth(event)
            sent += len(block)
            await asyncio.sleep(max(anchor + sent / rate / speed - loop.time(), 0.0))

    def new_source(self, signal: str, rate: float, channels: int) -> tuple[SampleSource, int]:
        """A fresh source for a starting stream and the device-clock time of its first sample."""
        start_ns = self.clock_ns()
        return self.sources(signal, rate, channels, start_ns), start_ns

    def new_sources(self, parts: Sequence[tuple[str, int]], rate: float) -> tuple[SampleSource, int]:
        """One source of several quantities sampled at the same instants (``(signal, channels)`` each,
        channels side by side in that order): what one IMU notification carries."""
        start_ns = self.clock_ns()
        sources = [self.sources(signal, rate, channels, start_ns) for signal, channels in parts]
        return (sources[0] if len(sources) == 1 else CombinedSource(sources)), start_ns

    # ---------------------------------------------------------------------------- common services

    def _battery(self) -> Service:
        level = Characteristic(
            BATTERY_LEVEL,
            Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
            Characteristic.READABLE,
            bytes([self.options.battery_percent]),
        )
        return Service(BATTERY_SERVICE, [level])

    def _device_information(self) -> Service:
        chars = [
            Characteristic(uuid, Characteristic.Properties.READ, Characteristic.READABLE, text.encode())
            for uuid, text in ((MANUFACTURER_NAME, self.MANUFACTURER), (MODEL_NUMBER, self.MODEL))
            if text
        ]
        return Service(DEVICE_INFORMATION_SERVICE, chars)

    def writable(
        self,
        uuid: str,
        on_write: Callable[[bytes], None],
        properties: Characteristic.Properties,
        read: Callable[[], bytes] | None = None,
    ) -> Characteristic[bytes]:
        """A characteristic whose writes go to ``on_write`` (ignored while silent)."""

        def write(connection: Connection, value: bytes) -> None:
            if not self.silent:
                on_write(bytes(value))

        def read_value(connection: Connection) -> bytes:
            return read() if read is not None else b""

        permissions = Characteristic.WRITEABLE | (Characteristic.READABLE if read is not None else 0)
        return Characteristic(
            uuid, properties, permissions, CharacteristicValue(read=read_value, write=write)
        )

    @staticmethod
    def notifying(uuid: str, extra: Characteristic.Properties | None = None) -> Characteristic[bytes]:
        properties = Characteristic.Properties.NOTIFY | (extra or Characteristic.Properties(0))
        return Characteristic(uuid, properties, Characteristic.READABLE, b"")


def _wall_clock_ns() -> int:
    return time.time_ns()
