"""A throwaway PostgreSQL database for one benchmark run (shared by the benchmark scripts).

Every benchmark that measures Postgres works in a database made for the run under a unique name
and dropped ``WITH (FORCE)`` when the run ends, even when it fails: a run never touches a user's
data, runs can overlap, and none leaves a database behind.

The server is reached through its maintenance database: ``$XBOT_BENCH_PG_ADMIN`` when set, else
the machine's local Postgres (``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ADMIN_URL_ENV = "XBOT_BENCH_PG_ADMIN"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    """The URL of the server's maintenance database, where databases are created and dropped."""
    return os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL)


@contextmanager
def throwaway_database(prefix: str, admin_url: str | None = None) -> Iterator[str]:
    """Create ``<prefix>_<8 hex>`` on the server, yield its URL, and drop it on the way out.

    Args:
        prefix: The start of the database's name, which says which benchmark made it.
        admin_url: The maintenance database's URL; :func:`pg_admin_url` when not given.

    Yields:
        The new database's URL: the admin URL with its database name replaced.
    """
    admin = admin_url or pg_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
