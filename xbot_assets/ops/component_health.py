"""Self-reporting components: each writes ``system_health`` rows; readers see stalls.

The poster, the metrics collector, the Redis sync, the learning assets and the sensors call
:func:`reporting` around a unit of work. Every row carries the component's own interval
(``interval_s``: how often it is expected to succeed) and, where it means something, its lag
(``lag_s``: how late the work it did was). :func:`component_health` reads, per component, the
newest row, the last success and the last error; a component with no success within twice its
own interval is *stalled*, which ``/readyz``, ``/metrics`` and ``xbot status`` show as degraded.

Sensors tick every 30 s to 10 min; their ``ok`` (and held ``degraded``) rows are heartbeats
written at most once per :data:`HEARTBEAT` (or their interval, if longer), or at once when their
status or message changes, so the table grows by a few rows an hour, not thousands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Lock
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from xbot_assets.ops.component_status import (
    MAX_MESSAGE_CHARS,
    latest_component_statuses,
    write_component_status,
)
from xbot_assets.ops.dbread import read_connection
from xbot_assets.ops.redact import redact, safe_error
from xbot_assets.store.durable.schema import system_health

log = logging.getLogger(__name__)

COMPONENT_SYNC = "sync"
SENSOR_PREFIX = "sensor:"
LEARNING_PREFIX = "learning:"
HEARTBEAT = timedelta(minutes=5)
STALL_FACTOR = 2
"""A component is stalled when its last success is older than this many of its intervals."""

INTERVALS: dict[str, timedelta] = {
    "poster": timedelta(hours=24),
    "metrics_collector": timedelta(hours=6),
    COMPONENT_SYNC: timedelta(minutes=5),
    "learning:factored_posteriors": timedelta(hours=4),
}
"""Expected success interval of components that do not write their own ``interval_s``:
the poster posts several times a day, the collector's schedule runs every 6 h, the sync every
5 min (with Redis), the factored posterior refits every 4 h. Other learning assets: 24 h (the
default ``rebuild_every_hours``)."""
LEARNING_INTERVAL = timedelta(hours=24)

_LAST_WRITTEN: dict[tuple[str, str], tuple[tuple[str, str | None], datetime]] = {}
_LOCK = Lock()


def interval_of(component: str, figures: Mapping[str, Any] | None = None) -> timedelta | None:
    """The component's expected success interval: its own ``interval_s``, else the table."""
    if figures and isinstance(figures.get("interval_s"), int | float):
        return timedelta(seconds=float(figures["interval_s"]))
    if component in INTERVALS:
        return INTERVALS[component]
    if component.startswith(LEARNING_PREFIX):
        return LEARNING_INTERVAL
    return None


def _due(
    key: tuple[str, str], state: tuple[str, str | None], now: datetime, heartbeat: timedelta | None
) -> bool:
    """Whether a row is due: always for ``down`` (each failure is an event), else when the
    status or message changed or a heartbeat passed. A sensor held by its Celery twin repeats
    the same ``degraded`` reason at every tick: one row per heartbeat, not 120 an hour, unless
    the table no longer says so (:func:`_newest_state`)."""
    if heartbeat is None or state[0] == "down":
        return True
    with _LOCK:
        last = _LAST_WRITTEN.get(key)
    return last is None or last[0] != state or now - last[1] >= heartbeat or now < last[1]


def _newest(conn: Connection, environment: str, component: str, *columns: Any) -> Any:
    """``columns`` of the component's newest row (highest id, as readers take it), or None."""
    h = system_health
    return conn.execute(
        select(*columns)
        .where(h.c.environment == environment, h.c.component == component)
        .order_by(h.c.id.desc())
        .limit(1)
    ).first()


