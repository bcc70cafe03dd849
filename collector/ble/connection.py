"""One connection to one wearable: connect, check, start, stream until the link drops or we stop, stop.

Notification callbacks only enqueue ``(characteristic, bytes, arrival time)``; the disconnect callback
and the stop request enqueue a marker. So the connection's one reader awaits a single queue, in order, and
never misses a disconnect that happens between two notifications.

Coalescing (``collector.ble.coalesce``, ``Timing.frame_span_s``): each chunk is placed in time by the framer
as it arrives and waits in its stream's pending run until the run is full, breaks (a gap, a shape or time
change) or has waited the span. The span's timer only enqueues a ``Tick`` too, so the same reader flushes
due runs in order with the notifications. Everything pending is published before a status change goes out
and when the connection ends (stop, drop); from the stop on, each chunk goes out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from twitchwatch.collector.ble.coalesce import Coalescer, Run
from twitchwatch.collector.ble.errors import DeviceStepError, Disconnected
from twitchwatch.collector.ble.framing import Framer
from twitchwatch.collector.ble.target import BleBackend, DeviceTarget, Timing
from twitchwatch.collector.devices import ControlError, Decoder, NotificationError, Plan
from twitchwatch.collector.frames import Frame
from twitchwatch.collector.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

BATTERY_LEVEL: Final = "00002a19-0000-1000-8000-00805f9b34fb"


def battery_percent(data: bytes | bytearray) -> int | None:
    """The Battery Level characteristic's one byte, 0-100 %; anything else (empty, 101-255, which the
    Bluetooth SIG reserves) is unknown: a status carrying it would be refused by the worker whole."""
    return data[0] if data and data[0] <= 100 else None


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


DISCONNECTED: Final = _Marker("DISCONNECTED")
STOP: Final = _Marker("STOP")


@dataclass(frozen=True)
class Note:
    characteristic: str
    data: bytes
    received_ns: int


@dataclass(frozen=True)
class Tick:
    """The pending run due first has waited the span (``Coalescer.deadline_ns``) at ``due_ns``."""

    due_ns: int


Item = Note | Tick | _Marker


class _Stopping(Exception):
    """Stop was requested while the connection was still starting."""


@dataclass
class ConnectionStats:
    notifications: int = 0
    bad_notifications: int = 0
    unexpected: int = 0  # notifications on a characteristic without decoder (e.g. control point chatter)
    other_streams: int = 0  # chunks of streams the config did not ask for
    repeated: int = 0  # chunks whose device frame counter did not advance (delivered twice, or late)
    frames: int = 0
    span_flushes: int = 0  # frames sent because their first sample had waited the span
    end_flushes: int = 0  # frames sent as the connection ended (stop, drop) with samples pending
    silences: int = 0  # connections dropped because a connected device sent no data for ``silence_s``


@dataclass(frozen=True)
class Events:
    """What a connection tells its owner: frames to publish, and status changes."""

    frame: Callable[[str, Frame], Awaitable[None]]
    online: Callable[[int | None], Awaitable[None]]
    battery: Callable[[int], Awaitable[None]]
    shape_changed: Callable[[], Awaitable[None]]


@dataclass
class Connection:
    target: DeviceTarget
    backend: BleBackend
    timing: Timing
    framer: Framer
    events: Events
    connect_lock: asyncio.Lock
    stop: asyncio.Event
    stats: ConnectionStats = field(default_factory=ConnectionStats)
    streamed: bool = False
    _queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    _decoders: Mapping[str, Decoder[Any]] = field(default_factory=dict)
    _states: dict[str, Any] = field(default_factory=dict)
    _rlog: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log))
    _coalescer: Coalescer = field(init=False)
    _timer: asyncio.TimerHandle | None = None
    _timer_due_ns: int | None = None
    _heard: float = 0.0  # event-loop time of the latest data notification (``Timing.silence_s``)

    def __post_init__(self) -> None:
        self._coalescer = Coalescer(
            round(self.timing.frame_span_s * 1e9), round(self.timing.motion_frame_span_s * 1e9)
        )

    # ---- life cycle -------------------------------------------------------------------------------
    async def run(self, device: BLEDevice) -> None:
        """Returns when stopped; raises ``Disconnected`` or ``DeviceStepError`` otherwise."""
        client = await self._connect_unless_stopped(device)
        if client is None:
            return
        watcher = asyncio.create_task(self.stop.wait(), name=f"{self.target.name}-stop-watch")
        watcher.add_done_callback(self._stop_requested)
        plan = self.target.profile.plan(self.target.streams)
        started = False
        try:
            battery = await self._battery(client)
            await self._check_mtu(client, plan)
            self._decoders, early = await self._start(client, plan)
            self._states = {uuid: d.initial_state() for uuid, d in self._decoders.items()}
            started = True
            await self.events.online(battery)
            log.info("%s streaming %s", self.target.label, ", ".join(plan.streams))
            for note in early:
                await self._handle(note)
            await self._read()
        except _Stopping:
            return
        finally:
            watcher.cancel()
            await self._close(client, plan if started else None)
            self._disarm()

    async def _connect_unless_stopped(self, device: BLEDevice) -> BleakClient | None:
        """Connect, or give up at once when stop is requested (a connect can take ``connect_s``)."""
        connecting = asyncio.create_task(self._connect(device), name=f"{self.target.name}-connect")
        stopping = asyncio.create_task(self.stop.wait(), name=f"{self.target.name}-connect-stop")
        try:
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not connecting.done():
                connecting.cancel()
        try:
            client = await connecting
        except asyncio.CancelledError:
            if self.stop.is_set():
                return None
            raise
        if self.stop.is_set():
            await self._close(client, None)
            return None
        return client

    def _stop_requested(self, watcher: asyncio.Task[Any]) -> None:
        if not watcher.cancelled():
            self._queue.put_nowait(STOP)

    def _on_notify(self, uuid: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        queue = self._queue

        def enqueue(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            queue.put_nowait(Note(uuid, bytes(data), time.time_ns()))

        return enqueue

    async def _connect(self, device: BLEDevice) -> BleakClient:
        t = self.timing
        try:
            async with self.connect_lock, asyncio.timeout(t.connect_s):
                client = await establish_connection(
                    BleakClient,
                    device,
                    self.target.name,
                    disconnected_callback=lambda _c: self._queue.put_nowait(DISCONNECTED),
                    max_attempts=t.connect_attempts,
                    backend=self.backend.client,
                    timeout=t.connect_s,
                )
        except TimeoutError:
            raise DeviceStepError(
                self.target.label,
                "connect",
                f"no connection within {t.connect_s:g} s",
                "Is it switched on, charged and within a few metres, and not connected to a phone or "
                "another app? Switching it off and on often helps; twitchwatch keeps trying",
            ) from None
        except BleakError as exc:
            raise DeviceStepError(
                self.target.label,
                "connect",
                str(exc),
                "Move it closer or switch it off and on; twitchwatch keeps trying",
            ) from None
        return client

    # ---- start ------------------------------------------------------------------------------------
    def _check_services(self, client: BleakClient, plan: Plan) -> None:
        wanted = {*plan.notify, *(w.characteristic for w in (*plan.start, *plan.stop))}
        missing = sorted(u for u in wanted if client.services.get_characteristic(u) is None)
        if missing:
            raise DeviceStepError(
                self.target.label,
                "services",
                f"the device has no characteristic {', '.join(missing)} of {self.target.profile.TITLE}",
                f"Is '{self.target.profile.NAME}' the right profile for it? 'twitchwatch devices scan' "
                "shows what each nearby device looks like",
            )

    async def _check_mtu(self, client: BleakClient, plan: Plan) -> None:
        """The OS runs the ATT MTU exchange itself (BlueZ, CoreBluetooth, WinRT; the test backend too).
        bleak's BlueZ backend only learns the result through ``_acquire_mtu`` — the workaround bleak's
        own ``mtu_size`` example documents — so it is asked for where it exists."""
        backend = getattr(client, "_backend", None)
        acquire = getattr(backend, "_acquire_mtu", None)
        if acquire is not None and getattr(backend, "_mtu_size", 0) is None:
            try:
                async with asyncio.timeout(self.timing.response_s):
                    await acquire()
            except (BleakError, TimeoutError, AssertionError) as exc:
                log.info("%s: could not read the negotiated MTU: %s", self.target.label, exc or "timeout")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BlueZ's "using default MTU value" when it stays unknown
            mtu = client.mtu_size
        if mtu < plan.min_mtu:
            # Notifications that do not fit arrive cut and are counted as malformed: a warning, not a
            # failure, since some stacks report 23 while having negotiated more.
            log.warning(
                "%s: ATT MTU %d is below the %d this profile needs; long notifications may arrive cut",
                self.target.label,
                mtu,
                plan.min_mtu,
            )

    async def _battery(self, client: BleakClient) -> int | None:
        char = client.services.get_characteristic(BATTERY_LEVEL)
        if char is None:
            return None
        level: int | None = None
        with contextlib.suppress(BleakError, TimeoutError):
            async with asyncio.timeout(self.timing.response_s):
                if "read" in char.properties:
                    data = await client.read_gatt_char(char)
                    level = battery_percent(data)
                if "notify" in char.properties:
                    await client.start_notify(char, self._on_notify(BATTERY_LEVEL))
        return level

    async def _start(self, client: BleakClient, plan: Plan) -> tuple[Mapping[str, Decoder[Any]], list[Note]]:
        """Subscribe, write the start commands, collect the replies; notifications that race ahead of a
        later reply are kept and handed back."""
        self._check_services(client, plan)
        t = self.timing
        early: list[Note] = []
        replies: list[bytes] = []
        try:
            for uuid in plan.notify:
                await client.start_notify(uuid, self._on_notify(uuid))
            for write in plan.start:
                async with asyncio.timeout(t.response_s):
                    await client.write_gatt_char(
                        write.characteristic, write.data, response=write.with_response
                    )
                    if write.reply:
                        replies.append(await self._reply(write.characteristic, early))
        except TimeoutError:
            raise DeviceStepError(
                self.target.label,
                "start",
                f"no answer to the start command within {t.response_s:g} s",
                "The device may be busy with another app or stuck: switch it off and on. twitchwatch "
                "reconnects and tries again",
            ) from None
        except BleakError as exc:
            raise DeviceStepError(
                self.target.label, "start", str(exc), "twitchwatch reconnects and tries again"
            ) from None
        try:
            return self.target.profile.decoders(plan.streams, replies), early
        except ControlError as exc:
            raise DeviceStepError(
                self.target.label,
                "start",
                f"the device refused: {exc}",
                "Check the profile's settings (rate, range) in the device map; twitchwatch tries again",
            ) from None

    async def _reply(self, uuid: str, early: list[Note]) -> bytes:
        while True:
            item = await self._queue.get()
            if item is DISCONNECTED:
                raise Disconnected("link dropped while starting")
            if item is STOP:
                raise _Stopping
            assert isinstance(item, Note)
            if item.characteristic == uuid:
                return item.data
            early.append(item)

    # ---- streaming --------------------------------------------------------------------------------
    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        self._heard = loop.time()
        while True:
            try:
                async with asyncio.timeout_at(self._heard + self.timing.silence_s):
                    item = await self._queue.get()
            except TimeoutError:
                self.stats.silences += 1
                raise Disconnected(
                    f"no data for {self.timing.silence_s:g} s while connected: the device stopped streaming"
                ) from None
            if item is STOP:
                return
            if item is DISCONNECTED:
                raise Disconnected("link dropped")
            if isinstance(item, Tick):
                due = self._coalescer.due(item.due_ns)
                self.stats.span_flushes += len(due)
                await self._publish(due)
                self._arm()
                continue
            assert isinstance(item, Note)
            await self._handle(item)

    async def _handle(self, note: Note) -> None:
        self.stats.notifications += 1
        if note.characteristic == BATTERY_LEVEL:
            level = battery_percent(note.data)
            if level is not None:
                await self._publish(self._coalescer.flush())  # the samples before the status that follows
                await self.events.battery(level)
            else:
                self.stats.bad_notifications += 1
            return
        decoder = self._decoders.get(note.characteristic)
        if decoder is None:
            self.stats.unexpected += 1
            log.debug("%s: notification on %s: %s", self.target.name, note.characteristic, note.data.hex())
            return
        try:
            chunks, self._states[note.characteristic] = decoder.decode(
                note.data, self._states[note.characteristic]
            )
            self._heard = asyncio.get_running_loop().time()  # data: the device streams (``silence_s``)
        except NotificationError as exc:
            self.stats.bad_notifications += 1
            self._rlog.warning(
                f"bad-{self.target.name}",
                "%s: skipping a malformed notification on %s: %s",
                self.target.label,
                note.characteristic,
                exc,
            )
            return
        for chunk in chunks:
            if chunk.stream not in self.target.streams:
                self.stats.other_streams += 1
                continue
            if self.framer.repeated(chunk):
                self.stats.repeated += 1
                self._rlog.warning(
                    f"repeat-{self.target.name}",
                    "%s: %s frame %s again or late (the device's counter did not advance); not published",
                    self.target.label,
                    chunk.stream,
                    chunk.sequence,
                )
                continue
            before = self.framer.shape(chunk.stream)
            placed = self.framer.place(chunk, note.received_ns)
            if placed is None:
                self._rlog.warning(
                    f"rate-{self.target.name}",
                    "%s: %s chunk has no sample rate and none can be derived; not published",
                    self.target.label,
                    chunk.stream,
                )
                continue
            await self._publish(self._coalescer.add(placed))
            if self.framer.shape(chunk.stream) != before:
                # The new shape's first frame, and all else pending, before the status that names it.
                await self._publish(self._coalescer.flush())
                await self.events.shape_changed()
        self._arm()

    async def _publish(self, runs: list[Run]) -> None:
        for run in runs:
            await self.events.frame(run.stream, self.framer.number(run))
            self.stats.frames += 1
            self.streamed = True

    @property
    def pending_samples(self) -> int:
        """Samples placed but not yet sent, waiting for their frame to fill."""
        return self._coalescer.pending_samples

    def pending_due_ns(self) -> int | None:
        """When the first pending frame goes out at the latest (wall-clock ns; None: nothing pending)."""
        return self._coalescer.deadline_ns()

    def _arm(self) -> None:
        """Keep one timer, set for when the first pending run is due; its callback only enqueues a ``Tick``.
        The wall clock that stamps arrivals may step: the wait is capped at the span either way."""
        due = self._coalescer.deadline_ns()
        if due == self._timer_due_ns:
            return
        self._disarm()
        if due is None:
            return
        delay = min(max(due - time.time_ns(), 0), self._coalescer.longest_ns) / 1e9
        self._timer = asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, Tick(due))
        self._timer_due_ns = due

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_due_ns = None, None

    # ---- stop -------------------------------------------------------------------------------------
    async def _close(self, client: BleakClient, plan: Plan | None) -> None:
        """Stop writes, unsubscribe, disconnect — each bounded, none allowed to block shutdown. Data that
        arrives meanwhile is still decoded and published, each chunk at once: nothing waits for a span."""
        pending = self._coalescer.flush()
        self.stats.end_flushes += len(pending)
        await self._publish(pending)
        self._coalescer = Coalescer(0)
        if plan is not None and client.is_connected:
            try:
                async with asyncio.timeout(self.timing.response_s):
                    for write in plan.stop:
                        await client.write_gatt_char(
                            write.characteristic, write.data, response=write.with_response
                        )
                        if write.reply:
                            await self._stop_reply(write.characteristic)
                    for uuid in plan.notify:
                        await client.stop_notify(uuid)
                log.info("%s: streams stopped", self.target.label)
            except (BleakError, TimeoutError, Disconnected) as exc:
                log.warning("%s: could not stop streams cleanly: %s", self.target.label, exc or "timeout")
        with contextlib.suppress(BleakError, TimeoutError):
            async with asyncio.timeout(self.timing.response_s):
                await client.disconnect()
        await self._drain()

    async def _stop_reply(self, uuid: str) -> None:
        while True:
            item = await self._queue.get()
            if item is DISCONNECTED:
                raise Disconnected("link dropped while stopping")
            if isinstance(item, Note):
                if item.characteristic == uuid and item.characteristic not in self._decoders:
                    return
                await self._handle(item)

    async def _drain(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Note) and self._decoders:
                await self._handle(item)
