"""Pure shaping of the live feed for the Live page: device status rows and per-muscle signal windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twitchwatch.collector.status import DeviceStatus
from twitchwatch.dashboard.data import NO_TIME, NS_PER_S, decimate
from twitchwatch.dashboard.livefeed import FeedSnapshot, StreamView
from twitchwatch.processing.events import TwitchEvent

COL_DEVICE = "device"
COL_STATE = "state"
COL_SOURCE = "source"
COL_BATTERY = "battery"
COL_STREAMS = "streams"
COL_LAST_FRAME = "last frame"
COL_FRAMES = "frames received"
COL_MISSING = "frames missing (gaps)"
COL_BAD = "bad frames"
COL_QUALITY = "data quality"
DEVICE_COLUMNS = [
    COL_DEVICE,
    COL_STATE,
    COL_SOURCE,
    COL_BATTERY,
    COL_STREAMS,
    COL_LAST_FRAME,
    COL_FRAMES,
    COL_MISSING,
    COL_BAD,
    COL_QUALITY,
]
NO_STATUS = "no status"
# Every supported wearable sends frames several times a second; a collector reconnecting a lost link says
# "offline" meanwhile. An "online" device this long without a frame has stopped talking.
SILENT_S = 30.0


def quality(received: int, missing: int, bad: int) -> str:
    """Share of the frames sent that arrived intact, as text ("—" before any frame)."""
    total = received + missing + bad
    return f"{100.0 * received / total:.1f} %" if total else NO_TIME


def ago(then_ns: int, now_ns: int) -> str:
    if then_ns <= 0:
        return NO_TIME
    return f"{max(now_ns - then_ns, 0) / NS_PER_S:.1f} s ago"


def device_state(status: DeviceStatus | None, last_arrival_ns: int, snapshot: FeedSnapshot) -> str:
    """What the device said about itself — unless it says online and nothing has come from it for
    ``SILENT_S`` while the dashboard listened. A collector stopped while the broker was away never sends
    its offline status, and the broker keeps the stale "online" (retained) until the device's next run."""
    if status is None:
        return NO_STATUS
    if status.state != "online" or not snapshot.listening_since_ns:
        return status.state
    silent_s = (snapshot.taken_ns - max(last_arrival_ns, snapshot.listening_since_ns)) / NS_PER_S
    return "online" if silent_s < SILENT_S else f"online, but silent for {duration(silent_s)}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def device_table(snapshot: FeedSnapshot) -> pd.DataFrame:
    """One row per device seen on the bus (by its retained status or its frames), with what it last
    said about itself and what reached the dashboard since it started."""
    by_device: dict[str, list[StreamView]] = {}
    for s in snapshot.streams:
        by_device.setdefault(s.device, []).append(s)
    rows = []
    for device in sorted(set(snapshot.statuses) | set(by_device)):
        status = snapshot.statuses.get(device)
        streams = by_device.get(device, [])
        received = sum(s.frames for s in streams)
        missing = sum(s.missing for s in streams)
        bad = sum(s.bad for s in streams)
        described = [f"{s.stream} {s.sample_rate:g} Hz × {s.channels}" for s in streams if s.channels]
        last_arrival = max((s.last_arrival_ns for s in streams), default=0)
        rows.append(
            {
                COL_DEVICE: device,
                COL_STATE: device_state(status, last_arrival, snapshot),
                COL_SOURCE: status.source if status else NO_TIME,
                COL_BATTERY: (
                    f"{status.battery_percent} %"
                    if status and status.battery_percent is not None
                    else NO_TIME
                ),
                COL_STREAMS: ", ".join(described) or NO_TIME,
                COL_LAST_FRAME: ago(last_arrival, snapshot.taken_ns),
                COL_FRAMES: str(received),
                COL_MISSING: str(missing),
                COL_BAD: str(bad),
                COL_QUALITY: quality(received, missing, bad),
            }
        )
    return pd.DataFrame(rows, columns=DEVICE_COLUMNS)


@dataclass(frozen=True)
class SignalWindow:
    """The last seconds of one channel, decimated for drawing, with the twitches inside them."""

    muscle: str
    device: str
    stream: str
    unit: str
    signal: pd.DataFrame  # columns: seconds (≤ 0, relative to the newest sample), value
    markers: pd.DataFrame  # columns: seconds, kind, reason (why not counted; "" for a twitch)


def channel_muscle(snapshot: FeedSnapshot, stream: StreamView, channel: int) -> str:
    """The muscle the device's retained status names for the channel, else device.stream.chN (as
    the worker names unmapped channels)."""
    status = snapshot.statuses.get(stream.device)
    info = status.streams.get(stream.stream) if status else None
    if info is not None and channel < len(info.channels) and info.channels[channel]:
        return info.channels[channel]
    return f"{stream.device}.{stream.stream}.ch{channel}"


def signal_windows(
    snapshot: FeedSnapshot, events: Sequence[TwitchEvent], window_s: float, max_points: int
) -> list[SignalWindow]:
    """Per stream channel: the last ``window_s`` seconds before its newest sample, at most
    ``max_points`` points, and the events of that muscle that start over the shown signal (event times are
    device times, like the samples', so they line up even when the device clock is off)."""
    windows = []
    for stream in snapshot.streams:
        if not len(stream.t_ns):
            continue
        newest = int(stream.t_ns[-1])
        since = newest - int(window_s * NS_PER_S)
        keep = stream.t_ns >= since
        t_ns = stream.t_ns[keep]
        # Only events over the signal actually shown: a feed started a few seconds ago has no trace
        # under older events, and a marker over empty space would point at nothing.
        first = int(t_ns[0])
        for ch in range(stream.channels):
            muscle = channel_muscle(snapshot, stream, ch)
            t, v = decimate(t_ns, stream.values[keep, ch].astype(np.float64), max_points)
            signal = pd.DataFrame({"seconds": (t - newest) / NS_PER_S, "value": v})
            shown = [e for e in events if e.muscle == muscle and first <= e.start_ns <= newest]
            markers = pd.DataFrame(
                {
                    "seconds": pd.Series([(e.start_ns - newest) / NS_PER_S for e in shown], dtype="float64"),
                    "kind": pd.Series([e.kind.value for e in shown], dtype="str"),
                    "reason": pd.Series([e.reason for e in shown], dtype="str"),
                }
            )
            windows.append(SignalWindow(muscle, stream.device, stream.stream, stream.unit, signal, markers))
    return sorted(windows, key=lambda w: (w.muscle, w.stream, w.device))
