"""Recordings as other software writes them (wearables' and data sets' CSV exports, PLUX OpenSignals files).

Real excerpts kept in the repository (tests/data/recordings/realworld: a GENEActiv export with its header
block and date-times, Daphnet's milli-g accelerometers named by body segment, Mobilise-D's ``acc_x`` columns
and sample counter), then files the tests write for what those do not show (m/s², raw counts, ISO 8601 with
a zone), then the pieces (``collector.recordings.csvhead``: date-times, time zones, header blocks).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.datafiles import RECORDINGS
from twitchwatch.collector.recordings import Recording, RecordingError, Series, open_recording
from twitchwatch.collector.recordings.csvhead import datetime_ns, read_preamble, utc_offset_s
from twitchwatch.collector.recordings.formats.edf import export_edf
from twitchwatch.collector.recordings.formats.opensignals import OpenSignalsReader
from twitchwatch.collector.recordings.formats.session import SessionReader
from twitchwatch.collector.recordings.model import gravity_unit, sensor_axis
from twitchwatch.collector.recordings.plux import Conversion, conversion
from twitchwatch.collector.recordings.reader import reader_class
from twitchwatch.collector.signals import STANDARD_GRAVITY
from twitchwatch.processing.recordings import DetectionRun, plan_detection

REALWORLD = RECORDINGS / "realworld"
GENEACTIV = REALWORLD / "gaitpy-geneactiv-lumbar" / "demo_data.csv"
DAPHNET = REALWORLD / "aeon-daphnet-pd-acc" / "S06R02E0.csv"
MOBILISED = REALWORLD / "mobgap-lowback-imu" / "HA001" / "TimeMeasure1_Test5_Trial1.csv"


def _magnitudes(path: Path, rate: float | None = None, signal: str | None = None) -> dict[str, float]:
    """Each accelerometer's median magnitude in g over the whole file, as the detectors get it."""
    with open_recording(path, rate=rate) as reader:
        plan = plan_detection(reader.recording, signal="acc" if signal else None)
        groups = [g for g in plan.groups if g.signal == "acc"]
        parts: dict[int, list[np.ndarray]] = {}
        for chunk in reader.chunks(groups, 1.0):
            parts.setdefault(chunk.group, []).append(chunk.data)
    return {
        groups[i].lanes[0].label: float(np.median(np.linalg.norm(np.concatenate(p), axis=1)))
        for i, p in parts.items()
    }


def _read(path: Path, lines: list[str]) -> Recording:
    """``lines`` written to ``path`` and read back: what the recording is."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open_recording(path) as reader:
        return reader.recording


# ---- the real exports ----------------------------------------------------------------------------------
def test_geneactiv_export_reads_from_its_header_block() -> None:
    with open_recording(GENEACTIV) as reader:
        rec = reader.recording
    assert reader.recording.channels[0].rate == 50.0
    (acc,) = [g for g in rec.streams if g.signal == "acc"]
    assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]
    assert {c.dimension for c in acc.channels} == {"g"}
    assert acc.lanes[0].label == "MEMS accelerometer X/Y/Z"
    skipped = {c.label: c.note for c in rec.channels if c.signal is None}
    assert skipped["ch0"] == "time column"
    assert "lux" in skipped["Lux Photodiode 400nm - 1100nm"]
    assert skipped["User button event marker"] == "labels or markers (whole numbers), not a signal"
    # Its first row is 2019-08-06 10:25:50.000 on a clock at GMT -04: 14:25:50 UTC.
    assert rec.start_ns == datetime_ns("2019-08-06 14:25:50")[0]  # type: ignore[index]
    assert any("'Measurement Frequency' line" in n for n in rec.notes)
    assert any("UTC-4 h from its 'Time Zone' line" in n for n in rec.notes)
    (g,) = _magnitudes(GENEACTIV).values()
    assert 0.9 < g < 1.1


def test_daphnet_milli_g_columns_become_three_accelerometers_in_g() -> None:
    """Nothing in Daphnet's labels says accelerometer (``ankle_horiz_fwd``, no unit): each body part's three
    directions carry gravity as a steady vector, in milli-g, which makes them one. ``is_anomaly`` (0/1) is a
    label column: no signal, not even with --signal."""
    with open_recording(DAPHNET) as reader:
        rec = reader.recording
        assert (
            reader.recording.channels[0].rate == 64.0
        )  # from its date-time column (1970-01-01 00:04:40.000, .015, .031, …)
    assert rec.start_ns is None  # a clock from zero, not a date
    assert [s.signal for s in rec.streams] == ["acc", "acc", "acc"]
    anomaly = next(c for c in rec.channels if c.label == "is_anomaly")
    assert (anomaly.signal, anomaly.role) == (None, "label")
    mags = _magnitudes(DAPHNET)
    assert sorted(mags) == ["ankle X/Y/Z", "leg X/Y/Z", "trunk X/Y/Z"]
    for label in ("ankle X/Y/Z", "leg X/Y/Z", "trunk X/Y/Z"):
        assert 0.85 < mags[label] < 1.2, (label, mags[label])
    assert _magnitudes(DAPHNET, signal="acc") == mags
    with open_recording(DAPHNET) as reader:
        plan = plan_detection(reader.recording, signal="acc")
    forced = {c.label: c for g in plan.groups for c in g.channels}
    assert "timestamp" not in forced  # --signal never turns the time column into a signal
    assert "is_anomaly" not in forced  # ... nor a column of labels
    assert forced["ankle_vert"].scale == 1e-3
    assert forced["ankle_vert"].axis == "Y"
    assert "milli-g" in forced["ankle_vert"].note


def test_mobilised_columns_are_named_by_their_labels_and_the_counter_is_no_signal() -> None:
    with pytest.raises(RecordingError, match=r"--rate HZ\) \(its 'samples' column counts samples"):
        open_recording(MOBILISED)
    with open_recording(MOBILISED, rate=100.0) as reader:
        rec = reader.recording
    kinds = {g.signal: [c.label for c in g.channels] for g in rec.streams}
    assert kinds == {"acc": ["acc_x", "acc_y", "acc_z"], "gyro": ["gyr_x", "gyr_y", "gyr_z"]}
    counter = next(c for c in rec.channels if c.label == "samples")
    assert counter.signal is None
    assert counter.role == "counter"
    with open_recording(MOBILISED, rate=100.0) as reader:
        plan = plan_detection(reader.recording, signal="acc")
    assert "samples" not in {c.label for g in plan.groups for c in g.channels}


def test_real_exports_run_through_the_detectors() -> None:
    """The whole chain over each export: every lane runs the file's length, the events lie inside it."""
    for path, rate in ((GENEACTIV, None), (DAPHNET, None), (MOBILISED, 100.0)):
        with open_recording(path, rate=rate) as reader:
            plan = plan_detection(reader.recording)
            run = DetectionRun(plan)
            events = [e for chunk in reader.chunks(plan.groups, 1.0) for e in run.feed(chunk)]
            events += run.finish()
            length = reader.recording.duration_s
        for s in run.lane_summaries:
            assert s.seconds == pytest.approx(length, abs=0.05), (path, s.lane.label)
        assert all(0 <= e.start <= e.end <= length + 0.05 for e in events), path
        assert all(math.isfinite(e.amplitude) for e in events), path


