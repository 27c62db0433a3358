"""Pick the content implementations for a run from the settings (one place, per APP_ENV).

The Dagster resources in ``defs/`` call these at run time: the generator (offline unless the
settings resolve to ``openai``), its daily budget kept in bot_config when a durable store is
given, the guard configuration from bot_config, and the moderation layer when a key is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xbot_assets.content.base import Generator
from xbot_assets.content.budget import AIBudget, BotConfigBudgetLedger, InMemoryBudgetLedger
from xbot_assets.content.offline import OfflineGenerator
from xbot_assets.content.safety import GuardConfig, Moderator, OpenAIModerator

if TYPE_CHECKING:
    from xbot_assets.config import Settings
    from xbot_assets.store.durable import DurableStore


def _bot_config(store: DurableStore | None) -> Mapping[str, Any]:
    return store.all_config() if store is not None else {}


def build_budget(settings: Settings, store: DurableStore | None = None) -> AIBudget:
    """The daily AI budget: ledger in bot_config when a store is given, else in memory."""
    ledger = BotConfigBudgetLedger(store) if store is not None else InMemoryBudgetLedger()
    return AIBudget.from_config(
        ledger, settings_limit=settings.ai_budget_usd_per_day, bot_config=_bot_config(store)
    )


def build_generator(settings: Settings, store: DurableStore | None = None) -> Generator:
    """The generator the settings ask for (``settings.resolved_generator``).

    Raises:
        ValueError: ``openai`` without an API key (the message says what to set).
    """
    if settings.resolved_generator == "openai":
        from xbot_assets.content.openai_generator import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings, build_budget(settings, store))
    return OfflineGenerator()


def build_moderator(settings: Settings, generator: Generator | None = None) -> Moderator | None:
    """The OpenAI moderation layer when a key is set (an extra layer; the guard runs anyway).

    Reuses the OpenAI generator's client when given one, so both share retries and timeout.
    """
    key = settings.openai_api_key
    if key is None:
        return None
    shared = getattr(generator, "client", None) if generator is not None else None
    if shared is not None and getattr(generator, "name", "") == "openai":
        return OpenAIModerator(shared)
    import openai

    client = openai.OpenAI(
        api_key=key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=int(getattr(settings, "openai_max_retries", 2)),
        timeout=float(getattr(settings, "openai_timeout_s", 30.0)),
    )
    return OpenAIModerator(client)


def build_guard_config(store: DurableStore | None = None) -> GuardConfig:
    """The guard configuration from bot_config keys (``guard.max_hashtags``, ...)."""
    return GuardConfig.from_mapping(_bot_config(store))
