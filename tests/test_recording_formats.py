"""Every registered recording format, the same way: written → read → replayed and detected.

One generated recording — 30 s of calf EMG with fasciculations and a forearm accelerometer with twitches, both
at 1 kHz (CSV holds one rate), ground truth known (``collector.synth``) — is written by each reader the scan
finds (``readers()``: a new format module is in this list without anyone editing it), then

- read back, the reader picked by content alone (the file copied to a name with no known extension): the same
  samples within 1/32768 of each stream's range (EDF's 16 bits; CSV and sessions are exact to float64 and
  float32), the same start time;
- replayed (``open_source``: what ``twitchwatch replay`` and ``simulate --recording`` play): frames that
  carry the samples read and are timed from the start on;
- detected (``DetectionRun``, what ``twitchwatch detect`` runs) on the samples read and on the replayed
  frames: the same events, which find the fasciculations the generator put in;
- replayed with ``twitchwatch replay`` into the harness's Mosquitto and a worker: the events stored are those
  ``detect`` finds, at the same times (so ``twitchwatch replay file.csv`` works, which it did not).

The rest: how a reader is picked (content, then extension) and found (the scan, loud when a module is broken),
CSV time columns, EDF+ annotations, and ``twitchwatch export`` from any format.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyedflib
import pytest

from tests.harness import environ_without_settings
from tests.harness.mosquitto import MosquittoServer
from tests.test_replay import until
from twitchwatch.cli import main
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.recordings import (
    Annotation,
    Chunk,
    FormatPackageError,
    RecordingError,
    RecordingReader,
    Series,
    UnknownFormat,
    open_recording,
    reader_class,
    readers,
)
from twitchwatch.collector.recordings.formats.csv import CsvReader
from twitchwatch.collector.recordings.formats.edf import EdfReader, export_edf
from twitchwatch.collector.recordings.formats.session import SessionReader
from twitchwatch.collector.recordings.playback import open_source
from twitchwatch.collector.recordings.reader import discover
from twitchwatch.collector.recordings.source import ReplayError, ReplaySource
from twitchwatch.collector.synth import Physiology, TruthEvent, generate
from twitchwatch.processing.events import EventKind, TwitchEvent
from twitchwatch.processing.recordings import DetectionRun, Plan, RecordingEvent, plan_detection
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

FloatArray = npt.NDArray[np.float64]
RATE = 1000.0
SECONDS = 30.0
START_NS = 1_780_000_000_250_000_000  # on EDF+'s 0.1-ms grid
PHYSIOLOGY = Physiology(fasciculation=20.0, myoclonic_jerk=0.0, sustained=0.0, artifact=0.0)
FORMATS = readers()
USER = "formats"


@functools.cache
def generated() -> tuple[tuple[Series, ...], tuple[TruthEvent, ...]]:
    emg, emg_truth = generate("emg", RATE, SECONDS, PHYSIOLOGY, seed=21, muscle="calf_left")
    acc, acc_truth = generate("acc", RATE, SECONDS, PHYSIOLOGY, seed=22, muscle="forearm")
    series = (
        Series("EMG calf_left", "emg", RATE, emg[:, 0]),
        *(Series(f"ACC forearm {a}", "acc", RATE, acc[:, i]) for i, a in enumerate("XYZ")),
    )
    return series, tuple(emg_truth + acc_truth)


def write(reader: type[RecordingReader], folder: Path) -> Path:
    series, _ = generated()
    suffix = reader.EXTENSIONS[0] if reader.EXTENSIONS else ".dat"  # a format known by content alone
    return reader.write(folder / f"generated{suffix}", series, START_NS)


def read_samples(reader: RecordingReader) -> dict[str, FloatArray]:
    """Every streamed channel's samples by label."""
    groups = reader.recording.streams
    parts: dict[int, list[FloatArray]] = {i: [] for i in range(len(groups))}
    for chunk in reader.chunks(groups):
        parts[chunk.group].append(chunk.data)
    out: dict[str, FloatArray] = {}
    for gi, g in enumerate(groups):
        data = np.concatenate(parts[gi])
        out.update({c.label: data[:, j] for j, c in enumerate(g.channels)})
    return out


