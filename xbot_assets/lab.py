"""One-line access to the bot's data for analysts: ``lab = open_lab()`` in a notebook.

The lab only reads. The warehouse is opened read-only for each query (so a notebook never holds
DuckDB's file lock while a Dagster run wants to write), and model assets are loaded the way
Dagster stored them: from the file its latest materialisation names in its ``path`` metadata.
Nothing here writes to the durable store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import numpy as np
import pandas as pd

from xbot_assets.config import Settings, ensure_dagster_home, load_settings

Engine = Literal["pandas", "polars"]

MIN_POSTS_PER_GROUP = 20
"""Below this many posts in a group, a notebook names no "best" group: the interval is too wide."""

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class LabError(RuntimeError):
    """Something a notebook needs is missing; the message says which command produces it."""


@dataclass
class Lab:
    """Read-only handles on the warehouse and the latest asset values of one environment."""

    settings: Settings
    _instance: dg.DagsterInstance | None = field(default=None, repr=False)

    # --- warehouse ---------------------------------------------------------------------------
    @property
    def warehouse_path(self) -> Path:
        return self.settings.resolved_warehouse_path

    def sql(self, query: str, params: list[Any] | None = None, *, engine: Engine = "pandas") -> Any:
        """Run a read-only query on the DuckDB warehouse: a pandas DataFrame, or with
        ``engine="polars"`` a polars DataFrame built from DuckDB's Arrow result (no pandas)."""
        from xbot_assets.warehouse.duck import warehouse

        if engine not in ("pandas", "polars"):
            raise LabError(f"engine {engine!r} is unknown: use 'pandas' or 'polars'")
        if not self.warehouse_path.exists():
            raise LabError(
                f"no warehouse at {self.warehouse_path}: run `make run` (or materialise the "
                "warehouse assets) first"
            )
        with warehouse(self.warehouse_path, read_only=True) as con:
            result = con.execute(query, params or [])
            if engine == "polars":
                import polars as pl

                return pl.DataFrame(result.to_arrow_table())
            return result.df()

    def table(self, name: str, *, where: str | None = None, engine: Engine = "pandas") -> Any:
        """A whole warehouse relation by name: ``fct_post_outcomes`` or ``views.vw_recent_posts``.

        Bare names are looked up in the mart, view, staging and raw schemas, in that order.
        ``engine="polars"`` returns a polars DataFrame (for large tables: Arrow, no copy via
        pandas).
        """
        relation = name if "." in name else self._qualify(name)
        query = f"select * from {relation}"  # noqa: S608 - relation names come from the catalogue
        if where:
            query += f" where {where}"
        return self.sql(query, engine=engine)

    def relations(self) -> pd.DataFrame:
        """Every table and view in the warehouse, with its schema."""
        return self.sql(
            "select table_schema as schema, table_name as name, table_type as type "
            "from information_schema.tables order by 1, 2"
        )

    def _qualify(self, name: str) -> str:
        found = self.relations()
        for schema in ("marts", "views", "staging", "raw", "main"):
            hit = found[(found["schema"] == schema) & (found["name"] == name)]
            if len(hit):
                return f"{schema}.{name}"
        raise LabError(f"no relation {name!r} in the warehouse: see lab.relations() for names")

    # --- Dagster assets ------------------------------------------------------------------------
    @cached_property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            ensure_dagster_home()
            self._instance = dg.DagsterInstance.get()
        return self._instance

    def materializations(self, asset: str, limit: int = 100) -> list[dg.AssetMaterialization]:
        """The asset's materialisations, newest first."""
        records = self.instance.fetch_materializations(
            dg.AssetKey.from_user_string(asset), limit=limit
        ).records
        return [r.asset_materialization for r in records if r.asset_materialization is not None]

    def metadata_history(self, asset: str, limit: int = 1000) -> pd.DataFrame:
        """The asset's numeric and text metadata over its materialisations, oldest first,
        indexed by ``simulated_time``: the main job's simulated moment (``xbot/simulated_time``),
        or the wall clock for materialisations made outside it. Plot this, not Dagster's
        timestamps, to see a 30-day `make run` over 30 days."""
        from xbot_assets.defs.simtime import SIMULATED_DAY_TAG, SIMULATED_TIME_KEY

        records = self.instance.fetch_materializations(
            dg.AssetKey.from_user_string(asset), limit=limit
        ).records
        rows = []
        for record in records:
            found = record.asset_materialization
            if found is None:
                continue
            values = {key: value.value for key, value in found.metadata.items()}
            simulated = values.pop(SIMULATED_TIME_KEY, None)
            rows.append(
                {
                    "simulated_time": pd.to_datetime(
                        simulated if simulated is not None else record.timestamp,
                        unit="s",
                        utc=True,
                    ),
                    "simulated_day": (found.tags or {}).get(SIMULATED_DAY_TAG),
                    "wall_time": pd.to_datetime(record.timestamp, unit="s", utc=True),
                    "run_id": record.run_id,
                    **{k: v for k, v in values.items() if isinstance(v, int | float | str)},
                }
            )
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        return frame.sort_values("simulated_time").set_index("simulated_time")

    def metadata(self, asset: str) -> dict[str, Any]:
        """The latest materialisation's metadata as plain Python values."""
        found = self.materializations(asset, limit=1)
        if not found:
            raise LabError(f"{asset} was never materialised here: run `make run` first")
        return {key: value.value for key, value in found[0].metadata.items()}

    def asset_path(self, asset: str) -> Path:
        """The file the latest materialisation of ``asset`` wrote (its ``path``/``model_path``)."""
        meta = self.metadata(asset)
        recorded = meta.get("path", meta.get("model_path"))
        if recorded is None:
            raise LabError(f"{asset}'s materialisation records no file path")
        path = Path(str(recorded))
        if not path.exists():
            raise LabError(f"{asset}'s file {path} is gone: materialise {asset} again")
        return path

    def scorer(self) -> tuple[Any, dict[str, Any]]:
        """The current ``engagement_scorer`` model (loaded safely with skops) and its info."""
        from xbot_assets.learning.scorer import load_scorer

        return load_scorer(self.asset_path("engagement_scorer"))

    def posteriors(self) -> dict[str, Any]:
        """The current ``arm_posteriors`` as saved: arms, prior, successes, failures, pulls."""
        return dict(json.loads(self.asset_path("arm_posteriors").read_text()))


