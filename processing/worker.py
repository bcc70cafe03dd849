"""The processing worker: raw frames from MQTT → streaming detectors → events and minute rates in a store.

Tasks and ownership: ``Worker.run`` owns two tasks in a TaskGroup — the MQTT loop (reconnects with
backoff, persistent QoS-1 session so the broker keeps frames while the worker is away) and the writer
(writes events to the store off the event loop as soon as they are released, batching what arrives during a
write, minute rates every ``flush_interval``; retries on failure, never drops). ``Worker.stop`` asks
both to finish: detectors release their last events, everything pending is written, then the tasks end.

With ``flags=FlagTask(...)`` it also owns the periodic flag and Home Assistant tasks
(``processing.periodic``).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import inspect
import itertools
import json
import logging
import math
import pickle
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiomqtt
import numpy as np

from twitchwatch.collector.continuity import continuity
from twitchwatch.collector.frames import Frame, Unit, decode
from twitchwatch.collector.limits import (
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    RejectedError,
    check_frame,
    check_payload_size,
)
from twitchwatch.collector.mqtt import MqttTarget, payload_bytes
from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.collector.signals import MOTION_SIGNALS, StreamKind, kind_of_unit, stream_kind
from twitchwatch.collector.status import DeviceStatus, StatusError
from twitchwatch.collector.topics import Topic, TopicError, felt_filter, felt_user, raw_filter, status_filter
from twitchwatch.processing.core import FloatArray
from twitchwatch.processing.detector import Detection, StreamingDetector
from twitchwatch.processing.events import EventKind, MinuteRate, Source, TwitchEvent
from twitchwatch.processing.felt import FeltError, felt_entry, with_arrival_time
from twitchwatch.processing.flags import FlagSet
from twitchwatch.processing.fusion import Fuser
from twitchwatch.processing.gating import reach_back_samples, warmup_samples
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.motion import MotionDetector
from twitchwatch.processing.periodic import FlagTask, PeriodicTasks
from twitchwatch.processing.quarantine import Entry, Quarantine, QuarantineError
from twitchwatch.processing.rest import GateParams
from twitchwatch.processing.rest_streams import RestStreams, SegmentMap, is_veto, veto_reason
from twitchwatch.processing.store import EventQuery, EventStore, StoreError, StoreRejected, stored_minute
from twitchwatch.processing.timeunits import MINUTE_NS
from twitchwatch.processing.wal import IngestJournal, JournalError, Record, fingerprint, write_json_atomically

if TYPE_CHECKING:
    from paho.mqtt.client import MQTTMessageInfo

    from twitchwatch.collector.mqtt import Client

log = logging.getLogger(__name__)

# Minutes are final this long (device time) after they end, so events released late still count.
RATE_GRACE_NS = 5_000_000_000
# The first stop waits at most this long for a store that does not take the last writes; what it has not
# taken by then goes to the quarantine (or, without one, is logged as not stored).
SHUTDOWN_WRITE_S = 30.0
PUBLISHED_WAIT_S = 5.0  # at shutdown, for the broker to acknowledge the last event notifications
# Vetoes are kept this long before anything the worker still holds (a minute, an event, a stream's data):
# nothing asks about earlier time, and without pruning a months-long run would keep every walk.
VETO_KEEP_NS = 120_000_000_000
# Reconnect backoff: doubling from 1 s, never more than this between tries (a broker restart costs seconds).
MAX_BACKOFF_S = 5.0
# How long frames of a device that announced no muscles wait for its retained status (which a broker
# delivers after the frames it queued for the worker): then they are named after their channel.
STATUS_WAIT_S = 2.0
# How long a device's streams outlive its offline status in case its frames go on (a broker restart fires
# the publishers' wills although they reconnect): beyond a publisher's 5-s backoff plus its connect, and
# as long as a stream may fall behind before the rest gate stops waiting for it (GateParams.stale_ns).
OFFLINE_GRACE_S = 10.0
# A stream silent this long on the ingest clock is ended, whatever the source: a device gone without an
# offline status (no will: a hand-rolled publisher) kept its last minute open, and the floor for pruning the
# rest gate's vetoes with it. A collector's will ends its streams sooner (``OFFLINE_GRACE_S``); RabbitMQ's
# source ends them after ``amqp.IDLE_NS``.
SILENT_END_NS = 60_000_000_000
# How long before its redelivery a felt mark without a time of its own may have been stored by a worker
# that died before acknowledging it: its restart and the broker's redelivery take seconds to a minute.
FELT_REDELIVERY_S = 300
# A stream may change rate, channels or unit this often in a minute (a device reconfigured, a firmware
# update); more is a source flapping, whose frames are refused.
FORMAT_CHANGES = 3
# Ended streams whose records (a few hundred bytes each, their detectors let go) are kept to tell a frame
# that follows one from a gap or a duplicate; beyond, the longest silent are forgotten.
ENDED_KEPT = 4096
# Frame topics remembered parsed (one per stream; cleared when full).
TOPICS_KEPT = 10_000
# Checkpoints of the ingestion state (processing/wal.py) at most this often (wall time), after a store write.
CHECKPOINT_S = 1.0
# A snapshot pickles every stream's detector (~75 kB each): with many streams it takes tens of ms, on the
# event loop. The interval grows so that snapshots take at most 1/CHECKPOINT_SHARE of the time, up to
# CHECKPOINT_MAX_S — the journal a killed worker replays grows with it (a second of frames replays in well
# under a second).
CHECKPOINT_SHARE = 25
CHECKPOINT_MAX_S = 15.0
# Messages taken from the MQTT client's queue and handled as one batch (``Worker.handle_many``): at most
# this many, so a long backlog is worked through in pieces of ~0.1-0.5 s with the writer running between.
BATCH_MAX = 4096
# ... gathered for this long first (``gather_backlog``), unless nothing comes for GATHER_IDLE_S: the latency
# a batch may add. A worker that keeps up pays per batch far more than per frame (waking the reader, the
# journal write, the acknowledgements, releasing events, the writer's round): gathering 20 ms rather than
# taking each frame alone cut its CPU at a seventh of its capacity from 0.77 to 0.38 of a core, and at half
# of it the latency too (p99 to stored 596 → 474 ms), as the writer no longer waits behind one-frame batches
# (docs/benchmarks.md, "Batches for a worker that keeps up").
GATHER_S = 0.02
# Nothing new for this long ends the gathering early: a trickle of frames is not held back, and a broker
# that stops sending until it has acknowledgements (its in-flight window) is not waited on for long.
GATHER_IDLE_S = 0.002
# A worker already behind gathers longer: a quarter of how far behind it is, up to GATHER_MAX_S. Gathering
# 20-50 ms of 300 streams' frames gives each stream's detector one or two frames a call; 250 ms gives it five,
# each costing half as much — the latency it adds is a fraction of what the backlog already holds, and the
# cheaper frames are how the worker catches up instead of falling further behind.
GATHER_BEHIND = 0.25
GATHER_MAX_S = 0.5


def checkpoint_interval(took_s: float) -> float:
    """Seconds until the next checkpoint after one that took ``took_s``."""
    return min(max(CHECKPOINT_S, CHECKPOINT_SHARE * took_s), CHECKPOINT_MAX_S)


# Two events of one muscle and device this close are one twitch found twice (redelivered frames).
SAME_EVENT_NS = 50_000_000
NEVER_NS = 2**62  # a horizon nothing holds back
# Device time a frame's acknowledgement to a broker trails what is stored (processing/amqp.py): more than a
# detector's warm-up (1 s) and the rest gate's look-back, so a worker taking the partition over starts its
# detectors on stored past.
LEAD_NS = 3_000_000_000
# Frames recorded less than LIVE_NS ago are live data; handled more than LAG_WARN_NS after their end, the
# worker is falling behind (a wearable buffers a few hundred ms at most; the gate holds events 2 s anyway).
LIVE_NS = 600_000_000_000
LAG_WARN_NS = 5_000_000_000
# The ingest clock (``end_idle``) runs with the wall clock while frames arrive or the source is connected with
# nothing waiting (``source_quiet``); a pause with neither (a broker restarting, this worker stopped or
# starved, its connection down) counts this much at most.
INGEST_PAUSE_NS = 1_000_000_000

MuscleMap = Callable[[str, str, int], str | None]  # (device, stream, channel) → muscle from config
StreamKey = tuple[str, str, str]  # (user, device, stream)
Receipt = tuple[StreamKey, int] | None  # a frame's stream and end (device time); None: any other message


class Ingest(Protocol):
    """Where frames come from when not from the worker's own MQTT subscription (processing/amqp.py):
    it hands every message to ``worker.handle`` in its arrival order and acknowledges it to its broker once
    ``worker.ack_horizons`` (snapshotted before a completed ``worker.flush_stored``) has passed it; when
    ``stop`` is set it calls ``worker.drain`` and acknowledges what that stored."""

    async def run(self, worker: Worker, stop: asyncio.Event) -> None: ...


# The sources of every object a checkpoint holds: a snapshot is loaded only by the code that wrote it.
_STATE_SOURCES = (
    *Path(__file__).parent.glob("*.py"),
    Path(inspect.getfile(Frame)),
    Path(inspect.getfile(DeviceStatus)),
)


def gather_s(behind_s: float) -> float:
    """How long a worker ``behind_s`` seconds behind its live frames gathers a batch (``GATHER_BEHIND``)."""
    return min(max(GATHER_S, GATHER_BEHIND * behind_s), GATHER_MAX_S)


async def gather_backlog(size: Callable[[], int], limit: int, seconds: float = GATHER_S) -> None:
    """Let messages join a batch while the event loop runs the clients' readers (paho, aiormq): until
    ``seconds`` have passed, ``size()`` reaches ``limit``, or none has joined for ``GATHER_IDLE_S``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    count, last = size(), loop.time()
    while count < limit:
        await asyncio.sleep(GATHER_IDLE_S / 2)
        now, n = loop.time(), size()
        if n != count:
            count, last = n, now
        elif now - last >= GATHER_IDLE_S:
            return
        if now >= deadline:
            return


async def _backlog(client: Client, seconds: float = GATHER_S) -> list[aiomqtt.Message]:
    """What the broker has already sent, taken at once (up to ``BATCH_MAX - 1`` more messages)."""
    await gather_backlog(lambda: len(client.messages), BATCH_MAX - 1, seconds)
    return client.take_queued(BATCH_MAX - 1)


def _felt_user_or_none(topic: str) -> str | None:
    try:
        return felt_user(topic)
    except TopicError:
        return None


@dataclass
class WorkerStats:
    frames: int = 0
    samples: int = 0
    bad_frames: int = 0
    bad_topics: int = 0
    bad_status: int = 0
    gaps: int = 0
    missing_frames: int = 0
    duplicates: int = 0
    events_detected: int = 0
    events_merged: int = 0  # detections that joined another stream's event of the same twitch
    events_during_movement: int = 0  # twitch-shaped events while their muscle was not assessable
    twitches_retracted: int = 0  # of those: written as twitches, re-written when a contraction followed
    vetoes: int = 0  # activity, movement and artifacts that made muscles not assessable
    events_stored: int = 0
    rates_stored: int = 0
    store_errors: int = 0
    events_quarantined: int = 0  # refused by the store alone in their batch, or not stored by shutdown
    rates_quarantined: int = 0
    quarantine_dropped: int = 0  # rows the quarantine had no room (or no file) for: logged as errors
    flag_computations: int = 0
    flag_errors: int = 0
    flags_published: int = 0
    ha_updates: int = 0
    felt_marks: int = 0  # "I felt that" marks stored from twitchwatch/<user>/felt
    felt_refused: int = 0  # felt marks the store refused (logged as errors; retrying would stall the rest)
    bad_felt: int = 0
    redelivered_frames: int = 0  # frames a broker delivered again (a partition taken over, a reconnect)
    format_changes: int = 0  # a stream's rate, channels or unit changed: its detector started again
    # Streams a lost connection left to another worker (``Worker.detach_streams``): dropped, not finished.
    streams_handed_over: int = 0
    lag_ms: int = 0  # how long after its end the latest live frame was handled (wall clock − device time)
    behind: int = 0  # live frames handled more than LAG_WARN_NS after their end
    batches: int = 0  # backlogs taken at once (``Worker.handle_many`` with more than one message)
    largest_batch: int = 0  # messages in the largest of them
    events_already_stored: int = 0  # events found again in redelivered frames and found in the store
    journal_replayed: int = 0  # messages journaled by a killed predecessor, processed again at start
    frames_held: int = 0  # frames that waited for their device's status
    journal_errors: int = 0  # messages not journaled, and checkpoints that failed (processing/wal.py)
    # Messages dropped at the edge, per reason kind (collector/limits.py): ``frame.rate``,
    # ``status.json_depth``…
    # ``internal`` counts messages whose handling raised anything else (a bug: logged with its traceback).
    rejected: dict[str, int] = field(default_factory=dict)


