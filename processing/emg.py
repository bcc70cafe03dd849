"""Surface EMG specifics: defaults per sample rate, the slow (artifact) statistic, the matched filter,
classification.

The band-passed power finds motor-unit activity; what it cannot tell apart is decided here from the
event's core duration and fill, the activity around it, and what the raw signal did (saturation, slow
swings). From 1 kHz on, a brief candidate must also look like a motor-unit potential: a bank of
Gaussian-derivative templates (``matched_bank``) scores it against the background's noise and colour, and
a monophasic pulse shorter than any potential's main phase is a spike. docs/detection.md gives every
number with its source.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt
from scipy import fft as sp_fft
from scipy import signal as sps

from twitchwatch.processing.clusters import Cluster
from twitchwatch.processing.core import (
    DetectorParams,
    Features,
    FloatArray,
    LaneEngine,
    Verdict,
    _max,
    _sum,
    band_sections,
    format_span,
    sosfilt_inplace,
)
from twitchwatch.processing.events import EventKind
from twitchwatch.processing.mains import MainsCanceller


def emg_params(sample_rate: float, notch_hz: float | None = None) -> DetectorParams:
    """Surface EMG, 200 Hz (Myo class) to 2 kHz: 20 Hz to min(450 Hz, 0.45·fs)."""
    smooth_ms = max(5.0, 2e3 / sample_rate)  # 5 ms, at least two samples
    w = max(1, round(smooth_ms * 1e-3 * sample_rate))
    matched = reaches(sample_rate, MATCHED_MIN_HZ)
    return DetectorParams(
        # Below 1 kHz the upper edge would sit near Nyquist, where a Butterworth edge rings for several
        # of its (long) periods and smears a potential over 40 ms at 200 Hz: keep the high-pass only.
        band_hz=(20.0, 450.0 if reaches(sample_rate, 1000.0) else sample_rate / 2),
        smooth_ms=smooth_ms,
        # With the matched filter the energy onset only proposes candidates (about 60 an hour on Gaussian
        # noise at 1 kHz); the filter decides (``matched_on``).
        on_factor=on_factor(w) * (MATCHED_PRE if matched else 1.0),
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
        matched_widths_ms=MATCHED_WIDTHS_MS if matched else (),
        matched_on=matched_on(sample_rate) if matched else 0.0,
        matched_spike_ms=MATCHED_SPIKE_MS if matched else 0.0,
        # Real rest is not Gaussian: thresholds rise with the background's own tail (LaneEngine._update_tail),
        # by as much more than Gaussian noise's as it asks for to be passed once a minute.
        tail_rate_per_min=1.0,
        # Its bulk levels lie where a busy muscle's twitches below the threshold cannot move the counts:
        # from 1 kHz most twitches are above it (excluded), below 1 kHz most faint ones are under it, so
        # the levels sit deeper in the bulk there (at 200 Hz, 90 twitches a minute at 14 dB raised the
        # threshold 1.9 x with Gaussian noise's 10 % / 2 % levels, 1.01 x with 30 % / 10 %; at 1 kHz the
        # deeper levels read BioSPPy emg's tail too light: 6 own events a minute instead of 2.7).
        tail_probs=(0.1, 0.02) if matched else (0.3, 0.1),
        # Mains interference (``processing.mains``): 50 or 60 Hz and their harmonics found per lane and
        # subtracted; a would-be twitch with most of its energy on them is a burst of hum.
        mains_hz=(50.0, 60.0),
        mains_share=MAINS_SHARE,
        # Fasciculations fire irregularly, at most about one a second even in ALS: a lane whose brief events
        # burst periodically at 3-12 Hz (tremor) or several a second for most of 5 s (a hand at work) is
        # active, and so is its time (``processing.bursts``, docs/detection.md "Rhythmic or dense bursting").
        burst_window_s=5.0,
    )


# A would-be twitch around which at least half of the band-passed energy repeats with the mains period is a
# burst of hum (``EmgEngine.mains_share``: hum ≈ 1, even a 0.1-s burst; a potential or noise ≈ −0.5).
MAINS_SHARE = 0.5

MATCHED_MIN_HZ = 1000.0  # below, a 5-ms potential has too few samples for a shape: energy alone
# Devices are sold at round rates (500 Hz, 1 kHz) and run a little off them: a crystal by up to 0.01 %, a
# rate estimated from a file's time stamps by 0.1-0.5 % (or from a clock that drifts). A method that changed
# at exactly 1000 Hz would detect one 1-kHz device's stream with another method than the next one's — at
# 999 Hz BioSPPy's rest EMG gave 2.3 × the twitches. So a rate within this of a step counts as reaching it.
CLOCK_TOLERANCE = 0.02


def reaches(sample_rate: float, step_hz: float) -> bool:
    """Whether a stream at ``sample_rate`` is detected as one at ``step_hz`` or more: a device sold at that
    rate whose clock or rate estimate is a little under it counts (``CLOCK_TOLERANCE``)."""
    return sample_rate >= step_hz * (1.0 - CLOCK_TOLERANCE)


MATCHED_WIDTHS_MS = (0.9, 1.5, 2.5)  # σ of the Gaussian: potentials of ±3σ = 5–15 ms
# Monophasic pulses of 1-2 ms: no wider than the main phase of the shortest potential (5 ms, σ 0.9 ms:
# phases ≈ 1.5 ms wide at half height), and without the opposite phase a bipolar electrode records of
# every potential — a spike in the electronics, not a muscle — are not potentials ...
MATCHED_SPIKE_MS = 2.0
# ... when one explains it clearly better: its output power beyond 1.3 × every potential template's. On
# white noise a 14-dB potential's ratio stays below 0.7 (99th percentile) and a 2-sample spike's is 1.5
# (median). Real rest's noise pushes potentials higher: at 1.0, real-rest fasciculation F1 at 14 dB fell
# from 0.815 to 0.789 (1 kHz, bench.accuracy); at 1.3 it is unchanged.
SPIKE_RATIO = 1.3
MATCHED_PRE = 0.75  # the energy onset × this proposes candidates to the matched filter
MATCHED_SURE = 4.0  # ... which decides those below this × the candidate onset


def matched_on(sample_rate: float) -> float:
    """The matched filter's threshold (normalised output power × floor) for about one false twitch an
    hour on Gaussian noise, with the detector's own floor, the energy onset at ``MATCHED_PRE`` × its own
    and the spike test: measured over 64 h at 1 kHz (0.88 an hour at 29, 1.3 at 28, 0.67 at 30) and 32 h
    at 2 kHz (0.84 at 30, 1.5 at 29); more samples a second are more chances, so it grows with the rate's
    logarithm."""
    return 29.0 + math.log2(sample_rate / 1000.0)


def on_factor(w: int) -> float:
    """Onset threshold (× floor, power) for a w-sample moving mean of band-passed noise: the level that
    Gaussian noise crosses about once an hour *with the detector's own floor estimate* (which follows the
    noise and so moves the threshold with it). The mean of a few χ² samples has a heavy right tail, so the
    threshold rises as w falls. Measured over 4 hours of Gaussian noise per cell (onsets per hour):
    200 Hz (w = 2): 3.5 at 14, 0.8 at 16; 250 Hz: 3.2 at 14, 0.5 at 16; 500 Hz: 2.2 at 14, 0 at 16;
    600 Hz (w = 3): 1.2 at 11, 0.5 at 12; 800 Hz (w = 4): 0.8 at 9; 1 kHz (w = 5): 7 at 7, 0.8 at 8;
    2 kHz (w = 10): 4.8 at 7, 0.2 at 8. This gives 16, 11.7, 9.5, 8.2, 8 … From 1 kHz on the energy
    onset is ``MATCHED_PRE`` × this and the matched filter decides (``matched_on``). Where the
    background's tail is heavier than Gaussian noise's, both rise with it (``LaneEngine.tail``)."""
    return max(8.0, 3.0 + 26.0 / w)


_ANTI_ALIAS = 0.33  # a device's anti-aliasing filter, modelled as a Gaussian of σ = 0.33/fs (−3 dB at 0.4·fs)


def matched_bank(
    sos: FloatArray,
    sample_rate: float,
    widths_ms: tuple[float, ...],
    orders: tuple[int, ...],
    spike_ms: float = 0.0,
) -> tuple[FloatArray, FloatArray, int]:
    """The matched filter's templates and their noise gains.

    Each template is a motor-unit potential model — the ``order``-th derivative of a Gaussian of σ in
    ``widths_ms`` (1st: biphasic, 2nd: triphasic; Hermite–Rodriguez functions, Lo Conte et al. 1994),
    widened by the device's anti-aliasing — as it comes out of the detector's band-pass, scaled to unit
    energy: (K × L), right-aligned (zero-padded in front), so that correlating the last L band-passed samples
    with a row gives that template's output at the newest sample. Its noise gain is the output power for
    band-passed white noise of unit power: the output² / (gain × floor) is then χ²₁-distributed around 1 on
    Gaussian noise, whatever the template.

    After the potentials' rows (their number is returned too) come monophasic pulses of one whole sample
    up to ``spike_ms``: shapes with a main phase shorter than any motor-unit potential's, whose energy no
    potential of the bank explains as well (a spike in the electronics or the ADC, not a muscle)."""
    impulse = np.zeros(max(8, round(0.5 * sample_rate)))
    impulse[0] = 1.0
    band = sps.sosfilt(sos, impulse)
    rows = []

    def passed(shape: FloatArray) -> FloatArray:
        out = sps.sosfilt(sos, np.concatenate([shape, np.zeros(round(0.05 * sample_rate))]))
        energy = np.cumsum(out * out)  # the central 98 % of its energy (≤ 0.1 dB of its output)
        first = int(np.searchsorted(energy, 0.01 * energy[-1]))
        out = out[first : int(np.searchsorted(energy, 0.99 * energy[-1])) + 1]
        return np.asarray(out / math.sqrt(float(np.dot(out, out))), dtype=np.float64)

    for width in widths_ms:
        s = math.hypot(width * 1e-3, _ANTI_ALIAS / sample_rate)
        half = max(1, math.ceil(4.0 * s * sample_rate))
        z = np.arange(-half, half + 1) / (s * sample_rate)
        g = np.exp(-0.5 * z * z)
        for order in orders:
            rows.append(passed({1: -z * g, 2: (z * z - 1.0) * g, 3: -(z**3 - 3.0 * z) * g}[order]))
    potentials = len(rows)
    for n in range(1, max(0, round(spike_ms * 1e-3 * sample_rate)) + 1):
        rows.append(passed(np.ones(n)))
    length = max(r.size for r in rows)
    bank = np.zeros((len(rows), length))
    gains = np.empty(len(rows))
    for k, r in enumerate(rows):
        bank[k, length - r.size :] = r
        response = np.convolve(r[::-1], band)
        gains[k] = float(np.dot(response, response) / np.dot(band, band))
    return bank, gains, potentials


@functools.lru_cache(maxsize=32)
def _bank(
    rate: float,
    band_hz: tuple[float, float],
    notch_hz: float | None,
    notch_q: float,
    widths_ms: tuple[float, ...],
    orders: tuple[int, ...],
    spike_ms: float,
) -> tuple[FloatArray, FloatArray, int]:
    """``matched_bank`` for a detector's band, built once per band and bank (as the band itself,
    ``core.band_design``: a worker builds hundreds of detectors at once)."""
    sos, _ = band_sections(rate, band_hz, notch_hz, notch_q)
    return matched_bank(sos, rate, widths_ms, orders, spike_ms)


class EmgEngine(LaneEngine):
    def __init__(self, sample_rate: float, channels: int, params: DetectorParams) -> None:
        super().__init__(sample_rate, channels, channels, params)
        self._prev_bx: FloatArray | None = None  # the last raw block mean
        self._lowpass = max(3, round(params.lowpass_ms * 1e-3 * sample_rate))
        # Raw history for the slow excursion: an event of up to store_s, its margins and release delay;
        # and the band-passed history for the matched filter.
        self._ring = np.zeros((self.spans.store_cap + round(1.5 * sample_rate) + 4 * self._lowpass, channels))
        self._yring = np.zeros_like(self._ring)
        self._ring_end = 0
        self._bank: FloatArray | None = None
        self._potentials = 0  # the bank's rows that are potentials (the rest: spikes)
        self._bank_scale = np.zeros(0)
        if params.matched_widths_ms:
            bank, gains, self._potentials = _bank(
                sample_rate,
                params.band_hz,
                params.notch_hz,
                params.notch_q,
                params.matched_widths_ms,
                params.matched_orders,
                params.matched_spike_ms,
            )
            self._bank = bank.copy()
            self._bank_scale = 1.0 / gains
        self._bank_spectra: dict[int, npt.NDArray[np.complex128]] = {}
        self._noise_span = round(params.matched_noise_ms * 1e-3 * sample_rate)
        self._half_wave = round(0.005 * sample_rate) if reaches(sample_rate, 500.0) else 0
        self._wave_pre = round(0.04 * sample_rate)  # filter lead-in before the cluster
        self.mains: MainsCanceller | None = None
        if params.mains_hz:
            epoch = self.epoch * self.blk
            self.mains = MainsCanceller(
                sample_rate,
                channels,
                self._sos,
                epoch,
                self.blk,
                # First looked for at a frame's end at least an epoch before the warm-up ends, so that the
                # floor is learnt without the hum.
                self.warmup_samples - epoch,
                params.mains_hz,
                params.mains_tolerance_hz,
                params.mains_line_db,
                params.mains_window_s,
                params.mains_check_s,
                params.mains_tau_s,
            )
        self._mains_span = round(params.mains_event_ms * 1e-3 * sample_rate)

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

    def clean(self, x: FloatArray, y: FloatArray, base: int) -> FloatArray:
        if self.mains is None:
            return x
        return self.mains.clean(x, y, base)

    def interference(self, epoch: int) -> FloatArray | None:
        return self.mains.untracked(epoch) if self.mains is not None else None

    def mains_levels(self) -> list[tuple[float, float] | None]:
        return self.mains.levels() if self.mains is not None else [None] * self.lanes

    def warm_powers(self, bm: FloatArray) -> FloatArray:
        if self.mains is None:
            return bm
        return self.mains.warm_powers(self._block - bm.shape[0], bm)

    def segment_raw(self, x: FloatArray, y: FloatArray, base: int) -> None:
        n, size = x.shape[0], self._ring.shape[0]
        k = base % size
        keep_y = self._bank is not None or self.params.mains_share > 0
        if k + n <= size:
            self._ring[k : k + n] = x
            if keep_y:
                self._yring[k : k + n] = y
        else:
            rows = (k + np.arange(n)) % size
            self._ring[rows] = x
            if keep_y:
                self._yring[rows] = y
        self._ring_end = base + n

    def match_score(self, lane: int, c: Cluster) -> float:
        """The matched filter's verdict on a cluster: the largest normalised output power of any template
        at any sample from its start to a template's length past its end, × the floor (χ²₁ around 1 on
        Gaussian noise).

        A candidate that one of the bank's monophasic pulses (``matched_spike_ms``) explains clearly better
        than every potential (``SPIKE_RATIO``) scores 0.

        Each template's output is normalised by the noise it sees: white noise's (its gain) times the
        background's colour, measured over the ``matched_noise_ms`` before the cluster (clear of its rise
        by ``context_guard_ms``) as that template's output power over the band power there, and taken only
        when above 1 — a background with more power at a template's frequencies than white noise (rest EMG
        often has more at 20–100 Hz) makes that template stricter, never laxer. From the band-passed
        history, the same samples whatever the chunking, correlated through one FFT of a length set by the
        cluster's own span (the same arithmetic every time). ``inf`` where it cannot be scored (no bank,
        history gone)."""
        bank = self._bank
        if bank is None:
            return math.inf
        length, size, pre = bank.shape[1], self._yring.shape[0], self._noise_span
        lo, hi = c.start - pre - length + 1, min(c.end + length, self._ring_end)
        if lo < 0 or hi - lo < pre + length or self._history_end() - lo > size:
            return math.inf
        a, b = lo % size, hi % size
        ring = self._yring
        v = ring[a:b, lane] if a < b else np.concatenate([ring[a:, lane], ring[:b, lane]])
        n = v.shape[0]
        nfft = sp_fft.next_fast_len(n, real=True)
        spectra = self._bank_spectra.get(nfft)
        if spectra is None:
            spectra = self._bank_spectra[nfft] = np.conj(np.fft.rfft(bank, nfft, axis=1))
            spectra *= np.sqrt(self._bank_scale)[:, None]  # outputs in units of white noise's
        out = np.fft.irfft(np.fft.rfft(v, nfft) * spectra, nfft, axis=1)
        np.square(out, out=out)
        quiet = pre - self._ctx_guard  # outputs at samples [c.start - pre, c.start - guard)
        band = v[length - 1 : length - 1 + quiet]
        colour = _sum(out[:, :quiet], axis=1) / max(float(np.dot(band, band)), 1e-300)
        score = _max(out[:, pre : n - length + 1], axis=1) / np.maximum(colour, 1.0)
        k = self._potentials
        best = float(_max(score[:k]))
        if k < score.shape[0] and float(_max(score[k:])) > SPIKE_RATIO * best:
            return 0.0  # a pulse shorter than any potential's main phase explains it: a spike
        return best / max(c.floor, 1e-300)

    def mains_share(self, lane: int, c: Cluster) -> tuple[float, float]:
        """How much of the band-passed signal around a cluster repeats with the mains period, and that
        frequency: 1 − Σ e² / Σ y², e(t) = y(t) − ½ (y(t − T) + y(t + T)) with T one period (linearly
        interpolated), over at least ``mains_event_ms`` ending where its decision reads to (the slow
        excursion's 40 ms after its end: more than a period) — the larger over the nominal frequencies
        (0.5 Hz off one, its period is 1 % off: 0.06 rad at the fundamental, a few per cent of the energy;
        not the canceller's, which runs ahead of the decisions by as much as a chunk). Hum, even a burst
        whose amplitude swells and fades over a tenth of a second, is nearly periodic (≈ 1); a motor-unit
        potential or noise is not (−0.5: e carries it at t and half of it at t ± T). 0 where the history
        is gone."""
        size = self._yring.shape[0]
        hi = min(c.end + self.decision_reach(), self._ring_end)
        best = (0.0, 0.0)
        for f0 in self.params.mains_hz:
            period = self.rate / f0
            lag = math.ceil(period)
            lo = max(0, min(c.start, hi - self._mains_span) - lag - 1)
            if self._history_end() - lo > size or hi - lo < 2 * lag + 8:
                continue
            a, b = lo % size, hi % size
            ring = self._yring
            v = ring[a:b, lane] if a < b else np.concatenate([ring[a:, lane], ring[:b, lane]])
            n, whole, frac = v.shape[0], int(period), period - int(period)
            mid = v[lag : n - lag]  # y(t), and y(t ∓ T) interpolated between the samples around them
            back = v[lag - whole : n - lag - whole]
            ahead = v[lag + whole : n - lag + whole]
            if frac:
                back = back + frac * (v[lag - whole - 1 : n - lag - whole - 1] - back)
                ahead = ahead + frac * (v[lag + whole + 1 : n - lag + whole + 1] - ahead)
            e = mid - 0.5 * (back + ahead)
            energy = float(np.dot(mid, mid))
            if energy <= 0:
                continue
            share = 1.0 - float(np.dot(e, e)) / energy
            if share > best[0]:
                best = (share, f0)
            if share >= self.params.mains_share:
                break
        return best

    def decision_reach(self) -> int:
        """Past a cluster's end its decision reads a template's length (``match_score``), half a waveform
        (``waveform``) and the slow excursion's window (``release_features``)."""
        length = self._bank.shape[1] if self._bank is not None else 0
        return max(length, self._half_wave, self._lowpass)

    def _history_end(self) -> int:
        """How far the raw rings may have been written when the cluster being decided is: by the end of the
        epoch after its decision block (``LaneEngine.ring_from``). History before this minus the rings'
        length counts as gone, whatever the chunking."""
        return (self.decision_block() + self.epoch) * self.blk

    def confirms(self, lane: int, c: Cluster) -> bool:
        """The matched filter decides the candidates near the threshold: from ``MATCHED_SURE`` × the
        energy onset on, no shape keeps a potential's filter output below it (a 2-sample spike's is
        ≈ 0.4 × its energy; see ``matched_on``), so it is not asked."""
        if self._bank is None or c.peak_env >= MATCHED_SURE * c.piece_on:
            return True
        return self.match_score(lane, c) >= self.params.matched_on * c.tail

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
        if c.end - c.start > self.spans.store_cap:
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
        too_long = end - start > self.spans.jerk_max
        if half < 2 or too_long or lo < 0 or hi - lo > size or self._history_end() - lo > size:
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
        verdict = self._classify(f)
        judged = verdict.kind.is_twitch or (verdict.kind is EventKind.SUSTAINED and verdict.vetoes is None)
        if judged and self.params.mains_share > 0:
            # A burst of hum (a hand near a lead, a cable swaying by a mains cable): its energy sits on the
            # mains' harmonics. Not a twitch, nor activity with a contraction's onset and end around it: the
            # muscle cannot be assessed under it, so it vetoes exactly its span.
            share, f0 = self.mains_share(f.lane, f.cluster)
            if share >= self.params.mains_share:
                why = (
                    f"mains interference: {share:.0%} of its energy repeats with the mains period ({f0:g} Hz)"
                )
                return Verdict(EventKind.ARTIFACT, round(min(share, 0.95), 3), why, exact=True)
        return verdict

    def _classify(self, f: Features) -> Verdict:
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
            # Weak activity seen in the windows around it, not a contraction's onset or end: it vetoes
            # those windows only (a later potential's own surroundings are judged anew).
            sure = 0.5 + 0.4 * min(f.context - 1.0, 1.0)
            return Verdict(EventKind.SUSTAINED, sure, "activity around it", guarded=False)
        others = self.others_active(f)
        if others and others >= max(1, math.ceil(prm.cross_lane_share * (self.lanes - 1))):
            # Part of a contraction under the wearable, but the other muscles' activity is theirs to
            # veto: this lane stays assessable (another muscle's contraction vetoes only that muscle).
            return Verdict(EventKind.SUSTAINED, 0.6, f"activity on {others} other channels", vetoes=False)
        quiet = 1.0 - 0.3 * f.context  # busier surroundings → less sure
        if ms > prm.fasc_max_ms:
            if c.fill() < prm.jerk_fill:
                main = c.main_piece_ms(self.rate, self.spans.core_ratio)
                if main is not None and main <= prm.fasc_max_ms:  # a potential and smaller neighbours
                    big = c.main_piece()
                    span = c.core_span[big] if big is not None else None
                    return Verdict(EventKind.FASCICULATION, sure * quiet * 0.7, span=span)
                # sparse potentials over tens of ms: low-level activity
                return Verdict(EventKind.SUSTAINED, 0.5, f"sparse potentials over {ms:.0f} ms")
            edge = min((ms - prm.fasc_max_ms) / prm.fasc_max_ms, 1.0)
            return Verdict(EventKind.MYOCLONIC_JERK, sure * quiet * (0.7 + 0.3 * edge))
        edge = min((prm.fasc_max_ms - ms) / (0.5 * prm.fasc_max_ms), 1.0)
        return Verdict(EventKind.FASCICULATION, sure * quiet * (0.7 + 0.3 * edge), span=c.core_span_of())
