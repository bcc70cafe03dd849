"""PhysioNet WFDB records (collector/recordings/formats/wfdb.py): the header's fields, every storage format
read, PhysioNet's own EMG records, and headers or signal files that are wrong.

Records are written here byte by byte from the WFDB specification (header(5), signal(5) in the WFDB
Applications Guide), so each format's decoding is checked against values worked out by hand, not against
the reader's own writer (the every-format round trip in test_recording_formats.py does that).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from bench.data import read_wfdb
from tests.datafiles import shared_only
from tests.test_recording_formats import read_samples
from twitchwatch.collector.recordings import RecordingError, open_recording
from twitchwatch.collector.recordings.formats.wfdb import WfdbReader
from twitchwatch.collector.recordings.reader import reader_class
from twitchwatch.processing.recordings import DetectionRun, plan_detection


def _record(folder: Path, header: str, dat: bytes, name: str = "rec") -> Path:
    (folder / f"{name}.dat").write_bytes(dat)
    path = folder / f"{name}.hea"
    path.write_text(header)
    return path


def _values(path: Path) -> dict[str, np.ndarray]:
    """Every streamed channel's values by label."""
    with open_recording(path) as r:
        return read_samples(r)


# ---- storage formats: bytes worked out by hand ------------------------------------------------------
def test_format_212_two_signals_packed_in_three_bytes(tmp_path: Path) -> None:
    """MIT-BIH's layout: a numbered record, two signals, samples pairwise in 12 bits. Pairs (0x123, 0x456),
    (−1, 1), (2047, −2048): byte 0 the first's low 8 bits, byte 1 its high 4 (low nibble) and the second's
    high 4 (high nibble), byte 2 the second's low 8."""
    dat = bytes([0x23, 0x41, 0x56, 0xFF, 0x0F, 0x01, 0xFF, 0x87, 0x00])
    header = (
        "100 2 360 3\n"
        "100.dat 212 200/uV 11 1024 291 0 0 EMG tibialis\n"
        "100.dat 212 100(2)/uV 11 1024 1110 0 0 EMG soleus\n"
    )
    path = _record(tmp_path, header, dat, "100")
    assert reader_class(path) is WfdbReader  # its record line is a row of numbers too: the extension decides
    x = _values(path)
    # No baseline in the gain field: ADC zero (1024) is the baseline.
    assert x["EMG tibialis"].tolist() == pytest.approx([(a - 1024) / 200 for a in (0x123, -1, 2047)])
    renamed = tmp_path / "100.txt"
    renamed.write_text(header)
    with pytest.raises(RecordingError, match=r"reads as more than one format: .*a WFDB record \(.hea\)"):
        reader_class(renamed)
    assert x["EMG soleus"].tolist() == pytest.approx([(0x456 - 2) / 100, (1 - 2) / 100, (-2048 - 2) / 100])


def test_format_212_odd_last_sample_in_two_bytes_is_left_out(tmp_path: Path) -> None:
    """Three samples of one signal: a whole triplet, then the third in two bytes (as WFDB writes an odd
    last sample). The whole pair is read; the last one, which no triplet holds, is not an error."""
    path = _record(
        tmp_path, "100 1 360\n100.dat 212 200 11 0 291 0 0 EMG x\n", bytes([0x23, 1, 0, 0xFF, 0x0F]), "100"
    )
    assert _values(path)["EMG x"].tolist() == pytest.approx([291 / 200 * 1000, 0.0])


@pytest.mark.parametrize(
    ("fmt", "dat", "adc"),
    [
        ("16", bytes([0x01, 0x80, 0xFF, 0x7F]), [-32767, 32767]),
        ("61", bytes([0x80, 0x01, 0x7F, 0xFF]), [-32767, 32767]),
        ("80", bytes([0x00, 0xFF]), [-128, 127]),
        ("160", bytes([0x00, 0x00, 0xFF, 0xFF]), [-32768, 32767]),
        ("24", bytes([0x01, 0x00, 0x80, 0xFF, 0xFF, 0x7F]), [-(2**23) + 1, 2**23 - 1]),
        ("32", bytes([0xFE, 0xFF, 0xFF, 0xFF, 0x05, 0x00, 0x00, 0x00]), [-2, 5]),
    ],
)
def test_each_storage_format(tmp_path: Path, fmt: str, dat: bytes, adc: list[int]) -> None:
    path = _record(tmp_path, f"rec 1 1000 2\nrec.dat {fmt} 1000/mV 16 0 {adc[0]} 0 0 EMG calf\n", dat)
    assert _values(path)["EMG calf"].tolist() == pytest.approx(adc)  # ADC / 1000 per mV, in µV


