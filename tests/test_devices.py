"""Device profiles: every published test vector, fuzzing of every decoder, the registry, and frames built
from the documented layouts (Movesense, Thingy:52, Ganglion packets, the open profile).

The vectors are facts (bytes and the values they decode to) from the SDKs' and libraries' own tests, kept in
``tests/data/vectors`` with their sources (its README), so they run from a plain clone.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twitchwatch.collector.devices import (
    Chunk,
    ControlError,
    Decoder,
    DuplicateProfileError,
    NotificationError,
    ParamError,
    ProfileError,
    ProfileImportError,
    UnknownProfile,
    decode_hex,
    discover,
    ganglion,
    get_profile,
    metamotion,
    movesense,
    myo,
    polar,
    profiles,
    thingy52,
    validate_settings,
)
from twitchwatch.collector.devices import open as open_profile
from twitchwatch.collector.frames import Unit

VECTOR_DIR = Path(__file__).resolve().parent / "data" / "vectors"
EXPECTED_PROFILES = {
    "polar-h10",
    "polar-verity",
    "myo",
    "metamotion",
    "movesense",
    "ganglion",
    "thingy52",
    "open",
}
# Which profiles each vector file is decoded with. A new file must be claimed here (a test fails otherwise).
VECTOR_PROFILES = {
    "polar_pmd.json": ("polar-h10", "polar-verity"),  # the SDK tests name no model: both must pass
    "polar_pmd_gyro.json": ("polar-verity",),  # the H10 has no gyroscope
    "myo.json": ("myo",),
    "metawear.json": ("metamotion",),
    "metawear_gyro.json": ("metamotion",),
    "ganglion.json": ("ganglion",),
}
# The disputed Ganglion vectors: does our (documented, LSB-sign) decoding equal what each rule gives?
# (JS library / OpenBCI docs, MSB two's complement, BrainFlow's MSB-minus-one)
GANGLION_RULES = {
    "delta18_positive": (True, False, False),
    "delta18_negative": (True, False, False),
    "delta19_positive": (True, False, False),
    "delta19_negative": (True, True, False),
}


# ------------------------------------------------------------------------------------------ vectors


def _vector_params() -> list[Any]:
    params = []
    for path in sorted(VECTOR_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for profile in VECTOR_PROFILES.get(path.name, ("<unclaimed>",)):
            for section in ("vectors", "control_vectors"):
                for vector in doc.get(section, []):
                    params.append(pytest.param(profile, path.name, vector, id=f"{profile}:{vector['name']}"))
    return params


def _notification_error(call: Callable[[], object]) -> NotificationError | None:
    """Run ``call``; return the ``NotificationError`` it raised (anything else propagates)."""
    try:
        call()
    except NotificationError as exc:
        return exc
    return None


def _params(vector: dict[str, Any]) -> dict[str, str]:
    """Vector parameters as the command line would pass them (strings)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in vector.get("params", {}).items()}


def _milli_g(samples: list[list[float]]) -> list[list[int]]:
    return [[round(v * 1000) for v in row] for row in samples]


def check_pmd_acc_frame(profile: str, v: dict[str, Any]) -> None:
    exp, derived = v["expected"], v.get("derived", {})
    out = decode_hex(profile, v["hex"], "acc", _params(v))
    frame = polar.parse_acc_frame(bytes.fromhex(v["hex"]))
    assert out["units"] == "g"
    assert f"{frame.header.frame_type_byte:02x}" == exp["frame_type_byte"]
    mg = _milli_g(out["samples"])
    assert [[x / 1000 for x in row] for row in mg] == out["samples"]  # whole milli-g, printed exactly
    assert len(mg) == exp["sample_count"]
    assert mg[: len(exp["first_samples"])] == exp["first_samples"]
    if "raw_first_samples" in exp:
        assert frame.counts[: len(exp["raw_first_samples"])].tolist() == exp["raw_first_samples"]
    if "max_abs_value" in exp:
        assert max(abs(x) for row in mg for x in row) <= exp["max_abs_value"]
    if "last_sample" in derived:
        assert mg[-1] == derived["last_sample"]
    times = out["timestamps_ns"]
    assert len(times) == len(mg)
    if "frame_timestamp_ns" in exp:
        assert frame.header.timestamp_ns == exp["frame_timestamp_ns"]
    if "sample_timestamps_ns" in exp:
        assert times == exp["sample_timestamps_ns"]
    for key, index in (("first_timestamp_ns", 0), ("last_timestamp_ns", -1)):
        for source in (exp, derived):
            if key in source:
                assert times[index] == source[key]


def check_pmd_frame_header(profile: str, v: dict[str, Any]) -> None:
    exp, data = v["expected"], bytes.fromhex(v["hex"])
    if "error" in exp:
        with pytest.raises(NotificationError) as info:
            polar.parse_frame_header(data)
        assert info.value.offset == 9
        with pytest.raises(NotificationError):
            decode_hex(profile, v["hex"], "pmd-header")
        return
    header = polar.parse_frame_header(data)
    message = decode_hex(profile, v["hex"], "pmd-header")["message"]
    assert header.measurement_type == message["measurement_type"] == exp["measurement_type"]
    assert header.frame_type == exp["frame_type"]
    assert header.compressed is exp["compressed"]
    assert header.content.hex() == message["content"] == exp["content_hex"]
    timestamp = exp.get("timestamp_ns", v.get("derived", {}).get("timestamp_ns"))
    if timestamp is not None:
        assert header.timestamp_ns == timestamp


def check_pmd_frame_sequence(profile: str, v: dict[str, Any]) -> None:
    observed_type = v["params"]["observed_measurement_type"]
    state, observed = polar.PmdState(), []
    for frame in v["frames_hex"]:
        header = polar.parse_frame_header(bytes.fromhex(frame))
        if header.measurement_type == observed_type:
            observed.append(
                {"timestamp_ns": header.timestamp_ns, "previous_timestamp_ns": state.previous_for(header)}
            )
        state = state.after(header)
    assert observed == v["expected"]["observed"]


def check_pmd_cp_response(profile: str, v: dict[str, Any]) -> None:
    exp, data = v["expected"], bytes.fromhex(v["hex"])
    message = polar.parse_control_point(data)
    assert isinstance(message, polar.ControlResponse)
    assert decode_hex(profile, v["hex"], "pmd-control")["message"]["status"] == message.status
    assert (message.response_code, message.op_code, message.measurement_type) == (
        exp["response_code"],
        exp["op_code"],
        exp["measurement_type"],
    )
    assert message.status_name == exp["status"]
    if "more" in exp:
        assert message.more is exp["more"]
    if "parameters_hex" in exp:
        assert message.parameters.hex() == exp["parameters_hex"]
    if message.op_code == polar.OpCode.REQUEST_MEASUREMENT_START:
        if exp["status"] == "SUCCESS":
            started = polar.parse_start_response(data, exp["measurement_type"])
            assert started.factor == exp["factor"]
            assert struct.pack(">f", started.factor).hex() == exp["factor_ieee754_hex"]
        else:
            with pytest.raises(ControlError, match=exp["status"]):
                polar.parse_start_response(data, exp["measurement_type"])


def check_pmd_settings_tlv(profile: str, v: dict[str, Any]) -> None:
    parsed = polar.parse_settings(bytes.fromhex(v["hex"]))
    assert {k.name: list(values) for k, values in parsed.items()} == v["expected"]["settings"]
    assert decode_hex(profile, v["hex"], "pmd-settings")["message"]["settings"] == v["expected"]["settings"]


def check_pmd_start_request(profile: str, v: dict[str, Any]) -> None:
    p = v["params"]
    settings_ = [(polar.Setting[name], value) for name, value in p["settings"]]
    built = polar.start_request(p["measurement_type"], settings_, offline=p["offline"])
    for index, byte in v["expected"]["asserted_bytes"].items():
        assert built[int(index)] == int(byte, 16)
    assert v["derived"]["full_bytes_from_sdk_serialisation"]
    assert built.hex() == v["hex"]


def check_pmd_cp_service_notification(profile: str, v: dict[str, Any]) -> None:
    message = polar.parse_control_point(bytes.fromhex(v["hex"]))
    assert isinstance(message, polar.ServiceNotification)
    shown = decode_hex(profile, v["hex"], "pmd-control")["message"]
    assert shown == {"op_code": message.op_code, "measurement_types": list(message.measurement_types)}
    assert message.op_code == v["expected"]["op_code"]
    assert list(message.measurement_types) == v["expected"]["measurement_types"]


