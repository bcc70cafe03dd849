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

    def history_blocks(self) -> int:
        """Enough for ``movement_around`` of the latest-decided transient that can still be a twitch: the
        look-back before it, the transient with movement in it short of ``movement_min_ms`` and its core up
        to ``jerk_max_ms``, then the slow gap and hold that close it. With the shared ring alone (1.5 s at
        50-100 Hz) such a transient's look-back had been overwritten by its decision and read as stillness."""
        p, sp = self.params, self.spans
        ms = p.move_ctx_ms + p.movement_min_ms + p.jerk_max_ms
        reach = ms * 1e-3 * self.rate + sp.slow_gap + sp.hold
        return max(super().history_blocks(), math.ceil(reach / self.blk) + 1)

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
