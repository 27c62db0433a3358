"""Settings: the one place in xbot that reads the environment (and a `.env` file).

Everything else receives a :class:`Settings` object. Loading never happens at import time;
entry points call :func:`load_settings`, which raises :class:`ConfigError` with one line that
says what to change when a combination makes no sense. The CLI turns that into exit code 2.

Secrets (API keys, tokens, passwords inside URLs, session files) never appear in the text form
of the settings: ``str(settings)``, ``repr(settings)`` and :meth:`Settings.masked` mask them.

Why one module of about 570 lines: each setting's field and the validator that refuses its bad
values (a port, a Redis URL, a time zone, a clock speed) sit together in the one ``Settings``
class, so a reader sees what a variable accepts where it is declared; split, a validator would
live apart from the field it guards.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import AliasGenerator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, SettingsConfigDict

from xbot_assets.ops.redact import mask_one_url

DEFAULT_DB_POOL_SIZE = 2
"""Connections each process's store engine keeps open to Postgres (DB_POOL_SIZE)."""
DEFAULT_DB_POOL_MAX_OVERFLOW = 2
"""Connections it may open beyond those, closed when returned (DB_POOL_MAX_OVERFLOW). A run is
one thread: it holds one connection, two when it streams a read while it writes. Every process
of a deployment (webserver, daemon, code servers, each run) counts against Postgres'
max_connections: the budget is in docs/deployment.md, "Connection budget"."""

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout's root; local state (SQLite, DuckDB, DAGSTER_HOME) lives beneath it by default."""

AppEnv = Literal["local", "staging", "production"]
PosterKind = Literal["sandbox", "api", "browser"]
GeneratorKind = Literal["offline", "openai"]
ApprovalMode = Literal["off", "optional", "required"]

REDIS_PREFIX_BY_ENV: dict[str, str] = {"local": "local:", "staging": "stg:", "production": "prod:"}
MASK = "***"
CELERY_KEY_PREFIX_ENV = "XBOT_CELERY_KEY_PREFIX"
CELERY_KEY_PREFIX_SUFFIX = "celery:"  # the default Celery key prefix: REDIS_PREFIX + this
_CELERY_KEY_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*:")


def celery_key_prefix_problem(
    prefix: str, app_env: str | None = None, redis_prefix: str | None = None
) -> str | None:
    """What is wrong with the Celery key prefix (None: nothing): ``_.:-``, letters and digits,
    ending with ':' (else the backend appends '_' and its keys and the broker's differ); with
    ``app_env``, in staging/production it starts with ``stg:``/``prod:`` as every Redis key does,
    locally with neither; never the hot store's ``redis_prefix`` itself."""
    name = CELERY_KEY_PREFIX_ENV
    if not _CELERY_KEY_PREFIX.fullmatch(prefix):
        return (
            f"{name}={prefix!r} is not a key prefix: use letters, digits and _.:- only, ending "
            f"with ':' (e.g. prod:celery:), or unset it for <REDIS_PREFIX>celery:"
        )
    own = REDIS_PREFIX_BY_ENV.get(app_env or "")
    if app_env in ("staging", "production") and own and not prefix.startswith(own):
        return (
            f"{name}={prefix!r} does not start with APP_ENV={app_env}'s Redis prefix {own!r}: "
            f"set {name}={own}{CELERY_KEY_PREFIX_SUFFIX} (or another {own}...) or unset it"
        )
    if app_env == "local" and prefix.startswith(("stg:", "prod:")):
        return (
            f"{name}={prefix!r} belongs to another environment: with APP_ENV=local unset {name} "
            "or pick one of your own (e.g. local:celery:)"
        )
    if redis_prefix is not None and prefix == redis_prefix:
        return (
            f"{name}={prefix!r} is the hot store's REDIS_PREFIX itself: give Celery's keys "
            f"their own, e.g. {name}={prefix}{CELERY_KEY_PREFIX_SUFFIX}"
        )
    return None


