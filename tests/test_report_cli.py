"""``twitchwatch flags``, ``journal`` and ``report`` through ``main()`` on a real SQLite file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pypdf
import pytest

from twitchwatch.cli import main
from twitchwatch.processing.events import EventKind, MinuteRate, TwitchEvent
from twitchwatch.processing.flag_service import compute_flag_set, flags_for_display
from twitchwatch.processing.flags import FlagRules, FlagSet
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.localtime import day_of, day_start_ns, to_ns
from twitchwatch.processing.store.sqlite import SQLiteStore

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.fixture
def db(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "tw.db"
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("TWITCHWATCH_USER", "alice")
    return path


def seed_recent(path: Path, days: int = 20) -> None:
    """The last ``days`` full UTC days, worn 08-20: calf_left one twitch every 10 min, arm none."""
    today = day_of(time.time_ns())
    rates, events = [], []
    with SQLiteStore(path) as store:
        for back in range(days, 0, -1):
            start = day_start_ns(today - dt.timedelta(days=back))
            for t in range(start + 8 * HOUR, start + 20 * HOUR, MINUTE):
                n = int((t // MINUTE) % 10 == 0)
                rates.append(MinuteRate("alice", "calf_left", "d1", "live", t, n, 60.0, 60.0))
                rates.append(MinuteRate("alice", "arm", "d2", "live", t, 0, 60.0, 60.0))
                if n:
                    end = t + 90_000_000
                    kind = EventKind.FASCICULATION
                    events.append(
                        TwitchEvent("alice", "calf_left", "d1", "acc", 0, kind, t, end, 0.1, "g", 0.9)
                    )
        store.write_rates(rates)
        store.write_events(events)


def test_flags_json_is_what_the_display_function_gives(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_recent(db)
    assert main(["flags", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    with SQLiteStore(db) as store:
        expected = flags_for_display(store, user="alice", rules=FlagRules(), computed_by="cli")
    assert shown["computed_by"] == "cli"
    del shown["computed_at"], shown["computed_at_ns"]
    for flag in shown["flags"]:
        del flag["raised_at_ns"]
    want = expected.to_json_dict()
    del want["computed_at"], want["computed_at_ns"]
    for flag in want["flags"]:
        del flag["raised_at_ns"]
    assert shown == want
    assert [f["kind"] for f in shown["flags"]] == ["persistent"]


def test_flags_text_says_where_they_come_from(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_recent(db)
    assert main(["flags"]) == 0
    out = capsys.readouterr().out
    assert "computed now from the store" in out
    assert "[persistent] calf_left" in out
    assert "rule: persistent: twitching on ≥ 5 of every 7" in out
    assert "not a medical device" in out
    with SQLiteStore(db) as store:
        computed = compute_flag_set(
            store, user="alice", now_ns=time.time_ns(), rules=FlagRules(), computed_by="worker"
        )
        store.replace_flags(computed)
    assert main(["flags", "--json"]) == 0
    assert FlagSet.from_json(capsys.readouterr().out) == computed  # the worker's set, as stored
    assert main(["flags"]) == 0
    assert "computed by the worker at" in capsys.readouterr().out


def test_journal_add_list_delete(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["journal", "add", "caffeine", "--amount", "2 cups", "--at", "2h"]) == 0
    assert main(["journal", "add", "Symptom", "--note", "cramp", "--muscle", "calf_left"]) == 0
    capsys.readouterr()
    assert main(["journal", "list", "--json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["factor"], e["amount"], e["note"], e["muscle"]) for e in entries] == [
        ("caffeine", "2 cups", "", ""),
        ("symptom", "", "cramp", "calf_left"),
    ]
    assert abs(entries[0]["time"] - (time.time() - 7200)) < 120
    coffee = entries[0]["id"]

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["journal", "delete", coffee]) == 1
    assert "not deleted" in capsys.readouterr().out
    with SQLiteStore(db) as store:
        assert len(store.journal_entries()) == 2

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["journal", "delete", coffee]) == 0
    out = capsys.readouterr().out
    assert "Delete" in out
    assert "caffeine 2 cups" in out
    assert main(["journal", "delete", entries[1]["id"], "--yes"]) == 0
    with SQLiteStore(db) as store:
        assert store.journal_entries() == []
    assert main(["journal", "delete", coffee, "--yes"]) == 2
    assert "journal list" in capsys.readouterr().err


def test_journal_rejects_an_unknown_factor(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "add", "coffee"]) == 2
    assert "factor: 'coffee' is not one of caffeine" in capsys.readouterr().err


def test_report_writes_pdf_and_csv_with_progress(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_recent(db, days=10)
    pdf, out_csv = tmp_path / "r.pdf", tmp_path / "r.csv"
    with SQLiteStore(db) as store:
        store.add_journal_entry(
            JournalEntry("alice", time.time_ns() - 3 * DAY, Factor.SYMPTOM, note="eyelid flutter")
        )
    assert main(["report", "--since", "30d", "--pdf", str(pdf), "--csv", str(out_csv)]) == 0
    err = capsys.readouterr().err
    assert "report: reading events" in err
    assert "report: done: 2 muscles, 120.0 h monitored" in err
    reader = pypdf.PdfReader(pdf)
    assert len(reader.pages) == 4
    text = " ".join(page.extract_text() for page in reader.pages)
    first = (day_of(time.time_ns()) - dt.timedelta(days=10)).isoformat()
    assert first in reader.pages[0].extract_text()
    assert "eyelid flutter" in text
    with out_csv.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["twitches_at_rest"]) for r in rows if r["muscle"] == "calf_left") == 10 * 72
    assert sum(int(r["twitches_at_rest"]) for r in rows if r["muscle"] == "arm") == 0


def test_report_as_a_command_prints_progress_not_library_chatter(db: Path, tmp_path: Path) -> None:
    """Run as people run it (its own process, logging at INFO): the PDF backend's font subsetting logs
    hundreds of INFO lines that must not reach the terminal."""
    seed_recent(db, days=3)
    run = subprocess.run(
        [sys.executable, "-m", "twitchwatch", "report", "--since", "7d", "--pdf", str(tmp_path / "r.pdf")],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[-1].startswith("report: done: 2 muscles"), lines[-3:]
    assert not [line for line in lines if not line.startswith("report: ")], lines[:5]


def test_report_needs_an_output(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--since", "7d"]) == 2
    assert "--pdf OUT.pdf" in capsys.readouterr().err


def test_journal_help_lists_the_factors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["journal", "add", "--help"])
    out = capsys.readouterr().out
    for factor in Factor:
        assert factor.value in out


def test_journal_add_at_a_time_ago_with_or_without_a_dash(db: Path) -> None:
    before = time.time_ns()
    assert main(["journal", "add", "caffeine", "--at", "-2h"]) == 0
    assert main(["journal", "add", "exercise", "--at", "90m"]) == 0
    with SQLiteStore(db) as store:
        entries = store.journal_entries(0, None, "alice")
    ago = {e.factor: (before - e.time_ns) / 60e9 for e in entries}
    assert ago[Factor.CAFFEINE] == pytest.approx(120, abs=1)
    assert ago[Factor.EXERCISE] == pytest.approx(90, abs=1)


def test_report_and_flags_count_days_in_the_configured_zone(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A twitch at 23:30 New York time each evening: on that local date in the CSV, not on the next
    (its UTC date), because the command passes TWITCHWATCH_TIMEZONE on."""
    monkeypatch.setenv("TWITCHWATCH_TIMEZONE", "America/New_York")
    zone = zoneinfo.ZoneInfo("America/New_York")
    today = day_of(time.time_ns(), zone)
    evenings = [today - dt.timedelta(days=back) for back in (3, 2, 1)]
    with SQLiteStore(db) as store:
        events, rates = [], []
        for day in evenings:
            t = to_ns(dt.datetime.combine(day, dt.time(23, 30), tzinfo=zone))
            kind = EventKind.FASCICULATION
            events.append(
                TwitchEvent("alice", "calf_left", "d1", "acc", 0, kind, t, t + 90_000_000, 0.1, "g", 0.9)
            )
            rates.append(MinuteRate("alice", "calf_left", "d1", "live", t, 1, 60.0, 60.0))
        store.write_events(events)
        store.write_rates(rates)
    out_csv = tmp_path / "r.csv"
    assert main(["report", "--since", "5d", "--csv", str(out_csv)]) == 0
    with out_csv.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    counted = {r["date"]: int(r["twitches_at_rest"]) for r in rows if int(r["twitches_at_rest"])}
    assert counted == {day.isoformat(): 1 for day in evenings}
    assert {r["timezone"] for r in rows} == {"America/New_York"}
    capsys.readouterr()
    seed_recent(db)
    assert main(["flags"]) == 0
    assert "dates (America/New_York): " in capsys.readouterr().out


