"""A step of a run that has already ended does nothing (``stands_down_once_its_run_ended``).

Under Celery a step whose worker died is redelivered to another worker after the visibility
timeout, and dagster-celery's task runs it whatever its run's status (seen in the rehearsal
``--kill-during claim``: 143 s after the kill, its run long FAILED by run monitoring). Each
engine op that acts now reads its run's status at the step's start and stands down.

In process, a step is executed as dagster-celery's task executes it (``execute_plan_iterator``
over the run of the Celery location's job) after the run was failed or cancelled; then a real
``dagster-celery worker`` on Redis broker DB 9 (this file's) receives the step of a ``post_job``
run whose coordinator died and whose run was failed while the step waited in the queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import deploy_local
from tests.deploy.test_celery_key_prefix import stop_groups, wait_for
from tests.orchestration.conftest import Env

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)

BROKER_DB = 9
"""This file's broker DB (the other Celery tests use 3, 4, 6-8, 10, 11, 14 and 15)."""
BROKER = f"redis://127.0.0.1:6379/{BROKER_DB}"
TEXT = "Late steps of ended runs stand down: the durable claim is the second line."


def _queue_due_post(env: Env, text: str = TEXT) -> tuple[str, int]:
    """A post of the env's account due a minute ago, on an account whose local time is midday
    now (quiet hours never hold it); the handle and the post's id."""
    from xbot_assets.engine.sensing import cached_store

    store = cached_store(env.settings)
    offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12
    account = store.ensure_account(
        env.settings.x_handle, timezone="Etc/GMT" + (f"{-offset:+d}" if offset else "")
    )
    due = datetime.now(UTC) - timedelta(minutes=1)
    return account.handle, int(store.enqueue_post(account.id, text, scheduled_at=due, now=due).id)


def _post_status(env: Env, post_id: int) -> tuple[str, str | None]:
    from xbot_assets.engine.sensing import cached_store

    post = cached_store(env.settings).get_post(post_id)
    return post.status, post.x_id


def _on_sandbox(env: Env, text: str = TEXT) -> bool:
    """Whether the sandbox (its journal, shared by every process of the deployment) got it."""
    from xbot_assets.engine.runtime import sandbox_journal_path

    journal = sandbox_journal_path(env.settings)
    return journal.exists() and json.dumps(text)[1:-1] in journal.read_text()


