"""End to end through the api poster and the xapi client to the sandbox's HTTP API.

Each fault switch of the sandbox that touches the API produces the expected outcome, and the
sandbox never holds two posts of one queued text.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from xbot_assets.posting.factory import make_poster, open_ledger, post_due, reconcile
from xbot_assets.xapi import XApiClient, XAuthError

from .conftest import api_settings

pytestmark = pytest.mark.usefixtures("no_quiet_hours")

PARTS = [
    "How to profile Python code: a short thread",
    "Start with cProfile and sort by cumulative time, not by calls",
    "Then zoom in with line_profiler on the one function that matters",
    "Finally measure again: pandas vectorisation beat our loop by 40x",
]


def sandbox_texts(sandbox) -> Counter:
    return Counter(p.text for p in sandbox.posts_of())


def assert_no_duplicates(sandbox) -> None:
    dups = {t: n for t, n in sandbox_texts(sandbox).items() if n > 1}
    assert dups == {}


def test_single_and_thread_through_the_api_poster(sandbox, sandbox_url, sqlite_url):
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    now = datetime.now(UTC)
    [single] = ledger.enqueue(
        account, ["Unpopular opinion: notebooks are fine for SQL analytics"], scheduled_at=now
    )
    thread = ledger.enqueue(account, PARTS, scheduled_at=now + timedelta(seconds=1))
    run = post_due(settings, ledger=ledger, clock=lambda: now + timedelta(seconds=2))
    assert [o.status for o in run.outcomes] == ["posted"] * 5 + ["nothing_due"]
    rows = {r["id"]: r for r in ledger.rows(account)}
    # the ids recorded are the sandbox's, and the thread is a real reply chain
    single_post = sandbox.post(rows[single]["x_id"])
    assert single_post is not None and single_post.reply_to is None
    chain = [sandbox.post(rows[i]["x_id"]) for i in thread]
    assert [p.text for p in chain] == PARTS
    assert chain[0].reply_to is None
    for parent, child in itertools.pairwise(chain):
        assert child.reply_to is parent
    assert_no_duplicates(sandbox)


def test_xapi_client_reads_the_sandbox(sandbox, sandbox_url, sqlite_url):
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    client = XApiClient.from_settings(settings)
    created = client.create_tweet("Hot take: pytest fixtures beat setUp methods")
    reply = client.create_tweet("and parametrize beats loops", reply_to=created.id)
    assert created.rate_limit.remaining is not None and created.rate_limit.reset_at is not None
    me = client.get_me()
    assert me["username"] == sandbox.account().handle
    assert client.get_user(me["id"])["public_metrics"]["followers_count"] >= 0
    page = client.get_tweets([created.id, reply.id], tweet_fields=("public_metrics", "created_at"))
    assert {t["id"] for t in page.data} == {created.id, reply.id}
    assert "public_metrics" in page.data[0]
    assert client.get_tweet(created.id)["text"].startswith("Hot take")
    timeline = [t["id"] for t in client.iter_user_tweets(me["id"], max_results=5)]
    assert timeline[:2] == [reply.id, created.id]
    assert client.delete_tweet(reply.id) is True
    bad = XApiClient(sandbox_url, user_auth=None, app_auth=None)
    from xbot_assets.xapi import BearerAuth

    with pytest.raises(XAuthError):
        XApiClient(sandbox_url, user_auth=BearerAuth("wrong-token")).create_tweet("x")
    bad.close()


@pytest.mark.parametrize(
    ("fault", "expected_first", "expected_rows_after"),
    [
        # 429: released until the reset header; nothing posted, the account backs off
        ("rate_limit", "released", {"queued": 1}),
        # 226: brake raised, row back in the queue, nothing posted
        ("automation_block", "stopped", {"queued": 1}),
        # 500/503 before anything happened: may have posted -> reconciler: not found -> guarded
        # retry -> posted once
        ("server_error", "left_for_reconciler", {"posted": 1}),
        ("unavailable", "left_for_reconciler", {"posted": 1}),
        # the post exists but the answer was lost -> reconciler finds it -> posted once
        ("lose_response", "left_for_reconciler", {"posted": 1}),
    ],
)
def test_each_api_fault_has_its_outcome_and_no_duplicate(
    sandbox, sandbox_url, sqlite_url, fault, expected_first, expected_rows_after
):
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    now = datetime.now(UTC)
    ledger.enqueue(
        account, ["Data science tip: plot the residuals of every regression"], scheduled_at=now
    )
    sandbox.set_fault(fault, match="create_tweet", count=1)
    alerts: list[str] = []
    first = post_due(settings, ledger=ledger, alert=alerts.append, grace=timedelta(seconds=0))
    assert first.outcomes[0].status == expected_first
    if fault == "automation_block":
        assert ledger.brake_reason() == "automation_block" and alerts
    if fault == "rate_limit":
        assert first.outcomes[0].retry_at is not None and first.outcomes[0].retry_at > now
    # later: the reconciler settles what was left, with one guarded retry allowed
    later = post_due(settings, ledger=ledger, grace=timedelta(seconds=0), guarded_retry=True)
    if expected_first == "left_for_reconciler":
        assert later.reconcile.found or later.reconcile.requeued
    assert ledger.status_counts(account) == expected_rows_after
    assert_no_duplicates(sandbox)
    assert len(sandbox.posts_of()) == expected_rows_after.get("posted", 0)


def test_slow_answer_times_out_and_is_settled_once(sandbox, sandbox_url, sqlite_url):
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    ledger.enqueue(
        account,
        ["Startups: talk to ten customers before you write the MVP"],
        scheduled_at=datetime.now(UTC),
    )
    sandbox.set_fault("slow", match="create_tweet", count=1, seconds=1.0)
    poster = make_poster(settings, timeout=0.3)
    try:
        first = post_due(settings, ledger=ledger, poster=poster, grace=timedelta(seconds=0))
        assert first.outcomes[0].status == "left_for_reconciler"
        assert "timeout" in first.outcomes[0].reason
        assert ledger.status_counts(account) == {"posting": 1}  # never retried blindly
        time.sleep(1.2)  # past the server's delay: whatever it did is visible now
        report = reconcile(
            settings, ledger=ledger, poster=poster, grace=timedelta(seconds=0), guarded_retry=True
        )
        assert len(report.found) + len(report.requeued) == 1
        post_due(settings, ledger=ledger, poster=poster)
    finally:
        poster.close()
    assert ledger.status_counts(account) == {"posted": 1}
    assert len(sandbox.posts_of()) == 1


def test_duplicate_refusal_adopts_the_post_already_on_x(sandbox, sandbox_url, sqlite_url):
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    text = "Python typing: Protocols make fakes easy"
    existing = sandbox.create_tweet(text, token=sandbox.account().user_token)["data"]["id"]
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    ledger.enqueue(account, [text], scheduled_at=datetime.now(UTC))
    run = post_due(settings, ledger=ledger)
    assert run.outcomes[0].status == "posted" and run.outcomes[0].x_id == existing
    assert len(sandbox.posts_of()) == 1


def test_staging_without_live_posts_sends_no_write(sandbox, sandbox_url, sqlite_url, tmp_path):
    cases = [
        (poster, live)
        for poster in ("api", "browser")
        for live in (None, "false", "True", "1", " true")
    ]
    for poster, live in cases:
        overrides = {
            "app_env": "staging",
            "poster": poster,
            "browser_storage_state": tmp_path / "s.json",
        }
        if live is not None:
            overrides["LIVE_POSTS"] = live
        with pytest.warns(UserWarning) if live not in (None, "false") else _nullcontext():
            settings = api_settings(sandbox, sandbox_url, sqlite_url, **overrides)
        assert not settings.posting_to_real_x
        ledger = open_ledger(settings)
        account = ledger.ensure_account(settings.x_handle)
        ledger.enqueue(
            account,
            [f"Staging {poster} post {live!r} about SQL analytics"],
            scheduled_at=datetime.now(UTC),
        )
        sandbox.counters.clear()
        run = post_due(settings, ledger=ledger)
        assert run.outcomes[0].status == "dry_run"
        assert sandbox.counters["write_requests"] == 0
        assert sandbox.counters["requests"] == 0  # not even a read: nothing reaches the X side
        assert sandbox.posts_of() == []
        ledger.engine.dispose()
    # the dry runs are recorded
    from xbot_assets.ops.audit import recent_audit

    ledger = open_ledger(settings)
    dry = recent_audit(ledger.engine, environment="staging", event_type="post.dry_run", limit=50)
    assert len(dry) == len(cases)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False
