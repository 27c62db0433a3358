"""The at-most-once protocol against a fake X: claims, gates, errors, threads, reconciliation."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from xbot_assets.config import load_settings
from xbot_assets.posting.base import (
    AuthFailed,
    AutomationBlocked,
    DuplicateRefused,
    NotSent,
    PostTimeout,
    RateLimited,
    Rejected,
    ServerFailed,
)
from xbot_assets.posting.ledger import BACKOFF_KEY, RateCaps
from xbot_assets.posting.reconciler import Reconciler
from xbot_assets.posting.service import PostingService, send_block_reason

OPEN_CAPS = RateCaps(
    max_posts_per_hour=100,
    max_posts_per_day=1000,
    min_spacing=timedelta(0),
    max_replies_per_hour=100,
)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request):
    """The protocol runs on both durable stores (Postgres as the bot's RLS-bound role)."""
    from xbot_assets.posting.ledger import PostingLedger
    from xbot_assets.store.durable import DurableStore

    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("sqlite_url")
    store = DurableStore.from_url(url, environment="local")
    yield PostingLedger(store.engine, "local")
    store.engine.dispose()


def setup(ledger, fake_x, clock, caps=OPEN_CAPS):
    account = ledger.ensure_account("acct")
    service = PostingService(
        ledger, fake_x, account_id=account, caps=caps, clock=clock, alert=lambda m: None
    )
    return account, service


def test_single_post_is_posted_with_xs_id(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    [row] = ledger.enqueue(account, ["How to write tests in Python"], scheduled_at=clock())
    outcome = service.post_next()
    assert outcome.status == "posted" and outcome.x_id == fake_x.posts[0].x_id
    [stored] = ledger.rows(account)
    assert stored["status"] == "posted" and stored["x_id"] == outcome.x_id and stored["id"] == row
    assert service.post_next().status == "nothing_due"
    assert fake_x.post_calls == 1


def test_thread_is_a_reply_chain_in_order(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    parts = [f"part {i} about Python and pandas" for i in range(1, 5)]
    ledger.enqueue(account, parts, scheduled_at=clock())
    outcomes = service.run()
    assert [o.status for o in outcomes] == ["posted"] * 4 + ["nothing_due"]
    chain = list(reversed(fake_x.posts))
    assert [p.text for p in chain] == parts
    assert chain[0].in_reply_to is None
    for prev, cur in itertools.pairwise(chain):
        assert cur.in_reply_to == prev.x_id


def test_thread_resumes_after_a_part_fails_without_reposting(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    parts = [f"thread part {i} on startups" for i in range(1, 5)]
    ledger.enqueue(account, parts, scheduled_at=clock())
    fake_x.faults = [None, None, NotSent("connection refused")]
    first = service.run()
    assert [o.status for o in first] == ["posted", "posted", "released"]
    clock.advance(minutes=2)
    second = service.run()
    assert [o.status for o in second] == ["posted", "posted", "nothing_due"]
    assert sorted(p.text for p in fake_x.posts) == sorted(parts)  # each part exactly once
    chain = list(reversed(fake_x.posts))
    for prev, cur in itertools.pairwise(chain):
        assert cur.in_reply_to == prev.x_id


def test_rate_caps_are_checked_on_durable_rows(ledger, fake_x, clock):
    caps = RateCaps(
        max_posts_per_hour=2,
        max_posts_per_day=3,
        min_spacing=timedelta(minutes=10),
        max_replies_per_hour=10,
    )
    account, service = setup(ledger, fake_x, clock, caps)
    for i in range(5):
        ledger.enqueue(account, [f"post number {i} about data science"], scheduled_at=clock())
    assert service.post_next().status == "posted"
    blocked = service.post_next()
    assert blocked.status == "blocked" and "spacing" in blocked.reason
    clock.advance(minutes=11)
    assert service.post_next().status == "posted"
    clock.advance(minutes=11)
    blocked = service.post_next()
    assert blocked.status == "blocked" and "max_posts_per_hour" in blocked.reason
    clock.advance(minutes=50)
    assert service.post_next().status == "posted"
    clock.advance(hours=2)
    blocked = service.post_next()
    assert blocked.status == "blocked" and "max_posts_per_day" in blocked.reason
    assert fake_x.post_calls == 3


def test_brake_stops_claims(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["a post about AI agents"], scheduled_at=clock())
    ledger.engage_brake("operator test", actor="test", now=clock())
    outcome = service.post_next()
    assert outcome.status == "blocked" and "brake" in outcome.reason
    assert fake_x.post_calls == 0 and ledger.status_counts(account) == {"queued": 1}


@pytest.mark.parametrize("error", [AutomationBlocked("226"), AuthFailed("401")])
def test_automation_block_and_auth_failure_raise_the_brake_and_alert(ledger, fake_x, clock, error):
    account = ledger.ensure_account("acct")
    alerts: list[str] = []
    service = PostingService(
        ledger, fake_x, account_id=account, caps=OPEN_CAPS, clock=clock, alert=alerts.append
    )
    ledger.enqueue(account, ["one", "two"], scheduled_at=clock())
    ledger.enqueue(account, ["another post"], scheduled_at=clock())
    fake_x.faults = [error]
    outcomes = service.run()
    assert [o.status for o in outcomes] == ["stopped"]
    assert ledger.brake_reason() == error.outcome and alerts
    assert ledger.status_counts(account) == {"queued": 3}  # nothing lost, nothing posted
    assert service.post_next().status == "blocked"


def test_rate_limit_backs_off_until_reset(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["post about Kubernetes"], scheduled_at=clock())
    ledger.enqueue(account, ["post about Docker"], scheduled_at=clock())
    reset = clock() + timedelta(minutes=7)
    fake_x.faults = [RateLimited("429", retry_after=reset)]
    outcome = service.post_next()
    assert outcome.status == "released" and outcome.retry_at == reset
    assert ledger.get_config(BACKOFF_KEY) == reset.isoformat()
    clock.advance(minutes=6)
    blocked = service.post_next()  # the other post is due, but the whole account backs off
    assert blocked.status == "blocked" and "backing off" in blocked.reason
    clock.advance(minutes=2)
    assert [o.status for o in service.run()] == ["posted", "posted", "nothing_due"]
    assert len(fake_x.posts) == 2


def test_duplicate_refusal_finds_the_existing_post(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["the same words"], scheduled_at=clock())
    fake_x.post("the same words")  # already on X (posted by an earlier life of the bot)
    fake_x.faults = [DuplicateRefused("duplicate content")]
    outcome = service.post_next()
    assert outcome.status == "posted" and outcome.x_id == fake_x.posts[0].x_id
    assert len(fake_x.posts) == 1


def test_duplicate_not_on_timeline_and_rejections_fail_for_good(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["text one"], scheduled_at=clock())
    ledger.enqueue(account, ["text two"], scheduled_at=clock())
    fake_x.faults = [DuplicateRefused("dup"), Rejected("too long")]
    assert service.post_next().status == "failed"
    assert service.post_next().status == "failed"
    assert ledger.status_counts(account) == {"failed": 2}


@pytest.mark.parametrize("error", [PostTimeout("timeout"), ServerFailed("503")])
def test_maybe_posted_is_left_for_the_reconciler_which_finds_it(ledger, fake_x, clock, error):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["maybe posted text"], scheduled_at=clock())
    fake_x.faults = [error]  # posted on X, but the answer was lost
    assert service.post_next().status == "left_for_reconciler"
    assert ledger.status_counts(account) == {"posting": 1}
    assert service.post_next().status == "nothing_due"  # never retried blindly
    reconciler = Reconciler(
        ledger, fake_x, account_id=account, grace=timedelta(minutes=5), clock=clock
    )
    assert reconciler.run().found == {}  # within the grace period: untouched
    clock.advance(minutes=6)
    report = reconciler.run()
    [row] = ledger.rows(account)
    assert report.found == {row["id"]: fake_x.posts[0].x_id}
    assert row["status"] == "posted" and row["x_id"] == fake_x.posts[0].x_id
    assert len(fake_x.posts) == 1


def test_reconciler_marks_unknown_or_retries_once(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["never arrived"], scheduled_at=clock())
    claim = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    # the poster died after its "sent" mark: the request may have left
    assert ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=clock())
    clock.advance(minutes=11)
    plain = Reconciler(ledger, fake_x, account_id=account, clock=clock)
    assert plain.guarded_retry is False
    report = plain.run()
    assert report.unknown == [claim.tweet_id]
    assert ledger.status_counts(account) == {"unknown": 1}

    ledger.enqueue(account, ["also never arrived"], scheduled_at=clock())
    first = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    assert ledger.mark_sending(first.tweet_id, first.attempt_id, now=clock())
    clock.advance(minutes=11)
    guarded = Reconciler(ledger, fake_x, account_id=account, guarded_retry=True, clock=clock)
    assert len(guarded.run().requeued) == 1
    fake_x.faults = [NotSent("down")]
    assert service.post_next().status == "released"
    clock.advance(minutes=2)
    # Second death after the retry's "sent" mark: no more retries, a person decides.
    claim2 = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    assert ledger.mark_sending(claim2.tweet_id, claim2.attempt_id, now=clock())
    clock.advance(minutes=11)
    assert guarded.run().unknown == [claim2.tweet_id]


def test_late_answer_after_a_guarded_requeue_wins_and_prevents_the_retry(ledger, fake_x, clock):
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["slow one"], scheduled_at=clock())
    claim = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    assert ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=clock())
    clock.advance(minutes=11)
    Reconciler(ledger, fake_x, account_id=account, guarded_retry=True, clock=clock).run()
    assert ledger.mark_posted(claim.tweet_id, claim.attempt_id, "777", now=clock())
    assert service.post_next().status == "nothing_due"
    assert ledger.rows(account)[0]["x_id"] == "777"


