"""Sensors' and jobs' health into ``system_health``, for operators.

:func:`sensor_health` makes each sensor write its row as it ticks (``ok``, ``down`` with the
error, or ``degraded`` while a Celery sensor holds it off: :class:`CeleryGuard`).

Jobs run in their own processes; these two run-status sensors (run by the Dagster daemon) write
one ``system_health`` row per finished run (component ``job:<job name>``), which ``xbot status``
and the health server's ``/metrics`` (``xbot_component_status``) show. The logic is in
:func:`xbot_assets.ops.component_status.record_run_outcome`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import dagster as dg

from xbot_assets.defs.resources import XbotSettings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class CeleryGuard:
    """Sensor ``name``'s part in the Celery deployment's rule that an account sensor runs in one
    code location only (``sensor_support.REPLACED_BY_CELERY``)."""

    name: str

    def hold(self, context: Any) -> dg.SkipReason | None:
        """Why this tick must launch nothing (its Celery replacement is on), or None."""
        from xbot_assets.defs.sensor_support import REPLACED_BY_CELERY, replaced_by_celery

        return replaced_by_celery(context, self.name) if self.name in REPLACED_BY_CELERY else None

    def held_by(self) -> str:
        """What holds it, in its held rows (``ops.component_health.HELD_BY``)."""
        from xbot_assets.defs.sensor_support import CELERY_LOCATION, REPLACED_BY_CELERY

        return f"{CELERY_LOCATION}/{REPLACED_BY_CELERY[self.name]}"

    def settled_message(self) -> str:
        """The ``ok`` row's message for a twin turned off as its held row asked."""
        from xbot_assets.defs.sensor_support import CELERY_LOCATION

        return f"turned off under Celery: {self.name} of location {CELERY_LOCATION} does its work"

    def twins_turned_off(self, context: Any) -> list[str]:
        """The components of the twins this sensor replaces that are off where they belong."""
        from xbot_assets.defs.sensor_support import twins_turned_off
        from xbot_assets.ops.component_health import SENSOR_PREFIX

        return [SENSOR_PREFIX + twin for twin in twins_turned_off(context, self.name)]


def reports_health(
    component: str,
    *,
    interval: timedelta | None = None,
    heartbeat: timedelta | None = None,
    guard: CeleryGuard | None = None,
) -> Callable[[F], F]:
    """Make a sensor or asset write its ``system_health`` row on every evaluation (``ok``, or
    ``down`` with the redacted error, re-raised), on the run's clock (simulated in the main
    job). Put it under ``@dg.sensor``/``@dg.asset``: the signature Dagster reads is kept.

    Args:
        interval: how often the component should succeed (a sensor's minimum interval);
            readers call it stalled after twice that without success.
        heartbeat: write ``ok`` rows at most this often (sensors tick every few seconds).
        guard: a sensor's part under Celery. A tick it holds is not evaluated: it returns the
            reason and writes ``degraded`` with it and no interval (held on purpose, it is
            not stalled), so the operator sees why; once the held twin is turned off, its
            replacement's tick writes the twin's ``ok``.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from xbot_assets.engine.sensing import open_store_or_none
            from xbot_assets.ops.component_health import HELD_BY, reporting, settle_held

            context = kwargs.get("context", args[0] if args else None)
            settings_resource = kwargs.get("xbot_settings")
            settings = settings_resource.get() if settings_resource is not None else None
            store = open_store_or_none(settings) if settings is not None else None
            if settings is None or store is None:  # not migrated yet: nothing to report into
                reason = guard.hold(context) if guard is not None else None
                return reason if reason is not None else fn(*args, **kwargs)
            runtime = kwargs.get("xbot_runtime")
            if runtime is not None:
                clock = runtime.now
            else:
                from xbot_assets.store.timebase import settings_clock

                clock = settings_clock(settings)
            with reporting(
                store.engine, environment=settings.app_env, component=component, clock=clock,
                interval=interval, heartbeat=heartbeat,
            ) as figures:  # fmt: skip
                if guard is not None and (reason := guard.hold(context)) is not None:
                    figures.update(
                        status="degraded", message=reason.skip_message, interval_s=None,
                        **{HELD_BY: guard.held_by()},
                    )  # fmt: skip
                    return reason
                result = fn(*args, **kwargs)
                requests = getattr(result, "run_requests", None)
                if requests is not None:
                    figures["run_requests"] = len(requests)
                if guard is not None and (twins := guard.twins_turned_off(context)):
                    settle_held(
                        store.engine, environment=settings.app_env, components=twins,
                        now=clock(), message=guard.settled_message(),
                    )  # fmt: skip
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def sensor_health(name: str, every_s: int) -> Callable[[F], F]:
    """:func:`reports_health` for a sensor: component ``sensor:<name>``, its interval, heartbeat
    rows at most every 5 minutes (or its interval, if longer), and its :class:`CeleryGuard`: a
    main-location sensor the Celery location replaces is held while its replacement is on."""
    from xbot_assets.ops.component_health import HEARTBEAT, SENSOR_PREFIX

    beat = max(HEARTBEAT, timedelta(seconds=every_s))
    return reports_health(
        SENSOR_PREFIX + name, interval=beat, heartbeat=beat, guard=CeleryGuard(name)
    )


def _record(context: dg.RunStatusSensorContext, settings: XbotSettings, *, succeeded: bool) -> None:
    from xbot_assets.ops.component_status import record_run_outcome
    from xbot_assets.store.durable.engine import settings_engine

    run = context.dagster_run
    message = None
    if not succeeded and isinstance(context, dg.RunFailureSensorContext):
        message = context.failure_event.message
    resolved = settings.get()
    engine = settings_engine(resolved)
    try:
        record_run_outcome(
            engine,
            environment=resolved.app_env,
            job_name=run.job_name,
            run_id=run.run_id,
            succeeded=succeeded,
            message=message,
            partition=run.tags.get("dagster/partition"),
        )
    finally:
        engine.dispose()


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Record each successful run in system_health (component job:<job>).",
)
def record_run_success(context: dg.RunStatusSensorContext, xbot_settings: XbotSettings) -> None:
    _record(context, xbot_settings, succeeded=True)


@dg.run_failure_sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Record each failed run in system_health (component job:<job>), with why.",
)
def record_run_failure(context: dg.RunFailureSensorContext, xbot_settings: XbotSettings) -> None:
    _record(context, xbot_settings, succeeded=False)


defs = dg.Definitions(sensors=[record_run_success, record_run_failure])
