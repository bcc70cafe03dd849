"""Limb movement for the emulated wearables: one timeline of rotations per device, seen by all its sensors.

A wearable sits on a limb segment. Its movement is a sequence of events that never overlap, each a rotation
of the segment about one axis — fixed in the sensor's frame for the event — through an angle θ(t):

- **posture change** (sitting down, standing up, turning over): a one-way turn of 20–90° over 0.5–2 s
  (raised cosine); every second one turns back, so the sensor keeps to a few postures instead of tumbling;
- **walking bout**: the segment swings ±20–35° at stride frequency (half the cadence of 1.6–2.2 steps/s)
  for 5–30 s, ramped in and out over 0.5 s, with a heel strike at every step (a 25-Hz ring decaying in
  15 ms, 0.1–0.5 g along the segment);
- **limb jerk** (a myoclonic jerk): out and back by 2–6° in 0.15–0.3 s.

From the rotation R(t) (sensor frame → the frame the sensor had when the timeline began) follow, sample by
sample: the gyroscope's angular rate ω = a·θ'(t) (the event's axis a; °/s), the orientation quaternion of
R(t), and what the accelerometer sees besides: its resting reading turned into the moved sensor frame
(gravity moves between the axes) plus the lever arm's tangential and centripetal acceleration
α×r + ω×(ω×r) (r: 0.1–0.35 m from the joint, drawn per event) and the heel strikes.

Everything is a pure function of the time since the timeline's start, drawn lazily in order from the
timeline's own seed: streams started at different moments see the same movement, and runs repeat. Muscle
twitches are a vibration of the skin, not a turn of the limb: they do not reach the gyroscope here.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from twitchwatch.collector.synth import TruthEvent

FloatArray = npt.NDArray[np.float64]
Kind = Literal["posture", "walking", "jerk"]

STANDARD_GRAVITY: Final = 9.80665  # m/s² per g
LEAD_S: Final = 1.5  # no movement in the first moments of a timeline
GUARD_S: Final = 1.5  # stillness after each movement before the next
RAMP_S: Final = 0.5  # a walking bout's swing fades in and out over this
HEEL_RING_HZ: Final = 25.0
HEEL_DECAY_S: Final = 0.015
_MEAN_S: Final[dict[Kind, float]] = {"posture": 1.25, "walking": 17.5, "jerk": 0.225}


@dataclass(frozen=True)
class Movement:
    """How often the wearer moves: events per minute of each kind (all 0: the wearer keeps still)."""

    posture_changes: float = 0.0
    walking: float = 0.0
    limb_jerks: float = 0.0

    def __post_init__(self) -> None:
        for name in ("posture_changes", "walking", "limb_jerks"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: a rate per minute ≥ 0, got {value}")

    @property
    def still(self) -> bool:
        return not (self.posture_changes or self.walking or self.limb_jerks)

    def rates(self) -> dict[Kind, float]:
        return {"posture": self.posture_changes, "walking": self.walking, "jerk": self.limb_jerks}


def rotation(axis: FloatArray, angle: FloatArray) -> FloatArray:
    """Rotation matrices about a unit ``axis`` by each of ``angle`` (rad), shape (n, 3, 3) (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.asarray(np.eye(3) + s * k + (1.0 - c) * (k @ k), dtype=np.float64)


def quaternion(matrices: FloatArray) -> FloatArray:
    """Unit quaternions (w, x, y, z), w ≥ 0, of rotation matrices (n, 3, 3)."""
    m = matrices
    w = np.sqrt(np.clip(1.0 + m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2], 0.0, None)) / 2
    x = np.sqrt(np.clip(1.0 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], 0.0, None)) / 2
    y = np.sqrt(np.clip(1.0 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], 0.0, None)) / 2
    z = np.sqrt(np.clip(1.0 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2], 0.0, None)) / 2
    x = np.copysign(x, m[:, 2, 1] - m[:, 1, 2])
    y = np.copysign(y, m[:, 0, 2] - m[:, 2, 0])
    z = np.copysign(z, m[:, 1, 0] - m[:, 0, 1])
    q = np.stack([w, x, y, z], axis=1)
    return np.asarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Turn:
    """One movement event. ``axis`` and ``lever`` are in the sensor frame at its start; ``before`` is the
    rotation the sensor had then."""

    kind: Kind
    start_s: float
    duration_s: float
    axis: FloatArray
    angle_rad: float  # posture: the turn (signed); walking: swing amplitude; jerk: peak angle
    lever_m: FloatArray
    before: FloatArray
    stride_hz: float = 0.0
    steps_s: tuple[float, ...] = ()  # heel strikes, from the start
    impacts_g: tuple[float, ...] = ()

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def final_angle(self) -> float:
        return self.angle_rad if self.kind == "posture" else 0.0

    @functools.cached_property
    def after(self) -> FloatArray:
        return np.asarray(self.before @ rotation(self.axis, np.array([self.final_angle]))[0])

    def angle(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """θ, θ' and θ'' (rad, rad/s, rad/s²) at ``t`` seconds from the start, 0 ≤ t ≤ duration."""
        a, d = self.angle_rad, self.duration_s
        u = t / d
        if self.kind == "posture":
            p = math.pi * u
            return (
                a * (1 - np.cos(p)) / 2,
                a * math.pi / (2 * d) * np.sin(p),
                a * math.pi**2 / (2 * d * d) * np.cos(p),
            )
        if self.kind == "jerk":
            p = 2 * math.pi * u
            return (
                a * (1 - np.cos(p)) / 2,
                a * math.pi / d * np.sin(p),
                2 * a * math.pi**2 / (d * d) * np.cos(p),
            )
        env, env1, env2 = _envelope(t, d)
        w = 2 * math.pi * self.stride_hz
        s, c = np.sin(w * t), np.cos(w * t)
        return a * env * s, a * (env1 * s + env * w * c), a * (env2 * s + 2 * env1 * w * c - env * w * w * s)

    def heel_g(self, t: FloatArray, sample_rate: float) -> FloatArray:
        """Heel-strike acceleration (g) along the segment at ``t`` seconds from the start."""
        out = np.zeros_like(t)
        ring = min(HEEL_RING_HZ, 0.35 * sample_rate)  # a stream carries only what it can sample
        lo = bisect.bisect_left(self.steps_s, float(t[0]) - 0.08) if len(t) else 0
        hi = bisect.bisect_right(self.steps_s, float(t[-1])) if len(t) else 0
        for at, size in zip(self.steps_s[lo:hi], self.impacts_g[lo:hi], strict=True):
            d = t - at
            m = (d >= 0) & (d < 0.08)
            out[m] += size * np.exp(-d[m] / HEEL_DECAY_S) * np.cos(2 * math.pi * ring * d[m])
        return out

    def truth(self, muscle: str, start_ns: int) -> TruthEvent:
        # Peak rate from the profile's closed forms: posture aπ/2d, jerk aπ/d, walking ≈ a·2πf.
        peak = {
            "posture": abs(self.angle_rad) * math.pi / (2 * self.duration_s),
            "jerk": self.angle_rad * math.pi / self.duration_s,
            "walking": self.angle_rad * 2 * math.pi * self.stride_hz,
        }[self.kind]
        kind, detail = ("myoclonic_jerk", "limb jerk") if self.kind == "jerk" else ("sustained", self.kind)
        return TruthEvent(
            muscle,
            start_ns + round(self.start_s * 1e9),
            start_ns + round(self.end_s * 1e9),
            kind,
            math.degrees(peak),
            "°/s",
            detail,
        )


def _envelope(t: FloatArray, duration: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """A walking bout's envelope (raised-cosine ramps of ``RAMP_S``) and its first two derivatives."""
    ramp = min(RAMP_S, duration / 3)
    env, d1, d2 = np.ones_like(t), np.zeros_like(t), np.zeros_like(t)
    k = math.pi / ramp
    for m, x, sign in ((t < ramp, t, 1.0), (t > duration - ramp, duration - t, -1.0)):
        env[m] = (1 - np.cos(k * x[m])) / 2
        d1[m] = sign * k / 2 * np.sin(k * x[m])
        d2[m] = k * k / 2 * np.cos(k * x[m])
    return env, d1, d2


def _cross(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise cross product of (n, 3) arrays (``np.cross`` costs more in its axis handling than this)."""
    out = np.empty_like(a)
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


def _unit(rng: np.random.Generator) -> FloatArray:
    v = rng.normal(size=3)
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class MotionAt:
    """The movement at n sample times."""

    rotation: FloatArray  # (n, 3, 3): sensor frame → the frame at the timeline's start
    angular_rate_dps: FloatArray  # (n, 3), sensor frame
    linear_g: FloatArray  # (n, 3): what the accelerometer sees besides the turned resting reading

    @property
    def orientation(self) -> FloatArray:
        return quaternion(self.rotation)


class MotionTimeline:
    """The movement of one wearable from ``start_ns`` on (device clock, Unix ns), deterministic by seed."""

    def __init__(self, movement: Movement, seed: int, start_ns: int, muscle: str = "m") -> None:
        self.movement = movement
        self.seed = seed
        self.start_ns = start_ns
        self.muscle = muscle
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6D6F7665]))  # "move"
        self._turns: list[Turn] = []
        self._starts: list[float] = []
        self._starts_cache: FloatArray = np.empty(0)
        self._reported = 0  # turns handed out as truth so far
        self._pending_return: Turn | None = None
        rates = {k: v for k, v in movement.rates().items() if v > 0}
        self._kinds: list[Kind] = list(rates)
        total = sum(rates.values())
        self._p = np.array([rates[k] / total for k in self._kinds]) if total else np.empty(0)
        busy = sum(p * (_MEAN_S[k] + GUARD_S) for p, k in zip(self._p, self._kinds, strict=True))
        # The gap after each event keeps every kind at its rate per minute (never below 5 % of the mean).
        self._gap_s = max(60.0 / total - busy, 0.05 * 60.0 / total) if total else math.inf
        self._next_s = LEAD_S + (float(self._rng.exponential(self._gap_s)) if total else 0.0)

    @property
    def still(self) -> bool:
        return self.movement.still

    def seconds(self, t_ns: npt.NDArray[np.int64] | int) -> FloatArray:
        return np.asarray((np.asarray(t_ns, dtype=np.int64) - self.start_ns) / 1e9, dtype=np.float64)

    def _draw_until(self, t_s: float) -> None:
        """Draw turns until one starts after ``t_s`` (so every turn touching ``t_s`` is known)."""
        while self._kinds and self._next_s <= t_s:
            kind = self._kinds[int(self._rng.choice(len(self._kinds), p=self._p))]
            turn = self._draw(kind, self._next_s)
            self._turns.append(turn)
            self._starts.append(turn.start_s)
            self._next_s = turn.end_s + GUARD_S + float(self._rng.exponential(self._gap_s))

    def _draw(self, kind: Kind, start: float) -> Turn:
        rng = self._rng
        before = self._turns[-1].after if self._turns else np.eye(3)
        axis = _unit(rng)
        lever = np.cross(axis, _unit(rng))
        lever *= float(rng.uniform(0.1, 0.35)) / max(float(np.linalg.norm(lever)), 1e-9)
        if kind == "posture":
            duration = float(rng.uniform(0.5, 2.0))
            back = self._pending_return
            if back is not None:  # turn back the way the last one came
                self._pending_return = None
                return Turn(kind, start, duration, back.axis, -back.angle_rad, back.lever_m, before)
            angle = math.radians(float(rng.uniform(20, 90)))
            turn = Turn(kind, start, duration, axis, angle, lever, before)
            self._pending_return = turn
            return turn
        if kind == "jerk":
            duration = float(rng.uniform(0.15, 0.3))
            return Turn(kind, start, duration, axis, math.radians(float(rng.uniform(2, 6))), lever, before)
        duration = float(rng.uniform(5.0, 30.0))
        cadence = float(rng.uniform(1.6, 2.2))
        n = int(duration * cadence)
        steps = tuple(float(s) for s in (np.arange(n) + 0.75) / cadence + rng.normal(0, 0.01, n))
        impacts = tuple(float(v) for v in rng.uniform(0.1, 0.5, n))
        amplitude = math.radians(float(rng.uniform(20, 35)))
        return Turn(kind, start, duration, axis, amplitude, lever, before, cadence / 2, steps, impacts)

    def at(self, t_s: FloatArray, sample_rate: float) -> MotionAt:
        """The movement at ``t_s`` (seconds since the timeline's start, ascending)."""
        n = len(t_s)
        rot = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        rate = np.zeros((n, 3))
        linear = np.zeros((n, 3))
        if n == 0 or self.still:
            return MotionAt(rot, rate, linear)
        self._draw_until(float(t_s[-1]))
        index = np.searchsorted(self._starts_array(), t_s, side="right") - 1
        for k in np.unique(index[index >= 0]):
            turn = self._turns[int(k)]
            m = index == k
            if t_s[m][0] >= turn.end_s:  # between movements: the posture the last one left
                rot[m] = turn.after
                continue
            t = np.minimum(t_s[m] - turn.start_s, turn.duration_s)
            theta, d1, d2 = turn.angle(t)
            done = t_s[m] - turn.start_s >= turn.duration_s
            theta[done], d1[done], d2[done] = turn.final_angle, 0.0, 0.0
            rot[m] = turn.before @ rotation(turn.axis, theta)
            omega = d1[:, None] * turn.axis
            alpha = d2[:, None] * turn.axis
            r = np.broadcast_to(turn.lever_m, omega.shape)
            lever = _cross(alpha, r) + _cross(omega, _cross(omega, r))
            heel = turn.heel_g(t_s[m] - turn.start_s, sample_rate)
            heel[done] = 0.0
            along = turn.lever_m / float(np.linalg.norm(turn.lever_m))
            rate[m] = np.degrees(omega)
            linear[m] = lever / STANDARD_GRAVITY + heel[:, None] * along
        return MotionAt(rot, rate, linear)

    def _starts_array(self) -> FloatArray:
        if len(self._starts_cache) != len(self._starts):
            self._starts_cache = np.asarray(self._starts, dtype=np.float64)
        return self._starts_cache

    def take_truth(self, until_s: float) -> list[TruthEvent]:
        """Movements that began before ``until_s`` and were not handed out yet (each is handed out once,
        to whichever of the device's streams gets there first)."""
        if self.still:
            return []
        self._draw_until(until_s)
        upto = bisect.bisect_left(self._starts, until_s)
        out = [t.truth(self.muscle, self.start_ns) for t in self._turns[self._reported : upto]]
        self._reported = max(self._reported, upto)
        return out

    def turns_until(self, t_s: float) -> Sequence[Turn]:
        """Every turn that began by ``t_s`` (for tests and offline checks)."""
        self._draw_until(t_s)
        return self._turns[: bisect.bisect_right(self._starts, t_s)]
