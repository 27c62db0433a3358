"""The main job: the whole loop through the real Dagster definitions, on the simulated clock.

``xbot run [--days 30] [--scenario default] [--seed N]`` (``make run``) steps a simulated clock
one hour at a time over the sandbox X. At each tick it evaluates the project's real sensors
(``build_sensor_context``) and, at their cron times, its real schedules, then executes every run
they request in process against the DAGSTER_HOME instance, honouring run-key de-duplication the
way the daemon does (a request whose ``run_key`` already launched from the same sensor is
dropped). So the posts, metrics, dbt models, views, scorer and posteriors it leaves behind are
what `make ui` shows. At the end it compares the bot's reward with a uniformly random policy
replayed in a fresh sandbox of the same scenario and seed, and writes an HTML report.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from xbot_assets.config import Settings, ensure_dagster_home

if TYPE_CHECKING:
    from dagster._core.definitions.sensor_definition import SensorExecutionData

TICK = timedelta(hours=1)
ENGINE_JOBS = {
    "refill_candidates_job",
    "post_job",
    "collect_account_metrics_job",
    "reconcile_job",
}
SENSOR_ORDER = (
    "accounts_sensor",
    "reconcile_sensor",
    "posting_sensor",
    "candidate_refill_sensor",
    "learning_rebuild_sensor",
    "sync_to_supabase_sensor",
)
SCHEDULE_ORDER = ("collect_account_metrics_schedule", "daily_summaries_schedule")
RUN_KEY_TAG = "dagster/run_key"
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"


@dataclass
class MainRunResult:
    """What the main job did, for the summary printed at the end."""

    run_ids: list[str]
    materialized: list[str]
    warehouse_path: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    runs_by_job: dict[str, int] = field(default_factory=dict)
    failed_runs: list[str] = field(default_factory=list)
    deduplicated: int = 0
    seconds: float = 0.0
    run_seconds: float = 0.0
    seconds_by_job: dict[str, float] = field(default_factory=dict)
    ticks: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    report_path: str | None = None


def load_definitions() -> dg.Definitions:
    """The code location's definitions, exactly as `dagster dev` loads them."""
    from xbot_assets.definitions import defs

    return defs()


def cron_ticks(cron: str, after: datetime, until: datetime) -> list[datetime]:
    """Cron times in ``(after, until]`` (UTC)."""
    from dagster._utils.schedules import cron_string_iterator

    out: list[datetime] = []
    for when in cron_string_iterator(after.timestamp(), cron, "UTC"):
        if when <= after:
            continue
        if when > until:
            break
        out.append(when.astimezone(UTC))
    return out