def _celery_env(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """What the Celery location's executor config reads when a run's config is resolved."""
    monkeypatch.setenv("XBOT_CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("XBOT_CELERY_BACKEND_URL", BROKER)
    monkeypatch.setenv("XBOT_CELERY_KEY_PREFIX", prefix)


def _run_step_as_a_worker_would(
    instance: Any, job_name: str, handle: str, run_config: dict[str, Any], status: Any
) -> dict[str, Any]:
    """Create a run of the Celery location's ``job_name``, put it in ``status`` (as run
    monitoring or a cancel would), then execute its first step as dagster-celery's task does;
    the step's output metadata (plain values)."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import create_execution_plan, execute_plan_iterator

    recon_job = ReconstructableRepository.for_module(
        "xbot_assets.celery_definitions", "defs", working_directory=str(deploy_local.ROOT)
    ).get_reconstructable_job(job_name)
    instance.add_dynamic_partitions("accounts", [handle])
    run = instance.create_run_for_job(
        recon_job.get_definition(), run_config=run_config, tags={"dagster/partition": handle}
    )
    if status == dg.DagsterRunStatus.FAILURE:
        instance.report_run_failed(instance.get_run_by_id(run.run_id))
    else:
        instance.report_run_canceling(instance.get_run_by_id(run.run_id))
    run = instance.get_run_by_id(run.run_id)
    assert run.status == status
    step = next(iter(recon_job.get_definition().graph.node_dict))
    plan = create_execution_plan(recon_job, run.run_config, step_keys_to_execute=[step])
    events = list(
        execute_plan_iterator(
            execution_plan=plan, job=recon_job, dagster_run=run, instance=instance,
            run_config=run.run_config,
        )
    )  # fmt: skip
    assert [e.event_type_value for e in events if e.is_step_event][-1] == "STEP_SUCCESS"
    (output,) = [e for e in events if e.event_type_value == "STEP_OUTPUT"]
    return {k: getattr(v, "value", v) for k, v in output.step_output_data.metadata.items()}


def test_every_op_of_the_celery_locations_jobs_stands_down_once_its_run_ended() -> None:
    """A redelivered step may arrive in any job the Celery location runs; an op added to one of
    them without the guard would act for a run that has already ended. The main location's
    engine jobs share these ops (in process nothing is redelivered, the guard costs one read)."""
    import dagster as dg

    from xbot_assets import celery_definitions
    from xbot_assets.defs import orchestration

    ops = {
        (job.name, node.definition.name): node.definition
        for job in celery_definitions.CELERY_JOBS.values()
        for node in job.graph.nodes
    }
    assert len(ops) >= 5  # refill, post (post and collect), collect, reconcile
    unguarded = sorted(key for key, op_def in ops.items() if not orchestration.stands_down(op_def))
    assert unguarded == []
    # the check reads the decorator, not the name: an op without it is caught
    bare = getattr(orchestration.refill_candidates.compute_fn, "decorated_fn").__wrapped__
    assert not orchestration.stands_down(dg.op(name="bare_refill")(bare))


def test_a_post_step_of_a_failed_run_stands_down_and_a_live_run_posts(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The posting step of a ``post_job`` run already FAILED posts nothing (the post stays
    queued, nothing on the sandbox) and says why in its output; the same post's live run (the
    in-process ``post_job``) posts it."""
    import dagster as dg

    from xbot_assets.defs.orchestration import post_job
    from xbot_assets.defs.resources import XbotRuntime, XbotSettings

    _celery_env(monkeypatch, f"xbot_late_test_{uuid.uuid4().hex[:8]}:celery:")
    handle, post_id = _queue_due_post(env)
    instance = dg.DagsterInstance.get()
    config = {"ops": {"post_due_posts": {"config": {"post_id": post_id}}}}
    metadata = _run_step_as_a_worker_would(
        instance, "post_job", handle, config, dg.DagsterRunStatus.FAILURE
    )
    assert metadata == {
        "stood_down": "run already FAILURE: a late redelivery of this step (Celery) does nothing"
    }
    assert _post_status(env, post_id) == ("queued", None)
    assert not _on_sandbox(env)

    live = post_job.execute_in_process(
        instance=instance, partition_key=handle, run_config=config,
        resources={"xbot_settings": XbotSettings(), "xbot_runtime": XbotRuntime()},
    )  # fmt: skip
    assert live.success
    status, x_id = _post_status(env, post_id)
    assert status == "posted" and x_id and _on_sandbox(env)
    outputs = [e for e in live.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert outputs and all("stood_down" not in e.step_output_data.metadata for e in outputs)


def test_a_refill_step_of_a_run_being_cancelled_refills_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``refill_candidates_job`` step whose run is CANCELING queues no candidate."""
    import dagster as dg

    from xbot_assets.engine.sensing import cached_store

    _celery_env(monkeypatch, f"xbot_late_test_{uuid.uuid4().hex[:8]}:celery:")
    store = cached_store(env.settings)
    account = store.ensure_account(env.settings.x_handle)
    config = {"ops": {"refill_candidates": {"config": {"n_candidates": 2}}}}
    metadata = _run_step_as_a_worker_would(
        dg.DagsterInstance.get(), "refill_candidates_job", account.handle, config,
        dg.DagsterRunStatus.CANCELING,
    )  # fmt: skip
    assert metadata == {
        "stood_down": "run already CANCELING: a late redelivery of this step (Celery) does nothing"
    }
    assert store.list_posts(account.id) == []


@pytest.mark.redis
@pytest.mark.xdist_group("celery_late_redelivery")
@pytest.mark.timeout(300)
def test_a_real_worker_given_the_step_of_a_failed_run_stands_down(env: Env, tmp_path: Path) -> None:
    """The real thing on Redis DB 9: a ``post_job`` run of the Celery location (``dagster job
    execute``) for a due post submits its posting step while no worker listens; the run is
    failed (as run monitoring fails a run whose coordinator died) and its coordinator
    SIGKILLed; a ``dagster-celery worker`` started afterwards receives the step, runs it, and
    it stands down: the post still queued, not on the sandbox, the step's output saying why."""
    import dagster as dg
    import redis

    from xbot_assets.celery_definitions import worker_config

    client = redis.Redis(port=6379, db=BROKER_DB)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("needs the Redis server on 127.0.0.1:6379")
    prefix = f"xbot_late_test_{uuid.uuid4().hex[:8]}:celery:"
    handle, post_id = _queue_due_post(env)
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("accounts", [handle])  # also creates the SQLite storage
    base = dict(os.environ, DO_NOT_TRACK="1", PYTHONUNBUFFERED="1",
                XBOT_CELERY_BROKER_URL=BROKER, XBOT_CELERY_BACKEND_URL=BROKER,
                XBOT_CELERY_KEY_PREFIX=prefix,
                PATH=f"{deploy_local.BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # fmt: skip
    (tmp_path / "post.yaml").write_text(
        yaml.safe_dump({"ops": {"post_due_posts": {"config": {"post_id": post_id}}}})
    )
    (tmp_path / "worker.yaml").write_text(
        yaml.safe_dump(worker_config(BROKER, BROKER, 600, key_prefix=prefix))
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, argv: list[str]) -> None:
        with open(tmp_path / f"{name}.log", "wb") as out:
            procs[name] = subprocess.Popen(
                argv, cwd=deploy_local.ROOT, env=base, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def log(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text()

    def alive(name: str) -> None:
        if procs[name].poll() is not None:
            raise AssertionError(f"{name} exited: {log(name)[-3000:]}")

    def queued() -> int:
        lists = client.scan_iter(match=prefix + "dagster*", count=500)
        return sum(int(client.llen(key)) for key in lists)

    def step_events(run_id: str) -> list[Any]:
        return [e for e in instance.all_logs(run_id) if e.dagster_event is not None]

    try:
        start("run", [str(deploy_local.BIN / "dagster"), "job", "execute", "-m",
                      "xbot_assets.celery_definitions", "-a", "defs", "-j", "post_job",
                      "--tags", json.dumps({"dagster/partition": handle}),
                      "-c", str(tmp_path / "post.yaml")])  # fmt: skip
        wait_for(queued, 120, "the posting step in the queue", check=lambda: alive("run"))
        (run,) = instance.get_runs(dg.RunsFilter(job_name="post_job"))
        assert run.status == dg.DagsterRunStatus.STARTED
        instance.report_run_failed(run)  # what run monitoring does once the coordinator is gone
        os.killpg(procs["run"].pid, signal.SIGKILL)  # the coordinator dies (no revoke)
        procs["run"].wait(timeout=10)
        assert queued() == 1 and _post_status(env, post_id) == ("queued", None)

        start("worker", [str(deploy_local.BIN / "dagster-celery"), "worker", "start", "-A",
                         "dagster_celery.app", "-y", str(tmp_path / "worker.yaml"), "-n", "w1",
                         "-i", "xbot_assets.celery_definitions", "--", "--pool=solo",
                         "--concurrency=1", "--without-gossip", "--without-mingle"])  # fmt: skip
        done = wait_for(
            lambda: [e for e in step_events(run.run_id)
                     if e.dagster_event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")],
            150, "the redelivered step to end", check=lambda: alive("worker"),
        )  # fmt: skip
    finally:
        stop_groups(procs.values())
        for key in client.scan_iter(match=prefix + "*", count=500):
            client.delete(key)
        client.close()

    assert [e.dagster_event.event_type_value for e in done] == ["STEP_SUCCESS"], log("worker")
    assert _post_status(env, post_id) == ("queued", None)  # the step posted nothing
    assert not _on_sandbox(env)
    events = step_events(run.run_id)
    worker = [
        e.dagster_event.engine_event_data.metadata["Celery worker"].value for e in events
        if e.dagster_event.event_type_value == "ENGINE_EVENT"
        and "Celery worker" in e.dagster_event.engine_event_data.metadata
    ]  # fmt: skip
    assert worker and worker[0].startswith("w1"), worker  # the worker ran the step
    (output,) = [e for e in events if e.dagster_event.event_type_value == "STEP_OUTPUT"]
    metadata = output.dagster_event.step_output_data.metadata
    assert metadata["stood_down"].value == (
        "run already FAILURE: a late redelivery of this step (Celery) does nothing"
    )
    assert any(
        "stands down" in (e.user_message or "") and run.run_id in e.user_message
        for e in instance.all_logs(run.run_id)
    )
    ended = instance.get_run_by_id(run.run_id)
    assert ended is not None and ended.status == dg.DagsterRunStatus.FAILURE
