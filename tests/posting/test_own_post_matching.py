"""Finding our own post on X by its text never adopts another row's post, and reads X's text as
X writes it (``&amp;``, t.co links).

Text alone does not identify a post: a thread may open with the text of an earlier single post
(the store's duplicate key covers a thread's whole text), and two threads may close with the same
line. Before, the reconciler and the duplicate-refusal lookup took the first post with the text:
a thread root that never reached X was recorded under the old post's id and its next part went
out as a reply to the old post (found by a hostile review, 8 December 2026).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from xbot_assets.posting.base import OwnPost, match_own_post
from xbot_assets.posting.factory import make_poster, open_ledger, post_due, reconcile
from xbot_assets.posting.ledger import RateCaps
from xbot_assets.posting.reconciler import Reconciler
from xbot_assets.posting.sandbox_poster import SandboxPoster
from xbot_assets.posting.service import PostingService

from .conftest import api_settings

OPEN = RateCaps(
    max_posts_per_hour=100, max_posts_per_day=1000, min_spacing=timedelta(0),
    max_replies_per_hour=100,
)  # fmt: skip
HOT_TAKE = "Hot take: tests are documentation."


def _service(ledger, poster, clock, account) -> PostingService:
    return PostingService(
        ledger, poster, account_id=account, caps=OPEN, clock=clock, alert=lambda m: None
    )


def _thread_root_dies_after_its_sent_mark(ledger, clock, account) -> tuple[int, int]:
    """A thread opening with an earlier single post's text, its root claimed and marked sent,
    then the poster killed before X saw it; the root's and the second part's row ids."""
    root, part = ledger.enqueue(account, [HOT_TAKE, "Here is why."], scheduled_at=clock())
    claim = ledger.claim_next_due(account, OPEN, now=clock())
    assert claim.tweet_id == root
    assert ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=clock())
    clock.advance(minutes=11)  # past the reconciler's grace
    return root, part


def _hot_take_posted_on_the_sandbox(ledger, sandbox, clock):
    """The single post HOT_TAKE, on the sandbox's X two hours ago: the poster, the account, its
    service and the single post's row id."""
    poster = SandboxPoster(sandbox)
    account = ledger.ensure_account(poster.account.handle)
    service = _service(ledger, poster, clock, account)
    [single] = ledger.enqueue(account, [HOT_TAKE], scheduled_at=clock())
    assert service.post_next().status == "posted"
    clock.advance(hours=2)
    return poster, account, service, single


def test_a_root_that_never_reached_x_is_not_recorded_as_an_older_post(ledger, fake_x, clock):
    account = ledger.ensure_account("acct")
    ledger.enqueue(account, [HOT_TAKE], scheduled_at=clock())
    assert _service(ledger, fake_x, clock, account).post_next().status == "posted"
    old = fake_x.posts[0].x_id
    clock.advance(hours=2)
    root, _ = _thread_root_dies_after_its_sent_mark(ledger, clock, account)
    report = Reconciler(ledger, fake_x, account_id=account, clock=clock).run()
    assert report.found == {} and report.unknown == [root]
    rows = {r["id"]: r for r in ledger.rows(account)}
    assert rows[root]["x_id"] is None and [r["x_id"] for r in rows.values()].count(old) == 1


def test_on_the_sandbox_the_next_part_never_replies_to_the_older_post(ledger, sandbox, clock):
    """End to end on the sandbox's X: the reconciler leaves the dead root for a guarded retry;
    X refuses the retry as a duplicate of the single post (its own rule), so the root ends
    failed, and no part goes out as a reply to the single post."""
    poster, account, service, single = _hot_take_posted_on_the_sandbox(ledger, sandbox, clock)
    root, part = _thread_root_dies_after_its_sent_mark(ledger, clock, account)
    report = Reconciler(ledger, poster, account_id=account, guarded_retry=True, clock=clock).run()
    assert report.found == {} and report.requeued == [root]
    service.run()
    rows = {r["id"]: r for r in ledger.rows(account)}
    assert (rows[root]["status"], rows[root]["x_id"]) == ("failed", None)
    assert rows[part]["status"] != "posted" and rows[single]["status"] == "posted"
    assert len(sandbox.posts_of()) == 1


def test_x_refusing_a_thread_root_as_a_duplicate_does_not_adopt_the_older_post(
    ledger, sandbox, clock
):
    """No crash needed: X refuses the root as a duplicate of the single post; the lookup by
    text must not take the single post for the thread's root."""
    _, account, service, single = _hot_take_posted_on_the_sandbox(ledger, sandbox, clock)
    root, part = ledger.enqueue(account, [HOT_TAKE, "Here is why."], scheduled_at=clock())
    outcomes = service.run()
    assert (outcomes[0].status, outcomes[0].tweet_id) == ("failed", root)
    rows = {r["id"]: r for r in ledger.rows(account)}
    assert rows[root]["x_id"] is None and rows[single]["status"] == "posted"
    assert rows[part]["status"] != "posted"  # no reply hung off the single post
    assert len(sandbox.posts_of()) == 1


