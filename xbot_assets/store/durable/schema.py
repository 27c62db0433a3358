"""The durable store's tables: one SQLAlchemy Core definition for SQLite and Postgres.

This module is what the repositories query. The DDL that creates these tables lives in the
Alembic migrations (``xbot_assets/store/durable/migrations/versions/``), which must be kept in step
with this file: ``tests/store/test_migrations.py`` fails when a migrated database and this
metadata disagree.

Conventions:
- every table shared by environments has an ``environment`` column (``local``/``staging``/
  ``production``); on Postgres row-level security keeps environments apart on it;
- every unique key and every foreign key includes ``environment`` (keys are checked without
  row-level security, so a key without it would let one environment block or probe another's
  rows); on Postgres each environment also draws ids from a sequence of its own (migration 0003);
- every timestamp is timezone-aware UTC (:class:`UTCDateTime` enforces it on both engines);
- JSON columns are JSONB on Postgres and JSON (text) on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from xbot_assets.vocabulary import HORIZONS, METRIC_NAMES

ENVIRONMENTS: tuple[str, ...] = ("local", "staging", "production")
POST_STATUSES: tuple[str, ...] = ("queued", "posting", "posted", "failed", "unknown")
SEVERITIES: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
HEALTH_STATUSES: tuple[str, ...] = ("ok", "degraded", "down")
ATTEMPT_OUTCOMES: tuple[str, ...] = ("posted", "failed", "unknown", "released")
SEND_STATES: tuple[str, ...] = ("unsent", "sent")
"""post_attempts.send_state: ``unsent`` (claimed, nothing left the process) or ``sent``."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID = BigInteger().with_variant(Integer(), "sqlite")
"""BIGINT identity on Postgres, ``INTEGER PRIMARY KEY`` (the rowid) on SQLite."""

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSONB on Postgres (indexable), JSON text on SQLite."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on both engines.

    SQLite has no time zone type: values are stored as naive UTC text and come back naive; this
    type converts aware values to UTC on the way in, refuses naive ones (they are ambiguous), and
    marks values read back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _environment() -> Column[str]:
    return Column("environment", String(16), nullable=False)


def _env_check() -> CheckConstraint:
    return CheckConstraint(_in("environment", ENVIRONMENTS), name="environment")


def _env_fk(table: str, column: str, referred: str) -> ForeignKeyConstraint:
    """A foreign key that carries the environment: a row may only point at its own environment.

    Foreign keys are checked without row-level security, so a key on the id alone would let one
    environment reference (and probe for) another's rows.
    """
    return ForeignKeyConstraint(
        ["environment", column],
        [f"{referred}.environment", f"{referred}.id"],
        name=f"fk_{table}_{column}_{referred}",
    )


