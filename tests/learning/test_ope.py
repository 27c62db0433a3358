"""Off-policy estimates land on the truth of a synthetic logged dataset with known values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xbot_assets.learning.ope import (
    arm_mean_reward_model,
    compare_policies,
    evaluate_policy,
    fixed_policy,
    greedy_policy,
    uniform_policy,
)
from xbot_assets.learning.synthetic import (
    ARMS,
    hour_effect,
    synthetic_post_outcomes,
    true_arm_rates,
)


@pytest.fixture(scope="module")
def logged() -> pd.DataFrame:
    # A skewed logging policy: arms later in the list are logged far more often.
    probs = np.linspace(1, 4, len(ARMS))
    return synthetic_post_outcomes(6000, seed=11, arm_probabilities=probs / probs.sum())


def _truth(logged: pd.DataFrame, target: np.ndarray) -> float:
    rates = true_arm_rates(11)
    per_arm = (
        np.array([[rates[a] for a in ARMS]])
        * logged["hour_local"].map(hour_effect).to_numpy()[:, None]
    )
    return float((target * per_arm).sum(axis=1).mean())


@pytest.mark.parametrize("policy", ["uniform", "best_arm", "worst_three"])
def test_estimates_are_close_to_the_truth(logged: pd.DataFrame, policy: str) -> None:
    n, k = len(logged), len(ARMS)
    rates = true_arm_rates(11)
    if policy == "uniform":
        target = uniform_policy(n, k)
    elif policy == "best_arm":
        target = greedy_policy(np.tile([rates[a] for a in ARMS], (n, 1)))
    else:
        worst = np.argsort([rates[a] for a in ARMS])[:3]
        p = np.zeros(k)
        p[worst] = 1 / 3
        target = fixed_policy(p, n)
    truth = _truth(logged, target)
    q = arm_mean_reward_model(logged, ARMS)
    estimates = evaluate_policy(logged, ARMS, target, reward_predictions=q)
    for name in ("ips", "snips", "dr"):
        est = estimates[name]
        assert est.value == pytest.approx(truth, rel=0.12), name
        assert est.ci_low - 2 * est.std_error <= truth <= est.ci_high + 2 * est.std_error, name
    # Doubly robust is tighter than plain IPS.
    assert estimates["dr"].std_error < estimates["ips"].std_error


def test_naive_average_is_biased_but_ips_is_not(logged: pd.DataFrame) -> None:
    target = uniform_policy(len(logged), len(ARMS))
    truth = _truth(logged, target)
    naive = float(logged["reward"].mean())
    ips = evaluate_policy(logged, ARMS, target)["ips"].value
    assert abs(ips - truth) < abs(naive - truth)


def test_compare_policies_table_and_bad_input(logged: pd.DataFrame) -> None:
    n, k = len(logged), len(ARMS)
    table = compare_policies(logged, ARMS, {"random": uniform_policy(n, k)})
    assert set(table["policy"]) == {"logged", "random"}
    assert (table["ci95_low"] <= table["value"]).all()
    with pytest.raises(ValueError, match="not among the evaluated arms"):
        evaluate_policy(logged, ARMS[:3], uniform_policy(n, 3))
    with pytest.raises(ValueError, match="propensity"):
        evaluate_policy(logged.drop(columns="propensity"), ARMS, uniform_policy(n, k))


def test_estimates_match_the_sandbox_oracle() -> None:
    """Logged posts drawn from the sandbox's oracle: IPS/SNIPS/DR land on the on-policy truth."""
    from xbot_assets.learning.rewards import REWARD_WEIGHTS
    from xbot_assets.sandbox.oracle import Oracle

    oracle = Oracle("default", seed=3)
    arms = oracle.arms
    k = len(arms)
    weights = np.array([REWARD_WEIGHTS.get(m, 0.0) for m in oracle.metrics])
    rng = np.random.default_rng(5)

    def per_post_reward(arm_idx: np.ndarray, hours: np.ndarray) -> np.ndarray:
        counts = oracle.sample_batch(arm_idx, hours, 2, rng=rng, days=np.zeros(len(arm_idx)))
        return (counts[:, 1:] @ weights[1:]) / np.maximum(counts[:, 0], 1)

    # A skewed logging policy, and a target that favours three arms.
    logging_p = np.linspace(1, 3, k)
    logging_p /= logging_p.sum()
    target_p = np.full(k, 0.1 / (k - 3))
    target_p[[2, 9, 17]] = 0.3
    n = 20000
    hours = rng.choice([9, 13, 19], size=n)
    logged_arms = rng.choice(k, size=n, p=logging_p)
    logged = pd.DataFrame(
        {
            "arm": [arms[a] for a in logged_arms],
            "reward": per_post_reward(logged_arms, hours),
            "propensity": logging_p[logged_arms],
        }
    )
    truth_arms = rng.choice(k, size=200_000, p=target_p)
    truth = float(per_post_reward(truth_arms, rng.choice([9, 13, 19], size=200_000)).mean())
    target = fixed_policy(target_p, n)
    estimates = evaluate_policy(
        logged, arms, target, reward_predictions=arm_mean_reward_model(logged, arms)
    )
    for name in ("ips", "snips", "dr"):
        est = estimates[name]
        assert est.value == pytest.approx(truth, rel=0.06), name
        assert est.ci_low - est.std_error <= truth <= est.ci_high + est.std_error, name
    # The logged average is biased by the logging policy: the reweighting is doing the work.
    assert abs(float(logged["reward"].mean()) - truth) > 0.08 * truth