def test_an_export_to_bdf_reads_back_as_the_same_sensor(tmp_path: Path) -> None:
    """Labels too long for EDF's 16 characters are written as type, muscle and axis: a cut
    ``MEMS accelerometer x-axis`` would read back as three unnamed axes with one label."""
    with open_recording(GENEACTIV) as reader:
        start = reader.recording.start_ns
        result = export_edf(reader, tmp_path / "geneactiv.bdf")
    assert any("labelled 'ACC MEMS X'" in n for n in result.notes)
    with open_recording(result.path) as reader:
        rec = reader.recording
    (acc,) = rec.streams
    assert [(c.label, c.axis) for c in acc.channels] == [
        ("ACC MEMS X", "X"),
        ("ACC MEMS Y", "Y"),
        ("ACC MEMS Z", "Z"),
    ]
    assert rec.start_ns == start
    assert _magnitudes(result.path) == pytest.approx(
        {"ACC MEMS X/Y/Z": next(iter(_magnitudes(GENEACTIV).values()))}, abs=1e-5
    )


def test_an_openbci_gui_recording_reads_by_content(tmp_path: Path) -> None:
    """OpenBCI GUI's text file (a Ganglion's): ``%`` lines with the rate, a header, µV electrode channels,
    an accelerometer written only every tenth row (zeros between), Unix-second and formatted time stamps."""
    start = 1_765_100_000.0
    header = (
        "Sample Index, EXG Channel 0, EXG Channel 1, EXG Channel 2, EXG Channel 3, Accel Channel 0, "
        "Accel Channel 1, Accel Channel 2, Other, Other, Timestamp, Marker Channel, Timestamp (Formatted)"
    )
    lines = [
        "%OpenBCI Raw EXG Data",
        "%Number of channels = 4",
        "%Sample Rate = 200 Hz",
        "%Board = Ganglion",
        header,
    ]
    rng = np.random.default_rng(5)
    for i in range(600):
        t = start + (i // 4) * 0.02 + rng.uniform(0, 0.001)  # time stamps of packets, not of samples
        acc = "0.010, -0.020, 0.990" if i % 10 == 0 else "0.000, 0.000, 0.000"
        exg = ", ".join(f"{v:.3f}" for v in rng.normal(0, 5, 4))
        when = f"2025-12-07 09:33:{20 + (t - start):06.3f}"
        lines.append(f"{i % 200}, {exg}, {acc}, 0, 0, {t:.6f}, 0.0, {when}")
    rec = _read(tmp_path / "OpenBCI-RAW-2025-12-07_09-33-20.txt", lines)
    (emg,) = rec.streams
    assert emg.rate == 200.0
    assert [c.muscle for c in emg.channels] == ["Channel_0", "Channel_1", "Channel_2", "Channel_3"]
    assert rec.start_ns is not None
    assert abs(rec.start_ns - start * 1e9) < 1e6  # its first time stamp, jitter and all
    skipped = {c.index: c.note for c in rec.channels if c.signal is None}
    assert skipped[0] == "sample counter"
    assert "neither g, m/s² nor milli-g" in skipped[5]  # mostly zeros: no gravity in it, no accelerometer
    assert skipped[10] == skipped[12] == "time column"


def test_a_polar_sensor_logger_file_is_timed_by_the_sensor_clock(tmp_path: Path) -> None:
    """Polar Sensor Logger's accelerometer file: the phone's time stamps come a batch at a time (alike
    within a batch); the sensor's nanosecond clock times the samples. Units in brackets (mg)."""
    lines = ["Phone timestamp;sensor timestamp [ns];X [mg];Y [mg];Z [mg]"]
    for i in range(400):
        phone = f"2025-12-07T09:00:{(i // 36) * 0.18:06.3f}"  # 36 samples a notification
        lines.append(f"{phone};{599_616_147_545_250_336 + i * 5_000_000};{-4 + i % 3};-1005;72")
    rec = _read(tmp_path / "Polar_H10_ACC.txt", lines)
    (acc,) = rec.streams
    assert acc.rate == 200.0
    assert [(c.axis, c.scale) for c in acc.channels] == [("X", 1e-3), ("Y", 1e-3), ("Z", 1e-3)]
    assert acc.lanes[0].label == "ACC X/Y/Z"
    assert "sample rate 200 Hz from the 'sensor timestamp' column" in rec.notes
    # The sensor clock counts from 2000, not 1970: the start comes from the phone's date-times.
    assert rec.start_ns == datetime_ns("2025-12-07 09:00:00")[0]  # type: ignore[index]


def test_an_ecg_file_is_not_run_as_emg(tmp_path: Path) -> None:
    path = tmp_path / "Polar_H10_ECG.txt"
    rows = "".join(
        f"2025-12-07T09:00:00.000;{i * 7_692_307};{i * 7.692307:.3f};{(i % 130) - 40}\n" for i in range(300)
    )
    path.write_text(
        "Phone timestamp;sensor timestamp [ns];timestamp [ms];ecg [uV]\n" + rows, encoding="utf-8"
    )
    with open_recording(path) as reader:
        rec = reader.recording
    (ecg,) = [c for c in rec.channels if c.label == "ecg"]
    assert ecg.signal is None
    assert "the label says ECG: not a muscle's signal" in ecg.note
    with pytest.raises(RecordingError, match="no EMG or accelerometer channel"):
        plan_detection(rec, signal="emg")
    plan = plan_detection(rec, select=["ecg"], signal="emg")  # named: run anyway
    assert [c.label for g in plan.groups for c in g.channels] == ["ecg"]


def test_sensor_loggers_unlabelled_nanoseconds_and_bare_axes(tmp_path: Path) -> None:
    """Sensor Logger's TotalAcceleration.csv: ``time`` in ns since 1970 with no unit said, then the seconds
    elapsed, then z, y, x in m/s² (gravity included)."""
    t0 = 1_765_100_000_000_000_000
    rows = "".join(
        f"{t0 + i * 10_000_000},{i / 100},{9.7 + 0.01 * (i % 5)},{0.3},{-1.2}\n" for i in range(300)
    )
    path = tmp_path / "TotalAcceleration.csv"
    path.write_text("time,seconds_elapsed,z,y,x\n" + rows, encoding="utf-8")
    with open_recording(path) as reader:
        rec = reader.recording
        assert rec.channels[0].rate == 100.0
    assert rec.start_ns == t0
    assert "times since 1970 in ns (their size says so)" in rec.notes
    assert rec.channels[1].role == "time"
    plan = plan_detection(rec, signal="acc")
    (acc,) = plan.groups
    assert [c.label for c in acc.channels] == ["x", "y", "z"]
    assert {c.scale for c in acc.channels} == {1.0 / STANDARD_GRAVITY}


def test_a_metabase_export_is_timed_by_its_epoch_column_and_its_clock_by_the_zone_it_names(
    tmp_path: Path,
) -> None:
    """MbientLab's MetaBase (MetaMotion): ``epoch (ms)``, a local clock whose zone is in its name
    (``time (-05:00)``), the seconds elapsed, and the axes in g."""
    header = "epoch (ms),time (-05:00),elapsed (s),x-axis (g),y-axis (g),z-axis (g)"
    t0 = 1_733_497_200_000  # 2024-12-06 15:00:00 UTC, 10:00 at UTC−5
    rows = [
        f"{t0 + 10 * i},2024-12-06T10:00:{i / 100:06.3f},{i / 100:.3f},0.01,-0.02,{0.99 + 0.01 * (i % 3):.2f}"
        for i in range(300)
    ]
    rec = _read(tmp_path / "MetaWear_Accelerometer.csv", [header, *rows])
    (acc,) = rec.streams
    assert acc.rate == 100.0
    assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]
    assert rec.start_ns == t0 * 1_000_000
    assert [c.role for c in rec.channels[:3]] == ["time"] * 3
    # Without the epoch column, the clock is read in the zone its name gives, not this computer's.
    no_epoch = [",".join(line.split(",")[1:]) for line in [header, *rows]]
    rec = _read(tmp_path / "clock_only.csv", no_epoch)
    assert rec.start_ns == t0 * 1_000_000
    assert "date-times in UTC-5 h, as the column's name says" in rec.notes


