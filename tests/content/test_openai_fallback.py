"""The decision's arm fallback with the real OpenAI generator over the loopback server.

What the refill runs (``decide_slot`` -> :func:`decide_post` -> ``ContentPolicy.decide`` ->
``generate_candidates`` -> :class:`OpenAIGenerator`), with the model's answers scripted:

- when every text the model writes for the drawn arm is one the account already posted (the
  store's unique key, ``known=``) or a near-duplicate of a recent post, the decision posts the
  next arm of the same Thompson draw and records the first in ``exhausted_arms``;
- when the OpenAI call itself fails (HTTP errors, a spent budget) the slot is skipped with the
  failure as its reason and no other arm is asked: that would pay up to ``MAX_ARMS_TRIED``
  batches of failing calls per slot.

The generator makes one chat-completions request per candidate (``generate_candidates`` asks
it ``n`` times with seeds ``base_seed .. base_seed + n - 1``), so one arm costs ``n`` requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import openai
import pytest

from tests.content.conftest import FixedClock
from tests.content.fake_openai import (
    FakeOpenAI,
    Reply,
    model_answer,
    offline_parts,
    requested_arms,
)
from xbot_assets.content.budget import AIBudget, InMemoryBudgetLedger
from xbot_assets.content.offline import OfflineGenerator
from xbot_assets.content.openai_generator import OpenAIGenerator
from xbot_assets.engine.decide import Models, decide_post, prior_models
from xbot_assets.learning.policy import MAX_ARMS_TRIED, PolicyDecision

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SLOT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SEED = 1
N = 5


@pytest.fixture
def models() -> Models:
    return prior_models(now=NOW)


@pytest.fixture
def draw_order(models: Models) -> list[str]:
    """The arms in the order of the decision's one Thompson draw at ``SEED``.

    Read from a decision with the offline generator (no HTTP): the draw depends on the models,
    the slot, the history and the seed only, and each test checks its own decision drew the
    same values.
    """
    probe, _, chosen = _decide(models, OfflineGenerator())
    assert chosen is not None and probe.exhausted_arms == []
    order = sorted(probe.sampled_values, key=lambda arm: -probe.sampled_values[arm])
    assert order[0] == probe.arm  # the chosen arm is the draw's best
    return order


@pytest.fixture
def model_writes_posts(fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_openai.default_reply = model_answer  # type: ignore[method-assign]
    yield fake_openai


def _decide(models: Models, generator: Any, **kwargs: Any) -> tuple[PolicyDecision, list[Any], Any]:
    return decide_post(
        models, slot=SLOT, now=NOW, history=[], generator=generator, seed=SEED, n_candidates=N,
        **kwargs,
    )  # fmt: skip


def _generator(client: openai.OpenAI, budget: AIBudget) -> OpenAIGenerator:
    return OpenAIGenerator(client, model="gpt-4o-mini", budget=budget)


@pytest.mark.parametrize("rejection", ["already_posted", "near_duplicate"])
def test_an_arm_whose_openai_texts_are_all_rejected_falls_back_to_the_next_arm(
    model_writes_posts: FakeOpenAI,
    openai_client: openai.OpenAI,
    budget: AIBudget,
    models: Models,
    draw_order: list[str],
    rejection: str,
) -> None:
    first, second = draw_order[:2]
    # The texts the model writes for the drawn arm (one per candidate seed).
    first_texts = {offline_parts(first, SEED + i) for i in range(N)}
    if rejection == "already_posted":
        kwargs: dict[str, Any] = {"known": lambda parts: tuple(parts) in first_texts}
    else:
        kwargs = {"recent": ["\n\n".join(parts) for parts in first_texts]}

    decision, candidates, chosen = _decide(models, _generator(openai_client, budget), **kwargs)

    server = model_writes_posts
    assert decision.sampled_values[first] == max(decision.sampled_values.values())
    assert decision.exhausted_arms == [first]
    assert decision.arm == second and chosen is not None and chosen.arm == second
    assert chosen.generator == "openai" and chosen.accepted
    assert decision.chosen_text == chosen.text and decision.skipped_reason == ""
    # Every candidate of the drawn arm was rejected for that reason; the fallback's pass.
    assert [c.arm for c in candidates] == [first] * N + [second] * N
    assert all(c.reasons == [rejection] for c in candidates[:N])
    assert any(c.accepted for c in candidates[N:])
    # One chat-completions request per candidate: N for the drawn arm, N for the fallback.
    assert len(server.requests) == 2 * N
    assert requested_arms(server) == [first] * N + [second] * N
    assert [body["seed"] for body in server.requests] == [SEED + i for i in range(N)] * 2
    assert server.moderation_requests == []
    assert budget.spent_today().calls == 2 * N
    # The propensity is that of Thompson sampling over the arms that can post.
    assert 0.0 < decision.propensity <= 1.0


def test_failing_openai_calls_skip_the_slot_without_trying_other_arms(
    fake_openai: FakeOpenAI,
    openai_client: openai.OpenAI,
    budget: AIBudget,
    models: Models,
    draw_order: list[str],
) -> None:
    # Enough failures for every arm the decision could try (it must stop after the first).
    fake_openai.queue(*[Reply(status=500) for _ in range(N * MAX_ARMS_TRIED)])

    decision, candidates, chosen = _decide(models, _generator(openai_client, budget))

    assert len(fake_openai.requests) == N  # one arm's worth, no fallback
    assert requested_arms(fake_openai) == [draw_order[0]] * N
    assert chosen is None and decision.chosen_text is None
    assert decision.exhausted_arms == []
    assert decision.arm == draw_order[0]
    assert decision.skipped_reason == "the generator returned nothing (api_error)"
    assert [c.arm for c in candidates] == [draw_order[0]] * N
    assert all(c.reasons == ["api_error"] and not c.parts for c in candidates)
    assert budget.spent_today().calls == 0  # failed calls are not charged
    fake_openai.replies.clear()


def test_a_spent_budget_skips_the_slot_without_trying_other_arms(
    fake_openai: FakeOpenAI,
    openai_client: openai.OpenAI,
    clock: FixedClock,
    models: Models,
    draw_order: list[str],
) -> None:
    spent = AIBudget(InMemoryBudgetLedger(), limit_usd=0.0, clock=clock)

    decision, candidates, chosen = _decide(models, _generator(openai_client, spent))

    assert fake_openai.requests == []
    # generate_candidates stops a batch at the first budget_exhausted: one candidate, no call.
    assert [(c.arm, c.reasons) for c in candidates] == [(draw_order[0], ["budget_exhausted"])]
    assert chosen is None and decision.exhausted_arms == []
    assert decision.arm == draw_order[0]
    assert decision.skipped_reason == "the generator returned nothing (budget_exhausted)"
