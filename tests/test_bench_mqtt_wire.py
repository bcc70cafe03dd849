"""bench/mqtt_wire.py, the throughput bench's lean publisher: its encodings at their boundaries, and against
the harness's Mosquitto (auth on) — what it publishes arrives byte-identical and in order at a paho
subscriber, a retained message is kept, the in-flight bound holds, an idle connection is kept alive, packet
identifiers wrap, and a wrong password is refused with the CONNACK's code named."""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.mqtt_wire import (
    ConnectRefused,
    LeanPublisher,
    MqttWireError,
    decode_remaining_length,
    encode_remaining_length,
    encode_string,
    split_packets,
)
from tests.harness.mosquitto import MosquittoServer

BOUNDARIES = {
    0: b"\x00",
    127: b"\x7f",
    128: b"\x80\x01",
    16383: b"\xff\x7f",
    16384: b"\x80\x80\x01",
    2097151: b"\xff\xff\x7f",
    2097152: b"\x80\x80\x80\x01",
    268435455: b"\xff\xff\xff\x7f",
}


@pytest.mark.parametrize(("n", "encoded"), BOUNDARIES.items())
def test_remaining_length_at_its_boundaries(n: int, encoded: bytes) -> None:
    assert encode_remaining_length(n) == encoded
    assert decode_remaining_length(b"\x30" + encoded + b"rest", 1) == (n, 1 + len(encoded))
    assert decode_remaining_length(b"\x30" + encoded[:-1], 1) is None  # cut short: wait for more


def test_remaining_length_out_of_range() -> None:
    for n in (-1, 268435456):
        with pytest.raises(ValueError, match="remaining length"):
            encode_remaining_length(n)


def test_strings_and_packet_splitting() -> None:
    assert encode_string("") == b"\x00\x00"
    assert encode_string("µ/x") == b"\x00\x04\xc2\xb5/x"
    with pytest.raises(ValueError, match="65535"):
        encode_string(b"x" * 65536)
    packets, used = split_packets(b"\x40\x02\x00\x01\xd0\x00\x40\x02\x00")
    assert [(p.first, p.body) for p in packets] == [(0x40, b"\x00\x01"), (0xD0, b"")]
    assert used == 6


def _pubacks(*ids: int) -> bytes:
    return b"".join(b"\x40\x02" + struct.pack("!H", i) for i in ids)


def test_pubacks_out_of_order_count_and_a_stray_one_fails() -> None:
    """RabbitMQ's MQTT plugin acknowledges as its queues confirm, not in order: a socket pair plays it."""
    ours, broker = socket.socketpair()
    pub = LeanPublisher(ours, keepalive=60, max_inflight=4)
    try:
        pub.send([pub.prepare("t", bytes([k])).data for k in range(4)])
        broker.sendall(_pubacks(3, 1, 4))
        with pytest.raises(MqttWireError, match=r"waited 0\.3 s for PUBACKs: 1 of 4"):
            pub.wait_acknowledged(0.3)
        broker.sendall(_pubacks(2))
        pub.wait_acknowledged(5)
        pub.send([pub.prepare("t", b"5").data])
        broker.sendall(_pubacks(3))  # acknowledged before: not in flight
        with pytest.raises(MqttWireError, match="PUBACK for packet 3, which is not in flight"):
            pub.wait_acknowledged(5)
    finally:
        broker.close()
        pub.close()


class Subscriber:
    """A paho client on ``topic`` (a filter): every message as (topic, payload, retain), in arrival order."""

    def __init__(self, server: MosquittoServer, topic: str) -> None:
        self.received: list[tuple[str, bytes, bool]] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"wire-sub-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(server.username, server.password)
        self.client.on_message = lambda _c, _u, m: self.received.append(
            (m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", server.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the subscriber was not subscribed within 10 s"

    def wait_for(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _connect(server: MosquittoServer, password: str | None = None, **kw: int) -> LeanPublisher:
    return LeanPublisher.connect(
        "127.0.0.1",
        server.port,
        f"wire-pub-{uuid.uuid4().hex[:8]}",
        server.username,
        server.password if password is None else password,
        **kw,
    )


@pytest.mark.mosquitto
def test_lean_publisher_delivers_every_message_intact_and_in_order(mosquitto: MosquittoServer) -> None:
    prefix = f"wire-test/{uuid.uuid4().hex}"
    # Sizes across the remaining length's one-, two- and three-byte forms; three topics interleaved.
    sizes = [0, 1, 100, 130, 16_400, *range(5, 500)]
    sent = [
        (f"{prefix}/dev{k % 3}/raw", bytes((k + j) % 256 for j in range(size)))
        for k, size in enumerate(sizes[:400])
    ]
    status = (f"{prefix}/dev0/status", b'{"state": "online"}')
    sub = Subscriber(mosquitto, f"{prefix}/#")
    try:
        # A bound of 16 in flight: most of the sends wait for PUBACKs on the way.
        with _connect(mosquitto, max_inflight=16) as pub:
            pub.publish([status], retain=True)
            prepared = [pub.prepare(topic, payload) for topic, payload in sent]
            for at in range(0, len(prepared), 37):
                pub.send([p.data for p in prepared[at : at + 37]])
                assert pub.unacknowledged <= 16
            pub.wait_acknowledged(20)
            assert pub.unacknowledged == 0
        sub.wait_for(1 + len(sent))
        assert sub.received == [(*status, False), *((t, p, False) for t, p in sent)]
        # The status was retained: a new subscriber gets it, flagged as retained.
        late = Subscriber(mosquitto, f"{prefix}/+/status")
        late.wait_for(1)
        late.stop()
        assert late.received == [(*status, True)]
    finally:
        sub.stop()
        with _connect(mosquitto) as pub:  # the retained message cleared for the session's other tests
            pub.publish([(status[0], b"")], retain=True)


@pytest.mark.mosquitto
def test_packet_identifiers_wrap_past_65535(mosquitto: MosquittoServer) -> None:
    with _connect(mosquitto) as pub:
        messages = [(f"wire-test/{uuid.uuid4().hex}/wrap", b"x")] * 700
        # 65,800 packets: identifier 65535, then 1 again (the reader checks every PUBACK's identifier).
        for _ in range(94):
            pub.publish(messages)
        assert pub.prepare("t", b"").packet_id == 94 * 700 - 65_535 + 1


@pytest.mark.mosquitto
def test_an_idle_connection_is_kept_alive(mosquitto: MosquittoServer) -> None:
    with _connect(mosquitto, keepalive=2) as pub:
        deadline = time.monotonic() + 5
        while pub.pings_answered == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pub.pings_answered >= 1
        pub.publish([(f"wire-test/{uuid.uuid4().hex}/after-idle", b"still here")])


@pytest.mark.mosquitto
def test_a_wrong_password_is_refused_with_its_connack_code(mosquitto: MosquittoServer) -> None:
    with pytest.raises(ConnectRefused, match=r"CONNACK return code [45] \((bad user name|not authorized)"):
        _connect(mosquitto, password="not-the-password")
