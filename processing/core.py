"""The streaming machinery both detectors share: filters, blocks, noise floor, hysteresis, clusters.

Per lane (an EMG channel, or an accelerometer's three axes together); docs/detection.md explains each step
and every parameter. Steps 1-4 and the release's classification are ``LaneEngine``'s (with the floor in
``NoiseFloor``); steps 5-7, pieces grown into clusters, are ``processing.clusters.ClusterAssembly``'s:

1. **Whole blocks only.** Input waits until a whole number of blocks (``block_ms``, aligned to the
   absolute sample index, never to chunk edges) is there; the rest waits for the next chunk.
2. **Band-pass** (Butterworth, 4th order per edge, optional mains notch) with its state carried across
   chunks and started in steady state on the first sample, so a DC offset (raw ADC counts, gravity)
   gives no start-up transient. The lane's **power** ``p`` is the squared band-passed signal (axes summed).
3. **Blocks**: per block the power sum, the largest smoothed power, and the signal's *slow statistic*
   (EMG: step of the raw block means; accelerometer: movement-band RMS).
4. **Epochs** of ``epoch_blocks`` blocks: thresholds are constant within an epoch; at its end the
   **noise floor** moves towards the mean power of the epoch's *quiet* blocks — no sample above the onset
   threshold, no event, no slow activity — quickly while they look like noise, slowly when louder, so it
   adapts only in quiet periods and neither a burst nor weak activity drags it up. The first ``warmup_s``
   learn it (a trimmed mean of the block powers) and detect nothing.
5. **Candidates**: only lanes with a sample above the onset threshold, an event in progress or slow
   activity are examined further, so quiet lanes cost a few vectorised operations per chunk.
6. **Hysteresis** on the power's moving sum over ``smooth_ms``: a *piece* starts above ``on_factor`` ×
   floor and ends below ``off_factor`` × floor; slow activity keeps a lane active block-wise.
7. **Clusters**: pieces closer than a gap join one event. The gap is ``hold_ms`` for twitch candidates;
   a cluster whose core passed ``jerk_max_ms`` bridges ``activity_gap_ms`` (and grows vectorised with the
   other such lanes), one with artifact-like slow activity ``slow_gap_ms`` — activity and artifacts are
   never counted, so they may wait longer to gather their fragments. A cluster is **released** at the
   first block boundary past its end + gap, and decided once the blocks its decision reads — the hold
   after its end — are written (its *decision block*, ``LaneEngine.release_cluster``), so a twitch leaves
   the detector at most ``hold_ms + block_ms`` of signal time after it ended; then the subclass
   classifies it from its core, fill, context, train and slow features.

Everything a detection carries is computed from the same samples in the same order whatever the chunking
(maxima, integer counts, sums over a piece's samples taken in one call, context from block statistics
fixed when the block is first seen), and a decision reads the history up to and back from its decision
block, never from how far the stream happens to be written, so the events are identical to the bit, and
come out in the same order, for any chunking; ``tests/test_detector.py`` samples chunkings with
hypothesis, ``tests/test_detector_chunking.py`` runs cases that once differed through many.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy import signal as sps

from twitchwatch.collector.signals import TwitchSignal
from twitchwatch.processing.bursts import BurstWatch
from twitchwatch.processing.clusters import Cluster, ClusterAssembly, Segment, Spans
from twitchwatch.processing.events import EventKind

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
SignalKind = TwitchSignal  # collector.signals: the kinds a twitch detector reads

# The ufuncs' reductions called directly: ``a.max()``, ``a.sum()``, ``a.all()`` reach the same reductions
# through Python-level wrappers that cost more than the reduction itself on a piece's or an epoch's values.
_max = np.maximum.reduce
_sum = np.add.reduce
_all = np.logical_and.reduce
_any = np.logical_or.reduce
_BEATS_KEPT = 256  # brief events a lane remembers for the heart's rhythm (a run spans at most 14 s)
_RING = 64  # blocks of history kept for context and baselines (> the longest look-back + one epoch)
_WORKS_KEPT = 3  # chunk lengths whose work buffers a detector keeps (a live stream cycles through 2-3)
_TAIL_MEDIAN = 5  # blocks (100 ms) whose median power tells a louder stretch from one potential


def _public_sosfilt(sos: FloatArray, y: FloatArray, zi: FloatArray) -> None:
    """Filter ``y`` (lanes × samples, C-contiguous) in place, carrying ``zi`` (lanes × sections × 2)."""
    out, zf = sps.sosfilt(sos, y, axis=1, zi=np.moveaxis(zi, 0, 1).copy())
    y[...] = out
    zi[...] = np.moveaxis(zf, 1, 0)


def _kernel() -> Callable[[FloatArray, FloatArray, FloatArray], None]:
    """scipy's compiled SOS kernel without the ~30 µs of argument handling ``sosfilt`` adds per call
    (which would otherwise dominate 100-ms chunks). It is private API, so it is used only if it is there
    and gives exactly what the public ``sosfilt`` gives; otherwise the public function is used."""
    try:
        from scipy.signal._sosfilt import _sosfilt
    except ImportError:  # pragma: no cover - depends on the scipy build
        return _public_sosfilt
    sos = sps.butter(2, (0.1, 0.3), btype="bandpass", output="sos")
    x = np.random.default_rng(0).normal(size=(2, 50))
    a, b = x.copy(), x.copy()
    za, zb = np.ones((2, 2, 2)), np.ones((2, 2, 2))
    try:
        _sosfilt(sos, a, za)
    except Exception:  # pragma: no cover - a changed private signature
        return _public_sosfilt
    _public_sosfilt(sos, b, zb)
    if np.array_equal(a, b) and np.array_equal(za, zb):
        return _sosfilt  # type: ignore[no-any-return]
    return _public_sosfilt  # pragma: no cover


sosfilt_inplace = _kernel()


@functools.lru_cache(maxsize=64)
def _butter(order: int, band: float | tuple[float, float], btype: str, fs: float) -> FloatArray:
    return np.ascontiguousarray(sps.butter(order, band, btype=btype, fs=fs, output="sos"), dtype=np.float64)


def butter_sos(order: int, band: float | tuple[float, float], btype: str, fs: float) -> FloatArray:
    """A Butterworth filter as second-order sections, designed once per design: building a detector is
    mostly filter design (~3 ms), and a worker builds hundreds at once — every stream when it starts, after
    a restart or a broker outage. A copy: no detector shares an array another could change."""
    return _butter(order, band, btype, fs).copy()


@functools.lru_cache(maxsize=64)
def band_sections(
    rate: float, band_hz: tuple[float, float], notch_hz: float | None, notch_q: float
) -> tuple[FloatArray, int]:
    """``band_design``'s cached result: shared, not to be written to."""
    nyq = rate / 2
    if band_hz[1] >= nyq:  # no low-pass edge: the device's anti-aliasing filter is the upper edge
        sos = _butter(4, band_hz[0], "highpass", rate)
    else:
        sos = _butter(4, band_hz, "bandpass", rate)
    if notch_hz is not None and notch_hz < 0.95 * nyq:
        b, a = sps.iirnotch(notch_hz, notch_q, fs=rate)
        sos = np.vstack([sos, sps.tf2sos(b, a)])
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    # Group delay at the band's (geometric) centre, in samples: subtracted from reported times.
    centre = math.sqrt(band_hz[0] * min(band_hz[1], 0.45 * rate))
    _, h = sps.sosfreqz(sos, worN=[centre * 0.99, centre * 1.01], fs=rate)
    phase = np.unwrap(np.angle(h))
    return sos, max(0, round(-(phase[1] - phase[0]) / (2 * math.pi * 0.02 * centre) * rate))


def band_design(rate: float, params: DetectorParams) -> tuple[FloatArray, int]:
    """The detector's band-pass (and mains notch) as second-order sections, and its group delay in samples
    (designed once per rate and band, as ``butter_sos``; the sections a copy)."""
    sos, delay = band_sections(rate, params.band_hz, params.notch_hz, params.notch_q)
    return sos.copy(), delay


