"""Sensors that refill each account's queue of candidate posts: when it runs low for the
coming slots, or when a new scorer or set of posteriors lands.

Two sensors share one rule: ``candidate_refill_sensor`` requests one run per account,
``refill_batch_sensor`` (the deployment's) one run for every account due in a tick. Neither
refills an account that a refill run of either kind holds in flight.

An account is refilled at most once an hour, but both sensors ask again within the hour when
the run they requested for it failed (or was canceled) and the queue is still low: a run whose
coordinator died before its step reached a worker (the daemon's process group killed), failed by
run monitoring, would otherwise leave the coming slots without posts until the hour is out.
Dagster launches a run key once, so the retry's key is ``<key>:retry<n>``
(``sensor_support.retry_run_key``), at most ``MAX_RUN_RETRIES`` times; a batch run that failed
is asked again for those of its accounts still low, as one run under its own key's retry.
"""

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from xbot_assets.defs.health import sensor_health
from xbot_assets.defs.orchestration import (
    ACCOUNTS_TAG,
    refill_batch_job,
    refill_candidates_job,
)
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.sensor_support import (
    NOT_MIGRATED,
    REFILL_INTERVAL,
    RETRY,
    STOPPED,
    account_run_tags,
    accounts_with_runs_in_flight,
    batch_run_key,
    partitioned_accounts,
    retry_run_key,
    sensor_cursor,
)

MODEL_ASSETS = ("engagement_scorer", "arm_posteriors")
RETRY_REASON = "queue low, its refill run failed"
RUN_KEY_TAG = "dagster/run_key"


def refill_run_key(handle: str, now: datetime) -> str:
    """An account's refill run key: one per hour (``refill:<handle>:<hour>``)."""
    return f"refill:{handle}:{now:%Y-%m-%dT%H}"


def retry_key(key: str) -> str | None:
    """The key to request after a failed run of ``key``: ``<base>:retry<n+1>``; None once
    :data:`MAX_RUN_RETRIES` retries have been requested within the hour."""
    tries = key.partition(RETRY)[2]
    return retry_run_key(key, int(tries) + 1 if tries.isdigit() else 1)


def failed_refills(context: Any, job_name: str, keys: dict[str, str]) -> dict[str, str]:
    """Account -> the key to request again, for each account whose last requested refill run
    of ``job_name`` (``keys``: account -> run key, from the cursor) ended FAILURE or CANCELED
    (one query)."""
    if not keys:
        return {}
    records = context.instance.get_run_records(
        dg.RunsFilter(
            job_name=job_name,
            tags={RUN_KEY_TAG: sorted(set(keys.values()))},
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        )
    )
    failed = {r.dagster_run.tags.get(RUN_KEY_TAG) for r in records}
    return {
        handle: retry
        for handle, key in keys.items()
        if key in failed and (retry := retry_key(key)) is not None
    }


def _latest_model_ids(context: Any) -> dict[str, float]:
    """When each model asset was last materialised (a new value = a new model landed)."""
    out: dict[str, float] = {}
    for name in MODEL_ASSETS:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(name))
        if event is not None:
            out[name] = float(event.timestamp)
    return out


def _refills_due(
    context: Any,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
    busy: set[str],
    retry: Collection[str] = (),
) -> tuple[Any, list[tuple[Any, str]], str, datetime]:
    """The accounts to refill now (queue low for the coming slots, or new model assets; at most
    once an hour per account, except one of ``retry`` whose last refill run failed, again while
    its queue is low; none with a refill in flight) with why, the next cursor, now."""
    from xbot_assets.engine import sensing

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    cursor = sensor_cursor(context)
    models = _latest_model_ids(context)
    new_models = models != cursor.get("models", {}) and bool(models)
    store, accounts = partitioned_accounts(context, settings)
    due: list[tuple[Any, str]] = []
    refilled: dict[str, str] = dict(cursor.get("refilled", {}))
    for account in accounts if store is not None else []:
        last = refilled.get(account.handle)
        within_hour = bool(last) and now - datetime.fromisoformat(str(last)) < timedelta(hours=1)
        retrying = within_hour and account.handle in retry
        if within_hour and not retrying:
            continue
        if account.handle in busy:  # its queue fills when that run ends: a second is waste
            continue
        low = sensing.queued_ahead(store, account.id) < sensing.REFILL_LOW_WATER
        if not (low or (new_models and not retrying)):
            continue
        due.append((account, RETRY_REASON if retrying else "queue low" if low else
                    "new model assets"))  # fmt: skip
        refilled[account.handle] = now.isoformat()
    return store, due, json.dumps({"models": models, "refilled": refilled}), now


ENOUGH_QUEUED = "the queue holds enough posts for the coming slots"


