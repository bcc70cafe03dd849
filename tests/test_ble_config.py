"""The device map's BLE fields and what ``twitchwatch collect`` makes of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from twitchwatch.cli import main
from twitchwatch.collector.devices.polar import PolarH10Settings
from twitchwatch.config import ConfigError, DeviceFile, load_device_file

MAP = """
[devices.polar1]
profile = "polar-h10"
address = "a0:9e:1a:00:00:01"
settings = { rate_hz = 100, range_g = 4 }
[devices.polar1.streams.acc]
muscle = "calf_left"
[devices.board]
profile = "open"
name = "twitchwatch board 7"
[devices.board.streams.emg.channels]
0 = "forearm_flexor_left"
1 = "forearm_extensor_left"
[devices.sim1]
[devices.sim1.streams.emg]
muscle = "calf_right"
[collect]
scan_timeout = 4
backoff_max = 30
broker_buffer = 120
frame_span = 0.1
"""


def _load(tmp_path: Path, text: str) -> DeviceFile:
    path = tmp_path / "devices.toml"
    path.write_text(text, encoding="utf-8")
    return load_device_file(path)


def test_collect_plan_takes_the_ble_devices_with_their_settings_streams_and_muscles(tmp_path: Path) -> None:
    targets, timing = _load(tmp_path, MAP).collect_plan()
    by_name = {t.name: t for t in targets}
    assert set(by_name) == {"polar1", "board"}  # 'sim' devices are the simulator's
    polar = by_name["polar1"]
    assert polar.address == "a0:9e:1a:00:00:01"
    assert polar.profile.settings == PolarH10Settings(rate_hz=100, range_g=4)
    assert polar.streams == ("acc",)
    assert polar.muscle_for("acc", 2) == "calf_left"
    board = by_name["board"]
    assert board.address is None
    assert board.advertised_name == "twitchwatch board 7"
    assert board.streams == ("emg",)
    assert board.muscle_for("emg", 1) == "forearm_extensor_left"
    assert board.muscle_for("emg", 5) is None
    assert timing.scan_s == 4
    assert timing.backoff_max_s == 30
    assert timing.connect_s == 30  # default
    assert timing.broker_buffer_s == 120
    assert timing.frame_span_s == 0.1


def test_frames_are_coalesced_to_50_ms_unless_the_map_says_otherwise(tmp_path: Path) -> None:
    _, timing = _load(tmp_path, '[devices.x]\nprofile = "metamotion"\n').collect_plan()
    assert timing.frame_span_s == 0.05
    assert timing.motion_frame_span_s == 0.1  # accelerometers and gyroscopes
    _, timing = _load(
        tmp_path, '[devices.x]\nprofile = "metamotion"\n[collect]\nframe_span = 0\n'
    ).collect_plan()
    assert timing.frame_span_s == 0  # off: one frame per notification
    _, timing = _load(
        tmp_path, '[devices.x]\nprofile = "metamotion"\n[collect]\nmotion_frame_span = 0.2\n'
    ).collect_plan()
    assert (timing.frame_span_s, timing.motion_frame_span_s) == (0.05, 0.2)
    with pytest.raises(ConfigError, match="motion_frame_span"):
        _load(tmp_path, '[devices.x]\nprofile = "metamotion"\n[collect]\nmotion_frame_span = 0.3\n')


def test_a_silent_connected_device_is_reconnected_after_30_s_unless_the_map_says_otherwise(
    tmp_path: Path,
) -> None:
    _, timing = _load(tmp_path, '[devices.x]\nprofile = "metamotion"\n').collect_plan()
    assert timing.silence_s == 30.0
    _, timing = _load(
        tmp_path, '[devices.x]\nprofile = "metamotion"\n[collect]\nsilence_timeout = 60\n'
    ).collect_plan()
    assert timing.silence_s == 60.0
    with pytest.raises(ConfigError, match="silence_timeout"):
        _load(tmp_path, '[devices.x]\nprofile = "metamotion"\n[collect]\nsilence_timeout = 0\n')


def test_collect_plan_can_pick_devices_and_names_unknown_ones(tmp_path: Path) -> None:
    devices = _load(tmp_path, MAP)
    targets, _ = devices.collect_plan(["board"])
    assert [t.name for t in targets] == ["board"]
    with pytest.raises(ConfigError, match="polar9: no BLE device of that name"):
        devices.collect_plan(["polar9"])


def test_a_device_without_streams_starts_the_profiles_main_stream_and_its_gyroscope(tmp_path: Path) -> None:
    (target,), _ = _load(tmp_path, '[devices.m]\nprofile = "myo"\n').collect_plan()
    assert target.streams == ("emg", "gyro")


@pytest.mark.parametrize(
    ("profile", "streams"),
    [
        ("polar-h10", ("acc",)),
        ("polar-verity", ("acc", "gyro")),
        ("metamotion", ("acc", "gyro")),
        ("open", ("emg",)),
    ],
)
def test_movement_streams_start_where_the_hardware_always_has_them(
    tmp_path: Path, profile: str, streams: tuple[str, ...]
) -> None:
    (target,), _ = _load(tmp_path, f'[devices.m]\nprofile = "{profile}"\n').collect_plan()
    assert target.streams == streams


def test_movement_false_starts_only_the_chosen_streams(tmp_path: Path) -> None:
    text = '[devices.m]\nprofile = "metamotion"\nmovement = false\n'
    (target,), _ = _load(tmp_path, text).collect_plan()
    assert target.streams == ("acc",)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[devices.x]\nprofile = "polar-h11"\n', "devices.x", "polar-h11"),
        ('[devices.x]\nprofile = "polar-h10"\nsettings = { rate_hz = 33 }\n', "devices.x", "rate_hz"),
        ('[devices.x]\nprofile = "polar-h10"\nsettings = { colour = 1 }\n', "devices.x", "colour"),
        ('[devices.x]\nprofile = "polar-h10"\naddress = "A0:9E:1A"\n', "devices.x.address", "A0:9E:1A"),
        ('[devices.x]\nprofile = "polar-h10"\n[devices.x.streams.emg]\nmuscle = "m"\n', "devices.x", "emg"),
        ("[devices.x]\nsettings = { rate_hz = 100 }\n", "devices.x", "'sim' devices take none"),
        ("[collect]\nscan_timeout = 0\n", "collect.scan_timeout", "greater than 0"),
        ("[collect]\nbackoff_initial = 10\nbackoff_max = 5\n", "collect", "backoff_max"),
        ("[collect]\nretries = 3\n", "collect.retries", "Extra inputs"),
        ("[collect]\nbroker_buffer = -1\n", "collect.broker_buffer", "greater than 0"),
        ("[collect]\nframe_span = -0.01\n", "collect.frame_span", "greater than or equal to 0"),
        ("[collect]\nframe_span = 0.5\n", "collect.frame_span", "less than or equal to 0.25"),
    ],
)
def test_bad_ble_entries_name_the_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert any(k == key and reason in why for k, why in info.value.problems), info.value.problems


def test_collect_without_ble_devices_says_what_to_add(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "devices.toml"
    path.write_text('[devices.sim1.streams.emg]\nmuscle = "calf_left"\n', encoding="utf-8")
    monkeypatch.setenv("TWITCHWATCH_CONFIG", str(path))
    assert main(["collect"]) == 1
    assert "no BLE devices in the device map" in capsys.readouterr().err
    assert main(["collect", "--device", "polar9"]) == 2
    assert "polar9: no BLE device of that name" in capsys.readouterr().err
