"""The count model: arm effects learnt from every engagement count, with impressions as the
exposure, mapped to the expected X-weighted reward the policy maximises.

Why: a post's X-weighted reward is dominated by rare events (a negative feedback weighs -74,
a report -369; roughly one post in ten gets one, one in a hundred a report), so its SD (~0.14)
dwarfs the differences between arms (0.02-0.10) and an arm's mean reward is learnt slowly. The
frequent positive counts (likes, bookmarks, clicks: tens per post, small Poisson noise) carry the
same signal about the *content*: what an audience likes it likes across metrics, and it sends
fewer "not interested" and reports about it. That holds on real X in spirit (content that earns
likes earns fewer "show less"), and it is what this model assumes:

    positive metric m of post i:  count ~ Poisson(impressions_i x exp(a[f, m] + x_i . beta + e_i))
    negative metric m of post i:  count ~ Poisson(impressions_i x exp(b[f, m] - k x content_i))

- One shared log-rate effect ``x . beta`` over every positive metric (format, topic, hour,
  weekend, recency and text covariates; ``e_i`` the post's content quality, variance ``s^2``
  fitted on the residuals). The total positive count is then the sufficient statistic for it,
  so ``beta`` is a weighted linear regression of ``log(total positive count / impressions)``
  with per-post noise ``s^2 + 1 / expected count`` (the Gaussian approximation to the Poisson).
- The per-format metric mix ``a[f, m]``: each metric's share of the format's positive counts,
  pooled over topics and shrunk towards the all-format share (:data:`MIX_PRIOR_EVENTS`).
- Negative metrics: a rate per format (Gamma posterior, shrunk to the pooled rate by
  :data:`NEG_PRIOR_EVENTS`), moved by ``content`` = the topic, recency and text part of
  ``x . beta`` through a coupling ``k`` learnt on a grid (prior :data:`COUPLING_PRIOR`: a
  moderate "liked content is reported less"; the data move it when negative events accumulate,
  and ``k = 0`` is inside the prior, so an audience without the coupling is not forced to have
  one).

The expected reward of an arm at a slot is then
``sum_m+ w_m share[f, m] exp(x . beta + s^2 / 2) + sum_m- w_m exp(b[f, m] - k content)`` with
the objective's weights (REWARD_WEIGHTS): one objective end to end; only the estimation of the
arm effects changes. The posterior is Gaussian over ``theta = [beta, log b, k]`` (block
diagonal), so Thompson sampling draws ``theta`` and values every arm with :func:`value`.

Pure: numpy only. The sandbox's truth is never read here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

COUPLING_PRIOR: tuple[float, float] = (0.5, 0.5)
"""Prior (mean, SD) of the coupling ``k``: negative rates fall by ``exp(-k)`` per unit of liked
content. Moderate and wide; it includes 0 (no coupling) within one SD."""
COUPLING_GRID = np.linspace(-1.0, 2.5, 36)
MIX_PRIOR_EVENTS = 20.0
"""Pseudo-events pulling a format's metric mix towards the all-format mix."""
NEG_PRIOR_EVENTS = 2.0
"""Pseudo-events pulling a format's negative rate towards the pooled rate."""
LOG_PRIOR_SD: dict[str, float] = {
    "intercept": 3.0,
    "format": 0.4,
    "topic": 0.4,
    "time": 0.3,
    "recency": 0.3,
    "text": 0.3,
    "arm": 0.15,
}
"""Prior SD of each effect on the log-rate scale (0.4: a topic x1.5 or /1.5 is plausible)."""
CONTENT_GROUPS = ("topic", "recency", "text", "arm")
"""The design groups that describe the content (what moves negative feedback too)."""
DEFAULT_LOG_RATE = math.log(0.02)
"""Cold start: ~2 % of impressions engage."""


@dataclass
class CountFit:
    """The augmented Gaussian posterior and what :func:`value` needs (JSON-able extras)."""

    names: list[str]
    mean: np.ndarray
    cov: np.ndarray
    prior_sd: np.ndarray
    extras: dict[str, Any]
    sigma0_sq: float
    components: dict[str, dict[str, float]]


