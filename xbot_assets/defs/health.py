"""Run outcomes into ``system_health``: every job's last run, ok or down, for operators.

Jobs run in their own processes; these two run-status sensors (run by the Dagster daemon) write
one ``system_health`` row per finished run (component ``job:<job name>``), which ``xbot status``
and the health server's ``/metrics`` (``xbot_component_status``) show. The logic is in
:func:`xbot_assets.ops.component_status.record_run_outcome`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import dagster as dg

from xbot_assets.defs.resources import XbotSettings

F = TypeVar("F", bound=Callable[..., Any])


def reports_health(
    component: str,
    *,
    interval: timedelta | None = None,
    heartbeat: timedelta | None = None,
    hold: Callable[[Any], dg.SkipReason | None] | None = None,
) -> Callable[[F], F]:
    """Make a sensor or asset write its ``system_health`` row on every evaluation (``ok``, or
    ``down`` with the redacted error, re-raised), on the run's clock (simulated in the main
    job). Put it under ``@dg.sensor``/``@dg.asset``: the signature Dagster reads is kept.

    Args:
        interval: how often the component should succeed (a sensor's minimum interval);
            readers call it stalled after twice that without success.
        heartbeat: write ``ok`` rows at most this often (sensors tick every few seconds).
        hold: a sensor's reason to launch nothing this tick (given its context), or None. A held
            tick is not evaluated: it returns the reason and writes ``degraded`` with it and
            no interval (held on purpose, it is not stalled), so the operator sees why.
    """

    def decorate(fn: F) -> F:
        def held(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dg.SkipReason | None:
            return None if hold is None else hold(kwargs.get("context", args[0] if args else None))

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from xbot_assets.engine.sensing import open_store_or_none
            from xbot_assets.ops.component_health import reporting

            settings_resource = kwargs.get("xbot_settings")
            store = None
            if settings_resource is not None:
                settings = settings_resource.get()
                store = open_store_or_none(settings)
            if store is None:  # no settings, or not migrated yet: nothing to report into
                reason = held(args, kwargs)
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
                reason = held(args, kwargs)
                if reason is not None:
                    figures.update(status="degraded", message=reason.skip_message, interval_s=None)
                    return reason
                result = fn(*args, **kwargs)
                requests = getattr(result, "run_requests", None)
                if requests is not None:
                    figures["run_requests"] = len(requests)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def sensor_health(name: str, every_s: int) -> Callable[[F], F]:
    """:func:`reports_health` for a sensor: component ``sensor:<name>``, its interval, and
    heartbeat rows at most every 5 minutes (or its interval, if longer). A sensor the Celery
    location replaces (``sensor_support.REPLACED_BY_CELERY``) is held while its replacement is
    on (:func:`~xbot_assets.defs.sensor_support.replaced_by_celery`)."""
    from xbot_assets.defs.sensor_support import REPLACED_BY_CELERY, replaced_by_celery
    from xbot_assets.ops.component_health import HEARTBEAT, SENSOR_PREFIX

    beat = max(HEARTBEAT, timedelta(seconds=every_s))
    hold = None
    if name in REPLACED_BY_CELERY:
        hold = functools.partial(replaced_by_celery, name=name)
    return reports_health(SENSOR_PREFIX + name, interval=beat, heartbeat=beat, hold=hold)


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
