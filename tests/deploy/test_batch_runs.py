"""Fewer, fuller runs on a deployment: one batch run holds every account's posts of the coming
lead and posts each at its slot; one batch run refills every account due; sensor intervals
follow the rehearsal clock.

Under the daemon every run is a process whose start-up (~6 CPU s) dwarfs the post it makes, so
the deployment's batch sensors replace the per-account posting and refill sensors there."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from tests.orchestration.conftest import Env
from tests.orchestration.test_sensors import evaluate
from xbot_assets.defs.orchestration import (
    ACCOUNTS_TAG,
    POST_IDS_TAG,
    post_batch_job,
    refill_batch_job,
)
from xbot_assets.defs.posting_sensors import (
    BATCH_START_ALLOWANCE_S,
    MAX_BATCH_RUNS_IN_FLIGHT,
    MAX_LEAD_S,
    batch_lead_s,
    batch_post_item,
)
from xbot_assets.defs.sensor_support import POSTING_INTERVAL, scaled_interval
from xbot_assets.engine.batch import BatchItem, wait_for
from xbot_assets.runner import load_definitions
from xbot_assets.store.durable import DurableStore


def test_sensor_intervals_follow_the_rehearsal_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOCK_SPEED", raising=False)
    assert scaled_interval(600, floor=30) == 600  # production: unchanged
    monkeypatch.setenv("CLOCK_SPEED", "144")
    assert scaled_interval(600, floor=30) == 30  # 600 s / 144, bounded below
    monkeypatch.setenv("CLOCK_SPEED", "2")
    assert scaled_interval(600, floor=30) == 300
    monkeypatch.setenv("CLOCK_SPEED", "not a number")
    assert scaled_interval(600, floor=30) == 600


def test_a_batch_run_waits_for_each_slot_on_the_deployments_clock() -> None:
    """At 144x a slot 72 simulated minutes ahead is 30 real seconds away: the run sleeps that
    long (in steps), not 72 minutes, and not at all for a slot already past."""
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    clock = [start]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds * 144)

    waited = wait_for(start + timedelta(minutes=72), lambda: clock[0], 144, sleep)
    assert waited == pytest.approx(30.0) and sum(slept) == pytest.approx(30.0)
    assert clock[0] >= start + timedelta(minutes=72)
    assert wait_for(start, lambda: clock[0], 144, sleep) == 0.0
    item = BatchItem.parse(batch_post_item("acct_b", 7, start))
    assert item == BatchItem("acct_b", 7, start)


def _two_accounts(
    env: Env,
) -> tuple[dg.Definitions, dg.DagsterInstance, DurableStore, dict[str, int]]:
    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(env.settings.resolved_database_url)
    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    handles = [env.settings.x_handle, "acct_b"]
    instance.add_dynamic_partitions("accounts", handles)
    store = cached_store(env.settings)
    ids = {h: int(store.ensure_account(h).id) for h in handles}
    return defs, instance, store, ids


def test_one_batch_run_holds_every_accounts_posts_of_the_lead(env: Env) -> None:
    """Posts of both accounts whose slots fall within the lead (and a late one) go into ONE run,
    in slot order; a post beyond the lead waits for a later tick; a post held by a run in
    flight is not requested again (by either posting sensor); a failed run releases its posts."""
    from dagster._core.storage.dagster_run import DagsterRun

    defs, instance, store, ids = _two_accounts(env)
    main, other = env.settings.x_handle, "acct_b"
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    lead = timedelta(seconds=BATCH_START_ALLOWANCE_S + POSTING_INTERVAL)

    def queue(handle: str, at: datetime, text: str) -> int:
        return int(store.enqueue_post(ids[handle], text, scheduled_at=at, now=now - lead).id)

    late = queue(other, now - timedelta(minutes=5), "Ship small, ship daily.")
    soon = queue(main, now + lead / 4, "Tests first, then the fix.")
    later = queue(other, now + lead * 1.5, "Measure before you tune anything.")
    beyond = queue(main, now + 3 * lead, "Beyond two leads: a later run.")

    tick = evaluate(defs, instance, "posting_batch_sensor", now)
    (request,) = tick.run_requests
    posts = request.run_config["ops"]["post_batch"]["config"]["posts"]
    assert [BatchItem.parse(p).post_id for p in posts] == [late, soon, later]
    assert request.tags[ACCOUNTS_TAG] == ",".join(sorted([main, other]))
    assert request.tags[POST_IDS_TAG] == f"{late},{soon},{later}"
    assert request.tags["dagster/priority"] == "10"
    # its time limit: the wait for its last slot, then an account run's (600 s by default)
    wait = math.ceil((lead * 1.5).total_seconds())
    assert request.tags["dagster/max_runtime"] == str(wait + 600)

    running = DagsterRun(job_name=post_batch_job.name, status=dg.DagsterRunStatus.STARTED,
                         tags=dict(request.tags))  # fmt: skip
    instance.add_run(running)
    assert not evaluate(defs, instance, "posting_batch_sensor", now).run_requests
    at_slot = now + lead * 1.5  # all three due: the per-account sensor leaves them to the batch
    assert not evaluate(defs, instance, "posting_sensor", at_slot).run_requests

    instance.report_run_failed(running)  # killed: its posts are still queued, requested again
    again = evaluate(defs, instance, "posting_batch_sensor", now + timedelta(seconds=30))
    (retry,) = again.run_requests
    assert retry.tags[POST_IDS_TAG] == f"{late},{soon},{later}"
    assert retry.run_key != request.run_key  # a new key: the daemon would skip a reused one
    instance.add_run(DagsterRun(job_name=post_batch_job.name, status=dg.DagsterRunStatus.STARTED,
                                tags=dict(retry.tags)))  # fmt: skip
    # the next post is three leads away: no run yet (it would only wait); one lead before, yes
    assert not evaluate(defs, instance, "posting_batch_sensor", now + lead / 2).run_requests
    (next_run,) = evaluate(defs, instance, "posting_batch_sensor", now + 2 * lead).run_requests
    assert next_run.tags[POST_IDS_TAG] == str(beyond)


def test_the_lead_grows_with_the_slowest_recent_start() -> None:
    """Runs that took 100 s to start (a loaded machine) get 150 s of lead plus a tick; an idle
    machine keeps the allowance; the lead is capped."""

    class Record:
        def __init__(self, start_s: float | None) -> None:
            self.create_timestamp = datetime(2026, 3, 2, 9, tzinfo=UTC)
            base = self.create_timestamp.timestamp()
            self.start_time = None if start_s is None else base + start_s

    class Instance:
        def __init__(self, starts: list[float | None]) -> None:
            self.records = [Record(s) for s in starts]

        def get_run_records(self, filters: dg.RunsFilter, limit: int) -> list[Record]:
            return self.records[:limit] if filters.job_name == "post_batch_job" else []

    class Context:
        def __init__(self, starts: list[float | None]) -> None:
            self.instance = Instance(starts)

    tick = POSTING_INTERVAL
    assert batch_lead_s(Context([])) == BATCH_START_ALLOWANCE_S + tick
    assert batch_lead_s(Context([5.0, None, 8.0])) == BATCH_START_ALLOWANCE_S + tick
    assert batch_lead_s(Context([30.0, 100.0])) == 150.0 + tick
    assert batch_lead_s(Context([1000.0])) == MAX_LEAD_S


def test_batch_posting_runs_in_flight_are_capped(env: Env) -> None:
    from dagster._core.storage.dagster_run import DagsterRun

    defs, instance, store, ids = _two_accounts(env)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    store.enqueue_post(ids["acct_b"], "Due now.", scheduled_at=now, now=now)
    for _ in range(MAX_BATCH_RUNS_IN_FLIGHT):
        instance.add_run(DagsterRun(job_name=post_batch_job.name,
                                    status=dg.DagsterRunStatus.STARTED))  # fmt: skip
    assert "in flight" in (evaluate(defs, instance, "posting_batch_sensor", now).skip_message or "")


def test_one_batch_refill_run_for_every_account_due(env: Env) -> None:
    from dagster._core.storage.dagster_run import DagsterRun

    defs, instance, _, _ = _two_accounts(env)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    (request,) = evaluate(defs, instance, "refill_batch_sensor", now).run_requests
    handles = request.run_config["ops"]["refill_accounts"]["config"]["handles"]
    assert sorted(handles) == sorted([env.settings.x_handle, "acct_b"])
    running = DagsterRun(job_name=refill_batch_job.name, status=dg.DagsterRunStatus.STARTED,
                         tags=dict(request.tags))  # fmt: skip
    instance.add_run(running)
    later = now + timedelta(hours=2)  # past the hourly throttle: only the run in flight holds them
    assert not evaluate(defs, instance, "refill_batch_sensor", later).run_requests
    assert not evaluate(defs, instance, "candidate_refill_sensor", later).run_requests


@pytest.mark.usefixtures("clean_env")
def test_a_batch_run_posts_each_account_at_its_slot_with_its_own_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch job for real on the api poster: two accounts' posts a few seconds ahead; the
    run waits for each slot, then posts each as its own account, once, not before its slot."""
    from tests.deploy.test_many_accounts import _deployment_env
    from xbot_assets.defs.orchestration import post_batch_job as job
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings
    from xbot_assets.engine.sensing import forget_stores
    from xbot_assets.sandbox.platform import SandboxX
    from xbot_assets.sandbox.server import running_server

    sandbox = SandboxX(scenario="default", seed=11)
    sandbox.add_account("acct_b", followers=900, audience_jitter=0.4)
    with running_server(sandbox) as url:
        database_url = _deployment_env(monkeypatch, tmp_path, sandbox, url,
                                       {"acct_b": "sandbox-user-acct_b"})  # fmt: skip
        store = DurableStore.from_url(database_url)
        # accounts whose local time is midday, so quiet hours never move the posts
        offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12
        zone = "Etc/GMT" + (f"{-offset:+d}" if offset else "")
        start = datetime.now(UTC)
        items = []
        for handle, ahead, text in ((sandbox.account().handle, 1.5, "Ship small, ship daily."),
                                    ("acct_b", 3.0, "Tests first, then the fix.")):  # fmt: skip
            account = store.ensure_account(handle, timezone=zone)
            slot = start + timedelta(seconds=ahead)
            post = store.enqueue_post(account.id, text, scheduled_at=slot, now=start)
            items.append(batch_post_item(handle, int(post.id), slot))
        store.close()
        try:
            result = job.execute_in_process(
                resources={"xbot_settings": XbotSettings(), "xbot_runtime": XbotRuntime()},
                run_config={"ops": {"post_batch": {"config": {"posts": items}}}},
            )
        finally:
            forget_stores()
    assert result.success
    assert [p.text for p in sandbox.account().posts] == ["Ship small, ship daily."]
    assert [p.text for p in sandbox.account("acct_b").posts] == ["Tests first, then the fix."]
    store = DurableStore.from_url(database_url)
    try:
        for item in items:
            post = store.get_post(BatchItem.parse(item).post_id)
            assert post.status == "posted"
            assert post.posted_at is not None and post.posted_at >= post.scheduled_at
    finally:
        store.close()
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = output.step_output_data.metadata
    late, waited = meta["late_simulated_s"], meta["waited_real_s"]
    assert isinstance(late, dg.JsonMetadataValue) and isinstance(late.data, list)
    assert len(late.data) == 2 and all(0 <= s < 5 for s in late.data)
    assert isinstance(waited, dg.FloatMetadataValue)
    assert waited.value is not None and waited.value > 1.0  # the run waited for the slots


