"""Each component's status in ``system_health``: written by the component, read by operators.

A component (``poster``, ``metrics_collector``, ``generator``, ``learning``, ``health_server``...)
calls :func:`write_component_status` when it finishes a unit of work or notices trouble. The
health server's readiness check and ``xbot status`` read the newest row per component with
:func:`latest_component_statuses`, one indexed query.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select

from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.redact import redact, safe_error
from xbot_assets.store.durable.schema import HEALTH_STATUSES, system_health
from xbot_assets.store.timebase import Clock, utc_now

log = logging.getLogger(__name__)

COMPONENT_POSTER = "poster"
COMPONENT_METRICS_COLLECTOR = "metrics_collector"
COMPONENT_HEALTH_SERVER = "health_server"
MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """The newest status one component wrote."""

    component: str
    status: str
    recorded_at: datetime
    message: str | None
    metrics: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "status": self.status,
            "recorded_at": self.recorded_at.isoformat(),
            "message": self.message,
            "metrics": self.metrics,
        }


def write_component_status(
    target: Engine | Connection,
    *,
    environment: str,
    component: str,
    status: str,
    message: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    clock: Clock = utc_now,
) -> None:
    """Append one status row for ``component`` (``ok``, ``degraded`` or ``down``).

    ``message`` must be safe to show (no secret, no post text); it is cut to 500 characters.
    """
    if status not in HEALTH_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(HEALTH_STATUSES)}")
    if not component:
        raise ValueError("a status row needs the component's name")
    row = {
        "environment": environment,
        "recorded_at": clock(),
        "component": component,
        "status": status,
        "metrics": dict(metrics or {}),
        "message": message[:MAX_MESSAGE_CHARS] if message else None,
    }
    if isinstance(target, Engine):
        with target.begin() as conn:
            conn.execute(insert(system_health).values(**row))
    else:
        target.execute(insert(system_health).values(**row))


def latest_component_statuses(
    target: Engine | Connection, *, environment: str
) -> dict[str, ComponentStatus]:
    """The newest row of every component in ``environment``, keyed by component."""
    newest = (
        select(system_health.c.component, func.max(system_health.c.id).label("max_id"))
        .where(system_health.c.environment == environment)
        .group_by(system_health.c.component)
        .subquery()
    )
    query = select(
        system_health.c.component,
        system_health.c.status,
        system_health.c.recorded_at,
        system_health.c.message,
        system_health.c.metrics,
    ).join(
        newest,
        and_(
            system_health.c.component == newest.c.component,
            system_health.c.id == newest.c.max_id,
        ),
    )
    if isinstance(target, Engine):
        with read_connection(target) as conn:
            rows = conn.execute(query).all()
    else:
        rows = target.execute(query).all()
    return {
        row.component: ComponentStatus(
            component=row.component,
            status=row.status,
            recorded_at=row.recorded_at,
            message=row.message,
            metrics=dict(row.metrics or {}),
        )
        for row in rows
    }


@contextmanager
def track_component(
    engine: Engine,
    *,
    environment: str,
    component: str,
    clock: Clock = utc_now,
) -> Iterator[dict[str, Any]]:
    """Record one unit of a component's work in ``system_health``: ``ok`` or ``down``.

    Yields a dict the caller may fill with figures (counts, durations; no text, no secret). On
    success an ``ok`` row is written with them; on an exception a ``down`` row with the redacted
    error, and the exception propagates unchanged. Writing the row never hides the work's own
    outcome: a failure to write is logged and swallowed.

    Example::

        with track_component(engine, environment="local", component="metrics_collector") as m:
            m["collected"] = collect_due_metrics(...)
    """
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        yield figures
    except Exception as exc:
        figures["duration_s"] = round(time.perf_counter() - started, 3)
        _write_quietly(engine, environment, component, "down", safe_error(exc), figures, clock)
        raise
    figures["duration_s"] = round(time.perf_counter() - started, 3)
    _write_quietly(engine, environment, component, "ok", None, figures, clock)


def _write_quietly(
    engine: Engine,
    environment: str,
    component: str,
    status: str,
    message: str | None,
    figures: Mapping[str, Any],
    clock: Clock,
) -> None:
    try:
        write_component_status(
            engine,
            environment=environment,
            component=component,
            status=status,
            message=message,
            metrics=figures,
            clock=clock,
        )
    except Exception as exc:  # the status row is best effort; the work's outcome stands
        log.warning("could not record %s status: %s", component, safe_error(exc))


def record_poster_session(
    engine: Engine,
    *,
    environment: str,
    poster: Any,
    clock: Clock = utc_now,
) -> ComponentStatus:
    """Ask a poster whether its session can post (``check_session()``) and record the answer.

    The readiness check ``poster_session`` reads this row, so a revoked token or an expired
    browser login shows on ``/readyz`` before the next post fails.
    """
    try:
        session = poster.check_session()
        ok, reason = bool(session.ok), str(session.reason or "")
    except Exception as exc:  # an unanswerable session check is a failed one
        ok, reason = False, safe_error(exc)
    status = "ok" if ok else "down"
    message = None if ok else redact(reason or "the poster's session is not valid")
    now = clock()
    write_component_status(
        engine,
        environment=environment,
        component=COMPONENT_POSTER,
        status=status,
        message=message,
        metrics={"poster": str(getattr(poster, "kind", "unknown"))},
        clock=lambda: now,
    )
    return ComponentStatus(COMPONENT_POSTER, status, now, message, {})


JOB_COMPONENT_PREFIX = "job:"


def record_run_outcome(
    engine: Engine,
    *,
    environment: str,
    job_name: str,
    run_id: str,
    succeeded: bool,
    message: str | None = None,
    partition: str | None = None,
    clock: Clock = utc_now,
) -> None:
    """One ``system_health`` row for a finished Dagster run of ``job_name`` (component
    ``job:<job_name>``): ``ok`` on success, ``down`` with the redacted failure otherwise."""
    figures: dict[str, Any] = {"run_id": run_id}
    if partition:
        figures["partition"] = partition
    write_component_status(
        engine,
        environment=environment,
        component=(JOB_COMPONENT_PREFIX + job_name)[:64],
        status="ok" if succeeded else "down",
        message=None if succeeded else redact(" ".join((message or "run failed").split()))[:300],
        metrics=figures,
        clock=clock,
    )
