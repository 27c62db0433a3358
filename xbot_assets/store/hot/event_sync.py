"""The high-volume events of the hot path: written to the durable store at once, buffered in the
``sync_to_supabase`` stream only while the store is down, and synced back (see ``dual.py``).

Why one module of about 530 lines: the write path (``record_*``, the write-ahead to
``analytics_processing``) and the sync path (``sync_once``, ``drain``, the outbox) share one
invariant, that an event is in the store or in a stream and never in neither, and reading them
side by side is how that invariant is checked; the row writers already live in
``event_writers.py``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from xbot_assets.store.durable.schema import HEALTH_STATUSES, HORIZONS, METRIC_NAMES
from xbot_assets.store.hot.dual_core import (
    DualCore,
    EventKind,
    StoresUnavailableError,
    is_durable_outage,
    log,
)
from xbot_assets.store.hot.event_writers import WRITERS, decode_event, encode_event
from xbot_assets.store.hot.streams import Message, Priority
from xbot_assets.store.timebase import as_utc


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


class EventSync(DualCore):
    """Record metric snapshots, audit rows and health rows; buffer and sync them when needed."""

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

    def _write_direct(self, kind: EventKind, rows: Sequence[dict[str, Any]]) -> bool:
        """Write ``rows`` to the store in one transaction. False: the store is down (raised for
        bad data: the caller must see it)."""
        try:
            with self.engine.begin() as conn:
                WRITERS[kind](conn, rows)
        except DBAPIError as exc:
            if not is_durable_outage(exc):
                raise
            self._durable_failed(exc)
            return False
        self._durable_down_until = 0.0
        return True

    def _write_ahead(self, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> bool:
        """XADD metric snapshots to ``analytics_processing`` before the store write (one round
        trip): a collector that dies between its X reads and its store write leaves them there,
        and the sync job stores them without reading X again. False: Redis did not take them."""
        queue = self.analytics_queue
        if queue is None or not self.redis_available():
            return False
        try:
            payloads = [encode_event("metric_snapshot", row) for row in rows]
            queue.enqueue_many(list(zip(keys, payloads, strict=True)))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return False
        return True

    def drain_analytics(self, max_rows: int = 1000) -> SyncReport:
        """Store one batch of ``analytics_processing`` (idempotent upserts), then acknowledge it.

        Most entries are already in the store (written right after their XADD): the upsert keeps
        the newest collection, so a replay changes nothing. Own pending entries (a batch left by
        a store outage) come first, then entries of dead workers, then new ones; with the store
        down the batch stays pending.
        """
        report = SyncReport()
        queue = self.analytics_queue
        if queue is None or not self.redis_available():
            report.redis_down = True
            return report
        try:
            messages = queue.read_own_pending(self.consumer, count=max_rows)
            if len(messages) < max_rows and self._reclaim_due(queue):
                messages += queue.claim_idle(self.consumer, count=max_rows - len(messages))
            if len(messages) < max_rows:
                messages += queue.read(self.consumer, count=max_rows - len(messages))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            report.redis_down = True
            return report
        rows: list[dict[str, Any]] = []
        good: list[Message] = []
        for message in messages:
            try:
                _kind, row = decode_event(message.payload)
            except (KeyError, ValueError, TypeError) as exc:
                queue.fail(message, f"undecodable snapshot: {type(exc).__name__}: {exc}")
                report.dead += 1
                continue
            rows.append(row)
            good.append(message)
        if not good:
            return report
        try:
            with self.engine.begin() as conn:
                report.rows["metric_snapshot"] = WRITERS["metric_snapshot"](conn, rows)
            report.acked = queue.ack(good)
        except DBAPIError as exc:
            if not is_durable_outage(exc):
                raise
            self._durable_failed(exc)
            report.durable_down = True
        except redis.RedisError as exc:  # stored, not acked: the replay is a no-op
            self._redis_failed(exc)
            report.redis_down = True
        return report

    def _emit(self, kind: EventKind, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
        """Make ``rows`` durable before returning: the store first, Redis while it is down.

        Metric snapshots are also written ahead to ``analytics_processing`` first (with Redis),
        which the sync job drains into the store (:meth:`drain_analytics`).
        """
        if kind == "metric_snapshot":
            self._write_ahead(rows, keys)
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
            payloads = [encode_event(kind, row) for row in rows]
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
                events.append(decode_event(payload))
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
                        WRITERS[kind](conn, [row])
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
        for queue in (self.sync_queue, self.posts_queue, self.analytics_queue):
            if queue is None:
                continue
            try:
                removed += queue.trim()
            except redis.RedisError as exc:
                self._redis_failed(exc)
                break
        return removed

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
                kind, row = decode_event(message.payload)
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
        return {kind: WRITERS[kind](conn, rows) for kind, rows in grouped.items()}

    def _sync_row_by_row(
        self, decoded: Sequence[tuple[Message, EventKind, dict[str, Any]]], report: SyncReport
    ) -> None:
        assert self.sync_queue is not None
        for message, kind, row in decoded:
            try:
                with self.engine.begin() as conn:
                    WRITERS[kind](conn, [row])
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
        """Run :meth:`sync_once` until the buffer is empty or the durable store is down, and
        :meth:`drain_analytics` likewise."""
        total = self._drain_with(self.sync_once, max_batches, max_rows)
        analytics = self._drain_with(self.drain_analytics, max_batches, max_rows)
        for kind, n in analytics.rows.items():
            total.rows[f"analytics_{kind}"] = total.rows.get(f"analytics_{kind}", 0) + n
        total.acked += analytics.acked
        total.dead += analytics.dead
        total.durable_down |= analytics.durable_down
        total.redis_down |= analytics.redis_down
        return total

    @staticmethod
    def _drain_with(step_fn: Any, max_batches: int, max_rows: int) -> SyncReport:
        total = SyncReport()
        for _ in range(max_batches):
            step = step_fn(max_rows)
            for kind, n in step.rows.items():
                total.rows[kind] = total.rows.get(kind, 0) + n
            total.acked += step.acked
            total.dead += step.dead
            total.durable_down |= step.durable_down
            total.redis_down |= step.redis_down
            if step.durable_down or step.redis_down or (step.acked == 0 and step.dead == 0):
                break
        return total
