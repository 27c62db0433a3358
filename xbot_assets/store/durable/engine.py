"""Engines for the durable store: URL normalisation and per-engine transaction rules.

SQLite: WAL journal, foreign keys on, a busy timeout, and transactions begun by us so that a
write transaction can be ``BEGIN IMMEDIATE`` (it takes the write lock up front, so two writers
queue instead of failing half-way with "database is locked").

Postgres: the psycopg 3 driver; ``postgres://`` and ``postgresql://`` URLs (as Supabase prints
them) are mapped to it. When a ``db_role`` is given, every pooled connection runs
``SET ROLE <db_role>`` once, so the bot acts as the per-environment, non-owner role that
row-level security applies to, even if the login user owns the tables.
"""

from __future__ import annotations

import os
import re
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from xbot_assets.config import DEFAULT_DB_POOL_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE
from xbot_assets.store.durable.errors import StoreConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def normalise_url(url: str) -> URL:
    """Parse a database URL and pick our drivers (psycopg 3 for Postgres, pysqlite for SQLite).

    Raises:
        StoreConfigError: the URL is neither SQLite nor Postgres.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise StoreConfigError(
            "DATABASE_URL is not a valid URL: use postgresql://user:password@host:5432/db "
            "or sqlite:///path/to/xbot.db"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    raise StoreConfigError(
        f"unsupported durable store {backend!r}: set DATABASE_URL to a postgresql:// URL "
        "(Supabase) or leave it unset for the embedded SQLite file"
    )


def check_role_name(role: str) -> str:
    """Refuse anything but a plain lower-case identifier (it is interpolated into SET ROLE)."""
    if not _ROLE_NAME.match(role):
        raise StoreConfigError(
            f"invalid database role name {role!r}: use lower-case letters, digits and '_'"
        )
    return role


def settings_engine(settings: Any) -> Engine:
    """The store engine ``settings`` describe: their database URL and pool sizes."""
    return make_engine(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
    )


def make_engine(
    url: str | URL,
    *,
    db_role: str | None = None,
    pooled: bool = False,
    pool_size: int = DEFAULT_DB_POOL_SIZE,
    max_overflow: int = DEFAULT_DB_POOL_MAX_OVERFLOW,
) -> Engine:
    """Create an engine with the durable store's connection rules (see the module docstring).

    Args:
        url: the database URL (``sqlite:///...`` or ``postgresql://...``).
        db_role: Postgres only: the role to ``SET ROLE`` to on every new connection.
        pooled: SQLite only: keep connections open between transactions (7-8x faster small
            transactions, see ``benchmarks/results/durable_store.json``: closing the last
            connection to a WAL database checkpoints it). Off by default: code that forks
            workers from a process holding the engine (the posting crash matrix) relies on no
            SQLite handle being open; :class:`DurableStore.from_url` turns it on.
        pool_size, max_overflow: Postgres only: connections kept open, and opened beyond them,
            by this engine (settings ``DB_POOL_SIZE``/``DB_POOL_MAX_OVERFLOW``): the process's
            share of the server's max_connections (docs/deployment.md, "Connection budget").
    """
    parsed = normalise_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, pooled=pooled)
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
    }
    engine = create_engine(parsed, **kwargs)
    _fork_safe(engine)
    if db_role is not None:
        role = check_role_name(db_role)

        @event.listens_for(engine, "connect")
        def _set_role(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cur:
                cur.execute(f"SET ROLE {role}")
            dbapi_connection.commit()

    return engine


def _sqlite_engine(url: URL, *, pooled: bool = True) -> Engine:
    database = url.database or ""
    if not database or database == ":memory:" or "mode=memory" in str(url):
        # Migrations, the guard and the store each open their own connections; an in-memory
        # database would be a different, empty one for each of them.
        raise StoreConfigError(
            "an in-memory SQLite database cannot hold the durable store: use a file, e.g. "
            "sqlite:////path/to/xbot.db (tests: a file under tmp_path)"
        )
    if not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, read-only disk
            raise StoreConfigError(
                f"the folder {folder} cannot hold the store ({type(exc).__name__}: "
                f"{exc.strerror or exc}): point XBOT_HOME (or DATABASE_URL) at a folder "
                "you can write"
            ) from None
    # Pooled: closing the last connection to a WAL database checkpoints and fsyncs (~15 ms
    # here), so a connection per transaction would cost more than the transaction itself.
    pool_args: dict[str, Any] = (
        {"pool_size": 5, "max_overflow": 5} if pooled else {"poolclass": NullPool}
    )
    engine = create_engine(
        url,
        **pool_args,
        connect_args={
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,  # the pool hands a connection to one thread at a time
        },
    )
    _fork_safe(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver's implicit transactions would get in the way.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


_INHERITED: list[Any] = []
"""Connections a forked child inherited from its parent: never used, never closed."""


def _fork_safe(engine: Engine) -> None:
    """Never hand a pooled connection to a process other than the one that opened it.

    SQLAlchemy's recipe for ``multiprocessing``/forking executors: a child that inherited the
    pool discards the parent's connections (without closing them under the parent) and opens
    its own.
    """

    # The child drops the inherited pool at once (SQLAlchemy's ``dispose(close=False)`` recipe):
    # the checkout check below comes after the pool's pre-ping, which would otherwise send a
    # query down the parent's socket; a child SIGKILLed before reading the answer left it for
    # the parent ("unexpected result EMPTY_QUERY from command 'BEGIN'", found by the crash
    # matrix's random-time kills on Postgres).
    ref = weakref.ref(engine)

    def _drop_inherited_pool() -> None:
        inherited = ref()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=_drop_inherited_pool)

    @event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _check_pid(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            # Keep the inherited handle referenced forever: letting it be garbage-collected
            # here would close it, which on Postgres sends a Terminate message down the socket
            # the parent still uses, and on SQLite may release the parent's file locks.
            _INHERITED.append(dbapi_connection)
            record.dbapi_connection = proxy.dbapi_connection = None
            raise sa_exc.DisconnectionError(
                "connection opened by another process; reconnecting in this one"
            )
