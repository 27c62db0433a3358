"""Start the whole xbot deployment on this machine, turn its automation on, stop it all on exit.

`make deploy-local` (or `python scripts/deploy_local.py --help`) starts, each in a process group
of its own and bound to 127.0.0.1 on free ports (or the ports given):

* two Postgres databases of its own on the running server (`--pg-port`, default 5432): the
  durable store (migrated with `xbot migrate`) and Dagster's run, event and schedule storage
  (`deploy/dagster.yaml`, its port set to that server's), after checking that the deployment's
  connection budget fits the server's max_connections (xbot_assets/ops/connection_budget.py);
* the running Redis, under a key prefix of its own;
* `xbot sandbox serve` (the X API over HTTP), posted to by the `api` poster;
* `dagster-daemon run` and `dagster-webserver` over that instance;
* `xbot health serve`.

It then starts the sensors and schedules through the webserver's GraphQL API (all but the main
job's stand-in `learning_rebuild_sensor`, unless `--with-rebuild-sensor`; with a workspace that
also loads the Celery location, :func:`automation_plan` says which location runs what), and runs
until Ctrl-C,
SIGTERM or `--duration` seconds. On exit it stops every process it started (SIGTERM to each
group, SIGKILL after a grace period), drops its databases and deletes its Redis keys, unless
`--keep`. `--speed K` runs every process on the rehearsal clock (CLOCK_SPEED=K from now).

`--celery N` (:class:`CeleryLocalDeployment`) runs the same deployment over
`workspace.celery.yaml` with N Celery workers (`dagster-celery worker start`, logs in
`logs/worker_<i>.log`) on the Redis DB `--broker-db` (default 9, not `--redis-db`'s) as broker
and result backend, every key of theirs under the deployment's own prefix
(`--celery-key-prefix`, default `<name>:celery:`, so deployments and test suites sharing a
broker DB never take each other's steps): the Celery location's account jobs run each step on a
worker. The automation follows :func:`automation_plan` for both locations; the workers stop with
the rest and the deployment's broker keys are deleted. Bad input (a negative N, the broker on
the store's Redis DB, a malformed key prefix, dagster-celery not installed) exits 2 before
anything starts.

The class :class:`LocalDeployment` is what the rehearsal benchmark drives;
:class:`CeleryLocalDeployment` is what the Celery rehearsal (``benchmarks/celery_rehearsal.py``)
builds on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: its folder, not the repository's root, is on it
    sys.path.insert(0, str(ROOT))

from scripts import processes  # noqa: E402

BIN = Path(sys.executable).parent
PG_PORT = 5432
"""The machine's Postgres; a rehearsal may bring a throwaway server of its own (``pg_port``)."""
SANDBOX_HANDLE = "xbot_sandbox"
SANDBOX_BEARER = "sandbox-app-bearer-token"  # the sandbox's public test value, not a secret
REBUILD_SENSOR = "learning_rebuild_sensor"
OFF_BY_DEFAULT = {
    REBUILD_SENSOR,
    "posting_sensor",
    "candidate_refill_sensor",
    "collect_account_metrics_schedule",
}
"""Sensors deploy-local leaves off: the main job's stand-in for the rebuild automation
(``--with-rebuild-sensor`` starts it), and the per-account posting and refill sensors, which the
batch sensors (``posting_batch_sensor``, ``refill_batch_sensor``) replace on a deployment: one
run for every account's due work instead of one process per account and post
(docs/deployment.md, "What a run costs"); and the per-account 6-hourly metrics schedule, whose
work the batch posting runs do (each collects the due snapshots and follower counts of every
account it serves, and a collect-only batch run comes when snapshots are due without a post):
at 100 accounts its 06:00 tick queued 100 runs."""
DEFAULT_AUDIENCE_JITTER = 0.4
WEBSERVER_DB_POOL_MAX_OVERFLOW = 2
"""dagster-webserver's ``--db-pool-max-overflow`` (Dagster's default 20 lets the webserver alone
hold 3 x 21 + 1 connections); part of the connection budget (docs/deployment.md)."""
ON_UNDER_CELERY = {"collect_account_metrics_schedule"}
"""Off by default but on when the Celery location runs the accounts: without batch posting runs
nothing else collects the snapshots of an account that has not posted lately."""
# the dbt project's seeds (asset keys are their bare names, `defs/dbt.py`)
DBT_SEEDS = sorted(path.stem for path in (ROOT / "dbt" / "seeds").glob("*.csv"))
"""Per-account audience jitter of the extra accounts (log-scale sd of their topic and format
effects around the scenario's): each learns on an audience of its own. X_HANDLE keeps the
scenario's audience exactly."""


@dataclass(frozen=True)
class Repository:
    """A loaded code location's repository: its GraphQL selector and its instigators."""

    location: str
    name: str
    sensors: tuple[str, ...]
    schedules: tuple[str, ...]

    @property
    def selector(self) -> dict[str, str]:
        return {"repositoryName": self.name, "repositoryLocationName": self.location}


