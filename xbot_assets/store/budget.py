"""The X API budget's durable ledger: calls this 15-minute window and this month, in bot_config.

X limits an app per 15-minute window and caps (or bills) it per month by plan. Every X API call
of every process reserves its slot here first, in one locked read-modify-write of the bot_config
key ``x_api_usage:<YYYY-MM>`` (``FOR UPDATE`` on Postgres, the ``BEGIN IMMEDIATE`` write lock on
SQLite), so two processes can never both take the last call of a window or of the month. The
counters are not operator settings: unlike ``DurableStore.set_config`` they write no audit entry
per call (an X call is not a configuration change). Reads and writes go through the config
repository (``store/durable/config.py``), the one path to ``bot_config``.

The value: ``{"reads": n, "writes": n, "cost_usd": x, "denied": n, "window": iso,
"window_calls": n}`` where ``window`` is the start of the 15-minute window ``window_calls`` counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from xbot_assets.store.durable.config import ConfigRepository, config_value
from xbot_assets.store.timebase import as_utc

CallKind = Literal["read", "write"]
USAGE_KEY_PREFIX = "x_api_usage:"
WINDOW = timedelta(minutes=15)
ACTOR = "xapi.budget"


@dataclass(frozen=True)
class XApiCaps:
    """What the plan allows (from settings: ``XApiCaps.from_settings``)."""

    calls_per_15min: int = 300
    reads_per_month: int = 15_000
    writes_per_month: int = 3_000
    read_cost_usd: float = 0.0
    write_cost_usd: float = 0.0
    usd_per_month: float = 0.0
    """0: no spend cap (a subscription plan; the call caps apply)."""

    @classmethod
    def from_settings(cls, settings: Any) -> XApiCaps:
        return cls(
            calls_per_15min=settings.x_api_calls_per_15min,
            reads_per_month=settings.x_api_reads_per_month,
            writes_per_month=settings.x_api_writes_per_month,
            read_cost_usd=settings.x_api_read_cost_usd,
            write_cost_usd=settings.x_api_write_cost_usd,
            usd_per_month=settings.x_api_usd_per_month,
        )

    def cap(self, kind: CallKind) -> int:
        return self.reads_per_month if kind == "read" else self.writes_per_month

    def cost(self, kind: CallKind, calls: int) -> float:
        return calls * (self.read_cost_usd if kind == "read" else self.write_cost_usd)


@dataclass(frozen=True)
class MonthUsage:
    """The month's X API use against its caps (for ``xbot status`` and ``/metrics``)."""

    month: str
    reads: int
    writes: int
    cost_usd: float
    denied: int
    window_start: datetime | None
    window_calls: int
    caps: XApiCaps

    @property
    def reads_left(self) -> int:
        return max(self.caps.reads_per_month - self.reads, 0)

    @property
    def writes_left(self) -> int:
        return max(self.caps.writes_per_month - self.writes, 0)

    def used_ratio(self, kind: CallKind) -> float:
        """Share of the month's cap used (1.0 when the cap is 0)."""
        cap = self.caps.cap(kind)
        used = self.reads if kind == "read" else self.writes
        return 1.0 if cap <= 0 else used / cap

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "reads": self.reads,
            "reads_per_month": self.caps.reads_per_month,
            "reads_left": self.reads_left,
            "writes": self.writes,
            "writes_per_month": self.caps.writes_per_month,
            "writes_left": self.writes_left,
            "cost_usd": round(self.cost_usd, 6),
            "usd_per_month": self.caps.usd_per_month,
            "denied": self.denied,
            "window_calls": self.window_calls,
            "calls_per_15min": self.caps.calls_per_15min,
        }


@dataclass(frozen=True)
class Reservation:
    """The answer to one reservation: allowed, or why not and until when."""

    allowed: bool
    reason: str = ""
    retry_at: datetime | None = None

    def __bool__(self) -> bool:
        return self.allowed


def month_of(at: datetime) -> str:
    return as_utc(at).strftime("%Y-%m")


