"""The polars feature build over the warehouse equals the pandas definition, post for post."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from xbot_assets.learning.features import FEATURE_SCHEMA, post_features
from xbot_assets.learning.synthetic import synthetic_post_outcomes
from xbot_assets.warehouse.features_frame import features_lazy, outcome_features, outcomes_lazy

AWKWARD_TEXTS = [
    "  hot take: tabs win",
    "Unpopular opinion: no",
    "how to ship #python",
    "3 ways to win ##ai #a#b",
    "Why?\nbecause",
    "I tried it https://x.com",
    "we did it. ÉTÉ #été",
    "",
    None,
]


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    frame = synthetic_post_outcomes(400, seed=11).drop(columns=["beats_median"])
    extra = frame.head(len(AWKWARD_TEXTS)).copy()
    extra["post_id"] = [f"x{i}" for i in range(len(extra))]
    extra["text"] = AWKWARD_TEXTS
    for name in ("hook_type", "text_length", "n_hashtags", "has_link", "hour_local"):
        extra[name] = None  # derived from the text and the time, as the definition does
    extra["topic"] = [None, *extra["topic"].iloc[1:]]
    extra["account"] = "second"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.register("frame", pd.concat([frame, extra], ignore_index=True))
    con.execute("create table marts.fct_post_outcomes as select * from frame")
    return con


def test_polars_features_equal_the_pandas_definition(tmp_path: Path) -> None:
    con = _warehouse(tmp_path / "wh.duckdb")
    try:
        expected = outcome_features(con, "local", timezone="Europe/Paris", engine="pandas")
        got = outcome_features(con, "local", timezone="Europe/Paris", engine="polars")
    finally:
        con.close()
    assert isinstance(got, pl.DataFrame) and len(got) == 409
    assert got.columns == FEATURE_SCHEMA["categorical"] + FEATURE_SCHEMA["numeric"]
    pd.testing.assert_frame_equal(
        got.to_pandas(), expected.reset_index(drop=True), check_dtype=False, atol=1e-9
    )


def test_the_lazy_plan_reads_arrow_and_builds_no_pandas_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = _warehouse(tmp_path / "wh.duckdb")

    def no_pandas(*args: object, **kwargs: object) -> None:
        raise AssertionError("the polars path built a pandas frame")

    monkeypatch.setattr(pd.DataFrame, "__init__", no_pandas)
    try:
        lazy = features_lazy(outcomes_lazy(con, "local"))
        assert isinstance(lazy, pl.LazyFrame)
        assert lazy.collect().height == 409
    finally:
        con.close()


def test_unknown_engine_says_which_to_use(tmp_path: Path) -> None:
    con = _warehouse(tmp_path / "wh.duckdb")
    try:
        with pytest.raises(ValueError, match="use 'polars' or 'pandas'"):
            outcome_features(con, "local", engine="spark")  # type: ignore[arg-type]
    finally:
        con.close()


def test_same_features_as_post_features_on_a_frame() -> None:
    frame = synthetic_post_outcomes(50, seed=2)
    expected = post_features(frame, timezone="UTC")
    got = features_lazy(pl.from_pandas(frame.drop(columns=["beats_median"])).lazy()).collect()
    pd.testing.assert_frame_equal(
        got.to_pandas(), expected.reset_index(drop=True), check_dtype=False, atol=1e-9
    )
