"""The refill job, run through Dagster, never loses a slot to a text the account already has.

The store's unique key refuses a text the account ever queued, however old. The refill rejects
such candidates before choosing (``already_posted``) and, when every candidate of the drawn arm
is one, falls back to the next arm of the same Thompson draw (``exhausted_arms``). Both are shown
here in ``refill_candidates_job`` itself (simulated clock, embedded SQLite store, offline
generator, the prior's draw): a first run records what the generator writes for the first slot,
the store then holds those texts as posts that failed (refused again by the unique key; the
guard's recent texts, the history and the slot planner ignore them, so the second run plans the
same slot with the same seed and the same draw), and a second run must still queue that slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.orchestration.conftest import Env, hold_as_failed, run_refill

NOW = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)


@dataclass
class Refill:
    """One refill run: its output metadata and the first slot's queued post and batch."""

    metadata: dict[str, Any]
    post: Any
    batch: list[Any]


def _store(env: Env) -> Any:
    from xbot_assets.engine.sensing import cached_store

    return cached_store(env.settings)


def _refill(env: Env) -> Refill:
    """Run ``refill_candidates_job`` for the account at ``NOW``; its first slot's post."""
    _, metadata = run_refill(env, NOW, n_candidates=5)
    handle = env.settings.x_handle
    store = _store(env)
    account = store.get_account_by_handle(handle).id
    queued = [store.get_post(int(i)) for i in metadata["queued_post_ids"]]
    assert queued, metadata
    post = min(queued, key=lambda p: p.scheduled_at)
    batch = store.list_candidates(account, batch_id=post.metadata["candidate_batch"])
    return Refill(metadata, post, sorted(batch, key=lambda c: c.id))


def _hold(env: Env, texts: list[list[str]]) -> None:
    """The store holds ``texts`` (each a post's parts) as posts that failed."""
    store = _store(env)
    account = store.get_account_by_handle(env.settings.x_handle).id
    for parts in texts:
        hold_as_failed(store, account, parts, NOW)


def _record_then_hold(env: Env, how_many: int | None) -> tuple[Refill, list[list[str]]]:
    """Run the refill once and take all its posts out of the queue (failed: their texts stay
    known); hold the first slot's chosen text and ``how_many`` candidates of its batch in all
    (every candidate that passed the guard when None). Returns the first run and the held texts."""
    first = _refill(env)
    assert first.post.metadata["exhausted_arms"] == []  # one arm, one batch
    store = _store(env)
    for post_id in first.metadata["queued_post_ids"]:  # the slots open again
        assert store.claim_post(int(post_id), now=NOW) is not None
        store.mark_failed(int(post_id), error="taken out by the test", now=NOW)
    passed = [c.metadata["parts"] for c in first.batch if c.guard_passed]
    chosen = next(c.metadata["parts"] for c in first.batch if c.chosen)
    assert len(passed) == len(first.batch) >= 3, [c.guard_reasons for c in first.batch]
    others = [p for p in passed if p != chosen]
    held = [chosen, *others[: (len(others) if how_many is None else how_many - 1)]]
    _hold(env, held[1:])  # the chosen one is held already (its post failed)
    return first, held


def _slots_decided(env: Env, after_id: int) -> int:
    """How many slots the refill decided since candidate ``after_id`` (one batch id a slot)."""
    store = _store(env)
    account = store.get_account_by_handle(env.settings.x_handle).id
    return len({c.batch_id for c in store.list_candidates(account, limit=1000) if c.id > after_id})


def _last_candidate_id(env: Env) -> int:
    store = _store(env)
    account = store.get_account_by_handle(env.settings.x_handle).id
    return max(c.id for c in store.list_candidates(account, limit=1000))


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's reads of the account's content hashes (and per-candidate lookups as
    -1, which the refill must not make)."""
    from xbot_assets.store.durable import DurableStore

    calls: list[int] = []
    read, lookup = DurableStore.content_hashes, DurableStore.find_post_by_hash

    def counted(self: Any, account_id: int) -> frozenset[str]:
        calls.append(1)
        return read(self, account_id)

    def per_candidate(self: Any, account_id: int, digest: str) -> Any:
        calls.append(-1)
        return lookup(self, account_id, digest)

    monkeypatch.setattr(DurableStore, "content_hashes", counted)
    monkeypatch.setattr(DurableStore, "find_post_by_hash", per_candidate)
    return calls


def test_a_refill_rejects_the_texts_the_store_holds_and_still_queues_the_slot(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, held = _record_then_hold(env, how_many=2)
    last = _last_candidate_id(env)
    calls = _counting_reads(monkeypatch)
    second = _refill(env)

    post = second.post
    assert post.scheduled_at == first.post.scheduled_at  # the same slot, still queued
    assert post.metadata["slot"] == first.post.metadata["slot"]
    assert post.arm == first.post.arm and post.metadata["exhausted_arms"] == []
    store = _store(env)
    queued = [p.text for p in store.get_thread(post.id)] if post.thread_size > 1 else [post.text]
    assert queued not in held
    # The same batch as the first run's, the held texts rejected as already posted.
    assert [c.text for c in second.batch] == [c.text for c in first.batch]
    rejected = [c.metadata["parts"] for c in second.batch if not c.guard_passed]
    assert sorted(rejected) == sorted(held)
    assert all(c.guard_reasons == ["already_posted"] for c in second.batch if not c.guard_passed)
    chosen = [c for c in second.batch if c.chosen]
    assert len(chosen) == 1 and chosen[0].metadata["parts"] == queued
    assert chosen[0].tweet_id == post.id
    # The run says so in its metadata.
    assert second.metadata["rejections"].get("already_posted", 0) >= len(held)
    # One read of the account's hashes per slot, never a lookup per candidate.
    assert calls == [1] * _slots_decided(env, last)


def test_a_refill_falls_back_to_the_draws_next_arm_when_the_first_is_dry(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, held = _record_then_hold(env, how_many=None)
    assert len(held) == len(first.batch)  # every candidate of the drawn arm is known
    last = _last_candidate_id(env)
    calls = _counting_reads(monkeypatch)
    second = _refill(env)

    post = second.post
    assert post.scheduled_at == first.post.scheduled_at  # the slot was not lost
    assert post.metadata["exhausted_arms"] == [first.post.arm]
    assert post.arm != first.post.arm
    assert 0 < post.metadata["propensity"] <= 1
    assert post.arm in post.metadata["sampled_values"]
    # Both batches are recorded: the dry arm's, all already posted, then the chosen arm's.
    dry = [c for c in second.batch if c.arm == first.post.arm]
    assert [c.text for c in dry] == [c.text for c in first.batch]
    assert all(c.guard_reasons == ["already_posted"] for c in dry)
    assert any(c.chosen and c.arm == post.arm for c in second.batch)
    assert second.metadata["rejections"].get("already_posted", 0) >= len(held)
    # Two batches for the first slot, still one read of the account's hashes per slot.
    assert calls == [1] * _slots_decided(env, last)
