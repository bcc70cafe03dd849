"""One connection's connect step against a device that never answers, on the real Bumble stack."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from bleak.backends.device import BLEDevice
from bumble.hci import Address

from tests.bumble_bleak.harness import radio
from twitchwatch.collector.ble.connection import Connection, Events, battery_percent
from twitchwatch.collector.ble.errors import DeviceStepError
from twitchwatch.collector.ble.framing import Framer
from twitchwatch.collector.ble.runtime import DeviceRunner
from twitchwatch.collector.ble.target import BleBackend, DeviceTarget, Timing
from twitchwatch.collector.devices import Chunk, get_profile
from twitchwatch.collector.frames import Frame, Unit
from twitchwatch.collector.status import DeviceStatus


async def _ignore(*_args: object) -> None:
    return None


async def _no_frames(_stream: str, _frame: Frame) -> None:
    raise AssertionError("nothing can stream from a device that is not there")


async def test_a_device_that_never_accepts_the_connection_times_out_with_advice() -> None:
    timing = Timing(scan_s=1, connect_s=2, response_s=1, connect_attempts=1)
    profile = get_profile("polar-h10")
    target = DeviceTarget("ghost", profile(), ("acc",), address="C0:DE:AD:00:BE:EF")
    # Seen once (a stale scan result), gone from the air since: the controller waits for an advertisement
    # to connect to until the timeout.
    device = BLEDevice(target.address or "", "Polar H10 DEADBEEF", {"address": Address("C0:DE:AD:00:BE:EF")})
    async with radio() as r:
        connection = Connection(
            target,
            r.backend,
            timing,
            Framer(profile),
            Events(_no_frames, _ignore, _ignore, _ignore),
            asyncio.Lock(),
            asyncio.Event(),
        )
        with pytest.raises(DeviceStepError) as failure:
            async with asyncio.timeout(60):
                await connection.run(device)
    assert failure.value.step == "connect"
    assert str(failure.value).startswith(
        "ghost (polar-h10, C0:DE:AD:00:BE:EF): connect failed: no connection"
    )
    assert "switched on" in str(failure.value)
    assert not connection.streamed


def test_a_battery_level_past_100_is_unknown() -> None:
    """The Battery Level characteristic holds 0-100; 101-255 are reserved. Passed on, 255 made the worker
    refuse every status of the device (its muscles, its streams) until a valid level came."""
    assert battery_percent(b"\x64") == 100
    assert battery_percent(b"\x00") == 0
    assert battery_percent(b"\xff") is None
    assert battery_percent(b"") is None


def test_the_first_status_names_no_stream_whose_rate_is_not_known_yet() -> None:
    """Before a stream's first frame its rate is unknown; a rate of 0 in the "online" status made the worker
    refuse the whole status (every connection's first, and all of them for a stream that never sends).
    The stream is named once its first frame has told its shape, and the status the worker reads back is
    valid either way."""
    target = DeviceTarget("chest", get_profile("polar-h10")(), ("acc",), muscle_for=lambda _s, _c: "chest")
    runner = DeviceRunner(target, None, BleBackend(), Timing(), asyncio.Lock(), asyncio.Event(), "run1")  # type: ignore[arg-type]
    first = runner.status()
    assert first.streams == {}
    assert DeviceStatus.from_json(first.to_json()) == first
    chunk = Chunk("acc", np.zeros((36, 3), dtype=np.int32), 0.001, Unit.G, 200.0)
    assert runner.framer.frame(chunk, 1_790_000_000_000_000_000) is not None
    named = runner.status()
    assert named.streams["acc"].sample_rate == 200.0
    assert DeviceStatus.from_json(named.to_json()) == named
