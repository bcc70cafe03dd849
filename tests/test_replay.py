"""Record and replay end to end, against the harness's real Mosquitto (authentication on).

* A live run: ``twitchwatch simulate --speed max --truth`` → Mosquitto → the worker (in-process) and, at the
  same time, ``twitchwatch record --truth --markers`` (a subprocess, stopped by SIGTERM). The file must hold
  every frame, the devices' metadata, the ground truth and the marker.
* ``twitchwatch replay --speed max`` of that file into a fresh worker gives the live run's events. Tolerance:
  none — the replayed frames are the recorded ones, bit for bit with the same sequence numbers and timestamps,
  and the detector does not depend on chunking, so every event (muscle, kind, start, end, amplitude,
  confidence) is equal. Only ``source`` (``replay``) and ``session_id`` differ.
* Real recordings (tests/data/recordings, see its README) converted here to EDF+ / BDF+, replayed into a
  SQLite store: the events are those ``twitchwatch detect`` finds in the same file (kinds equal, start times
  equal to the microsecond ``detect`` rounds to).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import h5py
import numpy as np
import pyedflib
import pytest

from tests.harness import environ_without_settings
from tests.harness.mosquitto import MosquittoServer
from tests.test_recordings import Sig, biosppy_acc_g, biosppy_emg_uv, write_edf
from tests.test_session_file import T0, write_demo_session
from twitchwatch.cli import main
from twitchwatch.collector.frames import Frame, SampleType, Unit, decode, encode
from twitchwatch.collector.mqtt import MqttTarget, parse_mqtt_url
from twitchwatch.collector.record import Recorder, TruthError, read_truth
from twitchwatch.collector.recordings import STANDARD_GRAVITY, open_recording
from twitchwatch.collector.recordings.formats.edf import edf_start_ns
from twitchwatch.collector.recordings.formats.session import Session, SessionSource, SessionWriter
from twitchwatch.collector.recordings.playback import open_source
from twitchwatch.collector.recordings.source import ReplayError
from twitchwatch.collector.replay import LOOP_PAUSE_NS, ReplayOptions, run_replay
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.events import EventKind, TwitchEvent
from twitchwatch.processing.recordings import DetectionRun, plan_detection
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

MUSCLES = ("calf_left", "calf_right")
USER = "rec"
SIM_SECONDS = 60
MARKER = "calf feels jumpy"


def _env(mosquitto: MosquittoServer, tmp: Path) -> dict[str, str]:
    env = environ_without_settings()
    return env | {
        "TWITCHWATCH_MQTT_URL": mosquitto.url,
        "TWITCHWATCH_STORE_URL": f"sqlite:///{tmp / 'unused.db'}",
        "TWITCHWATCH_USER": USER,
    }


async def until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll; past ``seconds`` the asserts that follow say what is amiss."""
    deadline = time.monotonic() + seconds
    while True:
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def _line(stream: asyncio.StreamReader, pattern: str, seen: list[str], seconds: float = 30) -> str:
    """Read stderr lines until one contains ``pattern``; every line read is kept in ``seen``."""
    async with asyncio.timeout(seconds):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"stream ended before {pattern!r}:\n" + "".join(seen))
            seen.append(raw.decode())
            if pattern in seen[-1]:
                return seen[-1]


def _key(e: TwitchEvent) -> tuple[object, ...]:
    return (e.muscle, e.device, e.stream, e.channel, e.kind, e.start_ns, e.end_ns, e.amplitude, e.confidence)


# ---- the live run: simulator → Mosquitto → worker + recorder ----------------------------------------
@dataclass
class LiveRun:
    session: Path
    truth: Path
    frames: int
    events: list[TwitchEvent]
    record_log: str
    marker_window: tuple[int, int]
    env: dict[str, str]


