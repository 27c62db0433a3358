"""Data-quality queries behind the warehouse's asset checks (pure SQL over DuckDB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from xbot_assets.vocabulary import ENGAGEMENT_ACTIONS

METRICS_GRACE_HOURS = 3
"""A post this long past its 1h horizon without a 1h snapshot means collection is behind."""


@dataclass(frozen=True)
class CheckOutcome:
    """A check's verdict and the numbers that explain it."""

    passed: bool
    metadata: dict[str, Any]


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def engagement_within_impressions(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """No snapshot counts more of any engagement than it counts impressions."""
    cond = " or ".join(f"{c} > impressions" for c in ENGAGEMENT_ACTIONS)
    bad = _scalar(con, f"select count(*) from raw.tweet_metrics where {cond}")  # noqa: S608
    sample = con.execute(
        f"select post_id, horizon from raw.tweet_metrics where {cond} limit 5"  # noqa: S608
    ).fetchall()
    return CheckOutcome(bad == 0, {"violations": int(bad), "sample": str(sample)})


def metrics_fresh(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """Every published post past its 1h horizon (plus grace) has its 1h snapshot.

    Time is read from the data (the newest post), so a replayed or simulated history is judged
    as it was lived; a collector that stops while posting goes on fails this check.
    """
    sql = f"""
        with posted as (
            select post_id, posted_at from raw.posts
            where status = 'posted' and posted_at is not null
        ),
        ref as (select max(posted_at) as now_ from posted),
        due as (
            select posted.post_id from posted, ref
            where posted.posted_at <= ref.now_ - interval {1 + METRICS_GRACE_HOURS} hour
        )
        select
            (select count(*) from due),
            (select count(*) from due where post_id not in (
                select post_id from raw.tweet_metrics where horizon = '1h')),
            (select max(collected_at) from raw.tweet_metrics)
    """  # noqa: S608
    row = con.execute(sql).fetchone()
    due, missing, newest = row or (0, 0, None)
    return CheckOutcome(
        missing == 0,
        {"posts_due": int(due), "missing_1h_snapshot": int(missing), "newest": str(newest)},
    )


def duplicate_post_ids(con: duckdb.DuckDBPyConnection, relation: str) -> CheckOutcome:
    """No post id appears twice in a relation (e.g. ``marts.fct_post_outcomes``)."""
    dups = _scalar(
        con,
        f"select count(*) from (select post_id from {relation} "  # noqa: S608
        "group by post_id having count(*) > 1)",
    )
    return CheckOutcome(dups == 0, {"duplicated_post_ids": int(dups)})