def check_pmd_gyro_frame(profile: str, v: dict[str, Any]) -> None:
    exp = v["expected"]
    out = decode_hex(profile, v["hex"], "gyro", _params(v))
    frame = polar.parse_gyro_frame(bytes.fromhex(v["hex"]))
    assert out["units"] == "°/s"
    assert f"{frame.header.frame_type_byte:02x}" == exp["frame_type_byte"]
    assert len(out["samples"]) == exp["sample_count"]
    # The SDK's samples are float32: equal as float32, whatever precision we carry them in.
    got = np.array(out["samples"], dtype=np.float32)
    np.testing.assert_array_equal(got, np.array(exp["samples_dps"], dtype=np.float32))
    assert out["timestamps_ns"][-1] == exp["last_timestamp_ns"] == frame.header.timestamp_ns


def check_pmd_features(profile: str, v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["hex"])
    features = polar.parse_features(data)
    message = decode_hex(profile, v["hex"], "pmd-features")["message"]
    assert message["measurement_types"] == list(features.measurement_types)
    assert "length" not in v["expected"] or len(data) == v["expected"]["length"]
    want = v["expected"].get("measurement_types", v.get("derived", {}).get("measurement_types"))
    assert list(features.measurement_types) == want
    if "names" in v.get("derived", {}):
        assert message["names"] == v["derived"]["names"]
    offered = {p.NAME: {polar.MeasurementType[s.name.upper()] for s in p.STREAMS} for p in _polar_models()}
    if features.offers(polar.MeasurementType.GYRO):
        assert polar.MeasurementType.GYRO in offered["polar-verity"]
    else:
        assert polar.MeasurementType.GYRO not in offered["polar-h10"]


def _polar_models() -> list[type[polar._PolarProfile]]:
    return [polar.PolarH10, polar.PolarVeritySense]


def check_myo_emg(profile: str, v: dict[str, Any]) -> None:
    out = decode_hex(profile, v["hex"], "emg", _params(v))
    assert out["units"] == "1"
    assert out["timestamps_ns"] is None
    assert out["samples"] == [v["expected"]["sample1"], v["expected"]["sample2"]]


def check_myo_imu(profile: str, v: dict[str, Any]) -> None:
    exp = v["expected"]
    for stream, key, unit in (
        ("orientation", "orientation_wxyz", "1"),
        ("acc", "accelerometer_g", "g"),
        ("gyro", "gyroscope_dps", "°/s"),
    ):
        out = decode_hex(profile, v["hex"], stream, _params(v))
        assert out["samples"] == [exp[key]]
        assert out["units"] == unit


def check_myo_fv(profile: str, v: dict[str, Any]) -> None:
    assert decode_hex(profile, v["hex"], "fv")["samples"] == [v["expected"]["fv"]]
    assert myo.parse_fv(bytes.fromhex(v["hex"])).mask == v["expected"]["mask"]


def _check_message(profile: str, kind: str, v: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = decode_hex(profile, v["hex"], kind)["message"]
    assert {k: message[k] for k in v["expected"]} == v["expected"]
    return message


def check_myo_classifier_event(profile: str, v: dict[str, Any]) -> None:
    m = _check_message(profile, "classifier", v)
    summed = [m["type"]] + ([m["arm"] + m["x_direction"]] if m["arm"] is not None else [])
    summed += [m["pose"]] if m["pose"] is not None else []
    assert summed == v["source_repr"]


def check_myo_motion_event(profile: str, v: dict[str, Any]) -> None:
    _check_message(profile, "motion", v)


def _metawear_close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.001 * max(abs(a), abs(b)), 0.001)


def check_metawear_acc(profile: str, v: dict[str, Any]) -> None:
    exp = v["expected"]
    out = decode_hex(profile, v["hex"], "acc", _params(v))
    assert out["units"] == "g"
    assert len(out["samples"]) == exp["sample_count"]
    for got, want in zip(out["samples"], exp["samples_g"], strict=True):
        assert all(_metawear_close(a, b) for a, b in zip(got, want, strict=True)), (got, want)
    p = v["params"]
    decoder = metamotion.AccDecoder(p["chip"].lower(), p["range_g"])
    (chunk,) = decoder.decode_one(bytes.fromhex(v["hex"]))
    assert chunk.raw.tolist() == v["derived"]["raw_counts"]


def check_metawear_uint(profile: str, v: dict[str, Any]) -> None:
    message = decode_hex(profile, v["hex"], "register")["message"]
    assert f"{message['register']:02x}" == v["expected"]["register"]
    assert message["value"] == v["expected"]["value"]


def check_metawear_acc_config_command(profile: str, v: dict[str, Any]) -> None:
    p = v["params"]
    built = metamotion.config_command(p["chip"].lower(), p["odr_hz"], p["range_g"])
    assert built.hex() == v["hex"] == v["expected"]["hex"]


METAWEAR_COMMANDS: dict[str, list[bytes]] = {
    "enable_acceleration_sampling": [metamotion.ENABLE_SAMPLING],
    "disable_acceleration_sampling": [metamotion.DISABLE_SAMPLING],
    "subscribe_acceleration_data": [metamotion.subscribe(c, packed=False) for c in ("bmi160", "bmi270")],
    "unsubscribe_acceleration_data": [metamotion.unsubscribe(c, packed=False) for c in ("bmi160", "bmi270")],
    "bmi160_subscribe_packed_acceleration": [metamotion.subscribe("bmi160", packed=True)],
    "bmi160_unsubscribe_packed_acceleration": [metamotion.unsubscribe("bmi160", packed=True)],
    "bmi270_subscribe_packed_acceleration": [metamotion.subscribe("bmi270", packed=True)],
    "bmi270_unsubscribe_packed_acceleration": [metamotion.unsubscribe("bmi270", packed=True)],
    "start_accelerometer_example": [metamotion.START],
    "stop_accelerometer_example": [metamotion.STOP],
}


def check_metawear_command(profile: str, v: dict[str, Any]) -> None:
    assert v["name"] in METAWEAR_COMMANDS, f"no builder mapped to MetaWear command vector {v['name']!r}"
    for built in METAWEAR_COMMANDS[v["name"]]:
        assert built.hex() == v["hex"] == v["expected"]["hex"]


def check_metawear_gyro(profile: str, v: dict[str, Any]) -> None:
    exp = v["expected"]
    out = decode_hex(profile, v["hex"], "gyro", _params(v))
    assert out["units"] == "°/s"
    assert len(out["samples"]) == exp["sample_count"]
    for got, want in zip(out["samples"], exp["samples_dps"], strict=True):
        assert all(_metawear_close(a, b) for a, b in zip(got, want, strict=True)), (got, want)
    p = v["params"]
    decoder = metamotion.GyroDecoder(p["chip"].lower(), p["gyro_range_dps"])
    (chunk,) = decoder.decode_one(bytes.fromhex(v["hex"]))
    assert chunk.raw.tolist() == v["derived"]["raw_counts"]


def check_metawear_gyro_not_data(profile: str, v: dict[str, Any]) -> None:
    p = v["params"]
    assert v["expected"]["samples"] == 0
    assert (
        metamotion.GyroDecoder(p["chip"].lower(), p["gyro_range_dps"]).decode_one(bytes.fromhex(v["hex"]))
        == ()
    )
    with pytest.raises(NotificationError, match="carries no 'gyro' samples"):
        decode_hex(profile, v["hex"], "gyro", _params(v))


def check_metawear_gyro_config_command(profile: str, v: dict[str, Any]) -> None:
    p = v["params"]
    built = metamotion.gyro_config_command(p["gyro_odr_hz"], p["gyro_range_dps"])
    assert built.hex() == v["hex"] == v["expected"]["hex"]
    settings = {"chip": p["chip"], "gyro_odr_hz": p["gyro_odr_hz"], "gyro_range_dps": p["gyro_range_dps"]}
    plan = metamotion.MetaMotion.from_params(settings).plan(["gyro"])
    assert plan.start[0].data == built


