"""HDF5 sessions: what the writer stores, what the reader gives back, EDF+/BDF+ export, broken files.

No broker here (tests/test_replay.py records from a real one): frames are built in the test, so every
sample, sequence number and timestamp in the file can be checked exactly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pyedflib
import pytest

from twitchwatch.cli import main
from twitchwatch.collector.continuity import CLOCK_JITTER_NS
from twitchwatch.collector.frames import Frame, SampleType, Unit
from twitchwatch.collector.recordings import Annotation, open_recording
from twitchwatch.collector.recordings.formats.edf import edf_start_ns, export_edf
from twitchwatch.collector.recordings.formats.session import (
    FORMAT_VERSION,
    Session,
    SessionError,
    SessionReader,
    SessionWriter,
)
from twitchwatch.collector.recordings.reader import hdf5_sound
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.recordings import plan_detection

T0 = 1_700_000_000_123_456_789  # device time of the first EMG sample (ns since the epoch)
EMG_PERIOD = 50_000_000  # 50 samples at 1 kHz
ACC_PERIOD = 500_000_000  # 50 samples at 100 Hz


def _status(session_id: str = "s1") -> DeviceStatus:
    streams = {
        "emg": StreamInfo(0, "emg", 1000.0, ("calf_left",)),
        "acc": StreamInfo(1, "acc", 100.0, ("calf_left",) * 3),
    }
    return DeviceStatus("online", "polar-h10", "live", session_id, 80, streams)


def _emg(seq: int, rng: np.random.Generator, t0: int | None = None) -> Frame:
    raw = rng.integers(-2000, 2000, (50, 1)).astype(np.int16)
    t = T0 + seq * EMG_PERIOD if t0 is None else t0
    return Frame(0, seq, t, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)


def _acc(seq: int, rng: np.random.Generator) -> Frame:
    raw = rng.integers(-4096, 4096, (50, 3)).astype(np.int16)
    return Frame(1, seq, T0 + 20_000_000 + seq * ACC_PERIOD, 100.0, 1 / 4096, Unit.G, SampleType.INT16, raw)


def write_demo_session(path: Path) -> tuple[list[Frame], list[Frame]]:
    """Two streams of one device: EMG with frames 10 and 11 lost, a QoS-1 duplicate of frame 5, and a 2-s
    clock jump before frame 30; a 3-axis accelerometer, contiguous. Ground truth and a marker. Flushed in
    several pieces, as the recorder does. Returns the EMG and ACC frames the file must hold."""
    rng = np.random.default_rng(7)
    emg: list[Frame] = []
    acc = [_acc(seq, rng) for seq in range(5)]
    with SessionWriter(path, user="alice", broker="mqtt://broker:1883") as w:
        w.add_status("dev1", _status())
        for seq in range(40):
            if seq in (10, 11):
                continue
            t0 = T0 + seq * EMG_PERIOD + (2_000_000_000 if seq >= 30 else 0)
            frame = _emg(seq, rng, t0)
            emg.append(frame)
            assert w.add_frame("dev1", "emg", frame, received_ns=t0 + 5_000_000) in ("ok", "gap")
            if seq == 5:
                assert w.add_frame("dev1", "emg", frame) == "duplicate"
            if seq % 8 == 0:
                w.flush()
            if seq < len(acc):
                w.add_frame("dev1", "acc", acc[seq])
        w.add_annotation(
            Annotation(
                T0 + 300_000_000, 12_000_000, "truth", "fasciculation", "calf_left", '{"amplitude": 41.5}'
            )
        )
        w.add_annotation(Annotation(T0 + 900_000_000, 0, "marker", "coffee"))
    return emg, acc


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, list[Frame], list[Frame]]:
    path = tmp_path / "demo.h5"
    emg, acc = write_demo_session(path)
    return path, emg, acc


# ---- writing and reading ---------------------------------------------------------------------------
def test_session_round_trip_keeps_every_frame_exactly(demo: tuple[Path, list[Frame], list[Frame]]) -> None:
    path, emg, acc = demo
    with Session(path) as s:
        assert (s.format_version, s.user, s.broker, s.complete) == (
            FORMAT_VERSION,
            "alice",
            "mqtt://broker:1883",
            True,
        )
        assert [st.label for st in s.streams] == ["dev1/emg", "dev1/acc"]
        e, a = s.streams
        assert (e.frames, e.samples, e.duplicates, e.channels, e.muscles) == (38, 1900, 1, 1, ("calf_left",))
        assert (e.unit, e.sample_type, e.sample_rate, e.scale, e.signal) == (
            Unit.MICROVOLT,
            SampleType.INT16,
            1000.0,
            0.5,
            "emg",
        )
        assert (a.channels, a.muscles, a.unit, a.scale) == (3, ("calf_left",) * 3, Unit.G, 1 / 4096)
        assert list(s.frames(e)) == emg  # raw samples, sequence numbers, timestamps, scale: all equal
        assert list(s.frames(a)) == acc
        assert [f.sequence for f in s.frames(e, start=10)][:2] == [12, 13]
        table = s.frame_table(e)
        assert table["received_ns"][0] == T0 + 5_000_000
        assert s.start_ns == T0
        assert s.end_ns == T0 + 40 * EMG_PERIOD + 2_000_000_000
        device = s.devices["dev1"]
        assert (device.profile, device.source, device.session_ids) == ("polar-h10", "live", ("s1",))
        assert device.status is not None
        assert device.status.battery_percent == 80
        ann = s.annotations()
        assert [(x.category, x.text, x.muscle) for x in ann] == [
            ("truth", "fasciculation", "calf_left"),
            ("marker", "coffee", ""),
        ]
        assert ann[0].onset_ns == T0 + 300_000_000
        assert json.loads(ann[0].data) == {"amplitude": 41.5}


def test_gaps_are_recorded_with_what_was_lost(demo: tuple[Path, list[Frame], list[Frame]]) -> None:
    path, _, _ = demo
    with Session(path) as s:
        emg, acc = s.streams
        lost, jump = s.gaps(emg)
        assert (lost.kind, lost.frame, lost.previous_sequence, lost.sequence, lost.missing_frames) == (
            "lost",
            10,
            9,
            12,
            2,
        )
        assert lost.time_gap_ns == 2 * EMG_PERIOD
        assert (jump.kind, jump.missing_frames, jump.time_gap_ns) == ("time_jump", 0, 2_000_000_000)
        assert s.gaps(acc) == []
    with h5py.File(path) as f:
        assert (f.attrs["gaps"], f.attrs["missing_frames"], f.attrs["duplicates"], f.attrs["frames"]) == (
            2,
            2,
            1,
            43,
        )


def test_restart_and_parameter_change(tmp_path: Path) -> None:
    """A device that reboots starts its sequence over while time goes on (kept, marked ``restart``); a frame
    with a new rate starts a new part of the stream; a repeat of an old frame is a duplicate."""
    rng = np.random.default_rng(1)
    path = tmp_path / "restart.h5"
    with SessionWriter(path) as w:
        for seq in range(5):
            w.add_frame("d", "emg", _emg(seq, rng))
        assert w.add_frame("d", "emg", _emg(2, rng)) == "duplicate"
        assert w.add_frame("d", "emg", _emg(0, rng, T0 + 10 * EMG_PERIOD)) == "gap"
        raw = rng.integers(-9, 9, (25, 1)).astype(np.int16)
        changed = Frame(0, 1, T0 + 11 * EMG_PERIOD, 500.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
        assert w.add_frame("d", "emg", changed) == "ok"
    with Session(path) as s:
        first, second = s.streams
        assert (first.part, first.frames, second.part, second.frames, second.sample_rate) == (
            0,
            6,
            1,
            1,
            500.0,
        )
        assert second.path.endswith("emg#1")
        assert second.stream == "emg"
        (restart,) = s.gaps(first)
        assert (restart.kind, restart.previous_sequence, restart.sequence) == ("restart", 4, 0)
        assert restart.time_gap_ns == 5 * EMG_PERIOD
        assert [f.sequence for _, f in s.timeline()] == [0, 1, 2, 3, 4, 0, 1]
        assert [f.sequence for _, f in s.timeline(T0 + 3 * EMG_PERIOD + 1)] == [3, 4, 0, 1]


def test_small_clock_jitter_is_not_a_gap(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with SessionWriter(tmp_path / "j.h5") as w:
        for seq in range(10):
            jitter = (-1) ** seq * (CLOCK_JITTER_NS // 2 - 1_000_000)  # ±, so twice that between frames
            assert w.add_frame("d", "emg", _emg(seq, rng, T0 + seq * EMG_PERIOD + jitter)) == "ok"
        assert w.counts.gaps == 0


def test_writer_refuses_to_overwrite(demo: tuple[Path, list[Frame], list[Frame]]) -> None:
    with pytest.raises(SessionError, match="already exists"):
        SessionWriter(demo[0])


def test_unclosed_session_is_readable_up_to_its_last_whole_chunks(tmp_path: Path) -> None:
    """What a crash leaves: ``complete`` false, and the frames whose samples reached the file in whole
    chunks (about a second of samples, 32 frames: each chunk is written once, so that a crash during a
    flush cannot leave one half rewritten). 40 frames of 50 samples flushed: the samples' first 1,024-row
    chunk and the first 32 frames are on disk; the 20 frames within those samples are read, exactly."""
    rng = np.random.default_rng(3)
    path = tmp_path / "cut.h5"
    w = SessionWriter(path)
    frames = [_emg(seq, rng) for seq in range(41)]
    for f in frames[:40]:
        w.add_frame("d", "emg", f)
    w.flush()
    w.add_frame("d", "emg", frames[40])  # never flushed
    copy = tmp_path / "copy.h5"
    copy.write_bytes(path.read_bytes())
    w.close()
    with Session(copy) as s:
        assert s.complete is False
        (stream,) = s.streams
        assert (stream.frames, stream.samples) == (20, 1000)
        np.testing.assert_array_equal(
            s.samples(stream, 0, 1000), np.concatenate([f.raw for f in frames[:20]])
        )
    with Session(path) as s:  # closed: everything
        assert s.complete is True
        assert s.streams[0].frames == 41


def test_a_cut_session_with_a_gap_among_its_lost_frames_reads_up_to_them(tmp_path: Path) -> None:
    """The gaps table is written at every flush, the frame table in whole chunks: a gap among frames that
    never reached the file named a frame the cut file does not hold, and the whole recording was refused
    ("gaps row 0: … invalid") by detect, export and replay."""
    rng = np.random.default_rng(4)
    path = tmp_path / "cut.h5"
    w = SessionWriter(path)
    for seq in [*range(35), *range(38, 41)]:  # three frames lost at the 36th
        w.add_frame("d", "emg", _emg(seq, rng))
    w.flush()
    copy = tmp_path / "copy.h5"
    copy.write_bytes(path.read_bytes())
    w.close()
    with Session(copy) as s:
        (stream,) = s.streams
        assert (s.complete, stream.frames, s.gaps(stream)) == (False, 20, [])
    with SessionReader(copy) as reader:
        assert reader.recording.duration_s == pytest.approx(1.0)
    with Session(path) as s:  # closed: the gap is there
        assert [g.missing_frames for g in s.gaps(s.streams[0])] == [3]


def test_a_crash_loses_about_a_second_of_a_stream_of_long_frames(tmp_path: Path) -> None:
    """A Polar H10's accelerometer at 25 Hz sends a 36-sample frame (1.44 s) a notification. The frame
    table was written in chunks of 32 frames whatever their length: 45 s of 91 lost to a crash."""
    path = tmp_path / "long.h5"
    w = SessionWriter(path)
    frame_ns = 1_440_000_000
    for seq in range(63):
        raw = np.zeros((36, 3), np.int16)
        w.add_frame(
            "polar", "acc", Frame(0, seq, T0 + seq * frame_ns, 25.0, 0.001, Unit.G, SampleType.INT16, raw)
        )
        w.flush()  # the recorder flushes every second: after each frame here
    copy = tmp_path / "copy.h5"
    copy.write_bytes(path.read_bytes())
    w.close()
    with Session(copy) as s:
        (stream,) = s.streams
        lost_s = (T0 + 63 * frame_ns - stream.end_ns) / 1e9
    assert 0 <= lost_s <= 3.0


# ---- export ----------------------------------------------------------------------------------------
def _read_edf(path: Path) -> tuple[pyedflib.EdfReader, list[npt.NDArray[np.float64]]]:
    edf = pyedflib.EdfReader(str(path))
    return edf, [edf.readSignal(i) for i in range(edf.signals_in_file)]


def test_export_edf_plus_reads_back(demo: tuple[Path, list[Frame], list[Frame]], tmp_path: Path) -> None:
    path, emg, acc = demo
    out = tmp_path / "demo.edf"
    with Session(path) as s:
        result = export_edf(s, out)
    assert (result.path, result.filetype, result.record_s) == (out, "EDF+", 1.0)
    assert result.labels == ("EMG calf_left", "ACC calf_left X", "ACC calf_left Y", "ACC calf_left Z")
    edf, signals = _read_edf(out)
    try:
        assert edf.filetype == pyedflib.FILETYPE_EDFPLUS
        assert edf.getSignalLabels() == list(result.labels)
        assert [edf.getPhysicalDimension(i) for i in range(4)] == ["uV", "g", "g", "g"]
        assert [edf.getSampleFrequency(i) for i in range(4)] == [1000.0, 100.0, 100.0, 100.0]
        # EDF+ start: whole seconds in the header, the rest in the first record's time stamp (100 ns units;
        # pyedflib's getStartdatetime misreads it, so read the raw value).
        start_ns = T0 // 100_000 * 100_000
        assert edf.getStartdatetime().replace(microsecond=0).timestamp() == start_ns // 10**9
        assert edf.starttime_subsecond == start_ns % 10**9 // 100
        assert edf_start_ns(out) == start_ns  # what replay reads: header date/time + the first time stamp
        onsets, durations, texts = edf.readAnnotations()
    finally:
        edf.close()
    # EMG: frames 0-9, 2 lost frames held at the last value, frames 12-29, a 2-s clock jump held, then 30-39.
    x = signals[0]
    raw = np.concatenate([f.raw[:, 0] for f in emg]).astype(np.float64) * 0.5
    np.testing.assert_array_equal(x[:500], raw[:500])
    np.testing.assert_array_equal(x[500:600], np.full(100, raw[499]))
    np.testing.assert_array_equal(x[600:1500], raw[500:1400])
    np.testing.assert_array_equal(x[1500:3500], np.full(2000, raw[1399]))
    np.testing.assert_array_equal(x[3500:4000], raw[1400:1900])
    assert len(x) == 4000
    assert np.all(x[4000:] == raw[-1])
    # ACC starts 20 ms after the EMG: two samples of the first value, then the data, exact to the count.
    a = np.concatenate([f.raw for f in acc]).astype(np.float64) / 4096
    for axis in range(3):
        y = signals[1 + axis]
        np.testing.assert_array_equal(y[:2], np.full(2, a[0, axis]))
        np.testing.assert_array_equal(y[2:252], a[:, axis])
        assert np.all(y[252:] == a[-1, axis])
    notes = dict(zip(texts, zip(onsets, durations, strict=True), strict=False))
    assert notes["truth fasciculation calf_left"] == pytest.approx((0.3, 0.012), abs=1e-4)
    assert notes["marker coffee"][0] == pytest.approx(0.9, abs=1e-4)
    gaps = [(o, d) for o, d, t in zip(onsets, durations, texts, strict=True) if t == "BAD_gap EMG calf_left"]
    assert gaps == [pytest.approx((0.5, 0.1), abs=1e-4), pytest.approx((1.5, 2.0), abs=1e-4)]
    assert "BAD_no_data ACC calf_left" in texts  # the 20 ms before its first sample, and after its last


def test_exported_labels_tell_detect_type_and_muscle(
    demo: tuple[Path, list[Frame], list[Frame]], tmp_path: Path
) -> None:
    with Session(demo[0]) as s:
        export_edf(s, tmp_path / "d.edf")
    with open_recording(tmp_path / "d.edf") as reader:
        plan = plan_detection(reader.recording)
    assert [(g.signal, g.rate, [c.muscle for c in g.channels]) for g in plan.groups] == [
        ("emg", 1000.0, ["calf_left"]),
        ("acc", 100.0, ["calf_left"] * 3),
    ]
    assert [c.axis for c in plan.groups[1].channels] == ["X", "Y", "Z"]


def test_export_bdf_plus_for_24_bit_streams(tmp_path: Path) -> None:
    """int32 samples within 24 bits stay exact in BDF+; float32 samples are quantised to 24 bits."""
    rng = np.random.default_rng(4)
    path = tmp_path / "wide.h5"
    big = rng.integers(-3_000_000, 3_000_000, (200, 2)).astype(np.int32)
    floats = rng.normal(0, 50, (100, 1)).astype(np.float32)
    with SessionWriter(path) as w:
        for k in range(4):
            raw = big[k * 50 : (k + 1) * 50]
            w.add_frame(
                "ganglion",
                "emg",
                Frame(0, k, T0 + k * EMG_PERIOD, 1000, 0.001, Unit.MICROVOLT, SampleType.INT32, raw),
            )
        for k in range(2):
            chunk = floats[k * 50 : (k + 1) * 50]
            w.add_frame(
                "edf",
                "emg",
                Frame(0, k, T0 + k * EMG_PERIOD, 1000, 1.0, Unit.MICROVOLT, SampleType.FLOAT32, chunk),
            )
    with Session(path) as s:
        result = export_edf(s, tmp_path / "wide.edf")
    assert result.path == tmp_path / "wide.bdf"
    assert result.filetype == "BDF+"
    assert any("quantised to 24 bits" in n for n in result.notes)
    edf, signals = _read_edf(result.path)
    labels = edf.getSignalLabels()
    assert edf.filetype == pyedflib.FILETYPE_BDFPLUS
    edf.close()
    assert labels == ["EMG edf", "EMG ganglion 1", "EMG ganglion 2"]  # no status, no muscle: the device
    step = (floats.max() - floats.min()) / 2**24
    np.testing.assert_allclose(signals[0][:100], floats[:, 0], rtol=0, atol=2 * step)
    # 0.001 as float32 has no exact 8-character form: quantised over the data's range, half a step at most.
    assert any("no exact 8-character physical range" in n for n in result.notes)
    for ch in range(2):
        expected = big[:, ch] * np.float64(np.float32(0.001))
        step = (expected.max() - expected.min()) / 2**24
        np.testing.assert_allclose(signals[1 + ch][:200], expected, rtol=0, atol=0.6 * step)


def test_export_writes_a_float_stream_s_nan_as_0_and_keeps_a_float32_rate_exact(tmp_path: Path) -> None:
    """A float32 stream with a NaN sample (a sensor's dropout) crashed the export with an OverflowError (its
    range came out infinite); it is written as 0, with a note. A 51.2-Hz accelerometer beside 1-kHz EMG
    (rates stored as float32: 51.20000076) read back at 999.87 Hz (3.066-s records); now 5-s records."""
    path = tmp_path / "nan.h5"
    wave = (np.sin(np.arange(200, dtype=np.float32)) * 100)[:, None]
    wave[57, 0] = np.nan
    acc = np.zeros((256, 3), dtype=np.int16)
    with SessionWriter(path) as w:
        for k in range(4):
            frame = Frame(
                0,
                k,
                T0 + k * EMG_PERIOD,
                1000,
                1.0,
                Unit.MICROVOLT,
                SampleType.FLOAT32,
                wave[k * 50 : k * 50 + 50],
            )
            w.add_frame("d", "emg", frame)
        rate = float(np.float32(51.2))
        w.add_frame("d", "acc", Frame(1, 0, T0, rate, 0.001, Unit.G, SampleType.INT16, acc))
    with Session(path) as session:
        result = export_edf(session, tmp_path / "nan.edf")
    assert any("1 samples that are not numbers (NaN or infinity) written as 0" in n for n in result.notes)
    edf, signals = _read_edf(result.path)
    rates = [edf.getSampleFrequency(i) for i in range(edf.signals_in_file)]
    emg = next(i for i, label in enumerate(edf.getSignalLabels()) if label.startswith("EMG"))
    record = edf.datarecord_duration
    edf.close()
    assert record == 5.0
    assert sorted(set(rates)) == [51.2, 1000.0]
    step = 200.0 / 2**24
    assert abs(signals[emg][57]) <= step
    np.testing.assert_allclose(signals[emg][:57], wave[:57, 0], rtol=0, atol=2 * step)


def test_cli_export(
    demo: tuple[Path, list[Frame], list[Frame]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(demo[0]), "--edf", str(tmp_path / "cli.edf")]) == 0
    err = capsys.readouterr().err
    assert "EDF+, 4 signal(s) (EMG calf_left, ACC calf_left X, ACC calf_left Y, ACC calf_left Z)" in err
    assert (tmp_path / "cli.edf").stat().st_size > 4000 * 2


# ---- broken files ----------------------------------------------------------------------------------
def _break(path: Path, how: str) -> None:
    with h5py.File(path, "r+") as f:
        if how == "version":
            f.attrs["format_version"] = FORMAT_VERSION + 1
        elif how == "format":
            f.attrs["format"] = "something-else"
        elif how == "no-format":
            del f.attrs["format"]
        elif how == "no-samples":
            del f["devices/dev1/acc/samples"]
        elif how == "unit":
            f["devices/dev1/emg"].attrs["unit_code"] = 9
        elif how == "muscles":
            f["devices/dev1/acc"].attrs["muscles"] = np.array(["a"], dtype=h5py.string_dtype())
        elif how == "rate":
            f["devices/dev1/emg"].attrs["sample_rate"] = "fast"
        elif how == "short-samples":
            f["devices/dev1/emg/samples"].resize(1800, axis=0)
        elif how == "ghost-device":  # a link into a file that is not there: h5py gives None, not a group
            f["devices/ghost"] = h5py.ExternalLink("missing.h5", "/dev")
        elif how == "ghost-part":
            f["devices/dev1/ghost"] = h5py.SoftLink("/nowhere")
        elif how == "frames-table":
            rows = f["devices/dev1/emg/frames"]
            row = rows[3]
            row["first_sample"] = 7
            rows[3] = row


BROKEN = [
    ("version", r"root attribute 'format_version': 2 is not supported \(written by a newer twitchwatch\)"),
    ("format", r"root attribute 'format': 'something-else', expected 'twitchwatch-session'"),
    ("no-format", r"not a twitchwatch session \(no 'format' attribute\)"),
    ("no-samples", r"/devices/dev1/acc/samples: missing"),
    ("unit", r"/devices/dev1/emg attribute 'unit_code': unknown unit 9"),
    ("muscles", r"/devices/dev1/acc attribute 'muscles': 1 names for 3 channels"),
    ("rate", r"/devices/dev1/emg attribute 'sample_rate': 'fast' is not a finite number"),
    ("ghost-device", r"/devices/ghost: is not a group"),
    ("ghost-part", r"/devices/dev1/ghost: is not a group \(a stream part\)"),
    (
        "short-samples",
        r"frames row 37: frames describe 1900 samples but .*samples holds 1800 \(truncated\?\)",
    ),
]


@pytest.mark.parametrize(("how", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_session_names_what_is_wrong(
    demo: tuple[Path, list[Frame], list[Frame]], how: str, message: str
) -> None:
    path = demo[0]
    _break(path, how)
    with pytest.raises(SessionError, match=message) as info:
        Session(path)
    assert str(path) in str(info.value)


def test_inconsistent_frame_table_is_caught_while_reading(
    demo: tuple[Path, list[Frame], list[Frame]],
) -> None:
    path = demo[0]
    _break(path, "frames-table")
    with (
        Session(path) as s,
        pytest.raises(SessionError, match=r"/devices/dev1/emg/frames row [23]: first_sample"),
    ):
        list(s.frames(s.streams[0]))


def test_not_hdf5_and_truncated_files(demo: tuple[Path, list[Frame], list[Frame]], tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("hello\n")
    with pytest.raises(
        SessionError, match=r"notes.h5: not a readable HDF5 file \(file signature not found\)"
    ):
        Session(text)
    cut = tmp_path / "cut.h5"
    data = demo[0].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SessionError, match=r"cut.h5: not a readable HDF5 file \(truncated file"):
        Session(cut)
    with pytest.raises(SessionError, match="no such file"):
        Session(tmp_path / "missing.h5")


@pytest.mark.parametrize("command", ["export", "replay"])
def test_cli_exits_2_on_a_broken_session(
    clean_env: None,
    demo: tuple[Path, list[Frame], list[Frame]],
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    path = demo[0]
    _break(path, "version")
    argv = (
        ["export", str(path), "--edf", str(tmp_path / "x.edf")]
        if command == "export"
        else ["replay", str(path)]
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "format_version': 2 is not supported" in err
    assert str(path) in err
    assert not (tmp_path / "x.edf").exists()


def test_a_file_whose_walk_misses_the_deadline_is_refused_and_nothing_waits_for_it(
    demo: tuple[Path, list[Frame], list[Frame]],
) -> None:
    """The deadline a damaged file's endless loop in the HDF5 library meets (``reader.hdf5_sound``). No file
    that loops for good was found to keep here, so a deadline no child can meet stands in for one: the child
    is killed, the file refused, and a sound file walked in time is remembered, not walked again."""
    path = demo[0]
    with pytest.raises(SessionError, match=r"damaged: the HDF5 library did not finish .* within 0.001 s"):
        hdf5_sound(path, SessionError, deadline_s=0.001)
    hdf5_sound(path, SessionError)
    hdf5_sound(path, SessionError, deadline_s=0.001)  # walked once already: no child
    with Session(path) as s:
        assert s.user == "alice"


def test_replay_reads_past_a_damaged_chunk_in_the_middle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fifty bytes of one compressed chunk of samples overwritten, 30 s into a 60-s session (a disk's bad
    sector, a copy gone wrong): ``frames`` — the replay's source — stopped there, and everything after it
    was lost to the replay. The frames that read are given; the skipped ones show as lost (their sequence
    numbers are missing), with a warning."""
    rng = np.random.default_rng(5)
    path = tmp_path / "damaged.h5"
    with SessionWriter(path) as w:
        for seq in range(1200):  # 60 s of 1-kHz EMG in 50-ms frames
            w.add_frame("d", "emg", _emg(seq, rng))
    with h5py.File(path, "r") as f:
        info = f["devices/d/emg/samples"].id.get_chunk_info(30)  # rows 30720-31743
    data = bytearray(path.read_bytes())
    data[info.byte_offset + 10 : info.byte_offset + 60] = bytes(50)
    path.write_bytes(bytes(data))
    with Session(path) as s, caplog.at_level(logging.WARNING):
        sequences = [f.sequence for f in s.frames(s.streams[0])]
    missing = sorted(set(range(1200)) - set(sequences))
    assert sequences == sorted(sequences)
    assert 0 < len(missing) <= 22  # the frames with samples in the 1,024-row chunk
    assert missing == list(range(missing[0], missing[-1] + 1))
    assert missing[-1] >= 30720 // 50
    assert missing[0] <= 31743 // 50
    assert any("unreadable" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
