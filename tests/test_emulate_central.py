"""A real Bumble central on the same VirtualLink as the emulated wearables, driving each profile's own plan.

The helpers here (``scan_for``, ``Central``) are imported by the other ``test_emulate_*`` files; the tests
in this file cover what every emulated device shares: it is found by scan with its advertised name and
service, its GATT table has the profile's characteristics and the Battery Service, its notifications
decode with the project's decoders into the samples the generator made, it re-advertises after a dropped
link, and it goes quiet when told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy

from twitchwatch.collector.devices import Chunk, Decoder, get_profile, profiles
from twitchwatch.collector.emulate import EmulatedDevice, emulate, emulated_profiles
from twitchwatch.collector.emulate.link import VirtualLink
from twitchwatch.collector.emulate.motion import MotionTimeline, Movement
from twitchwatch.collector.emulate.source import MovingAccSource, SampleSource, SynthSource, motion_source
from twitchwatch.collector.synth import Signal, TruthEvent

WAIT_S = 60.0  # generous: a loaded 2-core machine; every wait ends on an event long before this


async def wait(awaitable: Any, what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, WAIT_S)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT_S:.0f} s waiting for {what}") from None


@dataclass
class Sighting:
    """Advertising and scan-response data seen from one address, merged."""

    address: Any
    name: str | None = None
    uuids: set[str] = field(default_factory=set)
    manufacturer: dict[int, bytes] = field(default_factory=dict)
    connectable: bool = False
    scan_response: bool = False


def _add(sighting: Sighting, adv: Advertisement) -> None:
    data = adv.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    if name:
        sighting.name = str(name)
    for kind in (
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for uuids in data.get_all(kind):  # an active scan merges advertising and scan response data
            for uuid in uuids:
                sighting.uuids.add(canonical(uuid))
    manufacturer = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
    if manufacturer:
        company, payload = manufacturer
        sighting.manufacturer[int(company)] = bytes(payload)
    sighting.connectable = sighting.connectable or adv.is_connectable
    sighting.scan_response = sighting.scan_response or adv.is_scan_response


def canonical(uuid: UUID) -> str:
    """One spelling for 16- and 128-bit forms of the same UUID (little-endian 128-bit bytes, hex)."""
    return uuid.to_bytes(force_128=True).hex()


def uuid_str(uuid: str) -> str:
    """The project's spelling (``180F``, or the full 128-bit form) in ``Sighting.uuids``'s."""
    return canonical(UUID(uuid))


async def scan_for(central: Device, address: str, want: Callable[[Sighting], bool]) -> Sighting:
    """Scan (active) until the device at ``address`` has shown what ``want`` needs."""
    sighting: Sighting | None = None
    done: asyncio.Future[Sighting] = asyncio.get_running_loop().create_future()

    def on_advertisement(adv: Advertisement) -> None:
        nonlocal sighting
        if str(adv.address).removesuffix("/P") != address or done.done():
            return
        sighting = sighting or Sighting(adv.address)
        _add(sighting, adv)
        if want(sighting):
            done.set_result(sighting)

    central.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
    await central.start_scanning(active=True)
    try:
        return await wait(done, f"an advertisement from {address}")  # type: ignore[no-any-return]
    finally:
        central.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)
        await central.stop_scanning()


class Central:
    """One connection to an emulated device, running a profile's ``Plan`` with the profile's decoders."""

    def __init__(
        self, device: Device, profile: str, streams: Sequence[str], settings: dict[str, Any]
    ) -> None:
        self.device = device
        self.profile = get_profile(profile).from_params(settings)
        self.plan = self.profile.plan(streams)
        self.streams = tuple(streams)
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.connection: Connection | None = None
        self.peer: Peer | None = None
        self.chars: dict[str, CharacteristicProxy[bytes]] = {}
        self.replies: list[bytes] = []
        self.decoders: dict[str, Decoder[Any]] = {}
        self.states: dict[str, Any] = {}
        self.other: list[tuple[str, bytes]] = []  # notifications of characteristics no decoder reads
        # Notifications that raced ahead of a later start reply (data of a stream already started), kept
        # for decoding as the collect runtime keeps them.
        self.early: list[tuple[str, bytes]] = []

    async def connect(self, address: Any) -> Peer:
        self.connection = await wait(self.device.connect(address), "the connection")
        peer = Peer(self.connection)
        if self.plan.min_mtu > 23:
            await wait(peer.request_mtu(max(self.plan.min_mtu, 247)), "the MTU exchange")
        await wait(peer.discover_services(), "service discovery")
        for service in peer.services:
            await wait(service.discover_characteristics(), "characteristic discovery")
        self.peer = peer
        return peer

    def characteristic(self, uuid: str) -> CharacteristicProxy[bytes]:
        assert self.peer is not None
        found = self.peer.get_characteristics_by_uuid(UUID(uuid))
        assert found, f"the device has no characteristic {uuid}"
        return found[0]

    async def start(self) -> None:
        for uuid in self.plan.notify:
            char = self.chars[uuid] = self.characteristic(uuid)
            await wait(char.subscribe(self._enqueue(uuid)), f"subscribing to {uuid}")
        for write in self.plan.start:
            char = self.chars.get(write.characteristic) or self.characteristic(write.characteristic)
            await wait(char.write_value(write.data, with_response=write.with_response), "a start write")
            if write.reply:
                self.replies.append(await self.reply_on(write.characteristic))
        self.decoders = dict(self.profile.decoders(self.streams, self.replies))
        self.states = {uuid: decoder.initial_state() for uuid, decoder in self.decoders.items()}

    def _enqueue(self, uuid: str) -> Callable[[bytes], None]:
        def put(value: bytes) -> None:
            self.queue.put_nowait((uuid, bytes(value)))

        return put

    async def reply_on(self, uuid: str) -> bytes:
        while True:
            got, data = await wait(self.queue.get(), f"the reply on {uuid}")
            if got == uuid:
                return data  # type: ignore[no-any-return]
            self.early.append((got, data))

    async def stop(self) -> list[bytes]:
        replies = []
        for write in self.plan.stop:
            char = self.chars.get(write.characteristic) or self.characteristic(write.characteristic)
            await wait(char.write_value(write.data, with_response=write.with_response), "a stop write")
            if write.reply:
                replies.append(await self.reply_on(write.characteristic))
        return replies

    async def chunks(self, stream: str, samples: int) -> list[Chunk]:
        """Decode notifications until ``samples`` samples of ``stream`` arrived."""
        return (await self.collect([stream], samples))[stream]

    async def collect(self, streams: Sequence[str], samples: int) -> dict[str, list[Chunk]]:
        """Decode notifications until ``samples`` samples of each of ``streams`` arrived (none dropped)."""
        out: dict[str, list[Chunk]] = {stream: [] for stream in streams}
        while any(sum(c.samples for c in got) < samples for got in out.values()):
            if self.early:
                uuid, data = self.early.pop(0)
            else:
                uuid, data = await wait(self.queue.get(), f"{', '.join(streams)} notifications")
            decoder = self.decoders.get(uuid)
            if decoder is None:
                self.other.append((uuid, data))
                continue
            chunks, self.states[uuid] = decoder.decode(data, self.states[uuid])
            for chunk in chunks:
                if chunk.stream in out:
                    out[chunk.stream].append(chunk)
        return out


class TapSource(SampleSource):
    """The real generator, keeping a copy of every sample it hands the emulated device."""

    def __init__(self, inner: SampleSource) -> None:
        self.inner = inner
        self.signal = inner.signal
        self.sample_rate = inner.sample_rate
        self.channels = inner.channels
        self.unit = inner.unit
        self.read_blocks: list[npt.NDArray[np.float64]] = []
        self.start_ns = 0
        self._read = asyncio.Condition()

    def read(self, n: int) -> npt.NDArray[np.float64]:
        block = self.inner.read(n)
        self.read_blocks.append(block)
        asyncio.get_running_loop().create_task(self._notify_read())
        return block

    async def _notify_read(self) -> None:
        async with self._read:
            self._read.notify_all()

    async def wait_reads(self, count: int) -> None:
        async with self._read:
            await self._read.wait_for(lambda: len(self.read_blocks) >= count)

    def take_truth(self) -> list[TruthEvent]:
        return self.inner.take_truth()

    def samples(self) -> npt.NDArray[np.float64]:
        return np.concatenate(self.read_blocks)


class Taps:
    """A ``recording=`` factory for ``emulate``: generator sources whose samples the test can read. Like the
    generator's own factory, every source of the device shares one movement timeline (``movement``)."""

    def __init__(
        self,
        muscles: Sequence[str] = ("calf_left",),
        per_minute: float = 30.0,
        seed: int = 7,
        movement: Movement | None = None,
    ) -> None:
        self.muscles = tuple(muscles)
        self.per_minute = per_minute
        self.seed = seed
        self.movement = movement or Movement()
        self.sources: list[TapSource] = []
        self.timeline: MotionTimeline | None = None

    def __call__(self, signal: str, rate: float, channels: int, start_ns: int) -> SampleSource:
        if self.timeline is None:
            self.timeline = MotionTimeline(self.movement, self.seed, start_ns, self.muscles[0])
        seed = self.seed + len(self.sources)
        inner: SampleSource
        if signal in ("gyro", "orientation"):
            inner = motion_source(signal, self.timeline, rate, channels, start_ns, seed)
        else:
            kind: Signal = "emg" if signal == "emg" else "acc"
            muscles = self.muscles[:1] if kind == "acc" else self.muscles
            inner = SynthSource(kind, rate, channels, muscles, self.per_minute, seed, start_ns)
            if kind == "acc":
                inner = MovingAccSource(inner, self.timeline, start_ns)
        tap = TapSource(inner)
        tap.start_ns = start_ns
        self.sources.append(tap)
        return tap

    def by_signal(self, signal: str) -> TapSource:
        found = [s for s in self.sources if s.signal == signal]
        assert found, f"the device never started a {signal} stream"
        return found[-1]


