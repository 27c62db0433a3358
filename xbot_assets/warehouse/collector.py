"""Metrics collection (the seed's TweetPerformanceTracker): snapshots at 1h/6h/24h/72h.

For every posted post that has passed a horizon without a snapshot at it, the collector reads
the post's counters from X (``GET /2/tweets``, 100 ids per call, ``public_metrics`` plus the
owner-only ``non_public_metrics``/``organic_metrics``) and upserts one snapshot per post and
horizon into the durable store (idempotent: a replay never duplicates or goes back in time).
Each snapshot also carries ``follows``, ``negative_feedback`` and ``reports`` from X's per-post
analytics (``GET /2/tweets/analytics``, window: posting time to the snapshot time), the only
source of the growth objective's follows. When X refuses analytics (403/404: an app without the
access level) or the reader has no such call, the public counters are still stored with those
three at 0, and the reason is logged once per pass. Real X knows no ``negative_feedback`` or
``reports`` field: when it refuses them (400), follows alone are asked for.
Follower counts come from ``GET /2/users/{id}`` and are stored as ``followers_snapshot`` audit
events. It stops early, without error, when the rate-limit headers of either endpoint say the
window is spent; the next scheduled run continues where this one stopped.

The reader is anything shaped like :class:`xbot_assets.xapi.client.XApiClient` (the same code
reads X and the sandbox's HTTP API).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from xbot_assets.vocabulary import HORIZONS, METRIC_NAMES
from xbot_assets.warehouse.store_extract import FOLLOWER_EVENT

if TYPE_CHECKING:
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.models import MetricSnapshot, Post
    from xbot_assets.store.hot.dual import DualStoreManager

log = logging.getLogger(__name__)

METRIC_FIELDS: tuple[str, ...] = ("public_metrics", "non_public_metrics", "organic_metrics")
LOOKUP_BATCH = 100
"""``GET /2/tweets`` and ``GET /2/tweets/analytics`` take at most 100 ids per call."""
ANALYTICS_FIELDS: tuple[str, ...] = ("follows",)
"""What X's analytics add to a post lookup (the other counters come from ``GET /2/tweets``)."""
SANDBOX_ANALYTICS_FIELDS: tuple[str, ...] = ("negative_feedback", "reports")
"""The sandbox's extension fields; real X refuses them (400) and they are then left out."""
ANALYTICS_LEAD = timedelta(minutes=5)
"""The analytics window opens this long before the recorded posting time: the store records
``posted_at`` after X answered, a little after X's own creation time (counts before a post
exists are zero, so the margin costs nothing)."""


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


class AnalyticsReader(Protocol):
    """The optional analytics call of a reader (X API client or the in-process sandbox)."""

    def get_tweet_analytics(
        self,
        ids: Sequence[str],
        *,
        start_time: datetime,
        end_time: datetime,
        granularity: str = ...,
        analytics_fields: Sequence[str] = ...,
    ) -> Any: ...


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
    analytics_calls: int = 0
    analytics_snapshots: int = 0
    """Snapshots that carry X's analytics (follows, and where answered negative feedback and
    reports)."""
    analytics_unavailable: str | None = None
    """Why this pass stored snapshots without analytics (None: analytics were read)."""
    deferred_for_budget: dict[str, int] = field(default_factory=dict)
    """Due posts per horizon left for a later pass because the month's read budget is short."""


