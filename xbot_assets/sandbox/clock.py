"""A simulated clock: time moves only when told, as fast as the computer allows."""

from __future__ import annotations

import threading
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
