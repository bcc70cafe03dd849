"""``twitchwatch detect`` as a user runs it: a subprocess over EDF+, BDF+ and CSV files made from the real
recordings in ../shared/data with twitches injected at known times.

Timing tolerance. Injected EMG potentials last 10 ms (6–14 ms for the synthetic ones); a detector reports
an onset once its band-passed, smoothed envelope clears a threshold, which lags the potential's first
low-amplitude phase by a few milliseconds (band-pass group delay, a 4-ms envelope). So a correct onset lies
within the potential ± filter delay: we allow 25 ms. Accelerometer twitches are 40–90 ms oscillations whose
sin² envelope reaches a threshold up to half their length in (≤ 45 ms), plus filter delay and one 10-ms
sample at 100 Hz: we allow 80 ms. Both are far below what a wrong conversion would cost:
an off-by-one chunk or data record is ≥ 1 s, and reading a 100-Hz stream as 1 kHz scales every time 10×.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import signal as sps

from tests.test_motion import add_turn, rest
from tests.test_recordings import (
    Sig,
    add_potential,
    biosppy_acc_g,
    biosppy_emg_uv,
    write_edf,
)
from twitchwatch.collector.recordings import STANDARD_GRAVITY
from twitchwatch.collector.synth import MuscleSegment, quantise, spec_for
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.rest import GateParams

EMG_TOLERANCE_S = 0.025
ACC_TOLERANCE_S = 0.080
KEYS = [
    "start",
    "end",
    "kind",
    "channel",
    "muscle",
    "amplitude",
    "unit",
    "duration_ms",
    "confidence",
    "dominant_hz",
    "reason",
]
LEFT_S = (3.0, 7.5, 12.25, 16.0)  # injected into EMG calf_left, 40 µV
RIGHT_S = (4.0, 8.0, 11.0)  # injected into EMG calf_right, 60 µV (the file stores mV), in its rest


def detect(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twitchwatch", "detect", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def nearest(events: Sequence[dict[str, Any]], channel: str, t: float) -> dict[str, Any]:
    mine = [e for e in events if e["channel"] == channel]
    assert mine, f"no events on {channel}"
    return min(mine, key=lambda e: abs(e["start"] - t))


@pytest.fixture(scope="module")
def thigh_truth() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A quiet synthetic 3-axis accelerometer (g) with twitches at known times (collector.synth)."""
    spec = spec_for("acc")
    seg = MuscleSegment("thigh", spec, 0, 20.0, per_minute=18, seed=1)  # 5 twitches, 5.1–17.3 s
    _, x = seg.next_chunk(seg.total)
    truth = [(t.start_ns / 1e9, t.amplitude) for t in seg.truth() if t.start_ns >= 1.1e9]
    return quantise(x, spec) * spec.scale, truth


@pytest.fixture(scope="module")
def mixed_edf(tmp_path_factory: pytest.TempPathFactory, thigh_truth: tuple[np.ndarray, Any]) -> Path:
    """20 s of EDF+ at three rates: two real surface-EMG channels (µV and mV) with injected potentials, the
    real BioSPPy accelerometer and a synthetic one (both m/s²), and a temperature channel."""
    left = biosppy_emg_uv()[:20_000].copy()
    right = biosppy_emg_uv("emg_1.txt")[2000:22_000].copy()  # from 2 s: its first burst would be in warm-up
    for t in LEFT_S:
        add_potential(left, 1000, t, 40.0)
    for t in RIGHT_S:
        add_potential(right, 1000, t, 60.0)
    calf = biosppy_acc_g() * STANDARD_GRAVITY
    thigh = thigh_truth[0] * STANDARD_GRAVITY
    return write_edf(
        tmp_path_factory.mktemp("detect") / "mixed.edf",
        [
            Sig("EMG calf_left", "uV", 1000, left),
            Sig("EMG calf_right", "mV", 1000, right / 1000),
            *(Sig(f"ACC calf {a}", "m/s^2", 100, calf[:, i]) for i, a in enumerate("XYZ")),
            *(Sig(f"ACC thigh {a}", "m/s^2", 100, thigh[:, i]) for i, a in enumerate("XYZ")),
            Sig("Temp", "degC", 1, np.full(20, 33.5)),
        ],
    )