class StreamDetector(Protocol):
    """What the worker needs of a stream's detector: ``StreamingDetector``, and the movement detector of
    gyroscope and orientation streams (whose detections of kind sustained are movement)."""

    lanes: int

    @property
    def settled(self) -> int: ...

    def open_activity(self) -> list[tuple[int, int, int]]: ...

    def process(self, chunk: FloatArray) -> Sequence[Detection]: ...

    def finish(self) -> Sequence[Detection]: ...


class _Finished:
    """An ended stream's detector, once it has released everything: its shape and where it stopped, and
    nothing else. The detector itself (filters, ring, history: 80 kB for one EMG channel, 1.4 MB for 32)
    is let go — kept for every stream that ever ended, a few hundred made-up device names took gigabytes,
    pickled again at every checkpoint."""

    def __init__(self, lanes: int, settled: int) -> None:
        self.lanes = lanes
        self._settled = settled

    @property
    def settled(self) -> int:
        return self._settled

    def open_activity(self) -> list[tuple[int, int, int]]:
        return []

    def process(self, chunk: FloatArray) -> Sequence[Detection]:
        raise RuntimeError("an ended stream's detector takes no samples")

    def finish(self) -> Sequence[Detection]:
        return []


@dataclass
class _Stream:
    user: str
    device: str
    stream: str
    kind: StreamKind
    rate: float
    channels: int
    unit: Unit
    detector: StreamDetector
    seg_t0_ns: int
    last_seq: int
    next_t_ns: int
    ended: bool = False  # its detector finished (device offline): kept only to tell gaps and duplicates
    # The source's connection was lost since its latest frame: its unacknowledged frames went back to the
    # broker, maybe to another worker (``Worker.detach_streams``).
    detached: bool = False
    last_ingest_ns: int = 0  # the ingest clock when its latest frame arrived (``Worker.end_idle``)
    rate_keys: list[RateKey] | None = None  # per lane, from the device's status (Worker._rate_keys)
    # Within a batch (``Worker.handle_many``): frames accepted, their detection deferred to the batch's end,
    # and the end of the last of them.
    queued: list[FloatArray] = field(default_factory=list)
    queued_end_ns: int = 0

    def matches(self, frame: Frame) -> bool:
        return (self.rate, self.channels, self.unit) == (frame.sample_rate, frame.channels, frame.unit)

    def time_of(self, index: int) -> int:
        return self.seg_t0_ns + round(index * 1e9 / self.rate)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user, self.device, self.stream)


def _some(names: Iterable[str], shown: int = 5) -> str:
    """The first few names and how many more: a log line about a thousand devices stays a line."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _write_split(
    write: Callable[[Sequence[TwitchEvent]], None] | Callable[[Sequence[MinuteRate]], None],
    rows: Sequence[Any],
) -> list[tuple[Any, str]]:
    """Write ``rows``; a batch the store refuses is halved until each refused row stands alone (about
    2·log2(n) writes per bad row). Returns the refused rows with the store's reason. Writes are
    idempotent, so halves a server already took in part are simply written again."""
    if not rows:
        return []
    try:
        write(rows)
    except StoreRejected as exc:
        if len(rows) == 1:
            return [(rows[0], str(exc))]
        mid = len(rows) // 2
        return _write_split(write, rows[:mid]) + _write_split(write, rows[mid:])
    return []


class RestView(Protocol):
    """What a ``RateBook`` asks about a key's muscle (``processing.rest_streams.RestStreams``)."""

    def ready(self, user: str, muscle: str, end_ns: int) -> bool: ...

    def vetoed_ns(self, user: str, muscle: str, start_ns: int, end_ns: int) -> int: ...


class _NothingVetoes:
    """A book on its own knows no vetoes: all time covered is at rest."""

    def ready(self, user: str, muscle: str, end_ns: int) -> bool:
        return True

    def vetoed_ns(self, user: str, muscle: str, start_ns: int, end_ns: int) -> int:
        return 0


@dataclass
class _MinuteTally:
    twitches: int = 0
    # Device time this run covered in the minute, as sorted disjoint spans: two streams of one device on
    # one muscle (its EMG and its accelerometer) cover the same seconds once. The seconds at rest are these
    # minus what the gate vetoes in them, asked when the minute is written.
    spans: list[list[int]] = field(default_factory=list)
    # Seconds carried in from elsewhere (a predecessor's stored row, a write to retry): monitored, and at
    # rest — None: unknown (that row was written before rest tracking), which makes the minute's unknown.
    carried_s: float = 0.0
    carried_rest_s: float | None = 0.0
    carried_end_s: float | None = None  # where the carried row's monitored time ends, when it says
    dirty: bool = True  # changed since last written
    # Covered by redelivered frames of a partition taken over, before the stored tally was read: the dead
    # worker's stored tally counts these seconds already, unless there is none.
    redelivered: list[tuple[int, int]] = field(default_factory=list)
    # The spans and their seconds at rest when the minute was last taken (``freeze``): reopened later (data
    # that comes minutes late), the gate has pruned the vetoes of that time, so only spans added since are
    # asked about. Asked again, the contraction vetoed before counted at rest (39 s at rest became 49).
    frozen_spans: list[list[int]] = field(default_factory=list)
    frozen_rest_ns: int = 0

    def freeze(self, user: str, muscle: str, rest: RestView) -> None:
        self.frozen_rest_ns = self._at_rest_ns(user, muscle, rest)
        self.frozen_spans = [list(s) for s in self.spans]

    def _at_rest_ns(self, user: str, muscle: str, rest: RestView) -> int:
        new = _minus(self.spans, self.frozen_spans)
        return self.frozen_rest_ns + sum(b - a - rest.vetoed_ns(user, muscle, a, b) for a, b in new)

    def cover(self, start_ns: int, end_ns: int) -> None:
        spans = self.spans
        if spans and spans[-1][0] <= start_ns <= spans[-1][1]:  # the usual case: data goes on
            spans[-1][1] = max(spans[-1][1], end_ns)
            return
        i = bisect.bisect_left(spans, start_ns, key=lambda s: s[1])  # first span ending at or after start
        j = i
        while j < len(spans) and spans[j][0] <= end_ns:
            start_ns, end_ns = min(start_ns, spans[j][0]), max(end_ns, spans[j][1])
            j += 1
        spans[i:j] = [[start_ns, end_ns]]

    @property
    def monitored_s(self) -> float:
        return self.carried_s + sum(b - a for a, b in self.spans) / 1e9

    @property
    def end_ns(self) -> int | None:
        return self.spans[-1][1] if self.spans else None

    def rate(self, key: RateKey, minute_ns: int, rest: RestView) -> MinuteRate:
        monitored = round(min(self.monitored_s, 60.0), 6)
        rest_s: float | None = None
        if self.carried_rest_s is not None:
            at_rest = self._at_rest_ns(key[0], key[1], rest)
            rest_s = round(min(max(self.carried_rest_s + at_rest / 1e9, 0.0), monitored), 6)
        ends = [self.carried_end_s] if self.carried_end_s is not None else []
        if self.spans:
            ends.append((self.spans[-1][1] - minute_ns) / 1e9)
        end_s = round(min(max(ends), 60.0), 6) if ends else None
        return MinuteRate(*key, minute_ns, self.twitches, monitored, rest_s, end_s)


def _minus(spans: list[list[int]], taken: list[list[int]]) -> list[tuple[int, int]]:
    """The parts of sorted disjoint ``spans`` outside sorted disjoint ``taken`` (each inside one span)."""
    out: list[tuple[int, int]] = []
    j = 0
    for a, b in spans:
        t = a
        while j < len(taken) and taken[j][1] <= b:
            if taken[j][0] > t:
                out.append((t, taken[j][0]))
            t = max(t, taken[j][1])
            j += 1
        if t < b:
            out.append((t, b))
    return out


RateKey = tuple[str, str, str, Source]

# A journal record that is no message: the store's answer to a prior lookup (``RateBook.resolve``). Replayed
# after a kill, a key's first minute is resolved with the answer the dead run had, not asked again: the store
# may by then hold a tally that run wrote from the very frames being replayed, and taken for a predecessor's
# it was added to them (a minute's twitches and seconds counted twice). '$' starts no subscribed topic.
PRIOR_TOPIC = "$twitchwatch/prior-rate"


def _prior_record(key: RateKey, minute_ns: int, stored: MinuteRate | None) -> tuple[str, bytes]:
    row = None if stored is None else [stored.twitches, stored.monitored_s, stored.rest_s, stored.end_s]
    return PRIOR_TOPIC, json.dumps({"key": list(key), "minute_ns": minute_ns, "stored": row}).encode()


def _journaled_priors(records: Iterable[Record]) -> dict[tuple[RateKey, int], MinuteRate | None]:
    """The prior lookups answered in a journal (``_prior_record``); a record that does not parse (the
    journal is the worker's own, but a disk can damage it past its checksum's reach) is left out, and its
    key asked again."""
    out: dict[tuple[RateKey, int], MinuteRate | None] = {}
    for r in records:
        if r.topic != PRIOR_TOPIC:
            continue
        try:
            doc = json.loads(r.payload)
            user, muscle, device, source = (str(v) for v in doc["key"])
            if source not in ("live", "replay"):
                raise ValueError(f"source {source!r}")
            key: RateKey = (user, muscle, device, "live" if source == "live" else "replay")
            minute = int(doc["minute_ns"])
            row = doc["stored"]
            out[(key, minute)] = (
                None
                if row is None
                else MinuteRate(
                    user,
                    muscle,
                    device,
                    key[3],
                    minute,
                    int(row[0]),
                    float(row[1]),
                    None if row[2] is None else float(row[2]),
                    None if row[3] is None else float(row[3]),
                )
            )
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            log.warning("a journaled prior lookup does not parse (%s): asked again", exc)
    return out


# Twitches remembered as counted, so that a re-write as during movement takes its count back (re-writes
# come about a second after the first write; this is hours of twitches at any plausible rate).
COUNTED_KEYS_KEPT = 100_000
# Minutes already written that a key's late data may reopen (``RateBook._closed``): two hours of them.
CLOSED_KEPT = 120


