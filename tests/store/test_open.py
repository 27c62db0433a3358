"""Opening the store: clear errors for URLs, environments and roles that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from xbot_assets.config import load_settings
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.errors import StoreConfigError, StoreUnavailableError


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u:p@localhost/db", "unsupported"),
        ("not a url at all", "not a valid URL"),
    ],
)
def test_unusable_urls_are_refused_with_the_fix(url: str, needle: str) -> None:
    with pytest.raises(StoreConfigError, match=needle):
        DurableStore.from_url(url)


def test_unknown_environment_is_refused(sqlite_url: str) -> None:
    with pytest.raises(StoreConfigError, match="unknown environment"):
        DurableStore.from_url(sqlite_url, environment="prod")


def test_unreachable_postgres_says_so_without_the_password() -> None:
    url = "postgresql://xbot:s3cret-pw@127.0.0.1:1/xbot?connect_timeout=2"
    with pytest.raises(StoreUnavailableError) as caught:
        DurableStore.from_url(url, environment="staging")
    assert "s3cret-pw" not in str(caught.value) and "DATABASE_URL" in str(caught.value)


def test_a_role_the_login_cannot_use_is_named_with_the_fix(pg_url: str) -> None:
    with pytest.raises(StoreConfigError, match="GRANT xbot_nobody"):
        DurableStore.from_url(pg_url, environment="staging", db_role="xbot_nobody")
    with pytest.raises(StoreConfigError, match="invalid database role"):
        DurableStore.from_url(pg_url, environment="staging", db_role="x; DROP TABLE tweets")


def test_from_settings_uses_the_sqlite_file_under_xbot_home(tmp_path: Path) -> None:
    from xbot_assets.store.durable.migrate import upgrade

    settings = load_settings(env_file=None, xbot_home=tmp_path / "home")
    upgrade(settings.resolved_database_url)
    with DurableStore.from_settings(settings) as store:
        assert store.environment == "local" and store.dialect == "sqlite"
        store.ensure_account("bot")
    assert (tmp_path / "home" / "xbot.db").is_file()


def test_staging_refuses_to_act_as_a_role_that_bypasses_rls(pg_url: str) -> None:
    """pg_url logs in as the superuser `postgres`: fine for migrations, never for the bot."""
    with pytest.raises(StoreConfigError, match=r"BYPASSRLS.*xbot_staging"):
        DurableStore.from_url(pg_url, environment="staging", db_role=None)
    with pytest.raises(StoreConfigError, match="service_role"):
        DurableStore.from_url(pg_url, environment="production", db_role=None)
    DurableStore.from_url(pg_url, environment="local", db_role=None).close()  # a developer's DB
