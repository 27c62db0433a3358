"""The sandbox's one home for the names it shares with xbot: formats, topics, metrics, horizons.

The sandbox imports nothing from xbot (its hidden truth must not leak into a policy), so it keeps
this copy of xbot's ``xbot_assets/vocabulary.py``; ``tests/test_vocabulary.py`` checks the two
agree name for name and order for order. Every sandbox module reads the names from here.
"""

from __future__ import annotations

FORMATS: tuple[str, ...] = ("single", "thread", "question", "list", "hot_take", "how_to")
"""The six post formats, in the order used for arm indices."""

TOPICS: tuple[str, ...] = (
    "ai",
    "python",
    "data_science",
    "startups",
    "productivity",
    "career",
    "open_source",
    "devops",
)
"""Every topic the audience recognises, in tie-break order; `other` is the fallback."""

OTHER_TOPIC = "other"

METRICS: tuple[str, ...] = (
    "impressions",
    "likes",
    "reposts",
    "replies",
    "quotes",
    "bookmarks",
    "profile_clicks",
    "follows",
    "negative_feedback",
    "reports",
)
"""Shared metric names; `impressions` first, then every per-impression engagement."""

ENGAGEMENT_METRICS: tuple[str, ...] = METRICS[1:]
"""The per-impression counts (every metric but ``impressions``)."""

ENGAGEMENT_ACTIONS: tuple[str, ...] = METRICS[1:7]
"""The counts X adds up as a post's "engagements" (likes through profile clicks)."""

HORIZONS: dict[str, float] = {"1h": 1.0, "6h": 6.0, "24h": 24.0, "72h": 72.0}
"""Measurement horizons and their age in hours."""
