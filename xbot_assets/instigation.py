"""What xbot needs from Dagster's internals, in one place: checked against Dagster 1.13.27.

The main job (``runner.py``) plays the daemon on a simulated clock. Dagster has no public API for
these things the daemon does, so they live here and nowhere else:

- evaluating a sensor or schedule tick the way the daemon does (``evaluate_tick``: it resolves
  run requests, validates partitions against the instance plus the tick's own dynamic partition
  additions, and fills in the job name and partition tags);
- recording that tick and the sensor's cursor in the instance (``InstigatorState``,
  ``TickData``), so the UI's Automation pages show what happened;
- listing a cron schedule's tick times (``cron_string_iterator``);
- storing the declarative automation's cursor in the format the daemon's
  ``default_automation_condition_sensor`` reads (so turning the daemon on later continues it);
- which sensors are turned on in the instance, and in which code location
  (``all_instigator_state``: the account sensors' guard against running in two locations).

Declarative automation itself is evaluated with the public
``dagster.evaluate_automation_conditions(..., evaluation_time=...)``.

``tests/orchestration/test_instigation.py`` fails when an upgrade changes any of them; fix this
module (and its pin in the docstring) then. Everything else in xbot uses the public API.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.asset_daemon import (
    asset_daemon_cursor_from_instigator_serialized_cursor,
    asset_daemon_cursor_to_instigator_serialized_cursor,
)
from dagster._utils.schedules import cron_string_iterator

AUTOMATION_SENSOR = "default_automation_condition_sensor"
"""The sensor Dagster creates for a code location whose assets have automation conditions."""

DAGSTER_VERSION = "1.13.27"
"""The Dagster version this module was checked against (``dagster.__version__`` must match)."""

REPOSITORY_NAME = "__repository__"
"""The repository name Dagster gives a code location's ``Definitions``."""

CODE_MODULE = "xbot_assets.definitions"
WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"


