"""The store's one durable claim (``store/durable/claim.py``), as every path meets it.

The posting ledger (one part at a time), the hot path's tickets and ``DurableStore`` (a whole
thread) all claim through :func:`claim_post`: the same checks, the same attempt row, one claim of
a post whichever path asks first.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from xbot_assets.posting.ledger import PostingLedger, RateCaps
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.claim import Blocked, ClaimOutcome, Gate, claim_post
from xbot_assets.store.durable.schema import post_attempts, tweets
from xbot_assets.store.hot import ratelimit
from xbot_assets.store.hot.dual import DualStoreManager
from xbot_assets.store.hot.keys import KeySpace

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPEN = RateCaps(max_posts_per_hour=100, max_posts_per_day=100, min_spacing=timedelta(0))


def _attempts(store: DurableStore) -> list[tuple[int, str | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(post_attempts.c.tweet_id, post_attempts.c.send_state).order_by(
                post_attempts.c.id
            )
        )
        return [(int(r.tweet_id), r.send_state) for r in rows]


def test_one_post_is_claimed_once_whichever_path_asks(store: DurableStore) -> None:
    acc = store.ensure_account("oneclaim", now=T0).id
    post = store.enqueue_post(acc, "claimed by exactly one path", scheduled_at=T0, now=T0)
    ledger = PostingLedger(store.engine, store.environment)
    dual = DualStoreManager(
        store.engine,
        store.environment,
        None,
        KeySpace("oneclaim:"),
        caps=ratelimit.RateCaps(min_spacing=timedelta(0)),
        clock=lambda: T0,
    )
    claim = ledger.claim_next_due(acc, OPEN, now=T0, worker="ledger")
    assert claim is not None and not isinstance(claim, Blocked)
    assert dual.claim_post(post.id).status == "gone"
    assert store.claim_post(post.id, now=T0) is None
    # the ledger's claim is "unsent" until its send mark; only it uses the mark
    assert _attempts(store) == [(post.id, "unsent")]


def test_other_paths_record_attempts_that_may_have_been_sent(store: DurableStore) -> None:
    """Only a caller that commits the send mark may record ``unsent`` (the reconciler re-queues
    an ``unsent`` attempt without a timeline check, so a wrong mark would post twice)."""
    acc = store.ensure_account("oneclaim2", now=T0).id
    a = store.enqueue_post(acc, "claimed by the store", scheduled_at=T0, now=T0)
    b = store.enqueue_post(acc, "claimed by the hot path", scheduled_at=T0, now=T0)
    assert store.claim_post(a.id, now=T0) is not None
    dual = DualStoreManager(
        store.engine,
        store.environment,
        None,
        KeySpace("oneclaim2:"),
        caps=ratelimit.RateCaps(min_spacing=timedelta(0)),
        clock=lambda: T0,
    )
    assert dual.claim_post(b.id).status == "claimed"
    assert _attempts(store) == [(a.id, None), (b.id, None)]


def test_the_claim_checks_order_approval_account_and_gate(store: DurableStore) -> None:
    acc = store.ensure_account("oneclaim3", now=T0).id
    other = store.ensure_account("oneclaim3b", now=T0).id
    thread = store.enqueue_thread(acc, ["root 1/2", "reply 2/2"], scheduled_at=T0, now=T0)
    env = store.environment

    def claim(
        post_id: int,
        *,
        account_id: int | None = None,
        whole_thread: bool = False,
        require_approval: bool = False,
        gate: Gate | None = None,
    ) -> ClaimOutcome:
        with store.engine.begin() as conn:
            return claim_post(
                conn, environment=env, post_id=post_id, now=T0, worker="t",
                account_id=account_id, whole_thread=whole_thread,
                require_approval=require_approval, gate=gate,
            )  # fmt: skip

    blocked = claim(thread[1].id)  # its parent is not on X yet
    assert blocked.status == "blocked" and "parent" in blocked.reason
    assert claim(thread[0].id, account_id=other).status == "gone"
    assert claim(thread[0].id, require_approval=True).status == "gone"
    refused = claim(thread[0].id, gate=lambda conn, kind: Blocked(f"no {kind} now"))
    assert refused.status == "blocked" and refused.reason == "no post now"
    assert _attempts(store) == []  # nothing above wrote a row
    whole = claim(thread[0].id, whole_thread=True)
    assert whole.status == "claimed"
    assert whole.part_ids == (thread[0].id, thread[1].id)
    with store.engine.connect() as conn:
        states: set[str] = set(
            conn.execute(select(tweets.c.status).where(tweets.c.id.in_(whole.part_ids))).scalars()
        )
        assert states == {"posting"}
    assert _attempts(store) == [(thread[0].id, None)]  # one attempt, on the root


def test_reading_the_brake_does_not_import_the_health_checks() -> None:
    """``ops/brake.py`` and ``health/checks.py`` imported each other; the brake reader now stands
    alone and the checks import it one way."""
    code = (
        "import sys, xbot_assets.ops.brake as b; "
        "assert 'xbot_assets.health.checks' not in sys.modules, 'cycle'; "
        "import xbot_assets.health.checks as c; assert c.BrakeState is b.BrakeState"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