def test_json_events_from_a_mixed_rate_edf(
    mixed_edf: Path, thigh_truth: tuple[np.ndarray, list[tuple[float, float]]]
) -> None:
    """The detectors alone (--no-gate) find every injected twitch; through the rest gate (the default) they
    are all during_movement: the file is one device, and its calf accelerometer (BioSPPy's, 2-Hz body
    movement throughout) moves from its first second to its last."""
    ungated = detect(mixed_edf, "--json", "--no-gate")
    run = detect(mixed_edf, "--json")
    assert ungated.returncode == 0, ungated.stderr
    assert run.returncode == 0, run.stderr
    raw, events = events_of(ungated.stdout), events_of(run.stdout)
    for e in raw + events:
        assert list(e) == KEYS
        assert e["kind"] in {k.value for k in EventKind}
        assert 0 <= e["start"] < e["end"] <= 20.0
        assert e["duration_ms"] == pytest.approx((e["end"] - e["start"]) * 1e3, abs=1e-3)
        assert 0 <= e["confidence"] <= 1
        assert e["dominant_hz"] is None or e["dominant_hz"] > 0
        assert (e["channel"], e["muscle"], e["unit"]) in {
            ("EMG calf_left", "calf_left", "µV"),
            ("EMG calf_right", "calf_right", "µV"),
            ("ACC calf X/Y/Z", "calf", "g"),
            ("ACC thigh X/Y/Z", "thigh", "g"),
        }
        assert (e["reason"] != "") is (e["kind"] == "during_movement")
    assert all(e["kind"] != "during_movement" for e in raw)
    calf = [e for e in events if e["channel"] == "ACC calf X/Y/Z" and e["kind"] == "sustained"]
    assert len(calf) == 1
    assert calf[0]["start"] < 1.5
    assert calf[0]["end"] > 19.5
    moved = "fasciculation: movement on ACC calf X/Y/Z"
    for channel, times, amplitude in (("EMG calf_left", LEFT_S, 40.0), ("EMG calf_right", RIGHT_S, 60.0)):
        for t in times:
            e = nearest(raw, channel, t)
            assert abs(e["start"] - t) <= EMG_TOLERANCE_S, (channel, t, e)
            assert e["kind"] == "fasciculation"
            assert amplitude / 2 <= e["amplitude"] <= amplitude * 2  # µV (the mV channel converted)
            judged = nearest(events, channel, t)
            assert (judged["start"], judged["end"]) == (e["start"], e["end"])
            assert (judged["kind"], judged["reason"]) == ("during_movement", moved)
    _, truth = thigh_truth
    assert len(truth) >= 3
    for t, amplitude_g in truth:
        e = nearest(raw, "ACC thigh X/Y/Z", t)
        assert abs(e["start"] - t) <= ACC_TOLERANCE_S, (t, e)
        assert amplitude_g / 3 <= e["amplitude"] <= amplitude_g * 3  # g, not m/s² (9.8× larger)
        assert nearest(events, "ACC thigh X/Y/Z", t)["kind"] == "during_movement"
    summary = run.stderr
    assert "\r" not in summary  # no progress line when stderr is not a terminal
    assert "during_movement" in summary
    assert "twitches/min" in summary
    assert "assessable" in summary
    rows = {" ".join(line.split()[:2]): line.split() for line in summary.splitlines() if "00:00:20" in line}
    assert set(rows) == {"EMG calf_left", "EMG calf_right", "ACC calf", "ACC thigh"}
    left = rows["EMG calf_left"]
    assert float(left[-8].split(":")[-1]) < 1.0  # assessable: at most the first second, before the movement
    twitches = [e for e in events if e["channel"] == "EMG calf_left" and EventKind(e["kind"]).is_twitch]
    assert twitches == []
    assert left[-2] == "0.00"  # twitches per minute of the 20-s file: none counted
    raw_twitches = [e for e in raw if e["channel"] == "EMG calf_left" and EventKind(e["kind"]).is_twitch]
    # the during_movement column: every twitch-shaped event the detector found there (the injected ones
    # and the recording's own small potentials, bench.accuracy (b)), none counted
    assert len(raw_twitches) >= len(LEFT_S)
    assert left[-3] == str(len(raw_twitches))
    raw_rows = {
        " ".join(ln.split()[:2]): ln.split() for ln in ungated.stderr.splitlines() if "00:00:20" in ln
    }
    assert raw_rows["EMG calf_left"][-2] == f"{len(raw_twitches) * 60 / 20:.2f}"
    assert raw_rows["EMG calf_left"][-8] == "-"  # no gate, no assessable time
    assert (
        "skipped #8 'Temp' (degC): dimension 'degC' is neither a voltage, an acceleration nor an angular rate"
        in summary
    )
    assert "not a medical device" in summary


