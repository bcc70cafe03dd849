"""Recording readers: channel inference, EDF+/BDF+ and CSV streaming, malformed files.

Files are written here with pyedflib from the real recordings in tests/data/recordings (see its README),
plus synthetic twitches where a test needs known events. The helpers below are shared with test_detect_cli.py.
"""

from __future__ import annotations

import functools
import math
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyedflib
import pytest
import scipy.signal as sps

from tests.datafiles import RECORDINGS
from twitchwatch.collector.recordings import (
    STANDARD_GRAVITY,
    Channel,
    Recording,
    RecordingError,
    RecordingReader,
    infer_channel,
    open_recording,
    sanitise,
)
from twitchwatch.collector.recordings.formats.csv import CsvReader
from twitchwatch.collector.recordings.formats.edf import EdfReader, check_edf_header
from twitchwatch.collector.recordings.formats.session import SessionReader
from twitchwatch.collector.recordings.playback import open_source
from twitchwatch.collector.topics import TopicError
from twitchwatch.processing.recordings import DetectionRun, Plan, plan_detection

FloatArray = npt.NDArray[np.float64]
DATA = RECORDINGS


# ---- real data and files made from it ----------------------------------------------------------------
@functools.cache
def biosppy_emg_uv(name: str = "emg.txt") -> FloatArray:
    """BioSPPy's example surface EMG (1 kHz, raw 12-bit ADC counts) in µV.

    Assumption (the file does not say): a BITalino EMG sensor, whose datasheet transfer function is
    EMG(V) = (ADC / 2^12 − 1/2) · VCC / G with VCC = 3.3 V and G = 1009, i.e. ±1.64 mV full scale and
    0.8 µV per count. At rest this gives ≈1.3 µV RMS in 20–450 Hz, a plausible surface-EMG noise floor."""
    adc = np.loadtxt(DATA / "biosppy_examples" / name, comments="#")
    return (adc / 4096 - 0.5) * 3.3 / 1009 * 1e6


@functools.cache
def biosppy_acc_g() -> FloatArray:
    """BioSPPy's example 3-axis accelerometer, 100 Hz, (samples, 3) in g.

    Its header says m/s², but the static vector magnitude is 1.03 on average (0.84–1.29): gravity in g, not
    9.8 m/s². We take it as g, and write it to EDF in m/s² (× 9.80665) where a test needs m/s²."""
    return np.loadtxt(DATA / "biosppy_examples" / "acc.txt", comments="#")


def emg_4khz_uv(seconds: int) -> FloatArray:
    """The BioSPPy surface EMG (its offset removed) resampled to 4 kHz: real, at a needle EMG's rate."""
    x = biosppy_emg_uv()[: seconds * 1000]
    return np.asarray(sps.resample_poly(x - x.mean(), 4, 1), dtype=np.float64)


@dataclass(frozen=True)
class Sig:
    label: str
    dimension: str
    rate: int
    data: FloatArray


def write_edf(path: Path, signals: Sequence[Sig], bdf: bool = False) -> Path:
    """An EDF+ (or BDF+) file with 1-s data records; every signal must hold whole seconds."""
    digital = 8388607 if bdf else 32767
    headers: list[dict[str, str | int | float | None]] = []
    for s in signals:
        assert s.data.size % s.rate == 0, f"{s.label}: whole seconds only"
        top = max(1, math.ceil(float(np.abs(s.data).max()) * 1.25))  # integers: 8-character header fields
        headers.append(
            {
                "label": s.label,
                "dimension": s.dimension,
                "sample_frequency": s.rate,
                "physical_max": top,
                "physical_min": -top,
                "digital_max": digital,
                "digital_min": -digital - 1,
            }
        )
    filetype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    writer = pyedflib.EdfWriter(str(path), len(signals), filetype)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.ascontiguousarray(s.data, dtype=np.float64) for s in signals])
    finally:
        writer.close()
    return path


def add_potential(
    x: FloatArray, rate: float, onset_s: float, amplitude: float, duration_s: float = 0.010
) -> None:
    """A biphasic motor-unit-like potential (first derivative of a Gaussian, ±3 σ over ``duration_s``)."""
    n = round(duration_s * rate)
    z = np.linspace(-3.0, 3.0, n)
    w = -z * np.exp(-0.5 * z * z)
    i = round(onset_s * rate)
    x[i : i + n] += amplitude * w / np.abs(w).max()


