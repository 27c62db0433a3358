"""The horizon model: what a partial snapshot's counts will be once the post is 72 h old.

Posteriors learn from snapshots >= :data:`MIN_HORIZON_HOURS` old, projected to their final
counts by :class:`HorizonModel` (ratios of sums over completed posts), so they do not wait for
the 72 h snapshot.

Pure: numpy only, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbot_assets.learning.rewards import GROWTH_WEIGHTS, REWARD_WEIGHTS

MIN_HORIZON_HOURS = 6.0
"""Snapshots younger than this are too noisy to learn from (1 h holds ~30 % of the counts)."""
DEFAULT_HORIZON_SHARE: dict[str, float] = {"1h": 0.30, "6h": 0.75, "24h": 0.985, "72h": 1.0}
"""Share of the final (72 h) counts a snapshot holds, before enough completed posts fit it.
Measured on completed posts in the sandbox review (issue 16: 75 % at 6 h, 98.5 % at 24 h)."""
HORIZON_HOURS: dict[str, float] = {"1h": 1.0, "6h": 6.0, "24h": 24.0, "72h": 72.0}


@dataclass
class HorizonModel:
    """Share of the final counts a snapshot of each horizon holds, per metric.

    Fitted as ratios of sums over completed posts (those with both the partial and the 72 h
    snapshot); :data:`DEFAULT_HORIZON_SHARE` until at least ``min_posts`` completed posts exist.
    """

    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    fitted_from: dict[str, int] = field(default_factory=dict)
    min_posts: int = 10

    def share(self, horizon: str, metric: str) -> float:
        if horizon == "72h":
            return 1.0
        per_metric = self.shares.get(horizon, {})
        return float(per_metric.get(metric, DEFAULT_HORIZON_SHARE.get(horizon, 1.0)))

    def project(self, metrics: Mapping[str, Any], horizon: str) -> dict[str, float]:
        """Expected final counts from a snapshot at ``horizon``."""
        return {
            m: float(v or 0) / max(self.share(horizon, m), 1e-6)
            for m, v in metrics.items()
            if isinstance(v, int | float | np.integer | np.floating) or v is None
        }

    @classmethod
    def fit(
        cls, pairs: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]], min_posts: int = 10
    ) -> HorizonModel:
        """From ``(horizon, partial_metrics, final_metrics)`` of completed posts."""
        model = cls(min_posts=min_posts)
        by_horizon: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
        for horizon, partial, final in pairs:
            by_horizon.setdefault(horizon, []).append((partial, final))
        for horizon, rows in by_horizon.items():
            if len(rows) < min_posts or horizon == "72h":
                continue
            shares: dict[str, float] = {}
            for metric in {"impressions", *REWARD_WEIGHTS, *GROWTH_WEIGHTS}:
                num = sum(float(p.get(metric) or 0) for p, _ in rows)
                den = sum(float(f.get(metric) or 0) for _, f in rows)
                if den > 0 and num > 0:
                    shares[metric] = min(num / den, 1.0)
            model.shares[horizon] = shares
            model.fitted_from[horizon] = len(rows)
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"shares": self.shares, "fitted_from": self.fitted_from}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HorizonModel:
        return cls(
            shares=dict(data.get("shares", {})), fitted_from=dict(data.get("fitted_from", {}))
        )
