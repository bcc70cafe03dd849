"""The wire contract: round trips, typed errors with byte offsets, and what a frame costs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twitchwatch.collector.frames import (
    HEADER_SIZE,
    Frame,
    FrameError,
    SampleType,
    Unit,
    decode,
    encode,
    sequence_gap,
    wire_bytes_per_value,
)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    sample_type = draw(st.sampled_from(list(SampleType)))
    n = draw(st.integers(1, 64))
    c = draw(st.integers(1, 9))
    info = np.iinfo(str(sample_type.dtype)) if sample_type is not SampleType.FLOAT32 else None
    if info is None:
        values = draw(st.lists(st.floats(-1048576.0, 1048576.0, width=32), min_size=n * c, max_size=n * c))
    else:
        values = draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n * c, max_size=n * c))
    raw = np.array(values, dtype=sample_type.dtype).reshape(n, c)
    return Frame(
        stream_id=draw(st.integers(0, 255)),
        sequence=draw(st.integers(0, 2**32 - 1)),
        t0_ns=draw(st.integers(-(2**63), 2**63 - 1)),
        sample_rate=draw(st.floats(0.015625, 1048576.0, width=32)),
        scale=draw(st.floats(2.0**-30, 1048576.0, width=32)),
        unit=draw(st.sampled_from(list(Unit))),
        sample_type=sample_type,
        raw=raw,
    )


@given(frames())
def test_round_trip(frame: Frame) -> None:
    data = encode(frame)
    assert len(data) == HEADER_SIZE + frame.raw.nbytes
    assert decode(data) == frame


@given(st.binary(max_size=400))
@settings(max_examples=500)
def test_arbitrary_bytes_raise_only_frame_error(data: bytes) -> None:
    try:
        frame = decode(data)
    except FrameError as exc:
        offset = exc.offset
    else:
        assert encode(frame) == data  # whatever decodes must be exactly what it re-encodes to
        return
    assert 0 <= offset <= len(data)


def _frame(n: int = 50, c: int = 3) -> Frame:
    raw = np.arange(n * c, dtype=np.int16).reshape(n, c)
    return Frame(1, 7, 1_700_000_000_000_000_000, 100.0, 1 / 4096, Unit.G, SampleType.INT16, raw)


def test_values_apply_scale() -> None:
    frame = _frame()
    assert frame.values()[2, 1] == pytest.approx(7 / 4096)
    assert frame.duration_ns == 500_000_000


@pytest.mark.parametrize("cut", [0, 5, HEADER_SIZE - 1])
def test_truncated_header_names_offset(cut: int) -> None:
    with pytest.raises(FrameError, match="truncated header") as err:
        decode(encode(_frame())[:cut])
    assert err.value.offset == cut


def test_truncated_samples_name_offset_of_last_whole_sample() -> None:
    data = encode(_frame())
    with pytest.raises(FrameError, match="truncated samples") as err:
        decode(data[:-1])
    assert err.value.offset == len(data) - 6  # one 3-channel int16 sample is 6 bytes


@pytest.mark.parametrize(
    ("offset", "byte", "message"),
    [
        (0, 9, "unsupported format version 9"),
        (1, 0x2F, "unknown sample type"),
        (1, 0xF2, "unknown unit"),
        (2, 0, "channel count is 0"),
    ],
)
def test_bad_header_fields(offset: int, byte: int, message: str) -> None:
    data = bytearray(encode(_frame()))
    data[offset] = byte
    with pytest.raises(FrameError, match=message) as err:
        decode(bytes(data))
    assert err.value.offset == offset


def test_non_finite_rate_and_nan_samples_rejected() -> None:
    data = bytearray(encode(_frame()))
    data[16:20] = np.float32(np.nan).tobytes()
    with pytest.raises(FrameError, match="sample rate") as err:
        decode(bytes(data))
    assert err.value.offset == 16
    raw = np.zeros((4, 2), dtype=np.float32)
    raw[2, 1] = np.inf
    f = Frame(0, 0, 0, 10.0, 1.0, Unit.MICROVOLT, SampleType.FLOAT32, raw)
    with pytest.raises(FrameError, match="non-finite") as err:
        decode(encode(f))
    assert err.value.offset == HEADER_SIZE + 5 * 4


def test_frame_rejects_invalid_values() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        Frame(0, 0, 0, 0.0, 1.0, Unit.G, SampleType.INT16, np.zeros((1, 1), np.int16))
    with pytest.raises(ValueError, match="sequence"):
        Frame(0, 2**32, 0, 1.0, 1.0, Unit.G, SampleType.INT16, np.zeros((1, 1), np.int16))


def test_wire_cost_per_value() -> None:
    # 24-byte header: 50 samples of 8 EMG channels (Myo class) cost 2.06 B a value; of one channel, 2.48.
    assert wire_bytes_per_value(50, 8) == pytest.approx(2.06)
    assert wire_bytes_per_value(50, 8) <= 2.1
    assert wire_bytes_per_value(50, 1) == pytest.approx(2.48)
    assert len(encode(_frame(50, 8))) == 824


@pytest.mark.parametrize(
    ("prev", "cur", "gap"),
    [(1, 2, 0), (1, 5, 3), (2**32 - 1, 0, 0), (2**32 - 2, 1, 2), (5, 5, -1), (5, 3, -3)],
)
def test_sequence_gap(prev: int, cur: int, gap: int) -> None:
    assert sequence_gap(prev, cur) == gap