def replayed_chunks(source: ReplaySource, plan: Plan) -> Iterator[Chunk]:
    """The replayed frames as chunks of the plan's groups (matched by signal and muscles)."""
    to_group = {}
    for si, s in enumerate(source.streams):
        (gi,) = [
            gi
            for gi, g in enumerate(plan.groups)
            if g.signal == s.signal and tuple(c.muscle for c in g.channels) == s.muscles
        ]
        to_group[si] = gi
    done = [0] * len(plan.groups)
    for si, frame in source.frames(source.start_ns):
        gi = to_group[si]
        yield Chunk(gi, done[gi], frame.values(), frame.sample_rate)
        done[gi] += frame.samples


def detect(chunks: Iterator[Chunk], plan: Plan, gate: bool = True) -> list[RecordingEvent]:
    run = DetectionRun(plan, gate=gate)
    events = [e for chunk in chunks for e in run.feed(chunk)]
    return sorted(events + run.finish(), key=lambda e: (e.start, e.channel))


def _key(e: RecordingEvent) -> tuple[object, ...]:
    return (e.channel, e.muscle, e.kind, e.start, e.end)


# ---- every format: write → read → replay and detect ---------------------------------------------------
def test_the_scan_finds_every_format() -> None:
    assert {cls.__name__ for cls in FORMATS} >= {"EdfReader", "CsvReader", "SessionReader"}
    assert all(cls.__module__.startswith("twitchwatch.collector.recordings.formats.") for cls in FORMATS)


@pytest.mark.parametrize("reader", FORMATS, ids=lambda cls: cls.__name__)
def test_every_format_round_trips(reader: type[RecordingReader], tmp_path: Path) -> None:
    series, truth = generated()
    written = write(reader, tmp_path)
    anonymous = tmp_path / "recording.data"  # no extension any reader claims: content alone decides
    shutil.copyfile(written, anonymous)
    assert reader_class(anonymous) is reader

    with open_recording(anonymous) as r:
        rec = r.recording
        assert rec.start_ns == START_NS
        assert rec.duration_s == pytest.approx(SECONDS)
        samples = read_samples(r)
        plan = plan_detection(rec)
        from_file = detect(r.chunks(plan.groups), plan)
    assert set(samples) == {s.label for s in series}
    for s in series:
        tolerance = float(s.values.max() - s.values.min()) / 2**15
        np.testing.assert_allclose(samples[s.label], s.values, rtol=0, atol=tolerance, err_msg=s.label)

    source = open_source(anonymous)
    try:
        assert source.start_ns == START_NS
        assert source.duration_s == pytest.approx(SECONDS)
        assert sorted((s.signal, s.muscles) for s in source.streams) == [
            ("acc", ("forearm",) * 3),
            ("emg", ("calf_left",)),
        ]
        for si, stream in enumerate(source.streams):  # frames timed from the start, back to back
            sizes = [f.samples for i, f in source.frames(source.start_ns) if i == si]
            starts = [f.t0_ns for i, f in source.frames(source.start_ns) if i == si]
            offsets = np.cumsum([0, *sizes[:-1]])
            assert starts == [START_NS + round(n * 1e9 / stream.sample_rate) for n in offsets]
        replayed = list(replayed_chunks(source, plan))
    finally:
        source.close()
    for gi, g in enumerate(plan.groups):  # the samples read, as float32 on the wire
        values = np.concatenate([c.data for c in replayed if c.group == gi])
        for j, c in enumerate(g.channels):
            np.testing.assert_allclose(values[:, j], samples[c.label], rtol=2**-23, atol=0, err_msg=c.label)
    from_replay = detect(iter(replayed), plan)

    assert [_key(e) for e in from_replay] == [_key(e) for e in from_file]
    np.testing.assert_allclose(
        [e.amplitude for e in from_replay], [e.amplitude for e in from_file], rtol=1e-4, atol=1e-6
    )
    # The events are the generator's: detect is not comparing two empty lists.
    found = np.array([e.start for e in from_file if e.kind.is_twitch and e.muscle == "calf_left"])
    planted = [t.start_ns / 1e9 for t in truth if t.muscle == "calf_left" and t.start_ns > 2e9]
    hits = sum(bool(found.size and np.min(np.abs(found - t)) < 0.025) for t in planted)
    assert len(planted) > 5
    assert hits >= 0.8 * len(planted)


# ---- every format through `twitchwatch replay` into the worker ------------------------------------------
def _looked_like(e: TwitchEvent) -> str:
    if e.kind is EventKind.DURING_MOVEMENT:
        return e.reason.partition(": ")[0]
    return e.kind.value


