"""Surface EMG specifics: defaults per sample rate, the slow (artifact) statistic, classification.

The band-passed power finds motor-unit activity; what it cannot tell apart is decided here from the
event's core duration and fill, the activity around it, and what the raw signal did (saturation, slow
swings). docs/detection.md gives every number with its source.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from processing.core import (
    Cluster,
    DetectorParams,
    Features,
    FloatArray,
    LaneEngine,
    Verdict,
    format_span,
    sosfilt_inplace,
)
from processing.events import EventKind


def emg_params(sample_rate: float, notch_hz: float | None = None) -> DetectorParams:
    """Surface EMG, 200 Hz (Myo class) to 2 kHz: 20 Hz to min(450 Hz, 0.45·fs)."""
    smooth_ms = max(5.0, 2e3 / sample_rate)  # 5 ms, at least two samples
    return DetectorParams(
        # Below 1 kHz the upper edge would sit near Nyquist, where a Butterworth edge rings for several
        # of its (long) periods and smears a potential over 40 ms at 200 Hz: keep the high-pass only.
        band_hz=(20.0, 450.0 if sample_rate >= 1000.0 else sample_rate / 2),
        smooth_ms=smooth_ms,
        on_factor=on_factor(max(1, round(smooth_ms * 1e-3 * sample_rate))),
        off_factor=3.0,
        notch_hz=notch_hz,
        artifact_amplitude=5000.0,  # µV: far beyond any surface motor-unit potential
        # One motor unit's potential repeats within ~±20 % at the surface: ×1.5 is the same unit firing
        # again; a lane busy only with potentials under half this one's size is not busy at its scale.
        train_ratio=1.5,
        busy_ratio=0.5,
        # Four potentials of at least half its size in the second before it: a lane busy at its scale (4 a
        # second and more). Three also took a twitch for activity beside a small real unit's sporadic
        # potentials at the lower onset (bench.rest_diagnosis: 7 of 334 at 14 dB on BioSPPy rest).
        busy_count=4,
        # The channels of one EMG wearable lie over one body region (an armband, a sleeve, a grid): a
        # potential while a quarter of the others are in activity that began before it or outlasts it is
        # part of a contraction there, not an isolated twitch.
        cross_lane_ms=300.0,
    )


def on_factor(w: int) -> float:
    """Onset threshold (× floor, power) for a w-sample moving mean of band-passed noise: the level that
    Gaussian noise crosses about once an hour *with the detector's own floor estimate* (which follows the
    noise and so moves the threshold with it). The mean of a few χ² samples has a heavy right tail, so the
    threshold rises as w falls. Measured over 4 hours of Gaussian noise per cell (onsets per hour):
    200 Hz (w = 2): 3.5 at 14, 0.8 at 16; 250 Hz: 3.2 at 14, 0.5 at 16; 500 Hz: 2.2 at 14, 0 at 16;
    600 Hz (w = 3): 1.2 at 11, 0.5 at 12; 800 Hz (w = 4): 0.8 at 9; 1 kHz (w = 5): 7 at 7, 0.8 at 8;
    2 kHz (w = 10): 4.8 at 7, 0.2 at 8. This gives 16, 11.7, 9.5, 8.2, 8 … Real rest has heavier tails
    (and small potentials of its own); what is counted there is decided by classification, not by a
    higher threshold, which would give away the faint twitches (docs/detection.md)."""
    return max(8.0, 3.0 + 26.0 / w)


class EmgEngine(LaneEngine):
    def __init__(self, sample_rate: float, channels: int, params: DetectorParams) -> None:
        super().__init__(sample_rate, channels, channels, params)
        self._prev_bx: FloatArray | None = None  # the last raw block mean
        self._lowpass = max(3, round(params.lowpass_ms * 1e-3 * sample_rate))
        # Raw history for the slow excursion: an event of up to store_s, its margins and release delay.
        self._ring = np.zeros((self._store_cap + round(1.5 * sample_rate) + 4 * self._lowpass, channels))
        self._ring_end = 0
        self._half_wave = round(0.005 * sample_rate) if sample_rate >= 500.0 else 0
        self._wave_pre = round(0.04 * sample_rate)  # filter lead-in before the cluster

    def lane_power(self, y: FloatArray, out: FloatArray) -> None:
        np.multiply(y, y, out=out)

    def slow_stat(self, x: FloatArray, bx: FloatArray) -> FloatArray:
        # Step of the raw block means: electrode pops, motion and saturation move the baseline within a
        # block or two; slow wander and zero-mean motor-unit potentials barely do.
        prev = self._prev_bx if self._prev_bx is not None else bx[:1]
        ext = np.concatenate([prev, bx])
        self._prev_bx = ext[-1:].copy()
        return np.asarray(np.abs(ext[1:] - ext[:-1]), dtype=np.float64)

    def slow_threshold(self) -> FloatArray:
        return self.params.slow_on * self.slow_floor

    def lane_channels(self, lane: int) -> slice:
        return slice(lane, lane + 1)

    def lanes_channels(self, lanes: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        return lanes

    def segment_raw(self, x: FloatArray, base: int) -> None:
        n, size = x.shape[0], self._ring.shape[0]
        k = base % size
        if k + n <= size:
            self._ring[k : k + n] = x
        else:
            self._ring[(k + np.arange(n)) % size] = x
        self._ring_end = base + n

    def artifact_like(self, lane: int, c: Cluster) -> bool:
        # Only the raw signal up to the piece's end is used, so the answer does not depend on chunking;
        # a step or swing is already there, a potential averages out.
        self._excursion(lane, c, c.end)
        return self.is_slow(c)

    def release_features(self, lane: int, c: Cluster) -> None:
        self._excursion(lane, c, c.end + self._lowpass)

    def _excursion(self, lane: int, c: Cluster, stop: int) -> None:
        """The slow excursion: largest |moving mean over lowpass_ms of the raw signal − its mean before
        the event|, over the event and lowpass_ms either side. A zero-area motor-unit potential averages
        out; a pop's step, a motion swing or a rail does not. Events longer than store_s keep 0 (they are
        activity or artifacts on other grounds)."""
        k = self._lowpass
        if c.end - c.start > self._store_cap:
            return
        lo = max(c.start - 3 * k, 0)
        if c.start - k - lo < k // 2:
            return  # too close to the stream's start for a baseline
        hi = min(stop, self._ring_end)
        v = self._ring[np.arange(lo, hi) % self._ring.shape[0], lane]
        base = float(v[: c.start - k - lo].mean())
        csum = np.cumsum(v[c.start - k - lo :] - base)
        if csum.size <= k:
            c.slow_excursion = abs(float(csum[-1])) / csum.size
            return
        c.slow_excursion = float(np.abs(np.concatenate([csum[k - 1 : k], csum[k:] - csum[:-k]])).max()) / k

    def waveform(self, lane: int, start: int, end: int) -> FloatArray | None:
        """±5 ms of the band-passed signal around the peak, re-filtered from the raw ring (the same samples
        whatever the chunking, so the same answer). Only where a potential has enough samples to have a
        shape (≥ 500 Hz) and only for clusters short enough to be one potential or a brief burst."""
        pre, half, size = self._wave_pre, self._half_wave, self._ring.shape[0]
        lo, hi = start - pre, min(end + half, self._ring_end)
        if half < 2 or end - start > self._jerk_max or lo < 0 or hi - lo > size or self._ring_end - lo > size:
            return None
        a, b = lo % size, hi % size
        v = (
            self._ring[a:b, lane] if a < b else np.concatenate([self._ring[a:, lane], self._ring[:b, lane]])
        )[None, :]
        v = v - v[0, 0]  # start at rest: no step for the filter to ring on
        sosfilt_inplace(self._sos, v, np.zeros((1, self._sos.shape[0], 2)))
        y = v[0]
        k = pre + int(np.argmax(np.abs(y[pre:])))
        if k - half < 0 or k + half + 1 > y.shape[0]:
            return None
        out: FloatArray = y[k - half : k + half + 1]
        return out

    def is_slow(self, c: Cluster) -> bool:
        prm = self.params
        return c.slow_excursion > max(prm.slow_ratio * c.peak, prm.slow_min * math.sqrt(c.floor))

    def saturation_limit(self, floor: float) -> float:
        return self.params.saturation_excursion * math.sqrt(floor)

    def classify(self, f: Features) -> Verdict:
        c, prm = f.cluster, self.params
        ms = c.core_ms(self.rate)
        margin = c.peak_env / max(prm.on_factor * self.w * c.floor, 1e-300)
        sure = 1.0 - 0.5 / max(margin, 1.0) ** 2  # 0.5 at the threshold, 0.97 at 4×
        if c.saturated:
            return Verdict(EventKind.ARTIFACT, 0.95, "saturation")
        if c.peak > prm.artifact_amplitude:
            return Verdict(EventKind.ARTIFACT, 0.9, f"{c.peak:.0f} µV, beyond any motor-unit potential")
        if self.is_slow(c) or (c.slow_blocks and c.first_on < 0):
            return Verdict(EventKind.ARTIFACT, 0.8, "slow baseline swing")
        if c.long or ms > prm.jerk_max_ms:
            return Verdict(EventKind.SUSTAINED, min(0.6 + ms / 5000.0, 0.95), f"activity {format_span(ms)}")
        # One unit firing again, or a lane busy with potentials of its size: not a twitch, but no reason to
        # stop looking either — another unit's twitch would stand out (``Detection.vetoes``).
        if f.in_train(prm.isolation_ms, prm.train_ratio):
            return Verdict(EventKind.SUSTAINED, 0.6, "train of similar potentials", vetoes=False)
        if f.busy(prm.busy_count, prm.busy_ratio):
            return Verdict(EventKind.SUSTAINED, 0.6, "among other potentials", vetoes=False)
        if f.context > 1.0:
            return Verdict(EventKind.SUSTAINED, 0.5 + 0.4 * min(f.context - 1.0, 1.0), "activity around it")
        others = self.others_active(f)
        if others and others >= max(1, math.ceil(prm.cross_lane_share * (self.lanes - 1))):
            # Part of a contraction under the wearable, but the other muscles' activity is theirs to
            # veto: this lane stays assessable (another muscle's contraction vetoes only that muscle).
            return Verdict(EventKind.SUSTAINED, 0.6, f"activity on {others} other channels", vetoes=False)
        quiet = 1.0 - 0.3 * f.context  # busier surroundings → less sure
        if ms > prm.fasc_max_ms:
            if c.fill() < prm.jerk_fill:
                main = c.main_piece_ms(self.rate, self._core_ratio)
                if main is not None and main <= prm.fasc_max_ms:  # a potential and a smaller neighbour
                    return Verdict(EventKind.FASCICULATION, sure * quiet * 0.7)
                # sparse potentials over tens of ms: low-level activity
                return Verdict(EventKind.SUSTAINED, 0.5, f"sparse potentials over {ms:.0f} ms")
            edge = min((ms - prm.fasc_max_ms) / prm.fasc_max_ms, 1.0)
            return Verdict(EventKind.MYOCLONIC_JERK, sure * quiet * (0.7 + 0.3 * edge))
        edge = min((prm.fasc_max_ms - ms) / (0.5 * prm.fasc_max_ms), 1.0)
        return Verdict(EventKind.FASCICULATION, sure * quiet * (0.7 + 0.3 * edge))
