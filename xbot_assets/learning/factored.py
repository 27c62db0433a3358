"""The factored Bayesian policy: one Gaussian linear model of the per-post reward, sampled by
Thompson sampling over every arm at the slot.

Why factored: 24 independent arms each see two or three posts a month, so each arm's posterior
stays wide (or, with a strong fitted prior, wrongly narrow). A model with additive format, topic,
hour and weekday effects shares evidence across arms (every ``thread:*`` post informs the thread
effect), and its recency covariates let it see what the audience punishes: the same topic or
format again soon, and text similar to the last posts.

The model (all effects additive on the reward scale)::

    reward_i = x_i . beta + e_i,   e_i ~ Normal(0, v_i),   beta ~ Normal(0, diag(prior_sd^2))
    v_i = (sigma0^2 + kappa / impressions_i) * 2^(age_i / half_life)

``x_i``: intercept; format and topic one-hots; local-hour harmonics and weekend; recency covariates
from the account's own history before the post (decayed counts of same-topic posts at 12 h and
48 h half-lives, "topic not seen for 7 days", decayed same-format count); text covariates of the
post (max word-Jaccard similarity to the last week's posts, near-duplicate flag, length, hashtags,
link, number). ``v_i`` is the calibrated noise model: a content-quality term ``sigma0^2`` plus a
counting term ``kappa / impressions`` (fewer impressions, noisier rate), both fitted by method of
moments on the residuals; old posts are down-weighted (half-life) so drifting tastes are tracked.

The reward is :func:`~xbot_assets.learning.objective.reward_of` (signed, X-weighted
engagements per impression; or the ``growth`` objective), **winsorised** at median +/- 4 robust
SD (:func:`~xbot_assets.learning.objective.winsorise`): a viral post counts as a very good post,
not as forty. The same function gives the reward everywhere (fit, policy, reports). Partial
snapshots (>= 6 h old) are projected to their final counts by
:class:`~xbot_assets.learning.horizon.HorizonModel`, so posteriors do not wait for the 72 h
snapshot.

Two models share this design, the posterior type and the Thompson sampler (``FitConfig.model``):
``counts`` (the default since 6 December 2026, :mod:`~xbot_assets.learning.counts`) learns the
same effects on the log-rate scale from every engagement count with impressions as exposure and
values an arm as the expected X-weighted reward
(:meth:`~xbot_assets.learning.posterior.FactoredPosterior.value`), which learns arms faster than
the reward's noise allows (benchmarks/README.md, "The count model"); ``reward_parts`` is the
linear model of the reward described above, kept for comparison.

This module is the fit (:class:`FitConfig`, :func:`fit_factored`, :func:`training_rows`). What it
fits with lives beside it: the rows ``x_i`` in :mod:`~xbot_assets.learning.design` (``PastPost``,
``Design``), the reward in :mod:`~xbot_assets.learning.objective`, the partial-snapshot
projection in :mod:`~xbot_assets.learning.horizon`; what it returns, and the Thompson sampler
over it, in :mod:`~xbot_assets.learning.posterior` (``FactoredPosterior``, ``FactoredThompson``).

Pure: numpy only, no I/O. The sandbox's truth is never read here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from xbot_assets.learning.counts import MIX_PRIOR_EVENTS, NEG_PRIOR_EVENTS, _posterior, fit_counts
from xbot_assets.learning.design import TOPIC_HALF_LIVES_H, Design, PastPost
from xbot_assets.learning.horizon import HORIZON_HOURS, MIN_HORIZON_HOURS, HorizonModel
from xbot_assets.learning.objective import (
    component_names,
    objective_weights,
    reward_components,
    winsorise,
)
from xbot_assets.learning.posterior import FactoredPosterior

DEFAULT_SCALE: dict[str, float] = {"engagement": 0.05, "growth": 0.001}
"""Typical reward magnitude per objective, used to set priors before any data (cold start)."""


@dataclass
class FitConfig:
    """Knobs of :func:`fit_factored` (defaults are what the loop benchmark measures)."""

    objective: str = "engagement"
    min_horizon_hours: float = MIN_HORIZON_HOURS
    half_life_days: float = 45.0
    """Evidence half-life: a post this old counts half (tracks drifting tastes)."""
    effect_prior_scale: float = 0.5
    """Prior SD of a format/topic effect, as a fraction of the typical reward."""
    model: str = "counts"
    """``counts``: arm effects from every engagement count (:mod:`~xbot_assets.learning.counts`,
    the default since 6 December 2026); ``reward_parts``: the linear model of the reward in
    three parts (positive, negative feedback, reports), kept as the comparison."""
    count_prior_sd: dict[str, float] = field(default_factory=dict)
    """Overrides of the count model's log-scale prior SD per design group
    (:data:`~xbot_assets.learning.counts.LOG_PRIOR_SD`)."""
    count_prior_mean: dict[str, float] = field(default_factory=dict)
    """Prior means of named effects in the count model (log scale; 0 when not given)."""
    arm_interactions: bool = False
    """Add a format x topic effect per arm, shrunk towards 0 (the additive model) by a prior
    of ``interaction_prior_scale`` x the typical reward: the audience's effects multiply."""
    interaction_prior_scale: float = 0.25
    exploration: float = 0.25
    """Scale of the Thompson draws' spread around the posterior mean (1: plain Thompson
    sampling). Loop benchmark, default, 30 days, seeds 0-3: the reward-parts model measured
    best at 0.5 (+0.006 per post over 1.0; 0.0637 at 0.25 against 0.0713 at 0.5); the count
    model, whose posterior is better informed, at 0.25 (0.0779, against 0.0731 at 0.5 and 0.0620
    at 0.1: too greedy locks onto an early leader). With ~120 posts a month, plain draws spend
    too many posts on arms the posterior already ranks low."""
    exploration_late: float | None = 0.1
    """The spread scale falls linearly from ``exploration`` (held for the first
    ``exploration_hold_posts`` fitted posts) to this at ``exploration_posts``, and stays there:
    explore while the arms are unknown, exploit more once the posterior knows them (None: a
    constant ``exploration``). Loop benchmark, default, 90 days, 8 seeds, paired with the
    constant 0.25: +0.0020 per post (95 % CI −0.0015 to +0.0054, 6/8; +0.0011, CI +0.0001 to
    +0.0021, before the benchmark modelled the store's unique key), drift over 90 days −0.0005
    (−0.0039 to +0.0029); a month's decisions are unchanged (benchmarks/README.md, "Longer
    runs"). Falling from the first post instead (0.4 -> 0.2 at 120) was no better at 30 days."""
    exploration_posts: int = 360
    exploration_hold_posts: int = 120
    """The schedule starts falling only after this many fitted posts (the account's own, see
    ``account_policy``): the first month, 4 posts a day, draws exactly as at ``exploration``."""
    topic_half_lives: tuple[float, ...] = TOPIC_HALF_LIVES_H
    """Half-lives (hours) of the two decayed same-topic exposure covariates (the fatigue)."""
    neg_prior_events: float = NEG_PRIOR_EVENTS
    """Count model: pseudo-events pulling a format's negative rate towards the pooled rate
    (:data:`~xbot_assets.learning.counts.NEG_PRIOR_EVENTS`)."""
    neg_prior_log_ratio: dict[str, float] = field(default_factory=dict)
    """Count model: ``metric:format`` -> log ratio of the format's prior negative rate to the
    pooled one (a population prior, ``learning/population_prior.py``; empty: the pooled rate)."""
    mix_prior_share: dict[str, list[float]] = field(default_factory=dict)
    """Count model: per format, the prior share of each positive metric (a population prior;
    empty: the account's all-format mix)."""
    mix_prior_events: float = MIX_PRIOR_EVENTS
    opening_format_posts: int = 0
    """Experiment (off: 0): until every format has this many of the account's posts, choose
    only among the least-posted formats' arms (a balanced opening, against the draws' lock-in on
    one or two formats). Loop benchmark, default, 30 days, text prior, 24 seeds: +0.0013 a post
    with 2 (95 % CI −0.0019 to +0.0046), so not the default (benchmarks/README.md)."""
    format_exploration: float | None = None
    """Experiment (off: None): a separate spread scale for the format effects and the formats'
    negative rates, so rarely posted formats are still tried (how_to got 2 posts of 120)."""

    def exploration_at(self, posts: int) -> float:
        """The draws' spread scale after ``posts`` fitted posts (the schedule, if any)."""
        if self.exploration_late is None:
            return self.exploration
        span = max(self.exploration_posts - self.exploration_hold_posts, 1)
        share = min(max((posts - self.exploration_hold_posts) / span, 0.0), 1.0)
        return self.exploration + share * (self.exploration_late - self.exploration)


