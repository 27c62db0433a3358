"""Scheduler rules hold, the policy records every step, the engine reports what it learned."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from xbot_assets.learning.bandits import DriftAwareThompson, ThompsonSampler
from xbot_assets.learning.contextual_bandit import LaplaceLogisticSampler, arms_feature_space
from xbot_assets.learning.engine import fit_arm_posteriors, learned_config, post_evidence
from xbot_assets.learning.policy import (
    MAX_ARMS_TRIED,
    ContentPolicy,
    ContextualChooser,
    guard_verdict,
)
from xbot_assets.learning.scheduler import ScheduleConfig, SlotScheduler
from xbot_assets.learning.synthetic import ARMS, synthetic_post_outcomes, true_arm_rates


def test_plan_respects_quiet_hours_spacing_and_jitter() -> None:
    config = ScheduleConfig(
        timezone="America/New_York",
        quiet_start_hour=22,
        quiet_end_hour=8,
        min_spacing_minutes=90,
        jitter_minutes=20,
        posts_per_day=6,
    )
    tz = ZoneInfo(config.timezone)
    minutes: set[int] = set()
    sizes = []
    for seed in range(20):
        plan = SlotScheduler(config, seed=seed).plan_day(date(2026, 3, 10))
        sizes.append(len(plan))
        assert 4 <= len(plan) <= 6
        local = [p.astimezone(tz) for p in plan]
        assert all(8 <= t.hour < 22 for t in local)
        assert all(b - a >= timedelta(minutes=90) for a, b in itertools.pairwise(plan))
        minutes.update(t.minute for t in local)
    assert len(minutes) > 10  # jitter: not the same minute every day
    assert np.mean(sizes) >= 5.5  # spacing rarely costs a post


def test_scheduler_learns_the_good_hours() -> None:
    config = ScheduleConfig(quiet_start_hour=0, quiet_end_hour=6, min_spacing_minutes=0)
    scheduler = SlotScheduler(config, seed=1)
    for hour in range(6, 24):
        for _ in range(30):
            scheduler.update(hour, 20.0 if hour in (19, 20) else 2.0, 200.0)
    counts = np.zeros(24)
    for _ in range(200):
        counts[scheduler.sample_hours()[0]] += 1
    assert counts[19] + counts[20] == 200
    assert scheduler.next_slot(datetime(2026, 3, 10, 12, tzinfo=UTC)) is not None


def test_schedule_config_rejects_bad_hours() -> None:
    with pytest.raises(ValueError, match="bot_config"):
        ScheduleConfig(quiet_start_hour=25)
    assert ScheduleConfig.from_mapping({"jitter_minutes": 3, "unrelated": 1}).jitter_minutes == 3


def _generate(*, format: str, topic: str, n: int) -> list[str]:
    return [f"{format} about {topic} #{i}" + (" spam" if i == 0 else "") for i in range(n)]


def _guard(text: str) -> tuple[bool, str]:
    return ("spam" not in text, "spam word" if "spam" in text else "")


def test_policy_records_every_step_and_queues_the_best_allowed() -> None:
    sampler = ThompsonSampler(len(ARMS), seed=3)
    for arm in range(len(ARMS)):
        sampler.update(arm, 30.0 if arm == 5 else 5.0, 100.0)
    policy = ContentPolicy(
        ARMS,
        sampler,
        generate=_generate,
        guard=_guard,
        score=lambda rows: np.array([len(r["text"]) + i for i, r in enumerate(rows)], float),
        n_candidates=4,
        settings={"discount": 1.0},
    )
    now = datetime(2026, 3, 10, 9, tzinfo=UTC)
    decision = policy.decide(now=now, slot=now + timedelta(hours=1))
    assert decision.arm == ARMS[decision.arm_index]
    assert set(decision.sampled_values) == set(ARMS)
    assert 0 < decision.propensity <= 1
    assert len(decision.candidates) == 4
    blocked = [c for c in decision.candidates if not c.allowed]
    assert len(blocked) == 1 and blocked[0].score is None and blocked[0].guard_reason
    assert decision.chosen_text == decision.candidates[-1].text  # highest score
    record = decision.to_dict()
    assert record["slot"].startswith("2026-03-10T10:00") and record["settings"] == {"discount": 1.0}
    # The arm with strong evidence is chosen with high propensity.
    assert sampler.choice_probabilities()[5] > 0.9
    assert decision.arm_index == 5 and decision.propensity > 0.9


def test_policy_takes_its_slot_from_the_scheduler() -> None:
    config = ScheduleConfig(quiet_start_hour=22, quiet_end_hour=8, min_spacing_minutes=60)
    policy = ContentPolicy(
        ARMS,
        ThompsonSampler(len(ARMS), seed=7),
        generate=_generate,
        guard=_guard,
        score=lambda rows: np.ones(len(rows)),
        scheduler=SlotScheduler(config, seed=7),
    )
    now = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # quiet time: the slot is tomorrow
    decision = policy.decide(now=now)
    assert decision.slot > now and 8 <= decision.slot.hour < 22


def test_policy_skips_with_a_reason_when_every_candidate_is_blocked() -> None:
    policy = ContentPolicy(
        ARMS,
        ThompsonSampler(len(ARMS), seed=4),
        generate=lambda **kw: ["spam"] * kw["n"],
        guard=_guard,
        score=lambda rows: np.zeros(len(rows)),
    )
    decision = policy.decide(now=datetime(2026, 3, 10, tzinfo=UTC))
    assert decision.chosen_text is None and "guard" in decision.skipped_reason


def _strong_sampler(order: list[int]) -> ThompsonSampler:
    """A sampler whose draws rank the arms in ``order`` (first best) almost surely."""
    sampler = ThompsonSampler(len(ARMS), seed=4)
    for arm in range(len(ARMS)):
        rate = 0.9 - 0.1 * order.index(arm) if arm in order else 0.05
        sampler.update(arm, rate * 10000.0, 10000.0)
    return sampler


def test_an_arm_with_nothing_that_passes_falls_back_to_the_next_of_the_same_draw() -> None:
    """The loop's skipped slots: the drawn arm's texts all fail the guard (a generator out of
    fresh text), so the decision posts the draw's next arm, with the propensity of Thompson
    sampling over the arms that can post, and records the arm passed over."""
    dry = ARMS[5]
    sampler = _strong_sampler([5, 2, 7])
    policy = ContentPolicy(
        ARMS,
        sampler,
        generate=lambda **kw: [
            f"{kw['format']} about {kw['topic']} #{i}"
            + (" spam" if kw["format"] + ":" + kw["topic"] == dry else "")
            for i in range(kw["n"])
        ],
        guard=_guard,
        score=lambda rows: np.ones(len(rows)),
        n_candidates=3,
    )
    decision = policy.decide(now=datetime(2026, 3, 10, tzinfo=UTC))
    assert decision.exhausted_arms == [dry]
    assert decision.arm == ARMS[2] and decision.arm_index == 2
    assert decision.chosen_text is not None and decision.chosen_text.startswith(
        ARMS[2].split(":")[0]
    )
    assert len(decision.candidates) == 6  # both batches recorded, the dry one blocked
    assert [c.allowed for c in decision.candidates] == [False] * 3 + [True] * 3
    # Over all arms, arm 2 is almost never the argmax (arm 5 is); among those that can post it
    # almost always is: the logged propensity is the latter.
    assert sampler.choice_probabilities()[2] < 0.05
    assert decision.propensity > 0.9


def test_a_slot_is_skipped_only_after_max_arms_tried() -> None:
    tried: list[str] = []

    def generate(**kw: Any) -> list[str]:
        tried.append(f"{kw['format']}:{kw['topic']}")
        return ["spam"] * kw["n"]

    order = [5, 2, 7, 1, 3]
    policy = ContentPolicy(
        ARMS, _strong_sampler(order), generate=generate, guard=_guard,
        score=lambda rows: np.zeros(len(rows)),
    )  # fmt: skip
    decision = policy.decide(now=datetime(2026, 3, 10, tzinfo=UTC))
    assert tried == [ARMS[i] for i in order[:MAX_ARMS_TRIED]]
    assert decision.chosen_text is None and "guard" in decision.skipped_reason
    assert decision.arm == ARMS[5] and decision.exhausted_arms == tried
    assert all(arm in decision.skipped_reason for arm in tried)


def test_a_generator_that_returns_nothing_is_not_asked_for_more_arms() -> None:
    calls: list[str] = []

    def generate(**kw: Any) -> list[str]:
        calls.append(f"{kw['format']}:{kw['topic']}")
        return []

    policy = ContentPolicy(
        ARMS, _strong_sampler([5, 2]), generate=generate, guard=_guard,
        score=lambda rows: np.zeros(len(rows)),
    )  # fmt: skip
    decision = policy.decide(now=datetime(2026, 3, 10, tzinfo=UTC))
    assert calls == [ARMS[5]] and decision.exhausted_arms == []
    assert decision.skipped_reason == "the generator returned nothing"


def test_a_batch_of_failed_generations_is_not_a_dry_arm() -> None:
    """What ``generate_candidates`` returns when the OpenAI call fails: one rejected candidate
    with no text per attempt, not an empty list. The slot is skipped with the failure's code
    and no other arm is asked (each would pay failing calls again)."""
    calls: list[str] = []

    def generate(**kw: Any) -> list[str]:
        calls.append(f"{kw['format']}:{kw['topic']}")
        return [""] * kw["n"]

    policy = ContentPolicy(
        ARMS, _strong_sampler([5, 2]), generate=generate,
        guard=lambda text: (bool(text), "" if text else "api_error"),
        score=lambda rows: np.zeros(len(rows)),
    )  # fmt: skip
    decision = policy.decide(now=datetime(2026, 3, 10, tzinfo=UTC))
    assert calls == [ARMS[5]] and decision.exhausted_arms == []
    assert decision.arm == ARMS[5] and decision.chosen_text is None
    assert decision.skipped_reason == "the generator returned nothing (api_error)"


def test_contextual_chooser_works_in_the_policy() -> None:
    formats = sorted({a.split(":")[0] for a in ARMS})
    topics = sorted({a.split(":")[1] for a in ARMS})
    space = arms_feature_space(formats, topics, ["morning", "evening"])
    chooser = ContextualChooser(LaplaceLogisticSampler(space, seed=5), ARMS, "evening")
    policy = ContentPolicy(
        ARMS, chooser, generate=_generate, guard=_guard, score=lambda r: np.ones(len(r))
    )
    decision = policy.decide(now=datetime(2026, 3, 10, tzinfo=UTC))
    assert decision.chosen_text is not None and len(decision.sampled_values) == len(ARMS)


def test_guard_verdict_accepts_common_shapes() -> None:
    class Verdict:
        allowed = False
        reasons = ("profanity", "duplicate")

    assert guard_verdict(True) == (True, "")
    assert guard_verdict((False, "x")) == (False, "x")
    assert guard_verdict(Verdict()) == (False, "profanity; duplicate")
    with pytest.raises(TypeError, match="allowed"):
        guard_verdict(3)


def test_engine_learns_best_arms_and_writes_plain_config() -> None:
    outcomes = synthetic_post_outcomes(1500, seed=21)
    sampler, info = fit_arm_posteriors(outcomes, ARMS, seed=1)
    assert not info["cold_start"] and info["max_trials"] > 0
    rates = true_arm_rates(21)
    top_two = sorted(rates, key=rates.__getitem__)[-2:]  # 0.149 and 0.139: close rivals
    best = top_two[-1]
    config = learned_config(sampler, ARMS, fit_info=info)
    assert max(config["arm_probabilities"], key=config["arm_probabilities"].get) in top_two
    assert sum(config["arm_probabilities"][a] for a in top_two) > 0.9
    assert config["best_topics"][0] == best.split(":")[1]
    assert sum(config["format_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    import json

    json.dumps(config)  # plain values only


def test_engine_cold_start_is_the_prior_and_growth_objective_counts_follows() -> None:
    sampler, info = fit_arm_posteriors(synthetic_post_outcomes(0), ARMS)
    assert info["cold_start"] and sampler.prior == (1.0, 1.0)
    assert learned_config(sampler, ARMS)["cold_start"] is True
    row = {"impressions": 1000, "follows": 7, "replies": 2}
    assert post_evidence(row, objective="growth", max_trials=None) == (7.0, 1000.0)
    assert post_evidence(row, max_trials=None) == (2.0, 1000.0)
    with pytest.raises(ValueError, match="objective"):
        post_evidence(row, objective="fame")  # type: ignore[arg-type]


def test_drift_aware_sampler_detects_a_change_and_keeps_stationary_arms() -> None:
    sampler = DriftAwareThompson(2, discount=1.0, seed=6)
    for _ in range(200):
        sampler.update(0, 10.0, 200.0)
        sampler.update(1, 5.0, 200.0)
    assert sampler.changes.sum() == 0  # no false alarms on stationary arms
    other_before = sampler.sampler.failures[1]
    for _ in range(20):
        sampler.update(0, 1.0, 200.0)
    assert sampler.changes[0] >= 1
    assert sampler.sampler.posterior_mean()[0] < 0.02  # arm 0 now follows its recent posts
    # The arm nobody touched keeps only part of its evidence: worth another look.
    assert sampler.sampler.failures[1] < 0.5 * other_before
    assert sampler.sampler.posterior_mean()[1] == pytest.approx(5 / 200, rel=0.05)
