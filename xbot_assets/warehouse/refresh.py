"""Materialising the warehouse outside a daemon (``xbot run``, tests): every metrics
(day, account) partition, then every unpartitioned asset.

``tweet_metrics`` is partitioned by (day, account), so a plain run of the global asset job
cannot include it; this loads each (day, account) that has snapshots in the store first, then
runs the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg

from xbot_assets.warehouse.load import metric_partitions_in_store, open_store

if TYPE_CHECKING:
    from xbot_assets.config import Settings

METRICS_KEY = dg.AssetKey("tweet_metrics")
ACCOUNTS_PARTITIONS = "accounts"
"""The dynamic partitions of account handles (``accounts_partitions`` in defs/orchestration)."""


@dataclass
class RefreshResult:
    """What the refresh ran and how the checks came out."""

    run_ids: list[str] = field(default_factory=list)
    metric_days: list[str] = field(default_factory=list)
    """The days loaded (for any account), oldest first."""
    metric_partitions: list[tuple[str, str]] = field(default_factory=list)
    """The (day, account handle) partitions of tweet_metrics loaded, in order."""
    materialized: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)


def _record(result: RefreshResult, run: dg.ExecuteInProcessResult) -> None:
    result.run_ids.append(run.run_id)
    for event in run.all_events:
        if event.is_step_materialization and event.asset_key is not None:
            result.materialized.append(event.asset_key.to_user_string())
    for evaluation in run.get_asset_check_evaluations():
        name = evaluation.check_name
        result.checks[name] = result.checks.get(name, True) and evaluation.passed


def refresh_all(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    *,
    only_groups: Iterable[str] | None = None,
) -> RefreshResult:
    """Load every metrics (day, account) of the store, then materialise every unpartitioned
    asset.

    Args:
        definitions: the code location's definitions.
        instance: where runs are recorded (``DagsterInstance.get()`` for ``make ui`` to show them);
            the account partitions the store needs are added to it if missing.
        settings: the settings the assets will read (to find the store's metrics partitions).
        only_groups: restrict the unpartitioned part to these asset groups (tests).
    """
    result = RefreshResult()
    graph = definitions.resolve_asset_graph()
    job = definitions.resolve_implicit_global_asset_job_def()
    store = open_store(settings)
    partitions: list[tuple[str, str]] = []
    if store is not None:
        try:
            partitions = [(d.isoformat(), h) for d, h in metric_partitions_in_store(store)]
        finally:
            store.engine.dispose()
    if METRICS_KEY in graph.get_all_asset_keys() and partitions:
        known = set(instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS))
        missing = sorted({handle for _, handle in partitions} - known)
        if missing:
            instance.add_dynamic_partitions(ACCOUNTS_PARTITIONS, missing)
        for day, handle in partitions:
            key = dg.MultiPartitionKey({"day": day, "account": handle})
            run = job.execute_in_process(
                instance=instance, partition_key=key, asset_selection=[METRICS_KEY]
            )
            _record(result, run)
            result.metric_partitions.append((day, handle))
        result.metric_days = sorted({day for day, _ in result.metric_partitions})
    groups = set(only_groups) if only_groups is not None else None
    keys = sorted(
        key
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
        and not graph.get(key).is_partitioned
        and (groups is None or graph.get(key).group_name in groups)
    )
    if keys:
        _record(result, job.execute_in_process(instance=instance, asset_selection=keys))
    return result
