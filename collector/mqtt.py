"""MQTT connection parameters and client construction, shared by publishers and the worker."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt


class MqttUrlError(ValueError):
    """An MQTT URL is malformed."""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __repr__(self) -> str:  # never print the password
        return f"MqttTarget({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"

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
    ) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            clean_session=clean_session,
            will=will,
            tls_context=ssl.create_default_context() if self.tls else None,
            keepalive=30,
            max_queued_outgoing_messages=max_queued_outgoing,
            max_inflight_messages=max_inflight,
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