@dataclass(frozen=True)
class DetectorParams:
    """Every tunable of a detector; ``processing.detector.default_params`` gives the defaults documented in
    docs/detection.md."""

    band_hz: tuple[float, float]  # detection band (Butterworth band-pass, 4th order per edge)
    smooth_ms: float  # moving-sum window of the power (matched to the shortest events)
    on_factor: float  # piece onset: moving mean of the power > on_factor × floor
    off_factor: float  # piece offset: moving mean of the power < off_factor × floor
    report_margin: float = 1.0  # a brief event is reported only if its peak power reaches this × onset
    notch_hz: float | None = None  # optional fixed mains notch (50 or 60 Hz; the fundamental only)
    notch_q: float = 5.0  # its quality factor: 10-Hz wide, so it rings for ~30 ms, not ~200 ms (Q = 30)
    # Mains interference found and subtracted per lane (``processing.mains``; EMG): the nominal mains
    # frequencies looked for (empty: off), how far off them the mains may be, the weakest line followed
    # (its power over the noise's at its frequency, dB), the window lines are found in, how often a lane
    # with lines is looked at again, and the time constant the lines' amplitude and phase follow.
    mains_hz: tuple[float, ...] = ()
    mains_tolerance_hz: float = 0.5
    mains_line_db: float = -6.0
    mains_window_s: float = 1.0
    mains_check_s: float = 30.0
    mains_tau_s: float = 0.2
    # A would-be twitch (or brief activity) around which at least this share of the energy repeats with the
    # mains period (over at least ``mains_event_ms``) is a burst of hum, not a potential (0: no such test).
    mains_share: float = 0.0
    mains_event_ms: float = 100.0
    block_ms: float = 20.0  # granularity of block statistics and of event release
    epoch_blocks: int = 5  # thresholds constant over an epoch; the floor updates at its end
    warmup_s: float = 1.0  # learn the floor before detecting
    floor_tau_s: float = 2.0  # time constant of the floor's adaptation in quiet periods
    floor_rise_tau_s: float = 30.0  # ... towards epochs > 1.5 × floor (weak activity must not become it)
    relearn_s: float = 20.0  # no quiet block for this long: the floor creeps up (noise really rose)
    hold_ms: float = 80.0  # twitch candidates: merge window and release delay after the end
    activity_gap_ms: float = 300.0  # clusters already longer than jerk_max_ms bridge dips this long
    slow_gap_ms: float = 400.0  # clusters with slow activity (artifact, movement) bridge this long
    context_ms: float = 1000.0  # sub-threshold activity is measured this long before a cluster
    context_factor: float = 1.5  # ... and counts as activity above this × floor (power)
    post_context_factor: float = 2.5  # the hold after it (only 40 ms: noisy) counts above this × floor
    busy_count: int = 3  # this many clusters began on the lane within context_ms before: activity
    busy_ratio: float = 0.0  # ... counting only those whose peak reached this × its own (0: all)
    context_guard_ms: float = 40.0  # ... clear of the event's own rise and tail through the filter
    isolation_ms: float = 300.0  # a cluster starting this soon after the last one continues activity
    train_ratio: float = 2.0  # ... if their peaks are within this factor of each other (2: 6 dB)
    core_db: float = 10.0  # a piece's core: samples within this of its peak power (and above onset)
    fasc_max_ms: float = 35.0  # a fasciculation's core lasts at most this
    jerk_max_ms: float = 250.0  # a myoclonic jerk's core lasts at most this; longer is activity
    jerk_fill: float = 0.25  # a jerk is a dense burst: at least this fraction of its core above onset
    slow_on: float = 15.0  # EMG: the slow statistic above slow_on × its floor marks slow activity
    slow_ratio: float = 0.6  # EMG: artifact when the slow excursion exceeds this × band peak ...
    slow_min: float = 8.0  # ... and this × the noise RMS
    lowpass_ms: float = 40.0  # EMG: the slow excursion is the raw signal's moving mean over this
    artifact_amplitude: float = float("inf")  # peaks above this (physical units) are artifacts
    # acc: a tremor (``AccEngine``, docs/detection.md "Tremor"): a peak in ``tremor_band_hz`` of the raw
    # block means' spectrum (``tremor_window_s`` windows each epoch, per frequency the median over
    # ``tremor_tau_s``) at least ``tremor_peak_ratio`` × the flat background's density, whose excess passed by
    # the detection band is at least ``tremor_share`` of the band's background for ``tremor_min_s`` (over
    # below half that), makes the lane not assessable.
    tremor_share: float = 0.0  # 0: off
    tremor_band_hz: tuple[float, float] = (3.0, 12.0)
    tremor_peak_ratio: float = 3.0
    tremor_window_s: float = 1.28
    tremor_tau_s: float = 4.0
    tremor_min_s: float = 5.0
    # acc: a muscle's twitch transient is at most this large (g); a larger brief event is a jerk if the limb
    # moved with it — its 1–5 Hz movement band reached ``limb_motion_ratio`` × its peak, or its RMS
    # frequency is at most ``limb_max_hz`` — else an impact on the sensor. And no muscle's mechanical
    # transient is faster than ``muscle_max_hz`` (its RMS frequency).
    twitch_max_amplitude: float = float("inf")
    limb_motion_ratio: float = 0.0
    limb_max_hz: float = 0.0
    muscle_max_hz: float = float("inf")
    saturation_ms: float = 5.0  # flat run at the extreme at least this long (≥ 3 samples): saturation
    saturation_excursion: float = 50.0  # ... this far from the baseline (EMG: × noise RMS; acc: g)
    movement_band_hz: tuple[float, float] = (0.3, 5.0)  # acc: gross movement band
    movement_g: float = 0.05  # acc: movement when the movement-band RMS exceeds this (g)
    movement_min_ms: float = 400.0  # acc: movement this long is activity (shorter: part of a jerk)
    move_ctx_band_hz: tuple[float, float] = (1.0, 5.0)  # acc: the band movement before a transient is seen in
    move_ctx_ms: float = 500.0  # acc: a transient with movement this long before it ...
    move_ctx_settle_ms: float = 300.0  # ... (not counting this long after the previous event) ...
    move_ctx_g: float = 0.008  # ... of at least this RMS (g) in the 1–5 Hz band ...
    move_ctx_factor: float = 2.0  # ... and this × the band's resting level is movement, not a twitch
    move_rest_rise_s: float = 60.0  # acc: the resting level follows louder movement this slowly
    store_s: float = 2.0  # a piece's first store_s seconds give its frequency and saturation
    cross_lane_ms: float = 0.0  # other lanes' activity is looked for this long before a cluster (0: never)
    cross_lane_share: float = 0.25  # ... and this share of the other lanes (at least one) is activity
    # EMG: a would-be twitch must also pass a matched filter (a bank of Gaussian-derivative potentials of
    # these widths, σ in ms; empty: none) at ``matched_on`` × the floor (its normalised output power).
    matched_widths_ms: tuple[float, ...] = ()
    matched_orders: tuple[int, ...] = (1, 2)
    matched_on: float = 0.0
    matched_noise_ms: float = 500.0  # the background's colour is measured this long before a candidate
    # ... and is not a potential where a monophasic pulse of whole samples up to this long explains it
    # better (0: no such test)
    matched_spike_ms: float = 0.0
    # The background's own tail (``LaneEngine._update_tail``; 0: off): thresholds rise by the ratio of the
    # level the background's modelled tail passes this many times a minute to Gaussian noise's.
    tail_rate_per_min: float = 0.0
    tail_probs: tuple[float, float] = (0.1, 0.02)  # bulk levels: Gaussian noise's blocks above them
    tail_tau_s: float = 60.0  # memory of the bulk counts
    tail_min_s: float = 5.0  # time below the threshold needed before the tail is trusted
    tail_tolerance: float = 1.1  # the estimate's scatter on Gaussian noise: no rise within it
    tail_max: float = 4.0  # thresholds rise at most this many times
    tail_after_activity_s: float = 2.0  # quiet blocks this soon after activity on the lane do not count
    # The heart's rhythm (``LaneEngine._heart_rhythm``): a would-be twitch that ends a run of this many brief
    # events (itself included) at a heart rate in this range, each interval within ``heart_tolerance`` of
    # the next (one missed beat allowed), is a heartbeat — ECG picked up by an electrode on the trunk, the
    # shoulder or the upper arm, or the chest wall's vibration under an accelerometer — not a twitch
    # (0 beats: off).
    heart_beats: int = 6
    heart_bpm: tuple[float, float] = (30.0, 200.0)
    heart_tolerance: float = 0.10
    heart_peak_ratio: float = 1.5
    # Rhythmic or dense bursting (``processing.bursts``; 0 s: off): an event that ends a run of
    # ``burst_rhythm_intervals`` intervals at a 3–12-Hz period (``burst_hz``) varying by at most
    # ``burst_rhythm_cv``, or ``burst_short_count`` intervals shorter than ``burst_short_s`` in a bout (no
    # ``burst_pause_s`` without an event) within the last ``burst_window_s``, is tremor or voluntary
    # activity: a brief one vetoes the run's time exactly, back to its first burst.
    burst_window_s: float = 0.0
    burst_hz: tuple[float, float] = (3.0, 12.0)
    burst_rhythm_intervals: int = 6
    burst_rhythm_cv: float = 0.3
    burst_short_s: float = 0.4
    burst_short_count: int = 12
    burst_pause_s: float = 1.0
    # A noisy background (``LaneEngine._check_background``): a lane whose floor has risen this many times
    # (power) above its quiet level — the lowest it has been, which follows a louder background only over
    # ``quiet_rise_s`` — cannot show the twitches it showed before (10: 10 dB, a 20-dB twitch at 10 dB is
    # mostly missed), so it is not assessable: an artifact in pieces of at most ``noisy_piece_s`` (0: off).
    noisy_factor: float = 10.0
    quiet_rise_s: float = 1800.0
    noisy_piece_s: float = 10.0

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ValueError(f"band_hz must be 0 < low < high, got {self.band_hz}")
        if self.on_factor <= self.off_factor or self.off_factor <= 0:
            raise ValueError("need on_factor > off_factor > 0")
        if self.epoch_blocks < 1 or self.block_ms <= 0 or self.smooth_ms <= 0:
            raise ValueError("block_ms, smooth_ms and epoch_blocks must be positive")
        if any(not f > 0 for f in self.mains_hz) or self.mains_tolerance_hz < 0:
            raise ValueError("mains_hz must be positive frequencies, mains_tolerance_hz ≥ 0")
        if self.mains_hz and not (
            self.mains_tau_s > 0 and self.mains_check_s > 0 and self.mains_window_s > 0
        ):
            raise ValueError("mains_tau_s, mains_check_s and mains_window_s must be positive")

    def spans(self, sample_rate: float) -> Spans:
        """What cluster assembly measures with at ``sample_rate`` (``processing.clusters.Spans``)."""
        hold = round(self.hold_ms * 1e-3 * sample_rate)
        return Spans(
            rate=sample_rate,
            hold=hold,
            activity_gap=max(hold, round(self.activity_gap_ms * 1e-3 * sample_rate)),
            slow_gap=max(hold, round(self.slow_gap_ms * 1e-3 * sample_rate)),
            jerk_max=round(self.jerk_max_ms * 1e-3 * sample_rate),
            jerk_max_ms=self.jerk_max_ms,
            store_cap=max(2, round(self.store_s * sample_rate)),
            sat_run=max(3, round(self.saturation_ms * 1e-3 * sample_rate)),
            core_ratio=10 ** (-self.core_db / 10),
            off_ratio=self.off_factor / self.on_factor,
        )