@pytest.mark.mosquitto
@pytest.mark.parametrize("reader", FORMATS, ids=lambda cls: cls.__name__)
async def test_every_format_replays_into_the_worker(
    reader: type[RecordingReader], mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    """``twitchwatch replay FILE --speed max`` (a subprocess, recorded time) into a worker: the events stored
    are what detect finds in the file (the detectors alone, as in test_replay: the worker's gate and detect's
    differ in how they group a file's streams), at the same times from the recording's start."""
    path = write(reader, tmp_path)
    with open_recording(path) as r:
        plan = plan_detection(r.recording)
        expected = sorted(
            (e.muscle, e.kind.value, e.start) for e in detect(r.chunks(plan.groups), plan, gate=False)
        )
    source = open_source(path)
    frames = sum(1 for _ in source.frames(source.start_ns))
    source.close()
    device = f"rt-{reader.__name__.lower()}"
    env = environ_without_settings()
    env |= {"TWITCHWATCH_MQTT_URL": mosquitto.url, "TWITCHWATCH_USER": USER}
    env["TWITCHWATCH_STORE_URL"] = f"sqlite:///{tmp_path / 'unused.db'}"
    with SQLiteStore(tmp_path / "events.db") as store:
        target = parse_mqtt_url(mosquitto.url)
        worker = Worker(target, store, user=USER, client_id=f"formats-{device}", flush_interval=0.2)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 15)
        rename = ["--device", f"{path.stem}={device}"] if reader is SessionReader else ["--device", device]
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "twitchwatch", "replay", str(path), "--speed", "max", *rename),
            env=env,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert re.search(rf"replayed {frames} frames \({SECONDS:.1f} s of signal", err.decode()), err.decode()
        await until(lambda: worker.stats.frames >= frames, 60)
        worker.stop()
        await asyncio.wait_for(task, 30)
        assert (worker.stats.frames, worker.stats.gaps, worker.stats.bad_frames) == (frames, 0, 0)
        events = [e for e in store.events(EventQuery(user=USER)) if e.device == device]
    assert {e.source for e in events} == {"replay"}
    stored = sorted((e.muscle, _looked_like(e), (e.start_ns - START_NS) / 1e9) for e in events)
    assert len(expected) > 5
    assert [(m, k) for m, k, _ in stored] == [(m, k) for m, k, _ in expected]
    np.testing.assert_allclose([t for *_, t in stored], [t for *_, t in expected], rtol=0, atol=1e-6)


# ---- picking a reader ---------------------------------------------------------------------------------
def test_content_decides_before_the_name(tmp_path: Path) -> None:
    session = write(SessionReader, tmp_path)
    csv = write(CsvReader, tmp_path)
    disguised = tmp_path / "session.csv"
    shutil.copyfile(session, disguised)
    assert reader_class(disguised) is SessionReader  # HDF5's signature, whatever the name
    text = tmp_path / "export.edf"
    shutil.copyfile(csv, text)
    assert reader_class(text) is CsvReader  # no EDF version field: numeric text
    numbers = tmp_path / "values.txt"
    numbers.write_text("# a comment\n1.5\t2\n3\t4\n", encoding="utf-8")
    assert reader_class(numbers) is CsvReader


def test_a_file_no_reader_takes_is_named_with_what_is_read(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list\nmilk\n", encoding="utf-8")
    with pytest.raises(UnknownFormat) as info:
        open_recording(notes)
    message = str(info.value)
    assert message.startswith(
        f"{notes}: neither a PhysioNet WFDB record (.hea with its .dat), a PLUX OpenSignals file (HDF5), "
        "a twitchwatch session (HDF5), an EDF/EDF+/BDF/BDF+ file nor"
    )
    assert "told by content, then by extension: .bdf, .csv, .edf, .h5, .hdf5, .hea, .tsv" in message
    with pytest.raises(ReplayError, match="neither a PhysioNet WFDB record"):
        open_source(notes)
    # A name that promises CSV is read as CSV, and what is wrong is named by line and byte.
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"EMG a\n1\n\x81\x00\x01\n")
    with (
        pytest.raises(RecordingError, match=r"line 3, character 1: not UTF-8 text \(byte 0x81\)"),
        open_recording(binary, rate=100) as r,
    ):
        list(r.chunks(r.recording.streams))


