"""Console fixtures: a migrated SQLite store with an account and queued posts, a token, and
the console served on a free loopback port; Chromium for the browser tests."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from xbot_assets.config import Settings, load_settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HANDLE = "xbot_sandbox"


class Clock:
    """A settable clock (the console and the claims read the same one)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class ConsoleEnv:
    settings: Settings
    store: Any
    clock: Clock
    token: str
    account: Any


def local_settings(root: Path, **overrides: Any) -> Settings:
    return load_settings(env_file=None, XBOT_HOME=str(root), APP_ENV="local", **overrides)


def make_console_env(root: Path, **overrides: Any) -> ConsoleEnv:
    from xbot_assets.console.auth import issue_token
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade

    settings = local_settings(root, **overrides)
    upgrade(settings.resolved_database_url)
    store = DurableStore.from_settings(settings)
    account = store.ensure_account(HANDLE, now=T0)
    token = issue_token(store.engine, "local", label="alice", created_by="test", now=T0)
    return ConsoleEnv(settings, store, Clock(), token, account)


@pytest.fixture
def console_env(tmp_path: Path) -> Iterator[ConsoleEnv]:
    env = make_console_env(tmp_path)
    yield env
    env.store.close()


def csrf_field(html: str) -> str:
    """The CSRF token of a page's form (fails the test if the page has none)."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, f"no csrf field in: {html[:500]}"
    return found.group(1)


def login(client: Any, token: str) -> str:
    """Log a TestClient in; returns the session's CSRF token."""
    nonce = csrf_field(client.get("/login").text)
    done = client.post("/login", data={"csrf": nonce, "token": token})
    assert done.status_code == 303, done.text
    return csrf_field(client.get("/", follow_redirects=True).text)


@pytest.fixture
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).exists() or shutil.which("chromium"), (
        f"Debian's Chromium is missing at {CHROMIUM}: apt-get install -y chromium"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
