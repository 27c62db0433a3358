"""The main job: the whole loop through the real Dagster definitions, on the simulated clock.

``xbot run [--days 30] [--scenario default] [--seed N]`` (``make run``) plays the Dagster daemon on
the sandbox's simulated clock. Instead of stepping whole hours it jumps to the next moment at
which a sensor or schedule could act, as the daemon's 30-second ticks would find it: a queued
post's slot (so a post goes out at its slot's minute), a post stuck past the reconcile grace, a
refill's hourly throttle ending while the queue is low, the rebuild interval ending, a schedule's
cron tick, and the end of the run. At each such moment it evaluates the project's real sensors
and due schedules the way the daemon does, records every tick and sensor cursor in the
DAGSTER_HOME instance (so the UI's Automation pages show them), and executes every run they
request in process, honouring run-key de-duplication. So the posts, metrics, dbt models, views,
scorer and posteriors it leaves behind are what `make ui` shows. At the end it scores the
bot's posts with the sandbox's truth against a random policy replayed at the same times, and
writes an HTML report. A second run continues at the exact simulated time the first stopped.

Why one file of about 690 lines: it stands in for the Dagster daemon, and the order of what the
daemon does at a moment (launch the runs sensors and schedules asked for, honour run keys, record
ticks and cursors, then jump to the next moment) is the thing to read and check, so it stays in one
place. The logic the runs execute lives in the layers. The natural split, if it grows: the daemon
stand-in (``Launcher``, ``Ticker``, ``next_event``) apart from the run loop (``run_main``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from xbot_assets.config import Settings, ensure_dagster_home
from xbot_assets.defs.simtime import SIMULATED_DAY_TAG, SIMULATED_NOW_TAG
from xbot_assets.instigation import (
    AUTOMATION_SENSOR,
    TickRecorder,
    automation_cursor_from_text,
    automation_cursor_to_text,
    cron_ticks,
    evaluate_schedule_tick,
    evaluate_sensor_tick,
    next_cron_tick,
)
from xbot_assets.timeline import (
    SANDBOX_KEY,
    UNTIL_KEY,
    check_instance_follows_store,
    check_store_follows_sandbox,
    one_main_job,
    sandbox_of,
)

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
STORE_FED_ASSETS = ("factored_posteriors",)
"""Assets fed straight from the durable store, whose own cron condition the main job evaluates
at each of their ticks. The daemon evaluates every condition every 30 s; the main job evaluates
the warehouse chain only after new metrics load (its raw extraction's 30-minute cron would
otherwise rebuild dbt at every stop), but the policy's posterior must refit every few hours, as
in a deployment and in ``benchmarks/loop.py``, or the loop learns only at each 48 h rebuild."""
STORE_FED_CRON = "0 */4 * * *"
"""Cron of :data:`STORE_FED_ASSETS` (``defs.learning.FACTORED_CRON``; a test keeps them equal)."""
RUN_KEY_TAG = "dagster/run_key"
SENSOR_TAG = "dagster/sensor_name"
SCHEDULE_TAG = "dagster/schedule_name"
REFILL_THROTTLE = timedelta(hours=1)
"""``candidate_refill_sensor`` refills an account at most once an hour."""
FOLLOW_UP = timedelta(minutes=2)
"""A new model landed: the refill sensor's next tick (its minimum interval) re-plans."""
OWNERS_BETA = r"Parameter `owners` of initializer `SensorDefinition.__init__` is currently in beta"
SOURCES_BETA = r"Parameter `include_sources` of function `AssetSelection.all` is currently in beta"


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


def quiet_dagster_warnings() -> None:
    """Dagster 1.13 warns that ``owners`` is beta each time it copies a sensor (it passes an
    empty owners list itself when a repository resolves the sensors' jobs), and that
    ``include_sources`` is beta each time ``evaluate_automation_conditions`` selects all assets
    itself; xbot passes neither, so these warnings say nothing here."""
    from xbot_assets.definitions import silence_known_beta_warnings

    silence_known_beta_warnings()
    warnings.filterwarnings("ignore", message=OWNERS_BETA, category=dg.BetaWarning)
    warnings.filterwarnings("ignore", message=SOURCES_BETA, category=dg.BetaWarning)


