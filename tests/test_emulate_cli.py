"""``twitchwatch simulate --ble`` as a separate process, reached over a virtual radio between processes.

Each test starts the real command, reads the JSON line it prints when it advertises, connects a real Bumble
central from this process (over HCI on TCP: ``--serve-hci``, or a ``RadioHub`` for ``--transport``), runs
the profile's plan, decodes what arrives, then stops the process with SIGTERM and checks it exits cleanly.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyedflib
import pytest

from tests.test_emulate_central import Central, scan_for, uuid_str, wait
from tests.test_recordings import Sig, emg_4khz_uv, write_edf
from twitchwatch.cli import parse_movement
from twitchwatch.collector.devices import get_profile
from twitchwatch.collector.emulate.link import RadioHub, open_hci_device
from twitchwatch.collector.emulate.motion import Movement
from twitchwatch.collector.emulate.source import fit_channels, resample
from twitchwatch.collector.simulate import SimulationError

TWITCHWATCH = Path(sys.executable).parent / "twitchwatch"


async def spawn_simulate_ble(args: Sequence[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(TWITCHWATCH),
        "simulate",
        "--ble",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def simulate_ble(
    args: Sequence[str],
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    proc = await spawn_simulate_ble(args)
    assert proc.stdout is not None
    try:
        line = await wait(proc.stdout.readline(), "the simulator's ready line")
        if not line:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"simulate --ble exited before advertising: {err.decode()}")
        yield proc, json.loads(line)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop_cleanly(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    proc.send_signal(signal.SIGTERM)
    code = await wait(proc.wait(), "the simulator to exit after SIGTERM")
    rest = (await proc.stdout.read()).decode().splitlines()
    err = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert code == 0, err
    assert rest, "no closing line"
    return json.loads(rest[-1])  # type: ignore[no-any-return]


async def _stream(central_device: Any, ready: dict[str, Any], profile: str, stream: str, n: int) -> Any:
    service = uuid_str(get_profile(profile).SERVICE)
    sighting = await scan_for(
        central_device, ready["address"], lambda s: s.name == ready["name"] and service in s.uuids
    )
    central = Central(central_device, profile, [stream], {})
    await central.connect(sighting.address)
    await central.start()
    chunks = await central.chunks(stream, n)
    await central.stop()
    return chunks


async def test_simulate_ble_serves_a_virtual_radio_to_another_process(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.jsonl"
    args = ["--profile", "polar-h10", "--muscle", "calf_left", "--rate", "120", "--speed", "5"]
    args += ["--serve-hci", "127.0.0.1:0", "--truth", str(truth_path)]
    async with simulate_ble(args) as (proc, ready):
        assert ready["profile"] == "polar-h10"
        assert ready["name"].startswith("Polar H10 ")
        assert ready["central_transport"].startswith("tcp-client:127.0.0.1:")
        async with await open_hci_device(ready["central_transport"], name="central") as central:
            chunks = await _stream(central, ready, "polar-h10", "acc", 200 * 4)
        values = np.concatenate([c.values() for c in chunks])
        assert values.shape[1] == 3
        # The generator's accelerometer: gravity (|g| ≈ 1) plus small noise and twitches.
        assert np.median(np.linalg.norm(values, axis=1)) == pytest.approx(1.0, abs=0.05)
        closing = await stop_cleanly(proc)
    assert closing["stopped"] is True
    assert closing["notifications_sent"] >= len(chunks)
    lines = truth_path.read_text().splitlines()
    assert lines, "120 twitches a minute over four seconds of signal: some were written"
    first = json.loads(lines[0])
    assert first["muscle"] == "calf_left"
    assert first["kind"] == "fasciculation"


async def test_simulate_ble_with_movement_turns_the_emulated_gyroscope() -> None:
    """``--movement`` reaches the emulated wearable: walking most of the time swings its gyroscope far beyond
    the resting noise (0.07 °/s)."""
    args = ["--profile", "metamotion", "--muscle", "calf_left", "--rate", "0", "--speed", "5"]
    args += ["--movement", "walking=30", "--seed", "3", "--serve-hci", "127.0.0.1:0"]
    async with simulate_ble(args) as (proc, ready):
        async with await open_hci_device(ready["central_transport"], name="central") as central:
            chunks = await _stream(central, ready, "metamotion", "gyro", 100 * 20)
        rates = np.concatenate([c.values() for c in chunks])
        assert rates.shape[1] == 3
        assert np.abs(rates).max() > 20.0
        await stop_cleanly(proc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("running=1", "'running' is not one of"),
        ("walking=fast", "not a rate per minute"),
        ("jerks=-1", "≥ 0"),
    ],
)
def test_a_bad_movement_option_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        parse_movement(text)


def test_movement_option_parses_each_kind() -> None:
    assert parse_movement("walking=0.5,posture=1,jerks=0.2") == Movement(1.0, 0.5, 0.2)
    assert parse_movement(None).still


async def test_simulate_ble_on_a_transport_from_a_radio_hub() -> None:
    async with RadioHub(count=1) as hub:
        (transport,) = hub.transport_names()
        args = ["--profile", "open", "--muscle", "calf_left", "--muscle", "calf_right", "--speed", "4"]
        async with simulate_ble([*args, "--transport", transport]) as (proc, ready):
            assert ready["radio"] == f"transport {transport}"
            central = await hub.link.new_device(name="central")
            chunks = await _stream(central, ready, "open", "emg", 1000)
            assert {c.channels for c in chunks} == {2}
            assert [c.sequence for c in chunks] == list(range(len(chunks)))
            closing = await stop_cleanly(proc)
    assert closing["stopped"] is True


async def test_simulate_ble_streams_a_real_recording(tmp_path: Path) -> None:
    """Real surface EMG resampled to 4 kHz, written to EDF+, played by the open board at the 1 kHz asked
    for."""
    uv = emg_4khz_uv(6)
    path = write_edf(tmp_path / "emg.edf", [Sig("EMG calf_left", "uV", 4000, uv)])
    with pyedflib.EdfReader(str(path)) as reader:
        stored = reader.readSignal(0)  # what the file holds, after EDF's 16-bit quantisation
    args = ["--profile", "open", "--muscle", "calf_left", "--speed", "4", "--recording", str(path)]
    async with simulate_ble([*args, "--serve-hci", "127.0.0.1:0"]) as (proc, ready):
        async with await open_hci_device(ready["central_transport"], name="central") as central:
            chunks = await _stream(central, ready, "open", "emg", 2000)
        await stop_cleanly(proc)
    got = np.concatenate([c.values() for c in chunks])
    expected = np.clip(np.interp(np.arange(len(got)) * 4.0, np.arange(len(stored)), stored), -16384, 16383.5)
    np.testing.assert_allclose(got[:, 0], expected, atol=0.25 + 1e-6, rtol=0)
    np.testing.assert_array_equal(got[:, 1], 0.0)  # the board's second channel: nothing recorded there


def test_resample_is_continuous_across_blocks() -> None:
    t = np.arange(4000) / 4000.0
    x = np.stack([np.sin(2 * np.pi * 7 * t), np.cos(2 * np.pi * 3 * t)], axis=1)
    blocks = iter(np.array_split(x, 37))
    out = np.concatenate(list(resample(blocks, 4000.0, 1000.0)))
    np.testing.assert_allclose(out, x[::4][: len(out)], atol=1e-12)
    assert len(out) == 1000
    up = np.concatenate(list(resample(iter(np.array_split(x[:400], 9)), 4000.0, 6000.0)))
    expected = np.interp(np.arange(len(up)) * 4000.0 / 6000.0, np.arange(400), x[:400, 0])
    np.testing.assert_allclose(up[:, 0], expected, atol=1e-12)
    ramp = np.arange(400.0)[:, None]  # 50-sample blocks: 12.5 outputs each, as a replayed EDF+ gives
    down = np.concatenate(list(resample(iter(np.split(ramp, 8)), 4000.0, 1000.0)))
    np.testing.assert_array_equal(down[:, 0], np.arange(0.0, 400.0, 4.0))
    assert fit_channels(x[:3], 4).shape == (3, 4)
    assert fit_channels(x[:3], 1).tolist() == x[:3, :1].tolist()


async def test_simulate_ble_rejects_bad_options() -> None:
    for args, message in [
        (["--profile", "nope", "--muscle", "m"], "no emulation for profile 'nope'"),
        (["--profile", "open", "--muscle", "m", "--speed", "max"], "--speed"),
        (["--muscle", "m", "--transport", "usb:0", "--serve-hci", "127.0.0.1:0"], "exclude each other"),
        (["--muscle", "m", "--serve-hci", "nohost"], "HOST:PORT"),
        (["--muscle", "m", "--transport", "tcp-client:127.0.0.1:1"], "cannot open Bluetooth transport"),
    ]:
        proc = await spawn_simulate_ble(args)
        out, err = await wait(proc.communicate(), "the simulator to refuse")
        assert proc.returncode == 2, (args, err.decode())
        assert message in err.decode(), (message, err.decode())
        assert out == b""
