"""The engine's small jobs run in their run's own process: under the daemon each run is a
process importing the code location, and a multiprocess executor would add one per step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from tests.orchestration.conftest import Env
from tests.orchestration.test_sensors import evaluate
from xbot_assets.defs.orchestration import (
    ACCOUNT_TAG,
    collect_account_metrics_job,
    post_job,
    reconcile_job,
    refill_candidates_job,
    sync_to_supabase_job,
)
from xbot_assets.runner import load_definitions


def test_engine_jobs_use_the_in_process_executor() -> None:
    for job in (refill_candidates_job, post_job, collect_account_metrics_job, reconcile_job,
                sync_to_supabase_job):  # fmt: skip
        assert job.executor_def is dg.in_process_executor, job.name
    defs = load_definitions()
    for name in ("post_batch_job", "refill_batch_job", "tweet_metrics_job", "raw_extraction_job"):
        assert defs.get_job_def(name).executor_def is dg.in_process_executor, name


def test_no_second_refill_while_the_accounts_refill_is_queued_or_running(env: Env) -> None:
    """Under the daemon a refill run takes seconds to minutes; the account's queue looks low
    until it ends, so the sensor must not pile further refills behind it."""
    from dagster._core.storage.dagster_run import DagsterRun

    from xbot_assets.store.durable.migrate import upgrade

    upgrade(env.settings.resolved_database_url)
    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    handle = env.settings.x_handle
    instance.add_dynamic_partitions("accounts", [handle])
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    first = evaluate(defs, instance, "candidate_refill_sensor", now)
    assert [r.partition_key for r in first.run_requests] == [handle]

    running = DagsterRun(job_name=refill_candidates_job.name, status=dg.DagsterRunStatus.STARTED,
                        tags={ACCOUNT_TAG: handle})  # fmt: skip
    instance.add_run(running)
    later = now + timedelta(hours=2)  # past the hourly throttle: only the running refill holds it
    assert not evaluate(defs, instance, "candidate_refill_sensor", later).run_requests
    instance.report_run_failed(running)
    again = evaluate(defs, instance, "candidate_refill_sensor", later)
    assert [r.partition_key for r in again.run_requests] == [handle]


def test_one_post_run_at_a_time_per_account(env: Env) -> None:
    """A post run posts everything due for its account when it runs; while one is queued or
    running, the posting sensor requests no second run for that account (it would find nothing
    to post and cost a process)."""
    from dagster._core.storage.dagster_run import DagsterRun

    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(env.settings.resolved_database_url)
    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    handle = env.settings.x_handle
    instance.add_dynamic_partitions("accounts", [handle])
    store = cached_store(env.settings)
    account = store.ensure_account(handle)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    for minutes, text in ((20, "Ship small, ship daily."), (10, "Tests first, then the fix.")):
        store.enqueue_post(account.id, text, scheduled_at=now - timedelta(minutes=minutes), now=now)

    running = DagsterRun(job_name=post_job.name, status=dg.DagsterRunStatus.STARTED,
                         tags={ACCOUNT_TAG: handle})  # fmt: skip
    instance.add_run(running)
    assert not evaluate(defs, instance, "posting_sensor", now).run_requests
    instance.report_run_failed(running)
    requested = evaluate(defs, instance, "posting_sensor", now).run_requests
    assert [r.partition_key for r in requested] == [handle]  # one run for the account


def test_the_readmes_deployment_steps_name_every_sensor_and_schedule() -> None:
    """An operator starts what the README's step 4 lists; a sensor or schedule missing there is
    one nobody turns on in production (issue 19: the metrics schedule once was)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    steps = readme[readme.index("## Running staging and production") :]
    steps = steps[: steps.index("\n### ")]
    defs = load_definitions()
    names = [s.name for s in defs.sensors or []] + [s.name for s in defs.schedules or []]
    assert names
    missing = [name for name in names if f"`{name}`" not in steps]
    assert missing == [], f"README's deployment steps do not name {missing}"
