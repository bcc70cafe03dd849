"""Publishes one device's frames over MQTT, with a retained status topic backed by a last-will."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

import aiomqtt

from twitchwatch.collector.frames import Frame, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.collector.topics import Topic

log = logging.getLogger(__name__)

# QoS-1 publishes kept in flight at once: enough to hide the broker round trip at replay speed.
IN_FLIGHT = 64


class PublishError(RuntimeError):
    """The broker could not be reached or refused a publish; the message names the broker."""


async def connect_publisher(target: MqttTarget, status_topic: str, offline: bytes) -> aiomqtt.Client:
    """A connected client for one device's frames: ``offline`` is its retained last will on
    ``status_topic``, and up to ``IN_FLIGHT`` QoS-1 publishes may wait for their acknowledgements."""
    will = aiomqtt.Will(status_topic, offline, qos=1, retain=True)
    client = target.client(will=will, max_inflight=IN_FLIGHT * 2)
    client.pending_calls_threshold = IN_FLIGHT + 8  # our window is deliberate, not a backlog
    await client.__aenter__()
    return client


def connect_error(target: MqttTarget, exc: aiomqtt.MqttError) -> PublishError:
    return PublishError(
        f"cannot connect to MQTT broker {target.display}: {exc}; is it running, "
        "and are TWITCHWATCH_MQTT_URL's credentials right?"
    )


class FramePublisher:
    """``async with FramePublisher(...) as pub: await pub.publish("emg", frame)``.

    The broker learns the offline status as this client's will, so a crash still marks the device offline.
    """

    def __init__(self, target: MqttTarget, user: str, device: str, status: DeviceStatus) -> None:
        self._target = target
        self._status_topic = str(Topic(user, device, "status"))
        self._user, self._device = user, device
        self._status = status
        self._offline = DeviceStatus.offline(status.profile, status.source, status.session_id).to_json()
        self._client: aiomqtt.Client | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.frames_sent = 0

    async def __aenter__(self) -> FramePublisher:
        try:
            client = await connect_publisher(self._target, self._status_topic, self._offline)
        except aiomqtt.MqttError as exc:
            raise connect_error(self._target, exc) from exc
        self._client = client
        await client.publish(self._status_topic, self._status.to_json(), qos=1, retain=True)
        return self

    async def publish(self, stream: str, frame: Frame) -> None:
        client = self._require()
        topic = str(Topic(self._user, self._device, "raw", stream))
        while len(self._in_flight) >= IN_FLIGHT:
            done, self._in_flight = await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            _raise_first(done)  # a failed publish surfaces here rather than vanishing
        # Tasks start in creation order, so paho queues the frames in sequence order.
        task = asyncio.create_task(client.publish(topic, encode(frame), qos=1))
        self._in_flight.add(task)
        self.frames_sent += 1

    async def drain(self) -> None:
        """Wait until every frame published so far is acknowledged by the broker."""
        if self._in_flight:
            done, _ = await asyncio.wait(self._in_flight)
            self._in_flight.clear()
            _raise_first(done)

    def _require(self) -> aiomqtt.Client:
        if self._client is None:
            raise RuntimeError("FramePublisher used outside 'async with'")
        return self._client

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        client = self._require()
        try:
            if exc_type is None:
                await self.drain()
            else:
                for task in self._in_flight:
                    if task.done() and not task.cancelled():
                        task.exception()  # taken: the error that ended the caller says it already
                    task.cancel()
            await client.publish(self._status_topic, self._offline, qos=1, retain=True)
        except aiomqtt.MqttError as err:
            log.warning("could not mark %s offline on %s: %s", self._device, self._target.display, err)
        finally:
            self._client = None
            await client.__aexit__(exc_type, exc, tb)


def _raise_first(done: set[asyncio.Task[None]]) -> None:
    """Raise the first failure among finished publishes, after taking every task's outcome: a failure left
    untaken is logged by asyncio as "never retrieved" whenever the task happens to be collected."""
    errors = [task.exception() for task in done if not task.cancelled()]
    for error in errors:
        if error is not None:
            raise error
