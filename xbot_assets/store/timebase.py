"""The injectable clock of the hot path.

The bot runs on a simulated clock in the sandbox, so nothing in the store reads the wall clock
directly: rate windows, retry backoff and brake timestamps take a :data:`Clock` (any callable
returning an aware UTC datetime). Redis's own idle timers (XAUTOCLAIM) stay on server time, which
is what they measure: how long an entry has sat with a consumer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC: the default :data:`Clock`."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; refuses naive datetimes, which would silently mean local time."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware UTC datetime")
    return moment.astimezone(UTC)


def to_epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact integer arithmetic for window edges."""
    moment = as_utc(moment)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
