"""Readers: one per recording format, found by a scan, picked by what a file holds.

Each module of ``collector.recordings.formats`` is one format. It defines a :class:`RecordingReader` subclass
that names its file ``EXTENSIONS`` (the class registers itself by them) and, where the format has them, the
``MAGIC`` bytes a file of that format starts with. Nobody keeps a list: :func:`readers` imports every public
module of the package (``pkgutil``), loudly — a module that fails to import, or defines no reader, is a
:class:`FormatPackageError`, and two readers claiming one extension are a ``TypeError`` at import.

:func:`open_recording` picks the reader by content first (a format's magic bytes, or — for text formats,
which have none — its own look at the first bytes, :meth:`RecordingReader.claims`), then by extension, so a
session renamed ``.dat`` still opens as a session and a CSV file needs no particular name.

A reader opens a file, describes it (``recording``: a :class:`~collector.recordings.model.Recording`) and
streams it (:meth:`RecordingReader.chunks`) about a second at a time per stream, so a day-long file needs no
more memory than a short one. What replay publishes comes from the same reader
(``collector.recordings.playback``): by default its streams cut into frames; a format that keeps frames (the
project's own sessions) plays them as they are (:meth:`RecordingReader.replay_source`).
"""

from __future__ import annotations

import abc
import gzip
import io
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np

from twitchwatch.collector.plugins import own_classes, public_modules
from twitchwatch.collector.recordings.model import (
    DEFAULT_CHUNK_S,
    Annotation,
    Chunk,
    Group,
    Recording,
    RecordingError,
    Series,
)
from twitchwatch.errors import TwitchwatchError

if TYPE_CHECKING:
    from twitchwatch.collector.recordings.source import ReplaySource

FORMATS_PACKAGE: Final = "twitchwatch.collector.recordings.formats"
HDF5_MAGIC: Final = b"\x89HDF\r\n\x1a\n"  # twitchwatch sessions and PLUX OpenSignals files alike
# What h5py raises on a damaged file, besides OSError: the HDF5 library's own errors (RuntimeError: "Link
# iteration failed", "wrong B-tree signature") and what its wrappers make of garbage.
HDF5_DAMAGE: Final = (OSError, RuntimeError, KeyError, ValueError, TypeError)
HEAD_BYTES: Final = 65536  # what content detection looks at
GZIP_MAGIC: Final = b"\x1f\x8b"  # a gzip-compressed file (data sets ship big CSV files as .csv.gz)
GZIP_DAMAGE: Final = (OSError, EOFError)  # gzip's BadGzipFile is an OSError; zlib.error is one too here
# How long the HDF5 library may take to walk a file's structure in a child (h5walk.py) before the file is
# called damaged: the walk itself takes milliseconds; starting the child a fraction of a second, more on a
# loaded machine.
HDF5_WALK_DEADLINE_S: Final = 20.0
_H5WALK: Final = Path(__file__).with_name("h5walk.py")
_sound: set[tuple[str, int, int]] = set()  # files walked without trouble (path, size, mtime): walk once
_SOUND_KEPT: Final = 1024  # a long-running dashboard walks every upload: forget them all past this many


class FormatPackageError(TwitchwatchError, RuntimeError):
    """The formats package itself is broken (found by the scan, never silently skipped)."""


class UnknownFormat(RecordingError):
    """No reader takes this file: neither its content nor its extension is a format twitchwatch reads."""


