"""The one durable claim: every path that takes a post for posting goes through :func:`claim_post`.

    claim_post(
        conn, *, environment, post_id, now, worker,
        account_id=None, whole_thread=False, require_approval=False,
        send_mark=False, gate=None, attempt_id=None,
    ) -> ClaimOutcome

Call it inside the caller's write transaction (``engine.begin()``; on SQLite that is ``BEGIN
IMMEDIATE``); its writes commit with that transaction, before anything is sent. In order it:

1. takes the per-account claim lock (:func:`lock_account`: a transaction-scoped advisory lock on
   Postgres; SQLite's write lock already serialises claimers);
2. re-reads the row: it must be ``queued`` in ``environment`` (and of ``account_id`` when given),
   a thread part's parent must be ``posted`` with an X id, and with ``require_approval`` a root
   must be ``approved``; otherwise the outcome is ``gone`` (or ``blocked`` for a parent not yet
   posted);
3. asks ``gate(conn, kind)`` (brake, back-off, rate caps: the caller's rules, read in the same
   transaction); a :class:`Blocked` answer makes the outcome ``blocked`` and writes nothing;
4. moves the row (``whole_thread``: the root and every part) from ``queued`` to ``posting`` with a
   new attempt id, and writes one ``post_attempts`` row. ``send_mark=True`` records the attempt
   as ``unsent``: only for callers that commit ``PostingLedger.mark_sending`` before the request
   leaves, since the reconciler re-queues an ``unsent`` attempt without a timeline check.

Callers: :meth:`xbot_assets.posting.ledger.PostingLedger.claim_next_due` (one part at a time,
the posting loop), :meth:`xbot_assets.store.hot.dual.DualStoreManager.claim_post` (the hot
path's tickets) and :meth:`xbot_assets.store.durable.DurableStore.claim_next_due` /
``claim_post`` (a whole thread at once). :func:`claimable_posts` is the one "due and claimable"
query the pickers share (a part only after its parent is on X; parts before new posts).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Select, exists, insert, or_, select, text, update

from xbot_assets.store.durable.errors import InvalidTransitionError
from xbot_assets.store.durable.schema import post_attempts, tweets

PostKind = Literal["post", "reply"]
"""A root (counts against the post caps) or a later thread part (the reply caps)."""


@dataclass(frozen=True)
class Blocked:
    """Why no post may be claimed now (``until``: when to look again, if known)."""

    reason: str
    until: datetime | None = None


Gate = Callable[[Connection, PostKind], Blocked | None]
"""The caller's rules (brake, back-off, caps), asked inside the claim's transaction."""


@dataclass(frozen=True)
class ClaimOutcome:
    """What :func:`claim_post` did.

    ``claimed``: the row (or thread) is ``posting`` under ``attempt_id``; ``blocked``: a rule or
    an unposted parent says not now (``blocked`` holds why); ``gone``: the row is no longer
    claimable (claimed by another worker, settled, not approved, another account's).
    """

    status: Literal["claimed", "blocked", "gone"]
    post_id: int
    kind: PostKind
    attempt_id: str | None = None
    part_ids: tuple[int, ...] = ()
    blocked: Blocked | None = None
    reason: str = ""


def lock_account(conn: Connection, environment: str, account_id: int) -> None:
    """Serialise the claims of one account (Postgres advisory lock until the transaction ends).

    Every claimer takes the same key, so gates that count the account's recent posts see every
    other claim of that account. SQLite needs nothing: ``BEGIN IMMEDIATE`` holds the write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": zlib.crc32(f"xbot-post:{environment}:{account_id}".encode())},
        )


def claimable_posts(environment: str, *columns: Any) -> Select[Any]:
    """Due-order ``queued`` rows of ``environment`` that may be claimed, without a time filter.

    A thread part qualifies only once its parent is ``posted`` with an X id (so a thread resumes
    at its first unposted part and never posts out of order); started threads come first.
    Callers add ``scheduled_at <= now``, the account, a limit and any lock.
    """
    parent = tweets.alias("claim_parent")
    parent_ready = exists(
        select(parent.c.id).where(
            parent.c.id == tweets.c.thread_parent_id,
            parent.c.status == "posted",
            parent.c.x_id.is_not(None),
        )
    )
    return (
        select(*(columns or (tweets,)))
        .where(
            tweets.c.environment == environment,
            tweets.c.status == "queued",
            or_(tweets.c.thread_parent_id.is_(None), parent_ready),
        )
        .order_by(tweets.c.thread_position.desc(), tweets.c.scheduled_at, tweets.c.id)
    )


