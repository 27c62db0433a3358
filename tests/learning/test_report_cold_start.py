"""The report's cold-start flag and best arms come from the posterior that decides the posts."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from tests.learning.test_factored import START
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.engine.decide import BASELINE_POLICY, prior_models
from xbot_assets.learning.bandits import ThompsonSampler
from xbot_assets.learning.design import PastPost
from xbot_assets.learning.factored import fit_factored
from xbot_assets.learning.rewards import REWARD_WEIGHTS
from xbot_assets.report import COLD_START, deciding_arms


def _learned_history() -> list[PastPost]:
    """60 posts: questions earn +0.05 and ai posts +0.04 over the rest (additive effects)."""
    rng = np.random.default_rng(0)
    history = []
    for i in range(60):
        fmt = FORMATS[i % len(FORMATS)]
        topic = DEFAULT_TOPICS[(i // len(FORMATS)) % len(DEFAULT_TOPICS)]
        reward = 0.05 + 0.05 * (fmt == "question") + 0.04 * (topic == "ai")
        reward += float(rng.normal(0, 0.005))
        metrics = {"impressions": 1000, "replies": reward * 1000 / REWARD_WEIGHTS["replies"]}
        at = START + timedelta(hours=7 * i)
        history.append(PastPost(at, fmt, topic, f"post {i} on {topic}", metrics, "72h"))
    return history


def test_a_learned_factored_posterior_is_not_reported_as_cold_start() -> None:
    history = _learned_history()
    now = history[-1].posted_at + timedelta(days=4)
    models = prior_models(now=now)
    models.posterior = fit_factored(history, now=now, formats=FORMATS, topics=DEFAULT_TOPICS)
    models.posteriors_cold = models.posterior.cold_start
    # The Beta baseline has seen nothing (dbt not rebuilt): it must not set the flag.
    models.sampler = ThompsonSampler(len(models.arms), prior=(1.0, 1.0))
    cold, arms = deciding_arms(models, at=now)
    assert cold is False
    assert arms[0]["arm"] == "question:ai" and arms[0]["mean"] > arms[1]["mean"] + 0.02
    assert all(a["sd"] > 0 for a in arms) and len(arms) == len(models.arms)


def test_the_prior_is_reported_as_cold_start() -> None:
    models = prior_models(now=START)
    cold, arms = deciding_arms(models, at=START)
    assert cold is True and COLD_START.startswith("COLD START")
    assert len({round(a["mean"], 9) for a in arms}) == 1  # the prior ranks no arm first


def test_the_baseline_policy_reports_its_beta_posteriors() -> None:
    models = prior_models(now=START)
    models.posterior = fit_factored(
        _learned_history(), now=START + timedelta(days=30), formats=FORMATS, topics=DEFAULT_TOPICS
    )
    models.policy = BASELINE_POLICY
    sampler = ThompsonSampler(len(models.arms), prior=(1.0, 1.0))
    models.sampler = sampler
    cold, _ = deciding_arms(models, at=START)
    assert cold is True  # the Beta sampler that decides has no trials
    sampler.update(models.arms.index("list:python"), 8.0, 10.0)
    cold, arms = deciding_arms(models, at=START)
    assert cold is False and arms[0]["arm"] == "list:python"
