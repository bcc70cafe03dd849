"""Connecting one device's publisher: its retained status topic backed by a last will (the publishing itself,
with its outbox and reconnects, is collector/outbox.py)."""

from __future__ import annotations

import aiomqtt

from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.errors import TwitchwatchError

# QoS-1 publishes kept in flight at once: enough to hide the broker round trip at replay speed.
IN_FLIGHT = 64


class PublishError(TwitchwatchError, RuntimeError):
    """The broker could not be reached or refused a publish; the message names the broker."""


async def connect_publisher(
    target: MqttTarget, status_topic: str, offline: bytes, identifier: str | None = None
) -> aiomqtt.Client:
    """A connected client for one device's frames: ``offline`` is its retained last will on
    ``status_topic``, and up to ``IN_FLIGHT`` QoS-1 publishes may wait for their acknowledgements."""
    will = aiomqtt.Will(status_topic, offline, qos=1, retain=True)
    client = target.client(identifier, will=will, max_inflight=IN_FLIGHT * 2)
    client.pending_calls_threshold = IN_FLIGHT + 8  # our window is deliberate, not a backlog
    await client.__aenter__()
    return client


def connect_error(target: MqttTarget, exc: aiomqtt.MqttError) -> PublishError:
    return PublishError(
        f"cannot connect to MQTT broker {target.display}: {exc}; is it running, "
        "and are TWITCHWATCH_MQTT_URL's credentials right?"
    )