def add_acc_twitch(
    x: FloatArray, rate: float, onset_s: float, amplitude_g: float, hz: float = 20.0, duration_s: float = 0.08
) -> None:
    """A brief damped oscillation (sin² envelope) along a fixed oblique direction, in ``x``'s units."""
    n = round(duration_s * rate)
    u = np.arange(n) / n
    w = amplitude_g * np.sin(np.pi * u) ** 2 * np.sin(2 * np.pi * hz * duration_s * u)
    i = round(onset_s * rate)
    x[i : i + n, :] += w[:, None] * np.array([0.6, -0.48, 0.64])[None, :]


def quantum(x: FloatArray, bits: int = 16) -> float:
    """The physical value of one digital step in a file written by ``write_edf``."""
    return float(2 * math.ceil(float(np.abs(x).max()) * 1.25) / (2**bits - 1))


def read_all(
    reader: RecordingReader, chunk_seconds: float = 1.0, plan: Plan | None = None
) -> dict[int, FloatArray]:
    """Every group's samples, concatenated, checking that chunks are contiguous and bounded."""
    plan = plan or plan_detection(reader.recording)
    parts: dict[int, list[FloatArray]] = {i: [] for i in range(len(plan.groups))}
    for chunk in reader.chunks(plan.groups, chunk_seconds):
        group = plan.groups[chunk.group]
        assert chunk.start == sum(p.shape[0] for p in parts[chunk.group])
        assert 0 < chunk.data.shape[0] <= group.chunk_samples(chunk_seconds)
        parts[chunk.group].append(chunk.data)
    return {i: np.concatenate(p) for i, p in parts.items()}


def stream(path: Path, rate: float | None = None) -> int:
    """Read a whole file the way ``detect`` does; the number of samples of the first group."""
    samples = 0
    with open_recording(path, rate=rate) as reader:
        for chunk in reader.chunks(plan_detection(reader.recording).groups):
            samples += chunk.data.shape[0] if chunk.group == 0 else 0
    return samples


# ---- inference from labels and dimensions -------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "dimension", "signal", "scale", "muscle", "axis"),
    [
        ("EMG calf_left", "uV", "emg", 1.0, "calf_left", ""),
        ("EMG calf_left", "µV", "emg", 1.0, "calf_left", ""),
        ("biceps", "mV", "emg", 1e3, "biceps", ""),
        ("EMG1", "V", "emg", 1e6, "EMG1", ""),
        ("ACC calf_left X", "g", "acc", 1.0, "calf_left", "X"),
        ("ACC calf z", "m/s^2", "acc", 1 / STANDARD_GRAVITY, "calf", "Z"),
        ("acc_y", "m/s2", "acc", 1 / STANDARD_GRAVITY, "acc", "Y"),
        ("wrist-X", "m/s²", "acc", 1 / STANDARD_GRAVITY, "wrist", "X"),
        ("calf left (R)", "uV", "emg", 1.0, "calf_left_R", ""),
        ("EMG calf", "", "emg", 1.0, "calf", ""),  # no dimension: the label's type word decides
        ("ACC thigh Y", "", "acc", 1.0, "thigh", "Y"),
    ],
)
def test_infer_channel(label: str, dimension: str, signal: str, scale: float, muscle: str, axis: str) -> None:
    ch = infer_channel(3, label, dimension, 500.0)
    assert (ch.signal, ch.muscle, ch.axis) == (signal, muscle, axis)
    assert ch.scale == pytest.approx(scale)
    assert ch.unit == ("µV" if signal == "emg" else "g")


@pytest.mark.parametrize(
    ("label", "dimension", "why"),
    [
        ("Temp", "degC", "neither a voltage, an acceleration nor an angular rate"),
        ("Force", "%MVC", "neither a voltage, an acceleration nor an angular rate"),
        ("EDF Annotations", "", "annotation"),
        ("channel1", "", "no physical dimension and no EMG/ACC/GYR/ORI"),
        # The axes' magnitude beside the axes (phyphox, ActiGraph): one more one-axis "sensor" before
        ("Absolute acceleration", "m/s^2", "a magnitude derived from the axes"),
        ("Vector Magnitude", "g", "a magnitude derived from the axes"),
        ("acc_norm", "", "a magnitude derived from the axes"),
    ],
)
def test_other_channels_are_skipped_with_a_reason(label: str, dimension: str, why: str) -> None:
    ch = infer_channel(0, label, dimension, 100.0)
    assert ch.signal is None
    assert why in ch.note


