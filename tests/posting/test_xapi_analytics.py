"""``XApiClient.get_tweet_analytics`` against the sandbox X's HTTP server (the same code reads X).

The requests are recorded on the way out (a pass-through transport over the real HTTP one), so
the tests see both what the client sends (the spec's parameters, user-context auth) and what it
makes of the server's answer (typed counters equal to the sandbox's own ground truth).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from tests.sandbox.test_api_schema import check
from xbot_assets.sandbox import SandboxX
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN
from xbot_assets.sandbox.server import running_server
from xbot_assets.xapi import (
    MAX_IDS_PER_ANALYTICS,
    AnalyticsMetrics,
    BearerAuth,
    XApiClient,
    XApiError,
    XForbiddenError,
    XRateLimitError,
)


class RecordingTransport(httpx.HTTPTransport):
    """The real HTTP transport, keeping every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


@pytest.fixture
def sandbox() -> SandboxX:
    # The big account: enough impressions that some posts win follows within a day.
    return SandboxX("large", seed=3)


@pytest.fixture
def base_url(sandbox: SandboxX) -> Iterator[str]:
    with running_server(sandbox) as url:
        yield url


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def client(base_url: str, sandbox: SandboxX, transport: RecordingTransport) -> Iterator[XApiClient]:
    with XApiClient(
        base_url,
        user_auth=BearerAuth(sandbox.account().user_token),
        app_auth=BearerAuth(APP_BEARER_TOKEN),
        read_attempts=1,
        transport=transport,
    ) as x:
        yield x


@pytest.fixture
def posted(sandbox: SandboxX, client: XApiClient) -> tuple[list[str], datetime]:
    """Four posts 50 minutes apart, read a day after the first; returns ids and first post time."""
    first = sandbox.clock.now()
    ids = []
    for i in range(4):
        text = f"How to ship Python faster: 5 habits for deep work, tip {i}"
        ids.append(client.create_tweet(text).id)
        sandbox.advance(timedelta(minutes=50))
    sandbox.advance(timedelta(hours=24))
    return ids, first


