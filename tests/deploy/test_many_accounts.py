"""Many accounts on one deployment: each account posts with its own X credentials.

With the `api` poster a run for the account partition `acct_b` must post as @acct_b (its token
from X_ACCOUNT_TOKENS), never as X_HANDLE; an account without a token refuses to post.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from xbot_assets.config import ConfigError, load_settings
from xbot_assets.defs.orchestration import accounts_partitions, post_job
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.engine.sensing import forget_stores
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN, SandboxX
from xbot_assets.sandbox.server import running_server
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.migrate import upgrade


def _deployment_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxX,
                    url: str, tokens: dict[str, str]) -> str:  # fmt: skip
    main = sandbox.account()
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    for key, value in {
        "APP_ENV": "local", "POSTER": "api", "X_API_BASE_URL": url, "X_WEB_BASE_URL": url,
        "X_HANDLE": main.handle, "X_OAUTH2_USER_TOKEN": main.user_token,
        "X_BEARER_TOKEN": APP_BEARER_TOKEN, "X_ACCOUNT_TOKENS": json.dumps(tokens),
        "DATABASE_URL": database_url, "XBOT_HOME": str(tmp_path / "home"),
        "MIN_SPACING_MINUTES": "0",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    upgrade(database_url)
    return database_url


def _queue(database_url: str, handle: str, text: str) -> int:
    store = DurableStore.from_url(database_url)
    try:
        # an account whose local time is midday now, so quiet hours (23-07) never move the post
        offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12
        zone = "Etc/GMT" + (f"{-offset:+d}" if offset else "")
        account = store.ensure_account(handle, timezone=zone)
        due = datetime.now(UTC) - timedelta(minutes=1)
        return int(store.enqueue_post(account.id, text, scheduled_at=due, now=due).id)
    finally:
        store.close()


def _post(handle: str, post_id: int) -> dg.ExecuteInProcessResult:
    assert accounts_partitions.name is not None  # a named dynamic partitions definition
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(accounts_partitions.name, [handle])
    return post_job.execute_in_process(
        instance=instance,
        resources={"xbot_settings": XbotSettings(), "xbot_runtime": XbotRuntime()},
        partition_key=handle,
        run_config={"ops": {"post_due_posts": {"config": {"post_id": post_id}}}},
        raise_on_error=False,
    )


def _post_through_api(
    handle: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SandboxX, str, int, dg.ExecuteInProcessResult]:
    """Queue ``text`` for ``handle`` and run the post job for it with the ``api`` poster, on a
    deployment whose X_ACCOUNT_TOKENS holds a token for ``acct_b`` only."""
    sandbox = SandboxX(scenario="default", seed=11)
    sandbox.add_account(handle, followers=900)
    with running_server(sandbox) as url:
        database_url = _deployment_env(monkeypatch, tmp_path, sandbox, url,
                                       {"acct_b": "sandbox-user-acct_b"})  # fmt: skip
        post_id = _queue(database_url, handle, text)
        try:
            result = _post(handle, post_id)
        finally:
            forget_stores()
    return sandbox, database_url, post_id, result


@pytest.mark.parametrize(("handle", "has_token"), [("acct_b", True), ("acct_c", False)])
def test_an_account_posts_with_its_own_token_or_not_at_all(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handle: str, has_token: bool
) -> None:
    """acct_b (in X_ACCOUNT_TOKENS) posts as itself, X_HANDLE untouched; acct_c (no token)
    refuses with a message naming no token, nothing posted, its post still queued."""
    text = f"Small batches beat big launches. Ship daily, @{handle}."
    sandbox, database_url, post_id, result = _post_through_api(handle, text, tmp_path, monkeypatch)
    store = DurableStore.from_url(database_url)
    try:
        post = store.get_post(post_id)
    finally:
        store.close()
    if has_token:
        assert result.success, result.all_events
        assert [p.text for p in sandbox.account(handle).posts] == [text]
        assert sandbox.account().posts == []  # X_HANDLE's account is untouched
        assert post.status == "posted" and post.x_id == sandbox.account(handle).posts[0].id
    else:
        assert not result.success
        failure = result.failure_data_for_node("post_due_posts")
        assert failure is not None and "X_ACCOUNT_TOKENS" in str(failure.error)
        assert "sandbox-user" not in str(failure.error)  # the message names no token
        assert all(not a.posts for a in sandbox.accounts)
        assert post.status == "queued"  # nothing lost: still to post


def test_account_tokens_must_be_a_json_object_of_handles(clean_env: Path) -> None:
    settings = load_settings(env_file=None, x_account_tokens='{"@Acct_B": "tok-9f3"}')
    assert settings.account_tokens() == {"acct_b": "tok-9f3"}
    assert "tok-9f3" not in repr(settings) and "tok-9f3" not in json.dumps(settings.masked())
    for bad in ("not json", '["t"]', '{"acct_b": 3}'):
        with pytest.raises(ConfigError, match="X_ACCOUNT_TOKENS must be a JSON object"):
            load_settings(env_file=None, x_account_tokens=bad)
