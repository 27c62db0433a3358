"""The controls page: the brake, the caps and AI budget left today, and component health.

Reads through the operator helpers the CLI uses (``ops.status.caps_left``,
``ops.component_status``, ``store.brake``), so the console and ``xbot status`` never disagree.
"""

from __future__ import annotations

from typing import Any

from xbot_assets.console.views import config_value
from xbot_assets.ops.component_status import latest_component_statuses
from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.redact import redact
from xbot_assets.store.brake import EmergencyBrake, read_durable_brake
from xbot_assets.store.keys import KeySpace
from xbot_assets.store.timebase import Clock

AI_SPEND_KEY_PREFIX = "ai_spend:"


def controls_view(settings: Any, store: Any, account: Any, clock: Clock) -> dict[str, Any]:
    """Brake state, caps left for the account, today's AI spend and every component's status."""
    from xbot_assets.health.checks import HealthContext
    from xbot_assets.ops.status import caps_left

    ctx = HealthContext(settings, engine=store.engine, clock=clock)
    env = store.environment
    now = clock()
    with read_connection(store.engine) as conn:
        brake = read_durable_brake(conn, env)
        caps = caps_left(ctx, conn, account.id)
        spend = config_value(conn, env, AI_SPEND_KEY_PREFIX + now.date().isoformat())
        components = latest_component_statuses(conn, environment=env)
    spend = spend if isinstance(spend, dict) else {}
    spent = float(spend.get("usd", 0.0) or 0.0)
    budget = float(settings.ai_budget_usd_per_day)
    return {
        "brake": brake,
        "caps": caps,
        "spend": {
            "usd": spent,
            "calls": int(spend.get("calls", 0) or 0),
            "budget": budget,
            "left": max(0.0, budget - spent),
        },
        "components": [
            {
                "name": name,
                "status": row.status,
                "recorded_at": row.recorded_at.isoformat(timespec="minutes"),
                "age_min": round((now - row.recorded_at).total_seconds() / 60, 1),
                "message": redact(row.message)[:300] if row.message else None,
            }
            for name, row in sorted(components.items())
        ],
    }


def set_brake(
    settings: Any, store: Any, *, engaged: bool, reason: str, actor: str, clock: Clock
) -> None:
    """Engage or release the brake (durable row + audit in one transaction; Redis mirror when
    REDIS_URL is set), exactly as ``xbot brake`` does."""
    from xbot_assets.store.keys import redis_from_settings

    client = redis_from_settings(settings) if settings.redis_url else None
    brake = EmergencyBrake(
        store.engine, store.environment, client, KeySpace.from_settings(settings), clock=clock
    )
    try:
        if engaged:
            brake.engage(reason, actor=actor)
        else:
            brake.release(reason, actor=actor)
    finally:
        if client is not None:
            client.close()