def test_header_defaults_offsets_units_and_start(tmp_path: Path) -> None:
    """A byte offset (``16+4``), gain 0 (WFDB's 200), the baseline from ADC zero, units written in lower case
    (emgdb's ``mv``), an accelerometer in g, comments, and the start as local date and time."""
    dat = b"\xaa\xbb\xcc\xdd" + np.array([[110, 4096], [130, -4096]], "<i2").tobytes()
    header = (
        "# made by hand\n"
        "rec 2 500 2 13:45:10.250 06/12/2026\n"
        "rec.dat 16+4 0/mv 12 10 110 0 0 EMG forearm  # gain 0: uncalibrated\n"
        "rec.dat 16+4 4096/g 12 0 4096 0 0 ACC wrist Z\n"
    )
    path = _record(tmp_path, header, dat)
    with open_recording(path) as r:
        rec = r.recording
        assert rec.format == "WFDB"
        assert [(c.signal, c.muscle) for c in rec.channels] == [("emg", "forearm"), ("acc", "wrist")]
        midnight = round(dt.datetime(2026, 12, 6).astimezone().timestamp())  # local time, as EDF's
        assert rec.start_ns == (midnight + 13 * 3600 + 45 * 60 + 10) * 10**9 + 250_000_000
        assert rec.duration_s == pytest.approx(2 / 500)
    x = _values(path)
    assert x["EMG forearm"].tolist() == pytest.approx([(110 - 10) / 200 * 1000, (130 - 10) / 200 * 1000])
    assert x["ACC wrist Z"].tolist() == pytest.approx([1.0, -1.0])


def test_ecg_leads_are_skipped_and_a_short_file_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    dat = np.array([[1, 2], [3, 4], [5, 6]], "<i2").tobytes()
    header = "rec 2 360 10\nrec.dat 16 200 16 0 1 0 0 MLII\nrec.dat 16 200 16 0 2 0 0 EMG neck\n"
    with open_recording(_record(tmp_path, header, dat)) as r:
        rec = r.recording
        lead, emg = rec.channels
        assert lead.signal is None
        assert "ECG lead" in lead.note
        assert emg.signal == "emg"
        assert rec.duration_s == pytest.approx(3 / 360)
        assert any("the header says 10 samples, the signal files hold 3" in n for n in rec.notes)


# ---- PhysioNet's own records -------------------------------------------------------------------------
def test_physionet_emgdb_reads_as_the_benchmark_reads_it() -> None:
    """The three emgdb records (needle EMG at 4 kHz, format 16, one in ``mv``): the same µV as the
    benchmark's own WFDB reader, and detection runs on them."""
    why = "PhysioNet emgdb: its licence could not be checked"
    for name in ("healthy", "myopathy", "neuropathy"):
        hea = shared_only(f"physionet_emgdb/emg_{name}.hea", why)
        shared_only(f"physionet_emgdb/emg_{name}.dat", why)
        rate, expected, _ = read_wfdb(hea)
        with open_recording(hea) as r:
            assert r.recording.channels[0].rate == rate == 4000.0
            plan = plan_detection(r.recording)
            run = DetectionRun(plan)
            parts = []
            for chunk in r.chunks(plan.groups):
                parts.append(chunk.data)
                run.feed(chunk)
            run.finish()
        np.testing.assert_allclose(np.concatenate(parts), expected, rtol=0, atol=1e-9)


# ---- what is wrong is named ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("rec 1 1000\nrec.dat 16 200 16 0 99 0 0 EMG\n", r"signal 0 \(rec.dat\): first value 1, the header"),
        ("rec 1 1000\nrec.dat 311 200 16 0 1 0 0 EMG\n", r"storage format 311 is not read \(formats read"),
        ("rec 1 1000\nrec.dat 16x2 200 16 0 1 0 0 EMG\n", r"2 samples per frame \(a multi-frequency"),
        ("rec 1 -5\nrec.dat 16 200 16 0 1 0 0 EMG\n", r"sampling frequency '-5' is not positive"),
        ("rec 1 1000\nrec.dat 16 lots/mV 16 0 1 0 0 EMG\n", r"gain field 'lots/mV' is not gain"),
        ("rec 1 1000\nother.dat 16 200 16 0 1 0 0 EMG\n", r"signal file other.dat: No such file"),
        ("rec 1 1000\n../rec.dat 16 200 16 0 1 0 0 EMG\n", r"signal file '../rec.dat' is not a file beside"),
        (
            "rec 2 1000\nrec.dat 16 200\nrec.dat 80 200\n",
            r"signals in rec.dat are stored in different formats",
        ),
        ("rec 1 1000 5 10:00:00 31/02/2026\nrec.dat 16 200 16 0 1 0 0 EMG\n", None),
    ],
)
def test_a_wrong_header_is_named(tmp_path: Path, header: str, message: str | None) -> None:
    path = _record(tmp_path, header, np.array([1, 2, 3, 4, 5, 6], "<i2").tobytes())
    if message is None:  # a date that does not exist: read, with a note and no start
        with open_recording(path) as r:
            assert r.recording.start_ns is None
            assert any("not understood" in n for n in r.recording.notes)
        return
    with pytest.raises(RecordingError, match=message) as info:
        open_recording(path)
    assert str(path) in str(info.value)


def test_multi_segment_records_and_signal_files_are_refused_with_what_to_do(tmp_path: Path) -> None:
    path = _record(tmp_path, "rec/2 1 1000 20\nrec_1 10\nrec_2 10\n", b"")
    with pytest.raises(RecordingError, match="a multi-segment record"):
        WfdbReader(path)
    dat = _record(tmp_path, "rec 1 1000\nrec.dat 16 200\n", b"\x01\x00").with_suffix(".dat")
    with pytest.raises(RecordingError, match=r"rec.dat: part of a WFDB record: open .*rec.hea$"):
        open_recording(dat)  # no reader takes a .dat: the header beside it that names it is the way in
    with pytest.raises(RecordingError, match=r"a WFDB record's signal file: open its header, .*rec.hea$"):
        WfdbReader(dat)
    with pytest.raises(RecordingError, match="a WFDB header carries the rate"):
        open_recording(dat.with_suffix(".hea"), rate=100)
