"""Opening the DuckDB warehouse file.

DuckDB allows one writing process per file; Dagster's multiprocess executor can start two
warehouse steps at once, so opening retries for a while on a lock instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

LOCK_WAIT_SECONDS = 120.0


def _is_lock_error(exc: BaseException) -> bool:
    """Only a held file lock is worth waiting for; any other I/O error fails at once."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def open_warehouse(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating its folder if needed) the warehouse, waiting while another process holds it.

    Raises:
        RuntimeError: when the file stays locked longer than :data:`LOCK_WAIT_SECONDS` (or
            another I/O error occurs); the message names the file so the operator can find
            the process holding it.
    """
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    retrying = Retrying(
        retry=retry_if_exception(_is_lock_error),
        stop=stop_after_delay(LOCK_WAIT_SECONDS),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        reraise=False,
    )
    try:
        return retrying(duckdb.connect, str(path), read_only=read_only)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise RuntimeError(
            f"cannot open the warehouse {path}: {last}. Another process holds it; stop "
            "that process (or wait for its run to finish) and retry"
        ) from last
    except duckdb.IOException as exc:
        raise RuntimeError(f"cannot open the warehouse {path}: {exc}") from exc


@contextmanager
def warehouse(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection closed on exit, so the file lock is released promptly."""
    con = open_warehouse(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()
