"""base schema: accounts, tweets, attempts, candidates, metrics, config, summaries, audit, health

Revision ID: 0001
Revises:
Create Date: 2026-11-28 15:31:04.738382

Every table carries ``environment``; Postgres-only parts (GIN indexes, roles, row-level
security) come in 0002 so that this revision means the same on both engines.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types as they were at this revision (never import them from
# schema.py: a migration must create the same tables whatever schema.py becomes later).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("x_user_id", sa.String(length=32), nullable=True),
        sa.Column("display_name", sa.String(length=128), nullable=True),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_accounts_environment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("environment", "handle", name=op.f("uq_accounts_environment_handle")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), server_default="info", nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("data", JSON_TYPE, nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_audit_log_environment"),
        ),
        sa.CheckConstraint(
            "severity IN ('debug', 'info', 'warning', 'error', 'critical')",
            name=op.f("ck_audit_log_severity"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_log_event_id")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_time", ["environment", "occurred_at"], unique=False)
        batch_op.create_index(
            "ix_audit_log_type", ["environment", "event_type", "occurred_at"], unique=False
        )

    op.create_table(
        "bot_config",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", JSON_TYPE, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_bot_config_environment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_config")),
        sa.UniqueConstraint("key", "environment", name=op.f("uq_bot_config_key_environment")),
    )
    op.create_table(
        "daily_summaries",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("summary_date", sa.Date(), nullable=False),
        sa.Column("summary_type", sa.String(length=64), nullable=False),
        sa.Column("metrics", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_daily_summaries_environment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_summaries")),
        sa.UniqueConstraint(
            "summary_date",
            "summary_type",
            "environment",
            name=op.f("uq_daily_summaries_summary_date_summary_type_environment"),
        ),
    )
    op.create_table(
        "system_health",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("metrics", JSON_TYPE, nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_system_health_environment"),
        ),
        sa.CheckConstraint(
            "status IN ('ok', 'degraded', 'down')", name=op.f("ck_system_health_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_health")),
    )
    with op.batch_alter_table("system_health", schema=None) as batch_op:
        batch_op.create_index(
            "ix_system_health_component", ["environment", "component", "recorded_at"], unique=False
        )

    op.create_table(
        "tweets",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("x_id", sa.String(length=32), nullable=True),
        sa.Column("thread_root_id", ID, nullable=True),
        sa.Column("thread_parent_id", ID, nullable=True),
        sa.Column("thread_position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("thread_size", sa.Integer(), server_default="1", nullable=False),
        sa.Column("arm", sa.String(length=96), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=True),
        sa.Column("topic", sa.String(length=32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("scores", JSON_TYPE, nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_id", sa.String(length=36), nullable=True),
        sa.Column("posting_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')", name=op.f("ck_tweets_environment")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'posting', 'posted', 'failed', 'unknown')",
            name=op.f("ck_tweets_status"),
        ),
        sa.CheckConstraint(
            "thread_position >= 0 AND thread_size >= 1", name=op.f("ck_tweets_thread_position")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_tweets_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["thread_parent_id"], ["tweets.id"], name=op.f("fk_tweets_thread_parent_id_tweets")
        ),
        sa.ForeignKeyConstraint(
            ["thread_root_id"], ["tweets.id"], name=op.f("fk_tweets_thread_root_id_tweets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tweets")),
        sa.UniqueConstraint(
            "environment",
            "account_id",
            "content_hash",
            name=op.f("uq_tweets_environment_account_id_content_hash"),
        ),
    )
    with op.batch_alter_table("tweets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tweets_due", ["environment", "account_id", "status", "scheduled_at"], unique=False
        )
        batch_op.create_index(
            "ix_tweets_posted_at", ["environment", "account_id", "posted_at"], unique=False
        )
        batch_op.create_index(
            "ix_tweets_status_posted_at", ["environment", "status", "posted_at"], unique=False
        )
        batch_op.create_index("ix_tweets_thread_root_id", ["thread_root_id"], unique=False)

    op.create_table(
        "candidates",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=96), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=True),
        sa.Column("topic", sa.String(length=32), nullable=True),
        sa.Column("generator", sa.String(length=32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("guard_passed", sa.Boolean(), nullable=False),
        sa.Column("guard_reasons", JSON_TYPE, nullable=False),
        sa.Column("chosen", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("why", sa.Text(), nullable=True),
        sa.Column("tweet_id", ID, nullable=True),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_candidates_environment"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_candidates_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["tweet_id"], ["tweets.id"], name=op.f("fk_candidates_tweet_id_tweets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
    )
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_candidates_account_created",
            ["environment", "account_id", "created_at"],
            unique=False,
        )
        batch_op.create_index("ix_candidates_batch", ["batch_id"], unique=False)

    op.create_table(
        "post_attempts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("attempt_id", sa.String(length=36), nullable=False),
        sa.Column("tweet_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("x_id", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_post_attempts_environment"),
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('posted', 'failed', 'unknown', 'released')",
            name=op.f("ck_post_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_post_attempts_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["tweet_id"], ["tweets.id"], name=op.f("fk_post_attempts_tweet_id_tweets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_attempts")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_post_attempts_attempt_id")),
    )
    with op.batch_alter_table("post_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_post_attempts_tweet", ["tweet_id", "started_at"], unique=False)

    op.create_table(
        "tweet_metrics",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("tweet_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("horizon", sa.String(length=4), nullable=False),
        sa.Column("impressions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("likes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reposts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("replies", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("quotes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bookmarks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("profile_clicks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("follows", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("negative_feedback", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reports", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_tweet_metrics_environment"),
        ),
        sa.CheckConstraint(
            "horizon IN ('1h', '6h', '24h', '72h')", name=op.f("ck_tweet_metrics_horizon")
        ),
        sa.CheckConstraint(
            "impressions >= 0 AND likes >= 0 AND reposts >= 0 AND replies >= 0 AND quotes >= 0"
            " AND bookmarks >= 0 AND profile_clicks >= 0 AND follows >= 0"
            " AND negative_feedback >= 0 AND reports >= 0",
            name=op.f("ck_tweet_metrics_nonnegative"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_tweet_metrics_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["tweet_id"], ["tweets.id"], name=op.f("fk_tweet_metrics_tweet_id_tweets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tweet_metrics")),
        sa.UniqueConstraint("tweet_id", "horizon", name=op.f("uq_tweet_metrics_tweet_id_horizon")),
    )
    with op.batch_alter_table("tweet_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tweet_metrics_account", ["environment", "account_id", "collected_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tweet_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_tweet_metrics_account")

    op.drop_table("tweet_metrics")
    with op.batch_alter_table("post_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_post_attempts_tweet")

    op.drop_table("post_attempts")
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_index("ix_candidates_batch")
        batch_op.drop_index("ix_candidates_account_created")

    op.drop_table("candidates")
    with op.batch_alter_table("tweets", schema=None) as batch_op:
        batch_op.drop_index("ix_tweets_thread_root_id")
        batch_op.drop_index("ix_tweets_status_posted_at")
        batch_op.drop_index("ix_tweets_posted_at")
        batch_op.drop_index("ix_tweets_due")

    op.drop_table("tweets")
    with op.batch_alter_table("system_health", schema=None) as batch_op:
        batch_op.drop_index("ix_system_health_component")

    op.drop_table("system_health")
    op.drop_table("daily_summaries")
    op.drop_table("bot_config")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_type")
        batch_op.drop_index("ix_audit_log_time")

    op.drop_table("audit_log")
    op.drop_table("accounts")
