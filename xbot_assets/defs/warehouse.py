"""Warehouse wiring: store → DuckDB `raw` extraction, the performance views, daily summaries,
and the data-quality checks. Thin on purpose: the logic lives in ``xbot_assets/warehouse/``.
"""

import hashlib
from datetime import date, timedelta

import dagster as dg

from xbot_assets.defs.orchestration import accounts_partitions
from xbot_assets.defs.resources import OWNERS, XbotRuntime, XbotSettings
from xbot_assets.store.durable.errors import AccountNotFoundError
from xbot_assets.warehouse import checks as wchecks
from xbot_assets.warehouse import load
from xbot_assets.warehouse.duck import warehouse
from xbot_assets.warehouse.extract import LoadResult
from xbot_assets.warehouse.raw_schema import create_raw_tables
from xbot_assets.warehouse.summaries import compute_daily_summaries, newest_day
from xbot_assets.warehouse.views import create_view, discover_views, view_summary

WAREHOUSE_GROUP = "warehouse"
VIEWS_GROUP = "performance_views"

metrics_days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
"""One partition per UTC day of snapshot collection (the sandbox's clock starts 2026-01-05);
``end_offset=1`` makes today's (still growing) day a partition."""

metrics_partitions = dg.MultiPartitionsDefinition(
    {"day": metrics_days, "account": accounts_partitions}
)
"""tweet_metrics partitions: (UTC day, account handle), so a load touches one account's day."""

EXTRACT_EVERY = dg.AutomationCondition.on_cron("*/30 * * * *")
"""Raw extraction runs every 30 minutes (for tweet_metrics: the latest day, every account)."""
DOWNSTREAM = dg.AutomationCondition.eager()
"""dbt models, views and summaries follow their inputs as soon as they change."""


class ExtractConfig(dg.Config):
    """How much of the store to read."""

    full_refresh: bool = False
    """Re-read the whole table instead of the rows changed since the last load."""


def _no_store(settings_path: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": 0,
            "loaded": "no durable store yet (run `xbot migrate` or post something first)",
            "warehouse": settings_path,
        }
    )


def _raw_asset(name: str, table: str, description: str, load_fn: str) -> dg.AssetsDefinition:
    """One unpartitioned raw extraction asset (posts, accounts, candidates, followers)."""

    @dg.asset(
        name=name,
        group_name=WAREHOUSE_GROUP,
        owners=OWNERS,
        kinds={"duckdb", "python"},
        description=description,
        automation_condition=EXTRACT_EVERY,
    )
    def _asset(
        context: dg.AssetExecutionContext, config: ExtractConfig, xbot_settings: XbotSettings
    ) -> dg.MaterializeResult:
        settings = xbot_settings.get()
        with warehouse(settings.resolved_warehouse_path) as con:
            create_raw_tables(con)
            store = load.open_store(settings)
            if store is None:
                return _no_store(str(settings.resolved_warehouse_path))
            try:
                if load_fn == "accounts":
                    result = load.load_accounts(store, con)
                else:
                    fn = getattr(load, f"load_{load_fn}")
                    result = fn(store, con, full=config.full_refresh)
                total = load.raw_counts(con, table)
            finally:
                store.engine.dispose()
        context.log.info("raw.%s: %s rows loaded (%s)", table, result.rows, result.source)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": total,
                "rows_loaded": result.rows,
                "loaded": result.source,
            }
        )

    return _asset


raw_posts = _raw_asset(
    "raw_posts",
    "posts",
    "Every post the bot queued or published (store `tweets`), copied into `raw.posts`; "
    "only posts changed since the last load are read.",
    "posts",
)
raw_accounts = _raw_asset(
    "raw_accounts", "accounts", "The accounts this deployment runs, in `raw.accounts`.", "accounts"
)
raw_candidates = _raw_asset(
    "raw_candidates",
    "candidates",
    "Generated candidates, chosen or not, in `raw.candidates` (for content-source analysis).",
    "candidates",
)
raw_follower_snapshots = _raw_asset(
    "raw_follower_snapshots",
    "follower_snapshots",
    "Follower counts over time (store audit events `followers_snapshot`), in "
    "`raw.follower_snapshots`.",
    "followers",
)