def test_a_shimmer_export_takes_names_units_and_calibration_from_its_header_rows(tmp_path: Path) -> None:
    """Shimmer's Consensys export: an Excel ``sep=`` line, the names, a row saying each column is
    calibrated (``CAL``), the units (``m/(s^2)``, ``mV``), tab-separated rows ending in a tab."""
    names = ["Timestamp_Unix", "Accel_LN_X", "Accel_LN_Y", "Accel_LN_Z", "EXG1_CH1_24BIT"]
    lines = [
        '"sep=\t"',
        "".join(f"Shimmer_8A2B_{n}_CAL\t" for n in names),
        "CAL\t" * len(names),
        "ms\tm/(s^2)\tm/(s^2)\tm/(s^2)\tmV\t",
    ]
    t0 = 1_765_100_000_000.0
    lines += [f"{t0 + i * 1000 / 512:.3f}\t0.12\t-0.3\t9.79\t{0.01 * (i % 7 - 3):.3f}\t" for i in range(600)]
    rec = _read(tmp_path / "shimmer.csv", lines)
    acc, emg = sorted(rec.streams, key=lambda g: g.signal)
    assert (acc.rate, emg.rate) == (512.0, 512.0)
    assert [(c.axis, c.dimension) for c in acc.channels] == [(a, "m/s^2") for a in "XYZ"]
    assert acc.channels[0].scale == pytest.approx(1 / STANDARD_GRAVITY)
    assert emg.channels[0].label == "Shimmer_8A2B_EXG1_CH1_24BIT"  # the calibration suffix is not its name
    assert emg.channels[0].scale == 1000.0  # mV → µV
    assert rec.channels[0].role == "time"
    assert rec.start_ns == round(t0 * 1_000_000)
    assert "units from line 4, the row under the column names" in rec.notes


def test_a_header_of_unit_words_over_numbers_is_still_a_header(tmp_path: Path) -> None:
    """A units row is only one under a names row: a file whose one header line is made of unit-like words
    keeps it as its names."""
    rec = _read(tmp_path / "plain.csv", ["time,g", *(f"{i / 100},{i % 5}" for i in range(50))])
    assert [c.label for c in rec.channels] == ["time", "g"]


ACTIGRAPH_BLOCK = [
    "------------ Data File Created By ActiGraph GT3X+ ActiLife v6.13.3 Firmware v2.5.0 date format M/d/yyyy "
    "at 30 Hz  Filter Normal -----------",
    "Serial Number: MOS2E39180594",
    "Start Time 10:00:00",
    "Start Date 6/8/2019",
    "Epoch Period (hh:mm:ss) 00:00:00",
    "Download Time 12:02:14",
    "Download Date 6/9/2019",
    "Current Memory Address: 0",
    "Current Battery Voltage: 4.21     Mode = 12",
    "--------------------------------------------------",
]


def _local_ns(year: int, month: int, day: int, hour: int) -> int:
    """A local wall-clock time in ns since 1970 (clocks without a zone are read as local time)."""
    return round(dt.datetime(year, month, day, hour).astimezone().timestamp()) * 10**9


def test_an_actigraph_export_takes_rate_start_and_date_order_from_its_header(tmp_path: Path) -> None:
    """ActiLife's RAW CSV: its first line gives the rate ("at 30 Hz") and the date order ("date format
    M/d/yyyy"), two lines give the start; the axes in g, no units said. With ``Timestamp`` rows too, their
    dates (month first) time the samples."""
    rows = [f"0.01{i % 3},-0.02,-1.00{i % 5}" for i in range(600)]
    rec = _read(
        tmp_path / "raw.csv", [*ACTIGRAPH_BLOCK, "Accelerometer X,Accelerometer Y,Accelerometer Z", *rows]
    )
    (acc,) = rec.streams
    assert acc.rate == 30.0
    assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]
    assert rec.start_ns == _local_ns(2019, 6, 8, 10)  # June 8th: month first, as the header says
    assert "sample rate 30 Hz from its 'at 30 Hz' line" in rec.notes
    stamped = [f"6/8/2019 10:{i // 1800:02d}:{i % 1800 / 30:06.3f},{row}" for i, row in enumerate(rows)]
    header = "Timestamp,Accelerometer X,Accelerometer Y,Accelerometer Z"
    rec = _read(tmp_path / "timestamps.csv", [*ACTIGRAPH_BLOCK, header, *stamped])
    assert rec.channels[0].role == "time"
    assert rec.start_ns == _local_ns(2019, 6, 8, 10)


