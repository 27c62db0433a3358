"""Posts: enqueueing single posts and threads, reading them, and counting them for the rate caps.

A post's life after the queue (claim, outcomes, attempts) is :mod:`.post_ledger`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Select, func, or_, select, update
from sqlalchemy import exc as sa_exc

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.accounts import account_row
from xbot_assets.store.durable.base import Repository
from xbot_assets.store.durable.errors import (
    DuplicatePostError,
    InvalidInputError,
    PostNotFoundError,
)
from xbot_assets.store.durable.models import Attempt, Post
from xbot_assets.store.durable.validate import (
    valid_arm,
    valid_grace,
    valid_id,
    valid_json_obj,
    valid_limit,
    valid_now,
    valid_opt_float,
    valid_opt_sha256,
    valid_opt_time,
    valid_status,
    valid_str,
    valid_time,
)
from xbot_assets.store.hot.dedup import content_hash

MAX_THREAD_PARTS = 25
RECENT_TEXTS_CAP = 5000
"""At most this many texts are compared (a week of 25 posts a day in 20-part threads)."""
RECENT_ROWS_AT_LEAST = 50
"""The guard's comparison set before the window was added (thread parts count as rows)."""


def recent_texts_query(
    environment: str,
    account_id: int,
    since: datetime,
    *,
    exclude_ids: Sequence[int] = (),
    statuses: Sequence[str] = ("queued", "posting", "posted", "unknown"),
) -> Select[tuple[str]]:
    """The texts a new post must not duplicate, newest first: the account's posts queued, in
    flight, posted or in doubt that were queued or posted since ``since`` (X's duplicate
    window, ``content.safety.DUPLICATE_WINDOW``), and never fewer than the
    :data:`RECENT_ROWS_AT_LEAST` newest of them (the audience remembers a repeat for longer
    than X refuses one). ``exclude_ids``: the posts being checked themselves; ``statuses``: e.g.
    only those that may be on X. Every caller that checks for duplicates reads this one query."""
    t = s.tweets
    mine = (
        t.c.environment == environment,
        t.c.account_id == account_id,
        t.c.status.in_(list(statuses)),
        t.c.id.not_in(list(exclude_ids)),
    )
    nth_newest = (
        select(t.c.created_at)
        .where(*mine)
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .offset(RECENT_ROWS_AT_LEAST - 1)
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(t.c.text)
        .where(
            *mine,
            or_(
                t.c.created_at >= since,
                t.c.posted_at >= since,
                t.c.created_at >= func.coalesce(nth_newest, since),
            ),
        )
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(RECENT_TEXTS_CAP)
    )


COUNTED_STATUSES: tuple[str, ...] = ("posting", "posted", "unknown")
"""Posts that may have reached X: what rate caps count."""


def thread_part_hash(root_hash: str, position: int) -> str:
    """The content hash of thread part ``position`` (>= 1): derived from the whole thread's hash.

    A thread's root carries the hash of all its parts' text; parts carry this derived hash, so a
    part never collides with a single post of the same words.
    """
    return hashlib.sha256(f"{root_hash}/part/{position}".encode()).hexdigest()


class _PostOptions(NamedTuple):
    """What a single post and a thread share when queued (checked in ``_enqueue``)."""

    arm: Any
    format: Any
    topic: Any
    scheduled_at: Any
    score: Any
    scores: Any
    metadata: Any
    now: Any


