"""Alembic environment of the durable store.

Run through :mod:`xbot_assets.store.migrate` (``xbot migrate``), which hands over an open
connection in ``config.attributes["connection"]``; the ``alembic`` command line also works
with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context

from xbot_assets.store.engine import make_engine
from xbot_assets.store.schema import metadata

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


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
