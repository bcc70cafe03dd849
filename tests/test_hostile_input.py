"""Issue 14's crash and stall cases, each as a regression test against the real harness services.

Every hostile message is published on the harness's Mosquitto to a running worker (retained where the issue
says so) beside a good device whose twitches are known; the worker must go on, count and log each fault under
its own kind, and store the good device's events exactly as a worker that never saw the hostile input."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.harness.influx import InfluxServer
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.cli import main
from twitchwatch.collector.frames import HEADER, Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.detector import StreamingDetector
from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.quarantine import Entry, Quarantine, QuarantineError
from twitchwatch.processing.store import EventQuery, EventStore
from twitchwatch.processing.store.influx import InfluxStore
from twitchwatch.processing.worker import Worker

T0 = 1_700_000_000_000_000_000
GOOD_DEVICE = "good"
TWITCH_AT_S = (2.5, 5.5, 8.5, 11.5)


def _good_frames(seconds: int = 14) -> list[bytes]:
    """1-kHz EMG at rest with four clear twitches, as 100-ms frames."""
    x = np.random.default_rng(7).normal(0, 3.0, (seconds * 1000, 1))
    for at in TWITCH_AT_S:
        i = int(at * 1000)
        x[i : i + 12, 0] += 160 * np.hanning(12)
    out = []
    for k in range(seconds * 10):
        raw = np.round(x[k * 100 : (k + 1) * 100] / 0.5).astype(np.int16)
        frame = Frame(0, k, T0 + k * 100_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
        out.append(encode(frame))
    return out


def _good_status() -> bytes:
    info = {"emg": StreamInfo(0, "emg", 1000.0, ("calf_left",))}
    return DeviceStatus("online", "sim", "live", "run1", None, info).to_json()


def _frame(rate: float, unit: Unit, channels: int = 1, samples: int = 100, t0: int = T0) -> bytes:
    raw = np.zeros((samples, channels), dtype=np.int16)
    header = HEADER.pack(1, (int(unit) << 4) | int(SampleType.INT16), channels, 0, 0, t0, rate, 1.0)
    return header + raw.tobytes()


def _status_text(stream: str) -> bytes:
    return ('{"state":"online","streams":{"emg":' + stream + "}}").encode()


# (topic under twitchwatch/u/, payload, retained, the kind it must be counted under)
HOSTILE: list[tuple[str, bytes, bool, str]] = [
    (
        "bad1/status",
        _status_text('{"stream_id":1e999,"signal":"emg","sample_rate":1000,"channels":["calf"]}'),
        True,
        "status.stream_id",
    ),
    ("bad2/status", b"[" * 30_000 + b"]" * 30_000, True, "status.json_depth"),
    (
        "bad3/status",
        _status_text('{"stream_id":0,"signal":"emg","sample_rate":1000,"channels":["calf\\nleft"]}'),
        True,
        "status.name",
    ),
    ("bad4/raw/emg", _frame(10.0, Unit.MICROVOLT), False, "frame.rate"),
    ("bad5/raw/acc", _frame(1e-30, Unit.G), False, "frame.rate"),
    ("bad6/raw/emg", _frame(1000.0, Unit.MICROVOLT, channels=255, samples=4), False, "frame.channels"),
    ("bad7/raw/emg", _frame(1000.0, Unit.MICROVOLT, samples=5_000_000), False, "frame.size"),
    ("bad8/raw/emg", _frame(1000.0, Unit.MICROVOLT, t0=-(2**63)), False, "frame.t0"),
    ("bad9/raw/emg", b"\x01\x12\x01", False, "frame.truncated"),
]


async def _reference_events(tmp_path: Path) -> list[TwitchEvent]:
    """What the good device alone gives: fed straight to a worker with its own SQLite store."""
    from twitchwatch.processing.store.sqlite import SQLiteStore

    with SQLiteStore(tmp_path / "reference.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
        worker.handle(f"twitchwatch/u/{GOOD_DEVICE}/status", _good_status())
        for payload in _good_frames():
            worker.handle(f"twitchwatch/u/{GOOD_DEVICE}/raw/emg", payload)
        await worker._finish()
        return store.events(EventQuery())


async def _publish(target: MqttTarget, messages: list[tuple[str, bytes, bool]]) -> None:
    async with target.client(f"hostile-{uuid.uuid4().hex[:6]}") as client:
        for topic, payload, retain in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def _clear_retained(target: MqttTarget) -> None:
    await _publish(target, [(f"twitchwatch/u/{t}", b"", True) for t, _, r, _ in HOSTILE if r])


async def _wait_for(predicate: object, what: str, seconds: float = 60.0) -> None:
    assert callable(predicate)
    for _ in range(int(seconds * 10)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.mosquitto
async def test_hostile_messages_are_counted_per_kind_and_the_good_device_stores_every_twitch(
    mosquitto: MosquittoServer, store: EventStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Retained statuses with stream_id 1e999, a 30,000-deep JSON array and a muscle with a newline, then
    10-Hz EMG, 1e-30-Hz accelerometer, 255-channel, 10-MB, t0 = -2**63 and truncated frames, on SQLite and
    on InfluxDB: the worker runs on, twice (a restart meets the retained statuses again), each fault is
    counted and logged under its own kind, and the good device's events are the reference's."""
    reference = await _reference_events(tmp_path)
    assert sum(e.kind.is_twitch for e in reference) >= len(TWITCH_AT_S) - 1  # the twitches are found
    target = parse_mqtt_url(mosquitto.url)
    await _clear_retained(target)
    await _publish(target, [(f"twitchwatch/u/{t}", p, True) for t, p, r, _ in HOSTILE if r])
    caplog.set_level(logging.WARNING, logger="twitchwatch.processing.worker")
    try:
        for run in range(2):  # the second run is the restart that used to crash-loop on the retained ones
            worker = Worker(target, store, user="u", client_id=f"hostile-{run}-{uuid.uuid4().hex[:6]}")
            task = asyncio.create_task(worker.run())
            await asyncio.wait_for(worker.connected.wait(), 30)
            retained = {k for _, _, r, k in HOSTILE if r}
            await _wait_for(lambda: retained <= set(worker.stats.rejected), "the retained statuses")  # noqa: B023
            messages = [(f"twitchwatch/u/{t}", p, False) for t, p, r, _ in HOSTILE if not r]
            good = [(f"twitchwatch/u/{GOOD_DEVICE}/status", _good_status(), False)]
            frames = _good_frames()
            half = len(frames) // 2
            good += [(f"twitchwatch/u/{GOOD_DEVICE}/raw/emg", f, False) for f in frames[:half]]
            rest = [(f"twitchwatch/u/{GOOD_DEVICE}/raw/emg", f, False) for f in frames[half:]]
            await _publish(target, good + messages + rest)  # the hostile ones in the middle of the stream
            await _wait_for(lambda: worker.stats.frames >= len(frames), "the good frames")  # noqa: B023
            assert not task.done()
            worker.stop()
            await asyncio.wait_for(task, 60)
            expected = {k for _, _, _, k in HOSTILE}
            assert expected <= set(worker.stats.rejected), worker.stats.rejected
            assert "internal" not in worker.stats.rejected
            assert worker.stats.rejected["frame.rate"] == 2
            stored = [e for e in store.events(EventQuery(user="u")) if e.device == GOOD_DEVICE]
            assert [(e.muscle, e.kind, e.start_ns) for e in stored] == [
                (e.muscle, e.kind, e.start_ns) for e in reference
            ]
            assert store.muscles("u") == ["calf_left"]  # no 255 muscles, no fallback names of bad devices
            assert {r.muscle for r in store.rates(EventQuery(user="u"))} == {"calf_left"}
    finally:
        await _clear_retained(target)
    lines = [r.getMessage() for r in caplog.records if "dropped a message" in r.getMessage()]
    for kind in {k for _, _, _, k in HOSTILE}:  # one kind never suppressed another's first line
        assert any(f"[{kind}]" in line for line in lines), kind


