"""The injectable clock of the hot path.

The bot runs on a simulated clock in the sandbox, so nothing in the store reads the wall clock
directly: rate windows, retry backoff and brake timestamps take a :data:`Clock` (any callable
returning an aware UTC datetime). Redis's own idle timers (XAUTOCLAIM) stay on server time, which
is what they measure: how long an entry has sat with a consumer.

A deployment rehearsal runs every process on :func:`rehearsal_clock` (wall time at a speed
factor from a fixed epoch), chosen from the settings by :func:`settings_clock`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

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


def rehearsal_clock(speed: float, epoch: datetime, wall: Clock = utc_now) -> Clock:
    """Wall time at ``speed`` simulated seconds per real second, counted from ``epoch``.

    ``now = epoch + speed × (wall() − epoch)``: at the wall instant ``epoch`` both clocks agree,
    after that the simulated one runs ``speed`` times faster. The formula needs no shared state,
    so the daemon, every run process, the webserver, the health server and the sandbox server
    compute the same time from the same two settings (``CLOCK_SPEED``, ``CLOCK_EPOCH``), which
    lets a deployment live a simulated day in minutes.

    Args:
        speed: simulated seconds per real second (> 0; 1 is the wall clock).
        epoch: the wall instant the rehearsal counts from (timezone-aware).
        wall: the underlying wall clock (injectable for tests).
    """
    if not speed > 0:
        raise ValueError(f"the rehearsal clock needs a positive speed, got {speed}")
    origin = as_utc(epoch)
    if speed == 1:
        return wall

    def now() -> datetime:
        return origin + (as_utc(wall()) - origin) * speed

    return now


class _ClockSettings(Protocol):
    """The two settings the clock reads (``xbot_assets.config.Settings`` has them)."""

    clock_speed: float | None
    clock_epoch: datetime | None


def settings_clock(settings: _ClockSettings, wall: Clock = utc_now) -> Clock:
    """The process's time source: the wall clock, or the rehearsal clock the settings name.

    Every long-running process of a deployment (sensors and runs through ``XbotRuntime``, the
    health server, ``xbot sandbox serve``) takes its time from here. ``Settings`` refuses
    ``CLOCK_SPEED`` in production and without ``CLOCK_EPOCH``, so this only builds what passed.
    """
    speed = settings.clock_speed
    if speed is None or speed == 1:
        return wall
    if settings.clock_epoch is None:
        raise ValueError("CLOCK_SPEED needs CLOCK_EPOCH (the wall instant the rehearsal starts)")
    return rehearsal_clock(speed, settings.clock_epoch, wall)
