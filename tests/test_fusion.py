"""Fusion of one muscle's streams: co-occurring twitches merge, others do not; the worker stores one event
per twitch when an EMG channel and an accelerometer watch the same muscle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.synth import spec_for
from twitchwatch.processing.events import EventKind, TwitchEvent
from twitchwatch.processing.fusion import Fuser, FusionParams
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.worker import Worker

MS = 1_000_000
EMG = ("u", "band", "emg")
ACC = ("u", "band", "acc")
ACC2 = ("u", "watch", "acc")


def _event(
    stream: tuple[str, str, str],
    start_ms: float,
    end_ms: float,
    kind: EventKind = EventKind.FASCICULATION,
    confidence: float = 0.7,
    channel: int = 0,
    muscle: str = "calf",
) -> TwitchEvent:
    unit = "µV" if stream[2] == "emg" else "g"
    return TwitchEvent(
        "u",
        muscle,
        stream[1],
        stream[2],
        channel,
        kind,
        round(start_ms * MS),
        round(end_ms * MS),
        50.0,
        unit,
        confidence,
    )


def _fuser(*streams: tuple[tuple[str, str, str], str]) -> Fuser:
    f = Fuser()
    for s, kind in streams:
        f.register(("u", "calf"), s, kind)  # type: ignore[arg-type]
    return f


def test_emg_and_accelerometer_twitch_merge_and_confidence_rises() -> None:
    f = _fuser((EMG, "emg"), (ACC, "acc"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012, confidence=0.7))
    f.add(ACC, "acc", _event(ACC, 1030, 1090, confidence=0.6))  # 20–30 ms electromechanical delay
    [merged] = f.release()
    assert merged.start_ns == 1000 * MS
    assert merged.end_ns == 1090 * MS
    assert merged.stream == "emg+acc"
    assert merged.unit == "µV"  # the EMG event's amplitude and kind
    assert merged.kind is EventKind.FASCICULATION
    assert merged.confidence == pytest.approx(1 - 0.3 * 0.4)
    assert f.merged == 1


@pytest.mark.parametrize(
    ("acc_start", "acc_end", "merges"),
    [
        (955.0, 1010.0, True),  # 45 ms before the EMG onset: within lead (clock skew)
        (1110.0, 1170.0, True),  # 98 ms after the EMG end: within lag
        (940.0, 990.0, False),  # too early
        (1115.0, 1180.0, False),  # too late
    ],
)
def test_tolerance(acc_start: float, acc_end: float, merges: bool) -> None:
    f = _fuser((EMG, "emg"), (ACC, "acc"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012))
    f.add(ACC, "acc", _event(ACC, acc_start, acc_end))
    out = f.flush()
    assert len(out) == (1 if merges else 2)


def test_events_wait_for_the_other_stream_then_leave_in_order() -> None:
    f = _fuser((EMG, "emg"), (ACC, "acc"))
    p = FusionParams()
    f.add(EMG, "emg", _event(EMG, 2000, 2010))
    f.add(EMG, "emg", _event(EMG, 1000, 1012))
    f.advance(EMG, 2500 * MS)
    assert f.release() == []  # the accelerometer has not got that far
    f.advance(ACC, (1012 * MS) + p.lag_ns + p.partner_latency_ns)
    assert [e.start_ns for e in f.release()] == [1000 * MS]
    f.advance(ACC, 3000 * MS)
    assert [e.start_ns for e in f.release()] == [2000 * MS]


def test_a_stalled_partner_does_not_block() -> None:
    f = _fuser((EMG, "emg"), (ACC, "acc"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012))
    f.advance(EMG, 1012 * MS + FusionParams().max_wait_ns)
    assert len(f.release()) == 1


def test_a_muscle_with_one_stream_passes_straight_through() -> None:
    f = _fuser((EMG, "emg"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012))
    assert len(f.release()) == 1


def test_activity_and_artifacts_are_not_merged() -> None:
    f = _fuser((EMG, "emg"), (ACC, "acc"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012))
    f.add(ACC, "acc", _event(ACC, 1000, 3000, kind=EventKind.SUSTAINED))
    f.add(EMG, "emg", _event(EMG, 5000, 5010, kind=EventKind.ARTIFACT))
    f.add(ACC, "acc", _event(ACC, 5000, 5050, kind=EventKind.ARTIFACT))
    out = f.flush()
    assert len(out) == 4
    assert f.merged == 0


def test_two_channels_of_one_kind_merge_without_boosting_confidence() -> None:
    f = _fuser((EMG, "emg"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012, confidence=0.6, channel=0))
    f.add(EMG, "emg", _event(EMG, 1002, 1013, confidence=0.8, channel=1))
    f.add(EMG, "emg", _event(EMG, 1600, 1610, confidence=0.8, channel=0))  # the same channel, later
    out = f.release()
    assert [round(e.confidence, 3) for e in out] == [0.8, 0.8]
    assert out[0].channel == 0


def test_each_event_merges_once() -> None:
    f = _fuser((EMG, "emg"), (ACC, "acc"), (ACC2, "acc"))
    f.add(EMG, "emg", _event(EMG, 1000, 1012))
    f.add(ACC, "acc", _event(ACC, 1020, 1080))
    f.add(ACC2, "acc", _event(ACC2, 1025, 1085))
    assert len(f.flush()) == 2


# ---- the worker -------------------------------------------------------------------------------------
T0 = 1_700_000_000_000_000_000


def _frames(kind: str, x: np.ndarray, rate: float, chunk: int) -> list[tuple[int, bytes]]:
    spec = spec_for(kind, rate)  # type: ignore[arg-type]
    unit = Unit.MICROVOLT if kind == "emg" else Unit.G
    out = []
    for seq, i in enumerate(range(0, x.shape[0], chunk)):
        raw = np.clip(np.round(x[i : i + chunk] / spec.scale), -32768, 32767).astype(np.int16)
        t0 = T0 + round(i * 1e9 / rate)
        out.append((t0, encode(Frame(0, seq, t0, rate, spec.scale, unit, SampleType.INT16, raw))))
    return out


async def test_worker_stores_one_event_per_twitch_seen_by_emg_and_accelerometer(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seconds, twitches = 60, np.arange(3.0, 58.0, 2.5)
    emg = rng.normal(0, 3.0, (int(seconds * 1000), 1))
    acc = rng.normal(0, 0.002, (int(seconds * 100), 3)) + np.array([0.0, 0.0, 1.0])
    k = np.arange(-8, 9)
    muap = -(k / 2.5) * np.exp(-0.5 * (k / 2.5) ** 2) * 60.0
    tk = np.arange(8) / 100.0
    mmg = 0.03 * np.sin(math.pi * tk / 0.08) ** 2 * np.sin(2 * math.pi * 20 * tk)
    for t in twitches:
        c = round(t * 1000)
        emg[c - 8 : c + 9, 0] += muap
        a = round((t + 0.02) * 100)  # the movement follows the potential by ~20 ms
        acc[a : a + 8, 2] += mmg
    store = SQLiteStore(tmp_path / "fusion.db")
    worker = Worker(parse_mqtt_url("mqtt://127.0.0.1:1"), store, muscle_map=lambda d, s, c: "calf_left")
    e_frames = _frames("emg", emg, 1000.0, 100)
    a_frames = _frames("acc", acc, 100.0, 10)
    merged = sorted([(t, "emg", f) for t, f in e_frames] + [(t, "acc", f) for t, f in a_frames])
    for _, stream, payload in merged:  # interleaved by device time, as two wearables send them
        worker.handle(f"twitchwatch/u/band/raw/{stream}", payload)
    await worker._finish()
    events = store.events(EventQuery(user="u", kinds=(EventKind.FASCICULATION, EventKind.MYOCLONIC_JERK)))
    rates = store.rates(EventQuery(user="u"))
    store.close()
    assert len(events) == len(twitches)  # not twice as many
    assert {e.stream for e in events} == {"emg+acc"}
    assert all(e.unit == "µV" for e in events)
    assert worker.stats.events_merged == len(twitches)
    assert sum(r.twitches for r in rates) == len(twitches)
    starts = np.array([e.start_ns - T0 for e in events]) / 1e9
    assert np.allclose(np.sort(starts), twitches - 0.01, atol=0.01)
