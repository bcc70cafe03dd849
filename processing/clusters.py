"""Cluster assembly: a lane's pieces of activity grown into the clusters the engine classifies.

``LaneEngine`` (``processing.core``) keeps the block loop, the filters, the history ring and the noise
floor; per segment (whole blocks within one epoch, so the thresholds are constant in it) it hands this part
the lanes worth looking at and a ``Segment`` of their samples. Here (docs/detection.md, "The streaming
core", steps 5-7):

- **Hysteresis** on the power's moving sum: a *piece* starts above the onset threshold and ends below the
  offset threshold; slow activity keeps a lane active block-wise.
- **Clusters**: pieces closer than the cluster's gap join one ``Cluster``. A piece's features — its peak,
  core samples, frequency sums and saturation — come from its first ``store_s`` of samples, from the same
  values in the same order however the stream was chunked (a piece spanning segments is stored in parts and
  measured when it ends), so the events are identical to the bit for any chunking.
- **Release**: a cluster is complete at the first block boundary past its end + gap (``due``), or when a
  piece starts beyond its gap; the engine's ``release_cluster`` then classifies and reports it, once the
  blocks its decision reads have been written.

What a cluster needs from outside — the lanes' power and channels, the saturation limit, whether a piece with
slow activity looks like an artifact, a new cluster's context from the history, and classification — the
engine provides through ``ClusterHost``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

_NEVER = np.iinfo(np.int64).max
# The ufuncs' reductions called directly, as in ``processing.core``: the methods (``a.max()``) reach them
# through Python-level wrappers that cost more than the reduction on a piece's values.
_max = np.maximum.reduce
_sum = np.add.reduce
_all = np.logical_and.reduce
_any = np.logical_or.reduce
_FIRST = np.zeros(1, dtype=np.intp)  # reduceat over a whole array


@dataclass(frozen=True, slots=True)
class Spans:
    """What cluster assembly measures with, from the detector's parameters at one sample rate
    (``DetectorParams.spans``): lengths in samples, and the ratios it compares powers by."""

    rate: float  # samples per second
    hold: int  # hold_ms: a twitch candidate's gap (merge window and release delay after its end)
    activity_gap: int  # activity_gap_ms: the gap of a cluster whose core passed jerk_max_ms
    slow_gap: int  # slow_gap_ms: the gap of a cluster with artifact-like slow activity
    jerk_max: int  # jerk_max_ms: a cluster longer than this may be activity (its core is measured)
    jerk_max_ms: float  # ... and activity once its core is longer than this
    store_cap: int  # store_s: a piece's first samples, which give its features
    sat_run: int  # saturation_ms (at least 3): a flat run this long at an extreme is a rail
    core_ratio: float  # 10^(-core_db/10): a core sample's power is within this of the cluster's peak
    off_ratio: float  # off_factor / on_factor: the offset threshold over the onset threshold


@dataclass(slots=True)
class Cluster:
    """An event being assembled on one lane (absolute sample indices)."""

    start: int
    end: int
    context_pre: float  # sub-threshold power before it, × floor
    baseline: FloatArray  # raw block mean before it (per channel of the lane)
    floor: float  # the floor when it began (power per sample)
    gap: int  # samples a following piece may wait and still join
    active: int = 0  # samples in pieces
    pieces: int = 0
    first_on: int = -1  # first and last core sample (``settle``)
    last_on: int = -1
    n_on: int = 0  # core samples
    core_idx: list[npt.NDArray[np.intp]] = field(default_factory=list)  # samples above onset, per piece
    core_env: list[FloatArray] = field(default_factory=list)  # ... and their moving sums
    core_span: list[tuple[int, int]] = field(default_factory=list)  # ... and where their pieces lie
    peak: float = 0.0
    peak_env: float = 0.0  # moving sum of the power, for the margin over the threshold
    slow_blocks: int = 0  # blocks with slow activity
    slow_excursion: float = 0.0  # EMG: largest |moving mean of raw − baseline|
    saturated: bool = False
    recent: list[float] = field(default_factory=list)  # peaks of the clusters begun on its lane in context_ms
    long: bool = False  # its core has passed jerk_max_ms: activity, whatever comes
    piece_slow: bool = False  # the open piece has slow activity
    slow_upto: int = -1  # the last block counted in slow_blocks (each block counts once)
    num: float = 0.0  # Σ(Δy)² and Σy² over its pieces, for the dominant frequency
    den: float = 0.0
    piece_start: int = 0  # the open piece: where it began, its onset level, its samples so far
    piece_on: float = 0.0
    parts_y: list[FloatArray] = field(default_factory=list)
    parts_x: list[FloatArray] = field(default_factory=list)
    parts_env: list[FloatArray] = field(default_factory=list)
    stored: int = 0
    tail: float = 1.0  # the lane's ``LaneEngine.tail`` when it began
    piece_peak: float = 0.0  # the open piece's largest moving sum
    # The end of its last piece within ``core_db`` of its peak: the band-pass's ringing after a large
    # potential and noise's blips around it (pieces further below) do not keep the cluster open.
    merge_end: int = 0

    def duration_ms(self, rate: float) -> float:
        return (self.end - self.start) * 1e3 / rate

    def settle(self, core_ratio: float) -> None:
        """The core: samples above onset and within ``core_ratio`` (``10 ** (-core_db / 10)``) of the
        cluster's peak power — the potentials' main phases, not the band-pass's ringing, whose length grows
        with the amplitude."""
        if not self.core_idx:
            return
        if len(self.core_idx) == 1:
            idx, env = self.core_idx[0], self.core_env[0]
        else:
            idx, env = np.concatenate(self.core_idx), np.concatenate(self.core_env)
        sel = idx[env > self.peak_env * core_ratio]
        if sel.size:
            self.first_on, self.last_on, self.n_on = int(sel[0]), int(sel[-1]), int(sel.size)

    def main_piece_ms(self, rate: float, core_ratio: float) -> float | None:
        """The core span of the piece holding the peak where the others are its smaller neighbours: one
        other piece of any smaller size, or any number of at most a quarter of its peak power (half its
        amplitude: a potential's own ringing and noise's blips around it, not a unit's repeats); None
        otherwise."""
        big = self.main_piece()
        if big is None:
            return None
        idx, env = self.core_idx[big], self.core_env[big]
        sel = idx[env > self.peak_env * core_ratio]
        return (int(sel[-1]) - int(sel[0]) + 1) * 1e3 / rate if sel.size else None

    def main_piece(self) -> int | None:
        """The piece holding the peak, where the others are its smaller neighbours (``main_piece_ms``)."""
        n = len(self.core_idx)
        if n < 2:
            return None
        peaks = [float(_max(e)) if e.size else 0.0 for e in self.core_env]
        big = max(range(n), key=peaks.__getitem__)
        if n > 2 and any(4.0 * p > peaks[big] for i, p in enumerate(peaks) if i != big):
            return None
        return big

    def core_span_of(self) -> tuple[int, int] | None:
        """From the start of the piece holding the first core sample to the end of the one holding the
        last: the potential itself, without the blips the hold gathered before or after it."""
        if self.first_on < 0 or not self.core_span:
            return None
        first = next((a for a, b in self.core_span if a <= self.first_on < b), None)
        last = next((b for a, b in reversed(self.core_span) if a <= self.last_on < b), None)
        return None if first is None or last is None else (first, last)

    def core_ms(self, rate: float) -> float:
        """From the first to the last core sample of its pieces: the potentials' main phases, not the
        filter's tail (slow-only clusters: their whole span)."""
        if self.first_on < 0:
            return self.duration_ms(rate)
        return (self.last_on - self.first_on + 1) * 1e3 / rate

    def fill(self) -> float:
        """Fraction of the core span that is core: dense bursts near 1, sparse trains low."""
        return self.n_on / max(self.last_on - self.first_on + 1, 1) if self.first_on >= 0 else 0.0

    def dominant_hz(self, rate: float) -> float:
        """Power-weighted RMS frequency (Rice's second spectral moment): for a sinusoid of frequency f,
        Σ(Δy)²/Σy² = 4 sin²(πf/fs), inverted exactly."""
        if self.den <= 0:
            return 0.0
        return float(rate / math.pi * math.asin(math.sqrt(min(self.num / self.den, 4.0)) / 2))


@dataclass(slots=True)
class Segment:
    """The samples of one segment as the scans see them: whole blocks within one epoch (arrays of samples ×
    lanes or channels; block rows × lanes) and the offsets that place them in the stream."""

    base: int  # absolute sample index of row r0
    r0: int
    m: int
    x: FloatArray
    y: FloatArray
    p: FloatArray
    env: FloatArray  # moving sum of p over w samples
    slow_on: BoolArray  # blocks of the segment × lanes
    quiet: BoolArray  # blocks of the segment × lanes (pieces clear it)
    on_w: FloatArray  # per lane, the onset threshold on the moving sum (constant within an epoch)


class ClusterHost(Protocol):
    """What cluster assembly asks of its engine (``LaneEngine``): the lanes' signal specifics, and what lies
    outside a cluster — the history before it, and its classification once complete."""

    # The signal's hooks, as ``LaneEngine`` documents them.
    def lane_power(self, y: FloatArray, out: FloatArray) -> None: ...

    def lane_channels(self, lane: int) -> slice: ...

    def lanes_channels(self, lanes: IntArray) -> IntArray: ...

    def saturation_limit(self, floor: float) -> float: ...

    def artifact_like(self, lane: int, c: Cluster) -> bool: ...

    def new_cluster(self, lane: int, start: int) -> Cluster:
        """A cluster beginning at sample ``start``, with its context from the history before it."""
        ...

    def release_cluster(self, lane: int, c: Cluster) -> None:
        """``c`` is complete (and no longer open on ``lane``): classify and report it once what its
        decision reads has been written."""
        ...


class ClusterAssembly:
    """Per lane, the hysteresis state and the open cluster: pieces found in each segment grow, join or end
    it, and it is released to the host when its gap has passed."""

    # From this many candidate lanes in a segment on, ``_scan_lanes`` handles them together; fewer are
    # cheaper one by one (``_scan``). Both give the same events to the bit (tests/test_detector.py).
    batch_lanes = 3

    def __init__(self, host: ClusterHost, lanes: int, blk: int, segment_max: int, spans: Spans) -> None:
        self._host = host
        self.blk = blk
        self.spans = spans
        self.open: list[Cluster | None] = [None] * lanes  # per lane, the cluster being assembled
        self._env_state = np.zeros(lanes, dtype=bool)  # hysteresis on the smoothed power
        self._in_piece = np.zeros(lanes, dtype=bool)  # hysteresis or slow activity
        self._release_at = np.full(lanes, _NEVER, dtype=np.int64)  # block index
        self._ramp = np.arange(segment_max)  # sample numbers within a segment (never longer)
        self._lane_ids = np.arange(lanes)

    def candidates(self, quiet: BoolArray) -> list[int]:
        """The lanes worth scanning in a segment whose blocks × lanes ``quiet`` flags are known: a piece
        open, or a block with an onset crossing or slow activity. Quiet lanes cost nothing more."""
        if _all(quiet, axis=None) and not _any(self._in_piece):  # the usual case: nothing to look at
            return []
        lanes: list[int] = (self._in_piece | ~_all(quiet, axis=0)).nonzero()[0].tolist()
        return lanes

    def scan(self, lanes: list[int], seg: Segment) -> None:
        """Grow the candidate lanes' clusters by the segment: clusters already known to be activity all
        at once where they can (``_scan_long``), the others lane by lane or together (``batch_lanes``)."""
        long = [i for i in lanes if (c := self.open[i]) is not None and c.long and c.gap >= seg.m]
        done = self._scan_long(long, seg) if long else set()
        rest = [lane for lane in lanes if lane not in done] if done else lanes
        if len(rest) >= self.batch_lanes:
            self._scan_lanes(rest, seg)
        else:
            for lane in rest:
                self._scan(lane, seg)

    def release_due(self, block: int) -> None:
        """Release the clusters whose gap has passed by the start of absolute block ``block``."""
        if any(self.open):  # a cluster is open somewhere (Cluster objects are truthy)
            for lane in (self._release_at <= block).nonzero()[0].tolist():
                c = self.open[lane]
                if c is not None:
                    self._release(lane, c)

    def finish(self, now: int) -> None:
        """End of stream at sample ``now``: end the pieces still open there and release every cluster."""
        for lane, c in enumerate(self.open):
            if c is not None:
                if self._in_piece[lane]:
                    c.end = now
                    self._end_piece(lane, c)
                self._release(lane, c)
        self._in_piece[:] = False
        self._env_state[:] = False
        self._release_at[:] = _NEVER

    def _release(self, lane: int, c: Cluster) -> None:
        self.open[lane] = None
        self._release_at[lane] = _NEVER
        self._host.release_cluster(lane, c)

    def _scan_lanes(self, lanes: list[int], seg: Segment) -> None:
        """Hysteresis over all candidate lanes at once, then their pieces in lane order. The array work is
        per segment, not per piece: what a piece needs (its peak, the peak of its moving sum, its core
        samples and frequency sums) comes from reductions over all the segment's pieces together, so a
        piece costs a few Python operations."""
        ln = np.asarray(lanes)
        e = seg.env[seg.r0 : seg.r0 + seg.m].T[ln]  # lane-major: each lane's samples in a row
        hi = e > seg.on_w[ln][:, None]
        st, cont, slow_l = self._lanes_state(lanes, ln, seg, e, hi)
        self._lanes_pieces(lanes, ln, seg, e, hi, st, cont.tolist(), slow_l)

    def _lanes_state(
        self, lanes: list[int], ln: IntArray, seg: Segment, e: FloatArray, hi: BoolArray
    ) -> tuple[BoolArray, BoolArray, list[bool]]:
        """``_scan_lanes``'s hysteresis: per lane (rows) and sample, whether it is active (slow activity
        marking whole blocks); the lanes' state carried on; their quiet blocks cleared; the pieces open from
        the previous segment that ended with it ended. Returns the activity, whether each lane's open piece
        continues into the segment, and whether the lane has slow activity in it."""
        n, blk = ln.size, self.blk
        off = seg.on_w[ln] * self.spans.off_ratio
        st = self._hysteresis(hi, e < off[:, None], self._env_state[ln])
        was = self._in_piece[ln]
        self._env_state[ln] = st[:, -1]
        if _any(seg.slow_on, axis=None):
            slow = seg.slow_on[:, ln]
            slow_lanes = _any(slow, axis=0)
            st.reshape(n, -1, blk)[...] |= slow.T[:, :, None]  # slow activity marks all of its blocks
            slow_l: list[bool] = slow_lanes.tolist()
        else:
            slow_l = [False] * n
        # A piece open at the segment's start continues if its first sample is active, as within a segment:
        # a piece held by slow activity goes on where the power takes over at once.
        cont = was & st[:, 0]
        self._in_piece[ln] = st[:, -1]
        seg.quiet[:, ln] &= ~_any(st.reshape(n, -1, blk), axis=2).T
        for j in (was & ~cont).nonzero()[0].tolist():  # the open piece ended with the previous segment
            c = self.open[lanes[j]]
            if c is not None:
                self._end_piece(lanes[j], c)
        return st, cont, slow_l

    def _lanes_pieces(
        self,
        lanes: list[int],
        ln: IntArray,
        seg: Segment,
        e: FloatArray,
        hi: BoolArray,
        st: BoolArray,
        cont_l: list[bool],
        slow_l: list[bool],
    ) -> None:
        """``_scan_lanes``'s pieces (the runs of ``st``), in lane order, measured by reductions over all of
        them at once: each grows its lane's cluster; a whole one gives its features now, one that goes on
        past the segment is stored in parts."""
        n, m, r0 = ln.size, seg.m, seg.r0
        pad = np.zeros((n, m + 2), dtype=bool)
        pad[:, 1:-1] = st
        row, col = (pad[:, 1:] != pad[:, :-1]).nonzero()  # rises and falls alternate in each row
        if not row.size:
            return
        prow, a, b = row[::2], col[::2], col[1::2]
        fa, fb = prow * m + a, prow * m + b  # into the flattened lane-major arrays
        # A piece's features come from its first store_s (longer than any segment with the defaults).
        fe = fb if m <= self.spans.store_cap else np.minimum(fb, fa + self.spans.store_cap)
        pw = seg.p[r0 : r0 + m].T[ln]
        bounds = _pairs(fa, fb)
        peak_p: list[float] = _per_piece(np.maximum, pw.ravel(), bounds).tolist()
        peak_env: list[float] = _per_piece(np.maximum, e.ravel(), bounds).tolist()
        num, den = self._sums(seg, ln, pw, fa, fe, bounds if fe is fb else _pairs(fa, fe))
        keys = np.flatnonzero(hi)  # core candidates: above onset (a piece that starts here has this onset)
        core_pos, core_env = keys % m + seg.base, e.ravel()[keys]
        lo: list[int] = keys.searchsorted(fa).tolist()
        up: list[int] = keys.searchsorted(fe).tolist()
        for k, (j, ak, bk) in enumerate(zip(prow.tolist(), a.tolist(), b.tolist(), strict=True)):
            lane = lanes[j]
            starts, ends = ak > 0 or not cont_l[j], bk < m
            c = self._grow(lane, seg, ak, bk, math.sqrt(peak_p[k]), peak_env[k], starts, slow_l[j])
            if c.long:  # known activity: its features are settled, only its extent and peak grow
                if ends:
                    self._end_piece(lane, c)
            elif starts and ends:  # the whole piece is here: its features from the batch, now
                if lo[k] < up[k]:
                    c.core_idx.append(core_pos[lo[k] : up[k]])
                    c.core_env.append(core_env[lo[k] : up[k]])
                    c.core_span.append((c.piece_start, c.end))
                if bk - ak >= 2:
                    c.num += num[k]
                    c.den += den[k]
                if c.piece_slow:
                    rows = slice(r0 + ak, r0 + ak + min(bk - ak, self.spans.store_cap))
                    self._check_saturation(c, seg.x[rows, self._host.lane_channels(lane)])
                self._settle_piece(lane, c)
            else:
                self._store_part(lane, c, seg, ak, bk, ends)

    def _scan(self, lane: int, seg: Segment) -> None:
        """Hysteresis over one lane's samples of the segment, then its pieces: with few candidate lanes
        this costs fewer array operations than ``_scan_lanes``, and gives the same to the bit."""
        m, r0 = seg.m, seg.r0
        on = float(seg.on_w[lane])
        off = on * self.spans.off_ratio
        env = seg.env[r0 : r0 + m, lane]
        was = bool(self._in_piece[lane])
        c = self.open[lane]
        slow_rows = seg.slow_on[:, lane]
        if _any(slow_rows):
            self._scan_slow(lane, seg, env, on, off, slow_rows, was)
            return
        above = (env > on).nonzero()[0]
        # Slow activity held the open piece and ended with the previous segment: the piece goes on only where
        # the power takes over at once (its first sample above onset), as within a segment.
        if was and not self._env_state[lane] and not (above.size and above[0] == 0):
            self._in_piece[lane] = False
            if c is not None:
                self._end_piece(lane, c)
            was = False
        i = 0 if was else (int(above[0]) if above.size else m)
        cont = False
        while i < m:  # a piece from i (continuing one if i == 0 and was) to the first sample below off
            below = (env[i:] < off).nonzero()[0]
            stop = i + int(below[0]) if below.size else m
            cont = stop == m
            if stop > i:
                self._piece(lane, seg, i, stop, env, starts=i > 0 or not was, ends=not cont, slow=False)
            elif was:  # the open piece ended with the previous segment
                c = self.open[lane]
                if c is not None:
                    self._end_piece(lane, c)
            k = int(above.searchsorted(stop))
            i = int(above[k]) if k < above.size else m
            was = False
        self._env_state[lane] = self._in_piece[lane] = cont

    def _scan_slow(
        self, lane: int, seg: Segment, env: FloatArray, on: float, off: float, slow_rows: BoolArray, was: bool
    ) -> None:
        """``_scan`` with slow activity: hysteresis on the power or'ed with slow activity block-wise."""
        m = seg.m
        st = self._hysteresis((env > on)[None, :], (env < off)[None, :], self._env_state[lane : lane + 1])[0]
        self._env_state[lane] = st[-1]
        st |= np.repeat(slow_rows, self.blk)
        self._in_piece[lane] = st[-1]
        active = bool(st[0])
        if was and not active:  # the open piece ended with the previous segment
            c = self.open[lane]
            if c is not None:
                self._end_piece(lane, c)
        edges = [0, *((st[1:] != st[:-1]).nonzero()[0] + 1).tolist(), m]
        for i in range(0 if active else 1, len(edges) - 1, 2):
            a, b = edges[i], edges[i + 1]
            self._piece(lane, seg, a, b, env, starts=a > 0 or not was, ends=b < m)

    def _piece(
        self,
        lane: int,
        seg: Segment,
        a: int,
        b: int,
        env: FloatArray,
        *,
        starts: bool,
        ends: bool,
        slow: bool = True,
    ) -> None:
        """Rows [a, b) of the segment are active on ``lane`` (``env``: its moving sum in the segment)."""
        ra, rb = seg.r0 + a, seg.r0 + b
        peak = math.sqrt(float(_max(seg.p[ra:rb, lane])))
        c = self._grow(lane, seg, a, b, peak, float(_max(env[a:b])), starts, slow)
        seg.quiet[a // self.blk : (b - 1) // self.blk + 1, lane] = False
        if c.long:  # known activity: its features are settled, only its extent and peak grow
            if ends:
                self._end_piece(lane, c)
        elif starts and ends:  # the whole piece is here: its features from views, now
            keep = min(b - a, self.spans.store_cap - c.stored)
            if keep > 0:
                ch = self._host.lane_channels(lane)
                self._piece_features(
                    c, seg.y[ra : ra + keep, ch], seg.x[ra : ra + keep, ch], env[a : a + keep]
                )
            self._settle_piece(lane, c)
        else:
            self._store_part(lane, c, seg, a, b, ends)

    def _hysteresis(self, hi: BoolArray, lo: BoolArray, state: BoolArray) -> BoolArray:
        """Per lane (rows) and sample: on from a sample above onset (``hi``) until one below offset
        (``lo``); before the first of either, the lane's state from the previous segment."""
        m = hi.shape[1]
        idx = np.where(hi | lo, self._ramp[:m], -1)
        np.maximum.accumulate(idx, axis=1, out=idx)  # the state is that of the last decisive sample
        flat = np.maximum(idx, 0)
        flat += self._lane_ids[: hi.shape[0], None] * m
        st: BoolArray = np.where(idx >= 0, hi.ravel()[flat], state[:, None])
        return st

    def _sums(
        self,
        seg: Segment,
        ln: npt.NDArray[np.intp],
        pw: FloatArray,
        fa: npt.NDArray[np.intp],
        fe: npt.NDArray[np.intp],
        bounds: npt.NDArray[np.intp],
    ) -> tuple[list[float], list[float]]:
        """Σ(Δy)² and Σy² (ends halved) over each piece's feature samples [fa, fe) of the lane-major
        arrays (``bounds``: the two interleaved), for the dominant frequency. ``_piece_sums`` gives the
        same for a piece stored in parts: the same per-sample values summed by the same reduceat, so the
        chunking cannot change them."""
        m = seg.m
        y = seg.y[seg.r0 : seg.r0 + m, self._host.lanes_channels(ln)]
        dq = np.empty((m - 1, ln.size))
        self._host.lane_power(y[1:] - y[:-1], dq)
        q = np.zeros((ln.size, m))
        q[:, 1:] = dq.T
        dbounds = bounds.copy()
        dbounds[0::2] += 1  # Δy from a piece's second sample on
        if dbounds[-2] == q.size:  # a one-sample piece at the very end: no Δy, its result is not used
            dbounds[-2] -= 1
        pf = pw.ravel()
        num: list[float] = _per_piece(np.add, q.ravel(), dbounds).tolist()
        s = _per_piece(np.add, pf, bounds)
        den: list[float] = (s - 0.5 * (pf[fa] + pf[fe - 1])).tolist()
        return num, den

    def _scan_long(self, lanes: list[int], seg: Segment) -> set[int]:
        """Clusters already known to be activity grow by everything active in this segment at once,
        vectorised over their lanes, with the same result as piece by piece (their dips, shorter than a
        segment, are shorter than their gaps). Returns the lanes done; the others (a segment that may start
        a new cluster, or nothing active) take the general path."""
        blk, m, r0 = self.blk, seg.m, seg.r0
        ln = np.asarray(lanes)
        e = seg.env[r0 : r0 + m, ln]
        st = self._long_hysteresis(ln, seg, e)
        env_end = st[-1].tolist()
        slow = seg.slow_on[:, ln]
        blocks = st.reshape(-1, blk, ln.size)  # a view: ``st`` is a fresh C-contiguous array
        blocks |= slow[:, None, :]  # slow activity marks every sample of its blocks
        # Per-lane scalars as Python lists, taken once: indexing numpy arrays lane by lane costs more.
        first: list[int] = st.argmax(axis=0).tolist()
        last: list[int] = (m - 1 - st[::-1].argmax(axis=0)).tolist()
        any_act = _column_any(st)
        was_arr: BoolArray = self._in_piece[ln]
        was: list[bool] = was_arr.tolist()
        ok = []
        for j, lane in enumerate(lanes):
            c = self.open[lane]
            assert c is not None
            if any_act[j] and (was[j] or seg.base + first[j] - c.end <= c.gap):
                ok.append(j)
        if not ok:
            return set()
        cols = np.asarray(ok)
        sub, lns = st[:, cols], ln[cols]
        pk: list[float] = _max(np.where(sub, seg.p[r0 : r0 + m, lns], -np.inf), axis=0).tolist()
        pe: list[float] = _max(np.where(sub, e[:, cols], -np.inf), axis=0).tolist()
        count: list[int] = _sum(sub, axis=0, dtype=np.intp).tolist()
        rises: list[int] = (
            _sum(sub[1:] & ~sub[:-1], axis=0, dtype=np.intp) + (sub[0] & ~was_arr[cols])
        ).tolist()
        block0 = seg.base // blk
        busy = _any(sub.reshape(-1, blk, cols.size), axis=1)
        seg.quiet[:, lns] &= ~busy
        busy_slow = busy & slow[:, cols]
        any_slow = _column_any(busy_slow)
        # ``_count_slow`` for all lanes at once: the counts and the last slow block of each.
        n_slow: list[int] = _sum(busy_slow, axis=0, dtype=np.intp).tolist()
        last_slow: list[int] = (block0 + busy_slow.shape[0] - 1 - busy_slow[::-1].argmax(axis=0)).tolist()
        starts_on: list[bool] = sub[0].tolist()
        ends_on: list[bool] = sub[-1].tolist()
        done: set[int] = set()
        for i, j in enumerate(ok):
            lane = lanes[j]
            c = self.open[lane]
            assert c is not None
            if was[j] and not starts_on[i]:  # the open piece ended with the previous segment
                self._end_piece(lane, c)
            c.pieces += rises[i]
            c.active += count[i]
            c.peak = max(c.peak, math.sqrt(pk[i]))
            c.peak_env = max(c.peak_env, pe[i])
            if any_slow[i]:
                if c.slow_upto < block0:  # always: this segment is new to the lane, all its blocks count
                    c.slow_blocks += n_slow[i]
                    c.slow_upto = last_slow[i]
                else:  # pragma: no cover - kept so that a block can never count twice
                    self._count_slow(c, block0, busy_slow[:, i])
                c.gap = max(c.gap, self.spans.slow_gap)
            c.end = seg.base + last[j] + 1
            self._env_state[lane] = env_end[j]
            self._in_piece[lane] = end_active = ends_on[i]
            self._release_at[lane] = _NEVER if end_active else self.due(c)  # from c.end: known activity
            done.add(lane)
        return done

    def _long_hysteresis(self, ln: IntArray, seg: Segment, e: FloatArray) -> BoolArray:
        """``_hysteresis`` for ``_scan_long``, sample-major (samples × lanes ``ln``, ``e`` their moving
        sums): the long lanes' moving sums are read in place, not transposed."""
        on = seg.on_w[ln]
        hi = e > on
        idx = np.where(hi | (e < on * self.spans.off_ratio), self._ramp[: seg.m, None], -1)
        np.maximum.accumulate(idx, axis=0, out=idx)  # the state is that of the last decisive sample
        # hi at each lane's last decisive sample: a plain gather (take_along_axis builds the same indices
        # through Python-level code).
        st: BoolArray = np.where(
            idx >= 0, hi[np.maximum(idx, 0), self._lane_ids[: ln.size]], self._env_state[ln]
        )
        return st

    def _count_slow(self, c: Cluster, block0: int, slow: BoolArray) -> int:
        """Count the slow blocks (flags from absolute block ``block0``) not counted before."""
        nz = slow.nonzero()[0]
        if not nz.size:  # the usual case: nothing to count, no more array operations
            return 0
        idx = nz + block0
        new = idx[idx > c.slow_upto]
        if new.size:
            c.slow_blocks += new.size
            c.slow_upto = int(new[-1])
        return int(new.size)

    def _grow(
        self, lane: int, seg: Segment, a: int, b: int, peak: float, peak_env: float, starts: bool, slow: bool
    ) -> Cluster:
        """Rows [a, b) of the segment are active on ``lane``: start, extend or join its cluster with their
        extent, peak, peak moving sum (``peak_env``) and slow blocks."""
        start = seg.base + a
        c = self.open[lane]
        if starts or c is None:
            if c is not None and start - self._merge_end(c) > c.gap:
                self._release(lane, c)
                c = None
            if c is None:
                c = self.open[lane] = self._host.new_cluster(lane, start)
            c.pieces += 1
            c.piece_start = start
            c.piece_slow = False
            c.piece_on = float(seg.on_w[lane])
            c.piece_peak = 0.0
            self._release_at[lane] = _NEVER
        if peak_env > c.piece_peak:
            c.piece_peak = peak_env
        c.active += b - a
        if peak > c.peak:
            c.peak = peak
        if peak_env > c.peak_env:
            c.peak_env = peak_env
        if slow:
            blk = self.blk
            kb0, kb1 = a // blk, (b - 1) // blk + 1
            n_slow = self._count_slow(c, seg.base // blk + kb0, seg.slow_on[kb0:kb1, lane])
            c.piece_slow = c.piece_slow or n_slow > 0
        c.end = seg.base + b
        return c

    def _store_part(self, lane: int, c: Cluster, seg: Segment, a: int, b: int, ends: bool) -> None:
        """A piece spanning segments: copies of its samples until it ends, then the features a whole piece
        gets, from the same values."""
        keep = min(b - a, self.spans.store_cap - c.stored)
        if keep > 0:
            ra, ch = seg.r0 + a, self._host.lane_channels(lane)
            c.parts_y.append(seg.y[ra : ra + keep, ch].copy())
            c.parts_x.append(seg.x[ra : ra + keep, ch].copy())
            c.parts_env.append(seg.env[ra : ra + keep, lane].copy())
            c.stored += keep
        if ends:
            self._end_piece(lane, c)

    def _end_piece(self, lane: int, c: Cluster) -> None:
        if c.parts_y:
            one = len(c.parts_y) == 1
            y = c.parts_y[0] if one else np.concatenate(c.parts_y)
            raw = c.parts_x[0] if one else np.concatenate(c.parts_x)
            env = c.parts_env[0] if one else np.concatenate(c.parts_env)
            self._piece_features(c, y, raw, env)
            c.parts_y, c.parts_x, c.parts_env, c.stored = [], [], [], 0
        self._settle_piece(lane, c)

    def _settle_piece(self, lane: int, c: Cluster) -> None:
        if c.long:  # known activity: only the gap may still widen
            if c.piece_slow:
                c.gap = max(c.gap, self.spans.slow_gap)
        elif c.piece_slow and self._host.artifact_like(lane, c):
            c.gap = self.spans.slow_gap
        elif c.end - c.start > self.spans.jerk_max:
            c.settle(self.spans.core_ratio)
            if c.core_ms(self.spans.rate) > self.spans.jerk_max_ms:
                c.gap = max(c.gap, self.spans.activity_gap)
                c.long = True  # its core only grows: no need to keep core samples any more
        if c.piece_peak >= self.spans.core_ratio * c.peak_env:
            c.merge_end = c.end
        self._release_at[lane] = self.due(c)

    def due(self, c: Cluster) -> int:
        """The block at whose start a cluster's gap has passed: the first block boundary past the end its
        gap is counted from + the gap (a piece starting at end + gap still joins)."""
        return -(-(self._merge_end(c) + c.gap + 1) // self.blk)

    def _merge_end(self, c: Cluster) -> int:
        """Where a cluster's gap is counted from: its last piece within ``core_db`` of its peak; activity
        and artifacts gather every fragment, so from their end."""
        return c.end if c.long or c.slow_blocks else max(c.merge_end, c.start)

    def _piece_features(self, c: Cluster, y: FloatArray, raw: FloatArray, env: FloatArray) -> None:
        """Core samples, frequency sums and saturation of a piece stored in parts (``y`` and ``raw``
        samples × the lane's channels, ``env`` its moving sum): what ``_scan_lanes`` computes for a whole
        piece, from the same samples. Samples above onset are kept for the core (``Cluster.settle``)."""
        idx = (env > c.piece_on).nonzero()[0]
        if idx.size and not c.long:
            c.core_idx.append(idx + c.piece_start)
            c.core_env.append(env[idx])
            c.core_span.append((c.piece_start, c.end))
        if y.shape[0] >= 2:
            num, den = self._piece_sums(y)
            c.num += num
            c.den += den
        self._check_saturation(c, raw)

    def _piece_sums(self, y: FloatArray) -> tuple[float, float]:
        """``_sums`` for one piece's samples (× the lane's channels): the same per-sample values and the
        same reduceat, hence the same sums to the bit."""
        p, q = np.empty((y.shape[0], 1)), np.empty((y.shape[0] - 1, 1))
        self._host.lane_power(y, p)
        self._host.lane_power(y[1:] - y[:-1], q)
        pf = p.ravel()
        s = float(np.add.reduceat(pf, _FIRST)[0])
        return float(np.add.reduceat(q.ravel(), _FIRST)[0]), s - 0.5 * float(pf[0] + pf[-1])

    def _check_saturation(self, c: Cluster, raw: FloatArray) -> None:
        if c.piece_slow and not c.saturated and raw.shape[0] >= self.spans.sat_run:  # a rail: with a step
            c.saturated = self._saturated(raw, c.baseline, self._host.saturation_limit(c.floor))

    def _saturated(self, raw: FloatArray, baseline: FloatArray, limit: float) -> bool:
        """A run of identical samples at the piece's extreme, far from the baseline: the ADC or the
        amplifier sat at a rail."""
        hi, lo = _max(raw, axis=0), np.minimum.reduce(raw, axis=0)
        if not _any((hi - baseline >= limit) | (baseline - lo >= limit)):
            return False
        for col in range(raw.shape[1]):
            v = raw[:, col]
            for extreme in (hi[col], lo[col]):
                if abs(extreme - baseline[col]) >= limit and _longest_run(v == extreme) >= self.spans.sat_run:
                    return True
        return False


def _per_piece(ufunc: np.ufunc, flat: FloatArray, bounds: npt.NDArray[np.intp]) -> FloatArray:
    """``ufunc`` reduced over each piece [start, stop) of ``flat`` (``bounds``: starts and stops
    interleaved). A stop at the array's end is left off: reduceat's last index runs to the end."""
    if bounds[-1] == flat.size:
        bounds = bounds[:-1]
    out: FloatArray = ufunc.reduceat(flat, bounds)[::2]
    return out


def _pairs(start: npt.NDArray[np.intp], stop: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Interleaved [start, stop) bounds for ``reduceat``: its even results are the pieces' reductions."""
    out = np.empty(2 * start.size, dtype=np.intp)
    out[0::2] = start
    out[1::2] = stop
    return out


def _column_any(a: BoolArray) -> list[bool]:
    """Per column: any True, as Python bools (cheaper to index lane by lane than a numpy array)."""
    return cast(list[bool], _any(a, axis=0).tolist())


def _longest_run(mask: BoolArray) -> int:
    """Length of the longest run of True."""
    if not mask.any():
        return 0
    d = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    return int((np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).max())
