"""Post tickets of the hot path: ``pending_posts`` hints (or a durable poll when Redis is down) and
the claim of one ticket, which is the durable store's one claim behind Redis's fast denials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import redis
from sqlalchemy import Connection, and_, select, update

from xbot_assets.store.durable.claim import Blocked, claim_post, claimable_posts
from xbot_assets.store.durable.schema import post_attempts, tweets
from xbot_assets.store.hot.brake import read_durable_brake
from xbot_assets.store.hot.dual_core import ON_X_STATUSES, DualCore
from xbot_assets.store.hot.ratelimit import Decision, PostKind, check_post_caps
from xbot_assets.store.hot.streams import Message, Priority
from xbot_assets.store.timebase import as_utc


@dataclass(frozen=True)
class PostTicket:
    """A post a worker may try to claim; ``message`` is set when it came from the stream."""

    tweet_id: int
    account_id: int
    message: Message | None = None
    thread_position: int = 0


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of :meth:`DualStoreManager.claim_post`.

    ``status``: ``claimed`` (post now; ``attempt_id`` set), ``blocked`` (not now: brake or a cap;
    ``reason`` and maybe ``retry_after``), ``gone`` (no longer queued: someone else took it).
    """

    status: Literal["claimed", "blocked", "gone"]
    tweet_id: int
    attempt_id: str | None = None
    reason: str = ""
    retry_after: timedelta | None = None
    kind: PostKind = "post"


