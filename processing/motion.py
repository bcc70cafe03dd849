"""Movement from a gyroscope or an orientation stream: is the wearable rotating as only a moving limb does?

A twitch cannot rotate a limb segment measurably; a voluntary movement always does. So angular speed is the
cleanest movement signal a wearable has: gravity does not enter it (an accelerometer mixes posture, gravity
and movement), and it needs no band-pass. This detector reports nothing but movement — ``sustained``
detections with a reason — which the rest gate (``processing/rest.py``) turns into a device-scope veto: the
accelerometer and EMG of that device are not assessed while it moves.

``MotionDetector(kind, sample_rate, channels)`` has the interface of ``StreamingDetector`` (``process``,
``finish``, ``settled``, ``open_activity``, ``lanes``, ``rate``, ``delay_s``): ``"gyro"`` takes 3 channels of
angular rate in °/s; ``"orientation"`` takes unit quaternions (w, x, y, z), whose angular speed is the
rotation between consecutive samples (2·acos|⟨q₋₁, q⟩|) × rate.

Method, per block of ``block_ms`` (whole blocks only, so the events do not depend on chunking):

1. **Bias.** Consumer MEMS gyroscopes read several °/s at rest (MPU-6050/9150, the Myo's: initial
   zero-rate output ±20 °/s, and as much again over temperature). The bias is learnt from *steady* windows
   (``steady_s``: every block mean within ``steady_dps`` of the others on each axis, the mean under
   ``max_bias_dps``): a limb at rest holds still, a moving one does not hold a constant rate for half a
   second. The first steady window sets it; later ones move it with time constant ``bias_tau_s``.
2. **Angular speed** of a block: RMS over its samples of |ω − bias|, °/s.
3. **Hysteresis.** A bout starts at a block ≥ ``on_dps`` and lasts while blocks stay ≥ ``off_dps``,
   bridging dips up to ``gap_ms``; a bout of at least ``min_ms`` is movement (``sustained``), a shorter one
   is dropped (a myoclonic jerk swings a limb for well under that and must stay a twitch).
4. The first ``warmup_s`` detect nothing (the bias is learnt there if the wearable starts still).

docs/detection.md ("Gyroscope and orientation") gives the physics and the published figures behind every
number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from twitchwatch.processing.core import Detection, FloatArray
from twitchwatch.processing.events import EventKind

MotionKind = Literal["gyro", "orientation"]
MOTION_KINDS: tuple[MotionKind, ...] = ("gyro", "orientation")
_CHANNELS: dict[MotionKind, int] = {"gyro": 3, "orientation": 4}


@dataclass(frozen=True)
class MotionParams:
    """The gyroscope movement rule; docs/detection.md gives the reasons for the values."""

    block_ms: float = 20.0
    on_dps: float = 10.0  # a bout starts at this angular speed (°/s)
    off_dps: float = 5.0  # ... and lasts while it stays above this
    gap_ms: float = 300.0  # dips below off_dps this short do not end a bout (a step's reversal)
    min_ms: float = 400.0  # a bout this long is movement; shorter is part of a jerk
    warmup_s: float = 1.0
    steady_s: float = 0.5  # the bias is learnt from windows this long ...
    steady_dps: float = 2.0  # ... whose block means stay within this of each other, per axis
    max_bias_dps: float = 25.0  # ... and whose mean is a possible zero-rate offset
    bias_tau_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.off_dps <= self.on_dps:
            raise ValueError("need 0 < off_dps <= on_dps")
        if min(self.block_ms, self.steady_s, self.bias_tau_s) <= 0 or min(self.gap_ms, self.min_ms) < 0:
            raise ValueError("block_ms, steady_s and bias_tau_s must be positive, gap_ms and min_ms ≥ 0")


@dataclass(frozen=True)
class MotionDetection(Detection):
    """A movement bout: a ``sustained`` ``Detection`` that says why (peak angular speed, duration)."""

    reason: str = ""
    vetoes: bool = True  # a bout of rotation always means the limb could not be assessed


@dataclass
class _Bout:
    start: int  # sample index of its first block
    last_on: int  # end of its last block at or above on_dps
    last_above: int  # end of its last block at or above off_dps
    peak: float


class MotionDetector:
    """Feed (samples × channels) chunks of angular rate (°/s) or unit quaternions; get movement bouts."""

    lanes = 1
    delay_s = 0.0  # no filter: block times are the signal's times

    def __init__(
        self, kind: MotionKind, sample_rate: float, channels: int, params: MotionParams | None = None
    ) -> None:
        if kind not in MOTION_KINDS:
            raise ValueError(f"kind must be 'gyro' or 'orientation', got {kind!r}")
        if channels != _CHANNELS[kind]:
            raise ValueError(f"a {kind} stream has {_CHANNELS[kind]} channels, got {channels}")
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.kind: MotionKind = kind
        self.rate = sample_rate
        self.channels = channels
        self.params = p = params or MotionParams()
        self.blk = max(1, round(p.block_ms * 1e-3 * sample_rate))
        self._gap = max(0, round(p.gap_ms * 1e-3 * sample_rate))
        self._min = max(1, round(p.min_ms * 1e-3 * sample_rate))
        self._warm = round(p.warmup_s * sample_rate)
        self._steady_n = max(2, round(p.steady_s * sample_rate / self.blk))
        self._alpha = 1.0 - math.exp(-self.blk / (p.bias_tau_s * sample_rate))
        self._left: FloatArray | None = None
        self._prev_q: FloatArray | None = None  # orientation: the sample before the current block
        self._done = 0  # samples consumed in whole blocks
        self._bias: FloatArray | None = None
        self._means: list[FloatArray] = []  # the last steady_n block means (gyroscope)
        self._bout: _Bout | None = None
        self._out: list[MotionDetection] = []

    # ---- the StreamingDetector interface -----------------------------------------------------------
    @property
    def max_latency_s(self) -> float:
        """Longest signal time from a bout's end to its release: the gap it waits out + one block."""
        return (self._gap + self.blk) / self.rate

    @property
    def bias(self) -> FloatArray:
        """The zero-rate offset learnt so far (°/s; zeros before the first steady window)."""
        return np.zeros(3) if self._bias is None else self._bias.copy()

    @property
    def settled(self) -> int:
        """No bout not yet reported will start before this sample index: the start of a bout still too short
        to be called movement, else the end of the last whole block. A bout already long enough is reported
        while it lasts by ``open_activity``."""
        b = self._bout
        if b is not None and b.last_above - b.start < self._min:
            return b.start
        return self._done

    def open_activity(self) -> list[tuple[int, int, int]]:
        """(lane, start, end so far) of a bout already long enough to be movement."""
        b = self._bout
        if b is None or b.last_above - b.start < self._min:
            return []
        return [(0, b.start, b.last_above)]

    def process(self, chunk: FloatArray) -> list[MotionDetection]:
        if chunk.ndim != 2 or chunk.shape[1] != self.channels:
            raise ValueError(f"expected (samples, {self.channels}) array, got shape {chunk.shape}")
        x = np.asarray(chunk, dtype=np.float64)
        if self._left is not None:
            x = np.concatenate([self._left, x])
            self._left = None
        whole = (x.shape[0] // self.blk) * self.blk
        if whole < x.shape[0]:
            self._left = x[whole:].copy()
        if whole:
            self._run(x[:whole])
        out, self._out = self._out, []
        return out

    def finish(self) -> list[MotionDetection]:
        """End of stream: close a bout still open (a last partial block is dropped)."""
        if self._bout is not None:
            self._close(self._bout)
            self._bout = None
        out, self._out = self._out, []
        return out

    # ---- internals ---------------------------------------------------------------------------------
    def _run(self, x: FloatArray) -> None:
        nb = x.shape[0] // self.blk
        if self.kind == "orientation":
            speeds = self._quaternion_speeds(x).reshape(nb, self.blk)
            block_speed = np.sqrt(np.mean(speeds * speeds, axis=1))
        else:
            block_speed = self._gyro_speeds(x.reshape(nb, self.blk, 3))
        for k in range(nb):
            start = self._done
            self._done += self.blk
            if self._done <= self._warm:
                continue
            self._step(start, float(block_speed[k]))

    def _gyro_speeds(self, blocks: npt.NDArray[np.float64]) -> FloatArray:
        """Each block's RMS angular speed about the bias; the bias learnt block by block (sequential: a
        steady window found mid-chunk corrects the blocks after it, exactly as if the chunk were cut
        there)."""
        means = blocks.mean(axis=1)
        out = np.empty(blocks.shape[0])
        for k in range(blocks.shape[0]):
            self._learn_bias(means[k])
            d = blocks[k] - (self._bias if self._bias is not None else 0.0)
            out[k] = math.sqrt(float(np.einsum("ij,ij->", d, d)) / d.shape[0])
        return out

    def _learn_bias(self, mean: FloatArray) -> None:
        self._means.append(mean)
        if len(self._means) > self._steady_n:
            del self._means[0]
        if len(self._means) < self._steady_n:
            return
        window = np.asarray(self._means)
        spread = window.max(axis=0) - window.min(axis=0)
        level = window.mean(axis=0)
        p = self.params
        if spread.max() > p.steady_dps or float(np.linalg.norm(level)) > p.max_bias_dps:
            return
        if self._bias is None:
            self._bias = level
        else:
            self._bias = self._bias + self._alpha * (level - self._bias)

    def _quaternion_speeds(self, q: FloatArray) -> FloatArray:
        """Angular speed (°/s) from each sample to the one before it: the rotation angle between unit
        quaternions is 2·acos|⟨q₁, q₂⟩| whichever sign either has. The first sample of the stream has
        none before it: 0. A sample that is no rotation at all — zero or not finite, as a Myo sends while its
        IMU starts — says nothing about movement: it repeats the last good one (speed 0), rather than stop
        the stream over one glitch."""
        norm = np.linalg.norm(q, axis=1, keepdims=True)
        good = (norm[:, 0] > 1e-9) & np.isfinite(norm[:, 0])
        u = np.divide(q, norm, out=np.zeros_like(q), where=good[:, None])
        if not good.all():
            u = self._hold_last_good(u, good)
        prev = np.concatenate([self._prev_q if self._prev_q is not None else u[:1], u[:-1]])
        self._prev_q = u[-1:].copy()
        dot = np.clip(np.abs(np.einsum("ij,ij->i", prev, u)), 0.0, 1.0)
        return np.asarray(np.degrees(2.0 * np.arccos(dot)) * self.rate, dtype=np.float64)

    def _hold_last_good(self, u: FloatArray, good: npt.NDArray[np.bool_]) -> FloatArray:
        """Bad rows replaced by the last good quaternion before them: the stream's last, or before the first
        good one ever, that one (a stream that starts with bad rows has not turned yet)."""
        if self._prev_q is not None:
            last = self._prev_q[0]
        else:
            last = u[int(np.argmax(good))] if good.any() else np.array([1.0, 0.0, 0.0, 0.0])
        idx = np.where(good, np.arange(len(u)), -1)
        np.maximum.accumulate(idx, out=idx)
        return np.where((idx >= 0)[:, None], u[np.maximum(idx, 0)], last)

    def _step(self, start: int, speed: float) -> None:
        p, end = self.params, start + self.blk
        b = self._bout
        if b is None:
            if speed >= p.on_dps:
                self._bout = _Bout(start, end, end, speed)
            return
        if speed >= p.off_dps:
            b.last_above = end
            b.peak = max(b.peak, speed)
            if speed >= p.on_dps:
                b.last_on = end
        elif end - b.last_above > self._gap:
            self._close(b)
            self._bout = None

    def _close(self, b: _Bout) -> None:
        length = b.last_above - b.start
        if length < self._min:
            return
        seconds = length / self.rate
        self._out.append(
            MotionDetection(
                lane=0,
                start=b.start,
                end=b.last_above,
                peak=round(b.peak, 3),
                kind=EventKind.SUSTAINED,
                confidence=min(0.6 + seconds / 5.0, 0.95),
                reason=f"rotation up to {b.peak:.0f} °/s for {seconds:.1f} s",
            )
        )
