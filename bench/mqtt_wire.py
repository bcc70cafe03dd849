"""A lean MQTT 3.1.1 publisher for the benchmarks: the packets built by hand, sent with ``socket.sendall``.

Why it exists: ``bench.throughput`` measures what the ``twitchwatch process`` worker can take, on a machine
shared by the broker, the worker and the simulated wearables' publisher. With paho-mqtt the publisher cost
~0.65 of a core for 3,840 frames a second (a Python object, a lock and a callback per message), so the
machine was full before the worker was and the figures measured the publisher. Here every frame's PUBLISH
packet is built before the clock starts; publishing is one ``sendall`` of the packets that are due, and a
reader thread counts the PUBACKs, waking a hundred times a second rather than once per acknowledgement.

Only what the bench needs: CONNECT (clean session, username/password), QoS 1 PUBLISH (retained or not),
PUBACK, PINGREQ/PINGRESP, DISCONNECT; plain TCP, no TLS, no subscriptions. The product itself publishes with
aiomqtt (``twitchwatch.collector.mqtt``); nothing outside ``bench/`` and its test uses this module.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twitchwatch.errors import TwitchwatchError

MAX_REMAINING_LENGTH = 268_435_455  # four bytes of 7 bits: the most a packet may carry (MQTT 3.1.1 §2.2.3)
MAX_PACKET_ID = 65_535

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
PINGREQ_PACKET = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT_PACKET = b"\xe0\x00"

# CONNACK return codes (MQTT 3.1.1 §3.2.2.3), for an error that says why the broker refused.
CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class MqttWireError(TwitchwatchError):
    """The broker broke the protocol, closed the connection, or did not acknowledge in time."""


class ConnectRefused(MqttWireError):
    """The broker answered CONNECT with a non-zero return code."""

    def __init__(self, code: int) -> None:
        self.code = code
        reason = CONNACK_CODES.get(code, "unknown return code")
        super().__init__(f"MQTT broker refused the connection: CONNACK return code {code} ({reason})")


def encode_remaining_length(n: int) -> bytes:
    """A packet's remaining length as MQTT's variable byte integer: 7 bits a byte, low first, the top bit
    set on every byte but the last."""
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {n} outside 0..{MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode_remaining_length(buf: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """The variable byte integer starting at ``buf[at]``: (value, index after it), or None if ``buf`` ends
    before it does."""
    value = 0
    for i in range(4):
        if at + i >= len(buf):
            return None
        byte = buf[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise MqttWireError("malformed remaining length (more than four bytes)")


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string (or binary data, as a password) with its two-byte big-endian length in front."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise ValueError(f"string of {len(data)} bytes: at most 65535 fit a two-byte length")
    return struct.pack("!H", len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_remaining_length(len(body)) + body


def connect_packet(
    client_id: str, username: str | None, password: str | None, keepalive: int, clean: bool = True
) -> bytes:
    """CONNECT, protocol level 4 (3.1.1). A password needs a user name (§3.1.2.9)."""
    if password is not None and username is None:
        raise ValueError("MQTT 3.1.1 has no password without a user name")
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    flags |= 0x02 if clean else 0
    body = encode_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body += encode_string(client_id)
    body += encode_string(username) if username is not None else b""
    body += encode_string(password) if password is not None else b""
    return _packet(CONNECT, body)


@dataclass(frozen=True)
class Prepared:
    """A QoS-1 PUBLISH packet built ahead of sending; its payload starts at ``data[payload_at]`` (so a field
    of it can be patched in place just before it goes out)."""

    data: bytearray
    payload_at: int
    packet_id: int


def publish_packet(topic: str, payload: bytes | bytearray, packet_id: int, retain: bool = False) -> Prepared:
    """PUBLISH at QoS 1 (DUP 0) with its packet identifier, 1..65535."""
    if not 1 <= packet_id <= MAX_PACKET_ID:
        raise ValueError(f"packet identifier {packet_id} outside 1..{MAX_PACKET_ID}")
    head = encode_string(topic) + struct.pack("!H", packet_id)
    fixed = bytes([PUBLISH | 0x02 | (0x01 if retain else 0)]) + encode_remaining_length(
        len(head) + len(payload)
    )
    return Prepared(bytearray(fixed + head + payload), len(fixed) + len(head), packet_id)


@dataclass(frozen=True)
class Packet:
    """A packet received: its first byte (type and flags) and what follows the remaining length."""

    first: int
    body: bytes


def split_packets(buf: bytes | bytearray) -> tuple[list[Packet], int]:
    """The whole packets at the start of ``buf`` and how many bytes they take (the rest waits for more)."""
    out: list[Packet] = []
    at = 0
    while at + 2 <= len(buf):
        length = decode_remaining_length(buf, at + 1)
        if length is None or length[1] + length[0] > len(buf):
            break
        n, start = length
        out.append(Packet(buf[at], bytes(buf[start : start + n])))
        at = start + n
    return out, at


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise MqttWireError("the broker closed the connection")
        data += chunk
    return data


class LeanPublisher:
    """One connection that publishes at QoS 1. Packets get their identifiers from ``prepare``, 1..65535 and
    around again, and must be sent in the order they were prepared. The reader checks that every PUBACK is
    for a packet in flight and not acknowledged yet — not that they come in order: Mosquitto acknowledges in
    the order it received (§4.6), but RabbitMQ's MQTT plugin as its queues confirm, out of order across
    queues. At most ``max_inflight`` packets are out unacknowledged; ``send`` waits for room (at most
    ``ROOM_TIMEOUT_S``). A thread sends PINGREQ when nothing was sent for half the keepalive."""

    ACK_POLL_S = 0.01  # the reader's pause between reads: the PUBACKs of 10 ms come in one recv
    ROOM_TIMEOUT_S = 60.0  # a broker that stops acknowledging: an error, not a publisher hung for ever

    def __init__(self, sock: socket.socket, keepalive: int, max_inflight: int) -> None:
        self._sock = sock
        self._keepalive = keepalive
        self._max_inflight = max_inflight
        self._next_id = 1
        self._sent = 0  # packets with an identifier handed to the socket (only the sending thread writes)
        self._acked = 0  # PUBACKs read (only the reader writes; under _changed)
        # The reader's: the oldest packet unacknowledged, how many came before it, which after it are acked.
        self._oldest = 1
        self._acked_before_oldest = 0
        self._acked_ids = bytearray(MAX_PACKET_ID + 1)
        self.pings_answered = 0
        self._error: MqttWireError | None = None
        self._waiting = False
        self._changed = threading.Condition()
        self._send_lock = threading.Lock()
        self._last_send = time.monotonic()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="mqtt-wire-reader", daemon=True)
        self._pinger = threading.Thread(target=self._ping, name="mqtt-wire-pinger", daemon=True)
        self._reader.start()
        self._pinger.start()

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        max_inflight: int = 1000,
        timeout: float = 10.0,
    ) -> LeanPublisher:
        """Connect (clean session), read the CONNACK; a refusal raises ``ConnectRefused`` naming its code."""
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            # Nagle would hold a burst back until the previous one is acknowledged at the TCP level.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(connect_packet(client_id, username, password, keepalive))
            first, length = _recv_exactly(sock, 2)
            if first != CONNACK or length != 2:
                raise MqttWireError(f"expected CONNACK, got packet type 0x{first:02x}")
            code = _recv_exactly(sock, 2)[1]
            if code:
                raise ConnectRefused(code)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return cls(sock, keepalive, max_inflight)

    def __enter__(self) -> LeanPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def unacknowledged(self) -> int:
        return self._sent - self._acked

    def prepare(self, topic: str, payload: bytes | bytearray, retain: bool = False) -> Prepared:
        """The next identifier's PUBLISH packet, to be sent later with ``send`` (in preparation order)."""
        packet = publish_packet(topic, payload, self._next_id, retain)
        self._next_id = self._next_id % MAX_PACKET_ID + 1
        return packet

    def send(self, packets: Sequence[bytes | bytearray]) -> None:
        """Send prepared packets (their ``data``) in one ``sendall``, or in as many as the in-flight bound
        allows, waiting for PUBACKs between them."""
        at = 0
        while at < len(packets):
            room = self._max_inflight - (self._sent - self._acked)
            if room <= 0:
                self._wait(lambda: self._sent - self._acked < self._max_inflight, self.ROOM_TIMEOUT_S, "room")
                continue
            chunk = packets[at:] if at == 0 and len(packets) <= room else packets[at : at + room]
            self._sent += len(chunk)
            self._sendall(b"".join(chunk))
            at += len(chunk)

    def publish(
        self, messages: Sequence[tuple[str, bytes]], retain: bool = False, timeout: float = 30
    ) -> None:
        """Publish (topic, payload) messages now and wait for their PUBACKs (and every earlier one's)."""
        self.send([self.prepare(topic, payload, retain).data for topic, payload in messages])
        self.wait_acknowledged(timeout)

    def wait_acknowledged(self, timeout: float) -> None:
        """Until every packet sent is acknowledged; ``MqttWireError`` after ``timeout`` seconds."""
        self._wait(lambda: self._acked >= self._sent, timeout, "PUBACKs")

    def close(self) -> None:
        """DISCONNECT (if the connection still stands) and close; the threads end."""
        self._closing.set()
        if self._error is None:
            try:
                self._sendall(DISCONNECT_PACKET)
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self._reader.join(5)
        self._sock.close()
        self._pinger.join(5)

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        self._waiting = True  # the reader hands each PUBACK over at once while someone waits
        try:
            with self._changed:
                ok = self._changed.wait_for(lambda: done() or self._error is not None, timeout)
        finally:
            self._waiting = False
        if self._error is not None:
            raise self._error
        if not ok:
            raise MqttWireError(
                f"waited {timeout:g} s for {what}: {self._sent - self._acked} of {self._sent} packets "
                "sent are still unacknowledged"
            )

    def _sendall(self, data: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(data)
            self._last_send = time.monotonic()

    def _ping(self) -> None:
        period = self._keepalive / 2
        while not self._closing.wait(min(1.0, period / 4)):
            if time.monotonic() - self._last_send >= period:
                try:
                    self._sendall(PINGREQ_PACKET)
                except OSError:
                    return  # the reader reports the broken connection

    def _read(self) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    if not self._closing.is_set():
                        raise MqttWireError("the broker closed the connection")
                    return
                buf += chunk
                packets, used = split_packets(buf)
                del buf[:used]
                self._handle(packets)
                if not self._waiting:
                    time.sleep(self.ACK_POLL_S)
        except MqttWireError as exc:
            self._fail(exc)
        except OSError as exc:
            if not self._closing.is_set():
                self._fail(MqttWireError(f"connection lost: {exc}"))

    def _handle(self, packets: list[Packet]) -> None:
        acked = self._acked
        for p in packets:
            kind = p.first & 0xF0
            if kind == PUBACK:
                (packet_id,) = struct.unpack("!H", p.body)
                self._check_off(packet_id)
                acked += 1
            elif kind == PINGRESP:
                self.pings_answered += 1
            else:
                raise MqttWireError(f"unexpected packet type 0x{p.first:02x} from the broker")
        with self._changed:
            self._acked = acked
            self._changed.notify_all()

    def _check_off(self, packet_id: int) -> None:
        """Mark ``packet_id`` acknowledged; one not in flight, or acknowledged twice, is an error."""
        in_flight = self._sent - self._acked_before_oldest  # oldest .. newest sent, some acknowledged already
        if (packet_id - self._oldest) % MAX_PACKET_ID >= in_flight or self._acked_ids[packet_id]:
            raise MqttWireError(f"PUBACK for packet {packet_id}, which is not in flight")
        self._acked_ids[packet_id] = 1
        while self._acked_ids[self._oldest]:
            self._acked_ids[self._oldest] = 0
            self._oldest = self._oldest % MAX_PACKET_ID + 1
            self._acked_before_oldest += 1

    def _fail(self, exc: MqttWireError) -> None:
        with self._changed:
            self._error = exc
            self._changed.notify_all()