def test_staging_without_live_posts_is_a_dry_run(ledger, fake_x, clock, monkeypatch):
    staging = load_settings(
        env_file=None,
        app_env="staging",
        database_url="postgresql://x@127.0.0.1/db",
        LIVE_POSTS="false",
        poster="api",
    )
    reason = send_block_reason(staging, fake_x)
    assert reason and "dry run" in reason
    account = ledger.ensure_account("acct")
    service = PostingService(
        ledger, fake_x, account_id=account, caps=OPEN_CAPS, clock=clock, block_reason=reason
    )
    ledger.enqueue(account, ["not to be sent"], scheduled_at=clock())
    assert service.post_next().status == "dry_run"
    assert fake_x.post_calls == 0 and ledger.status_counts(account) == {"queued": 1}
    local = load_settings(env_file=None, poster="api")
    assert send_block_reason(local, fake_x) is None
    monkeypatch.setattr(type(fake_x), "targets_loopback", property(lambda self: False))
    assert "loopback" in (send_block_reason(local, fake_x) or "")


def test_a_failing_timeline_read_never_turns_into_a_retry(ledger, fake_x, clock, monkeypatch):
    from xbot_assets.config import load_settings
    from xbot_assets.posting.factory import post_due

    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["dup text"], scheduled_at=clock())

    def broken(*, limit=100):
        raise RateLimited("timeline read limited")

    monkeypatch.setattr(fake_x, "recent_own_posts", broken)
    fake_x.faults = [DuplicateRefused("dup")]
    outcome = service.post_next()
    assert outcome.status == "left_for_reconciler"
    assert ledger.status_counts(account) == {"posting": 1}
    # post_due: the reconciler cannot read the timeline; the stuck row stays, others still post
    ledger.enqueue(account, ["another text"], scheduled_at=clock())
    settings = load_settings(
        env_file=None, x_handle="acct", max_posts_per_hour=100, min_spacing_minutes=0
    )
    run = post_due(settings, ledger=ledger, poster=fake_x, clock=clock, grace=timedelta(0))
    assert [o.status for o in run.outcomes] == ["posted", "nothing_due"]
    assert ledger.status_counts(account) == {"posting": 1, "posted": 1}