def test_dimension_wins_over_the_label_with_a_note() -> None:
    ch = infer_channel(0, "ACC calf X", "uV", 1000.0)
    assert ch.signal == "emg"
    assert "the label says ACC" in ch.note


def test_sanitise_keeps_the_segment_rule() -> None:
    assert sanitise("calf left/R é") == "calf_left_R"
    assert sanitise("///") == "unknown"
    assert len(sanitise("x" * 100)) == 64


def _recording(*channels: Channel) -> Recording:
    return Recording(Path("x.edf"), "EDF+", channels, 10.0)


def test_groups_one_detector_per_rate_and_per_accelerometer() -> None:
    rec = _recording(
        infer_channel(0, "EMG calf_left", "uV", 1000),
        infer_channel(1, "EMG calf_right", "mV", 1000),
        infer_channel(2, "EMG forearm", "uV", 2000),
        infer_channel(3, "ACC calf Z", "g", 100),
        infer_channel(4, "ACC calf X", "g", 100),
        infer_channel(5, "ACC calf Y", "g", 100),
        infer_channel(6, "ACC thigh", "g", 100),
        infer_channel(7, "Temp", "degC", 1),
    )
    plan = plan_detection(rec)
    shapes = [(g.signal, g.rate, [c.index for c in g.channels]) for g in plan.groups]
    assert shapes == [
        ("emg", 1000, [0, 1]),
        ("emg", 2000, [2]),
        ("acc", 100, [4, 5, 3]),  # X, Y, Z order
        ("acc", 100, [6]),
    ]
    lanes = [(lane.label, lane.muscle) for g in plan.groups for lane in g.lanes]
    assert lanes == [
        ("EMG calf_left", "calf_left"),
        ("EMG calf_right", "calf_right"),
        ("EMG forearm", "forearm"),
        ("ACC calf X/Y/Z", "calf"),
        ("ACC thigh", "thigh"),
    ]
    assert [c.label for c in plan.skipped] == ["Temp"]


def test_selection_muscle_and_signal_overrides() -> None:
    rec = _recording(
        infer_channel(0, "EMG calf_left", "uV", 1000),
        infer_channel(1, "needle", "", 1000),
        infer_channel(2, "ACC calf X", "g", 100),
        infer_channel(3, "Temp", "degC", 1),
    )
    plan = plan_detection(rec, select=["EMG calf_left", "2"], muscle="soleus")
    assert [(c.index, c.muscle) for g in plan.groups for c in g.channels] == [(0, "soleus"), (2, "soleus")]
    assert plan.unselected == 2
    # --signal: a blank dimension takes the type; another signal's unit or an unknown one only when named
    plan = plan_detection(rec, signal="emg")
    assert [c.index for g in plan.groups for c in g.channels] == [0, 1]
    assert {c.index: c.note for c in plan.skipped}[2].startswith("dimension 'g' is not EMG")
    plan = plan_detection(rec, select=["3"], signal="emg")
    assert [c.index for g in plan.groups for c in g.channels] == [3]
    with pytest.raises(RecordingError, match=r"no channel 'nope' \(channels: 0='EMG calf_left'"):
        plan_detection(rec, select=["nope"])
    with pytest.raises(RecordingError, match=r"no EMG or accelerometer channel.*'Temp'"):
        plan_detection(rec, select=["Temp"])
    with pytest.raises(TopicError):
        plan_detection(rec, muscle="left calf")


