"""The processing worker: raw frames from MQTT → streaming detectors → events and minute rates in a store.

Tasks and ownership: ``Worker.run`` owns two tasks in a TaskGroup — the MQTT loop (reconnects with
backoff, persistent QoS-1 session so the broker keeps frames while the worker is away) and the writer
(batches events to the store off the event loop, retries on failure, never drops). ``Worker.stop`` asks
both to finish: detectors release their last events, everything pending is written, then the tasks end.

With ``flags=FlagTask(...)`` it owns a third task, the flag computer: every ``interval_s`` it evaluates
the persistent-activity rules over the store in a thread (weeks of rates must not stall the MQTT
loop), replaces the user's stored flags and publishes them retained on ``flags_topic(user)``. With
``FlagTask.ha`` set, a fourth task publishes Home Assistant discovery and low-rate states.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiomqtt

from twitchwatch.collector.frames import Frame, Unit, decode, sequence_gap
from twitchwatch.collector.limits import MAX_FRAME_BYTES, RejectedError, check_frame, check_payload_size
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.collector.status import DeviceStatus
from twitchwatch.collector.topics import Topic, TopicError, felt_filter, felt_user, raw_filter, status_filter
from twitchwatch.processing import homeassistant as ha
from twitchwatch.processing.core import FloatArray
from twitchwatch.processing.detector import Detection, StreamingDetector
from twitchwatch.processing.events import MINUTE_NS, EventKind, MinuteRate, Source, TwitchEvent
from twitchwatch.processing.felt import FeltError, felt_entry
from twitchwatch.processing.flags import FlagRules, FlagSet, compute_flag_set, flags_topic
from twitchwatch.processing.fusion import Fuser
from twitchwatch.processing.journal import JournalEntry
from twitchwatch.processing.motion import MotionDetector
from twitchwatch.processing.quarantine import Entry, Quarantine, QuarantineError
from twitchwatch.processing.rest import GateParams
from twitchwatch.processing.rest_streams import RestStreams, SegmentMap, StreamKind, is_veto, veto_reason
from twitchwatch.processing.store import EventQuery, EventStore, StoreError, StoreRejected

log = logging.getLogger(__name__)

# A forward jump in device time larger than this starts a new segment (sensor taken off, link down).
MAX_TIME_JUMP_NS = 1_000_000_000
# Minutes are final this long (device time) after they end, so events released late still count.
RATE_GRACE_NS = 5_000_000_000
# The first stop waits at most this long for a store that does not take the last writes; what it has not
# taken by then goes to the quarantine (or, without one, is logged as not stored).
SHUTDOWN_WRITE_S = 30.0
# Vetoes are kept this long before anything the worker still holds (a minute, an event, a stream's data):
# nothing asks about earlier time, and without pruning a months-long run would keep every walk.
VETO_KEEP_NS = 120_000_000_000

MuscleMap = Callable[[str, str, int], str | None]  # (device, stream, channel) → muscle from config


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
    bad_felt: int = 0
    # Messages dropped at the edge, per reason kind (collector/limits.py): ``frame.rate``,
    # ``status.json_depth``…
    # ``internal`` counts messages whose handling raised anything else (a bug: logged with its traceback).
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HaDiscovery:
    prefix: str = "homeassistant"
    interval_s: float = 60.0


@dataclass(frozen=True)
class FlagTask:
    """The worker's periodic flag computation. ``devices``: configured devices (for ``stale_sensor``);
    ``users``: computed for even before any of their frames arrive (users seen later are added)."""

    rules: FlagRules
    interval_s: float = 300.0
    devices: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    ha: HaDiscovery | None = None
    tz: dt.tzinfo = dt.UTC  # local days and hours of the flags (TWITCHWATCH_TIMEZONE)


class StreamDetector(Protocol):
    """What the worker needs of a stream's detector: ``StreamingDetector``, and the movement detector of
    gyroscope and orientation streams (whose detections of kind sustained are movement)."""

    lanes: int

    @property
    def settled(self) -> int: ...

    def open_activity(self) -> list[tuple[int, int, int]]: ...

    def process(self, chunk: FloatArray) -> Sequence[Detection]: ...

    def finish(self) -> Sequence[Detection]: ...


MOTION: tuple[StreamKind, ...] = ("gyro", "orientation")  # streams that only veto (processing/motion.py)


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

    def matches(self, frame: Frame) -> bool:
        return (self.rate, self.channels, self.unit) == (frame.sample_rate, frame.channels, frame.unit)

    def time_of(self, index: int) -> int:
        return self.seg_t0_ns + round(index * 1e9 / self.rate)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user, self.device, self.stream)


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


def signal_of(unit: Unit) -> StreamKind | None:
    return {Unit.MICROVOLT: "emg", Unit.G: "acc", Unit.DEG_PER_S: "gyro"}.get(unit)  # type: ignore[return-value]


def signal_of_name(signal: str) -> StreamKind | None:
    return {"emg": "emg", "acc": "acc", "gyro": "gyro", "orientation": "orientation"}.get(signal)  # type: ignore[return-value]


def warmup_samples(detector: StreamDetector) -> int:
    """Samples the detector spends after a start learning what it needs (noise floor, gyro bias), during
    which it detects nothing: blind time for the rest gate."""
    if isinstance(detector, StreamingDetector):
        return detector.warmup_samples
    if isinstance(detector, MotionDetector):
        return round(detector.params.warmup_s * detector.rate)
    return 0


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
    dirty: bool = True  # changed since last written

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
            user, muscle = key[0], key[1]
            at_rest = sum(b - a - rest.vetoed_ns(user, muscle, a, b) for a, b in self.spans)
            rest_s = round(min(max(self.carried_rest_s + at_rest / 1e9, 0.0), monitored), 6)
        return MinuteRate(*key, minute_ns, self.twitches, monitored, rest_s)


RateKey = tuple[str, str, str, Source]


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

    def _tally(self, key: RateKey, minute: int, at_ns: int) -> _MinuteTally:
        tally = self.minutes[key].get(minute)
        if tally is None:
            tally = self.minutes[key][minute] = _MinuteTally()
            if self.ask_prior and key not in self._asked:
                self._asked.add(key)
                self._unresolved[key] = (minute, at_ns)
                self._to_ask.append((key, minute))
        return tally

    def lookups(self) -> list[tuple[RateKey, int]]:
        """(key, minute) pairs whose stored rate is wanted, each handed out once."""
        out, self._to_ask = self._to_ask, []
        return out

    @property
    def unresolved(self) -> int:
        return len(self._unresolved)

    def resolve(self, key: RateKey, stored: MinuteRate | None) -> None:
        """The store's row for the key's first minute (None: there is none, or it could not be read)."""
        minute, at_ns = self._unresolved.pop(key)
        tally = self.minutes[key].setdefault(minute, _MinuteTally())
        # 1 s of slack for clock jitter between the end of the old run and the start of the new
        if stored is not None and (at_ns - minute) / 1e9 >= stored.monitored_s - 1.0:
            self._carry(tally, stored)
        tally.dirty = True

    @staticmethod
    def _carry(tally: _MinuteTally, row: MinuteRate) -> None:
        tally.twitches += row.twitches
        tally.carried_s += row.monitored_s
        if row.rest_s is None:
            if row.monitored_s > 0:
                tally.carried_rest_s = None
        elif tally.carried_rest_s is not None:
            tally.carried_rest_s += row.rest_s

    def cover(self, key: RateKey, start_ns: int, end_ns: int) -> None:
        t = start_ns
        while t < end_ns:
            minute = t - t % MINUTE_NS
            stop = min(end_ns, minute + MINUTE_NS)
            tally = self._tally(key, minute, t)
            tally.cover(t, stop)
            tally.dirty = True
            t = stop

    def count(self, key: RateKey, at_ns: int) -> None:
        tally = self._tally(key, at_ns - at_ns % MINUTE_NS, at_ns)
        tally.twitches += 1
        tally.dirty = True

    def take(self, watermarks: dict[tuple[str, str], int] | None) -> list[MinuteRate]:
        """Minutes that ended ``RATE_GRACE_NS`` before their device's latest data and whose rest is known
        (all when None)."""
        out: list[MinuteRate] = []
        for key, minutes in self.minutes.items():
            if key in self._unresolved:
                continue
            if watermarks is None:
                done = list(minutes)
            else:
                horizon = watermarks.get((key[0], key[2]), 0) - RATE_GRACE_NS
                done = [
                    m for m in minutes if m + MINUTE_NS <= horizon and self._rest_known(key, m, minutes[m])
                ]
            out.extend(minutes.pop(m).rate(key, m, self.rest) for m in sorted(done))
        return out

    def _rest_known(self, key: RateKey, minute: int, tally: _MinuteTally) -> bool:
        end = tally.end_ns
        return self.rest.ready(key[0], key[1], minute if end is None else end)

    def changed_open(self) -> list[MinuteRate]:
        """Running tallies of minutes still open, changed since last asked: written as they grow, so the
        dashboard divides by monitored time from the first seconds on; the final value overwrites them."""
        out = []
        for key, minutes in self.minutes.items():
            if key in self._unresolved:
                continue
            for m, tally in sorted(minutes.items()):
                if tally.dirty:
                    tally.dirty = False
                    out.append(tally.rate(key, m, self.rest))
        return out

    def mark_dirty(self, rates: list[MinuteRate]) -> None:
        for r in rates:
            tally = self.minutes.get((r.user, r.muscle, r.device, r.source), {}).get(r.minute_ns)
            if tally is not None:
                tally.dirty = True

    def requeue(self, rates: list[MinuteRate]) -> None:
        """Finished minutes a failed write hands back, to be taken again as they were."""
        for r in rates:
            self._carry(
                self.minutes[(r.user, r.muscle, r.device, r.source)].setdefault(r.minute_ns, _MinuteTally()),
                r,
            )

    def oldest_ns(self) -> int | None:
        """The start of the oldest minute still held."""
        return min((m for minutes in self.minutes.values() for m in minutes), default=None)


class Worker:
    def __init__(
        self,
        target: MqttTarget,
        store: EventStore,
        *,
        user: str = "+",
        muscle_map: MuscleMap | None = None,
        client_id: str = "twitchwatch-worker",
        flush_interval: float = 0.5,
        batch_size: int = 1000,
        flags: FlagTask | None = None,
        segment_map: SegmentMap | None = None,
        gate: GateParams | None = None,
        quarantine: Quarantine | None = None,
        shutdown_write_s: float = SHUTDOWN_WRITE_S,
    ) -> None:
        self.target = target
        self.store = store
        self.user = user
        self.muscle_map = muscle_map or (lambda _d, _s, _c: None)
        self.client_id = client_id
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.quarantine = quarantine
        self.shutdown_write_s = shutdown_write_s
        self._in_flight = (0, 0)  # events and finished minutes a write thread holds right now
        self.stats = WorkerStats()
        self._streams: dict[tuple[str, str, str], _Stream] = {}
        self._status: dict[tuple[str, str], DeviceStatus] = {}
        self._pending: list[TwitchEvent] = []
        self._fuser = Fuser()  # per user+muscle: one event per twitch however many streams watch it
        # When each muscle could be assessed: every stream's vetoes; fused events wait here to be judged.
        self._rest = RestStreams(gate or GateParams(), segment_map or (lambda _device: None))
        self._rates = RateBook(ask_prior=True, rest=self._rest)
        self._prior_reads: set[asyncio.Task[None]] = set()  # owned here; _finish awaits, run() cancels
        self._felt_writes: set[asyncio.Task[None]] = set()  # likewise
        self._watermark_ns: dict[tuple[str, str], int] = {}
        self._client: aiomqtt.Client | None = None
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

    # ---- lifecycle -------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._mqtt_loop(), name="worker-mqtt")
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

    def stop(self) -> None:
        self._stop.set()

    async def _mqtt_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                async with self.target.client(self.client_id, clean_session=False) as client:
                    self._client = client
                    await client.subscribe(status_filter(self.user), qos=1)
                    await client.subscribe(raw_filter(self.user), qos=1)
                    await client.subscribe(felt_filter(self.user), qos=1)
                    self.connected.set()
                    backoff = 1.0
                    await self._republish_flags(client)
                    log.info("worker connected to %s", self.target.display)
                    await self._read_until_stopped(client)
                    await self._finish()
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                if self._stop.is_set():
                    break
                log.warning("MQTT %s: %s; reconnecting in %.0f s", self.target.display, exc, backoff)
                await self._sleep_or_stop(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                self._client = None
        if self._pending or self._rates.minutes:  # stopped while disconnected: still store what we have
            await self._finish()

    async def _read_until_stopped(self, client: aiomqtt.Client) -> None:
        reader = asyncio.create_task(self._read(client))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, stopper):
                task.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)
        if reader in done:
            reader.result()  # re-raise MqttError so the outer loop reconnects

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.handle(
                str(message.topic),
                bytes(message.payload)
                if isinstance(message.payload, bytes | bytearray)
                else str(message.payload).encode(),
            )

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _finish(self) -> None:
        for st in self._streams.values():
            self._end_stream(st)
        self._store_events(self._fuser.flush(), everything=True)
        self._ask_priors()
        if self._prior_reads:  # their minutes are held back until the store has answered
            await asyncio.gather(*self._prior_reads)
        if self._felt_writes:
            await asyncio.gather(*self._felt_writes)
        await self._flush(final=True)

    # ---- ingest (synchronous, on the event loop; numpy per frame is sub-millisecond) -------------
    def handle(self, topic: str, payload: bytes) -> None:
        """One message from the bus. Whatever it holds, it cannot stop the worker: a message that breaks a
        limit is counted per kind, logged and dropped (``_reject``); anything else it raises is a bug,
        counted as ``internal`` and logged with its traceback, and the worker goes on with the next."""
        try:
            self._dispatch(topic, payload)
        except Exception:
            self._count_rejected("internal")
            self._rlog.exception(
                "internal", "dropped a message on %.200r after an unexpected error (a bug)", topic
            )

    def _reject(self, exc: RejectedError, where: str) -> None:
        self._count_rejected(exc.kind)
        # One rate-limited line per kind: a flood of one fault never hides the first of another.
        self._rlog.warning(exc.kind, "dropped a message on %s [%s]: %s", where, exc.kind, exc)

    def _count_rejected(self, kind: str) -> None:
        self.stats.rejected[kind] = self.stats.rejected.get(kind, 0) + 1

    def _dispatch(self, topic: str, payload: bytes) -> None:
        try:
            felt_by = felt_user(topic)
        except TopicError as exc:
            self.stats.bad_topics += 1
            self._reject(exc, f"{topic[:200]!r}")
            return
        if felt_by is not None:
            self._on_felt(felt_by, payload)
            return
        try:
            t = Topic.parse(topic)
        except TopicError as exc:
            self.stats.bad_topics += 1
            self._reject(exc, f"{topic[:200]!r}")
            return
        if t.kind == "status":
            self._on_status(t, payload)
        elif t.kind == "raw" and t.stream is not None:
            self._on_frame(t.user, t.device, t.stream, payload)

    def _on_felt(self, user: str, payload: bytes) -> None:
        """A felt twitch marked from a phone or Home Assistant: a journal entry, stored off the event loop
        and retried like every write (processing/felt.py)."""
        try:
            entry = felt_entry(user, payload, time.time_ns())
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
        task = loop.create_task(self._store_felt(entry), name="worker-felt")
        self._felt_writes.add(task)
        task.add_done_callback(self._felt_writes.discard)

    async def _store_felt(self, entry: JournalEntry) -> None:
        while True:
            try:
                await asyncio.to_thread(self.store.add_journal_entry, entry)
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

    def _on_status(self, t: Topic, payload: bytes) -> None:
        if not payload:  # a cleared retained status
            self._status.pop((t.user, t.device), None)
            return
        try:
            status = DeviceStatus.from_json(payload)
        except RejectedError as exc:  # the device's previous status, if any, stays in force
            self.stats.bad_status += 1
            self._reject(exc, f"{t.user}/{t.device}/status")
            return
        key = (t.user, t.device)
        previous = self._status.get(key)
        if previous is not None and status.session_id != previous.session_id:
            self._restart_device(t.user, t.device)  # a new run: its sequence numbers start over
        elif status.state == "offline":
            self._end_device(t.user, t.device)  # its streams ended: they hold no muscle's rest back
        if previous is not None and not status.streams:
            # An offline status lists no streams, but events the detectors release at the end of the
            # stream still need the channels' muscles.
            status = dataclasses.replace(status, streams=previous.streams)
        self._status[key] = status

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
        st.ended = True
        self._emit(st, st.detector.finish())
        self._rest.end(st.key)

    def _on_frame(self, user: str, device: str, stream: str, payload: bytes) -> None:
        where = f"{user}/{device}/raw/{stream}"
        try:
            check_payload_size(payload, MAX_FRAME_BYTES, "frame.size")  # before decoding copies it
            frame = decode(payload)
        except RejectedError as exc:
            self.stats.bad_frames += 1
            self._reject(exc, where)
            return
        kind = self._signal(user, device, stream, frame.unit)
        if kind is None:
            return  # a stream no detector here understands
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
            self._reject(exc, where)
            return
        st = self._stream_for(user, device, stream, frame, kind)
        if st is None:
            return
        self.stats.frames += 1
        self.stats.samples += frame.samples * frame.channels
        self._last_frame_wall[(user, device)] = time.time_ns()
        detections = st.detector.process(frame.values())
        st.next_t_ns = frame.t0_ns + frame.duration_ns
        st.last_seq = frame.sequence
        self._cover(st, frame.t0_ns, st.next_t_ns)
        self._emit(st, detections)
        self._report_rest(st)
        self._fuser.advance(st.key, st.next_t_ns)
        self._store_events(self._fuser.release())
        self._watermark_ns[(user, device)] = max(self._watermark_ns.get((user, device), 0), st.next_t_ns)
        self._ask_priors()

    def _signal(self, user: str, device: str, stream: str, unit: Unit) -> StreamKind | None:
        """The detector a stream needs: from its unit, or for a unitless stream (the Myo's raw EMG comes
        in device counts, its orientation as a unitless quaternion) from what the device's status says the
        stream carries. Gyroscope and orientation streams get the movement detector (they only veto)."""
        kind = signal_of(unit)
        if kind is None and unit is Unit.UNITLESS:
            status = self._status.get((user, device))
            info = status.streams.get(stream) if status is not None else None
            kind = signal_of_name(info.signal) if info is not None else None
        return kind

    def _stream_for(
        self, user: str, device: str, stream: str, frame: Frame, kind: StreamKind
    ) -> _Stream | None:
        key = (user, device, stream)
        st = self._streams.get(key)
        if st is not None and st.matches(frame):
            gap = sequence_gap(st.last_seq, frame.sequence)
            if gap < 0 and frame.t0_ns < st.next_t_ns:
                self.stats.duplicates += 1  # a QoS-1 redelivery or a reordered frame: already processed
                return None
            if gap < 0:
                gap = 0  # sequence went back but time went on: the device restarted, nothing was lost
            jump = frame.t0_ns - st.next_t_ns
            if gap == 0 and abs(jump) <= MAX_TIME_JUMP_NS and not st.ended:
                return st
            if gap > 0:
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
        muscles = [None if kind in MOTION else self.muscle(st, lane) for lane in range(st.detector.lanes)]
        warmup_ns = round(warmup_samples(st.detector) * 1e9 / st.rate)
        self._rest.start(st.key, kind, muscles, st.seg_t0_ns, warmup_ns)
        return st

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
        lookups = self._rates.lookups()
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
                self._rates.resolve(key, stored)
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
                    self._rates.resolve(key, None)
                    return
                self.stats.store_errors += 1
                self._rlog.warning("prior", "cannot read the stored rate of %s, retrying: %s", key, exc)
                await self._sleep_or_stop(1.0)
                continue
            self._rates.resolve(key, stored)
            return

    def _stored_rate(self, key: RateKey, minute_ns: int) -> MinuteRate | None:
        """The store's row for one key's minute (raises ``StoreError``)."""
        user, muscle, device, source = key
        rows = self.store.rates(EventQuery(minute_ns, minute_ns + MINUTE_NS, user, muscle, source))
        return next((r for r in rows if r.device == device and r.minute_ns == minute_ns), None)

    def _cover(self, st: _Stream, start_ns: int, end_ns: int) -> None:
        if st.kind == "gyro" or st.kind == "orientation":
            return  # a movement stream watches no muscle: it only vetoes
        source, _ = self._source(st)
        for lane in range(st.detector.lanes):
            muscle = self.muscle(st, lane)
            self._fuser.register((st.user, muscle), st.key, st.kind)
            self._rates.cover((st.user, muscle, st.device, source), start_ns, end_ns)

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
        self._rest.veto(st.key, d.lane, start, end, reason)
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
        and twitches at rest counted in their minute (``everything``: at shutdown, judge all now)."""
        self._rest.hold(events)
        for event in self._rest.release(everything):
            self._pending.append(event)
            if event.kind.is_twitch:
                self._rates.count((event.user, event.muscle, event.device, event.source), event.start_ns)
            elif event.kind is EventKind.DURING_MOVEMENT:
                self.stats.events_during_movement += 1

    def _prune_vetoes(self) -> None:
        """Forget vetoes older than anything still held (minutes, events, streams' latest data)."""
        oldest = [self._rates.oldest_ns(), self._rest.oldest_held_ns()]
        oldest += [st.next_t_ns for st in self._streams.values() if not st.ended]
        known = [t for t in oldest if t is not None]
        if known:
            self._rest.gate.prune(min(known) - VETO_KEEP_NS)

    # ---- output ----------------------------------------------------------------------------------
    async def _writer_loop(self) -> None:
        while not self._stop.is_set():
            await self._sleep_or_stop(self.flush_interval)
            if not self._stop.is_set():
                await self._flush(final=False)
                self._prune_vetoes()

    async def _flush(self, final: bool) -> None:
        """Move pending events and minute rates to the store. A batch the store refuses is split until
        the refused rows stand alone, and those are quarantined (``_write``); a store that fails (down,
        locked, full) keeps everything for the next try. The final flush at shutdown tries for at most
        ``shutdown_write_s`` and then keeps what is left in the quarantine (``_give_up``)."""
        async with self._flush_lock:
            watermarks = None if final else self._watermark_ns
            deadline = time.monotonic() + self.shutdown_write_s
            while True:
                events, done = self._pending[: self.batch_size], self._rates.take(watermarks)
                running = self._rates.changed_open()
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
                await self._publish(events)

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

    async def _publish(self, events: list[TwitchEvent]) -> None:
        client = self._client
        if client is None or not events:
            return
        by_device: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
        for e in events:
            by_device[(e.user, e.device)].append(e.to_json_dict())
        try:
            for (user, device), items in by_device.items():
                await client.publish(str(Topic(user, device, "events")), json.dumps(items), qos=1)
        except aiomqtt.MqttError as exc:
            # Events are already stored; the topic is a notification, so a missed one is only logged.
            self._rlog.warning("publish", "could not publish events: %s", exc)

    # ---- flags and Home Assistant (periodic, low rate) --------------------------------------------
    def flag_users(self) -> list[str]:
        users = set(self.flag_task.users if self.flag_task else ())
        if self.user != "+":
            users.add(self.user)
        users.update(u for u, _ in self._last_frame_wall)
        return sorted(users)

    def _last_frames(self, user: str, task: FlagTask) -> dict[str, int | None]:
        """Configured devices belong to the configured users; another user seen on the bus has none."""
        if user not in task.users and user != self.user:
            return {}
        return {d: self._last_frame_wall.get((user, d)) for d in task.devices}

    async def _flags_loop(self, task: FlagTask) -> None:
        while not self._stop.is_set():
            await self.compute_flags_once(task)
            await self._sleep_or_stop(task.interval_s)

    async def compute_flags_once(self, task: FlagTask) -> None:
        for user in self.flag_users():
            now = time.time_ns()
            try:
                flag_set = await asyncio.to_thread(self._compute_and_store, task, user, now)
            except StoreError as exc:
                self.stats.flag_errors += 1
                self._rlog.warning("flags", "could not compute flags of %s, will retry: %s", user, exc)
                continue
            self.flag_sets[user] = flag_set
            self.stats.flag_computations += 1
            client = self._client
            if client is not None:
                await self._publish_flag_set(client, flag_set)
        self.flags_computed.set()

    def _compute_and_store(self, task: FlagTask, user: str, now_ns: int) -> FlagSet:
        flag_set = compute_flag_set(
            self.store,
            user=user,
            now_ns=now_ns,
            rules=task.rules,
            computed_by="worker",
            last_frame_ns=self._last_frames(user, task),
            watched_since_ns=self.started_ns,
            tz=task.tz,
        )
        self.store.replace_flags(flag_set)
        return flag_set

    async def _republish_flags(self, client: aiomqtt.Client) -> None:
        for flag_set in list(self.flag_sets.values()):
            await self._publish_flag_set(client, flag_set)
        self._ha_muscles.clear()  # the broker may have lost retained configs: send them again

    async def _publish_flag_set(self, client: aiomqtt.Client, flag_set: FlagSet) -> None:
        messages = [ha.Message(flags_topic(flag_set.user), flag_set.to_json())]
        if self.flag_task is not None and self.flag_task.ha is not None:
            messages += ha.flag_messages(flag_set)
        if await self._publish_all(client, messages, "flags"):
            self.stats.flags_published += 1

    async def _publish_all(self, client: aiomqtt.Client, messages: list[ha.Message], what: str) -> bool:
        try:
            for m in messages:
                await client.publish(m.topic, m.payload, qos=1, retain=m.retain)
        except aiomqtt.MqttError as exc:
            # Stored already; the retained topics are re-published on the next connection.
            self._rlog.warning(what, "could not publish %s: %s", what, exc)
            return False
        return True

    async def _ha_loop(self, settings: HaDiscovery) -> None:
        while await self._connected_unless_stopped():
            client = self._client
            if client is not None:
                await self.publish_ha_once(client, settings)
            await self._sleep_or_stop(settings.interval_s)

    async def _connected_unless_stopped(self) -> bool:
        """Wait for a broker connection; False once the worker is stopping."""
        if self._stop.is_set():
            return False
        if self.connected.is_set():
            return True
        waiters = {asyncio.create_task(self.connected.wait()), asyncio.create_task(self._stop.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return not self._stop.is_set()

    async def publish_ha_once(self, client: aiomqtt.Client, settings: HaDiscovery) -> None:
        for user in self.flag_users():
            now = time.time_ns()
            try:
                muscles, recent = await asyncio.to_thread(self._recent_rates, user, now)
            except StoreError as exc:
                self._rlog.warning("ha", "could not read rates of %s for Home Assistant: %s", user, exc)
                continue
            messages: list[ha.Message] = []
            known = frozenset(muscles)
            if self._ha_muscles.get(user) != known:
                messages += ha.discovery_messages(settings.prefix, user, known)
            messages += ha.rate_messages(user, known, recent)
            if await self._publish_all(client, messages, "Home Assistant states"):
                self._ha_muscles[user] = known
                self.stats.ha_updates += 1

    def _recent_rates(self, user: str, now_ns: int) -> tuple[list[str], list[MinuteRate]]:
        muscles = self.store.muscles(user)
        recent = self.store.rates(EventQuery(since_ns=now_ns - ha.RATE_WINDOW_NS, until_ns=now_ns, user=user))
        return muscles, recent
