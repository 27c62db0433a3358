"""Contextual Thompson sampling: Bayesian logistic regression with a diagonal Laplace
approximation over factored arms (format, topic, slot).

Where the independent Beta arms of :mod:`~xbot_assets.learning.bandits` learn each arm alone,
:class:`LaplaceLogisticSampler` learns one weight per level of each factor
(:class:`FeatureSpace`), so what one ``how_to:<topic>`` post teaches moves every ``how_to`` arm.
Evidence is a post's (successes, trials), as from
:func:`~xbot_assets.learning.bandits.binomial_evidence`; every decision uses ONE posterior draw
of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from xbot_assets.learning.bandits import BoolArray, argmax_shares

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FeatureSpace:
    """Named one-hot groups (plus an intercept) shared by arms: format, topic, slot.

    A design row has a 1 in the intercept and one 1 per group, so an arm's logit is
    ``w_0 + w_format + w_topic + w_slot``: what is learned about ``how_to`` helps every
    ``how_to:<topic>`` arm at once (strength shared across factors).
    """

    groups: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def names(self) -> list[str]:
        return ["intercept"] + [f"{g}={v}" for g, values in self.groups for v in values]

    @property
    def dim(self) -> int:
        return 1 + sum(len(values) for _, values in self.groups)

    def index(self, **levels: str) -> list[int]:
        """Active feature indices of one row (intercept first); unknown levels are skipped."""
        out = [0]
        offset = 1
        for group, values in self.groups:
            level = levels.get(group)
            if level is not None and level in values:
                out.append(offset + values.index(level))
            offset += len(values)
        return out

    def design(self, rows: Sequence[dict[str, str]]) -> FloatArray:
        matrix = np.zeros((len(rows), self.dim))
        for r, levels in enumerate(rows):
            matrix[r, self.index(**levels)] = 1.0
        return matrix


def arms_feature_space(
    formats: Sequence[str], topics: Sequence[str], slots: Sequence[str] = ()
) -> FeatureSpace:
    groups: list[tuple[str, tuple[str, ...]]] = [
        ("format", tuple(formats)),
        ("topic", tuple(topics)),
    ]
    if slots:
        groups.append(("slot", tuple(slots)))
    return FeatureSpace(tuple(groups))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class LaplaceLogisticSampler:
    """Thompson sampling with Bayesian logistic regression, diagonal Laplace approximation.

    Chapelle and Li (2011, "An Empirical Evaluation of Thompson Sampling", Algorithm 3): each
    weight has an independent Gaussian posterior ``N(m_i, 1/q_i)``. An observation of ``k``
    successes out of ``n`` trials for a sparse 0/1 row ``x`` moves the mean to the MAP of
    ``1/2 sum q_i (w_i - m_i)^2 - [k log p + (n - k) log (1 - p)]`` and adds ``n p (1 - p) x_i^2``
    to the precision at the MAP. Because the loss depends on ``w`` only through ``z = x . w``,
    the MAP lies on ``m - c Q^-1 x`` and a 1-D Newton solve finds it exactly (online, O(active)).

    Discounting for drift pulls every precision and mean back towards the prior by ``discount``
    per update (forgetting old evidence like the independent sampler does).

    Args:
        space: the feature space (intercept + one-hot groups).
        prior_mean: prior mean of the intercept (logit of the expected success rate); other
            weights start at 0.
        prior_precision: prior precision of every weight (1/variance).
        discount: in (0, 1]; 1 never forgets.
        seed: random generator seed.
    """

    def __init__(
        self,
        space: FeatureSpace,
        *,
        prior_mean: float = -3.0,
        prior_precision: float = 1.0,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        if prior_precision <= 0:
            raise ValueError(f"prior_precision must be positive, got {prior_precision}")
        self.space = space
        self.discount = float(discount)
        self.rng = np.random.default_rng(seed)
        self.prior_m: FloatArray = np.zeros(space.dim)
        self.prior_m[0] = prior_mean
        self.prior_q: FloatArray = np.full(space.dim, float(prior_precision))
        self.m: FloatArray = self.prior_m.copy()
        self.q: FloatArray = self.prior_q.copy()
        self.n_updates = 0

    def sample_weights(self, size: int | None = None) -> FloatArray:
        sd = 1.0 / np.sqrt(self.q)
        if size is None:
            return self.m + sd * self.rng.standard_normal(self.space.dim)
        return self.m + sd * self.rng.standard_normal((size, self.space.dim))

    def sample_logits(self, design: FloatArray) -> FloatArray:
        """One weight draw scored on every row of ``design`` (one row per candidate arm)."""
        return design @ self.sample_weights()

    def select(self, design: FloatArray) -> int:
        """Row of ``design`` with the highest logit under one posterior draw."""
        return int(self.sample_logits(design).argmax())

    def update_indices(self, active: Sequence[int], successes: float, trials: float) -> None:
        """Online Laplace update for a 0/1 row given by its active indices."""
        if trials < 0 or successes < 0 or successes > trials:
            raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
        if self.discount < 1.0:
            g = self.discount
            self.q = g * self.q + (1 - g) * self.prior_q
            self.m = g * self.m + (1 - g) * self.prior_m
        self.n_updates += 1
        if trials == 0:
            return
        idx = list(active)
        m_a = self.m[idx]
        inv_q = 1.0 / self.q[idx]
        z0 = float(m_a.sum())
        v = float(inv_q.sum())
        z = z0
        for _ in range(30):
            p = _sigmoid(z)
            f = z - z0 + v * (trials * p - successes)
            step = f / (1.0 + v * trials * p * (1 - p))
            z -= step
            if abs(step) < 1e-9:
                break
        p = _sigmoid(z)
        c = trials * p - successes
        self.m[idx] = m_a - c * inv_q
        self.q[idx] = self.q[idx] + trials * p * (1 - p)

    def forget(self, keep: float) -> None:
        """Keep only ``keep`` of the evidence (precision above the prior), e.g. after a change."""
        self.q = self.prior_q + keep * (self.q - self.prior_q)

    def update(self, row: FloatArray, successes: float, trials: float) -> None:
        """Online Laplace update for a 0/1 design row."""
        self.update_indices(np.flatnonzero(row).tolist(), successes, trials)

    def choice_probabilities(
        self, design: FloatArray, n_samples: int = 2000, available: BoolArray | None = None
    ) -> FloatArray:
        """Probability each row of ``design`` is chosen now (propensity), by re-sampling; with
        ``available``, among those rows only."""
        return argmax_shares(self.sample_weights(n_samples) @ design.T, available)

    def expected_rates(self, design: FloatArray) -> FloatArray:
        """Posterior-mean success rate of each row (plug-in at the mean weights)."""
        return 1.0 / (1.0 + np.exp(-(design @ self.m)))

    def to_frame(self) -> pd.DataFrame:
        """One row per weight: mean, standard deviation and 90 % interval (logit scale)."""
        sd = 1.0 / np.sqrt(self.q)
        return pd.DataFrame(
            {
                "feature": self.space.names,
                "mean": self.m,
                "sd": sd,
                "ci90_low": self.m - 1.6449 * sd,
                "ci90_high": self.m + 1.6449 * sd,
            }
        )
