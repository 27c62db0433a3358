"""Fixtures for the durable store tests: the same suite on real Postgres and on SQLite.

Postgres: each xdist worker migrates one database of its own (unique name) once and drops it
at the end; every test starts from empty tables (DELETE: a database or a TRUNCATE per test
costs ~1 s on this machine).
SQLite: the migrated template file is copied into the test's ``tmp_path``.
A stopped Postgres fails these tests with a message saying how to start it (never a skip).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.durable.schema import metadata

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{db}"


def pg_admin() -> psycopg.Connection:
    """An autocommit connection to the server's maintenance database."""
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )


def create_db(name: str, template: str | None = None) -> str:
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return PG_URL.format(db=name)


def drop_db(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A migrated database of this worker's own (unique name), dropped at the end."""
    name = f"xbot_test_store_{uuid.uuid4().hex[:8]}"
    url = create_db(name)
    try:
        upgrade(url)
        yield name
    finally:
        drop_db(name)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The worker's migrated Postgres database, emptied for this test (as the owner, which as a
    superuser is not subject to row-level security)."""
    with psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={pg_database}", autocommit=True
    ) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(f"DELETE FROM {table.name}")
    return PG_URL.format(db=pg_database)


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A fresh, never migrated Postgres database for one test."""
    name = f"xbot_test_store_empty_{uuid.uuid4().hex[:8]}"
    url = create_db(name)
    try:
        yield url
    finally:
        drop_db(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "xbot.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite file for one test."""
    path = tmp_path / "store" / "xbot.db"
    path.parent.mkdir()
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh migrated store of the parametrized backend."""
    name = "sqlite_url" if backend == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def store(store_url: str) -> Iterator[DurableStore]:
    """The store for ``staging`` (on Postgres: acting as the ``xbot_staging`` role, under RLS)."""
    opened = DurableStore.from_url(store_url, environment="staging")
    try:
        yield opened
    finally:
        opened.close()
