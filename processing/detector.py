"""A first honest streaming twitch detector (the walking skeleton's; the full science is issue 3).

Per lane (an EMG channel, or an accelerometer's vector magnitude):

1. band-pass (Butterworth, second-order sections, state carried across chunks);
2. envelope: rectify and smooth with a one-pole low-pass (state carried);
3. a noise floor per lane, updated once per fixed block of samples and only from quiet blocks, so
   twitches and contractions never raise it;
4. hysteresis thresholds at multiples of the floor; onsets closer than the refractory time to the last
   event's end extend that event instead of starting a new one;
5. a class from the event's duration and size.

Blocks are aligned to the absolute sample index, never to chunk edges, and the filters carry their state,
so the events are the same whatever the chunking (``tests/test_detector.py`` proves it to the sample).
Vectorised across lanes: one (samples × lanes) array per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from processing.events import EventKind

FloatArray = npt.NDArray[np.float64]
SignalKind = Literal["emg", "acc"]


@dataclass(frozen=True)
class DetectorParams:
    band_hz: tuple[float, float]
    envelope_ms: float  # smoothing time constant of the envelope
    block_ms: float = 25.0  # granularity of the noise-floor update
    warmup_s: float = 1.0  # learn the floor before detecting
    on_factor: float = 6.0  # onset at envelope > on_factor × floor
    off_factor: float = 3.0  # offset at envelope < off_factor × floor
    floor_alpha: float = 0.05  # floor update weight per quiet block
    refractory_ms: float = 60.0
    jerk_ms: float = 45.0  # above this, a burst is a myoclonic jerk rather than a fasciculation
    sustained_ms: float = 300.0  # above this, activity is sustained (voluntary or cramp): not a twitch
    artifact_amplitude: float = float("inf")  # peaks above this (physical units) are artifacts

    @classmethod
    def for_signal(cls, kind: SignalKind, sample_rate: float) -> DetectorParams:
        nyquist = sample_rate / 2
        if kind == "emg":
            # Surface EMG energy lies in ~20–450 Hz; stay below 0.9 × Nyquist on low-rate devices (Myo).
            return cls(band_hz=(20.0, min(450.0, 0.9 * nyquist)), envelope_ms=4.0, artifact_amplitude=5000.0)
        # Mechanomyography: muscle twitches ~5–100 Hz; the high-pass also removes gravity and posture.
        return cls(
            band_hz=(5.0, min(100.0, 0.9 * nyquist)),
            envelope_ms=5.0,
            on_factor=4.5,  # the vector magnitude of 3 noisy axes has a tighter spread than one EMG lane
            off_factor=2.0,
            jerk_ms=120.0,
            sustained_ms=400.0,
            artifact_amplitude=2.0,
        )


@dataclass(frozen=True)
class Detection:
    """An event in sample indices from the detector's first sample (``end`` exclusive)."""

    lane: int
    start: int
    end: int
    peak: float  # physical units, band-passed signal
    kind: EventKind
    confidence: float


@dataclass
class _Lane:
    active: bool = False
    start: int = 0
    end: int = 0
    peak: float = 0.0
    peak_env: float = 0.0
    pending: Detection | None = field(default=None)  # ended, waiting out the refractory time