def test_day_and_month_first_dates_are_read_in_the_order_their_rows_show(tmp_path: Path) -> None:
    """Without a header saying the order, a day past 12 in the first rows tells it; with none, the dates
    cannot be read and the message says why."""
    rows = [f"13/08/2019 10:00:{i / 50:06.3f},{0.1 * (i % 3)}" for i in range(100)]
    rec = _read(tmp_path / "day_first.csv", ["time,EMG calf [uV]", *rows])
    assert rec.channels[1].rate == 50.0
    assert rec.start_ns == _local_ns(2019, 8, 13, 10)
    ambiguous = [f"06/08/2019 10:00:{i / 50:06.3f},{0.1 * (i % 3)}" for i in range(100)]
    path = tmp_path / "either.csv"
    path.write_text("\n".join(["time,EMG calf [uV]", *ambiguous]) + "\n")
    with pytest.raises(
        RecordingError, match=r"the day and month first \('06/08/2019 10:00:00.000'\) but no day"
    ):
        open_recording(path)
    assert datetime_ns("06/08/2019 10:00:00", "dmy") == datetime_ns("2019-08-06 10:00:00")
    assert datetime_ns("06/08/2019 10:00:00", "mdy") == datetime_ns("2019-06-08 10:00:00")
    assert datetime_ns("06/08/2019 10:00:00") is None  # no order: not read
    assert datetime_ns("13/08/2019 10:00:00", "mdy") is None  # no 13th month
    assert datetime_ns("0000-01-01 00:00:00") is None  # no year 0: not a date (it raised ValueError)


# ---- units from gravity --------------------------------------------------------------------------------
def _write_xyz(path: Path, header: str, scale: float, rows: int = 400) -> None:
    rng = np.random.default_rng(3)
    gravity = np.array([0.1, -0.2, 0.97]) / np.linalg.norm([0.1, -0.2, 0.97])
    xyz = (gravity + rng.normal(0, 0.01, (rows, 3))) * scale
    lines = [header] + [f"{i / 100:.2f},{x:.6f},{y:.6f},{z:.6f}" for i, (x, y, z) in enumerate(xyz)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("header", "scale", "unit"),
    [
        ("time,accX,accY,accZ", STANDARD_GRAVITY, "m/s²"),  # a phone app's export
        ("time,acc_x,acc_y,acc_z", 1000.0, "milli-g"),
        ("time,wrist acc x,wrist acc y,wrist acc z", 1.0, "g"),
    ],
)
def test_an_accelerometer_with_no_unit_is_read_in_the_unit_gravity_shows(
    tmp_path: Path, header: str, scale: float, unit: str
) -> None:
    path = tmp_path / "acc.csv"
    _write_xyz(path, header, scale)
    with open_recording(path) as reader:
        (acc,) = reader.recording.streams
    assert acc.signal == "acc"
    assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]
    assert all(f"taken as {unit}" in c.note for c in acc.channels)
    (g,) = _magnitudes(path).values()
    assert g == pytest.approx(1.0, abs=0.02)


def test_raw_counts_are_left_out_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "counts.csv"
    _write_xyz(path, "time,acc_x,acc_y,acc_z", 31_000.0)
    with open_recording(path) as reader:
        rec = reader.recording
    assert rec.streams == ()
    with pytest.raises(RecordingError, match=r"neither g, m/s² nor milli-g .*give the unit in the header"):
        plan_detection(rec)


def test_a_unit_the_header_says_stands_where_gravity_agrees(tmp_path: Path) -> None:
    path = tmp_path / "acc.csv"
    _write_xyz(path, "time,acc_x [m/s^2],acc_y [m/s^2],acc_z [m/s^2]", STANDARD_GRAVITY)
    with open_recording(path) as reader:
        (acc,) = reader.recording.streams
    assert {c.scale for c in acc.channels} == {1.0 / STANDARD_GRAVITY}
    assert {c.note for c in acc.channels} == {""}


def test_a_unit_the_header_says_wrongly_gives_way_to_gravity(tmp_path: Path) -> None:
    """BioSPPy's example accelerometer says m/s² and holds g (gravity reads 1.01 in it): 1 m/s² is a tenth
    of gravity, which no worn accelerometer's median magnitude can be."""
    path = RECORDINGS / "biosppy_examples" / "acc.txt"
    with open_recording(path) as reader:
        rec = reader.recording
    (acc,) = rec.streams
    assert [c.label for c in acc.channels] == ["acc_x", "acc_y", "acc_z"]  # its "# Labels:=" line
    assert rec.channels[0].rate == 100.0  # its "# Sampling Rate (Hz):= 100.00" line
    assert {c.scale for c in acc.channels} == {1.0}
    assert "the file says m/s^2, but gravity reads 1.01" in acc.channels[0].note
    (g,) = _magnitudes(path).values()
    assert g == pytest.approx(1.0, abs=0.05)


def test_three_columns_sharing_a_word_are_one_sensor_only_if_they_name_directions(tmp_path: Path) -> None:
    """``left_calf``, ``left_thigh``, ``left_arm`` are three places, not the axes of one sensor."""
    rows = [f"{i / 100},{0.1},{0.2},{0.97}" for i in range(50)]
    rec = _read(tmp_path / "places.csv", ["time,left_calf,left_thigh,left_arm", *rows])
    plan = plan_detection(rec, signal="acc")
    assert [len(g.channels) for g in plan.groups] == [1, 1, 1]
    rec = _read(tmp_path / "axes.csv", ["time,wrist_vert,wrist_horiz_fwd,wrist_horiz_lateral", *rows])
    (acc,) = plan_detection(rec, signal="acc").groups
    assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]