@dataclass(frozen=True)
class Detection:
    """An event in sample indices from the detector's first sample (``end`` exclusive)."""

    lane: int
    start: int
    end: int
    peak: float  # physical units (largest |band-passed| sample; accelerometer: vector magnitude)
    kind: EventKind
    confidence: float  # 0..1
    dominant_hz: float = 0.0  # power-weighted RMS frequency of the band-passed event
    # Why an event that is not a twitch is not one ("train of similar potentials", "movement 0.3–5 Hz
    # 0.8 s", "saturation" …); "" for twitches. The worker copies it into ``TwitchEvent.reason``.
    reason: str = ""
    # Whether it shows that the muscle could not be assessed around it (activity, movement, an artifact),
    # so the rest gate vetoes that time. Not a potential rejected only as one small unit's repeat (a train
    # of its potentials, a lane busy with it): another unit's twitch would still stand out there.
    vetoes: bool = False
    # Where it vetoes, [start, end) in samples, exactly — for an event that shows activity only in the
    # windows it was judged on (a brief potential turned down for the activity around it): no onset or end
    # of a contraction was seen, so the gate's guards, which model those, do not apply; every later
    # potential's own surroundings are judged anew. None: the event's span, with the gate's guards.
    veto_span: tuple[int, int] | None = None

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Verdict:
    """What classification decided for a cluster: its kind, how sure, and (not a twitch) why."""

    kind: EventKind
    confidence: float
    reason: str = ""
    vetoes: bool | None = None  # None: every event that is not a twitch vetoes (``Detection.vetoes``)
    span: tuple[int, int] | None = None  # what it reports [start, end) if not the cluster's own
    guarded: bool = True  # False: it vetoes only its context window and hold (``Detection.veto_span``)
    exact: bool = False  # True: it vetoes exactly its own span (interference over it, nothing around it)


def format_span(ms: float) -> str:
    """A duration for a reason: ms below a second, else seconds."""
    return f"{ms:.0f} ms" if ms < 1000.0 else f"{ms / 1000.0:.1f} s"


SAME_SHAPE = 0.7  # normalised correlation above which two potentials are taken for one unit's


def same_shape(a: FloatArray, b: FloatArray, max_lag: int) -> bool:
    """Do two waveforms (equal length, centred on their peaks) match: a normalised cross-correlation of
    at least ``SAME_SHAPE`` at some lag within ±``max_lag`` samples, same polarity? One motor unit's
    potential repeats nearly unchanged (two noisy copies at 14 dB still correlate ≈ 0.8 over ±5 ms);
    another unit's, or a noise spike, rarely matches a wider potential's phases."""
    n = a.shape[0]
    energy = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if energy <= 0.0:
        return False
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[: n - lag]) if lag >= 0 else (a[: n + lag], b[-lag:])
        if float(np.dot(x, y)) >= SAME_SHAPE * energy:
            return True
    return False


@dataclass(slots=True)
class Features:
    """What classification sees when a cluster is released."""

    cluster: Cluster
    context_post: float  # sub-threshold power after it, × floor
    context: float  # the larger of before/after over its threshold: above 1 is activity around it
    since_previous_ms: float  # from the previous cluster's end on this lane (inf if none)
    previous_kind: EventKind | None
    previous_peak: float  # the previous cluster's peak (0 if none, -1 right after the warm-up)
    # Whether it has the previous cluster's waveform (``LaneEngine.waveform``); None where either could
    # not be compared (too few samples per potential, an event too long to be one potential).
    same_shape: bool | None = None
    lane: int = 0
    hold_blocks: tuple[int, int] = (0, 0)  # the whole blocks of its hold after it: [first, last)

    def in_train(self, isolation_ms: float, similar: float = 2.0) -> bool:
        """Soon after a cluster of similar size (peaks within a factor ``similar``) and, where it can be
        told, of the same shape: the same motor unit firing again, i.e. a train of voluntary (or cramp)
        activity rather than an isolated twitch."""
        if self.since_previous_ms >= isolation_ms:
            return False
        if self.previous_peak < 0:  # the stream's start: whatever came before is unknown
            return True
        ratio = self.previous_peak / max(self.cluster.peak, 1e-300)
        return 1.0 / similar <= ratio <= similar and self.same_shape is not False

    def busy(self, count: int, ratio: float = 0.0) -> bool:
        """At least ``count`` clusters began on the lane within ``context_ms`` before it, counting those
        whose peak reached ``ratio`` × its own."""
        floor = ratio * self.cluster.peak
        return sum(p >= floor for p in self.cluster.recent) >= count


class NoiseFloor:
    """Per lane, the noise floor (mean power per sample) and the slow statistic's floor, learnt from the
    warm-up and then from each epoch's quiet blocks (docs/detection.md, "The streaming core", step 4).

    Towards the epoch's quiet mean with time constant ``floor_tau_s`` while it looks like noise, only
    ``floor_rise_tau_s`` towards epochs clearly louder (beyond ``rise`` × the floor: weak activity below the
    onset must not become the floor); from epochs at least half quiet; a lane never quiet for ``relearn_s``
    creeps towards its quietest block."""

    def __init__(
        self, lanes: int, epoch: int, blk: int, epoch_s: float, p: DetectorParams, rise: float
    ) -> None:
        self.epoch, self.blk = epoch, blk
        self.rise = rise  # beyond this × the floor an epoch is clearly louder than noise
        self._alpha = 1.0 - math.exp(-epoch_s / p.floor_tau_s)
        self._alpha_up = 1.0 - math.exp(-epoch_s / p.floor_rise_tau_s)
        self._relearn_epochs = max(1, round(p.relearn_s / epoch_s))
        self._inv_epoch = 1.0 / epoch  # mostly_quiet in a fully quiet epoch (``update_quiet``)
        self._quiet_scale = self._inv_epoch / blk
        self.floor = np.zeros(lanes)
        self.slow = np.zeros(lanes)
        self._loud_epochs = np.zeros(lanes, dtype=np.int64)

    def learn(self, bm: FloatArray, slow: FloatArray) -> None:
        """The warm-up's block power sums and slow statistics: a trimmed mean (bursts in the first second,
        blocks above 3 × the median, do not count) and a median."""
        blocks = bm / self.blk
        med = np.median(blocks, axis=0)
        keep = blocks <= 3.0 * med
        self.floor = (blocks * keep).sum(axis=0) / np.maximum(keep.sum(axis=0), 1)
        self.slow = np.median(slow, axis=0)

    def update_quiet(self, epoch_bm: FloatArray, epoch_slow: FloatArray) -> None:
        """``update`` for an epoch quiet on every lane (usual with few lanes), in half the array operations
        and bit for bit the same: every lane has nq = epoch quiet blocks, so ``mostly_quiet`` is 1/epoch
        everywhere, ``bm × q`` is ``bm``, the rates are multiplied by 1 and no lane is loud."""
        target = _sum(epoch_bm, axis=0) * self._quiet_scale
        self.floor += np.where(target > self.rise * self.floor, self._alpha_up, self._alpha) * (
            target - self.floor
        )
        slow_target = _sum(epoch_slow, axis=0) * self._inv_epoch
        self.slow += self._alpha * (slow_target - self.slow)
        self._loud_epochs[:] = 0

    def update(self, epoch_bm: FloatArray, epoch_slow: FloatArray, q: BoolArray) -> None:
        """An epoch's block power sums, slow statistics and quiet flags (blocks × lanes)."""
        nq = _sum(q, axis=0, dtype=np.intp)
        mostly_quiet = (2 * nq >= self.epoch) / np.maximum(nq, 1)  # learn only from mostly quiet epochs
        target = _sum(epoch_bm * q, axis=0) * (mostly_quiet / self.blk)
        # Symmetric while the epoch looks like noise; up slowly when it is clearly louder (beyond four
        # standard deviations of an epoch of noise), so weak activity does not become the floor.
        learns = mostly_quiet > 0
        a = np.where(target > self.rise * self.floor, self._alpha_up, self._alpha) * learns
        self.floor += a * (target - self.floor)
        slow_target = _sum(epoch_slow * q, axis=0) * mostly_quiet
        self.slow += self._alpha * learns * (slow_target - self.slow)
        self._loud_epochs = (self._loud_epochs + 1) * (nq == 0)
        if _max(self._loud_epochs) >= self._relearn_epochs:  # never quiet: creep to the quietest block
            stuck = self._loud_epochs >= self._relearn_epochs
            low = epoch_bm.min(axis=0) / self.blk
            self.floor = np.where(stuck, self.floor + self._alpha_up * (low - self.floor), self.floor)


