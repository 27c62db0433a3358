"""Celery rehearsal (#22): the engine's jobs through dagster-celery on 2 workers, one SIGKILLed
inside the posting step.

Sets up what `scripts/deploy_local.py` sets up (a Postgres database for the durable store and one
for Dagster's run and event storage, Redis, `xbot sandbox serve` posted to by the api poster, all
on the rehearsal clock), then, instead of the daemon:

1. two Celery workers (``dagster-celery worker start``, the solo pool, one task at a time each,
   the code location imported once at start), on a Redis DB of their own as broker and backend;
2. for every account, ``refill_candidates_job`` through the Celery executor
   (``xbot_assets.celery_definitions``: the project's jobs, ops and resources unchanged);
3. once the first queued post is due, ``post_job`` for the first account with the sandbox's
   ``slow_response`` fault on ``create_tweet``: once the sandbox has created the post and holds
   its answer, the worker running the posting step (the pid of its STEP_START event) is
   SIGKILLed. The post is on X, the row stays ``posting``. After the visibility timeout the other
   worker takes the unacknowledged task over: the step runs again, the reconciler finds the post
   on the timeline and records it (no second post), and the run goes on to collect metrics;
4. the killed worker is restarted; ``post_job`` for the other accounts; an hour (simulated) later
   ``collect_account_metrics_job`` for every account;
5. counts: sandbox journal against the store (duplicates, lost, rows left ``posting``/``unknown``),
   every run's status, which worker ran each step attempt, snapshots, timings and CPU.

Writes benchmarks/results/celery_rehearsal.json. Run it niced; it records the load average.
``tests/deploy/test_celery_rehearsal.py`` runs a short version (one account).

``--daemon`` (:func:`rehearse_daemon`) rehearses what an operator runs instead: the same
databases, sandbox and 2 workers, then ``dagster-daemon run -w workspace.celery.yaml`` (the main
location ``xbot`` and the Celery one, ``xbot_celery``) with the automation turned on as
``scripts/deploy_local.py``'s ``automation_plan`` says (the Celery location's account sensors;
in the main location those names and their batch twins stay off, its learning and metrics
automation on). One due post per account is seeded; the daemon's sensors launch the runs. The
worker running the first posting step is SIGKILLed as above (the run now launched by the
daemon, its coordinator a run worker of the daemon's code server). It reports the runs the
daemon launched (job, location, tags, status, the coordinator's pid), which worker pid started
each step, posts on the sandbox against the store, that no run of the main location's
``post_job`` was launched, and the ``job:post_job`` rows the Celery location's run-status
sensors wrote. Writes benchmarks/results/celery_daemon_rehearsal.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `scripts` is a folder of the repository's root
    sys.path.insert(0, str(ROOT))

from benchmarks import deployment  # noqa: E402
from scripts import deploy_local, processes  # noqa: E402

RESULTS = ROOT / "benchmarks/results/celery_rehearsal.json"
DAEMON_RESULTS = ROOT / "benchmarks/results/celery_daemon_rehearsal.json"
DAEMON_KILL_RESULTS = ROOT / "benchmarks/results/celery_daemon_kill_rehearsal.json"
DAEMON_GROUP_KILL_RESULTS = ROOT / "benchmarks/results/celery_daemon_group_kill_rehearsal.json"
CODE_SERVER_KILL_RESULTS = ROOT / "benchmarks/results/celery_code_server_kill_rehearsal.json"
REFILL_GROUP_KILL_RESULTS = ROOT / "benchmarks/results/celery_refill_group_kill_rehearsal.json"
COLLECT_GROUP_KILL_RESULTS = ROOT / "benchmarks/results/celery_collect_group_kill_rehearsal.json"
CLAIM_GROUP_KILL_RESULTS = ROOT / "benchmarks/results/celery_claim_group_kill_rehearsal.json"
CELERY_WORKSPACE = "workspace.celery.yaml"
MAIN_LOCATION = "xbot"
BIN = Path(sys.executable).parent
LOCATION = "xbot_assets.celery_definitions"
WORKERS = ("worker_a", "worker_b")
POST_STEP = "post_due_posts"


def rehearsal_epoch(wall: datetime, speed: float, start_hour: int) -> datetime:
    """CLOCK_EPOCH such that the rehearsal clock reads the next ``start_hour`` (UTC) now, so a
    rehearsal's simulated hours (8 at 120x in 4 minutes) fall in the day, outside the accounts'
    quiet hours (23:00-07:00), whenever it runs.

    ``now = epoch + K × (wall − epoch)`` equals ``target`` when ``epoch = wall − (target − wall)
    / (K − 1)``: the same formula every process computes, started up to a day ahead.
    """
    if speed <= 1:
        return wall
    target = wall.replace(hour=start_hour, minute=0, second=0, microsecond=0)
    if target < wall:
        target += timedelta(days=1)
    return wall - (target - wall) / (speed - 1)


@dataclass
class CeleryDeployment(deploy_local.CeleryLocalDeployment):
    """The local deployment's databases, Redis and sandbox, with Celery workers for runs (their
    start, wait and stop: :class:`deploy_local.CeleryLocalDeployment`)."""

    broker_db: int = 9
    visibility_timeout: int | None = 30
    account_run_max_s: int | None = None
    """ACCOUNT_RUN_MAX_SECONDS for every process (None: the setting's default)."""
    compile: bool = True
    start_hour: int = 9
    warehouse: bool = False
    """Build the warehouse and learning assets once (``first_build``), as a deployment whose
    main location's declarative automation is on needs."""
    runs_started: int = 0
    startup_cpu: dict[str, float] = field(default_factory=dict)
    """Worker name (and restarts) -> CPU seconds its celery process used to start (imports)."""

    def env(self) -> dict[str, str]:
        env: dict[str, str] = super().env()  # with the broker, the backend and PATH
        if self.account_run_max_s is not None:
            env["ACCOUNT_RUN_MAX_SECONDS"] = str(self.account_run_max_s)
        return env

    def prepare(self) -> None:
        """Folders, the sandbox's port, databases (store migrated), Dagster's instance config."""
        self.folder: Path = Path(self.folder) / self.name
        self.ports.setdefault("sandbox", deploy_local.free_port())
        (self.folder / "home").mkdir(parents=True, exist_ok=True)
        (self.folder / "logs").mkdir(exist_ok=True)
        home = self.folder / "dagster_home"
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text((ROOT / "deploy/dagster.yaml").read_text())
        if self.speed:
            self.epoch = rehearsal_epoch(datetime.now(UTC), self.speed, self.start_hour)
        if self.compile:
            deploy_local.compile_bytecode()
        deploy_local._pg_execute(f'CREATE DATABASE "{self.store_db}"')
        deploy_local._pg_execute(f'CREATE DATABASE "{self.dagster_db}"')
        self.run_xbot(["migrate"])
        if self.warehouse:
            self.first_build()
        # Dagster's Postgres storages create their tables when first opened; two workers
        # opening an empty database at once raced on it ("type alembic_version already
        # exists", a worker exiting at start under load), so the schema is made here, once.
        with self.instance() as instance:
            instance.get_runs_count()

    # --- Dagster's instance, read from this process ----------------------------------------------
    @contextlib.contextmanager
    def instance(self) -> Iterator[Any]:
        """The deployment's Dagster instance (Postgres), opened with its environment."""
        import dagster as dg

        keys = [k for k in self.env() if k.startswith("DAGSTER_PG_")]
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: self.env()[k] for k in keys})
        try:
            instance = dg.DagsterInstance.from_config(str(self.folder / "dagster_home"))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            yield instance
        finally:
            instance.dispose()

    # --- workers and runs ----------------------------------------------------------------------
    def worker_ready(self, name: str, pid: int) -> None:
        """Record the CPU seconds the worker's celery process used to start (imports)."""
        label = name if name not in self.startup_cpu else f"{name} (restarted)"
        self.startup_cpu[label] = round(deployment.process_cpu(pid) or 0.0, 1)

    def execute(self, job: str, handle: str, config: dict[str, Any] | None = None) -> Any:
        """Start ``dagster job execute`` of ``job`` for ``handle``'s partition (the run's
        coordinator: it submits each step to the broker and waits for the result)."""
        self.runs_started += 1
        tags = {"dagster/partition": handle, "xbot/account": handle}
        argv = [str(BIN / "dagster"), "job", "execute", "-m", LOCATION, "-a", "defs", "-j", job,
                "--tags", json.dumps(tags)]  # fmt: skip
        if config:
            path = self.folder / f"run_{self.runs_started}.yaml"
            path.write_text(yaml.safe_dump(config))
            argv += ["-c", str(path)]
        return self.start(f"run_{self.runs_started}_{job}_{handle}", argv)

    def wait_runs(self, procs: list[Any], timeout: float) -> list[int | None]:
        deadline = time.monotonic() + timeout
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return [p.poll() for p in procs]

    def set_fault(self, body: dict[str, Any]) -> None:
        import httpx

        httpx.post(f"{self.url('sandbox')}/__sandbox/faults", json=body, timeout=30)

    def faults(self) -> dict[str, Any]:
        import httpx

        state = httpx.get(f"{self.url('sandbox')}/__sandbox/faults", timeout=30).json()
        return dict(state["active"])


def _kind(cmd: str) -> str:
    """The rehearsal's kinds of process, by command line (for the CPU sampler)."""
    if "job execute" in cmd:
        return "run coordinators (dagster job execute)"
    if "multiprocessing" in cmd:  # the code server spawns a daemon-launched run's process
        return "run coordinators (daemon-launched run workers)"
    if "dagster-daemon" in cmd:
        return "dagster-daemon"
    if "api grpc" in cmd or "code-server" in cmd:
        return "code servers"
    if "dagster-graphql" in cmd:
        return "dagster-graphql (turning the automation on)"
    if "celery" in cmd and "worker start" in cmd:
        return "dagster-celery wrappers"
    if "celery" in cmd and " worker" in cmd:
        return "celery workers (the steps)"
    if "sandbox serve" in cmd:
        return "sandbox"
    return "other"


# --- the runs' events -----------------------------------------------------------------------
def run_of(instance: Any, job: str, handle: str, after: float = 0.0) -> Any | None:
    """The latest run of ``job`` for ``handle`` created after ``after`` (epoch seconds)."""
    import dagster as dg

    records = instance.get_run_records(
        dg.RunsFilter(job_name=job, tags={"dagster/partition": handle}), limit=5
    )
    fresh = [r for r in records if r.create_timestamp.timestamp() >= after]
    return fresh[0].dagster_run if fresh else None


def step_attempts(instance: Any, run_id: str, by_pid: dict[int, str]) -> list[dict[str, Any]]:
    """Each step event of a run: step, event, the worker (by pid) and the time."""
    out = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        kind = event.event_type_value
        hostname = None
        if kind == "ENGINE_EVENT":
            metadata = getattr(event.event_specific_data, "metadata", None) or {}
            if "Celery worker" not in metadata:
                continue
            hostname = str(metadata["Celery worker"].value)
        elif kind not in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            continue
        out.append({
            "step": entry.step_key,
            "event": "TASK_RECEIVED" if kind == "ENGINE_EVENT" else kind,
            "worker": hostname.split("@")[0] if hostname else by_pid.get(event.pid or -1),
            "pid": event.pid,
            "at": round(entry.timestamp, 2),
        })  # fmt: skip
    return out


