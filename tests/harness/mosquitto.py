"""A private Mosquitto broker: free loopback port, temp dir, password file, no anonymous access.

Optionally several accounts, an ACL file (Mosquitto's ``acl_file``) and a TLS listener beside the plain one,
for the access-control tests."""

from __future__ import annotations

import getpass
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.harness import free_port, require_binary, wait_for_port


@dataclass(frozen=True)
class TlsFiles:
    """A TLS listener's server certificate and key (PEM), and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


@dataclass
class MosquittoServer:
    port: int
    username: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path
    conf: Path
    accounts: dict[str, str] = field(default_factory=dict)  # every known account → its password
    tls_port: int | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.username}:{self.password}@127.0.0.1:{self.port}"

    def url_for(self, username: str, *, tls: bool = False) -> str:
        """The URL of one account, over TLS (``mqtts://``, the TLS listener) if asked."""
        password = quote(self.accounts[username], safe="")
        if tls:
            if self.tls_port is None:
                raise ValueError("this broker was started without a TLS listener")
            return f"mqtts://{quote(username, safe='')}:{password}@127.0.0.1:{self.tls_port}"
        return f"mqtt://{quote(username, safe='')}:{password}@127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        workdir: Path,
        username: str = "twitchwatch",
        password: str = "s3cret-pw",
        *,
        persistence: bool = False,
        accounts: Mapping[str, str] | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: TlsFiles | None = None,
    ) -> MosquittoServer:
        """``persistence``: sessions and queued messages survive ``restart()``, as on a production broker.
        ``accounts``: more username → password pairs, added to the password file (or, with
        ``password_file``, already in that file: the broker uses it as it is). ``acl_file``: Mosquitto's
        ACL; without one every account may read and write everything. ``tls``: a second listener that
        speaks TLS only, on ``tls_port``."""
        binary = require_binary("mosquitto", "mosquitto")
        workdir.mkdir(parents=True, exist_ok=True)
        known = {username: password, **(accounts or {})}
        pwfile = password_file or _password_file(workdir / "passwd", known)
        port = free_port()
        tls_port = free_port() if tls is not None else None
        while tls_port == port:
            tls_port = free_port()
        log = workdir / "mosquitto.log"
        conf = workdir / "mosquitto.conf"
        # Saved at shutdown only (autosave off): a restart brings back exactly what the broker held.
        keep = (
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 0\n"
            if persistence
            else "persistence false\n"
        )
        acl = f"acl_file {acl_file}\n" if acl_file is not None else ""
        tls_listener = (
            f"listener {tls_port} 127.0.0.1\ncertfile {tls.cert}\nkeyfile {tls.key}\ncafile {tls.ca}\n"
            if tls is not None
            else ""
        )
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            f"{tls_listener}"
            "allow_anonymous false\n"
            f"password_file {pwfile}\n"
            f"{acl}"
            # Started as root, mosquitto would switch to its own user, which cannot read our temp dir.
            f"user {getpass.getuser()}\n"
            f"{keep}"
            # The worker's persistent session must not lose frames queued while it reconnects.
            "max_queued_messages 0\n"
            "max_inflight_messages 100\n"
            f"log_dest file {log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        ports = (port,) if tls_port is None else (port, tls_port)
        process = cls._launch(binary, conf, ports, log)
        return cls(port, username, password, process, log, conf, known, tls_port)

    @staticmethod
    def _launch(binary: str, conf: Path, ports: tuple[int, ...], log: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            for port in ports:
                wait_for_port(port, 10, "mosquitto", log)
        except Exception:
            proc.kill()
            raise
        return proc

    def restart(self) -> None:
        """Start the stopped broker again on the same port with the same configuration."""
        binary = require_binary("mosquitto", "mosquitto")
        ports = (self.port,) if self.tls_port is None else (self.port, self.tls_port)
        self.process = self._launch(binary, self.conf, ports, self.log)

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password file and ACL again (a new account, changed rules)."""
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _password_file(path: Path, accounts: Mapping[str, str]) -> Path:
    passwd = require_binary("mosquitto_passwd", "mosquitto")
    path.unlink(missing_ok=True)
    for i, (name, secret) in enumerate(accounts.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([passwd, "-b", *create, str(path), name, secret], check=True, capture_output=True)
    path.chmod(0o600)
    return path
