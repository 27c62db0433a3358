"""The engagement reward: the one definition used by the warehouse (dbt) and the learning code.

Weights are X's published heavy-ranker weights (twitter/the-algorithm-ml,
projects/home/recap/README.md): what the ranking model values, so optimising them is optimising
for distribution. Quotes count like replies (a conversation), bookmarks like likes. The dbt
project reads these weights from a seed generated from this module; a test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Mapping

REWARD_WEIGHTS: dict[str, float] = {
    "replies": 13.5,
    "quotes": 13.5,
    "profile_clicks": 12.0,
    "reposts": 1.0,
    "likes": 0.5,
    "bookmarks": 0.5,
    "negative_feedback": -74.0,
    "reports": -369.0,
}
"""Weight of each engagement type, keyed by the shared metric names."""

GROWTH_METRIC = "follows"
"""The growth objective: follows earned per post (an alternative reward)."""

GROWTH_WEIGHTS: dict[str, float] = {"follows": 1.0, "profile_clicks": 0.1}
"""The ``growth`` objective's weights: a follow, plus a profile click counted as a tenth of a
follow (a visit to the profile is the step before following; about one in ten converts)."""


def weighted_engagements(metrics: Mapping[str, float]) -> float:
    """Sum of engagements weighted by :data:`REWARD_WEIGHTS` (missing metrics count as 0)."""
    return sum(weight * float(metrics.get(name, 0) or 0) for name, weight in REWARD_WEIGHTS.items())


def engagement_reward(metrics: Mapping[str, float]) -> float:
    """Weighted engagements per impression; 0 for a post nobody saw yet."""
    impressions = float(metrics.get("impressions", 0) or 0)
    if impressions <= 0:
        return 0.0
    return weighted_engagements(metrics) / impressions
