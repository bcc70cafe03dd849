"""The shipped access-control files, put to work on the harness's services: MQTT accounts and ACL built
by ``deploy/mosquitto/accounts.sh``, a private CA and broker certificate made by ``scripts/mqtt-certs.sh``,
and a broker started with both."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.harness import require_binary
from tests.harness.mosquitto import MosquittoServer, TlsFiles

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS_SH = ROOT / "deploy" / "mosquitto" / "accounts.sh"
CERTS_SH = ROOT / "scripts" / "mqtt-certs.sh"
WORKER = "twitchwatch-worker"
DASHBOARD = "twitchwatch-dashboard"
SERVICE_PASSWORDS = {WORKER: "worker-pw-0123456789", DASHBOARD: "dashboard-pw-0123456789"}


@dataclass(frozen=True)
class Accounts:
    passwd: Path
    acl: Path
    passwords: dict[str, str]  # every account → its password


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def build_accounts(workdir: Path, wearers: Mapping[str, str], tls: TlsFiles | None = None) -> Accounts:
    """What the compose stack's mosquitto-setup service does, from a secrets directory made here (and,
    given ``tls``, its certificate copied to ``accounts/tls``)."""
    require_binary("mosquitto_passwd", "mosquitto")
    secrets, wearer_dir, out = workdir / "secrets", workdir / "wearers", workdir / "accounts"
    secrets.mkdir(parents=True)
    wearer_dir.mkdir()
    (secrets / "mqtt_worker_password").write_text(SERVICE_PASSWORDS[WORKER] + "\n")
    (secrets / "mqtt_dashboard_password").write_text(SERVICE_PASSWORDS[DASHBOARD] + "\n")
    for user, password in wearers.items():
        (wearer_dir / user).write_text(password + "\n")
    argv = ["sh", str(ACCOUNTS_SH), "build", str(secrets), str(wearer_dir), str(out)]
    if tls is not None:
        assert tls.cert.parent == tls.key.parent == tls.ca.parent, "accounts.sh takes one directory"
        argv.append(str(tls.cert.parent))
    _run(argv, "accounts.sh build")
    return Accounts(out / "passwd", out / "acl", {**SERVICE_PASSWORDS, **wearers})


def add_wearer(accounts: Accounts, user: str, password: str) -> Accounts:
    """``accounts.sh add-wearer`` on the broker's files, password on standard input."""
    done = subprocess.run(
        ["sh", str(ACCOUNTS_SH), "add-wearer", str(accounts.passwd), str(accounts.acl), user],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"accounts.sh add-wearer failed:\n{done.stdout}{done.stderr}")
    return Accounts(accounts.passwd, accounts.acl, {**accounts.passwords, user: password})


def make_certs(workdir: Path, *names: str) -> TlsFiles:
    """A private CA and a server certificate for ``names`` (default 127.0.0.1 and localhost)."""
    require_binary("openssl", "openssl")
    out, ca_key = workdir / "tls", workdir / "ca.key"
    names = names or ("127.0.0.1", "localhost")
    _run(["bash", str(CERTS_SH), str(out), str(ca_key), *names], "mqtt-certs.sh")
    return TlsFiles(out / "server.crt", out / "server.key", out / "ca.crt")


def start_acl_broker(workdir: Path, accounts: Accounts, tls: TlsFiles | None = None) -> MosquittoServer:
    return MosquittoServer.start(
        workdir / "broker",
        accounts=accounts.passwords,
        password_file=accounts.passwd,
        acl_file=accounts.acl,
        tls=tls,
    )
