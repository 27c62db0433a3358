"""Where a post may go: the same rules as the planner and the claim (quiet hours, spacing, caps).

An operator moving a post, or approving one whose slot already passed, gets a time that the
poster will actually honour: outside the account's quiet hours, at least the minimum spacing
from every other queued or posted root, and within the hourly and daily caps. A post approved
late is never sent late by surprise: it moves to the next free slot and the page says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from xbot_assets.learning.scheduler import ScheduleConfig
from xbot_assets.store.durable.schema import tweets

STEP = timedelta(minutes=5)
SEARCH = timedelta(days=14)
TAKEN_STATUSES = ("queued", "posting", "posted", "unknown")


@dataclass(frozen=True)
class SlotRules:
    """The rules a slot must meet."""

    schedule: ScheduleConfig
    max_posts_per_hour: int
    max_posts_per_day: int

    @property
    def spacing(self) -> timedelta:
        return timedelta(minutes=self.schedule.min_spacing_minutes)


def taken_times(
    conn: Connection,
    environment: str,
    account_id: int,
    *,
    around: datetime,
    exclude_id: int | None = None,
) -> list[datetime]:
    """Times of the account's other roots (queued: their slot; on X: when they went out) from a
    day before ``around`` to the end of the search window."""
    when = func.coalesce(tweets.c.posted_at, tweets.c.posting_started_at, tweets.c.scheduled_at)
    query = select(tweets.c.status, tweets.c.scheduled_at, tweets.c.posted_at).where(
        tweets.c.environment == environment,
        tweets.c.account_id == account_id,
        tweets.c.thread_position == 0,
        tweets.c.status.in_(TAKEN_STATUSES),
        when >= around - timedelta(days=1),
        when <= around + SEARCH + timedelta(days=1),
    )
    if exclude_id is not None:
        query = query.where(tweets.c.id != exclude_id)
    out: list[datetime] = []
    for row in conn.execute(query):
        moment = row.scheduled_at if row.status == "queued" else (row.posted_at or row.scheduled_at)
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        out.append(moment)
    return sorted(out)


def slot_problem(
    when: datetime, rules: SlotRules, taken: Sequence[datetime], *, now: datetime
) -> str | None:
    """Why ``when`` cannot take a post (one line), or None when it can."""
    if when < now:
        return "that time has passed: pick a time from now on"
    tz = ZoneInfo(rules.schedule.timezone)
    local = when.astimezone(tz)
    if rules.schedule.is_quiet(local.hour):
        return (
            f"{local:%H:%M} is in the quiet hours ({rules.schedule.quiet_start_hour:02d}:00-"
            f"{rules.schedule.quiet_end_hour:02d}:00 {rules.schedule.timezone})"
        )
    spacing = rules.spacing
    for other in taken:
        if abs(other - when) < spacing:
            return (
                f"within {rules.schedule.min_spacing_minutes} minutes of another post at "
                f"{other.astimezone(tz):%Y-%m-%d %H:%M} (minimum spacing)"
            )
    hour = sum(1 for t in taken if when - timedelta(hours=1) < t <= when)
    if hour >= rules.max_posts_per_hour:
        return f"the hour before it already has {hour} posts (max_posts_per_hour)"
    day = sum(1 for t in taken if when - timedelta(days=1) < t <= when)
    if day >= rules.max_posts_per_day:
        return f"the 24 hours before it already have {day} posts (max_posts_per_day)"
    return None


def next_free_slot(rules: SlotRules, taken: Sequence[datetime], *, after: datetime) -> datetime:
    """The first time from ``after`` (rounded up to 5 minutes) that :func:`slot_problem`
    accepts. Raises ValueError when none exists within 14 days."""
    start = after.astimezone(UTC).replace(second=0, microsecond=0)
    minute = start.minute - start.minute % 5
    start = start.replace(minute=minute)
    if start < after:
        start += STEP
    moment = start
    while moment <= after + SEARCH:
        if slot_problem(moment, rules, taken, now=after) is None:
            return moment
        moment += STEP
    raise ValueError(
        "no free slot in the next 14 days within quiet hours, spacing and caps: reject or "
        "move other posts first"
    )
