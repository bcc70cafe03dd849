"""Rows a store refused, kept where an operator can see them and write them again.

The worker's writer splits a batch the store refuses until the refused rows stand alone; each of those,
and everything it could not store by the end of a bounded shutdown, is appended here as one JSON line:
when, which store, why, and the row itself (every field of the ``TwitchEvent`` or ``MinuteRate``, so
nothing is lost). ``twitchwatch quarantine`` lists it, ``twitchwatch quarantine retry`` writes the rows
again (idempotent) and keeps only those still refused. docs/reliability.md says what to do when it fills.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from twitchwatch.errors import TwitchwatchError
from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent

FILE_NAME: Final = "quarantine.jsonl"
# Enough for a long outage's worth of refused rows (an event line is ~500 bytes: 130,000 of them), and
# small enough that a bug refusing every row fills a disk with nothing: beyond it rows are counted, logged
# and dropped (docs/reliability.md, "When the quarantine fills").
MAX_BYTES: Final = 64 * 1024 * 1024

What = Literal["event", "rate"]
Row = TwitchEvent | MinuteRate


class QuarantineError(TwitchwatchError):
    """The quarantine file could not be read or written; the message names it and the line."""


@dataclass(frozen=True)
class Entry:
    at_ns: int  # when it was quarantined (wall clock)
    store: str  # the store's URL (no credentials: stores keep them out of ``url``)
    reason: str
    row: Row

    @property
    def what(self) -> What:
        return "event" if isinstance(self.row, TwitchEvent) else "rate"

    def to_json(self) -> str:
        row = dict(vars(self.row))
        if isinstance(self.row, TwitchEvent):
            row["kind"] = self.row.kind.value
        doc = {"at_ns": self.at_ns, "store": self.store, "what": self.what, "reason": self.reason, "row": row}
        # ensure_ascii: a control character or a lone surrogate in a refused name stays visible and valid
        return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Entry:
        doc = json.loads(line)
        row: dict[str, Any] = doc["row"]
        value: Row
        if doc["what"] == "event":
            value = TwitchEvent(**{**row, "kind": EventKind(row["kind"])})
        elif doc["what"] == "rate":
            value = MinuteRate(**row)
        else:
            raise ValueError(f"what: {doc['what']!r} is neither 'event' nor 'rate'")
        return cls(int(doc["at_ns"]), str(doc["store"]), str(doc["reason"]), value)


class Quarantine:
    """An append-only JSON-lines file of refused rows, bounded by ``max_bytes``. Thread-safe (the worker
    appends from its writer thread)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def add(self, entries: Sequence[Entry]) -> int:
        """Append what fits; returns how many did (the rest: the file is full). Raises
        ``QuarantineError`` when the file cannot be written at all."""
        lines = [entry.to_json() + "\n" for entry in entries]
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                size = self.path.stat().st_size if self.path.exists() else 0
                kept: list[str] = []
                for line in lines:
                    size += len(line.encode())
                    if size > self.max_bytes:
                        break
                    kept.append(line)
                if kept:
                    with self.path.open("a", encoding="utf-8") as f:
                        f.writelines(kept)
                        f.flush()
                        os.fsync(f.fileno())  # a quarantined row is the only copy: on disk before we go on
            except OSError as exc:
                raise QuarantineError(f"cannot write the quarantine {self.path}: {exc}") from exc
        return len(kept)

    def entries(self) -> list[Entry]:
        return self.snapshot()[0]

    def snapshot(self) -> tuple[list[Entry], int]:
        """Every entry, and the file's size in bytes when read (for ``replace``)."""
        with self._lock:
            try:
                data = self.path.read_bytes() if self.path.exists() else b""
            except OSError as exc:
                raise QuarantineError(f"cannot read the quarantine {self.path}: {exc}") from exc
        text = data.decode("utf-8", errors="replace")
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(Entry.from_json(line))
            except (ValueError, KeyError, TypeError, OverflowError) as exc:  # Infinity for an int: Overflow
                raise QuarantineError(f"{self.path} line {number}: not a quarantined row ({exc})") from None
        return out, len(data)

    def replace(self, entries: Iterable[Entry], read_bytes: int) -> None:
        """Replace the first ``read_bytes`` of the file (a ``snapshot``) by ``entries`` (after a retry:
        those still refused), atomically; lines a running worker appended since are kept."""
        text = "".join(entry.to_json() + "\n" for entry in entries).encode()
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            try:
                later = self.path.read_bytes()[read_bytes:] if self.path.exists() else b""
                tmp.write_bytes(text + later)
                os.replace(tmp, self.path)
            except OSError as exc:
                raise QuarantineError(f"cannot rewrite the quarantine {self.path}: {exc}") from exc
