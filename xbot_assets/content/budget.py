"""The daily AI budget: token and cost accounting that stops generation when the day is spent.

Spend is kept per UTC day in a :class:`BudgetLedger`. :class:`BotConfigBudgetLedger` keeps it in
the durable store's ``bot_config`` (key ``ai_spend:<YYYY-MM-DD>``) so every process and restart
sees the same total; :class:`InMemoryBudgetLedger` serves pure tests. The limit comes from
``settings.ai_budget_usd_per_day`` (7.50 USD by default) or the bot_config key of that name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, Protocol

from xbot_assets.content.base import Usage

DEFAULT_DAILY_BUDGET_USD: Final[float] = 7.50

# USD per million tokens (input, output). Unknown models use the conservative fallback so an
# unpriced model can never run up an unaccounted bill.
PRICES_PER_MILLION: Final[dict[str, tuple[float, float]]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40),
}
FALLBACK_PRICE_PER_MILLION: Final[tuple[float, float]] = (5.00, 20.00)


def price_for(
    model: str, prices: Mapping[str, tuple[float, float]] | None = None
) -> tuple[float, float]:
    """(input, output) USD per million tokens; dated snapshots use their family's price."""
    table = dict(PRICES_PER_MILLION) | dict(prices or {})
    if model in table:
        return table[model]
    # "gpt-4o-mini-2024-07-18" -> the longest known prefix.
    for name in sorted(table, key=len, reverse=True):
        if model.startswith(name + "-"):
            return table[name]
    return FALLBACK_PRICE_PER_MILLION


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, tuple[float, float]] | None = None,
) -> float:
    """What a call cost, from its token counts."""
    price_in, price_out = price_for(model, prices)
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


@dataclass(frozen=True)
class DaySpend:
    """One UTC day's AI spend."""

    usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def plus(self, usage: Usage) -> DaySpend:
        return DaySpend(
            usd=self.usd + usage.cost_usd,
            prompt_tokens=self.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self.completion_tokens + usage.completion_tokens,
            calls=self.calls + 1,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "usd": round(self.usd, 8),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "calls": self.calls,
        }

    @classmethod
    def from_json(cls, value: Any) -> DaySpend:
        if not isinstance(value, Mapping):
            return cls()
        return cls(
            usd=float(value.get("usd", 0.0)),
            prompt_tokens=int(value.get("prompt_tokens", 0)),
            completion_tokens=int(value.get("completion_tokens", 0)),
            calls=int(value.get("calls", 0)),
        )


class BudgetLedger(Protocol):
    """Where the day's spend is kept."""

    def spent(self, day: date) -> DaySpend: ...

    def add(self, day: date, usage: Usage) -> DaySpend: ...


class InMemoryBudgetLedger:
    """A ledger in a dict (pure tests, one process)."""

    def __init__(self) -> None:
        self._days: dict[date, DaySpend] = {}
        self._lock = threading.Lock()

    def spent(self, day: date) -> DaySpend:
        with self._lock:
            return self._days.get(day, DaySpend())

    def add(self, day: date, usage: Usage) -> DaySpend:
        with self._lock:
            total = self._days.get(day, DaySpend()).plus(usage)
            self._days[day] = total
            return total


class ConfigStore(Protocol):
    """The part of the durable store's bot_config repository the ledger needs."""

    def get_config(self, key: str, default: Any = None) -> Any: ...

    def update_config(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        actor: str,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> Any: ...


class BotConfigBudgetLedger:
    """The day's spend in bot_config (``ai_spend:<YYYY-MM-DD>``), via the durable store.

    Args:
        store: a :class:`xbot_assets.store.durable.DurableStore` (or anything with its
            ``get_config``/``update_config``).
        actor: who the audit log says changed the key.
        clock: the caller's clock, stamped on the bot_config row and its audit entry (the wall
            clock when None).
    """

    KEY_PREFIX: Final[str] = "ai_spend:"

    def __init__(
        self,
        store: ConfigStore,
        *,
        actor: str = "content.budget",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._actor = actor
        self._clock = clock

    def _key(self, day: date) -> str:
        return f"{self.KEY_PREFIX}{day.isoformat()}"

    def spent(self, day: date) -> DaySpend:
        return DaySpend.from_json(self._store.get_config(self._key(day)))

    def add(self, day: date, usage: Usage) -> DaySpend:
        # One atomic read-modify-write in the store (row lock), so processes charging at once
        # (runs, the hot path, CLI) never lose a charge and the daily cap cannot be overspent.
        total = self._store.update_config(
            self._key(day),
            lambda old: DaySpend.from_json(old).plus(usage).to_json(),
            actor=self._actor,
            reason="AI generation spend",
            now=self._clock() if self._clock is not None else None,
        )
        return DaySpend.from_json(total)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AIBudget:
    """The daily limit over a ledger: asks before a call, charges after it.

    Args:
        ledger: where spend is kept.
        limit_usd: the daily limit (``settings.ai_budget_usd_per_day``; 0 disables AI calls).
        clock: returns the current time (timezone-aware UTC); injectable for tests.
    """

    def __init__(
        self,
        ledger: BudgetLedger,
        limit_usd: float = DEFAULT_DAILY_BUDGET_USD,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if limit_usd < 0:
            raise ValueError("the AI budget must be >= 0 USD per day: fix ai_budget_usd_per_day")
        self.ledger = ledger
        self.limit_usd = float(limit_usd)
        self._clock = clock

    def today(self) -> date:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the budget clock must return timezone-aware UTC times")
        return now.astimezone(UTC).date()

    def spent_today(self) -> DaySpend:
        return self.ledger.spent(self.today())

    def remaining_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_today().usd)

    def allows(self, estimated_usd: float) -> bool:
        """Whether a call estimated to cost ``estimated_usd`` fits in what is left today."""
        return self.spent_today().usd + max(0.0, estimated_usd) <= self.limit_usd

    def charge(self, usage: Usage) -> DaySpend:
        """Record a call's real cost (also for answers that turned out unusable)."""
        return self.ledger.add(self.today(), usage)

    @classmethod
    def from_config(
        cls,
        ledger: BudgetLedger,
        *,
        settings_limit: float = DEFAULT_DAILY_BUDGET_USD,
        bot_config: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> AIBudget:
        """The limit from bot_config ``ai_budget_usd_per_day`` when set, else from settings."""
        limit = settings_limit
        if bot_config and bot_config.get("ai_budget_usd_per_day") is not None:
            try:
                limit = float(bot_config["ai_budget_usd_per_day"])
            except (TypeError, ValueError):
                raise ValueError(
                    "bot_config ai_budget_usd_per_day must be a number of USD: fix it in bot_config"
                ) from None
        return cls(ledger, limit, clock=clock)
