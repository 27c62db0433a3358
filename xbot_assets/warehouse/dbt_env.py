"""The environment a dbt invocation runs in: target per APP_ENV, warehouse path, no tracking."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WAREHOUSE_PATH_ENV = "XBOT_WAREHOUSE_PATH"
"""Read by ``dbt/profiles.yml``: the DuckDB file every target writes to."""


def dbt_env_vars(app_env: str, warehouse_path: Path) -> dict[str, str]:
    """Variables dbt needs: the profile's target, the DuckDB path, and tracking switched off."""
    return {
        "APP_ENV": app_env,
        WAREHOUSE_PATH_ENV: str(warehouse_path.resolve()),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


@contextmanager
def dbt_environment(app_env: str, warehouse_path: Path) -> Iterator[dict[str, str]]:
    """Set the dbt variables for the duration of one invocation, then restore the previous ones.

    dagster-dbt passes the process environment to the dbt subprocess and reads the profile in
    process too, so the variables have to be in ``os.environ`` while the invocation streams.
    """
    values = dbt_env_vars(app_env, warehouse_path)
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for key, old in previous.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def release_duckdb_adapter(adapter: Any) -> None:
    """Close the DuckDB database dagster-dbt's in-process dbt adapter opened to read row counts
    and column types, so the next step in this process can open the warehouse file.

    dbt-duckdb keeps one database per process (``DuckDBConnectionManager._ENV``, checked against
    dbt-duckdb 1.11.1) open after its connections close; DuckDB then refuses a second connection
    with another configuration ("Can't open a connection to same database file with a different
    configuration") and other processes see the file locked.
    """
    if adapter is None:
        return
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    adapter.cleanup_connections()
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        env.close()
