"""Sensors that post what is due and settle what a crash left unsure.

``posting_sensor`` requests one run per due post (run key ``post:<id>:<slot>``);
``posting_batch_sensor`` (the deployment's) one run for every account's posts of the coming
two leads, launched a lead before the first. Neither requests a post the other holds in flight.
``reconcile_sensor`` settles posts left in ``posting`` from the account's timeline.
"""

import json
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from xbot_assets.defs.health import sensor_health
from xbot_assets.defs.orchestration import (
    ACCOUNTS_TAG,
    POST_ID_TAG,
    POST_IDS_TAG,
    post_batch_job,
    post_job,
    reconcile_job,
    refill_batch_job,
)
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.sensor_support import (
    MAX_RUN_RETRIES,
    MAX_RUNTIME_TAG,
    NOT_MIGRATED,
    POSTING_INTERVAL,
    RECONCILE_INTERVAL,
    STOPPED,
    account_run_tags,
    accounts_with_runs_in_flight,
    batch_posting_max_runtime,
    batch_run_key,
    partitioned_accounts,
    retry_run_key,
    runs_in_flight,
    sensor_cursor,
)
from xbot_assets.defs.simtime import rehearsal_speed
from xbot_assets.engine.batch import MAX_LEAD_S as MAX_LEAD
from xbot_assets.engine.batch import START_ALLOWANCE_S, lead_seconds

BATCH_START_ALLOWANCE_S = START_ALLOWANCE_S
MAX_LEAD_S = MAX_LEAD
MAX_BATCH_RUNS_IN_FLIGHT = 3
"""Batch posting runs queued or running at once (a safety net: the lead rule keeps it at ~2)."""
MAX_BATCH_POSTS = 200
PRIORITY_TAG = "dagster/priority"


def _posts_in_flight(context: Any) -> set[int]:
    """Post ids held by a batch posting run that is queued or running (it posts them at their
    slots); a failed or killed run releases them, so the next tick requests them again."""
    held: set[int] = set()
    for run in runs_in_flight(context, post_batch_job.name):
        held.update(int(p) for p in run.tags.get(POST_IDS_TAG, "").split(",") if p)
    return held


def post_run_key(post_id: int, scheduled_at: datetime) -> str:
    """``post:<id>:<slot>``: one posting run per post and slot (a moved post gets a new one)."""
    return f"post:{post_id}:{scheduled_at:%Y%m%dT%H%M}"


def _run_key_for(context: Any, post_id: int, scheduled_at: datetime, requested: list[str]) -> (
    str | None
):  # fmt: skip
    """The run key to request for a due post, or None when it was requested already.

    A post requested before that is still queued, with no run of its account in flight, had
    its run end without claiming it: the run failed to start, or its coordinator died and run
    monitoring failed it at its time limit. Dagster never launches a run key twice, so it is
    requested again under ``<key>:retry<n>`` (n = its failed runs), at most
    :data:`MAX_RUN_RETRIES` times; after that it goes out with the account's next post run
    (which posts everything due)."""
    key = post_run_key(post_id, scheduled_at)
    if key not in requested:
        return key
    failed = len(
        context.instance.get_run_records(
            dg.RunsFilter(
                job_name=post_job.name,
                tags={POST_ID_TAG: str(post_id)},
                statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
            ),
            limit=MAX_RUN_RETRIES + 1,
        )
    )
    retry = retry_run_key(key, failed)
    return retry if retry not in requested else None


