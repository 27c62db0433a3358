"""An account's run carries its own time limit (ACCOUNT_RUN_MAX_SECONDS as ``dagster/max_runtime``),
so a run whose coordinator died (the daemon's process group killed with its code servers) is
failed by run monitoring in minutes and stops holding the account's next post.

Dagster's own monitoring code decides here (``monitor_started_run``, the daemon's check of a
STARTED run), on the clock moved with Dagster's ``freeze_time``; the daemon itself doing it is
``test_celery_daemon_kill.py``'s process-group kill."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from tests.deploy.test_batch_runs import _two_accounts
from tests.orchestration.conftest import Env
from tests.orchestration.test_sensors import evaluate, evaluate_schedule
from xbot_assets.config import ConfigError, load_settings
from xbot_assets.defs.orchestration import ACCOUNT_TAG, post_job
from xbot_assets.defs.sensor_support import MAX_RUNTIME_TAG


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str], at: float) -> str:
    """A ``post_job`` run that started at ``at`` (its RUN_START event) and never ended."""
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.test_utils import freeze_time

    run = instance.add_run(DagsterRun(job_name=post_job.name, tags=tags))
    with freeze_time(at):
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name=post_job.name), run.run_id
        )
    assert _status(instance, run.run_id) == dg.DagsterRunStatus.STARTED
    return run.run_id


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def _monitor(instance: dg.DagsterInstance, run_id: str, at: float) -> dg.DagsterRunStatus:
    """One check of the daemon's run monitoring at ``at``; the run's status after it."""
    from dagster._core.test_utils import freeze_time
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))
    with freeze_time(at):
        monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))  # type: ignore[arg-type]
    return _status(instance, run_id)


def test_an_account_run_past_its_limit_is_failed_and_the_account_posts_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_RUN_MAX_SECONDS", "120")
    defs, instance, store, ids = _two_accounts(env)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    store.enqueue_post(ids["acct_b"], "Due now.", scheduled_at=now, now=now)
    tick = evaluate(defs, instance, "posting_sensor", now)
    (request,) = tick.run_requests
    assert request.tags[ACCOUNT_TAG] == "acct_b"
    assert request.tags[MAX_RUNTIME_TAG] == "120"  # the setting, on the run

    # its coordinator died mid-run: STARTED, nothing will end it but run monitoring
    started = time.time()
    run_id = _started_run(instance, dict(request.tags), started)
    first = request.run_config["ops"]["post_due_posts"]["config"]["post_id"]
    second = store.enqueue_post(ids["acct_b"], "Next one.", scheduled_at=now, now=now).id
    later = now + timedelta(minutes=1)
    held = evaluate(defs, instance, "posting_sensor", later, tick.cursor)
    assert not held.run_requests and "@acct_b, held" in (held.skip_message or "")

    assert _monitor(instance, run_id, started + 119) == dg.DagsterRunStatus.STARTED
    assert _monitor(instance, run_id, started + 121) == dg.DagsterRunStatus.FAILURE
    # the account is free: the dead run's post, never claimed, is requested again under a new
    # key (Dagster launches a key once); the run posts it and the one due after it
    (after,) = evaluate(defs, instance, "posting_sensor", later, tick.cursor).run_requests
    assert after.run_config["ops"]["post_due_posts"]["config"]["post_id"] == first
    assert after.run_key == f"{request.run_key}:retry1"
    assert [store.get_post(i).status for i in (first, second)] == ["queued", "queued"]


def test_a_post_whose_runs_keep_failing_is_requested_again_three_times_then_left(
    env: Env,
) -> None:
    """Each failed run of a still-queued post gives it one more run under a new key, up to
    MAX_RUN_RETRIES; a run that succeeded without posting it (caps moved it) gives none."""
    from dagster._core.storage.dagster_run import DagsterRun

    from xbot_assets.defs.sensor_support import MAX_RUN_RETRIES

    defs, instance, store, ids = _two_accounts(env)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    post = store.enqueue_post(ids["acct_b"], "Due now.", scheduled_at=now, now=now).id
    cursor, keys = None, []
    for _ in range(MAX_RUN_RETRIES + 1):
        tick = evaluate(defs, instance, "posting_sensor", now, cursor)
        (request,) = tick.run_requests
        assert request.run_config["ops"]["post_due_posts"]["config"]["post_id"] == post
        keys.append(request.run_key)
        cursor = tick.cursor
        instance.add_run(DagsterRun(job_name=post_job.name, status=dg.DagsterRunStatus.FAILURE,
                                    tags=dict(request.tags)))  # fmt: skip
    base = keys[0]
    assert keys == [base] + [f"{base}:retry{n}" for n in range(1, MAX_RUN_RETRIES + 1)]
    assert not evaluate(defs, instance, "posting_sensor", now, cursor).run_requests
    # a run that ended well but left its post queued is not retried
    other = store.enqueue_post(
        ids[env.settings.x_handle], "Held by caps.", scheduled_at=now, now=now
    )
    (first,) = (tick := evaluate(defs, instance, "posting_sensor", now, cursor)).run_requests
    assert first.run_config["ops"]["post_due_posts"]["config"]["post_id"] == other.id
    instance.add_run(DagsterRun(job_name=post_job.name, status=dg.DagsterRunStatus.SUCCESS,
                                tags=dict(first.tags)))  # fmt: skip
    assert not evaluate(defs, instance, "posting_sensor", now, tick.cursor).run_requests


def test_without_the_tag_the_same_run_would_hold_the_account(env: Env) -> None:
    """The control: the instance's own limit (none in tests; 1800 s in deploy/dagster.yaml)
    leaves a run without ``dagster/max_runtime`` STARTED."""
    _, instance, _, _ = _two_accounts(env)
    started = time.time()
    run_id = _started_run(instance, {ACCOUNT_TAG: "acct_b"}, started)
    assert _monitor(instance, run_id, started + 1000) == dg.DagsterRunStatus.STARTED


def test_every_account_sensor_and_the_schedule_tag_their_runs_with_the_limit(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refill, reconcile and metrics runs hold their account as post runs do."""
    monkeypatch.setenv("ACCOUNT_RUN_MAX_SECONDS", "300")
    defs, instance, store, ids = _two_accounts(env)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    refills = evaluate(defs, instance, "candidate_refill_sensor", now).run_requests
    assert {r.partition_key for r in refills} == {env.settings.x_handle, "acct_b"}
    assert {r.tags[MAX_RUNTIME_TAG] for r in refills} == {"300"}
    post = store.enqueue_post(ids["acct_b"], "Stuck.", scheduled_at=now, now=now)
    assert store.claim_post(post.id, now=now) is not None  # left in `posting`
    stale = now + timedelta(hours=1)
    (reconcile,) = evaluate(defs, instance, "reconcile_sensor", stale).run_requests
    assert (reconcile.partition_key, reconcile.tags[MAX_RUNTIME_TAG]) == ("acct_b", "300")
    requests = evaluate_schedule(defs, instance, "collect_account_metrics_schedule", now)
    assert len(requests) == 2 and {r.tags[MAX_RUNTIME_TAG] for r in requests} == {"300"}