def load_definitions() -> dg.Definitions:
    """The code location's definitions, exactly as `dagster dev` loads them."""
    from xbot_assets.definitions import defs

    quiet_dagster_warnings()
    return defs()


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
        self.log_level = "ERROR"
        self.models_landed = False

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
        """Execute one request at simulated time ``now``; None when its run key already ran."""
        if request.run_key and self.already_launched(origin_tag, origin, request.run_key):
            self.result.deduplicated += 1
            return None
        job_name = request.job_name or default_job
        if job_name is None:
            raise RuntimeError(f"{origin} requested a run without a job")
        job = self.defs.resolve_job_def(job_name)
        run_config = dict(request.run_config or {})
        run_config["loggers"] = {"console": {"config": {"log_level": self.log_level}}}
        # Every run that reads the runtime's clock acts at simulated ``now``: the engine's jobs,
        # and the asset runs that automation launches (``factored_posteriors`` fits on post ages;
        # on the wall clock every post looked months old and the posterior stayed the prior).
        if job_name in ENGINE_JOBS or "xbot_runtime" in job.resource_defs:
            run_config["resources"] = {
                "xbot_runtime": {"config": {"simulated_now": now.isoformat()}}
            }
        tags = {
            **request.tags,
            origin_tag: origin,
            SIMULATED_NOW_TAG: now.isoformat(),
            SIMULATED_DAY_TAG: now.date().isoformat(),
        }
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        started = time.perf_counter()
        selection = list(request.asset_selection) if request.asset_selection else None
        with contextlib.redirect_stdout(io.StringIO()):  # dbt's own lines; the runs keep them
            outcome = job.execute_in_process(
                run_config=run_config,
                instance=self.instance,
                partition_key=request.partition_key,
                asset_selection=selection,
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
                name = event.asset_key.to_user_string()
                self.materialized.add(name)
                if name in MODEL_ASSETS:
                    self.models_landed = True
        return outcome.run_id


MODEL_ASSETS = ("engagement_scorer", "arm_posteriors")


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
) -> Any:
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
        return evaluate_sensor_tick(sensor, context)


