"""Health: component observations (``ok``/``degraded``/``down``) over time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.base import Repository, utcnow
from xbot_assets.store.durable.models import HealthRecord
from xbot_assets.store.durable.validate import (
    valid_health_status,
    valid_json_obj,
    valid_opt_str,
    valid_opt_time,
    valid_str,
)


class HealthRepository(Repository):
    """Record and read component health."""

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
        component = valid_str("component", component, 64)
        status = valid_health_status(status)
        values = {
            "environment": self.environment,
            "recorded_at": valid_opt_time("recorded_at", recorded_at) or utcnow(),
            "component": component,
            "status": status,
            "metrics": valid_json_obj("metrics", metrics),
            "message": valid_opt_str("message", message, 4000),
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


__all__ = ["HealthRepository"]
