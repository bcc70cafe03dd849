"""docker-compose.yml: no Docker engine runs here, so the file is checked as data against the CLI parser."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ServiceMissing, clear_settings, unavailable
from tests.harness.access import make_certs
from twitchwatch.cli import build_parser, join_dash_values
from twitchwatch.config import Settings, load_settings
from twitchwatch.dashboard_launch import require_login_beyond_loopback

ROOT = Path(__file__).resolve().parents[1]
SCALE = ("broker-setup", "worker-a", "worker-b")  # the profile `scale`'s twitchwatch services


class _StrictLoader(yaml.SafeLoader):
    """YAML as Compose reads it: a key given twice in one mapping is an error there (PyYAML keeps the
    last one silently — the worker had two ``volumes:``, and the top level ``worker-state`` twice)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects


def test_the_strict_loader_refuses_a_key_given_twice() -> None:
    assert _load("a: {b: 1}") == {"a": {"b": 1}}
    with pytest.raises(yaml.constructor.ConstructorError, match="given twice"):
        _load("a:\n  b: 1\n  b: 2\n")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_worker_s_state_lives_on_its_volume(compose: dict[str, Any]) -> None:
    """Its journal, checkpoints and quarantine outlive the container (docs/reliability.md)."""
    worker = compose["services"]["worker"]
    state = worker["environment"]["TWITCHWATCH_STATE_DIR"]
    assert f"worker-state:{state}" in worker["volumes"]
    assert "worker-state" in compose["volumes"]


def _twitchwatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in compose["services"].items() if svc.get("image") == "twitchwatch:latest"
    }


def test_expected_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["mosquitto-setup"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:2.7"
    assert set(_twitchwatch_services(compose)) == {"worker", "dashboard", "simulator", *SCALE}
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.")
    for name in ("rabbitmq", *SCALE):
        assert services[name]["profiles"] == ["scale"], name


def test_every_command_is_a_valid_invocation(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name, svc in _twitchwatch_services(compose).items():
        command = svc["command"]
        assert command[0] == "twitchwatch", name
        args = parser.parse_args(join_dash_values(command[1:]))  # exits (SystemExit) on an invalid command
        expected = {"worker": "process", "simulator": "simulate", "broker-setup": "broker"}
        assert args.command == expected.get(name, "process" if name in SCALE else name)


def _defaults(value: object) -> str:
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))  # compose's ${VAR:-default}


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA certificate as scripts/mqtt-certs.sh makes it (the settings load it to validate it)."""
    try:
        return make_certs(tmp_path_factory.mktemp("ca")).ca
    except ServiceMissing as exc:
        unavailable(str(exc))


def _settings(
    svc: dict[str, Any], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca: Path
) -> Settings:
    """The service's settings, with its secrets where compose mounts them (``/run/secrets/<name>``)."""
    clear_settings(monkeypatch)
    mounted = set(svc.get("secrets", []))
    for key, value in svc["environment"].items():
        value = _defaults(value)
        if value.startswith("/run/secrets/"):
            secret = value.removeprefix("/run/secrets/")
            assert secret in mounted, f"{name}: {key} reads {value}, but the service does not mount it"
            if secret == "mqtt_ca":
                value = str(ca)
            elif secret == "amqp_worker_url":  # as scripts/compose-secrets.sh writes it
                path = tmp_path / f"{name}-{secret}"
                path.write_text(
                    f"amqps://twitchwatch-worker:{name}-pw@rabbitmq:5671/?cafile=/run/secrets/mqtt_ca"
                )
                value = str(path)
            else:
                path = tmp_path / f"{name}-{secret}"
                path.write_text(f"{name}-{secret}-value\n")
                value = str(path)
        monkeypatch.setenv(key, value)
    return load_settings()


def test_environment_is_valid_configuration_with_least_privilege(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_ca: Path
) -> None:
    """Each service's environment validates, and each has its own MQTT and InfluxDB account, over TLS."""
    accounts = {"worker": "twitchwatch-worker", "dashboard": "twitchwatch-dashboard", "simulator": "me"}
    accounts |= dict.fromkeys(SCALE, "twitchwatch-worker")
    for name, svc in _twitchwatch_services(compose).items():
        settings = _settings(svc, name, tmp_path, monkeypatch, private_ca)
        mqtt = settings.mqtt
        assert (mqtt.username, mqtt.tls, mqtt.port, mqtt.ca_file) == (
            accounts[name],
            True,
            8883,
            str(private_ca),
        )
        secret = {"simulator": "mqtt_wearer_password"} | dict.fromkeys(SCALE, "rabbitmq_worker_password")
        assert mqtt.password == f"{name}-{secret.get(name, f'mqtt_{name}_password')}-value"
        assert settings.influx_auth.token is None, f"{name} must not hold an InfluxDB token (the admin's)"
        if name != "simulator":
            influx = "worker" if name in SCALE else name
            assert settings.influx_auth.username == accounts[name]
            assert settings.influx_auth.password == f"{name}-influx_{influx}_password-value"
        assert "influx_token" not in svc["secrets"]
        assert settings.store_url.startswith("influxdb://influxdb:8086/")
        assert str(settings.tz) == "UTC"  # unless the host's .env names a zone
        if name in SCALE:  # frames from RabbitMQ's partitions, the URL (with its password) a secret
            url = f"amqps://twitchwatch-worker:{name}-pw@rabbitmq:5671/?cafile=/run/secrets/mqtt_ca"
            assert settings.amqp_url_value() == url
            assert mqtt.host == "rabbitmq"
        else:
            assert settings.user == "me"
            assert settings.amqp_url is None


