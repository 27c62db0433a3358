"""The engine's jobs: refill candidates, post, reconcile, collect metrics, sync, rebuild.

Every engine job is partitioned by account (``accounts``, a dynamic partition kept in sync with
the store's accounts by ``accounts_sensor``), so one deployment runs many accounts with their
data apart. Runs carry the tag ``xbot/account``; the deployment limits runs to one per value of
that tag for posting (``deploy/dagster.yaml``), the "pool of size one per account". The ops are
thin: the work is in ``xbot_assets/engine/``, ``posting/`` and ``warehouse/``. Each op that
acts stands down when its run has already ended (:func:`stands_down_once_its_run_ended`).
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.ops.redact import safe_error

accounts_partitions = dg.DynamicPartitionsDefinition(name="accounts")
"""One partition per X account the deployment runs (the handle)."""

ACCOUNT_TAG = "xbot/account"
POSTING_TAG = "xbot/posting"
ACCOUNTS_TAG = "xbot/accounts"
"""Batch runs: the comma-separated handles the run works for (no per-account tag: one batch
serves many accounts; each account's claim and caps still hold inside the run)."""
POST_ID_TAG = "xbot/post_id"
"""A per-account post run: the post it was requested for (its failed runs are counted by it)."""
POST_IDS_TAG = "xbot/post_ids"
"""Batch posting runs: the comma-separated post ids the run holds (the sensors skip them)."""

REBUILD_SELECTION = dg.AssetSelection.all() - dg.AssetSelection.assets("tweet_metrics")
"""Everything but the (day, account)-partitioned metrics load: one run, one dbt build."""


class RefillConfig(dg.Config):
    """How many candidates to write per slot."""

    n_candidates: int = 5


class PostBatchConfig(dg.Config):
    """The posts a batch run holds, ``<handle>|<post id>|<slot ISO>`` each (empty: collect the
    due metric snapshots only)."""

    posts: list[str] = Field(default_factory=list)


class RefillBatchConfig(dg.Config):
    """The accounts a batch refill run refills, and how many candidates per slot."""

    handles: list[str]
    n_candidates: int = 5


class PostConfig(dg.Config):
    """The queued post this run was launched for (its id is also the run key)."""

    post_id: int


F = TypeVar("F", bound=Callable[..., Any])

RUN_ENDED = frozenset({
    dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING,
})  # fmt: skip
"""A step of a run in one of these states is not part of a live run: it must not act."""


def stands_down_once_its_run_ended(op_fn: F) -> F:
    """Make an engine op do nothing when its run has already ended or is being cancelled.

    Why: under Celery a step whose worker died is redelivered (late ack, the visibility
    timeout) to another worker, minutes later, and dagster-celery's task runs it whatever its
    run's status: by then run monitoring may have failed the run and the account's next run be
    under way (a second refill beside it, a reconcile already settled). Such a step logs a
    warning and returns an empty output whose ``stood_down`` metadata says why. A live run
    (STARTED; NOT_STARTED/STARTING in process) proceeds. Put it under ``@dg.op``: the signature
    Dagster reads (config, resources) is kept.
    """

    @functools.wraps(op_fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        context = kwargs["context"] if "context" in kwargs else args[0]
        run = context.instance.get_run_by_id(context.run_id)
        if run is None or run.status not in RUN_ENDED:
            return op_fn(*args, **kwargs)
        why = (
            f"run already {run.status.value}: a late redelivery of this step (Celery) does nothing"
        )
        context.log.warning(f"{context.op_handle} of run {context.run_id} stands down: {why}")
        return dg.Output(None, metadata={"stood_down": why})

    guarded.stands_down_once_its_run_ended = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


def stands_down(node_def: object) -> bool:
    """Whether ``node_def`` is an op whose body is wrapped by :func:`stands_down_once_its_run_ended`
    (a test holds every op of the Celery location's jobs to it: a new op must not forget it)."""
    body = getattr(getattr(node_def, "compute_fn", None), "decorated_fn", None)
    return bool(getattr(body, "stands_down_once_its_run_ended", False))


def _runtime(context: dg.OpExecutionContext, settings: XbotSettings, runtime: XbotRuntime) -> Any:
    return runtime.for_account(settings.get(), context.partition_key)


@contextmanager
def _runtime_with_poster(
    context: dg.OpExecutionContext, settings: XbotSettings, runtime: XbotRuntime
) -> Iterator[tuple[Any, Any]]:
    """The account's runtime and its poster, both closed when the op is done with them."""
    account = _runtime(context, settings, runtime)
    poster = account.poster()
    try:
        yield account, poster
    finally:
        poster.close()
        account.close()


ENGINE_EXECUTOR = dg.in_process_executor
"""The engine's jobs are one or two small steps: run them in the run's own process. Under the
daemon every run is already a process that imports the code location (seconds of CPU); the
default multiprocess executor would start one more such process per step (post_job: three
processes per post instead of one). Measured in benchmarks/deployment.py."""


@dg.op(out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def refill_candidates(
    context: dg.OpExecutionContext,
    config: RefillConfig,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
) -> dg.Output[None]:
    """Plan the coming day's open slots and queue one chosen post for each (the policy)."""
    from xbot_assets.engine.decide import refill

    runtime = _runtime(context, xbot_settings, xbot_runtime)
    try:
        report = refill(runtime, n_candidates=config.n_candidates)
    finally:
        runtime.close()
    return dg.Output(
        None,
        metadata={
            "account": runtime.handle,
            "posterior_file": report.posterior_file,
            "open_slots": report.slots,
            "queued_post_ids": dg.MetadataValue.json(report.queued),
            "arms": dg.MetadataValue.json(report.arms),
            "candidates": report.candidates,
            "rejected_by_guard": report.rejected,
            "rejections": dg.MetadataValue.json(dict(sorted(report.rejections.items()))),
            "skipped": dg.MetadataValue.json(report.skipped),
        },
    )


@dg.op(out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def post_due_posts(
    context: dg.OpExecutionContext,
    config: PostConfig,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
) -> dg.Output[None]:
    """Post the run's post (and anything else due before it) through the at-most-once protocol."""
    from xbot_assets.engine.reporting import post_and_report

    with _runtime_with_poster(context, xbot_settings, xbot_runtime) as (runtime, poster):
        result = post_and_report(runtime, poster)
    statuses = [o.status for o in result.outcomes]
    context.log.info("post %s: %s", config.post_id, statuses)
    return dg.Output(
        None,
        metadata={
            "account": runtime.handle,
            "post_id": config.post_id,
            "posted": len(result.posted),
            "outcomes": dg.MetadataValue.json(result.as_dict()),
        },
    )


def _speed(settings: Any) -> float:
    return float(settings.clock_speed or 1.0)


@dg.op(out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def post_batch(
    context: dg.OpExecutionContext,
    config: PostBatchConfig,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
) -> dg.Output[None]:
    """Post every account's posts of the batch at their slots (waiting for each on the
    deployment's clock), then collect the due metric snapshots of every account."""
    from xbot_assets.engine.batch import (
        AccountRuntimes,
        BatchItem,
        accounts_with_metrics_due,
    )
    from xbot_assets.engine.batch import (
        post_batch as run_batch,
    )

    settings = xbot_settings.get()
    items = [BatchItem.parse(text) for text in config.posts]
    runtimes = AccountRuntimes(lambda handle: xbot_runtime.for_account(settings, handle))
    try:
        due = accounts_with_metrics_due(settings, xbot_runtime.now())
        handles = sorted({i.handle for i in items} | set(due))
        report = run_batch(
            items, runtimes, speed=_speed(settings), wait=not xbot_runtime.simulated_now,
            collect_handles=handles,
        )  # fmt: skip
    finally:
        runtimes.close()
    context.log.info("batch: posted %s, outcomes %s", report.posted, report.outcomes)
    return dg.Output(
        None,
        metadata={
            "posts": len(items),
            "posted_by_account": dg.MetadataValue.json(report.posted),
            "outcomes": dg.MetadataValue.json(report.outcomes),
            "late_simulated_s": dg.MetadataValue.json(report.late_s),
            "waited_real_s": round(report.waited_s, 1),
            "snapshots_by_account": dg.MetadataValue.json(report.snapshots),
        },
    )


@dg.op(out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def refill_accounts(
    context: dg.OpExecutionContext,
    config: RefillBatchConfig,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
) -> dg.Output[None]:
    """Refill each account of the batch in turn (one process for all); an account that fails
    does not stop the others, and fails the run at the end so its outcome is recorded."""
    from xbot_assets.engine.batch import lead_seconds
    from xbot_assets.engine.decide import refill

    settings = xbot_settings.get()
    # slots nearer than a posting run's start-up (this run's own, measured) would go out late
    record = context.instance.get_run_record_by_id(context.run_id)
    starts = []
    if record is not None and record.start_time is not None:
        starts = [record.start_time - record.create_timestamp.timestamp()]
    speed = _speed(settings)
    from xbot_assets.defs.sensor_support import POSTING_INTERVAL

    lead = timedelta(seconds=lead_seconds(starts, POSTING_INTERVAL) * speed)
    queued: dict[str, int] = {}
    posteriors: dict[str, str] = {}
    failed: dict[str, str] = {}
    for handle in config.handles:
        runtime = xbot_runtime.for_account(settings, handle)
        try:
            not_before = None if xbot_runtime.simulated_now else runtime.now() + lead
            report = refill(runtime, n_candidates=config.n_candidates, not_before=not_before)
            queued[handle] = len(report.queued)
            posteriors[handle] = report.posterior_file
        except Exception as exc:
            failed[handle] = safe_error(exc, 300)  # a message may carry a key or a DSN
            context.log.error("refill of %s failed: %s", handle, failed[handle])
        finally:
            runtime.close()
    if failed:
        raise dg.Failure(
            f"refill failed for {sorted(failed)}",
            metadata={"queued": dg.MetadataValue.json(queued),
                      "failed": dg.MetadataValue.json(failed)},
        )  # fmt: skip
    return dg.Output(
        None,
        metadata={
            "queued_by_account": dg.MetadataValue.json(queued),
            "posterior_file_by_account": dg.MetadataValue.json(posteriors),
        },
    )


@dg.op(ins={"after": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def collect_account_metrics(
    context: dg.OpExecutionContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.Output[None]:
    """Take the account's due 1h/6h/24h/72h snapshots and its follower count into the store,
    within the month's X API read budget (the one collector: ``engine/collect.py``)."""
    from xbot_assets.engine.collect import collect_account

    runtime = _runtime(context, xbot_settings, xbot_runtime)
    try:
        report, followers = collect_account(runtime)
    finally:
        runtime.close()
    return dg.Output(
        None,
        metadata={
            "account": runtime.handle,
            "snapshots": report.snapshots,
            "by_horizon": dg.MetadataValue.json(report.by_horizon),
            "calls": report.calls,
            "missing_on_x": report.missing,
            "follower_snapshots": followers,
            "analytics_calls": report.analytics_calls,
            "analytics_snapshots": report.analytics_snapshots,
            # None (null) when analytics were read; else why snapshots were stored without them.
            "analytics_unavailable": report.analytics_unavailable,
            "deferred_for_budget": dg.MetadataValue.json(report.deferred_for_budget),
        },
    )


@dg.op(out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def reconcile_stuck_posts(
    context: dg.OpExecutionContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.Output[None]:
    """Settle posts left in ``posting``: found on the timeline → posted; else unknown."""
    from xbot_assets.posting.factory import reconcile

    with _runtime_with_poster(context, xbot_settings, xbot_runtime) as (runtime, poster):
        report = reconcile(runtime.settings, poster=poster, clock=runtime.now)
    return dg.Output(None, metadata={"report": dg.MetadataValue.json(report.as_dict())})


@dg.op(out=dg.Out(dg.Nothing))
@stands_down_once_its_run_ended
def sync_to_supabase(
    context: dg.OpExecutionContext, xbot_settings: XbotSettings
) -> dg.Output[None]:
    """Write the events buffered in Redis while the durable store was down (idempotent upserts)."""
    from xbot_assets.engine.reporting import drain_and_report

    report = drain_and_report(xbot_settings.get())
    context.log.info("sync_to_supabase: %s", report)
    return dg.Output(None, metadata={"report": str(report)})


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    partitions_def=accounts_partitions,
    tags={POSTING_TAG: "refill"},
    description="Generate, guard and score candidates for the account's open slots; queue the "
    "best per slot with its arm, scores and propensity.",
)
def refill_candidates_job() -> None:
    refill_candidates()


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    partitions_def=accounts_partitions,
    tags={POSTING_TAG: "post"},
    description="Post the account's due post (run key = the post's id), then collect the "
    "account's due metric snapshots.",
)
def post_job() -> None:
    collect_account_metrics(after=post_due_posts())


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    tags={POSTING_TAG: "post"},
    description="Post many accounts' posts, each at its slot (the run waits for it), through "
    "each account's claim and caps; then collect every account's due metric snapshots. "
    "Requested by posting_batch_sensor.",
)
def post_batch_job() -> None:
    post_batch()


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    tags={POSTING_TAG: "refill"},
    description="Refill many accounts' open slots in one run (requested by refill_batch_sensor).",
)
def refill_batch_job() -> None:
    refill_accounts()


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    partitions_def=accounts_partitions,
    description="Collect the account's due 1h/6h/24h/72h metric snapshots and follower count.",
)
def collect_account_metrics_job() -> None:
    collect_account_metrics()


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    partitions_def=accounts_partitions,
    tags={POSTING_TAG: "reconcile"},
    description="Settle the account's posts left in `posting` from its own timeline.",
)
def reconcile_job() -> None:
    reconcile_stuck_posts()


@dg.job(
    executor_def=ENGINE_EXECUTOR,
    description="Drain Redis-buffered metrics and audit events into the durable store.",
)
def sync_to_supabase_job() -> None:
    sync_to_supabase()


rebuild_job = dg.define_asset_job(
    "rebuild_warehouse_and_learning_job",
    selection=REBUILD_SELECTION,
    description="One pass over the warehouse and learning: raw extraction, one dbt build, the "
    "views, daily summaries, the scorer, the posteriors, evaluation and the learned config.",
)

tweet_metrics_job = dg.define_asset_job(
    "tweet_metrics_job",
    selection=dg.AssetSelection.assets("tweet_metrics"),
    executor_def=ENGINE_EXECUTOR,  # one small step: one process per run, not two
    description="Load one account's metric snapshots of one day (a partition) into the warehouse.",
)

RAW_EXTRACTION_ASSETS = ("raw_posts", "raw_accounts", "raw_candidates", "raw_follower_snapshots")
raw_extraction_job = dg.define_asset_job(
    "raw_extraction_job",
    selection=dg.AssetSelection.assets(*RAW_EXTRACTION_ASSETS),
    executor_def=ENGINE_EXECUTOR,  # four small steps: one process, not five
    description="Extract the store's posts, accounts, candidates and follower counts into the "
    "warehouse (what the 30-minute extraction cron does), for a rehearsal's rebuild.",
)

daily_summaries_job = dg.define_asset_job(
    "daily_summaries_job",
    selection=dg.AssetSelection.assets("daily_summaries"),
    description="Rewrite the last days' summaries in the durable store.",
)


defs = dg.Definitions(
    jobs=[
        refill_candidates_job,
        post_job,
        post_batch_job,
        refill_batch_job,
        collect_account_metrics_job,
        reconcile_job,
        sync_to_supabase_job,
        rebuild_job,
        tweet_metrics_job,
        raw_extraction_job,
        daily_summaries_job,
    ]
)