class PostRepository(Repository):
    """Queue posts and threads; read posts, attempts and rate-cap counts."""

    def enqueue_post(
        self,
        account_id: int,
        text: str,
        *,
        arm: str | None = None,
        format: str | None = None,
        topic: str | None = None,
        scheduled_at: datetime | None = None,
        score: float | None = None,
        scores: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        content_hash_override: str | None = None,
        now: datetime | None = None,
    ) -> Post:
        """Queue one post (state ``queued``), due at ``scheduled_at`` (default: ``now``).

        Raises:
            DuplicatePostError: the same text (by content hash) exists for this account;
                ``existing_id`` names it.
            AccountNotFoundError, InvalidInputError: nothing is written.
        """
        options = _PostOptions(arm, format, topic, scheduled_at, score, scores, metadata, now)
        return self._enqueue(account_id, [text], options, root_hash=content_hash_override)[0]

    def enqueue_thread(
        self,
        account_id: int,
        parts: Sequence[str],
        *,
        arm: str | None = None,
        format: str | None = "thread",
        topic: str | None = None,
        scheduled_at: datetime | None = None,
        score: float | None = None,
        scores: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[Post]:
        """Queue a thread: one row per part, root first, all in one transaction.

        The root carries the content hash of the whole thread; each part replies to the one
        before (``thread_parent_id``) and all share ``thread_root_id``. Only the root is ever
        claimed; claiming it claims every part.
        """
        if isinstance(parts, str) or not isinstance(parts, Sequence):
            raise InvalidInputError("parts must be a list of strings, one per thread part")
        if not 2 <= len(parts) <= MAX_THREAD_PARTS:
            raise InvalidInputError(
                f"a thread needs 2 to {MAX_THREAD_PARTS} parts (got {len(parts)}): use "
                "enqueue_post for a single post"
            )
        options = _PostOptions(arm, format, topic, scheduled_at, score, scores, metadata, now)
        return self._enqueue(account_id, list(parts), options, root_hash=None)

    def _enqueue(
        self,
        account_id: int,
        texts: list[str],
        options: _PostOptions,
        *,
        root_hash: str | None,
    ) -> list[Post]:
        arm, format, topic, scheduled_at, score, scores, metadata, now = options
        account_id = valid_id("account_id", account_id)
        texts = [
            self._text(f"text of part {i}" if len(texts) > 1 else "text", t)
            for i, t in enumerate(texts)
        ]
        arm, format, topic = valid_arm(arm, format, topic)
        now = valid_now(now)
        due = valid_opt_time("scheduled_at", scheduled_at) or now
        score = valid_opt_float("score", score)
        scores_obj = valid_json_obj("scores", scores)
        meta = valid_json_obj("metadata", metadata)
        root_hash = valid_opt_sha256("content_hash_override", root_hash)
        joined = " ".join(texts)
        root_hash = root_hash or content_hash(joined)
        size = len(texts)
        t = s.tweets
        try:
            with self._tx() as conn:
                account_row(conn, self.environment, account_id)
                existing = find_hash(conn, self.environment, account_id, root_hash)
                if existing is not None:
                    raise DuplicatePostError(
                        f"post {existing} already has this text for account {account_id}: "
                        "pick another candidate (the store never posts the same text twice)",
                        existing_id=existing,
                    )
                ids: list[int] = []
                for position, body in enumerate(texts):
                    values = {
                        "environment": self.environment,
                        "account_id": account_id,
                        "text": body,
                        "content_hash": root_hash
                        if position == 0
                        else thread_part_hash(root_hash, position),
                        "status": "queued",
                        "thread_root_id": ids[0] if ids else None,
                        "thread_parent_id": ids[-1] if ids else None,
                        "thread_position": position,
                        "thread_size": size,
                        "arm": arm,
                        "format": format,
                        "topic": topic,
                        "score": score,
                        "scores": scores_obj,
                        "scheduled_at": due,
                        "attempt_count": 0,
                        "metadata": meta,
                        "created_at": now,
                        "updated_at": now,
                    }
                    new_id: Any = conn.execute(
                        t.insert().values(**values).returning(t.c.id)
                    ).scalar_one()
                    ids.append(int(new_id))
                if size > 1:
                    conn.execute(update(t).where(t.c.id == ids[0]).values(thread_root_id=ids[0]))
                rows = conn.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.thread_position))
                return [Post(**r._mapping) for r in rows]
        except sa_exc.IntegrityError:
            # Lost a race with another writer of the same text: report it like the pre-check.
            with self._tx(write=False) as conn:
                existing = find_hash(conn, self.environment, account_id, root_hash)
            raise DuplicatePostError(
                f"post {existing} already has this text for account {account_id}: pick "
                "another candidate",
                existing_id=existing,
            ) from None

    def find_post_by_hash(self, account_id: int, digest: str) -> Post | None:
        """The post of this account with this content hash (see ``dedup.content_hash``)."""
        account_id = valid_id("account_id", account_id)
        digest = valid_str("content_hash", digest, 64)
        t = s.tweets
        row = self._first(t, t.c.account_id == account_id, t.c.content_hash == digest)
        return None if row is None else Post(**row._mapping)

    def content_hashes(self, account_id: int) -> frozenset[str]:
        """Every content hash the account has a post for, in any state (queued, failed, a
        thread's parts): the texts its unique key refuses (``dedup.content_hash``), in one query.

        The refill reads it once per slot and checks each candidate against it as the candidate
        is generated (:func:`~xbot_assets.engine.decide.stored_texts`), where asking
        :meth:`find_post_by_hash` cost a query per candidate. A set, not a batched ``IN`` query
        after generation, because the generator must know a candidate is refused before it
        writes the next one (it avoids repeating accepted texts only). 64 bytes of digest a post
        read, about 160 bytes a post as the set in memory: an account with 10,000 posts reads
        640 kB a slot in about 15 ms, one with 100,000 posts 6.4 MB in about 130 ms (an index-only
        read on both engines; ``benchmarks/durable_store.py --content-hashes``).

        Raises:
            InvalidInputError: ``account_id`` is not an id; nothing is read.
        """
        account_id = valid_id("account_id", account_id)
        t = s.tweets
        with self._tx(write=False) as conn:
            rows: Iterable[str] = conn.execute(
                select(t.c.content_hash).where(
                    t.c.environment == self.environment, t.c.account_id == account_id
                )
            ).scalars()
            return frozenset(str(digest) for digest in rows)

    def get_post(self, post_id: int) -> Post:
        """The post (or thread part) with this id. Raises :class:`PostNotFoundError`."""
        post_id = valid_id("post_id", post_id)
        with self._tx(write=False) as conn:
            return Post(**post_row(conn, self.environment, post_id)._mapping)

    def get_thread(self, root_id: int) -> list[Post]:
        """Every part of the thread rooted at ``root_id`` (or just the post, if single)."""
        root = self.get_post(root_id)
        if root.thread_root_id is None:
            return [root]
        t = s.tweets
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(t)
                .where(t.c.environment == self.environment, t.c.thread_root_id == root.id)
                .order_by(t.c.thread_position)
            )
            return [Post(**r._mapping) for r in rows]

    def list_posts(
        self,
        account_id: int,
        *,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Post]:
        """An account's posts (newest ``created_at`` first), optionally of one status."""
        account_id = valid_id("account_id", account_id)
        if status is not None:
            status = valid_status(status)
        since = valid_opt_time("since", since)
        limit = valid_limit(limit)
        t = s.tweets
        q = select(t).where(t.c.environment == self.environment, t.c.account_id == account_id)
        if status is not None:
            q = q.where(t.c.status == status)
        if since is not None:
            q = q.where(t.c.created_at >= since)
        q = q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        with self._tx(write=False) as conn:
            return [Post(**r._mapping) for r in conn.execute(q)]

    def recent_texts(self, account_id: int, *, since: datetime) -> list[str]:
        """Texts of the account's posts queued, in flight or posted since ``since``: what a new
        post must not duplicate (newest first; see :func:`recent_texts_query`)."""
        query = recent_texts_query(
            self.environment, valid_id("account_id", account_id), valid_time("since", since)
        )
        with self._tx(write=False) as conn:
            return [str(text) for text in conn.execute(query).scalars()]

    def count_posts(
        self,
        account_id: int,
        *,
        since: datetime,
        until: datetime | None = None,
        roots_only: bool = False,
    ) -> int:
        """Posts of the account that may have reached X in ``[since, until)``.

        Counts ``posted`` (by ``posted_at``) and ``posting``/``unknown`` (by when posting
        started): a post in doubt counts against the caps. ``roots_only`` counts a thread once.
        """
        account_id = valid_id("account_id", account_id)
        since = valid_time("since", since)
        until = valid_opt_time("until", until)
        t = s.tweets
        when = func.coalesce(t.c.posted_at, t.c.posting_started_at)
        q = select(func.count()).where(
            t.c.environment == self.environment,
            t.c.account_id == account_id,
            t.c.status.in_(COUNTED_STATUSES),
            when >= since,
        )
        if until is not None:
            q = q.where(when < until)
        if roots_only:
            q = q.where(t.c.thread_position == 0)
        with self._tx(write=False) as conn:
            return int(conn.execute(q).scalar_one())

    def last_post_at(self, account_id: int) -> datetime | None:
        """When the account last posted (or started posting): for the minimum spacing."""
        account_id = valid_id("account_id", account_id)
        t = s.tweets
        when = func.max(func.coalesce(t.c.posted_at, t.c.posting_started_at))
        with self._tx(write=False) as conn:
            value = conn.execute(
                select(when).where(
                    t.c.environment == self.environment,
                    t.c.account_id == account_id,
                    t.c.status.in_(COUNTED_STATUSES),
                )
            ).scalar()
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns aggregates of timestamps as text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def stale_posting(
        self,
        *,
        older_than: timedelta,
        now: datetime | None = None,
        account_id: int | None = None,
    ) -> list[Post]:
        """Posts left in ``posting`` for longer than ``older_than``: the reconciler's work list."""
        older_than = valid_grace("older_than", older_than)
        now = valid_now(now)
        t = s.tweets
        q = select(t).where(
            t.c.environment == self.environment,
            t.c.status == "posting",
            t.c.posting_started_at < now - older_than,
        )
        if account_id is not None:
            q = q.where(t.c.account_id == valid_id("account_id", account_id))
        q = q.order_by(t.c.posting_started_at, t.c.id)
        with self._tx(write=False) as conn:
            return [Post(**r._mapping) for r in conn.execute(q)]

    def list_attempts(self, post_id: int) -> list[Attempt]:
        """Every claim of this post (for a thread: of its root), oldest first."""
        post_id = valid_id("post_id", post_id)
        a = s.post_attempts
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(a)
                .where(a.c.environment == self.environment, a.c.tweet_id == post_id)
                .order_by(a.c.started_at, a.c.id)
            )
            return [Attempt(**r._mapping) for r in rows]


def post_row(conn: Connection, environment: str, post_id: int, *, lock: bool = False) -> Row[Any]:
    """The post row (``lock``: ``FOR UPDATE``). Raises :class:`PostNotFoundError`."""
    t = s.tweets
    q = select(t).where(t.c.environment == environment, t.c.id == post_id)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise PostNotFoundError(
            f"no post with id {post_id} in {environment}: use the id enqueue_post "
            "or claim_next_due returned"
        )
    return row


def find_hash(conn: Connection, environment: str, account_id: int, digest: str) -> int | None:
    """The id of the account's post with this content hash, if any."""
    t = s.tweets
    found = conn.execute(
        select(t.c.id).where(
            t.c.environment == environment,
            t.c.account_id == account_id,
            t.c.content_hash == digest,
        )
    ).scalar()
    return None if found is None else int(found)


__all__ = [
    "COUNTED_STATUSES",
    "MAX_THREAD_PARTS",
    "PostRepository",
    "find_hash",
    "post_row",
    "thread_part_hash",
]