@dg.sensor(
    job=post_job,
    minimum_interval_seconds=POSTING_INTERVAL,
    default_status=STOPPED,
    description="Every 30 seconds, per account: a queued post is due, so run post_job for it "
    "(only approved posts when APPROVAL=required; run key `post:<id>:<slot>`, one post at a "
    "time per account).",
)
@sensor_health("posting_sensor", POSTING_INTERVAL)
def posting_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """A slot is due and a queued post exists: post it (run key = the post's id)."""
    from xbot_assets.engine import sensing

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    cursor = sensor_cursor(context)
    requested: list[str] = [str(k) for k in cursor.get("requested", [])]
    store, accounts = partitioned_accounts(context, settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    requests: list[dg.RunRequest] = []
    # An account's post run posts everything due when it runs (posting.factory.post_due): while
    # one is queued or running, a second would find nothing to post and only cost a process.
    busy = accounts_with_runs_in_flight(context, post_job.name)
    held = _posts_in_flight(context)  # a batch run posts them at their slot
    waiting: list[str] = []  # busy accounts with posts due: the skip reason names them
    approved_only = settings.approval == "required"
    for account in accounts:
        if account.handle in busy:
            if sensing.due_posts(store, account.id, now, approved_only=approved_only):
                waiting.append(account.handle)
            continue
        # A post moved by the send-time rules (quiet hours, spacing, caps) or by a late approval
        # is new work at its new slot: the key names the post and its slot.
        due = [
            (i, key)
            for i in sensing.due_posts(store, account.id, now, approved_only=approved_only)
            if i not in held
            and (key := _run_key_for(context, i, store.get_post(i).scheduled_at, requested))
        ]
        if not due:
            continue
        post_id, run_key = due[0]  # one at a time per account: the posting pool has size one
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=account.handle,
                run_config={"ops": {"post_due_posts": {"config": {"post_id": post_id}}}},
                tags=account_run_tags(settings, account.handle) | {POST_ID_TAG: str(post_id)},
            )
        )
        requested.append(run_key)
    next_cursor = json.dumps({"requested": requested[-200:]})
    if not requests:
        reason = "no post is due"
        if waiting:  # "no post is due" would hide an account held up by a stuck run
            reason = (
                f"posts are due for {', '.join('@' + h for h in waiting)}, held until the "
                "account's post_job run in flight ends"
            )
        return dg.SensorResult(skip_reason=reason, cursor=next_cursor)
    return dg.SensorResult(run_requests=requests, cursor=next_cursor)


def batch_lead_s(context: Any) -> float:
    """How far ahead (real seconds) a batch posting run is requested: the start-up allowance,
    or 1.5 x the slowest start of the last five batch posting and refill runs when longer (a
    run's start is queueing, launch and its process importing the code location: seconds on an
    idle machine, minutes at load 20 on 2 cores), plus a tick; at most :data:`MAX_LEAD_S`."""
    starts = [
        r.start_time - r.create_timestamp.timestamp()
        for job in (post_batch_job, refill_batch_job)  # the refill times the first posting run
        for r in context.instance.get_run_records(filters=dg.RunsFilter(job_name=job.name), limit=5)
        if r.start_time is not None
    ]
    return lead_seconds(starts, POSTING_INTERVAL)


def batch_post_item(handle: str, post_id: int, slot: datetime) -> str:
    """One post of a batch run's config: ``<handle>|<post id>|<slot, ISO>``."""
    return f"{handle}|{post_id}|{slot.isoformat()}"