METAWEAR_GYRO_COMMANDS: dict[str, bytes] = {
    "gyro_start": metamotion.GYRO_START,
    "gyro_stop": metamotion.GYRO_STOP,
    "gyro_enable_rotation_sampling": metamotion.GYRO_ENABLE_SAMPLING,
    "gyro_disable_rotation_sampling": metamotion.GYRO_DISABLE_SAMPLING,
    "gyro_subscribe_rotation_data": metamotion.gyro_subscribe("bmi160", packed=False),
    "gyro_unsubscribe_rotation_data": metamotion.gyro_unsubscribe("bmi160", packed=False),
    "gyro_subscribe_packed_rotation_data": metamotion.gyro_subscribe("bmi160", packed=True),
    "gyro_unsubscribe_packed_rotation_data": metamotion.gyro_unsubscribe("bmi160", packed=True),
}


def check_metawear_gyro_command(profile: str, v: dict[str, Any]) -> None:
    assert v["name"] in METAWEAR_GYRO_COMMANDS, f"no builder mapped to MetaWear command vector {v['name']!r}"
    assert METAWEAR_GYRO_COMMANDS[v["name"]].hex() == v["hex"] == v["expected"]["hex"]


def check_ganglion_delta_block(profile: str, v: dict[str, Any]) -> None:
    assert v["disputed"]
    assert v["hex_is_partial"]
    ours = [[int(x) for x in row] for row in decode_hex(profile, v["hex"], "deltas", _params(v))["samples"]]
    js, msb, brainflow = GANGLION_RULES[v["name"]]
    derived = v["derived"]
    assert (ours == v["expected"]["deltas"]) is js  # our rule is the JS library's = OpenBCI's documented one
    assert (ours == derived["deltas_if_msb_twos_complement"]) is msb
    assert (ours == derived["deltas_if_brainflow_rule"]) is brainflow
    # The same block inside a documented packet (id, block, accelerometer byte for 18-bit) rebuilds
    # samples as previous − delta.
    bits = v["params"]["bits"]
    packet = bytes([1 if bits == 18 else 101]) + bytes.fromhex(v["hex"]) + (b"\x0e" if bits == 18 else b"")
    out = decode_hex(profile, packet.hex(), "emg", {"reference_counts": "1000,2000,3000,4000"})
    first = [r - d for r, d in zip((1000, 2000, 3000, 4000), ours[0], strict=True)]
    second = [f - d for f, d in zip(first, ours[1], strict=True)]
    assert [[round(x / ganglion.SCALE_UV) for x in row] for row in out["samples"]] == [first, second]
    assert out["units"] == "µV"


CHECKS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "pmd_acc_frame": check_pmd_acc_frame,
    "pmd_frame_header": check_pmd_frame_header,
    "pmd_frame_sequence": check_pmd_frame_sequence,
    "pmd_cp_response": check_pmd_cp_response,
    "pmd_settings_tlv": check_pmd_settings_tlv,
    "pmd_start_request": check_pmd_start_request,
    "pmd_cp_service_notification": check_pmd_cp_service_notification,
    "pmd_gyro_frame": check_pmd_gyro_frame,
    "pmd_features": check_pmd_features,
    "myo_emg": check_myo_emg,
    "myo_imu": check_myo_imu,
    "myo_fv": check_myo_fv,
    "myo_classifier_event": check_myo_classifier_event,
    "myo_motion_event": check_myo_motion_event,
    "metawear_acc": check_metawear_acc,
    "metawear_uint": check_metawear_uint,
    "metawear_acc_config_command": check_metawear_acc_config_command,
    "metawear_command": check_metawear_command,
    "metawear_gyro": check_metawear_gyro,
    "metawear_gyro_not_data": check_metawear_gyro_not_data,
    "metawear_gyro_config_command": check_metawear_gyro_config_command,
    "metawear_gyro_command": check_metawear_gyro_command,
    "ganglion_delta_block": check_ganglion_delta_block,
}
# Vector kinds whose payload is a sample notification: (stream, decode_hex stream for truncation fuzzing).
SAMPLE_KINDS = {
    "pmd_acc_frame": "acc",
    "pmd_gyro_frame": "gyro",
    "metawear_gyro": "gyro",
    "myo_emg": "emg",
    "myo_imu": "acc",
    "myo_fv": "fv",
    "metawear_acc": "acc",
    "ganglion_delta_block": "deltas",
}


@pytest.mark.parametrize(("profile", "file", "vector"), _vector_params())
def test_vector(profile: str, file: str, vector: dict[str, Any]) -> None:
    assert profile in profiles(), (
        f"no registered profile claims vector file {file} (add it to VECTOR_PROFILES)"
    )
    check = CHECKS.get(vector["kind"])
    assert check is not None, f"no check for vector kind {vector['kind']!r} in {file}"
    check(profile, vector)


def test_every_vector_file_is_claimed() -> None:
    files = {p.name for p in VECTOR_DIR.glob("*.json")}
    assert files == set(VECTOR_PROFILES), "tests/data/vectors and VECTOR_PROFILES disagree"
    readme = (VECTOR_DIR / "README.md").read_text(encoding="utf-8")
    for name in files:  # published facts only: each names where it comes from
        doc = json.loads((VECTOR_DIR / name).read_text(encoding="utf-8"))
        assert all(doc["source"][key] for key in ("repo", "commit", "licence")), name
        for v in (*doc["vectors"], *doc.get("control_vectors", [])):
            # the test that asserts it, or a flag that no test does (built from the SDK's source)
            assert v["from"] or v.get("not_in_source_tests") is True, (name, v["name"])
        assert f"`{name}`" in readme, f"tests/data/vectors/README.md does not list {name}"


@pytest.mark.parametrize(("profile", "file", "vector"), _vector_params())
def test_truncated_vectors_fail_cleanly(profile: str, file: str, vector: dict[str, Any]) -> None:
    stream = SAMPLE_KINDS.get(vector["kind"])
    if stream is None:
        return
    data = bytes.fromhex(vector["hex"])
    for cut in range(len(data)):
        prefix = data[:cut].hex()
        error = _notification_error(lambda: decode_hex(profile, prefix, stream, _params(vector)))  # noqa: B023
        assert error is None or 0 <= error.offset <= cut


# -------------------------------------------------------------------------------- frame builders


def pmd_frame(timestamp: int, frame_type_byte: int, content: bytes, measurement_type: int = 2) -> bytes:
    return bytes([measurement_type]) + timestamp.to_bytes(8, "little") + bytes([frame_type_byte]) + content


def pmd_delta_content(samples: np.ndarray[Any, Any], width: int) -> bytes:
    """Reference int16 sample, then one block of ``width``-bit deltas packed LSB-first (the PMD layout)."""
    out = bytearray(samples[0].astype("<i2").tobytes())
    deltas = np.diff(samples, axis=0).reshape(-1)
    bits = [(int(d) >> k) & 1 for d in deltas for k in range(width)]
    packed = np.packbits(np.array(bits, dtype=np.uint8), bitorder="little").tobytes() if bits else b""
    return bytes(out) + bytes([width, len(samples) - 1]) + packed


