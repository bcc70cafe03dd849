"""Property-based fuzzing of everything that reads outside input: the worker's status and frame handling,
the recording readers and the configuration. Nothing may escape but the project's typed errors, and a good
stream beside hostile messages keeps producing the same events. Device decoders are fuzzed over the whole
registry in tests/test_devices.py (``test_decoders_raise_only_notification_error``).

Bounded in time: few examples each (``max_examples``), derandomized under CI=true (tests/conftest.py), about
a minute in all on a 2-core machine."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_recording_formats import write as write_generated
from twitchwatch.collector.frames import HEADER, Frame, SampleType, Unit, encode
from twitchwatch.collector.limits import RejectedError
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.recordings.model import RecordingError
from twitchwatch.collector.recordings.reader import RecordingReader, open_recording, readers
from twitchwatch.collector.status import DeviceStatus, StatusError, StreamInfo
from twitchwatch.config import ConfigError, load_device_file
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

T0 = 1_700_000_000_000_000_000
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- payload strategies ----------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_odd_numbers = [
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "1e-999",
    "18446744073709551617",
    "-0",
    "1.5",
    "1" + "0" * 400,
]


@st.composite
def structured_status(draw: st.DrawFn) -> bytes:
    """A status the right shape with one part made wrong: odd numbers, wrong types, hostile names."""
    stream: dict[str, Any] = {
        "stream_id": draw(st.one_of(st.integers(-300, 300), json_value)),
        "signal": draw(st.sampled_from(["emg", "acc", "gyro", "orientation", "other", "ppg", ""])),
        "sample_rate": draw(st.one_of(st.floats(), st.integers(-(2**70), 2**70), json_value)),
        "channels": draw(st.one_of(st.lists(st.text(max_size=70), max_size=40), json_value)),
    }
    doc = {
        "state": draw(st.sampled_from(["online", "offline", "", None])),
        "profile": draw(st.one_of(st.just("sim"), st.text(max_size=70), json_value)),
        "session_id": draw(st.one_of(st.just("s1"), st.text(max_size=200), json_value)),
        "battery_percent": draw(st.one_of(st.none(), st.integers(-5, 200), json_value)),
        "streams": {draw(st.text(max_size=70)): stream},
    }
    text = json.dumps(doc)
    if draw(st.booleans()):  # numbers Python's json.dumps never writes
        text = text.replace('"stream_id": ', f'"stream_id": {draw(st.sampled_from(_odd_numbers))}, "x": ', 1)
    if draw(st.booleans()):
        depth = draw(st.integers(1, 5000))
        text = text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    return text.encode()


@st.composite
def structured_frame(draw: st.DrawFn) -> bytes:
    """A header with every field drawn from its whole range (and a unit/type byte of any value), and a
    body of any length: short, ragged, or the size the header asks for."""
    channels = draw(st.integers(0, 255))
    sample_type = draw(st.sampled_from(SampleType))
    type_unit = draw(
        st.one_of(st.just((int(draw(st.sampled_from(Unit))) << 4) | int(sample_type)), st.integers(0, 255))
    )
    header = HEADER.pack(
        draw(st.sampled_from([1, 1, 1, 0, 2])),
        type_unit,
        channels,
        draw(st.integers(0, 255)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.just(T0))),
        draw(st.one_of(st.floats(width=32), st.sampled_from([1e-30, 10.0, 50.0, 1000.0, 3e38]))),
        draw(st.one_of(st.floats(width=32), st.just(1.0))),
    )
    samples = draw(st.integers(0, 64))
    body = draw(st.binary(min_size=0, max_size=8)) if draw(st.booleans()) else b""
    return header + bytes(samples * max(channels, 1) * sample_type.dtype.itemsize) + body


hostile_status = st.one_of(st.binary(max_size=200), structured_status())
hostile_frame = st.one_of(st.binary(max_size=200), structured_frame())

# ---- the status parser -----------------------------------------------------------------------------


@FUZZ
@given(payload=hostile_status)
def test_a_status_parses_or_raises_status_error(payload: bytes) -> None:
    status, error = _parsed(payload)
    if error is not None:
        assert error.kind.startswith("status.")
        return
    assert status is not None
    for name, info in status.streams.items():  # what it accepted is what the limits allow
        assert 1 <= len(name) <= 64
        assert 0 <= info.stream_id <= 255
        assert math.isfinite(info.sample_rate)
        assert all("\n" not in c for c in info.channels)


def _parsed(payload: bytes) -> tuple[DeviceStatus | None, StatusError | None]:
    try:
        return DeviceStatus.from_json(payload), None
    except StatusError as exc:
        return None, exc


# ---- the worker, with a good stream beside -----------------------------------------------------------


def _good_frames() -> list[bytes]:
    x = np.random.default_rng(3).normal(0, 3.0, (4000, 1))
    for at in (1500, 3000):
        x[at : at + 12, 0] += 160 * np.hanning(12)
    return [
        encode(
            Frame(
                0,
                k,
                T0 + k * 100_000_000,
                1000.0,
                0.5,
                Unit.MICROVOLT,
                SampleType.INT16,
                np.round(x[k * 100 : (k + 1) * 100] / 0.5).astype(np.int16),
            )
        )
        for k in range(40)
    ]


GOOD_FRAMES = _good_frames()
RUNS = itertools.count()
GOOD_STATUS = DeviceStatus(
    "online", "sim", "live", "s1", None, {"emg": StreamInfo(0, "emg", 1000.0, ("calf_left",))}
).to_json()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fuzz-worker-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _run(folder: Path, hostile: list[tuple[str, bytes]]) -> tuple[list[tuple[str, int, str]], Worker]:
    """The good device's status and frames, with the hostile messages spread between them."""
    with SQLiteStore(folder / f"{next(RUNS)}.db") as store:
        worker = Worker(MqttTarget("127.0.0.1", 1), store, user="u")
        worker.handle("twitchwatch/u/good/status", GOOD_STATUS)
        step = max(1, len(GOOD_FRAMES) // (len(hostile) + 1))
        queue = list(hostile)
        for k, payload in enumerate(GOOD_FRAMES):
            if k % step == 0 and queue:
                worker.handle(*queue.pop(0))
            worker.handle("twitchwatch/u/good/raw/emg", payload)
        for message in queue:
            worker.handle(*message)
        await worker._finish()
        events = [(e.muscle, e.start_ns, e.kind.value) for e in store.events(EventQuery(user="u"))]
    return [e for e in events if e[0] == "calf_left"], worker


@pytest.fixture(scope="module")
def reference(workdir: Path) -> list[tuple[str, int, str]]:
    import asyncio

    events, _ = asyncio.run(_run(workdir / "reference", []))
    assert len(events) >= 2  # the good stream's twitches are found
    return events


topic_device = st.sampled_from(["bad", "good", "x" * 64])
topic_stream = st.sampled_from(["emg", "acc", "gyro", "orientation"])
hostile_message = st.one_of(
    st.tuples(topic_device.map(lambda d: f"twitchwatch/u/{d}/status"), hostile_status),
    st.tuples(
        st.tuples(st.sampled_from(["bad", "bad2"]), topic_stream).map(
            lambda t: f"twitchwatch/u/{t[0]}/raw/{t[1]}"
        ),
        hostile_frame,
    ),
    st.tuples(st.text(max_size=40).map(lambda s: f"twitchwatch/{s}"), st.binary(max_size=40)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(hostile=st.lists(hostile_message, min_size=1, max_size=8))
async def test_hostile_messages_never_escape_and_the_good_stream_is_unchanged(
    hostile: list[tuple[str, bytes]], workdir: Path, reference: list[tuple[str, int, str]]
) -> None:
    # A hostile status on the good device itself may rename or restart it; elsewhere nothing may change.
    touches_good = any(topic.startswith("twitchwatch/u/good/") for topic, _ in hostile)
    events, worker = await _run(workdir / "runs", hostile)
    assert "internal" not in worker.stats.rejected, worker.stats.rejected
    if not touches_good:
        assert events == reference


# ---- recording readers: every registered format ----------------------------------------------------


@pytest.fixture(scope="module")
def seeds(workdir: Path) -> dict[str, tuple[bytes, dict[str, bytes]]]:
    """A small valid file of every format (its own writer), to mutate, and the files beside it that it
    names (a WFDB header's signal file), kept whole so a mutated header still finds its samples."""
    out = {}
    for cls in readers():
        folder = workdir / f"seed-{cls.__name__}"
        folder.mkdir()
        main = write_generated(cls, folder)
        beside = {p.name: p.read_bytes() for p in folder.iterdir() if p != main}
        out[cls.__name__] = (main.read_bytes(), beside)
    return out


@st.composite
def mutated_file(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 6))):
        if data:
            at = draw(st.integers(0, min(len(data) - 1, 4096)))  # headers sit at the front
            data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)


