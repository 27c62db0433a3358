"""Sensors that keep Dagster in step with the durable store: the ``accounts`` partitions
follow the store's active accounts, and what Redis buffered while the store was down drains
back into it."""

import json

import dagster as dg

from xbot_assets.defs.health import sensor_health
from xbot_assets.defs.orchestration import accounts_partitions, sync_to_supabase_job
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.sensor_support import (
    NOT_MIGRATED,
    STOPPED,
    known_accounts,
    store_accounts,
)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=STOPPED,
    description="Every minute: add an `accounts` partition for each active account in the "
    "durable store (and X_HANDLE), so the engine's per-account jobs can target it.",
)
@sensor_health("accounts_sensor", 60)
def accounts_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Keep the ``accounts`` partitions equal to the store's active accounts (+ X_HANDLE)."""
    settings = xbot_settings.get()
    store, accounts = store_accounts(settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    missing = sorted({a.handle for a in accounts} - known_accounts(context))
    if not missing:
        return dg.SkipReason("every account already has its partition")
    return dg.SensorResult(
        dynamic_partitions_requests=[accounts_partitions.build_add_request(missing)],
        cursor=json.dumps(sorted(known_accounts(context) | set(missing))),
    )


@dg.sensor(
    job=sync_to_supabase_job,
    minimum_interval_seconds=300,
    default_status=STOPPED,
    description="With REDIS_URL set, every 5 minutes: drain the events Redis buffered while the "
    "durable store was down into the store (sync_to_supabase_job).",
)
@sensor_health("sync_to_supabase_sensor", 300)
def sync_to_supabase_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Every 5 minutes with Redis configured: drain what Redis buffered into the store."""
    settings = xbot_settings.get()
    if not settings.redis_url:
        return dg.SkipReason("no REDIS_URL: events go straight to the durable store")
    now = xbot_runtime.now()
    bucket = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    if context.cursor == bucket.isoformat():
        return dg.SkipReason(f"already synced for {bucket.isoformat()}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"sync:{bucket.isoformat()}")],
        cursor=bucket.isoformat(),
    )


defs = dg.Definitions(sensors=[accounts_sensor, sync_to_supabase_sensor])