def ganglion_packet(packet_id: int, deltas: list[list[int]], bits: int) -> bytes:
    """The firmware's rule: the 32-bit difference with its sign copied into bit 0, low ``bits`` bits sent."""
    stream = ""
    for value in (d for row in deltas for d in row):
        word = (value & 0xFFFFFFFE) | (1 if value < 0 else 0)
        stream += format(word & ((1 << bits) - 1), f"0{bits}b")
    stream += "0" * (-len(stream) % 8)
    body = int(stream, 2).to_bytes(len(stream) // 8, "big")
    return bytes([packet_id]) + body + (b"\x00" if bits == 18 else b"")


def ganglion_raw(sample: list[int]) -> bytes:
    return b"\x00" + b"".join((v & 0xFFFFFF).to_bytes(3, "big") for v in sample) + bytes(7)


def movesense_data(reference: int, t_ms: int, xyz: list[tuple[float, float, float]]) -> bytes:
    return bytes([2, reference]) + struct.pack("<I", t_ms) + b"".join(struct.pack("<fff", *s) for s in xyz)


# ------------------------------------------------------------------------------------- fuzzing

POLAR_START_OK = b"\xf0\x02\x02\x00\x00"
POLAR_GYRO_START_OK = b"\xf0\x02\x05\x00\x00"
POLAR_STARTED = {"acc": POLAR_START_OK, "gyro": POLAR_GYRO_START_OK}


def _seeds(name: str) -> list[bytes]:
    """Valid notifications per profile, built from the documented layouts (and the vectors when present)."""
    counts = np.array([[10, -20, 1000], [12, -18, 998], [9, -25, 1003]], dtype=np.int64)
    seeds: dict[str, list[bytes]] = {
        "polar-h10": [
            pmd_frame(2_000_000_000, 0x01, counts.astype("<i2").tobytes()),
            pmd_frame(2_000_000_000, 0x81, pmd_delta_content(counts, 6)),
            pmd_frame(2_000_000_000, 0x80, pmd_delta_content(counts, 7)),
        ],
        "myo": [bytes(range(16)), bytes(range(20)), bytes(17)],
        "metamotion": [b"\x03\x04" + bytes(range(6)), b"\x03\x1c" + bytes(range(18)), b"\x03\x9a\x2b\x00"],
        "movesense": [
            movesense_data(1, 1000, [(0.0, 9.8, 0.1)] * 4),
            movesense_data(2, 5, [(1.0, 2.0, 3.0)]),
        ],
        "ganglion": [
            ganglion_raw([1, -2, 3, -4]),
            ganglion_packet(101, [[1, -1, 4, -3], [0, 2, -2, 5]], 19),
            ganglion_packet(2, [[7, -7, 0, 1], [1, 1, 1, 1]], 18),
            b"\xc9" + b"1234Z" + bytes(14),
        ],
        "thingy52": [bytes(range(18))],
        "open": [
            open_profile.encode_frame(
                0, 7, 1_000_000, 1000.0, 0.5, Unit.MICROVOLT, open_profile.SampleFormat.INT16, [[1, 2]] * 5
            ),
            open_profile.encode_frame(
                1, 8, 2, 100.0, 1 / 4096, Unit.G, open_profile.SampleFormat.INT24, [[1, -2, 3]]
            ),
        ],
    }
    seeds["polar-verity"] = [
        *seeds["polar-h10"],
        pmd_frame(2_000_000_000, 0x80, pmd_delta_content(counts, 7), measurement_type=5),
        pmd_frame(2_000_000_000, 0x00, counts.astype("<i2").tobytes(), measurement_type=5),
        pmd_frame(2_000_000_000, 0x01, counts.astype("<f4").tobytes(), measurement_type=5),
    ]
    seeds["metamotion"] += [b"\x13\x05" + bytes(range(6)), b"\x13\x07" + bytes(range(18))]
    for path, names in VECTOR_PROFILES.items():
        doc = json.loads((VECTOR_DIR / path).read_text(encoding="utf-8"))
        for name_ in names:
            seeds.setdefault(name_, []).extend(
                bytes.fromhex(v["hex"]) for v in doc["vectors"] if v["kind"] in SAMPLE_KINDS and v["hex"]
            )
    return seeds[name]


def _fuzz_cases() -> Iterator[Any]:
    for name, cls in sorted(profiles().items()):
        found: dict[str, Decoder[Any]] = {}  # by label: each kind of decoder once
        every = [s.name for s in cls.STREAMS if (name, s.name) != ("myo", "fv")]
        for streams in [[spec.name] for spec in cls.STREAMS] + [every]:
            replies = [POLAR_STARTED[s] for s in sorted(streams)] if name.startswith("polar") else []
            for decoder in cls().decoders(streams, replies).values():
                found.setdefault(f"{name}-{'+'.join(sorted(decoder.streams))[:40]}", decoder)
        for label, decoder in found.items():
            yield pytest.param(decoder, _seeds(name), id=label)
    for bits in (18, 19):
        yield pytest.param(ganglion.DeltaBlockDecoder(bits), _seeds("ganglion"), id=f"ganglion-deltas{bits}")


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + (draw(st.binary(max_size=12)) if draw(st.booleans()) else b"")


def _warm_state(decoder: Decoder[Any], seeds: list[bytes]) -> Any:
    state = decoder.initial_state()
    for seed in seeds:
        with contextlib.suppress(NotificationError):
            _, state = decoder.decode(seed, state)
    return state


@pytest.mark.parametrize(("decoder", "seeds"), list(_fuzz_cases()))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoders_raise_only_notification_error(
    decoder: Decoder[Any], seeds: list[bytes], data: st.DataObject
) -> None:
    """Arbitrary and mutated notifications: chunks or ``NotificationError``, nothing else. Work is bounded by
    the payload (no loop outlives it), so there is no timing assertion."""
    payload = data.draw(st.one_of(st.binary(max_size=300), mutated(seeds)))
    for state in (decoder.initial_state(), _warm_state(decoder, seeds)):
        results: list[tuple[tuple[Chunk, ...], Any]] = []
        error = _notification_error(lambda: results.append(decoder.decode(payload, state)))  # noqa: B023
        if error is not None:
            assert 0 <= error.offset <= len(payload)
            continue
        ((chunks, _),) = results
        for chunk in chunks:
            assert isinstance(chunk, Chunk)
            assert chunk.stream in decoder.streams
            assert np.isfinite(chunk.values()).all()


# ------------------------------------------------------------------------------------- registry


def test_every_expected_profile_is_registered() -> None:
    registry = profiles()
    assert set(registry) >= EXPECTED_PROFILES
    for name, cls in registry.items():
        assert name == cls.NAME
        assert cls.__module__.startswith("twitchwatch.collector.devices.")
        assert cls.SETTINGS().type == name  # type: ignore[call-arg]
        assert cls.DEFAULT_STREAM in {s.name for s in cls.STREAMS}
        assert get_profile(name) is cls


PROFILE_SOURCE = """
from typing import Literal
from twitchwatch.collector.devices import DeviceProfile, ProfileSettings

class Settings_{cls}(ProfileSettings):
    type: Literal["{settings_type}"] = "{settings_type}"

class Profile_{cls}(DeviceProfile):
    NAME = "{name}"
    TITLE = "fake"
    SERVICE = "0000"
    SETTINGS = Settings_{cls}
    STREAMS = ()
    DEFAULT_STREAM = "x"

    def plan(self, streams):
        raise NotImplementedError

    def decoders(self, streams, replies=()):
        return {{}}
"""


def _profile_source(name: str, settings_type: str | None = None, cls: str = "A") -> str:
    return PROFILE_SOURCE.format(name=name, settings_type=settings_type or name, cls=cls)


@pytest.fixture
def fake_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, str]], str]]:
    created: list[str] = []

    def make(modules: dict[str, str]) -> str:
        name = f"fake_profiles_{len(created)}_{tmp_path.name}".replace("-", "_")
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        for module, source in modules.items():
            (package / f"{module}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    yield make
    for name in created:
        for key in [k for k in sys.modules if k == name or k.startswith(f"{name}.")]:
            del sys.modules[key]


def test_discovery_finds_profiles_without_a_list(fake_package: Callable[[dict[str, str]], str]) -> None:
    package = fake_package(
        {"one": _profile_source("one"), "two": _profile_source("two"), "_helper": "X = 1\n"}
    )
    assert sorted(discover(package)) == ["one", "two"]


def test_a_module_that_fails_to_import_fails_discovery(fake_package: Callable[[dict[str, str]], str]) -> None:
    package = fake_package({"good": _profile_source("good"), "broken": "import not_a_module_anywhere\n"})
    with pytest.raises(ProfileImportError, match=r"\.broken failed to import: ModuleNotFoundError"):
        discover(package)


def test_duplicate_names_fail_discovery(fake_package: Callable[[dict[str, str]], str]) -> None:
    package = fake_package({"a": _profile_source("same"), "b": _profile_source("same", cls="B")})
    with pytest.raises(DuplicateProfileError, match="'same' is claimed by"):
        discover(package)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("X = 1\n", "defines no device profile"),
        (_profile_source("Bad Name", settings_type="x"), "is not 1-32"),
        (_profile_source("right", settings_type="wrong"), "SETTINGS.type must default to 'right'"),
    ],
)
def test_malformed_profile_modules_fail_discovery(
    fake_package: Callable[[dict[str, str]], str], source: str, match: str
) -> None:
    with pytest.raises(ProfileError, match=match):
        discover(fake_package({"m": source}))


def test_settings_are_one_discriminated_union_rejecting_unknown_keys() -> None:
    chosen = validate_settings({"type": "polar-h10", "rate_hz": 100})
    assert isinstance(chosen, polar.PolarH10Settings)
    assert chosen.rate_hz == 100
    assert isinstance(
        validate_settings({"type": "metamotion", "chip": "BMI270"}), metamotion.MetaMotionSettings
    )
    with pytest.raises(ParamError, match=r"polar-h10\.bogus"):
        validate_settings({"type": "polar-h10", "bogus": 1})
    with pytest.raises(ParamError, match="rate_hz"):
        validate_settings({"type": "polar-verity", "rate_hz": 200})
    with pytest.raises(ParamError, match="odr_hz"):
        metamotion.MetaMotion.from_params({"odr_hz": "99"})
    with pytest.raises(ParamError, match="rate_hz"):
        thingy52.Thingy52.from_params({"rate_hz": "400"})


