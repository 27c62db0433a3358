"""Read the emergency brake for the health server and ``xbot status``.

The hot path owns the brake (:mod:`xbot_assets.store.hot.brake`): its truth is a ``bot_config`` row,
mirrored in Redis. Readiness reads the durable row itself (the same row every claim reads), in a
read-only transaction, so a stale mirror can never make the health server say "off" while the
poster sees "on".

:class:`BrakeState` lives here, not in ``health/checks.py``, so this module imports nothing from
``health/`` and the health checks import it one way only (no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.hot.brake import read_durable_brake


@dataclass(frozen=True, slots=True)
class BrakeState:
    """The emergency brake as the health server sees it."""

    engaged: bool
    source: str
    reason: str | None = None
    actor: str | None = None
    since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "engaged": self.engaged,
            "source": self.source,
            "reason": self.reason,
            "actor": self.actor,
            "since": self.since.isoformat() if self.since else None,
        }


def read_brake(engine: Engine, environment: str) -> BrakeState:
    """The brake of ``environment`` as the durable store holds it."""
    with read_connection(engine) as conn:
        status = read_durable_brake(conn, environment)
    return BrakeState(
        engaged=status.engaged,
        source="durable_store",
        reason=status.reason,
        actor=status.by,
        since=status.since,
    )
