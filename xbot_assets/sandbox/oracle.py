"""The benchmark oracle: the hidden truth of an arm at any time. For benchmarks ONLY.

Nothing the bot runs may import this module (the sandbox platform does not either): a policy that
saw the oracle would be cheating. ``benchmarks/learning.py`` uses it to sample outcomes fast and to
compute regret against the best arm. The oracle returns rates, not a reward; the reward is
defined once in ``xbot_assets/learning/rewards.py``.

The oracle describes a well-formed post (optimal length, no hashtags, no link, no fatigue, no
spam) from an account with the scenario's initial followers; the platform adds text, fatigue and
follower growth on top of the same model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from xbot_assets.sandbox.model import AudienceModel
from xbot_assets.sandbox.scenario import ALL_TOPICS, AudienceParams, load_scenario
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS, FORMATS, METRICS


class Oracle:
    """Expected outcomes and a fast sampler for every arm ``"<format>:<topic>"``.

    Args:
        scenario: a scenario name, YAML path, or already loaded :class:`AudienceParams`.
        seed: the audience seed (same seed as the sandbox gives the same truth).
        epoch: when the drift clock starts (default: the scenario's ``start``); ``at`` arguments
            are measured from it.
        followers: the account size assumed for reach (default: the scenario's initial followers).

    Attributes:
        arms: ``"format:topic"`` for every format x account topic (format-major order).
        metrics: :data:`~xbot_assets.sandbox.features.METRICS` (``impressions`` first), the
            column order of every matrix this class returns.
    """

    def __init__(
        self,
        scenario: str | Path | AudienceParams = "default",
        seed: int = 7,
        *,
        epoch: datetime | None = None,
        followers: int | None = None,
    ) -> None:
        self.params = (
            scenario if isinstance(scenario, AudienceParams) else load_scenario(scenario, seed)
        )
        self.model = AudienceModel(self.params)
        self.epoch = epoch or self.params.start
        self.followers = self.params.followers if followers is None else int(followers)
        self.tz = ZoneInfo(self.params.timezone)
        self.formats: tuple[str, ...] = FORMATS
        self.topics: tuple[str, ...] = self.params.account_topics
        self.arms: list[str] = [f"{f}:{t}" for f in FORMATS for t in self.topics]
        self.metrics: tuple[str, ...] = METRICS
        self._arm_format = np.array([FORMATS.index(a.split(":")[0]) for a in self.arms])
        self._arm_topic = np.array([ALL_TOPICS.index(a.split(":")[1]) for a in self.arms])
        self._effects_cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    # --- helpers ---------------------------------------------------------------------------
    def arm_index(self, arm: str) -> int:
        """Index of ``"format:topic"`` in :attr:`arms` (ValueError names the valid arms)."""
        try:
            return self.arms.index(arm)
        except ValueError:
            raise ValueError(f"unknown arm {arm!r}; arms are {self.arms}") from None

    def elapsed_days(self, at: datetime | None) -> float:
        """Days since the drift epoch (0 for ``None``)."""
        if at is None:
            return 0.0
        return (at - self.epoch).total_seconds() / 86400.0

    def local_slot(self, at: datetime) -> tuple[int, int]:
        """``(hour, weekday)`` of ``at`` in the audience's time zone (weekday 0 = Monday)."""
        local = at.astimezone(self.tz)
        return local.hour, local.weekday()

    def _indices(self, fmt: str, topic: str) -> tuple[int, int]:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
        if topic not in ALL_TOPICS:
            raise ValueError(f"unknown topic {topic!r}; use one of {ALL_TOPICS}")
        return FORMATS.index(fmt), ALL_TOPICS.index(topic)

    # --- expectations ------------------------------------------------------------------------
    def expected_rates_matrix(
        self, hour: int, weekday: int, at: datetime | None = None
    ) -> np.ndarray:
        """``[len(arms), len(metrics)]``: expected impressions, then each per-impression rate."""
        n = len(self.arms)
        hours = np.full(n, int(hour))
        weekdays = np.full(n, int(weekday))
        days = np.full(n, self.elapsed_days(at))
        rates = self.model.rates(self._arm_topic, self._arm_format, hours, weekdays, days)
        median = self.model.median_impressions(
            self.followers, self._arm_topic, self._arm_format, hours, weekdays, days
        )
        expected = self.model.expected_impressions(median)
        return np.column_stack([expected, rates])

    def expected_weighted_rates(
        self, weights: Mapping[str, float], hour: int, weekday: int, at: datetime | None = None
    ) -> np.ndarray:
        """``Σ weights[m] × rate[m]`` for every arm: an expected reward, for the caller's weights.

        The weights come from the caller (``xbot_assets.learning.rewards.REWARD_WEIGHTS``), so
        the reward stays defined in one place; unknown metric names raise ValueError.
        """
        unknown = sorted(set(weights) - set(ENGAGEMENT_METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; use {ENGAGEMENT_METRICS}")
        matrix = self.expected_rates_matrix(hour, weekday, at)
        vector = np.array([float(weights.get(m, 0.0)) for m in ENGAGEMENT_METRICS])
        return np.asarray(matrix[:, 1:] @ vector)

    def expected_rates(
        self, format: str, topic: str, hour: int, weekday: int, at: datetime | None = None
    ) -> dict[str, float]:
        """Expected impressions and the per-impression rate of every engagement metric.

        Args:
            format: one of the six formats.
            topic: a topic (any recognised topic, not only the account's).
            hour: local hour 0-23 in the scenario's time zone.
            weekday: local weekday, 0 = Monday.
            at: the time (drift); ``None`` means the epoch.
        """
        f, t = self._indices(format, topic)
        idx = (np.array([t]), np.array([f]), np.array([hour]), np.array([weekday]))
        days = np.array([self.elapsed_days(at)])
        rates = self.model.rates(*idx, days)[0]
        median = self.model.median_impressions(self.followers, *idx, days)
        out = {"impressions": float(self.model.expected_impressions(median)[0])}
        out.update({m: float(r) for m, r in zip(ENGAGEMENT_METRICS, rates, strict=True)})
        return out

    # --- sampling ----------------------------------------------------------------------------
    def sample_batch(
        self,
        arm_idx: np.ndarray | Sequence[int],
        hour: np.ndarray | Sequence[int] | int,
        weekday: np.ndarray | Sequence[int] | int,
        at: datetime | Sequence[datetime] | None = None,
        rng: np.random.Generator | None = None,
        *,
        days: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sample final (72h) outcomes of many posts at once.

        Args:
            arm_idx: arm indices into :attr:`arms`, shape ``[n]``.
            hour: local hour(s), scalar or ``[n]``.
            weekday: local weekday(s), scalar or ``[n]``.
            at: one time for all, or one per post (drift); ignored when ``days`` is given.
            rng: the generator (pass your own for reproducible benchmarks).
            days: elapsed days since the epoch, ``[n]`` (faster than datetimes).

        Returns:
            int64 array ``[n, len(metrics)]`` in :attr:`metrics` order (impressions first).
        """
        rng = rng or np.random.default_rng()
        arms = np.asarray(arm_idx, dtype=np.int64)
        n = arms.shape[0]
        hours = np.broadcast_to(np.asarray(hour, dtype=np.int64), (n,))
        weekdays = np.broadcast_to(np.asarray(weekday, dtype=np.int64), (n,))
        if days is None:
            if at is None or isinstance(at, datetime):
                days = np.full(n, self.elapsed_days(at))
            else:
                days = np.array([self.elapsed_days(a) for a in at])
        topic, fmt = self._arm_topic[arms], self._arm_format[arms]
        quality = self.model.draw_quality(rng, n)
        rates = self.model.rates(topic, fmt, hours, weekdays, days, quality=quality)
        median = self.model.median_impressions(
            self.followers, topic, fmt, hours, weekdays, days, quality=quality
        )
        impressions = self.model.draw_impressions(rng, median)
        counts = self.model.draw_counts(rng, impressions, rates)
        return np.column_stack([impressions, counts])

    def sample(
        self,
        format: str,
        topic: str,
        hour: int,
        weekday: int,
        at: datetime | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, int]:
        """Sample one post's final (72h) outcome: ``{metric: count}`` for every metric."""
        f, t = self._indices(format, topic)
        rng = rng or np.random.default_rng()
        model = self.model
        topic_eff, fmt_eff = self._effects_cached(self.elapsed_days(at))
        content = float(topic_eff[t] + fmt_eff[f])
        timing = model.hour_strength * float(model.log_hour[hour]) + model.weekday_strength * float(
            model.log_weekday[weekday]
        )
        z_quality, z_reach, z_viral = rng.standard_normal(3)
        s = model.quality_sigma
        quality = math.exp(s * z_quality - s * s / 2)
        pos = math.exp(content + timing) * quality
        neg = math.exp(-model.coupling * content) * quality ** (-model.coupling)
        rates = np.minimum(
            model.mix_base[f] * (model.pos_mask * pos + model.neg_mask * neg), model.max_rate
        )
        audience = (
            model.reach_base + model.reach_per_follower * self.followers**model.follower_exponent
        )
        median = (
            audience
            * float(self.params.hour_activity[hour] * self.params.weekday_activity[weekday])
            * math.exp(float(self.params.format_reach[f]))
            * (math.exp(content) * quality) ** model.engagement_gamma
        )
        noise = math.exp(model.reach_sigma * z_reach)
        if rng.random() < model.viral_probability:
            noise *= model.viral_median * math.exp(model.viral_sigma * z_viral)
        impressions = round(median * noise)
        counts = rng.binomial(impressions, rates)
        out = {"impressions": int(impressions)}
        out.update({m: int(c) for m, c in zip(ENGAGEMENT_METRICS, counts.tolist(), strict=True)})
        return out

    def _effects_cached(self, days: float) -> tuple[np.ndarray, np.ndarray]:
        cached = self._effects_cache.get(days)
        if cached is None:
            if len(self._effects_cache) > 4096:
                self._effects_cache.clear()
            cached = self._effects_scalar(days)
            self._effects_cache[days] = cached
        return cached

    def _effects_scalar(self, days: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`AudienceModel.effects_at` for one day, without broadcasting overhead."""
        p = self.params
        topic, fmt = p.topic_effect, p.format_engagement
        for change in p.drift_changes:
            if days >= change.at_day:
                topic = topic + change.topic_shift
                fmt = fmt + change.format_shift
        if p.trend_max_days > 0:
            elapsed = min(max(days, 0.0), p.trend_max_days)
            topic = topic + elapsed * p.trend_topic
            fmt = fmt + elapsed * p.trend_format
        return topic, fmt
