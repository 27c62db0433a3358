"""The simulated time on every materialisation the main job makes.

`xbot run` plays a month of simulated time in minutes of wall clock, and Dagster stamps each
materialisation with the wall clock, so the UI's and an analyst's plots squeeze 30 days into a
quarter of an hour. The main job tags each run with the simulated moment it ran at
(:data:`SIMULATED_NOW_TAG`); the assets copy it onto what they materialise as
:data:`SIMULATED_TIME_KEY` metadata (a timestamp the UI shows as a date) and a
:data:`SIMULATED_DAY_TAG` tag, one per simulated day. ``lab.metadata_history`` plots over it.
A deployment's runs (the daemon's) carry no such tag: there the wall clock is the time, and
nothing is added.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

SIMULATED_NOW_TAG = "xbot/simulated_now"
"""Run tag: the simulated moment (ISO 8601, UTC) the main job launched the run at."""
SIMULATED_DAY_TAG = "xbot/simulated_day"
"""Run and materialisation tag: the simulated UTC day (``YYYY-MM-DD``)."""
SIMULATED_TIME_KEY = "xbot/simulated_time"
"""Materialisation metadata: the simulated moment, as a timestamp."""


def rehearsal_speed() -> float:
    """The deployment's CLOCK_SPEED (1 when unset or unreadable; ``Settings`` validates it and
    refuses it in production when a run or sensor loads the settings)."""
    try:
        speed = float(os.environ.get("CLOCK_SPEED") or 1)
    except ValueError:
        return 1.0
    return speed if speed > 1 else 1.0


def simulated_now(context: Any) -> datetime | None:
    """The simulated moment of the run ``context`` belongs to; None outside the main job."""
    value = context.run.tags.get(SIMULATED_NOW_TAG)
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(context: Any) -> dict[str, str]:
    """Add the simulated time to every asset this step may materialise and return the day's
    tag (empty outside the main job)."""
    now = simulated_now(context)
    if now is None:
        return {}
    value = dg.MetadataValue.timestamp(now)
    for key in context.selected_asset_keys:
        context.add_asset_metadata({SIMULATED_TIME_KEY: value}, asset_key=key)
    return {SIMULATED_DAY_TAG: now.date().isoformat()}


def simulated(result: dg.MaterializeResult) -> dg.MaterializeResult:
    """``result`` with the run's simulated time and day (unchanged outside the main job)."""
    tags = _stamp(dg.AssetExecutionContext.get())
    if not tags:
        return result
    return result._replace(tags={**(result.tags or {}), **tags})


def simulated_events(events: Iterator[Any]) -> Iterator[Any]:
    """A multi-asset's events (dbt's stream) with the simulated day on each output's tags and
    the simulated time in its metadata."""
    context = dg.AssetExecutionContext.get()
    tags = _stamp(context)
    now = simulated_now(context)
    for event in events:
        if tags and isinstance(event, dg.Output):
            event = dg.Output(
                event.value,
                output_name=event.output_name,
                metadata=event.metadata,
                data_version=event.data_version,
                tags={**(event.tags or {}), **tags},
            )
        elif now is not None and isinstance(event, dg.AssetMaterialization):
            event = dg.AssetMaterialization(
                asset_key=event.asset_key,
                description=event.description,
                metadata={**event.metadata, SIMULATED_TIME_KEY: dg.MetadataValue.timestamp(now)},
                partition=event.partition,
                tags={**(event.tags or {}), **tags},
            )
        yield event
