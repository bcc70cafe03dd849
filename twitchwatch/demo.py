"""``twitchwatch demo``: embedded broker (amqtt), SQLite store, a simulated wearable on two muscles, the
worker and the dashboard, all on this machine, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

from amqtt.broker import Broker

from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.config import Settings
from twitchwatch.processing.store import open_store
from twitchwatch.processing.worker import Worker

log = logging.getLogger(__name__)
DEMO_MUSCLES = ("calf_left", "calf_right")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def pick_broker_port(preferred: int = 1883) -> int:
    """1883 when free; otherwise (a system Mosquitto, say) any free loopback port."""
    if port_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> AsyncIterator[MqttTarget]:
    """An in-process MQTT broker on loopback only: anonymous access, since only this machine can reach it."""
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield MqttTarget("127.0.0.1", port)
    finally:
        await broker.shutdown()


def start_dashboard(settings: Settings, port: int, broker: MqttTarget) -> subprocess.Popen[bytes]:
    from twitchwatch.dashboard_launch import dashboard_command

    env = dict(os.environ, TWITCHWATCH_STORE_URL=settings.store_url, TWITCHWATCH_USER=settings.user)
    # The Live page's raw signal comes from the embedded broker (anonymous, loopback only).
    env["TWITCHWATCH_MQTT_URL"] = f"mqtt://{broker.host}:{broker.port}"
    for key in ("TWITCHWATCH_MQTT_PASSWORD", "TWITCHWATCH_MQTT_PASSWORD_FILE", "TWITCHWATCH_MQTT_CA_FILE"):
        env.pop(key, None)  # the user's own broker's, not the embedded one's
    return subprocess.Popen(dashboard_command("127.0.0.1", port), env=env)


async def run_demo(
    settings: Settings, stop: asyncio.Event, dashboard_port: int, rate: float, signal: str
) -> int:
    store = open_store(settings.store_url, settings.influx_auth, create=True)
    broker_port = pick_broker_port()
    plan = SimulationPlan(
        muscles=DEMO_MUSCLES,
        signal="acc" if signal == "acc" else "emg",
        start=dt.datetime.now().astimezone(),
        duration_s=30 * 86400.0,  # runs until stopped
        speed=1.0,
        per_minute=rate,
        seed=random.randrange(2**31),
        user=settings.user,
    )
    dashboard = None
    try:
        async with embedded_broker(broker_port) as target:
            worker = Worker(
                target, store, user=settings.user, client_id="twitchwatch-demo-worker", flush_interval=0.5
            )
            async with asyncio.TaskGroup() as tg:
                worker_task = tg.create_task(worker.run())
                await asyncio.wait_for(worker.connected.wait(), 10)
                sim_task = tg.create_task(run_simulation(plan, target))
                dashboard = start_dashboard(settings, dashboard_port, target)
                _announce(settings, target, dashboard_port)
                await stop.wait()
                print("\nstopping…", file=sys.stderr)
                sim_task.cancel()
                worker.stop()
                await asyncio.gather(sim_task, worker_task, return_exceptions=True)
            log.info("demo stored %d events", worker.stats.events_stored)
    finally:
        if dashboard is not None:
            dashboard.terminate()
            try:
                dashboard.wait(10)
            except subprocess.TimeoutExpired:
                dashboard.kill()
        store.close()
    return 0


def _announce(settings: Settings, target: MqttTarget, port: int) -> None:
    print(
        "\n"
        f"  twitchwatch demo — simulated wearable on {', '.join(DEMO_MUSCLES)}\n"
        f"  dashboard:  http://localhost:{port}\n"
        f"  broker:     {target.display} (embedded)\n"
        f"  store:      {settings.store_url} (the demo's own: your own store is left alone)\n"
        "  Twitch frequency appears within a minute. Ctrl-C stops everything.\n"
        "  twitchwatch is not a medical device and does not diagnose anything.\n",
        file=sys.stderr,
        flush=True,
    )
