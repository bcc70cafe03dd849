"""The script ``streamlit run`` executes (see ``twitchwatch.dashboard_launch``).

It is the dashboard's composition root: settings, store and live feed come from here, so the
``dashboard`` package itself never imports ``twitchwatch``. Streamlit reruns this file on every
interaction, then runs the selected page; the store and the MQTT feed are opened once per process
and shared by all sessions (``st.cache_resource``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

import streamlit as st

from twitchwatch.collector.mqtt import MqttTarget
from twitchwatch.config import ConfigError, Settings, load_settings
from twitchwatch.dashboard import app, login
from twitchwatch.dashboard.livefeed import LiveFeed
from twitchwatch.person_cli import flag_display_args, report_args
from twitchwatch.processing.flags import FlagRules, FlagSet, compute_flag_set, flags_for_display
from twitchwatch.processing.report import ReportData, build_report
from twitchwatch.processing.store import EventStore, InfluxAuth, StoreError, open_store


def _close(store: EventStore) -> None:
    store.close()


# ``on_release`` closes the store when the cache drops it (``st.cache_resource.clear()``, as the
# tests do between runs), so connections do not pile up.
@st.cache_resource(show_spinner=False, on_release=_close)
def cached_store(url: str, _auth: InfluxAuth) -> EventStore:
    # ``_auth`` is left out of the cache key (leading underscore): it holds secrets, and it is
    # fixed for the process anyway, since it comes from the same environment as ``url``.
    return open_store(url, _auth)


def _stop(feed: LiveFeed) -> None:
    feed.stop()


@st.cache_resource(show_spinner=False, on_release=_stop)
def cached_feed(broker: str, user: str, _target: MqttTarget) -> LiveFeed:
    # Keyed by the broker's address without credentials (``_target`` holds them) and the user.
    return LiveFeed(_target, user).start()


# Without a fresh set from the worker, the dashboard computes one: seconds for weeks of history, so it
# is kept for a few minutes (per process, shared by the sessions) instead of recomputed on every rerun.
FLAGS_CACHE_S = 300


@st.cache_data(ttl=FLAGS_CACHE_S, max_entries=16, show_spinner=False)
def _computed_flags(
    url: str, user: str, rules: FlagRules, devices: tuple[str, ...], tz: dt.tzinfo, _store: EventStore
) -> FlagSet:
    # Keyed by what determines the result; the store (leading underscore) is not hashed, its URL is.
    return compute_flag_set(
        _store, user=user, now_ns=time.time_ns(), rules=rules, computed_by="dashboard", devices=devices, tz=tz
    )


def current_flags(store: EventStore, settings: Settings) -> FlagSet:
    # The same call as ``twitchwatch flags``, so the page and the command agree.
    def compute(
        store: EventStore, *, user: str, rules: FlagRules, devices: Sequence[str], tz: dt.tzinfo, **_: object
    ) -> FlagSet:
        return _computed_flags(settings.store_url, user, rules, tuple(devices), tz, store)

    return flags_for_display(store, computed_by="dashboard", compute=compute, **flag_display_args(settings))


def report(store: EventStore, settings: Settings, since_ns: int, until_ns: int) -> ReportData:
    # The same call as ``twitchwatch report``.
    return build_report(store, since_ns, until_ns, **report_args(settings))


def dashboard_login(settings: Settings) -> login.Login:
    password = settings.dashboard_password
    return login.Login(password.get_secret_value() if password else None, settings.dashboard_oidc_allowed)


def main() -> None:
    st.set_page_config(page_title="twitchwatch", layout="wide")
    try:
        settings = load_settings()
    except ConfigError as exc:
        st.warning(app.NOTICE, icon="⚕️")
        st.error(f"twitchwatch cannot start: {exc}")
        return
    access = dashboard_login(settings)
    if not login.logged_in(access):
        # The login is the only page this session has: no other can run, whatever its address.
        st.navigation([login.page(access)], position="hidden").run()
        return
    navigation = st.navigation(app.pages())
    login.logout_button(access)
    try:
        store = cached_store(settings.store_url, settings.influx_auth)
    except StoreError as exc:
        st.warning(app.NOTICE, icon="⚕️")
        st.error(f"twitchwatch cannot open its event store: {exc}")
        return
    mqtt, user = settings.mqtt, settings.user
    app.set_context(
        app.Context(
            store,
            user,
            feed=lambda: cached_feed(mqtt.display, user, mqtt),
            flags=lambda: current_flags(store, settings),
            report=lambda since_ns, until_ns: report(store, settings, since_ns, until_ns),
            journal_windows_ns=settings.journal_windows_ns,
            tz=settings.tz,
        )
    )
    navigation.run()


main()
