"""Sensors and schedules that drive the engine. They read and decide; the jobs act.

Each sensor keeps a cursor (what it has already seen or requested) and gives every run a key
that names the work (``post:<id>``, ``refill:<account>:<hour>``, ...), so a tick replayed after
a daemon restart never launches a second run for the same work. Every sensor and schedule is
stopped by default: turn them on in the UI (or with ``dagster sensor start``) on a deployment;
the main job (``xbot run``) evaluates them itself at each simulated tick.

Why one file of about 650 lines: the deployment's batch sensors and their per-account twins
must each skip the work the other holds in flight (the same run-tag and in-flight helpers), and
the sensor intervals scaled to the rehearsal clock are shared by all of them; split into
modules they would import each other. A candidate split is the batch sensors with their lead.
"""

import json
import zlib
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from xbot_assets.defs.health import sensor_health
from xbot_assets.defs.orchestration import (
    ACCOUNT_TAG,
    ACCOUNTS_TAG,
    POST_IDS_TAG,
    accounts_partitions,
    collect_account_metrics_job,
    daily_summaries_job,
    post_batch_job,
    post_job,
    raw_extraction_job,
    reconcile_job,
    refill_batch_job,
    refill_candidates_job,
    sync_to_supabase_job,
    tweet_metrics_job,
)
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.defs.simtime import rehearsal_speed
from xbot_assets.defs.warehouse import metrics_range_tags
from xbot_assets.engine.batch import MAX_LEAD_S as MAX_LEAD
from xbot_assets.engine.batch import START_ALLOWANCE_S, lead_seconds

STOPPED = dg.DefaultSensorStatus.STOPPED
MODEL_ASSETS = ("engagement_scorer", "arm_posteriors")
REBUILD_CONFIG_KEY = "rebuild_every_hours"
DEFAULT_REBUILD_EVERY_HOURS = 24


def scaled_interval(wall_seconds: int, floor: int) -> int:
    """A sensor's minimum interval on the deployment's clock: ``wall_seconds`` of simulated time
    divided by the rehearsal speed, never below ``floor`` real seconds.

    Dagster's sensor intervals are real seconds read when the code location loads; at a speed
    factor K a 600 s rebuild tick is 600 x K simulated seconds (at 144x one tick in 24 simulated
    hours, none in a 10-minute rehearsal). At speed 1 (production: CLOCK_SPEED is refused there)
    this is ``wall_seconds`` unchanged. Read at import from the environment the daemon gave the
    code server, so the daemon and the webserver show the same interval."""
    speed = rehearsal_speed()
    return wall_seconds if speed == 1 else max(floor, round(wall_seconds / speed))


POSTING_INTERVAL = scaled_interval(30, floor=10)
REFILL_INTERVAL = scaled_interval(120, floor=20)
RECONCILE_INTERVAL = scaled_interval(300, floor=30)
REBUILD_INTERVAL = scaled_interval(600, floor=30)
BATCH_START_ALLOWANCE_S = START_ALLOWANCE_S
MAX_LEAD_S = MAX_LEAD
MAX_BATCH_RUNS_IN_FLIGHT = 3
"""Batch posting runs queued or running at once (a safety net: the lead rule keeps it at ~2)."""
MAX_BATCH_POSTS = 200
PRIORITY_TAG = "dagster/priority"
BACKGROUND_TAG = "dagster/from_automation_condition"
"""The rebuild sensor's runs (its metric load, every account and day with new snapshots; the
rehearsal's raw extraction) go in declarative automation's lane: deploy/dagster.yaml runs that
lane one at a time, behind the posts, so they never hold the DuckDB warehouse while the
automation's dbt build needs it (a concurrent extraction failed the rebuild in a rehearsal)."""


def _cursor(context: Any) -> dict[str, Any]:
    try:
        value = json.loads(context.cursor) if context.cursor else {}
    except json.JSONDecodeError:
        value = {}
    return value if isinstance(value, dict) else {}


