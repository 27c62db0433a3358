"""The connection budget: the shipped pool sizes keep one deployment inside a 100-connection
Postgres (the size of this machine's, shared with CI), the former sizes did not, and every
process's store engine takes its pool from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.pool import QueuePool

from scripts import deploy_local
from xbot_assets.config import Settings
from xbot_assets.ops.connection_budget import ConnectionBudget
from xbot_assets.store.durable.engine import make_engine


def test_the_shipped_deployment_fits_a_100_connection_server(tmp_path: Path) -> None:
    budget = deploy_local.LocalDeployment(folder=tmp_path).connection_budget()
    assert budget.max_concurrent_runs == 6  # deploy/dagster.yaml
    assert budget.total() <= 75, "a quarter of a 100-connection server left for CI and psql"
    budget.check(100)


def test_deploy_local_starts_the_webserver_with_the_budgeted_pool(tmp_path: Path) -> None:
    dep = deploy_local.LocalDeployment(folder=tmp_path, ports={"webserver": 3000})
    argv = dep.webserver_argv()
    overflow = int(argv[argv.index("--db-pool-max-overflow") + 1])
    assert overflow == dep.connection_budget().webserver_max_overflow == 2


def test_the_former_pools_did_not_fit_and_the_error_says_what_to_lower() -> None:
    # store engines 5 + 5 per process, Dagster's webserver overflow default 20
    former = ConnectionBudget(
        pool_size=5, max_overflow=5, max_concurrent_runs=6, webserver_max_overflow=20
    )
    assert former.by_process()["webserver"] == 3 * 21 + 1
    with pytest.raises(ValueError, match="lower DB_POOL_SIZE/DB_POOL_MAX_OVERFLOW"):
        former.check(100)


def test_each_run_adds_one_store_pool_and_a_storage_connection() -> None:
    small = ConnectionBudget(pool_size=2, max_overflow=2, max_concurrent_runs=6,
                             webserver_max_overflow=2)  # fmt: skip
    more = ConnectionBudget(pool_size=2, max_overflow=2, max_concurrent_runs=16,
                            webserver_max_overflow=2)  # fmt: skip
    assert more.total() - small.total() == 10 * (2 + 2 + 1)


def test_the_store_engine_takes_its_pool_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_POOL_MAX_OVERFLOW", "1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.db_pool_size, settings.db_pool_max_overflow) == (3, 1)
    engine = make_engine(
        "postgresql://u@127.0.0.1:1/db",  # never connected: the pool is configured up front
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
    )
    assert isinstance(engine.pool, QueuePool)
    assert (engine.pool.size(), engine.pool._max_overflow) == (3, 1)
    engine.dispose()
    monkeypatch.delenv("DB_POOL_SIZE")
    default = make_engine("postgresql://u@127.0.0.1:1/db")
    assert isinstance(default.pool, QueuePool)
    assert default.pool.size() == Settings(_env_file=None).db_pool_size == 2  # type: ignore[call-arg]
    default.dispose()


def test_a_pool_size_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="DB_POOL_SIZE"):
        Settings(_env_file=None)  # type: ignore[call-arg]
