"""Many accounts with audiences of their own: opt-in per-account jitter of the audience's topic
and format effects, seeded by the sandbox's seed and the handle, that leaves the scenario's own
account (and every single-account figure) exactly as it was."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from xbot_assets.sandbox import FORMATS, SandboxX
from xbot_assets.sandbox.model import _POS_MASK
from xbot_assets.sandbox.scenario import ALL_TOPICS
from xbot_assets.sandbox.server import running_server
from xbot_assets.sandbox.textgen import make_post_text


def _post(sandbox: SandboxX, handle: str | None, count: int) -> list[str]:
    rng = np.random.default_rng(3)
    token = sandbox.account(handle).user_token
    ids = []
    for i in range(count):
        sandbox.clock.advance(timedelta(hours=2))
        text = make_post_text(FORMATS[2 + i % 4], ALL_TOPICS[i % 3], rng)
        ids.append(sandbox.create_tweet(text, token=token)["data"]["id"])
    return ids


def test_the_scenarios_own_account_is_unchanged_by_jittered_neighbours() -> None:
    plain = SandboxX("default", seed=5)
    crowded = SandboxX("default", seed=5)
    crowded.add_account("acct_j", followers=900, audience_jitter=0.5)
    first, second = _post(plain, None, 8), _post(crowded, None, 8)
    crowded.advance(timedelta(days=3))
    plain.advance(timedelta(days=3))
    assert [plain.post_metrics(i) for i in first] == [crowded.post_metrics(i) for i in second]
    assert not plain.audience.account_effects(plain.account())[0].any()  # no jitter: zero


def test_an_accounts_audience_is_seeded_by_its_handle() -> None:
    one, two = SandboxX("default", seed=5), SandboxX("default", seed=5)
    one.add_account("acct_j", audience_jitter=0.5)
    two.add_account("someone", audience_jitter=0.5)  # another index for acct_j below
    two.add_account("acct_j", audience_jitter=0.5)
    mine = one.audience.account_effects(one.account("acct_j"))
    same = two.audience.account_effects(two.account("acct_j"))
    other = two.audience.account_effects(two.account("someone"))
    assert all(np.array_equal(a, b) for a, b in zip(mine, same, strict=True))
    assert not np.allclose(mine[0], other[0])
    assert 0.2 < float(np.std(np.concatenate(mine))) < 1.0  # about the sd asked for
    reseeded = SandboxX("default", seed=6)
    reseeded.add_account("acct_j", audience_jitter=0.5)
    assert not np.allclose(
        mine[0], reseeded.audience.account_effects(reseeded.account("acct_j"))[0]
    )


def test_jitter_moves_an_accounts_engagement_by_its_own_topic_and_format_effect() -> None:
    """The same post at the same moment on the same account slot: with jitter, its positive
    engagement rates are the scenario's times exp(topic offset + format offset)."""
    flat, own = SandboxX("default", seed=5), SandboxX("default", seed=5)
    flat.add_account("acct_j", followers=900)
    own.add_account("acct_j", followers=900, audience_jitter=0.5)
    (a,), (b,) = _post(flat, "acct_j", 1), _post(own, "acct_j", 1)
    post_a, post_b = flat.post(a), own.post(b)
    assert post_a is not None and post_b is not None
    topics, formats = own.audience.account_effects(own.account("acct_j"))
    offset = topics[ALL_TOPICS.index(post_b.features.topic)]
    offset += formats[FORMATS.index(post_b.format)]
    ratio = post_b.rates[_POS_MASK] / post_a.rates[_POS_MASK]
    capped = post_b.rates[_POS_MASK] >= own.model.max_rate
    assert np.allclose(ratio[~capped], np.exp(offset))


def test_jitter_survives_the_journal_and_the_admin_route(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.jsonl"
    first = SandboxX("default", seed=5, journal=journal)
    with running_server(first) as url:
        body = {"handle": "acct_j", "followers": 50, "audience_jitter": 0.4}
        made = httpx.post(f"{url}/__sandbox/accounts", json=body)
        assert made.status_code == 201
        for bad in (-0.1, 5, "a lot", True):
            refused = httpx.post(f"{url}/__sandbox/accounts",
                                 json={"handle": "acct_k", "audience_jitter": bad})  # fmt: skip
            assert refused.status_code == 400, bad
    assert first.account("acct_j").audience_jitter == pytest.approx(0.4)
    replayed = SandboxX("default", seed=5, journal=journal)
    assert replayed.account("acct_j").audience_jitter == pytest.approx(0.4)
    assert "acct_k" not in {a.handle for a in replayed.accounts}


def test_the_oracles_truth_of_a_text_includes_the_accounts_own_audience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The oracle (evaluation only) must value a text for the account that would post it: with
    content quality fixed at 1, its value equals the posted post's true expected reward, on a
    jittered account as on the scenario's own."""
    from xbot_assets.learning.rewards import REWARD_WEIGHTS
    from xbot_assets.sandbox.oracle_greedy import true_expected_reward

    sandbox = SandboxX("default", seed=5)
    sandbox.add_account("acct_j", followers=2000, audience_jitter=0.8)
    monkeypatch.setattr(sandbox.model, "draw_quality", lambda rng, size: np.ones(size))
    rng = np.random.default_rng(11)
    for handle in (None, "acct_j"):
        for i in range(4):
            sandbox.clock.advance(timedelta(hours=3))
            text = make_post_text(FORMATS[i % len(FORMATS)], ALL_TOPICS[i], rng)
            predicted = true_expected_reward(sandbox, text, REWARD_WEIGHTS, handle=handle)
            token = sandbox.account(handle).user_token
            post_id = sandbox.create_tweet(text, token=token)["data"]["id"]
            assert predicted == pytest.approx(sandbox.expected_reward(post_id, REWARD_WEIGHTS))
    plain = true_expected_reward(sandbox, text, REWARD_WEIGHTS)
    assert plain != pytest.approx(true_expected_reward(sandbox, text, REWARD_WEIGHTS,
                                                       handle="acct_j"))  # fmt: skip
