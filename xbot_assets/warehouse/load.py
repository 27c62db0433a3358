"""Loading the durable store into the warehouse's raw tables, fully or incrementally.

Each function opens nothing itself: it receives a :class:`DurableStore` (or None when the
embedded store has not been created yet) and a DuckDB connection, and returns what it did.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import sqlalchemy as sa

from xbot_assets.warehouse import store_extract as q
from xbot_assets.warehouse.extract import (
    LoadResult,
    read_store_batches,
    replace_slice,
    replace_table,
    upsert_batches,
)
from xbot_assets.warehouse.raw_schema import RAW_SCHEMA

if TYPE_CHECKING:
    from xbot_assets.config import Settings
    from xbot_assets.store.durable import DurableStore

CANDIDATE_LOOKBACK = timedelta(days=7)
"""Candidates are re-read this far back: ``chosen`` is set after creation without a timestamp."""


def open_store(settings: Settings) -> DurableStore | None:
    """The durable store of these settings, or None when the embedded SQLite file does not exist.

    A store that exists but is not at the current migration raises the store's SchemaError,
    whose message names the command that fixes it (``xbot migrate``).
    """
    from xbot_assets.store.durable import DurableStore

    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if not path or not Path(path).exists():
            return None
    return DurableStore.from_settings(settings)


def _watermark(con: duckdb.DuckDBPyConnection, sql: str) -> datetime | None:
    row = con.execute(sql).fetchone()
    value = None if row is None else row[0]
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC interval ``[day 00:00, next day 00:00)`` of a day partition."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def load_posts(store: DurableStore, con: duckdb.DuckDBPyConnection, *, full: bool) -> LoadResult:
    """Copy posts changed since the newest ``updated_at`` already loaded (all of them if full)."""
    env = store.environment
    if full:
        rows = replace_table(
            con, "posts", read_store_batches(store.engine, q.posts_query(env), "posts")
        )
        return LoadResult("posts", rows, "full")
    since = _watermark(con, f"select max(updated_at) from {RAW_SCHEMA}.posts")  # noqa: S608
    batches = read_store_batches(store.engine, q.posts_query(env, updated_since=since), "posts")
    rows = upsert_batches(con, "posts", ["post_id"], batches)
    return LoadResult("posts", rows, f"changed since {since}" if since else "first load")


def resolve_account_id(store: DurableStore, account: int | str) -> int:
    """The store id of an account given as its id or its handle (the ``account`` partition key).

    Raises the store's AccountNotFoundError (naming the fix) for a handle or id it does not hold.
    """
    if isinstance(account, str):
        return int(store.get_account_by_handle(account).id)
    return int(store.get_account(account).id)


def load_metrics_day(
    store: DurableStore, con: duckdb.DuckDBPyConnection, day: date, account: int | str
) -> LoadResult:
    """Replace one account's snapshots collected on one UTC day (one tweet_metrics partition).

    Only that (day, account) slice is read from the store and replaced in the warehouse: other
    days and other accounts are neither read nor touched. ``account`` is the id or the handle.
    """
    account_id = resolve_account_id(store, account)
    start, end = day_bounds(day)
    query = q.metrics_query(
        store.environment, collected_from=start, collected_before=end, account_id=account_id
    )
    rows = replace_slice(
        con,
        "tweet_metrics",
        "collected_at >= ? and collected_at < ? and account_id = ?",
        [start, end, account_id],
        read_store_batches(store.engine, query, "tweet_metrics"),
    )
    return LoadResult("tweet_metrics", rows, f"account {account_id} collected on {day.isoformat()}")


def load_metrics_all(store: DurableStore, con: duckdb.DuckDBPyConnection) -> LoadResult:
    """Replace every snapshot (a full refresh, e.g. after a backfill in the store)."""
    query = q.metrics_query(store.environment)
    rows = replace_table(
        con, "tweet_metrics", read_store_batches(store.engine, query, "tweet_metrics")
    )
    return LoadResult("tweet_metrics", rows, "full")


def load_accounts(store: DurableStore, con: duckdb.DuckDBPyConnection) -> LoadResult:
    """Copy every account (few rows)."""
    query = q.accounts_query(store.environment)
    rows = replace_table(con, "accounts", read_store_batches(store.engine, query, "accounts"))
    return LoadResult("accounts", rows, "full")


def load_candidates(
    store: DurableStore, con: duckdb.DuckDBPyConnection, *, full: bool
) -> LoadResult:
    """Copy candidates created since the newest loaded one minus a lookback (all if full)."""
    env = store.environment
    if full:
        query = q.candidates_query(env)
        rows = replace_table(
            con, "candidates", read_store_batches(store.engine, query, "candidates")
        )
        return LoadResult("candidates", rows, "full")
    newest = _watermark(con, f"select max(created_at) from {RAW_SCHEMA}.candidates")  # noqa: S608
    since = None if newest is None else newest - CANDIDATE_LOOKBACK
    query = q.candidates_query(env, created_since=since)
    rows = upsert_batches(
        con, "candidates", ["candidate_id"], read_store_batches(store.engine, query, "candidates")
    )
    return LoadResult("candidates", rows, f"created since {since}" if since else "first load")


def load_followers(
    store: DurableStore, con: duckdb.DuckDBPyConnection, *, full: bool
) -> LoadResult:
    """Copy follower-count snapshots newer than the newest loaded one (all if full)."""
    env = store.environment
    since = None
    if not full:
        since = _watermark(
            con,
            f"select max(collected_at) from {RAW_SCHEMA}.follower_snapshots",  # noqa: S608
        )
    query = q.followers_query(env, collected_since=since)
    batches = read_store_batches(store.engine, query, "follower_snapshots")
    rows = upsert_batches(con, "follower_snapshots", ["snapshot_id"], batches)
    return LoadResult("follower_snapshots", rows, "full" if full else f"since {since}")


def raw_counts(con: duckdb.DuckDBPyConnection, table: str, where: str = "true") -> int:
    """Rows of a raw table (optionally filtered), for metadata and checks."""
    row = con.execute(f"select count(*) from {RAW_SCHEMA}.{table} where {where}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def describe(result: LoadResult) -> dict[str, Any]:
    """Asset metadata of one load."""
    return {"dagster/row_count": result.rows, "loaded": result.source}


def store_counts(store: DurableStore) -> dict[str, int]:
    """Rows per table in the store (this environment), to compare with the warehouse."""
    from xbot_assets.store.durable import schema as s

    counts: dict[str, int] = {}
    with store.engine.connect() as conn:
        for name, table in (("posts", s.tweets), ("tweet_metrics", s.tweet_metrics)):
            query = sa.select(sa.func.count()).select_from(table)
            counts[name] = int(
                conn.execute(query.where(table.c.environment == store.environment)).scalar_one()
            )
    return counts


def warehouse_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The same counts in the warehouse (snapshots counted once per post and horizon)."""
    posts = raw_counts(con, "posts")
    row = con.execute(
        "select count(*) from (select distinct post_id, horizon from raw.tweet_metrics)"
    ).fetchone()
    return {"posts": posts, "tweet_metrics": int(row[0]) if row else 0}


def metric_partitions_in_store(store: DurableStore) -> list[tuple[date, str]]:
    """The (UTC day, account handle) pairs that have snapshots: the tweet_metrics partitions
    to load (``refresh_all`` loads each of a fresh store; tests)."""
    from xbot_assets.store.durable import schema as s

    m, a = s.tweet_metrics, s.accounts
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            day: sa.ColumnElement[Any] = sa.func.date(m.c.collected_at)
        else:
            day = sa.cast(sa.func.timezone("UTC", m.c.collected_at), sa.Date)
        query = (
            sa.select(day, a.c.handle)
            .join(a, a.c.id == m.c.account_id)
            .where(m.c.environment == store.environment)
            .distinct()
        )
        rows: list[Any] = list(conn.execute(query))
    pairs = {
        (d if isinstance(d, date) else date.fromisoformat(str(d)), str(handle))
        for d, handle in rows
    }
    return sorted(pairs)


def metric_days_in_store(store: DurableStore) -> list[date]:
    """The UTC days on which snapshots were collected (any account), oldest first."""
    return sorted({day for day, _ in metric_partitions_in_store(store)})
