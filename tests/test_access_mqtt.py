"""MQTT access control with the files the compose stack ships: per-user accounts and the ACL built by
``deploy/mosquitto/accounts.sh``, and a TLS listener with a private CA made by ``scripts/mqtt-certs.sh``,
on the harness's Mosquitto.

Mosquitto delivers nothing the ACL denies. A denied subscription is granted and receives nothing; a
denied publish is dropped, and Mosquitto 2.0.11 also closes the publisher's connection (MQTT 3.1.1 lets a
broker either acknowledge such a publish or close the connection). "Nothing arrived" is shown with a
sentinel: once the broker has handled the denied message (the connection closed, or a later request on
it answered), an allowed message is published, and once a subscriber has that one it would have had the
denied one before it: Mosquitto handles messages one at a time and queues each subscriber's in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import getpass
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from tests.harness import ServiceMissing, environ_without_settings, free_port, require_binary, unavailable
from tests.harness.access import (
    DASHBOARD,
    ROOT,
    WORKER,
    Accounts,
    add_wearer,
    build_accounts,
    make_certs,
    start_acl_broker,
)
from tests.harness.mosquitto import MosquittoServer, TlsFiles
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.dashboard.livefeed import LiveFeed
from twitchwatch.processing.events import TWITCH_KINDS
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

pytestmark = pytest.mark.mosquitto

WEARERS = {"alice": "alice-pw-0123456789", "bob": "bob-pw-0123456789"}
WAIT_S = 60.0  # a bound for waits that end on an event; the asserts after them say what was missing
RAW = "twitchwatch/+/+/raw/+"
STATUS = "twitchwatch/+/+/status"


@dataclasses.dataclass
class Stack:
    broker: MosquittoServer
    accounts: Accounts
    tls: TlsFiles

    def target(self, user: str, *, tls: bool = False, ca: bool = True) -> MqttTarget:
        """``user``'s account; over TLS trusting the private CA (``ca``) or only the system's CAs."""
        target = parse_mqtt_url(self.broker.url_for(user, tls=tls))
        return dataclasses.replace(target, ca_file=str(self.tls.ca)) if tls and ca else target

    def env(
        self, user: str, home: Path, *, tls: bool = False, ca: bool = True, **more: str
    ) -> dict[str, str]:
        """A ``twitchwatch`` subprocess's environment: this account, nothing of the developer's own."""
        env = environ_without_settings()
        env.update(TWITCHWATCH_MQTT_URL=self.broker.url_for(user, tls=tls), HOME=str(home), **more)
        if tls and ca:
            env["TWITCHWATCH_MQTT_CA_FILE"] = str(self.tls.ca)
        return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("access")
    try:
        accounts = build_accounts(work, WEARERS)
        tls = make_certs(work)
        broker = start_acl_broker(work, accounts, tls)
    except ServiceMissing as exc:
        unavailable(str(exc))
    yield Stack(broker, accounts, tls)
    broker.stop()


def frame(seq: int = 0) -> bytes:
    raw = np.zeros((50, 1), dtype=np.int16)
    return encode(Frame(0, seq, time.time_ns(), 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw))


async def until(condition: Callable[[], bool], seconds: float = WAIT_S) -> None:
    """Poll until ``condition`` holds or ``seconds`` pass; the asserts that follow say what is amiss."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls other tasks' state
        await asyncio.sleep(0.05)


class Listener:
    """The topic of every message a subscriber is delivered."""

    def __init__(self) -> None:
        self.topics: list[str] = []

    async def collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.topics.append(str(message.topic))

    async def wait_for(self, topic: str) -> None:
        await until(lambda: topic in self.topics)
        assert topic in self.topics, f"{topic} never arrived; got {self.topics}"


@contextlib.asynccontextmanager
async def listening(target: MqttTarget, *filters: str) -> AsyncIterator[Listener]:
    listener = Listener()
    async with target.client() as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        task = asyncio.create_task(listener.collect(client))
        try:
            yield listener
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def publish(target: MqttTarget, *messages: tuple[str, bytes]) -> None:
    """Publish (topic, payload) at QoS 1 as ``target``'s account, each acknowledged in turn."""
    async with target.client() as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def attempt(
    target: MqttTarget, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False
) -> None:
    """Publish what the ACL denies, as ``target``'s account, on a connection of its own; return once
    the broker has handled it (it closed the connection, or answered the subscription that follows)."""
    with contextlib.suppress(aiomqtt.MqttError):
        async with target.client() as client:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=WAIT_S)
            await client.subscribe("twitchwatch/nobody/+/status", qos=1, timeout=WAIT_S)


