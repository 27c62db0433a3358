"""Read-only transactions that never take SQLite's write lock.

The store's SQLite engine begins every transaction with ``BEGIN IMMEDIATE`` (writers queue up
front). A health probe or a scrape only reads, so it asks for ``BEGIN DEFERRED`` and never
blocks the poster.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a read transaction (deferred on SQLite), rolled back at the end."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin() as trans:
            yield conn
            trans.rollback()
