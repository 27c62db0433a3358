"""Runs the project's main job through the real Dagster definitions, outside the UI.

`make run` calls :func:`run_main` (through `xbot run`), against the instance in DAGSTER_HOME, so
every run and materialisation it makes shows up afterwards in `make ui`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from xbot_assets.config import Settings, ensure_dagster_home


@dataclass(frozen=True)
class MainRunResult:
    """What the main job did, for the summary printed at the end."""

    run_ids: list[str]
    materialized: list[str]
    warehouse_path: str


def load_definitions() -> dg.Definitions:
    """The code location's definitions, exactly as `dagster dev` loads them."""
    from xbot_assets.definitions import defs

    return defs()


def run_main(settings: Settings) -> MainRunResult:
    """Materialise every unpartitioned asset of the code location into the local warehouse."""
    ensure_dagster_home()
    defs = load_definitions()
    instance = dg.DagsterInstance.get()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=True)
    materialized = sorted(
        event.asset_key.to_user_string()
        for event in result.all_events
        if event.is_step_materialization and event.asset_key is not None
    )
    return MainRunResult(
        run_ids=[result.run_id],
        materialized=materialized,
        warehouse_path=str(settings.resolved_warehouse_path),
    )
