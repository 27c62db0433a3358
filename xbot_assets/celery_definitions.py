"""A second code location: the engine's jobs on Dagster's Celery executor (scale-out, #22).

The jobs, ops, resources and sensors are the main location's own objects; only the executor
differs (``JobDefinition.with_executor_def``), so no xbot code changes for Celery: every step
becomes a Celery task that any worker listening on the broker runs, in a process of its own that
loads the job from this module. The daemon path (``xbot_assets.definitions``, the in-process
executor) is untouched; point a workspace or ``dagster job execute -m`` at this module instead.

Under the daemon, ``workspace.celery.yaml`` loads both locations: this one (``xbot_celery``) owns
the account sensors, and in the main location (``xbot``) those sensors and their batch twins
(:data:`OFF_IN_MAIN_LOCATION`) stay off, while its learning and metrics automation may run.
The run-status sensors are here too: Dagster's watch only their own location's runs, so without
them a Celery run would leave no ``job:<name>`` row in ``system_health``.

Broker and result backend come from the environment when a run starts (never at import):
``XBOT_CELERY_BROKER_URL`` and ``XBOT_CELERY_BACKEND_URL`` (e.g. ``redis://host:6379/9``).
Workers: ``dagster-celery worker start -A dagster_celery.app -y <yaml of worker_config()>``.

What makes a killed worker's step run again (:func:`celery_settings`): late acknowledgement (the
broker keeps the message until the step has finished), prefetch 1 (a busy worker holds no second
task), and Redis's visibility timeout (the other workers put a message unacknowledged for that
long back on the queue). The timeout must exceed the longest step, or a step still running is
started a second time elsewhere (posting's durable claim is designed to keep even that to one
post; two concurrent attempts are not rehearsed). docs/deployment.md, "Scale-out on Celery"."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg
from dagster_celery import celery_executor

from xbot_assets.definitions import OWNERS_BETA_WARNING
from xbot_assets.defs.health import record_run_failure, record_run_success
from xbot_assets.defs.orchestration import (
    collect_account_metrics_job,
    post_job,
    reconcile_job,
    refill_candidates_job,
)
from xbot_assets.defs.posting_sensors import posting_sensor, reconcile_sensor
from xbot_assets.defs.refill_sensors import candidate_refill_sensor
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.sensor_support import CELERY_LOCATION, REPLACED_BY_CELERY
from xbot_assets.defs.store_sensors import accounts_sensor

LOCATION_NAME = CELERY_LOCATION
"""The location's name in ``workspace.celery.yaml`` (the main one is ``xbot``)."""
BROKER_ENV = "XBOT_CELERY_BROKER_URL"
BACKEND_ENV = "XBOT_CELERY_BACKEND_URL"
VISIBILITY_TIMEOUT_S = 600
"""Seconds a task may stay unacknowledged before another worker takes it over: above the
longest engine step (a refill, tens of seconds on a loaded 2-core machine)."""


def celery_settings(visibility_timeout: int = VISIBILITY_TIMEOUT_S) -> dict[str, Any]:
    """The Celery app settings shared by the executor (producer) and the workers (consumers)."""
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "broker_transport_options": {
            # dagster-celery's own publish retries, kept
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
            "visibility_timeout": visibility_timeout,
            # sweep for abandoned messages every 2 s (kombu's default is ~100 s)
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        },
    }


def worker_config(broker: str, backend: str, visibility_timeout: int = VISIBILITY_TIMEOUT_S) -> (
    dict[str, Any]
):  # fmt: skip
    """The YAML body for ``dagster-celery worker start -y``: the executor's config block."""
    return {
        "execution": {
            "config": {
                "broker": broker,
                "backend": backend,
                "config_source": celery_settings(visibility_timeout),
            }
        }
    }


xbot_celery_executor = celery_executor.configured(
    {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV},
        "config_source": celery_settings(),
    },
    name="xbot_celery_executor",
)

CELERY_JOBS = {
    job.name: job.with_executor_def(xbot_celery_executor)
    for job in (refill_candidates_job, post_job, collect_account_metrics_job, reconcile_job)
}
"""The engine's account jobs, each step a Celery task."""


ACCOUNT_SENSORS = (
    "accounts_sensor",
    "candidate_refill_sensor",
    "posting_sensor",
    "reconcile_sensor",
)
"""The sensors this location runs in place of the main location's sensors of the same names."""
OFF_IN_MAIN_LOCATION = frozenset(REPLACED_BY_CELERY)
"""The main location's sensors that stay off while this location's account sensors are on: the
same names (a second posting_sensor would launch in-process post runs beside the Celery ones),
and the batch twins, which do the same accounts' refills and posts in-process. Turned on by
mistake, each skips its ticks while the sensor here that replaces it is on
(``sensor_support.replaced_by_celery``)."""


def _rebound(sensor: dg.SensorDefinition) -> dg.SensorDefinition:
    return sensor.with_updated_job(CELERY_JOBS[str(sensor.job_name)])


@dg.definitions
def defs() -> dg.Definitions:
    """The Celery jobs, the sensors that launch them, the run-status sensors that record their
    runs in ``system_health``, and the main location's resources."""
    warnings.filterwarnings("ignore", message=OWNERS_BETA_WARNING, category=dg.BetaWarning)
    return dg.Definitions(
        jobs=list(CELERY_JOBS.values()),
        sensors=[
            accounts_sensor,
            _rebound(candidate_refill_sensor),
            _rebound(posting_sensor),
            _rebound(reconcile_sensor),
            record_run_success,
            record_run_failure,
        ],
        resources={"xbot_settings": XbotSettings(), "xbot_runtime": XbotRuntime()},
    )
