"""Resources every asset shares. Each layer's own resources live beside its assets in `defs/`.

Resource keys are unique across `defs/` (Dagster merges the modules). Settings are read when a
run starts, never at import, so loading the code location needs no environment at all.
"""

from __future__ import annotations

import dagster as dg

from xbot_assets.config import Settings, load_settings


class XbotSettings(dg.ConfigurableResource):
    """The process settings, loaded from the environment and `.env` when a run first needs them."""

    def get(self) -> Settings:
        return load_settings()


defs = dg.Definitions(resources={"xbot_settings": XbotSettings()})
