"""Recordings: one home for reading, writing and replaying recorded signals.

- ``model``: the :class:`Recording` value — channels (label, dimension, rate, signal type, muscle), their
  streams, the clock, annotations — and the rules that infer a channel's type, unit and muscle.
- ``reader``: :class:`RecordingReader`, the readers' registry filled by a scan of ``formats/`` (one module
  per format), and :func:`open_recording`, which picks the reader by content, then by extension.
- ``playback``: a recording as a wearable sends it (:func:`open_source`), for ``twitchwatch replay`` and
  ``simulate --ble --recording``.
- ``formats/``: ``edf`` (EDF/BDF and their + variants: reading, the header, EDF+/BDF+ export), ``csv``
  (numeric text), ``session`` (the project's own HDF5 sessions: writer, reader, exact replay).

``twitchwatch detect`` runs the detectors over what a reader streams (``processing.recordings``); collecting
and replaying produce and consume recordings, so they live in ``collector/`` and processing imports them.
"""

from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    KINDS,
    MAX_CHUNK_S,
    STANDARD_GRAVITY,
    Annotation,
    Channel,
    Chunk,
    Group,
    Lane,
    Recording,
    RecordingError,
    Series,
    StreamKind,
    force_signal,
    group_channels,
    infer_channel,
    sanitise,
)
from twitchwatch.collector.recordings.reader import (
    FormatPackageError,
    RecordingReader,
    UnknownFormat,
    open_recording,
    reader_class,
    readers,
)

__all__ = [
    "DEFAULT_CHUNK_S",
    "KINDS",
    "MAX_CHUNK_S",
    "STANDARD_GRAVITY",
    "Annotation",
    "Channel",
    "Chunk",
    "FormatPackageError",
    "Group",
    "Lane",
    "Recording",
    "RecordingError",
    "RecordingReader",
    "Series",
    "StreamKind",
    "UnknownFormat",
    "force_signal",
    "group_channels",
    "infer_channel",
    "open_recording",
    "reader_class",
    "readers",
    "sanitise",
]