@pytest.mark.parametrize("reader", readers(), ids=lambda r: r.__name__)
@settings(
    max_examples=40,
    deadline=None,
    # The seeds are written anew each run (a session records when it was made): an example saved by an
    # earlier run replays against other bytes, and hypothesis calls that a flaky strategy.
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_recording_reads_or_raises_recording_error(
    reader: type[RecordingReader],
    data: st.DataObject,
    seeds: dict[str, tuple[bytes, dict[str, bytes]]],
    tmp_path: Path,
) -> None:
    seed, beside = seeds[reader.__name__]
    payload = data.draw(st.one_of(st.binary(max_size=600), mutated_file(seed)))
    for name, content in beside.items():
        (tmp_path / name).write_bytes(content)
    path = tmp_path / f"fuzz{reader.EXTENSIONS[0] if reader.EXTENSIONS else '.dat'}"  # by content alone
    path.write_bytes(payload)
    # With and without --rate: formats that carry a rate refuse one before reading anything.
    rate = 100.0 if data.draw(st.booleans()) else None
    try:
        with open_recording(path, rate=rate) as opened:
            for chunk in opened.chunks(opened.recording.streams, 1.0):
                assert chunk.data.ndim == 2
    except RecordingError:
        pass


# ---- configuration --------------------------------------------------------------------------------

toml_key = st.sampled_from(["user", "devices", "collect", "profile", "segment", "muscle", "streams", "x"])


@st.composite
def device_map_text(draw: st.DrawFn) -> str:
    """A TOML device map with random structure and values, or random text."""
    if draw(st.booleans()):
        return draw(st.text(max_size=200))
    lines = [f'user = "{draw(st.text(max_size=10))}"'.replace("\\", "")] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 3))):
        device = draw(st.sampled_from(["polar1", "myo1", "a b", ""]))
        lines.append(f'[devices."{device}"]')
        lines.append(f'profile = "{draw(st.sampled_from(["polar-h10", "myo", "nope", ""]))}"')
        for _ in range(draw(st.integers(0, 3))):
            value = draw(
                st.one_of(
                    st.integers(),
                    st.text(max_size=12).map(lambda t: json.dumps(t)),
                    st.sampled_from(["true", "false"]),
                )
            )
            lines.append(f"{draw(toml_key)} = {value}")
    return "\n".join(lines)


