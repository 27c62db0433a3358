"""The dbt models as Dagster assets: one asset per model and seed, built with `dbt build`.

The target follows APP_ENV and the DuckDB file follows ``settings.resolved_warehouse_path``; both
are read from the ``xbot_settings`` resource when a run starts, never at import.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from xbot_assets.defs.resources import XbotSettings
from xbot_assets.warehouse.dbt_env import dbt_environment
from xbot_assets.warehouse.project import DBT_EXECUTABLE, dbt_project


class XbotDbtTranslator(DagsterDbtTranslator):
    """Keys models and seeds by their bare name (``fct_post_outcomes``), as the rest of xbot
    refers to them; sources map to the extraction assets via their ``meta.dagster.asset_key``.
    Every dbt node sits in the ``warehouse`` group."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot"):
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        # Eager, except that a missing day of the partitioned `tweet_metrics` (every day since
        # the partitions start that had no snapshots) must not block the rebuild forever.
        return dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "warehouse"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=XbotDbtTranslator(),
)
def xbot_dbt_models(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings
) -> Iterator[Any]:
    """Staging views and mart tables of the warehouse, with their dbt data and unit tests."""
    settings = xbot_settings.get()
    with dbt_environment(settings.app_env, settings.resolved_warehouse_path):
        dbt = DbtCliResource(
            project_dir=dbt_project, target=settings.app_env, dbt_executable=DBT_EXECUTABLE
        )
        yield from dbt.cli(["build"], context=context).stream()


defs = dg.Definitions(assets=[xbot_dbt_models])
