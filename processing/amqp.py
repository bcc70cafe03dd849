"""Scale-out on RabbitMQ: the partition layout (``twitchwatch broker setup``) and the worker's AMQP
source.

Layout (docs/scaling.md): RabbitMQ's MQTT plugin publishes the collectors' messages into
``twitchwatch.mqtt`` (``mqtt.exchange`` in rabbitmq.conf), a topic exchange. Each user's raw frames, device
statuses and felt marks are bound to one of N partition queues, ``twitchwatch.p00`` …, chosen by a stable
hash of the user name: all of a person's wearables reach one worker, in order, because the rest gate and the
fusion of a muscle's streams look across a person's devices. A user not bound yet is not lost: the
exchange's alternate exchange sends their messages to ``twitchwatch.unassigned``, a queue of its own. Every
queue is a quorum queue (replicated in a cluster, kept across restarts) with single-active-consumer on:
every worker consumes every queue, the broker lets exactly one of them have each queue's messages, and hands
the queue to another when that one goes.

The worker acknowledges a frame only once what was derived from it is stored (``Worker.ack_horizons``), and
a further ``LEAD_NS`` of device time later: a worker taking over a partition gets at least that much of each
stream's already-stored past again, which its fresh detectors spend learning their noise floor, so no
twitch falls into their blind first second. Events found in such redelivered frames are looked up in the
store first (``Worker._not_stored``); frames redelivered to the same worker are recognised by sequence
number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiormq
import aiormq.abc

from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.collector.topics import ROOT, check_segment
from twitchwatch.errors import TwitchwatchError
from twitchwatch.processing.worker import (
    BATCH_MAX,
    LEAD_NS,
    Receipt,
    StreamKey,
    Worker,
    gather_backlog,
    gather_s,
)

log = logging.getLogger(__name__)

EXCHANGE = "twitchwatch.mqtt"  # where the MQTT plugin publishes (mqtt.exchange = twitchwatch.mqtt)
UNASSIGNED = "twitchwatch.unassigned"  # the alternate exchange, and its queue
DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 1000
# Deliveries waiting behind one that cannot be acknowledged yet, past which the rest are acknowledged one
# by one (a multiple-ack covers everything before it). Only the broker's credit bounded it (half the
# prefetch, 10,000 a queue): a frame stamped in 2099 in one wearer's stream held every queue's
# acknowledgements, and a kill meanwhile had all of them delivered again.
BLOCKED_BEHIND = 1000
# A stream silent this long (wall time) is ended: its last events are stored and its frames acknowledged.
IDLE_NS = 10_000_000_000
# The three kinds of message a worker consumes, as topic-exchange patterns after the user word.
_PATTERNS = ("*.raw.*", "*.status", "felt")


class AmqpError(TwitchwatchError, RuntimeError):
    """The broker refused the layout (an existing queue with other arguments, no permission)."""


def queue_name(partition: int) -> str:
    return f"twitchwatch.p{partition:02d}"


def partition_of(user: str, partitions: int) -> int:
    """The partition of a user: CRC-32 of the name, the same on every run, machine and Python."""
    return zlib.crc32(user.encode()) % partitions


def routing_word(segment: str) -> str:
    """A topic level as a routing-key word: the MQTT plugin turns '/' into '.' and '.' into '/'."""
    return segment.replace(".", "/")


def topic_of(routing_key: str) -> str:
    """The MQTT topic a routing key came from (the plugin's mapping, reversed)."""
    return routing_key.translate(str.maketrans("./", "/."))


def binding_keys(user: str) -> list[str]:
    return [f"{ROOT}.{routing_word(check_segment(user, 'user'))}.{p}" for p in _PATTERNS]


def display_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{parts.hostname}{port}{parts.path or '/'}"


# ---- broker setup ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetupReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]
    bound: tuple[tuple[str, str], ...]  # (user, queue)

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"kept {name} (already there)" for name in self.existing]
        out += [f"bound user {user} -> {queue}" for user, queue in self.bound]
        return out


async def _connect(url: str) -> aiormq.abc.AbstractConnection:
    """A connection, or an ``AmqpError`` saying why not in words (an unknown vhost came out as "Expected
    one of ['Connection.OpenOk'], got <Connection.Close …>", a bad port as a bug)."""
    try:
        return await aiormq.connect(url)
    except aiormq.exceptions.ProbableAuthenticationError as exc:
        raise AmqpError(f"the broker refused the user or password ({exc})") from None
    except aiormq.exceptions.AMQPError as exc:
        vhost = urlsplit(url).path.lstrip("/") or "/"
        raise AmqpError(f"the broker refused the connection (does vhost {vhost!r} exist?): {exc}") from None
    except ValueError as exc:
        raise AmqpError(f"TWITCHWATCH_AMQP_URL: {exc}") from None


