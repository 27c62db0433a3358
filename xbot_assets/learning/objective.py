"""The objective: what one post's counts are worth, the same everywhere (fit, policy, reports).

:func:`reward_of` is the signed, X-weighted engagements per impression (or the ``growth``
objective's follows); :func:`reward_components` splits it into parts that sum to it (every
positive metric together, each negative metric alone), and :func:`winsorise` limits a reward to
median +/- :data:`WINSOR_K` robust SD, so a viral post counts as a very good post, not as forty.

Pure: numpy only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from xbot_assets.learning.rewards import GROWTH_WEIGHTS, REWARD_WEIGHTS

Objective = Literal["engagement", "growth"]
OBJECTIVES: tuple[str, ...] = ("engagement", "growth")
WINSOR_K = 4.0
"""Winsorise rewards at median +/- WINSOR_K robust standard deviations (1.4826 x MAD)."""


def objective_weights(objective: str) -> dict[str, float]:
    """The metric weights of an objective (engagement: X's heavy-ranker weights)."""
    if objective == "engagement":
        return dict(REWARD_WEIGHTS)
    if objective == "growth":
        return dict(GROWTH_WEIGHTS)
    raise ValueError(f"unknown objective {objective!r}: use one of {OBJECTIVES}")


def reward_of(metrics: Mapping[str, Any], objective: str = "engagement") -> float | None:
    """Signed weighted engagements per impression (None when nobody saw the post yet)."""
    impressions = float(metrics.get("impressions") or 0)
    if impressions <= 0:
        return None
    weights = objective_weights(objective)
    total = sum(w * float(metrics.get(m) or 0) for m, w in weights.items())
    return total / impressions


def reward_components(
    metrics: Mapping[str, Any], objective: str = "engagement"
) -> dict[str, float] | None:
    """:func:`reward_of` split into parts that sum to it: every positive-weight metric together
    (``positive``), and each negative-weight metric on its own (``negative_feedback``,
    ``reports``). None when nobody saw the post yet.

    Why: a report weighs -369 and arrives about once in 400 impressions, so one report moves a
    post's reward by about -1; the rare negative counts carry most of a post's reward noise
    (SD ~0.1 each vs ~0.05 for all positive metrics together) but little of the difference
    between arms. Fitted apart, each part gets its own noise and a prior scaled to its own
    mean, so the rare parts stop drowning the arm effects the positive part measures.
    """
    impressions = float(metrics.get("impressions") or 0)
    if impressions <= 0:
        return None
    weights = objective_weights(objective)
    out = {"positive": 0.0}
    for metric, weight in weights.items():
        value = weight * float(metrics.get(metric) or 0) / impressions
        if weight >= 0:
            out["positive"] += value
        else:
            out[metric] = value
    return out


def component_names(objective: str) -> tuple[str, ...]:
    """The reward parts of an objective (see :func:`reward_components`)."""
    negative = tuple(m for m, w in objective_weights(objective).items() if w < 0)
    return ("positive", *negative)


def winsorise(values: np.ndarray, k: float = WINSOR_K) -> tuple[np.ndarray, tuple[float, float]]:
    """Values limited to median +/- k robust SD; also returns the bounds.

    Not clipping at 0: negative rewards (negative feedback, reports) keep their sign. With fewer
    than 5 values nothing is changed (no robust scale yet).
    """
    v = np.asarray(values, dtype=float)
    if v.size < 5:
        return v.copy(), (-math.inf, math.inf)
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    if mad <= 0:
        return v.copy(), (-math.inf, math.inf)
    lo, hi = med - k * mad, med + k * mad
    return np.clip(v, lo, hi), (lo, hi)