@pytest.fixture(scope="module")
def live_run(mosquitto: MosquittoServer, tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    return asyncio.run(_live_run(mosquitto, tmp_path_factory.mktemp("live")))


async def _live_run(mosquitto: MosquittoServer, tmp: Path) -> LiveRun:
    target = parse_mqtt_url(mosquitto.url)
    env = _env(mosquitto, tmp)
    session, truth = tmp / "live.h5", tmp / "truth.jsonl"
    with SQLiteStore(tmp / "live.db") as store:
        worker = Worker(target, store, user=USER, client_id="replay-test-live", flush_interval=0.2)
        worker_task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 15)
        rec = await asyncio.create_subprocess_exec(
            *(
                sys.executable,
                "-m",
                "twitchwatch",
                "record",
                "--truth",
                str(truth),
                "--markers",
                str(session),
            ),
            env=env,
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert rec.stdin is not None
        assert rec.stderr is not None
        seen: list[str] = []
        try:
            await _line(rec.stderr, "subscribed to", seen)
            before = time.time_ns()
            rec.stdin.write(f"{MARKER}\n".encode())
            await rec.stdin.drain()
            await _line(rec.stderr, f"marker: {MARKER}", seen)
            after = time.time_ns()
            muscles = [a for m in MUSCLES for a in ("--muscle", m)]
            sim = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "twitchwatch", "simulate", *muscles, "--duration", str(SIM_SECONDS)),
                *("--speed", "max", "--rate", "30", "--seed", "11", "--truth", str(truth)),
                env=env,
                stderr=subprocess.PIPE,
            )
            _, sim_err = await asyncio.wait_for(sim.communicate(), 120)
            assert sim.returncode == 0, sim_err.decode()
            m = re.search(r"published (\d+) frames", sim_err.decode())
            assert m, sim_err.decode()
            frames = int(m.group(1))
            for _ in MUSCLES:  # each device's offline status follows its last frame on the same connection
                await _line(rec.stderr, "went offline", seen)
            rec.send_signal(signal.SIGTERM)
            seen.append((await asyncio.wait_for(rec.stderr.read(), 30)).decode())
            assert await rec.wait() == 0, "".join(seen)
        finally:
            if rec.returncode is None:
                rec.kill()
                await rec.wait()
        await until(lambda: worker.stats.frames >= frames, 60)
        worker.stop()
        await asyncio.wait_for(worker_task, 30)
        assert (worker.stats.frames, worker.stats.gaps, worker.stats.bad_frames) == (frames, 0, 0)
        events = store.events(EventQuery(user=USER, source="live"))
    return LiveRun(session, truth, frames, events, "".join(seen), (before, after), env)


