"""Warehouse test fixtures: a migrated SQLite store and settings pointing into ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xbot_assets.config import Settings, load_settings
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.warehouse.project import dbt_project


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest the @dbt_assets definitions load (prepared once, guarded for xdist)."""
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


@pytest.fixture
def xbot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Local settings whose store, warehouse and Dagster home live in ``tmp_path``."""
    for name in ("DATABASE_URL", "WAREHOUSE_PATH", "REDIS_URL", "REDIS_PREFIX", "LIVE_POSTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "local")
    monkeypatch.setenv("XBOT_HOME", str(tmp_path / "xbot_home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "xbot_home").mkdir()
    (tmp_path / "dagster_home").mkdir()
    return load_settings(env_file=None)


@pytest.fixture
def store(xbot_env: Settings) -> Iterator[DurableStore]:
    """The migrated embedded store of ``xbot_env``."""
    upgrade(xbot_env.resolved_database_url)
    opened = DurableStore.from_settings(xbot_env)
    yield opened
    opened.engine.dispose()
