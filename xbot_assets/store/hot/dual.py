"""The DualStoreManager: the durable store decides, Redis makes it fast, nothing is lost.

Two kinds of writes:

- **Post state** (a post queued, claimed, posted) must never be lost: it goes to the durable store
  first, in one transaction; Redis only carries hints (a ``pending_posts`` entry naming the row,
  rate counters, the brake mirror). A claim re-checks the brake and every rate cap on the durable
  rows inside the claim transaction (:meth:`DualStoreManager.claim_post`).
- **High-volume events** (metric snapshots, audit rows, health rows) are durable when their
  ``record_*`` call returns (issue 17 item 2). With the durable store up they are written to it
  at once with the idempotent upsert (``direct``; :meth:`DualStoreManager.record_metric_snapshots`
  writes a whole collection in one transaction). Only while the store is down do they wait in
  the ``sync_to_supabase`` stream (``buffered``), which the sync worker
  (:meth:`DualStoreManager.sync_once`) consumes with a consumer group: it writes a batch with
  multi-row upserts (``INSERT ... ON CONFLICT``) and acknowledges it only afterwards, so a
  worker that dies leaves the batch in the pending-entries list for the next one.

Why not "XADD first, sync later" for every event: an acknowledged XADD lives in Redis's memory;
Redis here runs without persistence (and even with an fsync-always AOF a ``FLUSHALL`` deletes
it), and the process that emitted, e.g. a Dagster run, exits long before the 5-minute sync. A
restart or flush in between lost every such event (1,000 of 1,000 in the review). Redis 7.0 has
no ``WAITAOF`` to confirm a write reached disk, and ``WAIT`` needs replicas. So the store, the
truth, is written first, and Redis is only the buffer for the store's outages, as the
architecture says ("durable store down: high-volume events wait in Redis"). The cost is one
store round trip per call; collectors use the batch call.

What is guaranteed, by case (tests: ``tests/hotpath/test_durable_events.py``):

- store up: 0 lost whatever happens to Redis afterwards (flush, restart, kill);
- store down, Redis up: buffered in the stream; while the emitting process lives it keeps an
  outbox and re-sends it if Redis loses its data, and it writes the outbox to the store itself
  as soon as the store answers again (:meth:`DualStoreManager.flush_outbox`). After it exits,
  the buffered events survive a Redis restart only if Redis persists with
  ``appendonly yes`` + ``appendfsync always`` (checked once; a warning names the risk when not);
- store down and Redis flushed (or restarted without persistence) after the emitter exited:
  **no design can recover those events**: they existed nowhere else. The emitter is told
  nothing is durable only when both refuse the write (:class:`StoresUnavailableError`).

Failure modes:

- Redis down: events go to the durable store as always, and post workers poll the durable
  store for due ``queued`` rows (:meth:`DualStoreManager.next_posts`). Slower, never wrong.
- Durable store down: events wait in the stream (after a failed store write, calls skip the
  store for ``durable_retry_s``); the sync worker leaves its batch pending (no attempt is
  counted) and takes it back when the store answers. Claims fail (nothing is posted).
- Both down: :class:`StoresUnavailableError`; the caller keeps the event and retries.

Idempotency keys: ``tweet_metrics`` upserts on ``(tweet_id, horizon)`` keeping the newest
collection, ``audit_log`` on its unique ``event_id``, and ``system_health`` (which has no unique
column) on an ``event_id`` kept inside ``metrics``, checked under a lock before inserting.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import redis
from sqlalchemy import Connection, Engine, and_, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from xbot_assets.config import Settings
from xbot_assets.store.durable.claim import Blocked, claim_post, claimable_posts
from xbot_assets.store.durable.schema import (
    HEALTH_STATUSES,
    HORIZONS,
    METRIC_NAMES,
    audit_log,
    bot_config,
    post_attempts,
    system_health,
    tweet_metrics,
    tweets,
)
from xbot_assets.store.hot.brake import EmergencyBrake, read_durable_brake
from xbot_assets.store.hot.dedup import DedupCache
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.hot.ratelimit import (
    Decision,
    PostKind,
    RateCaps,
    RateLimiter,
    check_post_caps,
)
from xbot_assets.store.hot.streams import Message, Priority, QueuePolicy, StreamQueue
from xbot_assets.store.timebase import Clock, as_utc, utc_now

log = logging.getLogger(__name__)

EventKind = Literal["metric_snapshot", "audit", "health"]
EVENT_KINDS: tuple[EventKind, ...] = ("metric_snapshot", "audit", "health")
ON_X_STATUSES: tuple[str, ...] = ("posting", "posted", "unknown")
"""Rows that are, or may be, on X: every one counts against the caps (as in the posting ledger)."""
SYNC_QUEUE = "sync_to_supabase"
AI_SPEND_KEY_PREFIX = "ai_spend:"
"""bot_config key prefix of each UTC day's AI spend (written by ``xbot_assets.content.budget``)."""
POSTS_QUEUE = "pending_posts"
_UPSERT_CHUNK = 1000
_HEALTH_LOCK = zlib.crc32(b"xbot-sync:system_health")


