"""What the collector is told: which devices, how to reach them, and its patience."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from twitchwatch.collector.devices import DeviceProfile
from twitchwatch.collector.topics import check_segment

# A frame's first sample waits up to the span before it is sent: more than a quarter second would eat most of
# the 400-ms budget from a twitch's end to its event stored (docs/benchmarks.md).
MAX_FRAME_SPAN_S: Final = 0.25


def _no_muscle(_stream: str, _channel: int) -> str | None:
    return None


@dataclass(frozen=True)
class DeviceTarget:
    """One configured wearable. ``name`` is its MQTT device segment; it is found by ``address`` when given,
    else by advertised name ``advertised_name``, else as the first device of its profile nearby."""

    name: str
    profile: DeviceProfile
    streams: tuple[str, ...]
    address: str | None = None
    advertised_name: str | None = None
    muscle_for: Callable[[str, int], str | None] = field(default=_no_muscle, compare=False)

    def __post_init__(self) -> None:
        check_segment(self.name, "device name")
        self.profile.check_streams(self.streams)

    @property
    def label(self) -> str:
        """How messages name the device: ``polar1 (polar-h10, A0:9E:1A:00:00:01)``."""
        where = self.address or (f"named {self.advertised_name!r}" if self.advertised_name else "any nearby")
        return f"{self.name} ({self.profile.NAME}, {where})"


@dataclass(frozen=True)
class Timing:
    """Timeouts and the reconnect policy (seconds). Backoff doubles from ``backoff_initial_s`` up to
    ``backoff_max_s`` while a device keeps failing, and starts over once it has streamed. ``frame_span_s``:
    a stream's consecutive notifications are merged into frames of up to this much signal, none held back
    longer (``collector.ble.coalesce``); 0 = one frame per notification. ``motion_frame_span_s``: the same
    for accelerometers and gyroscopes. ``silence_s``: a connected device that sends no data this long has
    stopped streaming (another app stopped its measurement, its firmware hung, the link is up but dead):
    the connection is dropped, the device marked offline and connected again, instead of saying "online"
    while nothing is recorded."""

    scan_s: float = 10.0
    connect_s: float = 30.0
    response_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    connect_attempts: int = 2  # bleak-retry-connector's attempts within one connect
    broker_buffer_s: float = 600.0  # signal time of frames kept while the MQTT broker is away
    frame_span_s: float = 0.05
    motion_frame_span_s: float = 0.1
    # Well beyond any profile's longest gap between data notifications: a Polar's compressed (delta) frame
    # fills its 232-byte MTU, and a still 25-Hz accelerometer's 2-bit deltas make that up to 11 s of signal
    # in one notification (raw frames: 36 samples, 1.4 s). A dead link is reported within a supervision
    # timeout (4–6 s) anyway; this is for a device that stays connected and stops sending.
    silence_s: float = 30.0

    def __post_init__(self) -> None:
        names = (
            "scan_s",
            "connect_s",
            "response_s",
            "backoff_initial_s",
            "backoff_max_s",
            "broker_buffer_s",
            "silence_s",
        )
        for name in names:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be ≥ backoff_initial_s")
        for span in ("frame_span_s", "motion_frame_span_s"):
            if not 0 <= getattr(self, span) <= MAX_FRAME_SPAN_S:
                raise ValueError(f"{span} must be within 0..{MAX_FRAME_SPAN_S:g}")
        if self.connect_attempts < 1:
            raise ValueError("connect_attempts must be ≥ 1")


@dataclass(frozen=True)
class BleBackend:
    """bleak backend classes, handed to ``BleakScanner(backend=…)`` / ``BleakClient(backend=…)``.
    None (the product's choice) lets bleak pick the platform's own (BlueZ, CoreBluetooth, WinRT)."""

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
