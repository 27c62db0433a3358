"""The learning engine: posteriors from history, and what was learned as plain config.

:func:`fit_arm_posteriors` replays the account's posts (oldest first) into a Thompson sampler
with an empirical-Bayes prior and an evidence cap both fitted from the same history.
:func:`learned_config` turns posteriors into the plain dict written to bot_config (best topics,
best slots, format weights), so operators see and can override what the bot learned.

Two objectives: ``engagement`` (X-weighted engagements per impression, the default) and
``growth`` (follows per impression; per post it is the follows a post earns), the seed's
FollowerGrowthOptimizer done as an alternative reward on the same machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from xbot_assets.learning.bandits import (
    DEFAULT_MAX_TRIALS,
    DEFAULT_PRIOR,
    ThompsonSampler,
    binomial_evidence,
    fit_beta_prior,
    fit_overdispersion,
)
from xbot_assets.learning.rewards import GROWTH_METRIC, weighted_engagements

Objective = Literal["engagement", "growth"]
OBJECTIVES: tuple[str, ...] = ("engagement", "growth")
ENGINE_VERSION = "1"


def post_evidence(
    row: dict[str, Any], *, objective: Objective = "engagement", max_trials: float | None = None
) -> tuple[float, float]:
    """(successes, trials) of one post under ``objective``.

    ``engagement``: reply-equivalents of X-weighted engagement out of impressions.
    ``growth``: follows out of impressions (follows per post, normalised by reach).
    """
    impressions = float(row.get("impressions") or 0)
    if objective == "growth":
        follows = float(row.get(GROWTH_METRIC) or 0)
        return binomial_evidence(follows, impressions, max_trials=max_trials, unit=1.0)
    if objective != "engagement":
        raise ValueError(f"unknown objective {objective!r}: use one of {OBJECTIVES}")
    return binomial_evidence(weighted_engagements(row), impressions, max_trials=max_trials)


def evidence_table(outcomes: pd.DataFrame, *, objective: Objective = "engagement") -> pd.DataFrame:
    """Per post: arm, hour, successes and trials (uncapped), oldest first."""
    columns = ["post_id", "arm", "format", "topic", "hour_local", "successes", "trials"]
    if outcomes.empty:
        return pd.DataFrame(columns=columns)
    frame = outcomes.copy()
    if "arm" not in frame or frame["arm"].isna().any():
        frame["arm"] = frame["format"].astype(str) + ":" + frame["topic"].astype(str)
    if "posted_at" in frame:
        order = pd.to_datetime(frame["posted_at"], utc=True).sort_values(kind="stable").index
        frame = frame.loc[order]
    pairs = [post_evidence(r, objective=objective) for r in frame.to_dict("records")]
    frame["successes"] = [p[0] for p in pairs]
    frame["trials"] = [p[1] for p in pairs]
    for name in ("post_id", "hour_local"):
        if name not in frame:
            frame[name] = None
    return frame[columns].reset_index(drop=True)


def fit_evidence_cap(evidence: pd.DataFrame, *, group: str = "arm") -> float:
    """Effective impressions per post (the overdispersion cap), arm effects removed."""
    if len(evidence) < 20:
        return DEFAULT_MAX_TRIALS
    s = evidence["successes"].to_numpy(dtype=float)
    n = evidence["trials"].to_numpy(dtype=float)
    keep = n > 0
    if keep.sum() < 20 or s[keep].sum() <= 0:
        return DEFAULT_MAX_TRIALS
    groups = evidence.loc[keep, group].astype(str)
    s, n = s[keep], n[keep]
    group_rate = (pd.Series(s, index=groups.index).groupby(groups).transform("sum")) / (
        pd.Series(n, index=groups.index).groupby(groups).transform("sum")
    )
    pooled = s.sum() / n.sum()
    scaled = np.minimum(s / np.maximum(group_rate.to_numpy(), 1e-12) * pooled, n)
    return fit_overdispersion(scaled, n, floor=20.0)


def fit_arm_posteriors(
    outcomes: pd.DataFrame,
    arms: Sequence[str],
    *,
    objective: Objective = "engagement",
    discount: float = 1.0,
    seed: int | None = None,
) -> tuple[ThompsonSampler, dict[str, Any]]:
    """A sampler over ``arms`` fitted on history, plus how it was fitted.

    The prior is the method-of-moments Beta over the arms' pooled evidence (cold start: the
    default weak prior, flagged); each post counts for at most the fitted evidence cap.
    Posts of arms not in ``arms`` still inform the prior and cap but not a posterior.
    """
    arms = list(arms)
    sampler = ThompsonSampler(len(arms), prior=DEFAULT_PRIOR, discount=discount, seed=seed)
    evidence = evidence_table(outcomes, objective=objective)
    info: dict[str, Any] = {
        "objective": objective,
        "posts": len(evidence),
        "cold_start": evidence.empty or float(evidence["trials"].sum()) <= 0,
        "discount": discount,
        "engine_version": ENGINE_VERSION,
    }
    if info["cold_start"]:
        info.update(prior=list(sampler.prior), max_trials=DEFAULT_MAX_TRIALS)
        return sampler, info
    cap = fit_evidence_cap(evidence)
    capped = [
        (s * min(1.0, cap / n), min(n, cap)) if n > 0 else (0.0, 0.0)
        for s, n in zip(evidence["successes"], evidence["trials"], strict=True)
    ]
    evidence["s_cap"] = [c[0] for c in capped]
    evidence["n_cap"] = [c[1] for c in capped]
    per_arm = evidence.groupby("arm")[["s_cap", "n_cap"]].sum()
    prior = fit_beta_prior(per_arm["s_cap"], per_arm["n_cap"], min_strength=2.0, max_strength=5e3)
    if prior == DEFAULT_PRIOR and len(per_arm) >= 1:
        # One arm seen so far: centre the prior on its rate, weakly.
        rate = float(per_arm["s_cap"].sum() / per_arm["n_cap"].sum())
        prior = (max(rate, 1e-4) * 20.0, max(1 - rate, 1e-4) * 20.0)
    sampler.set_prior(prior)
    index = {a: i for i, a in enumerate(arms)}
    for arm, s, n in zip(evidence["arm"], evidence["s_cap"], evidence["n_cap"], strict=True):
        if arm in index and n > 0:
            sampler.update(index[arm], float(s), float(n))
    info.update(prior=[round(p, 4) for p in prior], max_trials=round(cap, 2))
    return sampler, info


def _factor_posteriors(sampler: ThompsonSampler, arms: Sequence[str], part: int) -> pd.Series:
    """Posterior mean per format (part 0) or topic (part 1), pooling the arms' evidence."""
    frame = (
        pd.DataFrame(
            {
                "level": [a.split(":", 1)[part] for a in arms],
                "s": sampler.successes,
                "n": sampler.successes + sampler.failures,
            }
        )
        .groupby("level")[["s", "n"]]
        .sum()
    )
    alpha, beta = sampler.prior
    return ((frame["s"] + alpha) / (frame["n"] + alpha + beta)).sort_values(ascending=False)


