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
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_tokens_token_hash")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for env in ENVIRONMENTS:
        role = f"xbot_{env}"
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON console_tokens TO {role}")
        op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    op.execute("ALTER TABLE console_tokens ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE console_tokens FORCE ROW LEVEL SECURITY")
    for env in ENVIRONMENTS:
        op.execute(
            f"CREATE POLICY console_tokens_{env}_only ON console_tokens AS PERMISSIVE FOR ALL "
            f"TO xbot_{env} USING (environment = '{env}') WITH CHECK (environment = '{env}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for env in ENVIRONMENTS:
            op.execute(f"DROP POLICY IF EXISTS console_tokens_{env}_only ON console_tokens")
            op.execute(f"REVOKE ALL ON console_tokens FROM xbot_{env}")
    op.drop_table("console_tokens")
    with op.batch_alter_table("tweets") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
        batch.drop_column("approval")