def automation_plan(
    repositories: list[Repository], off: set[str] | frozenset[str] = frozenset(OFF_BY_DEFAULT)
) -> list[tuple[Repository, str, str]]:
    """The instigators to start: ``(repository, "sensor" | "schedule", name)``.

    One location (``workspace.yaml``): every sensor and schedule but ``off``. With the Celery
    location loaded too (``workspace.celery.yaml``): every sensor of the Celery location (the
    account sensors and its run-status sensors); in the main location all but ``off``, the
    account sensors the Celery location runs in its place and their batch twins
    (``celery_definitions.OFF_IN_MAIN_LOCATION``), and the metrics schedule on
    (:data:`ON_UNDER_CELERY`)."""
    from xbot_assets.celery_definitions import LOCATION_NAME, OFF_IN_MAIN_LOCATION

    celery = any(r.location == LOCATION_NAME for r in repositories)
    plan: list[tuple[Repository, str, str]] = []
    for repo in repositories:
        if repo.location == LOCATION_NAME:
            skip: set[str] = set()
        elif celery:
            skip = (set(off) - ON_UNDER_CELERY) | OFF_IN_MAIN_LOCATION
        else:
            skip = set(off)
        plan += [(repo, "sensor", n) for n in repo.sensors if n not in skip]
        plan += [(repo, "schedule", n) for n in repo.schedules if n not in skip]
    return plan


def start_document(plan: list[tuple[Repository, str, str]]) -> tuple[str, dict[str, Any]]:
    """One GraphQL mutation that starts every instigator of ``plan`` (one workspace load when
    it goes through ``dagster-graphql``), and its variables."""
    declared, fields, variables = [], [], {}
    for i, (repo, kind, name) in enumerate(plan):
        var = f"i{i}"
        if kind == "sensor":
            declared.append(f"${var}: SensorSelector!")
            fields.append(f"{var}: startSensor(sensorSelector: ${var}) "
                          "{ __typename ... on PythonError { message } }")  # fmt: skip
            variables[var] = {**repo.selector, "sensorName": name}
        else:
            declared.append(f"${var}: ScheduleSelector!")
            fields.append(f"{var}: startSchedule(scheduleSelector: ${var}) "
                          "{ __typename ... on PythonError { message } }")  # fmt: skip
            variables[var] = {**repo.selector, "scheduleName": name}
    return f"mutation({', '.join(declared)}) {{ {' '.join(fields)} }}", variables


STARTED = {"Sensor", "ScheduleStateResult"}
"""What ``startSensor`` / ``startSchedule`` answer when the instigator is running."""


def workspace_locations(workspace: Path) -> list[str]:
    """The location names a workspace file loads (its module name when it names none)."""
    import yaml

    config = yaml.safe_load(workspace.read_text(encoding="utf-8")) or {}
    names = []
    for entry in config.get("load_from", []):
        module = entry.get("python_module")
        if isinstance(module, dict):
            names.append(str(module.get("location_name") or module["module_name"]))
        elif isinstance(module, str):
            names.append(module)
    return names


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compile_bytecode() -> None:
    """Compile the installed packages and the code location to bytecode, once.

    Every run is a process that imports the code location. Without ``.pyc`` files (uv installs
    none unless asked, and PYTHONDONTWRITEBYTECODE=1 stops Python writing them) each run compiles
    ~600 modules again: ~10 CPU seconds of a run's ~12. A deployment image must ship them
    (``uv sync --compile-bytecode``); here they are compiled in place (a no-op when current).
    """
    import sysconfig

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "1", sysconfig.get_paths()["purelib"],
         str(ROOT / "xbot_assets")],
        check=False, capture_output=True, timeout=1800,
    )  # fmt: skip


def pg_admin_url(port: int = PG_PORT) -> str:
    """The administration database of the Postgres server on 127.0.0.1:``port``."""
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _pg_execute(sql: str, port: int = PG_PORT) -> None:
    import psycopg

    with psycopg.connect(pg_admin_url(port), autocommit=True) as conn:
        conn.execute(sql)


