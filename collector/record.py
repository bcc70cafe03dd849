"""``twitchwatch record``: raw frames and retained statuses from MQTT → a session file.

The recorder subscribes at QoS 1 to ``twitchwatch/<user>/<device>/raw/+`` and ``…/status`` (every device, or
the ones named) and hands each message to a :class:`~collector.recordings.formats.session.SessionWriter`,
which stores the frames exactly as they arrived. Malformed frames, statuses and topics are counted, logged
(rate-limited) and skipped: nothing malformed reaches the file. The writer is flushed every
``flush_interval`` seconds, so a crash loses at most that much; a stop (``stop`` event, ``duration``, or every
streaming device gone offline) leaves a closed, complete file.

Ground truth from ``twitchwatch simulate --truth`` (JSON lines) becomes annotations through
:func:`read_truth`; user markers come through :meth:`Recorder.marker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from twitchwatch.collector.frames import FrameError, decode
from twitchwatch.collector.mqtt import MqttTarget, payload_bytes
from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.collector.recordings import Annotation
from twitchwatch.collector.recordings.formats.session import SessionWriter
from twitchwatch.collector.status import DeviceStatus, StatusError
from twitchwatch.collector.topics import ROOT, Topic, TopicError, check_segment
from twitchwatch.errors import TwitchwatchError, UserError

log = logging.getLogger(__name__)

# Reconnect backoff: doubling from 1 s, never more than this between tries (a broker restart costs seconds).
MAX_BACKOFF_S = 5.0


class RecordError(TwitchwatchError, RuntimeError):
    """The recorder could not reach the broker; the message names it."""


class TruthError(UserError, ValueError):
    """A ground-truth file is not the JSON lines ``twitchwatch simulate --truth`` writes; names file and
    line."""


@dataclass
class RecordStats:
    frames: int = 0
    bad_frames: int = 0
    bad_topics: int = 0
    bad_status: int = 0
    duplicates: int = 0
    gaps: int = 0
    missing_frames: int = 0
    markers: int = 0
    devices: set[str] = field(default_factory=set)
    streams: set[tuple[str, str]] = field(default_factory=set)


class Recorder:
    """``await Recorder(target, writer, user="alice").run(stop)`` records until ``stop`` is set."""

    def __init__(
        self,
        target: MqttTarget,
        writer: SessionWriter,
        *,
        user: str,
        devices: Sequence[str] | None = None,
        client_id: str | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        check_segment(user, "user")
        for d in devices or ():
            check_segment(d, "--device")
        self.target = target
        self.writer = writer
        self.user = user
        self.devices = frozenset(devices) if devices else None
        # A clean session: a recorder that is gone must not leave the broker queueing frames for it.
        self.client_id = client_id or f"twitchwatch-record-{uuid.uuid4().hex[:8]}"
        self.flush_interval = flush_interval
        self.stats = RecordStats()
        self.subscribed = asyncio.Event()
        self._online: dict[str, bool] = {}
        self._all_offline = asyncio.Event()
        self._rlog = RateLimitedLog(log)

    @property
    def filters(self) -> list[str]:
        names = sorted(self.devices) if self.devices else ["+"]
        return [f"{ROOT}/{self.user}/{d}/{tail}" for d in names for tail in ("status", "raw/+")]

    # ---- messages (synchronous; tests may call handle() directly) ---------------------------------
    def handle(self, topic: str, payload: bytes, received_ns: int | None = None) -> None:
        try:
            t = Topic.parse(topic)
        except TopicError as exc:
            self.stats.bad_topics += 1
            self._rlog.warning("topic", "ignoring message on %s: %s", topic, exc)
            return
        if t.user != self.user or (self.devices is not None and t.device not in self.devices):
            return
        if t.kind == "status":
            self._on_status(t.device, payload)
        elif t.kind == "raw" and t.stream is not None:
            self._on_frame(
                t.device, t.stream, payload, time.time_ns() if received_ns is None else received_ns
            )

    def _on_status(self, device: str, payload: bytes) -> None:
        if not payload:  # a cleared retained status
            return
        try:
            status = DeviceStatus.from_json(payload)
        except StatusError as exc:
            self.stats.bad_status += 1
            self._rlog.warning("status", "bad status from %s: %s (skipped)", device, exc)
            return
        self.writer.add_status(device, status)
        was_online = self._online.get(device)
        self._online[device] = status.state == "online"
        if device in self.stats.devices and was_online and status.state == "offline":
            log.info("%s went offline", device)
        if self.stats.devices and all(not self._online.get(d, True) for d in self.stats.devices):
            self._all_offline.set()

    def _on_frame(self, device: str, stream: str, payload: bytes, received_ns: int) -> None:
        try:
            frame = decode(payload)
        except FrameError as exc:
            self.stats.bad_frames += 1
            self._rlog.warning("frame", "bad frame on %s/%s skipped: %s", device, stream, exc)
            return
        if (device, stream) not in self.stats.streams:
            self.stats.streams.add((device, stream))
            self.stats.devices.add(device)
            self._online.setdefault(device, True)
            self._all_offline.clear()
            log.info(
                "recording %s/%s: %g Hz, %d channel(s), %s",
                device,
                stream,
                frame.sample_rate,
                frame.channels,
                frame.unit.symbol,
            )
        result = self.writer.add_frame(device, stream, frame, received_ns)
        if result == "duplicate":
            self.stats.duplicates += 1
            return
        self.stats.frames += 1
        if result == "gap":
            self.stats.gaps += 1
            self._rlog.warning("gap", "%s/%s: discontinuity before frame #%d", device, stream, frame.sequence)

    def marker(self, text: str, at_ns: int | None = None) -> None:
        """A user's note at ``at_ns`` (now by default; the Unix epoch, like device time)."""
        self.writer.add_annotation(
            Annotation(time.time_ns() if at_ns is None else at_ns, 0, "marker", text.strip())
        )
        self.stats.markers += 1

    # ---- the loop --------------------------------------------------------------------------------
    async def run(
        self, stop: asyncio.Event, duration_s: float | None = None, stop_when_offline: bool = False
    ) -> RecordStats:
        """Record until ``stop`` is set, ``duration_s`` (wall time) has passed or — with
        ``stop_when_offline`` — every device that streamed has gone offline. Reconnects with backoff once it
        has been connected; the first connection failing raises :class:`RecordError`."""
        loop = asyncio.get_running_loop()
        deadline = None if duration_s is None else loop.time() + duration_s
        connected_once = False
        backoff = 1.0
        try:
            while not stop.is_set() and (deadline is None or loop.time() < deadline):
                try:
                    async with self.target.client(self.client_id, clean_session=True) as client:
                        for topic_filter in self.filters:
                            await client.subscribe(topic_filter, qos=1)
                        connected_once, backoff = True, 1.0
                        self.subscribed.set()
                        log.info("subscribed to %s on %s", ", ".join(self.filters), self.target.display)
                        await self._pump(client, stop, deadline, stop_when_offline)
                        return self.stats
                except aiomqtt.MqttError as exc:
                    self.subscribed.clear()
                    if not connected_once:
                        raise RecordError(
                            f"cannot connect to MQTT broker {self.target.display}: {exc}"
                        ) from exc
                    log.warning("MQTT %s: %s; reconnecting in %.0f s", self.target.display, exc, backoff)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
            return self.stats
        finally:
            self._finish()

    async def _pump(
        self, client: aiomqtt.Client, stop: asyncio.Event, deadline: float | None, stop_when_offline: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.create_task(self._read(client))
        waiters = {reader, asyncio.create_task(stop.wait())}
        if stop_when_offline:
            waiters.add(asyncio.create_task(self._all_offline.wait()))
        try:
            while True:
                timeout = self.flush_interval
                if deadline is not None:
                    timeout = min(timeout, max(0.0, deadline - loop.time()))
                done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                self.writer.flush()
                if done or (deadline is not None and loop.time() >= deadline):
                    break
        finally:
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]  # MqttError: the outer loop reconnects

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.handle(str(message.topic), payload_bytes(message.payload))

    def _finish(self) -> None:
        s = self.stats
        self.writer.set_attrs(
            bad_frames=s.bad_frames, bad_topics=s.bad_topics, bad_status=s.bad_status, markers=s.markers
        )
        s.gaps, s.missing_frames = self.writer.counts.gaps, self.writer.counts.missing_frames


