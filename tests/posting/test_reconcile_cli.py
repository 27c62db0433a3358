"""`xbot reconcile` settles a post left in `posting`, against the sandbox's HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from xbot_assets.cli import app
from xbot_assets.posting.factory import open_ledger
from xbot_assets.posting.ledger import ClaimedPost, RateCaps
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN

from .conftest import api_settings

pytestmark = pytest.mark.usefixtures("no_quiet_hours")


def test_reconcile_command_finds_the_lost_post(
    sandbox, sandbox_url, sqlite_url, monkeypatch, tmp_path
):
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    ledger.enqueue(
        account,
        ["SQL analytics: window functions beat self-joins", "never sent part"],
        scheduled_at=datetime.now(UTC) - timedelta(days=1),
    )
    claim = ledger.claim_next_due(account, RateCaps(), now=datetime.now(UTC) - timedelta(hours=1))
    assert isinstance(claim, ClaimedPost)
    # the poster marked the attempt sent, posted, then died before recording the id
    assert ledger.mark_sending(
        claim.tweet_id, claim.attempt_id, now=datetime.now(UTC) - timedelta(hours=1)
    )
    sandbox.create_tweet(claim.text, token=sandbox.account().user_token)
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    for key, value in {
        "POSTER": "api",
        "X_API_BASE_URL": sandbox_url,
        "X_OAUTH2_USER_TOKEN": sandbox.account().user_token,
        "X_BEARER_TOKEN": APP_BEARER_TOKEN,
        "X_HANDLE": sandbox.account().handle,
        "DATABASE_URL": sqlite_url,
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["reconcile", "--json", "--grace-minutes", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    x_id = sandbox.posts_of()[0].id
    assert report["found"] == {str(claim.tweet_id): x_id}
    rows = {r["id"]: r for r in ledger.rows(account)}
    assert rows[claim.tweet_id]["status"] == "posted" and rows[claim.tweet_id]["x_id"] == x_id
    assert sandbox.account().user_token not in result.output

    monkeypatch.setenv("POSTER", "sandbox")
    refused = CliRunner().invoke(app, ["reconcile"])
    assert refused.exit_code == 2 and "POSTER=api" in refused.output


def test_browser_login_command_saves_a_private_session(sandbox, sandbox_url, monkeypatch, tmp_path):
    state = tmp_path / "session.json"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("X_WEB_BASE_URL", sandbox_url)
    monkeypatch.setenv("X_HANDLE", sandbox.account().handle)
    monkeypatch.setenv("BROWSER_STORAGE_STATE", str(state))
    password = sandbox.account().password
    result = CliRunner().invoke(app, ["browser-login"], input=password + "\n")
    assert result.exit_code == 0, result.output
    assert state.stat().st_mode & 0o777 == 0o600
    assert "auth_token" in state.read_text()
    assert password not in result.output and str(state) not in result.output
    sandbox.set_fault("login_challenge")
    refused = CliRunner().invoke(app, ["browser-login"], input=password + "\n")
    assert refused.exit_code == 2 and "verification" in refused.output
