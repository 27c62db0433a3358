"""How the sandbox writes its posts and users as X API v2 JSON (fields, timestamps, metrics).

Pure functions of a post or account and the counts the audience engine reports: the API surface
(:mod:`.api`) decides *what* to answer, this module decides how it *looks*.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from xbot_assets.sandbox import errors
from xbot_assets.sandbox.features import hashtags_with_spans, links_with_spans
from xbot_assets.sandbox.state import Account, Post
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_ACTIONS, METRICS

POST_FIELDS = frozenset(
    {
        "attachments", "author_id", "card_uri", "community_id", "context_annotations",
        "conversation_id", "created_at", "display_text_range", "edit_controls",
        "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
        "non_public_metrics", "organic_metrics", "possibly_sensitive", "promoted_metrics",
        "public_metrics", "referenced_tweets", "reply_settings", "scopes", "source", "text",
        "withheld", "article", "article_title", "matched_media_notes", "media_metadata",
        "note_post", "note_request_suggestions", "paid_partnership", "suggested_source_links",
        "suggested_source_links_with_counts", "note_tweet",
    }
)  # fmt: skip
USER_FIELDS = frozenset(
    {
        "affiliation", "confirmed_email", "connection_status", "created_at", "description",
        "entities", "id", "is_identity_verified", "location", "most_recent_tweet_id",
        "most_recent_post_id", "name", "parody", "pinned_tweet_id", "pinned_post_id",
        "profile_banner_url", "profile_image_url", "protected", "public_metrics",
        "receives_your_dm", "subscribes_to_you", "subscription", "subscription_type", "url",
        "username", "verified", "verified_followers_count", "verified_type", "withheld",
    }
)  # fmt: skip
ANALYTICS_FIELDS = frozenset(
    {
        "app_install_attempts", "app_opens", "bookmarks", "detail_expands", "email_tweet",
        "engagements", "follows", "hashtag_clicks", "id", "impressions", "likes", "media_views",
        "permalink_clicks", "quote_tweets", "replies", "retweets", "shares", "timestamp",
        "timestamped_metrics", "unfollows", "unlikes", "url_clicks", "user_profile_clicks",
    }
)  # fmt: skip
ANALYTICS_EXTENSION_FIELDS = frozenset({"negative_feedback", "reports"})
"""Sandbox-only analytics fields (real X does not expose them); returned only when asked for."""


def iso(when: datetime) -> str:
    """X's timestamp format: ``2026-01-05T10:00:00.000Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(value: str, parameter: str) -> datetime:
    """An RFC 3339 timestamp from a query parameter (400 when malformed or naive)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.invalid_request(
            f"Invalid '{parameter}':'{value}'. '{parameter}' must be a RFC 3339 timestamp "
            "(YYYY-MM-DDTHH:mm:ssZ).",
            parameter,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def choose_fields(
    fields: str | Sequence[str] | None, allowed: frozenset[str], name: str
) -> set[str]:
    """The requested ``*.fields`` (400 naming the first unknown one, as X does)."""
    if fields is None:
        return set()
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    chosen = {item.strip() for item in items if item.strip()}
    unknown = sorted(chosen - allowed)
    if unknown:
        raise errors.invalid_request(
            f"The `{name}` query parameter value [{unknown[0]}] is not one of "
            f"[{', '.join(sorted(allowed))}]",
            name,
        )
    return chosen


def page_token(offset: int) -> str:
    """An opaque pagination token for a timeline offset."""
    return base64.b32hexencode(str(offset).encode()).decode().rstrip("=").lower()


def page_offset(token: str) -> int:
    """The offset behind :func:`page_token` (ValueError when it is not one)."""
    return int(base64.b32hexdecode(token.upper() + "=" * (-len(token) % 8)).decode())


def x_text(text: str) -> str:
    """A post's text as X's API answers with it: ``&``, ``<`` and ``>`` as HTML entities
    (``&amp;``, ``&lt;``, ``&gt;``), in reads and in the create answer alike, while entity spans
    count in the text as typed. Clients must unescape (``posting.base.text_from_x``); a client
    that did not would miss its own post "Tips & tricks" when it looks for it by text."""
    return html.escape(text, quote=False)


def render_post(
    post: Post, fields: set[str], viewer: Account | None, counts: Iterable[Any], now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A post as X's ``data`` item, and the per-field errors X adds (private metrics)."""
    data: dict[str, Any] = {
        "id": post.id,
        "text": x_text(post.text),
        "edit_history_tweet_ids": [post.id],
    }
    problems: list[dict[str, Any]] = []
    c = dict(zip(METRICS, (int(x) for x in counts), strict=True))
    if "created_at" in fields:
        data["created_at"] = iso(post.created_at)
    if "author_id" in fields:
        data["author_id"] = post.account.id
    if "conversation_id" in fields:
        data["conversation_id"] = post.conversation_id
    if "lang" in fields:
        data["lang"] = "en"
    if "possibly_sensitive" in fields:
        data["possibly_sensitive"] = False
    if "reply_settings" in fields:
        data["reply_settings"] = "everyone"
    if "source" in fields:
        data["source"] = "xbot sandbox"
    if post.reply_to is not None:
        if "in_reply_to_user_id" in fields:
            data["in_reply_to_user_id"] = post.reply_to.account.id
        if "referenced_tweets" in fields:
            refs = [{"type": "replied_to", "id": post.reply_to.id}]
            data["referenced_tweets"] = refs
            data["referenced_posts"] = refs  # the spec's name for the same list
    if "entities" in fields:
        entities: dict[str, Any] = {}
        tags = hashtags_with_spans(post.text)
        if tags:
            entities["hashtags"] = [{"start": s, "end": e, "tag": t} for s, e, t in tags]
        urls = links_with_spans(post.text)
        if urls:
            entities["urls"] = [
                {"start": s, "end": e, "url": u, "expanded_url": u, "display_url": u}
                for s, e, u in urls
            ]
        if entities:
            data["entities"] = entities
    if "public_metrics" in fields:
        data["public_metrics"] = {
            "retweet_count": c["reposts"],
            "repost_count": c["reposts"],
            "reply_count": c["replies"],
            "like_count": c["likes"],
            "quote_count": c["quotes"],
            "bookmark_count": c["bookmarks"],
            "impression_count": c["impressions"],
        }
    private = {"non_public_metrics", "organic_metrics"} & fields
    for name in sorted(private):
        owner = viewer is not None and viewer is post.account
        recent = now - post.created_at <= timedelta(days=30)
        if not (owner and recent):
            problems.append(errors.field_not_authorized(post.id, name))
            continue
        if name == "non_public_metrics":
            data[name] = {
                "impression_count": c["impressions"],
                "url_link_clicks": 0,
                "user_profile_clicks": c["profile_clicks"],
            }
        else:
            data[name] = {
                "impression_count": c["impressions"],
                "like_count": c["likes"],
                "reply_count": c["replies"],
                "retweet_count": c["reposts"],
                "url_link_clicks": 0,
                "user_profile_clicks": c["profile_clicks"],
            }
    return data, problems


