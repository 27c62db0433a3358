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
* CPU seconds of every process of the deployment (sampled each second from /proc, the maximum
  of utime+stime per pid, so runs shorter than a second are missed: a lower bound), per post and
  per account-day.

Writes benchmarks/results/deployment.json. Run it niced; it records the load average.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/deployment.json"
TICKS = os.sysconf("SC_CLK_TCK")
UNFINISHED = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_local", ROOT / "scripts/deploy_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_local"] = module
    spec.loader.exec_module(module)
    return module


class CpuSampler(threading.Thread):
    """Samples utime+stime of every process of the deployment once a second."""

    def __init__(self, dep: Any) -> None:
        super().__init__(daemon=True)
        self.dep = dep
        self.cpu: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.stop_event = threading.Event()

    def sample(self) -> None:
        for pid in self.dep.leftover_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / TICKS
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)
            self.kind.setdefault(pid, _kind(cmd))

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            self.sample()

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = collections.defaultdict(float)
        for pid, seconds in self.cpu.items():
            out[self.kind[pid]] += seconds
        return {k: round(v, 1) for k, v in sorted(out.items())}


def _kind(cmd: str) -> str:
    if "execute_run" in cmd or "execute_step" in cmd:
        return "run workers"
    if "api grpc" in cmd:
        return "code servers"
    for name in ("dagster-daemon", "dagster-webserver", "sandbox serve", "health serve", "dbt"):
        if name in cmd:
            return name
    return "other"


def kill_a_post_run_worker(dep: Any, deadline: float) -> dict[str, Any] | None:
    """SIGKILL the worker of the first `post_job` run seen in progress; None if none came."""
    while time.monotonic() < deadline:
        data = dep.graphql(
            """{ runsOrError(filter: {statuses: [STARTED]}) { ... on Runs { results {
                 runId jobName } } } }"""
        )
        for run in data["runsOrError"]["results"]:
            if run["jobName"] != "post_job":
                continue
            for pid in dep.leftover_pids():
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if run["runId"].encode() in cmd:
                    os.kill(pid, signal.SIGKILL)
                    return {"run_id": run["runId"], "pid": pid, "at": _now()}
        time.sleep(1)
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def collect(dep: Any) -> dict[str, Any]:
    """Posts (sandbox journal vs store), runs, snapshots, learning assets."""
    from sqlalchemy import create_engine, text

    journal = dep.folder / "sandbox.jsonl"
    sandbox_posts = []
    for line in journal.read_text().splitlines() if journal.exists() else []:
        entry = json.loads(line)
        if entry.get("op") == "post":
            sandbox_posts.append(entry)
    texts = collections.Counter((p["handle"], p["text"]) for p in sandbox_posts)
    engine = create_engine(
        dep.env()["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    )
    with engine.connect() as conn:
        status = dict(conn.execute(text("select status, count(*) from tweets group by 1")).all())
        stored_ids = {
            r[0] for r in conn.execute(text("select x_id from tweets where x_id is not null"))
        }
        horizons = dict(
            conn.execute(text("select horizon, count(*) from tweet_metrics group by 1")).all()
        )
        accounts = conn.execute(text("select count(*) from accounts")).scalar_one()
    engine.dispose()
    sandbox_ids = {p["id"] for p in sandbox_posts}
    runs = dep.graphql("{ runsOrError { ... on Runs { results { runId jobName status } } } }")[
        "runsOrError"
    ]["results"]
    by_job: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.Counter())
    for run in runs:
        by_job[run["jobName"]][run["status"]] += 1
    materialised = dep.graphql(
        """{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { timestamp } } }"""
    )["assetNodes"]
    learning = {
        "/".join(n["assetKey"]["path"]): bool(n["assetMaterializations"])
        for n in materialised
        if n["assetKey"]["path"][-1] in ("engagement_scorer", "arm_posteriors", "fct_post_outcomes")
    }
    return {
        "accounts_in_store": accounts,
        "posts_on_sandbox": len(sandbox_posts),
        "store_rows_by_status": status,
        "duplicate_posts": sum(n - 1 for n in texts.values() if n > 1),
        "lost": {
            "on_sandbox_not_in_store": len(sandbox_ids - stored_ids),
            "posted_in_store_not_on_sandbox": len(stored_ids - sandbox_ids),
            "left_posting_or_unknown": int(status.get("posting", 0) + status.get("unknown", 0)),
        },
        "runs_by_job_and_status": {k: dict(v) for k, v in sorted(by_job.items())},
        "runs_unfinished": sum(1 for r in runs if r["status"] in UNFINISHED),
        "snapshots_by_horizon": horizons,
        "learning_assets_materialised": learning,
    }


def rehearse(minutes: float, speed: float, daemon_kills: int, kill_worker: bool) -> dict[str, Any]:
    script = _script()
    load_before = os.getloadavg()
    started_at = _now()
    events: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xbot-rehearsal-") as folder:
        dep = script.LocalDeployment(folder=Path(folder), speed=speed)
        try:
            t0 = time.monotonic()
            dep.prepare()
            dep.start_all()
            setup_s = time.monotonic() - t0
            sampler = CpuSampler(dep)
            sampler.start()
            t1 = time.monotonic()
            end = t1 + minutes * 60
            kill_at = [
                t1 + (i + 1) * minutes * 60 / (daemon_kills + 1) for i in range(daemon_kills)
            ]
            worker_done = not kill_worker
            while time.monotonic() < end:
                if kill_at and time.monotonic() >= kill_at[0]:
                    kill_at.pop(0)
                    dep.stop("daemon", signal.SIGKILL, grace=10)
                    events.append({"event": "daemon SIGKILL", "at": _now()})
                    time.sleep(3)
                    dep.start_daemon()
                    events.append({"event": "daemon restarted", "at": _now()})
                if not worker_done:
                    killed = kill_a_post_run_worker(dep, min(end, time.monotonic() + 20))
                    if killed:
                        events.append({"event": "post_job run worker SIGKILL", **killed})
                        worker_done = True
                time.sleep(2)
            # let the runs in flight finish and the monitor settle the killed one
            time.sleep(30)
            sampler.sample()
            sampler.stop_event.set()
            result = collect(dep)
        finally:
            dep.close()
    sim_days = minutes * 60 * speed / 86400
    cpu_total = sum(sampler.cpu.values())
    posts = result["posts_on_sandbox"]
    return {
        "started_at": started_at,
        "minutes": minutes,
        "speed": speed,
        "simulated_days": round(sim_days, 3),
        "accounts": 1,
        "setup_seconds": round(setup_s, 1),
        "events": events,
        **result,
        "cpu_seconds_total": round(cpu_total, 1),
        "cpu_seconds_by_process": sampler.by_kind(),
        "cpu_seconds_per_post": round(cpu_total / posts, 2) if posts else None,
        "cpu_seconds_per_account_day": round(cpu_total / max(sim_days, 1e-9), 1),
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--speed", type=float, default=144, help="144: a day in 10 minutes")
    parser.add_argument("--daemon-kills", type=int, default=2)
    parser.add_argument("--no-worker-kill", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = rehearse(args.minutes, args.speed, args.daemon_kills, not args.no_worker_kill)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
