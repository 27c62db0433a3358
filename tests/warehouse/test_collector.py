"""The metrics reader against the sandbox's HTTP API (the same code reads X)."""

from __future__ import annotations

from datetime import timedelta

from xbot_assets.sandbox import SandboxX
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN
from xbot_assets.sandbox.server import running_server
from xbot_assets.store.durable import DurableStore
from xbot_assets.warehouse.collector import (
    collect_due_metrics,
    metrics_from_tweet,
    record_followers,
)
from xbot_assets.xapi.client import BearerAuth, XApiClient


def _post_some(store: DurableStore, sandbox: SandboxX, client: XApiClient, n: int) -> list[int]:
    x_account = sandbox.account()
    account = store.ensure_account(x_account.handle, x_user_id=x_account.id)
    ids = []
    for i in range(n):
        now = sandbox.clock.now()
        text = f"How to write Python tests that catch bugs, tip number {i}"
        post = store.enqueue_post(account.id, text, scheduled_at=now)
        claim = store.claim_post(post.id, now=now)
        assert claim is not None
        created = client.create_tweet(text)
        store.mark_posted(post.id, x_id=created.id, attempt_id=claim.attempt_id, posted_at=now)
        ids.append(post.id)
        sandbox.advance(timedelta(minutes=50))
    return ids


def _client(base_url: str, sandbox: SandboxX) -> XApiClient:
    return XApiClient(
        base_url,
        user_auth=BearerAuth(sandbox.account().user_token),
        app_auth=BearerAuth(APP_BEARER_TOKEN),
        read_attempts=1,
    )


def test_snapshots_match_the_platform_and_replays_are_idempotent(store: DurableStore) -> None:
    sandbox = SandboxX("default", seed=3)
    with running_server(sandbox) as base_url, _client(base_url, sandbox) as client:
        ids = _post_some(store, sandbox, client, 3)
        sandbox.advance(timedelta(hours=7))
        now = sandbox.clock.now()
        report = collect_due_metrics(store, client, now=now)
        # 3 posts past 1h and 6h, none past 24h: 6 snapshots in 2 lookups (one per horizon).
        assert report.by_horizon == {"1h": 3, "6h": 3, "24h": 0, "72h": 0}
        assert report.calls == 2 and report.missing == 0
        for post_id in ids:
            post = store.get_post(post_id)
            truth = sandbox.post_metrics(str(post.x_id), at=now)
            snaps = {s.horizon: s for s in store.get_metrics(post_id)}
            assert set(snaps) == {"1h", "6h"}
            for name in (
                "impressions",
                "likes",
                "reposts",
                "replies",
                "quotes",
                "bookmarks",
                "profile_clicks",
            ):
                assert getattr(snaps["6h"], name) == truth[name], name
        again = collect_due_metrics(store, client, now=now)
        assert again.snapshots == 0  # nothing due twice
        assert sum(len(store.get_metrics(i)) for i in ids) == 6
        assert record_followers(store, client, now=now) == 1


def test_stops_without_error_when_rate_limited(store: DurableStore) -> None:
    sandbox = SandboxX("default", seed=4)
    with running_server(sandbox) as base_url, _client(base_url, sandbox) as client:
        ids = _post_some(store, sandbox, client, 2)
        sandbox.advance(timedelta(hours=2))
        sandbox.set_fault("rate_limit", match="get_tweets")
        report = collect_due_metrics(store, client, now=sandbox.clock.now())
        assert report.stopped_for_rate_limit and report.snapshots == 0
        assert report.rate_limit_reset_at is not None
        assert all(store.get_metrics(i) == [] for i in ids)
        sandbox.clear_faults()
        later = collect_due_metrics(store, client, now=sandbox.clock.now())
        assert later.by_horizon["1h"] == 2


def test_metric_mapping_prefers_owner_counters() -> None:
    item = {
        "id": "1",
        "public_metrics": {"impression_count": 0, "like_count": 5, "retweet_count": 2,
                           "reply_count": 1, "quote_count": 1, "bookmark_count": 3},
        "non_public_metrics": {"impression_count": 900, "user_profile_clicks": 7},
    }  # fmt: skip
    got = metrics_from_tweet(item)
    assert got == {"impressions": 900, "likes": 5, "reposts": 2, "replies": 1, "quotes": 1,
                   "bookmarks": 3, "profile_clicks": 7}  # fmt: skip


def test_snapshots_through_the_hot_path_land_after_sync(store: DurableStore) -> None:
    """With Redis, snapshots travel the sync_to_supabase stream and the sync worker stores them."""
    import uuid

    import pytest
    import redis

    from xbot_assets.store.dual import DualStoreManager
    from xbot_assets.store.keys import KeySpace, connect_redis, scan_delete

    client = connect_redis("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at 127.0.0.1:6379 ({type(exc).__name__}): start it")
    keys = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    try:
        dual = DualStoreManager(store.engine, "local", client, keys, consumer="w8")
        sandbox = SandboxX("default", seed=5)
        with running_server(sandbox) as base_url, _client(base_url, sandbox) as x:
            ids = _post_some(store, sandbox, x, 2)
            sandbox.advance(timedelta(hours=2))
            report = collect_due_metrics(store, x, now=sandbox.clock.now(), dual=dual)
        assert report.by_horizon["1h"] == 2
        assert all(store.get_metrics(i) == [] for i in ids)  # buffered, not yet synced
        dual.drain()
        assert all(len(store.get_metrics(i)) == 1 for i in ids)
    finally:
        scan_delete(client, keys)
        client.close()
