"""Deployment rehearsal: the real daemon on Postgres, on the rehearsal clock, with faults.

Starts the local deployment (`scripts/deploy_local.py`: Postgres storage, Redis, the sandbox
server posted to by the api poster, daemon, webserver, health server) with every process on the
rehearsal clock (`--speed K`), lets the sensors and schedules run it for `--minutes`, SIGKILLs
the daemon `--daemon-kills` times (restarting it each time) and one run worker of a `post_job`
run while it runs, then stops and counts:

* posts on the sandbox (its journal) against the durable store: duplicates (same text twice on
  the account), lost (a sandbox post the store does not know, a store `posted` row the sandbox
  does not have, rows left in `posting`/`unknown`);
* Dagster runs by job and status (every run's outcome recorded: none left unfinished);
* metric snapshots by horizon; whether the automation materialised the learning assets;
* CPU seconds of every process of the deployment over the measured window, exactly: this
  process is the deployment's child subreaper (PR_SET_CHILD_SUBREAPER), so every process of the
  tree, even one orphaned by a daemon kill, is reaped here or by its parent and its CPU ends in
  this process's RUSAGE_CHILDREN; the CPU the live processes had used before the window opened
  is subtracted. A once-a-second /proc sample splits it by kind (a lower bound per kind).
  Reported per post and per account-day, with the accounts run (``--accounts``).

Writes benchmarks/results/deployment.json. Run it niced; it records the load average.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `scripts` is a folder of the repository's root
    sys.path.insert(0, str(ROOT))

from scripts import deploy_local, processes  # noqa: E402

RESULTS = ROOT / "benchmarks/results/deployment.json"
LEARNING_ASSETS = ("engagement_scorer", "arm_posteriors", "fct_post_outcomes")
UNFINISHED = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of the deployment (a killed daemon's code server, its run workers) re-parent to
    this process instead of init, so their CPU is counted when they are reaped here."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_orphans(keep: set[int]) -> None:
    """Reap the children of this process that are not the deployment's own Popen objects
    (orphans adopted as subreaper), so their CPU reaches RUSAGE_CHILDREN."""
    for pid in processes.children(os.getpid()):
        if pid not in keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float | None:
    """The CPU seconds (utime+stime) a live process has used; None once it has exited."""
    return processes.cpu_seconds(pid)


class CpuSampler(threading.Thread):
    """Every ``interval`` seconds: the CPU of every live process of the deployment ``dep``, by
    kind (``classify(cmdline)``, by default the deployment's kinds), a lower bound: the last
    interval of a process that exits is missed. With ``reap`` (this process the subreaper), it
    also reaps adopted orphans. ``tree_cpu()`` is the CPU the tree had used before the window.
    The Celery rehearsal (``benchmarks/celery_rehearsal.py``) samples its workers with it."""

    def __init__(
        self,
        dep: Any,
        *,
        interval: float = 1.0,
        classify: Callable[[str], str] | None = None,
        reap: bool = True,
    ) -> None:
        super().__init__(daemon=True)
        self.dep = dep
        self.interval = interval
        self.classify = classify or _kind
        self.reap = reap
        self.cpu: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.stop_event = threading.Event()

    def tree_cpu(self) -> float:
        """utime+stime+cutime+cstime of every live process of the deployment (each CPU second
        counted once: a process's reaped children are in its cutime, live ones are listed)."""
        return sum(
            processes.cpu_seconds(pid, reaped_children=True) or 0.0
            for pid in self.dep.leftover_pids()
        )

    def sample(self) -> None:
        if self.reap:
            reap_orphans({p.pid for p in self.dep.procs.values()})
        for pid in self.dep.leftover_pids():
            seconds = process_cpu(pid)
            if seconds is None:
                continue
            cmd = " ".join(processes.cmdline(pid))
            if not cmd:
                continue
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)
            self.kind.setdefault(pid, self.classify(cmd))

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = collections.defaultdict(float)
        for pid, seconds in self.cpu.items():
            out[self.kind[pid]] += seconds
        return {k: round(v, 1) for k, v in sorted(out.items())}


def _kind(cmd: str) -> str:
    if "execute_run" in cmd or "execute_step" in cmd or "multiprocessing" in cmd:
        return "run workers"
    if "api grpc" in cmd:
        return "code servers"
    for name in ("dagster-daemon", "dagster-webserver", "sandbox serve", "health serve", "dbt"):
        if name in cmd:
            return name
    return "other"


def _worker_pid(dep: Any, run_id: str) -> tuple[int | None, bool]:
    """The run worker's pid (Dagster's "Started process for run (pid: N)" event) and whether
    its posting step has started."""
    data = dep.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection {
             events { __typename ... on MessageEvent { message stepKey } } } } }""",
        {"id": run_id},
    )
    pid, posting = None, False
    for event in data["logsForRun"].get("events") or []:
        found = re.search(r"pid: (\d+)", event.get("message") or "")
        if found:
            pid = int(found.group(1))
        if event["__typename"] == "ExecutionStepStartEvent" and event.get("stepKey") == (
            "post_due_posts"
        ):
            posting = True
    return pid, posting


POSTING_JOBS = ("post_job", "post_batch_job")


def _posting_rows(dep: Any) -> list[int]:
    """Ids of the store's posts in ``posting`` (claimed and marked sent, no answer recorded)."""
    import psycopg

    with psycopg.connect(dep.env()["DATABASE_URL"], autocommit=True) as conn:
        return [int(r[0]) for r in conn.execute("select id from tweets where status = 'posting'")]


