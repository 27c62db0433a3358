"""The X API client: auth headers, endpoint shapes, rate-limit headers and X's error bodies.

These run against an httpx MockTransport that answers with the bodies X really sends; the same
client is exercised against the sandbox's HTTP server in the end-to-end tests.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest

from xbot_assets.config import load_settings
from xbot_assets.xapi import (
    BearerAuth,
    OAuth1Auth,
    OAuth1Credentials,
    RateLimit,
    XApiClient,
    XAuthError,
    XAutomationBlockedError,
    XBadRequestError,
    XConnectionError,
    XDuplicateContentError,
    XNotFoundError,
    XRateLimitError,
    XServerError,
    XTimeoutError,
    user_auth_from_settings,
)
from xbot_assets.xapi.oauth1 import authorization_header

USER_TOKEN = "user-token-SECRET-123"
APP_TOKEN = "app-bearer-SECRET-456"


def make_client(handler, **kwargs) -> XApiClient:
    return XApiClient(
        "https://api.example.test",
        user_auth=BearerAuth(USER_TOKEN),
        app_auth=BearerAuth(APP_TOKEN),
        transport=httpx.MockTransport(handler),
        read_attempts=kwargs.pop("read_attempts", 1),
        **kwargs,
    )


def test_oauth1_signature_matches_published_examples():
    # OAuth Core 1.0 appendix A (also RFC 5849's example).
    rfc = OAuth1Credentials(
        "dpf43f3p2l4k3l03", "kd94hf93k423kf44", "nnch734d00sl2jdk", "pfkkdhi9sl3r4s00"
    )
    header = authorization_header(
        rfc,
        "GET",
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
        nonce="kllo9940pd9333jh",
        timestamp=1191242096,
    )
    assert 'oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D"' in header
    # X's developer documentation example ("Creating a signature").
    x = OAuth1Credentials(
        "xvz1evFS4wEEPTGEFPHBog",
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
    )
    header = authorization_header(
        x,
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        [("status", "Hello Ladies + Gentlemen, a signed OAuth request!")],
        nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        timestamp=1318622958,
    )
    assert 'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D"' in header
    assert "SECRET" not in repr(x) and "kAcSOq" not in repr(x)


def test_create_tweet_sends_user_token_and_reply_field():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={
                "data": {
                    "id": "1800000000000000001",
                    "text": "hello",
                    "edit_history_tweet_ids": ["1800000000000000001"],
                }
            },
            headers={
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "99",
                "x-rate-limit-reset": "2000000000",
            },
        )

    client = make_client(handler)
    created = client.create_tweet("hello", reply_to="42")
    assert created.id == "1800000000000000001"
    req = seen[0]
    assert req.method == "POST" and req.url.path == "/2/tweets"
    assert req.headers["authorization"] == f"Bearer {USER_TOKEN}"
    assert json.loads(req.content) == {"text": "hello", "reply": {"in_reply_to_tweet_id": "42"}}
    assert created.rate_limit == RateLimit(100, 99, datetime.fromtimestamp(2000000000, tz=UTC))
    assert client.last_rate_limit.remaining == 99


def test_reads_use_app_bearer_and_batch_ids():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        ids = request.url.params["ids"].split(",")
        return httpx.Response(
            200,
            json={
                "data": [{"id": i, "text": "t", "public_metrics": {"like_count": 1}} for i in ids]
            },
        )

    client = make_client(handler)
    ids = [str(i) for i in range(250)]
    pages = list(client.iter_tweets(ids, tweet_fields=("public_metrics",)))
    assert [len(p.data) for p in pages] == [100, 100, 50]
    assert all(r.headers["authorization"] == f"Bearer {APP_TOKEN}" for r in seen)
    assert seen[0].url.params["tweet.fields"] == "public_metrics"
    with pytest.raises(ValueError, match="at most 100"):
        client.get_tweets(ids)


def test_users_me_uses_user_context_and_timeline_paginates():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/2/users/me":
            assert request.headers["authorization"] == f"Bearer {USER_TOKEN}"
            return httpx.Response(200, json={"data": {"id": "7", "username": "me", "name": "Me"}})
        if request.url.path == "/2/users/7":
            return httpx.Response(
                200, json={"data": {"id": "7", "public_metrics": {"followers_count": 12}}}
            )
        assert request.url.path == "/2/users/7/tweets"
        token = request.url.params.get("pagination_token")
        if token is None:
            return httpx.Response(
                200,
                json={
                    "data": [{"id": "3", "text": "c"}, {"id": "2", "text": "b"}],
                    "meta": {"next_token": "p2", "result_count": 2},
                },
            )
        return httpx.Response(
            200, json={"data": [{"id": "1", "text": "a"}], "meta": {"result_count": 1}}
        )

    client = make_client(handler)
    assert client.get_me()["id"] == "7"
    assert client.get_user("7")["public_metrics"]["followers_count"] == 12
    assert [t["id"] for t in client.iter_user_tweets("7")] == ["3", "2", "1"]


def _problem(status: int, title: str, detail: str, **headers: str):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json={"title": title, "detail": detail, "type": "about:blank", "status": status},
            headers=headers,
        )

    return handler


@pytest.mark.parametrize(
    ("handler", "error", "may_have_landed"),
    [
        (
            _problem(
                403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
            ),
            XDuplicateContentError,
            False,
        ),
        (_problem(401, "Unauthorized", "Unauthorized"), XAuthError, False),
        (
            _problem(
                403,
                "Unsupported Authentication",
                "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.",
            ),
            XAuthError,
            False,
        ),
        (
            _problem(400, "Invalid Request", "One or more parameters to your request was invalid."),
            XBadRequestError,
            False,
        ),
        (_problem(503, "Service Unavailable", "Service Unavailable"), XServerError, True),
        (
            lambda r: httpx.Response(
                403,
                json={
                    "errors": [
                        {"code": 226, "message": "This request looks like it might be automated."}
                    ]
                },
            ),
            XAutomationBlockedError,
            False,
        ),
        (
            lambda r: httpx.Response(
                403, json={"errors": [{"code": 187, "message": "Status is a duplicate."}]}
            ),
            XDuplicateContentError,
            False,
        ),
    ],
)
def test_write_errors_are_typed(handler, error, may_have_landed):
    client = make_client(handler)
    with pytest.raises(error) as info:
        client.create_tweet("hello")
    assert info.value.may_have_taken_effect is may_have_landed
    assert USER_TOKEN not in str(info.value)


def test_rate_limit_error_carries_reset_time():
    reset = int(time.time()) + 120
    client = make_client(
        _problem(
            429,
            "Too Many Requests",
            "Too Many Requests",
            **{"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"},
        )
    )
    with pytest.raises(XRateLimitError) as info:
        client.create_tweet("hello")
    rl = info.value.rate_limit
    assert rl.remaining == 0 and rl.reset_at == datetime.fromtimestamp(reset, tz=UTC)
    assert 100 <= (rl.seconds_until_reset() or 0) <= 120


def test_timeout_on_write_may_have_landed_but_connect_failure_did_not():
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(XTimeoutError) as info:
        make_client(slow).create_tweet("x")
    assert info.value.may_have_taken_effect

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(XConnectionError) as info2:
        make_client(refused).create_tweet("x")
    assert not info2.value.may_have_taken_effect


def test_reads_retry_server_errors_but_writes_never_do():
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            return httpx.Response(
                503, json={"title": "Service Unavailable", "detail": "x", "type": "about:blank"}
            )
        if request.method == "POST":
            return httpx.Response(201, json={"data": {"id": "5", "text": "x"}})
        return httpx.Response(200, json={"data": {"id": "5", "text": "x"}})

    client = make_client(flaky, read_attempts=3)
    assert client.get_tweet("5")["id"] == "5"
    assert calls["n"] == 3
    calls["n"] = 0
    with pytest.raises(XServerError):
        client.create_tweet("x")
    assert calls["n"] == 1


def test_missing_tweet_is_not_found():
    client = make_client(
        lambda r: httpx.Response(
            200,
            json={
                "errors": [
                    {
                        "title": "Not Found Error",
                        "detail": "Could not find tweet with id: [9].",
                        "type": "https://api.x.com/2/problems/resource-not-found",
                    }
                ]
            },
        )
    )
    with pytest.raises(XNotFoundError):
        client.get_tweet("9")


def test_settings_pick_oauth2_then_oauth1_and_mask_secrets():
    s = load_settings(env_file=None, x_oauth2_user_token="tok-SECRET")
    auth = user_auth_from_settings(s)
    assert isinstance(auth, BearerAuth) and "SECRET" not in repr(auth)
    s1 = load_settings(
        env_file=None,
        x_api_key="k",
        x_api_secret="ks-SECRET",
        x_access_token="t",
        x_access_token_secret="ts-SECRET",
    )
    auth1 = user_auth_from_settings(s1)
    assert isinstance(auth1, OAuth1Auth) and "SECRET" not in repr(auth1)
    with pytest.raises(ValueError, match="X_ACCESS_TOKEN_SECRET"):
        user_auth_from_settings(
            load_settings(env_file=None, x_api_key="k", x_api_secret="s", x_access_token="t")
        )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"data": {"id": "1", "text": "x"}})

    client = XApiClient(
        "https://api.example.test", user_auth=auth1, transport=httpx.MockTransport(handler)
    )
    client.create_tweet("x")
    assert seen[0].headers["authorization"].startswith('OAuth oauth_consumer_key="k"')
    assert "ks-SECRET" not in seen[0].headers["authorization"]


def test_missing_credentials_say_what_to_set():
    client = XApiClient(
        "https://api.example.test", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    with pytest.raises(Exception, match="X_OAUTH2_USER_TOKEN"):
        client.create_tweet("x")
