"""The audit trail: every state change an operator or the learning engine makes, with who did it.

One row in ``audit_log`` per change (config, brake, manual post, model promotion, migration).
The ``actor`` says who: ``operator:<user>`` for a person at the ``xbot`` command, ``learning`` for
the learning engine, ``dagster:<run id>`` for a run. ``data`` holds ids and settings, never post
text or a secret: :func:`record_audit` refuses keys that look like either.
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, desc, insert, select

from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.durable.schema import SEVERITIES, audit_log
from xbot_assets.store.timebase import Clock, utc_now

EVENT_CONFIG_CHANGED = "config.changed"
EVENT_BRAKE_ENGAGED = "brake.engaged"
EVENT_BRAKE_RELEASED = "brake.released"
EVENT_MANUAL_POST = "post.manual"
EVENT_MODEL_PROMOTED = "model.promoted"
EVENT_MIGRATED = "store.migrated"

_FORBIDDEN_DATA_KEYS = frozenset(
    {"text", "body", "password", "token", "secret", "api_key", "cookie", "cookies"}
)


def operator_actor() -> str:
    """``operator:<login name>``: who typed an ``xbot`` command (``XBOT_ACTOR`` wins if set)."""
    explicit = os.environ.get("XBOT_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    return f"operator:{user}"


def _check_data(data: Mapping[str, Any]) -> dict[str, Any]:
    bad = sorted(k for k in data if k.lower() in _FORBIDDEN_DATA_KEYS)
    if bad:
        raise ValueError(
            f"audit data must not carry post text or secrets (keys {bad}): pass ids instead"
        )
    return dict(data)


def record_audit(
    target: Engine | Connection,
    *,
    environment: str,
    event_type: str,
    actor: str,
    component: str,
    data: Mapping[str, Any] | None = None,
    severity: str = "info",
    event_id: str | None = None,
    clock: Clock = utc_now,
) -> str:
    """Append one audit row; returns its ``event_id``.

    Args:
        target: an engine (a transaction of its own) or a connection inside the caller's
            transaction, so the audit row commits with the change it records.
        environment: ``local``/``staging``/``production``.
        event_type: e.g. :data:`EVENT_BRAKE_ENGAGED`.
        actor: who did it (see the module docstring).
        component: which part of xbot recorded it (``cli``, ``learning``, ``posting``...).
        data: ids and values of the change; no post text, no secrets.
        severity: one of ``debug``/``info``/``warning``/``error``/``critical``.
        event_id: a stable id to make a retried write idempotent (unique in the table).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    if not actor:
        raise ValueError("an audit row needs an actor: who or what made the change")
    row = {
        "environment": environment,
        "event_id": event_id or uuid.uuid4().hex,
        "occurred_at": clock(),
        "event_type": event_type,
        "component": component,
        "severity": severity,
        "actor": actor,
        "data": _check_data(data or {}),
    }
    if isinstance(target, Engine):
        with target.begin() as conn:
            conn.execute(insert(audit_log).values(**row))
    else:
        target.execute(insert(audit_log).values(**row))
    return str(row["event_id"])


def recent_audit(
    engine: Engine,
    *,
    environment: str,
    event_type: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The newest audit rows (optionally of one type), newest first."""
    query = select(
        audit_log.c.event_id,
        audit_log.c.occurred_at,
        audit_log.c.event_type,
        audit_log.c.component,
        audit_log.c.severity,
        audit_log.c.actor,
        audit_log.c.data,
    ).where(audit_log.c.environment == environment)
    if event_type is not None:
        query = query.where(audit_log.c.event_type == event_type)
    query = query.order_by(desc(audit_log.c.occurred_at), desc(audit_log.c.id)).limit(limit)
    with read_connection(engine) as conn:
        rows = conn.execute(query).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        occurred: datetime = item["occurred_at"]
        item["occurred_at"] = occurred.isoformat()
        out.append(item)
    return out
