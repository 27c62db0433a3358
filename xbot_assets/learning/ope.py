"""Off-policy evaluation: what would another policy have earned on the posts we logged?

Every logged post carries the probability the live policy had of choosing its arm (the
propensity, re-sampled from the posterior at decision time). Reweighting the observed rewards by
``target probability / propensity`` estimates a different policy's average reward without
running it (Horvitz-Thompson IPS); self-normalised IPS trades a small bias for much less
variance; doubly robust adds a reward model so the estimate stays right if either the model or
the propensities are (Dudik, Langford and Li 2011). Each estimate comes with a 95 % interval, so
a change can be judged, and rejected, before it goes live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

Z95 = 1.959964
MIN_PROPENSITY = 1e-3
"""Propensities are floored here: a tiny logged probability would give one post a huge weight."""

TargetPolicy = Callable[[pd.DataFrame], np.ndarray]
"""Maps logged rows to an (n_rows, n_arms) matrix of the target policy's arm probabilities."""
RewardModel = Callable[[pd.DataFrame], np.ndarray]
"""Maps logged rows to an (n_rows, n_arms) matrix of predicted rewards for every arm."""


@dataclass(frozen=True)
class Estimate:
    """One estimator's value with its 95 % confidence interval."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    std_error: float

    def as_dict(self) -> dict[str, float | str]:
        return {
            "estimator": self.estimator,
            "value": round(self.value, 6),
            "ci95_low": round(self.ci_low, 6),
            "ci95_high": round(self.ci_high, 6),
            "std_error": round(self.std_error, 6),
        }


def _normal_ci(name: str, contributions: np.ndarray) -> Estimate:
    n = len(contributions)
    value = float(contributions.mean()) if n else float("nan")
    se = float(contributions.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Estimate(name, value, value - Z95 * se, value + Z95 * se, se)


def _arm_index(arms: Sequence[str], logged: pd.Series) -> np.ndarray:
    lookup = {a: i for i, a in enumerate(arms)}
    unknown = sorted(set(logged) - set(lookup))
    if unknown:
        raise ValueError(
            f"logged arms {unknown[:5]} are not among the evaluated arms: pass every arm the "
            "logging policy could choose"
        )
    return np.array([lookup[a] for a in logged])


def evaluate_policy(
    logged: pd.DataFrame,
    arms: Sequence[str],
    target_probabilities: np.ndarray,
    *,
    reward_column: str = "reward",
    propensity_column: str = "propensity",
    reward_predictions: np.ndarray | None = None,
) -> dict[str, Estimate]:
    """IPS, self-normalised IPS and (with ``reward_predictions``) doubly robust estimates.

    Args:
        logged: one row per logged decision with ``arm``, the reward and the propensity.
        arms: arm names, the column order of the matrices.
        target_probabilities: (n, K) probabilities of the policy being evaluated.
        reward_column: observed reward per row.
        propensity_column: logging policy's probability of the logged arm.
        reward_predictions: (n, K) predicted reward of every arm per row (for DR).

    Raises:
        ValueError: on missing columns, unknown arms, or matrices of the wrong shape.
    """
    for column in ("arm", reward_column, propensity_column):
        if column not in logged:
            raise ValueError(
                f"logged posts need a {column!r} column: the policy records arm and propensity"
            )
    n, k = len(logged), len(arms)
    target = np.asarray(target_probabilities, dtype=float)
    if target.shape != (n, k):
        raise ValueError(f"target probabilities have shape {target.shape}, expected {(n, k)}")
    chosen = _arm_index(arms, logged["arm"])
    reward = logged[reward_column].to_numpy(dtype=float)
    propensity = np.clip(logged[propensity_column].to_numpy(dtype=float), MIN_PROPENSITY, 1.0)
    weight = target[np.arange(n), chosen] / propensity
    out = {"ips": _normal_ci("ips", weight * reward)}
    # SNIPS: ratio estimator; delta-method interval.
    mean_w = weight.mean()
    snips = float((weight * reward).sum() / weight.sum()) if weight.sum() > 0 else float("nan")
    if n > 1 and mean_w > 0:
        resid = weight * (reward - snips) / mean_w
        se = float(resid.std(ddof=1) / np.sqrt(n))
    else:
        se = float("nan")
    out["snips"] = Estimate("snips", snips, snips - Z95 * se, snips + Z95 * se, se)
    if reward_predictions is not None:
        q = np.asarray(reward_predictions, dtype=float)
        if q.shape != (n, k):
            raise ValueError(f"reward predictions have shape {q.shape}, expected {(n, k)}")
        direct = (target * q).sum(axis=1)
        correction = weight * (reward - q[np.arange(n), chosen])
        out["dr"] = _normal_ci("dr", direct + correction)
        out["direct"] = _normal_ci("direct", direct)
    return out


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size of importance weights: how many posts the estimate is worth."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.square(w).sum()) if np.square(w).sum() > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Target policies and a reward model
# --------------------------------------------------------------------------------------------


def uniform_policy(n_rows: int, n_arms: int) -> np.ndarray:
    """The random policy: every arm equally likely."""
    return np.full((n_rows, n_arms), 1.0 / n_arms)


def greedy_policy(predictions: np.ndarray) -> np.ndarray:
    """Always the arm with the best prediction (ties split evenly)."""
    best = predictions == predictions.max(axis=1, keepdims=True)
    return best / best.sum(axis=1, keepdims=True)


def fixed_policy(probabilities: np.ndarray, n_rows: int) -> np.ndarray:
    """The same arm probabilities for every row (e.g. a Thompson sampler's current propensities)."""
    p = np.asarray(probabilities, dtype=float)
    return np.tile(p / p.sum(), (n_rows, 1))


def arm_mean_reward_model(
    logged: pd.DataFrame, arms: Sequence[str], *, reward_column: str = "reward", shrink: float = 5.0
) -> np.ndarray:
    """Per-arm mean reward shrunk to the overall mean (``shrink`` pseudo-posts), for every row.

    A deliberately simple model for the doubly robust estimator: DR stays unbiased when the
    propensities are right even if this model is crude, and it removes much of IPS's variance.
    """
    chosen = _arm_index(arms, logged["arm"])
    reward = logged[reward_column].to_numpy(dtype=float)
    overall = float(reward.mean()) if len(reward) else 0.0
    sums = np.bincount(chosen, reward, len(arms))
    counts = np.bincount(chosen, minlength=len(arms))
    means = (sums + shrink * overall) / (counts + shrink)
    return np.tile(means, (len(logged), 1))


def compare_policies(
    logged: pd.DataFrame,
    arms: Sequence[str],
    policies: dict[str, np.ndarray],
    *,
    reward_predictions: np.ndarray | None = None,
    reward_column: str = "reward",
) -> pd.DataFrame:
    """One row per (policy, estimator) with value and 95 % interval, plus the logged average.

    The ``logged`` row (the on-policy average with its interval) is what the current policy
    actually earned, so alternatives can be compared against it directly.
    """
    rows = []
    logged_value = _normal_ci("on_policy", logged[reward_column].to_numpy(dtype=float))
    rows.append({"policy": "logged", **logged_value.as_dict(), "effective_posts": len(logged)})
    chosen = _arm_index(arms, logged["arm"])
    propensity = np.clip(logged["propensity"].to_numpy(dtype=float), MIN_PROPENSITY, 1.0)
    for name, target in policies.items():
        estimates = evaluate_policy(
            logged,
            arms,
            target,
            reward_predictions=reward_predictions,
            reward_column=reward_column,
        )
        weight = target[np.arange(len(logged)), chosen] / propensity
        ess = round(effective_sample_size(weight), 1)
        for estimate in estimates.values():
            rows.append({"policy": name, **estimate.as_dict(), "effective_posts": ess})
    return pd.DataFrame(rows)