def plan(user: str, seconds: float = 60.0, seed: int = 1) -> SimulationPlan:
    start = dt.datetime.now().astimezone().replace(microsecond=0) - dt.timedelta(hours=1)
    return SimulationPlan(("calf_left",), "emg", start, seconds, None, 30.0, seed, user, chunk=100)


def simulate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``twitchwatch simulate`` as a user runs it, configured by ``env``."""
    argv = [sys.executable, "-m", "twitchwatch", "simulate", "--muscle", "calf_left"]
    argv += ["--duration", "5", "--speed", "max"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


# ---- accounts and ACL --------------------------------------------------------------------------------


@pytest.mark.parametrize("qos", [0, 1])
async def test_a_wearer_publishes_only_its_own_topics(stack: Stack, qos: int) -> None:
    alice = stack.target("alice")
    sentinel = f"twitchwatch/alice/sentinel-{qos}/raw/emg"
    planted = f"twitchwatch/bob/spoof-{qos}/status"
    async with listening(stack.target(WORKER), RAW, STATUS) as worker_sees:
        await attempt(alice, f"twitchwatch/bob/spoof-{qos}/raw/emg", frame(), qos=qos)
        # A status that once crash-looped the worker, retained for every later subscriber.
        await attempt(alice, planted, b'{"state": "online", "stream_id": 1e999}', qos=qos, retain=True)
        await publish(alice, (sentinel, frame()))
        await worker_sees.wait_for(sentinel)
    assert [t for t in worker_sees.topics if t.startswith("twitchwatch/bob/")] == []
    # Nor was the status kept: retained messages come right after the subscription, so they are all
    # in by the time a message published afterwards arrives.
    statuses = ("twitchwatch/bob/+/status", "twitchwatch/alice/+/status")
    async with listening(stack.target(WORKER), *statuses) as later:
        await publish(alice, (f"twitchwatch/alice/sentinel-{qos}/status", b"{}"))
        await later.wait_for(f"twitchwatch/alice/sentinel-{qos}/status")
    assert planted not in later.topics


@pytest.mark.parametrize(
    ("account", "user"),
    [("alice", "bob"), (DASHBOARD, "alice")],
    ids=["as-another-wearer", "as-the-dashboard"],
)
async def test_the_simulator_cannot_stream_for_someone_else(stack: Stack, account: str, user: str) -> None:
    """The real simulator, its frames, statuses and last will on ``user``'s topics, with ``account``'s
    credentials: the broker closes its connection at the first denied publish, and not one message
    arrives, its last will included."""
    async with listening(stack.target(WORKER), RAW, STATUS) as worker_sees:
        # Whatever the simulator makes of its lost connection (issue 14 item 4 is about that), it ends.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run_simulation(plan(user, seconds=5), stack.target(account)), WAIT_S)
        await publish(stack.target("alice"), ("twitchwatch/alice/sentinel/raw/emg", frame()))
        await worker_sees.wait_for("twitchwatch/alice/sentinel/raw/emg")
    assert worker_sees.topics == ["twitchwatch/alice/sentinel/raw/emg"]


async def test_a_wearer_marks_a_felt_twitch_for_the_worker_and_for_no_one_else(stack: Stack) -> None:
    """The compose ACL let no one publish or read ``twitchwatch/<user>/felt``: marks from a phone shortcut
    or a Home Assistant button never reached the worker. A wearer marks its own; another's it cannot."""
    felt = "twitchwatch/+/felt"
    async with listening(stack.target(WORKER), felt) as worker_sees:
        await attempt(stack.target("bob"), "twitchwatch/alice/felt", b"{}")
        await publish(stack.target("alice"), ("twitchwatch/alice/felt", b'{"muscle": "calf_left"}'))
        await worker_sees.wait_for("twitchwatch/alice/felt")
    assert worker_sees.topics == ["twitchwatch/alice/felt"]


async def test_a_wearer_cannot_read_another_wearers_topics(stack: Stack) -> None:
    bobs = "twitchwatch/bob/dev/raw/emg"
    async with (
        listening(stack.target("alice"), "twitchwatch/bob/#", "twitchwatch/#") as alice_sees,
        listening(stack.target(WORKER), RAW) as worker_sees,
    ):
        await publish(stack.target("bob"), (bobs, frame()))
        await worker_sees.wait_for(bobs)  # it was there to be read
        await publish(stack.target("alice"), ("twitchwatch/alice/sentinel/raw/emg", frame()))
        await alice_sees.wait_for("twitchwatch/alice/sentinel/raw/emg")  # her own, she may read
    assert [t for t in alice_sees.topics if not t.startswith("twitchwatch/alice/")] == []


