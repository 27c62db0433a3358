"""The audience model: classifier conventions, scenarios, determinism, realistic statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from xbot_assets.sandbox import FORMATS, SCENARIOS, SandboxX, ScenarioError, SimClock, classify_text
from xbot_assets.sandbox.features import weighted_length
from xbot_assets.sandbox.oracle import Oracle
from xbot_assets.sandbox.scenario import load_scenario
from xbot_assets.sandbox.textgen import make_post_text


@pytest.mark.parametrize(
    ("text", "topic", "fmt"),
    [
        ("How to use pandas groupby without tears", "python", "how_to"),
        ("Hot take: LLMs make prompt engineering obsolete", "ai", "hot_take"),
        ("Unpopular opinion: SQL notebooks beat dashboards", "data_science", "hot_take"),
        ("Which pytest plugin saves you most time?", "python", "question"),
        (
            "Founder checklist:\n1. talk to customers\n2) ship the MVP\n- raise a seed round",
            "startups",
            "list",
        ),
        ("Deep work and good habits beat hustle.", "productivity", "single"),
        ("My resume got me an interview: career tips", "career", "single"),
        ("Open a pull request on GitHub today", "open_source", "single"),
        ("Docker and Kubernetes for CI deploy", "devops", "single"),
        ("The weather is nice", "other", "single"),
        ("Train a model on the dataset", "ai", "single"),  # tie ai/data_science -> first (ai)
        ("MAIL and paid are not keywords", "other", "single"),  # whole words only
    ],
)
def test_classifier_follows_shared_conventions(text: str, topic: str, fmt: str) -> None:
    features = classify_text(text)
    assert (features.topic, features.format) == (topic, fmt)


def test_classifier_surface_features_and_threads() -> None:
    features = classify_text("Python tips #python #coding https://example.com 3x faster 🚀")
    assert features.hashtag_count == 2 and features.has_link and features.has_number
    assert features.has_emoji
    assert classify_text("Python tips", is_thread=True).format == "thread"
    assert weighted_length("a" * 10 + " https://example.com/very/long/path") == 11 + 23
    assert weighted_length("日本") == 4


def test_sim_clock_is_aware_and_moves_only_when_told() -> None:
    clock = SimClock(datetime(2026, 1, 5, tzinfo=UTC))
    assert clock.now() == clock.now()
    assert clock.advance(timedelta(hours=2)) == datetime(2026, 1, 5, 2, tzinfo=UTC)
    assert clock.now().tzinfo is not None
    with pytest.raises(ValueError, match="non-negative"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 1, 1))


def test_wall_clock_runs_on_its_own_and_still_jumps() -> None:
    import time

    from xbot_assets.sandbox.clock import WallClock

    start = datetime(2026, 1, 5, tzinfo=UTC)
    clock = WallClock(start, speed=3600.0)  # a simulated hour per real second
    time.sleep(0.05)
    assert clock.now() - start >= timedelta(seconds=150)
    jumped = clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    assert jumped == datetime(2026, 2, 1, tzinfo=UTC) and clock.now() >= jumped
    assert clock.advance(timedelta(days=1)) >= datetime(2026, 2, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="positive speed"):
        WallClock(start, speed=0)


def test_every_scenario_loads_and_the_seed_decides_the_truth() -> None:
    for name in SCENARIOS:
        params = load_scenario(name, seed=3)
        assert params.followers > 0 and len(params.account_topics) >= 4
    a, b, c = load_scenario("default", 1), load_scenario("default", 1), load_scenario("default", 2)
    assert np.array_equal(a.topic_effect, b.topic_effect)
    assert not np.array_equal(a.topic_effect, c.topic_effect)
    assert load_scenario("large").followers > 100 * load_scenario("cold_start").followers
    with pytest.raises(ScenarioError, match="use one of default"):
        load_scenario("nope")


def test_oracle_rates_sampler_and_drift() -> None:
    oracle = Oracle("default", seed=7)
    assert len(oracle.arms) == 24 and oracle.arms[0] == "single:ai"
    rates = oracle.expected_rates("question", "python", hour=10, weekday=1)
    assert set(rates) == set(oracle.metrics)
    assert rates["replies"] > oracle.expected_rates("single", "python", 10, 1)["replies"] * 2
    assert oracle.expected_rates("single", "ai", 3, 1)["impressions"] < rates["impressions"]
    matrix = oracle.expected_rates_matrix(10, 1)
    assert matrix.shape == (24, len(oracle.metrics))
    weighted = oracle.expected_weighted_rates({"replies": 13.5, "likes": 0.5}, 10, 1)
    q = oracle.arm_index("question:python")
    assert weighted[q] == pytest.approx(13.5 * rates["replies"] + 0.5 * rates["likes"])
    rng = np.random.default_rng(0)
    arm = oracle.arm_index("how_to:python")
    batch = oracle.sample_batch(np.full(40_000, arm), 10, 1, None, rng)
    # The sampler agrees with the expectation (impressions within 5%, likes rate within 5%).
    assert batch[:, 0].mean() == pytest.approx(matrix[arm, 0], rel=0.05)
    likes = oracle.metrics.index("likes")
    assert (batch[:, likes] / np.maximum(batch[:, 0], 1)).mean() == pytest.approx(
        matrix[arm, likes], rel=0.08
    )
    one = oracle.sample("how_to", "python", 10, 1, None, np.random.default_rng(1))
    assert one == oracle.sample("how_to", "python", 10, 1, None, np.random.default_rng(1))
    drift = Oracle("drift", seed=7)
    before = drift.expected_rates("single", "ai", 10, 1, drift.epoch + timedelta(days=13))
    after = drift.expected_rates("single", "ai", 10, 1, drift.epoch + timedelta(days=15))
    assert after["likes"] < before["likes"] * 0.6
    assert (
        drift.expected_rates("single", "startups", 10, 1, drift.epoch + timedelta(days=15))["likes"]
        > drift.expected_rates("single", "startups", 10, 1, drift.epoch)["likes"] * 1.8
    )


def test_oracle_scalar_sampler_is_fast() -> None:
    import time

    oracle = Oracle("default", seed=7)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i in range(5_000):
        oracle.sample(FORMATS[i % 6], "ai", i % 24, i % 7, None, rng)
    # ~25 us each when idle (benchmarks/sandbox_oracle.py); generous bound for a loaded machine.
    assert time.perf_counter() - started < 2.5


def _simulate(seed: int, posts: int = 240, scenario: str = "default") -> list[dict[str, int]]:
    sandbox = SandboxX(scenario, seed=seed)
    token = sandbox.account().user_token
    rng = np.random.default_rng(seed)
    ids = []
    formats = [f for f in FORMATS if f != "thread"]
    for _ in range(posts):
        sandbox.clock.advance(timedelta(minutes=int(rng.integers(60, 300))))
        text = make_post_text(
            str(rng.choice(formats)), str(rng.choice(sandbox.params.account_topics)), rng
        )
        ids.append(sandbox.create_tweet(text, token=token)["data"]["id"])
    sandbox.clock.advance(timedelta(days=4))
    return [sandbox.post_metrics(post_id) for post_id in ids]


def test_same_seed_same_outcomes_other_seed_other_outcomes() -> None:
    assert _simulate(11, 60) == _simulate(11, 60)
    assert _simulate(11, 60) != _simulate(12, 60)


def test_default_scenario_statistics_are_realistic() -> None:
    outcomes = _simulate(5)
    impressions = np.array([o["impressions"] for o in outcomes], dtype=float)
    engaged = np.array(
        [sum(o[m] for m in ("likes", "reposts", "replies", "quotes", "bookmarks",
                            "profile_clicks")) for o in outcomes], dtype=float,
    )  # fmt: skip
    rate = engaged / np.maximum(impressions, 1)
    in_range = ((rate >= 0.005) & (rate <= 0.08)).mean()
    assert in_range >= 0.75, f"engagement rate in 0.5%-8% for only {in_range:.0%}"
    median = np.median(impressions)
    assert 80 <= median <= 800  # a 2k-follower account: a few hundred impressions per post
    # Heavy tail: the mean sits well above the median and the top post dwarfs the median.
    assert impressions.mean() > 1.3 * median
    assert impressions.max() > 8 * median
    # Rare outliers: under 3% of posts above 15x the median.
    assert (impressions > 15 * median).mean() < 0.03


def test_expected_reward_is_the_posts_rates_under_the_callers_weights(sandbox: SandboxX) -> None:
    """Evaluation truth: rates · weights; a thread part scores as its root; bad input refused."""
    token = sandbox.account().user_token
    root = sandbox.create_tweet("Hot take: pytest fixtures beat setUp", token=token)
    root_id = root["data"]["id"]
    part = sandbox.create_tweet("and here is why", reply_to=root_id, token=token)
    post = sandbox.post(root_id)
    assert post is not None
    weights = {"replies": 13.5, "likes": 0.5, "negative_feedback": -74.0}
    from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS

    by_name = dict(zip(ENGAGEMENT_METRICS, post.rates, strict=True))
    expected = sum(w * by_name[m] for m, w in weights.items())
    assert sandbox.expected_reward(root_id, weights) == pytest.approx(expected)
    assert sandbox.expected_reward(part["data"]["id"], weights) == pytest.approx(expected)
    assert sandbox.expected_reward(root_id, {"likes": 1.0}) != pytest.approx(expected)
    with pytest.raises(KeyError):
        sandbox.expected_reward("999", weights)
    with pytest.raises(ValueError, match="unknown metrics"):
        sandbox.expected_reward(root_id, {"impressions": 1.0})