# What each emulated profile is checked with: (stream, settings, signal of the generator)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "polar-h10": ("acc", {"rate_hz": 100}, "acc"),
    "polar-verity": ("acc", {}, "acc"),
    "open": ("emg", {"emg_rate_hz": 500}, "emg"),
    "myo": ("emg", {}, "emg"),
    "thingy52": ("acc", {}, "acc"),
    "movesense": ("acc", {}, "acc"),
    "metamotion": ("acc", {"odr_hz": 200, "range_g": 8}, "acc"),
    "ganglion": ("emg", {}, "emg"),
}
# Beyond half a decoded step: Verity's compressed type 0 frames are truncated to whole mG by the decoder (as
# the SDK does), after the encoder rounded to counts of FACTOR g.
EXTRA_TOLERANCE: dict[str, float] = {
    "polar-verity": 0.0005 + 2.44e-4 / 2,
    "movesense": 1e-6,
    # Ganglion deltas lose bit 0 to the sign: ±1 count per delta, up to 200 per cycle, as on the board.
    "ganglion": 200 * 1.2e6 / (8388607 * 1.5 * 51),
}
# What the device can carry of the generator's values: the Myo's int8 EMG saturates (1 µV per count).
CARRIED: dict[str, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]] = {
    "myo": lambda x: np.clip(x, -128.0, 127.0),
}


