"""The audience model: per-impression rates and heavy-tailed reach, vectorised with numpy.

One model serves the platform (one post at a time, with its text features, fatigue and spam
context) and the benchmark oracle (many arms at once, a well-formed post without fatigue), so the
two can never disagree about the truth.

Rates: ``rate[m] = base[m] * mix[format, m] * exp(content + timing) * quality`` for positive
engagements, where ``content`` is the topic and format effect (drifting over time in ``drift``)
plus text effects, and ``timing`` the hour/weekday activity; negative feedback and reports move
the other way: ``exp(-coupling * content) * spam multipliers``.

Reach: ``median impressions = (base + per_follower * followers^exponent) * activity(hour, weekday)
* exp(format reach + link/spam penalties) * (exp(content) * quality)^gamma``; the realised count is
lognormal around that median, times a rare viral multiplier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xbot_assets.sandbox.scenario import AudienceParams
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_METRICS

NEGATIVE_METRICS: tuple[str, ...] = ("negative_feedback", "reports")
_NEG_MASK = np.array([m in NEGATIVE_METRICS for m in ENGAGEMENT_METRICS])
_POS_MASK = ~_NEG_MASK


@dataclass(frozen=True, slots=True)
class PostContext:
    """Everything besides topic/format/time that moves one post's outcome.

    Attributes:
        engagement_log: text and fatigue effects on engagement (log scale, 0 = none).
        reach_log: link and spam effects on reach (log scale).
        nf_multiplier: multiplier on negative feedback and reports (spam, duplicates, hashtags).
    """

    engagement_log: float = 0.0
    reach_log: float = 0.0
    nf_multiplier: float = 1.0


NEUTRAL_CONTEXT = PostContext()


class AudienceModel:
    """Vectorised rates and reach of one scenario's hidden truth (see the module docstring)."""

    def __init__(self, params: AudienceParams) -> None:
        self.params = params
        reach = params.section("reach")
        self.reach_base = float(reach.get("base", 60.0))
        self.reach_per_follower = float(reach.get("per_follower", 0.12))
        self.follower_exponent = float(reach.get("follower_exponent", 1.0))
        self.reach_sigma = float(reach.get("sigma", 0.85))
        self.engagement_gamma = float(reach.get("engagement_gamma", 0.8))
        self.viral_probability = float(reach.get("viral_probability", 0.0))
        self.viral_median = float(reach.get("viral_median", 10.0))
        self.viral_sigma = float(reach.get("viral_sigma", 0.8))
        self.link_penalty = float(reach.get("link_penalty", 0.0))
        raw = params.raw
        self.quality_sigma = float(raw.get("quality_sigma", 0.3))
        self.coupling = float(raw.get("negative_feedback_coupling", 0.8))
        self.max_rate = float(raw.get("max_rate", 0.35))
        self.hour_strength = float(raw.get("hour_engagement_strength", 0.3))
        self.weekday_strength = float(raw.get("weekday_engagement_strength", 0.3))
        self.mix_base = params.format_mix * params.base_rates[None, :]
        self.log_hour = np.log(params.hour_activity)
        self.log_weekday = np.log(params.weekday_activity)
        self.neg_mask = _NEG_MASK
        self.pos_mask = _POS_MASK
        # E[q^gamma] for quality q = exp(N(-s^2/2, s^2)); used by expected impressions.
        s2 = self.quality_sigma**2
        g = self.engagement_gamma
        self.quality_reach_mean = math.exp(-g * s2 / 2 + g * g * s2 / 2)
        self.viral_factor = 1.0 + self.viral_probability * (
            self.viral_median * math.exp(self.viral_sigma**2 / 2) - 1.0
        )
        self.lognormal_mean = math.exp(self.reach_sigma**2 / 2)

    # --- hidden effects over time ----------------------------------------------------------
    def effects_at(self, days: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Topic and format engagement effects at ``days`` since the epoch (drift applied).

        Returns:
            ``(topic_effect[n, T], format_engagement[n, F])`` for an array of ``n`` days, or
            1-D arrays for a scalar.
        """
        p = self.params
        d = np.asarray(days, dtype=float)
        topic = np.broadcast_to(p.topic_effect, (*d.shape, p.topic_effect.size)).copy()
        fmt = np.broadcast_to(p.format_engagement, (*d.shape, p.format_engagement.size)).copy()
        for change in p.drift_changes:
            on = (d >= change.at_day)[..., None]
            topic += on * change.topic_shift
            fmt += on * change.format_shift
        if p.trend_max_days > 0:
            elapsed = np.clip(d, 0.0, p.trend_max_days)[..., None]
            topic += elapsed * p.trend_topic
            fmt += elapsed * p.trend_format
        return topic, fmt

    def content_log(
        self, topic_idx: np.ndarray, format_idx: np.ndarray, days: np.ndarray
    ) -> np.ndarray:
        """Topic + format engagement effect (log scale) for matching arrays of posts."""
        topic_eff, fmt_eff = self.effects_at(days)
        if topic_eff.ndim == 1:
            return np.asarray(topic_eff[topic_idx] + fmt_eff[format_idx])
        rows = np.arange(topic_eff.shape[0])
        return np.asarray(topic_eff[rows, topic_idx] + fmt_eff[rows, format_idx])

    # --- rates and reach -------------------------------------------------------------------
    def rates(
        self,
        topic_idx: np.ndarray,
        format_idx: np.ndarray,
        hour: np.ndarray,
        weekday: np.ndarray,
        days: np.ndarray,
        *,
        engagement_log: np.ndarray | float = 0.0,
        nf_multiplier: np.ndarray | float = 1.0,
        quality: np.ndarray | float = 1.0,
    ) -> np.ndarray:
        """Per-impression rates ``[n, len(ENGAGEMENT_METRICS)]`` of matching arrays of posts."""
        content = self.content_log(topic_idx, format_idx, days) + engagement_log
        timing = (
            self.hour_strength * self.log_hour[hour]
            + self.weekday_strength * (self.log_weekday[weekday])
        )
        q = np.asarray(quality, dtype=float)
        pos = np.exp(content + timing) * q
        neg = np.exp(-self.coupling * content) * np.asarray(nf_multiplier) * q ** (-self.coupling)
        mult = np.where(self.pos_mask, np.asarray(pos)[..., None], np.asarray(neg)[..., None])
        return np.minimum(self.mix_base[format_idx] * mult, self.max_rate)

    def median_impressions(
        self,
        followers: np.ndarray | float,
        topic_idx: np.ndarray,
        format_idx: np.ndarray,
        hour: np.ndarray,
        weekday: np.ndarray,
        days: np.ndarray,
        *,
        engagement_log: np.ndarray | float = 0.0,
        reach_log: np.ndarray | float = 0.0,
        quality: np.ndarray | float = 1.0,
    ) -> np.ndarray:
        """Median impressions (before lognormal noise and virality) of matching arrays of posts."""
        audience = self.reach_base + self.reach_per_follower * np.power(
            np.maximum(np.asarray(followers, dtype=float), 0.0), self.follower_exponent
        )
        activity = self.params.hour_activity[hour] * self.params.weekday_activity[weekday]
        content = self.content_log(topic_idx, format_idx, days) + engagement_log
        boost = np.power(np.exp(content) * np.asarray(quality, dtype=float), self.engagement_gamma)
        reach = np.exp(self.params.format_reach[format_idx] + reach_log)
        return np.asarray(audience * activity * reach * boost)

    def expected_impressions(self, median_at_unit_quality: np.ndarray) -> np.ndarray:
        """Mean impressions given the median at quality 1 (quality, lognormal and viral means)."""
        return median_at_unit_quality * (
            self.quality_reach_mean * self.lognormal_mean * self.viral_factor
        )

    # --- sampling ----------------------------------------------------------------------------
    def draw_quality(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Per-post content quality: lognormal with mean 1."""
        s = self.quality_sigma
        return np.exp(rng.normal(-s * s / 2, s, size))

    def draw_impressions(self, rng: np.random.Generator, median: np.ndarray) -> np.ndarray:
        """Realised impressions around ``median``: lognormal noise and rare viral multipliers."""
        size = median.shape[0]
        noise = np.exp(self.reach_sigma * rng.standard_normal(size))
        viral = rng.random(size) < self.viral_probability
        multiplier = np.where(
            viral, self.viral_median * np.exp(self.viral_sigma * rng.standard_normal(size)), 1.0
        )
        return np.rint(median * noise * multiplier).astype(np.int64)

    def draw_counts(
        self, rng: np.random.Generator, impressions: np.ndarray, rates: np.ndarray
    ) -> np.ndarray:
        """Engagement counts ``[n, M]``: binomial draws of each rate over the impressions."""
        return rng.binomial(impressions[:, None], rates).astype(np.int64)