def kill_a_post_run_worker(dep: Any, deadline: float) -> dict[str, Any] | None:
    """SIGKILL the worker of a posting run in the middle of a post: the sandbox is told to
    answer the next create-tweet request 8 real seconds late (its ``slow`` fault), and the run
    whose post is then in ``posting`` (its request sent, no answer yet) is killed. None if no
    post came before ``deadline``."""
    import httpx

    from xbot_assets.defs.orchestration import POST_ID_TAG, POST_IDS_TAG

    httpx.post(f"{dep.url('sandbox')}/__sandbox/faults",
               json={"name": "slow", "match": "create_tweet", "count": 1, "seconds": 8},
               timeout=30)  # fmt: skip
    try:
        while time.monotonic() < deadline:
            posting = set(_posting_rows(dep))
            if posting:
                data = dep.graphql(
                    """{ runsOrError(filter: {statuses: [STARTED]}) { ... on Runs { results {
                         runId jobName tags { key value } } } } }"""
                )
                for run in data["runsOrError"]["results"]:
                    if run["jobName"] not in POSTING_JOBS:
                        continue
                    tags = {t["key"]: t["value"] for t in run["tags"]}
                    held = {int(p) for p in tags.get(POST_IDS_TAG, "").split(",") if p}
                    if run["jobName"] == "post_job":
                        held.add(int(tags.get(POST_ID_TAG, 0)))
                    pid, _ = _worker_pid(dep, run["runId"])
                    if held & posting and pid and pid in dep.leftover_pids():
                        os.kill(pid, signal.SIGKILL)
                        return {"run_id": run["runId"], "job": run["jobName"], "pid": pid,
                                "post_ids_in_posting": sorted(held & posting),
                                "at": _now()}  # fmt: skip
            time.sleep(0.2)
        return None
    finally:
        with contextlib.suppress(Exception):
            httpx.request("DELETE", f"{dep.url('sandbox')}/__sandbox/faults/slow", timeout=30)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sandbox_vs_store(journal: Path, engine: Any) -> dict[str, Any]:
    """Posts on the sandbox (its journal) against the durable store: duplicates (the same text
    twice on an account), lost (on the sandbox unknown to the store, a ``posted`` row the
    sandbox lacks, rows left ``posting``/``unknown``), and snapshots by horizon."""
    from sqlalchemy import text

    posted = [
        entry
        for line in (journal.read_text().splitlines() if journal.exists() else [])
        if (entry := json.loads(line)).get("op") == "post"
    ]
    texts = collections.Counter((p["handle"], p["text"]) for p in posted)
    with engine.connect() as conn:
        status = dict(conn.execute(text("select status, count(*) from tweets group by 1")).all())
        stored = {
            r[0] for r in conn.execute(text("select x_id from tweets where x_id is not null"))
        }
        horizons = dict(
            conn.execute(text("select horizon, count(*) from tweet_metrics group by 1")).all()
        )
    ids = {p["id"] for p in posted}
    return {
        "posts_on_sandbox": len(posted),
        "posts_on_sandbox_by_handle": dict(collections.Counter(p["handle"] for p in posted)),
        "store_rows_by_status": status,
        "duplicate_posts": sum(n - 1 for n in texts.values() if n > 1),
        "lost": {
            "on_sandbox_not_in_store": len(ids - stored),
            "posted_in_store_not_on_sandbox": len(stored - ids),
            "left_posting_or_unknown": int(status.get("posting", 0) + status.get("unknown", 0)),
        },
        "snapshots_by_horizon": horizons,
    }


