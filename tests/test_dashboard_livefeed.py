"""The Live page's MQTT feed against the harness's real Mosquitto (and against no broker at all)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from tests.harness import free_port
from tests.harness.dashboard import NS, USER, MqttSender
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.frames import MAX_SEQUENCE, Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.dashboard.livefeed import FeedSnapshot, LiveFeed

T0 = 1_700_000_000 * NS


def wait_for(
    feed: LiveFeed, done: Callable[[FeedSnapshot], bool], what: str, timeout: float = 30.0
) -> FeedSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snap = feed.snapshot()
        if done(snap):
            return snap
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s: {snap.state} {snap.problem}")
        time.sleep(0.05)


@pytest.fixture
def feed(mosquitto: MosquittoServer) -> Iterator[LiveFeed]:
    started = LiveFeed(parse_mqtt_url(mosquitto.url), USER, window_s=30.0).start()
    yield started
    started.stop()


def one_second(sequence: int, t0_ns: int, rate: float = 100.0, value: int = 1) -> bytes:
    raw = np.full((int(rate), 1), value, dtype=np.int16)
    return encode(Frame(0, sequence, t0_ns, rate, 1.0, Unit.G, SampleType.INT16, raw))


def test_keeps_the_last_window_across_a_sequence_wrap(feed: LiveFeed, mosquitto: MosquittoServer) -> None:
    connected = wait_for(feed, lambda s: s.state == "connected", "the connection")
    assert 0 < connected.listening_since_ns <= connected.taken_ns  # from when silence is judged
    device = f"dev{uuid.uuid4().hex[:6]}"
    topic = f"twitchwatch/{USER}/{device}/raw/acc"
    with MqttSender(mosquitto.url) as sender:
        sender.send(
            f"twitchwatch/{USER}/{device}/status", DeviceStatus("online", battery_percent=5).to_json()
        )
        # 40 one-second frames, sequence numbers running over the u32 wrap without a gap.
        for i in range(40):
            sender.send(topic, one_second((MAX_SEQUENCE - 20 + i) % MAX_SEQUENCE, T0 + i * NS, value=i))
    snap = wait_for(feed, lambda s: bool(s.streams) and s.streams[0].frames == 40, "40 frames")
    [view] = snap.streams
    assert (view.device, view.stream, view.unit, view.sample_rate) == (device, "acc", "g", 100.0)
    assert view.missing == 0
    assert snap.statuses[device].battery_percent == 5
    # Only the frames that reach into the last 30 s are kept: the first 9 are gone.
    span_s = (int(view.t_ns[-1]) - int(view.t_ns[0])) / NS
    assert 29.0 <= span_s <= 31.0
    assert view.values[0, 0] == 9
    assert view.values[-1, 0] == 39
    assert list(view.t_ns) == sorted(view.t_ns)


def test_counts_gaps_and_undecodable_payloads(feed: LiveFeed, mosquitto: MosquittoServer) -> None:
    wait_for(feed, lambda s: s.state == "connected", "the connection")
    device = f"dev{uuid.uuid4().hex[:6]}"
    topic = f"twitchwatch/{USER}/{device}/raw/emg"
    with MqttSender(mosquitto.url) as sender:
        for seq in (10, 11, 15):
            sender.send(topic, one_second(seq, T0 + seq * NS))
        sender.send(topic, b"\x09" * 30)  # wrong format version
    snap = wait_for(feed, lambda s: bool(s.streams) and s.streams[0].bad == 1, "the bad payload")
    [view] = snap.streams
    assert (view.frames, view.missing, view.bad) == (3, 3, 1)


def test_a_message_that_breaks_its_handler_does_not_freeze_the_feed(
    feed: LiveFeed, mosquitto: MosquittoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status whose stream signal is a list raised TypeError on paho's network thread, which ended it:
    the Live page froze with the feed still "connected". Now the status is refused (a typed error), and
    should a handler raise anything else (a bug, made here by breaking the parser), the next message
    still comes."""
    wait_for(feed, lambda s: s.state == "connected", "the connection")
    device = f"dev{uuid.uuid4().hex[:6]}"
    stream = {"stream_id": 0, "signal": [], "sample_rate": 100, "channels": []}
    bad = json.dumps({"state": "online", "streams": {"acc": stream}}).encode()
    topic = f"twitchwatch/{USER}/{device}/raw/acc"
    with MqttSender(mosquitto.url) as sender:
        sender.send(f"twitchwatch/{USER}/{device}/status", bad)
        sender.send(topic, one_second(0, T0))
        wait_for(feed, lambda s: bool(s.streams) and s.streams[0].frames == 1, "a frame after the status")

        def broken(payload: bytes | str) -> DeviceStatus:
            raise RuntimeError("a bug")

        monkeypatch.setattr(DeviceStatus, "from_json", broken)
        sender.send(f"twitchwatch/{USER}/{device}/status", DeviceStatus("online").to_json())
        sender.send(topic, one_second(1, T0 + NS))
    wait_for(feed, lambda s: bool(s.streams) and s.streams[0].frames == 2, "a frame after the failure")


def test_without_a_broker_it_says_why_and_keeps_trying() -> None:
    feed = LiveFeed(parse_mqtt_url(f"mqtt://127.0.0.1:{free_port()}"), USER).start()
    try:
        snap = wait_for(feed, lambda s: s.state == "unreachable", "the failure")
        assert snap.broker.startswith("mqtt://127.0.0.1:")
        assert "broker" in snap.problem
        assert snap.streams == []
        assert snap.listening_since_ns == 0
    finally:
        feed.stop()


def test_a_subscription_the_broker_refuses_is_said() -> None:
    """MQTT 3.1.1 brokers (Mosquitto's ACLs among them) grant a denied subscription and deliver nothing, so
    no harness broker refuses one; paho's SUBACK callback is called here as its network thread would."""
    feed = LiveFeed(parse_mqtt_url(f"mqtt://127.0.0.1:{free_port()}"), USER)
    feed._on_subscribe(feed._client, None, 1, [ReasonCode(PacketTypes.SUBACK, identifier=0)] * 2, None)
    assert feed.snapshot().state == "connected"
    refused = [ReasonCode(PacketTypes.SUBACK, identifier=0), ReasonCode(PacketTypes.SUBACK, identifier=0x80)]
    feed._on_subscribe(feed._client, None, 2, refused, None)
    snap = feed.snapshot()
    assert snap.state == "unreachable"
    assert "refused the subscription" in snap.problem
