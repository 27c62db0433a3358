"""Each settings rule of the foundation issue, tested so that removing the rule fails a test."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from xbot_assets.config import ConfigError, load_settings, mask_url

pytestmark = pytest.mark.usefixtures("clean_env")

PG_URL = "postgresql://xbot:pw-very-secret@db.example.internal:5432/postgres"


@pytest.mark.parametrize("raw", [None, "", "True", "TRUE", "1", "yes", " true", "true ", "on"])
def test_live_posts_is_false_for_anything_but_exact_true(raw: str | None) -> None:
    overrides = {} if raw is None else {"LIVE_POSTS": raw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        settings = load_settings(
            env_file=None, app_env="production", database_url=PG_URL, **overrides
        )
    assert settings.live_posts is False
    assert settings.posting_to_real_x is False


def test_live_posts_exact_true_in_production_enables_real_posting() -> None:
    settings = load_settings(
        env_file=None, app_env="production", database_url=PG_URL, LIVE_POSTS="true"
    )
    assert settings.live_posts is True
    assert settings.posting_to_real_x is True
    assert settings.resolved_poster == "api"


def test_live_posts_read_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("LIVE_POSTS", "true")
    assert load_settings(env_file=None).live_posts is True
    monkeypatch.setenv("LIVE_POSTS", "True")
    with pytest.warns(UserWarning, match="only the exact string 'true'"):
        assert load_settings(env_file=None).live_posts is False


@pytest.mark.parametrize("raw", ["True", "1", "yes", " true"])
def test_live_posts_unexpected_value_is_reported_at_startup(raw: str) -> None:
    with pytest.warns(UserWarning, match="LIVE_POSTS"):
        load_settings(env_file=None, LIVE_POSTS=raw)


@pytest.mark.parametrize("raw", ["true", "false", ""])
def test_live_posts_expected_values_report_nothing(raw: str) -> None:
    env = "production" if raw == "true" else "local"
    url = PG_URL if env == "production" else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings(env_file=None, app_env=env, database_url=url, LIVE_POSTS=raw)


@pytest.mark.parametrize("env", ["local", "staging"])
def test_live_posts_true_outside_production_refuses(env: str) -> None:
    with pytest.raises(
        ConfigError, match="LIVE_POSTS=true is only allowed with APP_ENV=production"
    ):
        load_settings(env_file=None, app_env=env, database_url=PG_URL, LIVE_POSTS="true")


def test_production_without_durable_store_refuses() -> None:
    with pytest.raises(ConfigError, match="set DATABASE_URL"):
        load_settings(env_file=None, app_env="production")


def test_production_with_sqlite_refuses() -> None:
    with pytest.raises(ConfigError, match="needs Postgres"):
        load_settings(env_file=None, app_env="production", database_url="sqlite:///x.db")


@pytest.mark.parametrize(
    ("env", "prefix", "ok"),
    [
        ("staging", "stg:", True),
        ("staging", "prod:", False),
        ("staging", "local:", False),
        ("production", "prod:", True),
        ("production", "stg:", False),
        ("production", "prod", False),
        ("local", "prod:", False),
        ("local", "stg:", False),
        ("local", "test-123:", True),
    ],
)
def test_redis_prefix_must_match_app_env(env: str, prefix: str, ok: bool) -> None:
    kwargs = {
        "app_env": env,
        "redis_prefix": prefix,
        "database_url": PG_URL if env != "local" else None,
    }
    if ok:
        assert load_settings(env_file=None, **kwargs).resolved_redis_prefix == prefix
    else:
        with pytest.raises(ConfigError, match="REDIS_PREFIX"):
            load_settings(env_file=None, **kwargs)


@pytest.mark.parametrize(
    ("env", "prefix"), [("local", "local:"), ("staging", "stg:"), ("production", "prod:")]
)
def test_redis_prefix_defaults_per_environment(env: str, prefix: str) -> None:
    url = PG_URL if env != "local" else None
    assert (
        load_settings(env_file=None, app_env=env, database_url=url).resolved_redis_prefix == prefix
    )


def test_embedded_default_needs_no_services(clean_env: Path) -> None:
    settings = load_settings(env_file=None)
    assert settings.app_env == "local"
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_poster == "sandbox"
    assert settings.resolved_generator == "offline"
    assert settings.redis_url is None
    assert str(settings.resolved_warehouse_path).endswith(".duckdb")


def test_settings_read_from_dotenv_file(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "APP_ENV=staging\nDATABASE_URL=sqlite:///stg.db\nMAX_POSTS_PER_DAY=5\n"
    )
    settings = load_settings()
    assert settings.app_env == "staging"
    assert settings.max_posts_per_day == 5
    assert settings.resolved_redis_prefix == "stg:"


SECRETS = {
    "openai_api_key": "sk-proj-SECRETOPENAIKEY123",
    "x_bearer_token": "AAAABEARERSECRET",
    "x_oauth2_user_token": "oauth2-user-secret",
    "x_api_secret": "consumer-secret-xyz",
    "x_access_token_secret": "access-secret-xyz",
}


def test_text_form_masks_every_secret() -> None:
    settings = load_settings(
        env_file=None,
        app_env="production",
        database_url=PG_URL,
        redis_url="redis://:redis-pass-secret@cache.internal:6379/0",
        browser_storage_state="/secure/session-state.json",
        **SECRETS,
    )
    texts = [str(settings), repr(settings), str(settings.masked())]
    for text in texts:
        for secret in [*SECRETS.values(), "pw-very-secret", "redis-pass-secret", "session-state"]:
            assert secret not in text
    assert "postgresql://xbot:***@db.example.internal:5432/postgres" in str(settings)
    # the real values are still there for the code that needs them
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == SECRETS["openai_api_key"]


def test_validation_error_never_echoes_input_values() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, max_posts_per_day="sk-proj-LEAKME", app_env="local")
    assert "LEAKME" not in str(info.value)
    assert "MAX_POSTS_PER_DAY" in str(info.value)


def test_unknown_app_env_says_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match="'local', 'staging' or 'production'"):
        load_settings(env_file=None, app_env="prod")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p4ss@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("redis://:tok@h:6379/0", "redis://:***@h:6379/0"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql://h/db", "postgresql://h/db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
