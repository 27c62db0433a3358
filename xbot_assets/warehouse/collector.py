"""Metrics collection (the seed's TweetPerformanceTracker): snapshots at 1h/6h/24h/72h.

For every posted post that has passed a horizon without a snapshot at it, the collector reads
the post's counters from X (``GET /2/tweets``, 100 ids per call, ``public_metrics`` plus the
owner-only ``non_public_metrics``/``organic_metrics``) and upserts one snapshot per post and
horizon into the durable store (idempotent: a replay never duplicates or goes back in time).
Follower counts come from ``GET /2/users/{id}`` and are stored as ``followers_snapshot`` audit
events. It stops early, without error, when the rate-limit headers say the window is spent;
the next scheduled run continues where this one stopped.

The reader is anything shaped like :class:`xbot_assets.xapi.client.XApiClient` (the same code
reads X and the sandbox's HTTP API).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from xbot_assets.warehouse.store_extract import FOLLOWER_EVENT

if TYPE_CHECKING:
    from xbot_assets.store.dual import DualStoreManager
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.models import MetricSnapshot, Post

log = logging.getLogger(__name__)

HORIZONS: tuple[str, ...] = ("1h", "6h", "24h", "72h")
METRIC_FIELDS: tuple[str, ...] = ("public_metrics", "non_public_metrics", "organic_metrics")
_METRIC_NAMES = (
    "impressions", "likes", "reposts", "replies", "quotes", "bookmarks", "profile_clicks",
    "follows", "negative_feedback", "reports",
)  # fmt: skip
LOOKUP_BATCH = 100
"""``GET /2/tweets`` takes at most 100 ids per call."""


class TweetsPageLike(Protocol):
    data: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    rate_limit: Any


class XReader(Protocol):
    """What the collector needs from an X API client."""

    def get_tweets(
        self, ids: Sequence[str], *, tweet_fields: Sequence[str] = ..., user_context: bool = ...
    ) -> Any: ...

    def get_user(self, user_id: str, *, user_fields: Sequence[str] = ...) -> dict[str, Any]: ...


@dataclass
class CollectionReport:
    """What one collection pass did (for the asset's metadata and logs)."""

    snapshots: int = 0
    calls: int = 0
    by_horizon: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    followers: int = 0
    stopped_for_rate_limit: bool = False
    rate_limit_reset_at: datetime | None = None


def metrics_from_tweet(item: Mapping[str, Any]) -> dict[str, int]:
    """Map one ``GET /2/tweets`` item onto the shared metric names.

    Owner-only counters (``non_public_metrics``, ``organic_metrics``) win where X gives them
    (impressions, profile clicks); otherwise public counters are used. ``follows``,
    ``negative_feedback`` and ``reports`` are not part of a post lookup and stay 0.
    """
    public = item.get("public_metrics") or {}
    private = item.get("non_public_metrics") or {}
    organic = item.get("organic_metrics") or {}

    def pick(*values: Any) -> int:
        for value in values:
            if value is not None:
                return int(value)
        return 0

    return {
        "impressions": pick(
            private.get("impression_count"),
            organic.get("impression_count"),
            public.get("impression_count"),
        ),
        "likes": pick(public.get("like_count"), organic.get("like_count")),
        "reposts": pick(
            public.get("retweet_count"), public.get("repost_count"), organic.get("retweet_count")
        ),
        "replies": pick(public.get("reply_count"), organic.get("reply_count")),
        "quotes": pick(public.get("quote_count")),
        "bookmarks": pick(public.get("bookmark_count")),
        "profile_clicks": pick(
            private.get("user_profile_clicks"), organic.get("user_profile_clicks")
        ),
    }


def _spent(rate_limit: Any, reserve: int) -> bool:
    remaining = getattr(rate_limit, "remaining", None)
    return remaining is not None and remaining <= reserve


def _fetch_snapshots(
    reader: XReader,
    posts: Sequence[Post],
    horizon: str,
    now: datetime,
    report: CollectionReport,
    reserve: int,
) -> list[MetricSnapshot]:
    from xbot_assets.store.models import MetricSnapshot
    from xbot_assets.xapi.errors import XRateLimitError

    by_x_id = {str(p.x_id): p for p in posts if p.x_id}
    ids = list(by_x_id)
    out: list[MetricSnapshot] = []
    for start in range(0, len(ids), LOOKUP_BATCH):
        batch = ids[start : start + LOOKUP_BATCH]
        try:
            page = reader.get_tweets(batch, tweet_fields=METRIC_FIELDS, user_context=True)
        except XRateLimitError as exc:
            report.stopped_for_rate_limit = True
            report.rate_limit_reset_at = exc.rate_limit.reset_at if exc.rate_limit else None
            return out
        report.calls += 1
        seen = set()
        for item in page.data:
            post = by_x_id.get(str(item.get("id")))
            if post is None:
                continue
            seen.add(str(item["id"]))
            out.append(
                MetricSnapshot(
                    tweet_id=post.id,
                    horizon=horizon,
                    collected_at=now,
                    source="x_api",
                    **metrics_from_tweet(item),
                )
            )
        report.missing += len(set(batch) - seen)
        if _spent(page.rate_limit, reserve):
            report.stopped_for_rate_limit = True
            report.rate_limit_reset_at = getattr(page.rate_limit, "reset_at", None)
            return out
    return out


def collect_due_metrics(
    store: DurableStore,
    reader: XReader,
    *,
    now: datetime | None = None,
    horizons: Iterable[str] = HORIZONS,
    account_id: int | None = None,
    max_posts_per_horizon: int = 500,
    rate_limit_reserve: int = 1,
    dual: DualStoreManager | None = None,
) -> CollectionReport:
    """Take every snapshot that is due, horizon by horizon, and upsert it into the store.

    Args:
        store: the durable store (its environment decides which posts).
        reader: an X API client (X or the sandbox's HTTP API).
        now: the collection time (the sandbox's clock in simulations; default: now, UTC).
        horizons: which horizons to collect (default 1h, 6h, 24h, 72h).
        account_id: only this account's posts.
        max_posts_per_horizon: a bound per pass, so one run stays short.
        rate_limit_reserve: stop when the window has this many calls left or fewer.
        dual: when given, snapshots go through the hot path (``sync_to_supabase`` stream,
            synced by the DualStoreManager's worker; straight to the store if Redis is down)
            instead of a direct upsert. Either way the write is idempotent per post and horizon.
    """
    now = now or datetime.now(UTC)
    report = CollectionReport()
    for horizon in horizons:
        due = store.metrics_due(
            horizon, now=now, account_id=account_id, limit=max_posts_per_horizon
        )
        snapshots = _fetch_snapshots(reader, due, horizon, now, report, rate_limit_reserve)
        if snapshots and dual is not None:
            owner = {p.id: p.account_id for p in due}
            for snap in snapshots:
                dual.record_metric_snapshot(
                    tweet_id=snap.tweet_id,
                    account_id=owner[snap.tweet_id],
                    horizon=snap.horizon,
                    metrics={n: getattr(snap, n) for n in _METRIC_NAMES},
                    collected_at=snap.collected_at,
                    source=snap.source,
                )
        elif snapshots:
            store.upsert_metrics(snapshots)
        report.snapshots += len(snapshots)
        report.by_horizon[horizon] = len(snapshots)
        if report.stopped_for_rate_limit:
            log.warning(
                "X rate limit nearly spent: stopping metrics collection until %s",
                report.rate_limit_reset_at,
            )
            break
    return report


def record_followers(store: DurableStore, reader: XReader, *, now: datetime | None = None) -> int:
    """Snapshot every active account's follower count (``GET /2/users/{id}``)."""
    now = now or datetime.now(UTC)
    written = 0
    for account in store.list_accounts(active_only=True):
        if not account.x_user_id:
            continue
        user = reader.get_user(account.x_user_id, user_fields=("public_metrics",))
        metrics = user.get("public_metrics") or {}
        store.audit(
            FOLLOWER_EVENT,
            component="metrics",
            actor="metrics_collector",
            data={
                "account_id": account.id,
                "followers_count": int(metrics.get("followers_count", 0)),
                "following_count": int(metrics.get("following_count", 0)),
            },
            occurred_at=now,
            event_id=f"{FOLLOWER_EVENT}:{account.id}:{now.isoformat()}",
        )
        written += 1
    return written