def write_instance_config(path: Path, pg_port: int = PG_PORT) -> None:
    """Dagster's instance config (``deploy/dagster.yaml``) with its storage on ``pg_port``.

    The file names the port literally (production's is 5432); the copy is the same file with
    that one value changed, so a rehearsal's daemon, webserver and runs use the given server.
    """
    import yaml

    config = yaml.safe_load((ROOT / "deploy/dagster.yaml").read_text())
    config["storage"]["postgres"]["postgres_db"]["port"] = pg_port
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class LocalDeployment:
    """One deployment on this machine: its folder, databases, ports, environment, processes."""

    folder: Path
    speed: float | None = None
    redis_db: int = 0
    keep: bool = False
    with_rebuild_sensor: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"xbot_dl_{uuid.uuid4().hex[:8]}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    graphql_calls: int = 0
    epoch: datetime | None = None
    accounts: int = 1
    """How many sandbox accounts the deployment runs (X_HANDLE and ``accounts - 1`` more)."""
    audience_jitter: float = DEFAULT_AUDIENCE_JITTER
    """The extra accounts' audience jitter on the sandbox (0: all share the scenario's)."""
    pg_port: int = PG_PORT
    """The Postgres server for the store and Dagster's storage (a throwaway one in a big
    rehearsal, so it never takes the machine's shared connections)."""
    guarded_retry: bool = False
    """bot_config ``posting.guarded_retry``: a post not on the timeline after the grace period
    is re-queued once instead of left ``unknown`` for a person (off by default, as in prod)."""
    workspace: str = "workspace.yaml"
    """The daemon's and webserver's workspace, relative to the repository's root
    (``workspace.celery.yaml``: the main location and the Celery one)."""

    # --- set-up --------------------------------------------------------------------------------
    @property
    def store_db(self) -> str:
        return f"{self.name}_store"

    @property
    def dagster_db(self) -> str:
        return f"{self.name}_dagster"

    @property
    def redis_prefix(self) -> str:
        return f"{self.name}:"

    @property
    def handles(self) -> list[str]:
        """The deployment's accounts: X_HANDLE first, then ``acct_01``, ``acct_02``, ..."""
        return [SANDBOX_HANDLE] + [f"acct_{i:02d}" for i in range(1, self.accounts)]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self) -> dict[str, str]:
        """The environment every process of the deployment shares (no secret: sandbox values)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PG_", "CLOCK_"))}
        env.update(
            APP_ENV="local",
            XBOT_HOME=str(self.folder / "home"),
            DATABASE_URL=f"postgresql://postgres@127.0.0.1:{self.pg_port}/{self.store_db}",
            REDIS_URL=f"redis://127.0.0.1:6379/{self.redis_db}",
            REDIS_PREFIX=self.redis_prefix,
            POSTER="api",
            X_API_BASE_URL=self.url("sandbox"),
            X_WEB_BASE_URL=self.url("sandbox"),
            X_HANDLE=SANDBOX_HANDLE,
            X_OAUTH2_USER_TOKEN=f"sandbox-user-{SANDBOX_HANDLE}",
            X_BEARER_TOKEN=SANDBOX_BEARER,
            DAGSTER_HOME=str(self.folder / "dagster_home"),
            DAGSTER_PG_HOST="127.0.0.1",
            DAGSTER_PG_USER="postgres",
            DAGSTER_PG_PASSWORD="",
            DAGSTER_PG_DB=self.dagster_db,
            # a run's launch waits for its process to import the code location: minutes at load
            # 20 on 2 cores, past Dagster's 60 s default (dagster.yaml's run_queue retries too)
            DAGSTER_GRPC_TIMEOUT_SECONDS="300",
            DO_NOT_TRACK="1",
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            PYTHONUNBUFFERED="1",
        )
        env.setdefault("XBOT_DBT_WARM_DIR", str(self.folder / "dbt-warm"))
        if self.accounts > 1:  # the sandbox mints each account's user token from its handle
            tokens = {h: f"sandbox-user-{h}" for h in self.handles[1:]}
            env["X_ACCOUNT_TOKENS"] = json.dumps(tokens)
        if self.speed and self.epoch is not None:
            env.update(CLOCK_SPEED=f"{self.speed:g}", CLOCK_EPOCH=self.epoch.isoformat())
        return env

    def prepare(self) -> None:
        """Folders, ports, databases (store migrated), Dagster's instance config."""
        self.folder = self.folder / self.name
        for service in ("sandbox", "webserver", "health"):
            self.ports.setdefault(service, free_port())
        (self.folder / "home").mkdir(parents=True, exist_ok=True)
        (self.folder / "logs").mkdir(exist_ok=True)
        home = self.folder / "dagster_home"
        home.mkdir(exist_ok=True)
        write_instance_config(home / "dagster.yaml", self.pg_port)
        if self.speed:
            self.epoch = datetime.now(UTC).replace(microsecond=0)
        compile_bytecode()
        self.check_connection_budget()
        _pg_execute(f'CREATE DATABASE "{self.store_db}"', self.pg_port)
        _pg_execute(f'CREATE DATABASE "{self.dagster_db}"', self.pg_port)
        self.run_xbot(["migrate"])
        self.first_build()

    def connection_budget(self) -> Any:
        """The most Postgres connections this deployment may hold at once (its processes' pools
        and dagster.yaml's ``max_concurrent_runs``; xbot_assets/ops/connection_budget.py)."""
        import yaml

        from xbot_assets.config import DEFAULT_DB_POOL_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE
        from xbot_assets.ops.connection_budget import ConnectionBudget

        instance = yaml.safe_load((ROOT / "deploy/dagster.yaml").read_text())
        env = os.environ  # the processes inherit DB_POOL_SIZE/DB_POOL_MAX_OVERFLOW, or defaults
        return ConnectionBudget(
            pool_size=int(env.get("DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE)),
            max_overflow=int(env.get("DB_POOL_MAX_OVERFLOW", DEFAULT_DB_POOL_MAX_OVERFLOW)),
            max_concurrent_runs=int(instance["concurrency"]["runs"]["max_concurrent_runs"]),
            webserver_max_overflow=WEBSERVER_DB_POOL_MAX_OVERFLOW,
        )

    def check_connection_budget(self) -> None:
        """Refuse to start a deployment whose budget exceeds the server's max_connections;
        warn when the connections other clients hold leave it too little right now."""
        import psycopg

        budget = self.connection_budget()
        with psycopg.connect(pg_admin_url(self.pg_port), autocommit=True) as conn:
            row = conn.execute(
                "select current_setting('max_connections')::int, count(*) from pg_stat_activity"
            ).fetchone()
        assert row is not None
        max_connections, in_use = int(row[0]), int(row[1])
        budget.check(max_connections)  # raises with what to lower
        if budget.total() > max_connections - in_use:
            print(f"deploy-local: warning: the deployment may hold {budget.total()} connections "
                  f"and the server on port {self.pg_port} has {max_connections - in_use} free "
                  f"({in_use} of {max_connections} in use)", file=sys.stderr)  # fmt: skip

    def first_build(self) -> None:
        """Build the warehouse and the learning assets once, the first build a deployment does
        by hand: ``rebuild_warehouse_and_learning_job`` (every asset but the partitioned
        ``tweet_metrics``, the dbt seeds included) on the empty store, in one process.

        Declarative automation rebuilds only what changed, and never requests an asset for
        being missing. On a fresh warehouse its first dbt build then selects the models below
        the metrics that came in, and fails: a seed never built (``ref('reward_weights')``, the
        20-account rehearsal of 6 Dec) or, when the metrics land before the posts are extracted,
        a parent table that does not exist yet (dbt's unit tests of ``fct_post_outcomes`` read
        ``fct_posts``; the 100-account rehearsal). With every table built once, each later
        partial build finds its parents. In process: one run worker, about 20 CPU s, instead of
        a process per step. Recorded in the deployment's own instance; `xbot run` builds its
        fresh warehouse the same way in ``runner.py``.
        """
        config = self.folder / "first_build.yaml"
        config.write_text("execution:\n  config:\n    in_process: {}\n")
        done = subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", "xbot_assets.definitions",
             "-j", "rebuild_warehouse_and_learning_job", "-c", str(config)],
            env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the first warehouse build failed: {done.stderr.strip()[-800:]}")

    def run_xbot(self, args: list[str], timeout: float = 300) -> str:
        """Run one `xbot` command in the deployment's environment (raises on failure)."""
        done = subprocess.run(
            [str(BIN / "xbot"), *args], env=self.env(), cwd=ROOT, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"xbot {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
        return done.stdout

    # --- processes -----------------------------------------------------------------------------
    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a process group of its own, output to logs/<name>.log."""
        log = open(self.folder / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            argv, env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.procs[name] = proc
        return proc

    def start_sandbox(self) -> None:
        argv = [str(BIN / "xbot"), "sandbox", "serve", "--port", str(self.ports["sandbox"]),
                "--journal", str(self.folder / "sandbox.jsonl")]  # fmt: skip
        self.start("sandbox", argv)
        self.wait_http(f"{self.url('sandbox')}/__sandbox/state", "sandbox")
        self.add_accounts()

    def add_accounts(self) -> None:
        """Create the extra accounts on the sandbox (each with its own audience size and, with
        ``audience_jitter``, its own topic and format effects, seeded by its handle) and as rows
        of the durable store (accounts_sensor then gives
        each its partition). Idempotent: a restarted sandbox replays its journal."""
        import httpx

        rows = []
        for i, handle in enumerate(self.handles):
            x_id = None
            if i > 0:
                # audiences from 300 to ~6000 followers, spread log-uniformly over the accounts
                followers = int(300 * 20 ** ((i - 1) / max(1, self.accounts - 2)))
                response = httpx.post(
                    f"{self.url('sandbox')}/__sandbox/accounts",
                    json={"handle": handle, "followers": followers,
                          "audience_jitter": self.audience_jitter}, timeout=30,
                )  # fmt: skip
                if response.status_code not in (201, 400):
                    raise RuntimeError(f"sandbox refused @{handle}: {response.text[:300]}")
            listed = httpx.get(f"{self.url('sandbox')}/__sandbox/accounts", timeout=30).json()
            x_id = next(a["id"] for a in listed["accounts"] if a["handle"] == handle)
            rows.append((handle, x_id))
        code = (
            "import json, sys\n"
            "from xbot_assets.config import load_settings\n"
            "from xbot_assets.store.durable import DurableStore\n"
            "store = DurableStore.from_settings(load_settings())\n"
            "for handle, x_id in json.loads(sys.argv[1]):\n"
            "    store.ensure_account(handle, x_user_id=x_id)\n"
            "if sys.argv[2] == '1':\n"
            "    store.set_config('posting.guarded_retry', True, actor='deploy-local')\n"
            "store.close()\n"
        )
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(rows), "1" if self.guarded_retry else "0"],
            env=self.env(), cwd=ROOT,
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip

    def kill_daemon(self) -> None:
        """SIGKILL the daemon process alone, as a crash or an OOM kill would: its code server
        and the run workers it launched live on and finish what they started."""
        proc = self.procs["daemon"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def start_daemon(self) -> None:
        self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", self.workspace])

    def start_all(self) -> None:
        """Every long-running process, then the automation."""
        self.start_sandbox()
        self.start_daemon()
        self.start("webserver", self.webserver_argv())
        self.start("health", [str(BIN / "xbot"), "health", "serve", "--port",
                              str(self.ports["health"])])  # fmt: skip
        self.wait_http(f"{self.url('webserver')}/server_info", "webserver", timeout=900)
        self.wait_http(f"{self.url('health')}/healthz", "health")
        self.turn_on_automation()

    def webserver_argv(self) -> list[str]:
        """dagster-webserver on its port, its storage pools inside the connection budget."""
        return [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p",
                str(self.ports["webserver"]), "-w", self.workspace,
                "--db-pool-max-overflow", str(WEBSERVER_DB_POOL_MAX_OVERFLOW)]  # fmt: skip

    def wait_http(self, url: str, name: str, timeout: float = 90) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}): {self.tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer {url} in {timeout:.0f} s")
            time.sleep(0.5)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.folder / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- automation ----------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL document: through the webserver when the deployment started one, else
        through ``dagster-graphql -w <workspace>`` (which loads the workspace's locations)."""
        import httpx

        if not self.serves_graphql():
            return self.graphql_cli(query, variables)
        deadline = time.monotonic() + 180
        while True:  # the webserver answers 5xx while it (re)loads the code location
            response = httpx.post(
                f"{self.url('webserver')}/graphql",
                json={"query": query, "variables": variables or {}},
                timeout=120,
            )
            if response.status_code < 500 or time.monotonic() > deadline:
                break
            time.sleep(2)
        if response.status_code >= 400:
            raise RuntimeError(f"GraphQL {response.status_code}: {response.text[:800]}")
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def serves_graphql(self) -> bool:
        """Whether this deployment started a webserver (one that died since fails loudly)."""
        return "webserver" in self.procs

    def graphql_cli(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """``dagster-graphql -w <workspace>``: the webserver's GraphQL without a webserver (each
        call starts the workspace's code servers, seconds to a minute on a busy machine)."""
        self.graphql_calls += 1
        out = self.folder / f"graphql_{self.graphql_calls}.json"
        log = self.folder / "logs" / f"graphql_{self.graphql_calls}.log"
        with open(log, "wb") as stream:
            done = subprocess.run(
                [str(BIN / "dagster-graphql"), "-w", self.workspace, "-t", query,
                 "-v", json.dumps(variables or {}), "-o", str(out)],
                env=self.env(), cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=900, check=False,
            )  # fmt: skip
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"dagster-graphql exited {done.returncode}: {log.read_text()[-800:]}"
            )
        body = json.loads(out.read_text())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def repositories(self) -> list[Repository]:
        """Every repository of the workspace, once each of its locations has loaded."""
        expected = set(workspace_locations(ROOT / self.workspace))
        deadline = time.monotonic() + 900
        reloaded = time.monotonic()
        while True:  # the webserver answers before its code locations have loaded
            data = self.graphql(
                """{ repositoriesOrError { __typename ... on RepositoryConnection { nodes {
                     name location { name } sensors { name } schedules { name } } } } }"""
            )
            nodes = data["repositoriesOrError"].get("nodes") or []
            repos = [
                Repository(
                    location=n["location"]["name"],
                    name=n["name"],
                    sensors=tuple(s["name"] for s in n["sensors"]),
                    schedules=tuple(s["name"] for s in n["schedules"]),
                )
                for n in nodes
            ]
            missing = expected - {r.location for r in repos}
            if not missing:
                return repos
            if not self.serves_graphql():  # dagster-graphql loaded what it could
                raise RuntimeError(f"code locations {sorted(missing)} did not load: "
                                   f"{self.tail(f'graphql_{self.graphql_calls}')}")  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"the code location did not load: {self.tail('webserver')}")
            if time.monotonic() - reloaded > 240:  # a load that timed out on a busy machine
                self.graphql("mutation { reloadWorkspace { __typename } }")
                reloaded = time.monotonic()
            time.sleep(5)

    def instigators(self) -> tuple[dict[str, str], list[str], list[str]]:
        """The code location's selector, its sensors and its schedules (one location)."""
        repos = self.repositories()
        if len(repos) != 1:
            raise RuntimeError(f"{self.workspace} loads {len(repos)} repositories: "
                               "use repositories()")  # fmt: skip
        (repo,) = repos
        return repo.selector, list(repo.sensors), list(repo.schedules)

    def turn_on_automation(self, only: set[str] | None = None) -> list[str]:
        """Start the sensors and schedules (README's deployment step 4) as
        :func:`automation_plan` says, all in one request (``only``: just these names of the
        plan); returns them as ``<location>:<name>``."""
        off = OFF_BY_DEFAULT - ({REBUILD_SENSOR} if self.with_rebuild_sensor else set())
        plan = [
            p for p in automation_plan(self.repositories(), off) if only is None or p[2] in only
        ]
        if not plan:
            return []
        data = self.graphql(*start_document(plan))
        started = []
        for i, (repo, _, name) in enumerate(plan):
            answer = data[f"i{i}"]
            if answer["__typename"] not in STARTED:
                raise RuntimeError(f"cannot start {repo.location}:{name}: "
                                   f"{answer.get('message') or answer['__typename']}")  # fmt: skip
            started.append(f"{repo.location}:{name}")
        return started

    # --- shutdown ------------------------------------------------------------------------------
    def stop(self, name: str, sig: int = signal.SIGTERM, grace: float = 20) -> None:
        """Signal the process group of ``name``; SIGKILL it after ``grace`` seconds."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def close(self) -> None:
        """Stop everything started here (daemon first), then drop what ``prepare`` created."""
        for name in ("daemon", "webserver", "health", "sandbox", *list(self.procs)):
            self.stop(name)
        # run workers and code servers in sessions of their own: end any left, by pid
        for pid in self.leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.keep:
            return
        for db in (self.store_db, self.dagster_db):
            with contextlib.suppress(Exception):
                _pg_execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', self.pg_port)
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis(port=6379, db=self.redis_db)
            for key in client.scan_iter(match=f"{self.redis_prefix}*", count=500):
                client.delete(key)
            client.close()

    def leftover_pids(self) -> list[int]:
        """Processes with this deployment's environment still alive (run workers the daemon
        launched in sessions of their own, code servers): found by their DAGSTER_PG_DB."""
        return processes.with_environment("DAGSTER_PG_DB", self.dagster_db, exclude=os.getpid())


CELERY_WORKSPACE = "workspace.celery.yaml"
"""The workspace that loads the main location and the Celery one (``xbot_celery``)."""
CELERY_MODULE = "xbot_assets.celery_definitions"
"""The Celery location's module: the workers import it once at start (``-i``)."""
DEFAULT_BROKER_DB = 9
"""The Redis DB of the Celery broker and result backend (``--broker-db``)."""
CELERY_KEYS = ("_kombu.*", "unacked*", "dagster*", "celery-task-meta-*")
"""What Celery and dagster-celery leave in the broker DB, each under the deployment's key prefix
(``<prefix>dagster``, ``<prefix>unacked``, ...): deleted on exit, another deployment's kept."""