def test_every_profile_plans_each_of_its_streams() -> None:
    for name, cls in profiles().items():
        profile = cls()
        for spec in cls.STREAMS:
            if (name, spec.name) == ("myo", "fv"):
                with pytest.raises(ParamError, match="fv"):
                    profile.plan([spec.name])
                continue
            plan = profile.plan([spec.name])
            assert plan.streams == (spec.name,)
            assert spec.characteristic in plan.notify or name == "myo"
            assert plan.start
            assert plan.min_mtu >= 23
        with pytest.raises(ParamError, match="unknown stream"):
            profile.plan(["nope"])


# ---------------------------------------------------------------------------------- decode_hex


def test_decode_hex_reports_errors_as_typed_value_errors() -> None:
    with pytest.raises(UnknownProfile, match="known: ganglion"):
        decode_hex("no-such-device", "00")
    with pytest.raises(ParamError, match="nonsense"):
        decode_hex("polar-h10", "00", "acc", {"nonsense": "1"})
    with pytest.raises(NotificationError, match="not hexadecimal") as info:
        decode_hex("myo", "00zz", "emg")
    assert info.value.offset == 1
    with pytest.raises(ParamError, match="no parameters"):
        decode_hex("myo", "000201", "motion", {"x": "1"})
    with pytest.raises(NotificationError, match="carries no 'acc' samples"):
        decode_hex("metamotion", "039a2b00", "acc")
    assert decode_hex("thingy52", "00:04 " * 9, "acc")["samples"] == [[1.0, 1.0, 1.0]]


def test_chunk_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="shape"):
        Chunk("x", np.zeros(3, dtype=np.int16), 1.0, Unit.G)
    with pytest.raises(ValueError, match="dtype"):
        Chunk("x", np.zeros((3, 1), dtype=np.int64), 1.0, Unit.G)
    with pytest.raises(ValueError, match="scale"):
        Chunk("x", np.zeros((3, 1), dtype=np.int16), math.nan, Unit.G)
    with pytest.raises(ValueError, match="timestamps"):
        Chunk("x", np.zeros((3, 1), dtype=np.int16), 1.0, Unit.G, 10.0, np.zeros(2, dtype=np.int64))
    chunk = Chunk("x", np.array([[-9]], dtype=np.int32), 0.001, Unit.G)
    assert chunk.to_json() == {"samples": [[-0.009]], "timestamps_ns": None, "units": "g"}
    with pytest.raises(ValueError, match="read-only"):
        chunk.raw[0, 0] = 1


# ------------------------------------------------------------------------------------------- Polar


@given(
    reference=st.lists(st.integers(-(2**15), 2**15 - 1), min_size=3, max_size=3),
    steps=st.lists(st.lists(st.integers(-(2**9), 2**9 - 1), min_size=3, max_size=3), max_size=60),
)
def test_polar_delta_frames_round_trip(reference: list[int], steps: list[list[int]]) -> None:
    counts = np.cumsum(np.array([reference, *steps], dtype=np.int64), axis=0)
    frame = polar.parse_acc_frame(pmd_frame(10**9, 0x81, pmd_delta_content(counts, 10)))
    assert frame.counts.tolist() == counts.tolist()


def test_polar_timestamps_follow_the_previous_frame_and_the_rounding_rule() -> None:
    decoder = polar.PmdAccDecoder(1.0, 52.0)
    samples = np.array([[0, 0, 1000]] * 4, dtype=np.int16).tobytes()
    (first,), state = decoder.decode(pmd_frame(1_000_000_000, 0x01, samples), polar.PmdState())
    assert first.timestamps_ns is not None
    assert first.timestamps_ns.tolist() == [1_000_000_000 - round(k * 1e9 / 52) for k in (3, 2, 1, 0)]
    (second,), state = decoder.decode(pmd_frame(1_000_000_010, 0x01, samples), state)
    assert second.timestamps_ns is not None
    assert second.timestamps_ns.tolist() == [1_000_000_002, 1_000_000_005, 1_000_000_008, 1_000_000_010]
    # 100 + 1/2: half-to-even (Android) keeps 100, half-away-from-zero (iOS) gives 101
    assert polar.sample_times(101, 100, 2, 0.0) == [100, 101]
    assert polar.sample_times(101, 100, 2, 0.0, "half_away_from_zero") == [101, 101]
    # a clock that went backwards: count back at the sample rate instead
    assert polar.sample_times(90, 100, 2, 100.0) == [90 - 10_000_000, 90]
    assert polar.sample_times(90, 0, 2, 0.0) is None


def test_polar_a_frame_that_never_came_is_lost_samples_not_a_stretched_frame() -> None:
    """A PMD frame refused (cut by a small MTU) or never delivered: spread back to the frame before it, the
    next frame's samples would span two frames' time at half the rate, its first sample a frame early, and
    no gap would show. Counted back from its own timestamp at the rate, with the frame between lost."""
    decoder = polar.PmdAccDecoder(1.0, 200.0)
    samples = np.array([[0, 0, 1000]] * 36, dtype=np.int16).tobytes()
    span = 180_000_000  # 36 samples at 200 Hz
    t = 800_000_000_000_000_000
    (first,), state = decoder.decode(pmd_frame(t, 0x01, samples), polar.PmdState())
    assert first.lost_samples == 0
    (after,), state = decoder.decode(pmd_frame(t + 2 * span, 0x01, samples), state)  # one frame missing
    assert after.lost_samples == 36
    assert after.timestamps_ns is not None
    assert after.timestamps_ns.tolist() == [t + 2 * span - (35 - k) * 5_000_000 for k in range(36)]
    (next_one,), _ = decoder.decode(pmd_frame(t + 3 * span, 0x01, samples), state)
    assert next_one.lost_samples == 0
    assert next_one.timestamps_ns is not None
    assert next_one.timestamps_ns[0] == t + 2 * span + 5_000_000  # consecutive: spread as before


def test_polar_a_small_frame_lost_before_a_large_one_is_lost_samples() -> None:
    """Compressed frames vary in size with the signal: a lost 12-sample frame before a 60-sample one made a
    span of 72 samples, under the 1.5 frames of 60 the rule took for a loss — the 60 samples were spread
    over 72 samples' time, their first 60 ms early, and no gap showed."""
    decoder = polar.PmdAccDecoder(1.0, 200.0)
    t = 800_000_000_000_000_000
    period = 5_000_000
    _, state = decoder.decode(pmd_frame(t, 0x01, _acc_samples(12)), polar.PmdState())
    # the next 12-sample frame never came; then 60 samples
    (after,), state = decoder.decode(pmd_frame(t + 72 * period, 0x01, _acc_samples(60)), state)
    assert after.lost_samples == 12
    assert after.timestamps_ns is not None
    assert after.timestamps_ns[0] == t + 13 * period
    # a frame a sample long or short of its span (a device clock a little off nominal) is no loss
    (on_time,), _ = decoder.decode(pmd_frame(t + 133 * period, 0x01, _acc_samples(60)), state)
    assert on_time.lost_samples == 0


def _acc_samples(n: int) -> bytes:
    return np.array([[0, 0, 1000]] * n, dtype=np.int16).tobytes()


