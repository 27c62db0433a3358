"""Synthetic ``fct_post_outcomes`` rows with known effects, for tests, notebooks and demos.

The true expected reward of every arm is known, so a learner's answer can be checked against
it (the sandbox is the realistic simulator; this is the small, exact one).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from xbot_assets.learning.rewards import REWARD_WEIGHTS
from xbot_assets.vocabulary import DEFAULT_TOPICS as TOPICS
from xbot_assets.vocabulary import FORMATS, METRIC_NAMES

ARMS = tuple(f"{f}:{t}" for f in FORMATS for t in TOPICS)

_TEXT = {
    "single": "Shipping beats polishing. {kw} teams learn this the hard way.",
    "thread": "A thread on {kw}: what I learned in 3 years.",
    "question": "What is the one {kw} habit you would never drop?",
    "list": "{kw} checklist:\n1. measure\n2. simplify\n3. ship",
    "hot_take": "Hot take: most {kw} advice is wrong.",
    "how_to": "How to get better at {kw} in 30 days",
}
_KEYWORD = {"ai": "LLM", "python": "Python", "data_science": "SQL", "startups": "startup"}
OUTCOME_COLUMNS = [
    "post_id",
    "account",
    "environment",
    "posted_at",
    "hour_local",
    "weekday_local",
    "format",
    "topic",
    "arm",
    "text",
    "text_length",
    "n_hashtags",
    "has_link",
    "has_question",
    "has_number",
    "thread_length",
    "hook_type",
    *METRIC_NAMES,
    "reward",
    "propensity",
    "expected_reward",
]
"""``fct_post_outcomes`` columns (``beats_median`` is added last) plus the synthetic truth."""


def true_arm_rates(seed: int = 0, spread: float = 0.4) -> dict[str, float]:
    """Expected weighted engagements per impression of every arm (format x topic effects)."""
    rng = np.random.default_rng(seed)
    fmt = dict(zip(FORMATS, rng.normal(0, spread, len(FORMATS)), strict=True))
    top = dict(zip(TOPICS, rng.normal(0, spread * 0.7, len(TOPICS)), strict=True))
    return {f"{f}:{t}": float(0.06 * np.exp(fmt[f] + top[t])) for f in FORMATS for t in TOPICS}


def hour_effect(hour: int) -> float:
    """Multiplier on engagement by local hour: evenings are good, nights are bad."""
    return float(np.exp(0.35 * np.cos(2 * np.pi * (hour - 19) / 24.0)))


def synthetic_post_outcomes(
    n_posts: int,
    *,
    seed: int = 0,
    rates: dict[str, float] | None = None,
    arm_probabilities: np.ndarray | None = None,
    account: str = "sandbox",
    start: datetime | None = None,
) -> pd.DataFrame:
    """``n_posts`` posted posts with engagement drawn from known per-arm rates.

    Args:
        n_posts: rows to make.
        seed: random seed.
        rates: expected weighted engagement per impression per arm (default
            :func:`true_arm_rates`).
        arm_probabilities: logging policy (probability per arm in ``ARMS`` order), uniform by
            default; stored as ``propensity`` so off-policy evaluation can be checked.
        account: the account name.
        start: first post time (UTC).
    """
    rng = np.random.default_rng(seed)
    rates = rates or true_arm_rates(seed)
    probs = np.full(len(ARMS), 1 / len(ARMS)) if arm_probabilities is None else arm_probabilities
    start = start or datetime(2026, 1, 5, 8, tzinfo=UTC)
    rows: list[dict[str, object]] = []
    when = start
    for _ in range(n_posts):
        when = when + timedelta(minutes=int(rng.integers(60, 180)))
        arm_index = int(rng.choice(len(ARMS), p=probs))
        arm = ARMS[arm_index]
        fmt, topic = arm.split(":")
        text = _TEXT[fmt].format(kw=_KEYWORD[topic])
        if rng.random() < 0.3:
            text += " #" + topic
        impressions = int(rng.lognormal(6.5, 0.5)) + 10
        rate = rates[arm] * hour_effect(when.hour) * rng.lognormal(-0.08, 0.4)
        # Split the expected weighted engagement across types in fixed shares.
        replies = rng.poisson(impressions * rate * 0.45 / REWARD_WEIGHTS["replies"])
        profile_clicks = rng.poisson(impressions * rate * 0.25 / REWARD_WEIGHTS["profile_clicks"])
        likes = rng.poisson(impressions * rate * 0.2 / REWARD_WEIGHTS["likes"])
        reposts = rng.poisson(impressions * rate * 0.1 / REWARD_WEIGHTS["reposts"])
        follows = rng.poisson(impressions * rate * 0.01)
        drawn = {
            "impressions": impressions,
            "likes": likes,
            "reposts": reposts,
            "replies": replies,
            "profile_clicks": profile_clicks,
            "follows": follows,
        }
        metrics = {name: drawn.get(name, 0) for name in METRIC_NAMES}  # the rest stay at 0
        weighted = sum(REWARD_WEIGHTS[k] * float(metrics.get(k, 0)) for k in REWARD_WEIGHTS)
        rows.append(
            {
                "post_id": f"p{len(rows):06d}",
                "account": account,
                "environment": "local",
                "posted_at": when,
                "hour_local": when.hour,
                "weekday_local": when.weekday(),
                "format": fmt,
                "topic": topic,
                "arm": arm,
                "text": text,
                "text_length": len(text),
                "n_hashtags": text.count("#"),
                "has_link": False,
                "has_question": "?" in text,
                "has_number": any(c.isdigit() for c in text),
                "thread_length": 4 if fmt == "thread" else 1,
                "hook_type": None,
                **metrics,
                "reward": weighted / impressions,
                "propensity": float(probs[arm_index]),
                "expected_reward": rates[arm] * hour_effect(when.hour),
            }
        )
    frame = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    rolling = frame["reward"].shift(1).rolling(50, min_periods=1).median()
    frame["beats_median"] = (frame["reward"] > rolling).where(rolling.notna())
    return frame
