"""The scorer's features computed by polars over the warehouse: lazy, from DuckDB via Arrow.

:func:`xbot_assets.learning.features.post_features` is the definition (pandas, row by row where
the text decides). This module computes the same columns for the posts of ``fct_post_outcomes``
as one lazy polars query over the Arrow batches DuckDB hands out, with no pandas frame in
between; ``tests/warehouse/test_features_frame.py`` keeps the two equal, and
``benchmarks/features.py`` measures both at 1M posts (``benchmarks/results/features.json``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import polars as pl

from xbot_assets.learning.features import (
    CATEGORICAL_FEATURES,
    LENGTH_BUCKETS,
    NO_RECENT_TOPIC_HOURS,
    NUMERIC_FEATURES,
)

Engine = Literal["pandas", "polars"]
DEFAULT_ENGINE: Engine = "polars"
"""The faster engine at 1M posts (benchmarks/results/features.json)."""

OUTCOMES_QUERY = "select * from marts.fct_post_outcomes where environment = ? order by posted_at"


def outcomes_lazy(con: Any, environment: str) -> pl.LazyFrame:
    """``fct_post_outcomes`` of one environment as a polars LazyFrame (Arrow, zero pandas)."""
    table = con.execute(OUTCOMES_QUERY, [environment]).to_arrow_table()
    return pl.LazyFrame(table)


def _given_or(name: str, columns: set[str], derived: pl.Expr) -> pl.Expr:
    """The warehouse's value where it has one, else the value derived from the text."""
    if name in columns:
        return pl.col(name).fill_null(derived) if derived is not None else pl.col(name)
    return derived


def _hook_type(first: pl.Expr, given: pl.Expr | None) -> pl.Expr:
    lowered = first.str.to_lowercase()
    contrarian = lowered.str.starts_with("hot take:") | lowered.str.starts_with(
        "unpopular opinion:"
    )
    derived = (
        pl.when(contrarian)
        .then(pl.lit("contrarian"))
        .when(lowered.str.starts_with("how to"))
        .then(pl.lit("how_to"))
        .when(first.str.contains(r"^\d"))
        .then(pl.lit("number"))
        .when(first.str.strip_chars_end().str.ends_with("?"))
        .then(pl.lit("question"))
        .when(
            lowered.str.starts_with("i ")
            | lowered.str.starts_with("i'")
            | lowered.str.starts_with("my ")
            | lowered.str.starts_with("we ")
        )
        .then(pl.lit("story"))
        .otherwise(pl.lit("statement"))
    )
    if given is None:
        return derived
    usable = given.cast(pl.String)
    return pl.when(usable.is_not_null() & (usable != "")).then(usable).otherwise(derived)


def _length_bucket(length: pl.Expr) -> pl.Expr:
    expr: Any = pl
    for limit, name in LENGTH_BUCKETS:
        expr = expr.when(length < limit).then(pl.lit(name))
    return expr.otherwise(pl.lit("very_long"))


def _daypart(hour: pl.Expr) -> pl.Expr:
    return (
        pl.when((hour >= 5) & (hour < 12))
        .then(pl.lit("morning"))
        .when((hour >= 12) & (hour < 17))
        .then(pl.lit("afternoon"))
        .when((hour >= 17) & (hour < 22))
        .then(pl.lit("evening"))
        .otherwise(pl.lit("night"))
    )


