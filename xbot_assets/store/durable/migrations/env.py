"""Alembic environment of the durable store.

Run through :mod:`xbot_assets.store.durable.migrate` (``xbot migrate``), which hands over an open
connection in ``config.attributes["connection"]``; the ``alembic`` command line also works
with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.schema import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True).get("url")
        if not url:
            raise SystemExit("pass the database with -x url=... or use `xbot migrate`")
        engine = make_engine(url)
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
        return
    _run(connection)


def _run(connection: Connection) -> None:
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        _migrate(connection)
        return
    # Batch mode rebuilds a SQLite table by copying it, dropping it and renaming the copy: with
    # foreign keys enforced, dropping a table that other rows reference fails. SQLite ignores
    # the pragma inside a transaction, so it goes to the driver before any BEGIN; the keys are
    # checked once all revisions ran.
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        _migrate(connection)
        broken = raw.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(
                f"the migrated SQLite store has {len(broken)} row(s) whose foreign key points at "
                f"no row (first: {broken[0]}); restore the file from its backup"
            )
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
