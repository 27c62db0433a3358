"""Deployments sharing a Celery broker DB stay apart by the key prefix of the broker and result
backend (``XBOT_CELERY_KEY_PREFIX``, kombu's and Celery's ``global_keyprefix``).

Before it, every deployment on one broker DB shared the queue ``dagster`` and kombu's
``unacked`` keys, so one deployment's workers took and ran the other's steps (a CI run failed
that way: another checkout ran the same Celery test on the same DB at the same time).

The setting (its default, its rules, read when a run starts and never at import), the workers'
YAML and ``CeleryLocalDeployment``'s per-deployment prefix are checked without Redis; then two
deployments' real ``celery worker`` processes share Redis DB 4 (this file's own): each runs only
its own deployment's tasks, a task killed mid-run goes back to its own deployment's workers
only, and every key the broker and backend write (seen through Redis' MONITOR, transient ones
such as ``unacked_mutex`` included) carries its deployment's prefix.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import deploy_local
from xbot_assets.config import ConfigError, load_settings

pytest.importorskip(
    "dagster_celery",
    reason="dagster-celery is in the 'celery' dependency group (make install syncs every group)",
)

BROKER_DB = 4
"""This file's broker DB (the other Celery tests use 6-8, 10, 11, 14 and 15)."""
BROKER = f"redis://127.0.0.1:6379/{BROKER_DB}"
POST_JOB_CONFIG = {"ops": {"post_due_posts": {"config": {"post_id": 0}}}}


# --- the setting ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "local:celery:"),
        ({"APP_ENV": "staging", "DATABASE_URL": "sqlite:///s.db"}, "stg:celery:"),
        ({"APP_ENV": "production", "DATABASE_URL": "postgresql://h/db"}, "prod:celery:"),
        ({"REDIS_PREFIX": "xbot_dl_1234abcd:"}, "xbot_dl_1234abcd:celery:"),
        ({"XBOT_CELERY_KEY_PREFIX": ""}, "local:celery:"),  # empty is unset, as REDIS_PREFIX
        (
            {
                "APP_ENV": "production",
                "DATABASE_URL": "postgresql://h/db",
                "XBOT_CELERY_KEY_PREFIX": "prod:eu:celery:",
            },
            "prod:eu:celery:",
        ),
    ],
)
def test_the_prefix_defaults_to_the_environments_redis_prefix_and_celery(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env_file=None)
    assert settings.resolved_celery_key_prefix == expected
    assert settings.masked()["resolved"]["celery_key_prefix"] == expected


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"XBOT_CELERY_KEY_PREFIX": "no colon"}, "ending with ':'"),
        ({"XBOT_CELERY_KEY_PREFIX": "celery"}, "ending with ':'"),
        ({"XBOT_CELERY_KEY_PREFIX": "c*:"}, "letters, digits and _.:- only"),
        ({"APP_ENV": "production", "DATABASE_URL": "postgresql://h/db",
          "XBOT_CELERY_KEY_PREFIX": "stg:celery:"}, "XBOT_CELERY_KEY_PREFIX=prod:celery:"),
        ({"APP_ENV": "staging", "DATABASE_URL": "sqlite:///s.db",
          "XBOT_CELERY_KEY_PREFIX": "celery:"}, "XBOT_CELERY_KEY_PREFIX=stg:celery:"),
        ({"XBOT_CELERY_KEY_PREFIX": "prod:celery:"}, "belongs to another environment"),
        ({"XBOT_CELERY_KEY_PREFIX": "local:"}, "the hot store's REDIS_PREFIX itself"),
    ],
)  # fmt: skip
def test_a_bad_prefix_refuses_to_start_naming_the_setting(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="XBOT_CELERY_KEY_PREFIX") as raised:
        load_settings(env_file=None)
    assert needle in str(raised.value)