# ---- finding the readers --------------------------------------------------------------------------------
@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """A formats package of its own on sys.path: ``add(module, source)`` puts a module in it and returns the
    package's name. The readers it defines are registered only for this test."""
    monkeypatch.setattr(RecordingReader, "_registry", dict(RecordingReader._registry))
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "formats_" + re.sub(r"\W", "_", tmp_path.name)
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")

    def add(module: str, source: str) -> str:
        (tmp_path / name / f"{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    yield add
    for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[loaded]


def test_a_new_format_is_one_module(package: Callable[[str, str], str], tmp_path: Path) -> None:
    name = package(
        "wav",
        """
        from twitchwatch.collector.recordings.formats.csv import CsvReader

        class WavReader(CsvReader):
            EXTENSIONS = (".wavtest",)
        """,
    )
    (cls,) = discover(name)
    assert cls.__name__ == "WavReader"
    assert RecordingReader.reader_for(Path("x.wavtest")) is cls


def test_a_broken_format_module_fails_the_scan(package: Callable[[str, str], str]) -> None:
    name = package("broken", "import nonexistent_module_for_the_test\n")
    with pytest.raises(FormatPackageError, match=rf"{name}\.broken failed to import: ModuleNotFoundError"):
        discover(name)


def test_a_format_module_without_a_reader_fails_the_scan(package: Callable[[str, str], str]) -> None:
    name = package("empty", "VALUE = 1\n")
    with pytest.raises(FormatPackageError, match=rf"{name}\.empty defines no recording reader"):
        discover(name)


# ---- CSV: the rate and the start from a time column -------------------------------------------------------
def test_csv_rate_and_start_from_its_time_column(tmp_path: Path) -> None:
    start_ms = 1_780_000_000_500
    rows = "\n".join(f"{start_ms + 4 * i},{np.sin(i / 3):.4f}" for i in range(600))
    path = tmp_path / "phone.csv"
    path.write_text(f"timestamp [ms],EMG calf_left [uV]\n{rows}\n", encoding="utf-8")
    with open_recording(path) as r:
        rec = r.recording
        assert [(c.label, c.rate) for c in rec.channels] == [("timestamp", 250.0), ("EMG calf_left", 250.0)]
        assert rec.start_ns == start_ms * 1_000_000
        assert rec.duration_s == pytest.approx(2.4)
        assert "sample rate 250 Hz from the 'timestamp' column" in rec.notes
    with open_recording(path, rate=500) as r:  # a rate given wins
        assert r.recording.channels[1].rate == 500.0
        assert r.recording.start_ns == start_ms * 1_000_000
    relative = tmp_path / "relative.csv"
    relative.write_text("t,EMG a\n0.000,1\n0.002,2\n0.004,3\n0.007,4\n0.008,5\n", encoding="utf-8")
    with open_recording(relative) as r:  # seconds from the start: a rate, no start; a late row is jitter
        assert (r.recording.channels[1].rate, r.recording.start_ns) == (500.0, None)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_csv_with_decimal_commas_reads_as_with_points(tmp_path: Path, delimiter: str) -> None:
    """A spreadsheet in a European locale writes ``0,98849`` and separates fields with semicolons (or tabs):
    refused as "no row of numbers" before; read as the same file with decimal points, and noted."""
    rows = [f"{i / 100:.2f};{0.01 * np.sin(i):.5f};{-0.05:.5f};{0.99:.5f}" for i in range(500)]
    points = tmp_path / "points.csv"
    points.write_text("time [s];acc_x [g];acc_y [g];acc_z [g]\n" + "\n".join(rows) + "\n", encoding="utf-8")
    commas = tmp_path / "commas.csv"
    text = points.read_text(encoding="utf-8").replace(".", ",").replace(";", delimiter)
    commas.write_text(text, encoding="utf-8")
    with open_recording(points) as a, open_recording(commas) as b:
        assert [(c.label, c.rate, c.scale) for c in b.recording.channels] == [
            (c.label, c.rate, c.scale) for c in a.recording.channels
        ]
        assert "decimal commas (0,98): read as decimal points" in b.recording.notes
        groups = a.recording.streams
        one = np.concatenate([ch.data for ch in a.chunks(groups)])
        two = np.concatenate([ch.data for ch in b.chunks(groups)])
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_csv_rate_from_jittered_times_is_the_rows_over_their_span(tmp_path: Path, seed: int) -> None:
    """Times stamped ±0.2 ms around a 1-kHz clock (a logger's or a phone's): every step but a gap counts,
    so the jitter cancels between neighbours — 1000 Hz, not 993-1005 Hz as from steps near the median. The
    EMG detector's method must not change for a clock error a rate estimate made up (emg.CLOCK_TOLERANCE)."""
    rng = np.random.default_rng(seed)
    times = np.arange(5000) / 1000 + rng.uniform(-2e-4, 2e-4, 5000)
    times[500:] += 0.5  # a gap of half a second: left out of the estimate
    rows = "\n".join(f"{t:.6f},{np.sin(i / 3):.3f}" for i, t in enumerate(times))
    path = tmp_path / "jittered.csv"
    path.write_text(f"time [s],EMG a [uV]\n{rows}\n", encoding="utf-8")
    with open_recording(path) as r:
        assert r.recording.channels[1].rate == 1000.0
        assert "sample rate 1000 Hz from the 'time' column" in r.recording.notes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,EMG a\n0,1\n0,2\n", r"its 'time' column does not increase from row to row"),
        ("time,EMG a\nnoon,1\nnight,2\n", r"its 'time' column holds no times in seconds, ms, us or ns"),
        ("EMG a\n1\n2\n", r"a CSV file has no sample rate: pass it \(--rate HZ\)$"),
    ],
)
def test_csv_without_a_usable_time_column_needs_a_rate(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecordingError, match=message):
        open_recording(path)
    with pytest.raises(RecordingError, match=message):
        open_source(path)
    source = open_source(path, rate=100.0)
    try:
        assert source.description.startswith(
            "x.csv (CSV, 1 channel(s), no start time in the file: starting now)"
        )
        assert sum(f.samples for _, f in source.frames(source.start_ns)) == 2
        assert sum(f.samples for _, f in source.frames(source.start_ns)) == 2  # a CSV file plays again
    finally:
        source.close()