class Launcher:
    """Executes run requests in process, de-duplicating by run key like the daemon."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs = defs
        self.instance = instance
        self.result = MainRunResult(run_ids=[], materialized=[], warehouse_path="")
        self.materialized: set[str] = set()
        self.by_job: Counter[str] = Counter()
        self.seconds_by_job: dict[str, float] = {}
        self.repository = defs.get_repository_def()
        self.log_level = "WARNING"

    def already_launched(self, origin_tag: str, origin: str, run_key: str) -> bool:
        runs = self.instance.get_runs(
            filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key, origin_tag: origin}), limit=1
        )
        return bool(runs)

    def launch(
        self,
        request: dg.RunRequest,
        *,
        default_job: str | None,
        origin_tag: str,
        origin: str,
        now: datetime,
    ) -> str | None:
        if request.run_key and self.already_launched(origin_tag, origin, request.run_key):
            self.result.deduplicated += 1
            return None
        job_name = request.job_name or default_job
        if job_name is None:
            raise RuntimeError(f"{origin} requested a run without a job")
        job = self.defs.resolve_job_def(job_name)
        run_config = dict(request.run_config or {})
        run_config["loggers"] = {"console": {"config": {"log_level": self.log_level}}}
        if job_name in ENGINE_JOBS:
            run_config["resources"] = {
                "xbot_runtime": {"config": {"simulated_now": now.isoformat()}}
            }
        tags = {**request.tags, origin_tag: origin, "xbot/simulated_now": now.isoformat()}
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # dbt's own lines; the runs keep them
            outcome = job.execute_in_process(
                run_config=run_config,
                instance=self.instance,
                partition_key=request.partition_key,
                tags=tags,
                raise_on_error=False,
            )
        took = time.perf_counter() - started
        self.result.run_seconds += took
        self.seconds_by_job[job_name] = self.seconds_by_job.get(job_name, 0.0) + took
        self.result.run_ids.append(outcome.run_id)
        self.by_job[job_name] += 1
        if not outcome.success:
            self.result.failed_runs.append(f"{job_name} {outcome.run_id} ({request.run_key})")
        for event in outcome.all_events:
            if event.is_step_materialization and event.asset_key is not None:
                self.materialized.add(event.asset_key.to_user_string())
        return outcome.run_id


def _resources(now: datetime) -> dict[str, Any]:
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings

    return {
        "xbot_settings": XbotSettings(),
        "xbot_runtime": XbotRuntime(simulated_now=now.isoformat()),
    }


def evaluate_sensor(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    name: str,
    cursor: str | None,
    resources: dict[str, Any],
) -> SensorExecutionData:
    """One tick of sensor ``name`` as the daemon evaluates it.

    The context gets the instance's ref when it has one (a DAGSTER_HOME instance does; an
    ephemeral one does not): only then does Dagster validate the tick's partitioned run requests
    against the instance's dynamic partitions *plus the sensor's own additions* in the same
    SensorResult, so a sensor may add an account partition and request a run for it at once.
    """
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(
        instance=instance,
        instance_ref=None if instance.is_ephemeral else instance.get_ref(),
        cursor=cursor,
        sensor_name=name,
        resources=resources,
        definitions=defs,
    )
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(context)


def tick(
    launcher: Launcher,
    cursors: dict[str, str | None],
    now: datetime,
    previous: datetime,
) -> None:
    """One simulated tick: every sensor once, the schedules due since the last tick, and the
    runs they asked for, in that order."""
    defs, instance = launcher.defs, launcher.instance
    for name in SENSOR_ORDER:
        sensor = defs.resolve_sensor_def(name)
        data = evaluate_sensor(defs, instance, name, cursors.get(name), _resources(now))
        for partitions_request in data.dynamic_partitions_requests or []:
            if isinstance(partitions_request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(
                    partitions_request.partitions_def_name,
                    list(partitions_request.partition_keys),
                )
        cursors[name] = data.cursor if data.cursor is not None else cursors.get(name)
        default_job = sensor.job_name if len(sensor.targets) == 1 else None
        for request in data.run_requests or []:
            launcher.launch(
                request, default_job=default_job, origin_tag=SENSOR_TAG, origin=name, now=now
            )
    for name in SCHEDULE_ORDER:
        schedule = defs.resolve_schedule_def(name)
        for when in cron_ticks(schedule.cron_schedule, previous, now):  # type: ignore[arg-type]
            # A schedule context opens its own DagsterInstance from the ref; only `with` closes
            # it (and restores Dagster's current defs-state storage) before the next tick.
            with (
                dg.build_schedule_context(
                    instance=instance,
                    scheduled_execution_time=when,
                    resources=_resources(when),
                    repository_def=launcher.repository,
                ) as schedule_context,
                dg.partition_loading_context(dynamic_partitions_store=instance),
            ):
                scheduled = schedule.evaluate_tick(schedule_context)
            for request in scheduled.run_requests or []:
                launcher.launch(
                    request,
                    default_job=schedule.job_name,
                    origin_tag=SCHEDULE_TAG,
                    origin=name,
                    now=now,
                )


def _prepare_environment(settings: Settings, scenario: str | None, seed: int | None) -> Settings:
    """Make the scenario and seed the process settings, so every run reads the same ones."""
    updates: dict[str, Any] = {}
    if scenario is not None:
        os.environ["SANDBOX_SCENARIO"] = scenario
        updates["sandbox_scenario"] = scenario
    if seed is not None:
        os.environ["SANDBOX_SEED"] = str(seed)
        updates["sandbox_seed"] = seed
    return settings.model_copy(update=updates) if updates else settings


def run_main(
    settings: Settings,
    *,
    days: float = 30,
    scenario: str | None = None,
    seed: int | None = None,
    posts_per_day: int = 4,
    rebuild_every_hours: int = 48,
    progress: bool = True,
    report_dir: Path | None = None,
    on_tick: Callable[[datetime], None] | None = None,
) -> MainRunResult:
    """Run the loop for ``days`` simulated days and return what it did.

    Args:
        settings: the process settings (APP_ENV=local: the sandbox, SQLite, DuckDB).
        days: simulated days to run.
        scenario, seed: the sandbox scenario and audience seed (default: the settings').
        posts_per_day: the schedule's posts per day (written to bot_config ``schedule``).
        rebuild_every_hours: simulated hours between warehouse + learning rebuilds.
        progress: show a tqdm bar with the day and the running reward.
        report_dir: where the HTML report goes (default ``XBOT_HOME/reports``).
        on_tick: called after every tick (tests).
    """
    from tqdm import tqdm

    from xbot_assets.defs.sensors import REBUILD_CONFIG_KEY
    from xbot_assets.engine.planner import SCHEDULE_CONFIG_KEY
    from xbot_assets.engine.runtime import shared_sandbox
    from xbot_assets.report import bot_rewards, summarise, write_report
    from xbot_assets.store.durable import DurableStore

    if settings.resolved_poster != "sandbox":
        raise RuntimeError(
            "the main job runs against the sandbox on a simulated clock: use APP_ENV=local "
            "(POSTER=sandbox); a deployment runs the daemon instead (README: staging/production)"
        )
    settings = _prepare_environment(settings, scenario, seed)
    wall = time.perf_counter()
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    defs = load_definitions()
    store = DurableStore.from_settings(settings)
    sandbox = shared_sandbox(settings)
    configured_at = sandbox.clock.now()  # the simulated clock, like every other write of the run
    schedule = dict(store.get_config(SCHEDULE_CONFIG_KEY, {}) or {})
    if schedule.get("posts_per_day") != posts_per_day:
        schedule["posts_per_day"] = posts_per_day
        store.set_config(
            SCHEDULE_CONFIG_KEY, schedule, actor="xbot run", reason="main job", now=configured_at
        )
    if store.get_config(REBUILD_CONFIG_KEY) != rebuild_every_hours:
        store.set_config(
            REBUILD_CONFIG_KEY,
            rebuild_every_hours,
            actor="xbot run",
            reason="main job",
            now=configured_at,
        )
    start = sandbox.clock.now().replace(minute=0, second=0, microsecond=0) + TICK
    end = start + timedelta(days=days)
    launcher = Launcher(defs, instance)
    cursors: dict[str, str | None] = {}
    previous = start - TICK
    now = start
    total_ticks = int((end - start) / TICK)
    bar = tqdm(total=total_ticks + 1, disable=not progress, unit="h", dynamic_ncols=True)
    try:
        while now <= end:
            tick(launcher, cursors, now, previous)
            previous, now = now, now + TICK
            bar.update(1)
            if on_tick is not None:
                on_tick(previous)
            if progress and previous.hour == 0:
                rewards = bot_rewards(store, since=start)
                mean = sum(r.reward for r in rewards) / len(rewards) if rewards else 0.0
                day = (previous - start) / timedelta(days=1)
                bar.set_description(f"day {day:4.1f}/{days:g}")
                bar.set_postfix(posts=len(rewards), reward=f"{mean:.4f}")
    finally:
        bar.close()
    result = launcher.result
    result.materialized = sorted(launcher.materialized)
    result.runs_by_job = dict(launcher.by_job)
    result.seconds_by_job = {k: round(v, 2) for k, v in launcher.seconds_by_job.items()}
    result.ticks = total_ticks + 1
    result.warehouse_path = str(settings.resolved_warehouse_path)
    result.started_at, result.ended_at = start, previous
    result.summary = summarise(settings, store, since=start, until=previous)
    result.seconds = time.perf_counter() - wall
    folder = report_dir or settings.xbot_home / "reports"
    result.report_path = str(write_report(result, folder))
    store.close()
    return result