def test_a_single_axis_keeps_the_old_rule(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("time,acc\n" + "".join(f"{i / 100},{9.8}\n" for i in range(50)), encoding="utf-8")
    with open_recording(path) as reader:
        (ch,) = [c for c in reader.recording.channels if c.signal == "acc"]
    assert ch.scale == 1.0
    assert ch.gravity is None
    assert "values taken as g" in ch.note


# ---- time columns and header blocks ----------------------------------------------------------------------
def test_iso_date_times_with_a_zone_time_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "iso.csv"
    rows = [
        f"2026-03-01T09:00:{s:06.3f}+01:00,{v}" for s, v in ((0.0, 1), (0.004, 2), (0.008, 3), (0.012, 1))
    ]
    path.write_text("datetime,EMG calf [uV]\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with open_recording(path) as reader:
        rec = reader.recording
        assert reader.recording.channels[0].rate == 250.0
    assert rec.start_ns == datetime_ns("2026-03-01 08:00:00")[0]  # type: ignore[index]
    assert not any("time zone" in n for n in rec.notes)  # the zone was in the rows


def test_date_times_without_a_zone_are_local_time_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As EDF's start is: the clock of the computer the file is read on (here one at UTC+1, POSIX ``TZ``)."""
    monkeypatch.setenv("TZ", "XXX-1")
    time.tzset()
    try:
        rec = _read(tmp_path / "naive.csv", ["2026-03-01 09:00:00.000,5", "2026-03-01 09:00:00.010,6"])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert rec.channels[0].rate == 100.0
    assert rec.start_ns == datetime_ns("2026-03-01 08:00:00")[0]  # type: ignore[index]
    assert "date-times with no time zone: taken as this computer's local time (UTC+1 h)" in rec.notes


def test_a_header_block_before_a_header_row(tmp_path: Path) -> None:
    path = tmp_path / "block.csv"
    text = "Device,DIY board v2\nSerial,0042\nSample rate,500 Hz\n\ntime,EMG forearm [mV]\n"
    text += "".join(f"{i / 500},{0.01 * (i % 7)}\n" for i in range(20))
    path.write_text(text, encoding="utf-8")
    with open_recording(path, rate=None) as reader:
        rec = reader.recording
        assert reader.recording.channels[0].rate == 500.0
    (emg,) = rec.streams
    assert emg.channels[0].label == "EMG forearm"
    assert emg.channels[0].scale == 1e3
    assert rec.notes[0] == "lines 1–3: the device's header block, not data"
    assert "sample rate 500 Hz from its 'Sample rate' line" in rec.notes


def test_a_marker_column_empty_in_most_rows_keeps_the_header_and_every_row(tmp_path: Path) -> None:
    lines = ["time,EMG a [uV],marker"] + [f"{i / 1000},{i % 5},{'1' if i == 3 else ''}" for i in range(50)]
    rec = _read(tmp_path / "marked.csv", lines)
    assert [c.label for c in rec.channels] == ["time", "EMG a", "marker"]
    assert rec.channels[0].rate == 1000.0
    assert rec.duration_s == pytest.approx(0.05)
    assert not any("header block" in n for n in rec.notes)


def test_a_header_block_with_no_data_names_what_it_looked_at(tmp_path: Path) -> None:
    path = tmp_path / "nodata.csv"
    path.write_text("Device,GENEActiv\nModel,1.1\nUnits,g\n", encoding="utf-8")
    with pytest.raises(RecordingError, match=r"no row of numbers in its first 3 lines"):
        open_recording(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-08-06 10:25:50:000", (1565087150_000_000_000, None)),
        ("2019-08-06T10:25:50.5Z", (1565087150_500_000_000, 0)),
        ("2019-08-06 10:25:50,123456789 +02:00", (1565087150_123_456_789, 7200)),
        ("2019/08/06 10:25:50", (1565087150_000_000_000, None)),
        ("1970-01-01 00:04:40.015", (280_015_000_000, None)),
        ("2019-02-30 10:00:00", None),  # no such day
        ("2019-08-06 24:00:00", None),
        ("2019-08-06", None),  # a date alone times no sample
        ("10:25:50", None),
        ("1565087150", None),
        ("2019-08-06 10:25:50 +25:00", None),
    ],
)
def test_datetime_ns(text: str, expected: tuple[int, int | None] | None) -> None:
    assert datetime_ns(text) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("GMT -04", -4 * 3600),
        ("UTC+01:00", 3600),
        ("+0530", 5 * 3600 + 1800),
        ("Z", 0),
        ("UTC", 0),
        ("CET", None),
    ],
)
def test_utc_offset(text: str, seconds: int | None) -> None:
    assert utc_offset_s(text) == seconds


def test_read_preamble_takes_rate_zone_and_column_descriptions() -> None:
    rows = [
        ["Device Type", "GENEActiv"],
        ["Measurement Frequency", "50.0 Hz"],
        ["Heart rate", "60"],
        ["Time Zone", "GMT +01"],
        ["Sensor type", "MEMS accelerometer x-axis"],
        ["Units", "g"],
        ["Sensor type", "User button event marker"],
        ["Units"],
    ]
    p = read_preamble(rows)
    assert p.rate == (50.0, "Measurement Frequency")
    assert p.utc_offset == (3600, "Time Zone")
    assert p.columns == (("MEMS accelerometer x-axis", "g"), ("User button event marker", ""))


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("ACC wrist X", ("ACC wrist", "X")),
        ("acc_x", ("acc", "X")),
        ("accX", ("acc", "X")),
        ("MEMS accelerometer x-axis", ("MEMS accelerometer", "X")),
        ("gyro Y axis", ("gyro", "Y")),
        ("ankle_vert", ("ankle_vert", "")),
        ("z", ("", "Z")),
        ("max", ("max", "")),
    ],
)
def test_sensor_axis(label: str, expected: tuple[str, str]) -> None:
    assert sensor_axis(label, "XYZ") == expected


def test_gravity_units_do_not_overlap() -> None:
    assert gravity_unit(1.0) == ("g", 1.0)
    assert gravity_unit(9.81) == ("m/s²", 1.0 / STANDARD_GRAVITY)
    assert gravity_unit(1010.0) == ("milli-g", 1e-3)
    for gap in (0.2, 2.5, 3.5, 25.0, 300.0, 2500.0, 31_000.0):
        assert gravity_unit(gap) is None, gap


# ---- PLUX OpenSignals (HDF5) ---------------------------------------------------------------------------
PLUX = REALWORLD / "bsnb-acc" / "sync_acc_1.h5"  # still, then ~9 s of shaking
PLUX_EMG = REALWORLD / "bsnb-emg" / "emg_bursts.h5"


def test_an_opensignals_file_is_told_from_a_session_by_looking_inside(tmp_path: Path) -> None:
    assert reader_class(PLUX) is OpenSignalsReader
    session = SessionReader.write(
        tmp_path / "s.h5", [Series("EMG calf", "emg", 1000.0, np.zeros(2000))], 1_765_000_000 * 10**9
    )
    assert reader_class(session) is SessionReader
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(RecordingError, match="not a twitchwatch session"):
        open_recording(other)  # neither looks like it: the session reader says what is missing


