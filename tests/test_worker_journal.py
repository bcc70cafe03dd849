"""The worker's journal and checkpoints (processing/wal.py): a worker that dies resumes to exactly the state
it had, a torn record or a snapshot of another version is handled, one directory serves one worker, and
frames that arrive before their device's status wait for it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.harness import environ_without_settings, free_port
from twitchwatch.collector.frames import Frame, SampleType, Unit, encode
from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.collector.status import DeviceStatus, StreamInfo
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.store import EventQuery
from twitchwatch.processing.store.sqlite import SQLiteStore
from twitchwatch.processing.wal import IngestJournal, JournalError, Record
from twitchwatch.processing.worker import (
    CHECKPOINT_MAX_S,
    CHECKPOINT_S,
    PRIOR_TOPIC,
    Worker,
    checkpoint_interval,
)

T0 = 1_700_000_000_000_000_000
USER = "u"
MUSCLES = {"left": "calf_left", "right": "calf_right"}


def _status(muscle: str, session: str = "run-a") -> bytes:
    info = {"emg": StreamInfo(0, "emg", 1000.0, (muscle,))}
    return DeviceStatus("online", "sim", "live", session, None, info).to_json()


def _signal(seconds: float, seed: int) -> np.ndarray:
    """Noise with a twitch every ~1.3 s (30-80 x the noise), so that events fall all through the run."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3.0, (int(seconds * 1000), 1))
    for at in np.arange(1500, x.shape[0] - 100, 1300) + rng.integers(
        -200, 200, 1 + (x.shape[0] - 1600) // 1300
    ):
        x[at : at + 10, 0] += rng.uniform(90, 240) * np.hanning(10)
    return x