# ---- ground truth ----------------------------------------------------------------------------------
def read_truth(path: Path) -> list[Annotation]:
    """The JSON lines of ``twitchwatch simulate --truth`` as ``truth`` annotations (Unix epoch times)."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TruthError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TruthError(f"{path}: not UTF-8 text: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            start, end = float(row["start"]), float(row["end"])
            if not (math.isfinite(start) and math.isfinite(end)) or end < start:
                raise ValueError(f"start {start} / end {end} are not a time span")
            kind, muscle = str(row["kind"]), str(row["muscle"])
        except KeyError as exc:
            raise TruthError(f"{path}: line {n}: missing {exc.args[0]!r}") from None
        except (ValueError, TypeError) as exc:
            raise TruthError(f"{path}: line {n}: {exc}") from None
        extra = {k: v for k, v in row.items() if k not in ("start", "end", "kind", "muscle")}
        start_ns = round(start * 1e9)
        out.append(
            Annotation(start_ns, round(end * 1e9) - start_ns, "truth", kind, muscle, json.dumps(extra))
        )
    return out


def select_truth(
    truth: Iterable[Annotation], start_ns: int | None, end_ns: int | None, muscles: set[str]
) -> tuple[list[Annotation], int]:
    """Truth inside the recorded time span and, when muscles are known, on a recorded muscle; and how many
    were left out."""
    kept, dropped = [], 0
    for a in truth:
        inside = start_ns is not None and end_ns is not None and start_ns <= a.onset_ns < end_ns
        if inside and (not muscles or a.muscle in muscles):
            kept.append(a)
        else:
            dropped += 1
    return kept, dropped