def posting_outcomes(instance: Any, run_id: str) -> list[dict[str, Any]]:
    """The posting step's ``outcomes`` metadata (reconcile report and each posting step) of
    every attempt of ``run_id`` that finished."""
    return outcomes_in(step_output_metadata(instance, run_id, POST_STEP))


def outcomes_in(metadata: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``outcomes`` of each posting step's output metadata that has them."""
    return [dict(m["outcomes"]) for m in metadata if "outcomes" in m]


def journal_posts(dep: CeleryDeployment) -> list[dict[str, Any]]:
    """The posts the sandbox has created, in order (its journal)."""
    path = dep.folder / "sandbox.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for line in lines if (e := json.loads(line)).get("op") == "post"]


def kill_inside_posting(
    dep: CeleryDeployment,
    instance: Any,
    handle: str | None,
    after: float,
    timeout: float,
    posts_before: int = 0,
    daemon: bool = False,
    daemon_group: bool = False,
    code_server: bool = False,
    worker_too: bool = False,
) -> dict[str, Any]:
    """Wait until the sandbox has created the post of ``handle``'s post run and holds its answer
    (the ``slow_response`` fault consumed), then SIGKILL the worker whose pid started the posting
    step: the post exists, the worker never learns it. ``handle=None``: the account whose post
    the fault holds, the first the sandbox created after ``posts_before`` posts (several
    accounts' post runs may be posting at once). ``daemon``: SIGKILL the daemon instead (its pid
    alone, :meth:`LocalDeployment.kill_daemon`), the worker left to finish the step.
    ``code_server``: SIGKILL the code server that launched the run (the coordinator's parent,
    the Celery location's), the daemon and the worker left alone. ``worker_too`` (with
    ``daemon``): SIGKILL the worker as well, first (the step never ends, its claim stays)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle is None:
            posts = journal_posts(dep)
            if "slow_response" in dep.faults() or len(posts) <= posts_before:
                time.sleep(0.2)
                continue
            handle = str(posts[posts_before]["handle"])
        run = run_of(instance, "post_job", handle, after)
        if run is not None and run.is_finished:
            why = "without posting" if "slow_response" in dep.faults() else "before the kill"
            raise RuntimeError(
                f"post run {run.run_id} of location {run_location(run)} ended {why} "
                f"({run.status.value}): was its posting step on a worker? (a STEP_START from "
                "a worker's pid)"
            )
        if run is not None and "slow_response" not in dep.faults():
            starts = [
                a for a in step_attempts(instance, run.run_id, dep.worker_pids)
                if a["step"] == POST_STEP and a["event"] == "STEP_START"
            ]  # fmt: skip
            if starts and starts[-1]["pid"] in dep.workers.values():
                pid = starts[-1]["pid"]
                name = next(n for n, p in dep.workers.items() if p == pid)
                if daemon or code_server:
                    if worker_too:
                        os.kill(pid, signal.SIGKILL)
                    figures = (
                        kill_the_code_server(dep, instance, run.run_id) if code_server
                        else kill_the_daemon(dep, instance, run.run_id, daemon_group)
                    )  # fmt: skip
                    return {"run_id": run.run_id, "account": handle, "worker": name,
                            "step_pid": pid, "worker_killed_too": worker_too,
                            **figures}  # fmt: skip
                os.kill(pid, signal.SIGKILL)
                return {"run_id": run.run_id, "account": handle, "worker": name, "pid": pid,
                        "at": time.time()}  # fmt: skip
        time.sleep(0.2)
    raise RuntimeError("no post run reached the sandbox's post request in time")


def kill_the_daemon(
    dep: CeleryDeployment, instance: Any, run_id: str, group: bool = False
) -> dict[str, Any]:
    """SIGKILL the daemon's pid alone, as ``benchmarks/deployment.py`` does (a crash or an OOM
    kill: its code servers and the run workers they spawned are not signalled), recording which
    of them were alive before and after. ``group``: its process group instead (the code servers
    it spawned are in it), as ``kill -9 -<pgid>`` or a supervisor killing the whole group."""
    daemon = dep.procs["daemon"].pid
    servers = processes.children(daemon)
    coordinator = _run_start_pid(instance, run_id)
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon, signal.SIGKILL)
        dep.procs["daemon"].wait(timeout=30)
    else:
        dep.kill_daemon()
    at = time.time()
    time.sleep(1)
    return {
        "pid": daemon,
        "at": at,
        "code_server_pids": servers,
        "coordinator_pid": coordinator,
        "code_servers_alive_1s_after": [p for p in servers if processes.alive(p)],
        "coordinator_alive_1s_after": coordinator is not None and processes.alive(coordinator),
    }


def code_server_location(pid: int) -> str | None:
    """The code location a ``dagster api grpc`` process serves (its ``--location-name``)."""
    argv = processes.cmdline(pid)
    if "grpc" not in argv or "--location-name" not in argv:
        return None
    return argv[argv.index("--location-name") + 1]


def code_servers(daemon_pid: int) -> dict[int, str]:
    """The daemon's code servers (its children): pid -> location."""
    return {
        pid: location for pid in processes.children(daemon_pid)
        if (location := code_server_location(pid)) is not None
    }  # fmt: skip


def kill_the_code_server(dep: CeleryDeployment, instance: Any, run_id: str) -> dict[str, Any]:
    """SIGKILL the code servers of the location that launched ``run_id``: the one that launched
    it (the parent of its coordinator, a ``dagster api grpc`` child of the daemon) and any newer
    one of the same location (the daemon starts a fresh server per location every 60 s, and an
    old one lives on while a run it launched is in flight), so no server of the location is
    left. The daemon, the other location's servers, the coordinator and the workers are not
    signalled. Records who was alive before and after."""
    daemon = dep.procs["daemon"].pid
    coordinator = _run_start_pid(instance, run_id)
    if coordinator is None:
        raise RuntimeError(f"run {run_id} has no RUN_START event: no coordinator to find")
    server = processes.parent(coordinator) or -1
    before = code_servers(daemon)
    if server not in before:
        raise RuntimeError(
            f"the coordinator {coordinator} of run {run_id} is not a child of one of the "
            f"daemon's code servers {before} (its parent: {server})"
        )
    location = before[server]
    victims = sorted(p for p, loc in before.items() if loc == location)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    at = time.time()
    time.sleep(1)
    coordinator_parent = processes.parent(coordinator)
    return {
        "pid": server,
        "killed_pids": victims,
        "location": location,
        "at": at,
        "daemon_pid": daemon,
        "code_servers_before": {str(p): loc for p, loc in before.items()},
        "coordinator_pid": coordinator,
        "coordinator_alive_1s_after": processes.alive(coordinator),
        "coordinator_parent_1s_after": coordinator_parent,
        "daemon_alive_1s_after": processes.alive(daemon),
        "other_code_servers_alive_1s_after": [
            p for p in before if p not in victims and processes.alive(p)
        ],
    }


def kill_inside_refill(
    dep: CeleryDeployment, instance: Any, after: float, timeout: float
) -> dict[str, Any]:
    """Wait until a ``refill_candidates_job`` run's step has started on a worker (its
    STEP_START from a worker's pid), then SIGKILL the daemon's process group (its code servers
    and the run's coordinator with it); the worker is not signalled. Records the account's
    queued posts at the kill."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(job_name="refill_candidates_job"))
        for record in records:
            run = record.dagster_run
            if record.create_timestamp.timestamp() < after:
                continue
            if run.is_finished:
                raise RuntimeError(
                    f"refill run {run.run_id} ended before the kill ({run.status.value})"
                )
            starts = [
                a for a in step_attempts(instance, run.run_id, dep.worker_pids)
                if a["event"] == "STEP_START" and a["pid"] in dep.workers.values()
            ]  # fmt: skip
            if starts:
                handle = run.tags.get("dagster/partition")
                queued = sum(1 for p in due_posts(dep) if p["handle"] == handle)
                figures = kill_the_daemon(dep, instance, run.run_id, group=True)
                return {"run_id": run.run_id, "account": handle, "worker": starts[-1]["worker"],
                        "step_pid": starts[-1]["pid"], "step": starts[-1]["step"],
                        "run_key": run.tags.get("dagster/run_key"),
                        "queued_posts_at_kill": queued, **figures}  # fmt: skip
        time.sleep(0.2)
    raise RuntimeError("no refill run's step started on a worker in time")


def sensor_ticks(instance: Any, location: str, name: str, after: float) -> list[dict[str, Any]]:
    """The ticks of sensor ``name`` of ``location`` since ``after`` (epoch seconds), oldest
    first: time, status, runs requested, the error's first line."""
    for state in instance.all_instigator_state():
        origin = state.origin
        if state.name != name:
            continue
        if origin.repository_origin.code_location_origin.location_name != location:
            continue
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
        return [
            {"at": round(t.timestamp, 1), "status": t.status.value,
             "runs": len(t.run_ids),
             "error": t.error.message.strip().splitlines()[0][:200] if t.error else None}
            for t in sorted(ticks, key=lambda t: t.timestamp)
        ]  # fmt: skip
    return []