def _prior_sd(design: Design, scale: float, config: FitConfig) -> np.ndarray:
    sd = np.empty(design.n_features)
    for i, group in enumerate(design.groups):
        if group == "intercept":
            sd[i] = 4.0 * scale
        elif group in ("format", "topic"):
            sd[i] = config.effect_prior_scale * scale
        elif group == "arm":
            sd[i] = config.interaction_prior_scale * scale
        elif group == "time":
            sd[i] = 0.3 * scale
        else:  # recency and text covariates: one unit (a recent post, full similarity)
            sd[i] = 0.5 * scale
    return sd


def training_rows(
    history: Sequence[PastPost],
    design: Design,
    *,
    now: datetime,
    objective: str,
    horizon_model: HorizonModel,
    min_horizon_hours: float = MIN_HORIZON_HOURS,
    cache: dict[Any, np.ndarray] | None = None,
    counts: dict[str, list[Any]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(X, reward parts ``[n, parts]``, impressions, age in days, horizons used) of the posts
    usable at ``now``; the parts are :func:`component_names` (they sum to the reward).

    ``counts``, when given, receives per post the projected counts of the objective's metrics
    (``counts``), projected impressions (``impressions``) and the observed share of the
    projected counts (``observed``), for the count model (:mod:`~xbot_assets.learning.counts`).
    """
    names = component_names(objective)
    metrics = list(objective_weights(objective))
    xs, ys, imps, ages = [], [], [], []
    used: dict[str, int] = {}
    for i, post in enumerate(history):
        if post.metrics is None or post.horizon is None:
            continue
        if HORIZON_HOURS.get(post.horizon, 0.0) < min_horizon_hours:
            continue
        if now - post.posted_at < timedelta(hours=min_horizon_hours):
            continue
        projected = horizon_model.project(post.metrics, post.horizon)
        parts = reward_components(projected, objective)
        if parts is None:
            continue
        key = (post.posted_at, post.text, post.format, post.topic)
        row = cache.get(key) if cache is not None else None
        if row is None:
            row = design.row(post.format, post.topic, post.posted_at, history[:i], post.text)
            if cache is not None:
                cache[key] = row
        xs.append(row)
        ys.append([parts[c] for c in names])
        imps.append(max(float(post.metrics.get("impressions") or 0), 1.0))
        if counts is not None:
            raw = sum(float(post.metrics.get(m) or 0) for m in metrics)
            proj = sum(float(projected.get(m) or 0) for m in metrics)
            share = raw / proj if proj > 0 else horizon_model.share(post.horizon, metrics[0])
            counts.setdefault("counts", []).append([float(projected.get(m) or 0) for m in metrics])
            counts.setdefault("impressions", []).append(float(projected.get("impressions") or 0))
            counts.setdefault("observed", []).append(min(max(share, 0.05), 1.0))
        ages.append((now - post.posted_at).total_seconds() / 86400.0)
        used[post.horizon] = used.get(post.horizon, 0) + 1
    p = design.n_features
    return (
        np.array(xs).reshape(-1, p),
        np.array(ys, dtype=float).reshape(-1, len(names)),
        np.array(imps, dtype=float),
        np.array(ages, dtype=float),
        used,
    )


def _fit_part(
    x: np.ndarray,
    y: np.ndarray,
    imps: np.ndarray,
    decay: np.ndarray,
    design: Design,
    config: FitConfig,
    *,
    rare: bool,
) -> dict[str, Any]:
    """Posterior of one reward part, with its noise ``sigma0^2 + kappa / impressions`` fitted
    by method of moments on the residuals.

    The positive part's prior scale is its robust spread or level, as for a whole reward. A
    rare negative part's effects are multiplicative on a small mean rate, so its prior scale is
    its mean (not its noise: a report's -1 is noise, not a difference between arms).
    """
    n = len(y)
    floor_scale = DEFAULT_SCALE[config.objective] / 5
    y_w, bounds = winsorise(y)
    if rare:
        scale = float(max(abs(np.mean(y_w)), floor_scale))
    else:
        scale = float(max(abs(np.median(y_w)), np.std(y_w), floor_scale))
    prior_sd = _prior_sd(design, scale, config)
    prior_mean = np.zeros(design.n_features)
    prior_mean[0] = float(np.mean(y_w) if rare else np.median(y_w))
    sigma0_sq = max(float(np.var(y_w)) if n > 1 else scale**2, (0.1 * scale) ** 2)
    kappa = 0.0
    mean, cov = prior_mean, np.diag(prior_sd**2)
    for _ in range(3):
        var = (sigma0_sq + kappa / imps) * decay
        mean, cov = _posterior(x, y_w, var, prior_sd, prior_mean)
        if n < 10:
            break
        resid_sq = (y_w - x @ mean) ** 2
        basis = np.column_stack([np.ones(n), 1.0 / imps])
        coef, *_ = np.linalg.lstsq(basis, resid_sq, rcond=None)
        floor = max(0.05 * float(np.mean(resid_sq)), (0.1 * scale) ** 2)
        sigma0_sq = max(float(coef[0]), floor)
        kappa = max(float(coef[1]), 0.0)
        # Leverage: the residuals are smaller than the noise by about (n - p_eff) / n.
        p_eff = float(np.trace(cov @ ((x.T / var) @ x)))
        inflate = n / max(n - p_eff, 1.0)
        sigma0_sq *= inflate
        kappa *= inflate
    return {
        "mean": mean, "cov": cov, "prior_sd": prior_sd, "sigma0_sq": sigma0_sq,
        "kappa": kappa, "bounds": bounds, "scale": scale,
    }  # fmt: skip


def fit_factored(
    history: Sequence[PastPost],
    *,
    now: datetime,
    formats: Sequence[str],
    topics: Sequence[str],
    timezone: str = "UTC",
    config: FitConfig | None = None,
    horizon_model: HorizonModel | None = None,
    cache: dict[Any, np.ndarray] | None = None,
) -> FactoredPosterior:
    """The posterior given every post whose latest snapshot is >= ``min_horizon_hours`` old.

    Args:
        history: the account's posted roots, oldest first (posts without metrics still count
            for the recency covariates of later posts).
        now: the fit time; posts younger than the minimum horizon are not evidence yet.
        cache: optional dict reused across refits (a past post's row never changes).
    """
    config = config or FitConfig()
    objective_weights(config.objective)  # validates the name
    horizon_model = horizon_model or HorizonModel()
    if config.model not in ("counts", "reward_parts"):
        raise ValueError(f"unknown model {config.model!r}: use counts or reward_parts")
    design = Design(
        formats, topics, timezone, interactions=config.arm_interactions,
        topic_half_lives=config.topic_half_lives,
    )  # fmt: skip
    count_data: dict[str, list[Any]] = {}
    x, y, imps, ages, used = training_rows(
        history,
        design,
        now=now,
        objective=config.objective,
        horizon_model=horizon_model,
        min_horizon_hours=config.min_horizon_hours,
        cache=cache,
        counts=count_data,
    )
    n = len(y)
    if config.model == "counts":
        return _fit_count_model(
            design, x, count_data, ages, used, now=now, config=config, timezone=timezone
        )
    if not n:
        # The cold start: the prior of the whole reward at the objective's typical scale.
        scale = DEFAULT_SCALE[config.objective]
        prior_sd = _prior_sd(design, scale, config)
        prior_mean = np.zeros(design.n_features)
        prior_mean[0] = scale
        mean, cov = prior_mean, np.diag(prior_sd**2)
        sigma0_sq, kappa, bounds = scale**2, 0.0, (-math.inf, math.inf)
        components: dict[str, dict[str, float]] = {}
    else:
        # One model per reward part (reward_components): the posterior of the reward is the sum
        # of the parts' independent Gaussian posteriors, so draws and arm scores stay linear.
        decay = 2.0 ** (ages / config.half_life_days)
        mean = np.zeros(design.n_features)
        cov = np.zeros((design.n_features, design.n_features))
        prior_sd = np.zeros(design.n_features)
        sigma0_sq, kappa, bounds, components = 0.0, 0.0, (-math.inf, math.inf), {}
        for j, part in enumerate(component_names(config.objective)):
            fitted = _fit_part(x, y[:, j], imps, decay, design, config, rare=part != "positive")
            mean += fitted["mean"]
            cov += fitted["cov"]
            prior_sd = np.sqrt(prior_sd**2 + fitted["prior_sd"] ** 2)
            sigma0_sq += fitted["sigma0_sq"]
            kappa += fitted["kappa"]
            if part == "positive":
                bounds = fitted["bounds"]
            components[part] = {
                "mean_reward": round(float(np.mean(y[:, j])), 6),
                "noise_sd": round(math.sqrt(fitted["sigma0_sq"]), 6),
                "prior_scale": round(fitted["scale"], 6),
            }
    return FactoredPosterior(
        names=design.names,
        formats=list(formats),
        topics=list(topics),
        timezone=timezone,
        objective=config.objective,
        mean=np.asarray(mean, dtype=float),
        cov=np.asarray(cov, dtype=float),
        prior_sd=prior_sd,
        sigma0_sq=float(sigma0_sq),
        kappa=float(kappa),
        posts=n,
        winsor=bounds,
        horizons_used=used,
        fitted_at=now.isoformat(),
        components=components,
        exploration=config.exploration_at(n),
        format_exploration=config.format_exploration,
        opening_format_posts=config.opening_format_posts,
    )


def _fit_count_model(
    design: Design,
    x: np.ndarray,
    data: Mapping[str, list[Any]],
    ages: np.ndarray,
    used: dict[str, int],
    *,
    now: datetime,
    config: FitConfig,
    timezone: str,
) -> FactoredPosterior:
    """The count model's posterior (:mod:`~xbot_assets.learning.counts`) as a FactoredPosterior."""
    weights = objective_weights(config.objective)
    metrics = list(weights)
    n = len(x)
    fit = fit_counts(
        x,
        np.array(data.get("counts", []), dtype=float).reshape(n, len(metrics)),
        np.maximum(np.array(data.get("impressions", []), dtype=float), 1.0),
        np.array(data.get("observed", []), dtype=float),
        2.0 ** (ages / config.half_life_days),
        groups=design.groups,
        names=design.names,
        formats=design.formats,
        weights=weights,
        metrics=metrics,
        prior_sd_overrides=config.count_prior_sd,
        prior_means=config.count_prior_mean,
        neg_prior_events=config.neg_prior_events,
        neg_prior_log_ratio=config.neg_prior_log_ratio,
        mix_prior_share=config.mix_prior_share,
        mix_prior_events=config.mix_prior_events,
    )
    return FactoredPosterior(
        names=fit.names,
        formats=list(design.formats),
        topics=list(design.topics),
        timezone=timezone,
        objective=config.objective,
        mean=fit.mean,
        cov=fit.cov,
        prior_sd=fit.prior_sd,
        sigma0_sq=fit.sigma0_sq,
        kappa=0.0,
        posts=n,
        horizons_used=used,
        fitted_at=now.isoformat(),
        components=fit.components,
        exploration=config.exploration_at(n),
        format_exploration=config.format_exploration,
        opening_format_posts=config.opening_format_posts,
        kind="counts",
        extras=fit.extras,
    )