async def test_the_dashboard_account_cannot_publish(stack: Stack) -> None:
    dashboard = stack.target(DASHBOARD)
    async with listening(stack.target(WORKER), RAW, STATUS) as worker_sees:
        await attempt(dashboard, "twitchwatch/alice/from-dashboard/raw/emg", frame())
        await attempt(dashboard, "twitchwatch/alice/from-dashboard/status", b"{}", retain=True)
        await publish(stack.target("alice"), ("twitchwatch/alice/sentinel/raw/emg", frame()))
        await worker_sees.wait_for("twitchwatch/alice/sentinel/raw/emg")
    assert [t for t in worker_sees.topics if "from-dashboard" in t] == []
    # Nor what the worker publishes: a forged event list or flag set.
    async with listening(stack.target(DASHBOARD), "twitchwatch/+/+/events", "twitchwatch/+/flags") as seen:
        await attempt(dashboard, "twitchwatch/alice/from-dashboard/events", b"[]")
        await attempt(dashboard, "twitchwatch/alice/flags", b"{}", retain=True)
        await publish(stack.target(WORKER), ("twitchwatch/alice/sentinel/events", b"[]"))
        await seen.wait_for("twitchwatch/alice/sentinel/events")
    assert seen.topics == ["twitchwatch/alice/sentinel/events"]


async def test_the_worker_reads_every_wearer_and_the_dashboard_reads_its_events(
    stack: Stack, tmp_path: Path
) -> None:
    """The real parts: each wearer's simulator with its own account, the worker with its account over
    everyone's topics, the dashboard's live feed and an events subscriber with the dashboard's."""
    store = SQLiteStore(tmp_path / "events.db")
    worker = Worker(stack.target(WORKER), store, client_id="acl-worker", flush_interval=0.2)
    feed = LiveFeed(stack.target(DASHBOARD), "alice").start()
    try:
        async with listening(stack.target(DASHBOARD), "twitchwatch/+/+/events") as dashboard_sees:
            task = asyncio.create_task(worker.run())
            await asyncio.wait_for(worker.connected.wait(), WAIT_S)
            sent = await asyncio.gather(
                run_simulation(plan("alice", seed=1), stack.target("alice")),
                run_simulation(plan("bob", seed=2), stack.target("bob")),
            )
            await until(lambda: worker.stats.frames >= sum(s.frames for s in sent))
            worker.stop()
            await asyncio.wait_for(task, WAIT_S)
            await until(lambda: {t.split("/")[1] for t in dashboard_sees.topics} >= {"alice", "bob"})
        assert worker.stats.frames == sum(s.frames for s in sent)
        for user in WEARERS:
            assert store.events(EventQuery(user=user, kinds=TWITCH_KINDS)), f"no events stored for {user}"
        assert {t.split("/")[1] for t in dashboard_sees.topics} == {"alice", "bob"}
        await until(lambda: bool(feed.snapshot().streams))
        snapshot = feed.snapshot()
        assert snapshot.state == "connected", snapshot.problem
        assert [s.device for s in snapshot.streams] == ["sim-calf_left"]  # alice's only
    finally:
        feed.stop()
        store.close()


async def test_a_wearer_added_while_the_broker_runs(stack: Stack) -> None:
    carol = dataclasses.replace(stack.target("alice"), username="carol", password="carol-pw-0123456789")
    with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
        await publish(carol)
    stack.accounts = add_wearer(stack.accounts, "carol", "carol-pw-0123456789")
    stack.broker.reload()

    async def accepted() -> bool:
        try:
            await publish(carol)
        except aiomqtt.MqttError:
            return False
        return True

    deadline = time.monotonic() + WAIT_S
    while not await accepted() and time.monotonic() < deadline:  # noqa: ASYNC110 - the broker's reload
        await asyncio.sleep(0.1)
    async with listening(stack.target(WORKER), RAW) as worker_sees:
        await attempt(carol, "twitchwatch/alice/by-carol/raw/emg", frame())
        await publish(carol, ("twitchwatch/carol/dev/raw/emg", frame()))
        await worker_sees.wait_for("twitchwatch/carol/dev/raw/emg")
    assert "twitchwatch/alice/by-carol/raw/emg" not in worker_sees.topics


# ---- TLS ---------------------------------------------------------------------------------------------