@pytest.mark.mosquitto
def test_record_a_simulated_session(live_run: LiveRun) -> None:
    assert f"recorded {live_run.frames} frames of 2 stream(s) from 2 device(s)" in live_run.record_log
    assert (
        "0 gap(s) (0 frames lost), 0 duplicates and 0 malformed frames skipped, 1 marker(s)"
        in live_run.record_log
    )
    truth_rows = [json.loads(line) for line in live_run.truth.read_text().splitlines()]
    assert (
        f"{len(truth_rows)} truth annotations (0 on other muscles or times left out)" in live_run.record_log
    )
    with Session(live_run.session) as s:
        assert (s.complete, s.user, s.format_version) == (True, USER, 1)
        assert [(st.device, st.stream) for st in sorted(s.streams, key=lambda x: x.device)] == [
            (f"sim-{m}", "emg") for m in MUSCLES
        ]
        per_device = live_run.frames // len(MUSCLES)
        for st in s.streams:
            muscle = st.device.removeprefix("sim-")
            assert (st.frames, st.samples, st.channels, st.muscles, st.signal) == (
                per_device,
                per_device * 50,
                1,
                (muscle,),
                "emg",
            )
            assert (st.unit, st.sample_type, st.sample_rate, st.scale) == (
                Unit.MICROVOLT,
                SampleType.INT16,
                1000.0,
                0.5,
            )
            table = s.frame_table(st)
            assert list(table["sequence"]) == list(range(per_device))
            assert set(np.diff(table["t0_ns"])) == {50_000_000}
            assert np.all(table["received_ns"] > 0)
            assert s.gaps(st) == []
        ids = {d.session_ids for d in s.devices.values()}
        assert len(ids) == 1
        assert len(next(iter(ids))) == 1
        assert {(d.profile, d.source) for d in s.devices.values()} == {("sim", "live")}
        annotations = s.annotations()
        truth = [a for a in annotations if a.category == "truth"]
        assert len(truth) == len(truth_rows) > 40
        for a, row in zip(truth, truth_rows, strict=True):
            assert (a.text, a.muscle) == (row["kind"], row["muscle"])
            assert abs(a.onset_ns - row["start"] * 1e9) < 1000  # the truth file has float seconds
        (marker,) = [a for a in annotations if a.category == "marker"]
        assert marker.text == MARKER
        assert live_run.marker_window[0] <= marker.onset_ns <= live_run.marker_window[1]
        # The twitches are in the recorded samples where the truth says: each event's window swings at least
        # its amplitude peak to peak, several times what the background does.
        for st in s.streams:
            x = np.concatenate([f.values()[:, 0] for f in s.frames(st)])
            background = np.median([np.ptp(x[i : i + 15]) for i in range(0, len(x) - 15, 997)])
            for a in (a for a in truth if a.muscle == st.muscles[0]):
                i = (a.onset_ns - st.first_t0_ns) * 1000 // 10**9
                swing = np.ptp(x[i : i + a.duration_ns * 1000 // 10**9 + 1])
                assert swing >= max(json.loads(a.data)["amplitude"], 3 * background)


@pytest.mark.mosquitto
def test_replay_at_max_speed_gives_the_live_events(
    live_run: LiveRun, tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    asyncio.run(_replay_into_worker(live_run, tmp_path, parse_mqtt_url(mosquitto.url)))


async def _replay_into_worker(live_run: LiveRun, tmp: Path, target: MqttTarget) -> None:
    with SQLiteStore(tmp / "replay.db") as store:
        worker = Worker(target, store, user=USER, client_id="replay-test-replay", flush_interval=0.2)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 15)
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "twitchwatch", "replay", "--speed", "max", str(live_run.session)),
            env=live_run.env,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert (
            f"replayed {live_run.frames} frames ({SIM_SECONDS:.1f} s of signal, 1 pass(es))" in err.decode()
        )
        assert "source=replay, recorded time" in err.decode()
        await until(lambda: worker.stats.frames >= live_run.frames, 60)
        worker.stop()
        await asyncio.wait_for(task, 30)
        assert (worker.stats.frames, worker.stats.gaps, worker.stats.duplicates) == (live_run.frames, 0, 0)
        replayed = store.events(EventQuery(user=USER))
    assert len(live_run.events) > 40
    assert sorted(map(_key, replayed)) == sorted(map(_key, live_run.events))
    assert {e.source for e in replayed} == {"replay"}
    assert len({e.session_id for e in replayed}) == 1
    assert {e.session_id for e in replayed}.isdisjoint({e.session_id for e in live_run.events})


# ---- real recordings, through EDF+ / BDF+ -----------------------------------------------------------
def _detect(path: Path) -> list[tuple[str, str, float, bool]]:
    """What ``twitchwatch detect`` finds: (muscle, kind, start seconds from the file's start, whether the
    detector released it only at the end of the stream)."""
    with open_recording(path) as reader:
        # The detectors alone: a twitch the worker's rest gate marked during movement keeps what the
        # detector saw as its reason's first word (``_looked_like``), so the two compare without depending
        # on how each gate groups the files' streams (detect: one device per file; the worker: the two
        # replayed devices on one forearm).
        run = DetectionRun(plan_detection(reader.recording), gate=False)
        events = [(e, False) for c in reader.chunks(run.plan.groups) for e in run.feed(c)]
        events += [(e, True) for e in run.finish()]
    return sorted((e.muscle, e.kind.value, e.start, last) for e, last in events)


@pytest.mark.mosquitto
async def test_real_recordings_replay_from_edf_into_the_store(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """BioSPPy's surface EMG (1 kHz, 100 s) as EDF+ with a bare ``EMG`` label and a muscle from --muscle-map,
    via the CLI; its accelerometer (100 Hz, 20 s; in g although its header says m/s²) as BDF+ in m/s², via
    the API."""
    emg = write_edf(tmp_path / "biosppy_emg.edf", [Sig("EMG", "uV", 1000, biosppy_emg_uv())])
    acc_g = biosppy_acc_g()
    acc = write_edf(
        tmp_path / "biosppy_acc.bdf",
        [
            Sig(f"ACC wrist {axis}", "m/s^2", 100, acc_g[:, i] * STANDARD_GRAVITY)
            for i, axis in enumerate("XYZ")
        ],
        bdf=True,
    )
    target = parse_mqtt_url(mosquitto.url)
    env = _env(mosquitto, tmp_path)
    with SQLiteStore(tmp_path / "real.db") as store:
        worker = Worker(target, store, user=USER, client_id="replay-test-real", flush_interval=0.2)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 15)
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "twitchwatch", "replay", str(emg), "--speed", "max"),
            *("--muscle-map", "EMG=forearm", "--device", "biosppy"),
            env=env,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert "replayed 2000 frames (100.0 s of signal" in err.decode()
        source = open_source(acc)
        try:
            assert [(s.device, s.stream, s.muscles) for s in source.streams] == [
                ("edf-biosppy_acc", "acc", ("wrist",) * 3)
            ]
            stats = await run_replay(source, target, ReplayOptions(USER, None))
        finally:
            source.close()
        assert stats.frames == 40
        await until(lambda: worker.stats.frames >= 2040, 60)
        worker.stop()
        await asyncio.wait_for(task, 30)
        assert (worker.stats.frames, worker.stats.gaps, worker.stats.bad_frames) == (2040, 0, 0)
        events = store.events(EventQuery(user=USER))
        monitored = {
            m: sum(r.monitored_s for r in store.rates(EventQuery(user=USER, muscle=m)))
            for m in ("forearm", "wrist")
        }
    assert monitored == {"forearm": pytest.approx(100.0, abs=0.01), "wrist": pytest.approx(20.0, abs=0.01)}
    assert {(e.source, e.device) for e in events} <= {("replay", "biosppy"), ("replay", "edf-biosppy_acc")}
    # Recorded time at --speed max: the file's own start; and the same events detect finds in the file.
    for path, device in ((emg, "biosppy"), (acc, "edf-biosppy_acc")):
        start_ns = edf_start_ns(path)
        with pyedflib.EdfReader(str(path)) as f:
            assert start_ns == round(f.getStartdatetime().astimezone().timestamp()) * 10**9
        # The worker marks twitches inside the recording's voluntary activity as during movement (the rest
        # gate); detect reports what the detector saw, which the reason keeps as its first word.
        stored = sorted(
            (e.muscle, _looked_like(e), (e.start_ns - start_ns) / 1e9) for e in events if e.device == device
        )
        expected = _detect(path)
        muscle = "forearm" if device == "biosppy" else "wrist"  # detect names the EMG after its bare label
        if device == "biosppy":
            assert len(expected) > 5  # the voluntary activations
        assert [k for _, k, _ in stored] == [k for _, k, _, _ in expected]
        # Same samples (float32 on the wire holds these files' values), same detector: the same start times;
        # detect rounds them to the microsecond.
        np.testing.assert_allclose([t for *_, t in stored], [t for _, _, t, _ in expected], rtol=0, atol=1e-6)
        # Events released only when the stream ends come after the replay's offline status; the worker keeps
        # the channels' muscles from the online one, so they too carry the mapped name.
        assert [m for m, *_ in stored] == [muscle] * len(expected)