def celery_missing() -> str | None:
    """What keeps Celery mode from starting on this machine (None: nothing)."""
    import importlib.util

    if importlib.util.find_spec("dagster_celery") is None:
        return ("dagster-celery is not installed: run `make install` (it syncs the 'celery' "
                "dependency group) or `uv sync --group celery`")  # fmt: skip
    for tool in ("dagster-celery", "celery"):
        if not (BIN / tool).exists():
            return (f"{BIN / tool} is missing: run `make install` (it syncs the 'celery' "
                    "dependency group) and start deploy-local from that environment")  # fmt: skip
    return None


@dataclass
class CeleryLocalDeployment(LocalDeployment):
    """The local deployment over ``workspace.celery.yaml`` with Celery workers on this machine.

    Each worker is ``dagster-celery worker start`` (the solo pool: a step runs in the worker's
    own process, one at a time; the Celery location imported once at start) on a Redis DB of its
    own as broker and result backend (``broker_db``), with the deployment's environment. Every
    key the broker and backend write carries :attr:`celery_key_prefix` (the runs read it from
    ``XBOT_CELERY_KEY_PREFIX`` in :meth:`env`, the workers from their YAML): deployments on the
    same broker DB (two test suites on one machine) each run only their own steps. The
    Celery rehearsal (``benchmarks/celery_rehearsal.py``) starts, waits for and restarts its
    workers through the same methods."""

    worker_count: int = 1
    """How many workers :meth:`start_all` starts (``worker_1``, ``worker_2``, ...)."""
    broker_db: int = DEFAULT_BROKER_DB
    key_prefix: str | None = None
    """The broker's and backend's key prefix (None: ``<name>:celery:``, unique per deployment:
    the deployment's Redis prefix and ``celery:``, what ``XBOT_CELERY_KEY_PREFIX`` defaults to)."""
    visibility_timeout: int | None = None
    """Seconds before another worker takes over an unacknowledged step (None: the location's
    ``VISIBILITY_TIMEOUT_S``)."""
    workspace: str = CELERY_WORKSPACE
    workers: dict[str, int] = field(default_factory=dict)
    """Worker name -> pid of its celery process (the one that runs steps)."""
    worker_pids: dict[int, str] = field(default_factory=dict)
    """Every worker process started, restarts included: pid -> worker name."""

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:6379/{self.broker_db}"

    @property
    def celery_key_prefix(self) -> str:
        from xbot_assets.config import CELERY_KEY_PREFIX_SUFFIX

        return self.key_prefix or f"{self.redis_prefix}{CELERY_KEY_PREFIX_SUFFIX}"

    @property
    def worker_names(self) -> list[str]:
        return [f"worker_{i}" for i in range(1, self.worker_count + 1)]

    def env(self) -> dict[str, str]:
        from xbot_assets.celery_definitions import BACKEND_ENV, BROKER_ENV, KEY_PREFIX_ENV

        env = super().env()
        env[BROKER_ENV] = self.broker_url
        env[BACKEND_ENV] = self.broker_url
        env[KEY_PREFIX_ENV] = self.celery_key_prefix  # the runs' (producers') prefix
        # `dagster-celery worker start` runs `celery` from PATH
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def connection_budget(self) -> Any:
        """:meth:`LocalDeployment.connection_budget` with the workers, and a code server per
        location of the workspace in each of the daemon and the webserver."""
        import dataclasses

        locations = len(workspace_locations(ROOT / self.workspace))
        return dataclasses.replace(
            super().connection_budget(), code_servers=2 * locations,
            celery_workers=self.worker_count,
        )  # fmt: skip

    def start_all(self) -> None:
        """The workers (they import the location while the rest starts), every other process
        and the automation, then wait until each worker is ready."""
        launched = self.launch_workers(*self.worker_names)
        super().start_all()
        self.wait_workers(launched)

    def write_worker_config(self) -> Path:
        """The workers' YAML (``dagster-celery worker start -y``): broker, backend, settings,
        with the key prefix the deployment's runs read from :meth:`env`."""
        import yaml

        from xbot_assets.celery_definitions import VISIBILITY_TIMEOUT_S, worker_config

        timeout = self.visibility_timeout
        config = self.folder / "celery_worker.yaml"
        config.write_text(yaml.safe_dump(worker_config(
            self.broker_url, self.broker_url, VISIBILITY_TIMEOUT_S if timeout is None else timeout,
            key_prefix=self.celery_key_prefix,
        )))  # fmt: skip
        return config

    def worker_argv(self, name: str, config: Path) -> list[str]:
        """``dagster-celery worker start`` of worker ``name`` (the solo pool, one task at a time,
        no gossip or mingle: nothing to wait for at start)."""
        return [
            str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
            "-y", str(config), "-n", name, "-i", CELERY_MODULE, "-l", "INFO",
            "--", "--pool=solo", "--concurrency=1", "--without-gossip", "--without-mingle",
        ]  # fmt: skip

    def start_workers(self, *names: str) -> None:
        """Start the workers and wait until each is ready."""
        self.wait_workers(self.launch_workers(*names))

    def launch_workers(self, *names: str) -> dict[str, tuple[Any, Path, int]]:
        """Start a worker for each name, all at once, without waiting for them; what
        :meth:`wait_workers` waits on (a restarted worker's log is read from its new end)."""
        config = self.write_worker_config()
        started = {}
        for name in names:
            log = self.folder / "logs" / f"{name}.log"
            offset = log.stat().st_size if log.exists() else 0
            started[name] = (self.start(name, self.worker_argv(name, config)), log, offset)
        return started

    def wait_workers(self, started: dict[str, tuple[Any, Path, int]]) -> None:
        for name, (proc, log, offset) in started.items():
            self._wait_ready(name, proc, log, offset)

    def _wait_ready(self, name: str, proc: Any, log: Path, offset: int) -> None:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}): {self.tail(name)}")
            text = log.read_bytes()[offset:].decode(errors="replace") if log.exists() else ""
            if " ready." in text:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {self.tail(name)}")
            time.sleep(0.5)
        self.workers[name] = _celery_process(proc.pid)
        self.worker_pids[self.workers[name]] = name
        self.worker_ready(name, self.workers[name])

    def worker_ready(self, name: str, pid: int) -> None:
        """Called once worker ``name``'s celery process (``pid``) is ready (a hook)."""

    def close(self) -> None:
        """Everything :meth:`LocalDeployment.close` stops and drops (the workers among the
        processes), then what Celery left in the broker DB under its key prefix (another
        deployment's keys on the same DB stay)."""
        super().close()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis(port=6379, db=self.broker_db)
            for pattern in CELERY_KEYS:
                for key in client.scan_iter(match=self.celery_key_prefix + pattern, count=500):
                    client.delete(key)
            client.close()


