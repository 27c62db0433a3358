"""Copying the durable store's tables into the warehouse's `raw` schema.

DuckDB's sqlite/postgres scanners need an extension download that fails offline, so rows are
read through SQLAlchemy in batches, turned into Arrow tables and appended by DuckDB (zero-copy
from Arrow). Each raw table is either replaced in one transaction, or (for ``tweet_metrics``)
refreshed one day at a time, so a new day never rescans history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from xbot_assets.warehouse.raw_schema import RAW_SCHEMA, RAW_TABLES, column_names

BATCH_ROWS = 50_000
"""Rows fetched from the store per round trip: large enough to amortise, small enough for RAM."""

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a raw table, so batches from any store have the warehouse's types."""
    return pa.schema([(name, _ARROW_TYPES[sql_type]) for name, sql_type in RAW_TABLES[table]])


@dataclass(frozen=True)
class LoadResult:
    """What one extraction did, for the asset's metadata."""

    table: str
    rows: int
    source: str


def store_available(url: str) -> bool:
    """Whether the durable store exists, without creating an empty SQLite file as a side effect."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        return path is not None and (path == ":memory:" or Path(path).exists())
    return True


def store_has_table(engine: sa.Engine, table: str) -> bool:
    """Whether the durable store has ``table`` (a fresh store may not be migrated yet)."""
    return sa.inspect(engine).has_table(table)


def rows_to_batch(rows: Sequence[Sequence[Any]], table: str) -> pa.RecordBatch:
    """Turn row tuples (in the raw table's column order) into one typed Arrow batch.

    Column-wise conversion (one ``pa.array`` per column) is several times faster than building
    a dict per row, which matters at millions of snapshots.
    """
    schema = arrow_schema(table)
    if not rows:
        return pa.RecordBatch.from_pylist([], schema)
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(values, type=field.type, from_pandas=False)
        for values, field in zip(columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_store_batches(
    engine: sa.Engine,
    query: sa.Select[Any],
    table: str,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream a store query whose columns are in the raw table's order, as Arrow batches."""
    names = column_names(table)
    selected = [c.name for c in query.selected_columns]
    if selected != names:
        raise ValueError(f"query for raw.{table} selects {selected}, expected {names}")
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
        for part in result.partitions(batch_rows):
            yield rows_to_batch([tuple(row) for row in part], table)


def _qualified(table: str) -> str:
    """``raw.<table>`` for a known raw table; identifiers never come from input."""
    if table not in RAW_TABLES:
        raise ValueError(f"unknown raw table {table!r}: expected one of {sorted(RAW_TABLES)}")
    return f"{RAW_SCHEMA}.{table}"


def _insert_batches(
    con: duckdb.DuckDBPyConnection, table: str, batches: Iterable[pa.RecordBatch]
) -> int:
    names = ", ".join(column_names(table))
    total = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        arrow_batch = pa.Table.from_batches([batch])  # noqa: F841 - read by DuckDB by name
        con.execute(
            f"insert into {_qualified(table)} ({names}) select {names} from arrow_batch"  # noqa: S608
        )
        total += batch.num_rows
    return total


def replace_table(
    con: duckdb.DuckDBPyConnection, table: str, batches: Iterable[pa.RecordBatch]
) -> int:
    """Replace a raw table's rows with ``batches`` in one transaction; returns the row count."""
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {_qualified(table)}")  # noqa: S608
        total = _insert_batches(con, table, batches)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return total


def upsert_batches(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key_columns: Sequence[str],
    batches: Iterable[pa.RecordBatch],
) -> int:
    """Insert or replace rows by key in one transaction (the incremental path)."""
    names = ", ".join(column_names(table))
    keys = ", ".join(key_columns)
    target = _qualified(table)
    total = 0
    con.execute("begin transaction")
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            arrow_batch = pa.Table.from_batches([batch])  # noqa: F841 - read by DuckDB by name
            con.execute(
                f"delete from {target} where ({keys}) in (select ({keys}) from arrow_batch)"  # noqa: S608
            )
            con.execute(f"insert into {target} ({names}) select {names} from arrow_batch")  # noqa: S608
            total += batch.num_rows
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return total


def replace_slice(
    con: duckdb.DuckDBPyConnection,
    table: str,
    where_sql: str,
    where_params: Sequence[Any],
    batches: Iterable[pa.RecordBatch],
) -> int:
    """Replace only the rows matching ``where_sql`` (one partition) in one transaction."""
    con.execute("begin transaction")
    try:
        con.execute(
            f"delete from {_qualified(table)} where {where_sql}",  # noqa: S608 - our own clause
            list(where_params),
        )
        total = _insert_batches(con, table, batches)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return total
