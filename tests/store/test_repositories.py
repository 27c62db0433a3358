"""The repository suite, run unchanged against real Postgres and SQLite (see conftest)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.errors import (
    DuplicatePostError,
    InvalidTransitionError,
)
from xbot_assets.store.durable.models import AuditEvent, CandidateInput, MetricSnapshot
from xbot_assets.store.hot.dedup import content_hash

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_accounts_are_created_once_and_several_coexist(store: DurableStore) -> None:
    first = store.ensure_account("growth_bot", timezone="Europe/Paris")
    again = store.ensure_account("@growth_bot", x_user_id="42")
    other = store.ensure_account("second_bot")
    assert again.id == first.id and again.x_user_id == "42" and again.timezone == "Europe/Paris"
    assert other.id != first.id
    assert [a.handle for a in store.list_accounts()] == ["growth_bot", "second_bot"]
    assert store.get_account(first.id).handle == "growth_bot"
    assert store.get_account_by_handle("second_bot").id == other.id
    assert first.created_at.tzinfo is not None and first.environment == "staging"


def test_enqueue_single_post_records_arm_hash_and_due_time(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    post = store.enqueue_post(
        acc.id,
        "How to write a pytest fixture",
        arm="how_to:python",
        scheduled_at=T0,
        score=0.7,
        scores={"scorer": 0.7, "bandit": 0.4},
        metadata={"generator": "offline"},
    )
    assert post.status == "queued"
    assert (post.arm, post.format, post.topic) == ("how_to:python", "how_to", "python")
    assert post.content_hash == content_hash("How to write a pytest fixture")
    assert post.scheduled_at == T0 and post.scheduled_at.tzinfo is not None
    assert post.thread_root_id is None and post.thread_size == 1 and not post.is_thread
    assert post.scores == {"scorer": 0.7, "bandit": 0.4}
    assert store.get_post(post.id) == post
    assert store.find_post_by_hash(acc.id, post.content_hash) == post


def test_content_hashes_are_every_text_this_accounts_unique_key_refuses(
    store: DurableStore,
) -> None:
    """The refill's one read per slot: the hashes of the account's posts in any state (queued,
    failed, a thread's root as enqueue hashes it), not another account's, not a miss."""
    acc = store.ensure_account("bot")
    other = store.ensure_account("other_bot")
    assert store.content_hashes(acc.id) == frozenset()
    queued = store.enqueue_post(acc.id, "Queued once, known forever", scheduled_at=T0)
    failed = store.enqueue_post(acc.id, "It failed, still known", scheduled_at=T0, now=T0)
    assert store.claim_post(failed.id, now=T0) is not None
    store.mark_failed(failed.id, error="refused", now=T0)
    thread = store.enqueue_thread(acc.id, ["A thread 1/2", "its end 2/2"], scheduled_at=T0)
    theirs = store.enqueue_post(other.id, "Another account's text", scheduled_at=T0)
    assert thread[0].content_hash == content_hash("A thread 1/2 its end 2/2")

    mine = store.content_hashes(acc.id)
    assert {queued.content_hash, failed.content_hash, thread[0].content_hash} <= mine
    assert mine == {p.content_hash for p in store.list_posts(acc.id, limit=100)}
    assert theirs.content_hash not in mine
    assert content_hash("Never queued by anyone") not in mine
    assert store.content_hashes(other.id) == {theirs.content_hash}
    # what it holds is exactly what the unique key refuses
    for digest in mine:
        assert store.find_post_by_hash(acc.id, digest) is not None


def test_duplicate_text_is_refused_per_account_not_across_accounts(store: DurableStore) -> None:
    a = store.ensure_account("a_bot")
    b = store.ensure_account("b_bot")
    first = store.enqueue_post(a.id, "Data science is  mostly SQL", arm="single:data_science")
    with pytest.raises(DuplicatePostError) as caught:
        store.enqueue_post(a.id, "data science is mostly sql ", arm="single:data_science")
    assert caught.value.existing_id == first.id
    assert store.enqueue_post(b.id, "Data science is  mostly SQL").account_id == b.id


def test_thread_is_enqueued_as_linked_parts_in_one_transaction(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    parts = store.enqueue_thread(
        acc.id, ["AI agents, a thread 1/3", "Agents need tools 2/3", "And evals 3/3"], topic="ai"
    )
    root = parts[0]
    assert [p.thread_position for p in parts] == [0, 1, 2]
    assert all(p.thread_root_id == root.id and p.thread_size == 3 for p in parts)
    assert [p.thread_parent_id for p in parts] == [None, root.id, parts[1].id]
    assert root.arm == "thread:ai" and root.format == "thread"
    assert len({p.content_hash for p in parts}) == 3
    assert store.get_thread(root.id) == parts
    with pytest.raises(DuplicatePostError):
        store.enqueue_thread(
            acc.id, ["AI agents, a thread 1/3", "Agents need tools 2/3", "And evals 3/3"]
        )


def test_claim_takes_the_oldest_due_post_and_commits_an_attempt(
    store: DurableStore, store_url: str
) -> None:
    acc = store.ensure_account("bot")
    later = store.enqueue_post(acc.id, "later post", scheduled_at=T0 + timedelta(hours=2))
    sooner = store.enqueue_post(acc.id, "sooner post", scheduled_at=T0 + timedelta(hours=1))
    assert store.claim_next_due(acc.id, now=T0) is None  # nothing due yet
    claim = store.claim_next_due(acc.id, now=T0 + timedelta(hours=3), worker="host:1")
    assert claim is not None and claim.post.id == sooner.id
    assert claim.post.status == "posting" and claim.post.attempt_count == 1
    assert claim.post.last_attempt_id == claim.attempt_id and claim.parts == (claim.post,)
    # Committed before returning: a second, independent store sees it.
    other = DurableStore.from_url(store_url, environment="staging")
    try:
        assert other.get_post(sooner.id).status == "posting"
        [attempt] = other.list_attempts(sooner.id)
        assert attempt.attempt_id == claim.attempt_id and attempt.worker == "host:1"
        assert attempt.outcome is None and attempt.finished_at is None
    finally:
        other.close()
    nxt = store.claim_next_due(acc.id, now=T0 + timedelta(hours=3))
    assert nxt is not None and nxt.post.id == later.id
    assert store.claim_next_due(acc.id, now=T0 + timedelta(hours=3)) is None


def test_claiming_a_thread_claims_every_part_and_finishes_with_the_last(
    store: DurableStore,
) -> None:
    acc = store.ensure_account("bot")
    parts = store.enqueue_thread(acc.id, ["one 1/2", "two 2/2"], topic="python", scheduled_at=T0)
    claim = store.claim_next_due(acc.id, now=T0)
    assert claim is not None and [p.id for p in claim.parts] == [p.id for p in parts]
    assert all(p.status == "posting" for p in claim.parts)
    store.mark_posted(parts[0].id, x_id="1001", attempt_id=claim.attempt_id)
    assert store.list_attempts(parts[0].id)[0].outcome is None  # the thread is half out
    store.mark_posted(parts[1].id, x_id="1002", attempt_id=claim.attempt_id)
    [attempt] = store.list_attempts(parts[0].id)
    assert attempt.outcome == "posted" and attempt.x_id == "1001"
    assert [p.x_id for p in store.get_thread(parts[0].id)] == ["1001", "1002"]


def test_claim_post_by_id_only_while_queued(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    post = store.enqueue_post(acc.id, "keyed run", scheduled_at=T0 + timedelta(days=1))
    claim = store.claim_post(post.id, now=T0)
    assert claim is not None and claim.post.status == "posting"
    assert store.claim_post(post.id, now=T0) is None


def test_posted_is_idempotent_and_keeps_the_first_x_id(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    post = store.enqueue_post(acc.id, "a post", scheduled_at=T0)
    with pytest.raises(InvalidTransitionError):
        store.mark_posted(post.id, x_id="5")  # never claimed
    claim = store.claim_next_due(acc.id, now=T0)
    assert claim is not None
    done = store.mark_posted(post.id, x_id="5", attempt_id=claim.attempt_id, posted_at=T0)
    assert done.status == "posted" and done.x_id == "5" and done.posted_at == T0
    assert store.mark_posted(post.id, x_id="5") == done
    with pytest.raises(InvalidTransitionError):
        store.mark_posted(post.id, x_id="6")
    assert store.list_attempts(post.id)[0].outcome == "posted"


def test_failed_post_can_be_requeued_and_claimed_again(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    post = store.enqueue_post(acc.id, "will fail once", scheduled_at=T0)
    claim = store.claim_next_due(acc.id, now=T0)
    assert claim is not None
    back = store.mark_failed(
        post.id, error="429 from X", attempt_id=claim.attempt_id, requeue_at=T0 + timedelta(hours=1)
    )
    assert back.status == "queued" and back.last_error == "429 from X"
    assert store.claim_next_due(acc.id, now=T0) is None
    again = store.claim_next_due(acc.id, now=T0 + timedelta(hours=1))
    assert again is not None and again.post.attempt_count == 2
    failed = store.mark_failed(post.id, error="403 duplicate content", attempt_id=again.attempt_id)
    assert failed.status == "failed"
    assert [a.outcome for a in store.list_attempts(post.id)] == ["released", "failed"]


def test_unknown_then_reconciled_or_requeued_by_a_person(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    a = store.enqueue_post(acc.id, "in doubt A", scheduled_at=T0)
    b = store.enqueue_post(acc.id, "in doubt B", scheduled_at=T0)
    for _ in range(2):
        assert store.claim_next_due(acc.id, now=T0) is not None
    store.mark_unknown(a.id, reason="timeout after send")
    store.mark_unknown(b.id, reason="crash after send")
    assert store.mark_posted(a.id, x_id="77").status == "posted"  # found on the timeline
    with pytest.raises(InvalidTransitionError):
        store.mark_unknown(a.id, reason="again")
    requeued = store.requeue(b.id, actor="ops@example", reason="not on the timeline after 1 h")
    assert requeued.status == "queued"
    [entry] = store.list_audit(event_type="post_requeued")
    assert entry.actor == "ops@example" and entry.data["post_id"] == b.id


def test_stale_posting_lists_claims_older_than_the_grace_period(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    old = store.enqueue_post(acc.id, "old claim", scheduled_at=T0)
    store.claim_next_due(acc.id, now=T0)
    fresh = store.enqueue_post(acc.id, "fresh claim", scheduled_at=T0)
    store.claim_next_due(acc.id, now=T0 + timedelta(minutes=9))
    stale = store.stale_posting(older_than=timedelta(minutes=5), now=T0 + timedelta(minutes=10))
    assert [p.id for p in stale] == [old.id]
    assert fresh.id not in [p.id for p in stale]


def test_count_posts_and_last_post_for_rate_caps(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    other = store.ensure_account("other_bot")
    for i in range(3):
        post = store.enqueue_post(acc.id, f"post number {i}", scheduled_at=T0)
        claim = store.claim_next_due(acc.id, now=T0)
        assert claim is not None
        store.mark_posted(post.id, x_id=str(900 + i), posted_at=T0 + timedelta(hours=i * 10))
    store.enqueue_post(acc.id, "still queued", scheduled_at=T0)  # not counted
    store.enqueue_thread(other.id, ["x 1/2", "y 2/2"], scheduled_at=T0)
    assert store.claim_next_due(other.id, now=T0) is not None  # 2 parts in doubt
    since = T0 + timedelta(hours=5)
    assert store.count_posts(acc.id, since=since) == 2
    assert store.count_posts(acc.id, since=T0, until=T0 + timedelta(hours=11)) == 2
    assert store.count_posts(other.id, since=T0) == 2
    assert store.count_posts(other.id, since=T0, roots_only=True) == 1
    assert store.last_post_at(acc.id) == T0 + timedelta(hours=20)
    assert store.last_post_at(store.ensure_account("idle_bot").id) is None


def _posted(store: DurableStore, account_id: int, text: str, at: datetime) -> int:
    post = store.enqueue_post(account_id, text, scheduled_at=at)
    assert store.claim_post(post.id, now=at) is not None
    return store.mark_posted(post.id, x_id=str(abs(hash(text)) % 10**12), posted_at=at).id


def test_metric_snapshots_upsert_idempotently_and_never_go_back_in_time(
    store: DurableStore,
) -> None:
    acc = store.ensure_account("bot")
    p1 = _posted(store, acc.id, "first", T0)
    p2 = _posted(store, acc.id, "second", T0)
    t1 = T0 + timedelta(hours=1)
    batch = [
        MetricSnapshot(tweet_id=p1, horizon="1h", collected_at=t1, impressions=100, likes=5),
        MetricSnapshot(tweet_id=p2, horizon="1h", collected_at=t1, impressions=50, replies=2),
        MetricSnapshot(tweet_id=p1, horizon="6h", collected_at=t1, impressions=300, follows=1),
    ]
    assert store.upsert_metrics(batch) == 3
    assert store.upsert_metrics(batch) == 3  # replay: same rows
    newer = MetricSnapshot(
        tweet_id=p1, horizon="1h", collected_at=t1 + timedelta(minutes=5), impressions=120
    )
    store.upsert_metrics([newer])
    store.upsert_metrics([batch[0]])  # an older replay must not overwrite the newer snapshot
    snaps = store.get_metrics(p1)
    assert [(m.horizon, m.impressions) for m in snaps] == [("1h", 120), ("6h", 300)]
    assert snaps[0].account_id == acc.id and snaps[0].collected_at.tzinfo is not None
    assert len(store.list_metrics(account_id=acc.id)) == 3


def test_metrics_due_per_horizon(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    old = _posted(store, acc.id, "posted long ago", T0)
    recent = _posted(store, acc.id, "posted recently", T0 + timedelta(hours=5, minutes=30))
    store.enqueue_post(acc.id, "never posted", scheduled_at=T0)
    now = T0 + timedelta(hours=7)
    assert [p.id for p in store.metrics_due("1h", now=now)] == [old, recent]
    assert [p.id for p in store.metrics_due("6h", now=now)] == [old]
    store.upsert_metrics([MetricSnapshot(tweet_id=old, horizon="1h", collected_at=now)])
    assert [p.id for p in store.metrics_due("1h", now=now, account_id=acc.id)] == [recent]
    assert store.metrics_due("72h", now=now) == []


def test_candidates_record_verdicts_scores_and_choice(store: DurableStore) -> None:
    acc = store.ensure_account("bot")
    ids = store.record_candidates(
        acc.id,
        [
            CandidateInput(
                text="How to profile Python",
                arm="how_to:python",
                score=0.8,
                guard_passed=True,
                generator="offline",
            ),
            CandidateInput(
                text="bad words here",
                arm="single:ai",
                score=None,
                guard_passed=False,
                guard_reasons=["profanity", "too_similar"],
                why="blocked by the guard",
            ),
        ],
        batch_id="batch-1",
    )
    assert len(ids) == 2 and ids[0] < ids[1]
    post = store.enqueue_post(acc.id, "How to profile Python", arm="how_to:python")
    chosen = store.mark_candidate_chosen(ids[0], tweet_id=post.id, why="highest score")
    assert chosen.chosen and chosen.tweet_id == post.id and chosen.topic == "python"
    listed = {c.id: c for c in store.list_candidates(acc.id, batch_id="batch-1")}
    assert listed[ids[1]].guard_reasons == ["profanity", "too_similar"]
    assert not listed[ids[1]].guard_passed and not listed[ids[1]].chosen


def test_config_changes_are_audited_with_who_did_it(store: DurableStore) -> None:
    assert store.get_config("learning.policy", default="none") == "none"
    store.set_config("learning.policy", {"kind": "thompson", "discount": 0.99}, actor="learner")
    store.set_config(
        "learning.policy",
        {"kind": "thompson", "discount": 0.95},
        actor="alice",
        reason="faster drift",
    )
    assert store.get_config("learning.policy") == {"kind": "thompson", "discount": 0.95}
    assert store.all_config() == {"learning.policy": {"kind": "thompson", "discount": 0.95}}
    entries = store.list_audit(event_type="config_changed")
    assert [e.actor for e in entries] == ["alice", "learner"]
    assert entries[0].data["old"] == {"kind": "thompson", "discount": 0.99}
    assert entries[0].data["reason"] == "faster drift" and entries[1].data["created"] is True


def test_audit_replays_with_event_ids_are_stored_once(store: DurableStore) -> None:
    events = [
        AuditEvent(
            event_type="post_posted",
            component="poster",
            event_id=f"ev-{i}",
            data={"i": i},
            occurred_at=T0 + timedelta(seconds=i),
        )
        for i in range(3)
    ]
    assert store.audit_many(events) == 3
    assert store.audit_many(events) == 0
    assert store.audit("brake_on", component="ops", severity="critical", actor="bob") is not None
    assert len(store.list_audit()) == 4
    assert store.list_audit(event_type="brake_on")[0].severity == "critical"


def test_health_and_daily_summaries(store: DurableStore) -> None:
    store.record_health("redis", "ok", recorded_at=T0)
    store.record_health(
        "redis", "down", message="connection refused", recorded_at=T0 + timedelta(minutes=1)
    )
    store.record_health("poster", "degraded", metrics={"latency_ms": 900})
    latest = store.latest_health()
    assert latest["redis"].status == "down" and latest["poster"].metrics == {"latency_ms": 900}
    day = date(2026, 3, 1)
    store.upsert_daily_summary(day, "engagement", {"posts": 3})
    again = store.upsert_daily_summary(day, "engagement", {"posts": 4})
    assert again.metrics == {"posts": 4}
    fetched = store.get_daily_summary(day, "engagement")
    assert fetched is not None and fetched.id == again.id
    assert store.get_daily_summary(day, "other") is None


def test_environments_do_not_see_each_other(store_url: str, backend: str) -> None:
    """Application-level separation (both engines); Postgres adds RLS (test_rls.py)."""
    staging = DurableStore.from_url(store_url, environment="staging")
    production = DurableStore.from_url(store_url, environment="production")
    try:
        s_acc = staging.ensure_account("same_handle")
        p_acc = production.ensure_account("same_handle")
        assert s_acc.id != p_acc.id
        staging.enqueue_post(s_acc.id, "same text", scheduled_at=T0)
        production.enqueue_post(p_acc.id, "same text", scheduled_at=T0)  # no cross-env dedup
        staging.set_config("k", 1, actor="t")
        assert production.get_config("k") is None
        assert production.claim_next_due(p_acc.id, now=T0) is not None
        assert staging.list_posts(s_acc.id)[0].status == "queued"
        from xbot_assets.store.durable.errors import AccountNotFoundError

        with pytest.raises(AccountNotFoundError):
            production.get_account(s_acc.id)
    finally:
        staging.close()
        production.close()


def test_recent_texts_cover_the_duplicate_window_not_a_fixed_count(store: DurableStore) -> None:
    """What the guard compares a new post with: every post queued, in flight or posted in the
    window (X refuses a repeat of any of them), however many rows that is; not failed posts,
    not posts older than the window, not the posts being checked."""
    acc = store.ensure_account("bot")
    since = T0 - timedelta(days=7)
    old = store.enqueue_post(acc.id, "eight days ago", now=T0 - timedelta(days=8))
    claim = store.claim_post(old.id, now=T0 - timedelta(days=8))
    assert claim is not None
    store.mark_posted(old.id, x_id="1", posted_at=T0 - timedelta(days=8), now=T0)
    week = [
        store.enqueue_post(acc.id, f"post number {i}", now=T0 - timedelta(hours=2 * i))
        for i in range(60)  # more than the 50 rows the refill used to read
    ]
    failed = store.enqueue_post(acc.id, "refused by X", now=T0)
    assert store.claim_post(failed.id, now=T0) is not None
    store.mark_failed(failed.id, error="403", now=T0)
    texts = store.recent_texts(acc.id, since=since)
    assert texts == [p.text for p in week]  # newest first, all 60
    assert "eight days ago" not in texts and "refused by X" not in texts
    # queued long ago but posted inside the window: X compares with it
    late = store.enqueue_post(acc.id, "queued 9 days ago", now=T0 - timedelta(days=9))
    assert store.claim_post(late.id, now=T0 - timedelta(days=1)) is not None
    store.mark_posted(late.id, x_id="2", posted_at=T0 - timedelta(days=1), now=T0)
    assert "queued 9 days ago" in store.recent_texts(acc.id, since=since)


def test_recent_texts_are_never_fewer_than_the_50_newest(store: DurableStore) -> None:
    """A slow account's last posts are older than X's window, but the audience still
    remembers them: the 50 newest rows count whatever their age."""
    acc = store.ensure_account("slow_bot")
    posts = [
        store.enqueue_post(acc.id, f"weekly post {i}", now=T0 - timedelta(days=7 * (i + 1)))
        for i in range(60)
    ]
    texts = store.recent_texts(acc.id, since=T0 - timedelta(days=7))
    assert texts == [p.text for p in posts[:50]]
