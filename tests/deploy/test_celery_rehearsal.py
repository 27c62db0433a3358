"""The Celery rehearsal's short version (the long one: benchmarks/celery_rehearsal.py).

The engine's jobs run through dagster-celery's executor (``xbot_assets.celery_definitions``: the
project's jobs, ops and resources with another executor) on 2 worker processes, Redis as broker
and backend, Postgres for the store and Dagster's storage, the sandbox over HTTP with the api
poster. The worker running the posting step is SIGKILLed after the post is on the sandbox and
before the worker has recorded it; the other worker takes the step over and the post is
recorded once, never posted twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)


def _load_rehearsal() -> Any:
    from benchmarks import celery_rehearsal

    return celery_rehearsal


def _posted_once_nothing_lost(result: dict[str, Any], *, posts: int) -> None:
    """``posts`` on the sandbox, none twice, none lost between the sandbox and the store."""
    assert result["posts_on_sandbox"] == posts
    assert result["duplicate_posts"] == 0
    assert result["lost"] == {
        "on_sandbox_not_in_store": 0,
        "posted_in_store_not_on_sandbox": 0,
        "left_posting_or_unknown": 0,
    }


def test_the_celery_location_rebinds_the_engine_jobs_only_to_the_celery_executor() -> None:
    """Same jobs, ops and resources as the daemon's location; only the executor differs, and
    the executor and the workers share the settings that make a killed worker's step rerun."""
    import dagster as dg

    from xbot_assets.celery_definitions import CELERY_JOBS, defs, worker_config
    from xbot_assets.defs import orchestration

    repo = defs().get_repository_def()
    for name, job in CELERY_JOBS.items():
        original = getattr(orchestration, name)
        assert original.executor_def is dg.in_process_executor  # the daemon path is unchanged
        assert job.executor_def.name == "xbot_celery_executor"
        assert job.graph is original.graph
        assert repo.get_job(name).executor_def.name == "xbot_celery_executor"
    sensors = {s.name: s for s in repo.sensor_defs}
    assert sensors["posting_sensor"].job_name == "post_job"
    assert repo.get_job(sensors["posting_sensor"].job_name).executor_def.name == (
        "xbot_celery_executor"
    )
    settings = worker_config("redis://h:6379/9", "redis://h:6379/9", 45)["execution"]["config"]
    source = settings["config_source"]
    assert source["task_acks_late"] and source["worker_prefetch_multiplier"] == 1
    assert source["broker_transport_options"]["visibility_timeout"] == 45


def test_rehearsal_epoch_starts_the_simulated_day_outside_quiet_hours() -> None:
    from datetime import UTC, datetime

    rehearsal = _load_rehearsal()
    for wall, nine in (
        (datetime(2026, 12, 6, 2, 30, tzinfo=UTC), datetime(2026, 12, 6, 9, tzinfo=UTC)),
        (datetime(2026, 12, 6, 21, 10, tzinfo=UTC), datetime(2026, 12, 7, 9, tzinfo=UTC)),
    ):
        epoch = rehearsal.rehearsal_epoch(wall, 120, 9)
        reads = epoch + (wall - epoch) * 120  # what every process computes at that instant
        assert abs((reads - nine).total_seconds()) < 0.01
        assert epoch <= wall
    assert rehearsal.rehearsal_epoch(datetime(2026, 12, 6, 9, tzinfo=UTC), 1, 9).hour == 9


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(600)
def test_a_worker_killed_mid_post_has_its_step_retried_on_the_other_without_a_duplicate(
    tmp_path: Path,
) -> None:
    rehearsal = _load_rehearsal()
    result = rehearsal.rehearse(
        tmp_path, accounts=1, speed=120, visibility_timeout=15, broker_db=10,
        compile_bytecode=False, after_kill=False, refill=False, run_timeout=400,
    )  # fmt: skip
    killed = next(e for e in result["events"] if e["event"].startswith("worker SIGKILL"))
    attempts = result["posting_step_attempts"]
    starts = [a for a in attempts if a["event"] == "STEP_START"]
    # the step started on the killed worker, then again on the other one, where it finished
    assert starts[0]["worker"] == killed["worker"]
    assert len(starts) == 2 and starts[1]["worker"] != killed["worker"]
    assert [a["worker"] for a in attempts if a["event"] == "STEP_SUCCESS"] == [starts[1]["worker"]]
    assert result["retried_on_other_worker"]
    assert result["killed_run"]["status"] == "SUCCESS"
    assert result["runs_by_job_and_status"] == {"post_job": {"SUCCESS": 1}}
    assert result["longest_step_s"] < 15  # no step outlived the visibility timeout
    # the post went out once: the retried step found it on the timeline instead of posting
    _posted_once_nothing_lost(result, posts=1)
    assert result["store_rows_by_status"]["posted"] == 1
    assert result["reconciled_by_retry"] == {"found": 1}
    assert result["posted_by_retry"] == 0


