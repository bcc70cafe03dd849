"""Where the tests' data lives: in the repository (``tests/data``: recordings with their licences, BLE vectors
with their sources, archives), so that a plain clone runs them — except the few recordings whose licence keeps
them out (tests/data/recordings/README.md), which only the shared data folder beside a checkout holds."""

from __future__ import annotations

from pathlib import Path

from tests.harness import unavailable

DATA = Path(__file__).resolve().parent / "data"
RECORDINGS = DATA / "recordings"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_only(relative: str, why: str) -> Path:
    """``relative`` under the shared data folder, a recording the repository may not hold (``why``); when it
    is not there, the test skips naming it (and fails under CI=true, where nothing may skip)."""
    path = SHARED_DATA / relative
    if not path.exists():
        unavailable(
            f"needs {path}, which is not in the repository ({why}): put the shared data folder beside it"
        )
    return path
