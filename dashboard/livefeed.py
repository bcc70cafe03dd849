"""The Live page's view of the MQTT bus: the last seconds of raw signal per stream, and each device's
retained status.

One ``LiveFeed`` per dashboard process (the entry script keeps it in ``st.cache_resource``) owns one
paho client whose network thread receives the frames; Streamlit sessions only read copies through
``snapshot()``. The feed never publishes and never writes anything: it only looks.

Without a broker the client keeps retrying in its thread (1 s doubling to 30 s) and ``snapshot()``
says why it is not connected, so the page can say so while the rest of it works.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from twitchwatch.collector.continuity import continuity
from twitchwatch.collector.frames import Frame, FrameError, decode
from twitchwatch.collector.mqtt import CA_FILE_HINT, MqttTarget
from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.collector.status import DeviceStatus, StatusError
from twitchwatch.collector.topics import Topic, TopicError, raw_filter, status_filter
from twitchwatch.processing.timeunits import NS_PER_S

log = logging.getLogger(__name__)
WINDOW_S = 30.0
# A frame queue bound on top of the time window, for a stream with tiny frames at a high rate.
MAX_FRAMES = 20_000

BrokerState = Literal["connecting", "connected", "unreachable"]


@dataclass(frozen=True)
class StreamView:
    """A copy of one stream's recent signal and its reception counters."""

    device: str
    stream: str
    unit: str
    sample_rate: float
    t_ns: npt.NDArray[np.int64]  # device time of each sample
    values: npt.NDArray[np.float64]  # (samples, channels), physical units
    frames: int  # received since the dashboard started
    missing: int  # frames lost, from gaps in the sequence numbers
    bad: int  # payloads that did not decode
    last_arrival_ns: int  # wall clock of the latest frame's arrival

    @property
    def channels(self) -> int:
        return int(self.values.shape[1]) if self.values.ndim == 2 else 0


@dataclass(frozen=True)
class FeedSnapshot:
    broker: str  # mqtt://host:port, never the credentials
    state: BrokerState
    problem: str  # why not connected, "" when connected
    statuses: dict[str, DeviceStatus]  # device -> retained status
    streams: list[StreamView]
    taken_ns: int
    listening_since_ns: int = 0  # when the feed last (re)connected; 0 while it is not connected


@dataclass
class _Stream:
    unit: str = ""
    sample_rate: float = 0.0
    frames: deque[tuple[int, npt.NDArray[np.float64]]] = field(
        default_factory=lambda: deque(maxlen=MAX_FRAMES)
    )
    received: int = 0
    missing: int = 0
    bad: int = 0
    last_sequence: int | None = None
    expected_t0_ns: int = 0  # where the last frame ended
    last_arrival_ns: int = 0

    def add(self, frame: Frame, arrival_ns: int, window_ns: int) -> None:
        if self.last_sequence is not None:
            self.missing += continuity(self.last_sequence, self.expected_t0_ns, frame).missing
        if frame.sample_rate != self.sample_rate or frame.unit.symbol != self.unit:
            self.frames.clear()  # a reconfigured stream: old samples no longer line up
        self.unit, self.sample_rate = frame.unit.symbol, frame.sample_rate
        self.last_sequence = frame.sequence
        self.expected_t0_ns = frame.t0_ns + frame.duration_ns
        self.received += 1
        self.last_arrival_ns = arrival_ns
        self.frames.append((frame.t0_ns, frame.values()))
        newest_end = frame.t0_ns + frame.duration_ns
        while self.frames and self.frames[0][0] + _span_ns(self.frames[0][1], self.sample_rate) < (
            newest_end - window_ns
        ):
            self.frames.popleft()

    def view(self, device: str, stream: str) -> StreamView:
        if self.frames:
            step = NS_PER_S / self.sample_rate
            times = [t0 + (np.arange(len(v)) * step).astype(np.int64) for t0, v in self.frames]
            t_ns = np.concatenate(times).astype(np.int64)
            values = np.concatenate([v for _, v in self.frames])
            order = np.argsort(t_ns, kind="stable")  # frames may arrive out of order
            t_ns, values = t_ns[order], values[order]
        else:
            t_ns, values = np.zeros(0, np.int64), np.zeros((0, 0))
        return StreamView(
            device,
            stream,
            self.unit,
            self.sample_rate,
            t_ns,
            values,
            self.received,
            self.missing,
            self.bad,
            self.last_arrival_ns,
        )


def _span_ns(values: npt.NDArray[np.float64], rate: float) -> int:
    return round(len(values) * NS_PER_S / rate)


