"""The durable store: the truth of the system, on SQLite (embedded) or Postgres (Supabase).

Open it with :meth:`DurableStore.from_settings` (or :meth:`DurableStore.from_url`); both check
the schema version first (see :mod:`xbot_assets.store.durable.guard`) and raise
:class:`~xbot_assets.store.durable.errors.SchemaError` when the store needs ``xbot migrate``.

One store object serves one environment: every row it writes carries that environment and
every query filters on it. On Postgres the connection additionally runs under the
environment's non-owner role (``xbot_<environment>``), so forced row-level security keeps
staging and production apart even if a query forgot the filter. Never give the bot a
Supabase ``service_role`` (or any superuser/BYPASSRLS) connection: such roles ignore row-level
security entirely.

Every method validates its input before touching the database and runs in one transaction, so
bad input raises a :class:`~xbot_assets.store.durable.errors.StoreError` subclass and changes
nothing.

Every write that stamps a time takes a keyword-only ``now`` (the wall clock when omitted): the
caller's clock, so a run on a simulated clock (the main job) writes simulated times only and the
warehouse's ``updated_at``/``created_at`` watermarks stay monotonic. Writes that already receive
the event's own time keep it in its own column (``posted_at``, ``occurred_at``, ``recorded_at``);
``now`` is when the row was written.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    func,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.engine import make_engine, normalise_url
from xbot_assets.store.durable.errors import (
    AccountNotFoundError,
    CandidateNotFoundError,
    DuplicatePostError,
    InvalidInputError,
    InvalidTransitionError,
    PostNotFoundError,
    StoreConfigError,
    StoreUnavailableError,
)
from xbot_assets.store.durable.models import (
    Account,
    Attempt,
    AuditEvent,
    Candidate,
    CandidateInput,
    Claim,
    DailySummary,
    HealthRecord,
    MetricSnapshot,
    Post,
)
from xbot_assets.store.hot.dedup import content_hash

if TYPE_CHECKING:
    from xbot_assets.config import Settings

MAX_TEXT_CHARS = 25_000
"""The longest text the store keeps (X's limit for its longest posts). The 280-weighted-character
limit of a standard account is the content layer's check, not the store's."""
MAX_THREAD_PARTS = 25
MAX_BATCH_ROWS = 500
"""Rows per multi-row INSERT statement (well under SQLite's bound-parameter limit)."""
COUNTED_STATUSES: tuple[str, ...] = ("posting", "posted", "unknown")
"""Posts that may have reached X: what rate caps count."""
HORIZON_DELTAS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "72h": timedelta(hours=72),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_HANDLE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")

DbRole = str | Literal["auto"] | None


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def thread_part_hash(root_hash: str, position: int) -> str:
    """The content hash of thread part ``position`` (>= 1): derived from the whole thread's hash.

    A thread's root carries the hash of all its parts' text; parts carry this derived hash, so a
    part never collides with a single post of the same words.
    """
    return hashlib.sha256(f"{root_hash}/part/{position}".encode()).hexdigest()


class DurableStore:
    """Repositories over the durable store for one environment.

    Args:
        engine: an engine made by :func:`xbot_assets.store.durable.engine.make_engine`.
        environment: ``local``, ``staging`` or ``production``: stamped on and filtered by
            every row.
        max_text_chars: the longest post or candidate text accepted.
    """

    def __init__(
        self, engine: Engine, environment: str, *, max_text_chars: int = MAX_TEXT_CHARS
    ) -> None:
        if environment not in s.ENVIRONMENTS:
            raise StoreConfigError(
                f"unknown environment {environment!r}: use one of {', '.join(s.ENVIRONMENTS)}"
            )
        self.engine = engine
        self.environment = environment
        self.max_text_chars = max_text_chars
        self.dialect = engine.dialect.name

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls, settings: Settings, *, check_schema: bool = True, db_role: DbRole = "auto"
    ) -> DurableStore:
        """Open the store the settings name (``settings.resolved_database_url``).

        The default SQLite file lives under ``settings.xbot_home`` (its folder is created).
        """
        return cls.from_url(
            settings.resolved_database_url,
            environment=settings.app_env,
            check_schema=check_schema,
            db_role=db_role,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        environment: str = "local",
        check_schema: bool = True,
        db_role: DbRole = "auto",
    ) -> DurableStore:
        """Open the store at ``url`` for ``environment``.

        Args:
            url: ``sqlite:///path`` or ``postgresql://user:password@host:port/db``.
            environment: the environment whose rows this store reads and writes.
            check_schema: raise :class:`SchemaError` unless the store is at this xbot's head
                migration (default; only ``xbot migrate`` and tests turn it off).
            db_role: Postgres only. ``"auto"`` (default): ``SET ROLE xbot_<environment>`` on
                every connection, so row-level security applies; a role name: that role;
                ``None``: act as the login user (migrations, administration).
        """
        if environment not in s.ENVIRONMENTS:
            raise StoreConfigError(
                f"unknown environment {environment!r}: use one of {', '.join(s.ENVIRONMENTS)}"
            )
        parsed = normalise_url(url)
        if check_schema:
            from xbot_assets.store.durable.guard import require_current_schema_at

            require_current_schema_at(url)
        role: str | None = None
        if parsed.get_backend_name() == "postgresql":
            role = f"xbot_{environment}" if db_role == "auto" else db_role
        engine = make_engine(parsed, db_role=role, pooled=True)
        store = cls(engine, environment)
        if parsed.get_backend_name() == "postgresql":
            store._check_role(role)
        return store

    def _check_role(self, role: str | None) -> None:
        """Connect once: the role must be usable, and outside ``local`` it must not bypass RLS."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles "
                        "WHERE rolname = current_user"
                    )
                ).one()
                user, bypasses = str(row[0]), bool(row[1])
        except sa_exc.DBAPIError as exc:
            self.engine.dispose()
            detail = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise StoreConfigError(
                f"cannot act as the database role {role!r} ({detail}): run `xbot migrate` as "
                f"the database owner to create it, then `GRANT {role} TO <login user>` "
                "(see xbot_assets/store/README.md)"
            ) from None
        if bypasses and self.environment != "local":
            self.engine.dispose()
            raise StoreConfigError(
                f"the durable store connection acts as {user!r}, a superuser or BYPASSRLS role "
                f"that ignores row-level security: for {self.environment} the bot must act as "
                f"xbot_{self.environment} (leave db_role='auto'; never use Supabase service_role)"
            )

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> DurableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -----------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction; SQLite write transactions take the write lock up front."""
        try:
            with self.engine.connect() as conn:
                if not write:
                    conn = conn.execution_options(sqlite_begin="DEFERRED")
                with conn.begin():
                    yield conn
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            detail = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            raise StoreUnavailableError(
                f"the durable store did not answer ({detail}): check that the database runs "
                "and DATABASE_URL points at it; nothing was written"
            ) from None

    def _insert(self, table: Any) -> Any:
        """A dialect-specific INSERT (for ON CONFLICT clauses)."""
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    # --- accounts ---------------------------------------------------------------------------
    def ensure_account(
        self,
        handle: str,
        *,
        x_user_id: str | None = None,
        display_name: str | None = None,
        timezone: str = "UTC",
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Account:
        """Return the account with ``handle``, creating it if missing.

        Given non-None fields update an existing account (e.g. an X user id learnt later);
        ``timezone`` is only used when creating it. Safe when several processes call it at once.
        """
        handle = _handle(handle)
        x_user_id = _opt_str("x_user_id", x_user_id, 32)
        display_name = _opt_str("display_name", display_name, 128)
        timezone = _str("timezone", timezone, 64)
        meta = _json_obj("metadata", metadata)
        now = _now(now)
        t = s.accounts
        with self._tx() as conn:
            # ON CONFLICT DO NOTHING: two processes ensuring the same account both succeed.
            insert = self._insert(t).values(
                environment=self.environment,
                handle=handle,
                x_user_id=x_user_id,
                display_name=display_name,
                timezone=timezone,
                active=True,
                metadata=meta,
                created_at=now,
                updated_at=now,
            )
            conn.execute(
                insert.on_conflict_do_nothing(index_elements=[t.c.environment, t.c.handle])
            )
            mine = select(t).where(t.c.environment == self.environment, t.c.handle == handle)
            row = conn.execute(mine).one()
            changes: dict[str, Any] = {}
            if x_user_id is not None and x_user_id != row.x_user_id:
                changes["x_user_id"] = x_user_id
            if display_name is not None and display_name != row.display_name:
                changes["display_name"] = display_name
            if metadata is not None and meta != row.metadata:
                changes["metadata"] = meta
            if changes:
                conn.execute(update(t).where(t.c.id == row.id).values(**changes, updated_at=now))
            found = conn.execute(mine).one()
        return Account(**found._mapping)

    def get_account(self, account_id: int) -> Account:
        """The account with this id. Raises :class:`AccountNotFoundError`."""
        account_id = _id("account_id", account_id)
        with self._tx(write=False) as conn:
            return Account(**self._account_row(conn, account_id)._mapping)

    def get_account_by_handle(self, handle: str) -> Account:
        """The account with this handle. Raises :class:`AccountNotFoundError`."""
        handle = _handle(handle)
        t = s.accounts
        with self._tx(write=False) as conn:
            row = conn.execute(
                select(t).where(t.c.environment == self.environment, t.c.handle == handle)
            ).first()
        if row is None:
            raise AccountNotFoundError(
                f"no account {handle!r} in {self.environment}: create it with ensure_account"
            )
        return Account(**row._mapping)

    def list_accounts(self, *, active_only: bool = True) -> list[Account]:
        """Every account of this environment, oldest first."""
        t = s.accounts
        q = select(t).where(t.c.environment == self.environment).order_by(t.c.id)
        if active_only:
            q = q.where(t.c.active.is_(True))
        with self._tx(write=False) as conn:
            return [Account(**r._mapping) for r in conn.execute(q)]

    def _account_row(self, conn: Connection, account_id: int) -> Row[Any]:
        t = s.accounts
        row = conn.execute(
            select(t).where(t.c.environment == self.environment, t.c.id == account_id)
        ).first()
        if row is None:
            raise AccountNotFoundError(
                f"no account with id {account_id} in {self.environment}: create it with "
                "ensure_account(handle) and use the id it returns"
            )
        return row

    # --- posts: enqueue ---------------------------------------------------------------------
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
        posts = self._enqueue(
            account_id,
            [text],
            arm=arm,
            format=format,
            topic=topic,
            scheduled_at=scheduled_at,
            score=score,
            scores=scores,
            metadata=metadata,
            root_hash=content_hash_override,
            now=now,
        )
        return posts[0]

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
        return self._enqueue(
            account_id,
            list(parts),
            arm=arm,
            format=format,
            topic=topic,
            scheduled_at=scheduled_at,
            score=score,
            scores=scores,
            metadata=metadata,
            root_hash=None,
            now=now,
        )

    def _enqueue(
        self,
        account_id: int,
        texts: list[str],
        *,
        arm: str | None,
        format: str | None,
        topic: str | None,
        scheduled_at: datetime | None,
        score: float | None,
        scores: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        root_hash: str | None,
        now: datetime | None,
    ) -> list[Post]:
        account_id = _id("account_id", account_id)
        texts = [
            self._text(f"text of part {i}" if len(texts) > 1 else "text", t)
            for i, t in enumerate(texts)
        ]
        arm, format, topic = _arm(arm, format, topic)
        now = _now(now)
        due = _opt_time("scheduled_at", scheduled_at) or now
        score = _opt_float("score", score)
        scores_obj = _json_obj("scores", scores)
        meta = _json_obj("metadata", metadata)
        if root_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", str(root_hash)):
            raise InvalidInputError("content_hash_override must be a 64-character hex SHA-256")
        joined = " ".join(texts)
        root_hash = root_hash or content_hash(joined)
        size = len(texts)
        t = s.tweets
        try:
            with self._tx() as conn:
                self._account_row(conn, account_id)
                existing = self._find_hash(conn, account_id, root_hash)
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
                existing = self._find_hash(conn, account_id, root_hash)
            raise DuplicatePostError(
                f"post {existing} already has this text for account {account_id}: pick "
                "another candidate",
                existing_id=existing,
            ) from None

    def _find_hash(self, conn: Connection, account_id: int, digest: str) -> int | None:
        t = s.tweets
        found = conn.execute(
            select(t.c.id).where(
                t.c.environment == self.environment,
                t.c.account_id == account_id,
                t.c.content_hash == digest,
            )
        ).scalar()
        return None if found is None else int(found)

    def find_post_by_hash(self, account_id: int, digest: str) -> Post | None:
        """The post of this account with this content hash (see ``dedup.content_hash``)."""
        account_id = _id("account_id", account_id)
        digest = _str("content_hash", digest, 64)
        t = s.tweets
        with self._tx(write=False) as conn:
            row = conn.execute(
                select(t).where(
                    t.c.environment == self.environment,
                    t.c.account_id == account_id,
                    t.c.content_hash == digest,
                )
            ).first()
        return None if row is None else Post(**row._mapping)

    def get_post(self, post_id: int) -> Post:
        """The post (or thread part) with this id. Raises :class:`PostNotFoundError`."""
        post_id = _id("post_id", post_id)
        with self._tx(write=False) as conn:
            return Post(**self._post_row(conn, post_id)._mapping)

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
        account_id = _id("account_id", account_id)
        if status is not None:
            status = _status(status)
        since = _opt_time("since", since)
        limit = _limit(limit)
        t = s.tweets
        q = select(t).where(t.c.environment == self.environment, t.c.account_id == account_id)
        if status is not None:
            q = q.where(t.c.status == status)
        if since is not None:
            q = q.where(t.c.created_at >= since)
        q = q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        with self._tx(write=False) as conn:
            return [Post(**r._mapping) for r in conn.execute(q)]

    def _post_row(self, conn: Connection, post_id: int, *, lock: bool = False) -> Row[Any]:
        t = s.tweets
        q = select(t).where(t.c.environment == self.environment, t.c.id == post_id)
        if lock:
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise PostNotFoundError(
                f"no post with id {post_id} in {self.environment}: use the id enqueue_post "
                "or claim_next_due returned"
            )
        return row

    # --- posts: claim -----------------------------------------------------------------------
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
        account_id = _id("account_id", account_id)
        now = _now(now)
        worker = _opt_str("worker", worker, 128)
        t = s.tweets
        with self._tx() as conn:
            self._account_row(conn, account_id)
            q = (
                select(t)
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
            row = conn.execute(q).first()
            if row is None:
                return None
            return self._claim_row(conn, row, now=now, worker=worker)

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
        post_id = _id("post_id", post_id)
        now = _now(now)
        worker = _opt_str("worker", worker, 128)
        t = s.tweets
        with self._tx() as conn:
            row = self._post_row(conn, post_id)
            if row.thread_position != 0:
                raise InvalidInputError(
                    f"post {post_id} is part {row.thread_position} of thread "
                    f"{row.thread_root_id}: claim the thread's root instead"
                )
            mine = select(t).where(t.c.id == post_id, t.c.status == "queued")
            if require_approval:
                mine = mine.where(t.c.approval == "approved")
            locked = conn.execute(mine.with_for_update(skip_locked=True)).first()
            if locked is None:
                return None
            return self._claim_row(conn, locked, now=now, worker=worker)

    def _claim_row(
        self, conn: Connection, row: Row[Any], *, now: datetime, worker: str | None
    ) -> Claim | None:
        t = s.tweets
        ids = [row.id]
        if row.thread_size > 1:
            ids = list(
                conn.execute(
                    select(t.c.id)
                    .where(t.c.thread_root_id == row.id, t.c.environment == self.environment)
                    .order_by(t.c.thread_position)
                    .with_for_update()
                ).scalars()
            )
        attempt_id = str(uuid.uuid4())
        changed = conn.execute(
            update(t)
            .where(t.c.id.in_(ids), t.c.status == "queued")
            .values(
                status="posting",
                posting_started_at=now,
                attempt_count=t.c.attempt_count + 1,
                last_attempt_id=attempt_id,
                last_error=None,
                updated_at=now,
            )
        ).rowcount
        if changed != len(ids):
            # Someone else holds part of it (impossible under the locks; refuse rather than
            # post half a thread).
            raise InvalidTransitionError(
                f"post {row.id} changed while being claimed: retry the claim"
            )
        conn.execute(
            s.post_attempts.insert().values(
                environment=self.environment,
                attempt_id=attempt_id,
                tweet_id=row.id,
                account_id=row.account_id,
                worker=worker,
                started_at=now,
            )
        )
        parts = [
            Post(**r._mapping)
            for r in conn.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.thread_position))
        ]
        return Claim(attempt_id=attempt_id, started_at=now, post=parts[0], parts=tuple(parts))

    # --- posts: outcomes --------------------------------------------------------------------
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
        post_id = _id("post_id", post_id)
        x_id = _x_id(x_id)
        attempt_id = _opt_attempt(attempt_id)
        now = _now(now)
        posted_at = _opt_time("posted_at", posted_at) or now
        t = s.tweets
        with self._tx() as conn:
            row = self._post_row(conn, post_id, lock=True)
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
            return Post(**self._post_row(conn, post_id)._mapping)

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
        post_id = _id("post_id", post_id)
        error = self._error_text(error)
        attempt_id = _opt_attempt(attempt_id)
        requeue_at = _opt_time("requeue_at", requeue_at)
        t = s.tweets
        now = _now(now)
        with self._tx() as conn:
            row = self._post_row(conn, post_id, lock=True)
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
            return Post(**self._post_row(conn, post_id)._mapping)

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
        post_id = _id("post_id", post_id)
        reason = self._error_text(reason)
        attempt_id = _opt_attempt(attempt_id)
        now = _now(now)
        t = s.tweets
        with self._tx() as conn:
            row = self._post_row(conn, post_id, lock=True)
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
            return Post(**self._post_row(conn, post_id)._mapping)

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
        post_id = _id("post_id", post_id)
        actor = _str("actor", actor, 128)
        reason = self._error_text(reason)
        now = _now(now)
        due = _opt_time("scheduled_at", scheduled_at) or now
        t = s.tweets
        with self._tx() as conn:
            row = self._post_row(conn, post_id, lock=True)
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
            self._audit(
                conn,
                AuditEvent(
                    event_type="post_requeued",
                    component="store",
                    severity="warning",
                    actor=actor,
                    occurred_at=now,
                    data={"post_id": post_id, "from": row.status, "reason": reason},
                ),
            )
            return Post(**self._post_row(conn, post_id)._mapping)

    def stale_posting(
        self,
        *,
        older_than: timedelta,
        now: datetime | None = None,
        account_id: int | None = None,
    ) -> list[Post]:
        """Posts left in ``posting`` for longer than ``older_than``: the reconciler's work list."""
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInputError(
                "older_than must be a non-negative timedelta (the grace period)"
            )
        now = _now(now)
        t = s.tweets
        q = select(t).where(
            t.c.environment == self.environment,
            t.c.status == "posting",
            t.c.posting_started_at < now - older_than,
        )
        if account_id is not None:
            q = q.where(t.c.account_id == _id("account_id", account_id))
        q = q.order_by(t.c.posting_started_at, t.c.id)
        with self._tx(write=False) as conn:
            return [Post(**r._mapping) for r in conn.execute(q)]

    def list_attempts(self, post_id: int) -> list[Attempt]:
        """Every claim of this post (for a thread: of its root), oldest first."""
        post_id = _id("post_id", post_id)
        a = s.post_attempts
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(a)
                .where(a.c.environment == self.environment, a.c.tweet_id == post_id)
                .order_by(a.c.started_at, a.c.id)
            )
            return [Attempt(**r._mapping) for r in rows]

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

    def _text(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise InvalidInputError(f"{name} is empty: pass the post's text")
        if "\x00" in value:
            raise InvalidInputError(f"{name} contains a NUL character: remove it")
        if len(value) > self.max_text_chars:
            raise InvalidInputError(
                f"{name} has {len(value)} characters, more than the store's limit of "
                f"{self.max_text_chars}: shorten it or split it into a thread"
            )
        return value

    def _error_text(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(
                "the error/reason must be a non-empty string saying what happened"
            )
        return value.replace("\x00", "")[:4000]

    # --- rate caps --------------------------------------------------------------------------
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
        account_id = _id("account_id", account_id)
        since = _time("since", since)
        until = _opt_time("until", until)
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
        account_id = _id("account_id", account_id)
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

    # --- metrics ----------------------------------------------------------------------------
    def upsert_metrics(self, snapshots: Iterable[MetricSnapshot]) -> int:
        """Write metric snapshots, one per post and horizon; replays are harmless.

        A snapshot replaces the stored one for its post and horizon unless the stored one was
        collected later (so an out-of-order replay from the hot path never goes back in time).
        All rows are checked first and written in multi-row statements in one transaction.

        Returns:
            how many snapshots were given (and are now stored or superseded by newer ones).
        """
        if isinstance(snapshots, (str, bytes, Mapping)):
            raise InvalidInputError("snapshots must be an iterable of MetricSnapshot")
        items = list(snapshots)
        rows = [_metric_row(i, snap) for i, snap in enumerate(items)]
        if not rows:
            return 0
        m = s.tweet_metrics
        t = s.tweets
        with self._tx() as conn:
            tweet_ids = sorted({r["tweet_id"] for r in rows})
            owners: dict[int, int] = {}
            for chunk in _chunks(tweet_ids, MAX_BATCH_ROWS):
                found = conn.execute(
                    select(t.c.id, t.c.account_id).where(
                        t.c.environment == self.environment, t.c.id.in_(chunk)
                    )
                )
                owners.update((int(r.id), int(r.account_id)) for r in found)
            missing = [i for i in tweet_ids if i not in owners]
            if missing:
                raise PostNotFoundError(
                    f"metrics for unknown post ids {missing[:10]} in {self.environment}: "
                    "collect metrics only for posts the store holds; nothing was written"
                )
            for r in rows:
                r["environment"] = self.environment
                r["account_id"] = owners[r["tweet_id"]]
            for chunk in _chunks(rows, MAX_BATCH_ROWS):
                stmt = self._insert(m).values(chunk)
                updates = {n: stmt.excluded[n] for n in (*s.METRIC_NAMES, "source", "collected_at")}
                stmt = stmt.on_conflict_do_update(
                    index_elements=[m.c.environment, m.c.tweet_id, m.c.horizon],
                    set_=updates,
                    where=m.c.collected_at <= stmt.excluded.collected_at,
                )
                conn.execute(stmt)
        return len(rows)

    def get_metrics(self, post_id: int) -> list[MetricSnapshot]:
        """The stored snapshots of one post, by horizon order (1h, 6h, 24h, 72h)."""
        post_id = _id("post_id", post_id)
        m = s.tweet_metrics
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(m).where(m.c.environment == self.environment, m.c.tweet_id == post_id)
            ).all()
        snaps = [_snapshot(r) for r in rows]
        return sorted(snaps, key=lambda x: s.HORIZONS.index(x.horizon))

    def list_metrics(
        self, *, account_id: int | None = None, since: datetime | None = None
    ) -> list[MetricSnapshot]:
        """Every snapshot (of one account, collected since a time): for the warehouse."""
        since = _opt_time("since", since)
        m = s.tweet_metrics
        q = select(m).where(m.c.environment == self.environment)
        if account_id is not None:
            q = q.where(m.c.account_id == _id("account_id", account_id))
        if since is not None:
            q = q.where(m.c.collected_at >= since)
        q = q.order_by(m.c.collected_at, m.c.id)
        with self._tx(write=False) as conn:
            return [_snapshot(r) for r in conn.execute(q)]

    def metrics_due(
        self,
        horizon: str,
        *,
        now: datetime | None = None,
        account_id: int | None = None,
        limit: int = 500,
    ) -> list[Post]:
        """Posted posts at least ``horizon`` old with no snapshot at that horizon yet.

        Oldest first. Only posts with an X id (anything posted) are returned.
        """
        horizon = _horizon(horizon)
        now = _now(now)
        limit = _limit(limit)
        t = s.tweets
        m = s.tweet_metrics
        have = select(m.c.id).where(m.c.tweet_id == t.c.id, m.c.horizon == horizon).exists()
        q = select(t).where(
            t.c.environment == self.environment,
            t.c.status == "posted",
            t.c.x_id.is_not(None),
            t.c.posted_at <= now - HORIZON_DELTAS[horizon],
            ~have,
        )
        if account_id is not None:
            q = q.where(t.c.account_id == _id("account_id", account_id))
        q = q.order_by(t.c.posted_at, t.c.id).limit(limit)
        with self._tx(write=False) as conn:
            return [Post(**r._mapping) for r in conn.execute(q)]

    # --- candidates -------------------------------------------------------------------------
    def record_candidates(
        self,
        account_id: int,
        candidates: Sequence[CandidateInput],
        *,
        batch_id: str | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Store a batch of generated candidates with the guard's verdict, score and choice.

        Every row's ``created_at`` is ``now`` (the warehouse's candidates watermark). Returns the
        new ids in the order given.
        """
        account_id = _id("account_id", account_id)
        batch_id = _opt_str("batch_id", batch_id, 64)
        if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
            raise InvalidInputError("candidates must be a list of CandidateInput")
        now = _now(now)
        rows: list[dict[str, Any]] = []
        for i, c in enumerate(candidates):
            if not isinstance(c, CandidateInput):
                raise InvalidInputError(
                    f"candidates[{i}] is a {type(c).__name__}: pass CandidateInput objects"
                )
            arm, fmt, topic = _arm(c.arm, None, None)
            reasons = c.guard_reasons
            if not isinstance(reasons, list) or not all(isinstance(x, str) for x in reasons):
                raise InvalidInputError(f"candidates[{i}].guard_reasons must be a list of strings")
            rows.append(
                {
                    "environment": self.environment,
                    "account_id": account_id,
                    "batch_id": batch_id,
                    "text": self._text(f"candidates[{i}].text", c.text),
                    "content_hash": content_hash(c.text),
                    "arm": arm,
                    "format": fmt,
                    "topic": topic,
                    "generator": _opt_str(f"candidates[{i}].generator", c.generator, 32),
                    "score": _opt_float(f"candidates[{i}].score", c.score),
                    "guard_passed": _bool(f"candidates[{i}].guard_passed", c.guard_passed),
                    "guard_reasons": list(reasons),
                    "chosen": _bool(f"candidates[{i}].chosen", c.chosen),
                    "why": _opt_str(f"candidates[{i}].why", c.why, 4000),
                    "tweet_id": None
                    if c.tweet_id is None
                    else _id(f"candidates[{i}].tweet_id", c.tweet_id),
                    "metadata": _json_obj(f"candidates[{i}].metadata", c.metadata),
                    "created_at": now,
                }
            )
        if not rows:
            return []
        c_t = s.candidates
        ids: list[int] = []
        with self._tx() as conn:
            self._account_row(conn, account_id)
            linked = sorted({r["tweet_id"] for r in rows if r["tweet_id"] is not None})
            if linked:
                t = s.tweets
                found: set[int] = set(
                    conn.execute(
                        select(t.c.id).where(
                            t.c.environment == self.environment,
                            t.c.account_id == account_id,
                            t.c.id.in_(linked),
                        )
                    ).scalars()
                )
                if set(linked) - found:
                    raise PostNotFoundError(
                        f"candidates link to unknown posts {sorted(set(linked) - found)}: "
                        "enqueue the post first, then record the candidate with its id"
                    )
            for chunk in _chunks(rows, MAX_BATCH_ROWS):
                result = conn.execute(
                    c_t.insert().returning(c_t.c.id, sort_by_parameter_order=True), chunk
                )
                ids.extend(_ints(result.scalars()))
        return ids

    def mark_candidate_chosen(self, candidate_id: int, *, tweet_id: int, why: str) -> Candidate:
        """Link a candidate to the post made from it and say why it won."""
        candidate_id = _id("candidate_id", candidate_id)
        tweet_id = _id("tweet_id", tweet_id)
        why = _str("why", why, 4000)
        c_t = s.candidates
        with self._tx() as conn:
            row = conn.execute(
                select(c_t).where(c_t.c.environment == self.environment, c_t.c.id == candidate_id)
            ).first()
            if row is None:
                raise CandidateNotFoundError(
                    f"no candidate with id {candidate_id} in {self.environment}: use an id "
                    "record_candidates returned"
                )
            self._post_row(conn, tweet_id)
            conn.execute(
                update(c_t)
                .where(c_t.c.id == candidate_id)
                .values(chosen=True, tweet_id=tweet_id, why=why)
            )
            return Candidate(
                **conn.execute(select(c_t).where(c_t.c.id == candidate_id)).one()._mapping
            )

    def list_candidates(
        self, account_id: int, *, batch_id: str | None = None, limit: int = 500
    ) -> list[Candidate]:
        """An account's candidates, newest first (optionally of one batch)."""
        account_id = _id("account_id", account_id)
        limit = _limit(limit)
        c_t = s.candidates
        q = select(c_t).where(c_t.c.environment == self.environment, c_t.c.account_id == account_id)
        if batch_id is not None:
            q = q.where(c_t.c.batch_id == _str("batch_id", batch_id, 64))
        q = q.order_by(c_t.c.created_at.desc(), c_t.c.id.desc()).limit(limit)
        with self._tx(write=False) as conn:
            return [Candidate(**r._mapping) for r in conn.execute(q)]

    # --- bot_config -------------------------------------------------------------------------
    def get_config(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key`` for this environment, or ``default``."""
        key = _config_key(key)
        b = s.bot_config
        with self._tx(write=False) as conn:
            row = conn.execute(
                select(b.c.value).where(b.c.environment == self.environment, b.c.key == key)
            ).first()
        return default if row is None else row.value

    def all_config(self) -> dict[str, Any]:
        """Every config key and value of this environment."""
        b = s.bot_config
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(b.c.key, b.c.value)
                .where(b.c.environment == self.environment)
                .order_by(b.c.key)
            ).all()
        return {r.key: r.value for r in rows}

    def set_config(
        self,
        key: str,
        value: Any,
        *,
        actor: str,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store ``value`` (JSON) under ``key`` and write an audit_log entry saying who did it.

        The entry (``event_type='config_changed'``) holds the old and new values; both writes
        commit together or not at all.
        """
        key = _config_key(key)
        value = _json_value("value", value)
        actor = _str("actor", actor, 128)
        reason = _opt_str("reason", reason, 4000)
        now = _now(now)
        b = s.bot_config
        with self._tx() as conn:
            old = conn.execute(
                select(b.c.value).where(b.c.environment == self.environment, b.c.key == key)
            ).first()
            stmt = self._insert(b).values(
                environment=self.environment,
                key=key,
                value=value,
                updated_by=actor,
                updated_at=now,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[b.c.key, b.c.environment],
                set_={"value": stmt.excluded.value, "updated_by": actor, "updated_at": now},
            )
            conn.execute(stmt)
            self._audit_config_change(conn, key, old, value, actor=actor, reason=reason, now=now)

    def update_config(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        actor: str,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> Any:
        """Replace the value under ``key`` with ``change(old)`` atomically; returns the new value.

        A read-modify-write (e.g. adding to a counter) that processes can run at once without
        losing an update: in one transaction the row is locked (``FOR UPDATE`` on Postgres; the
        ``BEGIN IMMEDIATE`` write lock on SQLite), ``change`` gets the current value (None when
        the key is unset) and the result is written with the same audit_log entry as
        :meth:`set_config`. ``change`` must be pure: it may be called again when a concurrent
        writer created the key first.
        """
        key = _config_key(key)
        actor = _str("actor", actor, 128)
        reason = _opt_str("reason", reason, 4000)
        if not callable(change):
            raise InvalidInputError("change must be a function from the old value to the new one")
        now = _now(now)
        b = s.bot_config
        locked = (
            select(b.c.value)
            .where(b.c.environment == self.environment, b.c.key == key)
            .with_for_update()
        )
        with self._tx() as conn:
            old = conn.execute(locked).first()
            if old is None:
                value = _json_value("value", change(None))
                created = conn.execute(
                    self._insert(b)
                    .values(
                        environment=self.environment,
                        key=key,
                        value=value,
                        updated_by=actor,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[b.c.key, b.c.environment])
                    .returning(b.c.id)
                ).first()
                if created is None:
                    # Another writer created the key and committed while we looked: its row
                    # is visible (and lockable) to this statement.
                    old = conn.execute(locked).one()
            if old is not None:
                value = _json_value("value", change(old.value))
                conn.execute(
                    update(b)
                    .where(b.c.environment == self.environment, b.c.key == key)
                    .values(value=value, updated_by=actor, updated_at=now)
                )
            self._audit_config_change(conn, key, old, value, actor=actor, reason=reason, now=now)
        return value

    def _audit_config_change(
        self,
        conn: Connection,
        key: str,
        old: Any,
        value: Any,
        *,
        actor: str,
        reason: str | None,
        now: datetime,
    ) -> None:
        """The audit_log entry of a bot_config write (old is the previous row, or None)."""
        self._audit(
            conn,
            AuditEvent(
                event_type="config_changed",
                component="bot_config",
                actor=actor,
                occurred_at=now,
                data={
                    "key": key,
                    "old": None if old is None else old.value,
                    "new": value,
                    "created": old is None,
                    "reason": reason,
                },
            ),
        )

    # --- audit_log --------------------------------------------------------------------------
    def audit(
        self,
        event_type: str,
        *,
        component: str,
        severity: str = "info",
        actor: str = "xbot",
        data: Mapping[str, Any] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> int | None:
        """Append one audit_log entry; returns its id (None if ``event_id`` was already stored)."""
        event = AuditEvent(
            event_type=event_type,
            component=component,
            severity=severity,
            actor=actor,
            data=dict(data) if isinstance(data, Mapping) else data,  # type: ignore[arg-type]
            occurred_at=occurred_at,
            event_id=event_id,
        )
        row = self._audit_values(0, event)
        with self._tx() as conn:
            return self._insert_audit(conn, [row])[0]

    def audit_many(self, events: Sequence[AuditEvent]) -> int:
        """Append many entries in multi-row statements; entries whose ``event_id`` is already
        stored are skipped (so the hot path can replay its backlog). Returns how many were new."""
        if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
            raise InvalidInputError("events must be a list of AuditEvent")
        rows = [self._audit_values(i, e) for i, e in enumerate(events)]
        if not rows:
            return 0
        with self._tx() as conn:
            return sum(1 for x in self._insert_audit(conn, rows) if x is not None)

    def list_audit(
        self,
        *,
        event_type: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Recent audit entries, newest first."""
        since = _opt_time("since", since)
        limit = _limit(limit)
        a = s.audit_log
        q = select(a).where(a.c.environment == self.environment)
        if event_type is not None:
            q = q.where(a.c.event_type == _str("event_type", event_type, 64))
        if since is not None:
            q = q.where(a.c.occurred_at >= since)
        q = q.order_by(a.c.occurred_at.desc(), a.c.id.desc()).limit(limit)
        with self._tx(write=False) as conn:
            return [AuditEvent(**r._mapping) for r in conn.execute(q)]

    def _audit(self, conn: Connection, event: AuditEvent) -> None:
        self._insert_audit(conn, [self._audit_values(0, event)])

    def _audit_values(self, i: int, e: Any) -> dict[str, Any]:
        if not isinstance(e, AuditEvent):
            raise InvalidInputError(f"events[{i}] is a {type(e).__name__}: pass AuditEvent")
        severity = e.severity
        if severity not in s.SEVERITIES:
            raise InvalidInputError(
                f"unknown severity {severity!r}: use one of {', '.join(s.SEVERITIES)}"
            )
        return {
            "environment": self.environment,
            "event_id": _opt_str("event_id", e.event_id, 64),
            "occurred_at": _opt_time("occurred_at", e.occurred_at) or utcnow(),
            "event_type": _str("event_type", e.event_type, 64),
            "component": _str("component", e.component, 64),
            "severity": severity,
            "actor": _str("actor", e.actor, 128),
            "data": _json_obj("data", e.data),
        }

    def _insert_audit(self, conn: Connection, rows: list[dict[str, Any]]) -> list[int | None]:
        a = s.audit_log
        out: list[int | None] = []
        for chunk in _chunks(rows, MAX_BATCH_ROWS):
            keyed = [r for r in chunk if r["event_id"] is not None]
            plain = [r for r in chunk if r["event_id"] is None]
            if plain:
                res = conn.execute(
                    a.insert().returning(a.c.id, sort_by_parameter_order=True), plain
                )
                out.extend(_ints(res.scalars()))
            if keyed:
                stmt = self._insert(a).values(keyed)
                stmt = stmt.on_conflict_do_nothing(index_elements=[a.c.environment, a.c.event_id])
                res = conn.execute(stmt.returning(a.c.id))
                new = _ints(res.scalars())
                out.extend(new)
                out.extend([None] * (len(keyed) - len(new)))
        return out

    # --- system_health ----------------------------------------------------------------------
    def record_health(
        self,
        component: str,
        status: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        recorded_at: datetime | None = None,
    ) -> int:
        """Append one health observation (``ok``, ``degraded`` or ``down``) of a component."""
        component = _str("component", component, 64)
        if status not in s.HEALTH_STATUSES:
            raise InvalidInputError(
                f"unknown health status {status!r}: use one of {', '.join(s.HEALTH_STATUSES)}"
            )
        values = {
            "environment": self.environment,
            "recorded_at": _opt_time("recorded_at", recorded_at) or utcnow(),
            "component": component,
            "status": status,
            "metrics": _json_obj("metrics", metrics),
            "message": _opt_str("message", message, 4000),
        }
        h = s.system_health
        with self._tx() as conn:
            return int(conn.execute(h.insert().values(**values).returning(h.c.id)).scalar_one())

    def latest_health(self) -> dict[str, HealthRecord]:
        """The newest observation of every component."""
        h = s.system_health
        newest = (
            select(h.c.component, func.max(h.c.id).label("id"))
            .where(h.c.environment == self.environment)
            .group_by(h.c.component)
            .subquery()
        )
        q = select(h).join(newest, and_(h.c.id == newest.c.id))
        with self._tx(write=False) as conn:
            return {r.component: HealthRecord(**r._mapping) for r in conn.execute(q)}

    # --- daily_summaries --------------------------------------------------------------------
    def upsert_daily_summary(
        self,
        summary_date: date,
        summary_type: str,
        metrics: Mapping[str, Any],
        *,
        now: datetime | None = None,
    ) -> DailySummary:
        """Write the summary of one day and type (replacing an earlier one)."""
        if not isinstance(summary_date, date) or isinstance(summary_date, datetime):
            raise InvalidInputError("summary_date must be a datetime.date (the UTC day)")
        summary_type = _str("summary_type", summary_type, 64)
        body = _json_obj("metrics", metrics)
        now = _now(now)
        d = s.daily_summaries
        with self._tx() as conn:
            stmt = self._insert(d).values(
                environment=self.environment,
                summary_date=summary_date,
                summary_type=summary_type,
                metrics=body,
                created_at=now,
                updated_at=now,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[d.c.summary_date, d.c.summary_type, d.c.environment],
                set_={"metrics": stmt.excluded.metrics, "updated_at": now},
            )
            conn.execute(stmt)
            row = conn.execute(
                select(d).where(
                    d.c.environment == self.environment,
                    d.c.summary_date == summary_date,
                    d.c.summary_type == summary_type,
                )
            ).one()
            return DailySummary(**row._mapping)

    def get_daily_summary(self, summary_date: date, summary_type: str) -> DailySummary | None:
        """The stored summary of one day and type, or None."""
        if not isinstance(summary_date, date) or isinstance(summary_date, datetime):
            raise InvalidInputError("summary_date must be a datetime.date (the UTC day)")
        summary_type = _str("summary_type", summary_type, 64)
        d = s.daily_summaries
        with self._tx(write=False) as conn:
            row = conn.execute(
                select(d).where(
                    d.c.environment == self.environment,
                    d.c.summary_date == summary_date,
                    d.c.summary_type == summary_type,
                )
            ).first()
        return None if row is None else DailySummary(**row._mapping)


# --- validation helpers (raise InvalidInputError; never touch the database) -------------------
def _id(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer id, got {value!r}")
    return value


def _str(name: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r:.60}")
    if len(value) > max_len or "\x00" in value:
        raise InvalidInputError(
            f"{name} must be at most {max_len} characters without NUL (got {len(value)})"
        )
    return value


def _opt_str(name: str, value: Any, max_len: int) -> str | None:
    return None if value is None else _str(name, value, max_len)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return value


def _opt_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _time(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{name} is a naive datetime: pass a timezone-aware UTC one (datetime.now(UTC))"
        )
    return value.astimezone(UTC)


def _now(value: Any) -> datetime:
    """The caller's ``now`` (checked like any time), or the wall clock when it gave none."""
    return _opt_time("now", value) or utcnow()


def _opt_time(name: str, value: Any) -> datetime | None:
    return None if value is None else _time(name, value)


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise InvalidInputError(f"limit must be an integer from 1 to 100000, got {value!r}")
    return value


def _status(value: Any) -> str:
    if value not in s.POST_STATUSES:
        raise InvalidInputError(
            f"unknown post status {value!r}: use one of {', '.join(s.POST_STATUSES)}"
        )
    return str(value)


def _horizon(value: Any) -> str:
    if value not in s.HORIZONS:
        raise InvalidInputError(f"unknown horizon {value!r}: use one of {', '.join(s.HORIZONS)}")
    return str(value)


def _handle(value: Any) -> str:
    if not isinstance(value, str) or not _HANDLE.match(value.removeprefix("@")):
        raise InvalidInputError(
            f"account handle {value!r:.60} is not an X handle: use letters, digits and '_'"
        )
    return value.removeprefix("@")


def _x_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit() or len(value) > 32:
        raise InvalidInputError(f"x_id must be X's numeric post id as a string, got {value!r:.60}")
    return value


def _opt_attempt(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInputError(
            f"attempt_id {value!r:.60} is not an attempt id: pass Claim.attempt_id"
        ) from None


def _config_key(value: Any) -> str:
    if not isinstance(value, str) or not _CONFIG_KEY.match(value):
        raise InvalidInputError(
            f"config key {value!r:.60} is invalid: use 1-128 letters, digits and . _ : / -"
        )
    return value


def _arm(arm: Any, fmt: Any, topic: Any) -> tuple[str | None, str | None, str | None]:
    """Check an arm ``"<format>:<topic>"`` and its parts; fill whichever side is missing."""
    for name, part in (("format", fmt), ("topic", topic)):
        if part is not None and (not isinstance(part, str) or not _NAME.match(part)):
            raise InvalidInputError(
                f"{name} {part!r:.60} must be a lower-case name like 'how_to' or 'python'"
            )
    if arm is None:
        if fmt is not None and topic is not None:
            return f"{fmt}:{topic}", fmt, topic
        return None, fmt, topic
    if not isinstance(arm, str) or arm.count(":") != 1:
        raise InvalidInputError(
            f"arm {arm!r:.60} must be written '<format>:<topic>', e.g. 'how_to:python'"
        )
    a_fmt, a_topic = arm.split(":")
    if not _NAME.match(a_fmt) or not _NAME.match(a_topic):
        raise InvalidInputError(
            f"arm {arm!r:.60} must be written '<format>:<topic>', e.g. 'how_to:python'"
        )
    if (fmt is not None and fmt != a_fmt and not (fmt == "thread")) or (
        topic is not None and topic != a_topic
    ):
        raise InvalidInputError(f"arm {arm!r} disagrees with format={fmt!r} / topic={topic!r}")
    return arm, a_fmt, a_topic


def _json_value(name: str, value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} is not JSON ({exc}): pass dicts, lists, strings, numbers, booleans or None"
        ) from None
    return value


def _json_obj(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{name} must be a dict, got {type(value).__name__}")
    out = dict(value)
    if not all(isinstance(k, str) for k in out):
        raise InvalidInputError(f"{name} keys must be strings")
    _json_value(name, out)
    return out


def _metric_row(i: int, snap: Any) -> dict[str, Any]:
    if not isinstance(snap, MetricSnapshot):
        raise InvalidInputError(
            f"snapshots[{i}] is a {type(snap).__name__}: pass MetricSnapshot objects"
        )
    row: dict[str, Any] = {
        "tweet_id": _id(f"snapshots[{i}].tweet_id", snap.tweet_id),
        "horizon": _horizon(snap.horizon),
        "collected_at": _time(f"snapshots[{i}].collected_at", snap.collected_at),
        "source": _opt_str(f"snapshots[{i}].source", snap.source, 32),
    }
    for name in s.METRIC_NAMES:
        value = getattr(snap, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(
                f"snapshots[{i}].{name} must be a non-negative integer, got {value!r}"
            )
        row[name] = value
    return row


def _snapshot(row: Row[Any]) -> MetricSnapshot:
    data = dict(row._mapping)
    data.pop("id", None)
    data.pop("environment", None)
    return MetricSnapshot(**data)


def _ints(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "COUNTED_STATUSES",
    "HORIZON_DELTAS",
    "MAX_TEXT_CHARS",
    "DurableStore",
    "thread_part_hash",
    "utcnow",
]
