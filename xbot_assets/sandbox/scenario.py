"""Scenario files: the hidden truth of a simulated audience, loaded from YAML with a seed.

A scenario file (``scenarios/<name>.yaml``) may ``extends`` another one and override keys (deep
merge), so the four shipped scenarios are documented in one place (``default.yaml``) plus their
differences. The seed perturbs topic and format effects (``jitter``), so every seed is a different
but statistically similar audience, and the same seed always gives the same audience.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS, FORMATS, OTHER_TOPIC, TOPICS

SCENARIO_DIR = Path(__file__).parent / "scenarios"
SCENARIOS: tuple[str, ...] = ("default", "drift", "cold_start", "large")
"""The shipped scenario names."""

ALL_TOPICS: tuple[str, ...] = (*TOPICS, OTHER_TOPIC)
"""Topic index order of every array in :class:`AudienceParams`."""


class ScenarioError(ValueError):
    """A scenario name or file that cannot be loaded; the message says what to fix."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_scenario_dict(name_or_path: str | Path) -> dict[str, Any]:
    """The merged raw mapping of a scenario (name of a shipped scenario, or a YAML file path)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ScenarioError(
            f"unknown sandbox scenario {str(name_or_path)!r}: use one of {', '.join(SCENARIOS)} "
            "or the path of a scenario YAML file"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ScenarioError(
            f"scenario file {path} is not valid YAML{line}: fix it, or start from "
            f"{SCENARIO_DIR / 'default.yaml'}"
        ) from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"scenario file {path} must hold a mapping at the top level")
    parent = raw.pop("extends", None)
    if parent:
        parent_path = path.parent / f"{parent}.yaml"
        raw = _deep_merge(load_scenario_dict(parent_path), raw)
    return raw


@dataclass(frozen=True)
class DriftChange:
    """An abrupt change from ``at_day`` on: log-shifts per topic and per format (engagement)."""

    at_day: float
    topic_shift: np.ndarray
    format_shift: np.ndarray


@dataclass(frozen=True)
class AudienceParams:
    """The hidden truth of one scenario and seed, as numpy arrays indexed like the constants.

    Topic arrays follow :data:`ALL_TOPICS`, format arrays :data:`FORMATS`, metric arrays
    :data:`~xbot_assets.sandbox.features.ENGAGEMENT_METRICS`. ``raw`` keeps the merged YAML.
    """

    name: str
    seed: int
    raw: dict[str, Any]
    start: datetime
    timezone: str
    handle: str
    display_name: str
    followers: int
    following: int
    account_topics: tuple[str, ...]
    topic_effect: np.ndarray
    format_engagement: np.ndarray
    format_reach: np.ndarray
    format_mix: np.ndarray
    base_rates: np.ndarray
    hour_activity: np.ndarray
    weekday_activity: np.ndarray
    drift_changes: tuple[DriftChange, ...] = field(default_factory=tuple)
    trend_topic: np.ndarray = field(default_factory=lambda: np.zeros(len(ALL_TOPICS)))
    trend_format: np.ndarray = field(default_factory=lambda: np.zeros(len(FORMATS)))
    trend_max_days: float = 0.0

    def section(self, name: str) -> dict[str, Any]:
        """A raw sub-mapping of the scenario (``reach``, ``text``, ``fatigue``, ...)."""
        value = self.raw.get(name) or {}
        return dict(value)


def _topic_vector(values: dict[str, float] | None, where: str) -> np.ndarray:
    vector = np.zeros(len(ALL_TOPICS))
    for topic, value in (values or {}).items():
        if topic not in ALL_TOPICS:
            raise ScenarioError(f"{where}: unknown topic {topic!r}; use one of {ALL_TOPICS}")
        vector[ALL_TOPICS.index(topic)] = float(value)
    return vector


def _format_vector(values: dict[str, float] | None, where: str) -> np.ndarray:
    vector = np.zeros(len(FORMATS))
    for fmt, value in (values or {}).items():
        if fmt not in FORMATS:
            raise ScenarioError(f"{where}: unknown format {fmt!r}; use one of {FORMATS}")
        vector[FORMATS.index(fmt)] = float(value)
    return vector


def load_scenario(name_or_path: str | Path = "default", seed: int = 7) -> AudienceParams:
    """Load a scenario and draw its seeded hidden truth.

    Args:
        name_or_path: a shipped scenario name (see :data:`SCENARIOS`) or a YAML file path.
        seed: the audience seed; the same seed always yields the same parameters.

    Raises:
        ScenarioError: unknown scenario, or a file with unknown topics/formats/metrics.
    """
    raw = load_scenario_dict(name_or_path)
    rng = np.random.default_rng([int(seed), 0x5CE7A])
    jitter = float(raw.get("jitter", 0.0))
    topic_effect = _topic_vector(raw.get("topics"), "topics")
    topic_effect = topic_effect + rng.normal(0.0, jitter, len(ALL_TOPICS))
    formats = raw.get("formats") or {}
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ScenarioError(f"formats: unknown {sorted(unknown)}; use {FORMATS}")
    fmt_eng = np.array([float(formats.get(f, {}).get("engagement", 0.0)) for f in FORMATS])
    fmt_reach = np.array([float(formats.get(f, {}).get("reach", 0.0)) for f in FORMATS])
    fmt_eng = fmt_eng + rng.normal(0.0, jitter, len(FORMATS))
    fmt_reach = fmt_reach + rng.normal(0.0, jitter / 2, len(FORMATS))
    mix = np.ones((len(FORMATS), len(ENGAGEMENT_METRICS)))
    for i, fmt in enumerate(FORMATS):
        for metric, value in (formats.get(fmt, {}).get("mix") or {}).items():
            if metric not in ENGAGEMENT_METRICS:
                raise ScenarioError(f"formats.{fmt}.mix: unknown metric {metric!r}")
            mix[i, ENGAGEMENT_METRICS.index(metric)] = float(value)
    base = raw.get("base_rates") or {}
    missing = [m for m in ENGAGEMENT_METRICS if m not in base]
    if missing:
        raise ScenarioError(f"base_rates: missing {missing}")
    hours = np.asarray(raw["hour_activity"], dtype=float)
    weekdays = np.asarray(raw["weekday_activity"], dtype=float)
    if hours.shape != (24,) or weekdays.shape != (7,):
        raise ScenarioError("hour_activity needs 24 values and weekday_activity 7 (Mon..Sun)")
    drift = raw.get("drift") or {}
    changes = tuple(
        DriftChange(
            at_day=float(change["at_day"]),
            topic_shift=_topic_vector(change.get("topics"), "drift.changes.topics"),
            format_shift=_format_vector(change.get("formats"), "drift.changes.formats"),
        )
        for change in drift.get("changes") or []
    )
    trend = drift.get("trend_per_day") or {}
    account = raw.get("account") or {}
    account_topics = tuple(account.get("topics") or TOPICS[:4])
    for topic in account_topics:
        if topic not in TOPICS:
            raise ScenarioError(f"account.topics: unknown topic {topic!r}; use {TOPICS}")
    start = datetime.fromisoformat(str(raw.get("start", "2026-01-05T00:00:00+00:00")))
    if start.tzinfo is None:
        raise ScenarioError("start must carry a timezone, e.g. 2026-01-05T00:00:00+00:00")
    return AudienceParams(
        name=str(raw.get("name", Path(name_or_path).stem)),
        seed=int(seed),
        raw=raw,
        start=start,
        timezone=str(raw.get("timezone", "UTC")),
        handle=str(account.get("handle", "xbot_sandbox")),
        display_name=str(account.get("name", "xbot sandbox")),
        followers=int(account.get("followers", 2000)),
        following=int(account.get("following", 300)),
        account_topics=account_topics,
        topic_effect=topic_effect,
        format_engagement=fmt_eng,
        format_reach=fmt_reach,
        format_mix=mix,
        base_rates=np.array([float(base[m]) for m in ENGAGEMENT_METRICS]),
        hour_activity=hours,
        weekday_activity=weekdays,
        drift_changes=changes,
        trend_topic=_topic_vector(trend.get("topics"), "drift.trend_per_day.topics"),
        trend_format=_format_vector(trend.get("formats"), "drift.trend_per_day.formats"),
        trend_max_days=float(drift.get("trend_max_days", 0.0)),
    )