class StreamingDetector:
    """Feed (samples × channels) chunks in physical units; get finished detections back."""

    def __init__(
        self, kind: SignalKind, sample_rate: float, channels: int, params: DetectorParams | None = None
    ):
        self.kind = kind
        self.rate = sample_rate
        self.params = params or DetectorParams.for_signal(kind, sample_rate)
        p = self.params
        self.lanes = 1 if kind == "acc" else channels
        self._channels = channels
        self._sos = sps.butter(4, p.band_hz, btype="bandpass", fs=sample_rate, output="sos")
        self._zi = np.zeros((self._sos.shape[0], 2, channels))
        a = float(np.exp(-1.0 / (p.envelope_ms * 1e-3 * sample_rate)))
        self._env_b, self._env_a = np.array([1.0 - a]), np.array([1.0, -a])
        self._env_zi = np.zeros((1, self.lanes))
        # At least 8 samples a block, so low-rate streams (25-Hz accelerometers) amortise per-block work.
        self._block = max(8, round(p.block_ms * 1e-3 * sample_rate))
        self._warmup_blocks = max(1, round(p.warmup_s * sample_rate / self._block))
        self._refractory = round(p.refractory_ms * 1e-3 * sample_rate)
        self._floor = np.zeros(self.lanes)
        self._blocks_seen = 0
        self._buf_env = np.empty((0, self.lanes))
        self._buf_mag = np.empty((0, self.lanes))
        self._consumed = 0  # absolute index of the first sample in the buffers
        self._state = [_Lane() for _ in range(self.lanes)]
        self._emitted: list[Detection] = []

    @property
    def noise_floor(self) -> FloatArray:
        return self._floor.copy()

    def process(self, chunk: FloatArray) -> list[Detection]:
        if chunk.ndim != 2 or chunk.shape[1] != self._channels:
            raise ValueError(f"expected (samples, {self._channels}) array, got shape {chunk.shape}")
        if chunk.shape[0] == 0:
            return []
        filtered, self._zi = sps.sosfilt(self._sos, chunk, axis=0, zi=self._zi)
        mag = (
            np.sqrt(np.sum(filtered * filtered, axis=1, keepdims=True))
            if self.kind == "acc"
            else np.abs(filtered)
        )
        env, self._env_zi = sps.lfilter(self._env_b, self._env_a, mag, axis=0, zi=self._env_zi)
        self._buf_env = np.concatenate([self._buf_env, env])
        self._buf_mag = np.concatenate([self._buf_mag, mag])
        whole = (self._buf_env.shape[0] // self._block) * self._block
        out = self._run_blocks(self._buf_env[:whole], self._buf_mag[:whole]) if whole else []
        self._buf_env = self._buf_env[whole:]
        self._buf_mag = self._buf_mag[whole:]
        return out

    def finish(self) -> list[Detection]:
        """End of stream: release events still waiting out their refractory time (active ones are cut)."""
        for i, st in enumerate(self._state):
            if st.active:
                st.active = False
                self._close(i, st, st.end)
        out, self._emitted = self._emitted, []
        for st in self._state:
            if st.pending is not None:
                out.append(st.pending)
                st.pending = None
        return out

    def _run_blocks(self, env: FloatArray, mag: FloatArray) -> list[Detection]:
        """Whole blocks. Statistics per block come at once; the floor recurrence runs vectorised over
        stretches where every lane is idle, and block by block only where something happens."""
        n = env.shape[0] // self._block
        blocks = env.reshape(n, self._block, self.lanes)
        peaks, medians = blocks.max(axis=1), np.median(blocks, axis=1)
        out: list[Detection] = []
        b = 0
        while b < n:
            if self._blocks_seen < self._warmup_blocks:
                self._warm_up(medians[b])
                b += 1
            elif self._idle:
                b += self._skip_quiet(peaks[b:], medians[b:])
                if b < n:
                    out.extend(self._busy_block(b, env, mag, peaks[b], medians[b]))
                    b += 1
            else:
                out.extend(self._busy_block(b, env, mag, peaks[b], medians[b]))
                b += 1
        self._consumed += n * self._block
        return out

    def _warm_up(self, median: FloatArray) -> None:
        # Learn the floor fast; nothing is detected while it settles.
        self._floor = median.copy() if self._blocks_seen == 0 else 0.7 * self._floor + 0.3 * median
        self._blocks_seen += 1

    def _skip_quiet(self, peaks: FloatArray, medians: FloatArray) -> int:
        """Advance the floor over the leading blocks in which no lane crosses its threshold; return how many.

        The quiet-block update ``floor ← α·median + (1−α)·floor`` is exactly what ``lfilter`` computes for
        b=[α], a=[1, −(1−α)] (same operations, same rounding), so this agrees with the block-by-block path
        to the bit, and the events stay independent of chunking."""
        alpha = self.params.floor_alpha
        traj, _ = sps.lfilter(
            [alpha], [1.0, -(1.0 - alpha)], medians, axis=0, zi=((1.0 - alpha) * self._floor)[None, :]
        )
        before = np.vstack([self._floor[None, :], traj[:-1]])
        crossing = np.flatnonzero((peaks > self.params.on_factor * before).any(axis=1))
        k = int(crossing[0]) if crossing.size else peaks.shape[0]
        if k:
            self._floor = traj[k - 1].copy()
            self._blocks_seen += k
        return k

    def _busy_block(
        self, b: int, env: FloatArray, mag: FloatArray, peak: FloatArray, median: FloatArray
    ) -> list[Detection]:
        p = self.params
        offset = self._consumed + b * self._block
        self._blocks_seen += 1
        on = p.on_factor * self._floor
        busy = (peak > on) | self._active
        lo, hi = b * self._block, (b + 1) * self._block
        for lane in np.flatnonzero(busy):
            off = p.off_factor * self._floor[lane]
            self._scan(int(lane), env[lo:hi, lane], mag[lo:hi, lane], on[lane], off, offset)
        out, self._emitted = self._emitted, []
        out.extend(self._release_all(offset + self._block))
        quiet = ~busy
        alpha = p.floor_alpha
        self._floor[quiet] = alpha * median[quiet] + (1.0 - alpha) * self._floor[quiet]
        return out

    @property
    def _idle(self) -> bool:
        return not any(st.active or st.pending is not None for st in self._state)

    @property
    def _active(self) -> npt.NDArray[np.bool_]:
        return np.array([st.active for st in self._state])

    def _release_all(self, now: int) -> list[Detection]:
        out = []
        for lane in range(self.lanes):
            released = self._release(lane, now)
            if released is not None:
                out.append(released)
        return out

    def _scan(self, lane: int, e: FloatArray, m: FloatArray, on: float, off: float, offset: int) -> None:
        st = self._state[lane]
        i, n = 0, e.size
        while i < n:
            if not st.active:
                above = np.flatnonzero(e[i:] > on)
                if above.size == 0:
                    return
                i += int(above[0])
                st.active, st.start, st.peak, st.peak_env = True, offset + i, 0.0, 0.0
            below = np.flatnonzero(e[i:] < off)
            stop = i + int(below[0]) if below.size else n
            if stop > i:
                st.peak = max(st.peak, float(m[i:stop].max()))
                st.peak_env = max(st.peak_env, float(e[i:stop].max()))
            st.end = offset + stop
            if below.size == 0:
                return
            st.active = False
            self._close(lane, st, offset + stop)
            i = stop + 1

    def _close(self, lane: int, st: _Lane, end: int) -> None:
        prev = st.pending
        if prev is not None and st.start - prev.end <= self._refractory:
            # A burst that dips below the offset threshold briefly is one event, not several twitches.
            start, peak = prev.start, max(prev.peak, st.peak)
        else:
            if prev is not None:
                self._emitted.append(prev)
            start, peak = st.start, st.peak
        st.pending = self._classify(lane, start, end, peak, st.peak_env, self._floor[lane])

    def _release(self, lane: int, now: int) -> Detection | None:
        st = self._state[lane]
        if st.pending is not None and not st.active and now - st.pending.end > self._refractory:
            d, st.pending = st.pending, None
            return d
        return None

    def _classify(
        self, lane: int, start: int, end: int, peak: float, peak_env: float, floor: float
    ) -> Detection:
        p = self.params
        ms = (end - start) * 1e3 / self.rate
        if peak > p.artifact_amplitude:
            kind = EventKind.ARTIFACT
        elif ms > p.sustained_ms:
            kind = EventKind.SUSTAINED
        elif ms > p.jerk_ms:
            kind = EventKind.MYOCLONIC_JERK
        else:
            kind = EventKind.FASCICULATION
        # Confidence grows with how far the envelope cleared the onset threshold.
        margin = peak_env / max(p.on_factor * floor, 1e-12)
        confidence = float(np.clip(1.0 - np.exp(-(margin - 1.0) * 1.5), 0.05, 0.99))
        return Detection(lane, start, end, peak, kind, round(confidence, 3))