def emulated_cases() -> list[str]:
    return [p for p in CASES if p in emulated_profiles()]


def named(name: str) -> Callable[[Sighting], bool]:
    def match(sighting: Sighting) -> bool:
        return sighting.name == name

    return match


def test_every_device_profile_is_emulated_and_checked() -> None:
    assert set(emulated_profiles()) == set(profiles()), "a device profile without an emulator"
    assert set(CASES) == set(emulated_profiles()), "add the new emulated profile to CASES"


async def test_several_devices_on_one_link_get_distinct_addresses(link: VirtualLink) -> None:
    first = await emulate("polar-h10", link)
    second = await emulate("polar-h10", link)
    async with first, second:
        assert first.address != second.address
        assert first.name != second.name
        central = await link.new_device(name="central")
        for device in (first, second):
            sighting = await scan_for(central, device.address, named(device.name))
            assert sighting.connectable


@pytest.fixture
async def link() -> Any:
    async with VirtualLink() as link:
        yield link


async def _connected(
    link: VirtualLink, profile: str, taps: Taps, streams: Sequence[str] | None = None, **kwargs: Any
) -> tuple[EmulatedDevice, Central, Sighting]:
    stream, settings, _ = CASES[profile]
    device = await emulate(profile, link, recording=taps, **kwargs)
    central_device = await link.new_device(name="central")
    spec_uuid = uuid_str(get_profile(profile).SERVICE)
    sighting = await scan_for(
        central_device, device.address, lambda s: s.name is not None and spec_uuid in s.uuids
    )
    central = Central(central_device, profile, streams or [stream], settings)
    await central.connect(sighting.address)
    return device, central, sighting


