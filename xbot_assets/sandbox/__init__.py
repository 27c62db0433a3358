"""The sandbox X: a simulated platform and audience that the whole bot runs against.

Imports nothing from the rest of xbot, so its hidden truth can never leak into a policy. The
benchmark-only :class:`~xbot_assets.sandbox.oracle.Oracle` is NOT re-exported here: import it
explicitly from ``xbot_assets.sandbox.oracle`` in benchmarks, never in bot code.
"""

from xbot_assets.sandbox.clock import SimClock
from xbot_assets.sandbox.errors import SandboxError
from xbot_assets.sandbox.features import TextFeatures, classify_text
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN, FAULTS, Account, Post, SandboxX
from xbot_assets.sandbox.scenario import SCENARIOS, ScenarioError, load_scenario
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS, FORMATS, HORIZONS, METRICS, TOPICS

__all__ = [
    "APP_BEARER_TOKEN",
    "ENGAGEMENT_METRICS",
    "FAULTS",
    "FORMATS",
    "HORIZONS",
    "METRICS",
    "SCENARIOS",
    "TOPICS",
    "Account",
    "Post",
    "SandboxError",
    "SandboxX",
    "ScenarioError",
    "SimClock",
    "TextFeatures",
    "classify_text",
    "load_scenario",
]
