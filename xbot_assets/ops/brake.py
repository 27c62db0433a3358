"""Read the emergency brake for the health server and ``xbot status``.

The hot path owns the brake (:mod:`xbot_assets.store.hot.brake`): its truth is a ``bot_config`` row,
mirrored in Redis. Readiness reads the durable row itself (the same row every claim reads), in a
read-only transaction, so a stale mirror can never make the health server say "off" while the
poster sees "on".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xbot_assets.ops.dbread import read_connection
from xbot_assets.store.hot.brake import read_durable_brake

if TYPE_CHECKING:
    from xbot_assets.health.checks import BrakeState, HealthContext


def read_brake(ctx: HealthContext) -> BrakeState:
    """The brake as the durable store holds it."""
    from xbot_assets.health.checks import BrakeState

    with read_connection(ctx.engine) as conn:
        status = read_durable_brake(conn, ctx.environment)
    return BrakeState(
        engaged=status.engaged,
        source="durable_store",
        reason=status.reason,
        actor=status.by,
        since=status.since,
    )
