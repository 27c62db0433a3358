"""The posting ledger: the durable-store operations of the at-most-once protocol.

Every function here runs against the durable store's tables
(:mod:`xbot_assets.store.durable.schema`), on SQLite and Postgres alike, and each state change is
one committed transaction:

- :meth:`PostingLedger.claim_next_due` checks the gates (brake, back-off, every rate cap counted
  from the durable rows) and claims the next due post in the same transaction (SQLite: ``BEGIN
  IMMEDIATE``; Postgres: a per-account advisory lock plus ``FOR UPDATE SKIP LOCKED``), writing the
  ``post_attempts`` row, and commits before anything is sent;
- :meth:`mark_sending` commits the attempt's "sent" mark just before the request leaves (the
  claim wrote ``unsent``), so an attempt still ``unsent`` provably never reached X and
  :meth:`requeue_unsent` puts it back as often as needed; only a possibly-sent one goes to the
  reconciler's timeline check (issue 17 item 1);
- :meth:`mark_posted`, :meth:`release`, :meth:`mark_failed`, :meth:`mark_unknown` finish an
  attempt, each conditional on the attempt id (compare-and-set), so a late poster and the
  reconciler can never both decide;
- thread parts are rows chained by ``thread_parent_id``: a part is claimable only once its parent
  is ``posted`` with an X id, so a thread resumes from its last recorded part after a crash and a
  recorded part is never claimed again.

Why it lives in ``posting/``: the claim is the posting protocol's critical step (gates and claim
in one transaction, thread order). It uses the store's public pieces only: the schema, the
engine, :class:`~xbot_assets.store.durable.DurableStore` for accounts and enqueueing (same
content hashes), and :class:`~xbot_assets.store.hot.brake.EmergencyBrake`.

The claim is the store's one durable claim (:func:`xbot_assets.store.durable.claim.claim_post`),
called here one part at a time so that each part has its own attempt row and a crash resumes at
the right part (``DurableStore.claim_next_due`` calls the same claim for a whole thread).

Why one module of about 700 lines: :class:`PostingLedger` is the protocol's state machine, one
method per transition (claim, send mark, posted, released, failed, unknown, guarded retry), each
a compare-and-set on the same row and attempt; keeping them side by side is what lets a reader
check that no two transitions can both win.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from xbot_assets.ops.audit import record_audit
from xbot_assets.store.durable.claim import (
    Blocked,
    PostKind,
    claim_post,
    claimable_posts,
    lock_account,
)
from xbot_assets.store.durable.config import ConfigRepository, config_value
from xbot_assets.store.durable.schema import post_attempts, tweets
from xbot_assets.store.hot.brake import EmergencyBrake, read_durable_brake
from xbot_assets.store.hot.keys import KeySpace

BACKOFF_KEY = "posting.backoff_until"
"""bot_config key: no claim before this time (set from X's rate-limit reset header)."""

PARENT = tweets.alias("parent")
"""A thread part's parent row (built once: each new alias re-derives every column)."""

ON_X_STATUSES = ("posting", "posted", "unknown")
"""Statuses of rows that are (or may be) on X: all count against the rate caps."""


@dataclass(frozen=True)
class RateCaps:
    """The caps checked against the durable store before every claim."""

    max_posts_per_hour: int = 2
    max_posts_per_day: int = 12
    min_spacing: timedelta = timedelta(minutes=45)
    max_replies_per_hour: int = 10
    require_approval: bool = False
    """APPROVAL=required: only roots an operator approved are claimed (the console)."""

    @classmethod
    def from_settings(cls, settings: Any) -> RateCaps:
        return cls(
            max_posts_per_hour=settings.max_posts_per_hour,
            max_posts_per_day=settings.max_posts_per_day,
            min_spacing=timedelta(minutes=settings.min_spacing_minutes),
            max_replies_per_hour=settings.max_replies_per_hour,
            require_approval=getattr(settings, "approval", "off") == "required",
        )


@dataclass(frozen=True)
class ClaimedPost:
    """A post this worker now owns (state ``posting``), with all it needs to act."""

    tweet_id: int
    attempt_id: str
    account_id: int
    text: str
    content_hash: str
    reply_to_x_id: str | None
    thread_root_id: int | None
    thread_position: int
    thread_size: int
    attempt_count: int


@dataclass(frozen=True)
class StuckPost:
    """A row left in ``posting`` (its poster died or hung) that the reconciler must settle."""

    tweet_id: int
    attempt_id: str | None
    account_id: int
    text: str
    reply_to_x_id: str | None
    posting_started_at: datetime | None
    attempt_count: int
    guarded_retries: int
    send_state: str | None = None
    """``unsent``: the attempt's request never left the process; ``sent`` or None: it may have."""
    sent_at: datetime | None = None

    @property
    def provably_unsent(self) -> bool:
        """Whether X cannot have seen this attempt (its "sent" mark was never committed)."""
        return self.send_state == "unsent"


def worker_name() -> str:
    """``host:pid``: which process holds a claim (stored in post_attempts)."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


class PostingLedger:
    """Durable posting state for one environment.

    Args:
        engine: the durable store's engine (:func:`xbot_assets.store.durable.engine.make_engine`).
        environment: ``local``/``staging``/``production`` (rows of other environments are
            never read or written).
        brake: the emergency brake (with its Redis mirror when the caller has one).
        hot: the loop's hot path (``posting.hotpath.open_hot_path``: Redis when REDIS_URL is
            set, else the same calls on the store alone); None claims on the store directly.
    """

    def __init__(
        self,
        engine: Engine,
        environment: str,
        *,
        brake: EmergencyBrake | None = None,
        hot: Any = None,
    ) -> None:
        self.engine = engine
        self.environment = environment
        self.is_postgres = engine.dialect.name == "postgresql"
        self.hot = hot
        if brake is None and hot is not None:
            brake = hot.brake
        self.brake = brake or EmergencyBrake(engine, environment, None, KeySpace("local:"))

    # --- accounts and enqueue (delegated to the durable store's repositories) --------------
    def _store(self) -> Any:
        from xbot_assets.store.durable import DurableStore

        return DurableStore(self.engine, self.environment)

    def ensure_account(
        self, handle: str, *, x_user_id: str | None = None, now: datetime | None = None
    ) -> int:
        """The id of the account ``handle`` in this environment, created if missing (stamped
        ``now``, the caller's clock; the wall clock when None)."""
        return int(self._store().ensure_account(handle, x_user_id=x_user_id, now=now).id)

    def enqueue(
        self,
        account_id: int,
        parts: Sequence[str],
        *,
        scheduled_at: datetime,
        arm: str | None = None,
        metadata: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Queue a single post (one part) or a thread (parts in order); returns ids, root first.

        ``now`` (the caller's clock; the wall clock when None) stamps ``created_at``/``updated_at``.

        Delegates to :class:`~xbot_assets.store.durable.DurableStore` (same hashes, same rules).

        Raises:
            DuplicatePostError: the same text is already queued or posted for this account.
        """
        store = self._store()
        if len(parts) == 1:
            post = store.enqueue_post(
                account_id,
                parts[0],
                arm=arm,
                scheduled_at=scheduled_at,
                metadata=metadata,
                now=now,
            )
            return [int(post.id)]
        posts = store.enqueue_thread(
            account_id,
            list(parts),
            arm=arm,
            scheduled_at=scheduled_at,
            metadata=metadata,
            now=now,
        )
        return [int(p.id) for p in posts]

    # --- config (brake, back-off) ---------------------------------------------------------
    def get_config(self, key: str, conn: Connection | None = None) -> Any:
        """A bot_config value (in the caller's transaction when given one)."""
        if conn is not None:
            return config_value(conn, self.environment, key)
        return ConfigRepository(self.engine, self.environment).get_config(key)

    def set_config(self, key: str, value: Any, *, actor: str, now: datetime) -> None:
        """Store one bot_config value, audited in the same transaction (the config repository)."""
        ConfigRepository(self.engine, self.environment).set_config(
            key, value, actor=actor, reason="posting", now=now
        )

    def brake_reason(self, conn: Connection | None = None) -> str | None:
        """The brake's reason when it is engaged (the durable bot_config row), else None."""
        if conn is None:
            with self.engine.connect() as c:
                status = read_durable_brake(c, self.environment)
        else:
            status = read_durable_brake(conn, self.environment)
        return (status.reason or "engaged") if status.engaged else None

    def engage_brake(self, reason: str, *, actor: str, now: datetime) -> None:
        """Stop every post from the next check on (the store's brake: durable, audited).

        The Redis mirror is refreshed by the next :class:`EmergencyBrake` reader (its TTL is
        short); claims read the durable row, so they stop at once. The row and its audit entry
        are stamped ``now`` (the caller's clock), not the brake's own clock.
        """
        brake = self.brake
        EmergencyBrake(
            brake.engine, brake.environment, brake.client, brake.keys, clock=lambda: now
        ).engage(reason, actor=actor)

    def audit(
        self, event_type: str, data: dict[str, Any], *, severity: str = "info", now: datetime
    ) -> None:
        """One audit row from the posting layer (ids and outcomes, never text or secrets)."""
        record_audit(
            self.engine,
            environment=self.environment,
            event_type=event_type,
            actor="posting",
            component="posting",
            data=data,
            severity=severity,
            clock=lambda: now,
        )

    # --- gates -----------------------------------------------------------------------------
    def _count_on_x(
        self, conn: Connection, account_id: int, since: datetime, *, replies: bool
    ) -> int:
        when = func.coalesce(tweets.c.posted_at, tweets.c.posting_started_at)
        position = tweets.c.thread_position > 0 if replies else tweets.c.thread_position == 0
        query = select(func.count()).where(
            tweets.c.environment == self.environment,
            tweets.c.account_id == account_id,
            tweets.c.status.in_(ON_X_STATUSES),
            position,
            when >= since,
        )
        return int(conn.execute(query).scalar_one())

    def _last_root_at(self, conn: Connection, account_id: int) -> datetime | None:
        when = func.coalesce(tweets.c.posted_at, tweets.c.posting_started_at)
        query = select(func.max(when)).where(
            tweets.c.environment == self.environment,
            tweets.c.account_id == account_id,
            tweets.c.status.in_(ON_X_STATUSES),
            tweets.c.thread_position == 0,
        )
        value = conn.execute(query).scalar_one_or_none()
        if isinstance(value, str):  # SQLite returns text for MAX over a decorated column
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def gate(
        self,
        conn: Connection,
        account_id: int,
        caps: RateCaps,
        now: datetime,
        *,
        is_reply: bool,
    ) -> Blocked | None:
        """Why nothing may be claimed now (brake, back-off, a cap), checked on durable rows."""
        reason = self.brake_reason(conn)
        if reason is not None:
            return Blocked(f"emergency brake engaged: {reason}")
        backoff = self.get_config(BACKOFF_KEY, conn)
        if isinstance(backoff, str):
            until = datetime.fromisoformat(backoff)
            if until > now:
                return Blocked(f"backing off after a rate limit until {until.isoformat()}", until)
        hour_ago = now - timedelta(hours=1)
        if is_reply:
            if self._count_on_x(conn, account_id, hour_ago, replies=True) >= (
                caps.max_replies_per_hour
            ):
                return Blocked(f"max_replies_per_hour={caps.max_replies_per_hour} reached")
            return None
        if self._count_on_x(conn, account_id, hour_ago, replies=False) >= caps.max_posts_per_hour:
            return Blocked(f"max_posts_per_hour={caps.max_posts_per_hour} reached")
        day_ago = now - timedelta(days=1)
        if self._count_on_x(conn, account_id, day_ago, replies=False) >= caps.max_posts_per_day:
            return Blocked(f"max_posts_per_day={caps.max_posts_per_day} reached")
        last = self._last_root_at(conn, account_id)
        # With spacing 0 a concurrent worker's claim stamped a moment "after" our now must not
        # block us; with spacing > 0 it does (too soon either way).
        if last is not None and caps.min_spacing > timedelta(0) and now - last < caps.min_spacing:
            return Blocked(
                f"min spacing of {caps.min_spacing} since the last post", last + caps.min_spacing
            )
        return None

    # --- the claim -------------------------------------------------------------------------
    def _next_due_query(
        self, account_id: int, now: datetime, *, lock: bool = True, approved_only: bool = False
    ) -> Any:
        """The account's next claimable row (:func:`claimable_posts`: parts before new posts)."""
        query = (
            claimable_posts(self.environment, tweets.c.id, tweets.c.thread_position)
            .where(tweets.c.account_id == account_id, tweets.c.scheduled_at <= now)
            .limit(1)
        )
        if approved_only:  # a thread's later parts follow their approved root
            query = query.where(or_(tweets.c.thread_position > 0, tweets.c.approval == "approved"))
        if self.is_postgres and lock:
            query = query.with_for_update(skip_locked=True, of=tweets)
        return query

    def next_due_id(
        self, account_id: int, *, now: datetime, approved_only: bool = False
    ) -> int | None:
        """The id of the post that would be claimed next (read only; for dry runs)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                self._next_due_query(account_id, now, lock=False, approved_only=approved_only)
            ).first()
        return None if row is None else int(row.id)

    def claim_next_due(
        self, account_id: int, caps: RateCaps, *, now: datetime, worker: str | None = None
    ) -> ClaimedPost | Blocked | None:
        """Check the gates and claim the next due post in one committed transaction.

        The claim itself is the store's one durable claim
        (:func:`xbot_assets.store.durable.claim.claim_post`, one part at a time, attempt
        recorded ``unsent`` until :meth:`mark_sending`); this method picks the row and supplies
        the gates.

        Returns:
            the claim; a :class:`Blocked` saying why nothing may be posted now; or None when
            nothing is due.
        """
        with self.engine.begin() as conn:
            lock_account(conn, self.environment, account_id)
            row = conn.execute(
                self._next_due_query(account_id, now, approved_only=caps.require_approval)
            ).first()
            if row is None:
                return None

            def gates(c: Connection, kind: PostKind) -> Blocked | None:
                return self.gate(c, account_id, caps, now, is_reply=kind == "reply")

            outcome = claim_post(
                conn,
                environment=self.environment,
                post_id=int(row.id),
                now=now,
                worker=worker or worker_name(),
                account_id=account_id,
                require_approval=caps.require_approval,
                send_mark=True,
                gate=gates,
            )
            if outcome.status == "blocked":
                assert outcome.blocked is not None
                return outcome.blocked
            if outcome.status != "claimed" or outcome.attempt_id is None:
                return None
            return self._claimed(conn, outcome.post_id, outcome.attempt_id)

    def claim(
        self, account_id: int, caps: RateCaps, *, now: datetime, worker: str | None = None
    ) -> ClaimedPost | Blocked | None:
        """The posting service's claim: through the hot path when the ledger has one (tickets
        and Redis prechecks first), always decided by :meth:`claim_next_due`."""
        if self.hot is None:
            return self.claim_next_due(account_id, caps, now=now, worker=worker)
        from xbot_assets.posting.hotpath import claim_next

        result: ClaimedPost | Blocked | None = claim_next(
            self, self.hot, account_id, caps, now=now, worker=worker
        )
        return result

    def count_on_x(self, claim: ClaimedPost, *, claimed_at: datetime) -> None:
        """The claim is (or may be) on X: bump the hot path's rate counters (no-op without)."""
        if self.hot is not None:
            from xbot_assets.posting.hotpath import count_on_x

            count_on_x(self.hot, claim.account_id, claim.thread_position, claimed_at)

    def _claimed(self, conn: Connection, tweet_id: int, attempt_id: str) -> ClaimedPost:
        parent = PARENT
        r = conn.execute(
            select(tweets, parent.c.x_id.label("parent_x_id"))
            .select_from(tweets.outerjoin(parent, parent.c.id == tweets.c.thread_parent_id))
            .where(tweets.c.id == tweet_id)
        ).one()
        return ClaimedPost(
            tweet_id=r.id,
            attempt_id=attempt_id,
            account_id=r.account_id,
            text=r.text,
            content_hash=r.content_hash,
            reply_to_x_id=r.parent_x_id,
            thread_root_id=r.thread_root_id,
            thread_position=r.thread_position,
            thread_size=r.thread_size,
            attempt_count=r.attempt_count,
        )

    # --- the "sent" mark --------------------------------------------------------------------
    def _lock_owned(self, conn: Connection, tweet_id: int, attempt_id: str) -> bool:
        """Lock the post's row and say whether ``attempt_id`` still holds it in ``posting``.

        Postgres: ``FOR UPDATE``, so the mark and an unsent re-queue of the same attempt run one
        after the other, each seeing the other's commit; SQLite: the write transaction's
        ``BEGIN IMMEDIATE`` already serialises them.
        """
        query = select(tweets.c.status, tweets.c.last_attempt_id).where(
            tweets.c.id == tweet_id, tweets.c.environment == self.environment
        )
        if self.is_postgres:
            query = query.with_for_update(of=tweets)
        row = conn.execute(query).first()
        return row is not None and row.status == "posting" and row.last_attempt_id == attempt_id

    def mark_sending(self, tweet_id: int, attempt_id: str, *, now: datetime) -> bool:
        """Commit the attempt's "sent" mark; call it just before the request, and send only on True.

        From this commit on the attempt counts as possibly sent (a later crash goes to timeline
        reconciliation). False: the claim is no longer this attempt's (the reconciler re-queued
        it as unsent, or settled it): nothing may be sent.
        """
        with self.engine.begin() as conn:
            if not self._lock_owned(conn, tweet_id, attempt_id):
                return False
            done = conn.execute(
                update(post_attempts)
                .where(
                    post_attempts.c.attempt_id == attempt_id,
                    post_attempts.c.environment == self.environment,
                )
                .values(send_state="sent", sent_at=now)
            ).rowcount
            return bool(done)

    def requeue_unsent(self, tweet_id: int, attempt_id: str, *, now: datetime, error: str) -> bool:
        """Back to ``queued`` an attempt that provably never left the process (still ``unsent``).

        Costs no guarded retry: X cannot have seen it, so it may be retried as often as it is
        killed. Checked under the row lock against the attempt's mark, so a poster that marks
        at the same moment either sends (and this returns False) or finds its claim gone.
        """
        with self.engine.begin() as conn:
            if not self._lock_owned(conn, tweet_id, attempt_id):
                return False
            state = conn.execute(
                select(post_attempts.c.send_state).where(
                    post_attempts.c.attempt_id == attempt_id,
                    post_attempts.c.environment == self.environment,
                )
            ).scalar_one_or_none()
            if state != "unsent":
                return False
            conn.execute(
                update(tweets)
                .where(tweets.c.id == tweet_id, tweets.c.last_attempt_id == attempt_id)
                .values(status="queued", last_error=error, updated_at=now)
            )
            conn.execute(
                update(post_attempts)
                .where(post_attempts.c.attempt_id == attempt_id)
                .values(finished_at=now, outcome="released", error=error)
            )
            return True

    # --- finishing an attempt --------------------------------------------------------------
    def _finish(
        self,
        tweet_id: int,
        attempt_id: str | None,
        *,
        now: datetime,
        outcome: str,
        values: dict[str, Any],
        from_statuses: tuple[str, ...] = ("posting",),
        x_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        with self.engine.begin() as conn:
            cond = [tweets.c.id == tweet_id, tweets.c.status.in_(from_statuses)]
            if attempt_id is not None:
                cond.append(tweets.c.last_attempt_id == attempt_id)
            done = conn.execute(
                update(tweets).where(and_(*cond)).values(updated_at=now, **values)
            ).rowcount
            if done and attempt_id is not None:
                conn.execute(
                    update(post_attempts)
                    .where(post_attempts.c.attempt_id == attempt_id)
                    .values(finished_at=now, outcome=outcome, x_id=x_id, error=error)
                )
            return bool(done)

    def mark_posted(
        self, tweet_id: int, attempt_id: str | None, x_id: str, *, now: datetime
    ) -> bool:
        """Record X's id. Only the attempt that holds the claim may (or the reconciler).

        Returns False when the row is no longer this attempt's (nothing is changed).
        """
        return self._finish(
            tweet_id,
            attempt_id,
            now=now,
            outcome="posted",
            values={"status": "posted", "x_id": x_id, "posted_at": now, "last_error": None},
            # "queued": a guarded retry re-queued it but nobody claimed it yet; the attempt id
            # still matches, so the late answer wins and the retry never happens.
            from_statuses=("posting", "unknown", "queued"),
            x_id=x_id,
        )

    def release(
        self,
        tweet_id: int,
        attempt_id: str,
        *,
        now: datetime,
        error: str,
        not_before: datetime | None = None,
    ) -> bool:
        """Back to ``queued``: only for attempts known NOT to have reached X."""
        values: dict[str, Any] = {"status": "queued", "last_error": error}
        if not_before is not None:
            values["scheduled_at"] = not_before
        return self._finish(
            tweet_id, attempt_id, now=now, outcome="released", values=values, error=error
        )

    def mark_failed(
        self, tweet_id: int, attempt_id: str | None, *, now: datetime, error: str
    ) -> bool:
        """``failed`` for good (X refused this text); never retried automatically."""
        return self._finish(
            tweet_id,
            attempt_id,
            now=now,
            outcome="failed",
            values={"status": "failed", "last_error": error},
            error=error,
        )

    def mark_unknown(
        self, tweet_id: int, attempt_id: str | None, *, now: datetime, error: str
    ) -> bool:
        """``unknown``: maybe on X, not found; a person decides (or one guarded retry)."""
        return self._finish(
            tweet_id,
            attempt_id,
            now=now,
            outcome="unknown",
            values={"status": "unknown", "last_error": error},
            error=error,
        )

    def requeue_guarded(
        self, tweet_id: int, attempt_id: str | None, *, now: datetime, retries_used: int, error: str
    ) -> bool:
        """One guarded retry: back to ``queued`` after the timeline showed no such post."""
        with self.engine.connect() as c:
            meta_raw: Any = c.execute(
                select(tweets.c.metadata).where(tweets.c.id == tweet_id)
            ).scalar_one()
        meta: dict[str, Any] = dict(meta_raw or {})
        meta["guarded_retries"] = retries_used + 1
        return self._finish(
            tweet_id,
            attempt_id,
            now=now,
            outcome="released",
            values={"status": "queued", "last_error": error, "metadata": meta},
            from_statuses=("posting", "unknown"),
            error=error,
        )

    # --- reading ---------------------------------------------------------------------------
    def stuck_posts(self, account_id: int, *, started_before: datetime) -> list[StuckPost]:
        """Rows in ``posting`` whose claim started before ``started_before``, oldest first."""
        parent = PARENT
        attempt = post_attempts
        with self.engine.connect() as conn:
            conn_rows = conn.execute(
                select(
                    tweets,
                    parent.c.x_id.label("parent_x_id"),
                    attempt.c.send_state.label("attempt_send_state"),
                    attempt.c.sent_at.label("attempt_sent_at"),
                )
                .select_from(
                    tweets.outerjoin(parent, parent.c.id == tweets.c.thread_parent_id).outerjoin(
                        attempt, attempt.c.attempt_id == tweets.c.last_attempt_id
                    )
                )
                .where(
                    tweets.c.environment == self.environment,
                    tweets.c.account_id == account_id,
                    tweets.c.status == "posting",
                    tweets.c.posting_started_at < started_before,
                )
                .order_by(tweets.c.posting_started_at, tweets.c.id)
            ).all()
        rows = [
            StuckPost(
                tweet_id=r.id,
                attempt_id=r.last_attempt_id,
                account_id=r.account_id,
                text=r.text,
                reply_to_x_id=r.parent_x_id,
                posting_started_at=r.posting_started_at,
                attempt_count=r.attempt_count,
                guarded_retries=int((r.metadata or {}).get("guarded_retries", 0)),
                send_state=r.attempt_send_state,
                sent_at=r.attempt_sent_at,
            )
            for r in conn_rows
        ]
        return rows

    def recorded_x_ids(self, account_id: int) -> set[str]:
        """The X ids the account's rows hold: a post on X with one of them is that row's, so a
        lookup by text for another row must not adopt it (``match_own_post``'s ``exclude``)."""
        with self.engine.connect() as conn:
            result = conn.execute(
                select(tweets.c.x_id).where(
                    tweets.c.environment == self.environment,
                    tweets.c.account_id == account_id,
                    tweets.c.x_id.is_not(None),
                )
            )
            return {str(x_id) for (x_id,) in result.all()}

    def status_counts(self, account_id: int | None = None) -> dict[str, int]:
        """How many rows per status (for reports and tests)."""
        query = (
            select(tweets.c.status, func.count())
            .where(tweets.c.environment == self.environment)
            .group_by(tweets.c.status)
        )
        if account_id is not None:
            query = query.where(tweets.c.account_id == account_id)
        with self.engine.connect() as conn:
            return {str(row[0]): int(row[1]) for row in conn.execute(query).all()}

    def rows(self, account_id: int) -> list[dict[str, Any]]:
        """Every row of the account (tests and the crash-matrix report)."""
        with self.engine.connect() as conn:
            result = conn.execute(
                select(tweets)
                .where(tweets.c.environment == self.environment, tweets.c.account_id == account_id)
                .order_by(tweets.c.id)
            )
            return [dict(r) for r in result.mappings().all()]