def test_opensignals_accelerometer_in_g_by_plux_calibration() -> None:
    with open_recording(PLUX) as reader:
        rec = reader.recording
        (acc,) = rec.streams
        assert acc.rate == 1000.0
        assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]
        still = next(iter(reader.chunks([acc], 2.0))).data  # the first 2 s: the device lies still
    assert np.median(np.linalg.norm(still, axis=1)) == pytest.approx(1.0, abs=0.08)  # gravity, a few % off
    assert rec.start_ns == round(dt.datetime(2019, 3, 29, 13, 55, 4, 452000).astimezone().timestamp() * 1e9)


def test_opensignals_emg_in_microvolts_and_the_same_as_the_benchmark_reads_it() -> None:
    from bench.formats import read_any

    with open_recording(PLUX_EMG) as reader:
        (emg,) = reader.recording.streams
        x = np.concatenate([c.data for c in reader.chunks([emg], 1.0)])
    loaded = read_any(PLUX_EMG)
    assert loaded is not None
    np.testing.assert_allclose(x, loaded.streams[0].x, rtol=0, atol=1e-9)
    assert emg.channels[0].label == "EMG PORT3_CHN1"
    assert abs(float(np.median(x))) < 100.0  # the ADC's mid-scale is 0 µV
    assert 5.0 < float(np.std(x)) < 2000.0  # surface EMG with bursts: tens to hundreds of µV


def test_an_opensignals_text_file_reads_as_its_hdf5_twin(tmp_path: Path) -> None:
    """OpenSignals' text export: ``#`` lines with a JSON header, then tab-separated counts. Written here from
    the HDF5 excerpt's own counts, it must read to the same g, start and rate."""
    with h5py.File(PLUX) as f:
        mac, g = next(iter(f.items()))
        counts = [g["raw"][f"channel_{n}"][:, 0] for n in (1, 2, 3)]
        seq = g["raw"]["nSeq"][:, 0]
    info = {
        "device": "biosignalsplux",
        "sampling rate": 1000,
        "column": ["nSeq", "DI", "CH1", "CH2", "CH3"],
        "label": ["CH1", "CH2", "CH3"],
        "sensor": ["XYZ", "XYZ", "XYZ"],
        "resolution": [16, 16, 16],
        "date": "2019-3-29",
        "time": "13:55:4.452",
    }
    head = ["# OpenSignals Text File Format", f"# {json.dumps({mac: info})}", "# EndOfHeader"]
    rows = [f"{seq[i]}\t0\t{counts[0][i]}\t{counts[1][i]}\t{counts[2][i]}" for i in range(len(seq))]
    text = _read(tmp_path / "opensignals.txt", head + rows)
    with open_recording(PLUX) as reader:
        twin = reader.recording
    assert [(c.label, c.signal, c.scale, c.offset) for c in text.streams[0].channels] == [
        (c.label, c.signal, c.scale, c.offset) for c in twin.streams[0].channels
    ]
    assert text.start_ns == twin.start_ns
    assert _magnitudes(tmp_path / "opensignals.txt") == pytest.approx(_magnitudes(PLUX), abs=1e-12)


def test_opensignals_text_of_a_bitalino_and_of_two_devices_keeps_its_header(tmp_path: Path) -> None:
    """Two layouts OpenSignals writes whose JSON header was dropped without a word (the file then "had no
    sample rate"): BITalino's, whose ``resolution`` has one entry per column (nSeq, I1, I2, O1, O2, A1 …),
    and two devices recorded together, their columns side by side and their names repeated."""
    rng = np.random.default_rng(4)
    bitalino = {
        "device": "bitalino_rev",
        "sampling rate": 1000,
        "column": ["nSeq", "I1", "I2", "O1", "O2", "A1", "A2"],
        "label": ["A1", "A2"],
        "sensor": ["EMG", "ECG"],
        "resolution": [4, 1, 1, 1, 1, 10, 10],
    }
    head = [
        "# OpenSignals Text File Format",
        f"# {json.dumps({'20:16:04:12:01:40': bitalino})}",
        "# EndOfHeader",
    ]
    rows = [f"{i % 16}	0	0	1	1	{512 + int(rng.normal(0, 5))}	512" for i in range(3000)]
    rec = _read(tmp_path / "bitalino.txt", head + rows)
    (emg,) = rec.streams
    assert (emg.rate, emg.channels[0].label, emg.channels[0].signal) == (1000.0, "EMG A1", "emg")
    assert emg.channels[0].scale == pytest.approx(3.3 / 1009 * 1e6 / 2**10)
    assert [c.note for c in rec.channels if c.label in ("I1", "O2")] == [
        "the device's digital input or output"
    ] * 2
    plux = {
        "device": "biosignalsplux",
        "sampling rate": 500,
        "column": ["nSeq", "DI", "CH1"],
        "label": ["CH1"],
        "sensor": ["EMG"],
        "resolution": [16],
    }
    hub = {**plux, "column": ["nSeq", "DI", "CH1", "CH2", "CH3"], "label": ["CH1", "CH2", "CH3"]}
    hub |= {"sensor": ["XYZ"] * 3, "resolution": [16] * 3}
    devices = {"00:07:80:4D:2E:81": plux, "00:07:80:D8:AB:46": hub}
    head = ["# OpenSignals Text File Format", f"# {json.dumps(devices)}", "# EndOfHeader"]
    rows = [
        f"{i % 16}	0	{32768 + int(rng.normal(0, 20))}	{i % 16}	0	30000	30000	33000"
        for i in range(2000)
    ]
    two = _read(tmp_path / "two.txt", head + rows)
    assert [(s.signal, s.rate, [c.label for c in s.channels]) for s in two.streams] == [
        ("emg", 500.0, ["EMG CH1"]),
        ("acc", 500.0, [f"ACC 00:07:80:D8:AB:46 {a}" for a in "XYZ"]),
    ]


def test_bitalino_emg_has_its_own_transfer_function() -> None:
    assert conversion("EMG", 10, "bitalino_rev") == Conversion(
        "emg",
        3.3 / 1009 * 1e6 / 2**10,
        -3.3 / 1009 * 1e6 / 2,
        "ADC counts → µV by PLUX's EMG transfer function (3.3 V, gain 1009, 10-bit)",
    )
    assert conversion("ACC", 10, "bitalino_rev") == "a BITalino accelerometer has no default calibration"
    assert conversion("FORCEPLATFORM", 16, "biosignalsplux") == (
        "sensor 'FORCEPLATFORM' is neither EMG nor an accelerometer"
    )


