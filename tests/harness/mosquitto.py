"""A private Mosquitto broker: free loopback port, temp dir, password file, no anonymous access."""

from __future__ import annotations

import getpass
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness import free_port, require_binary, wait_for_port


@dataclass
class MosquittoServer:
    port: int
    username: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path
    conf: Path

    @property
    def url(self) -> str:
        return f"mqtt://{self.username}:{self.password}@127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        workdir: Path,
        username: str = "twitchwatch",
        password: str = "s3cret-pw",
        *,
        persistence: bool = False,
    ) -> MosquittoServer:
        """``persistence``: sessions and queued messages survive ``restart()``, as on a production broker."""
        binary = require_binary("mosquitto", "mosquitto")
        passwd = require_binary("mosquitto_passwd", "mosquitto")
        workdir.mkdir(parents=True, exist_ok=True)
        pwfile = workdir / "passwd"
        subprocess.run([passwd, "-b", "-c", str(pwfile), username, password], check=True, capture_output=True)
        pwfile.chmod(0o600)
        port = free_port()
        log = workdir / "mosquitto.log"
        conf = workdir / "mosquitto.conf"
        # Saved at shutdown only (autosave off): a restart brings back exactly what the broker held.
        keep = (
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 0\n"
            if persistence
            else "persistence false\n"
        )
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {pwfile}\n"
            # Started as root, mosquitto would switch to its own user, which cannot read our temp dir.
            f"user {getpass.getuser()}\n"
            f"{keep}"
            # The worker's persistent session must not lose frames queued while it reconnects.
            "max_queued_messages 0\n"
            "max_inflight_messages 100\n"
            f"log_dest file {log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        return cls(port, username, password, cls._launch(binary, conf, port, log), log, conf)

    @staticmethod
    def _launch(binary: str, conf: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, 10, "mosquitto", log)
        except Exception:
            proc.kill()
            raise
        return proc

    def restart(self) -> None:
        """Start the stopped broker again on the same port with the same configuration."""
        binary = require_binary("mosquitto", "mosquitto")
        self.process = self._launch(binary, self.conf, self.port, self.log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
