"""Synthetic signals with ground truth.

Two generators live here:

* ``MuscleSegment`` — the simulator's streaming generator: rest noise plus isolated fasciculation-like
  potentials (EMG) or brief mechanical transients (accelerometer), drawn lazily so a month-long segment
  costs nothing up front. ``collector/simulate.py`` uses it.
* ``generate`` / ``inject`` — offline synthetic physiology for the detector tests and the benchmarks:
  motor-unit potentials (bi- and triphasic Gaussian-derivative shapes of varied width and mixture),
  myoclonic jerks (bursts of several motor units over 25–250 ms), voluntary contractions and cramps
  (recruited motor-unit pools firing at 8–35 Hz under a ramped excitation), electrode pops, motion
  artifacts and amplifier saturation, mains hum and baseline wander; for accelerometers mechanomyographic
  twitch transients, limb jerks, posture changes and walking bouts. ``inject`` puts the same events on a
  real recording's background. Every event comes back as a ``TruthEvent``.

SNR (the definition the detector's targets use; docs/detection.md explains the choice)::

    SNR_dB = 20 · log10(A / σ_n)

* ``A`` — the event's peak absolute amplitude as sampled (EMG: the potential's largest |µV|; accelerometer:
  the largest |vector| of the added acceleration, g).
* ``σ_n`` — the background's robust RMS in the analysis band (``analysis_band``: EMG 20 Hz to
  min(450 Hz, 0.45·fs); accelerometer 5 Hz to min(100 Hz, 0.45·fs)), i.e. 1.4826 × the median absolute
  deviation of the band-passed background, summed in power over the axes of an accelerometer
  (``noise_level``). ``generate`` measures it over the whole background it made, ``inject`` within ±1 s
  of each event, so SNR means the same on synthetic and on real data.

Each fasciculation's amplitude is ``10^(snr_db/20) · σ_n`` times a uniform ±3 dB spread, so ``snr_db`` is
the median. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from twitchwatch.collector.frames import Unit
from twitchwatch.collector.signals import TwitchSignal

Signal = TwitchSignal  # collector.signals
FloatArray = npt.NDArray[np.float64]

# Twitches are sporadic and isolated: never closer than this, so each is a separate ground-truth event.
MIN_SPACING_S = 0.6


@dataclass(frozen=True)
class SignalSpec:
    signal: Signal
    sample_rate: float
    channels: int
    unit: Unit
    scale: float  # physical units per int16 count
    noise_rms: float  # physical units


def spec_for(signal: Signal, sample_rate: float | None = None) -> SignalSpec:
    if signal == "emg":
        # 0.5 µV/count: ±16 mV range, far above any surface EMG, and 0.25 µV quantisation noise.
        return SignalSpec("emg", sample_rate or 1000.0, 1, Unit.MICROVOLT, 0.5, 3.0)
    # 1/4096 g/count: ±8 g, the range most wearables' accelerometers default to.
    return SignalSpec("acc", sample_rate or 100.0, 3, Unit.G, 1.0 / 4096.0, 0.002)


@dataclass(frozen=True)
class TruthEvent:
    """An event the generator put in the signal.

    Times in ns: since the Unix epoch for ``MuscleSegment``; from sample 0 of the array (``start_ns=0``
    at sample 0) for ``generate`` and ``inject``. ``kind`` is an ``EventKind`` value; ``amplitude`` the peak
    absolute amplitude as sampled, in ``unit``; ``detail`` names the variant (e.g. ``pop``, ``walking``).
    """

    muscle: str
    start_ns: int
    end_ns: int
    kind: str
    amplitude: float
    unit: str
    detail: str = ""

    def to_json_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "muscle": self.muscle,
            "start": self.start_ns / 1e9,
            "end": self.end_ns / 1e9,
            "kind": self.kind,
            "amplitude": round(self.amplitude, 6),
            "unit": self.unit,
        }
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class _Shape:
    onset_s: float  # from segment start
    duration_s: float
    amplitude: float
    param: float  # EMG: phase count 2|3; ACC: oscillation frequency (Hz)
    direction: tuple[float, float, float]


class _Schedule:
    """Twitch onsets as a dead-time renewal process (Poisson-like, never closer than ``MIN_SPACING_S``),
    drawn lazily in fixed batches from its own random stream: a month-long segment costs nothing up
    front, and the schedule is the same however the signal is chunked."""

    BATCH = 64

    def __init__(self, rng: np.random.Generator, duration_s: float, per_minute: float) -> None:
        self._rng = rng
        self._end = duration_s - 0.2  # an event must fit before the segment ends
        self._extra = max(60.0 / per_minute - MIN_SPACING_S, 1e-3) if per_minute > 0 else 0.0
        self._last = 0.5 - MIN_SPACING_S  # the first twitch comes after half a second at the earliest
        self.exhausted = per_minute <= 0 or duration_s <= 0

    def draw_until(self, t_s: float) -> FloatArray:
        """Onsets up to at least ``t_s`` not drawn before (sorted)."""
        out: list[FloatArray] = []
        while not self.exhausted and self._last < t_s:
            onsets = self._last + np.cumsum(MIN_SPACING_S + self._rng.exponential(self._extra, self.BATCH))
            self._last = float(onsets[-1])
            if self._last >= self._end:
                self.exhausted = True
            out.append(onsets[onsets < self._end])
        return np.concatenate(out) if out else np.empty(0)


class MuscleSegment:
    """One muscle's signal over one continuous wear segment, generated chunk by chunk."""

    def __init__(
        self,
        muscle: str,
        spec: SignalSpec,
        start_ns: int,
        duration_s: float,
        per_minute: float,
        seed: int,
        amplitude_snr: tuple[float, float] = (12.0, 40.0),
    ) -> None:
        self.muscle = muscle
        self.spec = spec
        self.start_ns = start_ns
        self.duration_s = duration_s
        self.total = int(duration_s * spec.sample_rate)
        noise_seed, schedule_seed = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(noise_seed)
        self._shape_rng = np.random.default_rng(schedule_seed)
        self._schedule = _Schedule(self._shape_rng, duration_s, per_minute)
        self._snr = amplitude_snr
        self._shapes: list[_Shape] = []  # drawn so far, sorted by onset
        self._onsets: list[float] = []
        self._new: list[_Shape] = []  # drawn since the last ``take_truth``
        self._next = 0
        self._gravity = self._rng.normal(size=3)
        self._gravity /= np.linalg.norm(self._gravity)
        self._wander_phase = float(self._rng.uniform(0, 2 * np.pi))

    def _draw(self, until_s: float) -> None:
        shapes = [self._draw_shape(float(t), self._snr) for t in self._schedule.draw_until(until_s)]
        self._shapes.extend(shapes)
        self._onsets.extend(s.onset_s for s in shapes)
        self._new.extend(shapes)

    def _draw_shape(self, onset: float, snr: tuple[float, float]) -> _Shape:
        rng = self._shape_rng
        amp = float(rng.uniform(*snr)) * self.spec.noise_rms
        d = rng.normal(size=3)
        u = d / np.linalg.norm(d)
        direction = (float(u[0]), float(u[1]), float(u[2]))
        if self.spec.signal == "emg":
            return _Shape(
                onset,
                float(rng.uniform(0.006, 0.014)),
                amp,
                float(rng.choice([2, 3])),
                (1.0, 0.0, 0.0),
            )
        # A stream carries only oscillations well below its Nyquist frequency (25-Hz devices exist).
        hi = min(30.0, 0.35 * self.spec.sample_rate)
        freq = float(rng.uniform(min(15.0, 0.6 * hi), hi))
        return _Shape(onset, float(rng.uniform(0.04, 0.09)), amp, freq, direction)

    def truth(self) -> list[TruthEvent]:
        """Every twitch of the whole segment (draws the rest of the schedule; for offline use)."""
        self._draw(self.duration_s)
        return [self._truth(s) for s in self._shapes]

    def take_truth(self) -> list[TruthEvent]:
        """Twitches streamed since the last call (those that began in the samples generated so far):
        the simulator writes them as it goes, so a stopped run's truth holds only what was sent."""
        now_s = self._next / self.spec.sample_rate
        cut = bisect.bisect_left([s.onset_s for s in self._new], now_s)
        done, self._new = self._new[:cut], self._new[cut:]
        return [self._truth(s) for s in done]

    def _truth(self, s: _Shape) -> TruthEvent:
        ns = 1e9
        return TruthEvent(
            self.muscle,
            self.start_ns + round(s.onset_s * ns),
            self.start_ns + round((s.onset_s + s.duration_s) * ns),
            "fasciculation",
            s.amplitude,
            self.spec.unit.symbol,
        )

    @property
    def remaining(self) -> int:
        return self.total - self._next

    def next_chunk(self, n: int) -> tuple[int, FloatArray]:
        """The next ``n`` samples (fewer at the end) as (first sample index, array (n, channels))."""
        first = self._next
        n = min(n, self.total - first)
        t = (first + np.arange(n)) / self.spec.sample_rate
        x = self._background(t)
        if n:
            self._draw(float(t[-1]))
        for shape in self._shapes_in(t[0], t[-1]) if n else ():
            self._add(x, t, shape)
        self._next += n
        return first, x

    def _shapes_in(self, t_lo: float, t_hi: float) -> list[_Shape]:
        # Shapes are sorted by onset and last < 0.2 s, so two bisections find those touching the chunk.
        lo = bisect.bisect_left(self._onsets, t_lo - 0.2)
        hi = bisect.bisect_right(self._onsets, t_hi)
        return self._shapes[lo:hi]

    def _background(self, t: FloatArray) -> FloatArray:
        spec = self.spec
        noise = self._rng.normal(0.0, spec.noise_rms, (t.size, spec.channels))
        if spec.signal == "emg":
            hum = 0.3 * spec.noise_rms * np.sin(2 * np.pi * 50.0 * t)
            wander = 4.0 * spec.noise_rms * np.sin(2 * np.pi * 0.3 * t + self._wander_phase)
            return noise + (hum + wander)[:, None]
        sway = 0.01 * np.sin(2 * np.pi * 0.1 * t + self._wander_phase)
        return noise + self._gravity[None, :] + sway[:, None] * self._gravity[None, :]

    def _peak(self, s: _Shape) -> float:
        """The largest |potential| over all of the shape's samples, whichever chunks they fall in: a
        twitch split across two frames is scaled as one (each part by its own peak, the tail of one came out
        as large as the whole, and the signal depended on the frame size). The same arithmetic as
        ``next_chunk`` and ``_add``, so a twitch within one chunk comes out exactly as before."""
        fs = self.spec.sample_rate
        k0 = int(s.onset_s * fs) - 1
        t = (k0 + np.arange(int(s.duration_s * fs) + 4)) / fs
        u = (t - s.onset_s) / s.duration_s
        return float(np.max(np.abs(_potential(u[(u >= 0) & (u <= 1)], s.param))))

    def _add(self, x: FloatArray, t: FloatArray, s: _Shape) -> None:
        u = (t - s.onset_s) / s.duration_s  # 0..1 across the event
        m = (u >= 0) & (u <= 1)
        if not m.any():
            return
        um = u[m]
        if self.spec.signal == "emg":
            w = _potential(um, s.param)
            x[m, 0] += w / self._peak(s) * s.amplitude
            return
        env = np.sin(np.pi * um) ** 2
        w = s.amplitude * env * np.sin(2 * np.pi * s.param * s.duration_s * um)
        x[m, :] += w[:, None] * np.asarray(s.direction)[None, :]