def test_sends_the_spec_parameters_with_the_user_token_and_types_the_answer(
    sandbox: SandboxX, client: XApiClient, transport: RecordingTransport, posted
) -> None:
    ids, first = posted
    now = sandbox.clock.now()
    page = client.get_tweet_analytics(
        ids,
        start_time=first - timedelta(minutes=5),
        end_time=now,
        analytics_fields=("follows", "impressions", "likes", "negative_feedback", "reports"),
    )
    sent = transport.requests[-1]
    assert sent.method == "GET" and sent.url.path == "/2/tweets/analytics"
    assert dict(sent.url.params) == {
        "ids": ",".join(ids),
        "start_time": (first - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "granularity": "total",
        "analytics.fields": "follows,impressions,likes,negative_feedback,reports",
    }
    # The spec allows only user-context auth on this endpoint, never the app bearer.
    assert sent.headers["authorization"] == f"Bearer {sandbox.account().user_token}"

    assert [item.id for item in page.data] == ids and page.errors == []
    assert page.rate_limit.limit == 300 and page.rate_limit.remaining == 299
    follows = []
    for item in page.data:
        truth = sandbox.post_metrics(item.id, at=now)
        m = item.metrics
        assert (m.follows, m.impressions, m.likes) == (
            truth["follows"],
            truth["impressions"],
            truth["likes"],
        )
        assert (m.negative_feedback, m.reports) == (truth["negative_feedback"], truth["reports"])
        assert m.retweets is None and m.unfollows is None  # not asked for: not returned
        follows.append(m.follows)
    assert any(f for f in follows), "the fixture should give at least one post follows"


def test_hourly_buckets_add_up_to_the_total(sandbox: SandboxX, client: XApiClient, posted) -> None:
    ids, first = posted
    now = sandbox.clock.now()
    window = {"start_time": first, "end_time": now}
    total = client.get_tweet_analytics(ids[:1], **window, analytics_fields=("impressions",))
    hourly = client.get_tweet_analytics(
        ids[:1],
        **window,
        granularity="hourly",
        analytics_fields=("impressions", "timestamp", "timestamped_metrics"),
    ).data[0]
    assert hourly.timestamp == first.replace(microsecond=0)
    buckets = hourly.timestamped_metrics
    hours, rest = divmod(now - first, timedelta(hours=1))
    assert len(buckets) == hours + (1 if rest else 0)  # the last bucket ends at end_time
    assert buckets[1].timestamp == first + timedelta(hours=1)
    assert all(isinstance(b.metrics, AnalyticsMetrics) for b in buckets)
    assert sum(b.metrics.impressions or 0 for b in buckets) == total.data[0].metrics.impressions


def test_batches_of_100_ids_and_per_post_problems(
    sandbox: SandboxX, client: XApiClient, transport: RecordingTransport, posted
) -> None:
    ids, first = posted
    other = sandbox.add_account("other_acct", followers=100)
    with XApiClient(client.base_url, user_auth=BearerAuth(other.user_token)) as theirs:
        foreign = theirs.create_tweet("A note on SQL window functions").id
    unknown = [str(9_000_000_000 + i) for i in range(100)]
    window = {"start_time": first, "end_time": sandbox.clock.now()}
    with pytest.raises(ValueError, match="iter_tweet_analytics"):
        client.get_tweet_analytics([*ids, *unknown], **window)
    sent_before = len(transport.requests)
    pages = list(client.iter_tweet_analytics([*unknown, ids[0], foreign], **window))
    assert len(transport.requests) - sent_before == 2  # 100 + 2 ids
    assert [len(r.url.params["ids"].split(",")) for r in transport.requests[-2:]] == [
        MAX_IDS_PER_ANALYTICS,
        2,
    ]
    assert pages[0].data == [] and len(pages[0].errors) == 100
    assert [item.id for item in pages[1].data] == [ids[0]]
    assert [e["resource_id"] for e in pages[1].errors] == [foreign]  # another account's post


def test_refusals_are_typed_and_bad_input_is_stopped_before_sending(
    sandbox: SandboxX, base_url: str, client: XApiClient, transport: RecordingTransport, posted
) -> None:
    ids, first = posted
    window = {"start_time": first, "end_time": sandbox.clock.now()}
    sandbox.set_fault("no_access", match="analytics", count=1)
    with pytest.raises(XForbiddenError, match="403: Client Forbidden") as refused:
        client.get_tweet_analytics(ids, **window)
    assert refused.value.status == 403
    assert sandbox.account().user_token not in str(refused.value)
    sandbox.set_fault("rate_limit", match="analytics", count=1)
    with pytest.raises(XRateLimitError) as limited:
        client.get_tweet_analytics(ids, **window)
    assert limited.value.rate_limit.remaining == 0 and limited.value.rate_limit.reset_at
    assert client.get_tweet_analytics(ids, **window).data  # both faults were one-shot

    # The sandbox's 403 for an app without access has X's documented error shape.
    sandbox.set_fault("no_access", match="analytics", count=1)
    params = {
        "ids": ids[0],
        "start_time": "2026-01-04T00:00:00Z",
        "end_time": "2026-01-07T00:00:00Z",
    }
    headers = {"Authorization": f"Bearer {sandbox.account().user_token}"}
    r = httpx.get(f"{base_url}/2/tweets/analytics", params=params, headers=headers)
    assert r.status_code == 403
    body = check(r, "/2/tweets/analytics", "get")
    assert body["reason"] == "client-not-enrolled"

    sent = len(transport.requests)
    naive = datetime(2026, 1, 5, 12, 0)
    bad_calls = [
        ({"start_time": naive, "end_time": window["end_time"]}, "timezone-aware"),
        ({"start_time": window["end_time"], "end_time": first}, "must be after"),
        ({**window, "granularity": "minute"}, "granularity"),
        ({**window, "analytics_fields": ("follows", "followers")}, "unknown analytics fields"),
    ]
    for kwargs, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            client.get_tweet_analytics(ids, **kwargs)
    with pytest.raises(ValueError, match="19 digits"):
        client.get_tweet_analytics(["12", "not-an-id"], **window)
    assert len(transport.requests) == sent  # nothing reached the server
    assert client.get_tweet_analytics([], **window).data == []


def test_app_only_bearer_cannot_read_analytics(sandbox: SandboxX, base_url: str, posted) -> None:
    """Without user credentials the client refuses before sending (the spec needs a user)."""
    ids, first = posted
    with (
        XApiClient(base_url, app_auth=BearerAuth(APP_BEARER_TOKEN)) as app_only,
        pytest.raises(XApiError, match="user-context credentials"),
    ):
        app_only.get_tweet_analytics(ids, start_time=first, end_time=sandbox.clock.now())
