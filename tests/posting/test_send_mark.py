"""The attempt's "sent" mark: a post that provably never left is retried as often as needed."""

from __future__ import annotations

import threading

import pytest

from tests.posting.test_protocol import OPEN_CAPS, ledger, setup  # noqa: F401 (fixture)
from xbot_assets.posting.reconciler import Reconciler


@pytest.mark.parametrize("guarded_retry", [False, True])
def test_a_post_killed_before_sending_again_and_again_still_goes_out_once(
    ledger,  # noqa: F811
    fake_x,
    clock,
    guarded_retry,
):
    """Guards issue 17 item 1: a poster killed after its claim (nothing sent), then again after
    the reconciler's one guarded retry, left the post ``unknown`` for good although X never saw
    it (without guarded retry: ``unknown`` after the first kill). The claim now records the
    attempt as ``unsent`` until the "sent" mark just before the request, so each such kill is
    re-queued without using the retry, however many times it happens, and the post goes out
    exactly once."""
    account, service = setup(ledger, fake_x, clock)
    [row] = ledger.enqueue(account, ["killed three times before a byte left"], scheduled_at=clock())
    reconciler = Reconciler(
        ledger, fake_x, account_id=account, guarded_retry=guarded_retry, clock=clock
    )
    for _kill in range(3):
        claim = ledger.claim_next_due(account, OPEN_CAPS, now=clock())  # the poster dies here
        assert claim is not None and claim.tweet_id == row
        clock.advance(minutes=11)
        report = reconciler.run()
        assert report.unknown == [] and ledger.status_counts(account) == {"queued": 1}
    assert fake_x.post_calls == 0
    outcome = service.post_next()
    assert outcome.status == "posted" and fake_x.post_calls == 1
    assert ledger.status_counts(account) == {"posted": 1}
    assert [p.text for p in fake_x.posts] == ["killed three times before a byte left"]


def test_only_a_possibly_sent_attempt_is_looked_up_on_the_timeline(ledger, fake_x, clock):  # noqa: F811
    """A never-sent attempt is settled without reading the timeline; a marked one waits for the
    grace period from its mark, then is looked up (found -> posted)."""
    account, _service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["unsent one"], scheduled_at=clock())
    ledger.enqueue(account, ["sent one"], scheduled_at=clock())
    ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    sent = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    reads = []
    original = fake_x.recent_own_posts

    def counting(*, limit=100):
        reads.append(limit)
        return original(limit=limit)

    fake_x.recent_own_posts = counting
    clock.advance(minutes=9)
    assert ledger.mark_sending(sent.tweet_id, sent.attempt_id, now=clock())
    fake_x.post(sent.text)  # it did reach X
    clock.advance(minutes=2)  # 11 min after the claims, 2 after the mark
    reconciler = Reconciler(ledger, fake_x, account_id=account, clock=clock)
    report = reconciler.run()
    assert len(report.unsent) == 1 and report.found == {} and reads == []
    clock.advance(minutes=9)
    report = reconciler.run()
    assert report.found == {sent.tweet_id: fake_x.posts[0].x_id} and len(reads) == 1
    assert ledger.status_counts(account) == {"queued": 1, "posted": 1}


def test_a_poster_whose_claim_was_requeued_sends_nothing(ledger, fake_x, clock):  # noqa: F811
    """A poster stalled between claim and request (past the grace period) finds its claim gone
    at the mark and sends nothing, so the re-queued post cannot go out twice."""
    account, service = setup(ledger, fake_x, clock)
    ledger.enqueue(account, ["stalled"], scheduled_at=clock())
    claim = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
    clock.advance(minutes=11)
    assert Reconciler(ledger, fake_x, account_id=account, clock=clock).run().unsent == [
        claim.tweet_id
    ]
    assert not ledger.mark_sending(claim.tweet_id, claim.attempt_id, now=clock())
    assert service.post_next().status == "posted" and fake_x.post_calls == 1


def test_mark_and_unsent_requeue_never_both_win(ledger, clock):  # noqa: F811
    """Race a poster's mark against the reconciler's re-queue of the same attempt, 25 times:
    exactly one wins each time (row lock on Postgres, BEGIN IMMEDIATE on SQLite)."""
    account = ledger.ensure_account("race")
    for i in range(25):
        ledger.enqueue(account, [f"race {i}"], scheduled_at=clock())
        claim = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
        results: dict[str, bool] = {}
        barrier = threading.Barrier(2)

        def mark(c=claim) -> None:
            barrier.wait()
            results["mark"] = ledger.mark_sending(c.tweet_id, c.attempt_id, now=clock())

        def requeue(c=claim) -> None:
            barrier.wait()
            results["requeue"] = ledger.requeue_unsent(
                c.tweet_id, c.attempt_id, now=clock(), error="race"
            )

        threads = [threading.Thread(target=mark), threading.Thread(target=requeue)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results["mark"] != results["requeue"], results
        status = {r["id"]: r["status"] for r in ledger.rows(account)}[claim.tweet_id]
        assert status == ("posting" if results["mark"] else "queued")
        if status == "posting":
            ledger.mark_posted(claim.tweet_id, claim.attempt_id, f"x{i}", now=clock())
        else:
            again = ledger.claim_next_due(account, OPEN_CAPS, now=clock())
            ledger.mark_posted(again.tweet_id, again.attempt_id, f"x{i}", now=clock())
        clock.advance(minutes=1)
