"""What a replay plays: a recording's devices and streams (:class:`ReplayStream`) and its frames in
device-time order (:class:`ReplaySource`), with the ``--muscle-map`` and ``--device`` options that rename
them.

Apart from ``playback`` (which opens any file through its reader) so that a reader can name the source it
gives without importing the module that imports readers.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from twitchwatch.collector.frames import Frame, Unit
from twitchwatch.collector.status import StreamInfo
from twitchwatch.collector.topics import TopicError, check_segment
from twitchwatch.errors import UserError


class ReplayError(UserError, ValueError):
    """A replay cannot start as asked; the message names the option or the file."""


@dataclass(frozen=True)
class ReplayStream:
    """One stream of one replayed device. ``keys`` lists, per channel, the names ``--muscle-map`` knows it
    by."""

    device: str
    stream: str
    stream_id: int
    signal: str
    unit: Unit
    sample_rate: float
    muscles: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    profile: str = "replay"

    def info(self) -> StreamInfo:
        return StreamInfo(self.stream_id, self.signal, self.sample_rate, self.muscles)


class ReplaySource(abc.ABC):
    streams: tuple[ReplayStream, ...]
    start_ns: int  # the recording's first sample, in its own time
    end_ns: int
    description: str

    @abc.abstractmethod
    def frames(self, from_ns: int) -> Iterator[tuple[int, Frame]]:
        """``(index into streams, frame)`` in device-time order, from the frame holding ``from_ns`` on."""

    def close(self) -> None:  # noqa: B027 (sources without resources need nothing)
        pass

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def map_muscles(self, items: Sequence[str]) -> None:
        """``CH=MUSCLE`` items: CH is a channel's key (see ``ReplayStream.keys``) or its current muscle."""
        self.streams = apply_muscle_map(self.streams, items)


def apply_muscle_map(streams: Sequence[ReplayStream], items: Sequence[str]) -> tuple[ReplayStream, ...]:
    muscles = [list(s.muscles) for s in streams]
    for item in items:
        key, sep, muscle = item.partition("=")
        if not sep or not key or not muscle:
            raise ReplayError(f"--muscle-map {item!r}: expected CHANNEL=MUSCLE")
        try:
            check_segment(muscle, "muscle")
        except TopicError as exc:
            raise ReplayError(f"--muscle-map {item!r}: {exc}") from None
        hits = 0
        for si, s in enumerate(streams):
            for ci in range(len(s.muscles)):
                if key in s.keys[ci] or key == s.muscles[ci]:
                    muscles[si][ci] = muscle
                    hits += 1
        if not hits:
            known = "; ".join(
                f"{s.device}/{s.stream}: "
                + ", ".join(f"{k[0]!r} ({m or 'no muscle'})" for k, m in zip(s.keys, s.muscles, strict=True))
                for s in streams
            )
            raise ReplayError(f"--muscle-map {item!r}: no channel {key!r} (channels: {known})")
    return tuple(dataclasses.replace(s, muscles=tuple(m)) for s, m in zip(streams, muscles, strict=True))


def select_devices(available: Sequence[str], specs: Sequence[str]) -> dict[str, str]:
    """``--device D`` selects a recorded device, ``--device D=NEW`` also renames it; none: all, as
    recorded."""
    if not specs:
        return {d: d for d in available}
    out: dict[str, str] = {}
    for spec in specs:
        old, _, new = spec.partition("=")
        if old not in available:
            raise ReplayError(
                f"--device {spec!r}: the recording has no device {old!r} (it has {', '.join(available)})"
            )
        try:
            out[old] = check_segment(new or old, "--device")
        except TopicError as exc:
            raise ReplayError(str(exc)) from None
    if len(set(out.values())) < len(out):
        raise ReplayError("--device: two devices renamed to the same name")
    return out