# ---- EDF+ annotations and export ----------------------------------------------------------------------
def test_edf_plus_annotations_are_read(tmp_path: Path) -> None:
    series, _ = generated()
    notes = [
        Annotation(START_NS + 1_500_000_000, 12_000_000, "truth", "fasciculation", "calf_left"),
        Annotation(START_NS + 7_000_000_000, 0, "marker", "coffee"),
    ]
    path = EdfReader.write(tmp_path / "a.edf", series[:1], START_NS, notes)
    with pyedflib.EdfReader(str(path)) as edf:
        onsets, durations, texts = edf.readAnnotations()
    assert list(texts) == ["truth fasciculation calf_left", "marker coffee"]
    with open_recording(path) as r:
        got = r.recording.annotations
    assert got == tuple(notes)
    assert [(a.onset_ns - START_NS) / 1e9 for a in got] == pytest.approx(list(onsets), abs=1e-4)
    assert [a.duration_ns / 1e9 for a in got] == pytest.approx([durations[0], 0.0], abs=1e-4)


def test_export_reads_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``twitchwatch export`` of a CSV file: BDF+ (24 bits over each stream's range), labels and start kept,
    what was left out said; read back within a 24-bit step."""
    series, _ = generated()
    csv = write(CsvReader, tmp_path)
    assert main(["export", str(csv), "--edf", str(tmp_path / "out.edf")]) == 0
    err = capsys.readouterr().err
    out = tmp_path / "out.bdf"
    assert (
        f"{out}: BDF+, 4 signal(s) (EMG calf_left, ACC forearm X, ACC forearm Y, ACC forearm Z), "
        "30 × 1 s records, 0 annotation(s)"
    ) in err
    assert "note: #0 'time' (s) left out: time column" in err
    with open_recording(out) as r:
        assert (r.recording.format, r.recording.start_ns) == ("BDF+", START_NS)
        samples = read_samples(r)
    for s in series:  # one quantisation per stream: an accelerometer's over the range of its three axes
        stream = [other.values for other in series if other.kind == s.kind]
        step = (max(v.max() for v in stream) - min(v.min() for v in stream)) / 2**23
        np.testing.assert_allclose(samples[s.label], s.values, rtol=0, atol=step, err_msg=s.label)
    # Annotations of an EDF+ file go along.
    edf = EdfReader.write(
        tmp_path / "notes.edf", series[:1], START_NS, [Annotation(START_NS + 10**9, 0, "marker", "stretch")]
    )
    with open_recording(edf) as r:
        result = export_edf(r, tmp_path / "again.bdf")
    assert result.annotations == 1
    with open_recording(result.path) as r:
        assert r.recording.annotations == (Annotation(START_NS + 10**9, 0, "marker", "stretch"),)