@pytest.mark.parametrize("profile", emulated_cases())
async def test_scan_connect_stream_and_decode_to_the_generator_samples(
    link: VirtualLink, profile: str
) -> None:
    stream, _, signal = CASES[profile]
    taps = Taps()
    device, central, sighting = await _connected(link, profile, taps, speed=4.0)
    async with device:
        assert sighting.name == device.name
        assert sighting.connectable
        assert uuid_str(get_profile(profile).SERVICE) in sighting.uuids
        assert central.peer is not None
        services = {canonical(s.uuid) for s in central.peer.services}
        if device.peripheral.HAS_BATTERY:
            assert uuid_str("180F") in services, "Battery Service missing"
            battery = central.characteristic("2A19")
            assert await wait(battery.read_value(), "battery level") == bytes([87])
        else:
            assert uuid_str("180F") not in services
        for spec in get_profile(profile).STREAMS:
            central.characteristic(spec.characteristic)

        await central.start()
        chunks = await central.chunks(stream, 300)
        tap = taps.by_signal(signal)
        sent = tap.samples()
        if profile in CARRIED:
            sent = CARRIED[profile](sent)
        got = np.concatenate([c.values() for c in chunks])
        n = min(len(got), len(sent))
        assert n >= 300
        # Integer counts: half a count of quantisation; float32 samples (Movesense) carry the value itself.
        step = max(abs(c.scale) for c in chunks) if chunks[0].raw.dtype.kind == "i" else 0.0
        tolerance = step * 0.5 + EXTRA_TOLERANCE.get(profile, 0.0) + 1e-9
        np.testing.assert_allclose(got[:n], sent[:n], atol=tolerance, rtol=0)
        assert device.notifications_sent >= len(chunks) // 2
        await central.stop()


# Every emulated wearable with a gyroscope, and the streams started together with it (one plan).
MOVEMENT_STREAMS: dict[str, tuple[str, ...]] = {
    "polar-verity": ("acc", "gyro"),
    "metamotion": ("acc", "gyro"),
    "movesense": ("acc", "gyro"),
    "thingy52": ("acc", "gyro"),
    "myo": ("acc", "gyro", "orientation"),
}
SIGNAL_OF_STREAM = {"acc": "acc", "gyro": "gyro", "orientation": "orientation"}


def test_every_emulated_gyroscope_is_checked() -> None:
    with_gyro = {
        name
        for name, cls in profiles().items()
        if any(spec.signal == "gyro" for spec in cls.STREAMS) and name in emulated_profiles()
    }
    # The emulated open-profile board is one without a gyroscope (it answers UNKNOWN_STREAM).
    assert with_gyro - {"open"} == set(MOVEMENT_STREAMS)


@pytest.mark.parametrize("profile", sorted(MOVEMENT_STREAMS))
async def test_gyroscope_and_orientation_decode_to_the_generators_movement(
    link: VirtualLink, profile: str
) -> None:
    """The wearer moves (posture changes and limb jerks): the device's gyroscope (and the Myo's orientation)
    arrive decoded as the generator made them, alongside its accelerometer, all started by one plan."""
    streams = MOVEMENT_STREAMS[profile]
    taps = Taps(movement=Movement(posture_changes=20, limb_jerks=20))
    device, central, _ = await _connected(link, profile, taps, streams=streams, speed=4.0)
    async with device:
        await central.start()
        rate = {"myo": 50, "polar-verity": 52}.get(profile, 100)
        collected = await central.collect(streams, 6 * rate)
        for stream, chunks in collected.items():
            assert {c.unit for c in chunks} == {get_profile(profile).spec(stream).unit}
            sent = taps.by_signal(SIGNAL_OF_STREAM[stream]).samples()
            got = np.concatenate([c.values() for c in chunks])
            n = min(len(got), len(sent))
            assert n >= 6 * rate
            integer = chunks[0].raw.dtype.kind == "i"
            step = max(abs(c.scale) for c in chunks) if integer else 0.0
            extra = EXTRA_TOLERANCE.get(profile, 0.0) if stream == "acc" else 0.0
            tolerance = step * 0.5 + extra + 1e-6 * float(np.abs(sent[:n]).max()) + 1e-9
            np.testing.assert_allclose(got[:n], sent[:n], atol=tolerance, rtol=0)
            if stream == "gyro":
                # Six seconds of 40 movements a minute: the wearer turned, well above the gyro's noise.
                assert np.abs(got[:n]).max() > 10.0
        await central.stop()