class Ticker:
    """Evaluates the sensors and due schedules at one simulated moment, like the daemon's tick,
    and records each tick and cursor in the instance."""

    def __init__(self, launcher: Launcher, recorder: TickRecorder | None = None) -> None:
        self.launcher = launcher
        self.recorder = recorder or TickRecorder(launcher.instance)
        self.cursors: dict[str, str | None] = {
            name: self.recorder.cursor(name) for name in SENSOR_ORDER
        }
        self.ticks = 0
        self.automation_cursor = automation_cursor_from_text(
            self.recorder.cursor(AUTOMATION_SENSOR), launcher.defs
        )
        self.automation_at: datetime | None = None
        self.metrics_loaded = False
        self.store_fed_cursor: Any = None
        self.store_fed_at: datetime | None = None

    def automation(self, now: datetime) -> None:
        """One tick of declarative automation at simulated ``now``: every asset whose
        AutomationCondition is true (eager models, views, summaries, learning assets, the raw
        extraction's cron) is materialised, in one run of the rebuild job's selection.

        ``tweet_metrics`` is left to ``learning_rebuild_sensor``: its on_cron condition targets
        only the latest day partition, while a rebuild must load every day with new snapshots.
        """
        from xbot_assets.defs.orchestration import rebuild_job

        defs, instance = self.launcher.defs, self.launcher.instance
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            result = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, evaluation_time=now, cursor=self.automation_cursor
            )
            eligible = rebuild_job.selection.resolve(defs.resolve_asset_graph())
            requested = sorted(
                (
                    r.key
                    for r in result.results
                    if isinstance(r.key, dg.AssetKey)
                    and r.key in eligible
                    and r.true_subset.size > 0
                ),
                key=lambda k: k.to_user_string(),
            )
        if requested:
            # Dagster never requests an asset for being missing on its first evaluations, so
            # the first build of a fresh warehouse is the one a deployment does by hand
            # ("Materialize all"): every asset of the rebuild that was never materialised joins
            # the run, so a requested model never reads a table that does not exist yet.
            never = [
                key
                for key in eligible
                if instance.get_latest_materialization_event(key) is None and key not in requested
            ]
            requested = sorted(set(requested) | set(never), key=lambda k: k.to_user_string())
        self.automation_cursor = result.cursor
        self.automation_at = now
        run_ids, run_keys = [], []
        if requested:
            key = f"automation:{now:%Y-%m-%dT%H%M}"
            request = dg.RunRequest(
                run_key=key, job_name=rebuild_job.name, asset_selection=requested
            )
            run_id = self.launcher.launch(
                request, default_job=None, origin_tag=SENSOR_TAG, origin=AUTOMATION_SENSOR, now=now
            )
            if run_id is not None:
                run_ids.append(run_id)
                run_keys.append(key)
        self.recorder.record(
            AUTOMATION_SENSOR,
            "sensor",
            run_ids=run_ids,
            run_keys=run_keys,
            skip_reason=None if requested else "no automation condition is true",
            cursor=automation_cursor_to_text(result.cursor),
        )
        self.ticks += 1

    def store_fed(self, now: datetime) -> None:
        """Declarative automation of :data:`STORE_FED_ASSETS` at simulated ``now``, when one of
        their cron ticks passed since the last evaluation (the first evaluation only sets the
        baseline, as Dagster's does). Recorded as a tick of the automation sensor."""
        from xbot_assets.defs.orchestration import rebuild_job

        if (
            self.store_fed_at is not None
            and next_cron_tick(STORE_FED_CRON, self.store_fed_at) > now
        ):
            return
        defs, instance = self.launcher.defs, self.launcher.instance
        selection = dg.AssetSelection.assets(*STORE_FED_ASSETS)
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            result = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                asset_selection=selection,
                evaluation_time=now,
                cursor=self.store_fed_cursor,
            )
        self.store_fed_cursor, self.store_fed_at = result.cursor, now
        requested = sorted(
            (
                r.key
                for r in result.results
                if isinstance(r.key, dg.AssetKey) and r.true_subset.size > 0
            ),
            key=lambda k: k.to_user_string(),
        )
        if not requested:
            return
        key = f"automation:store_fed:{now:%Y-%m-%dT%H%M}"
        request = dg.RunRequest(run_key=key, job_name=rebuild_job.name, asset_selection=requested)
        run_id = self.launcher.launch(
            request, default_job=None, origin_tag=SENSOR_TAG, origin=AUTOMATION_SENSOR, now=now
        )
        self.recorder.record(
            AUTOMATION_SENSOR,
            "sensor",
            run_ids=[run_id] if run_id is not None else [],
            run_keys=[key] if run_id is not None else [],
            skip_reason=None,
            cursor=automation_cursor_to_text(self.automation_cursor)
            if self.automation_cursor is not None
            else None,
        )
        self.ticks += 1

    def sensors(self, now: datetime) -> None:
        defs, instance = self.launcher.defs, self.launcher.instance
        for name in SENSOR_ORDER:
            sensor = defs.resolve_sensor_def(name)
            data = evaluate_sensor(defs, instance, name, self.cursors.get(name), _resources(now))
            for partitions_request in data.dynamic_partitions_requests or []:
                if isinstance(partitions_request, dg.AddDynamicPartitionsRequest):
                    instance.add_dynamic_partitions(
                        partitions_request.partitions_def_name,
                        list(partitions_request.partition_keys),
                    )
            if data.cursor is not None:
                self.cursors[name] = data.cursor
            default_job = sensor.job_name if len(sensor.targets) == 1 else None
            run_ids, run_keys = [], []
            for request in data.run_requests or []:
                run_id = self.launcher.launch(
                    request, default_job=default_job, origin_tag=SENSOR_TAG, origin=name, now=now
                )
                if run_id is not None:
                    run_ids.append(run_id)
                    run_keys.append(request.run_key or "")
            if name == "learning_rebuild_sensor" and run_ids:
                self.metrics_loaded = True
            self.recorder.record(
                name,
                "sensor",
                run_ids=run_ids,
                run_keys=run_keys,
                skip_reason=data.skip_message,
                cursor=self.cursors.get(name),
                min_interval=sensor.minimum_interval_seconds,
            )
            self.ticks += 1

    def schedules(self, previous: datetime, now: datetime) -> None:
        defs, instance = self.launcher.defs, self.launcher.instance
        for name in SCHEDULE_ORDER:
            schedule = defs.resolve_schedule_def(name)
            cron = str(schedule.cron_schedule)
            for when in cron_ticks(cron, previous, now):
                # A schedule context opens its own DagsterInstance from the ref; only `with`
                # closes it (and restores Dagster's defs-state storage) before the next tick.
                with (
                    dg.build_schedule_context(
                        instance=instance,
                        scheduled_execution_time=when,
                        resources=_resources(when),
                        repository_def=self.launcher.repository,
                    ) as schedule_context,
                    dg.partition_loading_context(dynamic_partitions_store=instance),
                ):
                    scheduled = evaluate_schedule_tick(schedule, schedule_context)
                run_ids, run_keys = [], []
                for request in scheduled.run_requests or []:
                    run_id = self.launcher.launch(
                        request,
                        default_job=schedule.job_name,
                        origin_tag=SCHEDULE_TAG,
                        origin=name,
                        now=when,
                    )
                    if run_id is not None:
                        run_ids.append(run_id)
                        run_keys.append(request.run_key or "")
                self.recorder.record(
                    name,
                    "schedule",
                    run_ids=run_ids,
                    run_keys=run_keys,
                    skip_reason=scheduled.skip_message,
                    cron=cron,
                )
                self.ticks += 1