def test_a_failed_refill_shows_its_error_without_the_secret_it_carried(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch refill's error reaches the run's log and Failure metadata redacted, as every
    other op's does (a driver's or generator's message may carry a key or a DSN)."""
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings
    from xbot_assets.engine import decide
    from xbot_assets.engine.sensing import forget_stores
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(env.settings.resolved_database_url)
    key = "sk-" + "s3cr3t" * 8

    def refused(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"generator refused key {key} via postgresql://u:hunter2@db/x")

    monkeypatch.setattr(decide, "refill", refused)
    handle = env.settings.x_handle
    try:
        result = refill_batch_job.execute_in_process(
            resources={"xbot_settings": XbotSettings(), "xbot_runtime": XbotRuntime()},
            run_config={"ops": {"refill_accounts": {"config": {"handles": [handle]}}}},
            raise_on_error=False,
        )
    finally:
        forget_stores()
    assert not result.success
    shown = repr(result.all_events)  # messages, the Failure's description and metadata
    assert "RuntimeError: generator refused" in shown
    assert key not in shown and "hunter2" not in shown


def test_a_deployments_refill_leaves_slots_nearer_than_a_run_start(env: Env) -> None:
    """A slot planned sooner than a posting run can start would go out late: the batch refill
    plans none before ``not_before`` (now + the lead); the main job's refill is unchanged."""
    from xbot_assets.engine.decide import refill
    from xbot_assets.engine.runtime import build_runtime
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(env.settings.resolved_database_url)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    slots = []
    for handle, not_before in ((None, None), ("acct_b", now + timedelta(hours=3))):
        runtime = build_runtime(env.settings, handle=handle, now=now)
        try:
            store = runtime.store()
            report = refill(runtime, n_candidates=2, max_slots=3, not_before=not_before)
            slots.append([store.get_post(i).scheduled_at for i in report.queued])
        finally:
            runtime.close()
    assert slots[0] and min(slots[0]) < now + timedelta(hours=3)
    assert slots[1] and min(slots[1]) >= now + timedelta(hours=3)


def test_the_posting_sensor_names_accounts_whose_due_posts_wait_on_a_run_in_flight(
    env: Env,
) -> None:
    """A post run in flight holds its account's next post (one run per account); when that is
    all that is due, the skip reason says so and names the account, not "no post is due" (a
    run left STARTED by a dead coordinator holds the account until run monitoring ends it)."""
    from dagster._core.storage.dagster_run import DagsterRun

    from xbot_assets.defs.orchestration import ACCOUNT_TAG, post_job

    defs, instance, store, ids = _two_accounts(env)
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert evaluate(defs, instance, "posting_sensor", now).skip_message == "no post is due"
    store.enqueue_post(ids["acct_b"], "Due now.", scheduled_at=now, now=now)
    instance.add_run(DagsterRun(job_name=post_job.name, status=dg.DagsterRunStatus.STARTED,
                                tags={ACCOUNT_TAG: "acct_b"}))  # fmt: skip
    result = evaluate(defs, instance, "posting_sensor", now)
    assert not result.run_requests
    assert result.skip_message == (
        "posts are due for @acct_b, held until the account's post_job run in flight ends"
    )