def test_polar_start_plan_and_factor_from_the_start_response() -> None:
    h10 = polar.PolarH10()
    plan = h10.plan(["acc"])
    (start,) = plan.start
    # REQUEST_MEASUREMENT_START, ACC, then [type][count 1][u16]: 200 Hz, 16 bit, 8 g
    assert start.data == bytes([0x02, 0x02, 0, 1, 200, 0, 1, 1, 16, 0, 2, 1, 8, 0])
    assert start.characteristic == polar.PMD_CONTROL_POINT
    assert start.reply
    assert plan.stop[0].data == b"\x03\x02"
    assert plan.min_mtu == 232
    assert polar.PolarVeritySense().plan(["acc"]).start[0].data.endswith(bytes([4, 1, 3]))

    factor = 0.000244
    reply = POLAR_START_OK + bytes([5, 1]) + struct.pack("<f", factor)
    (decoder,) = h10.decoders(["acc"], [reply]).values()
    assert isinstance(decoder, polar.PmdAccDecoder)
    assert decoder.factor == np.float32(factor)
    with pytest.raises(ControlError, match="FACTOR"):
        h10.decoders(["acc"])
    with pytest.raises(ControlError, match="ERROR_INVALID_SAMPLE_RATE"):
        h10.decoders(["acc"], [b"\xf0\x02\x02\x08\x00"])
    with pytest.raises(ControlError, match="unusable FACTOR"):
        h10.decoders(["acc"], [POLAR_START_OK + bytes([5, 1]) + struct.pack("<f", math.inf)])
    # Positive and finite, but its frames' scale is 0 as a float32: the worker refused every one.
    with pytest.raises(ControlError, match="unusable FACTOR"):
        h10.decoders(["acc"], [POLAR_START_OK + bytes([5, 1]) + struct.pack("<f", 1e-44)])
    with pytest.raises(ControlError, match="malformed"):
        h10.decoders(["acc"], [POLAR_START_OK + b"\x05\x01\x00"])


def test_polar_rejects_what_it_cannot_decode() -> None:
    decoder = polar.PmdAccDecoder(1.0, 100.0)
    state = decoder.initial_state()
    cases = [
        (pmd_frame(1, 0x01, b"", measurement_type=0), 0),  # ECG is not decoded
        (pmd_frame(1, 0x03, bytes(6)), 9),  # raw type 3
        (pmd_frame(1, 0x01, bytes(7)), 16),  # 7 bytes of 6-byte samples: the second is cut at 16
        (pmd_frame(1, 0x81, bytes(6) + bytes([40, 1])), 16),  # 40-bit deltas
        (pmd_frame(1, 0x81, bytes(6) + bytes([8, 2, 0])), 16),  # block needs 6 bytes
        (pmd_frame(1, 0x01, b""), 10),
        (pmd_frame(2**64 - 1, 0x01, bytes(6)), 1),  # past int64 ns
    ]
    for data, offset in cases:
        with pytest.raises(NotificationError) as info:
            decoder.decode(data, state)
        assert info.value.offset == offset, (data.hex(), info.value)
    huge = polar.PmdAccDecoder(3e38, 100.0)
    with pytest.raises(NotificationError, match="FACTOR"):
        huge.decode(pmd_frame(1, 0x80, np.array([30000, 0, 0], dtype="<i2").tobytes()), state)


def test_polar_gyro_only_where_the_model_has_one_and_one_start_per_measurement() -> None:
    with pytest.raises(ParamError, match="unknown stream 'gyro'; polar-h10 has acc"):
        polar.PolarH10().plan(["acc", "gyro"])
    verity = polar.PolarVeritySense()
    plan = verity.plan(["gyro", "acc"])
    assert plan.streams == ("acc", "gyro")
    # ACC then GYRO: [type][count 1][value]: 52 Hz, 16 bit, ±8 g / ±2000 °/s, three channels
    assert [w.data.hex() for w in plan.start] == [
        "0202" + "0001" + "3400" + "0101" + "1000" + "0201" + "0800" + "040103",
        "0205" + "0001" + "3400" + "0101" + "1000" + "0201" + "d007" + "040103",
    ]
    assert all(w.reply for w in (*plan.start, *plan.stop))
    assert [w.data for w in plan.stop] == [b"\x03\x02", b"\x03\x05"]
    acc_reply = POLAR_START_OK + bytes([5, 1]) + struct.pack("<f", 2.44e-4)
    gyro_reply = POLAR_GYRO_START_OK + bytes([5, 1]) + struct.pack("<f", 0.5)
    (decoder,) = verity.decoders(["acc", "gyro"], [acc_reply, gyro_reply]).values()
    assert isinstance(decoder, polar.PmdDecoder)
    assert decoder.streams == {"acc", "gyro"}
    state = decoder.initial_state()
    counts = np.array([[100, -200, 4000], [110, -190, 4010]], dtype=np.int64)
    (acc,), state = decoder.decode(pmd_frame(10**9, 0x80, pmd_delta_content(counts, 5)), state)
    (gyro,), state = decoder.decode(pmd_frame(10**9, 0x80, pmd_delta_content(counts, 5), 5), state)
    assert (acc.stream, acc.unit, gyro.stream, gyro.unit) == ("acc", Unit.G, "gyro", Unit.DEG_PER_S)
    assert gyro.values().tolist() == (counts * 0.5).tolist()
    assert gyro.sample_rate == 52.0
    assert gyro.timestamps_ns is not None
    assert gyro.timestamps_ns[-1] == 10**9
    # Each measurement keeps its own previous timestamp.
    assert state.previous == {(2, 0x80): 10**9, (5, 0x80): 10**9}
    with pytest.raises(NotificationError, match="a frame of ECG, but only ACC, GYRO were started"):
        decoder.decode(pmd_frame(1, 0x00, bytes(3), 0), state)
    with pytest.raises(ControlError, match="one start-measurement response per stream"):
        verity.decoders(["acc", "gyro"], [acc_reply])
    with pytest.raises(ControlError, match="not 5"):
        verity.decoders(["acc", "gyro"], [acc_reply, acc_reply])
    (alone,) = verity.decoders(["gyro"], [gyro_reply]).values()
    assert isinstance(alone, polar.PmdGyroDecoder)


def test_polar_gyro_frames_of_every_documented_type() -> None:
    counts = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int64)
    floats = np.array([[0.25, -1.5, 300.0], [0.5, 2.0, -0.125]], dtype=np.float32)
    raw0 = polar.parse_gyro_frame(pmd_frame(5, 0x00, counts.astype("<i2").tobytes(), 5))
    raw1 = polar.parse_gyro_frame(pmd_frame(5, 0x01, floats.astype("<f4").tobytes(), 5))
    assert (raw0.values.tolist(), raw0.floats) == (counts.tolist(), False)
    assert (raw1.values.tolist(), raw1.floats) == (floats.tolist(), True)
    raw, scale = polar.gyro_deg_per_s(raw0, 0.061)
    assert (raw.dtype.name, raw.tolist(), scale) == ("int32", counts.tolist(), float(np.float32(0.061)))
    product, scale = polar.gyro_deg_per_s(raw1, 0.5)
    assert (scale, product.dtype.name, product.tolist()) == (1.0, "float32", (floats * 0.5).tolist())
    decoder = polar.PmdGyroDecoder(1.0, 52.0)
    state = decoder.initial_state()
    cases = [
        (pmd_frame(1, 0x02, bytes(6), 5), 9),  # GYRO type 2 is not documented
        (pmd_frame(1, 0x82, bytes(6), 5), 9),
        (pmd_frame(1, 0x00, bytes(7), 5), 16),  # 7 bytes of 6-byte samples
        (pmd_frame(1, 0x01, bytes(12) + bytes([0, 0, 0x80, 0x7F]) + bytes(8), 5), 22),  # +inf in sample 2
        (pmd_frame(1, 0x81, bytes(11), 5), 21),  # the float reference sample needs 12 bytes
        (pmd_frame(1, 0x80, bytes(6), 2), 0),  # an ACC frame
    ]
    for data, offset in cases:
        with pytest.raises(NotificationError) as info:
            decoder.decode(data, state)
        assert info.value.offset == offset, (data.hex(), info.value)


def test_polar_features_read() -> None:
    features = polar.parse_features(bytes.fromhex("0f2400"))
    assert features.names == ("ACC", "GYRO")
    assert features.offers(polar.MeasurementType.GYRO)
    assert not features.offers(polar.MeasurementType.ECG)
    assert polar.parse_features(bytes.fromhex("0f0080")).names == ("measurement type 15",)
    with pytest.raises(NotificationError, match="starts with 0F") as info:
        polar.parse_features(bytes.fromhex("f00102"))
    assert info.value.offset == 0
    with pytest.raises(NotificationError, match="truncated"):
        polar.parse_features(b"\x0f")


# --------------------------------------------------------------------------------------------- Myo