# ---- EDF+ / BDF+ from real recordings ---------------------------------------------------------------
def test_numbered_accelerometer_signals_of_an_edf_are_one_sensor(tmp_path: Path) -> None:
    """OpenBCI's BDF names its accelerometer ``Accel Channel 0``, ``… 1``, ``… 2``: three one-axis sensors
    before (only the CSV reader grouped numbered labels), whose single axes counted twitches in a shake
    that the sensor as a whole took for movement. Every format groups them now; numbered EMG stays apart."""
    rng = np.random.default_rng(2)
    acc = [rng.normal(0, 0.01, 1000) + (1.0 if axis == 2 else 0.0) for axis in range(3)]
    path = write_edf(
        tmp_path / "openbci.bdf",
        [
            Sig("EXG Channel 0", "uV", 1000, rng.normal(0, 5, 10_000)),
            Sig("EXG Channel 1", "uV", 1000, rng.normal(0, 5, 10_000)),
            Sig("EXG Channel 2", "uV", 1000, rng.normal(0, 5, 10_000)),
            *(Sig(f"Accel Channel {k}", "g", 100, acc[k]) for k in range(3)),
        ],
        bdf=True,
    )
    with open_recording(path) as reader:
        rec = reader.recording
    shapes = [(g.signal, [c.label for c in g.channels]) for g in rec.streams]
    assert shapes == [
        ("emg", ["EXG Channel 0", "EXG Channel 1", "EXG Channel 2"]),
        ("acc", ["Accel Channel 0", "Accel Channel 1", "Accel Channel 2"]),
    ]
    assert [c.axis for c in rec.streams[1].channels] == ["X", "Y", "Z"]


def test_edf_plus_mixed_rates_round_trip(tmp_path: Path) -> None:
    emg = biosppy_emg_uv()[:20_000]
    acc_ms2 = biosppy_acc_g() * STANDARD_GRAVITY
    path = write_edf(
        tmp_path / "mixed.edf",
        [
            Sig("EMG calf_left", "uV", 1000, emg),
            Sig("EMG calf_right", "mV", 1000, emg[::-1] / 1000),
            *(Sig(f"ACC calf {a}", "m/s^2", 100, acc_ms2[:, i]) for i, a in enumerate("XYZ")),
            Sig("Temp", "degC", 1, np.full(20, 33.5)),
        ],
    )
    with open_recording(path) as reader:
        rec = reader.recording
        assert rec.format == "EDF+"
        assert rec.duration_s == 20.0
        assert [(c.label, c.rate, c.signal) for c in rec.channels] == [
            ("EMG calf_left", 1000, "emg"),
            ("EMG calf_right", 1000, "emg"),
            ("ACC calf X", 100, "acc"),
            ("ACC calf Y", 100, "acc"),
            ("ACC calf Z", 100, "acc"),
            ("Temp", 1, None),
        ]
        assert any("annotation" in n for n in rec.notes)
        got = read_all(reader, chunk_seconds=0.7)
    # EDF stores 16-bit integers: values come back within one digital step.
    assert np.abs(got[0][:, 0] - emg).max() <= quantum(emg)
    assert np.abs(got[0][:, 1] - emg[::-1]).max() <= 1000 * quantum(emg / 1000)  # mV → µV
    acc_g = got[1]
    assert acc_g.shape == (2000, 3)
    assert np.abs(acc_g - biosppy_acc_g()).max() < 1e-3  # m/s² → g
    assert np.linalg.norm(acc_g, axis=1).mean() == pytest.approx(1.0, abs=0.05)  # gravity reads 1 g


def test_bdf_plus_real_emg_at_4khz(tmp_path: Path) -> None:
    x = emg_4khz_uv(12)
    path = write_edf(tmp_path / "emg4k.bdf", [Sig("EMG tib_ant", "uV", 4000, x)], bdf=True)
    with open_recording(path) as reader:
        assert reader.recording.format == "BDF+"
        got = read_all(reader)
    assert got[0].shape == (x.size, 1)
    assert np.abs(got[0][:, 0] - x).max() <= quantum(x, bits=24)


