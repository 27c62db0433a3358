"""A Celery app for tests/deploy/test_celery_key_prefix.py's workers and producers: dagster-celery's
own app (``make_app``: the queue ``dagster``, its routing) built from the executor config the
project gives its workers (``celery_definitions.worker_config``), plus two small tasks that say
which deployment's worker ran them.

A worker is ``celery -A tests.deploy.celery_prefix_app worker`` with, in its environment,
``PREFIX_TEST_BROKER`` (the broker and backend URL), ``PREFIX_TEST_KEY_PREFIX`` (the key prefix),
``PREFIX_TEST_VISIBILITY`` and ``PREFIX_TEST_WORKER`` (its
deployment and name, which the tasks return). Read at import: this module is a worker's entry
point in a test, not part of xbot.
"""

from __future__ import annotations

import os
import time
from typing import Any


def make(broker: str, key_prefix: str, visibility_timeout: int) -> Any:
    """dagster-celery's app with the settings the project's workers get, as the executor and
    ``dagster-celery worker start`` build it (``CeleryExecutor(...).app_args()``)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    from xbot_assets.celery_definitions import worker_config

    config = worker_config(broker, broker, visibility_timeout, key_prefix=key_prefix)
    app = make_app(CeleryExecutor.for_cli(**config["execution"]["config"]).app_args())
    app.conf.task_default_queue = "dagster"  # as dagster_celery.defaults: the workers' queue

    @app.task(name="prefix_test.whoami", bind=True)
    def whoami(self: Any) -> str:
        return os.environ.get("PREFIX_TEST_WORKER", "?")

    @app.task(name="prefix_test.hold", bind=True)
    def hold(self: Any, seconds: float) -> str:
        time.sleep(seconds)
        return os.environ.get("PREFIX_TEST_WORKER", "?")

    return app


if "PREFIX_TEST_BROKER" in os.environ:
    app = make(
        os.environ["PREFIX_TEST_BROKER"],
        os.environ["PREFIX_TEST_KEY_PREFIX"],
        int(os.environ.get("PREFIX_TEST_VISIBILITY", "600")),
    )
