"""The dbt models as Dagster assets: one asset per model and seed, built with `dbt build`.

The target follows APP_ENV and the DuckDB file follows ``settings.resolved_warehouse_path``; both
are read from the ``xbot_settings`` resource when a run starts, never at import.
"""

import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from functools import cache, cached_property
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from packaging import version

from xbot_assets.defs.resources import OWNERS, XbotSettings
from xbot_assets.defs.simtime import simulated_events
from xbot_assets.warehouse.dbt_env import dbt_environment, release_duckdb_adapter
from xbot_assets.warehouse.project import DBT_EXECUTABLE, dbt_project


@cache
def dbt_version(executable: str) -> version.Version:
    """``dbt --version`` of one executable, asked once per process (each call pays dbt's ~5 s
    import)."""
    out = subprocess.check_output([executable, "--version"], text=True)  # noqa: S603
    match = re.search(r"(\d+\.\d+\.\d+)", out)
    if not match:
        raise RuntimeError(f"cannot read dbt's version from `{executable} --version`: {out[:200]}")
    return version.parse(match.group(1))


class XbotDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt resource, asking the dbt version once per process instead of once per
    run: Dagster copies a resource for every run, and the stock one caches the version (its
    private ``_cli_version``, checked against dagster-dbt 0.29.27) on each copy."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return dbt_version(self.dbt_executable)


class XbotDbtTranslator(DagsterDbtTranslator):
    """Keys models and seeds by their bare name (``fct_post_outcomes``), as the rest of xbot
    refers to them; sources map to the extraction assets via their ``meta.dagster.asset_key``.
    Every dbt node sits in the ``warehouse`` group, described by its `.yml` description."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props.get("resource_type") in ("model", "seed", "snapshot"):
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        # The default puts the raw SQL under a "#### Raw SQL" heading, which the catalog then
        # shows as the model's summary; the yml description is what an analyst needs.
        described = " ".join(str(dbt_resource_props.get("description") or "").split())
        kind = dbt_resource_props.get("resource_type", "model")
        return described or f"dbt {kind} {dbt_resource_props['name']} (no description in its yml)"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        return list(OWNERS)

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
    context: dg.AssetExecutionContext, dbt: XbotDbtCliResource, xbot_settings: XbotSettings
) -> Iterator[Any]:
    """Staging views and mart tables of the warehouse, with their dbt data and unit tests.

    Each materialisation carries the model's columns with their types and, for tables, its row
    count, read back through dbt's DuckDB adapter after the model is built.
    """
    settings = xbot_settings.get()
    with dbt_environment(settings.app_env, settings.resolved_warehouse_path):
        invocation = dbt.cli(["build", "--target", settings.app_env], context=context)
        try:
            yield from simulated_events(
                invocation.stream()
                .fetch_row_counts()
                .fetch_column_metadata(with_column_lineage=False)
            )
        finally:
            release_duckdb_adapter(invocation.adapter)


defs = dg.Definitions(
    assets=[xbot_dbt_models],
    resources={
        # project_dir takes the DbtProject itself (dagster-dbt converts it; typed as str).
        "dbt": XbotDbtCliResource(
            project_dir=dbt_project,  # type: ignore[arg-type]
            dbt_executable=DBT_EXECUTABLE,
        )
    },
)
