"""post_attempts records whether a request could have left the process (the "sent" mark).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 20:00:00

Two nullable columns on ``post_attempts`` (issue 17 item 1):

- ``send_state``: ``unsent`` when the posting ledger claims (nothing has left the process yet),
  ``sent`` once the poster committed the mark just before its request; NULL for attempts made
  before this revision or by a claimer that does not mark (both treated as possibly sent);
- ``sent_at``: when the mark was written (the reconciler's grace runs from it).

A claim whose attempt is still ``unsent`` provably never reached X, so the reconciler re-queues it
as often as needed; only a possibly-sent one is looked up on the timeline. Existing rows keep
NULL, the conservative reading. Batch mode: SQLite adds the CHECK by copying the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("post_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_state", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_post_attempts_send_state"),
            "send_state IS NULL OR send_state IN ('unsent', 'sent')",
        )


def downgrade() -> None:
    with op.batch_alter_table("post_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_post_attempts_send_state"), type_="check")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("send_state")
