"""The worker's write-ahead journal: a worker killed at any moment (SIGKILL, OOM, power cut of the process)
resumes exactly where it was, losing and repeating nothing.

Why: a QoS-1 message is gone from the broker once the worker acknowledges it, and until its events and
minute rows are stored they exist only in the worker's memory (detector state, events waiting for the rest
gate, open minutes). So every raw frame and status is appended here *before* it is acknowledged, and the
worker's ingestion state is checkpointed from time to time:

- ``journal-<position>.log``: records appended in arrival order, each ``<length u32><crc32 u32><topic
  length u16><topic><payload>``; a record torn by a kill (short, or a wrong checksum) ends the journal and is
  cut off on recovery — it was never acknowledged, so the broker sends it again.
- ``snapshot.pkl``: the worker's ingestion state (detectors, the rest gate, events not yet judged or
  stored, open minutes, device statuses) at a journal position, written atomically (temporary file,
  fsync, rename) right after a store write succeeded. A new journal file starts at that position and older
  ones are deleted.

Recovery loads the snapshot and returns the records after it; the worker feeds them through its ordinary
ingestion before it connects, which brings back exactly the state it had when it died (detectors warm,
every event at the same timestamp, so rewriting one that was stored already is a no-op). The snapshot is
pickled Python objects: it is only loaded by the same code that wrote it (``fingerprint``, a hash of the
ingestion sources); another version replays the journal into fresh detectors instead. Both files live in
the user's own state directory, trusted like the database beside it.

Appends are not fsynced: they survive the process dying, not the machine losing power (the broker's own
queue is the defence there: what was not acknowledged is sent again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import pickle
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twitchwatch.errors import TwitchwatchError

log = logging.getLogger(__name__)

FORMAT = 1
_RECORD = struct.Struct("<IIH")  # payload length, crc32 of topic + payload, topic length
_SNAPSHOT = "snapshot.pkl"
_MAGIC = b"twitchwatch-worker-snapshot\n"
MAX_RECORD = 64 * 2**20  # larger than any frame the worker accepts: a length beyond it is a torn record


class JournalError(TwitchwatchError, RuntimeError):
    """The state directory cannot be used (not writable, or another worker holds it)."""


@dataclass(frozen=True)
class Record:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class Recovered:
    """What a restarted worker resumes from: the snapshot's state (None: none usable) and the records
    journaled after it, in arrival order; ``stale``: a snapshot existed but another version wrote it."""

    state: Any
    records: list[Record]
    stale: bool = False


def fingerprint(files: Iterable[Path]) -> str:
    """A hash of the sources whose objects a snapshot holds: a snapshot is only loaded by the same code."""
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _segment_name(position: int) -> str:
    return f"journal-{position:016d}.log"


def _segment_position(path: Path) -> int | None:
    stem = path.name.removeprefix("journal-").removesuffix(".log")
    return int(stem) if stem.isdigit() and path.name.startswith("journal-") else None


class IngestJournal:
    """One worker's journal in ``directory`` (one directory per worker client id).

    ``persistent_id``/``persistent_load``: objects the state refers to that are not state (the device map's
    callables): pickled by name and handed back by the restarted worker."""

    def __init__(
        self,
        directory: Path,
        fingerprint: str,
        *,
        persistent_id: Callable[[object], str | None] | None = None,
        persistent_load: Callable[[str], object] | None = None,
    ) -> None:
        self.directory = directory
        self.fingerprint = fingerprint
        self._persistent_id = persistent_id or (lambda _obj: None)
        self._persistent_load = persistent_load
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._abandoned = False  # since the last checkpoint (``abandon``)
        self.position = 0  # records journaled so far (across files): the next record's number
        self.checkpoints = 0
        self.snapshot_bytes = 0

    # ---- opening and recovery --------------------------------------------------------------------
    def open(self) -> Recovered:
        """Take the directory (one worker at a time) and say what to resume from."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot use the state directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise JournalError(
                f"another worker is using {self.directory}: give each worker its own client id "
                "(twitchwatch process --client-id) or its own TWITCHWATCH_STATE_DIR"
            ) from None
        state, at, stale = self._load_snapshot()
        found = ((_segment_position(p), p) for p in self.directory.glob("journal-*.log"))
        segments = sorted((pos, p) for pos, p in found if pos is not None)
        records: list[Record] = []
        position = at if at is not None else (segments[0][0] if segments else 0)
        for start, path in segments:
            if at is not None and start < at:
                path.unlink()  # before the snapshot: its effects are in it
                continue
            records.extend(self._read_segment(path))
        self.position = position + len(records)
        self._roll()
        return Recovered(state, records, stale)

    def _load_snapshot(self) -> tuple[Any, int | None, bool]:
        path = self.directory / _SNAPSHOT
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None, False
        except OSError as exc:
            raise JournalError(f"cannot read {path}: {exc}") from exc
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("not a worker snapshot")
            header_end = data.index(b"\n", len(_MAGIC))
            header = json.loads(data[len(_MAGIC) : header_end])
            position = int(header["position"])
            if header.get("fingerprint") != self.fingerprint:
                log.warning(
                    "the worker's snapshot in %s was written by another version of twitchwatch: the journal "
                    "since it is processed by fresh detectors (the first second of each stream is spent "
                    "learning its noise floor again)",
                    self.directory,
                )
                return None, position, True
            body = data[header_end + 1 :]
            if "crc32" in header and zlib.crc32(body) != header["crc32"]:
                raise ValueError("its checksum does not match (damaged on disk)")
            unpickler = pickle.Unpickler(io.BytesIO(body))
            if self._persistent_load is not None:
                unpickler.persistent_load = self._persistent_load  # type: ignore[method-assign]
            return unpickler.load(), position, False
        except Exception as exc:  # a damaged pickle can raise anything (ImportError, …)
            # A snapshot is written atomically, so this is damage from outside: say so, keep the file. Any
            # exception: a damaged module name raised ModuleNotFoundError, which stopped every start.
            damaged = path.with_suffix(".damaged")
            path.replace(damaged)
            log.error("the worker's snapshot %s is unreadable (%s); kept as %s", path, exc, damaged)
            return None, None, False

    @staticmethod
    def _read_segment(path: Path) -> list[Record]:
        data = path.read_bytes()
        out: list[Record] = []
        offset = 0
        while offset + _RECORD.size <= len(data):
            length, crc, topic_len = _RECORD.unpack_from(data, offset)
            body = offset + _RECORD.size
            end = body + topic_len + length
            if length > MAX_RECORD or end > len(data) or zlib.crc32(data[body:end]) != crc:
                break
            topic = data[body : body + topic_len].decode("utf-8", errors="replace")
            out.append(Record(topic, data[body + topic_len : end]))
            offset = end
        if offset != len(data):
            log.warning(
                "%s: a record torn at byte %d (the worker was killed while writing it) is cut off; it was "
                "never acknowledged, so the broker sends it again",
                path,
                offset,
            )
            with open(path, "r+b") as f:
                f.truncate(offset)
        return out

    # ---- while running ---------------------------------------------------------------------------
    def append(self, topic: str, payload: bytes) -> None:
        """Journal one message; once this returns, the message survives the process being killed."""
        self.append_many([(topic, payload)])

    def append_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Journal messages (topic, payload) in order, in one write: a batch costs one system call, not one
        per frame. Once this returns, they survive the process being killed; killed during it, the
        records written whole are kept and a torn one ends the journal (none was acknowledged yet). A write
        that fails (``OSError``: a full disk) leaves none of them."""
        if self._fd is None:
            raise JournalError("journal is not open")
        out = bytearray()
        for topic, payload in messages:
            name = topic.encode()
            body = name + payload
            out += _RECORD.pack(len(payload), zlib.crc32(body), len(name))
            out += body
        start = os.fstat(self._fd).st_size
        view = memoryview(out)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # A write cut short (a full disk) would leave a torn record, and the journal ends at the first
            # one: every record appended after it would be lost to a restart. The batch goes, whole.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise
        self.position += len(messages)

    def abandon(self) -> None:
        """Remove the snapshot and every journal file: a message could not be journaled, and the broker has
        it acknowledged, so they no longer hold everything since the snapshot. Recovered, a snapshot older
        than what was already stored would write its minute tallies over the stored ones (a muscle's minute
        went from 59 s and 33 twitches to 27 s and 15); with nothing to recover, the next start begins
        fresh and adds to the stored minutes what comes after them. Unlinking needs no free space; appends
        go on into the open file, and the next checkpoint that succeeds starts a journal that holds again.
        Once until then: a disk that stays full fails every batch's append."""
        if self._abandoned:
            return
        self._abandoned = True
        for path in [self.directory / _SNAPSHOT, *self.directory.glob("journal-*.log")]:
            with contextlib.suppress(OSError):
                path.unlink()

    def checkpoint(self, state: object) -> None:
        """The worker's state as of every record journaled so far; older journal files are removed."""
        self._roll()  # records after this point go to a file the snapshot does not cover
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.persistent_id = self._persistent_id  # type: ignore[method-assign]
        pickler.dump(state)
        body = buffer.getvalue()
        header = json.dumps(
            {
                "format": FORMAT,
                "fingerprint": self.fingerprint,
                "position": self.position,
                "crc32": zlib.crc32(body),
            }
        )
        data = _MAGIC + header.encode() + b"\n" + body
        path = self.directory / _SNAPSHOT
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        self._abandoned = False
        self.snapshot_bytes = len(data)
        self.checkpoints += 1
        for old in self.directory.glob("journal-*.log"):
            start = _segment_position(old)
            if start is not None and start < self.position:
                old.unlink(missing_ok=True)

    def _roll(self) -> None:
        """Appends go on in a segment starting at the current position. The new one is opened before the
        old one is closed: an open that fails (no inode left, a read-only remount) keeps the old segment,
        still valid, and raises. Closed first, the descriptor kept its closed number: every append failed
        until a restart, and a file opened meanwhile under that number received the journal's records."""
        path = self.directory / _segment_name(self.position)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        old, self._fd = self._fd, fd
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = None


def write_json_atomically(path: Path, value: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
