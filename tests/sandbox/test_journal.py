"""The journal: separate processes (or instances) share one sandbox through its write log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from xbot_assets.sandbox import FORMATS, SandboxError, SandboxX
from xbot_assets.sandbox.textgen import make_post_text


def _post_some(sandbox: SandboxX, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    token = sandbox.account().user_token
    ids = []
    for i in range(count):
        sandbox.clock.advance(timedelta(hours=2))
        text = make_post_text(FORMATS[2 + i % 4], "python", rng)
        ids.append(sandbox.create_tweet(text, token=token)["data"]["id"])
    return ids


def test_replay_rebuilds_the_same_sandbox(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.jsonl"
    first = SandboxX("default", seed=5, journal=journal)
    ids = _post_some(first, 12, 1)
    thread = first.create_tweet("How to read a stack trace", token=first.account().user_token)
    first.create_tweet("Start from the bottom line", thread["data"]["id"],
                       token=first.account().user_token)  # fmt: skip
    first.delete_tweet(ids[3], token=first.account().user_token)
    first.add_account("second_one", followers=80)
    first.advance(timedelta(days=3))
    second = SandboxX("default", seed=5, journal=journal)
    assert second.clock.now() == first.clock.now()
    for post_id in ids:
        assert second.post_metrics(post_id) == first.post_metrics(post_id)
    assert second.followers() == first.followers()
    assert second.post(thread["data"]["id"]).format == "thread"  # type: ignore[union-attr]
    assert second.get_tweet(ids[3])["errors"][0]["resource_id"] == ids[3]
    assert second.account("second_one").initial_followers == 80
    # A write in one instance is seen by the other before its next call.
    more = _post_some(second, 1, 2)
    assert first.get_tweet(more[0])["data"]["id"] == more[0]
    with pytest.raises(SandboxError) as duplicate:  # the duplicate rule sees the other's post
        first.create_tweet(second.post(more[0]).text, token=first.account().user_token)  # type: ignore[union-attr]
    assert duplicate.value.code == 187


def test_a_journal_of_another_scenario_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.jsonl"
    SandboxX("default", seed=5, journal=journal)
    with pytest.raises(ValueError, match="same scenario and seed"):
        SandboxX("default", seed=6, journal=journal)