def _looked_like(e: TwitchEvent) -> str:
    if e.kind is EventKind.DURING_MOVEMENT:
        looked, _, why = e.reason.partition(": ")
        assert why, e.reason
        return looked
    return e.kind.value


# ---- replay options ---------------------------------------------------------------------------------
async def _listen(target: MqttTarget, user: str, into: list[tuple[str, bytes]]) -> None:
    async with target.client() as client:
        await client.subscribe(f"twitchwatch/{user}/+/raw/+", qos=1)
        await client.subscribe(f"twitchwatch/{user}/+/status", qos=1)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            into.append((str(message.topic), message.payload))


@pytest.mark.mosquitto
async def test_loop_start_and_clock(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    """``--start`` begins at the frame holding that second; ``--loop`` repeats with time moved on by the
    pass and a 2-s pause, sequence numbers continuing; ``--clock now`` moves the first sample to the wall
    clock, and ``--speed 10`` takes a tenth of the signal's time."""
    target = parse_mqtt_url(mosquitto.url)
    path = tmp_path / "demo.h5"
    emg, acc = write_demo_session(path)
    got: list[tuple[str, bytes]] = []
    user = "rec-loop"  # its own user: no retained statuses from the other tests
    listener = asyncio.create_task(_listen(target, user, got))
    await asyncio.sleep(0.5)
    with Session(path) as s:
        source = SessionSource(s, ["dev1=replayed"])
        stats = await run_replay(
            source, target, ReplayOptions(user, None, loop=True, start_s=1.0, max_passes=2)
        )
        end_ns = s.end_ns
    emg_after = [f for f in emg if f.t0_ns >= T0 + 1_000_000_000]
    acc_after = acc[1:]  # the frame holding second 1 starts at 0.52 s
    assert stats.passes == 2
    assert stats.frames == 2 * (len(emg_after) + len(acc_after))
    await until(lambda: len([t for t, _ in got if "/raw/" in t]) >= stats.frames, 10)
    frames = [(t.rsplit("/", 1)[1], decode(p)) for t, p in got if "/raw/" in t]
    assert {t.split("/")[2] for t, _ in got} == {"replayed"}
    shift = end_ns - (T0 + 1_000_000_000) + LOOP_PAUSE_NS
    n = len(emg_after)
    emg_out = [f for name, f in frames if name == "emg"]
    assert [f.raw.tobytes() for f in emg_out] == [f.raw.tobytes() for f in emg_after] * 2
    assert [f.t0_ns for f in emg_out] == [f.t0_ns for f in emg_after] + [f.t0_ns + shift for f in emg_after]
    assert [f.sequence for f in emg_out] == [f.sequence for f in emg_after] + [
        f.sequence + 20 for f in emg_after
    ]
    assert n == 20
    assert [f.sequence for f in [x for name, x in frames if name == "acc"]] == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
    ]
    status = [DeviceStatus.from_json(p) for t, p in got if t.endswith("/status") and p]
    assert {(st.state, st.source) for st in status} == {("online", "replay"), ("offline", "replay")}
    assert status[0].profile == "polar-h10"
    assert status[0].streams["acc"].channels == ("calf_left",) * 3

    got.clear()
    with Session(path) as s:
        t = time.monotonic()
        now = time.time_ns()
        stats = await run_replay(SessionSource(s), target, ReplayOptions(user, 10.0))
        took = time.monotonic() - t
    assert took >= (end_ns - T0) / 1e9 / 10 - 0.05
    assert stats.time_shift_ns == pytest.approx(now - T0, abs=2e8)
    await until(lambda: len([t for t, _ in got if "/raw/" in t]) >= stats.frames, 10)
    first = min(decode(p).t0_ns for t, p in got if "/raw/" in t)
    assert abs(first - now) < 200_000_000
    listener.cancel()


