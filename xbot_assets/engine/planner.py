"""Plan the account's posting slots for the coming hours with the learned hour posteriors.

The hours are a Thompson-sampling arm set (:class:`~xbot_assets.learning.scheduler.SlotScheduler`)
fed with the account's own outcomes (the latest snapshot of every posted root post), so good
hours are used more while uncertain ones are still tried. Quiet hours, spacing and jitter come
from the ``schedule`` key of bot_config (``posts_per_day``, ``quiet_start_hour``, ...).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from xbot_assets.learning.scheduler import ScheduleConfig, SlotScheduler
from xbot_assets.vocabulary import HORIZONS as HORIZON_ORDER

SCHEDULE_CONFIG_KEY = "schedule"
PLAN_HORIZON = timedelta(hours=24)


def stable_seed(*parts: object) -> int:
    """A reproducible 32-bit seed from any values (same inputs, same plan and same draws)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def schedule_config(store: Any, settings: Any, timezone: str) -> ScheduleConfig:
    """Scheduling rules from bot_config, bounded by the settings' rate caps."""
    values = dict(store.get_config(SCHEDULE_CONFIG_KEY, {}) or {})
    values["timezone"] = timezone
    values.setdefault("min_spacing_minutes", settings.min_spacing_minutes)
    config = ScheduleConfig.from_mapping(values)
    return replace(config, posts_per_day=min(config.posts_per_day, settings.max_posts_per_day))


def posted_outcomes(store: Any, account_id: int, timezone: str, limit: int = 1000) -> pd.DataFrame:
    """The account's posted root posts with their latest metric snapshot and local hour."""
    tz = ZoneInfo(timezone)
    rows: list[dict[str, Any]] = []
    for post in store.list_posts(account_id, status="posted", limit=limit):
        if post.thread_position != 0 or post.posted_at is None:
            continue
        snaps = store.get_metrics(post.id)
        if not snaps:
            continue
        latest = max(snaps, key=lambda s: HORIZON_ORDER.index(s.horizon))
        row = {k: getattr(latest, k) for k in latest.__dataclass_fields__}
        row.update(
            {
                "post_id": post.id,
                "arm": post.arm,
                "posted_at": post.posted_at,
                "hour_local": post.posted_at.astimezone(tz).hour,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def hour_scheduler(
    store: Any, settings: Any, account_id: int, timezone: str, *, seed: int
) -> SlotScheduler:
    """A slot scheduler that has learned from every posted root post of the account."""
    scheduler = SlotScheduler(schedule_config(store, settings, timezone), seed=seed)
    outcomes = posted_outcomes(store, account_id, timezone)
    if not outcomes.empty:
        scheduler.learn_from_posts(outcomes)
    return scheduler


def open_slots(
    store: Any,
    settings: Any,
    account_id: int,
    *,
    now: datetime,
    timezone: str,
    horizon: timedelta = PLAN_HORIZON,
) -> list[datetime]:
    """Times (UTC) in ``[now, now + horizon)`` to fill, beyond the posts already queued or made.

    Each local day gets at most ``posts_per_day`` posts counting those already queued or posted
    on it; new times keep the minimum spacing from every existing one.
    """
    tz = ZoneInfo(timezone)
    recent = store.list_posts(account_id, since=now - timedelta(days=2), limit=500)
    existing: list[datetime] = []
    per_day: dict[date, int] = {}
    for post in recent:
        if post.thread_position != 0 or post.status in ("failed",):
            continue
        when = post.posted_at or post.scheduled_at
        existing.append(when)
        day = when.astimezone(tz).date()
        per_day[day] = per_day.get(day, 0) + 1
    handle = store.get_account(account_id).handle
    slots: list[datetime] = []
    first = now.astimezone(tz).date()
    last = (now + horizon).astimezone(tz).date()
    day = first
    while day <= last:
        scheduler = hour_scheduler(
            store, settings, account_id, timezone, seed=stable_seed(handle, day.isoformat())
        )
        needed = scheduler.config.posts_per_day - per_day.get(day, 0)
        if needed > 0:
            scheduler.config = replace(scheduler.config, posts_per_day=needed)
            plan = scheduler.plan_day(day, after=now, taken=existing + slots)
            slots.extend(t for t in plan if t < now + horizon)
        day += timedelta(days=1)
    return sorted(slots)
