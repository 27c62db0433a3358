"""The metrics reader against the sandbox's HTTP API (the same code reads X)."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest

from xbot_assets.sandbox import SandboxX
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN
from xbot_assets.sandbox.server import running_server
from xbot_assets.store.durable import DurableStore
from xbot_assets.warehouse.collector import (
    XReader,
    collect_due_metrics,
    metrics_from_tweet,
    record_followers,
)
from xbot_assets.xapi import BearerAuth, XApiClient


def _post_some(
    store: DurableStore,
    sandbox: SandboxX,
    client: XApiClient,
    n: int,
    text_of: str = "How to write Python tests that catch bugs, tip number {i}",
) -> list[int]:
    x_account = sandbox.account()
    account = store.ensure_account(x_account.handle, x_user_id=x_account.id)
    ids = []
    for i in range(n):
        now = sandbox.clock.now()
        text = text_of.format(i=i)
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

    from xbot_assets.store.hot.dual import DualStoreManager
    from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete

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
        # durable when the collection returns (issue 17 item 2): nothing waits only in Redis
        assert all(len(store.get_metrics(i)) == 1 for i in ids)
        # issue 19: they also travel analytics_processing; the sync drains that stream with
        # idempotent upserts, so each snapshot is stored once, not twice
        drained = dual.drain()
        assert drained.rows == {"analytics_metric_snapshot": 2} and drained.dead == 0
        assert all(len(store.get_metrics(i)) == 1 for i in ids)
        assert dual.drain().acked == 0  # nothing left behind in Redis
    finally:
        scan_delete(client, keys)
        client.close()


# --- follows, negative feedback and reports from X's per-post analytics ----------------------

GROWTH = ("follows", "negative_feedback", "reports")
PUBLIC = ("impressions", "likes", "reposts", "replies", "quotes", "bookmarks", "profile_clicks")
WINNING_TEXT = "How to ship Python faster: 5 habits for deep work, tip {i}"
"""On the `large` scenario (250k followers), seed 3, some of these posts win follows in hours."""


def _collect_over_a_day(store: DurableStore, sandbox: SandboxX, reader) -> list:
    """Collect at 1h, 6h and 24h after the last post: one pass per horizon, like the schedule."""
    reports = []
    for hours in (1, 5, 18):
        sandbox.advance(timedelta(hours=hours, minutes=1))
        reports.append(collect_due_metrics(store, reader, now=sandbox.clock.now()))
    return reports


def _assert_growth_matches_the_platform(store: DurableStore, sandbox: SandboxX, ids) -> int:
    """Every snapshot's growth counters equal the sandbox's own truth at its collection time."""
    follows_at_24h = 0
    for post_id in ids:
        post = store.get_post(post_id)
        snaps = store.get_metrics(post_id)
        assert {s.horizon for s in snaps} == {"1h", "6h", "24h"}
        for snap in snaps:
            truth = sandbox.post_metrics(str(post.x_id), at=snap.collected_at)
            for name in (*PUBLIC, *GROWTH):
                assert getattr(snap, name) == truth[name], (post_id, snap.horizon, name)
            if snap.horizon == "24h":
                follows_at_24h += snap.follows
    return follows_at_24h


def test_snapshots_carry_follows_negative_feedback_and_reports(store: DurableStore) -> None:
    sandbox = SandboxX("large", seed=3)
    with running_server(sandbox) as base_url, _client(base_url, sandbox) as client:
        ids = _post_some(store, sandbox, client, 4, WINNING_TEXT)
        reports = _collect_over_a_day(store, sandbox, client)
    assert [r.analytics_unavailable for r in reports] == [None, None, None]
    assert [r.analytics_snapshots for r in reports] == [4, 4, 4]
    assert sum(r.analytics_calls for r in reports) == 3  # one per lookup batch
    assert _assert_growth_matches_the_platform(store, sandbox, ids) > 0
    assert any(s.negative_feedback for i in ids for s in store.get_metrics(i))


def test_the_main_jobs_in_process_reader_carries_them_too(store: DurableStore) -> None:
    """The main job collects through the engine's SandboxReader, not over HTTP."""
    from xbot_assets.engine.runtime import SandboxReader

    sandbox = SandboxX("large", seed=3)
    with running_server(sandbox) as base_url, _client(base_url, sandbox) as client:
        ids = _post_some(store, sandbox, client, 4, WINNING_TEXT)
    reader = SandboxReader(sandbox, sandbox.account().user_token)
    reports = _collect_over_a_day(store, sandbox, reader)
    assert [r.analytics_snapshots for r in reports] == [4, 4, 4]
    assert _assert_growth_matches_the_platform(store, sandbox, ids) > 0


class _NoAnalytics:
    """A reader from before the analytics call (or a stand-in without it)."""

    def __init__(self, client: XApiClient) -> None:
        self.get_tweets = client.get_tweets
        self.get_user = client.get_user