def test_the_scale_workers_split_the_partitions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    slots = [services[name]["environment"]["TWITCHWATCH_AMQP_SLOT"] for name in ("worker-a", "worker-b")]
    assert slots == ["0/2", "1/2"]
    for name in ("worker-a", "worker-b"):
        assert services[name]["depends_on"]["broker-setup"] == {"condition": "service_completed_successfully"}
    conf = (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text().splitlines()
    assert "mqtt.exchange = twitchwatch.mqtt" in conf  # where broker setup's bindings are
    assert "mqtt.allow_anonymous = false" in conf
    assert "listeners.tcp = none" in conf  # TLS only
    assert "mqtt.listeners.tcp = none" in conf
    assert "rabbitmq_mqtt" in (ROOT / "deploy/rabbitmq/enabled_plugins").read_text()
    assert subprocess.run(["sh", "-n", str(ROOT / "deploy/rabbitmq/start.sh")], check=False).returncode == 0


def test_the_dashboard_has_a_login_where_it_listens(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_ca: Path
) -> None:
    svc = compose["services"]["dashboard"]
    args = build_parser().parse_args(svc["command"][1:])
    settings = _settings(svc, "dashboard", tmp_path, monkeypatch, private_ca)
    assert settings.dashboard_password is not None
    require_login_beyond_loopback(args.host, settings)  # raises without a login


def test_every_secret_is_declared_and_lives_in_secrets(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    for name, svc in compose["services"].items():
        for secret in svc.get("secrets", []):
            assert secret in declared, f"{name} mounts undeclared secret {secret}"
    for secret, spec in declared.items():
        assert _defaults(spec["file"]).startswith("./secrets/"), secret


def test_broker_requires_an_account_limited_by_the_acl(compose: dict[str, Any]) -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert "password_file /mosquitto/accounts/passwd" in conf
    assert "acl_file /mosquitto/accounts/acl" in conf
    assert not any(line.startswith("per_listener_settings true") for line in conf)  # both listeners
    tls = conf[conf.index("listener 8883") + 1 :]
    assert tls[0].startswith("certfile /mosquitto/accounts/tls/")
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert _defaults(port).startswith("127.0.0.1:"), f"{port} would be reachable from other machines"
    acl = (ROOT / "deploy/mosquitto/acl").read_text().splitlines()
    assert "user twitchwatch-worker" in acl
    assert "user twitchwatch-dashboard" in acl
    dashboard = acl[acl.index("user twitchwatch-dashboard") + 1 :]
    rules = [line for line in dashboard if line.startswith(("topic", "user", "pattern"))]
    assert rules
    assert all(line.startswith("topic read ") for line in rules), rules  # reads, nothing else


def test_broker_setup_runs_the_accounts_script_with_what_it_mounts(compose: dict[str, Any]) -> None:
    setup = compose["services"]["mosquitto-setup"]
    command = setup["command"]
    assert command[:4] == ["sh", "/twitchwatch/accounts.sh", "build", "/run/secrets"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in setup["volumes"]}
    assert mounts["/twitchwatch"] == "./deploy/mosquitto"
    assert (ROOT / "deploy/mosquitto/accounts.sh").exists()
    for path in command[4:]:
        assert path in mounts, f"{path} is not mounted"
    assert set(setup["secrets"]) == {"mqtt_worker_password", "mqtt_dashboard_password"}
    broker = compose["services"]["mosquitto"]
    assert broker["depends_on"]["mosquitto-setup"] == {"condition": "service_completed_successfully"}
    assert "mosquitto-accounts:/mosquitto/accounts:ro" in broker["volumes"]


def test_influxdb_initialised_with_scoped_accounts(compose: dict[str, Any]) -> None:
    influx = compose["services"]["influxdb"]
    env = influx["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("ORG", "BUCKET", "ADMIN_TOKEN_FILE", "USERNAME", "PASSWORD_FILE"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"], key
    assert _defaults(env["DASHBOARD_INFLUX_ACCESS"]) == "read"
    script = ROOT / "deploy/influxdb/twitchwatch-accounts.sh"
    mount = f"./{script.relative_to(ROOT)}:/docker-entrypoint-initdb.d/{script.name}:ro"
    assert mount in influx["volumes"]
    assert os.access(script, os.X_OK)  # the image runs executable *.sh files only
    text = script.read_text()
    for secret in ("influx_worker_password", "influx_dashboard_password"):
        assert f"/run/secrets/{secret}" in text
        assert secret in influx["secrets"]
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