def metrics_from_tweet(item: Mapping[str, Any]) -> dict[str, int]:
    """Map one ``GET /2/tweets`` item onto the shared metric names.

    Owner-only counters (``non_public_metrics``, ``organic_metrics``) win where X gives them
    (impressions, profile clicks); otherwise public counters are used. ``follows``,
    ``negative_feedback`` and ``reports`` are not part of a post lookup: they come from the
    analytics endpoint (see the module docstring).
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


class _RateLimited(Exception):
    """The analytics window is spent: stop the pass before storing the batch."""

    def __init__(self, reset_at: datetime | None) -> None:
        super().__init__("X analytics rate limit spent")
        self.reset_at = reset_at


@dataclass
class _Analytics:
    """What one collection pass knows about the reader's analytics call."""

    reader: AnalyticsReader | None
    report: CollectionReport
    extensions: bool = True

    def disable(self, reason: str) -> None:
        self.reader = None
        self.report.analytics_unavailable = reason
        log.warning(
            "metrics without X analytics (follows, negative feedback, reports stay 0): %s", reason
        )

    def read(self, posts: Sequence[Post], now: datetime) -> tuple[dict[str, Any], Any]:
        """Analytics per X id of one batch (empty when unavailable) and the answer's rate limit.

        Raises:
            _RateLimited: X answered 429; the batch must not be stored without its analytics.
        """
        from xbot_assets.xapi.errors import (
            XApiError,
            XAuthError,
            XBadRequestError,
            XForbiddenError,
            XNotFoundError,
            XRateLimitError,
        )

        if self.reader is None or not posts:
            return {}, None
        ids = [str(p.x_id) for p in posts]
        start = min(_aware(p.posted_at or p.created_at) for p in posts) - ANALYTICS_LEAD
        start = start.replace(second=0, microsecond=0)
        end = _aware(now).replace(microsecond=0)
        if end <= start:
            return {}, None
        while True:
            fields = ANALYTICS_FIELDS + (SANDBOX_ANALYTICS_FIELDS if self.extensions else ())
            try:
                page = self.reader.get_tweet_analytics(
                    ids, start_time=start, end_time=end, granularity="total",
                    analytics_fields=fields,
                )  # fmt: skip
            except XRateLimitError as exc:
                raise _RateLimited(exc.rate_limit.reset_at if exc.rate_limit else None) from None
            except XBadRequestError as exc:
                self.report.analytics_calls += 1
                if self.extensions:
                    # Real X has no negative_feedback/reports field: ask for follows alone.
                    log.info("X refused the sandbox analytics fields (%s); asking for follows", exc)
                    self.extensions = False
                    continue
                self.disable(f"X refused the analytics request ({exc})")
                return {}, None
            except (XForbiddenError, XAuthError, XNotFoundError) as exc:
                self.report.analytics_calls += 1
                self.disable(
                    f"GET /2/tweets/analytics is not available to this app ({exc}); it needs "
                    "the user context and an access level that includes post analytics"
                )
                return {}, None
            except XApiError as exc:
                self.disable(f"X analytics failed ({exc}); this pass stores its snapshots without")
                return {}, None
            except ValueError as exc:  # the client refused the request before sending it
                self.disable(f"cannot ask X for analytics: {exc}")
                return {}, None
            self.report.analytics_calls += 1
            return {item.id: item.metrics for item in page.data}, page.rate_limit


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _analytics_counts(metrics: Any) -> dict[str, int]:
    """``follows``, ``negative_feedback``, ``reports`` of one post's analytics (0 if absent)."""
    return {
        name: int(getattr(metrics, name, None) or 0)
        for name in ("follows", "negative_feedback", "reports")
    }


def _fetch_snapshots(
    reader: XReader,
    posts: Sequence[Post],
    horizon: str,
    now: datetime,
    report: CollectionReport,
    reserve: int,
    analytics: _Analytics,
) -> list[MetricSnapshot]:
    from xbot_assets.store.durable.models import MetricSnapshot
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
        found = [
            by_x_id[str(item.get("id"))] for item in page.data if str(item.get("id")) in by_x_id
        ]
        try:
            extra, analytics_rate_limit = analytics.read(found, now)
        except _RateLimited as exc:
            report.stopped_for_rate_limit = True
            report.rate_limit_reset_at = exc.reset_at
            return out
        seen = set()
        for item in page.data:
            post = by_x_id.get(str(item.get("id")))
            if post is None:
                continue
            seen.add(str(item["id"]))
            counts = metrics_from_tweet(item)
            if str(item["id"]) in extra:
                counts.update(_analytics_counts(extra[str(item["id"])]))
                report.analytics_snapshots += 1
            out.append(
                MetricSnapshot(
                    tweet_id=post.id,
                    horizon=horizon,
                    collected_at=now,
                    source="x_api",
                    **counts,
                )
            )
        report.missing += len(set(batch) - seen)
        for rate_limit in (page.rate_limit, analytics_rate_limit):
            if _spent(rate_limit, reserve):
                report.stopped_for_rate_limit = True
                report.rate_limit_reset_at = getattr(rate_limit, "reset_at", None)
                return out
    return out


