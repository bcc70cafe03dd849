"""A private RabbitMQ node: own node name, AMQP, MQTT and distribution ports on loopback, data and logs in a
temp dir, its own Erlang cookie, the MQTT and consistent-hash plugins, one account and no guest.

Debian's ``rabbitmq-server`` package may run a system node on 5672; this one shares nothing with it but epmd
(the Erlang port mapper, which keeps one name per node)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tests.harness import ServiceMissing, free_port, wait_for_port

# The scripts that run the node as the calling user (Debian's /usr/sbin wrapper would switch to the rabbitmq
# account, which cannot read a test's temp dir).
_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
PLUGINS = ("rabbitmq_mqtt", "rabbitmq_consistent_hash_exchange")


def _script(name: str) -> str:
    path = _SCRIPTS / name
    if not path.exists():
        raise ServiceMissing(
            f"{path} not found: install Debian's 'rabbitmq-server' package (make test does this)"
        )
    return str(path)


@dataclass
class RabbitServer:
    amqp_port: int
    mqtt_port: int
    dist_port: int
    username: str
    password: str
    workdir: Path
    node: str
    process: subprocess.Popen[bytes]

    @property
    def amqp_url(self) -> str:
        user, password = quote(self.username, safe=""), quote(self.password, safe="")
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/"

    @property
    def mqtt_url(self) -> str:
        user, password = quote(self.username, safe=""), quote(self.password, safe="")
        return f"mqtt://{user}:{password}@127.0.0.1:{self.mqtt_port}"

    @property
    def log(self) -> Path:
        return self.workdir / "log" / f"{self.node}.log"

    @classmethod
    def start(
        cls, workdir: Path, username: str = "twitchwatch", password: str = "rabbit-s3cret"
    ) -> RabbitServer:
        _script("rabbitmq-server")
        workdir.mkdir(parents=True, exist_ok=True)
        amqp_port, mqtt_port, dist_port = free_port(), free_port(), free_port()
        while len({amqp_port, mqtt_port, dist_port}) < 3:
            mqtt_port, dist_port = free_port(), free_port()
        node = f"twtest{uuid.uuid4().hex[:8]}@localhost"
        server = cls(amqp_port, mqtt_port, dist_port, username, password, workdir, node, _placeholder())
        (workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{amqp_port}\n"
            f"mqtt.listeners.tcp.1 = 127.0.0.1:{mqtt_port}\n"
            "mqtt.allow_anonymous = false\n"
            # The MQTT plugin publishes into the partition layout's exchange (twitchwatch broker setup).
            "mqtt.exchange = twitchwatch.mqtt\n"
            f"default_user = {username}\n"
            f"default_pass = {password}\n"
            "default_permissions.configure = .*\n"
            "default_permissions.read = .*\n"
            "default_permissions.write = .*\n"
            "loopback_users = none\n"
            # A shared 2-core machine: the node must not stop taking messages for lack of disk or memory.
            "disk_free_limit.absolute = 50MB\n"
            "vm_memory_high_watermark.relative = 0.8\n"
            "log.console = false\nlog.file.level = warning\n"
        )
        (workdir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        server.process = server._launch()
        return server

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.workdir),  # its own Erlang cookie, never the system node's
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.workdir / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.workdir / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_PID_FILE=str(self.workdir / "node.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _launch(self) -> subprocess.Popen[bytes]:
        (self.workdir / "rabbitmq-env.conf").touch()
        with (self.workdir / "stdout.log").open("ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [_script("rabbitmq-server")],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its Erlang children go with it on stop
            )
        try:
            # AMQP listens only once the node has booted; MQTT once its plugin has.
            wait_for_port(self.amqp_port, 90, "rabbitmq", self.workdir / "stdout.log")
            wait_for_port(self.mqtt_port, 30, "rabbitmq mqtt", self.workdir / "stdout.log")
        except BaseException:  # interrupted too: never leave a node behind
            _kill(proc)
            raise
        return proc

    def _rabbitmqctl(self, *args: str) -> str:
        """``rabbitmqctl <args>`` against this node (its own cookie): what it printed."""
        out = subprocess.run(
            [_script("rabbitmqctl"), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def vhost(self, name: str) -> str:
        """A virtual host of its own on this node, for the harness's user: the AMQP URL to it. The node is
        shared by the session's tests, and a layout of one partition count per vhost is all the broker
        allows (``processing.amqp.layout_partitions``)."""
        self._rabbitmqctl("add_vhost", name)
        self._rabbitmqctl("set_permissions", "-p", name, self.username, ".*", ".*", ".*")
        return self.amqp_url + quote(name, safe="")

    def ctl(self, *args: str) -> list[dict[str, object]]:
        """``rabbitmqctl <args> --formatter json`` against this node, parsed."""
        rows = json.loads(self._rabbitmqctl(*args, "--formatter", "json") or "[]")
        assert isinstance(rows, list)
        return rows

    def active_consumers(self, prefix: str = "twitchwatch.") -> dict[str, str]:
        """Queue → consumer tag of its single active consumer, for the queues named ``prefix…`` (not the MQTT
        plugin's subscription queues)."""
        rows = self.ctl("list_consumers", "queue_name", "consumer_tag", "active")
        return {
            str(r["queue_name"]): str(r["consumer_tag"])
            for r in rows
            if r.get("active") is True and str(r["queue_name"]).startswith(prefix)
        }

    def close_connections(self, name: str, reason: str = "closed by the test") -> int:
        """Close the client connections named ``name`` (their ``connection_name``), as a network failure
        between them and the broker would: their channels go, their unacknowledged deliveries return to
        their queues. Returns how many were closed. (The JSON formatter writes pids in a form
        ``close_connection`` does not take back, so this reads the plain table.)"""
        table = self._rabbitmqctl("list_connections", "pid", "client_properties", "-q")
        rows = [line.split("\t", 1) for line in table.splitlines()]
        pids = [row[0] for row in rows if len(row) == 2 and _connection_name(row[1]) == name]
        for pid in pids:
            self._rabbitmqctl("close_connection", pid, reason)
        return len(pids)

    def messages(self, prefix: str = "twitchwatch.") -> int:
        """Messages in the queues named ``prefix…``, ready and unacknowledged."""
        rows = self.ctl("list_queues", "name", "messages")
        return sum(int(str(r["messages"])) for r in rows if str(r["name"]).startswith(prefix))

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): queues and their messages are on disk for ``restart``."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            _kill(self.process)

    def restart(self) -> None:
        self.stop()
        self.process = self._launch()


def _connection_name(client_properties: str) -> str | None:
    """The ``connection_name`` in rabbitmqctl's rendering of a connection's client properties (a list of
    ``{"key",value}`` tuples)."""
    m = re.search(r'\{"connection_name","([^"]*)"\}', client_properties)
    return m.group(1) if m else None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _placeholder() -> subprocess.Popen[bytes]:
    """A finished process standing in until the node is launched (the dataclass needs one)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc
