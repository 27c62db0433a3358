"""Audit: the append-only audit_log (who did what, when), idempotent by ``event_id``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.base import (
    MAX_BATCH_ROWS,
    Repository,
    chunks,
    dialect_insert,
    ints,
    utcnow,
)
from xbot_assets.store.durable.errors import InvalidInputError
from xbot_assets.store.durable.models import AuditEvent
from xbot_assets.store.durable.validate import (
    valid_json_obj,
    valid_limit,
    valid_opt_str,
    valid_opt_time,
    valid_severity,
    valid_str,
)


class AuditRepository(Repository):
    """Append and read the environment's audit_log."""

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
        row = audit_row(self.environment, 0, event)
        with self._tx() as conn:
            return insert_audit(conn, [row])[0]

    def audit_many(self, events: Sequence[AuditEvent]) -> int:
        """Append many entries in multi-row statements; entries whose ``event_id`` is already
        stored are skipped (so the hot path can replay its backlog). Returns how many were new."""
        if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
            raise InvalidInputError("events must be a list of AuditEvent")
        rows = [audit_row(self.environment, i, e) for i, e in enumerate(events)]
        if not rows:
            return 0
        with self._tx() as conn:
            return sum(1 for x in insert_audit(conn, rows) if x is not None)

    def list_audit(
        self,
        *,
        event_type: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Recent audit entries, newest first."""
        since = valid_opt_time("since", since)
        limit = valid_limit(limit)
        a = s.audit_log
        q = select(a).where(a.c.environment == self.environment)
        if event_type is not None:
            q = q.where(a.c.event_type == valid_str("event_type", event_type, 64))
        if since is not None:
            q = q.where(a.c.occurred_at >= since)
        q = q.order_by(a.c.occurred_at.desc(), a.c.id.desc()).limit(limit)
        with self._tx(write=False) as conn:
            return [AuditEvent(**r._mapping) for r in conn.execute(q)]


def write_audit(conn: Connection, environment: str, event: AuditEvent) -> None:
    """Append one entry in the caller's transaction (so it commits with the change it records)."""
    insert_audit(conn, [audit_row(environment, 0, event)])


def audit_row(environment: str, i: int, e: Any) -> dict[str, Any]:
    """The checked audit_log row of event ``i`` (raises :class:`InvalidInputError`)."""
    if not isinstance(e, AuditEvent):
        raise InvalidInputError(f"events[{i}] is a {type(e).__name__}: pass AuditEvent")
    severity = valid_severity(e.severity)
    return {
        "environment": environment,
        "event_id": valid_opt_str("event_id", e.event_id, 64),
        "occurred_at": valid_opt_time("occurred_at", e.occurred_at) or utcnow(),
        "event_type": valid_str("event_type", e.event_type, 64),
        "component": valid_str("component", e.component, 64),
        "severity": severity,
        "actor": valid_str("actor", e.actor, 128),
        "data": valid_json_obj("data", e.data),
    }


def insert_audit(conn: Connection, rows: list[dict[str, Any]]) -> list[int | None]:
    """Insert checked rows; ids in order (None: that ``event_id`` was already stored)."""
    a = s.audit_log
    out: list[int | None] = []
    for chunk in chunks(rows, MAX_BATCH_ROWS):
        keyed = [r for r in chunk if r["event_id"] is not None]
        plain = [r for r in chunk if r["event_id"] is None]
        if plain:
            res = conn.execute(a.insert().returning(a.c.id, sort_by_parameter_order=True), plain)
            out.extend(ints(res.scalars()))
        if keyed:
            stmt = dialect_insert(conn.dialect.name, a).values(keyed)
            stmt = stmt.on_conflict_do_nothing(index_elements=[a.c.environment, a.c.event_id])
            res = conn.execute(stmt.returning(a.c.id))
            new = ints(res.scalars())
            out.extend(new)
            out.extend([None] * (len(keyed) - len(new)))
    return out


__all__ = ["AuditRepository", "audit_row", "insert_audit", "write_audit"]