def test_zero_spacing_never_blocks_on_a_concurrent_claim_stamped_later(ledger, fake_x, clock):
    caps = RateCaps(max_posts_per_hour=10, max_posts_per_day=10, min_spacing=timedelta(0))
    account = ledger.ensure_account("acct")
    ledger.enqueue(account, ["first"], scheduled_at=clock())
    ledger.enqueue(account, ["second"], scheduled_at=clock())
    later = clock() + timedelta(milliseconds=5)
    assert ledger.claim_next_due(account, caps, now=later).text == "first"
    # another worker read its clock a moment earlier and claims after: not blocked
    assert ledger.claim_next_due(account, caps, now=clock()).text == "second"
    spaced = RateCaps(max_posts_per_hour=10, max_posts_per_day=10, min_spacing=timedelta(minutes=1))
    ledger.enqueue(account, ["third"], scheduled_at=clock())
    assert "spacing" in ledger.claim_next_due(account, spaced, now=clock()).reason


def test_only_production_with_live_posts_true_may_send_to_x(fake_x):
    pg = "postgresql://bot@127.0.0.1/prod"
    live = load_settings(env_file=None, app_env="production", database_url=pg, LIVE_POSTS="true")
    assert live.resolved_poster == "api" and send_block_reason(live, fake_x) is None
    for value in (None, "false"):
        extra = {} if value is None else {"LIVE_POSTS": value}
        off = load_settings(env_file=None, app_env="production", database_url=pg, **extra)
        assert "dry run" in (send_block_reason(off, fake_x) or "")