accounts = Table(
    "accounts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("handle", String(64), nullable=False),
    Column("x_user_id", String(32)),
    Column("display_name", String(128)),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("metadata", JSONType, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("environment", "handle"),
    UniqueConstraint("environment", "id"),  # the target of every environment-carrying key
    _env_check(),
)

tweets = Table(
    "tweets",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("account_id", ID, nullable=False),
    Column("text", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("x_id", String(32)),
    Column("thread_root_id", ID),
    Column("thread_parent_id", ID),
    Column("thread_position", Integer, nullable=False, server_default="0"),
    Column("thread_size", Integer, nullable=False, server_default="1"),
    Column("arm", String(96)),
    Column("format", String(32)),
    Column("topic", String(32)),
    Column("score", Float),
    Column("scores", JSONType, nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    Column("last_attempt_id", String(36)),
    Column("posting_started_at", UTCDateTime),
    Column("posted_at", UTCDateTime),
    Column("last_error", Text),
    Column("metadata", JSONType, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # the operator's review (migration 0005): NULL not reviewed, 'approved' or 'rejected';
    # under APPROVAL=required only 'approved' roots are claimed
    Column("approval", String(16)),
    Column("approved_by", String(128)),
    Column("approved_at", UTCDateTime),
    UniqueConstraint("environment", "account_id", "content_hash"),
    UniqueConstraint("environment", "id"),
    _env_fk("tweets", "account_id", "accounts"),
    _env_fk("tweets", "thread_root_id", "tweets"),
    _env_fk("tweets", "thread_parent_id", "tweets"),
    CheckConstraint(_in("status", POST_STATUSES), name="status"),
    CheckConstraint("thread_position >= 0 AND thread_size >= 1", name="thread_position"),
    _env_check(),
    # next due post: WHERE environment, account_id, status='queued' ORDER BY scheduled_at
    Index("ix_tweets_due", "environment", "account_id", "status", "scheduled_at"),
    # posts in the last 24 hours (rate caps) and metrics due: posted_at ranges per account
    Index("ix_tweets_posted_at", "environment", "account_id", "posted_at"),
    Index("ix_tweets_status_posted_at", "environment", "status", "posted_at"),
    Index("ix_tweets_thread_root_id", "thread_root_id"),
)

post_attempts = Table(
    "post_attempts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("attempt_id", String(36), nullable=False),
    Column("tweet_id", ID, nullable=False),
    Column("account_id", ID, nullable=False),
    Column("worker", String(128)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(16)),
    Column("x_id", String(32)),
    Column("error", Text),
    # whether a request could have left the process (migration 0004; NULL: possibly, as before)
    Column("send_state", String(8)),
    Column("sent_at", UTCDateTime),
    UniqueConstraint("environment", "attempt_id"),
    _env_fk("post_attempts", "tweet_id", "tweets"),
    _env_fk("post_attempts", "account_id", "accounts"),
    CheckConstraint("outcome IS NULL OR " + _in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
    CheckConstraint("send_state IS NULL OR " + _in("send_state", SEND_STATES), name="send_state"),
    _env_check(),
    Index("ix_post_attempts_tweet", "tweet_id", "started_at"),
)

candidates = Table(
    "candidates",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("account_id", ID, nullable=False),
    Column("batch_id", String(64)),
    Column("text", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("arm", String(96)),
    Column("format", String(32)),
    Column("topic", String(32)),
    Column("generator", String(32)),
    Column("score", Float),
    Column("guard_passed", Boolean, nullable=False),
    Column("guard_reasons", JSONType, nullable=False),
    Column("chosen", Boolean, nullable=False, server_default=text("false")),
    Column("why", Text),
    Column("tweet_id", ID),
    Column("metadata", JSONType, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    _env_fk("candidates", "account_id", "accounts"),
    _env_fk("candidates", "tweet_id", "tweets"),
    _env_check(),
    Index("ix_candidates_account_created", "environment", "account_id", "created_at"),
    Index("ix_candidates_batch", "batch_id"),
)

tweet_metrics = Table(
    "tweet_metrics",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("tweet_id", ID, nullable=False),
    Column("account_id", ID, nullable=False),
    Column("horizon", String(4), nullable=False),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in METRIC_NAMES),
    Column("source", String(32)),
    Column("collected_at", UTCDateTime, nullable=False),
    UniqueConstraint("environment", "tweet_id", "horizon"),
    _env_fk("tweet_metrics", "tweet_id", "tweets"),
    _env_fk("tweet_metrics", "account_id", "accounts"),
    CheckConstraint(_in("horizon", HORIZONS), name="horizon"),
    CheckConstraint(" AND ".join(f"{n} >= 0" for n in METRIC_NAMES), name="nonnegative"),
    _env_check(),
    Index("ix_tweet_metrics_account", "environment", "account_id", "collected_at"),
)

bot_config = Table(
    "bot_config",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("key", String(128), nullable=False),
    Column("value", JSONType, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("key", "environment"),
    _env_check(),
)

daily_summaries = Table(
    "daily_summaries",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("summary_date", Date, nullable=False),
    Column("summary_type", String(64), nullable=False),
    Column("metrics", JSONType, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("summary_date", "summary_type", "environment"),
    _env_check(),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("event_id", String(64)),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("component", String(64), nullable=False),
    Column("severity", String(16), nullable=False, server_default="info"),
    Column("actor", String(128), nullable=False),
    Column("data", JSONType, nullable=False),
    UniqueConstraint("environment", "event_id"),
    CheckConstraint(_in("severity", SEVERITIES), name="severity"),
    _env_check(),
    Index("ix_audit_log_time", "environment", "occurred_at"),
    Index("ix_audit_log_type", "environment", "event_type", "occurred_at"),
)

system_health = Table(
    "system_health",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("component", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("metrics", JSONType, nullable=False),
    Column("message", Text),
    CheckConstraint(_in("status", HEALTH_STATUSES), name="status"),
    _env_check(),
    Index("ix_system_health_component", "environment", "component", "recorded_at"),
)

console_tokens = Table(
    "console_tokens",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    _environment(),
    # sha256 of the token: the token itself is printed once by `xbot console token`, never stored
    Column("token_hash", String(64), nullable=False),
    Column("label", String(128), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    # the environment is in the key, as in every key since 0003 (issue 17 item 8)
    UniqueConstraint("environment", "token_hash"),
    _env_check(),
)

ENVIRONMENT_TABLES: tuple[Table, ...] = tuple(
    t for t in metadata.sorted_tables if "environment" in t.c
)
"""Every table shared by environments (all of them carry ``environment``)."""
