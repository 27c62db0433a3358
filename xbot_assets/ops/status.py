"""What ``xbot status`` and ``xbot post --dry-run`` show an operator.

:func:`collect_status`: the queue (posts by state, Redis queue depths), the next scheduled posts,
the last posts, the rate caps left per account, today's AI spend, and the readiness checks.
:func:`dry_run_next_post`: the post the poster would claim next, with its arm, scores, the
safety guard's verdict on its text and the gate (brake, back-off, caps) as of now; nothing is
claimed, sent or written.

Both read only (deferred transactions on SQLite), and return JSON-ready dicts; the CLI renders
them as text or prints them with ``--json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Connection, and_, func, select

from xbot_assets.health.checks import HealthContext, run_checks
from xbot_assets.ops.component_health import component_health
from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.redact import redact
from xbot_assets.store.budget import (
    XApiCaps,
    XApiUsageLedger,
)
from xbot_assets.store.durable.config import config_value
from xbot_assets.store.durable.schema import accounts, tweets

ON_X_STATUSES = ("posting", "posted", "unknown")
"""Rows that are (or may be) on X; they count against the caps (as in the posting ledger)."""
AI_SPEND_KEY_PREFIX = "ai_spend:"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _count_roots_since(conn: Connection, env: str, account_id: int, since: datetime) -> int:
    when = func.coalesce(tweets.c.posted_at, tweets.c.posting_started_at)
    return int(
        conn.execute(
            select(func.count()).where(
                and_(
                    tweets.c.environment == env,
                    tweets.c.account_id == account_id,
                    tweets.c.status.in_(ON_X_STATUSES),
                    tweets.c.thread_position == 0,
                    when >= since,
                )
            )
        ).scalar_one()
    )


def _last_root_at(conn: Connection, env: str, account_id: int) -> datetime | None:
    when = func.coalesce(tweets.c.posted_at, tweets.c.posting_started_at)
    value = conn.execute(
        select(func.max(when)).where(
            and_(
                tweets.c.environment == env,
                tweets.c.account_id == account_id,
                tweets.c.status.in_(ON_X_STATUSES),
                tweets.c.thread_position == 0,
            )
        )
    ).scalar()
    if isinstance(value, str):  # SQLite returns text for MAX over a COALESCE of timestamps
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


def caps_left(ctx: HealthContext, conn: Connection, account_id: int) -> dict[str, Any]:
    """Posts left in the rolling hour and day, and the earliest time spacing allows the next."""
    settings, env, now = ctx.settings, ctx.environment, ctx.clock()
    hour = _count_roots_since(conn, env, account_id, now - timedelta(hours=1))
    day = _count_roots_since(conn, env, account_id, now - timedelta(days=1))
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
        "spacing_allows_next_at": _iso(next_allowed),
    }


def _queue_stats(ctx: HealthContext) -> dict[str, Any]:
    client = ctx.redis
    if client is None:
        return {"configured": False}
    from xbot_assets.store.hot.streams import QUEUE_NAMES, StreamQueue

    out: dict[str, Any] = {"configured": True, "reachable": True, "queues": {}}
    try:
        for name in QUEUE_NAMES:
            out["queues"][name] = StreamQueue(client, ctx.keys, name).stats()
    except redis.RedisError:
        return {"configured": True, "reachable": False}
    return out


SIMULATED_UNTIL_KEY = "main_job.simulated_until"
"""bot_config key the main job (``xbot run``) leaves: the simulated time it stopped at."""


def _journal_time(path: Path) -> datetime | None:
    """The time of the sandbox journal's last entry (its clock when the last writer stopped)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            tail = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for line in reversed(tail.strip().splitlines()):
        try:
            at = json.loads(line).get("at")
        except ValueError:
            continue
        if at:
            return datetime.fromisoformat(at)
    return None


def local_clock(settings: Any, engine: Any = None) -> Callable[[], datetime] | None:
    """The clock a local run is judged by: the sandbox's simulated clock, or None to use the wall
    clock (staging, production, or a local store the sandbox never ran for).

    A local deployment lives on the sandbox's time (``xbot run`` simulates days in minutes), so
    "no post for 317 days" against the wall clock would be a false alarm. The time is the later
    of where the last main job stopped (bot_config) and the sandbox journal's last entry.
    """
    if settings.app_env != "local" or settings.resolved_poster != "sandbox":
        return None
    from xbot_assets.engine.runtime import sandbox_journal_path

    found = [_journal_time(sandbox_journal_path(settings))]
    if engine is not None:
        with read_connection(engine) as conn:
            until = config_value(conn, settings.app_env, SIMULATED_UNTIL_KEY)
        if isinstance(until, str):
            found.append(datetime.fromisoformat(until))
    times = [t for t in found if t is not None]
    if not times:
        return None
    simulated = max(times)
    return lambda: simulated


