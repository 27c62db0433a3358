"""`make deploy-local ARGS="--celery N"` (scripts/deploy_local.py): the local deployment over
workspace.celery.yaml with N Celery workers, the same worker start, wait and stop as the Celery
rehearsal's (benchmarks/celery_rehearsal.py), bad input refused before anything starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import deploy_local, processes

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)

BROKER_DB = 8
"""The end-to-end test's broker DB (the Celery rehearsal tests use 10, 11, 14 and 15)."""


class _Started(Exception):
    """Raised by the stand-in for ``LocalDeployment.prepare``: the deployment began to start."""


@pytest.fixture
def no_start(monkeypatch: pytest.MonkeyPatch) -> list[deploy_local.LocalDeployment]:
    """Deployments ``main`` would start, recorded instead (prepare raises, nothing is created),
    and the test process's signal handlers left alone."""
    made: list[deploy_local.LocalDeployment] = []

    def prepare(self: deploy_local.LocalDeployment) -> None:
        made.append(self)
        raise _Started

    monkeypatch.setattr(deploy_local.LocalDeployment, "prepare", prepare)
    monkeypatch.setattr(deploy_local.LocalDeployment, "close", lambda self: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    return made


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--celery", "-1"], "--celery -1: give the number of Celery workers"),
        (["--celery", "2", "--redis-db", "3", "--broker-db", "3"], "own (e.g. --broker-db 9)"),
        (["--celery", "1", "--broker-db", "9", "--redis-db", "9"], "own (e.g. --broker-db 8)"),
    ],
)
def test_bad_arguments_exit_2_with_what_to_do_before_anything_starts(
    tmp_path: Path,
    no_start: list[deploy_local.LocalDeployment],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    folder = tmp_path / "dl"
    assert deploy_local.main([*argv, "--folder", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deploy-local: ") and says in err
    assert err.count("\n") == 1  # one line
    assert no_start == [] and not folder.exists()


@pytest.mark.parametrize("missing", ["module", "executable"])
def test_celery_mode_without_dagster_celery_exits_2_saying_make_install(
    tmp_path: Path,
    no_start: list[deploy_local.LocalDeployment],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
) -> None:
    if missing == "module":
        import importlib.util

        find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec",
            lambda name, *a: None if name == "dagster_celery" else find_spec(name, *a),
        )  # fmt: skip
    else:  # installed without its commands (another environment's python)
        monkeypatch.setattr(deploy_local, "BIN", tmp_path / "bin")
    assert deploy_local.main(["--celery", "1", "--folder", str(tmp_path / "dl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deploy-local: ") and "run `make install`" in err
    assert err.count("\n") == 1
    assert no_start == []
    # without --celery the same machine starts today's deployment
    with pytest.raises(_Started):
        deploy_local.main(["--folder", str(tmp_path / "dl")])


def test_the_script_exits_2_on_bad_input_as_a_process(tmp_path: Path) -> None:
    """``--pg-port 1``: should the check let it through, the deployment fails at its first
    connection instead of starting."""
    done = subprocess.run(
        [sys.executable, str(deploy_local.ROOT / "scripts/deploy_local.py"), "--celery", "-1",
         "--pg-port", "1", "--folder", str(tmp_path / "dl")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("deploy-local: --celery -1")
    assert not (tmp_path / "dl").exists()


def test_celery_n_starts_the_celery_deployment_and_0_todays(
    tmp_path: Path, no_start: list[deploy_local.LocalDeployment]
) -> None:
    with pytest.raises(_Started):
        deploy_local.main(["--celery", "2", "--broker-db", "7", "--folder", str(tmp_path)])
    with pytest.raises(_Started):
        deploy_local.main(["--folder", str(tmp_path)])
    celery, plain = no_start
    assert isinstance(celery, deploy_local.CeleryLocalDeployment)
    assert (celery.worker_names, celery.broker_db) == (["worker_1", "worker_2"], 7)
    assert celery.workspace == "workspace.celery.yaml"
    assert type(plain) is deploy_local.LocalDeployment
    assert plain.workspace == "workspace.yaml"


def _celery_dep(tmp_path: Path, **kwargs: Any) -> deploy_local.CeleryLocalDeployment:
    dep = deploy_local.CeleryLocalDeployment(
        folder=tmp_path, ports={"sandbox": 1, "webserver": 2, "health": 3}, **kwargs
    )
    (tmp_path / "logs").mkdir(exist_ok=True)
    return dep


def test_the_workers_command_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker: ``dagster-celery worker start -A dagster_celery.app -y <worker_config()>``
    named after it, importing the Celery location, with the broker and backend on the broker
    DB and the environment's bin first on PATH (so ``celery`` is found)."""
    import shutil

    from xbot_assets.celery_definitions import VISIBILITY_TIMEOUT_S, worker_config

    dep = _celery_dep(tmp_path, worker_count=2, broker_db=BROKER_DB)
    started: dict[str, list[str]] = {}

    def start(name: str, argv: list[str]) -> Any:
        started[name] = argv
        return object()

    monkeypatch.setattr(dep, "start", start)
    dep.launch_workers(*dep.worker_names)
    assert list(started) == ["worker_1", "worker_2"]
    for name, argv in started.items():
        assert argv[:5] == [str(deploy_local.BIN / "dagster-celery"), "worker", "start", "-A",
                            "dagster_celery.app"]  # fmt: skip
        assert argv[argv.index("-n") + 1] == name
        assert argv[argv.index("-i") + 1] == "xbot_assets.celery_definitions"
        assert argv[argv.index("--") :] == ["--", "--pool=solo", "--concurrency=1",
                                            "--without-gossip", "--without-mingle"]  # fmt: skip
        config = yaml.safe_load(Path(argv[argv.index("-y") + 1]).read_text())
        url = f"redis://127.0.0.1:6379/{BROKER_DB}"
        # the location's 600 s, and the deployment's own key prefix (the runs' in env())
        assert config == worker_config(url, url, VISIBILITY_TIMEOUT_S, dep.celery_key_prefix)
    env = dep.env()
    assert env["XBOT_CELERY_BROKER_URL"] == env["XBOT_CELERY_BACKEND_URL"] == url
    assert env["XBOT_CELERY_KEY_PREFIX"] == dep.celery_key_prefix == f"{dep.name}:celery:"
    assert env["PATH"].split(os.pathsep)[0] == str(deploy_local.BIN)
    assert shutil.which("celery", path=env["PATH"]) == str(deploy_local.BIN / "celery")
    assert env["REDIS_URL"] == "redis://127.0.0.1:6379/0"  # the store's DB is not the broker's
    # today's deployment has no broker
    plain = deploy_local.LocalDeployment(folder=tmp_path, ports=dep.ports).env()
    assert plain.get("XBOT_CELERY_BROKER_URL") == os.environ.get("XBOT_CELERY_BROKER_URL")


def test_the_connection_budget_counts_the_workers_and_both_locations_code_servers(
    tmp_path: Path,
) -> None:
    plain = deploy_local.LocalDeployment(folder=tmp_path).connection_budget()
    celery = deploy_local.CeleryLocalDeployment(folder=tmp_path, worker_count=3)
    budget = celery.connection_budget()
    # two more code servers (the Celery location's, in the daemon and the webserver), 3 workers
    assert budget.total() - plain.total() == (2 + 3) * plain.per_process
    assert budget.by_process()["celery_workers"] == 3 * plain.per_process
    with pytest.raises(ValueError, match="start fewer Celery workers"):
        budget.check(budget.total())  # the superuser reserve leaves too little


def test_the_rehearsal_starts_its_workers_through_the_same_code_with_its_own_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import celery_rehearsal

    dep = celery_rehearsal.CeleryDeployment(
        folder=tmp_path, ports={"sandbox": 1}, broker_db=10, visibility_timeout=15
    )
    (tmp_path / "logs").mkdir()
    assert isinstance(dep, deploy_local.CeleryLocalDeployment)
    argv: list[list[str]] = []
    monkeypatch.setattr(dep, "start", lambda name, a: argv.append(a))
    dep.launch_workers(*celery_rehearsal.WORKERS)
    assert [a[a.index("-n") + 1] for a in argv] == ["worker_a", "worker_b"]
    config = yaml.safe_load((tmp_path / "celery_worker.yaml").read_text())["execution"]["config"]
    assert config["broker"] == "redis://127.0.0.1:6379/10"
    assert config["config_source"]["broker_transport_options"]["visibility_timeout"] == 15
    assert dep.env()["XBOT_CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/10"


def test_a_worker_is_ready_when_its_log_says_so_and_its_celery_process_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting reads the worker's log from where it stood at launch (a restart's old
    " ready." does not count); the pid recorded is the wrapper's child (celery's process)."""
    dep = _celery_dep(tmp_path, worker_count=1)
    (tmp_path / "logs" / "worker_1.log").write_text("celery@old ready.\n")  # a previous start
    script = "sleep 1; echo 'celery@worker_1 ready.'; sleep 60; :"  # `:`: sleep stays a child
    monkeypatch.setattr(dep, "worker_argv", lambda name, config: ["sh", "-c", script])
    ready: list[tuple[str, int]] = []
    monkeypatch.setattr(dep, "worker_ready", lambda name, pid: ready.append((name, pid)))
    t0 = time.monotonic()
    try:
        dep.start_workers("worker_1")
        assert time.monotonic() - t0 >= 1  # not the old line
        wrapper = dep.procs["worker_1"].pid
        (child,) = processes.children(wrapper)
        assert dep.workers == {"worker_1": child} and dep.worker_pids == {child: "worker_1"}
        assert ready == [("worker_1", child)]
    finally:
        dep.stop("worker_1", grace=5)
    # a worker that exits before it is ready fails the start with its log
    monkeypatch.setattr(dep, "worker_argv", lambda name, c: ["sh", "-c", "echo no broker; exit 3"])
    with pytest.raises(RuntimeError, match=r"worker_2 exited \(3\).*no broker"):
        dep.start_workers("worker_2")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_deploy_local_celery_posts_through_a_worker_and_ctrl_c_stops_the_workers(
    tmp_path: Path,
) -> None:
    """`deploy_local.py --celery 1` at a rehearsal speed, as a user starts it: once it is
    ready, a due post seeded in its store is launched by the Celery location's posting sensor
    and its posting step starts in the worker's process; Ctrl-C (SIGINT) then stops everything,
    the worker included, drops the databases and empties the broker DB."""
    import redis

    from benchmarks import celery_rehearsal as rehearsal
    from tests.deploy.test_deploy_local import _databases

    log = tmp_path / "deploy_local.stderr"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(deploy_local.ROOT / "scripts/deploy_local.py"), "--celery", "1",
             "--broker-db", str(BROKER_DB), "--speed", "120", "--folder", str(tmp_path)],
            cwd=deploy_local.ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
            start_new_session=True,
        )  # fmt: skip
    mirror: rehearsal.CeleryDeployment | None = None
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready.get("ready"), log.read_text()[-2000:]
        assert ready["workspace"] == "workspace.celery.yaml"
        assert ready["broker"] == f"redis://127.0.0.1:6379/{BROKER_DB}"
        (worker,) = ready["workers"].values()
        assert Path(worker["log"]).exists() and worker["log"].startswith(ready["logs"])
        # the deployment's environment, seen from here (the rehearsal's helpers read it)
        mirror = rehearsal.CeleryDeployment(
            folder=Path(ready["logs"]).parent, name=ready["name"], ports=ready["ports"],
            speed=120, broker_db=BROKER_DB,
        )  # fmt: skip
        mirror.epoch = datetime.fromisoformat(ready["clock_epoch"])
        _no_quiet_hours(mirror)
        rehearsal.seed_due_posts(mirror)
        with mirror.instance() as instance:
            step = rehearsal.wait_for(
                lambda: _posting_step_on(instance, worker["pid"]), 240,
                "a post run's posting step to succeed in the worker's process", every=2,
            )  # fmt: skip
        assert step["location"] == "xbot_celery"
        assert step["coordinator_pid"] != worker["pid"]
        seeded = "One post for @xbot_sandbox: ship small, ship daily."
        rehearsal.wait_for(lambda: seeded in [p["text"] for p in rehearsal.journal_posts(mirror)],
                           30, "the seeded post on the sandbox")  # fmt: skip
        assert rehearsal.posted_rows(mirror) >= 1
        check = rehearsal.posts_check(mirror)
        assert check["duplicate_posts"] == 0 and check["posts_on_sandbox"] >= 1
        pids = [worker["pid"], *processes.children(proc.pid)]
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, log.read_text()[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"stopped": True, "by": "signal"}
        assert [p for p in pids if processes.alive(p)] == []
        assert mirror.leftover_pids() == []  # nothing with the deployment's environment
        assert _databases(ready["name"]) == []
        broker = redis.Redis(port=6379, db=BROKER_DB)
        assert ready["celery_key_prefix"] == f"{ready['name']}:celery:"
        assert list(broker.scan_iter(match=ready["celery_key_prefix"] + "*")) == []
        broker.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if mirror is not None:
            mirror.close()  # anything the deployment left, should it have failed


def _no_quiet_hours(dep: deploy_local.LocalDeployment) -> None:
    """No quiet hours in the deployment's bot_config ``schedule``: deploy-local's clock starts at
    the wall clock's time, and a due post is held, not sent, inside the quiet hours (23:00-07:00
    by default), so at night the seeded post would wait for the morning."""
    code = (
        "from xbot_assets.config import load_settings\n"
        "from xbot_assets.store.durable import DurableStore\n"
        "store = DurableStore.from_settings(load_settings())\n"
        "store.set_config('schedule', {'quiet_start_hour': 0, 'quiet_end_hour': 0}, actor='test')\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=dep.env(), cwd=deploy_local.ROOT,
                   check=True, capture_output=True, timeout=300)  # fmt: skip


def _posting_step_on(instance: Any, pid: int) -> dict[str, Any] | None:
    """The first post run whose posting step started and succeeded in process ``pid``."""
    import dagster as dg

    from benchmarks import celery_rehearsal as rehearsal

    for record in instance.get_run_records(dg.RunsFilter(job_name="post_job")):
        run = record.dagster_run
        steps = [
            a for a in rehearsal.step_attempts(instance, run.run_id, {pid: "worker_1"})
            if a["step"] == rehearsal.POST_STEP and a["pid"] == pid
        ]  # fmt: skip
        if {"STEP_START", "STEP_SUCCESS"} <= {a["event"] for a in steps}:
            return {
                "run_id": run.run_id,
                "location": rehearsal.run_location(run),
                "coordinator_pid": rehearsal._run_start_pid(instance, run.run_id),
            }
    return None
