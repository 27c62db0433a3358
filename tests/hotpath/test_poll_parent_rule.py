"""The Redis-down fallback polls only claimable posts (issue 17 item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.hotpath.conftest import FakeClock
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.hot.dual import DualStoreManager
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.hot.ratelimit import RateCaps

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPEN_CAPS = RateCaps(
    posts_per_hour=100, posts_per_day=1000, min_spacing=timedelta(0), replies_per_hour=100
)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_waiting_thread_parts_never_starve_the_fallback_poll(backend, tmp_path, request):
    """Guards issue 17 item 3: with Redis down, ``poll_due_posts`` returned thread parts whose
    parent was not posted first (deepest part first), so 10 of them filled every poll of 10 and
    none of 11 due posts (a thread's root and its 10 replies) was ever claimed: 0 claims in 50
    polls. Polls must apply the ledger's "parent posted" rule: then each poll yields the next
    claimable part and the whole thread goes out in order."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'xbot.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    try:
        store = DurableStore(engine, "local")
        account = store.ensure_account("poll_test", now=T0).id
        parts = [f"part {i} of a long thread about pytest fixtures" for i in range(11)]
        thread = store.enqueue_thread(account, parts, scheduled_at=T0, now=T0)
        assert len(thread) == 11
        clock = FakeClock(T0 + timedelta(minutes=1))
        manager = DualStoreManager(
            engine, "local", None, KeySpace("test:poll:"), caps=OPEN_CAPS, clock=clock
        )
        claimed: list[int] = []
        for _ in range(50):
            for ticket in manager.next_posts(count=10):
                result = manager.claim_post(ticket)
                if result.status == "claimed":
                    assert result.attempt_id is not None
                    claimed.append(ticket.tweet_id)
                    x_id = f"x{ticket.tweet_id}"
                    assert manager.record_posted(ticket.tweet_id, result.attempt_id, x_id)
            clock.advance(seconds=30)
        assert claimed == [p.id for p in thread], "the thread must go out whole, root first"
        assert {p.status for p in store.list_posts(account)} == {"posted"}
    finally:
        engine.dispose()
