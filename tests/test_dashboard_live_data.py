"""The Live page's shaping of the feed: device rows and per-muscle signal windows with markers."""

from __future__ import annotations

import dataclasses

import numpy as np

from tests.harness.dashboard import NS, event
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.dashboard import live_data
from twitchwatch.dashboard.livefeed import FeedSnapshot, StreamView
from twitchwatch.processing.events import EventKind

T0 = 1_700_000_000 * NS


def stream(device: str, channels: int, seconds: float, rate: float = 100.0, **counts: int) -> StreamView:
    n = int(seconds * rate)
    t = T0 + (np.arange(n) * NS / rate).astype(np.int64)
    values = np.tile(np.arange(n, dtype=np.float64)[:, None], (1, channels)) * np.arange(1, channels + 1)
    return StreamView(
        device,
        "emg",
        "µV",
        rate,
        t,
        values,
        counts.get("frames", 10),
        counts.get("missing", 0),
        counts.get("bad", 0),
        counts.get("arrival", T0),
    )


def snapshot(
    streams: list[StreamView], statuses: dict[str, DeviceStatus], taken_ns: int = T0
) -> FeedSnapshot:
    return FeedSnapshot("mqtt://127.0.0.1:1883", "connected", "", statuses, streams, taken_ns)


def status(*muscles: str, battery: int | None = 80) -> DeviceStatus:
    return DeviceStatus(
        "online", "sim", "replay", "s1", battery, {"emg": StreamInfo(0, "emg", 100.0, muscles)}
    )


def test_device_rows_join_status_and_reception() -> None:
    snap = snapshot(
        [stream("a", 1, 1.0, frames=8, missing=1, bad=1, arrival=T0 - 2 * NS)],
        {"a": status("calf_left"), "b": status("x", battery=None)},
        taken_ns=T0 + NS // 2,
    )
    rows = live_data.device_table(snap).to_dict("records")
    assert rows == [
        {
            "device": "a",
            "state": "online",
            "source": "replay",
            "battery": "80 %",
            "streams": "emg 100 Hz × 1",
            "last frame": "2.5 s ago",
            "frames received": "8",
            "frames missing (gaps)": "1",
            "bad frames": "1",
            "data quality": "80.0 %",
        },
        {
            "device": "b",
            "state": "online",
            "source": "replay",
            "battery": "—",
            "streams": "—",
            "last frame": "—",
            "frames received": "0",
            "frames missing (gaps)": "0",
            "bad frames": "0",
            "data quality": "—",
        },
    ]


def test_an_online_status_without_frames_while_listening_is_called_silent() -> None:
    """A collector stopped while the broker was away leaves its retained "online" behind."""
    online = status("calf_left")
    listening = T0 - 600 * NS
    fresh = stream("a", 1, 1.0, arrival=T0 - 5 * NS)
    stale = stream("b", 1, 1.0, arrival=T0 - 95 * NS)
    snap = dataclasses.replace(
        snapshot([fresh, stale], {"a": online, "b": online, "c": online}), listening_since_ns=listening
    )
    states = {r["device"]: r["state"] for r in live_data.device_table(snap).to_dict("records")}
    assert states == {"a": "online", "b": "online, but silent for 95 s", "c": "online, but silent for 10 min"}
    # Just connected: too soon to call a device without frames silent; offline stays offline.
    offline = dataclasses.replace(online, state="offline")
    just = dataclasses.replace(snapshot([], {"c": online, "d": offline}), listening_since_ns=T0 - 2 * NS)
    states = {r["device"]: r["state"] for r in live_data.device_table(just).to_dict("records")}
    assert states == {"c": "online", "d": "offline"}


def test_a_stream_without_status_is_listed_as_such() -> None:
    [row] = live_data.device_table(snapshot([stream("c", 1, 0.5)], {})).to_dict("records")
    assert row["state"] == live_data.NO_STATUS


def test_windows_per_channel_with_muscle_names_and_markers() -> None:
    snap = snapshot([stream("a", 2, 30.0)], {"a": status("calf_left", "")})
    newest = T0 + int((30 * 100 - 1) * NS / 100)
    events = [
        event("calf_left", newest - 5 * NS),
        event("calf_left", newest - 25 * NS),  # before the 20 s window
        event("calf_right", newest - 3 * NS),  # another muscle
        event("calf_left", newest - 2 * NS, EventKind.MYOCLONIC_JERK),
        dataclasses.replace(
            event("calf_left", newest - 1 * NS, EventKind.DURING_MOVEMENT),
            reason="fasciculation: movement 3.0 s",
        ),
    ]
    windows = live_data.signal_windows(snap, events, window_s=20.0, max_points=10_000)
    assert [w.muscle for w in windows] == ["a.emg.ch1", "calf_left"]  # an unnamed channel: device.stream.chN
    left = windows[1]
    assert left.signal["seconds"].min() >= -20.0
    assert left.signal["seconds"].max() == 0.0
    assert len(left.signal) == 20 * 100 + 1
    assert left.markers.to_dict("records") == [
        {"seconds": -5.0, "kind": "fasciculation", "reason": ""},
        {"seconds": -2.0, "kind": "myoclonic_jerk", "reason": ""},
        {"seconds": -1.0, "kind": "during_movement", "reason": "fasciculation: movement 3.0 s"},
    ]
    # Channel 1 carries twice channel 0's values.
    assert windows[0].signal["value"].max() == 2 * left.signal["value"].max()


def test_windows_are_decimated_to_the_cap() -> None:
    [w] = live_data.signal_windows(snapshot([stream("a", 1, 30.0)], {}), [], 20.0, max_points=300)
    assert len(w.signal) <= 300
    assert w.signal["value"].max() == 30 * 100 - 1  # the newest (largest) sample survives


def test_markers_only_over_the_signal_shown() -> None:
    """A feed started 4 s ago shows 4 s of signal: an event 6 s back has no trace under it."""
    snap = snapshot([stream("a", 1, 4.0)], {"a": status("calf_left")})
    newest = T0 + int((4 * 100 - 1) * NS / 100)
    events = [event("calf_left", newest - 6 * NS), event("calf_left", newest - 3 * NS)]
    [w] = live_data.signal_windows(snap, events, window_s=20.0, max_points=10_000)
    assert w.markers["seconds"].tolist() == [-3.0]