def test_chunking_does_not_change_the_events(tmp_path: Path) -> None:
    """Chunk offsets per group are right: events are the same to the sample whatever the chunk length
    (the detectors themselves are chunk-size independent)."""
    emg = biosppy_emg_uv()[:15_000].copy()
    acc = biosppy_acc_g()[:1500].copy()
    for t in (2.0, 5.5, 9.25, 12.0):
        add_potential(emg, 1000, t, 40.0)
        add_acc_twitch(acc, 100, t + 0.5, 0.4)
    path = write_edf(
        tmp_path / "c.edf",
        [
            Sig("EMG calf", "uV", 1000, emg),
            *(Sig(f"ACC calf {a}", "g", 100, acc[:, i]) for i, a in enumerate("XYZ")),
        ],
    )

    def events(chunk_seconds: float) -> list[tuple[float, float, str, str]]:
        with open_recording(path) as reader:
            plan = plan_detection(reader.recording)
            run = DetectionRun(plan)
            out = [e for c in reader.chunks(plan.groups, chunk_seconds) for e in run.feed(c)] + run.finish()
        return sorted((e.start, e.end, e.kind.value, e.channel) for e in out)

    reference = events(1.0)
    assert {(round(s), ch) for s, _, _, ch in reference} >= {(2, "EMG calf"), (12, "EMG calf")}
    assert events(0.013) == reference
    assert events(3.7) == reference


def test_long_file_streams_in_bounded_chunks(tmp_path: Path) -> None:
    """Ten minutes of 3-channel 1-kHz EMG (14 MB as float64): chunks never exceed one second, and the
    memory allocated while streaming stays far below the file's size."""
    seconds, rate = 600, 1000
    rng = np.random.default_rng(1)
    signals = [Sig(f"EMG m{i}", "uV", rate, rng.normal(0, 3.0, seconds * rate)) for i in range(3)]
    path = write_edf(tmp_path / "long.edf", signals)
    del signals
    with open_recording(path) as reader:
        plan = plan_detection(reader.recording)
        limit = plan.groups[0].chunk_samples(1.0)
        tracemalloc.start()
        try:
            samples, largest = 0, 0
            for chunk in reader.chunks(plan.groups, 1.0):
                largest = max(largest, chunk.data.shape[0])
                samples += chunk.data.shape[0]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert samples == seconds * rate
    assert largest == limit == 1000
    assert peak < 1_000_000  # bytes; the whole file as float64 would be 14.4 MB


# ---- malformed EDF ----------------------------------------------------------------------------------
@pytest.fixture
def small_edf(tmp_path: Path) -> bytes:
    path = write_edf(
        tmp_path / "ok.edf",
        [Sig("EMG calf", "uV", 200, biosppy_emg_uv()[:400]), Sig("ACC calf X", "g", 50, np.zeros(100))],
    )
    return path.read_bytes()


def _patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"1       ", r"header bytes 0–7 \(version\)"),
        (252, b"ab  ", r"header bytes 252–255 \(number of signals\): 'ab' is not an integer"),
        (236, b"-1      ", r"number of data records\): -1: the recording was never finished"),
        # signal 1's physical maximum: 256 + 3 × 256 signal-header bytes → fields follow label (16),
        # transducer (80), dimension (8), physical minimum (8): 256 + 3·(16+80+8+8) + 8 = 600.
        (
            600,
            b"abc     ",
            r"bytes 600–607 \(signal 1 'ACC calf X' physical maximum\): 'abc' is not a number",
        ),
        (
            256 + 3 * (16 + 80) + 8,
            b"\xb5V      ",
            r"\(signal 1 'ACC calf X' physical dimension\): byte 552 is 0xB5",
        ),
    ],
)
def test_malformed_edf_header_names_the_field(
    small_edf: bytes, offset: int, value: bytes, message: str
) -> None:
    with pytest.raises(RecordingError, match=message):
        check_edf_header(_patch(small_edf, offset, value), len(small_edf), "f.edf")


def test_truncated_edf_is_named(tmp_path: Path, small_edf: bytes) -> None:
    path = tmp_path / "cut.edf"
    path.write_bytes(small_edf[:-7])
    with pytest.raises(RecordingError, match=r"cut.edf: .* bytes, but its header describes .*: truncated"):
        open_recording(path)
    path.write_bytes(small_edf[:100])
    with pytest.raises(RecordingError, match="shorter than an EDF header"):
        open_recording(path)


def test_edf_refuses_a_rate(tmp_path: Path, small_edf: bytes) -> None:
    path = tmp_path / "ok.edf"
    path.write_bytes(small_edf)
    with pytest.raises(RecordingError, match="--rate is for CSV"):
        open_recording(path, rate=100.0)


