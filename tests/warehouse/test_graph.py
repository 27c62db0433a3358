"""The whole warehouse graph on data the sandbox produced, checked against pandas.

The store is filled by driving the sandbox X through the posting protocol and the real metrics
reader (HTTP); the graph is then materialised through Dagster exactly as deployed (raw
extraction, tweet_metrics (day, account) partitions, dbt build with its tests, the six views, daily
summaries, asset checks). Every view number is recomputed here from the store's rows with
pandas and the learning layer's reward function, independently of the SQL.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from xbot_assets.learning.rewards import engagement_reward
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable import schema as s
from xbot_assets.warehouse.refresh import refresh_all
from xbot_assets.warehouse.summaries import SUMMARY_TYPE_PREFIX

from .simulate import simulate

ENGAGEMENTS = ["likes", "reposts", "replies", "quotes", "bookmarks", "profile_clicks"]
MY_GROUPS = {"warehouse", "performance_views"}


def _store_frames(store: DurableStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    with store.engine.connect() as conn:
        posts = pd.DataFrame(conn.execute(sa.select(s.tweets)).mappings().all())
        metrics = pd.DataFrame(conn.execute(sa.select(s.tweet_metrics)).mappings().all())
    return posts, metrics


def _expected_outcomes(store: DurableStore, timezone: str) -> pd.DataFrame:
    posts, metrics = _store_frames(store)
    posts = posts[(posts.status == "posted") & (posts.thread_position == 0)].copy()
    order = {"1h": 1, "6h": 6, "24h": 24, "72h": 72}
    metrics["h"] = metrics.horizon.map(order)
    final = metrics.sort_values("h").groupby("tweet_id").tail(1).set_index("tweet_id")
    out = posts.set_index("id").join(
        final[["horizon", *ENGAGEMENTS, "impressions", "follows", "negative_feedback", "reports"]],
        how="inner",
    )
    out["reward"] = [engagement_reward(row) for row in out.to_dict("records")]
    posted = pd.to_datetime(out.posted_at, utc=True)
    out["posted_at"] = posted
    out["hour_local"] = posted.dt.tz_convert(timezone).dt.hour
    out["day_local"] = posted.dt.tz_convert(timezone).dt.date
    out["generator"] = out["metadata"].map(lambda m: m.get("generator"))
    out["engagements"] = out[ENGAGEMENTS].sum(axis=1)
    return out


def test_whole_graph_on_sandbox_data_matches_pandas(xbot_env, store: DurableStore) -> None:
    sim = simulate(store, n_posts=30)
    assert sim.n_posts == 30 and sim.collector_calls > 0

    # The warehouse's own definitions (as Dagster loads them from defs/), so another area's
    # work in progress cannot fail this test; `dg check defs` covers the whole location.
    from xbot_assets.defs import dbt as dbt_defs
    from xbot_assets.defs import resources, warehouse

    definitions = dg.Definitions.merge(resources.defs, warehouse.defs, dbt_defs.defs)
    graph = definitions.resolve_asset_graph()
    mine = {
        key
        for key in graph.get_all_asset_keys()
        if graph.get(key).group_name in MY_GROUPS and graph.get(key).is_materializable
    }
    metrics_key = dg.AssetKey("tweet_metrics")
    assert metrics_key in mine and dg.AssetKey("fct_post_outcomes") in mine
    for view in (
        "vw_recent_posts",
        "vw_topics_perf_7d",
        "vw_time_of_day_perf_7d",
        "vw_learning_performance",
        "vw_bandit_performance",
        "vw_content_sources_perf",
    ):
        assert dg.AssetKey(view) in mine

    _, metrics = _store_frames(store)
    expected_days = sorted(
        {pd.Timestamp(t).tz_localize(None).date().isoformat() for t in metrics.collected_at}
    )
    instance = dg.DagsterInstance.ephemeral()
    refreshed = refresh_all(definitions, instance, xbot_env, only_groups=MY_GROUPS)
    assert refreshed.metric_days == expected_days  # every day loaded, as its own partition
    assert {h for _, h in refreshed.metric_partitions} == {sim.handle}  # one account here
    assert metrics_key.to_user_string() in refreshed.materialized
    assert {k.to_user_string() for k in mine} <= set(refreshed.materialized)
    checks = refreshed.checks
    for name in (
        "metrics_are_fresh",
        "no_duplicate_post_ids",
        "engagement_never_above_impressions",
        "store_and_warehouse_counts_match",
    ):
        assert checks.get(name) is True, (name, checks)

    expected = _expected_outcomes(store, sim.timezone)
    assert len(expected) == 30

    # The dbt models' materialisations carry their columns with types, and tables their rows.
    event = instance.get_latest_materialization_event(dg.AssetKey("fct_post_outcomes"))
    assert event is not None and event.asset_materialization is not None
    meta = event.asset_materialization.metadata
    assert meta["dagster/row_count"].value == 30
    schema = meta["dagster/column_schema"]
    assert isinstance(schema, dg.TableSchemaMetadataValue)
    columns = {c.name: c.type for c in schema.schema.columns}
    assert columns["post_id"] and columns["reward"].upper() in {"DOUBLE", "FLOAT"}
    stg_posts = instance.get_latest_materialization_event(dg.AssetKey("stg_posts"))
    assert stg_posts is not None and stg_posts.asset_materialization is not None
    assert "dagster/column_schema" in stg_posts.asset_materialization.metadata

    con = duckdb.connect(str(xbot_env.resolved_warehouse_path), read_only=True)
    try:
        outcomes = con.execute("select * from marts.fct_post_outcomes").df().set_index("post_id")
        recent = con.execute("select * from views.vw_recent_posts").df()
        topics = con.execute("select * from views.vw_topics_perf_7d").df().set_index("topic")
        hours = con.execute("select * from views.vw_time_of_day_perf_7d").df()
        learning = con.execute("select * from views.vw_learning_performance").df()
        bandit = con.execute("select * from views.vw_bandit_performance").df().set_index("arm")
        sources = con.execute("select * from views.vw_content_sources_perf").df()
    finally:
        con.close()

    # fct_post_outcomes: one row per post, reward equal to the Python definition.
    assert sorted(outcomes.index) == sorted(expected.index)
    np.testing.assert_allclose(
        outcomes.loc[expected.index, "reward"], expected.reward, rtol=1e-9, atol=1e-12
    )
    assert (outcomes.loc[expected.index, "impressions"] == expected.impressions).all()

    # vw_recent_posts: newest first, same rewards.
    assert list(recent.post_id) == list(expected.sort_values("posted_at", ascending=False).index)
    np.testing.assert_allclose(
        recent.reward, expected.loc[recent.post_id, "reward"].round(6), atol=1e-6
    )

    # vw_topics_perf_7d: measured posts of the 7 days up to the newest post.
    window = expected[expected.posted_at > expected.posted_at.max() - pd.Timedelta(days=7)]
    by_topic = window.groupby("topic").agg(
        n_posts=("reward", "size"),
        impressions=("impressions", "sum"),
        engagements=("engagements", "sum"),
        mean_reward=("reward", "mean"),
    )
    assert sorted(topics.index) == sorted(by_topic.index)
    for topic, row in by_topic.iterrows():
        assert topics.loc[topic, "n_posts"] == row.n_posts
        assert topics.loc[topic, "impressions"] == row.impressions
        assert topics.loc[topic, "engagements"] == row.engagements
        assert topics.loc[topic, "mean_reward"] == pytest.approx(row.mean_reward, abs=1e-6)

    # vw_time_of_day_perf_7d: by local hour.
    by_hour = window.groupby("hour_local").agg(
        n_posts=("reward", "size"), mean_reward=("reward", "mean")
    )
    got_hours = hours.set_index("hour_local")
    assert sorted(got_hours.index) == sorted(by_hour.index)
    for hour, row in by_hour.iterrows():
        assert got_hours.loc[hour, "n_posts"] == row.n_posts
        assert got_hours.loc[hour, "mean_reward"] == pytest.approx(row.mean_reward, abs=1e-6)

    # vw_bandit_performance: plays, share, mean reward and gap to the best arm.
    by_arm = expected.groupby("arm").agg(n_posts=("reward", "size"), mean_reward=("reward", "mean"))
    best = by_arm.mean_reward.max()
    assert sorted(bandit.index) == sorted(by_arm.index)
    for arm, row in by_arm.iterrows():
        assert bandit.loc[arm, "n_posts"] == row.n_posts
        assert bandit.loc[arm, "play_share"] == pytest.approx(row.n_posts / 30, abs=1e-4)
        assert bandit.loc[arm, "mean_reward"] == pytest.approx(row.mean_reward, abs=1e-6)
        assert bandit.loc[arm, "gap_to_best"] == pytest.approx(best - row.mean_reward, abs=2e-6)

    # vw_content_sources_perf: by generator.
    by_source = expected.groupby("generator").agg(
        n_posts=("reward", "size"), mean_reward=("reward", "mean")
    )
    got_sources = sources.set_index("content_source")
    assert sorted(got_sources.index) == sorted(by_source.index) == ["offline", "openai"]
    for source, row in by_source.iterrows():
        assert got_sources.loc[source, "n_posts"] == row.n_posts
        assert got_sources.loc[source, "mean_reward"] == pytest.approx(row.mean_reward, abs=1e-6)

    # vw_learning_performance: per local day, posts and mean reward.
    by_day = expected.groupby("day_local").agg(
        n_posts=("reward", "size"), mean_reward=("reward", "mean")
    )
    got_days = learning.set_index(learning.day.map(lambda d: pd.Timestamp(d).date()))
    assert sorted(got_days.index) == sorted(by_day.index)
    for day, row in by_day.iterrows():
        assert got_days.loc[day, "n_posts"] == row.n_posts
        assert got_days.loc[day, "mean_reward"] == pytest.approx(row.mean_reward, abs=1e-6)

    # daily_summaries landed in the durable store, one per account and UTC day.
    utc_days = expected.posted_at.dt.date.value_counts()
    for day, n in utc_days.items():
        summary = store.get_daily_summary(day, f"{SUMMARY_TYPE_PREFIX}{sim.handle}")
        assert summary is not None, day
        assert summary.metrics["n_posts"] == n