@pytest.mark.parametrize("refusal", ["403 no access", "reader without the call"])
def test_refused_analytics_still_store_public_metrics_and_log_once(
    store: DurableStore, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    sandbox = SandboxX("large", seed=3)
    with running_server(sandbox) as base_url, _client(base_url, sandbox) as client:
        ids = _post_some(store, sandbox, client, 4, WINNING_TEXT)
        sandbox.advance(timedelta(hours=7))  # 1h and 6h both due: two lookup batches
        reader: XReader
        if refusal == "403 no access":
            sandbox.set_fault("no_access", match="analytics")
            reader = client
        else:
            reader = _NoAnalytics(client)
        with caplog.at_level(logging.WARNING, logger="xbot_assets.warehouse.collector"):
            report = collect_due_metrics(store, reader, now=sandbox.clock.now())
    assert report.by_horizon == {"1h": 4, "6h": 4, "24h": 0, "72h": 0}
    assert not report.stopped_for_rate_limit and report.analytics_snapshots == 0
    expected = "403" if refusal == "403 no access" else "no get_tweet_analytics"
    assert expected in (report.analytics_unavailable or "")
    warnings = [r for r in caplog.records if "without X analytics" in r.getMessage()]
    assert len(warnings) == 1  # once per pass, not once per batch
    # One refused request, then no more asking in this pass.
    refused_calls = 1 if refusal == "403 no access" else 0
    assert sandbox.counters["endpoint:analytics"] == refused_calls
    for post_id in ids:
        post = store.get_post(post_id)
        for snap in store.get_metrics(post_id):
            truth = sandbox.post_metrics(str(post.x_id), at=snap.collected_at)
            assert [getattr(snap, n) for n in PUBLIC] == [truth[n] for n in PUBLIC]
            assert [getattr(snap, n) for n in GROWTH] == [0, 0, 0]
    assert any(sandbox.post_metrics(str(store.get_post(i).x_id))["follows"] for i in ids)


def test_analytics_rate_limit_stops_the_pass_like_the_lookup(store: DurableStore) -> None:
    sandbox = SandboxX("large", seed=3)
    with running_server(sandbox) as base_url, _client(base_url, sandbox) as client:
        ids = _post_some(store, sandbox, client, 2, WINNING_TEXT)
        sandbox.advance(timedelta(hours=7))
        # A 429 on analytics: nothing is stored without its follows; the next pass takes it.
        sandbox.set_fault("rate_limit", match="analytics", count=1)
        report = collect_due_metrics(store, client, now=sandbox.clock.now())
        assert report.stopped_for_rate_limit and report.rate_limit_reset_at is not None
        assert report.snapshots == 0 and all(store.get_metrics(i) == [] for i in ids)
        # A window with one call left (the reserve) stops after storing the batch it paid for.
        sandbox.params.raw["platform"]["rate_limits"]["analytics"] = [1, 900]
        sandbox.advance(timedelta(minutes=16))  # a fresh window
        report = collect_due_metrics(store, client, now=sandbox.clock.now())
        assert report.stopped_for_rate_limit and report.by_horizon == {"1h": 2}
        assert report.analytics_snapshots == 2
        sandbox.params.raw["platform"]["rate_limits"]["analytics"] = [300, 900]
        sandbox.advance(timedelta(minutes=16))
        later = collect_due_metrics(store, client, now=sandbox.clock.now())
        assert later.by_horizon["6h"] == 2 and not later.stopped_for_rate_limit
    assert all({s.horizon for s in store.get_metrics(i)} == {"1h", "6h"} for i in ids)


class _RealXFields(httpx.HTTPTransport):
    """The sandbox over HTTP, but refusing its extension fields with real X's 400 body."""

    def __init__(self) -> None:
        super().__init__()
        self.analytics_fields: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/2/tweets/analytics":
            fields = request.url.params.get("analytics.fields", "")
            self.analytics_fields.append(fields)
            bad = [f for f in fields.split(",") if f in ("negative_feedback", "reports")]
            if bad:
                message = (
                    f"The `analytics.fields` query parameter value [{bad[0]}] is not one of "
                    "[app_install_attempts,...,user_profile_clicks]"
                )
                return httpx.Response(
                    400,
                    json={
                        "errors": [
                            {"parameters": {"analytics.fields": [bad[0]]}, "message": message}
                        ],
                        "title": "Invalid Request",
                        "detail": "One or more parameters to your request was invalid.",
                        "type": "https://api.twitter.com/2/problems/invalid-request",
                    },
                    request=request,
                )
        return super().handle_request(request)


def test_real_x_without_the_sandbox_fields_still_gives_follows(store: DurableStore) -> None:
    sandbox = SandboxX("large", seed=3)
    transport = _RealXFields()
    with running_server(sandbox) as base_url:
        with _client(base_url, sandbox) as poster:
            ids = _post_some(store, sandbox, poster, 4, WINNING_TEXT)
        sandbox.advance(timedelta(hours=25))
        client = XApiClient(
            base_url,
            user_auth=BearerAuth(sandbox.account().user_token),
            app_auth=BearerAuth(APP_BEARER_TOKEN),
            read_attempts=1,
            transport=transport,
        )
        with client:
            report = collect_due_metrics(store, client, now=sandbox.clock.now())
    # Refused once, then follows alone for every batch of the pass (1h, 6h, 24h).
    assert transport.analytics_fields == [
        "follows,negative_feedback,reports", "follows", "follows", "follows"
    ]  # fmt: skip
    assert report.analytics_unavailable is None and report.analytics_snapshots == 12
    follows = 0
    for post_id in ids:
        post = store.get_post(post_id)
        for snap in store.get_metrics(post_id):
            truth = sandbox.post_metrics(str(post.x_id), at=snap.collected_at)
            assert snap.follows == truth["follows"]
            assert (snap.negative_feedback, snap.reports) == (0, 0)  # X does not tell
            follows += snap.follows
    assert follows > 0
