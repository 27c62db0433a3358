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
``XBOT_CELERY_BROKER_URL`` and ``XBOT_CELERY_BACKEND_URL`` (e.g. ``redis://host:6379/9``), and
so does the prefix of every key they write, ``XBOT_CELERY_KEY_PREFIX`` (default: the Redis
prefix and ``celery:``, e.g. ``prod:celery:``; :func:`celery_key_prefix`). The prefix is what
keeps two deployments on one broker DB apart: without it they share the queue ``dagster`` and
kombu's ``unacked`` keys, so one's workers run the other's steps.
Workers: ``dagster-celery worker start -A dagster_celery.app -y <yaml of worker_config()>``,
written with the same prefix as the runs that feed them.

What makes a killed worker's step run again (:func:`celery_settings`): late acknowledgement (the
broker keeps the message until the step has finished), prefetch 1 (a busy worker holds no second
task), and Redis's visibility timeout (the other workers put a message unacknowledged for that
long back on the queue). The timeout must exceed the longest step, or a step still running is
started a second time elsewhere (posting's durable claim is designed to keep even that to one
post; two concurrent attempts are not rehearsed). dagster-celery's task runs a redelivered step
whatever its run's status; each engine op stands down when its run has already ended
(``orchestration.stands_down_once_its_run_ended``), so a step delivered after run monitoring
failed its run does nothing. docs/deployment.md, "Scale-out on Celery"."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg
from dagster_celery import celery_executor

from xbot_assets.config import (
    CELERY_KEY_PREFIX_ENV,
    ConfigError,
    celery_key_prefix_problem,
    load_settings,
)
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
KEY_PREFIX_ENV = CELERY_KEY_PREFIX_ENV
"""``XBOT_CELERY_KEY_PREFIX``: a setting (``config.Settings.celery_key_prefix``)."""
VISIBILITY_TIMEOUT_S = 600
"""Seconds a task may stay unacknowledged before another worker takes it over: above the
longest engine step (a refill, tens of seconds on a loaded 2-core machine)."""


def celery_key_prefix() -> str:
    """The deployment's broker and backend key prefix, read from the environment now:
    ``XBOT_CELERY_KEY_PREFIX``, or the Redis prefix and ``celery:``. Raises ``ConfigError``
    (one line naming the setting, as ``xbot`` exits 2 with) on a value that must not start."""
    return load_settings().resolved_celery_key_prefix


def celery_settings(
    visibility_timeout: int = VISIBILITY_TIMEOUT_S, key_prefix: str | None = None
) -> dict[str, Any]:
    """The Celery app settings shared by the executor (producer) and the workers (consumers).

    Args:
        visibility_timeout: seconds before an unacknowledged message goes back on the queue.
        key_prefix: the prefix of every Redis key the broker (kombu's ``global_keyprefix``: the
            queue, ``unacked``, ``unacked_index``, ``unacked_mutex``, bindings) and the result
            backend (``celery-task-meta-*``) write; None: :func:`celery_key_prefix`.
    """
    prefix = celery_key_prefix() if key_prefix is None else key_prefix
    problem = celery_key_prefix_problem(prefix)
    if problem:
        raise ConfigError(problem)
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
            "global_keyprefix": prefix,
        },
        # the backend's own option: it prefixes celery-task-meta-<id> (the ':' at the end keeps
        # Celery from appending '_', so both carry the same prefix)
        "result_backend_transport_options": {"global_keyprefix": prefix},
    }


def worker_config(
    broker: str,
    backend: str,
    visibility_timeout: int = VISIBILITY_TIMEOUT_S,
    key_prefix: str | None = None,
) -> dict[str, Any]:
    """The YAML body for ``dagster-celery worker start -y``: the executor's config block, with
    the key prefix of the runs the workers serve (None: :func:`celery_key_prefix`, read from this
    process's environment, as the runs read theirs)."""
    return {
        "execution": {
            "config": {
                "broker": broker,
                "backend": backend,
                "config_source": celery_settings(visibility_timeout, key_prefix),
            }
        }
    }


def _executor_config(config: dict[str, Any]) -> dict[str, Any]:
    """The executor's config, built when Dagster resolves a run's config (the run's start in its
    process, each step's in its worker; never at import), so the environment of that process
    decides broker, backend and key prefix."""
    del config  # the executor takes no run config of its own: the environment decides
    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV},
        "config_source": celery_settings(),
    }


xbot_celery_executor = celery_executor.configured(
    _executor_config, name="xbot_celery_executor", config_schema={}
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
