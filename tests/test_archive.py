"""The history archive (processing/archive.py) and ``twitchwatch data export|import|copy``: a rich history
round-trips through both real stores (SQLite and the harness InfluxDB) with every row equal, importing twice
changes nothing, an archive of format 1 (tests/data/archive-v1, written by hand) still imports, and a
damaged archive is refused with the file and line named, leaving the store untouched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import struct
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.harness.influx import InfluxServer
from twitchwatch.cli import main
from twitchwatch.processing.archive import (
    EVENTS,
    FELT,
    FLAGS,
    FORMAT_VERSION,
    JOURNAL,
    RATES,
    TABLES,
    ArchiveError,
    check_archive,
    export_archive,
    load_archive,
    utc_text,
)
from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.flags import Flag, FlagKind, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import EventQuery, EventStore
from twitchwatch.processing.store.influx import InfluxStore
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.timeunits import DAY_NS

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
T0 = 1_780_000_000 * 1_000_000_000 // HOUR * HOUR  # an exact UTC hour in 2026
V1 = Path(__file__).resolve().parent / "data" / "archive-v1"
PRODUCER = "twitchwatch tests"


@dataclass(frozen=True)
class History:
    events: list[TwitchEvent]
    rates: list[MinuteRate]
    journal: list[JournalEntry]  # felt marks included (factor felt)
    flags: list[FlagSet]


def _flag(user: str, kind: FlagKind, muscle: str, at: int, device: str = "") -> Flag:
    day = dt.date(2026, 5, 20)
    return Flag(
        user=user,
        kind=kind,
        muscle=muscle,
        rule="≥ 5 twitches on ≥ 4 of 7 days, for ≥ 14 days",
        summary='calf_left: 9 of 14 days, "rate" 12.5/h',
        numbers={"days": 14.0, "rate_per_h": 0.1 + 0.2},
        first_day=day,
        last_day=day + dt.timedelta(days=13),
        days=(day, day + dt.timedelta(days=6), day + dt.timedelta(days=13)),
        raised_at_ns=at,
        device=device,
    )


def rich_history() -> History:
    """Two users, several muscles, devices and both sources; every event kind, with and without a measured
    frequency and a reason; minutes with and without rest tracking; days with a week-long gap between
    them, rows on the day boundaries the export reads by; awkward text everywhere."""
    events: list[TwitchEvent] = []
    rates: list[MinuteRate] = []
    kinds = list(EventKind)
    days = [0, 1, 2, 10, 11]  # a gap from day 3 to day 9
    for user in ("alice", "bob"):
        for d in days:
            base = T0 + d * DAY_NS
            for i in range(40):
                start = base + i * 17 * MINUTE + i * 1_234_567
                kind = kinds[i % len(kinds)]
                events.append(
                    TwitchEvent(
                        user=user,
                        muscle=("calf_left", "calf_right", "bíceps ✓", "neck, left")[i % 4],
                        device=("polar1", "myo 1", "")[i % 3],
                        stream=("acc", "emg", 'gyro "x"')[i % 3],
                        channel=i % 8,
                        kind=kind,
                        start_ns=start,
                        end_ns=start + 80_000_000 + i,
                        amplitude=(0.1 + 0.2) * (i + 1) * (-1) ** i,
                        unit=("mg", "µV", "")[i % 3],
                        confidence=min(1.0, i / 39),
                        source=("live", "replay")[i % 2],
                        session_id=("", "s-1", "session\nwith a newline")[i % 3],
                        dominant_hz=None if i % 5 == 0 else 12.5 + i / 3,
                        reason=(
                            'rotation up to 60 °/s for 2.0 s (band/gyro), "walking"\nsecond line'
                            if kind is EventKind.DURING_MOVEMENT
                            else ""
                        ),
                    )
                )
            events.append(replace(events[-1], start_ns=base, end_ns=base + 1))  # on the boundary
            for m in range(0, 24 * 60, 37):
                rest = None if d < 2 else (60.0 - m % 60) / 3
                rates.append(
                    MinuteRate(user, "calf_left", "polar1", "live", base + m * MINUTE, m % 7, 60.0, rest)
                )
                short = None if rest is None else min(rest, 12.75)  # at rest no longer than worn, as a worker
                rates.append(MinuteRate(user, "bíceps ✓", "", "replay", base + m * MINUTE, 0, 12.75, short))
    journal = [
        JournalEntry(
            "alice", T0 + HOUR, Factor.CAFFEINE, "2 cups", 'espresso, "double"\n=SUM(A1)', entry_id="c1"
        ),
        JournalEntry(
            "alice", T0 + 2 * HOUR, Factor.SYMPTOM, "", "cramp at night", "calf_left", entry_id="s1"
        ),
        JournalEntry("bob", T0 + 11 * DAY_NS, Factor.SLEEP, "5 h", "", entry_id="z9"),
        JournalEntry("alice", T0 + 3 * HOUR, Factor.FELT, muscle="calf_left", entry_id="f1"),
        JournalEntry("alice", T0 + 3 * HOUR + 5, Factor.FELT, entry_id="f2"),
        JournalEntry(
            "bob", T0 + DAY_NS, Factor.FELT, note="during a meeting", muscle="neck, left", entry_id="f3"
        ),
    ]
    flags = [
        FlagSet(
            "alice",
            T0 + 12 * DAY_NS,
            "worker",
            (
                _flag("alice", FlagKind.PERSISTENT, "calf_left", T0 + 12 * DAY_NS),
                _flag("alice", FlagKind.STALE_SENSOR, "", T0 + 12 * DAY_NS, device="polar1"),
            ),
        )
    ]
    return History(events, rates, journal, flags)


def write_history(store: EventStore, h: History) -> None:
    store.write_events(h.events)
    store.write_rates(h.rates)
    for entry in h.journal:
        store.add_journal_entry(entry)
    for flag_set in h.flags:
        store.replace_flags(flag_set)


def snapshot(store: EventStore) -> History:
    """Every row the store holds, in one order whatever the backend."""
    everything = EventQuery(since_ns=-(2**63))
    flags = [f for u in store.users() if (f := store.current_flags(u)) is not None]
    return History(
        sorted(store.events(everything), key=lambda e: (e.user, e.muscle, e.device, e.source, e.start_ns)),
        sorted(store.rates(everything), key=lambda r: (r.user, r.muscle, r.device, r.source, r.minute_ns)),
        sorted(store.journal_entries(-(2**63)), key=lambda j: j.entry_id),
        sorted(flags, key=lambda f: f.user),
    )


def ordered(h: History) -> History:
    return History(
        sorted(h.events, key=lambda e: (e.user, e.muscle, e.device, e.source, e.start_ns)),
        sorted(h.rates, key=lambda r: (r.user, r.muscle, r.device, r.source, r.minute_ns)),
        sorted(h.journal, key=lambda j: j.entry_id),
        sorted(h.flags, key=lambda f: f.user),
    )


@pytest.fixture
def influx_db(influxdb: InfluxServer) -> Iterator[tuple[InfluxServer, str]]:
    database = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield influxdb, database
    finally:
        influxdb.drop_database(database)


def _influx(server: InfluxServer, database: str) -> InfluxStore:
    return InfluxStore(server.base_url, database, server.auth, create=True)


def _import(path: Path, store: EventStore) -> None:
    load_archive(check_archive(path, store), store)


# --- round trips ------------------------------------------------------------------------------------------


@pytest.mark.influx
def test_sqlite_to_influxdb_and_back_keeps_every_row(
    tmp_path: Path, influx_db: tuple[InfluxServer, str]
) -> None:
    history = rich_history()
    users = ["alice", "bob"]
    with SQLiteStore(tmp_path / "first.db") as first:
        write_history(first, history)
        assert snapshot(first) == ordered(history)  # the stores themselves keep everything
        summary = export_archive(first, tmp_path / "a.zip", users, producer=PRODUCER)
    assert summary.rows == {
        EVENTS: len(history.events),
        RATES: len(history.rates),
        JOURNAL: 3,
        FELT: 3,
        FLAGS: 1,
    }
    server, database = influx_db
    with _influx(server, database) as influx:
        _import(tmp_path / "a.zip", influx)
        assert snapshot(influx) == ordered(history)
        export_archive(influx, tmp_path / "b.zip", users, producer=PRODUCER)
    with SQLiteStore(tmp_path / "second.db") as second:
        _import(tmp_path / "b.zip", second)
        assert snapshot(second) == ordered(history)


def test_importing_twice_changes_nothing_and_leaves_other_data_alone(
    tmp_path: Path, store: EventStore
) -> None:
    history = rich_history()
    with SQLiteStore(tmp_path / "src.db") as src:
        write_history(src, history)
        export_archive(src, tmp_path / "a.zip", ["alice"], producer=PRODUCER)
    carol = TwitchEvent("carol", "arm", "d", "emg", 0, EventKind.FASCICULATION, T0, T0 + 1, 1.0, "µV", 0.5)
    store.write_events([carol])
    _import(tmp_path / "a.zip", store)
    once = snapshot(store)
    _import(tmp_path / "a.zip", store)
    assert snapshot(store) == once
    alice_only = History(
        [e for e in history.events if e.user == "alice"],
        [r for r in history.rates if r.user == "alice"],
        [j for j in history.journal if j.user == "alice"],
        history.flags,
    )
    assert once == ordered(replace(alice_only, events=[*alice_only.events, carol]))


def test_newer_flags_in_the_store_stay_current(tmp_path: Path, store: EventStore) -> None:
    old = FlagSet("alice", T0, "worker", (_flag("alice", FlagKind.RISING, "calf_left", T0),))
    with SQLiteStore(tmp_path / "src.db") as src:
        src.replace_flags(old)
        export_archive(src, tmp_path / "a.zip", ["alice"], producer=PRODUCER)
    newer = FlagSet("alice", T0 + HOUR, "worker", ())
    store.replace_flags(newer)
    summary = load_archive(check_archive(tmp_path / "a.zip", store), store)
    assert summary.flags_kept == ("alice",)
    assert store.current_flags("alice") == newer


def test_a_format_1_archive_imports_with_rest_unknown(store: EventStore) -> None:
    """tests/data/archive-v1: written by hand in format 1 (stores before rest tracking: no reason, no
    rest_s, no felt marks), kept so that every later twitchwatch is checked to read it."""
    checked = check_archive(V1, store)
    assert checked.manifest.version == 1 < FORMAT_VERSION
    assert checked.device_map is not None
    assert b"[devices.polar1]" in checked.device_map
    summary = load_archive(checked, store)
    assert summary.rows == {EVENTS: 3, RATES: 3, JOURNAL: 2, FLAGS: 1}
    got = snapshot(store)
    assert [(e.muscle, e.kind, e.start_ns, e.dominant_hz, e.reason) for e in got.events] == [
        ("calf_left", EventKind.FASCICULATION, 1780000000123456789, 143.25, ""),
        ("calf_left", EventKind.ARTIFACT, 1780000030000000000, None, ""),
        ("forearm_right", EventKind.MYOCLONIC_JERK, 1780000001000000000, None, ""),
    ]
    assert got.events[0].amplitude == 0.30000000000000004  # the shortest text of the double, read exactly
    assert [(r.minute_ns, r.twitches, r.monitored_s, r.rest_s) for r in got.rates] == [
        (1780000020000000000, 2, 60.0, None),
        (1780000080000000000, 0, 31.5, None),
        (1780000020000000000, 1, 60.0, None),
    ]
    assert [(j.entry_id, j.factor, j.note) for j in got.journal] == [
        ("a1", Factor.CAFFEINE, 'espresso, "double"\nat the station'),
        ("b2", Factor.SYMPTOM, ""),
    ]
    (flags,) = got.flags
    assert (flags.user, flags.computed_by, [f.kind for f in flags.flags]) == (
        "me",
        "worker",
        [FlagKind.PERSISTENT],
    )
    load_archive(check_archive(V1, store), store)
    assert snapshot(store) == got  # idempotent for an old format too


@pytest.mark.parametrize(
    ("value", "files"), [(TwitchEvent, (EVENTS,)), (MinuteRate, (RATES,)), (JournalEntry, (JOURNAL, FELT))]
)
def test_every_field_of_a_stored_value_has_a_column(value: type, files: tuple[str, ...]) -> None:
    """A field added to a stored value needs a new format version (a column and a migration), or the
    archive would silently leave it behind."""
    for name in files:
        columns = set(TABLES[FORMAT_VERSION][name])
        missing = (
            {f.name for f in dataclasses.fields(value)} - columns - ({"factor"} if name == FELT else set())
        )
        assert not missing, (
            f"{name} lacks {missing}: add them in a new format version (processing/archive.py)"
        )


def test_utc_text_is_exact_to_the_nanosecond() -> None:
    assert utc_text(1780000000123456789) == "2026-05-28T20:26:40.123456789Z"
    assert utc_text(-1) == "1969-12-31T23:59:59.999999999Z"


# --- damaged archives -------------------------------------------------------------------------------------


def _unpacked(tmp_path: Path) -> Path:
    """A small, well-formed archive of the current format, unpacked to a folder the tests then damage."""
    history = rich_history()
    with SQLiteStore(tmp_path / "src.db") as src:
        write_history(src, replace(history, events=history.events[:30], rates=history.rates[:30]))
        export_archive(src, tmp_path / "ok.zip", ["alice", "bob"], producer=PRODUCER)
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "ok.zip") as zf:
        zf.extractall(folder)
    return folder


def _manifest(folder: Path) -> dict[str, object]:
    doc = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _reseal(folder: Path, name: str, rows: int | None = None) -> None:
    """Make the manifest agree with the file again: what a careless writer (or a person editing both)
    leaves, so that the checks behind the checksum are the ones that speak."""
    doc = _manifest(folder)
    data = (folder / name).read_bytes()
    files = doc["files"]
    assert isinstance(files, dict)
    files[name] = {**files[name], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if rows is not None:
        files[name]["rows"] = rows
    (folder / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")


def _edit_line(folder: Path, name: str, edit: tuple[str, str], line: int | None = None) -> int:
    """Replace ``edit[0]`` by ``edit[1]`` on ``line``, or on the first line that starts a row (with a user's
    name) and holds ``edit[0]``; the line's number."""
    lines = (folder / name).read_text(encoding="utf-8").split("\n")
    if line is None:
        line = 1 + next(
            i for i, text in enumerate(lines) if text.startswith(("alice,", "bob,")) and edit[0] in text
        )
    assert edit[0] in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(edit[0], edit[1], 1)
    (folder / name).write_text("\n".join(lines), encoding="utf-8")
    return line


