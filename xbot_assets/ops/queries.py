"""Aggregates that stay index lookups however large the store grows.

The store's indexes lead with ``(environment, account_id, ...)``. A ``MAX``/``MIN`` filtered on
the environment alone cannot use them as a single lookup (the account sits in between), so it
reads every index entry of the environment. These helpers ask per account instead (a handful of
accounts, one ``O(log n)`` lookup each) and combine the answers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, func, select

from xbot_assets.store.durable.schema import accounts, tweet_metrics, tweets


def account_ids(conn: Connection, environment: str) -> list[int]:
    """Every account of the environment (active or not: their rows still count)."""
    return [
        int(row[0])
        for row in conn.execute(select(accounts.c.id).where(accounts.c.environment == environment))
    ]


def last_metrics_collection(conn: Connection, environment: str) -> datetime | None:
    """When the newest metrics snapshot of any account was collected (None: never)."""
    found: list[datetime] = []
    for account_id in account_ids(conn, environment):
        value = conn.execute(
            select(func.max(tweet_metrics.c.collected_at)).where(
                and_(
                    tweet_metrics.c.environment == environment,
                    tweet_metrics.c.account_id == account_id,
                )
            )
        ).scalar()
        if value is not None:
            found.append(value)
    return max(found, default=None)


def oldest_queued_schedule(conn: Connection, environment: str) -> datetime | None:
    """The earliest ``scheduled_at`` of a queued post of any account (None: queue empty)."""
    found: list[datetime] = []
    for account_id in account_ids(conn, environment):
        value = conn.execute(
            select(func.min(tweets.c.scheduled_at)).where(
                and_(
                    tweets.c.environment == environment,
                    tweets.c.account_id == account_id,
                    tweets.c.status == "queued",
                )
            )
        ).scalar()
        if value is not None:
            found.append(value)
    return min(found, default=None)
