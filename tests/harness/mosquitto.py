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

    @property
    def url(self) -> str:
        return f"mqtt://{self.username}:{self.password}@127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, workdir: Path, username: str = "twitchwatch", password: str = "s3cret-pw"
    ) -> MosquittoServer:
        binary = require_binary("mosquitto", "mosquitto")
        passwd = require_binary("mosquitto_passwd", "mosquitto")
        workdir.mkdir(parents=True, exist_ok=True)
        pwfile = workdir / "passwd"
        subprocess.run([passwd, "-b", "-c", str(pwfile), username, password], check=True, capture_output=True)
        pwfile.chmod(0o600)
        port = free_port()
        log = workdir / "mosquitto.log"
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {pwfile}\n"
            # Started as root, mosquitto would switch to its own user, which cannot read our temp dir.
            f"user {getpass.getuser()}\n"
            "persistence false\n"
            # The worker's persistent session must not lose frames queued while it reconnects.
            "max_queued_messages 0\n"
            "max_inflight_messages 100\n"
            f"log_dest file {log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, 10, "mosquitto", log)
        except Exception:
            proc.kill()
            raise
        return cls(port, username, password, proc, log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
