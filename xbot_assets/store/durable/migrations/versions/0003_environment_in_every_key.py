"""environment in every unique and foreign key; on Postgres, ids from per-environment sequences

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 20:00:00

Unique and foreign keys are checked without row-level security. Keys that left out the
environment let one environment interfere with another (issue 17 item 8): staging could take
production's ``(tweet_id, horizon)`` metrics slot, reference production accounts and posts, and
learn whether a production audit ``event_id`` exists through ``ON CONFLICT DO NOTHING``.

Both engines (batch mode on SQLite):
- ``accounts`` and ``tweets`` are unique on ``(environment, id)``, the target of every
  foreign key, and every foreign key becomes ``(environment, <column>)``: a row can only point
  at a row of its own environment;
- ``tweet_metrics (environment, tweet_id, horizon)``, ``post_attempts (environment,
  attempt_id)`` and ``audit_log (environment, event_id)`` replace the keys without it.

Postgres only: the primary keys. Ids came from one sequence per table shared by every
environment, and a role could choose an id itself: staging could take the id production's next
insert would get (that insert then fails) or probe which ids exist. Now a trigger gives every
inserted row the next id of its environment's own sequence (``<table>_id_<environment>``,
increments of 3 with offsets 0/1/2 so they never meet, each role may use only its own) whatever
the statement said, and refuses to change an id. The shared sequences are no longer used (the
column default is dropped) and the roles lose access to them, so neither the ids nor the
sequences say anything about another environment's activity.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# ruff: noqa: S608 - every name put into SQL here comes from the constants below, never input

revision: str = "0003"
down_revision: str | None = "0002"
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
# (table, column, referred table), each named fk_<table>_<column>_<referred> since 0001
FOREIGN_KEYS = (
    ("tweets", "account_id", "accounts"),
    ("tweets", "thread_root_id", "tweets"),
    ("tweets", "thread_parent_id", "tweets"),
    ("post_attempts", "tweet_id", "tweets"),
    ("post_attempts", "account_id", "accounts"),
    ("candidates", "account_id", "accounts"),
    ("candidates", "tweet_id", "tweets"),
    ("tweet_metrics", "tweet_id", "tweets"),
    ("tweet_metrics", "account_id", "accounts"),
)
# (table, the unique key before, the unique key now)
UNIQUE_KEYS = (
    ("post_attempts", ("attempt_id",), ("environment", "attempt_id")),
    ("tweet_metrics", ("tweet_id", "horizon"), ("environment", "tweet_id", "horizon")),
    ("audit_log", ("event_id",), ("environment", "event_id")),
)
ID_TARGETS = ("accounts", "tweets")
ID_FUNCTION = "xbot_environment_id"


def _uq(table: str, columns: Sequence[str]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


def _fk(table: str, column: str, referred: str) -> str:
    return f"fk_{table}_{column}_{referred}"


def _seq(table: str, env: str) -> str:
    return f"{table}_id_{env}"


def _refuse_if(sql: str, what: str, fix: str) -> None:
    """Stop the migration with a message saying what to do when ``sql`` counts any row."""
    found: int = op.get_bind().execute(sa.text(sql)).scalar_one()
    if found:
        raise RuntimeError(f"migration 0003 stopped, nothing changed: {found} {what}. {fix}")


def _by_table(fks: Sequence[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, referred in fks:
        out.setdefault(table, []).append((column, referred))
    return out


def upgrade() -> None:
    for table, column, referred in FOREIGN_KEYS:
        _refuse_if(
            f"SELECT count(*) FROM {table} c JOIN {referred} p ON p.id = c.{column} "
            "WHERE p.environment <> c.environment",
            f"{table} row(s) whose {column} points at a {referred} row of another environment",
            f"Inspect them with: SELECT c.* FROM {table} c JOIN {referred} p ON p.id = "
            f"c.{column} WHERE p.environment <> c.environment; then delete or fix them and "
            "run `xbot migrate` again",
        )
    for table in ID_TARGETS:
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(_uq(table, ("environment", "id")), ["environment", "id"])
    for table, old, new in UNIQUE_KEYS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_uq(table, old), type_="unique")
            batch.create_unique_constraint(_uq(table, new), list(new))
    for table, fks in _by_table(FOREIGN_KEYS).items():
        with op.batch_alter_table(table) as batch:
            for column, referred in fks:
                batch.drop_constraint(_fk(table, column, referred), type_="foreignkey")
                batch.create_foreign_key(
                    _fk(table, column, referred),
                    referred,
                    ["environment", column],
                    ["environment", "id"],
                )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_environment_ids()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgres_shared_ids()
    for table, old, _new in UNIQUE_KEYS:
        cols = ", ".join(old)
        _refuse_if(
            f"SELECT count(*) FROM (SELECT {cols} FROM {table} "
            f"WHERE {' AND '.join(f'{c} IS NOT NULL' for c in old)} GROUP BY {cols} "
            "HAVING count(*) > 1) d",
            f"value(s) of {table} ({cols}) used by more than one environment",
            f"Revision 0002 needs ({cols}) unique across environments: remove the duplicates "
            "(or keep revision 0003)",
        )
    for table, fks in _by_table(FOREIGN_KEYS).items():
        with op.batch_alter_table(table) as batch:
            for column, referred in fks:
                batch.drop_constraint(_fk(table, column, referred), type_="foreignkey")
                batch.create_foreign_key(_fk(table, column, referred), referred, [column], ["id"])
    for table, old, new in UNIQUE_KEYS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_uq(table, new), type_="unique")
            batch.create_unique_constraint(_uq(table, old), list(old))
    for table in reversed(ID_TARGETS):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_uq(table, ("environment", "id")), type_="unique")


def _postgres_environment_ids() -> None:
    bind = op.get_bind()
    envs = ", ".join(f"'{e}'" for e in ENVIRONMENTS)
    op.execute(
        f"""
        CREATE FUNCTION {ID_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            seq text;
        BEGIN
            IF TG_OP = 'UPDATE' THEN
                IF NEW.id IS DISTINCT FROM OLD.id THEN
                    RAISE EXCEPTION 'the id of a % row never changes', TG_TABLE_NAME
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN NEW;
            END IF;
            IF NEW.environment IS NULL OR NEW.environment NOT IN ({envs}) THEN
                RAISE EXCEPTION 'environment must be one of {envs.replace("'", "")}'
                    USING ERRCODE = 'check_violation';
            END IF;
            seq := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME || '_id_' || NEW.environment);
            IF NOT has_sequence_privilege(seq, 'USAGE') THEN
                -- the same refusal as the row-level security policy it stands in front of
                RAISE EXCEPTION 'new row violates row-level security policy for table "%"',
                    TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END IF;
            NEW.id := nextval(seq);  -- whatever id the statement gave
            RETURN NEW;
        END
        $$
        """
    )
    for table in ENV_TABLES:
        top: int = bind.execute(
            sa.text(
                f"SELECT greatest(coalesce(max(id), 0), "
                f"(SELECT last_value FROM {table}_id_seq)) FROM {table}"
            )
        ).scalar_one()
        base = (int(top) // 3 + 1) * 3  # above every id handed out so far
        for offset, env in enumerate(ENVIRONMENTS):
            op.execute(
                f"CREATE SEQUENCE {_seq(table, env)} AS bigint INCREMENT BY 3 "
                f"MINVALUE 1 START WITH {base + offset} OWNED BY {table}.id"
            )
            op.execute(f"GRANT USAGE ON SEQUENCE {_seq(table, env)} TO xbot_{env}")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP DEFAULT")
        op.execute(
            f"CREATE TRIGGER {table}_environment_id BEFORE INSERT OR UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {ID_FUNCTION}()"
        )
        for env in ENVIRONMENTS:
            op.execute(f"REVOKE ALL ON SEQUENCE {table}_id_seq FROM xbot_{env}")


def _postgres_shared_ids() -> None:
    for table in ENV_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_environment_id ON {table}")
        op.execute(
            f"SELECT setval('{table}_id_seq', greatest(coalesce((SELECT max(id) FROM {table}), 0), "
            f"(SELECT last_value FROM {table}_id_seq)))"
        )
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq'::regclass)"
        )
        for env in ENVIRONMENTS:
            op.execute(f"DROP SEQUENCE IF EXISTS {_seq(table, env)}")
            op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {table}_id_seq TO xbot_{env}")
    op.execute(f"DROP FUNCTION IF EXISTS {ID_FUNCTION}()")