def collect(dep: Any, sim_end: datetime | None = None) -> dict[str, Any]:
    """Posts (sandbox journal vs store), runs, snapshots, learning assets; with ``sim_end``
    (the simulated end of the window) each account's slots that came due in the window, posted
    or not."""
    from sqlalchemy import create_engine, text

    engine = create_engine(
        dep.env()["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    )
    posts = sandbox_vs_store(dep.folder / "sandbox.jsonl", engine)
    with engine.connect() as conn:
        accounts: int = conn.execute(text("select count(*) from accounts")).scalar_one()
        refilled: int = conn.execute(
            text("select count(distinct account_id) from tweets")
        ).scalar_one()
        posted_rows = conn.execute(
            text("select posted_at, scheduled_at from tweets where status = 'posted' "
                 "and posted_at is not null and thread_position = 0 order by scheduled_at")
        ).all()  # fmt: skip
        late = [(r[0] - r[1]).total_seconds() / 60 for r in posted_rows]
        slots = conn.execute(
            text("select a.handle, t.status, count(*) from tweets t join accounts a "
                 "on a.id = t.account_id where t.thread_position = 0 "
                 "and t.scheduled_at <= :end group by 1, 2"),
            {"end": sim_end or datetime.now(UTC)},
        ).all()  # fmt: skip
        posts_by_account: dict[str, int] = dict(
            conn.execute(
                text("select a.handle, count(*) from tweets t join accounts a "
                     "on a.id = t.account_id where t.status = 'posted' group by 1")
            ).all()
        )  # fmt: skip
    engine.dispose()
    runs = dep.graphql("{ runsOrError { ... on Runs { results { runId jobName status } } } }")[
        "runsOrError"
    ]["results"]
    by_job: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.Counter())
    for run in runs:
        by_job[run["jobName"]][run["status"]] += 1
    failed = [_failure(dep, r) for r in runs if r["status"] == "FAILURE"]
    extraction = _metrics_load_runs(dep)
    materialised = dep.graphql(
        """{ assetNodes { assetKey { path }
             assetMaterializations(limit: 1) { timestamp runId } } }"""
    )["assetNodes"]
    learning = {
        "/".join(n["assetKey"]["path"]): bool(n["assetMaterializations"])
        for n in materialised
        if n["assetKey"]["path"][-1] in LEARNING_ASSETS
    }
    learning_runs = sorted({
        m["runId"] for n in materialised if n["assetKey"]["path"][-1] in LEARNING_ASSETS
        for m in n["assetMaterializations"]
    })  # fmt: skip
    launched_by = {}
    for run_id in learning_runs:
        tags = dep.graphql(
            """query($id: ID!) { runOrError(runId: $id) { ... on Run { jobName
                 tags { key value } } } }""",
            {"id": run_id},
        )["runOrError"]
        found = {t["key"]: t["value"] for t in tags.get("tags", [])}
        launched_by[run_id] = {
            "job": tags.get("jobName"),
            "sensor": found.get("dagster/sensor_name"),
            "automation": bool(found.get("dagster/from_automation_condition")
                               or found.get("dagster/sensor_name")
                               == "default_automation_condition_sensor"),
        }  # fmt: skip
    by_account: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for handle, status_, n in slots:
        by_account[str(handle)][str(status_)] = int(str(n))
    due_slots = sum(sum(v.values()) for v in by_account.values())
    posted_slots = sum(v.get("posted", 0) for v in by_account.values())
    horizons = posts.pop("snapshots_by_horizon")
    return {
        "accounts_in_store": accounts,
        "accounts_refilled": refilled,
        **posts,
        "posts_by_account": posts_by_account,
        "accounts_that_posted": len(posts_by_account),
        "minutes_late_simulated": _quantiles(late),
        "minutes_late_simulated_in_slot_order": [round(x, 1) for x in late],
        "runs_by_job_and_status": {k: dict(v) for k, v in sorted(by_job.items())},
        "failed_runs": failed,
        "tweet_metrics_runs": extraction,
        "runs_unfinished": sum(1 for r in runs if r["status"] in UNFINISHED),
        "runs_in_flight_at_stop": sum(1 for r in runs if r["status"] in IN_FLIGHT),
        "snapshots_by_horizon": horizons,
        "learning_assets_materialised": learning,
        "learning_runs": launched_by,
        "slots_due_in_window": due_slots,
        "slots_due_in_window_posted": posted_slots,
        "slots_due_in_window_by_account_and_status": dict(sorted(by_account.items())),
        "accounts_that_posted_every_due_slot": sum(
            1 for v in by_account.values() if set(v) == {"posted"}
        ),
    }


def _failure(dep: Any, run: dict[str, Any]) -> dict[str, Any]:
    """A failed run's job and the messages of its failure events (why it failed, from its event
    log in the deployment's Dagster storage, which is dropped when the rehearsal ends)."""
    data = dep.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection {
             events { __typename ... on MessageEvent { message }
               ... on ExecutionStepFailureEvent { error { message } }
               ... on RunFailureEvent { error { message } } } } } }""",
        {"id": run["runId"]},
    )
    messages = []
    for event in data["logsForRun"].get("events") or []:
        kind = event["__typename"]
        if kind in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent") or (
            "fail" in (event.get("message") or "").lower()
        ):
            error = (event.get("error") or {}).get("message") or ""
            messages.append(f"{kind}: {event.get('message') or ''} {error}".strip()[:1500])
    return {"run_id": run["runId"], "job": run["jobName"], "messages": messages[-8:]}


def _metrics_load_runs(dep: Any) -> list[dict[str, Any]]:
    """Every run that materialised ``tweet_metrics``: its worker's pid (to find its CPU), how many
    (day, account) partitions it loaded, and who launched it."""
    runs = dep.graphql(
        """{ runsOrError { ... on Runs { results { runId jobName status
             assetSelection { path } tags { key value } } } } }"""
    )["runsOrError"]["results"]
    out = []
    for run in runs:
        selected = [a["path"] for a in run.get("assetSelection") or []]
        if ["tweet_metrics"] not in selected and run["jobName"] != "tweet_metrics_job":
            continue
        events = (
            dep.graphql(
                """query($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection {
                 events { __typename } } } }""",
                {"id": run["runId"]},
            )["logsForRun"].get("events")
            or []
        )
        tags = {t["key"]: t["value"] for t in run["tags"]}
        out.append({
            "run_id": run["runId"], "job": run["jobName"], "status": run["status"],
            "pid": _worker_pid(dep, run["runId"])[0],
            "partitions": sum(1 for e in events if e["__typename"] == "MaterializationEvent"),
            "by": tags.get("dagster/sensor_name") or ("backfill" if tags.get("dagster/backfill")
                                                       else "automation"),
        })  # fmt: skip
    return out


def _quantiles(values: list[float]) -> dict[str, float] | None:
    """Median, 90th percentile and maximum (simulated minutes a post went out after its slot)."""
    if not values:
        return None
    ordered = sorted(values)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

    return {"median": q(0.5), "p90": q(0.9), "max": round(ordered[-1], 1)}


def rehearse(
    minutes: float, speed: float, daemon_kills: int, kill_worker: bool, accounts: int,
    folder: Path, guarded_retry: bool = True, pg_port: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One rehearsal; returns the figures (see the module docstring). ``pg_port``: the Postgres
    server of the store and Dagster's storage (default the machine's)."""
    become_subreaper()
    load_before = os.getloadavg()
    started_at = _now()
    events: list[dict[str, Any]] = []
    dep = deploy_local.LocalDeployment(
        folder=folder,
        speed=speed,
        accounts=accounts,
        with_rebuild_sensor=True,
        guarded_retry=guarded_retry,
        pg_port=pg_port or deploy_local.PG_PORT,
    )
    peak_connections = PeakConnections(dep.pg_port, dep.name)
    try:
        t0 = time.monotonic()
        dep.prepare()
        dep.start_all()
        setup_s = time.monotonic() - t0
        sampler = CpuSampler(dep)
        cpu_start = children_cpu() + sampler.tree_cpu()
        sampler.start()
        t1 = time.monotonic()
        end = t1 + minutes * 60
        kill_at = [t1 + (i + 1) * minutes * 60 / (daemon_kills + 1) for i in range(daemon_kills)]
        worker_done = not kill_worker
        worker_kill_from = t1 + minutes * 60 * 0.3  # once posts flow, between the daemon kills
        loads: list[list[float]] = []
        next_load = t1
        while time.monotonic() < end:
            if time.monotonic() >= next_load:
                loads.append([round(x, 2) for x in os.getloadavg()])
                next_load += 30
            peak_connections.sample()
            if kill_at and time.monotonic() >= kill_at[0]:
                kill_at.pop(0)
                dep.kill_daemon()
                events.append({"event": "daemon SIGKILL", "at": _now()})
                time.sleep(3)
                dep.start_daemon()
                events.append({"event": "daemon restarted", "at": _now()})
            if not worker_done and time.monotonic() >= worker_kill_from:
                killed = kill_a_post_run_worker(dep, min(end, time.monotonic() + 20))
                if killed:
                    events.append({"event": "posting run worker SIGKILL mid-post", **killed})
                    worker_done = True
            time.sleep(2)
        window_s = time.monotonic() - t1
        sim_end = dep.epoch + (datetime.now(UTC) - dep.epoch) * speed if dep.epoch else None
        # stop launching (every sensor and schedule, the automation's too), let the queued runs
        # launch and every run finish, then stop the daemon
        stop_launching(dep)
        drain_deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_deadline and _unfinished(dep):
            time.sleep(5)
        # SIGTERM to the daemon alone: its code server lives on until its runs have finished
        # (a SIGTERM to the daemon's process group would interrupt them mid-post)
        os.kill(dep.procs["daemon"].pid, signal.SIGTERM)
        try:
            dep.procs["daemon"].wait(timeout=180)
        except subprocess.TimeoutExpired:  # at load 25 it outlasted 60 s and lost the results
            os.kill(dep.procs["daemon"].pid, signal.SIGKILL)
            dep.procs["daemon"].wait(timeout=60)
        settle_deadline = time.monotonic() + 240
        while time.monotonic() < settle_deadline and _in_flight(dep):
            time.sleep(5)
        sampler.sample()
        sampler.stop_event.set()
        result = collect(dep, sim_end)
        result["logs"] = str(dep.folder / "logs")
    finally:
        dep.close()
        for _ in range(5):
            reap_orphans({p.pid for p in dep.procs.values()})
            time.sleep(0.5)
    sim_days = window_s * speed / 86400
    cpu_total = children_cpu() - cpu_start
    posts = result["posts_on_sandbox"]
    by_kind = sampler.by_kind()
    # The long-lived processes cost CPU per wall second, the runs per simulated day: at speed K
    # a window holds K times the runs of a wall-clock window, so the two scale apart.
    service_s = sum(v for k, v in by_kind.items() if k in SERVICES)
    services_per_wall_s = service_s / window_s
    # the sandbox stands in for X: its CPU is not the deployment's
    runs_s = max(0.0, cpu_total - service_s - by_kind.get("sandbox serve", 0.0))
    workers = sorted(
        sampler.cpu[pid] for pid, kind in sampler.kind.items() if kind == "run workers"
    )
    for run in result["tweet_metrics_runs"]:  # a lower bound: sampled once a second
        run["cpu_seconds_lower_bound"] = round(sampler.cpu.get(run["pid"] or -1, 0.0), 2)
    wall_clock_per_account_day = (
        services_per_wall_s * 86400 + runs_s / max(sim_days, 1e-9)
    ) / accounts
    return {
        "started_at": started_at,
        "minutes": round(window_s / 60, 2),
        "speed": speed,
        "simulated_days": round(sim_days, 3),
        "accounts": accounts,
        "setup_seconds": round(setup_s, 1),
        "guarded_retry": guarded_retry,
        "events": events,
        **result,
        "cpu_seconds_total": round(cpu_total, 1),
        "cpu_seconds_by_process_lower_bound": by_kind,
        "cpu_seconds_runs": round(runs_s, 1),
        "cpu_seconds_per_run_worker_lower_bound": {
            "n": len(workers),
            "min": round(workers[0], 2) if workers else None,
            "median": round(workers[len(workers) // 2], 2) if workers else None,
            "max": round(workers[-1], 2) if workers else None,
        },
        "cpu_seconds_of_services_per_wall_second": round(services_per_wall_s, 4),
        "cpu_seconds_per_account_day_at_wall_clock": round(wall_clock_per_account_day, 1),
        "cpu_seconds_per_post": round(cpu_total / posts, 2) if posts else None,
        "cpu_seconds_per_account_day": round(cpu_total / max(sim_days, 1e-9) / accounts, 1),
        "cpu_share_of_2_cores": round(cpu_total / (window_s * 2), 3),
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
        "load_average_every_30_s": loads,
        "nice": os.nice(0),
        "postgres": {"own_server": pg_port is not None, **peak_connections.figures()},
    }


class PeakConnections:
    """The most connections the deployment's two databases held at once (``pg_stat_activity``,
    sampled every 2 s): what its connection budget must cover (docs/deployment.md)."""

    def __init__(self, port: int, name: str) -> None:
        self.port, self.name = port, name
        self.peak = 0
        self.max_connections: int | None = None

    def sample(self) -> None:
        import psycopg

        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(deploy_local.pg_admin_url(self.port), autocommit=True) as conn:
                row = conn.execute(
                    "select count(*), current_setting('max_connections')::int "
                    "from pg_stat_activity where datname like %s",
                    (f"{self.name}%",),
                ).fetchone()
            if row:
                self.peak = max(self.peak, int(row[0]))
                self.max_connections = int(row[1])

    def figures(self) -> dict[str, Any]:
        return {"peak_connections": self.peak, "max_connections": self.max_connections}


IN_FLIGHT = {"STARTING", "STARTED", "CANCELING"}
SERVICES = {"dagster-daemon", "dagster-webserver", "code servers", "health serve"}
"""Long-lived processes of the deployment (the sandbox stands in for X and is left out)."""


DRAIN_S = 420
"""After the window: how long the queued runs get to launch and finish (sensors stopped)."""


def stop_launching(dep: Any) -> None:
    """Stop every running sensor and schedule, declarative automation's sensor too: no new run
    is requested after the window; the queued ones still launch and finish."""
    data = dep.graphql(
        """{ repositoriesOrError { ... on RepositoryConnection { nodes {
             sensors { id sensorState { status } }
             schedules { id scheduleState { status } } } } } }"""
    )
    for repo in data["repositoriesOrError"]["nodes"]:
        for sensor in repo["sensors"]:
            if sensor["sensorState"]["status"] == "RUNNING":
                dep.graphql("mutation($id: String) { stopSensor(id: $id) { __typename } }",
                            {"id": sensor["id"]})  # fmt: skip
        for schedule in repo["schedules"]:
            if schedule["scheduleState"]["status"] == "RUNNING":
                dep.graphql("mutation($id: String) { stopRunningSchedule(id: $id) { __typename } }",
                            {"id": schedule["id"]})  # fmt: skip


def _unfinished(dep: Any) -> int:
    """Runs not finished yet, queued ones included."""
    runs = dep.graphql("{ runsOrError { ... on Runs { results { status } } } }")
    return sum(1 for r in runs["runsOrError"]["results"] if r["status"] in UNFINISHED)


def _in_flight(dep: Any) -> int:
    """Runs a worker is (or should be) executing; queued ones wait for the next daemon."""
    runs = dep.graphql("{ runsOrError { ... on Runs { results { status } } } }")
    return sum(1 for r in runs["runsOrError"]["results"] if r["status"] in IN_FLIGHT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--speed", type=float, default=144, help="144: a day in 10 minutes")
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--daemon-kills", type=int, default=2)
    parser.add_argument("--no-worker-kill", action="store_true")
    parser.add_argument("--no-guarded-retry", action="store_true",
                        help="leave posting.guarded_retry off: the killed worker's post, if X "
                        "never got it, stays `unknown` for a person")  # fmt: skip
    parser.add_argument("--folder", type=Path, default=None,
                        help="state and logs (default: a temporary folder, removed)")  # fmt: skip
    parser.add_argument("--own-postgres", type=int, default=None, metavar="MAX_CONNECTIONS",
                        help="run the store and Dagster's storage on a throwaway Postgres server "
                        "of its own (initdb + pg_ctl on a free port) with this max_connections, "
                        "so a big rehearsal never takes the machine's connections")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--merge", type=Path, nargs="*", default=None,
                        help="no rehearsal: add these result files' runs to --out and recompute "
                        "the cost table")  # fmt: skip
    args = parser.parse_args()

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through rehearse()'s cleanup (processes, databases)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # a background job starts with SIGINT ignored
    if args.merge is not None:
        recorded = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
        for path in args.merge:
            recorded["runs"].update(json.loads(path.read_text())["runs"])
        recorded["run_startup_cpu_seconds"] = measure_run_startup()
        recorded["cost_by_accounts"] = cost_table(
            recorded["runs"], recorded["run_startup_cpu_seconds"]
        )
        args.out.write_text(json.dumps(recorded, indent=2) + "\n")
        print(json.dumps(recorded["cost_by_accounts"], indent=2))
        return
    with contextlib.ExitStack() as stack:
        folder = args.folder or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        pg_port = None
        if args.own_postgres is not None:
            from benchmarks.hotpath_harness import ThrowawayPostgres

            pg_port = stack.enter_context(ThrowawayPostgres(args.own_postgres)).port
        result = rehearse(args.minutes, args.speed, args.daemon_kills, not args.no_worker_kill,
                          args.accounts, folder, not args.no_guarded_retry, pg_port)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "runs" not in recorded:  # the old single-run layout
        recorded = {"runs": {}}
    faults = "with faults" if args.daemon_kills or not args.no_worker_kill else "no faults"
    recorded["runs"][f"{args.accounts} accounts, {faults}"] = result
    recorded["run_startup_cpu_seconds"] = measure_run_startup()
    recorded["cost_by_accounts"] = cost_table(recorded["runs"], recorded["run_startup_cpu_seconds"])
    args.out.write_text(json.dumps(recorded, indent=2) + "\n")
    print(json.dumps(result, indent=2))


POSTS_PER_ACCOUNT_DAY = 12
BUDGET_CPU_S_PER_DAY = 0.5 * 2 * 86400
"""Half of a 2-core machine's CPU seconds in a day."""
IDLE_LEAD_S = 50
"""posting_batch_sensor's lead on an idle machine (20 s start-up allowance + a 30 s tick): a
batch run holds two leads of posts, so on the wall clock at most 86400 / 100 posting runs a
day start, however many accounts post."""
EXTRACTION_TICKS_PER_DAY = 48
"""The 30-minute extraction cron (``EXTRACT_EVERY``), on the wall clock."""
FIXED_RUNS_PER_DAY = 288 + 24 + 3 * EXTRACTION_TICKS_PER_DAY
"""Runs a deployment starts whatever its accounts, on the wall clock: sync_to_supabase every 5
minutes (with Redis), at most one batch refill an hour, and at each 30-minute extraction cron
tick one run of the unpartitioned raw assets, ONE run of ``tweet_metrics`` for the latest day
of every account (its single-run backfill policy; before, one run per account) and one of the
eager rebuild that follows."""


def _metrics_cpu_per_partition(runs: dict[str, dict[str, Any]], startup_s: float) -> float | None:
    """CPU seconds one (day, account) partition adds to a tweet_metrics run: the largest
    measured run of at least 10 partitions, its worker's CPU less a start-up, per partition."""
    loads = [
        r for run in runs.values() for r in run.get("tweet_metrics_runs", [])
        if r["partitions"] >= 10 and r.get("cpu_seconds_lower_bound")
    ]  # fmt: skip
    if not loads:
        return None
    big = max(loads, key=lambda r: r["partitions"])
    return round(max(0.0, big["cpu_seconds_lower_bound"] - startup_s) / big["partitions"], 4)


def measure_run_startup() -> float:
    """CPU seconds a run's process spends before any work: Python, Dagster and the code location
    imported (with bytecode, as deploy-local compiles it), measured in a child process."""
    import subprocess

    before = children_cpu()
    subprocess.run(
        [sys.executable, "-c", "from xbot_assets.definitions import defs\n"
         "d = defs(); d.get_job_def('post_batch_job')"],
        cwd=ROOT, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return round(children_cpu() - before, 2)


def cost_table(runs: dict[str, dict[str, Any]], startup_s: float | None) -> dict[str, Any]:
    """Measured cost at each number of accounts, and a model of one wall-clock day.

    Measured (each rehearsal, at its speed): CPU per post, per account-day (all CPU of the
    window over accounts x simulated days), the services' CPU per wall second, the runs' CPU
    per account-day. Model of a wall-clock day at N accounts posting 12 a day: the services
    (per wall second, as measured at the largest N, whose sensors tick up to 20x more often than
    at speed 1: an upper bound) and the fixed runs; run start-ups (``startup_s`` each: batch
    posting runs, at most one per post and at most 864 a day); the extraction cron's 48 ticks,
    each one tweet_metrics run for every account (its start-up in the fixed runs, each account's
    partition at the CPU measured per partition); and the per-account work measured at the
    largest N (the runs' CPU less their start-ups). The accounts a 2-core machine serves
    within 50 % CPU follow."""
    rows = []
    for name, run in sorted(runs.items(), key=lambda kv: kv[1]["accounts"]):
        finished = sum(
            n for job in run["runs_by_job_and_status"].values()
            for status, n in job.items() if status in ("SUCCESS", "FAILURE")
        )  # fmt: skip
        days = max(run["simulated_days"], 1e-9)
        # accounts that got their queue in the window (a refill of 100 accounts at 144x
        # outlasts a 6-minute window on this machine): the per-account figures divide by them
        active = run.get("accounts_refilled") or run["accounts"]
        rows.append({
            "run": name,
            "accounts": run["accounts"],
            "accounts_refilled": active,
            "speed": run["speed"],
            "posts": run["posts_on_sandbox"],
            "runs_finished": finished,
            "cpu_seconds_total": run["cpu_seconds_total"],
            "cpu_seconds_per_post": run["cpu_seconds_per_post"],
            "cpu_seconds_per_account_day": round(run["cpu_seconds_total"] / days / active, 1),
            "runs_cpu_seconds_per_account_day": round(run["cpu_seconds_runs"] / days / active, 1),
            "services_cpu_seconds_per_wall_second": run["cpu_seconds_of_services_per_wall_second"],
            "work_cpu_seconds_per_account_day": round(
                max(0.0, run["cpu_seconds_runs"] - finished * (startup_s or 0.0))
                / days / active, 1),
        })  # fmt: skip
    out: dict[str, Any] = {"measured": rows, "run_startup_cpu_seconds": startup_s}
    if not rows or startup_s is None:
        return out
    # the per-account work from the run that did the most of a day's posting (a run whose
    # refill outlasted its window did too little per account to stand for an account-day)
    big = max(rows, key=lambda r: r["posts"])
    per_partition = _metrics_cpu_per_partition(runs, startup_s)
    services_day = max(r["services_cpu_seconds_per_wall_second"] for r in rows) * 86400
    fixed_day = FIXED_RUNS_PER_DAY * startup_s
    work = big["work_cpu_seconds_per_account_day"]
    max_posting_runs = 86400 / (2 * IDLE_LEAD_S)

    extraction = EXTRACTION_TICKS_PER_DAY * (per_partition or 0.0)

    def day(n: int) -> float:
        posting_runs = min(POSTS_PER_ACCOUNT_DAY * n, max_posting_runs)
        return services_day + fixed_day + startup_s * posting_runs + (work + extraction) * n

    def capacity() -> int:
        n = 0
        while day(n + 1) <= BUDGET_CPU_S_PER_DAY and n < 100_000:
            n += 1
        return n

    out["model_wall_clock_day"] = {
        "work_from_run": big["run"],
        "services_cpu_seconds_per_day": round(services_day),
        "fixed_runs_cpu_seconds_per_day": round(fixed_day),
        "work_cpu_seconds_per_account_day": work,
        "extraction_cpu_seconds_per_partition": per_partition,
        "extraction_cpu_seconds_per_account_day": round(extraction, 2),
        "cpu_seconds_per_day_at": {str(n): round(day(n)) for n in (1, 20, 100, 500)},
        "cpu_seconds_per_account_day_at": {
            str(n): round(day(n) / n, 1) for n in (1, 20, 100, 500)
        },
        "accounts_per_2_core_machine_at_50pct": capacity(),
    }  # fmt: skip
    return out


if __name__ == "__main__":
    main()