def _potential(u: FloatArray, phases: float) -> FloatArray:
    """A motor-unit potential across its span (u from 0 to 1), unscaled. Hermite-like phases: derivatives
    of a Gaussian give bi- (1st) and triphasic (2nd) potentials."""
    z = (u - 0.5) * 6.0
    g = np.exp(-0.5 * z * z)
    out: FloatArray = -z * g if phases == 2 else (1 - z * z) * g
    return out


def quantise(x: FloatArray, spec: SignalSpec) -> npt.NDArray[np.int16]:
    return np.clip(np.round(x / spec.scale), -32768, 32767).astype(np.int16)


# ---- synthetic physiology: generate / inject -------------------------------------------------------

LEAD_S = 1.5  # no event starts earlier: a detector spends its first second learning the noise floor
SNR_SPREAD_DB = 3.0  # each fasciculation's SNR is snr_db ± this (uniform)
TWITCH_GUARD_S = MIN_SPACING_S  # quiet time after a twitch before the next event
ACTIVITY_GUARD_S = 1.5  # quiet time after activity or an artifact before the next event
REST_MARGIN_S = 0.5  # inject: an event needs this much rest on either side
_ANTI_ALIAS = 0.33  # device anti-aliasing modelled as a Gaussian, σ = 0.33/fs (−3 dB at 0.4·fs)


