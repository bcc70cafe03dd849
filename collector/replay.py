"""Replay: a recording played back through a simulated device, frame for frame as a wearable sends them.

A :class:`~collector.recordings.playback.ReplaySource` (``collector.recordings.playback.open_source``: any
format twitchwatch reads — a session's recorded frames unchanged, any other file's samples cut into float32
frames) describes what a recording holds (devices, streams, the muscle of each channel) and yields wire frames
in device-time order.

:func:`run_replay` publishes them with one :class:`~collector.publisher.FramePublisher` per device, whose
retained status says ``source: "replay"`` (so the worker stores the events with ``source=replay``) and
carries a fresh ``session_id``. Time: ``recorded`` keeps the recording's own timestamps (events land where
the live run put them); ``now`` shifts every timestamp by one constant so the first replayed sample is at
the wall-clock time the replay starts. By default ``--speed max`` keeps recorded time, a paced replay uses
``now``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from twitchwatch.collector.frames import MAX_SEQUENCE
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.publisher import FramePublisher
from twitchwatch.collector.recordings.playback import ReplayError, ReplaySource
from twitchwatch.collector.simulate import _Pacer
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.collector.topics import check_segment

log = logging.getLogger(__name__)

# Between passes of --loop: more than the worker's 1 s time-jump limit, so each pass starts a new segment
# (filters restarted) instead of splicing the end of the recording onto its beginning.
LOOP_PAUSE_NS: Final = 2_000_000_000

Clock = Literal["recorded", "now"]
# (signal seconds done, total so far): with --loop both grow by one pass at a time
Progress = Callable[[float, float], None]


# ---- playing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayOptions:
    user: str
    speed: float | None = 1.0  # None: as fast as possible
    loop: bool = False
    start_s: float = 0.0
    clock: Clock | None = None  # None: "recorded" at max speed, "now" when paced
    max_passes: int | None = None  # with loop: stop after this many (tests); None: until stopped

    def __post_init__(self) -> None:
        check_segment(self.user, "user")
        if self.speed is not None and not self.speed > 0:
            raise ReplayError("--speed: must be > 0, or 'max'")
        if not self.start_s >= 0:
            raise ReplayError("--start: seconds into the recording, ≥ 0")

    @property
    def effective_clock(self) -> Clock:
        return self.clock or ("recorded" if self.speed is None else "now")


@dataclass
class ReplayStats:
    session_id: str
    frames: int = 0
    passes: int = 0
    signal_seconds: float = 0.0
    time_shift_ns: int = 0  # added to the recording's timestamps in the first pass


async def run_replay(
    source: ReplaySource, target: MqttTarget, options: ReplayOptions, progress: Progress | None = None
) -> ReplayStats:
    """Publish the source's frames (from ``options.start_s`` on) until it ends — or, with ``loop``, until
    cancelled; devices are marked offline at the end either way."""
    from_ns = source.start_ns + round(options.start_s * 1e9)
    if from_ns >= source.end_ns:
        raise ReplayError(
            f"--start {options.start_s:g}: past the end of the recording ({source.duration_s:.1f} s long)"
        )
    stats = ReplayStats(uuid.uuid4().hex[:12])
    per_pass_s = (source.end_ns - from_ns) / 1e9
    shift = time.time_ns() - from_ns if options.effective_clock == "now" else 0
    stats.time_shift_ns = shift
    devices: dict[str, dict[str, StreamInfo]] = {}
    profiles: dict[str, str] = {}
    for s in source.streams:
        devices.setdefault(s.device, {})[s.stream] = s.info()
        profiles.setdefault(s.device, s.profile)
    log.info(
        "replaying %s from %.1f s, %s time%s (session %s)",
        source.description,
        options.start_s,
        options.effective_clock,
        f" shifted by {shift / 1e9:+.3f} s" if shift else "",
        stats.session_id,
    )
    async with contextlib.AsyncExitStack() as stack:
        pubs: dict[str, FramePublisher] = {}
        for device, streams in devices.items():
            status = DeviceStatus("online", profiles[device], "replay", stats.session_id, None, streams)
            pubs[device] = await stack.enter_async_context(
                FramePublisher(target, options.user, device, status)
            )
        pace = _Pacer(options.speed)
        seq_shift = [0] * len(source.streams)
        while True:
            await pace.jump_to(from_ns + shift)
            first: dict[int, int] = {}
            last: dict[int, int] = {}
            for i, frame in source.frames(from_ns):
                s = source.streams[i]
                first.setdefault(i, frame.sequence)
                last[i] = frame.sequence
                out = dataclasses.replace(
                    frame, sequence=(frame.sequence + seq_shift[i]) % MAX_SEQUENCE, t0_ns=frame.t0_ns + shift
                )
                await pubs[s.device].publish(s.stream, out)
                stats.frames += 1
                end = out.t0_ns + out.duration_ns
                done = min(per_pass_s, (frame.t0_ns + frame.duration_ns - from_ns) / 1e9)
                stats.signal_seconds = stats.passes * per_pass_s + done
                await pace.wait_until(end)
                if progress:
                    progress(stats.signal_seconds, (stats.passes + 1) * per_pass_s)
            stats.passes += 1
            if not options.loop or not last or (options.max_passes and stats.passes >= options.max_passes):
                break
            shift += source.end_ns - from_ns + LOOP_PAUSE_NS
            for i in last:
                seq_shift[i] += (last[i] - first[i]) % MAX_SEQUENCE + 1
    return stats