def _account_partition_keys(context: Any) -> list[str]:
    """The `accounts` dynamic partitions in the order the instance added them."""
    return list(context.instance.get_dynamic_partitions(accounts_partitions.name))


def _known_accounts(context: Any) -> set[str]:
    return set(_account_partition_keys(context))


def _store_accounts(settings: Any) -> tuple[Any, list[Any]]:
    from xbot_assets.engine import sensing

    store = sensing.open_store_or_none(settings)
    if store is None:
        return None, []
    return store, sensing.accounts(store, settings)


NOT_MIGRATED = "the durable store is not migrated yet: run `xbot migrate`"


def _partitioned_accounts(context: Any, settings: Any) -> tuple[Any, list[Any]]:
    """The store and its accounts that already have an ``accounts`` partition (a run can only
    target those); the store is None when it is not migrated yet."""
    store, accounts = _store_accounts(settings)
    known = _known_accounts(context)
    return store, [account for account in accounts if account.handle in known]


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
    store, accounts = _store_accounts(settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    missing = sorted({a.handle for a in accounts} - _known_accounts(context))
    if not missing:
        return dg.SkipReason("every account already has its partition")
    return dg.SensorResult(
        dynamic_partitions_requests=[accounts_partitions.build_add_request(missing)],
        cursor=json.dumps(sorted(_known_accounts(context) | set(missing))),
    )


def _latest_model_ids(context: Any) -> dict[str, float]:
    """When each model asset was last materialised (a new value = a new model landed)."""
    out: dict[str, float] = {}
    for name in MODEL_ASSETS:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(name))
        if event is not None:
            out[name] = float(event.timestamp)
    return out


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _runs_in_flight(context: Any, job_name: str) -> list[Any]:
    return list(
        context.instance.get_runs(
            filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=500
        )
    )


def _accounts_with_runs_in_flight(context: Any, job_name: str) -> set[str]:
    """Accounts with a run of ``job_name`` queued or running (a batch run counts for each account
    it holds). Under the daemon a refill takes seconds to minutes (a process per run); until it
    ends the account's queue still looks low."""
    out: set[str] = set()
    for run in _runs_in_flight(context, job_name):
        if ACCOUNT_TAG in run.tags:
            out.add(run.tags[ACCOUNT_TAG])
        out.update(h for h in run.tags.get(ACCOUNTS_TAG, "").split(",") if h)
    return out


def _posts_in_flight(context: Any) -> set[int]:
    """Post ids held by a batch posting run that is queued or running (it posts them at their
    slots); a failed or killed run releases them, so the next tick requests them again."""
    held: set[int] = set()
    for run in _runs_in_flight(context, post_batch_job.name):
        held.update(int(p) for p in run.tags.get(POST_IDS_TAG, "").split(",") if p)
    return held


def _refills_due(
    context: Any, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime, busy: set[str]
) -> tuple[Any, list[tuple[Any, str]], str, datetime]:
    """The accounts to refill now (queue low for the coming slots, or new model assets; at most
    once an hour per account; none with a refill in flight) with why, the next cursor, now."""
    from xbot_assets.engine import sensing

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    cursor = _cursor(context)
    models = _latest_model_ids(context)
    new_models = models != cursor.get("models", {}) and bool(models)
    store, accounts = _partitioned_accounts(context, settings)
    due: list[tuple[Any, str]] = []
    refilled: dict[str, str] = dict(cursor.get("refilled", {}))
    for account in accounts if store is not None else []:
        last = refilled.get(account.handle)
        if last and now - datetime.fromisoformat(last) < timedelta(hours=1):
            continue
        if account.handle in busy:  # its queue fills when that run ends: a second is waste
            continue
        low = sensing.queued_ahead(store, account.id) < sensing.REFILL_LOW_WATER
        if not (low or new_models):
            continue
        due.append((account, "queue low" if low else "new model assets"))
        refilled[account.handle] = now.isoformat()
    return store, due, json.dumps({"models": models, "refilled": refilled}), now


