"""Synthetic signals with ground truth: rest noise plus twitches injected at known times.

Surface EMG (µV): white electrode/amplifier noise, a little mains hum and baseline wander, and
fasciculation-like motor-unit potentials — bi- or triphasic, 6–14 ms, tens to a few hundred µV peak
(needle EMG shows several hundred µV over 5–15 ms; surface potentials are smaller and smoother).

Accelerometer (g, 3 axes): gravity along a fixed posture, sensor noise of a few mg, and twitches as
brief damped oscillations (15–30 Hz, 40–90 ms, tens of mg) — mechanomyography sees muscle twitches
at roughly 5–100 Hz.

Everything is deterministic for a given seed. Event *times* are drawn for a whole wear segment up
front, so a chunk's content never depends on how the stream is cut into chunks.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from collector.frames import Unit

Signal = Literal["emg", "acc"]
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
    """A twitch the generator injected; times in ns since the epoch."""

    muscle: str
    start_ns: int
    end_ns: int
    kind: str
    amplitude: float
    unit: str

    def to_json_dict(self) -> dict[str, object]:
        return {
            "muscle": self.muscle,
            "start": self.start_ns / 1e9,
            "end": self.end_ns / 1e9,
            "kind": self.kind,
            "amplitude": round(self.amplitude, 6),
            "unit": self.unit,
        }


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

    def _add(self, x: FloatArray, t: FloatArray, s: _Shape) -> None:
        u = (t - s.onset_s) / s.duration_s  # 0..1 across the event
        m = (u >= 0) & (u <= 1)
        if not m.any():
            return
        um = u[m]
        if self.spec.signal == "emg":
            # Hermite-like phases: derivatives of a Gaussian give bi- (1st) and triphasic (2nd) potentials.
            z = (um - 0.5) * 6.0
            g = np.exp(-0.5 * z * z)
            w = -z * g if s.param == 2 else (1 - z * z) * g
            w = w / np.max(np.abs(w)) * s.amplitude
            x[m, 0] += w
            return
        env = np.sin(np.pi * um) ** 2
        w = s.amplitude * env * np.sin(2 * np.pi * s.param * s.duration_s * um)
        x[m, :] += w[:, None] * np.asarray(s.direction)[None, :]


def quantise(x: FloatArray, spec: SignalSpec) -> npt.NDArray[np.int16]:
    return np.clip(np.round(x / spec.scale), -32768, 32767).astype(np.int16)
