"""Read the emergency brake for the health server, whatever holds it.

The hot path owns the brake (Redis for speed, the durable store as the truth the poster checks
right before a claim). This module only *reads* it for readiness and metrics: it asks the hot
path's brake module when that module is present, and otherwise reads the durable record
(``bot_config`` key :data:`BRAKE_CONFIG_KEY`) directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.schema import bot_config

if TYPE_CHECKING:
    from xbot_assets.health.checks import BrakeState, HealthContext

BRAKE_CONFIG_KEY = "emergency_brake"


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) else None


def read_durable_brake(ctx: HealthContext) -> BrakeState:
    """The brake as recorded in ``bot_config`` (absent: off)."""
    from xbot_assets.health.checks import BrakeState

    with read_connection(ctx.engine) as conn:
        row = conn.execute(
            select(bot_config.c.value, bot_config.c.updated_by, bot_config.c.updated_at).where(
                and_(
                    bot_config.c.environment == ctx.environment,
                    bot_config.c.key == BRAKE_CONFIG_KEY,
                )
            )
        ).first()
    if row is None:
        return BrakeState(engaged=False, source="durable_store")
    value = row.value if isinstance(row.value, dict) else {"engaged": bool(row.value)}
    return BrakeState(
        engaged=bool(value.get("engaged", value.get("on", False))),
        source="durable_store",
        reason=value.get("reason"),
        actor=value.get("actor") or row.updated_by,
        since=_parse_time(value.get("since")) or row.updated_at,
    )


def read_brake(ctx: HealthContext) -> BrakeState:
    """The brake state, from the hot path's brake module if present, else the durable record."""
    return read_durable_brake(ctx)
