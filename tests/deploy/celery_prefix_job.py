"""A one-op job on xbot's Celery executor (``celery_definitions.xbot_celery_executor``) for
tests/deploy/test_celery_key_prefix.py: the op logs the name of the worker that ran it
(``PREFIX_TEST_WORKER`` in the worker's environment)."""

import os

import dagster as dg

from xbot_assets.celery_definitions import xbot_celery_executor

RAN_ON = "ran on worker "


@dg.op
def whoami(context: dg.OpExecutionContext) -> None:
    context.log.info(RAN_ON + os.environ.get("PREFIX_TEST_WORKER", "?"))


@dg.job(executor_def=xbot_celery_executor)
def whoami_job() -> None:
    whoami()
