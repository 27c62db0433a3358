"""Orchestration fixtures: local settings, a migrated store and a Dagster home in a temp folder.

The main job's short run is module-scoped (and its tests share one xdist group), because it is
the expensive part: the summary test, the two-account test and the UI test all read it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from xbot_assets.config import Settings, load_settings
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.warehouse.project import dbt_project

ENV_NAMES = (
    "DATABASE_URL",
    "WAREHOUSE_PATH",
    "REDIS_URL",
    "REDIS_PREFIX",
    "LIVE_POSTS",
    "POSTER",
    "GENERATOR",
    "OPENAI_API_KEY",
    "X_HANDLE",
    "SANDBOX_SCENARIO",
    "SANDBOX_SEED",
)


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The dbt manifest the @dbt_assets definitions load."""
    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


@dataclass
class Env:
    """A local deployment living in one folder."""

    root: Path
    settings: Settings

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"


def make_env(root: Path) -> tuple[Env, dict[str, str | None]]:
    """Point the process at ``root`` (store, warehouse, sandbox journal, Dagster home)."""
    saved = {
        name: os.environ.get(name) for name in (*ENV_NAMES, "APP_ENV", "XBOT_HOME", "DAGSTER_HOME")
    }
    for name in ENV_NAMES:
        os.environ.pop(name, None)
    os.environ["APP_ENV"] = "local"
    os.environ["XBOT_HOME"] = str(root / "xbot_home")
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    (root / "xbot_home").mkdir(parents=True, exist_ok=True)
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    from xbot_assets.config import ensure_dagster_home

    ensure_dagster_home()
    settings = load_settings(env_file=None)
    upgrade(settings.resolved_database_url)
    return Env(root, settings), saved


MEMORY = Path("/dev/shm")
"""A tmpfs on Linux: SQLite's commits there cost no fsync."""


@contextlib.contextmanager
def memory_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A folder in memory (``/dev/shm``) for a long main job, removed afterwards; a pytest temp
    folder where the machine has no writable ``/dev/shm``.

    A main job's wall time is mostly SQLite commits and closes (Dagster's event log and run
    storage, the store), each an fsync on a disk: half of it on this machine's disk. On tmpfs
    the job is the same (same runs, same posts, same posteriors: the sandbox is seeded), only
    the fsyncs are gone.
    """
    roomy = MEMORY.is_dir() and shutil.disk_usage(MEMORY).free > 2 * 1024**3  # (Docker: 64 MB)
    if roomy and os.access(MEMORY, os.W_OK):
        with tempfile.TemporaryDirectory(prefix=f"xbot-{name}-", dir=MEMORY) as folder:
            yield Path(folder)
    else:
        yield tmp_path_factory.mktemp(name)


def restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def hold_as_failed(store: Any, account_id: int, parts: list[str], now: datetime) -> None:
    """Put ``parts`` in the store as a post that failed: its text is refused again (the unique
    key), while the guard's recent texts, the history and the slot planner ignore it."""
    if len(parts) > 1:
        post = store.enqueue_thread(account_id, parts, scheduled_at=now, now=now)[0]
    else:
        post = store.enqueue_post(account_id, parts[0], scheduled_at=now, now=now)
    assert store.claim_post(post.id, now=now) is not None
    store.mark_failed(post.id, error="held by the test", now=now)


def run_refill(env: Env, now: datetime, n_candidates: int = 5) -> tuple[Any, dict[str, Any]]:
    """Run ``refill_candidates_job`` through Dagster for the env's account at ``now`` (the
    simulated clock); the run's result and its step's output metadata (plain values)."""
    import dagster as dg

    from xbot_assets.defs.orchestration import accounts_partitions, refill_candidates_job
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings

    handle = env.settings.x_handle
    assert accounts_partitions.name is not None
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(accounts_partitions.name, [handle])
    result = refill_candidates_job.execute_in_process(
        instance=instance,
        resources={
            "xbot_settings": XbotSettings(),
            "xbot_runtime": XbotRuntime(simulated_now=now.isoformat()),
        },
        partition_key=handle,
        run_config={"ops": {"refill_candidates": {"config": {"n_candidates": n_candidates}}}},
    )
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata: dict[str, Any] = {
        k: getattr(v, "value", v) for k, v in output.step_output_data.metadata.items()
    }
    return result, metadata


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A fresh local deployment for one test (its cached stores forgotten afterwards)."""
    from xbot_assets.engine.sensing import forget_stores

    made, saved = make_env(tmp_path)
    try:
        yield made
    finally:
        forget_stores()
        restore_env(saved)


@dataclass
class MainRun:
    env: Env
    result: Any
    second_handle: str


SECOND_HANDLE = "xbot_second"


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MainRun]:
    """The main job in short form (1.5 simulated days, one rebuild) with two accounts."""
    from xbot_assets.runner import run_main
    from xbot_assets.store.durable import DurableStore

    with memory_folder(tmp_path_factory, "main_job") as folder:
        made, saved = make_env(folder)
        try:
            store = DurableStore.from_settings(made.settings)
            store.ensure_account(SECOND_HANDLE)  # a second account, run side by side
            store.close()
            result = run_main(
                made.settings, days=1.5, posts_per_day=3, rebuild_every_hours=24, progress=False
            )
            yield MainRun(made, result, SECOND_HANDLE)
        finally:
            restore_env(saved)
