"""The posting ledger of a post: its claim (the store's one durable claim), outcomes, requeues.

Every state change is one transaction, conditional on the row's current status, so a late
poster and the reconciler can never both decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.accounts import account_row
from xbot_assets.store.durable.audit import write_audit
from xbot_assets.store.durable.base import Repository
from xbot_assets.store.durable.claim import claim_post, lock_account
from xbot_assets.store.durable.errors import InvalidInputError, InvalidTransitionError
from xbot_assets.store.durable.models import AuditEvent, Claim, Post
from xbot_assets.store.durable.posts import post_row
from xbot_assets.store.durable.validate import (
    valid_id,
    valid_now,
    valid_opt_attempt,
    valid_opt_str,
    valid_opt_time,
    valid_str,
    valid_x_id,
)


class PostLedgerRepository(Repository):
    """Claim due posts and record what became of each attempt."""

    def claim_next_due(
        self,
        account_id: int,
        *,
        now: datetime | None = None,
        worker: str | None = None,
        require_approval: bool = False,
    ) -> Claim | None:
        """Claim the account's next due post (oldest ``scheduled_at`` first), or None.

        With ``require_approval`` (``APPROVAL=required``) only posts an operator approved are
        claimed; the others wait in ``queued``.

        In one transaction: the row is locked (``FOR UPDATE SKIP LOCKED`` on Postgres; the
        ``BEGIN IMMEDIATE`` write lock on SQLite), set to ``posting`` with a new attempt id,
        an attempt row is recorded, and the transaction commits before this returns, so two
        workers never hold the same post and a crash leaves a visible ``posting`` row for the
        reconciler.
        """
        account_id = valid_id("account_id", account_id)
        now = valid_now(now)
        worker = valid_opt_str("worker", worker, 128)
        t = s.tweets
        with self._tx() as conn:
            account_row(conn, self.environment, account_id)
            lock_account(conn, self.environment, account_id)
            q = (
                select(t.c.id)
                .where(
                    t.c.environment == self.environment,
                    t.c.account_id == account_id,
                    t.c.status == "queued",
                    t.c.thread_position == 0,
                    t.c.scheduled_at <= now,
                )
                .order_by(t.c.scheduled_at, t.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if require_approval:
                q = q.where(t.c.approval == "approved")
            post_id = conn.execute(q).scalar()
            if post_id is None:
                return None
            return self._claim_thread(conn, int(post_id), now, worker, require_approval)

    def claim_post(
        self,
        post_id: int,
        *,
        now: datetime | None = None,
        worker: str | None = None,
        require_approval: bool = False,
    ) -> Claim | None:
        """Claim this post (e.g. the one a Dagster run was keyed on) if it is still queued.

        Returns None when another worker claimed it first, it is no longer queued, or
        ``require_approval`` is set and no operator approved it; it does not wait for
        ``scheduled_at`` (the caller decided it is due).
        """
        post_id = valid_id("post_id", post_id)
        now = valid_now(now)
        worker = valid_opt_str("worker", worker, 128)
        with self._tx() as conn:
            row = post_row(conn, self.environment, post_id)
            if row.thread_position != 0:
                raise InvalidInputError(
                    f"post {post_id} is part {row.thread_position} of thread "
                    f"{row.thread_root_id}: claim the thread's root instead"
                )
            return self._claim_thread(conn, post_id, now, worker, require_approval)

    def _claim_thread(
        self,
        conn: Connection,
        post_id: int,
        now: datetime,
        worker: str | None,
        require_approval: bool,
    ) -> Claim | None:
        """The store's one durable claim (:func:`claim_post`) of a root and all its parts."""
        outcome = claim_post(
            conn,
            environment=self.environment,
            post_id=post_id,
            now=now,
            worker=worker,
            whole_thread=True,
            require_approval=require_approval,
        )
        if outcome.status != "claimed" or outcome.attempt_id is None:
            return None
        t = s.tweets
        parts = [
            Post(**r._mapping)
            for r in conn.execute(
                select(t).where(t.c.id.in_(outcome.part_ids)).order_by(t.c.thread_position)
            )
        ]
        return Claim(
            attempt_id=outcome.attempt_id, started_at=now, post=parts[0], parts=tuple(parts)
        )

    def mark_posted(
        self,
        post_id: int,
        *,
        x_id: str,
        attempt_id: str | None = None,
        posted_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Post:
        """Record that the post (or thread part) is on X with id ``x_id``.

        Allowed from ``posting`` and ``unknown`` (the reconciler found it). Idempotent: marking
        a post posted again with the same ``x_id`` returns it unchanged.

        ``posted_at`` is when X published it (default: ``now``); it may be earlier than ``now``
        (the reconciler found it on the timeline later), so ``updated_at`` and the attempt's
        ``finished_at`` take ``now``, the time of this write: the warehouse reads rows changed
        since its newest ``updated_at``, and a back-dated ``updated_at`` would be skipped.
        """
        post_id = valid_id("post_id", post_id)
        x_id = valid_x_id(x_id)
        attempt_id = valid_opt_attempt(attempt_id)
        now = valid_now(now)
        posted_at = valid_opt_time("posted_at", posted_at) or now
        t = s.tweets
        with self._tx() as conn:
            row = post_row(conn, self.environment, post_id, lock=True)
            if row.status == "posted":
                if row.x_id == x_id:
                    return Post(**row._mapping)
                raise InvalidTransitionError(
                    f"post {post_id} is already posted as X id {row.x_id}, not {x_id}: check "
                    "the account's timeline; the store keeps the first id"
                )
            self._require(row, ("posting", "unknown"), "posted")
            conn.execute(
                update(t)
                .where(t.c.id == post_id)
                .values(status="posted", x_id=x_id, posted_at=posted_at, updated_at=now)
            )
            if attempt_id is not None:
                self._finish_attempt_if_done(conn, row, attempt_id, x_id=x_id, now=now)
            return Post(**post_row(conn, self.environment, post_id)._mapping)

    def mark_failed(
        self,
        post_id: int,
        *,
        error: str,
        attempt_id: str | None = None,
        requeue_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Post:
        """Record that posting failed and the post is known NOT to be on X.

        Without ``requeue_at`` the row (and the later parts of its thread that are not posted)
        become ``failed``. With ``requeue_at`` they go back to ``queued``, due then (only when
        no part of the thread was posted). Only call this when X answered with a definite
        refusal; when in doubt (timeout, crash) call :meth:`mark_unknown`.
        """
        post_id = valid_id("post_id", post_id)
        error = self._error_text(error)
        attempt_id = valid_opt_attempt(attempt_id)
        requeue_at = valid_opt_time("requeue_at", requeue_at)
        t = s.tweets
        now = valid_now(now)
        with self._tx() as conn:
            row = post_row(conn, self.environment, post_id, lock=True)
            self._require(row, ("posting", "unknown"), "failed")
            affected = [post_id]
            if row.thread_root_id is not None:
                affected = list(
                    conn.execute(
                        select(t.c.id).where(
                            t.c.thread_root_id == row.thread_root_id,
                            t.c.thread_position >= row.thread_position,
                            t.c.status.in_(("posting", "queued", "unknown")),
                        )
                    ).scalars()
                )
            if requeue_at is not None:
                if (
                    row.thread_root_id is not None
                    and conn.execute(
                        select(func.count()).where(
                            t.c.thread_root_id == row.thread_root_id, t.c.status == "posted"
                        )
                    ).scalar_one()
                ):
                    raise InvalidTransitionError(
                        f"thread {row.thread_root_id} is partly posted: it cannot be requeued; "
                        "mark the rest failed and let a person decide"
                    )
                conn.execute(
                    update(t)
                    .where(t.c.id.in_(affected))
                    .values(
                        status="queued",
                        scheduled_at=requeue_at,
                        posting_started_at=None,
                        last_error=error,
                        updated_at=now,
                    )
                )
                outcome = "released"
            else:
                conn.execute(
                    update(t)
                    .where(t.c.id.in_(affected))
                    .values(status="failed", last_error=error, updated_at=now)
                )
                outcome = "failed"
            if attempt_id is not None:
                self._finish_attempt(conn, row, attempt_id, outcome=outcome, error=error, now=now)
            return Post(**post_row(conn, self.environment, post_id)._mapping)

    def mark_unknown(
        self,
        post_id: int,
        *,
        reason: str,
        attempt_id: str | None = None,
        now: datetime | None = None,
    ) -> Post:
        """Record that nobody knows whether the post reached X: a person (or one guarded retry)
        decides. Allowed from ``posting`` only."""
        post_id = valid_id("post_id", post_id)
        reason = self._error_text(reason)
        attempt_id = valid_opt_attempt(attempt_id)
        now = valid_now(now)
        t = s.tweets
        with self._tx() as conn:
            row = post_row(conn, self.environment, post_id, lock=True)
            self._require(row, ("posting",), "unknown")
            conn.execute(
                update(t)
                .where(t.c.id == post_id)
                .values(status="unknown", last_error=reason, updated_at=now)
            )
            if attempt_id is not None:
                self._finish_attempt(
                    conn, row, attempt_id, outcome="unknown", error=reason, now=now
                )
            return Post(**post_row(conn, self.environment, post_id)._mapping)

    def requeue(
        self,
        post_id: int,
        *,
        actor: str,
        reason: str,
        scheduled_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Post:
        """A person's (or a configured guarded retry's) decision to post an ``unknown`` or
        ``failed`` post again, due at ``scheduled_at`` (default: ``now``). Audited."""
        post_id = valid_id("post_id", post_id)
        actor = valid_str("actor", actor, 128)
        reason = self._error_text(reason)
        now = valid_now(now)
        due = valid_opt_time("scheduled_at", scheduled_at) or now
        t = s.tweets
        with self._tx() as conn:
            row = post_row(conn, self.environment, post_id, lock=True)
            if row.thread_position != 0:
                raise InvalidInputError(f"post {post_id} is a thread part: requeue its root")
            self._require(row, ("unknown", "failed"), "queued")
            ids = [post_id]
            if row.thread_root_id is not None:
                ids = list(
                    conn.execute(select(t.c.id).where(t.c.thread_root_id == post_id)).scalars()
                )
            conn.execute(
                update(t)
                .where(t.c.id.in_(ids), t.c.status != "posted")
                .values(status="queued", scheduled_at=due, posting_started_at=None, updated_at=now)
            )
            write_audit(
                conn,
                self.environment,
                AuditEvent(
                    event_type="post_requeued",
                    component="store",
                    severity="warning",
                    actor=actor,
                    occurred_at=now,
                    data={"post_id": post_id, "from": row.status, "reason": reason},
                ),
            )
            return Post(**post_row(conn, self.environment, post_id)._mapping)

    def _require(self, row: Row[Any], allowed: tuple[str, ...], target: str) -> None:
        if row.status not in allowed:
            raise InvalidTransitionError(
                f"post {row.id} is {row.status}; it can become {target} only from "
                f"{' or '.join(allowed)}: reload it and check who changed it"
            )

    def _finish_attempt(
        self,
        conn: Connection,
        row: Row[Any],
        attempt_id: str,
        *,
        outcome: str,
        now: datetime,
        error: str | None = None,
        x_id: str | None = None,
    ) -> None:
        a = s.post_attempts
        root_id = row.thread_root_id or row.id
        changed = conn.execute(
            update(a)
            .where(
                a.c.environment == self.environment,
                a.c.attempt_id == attempt_id,
                a.c.tweet_id == root_id,
            )
            .values(finished_at=now, outcome=outcome, error=error, x_id=x_id)
        ).rowcount
        if changed != 1:
            raise InvalidInputError(
                f"attempt {attempt_id} is not a claim of post {root_id}: pass the attempt_id "
                "from the Claim"
            )

    def _finish_attempt_if_done(
        self, conn: Connection, row: Row[Any], attempt_id: str, *, x_id: str, now: datetime
    ) -> None:
        t = s.tweets
        root_id = row.thread_root_id or row.id
        if row.thread_root_id is not None:
            pending = conn.execute(
                select(func.count()).where(t.c.thread_root_id == root_id, t.c.status != "posted")
            ).scalar_one()
            root_x = conn.execute(select(t.c.x_id).where(t.c.id == root_id)).scalar()
            if pending:
                # Check the attempt belongs to this thread now; finish it with the last part.
                a = s.post_attempts
                if not conn.execute(
                    select(a.c.id).where(a.c.attempt_id == attempt_id, a.c.tweet_id == root_id)
                ).first():
                    raise InvalidInputError(
                        f"attempt {attempt_id} is not a claim of post {root_id}: pass the "
                        "attempt_id from the Claim"
                    )
                return
            x_id = root_x or x_id
        self._finish_attempt(conn, row, attempt_id, outcome="posted", x_id=x_id, now=now)

    def _error_text(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(
                "the error/reason must be a non-empty string saying what happened"
            )
        return value.replace("\x00", "")[:4000]


__all__ = ["PostLedgerRepository"]