def learned_config(
    sampler: ThompsonSampler,
    arms: Sequence[str],
    *,
    slot_sampler: ThompsonSampler | None = None,
    objective: Objective = "engagement",
    top_k: int = 3,
    fit_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What was learned, as a plain JSON-able dict for bot_config.

    Keys: ``best_topics``, ``best_slots`` (local hours), ``format_weights`` (posterior means
    normalised to sum to 1), ``arm_probabilities`` (P(best) per arm), ``objective``,
    ``cold_start`` and ``engine_version``.
    """
    arms = list(arms)
    topics = _factor_posteriors(sampler, arms, 1)
    formats = _factor_posteriors(sampler, arms, 0)
    weights = (formats / formats.sum()).round(4)
    p_best = sampler.choice_probabilities(4000)
    config: dict[str, Any] = {
        "objective": objective,
        "best_topics": topics.index[:top_k].tolist(),
        "topic_rates": {k: round(float(v), 6) for k, v in topics.items()},
        "format_weights": {k: float(v) for k, v in weights.items()},
        "arm_probabilities": {a: round(float(p), 4) for a, p in zip(arms, p_best, strict=True)},
        "engine_version": ENGINE_VERSION,
        "cold_start": bool((sampler.successes + sampler.failures).sum() == 0),
    }
    if slot_sampler is not None:
        means = slot_sampler.posterior_mean()
        evidence = slot_sampler.successes + slot_sampler.failures
        ranked = [int(h) for h in np.argsort(-means) if evidence[h] > 0]
        config["best_slots"] = ranked[:top_k]
    if fit_info:
        config["fit"] = {k: v for k, v in fit_info.items() if k != "objective"}
    return config
