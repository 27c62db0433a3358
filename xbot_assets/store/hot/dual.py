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

Where the code is: the manager's shared state and the availability of each store in
``dual_core.py``; the events (direct writes, the Redis buffer, the outbox, the sync worker) in
``event_sync.py`` with their batch writers in ``event_writers.py``; the post tickets and the
claim in ``post_tickets.py``. :class:`DualStoreManager` combines the two halves (mixins on one
``DualCore``, so callers keep one object and one set of methods) and adds opening and health.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from xbot_assets.config import Settings
from xbot_assets.store.hot.dual_core import StoresUnavailableError, is_durable_outage
from xbot_assets.store.hot.event_sync import EventSync, SyncReport
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.hot.post_tickets import ClaimResult, PostTicket, PostTickets
from xbot_assets.store.hot.ratelimit import RateCaps
from xbot_assets.store.timebase import Clock, utc_now


class DualStoreManager(EventSync, PostTickets):
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
        from xbot_assets.store.hot.binding import store_keyspace
        from xbot_assets.store.hot.keys import redis_from_settings

        store = DurableStore.from_settings(settings)
        client = client if client is not None else redis_from_settings(settings)
        return cls.from_durable(
            store,
            client,
            store_keyspace(settings, store.engine)
            if client is not None
            else KeySpace.from_settings(settings),
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


__all__ = [
    "ClaimResult",
    "DualStoreManager",
    "PostTicket",
    "StoresUnavailableError",
    "SyncReport",
    "is_durable_outage",
]