@dg.asset(
    group_name=WAREHOUSE_GROUP,
    owners=OWNERS,
    kinds={"duckdb", "python"},
    partitions_def=metrics_partitions,
    automation_condition=EXTRACT_EVERY,
)
def tweet_metrics(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings
) -> dg.MaterializeResult:
    """Engagement snapshots (1h/6h/24h/72h after posting) of one account collected on one UTC day.

    Each (day, account) is its own partition: loading it reads only that account's snapshots
    of that day from the store and replaces only them in `raw.tweet_metrics`, so a new day (or
    a new account) never rescans history or the other accounts.
    """
    settings = xbot_settings.get()
    keys = context.multi_partition_key.keys_by_dimension
    day, handle = date.fromisoformat(keys["day"]), keys["account"]
    with warehouse(settings.resolved_warehouse_path) as con:
        create_raw_tables(con)
        store = load.open_store(settings)
        if store is None:
            return _no_store(str(settings.resolved_warehouse_path))
        try:
            result = load.load_metrics_day(store, con, day, handle)
        except AccountNotFoundError:
            # A partition for X_HANDLE exists before its first post creates the store row.
            result = LoadResult("tweet_metrics", 0, f"no account {handle!r} in the store yet")
        finally:
            store.engine.dispose()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "loaded": result.source,
            "day": day.isoformat(),
            "account": handle,
        }
    )


def _view_asset(view_name: str) -> dg.AssetsDefinition:
    view = next(v for v in discover_views() if v.name == view_name)

    @dg.asset(
        name=view.name,
        group_name=VIEWS_GROUP,
        owners=OWNERS,
        kinds={"duckdb", "sql"},
        deps=[dg.AssetKey(model) for model in view.upstream_models],
        description=view.description,
        code_version=hashlib.sha256(view.sql.encode()).hexdigest()[:12],
        automation_condition=DOWNSTREAM,
    )
    def _asset(xbot_settings: XbotSettings) -> dg.MaterializeResult:
        settings = xbot_settings.get()
        current = next(v for v in discover_views() if v.name == view_name)
        with warehouse(settings.resolved_warehouse_path) as con:
            create_view(con, current)
            rows, preview = view_summary(con, current.name)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "preview": dg.MetadataValue.md(preview),
                "sql_file": str(current.path.name),
            }
        )

    return _asset


def build_view_assets() -> list[dg.AssetsDefinition]:
    """One asset per file of ``sql/views/`` (the folder is the list)."""
    return [_view_asset(view.name) for view in discover_views()]


class SummaryConfig(dg.Config):
    """Which days to (re)write."""

    lookback_days: int = 7
    """Days before the newest posting day to rewrite; -1 rewrites every day."""


@dg.asset(
    group_name=WAREHOUSE_GROUP,
    owners=OWNERS,
    kinds={"duckdb", "python"},
    deps=[dg.AssetKey("fct_post_outcomes"), dg.AssetKey("mart_follower_growth")],
    automation_condition=DOWNSTREAM,
)
def daily_summaries(
    context: dg.AssetExecutionContext,
    config: SummaryConfig,
    xbot_settings: XbotSettings,
    xbot_runtime: XbotRuntime,
) -> dg.MaterializeResult:
    """Each account's day in numbers (posts, impressions, reward, follows, followers), computed
    in the warehouse and upserted into the durable store's `daily_summaries` for Supabase users.
    """
    settings = xbot_settings.get()
    with warehouse(settings.resolved_warehouse_path, read_only=False) as con:
        newest = newest_day(con)
        since = None
        if newest is not None and config.lookback_days >= 0:
            since = newest - timedelta(days=config.lookback_days)
        summaries = compute_daily_summaries(con, since)
    store = load.open_store(settings)
    if store is None:
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0, "written": "no durable store yet"}
        )
    try:
        now = xbot_runtime.now()
        for summary in summaries:
            store.upsert_daily_summary(summary.day, summary.summary_type, summary.metrics, now=now)
    finally:
        store.engine.dispose()
    context.log.info("upserted %s daily summaries since %s", len(summaries), since)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(summaries),
            "since": str(since),
            "newest_day": str(newest),
        }
    )


def _check_result(outcome: wchecks.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, metadata=outcome.metadata)


@dg.asset_check(asset=dg.AssetKey("fct_post_outcomes"), blocking=False)
def metrics_are_fresh(xbot_settings: XbotSettings) -> dg.AssetCheckResult:
    """Every published post past its 1h horizon (+3h grace) has a 1h snapshot."""
    settings = xbot_settings.get()
    with warehouse(settings.resolved_warehouse_path) as con:
        outcome = wchecks.metrics_fresh(con)
    return _check_result(outcome)


@dg.asset_check(asset=dg.AssetKey("fct_post_outcomes"))
def no_duplicate_post_ids(xbot_settings: XbotSettings) -> dg.AssetCheckResult:
    """A post appears once in the outcomes the learning trains on."""
    settings = xbot_settings.get()
    with warehouse(settings.resolved_warehouse_path) as con:
        outcome = wchecks.duplicate_post_ids(con, "marts.fct_post_outcomes")
    return _check_result(outcome)


