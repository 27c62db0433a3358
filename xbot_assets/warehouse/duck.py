"""Opening the DuckDB warehouse file.

DuckDB allows one writing process per file; Dagster's multiprocess executor can start two
warehouse steps at once, so opening retries for a while on a lock instead of failing the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

LOCK_WAIT_SECONDS = 120.0


def open_warehouse(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating its folder if needed) the warehouse, waiting while another process holds it.

    Raises:
        RuntimeError: when the file stays locked longer than :data:`LOCK_WAIT_SECONDS`; the
            message names the file so the operator can find the process holding it.
    """
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"cannot open the warehouse {path}: {exc}. Another process holds it; stop "
                    "that process (or wait for its run to finish) and retry"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


@contextmanager
def warehouse(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection closed on exit, so the file lock is released promptly."""
    con = open_warehouse(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()
