"""How many Postgres connections one deployment may hold at once: its connection budget.

Every process of a deployment connects to the same server (the store and Dagster's storage):
the webserver, the daemon, the code servers that evaluate sensors, the health server and each
run. Postgres refuses a connection past ``max_connections`` (less the superuser reserve) with
"too many clients", whichever process asks. The budget is the most each process may hold:

* webserver: Dagster keeps a pool per storage (runs, event log, schedules) of 1 connection plus
  ``--db-pool-max-overflow``, and one LISTEN connection for the event log;
* daemon: Dagster's storage has no pool outside the webserver (a connection per call), so at
  most one per daemon thread;
* each code server and the health server: one store engine (``DB_POOL_SIZE`` +
  ``DB_POOL_MAX_OVERFLOW``) and a storage connection;
* each run (at most dagster.yaml's ``max_concurrent_runs`` at once): the same;
* each Celery worker, when the account jobs run on Celery: the same.

docs/deployment.md ("Connection budget") states the formula with the shipped values.
"""

from __future__ import annotations

from dataclasses import dataclass

DAGSTER_STORAGES = 3
"""Run, event log and schedule storage: the webserver pools each separately."""
DAEMON_THREADS = 10
"""Daemon threads that may each hold a storage connection at once (scheduler, sensors, run
queue, run monitoring, backfills, declarative automation, event log consumer, ...): an upper
bound, as Dagster's daemon opens a connection per call."""
SUPERUSER_RESERVED = 3
"""PostgreSQL's default ``superuser_reserved_connections``: not for the deployment."""


@dataclass(frozen=True)
class ConnectionBudget:
    """The inputs of the budget: pool sizes and how many processes of each kind run."""

    pool_size: int
    """DB_POOL_SIZE: the store engine's kept connections per process."""
    max_overflow: int
    """DB_POOL_MAX_OVERFLOW: the store engine's extra connections per process."""
    max_concurrent_runs: int
    """dagster.yaml ``run_coordinator``/``concurrency.runs.max_concurrent_runs``."""
    webserver_max_overflow: int
    """dagster-webserver ``--db-pool-max-overflow`` (Dagster's default is 20)."""
    code_servers: int = 2
    """The daemon's and the webserver's code servers (each loads the code location)."""
    headroom: int = 5
    """An operator's psql, a migration, a one-off `xbot` command."""
    celery_workers: int = 0
    """Celery workers (``deploy_local.py --celery N``): each runs steps in its own process,
    with one store engine and a storage connection."""

    @property
    def per_process(self) -> int:
        """A process with one store engine and one storage connection."""
        return self.pool_size + self.max_overflow + 1

    def by_process(self) -> dict[str, int]:
        """The most connections each kind of process holds at once, all of its kind together."""
        return {
            "webserver": DAGSTER_STORAGES * (1 + self.webserver_max_overflow) + 1,
            "daemon": DAEMON_THREADS,
            "code_servers": self.code_servers * self.per_process,
            "health_server": self.per_process,
            "runs": self.max_concurrent_runs * self.per_process,
            "headroom": self.headroom,
        } | ({"celery_workers": self.celery_workers * self.per_process}
             if self.celery_workers else {})  # fmt: skip

    def total(self) -> int:
        """Connections the deployment may hold at once."""
        return sum(self.by_process().values())

    def check(self, max_connections: int) -> None:
        """Raise ValueError when the budget does not fit the server's max_connections."""
        usable = max_connections - SUPERUSER_RESERVED
        if self.total() > usable:
            fewer = ", start fewer Celery workers" if self.celery_workers else ""
            raise ValueError(
                f"the deployment may hold {self.total()} Postgres connections "
                f"({', '.join(f'{k} {v}' for k, v in self.by_process().items())}) but the "
                f"server allows {usable} (max_connections {max_connections} less "
                f"{SUPERUSER_RESERVED} reserved): lower DB_POOL_SIZE/DB_POOL_MAX_OVERFLOW or "
                f"max_concurrent_runs{fewer}, or raise the server's max_connections"
            )
