"""The X API client's answers as types, and their parsing from X's JSON.

Shared by :class:`~xbot_assets.xapi.client.XApiClient` and the in-process sandbox reader
(``engine/runtime.py``), which parse the same bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from xbot_assets.xapi.errors import RateLimit, XNotFoundError, XServerError

MAX_IDS_PER_LOOKUP = 100
"""X accepts at most 100 ids per ``GET /2/tweets``."""

DEFAULT_TWEET_FIELDS = ("created_at", "public_metrics", "author_id", "conversation_id")

MAX_IDS_PER_ANALYTICS = 100
"""X accepts 1 to 100 ids per ``GET /2/tweets/analytics`` (``ids`` maxItems in the spec)."""

ANALYTICS_GRANULARITIES = ("hourly", "daily", "weekly", "total")
"""The spec's ``granularity`` values (default ``total``: one sum over the whole window)."""

ANALYTICS_FIELDS = frozenset(
    {
        "app_install_attempts", "app_opens", "bookmarks", "detail_expands", "email_tweet",
        "engagements", "follows", "hashtag_clicks", "id", "impressions", "likes", "media_views",
        "permalink_clicks", "quote_tweets", "replies", "retweets", "shares", "timestamp",
        "timestamped_metrics", "unfollows", "unlikes", "url_clicks", "user_profile_clicks",
    }
)  # fmt: skip
"""Every ``analytics.fields`` value of X's OpenAPI description."""

SANDBOX_ANALYTICS_FIELDS = frozenset({"negative_feedback", "reports"})
"""Counters only the sandbox X answers (real X has no such field and refuses them with 400)."""

DEFAULT_ANALYTICS_FIELDS = (
    "impressions", "likes", "retweets", "replies", "quote_tweets", "bookmarks",
    "user_profile_clicks", "follows", "unfollows", "engagements",
)  # fmt: skip


@dataclass(frozen=True)
class CreatedTweet:
    """What ``POST /2/tweets`` returned: the new post's id (X's, never invented) and text."""

    id: str
    text: str
    rate_limit: RateLimit = field(default_factory=RateLimit)


@dataclass(frozen=True)
class TweetsPage:
    """One answer of a tweet lookup or timeline read.

    Attributes:
        data: the posts as X returns them (``id``, ``text`` and the requested fields).
        errors: per-item problems (e.g. a deleted post in a multi-id lookup).
        next_token: pagination token of the next page (timelines only).
        rate_limit: the rate-limit headers of this answer.
    """

    data: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    includes: dict[str, Any] = field(default_factory=dict)
    next_token: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)


@dataclass(frozen=True)
class AnalyticsMetrics:
    """Counters of one post over one window (``None``: X did not return that field).

    The names are X's ``analytics.fields``; ``negative_feedback`` and ``reports`` are the
    sandbox's extension fields (always ``None`` from real X).
    """

    impressions: int | None = None
    likes: int | None = None
    retweets: int | None = None
    replies: int | None = None
    quote_tweets: int | None = None
    bookmarks: int | None = None
    user_profile_clicks: int | None = None
    follows: int | None = None
    unfollows: int | None = None
    engagements: int | None = None
    app_install_attempts: int | None = None
    app_opens: int | None = None
    detail_expands: int | None = None
    email_tweet: int | None = None
    hashtag_clicks: int | None = None
    media_views: int | None = None
    permalink_clicks: int | None = None
    shares: int | None = None
    unlikes: int | None = None
    url_clicks: int | None = None
    negative_feedback: int | None = None
    reports: int | None = None

    @classmethod
    def from_json(cls, raw: Any) -> AnalyticsMetrics:
        """Pick the known integer counters out of an X object; unknown keys are ignored."""
        if not isinstance(raw, dict):
            return cls()
        values: dict[str, int | None] = {}
        for f in fields(cls):
            value = raw.get(f.name)
            values[f.name] = int(value) if isinstance(value, (int, float)) else None
        return cls(**values)


@dataclass(frozen=True)
class AnalyticsBucket:
    """One entry of ``timestamped_metrics``: the counters of one granularity bucket."""

    timestamp: datetime | None
    metrics: AnalyticsMetrics


@dataclass(frozen=True)
class TweetAnalytics:
    """X's analytics of one post (one ``data`` item of ``GET /2/tweets/analytics``)."""

    id: str
    metrics: AnalyticsMetrics
    timestamp: datetime | None = None
    timestamped_metrics: tuple[AnalyticsBucket, ...] = ()


@dataclass(frozen=True)
class AnalyticsPage:
    """One answer of ``GET /2/tweets/analytics``.

    Attributes:
        data: one entry per post X answered for.
        errors: per-post problems (a deleted post, a post of another account).
        rate_limit: the rate-limit headers of this answer.
    """

    data: list[TweetAnalytics]
    errors: list[dict[str, Any]] = field(default_factory=list)
    rate_limit: RateLimit = field(default_factory=RateLimit)

    def by_id(self) -> dict[str, TweetAnalytics]:
        return {item.id: item for item in self.data}


def parse_analytics(body: Any, rate_limit: RateLimit | None = None) -> AnalyticsPage:
    """Type a ``GET /2/tweets/analytics`` body (shared with the in-process sandbox reader)."""
    rate_limit = rate_limit or RateLimit()
    if not isinstance(body, dict):
        raise XServerError(
            "X API GET /2/tweets/analytics answered with an unexpected body shape",
            rate_limit=rate_limit,
        )
    items: list[TweetAnalytics] = []
    for raw in body.get("data") or []:
        if not isinstance(raw, dict) or raw.get("id") is None:
            continue
        buckets = tuple(
            AnalyticsBucket(
                parse_time(b.get("timestamp")), AnalyticsMetrics.from_json(b.get("metrics"))
            )
            for b in raw.get("timestamped_metrics") or []
            if isinstance(b, dict)
        )
        items.append(
            TweetAnalytics(
                id=str(raw["id"]),
                metrics=AnalyticsMetrics.from_json(raw),
                timestamp=parse_time(raw.get("timestamp")),
                timestamped_metrics=buckets,
            )
        )
    return AnalyticsPage(data=items, errors=list(body.get("errors") or []), rate_limit=rate_limit)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_page(body: Any, rate_limit: RateLimit) -> TweetsPage:
    if not isinstance(body, dict):
        raise XServerError("X API answered with an unexpected body shape", rate_limit=rate_limit)
    meta = body.get("meta") or {}
    return TweetsPage(
        data=list(body.get("data") or []),
        errors=list(body.get("errors") or []),
        includes=dict(body.get("includes") or {}),
        next_token=meta.get("next_token"),
        rate_limit=rate_limit,
    )


def user_data(body: Any, who: str) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise XNotFoundError(f"X API: no user data for {who}")
    return data
