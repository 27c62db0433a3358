"""Thompson sampling over independent Beta-Binomial arms, with empirical-Bayes priors, discounting
and change detection (the contextual Laplace-logistic sampler is
:mod:`~xbot_assets.learning.contextual_bandit`).

Why this exists: the seed bot's "Thompson sampling" averaged 1,000 Beta draws per arm, which is
the posterior mean, so it always picked the same arm and never explored. Here every decision
uses ONE real posterior draw per arm (or per weight), so an arm is chosen with exactly the
posterior probability that it is the best one.

What a "success" is (see :func:`binomial_evidence`): a post's weighted engagements (X's ranking
weights, :mod:`xbot_assets.learning.rewards`) are counted in units of :data:`SUCCESS_UNIT`
(one reply = 13.5 = one success), clipped at zero, out of its impressions. The success rate is
therefore ``reward / SUCCESS_UNIT`` per impression, a number in [0, 1] for any realistic post,
and ranking arms by it ranks them by the reward. Impressions of one post are not independent
(a good post is good for all who see it), so a post's evidence is capped at ``max_trials``
effective impressions (rate kept): without the cap one viral post would make the posterior
certain and exploration would stop. :func:`fit_overdispersion` estimates that cap from history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from xbot_assets.learning.rewards import REWARD_WEIGHTS

SUCCESS_UNIT: float = REWARD_WEIGHTS["replies"]
"""Weighted engagement that counts as one success (one reply's worth)."""

DEFAULT_PRIOR: tuple[float, float] = (1.0, 1.0)
DEFAULT_MAX_TRIALS: float = 200.0
"""Effective impressions one post may contribute when no history has been fitted yet."""

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def argmax_shares(draws: FloatArray, available: BoolArray | None = None) -> FloatArray:
    """Share of the rows of ``draws`` (samples x arms) in which each arm is the highest; with
    ``available``, the highest among those arms only (the others get 0)."""
    if available is not None:
        draws = np.where(np.asarray(available, dtype=bool), draws, -np.inf)
    counts = np.bincount(draws.argmax(axis=1), minlength=draws.shape[1])
    return counts / float(draws.shape[0])


def binomial_evidence(
    weighted_engagements: float,
    impressions: float,
    *,
    max_trials: float | None = DEFAULT_MAX_TRIALS,
    unit: float = SUCCESS_UNIT,
) -> tuple[float, float]:
    """Turn one post's outcome into (successes, trials) for a Beta-Binomial update.

    Args:
        weighted_engagements: the post's engagements weighted by ``REWARD_WEIGHTS``.
        impressions: how many times it was seen.
        max_trials: cap on effective trials per post (rate preserved); ``None`` for no cap.
        unit: weighted engagement per success.

    Returns:
        Fractional successes and trials; (0, 0) for a post nobody saw.
    """
    if impressions <= 0:
        return 0.0, 0.0
    successes = min(max(weighted_engagements / unit, 0.0), float(impressions))
    trials = float(impressions)
    if max_trials is not None and trials > max_trials:
        scale = max_trials / trials
        successes, trials = successes * scale, float(max_trials)
    return successes, trials


def fit_beta_prior(
    successes: ArrayLike,
    trials: ArrayLike,
    *,
    min_strength: float = 2.0,
    max_strength: float = 1e5,
    fallback: tuple[float, float] = DEFAULT_PRIOR,
) -> tuple[float, float]:
    """Empirical-Bayes Beta prior of per-unit rates, by the method of moments.

    Each unit (an arm, or a post) has a rate ``s/n``; the prior's mean is the pooled rate and
    its spread is the between-unit variance left after removing binomial sampling noise. Why:
    a new arm then starts at what arms like it usually earn, with as much confidence as the
    spread between arms justifies, instead of at 50 % with a flat prior.

    Args:
        successes: successes per unit.
        trials: trials per unit (units with 0 trials are ignored).
        min_strength: smallest ``alpha + beta`` returned (keeps the prior weak enough to move).
        max_strength: largest ``alpha + beta`` (when units look identical).
        fallback: returned when fewer than two units have trials.

    Returns:
        ``(alpha, beta)``.
    """
    s = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    keep = n > 0
    s, n = s[keep], n[keep]
    if s.size < 2:
        return fallback
    rates = s / n
    mean = float(np.sum(s) / np.sum(n))
    if not 0.0 < mean < 1.0:
        return fallback
    weights = n / n.sum()
    observed_var = float(np.sum(weights * (rates - mean) ** 2))
    # Expected binomial noise in the weighted variance; what is left is between-unit spread.
    noise = mean * (1 - mean) * float(np.mean(1.0 / n))
    true_var = observed_var - noise
    strength = max_strength if true_var <= 0 else mean * (1 - mean) / true_var - 1.0
    strength = float(np.clip(strength, min_strength, max_strength))
    return mean * strength, (1 - mean) * strength


def fit_overdispersion(
    successes: ArrayLike, trials: ArrayLike, *, floor: float = 10.0, ceiling: float = 1e6
) -> float:
    """Effective trials one post is worth, from the spread of post rates within an arm.

    Posts of one arm vary more than binomial noise says (beta-binomial overdispersion with
    intra-post correlation ``rho``); ``n`` impressions then carry ``n / (1 + (n - 1) rho)``
    trials of information, which tends to ``1 / rho``. Pass posts of ONE arm (or rates already
    centred per arm).

    Returns:
        ``1 / rho`` clipped to ``[floor, ceiling]``: use it as ``max_trials``.
    """
    alpha, beta = fit_beta_prior(successes, trials, min_strength=floor, max_strength=ceiling)
    # For a Beta(alpha, beta) of post rates, rho = 1 / (alpha + beta + 1).
    return float(np.clip(alpha + beta + 1.0, floor, ceiling))


class ThompsonSampler:
    """Independent Beta-Binomial Thompson sampling with an empirical-Bayes prior and discounting.

    ``alpha_k = prior_alpha + S_k`` and ``beta_k = prior_beta + F_k`` where ``S``/``F`` are the
    (discounted) successes and failures seen for arm ``k``; keeping the evidence apart from the
    prior lets :meth:`set_prior` swap in a freshly fitted prior at any time.

    Args:
        n_arms: number of arms.
        prior: Beta prior ``(alpha, beta)`` shared by all arms.
        discount: factor in (0, 1] applied to ALL arms' evidence at every update; 1 never
            forgets, 0.999 gives evidence a half-life of about 700 updates (drift).
        seed: seed of the sampler's own random generator (reproducible decisions).
    """

    def __init__(
        self,
        n_arms: int,
        *,
        prior: tuple[float, float] = DEFAULT_PRIOR,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if n_arms < 1:
            raise ValueError(f"n_arms must be at least 1, got {n_arms}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.n_arms = n_arms
        self.discount = float(discount)
        self.rng = np.random.default_rng(seed)
        self.successes: FloatArray = np.zeros(n_arms)
        self.failures: FloatArray = np.zeros(n_arms)
        self.pulls: NDArray[np.int64] = np.zeros(n_arms, dtype=np.int64)
        self.last_sample: FloatArray = np.full(n_arms, np.nan)
        self.set_prior(prior)

    def set_prior(self, prior: tuple[float, float]) -> None:
        """Replace the prior (e.g. with :func:`fit_beta_prior`), keeping the evidence."""
        alpha, beta = float(prior[0]), float(prior[1])
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"prior must be two positive numbers, got {prior}")
        self.prior = (alpha, beta)

    @property
    def alpha(self) -> FloatArray:
        return self.prior[0] + self.successes

    @property
    def beta(self) -> FloatArray:
        return self.prior[1] + self.failures

    def sample(self, size: int | None = None) -> FloatArray:
        """One posterior draw per arm ``(n_arms,)``, or ``size`` draws ``(size, n_arms)``."""
        if size is None:
            return self.rng.beta(self.alpha, self.beta)
        return self.rng.beta(self.alpha, self.beta, size=(size, self.n_arms))

    def select(self) -> int:
        """Arm with the highest single posterior draw (the draw is kept in ``last_sample``)."""
        draw = self.rng.beta(self.prior[0] + self.successes, self.prior[1] + self.failures)
        self.last_sample = draw
        return int(draw.argmax())

    def update(self, arm: int, successes: float, trials: float) -> None:
        """Add a binomial observation to ``arm`` after discounting every arm's evidence.

        Raises:
            ValueError: on an unknown arm or ``successes`` outside ``[0, trials]``.
        """
        if not 0 <= arm < self.n_arms:
            raise ValueError(f"arm {arm} is not in 0..{self.n_arms - 1}")
        if trials < 0 or successes < 0 or successes > trials:
            raise ValueError(
                f"need 0 <= successes <= trials, got successes={successes}, trials={trials}: "
                "convert a post's outcome with binomial_evidence()"
            )
        if self.discount < 1.0:
            self.successes *= self.discount
            self.failures *= self.discount
        self.successes[arm] += successes
        self.failures[arm] += trials - successes
        self.pulls[arm] += 1

    def choice_probabilities(
        self, n_samples: int = 2000, available: BoolArray | None = None
    ) -> FloatArray:
        """Probability each arm is selected now, by re-sampling the posterior ``n_samples`` times.

        This is the propensity logged with a decision for off-policy evaluation; ``available``
        (a mask over the arms) restricts the choice to the arms that can be posted now.
        """
        return argmax_shares(self.sample(n_samples), available)

    def posterior_mean(self) -> FloatArray:
        return self.alpha / (self.alpha + self.beta)

    def to_frame(self, arm_names: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per arm: evidence, posterior parameters, mean, 90 % interval, P(best)."""
        from scipy import stats

        alpha, beta = self.alpha, self.beta
        low, high = stats.beta.ppf([[0.05], [0.95]], alpha, beta)
        names = list(arm_names) if arm_names is not None else [str(k) for k in range(self.n_arms)]
        if len(names) != self.n_arms:
            raise ValueError(f"got {len(names)} arm names for {self.n_arms} arms")
        return pd.DataFrame(
            {
                "arm": names,
                "pulls": self.pulls,
                "successes": self.successes,
                "trials": self.successes + self.failures,
                "alpha": alpha,
                "beta": beta,
                "mean": alpha / (alpha + beta),
                "ci90_low": low,
                "ci90_high": high,
                "p_best": self.choice_probabilities(),
            }
        )


class ChangeDetector:
    """Per-arm short memory that flags when an arm's recent posts disagree with the model.

    Each arm keeps its last few posts (discounted by ``window_discount`` per post of that arm).
    A change is declared when the short-memory rate differs from the rate the model predicts
    for that arm by more than ``threshold_z`` binomial standard errors (on evidence already
    capped for overdispersion), after at least ``min_posts`` posts.
    """

    def __init__(
        self,
        n_arms: int,
        *,
        window_discount: float = 0.9,
        threshold_z: float = 6.0,
        min_posts: float = 5.0,
    ) -> None:
        self.window_discount = float(window_discount)
        self.threshold_z = float(threshold_z)
        self.min_posts = float(min_posts)
        self.successes: FloatArray = np.zeros(n_arms)
        self.trials: FloatArray = np.zeros(n_arms)
        self.posts: FloatArray = np.zeros(n_arms)
        self.changes: NDArray[np.int64] = np.zeros(n_arms, dtype=np.int64)

    def observe(
        self, arm: int, successes: float, trials: float, predicted_rate: float | None
    ) -> bool:
        """Add a post to ``arm``'s short memory; True when it signals a change.

        ``predicted_rate=None`` only remembers the post (the model has too little history).
        """
        g = self.window_discount
        self.successes[arm] = g * self.successes[arm] + successes
        self.trials[arm] = g * self.trials[arm] + trials
        self.posts[arm] = g * self.posts[arm] + 1.0
        if predicted_rate is None or self.posts[arm] < self.min_posts or self.trials[arm] <= 0:
            return False
        p = min(max(predicted_rate, 1e-9), 1 - 1e-9)
        short = self.successes[arm] / self.trials[arm]
        if abs(short - p) <= self.threshold_z * math.sqrt(p * (1 - p) / self.trials[arm]):
            return False
        self.changes[arm] += 1
        return True

    def short_memory(self, arm: int) -> tuple[float, float]:
        return float(self.successes[arm]), float(self.trials[arm])


class DriftAwareThompson:
    """Thompson sampling that forgets fast when the audience is seen to change.

    A fixed discount pays for drift all the time: evidence about stationary arms is forgotten
    and bought again with exploration. Here a :class:`ChangeDetector` watches each played arm;
    on a change, that arm's evidence is replaced by its recent posts and every other arm keeps
    only ``keep_on_change`` of its evidence (preferences rarely move for one arm alone, so the
    arms we stopped playing deserve another look). A gentle global ``discount`` still brings
    arms that are never played back into exploration over time.

    Args:
        n_arms: number of arms.
        prior: Beta prior, as for :class:`ThompsonSampler`.
        discount: global per-update discount of the evidence.
        window_discount: per-post discount of an arm's short memory (0.9: about 10 posts).
        threshold_z: standard errors that count as a change.
        min_posts: short-memory posts needed before a change can be declared.
        keep_on_change: share of the other arms' evidence kept after a change.
        seed: random generator seed.
    """

    def __init__(
        self,
        n_arms: int,
        *,
        prior: tuple[float, float] = DEFAULT_PRIOR,
        discount: float = 0.9995,
        window_discount: float = 0.9,
        threshold_z: float = 6.0,
        min_posts: float = 5.0,
        keep_on_change: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.sampler = ThompsonSampler(n_arms, prior=prior, discount=discount, seed=seed)
        self.detector = ChangeDetector(
            n_arms, window_discount=window_discount, threshold_z=threshold_z, min_posts=min_posts
        )
        self.keep_on_change = float(keep_on_change)

    @property
    def n_arms(self) -> int:
        return self.sampler.n_arms

    @property
    def changes(self) -> NDArray[np.int64]:
        return self.detector.changes

    def select(self) -> int:
        return self.sampler.select()

    def update(self, arm: int, successes: float, trials: float) -> None:
        """Update the posterior; on a detected change, forget as described above."""
        sampler = self.sampler
        sampler.update(arm, successes, trials)
        long_s = sampler.successes[arm]
        long_n = long_s + sampler.failures[arm]
        # With little history beyond the short memory there is nothing to disagree with.
        enough = long_n > 2 * (self.detector.trials[arm] * self.detector.window_discount + trials)
        predicted = long_s / long_n if enough else None
        if self.detector.observe(arm, successes, trials, predicted):
            s, n = self.detector.short_memory(arm)
            keep = self.keep_on_change
            sampler.successes *= keep
            sampler.failures *= keep
            sampler.successes[arm] = s
            sampler.failures[arm] = n - s

    def choice_probabilities(
        self, n_samples: int = 2000, available: BoolArray | None = None
    ) -> FloatArray:
        return self.sampler.choice_probabilities(n_samples, available)

    def to_frame(self, arm_names: Sequence[str] | None = None) -> pd.DataFrame:
        frame = self.sampler.to_frame(arm_names)
        frame["changes_detected"] = self.changes
        return frame