def test_myo_plan_and_event_errors() -> None:
    plan = myo.Myo().plan(["emg", "acc"])
    assert plan.notify == (*myo.EMG_DATA, myo.IMU_DATA)
    assert [w.data for w in plan.start] == [bytes([1, 3, 3, 1, 0]), bytes([9, 1, 1])]
    assert [w.data for w in plan.stop] == [bytes([1, 3, 0, 0, 0]), bytes([9, 1, 0])]
    assert myo.Myo.from_params({"emg_mode": "filtered"}).plan(["emg"]).start[0].data == bytes([1, 3, 2, 0, 0])
    with pytest.raises(NotificationError, match=r"not in myohw\.h"):
        myo.parse_classifier_event(bytes([9, 0, 0]))
    with pytest.raises(NotificationError, match=r"not in myohw\.h"):
        myo.parse_motion_event(bytes([1, 0, 0]))
    with pytest.raises(ParamError, match="IMU scales"):
        decode_hex("myo", "00" * 20, "acc", {"accelerometer_scale": "1000"})


# ------------------------------------------------------------------------------------- MetaMotion


def test_metamotion_plan_packs_above_100_hz_and_ignores_other_modules() -> None:
    plan = metamotion.MetaMotion.from_params({"odr_hz": "200", "range_g": "8"}).plan(["acc"])
    assert [w.data.hex() for w in plan.start] == ["03032908", "031c01", "03020100", "030101"]
    assert [w.data.hex() for w in plan.stop] == ["030100", "03020001", "031c00"]
    slow = metamotion.MetaMotion.from_params({"chip": "bmi270"}).plan(["acc"])
    assert slow.start[1].data.hex() == "030401"
    decoder = metamotion.AccDecoder("bmi160", 2)
    assert decoder.decode_one(bytes.fromhex("118c01")) == ()  # battery (module 0x11)
    (chunk,) = decoder.decode_one(b"\x03\x04" + struct.pack("<hhh", 16384, -8192, 0))
    assert chunk.values().tolist() == [[1.0, -0.5, 0.0]]
    with pytest.raises(NotificationError, match="8 bytes, got 7") as info:
        decoder.decode_one(b"\x03\x04" + bytes(5))
    assert info.value.offset == 7


def test_metamotion_gyro_plan_decoders_and_packing_for_both_sensors() -> None:
    gyro_only = metamotion.MetaMotion.from_params({"gyro_odr_hz": "50", "gyro_range_dps": "500"})
    plan = gyro_only.plan(["gyro"])
    assert [w.data.hex() for w in plan.start] == ["13032702", "130501", "13020100", "130101"]
    assert [w.data.hex() for w in plan.stop] == ["130100", "13020001", "130500"]
    # acc and gyro at 100 Hz each would be 200 notifications a second: both go packed
    both = metamotion.MetaMotion().plan(["acc", "gyro"])
    assert [w.data.hex() for w in both.start] == [
        *("03032805", "031c01", "03020100", "030101"),
        *("13032800", "130701", "13020100", "130101"),
    ]
    assert [w.data.hex() for w in both.stop] == [
        "030100",
        "03020001",
        "031c00",
        "130100",
        "13020001",
        "130700",
    ]
    assert metamotion.MetaMotion().plan(["acc"]).start[1].data.hex() == "030401"  # 100 Hz alone: unpacked
    unpacked = metamotion.MetaMotion.from_params({"packed": "false"}).plan(["acc", "gyro"])
    assert unpacked.start[5].data.hex() == "130501"
    s270 = metamotion.MetaMotion.from_params({"chip": "bmi270", "gyro_odr_hz": "25"}).plan(["gyro"])
    assert s270.start[1].data.hex() == "130401"  # BMI270 gyro data register
    with pytest.raises(ParamError, match="gyro_odr_hz"):
        metamotion.MetaMotion.from_params({"gyro_odr_hz": "52"})

    (imu,) = metamotion.MetaMotion.from_params({"range_g": "2"}).decoders(["acc", "gyro"]).values()
    assert imu.streams == {"acc", "gyro"}
    (acc,), _ = imu.decode(b"\x03\x04" + struct.pack("<hhh", 16384, 0, 0), None)
    (gyro,), _ = imu.decode(b"\x13\x07" + struct.pack("<9h", 164, 0, -164, *range(6)), None)
    assert (acc.stream, gyro.stream, gyro.unit, gyro.samples) == ("acc", "gyro", Unit.DEG_PER_S, 3)
    assert gyro.values()[0].tolist() == pytest.approx([10.0, 0.0, -10.0])
    assert gyro.sample_rate == 100.0
    assert imu.decode(b"\x13\x09" + bytes(6), None) == ((), None)  # not a data register
    assert imu.decode(b"\x11\x8c\x01", None) == ((), None)  # battery
    # BMI270: 0x05 is the gyro's PACKED register (BMI160's single-sample one)
    bmi270 = metamotion.GyroDecoder("bmi270", 2000)
    with pytest.raises(NotificationError, match="0x05 carries 3 sample") as info:
        bmi270.decode_one(b"\x13\x05" + bytes(6))
    assert info.value.offset == 8
    with pytest.raises(ParamError, match="packs gyro on 7"):
        decode_hex("metamotion", "1307" + "00" * 18, "gyro", {"packed_register": "28"})


# -------------------------------------------------------------------------------------- Movesense


def test_movesense_frames_built_from_the_documented_layout() -> None:
    profile = movesense.Movesense.from_params({"acc_rate_hz": "52", "gyro_rate_hz": "208"})
    plan = profile.plan(["acc", "gyro"])
    assert [w.data for w in plan.start] == [b"\x01\x01/Meas/Acc/52", b"\x01\x02/Meas/Gyro/208"]
    assert [w.data for w in plan.stop] == [b"\x02\x01", b"\x02\x02"]
    (decoder,) = profile.decoders(["acc", "gyro"]).values()
    g = movesense.STANDARD_GRAVITY
    (acc,), _ = decoder.decode(movesense_data(1, 1000, [(0.0, 0.0, g), (g / 2, 0.0, -g)]), None)
    assert acc.stream == "acc"
    assert acc.unit is Unit.G
    assert np.allclose(acc.values(), np.array([[0, 0, 1], [0.5, 0, -1]]), atol=1e-7)
    assert acc.timestamps_ns is not None
    assert acc.timestamps_ns.tolist() == [1_000_000_000, 1_000_000_000 + round(1e9 / 52)]
    (gyro,), _ = decoder.decode(movesense_data(2, 7, [(1.5, -2.0, 0.25)]), None)
    assert gyro.stream == "gyro"
    assert gyro.unit is Unit.DEG_PER_S
    assert gyro.values().tolist() == [[1.5, -2.0, 0.25]]
    assert decoder.decode(b"\x01\x01Hello", None) == ((), None)
    assert movesense.parse_command_result(b"\x01\x01\x01\xfb") == movesense.CommandResult(1, 507, None)
    assert movesense.parse_command_result(b"\x01\x05Hello").text == "Hello"
    for bad, offset in ((movesense_data(9, 0, [(0, 0, 0)]), 1), (movesense_data(1, 0, []), 6)):
        with pytest.raises(NotificationError) as info:
            decoder.decode(bad, None)
        assert info.value.offset == offset
    with pytest.raises(NotificationError, match="non-finite") as info:
        decoder.decode(movesense_data(1, 0, [(0.0, math.nan, 0.0)]), None)
    assert info.value.offset == 10


# --------------------------------------------------------------------------------------- Ganglion


def test_ganglion_rebuilds_samples_across_a_cycle_and_resyncs_after_a_loss() -> None:
    decoder = ganglion.GanglionDecoder()
    state = decoder.initial_state()
    # Compressed (the cycle's last, id 200) before any raw packet: dropped and counted.
    chunks, state = decoder.decode(ganglion_packet(200, [[0] * 4, [0] * 4], 19), state)
    assert chunks == ()
    truth = [[100, -200, 3000, -40000]]
    (chunk,), state = decoder.decode(ganglion_raw(truth[0]), state)
    assert chunk.raw.tolist() == truth
    assert chunk.lost_samples == 2
    assert chunk.unit is Unit.MICROVOLT
    # Deltas the firmware sends exactly: even when positive, odd when negative (bit 0 carries the sign).
    deltas = [[[2, -3, 4, -5], [-1, 6, -7, 8]], [[10, -11, 0, 2], [-2 + 1, 4, -9, 2]]]
    for packet_id, pair in zip((101, 102), deltas, strict=True):
        for d in pair:
            truth.append([p - x for p, x in zip(truth[-1], d, strict=True)])
        (chunk,), state = decoder.decode(ganglion_packet(packet_id, pair, 19), state)
        assert chunk.raw.tolist() == truth[-2:]
        assert chunk.lost_samples == 0
    assert abs(chunk.values()[0, 0] - truth[-2][0] * ganglion.SCALE_UV) < 1e-9
    # Packet 103 is lost: 104 cannot be rebuilt; the next raw packet resyncs and reports the gap.
    chunks, state = decoder.decode(ganglion_packet(104, deltas[0], 19), state)
    assert chunks == ()
    (chunk,), state = decoder.decode(ganglion_raw([1, 2, 3, 4]), state)
    assert chunk.raw.tolist() == [[1, 2, 3, 4]]
    # 103 (lost) and 104 (dropped) held 2 samples each; 105-200 (96 packets) were lost too
    assert chunk.lost_samples == 2 + 2 + 2 * 96
    # 18-bit packets (accelerometer on) continue the same cycle
    (chunk,), state = decoder.decode(ganglion_packet(1, [[2, 2, 2, 2], [-1, -1, -1, -1]], 18), state)
    assert chunk.raw.tolist() == [[-1, 0, 1, 2], [0, 1, 2, 3]]
    assert decoder.decode(b"\xc9" + b"1234Z" + bytes(14), state) == ((), state)  # impedance, not samples
    with pytest.raises(NotificationError, match="packet id 230") as info:
        decoder.decode(bytes([230]) + bytes(19), state)
    assert info.value.offset == 0


