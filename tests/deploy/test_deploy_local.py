"""`make deploy-local` (scripts/deploy_local.py): the whole deployment starts on this machine,
its automation turns on and posts through the api poster to the sandbox server on the rehearsal
clock, and everything it started is gone after it stops (processes, databases, Redis keys)."""

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
def test_deploy_local_runs_the_loop_and_cleans_up(tmp_path: Path) -> None:
    script = _load_script()
    dep = script.LocalDeployment(folder=tmp_path, speed=720.0, redis_db=0)  # type: ignore[attr-defined]
    try:
        dep.prepare()
        assert sorted(_databases(dep.name)) == sorted([dep.store_db, dep.dagster_db])
        dep.start_all()
        _, sensors, schedules = dep.instigators()
        assert "posting_sensor" in sensors and "collect_account_metrics_schedule" in schedules
        ready = httpx.get(f"{dep.url('health')}/healthz", timeout=10)
        assert ready.status_code == 200
        # the daemon's sensors refill and post on the rehearsal clock (12 simulated min per s)
        deadline = time.monotonic() + 900
        posted = 0
        while time.monotonic() < deadline and posted == 0:
            state = httpx.get(f"{dep.url('sandbox')}/__sandbox/state", timeout=10).json()
            posted = sum(int(a["posts"]) for a in state["accounts"])
            time.sleep(5)
        assert posted > 0, f"nothing posted; daemon log:\n{dep.tail('daemon', 40)}"
        pids = [p.pid for p in dep.procs.values()]
    finally:
        dep.close()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"process {pid} still runs"
    assert _databases(dep.name) == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
