"""The detector's events on a few generated recordings, pinned field by field.

The property tests (``test_detector.py``: any chunking, lanes scanned together or one by one) compare the
detector with itself, so a change that every chunking makes alike passes them — one that measures a piece
stored in parts from a sample fewer, say. A refactor of the engine is meant to change nothing at all; here
any change of any event shows.

``tests/data/detector_golden.json`` was written by the detector as it was before cluster assembly moved out
of ``processing/core.py`` (main at 5647b5e), with the digest of each generated input beside its events, and
rewritten when clusters came to be decided at their decision block (the same events, 14 of them in another
place of the emission order: by decision block, lane and start), and when a heartbeat's rhythm came to be
recognised (8 of the busy case's fasciculations became heartbeats: at 60 a minute the generator's events,
kept 0.6 s apart, fire almost regularly), and when EMG lanes came to lose their mains interference
(``processing.mains``: the generator's own 50-Hz hum, half the noise's amplitude, is taken out on the lanes
where it stands out — one of the busy case, two of the 1-kHz loud case, one of the 2-kHz one — and their
events moved by a sample or a few per cent; with the floor 0.5 dB lower a contraction there ends 0.24 s later,
and a jerk and a potential 0.8 s after it became one event, 254 ms of activity). When
an intended change of the detector (or a numpy/scipy upgrade that moves results in their last bits) makes
this fail, check that the differences are the ones meant, then rewrite the file:
``.venv/bin/python -m tests.test_detector_golden --write``.

Pinned across machines, not only on the one that wrote the file: numpy's vectorised functions give results
that differ in the last bit from one CPU's instruction set to another's (AVX-512 or not), and a CI machine
with another CPU got the generator's output and every float of the events 1e-16–5e-15 apart, with every
sample index, kind and reason the same. So the input is quantised to the device counts a wearable sends
(``SignalSpec.scale``; a last-bit difference never moves a count), and the events' floats (peak, confidence,
dominant frequency) are compared to a relative 1e-9; everything else, the sample indices first, exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twitchwatch.collector import synth
from twitchwatch.processing.detector import Detection, StreamingDetector

GOLDEN = Path(__file__).resolve().parent / "data" / "detector_golden.json"
BUSY = {"fasciculation": 60.0, "myoclonic_jerk": 8.0, "sustained": 3.0, "artifact": 3.0, "snr_db": 22.0}
# Long contractions and artifacts at a high SNR: pieces longer than a segment, stored in parts (and past
# store_s), which the property tests cannot tell from whole ones.
LOUD = {"fasciculation": 30.0, "myoclonic_jerk": 4.0, "sustained": 2.0, "artifact": 4.0, "snr_db": 30.0}
MOVING = {"posture_changes": 1.0, "walking": 0.5}

# name: (signal, rate, seconds, rates, seeds: one lane each for EMG, one accelerometer, chunk size)
CASES: dict[str, tuple[synth.Signal, float, float, dict[str, float], tuple[int, ...], int]] = {
    "emg 1 kHz, 4 busy lanes": ("emg", 1000.0, 20.0, BUSY, (11, 12, 13, 14), 100),
    "emg 1 kHz, 4 loud lanes": ("emg", 1000.0, 30.0, LOUD, (1061, 1062, 1063, 1064), 50),
    "emg 2 kHz, 2 loud lanes": ("emg", 2000.0, 30.0, LOUD, (1191, 1192), 1000),
    "emg 200 Hz, 4 loud lanes": ("emg", 200.0, 30.0, LOUD, (1133, 1134, 1135, 1136), 20),
    "acc 100 Hz, moving": ("acc", 100.0, 60.0, MOVING, (1203,), 100),
    "acc 50 Hz, moving": ("acc", 50.0, 60.0, MOVING, (1220,), 20),
}


FLOATS = (4, 5, 6)  # peak, confidence, dominant frequency in ``_fields``
REL = 1e-9


def _signal(case: str) -> np.ndarray:
    """The generated recording in device counts × scale (exact: the scales are powers of two)."""
    signal, rate, seconds, rates, seeds, _ = CASES[case]
    phys = synth.Physiology(**rates)
    x = np.hstack([synth.generate(signal, rate, seconds, phys, seed)[0] for seed in seeds])
    scale = synth.spec_for(signal, rate).scale
    return np.rint(x / scale) * scale


def _same(got: list[Any], pinned: list[Any]) -> bool:
    if len(got) != len(pinned):
        return False
    for i, (g, p) in enumerate(zip(got, pinned, strict=True)):
        if i in FLOATS:
            if not math.isclose(float(g), float(p), rel_tol=REL, abs_tol=1e-300):
                return False
        elif g != p:
            return False
    return True


def _digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f8").tobytes()).hexdigest()


def _fields(d: Detection) -> list[Any]:
    """Every field; floats as ``repr`` (exact: it reads back as the same double)."""
    span = list(d.veto_span) if d.veto_span is not None else None
    floats = [repr(d.peak), repr(d.confidence), repr(d.dominant_hz)]
    return [d.lane, d.start, d.end, d.kind.value, *floats, d.reason, d.vetoes, span]


def _events(case: str, x: np.ndarray) -> list[list[Any]]:
    signal, rate, _, _, _, chunk = CASES[case]
    det = StreamingDetector(signal, rate, x.shape[1])
    out: list[Detection] = []
    for i in range(0, x.shape[0], chunk):
        out += det.process(x[i : i + chunk])
    return [_fields(d) for d in out + det.finish()]


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_events_are_those_pinned(case: str) -> None:
    expected = _golden()[case]
    x = _signal(case)
    assert _digest(x) == expected["input"], (
        "the generator's output changed: the pinned events no longer apply"
    )
    got = _events(case, x)
    assert len(got) == len(expected["events"])
    for i, (g, e) in enumerate(zip(got, expected["events"], strict=True)):
        assert _same(g, e), f"event {i}: {g} != {e}"


def test_the_pinned_events_cover_every_kind() -> None:
    """The cases are busy enough to mean something: every kind of event, on every lane of each case."""
    golden = _golden()
    assert set(golden) == set(CASES)
    kinds = {e[3] for case in golden.values() for e in case["events"]}
    assert kinds == {"fasciculation", "myoclonic_jerk", "sustained", "artifact"}
    for case, (signal, *_, seeds, _) in CASES.items():
        lanes = len(seeds) if signal == "emg" else 1
        assert {e[0] for e in golden[case]["events"]} == set(range(lanes)), case


def write() -> None:
    golden = {}
    for case in sorted(CASES):
        x = _signal(case)
        golden[case] = {"input": _digest(x), "events": _events(case, x)}
    # One event a line, so that a rewrite's diff shows which events changed.
    lines = []
    for case, entry in golden.items():
        events = ",\n".join(json.dumps(e, ensure_ascii=False) for e in entry["events"])
        lines.append(
            f'{json.dumps(case)}: {{"input": {json.dumps(entry["input"])}, "events": [\n{events}\n]}}'
        )
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"{GOLDEN}: {sum(len(c['events']) for c in golden.values())} events in {len(golden)} cases")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python -m tests.test_detector_golden --write  (rewrites {GOLDEN})")
    write()
