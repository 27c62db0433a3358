"""The xbot code location: every definition lives in `xbot_assets/defs/`, loaded by Dagster."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