async def test_h10_timestamps_and_truth_follow_the_generator(link: VirtualLink) -> None:
    from twitchwatch.collector.devices.polar import POLAR_EPOCH_NS

    taps = Taps(per_minute=120.0)
    truth: list[TruthEvent] = []
    device, central, _ = await _connected(link, "polar-h10", taps, speed=8.0, truth=truth.append)
    async with device:
        await central.start()
        chunks = await central.chunks("acc", 100 * 6)
        tap = taps.by_signal("acc")
        times = np.concatenate([c.timestamps_ns for c in chunks if c.timestamps_ns is not None])
        expected = tap.start_ns - POLAR_EPOCH_NS + np.rint(np.arange(len(times)) * 1e7).astype(np.int64)
        # The first frame counts back from its last sample at the rate; later ones interpolate between frames.
        np.testing.assert_array_equal(times, expected)
        assert truth, "at 120 twitches a minute, six seconds of signal hold twitches"
        reference = SynthSource("acc", 100.0, 3, ["calf_left"], 120.0, taps.seed, tap.start_ns)
        reference.read(len(times))
        expected_truth = reference.take_truth()
        k = min(len(truth), len(expected_truth))
        assert k > 0
        assert truth[:k] == expected_truth[:k]
        end_ns = tap.start_ns + len(tap.samples()) * 10**7
        assert all(tap.start_ns <= e.start_ns < end_ns for e in truth)


async def test_drop_link_then_the_central_reconnects_and_restarts(link: VirtualLink) -> None:
    taps = Taps()
    device, central, _ = await _connected(link, "polar-h10", taps, speed=4.0)
    async with device:
        await central.start()
        await central.chunks("acc", 50)
        assert central.connection is not None
        gone = asyncio.Event()
        central.connection.on("disconnection", lambda reason: gone.set())
        await device.drop_link()
        await wait(gone.wait(), "the central to see the link drop")
        assert device.peripheral.connection is None
        assert not device.peripheral.streaming("acc"), "a dropped link ends the measurement"

        again = Central(central.device, "polar-h10", ["acc"], CASES["polar-h10"][1])
        sighting = await scan_for(central.device, device.address, lambda s: s.name == device.name)
        await again.connect(sighting.address)
        await again.start()
        chunks = await again.chunks("acc", 50)
        assert len(taps.sources) == 2, "the restart began a new stream"
        sent = taps.sources[1].samples()
        got = np.concatenate([c.values() for c in chunks])
        np.testing.assert_allclose(got, sent[: len(got)], atol=0.0005 + 1e-9, rtol=0)


async def test_a_silent_device_advertises_accepts_writes_and_never_answers(link: VirtualLink) -> None:
    taps = Taps()
    device, central, _ = await _connected(link, "polar-h10", taps, speed=4.0)
    async with device:
        await device.set_silent(True)
        assert device.silent
        for uuid in central.plan.notify:
            central.chars[uuid] = char = central.characteristic(uuid)
            await wait(char.subscribe(central._enqueue(uuid)), "subscribe")
        write = central.plan.start[0]
        await wait(central.chars[write.characteristic].write_value(write.data, with_response=True), "write")
        # A round trip on the same bearer after the write: had the device answered, the indication would be
        # queued before this read's response.
        assert await wait(central.characteristic("2A19").read_value(), "battery") == bytes([87])
        assert central.queue.empty()
        assert not device.peripheral.streaming("acc")
        # Still advertising while silent: a central that gave up and disconnected finds it again.
        assert central.connection is not None
        await wait(central.connection.disconnect(), "disconnect")
        await wait(device.disconnected.wait(), "the device to see the disconnection")
        sighting = await scan_for(central.device, device.address, lambda s: s.name == device.name)
        assert sighting.connectable

        await device.set_silent(False)
        central = Central(central.device, "polar-h10", ["acc"], CASES["polar-h10"][1])
        await central.connect(sighting.address)
        await central.start()
        await central.chunks("acc", 50)
        sent_before = device.notifications_sent
        assert sent_before > 0

        await device.set_silent(True)
        tap = taps.by_signal("acc")
        reads = len(tap.read_blocks)
        await wait(tap.wait_reads(reads + 20), "the stream to go on generating")
        assert device.notifications_sent == sent_before, "a silent device notified"
