"""The shared state of :class:`~xbot_assets.store.hot.dual.DualStoreManager`: its stores, queues
and the availability of each (which path a write takes).
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from datetime import datetime
from typing import Any, Literal

import redis
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from xbot_assets.store.durable.schema import bot_config
from xbot_assets.store.hot.brake import EmergencyBrake
from xbot_assets.store.hot.dedup import DedupCache
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.hot.ratelimit import Decision, RateCaps, RateLimiter
from xbot_assets.store.hot.streams import QueuePolicy, StreamQueue
from xbot_assets.store.timebase import Clock, as_utc, utc_now

log = logging.getLogger(__name__)

EventKind = Literal["metric_snapshot", "audit", "health"]
EVENT_KINDS: tuple[EventKind, ...] = ("metric_snapshot", "audit", "health")
ON_X_STATUSES: tuple[str, ...] = ("posting", "posted", "unknown")
"""Rows that are, or may be, on X: every one counts against the caps (as in the posting ledger)."""
SYNC_QUEUE = "sync_to_supabase"
ANALYTICS_QUEUE = "analytics_processing"
"""Metric snapshots are written ahead here (with Redis) before the store write; sync drains it."""
AI_SPEND_KEY_PREFIX = "ai_spend:"
"""bot_config key prefix of each UTC day's AI spend (written by ``xbot_assets.content.budget``)."""
POSTS_QUEUE = "pending_posts"


class StoresUnavailableError(RuntimeError):
    """Neither Redis nor the durable store accepted a write: keep the event and retry."""


def is_durable_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the durable store cannot be reached" (as opposed to bad data)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class DualCore:
    """The two stores, the two queues and whether each store answers (see ``dual.py``)."""

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
        self.analytics_queue: StreamQueue | None = None
        if client is not None:
            self.analytics_queue = StreamQueue(
                client,
                keys,
                ANALYTICS_QUEUE,
                policy=QueuePolicy(max_attempts=5, idle_ms=30_000),
                clock=clock,
            )
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

    def durable_available(self) -> bool:
        """False for ``durable_retry_s`` after the store failed a write (events go to Redis)."""
        return time.monotonic() >= self._durable_down_until

    def _durable_failed(self, exc: BaseException) -> None:
        log.warning("durable store unavailable, buffering in Redis: %s", type(exc).__name__)
        self._durable_down_until = time.monotonic() + self.durable_retry_s

    def _reclaim_due(self, queue: StreamQueue) -> bool:
        """Whether to look for entries stuck with dead workers now: at most twice per idle
        limit (wall time), since nothing can be reclaimed sooner."""
        now = time.monotonic()
        if now < self._next_reclaim.get(queue.name, 0.0):
            return False
        self._next_reclaim[queue.name] = now + queue.policy.idle_ms / 2000
        return True
