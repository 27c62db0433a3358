"""Every served X API endpoint answers with the JSON shapes of X's own OpenAPI spec.

Each response (success and error) is validated with jsonschema against the spec's schema for that
path, method and status (``default`` for errors), resolving ``$ref`` inside openapi.json.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from xbot_assets.sandbox import SandboxX

SPEC_PATH = Path("/work/shared/x-api/openapi.json")
SERVED = {
    ("/2/tweets", "get"), ("/2/tweets", "post"), ("/2/tweets/{id}", "get"),
    ("/2/tweets/{id}", "delete"), ("/2/tweets/analytics", "get"), ("/2/users/me", "get"),
    ("/2/users/{id}", "get"), ("/2/users/{id}/tweets", "get"),
}  # fmt: skip


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    assert SPEC_PATH.is_file(), f"X's OpenAPI spec is missing at {SPEC_PATH}"
    return json.loads(SPEC_PATH.read_text())


def check(response: httpx.Response, path: str, method: str) -> dict[str, Any]:
    """Validate the response body against the spec; returns the body."""
    assert (path, method) in SERVED
    responses = spec()["paths"][path][method]["responses"]
    entry = responses.get(str(response.status_code)) or responses["default"]
    assert response.headers["content-type"].startswith("application/json")
    ref = entry["content"]["application/json"]["schema"]["$ref"]
    root = {**spec(), "$ref": ref}
    body = response.json()
    jsonschema.Draft7Validator(root).validate(body)
    return body


@pytest.fixture
def posted(client: httpx.Client, user_headers: dict[str, str]) -> tuple[str, str]:
    root = client.post("/2/tweets", json={"text": "How to profile Python code"},
                       headers=user_headers)  # fmt: skip
    assert root.status_code == 201
    root_id = check(root, "/2/tweets", "post")["data"]["id"]
    reply = client.post(
        "/2/tweets",
        json={
            "text": "Start with cProfile and snakeviz",
            "reply": {"in_reply_to_tweet_id": root_id},
        },
        headers=user_headers,
    )
    assert reply.status_code == 201
    client.post("/__sandbox/clock/advance", json={"hours": 6})
    return root_id, check(reply, "/2/tweets", "post")["data"]["id"]


def test_create_and_lookup(client, user_headers, app_headers, posted) -> None:
    root_id, reply_id = posted
    fields = "public_metrics,non_public_metrics,organic_metrics,created_at,conversation_id,"
    fields += "referenced_tweets,in_reply_to_user_id,author_id,entities"
    r = client.get("/2/tweets", params={"ids": f"{root_id},{reply_id},123",
                                        "tweet.fields": fields}, headers=user_headers)  # fmt: skip
    body = check(r, "/2/tweets", "get")
    assert [p["id"] for p in body["data"]] == [root_id, reply_id]
    assert body["errors"][0]["resource_id"] == "123"
    reply = body["data"][1]
    assert reply["conversation_id"] == root_id
    assert reply["referenced_tweets"] == [{"type": "replied_to", "id": root_id}]
    assert body["data"][0]["public_metrics"]["impression_count"] > 0
    # The app token may not read private metrics: data plus a field error.
    r = client.get(f"/2/tweets/{root_id}", params={"tweet.fields": "non_public_metrics"},
                   headers=app_headers)  # fmt: skip
    body = check(r, "/2/tweets/{id}", "get")
    assert "non_public_metrics" not in body["data"]
    assert body["errors"][0]["type"].endswith("not-authorized-for-field")
    # post.fields (the spec's name) works like tweet.fields.
    r = client.get(f"/2/tweets/{root_id}", params={"post.fields": "created_at"},
                   headers=app_headers)  # fmt: skip
    assert check(r, "/2/tweets/{id}", "get")["data"]["created_at"].endswith("Z")


def test_lookup_errors(client, app_headers) -> None:
    r = client.get("/2/tweets/999", headers=app_headers)
    assert r.status_code == 200 and "data" not in check(r, "/2/tweets/{id}", "get")
    r = client.get("/2/tweets", headers=app_headers)
    assert r.status_code == 400
    check(r, "/2/tweets", "get")
    r = client.get("/2/tweets", params={"ids": "1", "tweet.fields": "bogus"}, headers=app_headers)
    assert r.status_code == 400 and "bogus" in check(r, "/2/tweets", "get")["message"]
    r = client.get("/2/tweets", params={"ids": "1", "nope": "1"}, headers=app_headers)
    assert r.status_code == 400
    r = client.get("/2/tweets", params={"ids": "1"})
    assert r.status_code == 401 and check(r, "/2/tweets", "get")["code"] == 32


def test_users(client, user_headers, app_headers, sandbox: SandboxX, posted) -> None:
    me = client.get("/2/users/me", params={"user.fields": "public_metrics,created_at"},
                    headers=user_headers)  # fmt: skip
    data = check(me, "/2/users/me", "get")["data"]
    assert data["username"] == "xbot_sandbox"
    assert data["public_metrics"]["followers_count"] >= 1900
    assert data["public_metrics"]["tweet_count"] == 2
    r = client.get("/2/users/me", headers=app_headers)
    assert r.status_code == 403
    check(r, "/2/users/me", "get")
    r = client.get(f"/2/users/{data['id']}", params={"user.fields": "public_metrics"},
                   headers=app_headers)  # fmt: skip
    assert check(r, "/2/users/{id}", "get")["data"]["id"] == data["id"]
    r = client.get("/2/users/42", headers=app_headers)
    assert check(r, "/2/users/{id}", "get")["errors"][0]["resource_type"] == "user"


def test_user_timeline_pagination(client, user_headers, app_headers, sandbox: SandboxX) -> None:
    token = sandbox.account().user_token
    ids = []
    for i in range(7):
        sandbox.clock.advance(__import__("datetime").timedelta(hours=3))
        ids.append(sandbox.create_tweet(f"Python tip number {i}: use typing", token=token)
                   ["data"]["id"])  # fmt: skip
    user_id = sandbox.account().id
    path = "/2/users/{id}/tweets"
    r = client.get(f"/2/users/{user_id}/tweets", params={"max_results": 5}, headers=app_headers)
    first = check(r, path, "get")
    assert [p["id"] for p in first["data"]] == ids[::-1][:5]
    r = client.get(
        f"/2/users/{user_id}/tweets",
        headers=app_headers,
        params={"max_results": 5, "pagination_token": first["meta"]["next_token"]},
    )
    second = check(r, path, "get")
    assert [p["id"] for p in second["data"]] == ids[::-1][5:]
    assert "next_token" not in second["meta"]
    r = client.get(f"/2/users/{user_id}/tweets", params={"since_id": ids[4]}, headers=app_headers)
    assert [p["id"] for p in check(r, path, "get")["data"]] == [ids[6], ids[5]]
    for bad in ({"max_results": 500}, {"since_id": "abc"}, {"max_results": "ten"}):
        r = client.get(f"/2/users/{user_id}/tweets", params=bad, headers=app_headers)
        assert r.status_code == 400, bad
        check(r, path, "get")
    r = client.get("/2/nothing/here", headers=app_headers)
    assert r.status_code == 404 and r.json()["status"] == 404


def test_delete(client, user_headers, sandbox: SandboxX, posted) -> None:
    root_id, _ = posted
    other = sandbox.add_account("other_acct", followers=100)
    r = client.delete(
        f"/2/tweets/{root_id}", headers={"Authorization": f"Bearer {other.user_token}"}
    )
    assert r.status_code == 403
    check(r, "/2/tweets/{id}", "delete")
    r = client.delete(f"/2/tweets/{root_id}", headers=user_headers)
    assert check(r, "/2/tweets/{id}", "delete") == {"data": {"deleted": True}}
    r = client.delete(f"/2/tweets/{root_id}", headers=user_headers)
    assert r.status_code == 404
    check(r, "/2/tweets/{id}", "delete")


def test_analytics(client, user_headers, app_headers, sandbox: SandboxX, posted) -> None:
    root_id, _ = posted
    params = {"ids": root_id, "start_time": "2026-01-04T00:00:00Z",
              "end_time": "2026-01-06T00:00:00Z", "granularity": "hourly"}  # fmt: skip
    r = client.get("/2/tweets/analytics", params=params, headers=user_headers)
    item = check(r, "/2/tweets/analytics", "get")["data"][0]
    assert item["impressions"] == sandbox.post_metrics(root_id)["impressions"]
    assert (
        sum(b["metrics"]["impressions"] for b in item["timestamped_metrics"]) == item["impressions"]
    )
    total = {**params, "granularity": "total", "analytics.fields": "likes,negative_feedback"}
    r = client.get("/2/tweets/analytics", params=total, headers=user_headers)
    assert set(check(r, "/2/tweets/analytics", "get")["data"][0]) == {
        "id", "likes", "negative_feedback"
    }  # fmt: skip
    r = client.get("/2/tweets/analytics", params={"ids": root_id}, headers=user_headers)
    assert r.status_code == 400
    check(r, "/2/tweets/analytics", "get")
    r = client.get("/2/tweets/analytics", params=params, headers=app_headers)
    assert r.status_code == 403
    check(r, "/2/tweets/analytics", "get")


def test_create_errors(client, user_headers, app_headers, posted) -> None:
    path = "/2/tweets"
    cases = [
        ({"text": "How to profile Python code"}, user_headers, 403, 187),  # duplicate
        ({"text": "x", "media": {}, "bogus": 1}, user_headers, 400, 44),
        ({"text": "   "}, user_headers, 400, 44),
        ({"text": "a" * 281}, user_headers, 403, 186),
        ({"text": "hi", "reply": {"in_reply_to_tweet_id": "5"}}, user_headers, 403, 385),
        ({"text": "hi there"}, app_headers, 403, 453),
        ({"text": "hi there"}, {}, 401, 32),
    ]
    for payload, headers, status, code in cases:
        r = client.post(path, json=payload, headers=headers)
        assert r.status_code == status, (payload, r.text)
        body = check(r, path, "post")
        assert body["code"] == code
        if code != 44:  # invalid-request items carry message + parameters, like X's
            assert body["errors"][0]["code"] == code
    r = client.post(path, content=b"{not json", headers=user_headers)
    assert r.status_code == 400
    check(r, path, "post")