@dataclass
class RateBook:
    """Per-minute twitch counts, monitored seconds and seconds at rest per (user, muscle, device, source).

    Seconds at rest are the monitored time minus what ``rest`` (the worker's rest gate) vetoes for the key's
    muscle, and are final only once the gate is ``ready`` for the minute's data: a minute waits for that as
    it waits for the grace period. Running tallies of open minutes (``changed_open``) carry the seconds at
    rest known so far.

    With ``ask_prior`` the book wants to know what the store already holds for the first minute each key is
    seen in: a worker restarted in the middle of a minute then adds to the tally its predecessor wrote
    instead of overwriting it with its own partial one. The lookup is not made here (it is I/O, and the
    worker must not block on it): ``lookups()`` hands out the keys to look up, ``resolve()`` brings the
    answer, and until then the key's minutes are held back from ``take()`` and ``changed_open()``, so no
    partial tally is written over the stored one. If the new data starts before the stored monitored time
    could have ended, it is the same data again (a replay) and the stored row is replaced, as every other
    write is.
    """

    ask_prior: bool = False
    rest: RestView = field(default_factory=_NothingVetoes)
    minutes: dict[RateKey, dict[int, _MinuteTally]] = field(default_factory=lambda: defaultdict(dict))
    _asked: set[RateKey] = field(default_factory=set)
    _unresolved: dict[RateKey, tuple[int, int]] = field(default_factory=dict)  # key → (minute, first data)
    _to_ask: list[tuple[RateKey, int]] = field(default_factory=list)
    # Keys whose first data came redelivered (a partition taken over from a worker that died): their first
    # minute's stored tally is the dead worker's, to be continued, not a replay to be replaced.
    _resumed: set[RateKey] = field(default_factory=set)
    _resume_first: dict[RateKey, int] = field(default_factory=dict)  # its first minute
    _resume_carried: dict[RateKey, bool] = field(default_factory=dict)  # once read: was a tally stored
    # Minutes whose twitch count changed since their tally was last handed out with ``recounted_open``: a
    # write of events carries these tallies with it (the stored tally counts the stored twitches).
    _recounted: set[tuple[RateKey, int]] = field(default_factory=set)
    # Keys of detached streams (``Worker.detach_streams``): their tallies are not written until their
    # stream is back, and are discarded if it went to another worker.
    _frozen: set[RateKey] = field(default_factory=set)
    # The last CLOSED_KEPT minutes taken per key, with their tallies: data that still comes for one (a
    # device clock stepped back, a frame stamped ahead that moved the watermark past the minute) reopens
    # its tally instead of starting a fresh one, whose write would replace the stored row and lose what
    # it counted.
    _closed: dict[RateKey, dict[int, _MinuteTally]] = field(default_factory=lambda: defaultdict(dict))

    def freeze(self, keys: Iterable[RateKey]) -> None:
        self._frozen.update(keys)

    def thaw(self, keys: Iterable[RateKey]) -> None:
        self._frozen.difference_update(keys)

    def discard(self, keys: Iterable[RateKey]) -> None:
        """Forget the keys' tallies unwritten, and that their first minute was looked up: the worker that
        has their data now writes them, and should they come back here, their stored rows are read
        again."""
        for key in set(keys):
            self.minutes.pop(key, None)
            self._frozen.discard(key)
            self._asked.discard(key)
            self._unresolved.pop(key, None)
            self._resumed.discard(key)
            self._resume_first.pop(key, None)
            self._resume_carried.pop(key, None)
            self._to_ask = [(k, m) for k, m in self._to_ask if k != key]
            self._recounted = {(k, m) for k, m in self._recounted if k != key}
            self._closed.pop(key, None)

    def _held_back(self, key: RateKey) -> bool:
        """Not written now: its stored row is being read, or its stream is detached."""
        return key in self._unresolved or key in self._frozen

    def _tally(self, key: RateKey, minute: int, at_ns: int) -> _MinuteTally:
        tally = self.minutes[key].get(minute)
        if tally is None and (closed := self._closed.get(key)) and minute in closed:
            tally = self.minutes[key][minute] = closed.pop(minute)  # written already: reopened, not replaced
        if tally is None:
            tally = self.minutes[key][minute] = _MinuteTally()
            if self.ask_prior and key not in self._asked:
                self._asked.add(key)
                self._unresolved[key] = (minute, at_ns)
                self._to_ask.append((key, minute))
                if key in self._resumed:
                    self._resume_first[key] = minute
        return tally

    @property
    def wants_lookups(self) -> bool:
        return bool(self._to_ask)

    def lookups(self) -> list[tuple[RateKey, int]]:
        """(key, minute) pairs whose stored rate is wanted, each handed out once."""
        out, self._to_ask = self._to_ask, []
        return out

    @property
    def unresolved(self) -> int:
        return len(self._unresolved)

    def resolve(self, key: RateKey, stored: MinuteRate | None) -> None:
        """The store's row for the key's first minute (None: there is none, or it could not be read)."""
        if key not in self._unresolved:  # discarded while it was being read
            return
        minute, at_ns = self._unresolved.pop(key)
        tally = self.minutes[key].setdefault(minute, _MinuteTally())
        if key in self._resumed:
            # Taken over: the dead worker's stored tally covers what it had stored of the redelivered
            # frames, so this run adds only the time after them (and those of their twitches the store did
            # not hold: the others were looked up and dropped). What it had received but not yet stored is
            # lost from the minute (a second or two). Without a stored tally, the redelivered time counts.
            self._resume_carried[key] = stored is not None
            if stored is not None:
                self._carry(tally, stored)
            else:
                for a, b in tally.redelivered:
                    tally.cover(a, b)
            tally.redelivered.clear()
        # Data that starts where the stored row's ends, or after, goes on from it (1 s of slack for clock
        # jitter between the end of the old run and the start of the new); data from before is the row's
        # own again (``twitchwatch replay`` of the same file), which replaces it. A row that does not say
        # where it ends is taken to run from the minute's start.
        if key not in self._resumed and stored is not None:
            stored_end = stored.monitored_s if stored.end_s is None else stored.end_s
            if (at_ns - minute) / 1e9 >= stored_end - 1.0:
                self._carry(tally, stored)
        tally.dirty = True

    @staticmethod
    def _carry(tally: _MinuteTally, row: MinuteRate) -> None:
        tally.twitches += row.twitches
        tally.carried_s += row.monitored_s
        if row.end_s is not None:
            tally.carried_end_s = max(tally.carried_end_s or 0.0, row.end_s)
        if row.rest_s is None:
            if row.monitored_s > 0:
                tally.carried_rest_s = None
        elif tally.carried_rest_s is not None:
            tally.carried_rest_s += row.rest_s

    def cover(self, key: RateKey, start_ns: int, end_ns: int, resumed: bool = False) -> None:
        """``resumed``: the data came redelivered (see ``_resumed``); matters for a key's first data only."""
        if resumed and key not in self._asked:
            self._resumed.add(key)
        t = start_ns
        while t < end_ns:
            minute = t - t % MINUTE_NS
            stop = min(end_ns, minute + MINUTE_NS)
            tally = self._tally(key, minute, t)
            carried = self._resume_carried.get(key)
            if not (resumed and self._resume_first.get(key) == minute) or carried is False:
                tally.cover(t, stop)
            elif carried is None:
                tally.redelivered.append((t, stop))  # its stored tally, being read, may count it already
            # else: the dead worker's stored tally, carried, counts it
            tally.dirty = True
            t = stop

    def carries(self, key: RateKey, at_ns: int) -> bool | None:
        """Does the stored tally carried into this minute already count a twitch at ``at_ns`` that a dead
        worker stored? Only a taken-over key's first minute carries one (True once read, None while it is
        being read); in its later minutes this run's tally replaces the stored one and must count it."""
        minute = at_ns - at_ns % MINUTE_NS
        if key not in self._resumed or self._resume_first.get(key) != minute:
            return False
        return self._resume_carried.get(key)

    def count(self, key: RateKey, at_ns: int, delta: int = 1) -> None:
        """One twitch more in its minute (``delta=-1``: one taken back, re-judged as during movement)."""
        minute = at_ns - at_ns % MINUTE_NS
        tally = self._tally(key, minute, at_ns)
        tally.twitches = max(tally.twitches + delta, 0)
        tally.dirty = True
        self._recounted.add((key, minute))

    def take(self, watermarks: dict[tuple[str, str], int] | None) -> list[MinuteRate]:
        """Minutes that ended ``RATE_GRACE_NS`` before their device's latest data and whose rest is known
        (all when None)."""
        out: list[MinuteRate] = []
        for key, minutes in self.minutes.items():
            if self._held_back(key):
                continue
            if watermarks is None:
                done = list(minutes)
            else:
                horizon = watermarks.get((key[0], key[2]), 0) - RATE_GRACE_NS
                done = [
                    m for m in minutes if m + MINUTE_NS <= horizon and self._rest_known(key, m, minutes[m])
                ]
            for m in sorted(done):
                tally = minutes.pop(m)
                out.append(tally.rate(key, m, self.rest))
                self._close(key, m, tally)
        return out

    def _close(self, key: RateKey, minute: int, tally: _MinuteTally) -> None:
        tally.freeze(key[0], key[1], self.rest)
        closed = self._closed[key]
        closed[minute] = tally
        while len(closed) > CLOSED_KEPT:
            del closed[min(closed)]

    def _rest_known(self, key: RateKey, minute: int, tally: _MinuteTally) -> bool:
        end = tally.end_ns
        return self.rest.ready(key[0], key[1], minute if end is None else end)

    def changed_open(self) -> list[MinuteRate]:
        """Running tallies of minutes still open, changed since last asked: written as they grow, so the
        dashboard divides by monitored time from the first seconds on; the final value overwrites them."""
        self._recounted = {(k, m) for k, m in self._recounted if self._held_back(k)}
        out = []
        for key, minutes in self.minutes.items():
            if self._held_back(key):
                continue
            for m, tally in sorted(minutes.items()):
                if tally.dirty:
                    tally.dirty = False
                    out.append(tally.rate(key, m, self.rest))
        return out

    def recounted_open(self) -> list[MinuteRate]:
        """Running tallies of the open minutes whose twitch count changed since last asked (a subset of
        ``changed_open``, which a later call still returns until written): what must go to the store with
        the events just counted. A key whose stored rate is still being read keeps its minutes for a call
        after ``resolve``; a minute already taken is written by ``take``'s caller."""
        out, waiting = [], set()
        for key, minute in sorted(self._recounted):
            if self._held_back(key):
                waiting.add((key, minute))
                continue
            tally = self.minutes.get(key, {}).get(minute)
            if tally is not None:
                tally.dirty = False
                out.append(tally.rate(key, minute, self.rest))
        self._recounted = waiting
        return out

    def mark_dirty(self, rates: list[MinuteRate]) -> None:
        """Tallies a failed write hands back: written again (with the next events, and at the interval)."""
        for r in rates:
            key = (r.user, r.muscle, r.device, r.source)
            tally = self.minutes.get(key, {}).get(r.minute_ns)
            if tally is not None:
                tally.dirty = True
                self._recounted.add((key, r.minute_ns))

    def requeue(self, rates: list[MinuteRate]) -> None:
        """Finished minutes a failed write hands back, to be taken again as they were: the tally each was
        taken from goes back (its spans with it, so data that comes later merges rather than adds). One
        reopened meanwhile by data for its minute holds the row already: carried onto it as well, a minute
        of 30 twitches in 40 s was stored as 45 in 60. Only a row whose tally is gone is carried."""
        for r in rates:
            key = (r.user, r.muscle, r.device, r.source)
            minutes = self.minutes[key]
            reopened = minutes.get(r.minute_ns)
            taken = self._closed.get(key, {}).pop(r.minute_ns, None)
            if reopened is not None:
                reopened.dirty = True
            elif taken is not None:
                taken.dirty = True
                minutes[r.minute_ns] = taken
            else:
                self._carry(minutes.setdefault(r.minute_ns, _MinuteTally()), r)

    def oldest_ns(self) -> int | None:
        """The start of the oldest minute still held."""
        return min((m for minutes in self.minutes.values() for m in minutes), default=None)

    def reask(self) -> None:
        """After a restore from a snapshot: the lookups that were in flight are made again."""
        self._to_ask = [(key, minute) for key, (minute, _) in self._unresolved.items()]


