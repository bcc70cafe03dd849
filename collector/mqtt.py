"""MQTT connection parameters and client construction, shared by publishers and the worker."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import ssl

    import aiomqtt
    from paho.mqtt.client import MQTTMessageInfo

from twitchwatch.errors import UserError

CA_FILE_HINT = (
    "if the broker's certificate comes from a private CA, set TWITCHWATCH_MQTT_CA_FILE to that CA's "
    "certificate (PEM)"
)


class MqttUrlError(UserError, ValueError):
    """An MQTT URL is malformed."""


@functools.cache
def _closing_socket_class() -> type[ssl.SSLSocket]:
    """paho leaves the socket of a failed TLS handshake (an untrusted certificate) open until the
    garbage collector finds it: one leaked socket per reconnect attempt. This one closes itself. Built on
    first use, as ``ssl`` is imported: a command that only parses an MQTT URL starts sooner."""
    import ssl

    class _ClosingSSLSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            try:
                super().do_handshake(block)
            except BaseException:
                self.close()
                raise

    return _ClosingSSLSocket


# One read from the kernel takes what the socket holds, up to this: a worker's backlog of frames (~100-byte
# PUBLISH packets) comes in hundreds a read instead of three reads each (``ReadAheadSocket``).
READ_AHEAD_BYTES = 256 * 1024
_PUBACK = 0x40
_PUBACK_WORD = 0x4002_0000  # a PUBACK packet of packet id 0, as a big-endian 32-bit word


class ReadAheadSocket:
    """A plain TCP socket for paho whose reads come from one large ``recv`` kept in memory.

    paho reads a packet in three or four ``recv`` calls (its first byte, its length bytes, the rest), and
    aiomqtt asks it for one packet each time the event loop finds the socket readable: a worker taking
    thousands of frames a second spent a fifth of its time there, in system calls and event-loop turns
    (py-spy, ``docs/benchmarks.md``). Served from memory, the packets need no system call, and
    ``pending()`` — the bytes read ahead and not yet taken — is what aiomqtt already asks a TLS socket for
    (its read-ahead is OpenSSL's): while some remain it reads the next packet in the same turn. One turn
    takes at most ``READ_AHEAD_BYTES`` before the loop runs anything else.

    Everything else (``send``, ``fileno``, ``setblocking``, ``close``) is the socket's own. A read that
    finds nothing in memory is the socket's: ``BlockingIOError`` when the kernel has nothing, ``b""`` at
    the end of the stream, as paho expects of a socket."""

    def __init__(self, sock: socket.socket, size: int = READ_AHEAD_BYTES) -> None:
        self.sock = sock
        self._size = size
        self._buf = b""
        self._pos = 0
        self.reads = 0  # from the kernel

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self.sock.recv(max(bufsize, self._size))
            self.reads += 1
            if len(data) <= bufsize:  # nothing left over to keep (the end of the stream is b"")
                self._buf, self._pos = b"", 0
                return data
            self._buf, self._pos = data, 0
        start = self._pos
        self._pos = min(start + bufsize, len(self._buf))
        return self._buf[start : self._pos]

    def pending(self) -> int:
        """Bytes read from the kernel and not yet taken."""
        return len(self._buf) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _read_ahead(create: Callable[[], Any]) -> Callable[[], Any]:
    """paho's socket factory, with a plain TCP socket wrapped in ``ReadAheadSocket`` (a TLS socket has
    OpenSSL's read-ahead, a websocket paho's own wrapper: those stay as they are)."""

    def create_read_ahead() -> Any:
        sock = create()
        return ReadAheadSocket(sock) if type(sock) is socket.socket else sock

    return create_read_ahead


if TYPE_CHECKING:

    class Client(aiomqtt.Client):
        """What ``_client_class`` builds, for type checking (the class itself is built on first use)."""

        manual_ack: bool
        _queue_packet: Callable[..., object] | None

        def __init__(self, *args: Any, manual_ack: bool = False, **kwargs: Any) -> None: ...

        def ack(self, message: aiomqtt.Message) -> None: ...

        def ack_many(self, messages: Sequence[aiomqtt.Message]) -> None: ...

        def take_queued(self, limit: int) -> list[aiomqtt.Message]: ...

        def publish_nowait(
            self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
        ) -> MQTTMessageInfo: ...


@functools.cache
def _client_class() -> type[Client]:
    """aiomqtt's client, with a connect error that says what to do about an untrusted certificate, and
    with ``manual_ack`` the acknowledgement of each QoS-1 message left to the caller (``ack``): the worker
    acknowledges a frame only once it is journaled, so a frame it has not kept is sent again.

    Built on first use: parsing an MQTT URL (every command's configuration) need not import aiomqtt and
    paho, only connecting does."""
    import ssl
    import struct

    import aiomqtt
    from paho.mqtt.matcher import MQTTMatcher

    class _Filters(MQTTMatcher):
        """paho's per-topic callbacks (``message_callback_add``), looked up for every message received; none
        are ever added here (aiomqtt has one callback for all), and the empty lookup was 5 % of a busy
        worker's time."""

        used = False

        def __setitem__(self, key: str, value: Any) -> None:
            self.used = True
            super().__setitem__(key, value)  # type: ignore[no-untyped-call]

        def iter_match(self, topic: str) -> Iterator[Any]:
            return super().iter_match(topic) if self.used else iter(())  # type: ignore[no-untyped-call]

    class _Client(aiomqtt.Client):
        def __init__(self, *args: Any, manual_ack: bool = False, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.manual_ack = manual_ack
            # aiomqtt does not pass paho's manual_ack through; paho's own switch does it.
            self._client.manual_ack_set(manual_ack)
            # Three of paho's internals, each used only where it is what paho 2.0-2.2 has: a release that
            # changes one costs speed, not a client that cannot start (tests/test_mqtt_reader.py fails).
            paho = self._client
            create = getattr(paho, "_create_socket", None)
            if callable(create):  # paho makes its socket with this on every (re)connect
                paho._create_socket = _read_ahead(create)  # type: ignore[method-assign]
            if type(getattr(paho, "_on_message_filtered", None)) is MQTTMatcher:
                paho._on_message_filtered = _Filters()  # type: ignore[no-untyped-call]
            self._queue_packet: Callable[..., object] | None = getattr(paho, "_packet_queue", None)

        def ack(self, message: aiomqtt.Message) -> None:
            """Acknowledge a message received with ``manual_ack`` (nothing to do for QoS 0 or without it)."""
            if self.manual_ack and message.qos > 0:
                self._client.ack(message.mid, message.qos)

        def ack_many(self, messages: Sequence[aiomqtt.Message]) -> None:
            """``ack`` for each, in order, the QoS-1 acknowledgements in one write: paho queues and writes
            each on its own, a system call and its bookkeeping per frame for a worker taking thousands."""
            if not self.manual_ack:
                return
            if any(m.qos > 1 for m in messages):  # QoS 2 has its own exchange: paho's, one by one
                for m in messages:
                    self.ack(m)
                return
            mids = [m.mid for m in messages if m.qos == 1]
            queue = self._queue_packet
            if queue is None:  # a paho without it: one by one
                for mid in mids:
                    self._client.ack(mid, 1)
            elif mids:  # PUBACK: 0x40, remaining length 2, the packet id; one big-endian word each
                acks = struct.pack(f"!{len(mids)}I", *(_PUBACK_WORD | mid for mid in mids))
                queue(_PUBACK, acks, 0, 1)

        def take_queued(self, limit: int) -> list[aiomqtt.Message]:
            """Up to ``limit`` messages already received, without waiting. The worker takes its backlog
            in batches this way: aiomqtt's iterator starts a task and waits on it for every message, even
            with thousands queued, which cost a busy worker as much as decoding them."""
            queue = self._queue
            taken: list[aiomqtt.Message] = []
            while len(taken) < limit and not queue.empty():
                taken.append(queue.get_nowait())
            return taken

        def publish_nowait(
            self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False
        ) -> MQTTMessageInfo:
            """Hand a message to paho and return: paho sends it and, at QoS 1, resends it until the broker
            acknowledges it (``is_published()`` of what it returns). ``publish`` instead waits for that
            acknowledgement, and it comes in the same TCP stream as everything the broker sends this
            client: behind every frame still queued for a worker that has fallen behind. Raises
            ``aiomqtt.MqttError`` when paho refuses it (not connected)."""
            info = self._client.publish(topic, payload, qos, retain)
            if info.rc != 0:  # paho's MQTT_ERR_SUCCESS
                raise aiomqtt.MqttError(f"could not publish to {topic}: paho error {info.rc}")
            return info

        async def __aenter__(self) -> Self:
            try:
                return await super().__aenter__()
            except aiomqtt.MqttError as exc:
                # aiomqtt re-raises the ssl error's text only (``from None``); its context keeps the type.
                if isinstance(exc.__context__, ssl.SSLCertVerificationError):
                    raise aiomqtt.MqttError(
                        f"{exc}: the broker's TLS certificate is not trusted; {CA_FILE_HINT}"
                    ) from exc.__context__
                raise

    return cast("type[Client]", _Client)


def payload_bytes(payload: object) -> bytes:
    """A received message's payload as bytes (aiomqtt types it as text, a number or None too; None: empty)."""
    return bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload or "").encode()


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # A private CA's certificate (PEM) to trust instead of the system's CAs (TWITCHWATCH_MQTT_CA_FILE).
    ca_file: str | None = None

    def __repr__(self) -> str:  # never print the password
        return f"MqttTarget({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client of this target (aiomqtt and the dashboard's paho feed):
        the system's CAs, or only ``ca_file`` when one is given; None without TLS."""
        if not self.tls:
            return None
        import ssl

        context = ssl.create_default_context(cafile=self.ca_file)
        context.sslsocket_class = _closing_socket_class()
        return context

    @property
    def display(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def client(
        self,
        identifier: str | None = None,
        *,
        clean_session: bool | None = None,
        will: aiomqtt.Will | None = None,
        max_queued_outgoing: int | None = None,
        max_inflight: int | None = None,
        manual_ack: bool = False,
    ) -> Client:
        return _client_class()(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            clean_session=clean_session,
            will=will,
            tls_context=self.ssl_context(),
            keepalive=30,
            max_queued_outgoing_messages=max_queued_outgoing,
            max_inflight_messages=max_inflight,
            manual_ack=manual_ack,
        )


def parse_mqtt_url(url: str) -> MqttTarget:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS, default port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/"):
        raise MqttUrlError(
            f"expected mqtt://[user[:password]@]host[:port] or mqtts://…, got {_redact(url)!r}"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise MqttUrlError(f"bad port in MQTT URL: {exc}") from None
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        parts.hostname,
        port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        tls,
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
