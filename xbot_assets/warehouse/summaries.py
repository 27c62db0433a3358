"""Daily summaries: each day's performance, computed in the warehouse, for Supabase users.

One summary per account and UTC day (``summary_type`` = ``performance:<account>``), written
through the durable store's ``upsert_daily_summary`` so a re-run replaces, never duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

SUMMARY_TYPE_PREFIX = "performance:"

DAILY_SQL = """
with outcomes as (
    select *, cast(timezone('UTC', posted_at) as date) as day
    from marts.fct_post_outcomes
),
per_day as (
    select
        account,
        day,
        count(*) as n_posts,
        count(*) filter (where final_horizon is not null) as n_measured,
        sum(impressions) as impressions,
        sum(likes + reposts + replies + quotes + bookmarks + profile_clicks) as engagements,
        sum(likes) as likes,
        sum(reposts) as reposts,
        sum(replies) as replies,
        sum(follows) as follows,
        avg(reward) filter (where final_horizon is not null) as mean_reward,
        avg(beats_median) filter (where final_horizon is not null) as beats_median_rate,
        arg_max(arm, reward) filter (where final_horizon is not null) as best_arm
    from outcomes
    group by account, day
)
select
    per_day.*,
    growth.followers,
    growth.followers_delta
from per_day
left join marts.mart_follower_growth as growth
    on growth.account = per_day.account and growth.day = per_day.day
where per_day.day >= ?
order by per_day.account, per_day.day
"""


@dataclass(frozen=True)
class DaySummary:
    """One account's day: the key the store upserts on, and the JSON it keeps."""

    account: str
    day: date
    metrics: dict[str, Any]

    @property
    def summary_type(self) -> str:
        return f"{SUMMARY_TYPE_PREFIX}{self.account}"[:64]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (int, str, bool)):
        return value
    if isinstance(value, float):
        return round(value, 6)
    return float(value)


def compute_daily_summaries(
    con: duckdb.DuckDBPyConnection, since: date | None = None
) -> list[DaySummary]:
    """Every (account, UTC day) summary from ``since`` on (all days when None)."""
    cur = con.execute(DAILY_SQL, [since or date(1970, 1, 1)])
    columns = [d[0] for d in cur.description or []]
    out = []
    for row in cur.fetchall():
        record = dict(zip(columns, row, strict=True))
        account, day = record.pop("account"), record.pop("day")
        engagement_rate = (
            record["engagements"] / record["impressions"] if record["impressions"] else 0.0
        )
        record["engagement_rate"] = engagement_rate
        metrics = {k: _plain(v) for k, v in record.items()}
        out.append(DaySummary(account=str(account), day=day, metrics=metrics))
    return out


def newest_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The newest UTC posting day in the warehouse (None when empty)."""
    row = con.execute(
        "select max(cast(timezone('UTC', posted_at) as date)) from marts.fct_post_outcomes"
    ).fetchone()
    return None if row is None else row[0]
