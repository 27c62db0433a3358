"""Each fault switch and each platform block produces what X produces."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import numpy as np
import pytest

from xbot_assets.sandbox import Post, SandboxError, SandboxX

from .test_api_schema import check


def test_rate_limit_headers_and_429(client, user_headers, sandbox: SandboxX) -> None:
    r = client.get("/2/users/me", headers=user_headers)
    assert r.headers["x-rate-limit-limit"] == "900"
    assert r.headers["x-rate-limit-remaining"] == "899"
    reset = int(r.headers["x-rate-limit-reset"])
    assert reset == int((sandbox.clock.now() + timedelta(seconds=900)).timestamp())
    client.post("/__sandbox/faults", json={"name": "rate_limit", "match": "get_users", "count": 1})
    r = client.get("/2/users/me", headers=user_headers)
    assert r.status_code == 429 and check(r, "/2/users/me", "get")["code"] == 88
    assert r.headers["x-rate-limit-remaining"] == "0" and "x-rate-limit-reset" in r.headers
    assert client.get("/2/users/me", headers=user_headers).status_code == 200  # count used up


def test_real_rate_limit_window_resets_with_the_clock(sandbox: SandboxX) -> None:
    token = sandbox.account().user_token
    sandbox.params.raw["platform"]["rate_limits"]["get_users"] = [3, 900]
    for _ in range(3):
        sandbox.get_me(token=token)
    with pytest.raises(SandboxError) as caught:
        sandbox.get_me(token=token)
    assert caught.value.status == 429 and caught.value.headers["x-rate-limit-remaining"] == "0"
    sandbox.clock.advance(timedelta(seconds=901))
    assert sandbox.get_me(token=token)["data"]["username"] == "xbot_sandbox"


def test_automation_block_fault_and_organic_226(sandbox: SandboxX) -> None:
    token = sandbox.account().user_token
    sandbox.set_fault("automation_block", count=1)
    with pytest.raises(SandboxError) as caught:
        sandbox.create_tweet("Python typing tips", token=token)
    assert caught.value.status == 403 and caught.value.code == 226
    assert caught.value.body["errors"][0]["code"] == 226
    # Posting far too often trips X's own block, which then lasts block_minutes.
    with pytest.raises(SandboxError) as organic:
        for i in range(20):
            sandbox.create_tweet(f"Post {i} about pandas and numpy number {i * 7}", token=token)
    assert organic.value.code == 226
    assert sandbox.counters["posts_created"] == 12
    sandbox.clock.advance(timedelta(minutes=30))
    with pytest.raises(SandboxError):
        sandbox.create_tweet("A fresh thought on SQL", token=token)
    sandbox.clock.advance(timedelta(hours=2))
    assert sandbox.create_tweet("A fresh thought on SQL", token=token)["data"]["id"]


def test_spam_raises_negative_feedback() -> None:
    def negative_feedback(text_of, gap: timedelta) -> int:
        sandbox = SandboxX("default", seed=4)
        token = sandbox.account().user_token
        ids = []
        for i in range(60):
            sandbox.clock.advance(gap)
            ids.append(sandbox.create_tweet(text_of(i), token=token)["data"]["id"])
            if i % 10 == 9:
                sandbox.clock.advance(timedelta(hours=3))
        sandbox.clock.advance(timedelta(days=4))
        return sum(sandbox.post_metrics(p)["negative_feedback"] for p in ids)

    from xbot_assets.sandbox.textgen import make_post_text

    rng = np.random.default_rng(0)
    texts = [make_post_text("single", "python", rng) for _ in range(60)]
    calm = negative_feedback(lambda i: texts[i], timedelta(hours=2))
    spammy = negative_feedback(lambda i: texts[i] + " #a #b #c #d", timedelta(minutes=8))
    assert spammy > 2 * calm


def test_server_error_unavailable_and_lost_response(client, user_headers, sandbox) -> None:
    client.post("/__sandbox/faults", json={"name": "server_error", "count": 1})
    r = client.get("/2/users/me", headers=user_headers)
    assert r.status_code == 500 and check(r, "/2/users/me", "get")["type"].endswith(
        "internal-error"
    )
    client.post("/__sandbox/faults", json={"name": "unavailable", "count": 1})
    r = client.get("/2/users/me", headers=user_headers)
    assert r.status_code == 503 and check(r, "/2/users/me", "get")["code"] == 130
    # lose_response: the post goes out but the answer is lost (what the reconciler must handle).
    client.post("/__sandbox/faults", json={"name": "lose_response", "match": "create_tweet"})
    r = client.post("/2/tweets", json={"text": "How to reconcile lost posts"}, headers=user_headers)
    assert r.status_code == 503
    check(r, "/2/tweets", "post")
    timeline = client.get(f"/2/users/{sandbox.account().id}/tweets", headers=user_headers).json()
    assert timeline["data"][0]["text"] == "How to reconcile lost posts"
    client.delete("/__sandbox/faults")
    r = client.post("/2/tweets", json={"text": "How to reconcile lost posts"}, headers=user_headers)
    assert r.status_code == 403 and r.json()["code"] == 187  # the retry is a duplicate


def test_slow_endpoint(client, user_headers) -> None:
    client.post("/__sandbox/faults", json={"name": "slow", "seconds": 0.4, "count": 1})
    started = time.perf_counter()
    assert client.get("/2/users/me", headers=user_headers).status_code == 200
    assert time.perf_counter() - started >= 0.4


def test_slow_response_creates_the_post_before_the_late_answer(
    client, user_headers, sandbox: SandboxX
) -> None:
    """The post exists while its answer is held: a caller killed in that window has posted."""
    import threading

    client.post(
        "/__sandbox/faults",
        json={"name": "slow_response", "match": "create_tweet", "seconds": 1.0, "count": 1},
    )
    answers: list[httpx.Response] = []
    poster = threading.Thread(
        target=lambda: answers.append(
            client.post("/2/tweets", json={"text": "Held answers still post"}, headers=user_headers)
        )
    )
    started = time.perf_counter()
    poster.start()
    deadline = time.monotonic() + 5
    while "slow_response" in client.get("/__sandbox/faults").json()["active"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    timeline = client.get(f"/2/users/{sandbox.account().id}/tweets", headers=user_headers).json()
    assert timeline["data"][0]["text"] == "Held answers still post"
    assert not answers  # the post is on the timeline, its answer not yet sent
    poster.join()
    assert answers[0].status_code == 201
    assert time.perf_counter() - started >= 1.0


def test_admin_counters_accounts_and_clock(client, sandbox: SandboxX) -> None:
    state = client.get("/__sandbox/state").json()
    assert state["counters"].get("write_requests", 0) == 0
    new = client.post("/__sandbox/accounts", json={"handle": "second_bot", "followers": 50})
    assert new.status_code == 201
    headers = {"Authorization": f"Bearer {new.json()['user_token']}"}
    r = client.post("/2/tweets", json={"text": "Hello from the second account"}, headers=headers)
    assert r.status_code == 201
    assert _post(sandbox, r.json()["data"]["id"]).account.handle == "second_bot"
    assert client.get("/__sandbox/state").json()["counters"]["write_requests"] == 1
    now = client.post("/__sandbox/clock/advance", json={"hours": 1}).json()["now"]
    assert now == "2026-01-05T01:00:00.000Z"
    metrics = client.get(f"/__sandbox/posts/{r.json()['data']['id']}/metrics").json()
    assert set(metrics) >= {"impressions", "negative_feedback", "follows"}
    assert client.post("/__sandbox/faults", json={"name": "nope"}).status_code == 400


def _login(client: httpx.Client, sandbox: SandboxX) -> httpx.Response:
    account = sandbox.account()
    return client.post(
        "/i/flow/login",
        data={"text": account.handle, "password": account.password},
        follow_redirects=False,
    )


def test_web_session_expired_and_challenge(client: httpx.Client, sandbox: SandboxX) -> None:
    r = client.get("/home", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/i/flow/login")
    bad = client.post("/i/flow/login", data={"text": "xbot_sandbox", "password": "wrong"})
    assert "Wrong password" in bad.text
    r = _login(client, sandbox)
    assert r.status_code == 302 and r.headers["location"] == "/home"
    assert "auth_token" in client.cookies
    home = client.get("/home")
    assert 'data-testid="tweetTextarea_0"' in home.text
    assert 'data-testid="tweetButtonInline"' in home.text
    sandbox.set_fault("layout_changed")
    home = client.get("/home")
    assert 'data-testid="tweetTextarea_0"' not in home.text
    assert 'data-testid="composerTextarea"' in home.text
    sandbox.clear_faults()
    sandbox.set_fault("expired_session")
    r = client.get("/home", follow_redirects=False)
    assert r.status_code == 302 and "/i/flow/login" in r.headers["location"]
    sandbox.clear_faults()
    sandbox.set_fault("login_challenge", count=1)
    r = _login(client, sandbox)
    assert r.headers["location"] == "/account/login_challenge"
    assert 'data-testid="challenge"' in client.get("/account/login_challenge").text


def test_web_create_tweet_json_and_blocks(client: httpx.Client, sandbox: SandboxX) -> None:
    from xbot_assets.sandbox.web import CREATE_TWEET_PATH

    _login(client, sandbox)
    headers = {"x-csrf-token": client.cookies["ct0"]}

    def create(text: str, reply_to: str | None = None) -> httpx.Response:
        variables: dict = {"tweet_text": text}
        if reply_to:
            variables["reply"] = {"in_reply_to_tweet_id": reply_to}
        return client.post(CREATE_TWEET_PATH, json={"variables": variables}, headers=headers)

    r = create("How to write a good thread about Python")
    root = r.json()["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]
    r = create("Second part: keep each post short", reply_to=root)
    reply = r.json()["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]
    parent = _post(sandbox, reply).reply_to
    assert parent is not None and parent.id == root
    assert _post(sandbox, root).format == "thread"
    page = client.get(f"/xbot_sandbox/status/{root}")
    assert "keep each post short" in page.text and f'data-reply-to="{root}"' in page.text
    assert f'href="/xbot_sandbox/status/{root}"' in client.get("/xbot_sandbox").text
    sandbox.set_fault("automation_block", count=1)
    r = create("Another post about pandas")
    assert r.status_code == 200 and r.json()["errors"][0]["code"] == 226
    sandbox.set_fault("rate_limit", match="web_create_tweet", count=1)
    assert create("Another post about pandas").status_code == 429
    assert create("How to write a good thread about Python").json()["errors"][0]["code"] == 187
    r = client.post(CREATE_TWEET_PATH, json={"variables": {"tweet_text": "x"}})
    assert r.status_code == 403  # no csrf header


def _post(sandbox: SandboxX, post_id: str | None) -> Post:
    post = sandbox.post(str(post_id))
    assert post is not None, f"post {post_id} is not in the sandbox"
    return post


def test_http_automation_block_body_matches_the_spec(client, user_headers) -> None:
    client.post("/__sandbox/faults", json={"name": "automation_block", "count": 1})
    r = client.post("/2/tweets", json={"text": "Python decorators explained"}, headers=user_headers)
    body = check(r, "/2/tweets", "post")
    assert r.status_code == 403 and body["code"] == 226 and body["errors"][0]["code"] == 226


def test_reply_to_another_account_joins_its_conversation(sandbox: SandboxX) -> None:
    other = sandbox.add_account("someone_else", followers=300)
    theirs = sandbox.create_tweet("What is your favourite SQL trick?", token=other.user_token)
    their_id = theirs["data"]["id"]
    sandbox.clock.advance(timedelta(hours=1))
    mine = sandbox.create_tweet("Window functions, always.", their_id,
                                token=sandbox.account().user_token)  # fmt: skip
    post = _post(sandbox, mine["data"]["id"])
    assert post.conversation_id == their_id and post.format == "single"
    body = sandbox.get_tweet(post.id, "in_reply_to_user_id,conversation_id")
    assert body["data"]["in_reply_to_user_id"] == other.id
