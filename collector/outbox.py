"""Live publishing that outlasts the broker: a bounded outbox per device and one sender task that owns the
MQTT connection, reconnecting with backoff.

A wearable's samples cannot be asked for again, so ``twitchwatch collect`` must not lose them because
Mosquitto restarted or the Wi-Fi dropped for a minute. Frames wait in memory, oldest first, up to
``buffer_s`` of signal time (and ``max_bytes``); what does not fit is dropped *oldest first*, counted,
logged, and shows to the worker as a sequence gap — never silently. Delivery is at least once: a batch
cut off by a disconnect is sent again whole, and the worker drops the repeats by sequence number.

Ownership: ``LivePublisher.__aenter__`` connects once (a broker that is wrong from the start — bad URL,
bad credentials — is an error to fix, not to wait out) and starts the sender task; ``__aexit__`` gives
the sender ``drain_s`` to deliver what is queued, marks the device offline (retained), stops the task and
says how many frames never reached the broker. ``opened`` holds several devices' publishers and closes
them together, so a shutdown with the broker away waits one ``drain_s``, not one per device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiomqtt

from twitchwatch.collector.frames import Frame, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.publisher import IN_FLIGHT, connect_error, connect_publisher
from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.collector.topics import Topic

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0  # an unacknowledged publish after this long means the link is gone


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    t_ns: int  # signal time of the frame's first sample: what ``buffer_s`` is measured in
    order: int = 0  # its place among the publisher's frames: a status is sent after the frames before it


class Outbox:
    """Messages waiting for the broker, oldest first, bounded by signal time span and bytes (``buffer_s``
    None: by bytes only — a source that waits for room bounds it by count, whatever span that holds)."""

    def __init__(self, buffer_s: float | None, max_bytes: int = 256 * 2**20) -> None:
        if (buffer_s is not None and not buffer_s > 0) or max_bytes < 1:
            raise ValueError("buffer_s and max_bytes must be positive")
        self.span_ns = None if buffer_s is None else round(buffer_s * 1e9)
        self.max_bytes = max_bytes
        self._queue: deque[Message] = deque()
        # The queued message with the latest signal time: the span is measured to it. Kept only while it is
        # queued — a frame stamped ahead of the rest (a host clock stepped back, a device clock that
        # wrapped) must not make every later frame look older than ``buffer_s`` once it has been sent.
        self._newest: Message | None = None
        self.bytes = 0
        self.dropped = 0  # messages dropped because the outbox was full, over its lifetime

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: Message) -> int:
        """Queue a message; returns how many of the oldest were dropped to make room."""
        self._queue.append(message)
        self.bytes += len(message.payload)
        if self._newest is None or message.t_ns > self._newest.t_ns:
            self._newest = message
        return self._enforce()

    def take(self, n: int, before: int | None = None) -> list[Message]:
        """Remove and return up to n of the oldest messages (to be sent); with ``before``, only those
        whose ``order`` is lower."""
        out: list[Message] = []
        while self._queue and len(out) < n and (before is None or self._queue[0].order < before):
            out.append(self._queue.popleft())
        self.bytes -= sum(len(m.payload) for m in out)
        if any(m is self._newest for m in out):
            self._newest = max(self._queue, key=lambda m: m.t_ns, default=None)
        return out

    def has_before(self, order: int) -> bool:
        return bool(self._queue) and self._queue[0].order < order

    def restore(self, messages: Iterable[Message]) -> int:
        """Put messages that could not be sent back in front, in order; returns how many were dropped."""
        batch = list(messages)
        self._queue.extendleft(reversed(batch))
        self.bytes += sum(len(m.payload) for m in batch)
        latest = max(batch, key=lambda m: m.t_ns, default=None)
        if latest is not None and (self._newest is None or latest.t_ns > self._newest.t_ns):
            self._newest = latest
        return self._enforce()

    def _enforce(self) -> int:
        dropped = 0
        newest = self._newest.t_ns if self._newest is not None else 0
        while len(self._queue) > 1 and (
            self.bytes > self.max_bytes
            or (self.span_ns is not None and newest - self._queue[0].t_ns > self.span_ns)
        ):
            gone = self._queue.popleft()
            self.bytes -= len(gone.payload)
            dropped += 1
            if gone is self._newest:  # the newest was the oldest too: measure to what is left
                self._newest = max(self._queue, key=lambda m: m.t_ns, default=None)
                newest = self._newest.t_ns if self._newest is not None else 0
        self.dropped += dropped
        return dropped


@dataclass(frozen=True)
class Reconnect:
    """How the sender waits between connection attempts and how long a shutdown may spend delivering."""

    initial_s: float = 1.0
    max_s: float = 5.0  # a broker restart takes seconds: never wait much longer than it to try again
    drain_s: float = 10.0


class LivePublisher:
    """``async with LivePublisher(...) as pub: await pub.publish("acc", frame)`` — never raises for a lost
    broker once open; ``stats`` tell what was queued, sent and dropped.

    ``max_waiting``: a source that can wait (a file, the simulator at full speed) is held in ``publish``
    while that many frames wait for the broker, so a broker that is away pauses it instead of filling the
    outbox; a live source (a wearable, a paced simulation) leaves it None and the outbox's bound applies
    (``buffer_s`` of signal time: without ``max_waiting`` it must be given)."""

    def __init__(
        self,
        target: MqttTarget,
        user: str,
        device: str,
        status: DeviceStatus,
        *,
        buffer_s: float = 600.0,
        reconnect: Reconnect | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self._target = target
        self._user, self._device = user, device
        self._status_topic = str(Topic(user, device, "status"))
        self._status = status
        self._status_dirty = True
        # An offline status goes out after the frames queued before it, not ahead of them: overtaking the
        # last frames, it would end the stream at the worker before its end.
        self._status_after = 0
        self._offline = DeviceStatus.offline(status.profile, status.source, status.session_id)
        # One client id for the publisher's whole life: a broker restarted with its sessions (persistence)
        # knows this client again on reconnect instead of firing its will (offline) over the new status.
        self._client_id = f"twitchwatch-{user}-{device}-{uuid.uuid4().hex[:8]}"
        # A source held at max_waiting frames is bounded by that count: a span bound would drop frames of
        # a file whose frames are long (10 s of a 50-Hz accelerometer each) while nothing is wrong.
        self._outbox = Outbox(None if max_waiting is not None else buffer_s)
        self._policy = reconnect or Reconnect()
        self._wake = asyncio.Event()  # something to send
        self._idle = asyncio.Event()  # nothing left to send (set by the sender)
        self._closing = asyncio.Event()
        self._max_waiting = max_waiting
        self._taken = asyncio.Event()  # the sender took a batch: room in the outbox (``max_waiting``)
        self._sender: asyncio.Task[None] | None = None
        self._rlog = RateLimitedLog(log, every=30.0)
        self.connected = asyncio.Event()
        self.draining = False  # closing: waiting for the broker to take what is queued
        self.frames_queued = 0
        self.frames_sent = 0
        self.reconnects = 0

    @property
    def frames_dropped(self) -> int:
        return self._outbox.dropped

    @property
    def frames_waiting(self) -> int:
        return len(self._outbox)

    # ---- the caller's side ------------------------------------------------------------------------
    async def __aenter__(self) -> LivePublisher:
        try:
            client = await self._connect()
        except aiomqtt.MqttError as exc:
            raise connect_error(self._target, exc) from exc
        self._sender = asyncio.create_task(self._run(client), name=f"publish-{self._device}")
        self._sender.add_done_callback(self._sender_ended)
        return self

    def _sender_ended(self, task: asyncio.Task[None]) -> None:
        # A bug in the sender would otherwise only show at shutdown, with the frames piling up unseen.
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: the MQTT sender failed; frames are no longer sent",
                self._device,
                exc_info=task.exception(),
            )

    async def publish(self, stream: str, frame: Frame) -> None:
        topic = str(Topic(self._user, self._device, "raw", stream))
        while self._max_waiting is not None and len(self._outbox) >= self._max_waiting:
            await self._room()
        dropped = self._outbox.put(Message(topic, encode(frame), frame.t0_ns, self.frames_queued))
        self.frames_queued += 1
        self._idle.clear()
        if dropped:
            self._rlog.warning(
                "full",
                "%s: the MQTT broker %s has been away longer than the buffer holds; dropped the %d "
                "oldest frames (%d in all). They show as a gap; raise [collect] broker_buffer to keep more",
                self._device,
                self._target.display,
                dropped,
                self._outbox.dropped,
            )
        self._wake.set()

    async def _room(self) -> None:
        """Wait for the sender to take a batch (or to end: a failed sender must not hang the source)."""
        sender = self._sender
        if sender is None or sender.done():
            raise RuntimeError(f"{self._device}: the MQTT sender is not running")
        self._taken.clear()
        taken = asyncio.ensure_future(self._taken.wait())
        try:
            await asyncio.wait({taken, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            taken.cancel()

    async def set_status(self, status: DeviceStatus) -> None:
        """The device's retained status from now on (sent at once, or as soon as the broker is back)."""
        self._status = status
        self._status_dirty = True
        # An offline status comes after the frames before it; any other goes out at once, ahead of frames
        # waiting (it names their muscles: the worker should know it before them).
        self._status_after = self.frames_queued if status.state == "offline" else 0
        self._idle.clear()
        self._wake.set()

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait until everything queued so far has reached the broker; False if ``within_s`` ran out."""
        sender = self._sender
        if sender is None or sender.done():
            return not self._pending()
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({idle, sender}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
        return not self._pending()

    @property
    def drain_s(self) -> float:
        return self._policy.drain_s

    @property
    def broker(self) -> str:
        return self._target.display

    @property
    def undelivered(self) -> bool:
        """Something queued that the broker has not taken, with no connection to give it over."""
        return self._pending() and not self.connected.is_set()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.set_status(self._offline)
        self.draining = True
        cut_short = False
        try:
            delivered = await self.drain(self._policy.drain_s)
        except asyncio.CancelledError:  # a second Ctrl-C: close as when the window ends, then stop
            delivered, cut_short = False, True
        finally:
            self.draining = False
        self._closing.set()
        self._wake.set()
        if self._sender is not None:
            if not delivered:
                self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if not delivered and self._pending():
            log.error(
                "%s: %d frames and the offline status never reached the MQTT broker %s (%s); they are lost",
                self._device,
                len(self._outbox),
                self._target.display,
                "the wait for it was cut short" if cut_short else "it was away at shutdown",
            )
        if cut_short:
            raise asyncio.CancelledError

    # ---- the sender task --------------------------------------------------------------------------
    def _pending(self) -> bool:
        return bool(self._outbox) or self._status_dirty

    async def _connect(self) -> aiomqtt.Client:
        client = await connect_publisher(
            self._target, self._status_topic, self._offline.to_json(), self._client_id
        )
        self.connected.set()
        return client

    async def _run(self, client: aiomqtt.Client | None) -> None:
        backoff = self._policy.initial_s
        try:
            while True:
                try:
                    if client is None:
                        client = await self._connect()
                        self.reconnects += 1
                        self._status_dirty = True  # the will may have marked it offline meanwhile
                        log.info(
                            "%s: back on MQTT broker %s; sending %d buffered frames",
                            self._device,
                            self._target.display,
                            len(self._outbox),
                        )
                        backoff = self._policy.initial_s
                    self._wake.clear()
                    await self._flush(client)
                    if self._closing.is_set():
                        return
                    if not self._pending():
                        self._idle.set()
                        await self._wake.wait()
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    if client is not None:
                        await _close(client)
                    client = None
                    self._rlog.warning(
                        "lost",
                        "%s: MQTT broker %s unreachable (%s); buffering frames (%d waiting) and "
                        "reconnecting in %.0f s",
                        self._device,
                        self._target.display,
                        exc,
                        len(self._outbox),
                        backoff,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), backoff)
                    if self._closing.is_set():
                        return
                    backoff = min(backoff * 2, self._policy.max_s)
        finally:
            self.connected.clear()
            if client is not None:
                await _close(client)

    async def _flush(self, client: aiomqtt.Client) -> None:
        while True:
            if self._status_dirty and not self._outbox.has_before(self._status_after):
                self._status_dirty = False
                try:
                    await client.publish(
                        self._status_topic,
                        self._status.to_json(),
                        qos=1,
                        retain=True,
                        timeout=PUBLISH_TIMEOUT_S,
                    )
                except BaseException:
                    self._status_dirty = True
                    raise
            batch = self._outbox.take(IN_FLIGHT, self._status_after if self._status_dirty else None)
            if not batch:
                return
            self._taken.set()  # a waiting source may queue the next batch while this one is sent
            await self._send(client, batch)
            self.frames_sent += len(batch)

    async def _send(self, client: aiomqtt.Client, batch: list[Message]) -> None:
        """Publish a batch (QoS 1, in order, up to IN_FLIGHT at once); on any failure put all of it back."""
        try:
            results = await asyncio.gather(
                *(client.publish(m.topic, m.payload, qos=1, timeout=PUBLISH_TIMEOUT_S) for m in batch),
                return_exceptions=True,
            )
        except BaseException:  # cancelled at shutdown: what was taken is still owed
            self._outbox.restore(batch)
            raise
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self._outbox.restore(batch)
            first = errors[0]
            if isinstance(first, aiomqtt.MqttError):
                raise first
            raise aiomqtt.MqttError(f"publish failed: {first!r}") from first


async def _close(client: aiomqtt.Client) -> None:
    """Leave a client whose connection may already be gone (nothing to report: the caller knows why)."""
    with contextlib.suppress(Exception):
        await client.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def opened(publishers: Sequence[LivePublisher]) -> AsyncIterator[Sequence[LivePublisher]]:
    """Open every publisher (a broker wrong from the start fails here, closing those already open) and
    close them all at once: each device's drain runs beside the others'."""
    entered: list[LivePublisher] = []
    try:
        for pub in publishers:
            await pub.__aenter__()
            entered.append(pub)
        yield entered
    finally:
        await _close_together(entered)


async def _close_together(publishers: Sequence[LivePublisher]) -> None:
    waiting = [p for p in publishers if p.undelivered]
    if waiting:
        # Once, not per device: the user pressed Ctrl-C and should know why the exit is not immediate.
        log.warning(
            "waiting up to %g s for the MQTT broker %s to take %d buffered frames from %d device(s); "
            "what it has not taken by then is lost",
            max(p.drain_s for p in waiting),
            waiting[0].broker,
            sum(p.frames_waiting for p in waiting),
            len(waiting),
        )
    closing = (p.__aexit__(None, None, None) for p in publishers)
    results = await asyncio.gather(*closing, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