class StoresUnavailableError(RuntimeError):
    """Neither Redis nor the durable store accepted a write: keep the event and retry."""


def is_durable_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the durable store cannot be reached" (as opposed to bad data)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


# --- idempotent batch writers (against the store's table objects) --------------------------------


def _insert_for(conn: Connection, table: Any) -> Any:
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def _chunks(rows: Sequence[dict[str, Any]], size: int = _UPSERT_CHUNK) -> list[Sequence[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def upsert_metric_snapshots(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Multi-row upsert into ``tweet_metrics`` on ``(environment, tweet_id, horizon)``; a newer
    collection replaces an older one, a replay of the same one changes nothing."""
    if not rows:
        return 0
    # one row per key per statement: ON CONFLICT cannot touch a row twice
    newest: dict[tuple[str, int, str], dict[str, Any]] = {}
    for row in rows:
        key = (str(row["environment"]), int(row["tweet_id"]), str(row["horizon"]))
        if key not in newest or row["collected_at"] >= newest[key]["collected_at"]:
            newest[key] = row
    values = list(newest.values())
    stmt = _insert_for(conn, tweet_metrics)
    updated = {name: stmt.excluded[name] for name in (*METRIC_NAMES, "collected_at", "source")}
    stmt = stmt.on_conflict_do_update(
        index_elements=[
            tweet_metrics.c.environment,
            tweet_metrics.c.tweet_id,
            tweet_metrics.c.horizon,
        ],
        set_=updated,
        where=stmt.excluded.collected_at >= tweet_metrics.c.collected_at,
    )
    # executemany: SQLAlchemy sends multi-row VALUES pages ("insertmanyvalues") from one
    # compiled statement, instead of compiling a statement with thousands of parameters.
    for chunk in _chunks(values):
        conn.execute(stmt, list(chunk))
    return len(values)


def insert_audit_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Multi-row insert into ``audit_log``; a replayed ``event_id`` is skipped."""
    if not rows:
        return 0
    stmt = _insert_for(conn, audit_log).on_conflict_do_nothing(
        index_elements=[audit_log.c.environment, audit_log.c.event_id]
    )
    for chunk in _chunks(rows):
        conn.execute(stmt, list(chunk))
    return len(rows)


def insert_health_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``system_health`` rows whose ``metrics.event_id`` is not stored yet.

    ``system_health`` has no unique column, so the check is a read under a transaction-scoped
    advisory lock on Postgres (SQLite's ``BEGIN IMMEDIATE`` already serialises writers).
    """
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _HEALTH_LOCK})
    by_id = {str(r["metrics"]["event_id"]): r for r in rows}
    earliest = min(r["recorded_at"] for r in rows)
    latest = max(r["recorded_at"] for r in rows)
    components = sorted({str(r["component"]) for r in rows})
    event_id = system_health.c.metrics["event_id"].as_string()
    existing = {
        str(v)
        for (v,) in conn.execute(
            select(event_id).where(
                system_health.c.environment.in_(sorted({r["environment"] for r in rows})),
                system_health.c.component.in_(components),
                system_health.c.recorded_at >= earliest,
                system_health.c.recorded_at <= latest,
            )
        )
    }
    fresh = [r for eid, r in by_id.items() if eid not in existing]
    for chunk in _chunks(fresh):
        conn.execute(insert(system_health), list(chunk))
    return len(fresh)


_WRITERS = {
    "metric_snapshot": upsert_metric_snapshots,
    "audit": insert_audit_events,
    "health": insert_health_events,
}
_TIME_FIELDS = {"metric_snapshot": "collected_at", "audit": "occurred_at", "health": "recorded_at"}


def _encode(kind: EventKind, row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out[_TIME_FIELDS[kind]] = as_utc(out[_TIME_FIELDS[kind]]).isoformat()
    return {"kind": kind, "row": out}


def _decode(payload: Mapping[str, Any]) -> tuple[EventKind, dict[str, Any]]:
    kind = payload["kind"]
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    row = dict(payload["row"])
    row[_TIME_FIELDS[kind]] = datetime.fromisoformat(row[_TIME_FIELDS[kind]])
    return kind, row


# --- results --------------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one :meth:`DualStoreManager.sync_once` did."""

    rows: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    dead: int = 0
    durable_down: bool = False
    redis_down: bool = False

    @property
    def total(self) -> int:
        return sum(self.rows.values())


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


# --- the manager ----------------------------------------------------------------------------


class DualStoreManager:
    """Routes every write of the hot path to the right store and keeps both healthy.

    One instance per worker thread (it keeps a small in-memory outbox); many processes may run
    side by side, each with its own ``consumer`` name.

    Args:
        engine: the durable store (``xbot_assets.store.durable.engine.make_engine``).
        environment: ``local``/``staging``/``production`` (the ``environment`` column).
        client: the Redis client, or ``None`` (everything goes to the durable store).
        keys: the key space (environment prefix).
        caps: the rate caps.
        clock: the bot's clock (simulated in the sandbox).
        consumer: this worker's consumer name in the stream groups.
        sync_policy: retries and idle limit of the ``sync_to_supabase`` queue.
        redis_retry_s: after a Redis error, how long (wall time) to stay on the fallback path
            before trying Redis again.
        durable_retry_s: after a durable-store outage, how long (wall time) events go straight
            to the Redis buffer before the store is tried again.
        outbox_limit: most buffered events kept in memory for re-sending; past it, events are
            still buffered but no longer re-sent if Redis loses its data (a warning says so).
        reconcile_every: check the outbox against Redis every this many buffered events.
    """

    def __init__(
        self,
        engine: Engine,
        environment: str,
        client: redis.Redis | None,
        keys: KeySpace,
        *,
        caps: RateCaps | None = None,
        clock: Clock = utc_now,
        consumer: str | None = None,
        sync_policy: QueuePolicy | None = None,
        posts_policy: QueuePolicy | None = None,
        redis_retry_s: float = 1.0,
        durable_retry_s: float = 1.0,
        outbox_limit: int = 200_000,
        reconcile_every: int = 200,
    ) -> None:
        self.engine = engine
        self.environment = environment
        self.client = client
        self.keys = keys
        self.caps = caps or RateCaps()
        self.clock = clock
        self.consumer = consumer or f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
        self.redis_retry_s = redis_retry_s
        self._redis_down_until = 0.0
        self.durable_retry_s = durable_retry_s
        self._durable_down_until = 0.0
        self._persistence_checked = False
        self.is_postgres = engine.dialect.name == "postgresql"
        self.brake = EmergencyBrake(engine, environment, client, keys, clock=clock)
        self.dedup = DedupCache(client, keys)
        self._limiters: dict[int, RateLimiter] = {}
        # Events this process buffered in Redis while the durable store was down, not known to
        # be synced yet: re-sent if Redis loses its data (restart without persistence, FLUSHALL)
        # before the sync worker took them, and written by this process once the store is back.
        self._outbox: dict[str, tuple[str, dict[str, Any]]] = {}
        self._epoch: str | None = None
        self._emitted = 0
        self._sync_backlog = True  # take our own pending entries back on the first sync
        self._next_reclaim: dict[str, float] = {}
        self._next_trim = 0.0
        self.trim_every_s = 30.0
        self.outbox_limit = outbox_limit
        self.reconcile_every = reconcile_every
        self.sync_queue: StreamQueue | None = None
        self.posts_queue: StreamQueue | None = None
        if client is not None:
            self.sync_queue = StreamQueue(
                client,
                keys,
                SYNC_QUEUE,
                policy=sync_policy or QueuePolicy(max_attempts=5, idle_ms=30_000),
                clock=clock,
            )
            self.posts_queue = StreamQueue(
                client, keys, POSTS_QUEUE, policy=posts_policy, clock=clock
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: redis.Redis | None = None,
        clock: Clock = utc_now,
        consumer: str | None = None,
    ) -> DualStoreManager:
        """Build from settings: the durable store as ``DurableStore.from_settings`` opens it
        (schema checked; on Postgres acting as ``xbot_<environment>`` so row-level security
        applies), REDIS_URL (or ``client``), the environment prefix and the caps."""
        from xbot_assets.store.durable import DurableStore
        from xbot_assets.store.hot.keys import redis_from_settings

        store = DurableStore.from_settings(settings)
        return cls.from_durable(
            store,
            client if client is not None else redis_from_settings(settings),
            KeySpace.from_settings(settings),
            caps=RateCaps.from_settings(settings),
            clock=clock,
            consumer=consumer,
        )

    @classmethod
    def from_durable(
        cls,
        store: Any,
        client: redis.Redis | None,
        keys: KeySpace,
        **kwargs: Any,
    ) -> DualStoreManager:
        """Share a ``DurableStore``'s engine (its role and pool) and environment."""
        return cls(store.engine, store.environment, client, keys, **kwargs)

    # --- Redis availability ----------------------------------------------------------------------
    def redis_available(self) -> bool:
        """False while on the fallback path (no client, or a recent Redis error)."""
        return self.client is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        log.warning("Redis unavailable, using the durable store: %s", type(exc).__name__)
        self._redis_down_until = time.monotonic() + self.redis_retry_s

    def limiter(self, account_id: int) -> RateLimiter:
        """The rate limiter of one account (Redis counters scoped to it)."""
        if account_id not in self._limiters:
            self._limiters[account_id] = RateLimiter(
                self.client if self.client is not None else None,
                self.keys,
                self.caps,
                clock=self.clock,
                scope=f"acct{account_id}",
            )
        return self._limiters[account_id]

    # --- AI spend ------------------------------------------------------------------------------
    def durable_ai_spend_today(self, at: datetime | None = None) -> float:
        """Today's (UTC) AI spend in USD as the content budget records it durably
        (``bot_config`` key ``ai_spend:<YYYY-MM-DD>``, value ``{"usd": ..., "calls": ...}``)."""
        day = as_utc(at or self.clock()).date().isoformat()
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                value = conn.execute(
                    select(bot_config.c.value).where(
                        bot_config.c.environment == self.environment,
                        bot_config.c.key == f"{AI_SPEND_KEY_PREFIX}{day}",
                    )
                ).scalar_one_or_none()
        return float(value.get("usd", 0.0) or 0.0) if isinstance(value, dict) else 0.0

    def reserve_ai_spend(self, usd: float, *, account_id: int = 0) -> Decision:
        """Reserve ``usd`` of today's AI budget before a generation call (Redis counter, seeded
        from and judged by the durable spend when Redis lost it or is down)."""
        return self.limiter(account_id).reserve_ai_spend(
            usd, durable_spent_today=self.durable_ai_spend_today
        )

    # --- high-volume events ------------------------------------------------------------------
    def record_metric_snapshot(
        self,
        *,
        tweet_id: int,
        account_id: int,
        horizon: str,
        metrics: Mapping[str, int],
        collected_at: datetime | None = None,
        source: str | None = None,
    ) -> str:
        """Record one metrics snapshot durably (idempotent on ``(tweet_id, horizon)``).

        Returns ``direct`` (in the durable store) or ``buffered`` (the store is down: in the
        Redis stream, synced by ``sync_to_supabase``).
        """
        row = self._metric_row(
            tweet_id=tweet_id,
            account_id=account_id,
            horizon=horizon,
            metrics=metrics,
            collected_at=collected_at,
            source=source,
        )
        return self._emit("metric_snapshot", [row], [f"m:{tweet_id}:{horizon}"])

    def record_metric_snapshots(self, snapshots: Sequence[Mapping[str, Any]]) -> str:
        """Record many snapshots durably in one store transaction (or one Redis round trip).

        Each mapping holds the keyword arguments of :meth:`record_metric_snapshot`. Every one is
        validated before anything is written. Returns ``direct``, ``buffered`` or ``empty``.
        """
        rows = [self._metric_row(**dict(snap)) for snap in snapshots]
        if not rows:
            return "empty"
        keys = [f"m:{r['tweet_id']}:{r['horizon']}" for r in rows]
        return self._emit("metric_snapshot", rows, keys)

    def _metric_row(
        self,
        *,
        tweet_id: int,
        account_id: int,
        horizon: str,
        metrics: Mapping[str, int],
        collected_at: datetime | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        if horizon not in HORIZONS:
            raise ValueError(f"horizon {horizon!r} is not one of {', '.join(HORIZONS)}")
        unknown = sorted(set(metrics) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"unknown metric names {unknown}: use {', '.join(METRIC_NAMES)}")
        row: dict[str, Any] = {
            "environment": self.environment,
            "tweet_id": int(tweet_id),
            "account_id": int(account_id),
            "horizon": horizon,
            "source": source,
            "collected_at": as_utc(collected_at or self.clock()),
        }
        for name in METRIC_NAMES:
            value = int(metrics.get(name, 0))
            if value < 0:
                raise ValueError(f"metric {name} must be >= 0, got {value}")
            row[name] = value
        return row

    def record_audit_event(
        self,
        *,
        event_type: str,
        component: str,
        actor: str,
        data: Mapping[str, Any] | None = None,
        severity: str = "info",
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Record one audit row durably (idempotent on ``event_id``; give one to make retries
        safe). Returns ``direct`` or ``buffered`` (see :meth:`record_metric_snapshot`).

        For changes that must commit together with their audit row (the brake, config), use
        :func:`xbot_assets.ops.audit.record_audit` inside that transaction instead.
        """
        from xbot_assets.ops.audit import _check_data

        eid = event_id or uuid.uuid4().hex
        row = {
            "environment": self.environment,
            "event_id": eid,
            "occurred_at": as_utc(occurred_at or self.clock()),
            "event_type": event_type,
            "component": component,
            "severity": severity,
            "actor": actor,
            "data": _check_data(data or {}),
        }
        return self._emit("audit", [row], [f"a:{eid}"])

    def record_health(
        self,
        component: str,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        *,
        recorded_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Record one ``system_health`` row durably (``status``: ok, degraded or down)."""
        if status not in HEALTH_STATUSES:
            raise ValueError(f"health status {status!r} is not one of {HEALTH_STATUSES}")
        eid = event_id or uuid.uuid4().hex
        row = {
            "environment": self.environment,
            "recorded_at": as_utc(recorded_at or self.clock()),
            "component": component,
            "status": status,
            "metrics": {**dict(metrics or {}), "event_id": eid},
            "message": message,
        }
        return self._emit("health", [row], [f"h:{eid}"])

    # --- the durable emit ------------------------------------------------------------------
    def durable_available(self) -> bool:
        """False for ``durable_retry_s`` after the store failed a write (events go to Redis)."""
        return time.monotonic() >= self._durable_down_until

    def _durable_failed(self, exc: BaseException) -> None:
        log.warning("durable store unavailable, buffering in Redis: %s", type(exc).__name__)
        self._durable_down_until = time.monotonic() + self.durable_retry_s

    def _write_direct(self, kind: EventKind, rows: Sequence[dict[str, Any]]) -> bool:
        """Write ``rows`` to the store in one transaction. False: the store is down (raised for
        bad data: the caller must see it)."""
        try:
            with self.engine.begin() as conn:
                _WRITERS[kind](conn, rows)
        except DBAPIError as exc:
            if not is_durable_outage(exc):
                raise
            self._durable_failed(exc)
            return False
        self._durable_down_until = 0.0
        return True

    def _emit(self, kind: EventKind, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
        """Make ``rows`` durable before returning: the store first, Redis while it is down."""
        tried_store = False
        if self.durable_available():
            tried_store = True
            if self._write_direct(kind, rows):
                if self._outbox:
                    self.flush_outbox()
                return "direct"
        if self._buffer(kind, rows, keys):
            return "buffered"
        if not tried_store and self._write_direct(kind, rows):
            return "direct"
        raise StoresUnavailableError(
            "neither the durable store nor Redis accepted the event: keep it and retry when one "
            "of them is back (check `xbot` health and DATABASE_URL/REDIS_URL)"
        )

    def _buffer(self, kind: EventKind, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> bool:
        """XADD the events to the sync stream (one round trip); False if Redis did not confirm.

        A Redis error or timeout means "not confirmed" even if the entry landed: the caller then
        writes the store or raises, and a replay is a no-op upsert.
        """
        queue = self.sync_queue
        if queue is None or not self.redis_available():
            return False
        try:
            if self._epoch is None:
                self._epoch = self._redis_epoch()
            payloads = [_encode(kind, row) for row in rows]
            ids = queue.enqueue_many(list(zip(keys, payloads, strict=True)))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return False
        room = self.outbox_limit - len(self._outbox)
        for key, entry_id, payload in list(zip(keys, ids, payloads, strict=True))[: max(room, 0)]:
            self._outbox[key] = (entry_id, payload)
        if room < len(rows):
            log.warning(
                "outbox full (%d events): events buffered now are not re-sent if Redis loses "
                "its data before the durable store is back",
                self.outbox_limit,
            )
        self._check_persistence()
        self._emitted += len(rows)
        if self._emitted % self.reconcile_every < len(rows):
            self.reconcile_outbox()
        return True

    def _check_persistence(self) -> None:
        """Warn once when buffered events would not survive a Redis restart."""
        if self._persistence_checked or self.client is None:
            return
        self._persistence_checked = True
        try:
            config = self.client.config_get("append*")
        except redis.RedisError:
            config = {}
        if config.get("appendonly") == "yes" and config.get("appendfsync") == "always":
            return
        log.warning(
            "the durable store is down and events wait in Redis, which does not persist every "
            "write (appendonly yes + appendfsync always): if Redis restarts or is flushed "
            "before the store is back and this process has exited, they are lost"
        )

    def flush_outbox(self) -> int:
        """Write the events this process buffered to the durable store itself (one transaction)
        and forget them; the stream copies then sync as no-op upserts. Returns how many were
        written (0 if the store is still down or nothing was buffered).

        Called by the next event that reaches the store; call it before exiting too, so a
        process that buffered during an outage leaves nothing only in Redis.
        """
        if not self._outbox or not self.durable_available():
            return 0
        items = list(self._outbox.items())
        events: list[tuple[EventKind, dict[str, Any]]] = []
        for _key, (_entry_id, payload) in items:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                events.append(_decode(payload))
        try:
            with self.engine.begin() as conn:
                self._write_batch(conn, events)
            written = len(events)
        except DBAPIError as exc:
            if is_durable_outage(exc):
                self._durable_failed(exc)
                return 0
            # a bad event must not hold back the rest: one by one, and the ones refused stay
            # in the stream, where the sync worker isolates and dead-letters them
            written = 0
            for kind, row in events:
                try:
                    with self.engine.begin() as conn:
                        _WRITERS[kind](conn, [row])
                    written += 1
                except DBAPIError as row_exc:
                    if is_durable_outage(row_exc):
                        self._durable_failed(row_exc)
                        return written
        for key, _value in items:
            self._outbox.pop(key, None)
        return written

    def trim_queues(self) -> int:
        """Drop acknowledged history from both streams (never pending or undelivered entries);
        run by :meth:`sync_once` every ``trim_every_s`` seconds. Returns entries removed."""
        self._next_trim = time.monotonic() + self.trim_every_s
        removed = 0
        for queue in (self.sync_queue, self.posts_queue):
            if queue is None:
                continue
            try:
                removed += queue.trim()
            except redis.RedisError as exc:
                self._redis_failed(exc)
                break
        return removed

    def _reclaim_due(self, queue: StreamQueue) -> bool:
        """Whether to look for entries stuck with dead workers now: at most twice per idle
        limit (wall time), since nothing can be reclaimed sooner."""
        now = time.monotonic()
        if now < self._next_reclaim.get(queue.name, 0.0):
            return False
        self._next_reclaim[queue.name] = now + queue.policy.idle_ms / 2000
        return True

    @property
    def outbox_size(self) -> int:
        """Events this process buffered in Redis that are not known to be synced yet."""
        return len(self._outbox)

    def _redis_epoch(self) -> str:
        """An id that changes whenever Redis loses its data (set once per dataset)."""
        assert self.client is not None
        epoch_key = self.keys.key("epoch")
        self.client.set(epoch_key, uuid.uuid4().hex, nx=True)
        return str(self.client.get(epoch_key))

    def reconcile_outbox(self) -> int:
        """Forget outbox events the sync worker has acknowledged; re-send them all if Redis lost
        its data since they were buffered (re-sending a synced event is a no-op upsert).

        Returns how many events were re-sent. Called every ``reconcile_every`` events and by
        :meth:`sync_once`; safe to call any time.
        """
        queue = self.sync_queue
        if queue is None or self.client is None or not self.redis_available():
            return 0
        try:
            current = self.client.get(self.keys.key("epoch"))
            if current is None or current != self._epoch:
                self._epoch = self._redis_epoch()
                if not self._outbox:
                    return 0
                items = list(self._outbox.items())
                ids = queue.enqueue_many([(key, payload) for key, (_id, payload) in items])
                for (key, (_old, payload)), new_id in zip(items, ids, strict=True):
                    self._outbox[key] = (new_id, payload)
                log.warning("Redis lost its data: re-sent %d buffered events", len(items))
                return len(items)
            cut = queue.settled_below(Priority.NORMAL)
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return 0
        if cut is not None:
            settled = [k for k, (eid, _p) in self._outbox.items() if queue.id_below(eid, cut)]
            for key in settled:
                del self._outbox[key]
        return 0

    def sync_once(self, max_rows: int = 1000, *, claim_idle_ms: int | None = None) -> SyncReport:
        """Write one batch of buffered events to the durable store, then acknowledge it.

        The worker's own pending entries come first (a batch left behind by an outage), then
        entries idle with a dead worker (``XAUTOCLAIM``), then new ones. If the durable store is
        down the batch stays pending, untouched, with no attempt counted. A batch that fails for
        its data is retried row by row; only the rows that fail alone go to retry/dead letter.
        """
        report = SyncReport()
        queue = self.sync_queue
        if queue is None or not self.redis_available():
            report.redis_down = True
            return report
        self.reconcile_outbox()
        if time.monotonic() >= self._next_trim:
            self.trim_queues()
        try:
            messages: list[Message] = []
            if self._sync_backlog:
                messages = queue.read_own_pending(self.consumer, count=max_rows)
                self._sync_backlog = len(messages) >= max_rows
            if len(messages) < max_rows and self._reclaim_due(queue):
                messages += queue.claim_idle(
                    self.consumer, idle_ms=claim_idle_ms, count=max_rows - len(messages)
                )
            if len(messages) < max_rows:
                messages += queue.read(self.consumer, count=max_rows - len(messages))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            report.redis_down = True
            return report
        if not messages:
            return report
        decoded: list[tuple[Message, EventKind, dict[str, Any]]] = []
        for message in messages:
            try:
                kind, row = _decode(message.payload)
            except (KeyError, ValueError, TypeError) as exc:
                queue.fail(message, f"undecodable event: {type(exc).__name__}: {exc}")
                report.dead += 1
                continue
            decoded.append((message, kind, row))
        try:
            with self.engine.begin() as conn:
                counts = self._write_batch(conn, [(k, r) for _m, k, r in decoded])
            report.rows = counts
            report.acked = queue.ack([m for m, _k, _r in decoded])
        except DBAPIError as exc:
            if is_durable_outage(exc):
                report.durable_down = True
                self._sync_backlog = True
                return report
            self._sync_row_by_row(decoded, report)
        except redis.RedisError as exc:  # written but not acked: the replay is a no-op
            self._redis_failed(exc)
            report.redis_down = True
        return report

    @staticmethod
    def _write_batch(
        conn: Connection, events: Sequence[tuple[EventKind, dict[str, Any]]]
    ) -> dict[str, int]:
        grouped: dict[EventKind, list[dict[str, Any]]] = {}
        for kind, row in events:
            grouped.setdefault(kind, []).append(row)
        return {kind: _WRITERS[kind](conn, rows) for kind, rows in grouped.items()}

    def _sync_row_by_row(
        self, decoded: Sequence[tuple[Message, EventKind, dict[str, Any]]], report: SyncReport
    ) -> None:
        assert self.sync_queue is not None
        for message, kind, row in decoded:
            try:
                with self.engine.begin() as conn:
                    _WRITERS[kind](conn, [row])
            except DBAPIError as exc:
                if is_durable_outage(exc):
                    report.durable_down = True
                    self._sync_backlog = True
                    return
                outcome = self.sync_queue.fail(message, f"{type(exc).__name__}: {exc.orig!s}"[:500])
                report.dead += outcome == "dead"
                continue
            report.rows[kind] = report.rows.get(kind, 0) + 1
            report.acked += self.sync_queue.ack([message])

    def drain(self, *, max_batches: int = 1000, max_rows: int = 1000) -> SyncReport:
        """Run :meth:`sync_once` until the buffer is empty or the durable store is down."""
        total = SyncReport()
        for _ in range(max_batches):
            step = self.sync_once(max_rows)
            for kind, n in step.rows.items():
                total.rows[kind] = total.rows.get(kind, 0) + n
            total.acked += step.acked
            total.dead += step.dead
            total.durable_down |= step.durable_down
            total.redis_down |= step.redis_down
            if step.durable_down or step.redis_down or (step.acked == 0 and step.dead == 0):
                break
        return total

    # --- posts -------------------------------------------------------------------------------
    def enqueue_post(
        self,
        tweet_id: int,
        account_id: int,
        *,
        priority: Priority = Priority.NORMAL,
        thread_position: int = 0,
    ) -> bool:
        """Hint a worker that a ``queued`` row exists (call after the row is committed).

        Returns False if Redis is down: harmless, workers then poll the durable store.
        """
        if self.posts_queue is None or not self.redis_available():
            return False
        try:
            self.posts_queue.enqueue(
                {
                    "tweet_id": int(tweet_id),
                    "account_id": int(account_id),
                    "thread_position": int(thread_position),
                },
                idempotency_key=f"tweet:{tweet_id}",
                priority=priority,
            )
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return False
        return True

    def next_posts(self, count: int = 10) -> list[PostTicket]:
        """Posts to try next: from ``pending_posts``, or (Redis down or the stream empty, e.g.
        after a flush) by polling the durable store for due ``queued`` rows."""
        if self.posts_queue is not None and self.redis_available():
            try:
                if self._reclaim_due(self.posts_queue):
                    self.posts_queue.reclaim_stuck(self.consumer)
                messages = self.posts_queue.read(self.consumer, count=count)
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
        return self.poll_due_posts(count)

    def poll_due_posts(self, count: int = 10) -> list[PostTicket]:
        """Due ``queued`` rows straight from the durable store (the fallback path).

        Only claimable rows (:func:`claimable_posts`, the posting ledger's rule): a thread part
        whose parent is not ``posted`` with an X id is left out, else enough of them, read first,
        would fill every poll and no post would ever be claimed (issue 17 item 3).
        """
        query = (
            claimable_posts(
                self.environment, tweets.c.id, tweets.c.account_id, tweets.c.thread_position
            )
            .where(tweets.c.scheduled_at <= self.clock())
            .limit(count)
        )
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                rows = conn.execute(query).all()
        return [
            PostTicket(int(r.id), int(r.account_id), None, int(r.thread_position)) for r in rows
        ]

    def settle(self, ticket: PostTicket, result: ClaimResult) -> None:
        """Finish a ticket's stream entry: acknowledge it (claimed or gone), or put it back
        until the cap allows (blocked). Redis trouble here is harmless: the row decides."""
        if ticket.message is None or self.posts_queue is None:
            return
        try:
            if result.status == "blocked":
                wait = result.retry_after or timedelta(minutes=1)
                self.posts_queue.defer(ticket.message, self.clock() + wait)
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

    # --- health ------------------------------------------------------------------------------
    def check_health(self) -> dict[str, dict[str, Any]]:
        """Probe both stores and write one ``system_health`` row for each (and the sync backlog).

        The rows take the usual event path: with the durable store down they wait in Redis, with
        Redis down they are written directly.
        """
        now = self.clock()
        results: dict[str, dict[str, Any]] = {}
        redis_status, redis_message = "down", "not configured"
        redis_metrics: dict[str, Any] = {}
        if self.client is not None:
            try:
                started = time.perf_counter()
                self.client.ping()
                redis_metrics = {"ping_ms": round((time.perf_counter() - started) * 1000, 3)}
                if self.sync_queue is not None:
                    redis_metrics["sync_backlog"] = self.sync_queue.stats()
                if self.posts_queue is not None:
                    redis_metrics["pending_posts"] = self.posts_queue.stats()
                redis_status, redis_message = "ok", "reachable"
                self._redis_down_until = 0.0
            except redis.RedisError as exc:
                self._redis_failed(exc)
                redis_message = f"unreachable ({type(exc).__name__}); durable fallback active"
        else:
            redis_status = "degraded"
            redis_message = "not configured: the durable store serves the hot path"
        results["redis"] = {"status": redis_status, "message": redis_message, **redis_metrics}
        durable_status, durable_message, durable_metrics = "ok", "reachable", {}
        try:
            started = time.perf_counter()
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            durable_metrics = {"ping_ms": round((time.perf_counter() - started) * 1000, 3)}
        except DBAPIError as exc:
            durable_status = "down"
            durable_message = f"unreachable ({type(exc).__name__}); events wait in Redis"
        results["durable_store"] = {
            "status": durable_status,
            "message": durable_message,
            **durable_metrics,
        }
        for component, data in results.items():
            metrics = {k: v for k, v in data.items() if k not in ("status", "message")}
            try:
                self.record_health(
                    component, data["status"], metrics, data["message"], recorded_at=now
                )
            except StoresUnavailableError:
                data["recorded"] = False
        return results
