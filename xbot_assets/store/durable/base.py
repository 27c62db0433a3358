"""The shared engine/transaction helper of the durable store's repositories.

Every repository method validates its input before touching the database and runs in one
transaction (:meth:`Repository._tx`), so bad input raises a
:class:`~xbot_assets.store.durable.errors.StoreError` subclass and changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.errors import (
    InvalidInputError,
    StoreConfigError,
    StoreUnavailableError,
)

MAX_TEXT_CHARS = 25_000
"""The longest text the store keeps (X's limit for its longest posts). The 280-weighted-character
limit of a standard account is the content layer's check, not the store's."""
MAX_BATCH_ROWS = 500
"""Rows per multi-row INSERT statement (well under SQLite's bound-parameter limit)."""


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def dialect_insert(dialect: str, table: Any) -> Any:
    """A dialect-specific INSERT (for ON CONFLICT clauses)."""
    if dialect == "postgresql":
        return pg_dialect.insert(table)
    return sqlite_dialect.insert(table)


def first_row(conn: Connection, environment: str, table: Any, *where: Any) -> Row[Any] | None:
    """The first row of ``environment`` in ``table`` matching ``where``, in the caller's
    transaction."""
    return conn.execute(select(table).where(table.c.environment == environment, *where)).first()


class Repository:
    """The shared engine and transaction helper every repository of one environment stands on.

    Args:
        engine: an engine made by :func:`xbot_assets.store.durable.engine.make_engine`.
        environment: ``local``, ``staging`` or ``production``: stamped on and filtered by
            every row.
        max_text_chars: the longest post or candidate text accepted.
    """

    def __init__(
        self, engine: Engine, environment: str, *, max_text_chars: int = MAX_TEXT_CHARS
    ) -> None:
        if environment not in s.ENVIRONMENTS:
            raise StoreConfigError(
                f"unknown environment {environment!r}: use one of {', '.join(s.ENVIRONMENTS)}"
            )
        self.engine = engine
        self.environment = environment
        self.max_text_chars = max_text_chars
        self.dialect = engine.dialect.name

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction; SQLite write transactions take the write lock up front."""
        try:
            with self.engine.connect() as conn:
                if not write:
                    conn = conn.execution_options(sqlite_begin="DEFERRED")
                with conn.begin():
                    yield conn
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            detail = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            raise StoreUnavailableError(
                f"the durable store did not answer ({detail}): check that the database runs "
                "and DATABASE_URL points at it; nothing was written"
            ) from None

    def _first(self, table: Any, *where: Any) -> Row[Any] | None:
        """The first row of this environment's ``table`` matching ``where`` (read transaction)."""
        with self._tx(write=False) as conn:
            return first_row(conn, self.environment, table, *where)

    def _new_row(self, table: Any, now: datetime, **values: Any) -> Any:
        """A dialect INSERT of one row of this environment, created and updated ``now``."""
        return self._insert(table).values(
            environment=self.environment, created_at=now, updated_at=now, **values
        )

    def _insert(self, table: Any) -> Any:
        """A dialect-specific INSERT (for ON CONFLICT clauses)."""
        return dialect_insert(self.dialect, table)

    def _text(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise InvalidInputError(f"{name} is empty: pass the post's text")
        if "\x00" in value:
            raise InvalidInputError(f"{name} contains a NUL character: remove it")
        if len(value) > self.max_text_chars:
            raise InvalidInputError(
                f"{name} has {len(value)} characters, more than the store's limit of "
                f"{self.max_text_chars}: shorten it or split it into a thread"
            )
        return value


def ints(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "MAX_BATCH_ROWS",
    "MAX_TEXT_CHARS",
    "Repository",
    "chunks",
    "dialect_insert",
    "ints",
    "utcnow",
]