@pytest.mark.parametrize("value", ["0", "29", "ten minutes"])
def test_a_limit_below_30_seconds_or_not_a_number_is_refused_with_the_setting_named(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCOUNT_RUN_MAX_SECONDS", value)
    with pytest.raises(ConfigError, match="ACCOUNT_RUN_MAX_SECONDS"):
        load_settings(env_file=None)


def test_a_refill_whose_run_failed_is_requested_again_within_the_hour_while_the_queue_is_low(
    env: Env,
) -> None:
    """An account is refilled at most once an hour, but a refill whose run failed (its
    coordinator died before the step reached a worker, failed by run monitoring) is requested
    again at the next tick under ``<key>:retry<n>`` (Dagster launches a key once), up to
    MAX_RUN_RETRIES times, while the queue is still low; a refill that succeeded is not,
    nor one whose account's queue has filled since. Without it the coming slots of the hour
    get no post."""
    from dagster._core.storage.dagster_run import DagsterRun

    from xbot_assets.defs.sensor_support import MAX_RUN_RETRIES

    defs, instance, store, ids = _two_accounts(env)
    main = env.settings.x_handle
    now = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)

    def ended(request: dg.RunRequest, status: dg.DagsterRunStatus) -> None:
        """The run the daemon launched for ``request`` (run key tag and all), ended so."""
        tags = dict(request.tags) | {"dagster/run_key": str(request.run_key)}
        instance.add_run(DagsterRun(job_name="refill_candidates_job", status=status, tags=tags))

    tick = evaluate(defs, instance, "candidate_refill_sensor", now)
    first = {r.partition_key: r for r in tick.run_requests}
    assert first["acct_b"].run_key == "refill:acct_b:2026-03-02T09"
    ended(first[main], dg.DagsterRunStatus.SUCCESS)  # (the test's store stays empty)
    cursor, keys = tick.cursor, [first["acct_b"].run_key]
    ended(first["acct_b"], dg.DagsterRunStatus.FAILURE)
    for n in range(1, MAX_RUN_RETRIES + 1):
        now += timedelta(minutes=2)
        tick = evaluate(defs, instance, "candidate_refill_sensor", now, cursor)
        (retry,) = tick.run_requests  # acct_b only: the main account's refill succeeded
        assert retry.partition_key == "acct_b"
        assert retry.tags["xbot/reason"] == "queue low, its refill run failed"
        keys.append(str(retry.run_key))
        cursor = tick.cursor
        ended(retry, dg.DagsterRunStatus.FAILURE)
    base = keys[0]
    assert keys == [base] + [f"{base}:retry{n}" for n in range(1, MAX_RUN_RETRIES + 1)]
    now += timedelta(minutes=2)  # 3 retries failed: left until the hour is out
    assert not evaluate(defs, instance, "candidate_refill_sensor", now, cursor).run_requests
    later = now + timedelta(hours=1)  # then its next hour's key, as for any account
    next_hour = evaluate(defs, instance, "candidate_refill_sensor", later, cursor)
    fresh = {r.partition_key: r.run_key for r in next_hour.run_requests}
    assert fresh["acct_b"] == "refill:acct_b:2026-03-02T10"

    # a failed refill of an account whose queue has filled since (the worker finished the step
    # after the coordinator died) is not asked again
    tick = evaluate(defs, instance, "candidate_refill_sensor", later)
    (b,) = [r for r in tick.run_requests if r.partition_key == "acct_b"]
    ended(b, dg.DagsterRunStatus.FAILURE)
    for i in range(2):
        slot = later + timedelta(hours=i + 1)
        store.enqueue_post(ids["acct_b"], f"Filled {i}.", scheduled_at=slot, now=later)
    after = evaluate(defs, instance, "candidate_refill_sensor", later + timedelta(minutes=2),
                     tick.cursor).run_requests  # fmt: skip
    assert not [r for r in after if r.partition_key == "acct_b"]