@dg.asset_check(asset=tweet_metrics)
def engagement_never_above_impressions(xbot_settings: XbotSettings) -> dg.AssetCheckResult:
    """No snapshot counts more likes, reposts, replies, quotes, bookmarks or profile clicks than
    impressions (a sign of a mis-mapped field or a broken reader)."""
    settings = xbot_settings.get()
    with warehouse(settings.resolved_warehouse_path) as con:
        outcome = wchecks.engagement_within_impressions(con)
    return _check_result(outcome)


MISSING_COUNTS_HINT = "materialise the missing tweet_metrics (day, account) partitions or raw_posts"


@dg.asset_check(asset=raw_posts, additional_deps=[tweet_metrics])
def store_and_warehouse_counts_match(xbot_settings: XbotSettings) -> dg.AssetCheckResult:
    """The warehouse holds as many posts and (post, horizon) snapshots as the durable store."""
    settings = xbot_settings.get()
    with warehouse(settings.resolved_warehouse_path) as con:
        create_raw_tables(con)
        in_warehouse = load.warehouse_counts(con)
    store = load.open_store(settings)
    if store is None:
        in_store = {"posts": 0, "tweet_metrics": 0}
    else:
        try:
            in_store = load.store_counts(store)
        finally:
            store.engine.dispose()
    passed = in_store == in_warehouse
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            **{f"store_{k}": v for k, v in in_store.items()},
            **{f"warehouse_{k}": v for k, v in in_warehouse.items()},
            "hint": "" if passed else MISSING_COUNTS_HINT,
        },
    )


@dg.op
def collect_tweet_metrics(context: dg.OpExecutionContext, xbot_settings: XbotSettings) -> None:
    """Take every due 1h/6h/24h/72h snapshot from X (or the sandbox's API) into the store, and
    snapshot follower counts; stops early when the X rate-limit window is spent."""
    from xbot_assets.warehouse.collector import collect_due_metrics, record_followers
    from xbot_assets.xapi.client import XApiClient

    settings = xbot_settings.get()
    store = load.open_store(settings)
    if store is None:
        context.log.info("no durable store yet: nothing to collect")
        return
    dual = None
    if settings.redis_url:
        from xbot_assets.store.hot.dual import DualStoreManager

        dual = DualStoreManager.from_settings(settings)
    try:
        with XApiClient.from_settings(settings) as client:
            report = collect_due_metrics(store, client, dual=dual)
            followers = 0 if report.stopped_for_rate_limit else record_followers(store, client)
    finally:
        store.engine.dispose()
    context.log.info(
        "metrics: %s snapshots in %s calls %s, %s posts missing on X, %s follower snapshots; "
        "analytics: %s snapshots in %s calls%s%s",
        report.snapshots,
        report.calls,
        report.by_horizon,
        report.missing,
        followers,
        report.analytics_snapshots,
        report.analytics_calls,
        f" (unavailable: {report.analytics_unavailable})" if report.analytics_unavailable else "",
        f"; rate limit spent until {report.rate_limit_reset_at}"
        if report.stopped_for_rate_limit
        else "",
    )


@dg.job(description="Collect due metric snapshots and follower counts from X into the store.")
def collect_metrics_job() -> None:
    collect_tweet_metrics()


COLLECT_EVERY_15_MINUTES = [
    "15,30,45 * * * *",
    "0 1-5,7-11,13-17,19-23 * * *",
]
"""Every quarter hour except 00, 06, 12 and 18 UTC, when collect_account_metrics_schedule
collects per account: the two never take the same snapshots at the same moment."""

collect_metrics_schedule = dg.ScheduleDefinition(
    name="collect_metrics_every_15_minutes",
    job=collect_metrics_job,
    cron_schedule=COLLECT_EVERY_15_MINUTES,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Deployment-wide collector (wall clock): every 15 minutes, take every due "
    "1h/6h/24h/72h snapshot of every account's posts through the X API client (through the Redis "
    "hot path when REDIS_URL is set), plus follower counts, so a 1h snapshot lands within 15 "
    "minutes of its horizon. Skips 00/06/12/18 UTC, when collect_account_metrics_schedule runs; "
    "the main job does not use it (its posting runs and that schedule collect on simulated time).",
)


defs = dg.Definitions(
    jobs=[collect_metrics_job],
    schedules=[collect_metrics_schedule],
    assets=[
        raw_posts,
        raw_accounts,
        raw_candidates,
        raw_follower_snapshots,
        tweet_metrics,
        daily_summaries,
        *build_view_assets(),
    ],
    asset_checks=[
        metrics_are_fresh,
        no_duplicate_post_ids,
        engagement_never_above_impressions,
        store_and_warehouse_counts_match,
    ],
)
