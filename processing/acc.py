"""Accelerometer (mechanomyography) specifics: defaults, movement gating, classification.

Gravity and posture sit below the twitch band and are removed by its high-pass; gross movement (walking,
a posture change) is measured in its own low band and, when it lasts, turns everything around it into
activity (``EventKind.SUSTAINED``) so steps and turns are never counted as twitches.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from processing.core import Cluster, DetectorParams, Features, FloatArray, LaneEngine, sosfilt_inplace
from processing.events import EventKind


def acc_params(sample_rate: float) -> DetectorParams:
    """Accelerometer, 25–416 Hz: twitch band 5 Hz to min(100 Hz, 0.45·fs)."""
    return DetectorParams(
        band_hz=(5.0, min(100.0, 0.45 * sample_rate)),
        smooth_ms=20.0,
        on_factor=12.0,
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
        report_margin=1.0,  # the onset threshold (12×) already sits beyond Gaussian noise's tail
        artifact_amplitude=1.0,  # g: a knock on the sensor, not a muscle
        saturation_excursion=0.5,  # g
        movement_band_hz=(0.3, min(5.0, 0.12 * sample_rate)),  # 3 Hz at 25 Hz: clear of twitch ringing
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
    )


class AccEngine(LaneEngine):
    dof_per_sample = 3

    def __init__(self, sample_rate: float, channels: int, params: DetectorParams) -> None:
        super().__init__(sample_rate, channels, 1, params)
        self._lf_sos = sps.butter(2, params.movement_band_hz, btype="bandpass", fs=sample_rate, output="sos")
        self._lf_zi: FloatArray | None = None
        self._all_channels = np.arange(channels)
        self._movement_thr = np.full(1, params.movement_g)  # read only: shared, not rebuilt per epoch

    def start_filters(self, x0: FloatArray) -> None:
        self._lf_zi = np.ascontiguousarray(sps.sosfilt_zi(self._lf_sos)[None, :, :] * x0[:, None, None])

    def lane_power(self, y: FloatArray, out: FloatArray) -> None:
        out[:, 0] = np.einsum("ij,ij->i", y, y)

    def slow_stat(self, x: FloatArray, bx: FloatArray) -> FloatArray:
        assert self._lf_zi is not None
        lf = np.array(x.T, order="C")
        sosfilt_inplace(self._lf_sos, lf, self._lf_zi)
        nb = bx.shape[0]
        # The sum over a block / blk is what ``mean`` computes, without its Python-level overhead.
        power = np.sum(lf * lf, axis=0).reshape(nb, self.blk).sum(axis=1) / self.blk
        out: FloatArray = np.sqrt(power)[:, None]
        return out

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

    def classify(self, f: Features) -> tuple[EventKind, float]:
        c, prm = f.cluster, self.params
        ms = c.core_ms(self.rate)
        margin = c.peak_env / max(prm.on_factor * self.w * c.floor, 1e-300)
        sure = 1.0 - 0.5 / max(margin, 1.0) ** 2
        moving_ms = c.slow_blocks * self.blk * 1e3 / self.rate
        if c.saturated:
            return EventKind.ARTIFACT, 0.95
        if c.peak > prm.artifact_amplitude:
            return EventKind.ARTIFACT, 0.8  # a knock on the sensor
        if moving_ms >= prm.movement_min_ms:
            return EventKind.SUSTAINED, min(0.6 + moving_ms / 5000.0, 0.95)  # walking, a posture change
        if c.long or ms > prm.jerk_max_ms:
            return EventKind.SUSTAINED, min(0.6 + ms / 5000.0, 0.95)
        if f.in_train(prm.isolation_ms, prm.train_ratio) or f.busy(prm.busy_count, prm.busy_ratio):
            return EventKind.SUSTAINED, 0.6
        if f.context > 1.0:
            return EventKind.SUSTAINED, 0.6
        if c.slow_blocks or ms > prm.fasc_max_ms:
            return EventKind.MYOCLONIC_JERK, sure * 0.9
        return EventKind.FASCICULATION, sure * 0.9
