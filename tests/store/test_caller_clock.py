"""Every store write that stamps a time takes the caller's ``now`` (a simulated clock in the main
job) and stamps nothing else; without it, the wall clock (a deployment's behaviour)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import overload

import pytest
import sqlalchemy as sa

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable import schema as s
from xbot_assets.store.durable.errors import InvalidInputError
from xbot_assets.store.durable.models import CandidateInput

T = datetime(2026, 1, 7, 9, 0, tzinfo=UTC)


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _attempt_finished(store: DurableStore, attempt_id: str) -> datetime | None:
    a = s.post_attempts
    with store.engine.connect() as conn:
        value: datetime | None = conn.execute(
            sa.select(a.c.finished_at).where(a.c.attempt_id == attempt_id)
        ).scalar_one()
    return _utc(value)


def _claimed(store: DurableStore, account_id: int, text: str, at: datetime) -> tuple[int, str]:
    post = store.enqueue_post(account_id, text, now=at)
    claim = store.claim_post(post.id, now=at)
    assert claim is not None
    return post.id, claim.attempt_id


def test_posts_carry_the_callers_now_through_every_transition(store: DurableStore) -> None:
    account = store.ensure_account("clock_acct", now=T)
    assert (account.created_at, account.updated_at) == (T, T)
    later = T + timedelta(hours=1)
    assert store.ensure_account("clock_acct", x_user_id="42", now=later).updated_at == later

    post = store.enqueue_post(account.id, "How to pin dependencies in Python", now=T)
    assert (post.created_at, post.updated_at, post.scheduled_at) == (T, T, T)
    thread = store.enqueue_thread(account.id, ["Part one on pytest", "Part two on pytest"], now=T)
    assert {(p.created_at, p.updated_at) for p in thread} == {(T, T)}

    # posted_at is X's time (may be earlier: the reconciler found it later); updated_at and the
    # attempt's finished_at are the write's now (what the warehouse watermark reads).
    claim = store.claim_post(post.id, now=T)
    assert claim is not None
    found_at = T + timedelta(hours=2)
    posted = store.mark_posted(
        post.id, x_id="9001", attempt_id=claim.attempt_id, posted_at=T, now=found_at
    )
    assert (_utc(posted.posted_at), _utc(posted.updated_at)) == (T, found_at)
    assert _attempt_finished(store, claim.attempt_id) == found_at
    # Without posted_at, the post went out now.
    pid, attempt = _claimed(store, account.id, "Type hints pay off in reviews", T)
    assert _utc(store.mark_posted(pid, x_id="9002", attempt_id=attempt, now=later).posted_at) == (
        later
    )

    pid, attempt = _claimed(store, account.id, "Use ruff for linting", T)
    unknown = store.mark_unknown(pid, reason="timeout", attempt_id=attempt, now=later)
    assert _utc(unknown.updated_at) == later
    assert _attempt_finished(store, attempt) == later
    requeued = store.requeue(pid, actor="operator", reason="not on X", now=found_at)
    assert (_utc(requeued.updated_at), _utc(requeued.scheduled_at)) == (found_at, found_at)
    [entry] = store.list_audit(event_type="post_requeued")
    assert _utc(entry.occurred_at) == found_at

    claim2 = store.claim_post(pid, now=found_at)
    assert claim2 is not None
    failed = store.mark_failed(pid, error="refused", attempt_id=claim2.attempt_id, now=found_at)
    assert _utc(failed.updated_at) == found_at
    assert _attempt_finished(store, claim2.attempt_id) == found_at

    pid, attempt = _claimed(store, account.id, "Profile before optimising", T)
    released = store.mark_failed(
        pid, error="429", attempt_id=attempt, requeue_at=found_at, now=later
    )
    assert (_utc(released.updated_at), _utc(released.scheduled_at)) == (later, found_at)


def test_candidates_config_and_summaries_carry_the_callers_now(store: DurableStore) -> None:
    account = store.ensure_account("clock_acct", now=T)
    store.record_candidates(
        account.id, [CandidateInput(text="A tip about asyncio", guard_passed=True)], now=T
    )
    assert [_utc(c.created_at) for c in store.list_candidates(account.id)] == [T]

    store.set_config("schedule", {"posts_per_day": 3}, actor="test", now=T)
    later = T + timedelta(minutes=5)
    store.update_config("counter", lambda old: (old or 0) + 1, actor="test", now=later)
    store.update_config("counter", lambda old: (old or 0) + 1, actor="test", now=later)
    b = s.bot_config
    with store.engine.connect() as conn:
        stamped: dict[str, datetime] = dict(conn.execute(sa.select(b.c.key, b.c.updated_at)).all())
    assert {k: _utc(v) for k, v in stamped.items()} == {"schedule": T, "counter": later}
    changes = store.list_audit(event_type="config_changed")
    assert Counter(_utc(e.occurred_at) for e in changes) == Counter([T, later, later])

    summary = store.upsert_daily_summary(date(2026, 1, 6), "daily", {"posts": 1}, now=T)
    assert (_utc(summary.created_at), _utc(summary.updated_at)) == (T, T)
    again = store.upsert_daily_summary(date(2026, 1, 6), "daily", {"posts": 2}, now=later)
    assert (_utc(again.created_at), _utc(again.updated_at)) == (T, later)


def test_without_now_writes_use_the_wall_clock(store: DurableStore) -> None:
    before = datetime.now(UTC)
    account = store.ensure_account("wall_acct")
    post = store.enqueue_post(account.id, "Read the changelog before upgrading")
    after = datetime.now(UTC)
    for stamped in (account.created_at, post.created_at, post.updated_at, post.scheduled_at):
        assert before - timedelta(seconds=1) <= _utc(stamped) <= after + timedelta(seconds=1)


def test_a_naive_now_is_a_clear_error_and_writes_nothing(store: DurableStore) -> None:
    account = store.ensure_account("naive_acct", now=T)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.enqueue_post(account.id, "Never stored", now=datetime(2026, 1, 7, 9))
    assert store.list_posts(account.id) == []
