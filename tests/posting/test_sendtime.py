"""Send-time rules: quiet hours, spacing and caps are re-checked when a post is due; a post that
would break them is moved to its next allowed time, never sent (``posting/sendtime.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.pool import QueuePool

from xbot_assets.config import load_settings
from xbot_assets.posting.factory import post_due
from xbot_assets.posting.ledger import PostingLedger, RateCaps
from xbot_assets.posting.sendtime import SendRules, next_allowed


def _settings(**overrides):
    values = {"max_posts_per_hour": 2, "max_posts_per_day": 12, "min_spacing_minutes": 45}
    return load_settings(env_file=None, x_handle="acct", **{**values, **overrides})


def _scheduled(ledger, post_id):
    [row] = [r for r in ledger.rows(ledger.ensure_account("acct")) if r["id"] == post_id]
    at = row["scheduled_at"]
    at = datetime.fromisoformat(at) if isinstance(at, str) else at
    return row["status"], at.replace(tzinfo=UTC) if at.tzinfo is None else at


def test_a_post_due_in_quiet_hours_waits_for_their_end(ledger, fake_x, clock):
    account = ledger.ensure_account("acct")
    clock.now = datetime(2026, 3, 2, 23, 20, tzinfo=UTC)  # quiet 23:00-07:00 (UTC account)
    [post] = ledger.enqueue(account, ["How to write tests in Python"], scheduled_at=clock())
    run = post_due(_settings(), ledger=ledger, poster=fake_x, clock=clock)
    assert fake_x.post_calls == 0 and not run.posted
    assert _scheduled(ledger, post) == ("queued", datetime(2026, 3, 3, 7, 0, tzinfo=UTC))
    clock.now = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    run = post_due(_settings(), ledger=ledger, poster=fake_x, clock=clock)
    assert [o.tweet_id for o in run.posted] == [post] and fake_x.post_calls == 1


def test_spacing_and_the_hourly_cap_move_a_due_post_never_send_it_early(ledger, fake_x, clock):
    account = ledger.ensure_account("acct")
    [first] = ledger.enqueue(account, ["How to profile Python code"], scheduled_at=clock())
    post_due(_settings(), ledger=ledger, poster=fake_x, clock=clock)  # posted at 12:00
    clock.advance(minutes=10)
    [second] = ledger.enqueue(account, ["Why pandas beats loops"], scheduled_at=clock())
    run = post_due(_settings(), ledger=ledger, poster=fake_x, clock=clock)
    assert not run.posted and fake_x.post_calls == 1
    assert _scheduled(ledger, second) == ("queued", datetime(2026, 3, 2, 12, 45, tzinfo=UTC))
    clock.now = datetime(2026, 3, 2, 12, 45, tzinfo=UTC)
    run = post_due(_settings(), ledger=ledger, poster=fake_x, clock=clock)
    assert [o.tweet_id for o in run.posted] == [second]
    # Two posts in the last hour with a cap of 2 an hour: a third waits for the first to age out.
    clock.advance(minutes=5)
    settings = _settings(min_spacing_minutes=0)
    [third] = ledger.enqueue(account, ["A list of SQL tricks"], scheduled_at=clock())
    run = post_due(settings, ledger=ledger, poster=fake_x, clock=clock)
    assert not run.posted and fake_x.post_calls == 2
    assert _scheduled(ledger, third) == ("queued", datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    audit = [r for r in ledger_audit(ledger) if r == "post.rescheduled"]
    assert len(audit) == 2
    assert first != second


def ledger_audit(ledger):
    from sqlalchemy import select

    from xbot_assets.store.durable.schema import audit_log

    with ledger.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(audit_log.c.event_type))]


def test_next_allowed_applies_every_rule_until_none_moves_it():
    rules = SendRules(
        caps=RateCaps(max_posts_per_hour=2, max_posts_per_day=3, min_spacing=timedelta(minutes=30)),
        timezone="Europe/Berlin",  # quiet 23:00-07:00 local = 22:00-06:00 UTC in March
    )
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert next_allowed(rules, [], at) == at
    assert next_allowed(rules, [at - timedelta(minutes=10)], at) == at + timedelta(minutes=20)
    day = [at - timedelta(hours=h) for h in (1.5, 3, 5)]  # the daily cap of 3 is full
    assert next_allowed(rules, day, at) == day[-1] + timedelta(days=1)
    # Spacing pushes into the quiet hours, which push to their end (07:00 Berlin).
    late = datetime(2026, 3, 2, 21, 50, tzinfo=UTC)
    assert next_allowed(rules, [late - timedelta(minutes=5)], late) == datetime(
        2026, 3, 3, 6, 0, tzinfo=UTC
    )


def test_a_post_due_call_closes_the_store_connections_it_opened(
    sqlite_url, fake_x, clock, monkeypatch
):
    """A batch run calls post_due once per post without a ledger: each call opened the store
    (an engine and its pool) and left its connections open, so a 100-account batch run piled
    up idle connections until Postgres refused them ("too many clients"; the run failed)."""
    from xbot_assets.posting import factory

    opened: list[PostingLedger] = []

    def spy(settings, **kwargs):
        ledger = real(settings, **kwargs)
        opened.append(ledger)
        return ledger

    real = factory.open_ledger
    monkeypatch.setattr(factory, "open_ledger", spy)
    settings = _settings(database_url=sqlite_url)
    for _ in range(3):
        post_due(settings, poster=fake_x, clock=clock)
    assert len(opened) == 3
    for ledger in opened:
        assert isinstance(ledger.engine.pool, QueuePool)
        assert ledger.engine.pool.checkedin() == 0