class Worker(PeriodicTasks):
    stats: WorkerStats  # all of the worker's counters (the periodic tasks see theirs)

    def __init__(
        self,
        target: MqttTarget,
        store: EventStore,
        *,
        user: str = "+",
        muscle_map: MuscleMap | None = None,
        client_id: str = "twitchwatch-worker",
        flush_interval: float = 0.5,
        flush_on_release: bool = True,
        batch_size: int = 1000,
        flags: FlagTask | None = None,
        segment_map: SegmentMap | None = None,
        gate: GateParams | None = None,
        ingest: Ingest | None = None,
        state_dir: Path | None = None,
        status_wait_s: float = 0.0,
        offline_grace_s: float = 0.0,
        quarantine: Quarantine | None = None,
        shutdown_write_s: float = SHUTDOWN_WRITE_S,
    ) -> None:
        self.target = target
        self.store = store
        self.user = user
        self.muscle_map = muscle_map or (lambda _d, _s, _c: None)
        self.client_id = client_id
        self.flush_interval = flush_interval
        # Events are written as soon as they are released (``_writer_loop``); False: every flush_interval.
        self.flush_on_release = flush_on_release
        self._released = asyncio.Event()  # set when events are queued for the store
        self.batch_size = batch_size
        self.quarantine = quarantine
        self.shutdown_write_s = shutdown_write_s
        self._in_flight = (0, 0)  # events and finished minutes a write thread holds right now
        self.stats = WorkerStats()
        self._streams: dict[tuple[str, str, str], _Stream] = {}
        self._prune_at = ENDED_KEPT * 5 // 4  # ``_forget_ended`` counts the streams past this many
        self._format_changes: dict[tuple[str, str, str], list[float]] = {}  # per stream: when (monotonic)
        self._ended_at: dict[tuple[str, str], int] = {}  # devices a stream of which ended: where it ended
        self._topics: dict[str, StreamKey] = {}  # raw topics already parsed (``_dispatch``)
        self._status: dict[tuple[str, str], DeviceStatus] = {}
        self._pending: list[TwitchEvent] = []
        self._fuser = Fuser()  # per user+muscle: one event per twitch however many streams watch it
        # When each muscle could be assessed: every stream's vetoes; fused events wait here to be judged.
        self._segment_map = segment_map or (lambda _device: None)
        self._rest = RestStreams(gate or GateParams(), self._segment_map, clock=time.time_ns)
        self._rates = RateBook(ask_prior=True, rest=self._rest)
        self._prior_reads: set[asyncio.Task[None]] = set()  # owned here; _finish awaits, run() cancels
        self._felt_writes: set[asyncio.Task[None]] = set()  # likewise
        self._watermark_ns: dict[tuple[str, str], int] = {}
        self._client: Client | None = None
        # Events published and not yet acknowledged by the broker: waited for (a while) before stopping.
        self._unconfirmed: list[MQTTMessageInfo] = []
        self._stop = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._rlog = RateLimitedLog(log)
        self.connected = asyncio.Event()
        self.flag_task = flags
        self.flag_sets: dict[str, FlagSet] = {}  # latest computed per user, re-published on reconnect
        self.flags_computed = asyncio.Event()  # set after each round of flag computation
        self._last_frame_wall: dict[tuple[str, str], int] = {}
        self.started_ns = time.time_ns()  # when watching began: the reference for devices never heard from
        self._ha_muscles: dict[str, frozenset[str]] = {}  # discovery configs already published
        self.ingest = ingest
        # Device time up to which a broker redelivered a device's frames: events found before it may be
        # stored already (by a worker that died before acknowledging them) and are looked up first.
        self._redelivered_until: dict[tuple[str, str], int] = {}
        self._unsure: list[TwitchEvent] = []  # events waiting for that look-up
        self._counted_keys: dict[tuple[str, str, str, str, int], None] = {}  # twitches counted, oldest first
        self._known: list[TwitchEvent] = []  # redelivered twitches found stored, their count to decide
        self._last_tick_ns = 0  # wall time the ingest clock last moved: a frame, or a quiet source
        self._ingest_ns = 0  # the ingest clock (``end_idle``): kept in checkpoints with the streams
        self.ingest_pause_ns = INGEST_PAUSE_NS
        # Frames of devices whose status has not come yet, in arrival order (``status_wait_s``).
        self.status_wait_s = status_wait_s
        self._held: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
        self._held_since: dict[tuple[str, str], float] = {}
        self._unannounced: set[tuple[str, str]] = set()  # waited for a status that did not come
        # Devices whose offline status came (``offline_grace_s``): their streams end unless frames go on.
        self.offline_grace_s = offline_grace_s
        self._offline_since: dict[tuple[str, str], float] = {}
        # The write-ahead journal and its checkpoints (processing/wal.py); None: nothing survives a kill.
        self.state_dir = state_dir
        self._journal: IngestJournal | None = None
        self._last_checkpoint = 0.0
        self._checkpoint_every = CHECKPOINT_S
        # Prior lookups answered before a kill, from the journal replayed (``_journaled_priors``): until the
        # next checkpoint holds them.
        self._priors_replayed: dict[tuple[RateKey, int], MinuteRate | None] = {}
        self._lag_seen = -float("inf")  # when ``stats.lag_ms`` was last set (monotonic)
        self._statuses_saved: dict[str, str] = {}
        # Within ``handle_many``: the streams holding queued frames, in the order they first got one.
        self._batching = False
        self._deferred: list[_Stream] = []

    # ---- lifecycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        self._recover()
        try:
            async with asyncio.TaskGroup() as tg:
                # Frames come over MQTT (subscribed here), or from another ingest; the MQTT connection
                # always carries what the worker publishes (events, flags, Home Assistant).
                tg.create_task(self._mqtt_loop(subscribe=self.ingest is None), name="worker-mqtt")
                if self.ingest is not None:
                    tg.create_task(self._ingest_loop(self.ingest), name="worker-ingest")
                tg.create_task(self._writer_loop(), name="worker-writer")
                if self.flag_task is not None:
                    tg.create_task(self._flags_loop(self.flag_task), name="worker-flags")
                    if self.flag_task.ha is not None:
                        tg.create_task(self._ha_loop(self.flag_task.ha), name="worker-ha")
        except asyncio.CancelledError:  # stopped without waiting (a second Ctrl-C)
            self._keep_unconfirmed()
            raise
        finally:
            for task in (*self._prior_reads, *self._felt_writes):  # only left when run() was cancelled
                task.cancel()
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def stop(self) -> None:
        self._stop.set()

    async def _ingest_loop(self, ingest: Ingest) -> None:
        await ingest.run(self, self._stop)
        await self._finish()

    async def _mqtt_loop(self, subscribe: bool = True) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                # Subscribed: a persistent session keeps frames while away, each acknowledged once
                # journaled. Publishing only (frames from another ingest): a clean session under a client
                # id of its own per process.
                client_of = self.target.client(
                    self.client_id,
                    clean_session=not subscribe,
                    manual_ack=subscribe and self._journal is not None,
                )
                async with client_of as client:
                    self._client = client
                    if subscribe:
                        await client.subscribe(status_filter(self.user), qos=1)
                        await client.subscribe(raw_filter(self.user), qos=1)
                        await client.subscribe(felt_filter(self.user), qos=1)
                    else:  # devices whose status went to a worker that has since died
                        await client.subscribe(status_filter(self.user), qos=1)
                    self.connected.set()
                    backoff = 1.0
                    await self._republish_flags(client)
                    log.info("worker connected to %s", self.target.display)
                    await self._read_until_stopped(client, retained_status_only=not subscribe)
                    if subscribe:
                        await self._finish()
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                if self._stop.is_set():
                    break
                log.warning("MQTT %s: %s; reconnecting in %.0f s", self.target.display, exc, backoff)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                self._client = None
        if subscribe and (self._pending or self._rates.minutes):  # stopped while disconnected: still store
            await self._finish()

    async def _read_until_stopped(self, client: Client, retained_status_only: bool = False) -> None:
        reader = asyncio.create_task(self._read(client, retained_status_only))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, stopper):
                task.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)
        if reader in done:
            reader.result()  # re-raise MqttError so the outer loop reconnects

    async def _read(self, client: Client, retained_status_only: bool = False) -> None:
        async for message in client.messages:
            # The backlog comes along: a worker behind handles each stream's queued frames in one call.
            batch = [message, *await _backlog(client, gather_s(self.behind_s()))]
            items = [(str(m.topic), payload_bytes(m.payload)) for m in batch]
            if retained_status_only:
                for topic, payload in items:
                    self._adopt_status(topic, payload)
                continue
            self.receive_many(items)
            client.ack_many(batch)

    def behind_s(self) -> float:
        """How far behind its live frames the worker is: the lag of the last one handled (``_note_lag``),
        if it was handled within the last second (old frames — a replay, a backfill — say nothing)."""
        if time.monotonic() - self._lag_seen > 1.0:
            return 0.0
        return self.stats.lag_ms / 1000

    def receive(self, topic: str, payload: bytes) -> None:
        """One message from the MQTT subscription (``receive_many``)."""
        self.receive_many([(topic, payload)])

    def receive_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Messages from the MQTT subscription, in arrival order: journaled, then handled as one batch;
        acknowledged by the caller. A felt mark is journaled with the time it arrived, so that replayed it
        is stored as it would be."""
        kept: list[tuple[str, bytes]] = []
        for topic, payload in messages:
            kept.append((topic, self._stamped(topic, payload)))
        # A message larger than any the worker accepts is refused by ``handle`` whatever it holds: it is
        # not journaled (replayed, it would be refused again). Journaled, one past the journal's record
        # limit read as a torn record on recovery, and the records after it — acknowledged — were cut off.
        self._journal_messages([m for m in kept if len(m[1]) <= MAX_MESSAGE_BYTES])
        self.handle_many([(topic, payload, False) for topic, payload in kept])

    def _stamped(self, topic: str, payload: bytes) -> bytes:
        """A felt mark with the time it arrived (``with_arrival_time``), any other message as it is. Before
        the journal and ``handle``: whatever a payload raises here is counted as ``internal`` and the
        payload goes on unchanged, for ``handle`` to refuse — an exception here would stop the read loop
        with the batch unacknowledged, and the broker would hand the same message to every restart."""
        # A frame's topic, parsed before, is not split again on this per-message path.
        if topic in self._topics or _felt_user_or_none(topic) is None:
            return payload
        try:
            return with_arrival_time(payload, time.time_ns())
        except Exception:
            self._count_rejected("internal")
            self._rlog.exception("internal", "could not time a mark on %.200r (a bug)", topic)
            return payload

    async def _finish(self) -> None:
        self._release_held(everything=True)
        self._end_offline(everything=True)
        for st in self._streams.values():
            self._end_stream(st)
        self._store_events(self._fuser.flush(), everything=True)
        self._ask_priors()
        if self._prior_reads:  # their minutes are held back until the store has answered
            await asyncio.gather(*self._prior_reads)
        if self._felt_writes:
            await asyncio.gather(*self._felt_writes)
        await self._flush(final=True)
        async with self._flush_lock:
            self._checkpoint(force=True)
        await self._confirm_published()

    async def _confirm_published(self) -> None:
        """Before the connection closes: the events published last (``_publish`` does not wait) reach the
        broker, for at most ``PUBLISHED_WAIT_S`` — paho reads their acknowledgements as the loop turns."""
        deadline = time.monotonic() + PUBLISHED_WAIT_S
        while self._client is not None and time.monotonic() < deadline:
            if not self._still_unconfirmed():
                return
            await asyncio.sleep(0.01)
        if self._unconfirmed:
            log.warning("%d event notifications unconfirmed at shutdown (stored)", len(self._unconfirmed))

    def _still_unconfirmed(self) -> list[MQTTMessageInfo]:
        """The published events the broker has not acknowledged yet (the others are forgotten)."""
        self._unconfirmed = [info for info in self._unconfirmed if not info.is_published()]
        return self._unconfirmed

    # ---- journal and checkpoints (processing/wal.py) ---------------------------------------------
    def _journal_messages(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Journal messages before they are handled and acknowledged. A journal that cannot be written (disk
        full) must not stop the worker: they are handled as without one, and that is said loudly."""
        if self._journal is None or not messages:
            return
        try:
            self._journal.append_many(messages)
        except OSError as exc:
            self.stats.journal_errors += len(messages)
            # The messages are acknowledged all the same (the worker goes on): the snapshot and the journal
            # no longer hold everything since, and are removed rather than recovered (``abandon``).
            self._journal.abandon()
            self._rlog.warning(
                "journal",
                "cannot journal a message (%s): until this is fixed, a worker killed now starts afresh and "
                "loses what it has not stored (%d messages so far)",
                exc,
                self.stats.journal_errors,
            )

    def _recover(self) -> None:
        """Open the state directory and resume: the snapshot's state, then every message journaled after
        it, through the ordinary ingestion (which also warms the detectors up), before any live frame."""
        if self.state_dir is None or self.ingest is not None:
            # From RabbitMQ a frame is acknowledged only once what it yields is stored: the queue is the
            # journal, and a partition's frames go to whichever worker holds it. A local journal would replay
            # another run's frames into this one.
            return
        journal = IngestJournal(
            self.state_dir / f"worker-{self.client_id}",
            fingerprint(_STATE_SOURCES),
            persistent_id=lambda obj: "segment_map" if obj is self._segment_map else None,
            persistent_load=self._persistent_load,
        )
        recovered = journal.open()  # JournalError: another worker holds it
        self._journal = journal
        if recovered.state is not None:
            self._restore(recovered.state)
        else:
            self._load_statuses()
        # In batches, as a worker behind takes its backlog: a long journal replays several times faster. A
        # message that fails (the one that killed the worker, say) is counted and skipped by ``handle``.
        self._priors_replayed = _journaled_priors(recovered.records)
        records = [r for r in recovered.records if r.topic != PRIOR_TOPIC]
        for at in range(0, len(records), BATCH_MAX):
            self.handle_many([(r.topic, r.payload, False) for r in records[at : at + BATCH_MAX]])
        replayed = len(records)
        self.stats.journal_replayed = replayed
        if recovered.state is not None or replayed:
            log.info(
                "resumed from %s: %s, then %d journaled message(s)",
                journal.directory,
                "the last checkpoint" if recovered.state is not None else "no usable checkpoint",
                replayed,
            )

    def _persistent_load(self, name: str) -> object:
        if name == "segment_map":
            return self._segment_map
        raise JournalError(f"unknown reference {name!r} in the worker's snapshot")

    def _state(self) -> dict[str, Any]:
        """Everything ingestion keeps between messages (not the stats: they are per run)."""
        return {
            "streams": self._streams,
            "status": self._status,
            "fuser": self._fuser,
            "rest": self._rest,
            "rates": self._rates,
            "pending": self._pending,
            "watermarks": self._watermark_ns,
            "held": self._held,
            "unannounced": self._unannounced,
            "offline": list(self._offline_since),
            "ingest_ns": self._ingest_ns,
            # Twitches counted in their minute: a re-write after a restart (a provisional twitch judged
            # during_movement) takes its count back only if the restored worker knows it was counted.
            "counted": self._counted_keys,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._streams = state["streams"]
        self._status = state["status"]
        self._fuser = state["fuser"]
        self._rest = state["rest"]
        self._rates = state["rates"]
        self._pending = state["pending"]
        self._watermark_ns = state["watermarks"]
        self._held = state["held"]
        self._unannounced = state["unannounced"]
        now = time.monotonic()
        self._held_since = dict.fromkeys(self._held, now)
        self._offline_since = dict.fromkeys(state.get("offline", ()), now)
        self._ingest_ns = state.get("ingest_ns", 0)  # a checkpoint from before it: its streams look fresh
        self._counted_keys = state.get("counted", {})
        self._rates.reask()  # lookups in flight when it died
        self._statuses_saved = self._statuses_json()

    def _checkpoint(self, force: bool = False) -> None:
        """Snapshot the ingestion state (call with the flush lock held: no write is in flight, so nothing
        taken from the book is missing from it). At most every ``checkpoint_interval`` unless forced."""
        journal = self._journal
        now = time.monotonic()
        if journal is None or (not force and now - self._last_checkpoint < self._checkpoint_every):
            return
        if self._felt_writes and not force:
            # A mark being stored is not in the state: the journal that holds it must outlive the write.
            return
        self._last_checkpoint = now
        try:
            journal.checkpoint(self._state())
            self._priors_replayed.clear()  # resolved in the state now; their records went with the journal
            self._checkpoint_every = checkpoint_interval(time.monotonic() - now)
            statuses = self._statuses_json()
            if statuses != self._statuses_saved:
                write_json_atomically(journal.directory / "devices.json", statuses)
                self._statuses_saved = statuses
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
            # The journal keeps everything meanwhile: it only grows, and a restart replays more of it.
            self.stats.journal_errors += 1
            self._rlog.warning("checkpoint", "cannot write the worker's checkpoint: %r", exc)

    def _statuses_json(self) -> dict[str, str]:
        return {f"{u}/{d}": s.to_json().decode() for (u, d), s in self._status.items()}

    def _load_statuses(self) -> None:
        """Without a usable snapshot (another version wrote it), at least every device's muscles."""
        if self._journal is None:
            return
        path = self._journal.directory / "devices.json"
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            for key, text in saved.items():
                user, _, device = key.partition("/")
                self._status[(user, device)] = DeviceStatus.from_json(text.encode())
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError, StatusError) as exc:
            log.error("cannot read the devices' statuses in %s (%s): muscles are learnt again", path, exc)
            return
        self._statuses_saved = self._statuses_json()

    # ---- frames waiting for their device's status -------------------------------------------------
    def _must_wait(self, user: str, device: str, stream: str) -> bool:
        key = (user, device)
        if key in self._held:
            return True  # behind frames already waiting: order is kept
        if self.status_wait_s <= 0 or key in self._status or key in self._unannounced:
            return False
        return self.muscle_map(device, stream, 0) is None

    def _hold(self, user: str, device: str, stream: str, payload: bytes) -> None:
        key = (user, device)
        if key not in self._held:
            self._held[key] = []
            self._held_since[key] = time.monotonic()
        self._held[key].append((stream, payload))
        self.stats.frames_held += 1

    def _release_held(self, key: tuple[str, str] | None = None, everything: bool = False) -> None:
        """Process waiting frames: a device's once its status came (``key``); every device that waited
        ``status_wait_s`` (or all, ``everything``), named after their channels from then on."""
        now = time.monotonic()
        if key is not None:
            keys = [key] if key in self._held else []
        else:
            keys = [
                k for k, since in self._held_since.items() if everything or now - since >= self.status_wait_s
            ]
            if keys:
                self._rlog.warning(
                    "unannounced",
                    "no status from %s within %.0f s: its channels are named after where they come from",
                    _some(f"{u}/{d}" for u, d in keys),
                    self.status_wait_s,
                )
            self._unannounced.update(k for k in keys if k not in self._status)
        for k in keys:
            frames = self._held.pop(k)
            self._held_since.pop(k, None)
            for stream, payload in frames:
                self._on_frame(k[0], k[1], stream, payload)

    # ---- ingest (synchronous, on the event loop; numpy per frame is sub-millisecond) -------------
    def handle(self, topic: str, payload: bytes, redelivered: bool = False) -> Receipt:
        """One message of any source. Whatever it holds, it cannot stop the worker: a message that breaks a
        limit is counted per kind, logged and dropped (``_reject``); anything else it raises is a bug,
        counted as ``internal`` and logged with its traceback, and the worker goes on with the next.

        For a frame of a stream a detector here takes, its stream's key (processed, or recognised as a
        duplicate by its sequence number): the source acknowledges it once ``ack_horizons`` has passed
        its end. ``redelivered``: the broker delivered it before (to this worker or one that died), so
        what it yields may be stored already."""
        try:
            return self._dispatch(topic, payload, redelivered)
        except Exception:
            self._count_rejected("internal")
            self._rlog.exception(
                "internal", "dropped a message on %.200r after an unexpected error (a bug)", topic
            )
            return None

    def handle_many(self, messages: Sequence[tuple[str, bytes, bool]]) -> list[Receipt]:
        """Messages (topic, payload, redelivered) in arrival order, each as ``handle`` would, with one
        difference in cost only: a stream's frames in the batch go through its detector in one call, at
        the end of the batch, and the rest gate, fusion and the writer hear of them once. A worker that has
        fallen behind takes its backlog this way and catches up; one that keeps up, 20 ms of frames at a time.

        The events are the same: a detector's events do not depend on how its samples are chunked
        (tests/test_detector_chunking.py), and everything that could see a stream's state between two
        of its frames — a status, a felt mark, a gap or a new stream ending the old one — first runs the
        frames queued before it (``_run_deferred``, ``_end_stream``)."""
        if self._batching:  # re-entered (a status releasing held frames): already batching
            return [self.handle(topic, payload, again) for topic, payload, again in messages]
        if len(messages) > 1:
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(messages))
        self._batching = True
        try:
            receipts: list[Receipt] = []
            for topic, payload, again in messages:
                if topic not in self._topics:  # not a frame of a known stream: it may see their state
                    self._run_deferred()
                receipts.append(self.handle(topic, payload, again))
            return receipts
        finally:
            self._batching = False
            self._run_deferred()

    def _run_deferred(self) -> None:
        """Run the frames queued in this batch through their detectors, stream by stream, then release what
        fusion and the rest gate can."""
        if not self._deferred:
            return
        streams, self._deferred = self._deferred, []
        for st in streams:
            try:
                self._run_queued(st)
            except Exception:
                self._count_rejected("internal")
                self._rlog.exception(
                    "internal", "dropped frames of %s/%s/%s after an unexpected error (a bug)", *st.key
                )
        try:  # as in ``handle``: nothing a batch raises stops the worker
            self._store_events(self._fuser.release())
            if self._rates.wants_lookups:
                self._ask_priors()
        except Exception:
            self._count_rejected("internal")
            self._rlog.exception("internal", "could not release the events of a batch (a bug)")

    def _run_queued(self, st: _Stream) -> None:
        chunks, st.queued = st.queued, []
        if chunks:
            self._detect(st, chunks[0] if len(chunks) == 1 else np.concatenate(chunks), st.queued_end_ns)

    def _detect(self, st: _Stream, values: FloatArray, end_ns: int) -> None:
        """A stream's samples, up to ``end_ns``, through its detector: events to fusion, vetoes and
        progress to the rest gate."""
        detections = st.detector.process(values)
        if detections:
            self._emit(st, detections)
        self._report_rest(st)
        self._fuser.advance(st.key, end_ns)

    def _reject(self, exc: RejectedError, where: str) -> None:
        self._count_rejected(exc.kind)
        # One rate-limited line per kind: a flood of one fault never hides the first of another.
        self._rlog.warning(exc.kind, "dropped a message on %s [%s]: %s", where, exc.kind, exc)

    def _count_rejected(self, kind: str) -> None:
        self.stats.rejected[kind] = self.stats.rejected.get(kind, 0) + 1

    def _dispatch(self, topic: str, payload: bytes, redelivered: bool) -> Receipt:
        raw = self._topics.get(topic)  # a frame's topic, parsed before: (user, device, stream)
        if raw is not None:
            return self._on_raw(*raw, payload, redelivered)
        try:
            felt_by = felt_user(topic)
        except TopicError as exc:
            self.stats.bad_topics += 1
            self._reject(exc, f"{topic[:200]!r}")
            return None
        if felt_by is not None:
            self._on_felt(felt_by, payload, redelivered)
            return None
        try:
            t = Topic.parse(topic)
        except TopicError as exc:
            self.stats.bad_topics += 1
            self._reject(exc, f"{topic[:200]!r}")
            return None
        if t.kind == "status":
            self._on_status(t, payload)
        elif t.kind == "raw" and t.stream is not None:
            if len(self._topics) >= TOPICS_KEPT:
                self._topics.clear()  # a flood of made-up topics costs parsing, never memory
            self._topics[topic] = (t.user, t.device, t.stream)
            return self._on_raw(t.user, t.device, t.stream, payload, redelivered)
        return None

    def _on_raw(self, user: str, device: str, stream: str, payload: bytes, redelivered: bool) -> Receipt:
        # Over MQTT a frame may come before its device's retained status (a worker restarting takes its
        # queued frames first): it waits for it, journaled. A partition queue keeps each device's status
        # ahead of its frames, and a frame is acknowledged only once what it yields is stored.
        if self.ingest is None and self._must_wait(user, device, stream):
            self._hold(user, device, stream, payload)
            return None
        return self._on_frame(user, device, stream, payload, redelivered)

    def _adopt_status(self, topic: str, payload: object) -> None:
        """A device's retained status, for a device this worker has no status of yet (its partition moved
        here after the status went to another worker). Statuses in the partition's own order win."""
        try:
            t = Topic.parse(topic)
        except TopicError:
            return
        if t.kind == "status" and (t.user, t.device) not in self._status and isinstance(payload, bytes):
            self._on_status(t, payload)

    @property
    def busy(self) -> bool:
        """Felt marks are still being stored."""
        return bool(self._felt_writes)

    def ack_horizons(self) -> dict[StreamKey, int] | None:
        """Per stream, the device time before which everything derived from its frames has been handed
        to the writer: what its detector has settled, bounded by the oldest event still held anywhere
        (fusion, the rest gate, the look-up of redelivered events, the writer's queue). None while a
        minute's stored rate is still being read (its tallies are held back from the writer). After the
        next completed flush, frames ending before their stream's horizon are stored."""
        if self._rates.unresolved:
            return None
        # Per user: an event is derived from its own user's frames only. One floor for everyone let one
        # wearer's twitch, held for a second of its slow device's time, hold back every user's acks.
        floors: dict[str, int] = {}
        held = (self._fuser.held_events(), self._rest.held_events(), self._pending, self._unsure)
        for e in itertools.chain.from_iterable(held):
            if e.start_ns < floors.get(e.user, NEVER_NS):
                floors[e.user] = e.start_ns
        return {
            key: floor if st.ended else min(floor, st.time_of(st.detector.settled))
            for key, st in self._streams.items()
            for floor in (floors.get(key[0], NEVER_NS),)
        }

    async def flush_stored(self) -> None:
        """Write everything handed to the writer so far (retried until the store takes it)."""
        await self._flush(final=False)

    async def drain(self) -> None:
        """End every stream and store all it yielded (a source stopping)."""
        await self._finish()

    def end_idle(self, idle_ns: int) -> None:
        """End streams whose latest frame came more than ``idle_ns`` of the ingest clock ago: a device that
        went away without an offline status must not hold its last events, and the acknowledgement of its
        last frames, for ever. Frames that come later start a new stream.

        The ingest clock runs while frames arrive, or while the source says nothing waits for this worker
        (``source_quiet``); a pause with neither counts ``INGEST_PAUSE_NS`` at most: while nothing arrives
        at all (a broker restarting, this worker stopped, its connection down) every stream is as silent
        as the others, and ending them would blind their detectors for nothing. Judged by the wall clock,
        or by the latest frame of any stream, the first batch after such a pause ended every stream not in
        it — their frames were waiting in the broker — and a twitch in the new detectors' warm-up was lost
        (tests/test_scale.py, a broker restart)."""
        now = self._ingest_ns
        idle = [st for st in self._streams.values() if not st.ended and now - st.last_ingest_ns > idle_ns]
        for st in idle:
            self._end_stream(st)
        if idle:
            self._store_events(self._fuser.release())

    def detach_streams(self) -> None:
        """The source lost its connection: the frames it had not acknowledged went back to their queues,
        and the broker may give them, and the partitions after them, to another worker. Until a stream is
        heard of again here (any frame, a redelivered one too, or its device's status), what it would
        write of its minutes is held back; if it is ended before (idle, shutdown), it is dropped instead
        of finished — its detector's last events, the events of its device still held and its minutes'
        tallies are the other worker's to write, from the same frames. Finished here as well, a stale
        partial tally overwrote that worker's complete minute."""
        for st in self._streams.values():
            if not st.ended and not st.detached:
                st.detached = True
                self._rates.freeze(self._rate_keys(st))

    def _attach(self, user: str, device: str, stream: str | None = None) -> None:
        """A detached stream (of the device; ``stream``: that one only) is heard of again: still this
        worker's."""
        for st in self._streams.values():
            if st.detached and (st.user, st.device) == (user, device) and stream in (None, st.stream):
                st.detached = False
                self._rates.thaw(self._rate_keys(st))

    def _hand_over(self, st: _Stream) -> None:
        """End a detached stream without finishing it: another worker has its frames (``detach_streams``)."""
        keys = self._rate_keys(st)  # first: worked out afresh, they would register it with the fuser again
        st.ended = True
        st.queued = []
        self._rest.drop(st.key)
        self._fuser.drop(st.user, st.device)
        self._rates.discard(keys)
        self.stats.streams_handed_over += 1
        log.info(
            "%s/%s/%s: not heard of since the connection was lost; left to the worker that has its frames",
            *st.key,
        )

    def source_quiet(self) -> None:
        """The source is connected, could be sent more, and has been sent nothing since it last called
        this: nothing waits for this worker in the broker, so the silence is the devices', and the ingest
        clock runs on. Without it a worker whose streams all fall silent at once — a lone wearer's device
        switched off without an offline status — never ended them: their last events stayed in the
        detectors and their last frames unacknowledged. Each call counts at most ``ingest_pause_ns``, as
        a pause between frames does: one made just after this worker was stopped or starved, before its
        deliveries were read, ends nothing."""
        self._tick(time.time_ns())

    def _tick(self, now_ns: int) -> None:
        if self._last_tick_ns:
            self._ingest_ns += min(max(now_ns - self._last_tick_ns, 0), self.ingest_pause_ns)
        self._last_tick_ns = now_ns

    def _on_felt(self, user: str, payload: bytes, redelivered: bool = False) -> None:
        """A felt twitch marked from a phone or Home Assistant: a journal entry, stored off the event loop
        and retried like every write (processing/felt.py). ``redelivered``: a worker that died may have
        stored it already (``_store_felt``)."""
        try:
            received_ns = time.time_ns()
            entry = felt_entry(user, payload, received_ns)
        except FeltError as exc:
            self.stats.bad_felt += 1
            self._rlog.warning("felt", "ignoring a felt mark of %s: %s", user, exc)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous caller: store it now
            self.store.add_journal_entry(entry)
            self.stats.felt_marks += 1
            return
        once = redelivered and entry.time_ns == received_ns  # a mark of no time of its own, delivered again
        task = loop.create_task(self._store_felt(entry, once), name="worker-felt")
        self._felt_writes.add(task)
        task.add_done_callback(self._felt_writes.discard)

    async def _store_felt(self, entry: JournalEntry, once: bool = False) -> None:
        """``once``: a mark without a time of its own that the broker delivered again — a worker killed
        after storing it and before acknowledging it. It gets the time it arrived here, hence a new id: it
        was stored twice (RabbitMQ's path has no journal to keep its first arrival). A felt mark of the
        same muscle stored in the ``FELT_REDELIVERY_S`` before is taken for it."""
        while True:
            try:
                if once and await asyncio.to_thread(self._felt_stored_before, entry):
                    self.stats.duplicates += 1
                    return
                await asyncio.to_thread(self.store.add_journal_entry, entry)
            except StoreRejected as exc:  # the same write fails again: retried, it would hold the rest up
                self.stats.felt_refused += 1
                log.error("a felt mark the store refuses is not stored (%s): %s", exc, entry)
                return
            except StoreError as exc:
                if self._stop.is_set():
                    log.error("a felt mark at %s was not stored at shutdown: %s", entry.time_ns, exc)
                    return
                self.stats.store_errors += 1
                self._rlog.warning("felt", "cannot store a felt mark, retrying: %s", exc)
                await self._sleep_or_stop(1.0)
                continue
            self.stats.felt_marks += 1
            return

    def _felt_stored_before(self, entry: JournalEntry) -> bool:
        since = entry.time_ns - FELT_REDELIVERY_S * 1_000_000_000
        stored = self.store.journal_entries(since, entry.time_ns + 1, entry.user)
        return any(e.factor is Factor.FELT and e.muscle == entry.muscle for e in stored)

    def _on_status(self, t: Topic, payload: bytes) -> None:
        if not payload:  # a cleared retained status
            self._status.pop((t.user, t.device), None)
            self._status_changed(t.user, t.device)
            return
        try:
            status = DeviceStatus.from_json(payload)
        except RejectedError as exc:  # the device's previous status, if any, stays in force
            self.stats.bad_status += 1
            self._reject(exc, f"{t.user}/{t.device}/status")
            return
        key = (t.user, t.device)
        self._attach(t.user, t.device)
        if status.state != "offline":
            self._offline_since.pop(key, None)  # back (a will fired by a restarted broker, then this)
        previous = self._status.get(key)
        if previous is not None and status.session_id != previous.session_id:
            self._restart_device(t.user, t.device)  # a new run: its sequence numbers start over
        elif status.state == "offline" and self.offline_grace_s > 0:
            self._offline_since[key] = time.monotonic()  # ended unless its frames go on (_end_offline)
        elif status.state == "offline":
            self._end_device(t.user, t.device)  # its streams ended: they hold no muscle's rest back
        if previous is not None and not status.streams:
            # An offline status lists no streams, but events the detectors release at the end of the
            # stream still need the channels' muscles.
            status = dataclasses.replace(status, streams=previous.streams)
        self._status[key] = status
        self._status_changed(t.user, t.device)
        self._unannounced.discard(key)
        self._release_held(key)

    def _end_offline(self, everything: bool = False) -> None:
        """End the streams of devices offline for ``offline_grace_s`` with no frame since. The grace is for
        a broker restarted with its sessions: it fires the publishers' wills (offline) although they
        reconnect and go on, and ending their streams would cost each a second of warm-up."""
        now = time.monotonic()
        for key, since in list(self._offline_since.items()):
            if everything or now - since >= self.offline_grace_s:
                del self._offline_since[key]
                self._end_device(*key)

    def _restart_device(self, user: str, device: str) -> None:
        for key in [k for k in self._streams if k[:2] == (user, device)]:
            self._end_stream(self._streams.pop(key))
        self._store_events(self._fuser.release())

    def _end_device(self, user: str, device: str) -> None:
        for key, st in self._streams.items():
            if key[:2] == (user, device):
                self._end_stream(st)
        self._store_events(self._fuser.release())

    def _end_stream(self, st: _Stream) -> None:
        """The stream's detector releases what it holds, and the stream stops reporting to the rest gate.
        Its record stays until replaced, so frames that follow are still checked for gaps."""
        if st.ended:
            return
        if st.detached:
            self._hand_over(st)
            return
        self._run_queued(st)  # its frames of this batch first
        st.ended = True
        self._emit(st, st.detector.finish())
        st.detector = _Finished(st.detector.lanes, st.detector.settled)
        self._rest.end(st.key)
        device = (st.user, st.device)
        self._ended_at[device] = max(self._ended_at.get(device, 0), st.next_t_ns)

    def _close_ended_devices(self) -> None:
        """Once a device's last stream has ended, its open minutes are final: its watermark moves past the
        last one, so they are written and let go (at the next flush). A minute closed only when the
        device's own data moved past it, so a device that went offline kept its last minute open until
        shutdown, and with it the floor below which vetoes are pruned — for every user: the gate's vetoes,
        and the time each check of them took, grew for good. Should it come back within that minute, the
        minute is reopened as any written minute is (``RateBook._closed``)."""
        if not self._ended_at:
            return
        live = {(st.user, st.device) for st in self._streams.values() if not st.ended}
        for device, end in self._ended_at.items():
            past = end + MINUTE_NS + RATE_GRACE_NS
            if device not in live and past > self._watermark_ns.get(device, 0):
                self._watermark_ns[device] = past
        self._ended_at.clear()

    def _forget_ended(self) -> None:
        """At most about ``ENDED_KEPT`` ended streams' records are kept (each tells a frame that follows it
        from a gap or a duplicate): beyond, the longest silent go, and a frame of one starts it anew. Asked
        at every flush; the streams are counted only once there are a quarter more than that."""
        if len(self._streams) < self._prune_at:
            return
        ended = sorted((st.last_ingest_ns, k) for k, st in self._streams.items() if st.ended)
        for _, k in ended[: max(0, len(ended) - ENDED_KEPT)]:
            del self._streams[k]
            self._format_changes.pop(k, None)
        self._prune_at = len(self._streams) + ENDED_KEPT // 4

    def _on_frame(
        self, user: str, device: str, stream: str, payload: bytes, redelivered: bool = False
    ) -> Receipt:
        self._offline_since.pop((user, device), None)  # it goes on: that offline was not the end
        try:
            check_payload_size(payload, MAX_FRAME_BYTES, "frame.size")  # before decoding copies it
            frame = decode(payload)
        except RejectedError as exc:
            self.stats.bad_frames += 1
            self._reject(exc, f"{user}/{device}/raw/{stream}")
            return None
        kind = self._signal(user, device, stream, frame.unit)
        if kind is None:
            return None  # a stream no detector here understands
        try:
            check_frame(
                kind,
                sample_rate=frame.sample_rate,
                channels=frame.channels,
                samples=frame.samples,
                t0_ns=frame.t0_ns,
            )
        except RejectedError as exc:
            self.stats.bad_frames += 1
            self._reject(exc, f"{user}/{device}/raw/{stream}")
            return None
        end = frame.t0_ns + frame.duration_ns
        if redelivered:
            self.stats.redelivered_frames += 1
            self._redelivered_until[(user, device)] = max(self._redelivered_until.get((user, device), 0), end)
        key = (user, device, stream)
        receipt = (key, end)
        st = self._stream_for(user, device, stream, frame, kind)
        if st is None:
            return receipt
        now = time.time_ns()
        self._tick(now)
        st.last_ingest_ns = self._ingest_ns
        self._note_lag(user, device, now - end)
        self.stats.frames += 1
        self.stats.samples += frame.samples * frame.channels
        self._last_frame_wall[(user, device)] = now
        values = frame.values()
        st.next_t_ns = end
        st.last_seq = frame.sequence
        self._cover(st, frame.t0_ns, end)
        device_key = (user, device)
        if end > self._watermark_ns.get(device_key, 0):
            self._watermark_ns[device_key] = end
        if self._batching:
            if not st.queued:
                self._deferred.append(st)
            st.queued.append(values)
            st.queued_end_ns = end
            return receipt
        self._detect(st, values, end)
        self._store_events(self._fuser.release())
        if self._rates.wants_lookups:
            self._ask_priors()
        return receipt

    def _note_lag(self, user: str, device: str, lag_ns: int) -> None:
        """A worker that falls behind says so: frames of live data (recorded within ``LIVE_NS``; not a
        backfill or a replay of old data) handled more than ``LAG_WARN_NS`` after they ended are counted and
        logged, before a broker's queue limit drops frames for it."""
        if not 0 <= lag_ns < LIVE_NS:
            return
        self.stats.lag_ms = lag_ns // 1_000_000
        self._lag_seen = time.monotonic()
        if lag_ns > LAG_WARN_NS:
            self.stats.behind += 1
            self._rlog.warning(
                "lag",
                "falling behind: a frame of %s/%s handled %.1f s after it ended",
                user,
                device,
                lag_ns / 1e9,
            )

    def _signal(self, user: str, device: str, stream: str, unit: Unit) -> StreamKind | None:
        """The detector a stream needs: from its unit, or for a unitless stream (the Myo's raw EMG comes
        in device counts, its orientation as a unitless quaternion) from what the device's status says the
        stream carries. Gyroscope and orientation streams get the movement detector (they only veto)."""
        kind = kind_of_unit(unit)
        if kind is None and unit is Unit.UNITLESS:
            status = self._status.get((user, device))
            info = status.streams.get(stream) if status is not None else None
            kind = stream_kind(info.signal) if info is not None else None
        return kind

    def _stream_for(
        self, user: str, device: str, stream: str, frame: Frame, kind: StreamKind
    ) -> _Stream | None:
        key = (user, device, stream)
        st = self._streams.get(key)
        if st is not None and st.detached:
            self._attach(user, device, stream)
        if key in self._format_changes and self._flapping(key, frame):
            if st is not None:
                self._end_stream(st)  # it holds nothing back meanwhile
            return None
        if st is not None and not st.ended and not st.matches(frame):
            self._note_change(st, frame)
        if st is not None and st.matches(frame):
            step = continuity(st.last_seq, st.next_t_ns, frame)
            if step.step == "duplicate":
                self.stats.duplicates += 1  # a QoS-1 redelivery or a reordered frame: already processed
                return None
            if step.bridgeable and not st.ended:
                return st
            if step.missing:
                gap = step.missing
                self.stats.gaps += 1
                self.stats.missing_frames += gap
                self._rlog.warning(
                    "gap", "%s/%s/%s lost %d frame(s) before #%d", user, device, stream, gap, frame.sequence
                )
            self._end_stream(st)  # the filters' state is meaningless across a gap
        st = _Stream(
            user,
            device,
            stream,
            kind,
            frame.sample_rate,
            frame.channels,
            frame.unit,
            self._detector(kind, frame.sample_rate, frame.channels),
            frame.t0_ns,
            frame.sequence,
            frame.t0_ns,
        )
        self._streams[key] = st
        muscles = [
            None if kind in MOTION_SIGNALS else self.muscle(st, lane) for lane in range(st.detector.lanes)
        ]
        warmup_ns = round(warmup_samples(st.detector) * 1e9 / st.rate)
        reach_ns = math.ceil(reach_back_samples(st.detector) * 1e9 / st.rate)  # ``time_of`` is linear
        self._rest.start(st.key, kind, muscles, st.seg_t0_ns, warmup_ns, reach_ns)
        return st

    def _note_change(self, st: _Stream, frame: Frame) -> None:
        """A stream's frames changed rate, channels or unit: its detector starts again, and its muscles are
        blind for the warm-up — counted and said (it was silent)."""
        self._format_changes.setdefault(st.key, []).append(time.monotonic())
        self.stats.format_changes += 1
        was, then = (st.rate, st.channels, st.unit.name), (frame.sample_rate, frame.channels, frame.unit.name)
        where = f"{st.user}/{st.device}/raw/{st.stream}"
        self._rlog.warning("format", "%s changed format %s → %s: its detector starts again", where, was, then)

    def _flapping(self, key: tuple[str, str, str], frame: Frame) -> bool:
        """More than ``FORMAT_CHANGES`` in a minute is a source flapping between formats (two publishers
        under one name, a broken one): each start vetoed its muscles for a warm-up anew, and another
        sensor's twitches on them were lost. Its frames are refused until a minute has passed without
        a change (a refused frame is none), so it costs its muscles a few warm-ups a minute at most."""
        now = time.monotonic()
        recent = [t for t in self._format_changes[key] if now - t < 60.0]
        if not recent:
            del self._format_changes[key]
            return False
        self._format_changes[key] = recent
        if len(recent) < FORMAT_CHANGES:
            return False
        self.stats.bad_frames += 1
        why = f"its format changed {len(recent)} times within a minute (now {frame.sample_rate:g} Hz, "
        why += f"{frame.channels} channels): a flapping source, refused until it keeps one for a minute"
        self._reject(RejectedError("frame.format_flapping", why), f"{key[0]}/{key[1]}/raw/{key[2]}")
        return True

    @staticmethod
    def _detector(kind: StreamKind, rate: float, channels: int) -> StreamDetector:
        if kind == "gyro" or kind == "orientation":
            return MotionDetector(kind, rate, channels)
        return StreamingDetector(kind, rate, channels)

    def _source(self, st: _Stream) -> tuple[Source, str]:
        status = self._status.get((st.user, st.device))
        if status is None:
            return "live", ""
        return ("replay" if status.source == "replay" else "live"), status.session_id

    def muscle(self, st: _Stream, channel: int) -> str:
        configured = self.muscle_map(st.device, st.stream, channel)
        if configured:
            return configured
        status = self._status.get((st.user, st.device))
        info = status.streams.get(st.stream) if status else None
        if info and channel < len(info.channels) and info.channels[channel]:
            return info.channels[channel]
        return f"{st.device}.{st.stream}.ch{channel}"

    def _ask_priors(self) -> None:
        """Look up the stored rate of each key's first minute off the event loop: frames keep flowing while
        a slow or unreachable store answers. Without a running loop (a synchronous caller) it is read now."""
        lookups = [
            (key, minute) for key, minute in self._rates.lookups() if not self._replay_prior(key, minute)
        ]
        if not lookups:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            for key, minute in lookups:
                try:
                    stored = self._stored_rate(key, minute)
                except StoreError as exc:
                    self._rlog.warning("prior", "cannot read the stored rate of %s: %s", key, exc)
                    stored = None
                self._resolve_prior(key, minute, stored)
            return
        for key, minute in lookups:
            task = loop.create_task(self._read_prior(key, minute), name=f"worker-prior-{key[1]}")
            self._prior_reads.add(task)
            task.add_done_callback(self._prior_reads.discard)

    async def _read_prior(self, key: RateKey, minute_ns: int) -> None:
        """Retried until it succeeds, as writes are; once stopping, one more try, then the minute is written
        from this run's tally alone (logged: the stored count for that minute may be replaced)."""
        while True:
            try:
                stored = await asyncio.to_thread(self._stored_rate, key, minute_ns)
            except StoreError as exc:
                if self._stop.is_set():
                    log.error(
                        "stored rate of %s at %s unreadable at shutdown (%s): the minute is written from "
                        "this run's data alone",
                        key,
                        minute_ns,
                        exc,
                    )
                    self._resolve_prior(key, minute_ns, None)
                    return
                self.stats.store_errors += 1
                self._rlog.warning("prior", "cannot read the stored rate of %s, retrying: %s", key, exc)
                await self._sleep_or_stop(1.0)
                continue
            self._resolve_prior(key, minute_ns, stored)
            return

    def _replay_prior(self, key: RateKey, minute_ns: int) -> bool:
        """Resolve a lookup the run before a kill had answered (the journal holds it): whether it was."""
        if (key, minute_ns) not in self._priors_replayed:
            return False
        self._rates.resolve(key, self._priors_replayed.pop((key, minute_ns)))
        return True

    def _resolve_prior(self, key: RateKey, minute_ns: int, stored: MinuteRate | None) -> None:
        """The store's answer, journaled before the book takes it and any tally built on it is written: the
        same answer then serves a replay after a kill (``PRIOR_TOPIC``)."""
        self._journal_messages([_prior_record(key, minute_ns, stored)])
        self._rates.resolve(key, stored)

    def _stored_rate(self, key: RateKey, minute_ns: int) -> MinuteRate | None:
        """The store's row for one key's minute (raises ``StoreError``)."""
        return stored_minute(self.store, *key, minute_ns)

    def _cover(self, st: _Stream, start_ns: int, end_ns: int) -> None:
        resumed = start_ns < self._redelivered_until.get((st.user, st.device), 0)
        for rate_key in self._rate_keys(st):
            self._rates.cover(rate_key, start_ns, end_ns, resumed)

    def _rate_keys(self, st: _Stream) -> list[RateKey]:
        """The minute-rate key of each lane, the lanes registered with the fuser: worked out once per
        stream and again after its device's status changed (muscle names, source)."""
        keys = st.rate_keys
        if keys is None:
            kind = st.kind
            if kind == "gyro" or kind == "orientation":
                return []  # a movement stream watches no muscle: it only vetoes
            source, _ = self._source(st)
            keys = []
            for lane in range(st.detector.lanes):
                muscle = self.muscle(st, lane)
                self._fuser.register((st.user, muscle), st.key, kind)
                keys.append((st.user, muscle, st.device, source))
            st.rate_keys = keys
        return keys

    def _status_changed(self, user: str, device: str) -> None:
        for st in self._streams.values():
            if st.user == user and st.device == device:
                st.rate_keys = None

    def _emit(self, st: _Stream, detections: Sequence[Detection]) -> None:
        """Detections become events and wait in the fuser for their muscle's other streams; activity and
        artifacts also veto (the rest gate). A movement stream's detections are vetoes only."""
        source, session = self._source(st)
        for d in detections:
            if is_veto(d.kind) and d.vetoes:  # a small unit's repeat is not the muscle at work
                self._veto(st, d)
            if st.kind == "gyro" or st.kind == "orientation":
                continue
            event = TwitchEvent(
                st.user,
                self.muscle(st, d.lane),
                st.device,
                st.stream,
                d.lane,
                d.kind,
                st.time_of(d.start),
                st.time_of(d.end),
                round(d.peak, 6),
                st.unit.symbol,
                d.confidence,
                source,
                session,
                round(d.dominant_hz, 1),
                d.reason,
            )
            self.stats.events_detected += 1
            self._fuser.add(st.key, st.kind, event)
        self.stats.events_merged = self._fuser.merged

    def _veto(self, st: _Stream, d: Detection) -> None:
        start, end = st.time_of(d.start), st.time_of(d.end)
        reason = veto_reason(st.kind, d.kind, (end - start) / 1e9, self._where(st, d.lane), d.reason)
        if d.veto_span is None:
            self._rest.veto(st.key, d.lane, start, end, reason)
        else:  # exactly where the detector saw activity (its context and hold), no guards
            a, b = st.time_of(d.veto_span[0]), st.time_of(d.veto_span[1])
            self._rest.veto(st.key, d.lane, a, b, reason, guard=False)
        self.stats.vetoes += 1

    def _report_rest(self, st: _Stream) -> None:
        """After a frame: how far the stream's vetoes are settled, and the activity still going on."""
        spans = [
            (lane, st.time_of(a), st.time_of(b), self._ongoing(st, lane, (b - a) / st.rate))
            for lane, a, b in st.detector.open_activity()
        ]
        self._rest.progress(st.key, st.time_of(st.detector.settled), spans)

    @staticmethod
    def _where(st: _Stream, lane: int) -> str:
        return f"{st.device}/{st.stream}" + (f" ch{lane}" if st.detector.lanes > 1 else "")

    def _ongoing(self, st: _Stream, lane: int, seconds: float) -> str:
        return veto_reason(st.kind, EventKind.SUSTAINED, seconds, self._where(st, lane), ongoing=True)

    def _store_events(self, events: list[TwitchEvent], everything: bool = False) -> None:
        """Fused events wait for the rest gate to judge them; then, in order, they are queued for the store
        and counted in their minute (``_accept``), or looked up first when they come from redelivered frames
        (``everything``: at shutdown, judge all now)."""
        self._rest.hold(events)
        for event in self._rest.release(everything):
            if event.start_ns < self._redelivered_until.get((event.user, event.device), 0):
                self._unsure.append(event)  # looked up in the store before the writer takes it
            else:
                self._accept(event)
        self._rest.counted()  # the gate's list of final twitches: counted here as they are queued (below)
        self.stats.twitches_retracted = self._rest.retracted

    def _accept(self, event: TwitchEvent) -> None:
        """Queue an event for the store and keep its minute's count equal to the twitches queued: a twitch
        is counted as it is written (its first, provisional write), and taken back when its re-write says
        during movement. A minute's tally and its events then go to the store in the same flush, so the
        stored tally always counts exactly the stored twitches — what a worker taking over a partition
        relies on when it drops redelivered events the store already holds."""
        self._pending.append(event)
        if self.flush_on_release:
            self._released.set()
        if event.kind.is_twitch:
            self._count(event)
        else:
            key = _event_key(event)
            if key in self._counted_keys:  # a re-write of a counted twitch: take it back
                del self._counted_keys[key]
                self._rates.count(_rate_key(event), event.start_ns, -1)
            if event.kind is EventKind.DURING_MOVEMENT:
                self.stats.events_during_movement += 1

    def _count(self, event: TwitchEvent) -> None:
        """One twitch more in its minute, once per event however often it is written."""
        key = _event_key(event)
        if key in self._counted_keys:
            return
        self._counted_keys[key] = None
        self._rates.count(_rate_key(event), event.start_ns)
        while len(self._counted_keys) > COUNTED_KEYS_KEPT:  # re-writes come within seconds
            del self._counted_keys[next(iter(self._counted_keys))]

    def _not_stored(self, events: list[TwitchEvent]) -> tuple[list[TwitchEvent], list[TwitchEvent]]:
        """Of events found in redelivered frames, those the store does not hold yet, and the stored copies
        of the others: a worker that died after storing them, before the broker had their frames'
        acknowledgement, stored one of the same muscle and device overlapping it (within ``SAME_EVENT_NS``;
        a detector started afresh may place its edges a block apart). Raises ``StoreError``."""
        new, stored = [], []
        for e in events:
            query = EventQuery(
                e.start_ns - SAME_EVENT_NS, e.end_ns + SAME_EVENT_NS, e.user, e.muscle, e.source
            )
            same = [
                s
                for s in self.store.events(query)
                if s.device == e.device
                and s.start_ns <= e.end_ns + SAME_EVENT_NS
                and s.end_ns >= e.start_ns - SAME_EVENT_NS
            ]
            if same:
                self.stats.events_already_stored += 1
                stored.append(same[0])
            else:
                new.append(e)
        return new, stored

    async def _settle_unsure(self) -> None:
        """Redelivered events become new (queued, counted) or known (dropped) before any minute they fall
        in can be taken by the writer. Raises ``StoreError``."""
        if self._unsure:
            batch = list(self._unsure)
            new, stored = await asyncio.to_thread(self._not_stored, batch)
            del self._unsure[: len(batch)]
            # What the store holds decides the count: the dead worker may have judged one differently.
            self._known.extend(s for s in stored if s.kind.is_twitch)
            for e in new:
                self._accept(e)
        self._count_known()

    def _count_known(self) -> None:
        """Twitches of redelivered frames that the dead worker had stored: not stored again, and counted
        unless the stored tally carried into their minute counts them already (``RateBook.carries``)."""
        waiting = []
        for e in self._known:
            carried = self._rates.carries(_rate_key(e), e.start_ns)
            if carried is None:
                waiting.append(e)
            elif not carried:
                self._count(e)
        self._known = waiting

    def _prune_vetoes(self) -> None:
        """Forget vetoes older than anything still held (minutes, events, streams' latest data)."""
        oldest = [self._rates.oldest_ns(), self._rest.oldest_held_ns()]
        oldest += [st.next_t_ns for st in self._streams.values() if not st.ended]
        known = [t for t in oldest if t is not None]
        if known:
            self._rest.gate.prune(min(known) - VETO_KEEP_NS)

    # ---- output ----------------------------------------------------------------------------------
    async def _writer_loop(self) -> None:
        """Events go to the store as soon as they are released, with whatever else is queued by then: one
        write is in flight at a time, and the next takes everything that came meanwhile (``soon``). Every
        ``flush_interval`` the rest is done: finished minutes and every running tally written, frames that
        waited for a status released, offline devices ended, old vetoes pruned, the checkpoint taken."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.flush_interval
        while not self._stop.is_set():
            await self._wait_for_release(due - loop.time())
            if self._stop.is_set():
                break
            self._released.clear()
            if loop.time() < due:
                await self._flush(final=False, soon=True)
                continue
            due = loop.time() + self.flush_interval
            self._release_held()
            self._end_offline()
            self.end_idle(SILENT_END_NS)
            await self._flush(final=False)
            self._prune_vetoes()
            async with self._flush_lock:
                self._checkpoint()

    async def _wait_for_release(self, seconds: float) -> None:
        """Until events are released, the worker stops, or ``seconds`` have passed."""
        if seconds <= 0 or self._released.is_set():
            return
        waiters = [asyncio.ensure_future(self._released.wait()), asyncio.ensure_future(self._stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _flush(self, final: bool, soon: bool = False) -> None:
        """Move pending events and minute rates to the store. A batch the store refuses is split until
        the refused rows stand alone, and those are quarantined (``_write``); a store that fails (down,
        locked, full) keeps everything for the next try. The final flush at shutdown tries for at most
        ``shutdown_write_s`` and then keeps what is left in the quarantine (``_give_up``). ``soon``: the
        events and the running tallies of the minutes they were counted in, nothing else (finished minutes
        and the other tallies wait for the interval)."""
        self._forget_ended()
        self._close_ended_devices()
        async with self._flush_lock:
            watermarks = None if final else self._watermark_ns
            deadline = time.monotonic() + self.shutdown_write_s
            while True:
                try:
                    await self._settle_unsure()
                except StoreError as exc:
                    self.stats.store_errors += 1
                    self._rlog.warning("store", "cannot look up redelivered events, retrying: %s", exc)
                    if final and self._stop.is_set() and self.stats.store_errors > 5:
                        log.error("storing %d redelivered events unchecked at shutdown", len(self._unsure))
                        for e in self._unsure:
                            self._accept(e)
                        self._unsure.clear()
                    else:
                        await asyncio.sleep(1.0)
                    continue
                events = self._pending[: self.batch_size]
                # The minute tallies go with the last batch of events: a stored tally then never counts a
                # twitch the store does not hold yet (what a worker taking over a partition relies on).
                more = len(self._pending) > self.batch_size
                if soon:
                    done, running = [], ([] if more else self._rates.recounted_open())
                else:
                    done = [] if more else self._rates.take(watermarks)
                    running = [] if more else self._rates.changed_open()
                if not events and not done and not running:
                    return
                self._in_flight = (len(events), len(done))
                try:
                    refused = await asyncio.to_thread(self._write, events, done, running)
                except StoreError as exc:
                    self._requeue(done)
                    self._rates.mark_dirty(running)
                    self.stats.store_errors += 1
                    self._rlog.warning(
                        "store", "store write failed, keeping %d events to retry: %s", len(self._pending), exc
                    )
                    if final and time.monotonic() >= deadline:
                        self._give_up(exc)
                        return
                    await (asyncio.sleep(1.0) if final else self._sleep_or_stop(1.0))
                    if not final:
                        return  # the writer loop tries again; a stop meanwhile finds the lock free
                    continue
                finally:
                    self._in_flight = (0, 0)
                del self._pending[: len(events)]
                self.stats.events_stored += len(events) - refused[0]
                self.stats.rates_stored += len(done) - refused[1]
                self._publish(events)

    def _write(
        self, events: list[TwitchEvent], done: list[MinuteRate], running: list[MinuteRate]
    ) -> tuple[int, int]:
        """Write, splitting what the store refuses; refused rows are quarantined. A refused running tally
        is not: its minute's final value will be, once. Returns the events and finished minutes refused.
        Raises ``StoreError`` (not refused: unreachable, locked, full) for the caller to retry it all."""
        bad_events = _write_split(self.store.write_events, events)
        bad_rates = _write_split(self.store.write_rates, done + running)
        bad_done = [(r, why) for r, why in bad_rates if r in done]
        if len(bad_rates) > len(bad_done):
            self._rlog.warning(
                "refused-open", "the store refused %d running minute tallies", len(bad_rates) - len(bad_done)
            )
        self._quarantine(bad_events, bad_done)
        return len(bad_events), len(bad_done)

    def _quarantine(
        self, events: Sequence[tuple[TwitchEvent, str]], rates: Sequence[tuple[MinuteRate, str]]
    ) -> None:
        """Keep refused rows where an operator sees them: the quarantine file, else the log (as errors)."""
        if not events and not rates:
            return
        now = time.time_ns()
        refused: list[tuple[TwitchEvent | MinuteRate, str]] = [*events, *rates]
        entries = [Entry(now, self.store.url, why, row) for row, why in refused]
        self.stats.events_quarantined += len(events)
        self.stats.rates_quarantined += len(rates)
        kept = 0
        if self.quarantine is not None:
            try:
                kept = self.quarantine.add(entries)
            except QuarantineError as exc:
                log.error("%s", exc)
            else:
                log.error(
                    "kept %d events and %d minute rates in the quarantine %s (the first because: %s)",
                    len(events),
                    len(rates),
                    self.quarantine.path,
                    entries[0].reason,
                )
        for entry in entries[kept:]:
            self.stats.quarantine_dropped += 1
            log.error("not stored and not quarantined (%s): %s", entry.reason, entry.to_json())

    def _give_up(self, exc: StoreError) -> None:
        """The end of a bounded shutdown: everything not stored goes to the quarantine, said as it is."""
        events, rates = list(self._pending), self._rates.take(None)
        self._pending.clear()
        why = f"not stored at shutdown within {self.shutdown_write_s:g} s: {exc}"
        self._quarantine([(e, why) for e in events], [(r, why) for r in rates])
        log.error(
            "shutdown: the store took %d events and %d minute rates this run; %d events and %d minute "
            "rates were not stored (%s)%s",
            self.stats.events_stored,
            self.stats.rates_stored,
            len(events),
            len(rates),
            exc,
            f" and are in the quarantine {self.quarantine.path}: `twitchwatch quarantine retry` stores them"
            if self.quarantine is not None
            else "",
        )

    def _keep_unconfirmed(self) -> None:
        """Stopped without waiting: what the store has not confirmed goes to the quarantine, and the log
        says how much of it a write under way may have stored already (retrying it is harmless)."""
        events = list(self._pending)
        rates = self._rates.take(None)
        if not events and not rates:
            return
        in_events, in_rates = self._in_flight
        why = "not confirmed stored: the worker was stopped without waiting"
        self._quarantine([(e, why) for e in events], [(r, why) for r in rates])
        log.error(
            "stopped without waiting: %d events and %d minute rates not confirmed stored (a write of %d "
            "events and %d minutes was under way and may have stored them)%s",
            len(events),
            len(rates),
            in_events,
            in_rates,
            f"; kept in the quarantine {self.quarantine.path}" if self.quarantine is not None else "",
        )

    def _requeue(self, rates: list[MinuteRate]) -> None:
        self._rates.requeue(rates)

    def _publish(self, events: list[TwitchEvent]) -> None:
        """Stored events, published for whoever listens (Home Assistant, the dashboard's live view). Not
        awaited to the broker's acknowledgement: that comes behind every frame queued for this worker, so a
        worker behind would hold its next store write for as long as its backlog (up to aiomqtt's 10-s
        timeout each time); paho resends an unacknowledged one itself."""
        client = self._client
        if client is None or not events:
            return
        by_device: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
        for e in events:
            by_device[(e.user, e.device)].append(e.to_json_dict())
        self._still_unconfirmed()
        try:
            for (user, device), items in by_device.items():
                topic = str(Topic(user, device, "events"))
                self._unconfirmed.append(client.publish_nowait(topic, json.dumps(items), qos=1))
        except aiomqtt.MqttError as exc:
            # Events are already stored; the topic is a notification, so a missed one is only logged.
            self._rlog.warning("publish", "could not publish events: %s", exc)


def _rate_key(e: TwitchEvent) -> RateKey:
    return (e.user, e.muscle, e.device, e.source)


def _event_key(e: TwitchEvent) -> tuple[str, str, str, str, int]:
    """One event across its provisional and final writes (the stores' key)."""
    return (e.user, e.device, e.muscle, e.source, e.start_ns)
