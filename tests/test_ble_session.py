"""One session's connect step against a device that never answers, on the real Bumble stack."""

from __future__ import annotations

import asyncio

import pytest
from bleak.backends.device import BLEDevice
from bumble.hci import Address

from tests.bumble_bleak.harness import radio
from twitchwatch.collector.ble.errors import DeviceStepError
from twitchwatch.collector.ble.framing import Framer
from twitchwatch.collector.ble.session import Events, Session
from twitchwatch.collector.ble.target import DeviceTarget, Timing
from twitchwatch.collector.devices import get_profile
from twitchwatch.collector.frames import Frame


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
        session = Session(
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
                await session.run(device)
    assert failure.value.step == "connect"
    assert str(failure.value).startswith(
        "ghost (polar-h10, C0:DE:AD:00:BE:EF): connect failed: no connection"
    )
    assert "switched on" in str(failure.value)
    assert not session.streamed