def test_the_celery_workspace_runs_the_account_sensors_in_the_celery_location_only() -> None:
    """workspace.celery.yaml loads the main location (named as in workspace.yaml) and the
    Celery one; the plan starts the Celery location's account sensors and, in the main
    location, neither those names nor their batch twins, and the rest as deploy-local does."""
    import dagster as dg

    from scripts import deploy_local
    from scripts.deploy_local import Repository, automation_plan
    from xbot_assets.celery_definitions import (
        ACCOUNT_SENSORS,
        LOCATION_NAME,
        OFF_IN_MAIN_LOCATION,
        defs,
    )

    root = Path(deploy_local.ROOT)
    main = deploy_local.workspace_locations(root / "workspace.yaml")
    assert deploy_local.workspace_locations(root / "workspace.celery.yaml") == [
        *main,
        LOCATION_NAME,
    ]
    repo = defs().get_repository_def()
    own = sorted(
        s.name for s in repo.sensor_defs if not isinstance(s, dg.RunStatusSensorDefinition)
    )
    assert own == sorted(ACCOUNT_SENSORS)
    assert set(ACCOUNT_SENSORS) <= OFF_IN_MAIN_LOCATION

    main_repo = Repository(
        "xbot", "__repository__",
        sensors=("accounts_sensor", "candidate_refill_sensor",
                 "default_automation_condition_sensor", "learning_rebuild_sensor",
                 "posting_batch_sensor", "posting_sensor",
                 "reconcile_sensor", "record_run_failure", "record_run_success",
                 "refill_batch_sensor", "sync_to_supabase_sensor"),
        schedules=("collect_account_metrics_schedule", "daily_summaries_schedule"),
    )  # fmt: skip
    celery_repo = Repository(
        LOCATION_NAME, "__repository__",
        sensors=(*ACCOUNT_SENSORS, "record_run_failure", "record_run_success"), schedules=(),
    )  # fmt: skip

    def started(repos: list[Repository]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r, _, name in automation_plan(repos):
            out.setdefault(r.location, set()).add(name)
        return out

    alone = started([main_repo])["xbot"]  # deploy-local's plan, unchanged
    assert {"posting_batch_sensor", "refill_batch_sensor", "accounts_sensor"} <= alone
    assert not alone & {"posting_sensor", "candidate_refill_sensor", "learning_rebuild_sensor"}
    both = started([main_repo, celery_repo])
    assert both[LOCATION_NAME] == set(celery_repo.sensors)
    assert not both["xbot"] & OFF_IN_MAIN_LOCATION
    assert both["xbot"] == {
        "default_automation_condition_sensor", "sync_to_supabase_sensor", "record_run_failure",
        "record_run_success", "collect_account_metrics_schedule", "daily_summaries_schedule",
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_the_daemon_launches_celery_post_runs_from_the_celery_location_and_survives_a_kill(
    tmp_path: Path,
) -> None:
    """dagster-daemon over workspace.celery.yaml, automation turned on by the plan (here: the
    Celery location's accounts and posting sensors, and a schedule of the main location):
    the daemon launches the seeded post's run from the Celery location, its posting step runs
    on a worker (killed inside it, retried on the other), one post, recorded in the store and
    in system_health, and the main location launches no post run."""
    rehearsal = _load_rehearsal()
    result = rehearsal.rehearse_daemon(
        tmp_path, accounts=1, speed=120, visibility_timeout=15, broker_db=11,
        compile_bytecode=False, kill=True, run_timeout=400,
        only={"accounts_sensor", "posting_sensor", "daily_summaries_schedule"},
    )  # fmt: skip
    states = result["instigator_states"]
    assert states["xbot_celery"]["posting_sensor"] == "RUNNING"
    assert states["xbot_celery"]["accounts_sensor"] == "RUNNING"
    assert states["xbot"]["daily_summaries_schedule"] == "RUNNING"  # the main one's automation
    assert "RUNNING" not in result["main_location_sensors_the_celery_location_replaces"].values()
    # one run, launched by the Celery location's posting sensor, none from the main location
    (run,) = result["runs"]
    assert (run["job"], run["location"], run["status"]) == ("post_job", "xbot_celery", "SUCCESS")
    assert run["tags"]["dagster/sensor_name"] == "posting_sensor"
    assert run["tags"]["dagster/partition"] == "xbot_sandbox"
    assert result["post_runs_from_main_location"] == 0
    # every posting step attempt started in a worker's process, not the run's own
    starts = result["posting_step_starts"]
    assert run["coordinator_pid"] is not None
    assert all(s["worker"] in ("worker_a", "worker_b") for s in starts)
    assert all(s["pid"] != run["coordinator_pid"] for s in starts)
    assert result["posting_steps_on_workers"]
    # the killed worker's step was taken over by the other, which found the post on X
    killed = next(e for e in result["events"] if e["event"].startswith("worker SIGKILL"))
    assert killed["run_id"] == run["run_id"]
    assert starts[0]["worker"] == killed["worker"]
    assert len(starts) == 2 and starts[1]["worker"] != killed["worker"]
    assert result["retried_on_other_worker"]
    assert result["reconciled_by_retry"] == {"found": 1}
    assert result["posted_by_retry"] == 0
    assert result["longest_step_s"] < 15  # no step outlived the visibility timeout
    # one post, on the sandbox and in the store; the Celery run recorded in system_health
    _posted_once_nothing_lost(result, posts=1)
    assert result["store_rows_by_status"] == {"posted": 1}
    assert result["celery_runs_recorded_in_system_health"] == 1
