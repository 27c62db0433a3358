"""`make deploy-local` (scripts/deploy_local.py): the whole deployment starts on this machine,
its sensors and schedules turn on, the daemon posts for each account, and everything it started
is gone after it stops (processes, databases)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from benchmarks import deployment
from scripts import deploy_local

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _databases(prefix: str) -> list[str]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "select datname from pg_database where datname like %s", (prefix + "%",)
        )
        return [r[0] for r in rows]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_deploy_local_posts_for_each_account_survives_a_daemon_kill_and_cleans_up(
    tmp_path: Path,
) -> None:
    """The short rehearsal: up with two accounts on the rehearsal clock (720x: a simulated hour
    every 5 s), the batch sensors on (the per-account ones off); one batch run per lead posts
    for both accounts, each with its own token and at its slot; the daemon is SIGKILLed and
    restarted; no post is duplicated or lost; then nothing is left behind. The long version (a
    simulated day at 20 accounts, kills of the daemon and of a run worker mid-post, the rebuild,
    CPU per post) is ``benchmarks/deployment.py``."""
    dep = deploy_local.LocalDeployment(folder=tmp_path, speed=720.0, redis_db=0, accounts=2)
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
        for name in ("accounts_sensor", "refill_batch_sensor", "posting_batch_sensor",
                     "reconcile_sensor", "default_automation_condition_sensor"):  # fmt: skip
            assert sensor_state.get(name) == "RUNNING", (name, sensor_state)
        for name in ("learning_rebuild_sensor", "posting_sensor", "candidate_refill_sensor"):
            assert sensor_state[name] == "STOPPED", (name, sensor_state)
        # the per-account metrics schedule is off: the batch posting runs collect for every account
        assert schedule_state.pop("collect_account_metrics_schedule") == "STOPPED"
        assert set(schedule_state.values()) <= {"RUNNING"}, schedule_state
        assert "posting_batch_sensor" in sensors and "collect_account_metrics_schedule" in schedules
        assert httpx.get(f"{dep.url('health')}/healthz", timeout=10).status_code == 200
        # the first build at set-up built the seeds and every table, so an automated partial dbt
        # build finds the parents its models and unit tests read
        for name in [*deploy_local.DBT_SEEDS, "fct_posts", "fct_post_outcomes"]:
            asset = dep.graphql(
                """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) {
                     ... on Asset { assetMaterializations(limit: 1) { runId } } } }""",
                {"k": {"path": [name]}},
            )["assetOrError"]
            assert asset.get("assetMaterializations"), (name, asset)
        # the daemon refills and posts for both accounts; it is killed once on the way
        killed = False
        deadline = time.monotonic() + 420
        posted: dict[str, int] = {}
        while time.monotonic() < deadline:
            posted = deployment.collect(dep)["posts_by_account"]
            if not killed and posted:
                dep.kill_daemon()
                dep.start_daemon()
                killed = True
            if killed and len(posted) == 2:
                break
            time.sleep(5)
        assert killed and set(posted) == set(dep.handles), (posted, dep.tail("daemon", 40))
        result = deployment.collect(dep)
        assert result["duplicate_posts"] == 0
        assert result["lost"]["on_sandbox_not_in_store"] == 0
        assert result["lost"]["posted_in_store_not_on_sandbox"] == 0
        # each account's posts are on its own sandbox account (its own token)
        assert result["posts_on_sandbox_by_handle"] == result["posts_by_account"]
        # by batch runs launched a lead before the slots: on time (720x: a real second is 12
        # simulated minutes, so 2 simulated hours late would mean a run started 10 s late)
        assert set(result["runs_by_job_and_status"]) >= {"post_batch_job", "refill_batch_job"}
        assert "post_job" not in result["runs_by_job_and_status"]
        assert result["minutes_late_simulated"]["median"] <= 120, result["minutes_late_simulated"]
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
