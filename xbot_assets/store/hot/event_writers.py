"""Idempotent batch writers of the hot path's high-volume events into the durable store, and the
events' stream encoding (shared by direct writes and the sync worker)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text

from xbot_assets.store.durable.audit import insert_audit
from xbot_assets.store.durable.base import chunks
from xbot_assets.store.durable.metrics import upsert_metric_rows
from xbot_assets.store.durable.schema import system_health
from xbot_assets.store.hot.dual_core import EVENT_KINDS, EventKind
from xbot_assets.store.timebase import as_utc

_UPSERT_CHUNK = 1000
_HEALTH_LOCK = zlib.crc32(b"xbot-sync:system_health")

# --- idempotent batch writers (against the store's table objects) --------------------------------


def upsert_metric_snapshots(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert into ``tweet_metrics`` on ``(environment, tweet_id, horizon)`` with the metrics
    repository's statement; a newer collection replaces an older one, a replay changes nothing."""
    return upsert_metric_rows(conn, rows)


def insert_audit_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert into ``audit_log`` with the audit repository's statement; a replayed ``event_id``
    is skipped. Returns how many rows were given."""
    insert_audit(conn, list(rows))
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
    for chunk in chunks(fresh, _UPSERT_CHUNK):
        conn.execute(insert(system_health), list(chunk))
    return len(fresh)


WRITERS = {
    "metric_snapshot": upsert_metric_snapshots,
    "audit": insert_audit_events,
    "health": insert_health_events,
}
_TIME_FIELDS = {"metric_snapshot": "collected_at", "audit": "occurred_at", "health": "recorded_at"}


def encode_event(kind: EventKind, row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out[_TIME_FIELDS[kind]] = as_utc(out[_TIME_FIELDS[kind]]).isoformat()
    return {"kind": kind, "row": out}


def decode_event(payload: Mapping[str, Any]) -> tuple[EventKind, dict[str, Any]]:
    kind = payload["kind"]
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    row = dict(payload["row"])
    row[_TIME_FIELDS[kind]] = datetime.fromisoformat(row[_TIME_FIELDS[kind]])
    return kind, row