# ---- CSV ----------------------------------------------------------------------------------------------
def test_real_text_file_with_comment_header(tmp_path: Path) -> None:
    """BioSPPy's own text format: '#' lines (``Sampling Rate (Hz):= 1000.00``, ``Labels:= EMG``), then one
    number a row: the comment lines name the channel and give the rate."""
    path = DATA / "biosppy_examples" / "emg.txt"
    with open_recording(path) as reader:
        rec = reader.recording
        assert [(c.label, c.signal, c.rate) for c in rec.channels] == [("EMG", "emg", 1000.0)]
        assert rec.duration_s == pytest.approx(100.0)
        plan = plan_detection(rec)
        assert "values taken as µV" in plan.groups[0].channels[0].note
        samples = sum(c.data.shape[0] for c in reader.chunks(plan.groups, 1.0))
    assert samples == 100_000


def test_csv_header_units_time_column_and_delimiters(tmp_path: Path) -> None:
    acc = biosppy_acc_g()[:300] * STANDARD_GRAVITY
    rows = [f"{i / 100:.2f};{0.5 * i};{acc[i, 0]:.6f};{acc[i, 1]:.6f};{acc[i, 2]:.6f}" for i in range(300)]
    path = tmp_path / "s.csv"
    header = "time;EMG forearm [mV];acc_x (m/s^2);acc_y (m/s^2);acc_z (m/s^2)"
    path.write_text("# exported by a test\n" + header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with open_recording(path, rate=100) as reader:
        rec = reader.recording
        assert [(c.label, c.dimension, c.signal, c.muscle) for c in rec.channels] == [
            ("time", "", None, "time"),
            ("EMG forearm", "mV", "emg", "forearm"),
            ("acc_x", "m/s^2", "acc", "acc"),
            ("acc_y", "m/s^2", "acc", "acc"),
            ("acc_z", "m/s^2", "acc", "acc"),
        ]
        assert rec.channels[0].note == "time column"
        got = read_all(reader, chunk_seconds=0.25)
    assert np.allclose(got[0][:, 0], 500.0 * np.arange(300))  # mV → µV
    assert np.allclose(got[1], biosppy_acc_g()[:300], atol=1e-6)  # m/s² → g, one 3-axis detector


def test_csv_without_header_whitespace_and_tabs(tmp_path: Path) -> None:
    path = tmp_path / "w.tsv"
    path.write_text("1\t2\n3\t4\n\n5\t6\n", encoding="utf-8")
    with open_recording(path, rate=10) as reader:
        plan = plan_detection(reader.recording, signal="acc")
        assert [lane.label for g in plan.groups for lane in g.lanes] == ["ch0", "ch1"]
        got = read_all(reader, plan=plan)
    assert got[0][:, 0].tolist() == [1, 3, 5]
    assert got[1][:, 0].tolist() == [2, 4, 6]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EMG a,EMG b\n1,2\n3,x\n", r"line 3, column 2 \('EMG b'\): 'x' is not a number"),
        ("EMG a,EMG b\n1,2\n# note\n3\n", r"line 4: 1 fields, expected 2"),
        ("EMG a,EMG b\n1,2\n3,nan\n", r"line 3, column 2 \('EMG b'\): 'nan' is not a finite number"),
        ("EMG a\n", r"no data rows after the header on line 1"),
        ("time EMG_a EMG_b\n1 2\n", r"3 labels in the header on line 1, but line 2 has 2 values"),
        ("", r"no data rows"),
    ],
)
def test_malformed_csv_names_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecordingError, match=message):
        stream(path, rate=100)


def test_csv_unused_columns_may_hold_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('EMG a,note,EMG b\n1,"rest, eyes closed",2\n3,moving,4\n', encoding="utf-8")
    with open_recording(path, rate=10) as reader:
        plan = plan_detection(reader.recording, select=["EMG a", "EMG b"])
        got = read_all(reader, plan=plan)
    assert got[0].tolist() == [[1, 2], [3, 4]]