def _event(muscle: str, start_ns: int, device: str = "d1") -> TwitchEvent:
    return TwitchEvent(
        "u", muscle, device, "emg", 0, EventKind.FASCICULATION, start_ns, start_ns + 10**7, 50.0, "µV", 0.9
    )


def _bad_event() -> TwitchEvent:
    """A row neither store can hold (beyond int64 for SQLite, past InfluxDB's time range): only ever reached a
    store through a bug, which is what the writer's split is the last line against."""
    return _event("calf_left", 2**63, "bad")


async def test_a_refused_row_is_quarantined_and_the_rest_of_its_batch_stored(
    store: EventStore, tmp_path: Path
) -> None:
    quarantine = Quarantine(tmp_path / "state" / "quarantine.jsonl")
    worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u", quarantine=quarantine)
    good = [_event("calf_left", T0 + i * 10**9) for i in range(40)]
    worker._pending.extend([*good[:17], _bad_event(), *good[17:]])
    worker._rates.requeue(
        [MinuteRate("u", "calf_left", "d1", "live", T0 - T0 % 60_000_000_000, 40, 60.0, 60.0)]
    )
    await worker._flush(final=True)
    assert [e.start_ns for e in store.events(EventQuery(user="u"))] == [e.start_ns for e in good]
    assert len(store.rates(EventQuery(user="u"))) == 1
    entries = quarantine.entries()
    assert [e.row for e in entries] == [_bad_event()]
    assert "int" in entries[0].reason or "range" in entries[0].reason or "outside" in entries[0].reason
    assert worker.stats.events_stored == 40
    assert worker.stats.events_quarantined == 1
    assert worker._pending == []