@dataclass(frozen=True)
class Physiology:
    """What a generated (or injected) recording contains.

    Rates are events per minute — of rest time when ``inject`` is given a rest mask. ``sustained`` counts
    voluntary contractions (4 in 5) and cramps (1 in 5); ``artifact`` counts EMG electrode pops, motion
    artifacts and amplifier saturation (2:2:1) or accelerometer knocks and saturation (3:2). Posture changes
    and walking bouts are accelerometer-only (truth kind ``sustained``, detail ``posture``/``walking``).

    ``snr_db`` is the median fasciculation SNR (module docstring: 20·log10(peak / band-limited robust noise
    RMS)); jerks, contractions and artifacts scale from it or from the noise. ``noise``, ``hum`` and
    ``wander`` are amplitudes in the signal's physical unit (µV for EMG, g for the accelerometer) used by
    ``generate`` only (``inject`` keeps the recording's own); ``None`` picks the signal's default: noise
    3 µV / 0.002 g RMS white per channel, hum 0.5 × noise (EMG only, at ``mains_hz``), wander 4 × noise
    (EMG, sum of three 0.05–0.5 Hz sinusoids) / 0.01 g slow sway (accelerometer).
    """

    fasciculation: float = 20.0
    myoclonic_jerk: float = 1.0
    sustained: float = 0.5
    artifact: float = 0.5
    snr_db: float = 20.0
    noise: float | None = None
    hum: float | None = None
    mains_hz: float = 50.0
    wander: float | None = None
    posture_changes: float = 0.0
    walking: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "fasciculation",
            "myoclonic_jerk",
            "sustained",
            "artifact",
            "posture_changes",
            "walking",
        ):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: a rate per minute ≥ 0, got {value}")
        if not np.isfinite(self.snr_db):
            raise ValueError("snr_db must be finite")
        for name in ("noise", "hum", "wander"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: an amplitude ≥ 0, got {value}")

    def rates(self, signal: Signal) -> dict[str, float]:
        """Per-minute rate of each event class this signal can carry (posture and walking: acc only)."""
        out = {
            "fasciculation": self.fasciculation,
            "myoclonic_jerk": self.myoclonic_jerk,
            "sustained": self.sustained,
            "artifact": self.artifact,
        }
        if signal == "acc":
            out |= {"posture": self.posture_changes, "walking": self.walking}
        return out


def analysis_band(signal: Signal, sample_rate: float) -> tuple[float, float]:
    """The band σ_n is measured in; equal to the detector's default pass-band (a test checks it)."""
    if signal == "emg":
        return 20.0, min(450.0, 0.45 * sample_rate)
    return 5.0, min(100.0, 0.45 * sample_rate)


def _band_sos(signal: Signal, sample_rate: float) -> FloatArray:
    sos: FloatArray = sps.butter(
        4, analysis_band(signal, sample_rate), "bandpass", fs=sample_rate, output="sos"
    )
    return sos


def _robust_rms(y: FloatArray) -> FloatArray:
    """1.4826 × median absolute deviation per column: the RMS of Gaussian noise, blind to sparse events."""
    med = np.median(y, axis=0)
    return np.asarray(1.4826 * np.median(np.abs(y - med), axis=0), dtype=np.float64)


def noise_level(x: FloatArray, signal: Signal, sample_rate: float) -> FloatArray:
    """σ_n per detector lane: each EMG channel's, or one for an accelerometer (axes summed in power)."""
    y = sps.sosfiltfilt(_band_sos(signal, sample_rate), np.asarray(x, dtype=np.float64), axis=0)
    r = _robust_rms(y)
    return r if signal == "emg" else np.array([float(np.sqrt(np.sum(r * r)))])


# ---- event shapes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Muap:
    """A motor-unit potential: a mixture of the 1st–3rd derivatives of a Gaussian (std ``s``).

    The 1st derivative is biphasic, the 2nd triphasic; mixing them with a little of the 3rd gives the
    varied, often asymmetric shapes of real potentials. Its duration (±3 s) is ``6 s``."""

    s: float
    coef: tuple[float, float, float]
    gain: float  # makes the continuous waveform's peak 1 before anti-aliasing

    @classmethod
    def draw(cls, rng: np.random.Generator, duration_s: float) -> _Muap:
        c = rng.normal(size=3) * np.array([1.0, 1.0, 0.35])
        c /= np.linalg.norm(c)
        s = duration_s / 6.0
        z = np.linspace(-4.0, 4.0, 801)
        g = np.exp(-0.5 * z * z)
        w = (c[0] * -z + c[1] * (z * z - 1) + c[2] * -(z**3 - 3 * z)) * g
        return cls(s, (float(c[0]), float(c[1]), float(c[2])), 1.0 / float(np.max(np.abs(w))))

    def half_width(self, fs: float) -> float:
        return 3.2 * float(np.hypot(self.s, _ANTI_ALIAS / fs))

    def wave(self, t: FloatArray, fs: float) -> FloatArray:
        """The potential as a device sampling at ``fs`` records it (Gaussian anti-aliasing: analytic,
        since a Gaussian derivative convolved with a Gaussian is a wider Gaussian derivative)."""
        s2 = float(np.hypot(self.s, _ANTI_ALIAS / fs))
        r = self.s / s2
        z = t / s2
        c = self.coef
        w = (c[0] * r**2 * -z + c[1] * r**3 * (z * z - 1) + c[2] * r**4 * -(z**3 - 3 * z)) * np.exp(
            -0.5 * z * z
        )
        return np.asarray(w * self.gain, dtype=np.float64)


def _add_potentials(col: FloatArray, fs: float, centers_s: FloatArray, muap: _Muap, amps: FloatArray) -> None:
    """Add ``muap`` scaled by ``amps`` at each centre time (s) into one channel, vectorised."""
    if centers_s.size == 0:
        return
    h = int(np.ceil(muap.half_width(fs) * fs)) + 1
    centers = centers_s * fs
    idx = np.floor(centers).astype(np.int64)[:, None] + np.arange(-h, h + 2)[None, :]
    w = muap.wave((idx - centers[:, None]) / fs, fs) * amps[:, None]
    ok = (idx >= 0) & (idx < col.size)
    np.add.at(col, idx[ok], w[ok])


def _span(n: int, fs: float, t0: float, t1: float) -> tuple[int, int]:
    return max(0, int(np.floor(t0 * fs))), min(n, int(np.ceil(t1 * fs)) + 1)


def _trapezoid(t: FloatArray, duration: float, ramp: float) -> FloatArray:
    return np.asarray(np.clip(np.minimum(t / ramp, (duration - t) / ramp), 0.0, 1.0), dtype=np.float64)


@dataclass
class _Placed:
    """One drawn event: ``render`` adds it to the signal and returns its truth (start s, end s, amplitude)."""

    kind: str
    detail: str
    duration: float
    render: Callable[[FloatArray, float, float, float], tuple[float, float, float]]
    # render(x, fs, t0, sigma_n) → (start_s, end_s, peak amplitude)


def _peak(w: FloatArray) -> float:
    return float(np.max(np.sqrt(np.sum(w * w, axis=1)))) if w.size else 0.0


def _add_local(x: FloatArray, i0: int, w: FloatArray) -> float:
    """Add ``w`` (samples × channels) at ``i0`` (clipped to the array); return the added peak."""
    i1 = min(x.shape[0], i0 + w.shape[0])
    if i1 <= i0:
        return 0.0
    w = w[: i1 - i0]
    x[i0:i1] += w
    return _peak(w)


# -- EMG


def _emg_fasciculation(rng: np.random.Generator, snr_db: float) -> _Placed:
    duration = float(rng.uniform(0.005, 0.015))
    muap = _Muap.draw(rng, duration)
    snr = snr_db + float(rng.uniform(-SNR_SPREAD_DB, SNR_SPREAD_DB))

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        h = muap.half_width(fs)
        center = t0 + duration / 2
        i0, i1 = _span(x.shape[0], fs, center - h, center + h)
        w = muap.wave(np.arange(i0, i1) / fs - center, fs)
        amp = 10 ** (snr / 20) * sigma
        w *= amp / max(float(np.max(np.abs(w))), 1e-300)
        x[i0:i1] += w[:, None]
        return t0, t0 + duration, amp

    return _Placed("fasciculation", "", duration, render)


def _emg_jerk(rng: np.random.Generator, snr_db: float) -> _Placed:
    duration = float(rng.uniform(0.025, 0.25))
    n_mu = int(rng.integers(3, 9))
    muaps = [_Muap.draw(rng, float(rng.uniform(0.005, 0.015))) for _ in range(n_mu)]
    mu_amp = float(rng.uniform(1.0, 3.0)) * rng.uniform(0.5, 1.5, n_mu)
    count = max(n_mu, round(float(rng.uniform(150, 400)) * duration))
    which = np.concatenate([np.arange(n_mu), rng.integers(0, n_mu, count - n_mu)])
    pos = np.concatenate([[0.0, 1.0], rng.uniform(0, 1, count - 2)])  # first and last bound the burst
    jitter = rng.normal(0, 0.1, count)

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        base = 10 ** (snr_db / 20) * sigma
        i0, i1 = _span(x.shape[0], fs, t0 - 0.01, t0 + duration + 0.01)
        local = np.zeros(i1 - i0)
        for m in range(n_mu):
            sel = which == m
            h = muaps[m].s * 3
            centers = t0 + h + pos[sel] * max(duration - 2 * h, 0.0)
            amps = base * mu_amp[m] * (1 + jitter[sel])
            _add_potentials(local, fs, centers - i0 / fs, muaps[m], amps)
        return t0, t0 + duration, _add_local(x, i0, local[:, None])

    return _Placed("myoclonic_jerk", "", duration, render)


def _motor_pool(
    rng: np.random.Generator, duration: float, level: float, ramp: float, n_mu: int = 25
) -> tuple[list[_Muap], FloatArray, list[FloatArray]]:
    """Discharge times (s from onset) of a motor-unit pool under a trapezoidal excitation ``level``:
    recruitment by threshold (size principle: later units are larger), rate coding 8–35 Hz, ISI CV 0.15."""
    thresholds = 0.7 * (np.arange(n_mu) / n_mu) ** 1.5
    size = (0.6 + 2.5 * np.arange(n_mu) / n_mu) * rng.uniform(0.8, 1.2, n_mu)
    muaps = [_Muap.draw(rng, float(rng.uniform(0.006, 0.016))) for _ in range(n_mu)]
    trains: list[FloatArray] = []
    for r in thresholds:
        times: list[float] = []
        if r < level:
            t = float(rng.uniform(0, 0.05))
            while t < duration:
                e = level * min(t / ramp, (duration - t) / ramp, 1.0)
                if e > r:
                    times.append(t)
                    rate = min(8.0 + 27.0 * (e - r) / (1.0 - r), 35.0)
                    t += max(0.02, (1.0 + 0.15 * float(rng.normal())) / rate)
                else:
                    t += 0.01
        trains.append(np.array(times))
    return muaps, size, trains


def _emg_contraction(rng: np.random.Generator, snr_db: float) -> _Placed:
    cramp = bool(rng.uniform() < 0.2)
    duration = float(rng.uniform(5.0, 20.0) if cramp else rng.uniform(1.0, 8.0))
    level = float(rng.uniform(0.6, 1.0) if cramp else rng.uniform(0.1, 0.8))
    ramp = min(float(rng.uniform(0.5, 2.0) if cramp else rng.uniform(0.2, 1.0)), duration / 3)
    muaps, size, trains = _motor_pool(rng, duration, level, ramp)

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        base = 10 ** (snr_db / 20) * sigma
        i0, i1 = _span(x.shape[0], fs, t0 - 0.02, t0 + duration + 0.02)
        local = np.zeros(i1 - i0)
        first, last = duration, 0.0
        for muap, a, times in zip(muaps, size, trains, strict=True):
            if times.size:
                _add_potentials(local, fs, t0 + times - i0 / fs, muap, np.full(times.size, base * a))
                first, last = min(first, float(times[0])), max(last, float(times[-1]))
        peak = _add_local(x, i0, local[:, None])
        return t0 + max(first - 0.008, 0.0), t0 + min(last + 0.008, duration), peak

    return _Placed("sustained", "cramp" if cramp else "voluntary", duration, render)


def _emg_artifact(rng: np.random.Generator, snr_db: float) -> _Placed:
    variant = str(rng.choice(["pop", "pop", "motion", "motion", "saturation"]))
    sign = float(rng.choice([-1.0, 1.0]))
    if variant == "pop":  # electrode pop: a step that decays as the double layer recharges
        tau = float(rng.uniform(0.05, 0.4))
        height = sign * float(rng.uniform(100, 600))

        def pop(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
            i0, i1 = _span(x.shape[0], fs, t0, t0 + 6 * tau)
            w = height * sigma * np.exp(-(np.arange(i0, i1) / fs - t0).clip(0) / tau)
            return t0, t0 + tau, _add_local(x, i0, w[:, None])

        return _Placed("artifact", "pop", tau, pop)
    if variant == "motion":  # cable or skin movement: swings of 1–8 Hz
        duration = float(rng.uniform(0.3, 1.5))
        comps = int(rng.integers(2, 4))
        freqs, phases = rng.uniform(1.0, 8.0, comps), rng.uniform(0, 2 * np.pi, comps)
        weights = rng.uniform(0.3, 1.0, comps)
        size = float(rng.uniform(30, 200))

        def motion(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
            i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
            t = np.arange(i0, i1) / fs - t0
            w = (weights[None, :] * np.sin(2 * np.pi * freqs[None, :] * t[:, None] + phases)).sum(axis=1)
            w *= np.sin(np.pi * np.clip(t / duration, 0, 1)) ** 2
            w *= size * sigma / max(float(np.max(np.abs(w))), 1e-300)
            return t0, t0 + duration, _add_local(x, i0, w[:, None])

        return _Placed("artifact", "motion", duration, motion)
    duration = float(rng.uniform(0.02, 0.3))  # the amplifier sits at a rail, then recovers
    rail = sign * float(rng.uniform(300, 1000))
    tau = float(rng.uniform(0.01, 0.05))
    return _Placed("artifact", "saturation", duration, _saturation(duration, rail, tau, axis=None))


def _saturation(
    duration: float, rail: float, tau: float, axis: int | None
) -> Callable[[FloatArray, float, float, float], tuple[float, float, float]]:
    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
        cols = slice(None) if axis is None else slice(axis, axis + 1)
        if i1 <= i0:
            return t0, t0 + duration, 0.0
        center = np.median(x[max(0, i0 - round(0.2 * fs)) : i0 + 1, cols], axis=0)
        level = center + (rail * sigma if axis is None else rail)
        before = x[i0:i1, cols].copy()
        x[i0:i1, cols] = level
        r1 = min(x.shape[0], i1 + round(6 * tau * fs))
        if r1 > i1:  # recovery: the offset from the rail decays back to the signal
            jump = level - x[i1, cols]
            x[i1:r1, cols] += jump[None, :] * np.exp(-np.arange(1, r1 - i1 + 1) / (tau * fs))[:, None]
        return t0, t0 + duration + tau, _peak(x[i0:i1, cols] - before)

    return render


# -- accelerometer


def _unit(rng: np.random.Generator) -> FloatArray:
    d = rng.normal(size=3)
    return np.asarray(d / np.linalg.norm(d), dtype=np.float64)


def _acc_twitch(rng: np.random.Generator, snr_db: float) -> _Placed:
    span = float(rng.uniform(0.04, 0.09))
    frac = float(rng.uniform())
    direction = _unit(rng)
    snr = snr_db + float(rng.uniform(-SNR_SPREAD_DB, SNR_SPREAD_DB))

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        duration = max(span, 3.0 / fs)  # a stream carries only what it can sample
        hi = min(30.0, 0.35 * fs)
        freq = min(15.0, 0.6 * hi) + frac * (hi - min(15.0, 0.6 * hi))
        i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
        u = np.clip((np.arange(i0, i1) / fs - t0) / duration, 0, 1)
        w = np.sin(np.pi * u) ** 2 * np.sin(2 * np.pi * freq * duration * u)
        amp = 10 ** (snr / 20) * sigma
        w *= amp / max(float(np.max(np.abs(w))), 1e-300)
        return t0, t0 + duration, _add_local(x, i0, w[:, None] * direction[None, :])

    return _Placed("fasciculation", "", span, render)


def _acc_jerk(rng: np.random.Generator, snr_db: float) -> _Placed:
    duration = float(rng.uniform(0.1, 0.25))
    direction, rumble_dir = _unit(rng), _unit(rng)
    size, rumble = float(rng.uniform(3.0, 8.0)), float(rng.uniform(1.0, 2.0))

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        base = 10 ** (snr_db / 20) * sigma
        i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
        u = np.clip((np.arange(i0, i1) / fs - t0) / duration, 0, 1)
        swing = np.sin(2 * np.pi * u)  # the limb accelerates and stops: one cycle
        freq = min(20.0, 0.35 * fs)
        osc = np.sin(np.pi * u) ** 2 * np.sin(2 * np.pi * freq * duration * u)
        w = base * (size * swing[:, None] * direction + rumble * osc[:, None] * rumble_dir)
        return t0, t0 + duration, _add_local(x, i0, w)

    return _Placed("myoclonic_jerk", "", duration, render)


def _acc_contraction(rng: np.random.Generator, snr_db: float) -> _Placed:
    cramp = bool(rng.uniform() < 0.2)
    duration = float(rng.uniform(5.0, 20.0) if cramp else rng.uniform(1.0, 8.0))
    ramp = min(float(rng.uniform(0.2, 1.0)), duration / 3)
    size = float(rng.uniform(0.5, 1.5) * (2.0 if cramp else 1.0))
    mix = np.abs(rng.normal(size=3)) + 0.2
    seed = int(rng.integers(2**31))

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        # Mechanomyogram of a contraction: band-limited noise (5–40 Hz) under the excitation envelope.
        i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
        n = i1 - i0
        if n < 8:
            return t0, t0 + duration, 0.0
        white = np.random.default_rng(seed).normal(size=(n, 3))
        sos = sps.butter(2, (5.0, min(40.0, 0.4 * fs)), "bandpass", fs=fs, output="sos")
        w = sps.sosfiltfilt(sos, white, axis=0) * mix
        w *= size * 10 ** (snr_db / 20) * sigma / float(np.sqrt(np.mean(np.sum(w * w, axis=1))))
        w *= _trapezoid(np.arange(n) / fs, duration, ramp)[:, None]
        return t0, t0 + duration, _add_local(x, i0, w)

    return _Placed("sustained", "cramp" if cramp else "voluntary", duration, render)


def _gravity_at(x: FloatArray, fs: float, t: float) -> FloatArray:
    """The gravity vector the signal carries just before ``t`` (its mean over the last 0.25 s)."""
    i0, i1 = _span(x.shape[0], fs, t - 0.25, t)
    g = np.mean(x[i0:i1], axis=0) if i1 > i0 else np.array([0.0, 0.0, 1.0])
    return np.asarray(g, dtype=np.float64)


def _acc_posture(rng: np.random.Generator, snr_db: float) -> _Placed:
    duration = float(rng.uniform(0.5, 2.0))
    angle = np.deg2rad(float(rng.uniform(20, 90)))
    axis_hint = _unit(rng)

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        g = _gravity_at(x, fs, t0)
        axis = np.cross(g, axis_hint)
        axis /= max(float(np.linalg.norm(axis)), 1e-12)
        # Rodrigues: g rotated by ``angle`` about ``axis`` (perpendicular to g).
        g_new = g * np.cos(angle) + np.cross(axis, g) * np.sin(angle)
        i0, _ = _span(x.shape[0], fs, t0, t0)
        t = np.arange(i0, x.shape[0]) / fs - t0
        profile = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / duration, 0, 1))
        w = profile[:, None] * (g_new - g)[None, :]
        x[i0:] += w
        return t0, t0 + duration, float(np.linalg.norm(g_new - g))

    return _Placed("sustained", "posture", duration, render)


def _acc_walking(rng: np.random.Generator, snr_db: float) -> _Placed:
    duration = float(rng.uniform(5.0, 30.0))
    cadence = float(rng.uniform(1.6, 2.2))  # steps per second
    bounce = float(rng.uniform(0.1, 0.25))
    n_steps = int(duration * cadence) + 1
    impacts = rng.uniform(0.1, 0.5, n_steps)
    step_jitter = rng.normal(0, 0.01, n_steps)
    side = _unit(rng)

    def render(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
        g = _gravity_at(x, fs, t0)
        up = g / max(float(np.linalg.norm(g)), 1e-12)
        lateral = side - up * float(side @ up)
        lateral /= max(float(np.linalg.norm(lateral)), 1e-12)
        i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
        t = np.arange(i0, i1) / fs - t0
        env = _trapezoid(t, duration, 0.5)
        vertical = bounce * np.sin(2 * np.pi * cadence * t) * env
        sway = 0.05 * np.sin(np.pi * cadence * t) * env
        heel = np.zeros_like(t)
        ring = min(25.0, 0.35 * fs)
        for k in range(n_steps):  # heel strikes: damped ringing, 15-ms decay
            ts = (k + 0.75) / cadence + step_jitter[k]
            d = t - ts
            m = (d >= 0) & (d < 0.08)
            heel[m] += impacts[k] * np.exp(-d[m] / 0.015) * np.cos(2 * np.pi * ring * d[m])
        w = (vertical + heel)[:, None] * up + sway[:, None] * lateral
        return t0, t0 + duration, _add_local(x, i0, w)

    return _Placed("sustained", "walking", duration, render)


def _acc_artifact(rng: np.random.Generator, snr_db: float) -> _Placed:
    if rng.uniform() < 0.6:  # a knock on the sensor: a brief, large, broadband ring
        size = float(rng.uniform(1.0, 3.0))
        direction = _unit(rng)
        decay = float(rng.uniform(0.004, 0.01))

        def knock(x: FloatArray, fs: float, t0: float, sigma: float) -> tuple[float, float, float]:
            duration = max(0.03, 3.0 / fs)
            i0, i1 = _span(x.shape[0], fs, t0, t0 + duration)
            d = np.arange(i0, i1) / fs - t0
            w = np.exp(-d.clip(0) / max(decay, 1.5 / fs)) * np.cos(2 * np.pi * min(40.0, 0.4 * fs) * d)
            w *= size / max(float(np.max(np.abs(w))), 1e-300)
            return t0, t0 + duration, _add_local(x, i0, w[:, None] * direction[None, :])

        return _Placed("artifact", "knock", 0.03, knock)
    duration = float(rng.uniform(0.02, 0.1))
    rail = float(rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 4.0))
    axis = int(rng.integers(0, 3))
    render = _saturation(duration, rail, 0.005, axis=axis)
    return _Placed("artifact", "saturation", duration, render)


_EMG_DRAW: dict[str, Callable[[np.random.Generator, float], _Placed]] = {
    "fasciculation": _emg_fasciculation,
    "myoclonic_jerk": _emg_jerk,
    "sustained": _emg_contraction,
    "artifact": _emg_artifact,
}
_ACC_DRAW: dict[str, Callable[[np.random.Generator, float], _Placed]] = {
    "fasciculation": _acc_twitch,
    "myoclonic_jerk": _acc_jerk,
    "sustained": _acc_contraction,
    "artifact": _acc_artifact,
    "posture": _acc_posture,
    "walking": _acc_walking,
}
# Mean durations (s), for the gap that makes the realised rates match the requested ones.
_MEAN_S = {
    "fasciculation": 0.01,
    "myoclonic_jerk": 0.14,
    "sustained": 6.1,
    "artifact": 0.4,
    "posture": 1.25,
    "walking": 17.5,
}


def _guard(kind: str) -> float:
    return TWITCH_GUARD_S if kind in ("fasciculation", "myoclonic_jerk") else ACTIVITY_GUARD_S


def _schedule(
    rng: np.random.Generator, signal: Signal, physiology: Physiology, span_s: float
) -> list[tuple[float, _Placed]]:
    """Events on a timeline of ``span_s`` seconds, never overlapping: one renewal process whose class is
    drawn by rate, a guard after each event (twitches ``TWITCH_GUARD_S``, the rest ``ACTIVITY_GUARD_S``)
    plus an exponential gap chosen so each class keeps its requested rate per minute."""
    rates = {k: v for k, v in physiology.rates(signal).items() if v > 0}
    total = sum(rates.values())
    if total <= 0:
        return []
    kinds = list(rates)
    p = np.array([rates[k] for k in kinds]) / total
    busy = float(sum(pk * (_MEAN_S[k] + _guard(k)) for pk, k in zip(p, kinds, strict=True)))
    extra = max(60.0 / total - busy, 0.05 * 60.0 / total)
    draw = _EMG_DRAW if signal == "emg" else _ACC_DRAW
    out: list[tuple[float, _Placed]] = []
    t = LEAD_S + float(rng.exponential(extra))
    while True:
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        ev = draw[kind](rng, physiology.snr_db)
        if t + ev.duration > span_s - 0.5:
            return out
        out.append((t, ev))
        t += ev.duration + _guard(kind) + float(rng.exponential(extra))


def _truth(muscle: str, placed: _Placed, span: tuple[float, float, float], unit: Unit) -> TruthEvent:
    start, end, amp = span
    return TruthEvent(
        muscle, round(start * 1e9), round(end * 1e9), placed.kind, amp, unit.symbol, placed.detail
    )


def _check(x: FloatArray, signal: Signal, sample_rate: float) -> FloatArray:
    if signal not in ("emg", "acc"):
        raise ValueError(f"signal must be 'emg' or 'acc', got {signal!r}")
    if not sample_rate > 0:
        raise ValueError("sample_rate must be > 0")
    x = np.array(x, dtype=np.float64)  # a copy: the caller's array is never changed
    if x.ndim != 2:
        raise ValueError(f"expected a (samples, channels) array, got shape {x.shape}")
    if signal == "acc" and x.shape[1] != 3:
        raise ValueError("an accelerometer background has 3 axes")
    return x


def generate(
    signal: Signal,
    sample_rate: float,
    duration_s: float,
    physiology: Physiology,
    seed: int,
    muscle: str = "m",
) -> tuple[FloatArray, list[TruthEvent]]:
    """A synthetic recording (samples × channels, physical units: EMG 1 channel µV, acc 3 axes g) and its
    ground truth, sorted by start; times relative to sample 0. Deterministic for a given seed."""
    spec = spec_for(signal, sample_rate)
    if signal not in ("emg", "acc"):
        raise ValueError(f"signal must be 'emg' or 'acc', got {signal!r}")
    n = round(duration_s * sample_rate)
    bg_seed, ev_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(bg_seed)
    t = np.arange(n) / sample_rate
    noise = physiology.noise if physiology.noise is not None else spec.noise_rms
    x = rng.normal(0.0, noise, (n, spec.channels))
    if signal == "emg":
        hum = physiology.hum if physiology.hum is not None else 0.5 * noise
        wander = physiology.wander if physiology.wander is not None else 4.0 * noise
        f, ph, wt = rng.uniform(0.05, 0.5, 3), rng.uniform(0, 2 * np.pi, 3), rng.dirichlet(np.ones(3))
        drift = (wander * wt[None, :] * np.sin(2 * np.pi * f[None, :] * t[:, None] + ph)).sum(axis=1)
        mains = hum * (
            np.sin(2 * np.pi * physiology.mains_hz * t) + 0.2 * np.sin(6 * np.pi * physiology.mains_hz * t)
        )
        if physiology.mains_hz * 3 >= sample_rate / 2:
            mains = hum * np.sin(2 * np.pi * physiology.mains_hz * t)
        if physiology.mains_hz >= sample_rate / 2:
            mains = np.zeros(n)
        x += (drift + mains)[:, None]
    else:
        gravity = _unit(rng)
        sway = physiology.wander if physiology.wander is not None else 0.01
        x += (
            gravity[None, :] * (1.0 + sway * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 2 * np.pi)))[:, None]
        )
    sigma = float(noise_level(x, signal, sample_rate)[0]) if n > 0 else noise
    events = _schedule(np.random.default_rng(ev_seed), signal, physiology, duration_s)
    truth = [_truth(muscle, ev, ev.render(x, sample_rate, t0, sigma), spec.unit) for t0, ev in events]
    full_scale = 32767 * spec.scale
    np.clip(x, -full_scale, full_scale, out=x)
    return x, sorted(truth, key=lambda e: e.start_ns)


