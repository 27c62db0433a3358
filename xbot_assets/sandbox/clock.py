"""A simulated clock: time moves only when told, as fast as the computer allows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """A timezone-aware UTC clock that moves only through :meth:`advance` and :meth:`set`.

    The sandbox, the bot and the benchmarks share one instance, so a simulated month runs in
    seconds and every "1h after posting" is reached without waiting.

    Args:
        start: the initial time (must be timezone-aware; converted to UTC). Defaults to
            2026-01-05T00:00:00Z (a Monday).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = _as_utc(start or datetime(2026, 1, 5, tzinfo=UTC))

    def now(self) -> datetime:
        """The current simulated time (UTC, aware)."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` (must not be negative) and return the new time."""
        if delta < timedelta(0):
            raise ValueError(f"SimClock.advance needs a non-negative delta, got {delta}; use set()")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (timezone-aware; may be earlier, for tests) and return it."""
        with self._lock:
            self._now = _as_utc(when)
            return self._now

    def __repr__(self) -> str:
        return f"SimClock({self.now().isoformat()})"


def _as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(
            f"SimClock needs a timezone-aware datetime, got naive {when!r}; "
            "pass e.g. datetime(..., tzinfo=UTC)"
        )
    return when.astimezone(UTC)


class WallClock(SimClock):
    """A simulated clock that also runs on its own: ``speed`` simulated seconds per real second.

    For a long-running ``xbot sandbox serve`` that a bot talks to in real time (``speed=1``) or
    faster (``speed=60``: a simulated hour per real minute). :meth:`advance` and :meth:`set`
    still jump, for tests and the admin routes.

    Args:
        start: the simulated time at creation (timezone-aware).
        speed: simulated seconds per real second (must be positive).
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"WallClock needs a positive speed, got {speed}; use SimClock for 0")
        super().__init__(start)
        self.speed = float(speed)
        self._anchor = time.monotonic()

    def _running(self) -> timedelta:
        return timedelta(seconds=(time.monotonic() - self._anchor) * self.speed)

    def now(self) -> datetime:
        with self._lock:
            return self._now + self._running()

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(
                f"WallClock.advance needs a non-negative delta, got {delta}; use set()"
            )
        with self._lock:
            self._now = self._now + delta
            return self._now + self._running()

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._now = _as_utc(when) - self._running()
            return _as_utc(when)


class FollowClock(SimClock):
    """A clock that follows a time source given from outside, plus any jumps made on it.

    ``xbot sandbox serve`` follows the deployment's rehearsal clock (wall time at a speed factor
    from a fixed epoch) so the sandbox and the bot's processes compute the same time from the
    same settings; the sandbox imports nothing from xbot, so the source is handed in as a plain
    callable. :meth:`advance` and :meth:`set` still work (admin routes, tests) as an offset.

    Args:
        source: returns the current time (timezone-aware).
    """

    def __init__(self, source: Callable[[], datetime]) -> None:
        self._source = source
        self._offset = timedelta(0)
        super().__init__(source())

    def now(self) -> datetime:
        with self._lock:
            return _as_utc(self._source()) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(
                f"FollowClock.advance needs a non-negative delta, got {delta}; use set()"
            )
        with self._lock:
            self._offset += delta
            return _as_utc(self._source()) + self._offset

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._offset = _as_utc(when) - _as_utc(self._source())
            return _as_utc(when)
