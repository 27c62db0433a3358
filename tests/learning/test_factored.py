"""The factored Bayesian policy: effects recovered, recency seen, rewards winsorised, horizons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from xbot_assets.learning.design import Design, PastPost
from xbot_assets.learning.factored import FitConfig, fit_factored
from xbot_assets.learning.horizon import DEFAULT_HORIZON_SHARE, HorizonModel
from xbot_assets.learning.objective import reward_of, winsorise
from xbot_assets.learning.policy import ContentPolicy
from xbot_assets.learning.posterior import FactoredPosterior, FactoredThompson
from xbot_assets.learning.rewards import REWARD_WEIGHTS

FORMATS = ("single", "thread", "question")
TOPICS = ("ai", "python", "startups")
START = datetime(2026, 1, 5, tzinfo=UTC)
TOPIC_EFFECT = {"ai": 0.02, "python": 0.0, "startups": -0.02}
FORMAT_EFFECT = {"single": 0.0, "thread": 0.015, "question": -0.005}
FATIGUE = -0.02  # per unit of the 12 h same-topic covariate
PARTS = FitConfig(model="reward_parts")
"""The linear model of the reward (the synthetic rewards below are linear in the effects)."""


def _metrics(reward: float, impressions: int = 1000) -> dict[str, float]:
    # Replies carry the reward: weight 13.5 per reply.
    return {"impressions": impressions, "replies": reward * impressions / REWARD_WEIGHTS["replies"]}


def synthetic_history(n: int, seed: int, *, fatigue: float = FATIGUE) -> list[PastPost]:
    """Posts every 5 h on random arms; reward = base + effects + fatigue x recency + noise."""
    rng = np.random.default_rng(seed)
    design = Design(FORMATS, TOPICS)
    idx = design.names.index("topic_recent_12h")
    history: list[PastPost] = []
    for i in range(n):
        at = START + timedelta(hours=5 * i)
        fmt = FORMATS[rng.integers(len(FORMATS))]
        topic = TOPICS[rng.integers(len(TOPICS))]
        recent = design.row(fmt, topic, at, history)[idx]
        reward = (0.05 + TOPIC_EFFECT[topic] + FORMAT_EFFECT[fmt] + fatigue * recent) + rng.normal(
            0, 0.01
        )
        history.append(PastPost(at, fmt, topic, f"post {i} about {topic}", _metrics(reward), "72h"))
    return history


def test_posterior_recovers_known_effects() -> None:
    history = synthetic_history(400, seed=1)
    now = history[-1].posted_at + timedelta(days=4)
    post = fit_factored(history, now=now, formats=FORMATS, topics=TOPICS, config=PARTS)
    effects = post.effects()

    def contrast(a: str, b: str) -> float:
        return effects[a]["mean"] - effects[b]["mean"]

    assert contrast("topic=ai", "topic=startups") == pytest.approx(0.04, abs=0.006)
    assert contrast("format=thread", "format=question") == pytest.approx(0.02, abs=0.006)
    assert effects["topic_recent_12h"]["mean"] == pytest.approx(FATIGUE, abs=0.008)
    # Calibrated noise: the fitted per-post SD is the simulated 0.01, not 6x smaller.
    assert np.sqrt(post.sigma0_sq) == pytest.approx(0.01, rel=0.35)
    assert not post.cold_start and post.posts == 400


def test_cold_start_is_the_prior_and_flagged() -> None:
    post = fit_factored([], now=START, formats=FORMATS, topics=TOPICS, config=PARTS)
    assert post.cold_start and post.posts == 0
    assert np.allclose(post.mean[1:], 0.0)
    again = FactoredPosterior.from_dict(post.to_dict())
    assert again.cold_start and np.allclose(again.cov, post.cov)
    counts = fit_factored([], now=START, formats=FORMATS, topics=TOPICS)
    assert counts.kind == "counts" and counts.cold_start
    p = counts.design.n_features
    assert np.allclose(counts.mean[1:p], 0.0)  # no arm preferred before any evidence
    again = FactoredPosterior.from_dict(counts.to_dict())
    assert again.kind == "counts" and again.cold_start and np.allclose(again.cov, counts.cov)


def test_recency_covariate_reduces_repetition() -> None:
    """With fatigue learned, a topic just posted is chosen far less often than with no fatigue."""
    arms = [f"{f}:{t}" for f in FORMATS for t in TOPICS]

    def repeat_share(fatigue: float) -> float:
        history = synthetic_history(300, seed=2, fatigue=fatigue)
        now = history[-1].posted_at + timedelta(days=4)
        post = fit_factored(history, now=now, formats=FORMATS, topics=TOPICS)
        # The best topic (ai) was posted 1 h before the slot.
        slot = now + timedelta(hours=10)
        recent = [*history, PastPost(slot - timedelta(hours=1), "thread", "ai", "ai again")]
        chooser = FactoredThompson(post, arms, rng=np.random.default_rng(0))
        chooser.prepare(slot, recent)
        picks = [arms[chooser.select()] for _ in range(300)]
        return sum(p.endswith(":ai") for p in picks) / len(picks)

    assert repeat_share(-0.06) < 0.2 < 0.8 < repeat_share(0.0)


def test_winsorise_limits_tails_and_keeps_sign() -> None:
    values = np.array([0.03, -0.01, 0.06, 0.02, 0.0, 0.04, -0.5, 3.0])
    out, (lo, hi) = winsorise(values)
    assert out.max() == pytest.approx(hi) and out.max() < 0.3
    assert out.min() == pytest.approx(lo) and -0.5 < lo < 0  # winsorised, not clipped at 0
    assert np.array_equal(out[:6], values[:6])  # a small negative reward keeps its sign
    assert reward_of({"impressions": 100, "negative_feedback": 1}) == pytest.approx(-0.74)
    assert reward_of({"impressions": 0, "likes": 3}) is None


def test_horizon_model_fits_shares_and_projects() -> None:
    pairs = [("6h", {"impressions": 60, "likes": 6}, {"impressions": 100, "likes": 10})] * 12
    model = HorizonModel.fit(pairs)
    assert model.share("6h", "impressions") == pytest.approx(0.6)
    assert model.project({"impressions": 60, "likes": 6}, "6h")["impressions"] == pytest.approx(100)
    # Too few completed posts: the documented table.
    sparse = HorizonModel.fit(pairs[:3])
    assert sparse.share("6h", "likes") == DEFAULT_HORIZON_SHARE["6h"]
    assert HorizonModel.from_dict(model.to_dict()).share("6h", "likes") == pytest.approx(0.6)


def test_young_snapshots_are_not_evidence() -> None:
    history = synthetic_history(30, seed=3)
    last = history[-1]
    young = [*history[:-1], PastPost(last.posted_at, last.format, last.topic, last.text,
                                     last.metrics, "1h")]  # fmt: skip
    now = last.posted_at + timedelta(hours=2)
    post = fit_factored(young, now=now, formats=FORMATS, topics=TOPICS)
    assert post.posts == 29 and "1h" not in post.horizons_used


def test_reward_parts_sum_to_the_reward_and_rare_reports_do_not_swamp_arm_effects() -> None:
    from xbot_assets.learning.objective import component_names, reward_components

    metrics = {"impressions": 400, "replies": 2, "likes": 9, "negative_feedback": 1, "reports": 1}
    parts = reward_components(metrics)
    assert parts is not None and set(parts) == set(component_names("engagement"))
    assert sum(parts.values()) == pytest.approx(reward_of(metrics))
    assert component_names("growth") == ("positive",)
    # A report now and then (-369 per report) on random posts: the fitted arm contrast still
    # comes out of the replies, and the reports part's effects stay near zero.
    rng = np.random.default_rng(4)
    history = synthetic_history(300, seed=4)
    noisy = []
    for post in history:
        m = dict(post.metrics or {})
        m["reports"] = int(rng.random() < 0.3)
        noisy.append(PastPost(post.posted_at, post.format, post.topic, post.text, m, "72h"))
    now = history[-1].posted_at + timedelta(days=4)
    fitted = fit_factored(noisy, now=now, formats=FORMATS, topics=TOPICS, config=PARTS)
    effects = fitted.effects()
    contrast = effects["topic=ai"]["mean"] - effects["topic=startups"]["mean"]
    assert contrast == pytest.approx(0.04, abs=0.02)
    assert fitted.components["reports"]["prior_scale"] < fitted.components["reports"]["noise_sd"]


def test_exploration_scales_the_thompson_draws() -> None:
    history = synthetic_history(60, seed=5)
    now = history[-1].posted_at + timedelta(days=4)
    draws = {}
    for scale in (1.0, 0.5):
        post = fit_factored(
            history,
            now=now,
            formats=FORMATS,
            topics=TOPICS,
            config=FitConfig(model="reward_parts", exploration=scale),
        )
        assert FactoredPosterior.from_dict(post.to_dict()).exploration == scale
        draws[scale] = post.draw(np.random.default_rng(0), 4000)
    ratio = draws[0.5].std(axis=0) / draws[1.0].std(axis=0)
    assert np.allclose(ratio, 0.5, atol=0.05)
    assert np.allclose(draws[0.5].mean(axis=0), draws[1.0].mean(axis=0), atol=0.01)


def test_exploration_schedule_narrows_the_draws_as_posts_accumulate() -> None:
    """``exploration_late``: the spread scale falls linearly from ``exploration`` at 0 posts to
    ``exploration_late`` at ``exploration_posts``, and stays there (off by default)."""
    config = FitConfig(exploration=0.5, exploration_late=0.1, exploration_posts=100,
                       exploration_hold_posts=0)  # fmt: skip
    assert config.exploration_at(0) == pytest.approx(0.5)
    assert config.exploration_at(50) == pytest.approx(0.3)
    assert config.exploration_at(400) == pytest.approx(0.1)
    # the default: a month (120 posts) at 0.25, then falling to 0.1 at 360 posts
    default = FitConfig()
    assert default.exploration_at(0) == default.exploration_at(120) == default.exploration == 0.25
    assert default.exploration_at(400) == pytest.approx(0.1)
    assert FitConfig(exploration_late=None).exploration_at(400) == 0.25
    # held: unchanged for the first 120 posts (a month's decisions stay the same), then falling
    held = FitConfig(exploration=0.25, exploration_late=0.1, exploration_posts=360,
                     exploration_hold_posts=120)  # fmt: skip
    assert held.exploration_at(0) == held.exploration_at(120) == 0.25
    assert held.exploration_at(240) == pytest.approx(0.175)
    assert held.exploration_at(1000) == pytest.approx(0.1)
    history = synthetic_history(60, seed=5)
    now = history[-1].posted_at + timedelta(days=4)
    post = fit_factored(history, now=now, formats=FORMATS, topics=TOPICS, config=config)
    assert post.exploration == pytest.approx(0.5 - 0.4 * post.posts / 100)


def test_format_exploration_widens_only_the_format_draws() -> None:
    history = synthetic_history(60, seed=5)
    now = history[-1].posted_at + timedelta(days=4)
    plain = fit_factored(history, now=now, formats=FORMATS, topics=TOPICS)
    wide = fit_factored(
        history, now=now, formats=FORMATS, topics=TOPICS,
        config=FitConfig(format_exploration=0.75),
    )  # fmt: skip
    assert FactoredPosterior.from_dict(wide.to_dict()).format_exploration == 0.75
    ratio = wide.draw(np.random.default_rng(0), 4000).std(axis=0) / plain.draw(
        np.random.default_rng(0), 4000
    ).std(axis=0)
    is_format = np.array([n.startswith("format=") or ":format=" in n for n in wide.names])
    assert is_format.sum() == len(FORMATS) * 3  # the effects and two negative rates each
    assert np.allclose(ratio[is_format], 0.75 / plain.exploration, rtol=0.05)
    assert np.allclose(ratio[~is_format], 1.0, rtol=0.05)


def test_topic_half_lives_name_the_fatigue_covariates_and_survive_a_round_trip() -> None:
    history = synthetic_history(40, seed=2)
    now = history[-1].posted_at + timedelta(days=4)
    post = fit_factored(
        history, now=now, formats=FORMATS, topics=TOPICS,
        config=FitConfig(topic_half_lives=(18.0, 72.0)),
    )  # fmt: skip
    assert "topic_recent_18h" in post.names and "topic_recent_72h" in post.names
    design = FactoredPosterior.from_dict(post.to_dict()).design
    assert design.topic_half_lives == (18.0, 72.0)
    at = history[-1].posted_at + timedelta(hours=18)
    row = design.row(history[-1].format, history[-1].topic, at, history)
    # The last post, 18 h old, adds exactly one half to the 18 h exposure.
    others = [p for p in history[:-1] if p.topic == history[-1].topic]
    expected = 0.5 + sum(0.5 ** ((at - p.posted_at).total_seconds() / 3600 / 18) for p in others
                         if at - p.posted_at <= timedelta(days=7))  # fmt: skip
    assert row[design.names.index("topic_recent_18h")] == pytest.approx(expected)
    with pytest.raises(ValueError, match="two positive hours"):
        Design(FORMATS, TOPICS, topic_half_lives=(18.0,))


def _opening_posterior(posts_per_format: int) -> tuple[FactoredPosterior, datetime, list[str]]:
    """A posterior fitted with a balanced opening of ``posts_per_format``, a time after its
    posts, and the arms."""
    history = synthetic_history(30, seed=4)
    now = history[-1].posted_at + timedelta(days=4)
    post = fit_factored(
        history, now=now, formats=FORMATS, topics=TOPICS,
        config=FitConfig(opening_format_posts=posts_per_format),
    )  # fmt: skip
    return post, now, [f"{f}:{t}" for f in FORMATS for t in TOPICS]


def test_opening_chooses_only_the_least_posted_formats_until_each_has_enough() -> None:
    """The balanced opening: a format the account has posted fewer times than the others is
    the only choice (with its propensity) until every format has ``opening_format_posts``."""
    post, now, arms = _opening_posterior(3)
    assert FactoredPosterior.from_dict(post.to_dict()).opening_format_posts == 3
    # The account's history: single 3 times, thread twice, question once (and long ago, so
    # the posterior's own draws would rather post thread: the check at the end).
    own = [
        PastPost(START + timedelta(hours=6 * i), fmt, "ai", f"text {i}")
        for i, fmt in enumerate(["question", "single", "single", "single", "thread", "thread"])
    ]
    chooser = FactoredThompson(post, arms, rng=np.random.default_rng(0))
    chooser.prepare(now, own)
    picks = {arms[chooser.select()].split(":")[0] for _ in range(200)}
    assert picks == {"question"}
    shares = chooser.choice_probabilities(2000)
    assert shares[[a.startswith("question:") for a in arms]].sum() == pytest.approx(1.0)
    # One question arm is dry: the fallback stays inside the opening.
    available = np.array([a != "question:ai" for a in arms])
    shares = chooser.choice_probabilities(2000, available)
    assert shares[[a.startswith("question:") for a in arms]].sum() == pytest.approx(1.0)
    assert shares[arms.index("question:ai")] == 0.0
    # Every format at 3 posts: the opening is over, the draws alone choose.
    done = own + [
        PastPost(START + timedelta(hours=40 + i), fmt, "python", f"more {i}")
        for i, fmt in enumerate(["thread", "question", "question"])
    ]
    chooser.prepare(now, done)
    assert chooser.eligible is None
    without = FactoredThompson(replace(post, opening_format_posts=0), arms)
    without.prepare(now, done)
    chooser.rng, without.rng = np.random.default_rng(1), np.random.default_rng(1)
    assert [chooser.select() for _ in range(50)] == [without.select() for _ in range(50)]
    # While it lasted, the draws alone would have posted thread: the opening made the choice.
    without.prepare(now, own)
    assert {arms[without.select()].split(":")[0] for _ in range(50)} == {"thread"}


def test_opening_falls_back_to_another_arm_of_the_opening_formats() -> None:
    """When the opening's arm has nothing that passes the guard, the next arm tried is still one
    of the least-posted formats, and its propensity says so (not the floor of an arm the
    opening excluded)."""
    post, now, arms = _opening_posterior(2)
    own = [PastPost(START + timedelta(hours=6 * i), f, "ai", f"t{i}") for i, f in
           enumerate(["single", "single", "thread", "thread"])]  # fmt: skip
    for seed in range(10):
        chooser = FactoredThompson(post, arms, rng=np.random.default_rng(seed))
        chooser.prepare(now, own)
        tried: list[str] = []

        def generate(*, format: str, topic: str, n: int) -> list[str]:
            tried.append(f"{format}:{topic}")
            return [f"{format} {topic} {i}" for i in range(n)]

        def guard(text: str) -> bool:
            return len(tried) > 1  # the first arm is dry

        decision = ContentPolicy(
            arms, chooser, generate=generate, guard=guard, score=lambda rows: np.zeros(len(rows))
        ).decide(now=now, slot=now)
        assert [a.split(":")[0] for a in tried] == ["question", "question"]
        assert decision.arm == tried[1] and decision.exhausted_arms == [tried[0]]
        # the log says the draw was limited, and to which arms (its sampled values cover all)
        assert decision.eligible_arms == [a for a in arms if a.startswith("question:")]
        assert set(decision.sampled_values) == set(arms)
        assert decision.propensity > 0.1  # one of two question arms left, not 1 / samples