def test_empatica_exports_give_their_start_and_rate_on_their_first_two_lines(tmp_path: Path) -> None:
    """Empatica E4's ACC.csv: the start (Unix seconds) and the rate repeated per column, then counts at 64 a
    g. Read as plain rows, the start would be a sample of 1.5 billion g."""
    rows = ["1495437325.000000, 1495437325.000000, 1495437325.000000", "32.000000, 32.000000, 32.000000"]
    rows += [f"{-9 + i % 2}.000000, 5.000000, 62.000000" for i in range(320)]
    acc = _read(tmp_path / "ACC.csv", rows)
    (stream,) = acc.streams
    assert stream.rate == 32.0
    assert [(c.label, c.axis, c.scale) for c in stream.channels] == [(f"ACC {a}", a, 1 / 64) for a in "XYZ"]
    assert acc.start_ns == 1_495_437_325 * 10**9
    assert acc.duration_s == pytest.approx(10.0)
    (g,) = _magnitudes(tmp_path / "ACC.csv").values()
    assert g == pytest.approx(math.hypot(9, 5, 62) / 64, abs=0.01)
    bvp = _read(tmp_path / "BVP.csv", ["1495437325.000000", "64.000000", *(f"{i % 7}.5" for i in range(100))])
    assert bvp.streams == ()  # a pulse wave, named so: no muscle's signal
    assert "the label says BVP" in bvp.channels[0].note


@pytest.mark.parametrize(
    ("attrs", "data", "message"),
    [
        (
            {"sampling rate": "abc"},
            np.zeros((10, 1), np.uint16),
            r"'sampling rate' \['abc'\] is not a positive",
        ),
        (
            {"sampling rate": 0},
            np.zeros((10, 1), np.uint16),
            r"'sampling rate' \[0\] is not a positive number",
        ),
        ({"sampling rate": 1000, "resolution": [16, 16]}, np.zeros((10, 1), np.uint16), "1 channels but 2"),
        ({"sampling rate": 1000, "resolution": [40]}, np.zeros((10, 1), np.uint16), "resolution 40 bits"),
        ({"sampling rate": 1000}, np.zeros((10, 3), np.uint16), r"shape \(10, 3\), not samples × 1"),
        ({"sampling rate": 1000}, np.array([[b"x"]] * 10), "not a dataset of numbers"),
        (
            {"sampling rate": 1000},
            np.array([[1.0], [np.nan]]),
            "raw/channel_1: sample 1 is not a finite number",
        ),
    ],
)
def test_a_broken_opensignals_file_names_what_is_wrong(
    tmp_path: Path, attrs: dict[str, object], data: np.ndarray, message: str
) -> None:
    path = tmp_path / "broken.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("00:07:80:4D:2E:AD")
        g.attrs.update({"channels": [1], "resolution": [16], **attrs})
        g.create_dataset("raw/channel_1", data=data).attrs["sensor"] = "EMG"
    with pytest.raises(RecordingError, match=message), open_recording(path) as reader:
        for _ in reader.chunks(reader.recording.streams):
            pass


def test_an_opensignals_dataset_claiming_samples_never_stored_is_refused(tmp_path: Path) -> None:
    """A damaged header can claim a billion samples that hold nothing (HDF5 would read zeros for hours)."""
    path = tmp_path / "claims.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("00:07:80:4D:2E:AD")
        g.attrs.update({"sampling rate": 1000, "channels": [1], "resolution": [16]})
        g.create_dataset("raw/channel_1", shape=(10**9, 1), dtype=np.uint16).attrs["sensor"] = "EMG"
    with pytest.raises(RecordingError, match=r"1000000000 samples, but 0 bytes stored for them"):
        open_recording(path)


def test_a_damaged_size_is_refused_before_the_hdf5_library_allocates_it(tmp_path: Path) -> None:
    """One byte of the excerpt changed (found by mutating it): the `sensor` attribute of channel 4 then claims
    gigabytes. Read in this process, the HDF5 library spent 10–17 s of system time allocating them before it
    failed (on a larger claim, the machine's memory); the walk in a capped child (`reader.hdf5_sound`) names
    it at once. The byte is checked first, so a changed excerpt fails here rather than testing nothing."""
    data = bytearray((REALWORLD / "bsnb-acc" / "loft_time_subject_1.h5").read_bytes())
    assert data[60086] == 0, "the excerpt changed: the byte to damage is elsewhere now"
    data[60086] = 173
    path = tmp_path / "damaged.h5"
    path.write_bytes(data)
    where = r"/00:07:80:4D:2E:81/raw/channel_4 attribute 'sensor'"
    with pytest.raises(RecordingError, match=f"damaged: {where} claims more memory"):
        open_recording(path)
    with pytest.raises(RecordingError, match="claims more memory"):
        OpenSignalsReader(path)  # the reader on its own walks the file too


def test_a_huge_value_among_the_first_rows_does_not_upset_gravity(tmp_path: Path) -> None:
    """1e308 in a row: its norm overflows (numpy warned, an error under pytest's warnings-as-errors and
    to anyone running with -W error); the row is left out of the median like any other outlier."""
    rows = [f"{i / 100},{1e308 if i == 3 else 0.01},0.02,1.0" for i in range(200)]
    rec = _read(tmp_path / "big.csv", ["t,acc_x,acc_y,acc_z", *rows])
    assert rec.channels[1].gravity == pytest.approx(1.0, abs=0.01)


def test_a_gzip_compressed_csv_reads_as_the_plain_file(tmp_path: Path) -> None:
    """Data sets ship big CSV files as .csv.gz (CAPTURE-24's daily-life accelerometer files): read as they
    come, unpacked on the fly, the same channels, rate, start and samples as the plain file. A .gz cut short
    is refused at opening; a compressed format that is not text asks to be unpacked."""
    t0 = 1_733_497_200_000
    lines = ["time [ms],acc_x [g],acc_y [g],acc_z [g]"]
    lines += [f"{t0 + 10 * i},0.0{i % 7},-0.02,{0.99 + 0.001 * (i % 9):.3f}" for i in range(5000)]
    text = "\n".join(lines) + "\n"
    plain = tmp_path / "day.csv"
    plain.write_text(text)
    packed = tmp_path / "day.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    with open_recording(plain) as a, open_recording(packed) as b:
        assert (b.recording.start_ns, b.recording.duration_s) == (
            a.recording.start_ns,
            a.recording.duration_s,
        )
        assert [c.label for c in b.recording.channels] == [c.label for c in a.recording.channels]
        x = np.concatenate([c.data for c in a.chunks(a.recording.streams)])
        y = np.concatenate([c.data for c in b.chunks(b.recording.streams)])
    np.testing.assert_array_equal(x, y)
    assert b.recording.streams[0].rate == 100.0
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed.read_bytes()[:2000])
    with pytest.raises(RecordingError, match=r"cut.csv.gz: .*(cannot read|cannot unpack)"):
        open_recording(cut)
    session = tmp_path / "plux.h5.gz"
    session.write_bytes(gzip.compress(PLUX.read_bytes()))
    with pytest.raises(RecordingError, match=r"gzip-compressed, .* unpack it first \(gunzip -k plux.h5.gz\)"):
        open_recording(session)


