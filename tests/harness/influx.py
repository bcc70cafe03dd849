"""A private InfluxDB 1.x: free loopback ports, temp dir, auth on, an admin user and one database."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.harness import free_port, require_binary
from twitchwatch.processing.store import InfluxAuth


def _config(workdir: Path, http_port: int, rpc_port: int) -> str:
    # Every listener except HTTP is off, and nothing phones home or writes monitoring data.
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{workdir / "meta"}"
  logging-enabled = false

[data]
  dir = "{workdir / "data"}"
  wal-dir = "{workdir / "wal"}"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
  log-enabled = false
  pprof-enabled = false

[ifql]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""


def _two_ports() -> tuple[int, int]:
    while True:
        http_port, rpc_port = free_port(), free_port()
        if http_port != rpc_port:
            return http_port, rpc_port


@dataclass
class InfluxServer:
    port: int
    username: str
    password: str
    database: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_url(self) -> str:
        return f"influxdb://127.0.0.1:{self.port}/{self.database}"

    @property
    def auth(self) -> InfluxAuth:
        return InfluxAuth(username=self.username, password=self.password)

    @classmethod
    def start(
        cls,
        workdir: Path,
        username: str = "admin",
        password: str = "s3cret-pw",
        database: str = "twitchwatch",
    ) -> InfluxServer:
        binary = require_binary("influxd", "influxdb")
        workdir.mkdir(parents=True, exist_ok=True)
        port, rpc_port = _two_ports()
        conf = workdir / "influxd.conf"
        conf.write_text(_config(workdir, port, rpc_port))
        log = workdir / "influxd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([binary, "-config", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        server = cls(port, username, password, database, proc, log)
        try:
            server._wait_ready(20.0)
            # With auth on and no users yet, InfluxDB allows exactly this one statement anonymously.
            server.query(
                f"CREATE USER \"{username}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES", auth=False
            )
            server.query(f'CREATE DATABASE "{database}"')
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
        raise RuntimeError(
            f"influxd did not answer /ping on {self.base_url} within {timeout} s; log:\n{tail}"
        )

    def query(self, statement: str, *, auth: bool = True) -> None:
        """Run one administrative statement (POST /query); a statement error raises."""
        response = httpx.post(
            f"{self.base_url}/query",
            data={"q": statement},
            auth=(self.username, self.password) if auth else None,
            timeout=10,
        )
        response.raise_for_status()
        for result in response.json().get("results", ()):
            if "error" in result:
                raise RuntimeError(f"influxd refused {statement!r}: {result['error']}")

    def drop_database(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"')

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
