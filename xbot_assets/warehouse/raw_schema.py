"""The `raw` schema of the warehouse: the contract between the extraction and the dbt sources.

The extraction assets copy the durable store's tables into these DuckDB tables, renamed to the
shared vocabulary; ``dbt/models/staging/_sources.yml`` declares the same tables. Keeping the DDL
here (not inferred from whatever a store returns) means an empty store still yields a warehouse
the dbt models can build on, and a changed store column fails loudly in one place.
"""

from __future__ import annotations

from typing import Final

import duckdb

RAW_SCHEMA: Final = "raw"

METRIC_COLUMNS: Final[tuple[str, ...]] = (
    "impressions",
    "likes",
    "reposts",
    "replies",
    "quotes",
    "bookmarks",
    "profile_clicks",
    "follows",
    "negative_feedback",
    "reports",
)
"""The shared metric names, in the order every table lists them."""

HORIZONS: Final[tuple[str, ...]] = ("1h", "6h", "24h", "72h")
"""Snapshot horizons after posting; the last one is a post's final outcome."""

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
        *((name, "BIGINT") for name in METRIC_COLUMNS),
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


def column_names(table: str) -> list[str]:
    """The raw table's column names in order."""
    return [name for name, _ in RAW_TABLES[table]]


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw schema and every raw table that does not exist yet (idempotent)."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    for table, columns in RAW_TABLES.items():
        cols = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
        con.execute(f"create table if not exists {RAW_SCHEMA}.{table} ({cols})")
