"""docker-compose.yml: no Docker engine runs here, so the file is checked as data against the CLI parser."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from twitchwatch.cli import build_parser, join_dash_values
from twitchwatch.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _twitchwatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in compose["services"].items() if svc.get("image") == "twitchwatch:latest"
    }


def test_expected_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:2.7"
    assert set(_twitchwatch_services(compose)) == {"worker", "dashboard", "simulator"}
    assert services["simulator"]["profiles"] == ["demo"]


def test_every_command_is_a_valid_invocation(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name, svc in _twitchwatch_services(compose).items():
        command = svc["command"]
        assert command[0] == "twitchwatch", name
        args = parser.parse_args(join_dash_values(command[1:]))  # exits (SystemExit) on an invalid command
        assert args.command == {"worker": "process"}.get(name, name if name != "simulator" else "simulate")


def test_environment_is_valid_configuration(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services' environment, with the secrets mounted where compose mounts them, passes validation."""
    for key in list(os.environ):
        if key.startswith("TWITCHWATCH_"):
            monkeypatch.delenv(key)
    for name, svc in _twitchwatch_services(compose).items():
        for key, value in svc["environment"].items():
            value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))  # compose's ${VAR:-default}
            if key.endswith("_FILE"):
                secret = tmp_path / Path(value).name
                secret.write_text(f"{name}-secret\n")
                value = str(secret)
            monkeypatch.setenv(key, value)
        settings = load_settings()
        assert settings.mqtt.password == f"{name}-secret"
        assert settings.influx_auth.token == f"{name}-secret"
        assert settings.store_url.startswith("influxdb://influxdb:8086/")
        assert settings.user == "me"
        assert str(settings.tz) == "UTC"  # unless the host's .env names a zone


def test_broker_requires_a_password(compose: dict[str, Any]) -> None:
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert any(line.startswith("password_file ") for line in conf)
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} would be reachable from other machines"


def test_influxdb_initialised_with_org_bucket_and_token(compose: dict[str, Any]) -> None:
    env = compose["services"]["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("ORG", "BUCKET", "ADMIN_TOKEN_FILE", "USERNAME", "PASSWORD_FILE"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"], key