async def _exists(connection: aiormq.abc.AbstractConnection, kind: str, name: str) -> bool:
    """A passive declare on a channel of its own (a missing name closes the channel)."""
    channel = await connection.channel()
    try:
        if kind == "exchange":
            await channel.exchange_declare(name, passive=True)
        else:
            await channel.queue_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    with contextlib.suppress(aiormq.exceptions.AMQPError):
        await channel.close()
    return True


async def _declare(connection: aiormq.abc.AbstractConnection, kind: str, name: str, **kwargs: Any) -> bool:
    """Declare one exchange or queue; True when it was there already."""
    existed = await _exists(connection, kind, name)
    channel = await connection.channel()
    try:
        if kind == "exchange":
            await channel.exchange_declare(name, durable=True, **kwargs)
        else:
            await channel.queue_declare(name, durable=True, **kwargs)
    except aiormq.exceptions.AMQPError as exc:
        raise AmqpError(f"{kind} {name}: the broker refused it: {exc}") from None
    with contextlib.suppress(aiormq.exceptions.AMQPError):
        await channel.close()
    return existed


async def layout_partitions(connection: aiormq.abc.AbstractConnection, partitions: int) -> None:
    """Refuse a partition count other than the layout's on the broker. Declared with 8 and then with 16,
    users were bound to a queue of each (every frame delivered twice), and workers counting 8 never
    consumed twitchwatch.p08…p15: a wearer's twitches piled up unread, and nothing said so."""
    if not await _exists(connection, "queue", queue_name(0)):
        return  # no layout yet
    more = partitions < MAX_PARTITIONS and await _exists(connection, "queue", queue_name(partitions))
    fewer = not await _exists(connection, "queue", queue_name(partitions - 1))
    if more or fewer:
        side = "more" if more else "fewer"
        raise AmqpError(
            f"the broker's layout has {side} partition queues than {partitions} (twitchwatch.p00 … "
            f"{'past ' + queue_name(partitions - 1) if more else 'short of ' + queue_name(partitions - 1)}): "
            "set TWITCHWATCH_AMQP_PARTITIONS (or --partitions) to the layout's count; to change it, "
            "delete the twitchwatch queues and exchanges once they are drained and run 'broker setup' again"
        )