class LiveFeed:
    """Subscribes to ``user``'s raw and status topics and keeps the last ``window_s`` of each stream."""

    def __init__(self, target: MqttTarget, user: str, window_s: float = WINDOW_S) -> None:
        self._target = target
        self._user = user
        self._window_ns = int(window_s * NS_PER_S)
        self._lock = threading.Lock()
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._statuses: dict[str, DeviceStatus] = {}
        self._state: BrokerState = "connecting"
        self._problem = "not connected yet"
        self._listening_since_ns = 0
        self._warn = RateLimitedLog(log)
        # A random client id and a clean session: the dashboard wants what happens now, never a backlog.
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"twitchwatch-dashboard-{uuid.uuid4().hex[:8]}",
            clean_session=True,
        )
        if target.username is not None:
            self._client.username_pw_set(target.username, target.password)
        tls = target.ssl_context()  # the system's CAs, or TWITCHWATCH_MQTT_CA_FILE's
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._started = False

    def start(self) -> LiveFeed:
        if not self._started:
            self._started = True
            try:
                self._client.connect_async(self._target.host, self._target.port, keepalive=30)
            except (OSError, ValueError) as exc:
                self._set_state("unreachable", str(exc))
            self._client.loop_start()
        return self

    def stop(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def snapshot(self) -> FeedSnapshot:
        with self._lock:
            streams = [s.view(device, name) for (device, name), s in sorted(self._streams.items())]
            return FeedSnapshot(
                self._target.display,
                self._state,
                self._problem,
                dict(self._statuses),
                streams,
                time.time_ns(),
                self._listening_since_ns,
            )

    # ---- paho callbacks (its network thread) -------------------------------------------------------
    def _set_state(self, state: BrokerState, problem: str) -> None:
        with self._lock:
            self._state, self._problem = state, problem
            self._listening_since_ns = (
                (self._listening_since_ns or time.time_ns()) if state == "connected" else 0
            )

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._set_state("unreachable", f"the broker refused the connection: {reason}")
            return
        # "connected" once the broker has the subscriptions (SUBACK): before that a frame published
        # elsewhere would not reach the feed, and silence is judged from ``listening_since_ns``.
        client.subscribe([(raw_filter(self._user), 0), (status_filter(self._user), 0)])

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:  # an ACL that denies this user's topics: say so rather than wait for data in silence
            self._set_state("unreachable", f"the broker refused the subscription: {refused[0]}")
            return
        self._set_state("connected", "")

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        # paho does not pass the reason; with TLS an untrusted certificate is the usual one.
        hint = f"; {CA_FILE_HINT}" if self._target.tls else ""
        self._set_state("unreachable", f"cannot connect (is the broker running?{hint})")

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._set_state("unreachable", f"disconnected: {reason}")

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        # On paho's network thread: an exception escaping here ends that thread, and the Live page froze
        # with the feed still saying "connected". Whatever one message raises is logged, and the next comes.
        try:
            self._dispatch(message)
        except Exception:
            self._warn.exception(
                "internal", "dashboard feed: a message on %.200r failed (a bug)", message.topic
            )

    def _dispatch(self, message: paho.MQTTMessage) -> None:
        try:
            topic = Topic.parse(message.topic)
        except TopicError as exc:
            self._warn.warning("topic", "dashboard feed: ignoring %s", exc)
            return
        if topic.kind == "status":
            self._on_status(topic.device, bytes(message.payload))
        elif topic.kind == "raw" and topic.stream is not None:
            self._on_frame(topic.device, topic.stream, bytes(message.payload))

    def _on_status(self, device: str, payload: bytes) -> None:
        if not payload:  # a cleared retained status: the device is gone
            with self._lock:
                self._statuses.pop(device, None)
            return
        try:
            status = DeviceStatus.from_json(payload)
        except StatusError as exc:
            self._warn.warning(f"status:{device}", "dashboard feed: bad status from %s: %s", device, exc)
            return
        with self._lock:
            self._statuses[device] = status

    def _on_frame(self, device: str, stream: str, payload: bytes) -> None:
        arrival = time.time_ns()
        try:
            frame = decode(payload)
        except FrameError as exc:
            with self._lock:
                self._streams.setdefault((device, stream), _Stream()).bad += 1
            self._warn.warning(
                f"frame:{device}/{stream}", "dashboard feed: bad frame on %s/%s: %s", device, stream, exc
            )
            return
        with self._lock:
            self._streams.setdefault((device, stream), _Stream()).add(frame, arrival, self._window_ns)
