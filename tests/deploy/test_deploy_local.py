"""`make deploy-local` (scripts/deploy_local.py): the whole deployment starts on this machine,
its sensors and schedules turn on and the daemon drives the engine, and everything it started is
gone after it stops (processes, databases)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _load_script() -> object:
    spec = importlib.util.spec_from_file_location("deploy_local", ROOT / "scripts/deploy_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_local"] = module
    spec.loader.exec_module(module)
    return module


def _databases(prefix: str) -> list[str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "select datname from pg_database where datname like %s", (prefix + "%",)
        )
        return [r[0] for r in rows]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(1500)
def test_deploy_local_starts_the_loop_and_cleans_up(tmp_path: Path) -> None:
    """Up, automation on, the daemon launches the engine's runs, then nothing is left behind.

    Whether the runs then post at their slots is the rehearsal's (benchmarks/deployment.py):
    on this shared 2-core machine a run's process takes minutes to import the code location.
    """
    script = _load_script()
    dep = script.LocalDeployment(folder=tmp_path, speed=720.0, redis_db=0)  # type: ignore[attr-defined]
    pids: list[int] = []
    try:
        dep.prepare()
        assert sorted(_databases(dep.name)) == sorted([dep.store_db, dep.dagster_db])
        assert dep.run_xbot(["migrate", "--check"]) is not None  # the store is at head
        dep.start_all()
        selector, sensors, schedules = dep.instigators()
        states = dep.graphql(
            """query($s: RepositorySelector!) {
                 sensorsOrError(repositorySelector: $s) { ... on Sensors { results {
                   name sensorState { status } } } }
                 schedulesOrError(repositorySelector: $s) { ... on Schedules { results {
                   name scheduleState { status } } } } }""",
            {"s": selector},
        )
        sensor_state = {
            r["name"]: r["sensorState"]["status"] for r in states["sensorsOrError"]["results"]
        }
        schedule_state = {
            r["name"]: r["scheduleState"]["status"] for r in states["schedulesOrError"]["results"]
        }
        for name in ("accounts_sensor", "candidate_refill_sensor", "posting_sensor",
                     "reconcile_sensor", "default_automation_condition_sensor"):  # fmt: skip
            assert sensor_state.get(name) == "RUNNING", (name, sensor_state)
        assert sensor_state["learning_rebuild_sensor"] == "STOPPED"
        assert set(schedule_state.values()) == {"RUNNING"}, schedule_state
        assert "posting_sensor" in sensors and "collect_account_metrics_schedule" in schedules
        assert httpx.get(f"{dep.url('health')}/healthz", timeout=10).status_code == 200
        # the daemon's sensors see the account and launch its refill run on their own
        deadline = time.monotonic() + 900
        jobs: set[str] = set()
        while time.monotonic() < deadline and "refill_candidates_job" not in jobs:
            runs = dep.graphql("{ runsOrError { ... on Runs { results { jobName } } } }")
            jobs = {r["jobName"] for r in runs["runsOrError"]["results"]}
            time.sleep(5)
        assert "refill_candidates_job" in jobs, f"no refill run:\n{dep.tail('daemon', 40)}"
        pids = [p.pid for p in dep.procs.values()]
    finally:
        dep.close()
    assert pids
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"process {pid} still runs"
    assert dep.leftover_pids() == []
    assert _databases(dep.name) == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
