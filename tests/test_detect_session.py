"""``twitchwatch detect`` on the project's own HDF5 session files: the same lanes and events as on the
session's EDF+ export, and event times that follow the device clock across a gap."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from twitchwatch.cli import main
from twitchwatch.collector.frames import Frame, SampleType, Unit
from twitchwatch.collector.recordings import RecordingError, open_recording
from twitchwatch.collector.recordings.formats.edf import export_edf
from twitchwatch.collector.recordings.formats.session import Session, SessionWriter
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.collector.synth import Physiology, TruthEvent, generate
from twitchwatch.processing.recordings import DetectionRun, RecordingEvent, plan_detection

T0 = 1_780_000_000_000_000_000
RATE = 1000.0
FRAME = 50  # samples per frame
SCALE = 0.25  # µV per count
PHYSIOLOGY = Physiology(fasciculation=30.0, myoclonic_jerk=0.0, sustained=0.0, artifact=0.0)


def _write(
    path: Path, *, jump_at_frame: int | None = None, jump_ns: int = 0, unit: Unit = Unit.MICROVOLT
) -> list[TruthEvent]:
    """A 40-s generated calf EMG recorded as a session; from ``jump_at_frame`` on, the device clock is
    ``jump_ns`` ahead (what a lost link looks like). Returns the truth in session time (ns from T0)."""
    x, truth = generate("emg", RATE, 40.0, PHYSIOLOGY, seed=11, muscle="calf_left")
    raw = np.round(x / SCALE).astype(np.int16)
    status = DeviceStatus(
        "online", "open", "live", "s1", None, {"emg": StreamInfo(0, "emg", RATE, ("calf_left",))}
    )
    with SessionWriter(path, user="alice") as w:
        w.add_status("dev1", status)
        for seq in range(raw.shape[0] // FRAME):
            shift = jump_ns if jump_at_frame is not None and seq >= jump_at_frame else 0
            t0 = T0 + round(seq * FRAME * 1e9 / RATE) + shift
            frame = Frame(
                0, seq, t0, RATE, SCALE, unit, SampleType.INT16, raw[seq * FRAME : (seq + 1) * FRAME]
            )
            w.add_frame("dev1", "emg", frame)
    boundary = None if jump_at_frame is None else jump_at_frame * FRAME * 1e9 / RATE

    def shifted(t: TruthEvent) -> TruthEvent:
        late = boundary is not None and t.start_ns >= boundary
        return replace(t, start_ns=t.start_ns + jump_ns, end_ns=t.end_ns + jump_ns) if late else t

    return [shifted(t) for t in truth]


def _detect(path: Path) -> list[RecordingEvent]:
    with open_recording(path) as reader:
        plan = plan_detection(reader.recording)
        run = DetectionRun(plan)
        events = [e for chunk in reader.chunks(plan.groups) for e in run.feed(chunk)]
        return events + run.finish()


def test_session_and_its_edf_export_give_the_same_events(tmp_path: Path) -> None:
    truth = _write(tmp_path / "s.h5")
    with Session(tmp_path / "s.h5") as s:
        export_edf(s, tmp_path / "s.edf")
    from_session, from_edf = _detect(tmp_path / "s.h5"), _detect(tmp_path / "s.edf")
    twitches = [e for e in from_session if e.kind.is_twitch]
    assert len(twitches) >= 0.9 * len(truth) > 10
    assert [(e.channel, e.muscle, e.kind, e.start, e.end) for e in from_session] == [
        (e.channel, e.muscle, e.kind, e.start, e.end) for e in from_edf
    ]
    assert {e.channel for e in from_session} == {"EMG calf_left"}
    assert all(e.dominant_hz is not None and 20 <= e.dominant_hz <= 500 for e in twitches)


def test_event_times_follow_the_device_clock_across_a_jump(tmp_path: Path) -> None:
    jump_ns = 3_000_000_000
    truth = _write(tmp_path / "j.h5", jump_at_frame=400, jump_ns=jump_ns)  # the clock jumps at 20 s
    with open_recording(tmp_path / "j.h5") as reader:
        assert any("clock jump" in note for note in reader.recording.notes)
    events = [e for e in _detect(tmp_path / "j.h5") if e.kind.is_twitch]
    late = [t for t in truth if t.start_ns >= 20e9 + jump_ns]
    assert len(late) > 5
    starts = np.array([e.start for e in events])
    matched = sum(bool(np.any(np.abs(starts - t.start_ns / 1e9) < 0.05)) for t in late)
    assert matched >= 0.9 * len(late)
    assert not np.any((starts > 20.0) & (starts < 20.0 + jump_ns / 1e9 - 0.05))  # nothing inside the hole


def test_unitless_emg_runs_with_a_note(tmp_path: Path) -> None:
    _write(tmp_path / "u.h5", unit=Unit.UNITLESS)
    with open_recording(tmp_path / "u.h5") as reader:
        (channel,) = reader.recording.channels
    assert channel.signal == "emg"
    assert "no physical unit" in channel.note


def test_cli_detect_on_a_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _write(tmp_path / "c.h5")
    assert main(["detect", str(tmp_path / "c.h5"), "--json"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert sum(r["kind"] == "fasciculation" for r in rows) >= 0.9 * len(truth)
    assert {r["muscle"] for r in rows} == {"calf_left"}
    assert "EMG calf_left" in err


def test_a_broken_session_is_a_recording_error(tmp_path: Path) -> None:
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(RecordingError, match=r"bad\.h5"):
        open_recording(tmp_path / "bad.h5")
    with pytest.raises(RecordingError, match="--rate is for CSV"):
        open_recording(tmp_path / "bad.h5", rate=100.0)


def test_a_sessions_gyroscope_vetoes_its_emg(tmp_path: Path) -> None:
    """A session with an armband's EMG and its gyroscope (°/s, three channels labelled ``GYR biceps 1``–``3``
    as the export labels them): the gyroscope runs the movement detector, and the twitches during its turn
    are during_movement."""
    x, truth = generate("emg", RATE, 30.0, PHYSIOLOGY, seed=12, muscle="biceps")
    raw = np.round(x / SCALE).astype(np.int16)
    gyro_rate, gyro_scale = 100.0, 1 / 32  # the Thingy:52's Q11.5
    t = np.arange(3000) / gyro_rate
    dps = np.random.default_rng(4).normal(0.0, 0.1, (3000, 3)) + np.array([1.5, -0.5, 0.2])
    turn = (t >= 12.0) & (t < 16.0)
    dps[turn, 2] += 60.0 * 0.5 * (1 - np.cos(2 * np.pi * (t[turn] - 12.0) / 4.0))
    gyro_raw = np.round(dps / gyro_scale).astype(np.int16)
    status = DeviceStatus(
        "online",
        "open",
        "live",
        "s1",
        None,
        {
            "emg": StreamInfo(0, "emg", RATE, ("biceps",)),
            "gyro": StreamInfo(1, "gyro", gyro_rate, ("biceps",) * 3),
        },
    )
    path = tmp_path / "arm.h5"
    with SessionWriter(path, user="alice") as w:
        w.add_status("band", status)
        for seq in range(raw.shape[0] // FRAME):
            t0 = T0 + round(seq * FRAME * 1e9 / RATE)
            w.add_frame(
                "band",
                "emg",
                Frame(
                    0,
                    seq,
                    t0,
                    RATE,
                    SCALE,
                    Unit.MICROVOLT,
                    SampleType.INT16,
                    raw[seq * FRAME : (seq + 1) * FRAME],
                ),
            )
            g = gyro_raw[seq * 5 : (seq + 1) * 5]
            w.add_frame(
                "band", "gyro", Frame(1, seq, t0, gyro_rate, gyro_scale, Unit.DEG_PER_S, SampleType.INT16, g)
            )
    events = _detect(path)
    (turn_event,) = [e for e in events if e.channel.startswith("GYR")]
    assert turn_event.channel == "GYR biceps 1/2/3"
    assert (turn_event.kind.value, turn_event.unit) == ("sustained", "°/s")
    assert 12.0 < turn_event.start < 13.0
    assert 15.0 < turn_event.end < 16.0
    lo, hi = turn_event.start - 0.1, turn_event.end + 2.0
    emg = [
        e
        for e in events
        if e.channel == "EMG biceps" and e.kind.value in ("fasciculation", "during_movement")
    ]
    inside = [e for e in emg if lo <= e.start <= hi]
    assert len(emg) >= 0.9 * len(truth)
    assert inside
    assert all(
        e.kind.value == "during_movement" and "rotation on GYR biceps 1/2/3" in e.reason for e in inside
    )
    assert all(e.kind.value == "fasciculation" for e in emg if e not in inside)