class ConfigError(Exception):
    """A settings combination that must not start. The message is one line saying what to do."""


def mask_url(url: str | None) -> str | None:
    """Hide every credential of a URL or DSN (``ops.redact.mask_one_url``: it is one string)."""
    if not url:
        return url
    return mask_one_url(url)


class Settings(BaseSettings):
    """Resolved configuration of one xbot process.

    Field names map to upper-case environment variables (``APP_ENV``, ``LIVE_POSTS``, ...), and
    only those exact names are read: a stray ``live_posts=true`` must never switch on live posting
    (issue 17), so names are case-sensitive and :func:`load_settings` refuses other spellings.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
        alias_generator=AliasGenerator(validation_alias=str.upper),
        validate_default=True,
        validate_by_name=False,
        validate_by_alias=True,
    )

    # --- environment -------------------------------------------------------------------------
    app_env: AppEnv = "local"
    live_posts_raw: str | None = Field(default=None, alias="LIVE_POSTS")
    """Kept raw on purpose: only the exact string ``true`` enables live posting."""

    # --- stores ------------------------------------------------------------------------------
    xbot_home: Path = Field(default=PROJECT_ROOT / ".xbot", alias="XBOT_HOME")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str | None = None
    celery_key_prefix: str | None = Field(default=None, alias="XBOT_CELERY_KEY_PREFIX")
    """XBOT_CELERY_KEY_PREFIX: of every key the Celery broker and backend write (unset: REDIS_PREFIX
    + ``celery:``). Deployments on one broker DB need different ones; runs and workers the same."""
    warehouse_path: Path | None = None
    db_pool_size: int = Field(default=DEFAULT_DB_POOL_SIZE, ge=1, le=100)
    """DB_POOL_SIZE: the store engine's kept connections per process (Postgres only)."""
    db_pool_max_overflow: int = Field(default=DEFAULT_DB_POOL_MAX_OVERFLOW, ge=0, le=100)
    """DB_POOL_MAX_OVERFLOW: extra connections per process beyond DB_POOL_SIZE (Postgres only)."""

    # --- content generation ------------------------------------------------------------------
    generator: GeneratorKind | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout_s: float = Field(default=30.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    ai_budget_usd_per_day: float = Field(default=7.50, ge=0)

    # --- X ----------------------------------------------------------------------------------
    poster: PosterKind | None = None
    x_api_base_url: str = "https://api.x.com"
    x_web_base_url: str = "https://x.com"
    x_bearer_token: SecretStr | None = None
    x_oauth2_user_token: SecretStr | None = None
    x_api_key: SecretStr | None = None
    x_api_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    x_account_tokens: SecretStr | None = None
    """X_ACCOUNT_TOKENS: the OAuth 2.0 user token of every further account a deployment runs, as
    a JSON object ``{"handle": "token", ...}`` (X_OAUTH2_USER_TOKEN is X_HANDLE's). A secret: a
    run for an account that is not in it refuses to post rather than post as another account."""
    x_handle: str = "xbot_sandbox"
    x_user_id: str | None = None
    browser_storage_state: Path | None = None
    """Playwright storage-state file of a logged-in session: a secret, never logged or tracked."""
    chromium_path: Path = Path("/usr/bin/chromium")

    # --- account and rate caps ---------------------------------------------------------------
    account_timezone: str = "UTC"
    max_posts_per_hour: int = Field(default=2, ge=0)
    max_posts_per_day: int = Field(default=12, ge=0)
    min_spacing_minutes: int = Field(default=45, ge=0)
    max_replies_per_hour: int = Field(default=10, ge=0)
    x_api_calls_per_15min: int = Field(default=300, ge=1)
    """X_API_CALLS_PER_15MIN: every X API call (reads and writes) of the deployment per 15 min."""
    # Monthly X API budget (xbot_assets/xapi/budget.py). The defaults assume X's small paid
    # plan (Basic: about 15,000 post reads and 3,000 post writes a month per user); set them to
    # the account's own plan. Reads count requests (a lookup of up to 100 ids is one read).
    x_api_reads_per_month: int = Field(default=15_000, ge=0)
    """X_API_READS_PER_MONTH: read requests a calendar month (UTC); 0 stops every read."""
    x_api_writes_per_month: int = Field(default=3_000, ge=0)
    """X_API_WRITES_PER_MONTH: write requests (posts, thread parts) a month; 0 stops posting."""
    x_api_read_cost_usd: float = Field(default=0.0, ge=0)
    """X_API_READ_COST_USD: price of one read on a pay-per-use plan (0 on a subscription)."""
    x_api_write_cost_usd: float = Field(default=0.0, ge=0)
    """X_API_WRITE_COST_USD: price of one write on a pay-per-use plan (0 on a subscription)."""
    x_api_usd_per_month: float = Field(default=0.0, ge=0)
    """X_API_USD_PER_MONTH: spend cap for pay-per-use (0: no spend cap, the call caps apply)."""
    learning_objective: Literal["engagement", "growth"] = "engagement"
    """What the policy maximises: X-weighted engagement per impression, or growth (follows and
    profile clicks per impression). Changes which arms and texts the bot chooses."""
    learning_prior_file: Path | None = None
    """LEARNING_PRIOR_FILE: a population prior (``xbot prior fit``) that centres every account's
    fit on what other accounts learnt (``learning/population_prior.py``); unset: the model's own
    zero-centred prior. A missing or malformed file stops the refit with what to do."""

    # --- runs under the daemon -----------------------------------------------------------------
    account_run_max_seconds: int = Field(default=600, ge=30, le=86_400)
    """ACCOUNT_RUN_MAX_SECONDS: the longest an account's run (refill, post, metrics, reconcile)
    may stay STARTED under the daemon; past it, run monitoring fails the run and the account's
    next run can start (the runs carry it as the ``dagster/max_runtime`` tag). A run whose
    coordinator died with the daemon's process group otherwise holds its account until the
    instance's ``max_runtime_seconds`` (1800 s in deploy/dagster.yaml). 600 s: above a refill's
    worst case (a few OpenAI calls at 30 s x 3 attempts each) and a post with its metric reads,
    below the 45 minutes between two posts, so a held account's next slot waits 10 minutes at
    most. A healthy run cut off is safe: its post, if claimed, is settled by reconcile_sensor."""

    # --- operator console ---------------------------------------------------------------------
    approval: ApprovalMode = "off"
    """``required``: a queued post is claimed only once an operator approved it (the console)."""

    # --- sandbox -----------------------------------------------------------------------------
    sandbox_scenario: str = "default"
    sandbox_seed: int = 7

    # --- rehearsal clock (local and staging only; store/timebase.py) -------------------------
    clock_speed: float | None = Field(default=None, gt=0, le=1e6, allow_inf_nan=False)
    """CLOCK_SPEED: simulated seconds per real second for every process (unset: wall time); at
    most a million (a simulated year in 32 s), so the clock's arithmetic cannot overflow."""
    clock_epoch: datetime | None = None
    """CLOCK_EPOCH: the wall instant (ISO, with offset) the rehearsal clock counts from."""

    @field_validator("clock_epoch", mode="after")
    @classmethod
    def _epoch_is_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-12-05T20:00:00+00:00")
        return value

    @field_validator(
        "database_url", "redis_url", "redis_prefix", "celery_key_prefix", "openai_base_url",
        "clock_speed", "clock_epoch", "learning_prior_file", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("xbot_home", mode="before")
    @classmethod
    def _empty_home_is_the_default(cls, value: Any) -> Any:
        """XBOT_HOME="" (an unset shell variable in a unit file) is the default folder, not the
        working directory, where even `xbot status` would leave an untracked xbot.db."""
        return PROJECT_ROOT / ".xbot" if isinstance(value, str) and not value.strip() else value

    @field_validator("account_timezone")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        """An unknown zone is refused here: the first run writes it into the account row, which
        keeps it, and every slot plan on it would fail from then on."""
        try:
            ZoneInfo(value)
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(
                f"{value!r} is not a time zone: use an IANA name like Europe/Berlin or UTC"
            ) from None
        return value

    @field_validator("database_url", "redis_url", "openai_base_url", "x_api_base_url")
    @classmethod
    def _url_port_is_a_port(cls, value: str | None) -> str | None:
        """A port that is not 0-65535 fails here (one line, exit 2), not as a driver traceback;
        so does whitespace, which a driver accepts in a password but every error message that
        quotes the URL would split (and show half of)."""
        if value and "://" in value and any(c.isspace() for c in value.strip()):
            raise ValueError(
                "holds a space or another blank: percent-encode it (a space is %20 in a password)"
            )
        if value and "://" in value:
            try:
                urlsplit(value).port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ValueError(
                    "the port is not a number from 0 to 65535 (write host:5432, or leave the "
                    "port out)"
                ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: str | None) -> str | None:
        """A REDIS_URL redis-py cannot parse fails here (one line, exit 2): found later, it
        broke `xbot status` with a traceback and kept `xbot brake on` from raising the brake."""
        if not value:
            return value
        from redis.connection import parse_url

        try:
            parse_url(value)
        except ValueError:
            raise ValueError(
                "is not a Redis URL redis-py accepts: use redis://host:6379/0 or rediss:// (TLS), "
                "a password as in any URL, or unix:///path/to.sock, and valid query options"
            ) from None
        return value

    # --- derived values ----------------------------------------------------------------------
    @property
    def live_posts(self) -> bool:
        """True only for the exact string ``true``; ``True``, ``1``, ``yes`` are all false."""
        return self.live_posts_raw == "true"

    @property
    def live_posts_warning(self) -> str | None:
        """A start-up warning when LIVE_POSTS holds something other than ``true``/``false``."""
        raw = self.live_posts_raw
        if raw is None or raw in ("true", "false", ""):
            return None
        return (
            f"LIVE_POSTS={raw!r} is treated as false: only the exact string 'true' enables "
            "live posting (set LIVE_POSTS=false or unset it to silence this)"
        )

    @property
    def resolved_database_url(self) -> str:
        """The durable store: the given URL, or a SQLite file under XBOT_HOME."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.xbot_home / 'xbot.db'}"

    @property
    def resolved_warehouse_path(self) -> Path:
        return self.warehouse_path or self.xbot_home / f"warehouse_{self.app_env}.duckdb"

    @property
    def resolved_redis_prefix(self) -> str:
        return self.redis_prefix or REDIS_PREFIX_BY_ENV[self.app_env]

    @property
    def resolved_celery_key_prefix(self) -> str:
        """The Celery broker's and backend's key prefix: XBOT_CELERY_KEY_PREFIX, or the Redis
        prefix followed by ``celery:``."""
        return self.celery_key_prefix or self.resolved_redis_prefix + CELERY_KEY_PREFIX_SUFFIX

    @property
    def resolved_poster(self) -> PosterKind:
        if self.poster:
            return self.poster
        return "api" if self.app_env == "production" else "sandbox"

    @property
    def resolved_generator(self) -> GeneratorKind:
        if self.generator:
            return self.generator
        if self.app_env != "local" and self.openai_api_key is not None:
            return "openai"
        return "offline"

    def account_tokens(self) -> dict[str, str]:
        """X_ACCOUNT_TOKENS as ``{handle (lower case, no @): user token}``; raises ValueError with
        what to fix (the message never holds a token)."""
        if self.x_account_tokens is None:
            return {}
        # worded so no "token:" precedes the example: the error masker would take it for one
        fix = (
            "X_ACCOUNT_TOKENS must be a JSON object of handles and user tokens, "
            'like {"handle": "token"}'
        )
        try:
            value = json.loads(self.x_account_tokens.get_secret_value())
        except json.JSONDecodeError:
            raise ValueError(f"{fix} (it is not valid JSON)") from None
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and k.strip("@") and isinstance(v, str) and v
            for k, v in value.items()
        ):
            raise ValueError(fix)
        return {k.strip().lstrip("@").lower(): v for k, v in value.items()}

    @property
    def posting_to_real_x(self) -> bool:
        """Whether a post may reach the real X: production, a real poster and LIVE_POSTS=true."""
        return (
            self.app_env == "production" and self.live_posts and self.resolved_poster != "sandbox"
        )

    # --- rules -------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Every reason this combination must not start, each one line saying what to change."""
        found: list[str] = []
        if self.live_posts and self.app_env != "production":
            found.append(
                f"LIVE_POSTS=true is only allowed with APP_ENV=production (APP_ENV is "
                f"{self.app_env}): unset LIVE_POSTS or set it to false"
            )
        if self.app_env == "production":
            if not self.database_url:
                found.append(
                    "APP_ENV=production needs a durable store: set DATABASE_URL to the "
                    "Supabase Postgres connection string"
                )
            elif not self.database_url.startswith(("postgresql", "postgres")):
                found.append(
                    "APP_ENV=production needs Postgres (Supabase) as the durable store: set "
                    "DATABASE_URL to a postgresql:// connection string"
                )
        if self.app_env == "staging" and not self.database_url:
            found.append(
                "APP_ENV=staging needs a durable store: set DATABASE_URL to the staging "
                "Supabase Postgres connection string"
            )
        expected = REDIS_PREFIX_BY_ENV[self.app_env]
        prefix = self.redis_prefix
        if prefix is not None:
            if self.app_env in ("staging", "production") and prefix != expected:
                found.append(
                    f"REDIS_PREFIX={prefix!r} does not match APP_ENV={self.app_env}: set "
                    f"REDIS_PREFIX={expected} or unset it"
                )
            elif self.app_env == "local" and prefix in ("stg:", "prod:"):
                found.append(
                    f"REDIS_PREFIX={prefix!r} belongs to another environment: with "
                    "APP_ENV=local unset REDIS_PREFIX or pick one of your own (e.g. local:)"
                )
            elif not prefix.endswith(":"):
                found.append(f"REDIS_PREFIX={prefix!r} must end with ':' (e.g. {expected})")
        if self.celery_key_prefix is not None:
            problem = celery_key_prefix_problem(
                self.celery_key_prefix, self.app_env, self.resolved_redis_prefix
            )
            found.extend([problem] if problem else [])
        if self.clock_speed is not None and self.clock_speed != 1:
            if self.app_env == "production":
                found.append(
                    f"CLOCK_SPEED={self.clock_speed:g} is a rehearsal setting, refused with "
                    "APP_ENV=production: unset CLOCK_SPEED (production runs on the wall clock)"
                )
            elif self.clock_epoch is None:
                found.append(
                    "CLOCK_SPEED needs CLOCK_EPOCH, the wall instant every process counts from: "
                    "set CLOCK_EPOCH=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
                )
        if self.x_account_tokens is not None:
            try:
                self.account_tokens()
            except ValueError as exc:
                found.append(str(exc))
        if self.app_env == "production" and self.resolved_poster == "sandbox":
            found.append("APP_ENV=production cannot post to the sandbox: set POSTER=api or browser")
        return found

    # --- safe text form ----------------------------------------------------------------------
    def masked(self) -> dict[str, Any]:
        """All settings with secrets masked, plus the derived values; safe to print or log."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = MASK
            elif name.endswith("_url"):
                value = mask_url(value)
            elif name == "browser_storage_state" and value is not None:
                value = MASK
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            out["live_posts" if name == "live_posts_raw" else name] = value
        out["live_posts"] = self.live_posts
        out["resolved"] = {
            "database_url": mask_url(self.resolved_database_url),
            "warehouse_path": str(self.resolved_warehouse_path),
            "redis_prefix": self.resolved_redis_prefix,
            "celery_key_prefix": self.resolved_celery_key_prefix,
            "poster": self.resolved_poster,
            "generator": self.resolved_generator,
            "posting_to_real_x": self.posting_to_real_x,
        }
        return out

    def __repr_args__(self) -> Any:
        return [(k, v) for k, v in self.masked().items() if k != "resolved"]

    def __str__(self) -> str:
        return " ".join(f"{k}={v!r}" for k, v in self.__repr_args__())


def _describe_validation_error(exc: ValidationError) -> str:
    """One line naming the bad variables, never echoing their values (they may be secrets)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())).upper() or "settings"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return (
        "invalid settings: " + "; ".join(parts) + " (fix the variable in the environment or .env)"
    )


