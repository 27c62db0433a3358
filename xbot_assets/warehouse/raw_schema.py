"""The `raw` schema of the warehouse: the contract between the extraction and the dbt sources.

The extraction assets copy the durable store's tables into these DuckDB tables, renamed to the
shared vocabulary; ``dbt/models/staging/_sources.yml`` declares the same tables. Keeping the DDL
here (not inferred from whatever a store returns) means an empty store still yields a warehouse
the dbt models can build on, and a changed store column fails loudly in one place.
"""

from __future__ import annotations

from typing import Final

import duckdb

from xbot_assets.vocabulary import METRIC_NAMES

RAW_SCHEMA: Final = "raw"

RAW_TABLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "posts": (
        ("post_id", "BIGINT"),
        ("account_id", "BIGINT"),
        ("account", "VARCHAR"),
        ("environment", "VARCHAR"),
        ("status", "VARCHAR"),
        ("x_post_id", "VARCHAR"),
        ("thread_root_id", "BIGINT"),
        ("thread_position", "INTEGER"),
        ("thread_size", "INTEGER"),
        ("text", "VARCHAR"),
        ("arm", "VARCHAR"),
        ("format", "VARCHAR"),
        ("topic", "VARCHAR"),
        ("content_source", "VARCHAR"),
        ("policy", "VARCHAR"),
        ("predicted_score", "DOUBLE"),
        ("propensity", "DOUBLE"),
        ("scheduled_at", "TIMESTAMPTZ"),
        ("created_at", "TIMESTAMPTZ"),
        ("posted_at", "TIMESTAMPTZ"),
        ("updated_at", "TIMESTAMPTZ"),
    ),
    "tweet_metrics": (
        ("post_id", "BIGINT"),
        ("account_id", "BIGINT"),
        ("environment", "VARCHAR"),
        ("horizon", "VARCHAR"),
        *((name, "BIGINT") for name in METRIC_NAMES),
        ("source", "VARCHAR"),
        ("collected_at", "TIMESTAMPTZ"),
    ),
    "accounts": (
        ("account_id", "BIGINT"),
        ("account", "VARCHAR"),
        ("environment", "VARCHAR"),
        ("x_user_id", "VARCHAR"),
        ("timezone", "VARCHAR"),
        ("active", "BOOLEAN"),
        ("created_at", "TIMESTAMPTZ"),
    ),
    "candidates": (
        ("candidate_id", "BIGINT"),
        ("account_id", "BIGINT"),
        ("environment", "VARCHAR"),
        ("batch_id", "VARCHAR"),
        ("arm", "VARCHAR"),
        ("format", "VARCHAR"),
        ("topic", "VARCHAR"),
        ("content_source", "VARCHAR"),
        ("predicted_score", "DOUBLE"),
        ("guard_passed", "BOOLEAN"),
        ("chosen", "BOOLEAN"),
        ("post_id", "BIGINT"),
        ("created_at", "TIMESTAMPTZ"),
    ),
    "follower_snapshots": (
        ("snapshot_id", "BIGINT"),
        ("account_id", "BIGINT"),
        ("environment", "VARCHAR"),
        ("collected_at", "TIMESTAMPTZ"),
        ("followers_count", "BIGINT"),
        ("following_count", "BIGINT"),
    ),
}
"""Every raw table with its columns and DuckDB types."""


LOADED_AT: Final = "_loaded_at"
"""Warehouse-side column on every raw table: when the row was (re)loaded, set by DuckDB's
``current_timestamp`` (the loading transaction's start). The incremental dbt models process only
rows loaded after the newest ``_loaded_at`` they already hold, so a new day touches a day's rows.
Loads into one warehouse file are serial (DuckDB allows one writing process), so the stamps only
grow. It is not part of the store contract above: extraction queries never select it."""


def column_names(table: str) -> list[str]:
    """The raw table's column names in order."""
    return [name for name, _ in RAW_TABLES[table]]


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and every raw table that does not exist yet (idempotent)."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    loaded_at = f"{LOADED_AT} TIMESTAMPTZ DEFAULT current_timestamp"
    for table, columns in RAW_TABLES.items():
        cols = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
        con.execute(f"create table if not exists {RAW_SCHEMA}.{table} ({cols}, {loaded_at})")
        # Warehouses created before the column existed gain it (their rows count as new once).
        con.execute(f"alter table {RAW_SCHEMA}.{table} add column if not exists {loaded_at}")
        for name, sql_type in columns:  # and any column added since (null until reloaded)
            con.execute(
                f"alter table {RAW_SCHEMA}.{table} add column if not exists {name} {sql_type}"
            )
