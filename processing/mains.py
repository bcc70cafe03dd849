"""Mains interference on surface EMG: find the lines, follow them, take them out before detection.

A wearable's leads and the body pick up the mains field (capacitively from wiring and appliances,
inductively from a loop between the leads): a sinusoid at the mains frequency — 50 or 60 Hz, off nominal by
the grid's deviation (well under 0.1 Hz) and by the device's clock (a rate that is 0.5 % off moves 60 Hz by
0.3 Hz) — and its harmonics from nonlinear loads (mostly odd: 150, 250 Hz …), 10–200 µV at the surface,
often far above an electrode's 1–5 µV of noise. It sits in the EMG band, so the detector's floor became the
hum's power: a 30-µV potential under 10 µV of hum was missed.

A motor-unit potential is broadband (5–15 ms: its energy spreads over 20–450 Hz) and the hum is a few
lines, each far narrower than 1 Hz; taking out a band of about a hertz around each line takes away well
under a per cent of a potential's energy and leaves its shape. This canceller does that per lane, as an
adaptive **sinusoid subtraction** (a synchronous demodulator per line — equivalent to a notch of about a
hertz that follows the line's frequency, amplitude and phase):

- **Finding the lines** (``_analyse``). The last second of a lane's cleaned band-passed signal is cut in
  quarters; a line is a harmonic of 50 or 60 Hz (±``mains_tolerance_hz``) whose Hann-windowed spectrum
  peaks at least ``LINE_RATIO`` times above the median of the neighbouring 20 Hz in *every* quarter — a
  stationary line, not a burst (a hand near a lead: 0.1–0.4 s) or a contraction (broadband) — with a power
  of at least ``mains_line_db`` of the noise's at its frequency, averaged over the quarters. A lane is
  taken on when its fundamental is a line (the mains' largest component), with those of its harmonics that
  are lines too; one mains frequency per stream (its lanes share one grid and one sample clock). Every lane
  is looked at once, at the last frame's boundary at least an epoch before the warm-up ends, so that the
  floor is learnt without the hum (``warm_powers``); after that a lane without lines only when its
  **screen** — its power at 50 and 60 Hz against 30, 40, 70 and 80 Hz, from one demodulation a second —
  shows a fundamental, and the lanes with lines every ``mains_check_s`` (harmonics come and go).
- **Following them** (``_follow``). Per frame (two of the detector's epochs, 200 ms: a whole number of
  periods at 50 and 60 Hz) the residual is demodulated at each line; the lines' phasors move towards it with
  time constant ``mains_tau_s``, and a phase-locked loop whose proportional path that is moves the stream's
  mains frequency. A frame whose residual energy is beyond 4 × its recent level (a potential, a
  contraction's first seconds, a burst of hum) moves nothing; a lasting change raises that level within
  about 2 s.
- **Taking them out** (``clean``). Each frame's hum is synthesised from the phasors of the frames before it,
  so what a potential's own frame sees is never shaped by that potential. It is subtracted from the
  band-passed signal (what the detector measures) and, through the band-pass's response at each line, from
  the raw signal (what the slow statistic, the waveforms and the slow excursion read).
- **What is left** (``untracked``). Hum that swings faster than it is followed leaves its lines in the
  residual; where they stay as strong as the rest of it, the detector calls the lane noisy while they do.
  Bursts of hum are judged as events (``EmgEngine.mains_share``), not here.

Everything is computed per frame in arrays of fixed shapes, in frame order, from the samples alone, so the
result is the same to the bit however the stream is chunked; the state is numpy arrays (picklable).
Phasors are kept as stacked real arrays — cosine coefficients over sine coefficients, (2K × lanes) — so that
each step is one matrix product: the hum over a frame is ``table.T @ q``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import fft as sp_fft
from scipy import signal as sps

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

FRAME_EPOCHS = 2  # the lines are followed per frame of this many of the detector's epochs (200 ms)
QUARTERS = 4  # a line must stand out in each quarter of the analysis window: stationary, not a burst
NEIGHBOURS_HZ = 20.0  # its level is compared with the median of this much spectrum either side
MIN_GAIN = 0.1  # harmonics where the band-pass passes less than this (−20 dB) are not followed
# A frame whose residual energy is beyond ``GATE_LOUD`` × the lane's recent level does not move the lines: a
# potential, a contraction's first seconds, a burst of hum (≤ 0.4 s) are not the hum. The level follows each
# frame's energy, capped at ``GATE_LOUD`` × itself, over ``LEVEL_S``: one loud frame lifts it by a third, a
# lasting change (the hum stepped up, a contraction went on) is its level within about 2 s.
GATE_LOUD = 4.0
LEVEL_S = 1.6
PHASE_VAR = 1e-3  # the phase error steers the frequency where its noise's variance is below this (rad²)
# The mains frequency and a device's sample clock drift over seconds to minutes: the frequency followed
# settles over this (its estimate's noise falls with it), steered every ``PLL_EVERY`` frames.
FREQ_TAU_S = 2.0
PLL_EVERY = 3
# The tables follow the frequency once it has moved this much over a frame at the highest harmonic (−30 dB
# of a harmonic that is itself a few per cent of the hum).
RETABLE_RAD = 0.03
# ... and the rotation by a frame once the fundamental's phase would slip this much in one: the loop takes a
# smaller slip up as a phase error (at harmonic k, k times it), so the frequency it follows shifts by as much.
TURN_RAD = 1e-3
REGAIN_HZ = 0.05  # ... and the band-pass's response at the lines once it has moved this much
# A line stands out of its neighbours' median at least this much in each quarter, however strong it must be
# besides (``mains_line_db``): noise's largest of a few bins passes 10 × the median once in ~10⁵ quarters.
LINE_RATIO = 10.0
LINE_BIAS = 1.8
TAKE_ON_LANES = 8  # the mains frequency is measured on at most this many lanes
# The screen a lane without lines is watched by, every ``SCREEN_EVERY`` frames: its demodulation over the
# frame at 30–80 Hz in steps of 10 Hz (orthogonal over 100 ms), averaged over ``SCREEN_S``; a nominal
# fundamental whose power there reaches what a line ``SCREEN_DB`` under the weakest one followed gives over
# the mean of 30, 40, 70 and 80 Hz has the lane looked at in full, at most every ``RELOOK_S``.
SCREEN_HZ = (30.0, 40.0, 50.0, 60.0, 70.0, 80.0)
SCREEN_EVERY = 5
SCREEN_S = 3.0
SCREEN_DB = 0.0
RELOOK_S = 10.0
# Hum that changes faster than it is followed (a limb swaying by a mains cable) leaves lines in the residual.
# Their power beyond what noise puts there, over the rest of the residual, per ``PLL_EVERY`` frames, capped at
# ``UNTRACKED_CAP`` and averaged over ``UNTRACKED_S``: from ``UNTRACKED_FLAG`` on (the noise doubled: twitches
# turn into "activity around it" or are missed) the lane is noisy while it lasts (``untracked``). A burst of
# hum (≤ 0.4 s: one or two such spans) does not reach it.
UNTRACKED_CAP = 2.0
UNTRACKED_S = 2.0
UNTRACKED_FLAG = 1.0


def harmonics(f0: float, rate: float, sos: FloatArray) -> int:
    """How many harmonics of ``f0`` are followed: those below 0.98 × Nyquist up to the first where the
    band-pass passes less than ``MIN_GAIN`` (beyond it they barely reach the detector)."""
    top = math.ceil(0.49 * rate / f0) - 1
    if top < 1:
        return 0
    _, h = sps.sosfreqz(sos, worN=f0 * np.arange(1, top + 1), fs=rate)
    weak = np.flatnonzero(np.abs(h) < MIN_GAIN)
    return int(weak[0]) if weak.size else top


def _rotation(c: FloatArray, s: FloatArray) -> FloatArray:
    """The (2K × 2K) matrix that multiplies each stacked phasor (cos coefficient a, sin coefficient b:
    a − i b) by c + i s."""
    k = c.size
    out = np.zeros((2 * k, 2 * k))
    i = np.arange(k)
    out[i, i] = c
    out[i + k, i + k] = c
    out[i, i + k] = s
    out[i + k, i] = -s
    return out


class MainsCanceller:
    """Per lane (one channel each), the mains lines of a band-passed stream, found and subtracted.

    ``clean(x, y, base)`` takes a run of whole blocks — raw ``x`` and band-passed ``y`` (samples × lanes),
    ``base`` the absolute index of its first sample — subtracts the hum from ``y`` in place and returns the
    raw samples without it (``x`` itself while no lane has hum)."""

    def __init__(
        self,
        rate: float,
        lanes: int,
        sos: FloatArray,
        epoch_samples: int,
        block: int,
        first_at: int,
        nominal_hz: tuple[float, ...],
        tolerance_hz: float,
        line_db: float,
        window_s: float,
        check_s: float,
        tau_s: float,
    ) -> None:
        self.rate, self.lanes = rate, lanes
        self._sos = sos
        self._eng = epoch_samples  # the detector's epoch (the noisy flags are its)
        self._ne = n_e = FRAME_EPOCHS * epoch_samples
        self._blk = block
        self._nominal = tuple(f for f in nominal_hz if f < 0.49 * rate)
        self._tol = tolerance_hz
        self._snr = 10.0 ** (line_db / 10.0)
        # The ring of the cleaned band-passed signal: whole frames, so a frame's samples are one slice.
        self._w = n_e * max(1, math.ceil(window_s * rate / n_e))
        self._ring = np.zeros((self._w, lanes))
        self._pos = 0  # absolute samples written
        self._first = max(n_e, first_at - first_at % n_e)  # the first analysis (a frame boundary)
        self._check_every = max(1, round(check_s * rate / n_e))  # frames between analyses of active lanes
        self._relook = max(1, round(RELOOK_S * rate / n_e))
        self._looked = np.full(lanes, -(10**9), dtype=np.int64)  # the frame each lane was last analysed
        self._t_e = t_e = n_e / rate
        self._alpha = 1.0 - math.exp(-t_e / tau_s)
        # A type-2 loop (phase and frequency) whose proportional path is the phasors' own update (gain α) and
        # whose integral path moves the frequency by β × the phase error: z² − (2 − α − β) z + (1 − α), with
        # β = α·T/FREQ_TAU_S its slow root is ≈ 1 − β/α, a frequency error settles over FREQ_TAU_S.
        self._beta = self._alpha * PLL_EVERY * t_e / FREQ_TAU_S
        self._level_a = 1.0 - math.exp(-t_e / LEVEL_S)
        self._untracked_a = 1.0 - math.exp(-PLL_EVERY * t_e / UNTRACKED_S)
        # The screen: demodulation tables (cos rows, then sin) at ``SCREEN_HZ`` below 0.49 × the rate, which
        # of them are nominal fundamentals, and each lane's averaged powers there.
        freqs = [f for f in SCREEN_HZ if f < 0.49 * rate]
        nom = np.array([any(abs(f - m) < 1e-9 for m in self._nominal) for f in freqs], dtype=bool)
        self._scr_nom = np.flatnonzero(nom)
        self._scr_ref = (~nom) / max(1, int(np.count_nonzero(~nom)))  # the mean over the others
        ph = 2.0 * math.pi / rate * np.outer(freqs, np.arange(n_e))
        self._scr = np.vstack([np.cos(ph), np.sin(ph)])
        self._scr_n = len(freqs)
        self._scr_a = 1.0 - math.exp(-SCREEN_EVERY * t_e / SCREEN_S)
        self._sbar = np.zeros((len(freqs), lanes))
        self._screens = bool(nom.any()) and bool((~nom).any())
        # A line of power P over white noise of variance σ² demodulated over n samples: |Z|² = 2P against
        # the noise's 4σ²/n, a ratio 1 + (n/2)·P/σ².
        self._scr_need = 1.0 + 0.5 * n_e * self._snr * 10.0 ** (-SCREEN_DB / 10.0)
        # The stream's mains: its nominal frequency (None until found), the frequency followed and how many
        # of its harmonics. Per active lane (``_act``, in order): the lines' phasors (band-passed units, at
        # the current frame's start, stacked: 2K × lanes; 0 where not a line), which harmonics are lines
        # (1/0, stacked likewise) and the residual's recent energy per frame.
        self.nominal: float | None = None
        self.f = 0.0
        self._k = 0
        self._act = np.zeros(0, dtype=np.intp)
        self._every = False  # every lane active: slices, not fancy indexing
        self._q = np.zeros((0, 0))
        self._m2 = np.zeros((0, 0))
        self._lines = np.zeros(0)  # per active lane: how many lines
        self._level = np.zeros(0)
        self._untracked = np.zeros(0)  # per active lane: the residual's lines over the rest of it, averaged
        self._flags: dict[int, FloatArray] = {}  # detector's epoch → per lane, where flagged (``untracked``)
        self._flag: FloatArray | None = None  # ... as it stands: recorded for every epoch until it changes
        self._sum_e = np.zeros(0)  # per active lane, since the last ``_steer``: the residual's energy
        self._sum_d = np.zeros(0)  # ... and its lines' Σ d² (× n/2: their energy)
        self._warm_fix: tuple[int, IntArray, FloatArray] | None = None
        # Derived from the frequency: the frame's cos and sin tables (rows, 2K × samples) at ``_f_tab`` and
        # their transpose; the rotation by a frame; the raw-domain hum's table (through the band-pass's
        # response at the lines, at ``_f_gain``); the harmonic numbers, and their squares stacked twice. And
        # this frame's hum
        # on every lane, band-passed and raw.
        self._f_tab = self._f_gain = self._f_turn = 0.0
        self._cs = np.zeros((0, n_e))
        self._cst = np.zeros((n_e, 0))
        self._tab = np.zeros((2 * n_e, 0))  # the band-passed hum's table over the raw hum's
        self._turn = np.zeros((0, 0))
        self._gain = np.zeros(0, dtype=np.complex128)
        self._k1 = self._k2 = np.zeros(0)
        self._hy = np.zeros((n_e, 0))
        self._hx = np.zeros((n_e, 0))

    # ---- what the detector reads ----------------------------------------------------------------
    def levels(self) -> list[tuple[float, float] | None]:
        """Per lane: (mains frequency followed in Hz, RMS of the hum removed, band-passed units), or None."""
        out: list[tuple[float, float] | None] = [None] * self.lanes
        power = np.sum(self._q * self._q, axis=0) / 2.0
        for i, lane in enumerate(self._act.tolist()):
            out[lane] = (float(self.f), math.sqrt(float(power[i])))
        return out

    def warm_powers(self, first_block: int, bm: FloatArray) -> FloatArray:
        """The warm-up's block power sums (blocks × lanes from ``first_block``) with the hum found at the
        first analysis taken out of the blocks before it (those after it were cleaned as they came)."""
        if self._warm_fix is None:
            return bm
        k0, lanes, fixed = self._warm_fix
        self._warm_fix = None
        a = k0 - first_block
        lo, hi = max(a, 0), min(a + fixed.shape[0], bm.shape[0])
        if hi > lo:
            bm = bm.copy()
            bm[lo:hi, lanes] = fixed[lo - a : hi - a]
        return bm

    # ---- streaming --------------------------------------------------------------------------------
    def clean(self, x: FloatArray, y: FloatArray, base: int) -> FloatArray:
        n, n_e, w = x.shape[0], self._ne, self._w
        if base != self._pos:
            raise ValueError(f"mains canceller: samples from {base}, expected {self._pos}")
        xc = x
        r = 0
        while r < n:
            a = base + r
            o = a % n_e
            stop = min(n, r + n_e - o)
            m = stop - r
            if self._act.size:  # (0 on the lanes without lines: x − 0 is x to the bit)
                if xc is x:
                    xc = x.copy()
                y[r:stop] -= self._hy[o : o + m]
                xc[r:stop] -= self._hx[o : o + m]
            k = a % w
            self._ring[k : k + m] = y[r:stop]
            self._pos = a + m
            if self._pos % n_e == 0:
                self._frame_end()
            r = stop
        return xc

    def _frame_end(self) -> None:
        """Follow the lines; look for new ones: every lane at the first analysis, a lane whose screen
        shows a fundamental, the active lanes every ``mains_check_s``."""
        if self._act.size:
            self._follow()
        if self._pos < self._first:
            return
        e = self._pos // self._ne
        if self._pos == self._first:
            self._analyse(np.arange(self.lanes, dtype=np.intp), e, first=True)
            return
        look = self._screen() if e % SCREEN_EVERY == 0 else None
        if self._act.size and e % self._check_every == 0:
            look = np.zeros(self.lanes, dtype=bool) if look is None else look
            look[self._act] = True
        if look is not None:
            look &= self._looked <= e - self._relook
            if look.any():
                self._analyse(np.flatnonzero(look).astype(np.intp), e, first=False)

    def _screen(self) -> BoolArray:
        """The lanes without lines whose screen shows a nominal fundamental."""
        if not self._screens or self._every:
            return np.zeros(self.lanes, dtype=bool)
        k, n = (self._pos - self._ne) % self._w, self._scr_n
        z = self._scr @ self._ring[k : k + self._ne]
        z *= z
        self._sbar += self._scr_a * (z[:n] + z[n:] - self._sbar)
        ref = self._scr_ref @ self._sbar
        out: BoolArray = np.logical_or.reduce(self._sbar[self._scr_nom] >= self._scr_need * ref, axis=0)
        out[self._act] = False
        return out

    def _follow(self) -> None:
        """The frame just ended: move the phasors (and, every ``PLL_EVERY`` frames, the frequency and what
        is left of the lines), advance them to the next frame."""
        n_e = self._ne
        i = (self._pos - n_e) % self._w
        v = self._ring[i : i + n_e] if self._every else self._ring[i : i + n_e, self._act]  # the residual
        d = (self._cs @ v) * self._m2  # its phasors at the lines (stacked, × 2/samples where a line)
        energy = np.einsum("ij,ij->j", v, v)
        level = self._level
        moves = energy <= GATE_LOUD * level
        level += self._level_a * (np.minimum(energy, GATE_LOUD * level) - level)
        self._sum_e += energy
        self._sum_d += np.einsum("ij,ij->j", d, d)
        if (self._pos // n_e) % PLL_EVERY == 0:
            self._steer(d, moves)
        if self._flag is not None:
            # For each of the detector's epochs in the next frame: the detector may end the first of this
            # frame's before the canceller has seen the frame's end (a chunk ending between them).
            end = self._pos // self._eng
            for e in range(end, end + FRAME_EPOCHS):
                self._flags[e] = self._flag
        q = self._q
        q += d * (self._alpha * moves)
        self._q = self._turn @ q
        self._hum()

    def _steer(self, d: FloatArray, moves: BoolArray) -> None:
        """Every ``PLL_EVERY`` frames: the frequency, from this frame's phase error; and how much of the lines
        the last ``PLL_EVERY`` frames left in the residual."""
        n_e, k, q, level = self._ne, self._k, self._q, self._level
        # The phase error per unit of harmonic over the lanes that move, φ = Σ k·Im(d·p̄) / Σ k²|p|²; its
        # variance from the residual's noise (each component of d: 2 × the residual's level / samples²) is
        # Σ k²|p|² · 2·level/n² / (Σ k²|p|²)². It steers the frequency only when that is small: weak lines
        # need no precise frequency, and would only make it wander.
        signal = (self._k2 @ (q * q)) * moves
        total = float(np.sum(signal))
        if total > 0 and float(signal @ level) * (2.0 / (n_e * n_e)) <= PHASE_VAR * total * total:
            cross = self._k1 @ (d[:k] * q[k:] - d[k:] * q[:k])
            phi = float(cross @ moves) / total
            assert self.nominal is not None
            f = self.f + self._beta * phi / (2.0 * math.pi * self._t_e)
            self.f = min(max(f, self.nominal - self._tol), self.nominal + self._tol)
            moved = abs(self.f - self._f_tab) * k * 2.0 * math.pi * self._t_e
            if moved > RETABLE_RAD or abs(self.f - self._f_turn) * 2.0 * math.pi * self._t_e > TURN_RAD:
                self._tables(retable=moved > RETABLE_RAD)
        # What the lines left in the residual beyond noise's share (2 per line of the samples), over the rest.
        on_lines = self._sum_d * (0.5 * n_e)
        energy = self._sum_e
        excess = np.maximum(on_lines - self._lines * energy * (2.0 / n_e), 0.0)
        ratio = np.minimum(excess / np.maximum(energy - on_lines, 1e-300), UNTRACKED_CAP)
        self._untracked += self._untracked_a * (ratio - self._untracked)
        self._sum_e, self._sum_d = np.zeros_like(energy), np.zeros_like(energy)
        flagged = self._untracked >= UNTRACKED_FLAG
        self._flag = None
        if flagged.any():
            self._flag = np.zeros(self.lanes)
            self._flag[self._act[flagged]] = self._untracked[flagged]

    def untracked(self, epoch: int) -> FloatArray | None:
        """Per lane, the hum not taken out in ``epoch`` over the noise (power, averaged over ``UNTRACKED_S``)
        where it is at least ``UNTRACKED_FLAG``, else 0; None where no lane's is. Asked in epoch order, once
        each (the canceller runs ahead by up to a chunk: what it found for earlier epochs is let go)."""
        if not self._flags:
            return None
        for e in [e for e in self._flags if e < epoch]:
            del self._flags[e]
        return self._flags.pop(epoch, None)

    def _hum(self) -> None:
        """This frame's hum, band-passed and raw (samples × every lane, 0 where no lines), from the phasors
        at its start."""
        h = self._tab @ self._q
        if self._every:
            self._hy, self._hx = h[: self._ne], h[self._ne :]
        else:  # into the lanes' columns of arrays zeroed when the lanes with lines changed
            if self._hy.shape[1] != self.lanes:
                self._hy, self._hx = np.zeros((self._ne, self.lanes)), np.zeros((self._ne, self.lanes))
            self._hy[:, self._act] = h[: self._ne]
            self._hx[:, self._act] = h[self._ne :]

    def _tables(self, retable: bool = True) -> None:
        """The rotation by a frame at the frequency followed; the frame's cos/sin tables when ``retable``;
        the band-pass's response at the lines once the frequency has moved ``REGAIN_HZ``."""
        ks = np.arange(1, self._k + 1, dtype=np.float64)
        self._f_turn = self.f
        turn = 2.0 * math.pi * self.f * self._t_e * ks
        self._turn = _rotation(np.cos(turn), np.sin(turn))
        if not retable:
            return
        self._f_tab = self.f
        self._k1, self._k2 = ks, np.concatenate([ks * ks, ks * ks])
        ph = 2.0 * math.pi * self.f / self.rate * np.outer(ks, np.arange(self._ne))
        self._cs = np.vstack([np.cos(ph), np.sin(ph)])
        self._cst = np.ascontiguousarray(self._cs.T)
        if self._gain.size != self._k or abs(self.f - self._f_gain) > REGAIN_HZ:
            self._f_gain = self.f
            _, h = sps.sosfreqz(self._sos, worN=self.f * ks, fs=self.rate)
            self._gain = np.asarray(h, dtype=np.complex128)
        g = 1.0 / self._gain  # the raw hum: each band-passed phasor × 1/H
        self._tab = np.vstack([self._cst, self._cst @ _rotation(g.real, g.imag)])

    # ---- analysis ---------------------------------------------------------------------------------
    def _recent(self) -> FloatArray:
        """The ring's samples in time order (at most its length)."""
        n = min(self._pos, self._w)
        k = self._pos % self._w
        if n < self._w:
            return self._ring[:n]
        return np.concatenate([self._ring[k:], self._ring[:k]])

    def _analyse(self, lanes: IntArray, frame: int, first: bool) -> None:
        """Find lines on ``lanes`` in the last window: take the stream's mains on, new lanes and harmonics
        on, vanished harmonics off."""
        self._looked[lanes] = frame
        v = self._recent()
        lq = v.shape[0] // QUARTERS
        if lq < 8:
            return
        v = v[v.shape[0] - QUARTERS * lq :]
        nfft = sp_fft.next_fast_len(4 * lq, real=True)
        win = np.hanning(lq + 2)[1:-1]  # nonzero ends: every sample counts
        u = np.ascontiguousarray(v[:, lanes].T).reshape(lanes.size, QUARTERS, lq) * win
        spec = np.abs(np.fft.rfft(u, nfft, axis=2)) ** 2  # lanes × quarters × bins
        df, bin_hz = self.rate / nfft, self.rate / lq  # the Hann main lobe is ±2 of a quarter's bins
        # Over a Hann window of L samples a line of power P stands (L/2)²·P/2 high, white noise of variance σ²
        # at its frequency 3L/8·σ² (its median ln 2 × that): P/σ² = s gives a peak ≈ 1 + s·L/(3 ln 2) × the
        # neighbours' median. A line: at least ``LINE_RATIO`` in every quarter (it is there throughout) and,
        # averaged over the quarters (a steadier estimate of its power), what a line of ``mains_line_db``
        # gives — the peak taken over a few bins and the quietest quarter's neighbours lift that average by
        # ``LINE_BIAS`` (measured on white noise: half of the −6-dB lines pass, 9 % at −9 dB, 96 % at −3 dB).
        need = 1.0 + LINE_BIAS * self._snr * lq / (3.0 * math.log(2.0))
        if self.nominal is None:
            # The nominal frequency whose fundamental stands out on the most lanes, by the most: a 50-Hz
            # line's main lobe reaches into 60 Hz's tolerance in a quarter (and back), less high.
            best: tuple[float, float, FloatArray] | None = None
            for nom in self._nominal:
                ratio, _ = self._line_ratios(spec, df, nom, 1, self._tol, bin_hz)
                strength = np.mean(ratio[:, :, 0], axis=1)
                strength *= (strength >= need) & np.all(ratio[:, :, 0] >= LINE_RATIO, axis=1)
                score = float(np.sum(strength))
                if score > 0 and (best is None or score > best[0]):
                    best = (score, nom, strength)
            if best is None:
                return
            # Its frequency from the lanes where the fundamental stands out most (one mains, one clock).
            order = np.argsort(-best[2], kind="stable")[:TAKE_ON_LANES]
            self._take_on(best[1], v[:, lanes[order[best[2][order] > 0]]])
        k = self._k
        mask = np.zeros((k, self.lanes), dtype=bool)
        mask[:, self._act] = self._m2[:k] > 0
        tol = self._tol if not mask.any() else 0.05
        ratio, level = self._line_ratios(spec, df, self.f, k, tol, bin_hz)
        present = (
            (np.mean(ratio, axis=1) >= need) & np.all(ratio >= LINE_RATIO, axis=1)
        ).T  # harmonics × lanes
        present &= mask[:, lanes].any(axis=0) | present[0]  # a lane comes on with its fundamental
        new = np.zeros_like(mask)
        new[:, lanes] = present & ~mask[:, lanes]
        q = np.zeros((2 * k, self.lanes))
        q[:, self._act] = self._q
        # A line followed whose Hann peak would now be under its neighbours' median: gone.
        amp2 = (q[:k, lanes] ** 2 + q[k:, lanes] ** 2) * (float(np.sum(win)) / 2.0) ** 2
        gone = np.zeros_like(mask)
        gone[:, lanes] = mask[:, lanes] & (amp2 < level.T)
        if not (new.any() or gone.any()):
            return
        lv = np.zeros(self.lanes)
        lv[self._act] = self._level
        old = self._act
        if new.any():
            self._fit(v, new, mask, q, lv, first)
        mask &= ~gone
        q *= np.vstack([mask, mask])
        self._act = np.flatnonzero(mask.any(axis=0)).astype(np.intp)
        self._every = self._act.size == self.lanes
        self._q = q[:, self._act]
        self._m2 = np.vstack([mask, mask])[:, self._act] * (2.0 / self._ne)
        self._lines = np.sum(mask, axis=0)[self._act].astype(np.float64)
        self._level = lv[self._act]
        un = np.zeros(self.lanes)
        un[old] = self._untracked
        self._untracked = un[self._act]
        self._sum_e, self._sum_d = np.zeros(self._act.size), np.zeros(self._act.size)
        self._hy = self._hx = np.zeros((self._ne, 0))  # reallocated, zeroed, by ``_hum``
        if self._flag is not None:
            self._flag = self._flag.copy()
            self._flag[~mask.any(axis=0)] = 0.0
            if not self._flag.any():
                self._flag = None
        self._hum()

    def _line_ratios(
        self, spec: FloatArray, df: float, f0: float, k: int, tol: float, bin_hz: float
    ) -> tuple[FloatArray, FloatArray]:
        """Per lane, quarter and harmonic (1..k of ``f0``): the spectrum's peak within the tolerance (and a
        bin) of the harmonic over the median of the ``NEIGHBOURS_HZ`` either side beyond its main lobe in the
        quarter where that is lowest (``spec``: lanes × quarters × bins of ``df`` Hz); and that median (per
        lane and harmonic)."""
        top = spec.shape[2] - 2  # neither DC nor Nyquist
        ks = np.arange(1, k + 1, dtype=np.float64)
        c = ks * f0 / df
        half, lobe = (ks * tol + bin_hz) / df, (ks * tol + 2.0 * bin_hz) / df
        j = np.arange(-math.ceil(float(half[-1])), math.ceil(float(half[-1])) + 1)
        at = np.rint(c)[:, None] + j
        inside = (np.abs(at - c[:, None]) <= half[:, None]) & (at >= 1) & (at <= top)
        peak = np.max(spec[:, :, np.clip(at, 1, top).astype(np.intp)] * inside, axis=3)
        side = np.arange(max(3, round(NEIGHBOURS_HZ / df)))
        near = np.hstack([np.floor(c - lobe)[:, None] - side, np.ceil(c + lobe)[:, None] + side])
        mid = side.size  # of the 2 × side neighbours: the upper median
        level = np.partition(spec[:, :, np.clip(near, 1, top).astype(np.intp)], mid, axis=3)[..., mid]
        # The quietest quarter's: a potential or a contraction in one quarter lifts its neighbours there, not
        # the line's level in the others.
        level = np.min(level, axis=1, keepdims=True)
        return peak / np.maximum(level, 1e-300), level[:, 0, :]

    def _take_on(self, nominal: float, u: FloatArray) -> None:
        """The stream's mains found at ``nominal``: its frequency from the lanes whose fundamental is a line
        (``u``: the window, samples × those lanes) — the peak of their summed spectrum over the whole
        window, then the phase its fundamental turns by between the window's halves — and how many
        harmonics are followed."""
        n = u.shape[0]
        nfft = sp_fft.next_fast_len(8 * n, real=True)
        power = np.sum(np.abs(np.fft.rfft(u * np.hanning(n)[:, None], nfft, axis=0)) ** 2, axis=1)
        freqs = np.fft.rfftfreq(nfft, 1.0 / self.rate)
        near = np.flatnonzero(np.abs(freqs - nominal) <= self._tol + 0.2)
        i = int(near[np.argmax(power[near])])
        f = float(freqs[i])
        if 0 < i < power.size - 1:
            a, b, c = np.log(np.maximum(power[i - 1 : i + 2], 1e-300))
            den = a - 2.0 * b + c
            if den < 0:
                f += 0.5 * (a - c) / den * (freqs[1] - freqs[0])
        half = n // 2
        e = np.exp(-2j * math.pi * f * np.arange(half) / self.rate)
        z1, z2 = e @ u[:half], (e * np.exp(-2j * math.pi * f * half / self.rate)) @ u[half : 2 * half]
        turn = float(np.angle(np.sum(z2 * np.conj(z1))))
        f += turn / (2.0 * math.pi * half / self.rate)
        self.nominal = nominal
        self.f = min(max(f, nominal - self._tol), nominal + self._tol)
        self._k = harmonics(self.f, self.rate, self._sos)
        self._q = np.zeros((2 * self._k, 0))
        self._m2 = np.zeros((2 * self._k, 0))
        self._tables()

    def _fit(
        self, v: FloatArray, new: BoolArray, mask: BoolArray, q: FloatArray, level: FloatArray, first: bool
    ) -> None:
        """Least-squares phasors of the new lines over the window, at its end (the next frame's start),
        into ``q`` and ``mask`` (every lane); a lane coming on starts its residual's level from the window
        without them."""
        n, k = v.shape[0], self._k
        ks = np.flatnonzero(new.any(axis=1))
        lanes = np.flatnonzero(new.any(axis=0))
        ph = 2.0 * math.pi * self.f / self.rate * np.outer(np.arange(n) - n, ks + 1)
        basis = np.hstack([np.cos(ph), np.sin(ph)])
        coef = np.linalg.solve(basis.T @ basis, basis.T @ v[:, lanes])  # near-orthogonal: well conditioned
        sel = new[np.ix_(ks, lanes)]
        coef *= np.vstack([sel, sel])
        rows = np.concatenate([ks, ks + k])
        q[np.ix_(rows, lanes)] += coef
        clean = v[:, lanes] - basis @ coef
        fresh = ~mask[:, lanes].any(axis=0)
        level[lanes[fresh]] = np.sum(clean[:, fresh] ** 2, axis=0) * (self._ne / n)
        mask |= new
        if first:
            # The warm-up's blocks before now, without the hum just found (the floor is learnt from them).
            nb = n // self._blk
            tail = clean[n - nb * self._blk :]
            bm = np.sum((tail * tail).reshape(nb, self._blk, lanes.size), axis=1)
            self._warm_fix = ((self._pos - nb * self._blk) // self._blk, lanes.astype(np.intp), bm)