def plan_within_budget(
    due: Mapping[str, int], reads_left: int, reads_per_batch: int
) -> dict[str, int]:
    """How many due posts of each horizon to look up with ``reads_left`` reads.

    Horizons are served in order (1h, 6h, 24h, 72h): when the budget is short the 72 h
    snapshots are dropped first, then the 24 h ones, and the 1 h ones last. A lookup batch
    takes up to 100 ids and costs ``reads_per_batch`` reads (the lookup, plus the analytics
    call when the reader has one). Dropped posts stay due for a later pass.
    """
    plan: dict[str, int] = {}
    left = max(reads_left, 0)
    for horizon, count in due.items():
        batches = math.ceil(count / LOOKUP_BATCH)
        affordable = min(batches, left // max(reads_per_batch, 1))
        plan[horizon] = min(count, affordable * LOOKUP_BATCH)
        left -= affordable * reads_per_batch
    return plan


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
    reads_left: int | None = None,
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
        dual: when given, snapshots go through the hot path (written to the store at once;
            buffered in the ``sync_to_supabase`` stream only while the store is down) instead
            of a direct upsert. Either way the write is idempotent per post and horizon.
        reads_left: the month's remaining X API reads (:func:`plan_within_budget` fits the
            pass into them; None: no budget planning, the gate alone refuses calls).
    """
    now = now or datetime.now(UTC)
    report = CollectionReport()
    analytics = _Analytics(_analytics_reader(reader), report)
    if analytics.reader is None:
        analytics.disable(f"{type(reader).__name__} has no get_tweet_analytics call")
    due_by_horizon = {
        horizon: store.metrics_due(
            horizon, now=now, account_id=account_id, limit=max_posts_per_horizon
        )
        for horizon in horizons
    }
    if reads_left is not None:
        plan = plan_within_budget(
            {h: len(posts) for h, posts in due_by_horizon.items()},
            reads_left,
            2 if analytics.reader is not None else 1,
        )
        for horizon, posts in due_by_horizon.items():
            if plan[horizon] < len(posts):
                report.deferred_for_budget[horizon] = len(posts) - plan[horizon]
                due_by_horizon[horizon] = posts[: plan[horizon]]
        if report.deferred_for_budget:
            log.warning(
                "X API read budget short (%s reads left): deferring %s",
                reads_left,
                report.deferred_for_budget,
            )
    for horizon, due in due_by_horizon.items():
        if not due:
            report.by_horizon[horizon] = 0
            continue
        snapshots = _fetch_snapshots(
            reader, due, horizon, now, report, rate_limit_reserve, analytics
        )
        if snapshots and dual is not None:
            owner = {p.id: p.account_id for p in due}
            # one transaction for the horizon's snapshots, durable before the run moves on
            dual.record_metric_snapshots(
                [
                    {
                        "tweet_id": snap.tweet_id,
                        "account_id": owner[snap.tweet_id],
                        "horizon": snap.horizon,
                        "metrics": {n: getattr(snap, n) for n in METRIC_NAMES},
                        "collected_at": snap.collected_at,
                        "source": snap.source,
                    }
                    for snap in snapshots
                ]
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


def _analytics_reader(reader: XReader) -> AnalyticsReader | None:
    """The reader's analytics call, if it has one (older readers and fakes do not)."""
    if callable(getattr(reader, "get_tweet_analytics", None)):
        return cast("AnalyticsReader", reader)
    return None


def record_followers(store: DurableStore, reader: XReader, *, now: datetime | None = None) -> int:
    """Snapshot every active account's follower count (``GET /2/users/{id}``)."""
    from xbot_assets.xapi.errors import XRateLimitError

    now = now or datetime.now(UTC)
    written = 0
    for account in store.list_accounts(active_only=True):
        if not account.x_user_id:
            continue
        try:
            user = reader.get_user(account.x_user_id, user_fields=("public_metrics",))
        except XRateLimitError as exc:  # X's window or the month's read budget is spent
            log.warning("follower counts not read: %s", exc)
            break
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
