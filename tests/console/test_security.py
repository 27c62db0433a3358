"""Console security: forms without or with a wrong CSRF token are refused, a wrong token does
not log in, a staging token cannot act on production rows (real Postgres, both environments
in one database), cookies carry the right flags, the bind refuses a public host without TLS,
and no secret (settings keys, the console token, the session id) appears in any page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.console.conftest import HANDLE, T0, ConsoleEnv, csrf_field, login, make_console_env
from tests.foundation.conftest import settings_env_names
from xbot_assets.console.app import create_app
from xbot_assets.console.auth import SESSION_COOKIE, token_hash, verify_token

SECRETS = {
    "OPENAI_API_KEY": "sk-consoletest-0123456789abcdefSECRET",
    "X_BEARER_TOKEN": "bearer-consoletest-SECRET-42",
    "X_API_SECRET": "apisecret-consoletest-SECRET-43",
    "X_ACCESS_TOKEN_SECRET": "accesssecret-consoletest-SECRET-44",
    "X_OAUTH2_USER_TOKEN": "oauth2-consoletest-SECRET-45",
}


@pytest.fixture
def secret_env(tmp_path: Path) -> Iterator[ConsoleEnv]:
    env = make_console_env(tmp_path, **SECRETS)
    yield env
    env.store.close()


def _client(env: ConsoleEnv, **kw: Any) -> TestClient:
    app = create_app(env.settings, store=env.store, clock=env.clock, **kw)
    return TestClient(app, follow_redirects=False)


def test_forms_without_or_with_a_wrong_csrf_token_are_refused(console_env: ConsoleEnv) -> None:
    store, account = console_env.store, console_env.account
    post = store.enqueue_post(account.id, "a post nobody may approve by forgery", scheduled_at=T0)
    client = _client(console_env)
    csrf = login(client, console_env.token)
    url = f"/a/{HANDLE}/posts/{post.id}/approve"
    for form in ({}, {"csrf": "not-the-token"}, {"csrf": csrf + "x"}):
        refused = client.post(url, data=form)
        assert refused.status_code == 403 and "security token" in refused.text
    brake = client.post(f"/a/{HANDLE}/brake", data={"state": "on", "reason": "forged"})
    assert brake.status_code == 403
    # JSON or multipart bodies are not forms: refused too.
    assert client.post(url, json={"csrf": csrf}).status_code == 403
    assert store.get_post(post.id).approval is None
    assert store.get_config("brake") is None
    assert len(store.list_audit(event_type="console.csrf_refused")) == 5
    # With the session's token the same form works.
    ok = client.post(url, data={"csrf": csrf})
    assert ok.status_code == 303 and store.get_post(post.id).approval == "approved"
    # A second browser (another session) cannot reuse the first one's CSRF token.
    other = _client(console_env)
    login(other, console_env.token)
    assert (
        other.post(
            f"/a/{HANDLE}/brake", data={"csrf": csrf, "state": "on", "reason": "x"}
        ).status_code
        == 403
    )


def test_login_needs_a_valid_token_and_the_login_nonce(console_env: ConsoleEnv) -> None:
    client = _client(console_env)
    assert client.get(f"/a/{HANDLE}/queue").headers["location"] == "/login"
    assert client.post(f"/a/{HANDLE}/brake", data={"state": "on"}).status_code == 403
    nonce = csrf_field(client.get("/login").text)
    wrong = client.post("/login", data={"csrf": nonce, "token": "xbc_wrong"})
    assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
    no_nonce = client.post("/login", data={"token": console_env.token})
    assert no_nonce.status_code == 403 and SESSION_COOKIE not in no_nonce.cookies
    assert len(console_env.store.list_audit(event_type="console.login_refused")) == 1


def test_cookies_are_httponly_samesite_strict_and_secure_off_loopback(
    console_env: ConsoleEnv,
) -> None:
    for secure in (False, True):
        app = create_app(
            console_env.settings, store=console_env.store, clock=console_env.clock,
            secure_cookies=secure,
        )  # fmt: skip
        # Secure cookies travel over HTTPS only (the console off loopback has TLS).
        base = "https://testserver" if secure else "http://testserver"
        client = TestClient(app, base_url=base, follow_redirects=False)
        nonce = csrf_field(client.get("/login").text)
        done = client.post("/login", data={"csrf": nonce, "token": console_env.token})
        cookie = next(
            c for c in done.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in flags and "samesite=strict" in flags
        assert ("secure" in flags) is secure


def test_no_secret_appears_in_any_page(secret_env: ConsoleEnv) -> None:
    env = secret_env
    store, account = env.store, env.account
    store.enqueue_post(account.id, "a queued post", arm="how_to:python", scheduled_at=T0)
    posted = store.enqueue_post(account.id, "a posted post", scheduled_at=T0 - timedelta(hours=2))
    store.claim_post(posted.id, now=T0 - timedelta(hours=2))
    store.mark_posted(posted.id, x_id="123", now=T0 - timedelta(hours=2))
    client = _client(env)
    login(client, env.token)
    session_id = client.cookies.get(SESSION_COOKIE)
    assert session_id is not None
    pages = [client.get("/login").text]
    for tab in ("queue", "recent", "learning", "controls"):
        response = client.get(f"/a/{HANDLE}/{tab}")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        pages.append(response.text)
    pages.append(client.get(f"/a/{HANDLE}/nope").text)
    body = "\n".join(pages)
    for value in (*SECRETS.values(), env.token, token_hash(env.token), session_id):
        assert value not in body
    assert env.token not in str(store.list_audit(limit=100))


@pytest.mark.postgres
def test_staging_token_cannot_act_on_production_rows(tmp_path: Path) -> None:
    from tests.store.conftest import create_db, drop_db
    from xbot_assets.config import load_settings
    from xbot_assets.console.auth import issue_token
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade

    pytest.importorskip("psycopg")
    name = f"xbot_test_console_{uuid.uuid4().hex[:8]}"
    url = create_db(name)
    try:
        upgrade(url)
        stores = {
            env: DurableStore.from_url(url, environment=env) for env in ("staging", "production")
        }
        accounts = {env: s.ensure_account(HANDLE, now=T0) for env, s in stores.items()}
        prod_post = stores["production"].enqueue_post(
            accounts["production"].id, "a production post", scheduled_at=T0
        )
        staging_token = issue_token(
            stores["staging"].engine, "staging", label="stg", created_by="t", now=T0
        )
        # Row-level security hides the staging token from production's role entirely.
        assert verify_token(stores["production"].engine, "production", staging_token) is None
        assert verify_token(stores["staging"].engine, "staging", staging_token) is not None
        base = {"XBOT_HOME": str(tmp_path), "DATABASE_URL": url}
        prod_settings = load_settings(env_file=None, APP_ENV="production", POSTER="api", **base)
        stg_settings = load_settings(env_file=None, APP_ENV="staging", **base)
        prod = TestClient(
            create_app(prod_settings, store=stores["production"], clock=lambda: T0),
            follow_redirects=False,
        )
        nonce = csrf_field(prod.get("/login").text)
        refused = prod.post("/login", data={"csrf": nonce, "token": staging_token})
        assert refused.status_code == 401 and SESSION_COOKIE not in refused.cookies
        # A staging session on the staging console cannot reach the production row either.
        stg = TestClient(
            create_app(stg_settings, store=stores["staging"], clock=lambda: T0),
            follow_redirects=False,
        )
        csrf = login(stg, staging_token)
        for action, form in (("approve", {}), ("reject", {"reason": "x"})):
            answer = stg.post(
                f"/a/{HANDLE}/posts/{prod_post.id}/{action}", data={"csrf": csrf, **form}
            )
            assert answer.status_code == 303
            assert "error=" in answer.headers["location"]
        after = stores["production"].get_post(prod_post.id)
        assert after.approval is None and after.status == "queued"
        # The staging session's cookie means nothing to the production console.
        staging_session = stg.cookies.get(SESSION_COOKIE)
        assert staging_session is not None
        prod.cookies.set(SESSION_COOKIE, staging_session)
        assert prod.get(f"/a/{HANDLE}/queue").headers.get("location") == "/login"
        for store in stores.values():
            store.close()
    finally:
        drop_db(name)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from xbot_assets.config import load_settings
    from xbot_assets.store.durable.migrate import upgrade

    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XBOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    upgrade(load_settings(env_file=None).resolved_database_url)
    return tmp_path


def test_cli_serve_refuses_a_public_host_without_tls(cli_env: Path) -> None:
    from xbot_assets.cli import app

    result = CliRunner().invoke(app, ["console", "serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "without TLS" in lines[0] and lines[0].startswith("xbot: ")


def test_cli_token_is_printed_once_and_stored_hashed(cli_env: Path) -> None:
    from xbot_assets.cli import app
    from xbot_assets.config import load_settings
    from xbot_assets.store.durable import DurableStore

    result = CliRunner().invoke(app, ["console", "token", "--label", "bob"])
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("xbc_") and len(token) > 40
    store = DurableStore.from_settings(load_settings(env_file=None))
    try:
        identity = verify_token(store.engine, "local", token)
        assert identity is not None and identity.label == "bob"
        assert store.engine.url.database is not None  # the local SQLite file
        db = Path(store.engine.url.database).read_bytes()
        assert token.encode() not in db and token_hash(token).encode() in db
        revoked = CliRunner().invoke(app, ["console", "token", "--revoke-all"])
        assert revoked.exit_code == 0 and verify_token(store.engine, "local", token) is None
    finally:
        store.close()
