"""A worker SIGKILLed at random moments loses and misnames nothing: a real Mosquitto, ``twitchwatch process``
in a subprocess with a real SQLite file, killed three times while the simulator streams two EMG muscles,
against a control worker on the same frames that is never killed (bench/worker_kills.py runs 20 kills for
docs/reliability.md)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.worker_kills import trial
from tests.harness.mosquitto import MosquittoServer


@pytest.mark.mosquitto
async def test_random_kills_lose_and_misname_nothing(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)  # a different set of moments each run; the seed is in the report
    result = await trial(mosquitto, tmp_path, seconds=36, speed=3, kills=3, seed=seed)
    summary = f"seed {seed}, kills at {result.kills} s, journal replayed {result.replayed}: {result}"
    assert result.caught_up, summary  # every minute row complete
    assert result.truth >= 24, summary
    assert result.injected >= 0.9 * result.truth, summary  # the control's own detector finds them
    assert result.stored_once == result.injected, summary
    assert (result.misnamed, result.lost, result.duplicated) == (0, 0, 0), summary
    assert (result.events_differ, result.minutes_differ) == (0, 0), summary