def tick(
    launcher: Launcher,
    cursors: dict[str, str | None],
    now: datetime,
    previous: datetime,
) -> None:
    """One simulated tick without recording (kept for callers that hold their own cursors)."""
    ticker = Ticker(launcher)
    ticker.cursors.update(cursors)
    ticker.sensors(now)
    ticker.schedules(previous, now)
    cursors.update(ticker.cursors)


def _json(text: str | None) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def next_event(
    store: Any, settings: Settings, ticker: Ticker, now: datetime, end: datetime
) -> datetime:
    """The next simulated moment after ``now`` at which a sensor or schedule could act.

    The daemon evaluates each sensor every few seconds; between these moments every one of
    them would skip (nothing is due, throttled or stuck), so jumping straight there gives the
    same runs at the same simulated times as 30-second ticks would.
    """
    from xbot_assets.defs.metrics_sensors import DEFAULT_REBUILD_EVERY_HOURS, REBUILD_CONFIG_KEY
    from xbot_assets.engine import sensing

    candidates = [end, next_cron_tick(STORE_FED_CRON, now)]
    defs = ticker.launcher.defs
    for name in SCHEDULE_ORDER:
        cron = str(defs.resolve_schedule_def(name).cron_schedule)
        candidates.append(next_cron_tick(cron, now))
    refilled = _json(ticker.cursors.get("candidate_refill_sensor")).get("refilled", {})
    grace = sensing.reconcile_grace(store)
    for account in store.list_accounts(active_only=True):
        queued = [
            p
            for p in store.list_posts(account.id, status="queued", limit=500)
            if p.thread_position == 0
        ]
        candidates.extend(p.scheduled_at for p in queued if p.scheduled_at > now)
        if len(queued) < sensing.REFILL_LOW_WATER and refilled.get(account.handle):
            candidates.append(datetime.fromisoformat(refilled[account.handle]) + REFILL_THROTTLE)
        for post in store.list_posts(account.id, status="posting", limit=500):
            if post.posting_started_at is not None:
                candidates.append(post.posting_started_at + grace + timedelta(seconds=1))
    rebuilt = _json(ticker.cursors.get("learning_rebuild_sensor")).get("rebuilt")
    if rebuilt:
        every = int(store.get_config(REBUILD_CONFIG_KEY, DEFAULT_REBUILD_EVERY_HOURS))
        candidates.append(datetime.fromisoformat(rebuilt) + timedelta(hours=every))
    if ticker.launcher.models_landed:
        ticker.launcher.models_landed = False
        candidates.append(now + FOLLOW_UP)
    later = [c for c in candidates if c > now]
    return min(min(later), end) if later else end


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
        days: simulated days to run, from where the sandbox's clock (and the last run) stopped.
        scenario, seed: the sandbox scenario and audience seed (default: the settings').
        posts_per_day: the schedule's posts per day (written to bot_config ``schedule``).
        rebuild_every_hours: simulated hours between warehouse + learning rebuilds.
        progress: show a tqdm bar over the simulated hours (logging goes through it).
        report_dir: where the HTML report goes (default ``XBOT_HOME/reports``).
        on_tick: called after every simulated moment the job stopped at (tests).
    """
    quiet_dagster_warnings()  # before the defs modules below are imported
    from tqdm import tqdm

    from xbot_assets.defs.metrics_sensors import REBUILD_CONFIG_KEY
    from xbot_assets.engine.planner import SCHEDULE_CONFIG_KEY
    from xbot_assets.engine.runtime import shared_sandbox
    from xbot_assets.posting.hotpath import invalidate_config
    from xbot_assets.report import bot_rewards, summarise, write_report
    from xbot_assets.store.durable import DurableStore

    if settings.resolved_poster != "sandbox":
        raise RuntimeError(
            "the main job runs against the sandbox on a simulated clock: use APP_ENV=local "
            "(POSTER=sandbox); a deployment runs the daemon instead (README: staging/production)"
        )
    with one_main_job(settings):  # one `xbot run` at a time on a store
        settings = _prepare_environment(settings, scenario, seed)
        wall = time.perf_counter()
        ensure_dagster_home()
        instance = dg.DagsterInstance.get()
        defs = load_definitions()
        store = DurableStore.from_settings(settings)
        sandbox = shared_sandbox(settings)
        start = sandbox.clock.now()  # exactly where the last run (or the sandbox) stopped
        resumed = store.get_config(UNTIL_KEY) == start.isoformat()
        try:
            check_store_follows_sandbox(store, settings, start)
            check_instance_follows_store(instance, start, resumed=resumed)
        except RuntimeError:
            store.close()
            raise
        sandbox_of_run = sandbox_of(settings)
        if store.get_config(SANDBOX_KEY) != sandbox_of_run:
            store.set_config(
                SANDBOX_KEY, sandbox_of_run, actor="xbot run", reason="main job", now=start
            )
        schedule = dict(store.get_config(SCHEDULE_CONFIG_KEY, {}) or {})
        if schedule.get("posts_per_day") != posts_per_day:
            schedule["posts_per_day"] = posts_per_day
            store.set_config(
                SCHEDULE_CONFIG_KEY, schedule, actor="xbot run", reason="main job", now=start
            )
            invalidate_config(settings, store.engine, SCHEDULE_CONFIG_KEY)  # the refill's cache
        if store.get_config(REBUILD_CONFIG_KEY) != rebuild_every_hours:
            store.set_config(
                REBUILD_CONFIG_KEY,
                rebuild_every_hours,
                actor="xbot run",
                reason="main job",
                now=start,
            )
        end = start + timedelta(days=days)
        launcher = Launcher(defs, instance)
        ticker = Ticker(launcher)
        total_hours = round(days * 24, 2)
        bar = tqdm(
            total=total_hours,
            disable=not progress,
            unit=" simulated h",
            dynamic_ncols=True,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} simulated h "
            "[{elapsed}<{remaining}]{postfix}",
        )
        # A resumed run's first moment was the last run's final one: start just after it.
        if resumed:
            previous, now = start, next_event(store, settings, ticker, start, end)
        else:  # a fresh start also runs the schedules due at its first moment
            previous, now = start - timedelta(seconds=1), start
        if ticker.automation_cursor is None:
            # The automation sensor's first tick only sets its baseline (Dagster requests nothing
            # on an initial evaluation), as when a deployment turns it on; later ticks then see
            # changes.
            ticker.automation(start)
        try:
            with _logs_through(bar):
                while True:
                    ticker.sensors(now)
                    ticker.schedules(previous, now)
                    if ticker.metrics_loaded:  # new metrics in the warehouse: automation's turn
                        ticker.automation(now)
                        ticker.metrics_loaded = False
                    ticker.store_fed(now)  # the posterior's own 4-hourly refit
                    if on_tick is not None:
                        on_tick(now)
                    bar.n = min(total_hours, round((now - start) / timedelta(hours=1), 2))
                    bar.refresh()
                    day = (now - start) / timedelta(days=1)
                    bar.set_description(f"day {day:4.1f}/{days:g}")
                    if progress and int(day) != int((previous - start) / timedelta(days=1)):
                        bar.set_postfix(measured_posts=len(bot_rewards(store, since=start)))
                    if now >= end:
                        break
                    previous, now = now, next_event(store, settings, ticker, now, end)
        finally:
            bar.close()
        # Journal the clock at the end, so the next run (and `xbot status`) starts from here.
        sandbox.clock.set(max(sandbox.clock.now(), end))
        sandbox.advance(timedelta(0))  # a journal entry stamped at the end
        store.set_config(UNTIL_KEY, end.isoformat(), actor="xbot run", reason="main job", now=end)
        result = launcher.result
        result.materialized = sorted(launcher.materialized)
        result.runs_by_job = dict(launcher.by_job)
        result.seconds_by_job = {k: round(v, 2) for k, v in launcher.seconds_by_job.items()}
        result.ticks = ticker.ticks
        result.warehouse_path = str(settings.resolved_warehouse_path)
        result.started_at, result.ended_at = start, end
        result.summary = summarise(settings, store, since=start, until=end)
        result.seconds = time.perf_counter() - wall
        folder = report_dir or settings.xbot_home / "reports"
        result.report_path = str(write_report(result, folder))
        store.close()
        _stop_warm_dbt(settings)
        return result


@contextlib.contextmanager
def _logs_through(bar: Any) -> Iterator[None]:
    """Print log records of ERROR and above above the bar (tqdm's logging redirect), not through
    it; warnings (a cold start's, dbt's) stay in each run's logs in the UI."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    root = logging.getLogger()
    with logging_redirect_tqdm(loggers=[root], tqdm_class=type(bar)):
        for handler in root.handlers:
            handler.setLevel(logging.ERROR)
        yield


def _stop_warm_dbt(settings: Settings) -> None:
    """Stop this checkout's warm dbt server when the run ends, unless a setting keeps it
    (``XBOT_DBT_KEEP_WARM=1``: a deployment, or runs back to back)."""
    if os.environ.get("XBOT_DBT_KEEP_WARM", "").strip().lower() in ("1", "true", "yes"):
        return
    from xbot_assets.warehouse.dbt_warm import stop_server

    with contextlib.suppress(OSError):
        stop_server()