def _messages(seconds: float = 40.0) -> list[tuple[str, bytes]]:
    """Two devices' statuses, then their frames interleaved as a broker delivers them."""
    out = [(f"twitchwatch/{USER}/{d}/status", _status(m)) for d, m in MUSCLES.items()]
    signals = {d: _signal(seconds, i) for i, d in enumerate(MUSCLES)}
    for i in range(int(seconds * 10)):
        for d, x in signals.items():
            raw = np.round(x[i * 100 : (i + 1) * 100] / 0.5).astype(np.int16)
            frame = Frame(0, i, T0 + i * 100_000_000, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
            out.append((f"twitchwatch/{USER}/{d}/raw/emg", encode(frame)))
    return out


def _worker(path: Path, state_dir: Path | None = None, status_wait_s: float = 0.0) -> Worker:
    return Worker(
        MqttTarget("127.0.0.1", 1),  # never connects: fed as its reader feeds it
        SQLiteStore(path),
        user=USER,
        client_id="journal-test",
        state_dir=state_dir,
        status_wait_s=status_wait_s,
    )


def _feed(worker: Worker, messages: list[tuple[str, bytes]]) -> None:
    """What the MQTT reader does with each message: journal it, then process it."""
    for topic, payload in messages:
        if worker._journal is not None:
            worker._journal.append(topic, payload)
        worker.handle(topic, payload)


def _stored(worker: Worker) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    events = worker.store.events(EventQuery(user=USER))
    rates = worker.store.rates(EventQuery(user=USER))
    return (
        sorted((e.muscle, e.device, e.kind.value, e.start_ns, e.end_ns, e.amplitude) for e in events),
        sorted((r.muscle, r.device, r.minute_ns, r.twitches, r.monitored_s, r.rest_s) for r in rates),
    )


@pytest.mark.parametrize("checkpoint_at", [0.3, 0.0])
async def test_a_worker_that_dies_resumes_to_exactly_what_it_would_have_stored(
    tmp_path: Path, checkpoint_at: float
) -> None:
    """A worker checkpoints at 30 % of the stream (or never), is abandoned at 60 % without storing a thing,
    and its successor — fed the journal, then what the broker redelivers (the last frames again) and the
    rest — stores what a worker that never died stores, event for event and minute for minute."""
    messages = _messages()
    control = _worker(tmp_path / "control.db")
    _feed(control, messages)
    await control._finish()

    state = tmp_path / "state"
    dead = _worker(tmp_path / "resumed.db", state)
    dead._recover()
    cut, checkpoint = int(len(messages) * 0.6), int(len(messages) * checkpoint_at)
    _feed(dead, messages[:checkpoint])
    if checkpoint:
        dead._checkpoint(force=True)
    _feed(dead, messages[checkpoint:cut])
    assert dead._journal is not None
    dead._journal.close()  # killed: nothing stored, nothing finished

    resumed = _worker(tmp_path / "resumed.db", state)
    resumed._recover()
    assert resumed.stats.journal_replayed == cut - checkpoint
    _feed(resumed, messages[cut - 6 : cut])  # unacknowledged when it died: the broker sends them again
    assert resumed.stats.duplicates == 6
    _feed(resumed, messages[cut:])
    await resumed._finish()

    events, rates = _stored(resumed)
    assert (events, rates) == _stored(control)
    twitches = [e for e in events if e[2] == EventKind.FASCICULATION.value]
    assert {e[0] for e in twitches} == set(MUSCLES.values())
    assert len(twitches) >= 50
    assert sum(r[3] for r in rates) == len(twitches)  # type: ignore[misc]


async def test_the_same_stream_again_through_a_new_worker_replaces_its_minute(tmp_path: Path) -> None:
    """A worker without a journal of it (a fresh start, ``twitchwatch replay`` of the same file again)
    gets a stream it has stored before. The stream began 20 s into its minute, past the stored 20 s taken
    from the minute's start: the row was added to (40 s worn, 30 twitches of 15 stored). It is replaced."""
    messages = _messages(20)
    control = _worker(tmp_path / "control.db")
    _feed(control, messages)
    await control._finish()
    first = _worker(tmp_path / "twice.db")
    _feed(first, messages)
    await first._finish()
    again = _worker(tmp_path / "twice.db")
    _feed(again, messages)
    await again._finish()
    assert _stored(again) == _stored(control)


@pytest.mark.parametrize("checkpoint", ["none", "with the lookup in flight"])
async def test_a_minute_written_before_the_kill_is_not_added_to_its_replay(
    tmp_path: Path, checkpoint: str
) -> None:
    """The dead worker wrote its running minute tallies, then died before a checkpoint held their
    lookups' answers. Its successor replays the frames those tallies came from: asked again, the store
    answered with those very tallies, and — the stream starting 20 s into its minute, after what they
    covered — they were taken for a predecessor's and added (4 minute rows off in the kill test). The
    answer the dead run had is journaled and serves the replay."""
    messages = _messages()
    control = _worker(tmp_path / "control.db")
    _feed(control, messages)
    await control._finish()
    assert T0 % 60_000_000_000 == 20_000_000_000  # the stream starts 20 s into its minute

    state = tmp_path / "state"
    dead = _worker(tmp_path / "resumed.db", state)
    dead._recover()
    cut = int(len(messages) * 0.6)
    _feed(dead, messages[: cut // 2])  # the lookups are asked here, answered at the gather below
    if checkpoint != "none":
        dead._checkpoint(force=True)
    await asyncio.gather(*dead._prior_reads)
    await dead._flush(final=False)
    assert dead.store.rates(EventQuery(user=USER))  # its running tallies are stored
    _feed(dead, messages[cut // 2 : cut])
    assert dead._journal is not None
    dead._journal.close()  # killed

    resumed = _worker(tmp_path / "resumed.db", state)
    resumed._recover()
    await asyncio.gather(*resumed._prior_reads)
    _feed(resumed, messages[cut:])
    await resumed._finish()
    assert _stored(resumed) == _stored(control)


@pytest.mark.parametrize("snapshot", ["kept", "of another version"])
async def test_a_clean_stop_leaves_the_muscles_for_the_next_start(tmp_path: Path, snapshot: str) -> None:
    """After a clean stop the journal is empty, and a device whose frames come before its retained status
    (as a broker delivers what it queued for the worker) still gets its muscle: from the snapshot, or when
    another version wrote that, from the devices' statuses saved beside it."""
    state = tmp_path / "state"
    first = _worker(tmp_path / "first.db", state)
    first._recover()
    _feed(first, _messages(5))
    await first._finish()
    assert first._journal is not None
    first._journal.close()
    directory = state / "worker-journal-test"
    assert [f.stat().st_size for f in directory.glob("journal-*.log")] == [0]
    saved = json.loads((directory / "devices.json").read_text())
    assert sorted(saved) == [f"{USER}/left", f"{USER}/right"]
    if snapshot != "kept":
        data = (directory / "snapshot.pkl").read_bytes()
        (directory / "snapshot.pkl").write_bytes(data.replace(b'"fingerprint": "', b'"fingerprint": "0', 1))

    second = _worker(tmp_path / "second.db", state)
    second._recover()
    assert second.stats.journal_replayed == 0
    x = _signal(3, 9)
    raw = np.round(x / 0.5).astype(np.int16)
    for i in range(30):  # the device went on while the worker was away: no status in between
        t0 = T0 + 60 * 10**9 + i * 100_000_000
        frame = Frame(
            0, 1000 + i, t0, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw[i * 100 : (i + 1) * 100]
        )
        _feed(second, [(f"twitchwatch/{USER}/left/raw/emg", encode(frame))])
    await second._finish()
    assert second.stats.frames == 30
    events = second.store.events(EventQuery(user=USER))
    rates = second.store.rates(EventQuery(user=USER))
    assert events
    assert {e.muscle for e in events} == {r.muscle for r in rates} == {"calf_left"}


def test_frames_before_their_status_wait_for_it(tmp_path: Path) -> None:
    worker = _worker(tmp_path / "w.db", status_wait_s=2.0)
    messages = _messages(3)
    statuses, frames = messages[:2], messages[2:]
    left = [m for m in frames if "/left/" in m[0]]
    _feed(worker, left)
    assert (worker.stats.frames, worker.stats.frames_held) == (0, 30)
    _feed(worker, statuses[:1])  # the retained status, delivered after the queued frames
    assert worker.stats.frames == 30
    assert {worker.muscle(st, 0) for st in worker._streams.values()} == {"calf_left"}


def test_frames_of_a_device_that_never_announces_itself_are_named_after_their_channel(tmp_path: Path) -> None:
    worker = _worker(tmp_path / "w.db", status_wait_s=2.0)
    right = [m for m in _messages(3)[2:] if "/right/" in m[0]]
    _feed(worker, right[:10])
    assert worker.stats.frames == 0
    worker._held_since = dict.fromkeys(worker._held_since, 0.0)  # as if 2 s had passed
    worker._release_held()
    _feed(worker, right[10:])  # no longer held
    assert (worker.stats.frames, worker.stats.frames_held) == (30, 10)
    assert {worker.muscle(st, 0) for st in worker._streams.values()} == {"right.emg.ch0"}


def _journal(directory: Path, fingerprint: str = "v1") -> IngestJournal:
    return IngestJournal(directory, fingerprint)


@pytest.mark.parametrize("one_write", [False, True])
def test_a_torn_last_record_is_cut_off(tmp_path: Path, one_write: bool) -> None:
    """Whether appended one by one or as a batch in one write (``append_many``), the same bytes."""
    journal = _journal(tmp_path)
    assert journal.open().records == []
    records = [(f"t/{i}", bytes([i]) * 100) for i in range(3)]
    if one_write:
        journal.append_many(records)
    else:
        for topic, payload in records:
            journal.append(topic, payload)
    assert journal.position == 3
    journal.close()
    (segment,) = tmp_path.glob("journal-*.log")
    data = segment.read_bytes()
    segment.write_bytes(data[:-40])  # killed in the middle of writing the third
    again = _journal(tmp_path)
    assert again.open().records == [Record("t/0", bytes(100)), Record("t/1", b"\x01" * 100)]
    again.append("t/3", b"x")
    again.close()
    assert [r.topic for r in _journal(tmp_path).open().records] == ["t/0", "t/1", "t/3"]


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from twitchwatch.processing.wal import IngestJournal

directory = Path(sys.argv[1])
journal = IngestJournal(directory, "v1")
journal.open()
journal.append_many([("t/0", b"a" * 100)])
(segment,) = directory.glob("journal-*.log")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (segment.stat().st_size + 1000, resource.RLIM_INFINITY))
try:
    journal.append_many([(f"t/big{i}", b"b" * 100) for i in range(20)])  # ~2.2 kB: cut at 1 kB
except OSError as exc:
    print("refused", exc.errno)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
journal.append_many([("t/1", b"c" * 100)])
journal.close()
"""


def test_a_batch_the_disk_cuts_short_leaves_no_torn_record(tmp_path: Path) -> None:
    """A full disk mid-batch (here a file-size limit: the kernel writes what fits, then refuses) must not
    leave a torn record: the journal ends at the first one, and what the worker appended after it would be
    lost to a restart. The batch goes whole; the next one is kept."""
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused"), done.stdout
    assert [r.topic for r in _journal(tmp_path).open().records] == ["t/0", "t/1"]


def test_a_checkpoint_drops_what_it_covers(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.open()
    journal.append("t/0", b"a")
    journal.checkpoint({"state": 1})
    journal.append("t/1", b"b")
    journal.close()
    recovered = _journal(tmp_path).open()
    assert (recovered.state, recovered.records, recovered.stale) == (
        {"state": 1},
        [Record("t/1", b"b")],
        False,
    )


def test_a_snapshot_of_another_version_is_not_loaded(tmp_path: Path) -> None:
    journal = _journal(tmp_path, "old")
    journal.open()
    journal.checkpoint({"detectors": "of the old code"})
    journal.append("t/1", b"b")
    journal.close()
    recovered = _journal(tmp_path, "new").open()
    assert (recovered.state, recovered.records, recovered.stale) == (None, [Record("t/1", b"b")], True)


def test_a_segment_that_cannot_be_opened_keeps_the_journal_on_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's new segment that cannot be opened (no inode left, a read-only remount) fails that
    checkpoint, not the journal: appends go on in the old segment, and the next checkpoint rolls. The old
    descriptor was closed first and kept its number: every append failed (EBADF) until a restart, and a
    file opened meanwhile under that number got the journal's records."""
    journal = _journal(tmp_path)
    journal.open()
    journal.append("t/0", b"a")
    real_open = os.open

    def no_inode(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if Path(path).name.startswith("journal-"):
            raise OSError(28, "No space left on device")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_inode)
    with pytest.raises(OSError, match="No space"):
        journal.checkpoint({"state": 1})
    monkeypatch.setattr(os, "open", real_open)
    bystander = real_open(tmp_path / "bystander", os.O_WRONLY | os.O_CREAT, 0o600)  # may take a freed number
    journal.append("t/1", b"b")  # not EBADF, and not into the bystander
    os.close(bystander)
    assert (tmp_path / "bystander").read_bytes() == b""
    journal.close()
    recovered = _journal(tmp_path).open()
    assert [r.topic for r in recovered.records] == ["t/0", "t/1"]


@pytest.mark.parametrize("damage", ["module name", "one bit"])
def test_a_damaged_snapshot_is_set_aside_whatever_it_raises(tmp_path: Path, damage: str) -> None:
    """A snapshot damaged on disk: a module name changed raised ModuleNotFoundError, which stopped every
    start with "a bug" and kept the file; a flipped bit in the pickled body mostly loaded silently. Now
    its checksum is checked and anything unpickling raises sets it aside."""
    journal = _journal(tmp_path)
    journal.open()
    journal.checkpoint({"state": EventKind.FASCICULATION, "numbers": list(range(100))})
    journal.close()
    path = tmp_path / "snapshot.pkl"
    data = path.read_bytes()
    if damage == "module name":
        data = data.replace(b"twitchwatch.processing.events", b"twitchwatch.processing.evxnts")
    else:
        data = data[:-20] + bytes([data[-20] ^ 0x04]) + data[-19:]
    path.write_bytes(data)
    recovered = _journal(tmp_path).open()
    assert recovered.state is None
    assert (tmp_path / "snapshot.damaged").exists()


def test_one_directory_serves_one_worker(tmp_path: Path) -> None:
    first = _journal(tmp_path)
    first.open()
    with pytest.raises(JournalError, match="another worker is using"):
        _journal(tmp_path).open()
    first.close()
    _journal(tmp_path).open()


def test_twitchwatch_process_says_another_worker_holds_its_state_directory(tmp_path: Path) -> None:
    """The command's refusal is the documented message alone, not "a bug in twitchwatch" with a traceback
    (the worker ran in a TaskGroup, whose ExceptionGroup hid the JournalError from the command's handler)."""
    state = tmp_path / "state"
    holder = _journal(state / "worker-locked-test")
    holder.open()
    env = environ_without_settings(
        TWITCHWATCH_STATE_DIR=str(state),
        TWITCHWATCH_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
        TWITCHWATCH_STORE_URL=f"sqlite:///{tmp_path / 'events.db'}",
    )
    argv = [sys.executable, "-m", "twitchwatch", "process", "--client-id", "locked-test"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    holder.close()
    assert done.returncode == 1, done.stderr
    assert "error: another worker is using" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_journal_on_a_full_disk_does_not_stop_the_worker(tmp_path: Path) -> None:
    worker = _worker(tmp_path / "w.db", tmp_path / "state")
    worker._recover()
    journal = worker._journal
    assert journal is not None
    assert journal._fd is not None
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC, as on a full disk
    messages = _messages(3)
    worker.receive_many(messages[:5])  # journaled as one batch
    worker.receive_many(messages[5:])
    assert worker.stats.journal_errors == len(messages) + 2  # and the two muscles' prior lookups
    assert worker.stats.frames == len(messages) - 2  # every frame handled all the same
    journal.close()


def test_a_message_past_any_limit_is_not_journaled_and_cuts_off_nothing(tmp_path: Path) -> None:
    """A 65-MiB message beside a good stream (no broker limit stops it: Mosquitto's default is 256 MiB)
    was journaled before the size check refused it; on recovery a record past the journal's 64-MiB limit
    read as torn, and every record after it — acknowledged by then — was cut off. Now refused unjournaled."""
    worker = _worker(tmp_path / "w.db", tmp_path / "state")
    worker._recover()
    messages = _messages(3)
    huge = (messages[2][0], bytes(65 * 2**20))
    worker.receive_many(messages[:3])
    worker.receive_many([huge])
    worker.receive_many(messages[3:])
    assert worker.stats.frames == len(messages) - 2  # the statuses are no frames
    assert worker._journal is not None
    worker._journal.close()
    records = _journal(worker._journal.directory, worker._journal.fingerprint).open().records
    assert [(r.topic, r.payload) for r in records if r.topic != PRIOR_TOPIC] == messages


def test_a_message_not_journaled_leaves_nothing_older_to_recover(tmp_path: Path) -> None:
    """A message the journal could not take is acknowledged all the same: from then on the snapshot and
    the journal miss what the broker let go. Recovered after a kill, the snapshot's minute tallies (older
    than the rows stored since) were written over them — a muscle's minute from 59 s and 33 twitches to 27 s
    and 15 (a state directory filled, then a SIGKILL). So they are removed, and a start after that begins
    fresh and adds to the stored minutes; once the disk takes writes again, a checkpoint starts anew."""
    worker = _worker(tmp_path / "w.db", tmp_path / "state")
    worker._recover()
    journal = worker._journal
    assert journal is not None
    messages = _messages(3)
    worker.receive_many(messages[:10])
    journal.checkpoint(worker._state())
    assert (journal.directory / "snapshot.pkl").exists()
    assert journal._fd is not None
    healthy = journal._fd
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC, as on a full disk
    worker.receive_many(messages[10:12])
    assert worker.stats.journal_errors == 2
    assert sorted(p.name for p in journal.directory.iterdir() if p.name != "lock") == []
    os.close(journal._fd)
    journal._fd = healthy  # the disk takes writes again
    worker.receive_many(messages[12:])
    journal.checkpoint(worker._state())
    assert (journal.directory / "snapshot.pkl").exists()
    journal.close()


def test_a_journaled_message_that_fails_again_does_not_stop_the_start(tmp_path: Path) -> None:
    """The message that stopped a worker is in its journal: a restart must not stop on it again (a crash
    loop outliving the broker's retained message). A status whose stream id overflows an int stops the
    worker as issue 14 found it; whether handling it raises or counts it, the start goes on."""
    state = tmp_path / "state"
    dead = _worker(tmp_path / "w.db", state)
    dead._recover()
    assert dead._journal is not None
    poison = (
        b'{"state":"online","profile":"sim","source":"live","session_id":"a","battery":null,'
        b'"streams":{"emg":{"stream_id":1e999,"signal":"emg","sample_rate":1000,"channels":["x"]}}}'
    )
    dead._journal.append(f"twitchwatch/{USER}/bad/status", poison)
    good = _messages(3)
    for topic, payload in good:
        dead._journal.append(topic, payload)
    dead._journal.close()

    resumed = _worker(tmp_path / "w.db", state)
    resumed._recover()
    assert resumed.stats.frames == len(good) - 2
    assert resumed.stats.journal_errors + resumed.stats.bad_status == 1
    assert resumed._journal is not None
    resumed._journal.close()


async def test_a_felt_mark_journaled_before_a_kill_is_stored_once_after_the_restart(tmp_path: Path) -> None:
    """A mark is acknowledged to the broker once journaled, but stored off the event loop: a worker killed
    in between must not lose it (it used to skip marks when replaying), and one killed after storing it must
    not store it twice. The mark without a time of its own is stored at the time it first arrived."""
    state = tmp_path / "state"
    db = tmp_path / "w.db"
    topic = f"twitchwatch/{USER}/felt"
    dead = _worker(db, state)
    dead._recover()
    before = time.time_ns()
    dead.receive(topic, b'{"muscle": "calf_left"}')  # its write task never runs: killed first
    after = time.time_ns()
    assert dead._felt_writes
    dead._checkpoint()  # a checkpoint now would drop the journal that holds the unstored mark
    assert dead.stats.felt_marks == 0
    for task in dead._felt_writes:
        task.cancel()
    assert dead._journal is not None
    dead._journal.close()

    for _ in range(2):  # the second start replays it again: the journal outlived a stored mark
        resumed = _worker(db, state)
        resumed._recover()
        await asyncio.gather(*resumed._felt_writes)
        assert resumed.stats.felt_marks == 1
        assert resumed._journal is not None
        resumed._journal.close()
    entries = SQLiteStore(db).journal_entries(user=USER)
    assert [(e.factor.value, e.muscle) for e in entries] == [("felt", "calf_left")]
    assert before - 1000 <= entries[0].time_ns <= after + 1000


def test_checkpoints_space_out_as_they_grow_costly(tmp_path: Path) -> None:
    """A snapshot holds every stream's detector: with thousands of streams it takes tens of ms on the event
    loop. The next one waits 25 times as long as the last took (at least 1 s, at most 15 s), so snapshots
    take at most ~4 % of the time; a forced one (a clean stop) is always written."""
    assert checkpoint_interval(0.002) == CHECKPOINT_S
    assert checkpoint_interval(0.1) == pytest.approx(2.5)
    assert checkpoint_interval(3.0) == CHECKPOINT_MAX_S
    worker = _worker(tmp_path / "w.db", tmp_path / "state")
    worker._recover()
    journal = worker._journal
    assert journal is not None
    _feed(worker, _messages(5))
    worker._checkpoint()
    assert journal.checkpoints == 1
    assert CHECKPOINT_S <= worker._checkpoint_every <= CHECKPOINT_MAX_S
    worker._checkpoint_every = checkpoint_interval(0.2)  # as after a 200-ms snapshot: the next in 5 s
    worker._last_checkpoint -= CHECKPOINT_S  # a second later: not due yet
    worker._checkpoint()
    assert journal.checkpoints == 1
    worker._checkpoint(force=True)
    assert journal.checkpoints == 2
    journal.close()


async def test_a_twitch_re_written_after_a_restart_takes_its_count_back(tmp_path: Path) -> None:
    """A potential half a second before a contraction is written as a twitch (and counted in its minute)
    before the contraction is seen, then re-written as during_movement. A worker killed right after a
    checkpoint taken between the two must still take the count back: it remembers which twitches it counted.
    Before, the minute kept one twitch too many."""
    from twitchwatch.collector import synth
    from twitchwatch.processing.events import TWITCH_KINDS

    second = 1_000_000_000
    t0 = T0 // (60 * second) * (60 * second)
    phys = synth.Physiology(fasciculation=20, myoclonic_jerk=0, sustained=0.5, artifact=0, snr_db=24)
    x, truth = synth.generate("emg", 1000.0, 40.0, phys, 12)
    onset = next(e.start_ns / second for e in truth if e.kind == "sustained") - 0.5
    z = np.linspace(-3, 3, 10)
    wave = -z * np.exp(-0.5 * z * z)
    i = round(onset * 1000)
    x[i : i + 10, 0] += 60 * wave / np.abs(wave).max()
    status = DeviceStatus(
        "online", "sim", "live", "run1", None, {"emg": StreamInfo(0, "emg", 1000.0, ("biceps",))}
    )
    messages = [(f"twitchwatch/{USER}/arm/status", status.to_json())]
    for k in range(400):
        raw = np.clip(np.round(x[k * 100 : (k + 1) * 100] / 0.5), -32768, 32767).astype(np.int16)
        frame = Frame(0, k, t0 + k * second // 10, 1000.0, 0.5, Unit.MICROVOLT, SampleType.INT16, raw)
        messages.append((f"twitchwatch/{USER}/arm/raw/emg", encode(frame)))

    state = tmp_path / "state"
    worker = _worker(tmp_path / "s.db", state)
    worker._recover()
    restarted = False
    for topic, payload in messages:
        assert worker._journal is not None
        worker._journal.append(topic, payload)
        worker.handle(topic, payload)
        await worker._flush(final=False)
        provisional = [
            e for e, _ in worker._rest._provisional if abs((e.start_ns - t0) / second - onset) < 0.05
        ]
        if provisional and not restarted:
            worker._checkpoint(force=True)
            worker._journal.close()  # killed right after the checkpoint
            worker = _worker(tmp_path / "s.db", state)
            worker._recover()
            restarted = True
    await worker._finish()
    assert restarted
    events = worker.store.events(EventQuery(user=USER, kinds=(*TWITCH_KINDS, EventKind.DURING_MOVEMENT)))
    at_onset = [e.kind for e in events if abs((e.start_ns - t0) / second - onset) < 0.05]
    assert at_onset == [EventKind.DURING_MOVEMENT]
    counted = sum(r.twitches for r in worker.store.rates(EventQuery(user=USER)))
    assert counted == sum(e.kind.is_twitch for e in events)
