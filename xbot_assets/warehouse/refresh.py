"""Materialising the warehouse outside a daemon (``xbot run``, tests): every metrics day, then
every unpartitioned asset.

``tweet_metrics`` is partitioned by day, so a plain run of the global asset job cannot include
it; this loads each day that has snapshots in the store first, then runs the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg

from xbot_assets.warehouse.load import metric_days_in_store, open_store

if TYPE_CHECKING:
    from xbot_assets.config import Settings

METRICS_KEY = dg.AssetKey("tweet_metrics")


@dataclass
class RefreshResult:
    """What the refresh ran and how the checks came out."""

    run_ids: list[str] = field(default_factory=list)
    metric_days: list[str] = field(default_factory=list)
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
    """Load every metrics day of the store, then materialise every unpartitioned asset.

    Args:
        definitions: the code location's definitions.
        instance: where runs are recorded (``DagsterInstance.get()`` for ``make ui`` to show them).
        settings: the settings the assets will read (to find the store's metrics days).
        only_groups: restrict the unpartitioned part to these asset groups (tests).
    """
    result = RefreshResult()
    graph = definitions.resolve_asset_graph()
    job = definitions.resolve_implicit_global_asset_job_def()
    store = open_store(settings)
    days = []
    if store is not None:
        try:
            days = [d.isoformat() for d in metric_days_in_store(store)]
        finally:
            store.engine.dispose()
    if METRICS_KEY in graph.get_all_asset_keys():
        for day in days:
            run = job.execute_in_process(
                instance=instance, partition_key=day, asset_selection=[METRICS_KEY]
            )
            _record(result, run)
            result.metric_days.append(day)
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
