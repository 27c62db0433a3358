"""The xbot code location: every definition lives in `xbot_assets/defs/`, loaded by Dagster."""

import warnings
from pathlib import Path

import dagster as dg

OWNERS_BETA_WARNING = r"Parameter `owners` of initializer `(Sensor|Schedule)Definition"
"""Dagster 1.13.27 passes ``owners=[]`` itself when it copies a sensor or schedule (to bind its
resources) and then warns, on every load, that the parameter is in beta. xbot sets no owners on
sensors or schedules, so the warning says nothing about this code; it is silenced at its source,
for that message only."""
BACKFILL_BETA_WARNING = r"Parameter `backfill_policy` of function `asset`"
"""``tweet_metrics`` chose ``BackfillPolicy.single_run()`` on purpose (one run for every account
a tick requests; see its definition), and Dagster 1.13.27 warns at every load that the parameter
is beta, above the first line of every ``xbot run``: the choice is made, the warning is noise."""


def silence_known_beta_warnings() -> None:
    """Silence the two beta warnings above, for their messages only; call before importing
    ``xbot_assets.defs`` modules (the warnings fire when a decorator runs)."""
    warnings.filterwarnings("ignore", message=OWNERS_BETA_WARNING, category=dg.BetaWarning)
    warnings.filterwarnings("ignore", message=BACKFILL_BETA_WARNING, category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    silence_known_beta_warnings()
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