def test_replay_option_errors(tmp_path: Path) -> None:
    path = tmp_path / "demo.h5"
    write_demo_session(path)
    with pytest.raises(
        ReplayError, match=r"--muscle-map 'nope=calf': no channel 'nope' \(channels: dev1/emg: 'dev1.emg.0'"
    ):
        open_source(path, muscle_map=["nope=calf"]).close()
    with pytest.raises(ReplayError, match="expected CHANNEL=MUSCLE"):
        open_source(path, muscle_map=["calf_left"]).close()
    with pytest.raises(ReplayError, match=r"no device 'other' \(it has dev1\)"):
        open_source(path, devices=["other"]).close()
    source = open_source(path, muscle_map=["calf_left=soleus", "dev1.emg.0=gastrocnemius"])
    assert [s.muscles for s in source.streams] == [("gastrocnemius",), ("soleus",) * 3]
    source.close()
    options = ReplayOptions(USER, None, start_s=99)
    with (
        Session(path) as s,
        pytest.raises(ReplayError, match=r"--start 99: past the end of the recording \(4\.0 s long\)"),
    ):
        asyncio.run(run_replay(SessionSource(s), MqttTarget("127.0.0.1", 9), options))
    edf = write_edf(tmp_path / "small.edf", [Sig("EMG calf", "uV", 100, np.zeros(200))])
    with pytest.raises(ReplayError, match="an EDF file is one device"):
        open_source(edf, devices=["a", "b"])
    source = open_source(edf, devices=["my-dev"], muscle_map=["0=soleus"])
    assert [(s.device, s.stream, s.muscles, s.keys) for s in source.streams] == [
        ("my-dev", "emg", ("soleus",), (("EMG calf", "0"),))
    ]
    source.close()
    armband = write_edf(
        tmp_path / "armband.edf",
        [
            Sig("EMG arm", "uV", 100, np.zeros(200)),
            *(Sig(f"GYR arm {a}", "deg/s", 50, np.zeros(100)) for a in "XYZ"),
        ],
    )
    source = open_source(armband)
    assert [(s.stream, s.signal, s.unit, s.muscles) for s in source.streams] == [
        ("emg", "emg", Unit.MICROVOLT, ("arm",)),
        ("gyro", "gyro", Unit.DEG_PER_S, ("arm",) * 3),
    ]
    source.close()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ReplayError, match="neither a PhysioNet WFDB record"):
        open_source(text)


