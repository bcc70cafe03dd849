"""InfluxDB 1.x least privilege on the harness's InfluxDB 1.6.7 (auth on), with the statements
docs/reliability.md gives operators, and the rule that a read never creates a database.

Each test makes its own database and users through the harness's admin and drops them afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness.influx import InfluxServer
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.collector.mqtt import parse_mqtt_url
from twitchwatch.collector.simulate import SimulationPlan, run_simulation
from twitchwatch.processing.events import TWITCH_KINDS, EventKind, TwitchEvent
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import EventQuery, InfluxAuth, StoreError, open_store
from twitchwatch.processing.store.influx import InfluxStore
from twitchwatch.processing.worker import Worker

pytestmark = pytest.mark.influx

NS = 1_000_000_000
HOSTILE = "x'; DROP DATABASE twitchwatch; --"


@dataclass(frozen=True)
class Db:
    server: InfluxServer
    name: str

    @property
    def url(self) -> str:
        return f"influxdb://127.0.0.1:{self.server.port}/{self.name}"

    def user(self, privilege: str) -> InfluxAuth:
        """A new non-admin user with ``privilege`` (READ, WRITE or ALL) on this database only, made
        with the statements an operator runs."""
        name, password = f"u{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
        self.server.query(f"CREATE USER \"{name}\" WITH PASSWORD '{password}'")
        self.server.query(f'GRANT {privilege} ON "{self.name}" TO "{name}"')
        return InfluxAuth(username=name, password=password)


def databases(server: InfluxServer) -> set[str]:
    response = httpx.get(
        f"{server.base_url}/query",
        params={"q": "SHOW DATABASES"},
        auth=(server.username, server.password),
        timeout=10,
    )
    response.raise_for_status()
    series = response.json()["results"][0].get("series", [])
    return {row[0] for s in series for row in s.get("values", [])}


@pytest.fixture
def db(influxdb: InfluxServer) -> Iterator[Db]:
    name = f"access_{uuid.uuid4().hex[:10]}"
    influxdb.query(f'CREATE DATABASE "{name}"')
    yield Db(influxdb, name)
    influxdb.drop_database(name)


def twitch(start_ns: int, muscle: str = "calf_left") -> TwitchEvent:
    return TwitchEvent(
        user="me",
        muscle=muscle,
        device="sim-1",
        stream="emg",
        channel=0,
        kind=EventKind.FASCICULATION,
        start_ns=start_ns,
        end_ns=start_ns + 30_000_000,
        amplitude=0.2,
        unit="mV",
        confidence=0.9,
        source="live",
        session_id="s1",
    )


def run_cli(store_url: str, auth: InfluxAuth, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``twitchwatch …`` with this store and user (the password from a ``_FILE`` secret)."""
    secret = tmp_path / f"influx-password-{uuid.uuid4().hex[:6]}"
    secret.write_text(f"{auth.password}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    env.update(
        TWITCHWATCH_STORE_URL=store_url,
        TWITCHWATCH_INFLUX_USERNAME=auth.username or "",
        TWITCHWATCH_INFLUX_PASSWORD_FILE=str(secret),
        TWITCHWATCH_USER="me",
        TWITCHWATCH_TIMEZONE="UTC",
        HOME=str(tmp_path),
    )
    return subprocess.run(
        [sys.executable, "-m", "twitchwatch", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_read_only_user_reads_and_cannot_write(db: Db, tmp_path: Path) -> None:
    now = time.time_ns()
    events = [twitch(now - 600 * NS), twitch(now - 300 * NS, "calf_right")]
    with InfluxStore(db.server.base_url, db.name, db.server.auth) as admin:
        admin.write_events(events)
    reader = db.user("READ")

    done = run_cli(db.url, reader, tmp_path, "events", "--since", "1h", "--json")
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["muscle"] for e in printed] == ["calf_left", "calf_right"]

    with open_store(db.url, reader) as store:  # what the dashboard opens
        assert store.events(EventQuery(user="me")) == events
        with pytest.raises(StoreError, match="403") as err:
            store.write_events([twitch(now)])
        assert "not authorised" in str(err.value)
        entry = JournalEntry("me", now, Factor.CAFFEINE, "2 cups")
        with pytest.raises(StoreError, match="403"):
            store.add_journal_entry(entry)
    with InfluxStore(db.server.base_url, db.name, db.server.auth) as admin:
        assert admin.events(EventQuery()) == events
        assert admin.journal_entries(0) == []


def test_a_write_only_user_writes_and_cannot_read(db: Db) -> None:
    writer = db.user("WRITE")
    event = twitch(time.time_ns() - 60 * NS)
    with open_store(db.url, writer) as store:
        store.write_events([event])
        with pytest.raises(StoreError, match="403"):
            store.events(EventQuery())
    with InfluxStore(db.server.base_url, db.name, db.server.auth) as admin:
        assert admin.events(EventQuery()) == [event]


async def test_the_worker_with_a_user_scoped_to_its_database(
    db: Db, mosquitto: MosquittoServer, influxdb: InfluxServer
) -> None:
    """ALL on its database, nothing else: the worker reads back what it stored (a restarted stream's
    minute, the history its flags are computed from), so WRITE alone is not enough for it."""
    scoped = db.user("ALL")
    target = parse_mqtt_url(mosquitto.url)
    user = f"scoped{uuid.uuid4().hex[:6]}"
    start = dt.datetime.now().astimezone().replace(microsecond=0) - dt.timedelta(hours=1)
    plan = SimulationPlan(("calf_left",), "emg", start, 60.0, None, 30.0, 3, user, chunk=100)
    store = open_store(db.url, scoped, create=True)  # as `twitchwatch process` opens it
    try:
        worker = Worker(target, store, user=user, client_id=f"scoped-{user}", flush_interval=0.2)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(worker.connected.wait(), 30)
        sent = await run_simulation(plan, target)
        deadline = time.monotonic() + 120
        while worker.stats.frames < sent.frames and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        worker.stop()
        await asyncio.wait_for(task, 60)
        assert worker.stats.frames == sent.frames
        assert worker.stats.store_errors == 0
        assert store.events(EventQuery(user=user, kinds=TWITCH_KINDS))
        assert sum(r.monitored_s for r in store.rates(EventQuery(user=user))) == pytest.approx(60.0, abs=0.5)
        entry = JournalEntry(user, time.time_ns(), Factor.EXERCISE, "run")
        store.add_journal_entry(entry)
        assert store.delete_journal_entry(entry.entry_id)
    finally:
        store.close()
    other = f"other_{uuid.uuid4().hex[:8]}"
    influxdb.query(f'CREATE DATABASE "{other}"')
    try:
        with (
            InfluxStore(influxdb.base_url, other, scoped) as elsewhere,
            pytest.raises(StoreError, match="403"),
        ):
            elsewhere.write_events([twitch(time.time_ns())])
    finally:
        influxdb.drop_database(other)


READS = {
    "events": ("events", "--since", "30d"),
    "flags": ("flags", "--json"),
    "journal-list": ("journal", "list"),
    "report": ("report", "--since", "30d", "--csv", "daily.csv"),
}


@pytest.mark.parametrize("argv", READS.values(), ids=READS.keys())
def test_reads_never_create_a_database(influxdb: InfluxServer, tmp_path: Path, argv: tuple[str, ...]) -> None:
    """As the admin, who could create anything: a read of a missing database (here with a hostile
    name) fails with what to do, and every database is as it was."""
    before = databases(influxdb)
    url = f"influxdb://127.0.0.1:{influxdb.port}/{HOSTILE}"
    done = run_cli(url, influxdb.auth, tmp_path, *argv)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"has no database {HOSTILE!r}" in done.stderr
    assert "never on a read" in done.stderr
    assert databases(influxdb) == before


def test_the_first_write_creates_the_database_by_its_exact_name(influxdb: InfluxServer) -> None:
    url = f"influxdb://127.0.0.1:{influxdb.port}/{HOSTILE}"
    before = databases(influxdb)
    try:
        with open_store(url, influxdb.auth) as store:
            assert databases(influxdb) == before  # opened, not yet written
            store.add_journal_entry(JournalEntry("me", time.time_ns(), Factor.CAFFEINE, "espresso"))
            assert [e.amount for e in store.journal_entries(0)] == ["espresso"]
        assert databases(influxdb) == before | {HOSTILE}
    finally:
        influxdb.drop_database(HOSTILE)


def test_a_database_name_no_quoting_can_carry_is_refused_before_any_request() -> None:
    with pytest.raises(StoreError, match="U\\+000A"):
        InfluxStore("http://127.0.0.1:1", "tw\nDROP DATABASE tw", InfluxAuth())