def _env_name(name: str) -> str:
    """The environment variable of a setting given by field name (or already by its name)."""
    field = Settings.model_fields.get(name)
    if field is None:
        return name
    alias = field.validation_alias or field.alias
    return alias if isinstance(alias, str) else name.upper()


def setting_env_names() -> frozenset[str]:
    """Every environment variable xbot reads, exactly as it must be spelt (upper case)."""
    return frozenset(_env_name(name) for name in Settings.model_fields)


def refuse_miscased_names(variables: Mapping[str, str | None], *, where: str) -> None:
    """Refuse a setting spelt in another case (``live_posts``, ``App_Env``).

    Such a variable is never read, but it shows someone meant to set it: starting anyway would
    run with a safety setting other than the one intended, so say which name to use instead.
    """
    names = setting_env_names()
    wrong = sorted(k for k in variables if k not in names and k.upper() in names)
    if wrong:
        listed = ", ".join(f"{k} (use {k.upper()})" for k in wrong)
        raise ConfigError(
            f"{where} sets {listed}: xbot reads only the upper-case names, so remove the "
            "differently-cased variable and set the upper-case one if you meant it"
        )


def load_settings(*, env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read and check the settings; raise :class:`ConfigError` if they must not start.

    Args:
        env_file: the dotenv file to read besides the environment (``None`` for none).
        overrides: values that win over the environment (used by tests and the CLI).
    """
    refuse_miscased_names(os.environ, where="the environment")
    dotenv_path = Path(env_file) if env_file is not None else None
    if dotenv_path is not None and dotenv_path.is_file():
        dotenv = DotEnvSettingsSource(Settings, env_file=dotenv_path, case_sensitive=True)
        refuse_miscased_names(dotenv.env_vars, where=str(dotenv_path))
    by_alias = {_env_name(key): value for key, value in overrides.items()}
    try:
        settings = Settings(_env_file=env_file, **by_alias)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc)) from None
    problems = settings.problems()
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else " | ".join(problems))
    if settings.live_posts_warning:
        warnings.warn(settings.live_posts_warning, UserWarning, stacklevel=2)
    return settings


def default_dagster_home() -> Path:
    """DAGSTER_HOME inside the project (git-ignored) unless the environment names one."""
    return Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home")


DAGSTER_YAML = """\
# Written by xbot for the local instance; staging/production use deploy/dagster.yaml.
telemetry:
  enabled: false
nux:
  enabled: false
# One event-log database instead of one per run: the main job makes hundreds of runs and a new
# SQLite file per run costs about a second each on a loaded 2-core machine.
event_log_storage:
  module: dagster.core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir:
      env: DAGSTER_HOME
"""


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the project's folder (unless set) and write its dagster.yaml once.

    Called by entry points (CLI, Makefile targets), never at import.
    """
    home = default_dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
