"""``twitchwatch collect``: every configured wearable streamed to MQTT, each kept alive on its own.

Ownership: ``Collector.run`` opens one publisher per device (retained status, last-will offline) and owns
one ``asyncio.TaskGroup`` with one task per device. A device task loops: find it by scanning, connect
(bleak-retry-connector), run a ``Connection`` until the link drops, then back off and go again. Failures of
one device are logged with what to do and retried; they never end the others. Each publisher
(``collector.outbox.LivePublisher``) owns its MQTT connection and its sender task: a broker that goes away
after the start costs nothing while it comes back within ``broker_buffer_s``. ``stop()`` (SIGINT/SIGTERM
in the CLI) makes every connection send its stop writes, unsubscribe and disconnect; then the publishers
deliver what is queued, mark every device offline (retained) and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bleak.exc import BleakError

from twitchwatch.collector.ble.connection import Connection, ConnectionStats, Events
from twitchwatch.collector.ble.errors import DeviceStepError, Disconnected
from twitchwatch.collector.ble.framing import Framer
from twitchwatch.collector.ble.scan import find
from twitchwatch.collector.ble.target import BleBackend, DeviceTarget, Timing
from twitchwatch.collector.frames import Frame
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.outbox import LivePublisher, opened
from twitchwatch.collector.status import DeviceStatus, StreamInfo

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class DeviceStats:
    connects: int = 0
    drops: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # step → count
    last_error: str = ""
    battery_percent: int | None = None
    frames_published: int = 0
    connection: ConnectionStats = field(default_factory=ConnectionStats)  # of the latest connection


class DeviceRunner:
    """One device's endless find → connect → stream → back off loop."""

    def __init__(
        self,
        target: DeviceTarget,
        publisher: LivePublisher,
        backend: BleBackend,
        timing: Timing,
        connect_lock: asyncio.Lock,
        stop: asyncio.Event,
        session_id: str,
    ) -> None:
        self.target = target
        self.publisher = publisher
        self.backend = backend
        self.timing = timing
        self.connect_lock = connect_lock
        self.stop = stop
        self.session_id = session_id
        self.framer = Framer(type(target.profile))
        self.stats = DeviceStats()
        self.online = asyncio.Event()  # set while streaming; tests and progress output wait on it

    async def run(self) -> None:
        backoff = self.timing.backoff_initial_s
        while not self.stop.is_set():
            connection: Connection | None = None
            try:
                device = await self._unless_stopped(find(self.target, self.timing.scan_s, self.backend))
                if self.stop.is_set():
                    break
                if device is None:
                    raise DeviceStepError(
                        self.target.label,
                        "scan",
                        f"not seen in {self.timing.scan_s:g} s of scanning",
                        "Is it switched on, charged, within a few metres, and not connected to a phone "
                        "or another app? twitchwatch keeps looking",
                    )
                connection = self._connection()
                await connection.run(device)
            except DeviceStepError as exc:
                self._failed(exc.step, str(exc))
                log.warning("%s. Next try in %.0f s.", exc, backoff)
            except Disconnected as exc:
                self.stats.drops += 1
                log.warning("%s: %s; reconnecting", self.target.label, exc)
            except (BleakError, OSError) as exc:
                self._failed("ble", f"{type(exc).__name__}: {exc}")
                log.warning("%s: Bluetooth error: %s. Next try in %.0f s.", self.target.label, exc, backoff)
            except Exception as exc:
                # An error no layer below names (a platform backend's own exception, a profile bug):
                # one device must not end the others, so it is logged in full and retried like the rest.
                self._failed("unexpected", f"{type(exc).__name__}: {exc}")
                log.exception("%s: unexpected error; next try in %.0f s", self.target.label, backoff)
            finally:
                await self._went_offline()
            if self.stop.is_set():
                break
            if connection is not None and connection.streamed:
                backoff = self.timing.backoff_initial_s  # it worked: a drop retries promptly
            await self._sleep(backoff)
            if connection is None or not connection.streamed:
                backoff = min(backoff * 2, self.timing.backoff_max_s)

    def _failed(self, step: str, message: str) -> None:
        self.stats.failures[step] = self.stats.failures.get(step, 0) + 1
        self.stats.last_error = message

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T | None:
        """``work``'s result, or None at once when stop is requested first (a scan can take ``scan_s``)."""
        task = asyncio.create_task(work, name=f"{self.target.name}-find")
        stopping = asyncio.create_task(self.stop.wait(), name=f"{self.target.name}-find-stop")
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            return await task
        return None

    def _connection(self) -> Connection:
        self.stats.connects += 1
        self.framer.mark_reconnect()
        events = Events(self._frame, self._online, self._battery, self._shape_changed)
        connection = Connection(
            self.target, self.backend, self.timing, self.framer, events, self.connect_lock, self.stop
        )
        self.stats.connection = connection.stats
        return connection

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    # ---- events from the connection ------------------------------------------------------------------
    async def _frame(self, stream: str, frame: Frame) -> None:
        await self.publisher.publish(stream, frame)
        self.stats.frames_published += 1

    async def _online(self, battery: int | None) -> None:
        self.stats.battery_percent = battery
        self.online.set()
        await self.publisher.set_status(self.status())

    async def _battery(self, level: int) -> None:
        self.stats.battery_percent = level
        await self.publisher.set_status(self.status())

    async def _shape_changed(self) -> None:
        await self.publisher.set_status(self.status())

    async def _went_offline(self) -> None:
        if self.online.is_set():
            self.online.clear()
            await self.publisher.set_status(self.status("offline"))

    def status(self, state: str = "online") -> DeviceStatus:
        if state == "offline":
            return DeviceStatus.offline(self.target.profile.NAME, "live", self.session_id)
        return DeviceStatus(
            "online",
            self.target.profile.NAME,
            "live",
            self.session_id,
            self.stats.battery_percent,
            {name: info for name in self.target.streams if (info := self._stream_info(name)) is not None},
        )

    def _stream_info(self, stream: str) -> StreamInfo | None:
        """What the status says of a stream, once its first frame has told its rate and channels (the
        status is sent again then); before that nothing: a rate of 0 would make the worker refuse the
        whole status, the other streams' muscles and the battery with it."""
        spec = self.target.profile.spec(stream)
        shape = self.framer.shape(stream)
        if shape is None:
            return None
        muscles = tuple(self.target.muscle_for(stream, ch) or "" for ch in range(shape.channels))
        return StreamInfo(self.framer.stream_id(stream), spec.signal, shape.sample_rate, muscles)


