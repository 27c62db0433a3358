"""The refill job, run through Dagster, writes threads against the account's whole recent window.

The audience calls a text a near-duplicate of a post of the last week, and the guard refuses it
(``near_duplicate``). Threads are where that bites: a thread is 3-7 parts, with a hook and an
ending from a few dozen frames, so an account that posts threads every day soon has most of them
in its window. The offline generator writes each part against every recent text it is given
(``GenerationRequest.avoid_texts``); here the refill gives it the store's window in
``refill_candidates_job`` itself (simulated clock, embedded SQLite store, offline generator), with
the store holding 60 recent threads of the same topics and a saved posterior that draws a thread
arm for every slot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.orchestration.conftest import Env, run_refill

NOW = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)


def _store(env: Env) -> Any:
    from xbot_assets.engine.sensing import cached_store

    return cached_store(env.settings)


def _posterior_that_posts_threads(env: Env) -> None:
    """The saved posterior: the prior with threads worth 20 times any other format, so every
    slot's draw picks a thread arm (the topic still varies)."""
    from xbot_assets.engine.decide import prior_models
    from xbot_assets.learning import model_files
    from xbot_assets.learning.horizon import HorizonModel

    posterior = prior_models(now=NOW).posterior
    posterior.mean[posterior.names.index("format=thread")] += 3.0
    path = model_files.factored_path(env.settings, env.settings.learning_objective)
    model_files.write_factored(path, posterior, HorizonModel())


def _recent_threads(env: Env, per_topic: int) -> list[str]:
    """The store holds ``per_topic`` offline threads of each default topic, queued 3-6 days ago
    (inside the guard's 7-day window, before the slot planner's 2 days); their parts."""
    from xbot_assets.content.base import GenerationRequest
    from xbot_assets.content.offline import OfflineGenerator
    from xbot_assets.content.vocabulary import DEFAULT_TOPICS
    from xbot_assets.store.durable.errors import DuplicatePostError

    store = _store(env)
    settings = env.settings
    account = store.ensure_account(
        settings.x_handle, x_user_id=settings.x_user_id, timezone=settings.account_timezone,
        now=NOW - timedelta(days=10),
    ).id  # fmt: skip
    generator = OfflineGenerator()
    texts: list[str] = []
    for i, (seed, topic) in enumerate((s, t) for s in range(per_topic) for t in DEFAULT_TOPICS):
        parts = generator.generate(GenerationRequest(arm=f"thread:{topic}", seed=seed)).parts
        at = NOW - timedelta(days=6) + timedelta(hours=i)
        try:
            store.enqueue_thread(account, list(parts), arm=f"thread:{topic}", topic=topic,
                                 scheduled_at=at, now=at)  # fmt: skip
        except DuplicatePostError:
            continue  # a text the store already holds (the unique key): it is in the window
        texts.extend(parts)
    return texts


def test_a_refill_writes_each_thread_part_fresh_against_the_window(env: Env) -> None:
    from xbot_assets.content.safety import GuardConfig, similarity

    _posterior_that_posts_threads(env)
    window = _recent_threads(env, per_topic=15)
    assert len(window) >= 200

    _, metadata = run_refill(env, NOW, n_candidates=5)

    store = _store(env)
    slots = metadata["open_slots"]
    queued = sorted((store.get_post(int(i)) for i in metadata["queued_post_ids"]),
                    key=lambda p: p.scheduled_at)  # fmt: skip
    # Every slot gets a thread of the drawn arm: none skipped, none moved to another arm.
    assert slots >= 3 and len(queued) == slots and metadata["skipped"] == []
    assert all(p.thread_size > 1 and p.arm.startswith("thread:") for p in queued)
    assert all(p.metadata["exhausted_arms"] == [] for p in queued)
    # No part is a near-duplicate of the window or of the threads queued before it.
    threshold = GuardConfig().near_duplicate_threshold
    seen = list(window)
    for post in queued:
        parts = [p.text for p in store.get_thread(post.id)]
        for part in parts:
            assert similarity(part, seen) < threshold, (part, post.arm)
        seen.extend(parts)
    # The generator avoided the window rather than the guard refusing what it wrote.
    # (0 here; 39 of 60 candidates when the writer ignores the window)
    assert metadata["rejections"].get("near_duplicate", 0) <= 3
