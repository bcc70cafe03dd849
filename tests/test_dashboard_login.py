"""The dashboard's login: in a real Chromium with a password from a ``_FILE`` secret (nothing of the
dashboard, a journal delete included, before it), the OIDC gate without a signed-in user (AppTest), and
``twitchwatch dashboard`` refusing to listen beyond loopback without a login."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from streamlit.testing.v1 import AppTest

from tests.harness import unavailable
from tests.harness.dashboard import CHROMIUM, CHROMIUM_ARGS, NS, USER, DashboardProcess, spread
from tests.harness.mosquitto import MosquittoServer
from twitchwatch.config import ConfigError, load_settings
from twitchwatch.dashboard import login
from twitchwatch.dashboard_launch import ENTRY, DashboardExposed, is_loopback, require_login_beyond_loopback
from twitchwatch.processing.journal import Factor, JournalEntry
from twitchwatch.processing.store import open_store

PASSWORD = "correct horse battery staple"
RENDER_TIMEOUT_MS = 60_000
MENU = "[data-testid='stSidebarNav']"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No TWITCHWATCH_* of the developer's; HOME (Streamlit's secrets) in a temp dir."""
    for key in list(os.environ):
        if key.startswith("TWITCHWATCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---- in a browser ------------------------------------------------------------------------------------


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    now = time.time_ns()
    with open_store(url) as store:
        store.write_events(spread("calf_left", 5, now - 50 * 60 * NS, step_s=300))
        store.add_journal_entry(JournalEntry(USER, now - 3600 * NS, Factor.CAFFEINE, "3 espressos"))
    return url


@pytest.fixture
def secured(store_url: str, tmp_path: Path, mosquitto: MosquittoServer) -> Iterator[DashboardProcess]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: install Debian's 'chromium' package (make test does this)")
    secret = tmp_path / "dashboard_password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    env = {"TWITCHWATCH_DASHBOARD_PASSWORD_FILE": str(secret)}
    server = DashboardProcess.start(store_url, tmp_path, mosquitto.url, env=env)
    yield server
    code = server.stop()
    assert code == 0, f"dashboard exited with {code}; log:\n{server.log_tail()}"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
        yield chromium
        chromium.close()


def fresh_page(browser: Browser) -> Page:
    """A browser context of its own: a separate person, with no login."""
    return browser.new_context(viewport={"width": 1400, "height": 2000}).new_page()


def log_in(page: Page, password: str) -> None:
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def expect_login_only(page: Page) -> None:
    expect(page.get_by_role("heading", name=login.HEADING)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(page.locator(MENU)).to_have_count(0)
    for text in ("Twitch frequency by muscle", "Delete an entry", "3 espressos", "calf_left"):
        expect(page.get_by_text(text)).to_have_count(0)


@pytest.mark.browser
def test_every_page_and_journal_deletes_need_the_login(
    secured: DashboardProcess, store_url: str, browser: Browser
) -> None:
    stranger = fresh_page(browser)
    stranger.goto(secured.url)
    expect_login_only(stranger)
    log_in(stranger, "wrong horse battery staple")
    expect(stranger.get_by_text(login.WRONG_PASSWORD)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect_login_only(stranger)
    # Straight to the Journal's address: the login again, and no way to the delete.
    stranger.goto(f"{secured.url}/journal")
    expect_login_only(stranger)

    owner = fresh_page(browser)
    owner.goto(secured.url)
    expect_login_only(owner)
    log_in(owner, PASSWORD)
    expect(owner.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    owner.locator(MENU).get_by_text("Journal", exact=True).click()
    expect(owner.get_by_text("3 espressos")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    # The stranger, still at the login, cannot see what the owner now sees.
    stranger.reload()
    expect_login_only(stranger)
    with open_store(store_url) as store:
        assert [e.amount for e in store.journal_entries(0)] == ["3 espressos"]

    owner.get_by_text("Delete an entry").click()
    owner.get_by_role("button", name="Delete…").click()
    owner.get_by_role("button", name="Yes, delete it").click()
    expect(owner.get_by_text("No journal entries", exact=False)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    with open_store(store_url) as store:
        assert store.journal_entries(0) == []

    owner.get_by_role("button", name="Log out").click()
    expect_login_only(owner)


# ---- the OIDC gate, without an identity provider ----------------------------------------------------


def test_oidc_login_shows_only_its_button_until_signed_in(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{clean_env / 'events.db'}")
    monkeypatch.setenv("TWITCHWATCH_DASHBOARD_OIDC_EMAILS", "owner@example.org")
    at = AppTest.from_file(str(ENTRY), default_timeout=60)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-long-random-string",
        "client_id": "twitchwatch",
        "client_secret": "s3cret",
        "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
    }
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == [login.HEADING]
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.warning  # not even a page's header ran


def test_oidc_emails_without_an_auth_section_show_what_is_missing(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{clean_env / 'events.db'}")
    monkeypatch.setenv("TWITCHWATCH_DASHBOARD_OIDC_EMAILS", "owner@example.org")
    at = AppTest.from_file(str(ENTRY), default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "no [auth] section" in at.error[0].value
    assert not at.title
    assert not at.button


def test_a_password_shows_only_the_login_form(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWITCHWATCH_STORE_URL", f"sqlite:///{clean_env / 'events.db'}")
    monkeypatch.setenv("TWITCHWATCH_DASHBOARD_PASSWORD", PASSWORD)
    at = AppTest.from_file(str(ENTRY), default_timeout=60).run()
    assert [t.value for t in at.title] == [login.HEADING]
    at.text_input(key="twitchwatch_password").input("not it at all")
    at.button[0].click().run()
    assert [e.value for e in at.error] == [login.WRONG_PASSWORD]
    assert [t.value for t in at.title] == [login.HEADING]
    at.text_input(key="twitchwatch_password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Overview"]
    assert at.session_state[login.LOGGED_IN] is True


def test_password_comparison() -> None:
    assert login.matches(PASSWORD, PASSWORD)
    assert not login.matches(PASSWORD[:-1], PASSWORD)
    assert not login.matches("", PASSWORD)
    assert not login.matches(PASSWORD + " ", PASSWORD)


# ---- beyond loopback only with a login ---------------------------------------------------------------


def test_dashboard_beyond_loopback_without_a_login_exits_2_saying_how_to_set_one(clean_env: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWITCHWATCH_")}
    argv = [sys.executable, "-m", "twitchwatch", "dashboard", "--host", "0.0.0.0", "--port", "1"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "refusing to serve the dashboard on 0.0.0.0" in done.stderr
    assert "TWITCHWATCH_DASHBOARD_PASSWORD_FILE" in done.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("dashboard.example.org", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_password_or_an_oidc_login_lets_it_listen_beyond_loopback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DashboardExposed, match="TWITCHWATCH_DASHBOARD_PASSWORD"):
        require_login_beyond_loopback("0.0.0.0", load_settings())
    require_login_beyond_loopback("127.0.0.1", load_settings())

    secret = clean_env / "pw"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.setenv("TWITCHWATCH_DASHBOARD_PASSWORD_FILE", str(secret))
    settings = load_settings()
    assert settings.dashboard_password is not None
    assert settings.dashboard_password.get_secret_value() == PASSWORD  # the file's newline dropped
    require_login_beyond_loopback("0.0.0.0", settings)
    monkeypatch.delenv("TWITCHWATCH_DASHBOARD_PASSWORD_FILE")

    monkeypatch.setenv("TWITCHWATCH_DASHBOARD_OIDC_EMAILS", "Owner@Example.org, doctor@example.org")
    settings = load_settings()
    assert settings.dashboard_oidc_allowed == {"owner@example.org", "doctor@example.org"}
    with pytest.raises(DashboardExposed, match=r"no \[auth\] section"):
        require_login_beyond_loopback("0.0.0.0", settings, cwd=clean_env, home=clean_env)
    (clean_env / ".streamlit").mkdir()
    (clean_env / ".streamlit" / "secrets.toml").write_text('[auth]\nclient_id = "twitchwatch"\n')
    if importlib.util.find_spec("authlib") is None:
        with pytest.raises(DashboardExposed, match="Authlib"):
            require_login_beyond_loopback("0.0.0.0", settings, cwd=clean_env, home=clean_env)
    else:
        require_login_beyond_loopback("0.0.0.0", settings, cwd=clean_env, home=clean_env)


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("TWITCHWATCH_DASHBOARD_PASSWORD", "short", "at least 12 characters"),
        ("TWITCHWATCH_DASHBOARD_OIDC_EMAILS", "owner", "e-mail addresses"),
        ("TWITCHWATCH_DASHBOARD_OIDC_EMAILS", " , ", "e-mail addresses"),
    ],
)
def test_bad_login_settings_name_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, why: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=why) as err:
        load_settings()
    assert err.value.problems[0][0] == key
    assert value not in str(err.value) or "PASSWORD" not in key  # a password is never echoed