# ---- the recorder on its own ------------------------------------------------------------------------
@pytest.mark.mosquitto
async def test_recorder_skips_malformed_input_and_marks_gaps(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """Garbage frames and statuses are counted and skipped, lost frames become a gap, a QoS-1 duplicate is
    dropped, devices not asked for are not recorded, and the recorder stops once the device goes offline."""
    target = parse_mqtt_url(mosquitto.url)
    path = tmp_path / "rec.h5"
    rng = np.random.default_rng(5)
    sent = [
        Frame(
            0,
            seq,
            T0 + seq * 50_000_000,
            1000.0,
            0.5,
            Unit.MICROVOLT,
            SampleType.INT16,
            rng.integers(-99, 99, (50, 1)).astype(np.int16),
        )
        for seq in range(12)
        if seq != 4
    ]
    status = DeviceStatus(
        "online", "open", "live", "abc", None, {"emg": StreamInfo(0, "emg", 1000.0, ("biceps",))}
    )
    with SessionWriter(path, user=USER) as writer:
        recorder = Recorder(target, writer, user=USER, devices=["dev"], flush_interval=0.1)
        stop = asyncio.Event()
        task = asyncio.create_task(recorder.run(stop, duration_s=30, stop_when_offline=True))
        await asyncio.wait_for(recorder.subscribed.wait(), 15)
        recorder.handle("twitchwatch/rec/dev/bogus/kind", b"")
        async with aiomqtt.Client(
            "127.0.0.1", mosquitto.port, username=mosquitto.username, password=mosquitto.password
        ) as client:
            base = f"twitchwatch/{USER}/dev"
            await client.publish(f"{base}/status", status.to_json(), qos=1)
            await client.publish(f"{base}/raw/emg", b"\x01\x02garbage", qos=1)
            await client.publish(f"{base}/status", b"{not json", qos=1)
            await client.publish(f"twitchwatch/{USER}/other/raw/emg", encode(sent[0]), qos=1)
            for k, frame in enumerate(sent):
                await client.publish(f"{base}/raw/emg", encode(frame), qos=1)
                if k == 6:
                    await client.publish(f"{base}/raw/emg", encode(frame), qos=1)
            await client.publish(f"{base}/status", DeviceStatus.offline("open").to_json(), qos=1)
        stats = await asyncio.wait_for(task, 30)
    assert (stats.frames, stats.bad_frames, stats.bad_status, stats.bad_topics) == (11, 1, 1, 1)
    assert (stats.gaps, stats.missing_frames, stats.duplicates, stats.devices) == (1, 1, 1, {"dev"})
    with Session(path) as s:
        (st,) = s.streams
        assert list(s.frames(st)) == sent
        assert st.muscles == ("biceps",)
        assert s.devices["dev"].session_ids == ("abc",)
        (gap,) = s.gaps(st)
        assert (gap.kind, gap.previous_sequence, gap.sequence) == ("lost", 3, 5)
    with h5py.File(path) as f:
        assert (f.attrs["bad_frames"], f.attrs["bad_status"], f.attrs["duplicates"]) == (1, 1, 1)


def test_record_without_a_broker_exits_1_and_leaves_no_file(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TWITCHWATCH_MQTT_URL", f"mqtt://127.0.0.1:{port}")
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    assert main(["record", str(tmp_path / "s.h5")]) == 1
    assert f"cannot connect to MQTT broker mqtt://127.0.0.1:{port}" in capsys.readouterr().err
    assert not (tmp_path / "s.h5").exists()


def test_truth_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "truth.jsonl"
    bad.write_text('{"muscle": "a", "start": 1.0, "end": 1.1, "kind": "fasciculation"}\n{"muscle": "a"}\n')
    with pytest.raises(TruthError, match=r"truth.jsonl: line 2: missing 'start'"):
        read_truth(bad)
    bad.write_text('{"muscle": "a", "start": 2.0, "end": 1.0, "kind": "x"}\n')
    with pytest.raises(TruthError, match=r"line 1: start 2\.0 / end 1\.0 are not a time span"):
        read_truth(bad)
