"""The dashboard's login, in front of every page.

Two ways, set up by the composition root from the settings:

- a password (``TWITCHWATCH_DASHBOARD_PASSWORD`` or its ``_FILE``): a form, compared in constant time;
  a correct one marks this browser session as logged in until "Log out" (or the tab is closed);
- Streamlit's OIDC login (``st.login``, an ``[auth]`` section in ``.streamlit/secrets.toml``), for the
  e-mail addresses in ``TWITCHWATCH_DASHBOARD_OIDC_EMAILS`` only: an identity provider vouches for
  who someone is, not that they may read this person's health data.

Until ``logged_in`` holds, the composition root gives the session one page, the login (``page``), and no
other: no page of the dashboard runs, so none of its data, a journal delete or a report download can be
reached around the login.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

log = logging.getLogger(__name__)

LOGGED_IN = "twitchwatch_logged_in"
HEADING = "Log in to twitchwatch"
WRONG_PASSWORD = "Wrong password."
# Each wrong password costs this long, so guessing one over the network is slow.
FAILED_LOGIN_DELAY_S = 1.0


@dataclass(frozen=True)
class Login:
    """What the dashboard asks for; neither set: no login (``twitchwatch dashboard`` then serves on
    loopback only)."""

    password: str | None = field(default=None, repr=False)
    oidc_emails: frozenset[str] = frozenset()  # lower case

    @property
    def configured(self) -> bool:
        return self.password is not None or bool(self.oidc_emails)


def logged_in(login: Login) -> bool:
    """Whether this session may see the dashboard (always, when no login is configured)."""
    if login.password is not None:
        return st.session_state.get(LOGGED_IN) is True
    if login.oidc_emails:
        return _auth_secrets() is not None and _signed_in() and _allowed(login.oidc_emails)
    return True


def page(login: Login) -> st.Page:
    """The only page of a session that is not logged in: the menu lists nothing else, and any other
    address leads here."""
    return st.Page(lambda: _render(login), title="Log in", url_path="login", default=True)


def logout_button(login: Login) -> None:
    """In the sidebar of every page, when a login is configured."""
    if login.password is not None:
        if st.sidebar.button("Log out", key="twitchwatch_logout"):
            st.session_state.clear()  # the context and every page's state go with the login
            st.rerun()
    elif login.oidc_emails:
        st.sidebar.button("Log out", key="twitchwatch_logout", on_click=st.logout)


def matches(given: str, password: str) -> bool:
    """Constant time in the content and the length of both (digests of equal length are compared)."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(password.encode()).digest()
    )


def _render(login: Login) -> None:
    if login.password is not None:
        _password_form(login.password)
    else:
        _oidc(login.oidc_emails)


def _password_form(password: str) -> None:
    st.title(HEADING)
    with st.form("twitchwatch_login"):
        given = st.text_input("Password", type="password", key="twitchwatch_password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    if matches(given, password):
        st.session_state[LOGGED_IN] = True
        st.rerun()
    time.sleep(FAILED_LOGIN_DELAY_S)
    log.warning("dashboard: a wrong password was given")
    st.error(WRONG_PASSWORD)


def _oidc(allowed: frozenset[str]) -> None:
    auth = _auth_secrets()
    if auth is None:
        st.error(
            "TWITCHWATCH_DASHBOARD_OIDC_EMAILS is set, but Streamlit's secrets (.streamlit/secrets.toml) "
            "have no [auth] section: configure the OIDC provider there, or use "
            "TWITCHWATCH_DASHBOARD_PASSWORD_FILE instead."
        )
        return
    if not _signed_in():
        st.title(HEADING)
        st.button("Log in", key="twitchwatch_oidc_login", on_click=_login, args=(_provider(auth),))
        return
    # Signed in, but not as anyone allowed.
    email = str(st.user.get("email") or "")
    log.warning("dashboard: %s signed in but is not in TWITCHWATCH_DASHBOARD_OIDC_EMAILS", email or "?")
    st.error(f"{email or 'This account'} may not use this dashboard.")
    st.button("Log out", key="twitchwatch_logout", on_click=st.logout)


def _allowed(allowed: frozenset[str]) -> bool:
    email = str(st.user.get("email") or "").lower()
    return email in allowed and st.user.get("email_verified") is not False


def _auth_secrets() -> Mapping[str, Any] | None:
    try:
        auth = st.secrets.get("auth") if st.secrets.load_if_toml_exists() else None
    except FileNotFoundError:
        return None
    return auth if isinstance(auth, Mapping) else None


def _provider(auth: Mapping[str, Any]) -> str | None:
    """``[auth]`` with the provider inline: no name; ``[auth.NAME]`` sections: the first such name."""
    named = [key for key, value in auth.items() if isinstance(value, Mapping)]
    return named[0] if named and "client_id" not in auth else None


def _login(provider: str | None) -> None:
    if provider is None:
        st.login()
    else:
        st.login(provider)


def _signed_in() -> bool:
    # A key of the user info (``st.user.is_logged_in`` is the same); AppTest's stand-in has no attribute.
    return st.user.get("is_logged_in") is True
