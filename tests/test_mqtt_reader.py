"""What the project's MQTT client changes in paho's reading, for a worker taking thousands of frames a second:
``ReadAheadSocket`` (paho's reads served from one large ``recv``) on a socket pair and on the harness's
Mosquitto, where a subscriber's backlog must arrive complete, in order and byte for byte, in far fewer kernel
reads than messages; ``ack_many`` (the acknowledgements of a batch in one write), which must acknowledge
exactly what it is given; and the skipped lookup of per-topic callbacks, which must still find them once one
is added."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.mqtt import (
    READ_AHEAD_BYTES,
    ReadAheadSocket,
    parse_mqtt_url,
    payload_bytes,
)

if TYPE_CHECKING:
    from twitchwatch.collector.mqtt import Client

WAIT_S = 30.0


@pytest.fixture
def pair() -> Iterator[tuple[ReadAheadSocket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        yield ReadAheadSocket(a, size=64), b
    finally:
        a.close()
        b.close()


def test_reads_come_from_memory_until_it_is_used_up(pair: tuple[ReadAheadSocket, socket.socket]) -> None:
    sock, peer = pair
    data = bytes(range(200))
    peer.sendall(data)
    got = [sock.recv(1), sock.recv(1), sock.recv(10)]
    assert sock.reads == 1  # one read of 64 bytes served all three
    assert sock.pending() == 64 - 12
    got.append(sock.recv(1000))  # at most what is in memory: a short read, as a socket may give
    assert sock.pending() == 0
    assert sock.reads == 1
    rest = b""
    while len(rest) < 200 - 64:
        rest += sock.recv(1000)
    assert b"".join(got) + rest == data


def test_nothing_to_read_and_end_of_stream_are_the_sockets(
    pair: tuple[ReadAheadSocket, socket.socket],
) -> None:
    sock, peer = pair
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    peer.sendall(b"ab")
    assert sock.recv(1) == b"a"
    peer.close()
    assert sock.recv(5) == b"b"  # what was read ahead comes first
    assert sock.recv(5) == b""  # then the end of the stream
    assert sock.pending() == 0


def test_everything_else_is_the_sockets_own(pair: tuple[ReadAheadSocket, socket.socket]) -> None:
    sock, peer = pair
    assert sock.fileno() == sock.sock.fileno()
    sock.send(b"hello")
    assert peer.recv(5) == b"hello"


async def _backlog_through(url: str, sizes: list[int]) -> tuple[list[bytes], list[bytes], int, object]:
    """Publish one message per size while a persistent subscriber is away, then read them all with it."""
    target = parse_mqtt_url(url)
    sent = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    async with target.client("read-ahead-sub", clean_session=False) as sub:
        await sub.subscribe("readahead/#", qos=1)
    async with target.client("read-ahead-pub") as pub:
        for i, payload in enumerate(sent):
            await pub.publish(f"readahead/{i % 7}", payload, qos=1)
    got: list[bytes] = []
    async with target.client("read-ahead-sub", clean_session=False) as sub:
        sock = sub._client.socket()  # the socket paho reads: the read-ahead one
        async with asyncio.timeout(WAIT_S):
            async for message in sub.messages:
                got.append(payload_bytes(message.payload))
                if len(got) == len(sent):
                    break
        reads = sock.reads if isinstance(sock, ReadAheadSocket) else -1
    return sent, got, reads, sock


@pytest.mark.mosquitto
def test_a_backlog_arrives_whole_in_order_in_few_reads(mosquitto: MosquittoServer) -> None:
    # Frames' sizes, and payloads whose length needs 2, 3 and 4 bytes, the largest beyond the read-ahead.
    sizes = [100] * 3000 + [20_000, 3 * READ_AHEAD_BYTES, 0, 1] + [60] * 1000
    sent, got, reads, sock = asyncio.run(_backlog_through(mosquitto.url, sizes))
    assert isinstance(sock, ReadAheadSocket)
    assert got == sent
    # ~720 KB of payload: a few dozen reads of 256 KB or of whatever the kernel had, not three a message.
    assert 0 < reads < len(sent) // 10, reads


async def _until_broker_stops(server: MosquittoServer) -> BaseException | None:
    async with parse_mqtt_url(server.url).client("read-ahead-lost") as client:
        await client.subscribe("x/#", qos=1)
        await asyncio.get_running_loop().run_in_executor(None, server.stop)
        try:
            async with asyncio.timeout(WAIT_S):
                async for _ in client.messages:
                    pass
        except aiomqtt.MqttError as exc:
            return exc
    return None


@pytest.mark.mosquitto
def test_a_broker_that_goes_away_ends_the_connection(tmp_path: Path) -> None:
    server = MosquittoServer.start(tmp_path / "broker")
    try:
        assert isinstance(asyncio.run(_until_broker_stops(server)), aiomqtt.MqttError)
    finally:
        server.stop()


async def _received_acked(sub: Client, upto: int | None, stop_topic: str | None = None) -> list[bytes]:
    """Messages as they come, each batch acknowledged with ``ack_many`` while fewer than ``upto`` are
    (Mosquitto holds back the rest of a subscriber's queue while 20 are unacknowledged): until ``upto`` are
    in, or until one on ``stop_topic`` (not returned)."""
    got: list[bytes] = []
    async with asyncio.timeout(WAIT_S):
        async for message in sub.messages:
            batch = [message, *sub.take_queued(1000)]
            if upto is not None:
                batch = batch[: upto - len(got)]
            for i, m in enumerate(batch):
                if stop_topic is not None and str(m.topic) == stop_topic:
                    sub.ack_many(batch[: i + 1])
                    return got
                got.append(payload_bytes(m.payload))
            sub.ack_many(batch)
            if upto is not None and len(got) >= upto:
                return got
    return got


async def _ack_then_reconnect(url: str, n: int, acked: int) -> list[bytes]:
    """``n`` messages to a persistent subscriber with manual acknowledgement that acknowledges the first
    ``acked`` with ``ack_many`` and goes away; what the broker sends it again when it comes back."""
    target = parse_mqtt_url(url)
    name = f"ack-many-{acked}"
    async with target.client(name, clean_session=False, manual_ack=True) as sub:
        await sub.subscribe("ackmany/#", qos=1)
        async with target.client(f"{name}-pub") as pub:
            for i in range(n):
                await pub.publish(f"ackmany/{acked}", str(i).encode(), qos=1)
        first = await _received_acked(sub, acked) if acked else []
        assert first == [str(i).encode() for i in range(acked)]
        await asyncio.sleep(0.3)  # more arrive, not acknowledged
        # Its acknowledgement comes after the broker has read everything written before it.
        await sub.publish(f"ackmany-sentinel/{acked}", b"", qos=1)
    async with target.client(name, clean_session=False, manual_ack=True) as sub:
        await sub.subscribe("ackmany-end/#", qos=1)
        async with target.client(f"{name}-pub") as pub:
            await pub.publish(f"ackmany-end/{acked}", b"end", qos=1)  # queued after any redelivery
        return await _received_acked(sub, None, stop_topic=f"ackmany-end/{acked}")


@pytest.mark.mosquitto
def test_ack_many_acknowledges_exactly_what_it_is_given(mosquitto: MosquittoServer) -> None:
    assert asyncio.run(_ack_then_reconnect(mosquitto.url, 300, 300)) == []
    again = asyncio.run(_ack_then_reconnect(mosquitto.url, 300, 120))
    assert again == [str(i).encode() for i in range(120, 300)]


async def _filters() -> None:
    client = parse_mqtt_url("mqtt://127.0.0.1:1").client("filters")
    paho = client._client
    matcher = paho._on_message_filtered
    # The paho internals the client uses are there (without them it falls back to paho's slower ways).
    assert type(matcher).__name__ == "_Filters"
    assert client._queue_packet is not None
    assert paho._create_socket.__name__ == "create_read_ahead"
    assert list(matcher.iter_match("a/b")) == []  # type: ignore[no-untyped-call]  # none: skipped

    def callback(*_: object) -> None:
        pass

    paho.message_callback_add("a/#", callback)
    assert list(matcher.iter_match("a/b")) == [callback]  # type: ignore[no-untyped-call]
    assert list(matcher.iter_match("c/b")) == []  # type: ignore[no-untyped-call]


def test_per_topic_callbacks_are_found_once_added() -> None:
    asyncio.run(_filters())