def test_times_without_an_offset_are_read_and_shown_in_the_configured_zone(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWITCHWATCH_TIMEZONE", "America/New_York")
    assert main(["journal", "add", "caffeine", "--at", "2026-03-08T01:30"]) == 0  # EST
    assert main(["journal", "add", "sleep", "--at", "2026-03-08T03:30"]) == 0  # EDT: clocks went forward
    with SQLiteStore(db) as store:
        times = {e.factor: e.time_ns for e in store.journal_entries(0, None, "alice")}
    assert times[Factor.CAFFEINE] == to_ns(dt.datetime(2026, 3, 8, 6, 30, tzinfo=dt.UTC))
    assert times[Factor.SLEEP] == to_ns(dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC))
    capsys.readouterr()
    assert main(["journal", "list", "--since", "2026-03-01"]) == 0
    out = capsys.readouterr().out
    assert "2026-03-08T01:30-05:00 caffeine" in out
    assert "2026-03-08T03:30-04:00 sleep" in out


def test_events_lists_the_ones_during_movement_with_why_and_flags_json_says_what_the_rates_are(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time_ns()
    counted = TwitchEvent(
        "alice",
        "calf_left",
        "d1",
        "emg",
        0,
        EventKind.FASCICULATION,
        now - HOUR,
        now - HOUR + 10**7,
        50.0,
        "µV",
        0.9,
    )
    moved = TwitchEvent(
        "alice",
        "calf_left",
        "d1",
        "emg",
        0,
        EventKind.DURING_MOVEMENT,
        now - 30 * MINUTE,
        now - 30 * MINUTE + 10**7,
        60.0,
        "µV",
        0.8,
        reason="fasciculation: movement 14.0 s (d1/acc)",
    )
    with SQLiteStore(db) as store:
        store.write_events([counted, moved])
    assert main(["events", "--since", "2h"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "during_movement" in lines[1]
    assert lines[1].endswith("(fasciculation: movement 14.0 s (d1/acc))")
    assert "2 events (1 during movement: not counted as twitches)" in err
    assert main(["events", "--since", "2h", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["reason"]) for r in rows] == [
        ("fasciculation", ""),
        ("during_movement", "fasciculation: movement 14.0 s (d1/acc)"),
    ]
    assert main(["events", "--since", "2h", "--csv"]) == 0
    assert list(csv.DictReader(io.StringIO(capsys.readouterr().out)))[1]["reason"] == moved.reason
    assert main(["flags", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rates"].startswith("twitches per hour at rest")
