"""Run and inspect the durable store's migrations (Alembic, scripts inside this package).

``xbot migrate`` calls :func:`upgrade`; the start-up guard calls :func:`schema_status`.
Migrations run as the login user of ``DATABASE_URL`` (the table owner), never under the
per-environment role the bot uses at run time.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from xbot_assets.store.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATE_LOCK = 0x78626F74  # "xbot": one migrating process per database at a time


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts (and at ``connection`` if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest migration this xbot ships."""
    head = _script().get_current_head()
    assert head is not None, "no migrations packaged"
    return head


def known_revisions() -> list[str]:
    """Every packaged revision, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a store stands against this xbot's migrations."""

    current: str | None
    """The store's revision (None: never migrated, e.g. a brand-new empty SQLite file)."""
    head: str
    """The newest revision this xbot ships."""
    known: bool
    """Whether ``current`` is one of this xbot's revisions (False: migrated by a newer xbot)."""
    behind_by: int
    """How many migrations are missing (0 when current or ahead)."""

    @property
    def is_current(self) -> bool:
        return self.current == self.head

    @property
    def is_ahead(self) -> bool:
        return self.current is not None and not self.known


def current_revision(connection: Connection) -> str | None:
    """The revision recorded in the store, or None if it was never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return MigrationContext.configure(connection).get_current_revision()


def schema_status(engine: Engine) -> SchemaStatus:
    """Compare the store's revision with this xbot's head, reading only (no lock taken)."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin():
            current = current_revision(conn)
    revisions = known_revisions()
    head = revisions[-1]
    known = current is None or current in revisions
    if current is None:
        behind = len(revisions)
    elif known:
        behind = len(revisions) - 1 - revisions.index(current)
    else:
        behind = 0
    return SchemaStatus(current=current, head=head, known=known, behind_by=behind)


def upgrade(url: str, revision: str = "head") -> SchemaStatus:
    """Bring the store at ``url`` up to ``revision`` (default: head). Idempotent.

    Concurrent ``xbot migrate`` runs queue up instead of racing: on Postgres behind an advisory
    lock, on SQLite behind an exclusive lock on ``<database file>.migrate-lock``.
    """
    engine = make_engine(url)
    try:
        with _sqlite_file_lock(engine), engine.connect() as conn:
            is_pg = conn.dialect.name == "postgresql"
            if is_pg:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
                conn.commit()
            try:
                command.upgrade(alembic_config(conn), revision)
                if conn.in_transaction():
                    conn.commit()
            finally:
                if is_pg:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATE_LOCK})
                    conn.commit()
        return schema_status(engine)
    finally:
        engine.dispose()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database:
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def new_revision(message: str, scratch_url: str) -> Path:
    """Write a new migration script autogenerated from ``schema.py`` (for developers).

    ``scratch_url`` is a throwaway database (e.g. ``sqlite:////tmp/scratch.db``): it is first
    upgraded to head, then compared with ``schema.py``. Review the script (keep frozen copies
    of types, add Postgres-only parts and RLS for new environment tables) before committing.
    """
    upgrade(scratch_url)
    revisions = known_revisions()
    next_id = f"{int(revisions[-1][:4]) + 1:04d}"
    engine = make_engine(scratch_url)
    try:
        with engine.connect() as conn:
            script = command.revision(
                alembic_config(conn), message=message, autogenerate=True, rev_id=next_id
            )
    finally:
        engine.dispose()
    _script.cache_clear()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def downgrade(url: str, revision: str) -> SchemaStatus:
    """Take the store at ``url`` back to ``revision`` (operators and the migration tests).

    Holds the same lock as :func:`upgrade`.
    """
    engine = make_engine(url)
    try:
        with _sqlite_file_lock(engine), engine.connect() as conn:
            is_pg = conn.dialect.name == "postgresql"
            if is_pg:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
                conn.commit()
            try:
                command.downgrade(alembic_config(conn), revision)
                if conn.in_transaction():
                    conn.commit()
            finally:
                if is_pg:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATE_LOCK})
                    conn.commit()
        return schema_status(engine)
    finally:
        engine.dispose()