@pytest.mark.influx
async def test_shutdown_is_bounded_and_keeps_what_the_store_did_not_take(
    influxdb: InfluxServer,
    influx_store: InfluxStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The database disappears under the worker: the final flush retries for ``shutdown_write_s``, then
    the events go to the quarantine and the log says what was stored and what not;
    ``twitchwatch quarantine retry`` stores them once the database is back."""
    quarantine = Quarantine(tmp_path / "state" / "quarantine.jsonl")
    worker = Worker(
        MqttTarget("127.0.0.1", 1), influx_store, user="u", quarantine=quarantine, shutdown_write_s=2.0
    )
    stored = [_event("calf_left", T0 + i * 10**9) for i in range(5)]
    worker._pending.extend(stored)
    await worker._flush(final=False)
    assert worker.stats.events_stored == 5
    influxdb.drop_database(influx_store.database)
    late = [_event("calf_left", T0 + (10 + i) * 10**9) for i in range(7)]
    worker._pending.extend(late)
    caplog.set_level(logging.ERROR, logger="twitchwatch.processing.worker")
    await asyncio.wait_for(worker._flush(final=True), 60)  # a hang guard, not a speed assertion
    assert [e.row for e in quarantine.entries()] == late
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("shutdown:")]
    assert len(said) == 1
    assert "took 5 events" in said[0]
    assert "7 events and 0 minute rates were not stored" in said[0]
    influxdb.query(f'CREATE DATABASE "{influx_store.database}"')
    monkeypatch.setenv("TWITCHWATCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", influx_store.url)
    monkeypatch.setenv("TWITCHWATCH_INFLUX_USERNAME", influxdb.username)
    monkeypatch.setenv("TWITCHWATCH_INFLUX_PASSWORD", influxdb.password)
    assert main(["quarantine", "retry"]) == 0
    assert "stored 7 rows" in capsys.readouterr().out
    assert quarantine.entries() == []
    # the dropped database took the first five with it; the retry stored the quarantined seven
    assert [e.start_ns for e in influx_store.events(EventQuery(user="u"))] == [e.start_ns for e in late]


def test_a_quarantined_running_minute_does_not_replace_the_minute_finished_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker stopped with the store down quarantines its open minute's running tally (25 s, 17
    twitches); the worker after it finished that minute (60 s, 43). The retry the log asks for wrote the
    partial row over the whole one. A fuller stored row is left as it is; a row the store lacks is written."""
    from twitchwatch.processing.store.sqlite import SQLiteStore

    minute = T0 - T0 % 60_000_000_000
    partial = MinuteRate("u", "calf_left", "d1", "live", minute, 17, 25.0, 25.0, 25.0)
    whole = MinuteRate("u", "calf_left", "d1", "live", minute, 43, 60.0, 59.0, 60.0)
    missing = MinuteRate("u", "calf_left", "d1", "live", minute + 60_000_000_000, 2, 10.0, 10.0, 10.0)
    quarantine = Quarantine(tmp_path / "state" / "quarantine.jsonl")
    quarantine.add([Entry(T0, "sqlite", "the store was down at shutdown", r) for r in (partial, missing)])
    with SQLiteStore(tmp_path / "w.db") as store:
        store.write_rates([whole])
    monkeypatch.setenv("TWITCHWATCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    assert main(["quarantine", "retry"]) == 0
    out = capsys.readouterr().out
    assert "stored 1 rows" in out, out
    assert "1 minute rows left as stored" in out, out
    assert quarantine.entries() == []
    with SQLiteStore(tmp_path / "w.db") as store:
        assert store.rates(EventQuery(user="u")) == [whole, missing]


def test_the_10_mb_frame_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """The size check comes first: no 10-MB copy, no sample array (the memory figures are in
    docs/reliability.md)."""
    from twitchwatch.processing.store.sqlite import SQLiteStore

    with SQLiteStore(tmp_path / "w.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
        payload = _frame(1000.0, Unit.MICROVOLT, samples=5_000_000)
        assert len(payload) > 10_000_000
        worker.handle("twitchwatch/u/big/raw/emg", payload)
        assert worker.stats.rejected == {"frame.size": 1}
        assert worker.stats.frames == 0


def _stream_status(**stream: object) -> bytes:
    base: dict[str, object] = {"stream_id": 0, "signal": "emg", "sample_rate": 1000, "channels": []}
    return json.dumps({"state": "online", "streams": {"emg": {**base, **stream}}}).encode()


def test_status_limits_name_the_kind_and_the_key() -> None:
    from twitchwatch.collector.status import StatusError

    cases = [
        (
            _stream_status(stream_id=1).replace(b'"stream_id": 1', b'"stream_id": 1e999'),
            "status.stream_id",
            "stream_id",
        ),
        (_stream_status(sample_rate=10), "status.sample_rate", "sample_rate"),
        # An integer no float holds: math.isfinite raised OverflowError, counted as a bug ("internal").
        (_stream_status(sample_rate=10**400), "status.sample_rate", "sample_rate"),
        (_stream_status(channels=["a\nb"]), "status.name", "channels[0]"),
        (_stream_status(channels=["m"] * 255), "status.channels", "channels"),
        # Unhashable: ``in SIGNALS`` raised TypeError, which ended `twitchwatch record` and the dashboard's
        # live feed on a retained status (every restart again).
        (_stream_status(signal=[]), "status.format", "signal"),
        (_stream_status(signal={"emg": 1}), "status.format", "signal"),
    ]
    for payload, kind, key in cases:
        with pytest.raises(StatusError) as caught:
            DeviceStatus.from_json(payload)
        assert (caught.value.kind, caught.value.key) == (kind, f"streams.emg.{key}")
    with pytest.raises(StatusError) as long_id:
        DeviceStatus.from_json(json.dumps({"state": "online", "session_id": "x" * 500}).encode())
    assert (long_id.value.kind, long_id.value.key) == ("status.name", "session_id")
    with pytest.raises(StatusError) as deep:
        DeviceStatus.from_json(b"[" * 50)
    assert (deep.value.kind, deep.value.offset) == ("status.json_depth", 8)


def test_a_damaged_quarantine_line_is_a_quarantine_error(tmp_path: Path) -> None:
    """``Infinity`` where a time in ns belongs (a hand edit, a damaged file) raised a bare OverflowError
    out of ``twitchwatch quarantine``; it names the line like any other damage."""
    path = tmp_path / "quarantine.jsonl"
    row = {"user": "u", "muscle": "m", "device": "d", "source": "live", "minute_ns": 0}
    row |= {"twitches": 1, "monitored_s": 1.0, "rest_s": 1.0}
    doc = {"at_ns": "INF", "store": "s", "what": "rate", "reason": "r", "row": row}
    path.write_text(json.dumps(doc).replace('"INF"', "Infinity") + "\n", encoding="utf-8")
    with pytest.raises(QuarantineError, match=r"line 1: not a quarantined row"):
        Quarantine(path).entries()


async def test_made_up_devices_cost_a_record_each_and_only_so_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wearer's account may publish under any device name. Each made-up device that sent one frame and
    went offline kept its stream's detector for good (84 kB for one EMG channel, 1.4 MB for 32; 600 of
    them took the worker to 3.4 GB, pickled again at every checkpoint). An ended stream lets its detector
    go, and past ``ENDED_KEPT`` ended records the longest silent are forgotten — the good device's
    twitches are stored all the same."""
    from twitchwatch.processing import worker as worker_module
    from twitchwatch.processing.store.sqlite import SQLiteStore

    monkeypatch.setattr(worker_module, "ENDED_KEPT", 40)
    with SQLiteStore(tmp_path / "w.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
        worker._prune_at = 50
        worker.handle(f"twitchwatch/u/{GOOD_DEVICE}/status", _good_status())
        for k, frame in enumerate(_good_frames()):
            if k < 100:
                made_up = f"twitchwatch/u/fake{k:03d}"
                worker.handle(f"{made_up}/raw/emg", _frame(1000.0, Unit.MICROVOLT, channels=32, t0=T0 + k))
                worker.handle(f"{made_up}/status", b'{"state": "offline"}')
            worker.handle(f"twitchwatch/u/{GOOD_DEVICE}/raw/emg", frame)
            if k % 10 == 0:
                await worker._flush(final=False)
        kept = [st for st in worker._streams.values() if st.device != GOOD_DEVICE]
        assert kept, "no made-up stream was ever recorded"
        assert all(st.ended and not isinstance(st.detector, StreamingDetector) for st in kept)
        assert len(kept) <= 50
        await worker._finish()
        twitches = [e for e in store.events(EventQuery(user="u")) if e.kind is EventKind.FASCICULATION]
        assert sorted(round((e.start_ns - T0) / 1e9, 1) for e in twitches) == list(TWITCH_AT_S)


async def test_a_second_sensor_flapping_its_rate_costs_the_muscle_a_few_warm_ups_not_its_twitches(
    tmp_path: Path,
) -> None:
    """A second device on the same muscle whose frames flap 1000 ↔ 1001 Hz: every change started its
    detector again, silently, and each warm-up vetoed the muscle — the good sensor's four twitches were all
    "detector warming up". Changes are counted and said; past three in a minute the stream's frames are
    refused (``frame.format_flapping``) until it keeps one format."""
    from twitchwatch.collector.frames import decode
    from twitchwatch.processing.store.sqlite import SQLiteStore

    with SQLiteStore(tmp_path / "w.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
        worker.handle(f"twitchwatch/u/{GOOD_DEVICE}/status", _good_status())
        worker.handle("twitchwatch/u/second/status", _good_status())  # the same muscle
        rng = np.random.default_rng(3)
        for k, frame in enumerate(_good_frames()):
            worker.handle(f"twitchwatch/u/{GOOD_DEVICE}/raw/emg", frame)
            good = decode(frame)
            raw = np.round(rng.normal(0, 3.0, (100, 1)) / 0.5).astype(np.int16)
            rate = 1001.0 if k % 2 else 1000.0
            flapping = Frame(0, k, good.t0_ns, rate, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
            worker.handle("twitchwatch/u/second/raw/emg", encode(flapping))
        await worker._finish()
        assert worker.stats.format_changes == 3
        assert worker.stats.rejected["frame.format_flapping"] > 100
        twitches = [e for e in store.events(EventQuery(user="u")) if e.kind is EventKind.FASCICULATION]
        assert sorted(round((e.start_ns - T0) / 1e9, 1) for e in twitches) == list(TWITCH_AT_S)


async def test_one_wearers_held_twitch_does_not_hold_back_another_wearers_acknowledgements(
    tmp_path: Path,
) -> None:
    """The horizon up to which a stream's frames may be acknowledged was bounded by the oldest event held
    anywhere: one wearer's twitch waiting a second of its slow device's time for the rest gate held back
    every other wearer's acknowledgements (RabbitMQ's unacknowledged count grew to its prefetch, and a
    queue stalled). An event comes from its own wearer's frames only: the bound is per wearer."""
    from twitchwatch.processing.store.sqlite import SQLiteStore

    with SQLiteStore(tmp_path / "w.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store)  # any user: as a RabbitMQ worker runs
        # 18 s: the other wearer's last twitch (11.5 s) is final, and no longer held, once the 5.1 s after it
        # are known (an EMG lane's rhythmic bursting may still reach back that far: processing/bursts.py).
        frames = _good_frames(18)
        for user in ("slow", "fast"):
            worker.handle(f"twitchwatch/{user}/{GOOD_DEVICE}/status", _good_status())
        for k, frame in enumerate(frames):
            if k < 27:  # up to 2.7 s: its twitch at 2.5 s waits for the second ahead of its muscle's activity
                worker.handle(f"twitchwatch/slow/{GOOD_DEVICE}/raw/emg", frame)
            worker.handle(f"twitchwatch/fast/{GOOD_DEVICE}/raw/emg", frame)
        worker._ask_priors()
        await asyncio.gather(*worker._prior_reads)  # the stored minutes are read first
        await worker._flush(final=False)  # what was released is stored
        horizons = worker.ack_horizons()
        assert horizons is not None
        slow, fast = horizons[("slow", GOOD_DEVICE, "emg")], horizons[("fast", GOOD_DEVICE, "emg")]
        assert slow <= T0 + 2_500_000_000  # its held twitch bounds it
        assert fast > T0 + 12_000_000_000  # the other wearer's does not
        await worker._finish()