class PostTickets(DualCore):
    """Hint, poll, claim and settle post tickets."""

    def enqueue_post(
        self,
        tweet_id: int,
        account_id: int,
        *,
        priority: Priority = Priority.NORMAL,
        thread_position: int = 0,
        due: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Hint a worker that a ``queued`` row exists (call after the row is committed); with
        ``due`` after ``now`` (default: the manager's clock) the hint waits in the delayed set
        until then (the post's slot).

        Returns False if Redis is down: harmless, workers then poll the durable store.
        """
        if self.posts_queue is None or not self.redis_available():
            return False
        payload = {
            "tweet_id": int(tweet_id),
            "account_id": int(account_id),
            "thread_position": int(thread_position),
        }
        try:
            if due is not None and as_utc(due) > as_utc(now or self.clock()):
                self.posts_queue.enqueue_at(
                    payload, as_utc(due), idempotency_key=f"tweet:{tweet_id}", priority=priority
                )
            else:
                self.posts_queue.enqueue(
                    payload, idempotency_key=f"tweet:{tweet_id}", priority=priority
                )
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return False
        return True

    def next_posts(self, count: int = 10, *, now: datetime | None = None) -> list[PostTicket]:
        """Posts to try next: from ``pending_posts`` (tickets of the delayed set due at ``now``
        promoted first), or (Redis down or the stream empty, e.g. after a flush) by polling the
        durable store for rows due at ``now`` (default: the manager's clock; the posting service
        passes its own, which decides the claim)."""
        if self.posts_queue is not None and self.redis_available():
            try:
                if self._reclaim_due(self.posts_queue):
                    self.posts_queue.reclaim_stuck(self.consumer)
                messages = self.posts_queue.read(self.consumer, count=count, now=now)
            except redis.RedisError as exc:
                self._redis_failed(exc)
                messages = []
            if messages:
                return [
                    PostTicket(
                        int(m.payload["tweet_id"]),
                        int(m.payload["account_id"]),
                        m,
                        int(m.payload.get("thread_position", 0)),
                    )
                    for m in messages
                ]
        return self.poll_due_posts(count, now=now)

    def poll_due_posts(self, count: int = 10, *, now: datetime | None = None) -> list[PostTicket]:
        """Due ``queued`` rows straight from the durable store (the fallback path).

        Only claimable rows (:func:`claimable_posts`, the posting ledger's rule): a thread part
        whose parent is not ``posted`` with an X id is left out, else enough of them, read first,
        would fill every poll and no post would ever be claimed (issue 17 item 3).
        """
        query = (
            claimable_posts(
                self.environment, tweets.c.id, tweets.c.account_id, tweets.c.thread_position
            )
            .where(tweets.c.scheduled_at <= (now or self.clock()))
            .limit(count)
        )
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                rows = conn.execute(query).all()
        return [
            PostTicket(int(r.id), int(r.account_id), None, int(r.thread_position)) for r in rows
        ]

    def settle(
        self, ticket: PostTicket, result: ClaimResult, *, now: datetime | None = None
    ) -> None:
        """Finish a ticket's stream entry: acknowledge it (claimed or gone), or put it back
        until the cap allows (blocked: ``retry_after`` from ``now``, default the manager's
        clock; the posting service passes its own). Redis trouble here is harmless: the row
        decides."""
        if ticket.message is None or self.posts_queue is None:
            return
        try:
            if result.status == "blocked":
                wait = result.retry_after or timedelta(minutes=1)
                self.posts_queue.defer(ticket.message, (now or self.clock()) + wait)
            else:  # the row decides from here: no "done" mark, a re-queued row may come back
                self.posts_queue.ack([ticket.message])
        except redis.RedisError as exc:
            self._redis_failed(exc)

    def claim_post(self, post: PostTicket | int, *, worker: str | None = None) -> ClaimResult:
        """Claim one ``queued`` post for posting, after every gate, in one durable transaction.

        Args:
            post: a ticket from :meth:`next_posts` (saves a read), or a ``tweets.id``.
            worker: recorded in ``post_attempts`` (default: this manager's consumer name).

        Order: the brake mirror and the Redis counters (fast denials only), then inside the
        transaction (a per-account advisory lock on Postgres, the same one the posting ledger
        takes; ``BEGIN IMMEDIATE`` on SQLite): the row is still ``queued``, a thread part's parent
        is posted, the brake row is off, and :func:`check_post_caps` passes on the durable post
        times around now. Only then the row moves to ``posting`` with a new attempt id and a
        ``post_attempts`` row; the Redis counters are bumped after the commit.
        """
        now = self.clock()
        if isinstance(post, PostTicket):
            tweet_id, account_id, position = post.tweet_id, post.account_id, post.thread_position
        else:
            tweet_id = int(post)
            with self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="DEFERRED")
                with conn.begin():
                    head = conn.execute(
                        select(tweets.c.account_id, tweets.c.thread_position).where(
                            tweets.c.id == tweet_id, tweets.c.environment == self.environment
                        )
                    ).first()
            if head is None:
                return ClaimResult("gone", tweet_id, reason="no such post in this environment")
            account_id, position = int(head.account_id), int(head.thread_position)
        kind: PostKind = "reply" if position > 0 else "post"
        if self.redis_available() and self.brake.status().engaged:
            return ClaimResult("blocked", tweet_id, reason="emergency brake engaged", kind=kind)
        limiter = self.limiter(account_id)
        fast = limiter.precheck_post(kind, now) if self.redis_available() else Decision(True)
        if not fast:
            return ClaimResult(
                "blocked", tweet_id, reason=fast.reason, retry_after=fast.retry_after, kind=kind
            )
        with self.engine.begin() as conn:
            result = self._claim_in(conn, tweet_id, account_id, kind, now, worker)
        if result.status == "claimed" and self.redis_available():
            limiter.record_post(result.kind, now)
        return result

    def _claim_in(
        self,
        conn: Connection,
        tweet_id: int,
        account_id: int,
        kind: PostKind,
        now: datetime,
        worker: str | None,
    ) -> ClaimResult:
        """The store's one durable claim, gated by the durable brake row and the caps counted
        on the durable post times (Redis only ever denied early, in :meth:`claim_post`)."""

        def gates(c: Connection, claim_kind: PostKind) -> Blocked | None:
            brake = read_durable_brake(c, self.environment)
            if brake.engaged:
                return Blocked(f"emergency brake engaged: {brake.reason}")
            posts, replies = self.durable_post_times(c, account_id, now)
            decision = check_post_caps(claim_kind, now, posts, replies, self.caps)
            if decision:
                return None
            until = None if decision.retry_after is None else now + decision.retry_after
            return Blocked(decision.reason or "rate cap reached", until)

        outcome = claim_post(
            conn,
            environment=self.environment,
            post_id=tweet_id,
            now=now,
            worker=worker or self.consumer,
            account_id=account_id,
            gate=gates,
        )
        if outcome.status == "claimed":
            return ClaimResult(
                "claimed", tweet_id, attempt_id=outcome.attempt_id, kind=outcome.kind
            )
        if outcome.status == "blocked":
            until = outcome.blocked.until if outcome.blocked is not None else None
            return ClaimResult(
                "blocked",
                tweet_id,
                reason=outcome.reason,
                retry_after=None if until is None else until - now,
                kind=outcome.kind,
            )
        return ClaimResult("gone", tweet_id, reason=outcome.reason, kind=outcome.kind)

    def durable_post_times(
        self, conn: Connection, account_id: int, at: datetime
    ) -> tuple[list[datetime], list[datetime]]:
        """Times of the account's posts and replies on X within the caps' look-around of ``at``
        (``posted_at``, else ``posting_started_at``), read from the durable store."""
        span = self.caps.lookaround
        when_posted, when_started = tweets.c.posted_at, tweets.c.posting_started_at
        rows = conn.execute(
            select(when_posted, when_started, tweets.c.thread_position)
            .where(
                tweets.c.environment == self.environment,
                tweets.c.account_id == account_id,
                tweets.c.status.in_(ON_X_STATUSES),
                and_(
                    when_started.is_not(None) | when_posted.is_not(None),
                ),
            )
            .where(
                ((when_started >= at - span) & (when_started <= at + span))
                | ((when_posted >= at - span) & (when_posted <= at + span))
            )
        ).all()
        posts: list[datetime] = []
        replies: list[datetime] = []
        for row in rows:
            moment: datetime = row.posted_at or row.posting_started_at
            (replies if int(row.thread_position) > 0 else posts).append(moment)
        return posts, replies

    def record_posted(self, tweet_id: int, attempt_id: str, x_id: str) -> bool:
        """Record a claimed post as ``posted`` (compare-and-set on the attempt id).

        The posting ledger's ``mark_posted`` is the full version; this one serves the hot path's
        own workers and tests.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(tweets)
                .where(
                    tweets.c.id == tweet_id,
                    tweets.c.status == "posting",
                    tweets.c.last_attempt_id == attempt_id,
                )
                .values(status="posted", x_id=x_id, posted_at=now, updated_at=now)
            ).rowcount
            if done == 1:
                conn.execute(
                    update(post_attempts)
                    .where(post_attempts.c.attempt_id == attempt_id)
                    .values(finished_at=now, outcome="posted", x_id=x_id)
                )
        return done == 1