def _refused(path: Path, store: EventStore, file: str | None, line: int | None, words: str) -> None:
    with pytest.raises(ArchiveError) as info:
        check_archive(path, store)
    assert (info.value.file, info.value.line) == (file, line), str(info.value)
    assert words in str(info.value)
    assert store.users() == []  # nothing was written


def test_a_zip_of_the_unpacked_folder_imports(tmp_path: Path, store: EventStore) -> None:
    """Zipped again by a file manager: one folder down, with a Mac's resource forks beside it."""
    folder = _unpacked(tmp_path)
    with zipfile.ZipFile(tmp_path / "again.zip", "w") as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"my history/{path.name}")
            zf.writestr(f"__MACOSX/my history/._{path.name}", b"\x00\x05\x16\x07")
        zf.writestr("my history/.DS_Store", b"\x00")
    _import(tmp_path / "again.zip", store)
    with SQLiteStore(tmp_path / "src.db") as src:
        assert snapshot(store) == snapshot(src)


def test_a_changed_byte_is_refused_by_its_checksum(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    data = bytearray((folder / RATES).read_bytes())
    i = data.index(b",60.0,")
    data[i + 1 : i + 5] = b"59.0"  # same size, still a number: only the checksum can tell
    (folder / RATES).write_bytes(bytes(data))
    _refused(folder, store, RATES, None, "does not match the manifest's")


def test_a_damaged_zip_member_is_refused(tmp_path: Path, store: EventStore) -> None:
    """A flipped bit inside the compressed events: the ZIP's own CRC (or the inflater) catches it."""
    _unpacked(tmp_path)
    data = bytearray((tmp_path / "ok.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "ok.zip") as zf:
        info = zf.getinfo(EVENTS)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)  # the local header's
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0x10
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    _refused(tmp_path / "bad.zip", store, EVENTS, None, "the archive is damaged")


def test_a_truncated_file_is_refused(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    data = (folder / EVENTS).read_bytes()
    (folder / EVENTS).write_bytes(data[: len(data) // 2])
    _refused(folder, store, EVENTS, None, f"cut short: {len(data) // 2} of {len(data)} bytes")


def test_a_truncated_zip_is_refused(tmp_path: Path, store: EventStore) -> None:
    _unpacked(tmp_path)
    data = (tmp_path / "ok.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) - 100])
    _refused(tmp_path / "cut.zip", store, None, None, "not a ZIP archive, or it was cut short")


def test_a_malformed_line_is_named(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    line = _edit_line(folder, EVENTS, (",mg,", ",mg,0.5,"))  # one field too many
    _reseal(folder, EVENTS)
    _refused(folder, store, EVENTS, line, "17 fields, the header has 16 columns")


def test_a_bad_cell_is_named_with_its_column_and_the_checksum(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    line = _edit_line(folder, RATES, (",60.0,", ",6O.0,"))  # a letter O for a zero: same size
    _refused(
        folder, store, RATES, line, "monitored_s: '6O.0' is not a number (and the file's SHA-256 does not"
    )


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ((",0,60.0,", ",-50,60.0,"), "twitches: -50 is not a count"),
        ((",0,60.0,", ",0,1e300,"), "monitored_s: 1e+300 is not within a minute"),
        ((",0,60.0,", ",0,60.0,75.0"), "rest_s: 75.0 is not within the 60.0 s monitored"),
    ],
)
def test_an_impossible_minute_is_refused(
    tmp_path: Path, store: EventStore, edit: tuple[str, str], words: str
) -> None:
    """Well-formed cells that no worker writes (−50 twitches, 1e300 s worn, more rest than worn) would skew
    every rate and flag the minute enters: refused by name, with the checksum agreeing."""
    folder = _unpacked(tmp_path)
    line = _edit_line(folder, RATES, edit)
    _reseal(folder, RATES)
    _refused(folder, store, RATES, line, words)


def test_a_device_map_nested_too_deeply_is_refused(tmp_path: Path, store: EventStore) -> None:
    """tomllib parses nesting recursively: an archive's device map of 5,000 nested arrays raised
    RecursionError out of the import ("a bug in twitchwatch")."""
    folder = _unpacked(tmp_path)
    data = ("x = " + "[" * 5000 + "]" * 5000 + "\n").encode()
    (folder / "device-map.toml").write_bytes(data)
    doc = _manifest(folder)
    files = doc["files"]
    assert isinstance(files, dict)
    files["device-map.toml"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
    _refused(folder, store, "device-map.toml", None, "nested too deeply")


def test_an_unknown_column_is_refused(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    _edit_line(folder, JOURNAL, (",note", ",note,mood"), line=1)
    _reseal(folder, JOURNAL)
    _refused(folder, store, JOURNAL, 1, "unknown column 'mood'")


def test_a_newer_format_version_is_refused(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    doc = _manifest(folder)
    doc["format_version"] = FORMAT_VERSION + 1
    (folder / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
    _refused(folder, store, "manifest.json", None, "upgrade twitchwatch")


def test_damage_in_the_last_file_refuses_the_whole_archive(tmp_path: Path, store: EventStore) -> None:
    """Flags are read last: everything before them is fine, and still nothing is written."""
    folder = _unpacked(tmp_path)
    flags = (folder / FLAGS).read_text(encoding="utf-8")
    (folder / FLAGS).write_text(flags + "{not json\n", encoding="utf-8")
    _reseal(folder, FLAGS, rows=2)
    _refused(folder, store, FLAGS, 2, "not valid JSON")


def test_a_row_of_a_user_the_manifest_does_not_name_is_refused(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    _edit_line(folder, FELT, (",alice,", ",mallory,"), line=2)
    _reseal(folder, FELT)
    _refused(folder, store, FELT, 2, "user: 'mallory' is not among the manifest's users")


def test_a_readable_time_that_disagrees_with_its_ns_is_refused(tmp_path: Path, store: EventStore) -> None:
    folder = _unpacked(tmp_path)
    _edit_line(folder, EVENTS, ("T", "T0"), line=2)  # breaks start_utc only
    _reseal(folder, EVENTS)
    with pytest.raises(ArchiveError, match=r"start_utc: .* is not start_ns"):
        check_archive(folder, store)


@pytest.mark.influx
def test_a_value_the_target_cannot_hold_is_refused_before_any_write(
    tmp_path: Path, influx_db: tuple[InfluxServer, str]
) -> None:
    """SQLite keeps a muscle with a control character; InfluxDB's line protocol cannot carry it."""
    history = rich_history()
    odd = replace(history.rates[-1], muscle="calf\x01left")
    with SQLiteStore(tmp_path / "src.db") as src:
        write_history(src, replace(history, rates=[*history.rates, odd]))
        export_archive(src, tmp_path / "a.zip", ["alice", "bob"], producer=PRODUCER)
    server, database = influx_db
    with _influx(server, database) as influx:
        with pytest.raises(ArchiveError, match="control character") as info:
            check_archive(tmp_path / "a.zip", influx)
        assert info.value.file == RATES
        with zipfile.ZipFile(tmp_path / "a.zip") as zf:
            lines = zf.read(RATES).decode().split("\n")
        assert info.value.line is not None
        assert "calf\x01left" in lines[info.value.line - 1]
        assert influx.users() == []


# --- the command line -------------------------------------------------------------------------------------


@pytest.fixture
def env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "tw.db"
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("TWITCHWATCH_USER", "alice")
    return path


def test_cli_export_and_import_with_the_device_map(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    device_map = tmp_path / "devices.toml"
    shutil.copy(V1 / "device-map.toml", device_map)
    monkeypatch.setenv("TWITCHWATCH_CONFIG", str(device_map))
    history = rich_history()
    with SQLiteStore(env) as store:
        write_history(store, history)
    assert main(["data", "export", str(tmp_path / "me.zip")]) == 0
    out, err = capsys.readouterr()
    assert "wrote " in out
    assert "users: alice" in out
    assert f"the device map ({device_map})" in out
    assert err == ""  # not a terminal, and done within a minute: no progress lines
    with zipfile.ZipFile(tmp_path / "me.zip") as zf:
        assert zf.read("device-map.toml") == device_map.read_bytes()

    target = tmp_path / "restored.db"
    written_map = tmp_path / "restored" / "devices.toml"
    argv = ["data", "import", str(tmp_path / "me.zip"), "--store", f"sqlite:///{target}"]
    assert main([*argv, "--device-map-to", str(written_map)]) == 0
    out = capsys.readouterr().out
    assert "checked " in out
    assert "format 3" in out
    assert "events " in out
    assert written_map.read_bytes() == device_map.read_bytes()
    with SQLiteStore(target) as restored:
        got = snapshot(restored)
    assert got.events == sorted(
        (e for e in history.events if e.user == "alice"),
        key=lambda e: (e.muscle, e.device, e.source, e.start_ns),
    )
    assert main([*argv, "--device-map-to", str(written_map)]) == 0  # the same file again: fine
    written_map.write_text("# mine\n", encoding="utf-8")
    assert main([*argv, "--device-map-to", str(written_map)]) == 2
    assert "exists and differs" in capsys.readouterr().err


def test_cli_export_names_the_users_a_store_holds(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(env) as store:
        write_history(store, replace(rich_history(), events=[], rates=[], flags=[]))
    assert main(["data", "export", str(tmp_path / "x.zip"), "--user", "carol"]) == 2
    assert "holds nothing of 'carol' (it holds: alice, bob)" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
    assert main(["data", "export", str(tmp_path / "x.zip"), "--all-users"]) == 0
    assert "users: alice, bob" in capsys.readouterr().out
    assert main(["data", "export", str(tmp_path / "x.zip")]) == 2
    assert "exists already" in capsys.readouterr().err


def test_cli_import_of_a_damaged_archive_exits_2_naming_file_and_line(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _unpacked(tmp_path)
    line = _edit_line(folder, EVENTS, (",live,", ",dead,"))
    _reseal(folder, EVENTS)
    assert main(["data", "import", str(folder)]) == 2
    assert f"events.csv line {line}: source: 'dead' is not one of live, replay" in capsys.readouterr().err
    with SQLiteStore(env) as store:
        assert store.users() == []


@pytest.mark.influx
def test_cli_copy_between_sqlite_and_influxdb(
    env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    influx_db: tuple[InfluxServer, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, database = influx_db
    monkeypatch.setenv("TWITCHWATCH_INFLUX_USERNAME", server.username)
    monkeypatch.setenv("TWITCHWATCH_INFLUX_PASSWORD", server.password)
    influx_url = f"influxdb://{server.base_url.removeprefix('http://')}/{database}"
    history = rich_history()
    with SQLiteStore(env) as store:
        write_history(store, history)
    assert main(["data", "copy", "--from", f"sqlite:///{env}", "--to", influx_url, "--all-users"]) == 0
    assert "copied alice, bob from sqlite:///" in capsys.readouterr().out
    back = tmp_path / "back.db"
    assert main(["data", "copy", "--from", influx_url, "--to", f"sqlite:///{back}", "--all-users"]) == 0
    with SQLiteStore(back) as store:
        assert snapshot(store) == ordered(history)
    assert main(["data", "copy", "--from", influx_url, "--to", influx_url]) == 2
    assert "the same store" in capsys.readouterr().err
