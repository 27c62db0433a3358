"""DualStoreManager and the brake against the real Postgres and Redis of this machine."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.hotpath.conftest import FakeClock
from tests.hotpath.harness import load_harness
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.schema import (
    audit_log,
    bot_config,
    post_attempts,
    system_health,
    tweet_metrics,
    tweets,
)
from xbot_assets.store.hot.dual import DualStoreManager, StoresUnavailableError
from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete
from xbot_assets.store.hot.ratelimit import RateCaps
from xbot_assets.store.hot.streams import QueuePolicy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CAPS = RateCaps(posts_per_hour=2, posts_per_day=5, min_spacing=timedelta(minutes=30))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def engine(pg_url):
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def world(engine, redis_client, keys):
    clock = FakeClock(T0)
    manager = DualStoreManager(
        engine, "local", redis_client, keys, caps=CAPS, clock=clock, consumer="w1"
    )
    harness = load_harness()
    account = harness.create_account(engine, "local", "dual_test", T0)
    return manager, clock, account, harness


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def posted_ids(engine, account):
    with engine.connect() as conn:
        return [
            r.id
            for r in conn.execute(
                select(tweets.c.id).where(tweets.c.account_id == account).order_by(tweets.c.id)
            )
        ]


def store_down_manager(redis_client, keys, clock, **kwargs) -> DualStoreManager:
    """A manager whose durable store does not answer: its events wait in the Redis stream."""
    down = make_engine(f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere")
    return DualStoreManager(down, "local", redis_client, keys, caps=CAPS, clock=clock, **kwargs)


def make_posted(world, n: int) -> list[int]:
    manager, clock, account, harness = world
    ids = harness.queue_posts(
        manager.engine, "local", account, [f"p{i} {clock.now}" for i in range(n)], clock.now
    )
    from sqlalchemy import update

    with manager.engine.begin() as conn:
        conn.execute(
            update(tweets).where(tweets.c.id.in_(ids)).values(status="posted", posted_at=clock.now)
        )
    return ids


# --- events ------------------------------------------------------------------------------------


def test_events_are_durable_on_return_and_buffered_ones_sync_in_one_batch_idempotently(
    world, engine, redis_client, keys
):
    manager, clock, account, _ = world
    ids = make_posted(world, 3)
    # The store is up: each event is in it when the call returns.
    assert (
        manager.record_metric_snapshot(
            tweet_id=ids[2], account_id=account, horizon="6h", metrics={"impressions": 1}
        )
        == "direct"
    )
    assert count(engine, tweet_metrics) == 1
    # The store is down: events wait in the stream, and one sync writes them in one batch.
    offline = store_down_manager(redis_client, keys, clock, consumer="emitter")
    for tid in ids:
        assert (
            offline.record_metric_snapshot(
                tweet_id=tid,
                account_id=account,
                horizon="1h",
                metrics={"impressions": 10, "likes": 1},
            )
            == "buffered"
        )
    offline.record_audit_event(
        event_type="post.posted", component="test", actor="test", event_id="ev-1", data={"n": 1}
    )
    offline.record_health("scheduler", "ok", {"lag_s": 1}, event_id="h-1")
    assert count(engine, tweet_metrics) == 1  # the buffered ones are only in Redis so far
    report = manager.sync_once()
    assert report.rows == {"metric_snapshot": 3, "audit": 1, "health": 1} and report.acked == 5
    # Replays (a collector retry, a redelivery) change nothing; a newer snapshot updates.
    manager.record_audit_event(
        event_type="post.posted", component="test", actor="test", event_id="ev-1"
    )
    manager.record_health("scheduler", "ok", {"lag_s": 1}, event_id="h-1", recorded_at=T0)
    clock.advance(minutes=5)
    manager.record_metric_snapshot(
        tweet_id=ids[0], account_id=account, horizon="1h", metrics={"impressions": 50}
    )
    manager.sync_once()
    assert count(engine, tweet_metrics) == 4
    assert count(engine, audit_log, audit_log.c.event_id == "ev-1") == 1
    assert count(engine, system_health, system_health.c.component == "scheduler") == 1
    with engine.connect() as conn:
        latest = conn.execute(
            select(tweet_metrics.c.impressions).where(tweet_metrics.c.tweet_id == ids[0])
        ).scalar_one()
    assert latest == 50
    # An older snapshot arriving late does not overwrite the newer one.
    manager.record_metric_snapshot(
        tweet_id=ids[0],
        account_id=account,
        horizon="1h",
        metrics={"impressions": 20},
        collected_at=T0,
    )
    manager.sync_once()
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(tweet_metrics.c.impressions).where(tweet_metrics.c.tweet_id == ids[0])
            ).scalar_one()
            == 50
        )
    assert manager.sync_once().acked == 0
    offline.reconcile_outbox()
    assert offline.outbox_size == 0
    offline.engine.dispose()


def test_bad_input_is_refused_before_anything_is_written(world):
    manager, _clock, account, _ = world
    with pytest.raises(ValueError, match="horizon"):
        manager.record_metric_snapshot(tweet_id=1, account_id=account, horizon="2h", metrics={})
    with pytest.raises(ValueError, match="unknown metric"):
        manager.record_metric_snapshot(
            tweet_id=1, account_id=account, horizon="1h", metrics={"views": 1}
        )
    with pytest.raises(ValueError, match="must not carry"):
        manager.record_audit_event(event_type="x", component="t", actor="t", data={"text": "hi"})
    with pytest.raises(ValueError, match="health status"):
        manager.record_health("x", "fine")


def test_a_poison_event_is_isolated_and_dead_lettered(engine, redis_client, keys, world):
    _m, clock, account, _ = world
    (good,) = make_posted(world, 1)
    # With the store up the caller sees the bad event at once (nothing half-written).
    with pytest.raises(IntegrityError):
        _m.record_metric_snapshot(
            tweet_id=999_998, account_id=account, horizon="6h", metrics={"likes": 2}
        )
    # Buffered during an outage, it is isolated by the sync worker and dead-lettered.
    offline = store_down_manager(redis_client, keys, clock, consumer="emitter")
    offline.record_metric_snapshot(
        tweet_id=good, account_id=account, horizon="6h", metrics={"likes": 2}
    )
    offline.record_metric_snapshot(
        tweet_id=999_999, account_id=account, horizon="6h", metrics={"likes": 2}
    )
    offline.engine.dispose()
    manager = DualStoreManager(
        engine,
        "local",
        redis_client,
        keys,
        caps=CAPS,
        clock=clock,
        consumer="w2",
        sync_policy=QueuePolicy(max_attempts=2, backoff_base_s=1),
    )
    report = manager.sync_once()
    assert report.rows == {"metric_snapshot": 1}  # the good row went in despite its neighbour
    clock.advance(seconds=2)
    report = manager.sync_once()
    assert report.dead == 1
    assert manager.sync_queue is not None
    dead = manager.sync_queue.dead_letters()
    assert dead[0]["p"]["row"]["tweet_id"] == 999_999
    assert "foreign key" in dead[0]["error"].lower()


def test_redis_down_writes_directly_and_workers_poll_the_durable_store(engine, world):
    _m, clock, account, harness = world
    dead = connect_redis(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout_s=0.2)
    manager = DualStoreManager(
        engine, "local", dead, KeySpace("test:deadredis:"), caps=CAPS, clock=clock
    )
    (tid,) = make_posted(world, 1)
    assert (
        manager.record_metric_snapshot(
            tweet_id=tid, account_id=account, horizon="1h", metrics={"likes": 1}
        )
        == "direct"
    )
    assert manager.record_health("redis", "down", {}, "test") == "direct"
    assert count(engine, tweet_metrics) == 1
    queued = harness.queue_posts(engine, "local", account, ["queued while redis is down"], T0)
    assert manager.enqueue_post(queued[0], account) is False
    tickets = manager.next_posts()
    assert [t.tweet_id for t in tickets] == queued and tickets[0].message is None
    assert manager.claim_post(tickets[0]).reason == "min_spacing_minutes"  # durable rows say so
    clock.advance(hours=1)
    result = manager.claim_post(tickets[0])
    assert result.status == "claimed"
    health = manager.check_health()
    assert health["redis"]["status"] == "down" and health["durable_store"]["status"] == "ok"
    assert count(engine, system_health, system_health.c.component == "durable_store") == 1


def test_durable_store_down_events_wait_in_redis_then_drain(
    engine, redis_client, keys, world, pg_url
):
    _m, clock, account, _ = world
    ids = make_posted(world, 4)
    down_engine = make_engine(f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere")
    offline = DualStoreManager(
        down_engine, "local", redis_client, keys, caps=CAPS, clock=clock, consumer="w9"
    )
    for tid in ids:
        assert (
            offline.record_metric_snapshot(
                tweet_id=tid, account_id=account, horizon="24h", metrics={"likes": 3}
            )
            == "buffered"
        )
    report = offline.sync_once()
    assert report.durable_down and report.acked == 0
    assert offline.sync_queue is not None and offline.sync_queue.stats()["pending"] == 4
    health = offline.check_health()
    assert health["durable_store"]["status"] == "down"
    # Both stores down: the caller is told to keep the event.
    dead_redis = connect_redis(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout_s=0.2)
    both = DualStoreManager(down_engine, "local", dead_redis, keys, clock=clock)
    with pytest.raises(StoresUnavailableError, match="keep it and retry"):
        both.record_audit_event(event_type="x", component="t", actor="t")
    # The store is back (the same worker restarts with a working engine): the backlog drains.
    back = DualStoreManager(
        engine, "local", redis_client, keys, caps=CAPS, clock=clock, consumer="w9"
    )
    total = back.drain()
    assert total.rows.get("metric_snapshot") == 4 and total.rows.get("health") == 2
    assert count(engine, tweet_metrics) == 4
    assert back.sync_queue is not None and back.sync_queue.stats()["pending"] == 0
    down_engine.dispose()


def test_a_flush_before_sync_is_repaired_from_the_outbox(world, engine, redis_client, keys):
    """While the store is down, a living emitter re-sends what Redis lost, and writes its
    outbox to the store itself once the store answers."""
    manager, clock, account, _ = world
    ids = make_posted(world, 5)
    emitter = store_down_manager(redis_client, keys, clock, consumer="emitter")
    for tid in ids:
        emitter.record_metric_snapshot(
            tweet_id=tid, account_id=account, horizon="72h", metrics={"likes": 1}
        )
    manager.sync_once()  # syncs the first five
    for tid in ids:
        emitter.record_metric_snapshot(
            tweet_id=tid, account_id=account, horizon="6h", metrics={"likes": 1}
        )
    scan_delete(redis_client, keys)  # Redis loses the unsynced events
    assert emitter.reconcile_outbox() >= 5  # re-sent from the emitter's memory
    manager.drain()
    assert count(engine, tweet_metrics, tweet_metrics.c.horizon == "6h") == 5
    assert count(engine, tweet_metrics) == 10
    # Lost again, then the store comes back: the emitter's next event writes its outbox itself.
    for tid in ids:
        emitter.record_metric_snapshot(
            tweet_id=tid, account_id=account, horizon="24h", metrics={"likes": 1}
        )
    scan_delete(redis_client, keys)
    emitter.engine.dispose()
    emitter.engine = engine
    emitter._durable_down_until = 0.0
    assert (
        emitter.record_metric_snapshot(
            tweet_id=ids[0], account_id=account, horizon="1h", metrics={"likes": 1}
        )
        == "direct"
    )
    assert emitter.outbox_size == 0
    assert count(engine, tweet_metrics, tweet_metrics.c.horizon == "24h") == 5


# --- claims ------------------------------------------------------------------------------------


def test_claim_checks_brake_and_caps_on_the_durable_rows(world, engine, redis_client, keys):
    manager, clock, account, harness = world
    ids = harness.queue_posts(engine, "local", account, [f"claim test {i}" for i in range(8)], T0)
    for tid in ids:
        assert manager.enqueue_post(tid, account)
    first = manager.next_posts(count=1)[0]
    result = manager.claim_post(first)
    assert result.status == "claimed" and result.attempt_id
    manager.settle(first, result)
    assert manager.claim_post(first.tweet_id).status != "claimed"  # at most once
    assert count(engine, post_attempts, post_attempts.c.tweet_id == first.tweet_id) == 1
    # Spacing: 10 minutes later is too soon. Redis knows (fast path) ...
    clock.advance(minutes=10)
    ticket = manager.next_posts(count=1)[0]
    blocked = manager.claim_post(ticket)
    assert blocked.status == "blocked" and blocked.reason == "min_spacing_minutes"
    manager.settle(ticket, blocked)  # deferred, not failed
    # ... and after a flush the durable rows still say so.
    scan_delete(redis_client, keys)
    assert manager.claim_post(ids[2]).reason == "min_spacing_minutes"
    clock.advance(minutes=25)
    assert manager.claim_post(first.tweet_id).status == "gone"
    assert manager.claim_post(ids[2]).status == "claimed"
    for tid in ids[3:6]:
        clock.advance(minutes=31)
        assert manager.claim_post(tid).status == "claimed"
    clock.advance(minutes=31)
    blocked = manager.claim_post(ids[6])  # the 6th in 24 h
    assert blocked.status == "blocked" and blocked.reason == "max_posts_per_day"
    assert blocked.retry_after is not None and blocked.retry_after > timedelta(hours=20)
    # The brake: engaged durably, audited, mirrored; a flush does not release it.
    clock.advance(hours=24)
    manager.brake.engage("testing the brake", actor="operator:test")
    scan_delete(redis_client, keys)
    assert manager.claim_post(ids[6]).reason.startswith("emergency brake engaged")
    assert manager.brake.status().engaged
    manager.brake.release("done testing", actor="operator:test")
    assert manager.claim_post(ids[6]).status == "claimed"
    engaged = audit_log.c.event_type.in_(["brake.engaged", "brake.released"])
    assert count(engine, audit_log, engaged) == 2
    assert count(engine, post_attempts) == 6


def test_brake_status_reads_mirror_then_durable(engine, redis_client, keys):
    from xbot_assets.store.hot.brake import EmergencyBrake

    brake = EmergencyBrake(engine, "local", redis_client, keys, clock=FakeClock(T0))
    assert brake.status().engaged is False
    on = brake.engage("incident 42", actor="operator:a")
    assert on.engaged and on.since == T0 and on.by == "operator:a"
    assert brake.status().source == "redis"
    scan_delete(redis_client, keys)
    status = brake.status()
    assert status.engaged and status.source == "durable" and status.reason == "incident 42"
    assert brake.status().source == "redis"  # re-mirrored
    with engine.connect() as conn:
        value = conn.execute(
            select(bot_config.c.value).where(bot_config.c.key == "brake")
        ).scalar_one()
    assert value["engaged"] is True
    # The posting ledger reads the same row.
    from xbot_assets.posting.ledger import PostingLedger

    assert PostingLedger(engine, "local").brake_reason() == "incident 42"
    with pytest.raises(ValueError, match="reason"):
        brake.release("  ", actor="operator:a")


def test_ai_spend_is_judged_by_the_durable_budget(world, engine, redis_client, keys):
    from xbot_assets.store.hot.brake import upsert_bot_config

    manager, clock, _account, _ = world
    with engine.begin() as conn:
        upsert_bot_config(
            conn, "local", "ai_spend:2026-03-02", {"usd": 7.0, "calls": 70}, "content", T0
        )
    assert manager.durable_ai_spend_today() == 7.0
    assert manager.reserve_ai_spend(0.4)  # 7.4 of 7.50
    assert not manager.reserve_ai_spend(0.2)
    scan_delete(redis_client, keys)  # the counter is gone: re-seeded from the durable 7.0
    assert not manager.reserve_ai_spend(0.6)
    clock.advance(days=1)
    assert manager.durable_ai_spend_today() == 0.0 and manager.reserve_ai_spend(5.0)


def test_the_manager_works_under_the_row_level_security_role(pg_url, redis_client, keys):
    """Built from a DurableStore (acting as xbot_local), so RLS applies to every write."""
    from xbot_assets.store.durable import DurableStore

    store = DurableStore.from_url(pg_url, environment="local")
    try:
        clock = FakeClock(T0)
        manager = DualStoreManager.from_durable(store, redis_client, keys, caps=CAPS, clock=clock)
        account = store.ensure_account("rls_test").id
        post = store.enqueue_post(account, "How to test RLS with pytest", scheduled_at=T0)
        assert manager.enqueue_post(post.id, account)
        (ticket,) = manager.next_posts()
        result = manager.claim_post(ticket)
        assert result.status == "claimed" and result.attempt_id
        manager.settle(ticket, result)
        assert manager.record_posted(post.id, result.attempt_id, "x123")
        manager.record_metric_snapshot(
            tweet_id=post.id, account_id=account, horizon="1h", metrics={"likes": 4}
        )
        manager.record_audit_event(event_type="t", component="t", actor="t", event_id="rls-1")
        manager.record_health("rls", "ok", {})
        report = manager.sync_once()  # written directly, under the role: nothing to sync
        assert report.acked == 0 and not report.durable_down
        assert [m.likes for m in store.get_metrics(post.id)] == [4]
        assert store.get_post(post.id).status == "posted"
        manager.brake.engage("rls brake", actor="operator:t")
        assert store.get_config("brake")["engaged"] is True
    finally:
        store.close()


def test_sync_trims_synced_history_but_keeps_the_backlog(world, engine, redis_client, keys):
    manager, clock, account, _ = world
    ids = make_posted(world, 3)
    emitter = store_down_manager(redis_client, keys, clock, consumer="emitter")
    for tid in ids:
        emitter.record_metric_snapshot(tweet_id=tid, account_id=account, horizon="1h", metrics={})
    manager.sync_once()
    assert manager.sync_queue is not None
    from xbot_assets.store.hot.streams import Priority

    normal = manager.sync_queue.stream_keys[Priority.NORMAL]
    assert redis_client.xlen(normal) == 3  # acknowledged, still in the stream
    emitter.record_metric_snapshot(tweet_id=ids[0], account_id=account, horizon="6h", metrics={})
    emitter.engine.dispose()
    assert manager.trim_queues() == 3
    assert redis_client.xlen(normal) == 1  # the unsynced event stays
    assert manager.sync_once().acked == 1


def test_the_embedded_sqlite_store_takes_the_same_path(tmp_path, redis_client, keys):
    """APP_ENV=local runs on a SQLite file: events, claims and the brake work the same."""
    from xbot_assets.store.durable.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'xbot.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        clock = FakeClock(T0)
        manager = DualStoreManager(engine, "local", redis_client, keys, caps=CAPS, clock=clock)
        harness = load_harness()
        account = harness.create_account(engine, "local", "sqlite_test", T0)
        ids = harness.queue_posts(engine, "local", account, ["one", "two"], T0)
        first = manager.claim_post(ids[0])
        assert first.status == "claimed" and first.attempt_id
        assert manager.record_posted(ids[0], first.attempt_id, "x1")
        clock.advance(minutes=5)
        scan_delete(redis_client, keys)
        assert manager.claim_post(ids[1]).reason == "min_spacing_minutes"  # durable rows
        for horizon in ("1h", "1h", "6h"):
            manager.record_metric_snapshot(
                tweet_id=ids[0], account_id=account, horizon=horizon, metrics={"likes": 1}
            )
        manager.record_health("sqlite", "ok", {}, event_id="hs-1")
        manager.record_health("sqlite", "ok", {}, event_id="hs-1", recorded_at=clock.now)
        manager.drain()
        assert count(engine, tweet_metrics) == 2
        assert count(engine, system_health, system_health.c.component == "sqlite") == 1
        manager.brake.engage("sqlite brake", actor="operator:t")
        clock.advance(hours=2)
        assert manager.claim_post(ids[1]).reason.startswith("emergency brake")
    finally:
        engine.dispose()


def test_concurrent_workers_never_double_claim_or_pass_the_caps(world, engine, redis_client, keys):
    """Four workers race for the same posts on Postgres: the advisory lock serialises the gate."""
    import threading

    _m, clock, account, harness = world
    ids = harness.queue_posts(engine, "local", account, [f"race {i}" for i in range(12)], T0)
    caps = RateCaps(posts_per_hour=3, posts_per_day=50, min_spacing=timedelta(0))
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(n: int) -> None:
        manager = DualStoreManager(
            engine, "local", redis_client, keys, caps=caps, clock=clock, consumer=f"r{n}"
        )
        barrier.wait()
        for tid in ids[n * 3 :] + ids[: n * 3]:  # different rows at the same moment
            outcome = manager.claim_post(tid).status
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("claimed") == 3  # the hourly cap, whoever won
    assert count(engine, post_attempts) == 3
    with engine.connect() as conn:
        statuses = [
            r.status for r in conn.execute(select(tweets.c.status).where(tweets.c.id.in_(ids)))
        ]
    assert statuses.count("posting") == 3