def next_month(at: datetime) -> datetime:
    at = as_utc(at)
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def window_of(at: datetime) -> datetime:
    at = as_utc(at)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def month_usage(
    month: str, value: Mapping[str, Any] | None, caps: XApiCaps, at: datetime
) -> MonthUsage:
    value = value or {}
    window = value.get("window")
    window_start = datetime.fromisoformat(window) if isinstance(window, str) else None
    current = window_start == window_of(at)
    return MonthUsage(
        month=month,
        reads=int(value.get("reads", 0)),
        writes=int(value.get("writes", 0)),
        cost_usd=float(value.get("cost_usd", 0.0)),
        denied=int(value.get("denied", 0)),
        window_start=window_start,
        window_calls=int(value.get("window_calls", 0)) if current else 0,
        caps=caps,
    )


class XApiUsageLedger:
    """Reserve X API calls against the window and month caps, durably (see the module doc).

    Args:
        engine: the durable store's engine (its role and pool: ``DurableStore.engine``).
        environment: the environment whose budget this is.
        caps: the plan's caps.
    """

    def __init__(self, engine: Engine, environment: str, caps: XApiCaps) -> None:
        self.engine = engine
        self.environment = environment
        self.caps = caps

    @property
    def _config(self) -> ConfigRepository:
        return ConfigRepository(self.engine, self.environment)

    def usage(self, at: datetime) -> MonthUsage:
        """The month of ``at``: calls used and left, spend, the current window's calls."""
        month = month_of(at)
        return month_usage(month, self._config.get_config(USAGE_KEY_PREFIX + month), self.caps, at)

    def month_usage_in(self, conn: Connection, at: datetime) -> MonthUsage:
        """:meth:`usage` in the caller's transaction (``xbot status`` reads all in one)."""
        month = month_of(at)
        value = config_value(conn, self.environment, USAGE_KEY_PREFIX + month)
        return month_usage(month, value, self.caps, at)

    def reserve(self, kind: CallKind, at: datetime, calls: int = 1) -> Reservation:
        """Take ``calls`` of the window and the month for ``kind`` unless a cap forbids it.

        A denial is counted (``denied``) and says until when: the next window, or the next
        month when the month's calls or spend are used up. One locked read-modify-write of the
        month's key (``ConfigRepository.update_config``, without an audit entry).
        """
        if calls < 1:
            raise ValueError(f"calls must be at least 1 (got {calls})")
        at = as_utc(at)
        month = month_of(at)
        window = window_of(at)
        decided: list[Reservation] = []

        def count(old: Any) -> dict[str, Any]:
            value = dict(old) if old else {}
            usage = month_usage(month, value, self.caps, at)
            decision = self._judge(kind, calls, usage, at, window)
            decided[:] = [decision]  # the call that wrote (change may run twice)
            if decision.allowed:
                value[f"{kind}s"] = int(value.get(f"{kind}s", 0)) + calls
                value["cost_usd"] = usage.cost_usd + self.caps.cost(kind, calls)
                value["window"] = window.isoformat()
                value["window_calls"] = usage.window_calls + calls
            else:
                value["denied"] = usage.denied + 1
            return value

        self._config.update_config(
            USAGE_KEY_PREFIX + month, count, actor=ACTOR, now=at, audited=False
        )
        return decided[0]

    def _judge(
        self, kind: CallKind, calls: int, usage: MonthUsage, at: datetime, window: datetime
    ) -> Reservation:
        used = usage.reads if kind == "read" else usage.writes
        if used + calls > self.caps.cap(kind):
            return Reservation(False, f"x_api_{kind}s_per_month", next_month(at))
        spend_cap = self.caps.usd_per_month
        if spend_cap > 0 and usage.cost_usd + self.caps.cost(kind, calls) > spend_cap + 1e-9:
            return Reservation(False, "x_api_usd_per_month", next_month(at))
        if usage.window_calls + calls > self.caps.calls_per_15min:
            return Reservation(False, "x_api_calls_per_15min", window + WINDOW)
        return Reservation(True)
