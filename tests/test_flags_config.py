"""Flag thresholds and Home Assistant settings in the one configuration model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twitchwatch.config import ConfigError, load_settings
from twitchwatch.processing.flags import FlagRules
from twitchwatch.processing.journal import Factor


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("TWITCHWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def test_defaults() -> None:
    s = load_settings()
    assert s.flag_rules == FlagRules()
    assert s.flags_interval_s == 300.0
    assert s.ha_discovery is False
    assert s.ha_prefix == "homeassistant"


def test_thresholds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWITCHWATCH_FLAG_RULES", '{"elevated_factor": 3, "stale_after_s": 900}')
    monkeypatch.setenv("TWITCHWATCH_FLAGS_INTERVAL_S", "60")
    monkeypatch.setenv("TWITCHWATCH_HA_DISCOVERY", "true")
    s = load_settings()
    assert s.flag_rules == FlagRules(elevated_factor=3.0, stale_after_s=900.0)
    assert s.flags_interval_s == 60.0
    assert s.ha_discovery is True


def test_journal_windows_per_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(load_settings().journal_windows_ns.values()) == {6 * 3600 * 10**9}
    monkeypatch.setenv("TWITCHWATCH_JOURNAL_WINDOWS_H", '{"exercise": 12, "caffeine": 1.5}')
    windows = load_settings().journal_windows_ns
    assert windows[Factor.EXERCISE] == 12 * 3600 * 10**9
    assert windows[Factor.CAFFEINE] == 5400 * 10**9
    assert windows[Factor.SLEEP] == 6 * 3600 * 10**9


@pytest.mark.parametrize(
    ("name", "value", "key", "reason"),
    [
        (
            "TWITCHWATCH_JOURNAL_WINDOWS_H",
            '{"coffee": 2}',
            "TWITCHWATCH_JOURNAL_WINDOWS_H.coffee.[key]",
            "caffeine",
        ),
        (
            "TWITCHWATCH_JOURNAL_WINDOWS_H",
            '{"sleep": 0}',
            "TWITCHWATCH_JOURNAL_WINDOWS_H.sleep",
            "greater than 0",
        ),
        (
            "TWITCHWATCH_FLAG_RULES",
            '{"elevated_factr": 3}',
            "TWITCHWATCH_FLAG_RULES.elevated_factr",
            "Unexpected",
        ),
        (
            "TWITCHWATCH_FLAG_RULES",
            '{"persistent_days_per_week": 9}',
            "TWITCHWATCH_FLAG_RULES",
            "persistent_days",
        ),
        ("TWITCHWATCH_FLAG_RULES", "not json", "TWITCHWATCH_FLAG_RULES", "JSON"),
        ("TWITCHWATCH_FLAGS_INTERVAL_S", "0", "TWITCHWATCH_FLAGS_INTERVAL_S", "greater than 0"),
        ("TWITCHWATCH_HA_PREFIX", "home/assistant", "TWITCHWATCH_HA_PREFIX", "1-64 characters"),
        ("TWITCHWATCH_HA_INTERVAL_S", "1", "TWITCHWATCH_HA_INTERVAL_S", "greater than or equal to 5"),
    ],
)
def test_bad_values_name_the_key(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, key: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert len(info.value.problems) == 1
    got_key, got_reason = info.value.problems[0]
    assert got_key == key
    assert reason in got_reason