def location_name(workspace: Path = WORKSPACE) -> str:
    """The code location's name as ``dagster dev -w workspace.yaml`` (``make ui``) names it."""
    try:
        config = yaml.safe_load(workspace.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return CODE_MODULE
    for entry in config.get("load_from", []):
        module = entry.get("python_module")
        if isinstance(module, dict):
            return str(module.get("location_name") or module.get("module_name") or CODE_MODULE)
        if isinstance(module, str):
            return module
    return CODE_MODULE


def cron_ticks(cron: str, after: datetime, until: datetime) -> list[datetime]:
    """Cron times in ``(after, until]`` (UTC)."""
    out: list[datetime] = []
    for when in cron_string_iterator(after.timestamp(), cron, "UTC"):
        if when <= after:
            continue
        if when > until:
            break
        out.append(when.astimezone(UTC))
    return out


def next_cron_tick(cron: str, after: datetime) -> datetime:
    """The first cron time strictly after ``after`` (UTC)."""
    for when in cron_string_iterator(after.timestamp(), cron, "UTC"):
        if when > after:
            return when.astimezone(UTC)
    raise ValueError(f"cron {cron!r} has no tick after {after.isoformat()}")  # pragma: no cover


def evaluate_sensor_tick(sensor: dg.SensorDefinition, context: dg.SensorEvaluationContext) -> Any:
    """One sensor tick as the daemon evaluates it (run requests resolved and validated)."""
    return sensor.evaluate_tick(context)


def evaluate_schedule_tick(
    schedule: dg.ScheduleDefinition, context: dg.ScheduleEvaluationContext
) -> Any:
    """One schedule tick as the daemon evaluates it."""
    return schedule.evaluate_tick(context)


def running_sensors(instance: dg.DagsterInstance) -> set[tuple[str, str]]:
    """``(code location, sensor name)`` of every sensor turned on in the instance (in the UI,
    with ``dagster sensor start`` or by the deployment's plan): its stored state is RUNNING.
    One query, whatever the number of accounts; a sensor on only by its default status in code
    is not listed (every account sensor is stopped by default)."""
    states = instance.all_instigator_state(
        instigator_type=InstigatorType.SENSOR, instigator_statuses={InstigatorStatus.RUNNING}
    )
    return {
        (state.origin.repository_origin.code_location_origin.location_name, state.instigator_name)
        for state in states
    }


def automation_cursor_to_text(cursor: Any) -> str:
    """An ``AssetDaemonCursor`` as the automation sensor's stored cursor string."""
    return asset_daemon_cursor_to_instigator_serialized_cursor(cursor)


def automation_cursor_from_text(text: str | None, defs: dg.Definitions) -> Any:
    """The ``AssetDaemonCursor`` of a stored cursor string (None: a first evaluation)."""
    if text is None:
        return None
    return asset_daemon_cursor_from_instigator_serialized_cursor(text, defs.resolve_asset_graph())


class TickRecorder:
    """Records sensor and schedule ticks and sensor cursors in the instance, as the daemon does.

    The state is stored STOPPED (every xbot sensor and schedule is stopped by default, so a
    ``make ui`` daemon never starts posting on the wall clock), with the cursor and the last
    tick; each tick is a row the UI lists on the sensor's or schedule's page. Tick timestamps
    are wall-clock (when the evaluation ran, like the runs it launched); the simulated time is
    in the runs' tags and metadata.
    """

    def __init__(self, instance: dg.DagsterInstance, location: str | None = None) -> None:
        self.instance = instance
        self.location = location or location_name()
        self.code_origin = ManagedGrpcPythonEnvCodeLocationOrigin(
            loadable_target_origin=LoadableTargetOrigin(
                executable_path=sys.executable,
                module_name=CODE_MODULE,
                working_directory=str(WORKSPACE.parent),
            ),
            location_name=self.location,
        )
        self.repo_origin = RemoteRepositoryOrigin(self.code_origin, REPOSITORY_NAME)
        self._origins: dict[str, RemoteInstigatorOrigin] = {}
        self._origin_ids: dict[str, str] = {}
        self._selector_ids: dict[str, str] = {}
        self._states: dict[str, InstigatorState] = {}

    def origin(self, name: str) -> RemoteInstigatorOrigin:
        return RemoteInstigatorOrigin(self.repo_origin, name)

    def _origin(self, name: str) -> RemoteInstigatorOrigin:
        if name not in self._origins:
            self._origins[name] = self.origin(name)
        return self._origins[name]

    def _origin_id(self, name: str) -> str:
        if name not in self._origin_ids:
            self._origin_ids[name] = self._origin(name).get_id()
        return self._origin_ids[name]

    def _selector_id(self, name: str) -> str:
        if name not in self._selector_ids:
            self._selector_ids[name] = self.selector_id(name)
        return self._selector_ids[name]

    def selector_id(self, name: str) -> str:
        return InstigatorSelector(
            location_name=self.location, repository_name=REPOSITORY_NAME, name=name
        ).get_id()

    def state(self, name: str) -> InstigatorState | None:
        """The stored state of sensor or schedule ``name`` (None before its first tick)."""
        origin = self.origin(name)
        return self.instance.get_instigator_state(origin.get_id(), self.selector_id(name))

    def cursor(self, name: str) -> str | None:
        """The sensor's stored cursor (what the daemon would hand its next tick)."""
        state = self.state(name)
        data = state.instigator_data if state is not None else None
        return data.cursor if isinstance(data, SensorInstigatorData) else None

    def ticks(self, name: str, limit: int | None = None) -> Sequence[Any]:
        """The recorded ticks of ``name``, newest first."""
        return self.instance.get_ticks(
            self.origin(name).get_id(), self.selector_id(name), limit=limit
        )

    def record(
        self,
        name: str,
        kind: str,
        *,
        run_ids: Sequence[str],
        run_keys: Sequence[str],
        skip_reason: str | None,
        cursor: str | None = None,
        min_interval: int | None = None,
        cron: str = "",
        failure: str | None = None,
    ) -> None:
        """Store one finished tick of ``name`` (``kind``: ``sensor`` or ``schedule``).

        One write per tick (the tick row, already finished); the stored state (cursor) is
        written only when it changes, since a main job records thousands of ticks.
        """
        now = time.time()
        sensor = kind == "sensor"
        itype = InstigatorType.SENSOR if sensor else InstigatorType.SCHEDULE
        origin = self._origin(name)
        if failure is not None:
            status = TickStatus.FAILURE
        elif run_ids:
            status = TickStatus.SUCCESS
        else:
            status = TickStatus.SKIPPED
        self.instance.create_tick(
            TickData(
                instigator_origin_id=self._origin_id(name),
                instigator_name=name,
                instigator_type=itype,
                status=status,
                timestamp=now,
                run_ids=list(run_ids),
                run_keys=list(run_keys),
                skip_reason=(failure or skip_reason) if not run_ids else None,
                cursor=cursor if sensor else None,
                selector_id=self._selector_id(name),
                end_timestamp=now,
            )
        )
        state = self._states.get(name) or self.state(name)
        if state is not None and (not sensor or self._cursor_of(state) == cursor):
            self._states[name] = state
            return
        data: Any
        if sensor:
            data = SensorInstigatorData(
                last_tick_timestamp=now,
                last_run_key=run_keys[-1] if run_keys else None,
                min_interval=min_interval,
                cursor=cursor,
                last_tick_start_timestamp=now,
                last_tick_success_timestamp=now if failure is None else None,
            )
        else:
            data = ScheduleInstigatorData(cron_schedule=cron, last_iteration_timestamp=now)
        new_state = InstigatorState(origin, itype, InstigatorStatus.STOPPED, data)
        if state is None:
            self.instance.add_instigator_state(new_state)
        else:
            # A sensor a person started in the UI keeps its status; only its data moves on.
            new_state = (
                state.with_data(data) if state.status != InstigatorStatus.STOPPED else new_state
            )
            self.instance.update_instigator_state(new_state)
        self._states[name] = new_state

    @staticmethod
    def _cursor_of(state: InstigatorState) -> str | None:
        data = state.instigator_data
        return data.cursor if isinstance(data, SensorInstigatorData) else None