def test_three_bare_axes_carrying_gravity_are_an_accelerometer(tmp_path: Path) -> None:
    """CAPTURE-24's daily-life files (``time,x,y,z,annotation``, g, 100 Hz, compressed, activity labels
    with semicolons): three axes named only x, y, z are an accelerometer when gravity shows in them as a
    steady vector. Three zero-mean channels of the same size (EMG in mV) and a file named for a gyroscope are
    not: they still ask for --signal."""
    rng = np.random.default_rng(5)
    rows = [
        f"2016-11-13 02:18:{i / 100:09.6f},{-0.5 + 0.01 * rng.standard_normal():.6f},"
        f"{-0.6 + 0.01 * rng.standard_normal():.6f},{0.6 + 0.01 * rng.standard_normal():.6f},"
        + ("7030 sleeping;MET 0.95" if i > 1500 else "")
        for i in range(3000)
    ]
    path = tmp_path / "P001.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(["time,x,y,z,annotation", *rows]) + "\n").encode()))
    with open_recording(path) as reader:
        rec = reader.recording
        (acc,) = rec.streams
        assert acc.signal == "acc"
        assert acc.rate == 100.0
        assert [c.axis for c in acc.channels] == ["X", "Y", "Z"]
        assert "carrying gravity: taken as an accelerometer" in acc.channels[0].note
        data = np.concatenate([c.data for c in reader.chunks(rec.streams)])
    assert data.shape == (3000, 3)
    assert float(np.median(np.linalg.norm(data, axis=1))) == pytest.approx(0.985, abs=0.01)

    noise = rng.normal(0, 0.6, (2000, 3))
    swinging = [f"{i / 1000},{a:.4f},{b:.4f},{c:.4f}" for i, (a, b, c) in enumerate(noise)]
    rec = _read(tmp_path / "three.csv", ["t,x,y,z", *swinging])
    assert rec.streams == ()  # magnitude near 1, but about zero: no gravity in it
    steady = [f"{i / 100},0.5,0.6,{0.6 + 0.01 * (i % 3)}" for i in range(300)]
    assert _read(tmp_path / "Gyroscope.csv", ["time,x,y,z", *steady]).streams == ()
    assert len(_read(tmp_path / "Accel.csv", ["time,x,y,z", *steady]).streams) == 1


def test_body_part_sensors_of_no_type_are_accelerometers_where_gravity_shows(tmp_path: Path) -> None:
    """Each sensor's three axes are judged on their own (Daphnet's layout, any number of sensors): a wrist in
    m/s² and an ankle in g become two accelerometers; a swinging zero-mean triple (EMG-like) and one named for
    a compass stay unread."""
    rng = np.random.default_rng(11)
    head = "t,wrist_x,wrist_y,wrist_z,ankle_x,ankle_y,ankle_z,pad_x,pad_y,pad_z,compass_x,compass_y,compass_z"
    rows = []
    for i in range(1500):
        n = 0.01 * rng.standard_normal(12)
        wrist = np.array([0.0, 5.9, 7.8]) + 10 * n[:3]  # m/s², 9.8 in all
        ankle = np.array([0.98, 0.1, -0.1]) + n[3:6]
        pad = rng.normal(0, 0.6, 3)
        compass = np.array([0.3, 0.4, 0.3]) + n[9:]
        rows.append(",".join([f"{i / 100:.2f}", *(f"{v:.5f}" for v in (*wrist, *ankle, *pad, *compass))]))
    rec = _read(tmp_path / "body.csv", [head, *rows])
    accs = {s.lanes[0].label: s for s in rec.streams}
    assert sorted(accs) == ["ankle X/Y/Z", "wrist X/Y/Z"]
    assert all(s.signal == "acc" for s in accs.values())
    assert accs["wrist X/Y/Z"].channels[0].scale == pytest.approx(1 / STANDARD_GRAVITY)
    assert accs["ankle X/Y/Z"].channels[0].scale == 1.0
    unread = {c.label for c in rec.channels if c.signal is None}
    assert {"pad_x", "compass_x", "t"} <= unread


def test_label_columns_are_never_signals(tmp_path: Path) -> None:
    """A class, a stimulus or a marker column (whole numbers, few of them, or text) is not a signal, even with
    --signal; a column whose name says ``event`` but holds measured values is left to the usual rules."""
    rows = [
        f"{i / 200:.3f},{50 * math.sin(i / 3):.3f},{(i // 400) % 7},{'walk' if i > 500 else ''},"
        f"{0.5 + 0.01 * math.cos(i):.4f}"
        for i in range(1200)
    ]
    path = tmp_path / "gestures.csv"
    path.write_text("\n".join(["time,EMG 1,restimulus,activity label,event rate", *rows]) + "\n")
    with open_recording(path) as reader:
        rec = reader.recording
        plan = plan_detection(rec, signal="emg")
    roles = {c.label: (c.role, c.signal) for c in rec.channels}
    assert roles["restimulus"] == ("label", None)
    assert roles["activity label"] == ("label", None)
    assert roles["event rate"] == ("", None)  # fractions: not labels
    forced = {c.label for g in plan.groups for c in g.channels}
    assert forced == {"EMG 1", "event rate"}


def test_a_time_column_of_whole_numbers_too_slow_for_seconds_counts_milliseconds(tmp_path: Path) -> None:
    """UCI's Myo files: ``time`` in ms with no unit (1, 5, 6, 7 …). As seconds no muscle signal is that
    slow; as milliseconds the rate is 1 kHz, and the note says so. A unit given, or fractions, stand."""
    rows = [f"{t}\t{1e-5 * ((t * 7) % 5 - 2):g}\t{t % 3}" for t in [1, *range(5, 1200)]]
    rec = _read(tmp_path / "1_raw_data.txt", ["time\tchannel1\tclass", *rows])
    assert rec.channels[0].rate == 1000.0
    assert any("taken as milliseconds (as seconds its rate would be 1 Hz)" in n for n in rec.notes)
    seconds = [f"{t}\t{(t * 7) % 5 - 2}" for t in range(1, 200)]
    assert _read(tmp_path / "slow.txt", ["time [s]\tEMG", *seconds]).channels[0].rate == 1.0
    fractions = [f"{t / 4}\t{(t * 7) % 5 - 2}" for t in range(1, 200)]
    assert _read(tmp_path / "quarter.txt", ["time\tEMG", *fractions]).channels[0].rate == 4.0