def test_gyroscope_movement_vetoes_the_emg_and_accelerometer_of_the_file(tmp_path: Path) -> None:
    """An armband's EMG, accelerometer and gyroscope (deg/s, as twitchwatch export writes it): a turn of the
    arm at 8–11 s makes the twitches around it during_movement, with the gyroscope named as the reason."""
    rng = np.random.default_rng(11)
    emg = rng.normal(0.0, 3.0, 20_000)
    twitch_s = (3.0, 6.0, 9.5, 15.0, 17.5)
    for t in twitch_s:
        add_potential(emg, 1000, t, 40.0)
    acc = np.tile([0.0, 0.0, 1.0], (2000, 1)) + rng.normal(0.0, 0.002, (2000, 3))
    gyro = rest(20.0, bias=(2.0, -1.0, 0.5))
    add_turn(gyro, 8.0, 3.0, 60.0)
    path = write_edf(
        tmp_path / "armband.edf",
        [
            Sig("EMG biceps", "uV", 1000, emg),
            *(Sig(f"ACC arm {a}", "g", 100, acc[:, i]) for i, a in enumerate("XYZ")),
            *(Sig(f"GYR arm {a}", "deg/s", 100, gyro[:, i]) for i, a in enumerate("XYZ")),
        ],
    )
    run = detect(path, "--json")
    assert run.returncode == 0, run.stderr
    events = events_of(run.stdout)
    (turn,) = [e for e in events if e["channel"] == "GYR arm X/Y/Z"]
    assert turn["kind"] == "sustained"
    assert turn["unit"] == "°/s"
    assert 8.2 < turn["start"] < 8.6
    assert 10.5 < turn["end"] < 10.9
    gate = GateParams()
    lo, hi = turn["start"] - gate.before_movement_ns / 1e9, turn["end"] + gate.after_ns / 1e9
    for t in twitch_s:
        e = nearest(events, "EMG biceps", t)
        assert abs(e["start"] - t) <= EMG_TOLERANCE_S
        if lo <= e["start"] <= hi:
            assert e["kind"] == "during_movement"
            assert e["reason"].startswith("fasciculation: rotation on GYR arm X/Y/Z")
        else:
            assert (e["kind"], e["reason"]) == ("fasciculation", "")
    assert sum(lo <= t <= hi for t in twitch_s) == 1
    rows = {
        ln.split()[0] + " " + ln.split()[1]: ln.split() for ln in run.stderr.splitlines() if "00:00:20" in ln
    }
    assert set(rows) == {"EMG biceps", "ACC arm", "GYR arm"}
    h, m, sec = rows["EMG biceps"][-8].split(":")  # columns from the end: labels have 1–3 words
    warmup = 1.0  # the EMG detector's, blind: not assessable
    assert int(h) * 3600 + int(m) * 60 + float(sec) == pytest.approx(20.0 - (hi - lo) - warmup, abs=0.06)
    assert rows["ACC arm"][-8] == rows["EMG biceps"][-8]  # one device: the same vetoes
    gyr = rows["GYR arm"]
    assert (gyr[4], gyr[-8], gyr[-5], gyr[-2], gyr[-1]) == ("gyro", "-", "1", "-", "-")  # 1 sustained
    # Under 30 s assessable (processing.recordings.MIN_RATE_S): the count and the time, no rate at rest.
    counted = sum(e["kind"] == "fasciculation" for e in events if e["channel"] == "EMG biceps")
    assert counted >= 1
    assert rows["EMG biceps"][-1] == "-"