class Collector:
    """All configured devices at once. ``await run()``; ``stop()`` from a signal handler ends it cleanly."""

    def __init__(
        self,
        targets: Sequence[DeviceTarget],
        mqtt: MqttTarget,
        user: str,
        *,
        backend: BleBackend | None = None,
        timing: Timing | None = None,
    ) -> None:
        if not targets:
            raise ValueError("no devices to collect from: add [devices.NAME] entries with a profile")
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"device names must be unique, got {names}")
        self.targets = tuple(targets)
        self.mqtt = mqtt
        self.user = user
        self.backend = backend or BleBackend()
        self.timing = timing or Timing()
        self._stop = asyncio.Event()
        self.runners: dict[str, DeviceRunner] = {}
        self.started = asyncio.Event()  # publishers open, runners made

    def stop(self) -> None:
        self._stop.set()

    async def run_until(self, stop: asyncio.Event) -> None:
        """``run`` until ``stop`` is set (the CLI's signal handlers set it), then shut down cleanly."""

        async def relay() -> None:
            await stop.wait()
            self.stop()

        relay_task = asyncio.create_task(relay(), name="collect-stop-relay")
        try:
            await self.run()
        finally:
            relay_task.cancel()

    async def run(self) -> None:
        connect_lock = asyncio.Lock()  # one connection attempt at a time per adapter, as controllers need
        run_ids = [uuid.uuid4().hex[:12] for _ in self.targets]
        publishers = [
            LivePublisher(
                self.mqtt,
                self.user,
                target.name,
                DeviceStatus.offline(target.profile.NAME, "live", session_id),
                buffer_s=self.timing.broker_buffer_s,
            )
            for target, session_id in zip(self.targets, run_ids, strict=True)
        ]
        async with opened(publishers):  # a broker wrong from the start fails here, before any device
            for target, publisher, session_id in zip(self.targets, publishers, run_ids, strict=True):
                self.runners[target.name] = DeviceRunner(
                    target, publisher, self.backend, self.timing, connect_lock, self._stop, session_id
                )
            log.info("collecting from %s", ", ".join(t.label for t in self.targets))
            self.started.set()
            async with asyncio.TaskGroup() as tg:
                for name, runner in self.runners.items():
                    tg.create_task(runner.run(), name=f"collect-{name}")