def _posterior(
    x: np.ndarray, y: np.ndarray, var: np.ndarray, prior_sd: np.ndarray, prior_mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    precision = np.diag(1.0 / prior_sd**2) + (x.T / var) @ x
    cov = np.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (prior_mean / prior_sd**2 + (x.T / var) @ y)
    return mean, cov


def format_index(rows: np.ndarray, n_formats: int) -> np.ndarray:
    """Each design row's format (its one-hot in columns ``1 .. n_formats``)."""
    return np.asarray(rows[:, 1 : 1 + n_formats].argmax(axis=1))


def fit_counts(
    x: np.ndarray,
    counts: np.ndarray,
    imps: np.ndarray,
    observed: np.ndarray,
    decay: np.ndarray,
    *,
    groups: Sequence[str],
    names: Sequence[str],
    formats: Sequence[str],
    weights: Mapping[str, float],
    metrics: Sequence[str],
    prior_sd_overrides: Mapping[str, float] | None = None,
    prior_means: Mapping[str, float] | None = None,
    neg_prior_events: float = NEG_PRIOR_EVENTS,
    neg_prior_log_ratio: Mapping[str, float] | None = None,
    mix_prior_share: Mapping[str, Sequence[float]] | None = None,
    mix_prior_events: float = MIX_PRIOR_EVENTS,
) -> CountFit:
    """The posterior of the count model.

    Args:
        x: design rows ``[n, p]`` (:class:`~xbot_assets.learning.design.Design`).
        counts: projected final counts ``[n, len(metrics)]``.
        imps: projected final impressions ``[n]``.
        observed: share of the final counts the snapshot held (Poisson noise is that of the
            observed, not the projected, counts).
        decay: variance multiplier per post (older posts count less).
        groups, names: the design's column groups and names.
        weights: the objective's metric weights (sign says positive or negative).
        metrics: the columns of ``counts``.
        prior_sd_overrides: log-scale prior SD per design group, over :data:`LOG_PRIOR_SD`.
        prior_means: log-scale prior mean of named effects (0 when not given).
        neg_prior_events: pseudo-events pulling each format's negative rate to the pooled one.
        neg_prior_log_ratio: ``metric:format`` -> log of the format's prior rate over the
            pooled rate (a population prior; 0, the pooled rate itself, when not given).
        mix_prior_share: format -> prior share of each positive metric (a population prior;
            the account's all-format mix when not given).
        mix_prior_events: pseudo-events behind the mix's prior.
    """
    n, p = x.shape
    nf = len(formats)
    w = np.array([float(weights[m]) for m in metrics])
    pos, neg = w > 0, w < 0
    fmt = format_index(x, nf) if n else np.zeros(0, dtype=int)
    weight_i = 1.0 / decay if n else np.zeros(0)

    # --- the per-format mix of positive metrics -> reward per positive event ---------------
    pos_counts = counts[:, pos] if n else np.zeros((0, int(pos.sum())))
    pos_counts = np.maximum(pos_counts, 0.0)
    totals = pos_counts.sum(axis=1)
    grand = (pos_counts * weight_i[:, None]).sum(axis=0)
    pooled_share = grand / grand.sum() if grand.sum() > 0 else np.full(pos.sum(), 1 / pos.sum())
    value_per_event = np.empty(nf)
    for f in range(nf):
        mine = (pos_counts[fmt == f] * weight_i[fmt == f, None]).sum(axis=0)
        centre = pooled_share
        if mix_prior_share and formats[f] in mix_prior_share:
            centre = np.asarray(mix_prior_share[formats[f]], dtype=float)
        share = (mine + mix_prior_events * centre) / (mine.sum() + mix_prior_events)
        value_per_event[f] = float(share @ w[pos])

    # --- the shared log-rate effects: weighted regression on log(total / impressions) -------
    sds = {**LOG_PRIOR_SD, **(prior_sd_overrides or {})}
    prior_sd = np.array([sds.get(g, 0.3) for g in groups])
    prior_mean = np.array([float((prior_means or {}).get(name, 0.0)) for name in names])
    if n:
        z = np.log((totals + 0.5) / np.maximum(imps, 1.0))
        prior_mean[0] = float(np.median(z))
        s2 = max(float(np.var(z)) if n > 1 else 0.25, 0.01)
        mean, cov = prior_mean, np.diag(prior_sd**2)
        for _ in range(3):
            expected = np.maximum(observed * imps * np.exp(x @ mean), 0.5)
            count_var = 1.0 / expected
            var = (s2 + count_var) * decay
            mean, cov = _posterior(x, z, var, prior_sd, prior_mean)
            if n < 10:
                break
            resid_sq = (z - x @ mean) ** 2
            p_eff = float(np.trace(cov @ ((x.T / var) @ x)))
            inflate = n / max(n - p_eff, 1.0)
            s2 = max(float(np.average(resid_sq - count_var, weights=weight_i)) * inflate, 0.01)
    else:
        prior_mean[0] = DEFAULT_LOG_RATE
        s2 = 0.1
        mean, cov = prior_mean, np.diag(prior_sd**2)

    # --- negative metrics: rate per format, coupled to the content --------------------------
    mask = np.array([g in CONTENT_GROUPS for g in groups])
    neg_names = [m for m, is_neg in zip(metrics, neg, strict=True) if is_neg]
    k0, k_sd = COUPLING_PRIOR
    log_rates = np.zeros((nf, len(neg_names)))
    log_rate_var = np.ones((nf, len(neg_names)))
    k_mean, k_var = k0, k_sd**2
    if neg_names:
        neg_counts = counts[:, neg] * weight_i[:, None] if n else np.zeros((0, len(neg_names)))
        content = x[:, mask] @ mean[mask] if n else np.zeros(0)
        exposure_w = imps * weight_i if n else np.zeros(0)

        ratio = np.ones((nf, len(neg_names)))
        for f, fname in enumerate(formats):
            for j, m in enumerate(neg_names):
                ratio[f, j] = math.exp(float((neg_prior_log_ratio or {}).get(f"{m}:{fname}", 0.0)))

        def rates_at(k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            exposure = exposure_w * np.exp(-k * content)
            pooled = (neg_counts.sum(axis=0) + 0.5) / max(float(exposure.sum()), 1.0)
            a = np.empty((nf, len(neg_names)))
            b = np.empty((nf, len(neg_names)))
            for f in range(nf):
                a[f] = neg_counts[fmt == f].sum(axis=0) + neg_prior_events
                b[f] = float(exposure[fmt == f].sum()) + neg_prior_events / (pooled * ratio[f])
            return a, b, exposure

        if n:
            log_post = np.empty(len(COUPLING_GRID))
            for j, k in enumerate(COUPLING_GRID):
                a, b, exposure = rates_at(float(k))
                rate = (a / b)[fmt]  # [n, neg]
                mu = exposure[:, None] * rate
                loglik = float((neg_counts * np.log(np.maximum(mu, 1e-300)) - mu).sum())
                log_post[j] = loglik - 0.5 * ((k - k0) / k_sd) ** 2
            post = np.exp(log_post - log_post.max())
            post /= post.sum()
            k_mean = float(post @ COUPLING_GRID)
            k_var = max(float(post @ (COUPLING_GRID - k_mean) ** 2), 1e-4)
            a, b, _ = rates_at(k_mean)
        else:
            a = np.full((nf, len(neg_names)), neg_prior_events)
            b = neg_prior_events / (1e-4 * ratio)
        log_rate_var = 1.0 / a
        log_rates = np.log(a / b)  # the plug-in value at the mean is the posterior mean rate

    # --- the augmented Gaussian over [beta, log negative rates, coupling] -------------------
    extra_names = [f"negative:{m}:format={f}" for f in formats for m in neg_names]
    full_names = list(names) + extra_names + (["coupling"] if neg_names else [])
    extra_mean = log_rates.ravel().tolist() + ([k_mean] if neg_names else [])
    extra_var = log_rate_var.ravel().tolist() + ([k_var] if neg_names else [])
    size = p + len(extra_mean)
    full_cov = np.zeros((size, size))
    full_cov[:p, :p] = cov
    full_cov[p:, p:] = np.diag(extra_var)
    full_prior = np.concatenate(
        [prior_sd, np.full(len(extra_names), 1.0), [k_sd] if neg_names else []]
    )
    extras = {
        "p": p,
        "n_formats": nf,
        "value_per_event": value_per_event.tolist(),
        "log_offset": 0.5 * s2,
        "negative_metrics": neg_names,
        "negative_weights": [float(weights[m]) for m in neg_names],
        "content_mask": mask.tolist(),
    }
    components = {
        "positive": {
            "log_rate_quality_sd": round(math.sqrt(s2), 6),
            "mean_events_per_post": round(float(totals.mean()) if n else 0.0, 3),
        },
        "coupling": {"mean": round(k_mean, 4), "sd": round(math.sqrt(k_var), 4)},
    }
    for j, m in enumerate(neg_names):
        components[m] = {
            "events": round(float(counts[:, neg][:, j].sum()) if n else 0.0, 2),
            "mean_rate": round(float(np.exp(log_rates[:, j]).mean()), 8),
        }
    return CountFit(
        names=full_names,
        mean=np.concatenate([mean, extra_mean]),
        cov=full_cov,
        prior_sd=full_prior,
        extras=extras,
        sigma0_sq=s2,
        components=components,
    )


def value(rows: np.ndarray, theta: np.ndarray, extras: Mapping[str, Any]) -> np.ndarray:
    """Expected reward of each design row under ``theta`` (``[P]`` -> ``[A]``; ``[n, P]`` ->
    ``[n, A]``): the positive events' value plus the (negative-weighted) negative rates."""
    p = int(extras["p"])
    nf = int(extras["n_formats"])
    th = np.atleast_2d(theta)
    beta = th[:, :p]
    fmt = format_index(rows, nf)
    vpe = np.asarray(extras["value_per_event"])[fmt]
    out = vpe[None, :] * np.exp(beta @ rows.T + float(extras["log_offset"]))
    neg_w = np.asarray(extras["negative_weights"], dtype=float)
    if neg_w.size:
        mask = np.asarray(extras["content_mask"], dtype=bool)
        content = beta[:, mask] @ rows[:, mask].T  # [n, A]
        log_rates = th[:, p : p + nf * neg_w.size].reshape(len(th), nf, neg_w.size)
        k = th[:, -1][:, None]
        for j, wj in enumerate(neg_w):
            out = out + wj * np.exp(log_rates[:, fmt, j] - k * content)
    return out[0] if np.ndim(theta) == 1 else out