@given(st.lists(st.integers(-(2**18), 2**18 - 1), min_size=8, max_size=8))
def test_ganglion_sign_in_bit_zero_round_trips_within_one_count(values: list[int]) -> None:
    """Encoded as the documentation's firmware does, decoded with the LSB rule: sign kept, |error| ≤ 1."""
    packet = ganglion_packet(101, [values[:4], values[4:]], 19)
    decoded = ganglion.decode_deltas(packet[1:], 19).reshape(-1).tolist()
    for got, want in zip(decoded, values, strict=True):
        assert abs(got - want) <= 1
        assert (got < 0) == (want < 0)


# -------------------------------------------------------------------------------------- Thingy:52


def test_thingy52_raw_data_built_from_the_documented_layout() -> None:
    profile = thingy52.Thingy52.from_params({"rate_hz": "200"})
    plan = profile.plan(["acc", "gyro"])
    assert plan.notify == (thingy52.RAW_DATA,)
    assert plan.stop == ()
    assert plan.start[0].characteristic == thingy52.MOTION_CONFIG
    assert plan.start[0].data == struct.pack("<HHHHB", 1000, 500, 500, 200, 1)
    (decoder,) = profile.decoders(["acc"]).values()
    raw = struct.pack("<9h", 1024, -512, 2048, 32, -64, 16, 160, 0, -16)  # Q6.10 g, Q11.5 °/s, Q12.4 µT
    (acc, gyro), _ = decoder.decode(raw, None)
    assert acc.values().tolist() == [[1.0, -0.5, 2.0]]
    assert acc.unit is Unit.G
    assert gyro.values().tolist() == [[1.0, -2.0, 0.5]]
    assert gyro.unit is Unit.DEG_PER_S
    with pytest.raises(NotificationError, match="18 bytes, got 17") as info:
        decoder.decode(raw[:17], None)
    assert info.value.offset == 17


# ----------------------------------------------------------------------------------- open profile

FORMATS = {
    open_profile.SampleFormat.INT8: (-(2**7), 2**7 - 1),
    open_profile.SampleFormat.INT16: (-(2**15), 2**15 - 1),
    open_profile.SampleFormat.INT24: (-(2**23), 2**23 - 1),
    open_profile.SampleFormat.INT32: (-(2**31), 2**31 - 1),
    open_profile.SampleFormat.FLOAT32: (-1e6, 1e6),
}


@st.composite
def open_frames(draw: st.DrawFn) -> dict[str, Any]:
    fmt = draw(st.sampled_from(list(FORMATS)))
    stream_id = draw(st.integers(0, 15))
    unit = open_profile.FIXED_UNITS.get(stream_id) or draw(st.sampled_from(list(Unit)))
    channels, samples = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    lo, hi = FORMATS[fmt]
    if fmt is open_profile.SampleFormat.FLOAT32:
        element: st.SearchStrategy[Any] = st.floats(lo, hi, width=32)
    else:
        element = st.integers(int(lo), int(hi))
    raw = np.array(draw(st.lists(element, min_size=channels * samples, max_size=channels * samples)))
    return {
        "stream_id": stream_id,
        "sequence": draw(st.integers(0, 2**32 - 1)),
        "timestamp_us": draw(st.integers(0, 2**50)),
        "sample_rate": draw(st.floats(0.5, 65536.0, width=32)),
        "scale": draw(st.floats(2.0**-30, 2.0**20, width=32)),
        "unit": unit,
        "sample_format": fmt,
        "raw": raw.reshape(samples, channels),
    }


@given(open_frames())
def test_open_frames_round_trip(fields: dict[str, Any]) -> None:
    data = open_profile.encode_frame(**fields)
    assert len(data) == open_profile.HEADER_SIZE + fields["raw"].size * fields["sample_format"].size
    (chunk,), _ = open_profile.FrameDecoder().decode(data, None)
    assert chunk.stream == open_profile.STREAM_NAMES[fields["stream_id"]]
    assert chunk.sequence == fields["sequence"]
    assert chunk.unit is fields["unit"]
    assert np.array_equal(chunk.raw, fields["raw"].astype(chunk.raw.dtype))
    assert chunk.scale == np.float32(fields["scale"])
    assert chunk.sample_rate == np.float32(fields["sample_rate"])
    assert chunk.timestamps_ns is not None
    assert chunk.timestamps_ns[0] == fields["timestamp_us"] * 1000


def test_open_frame_errors_name_the_byte() -> None:
    good = bytearray(
        open_profile.encode_frame(
            1, 0, 0, 100.0, 1 / 4096, Unit.G, open_profile.SampleFormat.INT16, [[1, 2, 3]]
        )
    )

    def patched(offset: int, value: bytes) -> bytes:
        return bytes(good[:offset] + value + good[offset + len(value) :])

    cases = [
        (patched(0, b"\x02"), 0),  # version
        (patched(1, b"\x10"), 1),  # stream id 16
        (patched(2, b"\x12"), 2),  # acc in µV
        (patched(2, b"\x26"), 2),  # sample type 6
        (patched(3, b"\x00"), 3),  # no channels
        (patched(16, struct.pack("<f", 0.0)), 16),  # rate
        (patched(20, struct.pack("<f", math.inf)), 20),  # scale
        (bytes(good[:-1]), 24),  # a cut sample
        (bytes(good[:24]), 24),  # no samples
        (bytes(good[:23]), 23),  # short header
    ]
    for data, offset in cases:
        with pytest.raises(NotificationError) as info:
            open_profile.parse_frame(data)
        assert info.value.offset == offset, (data.hex(), info.value)


def test_open_control_point_commands_and_responses() -> None:
    profile = open_profile.OpenProfile.from_params(
        {"emg_rate_hz": "1000", "acc_rate_hz": "200", "acc_range_g": "8"}
    )
    plan = profile.plan(["emg", "acc"])
    assert [w.data for w in plan.start] == [
        struct.pack("<BBHH", 1, 1, 200, 8),
        struct.pack("<BBHH", 1, 0, 1000, 0),
    ]
    assert [w.data for w in plan.stop] == [b"\x02\x01", b"\x02\x00"]
    assert all(w.reply for w in plan.start)
    assert plan.notify == (open_profile.CONTROL_POINT, open_profile.DATA)
    profile.decoders(["emg", "acc"], [b"\xf0\x01\x00\x01", b"\xf0\x01\x00\x00"])
    with pytest.raises(ControlError, match="INVALID_PARAMETER"):
        profile.decoders(["emg"], [b"\xf0\x01\x03\x00"])
    listing = open_profile.parse_response(
        b"\xf0\x03\x00\xff\x02" + b"\x00\x12\x02\xe8\x03" + b"\x01\x22\x03\xc8\x00"
    )
    assert [
        (s.stream_id, s.sample_format.name, s.unit, s.channels, s.max_rate_hz) for s in listing.streams
    ] == [
        (0, "INT16", Unit.MICROVOLT, 2, 1000),
        (1, "INT16", Unit.G, 3, 200),
    ]
    with pytest.raises(NotificationError) as info:
        open_profile.parse_response(b"\xf0\x03\x00\xff\x02\x00\x12\x02\xe8\x03\x01")
    assert info.value.offset == 11
