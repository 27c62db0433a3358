"""The posting scheduler: which hours of the day to post at, learned with Thompson sampling.

Each local hour is an arm of a :class:`ThompsonSampler` (same binomial evidence as the content
arms), so good hours are used more and uncertain hours are still tried. Quiet hours are never
used, posts keep a minimum spacing, and each planned time gets a random jitter so the account
does not post at the same minute every day (which looks automated). All values come from
bot_config through :class:`ScheduleConfig`; nothing here reads a clock or a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from xbot_assets.learning.bandits import (
    DEFAULT_MAX_TRIALS,
    ThompsonSampler,
    binomial_evidence,
)
from xbot_assets.learning.rewards import weighted_engagements

HOURS = tuple(range(24))


@dataclass(frozen=True)
class ScheduleConfig:
    """Scheduling rules (from bot_config).

    Attributes:
        timezone: the account's IANA time zone.
        quiet_start_hour: local hour from which nothing is posted (inclusive).
        quiet_end_hour: local hour at which posting may resume (exclusive end of quiet time).
        min_spacing_minutes: least time between two posts.
        jitter_minutes: each planned time moves by up to this much either way.
        posts_per_day: posts to plan per local day.
    """

    timezone: str = "UTC"
    quiet_start_hour: int = 23
    quiet_end_hour: int = 7
    min_spacing_minutes: int = 45
    jitter_minutes: int = 10
    posts_per_day: int = 12

    def __post_init__(self) -> None:
        for name in ("quiet_start_hour", "quiet_end_hour"):
            value = getattr(self, name)
            if not 0 <= value <= 23:
                raise ValueError(f"{name} must be an hour 0-23, got {value}: fix bot_config")
        if self.min_spacing_minutes < 0 or self.jitter_minutes < 0 or self.posts_per_day < 0:
            raise ValueError("spacing, jitter and posts_per_day must be >= 0: fix bot_config")
        ZoneInfo(self.timezone)

    def is_quiet(self, hour: int) -> bool:
        start, end = self.quiet_start_hour, self.quiet_end_hour
        if start == end:
            return False
        if start < end:
            return start <= hour < end
        return hour >= start or hour < end

    @property
    def open_hours(self) -> list[int]:
        return [h for h in HOURS if not self.is_quiet(h)]

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ScheduleConfig:
        """Build from a bot_config dict, ignoring keys that are not scheduling rules."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


class SlotScheduler:
    """Thompson sampling over local posting hours, with quiet hours, spacing and jitter.

    Args:
        config: the scheduling rules.
        prior: Beta prior per hour (fit it with ``fit_beta_prior`` on history).
        discount: evidence discount per update (drift in the audience's hours).
        seed: random generator seed.
    """

    def __init__(
        self,
        config: ScheduleConfig,
        *,
        prior: tuple[float, float] = (1.0, 250.0),
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.sampler = ThompsonSampler(len(HOURS), prior=prior, discount=discount, seed=seed)
        self.rng = np.random.default_rng(None if seed is None else seed + 1)

    def update(self, hour: int, successes: float, trials: float) -> None:
        self.sampler.update(hour, successes, trials)

    def learn_from_posts(
        self, posts: pd.DataFrame, *, max_trials: float | None = DEFAULT_MAX_TRIALS
    ) -> None:
        """Add the evidence of posted posts (``hour_local`` + engagement metric columns)."""
        for row in posts.to_dict("records"):
            s, n = binomial_evidence(
                weighted_engagements(row), float(row.get("impressions") or 0), max_trials=max_trials
            )
            if n > 0 and row.get("hour_local") is not None and not pd.isna(row["hour_local"]):
                self.update(int(row["hour_local"]), s, n)

    def sample_hours(self) -> list[int]:
        """Open hours ranked by one posterior draw each (best first)."""
        draw = self.sampler.sample()
        open_hours = self.config.open_hours
        return sorted(open_hours, key=lambda h: -draw[h])

    def plan_day(
        self,
        day: date,
        *,
        after: datetime | None = None,
        taken: list[datetime] | None = None,
    ) -> list[datetime]:
        """Post times (UTC, sorted) for one local day.

        Hours are taken in the order of one posterior draw; a time is kept only if it is in an
        open hour, after ``after``, and at least the minimum spacing from every kept or
        ``taken`` time. Jitter is applied before the checks, so jittered times obey the rules.

        Args:
            day: the account's local date to plan.
            after: nothing earlier than this (UTC), e.g. now.
            taken: times already planned or posted (UTC), respected for spacing.
        """
        config = self.config
        spacing = timedelta(minutes=config.min_spacing_minutes)
        kept: list[datetime] = []
        existing = list(taken or [])
        for hour in self.sample_hours():
            if len(kept) >= config.posts_per_day:
                break
            start = datetime.combine(day, time(hour), tzinfo=self.tz)
            for _attempt in range(4):  # a few jitter draws before giving the hour up
                jitter = float(self.rng.uniform(-config.jitter_minutes, config.jitter_minutes))
                when = start + timedelta(minutes=30 + jitter)
                local = when.astimezone(self.tz)
                if config.is_quiet(local.hour) or local.date() != day:
                    continue
                utc = when.astimezone(ZoneInfo("UTC"))
                if after is not None and utc <= after:
                    continue
                if any(abs(utc - other) < spacing for other in kept + existing):
                    continue
                kept.append(utc)
                break
        return sorted(kept)

    def next_slot(self, now: datetime, *, taken: list[datetime] | None = None) -> datetime | None:
        """The next planned time after ``now`` (today's plan, else tomorrow's)."""
        local_today = now.astimezone(self.tz).date()
        for offset in range(2):
            plan = self.plan_day(local_today + timedelta(days=offset), after=now, taken=taken)
            if plan:
                return plan[0]
        return None

    def to_frame(self) -> pd.DataFrame:
        frame = self.sampler.to_frame([f"{h:02d}:00" for h in HOURS])
        frame["quiet"] = [self.config.is_quiet(h) for h in HOURS]
        return frame
