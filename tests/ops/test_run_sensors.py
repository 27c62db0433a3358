"""Finished Dagster runs land in system_health through the run-status sensors."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.foundation.conftest import settings_env_names
from xbot_assets.defs.health import record_run_failure, record_run_success
from xbot_assets.defs.resources import XbotSettings
from xbot_assets.ops.component_status import latest_component_statuses
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade


@dg.op
def fine() -> None:
    pass


@dg.op
def broken() -> None:
    raise RuntimeError("X said 503 to https://bot:hunter2@api.x.com/2/tweets")


@dg.job
def tiny_job() -> None:
    fine()


@dg.job
def broken_job() -> None:
    broken()


def test_run_outcomes_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XBOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'home' / 'xbot.db'}"
    upgrade(url)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"xbot_settings": XbotSettings()}

    ok = tiny_job.execute_in_process(instance=instance)
    record_run_success(
        dg.build_run_status_sensor_context(
            sensor_name="record_run_success",
            dagster_event=ok.get_run_success_event(),
            dagster_instance=instance,
            dagster_run=ok.dagster_run,
            resources=resources,
        )
    )
    bad = broken_job.execute_in_process(instance=instance, raise_on_error=False)
    record_run_failure(
        dg.build_run_status_sensor_context(
            sensor_name="record_run_failure",
            dagster_event=bad.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=bad.dagster_run,
            resources=resources,
        ).for_run_failure()
    )
    engine = make_engine(url)
    try:
        rows = latest_component_statuses(engine, environment="local")
    finally:
        engine.dispose()
    assert rows["job:tiny_job"].status == "ok"
    assert rows["job:tiny_job"].metrics["run_id"] == ok.run_id
    failed = rows["job:broken_job"]
    assert failed.status == "down" and failed.metrics["run_id"] == bad.run_id
    assert "hunter2" not in (failed.message or "")
