"""Sensors and schedules that measure the posts and rebuild what is learned from them: the
metrics collection, the load of new snapshots that starts the learning rebuild, and the daily
summaries."""

import json
import zlib
from datetime import datetime, timedelta

import dagster as dg

from xbot_assets.defs.health import sensor_health
from xbot_assets.defs.orchestration import (
    accounts_partitions,
    collect_account_metrics_job,
    daily_summaries_job,
    raw_extraction_job,
    tweet_metrics_job,
)
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.sensor_support import (
    NOT_MIGRATED,
    REBUILD_INTERVAL,
    STOPPED,
    account_partition_keys,
    account_run_tags,
    known_accounts,
    sensor_cursor,
)
from xbot_assets.defs.simtime import rehearsal_speed
from xbot_assets.defs.warehouse import metrics_range_tags

REBUILD_CONFIG_KEY = "rebuild_every_hours"
DEFAULT_REBUILD_EVERY_HOURS = 24
BACKGROUND_TAG = "dagster/from_automation_condition"
"""The rebuild sensor's runs (its metric load, every account and day with new snapshots; the
rehearsal's raw extraction) go in declarative automation's lane: deploy/dagster.yaml runs that
lane one at a time, behind the posts, so they never hold the DuckDB warehouse while the
automation's dbt build needs it (a concurrent extraction failed the rebuild in a rehearsal)."""


@dg.sensor(
    jobs=[tweet_metrics_job, raw_extraction_job],
    minimum_interval_seconds=REBUILD_INTERVAL,
    default_status=STOPPED,
    description="New metric snapshots and the rebuild interval (bot_config "
    "`rebuild_every_hours`) passed: load every (day, account) partition of tweet_metrics with "
    "new snapshots in one run; the rebuild that follows (dbt, views, scorer, posteriors) is "
    "the assets' declarative automation.",
)
@sensor_health("learning_rebuild_sensor", REBUILD_INTERVAL)
def learning_rebuild_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """New metric snapshots and the rebuild interval passed: load every (day, account)
    partition of metrics that has new snapshots into the warehouse, in one run.

    The rebuild that follows (dbt models, views, summaries, scorer, posteriors) is the assets'
    declarative automation (eager conditions, ``default_automation_condition_sensor``), which
    the main job evaluates right after this sensor loads new metrics. This sensor exists because
    ``tweet_metrics``'s cron condition targets only the latest day partition.
    """
    from xbot_assets.engine import sensing

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    cursor = sensor_cursor(context)
    seen = datetime.fromisoformat(cursor["seen"]) if cursor.get("seen") else None
    last = datetime.fromisoformat(cursor["rebuilt"]) if cursor.get("rebuilt") else None
    store = sensing.open_store_or_none(settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    every = int(store.get_config(REBUILD_CONFIG_KEY, DEFAULT_REBUILD_EVERY_HOURS))
    new = store.list_metrics(since=seen) if seen else store.list_metrics()
    new = [s for s in new if seen is None or s.collected_at > seen]
    if not new:
        return dg.SkipReason("no new metric snapshots since the last rebuild")
    if last is not None and now - last < timedelta(hours=every):
        return dg.SkipReason(f"next rebuild {every}h after {last.isoformat()}")
    # The (day, account) partitions with new snapshots, all loaded by one tweet_metrics run.
    handles = {a.id: a.handle for a in store.list_accounts(active_only=False)}
    slices = sorted(
        {
            (s.collected_at.date().isoformat(), handles[s.account_id])
            for s in new
            if s.account_id in handles
        }
    )
    stamp = f"{now:%Y-%m-%dT%H}"
    # An account with snapshots but no partition yet (accounts_sensor not run): add it first.
    missing = sorted({handle for _, handle in slices} - known_accounts(context))
    add_accounts = [accounts_partitions.build_add_request(missing)] if missing else []
    order = [*account_partition_keys(context), *missing]
    requests = [
        dg.RunRequest(run_key=f"tweet_metrics:{stamp}:{zlib.crc32(repr(slices).encode()):08x}",
                      job_name=tweet_metrics_job.name,
                      tags={BACKGROUND_TAG: "true", **metrics_range_tags(slices, order)})
    ]  # fmt: skip
    # Incremental raw extraction (each asset's default): every store write in the engine and
    # posting paths stamps the run's clock, so in the main job ``updated_at``/``created_at`` are
    # simulated times that only grow and the watermarks miss nothing. ``full_refresh`` stays an
    # option of the raw assets for a person's re-extraction.
    if rehearsal_speed() > 1:
        # On a rehearsal clock the 30-minute extraction cron (wall clock) is K x 30 simulated
        # minutes apart: extract the other raw tables with the metrics, so the eager rebuild
        # (it waits for every input) follows within the rehearsal. At speed 1 the cron does it.
        # First in the lane: the rebuild after the metrics then finds `fct_posts` built (on a
        # fresh warehouse its unit test failed on the missing relation when metrics went first).
        requests.insert(
            0,
            dg.RunRequest(run_key=f"raw_extraction:{stamp}", job_name=raw_extraction_job.name,
                          tags={BACKGROUND_TAG: "true"}),
        )  # fmt: skip
    newest = max(s.collected_at for s in new)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=add_accounts,
        cursor=json.dumps({"seen": newest.isoformat(), "rebuilt": now.isoformat()}),
    )


@dg.schedule(
    job=collect_account_metrics_job,
    cron_schedule="0 */6 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every 6 hours (00, 06, 12, 18 UTC), per account: collect the due "
    "1h/6h/24h/72h metric snapshots and the follower count (collect_account_metrics_job).",
)
def collect_account_metrics_schedule(
    context: dg.ScheduleEvaluationContext, xbot_settings: XbotSettings
) -> list[dg.RunRequest] | dg.SkipReason:
    """Every 6 hours, per account: the due 1h/6h/24h/72h snapshots (posting runs also collect
    right after they post, so fresh posts are measured close to their horizons)."""
    known = sorted(known_accounts(context))
    if not known:
        return dg.SkipReason("no accounts yet (accounts_sensor adds them)")
    when = context.scheduled_execution_time
    settings = xbot_settings.get()
    return [
        dg.RunRequest(
            run_key=f"metrics:{handle}:{when.isoformat()}",
            partition_key=handle,
            tags=account_run_tags(settings, handle),
        )
        for handle in known
    ]


@dg.schedule(
    job=daily_summaries_job,
    cron_schedule="30 0 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily at 00:30 UTC, once the marts exist: rewrite the last days' per-account "
    "summaries in the durable store (daily_summaries_job).",
)
def daily_summaries_schedule(
    context: dg.ScheduleEvaluationContext, xbot_settings: XbotSettings
) -> dg.RunRequest | dg.SkipReason:
    """After midnight UTC: rewrite the last days' summaries in the store (for Supabase users)."""
    from xbot_assets.warehouse.duck import warehouse

    settings = xbot_settings.get()
    path = settings.resolved_warehouse_path
    if not path.exists():
        return dg.SkipReason("no warehouse yet: the first rebuild creates it")
    with warehouse(path, read_only=True) as con:
        found = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_post_outcomes'"
        ).fetchone()
    if not found or not found[0]:
        return dg.SkipReason("the marts are not built yet")
    when = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"daily_summaries:{when.date().isoformat()}")


defs = dg.Definitions(
    sensors=[learning_rebuild_sensor],
    schedules=[collect_account_metrics_schedule, daily_summaries_schedule],
)