ENOUGH_QUEUED = "the queue holds enough posts for the coming slots"


def _refill_tick(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> tuple[list[tuple[Any, str]], str, datetime] | dg.SkipReason:
    """Both refill sensors' tick: the accounts due a refill (none held by a refill run of
    either kind in flight), the next cursor and now; or why nothing can be refilled."""
    busy = _accounts_with_runs_in_flight(context, refill_candidates_job.name)
    busy |= _accounts_with_runs_in_flight(context, refill_batch_job.name)
    store, due, next_cursor, now = _refills_due(context, xbot_settings, xbot_runtime, busy)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    return due, next_cursor, now


@dg.sensor(
    job=refill_candidates_job,
    minimum_interval_seconds=REFILL_INTERVAL,
    default_status=STOPPED,
    description="Every 2 minutes, per account: when fewer posts are queued than the coming "
    "slots need, or a new engagement_scorer/arm_posteriors lands, run refill_candidates_job "
    "(at most once an hour per account).",
)
@sensor_health("candidate_refill_sensor", REFILL_INTERVAL)
def candidate_refill_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Refill when the queue runs low for the coming slots, or a new scorer/posteriors lands."""
    tick = _refill_tick(context, xbot_settings, xbot_runtime)
    if isinstance(tick, dg.SkipReason):
        return tick
    due, next_cursor, now = tick
    requests = [
        dg.RunRequest(
            run_key=f"refill:{account.handle}:{now:%Y-%m-%dT%H}",
            partition_key=account.handle,
            tags={ACCOUNT_TAG: account.handle, "xbot/reason": why},
        )
        for account, why in due
    ]
    if not requests:
        return dg.SensorResult(skip_reason=ENOUGH_QUEUED, cursor=next_cursor)
    return dg.SensorResult(run_requests=requests, cursor=next_cursor)


def _batch_key(prefix: str, now: datetime, items: list[str]) -> str:
    """A run key naming the tick's work and moment. The work itself is guarded by the run tags
    (a post or account held by a run in flight is not requested again) and by each post's
    durable claim; the same work requested again after its run failed gets a new key."""
    return f"{prefix}:{now:%Y%m%dT%H%M%S}:{zlib.crc32(','.join(items).encode()):08x}"


@dg.sensor(
    job=refill_batch_job,
    minimum_interval_seconds=REFILL_INTERVAL,
    default_status=STOPPED,
    description="The deployment's refill (instead of candidate_refill_sensor): the same rule "
    "per account, but every account due in a tick is refilled by ONE refill_batch_job run "
    "(one process start-up for all of them).",
)
@sensor_health("refill_batch_sensor", REFILL_INTERVAL)
def refill_batch_sensor(
    context: dg.SensorEvaluationContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.SensorResult | dg.SkipReason:
    """Refill every account whose queue runs low (or on new models) in one run."""
    tick = _refill_tick(context, xbot_settings, xbot_runtime)
    if isinstance(tick, dg.SkipReason):
        return tick
    due, next_cursor, now = tick
    if not due:
        return dg.SensorResult(skip_reason=ENOUGH_QUEUED, cursor=next_cursor)
    handles = [account.handle for account, _ in due]
    request = dg.RunRequest(
        run_key=_batch_key("refills", now, handles),
        run_config={"ops": {"refill_accounts": {"config": {"handles": handles}}}},
        tags={ACCOUNTS_TAG: ",".join(handles), "xbot/reason": ";".join(w for _, w in due)},
    )
    return dg.SensorResult(run_requests=[request], cursor=next_cursor)


def post_run_key(post_id: int, scheduled_at: datetime) -> str:
    """``post:<id>:<slot>``: one posting run per post and slot (a moved post gets a new one)."""
    return f"post:{post_id}:{scheduled_at:%Y%m%dT%H%M}"


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
    cursor = _cursor(context)
    requested: list[str] = [str(k) for k in cursor.get("requested", [])]
    store, accounts = _partitioned_accounts(context, settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    requests: list[dg.RunRequest] = []
    # An account's post run posts everything due when it runs (posting.factory.post_due): while
    # one is queued or running, a second would find nothing to post and only cost a process.
    busy = _accounts_with_runs_in_flight(context, post_job.name)
    held = _posts_in_flight(context)  # a batch run posts them at their slot
    for account in accounts:
        if account.handle in busy:
            continue
        # A post moved by the send-time rules (quiet hours, spacing, caps) or by a late approval
        # is new work at its new slot: the key names the post and its slot.
        approved_only = settings.approval == "required"
        due = [
            (i, key)
            for i in sensing.due_posts(store, account.id, now, approved_only=approved_only)
            if i not in held
            and (key := post_run_key(i, store.get_post(i).scheduled_at)) not in requested
        ]
        if not due:
            continue
        post_id, run_key = due[0]  # one at a time per account: the posting pool has size one
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=account.handle,
                run_config={"ops": {"post_due_posts": {"config": {"post_id": post_id}}}},
                tags={ACCOUNT_TAG: account.handle, "xbot/post_id": str(post_id)},
            )
        )
        requested.append(run_key)
    next_cursor = json.dumps({"requested": requested[-200:]})
    if not requests:
        return dg.SensorResult(skip_reason="no post is due", cursor=next_cursor)
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
    cursor = _cursor(context)
    store, accounts = _partitioned_accounts(context, settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    in_flight = _runs_in_flight(context, post_batch_job.name)
    if len(in_flight) >= MAX_BATCH_RUNS_IN_FLIGHT:
        return dg.SkipReason(f"{len(in_flight)} batch posting runs in flight")
    held = _posts_in_flight(context)
    busy = _accounts_with_runs_in_flight(context, post_job.name)  # posting_sensor's runs
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
        run_key=_batch_key("posts", now, posts or ["collect"]),
        run_config={"ops": {"post_batch": {"config": {"posts": posts}}}},
        tags={
            ACCOUNTS_TAG: ",".join(handles),
            POST_IDS_TAG: ",".join(str(post_id) for _, _, post_id in items),
            # the queued run coordinator starts higher priorities first: slots do not wait
            # behind refills or the rebuild's partition loads
            PRIORITY_TAG: "10",
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
    store, accounts = _partitioned_accounts(context, settings)
    if store is None:
        return dg.SkipReason(NOT_MIGRATED)
    requests: list[dg.RunRequest] = []
    for account in accounts:
        stuck = sensing.stale_posting(store, account.id, now)
        if stuck:
            keys = ",".join(f"{p}:{a}" for p, a in stuck)
            requests.append(
                dg.RunRequest(
                    run_key=f"reconcile:{keys}",
                    partition_key=account.handle,
                    tags={ACCOUNT_TAG: account.handle},
                )
            )
    if not requests:
        return dg.SensorResult(skip_reason="no post is stuck in posting", cursor=now.isoformat())
    return dg.SensorResult(run_requests=requests, cursor=now.isoformat())


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
    cursor = _cursor(context)
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
    missing = sorted({handle for _, handle in slices} - _known_accounts(context))
    add_accounts = [accounts_partitions.build_add_request(missing)] if missing else []
    order = [*_account_partition_keys(context), *missing]
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
    known = sorted(_known_accounts(context))
    if not known:
        return dg.SkipReason("no accounts yet (accounts_sensor adds them)")
    when = context.scheduled_execution_time
    return [
        dg.RunRequest(
            run_key=f"metrics:{handle}:{when.isoformat()}",
            partition_key=handle,
            tags={ACCOUNT_TAG: handle},
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
    sensors=[
        accounts_sensor,
        candidate_refill_sensor,
        refill_batch_sensor,
        posting_sensor,
        posting_batch_sensor,
        reconcile_sensor,
        sync_to_supabase_sensor,
        learning_rebuild_sensor,
    ],
    schedules=[collect_account_metrics_schedule, daily_summaries_schedule],
)