def compare_groups(
    frame: pd.DataFrame, by: str, value: str = "reward", *, draws: int = 4000, seed: int = 0
) -> pd.DataFrame:
    """Mean ``value`` per group with a 95 % interval and the probability each group is best.

    The interval is the normal approximation (mean ± 1.96 standard errors); ``p_best`` samples
    each group's mean from that approximation ``draws`` times and counts how often it is the
    highest. Groups with one post get the pooled standard deviation. Sorted by mean, best first.
    """
    values = frame[[by, value]].dropna()
    grouped = values.groupby(by)[value]
    table = grouped.agg(posts="size", mean="mean", sd="std")
    pooled = float(values[value].std()) if len(values) > 1 else 0.0
    table["sd"] = table["sd"].fillna(pooled)
    se = table["sd"] / np.sqrt(table["posts"])
    table["ci95_low"] = table["mean"] - 1.96 * se
    table["ci95_high"] = table["mean"] + 1.96 * se
    if len(table):
        rng = np.random.default_rng(seed)
        sampled = rng.normal(table["mean"].to_numpy(), se.to_numpy(), size=(draws, len(table)))
        wins = np.bincount(sampled.argmax(axis=1), minlength=len(table))
        table["p_best"] = wins / draws
    else:
        table["p_best"] = []
    return table.drop(columns="sd").sort_values("mean", ascending=False)


def best_statement(
    table: pd.DataFrame, what: str, *, min_posts: int = MIN_POSTS_PER_GROUP, fmt: str = "{}"
) -> str:
    """One Markdown sentence about the best group of :func:`compare_groups`' table, with its
    interval and P(best), or saying the data are too few to name one."""
    if table.empty:
        return f"No {what} has measured posts yet."
    table = table.sort_values("mean", ascending=False)
    top = table.iloc[0]
    label = fmt.format(table.index[0])
    few = table[table["posts"] < min_posts]
    figures = (
        f"mean reward {top['mean']:.4f}, 95 % interval {top['ci95_low']:.4f} to "
        f"{top['ci95_high']:.4f}, {int(top['posts'])} posts, P(best) = {top['p_best']:.2f}"
    )
    if len(few):
        return (
            f"Too few posts to name a best {what}: {len(few)} of {len(table)} have fewer than "
            f"{min_posts} posts (from {int(table['posts'].min())} to "
            f"{int(table['posts'].max())}). Highest so far: **{label}** ({figures}); "
            "treat it as a hint, not a result."
        )
    if top["p_best"] < 0.8:
        return (
            f"No clear best {what}: the highest, **{label}** ({figures}), is best with "
            "probability below 0.8."
        )
    return f"Best {what}: **{label}** ({figures})."


def open_lab(**overrides: Any) -> Lab:
    """The lab for the environment the settings (environment, ``.env``) name."""
    return Lab(load_settings(**overrides))