@dataclass(frozen=True, slots=True)
class RefillTick:
    """What a refill sensor's tick requests: the accounts due (each with why and, when its last
    refill run failed, the key to ask again under), and the next cursor once their keys are
    :meth:`requested`."""

    due: list[tuple[Any, str, str | None]]
    now: datetime
    cursor: dict[str, Any]
    keys: dict[str, str]

    def requested(self, handles: Iterable[str], key: str) -> None:
        """Remember ``key`` as the run requested last for ``handles``: if it fails, the next
        tick asks again under its retry key."""
        self.keys.update(dict.fromkeys(handles, key))

    def next_cursor(self) -> str:
        return json.dumps(self.cursor | {"keys": self.keys})


def _refill_tick(
    context: dg.SensorEvaluationContext,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
    job_name: str,
) -> RefillTick | dg.SkipReason:
    """Both refill sensors' tick: the accounts due a refill (none held by a refill run of
    either kind in flight; again within the hour those whose last run of ``job_name`` failed)
    and now; or why nothing can be refilled."""
    keys: dict[str, str] = dict(sensor_cursor(context).get("keys", {}))
    retry = failed_refills(context, job_name, keys)
    busy = accounts_with_runs_in_flight(context, refill_candidates_job.name)
    busy |= accounts_with_runs_in_flight(context, refill_batch_job.name)
    store, due, next_cursor, now = _refills_due(context, xbot_settings, xbot_runtime, busy, retry)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    return RefillTick(
        due=[(a, why, retry[a.handle] if why == RETRY_REASON else None) for a, why in due],
        now=now,
        cursor=json.loads(next_cursor),
        keys=keys,
    )


@dg.sensor(
    job=refill_candidates_job,
    minimum_interval_seconds=REFILL_INTERVAL,
    default_status=STOPPED,
    description="Every 2 minutes, per account: when fewer posts are queued than the coming "
    "slots need, or a new engagement_scorer/arm_posteriors lands, run refill_candidates_job "
    "(at most once an hour per account; again within the hour, up to 3 times, when its run "
    "failed and the queue is still low).",
)
@sensor_health("candidate_refill_sensor", REFILL_INTERVAL)
def candidate_refill_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Refill when the queue runs low for the coming slots, or a new scorer/posteriors lands."""
    tick = _refill_tick(context, xbot_settings, xbot_runtime, refill_candidates_job.name)
    if isinstance(tick, dg.SkipReason):
        return tick
    settings = xbot_settings.get()
    requests = []
    for account, why, retry in tick.due:
        key = retry or refill_run_key(account.handle, tick.now)
        tick.requested([account.handle], key)
        requests.append(
            dg.RunRequest(
                run_key=key,
                partition_key=account.handle,
                tags=account_run_tags(settings, account.handle) | {"xbot/reason": why},
            )
        )
    if not requests:
        return dg.SensorResult(skip_reason=ENOUGH_QUEUED, cursor=tick.next_cursor())
    return dg.SensorResult(run_requests=requests, cursor=tick.next_cursor())


@dg.sensor(
    job=refill_batch_job,
    minimum_interval_seconds=REFILL_INTERVAL,
    default_status=STOPPED,
    description="The deployment's refill (instead of candidate_refill_sensor): the same rule "
    "per account, but every account due in a tick is refilled by ONE refill_batch_job run "
    "(one process start-up for all of them); a failed run is asked again within the hour, up "
    "to 3 times, for its accounts still low.",
)
@sensor_health("refill_batch_sensor", REFILL_INTERVAL)
def refill_batch_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Refill every account whose queue runs low (or on new models) in one run; a failed run's
    accounts still low in one run under its retry key (rare: kept apart, so the key names it)."""
    tick = _refill_tick(context, xbot_settings, xbot_runtime, refill_batch_job.name)
    if isinstance(tick, dg.SkipReason):
        return tick
    runs: dict[str | None, list[tuple[str, str]]] = {}
    for account, why, retry in tick.due:
        runs.setdefault(retry, []).append((account.handle, why))
    requests = []
    for retry, items in runs.items():
        handles = [handle for handle, _ in items]
        key = retry or batch_run_key("refills", tick.now, handles)
        tick.requested(handles, key)
        # No per-run time limit: one run refills every due account (tens of seconds each), so
        # the instance's max_runtime_seconds (deploy/dagster.yaml) bounds it.
        requests.append(
            dg.RunRequest(
                run_key=key,
                run_config={"ops": {"refill_accounts": {"config": {"handles": handles}}}},
                tags={
                    ACCOUNTS_TAG: ",".join(handles),
                    "xbot/reason": ";".join(w for _, w in items),
                },
            )
        )
    if not requests:
        return dg.SensorResult(skip_reason=ENOUGH_QUEUED, cursor=tick.next_cursor())
    return dg.SensorResult(run_requests=requests, cursor=tick.next_cursor())


defs = dg.Definitions(sensors=[candidate_refill_sensor, refill_batch_sensor])
