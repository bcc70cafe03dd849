"""Decoded chunks → wire frames: sequence numbers per stream, and device time → Unix epoch.

A ``Framer`` lives as long as its device's collector task, across connections, so sequence numbers
continue over a reconnect. What was lost shows as a jump in them: the worker counts any forward jump as
a gap (``collector.frames.sequence_gap``), so ``mark_reconnect`` makes the first frame of every stream
after a new connection skip at least one number — as many as frames would have filled the silence. Losses
the device's data reveal are marked the same way: a jump in the device's own frame counter
(``Chunk.sequence``, the open profile's u32) or samples a decoder knows are missing (``lost_samples``).

Time: a device with an absolute clock (``DeviceProfile.DEVICE_EPOCH_NS``) is trusted when that clock is
within ``CLOCK_TRUST_NS`` of the host's; otherwise (a clock never set, a device clock counting from
boot) the first chunk of a connection anchors device time to its arrival, and device time then drives
the samples' spacing.

Chunks without device timestamps (Myo, Ganglion, MetaMotion, Thingy:52) are placed by counting samples at the
nominal rate, from the first chunk's arrival. Arrival itself says little about one chunk: a stalled link
delivers a second of notifications late and then in a burst, and a busy host stamps them late — a chunk never
arrives *before* its samples were taken, though, so the earliest arrivals bound the timeline. Per second of
samples the framer keeps how late the stream's chunks arrived against their place (the minimum), and steers
the timeline, by at most ``SLEW`` of each chunk's duration, so that over the last ``SLEW_WINDOWS`` seconds
the earliest chunk arrived just as it was placed: a device whose rate is off its nominal one (a MEMS
accelerometer's oscillator, ±1 %) is followed without a step, and a stall moves nothing. Snapping to one
chunk's arrival once 0.5 s off, a 1-% clock stepped the stream back 0.5 s every 50 s and a 0.8-s stall made
it jump forward, then back, all unmarked. Only a second of samples that all arrived more than ``JUMP_NS``
late (samples the device dropped without saying) or a timeline that ran ``JUMP_NS`` ahead of every arrival
is anchored to arrival again, and that marks a gap.

Two steps, so that chunks can be merged between them (``collector.ble.coalesce``): ``place`` gives a chunk its
time and the gap before it, chunk by chunk as they arrive; ``number`` turns a run of placed chunks into one
frame with the stream's next sequence number. ``frame`` does both for one chunk.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from twitchwatch.collector.ble.coalesce import Placed, Run
from twitchwatch.collector.devices import Chunk, DeviceProfile
from twitchwatch.collector.frames import MAX_SEQUENCE, Frame

log = logging.getLogger(__name__)

CLOCK_TRUST_NS: Final = 60_000_000_000
# Host-clocked streams (no device timestamps): see the module's docstring.
SLEW: Final = 0.05  # the most the timeline moves, as a share of a chunk's duration (a 5-% spacing error)
SLEW_WINDOWS: Final = 10  # seconds of samples whose earliest arrival steers the timeline
JUMP_NS: Final = 1_000_000_000  # lateness (or lead) that is no stall but a step: anchored again, a gap
# Device time that puts a chunk's last sample further than this from its arrival has jumped: a counter
# that wrapped (Movesense's u32 of ms, after 49.7 days), a clock reset, an absurd timestamp — or the
# host's own clock was stepped. Device time is anchored to arrival again and every stream marks a gap.
REANCHOR_NS: Final = CLOCK_TRUST_NS
# A gap is marked with at most this many skipped numbers: far below the u32 half-range, past which the
# worker would take the jump for a repeat.
MAX_SKIP: Final = 1_000_000


@dataclass
class _Track:
    stream_id: int
    sequence: int = -1  # last sent; -1 = none yet
    placed: bool = False  # a chunk was placed (it may still wait in a coalesced run for its number)
    next_t_ns: int | None = None
    frame_ns: int = 0
    rate: float | None = None
    channels: int = 0
    after_gap: bool = False
    device_sequence: int | None = None  # the device's own frame counter, where it sends one
    lateness: _Lateness | None = None  # host-clocked streams: how late chunks arrive against the timeline


@dataclass
class _Lateness:
    """How late a host-clocked stream's chunks arrived against the places the framer gave them (ns;
    negative: the timeline ran ahead of arrival): the earliest per second of samples, and the trend of
    those minima — a rate off nominal makes them climb or fall steadily, which the earliest of ten seconds
    alone would follow ten seconds behind."""

    samples: float = 0.0  # in the current second
    current: int | None = None  # the earliest arrival of the current second
    first_arrival_ns: int = 0  # of the current second: did its samples arrive over time or in a burst?
    minima: deque[int] = field(default_factory=lambda: deque(maxlen=SLEW_WINDOWS))
    slope: float = 0.0  # ns a second of samples, Theil–Sen over ``minima`` (stalls are outliers above)

    def add(self, lag_ns: int, samples: int, rate: float, received_ns: int) -> tuple[int, bool] | None:
        """One chunk's lateness. Once a second of samples is complete: its earliest lateness, and whether
        its samples arrived spread over at least half a second (not a stalled link's burst)."""
        if self.current is None:
            self.current, self.first_arrival_ns = lag_ns, received_ns
        else:
            self.current = min(self.current, lag_ns)
        self.samples += samples
        if self.samples < rate:
            return None
        done, spread = self.current, received_ns - self.first_arrival_ns >= 500_000_000
        self.current, self.samples = None, 0.0
        self.minima.append(done)
        self.slope = _theil_sen(list(self.minima))
        return done, spread

    def floor(self, rate: float) -> float:
        """The lateness of the earliest arrival now, from the last ``SLEW_WINDOWS`` seconds' minima carried
        forward along their trend, and the second under way."""
        n = len(self.minima)
        now = n - 1 + self.samples / rate  # seconds of samples since the oldest minimum's second
        carried = [m + self.slope * (now - k) for k, m in enumerate(self.minima)]
        return min([*carried, *([] if self.current is None else [float(self.current)])])

    def shift(self, by_ns: int) -> None:
        """The timeline moved ``by_ns`` later: every arrival is that much less late."""
        self.minima = deque((m - by_ns for m in self.minima), maxlen=SLEW_WINDOWS)
        if self.current is not None:
            self.current -= by_ns


def _theil_sen(values: list[int]) -> float:
    """The median of the slopes between every pair of values (one a step): robust to a few outliers."""
    slopes = sorted(
        (values[j] - values[i]) / (j - i) for i in range(len(values)) for j in range(i + 1, len(values))
    )
    return slopes[len(slopes) // 2] if slopes else 0.0


@dataclass(frozen=True)
class StreamShape:
    """What a stream's frames turned out to carry (for the status topic)."""

    sample_rate: float
    channels: int


@dataclass
class FramerStats:
    frames: int = 0
    gaps_marked: int = 0
    frames_skipped: int = 0  # sequence numbers left out to mark gaps
    no_rate: int = 0  # chunks that could not be framed: no sample rate known or derivable
    reanchored: int = 0  # times device time jumped away from arrival and was anchored to it again


@dataclass
class Framer:
    profile: type[DeviceProfile]
    stats: FramerStats = field(default_factory=FramerStats)
    _tracks: dict[str, _Track] = field(default_factory=dict)
    _offset_ns: int | None = None

    def stream_id(self, stream: str) -> int:
        for index, spec in enumerate(self.profile.STREAMS):
            if spec.name == stream:
                return index
        return len(self.profile.STREAMS) + sum(1 for name in self._tracks if name != stream)

    def mark_reconnect(self) -> None:
        """A new connection: every stream's next frame marks a gap, and device time is re-anchored."""
        self._offset_ns = None
        for track in self._tracks.values():
            if track.placed:
                track.after_gap = True

    def repeated(self, chunk: Chunk) -> bool:
        """A chunk whose device frame counter (the open profile's u32) is not past its stream's last one in
        this connection: a notification delivered twice, or late. Its samples were placed already, or
        would be placed over later ones as if new: not to be framed."""
        track = self._tracks.get(chunk.stream)
        ahead = None if track is None or track.after_gap else _device_step(chunk, track)
        return ahead is not None and (ahead == 0 or ahead >= MAX_SEQUENCE // 2)

    def shape(self, stream: str) -> StreamShape | None:
        track = self._tracks.get(stream)
        if track is None or track.rate is None:
            return None
        return StreamShape(track.rate, track.channels)

    def frame(self, chunk: Chunk, received_ns: int) -> Frame | None:
        """The wire frame for ``chunk`` alone; None (counted) when no sample rate can be known for it."""
        placed = self.place(chunk, received_ns)
        return None if placed is None else self.number(Run((placed,)))

    def place(self, chunk: Chunk, received_ns: int) -> Placed | None:
        """``chunk`` placed in its stream's time, with the sequence numbers a gap before it skips; None
        (counted) when no sample rate can be known for it. Its number comes with ``number``."""
        track = self._tracks.get(chunk.stream)
        if track is None:
            track = self._tracks[chunk.stream] = _Track(self.stream_id(chunk.stream))
        rate = self._rate(chunk, track)
        if rate is None:
            self.stats.no_rate += 1
            return None
        t0 = self._t0(chunk, track, rate, received_ns)
        skip = self._skip(chunk, track, t0) if track.placed else 0
        track.next_t_ns, track.rate, track.channels = (
            t0 + round(chunk.samples * 1e9 / rate),
            rate,
            chunk.channels,
        )
        track.placed, track.after_gap, track.device_sequence = True, False, chunk.sequence
        return Placed(
            chunk.stream, t0, rate, chunk.scale, chunk.unit, chunk.sample_type, chunk.raw, skip, received_ns
        )

    def number(self, run: Run) -> Frame:
        """The wire frame of placed chunks (``collector.ble.coalesce``): the stream's next sequence number,
        past the numbers its first chunk skips."""
        track = self._tracks[run.stream]
        first = run.first
        sequence = 0 if track.sequence < 0 else (track.sequence + 1 + first.skip) % MAX_SEQUENCE
        track.sequence, track.frame_ns = sequence, run.duration_ns
        self.stats.frames += 1
        return Frame(
            track.stream_id,
            sequence,
            first.t0_ns,
            first.rate,
            first.scale,
            first.unit,
            first.sample_type,
            run.raw(),
        )

    def _rate(self, chunk: Chunk, track: _Track) -> float | None:
        if chunk.sample_rate is not None:
            return chunk.sample_rate
        stamps = chunk.timestamps_ns
        if stamps is not None and len(stamps) >= 2 and stamps[-1] > stamps[0]:
            return (len(stamps) - 1) * 1e9 / float(stamps[-1] - stamps[0])
        return track.rate

    def _t0(self, chunk: Chunk, track: _Track, rate: float, received_ns: int) -> int:
        stamps = chunk.timestamps_ns
        if stamps is not None:
            if self._offset_ns is None:
                self._offset_ns = self._anchor(int(stamps[-1]), received_ns)
            elif abs(int(stamps[-1]) + self._offset_ns - received_ns) > REANCHOR_NS:
                self._reanchor(int(stamps[-1]), received_ns)
            return int(stamps[0]) + self._offset_ns
        return self._host_clock_t0(chunk, track, rate, received_ns)

    def _host_clock_t0(self, chunk: Chunk, track: _Track, rate: float, received_ns: int) -> int:
        """A chunk without device timestamps: its place by the sample count, steered toward the earliest
        arrivals (see the module's docstring)."""
        duration = round(chunk.samples * 1e9 / rate)
        arrived_t0 = received_ns - duration
        if track.next_t_ns is None or track.after_gap or track.lateness is None:
            track.lateness = _Lateness()
            return arrived_t0
        expected = track.next_t_ns + round(chunk.lost_samples * 1e9 / rate)  # lost samples took time too
        lateness = track.lateness
        second = lateness.add(arrived_t0 - expected, chunk.samples, rate, received_ns)
        floor = lateness.floor(rate)
        late = second is not None and second[1] and second[0] > JUMP_NS
        if late or floor < -JUMP_NS:
            log.info(
                "%s/%s: its samples arrive %.1f s from where their count puts them; anchored to arrival "
                "again (a gap is marked)",
                self.profile.NAME,
                chunk.stream,
                (second[0] if second is not None and late else floor) / 1e9,
            )
            self.stats.reanchored += 1
            track.after_gap = True
            track.lateness = _Lateness()
            return arrived_t0
        step = max(-SLEW * duration, min(SLEW * duration, floor))
        correction = round(step)
        lateness.shift(correction)
        return expected + correction

    def _reanchor(self, last_device_ns: int, received_ns: int) -> None:
        assert self._offset_ns is not None
        jump_s = (last_device_ns + self._offset_ns - received_ns) / 1e9
        log.warning(
            "%s: device time jumped %.0f s from arrival; anchored to arrival again (a gap is marked)",
            self.profile.NAME,
            jump_s,
        )
        self.stats.reanchored += 1
        self._offset_ns = received_ns - last_device_ns
        for track in self._tracks.values():
            if track.placed:
                track.after_gap = True

    def _anchor(self, last_device_ns: int, received_ns: int) -> int:
        epoch = self.profile.DEVICE_EPOCH_NS
        if epoch is not None and abs(epoch + last_device_ns - received_ns) <= CLOCK_TRUST_NS:
            return epoch
        if epoch is not None:
            log.info(
                "%s clock is %.0f s off the host's; anchoring its time to arrival",
                self.profile.NAME,
                (epoch + last_device_ns - received_ns) / 1e9,
            )
        return received_ns - last_device_ns

    def _skip(self, chunk: Chunk, track: _Track, t0: int) -> int:
        missing = 0
        if track.after_gap:
            missing = 1
            if track.next_t_ns is not None and track.frame_ns > 0 and t0 > track.next_t_ns:
                missing = max(1, round((t0 - track.next_t_ns) / track.frame_ns))
        if chunk.lost_samples:
            missing = max(missing, math.ceil(chunk.lost_samples / max(chunk.samples, 1)))
        ahead = None if track.after_gap else _device_step(chunk, track)
        if ahead is not None and 0 < ahead <= MAX_SEQUENCE // 2:
            # The open profile's u32 counter: frames the device sent that never arrived.
            missing = max(missing, ahead - 1)
        missing = min(missing, MAX_SKIP)
        if missing:
            self.stats.gaps_marked += 1
            self.stats.frames_skipped += missing
        return missing


def _device_step(chunk: Chunk, track: _Track) -> int | None:
    """How far the device's own frame counter (the open profile's u32) moved since the stream's last chunk,
    modulo its wrap; None where there is no counter to compare."""
    if chunk.sequence is None or track.device_sequence is None:
        return None
    return (chunk.sequence - track.device_sequence) % MAX_SEQUENCE
