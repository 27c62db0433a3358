"""Rate limits: fast Redis counters in front, the durable store's post log as the judge.

Levels (caps from Settings): posts per hour, posts per day, minimum spacing between posts,
replies per hour, AI spend per day (USD), X API calls per 15-minute window.

Posts and replies are checked twice:

1. :meth:`RateLimiter.precheck_post` reads Redis counters (hour and day buckets on the injectable
   clock, and the time of the last post). It only ever *denies* when the counters prove a cap is
   reached; the counters are bumped after a durable claim commits, so they never over-count, and
   a flushed Redis merely under-counts. If Redis cannot answer, it allows and step 2 decides.
2. :func:`check_post_caps` is the truth: given the timestamps the durable store holds for posts
   around ``at``, it checks every sliding window that would contain the new post (not just the
   calendar bucket) and the spacing to every neighbour, before or after ``at`` — so a clock that
   jumps back an hour cannot squeeze extra posts between existing ones. The DualStoreManager runs
   it inside the claim transaction.

AI spend and X API calls have no durable post log of their own: they are Redis counters per window
(seeded from the durable store's spend total when the key is missing, if the caller gives one), with
an in-process fallback when Redis is down.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import redis

from xbot_assets.config import Settings
from xbot_assets.store.hot.keys import KeySpace
from xbot_assets.store.timebase import Clock, as_utc, to_epoch_us, utc_now

log = logging.getLogger(__name__)

PostKind = Literal["post", "reply"]
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
XAPI_WINDOW = timedelta(minutes=15)
_US = 1_000_000


@dataclass(frozen=True)
class RateCaps:
    """Every cap the limiter enforces; build from settings with :meth:`from_settings`."""

    posts_per_hour: int = 2
    posts_per_day: int = 12
    min_spacing: timedelta = timedelta(minutes=45)
    replies_per_hour: int = 10
    ai_usd_per_day: float = 7.50
    x_api_calls_per_15min: int = 300

    @classmethod
    def from_settings(cls, settings: Settings) -> RateCaps:
        return cls(
            posts_per_hour=settings.max_posts_per_hour,
            posts_per_day=settings.max_posts_per_day,
            min_spacing=timedelta(minutes=settings.min_spacing_minutes),
            replies_per_hour=settings.max_replies_per_hour,
            ai_usd_per_day=settings.ai_budget_usd_per_day,
            x_api_calls_per_15min=settings.x_api_calls_per_15min,
        )

    @property
    def lookaround(self) -> timedelta:
        """How far around ``at`` the durable log must be read to judge a post."""
        return max(DAY, HOUR, self.min_spacing)


@dataclass(frozen=True)
class Decision:
    """The answer of a check. ``retry_after`` is a hint, not a promise."""

    allowed: bool
    reason: str = ""
    retry_after: timedelta | None = None

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def _worst_window_count(points_us: Sequence[int], at_us: int, window_us: int) -> int:
    """Most existing points in any half-open window ``[a, a + w)`` that contains ``at``.

    Windows containing ``at`` start in ``[at - w + 1, at]`` (microseconds). A point ``s`` is in the
    window iff ``a`` is in ``[s - w + 1, s]``, so the count is a sum of intervals in ``a`` and peaks
    at a left end of one of them (or at the domain's left end).
    """
    low, high = at_us - window_us + 1, at_us
    ordered = sorted(points_us)
    candidates = {low}
    for s in ordered:
        start = s - window_us + 1
        if low <= start <= high:
            candidates.add(start)
    best = 0
    for a in candidates:
        count = bisect.bisect_left(ordered, a + window_us) - bisect.bisect_left(ordered, a)
        best = max(best, count)
    return best


def check_post_caps(
    kind: PostKind,
    at: datetime,
    posts: Sequence[datetime],
    replies: Sequence[datetime],
    caps: RateCaps,
) -> Decision:
    """Whether one more ``kind`` at ``at`` keeps every cap in every window (pure; the truth).

    Args:
        kind: ``post`` (counts against per-hour, per-day and spacing) or ``reply``.
        at: when the new one would go out.
        posts: times of every post the durable store holds within ``caps.lookaround`` of ``at``
            (claimed, posting, posted or unknown: anything that may have gone out).
        replies: the same for replies.
        caps: the caps.
    """
    at_us = to_epoch_us(at)
    if kind == "reply":
        reply_us = [to_epoch_us(t) for t in replies]
        if _worst_window_count(reply_us, at_us, 3600 * _US) + 1 > caps.replies_per_hour:
            return Decision(False, "max_replies_per_hour", _retry_hint(reply_us, at_us, HOUR))
        return ALLOW
    post_us = [to_epoch_us(t) for t in posts]
    if _worst_window_count(post_us, at_us, 3600 * _US) + 1 > caps.posts_per_hour:
        return Decision(False, "max_posts_per_hour", _retry_hint(post_us, at_us, HOUR))
    if _worst_window_count(post_us, at_us, 86_400 * _US) + 1 > caps.posts_per_day:
        return Decision(False, "max_posts_per_day", _retry_hint(post_us, at_us, DAY))
    spacing_us = int(caps.min_spacing.total_seconds() * _US)
    if spacing_us > 0:
        near = [s for s in post_us if abs(at_us - s) < spacing_us]
        if near:
            wait = max(s + spacing_us - at_us for s in near)
            return Decision(False, "min_spacing_minutes", timedelta(microseconds=max(wait, 0)))
    return ALLOW


def _retry_hint(points_us: Sequence[int], at_us: int, window: timedelta) -> timedelta:
    window_us = int(window.total_seconds() * _US)
    inside = [s for s in points_us if at_us - window_us < s <= at_us]
    if not inside:
        return window
    return timedelta(microseconds=max(min(inside) + window_us - at_us, 0))


# Consume one unit of a window counter unless that would pass the cap. KEYS[1] counter.
# ARGV: amount, cap, ttl seconds, seed (-2: report a missing key as -1; -1: start at 0).
_RESERVE_LUA = """
local cur = redis.call('GET', KEYS[1])
if not cur then
  local seed = tonumber(ARGV[4])
  if seed == -2 then return {-1, '0'} end
  if seed < 0 then seed = 0 end
  redis.call('SET', KEYS[1], tostring(seed), 'EX', tonumber(ARGV[3]))
  cur = seed
else
  cur = tonumber(cur)
end
local amount = tonumber(ARGV[1])
if cur + amount > tonumber(ARGV[2]) + 1e-9 then return {0, tostring(cur)} end
local new = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, tostring(new)}
"""


class RateLimiter:
    """Redis counters with TTL for every cap level, on an injectable clock.

    Args:
        client: the hot store, or ``None`` (posts then rely on the durable check alone; AI spend
            and X API calls on the durable spend total or an in-process counter).
        keys: the key space (environment prefix).
        caps: the caps, usually ``RateCaps.from_settings(settings)``.
        clock: the bot's clock (simulated in the sandbox).
        scope: whose caps these are (one account: e.g. ``"acct:3"``); counters are per scope.
    """

    def __init__(
        self,
        client: redis.Redis | None,
        keys: KeySpace,
        caps: RateCaps,
        *,
        clock: Clock = utc_now,
        scope: str = "default",
    ) -> None:
        self.client = client
        self.keys = keys
        self.caps = caps
        self.clock = clock
        self.scope = scope
        self._reserve = client.register_script(_RESERVE_LUA) if client is not None else None
        self._local: dict[str, float] = {}

    # --- keys ------------------------------------------------------------------------------------
    @staticmethod
    def _bucket(at: datetime, width: timedelta) -> int:
        return to_epoch_us(at) // int(width.total_seconds() * _US)

    def _count_key(self, kind: PostKind, width: timedelta, at: datetime) -> str:
        return self.keys.key(
            "rl", self.scope, kind, int(width.total_seconds()), self._bucket(at, width)
        )

    def _last_key(self, kind: PostKind) -> str:
        return self.keys.key("rl", self.scope, kind, "last")

    def _ttl_s(self, width: timedelta) -> int:
        return int(width.total_seconds() * 2) + 60

    # --- posts and replies -----------------------------------------------------------------------
    def _levels(self, kind: PostKind) -> list[tuple[timedelta, int, str]]:
        if kind == "reply":
            return [(HOUR, self.caps.replies_per_hour, "max_replies_per_hour")]
        return [
            (HOUR, self.caps.posts_per_hour, "max_posts_per_hour"),
            (DAY, self.caps.posts_per_day, "max_posts_per_day"),
        ]

    def precheck_post(self, kind: PostKind = "post", at: datetime | None = None) -> Decision:
        """Fast check on Redis counters. Denies only on proof; allows when Redis is unavailable.

        Always follow an allow with the durable check (``DualStoreManager.claim_post`` does).
        """
        at = as_utc(at or self.clock())
        if self.client is None:
            return ALLOW
        levels = self._levels(kind)
        try:
            pipe = self.client.pipeline(transaction=False)
            for width, _cap, _reason in levels:
                pipe.get(self._count_key(kind, width, at))
            pipe.get(self._last_key(kind))
            values = pipe.execute()
        except redis.RedisError as exc:
            log.warning("rate precheck skipped, Redis unavailable: %s", type(exc).__name__)
            return ALLOW
        for (width, cap, reason), value in zip(levels, values[:-1], strict=True):
            if value is not None and int(value) >= cap:
                bucket_end_us = (self._bucket(at, width) + 1) * int(width.total_seconds() * _US)
                return Decision(
                    False, reason, timedelta(microseconds=bucket_end_us - to_epoch_us(at))
                )
        last = values[-1]
        if kind == "post" and last is not None and self.caps.min_spacing > timedelta(0):
            gap_us = abs(to_epoch_us(at) - int(last))
            spacing_us = int(self.caps.min_spacing.total_seconds() * _US)
            if gap_us < spacing_us:
                return Decision(
                    False, "min_spacing_minutes", timedelta(microseconds=spacing_us - gap_us)
                )
        return ALLOW

    def confirm_post(
        self,
        kind: PostKind,
        at: datetime,
        posts: Sequence[datetime],
        replies: Sequence[datetime],
    ) -> Decision:
        """The durable check (see :func:`check_post_caps`) with this limiter's caps."""
        return check_post_caps(kind, as_utc(at), posts, replies, self.caps)

    def record_post(self, kind: PostKind = "post", at: datetime | None = None) -> None:
        """Count a post whose durable claim committed. Losing this (Redis down) is harmless."""
        if self.client is None:
            return
        at = as_utc(at or self.clock())
        try:
            pipe = self.client.pipeline(transaction=True)
            for width, _cap, _reason in self._levels(kind):
                key = self._count_key(kind, width, at)
                pipe.incr(key)
                pipe.expire(key, self._ttl_s(width))
            pipe.set(self._last_key(kind), to_epoch_us(at), ex=self._ttl_s(DAY))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("rate counter not bumped, Redis unavailable: %s", type(exc).__name__)

    # --- AI spend and X API calls ---------------------------------------------------------------
    def _reserve_window(
        self,
        key: str,
        amount: float,
        cap: float,
        ttl_s: int,
        durable_total: Callable[[], float] | None,
    ) -> tuple[bool, float] | None:
        """Atomically consume ``amount`` of a window counter; ``None`` if Redis is unavailable."""
        if self._reserve is None:
            return None
        try:
            ok, total = self._reserve(keys=[key], args=[amount, cap, ttl_s, -2])
            if int(ok) == -1:
                seed = durable_total() if durable_total is not None else -1
                ok, total = self._reserve(keys=[key], args=[amount, cap, ttl_s, seed])
        except redis.RedisError as exc:
            log.warning("rate counter unavailable, using fallback: %s", type(exc).__name__)
            return None
        return int(ok) == 1, float(total)

    def reserve_ai_spend(
        self,
        usd: float,
        *,
        durable_spent_today: Callable[[], float] | None = None,
        at: datetime | None = None,
    ) -> Decision:
        """Reserve ``usd`` of today's (UTC) AI budget before a call; deny if it would pass the cap.

        Args:
            usd: the estimated cost of the call (record the actual cost durably afterwards).
            durable_spent_today: returns today's spend from the durable store; used to seed the
                counter after a flush and as the judge when Redis is down.
            at: the moment (default: the clock).
        """
        at = as_utc(at or self.clock())
        if usd < 0 or math.isnan(usd):
            raise ValueError(f"AI spend must be a non-negative number of USD, got {usd!r}")
        cap = self.caps.ai_usd_per_day
        key = self.keys.key("rl", self.scope, "ai_usd", self._bucket(at, DAY))
        result = self._reserve_window(key, usd, cap, self._ttl_s(DAY), durable_spent_today)
        if result is None:
            local_key = f"ai:{self._bucket(at, DAY)}"
            spent = (
                durable_spent_today()
                if durable_spent_today is not None
                else self._local.get(local_key, 0.0)
            )
            if spent + usd > cap + 1e-9:
                return Decision(False, "ai_budget_usd_per_day", _until_next(at, DAY))
            self._local[local_key] = self._local.get(local_key, 0.0) + usd
            return ALLOW
        ok, _total = result
        return ALLOW if ok else Decision(False, "ai_budget_usd_per_day", _until_next(at, DAY))

    def acquire_x_api_call(self, *, at: datetime | None = None, calls: int = 1) -> Decision:
        """Take ``calls`` of the current 15-minute X API window; deny once the cap is reached."""
        at = as_utc(at or self.clock())
        cap = self.caps.x_api_calls_per_15min
        bucket = self._bucket(at, XAPI_WINDOW)
        key = self.keys.key("rl", self.scope, "xapi", bucket)
        result = self._reserve_window(key, calls, cap, self._ttl_s(XAPI_WINDOW), None)
        if result is None:
            local_key = f"xapi:{bucket}"
            if self._local.get(local_key, 0.0) + calls > cap:
                return Decision(False, "x_api_calls_per_15min", _until_next(at, XAPI_WINDOW))
            self._local[local_key] = self._local.get(local_key, 0.0) + calls
            return ALLOW
        ok, _total = result
        return (
            ALLOW if ok else Decision(False, "x_api_calls_per_15min", _until_next(at, XAPI_WINDOW))
        )

    def usage(self, at: datetime | None = None) -> dict[str, float]:
        """Current counter values (for the health server and ``xbot`` status output)."""
        at = as_utc(at or self.clock())
        if self.client is None:
            return {}
        names = {
            "posts_this_hour": self._count_key("post", HOUR, at),
            "posts_today": self._count_key("post", DAY, at),
            "replies_this_hour": self._count_key("reply", HOUR, at),
            "ai_usd_today": self.keys.key("rl", self.scope, "ai_usd", self._bucket(at, DAY)),
            "x_api_calls_this_window": self.keys.key(
                "rl", self.scope, "xapi", self._bucket(at, XAPI_WINDOW)
            ),
        }
        try:
            values = self.client.mget(list(names.values()))
        except redis.RedisError:
            return {}
        return {name: float(v or 0) for name, v in zip(names, values, strict=True)}


def _until_next(at: datetime, width: timedelta) -> timedelta:
    width_us = int(width.total_seconds() * _US)
    at_us = to_epoch_us(at)
    end_us = (at_us // width_us + 1) * width_us
    return timedelta(microseconds=end_us - at_us)


def window_start(at: datetime, width: timedelta) -> datetime:
    """Start of the fixed bucket of ``width`` that holds ``at`` (e.g. the UTC day)."""
    width_us = int(width.total_seconds() * _US)
    start_us = to_epoch_us(at) // width_us * width_us
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start_us)
