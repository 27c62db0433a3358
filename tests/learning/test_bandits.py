"""The samplers explore, forget when told to, fit priors from history and learn shared weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from xbot_assets.learning.bandits import (
    SUCCESS_UNIT,
    ThompsonSampler,
    binomial_evidence,
    fit_beta_prior,
    fit_overdispersion,
)
from xbot_assets.learning.contextual_bandit import LaplaceLogisticSampler, arms_feature_space


def test_posterior_sample_spread_shrinks_with_data() -> None:
    sampler = ThompsonSampler(2, prior=(1.0, 1.0), seed=1)
    sampler.update(0, 3, 10)
    sampler.update(1, 300, 1000)
    draws = sampler.sample(5000)
    spread_little, spread_lots = draws.std(axis=0)
    assert spread_lots < spread_little / 5
    # The sample is centred on the data, not stuck at the prior.
    assert draws[:, 1].mean() == pytest.approx(0.3, abs=0.01)


def test_each_decision_is_a_real_draw_so_overlapping_arms_are_all_tried() -> None:
    sampler = ThompsonSampler(3, seed=2)
    for arm in range(3):
        sampler.update(arm, 5 + arm, 20)
    chosen = {sampler.select() for _ in range(300)}
    assert chosen == {0, 1, 2}
    # Draws differ between decisions (the seed's averaged "sample" was the same every time).
    first = sampler.select(), sampler.last_sample.copy()
    sampler.select()
    assert not np.allclose(first[1], sampler.last_sample)


def _probability_best(alphas: list[float], betas: list[float]) -> np.ndarray:
    """P(arm k has the largest rate) for independent Betas, by numerical integration."""
    out = []
    for k in range(len(alphas)):

        def integrand(x: float, k: int = k) -> float:
            value = stats.beta.pdf(x, alphas[k], betas[k])
            for j in range(len(alphas)):
                if j != k:
                    value *= stats.beta.cdf(x, alphas[j], betas[j])
            return float(value)

        out.append(integrate.quad(integrand, 0, 1, limit=200)[0])
    return np.array(out)


def test_arms_are_chosen_in_proportion_to_their_chance_of_being_best() -> None:
    sampler = ThompsonSampler(3, prior=(1.0, 1.0), seed=3)
    data = [(8, 40), (10, 40), (13, 40)]  # equal data, different results
    for arm, (s, n) in enumerate(data):
        sampler.update(arm, s, n)
    expected = _probability_best([1 + s for s, _ in data], [1 + n - s for s, n in data])
    picks = np.bincount([sampler.select() for _ in range(20000)], minlength=3) / 20000
    np.testing.assert_allclose(picks, expected, atol=0.015)
    np.testing.assert_allclose(sampler.choice_probabilities(20000), expected, atol=0.015)
    assert expected.min() > 0.05  # the test means something: every arm has a real chance


def test_equal_evidence_means_equal_choice() -> None:
    sampler = ThompsonSampler(4, seed=4)
    for arm in range(4):
        sampler.update(arm, 5, 50)
    picks = np.bincount([sampler.select() for _ in range(8000)], minlength=4) / 8000
    np.testing.assert_allclose(picks, 0.25, atol=0.025)


def test_discounting_forgets_old_evidence_and_follows_drift() -> None:
    forgetful = ThompsonSampler(1, discount=0.99, seed=5)
    stubborn = ThompsonSampler(1, discount=1.0, seed=5)
    for sampler in (forgetful, stubborn):
        for _ in range(500):
            sampler.update(0, 8, 10)  # rate 0.8 ...
        for _ in range(300):
            sampler.update(0, 2, 10)  # ... drifts to 0.2
    assert forgetful.posterior_mean()[0] == pytest.approx(0.2, abs=0.03)
    assert stubborn.posterior_mean()[0] > 0.5
    # Evidence decays geometrically: 10 trials per step sum to 10 / (1 - 0.99) at most.
    total = forgetful.successes[0] + forgetful.failures[0]
    assert total == pytest.approx(10 * (1 - 0.99**800) / (1 - 0.99), rel=1e-6)


def test_discount_applies_to_arms_not_played() -> None:
    sampler = ThompsonSampler(2, discount=0.9, seed=6)
    sampler.update(0, 50, 100)
    for _ in range(20):
        sampler.update(1, 1, 2)
    assert sampler.successes[0] + sampler.failures[0] == pytest.approx(100 * 0.9**20)


def test_update_rejects_impossible_counts() -> None:
    sampler = ThompsonSampler(2)
    with pytest.raises(ValueError, match="binomial_evidence"):
        sampler.update(0, 5, 3)
    with pytest.raises(ValueError, match="not in"):
        sampler.update(2, 1, 3)


def test_binomial_evidence_counts_reply_equivalents_and_caps_trials() -> None:
    assert binomial_evidence(27.0, 1000, max_trials=None) == (27.0 / SUCCESS_UNIT, 1000.0)
    s, n = binomial_evidence(27.0, 1000, max_trials=100)
    assert n == 100 and s == pytest.approx(0.2)
    assert binomial_evidence(-50.0, 100) == (0.0, 100.0)  # net-negative post: no success
    assert binomial_evidence(5.0, 0) == (0.0, 0.0)


def test_empirical_bayes_prior_recovers_the_population() -> None:
    rng = np.random.default_rng(7)
    rates = rng.beta(4.0, 96.0, size=400)  # mean 0.04, strength 100
    trials = rng.integers(200, 2000, size=400)
    successes = rng.binomial(trials, rates)
    alpha, beta = fit_beta_prior(successes, trials)
    assert alpha / (alpha + beta) == pytest.approx(0.04, rel=0.05)
    assert 60 < alpha + beta < 160
    assert fit_overdispersion(successes, trials) == pytest.approx(alpha + beta + 1)
    assert fit_beta_prior([1], [10]) == (1.0, 1.0)  # too little history: the fallback


def test_contextual_sampler_learns_shared_weights() -> None:
    formats, topics = ["a", "b", "c"], ["x", "y"]
    space = arms_feature_space(formats, topics)
    true_w = {"intercept": -3.0, "format=a": 0.6, "format=b": 0.0, "format=c": -0.6}
    true_w |= {"topic=x": 0.3, "topic=y": -0.3}
    weights = np.array([true_w[name] for name in space.names])
    rows = [{"format": f, "topic": t} for f in formats for t in topics]
    design = space.design(rows)
    rates = 1 / (1 + np.exp(-(design @ weights)))
    sampler = LaplaceLogisticSampler(space, seed=8)
    rng = np.random.default_rng(9)
    for _ in range(600):
        arm = int(rng.integers(len(rows)))
        sampler.update(design[arm], float(rng.binomial(200, rates[arm])), 200.0)
    np.testing.assert_allclose(sampler.expected_rates(design), rates, rtol=0.15)
    frame = sampler.to_frame()
    # Contrasts are identified even though the one-hot parametrisation is not.
    learned = dict(zip(frame["feature"], frame["mean"], strict=True))
    assert learned["format=a"] - learned["format=c"] == pytest.approx(1.2, abs=0.2)
    probs = sampler.choice_probabilities(design, 4000)
    assert probs.sum() == pytest.approx(1.0)
    assert int(probs.argmax()) == int(rates.argmax())


def test_contextual_sampler_shrinks_spread_and_forgets_with_discount() -> None:
    space = arms_feature_space(["a"], ["x"])
    row = space.design([{"format": "a", "topic": "x"}])[0]
    sampler = LaplaceLogisticSampler(space, discount=0.95, seed=10)
    before = 1 / np.sqrt(sampler.q.copy())
    for _ in range(50):
        sampler.update(row, 10, 100)
    after = 1 / np.sqrt(sampler.q)
    assert (after < before / 3).all()
    for _ in range(200):
        sampler.update(row, 0, 0)  # no evidence: only forgetting
    np.testing.assert_allclose(sampler.q, sampler.prior_q, rtol=0.02)