def render_user(account: Account, fields: set[str], followers: float) -> dict[str, Any]:
    """An account as X's user ``data`` object."""
    data: dict[str, Any] = {"id": account.id, "name": account.name, "username": account.handle}
    live = [p for p in account.posts if p.deleted_at is None]
    if "created_at" in fields:
        data["created_at"] = iso(account.created_at)
    if "description" in fields:
        data["description"] = "A simulated account in the xbot sandbox."
    if "protected" in fields:
        data["protected"] = False
    if "verified" in fields:
        data["verified"] = False
    if "verified_type" in fields:
        data["verified_type"] = "none"
    if "profile_image_url" in fields:
        data["profile_image_url"] = "https://pbs.twimg.com/profile_images/default_normal.png"
    if "url" in fields:
        data["url"] = ""
    if ("most_recent_tweet_id" in fields or "most_recent_post_id" in fields) and live:
        newest = max(live, key=lambda p: (p.created_at, p.seq)).id
        data["most_recent_tweet_id" if "most_recent_tweet_id" in fields else
             "most_recent_post_id"] = newest  # fmt: skip
    if "public_metrics" in fields:
        data["public_metrics"] = {
            "followers_count": int(followers),
            "following_count": account.following,
            "tweet_count": len(live),
            "post_count": len(live),
            "listed_count": max(account.initial_followers // 150, 0),
            "like_count": 0,
            "media_count": 0,
        }
    return data


def analytics_metrics(
    hi_counts: Sequence[int], lo_counts: Sequence[int], chosen: set[str], unfollow: float
) -> dict[str, int]:
    """The analytics fields in ``chosen`` for the counts gained between two times."""
    hi = dict(zip(METRICS, hi_counts, strict=True))
    lo = dict(zip(METRICS, lo_counts, strict=True))
    d = {k: int(hi[k] - lo[k]) for k in METRICS}
    engagements = sum(d[k] for k in ENGAGEMENT_ACTIONS)
    values = {
        "impressions": d["impressions"],
        "likes": d["likes"],
        "retweets": d["reposts"],
        "replies": d["replies"],
        "quote_tweets": d["quotes"],
        "bookmarks": d["bookmarks"],
        "user_profile_clicks": d["profile_clicks"],
        "follows": d["follows"],
        "unfollows": int(d["negative_feedback"] * unfollow),
        "engagements": engagements,
        "negative_feedback": d["negative_feedback"],
        "reports": d["reports"],
    }
    zero = {"app_install_attempts", "app_opens", "detail_expands", "email_tweet",
            "hashtag_clicks", "media_views", "permalink_clicks", "shares", "unlikes",
            "url_clicks"}  # fmt: skip
    out = {k: v for k, v in values.items() if k in chosen}
    out.update({k: 0 for k in zero & chosen})
    return out
