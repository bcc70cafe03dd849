"""The everyday recordings' readers (bench/formats.py) and their segmentation (bench/data.py).

Each format is tested on a small file written here, then on real recordings of it: excerpts of the everyday
recordings the benchmark reads (bench reads them whole from the shared data folder), kept with their licences
in tests/data/recordings/realworld.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench import data, formats
from bench.formats import FormatError
from tests.datafiles import RECORDINGS

REALWORLD = RECORDINGS / data.REALWORLD


# --- PLUX OpenSignals HDF5 -------------------------------------------------------------------------------


def write_opensignals(
    path: Path, devices: dict[str, tuple[float, list[tuple[int, str, np.ndarray]]]]
) -> Path:
    """An OpenSignals-style file: per device (MAC) its rate and (channel number, sensor, raw counts)."""
    with h5py.File(path, "w") as f:
        for mac, (rate, channels) in devices.items():
            g = f.create_group(mac)
            g.attrs["sampling rate"] = np.int32(rate)
            g.attrs["channels"] = np.array([n for n, _, _ in channels], dtype=np.int32)
            g.attrs["resolution"] = np.full(len(channels), 16, dtype=np.int32)
            raw = g.create_group("raw")
            for n, sensor, counts in channels:
                ds = raw.create_dataset(f"channel_{n}", data=counts.astype(np.uint16)[:, None])
                if sensor:
                    ds.attrs["sensor"] = sensor
            raw.create_dataset("nSeq", data=np.arange(len(channels[0][2]), dtype=np.uint16)[:, None])
    return path


def test_opensignals_emg_and_accelerometer_in_physical_units(tmp_path: Path) -> None:
    n = 3000
    rng = np.random.default_rng(0)
    emg = 32768 + rng.integers(-20, 21, n)
    still = [np.full(n, 33000), np.full(n, 33000), np.full(n, 38000)]  # 0, 0, 1 g under PLUX's calibration
    force = rng.integers(0, 20000, n)
    path = write_opensignals(
        tmp_path / "mixed.h5",
        {
            "00:07:80:00:00:01": (
                1000.0,
                [(1, "EMG", emg), *((k + 2, "XYZ", c) for k, c in enumerate(still))],
            ),
            "00:07:80:00:00:02": (500.0, [(1, "FORCEPLATFORM", force)]),
        },
    )
    loaded = formats.read_any(path)
    assert loaded is not None
    assert loaded.format == "PLUX OpenSignals HDF5"
    kinds = {s.kind: s for s in loaded.streams}
    assert set(kinds) == {"emg", "acc"}
    e, a = kinds["emg"], kinds["acc"]
    assert (e.rate, e.x.shape, e.unit, e.device) == (1000.0, (n, 1), "µV", "00:07:80:00:00:01")
    assert np.allclose(e.x[:, 0], (emg / 65536 - 0.5) * 3.0 * 1000)  # (raw/2^16 − ½) × 3 mV, in µV
    assert np.allclose(a.x[0], [0.0, 0.0, 1.0])
    assert a.lanes == 1
    assert any("FORCEPLATFORM" in note for note in loaded.notes)


def test_opensignals_sensor_from_the_info_file_when_the_channel_lacks_it(tmp_path: Path) -> None:
    counts = np.full(500, 33000)
    path = write_opensignals(tmp_path / "s.h5", {"AA": (100.0, [(k, "", counts) for k in (1, 2, 3)])})
    (tmp_path / "s_info.json").write_text(json.dumps({"Signal Type": "cACC, cACC, cACC"}), encoding="utf-8")
    loaded = formats.read_any(path)
    assert loaded is not None
    assert [s.kind for s in loaded.streams] == ["acc"]
    assert np.allclose(loaded.streams[0].x, 0.0)


def test_opensignals_accelerometer_needs_three_axes(tmp_path: Path) -> None:
    counts = np.full(100, 33000)
    path = write_opensignals(tmp_path / "two.h5", {"AA": (100.0, [(1, "XYZ", counts), (2, "XYZ", counts)])})
    with pytest.raises(FormatError, match="2 accelerometer channels"):
        formats.read_any(path)


def test_plux_transfer_functions() -> None:
    assert formats.plux_emg_uv(np.array([32768.0]), 16)[0] == 0.0
    assert formats.plux_emg_uv(np.array([65536.0]), 16)[0] == pytest.approx(1500.0)  # +½ × 3 mV
    assert formats.plux_acc_g(np.array([28000.0, 38000.0]), 16).tolist() == [-1.0, 1.0]
    assert formats.plux_acc_g(np.array([38000.0 / 16]), 12)[0] == pytest.approx(1.0)  # 12-bit counts scaled


# --- CSV formats -----------------------------------------------------------------------------------------


def test_mobilised_csv_has_an_accelerometer_and_a_gyroscope_of_one_device(tmp_path: Path) -> None:
    folder = tmp_path / "HA042"
    folder.mkdir()
    rows = ["samples,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z"]
    rows += [f"{k},1.0,0.0,0.0,{np.sin(k / 10):.4f},0.5,-0.5" for k in range(400)]
    path = folder / "trial.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded = formats.read_any(path)
    assert loaded is not None
    assert loaded.format == "Mobilise-D CSV"
    acc, gyr = loaded.streams
    assert (acc.kind, gyr.kind) == ("acc", "gyro")
    assert acc.rate == gyr.rate == 100.0
    assert acc.device == gyr.device == "HA042"
    assert gyr.unit == "°/s"
    assert np.allclose(gyr.x[:, 1], 0.5)
    assert np.allclose(acc.x[:, 0], 1.0)


def test_mobilised_csv_refuses_lost_samples(tmp_path: Path) -> None:
    rows = ["samples,acc_x,acc_y,acc_z", "0,1,0,0", "1,1,0,0", "3,1,0,0"]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"line 4.*skips"):
        formats.read_any(path)


def test_daphnet_csv_each_sensor_its_own_device_in_g_at_the_timestamps_rate(tmp_path: Path) -> None:
    cols = [f"{s}_{a}" for s in ("ankle", "leg", "trunk") for a in ("fwd", "vert", "lat")]
    rows = ["timestamp," + ",".join(cols) + ",is_anomaly"]
    for k in range(640):  # 10 s at 64 Hz, stamps rounded to ms as in the real file
        t = 280.0 + k / 64.0
        stamp = f"1970-01-01 00:{int(t // 60):02d}:{t % 60:06.3f}"
        rows.append(stamp + "," + ",".join(["0", "1000", "0"] * 3) + ",0")
    path = tmp_path / "S01R01.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded = formats.read_any(path)
    assert loaded is not None
    assert loaded.format == "Daphnet CSV"
    assert [s.device for s in loaded.streams] == ["ankle", "leg", "trunk"]
    for s in loaded.streams:
        assert s.kind == "acc"
        assert s.rate == pytest.approx(64.0, rel=1e-3)
        assert np.allclose(s.x, [0.0, 1.0, 0.0])


def test_daphnet_csv_refuses_a_gap_in_its_timestamps(tmp_path: Path) -> None:
    rows = ["timestamp,a_x,a_y,a_z,is_anomaly"]
    times = [0.0, 0.02, 0.04, 0.06, 0.5, 0.52]
    rows += [f"1970-01-01 00:00:{t:06.3f},1,2,3,0" for t in times]
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match="jump"):
        formats.read_any(path)


def geneactiv_text(rate: float, n: int) -> str:
    head = [
        "Device Type,GENEActiv           ",
        "Device Unique Serial Code,012345",
        "",
        f"Measurement Frequency,{rate} Hz",
        "Device Location Code,left wrist",
        "Sensor type,MEMS accelerometer x-axis",
        "Units,g",
        "",
    ]
    rows = [
        f"2020-01-01 10:00:{k / rate:06.3f}".replace(".", ":") + ",0.0,-1.0,0.0,12,0,30.1" for k in range(n)
    ]
    return "\r\n".join(head + rows) + "\r\n"


def test_geneactiv_csv_rate_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "wrist.csv"
    path.write_text(geneactiv_text(75.0, 300), encoding="utf-8", newline="")
    loaded = formats.read_any(path)
    assert loaded is not None
    assert loaded.format == "GENEActiv CSV"
    (s,) = loaded.streams
    assert (s.kind, s.rate, s.device, s.x.shape) == ("acc", 75.0, "left wrist", (300, 3))
    assert np.allclose(s.x, [0.0, -1.0, 0.0])


def test_geneactiv_csv_without_a_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        geneactiv_text(50.0, 10).replace("Measurement Frequency,50.0 Hz", "Measurement Frequency,")
    )
    with pytest.raises(FormatError, match="Measurement Frequency"):
        formats.read_any(path)


def test_files_no_format_claims_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text("MIT\n", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "x_info.json").write_text("{}", encoding="utf-8")
    assert all(formats.read_any(p) is None for p in tmp_path.iterdir())
    assert data.realworld(tmp_path) == []


# --- discovery and segmentation -------------------------------------------------------------------------


def test_recordings_are_found_by_format_in_any_folder(tmp_path: Path) -> None:
    nested = tmp_path / "realworld" / "new-lab" / "day1"
    nested.mkdir(parents=True)
    (nested / "wrist.csv").write_text(geneactiv_text(50.0, 500), encoding="utf-8", newline="")
    counts = np.full(1000, 33000)
    write_opensignals(nested / "hub.h5", {"BB": (100.0, [(k, "XYZ", counts) for k in (1, 2, 3)])})
    found = data.realworld(tmp_path / "realworld")
    assert [c.name for c in found] == ["new-lab/day1/hub", "new-lab/day1/wrist"]
    assert [c.format for c in found] == ["PLUX OpenSignals HDF5", "GENEActiv CSV"]


def test_movement_band_rule_calls_shaking_active_and_stillness_rest() -> None:
    rate = 100.0
    t = np.arange(int(30 * rate)) / rate
    rng = np.random.default_rng(3)
    x = np.tile([0.0, 0.0, 1.0], (t.size, 1)) + rng.normal(0, 0.002, (t.size, 3))  # MEMS-class noise
    bout = (t >= 10) & (t < 18)
    x[bout, 0] += 0.3 * np.sin(2 * np.pi * 2.0 * t[bout])  # 2-Hz shaking, 0.3 g
    rest, active = data.movement_segments(x, rate)
    assert len(active) == 1
    assert 9.0 < active[0][0] < 10.0
    assert 18.0 < active[0][1] < 19.0
    assert sum(b - a for a, b in rest) > 15.0
    assert all(b <= active[0][0] or a >= active[0][1] for a, b in rest)


def test_older_recordings_become_one_device_with_their_own_segmentation() -> None:
    rec = data.Recording(
        "x/y", "emg", 1000.0, np.zeros((2000, 2)), "µV", rest=((0.0, 1.0),), active=((1.0, 2.0),)
    )
    cap = data.as_capture(rec)
    (s,) = cap.streams
    assert (s.kind, s.lanes, s.device, s.active, s.rest) == ("emg", 2, "x/y", ((1.0, 2.0),), ((0.0, 1.0),))


# --- the real folders ------------------------------------------------------------------------------------


def _loaded(folder: str, pattern: str) -> list[data.Capture]:
    caps = data.realworld(REALWORLD)  # the whole folder, found by format
    return [c for c in caps if c.name.startswith(f"{folder}/") and Path(c.name).match(pattern)]


def test_real_plux_accelerometers() -> None:
    caps = {Path(c.name).name: c for c in _loaded("bsnb-acc", "*")}
    assert set(caps) >= {
        "sync_acc_1",
        "sync_acc_2",
        "loft_time_subject_1",
        "signal_sample_single_hub_cacc_2017_1_20",
    }
    for c in caps.values():
        (acc,) = c.streams  # the force platform is skipped
        assert acc.kind == "acc"
        assert acc.rate in (500.0, 1000.0)
    still = caps["sync_acc_1"].streams[0]
    first = still.x[: int(still.rate * 5)]
    assert 0.9 < np.median(np.linalg.norm(first, axis=1)) < 1.1  # still at first: gravity only
    assert still.active  # ~11 s of shaking after the still start
    assert still.rest
    assert any("FORCEPLATFORM" in n for n in caps["loft_time_subject_1"].notes)


def test_real_plux_emg() -> None:
    (c,) = _loaded("bsnb-emg", "*")
    (emg,) = c.streams
    assert (emg.kind, emg.rate, emg.lanes) == ("emg", 1000.0, 1)
    assert 25.0 < emg.duration_s < 30.0
    assert emg.active  # cyclic voluntary bursts
    assert 100.0 < np.ptp(emg.x) < 10_000.0  # µV: bursts of a few mV at most


def test_real_mobilised_lower_back() -> None:
    caps = _loaded("mobgap-lowback-imu", "*")
    assert len(caps) >= 3
    for c in caps:
        acc, gyr = c.streams
        assert (acc.kind, gyr.kind, acc.rate) == ("acc", "gyro", 100.0)
        assert 0.9 < np.median(np.linalg.norm(acc.x, axis=1)) < 1.1
        assert np.percentile(np.linalg.norm(gyr.x, axis=1), 90) > 20.0  # °/s: walking turns the trunk


def test_real_daphnet() -> None:
    (c,) = _loaded("aeon-daphnet-pd-acc", "*")
    assert [s.device for s in c.streams] == ["ankle", "leg", "trunk"]
    for s in c.streams:
        assert s.rate == pytest.approx(64.0, abs=0.1)
        assert 0.8 < np.median(np.linalg.norm(s.x, axis=1)) < 1.2  # milli-g converted to g
        assert sum(b - a for a, b in s.active) > 25.0  # a walk: most of the 30-s excerpt


def test_real_geneactiv() -> None:
    (c,) = _loaded("gaitpy-geneactiv-lumbar", "*")
    (s,) = c.streams
    assert (s.rate, s.device) == (50.0, "back")
    assert 39.0 < s.duration_s < 41.0  # the 40-s excerpt
    assert 0.9 < np.median(np.linalg.norm(s.x, axis=1)) < 1.1


# --- the everyday table (bench/realworld.py) -------------------------------------------------------------


def test_everyday_table_counts_before_and_after_the_gate_per_lane_minute_of_activity() -> None:
    from bench import realworld
    from tests.test_motion import add_turn, rest
    from tests.test_recordings import add_potential

    rate, seconds = 1000.0, 40.0
    x = np.random.default_rng(0).normal(0.0, 3.0, (int(rate * seconds), 1))
    for onset in (5.0, 12.0, 13.0, 30.0):
        add_potential(x[:, 0], rate, onset, 40.0)
    gyro = rest(seconds)
    add_turn(gyro, 10.0, 5.0, 60.0)  # the wearable turns 10–15 s: the twitches at 12 and 13 s are vetoed
    emg = formats.Stream("EMG arm", "emg", rate, x, "band", active=((10.0, 20.0),), rest=((0.0, 10.0),))
    gyr = formats.Stream("GYR band", "gyro", 100.0, gyro, "band")
    cap = data.Capture("lab/arm", "test", (emg, gyr))
    (tally,) = realworld.assess(cap).values()
    counts = (tally.before, tally.counted, tally.before_active, tally.counted_active)
    assert (tally.lanes, counts) == (1, (4, 2, 2, 0))
    assert tally.rejected == {"rotation": 2}
    assert tally.active_min == pytest.approx(10.0 / 60.0)
    assert tally.counted_per_active_min == 0.0
    assert tally.before_per_active_min == pytest.approx(2 / (10.0 / 60.0))
    assert 0.7 < tally.assessable < 0.9  # the turn (≈10.6–14.4 s) and its guards are not assessable