def _newest_state(engine: Engine, environment: str, component: str) -> tuple[str, Any] | None:
    """The (status, message) of the component's newest row, or None when unreadable.

    A ``degraded`` heartbeat is skipped only while the table still says so: a sensor held in
    the main location shares its component with its Celery namesake, whose ``ok`` heartbeats
    (another process, so not in :data:`_LAST_WRITTEN`) would otherwise leave the table
    saying ``ok`` for most of each heartbeat while the held one is still on."""
    h = system_health
    try:
        with read_connection(engine) as conn:
            row = _newest(conn, environment, component, h.c.status, h.c.message)
    except Exception as exc:  # best effort, like the write: then write
        log.warning("could not read %s status: %s", component, safe_error(exc))
        return None
    return None if row is None else (row[0], row[1])


def report(
    engine: Engine,
    *,
    environment: str,
    component: str,
    now: datetime,
    status: str = "ok",
    message: str | None = None,
    figures: Mapping[str, Any] | None = None,
    interval: timedelta | None = None,
    heartbeat: timedelta | None = None,
) -> bool:
    """Write one status row (best effort: a failure to write is logged, never raised).

    Args:
        interval: how often the component is expected to succeed (stored as ``interval_s``).
        heartbeat: write ``ok`` and ``degraded`` rows at most this often while neither status
            nor message changes (a change, and every ``down``, is written at once).

    Returns:
        Whether a row was written.
    """
    stored = redact(message)[:MAX_MESSAGE_CHARS] if message else None  # as the row keeps it
    key, state = (environment, component), (status, stored)
    if not _due(key, state, now, heartbeat) and (
        status == "ok" or _newest_state(engine, environment, component[:64]) == state
    ):
        return False
    row = dict(figures or {})
    if interval is not None:
        row["interval_s"] = interval.total_seconds()
    try:
        write_component_status(
            engine,
            environment=environment,
            component=component[:64],
            status=status,
            message=state[1],
            metrics=row,
            clock=lambda: now,
        )
    except Exception as exc:  # the status row is best effort; the work's outcome stands
        log.warning("could not record %s status: %s", component, safe_error(exc))
        return False
    with _LOCK:
        _LAST_WRITTEN[key] = (state, now)
    return True


@contextmanager
def reporting(
    engine: Engine,
    *,
    environment: str,
    component: str,
    clock: Callable[[], datetime],
    interval: timedelta | None = None,
    heartbeat: timedelta | None = None,
) -> Iterator[dict[str, Any]]:
    """Report one unit of work: ``down`` with the redacted error if it raises (re-raised), else
    the status the caller put in the yielded dict (``status``/``message``; default ``ok``)
    with the other figures it put there (counts, ``lag_s``; no text, no secret). A caller that
    puts ``interval_s: None`` writes no interval: the component is not expected to succeed
    now (a sensor held off on purpose), so readers do not call it stalled."""
    figures: dict[str, Any] = {}
    try:
        yield figures
    except Exception as exc:
        report(
            engine, environment=environment, component=component, now=clock(), status="down",
            message=safe_error(exc), figures=figures, interval=interval,
        )  # fmt: skip
        raise
    status = str(figures.pop("status", "ok"))
    message = figures.pop("message", None)
    if "interval_s" in figures and figures["interval_s"] is None:
        del figures["interval_s"]
        interval = None
    report(
        engine, environment=environment, component=component, now=clock(), status=status,
        message=message, figures=figures, interval=interval, heartbeat=heartbeat,
    )  # fmt: skip


HELD_BY = "held_by"
"""The figure of a row written while the component was held off on purpose (a sensor whose
Celery replacement is on): what holds it. :func:`settle_held` clears such a row."""


def settle_held(
    engine: Engine, *, environment: str, components: Iterable[str], now: datetime, message: str
) -> list[str]:
    """Write ``ok`` (with ``message``, no interval) for each of ``components`` whose newest
    row was written while held (:data:`HELD_BY`): it has been turned off as its row asked, and
    nothing else would replace that row. Best effort, like :func:`report`.

    Returns:
        The components settled.
    """
    h = system_health
    held = []
    try:
        with read_connection(engine) as conn:
            for name in sorted(set(components)):  # each the newest row of one component
                row = _newest(conn, environment, name, h.c.metrics)
                metrics = row[0] if row is not None else None
                if metrics and metrics.get(HELD_BY):
                    held.append(name)
    except Exception as exc:  # the status rows are best effort; the sensor's work stands
        log.warning("could not read held components: %s", safe_error(exc))
        return []
    return [
        name
        for name in held
        if report(engine, environment=environment, component=name, now=now, message=message)
    ]


