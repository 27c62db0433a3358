"""Rate limits: Redis counters as a fast pre-check, the durable post log as the judge.

Includes the property-based stateful test of issue 5: no sequence of requests, restarts, Redis
flushes and clock jumps of an hour either way lets more posts through than the caps allow in any
window.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.hotpath.conftest import REDIS_URL, FakeClock
from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete
from xbot_assets.store.hot.ratelimit import RateCaps, RateLimiter, check_post_caps

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CAPS = RateCaps(
    posts_per_hour=3,
    posts_per_day=8,
    min_spacing=timedelta(minutes=20),
    replies_per_hour=4,
    ai_usd_per_day=1.0,
    x_api_calls_per_15min=5,
)


def worst_window(times: list[datetime], window: timedelta) -> int:
    """Most events in any half-open window (written independently of the limiter)."""
    ordered = sorted(times)
    return max(
        (sum(1 for t in ordered if start <= t < start + window) for start in ordered), default=0
    )


def violations(posts: list[datetime], replies: list[datetime], caps: RateCaps) -> list[str]:
    out = []
    if worst_window(posts, timedelta(hours=1)) > caps.posts_per_hour:
        out.append("posts_per_hour")
    if worst_window(posts, timedelta(days=1)) > caps.posts_per_day:
        out.append("posts_per_day")
    if worst_window(replies, timedelta(hours=1)) > caps.replies_per_hour:
        out.append("replies_per_hour")
    for a, b in itertools.combinations(posts, 2):
        if abs(a - b) < caps.min_spacing:
            out.append("min_spacing")
            break
    return out


# --- the pure durable check -------------------------------------------------------------------


def test_caps_count_sliding_windows_not_calendar_buckets():
    posts = [T0 + timedelta(minutes=m) for m in (19, 39, 59)]  # 12:19, 12:39, 12:59
    # 13:18 is in a new calendar hour, but the hour before it holds 3 posts.
    decision = check_post_caps("post", T0 + timedelta(minutes=78), posts, [], CAPS)
    assert decision.reason == "max_posts_per_hour"
    assert decision.retry_after == timedelta(minutes=1)
    assert check_post_caps("post", T0 + timedelta(minutes=79), posts, [], CAPS)


def test_a_post_before_existing_ones_counts_them_too():
    # The clock went back an hour: posts "in the future" still bound the window and spacing.
    future = [T0 + timedelta(minutes=m) for m in (25, 45, 59)]
    assert check_post_caps("post", T0, future, [], CAPS).reason == "max_posts_per_hour"
    assert check_post_caps("post", T0 + timedelta(minutes=20), [], [], CAPS)
    near = [T0 + timedelta(minutes=10)]
    assert check_post_caps("post", T0, near, [], CAPS).reason == "min_spacing_minutes"


def test_daily_cap_and_replies_are_separate():
    posts = [T0 - timedelta(hours=2 * i) for i in range(1, 9)]  # 8 posts in the last 16 h
    assert check_post_caps("post", T0, posts, [], CAPS).reason == "max_posts_per_day"
    assert check_post_caps("reply", T0, posts, [], CAPS)  # replies have their own cap
    replies = [T0 - timedelta(minutes=5 * i) for i in range(4)]
    assert check_post_caps("reply", T0, [], replies, CAPS).reason == "max_replies_per_hour"


# --- the Redis counters ------------------------------------------------------------------------


def test_precheck_denies_on_counters_and_flush_only_undercounts(redis_client, keys):
    clock = FakeClock(T0)
    limiter = RateLimiter(redis_client, keys, CAPS, clock=clock, scope="acct1")
    assert limiter.precheck_post()
    limiter.record_post("post", T0)
    clock.advance(minutes=5)
    assert limiter.precheck_post().reason == "min_spacing_minutes"
    clock.advance(minutes=20)
    limiter.record_post("post", clock.now)
    clock.advance(minutes=21)
    limiter.record_post("post", clock.now)
    clock.advance(minutes=21)
    assert limiter.precheck_post().reason in ("max_posts_per_hour", "min_spacing_minutes") or (
        clock.now.hour != T0.hour
    )
    usage = limiter.usage(T0)
    assert usage["posts_today"] == 3
    scan_delete(redis_client, keys)
    # After a flush the fast path knows nothing and allows: the durable check must decide.
    assert limiter.precheck_post(at=T0 + timedelta(minutes=30))
    durable = [T0, T0 + timedelta(minutes=25), T0 + timedelta(minutes=46)]
    assert not limiter.confirm_post("post", T0 + timedelta(minutes=50), durable, [])


def test_counters_are_per_account_scope(redis_client, keys):
    a = RateLimiter(redis_client, keys, CAPS, clock=FakeClock(T0), scope="acct1")
    b = RateLimiter(redis_client, keys, CAPS, clock=FakeClock(T0), scope="acct2")
    a.record_post("post", T0)
    assert not a.precheck_post(at=T0 + timedelta(minutes=1))
    assert b.precheck_post(at=T0 + timedelta(minutes=1))


def test_ai_spend_stops_at_the_daily_budget_and_reseeds_after_a_flush(redis_client, keys):
    clock = FakeClock(T0)
    limiter = RateLimiter(redis_client, keys, CAPS, clock=clock)
    assert limiter.reserve_ai_spend(0.6)
    assert limiter.reserve_ai_spend(0.4)
    denied = limiter.reserve_ai_spend(0.01)
    assert not denied and denied.reason == "ai_budget_usd_per_day"
    assert denied.retry_after == timedelta(hours=12)  # until the next UTC day
    scan_delete(redis_client, keys)
    # The counter is gone; the durable spend total seeds it again.
    assert not limiter.reserve_ai_spend(0.2, durable_spent_today=lambda: 0.9)
    assert limiter.reserve_ai_spend(0.1)
    clock.advance(days=1)
    assert limiter.reserve_ai_spend(1.0)
    with pytest.raises(ValueError, match="non-negative"):
        limiter.reserve_ai_spend(-1)


def test_x_api_calls_per_15_minute_window(redis_client, keys):
    clock = FakeClock(T0)
    limiter = RateLimiter(redis_client, keys, CAPS, clock=clock)
    assert all(limiter.acquire_x_api_call() for _ in range(5))
    denied = limiter.acquire_x_api_call()
    assert denied.reason == "x_api_calls_per_15min" and denied.retry_after == timedelta(minutes=15)
    clock.advance(minutes=15)
    assert limiter.acquire_x_api_call()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_redis_unreachable_fast_path_allows_and_local_counters_cap():
    dead = connect_redis(_closed_port_url(), socket_timeout_s=0.2, connect_timeout_s=0.2)
    limiter = RateLimiter(dead, KeySpace("test:dead:"), CAPS, clock=FakeClock(T0))
    assert limiter.precheck_post()  # no proof of a cap: the durable check decides
    limiter.record_post("post")  # harmless no-op
    assert all(limiter.acquire_x_api_call() for _ in range(5))
    assert not limiter.acquire_x_api_call()  # in-process counter while Redis is away
    assert not limiter.reserve_ai_spend(0.5, durable_spent_today=lambda: 0.8)
    assert limiter.reserve_ai_spend(0.2, durable_spent_today=lambda: 0.8)


# --- the stateful property ---------------------------------------------------------------------


class RateLimiterMachine(RuleBasedStateMachine):
    """The bot asks to post and reply while the world misbehaves; the durable log is the model."""

    def __init__(self) -> None:
        super().__init__()
        self.client = connect_redis(REDIS_URL)
        self.keys = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
        self.clock = FakeClock(T0)
        self.limiter = self._new_limiter()
        self.posts: list[datetime] = []
        self.replies: list[datetime] = []
        self.allowed = 0

    def _new_limiter(self) -> RateLimiter:
        return RateLimiter(self.client, self.keys, CAPS, clock=self.clock, scope="acct1")

    @rule(kind=st.sampled_from(["post", "post", "reply"]))
    def request(self, kind: str) -> None:
        now = self.clock.now
        if not self.limiter.precheck_post(kind, now):  # type: ignore[arg-type]
            return
        span = CAPS.lookaround
        near_posts = [t for t in self.posts if abs(t - now) <= span]
        near_replies = [t for t in self.replies if abs(t - now) <= span]
        if self.limiter.confirm_post(kind, now, near_posts, near_replies):  # type: ignore[arg-type]
            (self.replies if kind == "reply" else self.posts).append(now)
            self.limiter.record_post(kind, now)  # type: ignore[arg-type]
            self.allowed += 1

    @rule(minutes=st.integers(min_value=1, max_value=240))
    def advance(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(back=st.booleans())
    def jump_an_hour(self, back: bool) -> None:
        self.clock.advance(hours=-1 if back else 1)

    @rule()
    def restart(self) -> None:
        self.limiter = self._new_limiter()

    @rule()
    def flush_redis(self) -> None:
        scan_delete(self.client, self.keys)

    @invariant()
    def caps_hold_in_every_window(self) -> None:
        assert violations(self.posts, self.replies, CAPS) == []

    def teardown(self) -> None:
        scan_delete(self.client, self.keys)
        self.client.close()


TestRateLimiterMachine = RateLimiterMachine.TestCase
TestRateLimiterMachine.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
