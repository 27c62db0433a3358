"""Analyst helpers: polars tables from the warehouse, and "best" claims that carry uncertainty."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pytest

from xbot_assets.config import Settings
from xbot_assets.lab import Lab, LabError, best_statement, compare_groups


def _lab(settings: Settings) -> Lab:
    path = settings.resolved_warehouse_path
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        "create table marts.fct_post_outcomes as select i as post_id, 'a\nb' as text, "
        "i / 10.0 as reward from range(5) t(i)"
    )
    con.close()
    return Lab(settings)


def test_table_as_polars_or_pandas(xbot_env: Settings) -> None:
    lab = _lab(xbot_env)
    as_polars = lab.table("fct_post_outcomes", engine="polars")
    as_pandas = lab.table("fct_post_outcomes")
    assert isinstance(as_polars, pl.DataFrame) and isinstance(as_pandas, pd.DataFrame)
    assert as_polars["reward"].to_list() == as_pandas["reward"].tolist() == [0, 0.1, 0.2, 0.3, 0.4]
    with pytest.raises(LabError, match="use 'pandas' or 'polars'"):
        lab.table("fct_post_outcomes", engine="spark")  # type: ignore[arg-type]


def _posts(counts: dict[str, int], means: dict[str, float]) -> pd.DataFrame:
    rows = []
    for group, n in counts.items():
        rows += [{"g": group, "reward": means[group] + 0.01 * ((i % 3) - 1)} for i in range(n)]
    return pd.DataFrame(rows)


def test_too_few_posts_name_no_best_group() -> None:
    table = compare_groups(_posts({"a": 14, "b": 2}, {"a": 0.2, "b": 0.1}), "g")
    assert list(table.columns) == ["posts", "mean", "ci95_low", "ci95_high", "p_best"]
    text = best_statement(table, "topic")
    assert text.startswith("Too few posts to name a best topic")
    assert "from 2 to 14" in text and "P(best)" in text


def test_a_clear_winner_is_named_with_its_interval() -> None:
    table = compare_groups(_posts({"a": 40, "b": 40}, {"a": 0.3, "b": 0.1}), "g")
    assert table.loc["a", "p_best"] > 0.99
    assert table.loc["a", "ci95_low"] < 0.3 < table.loc["a", "ci95_high"]
    text = best_statement(table, "format")
    assert text.startswith("Best format: **a**") and "95 % interval" in text


def test_a_close_race_is_no_clear_best() -> None:
    table = compare_groups(_posts({"a": 30, "b": 30}, {"a": 0.2, "b": 0.2}), "g")
    assert best_statement(table, "hour").startswith("No clear best hour")
