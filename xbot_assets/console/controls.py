"""The controls page: the brake, the caps and AI budget left today, and component health.

Reads through the operator helpers the CLI uses (``ops.status.caps_left``,
``ops.component_status``, ``store.brake``), so the console and ``xbot status`` never disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from xbot_assets.console.views import config_value
from xbot_assets.ops.component_status import latest_component_statuses
from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.redact import redact
from xbot_assets.store.durable.schema import tweets
from xbot_assets.store.hot.brake import EmergencyBrake, read_durable_brake
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.timebase import Clock

AI_SPEND_KEY_PREFIX = "ai_spend:"
ON_X_STATUSES = ("posting", "posted", "unknown")


def _roots_on_x_since(conn: Connection, env: str, account_id: int, since: datetime) -> int:
    """Roots on X (or maybe) since ``since``, counted as the claim's gate counts them
    (``coalesce(posted_at, posting_started_at)``) but in two index ranges: posted rows by
    ``posted_at`` (ix_tweets_posted_at) and in-flight rows by status (ix_tweets_due)."""
    base = (
        tweets.c.environment == env,
        tweets.c.account_id == account_id,
        tweets.c.thread_position == 0,
    )
    posted = conn.execute(
        select(func.count()).where(
            *base, tweets.c.posted_at >= since, tweets.c.status.in_(ON_X_STATUSES)
        )
    ).scalar_one()
    in_flight = conn.execute(
        select(func.count()).where(
            *base,
            tweets.c.status.in_(("posting", "unknown")),
            tweets.c.posted_at.is_(None),
            tweets.c.posting_started_at >= since,
        )
    ).scalar_one()
    return int(posted) + int(in_flight)


def _last_root_at(conn: Connection, env: str, account_id: int) -> datetime | None:
    base = (
        tweets.c.environment == env,
        tweets.c.account_id == account_id,
        tweets.c.thread_position == 0,
    )
    found = [
        conn.execute(
            select(func.max(tweets.c.posted_at)).where(*base, tweets.c.status.in_(ON_X_STATUSES))
        ).scalar(),
        conn.execute(
            select(func.max(tweets.c.posting_started_at)).where(
                *base, tweets.c.status.in_(("posting", "unknown")), tweets.c.posted_at.is_(None)
            )
        ).scalar(),
    ]
    values = []
    for value in found:
        if isinstance(value, str):  # SQLite returns text for MAX over a decorated column
            value = datetime.fromisoformat(value)
        if value is not None:
            values.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    return max(values, default=None)


def caps_left(
    settings: Any, conn: Connection, env: str, account_id: int, now: datetime
) -> dict[str, Any]:
    """What ``ops.status.caps_left`` reports (same keys and rules), in index ranges: with
    100,000 posted rows the coalesce there reads every row of the account."""
    hour = _roots_on_x_since(conn, env, account_id, now - timedelta(hours=1))
    day = _roots_on_x_since(conn, env, account_id, now - timedelta(days=1))
    last = _last_root_at(conn, env, account_id)
    spacing = timedelta(minutes=settings.min_spacing_minutes)
    next_allowed = last + spacing if last is not None and last + spacing > now else None
    return {
        "posts_last_hour": hour,
        "posts_last_24h": day,
        "left_this_hour": max(0, settings.max_posts_per_hour - hour),
        "left_today": max(0, settings.max_posts_per_day - day),
        "max_posts_per_hour": settings.max_posts_per_hour,
        "max_posts_per_day": settings.max_posts_per_day,
        "spacing_allows_next_at": next_allowed.isoformat() if next_allowed else None,
    }


def controls_view(settings: Any, store: Any, account: Any, clock: Clock) -> dict[str, Any]:
    """Brake state, caps left for the account, today's AI spend and every component's status."""
    env = store.environment
    now = clock()
    with read_connection(store.engine) as conn:
        brake = read_durable_brake(conn, env)
        caps = caps_left(settings, conn, env, account.id, now)
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
    from xbot_assets.store.hot.keys import redis_from_settings

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
