"""Postgres only: JSONB GIN indexes, per-environment roles, forced row-level security.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:45:00

On SQLite this revision changes nothing (an embedded file serves one environment and has no
roles), but it still advances the version so both engines share one history.

On Postgres:
- one NOLOGIN group role per environment (``xbot_local``, ``xbot_staging``,
  ``xbot_production``), neither owner nor BYPASSRLS; the bot ``SET ROLE``s to its
  environment's role on every connection (or logs in as a member of it);
- row-level security ENABLED and FORCED on every table with an ``environment`` column, with
  one policy per role that lets it see and write only its own environment's rows;
- the roles may read ``alembic_version`` so the start-up guard works under them.

A Supabase ``service_role`` (or any superuser/BYPASSRLS role) ignores these policies: the bot
never connects with it. Roles are cluster-wide, so creating them tolerates another database
having created them first.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENVIRONMENTS = ("local", "staging", "production")
ENV_TABLES = (
    "accounts",
    "tweets",
    "post_attempts",
    "candidates",
    "tweet_metrics",
    "bot_config",
    "daily_summaries",
    "audit_log",
    "system_health",
)
GIN_INDEXES = (
    ("ix_tweets_metadata_gin", "tweets", "metadata"),
    ("ix_audit_log_data_gin", "audit_log", "data"),
    ("ix_candidates_guard_reasons_gin", "candidates", "guard_reasons"),
)


def _role(environment: str) -> str:
    return f"xbot_{environment}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, column in GIN_INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} jsonb_path_ops)")
    for env in ENVIRONMENTS:
        role = _role(env)
        op.execute(
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS;
                END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database of this cluster created it at the same moment
            END
            $$
            """  # noqa: S608 - role names come from the constant ENVIRONMENTS above
        )
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        op.execute(f"GRANT SELECT ON alembic_version TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON {', '.join(ENV_TABLES)} TO {role}")
        op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    for table in ENV_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        for env in ENVIRONMENTS:
            op.execute(
                f"CREATE POLICY {table}_{env}_only ON {table} AS PERMISSIVE FOR ALL "
                f"TO {_role(env)} USING (environment = '{env}') "
                f"WITH CHECK (environment = '{env}')"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ENV_TABLES:
        for env in ENVIRONMENTS:
            op.execute(f"DROP POLICY IF EXISTS {table}_{env}_only ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for env in ENVIRONMENTS:
        role = _role(env)
        op.execute(f"REVOKE ALL ON {', '.join(ENV_TABLES)} FROM {role}")
        op.execute(f"REVOKE ALL ON alembic_version FROM {role}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role}")
    for name, _table, _column in GIN_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
