"""operator console: post approval columns and hashed console tokens

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 20:00:00

- ``tweets.approval`` / ``approved_by`` / ``approved_at``: the operator's review of a queued
  post (NULL: not reviewed; ``approved``; ``rejected``). Under ``APPROVAL=required`` the claim
  takes only approved roots.
- ``console_tokens``: sha256 hashes of the tokens ``xbot console token`` prints, one
  environment each. On Postgres the table gets the same per-environment row-level security as
  every other table (0002), so a staging role never sees a production token.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ENVIRONMENTS = ("local", "staging", "production")


def upgrade() -> None:
    with op.batch_alter_table("tweets") as batch:
        batch.add_column(sa.Column("approval", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "console_tokens",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "environment IN ('local', 'staging', 'production')",
            name=op.f("ck_console_tokens_environment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_tokens")),
        sa.UniqueConstraint(
            "environment", "token_hash", name=op.f("uq_console_tokens_environment_token_hash")
        ),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for env in ENVIRONMENTS:
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON console_tokens TO xbot_{env}")
    # Ids from per-environment sequences, as 0003 gave every other table (its trigger function
    # xbot_environment_id): a role sees and uses only its own environment's sequence, so no id
    # or sequence value tells one environment about another's tokens. (Granting every sequence
    # in the schema would undo that for all tables.)
    for offset, env in enumerate(ENVIRONMENTS):
        op.execute(
            f"CREATE SEQUENCE console_tokens_id_{env} AS bigint INCREMENT BY 3 "
            f"MINVALUE 1 START WITH {3 + offset} OWNED BY console_tokens.id"
        )
        op.execute(f"GRANT USAGE ON SEQUENCE console_tokens_id_{env} TO xbot_{env}")
    op.execute("ALTER TABLE console_tokens ALTER COLUMN id DROP DEFAULT")
    op.execute(
        "CREATE TRIGGER console_tokens_environment_id BEFORE INSERT OR UPDATE ON console_tokens "
        "FOR EACH ROW EXECUTE FUNCTION xbot_environment_id()"
    )
    op.execute("ALTER TABLE console_tokens ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE console_tokens FORCE ROW LEVEL SECURITY")
    for env in ENVIRONMENTS:
        op.execute(
            f"CREATE POLICY console_tokens_{env}_only ON console_tokens AS PERMISSIVE FOR ALL "
            f"TO xbot_{env} USING (environment = '{env}') WITH CHECK (environment = '{env}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS console_tokens_environment_id ON console_tokens")
        for env in ENVIRONMENTS:
            op.execute(f"DROP POLICY IF EXISTS console_tokens_{env}_only ON console_tokens")
            op.execute(f"REVOKE ALL ON console_tokens FROM xbot_{env}")
            op.execute(f"DROP SEQUENCE IF EXISTS console_tokens_id_{env}")
    op.drop_table("console_tokens")
    with op.batch_alter_table("tweets") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
        batch.drop_column("approval")
