"""Flags from a store: read a user's minute rates and evaluate the rules (``processing.flags``) over them.

The rules and the values they produce are pure (``processing.flags``) and the stores keep those values, so
everything that reads a store to compute flags lives here, above both.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence

from twitchwatch.processing.flags import ComputedBy, FlagRules, FlagSet, evaluate, last_frames_from_rates
from twitchwatch.processing.localtime import day_of, day_start_ns
from twitchwatch.processing.store import EventQuery, EventStore


def compute_flag_set(
    store: EventStore,
    *,
    user: str,
    now_ns: int,
    rules: FlagRules,
    computed_by: ComputedBy,
    last_frame_ns: Mapping[str, int | None] | None = None,
    watched_since_ns: int | None = None,
    devices: Sequence[str] = (),
    tz: dt.tzinfo = dt.UTC,
) -> FlagSet:
    """Read the lookback window of ``user``'s rates from ``store`` and evaluate every rule, with days
    and hours local to ``tz``.

    Without ``last_frame_ns`` (no worker watching), a configured device's last frame is taken from the
    store: the end of its latest minute rate, or None when it has none within the lookback."""
    since = day_start_ns(day_of(now_ns, tz) - dt.timedelta(days=rules.lookback_days), tz)
    rates = store.rates(EventQuery(since_ns=since, until_ns=now_ns, user=user))
    if last_frame_ns is None:
        last_frame_ns = last_frames_from_rates(rates, devices)
        watched_since_ns = since if watched_since_ns is None else watched_since_ns
    flags = evaluate(
        rates,
        user=user,
        now_ns=now_ns,
        rules=rules,
        last_frame_ns=last_frame_ns,
        watched_since_ns=watched_since_ns,
        tz=tz,
    )
    return FlagSet(user, now_ns, computed_by, tuple(flags))


def flags_for_display(
    store: EventStore,
    *,
    user: str,
    rules: FlagRules,
    devices: Sequence[str] = (),
    max_age_s: float = 900.0,
    now_ns: int | None = None,
    computed_by: ComputedBy = "cli",
    tz: dt.tzinfo = dt.UTC,
    compute: Callable[..., FlagSet] = compute_flag_set,
) -> FlagSet:
    """What ``twitchwatch flags`` and the dashboard show: the set the worker stored, if it is at most
    ``max_age_s`` old; otherwise a fresh computation from the store (``computed_by`` says which).
    ``compute`` takes ``compute_flag_set``'s arguments: the dashboard passes a cached one, so a page
    rerun every few seconds does not recompute weeks of history each time."""
    now = time.time_ns() if now_ns is None else now_ns
    stored = store.current_flags(user)
    if stored is not None and 0 <= now - stored.computed_at_ns <= max_age_s * 1e9:
        return stored
    return compute(store, user=user, now_ns=now, rules=rules, computed_by=computed_by, devices=devices, tz=tz)
