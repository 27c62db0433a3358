"""A balanced opening (``FitConfig.opening_format_posts``, off by default) in the refill job run
through Dagster: each slot is chosen among the least-posted formats, counting the slots this run
queued a moment before, and every queued post's metadata names the arms its draw was limited to
(its ``sampled_values`` cover every arm, so without that list the log would show a chosen arm
that is not the draw's highest)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.orchestration.conftest import Env, run_refill

NOW = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)


def test_the_refill_opens_with_each_format_and_logs_the_arms_each_draw_was_limited_to(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xbot_assets.content.vocabulary import FORMATS
    from xbot_assets.engine import decide
    from xbot_assets.engine.sensing import cached_store
    from xbot_assets.learning.factored import FitConfig

    monkeypatch.setattr(
        decide, "cold_start_config", lambda settings: FitConfig(opening_format_posts=1)
    )
    _, metadata = run_refill(env, NOW, n_candidates=3)
    store = cached_store(env.settings)
    queued = sorted(  # one post a slot (a thread's root: the refill reports roots only)
        (store.get_post(int(i)) for i in metadata["queued_post_ids"]),
        key=lambda p: p.scheduled_at,
    )
    assert len(queued) > len(FORMATS), len(queued)
    opening, after = queued[: len(FORMATS)], queued[len(FORMATS) :]
    formats = [p.arm.split(":")[0] for p in opening]
    assert Counter(formats) == dict.fromkeys(FORMATS, 1)  # one post of each, then the draws
    for k, post in enumerate(opening):
        limited = post.metadata["eligible_arms"]
        assert {a.split(":")[0] for a in limited} == set(FORMATS) - set(formats[:k])
        assert post.arm in limited and set(limited) <= set(post.metadata["sampled_values"])
    assert len(opening[-1].metadata["eligible_arms"]) < len(opening[-1].metadata["sampled_values"])
    for post in after:
        assert "eligible_arms" not in post.metadata  # the opening is over: unlimited draws
