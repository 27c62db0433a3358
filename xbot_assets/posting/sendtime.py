"""Send-time rules: a due post that would break quiet hours, spacing or a cap is moved, never sent.

Slots are planned with the rules of their day (``engine/planner.py``), but by the time a slot
is due the world may have changed: a retry or a manual post took the spacing, the caps filled,
or the post waited (a stopped daemon, a brake) into the quiet hours. So right before the
posting protocol claims anything (:func:`xbot_assets.posting.factory.post_due`),
:func:`reschedule_blocked` looks at every due queued root post of the account and moves each
one that may not go out now to the next time the rules allow (audited as ``post.rescheduled``).
The ledger's own gate (caps, spacing, brake) still guards the claim itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from xbot_assets.learning.scheduler import ScheduleConfig
from xbot_assets.posting.ledger import ON_X_STATUSES, PostingLedger, RateCaps
from xbot_assets.store.durable.schema import accounts, tweets

SCHEDULE_CONFIG_KEY = "schedule"
"""bot_config key of the scheduling rules (the same one the planner reads)."""


@dataclass(frozen=True)
class SendRules:
    """What a root post must respect at the moment it is sent."""

    caps: RateCaps
    timezone: str = "UTC"
    quiet_start_hour: int = 23
    quiet_end_hour: int = 7

    def is_quiet(self, when: datetime) -> bool:
        """Whether ``when`` falls in the account's local quiet hours."""
        config = ScheduleConfig(
            timezone=self.timezone,
            quiet_start_hour=self.quiet_start_hour,
            quiet_end_hour=self.quiet_end_hour,
        )
        return config.is_quiet(when.astimezone(ZoneInfo(self.timezone)).hour)

    def quiet_ends(self, when: datetime) -> datetime:
        """The first moment after ``when`` that is outside the quiet hours (UTC)."""
        tz = ZoneInfo(self.timezone)
        local = when.astimezone(tz)
        end = datetime.combine(local.date(), time(self.quiet_end_hour), tzinfo=tz)
        while end <= local or self.is_quiet(end):
            end += timedelta(days=1) if end <= local else timedelta(hours=1)
        return end.astimezone(UTC)


def send_rules(ledger: PostingLedger, account_id: int, caps: RateCaps) -> SendRules:
    """The account's rules: caps from the settings, quiet hours from bot_config's schedule."""
    values = ledger.get_config(SCHEDULE_CONFIG_KEY) or {}
    values = values if isinstance(values, dict) else {}
    with ledger.engine.connect() as conn:
        tz = conn.execute(select(accounts.c.timezone).where(accounts.c.id == account_id)).scalar()
    config = ScheduleConfig.from_mapping({**values, "timezone": tz or "UTC"})
    return SendRules(
        caps=caps,
        timezone=config.timezone,
        quiet_start_hour=config.quiet_start_hour,
        quiet_end_hour=config.quiet_end_hour,
    )


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sent_roots(ledger: PostingLedger, account_id: int, since: datetime) -> list[datetime]:
    """When each root post of the account went (or may have gone) to X since ``since``."""
    when = func.coalesce(tweets.c.posted_at, tweets.c.posting_started_at)
    query = select(when).where(
        tweets.c.environment == ledger.environment,
        tweets.c.account_id == account_id,
        tweets.c.status.in_(ON_X_STATUSES),
        tweets.c.thread_position == 0,
        when.is_not(None),
    )
    with ledger.engine.connect() as conn:
        rows = [_aware(r[0]) for r in conn.execute(query)]
    return sorted(t for t in rows if t >= since)


def next_allowed(rules: SendRules, sent: list[datetime], when: datetime) -> datetime:
    """The earliest time at or after ``when`` a new root post may go out.

    Args:
        rules: quiet hours and caps.
        sent: when earlier root posts went out (any order).
        when: the wanted time.
    """
    caps = rules.caps
    t = when
    for _ in range(100):  # each rule only moves t forward; a handful of rounds settle it
        moved = t
        if rules.is_quiet(moved):
            moved = rules.quiet_ends(moved)
        before = [s for s in sent if s <= moved]
        if before and caps.min_spacing > timedelta(0):
            moved = max(moved, max(before) + caps.min_spacing)
        for window, cap in ((timedelta(hours=1), caps.max_posts_per_hour),
                            (timedelta(days=1), caps.max_posts_per_day)):  # fmt: skip
            inside = sorted(s for s in sent if moved - window < s <= moved)
            if cap <= 0:
                raise ValueError("a posting cap of 0 allows no post: raise it in the settings")
            if len(inside) >= cap:
                moved = max(moved, inside[len(inside) - cap] + window)
        if moved == t:
            return t
        t = moved
    return t


def _ceil_minute(when: datetime) -> datetime:
    seconds = when.second + when.microsecond / 1e6
    if seconds == 0:
        return when
    return when.replace(second=0, microsecond=0) + timedelta(minutes=math.ceil(seconds / 60))


def reschedule_blocked(
    ledger: PostingLedger, account_id: int, rules: SendRules, *, now: datetime
) -> list[tuple[int, datetime]]:
    """Move every due queued root post that may not be sent now to its next allowed time.

    A due post that may go now keeps its place; one that may not is planned after the posts
    before it (spacing and caps count them), so two moved posts never land on the same minute.
    With no spacing set, posts due together still go together, as the ledger's gate allows.

    Returns:
        (post id, new scheduled time) for each moved post.
    """
    query = (
        select(tweets.c.id, tweets.c.scheduled_at)
        .where(
            tweets.c.environment == ledger.environment,
            tweets.c.account_id == account_id,
            tweets.c.status == "queued",
            tweets.c.thread_position == 0,
            tweets.c.scheduled_at <= now,
        )
        .order_by(tweets.c.scheduled_at, tweets.c.id)
    )
    if rules.caps.require_approval:
        # Under APPROVAL=required an unapproved post is not going out: it neither moves nor
        # takes a place that would push an approved one back.
        query = query.where(tweets.c.approval == "approved")
    with ledger.engine.connect() as conn:
        due = [(int(r.id), _aware(r.scheduled_at)) for r in conn.execute(query)]
    if not due:
        return []
    sent = _sent_roots(ledger, account_id, now - timedelta(days=2))
    moved: list[tuple[int, datetime]] = []
    planned = list(sent)
    for post_id, _scheduled in due:
        allowed = next_allowed(rules, planned, now)
        if allowed <= now:
            planned.append(now)  # it goes now; the spacing and caps of the next count it
            continue
        new_time = _ceil_minute(max(allowed, now + timedelta(seconds=1)))
        with ledger.engine.begin() as conn:
            conn.execute(
                update(tweets)
                .where(tweets.c.id == post_id, tweets.c.status == "queued")
                .values(scheduled_at=new_time, updated_at=now)
            )
        ledger.audit(
            "post.rescheduled",
            {"tweet_id": post_id, "scheduled_at": new_time.isoformat(), "at": now.isoformat()},
            now=now,
        )
        planned.append(new_time)
        moved.append((post_id, new_time))
    return moved