def _celery_process(wrapper_pid: int) -> int:
    """The celery process ``dagster-celery worker start`` runs (its child)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = processes.children(wrapper_pid)
        if children:
            return children[0]
        time.sleep(0.2)
    raise RuntimeError(f"no celery process under {wrapper_pid}")


@contextlib.contextmanager
def deployment(celery: int = 0, **kwargs: Any) -> Iterator[LocalDeployment]:
    """A prepared and started deployment, stopped and cleaned up on exit (even on errors);
    with ``celery`` workers, a :class:`CeleryLocalDeployment` (``broker_db`` among ``kwargs``)."""
    dep = (
        CeleryLocalDeployment(worker_count=celery, **kwargs)
        if celery
        else LocalDeployment(**kwargs)
    )
    try:
        dep.prepare()
        dep.start_all()
        yield dep
    finally:
        dep.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=ROOT / ".deploy_local",
                        help="state and logs (default .deploy_local/)")  # fmt: skip
    parser.add_argument("--speed", type=float, default=None,
                        help="rehearsal clock: K simulated seconds per real second")  # fmt: skip
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")  # fmt: skip
    parser.add_argument("--accounts", type=int, default=1,
                        help="accounts to run: X_HANDLE and N-1 more (default 1)")  # fmt: skip
    parser.add_argument("--audience-jitter", type=float, default=DEFAULT_AUDIENCE_JITTER,
                        help="extra accounts' audience jitter (0: the scenario's)")  # fmt: skip
    parser.add_argument("--redis-db", type=int, default=0, help="Redis DB number (default 0)")
    parser.add_argument("--pg-port", type=int, default=PG_PORT,
                        help="the Postgres server on 127.0.0.1 for the store and Dagster's "
                        "storage (default 5432)")  # fmt: skip
    parser.add_argument("--webserver-port", type=int, default=None)
    parser.add_argument("--health-port", type=int, default=None)
    parser.add_argument("--sandbox-port", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep databases and Redis keys")
    parser.add_argument("--with-rebuild-sensor", action="store_true",
                        help="also start learning_rebuild_sensor")  # fmt: skip
    parser.add_argument("--celery", type=int, default=0, metavar="N",
                        help="run the account jobs on N Celery workers, over "
                        f"{CELERY_WORKSPACE} (default 0: no Celery)")  # fmt: skip
    parser.add_argument("--broker-db", type=int, default=DEFAULT_BROKER_DB,
                        help="with --celery: the Redis DB of the Celery broker and result "
                        f"backend, not --redis-db's (default {DEFAULT_BROKER_DB})")  # fmt: skip
    parser.add_argument("--celery-key-prefix", default=None, metavar="PREFIX",
                        help="with --celery: the prefix of every broker and result key (default "
                        "<deployment name>:celery:, unique per deployment, so deployments on "
                        "one broker DB never run each other's steps)")  # fmt: skip
    args = parser.parse_args(argv)
    problem = bad_arguments(args)
    if problem:
        print(f"deploy-local: {problem}", file=sys.stderr)
        return 2
    ports = {k: v for k, v in (("webserver", args.webserver_port), ("health", args.health_port),
                               ("sandbox", args.sandbox_port)) if v}  # fmt: skip

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds through deployment()'s cleanup, even mid-start

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        return _serve(args, ports, started)
    except KeyboardInterrupt:
        print(json.dumps({"stopped": True, "by": "signal"}), flush=True)
        return 0


def bad_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, said as what to do (None: nothing), checked before
    anything starts."""
    if args.celery < 0:
        return f"--celery {args.celery}: give the number of Celery workers, 1 or more (0: none)"
    if not args.celery:
        return None
    if args.broker_db == args.redis_db:
        other = DEFAULT_BROKER_DB if args.redis_db != DEFAULT_BROKER_DB else DEFAULT_BROKER_DB - 1
        return (f"--broker-db {args.broker_db} is also --redis-db: give the Celery broker a "
                f"Redis DB of its own (e.g. --broker-db {other})")  # fmt: skip
    if args.broker_db < 0:
        return f"--broker-db {args.broker_db}: give a Redis DB number (0 or more)"
    if args.celery_key_prefix is not None:
        from xbot_assets.config import celery_key_prefix_problem

        problem = celery_key_prefix_problem(args.celery_key_prefix, app_env="local")
        if problem:  # the same rule the deployment's processes apply (APP_ENV=local)
            return f"--celery-key-prefix: {problem}"
    return celery_missing()


