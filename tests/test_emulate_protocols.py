"""Control protocols of the emulated devices over the virtual link: the answers a real device gives to
requests a central gets wrong, and the variants ``plan()`` does not exercise (H10 delta frames, open LIST)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bumble.device import Peer

from tests.test_emulate_central import CASES, Central, Taps, canonical, scan_for, uuid_str, wait
from twitchwatch.collector.devices import Chunk, ControlError, polar
from twitchwatch.collector.devices import open as openp
from twitchwatch.collector.emulate import emulate
from twitchwatch.collector.emulate.link import VirtualLink
from twitchwatch.collector.frames import Unit


@pytest.fixture
async def link() -> Any:
    async with VirtualLink() as link:
        yield link


async def _central(link: VirtualLink, profile: str, device: Any, settings: dict[str, Any]) -> Central:
    central_device = await link.new_device(name="central")
    service = uuid_str(polar.PMD_SERVICE if profile.startswith("polar") else openp.SERVICE)
    sighting = await scan_for(central_device, device.address, lambda s: service in s.uuids)
    central = Central(central_device, profile, [CASES[profile][0]], settings)
    await central.connect(sighting.address)
    return central


async def _subscribe(central: Central) -> None:
    for uuid in central.plan.notify:
        char = central.chars[uuid] = central.characteristic(uuid)
        await wait(char.subscribe(central._enqueue(uuid)), f"subscribing to {uuid}")


async def _ask(central: Central, uuid: str, data: bytes) -> bytes:
    await wait(central.chars[uuid].write_value(data, with_response=True), "a control-point write")
    return await central.reply_on(uuid)


async def test_h10_streams_delta_compressed_frames(link: VirtualLink) -> None:
    taps = Taps()
    device = await emulate("polar-h10", link, recording=taps, compressed=True, speed=4.0)
    async with device:
        central = await _central(link, "polar-h10", device, {"rate_hz": 200})
        await central.start()
        frames: list[bytes] = []
        chunks: list[Chunk] = []
        while sum(c.samples for c in chunks) < 400:
            uuid, data = await wait(central.queue.get(), "ACC frames")
            frames.append(data)
            decoded, central.states[uuid] = central.decoders[uuid].decode(data, central.states[uuid])
            chunks.extend(decoded)
        assert {polar.parse_frame_header(f).frame_type_byte for f in frames} == {0x81}
        got = np.concatenate([c.values() for c in chunks])
        np.testing.assert_allclose(
            got, taps.by_signal("acc").samples()[: len(got)], atol=0.0005 + 1e-9, rtol=0
        )


async def test_pmd_control_point_answers_like_the_device(link: VirtualLink) -> None:
    device = await emulate("polar-h10", link)
    async with device:
        central_device = await link.new_device(name="central")
        sighting = await scan_for(central_device, device.address, lambda s: s.name == device.name)
        central = Central(central_device, "polar-h10", ["acc"], {})
        # Without the MTU exchange the SDK's prerequisite is missing: the H10 refuses to start.
        central.connection = await wait(central_device.connect(sighting.address), "connect")
        peer = Peer(central.connection)
        await wait(peer.discover_services(), "discovery")
        for service in peer.services:
            await wait(service.discover_characteristics(), "characteristics")
        central.peer = peer
        await _subscribe(central)
        cp = polar.PMD_CONTROL_POINT
        start = central.plan.start[0].data
        with pytest.raises(ControlError, match="ERROR_INVALID_MTU"):
            polar.parse_start_response(await _ask(central, cp, start), polar.MeasurementType.ACC)
        await wait(peer.request_mtu(247), "the MTU exchange")

        settings = polar.parse_control_point(await _ask(central, cp, polar.settings_request(2)))
        assert isinstance(settings, polar.ControlResponse)
        offered = polar.parse_settings(settings.parameters)
        assert offered[polar.Setting.SAMPLE_RATE] == (25, 50, 100, 200)
        assert offered[polar.Setting.RANGE] == (2, 4, 8)

        bad_rate = polar.start_request(2, [(polar.Setting.SAMPLE_RATE, 130), (polar.Setting.RESOLUTION, 16)])
        with pytest.raises(ControlError, match="ERROR_INVALID_SAMPLE_RATE"):
            polar.parse_start_response(await _ask(central, cp, bad_rate), 2)
        ecg = polar.start_request(0, [(polar.Setting.SAMPLE_RATE, 130)])
        refused = polar.parse_control_point(await _ask(central, cp, ecg))
        assert isinstance(refused, polar.ControlResponse)
        assert refused.status == polar.Status.ERROR_NOT_SUPPORTED
        stop = polar.stop_request(2)
        stopped = polar.parse_control_point(await _ask(central, cp, stop))
        assert isinstance(stopped, polar.ControlResponse)
        assert stopped.status == polar.Status.ERROR_ALREADY_IN_STATE

        started = polar.parse_start_response(await _ask(central, cp, start), 2)
        assert started.factor == 1.0
        again = polar.parse_control_point(await _ask(central, cp, start))
        assert isinstance(again, polar.ControlResponse)
        assert again.status == polar.Status.ERROR_ALREADY_IN_STATE
        while True:  # frames flow; the next control answer comes after them in the same queue
            uuid, _ = await wait(central.queue.get(), "ACC frames")
            if uuid == polar.PMD_DATA:
                break
        stopped = polar.parse_control_point(await _ask(central, cp, stop))
        assert isinstance(stopped, polar.ControlResponse)
        assert stopped.status == polar.Status.SUCCESS
        assert not device.peripheral.streaming("acc")


async def test_the_features_read_and_the_gyroscope_where_the_model_has_one(link: VirtualLink) -> None:
    """The Verity Sense offers ACC and GYRO, starts and stops them one by one, each with its FACTOR; the
    H10 offers ACC only and refuses a gyroscope start as the device does."""
    verity, h10 = await emulate("polar-verity", link), await emulate("polar-h10", link)
    async with verity, h10:
        cp = polar.PMD_CONTROL_POINT
        for device, offered in ((verity, ("ACC", "GYRO")), (h10, ("ACC",))):
            central = await _central(link, device.profile, device, {})
            assert polar.parse_features(
                await wait(central.characteristic(cp).read_value(), "read")
            ).names == (offered)
            await _subscribe(central)
            gyro_start = polar.PolarVeritySense().plan(["gyro"]).start[0].data
            answer = await _ask(central, cp, gyro_start)
            if "GYRO" not in offered:
                with pytest.raises(ControlError, match="ERROR_NOT_SUPPORTED"):
                    polar.parse_start_response(answer, polar.MeasurementType.GYRO)
                continue
            assert polar.parse_start_response(answer, polar.MeasurementType.GYRO).factor == np.float32(
                2000 / 32768
            )
            settings = polar.parse_control_point(await _ask(central, cp, polar.settings_request(5)))
            assert isinstance(settings, polar.ControlResponse)
            assert polar.parse_settings(settings.parameters) == {
                polar.Setting.SAMPLE_RATE: (52,),
                polar.Setting.RESOLUTION: (16,),
                polar.Setting.RANGE: (2000,),
                polar.Setting.CHANNELS: (3,),
            }
            assert device.peripheral.streaming("gyro")
            assert not device.peripheral.streaming("acc")
            while True:  # gyro frames flow
                uuid, data = await wait(central.queue.get(), "GYRO frames")
                if uuid == polar.PMD_DATA:
                    header = polar.parse_frame_header(data)
                    assert (header.measurement_type, header.frame_type_byte) == (5, 0x80)
                    break
            stopped = polar.parse_control_point(await _ask(central, cp, polar.stop_request(5)))
            assert isinstance(stopped, polar.ControlResponse)
            assert stopped.status == polar.Status.SUCCESS
            assert not device.peripheral.streaming("gyro")


async def test_open_board_lists_refuses_and_stops_all(link: VirtualLink) -> None:
    device = await emulate("open", link, muscles=("calf_left", "calf_right", "shin_left"))
    async with device:
        central = await _central(link, "open", device, {})
        await _subscribe(central)
        cp = openp.CONTROL_POINT
        listed = openp.parse_response(await _ask(central, cp, openp.LIST_COMMAND))
        assert listed.status == openp.Status.OK
        assert {(s.stream_id, s.channels, s.unit) for s in listed.streams} == {
            (0, 3, Unit.MICROVOLT),
            (1, 3, Unit.G),
        }
        gyro = openp.parse_response(await _ask(central, cp, openp.start_command(2)))
        assert gyro.status == openp.Status.UNKNOWN_STREAM
        odd_rate = openp.parse_response(await _ask(central, cp, openp.start_command(0, 333)))
        assert odd_rate.status == openp.Status.INVALID_PARAMETER
        for stream_id in (0, 1):
            openp.check_started(await _ask(central, cp, openp.start_command(stream_id)), stream_id)
        assert device.peripheral.streaming("emg")
        assert device.peripheral.streaming("acc")
        everything = openp.parse_response(await _ask(central, cp, openp.stop_command()))
        assert (everything.status, everything.stream_id) == (openp.Status.OK, 0xFF)
        assert not device.peripheral.streaming("emg")
        assert not device.peripheral.streaming("acc")
        unknown = openp.parse_response(await _ask(central, cp, b"\x09"))
        assert unknown.status == openp.Status.UNKNOWN_OPCODE
        services = {canonical(s.uuid) for s in central.peer.services} if central.peer else set()
        assert uuid_str("180F") in services