class RecordingReader(abc.ABC):
    """Open a file, describe it, stream it. Subclasses register themselves by ``EXTENSIONS``."""

    EXTENSIONS: ClassVar[tuple[str, ...]] = ()
    MAGIC: ClassVar[tuple[bytes, ...]] = ()  # a file of the format starts with one of these
    # Whether the reader reads a gzip-compressed file as it is (``open_binary``); others ask for it unpacked.
    COMPRESSED: ClassVar[bool] = False
    NOUN: ClassVar[str] = "a recording"  # "an EDF file": one file, in messages
    DESCRIPTION: ClassVar[str] = ""  # the format in a list of formats ("an EDF/EDF+/BDF/BDF+ file")
    DEVICE_PREFIX: ClassVar[str] = "rec"  # a replayed file is the device <prefix>-<file name>
    _registry: ClassVar[dict[str, type[RecordingReader]]] = {}

    recording: Recording

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for ext in cls.__dict__.get("EXTENSIONS", ()):  # its own, not those it inherits
            other = RecordingReader._registry.setdefault(ext.lower(), cls)
            if other is not cls:
                raise TypeError(f"{cls.__name__} and {other.__name__} both claim {ext!r}")

    @classmethod
    def supported(cls) -> tuple[str, ...]:
        scan()
        return tuple(sorted(cls._registry))

    @classmethod
    def reader_for(cls, path: Path) -> type[RecordingReader]:
        """The reader registered for ``path``'s extension."""
        scan()
        found = cls._registry.get(path.suffix.lower())
        if found is None:
            raise UnknownFormat(
                f"{path}: unsupported file type {path.suffix or '(no extension)'!r} "
                f"(supported: {', '.join(cls.supported())})"
            )
        return found

    @classmethod
    def claims(cls, head: bytes) -> bool:
        """Whether ``head`` (a file's first bytes) is of this format: by default, its magic bytes."""
        return any(head.startswith(m) for m in cls.MAGIC)

    @classmethod
    def claims_file(cls, path: Path) -> bool:
        """Asked only when several formats share the magic ``path`` starts with (HDF5 holds twitchwatch
        sessions and PLUX OpenSignals files): whether the file, looked into, is of this format."""
        return True

    @classmethod
    def part_of(cls, path: Path) -> Path | None:
        """The file to open instead where ``path`` is one part of a recording of this format kept in
        several files (a WFDB record's signal file: its header), else None. Asked of a file no reader
        takes."""
        return None

    @abc.abstractmethod
    def __init__(self, path: Path, rate: float | None = None) -> None: ...

    @abc.abstractmethod
    def chunks(self, groups: Sequence[Group], chunk_seconds: float = DEFAULT_CHUNK_S) -> Iterator[Chunk]:
        """Every sample of every group, at most ``group.chunk_samples(chunk_seconds)`` per chunk, the groups
        interleaved so they advance through the file together. Each call starts at the file's beginning."""

    def replay_source(self, devices: Sequence[str]) -> ReplaySource | None:
        """The recording as a device sends it, where the format keeps more than samples (frames, sequence
        numbers); None: replay cuts ``chunks`` into frames (``collector.recordings.playback``)."""
        return None

    @classmethod
    def write(
        cls,
        path: Path,
        series: Sequence[Series],
        start_ns: int,
        annotations: Sequence[Annotation] = (),
    ) -> Path:
        """``series`` written as a file of this format (its round-trip test uses it; a format that cannot
        be written says so). Returns the path written."""
        raise RecordingError(f"{path}: twitchwatch cannot write {cls.NOUN}")

    def close(self) -> None:  # noqa: B027 (readers without resources need nothing)
        pass

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def hdf5_sound(
    path: Path, error: type[RecordingError] = RecordingError, deadline_s: float = HDF5_WALK_DEADLINE_S
) -> None:
    """Raise ``error`` if the HDF5 library, walking the file's structure in a child process, does not come
    back within ``deadline_s``, crashes, or names an object whose damaged size it could not allocate
    (h5walk.py). Every reader calls it before h5py opens a file in this process: a damaged file can keep the
    library busy in C — allocating gigabytes a damaged size claims, or looping — where no Python signal
    reaches, not even Ctrl-C, and a command or replay would hang. A child can be killed. Other errors are
    not looked at here: the reader reports them, naming what is wrong."""
    try:
        st = path.stat()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _sound:
        return
    command = [sys.executable, "-I", str(_H5WALK), str(path)]
    try:
        done = subprocess.run(  # our own script and a path: no shell
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=deadline_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise error(
            f"{path}: damaged: the HDF5 library did not finish reading the file's structure within "
            f"{deadline_s:g} s (a damaged HDF5 file can make it loop forever); restore the file from a copy"
        ) from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise error(
            f"{path}: damaged: the HDF5 library crashed ({name}) reading the file's structure; "
            "restore the file from a copy"
        )
    where = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode > 0 and where:  # h5walk.OVERSIZED: a size field the library could not allocate
        raise error(
            f"{path}: damaged: {where} claims more memory than any sound file's does (a damaged size); "
            "restore the file from a copy"
        )
    if len(_sound) >= _SOUND_KEPT:
        _sound.clear()
    _sound.add(key)


def hdf5_holds(path: Path, test: Callable[[Any], bool]) -> bool:
    """Whether the HDF5 file at ``path`` passes ``test`` (given its root group): what tells the HDF5 formats
    apart (``RecordingReader.claims_file``). False for a file h5py cannot open or read."""
    import h5py  # only here: text formats need no HDF5 library loaded

    hdf5_sound(path)
    try:
        with h5py.File(path, "r") as f:
            return bool(test(f))
    except HDF5_DAMAGE:  # a damaged file is neither format's: the extension's reader says what is wrong
        return False


# ---- finding the readers -----------------------------------------------------------------------------
def _import_failed(name: str, exc: Exception) -> FormatPackageError:
    return FormatPackageError(f"recording format module {name} failed to import: {type(exc).__name__}: {exc}")


def discover(package: str) -> tuple[type[RecordingReader], ...]:
    """Import every public module of ``package``; each registers its reader by defining it. Loud by design:
    a module that fails to import or defines no reader is a :class:`FormatPackageError`."""
    found: list[type[RecordingReader]] = []
    for module in public_modules(package, _import_failed):
        own = [
            c
            for c in own_classes(module)
            if issubclass(c, RecordingReader) and (c.__dict__.get("EXTENSIONS") or c.__dict__.get("MAGIC"))
        ]
        if not own:
            raise FormatPackageError(
                f"{module.__name__} defines no recording reader (a class with its own EXTENSIONS or MAGIC)"
            )
        found.extend(own)
    return tuple(found)


_discovered: tuple[type[RecordingReader], ...] | None = None


def scan() -> None:
    """The formats package, discovered once."""
    global _discovered
    if _discovered is None:
        _discovered = discover(FORMATS_PACKAGE)


def readers() -> tuple[type[RecordingReader], ...]:
    """Every reader, in the order of their first extension; those known only by content after them."""
    scan()
    out: list[type[RecordingReader]] = []
    for _, cls in sorted(RecordingReader._registry.items()):
        if cls not in out:
            out.append(cls)
    out += [cls for cls in _discovered or () if cls not in out]
    return tuple(out)


def is_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


def open_binary(path: Path) -> io.BufferedIOBase:
    """``path`` for reading bytes, unpacked on the fly where it is gzip-compressed."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")


def _head(path: Path) -> bytes:
    try:
        with open_binary(path) as f:
            return f.read(HEAD_BYTES)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except GZIP_DAMAGE as exc:  # an unreadable file, or a .gz cut short or damaged
        raise RecordingError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def reader_class(path: Path) -> type[RecordingReader]:
    """The reader for ``path``: the format its first bytes show, else the one its extension names. A
    gzip-compressed file is looked at unpacked and named by the extension before ``.gz``; a reader that
    cannot read it so asks for it unpacked."""
    cls = _reader_class(path)
    if not cls.COMPRESSED and is_gzip(path):
        packed = " and ".join(c.DESCRIPTION or c.NOUN for c in readers() if c.COMPRESSED)
        raise RecordingError(
            f"{path}: gzip-compressed, and only {packed} is read compressed: unpack it first "
            f"(gunzip -k {path.name})"
        )
    return cls


def _reader_class(path: Path) -> type[RecordingReader]:
    head = _head(path)
    known = readers()
    named = path.with_suffix("") if path.suffix.lower() == ".gz" else path  # data.csv.gz: named as data.csv
    by_magic = [cls for cls in known if cls.MAGIC and cls.claims(head)]
    if len(by_magic) > 1:  # one container, several formats: each looks into the file
        by_magic = [cls for cls in by_magic if cls.claims_file(path)] or by_magic[:1]
    by_look = [cls for cls in known if not cls.MAGIC and cls.claims(head)]
    if len(by_look) > 1:  # text both could read (a WFDB header of numbered records is a row of numbers too)
        by_name = [cls for cls in by_look if named.suffix.lower() in cls.EXTENSIONS]
        if not by_name:
            listed = "; ".join(f"{cls.NOUN} ({', '.join(cls.EXTENSIONS)})" for cls in by_look)
            raise RecordingError(f"{path}: reads as more than one format: {listed}; name it by the one it is")
        by_look = by_name
    for found in (by_magic, by_look):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(cls.__name__ for cls in found)
            raise FormatPackageError(f"{path}: claimed by more than one reader ({names})")
    try:
        return RecordingReader.reader_for(named)
    except UnknownFormat:
        for cls in known:
            if (whole := cls.part_of(path)) is not None:
                raise UnknownFormat(f"{path}: part of {cls.NOUN}: open {whole}") from None
        formats = sorted((cls.DESCRIPTION or cls.NOUN for cls in known), key=str.lower)
        listed = f"{', '.join(formats[:-1])} nor {formats[-1]}" if len(formats) > 1 else formats[0]
        raise UnknownFormat(
            f"{path}: neither {listed} (told by content, then by extension: "
            f"{', '.join(RecordingReader.supported())})"
        ) from None


def _not_a_file(path: Path) -> str:
    if path.is_dir():
        return "a directory: give one recording file in it (a WFDB record by its .hea)"
    return "no such file"


def open_recording(path: Path, rate: float | None = None) -> RecordingReader:
    """The reader for ``path`` (picked by content, then extension), open. ``rate`` (Hz) is for formats that
    do not carry one (CSV without a time column)."""
    if not path.is_file():
        raise RecordingError(f"{path}: {_not_a_file(path)}")
    cls = reader_class(path)
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise RecordingError(f"{path}: sample rate must be a positive number of Hz, not {rate}")
    try:
        return cls(path, rate)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from None