def claim_post(
    conn: Connection,
    *,
    environment: str,
    post_id: int,
    now: datetime,
    worker: str | None,
    account_id: int | None = None,
    whole_thread: bool = False,
    require_approval: bool = False,
    send_mark: bool = False,
    gate: Gate | None = None,
    attempt_id: str | None = None,
) -> ClaimOutcome:
    """Claim ``post_id`` for posting in the caller's transaction (see the module docstring)."""
    head = conn.execute(
        select(tweets.c.account_id).where(
            tweets.c.id == post_id, tweets.c.environment == environment
        )
    ).first()
    if head is None:
        return ClaimOutcome("gone", post_id, "post", reason="no such post in this environment")
    if account_id is not None and int(head.account_id) != account_id:
        return ClaimOutcome("gone", post_id, "post", reason="ticket names another account")
    lock_account(conn, environment, int(head.account_id))
    row = conn.execute(
        select(
            tweets.c.status,
            tweets.c.account_id,
            tweets.c.thread_parent_id,
            tweets.c.thread_position,
            tweets.c.thread_size,
            tweets.c.approval,
        ).where(tweets.c.id == post_id)
    ).one()
    kind: PostKind = "reply" if int(row.thread_position) > 0 else "post"
    if row.status != "queued":
        return ClaimOutcome("gone", post_id, kind, reason="no longer queued")
    if require_approval and kind == "post" and row.approval != "approved":
        return ClaimOutcome("gone", post_id, kind, reason="waiting for an operator's approval")
    if row.thread_parent_id is not None and not whole_thread:
        parent = conn.execute(
            select(tweets.c.status, tweets.c.x_id).where(tweets.c.id == row.thread_parent_id)
        ).first()
        if parent is None or parent.status != "posted" or parent.x_id is None:
            why = Blocked("thread parent not posted yet")
            return ClaimOutcome("blocked", post_id, kind, blocked=why, reason=why.reason)
    blocked = gate(conn, kind) if gate is not None else None
    if blocked is not None:
        return ClaimOutcome("blocked", post_id, kind, blocked=blocked, reason=blocked.reason)
    ids = [post_id]
    if whole_thread and int(row.thread_size) > 1:
        parts: list[Any] = list(
            conn.execute(
                select(tweets.c.id)
                .where(tweets.c.thread_root_id == post_id, tweets.c.environment == environment)
                .order_by(tweets.c.thread_position)
                .with_for_update()
            ).scalars()
        )
        ids = [int(part_id) for part_id in parts]
    attempt_id = attempt_id or str(uuid.uuid4())
    changed = conn.execute(
        update(tweets)
        .where(tweets.c.id.in_(ids), tweets.c.status == "queued")
        .values(
            status="posting",
            posting_started_at=now,
            attempt_count=tweets.c.attempt_count + 1,
            last_attempt_id=attempt_id,
            last_error=None,
            updated_at=now,
        )
    ).rowcount
    if changed == 0:
        return ClaimOutcome("gone", post_id, kind, reason="no longer queued")
    if changed != len(ids):
        # Someone else holds part of the thread (impossible under the locks): roll back rather
        # than post half a thread.
        raise InvalidTransitionError(f"post {post_id} changed while being claimed: retry the claim")
    conn.execute(
        insert(post_attempts).values(
            environment=environment,
            attempt_id=attempt_id,
            tweet_id=post_id,
            account_id=int(row.account_id),
            worker=worker,
            started_at=now,
            send_state="unsent" if send_mark else None,
        )
    )
    return ClaimOutcome("claimed", post_id, kind, attempt_id=attempt_id, part_ids=tuple(ids))


__all__ = [
    "Blocked",
    "ClaimOutcome",
    "Gate",
    "PostKind",
    "claim_post",
    "claimable_posts",
    "lock_account",
]
