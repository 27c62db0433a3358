"""Metrics: per-post snapshots at each horizon, and the daily summaries built from them.

Follower counts are not a table of their own: the collector stores them as
``followers_snapshot`` audit events (:mod:`.audit`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select

from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.base import (
    MAX_BATCH_ROWS,
    Repository,
    chunks,
    dialect_insert,
    first_row,
)
from xbot_assets.store.durable.errors import InvalidInputError, PostNotFoundError
from xbot_assets.store.durable.models import DailySummary, MetricSnapshot, Post
from xbot_assets.store.durable.validate import (
    valid_count,
    valid_day,
    valid_horizon,
    valid_id,
    valid_json_obj,
    valid_limit,
    valid_now,
    valid_opt_str,
    valid_opt_time,
    valid_str,
    valid_time,
)

_UPSERT_CHUNK = 1000
"""Rows per executemany call of :func:`upsert_metric_rows`."""

HORIZON_DELTAS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "72h": timedelta(hours=72),
}


class MetricsRepository(Repository):
    """Write and read metric snapshots and daily summaries."""

    def upsert_metrics(self, snapshots: Iterable[MetricSnapshot]) -> int:
        """Write metric snapshots, one per post and horizon; replays are harmless.

        A snapshot replaces the stored one for its post and horizon unless the stored one was
        collected later (so an out-of-order replay from the hot path never goes back in time).
        All rows are checked first and written in multi-row statements in one transaction.

        Returns:
            how many snapshots were given (and are now stored or superseded by newer ones).
        """
        if isinstance(snapshots, (str, bytes, Mapping)):
            raise InvalidInputError("snapshots must be an iterable of MetricSnapshot")
        items = list(snapshots)
        rows = [_metric_row(i, snap) for i, snap in enumerate(items)]
        if not rows:
            return 0
        t = s.tweets
        with self._tx() as conn:
            tweet_ids = sorted({r["tweet_id"] for r in rows})
            owners: dict[int, int] = {}
            for chunk in chunks(tweet_ids, MAX_BATCH_ROWS):
                found = conn.execute(
                    select(t.c.id, t.c.account_id).where(
                        t.c.environment == self.environment, t.c.id.in_(chunk)
                    )
                )
                owners.update((int(r.id), int(r.account_id)) for r in found)
            missing = [i for i in tweet_ids if i not in owners]
            if missing:
                raise PostNotFoundError(
                    f"metrics for unknown post ids {missing[:10]} in {self.environment}: "
                    "collect metrics only for posts the store holds; nothing was written"
                )
            for r in rows:
                r["environment"] = self.environment
                r["account_id"] = owners[r["tweet_id"]]
            upsert_metric_rows(conn, rows)
        return len(rows)

    def get_metrics(self, post_id: int) -> list[MetricSnapshot]:
        """The stored snapshots of one post, by horizon order (1h, 6h, 24h, 72h)."""
        post_id = valid_id("post_id", post_id)
        m = s.tweet_metrics
        with self._tx(write=False) as conn:
            rows = conn.execute(
                select(m).where(m.c.environment == self.environment, m.c.tweet_id == post_id)
            ).all()
        snaps = [_snapshot(r) for r in rows]
        return sorted(snaps, key=lambda x: s.HORIZONS.index(x.horizon))

    def list_metrics(
        self, *, account_id: int | None = None, since: datetime | None = None
    ) -> list[MetricSnapshot]:
        """Every snapshot (of one account, collected since a time): for the warehouse."""
        since = valid_opt_time("since", since)
        m = s.tweet_metrics
        q = select(m).where(m.c.environment == self.environment)
        if account_id is not None:
            q = q.where(m.c.account_id == valid_id("account_id", account_id))
        if since is not None:
            q = q.where(m.c.collected_at >= since)
        q = q.order_by(m.c.collected_at, m.c.id)
        with self._tx(write=False) as conn:
            return [_snapshot(r) for r in conn.execute(q)]

    def metrics_due(
        self,
        horizon: str,
        *,
        now: datetime | None = None,
        account_id: int | None = None,
        limit: int = 500,
    ) -> list[Post]:
        """Posted posts at least ``horizon`` old with no snapshot at that horizon yet.

        Oldest first. Only posts with an X id (anything posted) are returned.
        """
        horizon = valid_horizon(horizon)
        now = valid_now(now)
        limit = valid_limit(limit)
        t = s.tweets
        m = s.tweet_metrics
        have = select(m.c.id).where(m.c.tweet_id == t.c.id, m.c.horizon == horizon).exists()
        q = select(t).where(
            t.c.environment == self.environment,
            t.c.status == "posted",
            t.c.x_id.is_not(None),
            t.c.posted_at <= now - HORIZON_DELTAS[horizon],
            ~have,
        )
        if account_id is not None:
            q = q.where(t.c.account_id == valid_id("account_id", account_id))
        q = q.order_by(t.c.posted_at, t.c.id).limit(limit)
        with self._tx(write=False) as conn:
            return [Post(**r._mapping) for r in conn.execute(q)]

    def upsert_daily_summary(
        self,
        summary_date: date,
        summary_type: str,
        metrics: Mapping[str, Any],
        *,
        now: datetime | None = None,
    ) -> DailySummary:
        """Write the summary of one day and type (replacing an earlier one)."""
        key = _summary_key(summary_date, summary_type)
        body = valid_json_obj("metrics", metrics)
        now = valid_now(now)
        d = s.daily_summaries
        with self._tx() as conn:
            stmt = self._new_row(
                d, now, summary_date=summary_date, summary_type=summary_type, metrics=body
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[d.c.summary_date, d.c.summary_type, d.c.environment],
                set_={"metrics": stmt.excluded.metrics, "updated_at": now},
            )
            conn.execute(stmt)
            row = first_row(conn, self.environment, d, *key)
            assert row is not None  # written above, in this transaction
            return DailySummary(**row._mapping)

    def get_daily_summary(self, summary_date: date, summary_type: str) -> DailySummary | None:
        """The stored summary of one day and type, or None."""
        row = self._first(s.daily_summaries, *_summary_key(summary_date, summary_type))
        return None if row is None else DailySummary(**row._mapping)


def upsert_metric_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert checked ``tweet_metrics`` rows in the caller's transaction; returns rows written.

    A snapshot replaces the stored one for its ``(environment, tweet_id, horizon)`` unless the
    stored one was collected later, so a replay (the hot path's sync) never goes back in time.
    Only the newest row per key goes in (ON CONFLICT cannot touch a row twice in a statement).
    Sent as executemany: SQLAlchemy pages multi-row VALUES ("insertmanyvalues") from one compiled
    statement instead of compiling one with thousands of parameters.
    """
    if not rows:
        return 0
    newest: dict[tuple[str, int, str], dict[str, Any]] = {}
    for row in rows:
        key = (str(row["environment"]), int(row["tweet_id"]), str(row["horizon"]))
        if key not in newest or row["collected_at"] >= newest[key]["collected_at"]:
            newest[key] = row
    values = list(newest.values())
    m = s.tweet_metrics
    stmt = dialect_insert(conn.dialect.name, m)
    stmt = stmt.on_conflict_do_update(
        index_elements=[m.c.environment, m.c.tweet_id, m.c.horizon],
        set_={n: stmt.excluded[n] for n in (*s.METRIC_NAMES, "source", "collected_at")},
        where=m.c.collected_at <= stmt.excluded.collected_at,
    )
    for chunk in chunks(values, _UPSERT_CHUNK):
        conn.execute(stmt, list(chunk))
    return len(values)


