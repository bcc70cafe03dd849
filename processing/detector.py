"""Streaming twitch detectors for surface EMG and accelerometers: the public entry.

``StreamingDetector(kind, sample_rate, channels, params=None)`` takes (samples × channels) chunks in
physical units (µV or g) and returns finished ``Detection``s: lane, start, end (sample indices from the
detector's first sample, end exclusive), peak, kind, confidence and dominant frequency. Lanes are the EMG
channels, or one per accelerometer (its axes together). The events do not depend on how the stream is
chunked — to the sample and to the bit.

The machinery is in ``processing.core`` (filters, blocks, floor, hysteresis, clusters), the signal
specifics in ``processing.emg`` and ``processing.acc``; docs/detection.md explains the method and every
parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from twitchwatch.processing.acc import AccEngine, acc_params
from twitchwatch.processing.core import Detection, DetectorParams, FloatArray, LaneEngine, SignalKind
from twitchwatch.processing.emg import EmgEngine, emg_params

__all__ = ["DETECTOR_KINDS", "Detection", "DetectorKind", "DetectorParams", "SignalKind", "StreamingDetector"]


@dataclass(frozen=True)
class DetectorKind:
    """What one kind of signal is detected with: its engine and its default parameters for a rate."""

    engine: Callable[[float, int, DetectorParams], LaneEngine]  # (sample rate, channels, params)
    params: Callable[[float], DetectorParams]  # sample rate → the defaults of docs/detection.md


# The one place a detector kind meets its engine and parameters. It lives here, above ``core`` (the
# shared machinery) and ``emg``/``acc`` (its subclasses), so that neither has to import the other.
DETECTOR_KINDS: Final[Mapping[SignalKind, DetectorKind]] = {
    "emg": DetectorKind(EmgEngine, emg_params),
    "acc": DetectorKind(AccEngine, acc_params),
}


def default_params(kind: SignalKind, sample_rate: float) -> DetectorParams:
    """The documented defaults (docs/detection.md) of ``kind``'s detector at ``sample_rate``."""
    return _detector_kind(kind).params(sample_rate)


def _detector_kind(kind: str) -> DetectorKind:
    found = next((d for k, d in DETECTOR_KINDS.items() if k == kind), None)
    if found is None:
        raise ValueError(f"kind must be one of {', '.join(map(repr, DETECTOR_KINDS))}, got {kind!r}")
    return found


class StreamingDetector:
    """Feed (samples × channels) chunks in physical units; get finished detections back."""

    def __init__(
        self, kind: SignalKind, sample_rate: float, channels: int, params: DetectorParams | None = None
    ) -> None:
        detector = _detector_kind(kind)
        self.kind: SignalKind = kind
        self.rate = sample_rate
        self.params = params or detector.params(sample_rate)
        self._engine = detector.engine(sample_rate, channels, self.params)
        self.lanes = self._engine.lanes

    @property
    def noise_floor(self) -> FloatArray:
        """Each lane's current noise floor: mean band-passed power per sample (µV² or g²)."""
        return self._engine.floor.copy()

    @property
    def mains(self) -> list[tuple[float, float] | None]:
        """Per lane, the mains interference being taken out (EMG, ``processing.mains``): the mains frequency
        followed (Hz) and the RMS of the hum removed (µV, band-passed); None where no hum was found."""
        return self._engine.mains_levels()

    @property
    def max_latency_s(self) -> float:
        """Longest signal time from a twitch's end (as the band-pass delivers it) to its release: hold +
        one block. The reported times are earlier by the band-pass's group delay (``delay_s``)."""
        return (self._engine.spans.hold + self._engine.blk) / self.rate

    @property
    def max_slow_latency_s(self) -> float:
        """The same for events with slow activity — artifacts, and accelerometer events with movement,
        which wait for the movement gate: slow gap + one block."""
        return (self._engine.spans.slow_gap + self._engine.blk) / self.rate

    @property
    def delay_s(self) -> float:
        """The band-pass's group delay at the band centre, taken off every reported time."""
        return float(self._engine.delay / self.rate)

    @property
    def warmup_samples(self) -> int:
        """Samples after the start spent learning the noise floor, detecting nothing (``warmup_s``
        rounded up to whole epochs): blind time for the rest gate."""
        return self._engine.warmup_samples

    @property
    def reach_back_samples(self) -> int:
        """How far before ``settled`` a veto it reports later may still start (``LaneEngine.reach_back``:
        a run of rhythmic bursts is activity from its first burst on, known only a few bursts later). The
        rest gate judges a twitch finally only once its source has settled this far past it."""
        return self._engine.reach_back

    @property
    def settled(self) -> int:
        """Sample index before which every detection has been returned (``LaneEngine.settled``)."""
        return self._engine.settled()

    def open_activity(self) -> list[tuple[int, int, int]]:
        """(lane, start, end so far) of activity still going on (``LaneEngine.open_activity``)."""
        return self._engine.open_activity()

    def process(self, chunk: FloatArray) -> list[Detection]:
        return self._engine.process(chunk)

    def finish(self) -> list[Detection]:
        """End of stream: close and release everything still open or waiting out its hold."""
        return self._engine.finish()