@dg.sensor(
    job=post_batch_job,
    minimum_interval_seconds=POSTING_INTERVAL,
    default_status=STOPPED,
    description="The deployment's posting (instead of posting_sensor): when the next queued "
    "post of any account comes within the lead (the time a run takes to start, measured), ONE "
    "post_batch_job run takes every account's posts of the next two leads; it waits for each "
    "slot, posts it through the account's durable claim and caps, then collects the due "
    f"metric snapshots. At most {MAX_BATCH_RUNS_IN_FLIGHT} such runs in flight.",
)
@sensor_health("posting_batch_sensor", POSTING_INTERVAL)
def posting_batch_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Fewer, fuller runs: a run costs its process's start-up (seconds of CPU), so one run holds
    every account's posts of the coming two leads and is launched a lead before the first."""
    from xbot_assets.engine import sensing

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    cursor = sensor_cursor(context)
    store, accounts = partitioned_accounts(context, settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    in_flight = runs_in_flight(context, post_batch_job.name)
    if len(in_flight) >= MAX_BATCH_RUNS_IN_FLIGHT:
        return dg.SkipReason(f"{len(in_flight)} batch posting runs in flight")
    held = _posts_in_flight(context)
    busy = accounts_with_runs_in_flight(context, post_job.name)  # posting_sensor's runs
    lead = timedelta(seconds=batch_lead_s(context) * rehearsal_speed())
    horizon = now + 2 * lead
    approved_only = settings.approval == "required"
    items: list[tuple[datetime, str, int]] = []
    for account in accounts:
        if account.handle in busy:
            continue
        for post_id in sensing.due_posts(
            store, account.id, horizon, limit=MAX_BATCH_POSTS, approved_only=approved_only
        ):
            if post_id not in held:
                items.append((store.get_post(post_id).scheduled_at, account.handle, post_id))
    items.sort()
    if items and items[0][0] > now + lead:  # the next slot is further than a start-up away
        items = []
    items = items[:MAX_BATCH_POSTS]
    # Metric snapshots come due without a post (1h and 6h after one): a collect-only run at
    # most every 30 simulated minutes.
    last_collect = cursor.get("collect")
    collect_due = not items and (
        last_collect is None
        or now - datetime.fromisoformat(last_collect) >= timedelta(minutes=30)
    ) and any(sensing.metrics_due(store, a.id, now) for a in accounts)  # fmt: skip
    if not items and not collect_due:
        return dg.SkipReason(f"no post within the lead ({lead}), no snapshot due")
    posts = [batch_post_item(handle, post_id, slot) for slot, handle, post_id in items]
    handles = sorted({handle for _, handle, _ in items})
    request = dg.RunRequest(
        run_key=batch_run_key("posts", now, posts or ["collect"]),
        run_config={"ops": {"post_batch": {"config": {"posts": posts}}}},
        tags={
            ACCOUNTS_TAG: ",".join(handles),
            POST_IDS_TAG: ",".join(str(post_id) for _, _, post_id in items),
            # the queued run coordinator starts higher priorities first: slots do not wait
            # behind refills or the rebuild's partition loads
            PRIORITY_TAG: "10",
            MAX_RUNTIME_TAG: batch_posting_max_runtime(
                settings, (items[-1][0] - now).total_seconds() / rehearsal_speed() if items else 0
            ),
        },
    )
    next_cursor = {"collect": now.isoformat()} if collect_due else cursor
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(next_cursor))


@dg.sensor(
    job=reconcile_job,
    minimum_interval_seconds=RECONCILE_INTERVAL,
    default_status=STOPPED,
    description="Every 5 minutes, per account: posts left in `posting` past the grace period "
    "are settled from the account's timeline by reconcile_job (posted or unknown).",
)
@sensor_health("reconcile_sensor", RECONCILE_INTERVAL)
def reconcile_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Posts left in ``posting`` past the grace period: settle them from the timeline."""
    from xbot_assets.engine import sensing

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    store, accounts = partitioned_accounts(context, settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    requests: list[dg.RunRequest] = []
    for account in accounts:
        stuck = sensing.stale_posting(store, account.id, now)
        if stuck:
            keys = ",".join(f"{p}:{a}" for p, a in stuck)
            requests.append(
                dg.RunRequest(
                    # the hour in the key: a run that settled nothing (failed, its timeline
                    # read refused by the budget) is asked again next hour, not never
                    run_key=f"reconcile:{keys}:{now:%Y%m%dT%H}",
                    partition_key=account.handle,
                    tags=account_run_tags(settings, account.handle),
                )
            )
    if not requests:
        return dg.SensorResult(skip_reason="no post is stuck in posting", cursor=now.isoformat())
    return dg.SensorResult(run_requests=requests, cursor=now.isoformat())


defs = dg.Definitions(sensors=[posting_sensor, posting_batch_sensor, reconcile_sensor])
