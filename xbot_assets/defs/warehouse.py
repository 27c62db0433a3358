"""Warehouse wiring: store → DuckDB `raw` extraction, the performance views, daily summaries,
and the data-quality checks. Thin on purpose: the logic lives in ``xbot_assets/warehouse/``.
"""

import hashlib
import math
from datetime import date, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from xbot_assets.defs.orchestration import accounts_partitions
from xbot_assets.defs.resources import OWNERS, XbotRuntime, XbotSettings
from xbot_assets.defs.simtime import rehearsal_speed, simulated
from xbot_assets.store.durable.errors import AccountNotFoundError
from xbot_assets.warehouse import checks as wchecks
from xbot_assets.warehouse import load
from xbot_assets.warehouse.duck import warehouse
from xbot_assets.warehouse.extract import LoadResult
from xbot_assets.warehouse.raw_schema import create_raw_tables
from xbot_assets.warehouse.summaries import compute_daily_summaries, newest_day
from xbot_assets.warehouse.views import create_view, discover_views, view_summary

if TYPE_CHECKING:
    import duckdb

    from xbot_assets.store.durable import DurableStore

WAREHOUSE_GROUP = "warehouse"
VIEWS_GROUP = "performance_views"

REHEARSAL_HOURS = 2
"""The longest rehearsal the day partitions cover on a rehearsal clock (below)."""


def days_ahead() -> int:
    """How many day partitions lie past yesterday: 1 (today's, still growing) on the wall clock.

    On a rehearsal clock (CLOCK_SPEED=K) the simulated day runs ahead of Dagster's wall-clock
    partitions, a day every 10 minutes at 144x, and the rebuild sensor's load of a simulated
    day failed on its missing partition (``DagsterUnknownPartitionError``). There the partitions
    reach as far as a :data:`REHEARSAL_HOURS` rehearsal gets (13 days at 144x); the extraction
    cron's "latest day" is then a day ahead that has no snapshots yet (the rebuild sensor loads
    the days that have them)."""
    speed = rehearsal_speed()
    return 1 if speed == 1 else 1 + math.ceil(speed * REHEARSAL_HOURS / 24)


metrics_days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=days_ahead())
"""One partition per UTC day of snapshot collection (the sandbox's clock starts 2026-01-05);
today's (still growing) day is a partition."""

metrics_partitions = dg.MultiPartitionsDefinition(
    {"day": metrics_days, "account": accounts_partitions}
)
"""tweet_metrics partitions: (UTC day, account handle), so a load touches one account's day."""

RANGE_START_TAG, RANGE_END_TAG = (
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)
"""Dagster's tags of a run over a partition range (what a single-run backfill is tagged with)."""


def metrics_range_tags(slices: list[tuple[str, str]], order: list[str]) -> dict[str, str]:
    """Run tags for ONE tweet_metrics run over the (day, account) ``slices``: the range from the
    first day to the last, over the accounts from the first of them to the last in the
    ``accounts`` partitions' ``order``. A slice inside the range without new snapshots is loaded
    again unchanged (a query), far cheaper than a process per account."""
    days = sorted({day for day, _ in slices})
    wanted = {handle for _, handle in slices}
    ranked = [handle for handle in order if handle in wanted]

    def key(day: str, handle: str) -> str:
        return str(dg.MultiPartitionKey({"day": day, "account": handle}))

    return {RANGE_START_TAG: key(days[0], ranked[0]), RANGE_END_TAG: key(days[-1], ranked[-1])}


EXTRACT_EVERY = dg.AutomationCondition.on_cron("*/30 * * * *")
"""Raw extraction runs every 30 minutes (for tweet_metrics: the latest day, every account)."""
DOWNSTREAM = dg.AutomationCondition.eager()
"""dbt models, views and summaries follow their inputs as soon as they change."""


class ExtractConfig(dg.Config):
    """How much of the store to read."""

    full_refresh: bool = False
    """Re-read the whole table instead of the rows changed since the last load."""


def _no_store(settings_path: str) -> dg.MaterializeResult:
    return simulated(
        dg.MaterializeResult(
            metadata={
                "dagster/row_count": 0,
                "loaded": "no durable store yet (run `xbot migrate` or post something first)",
                "warehouse": settings_path,
            }
        )
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
        return simulated(
            dg.MaterializeResult(
                metadata={
                    "dagster/row_count": total,
                    "rows_loaded": result.rows,
                    "loaded": result.source,
                }
            )
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
    # One run for every partition a tick (or a backfill) requests: the cron asks for the latest
    # day of every account at once, and a run per partition was one process per account at
    # each tick (100 queued runs at 100 accounts, each importing the code location).
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def tweet_metrics(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings
) -> dg.MaterializeResult:
    """Engagement snapshots (1h/6h/24h/72h after posting) of each account, by UTC day of collection.

    Each (day, account) is its own partition: loading it reads only that account's snapshots
    of that day from the store and replaces only them in `raw.tweet_metrics`, so a new day (or
    a new account) never rescans history or the other accounts. A run loads every partition it
    was given (all accounts' latest day at a cron tick, one partition when an operator reloads
    one account's day), with one store and one warehouse connection.
    """
    settings = xbot_settings.get()
    slices = sorted(
        (date.fromisoformat(k.keys_by_dimension["day"]), k.keys_by_dimension["account"])
        for k in map(metrics_partitions.get_partition_key_from_str, context.partition_keys)
    )
    with warehouse(settings.resolved_warehouse_path) as con:
        create_raw_tables(con)
        store = load.open_store(settings)
        if store is None:
            return _no_store(str(settings.resolved_warehouse_path))
        try:
            loaded = [_load_metrics_slice(store, con, day, handle) for day, handle in slices]
        finally:
            store.engine.dispose()
    rows = sum(result.rows for result in loaded)
    days = sorted({day.isoformat() for day, _ in slices})
    handles = sorted({handle for _, handle in slices})
    context.log.info(
        "raw.tweet_metrics: %s rows of %s (day, account) partitions", rows, len(slices)
    )
    return simulated(
        dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "loaded": loaded[0].source if len(loaded) == 1 else f"{len(loaded)} partitions",
                "partitions_loaded": len(slices),
                "day": ", ".join(days),
                "account": handles[0] if len(handles) == 1 else f"{len(handles)} accounts",
            }
        )
    )


def _load_metrics_slice(
    store: "DurableStore", con: "duckdb.DuckDBPyConnection", day: date, handle: str
) -> LoadResult:
    """One (day, account) partition; an account the store does not know yet loads nothing."""
    try:
        return load.load_metrics_day(store, con, day, handle)
    except AccountNotFoundError:
        # A partition for X_HANDLE exists before its first post creates the store row.
        return LoadResult("tweet_metrics", 0, f"no account {handle!r} in the store yet")


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
        return simulated(
            dg.MaterializeResult(
                metadata={
                    "dagster/row_count": rows,
                    "preview": dg.MetadataValue.md(preview),
                    "sql_file": str(current.path.name),
                }
            )
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
        return simulated(
            dg.MaterializeResult(
                metadata={"dagster/row_count": 0, "written": "no durable store yet"}
            )
        )
    try:
        now = xbot_runtime.now()
        for summary in summaries:
            store.upsert_daily_summary(summary.day, summary.summary_type, summary.metrics, now=now)
    finally:
        store.engine.dispose()
    context.log.info("upserted %s daily summaries since %s", len(summaries), since)
    return simulated(
        dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(summaries),
                "since": str(since),
                "newest_day": str(newest),
            }
        )
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


defs = dg.Definitions(
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
