"""bench/throughput.py's simulated wearables: frames as the collector's coalescing makes them, at the rates
the issue's targets name."""

from __future__ import annotations

import pytest

from bench.throughput import Wearable, _chunk, _spec, wearable_frames
from twitchwatch.collector.frames import decode


@pytest.mark.parametrize(
    ("signal", "span_s", "samples"),
    [("emg", 0.05, 50), ("emg8", 0.05, 50), ("acc", 0.05, 5), ("acc50", 0.05, 2), ("acc50", 0.1, 5)],
)
def test_a_frame_holds_what_the_collector_puts_in_its_span(signal: str, span_s: float, samples: int) -> None:
    assert _chunk(signal, span_s) == samples


def test_a_50_hz_accelerometer_in_100_ms_frames() -> None:
    spec = _spec("acc50")
    assert (spec.sample_rate, spec.channels) == (50.0, 3)
    w = Wearable("u", "sim-a", ("calf",), (7,))
    topic, frames = wearable_frames(w, "acc50", 1_700_000_000_000_000_000, 2.0, 0.1)
    assert topic == "twitchwatch/u/sim-a/raw/acc"
    decoded = [decode(f) for f in frames]
    assert [f.samples for f in decoded] == [5] * 20
    assert [f.sequence for f in decoded] == list(range(20))
    assert all(f.sample_rate == 50.0 and f.channels == 3 for f in decoded)
    assert decoded[1].t0_ns - decoded[0].t0_ns == 100_000_000