async def test_tls_with_the_private_ca(stack: Stack, tmp_path: Path) -> None:
    """Every kind of client over the TLS listener, trusting the CA through TWITCHWATCH_MQTT_CA_FILE:
    the simulator (a subprocess configured by the environment), the worker and the dashboard's feed."""
    store = SQLiteStore(tmp_path / "events.db")
    worker = Worker(stack.target(WORKER, tls=True), store, user="alice", client_id="tls-worker")
    feed = LiveFeed(stack.target(DASHBOARD, tls=True), "alice").start()
    try:
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), WAIT_S)
        done = await asyncio.to_thread(
            simulate, stack.env("alice", tmp_path, tls=True, TWITCHWATCH_USER="alice")
        )
        assert done.returncode == 0, done.stderr
        await until(lambda: worker.stats.frames > 0)
        worker.stop()
        await asyncio.wait_for(task, WAIT_S)
        assert worker.stats.frames > 0
        await until(lambda: feed.snapshot().state == "connected")
        assert feed.snapshot().state == "connected", feed.snapshot().problem
    finally:
        feed.stop()
        store.close()


async def test_tls_without_the_ca_fails_with_what_to_set(stack: Stack, tmp_path: Path) -> None:
    done = simulate(stack.env("alice", tmp_path, tls=True, ca=False, TWITCHWATCH_USER="alice"))
    assert done.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert "TWITCHWATCH_MQTT_CA_FILE" in done.stderr
    with pytest.raises(aiomqtt.MqttError, match="TWITCHWATCH_MQTT_CA_FILE"):
        await publish(stack.target(WORKER, tls=True, ca=False))
    feed = LiveFeed(stack.target(DASHBOARD, tls=True, ca=False), "alice").start()
    try:
        await until(lambda: feed.snapshot().state == "unreachable")
        snapshot = feed.snapshot()
        assert snapshot.state == "unreachable"
        assert "TWITCHWATCH_MQTT_CA_FILE" in snapshot.problem
    finally:
        feed.stop()


def test_ca_file_reaches_the_clients_through_the_settings(
    clean_env: None, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twitchwatch.config import load_settings

    monkeypatch.setenv("TWITCHWATCH_MQTT_URL", stack.broker.url_for("alice", tls=True))
    monkeypatch.setenv("TWITCHWATCH_MQTT_CA_FILE", str(stack.tls.ca))
    target = load_settings().mqtt
    assert target.ca_file == str(stack.tls.ca)
    context = target.ssl_context()
    assert context is not None
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "twitchwatch private CA"),),)]


async def test_the_compose_broker_configuration(tmp_path: Path) -> None:
    """deploy/mosquitto/mosquitto.conf as Mosquitto reads it, with the files the mosquitto-setup service
    makes (their paths, the ports and the log moved into a temp dir): over TLS a wearer trusting the
    private CA gets in; without an account, nobody."""
    try:
        tls = make_certs(tmp_path)
        accounts = build_accounts(tmp_path, {"alice": WEARERS["alice"]}, tls)
        binary = require_binary("mosquitto", "mosquitto")
    except ServiceMissing as exc:
        unavailable(str(exc))
    plain, secure = free_port(), free_port()
    log = tmp_path / "mosquitto.log"
    (tmp_path / "data").mkdir()
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    for production, here in [
        ("/mosquitto/accounts", str(accounts.passwd.parent)),
        ("/mosquitto/data/", f"{tmp_path / 'data'}/"),
        ("listener 1883\n", f"listener {plain} 127.0.0.1\n"),
        ("listener 8883\n", f"listener {secure} 127.0.0.1\n"),
        ("log_dest stdout\n", f"log_dest file {log}\nuser {getpass.getuser()}\n"),
    ]:
        assert production in conf, production
        conf = conf.replace(production, here)
    (tmp_path / "mosquitto.conf").write_text(conf)
    broker = MosquittoServer._launch(binary, tmp_path / "mosquitto.conf", (plain, secure), log)
    try:
        alice = MqttTarget("127.0.0.1", secure, "alice", WEARERS["alice"], tls=True, ca_file=str(tls.ca))
        await publish(alice, ("twitchwatch/alice/dev/status", b"{}"))
        await publish(alice, ("twitchwatch/alice/dev/raw/emg", bytes(250_000)))  # a frame's most, about
        with pytest.raises(aiomqtt.MqttError):  # past max_packet_size: refused, the client disconnected
            await asyncio.wait_for(publish(alice, ("twitchwatch/alice/dev/raw/emg", bytes(2 * 2**20))), 20)
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            await publish(dataclasses.replace(alice, username=None, password=None))
        with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
            await publish(MqttTarget("127.0.0.1", plain, "alice", "not her password"))
    finally:
        broker.terminate()
        broker.wait(10)