def test_channel_selection_muscle_and_table(mixed_edf: Path) -> None:
    run = detect(mixed_edf, "--channels", "EMG calf_right", "0", "--muscle", "soleus")
    assert run.returncode == 0, run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split() == [
        "start_s",
        "end_s",
        "channel",
        "muscle",
        "kind",
        "dur_ms",
        "amplitude",
        "unit",
        "conf",
        "dom_Hz",
        "reason",
    ]
    cells = [r.split() for r in rows]  # start, end, "EMG", "calf_left", muscle, kind, ...
    assert all(c[2] == "EMG" and c[4] == "soleus" for c in cells)
    starts = {(float(c[0]), c[3]) for c in cells}
    assert {ch for _, ch in starts} == {"calf_left", "calf_right"}
    for t in LEFT_S:
        assert any(abs(s - t) <= EMG_TOLERANCE_S and ch == "calf_left" for s, ch in starts)
    assert "7 channel(s) not selected" in run.stderr
    assert "ACC" not in run.stdout


def test_bdf_plus_at_4khz_with_signal_override(tmp_path: Path) -> None:
    """A real EMG recording with no physical dimension (only --signal makes it EMG) beside another real
    surface-EMG rest recording with potentials injected at known times, both resampled to 4 kHz."""
    other = biosppy_emg_uv("emg_1.txt")[2000:14_000]
    probe = sps.resample_poly(other - other.mean(), 4, 1)
    surface = sps.resample_poly(biosppy_emg_uv()[:12_000] - biosppy_emg_uv()[:12_000].mean(), 4, 1)
    times = (2.5, 6.0, 9.5)
    for t in times:
        add_potential(surface, 4000, t, 40.0)
    path = write_edf(
        tmp_path / "probe.bdf",
        [Sig("probe", "", 4000, probe), Sig("EMG ta", "uV", 4000, surface)],
        bdf=True,
    )
    run = detect(path, "--json", "--signal", "emg")
    assert run.returncode == 0, run.stderr
    events = events_of(run.stdout)
    assert {e["channel"] for e in events} <= {"probe", "EMG ta"}
    assert all(e["end"] <= 12.0 for e in events)
    for t in times:
        e = nearest(events, "EMG ta", t)
        assert abs(e["start"] - t) <= EMG_TOLERANCE_S, (t, e)
        assert e["muscle"] == "ta"
    assert "note #0 'probe': no physical dimension: values taken as µV" in run.stderr
    assert "probe.bdf: BDF+" in run.stderr
    assert " 4000 " in run.stderr


def test_csv_with_header_time_column_and_rate(tmp_path: Path) -> None:
    spec = spec_for("emg")
    seg = MuscleSegment("forearm", spec, 0, 60.0, per_minute=20, seed=7)
    _, x = seg.next_chunk(seg.total)
    uv = quantise(x, spec)[:, 0] * spec.scale
    truth = [t.start_ns / 1e9 for t in seg.truth() if t.start_ns >= 1.1e9]
    path = tmp_path / "forearm.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("time,EMG forearm [uV]\n")
        f.writelines(f"{i / 1000:.3f},{v:.2f}\n" for i, v in enumerate(uv))
    run = detect(path, "--json", "--rate", "1000")
    assert run.returncode == 0, run.stderr
    events = events_of(run.stdout)
    assert {(e["channel"], e["muscle"], e["unit"]) for e in events} == {("EMG forearm", "forearm", "µV")}
    hits = [t for t in truth if abs(nearest(events, "EMG forearm", t)["start"] - t) <= EMG_TOLERANCE_S]
    assert len(truth) >= 15
    assert len(hits) >= 0.9 * len(truth)
    assert "time" not in {e["channel"] for e in events}


def test_progress_on_a_terminal_for_a_long_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    path = write_edf(tmp_path / "long.edf", [Sig("EMG calf", "uV", 250, rng.normal(0, 3.0, 250 * 600))])
    master, slave = os.openpty()
    out = tmp_path / "stdout"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twitchwatch", "detect", str(path), "--json"], stdout=stdout, stderr=slave
        )
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = seen.decode()
    final = text.split("\r\x1b[K")[-1]  # the bar is redrawn in place; its last state stays
    assert final.startswith("detect long.edf [")
    assert "100% · 600 of 600 s of signal" in final
    assert "detect long.edf" not in out.read_text()