@FUZZ
@given(text=device_map_text())
def test_a_device_map_loads_or_raises_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "devices.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(ConfigError):
            load_device_file(path)


env_value = st.one_of(
    st.text(max_size=40), st.sampled_from(["", "1e999", "nan", "{", "[[[[", "-1", "mqtt://"])
)
env_name = st.sampled_from(
    [
        "MQTT_URL",
        "STORE_URL",
        "USER",
        "FLAG_RULES",
        "JOURNAL_WINDOWS_H",
        "FLAGS_INTERVAL_S",
        "TIMEZONE",
        "HA_INTERVAL_S",
        "STATE_DIR",
        "DASHBOARD_PASSWORD",
        "NOT_A_SETTING",
    ]
)


@FUZZ
@given(env=st.dictionaries(env_name, env_value, max_size=4))
def test_the_environment_loads_or_raises_config_error(env: dict[str, str]) -> None:
    import os

    from twitchwatch.config import load_settings

    names = {f"TWITCHWATCH_{k}": v.replace("\x00", "") for k, v in env.items()}
    saved = {k: v for k, v in os.environ.items() if k.startswith("TWITCHWATCH_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update(names)
        with contextlib.suppress(ConfigError):
            load_settings()
    finally:
        for k in names:
            os.environ.pop(k, None)
        os.environ.update(saved)


def test_rejected_error_is_what_every_bad_message_raises() -> None:
    """FrameError, StatusError and TopicError are one family: the worker catches one type."""
    from twitchwatch.collector.frames import FrameError
    from twitchwatch.collector.topics import TopicError

    assert issubclass(FrameError, RejectedError)
    assert issubclass(StatusError, RejectedError)
    assert issubclass(TopicError, RejectedError)
