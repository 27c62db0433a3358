"""xbot's one home for the names the whole bot shares: formats, topics, metrics and horizons.

The store's tables, the warehouse's raw schema, the learners, the engine and the reports all
spell these the same way because they import them from here. The sandbox keeps its own copy
(``xbot_assets/sandbox/vocabulary.py``; it imports nothing from xbot so its hidden truth cannot
leak into a policy), and ``tests/test_vocabulary.py`` checks the two agree and that no other
module repeats one of these lists.

To add a metric: add it here *and* in the sandbox's vocabulary, then give the store a migration
(``store/migrations``) and the warehouse a column (``warehouse/raw_schema.py`` derives its list
from here; the dbt models name their columns).
"""

from __future__ import annotations

from typing import Final

FORMATS: Final[tuple[str, ...]] = ("single", "thread", "question", "list", "hot_take", "how_to")
"""The six post formats, in the shared order (arm indices follow it)."""

DEFAULT_TOPICS: Final[tuple[str, ...]] = ("ai", "python", "data_science", "startups")
"""The default account's four topics (4 x 6 = 24 arms)."""

EXTRA_TOPICS: Final[tuple[str, ...]] = ("productivity", "career", "open_source", "devops")
"""Topics that scenarios may add."""

ALL_TOPICS: Final[tuple[str, ...]] = DEFAULT_TOPICS + EXTRA_TOPICS
"""Every topic, in the tie-breaking order of the shared conventions."""

METRIC_NAMES: Final[tuple[str, ...]] = (
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
"""Every counted metric of a post: ``impressions`` first, then each per-impression count."""

ENGAGEMENT_METRICS: Final[tuple[str, ...]] = METRIC_NAMES[1:]
"""The per-impression counts (every metric but ``impressions``)."""

ENGAGEMENT_ACTIONS: Final[tuple[str, ...]] = METRIC_NAMES[1:7]
"""The counts X adds up as a post's "engagements" (likes through profile clicks); none of them
can exceed the post's impressions."""

HORIZON_HOURS: Final[dict[str, float]] = {"1h": 1.0, "6h": 6.0, "24h": 24.0, "72h": 72.0}
"""Snapshot horizons after posting and their age in hours; the last is a post's final outcome."""

HORIZONS: Final[tuple[str, ...]] = tuple(HORIZON_HOURS)
"""The horizon names, earliest first."""
