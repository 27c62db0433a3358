"""The posting service on the hot path: tickets on ``pending_posts``, Redis prechecks, and the
ledger's durable claim deciding (issue 19). Uses the machine's Redis under a prefix of its own."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import cast

import pytest
import redis

from xbot_assets.posting.hotpath import remember_queued, seen_before
from xbot_assets.posting.ledger import PostingLedger, RateCaps
from xbot_assets.posting.service import PostingService
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.hot import ratelimit
from xbot_assets.store.hot.dual import DualStoreManager
from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete

CAPS = RateCaps(max_posts_per_hour=2, max_posts_per_day=12, min_spacing=timedelta(minutes=10))


@pytest.fixture
def hot(sqlite_url, clock):
    client = connect_redis("redis://127.0.0.1:6379/0")
    keys = KeySpace(f"test-hotclaim:{uuid.uuid4().hex[:8]}:")
    store = DurableStore.from_url(sqlite_url, environment="local")
    caps = ratelimit.RateCaps(posts_per_hour=2, posts_per_day=12, min_spacing=CAPS.min_spacing)
    manager = DualStoreManager(store.engine, "local", client, keys, caps=caps, clock=clock)
    yield store, manager
    scan_delete(client, keys)
    store.engine.dispose()


def _queue(store, manager, account, texts, at):
    posts = (
        store.enqueue_thread(account, texts, scheduled_at=at)
        if len(texts) > 1
        else [store.enqueue_post(account, texts[0], scheduled_at=at)]
    )
    assert remember_queued(manager, account, posts) == len(posts)
    return posts


def _service(store, manager, fake_x, clock):
    ledger = PostingLedger(store.engine, "local", hot=manager)
    account = ledger.ensure_account("acct")
    return account, PostingService(
        ledger, fake_x, account_id=account, caps=CAPS, clock=clock, alert=lambda m: None
    )


def test_ticket_waits_for_its_slot_then_the_post_goes_once(hot, fake_x, clock):
    store, manager = hot
    account, service = _service(store, manager, fake_x, clock)
    [post] = _queue(store, manager, account, ["a post about pandas"], clock() + timedelta(hours=1))
    assert manager.posts_queue.stats()["delayed"] == 1  # the ticket waits for the slot
    assert service.post_next().status == "nothing_due"
    clock.advance(hours=1)
    outcome = service.post_next()
    assert outcome.status == "posted" and outcome.tweet_id == post.id
    stats = manager.posts_queue.stats()
    assert stats["pending"] == 0 and stats["delayed"] == 0  # settled from the durable row
    assert service.post_next().status == "nothing_due"
    assert fake_x.post_calls == 1
    # dedup: the queued text is remembered per account, checked before the unique key
    assert seen_before(manager, account, ["a post about pandas"])
    assert not seen_before(manager, account + 1, ["a post about pandas"])


def test_redis_counters_deny_before_the_durable_claim(hot, fake_x, clock):
    store, manager = hot
    account, service = _service(store, manager, fake_x, clock)
    for i in range(2):
        _queue(store, manager, account, [f"post {i} on data science"], clock())
    assert service.post_next().status == "posted"
    blocked = service.post_next()
    assert blocked.status == "blocked" and "Redis precheck" in blocked.reason
    assert blocked.retry_at is not None and blocked.retry_at > clock()
    assert manager.posts_queue.stats()["delayed"] == 1  # its ticket waits until the cap allows
    clock.advance(minutes=11)
    assert service.post_next().status == "posted"
    assert fake_x.post_calls == 2


def test_flushed_redis_loses_no_post(hot, fake_x, clock):
    store, manager = hot
    account, service = _service(store, manager, fake_x, clock)
    parts = [f"part {i} of a thread on Python" for i in range(1, 4)]
    _queue(store, manager, account, parts, clock())
    _queue(store, manager, account, ["a single post on AI"], clock() + timedelta(minutes=20))
    scan_delete(manager.client, manager.keys)  # Redis lost everything: tickets, counters
    outcomes = service.run()
    assert [o.status for o in outcomes] == ["posted"] * 3 + ["nothing_due"]
    clock.advance(minutes=20)
    assert service.post_next().status == "posted"
    chain = list(reversed(fake_x.posts))
    assert [p.text for p in chain[:3]] == parts
    for prev, cur in itertools.pairwise(chain[:3]):
        assert cur.in_reply_to == prev.x_id


def test_dead_redis_posts_on_the_store_alone(hot, fake_x, clock):
    store, manager = hot
    account, service = _service(store, manager, fake_x, clock)
    _queue(store, manager, account, ["a post about SQL"], clock())
    manager.client = redis.Redis(port=1, socket_connect_timeout=0.2)  # Redis is gone
    manager.posts_queue.client = manager.client
    assert service.post_next().status == "posted"
    assert fake_x.post_calls == 1


def test_the_services_clock_moves_the_tickets_not_the_managers(sqlite_url, fake_x, clock):
    """One clock: a manager left on a clock of its own (here: stopped at the start) must not
    decide when a delayed ticket is due or until when a blocked one waits; the service's does."""
    from tests.posting.conftest import Clock

    stopped = Clock()  # the manager's own clock never moves
    client = connect_redis("redis://127.0.0.1:6379/0")
    keys = KeySpace(f"test-hotclaim:{uuid.uuid4().hex[:8]}:")
    store = DurableStore.from_url(sqlite_url, environment="local")
    caps = ratelimit.RateCaps(posts_per_hour=1, posts_per_day=12, min_spacing=CAPS.min_spacing)
    manager = DualStoreManager(store.engine, "local", client, keys, caps=caps, clock=stopped)
    queue = manager.posts_queue
    assert queue is not None  # a manager with a Redis client has the posts queue
    try:
        account, service = _service(store, manager, fake_x, clock)
        slot = clock() + timedelta(hours=1)
        first = store.enqueue_post(account, "a post on pandas", scheduled_at=slot)
        assert remember_queued(manager, account, [first], now=clock()) == 1
        assert queue.stats()["delayed"] == 1  # waits for its slot
        clock.advance(hours=1)
        assert service.post_next().status == "posted"
        # the ticket came out of the delayed set on the service's clock, and was settled
        stats = queue.stats()
        assert stats["delayed"] == 0 and stats["pending"] == 0
        second = store.enqueue_post(account, "a post on SQL", scheduled_at=clock())
        remember_queued(manager, account, [second], now=clock())
        blocked = service.post_next()  # one post per hour: the Redis precheck says when
        assert blocked.status == "blocked" and blocked.retry_at is not None
        # withscores=True: (member, score) pairs, which redis-py's return type does not say
        delayed = client.zrange(queue.delayed_key, 0, -1, withscores=True)
        [(_member, score)] = cast("list[tuple[bytes | str, float]]", delayed)
        # put back until the cap allows on the service's clock (not an hour early)
        assert abs(score / 1e6 - blocked.retry_at.timestamp()) < 1
    finally:
        scan_delete(client, keys)
        store.engine.dispose()