def _beat_before(beats: Sequence[int], at: int, period: float, tol: float) -> int | None:
    """The latest of ``beats`` (ascending) one ``period``, within ``tol`` of it, before ``at``."""
    for b in reversed(beats):
        gap = at - b
        if gap > period * (1 + tol):
            return None
        if gap >= period * (1 - tol):
            return b
    return None


class LaneEngine:
    """Shared streaming core; subclasses supply lane power, the slow statistic and classification.

    Its parts: the block loop, filters and history ring here; the noise floor (``noise``, a ``NoiseFloor``);
    cluster assembly (``clusters``, a ``ClusterAssembly``), which calls back ``new_cluster`` and
    ``release_cluster`` (``ClusterHost``) for what lies outside a cluster."""

    lanes: int
    dof_per_sample = 1  # squared signals summed into one lane's power (accelerometer: 3 axes)

    def __init__(self, sample_rate: float, channels: int, lanes: int, params: DetectorParams) -> None:
        if not sample_rate > 0:
            raise ValueError("sample_rate must be > 0")
        if channels < 1:
            raise ValueError("channels must be ≥ 1")
        self.rate = sample_rate
        self.channels = channels
        self.lanes = lanes
        self.params = p = params
        nyq = sample_rate / 2
        if p.band_hz[1] > nyq:
            raise ValueError(f"band {p.band_hz} Hz goes past Nyquist ({nyq} Hz)")
        self._sos, self.delay = band_design(sample_rate, p)
        self._zi: FloatArray | None = None
        self.w = max(1, round(p.smooth_ms * 1e-3 * sample_rate))
        self.blk = max(1, round(p.block_ms * 1e-3 * sample_rate))
        self.epoch = p.epoch_blocks
        self._warm_blocks = self.epoch * max(1, math.ceil(p.warmup_s * sample_rate / self.blk / self.epoch))
        self.spans = p.spans(sample_rate)
        self._ctx_blocks = max(1, round(p.context_ms * 1e-3 * sample_rate / self.blk))
        self._ctx_guard = round(p.context_guard_ms * 1e-3 * sample_rate)
        self._busy_window = round(p.context_ms * 1e-3 * sample_rate)
        # Independent samples per sample of power (band-limited noise is correlated; axes add).
        self._dof = self.dof_per_sample * min(1.0, (min(p.band_hz[1], nyq) - p.band_hz[0]) / nyq)
        rise = max(1.5, 1.0 + 4.0 * math.sqrt(2.0 / (self.epoch * self.blk * self._dof)))
        self.noise = NoiseFloor(lanes, self.epoch, self.blk, self.epoch * self.blk / sample_rate, p, rise)
        # Context thresholds, computed once: before an event the window is fixed; after it, a few lengths.
        self._pre_thr = self._ctx_threshold(self._ctx_blocks * self.blk)
        self._post_thr: dict[int, float] = {}
        self._shape_lag = max(1, round(0.004 * sample_rate))  # the peak may move by a phase: ±4 ms
        self._cross_blocks = round(p.cross_lane_ms * 1e-3 * sample_rate / self.blk)
        # running state
        self._left: FloatArray | None = None  # raw rows short of a whole block
        # Work buffers by chunk length: a stream's frames rarely fill whole blocks, so its chunks alternate
        # between a few lengths (50-sample frames in 20-sample blocks: 40, 60, 40, ...).
        self._works: dict[int, _Work] = {}
        self._ptail = np.zeros((self.w - 1, lanes))  # last w-1 power samples (moving sum)
        self._block = 0  # absolute index of the next block
        self._written = 0  # blocks whose statistics are in the ring
        self._warm_bm: list[FloatArray] = []
        self._warm_slow: list[FloatArray] = []
        self._on_w = np.zeros(lanes)  # onset threshold on the moving sum (raised by the background's tail)
        self._quiet_w = np.zeros(lanes)  # on_factor × w × floor: a block reaching it is not quiet
        # The background's tail: per lane, the factor it raises thresholds by; decaying counts of its blocks
        # and of those whose largest moving sum passed each bulk level.
        self.tail = np.ones(lanes)
        self._tail_model: tuple[float, float, float] | None = None  # bulk amplitudes, Gaussian's level
        if p.tail_rate_per_min > 0:
            lo, hi = gaussian_block_levels(self, p.tail_probs)
            self._tail_p = p.tail_rate_per_min * self.blk / sample_rate / 60.0  # per block
            a1, a2 = math.sqrt(lo), math.sqrt(hi)
            gauss = self._tail_level(a1, a2, np.array(p.tail_probs[:1]), np.array(p.tail_probs[1:]))
            self._tail_model = (a1, a2, float(gauss[0]) * p.tail_tolerance)
        self._tail_counts = np.zeros((3, lanes))
        self._tail_every = max(1, round(sample_rate / (self.epoch * self.blk)))  # epochs in a second
        self._tail_next = 0  # the first block not counted yet
        self._tail_decay = math.exp(-self._tail_every * self.epoch * self.blk / sample_rate / p.tail_tau_s)
        self._tail_guard = round(p.tail_after_activity_s * sample_rate / self.blk)
        self._tail_from = np.zeros(lanes, dtype=np.int64)  # first block counted again after activity
        self._tail_min = p.tail_min_s * sample_rate / self.blk
        self._slow_thr = np.zeros(lanes)  # slow_threshold(), which changes only with the floors
        self._epoch_bm = np.zeros((self.epoch, lanes))
        self._epoch_slow = np.zeros((self.epoch, lanes))
        self._epoch_quiet = np.zeros((self.epoch, lanes), dtype=bool)
        # The ring holds whole epochs: a segment never crosses an epoch boundary, so it is written as
        # one slice, never wrapped (the look-backs need at most ``history_blocks``; more is harmless).
        self._ring_n = ring = self.epoch * -(-(self.history_blocks() + self.epoch) // self.epoch)
        self._ring_bm = np.zeros((ring, lanes))  # block power sums of quiet blocks (0 when loud)
        self._ring_q = np.zeros((ring, lanes), dtype=bool)  # quiet: no onset crossing, no slow activity
        self._ring_bx = np.zeros((ring, channels))  # raw block means (baselines)
        self._ring_slow = np.zeros((ring, lanes))  # ``context_stat`` (accelerometer: movement, 1-5 Hz)
        self._ring_bmax = np.zeros((ring, lanes))  # largest moving sum (the background's tail)
        self._ring_steady = np.zeros((ring, lanes), dtype=bool)  # ... and no slow activity there
        self._tail_every = min(self._tail_every, ring // self.epoch)  # refits read the ring
        # Pieces grown into clusters (segments never cross an epoch: at most one epoch of samples).
        self.clusters = ClusterAssembly(self, lanes, self.blk, self.epoch * self.blk, self.spans)
        self._prev_end = [-(10**18)] * lanes
        self._prev_kind: list[EventKind | None] = [None] * lanes
        self._prev_peak = [0.0] * lanes
        self._prev_span = [(0, 0)] * lanes  # the previous cluster's samples, for its waveform
        self._recent: list[deque[tuple[int, float]]] = [deque() for _ in range(lanes)]  # (start, peak)
        # Brief events' (start, peak) per lane, for the heart's rhythm: the last ``heart_beats`` + 1 longest
        # intervals' worth, and never more than _BEATS_KEPT (a lane busy with brief events for hours).
        self._beats: list[deque[tuple[int, float]]] = [deque(maxlen=_BEATS_KEPT) for _ in range(lanes)]
        self._beat_span = (sample_rate * 60.0 / p.heart_bpm[1], sample_rate * 60.0 / p.heart_bpm[0])
        # Rhythmic or dense bursting (``processing.bursts``): brief events looked at together.
        self._bursts: BurstWatch | None = None
        if p.burst_window_s > 0:
            self._bursts = BurstWatch(
                lanes,
                sample_rate,
                p.burst_window_s,
                p.burst_hz,
                p.burst_rhythm_intervals,
                p.burst_rhythm_cv,
                p.burst_short_s,
                p.burst_short_count,
                p.burst_pause_s,
            )
        # The background's quiet level per lane (from the warm-up on) and, while the lane is noisy, the start
        # of the piece not reported yet (samples).
        self._quiet_ref = np.zeros(lanes)
        self._quiet_rise = math.exp(self.epoch * self.blk / sample_rate / max(p.quiet_rise_s, 1e-9))
        self._noisy_from: list[int | None] = [None] * lanes
        self._noisy_lanes = 0  # lanes noisy now: most epochs of most streams have none, and pay nothing more
        self._noisy_ratio = [1.0] * lanes  # the largest floor / quiet level of the piece
        # ... and the largest interference not taken out over the noise (``interference``; 0: none)
        self._noisy_hum = [0.0] * lanes
        self._noisy_piece = max(1, round(p.noisy_piece_s * sample_rate))
        # Clusters complete but not decided yet: (decision block, lane, start, cluster), decided once the
        # blocks up to their decision block are written (``release_cluster``).
        self._pending: list[tuple[int, int, int, Cluster]] = []
        self._horizon = 0  # the decision block of the cluster being decided (``decision_block``)
        self._reach = -1  # samples after a cluster's end its decision reads: hold, ``decision_reach``
        self._out: list[Detection] = []
        # Reports made at an epoch's end (``epoch_end``), out after the decisions of the segment ending there:
        # a cluster decided in that segment comes out before them whether or not a chunk ended earlier in it.
        self._epoch_reports: list[Detection] = []

    def __getstate__(self) -> dict[str, object]:
        # A checkpoint pickles every stream's detector: its scratch buffers are not state.
        state = self.__dict__.copy()
        state["_works"] = {}
        return state

    @property
    def floor(self) -> FloatArray:
        """Per lane: the noise floor, mean power per sample (``NoiseFloor``)."""
        return self.noise.floor

    @property
    def slow_floor(self) -> FloatArray:
        """Per lane: the slow statistic's floor (``NoiseFloor``)."""
        return self.noise.slow

    # ---- hooks ------------------------------------------------------------------------------------
    def lane_power(self, y: FloatArray, out: FloatArray) -> None:
        """Write the (samples × lanes) power of the band-passed (samples × channels) signal to ``out``."""
        raise NotImplementedError

    def slow_stat(self, x: FloatArray, bx: FloatArray) -> FloatArray:
        """(blocks × lanes) slow statistic from raw samples (samples × channels) and block means."""
        raise NotImplementedError

    def slow_threshold(self) -> FloatArray:
        raise NotImplementedError

    def context_stat(self, slow: FloatArray) -> FloatArray:
        """(blocks × lanes) statistic kept in the history ring for classification to look back on (by
        default the slow statistic; called right after ``slow_stat`` for the same blocks)."""
        return slow

    def lane_channels(self, lane: int) -> slice:
        raise NotImplementedError

    def lanes_channels(self, lanes: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """The channels of these lanes, in order (what ``lane_power`` takes for exactly these lanes)."""
        raise NotImplementedError

    def segment_raw(self, x: FloatArray, y: FloatArray, base: int) -> None:
        """The raw and band-passed samples (samples × channels) of a segment starting at absolute index
        ``base``."""

    def confirms(self, lane: int, c: Cluster) -> bool:
        """A would-be twitch's last test before it is reported (e.g. a matched filter's verdict on its
        shape); one that fails is a blip: not reported, but it still tells isolation that something went
        on there."""
        return True

    def release_features(self, lane: int, c: Cluster) -> None:
        """Last look at a cluster before it is classified (e.g. the raw signal around it)."""

    def artifact_like(self, lane: int, c: Cluster) -> bool:
        """A piece with slow activity just ended: does the cluster look like an artifact or movement
        (then it waits ``slow_gap_ms`` to gather its fragments) rather than a twitch (``hold_ms``)?"""
        return True

    def saturation_limit(self, floor: float) -> float:
        raise NotImplementedError

    def waveform(self, lane: int, start: int, end: int) -> FloatArray | None:
        """The band-passed waveform around the peak of a cluster of samples [start, end), for telling one
        motor unit's repeats from other potentials (``same_shape``); None where shape cannot be told.
        Asked at a cluster's release about it and about the one before it, at most ``isolation_ms``
        earlier."""
        return None

    def classify(self, f: Features) -> Verdict:
        raise NotImplementedError

    def clean(self, x: FloatArray, y: FloatArray, base: int) -> FloatArray:
        """Interference taken out of a run of whole blocks starting at absolute sample ``base``: the
        band-passed ``y`` (samples × channels) in place; returns the raw samples as the history and the slow
        statistic should see them (``x`` itself, or a cleaned copy). The raw ``x`` still goes to the
        saturation test (a rail minus a sinusoid is not flat)."""
        return x

    def mains_levels(self) -> list[tuple[float, float] | None]:
        """Per lane, the mains interference ``clean`` takes out: (frequency, RMS), or None."""
        return [None] * self.lanes

    def warm_powers(self, bm: FloatArray) -> FloatArray:
        """The warm-up's block power sums (blocks × lanes) the floor is learnt from: ``bm`` itself, or a
        copy with the interference ``clean`` found late in the warm-up taken out of its earlier blocks."""
        return bm

    def start_filters(self, x0: FloatArray) -> None:
        """First sample seen: start any extra filter in steady state for it."""

    def epoch_end(self, slow: FloatArray) -> None:
        """An epoch's (blocks × lanes) slow statistic, at its end, before the floors move."""

    # ---- streaming --------------------------------------------------------------------------------
    def process(self, chunk: FloatArray) -> list[Detection]:
        if chunk.ndim != 2 or chunk.shape[1] != self.channels:
            raise ValueError(f"expected (samples, {self.channels}) array, got shape {chunk.shape}")
        if chunk.shape[0] == 0:
            return []
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

    def finish(self) -> list[Detection]:
        """End of stream: close what is open and release everything (a last partial block is dropped)."""
        self.clusters.finish(self._block * self.blk)
        self._decide_due(final=True)
        for lane, start in enumerate(self._noisy_from):
            if start is not None:
                self._report_noisy(lane, start, self._block * self.blk)
        self._noisy_from, self._noisy_lanes = [None] * self.lanes, 0
        out, self._out = self._out, []
        return out

    @property
    def warmup_samples(self) -> int:
        return self._warm_blocks * self.blk

    @property
    def reach_back(self) -> int:
        """Samples before ``settled`` that a veto reported from now on may still start at (0: none): a
        burst veto (``processing.bursts``) starts at most its window before the onset of the event being
        decided, which lies at or after where the detector had settled before; one epoch more for the
        rounding of cluster starts to blocks."""
        return 0 if self._bursts is None else self._bursts.reach_back + self.epoch * self.blk

    def settled(self) -> int:
        """Every detection that will cover a sample before this index (reported time, band-pass delay taken
        off) has been returned: what is still open or not yet processed starts at or after it."""
        now = self._block * self.blk
        start = min((c.start for _, c in self._undecided()), default=now)
        if self._noisy_lanes:
            start = min(start, *(n for n in self._noisy_from if n is not None))
        return max(min(start, now) - self.delay, 0)

    def _undecided(self) -> list[tuple[int, Cluster]]:
        """(lane, cluster) of the clusters not reported yet: those waiting for their decision
        (``release_cluster``), then the ones still open."""
        out = [(lane, c) for _, lane, _, c in self._pending]
        out += [(lane, c) for lane, c in enumerate(self.clusters.open) if c is not None]
        return out

    def open_activity(self) -> list[tuple[int, int, int]]:
        """(lane, start, end so far) of the clusters not reported yet (still open, or complete and waiting
        for their decision) that are already known to be activity: a contraction or a walk vetoes its
        muscle while it lasts, not only once it has ended."""
        d = self.delay
        out = [
            (lane, max(c.start - d, 0), max(c.end - d, 1))
            for lane, c in self._undecided()
            if self.known_activity(c)
        ]
        if self._noisy_lanes:  # a noisy background, while it lasts (``_check_background``)
            now = self._block * self.blk
            out += [
                (lane, max(n - d, 0), max(now - d, 1))
                for lane, n in enumerate(self._noisy_from)
                if n is not None
            ]
        return out

    def known_activity(self, c: Cluster) -> bool:
        """Whatever else comes, ``c`` will be released as activity (its core passed ``jerk_max_ms``)."""
        return c.long

    def _run(self, x: FloatArray) -> None:
        blk, nl, w, n = self.blk, self.lanes, self.w, x.shape[0]
        if self._zi is None:
            zi = sps.sosfilt_zi(self._sos)
            self._zi = np.ascontiguousarray(zi[None, :, :] * x[0][:, None, None])
            self.start_filters(x[0])
        wk = self._works.get(n)
        if wk is None:  # buffers reused from chunk to chunk: no page faults on big arrays
            if len(self._works) >= _WORKS_KEPT:  # the oldest goes (a replay: big chunks, few kept)
                self._works.pop(next(iter(self._works)))
            wk = self._works[n] = _Work(n, self.channels, nl, w)
        np.copyto(wk.yt, x.T)  # channels × samples: the filter runs along contiguous rows, in place
        sosfilt_inplace(self._sos, wk.yt, self._zi)
        y = wk.y
        np.copyto(y, wk.yt.T)  # samples × channels, like everything else
        xc = self.clean(x, y, self._block * blk)  # mains interference out (EMG): y in place, raw copied
        pext = wk.pext  # the power with the previous w-1 samples in front, for the moving sum
        pext[: w - 1] = self._ptail
        p = pext[w - 1 :]
        self.lane_power(y, p)
        self._ptail[...] = pext[n:]
        env = wk.moving_sum(pext)
        nb = n // blk
        bm = _sum(p.reshape(nb, blk, nl), axis=1)
        bmax = _max(env.reshape(nb, blk, nl), axis=1)
        bx = _sum(xc.reshape(nb, blk, self.channels), axis=1) / blk
        slow = self.slow_stat(xc, bx)
        aux = self.context_stat(slow)
        b = 0
        while b < nb:
            k = self._block
            if k < self._warm_blocks:
                stop = min(nb, b + self._warm_blocks - k)
                self._warm(bm[b:stop], slow[b:stop], bx[b:stop], aux[b:stop])
            else:
                stop = min(nb, b + self.epoch - k % self.epoch)  # segments never cross an epoch boundary
                self._segment(b, stop, x, xc, y, p, env, bm, bmax, bx, slow, aux)
            b = stop

    def _write_ring(self, bm: FloatArray, bx: FloatArray, slow: FloatArray, quiet: BoolArray | None) -> None:
        """Block powers (zeroed where the block is loud: an event's core or slow activity), their quiet
        flags, the raw block means and the context statistic (``context_stat``) go into the history
        ring."""
        k, n = self._block % self._ring_n, bm.shape[0]
        if k + n > self._ring_n:  # wraps: only the warm-up's longer writes, so its cost does not matter
            rows = (k + np.arange(n)) % self._ring_n
            self._ring_bm[rows] = bm if quiet is None else bm * quiet
            self._ring_q[rows] = True if quiet is None else quiet
            self._ring_bx[rows] = bx
            self._ring_slow[rows] = slow
        elif quiet is None:  # bm × True is bm, bit for bit
            self._ring_bm[k : k + n] = bm
            self._ring_q[k : k + n] = True
            self._ring_bx[k : k + n] = bx
            self._ring_slow[k : k + n] = slow
        else:  # straight into the ring: no temporary per epoch
            np.multiply(bm, quiet, out=self._ring_bm[k : k + n])
            self._ring_q[k : k + n] = quiet
            self._ring_bx[k : k + n] = bx
            self._ring_slow[k : k + n] = slow
        self._written = self._block + n

    def _warm(self, bm: FloatArray, slow: FloatArray, bx: FloatArray, aux: FloatArray) -> None:
        self._write_ring(bm, bx, aux, None)
        self._warm_bm.append(bm)
        self._warm_slow.append(slow)
        self._block += bm.shape[0]
        if self._block >= self._warm_blocks:
            cat = np.concatenate(self._warm_bm)
            warm_bm = self.warm_powers(cat)
            if warm_bm is not cat:  # interference found in the warm-up: its blocks without it
                k = np.arange(self._block - warm_bm.shape[0], self._block)
                keep = k >= self._block - self._ring_n
                self._ring_bm[k[keep] % self._ring_n] = warm_bm[keep]
            self.noise.learn(warm_bm, np.concatenate(self._warm_slow))
            self._set_onsets()
            self._slow_thr = self.slow_threshold()
            self._warm_bm, self._warm_slow = [], []
            # Nothing is known of the time before: treat it as activity until isolation_ms have passed
            # (a stream that starts mid-contraction would otherwise count its first potential).
            self._prev_end = [self._block * self.blk] * self.lanes
            self._prev_peak = [-1.0] * self.lanes  # unknown: any size
            self._quiet_ref = self.noise.floor.copy()

    def _segment(
        self,
        b0: int,
        b1: int,
        x: FloatArray,
        xc: FloatArray,
        y: FloatArray,
        p: FloatArray,
        env: FloatArray,
        bm: FloatArray,
        bmax: FloatArray,
        bx: FloatArray,
        slow: FloatArray,
        aux: FloatArray,
    ) -> None:
        k0, blk = self._block, self.blk
        e0, e1 = k0 % self.epoch, k0 % self.epoch + b1 - b0
        slow_on = slow[b0:b1] > self._slow_thr
        # ``quiet`` is written straight into the epoch's flags: the pieces clear it there too.
        quiet = self._epoch_quiet[e0:e1]
        np.less(bmax[b0:b1], self._quiet_w, out=quiet)
        if self._tail_model is not None:
            rows = slice(k0 % self._ring_n, k0 % self._ring_n + b1 - b0)
            self._ring_bmax[rows] = bmax[b0:b1]
            self._ring_steady[rows] = ~slow_on
        quiet &= ~slow_on
        self._write_ring(bm[b0:b1], bx[b0:b1], aux[b0:b1], quiet)  # before pieces clear ``quiet``
        self.segment_raw(xc[b0 * blk : b1 * blk], y[b0 * blk : b1 * blk], k0 * blk)
        lanes = self.clusters.candidates(quiet)
        if lanes:
            seg = Segment(k0 * blk, b0 * blk, (b1 - b0) * blk, x, y, p, env, slow_on, quiet, self._on_w)
            self.clusters.scan(lanes, seg)
        self._epoch_bm[e0:e1] = bm[b0:b1]
        self._epoch_slow[e0:e1] = slow[b0:b1]
        self._block = k0 + b1 - b0
        if self._block % self.epoch == 0:
            self._update_floor()
        self.clusters.release_due(self._block)
        if self._pending:
            self._decide_due()
        if self._epoch_reports:
            self._out += self._epoch_reports
            self._epoch_reports = []

    def _update_floor(self) -> None:
        self.epoch_end(self._epoch_slow)
        q = self._epoch_quiet
        if self._tail_model is not None and (self._block // self.epoch) % self._tail_every == 0:
            self._update_tail()
        if _all(q, axis=None):
            self.noise.update_quiet(self._epoch_bm, self._epoch_slow)
        else:
            self.noise.update(self._epoch_bm, self._epoch_slow, q)
        self._set_onsets()
        self._slow_thr = self.slow_threshold()
        if self.params.noisy_factor > 0:
            self._check_background()
        else:
            self.interference(self._block // self.epoch - 1)  # asked once an epoch whatever it is used for

    def _check_background(self) -> None:
        """At an epoch's end, after the floors moved: a lane whose floor is ``noisy_factor`` times its quiet
        level is noisy from this epoch on — an electrode that lost contact or dried out, a sensor in a
        vehicle's vibration. The detector's thresholds follow its floor, so twitches the size it found
        before are now missed; time counted as assessable would make the rate fall while the person's
        twitching did not. Each piece of at most ``noisy_piece_s`` is reported as an artifact that vetoes
        exactly its span (while it lasts it is open activity: ``open_activity``).

        A lane is noisy too while interference that should have been taken out is not (``interference``:
        EMG mains hum swinging faster than the canceller follows): its quiet level cannot tell, it may have
        been there from the start."""
        floor, ref = self.noise.floor, self._quiet_ref
        hum = self.interference(self._block // self.epoch - 1)
        if self.lanes == 1:  # a stream's one lane (most streams): plain floats cost a tenth of numpy's calls
            f, r = float(floor[0]), float(ref[0]) * self._quiet_rise
            ref[0] = r = min(f, r)
            if not self._noisy_lanes and not f > self.params.noisy_factor * r and hum is None:
                return
        else:
            ref *= self._quiet_rise
            np.minimum(floor, ref, out=ref)
            if not self._noisy_lanes and not _max(floor - self.params.noisy_factor * ref) > 0 and hum is None:
                return
        ratio = floor / np.maximum(ref, 1e-300)
        noisy = ratio > self.params.noisy_factor
        if hum is not None:
            noisy |= hum > 0
        now = self._block * self.blk
        for lane, start in enumerate(self._noisy_from):
            if noisy[lane]:
                self._noisy_ratio[lane] = max(self._noisy_ratio[lane], float(ratio[lane]))
                if hum is not None:
                    self._noisy_hum[lane] = max(self._noisy_hum[lane], float(hum[lane]))
                if start is None:
                    self._noisy_from[lane] = now - self.epoch * self.blk  # from this epoch on
                    self._noisy_lanes += 1
                elif now - start >= self._noisy_piece:
                    self._report_noisy(lane, start, now)
                    self._noisy_from[lane] = now
                    self._noisy_ratio[lane] = float(ratio[lane])
                    self._noisy_hum[lane] = float(hum[lane]) if hum is not None else 0.0
            elif start is not None:
                self._report_noisy(lane, start, now)
                self._noisy_from[lane] = None
                self._noisy_lanes -= 1

    def interference(self, epoch: int) -> FloatArray | None:
        """Per lane, the interference not taken out in ``epoch`` over the noise (power; 0 where there is
        none worth saying), or None on every lane (EMG: ``MainsCanceller.untracked``)."""
        return None

    def _report_noisy(self, lane: int, start: int, end: int) -> None:
        db = 10.0 * math.log10(max(self._noisy_ratio[lane], 1.0))
        self._noisy_ratio[lane] = 1.0
        hum, self._noisy_hum[lane] = self._noisy_hum[lane], 0.0
        why = f"noisy background, {db:.0f} dB above its quiet level: twitches would be missed"
        if hum > 0:
            db = 10.0 * math.log10(1.0 + hum)
            why = "noisy background: mains interference that cannot be taken out, "
            why += f"{db:.0f} dB over the noise: twitches would be missed"
        d, rms = self.delay, math.sqrt(max(float(self.noise.floor[lane]), 0.0))
        span = (max(start - d, 0), max(end - d, 1))
        self._out.append(Detection(lane, *span, rms, EventKind.ARTIFACT, 0.9, 0.0, why, True, span))

    def _set_onsets(self) -> None:
        self._quiet_w = self.params.on_factor * self.w * self.floor
        self._on_w = self._quiet_w * self.tail if self._tail_model is not None else self._quiet_w

    def _update_tail(self) -> None:
        """The background's own tail, refitted every second (before the floors move; the block statistics
        come from the history ring).

        Per lane, decaying over ``tail_tau_s``: how many blocks of background there were — below the
        lane's threshold, without slow activity, with neighbours of the same kind (so that a potential's
        shoulders do not count), and not within ``tail_after_activity_s`` of the lane's own activity or
        artifacts — and in how many the largest moving sum passed the two bulk levels, where Gaussian
        noise passes in ``tail_probs`` of the blocks: hundreds of times a minute, far more often than any
        muscle twitches (a twitch above the threshold is not background; one below it barely moves the
        counts). Through the two, the log-probability of a block passing a level is taken as linear in
        the amplitude (the root of the level: an exponential tail of potential sizes), and extrapolated to
        the level the background passes ``tail_rate_per_min`` times a minute. Its ratio to what the same
        model gives on Gaussian noise, beyond the estimate's scatter (``tail_tolerance``), is the factor
        ``tail`` (≤ ``tail_max``) by which the lane's thresholds rise."""
        assert self._tail_model is not None
        k0, k1 = max(self._tail_next, self._warm_blocks), self._block
        self._tail_next = k1
        if self._pending or any(self.clusters.open):  # activity not decided yet: as its decision will set it
            for lane, c in self._undecided():
                if c.long or c.slow_blocks:
                    until = -(-c.end // self.blk) + self._tail_guard
                    self._tail_from[lane] = max(int(self._tail_from[lane]), until)
        rows = np.arange(k0, k1) % self._ring_n
        bmax = self._ring_bmax[rows]
        q = self._ring_steady[rows] & (bmax < self._on_w)  # the background below the lane's threshold
        elig = q.copy()
        elig[1:] &= q[:-1]
        elig[:-1] &= q[1:]
        # Not in a stretch louder than the floor: the median block power around each block (one potential
        # does not move it) beyond the floor's own line for "clearly louder" is weak activity, or a
        # background the floor has not caught up with yet — not the rest's own potentials; counted against
        # the lagging floor it would read as a heavy tail and hold the thresholds up for a minute after.
        around = ndimage.median_filter(self._ring_bm[rows], size=(_TAIL_MEDIAN, 1), mode="nearest")
        elig &= around <= self.noise.rise * self.blk * self.floor
        if _max(self._tail_from) > k0:  # a lane is still settling after its activity
            elig &= np.arange(k0, k1)[:, None] >= self._tail_from
        a1, a2, gauss = self._tail_model
        base = self.w * self.floor
        counts = self._tail_counts
        counts *= self._tail_decay
        counts[0] += _sum(elig, axis=0)
        counts[1] += _sum(elig & (bmax > a1 * a1 * base), axis=0)
        counts[2] += _sum(elig & (bmax > a2 * a2 * base), axis=0)
        n = np.maximum(counts[0], 1.0)
        level = self._tail_level(a1, a2, (counts[1] + 0.5) / n, (counts[2] + 0.5) / n)
        tail = np.clip(level / gauss, 1.0, self.params.tail_max)
        self.tail = np.where(counts[0] >= self._tail_min, tail, 1.0)

    def _tail_level(self, a1: float, a2: float, p1: FloatArray, p2: FloatArray) -> FloatArray:
        """The level (× w × floor) a background whose blocks pass the bulk levels a1² and a2² with
        probabilities p1 and p2 passes at ``tail_rate_per_min``, by the exponential-amplitude model of
        ``_update_tail``."""
        slope = np.log(np.maximum(p1 / p2, 1.0 + 1e-9)) / (a2 - a1)  # per unit of amplitude
        a = a2 + np.log(np.maximum(p2 / self._tail_p, 1.0)) / slope
        out: FloatArray = a * a
        return out

    def new_cluster(self, lane: int, start: int) -> Cluster:
        """A cluster on ``lane`` from sample ``start`` (``ClusterHost``), with what the history says before
        it: its context, the raw baseline, the floor and tail of the moment, the lane's recent peaks."""
        kb = start // self.blk
        floor = float(self.floor[lane])
        ke = (start - self._ctx_guard) // self.blk  # clear of the event's own rise through the filter
        ctx = self._context(lane, ke - self._ctx_blocks, ke, floor)
        baseline = self._ring_bx[(kb - 1) % self._ring_n, self.lane_channels(lane)].copy()
        c = Cluster(start, start, ctx, baseline, floor, self.spans.hold)
        c.tail = float(self.tail[lane])
        return c

    def _heart_rhythm(self, lane: int, start: int, peak: float) -> float | None:
        """The period (s) of the heart's rhythm if a brief event (``start``, ``peak``) ends a run of
        ``heart_beats`` brief events on the lane in one: intervals within ``heart_bpm``, each within
        ``heart_tolerance`` of the next (the heart's rate drifts, but from beat to beat by a few per cent),
        at most one of them two beats long (a beat too weak to cross the threshold), every peak within
        ``heart_peak_ratio`` of this one's (a heartbeat looks the same on the same electrode each time;
        potentials of different motor units do not). Events between the beats (twitches) are skipped."""
        beats, need = self._beats[lane], self.params.heart_beats
        lo, hi = self._beat_span
        self._forget_beats(lane, start)
        if need < 2 or len(beats) < need - 2:
            return None
        ratio = self.params.heart_peak_ratio
        alike = [b for b, p in beats if peak / ratio <= p <= peak * ratio]
        for prev in reversed(alike):
            first = start - prev
            if first > hi:
                break
            if first >= lo and (period := self._rhythm_back(alike, prev, first, need - 2)) is not None:
                return period / self.rate
        return None

    def _forget_beats(self, lane: int, now: int) -> None:
        """Brief events too long before ``now`` to be part of a run ending there."""
        beats, reach = self._beats[lane], self._beat_span[1] * (self.params.heart_beats + 1)
        while beats and beats[0][0] < now - reach:
            beats.popleft()

    def _rhythm_back(self, beats: list[int], at: int, first: int, more: int) -> float | None:
        """Following a rhythm whose latest interval is ``first`` back from the beat at ``at``, ``more``
        beats further: their mean period (samples), or None where the run breaks."""
        tol, period, missed, span = self.params.heart_tolerance, float(first), 0, first
        for _ in range(more):
            found, periods = _beat_before(beats, at, period, tol), 1
            if found is None and not missed:  # one beat too weak to be seen: two periods back
                found, periods = _beat_before(beats, at, 2 * period, tol), 2
                missed = int(found is not None)
            if found is None:
                return None
            span += at - found
            period, at = (at - found) / periods, found
        return span / (more + 1 + missed)

    def _blip(self, lane: int, c: Cluster, kind: EventKind) -> bool:
        """Brief, not an artifact, and never more than ``report_margin`` × the onset threshold; or a
        would-be twitch that ``confirms`` turns down."""
        brief = kind.is_twitch or (kind is EventKind.SUSTAINED and c.end - c.start <= self.spans.jerk_max)
        if not brief:
            return False
        if c.peak_env < self.params.report_margin * c.piece_on:
            return True
        return kind.is_twitch and not self.confirms(lane, c)

    def _ctx_threshold(self, n: int, factor: float | None = None) -> float:
        """Power ratio above which a window of n samples is activity: ``context_factor``, or four standard
        deviations of noise's window mean when the window holds few independent samples (low rates)."""
        floor = self.params.context_factor if factor is None else factor
        return max(floor, 1.0 + 4.0 * math.sqrt(2.0 / max(n * self._dof, 1.0)))

    def _post_threshold(self, blocks: int) -> float:
        thr = self._post_thr.get(blocks)
        if thr is None:
            thr = self._post_thr[blocks] = self._ctx_threshold(
                blocks * self.blk, self.params.post_context_factor
            )
        return thr

    def _context(self, lane: int, k0: int, k1: int, floor: float) -> float:
        """Mean power of the quiet blocks in [k0, k1) on ``lane``, × floor: the activity below the onset
        threshold around an event, other events excluded. Mostly loud windows are activity (``inf``)."""
        if k1 <= k0:
            return 0.0
        a, b = k0 % self._ring_n, k1 % self._ring_n
        if a < b:
            power, n = float(_sum(self._ring_bm[a:b, lane])), int(np.count_nonzero(self._ring_q[a:b, lane]))
        else:
            power = float(_sum(self._ring_bm[a:, lane])) + float(_sum(self._ring_bm[:b, lane]))
            n = int(np.count_nonzero(self._ring_q[a:, lane])) + int(np.count_nonzero(self._ring_q[:b, lane]))
        if 2 * n < k1 - k0:
            return math.inf
        return power / (n * self.blk * max(floor, 1e-300))

    def others_active(self, f: Features) -> int:
        """How many of the stream's other lanes are in activity around a released cluster (asked only of
        candidates that would otherwise be twitches; 0 with one lane or ``cross_lane_ms`` 0)."""
        if self.lanes < 2 or self._cross_blocks == 0:
            return 0
        return self._others_active(f.lane, f.cluster, *f.hold_blocks)

    def _others_active(self, lane: int, c: Cluster, first: int, last: int) -> int:
        """The other lanes in activity around the cluster: loud (an onset crossing or slow activity) in at
        least half of the ``cross_lane_ms`` before it, or loud through its hold after it (blocks
        [first, last)) having been loud for at least half of it — activity going on before, or outlasting
        it. A potential or a brief jerk seen on neighbouring channels is loud there only at the same
        time."""
        blk = self.blk
        kb = (c.start - self._ctx_guard) // blk  # blocks before it: [kb - cross, kb)
        ks = c.start // blk  # its own blocks: [ks, ke)
        ke = -(-c.end // blk)
        k0 = max(kb - self._cross_blocks, self.ring_from())
        if last <= max(k0, ks) or kb <= k0:
            return 0
        quiet = self._ring_q[np.arange(k0, last) % self._ring_n]
        before = quiet[: kb - k0]
        during = quiet[ks - k0 : ke - k0]
        after = quiet[first - k0 :] if last > first else quiet[:0]
        n_before = before.shape[0] - np.add.reduce(before, axis=0, dtype=np.intp)
        going_on = 2 * n_before >= before.shape[0]
        if after.shape[0] and during.shape[0]:
            loud_during = during.shape[0] - np.add.reduce(during, axis=0, dtype=np.intp)
            outlasts = ~np.logical_or.reduce(after, axis=0) & (2 * loud_during >= during.shape[0])
            going_on |= outlasts
        going_on[lane] = False
        return int(np.count_nonzero(going_on))

    def release_cluster(self, lane: int, c: Cluster) -> None:
        """A complete cluster (``ClusterHost``), decided at its *decision block*: the first block boundary
        by which both its gap has passed (``ClusterAssembly.due``) and everything its decision reads after
        its end — the hold's context, ``decision_reach`` — has been written. Until then it waits; the
        waiting ones are decided at the end of the segment that writes their decision block (the same
        block whatever the chunking), in the order of their decision blocks, lanes and starts, so that the
        same clusters come out in the same order for any chunking. A new piece beyond the gap completes a
        cluster whose hold is not all written yet: it is still decided from the whole hold."""
        if self._reach < 0:  # the subclass's reach, known once it is built
            self._reach = max(self.spans.hold, self.decision_reach())
        when = max(self.clusters.due(c), -(-(c.end + self._reach) // self.blk))
        self._pending.append((when, lane, c.start, c))

    def _decide_due(self, final: bool = False) -> None:
        """Decide the clusters whose decision block is written (``final``: all of them, at the stream's end,
        with what there is)."""
        written, due = self._written, self._pending
        if not final:
            if len(due) == 1 and due[0][0] > written:  # the usual wait: nothing to decide yet
                return
            due = [w for w in self._pending if w[0] <= written]
            if not due:
                return
            self._pending = [w for w in self._pending if w[0] > written]
        else:
            self._pending = []
        if len(due) > 1:
            due.sort(key=lambda w: w[:3])
        for when, lane, _, c in due:
            self._horizon = when
            self._decide(lane, c)

    def history_blocks(self) -> int:
        """Blocks before a cluster's decision block that its decision may read (``ring_from``): the ring
        holds this much besides the epoch being written. A subclass whose look-back reaches further
        (``AccEngine``: movement before a transient decided late) asks for more."""
        return _RING - self.epoch

    def decision_block(self) -> int:
        """The decision block (``release_cluster``) of the cluster being decided: what its decision reads
        lies before it, and it is decided by the end of the segment that writes it, so the history it may
        read is bounded by it, never by how far the stream happens to be written."""
        return self._horizon

    def ring_from(self) -> int:
        """The first block of the history ring that a decision may read: the ring still holds it when the
        cluster is decided (at most a segment, one epoch, after its decision block), whatever the
        chunking."""
        return self._horizon - self._ring_n + self.epoch

    def decision_reach(self) -> int:
        """Samples after a cluster's end that its decision reads (besides the hold's context)."""
        return 0

    def _decide(self, lane: int, c: Cluster) -> None:
        """A complete cluster whose decision block is written: its context after it, its features and
        verdict; reported unless a blip."""
        blk = self.blk
        recent = self._recent[lane]
        while recent and recent[0][0] < c.start - self._busy_window:
            recent.popleft()
        c.recent = [peak for _, peak in recent]  # every earlier cluster of the lane is decided by now
        first = -(-(c.end + self._ctx_guard) // blk)  # whole blocks after the end's tail, in the hold
        last = min(self._written, -(-(c.end + self.spans.hold) // blk))  # short only at the stream's end
        ctx_post = self._context(lane, first, last, c.floor)
        context = max(
            c.context_pre / self._pre_thr,
            ctx_post / self._post_threshold(last - first) if last > first else 0.0,
        )
        c.settle(self.spans.core_ratio)
        if c.long or c.slow_blocks:  # activity or an artifact: not the background the tail learns
            until = -(-c.end // self.blk) + self._tail_guard
            self._tail_from[lane] = max(int(self._tail_from[lane]), until)
        if c.slow_blocks:
            self.release_features(lane, c)
        since = (c.start - self._prev_end[lane]) * 1e3 / self.rate
        f = Features(c, ctx_post, context, since, self._prev_kind[lane], self._prev_peak[lane])
        if since < self.params.isolation_ms:  # only a train needs shapes: compared only then
            a, b = self.waveform(lane, c.start, c.end), self.waveform(lane, *self._prev_span[lane])
            f.same_shape = None if a is None or b is None else same_shape(a, b, self._shape_lag)
        self._prev_span[lane] = (c.start, c.end)
        f.lane, f.hold_blocks = lane, (first, last)
        verdict = self.classify(f)
        brief = not c.long and c.end - c.start <= self.spans.jerk_max
        if verdict.kind.is_twitch and (every := self._heart_rhythm(lane, c.start, c.peak)) is not None:
            why = f"heartbeat: a run of brief events in the heart's rhythm, every {every:.2f} s"
            verdict = Verdict(EventKind.ARTIFACT, 0.8, why, vetoes=False)
        kind = verdict.kind
        self._prev_end[lane] = c.end  # even a blip tells that something went on here
        self._prev_kind[lane] = kind
        self._prev_peak[lane] = c.peak
        self._recent[lane].append((c.start, c.peak))
        if self._blip(lane, c, kind):
            return  # barely over the onset threshold, brief: noise's tail more often than an event
        if brief:
            self._beats[lane].append((c.start, c.peak))
            self._forget_beats(lane, c.start)
        conf = round(min(max(verdict.confidence, 0.01), 0.99), 3)
        d = self.delay  # report when it happened, not when it came out of the band-pass
        hz = round(c.dominant_hz(self.rate), 1)
        first, last = verdict.span or (c.start, c.end)
        start, end = max(first - d, 0), max(last - d, 1)
        vetoes = not kind.is_twitch if verdict.vetoes is None else verdict.vetoes
        where = None
        if vetoes and verdict.exact:
            where = (start, end)
        elif vetoes and not verdict.guarded:  # the context before it and the hold after it
            where = (max(start - self._busy_window, 0), end + self.spans.hold)
        reason = verdict.reason
        # Any event but an artifact that shows itself (a saturation, a swing) is one of the lane's events,
        # which together may burst (``processing.bursts``); a brief one found bursting is activity.
        if self._bursts is not None and (kind is not EventKind.ARTIFACT or not vetoes):
            burst = self._bursts.add(lane, c.start, c.end, brief)
            if burst is not None:
                conf = 0.8 if burst.rhythmic else 0.7
                kind, reason, vetoes = EventKind.SUSTAINED, burst.reason, True
                span = (max(burst.start - d, 0), max(burst.end - d, 1))
                if where is not None:  # its own windows too (both hold the event: one span)
                    span = (min(span[0], where[0]), max(span[1], where[1]))
                where = span
        self._out.append(Detection(lane, start, end, c.peak, kind, conf, hz, reason, vetoes, where))


class _Work:
    """Per-chunk-size work buffers (allocating big arrays anew every chunk costs page faults)."""

    def __init__(self, n: int, channels: int, lanes: int, w: int) -> None:
        self.n, self.w = n, w
        self.yt = np.empty((channels, n))
        self.y = np.empty((n, channels))
        self.pext = np.empty((n + w - 1, lanes))
        self.env = np.empty((n, lanes)) if w > 1 else self.pext
        self._levels: list[FloatArray] = []
        length, span = n + w - 1, 1
        while span * 2 <= w:
            length -= span
            self._levels.append(np.empty((length, lanes)))
            span *= 2

    def moving_sum(self, ext: FloatArray) -> FloatArray:
        """Sums over w consecutive rows of ``ext`` ((n + w − 1) × lanes) → n × lanes, by binary
        decomposition (O(log w) array operations, into the buffers). Each output adds the same inputs in
        the same order wherever the chunk boundaries fall, so it is exact across chunkings."""
        w, n = self.w, self.n
        if w == 1:
            return ext
        out, first = self.env, True
        s, span, pos, rem, level = ext, 1, 0, w, 0
        while True:
            if rem & 1:
                part = s[pos : pos + n]
                if first:
                    np.copyto(out, part)
                    first = False
                else:
                    np.add(out, part, out=out)
                pos += span
            rem >>= 1
            if not rem:
                return out
            nxt = self._levels[level]
            np.add(s[:-span], s[span:], out=nxt)
            s, span, level = nxt, span * 2, level + 1


_LEVELS: dict[tuple[object, ...], tuple[float, float]] = {}


def gaussian_block_levels(engine: LaneEngine, probs: tuple[float, float]) -> tuple[float, float]:
    """The levels (× w × floor) that a block's largest moving sum passes in ``probs`` of the blocks of
    Gaussian noise through the engine's band-pass (five minutes of seeded noise, cached per setting)."""
    key = (engine.rate, engine._sos.tobytes(), engine.w, engine.blk, engine.dof_per_sample, probs)
    if key not in _LEVELS:
        n = engine.blk * round(300.0 * engine.rate / engine.blk)
        x = np.random.default_rng(20261206).normal(size=(engine.dof_per_sample, n))
        y = sps.sosfilt(engine._sos, x, axis=1)[:, engine.blk * 50 :]
        p = _sum(y * y, axis=0)
        env = np.convolve(p, np.ones(engine.w))[engine.w - 1 : p.size]
        blocks = env[: env.size // engine.blk * engine.blk].reshape(-1, engine.blk).max(axis=1)
        rel = blocks / (engine.w * float(p.mean()))
        lo, hi = (float(np.quantile(rel, 1.0 - q)) for q in probs)
        _LEVELS[key] = (lo, hi)
    return _LEVELS[key]
