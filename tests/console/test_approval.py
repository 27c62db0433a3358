"""Approval mode: under APPROVAL=required the durable claims (the posting ledger's and the
store's) take only approved posts; an approval after the slot moves the post to the next free
slot; slots respect quiet hours, spacing and caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.console.conftest import T0, ConsoleEnv
from xbot_assets.console.actions import ActionRefused, PostActions
from xbot_assets.console.slots import SlotRules, next_free_slot, slot_problem
from xbot_assets.learning.scheduler import ScheduleConfig
from xbot_assets.posting.ledger import ClaimedPost, PostingLedger, RateCaps


def test_settings_default_off_and_required_reaches_the_ledger_caps(console_env) -> None:
    from tests.console.conftest import local_settings

    assert console_env.settings.approval == "off"
    assert RateCaps.from_settings(console_env.settings).require_approval is False
    strict = local_settings(console_env.settings.xbot_home, APPROVAL="required")
    assert RateCaps.from_settings(strict).require_approval is True


def test_ledger_claims_only_approved_posts_when_required(console_env: ConsoleEnv) -> None:
    store, account = console_env.store, console_env.account
    ledger = PostingLedger(store.engine, "local")
    caps = RateCaps(max_posts_per_hour=100, max_posts_per_day=100, min_spacing=timedelta(0))
    strict = RateCaps(
        max_posts_per_hour=100, max_posts_per_day=100, min_spacing=timedelta(0),
        require_approval=True,
    )  # fmt: skip
    first = store.enqueue_post(account.id, "first post text about sql", scheduled_at=T0)
    thread = store.enqueue_thread(
        account.id, ["thread root about python", "thread part two"], scheduled_at=T0
    )
    now = T0 + timedelta(minutes=1)
    assert ledger.next_due_id(account.id, now=now, approved_only=True) is None
    assert ledger.claim_next_due(account.id, strict, now=now) is None  # nothing approved
    assert store.get_post(first.id).status == "queued"
    actions = PostActions(store, console_env.settings, lambda: T0 - timedelta(minutes=5))
    actions.approve(account.id, thread[0].id, actor="console:alice#1")
    claim = ledger.claim_next_due(account.id, strict, now=now)
    # the approved one, not first
    assert isinstance(claim, ClaimedPost) and claim.tweet_id == thread[0].id
    ledger.mark_posted(claim.tweet_id, claim.attempt_id, "9001", now=now)
    part = ledger.claim_next_due(account.id, strict, now=now)  # its part follows its root
    assert isinstance(part, ClaimedPost) and part.tweet_id == thread[1].id
    ledger.mark_posted(part.tweet_id, part.attempt_id, "9002", now=now)
    assert ledger.claim_next_due(account.id, strict, now=now) is None
    # With approval off the same ledger takes the unapproved post.
    other = ledger.claim_next_due(account.id, caps, now=now)
    assert isinstance(other, ClaimedPost) and other.tweet_id == first.id


def test_store_claims_check_approval_when_required(console_env: ConsoleEnv) -> None:
    store, account = console_env.store, console_env.account
    post = store.enqueue_post(account.id, "a post to approve first", scheduled_at=T0)
    assert store.claim_next_due(account.id, now=T0, require_approval=True) is None
    assert store.claim_post(post.id, now=T0, require_approval=True) is None
    PostActions(store, console_env.settings, lambda: T0 - timedelta(hours=1)).approve(
        account.id, post.id, actor="console:alice#1"
    )
    claim = store.claim_post(post.id, now=T0, require_approval=True)
    assert claim is not None and claim.post.approval == "approved"


def test_late_approval_moves_the_post_to_the_next_free_slot(console_env: ConsoleEnv) -> None:
    store, account = console_env.store, console_env.account
    late = store.enqueue_post(account.id, "approved after its slot", scheduled_at=T0)
    store.enqueue_post(account.id, "next queued post", scheduled_at=T0 + timedelta(hours=2))
    approve_at = T0 + timedelta(hours=1, minutes=50)  # 13:50 UTC, slot 12:00 passed
    result = PostActions(store, console_env.settings, lambda: approve_at).approve(
        account.id, late.id, actor="console:alice#1"
    )
    moved = store.get_post(late.id)
    assert moved.approval == "approved" and moved.approved_by == "console:alice#1"
    # 45 minutes of spacing from the 14:00 post: 14:45 is the first free slot.
    assert moved.scheduled_at == T0 + timedelta(hours=2, minutes=45)
    assert "moved to the next free slot" in result.message
    [event] = store.list_audit(event_type="console.post_approved")
    assert event.data["moved_from"] == T0.isoformat()
    assert event.data["moved_to"] == moved.scheduled_at.isoformat()


def test_slot_rules_quiet_hours_spacing_and_caps() -> None:
    rules = SlotRules(ScheduleConfig(timezone="Europe/Berlin"), 2, 3)
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    night = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # 00:30 in Berlin: quiet
    assert "quiet hours" in (slot_problem(night, rules, [], now=now) or "")
    taken = [now + timedelta(hours=1)]
    assert "minimum spacing" in (
        slot_problem(now + timedelta(hours=1, minutes=30), rules, taken, now=now) or ""
    )
    assert slot_problem(now + timedelta(hours=2), rules, taken, now=now) is None
    hourly = [now + timedelta(minutes=m) for m in (0, 50)]
    assert "max_posts_per_hour" in (
        slot_problem(
            now + timedelta(minutes=55),
            SlotRules(ScheduleConfig(min_spacing_minutes=0), 2, 9),
            hourly,
            now=now,
        )
        or ""
    )
    assert "has passed" in (slot_problem(now - timedelta(minutes=1), rules, [], now=now) or "")
    free = next_free_slot(rules, taken, after=now + timedelta(minutes=31))
    assert free == now + timedelta(hours=1, minutes=45)


def test_actions_refuse_posts_no_longer_queued(console_env: ConsoleEnv) -> None:
    store, account = console_env.store, console_env.account
    post = store.enqueue_post(account.id, "claimed before the operator acted", scheduled_at=T0)
    store.claim_post(post.id, now=T0)
    actions = PostActions(store, console_env.settings, lambda: T0)
    with pytest.raises(ActionRefused, match="no longer queued"):
        actions.approve(account.id, post.id, actor="console:alice#1")
    with pytest.raises(ActionRefused, match="no longer queued"):
        actions.reject(account.id, post.id, reason="late", actor="console:alice#1")


def test_posting_sensor_question_skips_unapproved_posts_when_required(
    console_env: ConsoleEnv,
) -> None:
    from xbot_assets.engine.sensing import due_posts

    store, account = console_env.store, console_env.account
    waiting = store.enqueue_post(account.id, "due but not approved", scheduled_at=T0)
    ready = store.enqueue_post(account.id, "due and approved", scheduled_at=T0)
    PostActions(store, console_env.settings, lambda: T0 - timedelta(minutes=1)).approve(
        account.id, ready.id, actor="console:alice#1"
    )
    assert due_posts(store, account.id, T0) == [waiting.id, ready.id]
    assert due_posts(store, account.id, T0, approved_only=True) == [ready.id]


def test_controls_caps_match_xbot_status(console_env: ConsoleEnv) -> None:
    from xbot_assets.console.controls import caps_left
    from xbot_assets.health.checks import HealthContext
    from xbot_assets.ops.dbread import read_connection
    from xbot_assets.ops.status import caps_left as status_caps_left

    store, account = console_env.store, console_env.account
    for minutes in (20, 70, 300, 2000):
        at = T0 - timedelta(minutes=minutes)
        post = store.enqueue_post(account.id, f"posted {minutes} minutes ago", scheduled_at=at)
        store.claim_post(post.id, now=at)
        store.mark_posted(post.id, x_id=str(minutes), now=at)
    flying = store.enqueue_post(account.id, "in flight", scheduled_at=T0)
    store.claim_post(flying.id, now=T0 - timedelta(minutes=5))
    ctx = HealthContext(console_env.settings, engine=store.engine, clock=lambda: T0)
    with read_connection(store.engine) as conn:
        mine = caps_left(console_env.settings, conn, "local", account.id, T0)
        theirs = status_caps_left(ctx, conn, account.id)
    assert mine == theirs
    assert mine["posts_last_hour"] == 2 and mine["posts_last_24h"] == 4


def test_recent_pages_by_keyset_cover_every_post_once(console_env: ConsoleEnv) -> None:
    from xbot_assets.console.views import parse_cursor, recent_page

    store, account = console_env.store, console_env.account
    for i in range(120):
        at = T0 - timedelta(minutes=10 * (i // 3))  # three posts share each time (ties)
        post = store.enqueue_post(account.id, f"posted number {i}", scheduled_at=at)
        store.claim_post(post.id, now=at)
        store.mark_posted(post.id, x_id=str(1000 + i), now=at)
    seen: list[int] = []
    cursor = None
    for page in range(1, 10):
        found = recent_page(
            store.engine, "local", account, page, web_base_url="https://x.com",
            before=parse_cursor(cursor),
        )  # fmt: skip
        seen.extend(r["id"] for r in found.rows)
        cursor = found.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 120 and page == 3