def forget_heartbeats() -> None:
    """Drop the in-process heartbeat memory (tests that start over in one process)."""
    with _LOCK:
        _LAST_WRITTEN.clear()


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """One component as operators see it."""

    component: str
    status: str
    """The effective status: the newest row's, or ``degraded`` when ok but stalled."""
    reported_status: str
    recorded_at: datetime
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    lag_s: float | None
    interval_s: float | None
    stalled: bool

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "component": self.component,
            "status": self.status,
            "reported_status": self.reported_status,
            "recorded_at": iso(self.recorded_at),
            "last_success": iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
            "lag_s": self.lag_s,
            "interval_s": self.interval_s,
            "stalled": self.stalled,
        }


def _read(conn: Connection, environment: str) -> tuple[dict[str, Any], dict[str, Any]]:
    h = system_health
    successes: dict[str, datetime] = dict(
        conn.execute(
            select(h.c.component, func.max(h.c.recorded_at))
            .where(h.c.environment == environment, h.c.status == "ok")
            .group_by(h.c.component)
        ).all()
    )
    newest_error = (
        select(func.max(h.c.id).label("id"))
        .where(h.c.environment == environment, h.c.status != "ok")
        .group_by(h.c.component)
        .subquery()
    )
    errors = {
        row.component: row
        for row in conn.execute(
            select(h.c.component, h.c.recorded_at, h.c.message).join(
                newest_error, h.c.id == newest_error.c.id
            )
        )
    }
    return successes, errors


def component_health(
    target: Engine | Connection, *, environment: str, now: datetime
) -> dict[str, ComponentHealth]:
    """Every component of ``environment``: newest status, last success and error, stall."""
    if isinstance(target, Engine):
        with read_connection(target) as conn:
            return component_health(conn, environment=environment, now=now)
    latest = latest_component_statuses(target, environment=environment)
    successes, errors = _read(target, environment)
    out: dict[str, ComponentHealth] = {}
    for name, row in sorted(latest.items()):
        interval = interval_of(name, row.metrics)
        last_ok = successes.get(name)
        stalled = False
        if interval is not None:
            since = last_ok if last_ok is not None else row.recorded_at
            stalled = now - since > interval * STALL_FACTOR
        error = errors.get(name)
        status = row.status
        if status == "ok" and stalled:
            status = "degraded"
        lag = row.metrics.get("lag_s")
        out[name] = ComponentHealth(
            component=name,
            status=status,
            reported_status=row.status,
            recorded_at=row.recorded_at,
            last_success=last_ok,
            last_error=error.message if error is not None else None,
            last_error_at=error.recorded_at if error is not None else None,
            lag_s=float(lag) if isinstance(lag, int | float) else None,
            interval_s=interval.total_seconds() if interval is not None else None,
            stalled=stalled,
        )
    return out


def describe_problems(health: Mapping[str, ComponentHealth], now: datetime) -> list[str]:
    """One line per component that is stalled or reported trouble (for ``/readyz``)."""
    lines = []
    for item in health.values():
        if item.stalled:
            since = item.last_success
            when = (
                f"no success for {(now - since).total_seconds() / 3600:.1f}h"
                if since is not None
                else "never succeeded"
            )
            every = f"{(item.interval_s or 0) / 60:.0f}min"
            lines.append(f"{item.component} stalled ({when}; interval {every})")
        elif item.reported_status != "ok":
            detail = (item.last_error or "no detail")[:120]
            lines.append(f"{item.component} reported {item.reported_status}: {detail}")
    return lines
