"""Extraction from the durable store: incremental, day-bounded, and faithful."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
import sqlalchemy as sa

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.errors import AccountNotFoundError
from xbot_assets.store.durable.models import MetricSnapshot
from xbot_assets.warehouse import checks, load
from xbot_assets.warehouse.raw_schema import create_raw_tables

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _posted(store: DurableStore, account_id: int, i: int, at: datetime) -> int:
    post = store.enqueue_post(account_id, f"Python tip {i}: use pytest", scheduled_at=at)
    claim = store.claim_post(post.id, now=at)
    assert claim is not None
    store.mark_posted(post.id, x_id=str(1000 + i), attempt_id=claim.attempt_id, posted_at=at)
    return post.id


def _snap(post_id: int, horizon: str, at: datetime, impressions: int = 100) -> MetricSnapshot:
    return MetricSnapshot(tweet_id=post_id, horizon=horizon, collected_at=at,
                          impressions=impressions, likes=3)  # fmt: skip


def _record_statements(store: DurableStore) -> list[tuple[str, object]]:
    """Every SQL statement the store's engine issues from now on, with its parameters."""
    statements: list[tuple[str, object]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    return statements


def test_a_new_day_reads_only_that_day(store: DurableStore) -> None:
    account = store.ensure_account("bench_acct")
    ids = [_posted(store, account.id, i, T0 + timedelta(days=i)) for i in range(3)]
    store.upsert_metrics(
        [_snap(pid, "1h", T0 + timedelta(days=i, hours=1)) for i, pid in enumerate(ids)]
    )
    con = duckdb.connect()
    create_raw_tables(con)
    first = [load.load_metrics_day(store, con, date(2026, 1, 5 + i), account.id) for i in range(2)]
    assert [r.rows for r in first] == [1, 1]

    statements = _record_statements(store)
    result = load.load_metrics_day(store, con, date(2026, 1, 7), "bench_acct")
    assert result.rows == 1
    metric_reads = [(s, p) for s, p in statements if "FROM tweet_metrics" in s]
    assert len(metric_reads) == 1
    sql, params = metric_reads[0]
    assert "collected_at >=" in sql and "collected_at <" in sql  # bounded by the day
    assert "2026-01-07" in str(params) and "2026-01-08" in str(params)
    assert load.raw_counts(con, "tweet_metrics") == 3
    # Reloading a day replaces it instead of duplicating it.
    load.load_metrics_day(store, con, date(2026, 1, 7), account.id)
    assert load.raw_counts(con, "tweet_metrics") == 3
    assert load.metric_partitions_in_store(store) == [
        (date(2026, 1, 5 + i), "bench_acct") for i in range(3)
    ]
    assert load.metric_days_in_store(store) == [date(2026, 1, 5 + i) for i in range(3)]


def test_one_account_day_neither_reads_nor_replaces_another_account(store: DurableStore) -> None:
    alpha, beta = store.ensure_account("alpha_acct"), store.ensure_account("beta_acct")
    a_post = _posted(store, alpha.id, 1, T0)
    b_post = _posted(store, beta.id, 2, T0)
    store.upsert_metrics(
        [
            _snap(a_post, "1h", T0 + timedelta(hours=1), impressions=100),
            _snap(b_post, "1h", T0 + timedelta(hours=1), impressions=200),
            _snap(b_post, "6h", T0 + timedelta(hours=6), impressions=300),
        ]
    )
    day = date(2026, 1, 5)
    assert load.metric_partitions_in_store(store) == [(day, "alpha_acct"), (day, "beta_acct")]
    con = duckdb.connect()
    create_raw_tables(con)
    assert load.load_metrics_day(store, con, day, "beta_acct").rows == 2

    statements = _record_statements(store)
    assert load.load_metrics_day(store, con, day, "alpha_acct").rows == 1
    metric_reads = [(s, p) for s, p in statements if "FROM tweet_metrics" in s]
    assert len(metric_reads) == 1
    sql, params = metric_reads[0]
    assert "tweet_metrics.account_id =" in sql  # filtered by the account, in the store
    assert alpha.id in tuple(params) and beta.id not in tuple(params)  # type: ignore[arg-type]
    assert "2026-01-05" in str(params) and "2026-01-06" in str(params)

    def by_account() -> list[tuple[int, int]]:
        return con.execute(
            "select account_id, count(*) from raw.tweet_metrics group by 1 order by 1"
        ).fetchall()

    # beta's rows survived alpha's load; reloading alpha replaces alpha's slice only.
    assert by_account() == sorted([(alpha.id, 1), (beta.id, 2)])
    store.upsert_metrics([_snap(a_post, "6h", T0 + timedelta(hours=6), impressions=150)])
    assert load.load_metrics_day(store, con, day, alpha.id).rows == 2
    assert by_account() == sorted([(alpha.id, 2), (beta.id, 2)])
    beta_impressions = con.execute(
        "select sum(impressions) from raw.tweet_metrics where account_id = ?", [beta.id]
    ).fetchone()
    assert beta_impressions == (500,)


def test_an_unknown_account_is_a_clear_error(store: DurableStore) -> None:
    con = duckdb.connect()
    create_raw_tables(con)
    with pytest.raises(AccountNotFoundError, match="ensure_account"):
        load.load_metrics_day(store, con, date(2026, 1, 5), "nobody_here")


def test_posts_load_incrementally_by_updated_at(store: DurableStore) -> None:
    account = store.ensure_account("incr_acct")
    _posted(store, account.id, 1, T0)
    con = duckdb.connect()
    create_raw_tables(con)
    assert load.load_posts(store, con, full=False).rows == 1
    queued = store.enqueue_post(account.id, "Queued: how to use asyncio", scheduled_at=T0)
    second = load.load_posts(store, con, full=False)
    assert second.rows >= 1 and "changed since" in second.source
    assert load.raw_counts(con, "posts") == 2
    row = con.execute(
        "select status, account from raw.posts where post_id = ?", [queued.id]
    ).fetchone()
    assert row == ("queued", "incr_acct")
    assert load.warehouse_counts(con)["posts"] == load.store_counts(store)["posts"] == 2


def test_the_logged_propensity_reaches_the_raw_posts(store: DurableStore) -> None:
    account = store.ensure_account("propensity_acct")
    logged = store.enqueue_post(
        account.id, "How to use pytest marks", scheduled_at=T0, metadata={"propensity": 0.125}
    )
    manual = store.enqueue_post(account.id, "A post queued by hand", scheduled_at=T0)
    con = duckdb.connect()
    create_raw_tables(con)
    load.load_posts(store, con, full=True)
    rows = dict(con.execute("select post_id, propensity from raw.posts").fetchall())
    assert rows == {logged.id: 0.125, manual.id: None}


def test_checks_catch_bad_rows() -> None:
    con = duckdb.connect()
    create_raw_tables(con)
    con.execute(
        "insert into raw.tweet_metrics (post_id, account_id, environment, horizon, impressions, "
        "likes, reposts, replies, quotes, bookmarks, profile_clicks, collected_at) values "
        "(1, 1, 'local', '1h', 10, 11, 0, 0, 0, 0, 0, now()), "
        "(2, 1, 'local', '1h', 10, 1, 0, 0, 0, 0, 0, now())"
    )
    bad = checks.engagement_within_impressions(con)
    assert not bad.passed and bad.metadata["violations"] == 1
    con.execute(
        "insert into raw.posts (post_id, account_id, status, posted_at) values "
        "(1, 1, 'posted', timestamptz '2026-01-05 00:00:00+00'), "
        "(2, 1, 'posted', timestamptz '2026-01-05 01:00:00+00'), "
        "(3, 1, 'posted', timestamptz '2026-01-05 10:00:00+00')"
    )
    fresh = checks.metrics_fresh(con)
    assert fresh.passed and fresh.metadata["posts_due"] == 2
    con.execute(
        "insert into raw.posts (post_id, account_id, status, posted_at) values "
        "(4, 1, 'posted', timestamptz '2026-01-05 11:00:00+00')"
    )
    con.execute("update raw.posts set posted_at = posted_at - interval 1 day where post_id = 3")
    stale = checks.metrics_fresh(con)
    assert not stale.passed and stale.metadata["missing_1h_snapshot"] == 1
    con.execute("create table dup as select * from (values (1), (1), (2)) t(post_id)")
    assert not checks.duplicate_post_ids(con, "dup").passed
