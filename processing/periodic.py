"""The worker's periodic, low-rate tasks: persistent-activity flags and Home Assistant.

With ``flags=FlagTask(...)`` the worker owns a third task, the flag computer: every ``interval_s`` it
evaluates the persistent-activity rules over the store in a thread (weeks of rates must not stall the MQTT
loop), replaces the user's stored flags and publishes them retained on ``flags_topic(user)``. With
``FlagTask.ha`` set, a fourth task publishes Home Assistant discovery and low-rate states.

:class:`PeriodicTasks` holds those tasks' code; ``processing.worker.Worker`` mixes it in and owns the state it
uses (the store, the broker client, the stop event, the counters), declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from twitchwatch.collector.ratelog import RateLimitedLog
from twitchwatch.processing import homeassistant as ha
from twitchwatch.processing.events import MinuteRate
from twitchwatch.processing.flag_service import compute_flag_set
from twitchwatch.processing.flags import FlagRules, FlagSet, flags_topic
from twitchwatch.processing.store import EventQuery, EventStore, StoreError


@dataclass(frozen=True)
class HaDiscovery:
    prefix: str = "homeassistant"
    interval_s: float = 60.0


@dataclass(frozen=True)
class FlagTask:
    """The worker's periodic flag computation. ``devices``: configured devices (for ``stale_sensor``);
    ``users``: computed for even before any of their frames arrive (users seen later are added)."""

    rules: FlagRules
    interval_s: float = 300.0
    devices: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    ha: HaDiscovery | None = None
    tz: dt.tzinfo = dt.UTC  # local days and hours of the flags (TWITCHWATCH_TIMEZONE)


class PeriodicCounters(Protocol):
    """The worker's counters these tasks add to (``processing.worker.WorkerStats``)."""

    flag_computations: int
    flag_errors: int
    flags_published: int
    ha_updates: int


class PeriodicTasks:
    """The flag and Home Assistant tasks, mixed into ``processing.worker.Worker``."""

    # What the worker provides.
    store: EventStore
    user: str
    stats: PeriodicCounters
    flag_task: FlagTask | None
    flag_sets: dict[str, FlagSet]
    flags_computed: asyncio.Event
    connected: asyncio.Event
    started_ns: int
    _client: aiomqtt.Client | None
    _stop: asyncio.Event
    _rlog: RateLimitedLog
    _last_frame_wall: dict[tuple[str, str], int]
    _ha_muscles: dict[str, frozenset[str]]

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # ---- flags and Home Assistant (periodic, low rate) --------------------------------------------
    def flag_users(self) -> list[str]:
        users = set(self.flag_task.users if self.flag_task else ())
        if self.user != "+":
            users.add(self.user)
        users.update(u for u, _ in self._last_frame_wall)
        return sorted(users)

    def _last_frames(self, user: str, task: FlagTask) -> dict[str, int | None]:
        """Configured devices belong to the configured users; another user seen on the bus has none."""
        if user not in task.users and user != self.user:
            return {}
        return {d: self._last_frame_wall.get((user, d)) for d in task.devices}

    async def _flags_loop(self, task: FlagTask) -> None:
        while not self._stop.is_set():
            await self.compute_flags_once(task)
            await self._sleep_or_stop(task.interval_s)

    async def compute_flags_once(self, task: FlagTask) -> None:
        for user in self.flag_users():
            now = time.time_ns()
            try:
                flag_set = await asyncio.to_thread(self._compute_and_store, task, user, now)
            except StoreError as exc:
                self.stats.flag_errors += 1
                self._rlog.warning("flags", "could not compute flags of %s, will retry: %s", user, exc)
                continue
            self.flag_sets[user] = flag_set
            self.stats.flag_computations += 1
            client = self._client
            if client is not None:
                await self._publish_flag_set(client, flag_set)
        self.flags_computed.set()

    def _compute_and_store(self, task: FlagTask, user: str, now_ns: int) -> FlagSet:
        flag_set = compute_flag_set(
            self.store,
            user=user,
            now_ns=now_ns,
            rules=task.rules,
            computed_by="worker",
            last_frame_ns=self._last_frames(user, task),
            watched_since_ns=self.started_ns,
            tz=task.tz,
        )
        self.store.replace_flags(flag_set)
        return flag_set

    async def _republish_flags(self, client: aiomqtt.Client) -> None:
        for flag_set in list(self.flag_sets.values()):
            await self._publish_flag_set(client, flag_set)
        self._ha_muscles.clear()  # the broker may have lost retained configs: send them again

    async def _publish_flag_set(self, client: aiomqtt.Client, flag_set: FlagSet) -> None:
        messages = [ha.Message(flags_topic(flag_set.user), flag_set.to_json())]
        if self.flag_task is not None and self.flag_task.ha is not None:
            messages += ha.flag_messages(flag_set)
        if await self._publish_all(client, messages, "flags"):
            self.stats.flags_published += 1

    async def _publish_all(self, client: aiomqtt.Client, messages: list[ha.Message], what: str) -> bool:
        try:
            for m in messages:
                await client.publish(m.topic, m.payload, qos=1, retain=m.retain)
        except aiomqtt.MqttError as exc:
            # Stored already; the retained topics are re-published on the next connection.
            self._rlog.warning(what, "could not publish %s: %s", what, exc)
            return False
        return True

    async def _ha_loop(self, settings: HaDiscovery) -> None:
        while await self._connected_unless_stopped():
            client = self._client
            if client is not None:
                await self.publish_ha_once(client, settings)
            await self._sleep_or_stop(settings.interval_s)

    async def _connected_unless_stopped(self) -> bool:
        """Wait for a broker connection; False once the worker is stopping."""
        if self._stop.is_set():
            return False
        if self.connected.is_set():
            return True
        waiters = {asyncio.create_task(self.connected.wait()), asyncio.create_task(self._stop.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return not self._stop.is_set()

    async def publish_ha_once(self, client: aiomqtt.Client, settings: HaDiscovery) -> None:
        for user in self.flag_users():
            now = time.time_ns()
            try:
                muscles, recent = await asyncio.to_thread(self._recent_rates, user, now)
            except StoreError as exc:
                self._rlog.warning("ha", "could not read rates of %s for Home Assistant: %s", user, exc)
                continue
            messages: list[ha.Message] = []
            known = frozenset(muscles)
            if self._ha_muscles.get(user) != known:
                messages += ha.discovery_messages(settings.prefix, user, known)
            messages += ha.rate_messages(user, known, recent)
            if await self._publish_all(client, messages, "Home Assistant states"):
                self._ha_muscles[user] = known
                self.stats.ha_updates += 1

    def _recent_rates(self, user: str, now_ns: int) -> tuple[list[str], list[MinuteRate]]:
        muscles = self.store.muscles(user)
        recent = self.store.rates(EventQuery(since_ns=now_ns - ha.RATE_WINDOW_NS, until_ns=now_ns, user=user))
        return muscles, recent