def features_lazy(posts: pl.LazyFrame, *, timezone: str = "UTC") -> pl.LazyFrame:
    """The columns of :data:`~xbot_assets.learning.features.FEATURE_SCHEMA` for posted posts
    (rows of ``fct_post_outcomes``), in the posts' order; same values as ``post_features``."""
    columns = set(posts.collect_schema().names())
    if "format" not in columns and "text" not in columns:
        raise ValueError("posts need a 'format' column (or 'text' to infer the rest)")
    text = pl.col("text").fill_null("").cast(pl.String) if "text" in columns else pl.lit("")
    stripped = text.str.strip_chars()
    first = stripped.str.split("\n").list.first().fill_null("")
    hook_given = pl.col("hook_type") if "hook_type" in columns else None
    length = _given_or("text_length", columns, text.str.len_chars()).cast(pl.Float64)
    hashtags = _given_or("n_hashtags", columns, text.str.count_matches(r"(?:^|[^\w])#\w+")).cast(
        pl.Float64
    )

    def flag(name: str, derived: pl.Expr) -> pl.Expr:
        return _given_or(name, columns, derived).cast(pl.Boolean).cast(pl.Float64).alias(name)

    local = (
        pl.col("posted_at").cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(timezone)
        if "posted_at" in columns
        else pl.lit(None, dtype=pl.Datetime("us", timezone))
    )
    hour = _given_or("hour_local", columns, local.dt.hour()).fill_null(12).cast(pl.Int64)
    weekday = (
        _given_or("weekday_local", columns, local.dt.weekday() - 1).fill_null(0).cast(pl.Int64)
    )
    account = pl.col("account") if "account" in columns else pl.lit("")
    topic = pl.col("topic").fill_null("other").cast(pl.String) if "topic" in columns else None
    frame = posts.with_row_index("_row").with_columns(
        _topic=topic if topic is not None else pl.lit("other"), _account=account
    )
    if "posted_at" in columns:
        stamps = pl.col("posted_at").cast(pl.Datetime("us", "UTC"))
        frame = (
            frame.sort(stamps, maintain_order=True)
            .with_columns(
                _since=(stamps.diff().over(["_account", "_topic"]).dt.total_microseconds() / 3.6e9)
            )
            .sort("_row")
        )
    else:
        frame = frame.with_columns(_since=pl.lit(None, dtype=pl.Float64))
    angle = 2 * math.pi * hour.cast(pl.Float64) / 24.0
    features = frame.select(
        (pl.col("format").fill_null("single").cast(pl.String) if "format" in columns
         else pl.lit("single")).alias("format"),
        pl.col("_topic").alias("topic"),
        _hook_type(first, hook_given).alias("hook_type"),
        _length_bucket(length).alias("length_bucket"),
        _daypart(hour).alias("daypart"),
        (pl.lit("d") + weekday.cast(pl.String)).alias("weekday_local"),
        hashtags.clip(upper_bound=5).alias("n_hashtags"),
        flag("has_link", text.str.contains(r"(?i)https?://")),
        flag("has_question", text.str.contains("?", literal=True)),
        flag("has_number", text.str.contains(r"\d")),
        _given_or("thread_length", columns, pl.lit(1))
        .fill_null(1)
        .cast(pl.Float64)
        .clip(1, 25)
        .alias("thread_length"),
        angle.sin().alias("hour_sin"),
        angle.cos().alias("hour_cos"),
        pl.when(weekday >= 5).then(1.0).otherwise(0.0).alias("is_weekend"),
        pl.col("_since")
        .fill_null(NO_RECENT_TOPIC_HOURS)
        .clip(0, NO_RECENT_TOPIC_HOURS)
        .log1p()
        .alias("log_hours_since_topic"),
    )  # fmt: skip
    return features.select([*CATEGORICAL_FEATURES, *NUMERIC_FEATURES])


def outcome_features(
    con: Any, environment: str, *, timezone: str = "UTC", engine: Engine = DEFAULT_ENGINE
) -> Any:
    """Features of every post of ``fct_post_outcomes`` in one environment.

    ``engine="polars"`` (the default) returns a polars DataFrame built lazily from Arrow;
    ``engine="pandas"`` the pandas frame of ``post_features`` over ``.df()``.
    """
    if engine == "polars":
        return features_lazy(outcomes_lazy(con, environment), timezone=timezone).collect()
    if engine == "pandas":
        from xbot_assets.learning.features import post_features

        frame = con.execute(OUTCOMES_QUERY, [environment]).df()
        return post_features(frame, timezone=timezone)
    raise ValueError(f"engine {engine!r} is unknown: use 'polars' or 'pandas'")