# --- the counts --------------------------------------------------------------------------------
def store_engine(dep: CeleryDeployment) -> Any:
    from sqlalchemy import create_engine

    url = dep.env()["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    return create_engine(url)


def store_rows(dep: CeleryDeployment, sql: str) -> list[Any]:
    """The rows of one query on the deployment's store (an engine of its own, disposed)."""
    from sqlalchemy import text

    engine = store_engine(dep)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def due_posts(dep: CeleryDeployment) -> list[dict[str, Any]]:
    """Queued posts, earliest first: id, account handle, scheduled time."""
    rows = store_rows(
        dep,
        "select t.id, a.handle, t.scheduled_at from tweets t join accounts a "
        "on a.id = t.account_id where t.status = 'queued' order by t.scheduled_at",
    )
    return [{"id": r[0], "handle": r[1], "scheduled_at": r[2]} for r in rows]


def posts_check(dep: CeleryDeployment) -> dict[str, Any]:
    """Posts on the sandbox (its journal) against the durable store (as the daemon rehearsal
    counts them, ``benchmarks/deployment.py``)."""
    engine = store_engine(dep)
    try:
        return deployment.sandbox_vs_store(dep.folder / "sandbox.jsonl", engine)
    finally:
        engine.dispose()


def runs_summary(instance: Any, workers: dict[int, str]) -> list[dict[str, Any]]:
    out = []
    for record in reversed(instance.get_run_records(limit=500)):
        run = record.dagster_run
        steps = step_attempts(instance, run.run_id, workers)
        out.append({
            "run_id": run.run_id,
            "job": run.job_name,
            "account": run.tags.get("dagster/partition"),
            "status": run.status.value,
            "seconds": round(record.end_time - record.start_time, 1)
            if record.end_time and record.start_time else None,
            "steps": steps,
        })  # fmt: skip
    return out


def sim_now(dep: CeleryDeployment) -> datetime:
    now = datetime.now(UTC)
    if dep.speed and dep.epoch is not None:
        return dep.epoch + (now - dep.epoch) * dep.speed
    return now


def seed_due_posts(dep: CeleryDeployment, topic: str = "ship small, ship daily") -> None:
    """One queued post per account, due a minute ago on the rehearsal clock: the test's
    stand-in for the refill (whose step is longer than the test's short visibility timeout).
    Another ``topic`` for another post (the store refuses the same text twice)."""
    code = (
        "import sys\n"
        "from datetime import timedelta\n"
        "from xbot_assets.config import load_settings\n"
        "from xbot_assets.store.durable import DurableStore\n"
        "from xbot_assets.store.timebase import settings_clock\n"
        "settings = load_settings()\n"
        "now = settings_clock(settings)()\n"
        "store = DurableStore.from_settings(settings)\n"
        "topic = sys.argv[1]\n"
        "for handle in sys.argv[2:]:\n"
        "    account = store.ensure_account(handle)\n"
        "    store.enqueue_post(account.id, f'One post for @{handle}: {topic}.',\n"
        "                       scheduled_at=now - timedelta(minutes=1), now=now)\n"
        "store.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, topic, *dep.handles], env=dep.env(), cwd=ROOT, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip


def wait_until_due(dep: CeleryDeployment, handles: list[str], timeout: float) -> dict[str, int]:
    """The first queued post of each of ``handles``, once every one of them is due
    (simulated): a post run launched earlier would find nothing to post."""
    deadline = time.monotonic() + timeout
    while True:
        first: dict[str, Any] = {}
        for post in due_posts(dep):
            first.setdefault(post["handle"], post)
        missing = [h for h in handles if h not in first]
        if missing:
            raise RuntimeError(f"no queued post for {missing} after the refill")
        latest = max(first[h]["scheduled_at"] for h in handles)
        if sim_now(dep) >= latest.astimezone(UTC) + timedelta(minutes=1):
            return {h: int(first[h]["id"]) for h in handles}
        if time.monotonic() > deadline:
            raise RuntimeError(f"not due by {sim_now(dep)} (slot {latest})")
        time.sleep(1)


def rehearse(
    folder: Path,
    *,
    accounts: int = 3,
    speed: float = 120,
    visibility_timeout: int = 45,
    post_delay: float = 15,
    broker_db: int = 9,
    compile_bytecode: bool = True,
    after_kill: bool = True,
    run_timeout: float = 900,
    count_all_cpu: bool = False,
    refill: bool = True,
) -> dict[str, Any]:
    """One rehearsal; returns the figures (module docstring). ``after_kill=False`` stops after
    the killed post run (the test's short version); ``count_all_cpu`` makes this process the
    tree's subreaper for an exact CPU total (the script does, a test does not)."""
    load_before = os.getloadavg()
    if count_all_cpu:  # the script only: a test's process stays as it is
        deployment.become_subreaper()
    timings: dict[str, float] = {}
    events: list[dict[str, Any]] = []
    dep = CeleryDeployment(
        folder=folder, speed=speed, accounts=accounts, broker_db=broker_db,
        visibility_timeout=visibility_timeout, compile=compile_bytecode,
    )  # fmt: skip
    rusage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # twice a second, by the rehearsal's kinds; no reaping while it samples (with count_all_cpu
    # the children are reaped at the end)
    sampler = deployment.CpuSampler(dep, interval=0.5, classify=_kind, reap=False)
    t0 = time.monotonic()

    def mark(name: str) -> None:
        timings[name] = round(time.monotonic() - t0, 1)

    try:
        dep.prepare()
        sampler.start()
        launched_workers = dep.launch_workers(*WORKERS)  # they import while the sandbox starts
        dep.start_sandbox()
        mark("sandbox_ready_s")
        with dep.instance() as instance:
            instance.add_dynamic_partitions("accounts", dep.handles)
        dep.wait_workers(launched_workers)
        mark("workers_ready_s")
        events.append({"event": "workers started", "pids": dict(dep.workers)})

        if refill:
            refills = [dep.execute("refill_candidates_job", h) for h in dep.handles]
            codes = dep.wait_runs(refills, run_timeout)
            mark("refills_done_s")
            if any(c != 0 for c in codes):
                failed = _name(dep, refills[0])
                raise RuntimeError(f"refill runs failed ({codes}): {dep.tail(failed)}")
        else:
            seed_due_posts(dep)
        victim = dep.handles[0]
        first = wait_until_due(dep, [victim], timeout=run_timeout)
        mark("first_post_due_s")

        dep.set_fault({"name": "slow_response", "match": "create_tweet", "count": 1,
                       "seconds": post_delay})  # fmt: skip
        launched = time.time() - 1
        victim_run = dep.execute("post_job", victim, _post_config(first[victim]))
        with dep.instance() as instance:
            killed = kill_inside_posting(dep, instance, victim, launched, run_timeout)
        events.append({"event": "worker SIGKILL inside the posting step", **killed})
        mark("worker_killed_s")
        (code,) = dep.wait_runs([victim_run], run_timeout)
        mark("killed_run_done_s")
        events.append({"event": "killed worker's post run ended", "exit_code": code})

        if after_kill:
            dead = killed["worker"]
            dep.stop(dead, signal.SIGKILL, grace=5)
            dep.start_workers(dead)
            events.append({"event": f"{dead} restarted", "pid": dep.workers[dead]})
            first = wait_until_due(dep, dep.handles[1:], timeout=run_timeout)
            others = [dep.execute("post_job", h, _post_config(first[h])) for h in dep.handles[1:]]
            dep.wait_runs(others, run_timeout)
            mark("other_posts_done_s")
            hour_later = sim_now(dep) + timedelta(hours=1, minutes=5)
            while sim_now(dep) < hour_later:
                time.sleep(1)
            collects = [dep.execute("collect_account_metrics_job", h) for h in dep.handles]
            dep.wait_runs(collects, run_timeout)
            mark("collects_done_s")

        sampler.sample()
        with dep.instance() as instance:
            runs = runs_summary(instance, dep.worker_pids)
            retried = posting_outcomes(instance, killed["run_id"])
        result = posts_check(dep)
        result["logs"] = str(dep.folder / "logs")
    finally:
        sampler.stop_event.set()
        dep.close()
        if count_all_cpu:
            for _ in range(10):
                reap_children()
                time.sleep(0.5)
    rusage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    killed_run = next(r for r in runs if r["run_id"] == killed["run_id"])
    posting = [s for s in killed_run["steps"] if s["step"] == POST_STEP]
    return {
        "accounts": accounts,
        "speed": speed,
        "visibility_timeout_s": visibility_timeout,
        "sandbox_post_delay_s": post_delay,
        "events": events,
        "killed_run": killed_run,
        "posting_step_attempts": posting,
        "retried_on_other_worker": any(
            s["event"] == "STEP_SUCCESS" and s["worker"] not in (None, killed["worker"])
            for s in posting
        ),
        "redelivery_seconds_after_kill": _redelivery(posting, killed),
        "retried_step_outcomes": retried,
        "reconciled_by_retry": {
            k: len(v) for o in retried for k, v in o["reconcile"].items() if v
        },
        "posted_by_retry": sum(
            1 for o in retried for step in o.get("outcomes", []) if step.get("status") == "posted"
        ),
        "runs": [{k: v for k, v in r.items() if k != "steps"} for r in runs],
        "runs_by_job_and_status": _by_job(runs),
        "longest_step_s": max(
            (_step_seconds(r["steps"]) for r in runs if r["steps"]), default=None
        ),
        "runs_with_steps_on_both_workers": sum(
            1 for r in runs
            if len({s["worker"] for s in r["steps"] if s["event"] == "STEP_SUCCESS"}) > 1
        ),
        "steps_by_worker": dict(collections.Counter(
            s["worker"] for r in runs for s in r["steps"] if s["event"] == "STEP_SUCCESS")),
        **result,
        "timings_s": timings,
        **_cpu_figures(sampler.by_kind(), dep.startup_cpu, runs),
        "cpu_seconds_children_total": round(
            (rusage1.ru_utime + rusage1.ru_stime) - (rusage0.ru_utime + rusage0.ru_stime), 1
        )
        if count_all_cpu
        else None,
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }  # fmt: skip


def _name(dep: CeleryDeployment, proc: Any) -> str:
    return next(n for n, p in dep.procs.items() if p is proc)


def _cpu_figures(
    by_kind: dict[str, float], startup: dict[str, float], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """CPU by kind of process, and per run and per step: a run costs its coordinator's process
    (``dagster job execute``); a step costs the worker's CPU past its start-up (the code
    location is imported once per worker, not per step)."""
    n_runs = len(runs)
    n_steps = sum(1 for r in runs for s in r["steps"] if s["event"] == "STEP_START")
    coordinators = sum(v for k, v in by_kind.items() if k.startswith("run coordinators"))
    steps = by_kind.get("celery workers (the steps)", 0.0) - sum(startup.values())
    return {
        "cpu_seconds_by_process_lower_bound": by_kind,
        "cpu_seconds_worker_startup": startup,
        "cpu_seconds_per_run_coordinator": round(coordinators / n_runs, 2) if n_runs else None,
        "cpu_seconds_per_step_in_workers": round(steps / n_steps, 2) if n_steps else None,
        "step_attempts": n_steps,
    }


def reap_children() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _post_config(post_id: int) -> dict[str, Any]:
    return {"ops": {POST_STEP: {"config": {"post_id": post_id}}}}


def _redelivery(posting: list[dict[str, Any]], killed: dict[str, Any]) -> float | None:
    later = [s["at"] for s in posting if s["event"] == "STEP_START" and s["at"] > killed["at"]]
    return round(min(later) - killed["at"], 1) if later else None


def _step_seconds(steps: list[dict[str, Any]]) -> float:
    """The longest finished step attempt of a run (STEP_START to STEP_SUCCESS, same worker):
    what the visibility timeout must exceed."""
    longest = 0.0
    for end in (s for s in steps if s["event"] == "STEP_SUCCESS"):
        start = max(
            (s["at"] for s in steps if s["event"] == "STEP_START" and s["step"] == end["step"]
             and s["pid"] == end["pid"] and s["at"] <= end["at"]),
            default=end["at"],
        )  # fmt: skip
        longest = max(longest, end["at"] - start)
    return round(longest, 1)


def _by_job(runs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for run in runs:
        out[run["job"]][run["status"]] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


# --- the daemon rehearsal ----------------------------------------------------------------------
SHOWN_TAGS = ("dagster/sensor_name", "dagster/run_key", "dagster/partition", "xbot/post_id")
UNFINISHED = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def run_location(run: Any) -> str | None:
    """The code location a run was launched from (None for a run without a remote origin)."""
    origin = run.remote_job_origin
    return str(origin.location_name) if origin is not None else None


def _run_start_pid(instance: Any, run_id: str) -> int | None:
    """The pid of the run's own process (its coordinator): the RUN_START event's."""
    import dagster as dg

    start = dg.DagsterEventType.RUN_START.value  # "PIPELINE_START"
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == start:
            return int(event.pid) if event.pid is not None else None
    return None


def daemon_runs(instance: Any, workers: dict[int, str], after: float) -> list[dict[str, Any]]:
    """The runs created after ``after`` (epoch seconds): job, location, status, the tags the
    daemon's sensor set, the coordinator's pid, each step attempt's worker."""
    out = []
    for record in reversed(instance.get_run_records(limit=500)):
        if record.create_timestamp.timestamp() < after:
            continue
        run = record.dagster_run
        out.append({
            "run_id": run.run_id,
            "job": run.job_name,
            "location": run_location(run),
            "account": run.tags.get("dagster/partition"),
            "status": run.status.value,
            "tags": {k: run.tags[k] for k in SHOWN_TAGS if k in run.tags},
            "coordinator_pid": _run_start_pid(instance, run.run_id),
            "seconds": round(record.end_time - record.start_time, 1)
            if record.end_time and record.start_time else None,
            "steps": step_attempts(instance, run.run_id, workers),
        })  # fmt: skip
    return out


def unfinished_runs(instance: Any, job: str | None = None) -> int:
    import dagster as dg

    statuses = [dg.DagsterRunStatus(s) for s in UNFINISHED]
    return len(instance.get_run_records(dg.RunsFilter(job_name=job, statuses=statuses)))


def instigator_states(instance: Any) -> dict[str, dict[str, str]]:
    """Location -> sensor or schedule -> status, as the instance stores them (an instigator
    never started or stopped has no row: it is at its default, STOPPED for xbot's)."""
    out: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for state in instance.all_instigator_state():
        location = state.origin.repository_origin.code_location_origin.location_name
        out[location][state.name] = state.status.value
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def job_health_rows(dep: CeleryDeployment) -> list[dict[str, Any]]:
    """The store's ``system_health`` rows of finished runs (components ``job:<name>``)."""
    rows = store_rows(
        dep,
        "select component, status, metrics from system_health "
        "where component like 'job:%' order by recorded_at",
    )
    out = []
    for component, status, metrics in rows:
        figures = json.loads(metrics) if isinstance(metrics, str) else dict(metrics or {})
        out.append({"component": component, "status": status, "run_id": figures.get("run_id")})
    return out


def posted_rows(dep: CeleryDeployment) -> int:
    ((count,),) = store_rows(dep, "select count(*) from tweets where status = 'posted'")
    return int(count)


def wait_for(check: Any, timeout: float, what: str, every: float = 1.0) -> Any:
    """Poll ``check()`` until it answers something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


# --- the daemon rehearsal: shared setup, drain and checks; one function per kill mode ------------
@dataclass
class DaemonRehearsal:
    """One daemon rehearsal in flight, as its mode sees it: the deployment, what happened
    (events, timings) and what the mode's kill left for the shared checks."""

    dep: CeleryDeployment
    accounts: int
    run_timeout: float
    t0: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    launched_after: float = 0.0
    """Epoch seconds just before the daemon started: the runs it launched were created after."""
    posts_before: int = 0
    """Posts on the sandbox before the daemon started."""
    worker_killed: dict[str, Any] | None = None
    """A worker's SIGKILL (its step retried on the other): the retried step's outcomes."""
    run_killed: dict[str, Any] | None = None
    """A daemon's or code server's SIGKILL: the run it left to end (``_daemon_kill_figures``)."""
    restarted_at: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    """The mode's own figures, merged into the result."""

    def mark(self, name: str) -> None:
        self.timings[name] = round(time.monotonic() - self.t0, 1)

    def killed(self) -> dict[str, Any] | None:
        """The kill the shared figures describe (the worker's, else the daemon's or server's)."""
        return self.worker_killed or self.run_killed


@dataclass(frozen=True)
class DaemonMode:
    """What one kind of daemon rehearsal does between the automation turned on and the drain
    (``kill``), and what else it needs: the shared setup, drain and checks are
    :func:`rehearse_daemon_mode`'s."""

    name: str
    kill: Callable[[DaemonRehearsal, Any], None]
    """Inside the instance, once the workers are ready: the kill and what follows it."""
    posts_per_account: int = 1
    """Posts (store rows ``posted``) to wait for per account before the drain."""
    seed: bool = True
    """One due post per account before the daemon starts (else the refill sensor fills)."""
    slow_post: bool = True
    """The sandbox holds its answer to the first create_tweet ``post_delay`` seconds."""
    every_account_posts: bool = False
    """Also wait until every account has posted (a refill's posts, lost refills asked again)."""
    after_drain: Callable[[DaemonRehearsal, Any], None] | None = None
    """Once every run has finished: the mode's own figures (into ``figures``)."""
    daemon_kill: str | None = None
    """The result's ``daemon_kill``: ``"pid"``, ``"process group"`` or None."""
    code_server_kill: bool = False
    kill_during: str = "post"


def no_kill(r: DaemonRehearsal, instance: Any) -> None:
    """Nothing killed: the daemon launches the seeded posts' runs."""


def kill_a_worker(r: DaemonRehearsal, instance: Any) -> None:
    """SIGKILL the worker inside the first posting step; once its run has ended (the step
    redelivered to the other worker), restart it."""
    dep = r.dep
    killed = kill_inside_posting(
        dep, instance, None, r.launched_after, r.run_timeout, r.posts_before
    )
    r.worker_killed = killed
    r.events.append({"event": "worker SIGKILL inside the posting step", **killed})
    r.mark("worker_killed_s")
    wait_for(lambda: instance.get_run_by_id(killed["run_id"]).is_finished,
             r.run_timeout, "the killed worker's run to end")  # fmt: skip
    r.mark("killed_run_done_s")
    dead = killed["worker"]
    dep.stop(dead, signal.SIGKILL, grace=5)
    dep.start_workers(dead)
    r.events.append({"event": f"{dead} restarted", "pid": dep.workers[dead]})


def kill_the_daemon_mid_post(group: bool) -> Callable[[DaemonRehearsal, Any], None]:
    """SIGKILL the daemon's pid (``group=False``) or process group inside the first posting
    step, restart it 3 s later; a second due post per account, seeded at the restart for the
    group (due while the dead run holds the account), after the killed run ended for the pid."""

    def kill(r: DaemonRehearsal, instance: Any) -> None:
        dep = r.dep
        killed = kill_inside_posting(
            dep, instance, None, r.launched_after, r.run_timeout, r.posts_before,
            daemon=True, daemon_group=group,
        )  # fmt: skip
        r.run_killed = killed
        r.events.append({"event": "daemon SIGKILL inside the posting step", **killed})
        r.mark("daemon_killed_s")
        r.restarted_at = restart_daemon(dep, r.events)
        if group:  # due while the dead run holds the account (not after it)
            seed_due_posts(dep, "restart the daemon, post once")
        ended = _wait_ended(instance, killed["run_id"], r.run_timeout)
        r.mark("killed_run_done_s")
        r.events.append(_killed_run_ended(instance, killed, ended, "the daemon-killed run"))
        if not group:  # a second due post each, for the restarted daemon
            seed_due_posts(dep, "restart the daemon, post once")

    return kill


def _killed_run_ended(
    instance: Any, killed: dict[str, Any], ended: bool, what: str
) -> dict[str, Any]:
    """The event of a daemon-killed run's end: its status, who of its processes lived on."""
    return {
        "event": f"{what} ended" if ended else "the run did not end",
        "status": instance.get_run_by_id(killed["run_id"]).status.value,
        "coordinator_alive": bool(killed["coordinator_pid"])
        and processes.alive(killed["coordinator_pid"]),
        "code_servers_alive": [p for p in killed["code_server_pids"] if processes.alive(p)],
    }


def kill_the_code_server_mid_post(r: DaemonRehearsal, instance: Any) -> None:
    """SIGKILL the Celery location's code servers inside the first posting step (the daemon left
    running), seed a second due post at once; record the server's respawn and the run's end."""
    dep = r.dep
    killed = kill_inside_posting(
        dep, instance, None, r.launched_after, r.run_timeout, r.posts_before, code_server=True,
    )  # fmt: skip
    r.run_killed = killed
    r.events.append({"event": "code server SIGKILL inside the posting step", **killed})
    r.mark("code_server_killed_s")
    r.restarted_at = killed["at"]
    seed_due_posts(dep, "restart the code server, post once")  # due at once
    figures = after_code_server_kill(dep, instance, killed, r.run_timeout)
    r.figures.update(figures)
    r.events.append({"event": "after the code server's kill", **figures})
    r.mark("killed_run_done_s")


def kill_the_group_mid_refill(r: DaemonRehearsal, instance: Any) -> None:
    """SIGKILL the daemon's process group once the first refill's step is on a worker, restart
    it 3 s later, wait for the refill run to end (no post seeded: the refill sensor fills)."""
    dep = r.dep
    killed = kill_inside_refill(dep, instance, r.launched_after, r.run_timeout)
    r.run_killed = killed
    r.events.append({"event": "daemon group SIGKILL inside the refill step", **killed})
    r.mark("daemon_killed_s")
    r.restarted_at = restart_daemon(dep, r.events)
    ended = _wait_ended(instance, killed["run_id"], r.run_timeout)
    r.mark("killed_run_done_s")
    r.events.append({
        "event": "the refill run ended" if ended else "the run did not end",
        "status": instance.get_run_by_id(killed["run_id"]).status.value,
        "queued_posts_of_the_account": sum(
            1 for p in due_posts(dep) if p["handle"] == killed["account"]
        ),
    })  # fmt: skip


def _posting_ticks(r: DaemonRehearsal, instance: Any) -> None:
    r.figures["posting_sensor_ticks_after_kill"] = ticks_after_kill(instance, r.run_killed or {})


def _refill_figures_and_ticks(r: DaemonRehearsal, instance: Any) -> None:
    if r.run_killed:
        r.figures.update(_refill_kill_figures(instance, r.run_killed, r.restarted_at))
    _posting_ticks(r, instance)


COLLECT_STEP = "collect_account_metrics"
COLLECT_DELAY_S = 8.0
"""Seconds the sandbox holds its answer to the first metrics read (``GET /2/tweets``) once the
first posts' 1 h snapshots are due: the group is killed inside that call."""


def kill_the_group_mid_collect(r: DaemonRehearsal, instance: Any) -> None:
    """Once the seeded posts are out and their 1 h snapshots due, hold the next metrics read
    (the ``slow`` fault on ``get_tweets``), seed a second due post per account, and SIGKILL the
    daemon's process group while a ``post_job``'s collect step is inside that read on a worker;
    restart the daemon 3 s later and seed a third post (due while the dead run holds the
    account)."""
    dep = r.dep
    wait_for(lambda: posted_rows(dep) >= r.accounts and unfinished_runs(instance) == 0,
             r.run_timeout, "the first posts")  # fmt: skip
    due = sim_now(dep) + timedelta(hours=1, minutes=2)
    wait_for(lambda: sim_now(dep) >= due, r.run_timeout, "the first posts' 1 h snapshots")
    r.mark("first_snapshots_due_s")
    dep.set_fault({"name": "slow", "match": "get_tweets", "count": 1,
                   "seconds": COLLECT_DELAY_S})  # fmt: skip
    after = time.time() - 1
    seed_due_posts(dep, "measure each post once")
    killed = kill_inside_collect(dep, instance, after, r.run_timeout)
    r.run_killed = killed
    r.events.append({"event": "daemon group SIGKILL inside the collect step", **killed})
    r.mark("daemon_killed_s")
    r.restarted_at = restart_daemon(dep, r.events)
    seed_due_posts(dep, "collect again, post once")  # due while the dead run holds the account
    ended = _wait_ended(instance, killed["run_id"], r.run_timeout)
    r.mark("killed_run_done_s")
    r.events.append(_killed_run_ended(instance, killed, ended, "the collect's run"))


def kill_inside_collect(
    dep: CeleryDeployment, instance: Any, after: float, timeout: float
) -> dict[str, Any]:
    """Wait until the held metrics read has begun (the ``slow`` fault consumed) and a
    ``post_job`` run created after ``after`` has its collect step started on a worker and not
    ended, then SIGKILL the daemon's process group. Records the run, its account, the account's
    snapshots at the kill."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "slow" in dep.faults():
            time.sleep(0.2)
            continue
        for record in instance.get_run_records(dg.RunsFilter(job_name="post_job")):
            run = record.dagster_run
            if record.create_timestamp.timestamp() < after or run.is_finished:
                continue
            attempts = step_attempts(instance, run.run_id, dep.worker_pids)
            start = step_in_flight(attempts, COLLECT_STEP, set(dep.workers.values()))
            if start is not None:
                handle = str(run.tags.get("dagster/partition"))
                snapshots = snapshots_of(dep, handle)
                in_flight = runs_in_flight(instance)
                figures = kill_the_daemon(dep, instance, run.run_id, group=True)
                return {"run_id": run.run_id, "account": handle,
                        "worker": start["worker"], "step_pid": start["pid"],
                        "step": COLLECT_STEP, "snapshots_of_the_account_at_kill": snapshots,
                        "runs_in_flight_at_kill": in_flight, **figures}  # fmt: skip
        time.sleep(0.2)
    raise RuntimeError("no post run's collect step was inside the held metrics read in time")


def step_in_flight(
    attempts: list[dict[str, Any]], step: str, worker_pids: set[int]
) -> dict[str, Any] | None:
    """The STEP_START of ``step`` on a worker (a pid of ``worker_pids``) when the step has not
    ended (no STEP_SUCCESS or STEP_FAILURE); else None. ``attempts``: :func:`step_attempts`'s,
    whose TASK_RECEIVED entries (the worker's engine event) neither start nor end a step."""
    of_step = [a for a in attempts if a["step"] == step]
    if any(a["event"] in ("STEP_SUCCESS", "STEP_FAILURE") for a in of_step):
        return None
    starts = [a for a in of_step if a["event"] == "STEP_START" and a["pid"] in worker_pids]
    return starts[-1] if starts else None


def runs_in_flight(instance: Any) -> list[dict[str, Any]]:
    """The unfinished runs: job, account, status (those a process group's kill leaves)."""
    import dagster as dg

    statuses = [dg.DagsterRunStatus(s) for s in UNFINISHED]
    return [
        {"run_id": r.dagster_run.run_id, "job": r.dagster_run.job_name,
         "account": r.dagster_run.tags.get("dagster/partition"),
         "status": r.dagster_run.status.value}
        for r in instance.get_run_records(dg.RunsFilter(statuses=statuses))
    ]  # fmt: skip


def snapshots_of(dep: CeleryDeployment, handle: str) -> int:
    ((count,),) = store_rows(
        dep,
        "select count(*) from tweet_metrics m join accounts a on a.id = m.account_id "
        f"where a.handle = '{handle}'",
    )
    return int(count)


def step_output_metadata(instance: Any, run_id: str, step: str) -> list[dict[str, Any]]:
    """The metadata of each STEP_OUTPUT of ``step`` in ``run_id`` (one per attempt that ended)."""
    out = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key != step or event.event_type_value != "STEP_OUTPUT":
            continue
        metadata = event.event_specific_data.metadata or {}
        out.append({k: getattr(v, "value", v) for k, v in metadata.items()})
    return out


def sim_at(dep: CeleryDeployment, wall: float) -> datetime:
    """The rehearsal clock's reading at wall time ``wall`` (epoch seconds)."""
    at = datetime.fromtimestamp(wall, UTC)
    if dep.speed and dep.epoch is not None:
        return dep.epoch + (at - dep.epoch) * dep.speed
    return at


def metrics_figures(dep: CeleryDeployment, instance: Any) -> dict[str, Any]:
    """Each posted tweet's snapshots by horizon against what was due: duplicates (a tweet and
    horizon twice), and 1 h snapshots missing though due before the account's last collect
    step started (the collect after each post takes whatever is due)."""
    import dagster as dg

    last_collect: dict[str, datetime] = {}
    for record in instance.get_run_records(dg.RunsFilter(job_name="post_job")):
        handle = record.dagster_run.tags.get("dagster/partition")
        for a in step_attempts(instance, record.dagster_run.run_id, dep.worker_pids):
            if a["step"] == COLLECT_STEP and a["event"] == "STEP_START" and handle:
                at = sim_at(dep, a["at"])
                last_collect[handle] = max(last_collect.get(handle, at), at)
    rows = store_rows(
        dep,
        "select t.id, a.handle, t.posted_at, m.horizon, count(m.id) from tweets t "
        "join accounts a on a.id = t.account_id "
        "left join tweet_metrics m on m.tweet_id = t.id "
        "where t.status = 'posted' group by t.id, a.handle, t.posted_at, m.horizon",
    )
    by_tweet: dict[int, dict[str, Any]] = {}
    duplicates = 0
    for tweet_id, handle, posted_at, horizon, n in rows:
        tweet = by_tweet.setdefault(
            int(tweet_id), {"account": handle, "posted_at": posted_at, "horizons": {}}
        )
        if horizon is not None:
            tweet["horizons"][horizon] = int(n)
            duplicates += max(0, int(n) - 1)
    missing = [
        tweet_id for tweet_id, t in by_tweet.items()
        if "1h" not in t["horizons"] and t["account"] in last_collect
        and t["posted_at"].astimezone(UTC) + timedelta(hours=1) <= last_collect[t["account"]]
    ]  # fmt: skip
    return {
        "snapshots_by_tweet": {
            str(k): {"account": t["account"], "horizons": t["horizons"]}
            for k, t in sorted(by_tweet.items())
        },
        "snapshot_duplicates": duplicates,
        "one_hour_snapshots_missing_though_due": missing,
    }


def _collect_figures(r: DaemonRehearsal, instance: Any) -> None:
    killed = r.run_killed or {}
    r.figures.update({
        "killed_collect_step": [
            a for a in step_attempts(instance, killed.get("run_id", ""), r.dep.worker_pids)
            if a["step"] == COLLECT_STEP
        ],
        "killed_collect_step_outputs": step_output_metadata(
            instance, killed.get("run_id", ""), COLLECT_STEP
        ),
        "snapshots_of_the_account_at_end": snapshots_of(r.dep, killed.get("account", "")),
        **metrics_figures(r.dep, instance),
    })  # fmt: skip
    _posting_ticks(r, instance)


def kill_host_mid_post(r: DaemonRehearsal, instance: Any) -> None:
    """A post's claim left in flight: inside the first posting step (the sandbox has created
    the post and holds its answer), SIGKILL the worker running the step and the daemon's
    process group (the code servers and the run's coordinator): nothing is left to record the
    post, its row stays ``posting``. The worker and the daemon are restarted 3 s later (a
    supervisor), a second post per account seeded; then the claim is followed until it is
    settled (``reconcile_sensor``'s reconcile run, or the step's Celery redelivery after the
    visibility timeout, whichever comes first) and until the redelivery has run."""
    dep = r.dep
    killed = kill_inside_posting(
        dep, instance, None, r.launched_after, r.run_timeout, r.posts_before,
        daemon=True, daemon_group=True, worker_too=True,
    )  # fmt: skip
    r.run_killed = killed
    post_id = int(instance.get_run_by_id(killed["run_id"]).tags["xbot/post_id"])
    r.events.append({"event": "worker and daemon group SIGKILL inside the posting step",
                     "post_id": post_id, "row_at_kill": post_row(dep, post_id),
                     "runs_in_flight_after_kill": runs_in_flight(instance),
                     **killed})  # fmt: skip
    r.mark("host_killed_s")
    dead = killed["worker"]
    dep.stop(dead, signal.SIGKILL, grace=5)
    r.restarted_at = restart_daemon(dep, r.events)
    dep.start_workers(dead)
    r.events.append({"event": f"{dead} restarted", "pid": dep.workers[dead]})
    seed_due_posts(dep, "restart the host, post once")
    ended = _wait_ended(instance, killed["run_id"], r.run_timeout)
    r.mark("killed_run_done_s")
    r.events.append(_killed_run_ended(instance, killed, ended, "the killed post run"))
    settled = wait_for(lambda: post_row(dep, post_id)["status"] != "posting" and time.time(),
                       r.run_timeout, "the claimed post to leave posting")  # fmt: skip
    r.mark("claim_settled_s")
    r.events.append({"event": "the claim settled", "s_after_kill": round(settled - killed["at"], 1),
                     **post_row(dep, post_id)})  # fmt: skip
    redelivery_due = killed["at"] + (dep.visibility_timeout or 0) + 30
    while time.time() < redelivery_due:  # the step's redelivery, if it comes, to the end
        time.sleep(2)
    r.figures["claimed_post_id"] = post_id


def post_row(dep: CeleryDeployment, post_id: int) -> dict[str, Any]:
    """The post's row: status, attempts, its id on X."""
    ((status, attempts, x_id),) = store_rows(
        dep, f"select status, attempt_count, x_id from tweets where id = {int(post_id)}"
    )
    return {"status": status, "attempt_count": attempts, "x_id": x_id}


def _claim_figures(r: DaemonRehearsal, instance: Any) -> None:
    """Who settled the claim: the reconcile runs (their reports) and the killed run's posting
    step attempts after the kill (the redelivery), and the post's count on the sandbox."""
    import dagster as dg

    killed = r.run_killed or {}
    post_id = int(r.figures.get("claimed_post_id", 0))
    row = post_row(r.dep, post_id)
    reconciles = [
        {"run_id": rec.dagster_run.run_id, "run_key": rec.dagster_run.tags.get("dagster/run_key"),
         "sensor": rec.dagster_run.tags.get("dagster/sensor_name"),
         "location": run_location(rec.dagster_run), "status": rec.dagster_run.status.value,
         "created_s_after_kill": round(rec.create_timestamp.timestamp() - killed["at"], 1),
         "started_s_after_kill": round(rec.start_time - killed["at"], 1)
         if rec.start_time else None,
         "ended_s_after_kill": round(rec.end_time - killed["at"], 1) if rec.end_time else None,
         "reports": [m.get("report") for m in step_output_metadata(
             instance, rec.dagster_run.run_id, "reconcile_stuck_posts")]}
        for rec in reversed(instance.get_run_records(dg.RunsFilter(job_name="reconcile_job")))
    ]  # fmt: skip
    attempts = [
        a | {"s_after_kill": round(a["at"] - killed["at"], 1)}
        for a in step_attempts(instance, killed["run_id"], r.dep.worker_pids)
        if a["step"] == POST_STEP
    ]
    on_sandbox = [p for p in journal_posts(r.dep) if p.get("id") == row["x_id"]]
    killed_outputs = step_output_metadata(instance, killed["run_id"], POST_STEP)
    r.figures.update({
        "claimed_post_row_at_end": row,
        "claimed_post_on_sandbox": len(on_sandbox),
        "reconcile_runs": reconciles,
        "killed_posting_step_attempts": attempts,
        "killed_run_posting_outcomes": outcomes_in(killed_outputs),
        # a redelivered step of the failed run does nothing (orchestration's stand-down guard)
        "killed_run_stood_down": [m["stood_down"] for m in killed_outputs if "stood_down" in m],
    })  # fmt: skip
    _posting_ticks(r, instance)
    r.figures["reconcile_sensor_ticks_after_kill"] = [
        t | {"s_after_kill": round(t["at"] - killed["at"], 1)}
        for t in sensor_ticks(instance, celery_location(), "reconcile_sensor", killed["at"])
    ]


DAEMON_MODES: dict[str, DaemonMode] = {
    mode.name: mode
    for mode in (
        DaemonMode("none", no_kill, slow_post=False),
        DaemonMode("worker", kill_a_worker),
        DaemonMode("daemon", kill_the_daemon_mid_post(group=False), posts_per_account=2,
                   daemon_kill="pid"),
        DaemonMode("daemon_group", kill_the_daemon_mid_post(group=True), posts_per_account=2,
                   daemon_kill="process group"),
        DaemonMode("code_server", kill_the_code_server_mid_post, posts_per_account=2,
                   code_server_kill=True, after_drain=_posting_ticks),
        DaemonMode("collect_group", kill_the_group_mid_collect, posts_per_account=3,
                   slow_post=False, after_drain=_collect_figures,
                   daemon_kill="process group", kill_during="collect"),
        DaemonMode("claim_group", kill_host_mid_post, posts_per_account=2,
                   after_drain=_claim_figures, daemon_kill="process group",
                   kill_during="claim"),
        DaemonMode("refill_group", kill_the_group_mid_refill, seed=False, slow_post=False,
                   every_account_posts=True, after_drain=_refill_figures_and_ticks,
                   daemon_kill="process group", kill_during="refill"),
    )
}  # fmt: skip
"""The daemon rehearsal's kinds, by name (:func:`daemon_mode` picks one from the flags)."""


KILL_DURING = ("post", "refill", "collect", "claim")
"""Where the daemon's process group is killed: inside the first posting step (the worker left to
finish it), the first refill's step, a post run's metrics collect, or the first posting step
with the worker killed too (the post's claim left in flight)."""


def daemon_mode(
    *,
    kill: bool = True,
    kill_daemon: bool = False,
    daemon_group: bool = False,
    kill_code_server: bool = False,
    kill_during: str = "post",
) -> DaemonMode:
    """The mode :func:`rehearse_daemon`'s flags name (refusing combinations it never ran)."""
    if kill + kill_daemon + kill_code_server > 1:
        raise ValueError("one of kill (a worker), kill_daemon, kill_code_server")
    if kill_during not in KILL_DURING:
        raise ValueError(f"kill_during is one of {KILL_DURING}, not {kill_during!r}")
    if kill_during != "post":
        if not (kill_daemon and daemon_group):
            raise ValueError(
                f"kill_during={kill_during!r} rehearses the daemon's process group killed"
            )
        return DAEMON_MODES[f"{kill_during}_group"]
    if kill_daemon:
        return DAEMON_MODES["daemon_group" if daemon_group else "daemon"]
    if kill_code_server:
        return DAEMON_MODES["code_server"]
    return DAEMON_MODES["worker" if kill else "none"]


def rehearse_daemon(
    folder: Path,
    *,
    kill: bool = True,
    kill_daemon: bool = False,
    daemon_group: bool = False,
    kill_code_server: bool = False,
    kill_during: str = "post",
    **options: Any,
) -> dict[str, Any]:
    """The daemon launching Celery runs (module docstring, ``--daemon``), killing what the flags
    say (:func:`daemon_mode`); ``options`` are :func:`rehearse_daemon_mode`'s.

    ``kill``: the worker inside the first posting step (its step redelivered to the other).
    ``kill_daemon``: the daemon's pid inside the first posting step (the worker left alone),
    restarted 3 s later; once the killed run has ended a second due post is seeded per account.
    ``daemon_group``: the daemon's process group (its code servers too): the run's coordinator
    dies, the run stays STARTED until run monitoring fails it past its time limit
    (``account_run_max_s``), and only then is the account's second post launched.
    ``kill_code_server``: the Celery location's code server that launched the first post run
    (its coordinator's parent) alone, the daemon left running; a second due post seeded at once.
    ``kill_during="refill"`` (with ``kill_daemon`` and ``daemon_group``): no post seeded; the
    group SIGKILLed once the ``candidate_refill_sensor``'s first refill has its step on a
    worker (``only`` must include ``candidate_refill_sensor``)."""
    mode = daemon_mode(kill=kill, kill_daemon=kill_daemon, daemon_group=daemon_group,
                       kill_code_server=kill_code_server, kill_during=kill_during)  # fmt: skip
    return rehearse_daemon_mode(folder, mode, **options)


class ConnectionSampler(threading.Thread):
    """Postgres connections every ``interval`` seconds from one connection of its own (not
    counted): the server's, and the deployment's databases' (store and Dagster's), at their peak."""

    def __init__(self, port: int, databases: set[str], interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.port, self.databases, self.interval = port, databases, interval
        self.stop_event = threading.Event()
        self.peak_server = self.peak_deployment = self.samples = 0
        self.peak_by_database: dict[str, int] = {}
        self.max_connections: int | None = None

    def run(self) -> None:
        import psycopg

        with psycopg.connect(deploy_local.pg_admin_url(self.port), autocommit=True) as conn:
            row = conn.execute("select current_setting('max_connections')::int").fetchone()
            self.max_connections = int(row[0]) if row else None
            while not self.stop_event.wait(self.interval):
                rows = conn.execute(
                    "select coalesce(datname, ''), count(*) from pg_stat_activity "
                    "where pid <> pg_backend_pid() and backend_type = 'client backend' "
                    "group by 1"
                ).fetchall()
                counts = {str(db): int(n) for db, n in rows}
                ours = {db: n for db, n in counts.items() if db in self.databases}
                self.samples += 1
                self.peak_server = max(self.peak_server, sum(counts.values()))
                self.peak_deployment = max(self.peak_deployment, sum(ours.values()))
                for db, n in ours.items():
                    self.peak_by_database[db] = max(self.peak_by_database.get(db, 0), n)

    def figures(self, budget: Any) -> dict[str, Any]:
        """The peaks against the deployment's connection budget and the server's limit."""
        self.stop_event.set()
        self.join(timeout=10)
        return {
            "postgres_connections": {
                "samples": self.samples,
                "interval_s": self.interval,
                "peak_deployment": self.peak_deployment,
                "peak_by_database": self.peak_by_database,
                "peak_server_all_clients": self.peak_server,
                "max_connections": self.max_connections,
                "budget_total": budget.total(),
                "budget_by_process": budget.by_process(),
            }
        }


def rehearse_daemon_mode(
    folder: Path,
    mode: DaemonMode,
    *,
    accounts: int = 1,
    speed: float = 120,
    visibility_timeout: int = 45,
    post_delay: float = 15,
    broker_db: int = 13,
    compile_bytecode: bool = True,
    account_run_max_s: int | None = None,
    only: set[str] | None = None,
    warehouse: bool = False,
    settle_s: float = 0.0,
    run_timeout: float = 900,
    count_all_cpu: bool = False,
    sample_connections: bool = False,
) -> dict[str, Any]:
    """One daemon rehearsal of ``mode``; returns the figures. The setup (databases, 2 workers,
    the sandbox, due posts seeded, the daemon and its automation), the drain (instigators
    stopped, runs finished and recorded in ``system_health``) and the checks (runs, posting
    steps, posts on the sandbox against the store) are every mode's; between them, ``mode.kill``.

    ``only``: start just these instigators of the plan (the tests: the Celery location's
    ``accounts_sensor`` and ``posting_sensor`` and one schedule of the main location), else the
    whole plan (then ``warehouse=True``: the main location's declarative automation builds on
    the first build). ``settle_s``: seconds the deployment keeps running after the seeded
    posts are out (the refills' posts come due on the rehearsal clock). ``sample_connections``:
    the Postgres connections' peak every 2 s (:class:`ConnectionSampler`)."""
    load_before = os.getloadavg()
    if count_all_cpu:
        deployment.become_subreaper()
    dep = CeleryDeployment(
        folder=folder, speed=speed, accounts=accounts, broker_db=broker_db,
        visibility_timeout=visibility_timeout, compile=compile_bytecode,
        workspace=CELERY_WORKSPACE, warehouse=warehouse, account_run_max_s=account_run_max_s,
    )  # fmt: skip
    rusage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = deployment.CpuSampler(dep, interval=0.5, classify=_kind, reap=False)
    r = DaemonRehearsal(dep=dep, accounts=accounts, run_timeout=run_timeout)
    connections: ConnectionSampler | None = None
    connection_figures: dict[str, Any] = {}
    try:
        dep.prepare()
        r.mark("prepared_s")
        sampler.start()
        if sample_connections:
            connections = ConnectionSampler(dep.pg_port, {dep.store_db, dep.dagster_db})
            connections.start()
        launched_workers = dep.launch_workers(*WORKERS)  # they import while the rest starts
        dep.start_sandbox()  # the accounts on the sandbox and in the store (no partition yet)
        if mode.seed:  # else the refill sensor fills the queue
            seed_due_posts(dep)
        r.posts_before = len(journal_posts(dep))
        if mode.slow_post:
            dep.set_fault({"name": "slow_response", "match": "create_tweet", "count": 1,
                           "seconds": post_delay})  # fmt: skip
        r.mark("sandbox_ready_s")
        r.launched_after = time.time() - 1
        dep.start_daemon()
        started = dep.turn_on_automation(only)
        r.mark("automation_on_s")
        r.events.append({"event": "automation turned on", "started": started})
        dep.wait_workers(launched_workers)
        r.mark("workers_ready_s")
        r.events.append({"event": "workers started", "pids": dict(dep.workers)})
        with dep.instance() as instance:
            mode.kill(r, instance)
            wait_for(lambda: posted_rows(dep) >= accounts * mode.posts_per_account
                     and unfinished_runs(instance, "post_job") == 0,
                     run_timeout, "every seeded post to be posted")  # fmt: skip
            if mode.every_account_posts:  # every account's refill, lost ones too
                wait_for(lambda: set(posted_by_account(dep)) >= set(dep.handles)
                         and unfinished_runs(instance, "post_job") == 0,
                         run_timeout, "a post of every account")  # fmt: skip
            r.mark("seeded_posts_done_s")
            if settle_s:
                time.sleep(settle_s)
                r.mark("settled_s")
            states = instigator_states(instance)  # as the operator left them
            stopped_at = sim_now(dep)
            stop_launching(instance)  # the queued and started runs still run, nothing new
            wait_for(lambda: unfinished_runs(instance) == 0, run_timeout,
                     "the runs in flight to finish")  # fmt: skip
            r.mark("drained_s")
            finished = _celery_runs(instance, r.launched_after)
            # the run-status sensors (30 s interval, still on) record each finished run
            wait_for(lambda: finished <= {h["run_id"] for h in job_health_rows(dep)}, 180,
                     "the Celery runs' job:<name> rows in system_health", every=3)  # fmt: skip
            r.mark("runs_recorded_in_system_health_s")
            sampler.sample()
            runs = daemon_runs(instance, dep.worker_pids, r.launched_after)
            retried = (
                posting_outcomes(instance, r.worker_killed["run_id"]) if r.worker_killed else []
            )
            daemon_kill_figures = (
                _daemon_kill_figures(instance, r.run_killed, r.restarted_at, r.launched_after)
                if r.run_killed else {}
            )  # fmt: skip
            if mode.after_drain is not None:
                mode.after_drain(r, instance)
        if connections is not None:
            connection_figures = connections.figures(dep.connection_budget())
        result = posts_check(dep)
        # still queued though due well before the sensors stopped (three posting ticks)
        overdue = stopped_at - timedelta(seconds=30 * speed)
        result["queued_posts_overdue_when_sensors_stopped"] = sum(
            1 for p in due_posts(dep) if p["scheduled_at"].astimezone(UTC) <= overdue
        )
        health = job_health_rows(dep)
        result["logs"] = str(dep.folder / "logs")
    finally:
        sampler.stop_event.set()
        if connections is not None:
            connections.stop_event.set()
        dep.close()
        if count_all_cpu:
            for _ in range(10):
                reap_children()
                time.sleep(0.5)
    rusage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "mode": "daemon",
        "daemon_mode": mode.name,
        "workspace": CELERY_WORKSPACE,
        "accounts": accounts,
        "speed": speed,
        "visibility_timeout_s": visibility_timeout,
        "sandbox_post_delay_s": post_delay if mode.slow_post else None,
        "daemon_kill": mode.daemon_kill,
        "code_server_kill": mode.code_server_kill,
        "kill_during": mode.kill_during,
        "account_run_max_seconds": account_run_max_s,
        "events": r.events,
        "instigator_states": states,
        "main_location_sensors_the_celery_location_replaces": {
            name: states.get(MAIN_LOCATION, {}).get(name, "STOPPED (default, never started)")
            for name in sorted(off_in_main_location())
        },
        **_daemon_figures(runs, dep.worker_pids, r.killed(), health),
        **daemon_kill_figures,
        **r.figures,
        "retried_step_outcomes": retried,
        "reconciled_by_retry": {
            k: len(v) for o in retried for k, v in o["reconcile"].items() if v
        },
        "posted_by_retry": sum(
            1 for o in retried for step in o.get("outcomes", []) if step.get("status") == "posted"
        ),
        **result,
        **connection_figures,
        "timings_s": r.timings,
        **_cpu_figures(sampler.by_kind(), dep.startup_cpu, runs),
        "cpu_seconds_children_total": round(
            (rusage1.ru_utime + rusage1.ru_stime) - (rusage0.ru_utime + rusage0.ru_stime), 1
        )
        if count_all_cpu
        else None,
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }  # fmt: skip


def restart_daemon(dep: CeleryDeployment, events: list[dict[str, Any]]) -> float:
    """Start the killed daemon again 3 s later, as a supervisor would; when it was started."""
    time.sleep(3)
    dep.start_daemon()
    events.append({"event": "daemon restarted", "pid": dep.procs["daemon"].pid})
    return time.time()


def _wait_ended(instance: Any, run_id: str, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the run to end; whether it did (not raising: a run
    left STARTED is a finding to report)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instance.get_run_by_id(run_id).is_finished:
            return True
        time.sleep(1)
    return False


def after_code_server_kill(
    dep: CeleryDeployment, instance: Any, killed: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """After a code server's SIGKILL: when the daemon started another one for its location
    (pid, seconds after the kill), whether and how the killed run ended and whether its
    coordinator outlived its server, the posting sensor's ticks since the kill."""
    daemon, location = killed["daemon_pid"], killed["location"]
    deadline = time.monotonic() + timeout
    respawned: tuple[int, float] | None = None
    ended_at: float | None = None
    coordinator_seen_alive_s = 0.0
    while time.monotonic() < deadline and (respawned is None or ended_at is None):
        now = time.time()
        if respawned is None:
            new = [p for p, loc in code_servers(daemon).items()
                   if loc == location and str(p) not in killed["code_servers_before"]]  # fmt: skip
            if new:
                respawned = (new[0], round(now - killed["at"], 1))
        if processes.alive(killed["coordinator_pid"]):
            coordinator_seen_alive_s = round(now - killed["at"], 1)
        if ended_at is None and instance.get_run_by_id(killed["run_id"]).is_finished:
            ended_at = now
        time.sleep(0.5)
    run = instance.get_run_by_id(killed["run_id"])
    return {
        "code_server_respawned": respawned is not None,
        "code_server_respawned_pid": respawned[0] if respawned else None,
        "code_server_respawned_s_after_kill": respawned[1] if respawned else None,
        "killed_run_status": run.status.value,
        "killed_run_ended_s_after_kill": round(ended_at - killed["at"], 1) if ended_at else None,
        "coordinator_last_seen_alive_s_after_kill": coordinator_seen_alive_s,
        "daemon_alive_after": processes.alive(daemon),
    }


def ticks_after_kill(instance: Any, killed: dict[str, Any]) -> list[dict[str, Any]]:
    """The Celery location's posting sensor's ticks since the kill (seconds after it)."""
    return [
        t | {"s_after_kill": round(t["at"] - killed["at"], 1)}
        for t in sensor_ticks(instance, celery_location(), "posting_sensor", killed["at"])
    ]


def posted_by_account(dep: CeleryDeployment) -> dict[str, int]:
    """Posted rows by account handle."""
    rows = store_rows(
        dep,
        "select a.handle, count(*) from tweets t join accounts a "
        "on a.id = t.account_id where t.status = 'posted' group by a.handle",
    )
    return {str(handle): int(n) for handle, n in rows}


def _refill_kill_figures(
    instance: Any, killed: dict[str, Any], restarted_at: float
) -> dict[str, Any]:
    """The refill runs of the killed one's account (key, status, when, relative to the kill),
    and whether the refill sensor asked again after the restart."""
    import dagster as dg

    records = instance.get_run_records(
        dg.RunsFilter(job_name="refill_candidates_job",
                      tags={"dagster/partition": killed["account"]}),
    )  # fmt: skip
    every = instance.get_run_records(dg.RunsFilter(job_name="refill_candidates_job"))
    first_posts: dict[str, float] = {}
    for r in instance.get_run_records(dg.RunsFilter(job_name="post_job")):
        handle = r.dagster_run.tags.get("dagster/partition")
        if r.dagster_run.status.value == "SUCCESS" and r.start_time and handle:
            at = round(r.start_time - killed["at"], 1)
            first_posts[handle] = min(first_posts.get(handle, at), at)
    runs = [
        {"run_id": r.dagster_run.run_id, "run_key": r.dagster_run.tags.get("dagster/run_key"),
         "status": r.dagster_run.status.value,
         "reason": r.dagster_run.tags.get("xbot/reason"),
         "created_s_after_kill": round(r.create_timestamp.timestamp() - killed["at"], 1),
         "ended_s_after_kill": round(r.end_time - killed["at"], 1) if r.end_time else None}
        for r in reversed(records)
    ]  # fmt: skip
    posts = instance.get_run_records(
        dg.RunsFilter(job_name="post_job", tags={"dagster/partition": killed["account"]}),
    )  # fmt: skip
    return {
        "refill_runs_every_account": [
            {
                "account": r.dagster_run.tags.get("dagster/partition"),
                "run_key": r.dagster_run.tags.get("dagster/run_key"),
                "status": r.dagster_run.status.value,
                "created_s_after_kill": round(r.create_timestamp.timestamp() - killed["at"], 1),
                "started_s_after_kill": round(r.start_time - killed["at"], 1)
                if r.start_time
                else None,
                "ended_s_after_kill": round(r.end_time - killed["at"], 1) if r.end_time else None,
            }
            for r in reversed(every)
        ],
        "first_post_run_started_s_after_kill_by_account": dict(sorted(first_posts.items())),
        "post_runs_of_the_account": [
            {
                "run_id": r.dagster_run.run_id,
                "status": r.dagster_run.status.value,
                "created_s_after_kill": round(r.create_timestamp.timestamp() - killed["at"], 1),
                "started_s_after_kill": round(r.start_time - killed["at"], 1)
                if r.start_time
                else None,
            }
            for r in reversed(posts)
        ],
        "refill_runs_of_the_account": runs,
        "refill_runs_after_restart": sum(
            1 for r in records if r.create_timestamp.timestamp() >= restarted_at
        ),
    }


def _daemon_kill_figures(
    instance: Any, killed: dict[str, Any], restarted_at: float, after: float
) -> dict[str, Any]:
    """What the daemon's kill did to its run, and what the restarted daemon launched."""
    import dagster as dg

    record = instance.get_run_records(dg.RunsFilter(run_ids=[killed["run_id"]]))[0]
    run = record.dagster_run
    logs = [e for e in instance.all_logs(run.run_id) if e.dagster_event is not None]
    kinds = collections.Counter(e.dagster_event.event_type_value for e in logs)
    failures = [e.message for e in logs if e.dagster_event.event_type_value == "PIPELINE_FAILURE"]
    later = [
        r for r in instance.get_run_records(dg.RunsFilter(job_name="post_job"))
        if r.create_timestamp.timestamp() >= restarted_at
    ]  # fmt: skip
    return {
        "daemon_killed_run": {
            "run_id": run.run_id,
            "status": run.status.value,
            "seconds_after_kill_to_end": round(record.end_time - killed["at"], 1)
            if record.end_time else None,
            "seconds_started_to_end": round(record.end_time - record.start_time, 1)
            if record.end_time and record.start_time else None,
            "max_runtime_tag": run.tags.get("dagster/max_runtime"),
            "failure_messages": failures,
            "ended_by": "RUN_SUCCESS" if kinds["PIPELINE_SUCCESS"] else
            "RUN_FAILURE" if kinds["PIPELINE_FAILURE"] else None,
            "engine_events": kinds["ENGINE_EVENT"],
            "posting_outcomes": posting_outcomes(instance, run.run_id),
        },
        "post_runs_launched_after_restart": [
            {"run_id": r.dagster_run.run_id, "status": r.dagster_run.status.value,
             "sensor": r.dagster_run.tags.get("dagster/sensor_name"),
             "location": run_location(r.dagster_run),
             "created_s_after_kill": round(r.create_timestamp.timestamp() - killed["at"], 1)}
            for r in later
        ],
    }  # fmt: skip


def stop_launching(instance: Any) -> None:
    """Stop every sensor and schedule turned on (the instance's stored states): the daemon
    launches no new run; those queued still launch, those started finish, the run-status
    sensors (on by default, no stored state) keep recording them."""
    from dagster._core.scheduler.instigation import InstigatorStatus

    for state in instance.all_instigator_state():
        if state.status == InstigatorStatus.RUNNING:
            instance.update_instigator_state(state.with_status(InstigatorStatus.STOPPED))


def _celery_runs(instance: Any, after: float) -> set[str]:
    """The Celery location's runs created after ``after`` (all finished once drained)."""
    return {
        r.dagster_run.run_id
        for r in instance.get_run_records(limit=500)
        if run_location(r.dagster_run) == celery_location()
        and r.create_timestamp.timestamp() >= after
    }


def off_in_main_location() -> frozenset[str]:
    from xbot_assets.celery_definitions import OFF_IN_MAIN_LOCATION

    return OFF_IN_MAIN_LOCATION


def celery_location() -> str:
    from xbot_assets.celery_definitions import LOCATION_NAME

    return LOCATION_NAME


def _daemon_figures(
    runs: list[dict[str, Any]],
    workers: dict[int, str],
    killed: dict[str, Any] | None,
    health: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the daemon launched, where each posting step ran, and what the kill did."""
    post_runs = [r for r in runs if r["job"] == "post_job"]
    posting_starts = [
        {"run_id": r["run_id"], "worker": s["worker"], "pid": s["pid"],
         "coordinator_pid": r["coordinator_pid"]}
        for r in post_runs for s in r["steps"]
        if s["step"] == POST_STEP and s["event"] == "STEP_START"
    ]  # fmt: skip
    by_location: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for run in runs:
        by_location[f"{run['location']}/{run['job']}"][run["status"]] += 1
    recorded = {h["run_id"] for h in health}
    out: dict[str, Any] = {
        "runs": [{k: v for k, v in r.items() if k != "steps"} for r in runs],
        "runs_by_location_job_and_status": {k: dict(v) for k, v in sorted(by_location.items())},
        "post_runs": len(post_runs),
        "post_runs_from_celery_location": sum(
            1 for r in post_runs if r["location"] == celery_location()
        ),
        "post_runs_from_main_location": sum(1 for r in post_runs if r["location"] == MAIN_LOCATION),
        "post_runs_launched_by": dict(collections.Counter(
            r["tags"].get("dagster/sensor_name", "no sensor") for r in post_runs)),
        "posting_step_starts": posting_starts,
        "posting_steps_on_workers": bool(posting_starts) and all(
            s["pid"] in workers and s["pid"] != s["coordinator_pid"] for s in posting_starts
        ),
        "steps_by_worker": dict(collections.Counter(
            s["worker"] or "the run's own process (in-process executor)"
            for r in runs for s in r["steps"] if s["event"] == "STEP_SUCCESS")),
        "longest_step_s": max(
            (_step_seconds(r["steps"]) for r in runs if r["steps"]), default=None
        ),
        "celery_runs_recorded_in_system_health": sum(
            1 for r in runs if r["location"] == celery_location() and r["run_id"] in recorded
        ),
        "job_health_components": dict(collections.Counter(h["component"] for h in health)),
    }  # fmt: skip
    if killed is not None:
        killed_run = next(r for r in runs if r["run_id"] == killed["run_id"])
        posting = [s for s in killed_run["steps"] if s["step"] == POST_STEP]
        out.update({
            "killed_run": killed_run,
            "posting_step_attempts": posting,
            "retried_on_other_worker": any(
                s["event"] == "STEP_SUCCESS" and s["worker"] not in (None, killed["worker"])
                for s in posting
            ),
            "redelivery_seconds_after_kill": _redelivery(posting, killed),
        })  # fmt: skip
    return out


POST_KILL_SENSORS = frozenset({"accounts_sensor", "posting_sensor", "daily_summaries_schedule"})
"""The instigators a kill rehearsal turns on: the Celery location's account and posting
sensors, one schedule of the main location (no warehouse build)."""
DAEMON_RESULT_FILES: dict[str, Path] = {
    "none": DAEMON_RESULTS,
    "worker": DAEMON_RESULTS,
    "daemon": DAEMON_KILL_RESULTS,
    "daemon_group": DAEMON_GROUP_KILL_RESULTS,
    "code_server": CODE_SERVER_KILL_RESULTS,
    "refill_group": REFILL_GROUP_KILL_RESULTS,
    "collect_group": COLLECT_GROUP_KILL_RESULTS,
    "claim_group": CLAIM_GROUP_KILL_RESULTS,
}
"""Where the script writes each daemon mode's figures."""


def daemon_options(mode: DaemonMode, account_run_max: int | None, settle: float) -> dict[str, Any]:
    """The options the script runs a daemon mode with: a worker's kill under the whole plan
    (warehouse built, ``settle`` s more); the daemon's or a code server's kill with the account
    and posting sensors only, the answer held 6 s, ACCOUNT_RUN_MAX_SECONDS 60 when the run's
    coordinator may die (unless ``account_run_max`` says otherwise)."""
    if mode.name in ("none", "worker"):
        return {"warehouse": True, "settle_s": settle, "account_run_max_s": account_run_max}
    coordinator_may_die = mode.daemon_kill == "process group" or mode.code_server_kill
    only = set(POST_KILL_SENSORS)
    if mode.kill_during == "refill":
        only.add("candidate_refill_sensor")
    if mode.kill_during == "claim":  # the claim is the reconcile sensor's to settle
        only.add("reconcile_sensor")
    options: dict[str, Any] = {
        "only": only,
        "run_timeout": 400,
        "account_run_max_s": account_run_max or (60 if coordinator_may_die else None),
    }
    if mode.slow_post:
        options["post_delay"] = 6
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--speed", type=float, default=120)
    parser.add_argument("--visibility-timeout", type=int, default=None,
                        help="seconds before another worker takes an unacknowledged step over; "
                        "above the longest step (a refill: ~20 s at load 20); default 45, 150 "
                        "with --kill-during claim (after the dead run's limit and the "
                        "reconcile sensor's tick)")  # fmt: skip
    parser.add_argument(
        "--broker-db",
        type=int,
        default=None,
        help="Redis DB of broker and backend (default 9; 13 with --daemon)",
    )
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="the daemon launches the runs (workspace.celery.yaml, the whole "
        "automation plan); writes celery_daemon_rehearsal.json",
    )
    parser.add_argument(
        "--kill-daemon",
        action="store_true",
        help="--daemon: SIGKILL the daemon (not a worker) inside the first posting step, "
        "restart it, seed a second post (the Celery location's accounts and posting sensors "
        "only, no warehouse build, answer held 6 s); writes celery_daemon_kill_rehearsal.json",
    )
    parser.add_argument(
        "--daemon-group",
        action="store_true",
        help="--kill-daemon: SIGKILL the daemon's process group (its code servers too)",
    )
    parser.add_argument(
        "--kill-code-server",
        action="store_true",
        help="--daemon: SIGKILL the Celery location's code server (not the daemon) inside the "
        "first posting step, seed a second post at once; writes "
        "celery_code_server_kill_rehearsal.json",
    )
    parser.add_argument(
        "--kill-during",
        choices=KILL_DURING,
        default="post",
        help="--kill-daemon --daemon-group: kill inside the first posting step (post), inside "
        "the first refill_candidates_job step (refill: no post seeded, the refill sensor on), "
        "inside a post run's metrics collect once snapshots are due (collect), or inside the "
        "first posting step with its worker killed too (claim: the claim left in flight, the "
        "reconcile sensor on); each writes celery_<mode>_group_kill_rehearsal.json",
    )
    parser.add_argument(
        "--account-run-max",
        type=int,
        default=None,
        help="ACCOUNT_RUN_MAX_SECONDS for the deployment (default: 60 with --daemon-group or "
        "--kill-code-server, else the setting's default)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=None,
        help="--daemon: seconds each wait may take (default 400 for a kill of the daemon or "
        "a code server, 900 otherwise)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=240,
        help="--daemon: seconds it keeps running after the seeded posts",
    )
    parser.add_argument("--folder", type=Path, default=None,
                        help="state and logs (default: a temporary folder, removed)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    mode = None
    if args.daemon:
        if args.kill_during != "post" and not (args.kill_daemon and args.daemon_group):
            parser.error(f"--kill-during {args.kill_during} needs --kill-daemon --daemon-group")
        mode = daemon_mode(kill=not (args.kill_daemon or args.kill_code_server),
                           kill_daemon=args.kill_daemon, daemon_group=args.daemon_group,
                           kill_code_server=args.kill_code_server,
                           kill_during=args.kill_during)  # fmt: skip

    visibility = args.visibility_timeout or (150 if args.kill_during == "claim" else 45)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through rehearse()'s cleanup (processes, databases)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # a background job starts with SIGINT ignored
    with contextlib.ExitStack() as stack:
        folder = args.folder or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if mode is not None:
            options = daemon_options(mode, args.account_run_max, args.settle)
            if args.run_timeout:
                options["run_timeout"] = args.run_timeout
            result = rehearse_daemon_mode(folder, mode, accounts=args.accounts, speed=args.speed,
                                          sample_connections=True,
                                          visibility_timeout=visibility,
                                          broker_db=13 if args.broker_db is None
                                          else args.broker_db,
                                          count_all_cpu=True, **options)  # fmt: skip
        else:
            result = rehearse(folder, accounts=args.accounts, speed=args.speed,
                              visibility_timeout=visibility,
                              broker_db=9 if args.broker_db is None else args.broker_db,
                              count_all_cpu=True)  # fmt: skip
    result = {"started_at": started, "command": " ".join(sys.argv), **result}
    out = args.out or (DAEMON_RESULT_FILES[mode.name] if mode is not None else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
