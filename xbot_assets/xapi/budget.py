"""Every X API call passes one gate: the 15-minute limiter and the monthly budget.

:class:`XApiGate` asks, before each call, (1) the Redis 15-minute counter
(``RateLimiter.acquire_x_api_call``, shared by every process when REDIS_URL is set), then (2) the
durable ledger (``store/budget.py``), the truth for the window and the month's reads, writes
and spend. The engine's reader (:class:`GatedReader`) and posters (``posting/gated.py``) wrap
their calls with it, so the collector, the poster and the reconciler all count.

A denied read raises :class:`~xbot_assets.xapi.errors.XRateLimitError` (the collector already
stops its pass on one); a denied write becomes the posting layer's ``RateLimited``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from xbot_assets.store.budget import (
    CallKind,
    MonthUsage,
    Reservation,
    XApiCaps,
    XApiUsageLedger,
)
from xbot_assets.xapi.errors import RateLimit, XRateLimitError

log = logging.getLogger(__name__)


class XApiGate:
    """Reserve each X API call before it is made.

    Args:
        ledger: the durable window and month counters.
        clock: the caller's clock (simulated in the main job).
        limiter: the Redis 15-minute limiter (``RateLimiter``) when REDIS_URL is set.
    """

    def __init__(
        self,
        ledger: XApiUsageLedger,
        clock: Callable[[], datetime],
        limiter: Any = None,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.limiter = limiter

    @classmethod
    def for_store(
        cls, settings: Any, store: Any, clock: Callable[[], datetime], *, redis_client: Any = None
    ) -> XApiGate:
        """The gate of ``settings`` over an open durable store (its engine and environment).

        With REDIS_URL set (or ``redis_client`` given), the Redis limiter goes in front.
        """
        caps = XApiCaps.from_settings(settings)
        ledger = XApiUsageLedger(store.engine, store.environment, caps)
        limiter = None
        client = redis_client
        if client is None and getattr(settings, "redis_url", None):
            from xbot_assets.store.hot.keys import redis_from_settings

            client = redis_from_settings(settings)
        if client is not None:
            from xbot_assets.store.hot.keys import KeySpace
            from xbot_assets.store.hot.ratelimit import RateCaps, RateLimiter

            limiter = RateLimiter(
                client,
                KeySpace.from_settings(settings),
                RateCaps.from_settings(settings),
                clock=clock,
                scope="xapi",
            )
        return cls(ledger, clock, limiter)

    def acquire(self, kind: CallKind, calls: int = 1) -> Reservation:
        """Take ``calls`` X API calls of ``kind`` now, or say why not and until when."""
        at = self.clock()
        if self.limiter is not None:
            fast = self.limiter.acquire_x_api_call(at=at, calls=calls)
            if not fast.allowed:
                retry = at + fast.retry_after if fast.retry_after is not None else None
                return Reservation(False, fast.reason, retry)
        decision = self.ledger.reserve(kind, at, calls)
        if not decision.allowed:
            log.warning(
                "X API %s refused by the budget (%s) until %s", kind, decision.reason,
                decision.retry_at,
            )  # fmt: skip
        return decision

    def usage(self) -> MonthUsage:
        return self.ledger.usage(self.clock())

    def reads_left(self) -> int:
        """Reads left this month (the collector plans its pass within them)."""
        return self.usage().reads_left


def budget_refusal(decision: Reservation, kind: CallKind) -> XRateLimitError:
    """The error a refused call raises: shaped like X's own 429, with the reset time."""
    return XRateLimitError(
        f"X API {kind} not made: the budget refused it ({decision.reason}) until "
        f"{decision.retry_at.isoformat() if decision.retry_at else 'later'}",
        status=429,
        title="Budget",
        rate_limit=RateLimit(limit=None, remaining=0, reset_at=decision.retry_at),
    )


class GatedReader:
    """An X reader (API client or the in-process sandbox) whose every call passes the gate."""

    def __init__(self, reader: Any, gate: XApiGate) -> None:
        self.reader = reader
        self.gate = gate
        if not callable(getattr(reader, "get_tweet_analytics", None)):
            # The collector asks whether the reader has this call: answer as the reader would.
            self.__dict__["get_tweet_analytics"] = None

    def _take(self) -> None:
        decision = self.gate.acquire("read")
        if not decision.allowed:
            raise budget_refusal(decision, "read")

    def get_tweets(self, ids: Sequence[str], **kwargs: Any) -> Any:
        self._take()
        return self.reader.get_tweets(ids, **kwargs)

    def get_user(self, user_id: str, **kwargs: Any) -> Any:
        self._take()
        return self.reader.get_user(user_id, **kwargs)

    def get_tweet_analytics(self, ids: Sequence[str], **kwargs: Any) -> Any:
        self._take()
        return self.reader.get_tweet_analytics(ids, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined here: close(), attributes. A new X call must be
        # added above so it is gated, not reached through here; so refuse the known call names.
        if name.startswith(("get_", "create_", "delete_", "post_")):
            raise AttributeError(f"{name} is not gated: add it to GatedReader")
        return getattr(self.reader, name)

    def close(self) -> None:
        close = getattr(self.reader, "close", None)
        if callable(close):
            close()