def _serve(args: argparse.Namespace, ports: dict[str, int], started: float) -> int:
    celery = {"celery": args.celery, "broker_db": args.broker_db,
              "key_prefix": args.celery_key_prefix} if args.celery else {}  # fmt: skip
    with deployment(folder=args.folder, speed=args.speed,
                    redis_db=args.redis_db, keep=args.keep, ports=ports, accounts=args.accounts,
                    audience_jitter=args.audience_jitter, pg_port=args.pg_port,
                    with_rebuild_sensor=args.with_rebuild_sensor, **celery) as dep:  # fmt: skip
        ready: dict[str, Any] = {
            "ready": True, "name": dep.name, "ports": dep.ports,
            "clock_epoch": dep.epoch.isoformat() if dep.epoch else None,
            "ui": dep.url("webserver"), "health": f"{dep.url('health')}/readyz",
            "logs": str(dep.folder / "logs"),
        }  # fmt: skip
        if isinstance(dep, CeleryLocalDeployment):
            ready.update(workspace=dep.workspace, broker=dep.broker_url,
                         celery_key_prefix=dep.celery_key_prefix, workers={
                name: {"pid": pid, "log": str(dep.folder / "logs" / f"{name}.log")}
                for name, pid in dep.workers.items()
            })  # fmt: skip
        print(json.dumps(ready), flush=True)
        while True:
            if args.duration is not None and time.monotonic() - started > args.duration:
                break
            dead = [n for n, p in dep.procs.items() if p.poll() is not None]
            if dead:
                print(f"deploy-local: {dead} exited; stopping (see {dep.folder / 'logs'})",
                      file=sys.stderr)  # fmt: skip
                return 1
            time.sleep(1)
    print(json.dumps({"stopped": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
