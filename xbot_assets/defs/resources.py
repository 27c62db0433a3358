"""Resources every asset shares. Each layer's own resources live beside its assets in `defs/`.

Resource keys are unique across `defs/` (Dagster merges the modules). Settings are read when a
run starts, never at import, so loading the code location needs no environment at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from xbot_assets.config import Settings, load_settings

if TYPE_CHECKING:
    from xbot_assets.engine.runtime import Runtime


OWNERS = ("team:xbot",)
"""Who answers for every asset in the catalog (each asset's page shows it); a test keeps every
asset owned."""


class XbotSettings(dg.ConfigurableResource):
    """The process settings, loaded from the environment and `.env` when a run first needs them."""

    def get(self) -> Settings:
        return load_settings()


class XbotRuntime(dg.ConfigurableResource):
    """Picks what the engine acts through for APP_ENV: durable store, sandbox or X, poster,
    X reader, generator and clock (``xbot_assets.engine.runtime.build_runtime``).

    ``simulated_now`` (ISO time) puts a run on the simulated clock: the main job sets it per
    run; the daemon leaves it unset and runs on the wall clock.
    """

    simulated_now: str | None = None

    def now(self) -> datetime:
        """The current time of this run: simulated in the main job, else the deployment's clock
        (the wall clock, or the rehearsal clock of CLOCK_SPEED/CLOCK_EPOCH)."""
        if self.simulated_now:
            return datetime.fromisoformat(self.simulated_now).astimezone(UTC)
        from xbot_assets.store.timebase import settings_clock

        return settings_clock(load_settings())()

    def for_account(self, settings: Settings, handle: str | None = None) -> Runtime:
        """The engine's implementations for one account (the ``accounts`` partition key)."""
        from xbot_assets.engine.runtime import build_runtime

        simulated = self.now() if self.simulated_now else None
        return build_runtime(settings, handle=handle, now=simulated)


defs = dg.Definitions(resources={"xbot_settings": XbotSettings(), "xbot_runtime": XbotRuntime()})
