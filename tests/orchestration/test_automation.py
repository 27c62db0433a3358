"""Declarative automation: new metrics rebuild the dbt models, the views, the scorer and the
posteriors, without a person clicking (evaluated the way the automation sensor does)."""

from __future__ import annotations

import dagster as dg

from xbot_assets.runner import load_definitions


def _cascade(defs: dg.Definitions, instance: dg.DagsterInstance, cursor):
    """Evaluate, 'materialise' what was requested, repeat until quiet; the waves in order."""
    waves: list[set[str]] = []
    for _ in range(10):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        requested = {r.key.to_user_string() for r in result.results if r.true_subset.size > 0}
        if not requested:
            return waves, cursor
        waves.append(requested)
        for name in sorted(requested):
            instance.report_runless_asset_event(dg.AssetMaterialization(name))
    raise AssertionError(f"automation never settled: {waves}")


def _metrics_partition(day: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"day": day, "account": "xbot_sandbox"})


def test_new_metrics_rebuild_marts_views_scorer_and_posteriors_in_order() -> None:
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    with dg.instance_for_test() as instance:
        # tweet_metrics is partitioned by (day, account): one account here.
        instance.add_dynamic_partitions("accounts", ["xbot_sandbox"])
        # Everything exists once (a first full run), then automation settles.
        for key in graph.get_all_asset_keys():
            node = graph.get(key)
            if not node.is_materializable:
                continue
            if node.partitions_def is not None:
                partition = _metrics_partition("2026-01-05")
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(key, partition=partition)
                )
            else:
                instance.report_runless_asset_event(dg.AssetMaterialization(key))
        _, cursor = _cascade(defs, instance, None)

        # A new day of metrics lands.
        instance.report_runless_asset_event(
            dg.AssetMaterialization("tweet_metrics", partition=_metrics_partition("2026-01-06"))
        )
        waves, _ = _cascade(defs, instance, cursor)
    rebuilt = set().union(*waves) if waves else set()
    for name in (
        "stg_tweet_metrics",
        "fct_post_outcomes",
        "vw_bandit_performance",
        "daily_summaries",
        "engagement_scorer",
        "arm_posteriors",
        "learned_config",
    ):
        assert name in rebuilt, (name, waves)
    assert "raw_posts" not in rebuilt, "raw extraction runs on its own cron, not on metrics"
    # In order: nothing is requested before what it depends on (same wave = same run, which
    # Dagster executes in dependency order).
    wave_of = {name: i for i, wave in enumerate(waves) for name in wave}
    for child, parent in (
        ("fct_post_outcomes", "stg_tweet_metrics"),
        ("engagement_scorer", "fct_post_outcomes"),
        ("arm_posteriors", "fct_post_outcomes"),
        ("learned_config", "arm_posteriors"),
    ):
        assert wave_of[child] >= wave_of[parent], (child, parent, waves)
