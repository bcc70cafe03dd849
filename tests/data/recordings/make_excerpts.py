"""How the recordings here were made from ``../shared/data`` (kept for provenance; the tests do not run it).

    python tests/data/recordings/make_excerpts.py [SHARED_DATA]

Text files are cut by rows (the header kept), the PLUX HDF5 files by samples: each device group keeps its
attributes (``nsamples`` and ``duration`` set to the excerpt's) and the ``raw`` datasets the readers
use, gzip-compressed; the ``digital``, ``events``, ``plugin`` and ``support`` groups are left out. Licence
files are copied unchanged. Which stretch of each file, and why, is in README.md beside this script.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent

# path under ../shared/data → (header lines kept, first data row, rows); None: the whole file
TEXT: dict[str, tuple[int, int, int] | None] = {
    "biosppy_examples/emg.txt": None,
    "biosppy_examples/acc.txt": None,
    "biosppy_examples/emg_1.txt": (4, 0, 22_000),  # 22 s of 64: the tests use 2-22 s
    "realworld/gaitpy-geneactiv-lumbar/demo_data.csv": (100, 0, 40 * 50),  # 40 s of walking, of 168 s
    "realworld/aeon-daphnet-pd-acc/S06R02E0.csv": (1, 30 * 64, 30 * 64),  # 30-60 s: the walk, of 110 s
    "realworld/mobgap-lowback-imu/HA001/TimeMeasure1_Test5_Trial1.csv": None,
    "realworld/mobgap-lowback-imu/HA001/TimeMeasure1_Test5_Trial2.csv": None,
    "realworld/mobgap-lowback-imu/HA001/TimeMeasure1_Test11_Trial1.csv": (1, 30 * 100, 10 * 100),  # 30-40 s
}
# path → (first sample, samples); None: every sample
HDF5: dict[str, tuple[int, int] | None] = {
    "realworld/bsnb-acc/sync_acc_1.h5": (16_000, 20_000),  # still, ~11 s of shaking, still (of 41 s)
    "realworld/bsnb-acc/sync_acc_2.h5": None,  # 20 s
    "realworld/bsnb-acc/loft_time_subject_1.h5": (0, 15 * 500),  # 15 s with a jump, of 44 s
    "realworld/bsnb-acc/signal_sample_single_hub_cacc_2017_1_20.h5": (0, 10_000),  # 10 s of 30
    "realworld/bsnb-emg/emg_bursts.h5": None,  # 28.5 s
}
COPIED = [
    "biosppy_examples/LICENSE.BioSPPy",
    "realworld/gaitpy-geneactiv-lumbar/LICENSE",
    "realworld/aeon-daphnet-pd-acc/LICENSE",
    "realworld/mobgap-lowback-imu/LICENSE",
    "realworld/mobgap-lowback-imu/NOTICE",
    "realworld/bsnb-acc/LICENSE.txt",
    "realworld/bsnb-emg/LICENSE.txt",
    *(p.replace(".h5", "_info.json") for p in HDF5),
]


def cut_text(src: Path, dst: Path, keep: tuple[int, int, int] | None) -> None:
    if keep is None:
        shutil.copyfile(src, dst)
        return
    header, first, rows = keep
    lines = src.read_bytes().splitlines(keepends=True)
    dst.write_bytes(b"".join(lines[:header] + lines[header + first : header + first + rows]))


def cut_hdf5(src: Path, dst: Path, keep: tuple[int, int] | None) -> None:
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as out:
        for mac, group in f.items():
            g = out.create_group(mac)
            n = int(np.asarray(group.attrs["nsamples"]))
            first, count = keep if keep is not None else (0, n)
            rate = float(np.asarray(group.attrs["sampling rate"]).ravel()[0])
            for key, value in group.attrs.items():
                g.attrs[key] = value
            g.attrs["nsamples"] = np.int32(count)
            g.attrs["duration"] = f"{count / rate:g}s"
            raw = g.create_group("raw")
            for name, ds in group["raw"].items():
                part = raw.create_dataset(name, data=ds[first : first + count], compression="gzip")
                for key, value in ds.attrs.items():
                    part.attrs[key] = value


def main(shared: Path) -> None:
    for rel, keep in TEXT.items():
        (HERE / rel).parent.mkdir(parents=True, exist_ok=True)
        cut_text(shared / rel, HERE / rel, keep)
    for rel, span in HDF5.items():
        (HERE / rel).parent.mkdir(parents=True, exist_ok=True)
        cut_hdf5(shared / rel, HERE / rel, span)
    for rel in COPIED:
        shutil.copyfile(shared / rel, HERE / rel)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data")