def _summary_key(summary_date: Any, summary_type: Any) -> tuple[Any, Any]:
    """The checked key of a daily summary, as conditions on its row."""
    summary_date = valid_day("summary_date", summary_date)
    summary_type = valid_str("summary_type", summary_type, 64)
    d = s.daily_summaries
    return d.c.summary_date == summary_date, d.c.summary_type == summary_type


def _metric_row(i: int, snap: Any) -> dict[str, Any]:
    if not isinstance(snap, MetricSnapshot):
        raise InvalidInputError(
            f"snapshots[{i}] is a {type(snap).__name__}: pass MetricSnapshot objects"
        )
    row: dict[str, Any] = {
        "tweet_id": valid_id(f"snapshots[{i}].tweet_id", snap.tweet_id),
        "horizon": valid_horizon(snap.horizon),
        "collected_at": valid_time(f"snapshots[{i}].collected_at", snap.collected_at),
        "source": valid_opt_str(f"snapshots[{i}].source", snap.source, 32),
    }
    for name in s.METRIC_NAMES:
        row[name] = valid_count(f"snapshots[{i}].{name}", getattr(snap, name))
    return row


def _snapshot(row: Row[Any]) -> MetricSnapshot:
    data = dict(row._mapping)
    data.pop("id", None)
    data.pop("environment", None)
    return MetricSnapshot(**data)


__all__ = ["HORIZON_DELTAS", "MetricsRepository", "upsert_metric_rows"]