def test_a_failed_batch_refill_is_requested_again_within_the_hour_like_a_per_account_one(
    env: Env,
) -> None:
    """refill_batch_sensor's rule is candidate_refill_sensor's: a batch run that failed is
    requested again at the next tick under ``<key>:retry<n>``, for its accounts whose queue is
    still low, up to MAX_RUN_RETRIES times, then nothing until the hour is out; a batch run
    that succeeded is not."""
    from dagster._core.storage.dagster_run import DagsterRun

    from xbot_assets.defs.orchestration import refill_batch_job
    from xbot_assets.defs.sensor_support import MAX_RUN_RETRIES

    defs, instance, store, ids = _two_accounts(env)
    both = sorted([env.settings.x_handle, "acct_b"])
    now = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)

    def ended(request: dg.RunRequest, status: dg.DagsterRunStatus) -> None:
        tags = dict(request.tags) | {"dagster/run_key": str(request.run_key)}
        instance.add_run(DagsterRun(job_name=refill_batch_job.name, status=status, tags=tags))

    def handles(request: dg.RunRequest) -> list[str]:
        return sorted(request.run_config["ops"]["refill_accounts"]["config"]["handles"])

    tick = evaluate(defs, instance, "refill_batch_sensor", now)
    (first,) = tick.run_requests
    assert handles(first) == both and str(first.run_key).startswith("refills:")
    ended(first, dg.DagsterRunStatus.FAILURE)
    cursor, keys = tick.cursor, [str(first.run_key)]
    for _ in range(MAX_RUN_RETRIES):
        now += timedelta(minutes=2)
        tick = evaluate(defs, instance, "refill_batch_sensor", now, cursor)
        (retry,) = tick.run_requests
        assert handles(retry) == both  # (the test's store stays empty: both still low)
        assert retry.tags["xbot/reason"] == ";".join(["queue low, its refill run failed"] * 2)
        keys.append(str(retry.run_key))
        cursor = tick.cursor
        ended(retry, dg.DagsterRunStatus.FAILURE)
    base = keys[0]
    assert keys == [base] + [f"{base}:retry{n}" for n in range(1, MAX_RUN_RETRIES + 1)]
    now += timedelta(minutes=2)  # 3 retries failed: left until the hour is out
    assert not evaluate(defs, instance, "refill_batch_sensor", now, cursor).run_requests

    # the next hour: a fresh batch key; it succeeds, so nothing is asked again
    later = now + timedelta(hours=1)
    tick = evaluate(defs, instance, "refill_batch_sensor", later, cursor)
    (fresh,) = tick.run_requests
    assert handles(fresh) == both and ":retry" not in str(fresh.run_key)
    ended(fresh, dg.DagsterRunStatus.SUCCESS)
    after = later + timedelta(minutes=2)
    assert not evaluate(defs, instance, "refill_batch_sensor", after, tick.cursor).run_requests

    # the hour after: it fails, and one account's queue filled since (the worker finished its
    # step): the retry is for the other one only
    later += timedelta(hours=1)
    tick = evaluate(defs, instance, "refill_batch_sensor", later, tick.cursor)
    (failed,) = tick.run_requests
    ended(failed, dg.DagsterRunStatus.FAILURE)
    for i in range(2):
        slot = later + timedelta(hours=i + 1)
        store.enqueue_post(ids["acct_b"], f"Filled {i}.", scheduled_at=slot, now=later)
    after = later + timedelta(minutes=2)
    (retry,) = evaluate(defs, instance, "refill_batch_sensor", after, tick.cursor).run_requests
    assert handles(retry) == [env.settings.x_handle]
    assert retry.run_key == f"{failed.run_key}:retry1"
