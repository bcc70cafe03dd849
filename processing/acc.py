"""Accelerometer (mechanomyography) specifics: defaults, movement gating, classification.

Gravity and posture sit below the twitch band and are removed by its high-pass; gross movement (walking,
a posture change) is measured in its own low band and, when it lasts, turns everything around it into
activity (``EventKind.SUSTAINED``) so steps and turns are never counted as twitches. Smaller movement —
a shift of weight, sway, the start of a gesture — is measured in 1–5 Hz against the wearer's resting
level: a transient it precedes is movement, not a twitch, which comes out of stillness.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from twitchwatch.processing.clusters import Cluster
from twitchwatch.processing.core import (
    BoolArray,
    Detection,
    DetectorParams,
    Features,
    FloatArray,
    LaneEngine,
    Verdict,
    butter_sos,
    format_span,
    sosfilt_inplace,
)
from twitchwatch.processing.events import EventKind


def acc_params(sample_rate: float) -> DetectorParams:
    """Accelerometer, 25–416 Hz: twitch band 5 Hz to min(100 Hz, 0.45·fs)."""
    return DetectorParams(
        band_hz=(5.0, min(100.0, 0.45 * sample_rate)),
        smooth_ms=20.0,
        on_factor=acc_on_factor(max(1, round(0.02 * sample_rate))),
        off_factor=3.0,
        fasc_max_ms=max(150.0, 5e3 / sample_rate),  # at least five samples
        core_db=6.0,  # the 5-Hz high-pass rings at a tenth of the peak power for strong transients
        jerk_max_ms=400.0,
        # The 5-Hz high-pass rings for ~200 ms after a transient, longer than the hold: the activity
        # after an event cannot be told from its own tail here, so only the activity before it counts.
        context_guard_ms=120.0,
        # Before: 300 ms, well clear of the previous twitch's 5-Hz ringing; a ratio of 2 (the ringing and
        # sensor drift make the accelerometer's background less steady than an electrode's).
        context_ms=300.0,
        context_factor=2.0,
        artifact_amplitude=1.0,  # g: a knock on the sensor, not a muscle
        # A motor unit's twitch moves the skin by 5-50 milli-g; three times that without the limb moving
        # is an impact on the sensor (a tap rings for a few ms: sampled, a flat spectrum up to Nyquist). A
        # myoclonic jerk moves the limb: its acceleration lies at limb-movement frequencies, below ~12 Hz,
        # or a good part of it in the 1-5 Hz band (docs/detection.md, "Impacts").
        twitch_max_amplitude=0.15,
        limb_motion_ratio=0.45,
        limb_max_hz=12.0,
        # Skin and muscle pass a twitch's mechanical transient below ~50 Hz (generated ones: 15-30 Hz); an
        # event whose band-passed RMS frequency is higher (only from ~120 Hz sampling, where the band
        # reaches past 50 Hz) is the sensor's own ring: an impact or a vibration.
        muscle_max_hz=50.0,
        # A tremor: the lane is not assessable while a 3-12 Hz peak in the spectrum makes a fifth of the
        # band's background or more (docs/detection.md, "Tremor").
        tremor_share=0.2,
        saturation_excursion=0.5,  # g
        movement_band_hz=(0.3, min(5.0, 0.12 * sample_rate)),  # 3 Hz at 25 Hz: clear of twitch ringing
        move_ctx_band_hz=(1.0, min(5.0, 0.12 * sample_rate)),
        # Floor updates every 500 ms rather than 100 ms: at wearable rates (25-100 Hz) an epoch is only a
        # few samples, and the per-epoch bookkeeping, not the signal, set the cost (1300x real time at
        # 50 Hz, 3900x now). The floor's time constant (2 s) is unchanged; F1 moved by <= 0.03 (bench).
        epoch_blocks=25,
        # A cluster with movement waits this long for more of it before it is released. 400 ms (the EMG
        # artifact value) held jerks back ~0.7 s; walking's movement band dips under the gate for well under
        # 200 ms between steps, so 200 ms still gathers a bout, and jerks come out ~0.5 s after they end.
        # Measured (bench.accuracy, bench.latency): jerk F1 at 20 dB 0.88 → 0.94, fasciculations 0.95 →
        # 0.98, no false twitch in the BioSPPy walk; a few activity bouts now come out as two.
        slow_gap_ms=200.0,
        # A heartbeat's vibration (20-40 Hz) is sampled a few times a cycle at wearable rates: its sampled
        # peak varies with the phase the samples fall on, by up to about twice.
        heart_peak_ratio=2.0,
    )


def acc_on_factor(w: int) -> float:
    """Onset threshold (× floor) for a w-sample moving mean of the three axes' band-passed power: none of
    ten hours of 3-axis Gaussian noise crossed it, with the detector's own floor, at 25, 50 (w = 1: 11×),
    100, 200 or 416 Hz (w = 2, 4, 8: 8×); one step lower (10×, 7×) already gives 0.2 an hour at 25-50 Hz.
    The margin below one an hour is for real sensors' tails (quantisation, tremor): on the everyday
    recordings 10×/7× let 0.25 twitch-class events a minute of activity through the gate, 11×/8× 0.16.
    (It was 12× at every rate, 0.5-1 dB above this at w = 1 and 1.8 dB at w ≥ 2.)"""
    return 11.0 if w == 1 else 8.0


class AccEngine(LaneEngine):
    dof_per_sample = 3

    def __init__(self, sample_rate: float, channels: int, params: DetectorParams) -> None:
        super().__init__(sample_rate, channels, 1, params)
        self._lf_sos = butter_sos(2, params.movement_band_hz, "bandpass", sample_rate)
        self._lf_zi: FloatArray | None = None
        self._ctx_sos = butter_sos(2, params.move_ctx_band_hz, "bandpass", sample_rate)
        self._ctx_zi: FloatArray | None = None
        self._ctx_rms: FloatArray = np.zeros((0, 1))
        self._all_channels = np.arange(channels)
        self._movement_thr = np.full(1, params.movement_g)  # read only: shared, not rebuilt per epoch
        self._move_ctx_blocks = max(1, round(params.move_ctx_ms * 1e-3 * sample_rate / self.blk))
        self._move_ctx_settle = round(params.move_ctx_settle_ms * 1e-3 * sample_rate)
        epoch_s = self.epoch * self.blk / sample_rate
        self._move_fall = 1.0 - math.exp(-epoch_s / params.floor_tau_s)
        self._move_rise = 1.0 - math.exp(-epoch_s / params.move_rest_rise_s)
        self._move_rest = -1.0  # the movement band's resting level (g), from the first epoch on
        self._move_rest_since = 0  # the block from which it holds (an epoch's end) ...
        self._move_rest_before = -1.0  # ... and what it was before
        self._tremor = TremorWatch(sample_rate, self.blk, self.epoch, self._sos, params)
        self._tremor_skips = 0  # epochs in a row whose window was mostly movement or events
        self._moving = np.zeros(self._ring_n, dtype=bool)  # per block of the ring: movement (``movement_g``)
        self._tremor_from: int | None = None  # while the lane is in a tremor: the start of its open piece ...
        self._tremor_piece = max(1, round(params.noisy_piece_s * sample_rate))
        self._tremor_seen = (0.0, 0.0)  # ... and its largest amplitude (g) and that one's frequency (Hz)
        self._tremor_last = (0.0, 0.0)  # the latest measured
        self._tremor_low: int | None = None  # in a tremor: where its share went below half the threshold
        # A tremor is called once it has shown for ``tremor_min_s`` of epochs in a row (a run of jerks or a
        # contraction shows for a few): from where the run began (``_tremor_since``), which nothing settles
        # past meanwhile (``settled``), so that its first seconds are not counted.
        self._tremor_need = max(1, math.ceil(params.tremor_min_s / epoch_s))
        # From the stream's start: until its first spectra are in, nothing after the warm-up settles either.
        self._tremor_since = max(self.warmup_samples - self.delay, 0) if self._tremor.on else None
        self._tremor_run = 0

    def history_blocks(self) -> int:
        """Enough for ``movement_around`` of the latest-decided transient that can still be a twitch: the
        look-back before it, the transient with movement in it short of ``movement_min_ms`` and its core up
        to ``jerk_max_ms``, then the slow gap and hold that close it. With the shared ring alone (1.5 s at
        50-100 Hz) such a transient's look-back had been overwritten by its decision and read as stillness."""
        p, sp = self.params, self.spans
        ms = p.move_ctx_ms + p.movement_min_ms + p.jerk_max_ms
        reach = ms * 1e-3 * self.rate + sp.slow_gap + sp.hold
        tremor = tremor_window(self.rate, self.blk, p) + 1  # its spectrum's window and the block before it
        return max(super().history_blocks(), math.ceil(reach / self.blk) + 1, tremor)

    def start_filters(self, x0: FloatArray) -> None:
        self._lf_zi = np.ascontiguousarray(sps.sosfilt_zi(self._lf_sos)[None, :, :] * x0[:, None, None])
        self._ctx_zi = np.ascontiguousarray(sps.sosfilt_zi(self._ctx_sos)[None, :, :] * x0[:, None, None])

    def lane_power(self, y: FloatArray, out: FloatArray) -> None:
        out[:, 0] = np.einsum("ij,ij->i", y, y)

    def slow_stat(self, x: FloatArray, bx: FloatArray) -> FloatArray:
        assert self._lf_zi is not None
        assert self._ctx_zi is not None
        lf = np.array(x.T, order="C")
        ctx = lf.copy()
        sosfilt_inplace(self._lf_sos, lf, self._lf_zi)
        sosfilt_inplace(self._ctx_sos, ctx, self._ctx_zi)
        self._ctx_rms = self._block_rms(ctx, bx.shape[0])
        return self._block_rms(lf, bx.shape[0])

    def _block_rms(self, y: FloatArray, nb: int) -> FloatArray:
        # The sum over a block / blk is what ``mean`` computes, without its Python-level overhead.
        power = np.sum(y * y, axis=0).reshape(nb, self.blk).sum(axis=1) / self.blk
        out: FloatArray = np.sqrt(power)[:, None]
        return out

    def context_stat(self, slow: FloatArray) -> FloatArray:
        """Per block, the RMS of the 1–5 Hz band (``move_ctx_band_hz``): movement without the 0.3-Hz
        edge's slow ringing after a posture change or a step in the raw signal, which is no movement."""
        return self._ctx_rms

    def slow_threshold(self) -> FloatArray:
        return self._movement_thr

    def lane_channels(self, lane: int) -> slice:
        return slice(0, self.channels)

    def lanes_channels(self, lanes: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        return self._all_channels

    def saturation_limit(self, floor: float) -> float:
        return self.params.saturation_excursion

    def known_activity(self, c: Cluster) -> bool:
        """Also movement: a walk's cluster gathers slow activity, not a long core (``classify`` calls it
        sustained from ``movement_min_ms`` of it on)."""
        return bool(c.long or c.slow_blocks * self.blk * 1e3 / self.rate >= self.params.movement_min_ms)

    def classify(self, f: Features) -> Verdict:
        c, prm = f.cluster, self.params
        ms = c.core_ms(self.rate)
        margin = c.peak_env / max(prm.on_factor * self.w * c.floor, 1e-300)
        sure = 1.0 - 0.5 / max(margin, 1.0) ** 2
        moving_ms = c.slow_blocks * self.blk * 1e3 / self.rate
        if c.saturated:
            return Verdict(EventKind.ARTIFACT, 0.95, "saturation")
        if c.peak > prm.artifact_amplitude:
            return Verdict(EventKind.ARTIFACT, 0.8, f"knock on the sensor ({c.peak:.1f} g)")
        if moving_ms >= prm.movement_min_ms:  # walking, a posture change
            return Verdict(
                EventKind.SUSTAINED, min(0.6 + moving_ms / 5000.0, 0.95), self._movement(moving_ms)
            )
        if c.long or ms > prm.jerk_max_ms:
            return Verdict(EventKind.SUSTAINED, min(0.6 + ms / 5000.0, 0.95), f"activity {format_span(ms)}")
        if f.in_train(prm.isolation_ms, prm.train_ratio):
            return Verdict(EventKind.SUSTAINED, 0.6, "train of transients")
        if f.busy(prm.busy_count, prm.busy_ratio):
            return Verdict(EventKind.SUSTAINED, 0.6, "among other transients")
        if f.context > 1.0:
            return Verdict(EventKind.SUSTAINED, 0.6, "activity before it")
        around = self.movement_around(c)
        if around is None and (f.previous_kind is None or not f.previous_kind.is_twitch):
            # Nothing still before it to judge from: the stream's start, or the settle after other
            # activity (a shift of weight's swing rings on). A twitch comes out of stillness; this did not.
            after = "the start" if f.previous_kind is None else "other activity"
            return Verdict(EventKind.SUSTAINED, 0.5, f"no still time before it: right after {after}")
        if around is not None and around > self._move_ctx_threshold():
            return Verdict(EventKind.SUSTAINED, 0.6, f"movement before it ({around:.3f} g)")
        if (hz := c.dominant_hz(self.rate)) > prm.muscle_max_hz:  # the sensor's own ring
            why = f"impact on the sensor ({hz:.0f} Hz, faster than a muscle)"
            return Verdict(EventKind.ARTIFACT, 0.7, why)
        if c.peak > prm.twitch_max_amplitude:  # beyond a twitch: a jerk only if the limb moved with it
            if hz > prm.limb_max_hz and self.limb_motion(c) < prm.limb_motion_ratio * c.peak:
                why = f"impact on the sensor ({c.peak:.2f} g, the limb still)"
                return Verdict(EventKind.ARTIFACT, 0.7, why)
            return Verdict(EventKind.MYOCLONIC_JERK, sure * 0.9)
        if c.slow_blocks or ms > prm.fasc_max_ms:
            return Verdict(EventKind.MYOCLONIC_JERK, sure * 0.9)
        return Verdict(EventKind.FASCICULATION, sure * 0.9)

    def epoch_end(self, slow: FloatArray) -> None:
        """The 1–5 Hz band's resting level: it follows an epoch's RMS quickly down and only slowly up
        (``move_rest_rise_s``, geometrically), so it stays where the wearer was still, not where they
        stood swaying or walked."""
        k = self._block % self._ring_n  # the epoch just written: the ring's rows before k (whole epochs)
        ctx = self._ring_slow[k - self.epoch if k else self._ring_n - self.epoch : k or self._ring_n, 0]
        level = max(float(np.sqrt(np.mean(ctx * ctx))), 1e-6)
        self._move_rest_before, self._move_rest_since = self._move_rest, self._block
        if self._move_rest < 0:
            self._move_rest = level
        rate = self._move_fall if level < self._move_rest else self._move_rise
        # In the log domain: a jump or a fall (g, not milli-g) moves it by a few per cent, not for good.
        self._move_rest *= math.exp(rate * math.log(level / self._move_rest))
        if self._tremor.on:
            rows = self._block - self.epoch + np.arange(self.epoch)
            self._moving[rows % self._ring_n] = slow[:, 0] > self.params.movement_g
            self._watch_tremor()

    def _watch_tremor(self) -> None:
        """At an epoch's end: the tremor's spectrum over the last ``tremor_window_s`` of raw block means,
        without the blocks around twitches, jerks and movement (``TremorWatch.differences``). A lane in a
        tremor is open activity while it lasts, reported in pieces of at most ``noisy_piece_s`` as artifacts
        that veto exactly their span (as a noisy background): a tremor is the muscles' rhythmic activity, not
        a muscle at rest, and its swings pass the twitch thresholds, which are set for a background of
        noise."""
        now, tw = self._block, self._tremor
        start = now - tw.n - 1
        if start < 0:
            return
        rows = np.arange(start, now) % self._ring_n
        window = tw.differences(self._ring_bx[rows], self._moving[rows])
        samples = now * self.blk
        if window is not None:
            self._tremor_skips = 0
            tremor = tw.update(*window)
            if tremor is not None:
                self._tremor_last = tremor[1:]
        else:  # mostly movement or events: nothing to learn the background from
            self._tremor_skips += 1
            if self._tremor_skips >= tw.keep:  # for as long as the spectra reach back: start anew
                tw.forget()
                self._tremor_since, self._tremor_run = None, 0
                if self._tremor_from is not None:  # a walk or a gesture ends it (and vetoes by itself)
                    self._end_tremor(samples)
                return
            if self._tremor_from is None:  # a run towards a tremor waits (``settled`` held back)
                return
            tremor = (self.params.tremor_share, *self._tremor_last)  # goes on: only its pieces are cut
        share = 0.0 if tremor is None else tremor[0]
        if self._tremor_from is None:
            if tw.count < tw.keep:  # too few spectra yet to say (the stream's start: held from its warm-up)
                return
            if share < self.params.tremor_share:
                self._tremor_since, self._tremor_run = None, 0
                return
            if self._tremor_since is None:  # nothing settled past here yet (``settled`` ≤ its end − delay)
                self._tremor_since = max(samples - self.delay, 0)
            self._tremor_run += 1
            if self._tremor_run < self._tremor_need:
                return
            self._tremor_from, self._tremor_since, self._tremor_run = self._tremor_since, None, 0
            self._tremor_seen = self._tremor_last
        assert self._tremor_from is not None
        low = share < 0.5 * self.params.tremor_share
        if low and self._tremor_low is not None:  # low for a second epoch in a row: over, from the first
            self._end_tremor(self._tremor_low)
            return
        self._tremor_low = samples if low else None
        if not low and self._tremor_last[0] > self._tremor_seen[0]:
            self._tremor_seen = self._tremor_last
        while samples + self.epoch * self.blk - self._tremor_from > self._tremor_piece:  # the next: too long
            cut = min(self._tremor_from + self._tremor_piece, samples)
            self._report_tremor(self._tremor_from, cut)
            self._tremor_from, self._tremor_seen = cut, self._tremor_last

    def _end_tremor(self, end: int) -> None:
        """The tremor is over at sample ``end``: its last piece, unless empty."""
        assert self._tremor_from is not None
        if end > self._tremor_from:
            self._report_tremor(self._tremor_from, end)
        self._tremor_from = self._tremor_low = None

    def _report_tremor(self, start: int, end: int) -> None:
        """A piece of tremor, [start, end) in samples of the raw signal (its spectrum is of the raw block
        means: no band-pass delay): an artifact that vetoes exactly its span."""
        rms, hz = self._tremor_seen
        why = f"tremor at {hz:.1f} Hz ({rms * 1e3:.0f} milli-g): rhythmic muscle activity, not at rest"
        span = (start, max(end, start + 1))
        det = Detection(0, *span, rms, EventKind.ARTIFACT, 0.9, round(hz, 1), why, True, span)
        self._epoch_reports.append(det)

    def open_activity(self) -> list[tuple[int, int, int]]:
        out = super().open_activity()
        if self._tremor_from is not None:  # a tremor, while it lasts
            out.append((0, self._tremor_from, max(self._block * self.blk, self._tremor_from + 1)))
        return out

    def settled(self) -> int:
        """Not past a tremor going on, nor past where one may have begun (``_tremor_since``)."""
        done = super().settled()
        for start in (self._tremor_from, self._tremor_since):
            if start is not None:
                done = min(done, start)
        return done

    def finish(self) -> list[Detection]:
        out = super().finish()
        if self._tremor_from is not None:
            self._end_tremor(self._block * self.blk if self._tremor_low is None else self._tremor_low)
            out += self._epoch_reports
            self._epoch_reports = []
        return out

    def _move_ctx_threshold(self) -> float:
        """Against the resting level as it was at the decision block of the cluster being decided (it is
        decided by the end of the segment that writes that block: at most one epoch's end later), not as
        far as the stream happens to be written."""
        before = self.decision_block() < self._move_rest_since
        rest = self._move_rest_before if before else self._move_rest
        return max(self.params.move_ctx_g, self.params.move_ctx_factor * rest)

    def movement_around(self, c: Cluster, lane: int = 0) -> float | None:
        """RMS of the 1–5 Hz band (g) over ``move_ctx_ms`` before a transient: a muscle twitch comes out of
        stillness; a shift of weight, a step or the start of a gesture moves the body first. Not through
        the transient (its own leakage, a jerk's swing), nor in the ``move_ctx_settle_ms`` after the
        previous event, whose swing the band is still ringing with. Within the history the ring holds when
        the transient is decided (``LaneEngine.ring_from``: bounded by its own decision block). None when
        none of that time is left to judge from: the transient starts within the settle after the
        previous event, or the stream's start."""
        blk = self.blk
        k1 = max(c.start // blk, 0)
        after_prev = -(-(self._prev_end[lane] + self._move_ctx_settle) // blk)
        k0 = max(k1 - self._move_ctx_blocks, self.ring_from(), after_prev, 0)
        if k1 <= k0:
            return None
        v = self._ring_slow[np.arange(k0, k1) % self._ring_n, 0]
        return float(np.sqrt(np.mean(v * v)))

    def limb_motion(self, c: Cluster) -> float:
        """The largest block RMS of the 1–5 Hz band (g) from a transient's start to the end of its hold:
        how far the limb moved with it. A myoclonic jerk swings the limb (most of its acceleration lies
        below 10 Hz); a tap on the sensor or a twitch rings above the band and leaks into it only through
        its own sampled spectrum. Within the blocks written by the cluster's decision block and still in
        the ring (as ``movement_around``), whatever the chunking."""
        blk = self.blk
        k0 = max(c.start // blk, self.ring_from())
        k1 = min(-(-(c.end + self.spans.hold) // blk), self.decision_block())
        if k1 <= k0:
            return 0.0
        return float(np.max(self._ring_slow[np.arange(k0, k1) % self._ring_n, 0]))

    def _movement(self, moving_ms: float) -> str:
        lo, hi = self.params.movement_band_hz
        return f"movement {lo:g}–{hi:g} Hz {moving_ms / 1000.0:.1f} s"


_GUARD = 2  # blocks each side of a loud block left out of the tremor's spectrum
_OUTLIER = 3.0  # a difference of block means this many times the window's median is an event's, left out
_any = np.logical_or.reduce  # without ndarray.any()'s Python-level wrapper (``processing.core``)


def _middle(a: FloatArray) -> float:
    """The median of a 1-D array (its upper middle value for an even length), by partition: ``np.median``
    costs several times more on a few dozen values."""
    k = a.size // 2
    return float(np.partition(a, k)[k])


def tremor_window(rate: float, blk: int, params: DetectorParams) -> int:
    """Blocks in the tremor's spectral window (``tremor_window_s``; at least 16)."""
    return max(16, round(params.tremor_window_s * rate / blk))


class TremorWatch:
    """A lane's tremor, from its raw block means (docs/detection.md, "Tremor"): each epoch the periodogram
    of the last ``tremor_window_s`` of them (first differences, so gravity and slow posture drop out; Hann
    window; the three axes' powers summed; corrected for the difference's gain, so white noise is flat),
    and per frequency the median of the last ``tremor_tau_s`` of periodograms: a tremor goes on through all
    of them, a jerk's or a gesture's swing is in two or three. The flat background's density is the median
    over ``tremor_band_hz``'s low edge to 0.45 × the block rate (the block means of white noise are white: the
    same density as the samples'); the tremor is the excess over it in ``tremor_band_hz`` where its peak is at
    least ``tremor_peak_ratio`` × the flat density, and its share is what the detection band passes of that
    excess, over that plus what it passes of the flat background (the flat density over its whole band).
    Picklable: arrays and numbers."""

    def __init__(self, rate: float, blk: int, epoch: int, sos: FloatArray, params: DetectorParams) -> None:
        self.on = params.tremor_share > 0
        self.n = n = tremor_window(rate, blk, params)
        fb = rate / blk
        self._win = np.hanning(n)
        f = np.fft.rfftfreq(n, 1.0 / fb)
        diff_gain = 4.0 * np.sin(np.pi * f / fb) ** 2  # |1 - e^{-jω}|²: what differencing did to the power
        self._density = np.zeros_like(f)  # × |FFT|² / Σ weights²: one-sided density, g²/Hz
        self._density[1:] = 2.0 / fb / diff_gain[1:]
        self._guard = np.ones(2 * _GUARD + 1)
        self._energy = float(np.sum(self._win**2))
        lo, hi = params.tremor_band_hz
        top = 0.45 * fb
        self._f = f
        self._peak_bins = ((f >= lo) & (f <= min(hi, top))).nonzero()[0]
        self._flat_bins = ((f >= lo) & (f <= top)).nonzero()[0]
        self._df = float(f[1])
        _, h = sps.sosfreqz(sos, worN=f, fs=rate)
        self._band = np.abs(h) ** 2  # what the detection band passes, per bin
        grid, hh = sps.sosfreqz(sos, worN=2048, fs=rate)
        self._flat_band = float(np.sum(np.abs(hh) ** 2) * (grid[1] - grid[0]))  # ∫|H|² df: a flat density's
        self._ratio = params.tremor_peak_ratio
        # Periodograms kept (one an epoch): tremor_tau_s of them, at least five.
        self.keep = max(5, round(params.tremor_tau_s * rate / (epoch * blk)))
        self._spectra = np.zeros((self.keep, f.size))
        self.count = 0  # periodograms since the start, or since the spectra were last forgotten

    def forget(self) -> None:
        """A walk or a gesture outlasted the spectra: they start anew once there is background again."""
        self.count = 0

    def differences(self, bx: FloatArray, moving: BoolArray) -> tuple[FloatArray, float] | None:
        """The window's weighted differences of block means (n × 3), from its blocks' means (n + 1 × 3 axes,
        raw) and movement flags (n + 1): the Hann window, zero within ``_GUARD`` blocks of movement or of a
        difference over ``_OUTLIER`` × the window's median — a walk, a twitch or a jerk is no part of the
        background, and a tremor's own swings stay within a few times their median; None when that leaves
        less than half of the window. With the weights' energy (Σ w²), which scales the periodogram."""
        d = bx[1:] - bx[:-1]
        size = np.sqrt(np.sum(d * d, axis=1))
        loud = np.zeros(bx.shape[0], dtype=bool)
        loud[1:] = size > _OUTLIER * _middle(size)
        loud |= moving
        if not _any(loud):
            return d * self._win[:, None], self._energy
        near = np.convolve(loud, self._guard, mode="same") > 0
        keep = ~(near[1:] | near[:-1])
        if 2 * int(np.count_nonzero(keep)) < keep.size:
            return None
        w = self._win * keep
        return d * w[:, None], float(np.sum(w * w))

    def update(self, d: FloatArray, energy: float) -> tuple[float, float, float] | None:
        """The window's weighted differences (``differences``): the tremor's share of the detection band's
        background, its amplitude (g RMS, the excess) and frequency (Hz, the excess's centroid); None while
        fewer than ``keep`` periodograms are there, or without a peak."""
        spec = np.fft.rfft(d, axis=0)
        power = np.sum(spec.real**2 + spec.imag**2, axis=1) * self._density
        self._spectra[self.count % self.keep] = power / energy
        self.count += 1
        if self.count < self.keep:
            return None
        psd = np.partition(self._spectra, self.keep // 2, axis=0)[self.keep // 2]  # per bin, the middle
        flat = _middle(psd[self._flat_bins])
        peak = psd[self._peak_bins]
        if flat <= 0.0 or float(np.max(peak)) < self._ratio * flat:
            return None
        excess = np.maximum(peak - flat, 0.0)
        total = float(np.sum(excess))
        passed = float(np.sum(excess * self._band[self._peak_bins])) * self._df
        share = passed / (passed + flat * self._flat_band)
        hz = float(np.sum(excess * self._f[self._peak_bins])) / total
        return share, math.sqrt(total * self._df), hz