async def setup_broker(url: str, partitions: int, users: Sequence[str]) -> SetupReport:
    """Declare the exchanges, the partition queues and the users' bindings; idempotent (declaring what
    exists with the same arguments changes nothing). Raises ``AmqpError`` naming what the broker refused."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise AmqpError(f"partitions: {partitions} is not within 1..{MAX_PARTITIONS}")
    for user in users:
        check_segment(user, "user")
    done: dict[bool, list[str]] = {True: [], False: []}
    queue_args = {"x-queue-type": "quorum", "x-single-active-consumer": True}
    connection = await _connect(url)
    try:
        await layout_partitions(connection, partitions)
        existed = await _declare(connection, "exchange", UNASSIGNED, exchange_type="topic")
        done[existed].append(f"exchange {UNASSIGNED}")
        existed = await _declare(
            connection,
            "exchange",
            EXCHANGE,
            exchange_type="topic",
            arguments={"alternate-exchange": UNASSIGNED},
        )
        done[existed].append(f"exchange {EXCHANGE}")
        for name in [*(queue_name(p) for p in range(partitions)), UNASSIGNED]:
            existed = await _declare(connection, "queue", name, arguments=queue_args)
            done[existed].append(f"queue {name}")
        channel = await connection.channel()
        for pattern in _PATTERNS:  # users not bound yet: kept apart, never dropped
            await channel.queue_bind(UNASSIGNED, UNASSIGNED, routing_key=f"{ROOT}.*.{pattern}")
        bound = []
        for user in users:
            queue = queue_name(partition_of(user, partitions))
            for key in binding_keys(user):
                await channel.queue_bind(queue, EXCHANGE, routing_key=key)
            bound.append((user, queue))
    except aiormq.exceptions.AMQPError as exc:
        raise AmqpError(f"the broker refused a binding: {exc}") from None
    finally:
        await connection.close()
    return SetupReport(tuple(done[False]), tuple(done[True]), tuple(bound))


# ---- the worker's source ---------------------------------------------------------------------------------


@dataclass
class _Outstanding:
    """Deliveries not yet acknowledged on the current channel, in delivery order."""

    items: deque[tuple[int, Receipt]] = field(default_factory=deque)

    def ackable(self, receipt: Receipt, horizons: dict[StreamKey, int], busy: bool) -> bool:
        if receipt is None:
            return not busy  # a felt mark being stored holds the others' acknowledgement back
        key, end_ns = receipt
        return end_ns + LEAD_NS <= horizons.get(key, 2**62)


@dataclass(frozen=True)
class AmqpSource:
    """``TWITCHWATCH_AMQP_URL``'s partitions, consumed by ``Worker.run`` (processing/worker.py ``Ingest``)."""

    url: str
    partitions: int = DEFAULT_PARTITIONS
    # (index, count): this worker's share, the partitions p with p % count == index, which it subscribes to
    # at once; the others ``standby_delay_s`` later. The broker gives a single-active-consumer queue to
    # whichever consumer came first, so workers started together split the partitions by their slots and
    # stand by for each other's. None: every queue at once (the first worker up takes them all).
    slot: tuple[int, int] | None = None
    standby_delay_s: float = 5.0
    consumer_prefix: str = (
        "twitchwatch-worker"  # consumer tags <prefix>.<queue>: who is active, for operators
    )
    prefetch: int = 20_000  # per queue: must exceed the frames of LEAD_NS + detector latency of its streams
    ack_interval_s: float = 0.5
    idle_ns: int = IDLE_NS

    @property
    def queues(self) -> list[str]:
        return [*(queue_name(p) for p in range(self.partitions)), UNASSIGNED]

    def share(self) -> tuple[list[str], list[str]]:
        """(queues subscribed at once, queues subscribed as standby); the unassigned queue is slot 0's."""
        if self.slot is None:
            return self.queues, []
        index, count = self.slot
        mine = [queue_name(p) for p in range(self.partitions) if p % count == index]
        if index == 0:
            mine.append(UNASSIGNED)
        return mine, [q for q in self.queues if q not in mine]

    async def run(self, worker: Worker, stop: asyncio.Event) -> None:
        backoff = 1.0
        rlog = RateLimitedLog(log)
        while not stop.is_set():
            try:
                # Named after the worker (its consumer tags' prefix): operators, and the tests, tell
                # the workers' connections apart (rabbitmqctl list_connections client_properties).
                connection = await aiormq.connect(
                    self.url, client_properties={"connection_name": self.consumer_prefix}
                )
            except (OSError, aiormq.exceptions.AMQPError) as exc:
                rlog.warning(
                    "connect", "AMQP %s: %s; retrying in %.0f s", display_url(self.url), exc, backoff
                )
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            try:
                await self._consume(connection, worker, stop)
                return
            except (OSError, aiormq.exceptions.AMQPError, ConnectionError) as exc:
                # Unacknowledged frames go back to their queues; this worker (or a standby) gets them
                # again, marked redelivered, and recognises what it has already processed.
                log.warning("AMQP %s lost: %s; reconnecting", display_url(self.url), exc)
            finally:
                with contextlib.suppress(Exception):
                    await connection.close()
        await worker.drain()

    async def _consume(
        self, connection: aiormq.abc.AbstractConnection, worker: Worker, stop: asyncio.Event
    ) -> None:
        # A new channel: whatever this worker had not acknowledged on the one before went back to the
        # queues, and single-active-consumer may have given those queues to a standby meanwhile.
        worker.detach_streams()
        await layout_partitions(connection, self.partitions)
        channel = await connection.channel()
        await channel.basic_qos(prefetch_count=self.prefetch)
        pending = _Outstanding()

        # Deliveries are handled in batches (``Worker.handle_many``): those that arrive while it gathers
        # (``gather_backlog``: 20 ms, longer when behind), at most BATCH_MAX. A worker behind gets many at
        # once and handles each stream's frames of them in one detector call.
        batch: list[tuple[int, str, bytes, bool]] = []
        delivered = 0  # deliveries so far on this channel: none since the last look, the source is quiet
        gathering: set[asyncio.Task[None]] = set()  # owned here: cancelled at the end, then run_batch

        async def gather() -> None:
            await gather_backlog(lambda: len(batch), BATCH_MAX, gather_s(worker.behind_s()))
            run_batch()

        def run_batch() -> None:
            if not batch:
                return
            items = batch.copy()
            batch.clear()
            receipts = worker.handle_many([(topic, body, again) for _, topic, body, again in items])
            pending.items.extend((item[0], receipt) for item, receipt in zip(items, receipts, strict=True))

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            # No await here: aiormq starts one task per delivery in order, so frames stay in order.
            nonlocal delivered
            delivery = message.delivery
            assert isinstance(delivery, aiormq.spec.Basic.Deliver)
            if not batch:
                task = asyncio.create_task(gather())
                gathering.add(task)
                task.add_done_callback(gathering.discard)
            delivered += 1
            topic = topic_of(delivery.routing_key or "")
            batch.append((delivery.delivery_tag or 0, topic, message.body, bool(delivery.redelivered)))
            if len(batch) >= BATCH_MAX:
                run_batch()

        consumers: list[str] = []

        async def subscribe(queues: list[str]) -> None:
            for queue in queues:
                try:
                    ok = await channel.basic_consume(
                        queue, on_message, consumer_tag=f"{self.consumer_prefix}.{queue}"
                    )
                except aiormq.exceptions.ChannelNotFoundEntity:
                    raise AmqpError(
                        f"queue {queue} does not exist: run 'twitchwatch broker setup' first"
                    ) from None
                consumers.append(ok.consumer_tag or "")

        mine, standby = self.share()
        await subscribe(mine)
        log.info("worker consuming %s on %s", ", ".join(mine), display_url(self.url))
        standby_at = asyncio.get_running_loop().time() + self.standby_delay_s
        closing = asyncio.ensure_future(channel.closing)
        seen = 0
        try:
            while not stop.is_set():
                if standby and asyncio.get_running_loop().time() >= standby_at:
                    await subscribe(standby)
                    log.info("worker standing by for %s", ", ".join(standby))
                    standby = []
                await _sleep_or_stop(stop, self.ack_interval_s, closing)
                if closing.done():
                    closing.result()  # re-raise why the channel closed
                run_batch()  # what was delivered is handled before streams are judged idle
                # Nothing came, and every consumer has credit left: the broker has nothing for this worker.
                if delivered == seen and len(pending.items) < self.prefetch:
                    worker.source_quiet()
                seen = delivered
                worker.end_idle(self.idle_ns)
                await self._ack_stored(channel, worker, pending)
            for tag in consumers:  # no more deliveries; what was delivered is drained and acknowledged
                await channel.basic_cancel(tag)
            await _cancel(gathering)
            run_batch()
            await worker.drain()
            await self._ack_stored(channel, worker, pending, everything=True)
            await channel.close()
        finally:
            closing.cancel()
            for task in gathering:  # a channel that closed: its deliveries come again, unacknowledged
                task.cancel()

    async def _ack_stored(
        self,
        channel: aiormq.abc.AbstractChannel,
        worker: Worker,
        pending: _Outstanding,
        everything: bool = False,
    ) -> None:
        """Snapshot the horizons, let the writer store everything handed to it, then acknowledge what the
        snapshot covered: the longest run from the front with one multiple-ack, the others one by one once
        ``BLOCKED_BEHIND`` wait behind a front that cannot go (a slow stream, or a frame stamped far ahead
        whose stream has since gone on at the right time, must not hold every queue of the channel back)."""
        horizons = worker.ack_horizons()
        busy = worker.busy
        count = len(pending.items)
        await worker.flush_stored()
        if horizons is None or channel.is_closed:
            return
        # Deliveries keep arriving while this awaits the broker: they are appended to ``items``, which is
        # therefore only ever taken from at the front, before an await, and never replaced.
        items = pending.items
        run = 0
        while run < count and (everything or pending.ackable(items[run][1], horizons, busy)):
            run += 1
        last = items[run - 1][0] if run else None
        for _ in range(run):
            items.popleft()
        if last is not None:
            await channel.basic_ack(last, multiple=True)
        if len(items) > min(self.prefetch // 2, BLOCKED_BEHIND):
            covered = [items.popleft() for _ in range(min(count - run, len(items)))]
            ready = [pending.ackable(receipt, horizons, busy) for _, receipt in covered]
            items.extendleft(reversed([item for item, ok in zip(covered, ready, strict=True) if not ok]))
            for (tag, _), ok in zip(covered, ready, strict=True):
                if ok:
                    await channel.basic_ack(tag)


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float, *others: asyncio.Future[Any]) -> None:
    waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([waiter, *others], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