def test_xbot_exits_2_on_a_bad_prefix_with_one_line(tmp_path: Path) -> None:
    from tests.foundation.conftest import subprocess_env

    proc = subprocess.run(
        [sys.executable, "-m", "xbot_assets.cli", "settings"], cwd=tmp_path, timeout=120,
        env=subprocess_env(tmp_path, XBOT_CELERY_KEY_PREFIX="two words:"),
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "XBOT_CELERY_KEY_PREFIX='two words:'" in lines[0], proc.stderr


# --- the executor (producer) and the workers (consumers) ---------------------------------------
def _executor_settings(job: Any) -> dict[str, Any]:
    """The Celery app settings a run of ``job`` starts with, resolved as Dagster does at run
    start (the run's config, with the configured executor's function)."""
    from dagster._core.system_config.objects import ResolvedRunConfig

    config = ResolvedRunConfig.build(job, POST_JOB_CONFIG).execution.execution_engine_config
    return dict(config)


def test_the_executor_reads_the_prefix_when_a_run_starts_never_at_import(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importing the location and building its definitions reads no prefix (a bad one does not
    stop them); each run's config reads the environment of that moment, and a bad value fails
    the run with the setting's one line."""
    import dagster as dg

    monkeypatch.setenv("XBOT_CELERY_KEY_PREFIX", "not a prefix")
    from xbot_assets import celery_definitions

    celery_definitions.defs().get_repository_def().get_job("post_job")
    job = celery_definitions.CELERY_JOBS["post_job"]
    with pytest.raises(dg.DagsterConfigMappingFunctionError) as raised:
        _executor_settings(job)
    assert isinstance(raised.value.__cause__, ConfigError)
    assert "XBOT_CELERY_KEY_PREFIX='not a prefix'" in str(raised.value.__cause__)

    monkeypatch.setenv("XBOT_CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("XBOT_CELERY_BACKEND_URL", BROKER)
    for prefix in ("one:celery:", "two:celery:"):
        monkeypatch.setenv("XBOT_CELERY_KEY_PREFIX", prefix)
        config = _executor_settings(job)
        assert (config["broker"], config["backend"]) == (BROKER, BROKER)
        source = config["config_source"]
        assert source["broker_transport_options"]["global_keyprefix"] == prefix
        assert source["result_backend_transport_options"] == {"global_keyprefix": prefix}
        assert source["broker_transport_options"]["visibility_timeout"] == 600
    monkeypatch.delenv("XBOT_CELERY_KEY_PREFIX")
    monkeypatch.setenv("REDIS_PREFIX", "xbot_dl_feed:")
    assert _executor_settings(job)["config_source"]["result_backend_transport_options"] == {
        "global_keyprefix": "xbot_dl_feed:celery:"
    }


def test_the_workers_yaml_carries_the_prefix_the_runs_use(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xbot_assets.celery_definitions import worker_config

    source = worker_config(BROKER, BROKER, 45, key_prefix="w:celery:")["execution"]["config"][
        "config_source"
    ]
    assert source["broker_transport_options"]["global_keyprefix"] == "w:celery:"
    assert source["result_backend_transport_options"]["global_keyprefix"] == "w:celery:"
    monkeypatch.setenv("XBOT_CELERY_KEY_PREFIX", "env:celery:")  # None: as the runs read it
    assert (
        worker_config(BROKER, BROKER)["execution"]["config"]["config_source"][
            "broker_transport_options"
        ]["global_keyprefix"]
        == "env:celery:"
    )
    with pytest.raises(ConfigError, match="XBOT_CELERY_KEY_PREFIX='w'"):
        worker_config(BROKER, BROKER, key_prefix="w")


# --- deploy-local ------------------------------------------------------------------------------
def test_each_local_deployment_has_a_prefix_of_its_own_for_runs_and_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``CeleryLocalDeployment`` on the same broker DB (two test suites on one machine)
    get different prefixes by default; the runs' environment and the workers' YAML agree; the
    option overrides it."""
    one, two = (
        deploy_local.CeleryLocalDeployment(folder=tmp_path / n, ports={"sandbox": 1}, broker_db=9)
        for n in ("one", "two")
    )
    assert one.celery_key_prefix == f"{one.name}:celery:" != two.celery_key_prefix
    assert one.celery_key_prefix.startswith(one.env()["REDIS_PREFIX"])
    assert one.env()["XBOT_CELERY_KEY_PREFIX"] == one.celery_key_prefix
    one.folder.mkdir(parents=True)
    config = yaml.safe_load(one.write_worker_config().read_text())["execution"]["config"]
    assert config["config_source"]["broker_transport_options"]["global_keyprefix"] == (
        one.celery_key_prefix
    )
    assert config["config_source"]["result_backend_transport_options"]["global_keyprefix"] == (
        one.celery_key_prefix
    )
    given = deploy_local.CeleryLocalDeployment(
        folder=tmp_path, ports={"sandbox": 1}, key_prefix="ci_42:celery:"
    )
    assert given.env()["XBOT_CELERY_KEY_PREFIX"] == given.celery_key_prefix == "ci_42:celery:"


@pytest.mark.parametrize("prefix", ["two words:", "nocolon", "prod:celery:"])
def test_deploy_local_refuses_a_bad_prefix_before_anything_starts(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_local.main(["--celery", "1", "--celery-key-prefix", prefix]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deploy-local: --celery-key-prefix: XBOT_CELERY_KEY_PREFIX=")


# --- two deployments' real workers on one broker DB --------------------------------------------
class RedisMonitor:
    """Every command Redis runs on one DB from :meth:`start` to :meth:`stop` (MONITOR)."""

    STOP = "prefix-test-monitor-stop"

    def __init__(self, db: int) -> None:
        self.db = db
        self.commands: list[str] = []
        self.complete = False
        """Whether the monitor saw every command up to :meth:`stop` (its connection held)."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        import redis

        # no read timeout (redis-py's default is 5 s): the server may be quiet for longer
        client = redis.Redis(port=6379, socket_timeout=None)
        with client.monitor() as monitor:
            self._started.set()
            for command in monitor.listen():
                if command["command"] == f"ECHO {self.STOP}":
                    self.complete = True
                    break
                if command["db"] == self.db:
                    self.commands.append(command["command"])
        client.close()

    def start(self) -> None:
        self._thread.start()
        assert self._started.wait(10)

    def stop(self) -> None:
        import redis

        client = redis.Redis(port=6379, db=self.db)
        client.echo(self.STOP)
        client.close()
        self._thread.join(10)


KEYLESS = frozenset({
    "AUTH", "CLIENT", "COMMAND", "DBSIZE", "DISCARD", "ECHO", "EXEC", "HELLO", "INFO", "MULTI",
    "PING", "QUIT", "RESET", "SCAN", "SCRIPT", "SELECT", "TIME", "UNWATCH",
})  # fmt: skip
MANY_KEYS = frozenset({
    "DEL", "UNLINK", "EXISTS", "WATCH", "MGET", "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
})  # fmt: skip


def command_keys(command: str) -> list[str]:
    """The keys (and pub/sub channels) a monitored command names."""
    name, *args = command.split(" ")
    name = name.upper()
    if name in KEYLESS:
        return []
    if name in ("EVALSHA", "EVAL"):
        return args[2 : 2 + int(args[1])]
    if name in ("BRPOP", "BLPOP"):
        return args[:-1]
    if name in MANY_KEYS:
        return args
    return args[:1]


def test_command_keys_reads_the_keys_of_what_kombu_and_celery_send() -> None:
    assert command_keys("BRPOP a:dagster a:dagster\\x06\\x163 1") == [
        "a:dagster",
        "a:dagster\\x06\\x163",
    ]
    assert command_keys("EVALSHA c3f8 1 a:unacked_mutex token") == ["a:unacked_mutex"]
    assert command_keys("set a:unacked_mutex t NX PX 300000") == ["a:unacked_mutex"]
    assert command_keys("del a:x a:y") == ["a:x", "a:y"]
    assert command_keys("MULTI") == command_keys("UNSUBSCRIBE") == []


class Workers:
    """``celery worker`` processes of the test app (``tests/deploy/celery_prefix_app.py``),
    each in a process group of its own, stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, deployment: str, prefix: str, *names: str) -> None:
        """Start a worker for each name of ``deployment`` (its key prefix), wait until all
        are ready."""
        for name in names:
            env = dict(os.environ, PREFIX_TEST_BROKER=BROKER, PREFIX_TEST_KEY_PREFIX=prefix,
                       PREFIX_TEST_VISIBILITY=str(VISIBILITY_S),
                       PREFIX_TEST_WORKER=name)  # fmt: skip
            with open(self.log(name), "wb") as log:
                self.procs[name] = subprocess.Popen(
                    [str(deploy_local.BIN / "celery"), "-A", "tests.deploy.celery_prefix_app",
                     "worker", "-n", f"{name}@%h", "--pool=solo", "--concurrency=1",
                     "--without-gossip", "--without-mingle", "-l", "INFO"],
                    cwd=deploy_local.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
        for name in names:
            self.wait_ready(name)

    def wait_ready(self, name: str) -> None:
        wait_for(lambda: " ready." in self.log(name).read_text(), 120, f"{name} ready",
                 check=lambda: self.alive(name))  # fmt: skip

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited: {self.log(name).read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


VISIBILITY_S = 4
"""The workers' visibility timeout: a killed worker's task is back on its queue after it."""


def stop_groups(procs: Iterable[subprocess.Popen[Any]]) -> None:
    """SIGTERM each started process group still running, wait 30 s, then SIGKILL it."""
    started = list(procs)
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    check: Callable[[], object] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(0.2)


@pytest.fixture
def broker_db() -> Iterator[Any]:
    """Redis DB 4 (this file's), emptied of this file's keys afterwards."""
    import redis

    client = redis.Redis(port=6379, db=BROKER_DB)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("needs the Redis server on 127.0.0.1:6379")
    yield client
    clean(client)
    client.close()


def clean(client: Any) -> None:
    """Delete this file's keys from its broker DB: the test run's prefixes, and what Celery
    leaves without a prefix (should the prefix be lost, as before the fix)."""
    for pattern in ("xbot_prefix_test_*", *deploy_local.CELERY_KEYS):
        for key in client.scan_iter(match=pattern, count=500):
            client.delete(key)


@pytest.mark.redis
@pytest.mark.timeout(240)
def test_two_deployments_on_one_broker_db_each_run_only_their_own_tasks(
    tmp_path: Path, broker_db: Any
) -> None:
    """Deployment A (workers a1, a2) and B (worker b1) share broker DB 4, each under its own
    prefix. A task of A sent while only B has a worker waits in A's queue (before the prefix,
    b1 took it); then each deployment's tasks run on its own workers only; a task whose worker
    is SIGKILLed mid-run comes back, after the visibility timeout, on A's other worker and
    never B's; and every key (and pub/sub channel) the broker and backend touched carries its
    deployment's prefix, kombu's ``unacked``, ``unacked_index`` and ``unacked_mutex`` among
    them."""
    from tests.deploy.celery_prefix_app import make

    run = uuid.uuid4().hex[:8]
    prefix = {d: f"xbot_prefix_test_{run}:{d}:celery:" for d in ("a", "b")}
    apps = {d: make(BROKER, prefix[d], VISIBILITY_S) for d in prefix}
    monitor = RedisMonitor(BROKER_DB)
    monitor.start()
    workers = Workers(tmp_path)
    try:
        workers.start("b", prefix["b"], "b1")
        early = apps["a"].send_task("prefix_test.whoami")
        assert apps["b"].send_task("prefix_test.whoami").get(timeout=30) == "b1"
        time.sleep(2)  # b1 is idle and polling: time enough to take A's task, were it shared
        assert early.state == "PENDING", "B's worker took A's task"
        assert broker_db.llen(prefix["a"] + "dagster") == 1  # waiting in A's own queue
        assert early.id not in workers.log("b1").read_text()

        workers.start("a", prefix["a"], "a1", "a2")
        assert early.get(timeout=30) in ("a1", "a2")
        sent = [(d, apps[d].send_task("prefix_test.whoami")) for _ in range(4) for d in "ab"]
        ran = [(d, result.get(timeout=30)) for d, result in sent]
        assert all(name.startswith(d) for d, name in ran), ran

        held = apps["a"].send_task("prefix_test.hold", args=[2])
        started = wait_for(lambda: held.state == "STARTED" and held.info, 30, "hold to start")
        killed = started["hostname"].split("@")[0]
        os.kill(int(started["pid"]), signal.SIGKILL)
        survivor = held.get(timeout=VISIBILITY_S + 30)
        assert survivor in ("a1", "a2") and survivor != killed
        assert held.id not in workers.log("b1").read_text()

        left = sorted(k.decode() for k in broker_db.scan_iter(count=500))
    finally:
        workers.stop()
        monitor.stop()

    assert left and [k for k in left if not k.startswith(tuple(prefix.values()))] == []
    assert monitor.complete, "the MONITOR connection ended early: commands may be missing"
    keys = {key for command in monitor.commands for key in command_keys(command)}
    assert keys and sorted(k for k in keys if not k.startswith(tuple(prefix.values()))) == []
    for name in ("dagster", "unacked", "unacked_index", "unacked_mutex", "_kombu.binding.dagster"):
        assert prefix["a"] + name in keys, name
    assert any(k.startswith(prefix["a"] + "celery-task-meta-") for k in keys)
    assert any(k.startswith(prefix["b"] + "celery-task-meta-") for k in keys)


# --- end to end through dagster-celery ---------------------------------------------------------
E2E_DB = 3
E2E_BROKER = f"redis://127.0.0.1:6379/{E2E_DB}"
JOB_MODULE = "tests.deploy.celery_prefix_job"


@pytest.mark.redis
@pytest.mark.timeout(300)
def test_through_dagster_celery_a_run_is_served_only_by_its_own_deployments_workers(
    tmp_path: Path,
) -> None:
    """The real thing on Redis DB 3: ``dagster-celery worker start`` with the YAML of
    ``worker_config(..., key_prefix=...)`` and runs of a job on ``xbot_celery_executor``
    (``dagster job execute``), whose prefix comes from ``XBOT_CELERY_KEY_PREFIX`` when the run
    starts. A's run, while only B's worker is up, waits with its step in A's queue (before the
    prefix, B's worker ran it); A's worker then runs it, B's run runs on B's worker, and every
    key in the DB carries one of the two prefixes."""
    import dagster as dg
    import redis

    from tests.deploy.celery_prefix_job import RAN_ON
    from xbot_assets.celery_definitions import worker_config

    client = redis.Redis(port=6379, db=E2E_DB)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("needs the Redis server on 127.0.0.1:6379")
    run = uuid.uuid4().hex[:8]
    prefix = {d: f"xbot_prefix_test_{run}:{d}:celery:" for d in ("a", "b")}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # its SQLite storage, once:
        instance.get_runs(limit=1)  # the worker and the run creating it at once race
    base = dict(os.environ, DAGSTER_HOME=str(home), DO_NOT_TRACK="1", PYTHONUNBUFFERED="1",
                PATH=f"{deploy_local.BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # fmt: skip
    for name in ("XBOT_CELERY_BROKER_URL", "XBOT_CELERY_BACKEND_URL", "XBOT_CELERY_KEY_PREFIX"):
        base.pop(name, None)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(name: str) -> Path:
        return tmp_path / f"{name}.log"

    def start(name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        with open(log(name), "wb") as out:
            procs[name] = subprocess.Popen(
                argv, cwd=deploy_local.ROOT, env={**base, **env}, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return procs[name]

    def deployment_env(deployment: str) -> dict[str, str]:
        """What a deployment's processes share, its runs and its workers alike (a step resolves
        the run's executor config again in the worker)."""
        return {"XBOT_CELERY_BROKER_URL": E2E_BROKER, "XBOT_CELERY_BACKEND_URL": E2E_BROKER,
                "XBOT_CELERY_KEY_PREFIX": prefix[deployment]}  # fmt: skip

    def worker(deployment: str) -> None:
        config = tmp_path / f"worker_{deployment}.yaml"
        config.write_text(yaml.safe_dump(worker_config(
            E2E_BROKER, E2E_BROKER, 600, key_prefix=prefix[deployment]
        )))  # fmt: skip
        start(f"{deployment}1", [
            str(deploy_local.BIN / "dagster-celery"), "worker", "start", "-A",
            "dagster_celery.app", "-y", str(config), "-n", f"{deployment}1", "-i", JOB_MODULE,
            "--", "--pool=solo", "--concurrency=1", "--without-gossip", "--without-mingle",
        ], PREFIX_TEST_WORKER=f"{deployment}1", **deployment_env(deployment))  # fmt: skip

    def run_job(deployment: str) -> subprocess.Popen[bytes]:
        argv = [str(deploy_local.BIN / "dagster"), "job", "execute", "-m", JOB_MODULE,
                "-j", "whoami_job"]  # fmt: skip
        return start(f"run_{deployment}", argv, **deployment_env(deployment))

    def queued(key_prefix: str) -> int:
        """Messages waiting in a deployment's queue ``dagster`` (kombu keeps one list per
        priority step: ``dagster``, ``dagster\\x06\\x163``, ...)."""
        lists = client.scan_iter(match=key_prefix + "dagster*", count=500)
        return sum(int(client.llen(key)) for key in lists)

    def taken() -> bool:
        """Whether B's worker received a task (all there are so far are A's)."""
        return "received" in log("b1").read_text()

    def ready(name: str) -> bool:
        if procs[name].poll() is not None:
            raise AssertionError(f"{name} exited: {log(name).read_text()[-3000:]}")
        return " ready." in log(name).read_text()

    def ran_on(deployment: str) -> str:
        proc = procs[f"run_{deployment}"]
        assert proc.wait(timeout=180) == 0, log(f"run_{deployment}").read_text()[-3000:]
        text = log(f"run_{deployment}").read_text()
        run_id = re.search(r"whoami_job - ([0-9a-f-]{36}) - ", text)
        assert run_id, text[-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:  # the step's own events
            logged = [e.user_message for e in instance.all_logs(run_id.group(1))]
        said = [m.removeprefix(RAN_ON) for m in logged if m.startswith(RAN_ON)]
        assert len(said) == 1, logged
        return said[0]

    try:
        worker("b")
        run_a = run_job("a")
        wait_for(lambda: ready("b1"), 180, "worker b1 ready")
        wait_for(lambda: queued(prefix["a"]) or taken(), 180, "A's step on A's queue",
                 check=lambda: ready("b1"))  # fmt: skip
        assert not taken(), "B's worker took A's step"
        time.sleep(3)  # b1 is idle and polling: time enough to take A's step, were it shared
        assert run_a.poll() is None, log("run_a").read_text()[-3000:]
        assert queued(prefix["a"]) == 1
        assert not taken(), "B's worker took A's step"

        worker("a")
        run_job("b")
        assert ran_on("a") == "a1"
        assert ran_on("b") == "b1"
        left = sorted(k.decode() for k in client.scan_iter(count=500))
    finally:
        stop_groups(procs.values())
        clean(client)
        client.close()
    assert left and [k for k in left if not k.startswith(tuple(prefix.values()))] == []
    assert any(k.startswith(prefix["a"] + "celery-task-meta-") for k in left)
    assert any(k.startswith(prefix["b"] + "celery-task-meta-") for k in left)