def collect_status(ctx: HealthContext, *, limit: int = 5) -> dict[str, Any]:
    """Everything ``xbot status`` shows (ids, arms and times only: no post text)."""
    env = ctx.environment
    now = ctx.clock()
    report = run_checks(ctx)
    result: dict[str, Any] = {
        "environment": env,
        "checked_at": now.isoformat(),
        "poster": ctx.settings.resolved_poster,
        "posting_to_real_x": ctx.settings.posting_to_real_x,
        "health": report.as_dict(),
    }
    if report.check("durable_store").status == "down":
        return result
    with read_connection(ctx.engine) as conn:
        by_status: dict[str, int] = {
            str(row[0]): int(row[1])
            for row in conn.execute(
                select(tweets.c.status, func.count())
                .where(tweets.c.environment == env)
                .group_by(tweets.c.status)
            ).all()
        }
        next_rows = conn.execute(
            select(
                tweets.c.id,
                tweets.c.account_id,
                tweets.c.arm,
                tweets.c.score,
                tweets.c.scheduled_at,
                tweets.c.thread_size,
            )
            .where(
                and_(
                    tweets.c.environment == env,
                    tweets.c.status == "queued",
                    tweets.c.thread_position == 0,
                )
            )
            .order_by(tweets.c.scheduled_at, tweets.c.id)
            .limit(limit)
        ).all()
        last_rows = conn.execute(
            select(
                tweets.c.id,
                tweets.c.account_id,
                tweets.c.x_id,
                tweets.c.arm,
                tweets.c.posted_at,
                tweets.c.thread_size,
            )
            .where(
                and_(
                    tweets.c.environment == env,
                    tweets.c.status == "posted",
                    tweets.c.thread_position == 0,
                )
            )
            .order_by(tweets.c.posted_at.desc(), tweets.c.id.desc())
            .limit(limit)
        ).all()
        account_rows = conn.execute(
            select(accounts.c.id, accounts.c.handle).where(
                and_(accounts.c.environment == env, accounts.c.active.is_(True))
            )
        ).all()
        caps = {row.handle: caps_left(ctx, conn, int(row.id)) for row in account_rows}
        learned_value = config_value(conn, env, "learned")
        spend_value = config_value(conn, env, AI_SPEND_KEY_PREFIX + now.date().isoformat())
        components = component_health(conn, environment=env, now=now)
        x_budget = XApiUsageLedger(ctx.engine, env, XApiCaps.from_settings(ctx.settings))
        x_api = _x_api_budget(conn, x_budget, now)
    spend = spend_value if isinstance(spend_value, dict) else {}
    learned = learned_value if isinstance(learned_value, dict) else {}
    spent = float(spend.get("usd", 0.0) or 0.0)
    budget = float(ctx.settings.ai_budget_usd_per_day)
    result.update(
        {
            "posts_by_status": {s: by_status.get(s, 0) for s in sorted(by_status)},
            "next_posts": [
                {
                    "id": int(r.id),
                    "account_id": int(r.account_id),
                    "arm": r.arm,
                    "score": r.score,
                    "scheduled_at": _iso(r.scheduled_at),
                    "parts": int(r.thread_size),
                }
                for r in next_rows
            ],
            "last_posts": [
                {
                    "id": int(r.id),
                    "account_id": int(r.account_id),
                    "x_id": r.x_id,
                    "arm": r.arm,
                    "posted_at": _iso(r.posted_at),
                    "parts": int(r.thread_size),
                }
                for r in last_rows
            ],
            "caps": caps,
            "learned": {
                "best_slots_local_hours": list(learned.get("best_slots", []) or []),
                "best_topics": list(learned.get("best_topics", []) or []),
                "cold_start": learned.get("cold_start"),
            },
            "ai_spend_today": {
                "usd": round(spent, 4),
                "calls": int(spend.get("calls", 0) or 0),
                "budget_usd": budget,
                "left_usd": round(max(0.0, budget - spent), 4),
            },
            "queues": _queue_stats(ctx),
            "x_api_budget": x_api,
            "components": {
                name: {
                    **row.as_dict(),
                    "age_s": round((now - row.recorded_at).total_seconds(), 1),
                    "message": redact(row.last_error)[:300]
                    if row.last_error and row.reported_status != "ok"
                    else None,
                }
                for name, row in sorted(components.items())
            },
        }
    )
    return result