def test_csv_errors_past_the_first_chunk_name_the_physical_line(tmp_path: Path) -> None:
    lines = ["EMG a"] + [str(i % 7) for i in range(2500)]
    lines[2345] = "oops"
    path = tmp_path / "late.csv"
    path.write_text("# one comment line first\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordingError, match=r"line 2347, column 1 \('EMG a'\): 'oops' is not a number"):
        stream(path, rate=1000)


def test_csv_needs_a_rate_and_utf8(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("EMG a\n1\n", encoding="utf-8")
    with pytest.raises(RecordingError, match=r"a\.csv: a CSV file has no sample rate: pass it \(--rate HZ\)"):
        open_recording(path)
    path.write_bytes(b"EMG a\n1\n\x81\xfe\n")  # 0x81: not UTF-8, nor Windows-1252
    with pytest.raises(RecordingError, match=r"line 3, character 1: not UTF-8 text \(byte 0x81\): save"):
        stream(path, rate=10)
    path.write_bytes(b"EMG a [\xb5V]\n1\n2\n")  # Excel's Windows-1252: µ is 0xB5
    with open_recording(path, rate=10) as r:
        assert (r.recording.channels[0].label, r.recording.channels[0].scale) == ("EMG a", 1.0)
        assert "line 1 is not UTF-8: read as Windows-1252 (Excel's µ is byte 0xB5)" in r.recording.notes


def test_long_csv_streams_in_bounded_chunks(tmp_path: Path) -> None:
    rows = 200_000
    path = tmp_path / "long.csv"
    block = "\n".join(f"{v:.3f},{-v:.3f}" for v in np.sin(np.arange(10_000) / 10)) + "\n"
    with path.open("w", encoding="utf-8") as f:
        f.write("EMG a [uV],EMG b [uV]\n")
        for _ in range(rows // 10_000):
            f.write(block)
    with open_recording(path, rate=1000) as reader:
        plan = plan_detection(reader.recording)
        tracemalloc.start()
        try:
            samples, largest = 0, 0
            for chunk in reader.chunks(plan.groups, 0.5):
                largest = max(largest, chunk.data.shape[0])
                samples += chunk.data.shape[0]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (samples, largest) == (rows, 500)
    assert peak < 1_000_000  # the text file is 3 MB, its values 3.2 MB as float64


# ---- dispatch -----------------------------------------------------------------------------------------
def test_readers_are_found_by_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert RecordingReader.reader_for(Path("a.EDF")) is EdfReader
    assert RecordingReader.reader_for(Path("a.bdf")) is EdfReader
    assert RecordingReader.reader_for(Path("a.csv")) is CsvReader
    assert RecordingReader.reader_for(Path("night.h5")) is SessionReader
    with pytest.raises(RecordingError, match=r"unsupported file type '.wav' \(supported: .bdf, .csv"):
        RecordingReader.reader_for(Path("night.wav"))
    monkeypatch.setattr(RecordingReader, "_registry", dict(RecordingReader._registry))

    class WavReader(CsvReader):  # a reader for a new format registers itself by naming its extension
        EXTENSIONS = (".wav",)

    assert RecordingReader.reader_for(Path("night.wav")) is WavReader

    class Subclass(WavReader):  # inherits no registration
        pass

    assert RecordingReader.reader_for(Path("night.wav")) is WavReader
    with pytest.raises(TypeError, match="both claim"):

        class Clash(CsvReader):
            EXTENSIONS = (".edf",)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"nope\.edf: no such file"):
        open_recording(tmp_path / "nope.edf")
    with pytest.raises(RecordingError, match=r": a directory: give one recording file in it"):
        open_recording(tmp_path)  # said "no such file"
    with pytest.raises(RecordingError, match=r": a directory: give one recording file in it"):
        open_source(tmp_path)


def test_a_lane_s_rate_at_rest_needs_half_a_minute_assessable() -> None:
    """Two twitches in 5.5 s assessable (a needle recording's start, taken mid-contraction) were printed as
    21.66 a minute at rest."""
    from collections import Counter

    from twitchwatch.processing.events import EventKind
    from twitchwatch.processing.recordings import MIN_RATE_S, LaneSummary

    lane = plan_detection(_recording(infer_channel(0, "EMG calf", "uV", 1000))).groups[0].lanes[0]
    short = LaneSummary(lane, 60_000, Counter({EventKind.FASCICULATION: 2}), assessable_s=5.5)
    assert short.per_assessable_minute is None
    enough = LaneSummary(lane, 60_000, Counter({EventKind.FASCICULATION: 10}), assessable_s=MIN_RATE_S)
    assert enough.per_assessable_minute == 20.0
