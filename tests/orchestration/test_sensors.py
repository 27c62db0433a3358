"""The sensors, driven with build_sensor_context through a sequence of simulated ticks."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest

from tests.orchestration.conftest import Env
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.warehouse import RANGE_END_TAG, RANGE_START_TAG
from xbot_assets.runner import Launcher, load_definitions

pytestmark = pytest.mark.xdist_group("orchestration_sensors")


def evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, now, cursor=None):
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        sensor_name=name,
        definitions=defs,
        resources={
            "xbot_settings": XbotSettings(),
            "xbot_runtime": XbotRuntime(simulated_now=now.isoformat()),
        },
    )
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(context)


def evaluate_schedule(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, when
) -> list[dg.RunRequest]:
    """The run requests of schedule ``name``'s tick at ``when``."""
    schedule = defs.resolve_schedule_def(name)
    # `with`: the context enters its own instance (from the ref) and must exit it again.
    with (
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            resources={"xbot_settings": XbotSettings()},
            repository_def=defs.get_repository_def(),
        ) as context,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        return list(schedule.evaluate_tick(context).run_requests or [])


def test_sensor_ticks_request_the_right_runs_and_a_replayed_tick_posts_once(env: Env) -> None:
    from xbot_assets.engine.runtime import shared_sandbox
    from xbot_assets.engine.sensing import cached_store

    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    launcher = Launcher(defs, instance)
    sandbox = shared_sandbox(env.settings)
    now = sandbox.clock.now().replace(hour=6)
    handle = env.settings.x_handle

    # Tick 1: the account gets its partition; nothing is queued, so nothing is due to post.
    data = evaluate(defs, instance, "accounts_sensor", now)
    assert [r.partition_keys for r in data.dynamic_partitions_requests] == [[handle]]
    instance.add_dynamic_partitions("accounts", [handle])
    assert evaluate(defs, instance, "accounts_sensor", now).skip_message
    posting = evaluate(defs, instance, "posting_sensor", now)
    assert not posting.run_requests

    # Tick 1 (refill): the queue is empty for the coming slots -> one refill run per account.
    refill = evaluate(defs, instance, "candidate_refill_sensor", now)
    assert [(r.partition_key, r.run_key) for r in refill.run_requests] == [
        (handle, f"refill:{handle}:{now:%Y-%m-%dT%H}")
    ]
    launcher.launch(
        refill.run_requests[0],
        default_job="refill_candidates_job",
        origin_tag="dagster/sensor_name",
        origin="candidate_refill_sensor",
        now=now,
    )
    assert not launcher.result.failed_runs
    # The same tick again with the new cursor: no second refill within the hour.
    again = evaluate(defs, instance, "candidate_refill_sensor", now, refill.cursor)
    assert not again.run_requests

    store = cached_store(env.settings)
    account = store.get_account_by_handle(handle)
    queued = [p for p in store.list_posts(account.id, status="queued") if p.thread_position == 0]
    assert len(queued) >= 3
    first = min(queued, key=lambda p: (p.scheduled_at, p.id))
    assert {"propensity", "sampled_values", "arm_index"} <= set(first.metadata)
    assert first.arm and 0 < first.metadata["propensity"] <= 1

    # Tick 2, before the first slot: nothing due.
    early = first.scheduled_at - timedelta(minutes=5)
    assert not evaluate(defs, instance, "posting_sensor", early).run_requests

    # Tick 3, the first slot is due: one run keyed on the post's id, tagged with the account.
    due_at = first.scheduled_at + timedelta(minutes=1)
    tick = evaluate(defs, instance, "posting_sensor", due_at)
    key = f"post:{first.id}:{first.scheduled_at:%Y%m%dT%H%M}"
    assert [r.run_key for r in tick.run_requests] == [key]
    request = tick.run_requests[0]
    assert request.partition_key == handle
    assert request.tags["xbot/account"] == handle
    assert json.loads(tick.cursor)["requested"] == [key]

    # The same tick replayed (a daemon restart lost the cursor): the same run key comes back,
    # and launching it twice makes one run and one post.
    replay = evaluate(defs, instance, "posting_sensor", due_at)
    assert [r.run_key for r in replay.run_requests] == [key]
    for req in (request, replay.run_requests[0]):
        launcher.launch(
            req,
            default_job="post_job",
            origin_tag="dagster/sensor_name",
            origin="posting_sensor",
            now=due_at,
        )
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": key}))
    assert len(runs) == 1
    assert launcher.result.deduplicated == 1
    assert not launcher.result.failed_runs
    posted = store.get_post(first.id)
    assert posted.status == "posted" and posted.x_id
    assert [p.id for p in sandbox.posts_of(handle) if p.text == posted.text] == [posted.x_id]
    # With the kept cursor the sensor does not even ask again.
    assert not evaluate(defs, instance, "posting_sensor", due_at, tick.cursor).run_requests

    # Nothing is stuck in `posting`, and without Redis the sync worker has nothing to do.
    assert not evaluate(defs, instance, "reconcile_sensor", due_at).run_requests
    assert evaluate(defs, instance, "sync_to_supabase_sensor", due_at).skip_message

    # Metrics: an hour later the 1h snapshot is due; the rebuild sensor then asks for the day's
    # metrics load and one rebuild run, in that order.
    later = due_at + timedelta(hours=2)
    metric_requests = evaluate_schedule(defs, instance, "collect_account_metrics_schedule", later)
    assert [r.partition_key for r in metric_requests] == [handle]
    launcher.launch(
        metric_requests[0],
        default_job="collect_account_metrics_job",
        origin_tag="dagster/schedule_name",
        origin="collect_account_metrics_schedule",
        now=later,
    )
    assert not launcher.result.failed_runs
    assert store.get_metrics(first.id), "the 1h snapshot was collected"
    rebuild = evaluate(defs, instance, "learning_rebuild_sensor", later)
    jobs = [r.job_name for r in rebuild.run_requests]
    assert set(jobs) == {"tweet_metrics_job"}, "the rebuild itself is declarative automation"
    # One tweet_metrics run over the (day, account) partitions with new snapshots: here one,
    # the account whose snapshot is new, that day (a partition range of one).
    key = str(dg.MultiPartitionKey({"day": later.date().isoformat(), "account": handle}))
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in rebuild.run_requests] == [
        (key, key)
    ]
    launcher.launch(rebuild.run_requests[0], default_job=None, origin_tag="dagster/sensor_name",
                    origin="learning_rebuild_sensor", now=later)  # fmt: skip
    assert not launcher.result.failed_runs
    assert instance.get_materialized_partitions(dg.AssetKey("tweet_metrics")) == {key}
    # Within the rebuild interval, new snapshots wait for the next rebuild.
    assert not evaluate(
        defs, instance, "learning_rebuild_sensor", later, rebuild.cursor
    ).run_requests
