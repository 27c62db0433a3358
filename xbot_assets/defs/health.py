"""Run outcomes into ``system_health``: every job's last run, ok or down, for operators.

Jobs run in their own processes; these two run-status sensors (run by the Dagster daemon) write
one ``system_health`` row per finished run (component ``job:<job name>``), which ``xbot status``
and the health server's ``/metrics`` (``xbot_component_status``) show. The logic is in
:func:`xbot_assets.ops.component_status.record_run_outcome`.
"""

from __future__ import annotations

import dagster as dg

from xbot_assets.defs.resources import XbotSettings


def _record(context: dg.RunStatusSensorContext, settings: XbotSettings, *, succeeded: bool) -> None:
    from xbot_assets.ops.component_status import record_run_outcome
    from xbot_assets.store.durable.engine import make_engine

    run = context.dagster_run
    message = None
    if not succeeded and isinstance(context, dg.RunFailureSensorContext):
        message = context.failure_event.message
    resolved = settings.get()
    engine = make_engine(resolved.resolved_database_url)
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
