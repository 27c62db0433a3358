"""Readiness checks: is this deployment able to post right now, and if not, why.

Each check returns a :class:`CheckResult` with one of the ``system_health`` statuses:

- ``ok``: fine;
- ``degraded``: working on a fallback or with a warning (Redis down while the durable store serves
  the hot path, no post yet on a fresh deployment); readiness still answers 200;
- ``down``: the bot cannot post correctly (store unreachable or at the wrong schema version, brake
  on, poster session invalid, posting or metrics collection stalled); readiness answers 503.

A check never raises: :func:`run_checks` turns an exception into ``down`` with a redacted one-line
reason, and measures each check's duration. Every query is an aggregate over indexed columns, so
a probe costs a few milliseconds whatever the size of the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

import redis
from sqlalchemy import Engine, and_, func, select

from xbot_assets.config import Settings
from xbot_assets.ops.brake import BrakeState, read_brake
from xbot_assets.ops.component_status import (
    COMPONENT_METRICS_COLLECTOR,
    COMPONENT_POSTER,
    ComponentStatus,
    latest_component_statuses,
)
from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.queries import last_metrics_collection
from xbot_assets.ops.redact import redact, safe_error
from xbot_assets.store.durable.schema import tweet_metrics, tweets
from xbot_assets.store.hot.keys import KeySpace, connect_redis
from xbot_assets.store.timebase import Clock, utc_now

Status = Literal["ok", "degraded", "down"]
_RANK: dict[str, int] = {"ok": 0, "degraded": 1, "down": 2}
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer of one check: a status, a line an operator can act on, and safe figures."""

    name: str
    status: Status
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "data": self.data,
            "duration_ms": round(self.duration_ms, 2),
        }


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Every check's answer and the overall status (the worst of them)."""

    status: Status
    checks: tuple[CheckResult, ...]
    checked_at: datetime

    @property
    def ready(self) -> bool:
        """Whether the deployment can post: no check is ``down``."""
        return self.status != "down"

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ready": self.ready,
            "checked_at": self.checked_at.isoformat(),
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How old things may get before readiness fails.

    Attributes:
        max_post_age: the last successful post may be at most this old (the bot posts several
            times a day; a day of silence means it is stuck).
        metrics_grace: a post's 1h metrics snapshot must exist this long after it is due.
        max_component_age: a component status row older than this is reported as stale.
    """

    max_post_age: timedelta = timedelta(hours=24)
    metrics_grace: timedelta = timedelta(hours=2)
    max_component_age: timedelta = timedelta(hours=24)


BrakeReader = Callable[["HealthContext"], BrakeState]


class HealthContext:
    """What the checks and the metrics collector read: settings, store engine, Redis, clock.

    The engine and the Redis client are created on first use and reused by every probe.

    Args:
        settings: the process settings.
        engine: the durable store's engine (default: made from ``settings``).
        redis_client: the hot store (default: from ``settings.redis_url``; ``None`` if unset).
        clock: the wall clock (injectable for tests).
        thresholds: staleness limits.
        redis_required: treat an unreachable Redis as ``down`` instead of ``degraded``.
        brake_reader: how to read the brake (default: :func:`xbot_assets.ops.brake.read_brake`
            on this context's engine and environment).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        redis_client: redis.Redis | None = None,
        clock: Clock = utc_now,
        thresholds: Thresholds | None = None,
        redis_required: bool = False,
        brake_reader: BrakeReader | None = None,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._owns_engine = engine is None
        self._redis = redis_client
        self.clock = clock
        self.thresholds = thresholds or Thresholds()
        self.redis_required = redis_required
        self._brake_reader = brake_reader
        self.environment: str = settings.app_env
        self.keys = KeySpace.from_settings(settings)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from xbot_assets.store.durable.engine import settings_engine

            self._engine = settings_engine(self.settings)
        return self._engine

    @cached_property
    def redis(self) -> redis.Redis | None:
        """The hot store, or ``None`` when REDIS_URL is unset (the durable-store fallback)."""
        if self._redis is not None:
            return self._redis
        if not self.settings.redis_url:
            return None
        return connect_redis(self.settings.redis_url, socket_timeout_s=1.0)

    def read_brake(self) -> BrakeState:
        if self._brake_reader is not None:
            return self._brake_reader(self)
        return read_brake(self.engine, self.environment)

    def close(self) -> None:
        """Release pooled connections (the engine only if this context made it)."""
        if self._redis is None and self.__dict__.get("redis") is not None:
            self.__dict__["redis"].close()
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()
            self._engine = None


# --- the checks ----------------------------------------------------------------------------------


def check_durable_store(ctx: HealthContext) -> CheckResult:
    """The durable store answers and is at this xbot's schema version."""
    from xbot_assets.store.durable.migrate import schema_status

    status = schema_status(ctx.engine)
    data = {"current": status.current, "head": status.head, "behind_by": status.behind_by}
    if status.current is None:
        return CheckResult(
            "durable_store", "down", "the store was never migrated: run `xbot migrate`", data
        )
    if status.is_ahead:
        return CheckResult(
            "durable_store",
            "down",
            f"the store is at {status.current}, newer than this xbot ({status.head}): upgrade xbot",
            data,
        )
    if not status.is_current:
        return CheckResult(
            "durable_store",
            "down",
            f"the store is {status.behind_by} migration(s) behind: run `xbot migrate`",
            data,
        )
    return CheckResult("durable_store", "ok", f"reachable, schema at {status.head}", data)


def check_redis(ctx: HealthContext) -> CheckResult:
    """Redis answers, or the durable store carries the hot path (the fallback)."""
    client = ctx.redis
    if client is None:
        return CheckResult(
            "redis",
            "ok",
            "not configured: the durable store serves queues, dedup and rate limits (fallback)",
            {"configured": False, "fallback_active": True},
        )
    try:
        client.ping()
    except redis.RedisError as exc:
        status: Status = "down" if ctx.redis_required else "degraded"
        return CheckResult(
            "redis",
            status,
            "unreachable: the durable store serves the hot path until it is back "
            f"(fallback active); {safe_error(exc)}",
            {"configured": True, "fallback_active": True},
        )
    return CheckResult("redis", "ok", "reachable", {"configured": True, "fallback_active": False})


def check_brake(ctx: HealthContext) -> CheckResult:
    """The emergency brake is off (with it on, nothing is posted, by an operator's choice)."""
    state = ctx.read_brake()
    if state.engaged:
        who = f" by {state.actor}" if state.actor else ""
        since = f" since {state.since.isoformat()}" if state.since else ""
        why = f": {state.reason}" if state.reason else ""
        return CheckResult(
            "brake",
            "down",
            f"emergency brake ON{who}{since}{why} (release with `xbot brake off`)",
            state.as_dict(),
        )
    return CheckResult("brake", "ok", "off", state.as_dict())


def _latest(ctx: HealthContext) -> dict[str, ComponentStatus]:
    return latest_component_statuses(ctx.engine, environment=ctx.environment)


def _component_verdict(
    ctx: HealthContext, row: ComponentStatus | None
) -> tuple[Status, str] | None:
    """What a component's own newest status row says, if it says something is wrong."""
    if row is None:
        return None
    if row.status != "ok":
        detail = redact(row.message or "no detail")[:MAX_DETAIL_CHARS]
        return row.status, f"{row.component} reported {row.status}: {detail}"  # type: ignore[return-value]
    return None


def _browser_session_problem(path_text: str, now: datetime) -> str | None:
    """Why a Playwright storage-state file cannot post, or None if it looks logged in."""
    from pathlib import Path

    path = Path(path_text)
    if not path.is_file():
        return "the browser session file is missing: log in again and save the storage state"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "the browser session file is unreadable: log in again and save the storage state"
    cookies = state.get("cookies", []) if isinstance(state, dict) else []
    auth = [c for c in cookies if isinstance(c, dict) and c.get("name") == "auth_token"]
    if not auth:
        return "the browser session has no auth_token cookie: log in again"
    expires = max(float(c.get("expires", -1) or -1) for c in auth)
    if 0 < expires < now.timestamp():
        return "the browser session expired: log in again and save the storage state"
    return None


def check_poster(ctx: HealthContext) -> CheckResult:
    """The configured poster has what it needs to post, and reported no failure itself."""
    settings = ctx.settings
    kind = settings.resolved_poster
    data: dict[str, Any] = {"poster": kind}
    problem: str | None = None
    if kind == "api":
        has_oauth2 = settings.x_oauth2_user_token is not None
        has_oauth1 = all(
            v is not None
            for v in (
                settings.x_api_key,
                settings.x_api_secret,
                settings.x_access_token,
                settings.x_access_token_secret,
            )
        )
        data["credentials"] = "oauth2" if has_oauth2 else "oauth1a" if has_oauth1 else "missing"
        if not (has_oauth2 or has_oauth1):
            problem = (
                "X API user credentials missing: set X_OAUTH2_USER_TOKEN, or X_API_KEY, "
                "X_API_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET"
            )
    elif kind == "browser":
        if settings.browser_storage_state is None:
            problem = "BROWSER_STORAGE_STATE is unset: point it at a logged-in session file"
        else:
            problem = _browser_session_problem(str(settings.browser_storage_state), ctx.clock())
    if problem:
        return CheckResult("poster_session", "down", problem, data)
    row = _latest(ctx).get(COMPONENT_POSTER)
    if row is not None:
        data["reported_status"] = row.status
        data["reported_at"] = row.recorded_at.isoformat()
    verdict = _component_verdict(ctx, row)
    if verdict is not None:
        return CheckResult("poster_session", verdict[0], verdict[1], data)
    return CheckResult("poster_session", "ok", f"{kind} poster ready", data)


def check_last_post(ctx: HealthContext) -> CheckResult:
    """The last successful post is recent enough (posting is not stalled)."""
    query = select(func.max(tweets.c.posted_at), func.count()).where(
        and_(tweets.c.environment == ctx.environment, tweets.c.status == "posted")
    )
    with read_connection(ctx.engine) as conn:
        row = conn.execute(query).one()
    last: datetime | None = row[0]
    count = int(row[1])
    now = ctx.clock()
    limit = ctx.thresholds.max_post_age
    if last is None:
        return CheckResult(
            "last_post", "degraded", "no post yet", {"last_posted_at": None, "posted": 0}
        )
    age = now - last
    data = {
        "last_posted_at": last.isoformat(),
        "age_s": round(age.total_seconds(), 1),
        "max_age_s": limit.total_seconds(),
        "posted": count,
    }
    if age > limit:
        return CheckResult(
            "last_post",
            "down",
            f"no successful post for {_human(age)} (limit {_human(limit)}): check the poster, "
            "the brake, the queue and the scheduler",
            data,
        )
    return CheckResult("last_post", "ok", f"last post {_human(age)} ago", data)


def check_metrics_collection(ctx: HealthContext) -> CheckResult:
    """The newest post whose 1h snapshot is overdue has metrics (the collector runs)."""
    now = ctx.clock()
    due_before = now - timedelta(hours=1) - ctx.thresholds.metrics_grace
    newest_due = (
        select(tweets.c.id, tweets.c.posted_at)
        .where(
            and_(
                tweets.c.environment == ctx.environment,
                tweets.c.status == "posted",
                tweets.c.posted_at <= due_before,
            )
        )
        .order_by(tweets.c.posted_at.desc())
        .limit(1)
    )
    with read_connection(ctx.engine) as conn:
        due = conn.execute(newest_due).first()
        last = last_metrics_collection(conn, ctx.environment)
        has_snapshot = (
            conn.execute(
                select(func.count()).where(
                    # environment first, so the (environment, tweet_id, horizon) index serves
                    tweet_metrics.c.environment == ctx.environment,
                    tweet_metrics.c.tweet_id == due.id,
                )
            ).scalar_one()
            > 0
            if due is not None
            else True
        )
    data: dict[str, Any] = {
        "last_collected_at": last.isoformat() if last else None,
        "age_s": round((now - last).total_seconds(), 1) if last else None,
        "overdue_post_id": None,
    }
    row = _latest(ctx).get(COMPONENT_METRICS_COLLECTOR)
    verdict = _component_verdict(ctx, row)
    if due is not None and not has_snapshot:
        data["overdue_post_id"] = int(due.id)
        overdue = now - (due.posted_at + timedelta(hours=1))
        return CheckResult(
            "metrics_collection",
            "down",
            f"post {due.id}'s 1h metrics are {_human(overdue)} overdue: check the metrics "
            "collection schedule",
            data,
        )
    if verdict is not None:
        return CheckResult("metrics_collection", verdict[0], verdict[1], data)
    if last is None:
        return CheckResult("metrics_collection", "ok", "nothing due yet", data)
    return CheckResult(
        "metrics_collection", "ok", f"last collection {_human(now - last)} ago", data
    )


def check_components(ctx: HealthContext) -> CheckResult:
    """Every self-reporting component (poster, collector, sync, learning, sensors) succeeded
    within its own interval and reports no trouble; a stalled one is named (degraded)."""
    from xbot_assets.ops.component_health import component_health, describe_problems

    now = ctx.clock()
    health = component_health(ctx.engine, environment=ctx.environment, now=now)
    problems = describe_problems(health, now)
    data: dict[str, Any] = {
        "components": len(health),
        "stalled": sorted(c.component for c in health.values() if c.stalled),
        "not_ok": sorted(c.component for c in health.values() if c.status != "ok"),
    }
    if problems:
        detail = "; ".join(problems)
        return CheckResult("components", "degraded", detail[:MAX_DETAIL_CHARS], data)
    if not health:
        return CheckResult("components", "ok", "no component has reported yet", data)
    return CheckResult("components", "ok", f"{len(health)} components report ok", data)


def _human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# --- running them --------------------------------------------------------------------------------

CheckFn = Callable[[HealthContext], CheckResult]
STORE_DEPENDENT = ("brake", "poster_session", "last_post", "metrics_collection", "components")
DEFAULT_CHECKS: tuple[tuple[str, CheckFn], ...] = (
    ("durable_store", check_durable_store),
    ("redis", check_redis),
    ("brake", check_brake),
    ("poster_session", check_poster),
    ("last_post", check_last_post),
    ("metrics_collection", check_metrics_collection),
    ("components", check_components),
)


def _run_one(name: str, fn: CheckFn, ctx: HealthContext) -> CheckResult:
    started = time.perf_counter()
    try:
        result = fn(ctx)
    except Exception as exc:  # a check reports failure as "down", it never breaks the probe
        result = CheckResult(name, "down", f"check failed: {safe_error(exc)}")
    elapsed = (time.perf_counter() - started) * 1000
    return CheckResult(result.name, result.status, result.detail, result.data, elapsed)


def run_checks(
    ctx: HealthContext, checks: Sequence[tuple[str, CheckFn]] = DEFAULT_CHECKS
) -> ReadinessReport:
    """Run every check (store-dependent ones are skipped when the store is not usable)."""
    results: list[CheckResult] = []
    store_ok = True
    for name, fn in checks:
        if name in STORE_DEPENDENT and not store_ok:
            results.append(CheckResult(name, "down", "not checked: the durable store is not ready"))
            continue
        result = _run_one(name, fn, ctx)
        if name == "durable_store" and result.status == "down":
            store_ok = False
        results.append(result)
    worst: Status = max((r.status for r in results), key=_RANK.__getitem__, default="ok")
    return ReadinessReport(status=worst, checks=tuple(results), checked_at=ctx.clock())
