"""Dashboard test helpers: synthetic events/rates to seed a store, and the real dashboard as a process."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness import free_port
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.dashboard_launch import dashboard_command
from twitchwatch.processing.events import EventKind, MinuteRate, Source, TwitchEvent

NS = 1_000_000_000
USER = "me"


def event(
    muscle: str,
    start_ns: int,
    kind: EventKind = EventKind.FASCICULATION,
    source: Source = "live",
    amplitude: float = 0.2,
    user: str = USER,
) -> TwitchEvent:
    return TwitchEvent(
        user=user,
        muscle=muscle,
        device="sim1",
        stream="emg",
        channel=0,
        kind=kind,
        start_ns=start_ns,
        end_ns=start_ns + 30_000_000,
        amplitude=amplitude,
        unit="mV",
        confidence=0.9,
        source=source,
        session_id="test",
    )


def spread(
    muscle: str,
    count: int,
    first_ns: int,
    step_s: float,
    kind: EventKind = EventKind.FASCICULATION,
    source: Source = "live",
) -> list[TwitchEvent]:
    """``count`` events on ``muscle``, ``step_s`` apart from ``first_ns``."""
    return [event(muscle, first_ns + int(i * step_s * NS), kind, source) for i in range(count)]


ALL_WORN = -1.0


def minute_rates(
    muscle: str,
    first_minute_ns: int,
    minutes: int,
    monitored_s: float,
    source: Source = "live",
    rest_s: float | None = ALL_WORN,
) -> list[MinuteRate]:
    """``minutes`` minute rates from ``first_minute_ns``, each worn ``monitored_s`` and at rest ``rest_s``
    (by default all the time worn; None: a row stored before rest tracking)."""
    rest = monitored_s if rest_s == ALL_WORN else rest_s
    return [
        MinuteRate(USER, muscle, "sim1", source, first_minute_ns + i * 60 * NS, 0, monitored_s, rest)
        for i in range(minutes)
    ]


def minute_floor(ns: int) -> int:
    return ns // (60 * NS) * (60 * NS)


@dataclass
class DashboardProcess:
    """``twitchwatch``'s real dashboard (``dashboard_command``) on a free loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        store_url: str,
        workdir: Path,
        mqtt_url: str | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> DashboardProcess:
        """``env``: more settings, e.g. ``TWITCHWATCH_DASHBOARD_PASSWORD_FILE``."""
        port = free_port()
        log = workdir / "streamlit.log"
        environ = dict(os.environ, TWITCHWATCH_STORE_URL=store_url, TWITCHWATCH_USER=USER)
        # No broker given: a closed port, so the dashboard never reaches a developer's own broker.
        environ["TWITCHWATCH_MQTT_URL"] = mqtt_url or f"mqtt://127.0.0.1:{free_port()}"
        # Keep Streamlit's per-user files (~/.streamlit) out of the real home directory.
        environ["HOME"] = str(workdir)
        environ.update(env or {})
        with log.open("wb") as out:
            proc = subprocess.Popen(
                dashboard_command("127.0.0.1", port), env=environ, stdout=out, stderr=subprocess.STDOUT
            )
        server = cls(port, proc, log)
        try:
            server.wait_healthy(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"dashboard not healthy on {self.url} within {timeout} s "
            f"(exit code {self.process.poll()}); log:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def stop(self) -> int:
        """SIGTERM, as ``run_dashboard`` forwards it; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Sequence[str] = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class MqttSender:
    """A plain paho client for tests that put frames and statuses on the bus the way devices do."""

    def __init__(self, mqtt_url: str) -> None:
        target = parse_mqtt_url(mqtt_url)
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        if target.username is not None:
            self._client.username_pw_set(target.username, target.password)
        self._client.connect(target.host, target.port)
        self._client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            raise RuntimeError(f"publish to {topic} not acknowledged within 30 s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