def inject(
    background: FloatArray,
    signal: Signal,
    sample_rate: float,
    physiology: Physiology,
    seed: int,
    muscle: str = "m",
    rest_mask: npt.NDArray[np.bool_] | None = None,
) -> tuple[FloatArray, list[TruthEvent]]:
    """Put ``physiology``'s events on a real recording (samples × channels, physical units; acc: 3 axes
    in g), only where ``rest_mask`` is True (with ``REST_MARGIN_S`` of rest either side), each scaled to
    the background's robust noise level within ±1 s of it (σ_n of the module docstring). Several EMG
    channels get each event on every channel, scaled to each channel's noise; truth amplitudes are
    channel 0's. Returns a new array and the truth (times from sample 0). Deterministic for a seed."""
    x = _check(background, signal, sample_rate)
    n = x.shape[0]
    mask = np.ones(n, dtype=bool) if rest_mask is None else np.asarray(rest_mask, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"rest_mask must have shape ({n},), got {mask.shape}")
    rest = np.flatnonzero(mask)
    spec = spec_for(signal, sample_rate)
    y = sps.sosfiltfilt(_band_sos(signal, sample_rate), x, axis=0) if n > 27 else np.zeros_like(x)
    events = _schedule(np.random.default_rng(seed), signal, physiology, rest.size / sample_rate)
    margin = round(REST_MARGIN_S * sample_rate)
    truth: list[TruthEvent] = []
    for v0, ev in events:  # v0: seconds of rest time before the event
        k0 = round(v0 * sample_rate)
        k1 = k0 + max(1, round(ev.duration * sample_rate))
        lo, hi = k0 - margin, k1 + margin
        if lo < 0 or hi >= rest.size or rest[hi] - rest[lo] != hi - lo:
            continue  # the event and its margins must lie in one stretch of rest
        t0 = rest[k0] / sample_rate
        i0, i1 = _span(n, sample_rate, t0 - 1.0, t0 + ev.duration + 1.0)
        local = _robust_rms(y[i0:i1])
        sigmas = local if signal == "emg" else np.array([float(np.sqrt(np.sum(local * local)))])
        spans = []
        for c, sigma in enumerate(sigmas):
            view = x[:, c : c + 1] if signal == "emg" else x
            spans.append(ev.render(view, sample_rate, t0, float(sigma)))
        truth.append(_truth(muscle, ev, spans[0], spec.unit))
    return x, sorted(truth, key=lambda e: e.start_ns)
