"""Stream queues against the real Redis: priorities, retries with backoff, XAUTOCLAIM reclaim,
dead letters, safe trimming, idempotent consumers."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis

from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.hot.streams import QUEUE_NAMES, Message, Priority, QueuePolicy, StreamQueue


def make_queue(client: redis.Redis, keys: KeySpace, clock, **policy) -> StreamQueue:
    return StreamQueue(
        client, keys, "analytics_processing", policy=QueuePolicy(**policy), clock=clock
    )


def test_every_named_queue_exists_and_unknown_names_fail(redis_client, keys, clock):
    assert set(QUEUE_NAMES) == {
        "pending_posts",
        "analytics_processing",
        "sync_to_supabase",
    }
    for name in QUEUE_NAMES:
        q = StreamQueue(redis_client, keys, name, clock=clock)
        q.enqueue({"n": 1})
        assert [m.payload for m in q.read("c1")] == [{"n": 1}]
    with pytest.raises(ValueError, match="unknown queue"):
        StreamQueue(redis_client, keys, "pending_post", clock=clock)
    for removed in ("candidate_generation", "scoring"):  # no consumer in the loop: not declared
        with pytest.raises(ValueError, match="unknown queue"):
            StreamQueue(redis_client, keys, removed, clock=clock)


def test_enqueue_at_waits_until_due(redis_client, keys, clock):
    q = StreamQueue(redis_client, keys, "pending_posts", clock=clock)
    due = clock.now + timedelta(hours=2)
    q.enqueue_at({"tweet_id": 7}, due, idempotency_key="tweet:7")
    q.enqueue_at({"tweet_id": 7}, due, idempotency_key="tweet:7")  # the same hint twice: one
    assert q.read("c1") == []
    clock.advance(hours=2)
    assert [m.payload for m in q.read("c1")] == [{"tweet_id": 7}]


def test_higher_priority_is_read_first(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock)
    q.enqueue_many([(None, {"n": "low1"}), (None, {"n": "low2"})], priority=Priority.LOW)
    q.enqueue({"n": "normal"}, priority=Priority.NORMAL)
    q.enqueue({"n": "high"}, priority=Priority.HIGH)
    got = [m.payload["n"] for m in q.read("c1", count=1)]  # at most 1 per priority
    assert got == ["high", "normal", "low1"]
    assert [m.payload["n"] for m in q.read("c1", count=5)] == ["low2"]


def test_failure_retries_after_backoff_then_dead_letters(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock, max_attempts=3, backoff_base_s=10)
    q.enqueue({"x": 1}, idempotency_key="job-1")
    (m,) = q.read("c1")
    assert q.fail(m, "boom") == "retry"
    assert q.read("c1") == []  # backoff (10 s on the queue's clock) not over
    clock.advance(seconds=9)
    assert q.read("c1") == []
    clock.advance(seconds=1)
    (m2,) = q.read("c1")
    assert (m2.idempotency_key, m2.attempts, m2.payload) == ("job-1", 1, {"x": 1})
    assert q.fail(m2, "boom again") == "retry"
    clock.advance(seconds=19)
    assert q.read("c1") == []  # second backoff doubles to 20 s
    clock.advance(seconds=1)
    (m3,) = q.read("c1")
    assert m3.attempts == 2
    assert q.fail(m3, "ValueError: bad row") == "dead"
    dead = q.dead_letters()
    assert len(dead) == 1
    assert dead[0]["k"] == "job-1" and dead[0]["error"] == "ValueError: bad row"
    assert dead[0]["p"] == {"x": 1} and int(dead[0]["a"]) == 3
    stats = q.stats()
    assert stats["pending"] == 0 and stats["delayed"] == 0 and stats["dead"] == 1


def test_stuck_entries_are_reclaimed_with_xautoclaim(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock, max_attempts=2, backoff_base_s=0, idle_ms=400)
    q.enqueue({"x": 1}, idempotency_key="stuck")
    (m,) = q.read("crashed-worker")  # delivered, never acked
    assert q.reclaim_stuck("rescuer").retried == []  # not idle long enough yet
    time.sleep(0.45)
    report = q.reclaim_stuck("rescuer")
    assert report.retried == ["stuck"]
    (again,) = q.read("rescuer")
    assert again.attempts == 1 and again.entry_id != m.entry_id
    time.sleep(0.45)
    assert q.reclaim_stuck("rescuer").dead == ["stuck"]
    assert q.stats()["pending"] == 0
    assert q.dead_letters()[0]["error"].startswith("stuck: idle")


def test_claim_idle_and_own_pending_count_no_attempt(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock, idle_ms=30)
    q.enqueue({"x": 1}, idempotency_key="a")
    q.read("w1")
    assert [m.idempotency_key for m in q.read_own_pending("w1")] == ["a"]
    time.sleep(0.05)
    (taken,) = q.claim_idle("w2")
    assert taken.attempts == 0
    assert q.read_own_pending("w1") == []
    assert [m.idempotency_key for m in q.read_own_pending("w2")] == ["a"]


def test_processing_the_same_entry_twice_has_the_effect_of_once(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock, idle_ms=20, backoff_base_s=0)
    effects: list[str] = []
    q.enqueue({"v": 1}, idempotency_key="post:42")
    q.enqueue({"v": 1}, idempotency_key="post:42")  # the producer retried: same work twice
    report = q.process("w1", lambda m: effects.append(m.idempotency_key), count=10)
    assert effects == ["post:42"]
    assert report.done == ["post:42"] and report.skipped_duplicates == ["post:42"]
    assert q.process("w1", lambda m: effects.append(m.idempotency_key), count=10).done == []
    assert effects == ["post:42"]
    assert q.stats()["pending"] == 0
    # A redelivery (same entry re-queued after a crash) is skipped too.
    q.enqueue({"v": 1}, idempotency_key="post:42")
    again = q.process("w1", lambda m: effects.append(m.idempotency_key))
    assert again.skipped_duplicates == ["post:42"] and effects == ["post:42"]


def test_handler_exception_goes_to_retry_not_lost(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock, backoff_base_s=5)
    q.enqueue({"v": 1}, idempotency_key="k1")

    def boom(message: Message) -> None:
        raise RuntimeError("transient")

    report = q.process("w1", boom)
    assert report.retried == ["k1"]
    clock.advance(seconds=5)
    seen: list[str] = []
    assert q.process("w1", lambda m: seen.append(m.idempotency_key)).done == ["k1"]
    assert seen == ["k1"]


def test_trim_never_drops_pending_or_undelivered_entries(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock)
    q.enqueue_many([(f"k{i}", {"i": i}) for i in range(10)])
    first = q.read("w1", count=6)
    q.ack([first[0], first[1], first[3], first[4]])  # first[2] and first[5] stay pending
    removed = q.trim()
    assert removed == 2  # only k0, k1: everything from the oldest pending entry (k2) on stays
    stream = q.stream_keys[Priority.NORMAL]
    left = [json.loads(f["m"])["k"] for _id, f in redis_client.xrange(stream)]
    assert left == [f"k{i}" for i in range(2, 10)]
    q.ack([first[2], first[5]])
    assert q.trim() == 4  # k2..k5 acked; k6..k9 never delivered: kept
    left = [json.loads(f["m"])["k"] for _id, f in redis_client.xrange(stream)]
    assert left == ["k6", "k7", "k8", "k9"]
    rest = q.read("w1", count=10)
    assert [m.idempotency_key for m in rest] == ["k6", "k7", "k8", "k9"]


def test_flushed_redis_recreates_groups_and_keeps_working(redis_client, keys, clock):
    from xbot_assets.store.hot.keys import scan_delete

    q = make_queue(redis_client, keys, clock)
    q.enqueue({"v": 1})
    q.read("w1")
    scan_delete(redis_client, keys)  # what FLUSHALL does to this queue
    assert q.read("w1") == []  # NOGROUP handled: group re-created
    q.enqueue({"v": 2})
    assert [m.payload for m in q.read("w1")] == [{"v": 2}]


def test_enqueue_many_is_pipelined_and_ordered(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock)
    ids = q.enqueue_many([(None, {"i": i}) for i in range(500)])
    assert len(ids) == 500 and len(set(ids)) == 500
    got = q.read("w1", count=1000)
    assert [m.payload["i"] for m in got] == list(range(500))
    assert q.ack(got) == 500


def test_settled_below_on_a_missing_stream_is_none(redis_client, keys, clock):
    q = make_queue(redis_client, keys, clock)
    assert q.settled_below() is None  # never created
    assert q.trim() == 0