@pytest.fixture
def bad_files(tmp_path: Path, mixed_edf: Path) -> dict[str, Path]:
    csv = tmp_path / "bad.csv"
    csv.write_text("time,EMG a,EMG b\n0,1,2\n0.001,3,4\n# a comment\n0.002,5,x5\n", encoding="utf-8")
    edf = tmp_path / "bad.edf"
    data = bytearray(mixed_edf.read_bytes())
    ns = int(data[252:256])
    at = 256 + ns * (16 + 80 + 8 + 8)  # signal 0's physical maximum
    data[at : at + 8] = b"12,5    "
    edf.write_bytes(bytes(data))
    cut = tmp_path / "cut.edf"
    cut.write_bytes(mixed_edf.read_bytes()[:-1000])
    good_csv = tmp_path / "good.csv"
    good_csv.write_text("EMG a\n1\n2\n", encoding="utf-8")
    return {"csv": csv, "edf": edf, "cut": cut, "good_csv": good_csv}


def test_bad_input_exits_2_with_the_place_named(bad_files: dict[str, Path], mixed_edf: Path) -> None:
    ns = int(mixed_edf.read_bytes()[252:256])  # signals, with the EDF+ annotation signal
    at = 256 + ns * (16 + 80 + 8 + 8)
    cases: list[tuple[list[str], str]] = [
        ([str(bad_files["csv"]), "--rate", "1000"], r"line 5, column 3 ('EMG b'): 'x5' is not a number"),
        ([str(bad_files["good_csv"])], "a CSV file has no sample rate: pass it (--rate HZ)"),
        (
            [str(bad_files["edf"])],
            f"header bytes {at}–{at + 7} (signal 0 'EMG calf_left' physical maximum): '12,5' is not a number",
        ),
        ([str(bad_files["cut"])], "truncated"),
        ([str(bad_files["good_csv"]), "--rate", "1000", "--chunk-seconds", "0"], "--chunk-seconds"),
    ]
    # Started together: each spends most of its time importing numpy and scipy.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "twitchwatch", "detect", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        for args, _ in cases
    ]
    for proc, (args, message) in zip(procs, cases, strict=True):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (args, stderr)
        assert message in stderr, (args, stderr)
        assert "Traceback" not in stderr
        assert stdout == ""


def test_the_summary_says_what_mains_interference_was_taken_out(tmp_path: Path) -> None:
    """A channel with 30 µV of 50-Hz hum and one without: the first gets a note with the mains frequency
    followed and the hum's RMS, the second none."""
    from twitchwatch.collector.synth import Physiology, generate

    rest_only = Physiology(fasciculation=10, myoclonic_jerk=0, sustained=0, artifact=0, hum=0.0)
    quiet = generate("emg", 1000.0, 20.0, rest_only, seed=3)[0][:, 0]
    hummed = generate("emg", 1000.0, 20.0, rest_only, seed=4)[0][:, 0]
    hummed = hummed + 30.0 * np.sin(2 * np.pi * 50.0 * np.arange(hummed.size) / 1000.0)
    path = write_edf(
        tmp_path / "hum.edf", [Sig("EMG quiet", "uV", 1000, quiet), Sig("EMG hummed", "uV", 1000, hummed)]
    )
    run = detect(path, "--no-gate")
    assert run.returncode == 0, run.stderr
    notes = [ln for ln in run.stderr.splitlines() if "mains interference taken out" in ln]
    assert len(notes) == 1, run.stderr
    found = re.findall(r": ([\d.]+) Hz and its harmonics, ([\d.]+) µV RMS$", notes[0])
    hz, rms = (float(v) for v in found[0])
    assert notes[0].startswith("  note EMG hummed: mains interference taken out:")
    assert hz == pytest.approx(50.0, abs=0.01)
    assert rms == pytest.approx(30.0 / np.sqrt(2), rel=0.03)