def test_a_part_seen_without_its_parent_matches_no_other_threads_part(ledger, fake_x, clock):
    """The browser poster's profile read shows no reply parent: a stuck closing line must not
    match another thread's identical closing line, which its own row holds."""
    account = ledger.ensure_account("acct")
    service = _service(ledger, fake_x, clock, account)
    ledger.enqueue(account, ["Thread one about caching.", "Follow for more."], scheduled_at=clock())
    assert [o.status for o in service.run()][:2] == ["posted", "posted"]
    clock.advance(hours=2)
    ledger.enqueue(account, ["Thread two about queues.", "Follow for more."], scheduled_at=clock())
    assert service.post_next().status == "posted"
    claim = ledger.claim_next_due(account, OPEN, now=clock())  # thread two's closing line
    assert claim.reply_to_x_id is not None
    assert ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=clock())  # killed here
    clock.advance(minutes=11)
    fake_x.posts = [OwnPost(x_id=p.x_id, text=p.text) for p in fake_x.posts]  # no parents
    report = Reconciler(ledger, fake_x, account_id=account, clock=clock).run()
    assert report.found == {} and report.unknown == [claim.tweet_id]


def test_two_stuck_rows_with_one_text_do_not_share_one_post(ledger, fake_x, clock):
    """Both closing lines stuck in one pass, only one on X: one row takes it, the other is
    left for a person (not recorded with the same id)."""
    account = ledger.ensure_account("acct")
    service = _service(ledger, fake_x, clock, account)
    ledger.enqueue(account, ["Thread one about caching.", "Follow for more."], scheduled_at=clock())
    ledger.enqueue(account, ["Thread two about queues.", "Follow for more."], scheduled_at=clock())
    stuck = []
    for _ in range(2):
        assert service.post_next().status == "posted"  # a root
        claim = ledger.claim_next_due(account, OPEN, now=clock())
        assert ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=clock())
        stuck.append(claim)
    fake_x.post("Follow for more.", reply_to=None)  # one of them reached X
    fake_x.posts = [OwnPost(x_id=p.x_id, text=p.text) for p in fake_x.posts]  # no parents
    clock.advance(minutes=11)
    report = Reconciler(ledger, fake_x, account_id=account, clock=clock).run()
    assert len(report.found) == 1 and len(report.unknown) == 1


def test_the_match_reads_links_as_x_shows_them():
    """X replaces every link by a t.co link of its own: the text still matches."""
    ours = "Profiling notes: https://example.org/profiling?utm=x read it"
    on_x = OwnPost(x_id="9", text="Profiling notes: https://t.co/AbC123xYz read it")
    assert match_own_post([on_x], ours) is on_x
    assert match_own_post([on_x], "Profiling notes: read it") is None


@pytest.mark.usefixtures("no_quiet_hours")
def test_a_lost_answer_for_a_text_with_ampersand_and_brackets_is_found_on_x(
    sandbox, sandbox_url, sqlite_url
):
    """X answers with ``&amp;``, ``&lt;``, ``&gt;`` in post texts (the sandbox too, since this
    test): a post whose answer was lost is found by the reconciler, not re-sent."""
    text = "Tips & tricks for faster CI: cache <deps> first, then -> test"
    settings = api_settings(sandbox, sandbox_url, sqlite_url)
    ledger = open_ledger(settings)
    account = ledger.ensure_account(settings.x_handle)
    [row] = ledger.enqueue(account, [text], scheduled_at=datetime.now(UTC))
    sandbox.set_fault("lose_response", match="create_tweet", count=1)
    poster = make_poster(settings)
    try:
        first = post_due(settings, ledger=ledger, poster=poster, grace=timedelta(seconds=0))
        assert first.outcomes[0].status == "left_for_reconciler"
        client = poster.client  # type: ignore[attr-defined]
        assert "&amp;" in client.get_tweet(sandbox.posts_of()[0].id)["text"]  # as X answers
        time.sleep(0.1)
        report = reconcile(
            settings, ledger=ledger, poster=poster, grace=timedelta(seconds=0), guarded_retry=True
        )
    finally:
        poster.close()
    assert report.found == {row: sandbox.posts_of()[0].id} and report.requeued == []
    assert ledger.status_counts(account) == {"posted": 1}
    assert [p.text for p in sandbox.posts_of()] == [text]
