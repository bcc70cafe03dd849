"""The configuration model: environment, secret files, the TOML device map and ``config check``."""

from __future__ import annotations

import subprocess
import sys
import zoneinfo
from pathlib import Path

import pytest

from tests.harness import environ_without_settings
from twitchwatch.collector.mqtt import MqttTarget, MqttUrlError, parse_mqtt_url
from twitchwatch.config import ConfigError, load_device_file, load_settings

GOOD = """
user = "alice"
[devices.polar1]
profile = "polar-h10"
address = "A0:9E:1A:00:00:01"
[devices.polar1.streams.acc]
muscle = "calf_left"
[devices.myo1.streams.emg.channels]
0 = "forearm_flexor"
1 = "forearm_extensor"
"""


@pytest.fixture(autouse=True)
def clean_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_defaults_use_embedded_store(tmp_path: Path) -> None:
    s = load_settings()
    assert s.store_url == f"sqlite:///{tmp_path / 'data' / 'twitchwatch' / 'twitchwatch.db'}"
    assert s.mqtt == MqttTarget("localhost", 1883)
    assert s.user == "me"


def test_mqtt_url_forms() -> None:
    assert parse_mqtt_url("mqtt://u:p%40ss@broker:1884") == MqttTarget("broker", 1884, "u", "p@ss", False)
    assert parse_mqtt_url("mqtts://broker") == MqttTarget("broker", 8883, None, None, True)
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/topic"):
        with pytest.raises(MqttUrlError):
            parse_mqtt_url(bad)
    assert "secret" not in repr(parse_mqtt_url("mqtt://u:secret@h"))


def test_env_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", "postgres://x/y")
    monkeypatch.setenv("TWITCHWATCH_USER", "has space")
    with pytest.raises(ConfigError) as err:
        load_settings()
    keys = [k for k, _ in err.value.problems]
    assert keys == ["TWITCHWATCH_STORE_URL", "TWITCHWATCH_USER"]


def test_unknown_env_key_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URI", "sqlite:///x.db")
    with pytest.raises(ConfigError, match="TWITCHWATCH_STORE_URI"):
        load_settings()


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok-123\n")
    monkeypatch.setenv("TWITCHWATCH_INFLUX_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("TWITCHWATCH_INFLUX_USERNAME", "bob")
    auth = load_settings().influx_auth
    assert (auth.token, auth.username) == ("tok-123", "bob")
    assert "tok-123" not in repr(auth)
    monkeypatch.setenv("TWITCHWATCH_INFLUX_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="TWITCHWATCH_INFLUX_PASSWORD_FILE"):
        load_settings()


def test_device_file_maps_channels_to_muscles(tmp_path: Path) -> None:
    path = tmp_path / "devices.toml"
    path.write_text(GOOD)
    devices = load_device_file(path)
    assert devices.user == "alice"
    assert devices.muscle_for("polar1", "acc", 2) == "calf_left"
    assert devices.muscle_for("myo1", "emg", 1) == "forearm_extensor"
    assert devices.muscle_for("myo1", "emg", 5) is None
    assert devices.muscle_for("nope", "emg", 0) is None
    assert devices.segment_for("polar1") is None  # derived from the muscles' names by the worker
    placed = load_device_file(
        _written(
            tmp_path, GOOD.replace('profile = "polar-h10"', 'profile = "polar-h10"\nsegment = "thigh_left"')
        )
    )
    assert placed.segment_for("polar1") == "thigh_left"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (GOOD.replace("muscle = ", "muscel = "), "devices.polar1.streams.acc.muscel", "Extra inputs"),
        (GOOD + "\n[mqtt]\nurl='x'\n", "mqtt", "Extra inputs"),
        (GOOD.replace('"calf_left"', '"calf left"'), "devices.polar1.streams.acc.muscle", "A-Z"),
        (GOOD.replace("0 = ", "x = "), "devices.myo1.streams.emg.channels.x.[key]", "integer"),
        ("[devices.d1.streams.acc]\n", "devices.d1.streams.acc", "either 'muscle'"),
        ("user = = 1", "(syntax)", "line 1, column 8"),
        ("[devices.d1]\nsegment = 'lower_leg_lft'\n", "devices.d1.segment", "lower_leg_left"),
        # tomllib parses nesting recursively: RecursionError came out as "a bug in twitchwatch"
        ("user = " + "[" * 5000 + "]" * 5000, "(syntax)", "nested too deeply"),
    ],
)
def test_broken_files_name_the_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "devices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_device_file(path)
    assert any(k == key and reason in r for k, r in err.value.problems), err.value.problems


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "placed.toml"
    path.write_text(text)
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twitchwatch", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_config_check_command(tmp_path: Path) -> None:
    env = environ_without_settings()
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("profile = ", "profil = "))
    ok = _cli("config", "check", str(good), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "2 devices, 2 streams" in ok.stdout
    assert "polar1: body segment lower_leg_left (from calf_left)" in ok.stdout
    broken = _cli("config", "check", str(bad), env=env)
    assert broken.returncode == 2
    assert "devices.polar1.profil" in broken.stderr
    assert "Extra inputs are not permitted" in broken.stderr
    env_bad = _cli("config", "check", env={**env, "TWITCHWATCH_MQTT_URL": "tcp://x"})
    assert env_bad.returncode == 2
    assert "TWITCHWATCH_MQTT_URL" in env_bad.stderr


def test_timezone_is_an_iana_name_and_a_bad_one_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWITCHWATCH_TIMEZONE", "Australia/Sydney")
    settings = load_settings()
    assert settings.tz == zoneinfo.ZoneInfo("Australia/Sydney")
    monkeypatch.setenv("TWITCHWATCH_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ConfigError) as err:
        load_settings()
    [(key, reason)] = err.value.problems
    assert key == "TWITCHWATCH_TIMEZONE"
    assert "'Mars/Olympus_Mons' is not a known time zone" in reason
    assert "IANA" in reason


@pytest.mark.parametrize(
    ("tz_env", "expected"),
    [
        ("America/New_York", "America/New_York"),
        (":Asia/Tokyo", "Asia/Tokyo"),
        ("XYZ-05:30", "UTC+05:30"),  # a POSIX rule without an IANA name: its fixed offset
        ("EST5", "UTC-05:00"),
    ],
)
def test_timezone_defaults_to_the_machines_zone(tz_env: str, expected: str, tmp_path: Path) -> None:
    env = environ_without_settings()
    env.update(TZ=tz_env, XDG_DATA_HOME=str(tmp_path))
    code = "from twitchwatch.config import load_settings; s = load_settings(); print(s.timezone, s.tz)"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == [expected, expected]


def test_config_check_shows_the_zone_and_refuses_an_unknown_one() -> None:
    env = environ_without_settings()
    ok = _cli("config", "check", env={**env, "TWITCHWATCH_TIMEZONE": "Australia/Sydney"})
    assert ok.returncode == 0, ok.stderr
    assert "time zone Australia/Sydney" in ok.stdout
    bad = _cli("config", "check", env={**env, "TWITCHWATCH_TIMEZONE": "Europe/Atlantis"})
    assert bad.returncode == 2
    assert "TWITCHWATCH_TIMEZONE: Value error, 'Europe/Atlantis' is not a known time zone" in bad.stderr