def _x_api_budget(conn: Connection, ledger: XApiUsageLedger, now: datetime) -> dict[str, Any]:
    """The month's X API use against the plan (``store/budget.py``), read in ``conn``."""
    usage = ledger.month_usage_in(conn, now)
    return {
        **usage.as_dict(),
        "reads_used_ratio": round(usage.used_ratio("read"), 4),
        "writes_used_ratio": round(usage.used_ratio("write"), 4),
    }


def render_status(status: dict[str, Any]) -> str:
    """The text form of :func:`collect_status` for a terminal."""
    health = status["health"]
    lines = [
        f"environment  {status['environment']}   poster {status['poster']}   "
        f"real X: {'yes' if status['posting_to_real_x'] else 'no'}",
        f"health       {health['status'].upper()} ({'ready' if health['ready'] else 'NOT ready'})",
    ]
    if status.get("clock"):
        lines.append(f"clock        {status['clock']}: {status['checked_at'][:16]}")
    for check in health["checks"]:
        lines.append(f"  {check['status']:<9} {check['name']:<19} {check['detail']}")
    if "posts_by_status" not in status:
        return "\n".join(lines)
    counts = ", ".join(f"{k} {v}" for k, v in status["posts_by_status"].items()) or "none"
    lines.append(f"posts        {counts}")
    queues = status["queues"]
    if not queues.get("configured"):
        lines.append("redis queues not configured (durable-store fallback)")
    elif not queues.get("reachable"):
        lines.append("redis queues UNREACHABLE (durable-store fallback active)")
    else:
        for name, stats in queues["queues"].items():
            lines.append(
                f"  queue {name:<22} entries {stats['stream_entries']:<5} pending "
                f"{stats['pending']:<4} delayed {stats['delayed']:<4} dead {stats['dead']}"
            )
    lines.append("next posts")
    for post in status["next_posts"] or [{"id": None}]:
        if post["id"] is None:
            lines.append("  (queue empty)")
            continue
        lines.append(
            f"  #{post['id']:<6} {post['scheduled_at']}  {post['arm'] or '-':<22} "
            f"parts {post['parts']}  score {post['score'] if post['score'] is not None else '-'}"
        )
    slots = status["learned"]["best_slots_local_hours"]
    lines.append(
        "next slots   learned best hours (local): "
        + (", ".join(f"{h:02d}:00" for h in slots) if slots else "none learned yet")
    )
    lines.append("last posts")
    for post in status["last_posts"] or [{"id": None}]:
        if post["id"] is None:
            lines.append("  (none yet)")
            continue
        lines.append(
            f"  #{post['id']:<6} {post['posted_at']}  {post['arm'] or '-':<22} x_id {post['x_id']}"
        )
    lines.append("caps left")
    for handle, caps in status["caps"].items():
        spacing = caps["spacing_allows_next_at"]
        lines.append(
            f"  @{handle}: {caps['left_this_hour']}/{caps['max_posts_per_hour']} this hour, "
            f"{caps['left_today']}/{caps['max_posts_per_day']} in 24h"
            + (f", spacing allows the next at {spacing}" if spacing else "")
        )
    budget = status["x_api_budget"]
    lines.append(
        f"X API        {budget['month']}: reads {budget['reads']}/{budget['reads_per_month']} "
        f"({budget['reads_left']} left), writes {budget['writes']}/"
        f"{budget['writes_per_month']} ({budget['writes_left']} left), "
        f"{budget['cost_usd']:.2f} USD"
    )
    lines.append("components (status, last success, lag; stalled = no success in 2 intervals)")
    for name, row in status["components"].items() or [("(none yet)", None)]:
        if row is None:
            lines.append(f"  {name}")
            continue
        detail = f": {row['message']}" if row["message"] else ""
        stalled = " STALLED" if row["stalled"] else ""
        lag = f" lag {row['lag_s']:.0f}s" if row["lag_s"] is not None else ""
        lines.append(
            f"  {row['status']:<9} {name:<32} ok at {row['last_success'] or 'never'}"
            f"{lag}{stalled}{detail}"
        )
    spend = status["ai_spend_today"]
    lines.append(
        f"AI spend     {spend['usd']:.4f} of {spend['budget_usd']:.2f} USD today "
        f"({spend['calls']} calls, {spend['left_usd']:.4f} left)"
    )
    return "\n".join(lines)
