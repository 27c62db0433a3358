"""The factored model's posterior and Thompson sampling over it.

:class:`FactoredPosterior` is a Gaussian over the effects (and, for the count model, the
negative rates and their coupling), with how it was fitted; it round-trips through JSON
(:meth:`FactoredPosterior.to_dict` / :meth:`FactoredPosterior.from_dict`, :data:`MODEL_VERSION`),
draws coefficients (:meth:`FactoredPosterior.draw`) and values design rows
(:meth:`FactoredPosterior.value`: the one valuation every choice uses). :class:`FactoredThompson`
draws once, values every arm at the slot and takes the argmax. The posterior is fitted by
:func:`~xbot_assets.learning.factored.fit_factored`.

Pure: numpy only, no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from xbot_assets.learning import counts
from xbot_assets.learning.bandits import argmax_shares
from xbot_assets.learning.design import TOPIC_HALF_LIVES_H, Design, PastPost

MODEL_VERSION = "2"
"""2: the count model (``kind``, ``extras``) since 6 December 2026; a saved version 1 file is
refused (the decision path then acts on the prior until ``factored_posteriors`` refits)."""


@dataclass
class FactoredPosterior:
    """Gaussian posterior over the effects, and how it was fitted (JSON-able via to_dict)."""

    names: list[str]
    formats: list[str]
    topics: list[str]
    timezone: str
    objective: str
    mean: np.ndarray
    cov: np.ndarray
    prior_sd: np.ndarray
    sigma0_sq: float
    kappa: float
    posts: int
    winsor: tuple[float, float] = (-math.inf, math.inf)
    horizons_used: dict[str, int] = field(default_factory=dict)
    fitted_at: str = ""
    exploration: float = 1.0
    """Scale of the Thompson draws' spread (FitConfig.exploration, at this posterior's posts)."""
    format_exploration: float | None = None
    """Spread scale of the format effects and format negative rates (None: ``exploration``)."""
    opening_format_posts: int = 0
    """Until every format has this many of the account's posts, Thompson sampling chooses only
    among the least-posted formats' arms (FitConfig.opening_format_posts; 0: off)."""
    components: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per reward part (:func:`~xbot_assets.learning.objective.reward_components`): its mean,
    fitted noise SD and prior scale."""
    kind: str = "reward"
    """``reward``: linear on the reward (an arm's value is ``row . beta``); ``counts``: the
    count model (:mod:`~xbot_assets.learning.counts`), valued by :meth:`value`."""
    extras: dict[str, Any] = field(default_factory=dict)
    """What the count model's :meth:`value` needs besides ``theta`` (JSON-able)."""
    version: str = MODEL_VERSION
    _chol: np.ndarray | None = field(default=None, repr=False)

    @property
    def cold_start(self) -> bool:
        """True while the posterior is the prior (no post has contributed evidence)."""
        return self.posts == 0

    @property
    def design(self) -> Design:
        interactions = any(n.startswith("arm=") for n in self.names)
        half_lives = [
            float(n[len("topic_recent_") : -1]) for n in self.names if n.startswith("topic_recent_")
        ]
        return Design(
            self.formats, self.topics, self.timezone, interactions=interactions,
            topic_half_lives=half_lives or TOPIC_HALF_LIVES_H,
        )  # fmt: skip

    def chol(self) -> np.ndarray:
        if self._chol is None:
            jitter = 1e-12 * float(np.trace(self.cov)) / len(self.cov)
            self._chol = np.linalg.cholesky(self.cov + jitter * np.eye(len(self.cov)))
        return self._chol

    def draw(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Coefficient draws: shape ``[p]`` (n None) or ``[n, p]``; their spread around the
        mean is ``exploration`` x the posterior's (1: plain Thompson sampling)."""
        z = rng.standard_normal(len(self.mean) if n is None else (n, len(self.mean)))
        return self.mean + self.draw_scale() * (z @ self.chol().T)

    def draw_scale(self) -> np.ndarray:
        """Per-parameter spread scale of the draws: ``exploration``, or ``format_exploration``
        on the format effects (``format=...``, ``negative:...:format=...``)."""
        scale = np.full(len(self.mean), self.exploration)
        if self.format_exploration is not None:
            is_format = [n.startswith("format=") or ":format=" in n for n in self.names]
            scale[np.asarray(is_format, dtype=bool)] = self.format_exploration
        return scale

    def value(self, rows: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Expected reward of design ``rows`` under parameters ``theta`` (the mean or draws:
        ``[P]`` -> ``[A]``, ``[n, P]`` -> ``[n, A]``); the one valuation every choice uses."""
        if self.kind == "counts":
            return counts.value(rows, theta, self.extras)
        return np.asarray(theta @ rows.T)

    def value_summary(self, rows: np.ndarray, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """(value at the posterior mean, posterior SD) of each row's expected reward; the SD of
        the count model from ``n`` seeded plain draws."""
        if self.kind != "counts":
            sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", rows, self.cov, rows), 0.0))
            return rows @ self.mean, sd
        z = np.random.default_rng(0).standard_normal((n, len(self.mean)))
        values = self.value(rows, self.mean + z @ self.chol().T)
        return self.value(rows, self.mean), values.std(axis=0)

    def effects(self) -> dict[str, dict[str, float]]:
        """Posterior mean and SD of each named effect."""
        sd = np.sqrt(np.maximum(np.diag(self.cov), 0.0))
        return {
            n: {"mean": float(m), "sd": float(s)}
            for n, m, s in zip(self.names, self.mean, sd, strict=True)
        }

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.winsor
        return {
            "version": self.version,
            "names": self.names,
            "formats": self.formats,
            "topics": self.topics,
            "timezone": self.timezone,
            "objective": self.objective,
            "mean": self.mean.tolist(),
            "cov": self.cov.tolist(),
            "prior_sd": self.prior_sd.tolist(),
            "sigma0_sq": self.sigma0_sq,
            "kappa": self.kappa,
            "posts": self.posts,
            "winsor": [lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None],
            "horizons_used": self.horizons_used,
            "fitted_at": self.fitted_at,
            "components": self.components,
            "exploration": self.exploration,
            "format_exploration": self.format_exploration,
            "opening_format_posts": self.opening_format_posts,
            "cold_start": self.cold_start,
            "kind": self.kind,
            "extras": self.extras,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FactoredPosterior:
        if data.get("version") != MODEL_VERSION:
            raise ValueError(
                f"factored posterior version {data.get('version')!r} != {MODEL_VERSION}: "
                "re-materialise factored_posteriors"
            )
        lo, hi = data.get("winsor") or [None, None]
        return cls(
            names=list(data["names"]),
            formats=list(data["formats"]),
            topics=list(data["topics"]),
            timezone=str(data["timezone"]),
            objective=str(data["objective"]),
            mean=np.asarray(data["mean"], dtype=float),
            cov=np.asarray(data["cov"], dtype=float),
            prior_sd=np.asarray(data["prior_sd"], dtype=float),
            sigma0_sq=float(data["sigma0_sq"]),
            kappa=float(data["kappa"]),
            posts=int(data["posts"]),
            winsor=(-math.inf if lo is None else lo, math.inf if hi is None else hi),
            horizons_used=dict(data.get("horizons_used", {})),
            fitted_at=str(data.get("fitted_at", "")),
            components=dict(data.get("components", {})),
            exploration=float(data.get("exploration", 1.0)),
            format_exploration=(
                None
                if data.get("format_exploration") is None
                else float(data["format_exploration"])
            ),
            opening_format_posts=int(data.get("opening_format_posts", 0)),
            kind=str(data.get("kind", "reward")),
            extras=dict(data.get("extras") or {}),
        )


@dataclass
class ArmChoice:
    """One Thompson-sampling choice: the arm, its propensity, and every arm's sampled value."""

    arm: str
    index: int
    propensity: float
    sampled: dict[str, float]
    beta: np.ndarray


class FactoredThompson:
    """Thompson sampling over a :class:`FactoredPosterior` (draw effects, score arms, argmax).

    Implements the policy's ``ArmChooser`` protocol for one slot: :meth:`prepare` fixes the slot
    and history, then :meth:`select` / :meth:`choice_probabilities` act on those arms.
    """

    def __init__(
        self,
        posterior: FactoredPosterior,
        arms: Sequence[str],
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.posterior = posterior
        self.arms = list(arms)
        self.rng = rng or np.random.default_rng()
        self.design = posterior.design
        self.rows: np.ndarray | None = None
        self.at: datetime | None = None
        self.history: Sequence[PastPost] = ()
        self.last_sample: np.ndarray = np.full(len(self.arms), np.nan)
        self.last_beta: np.ndarray = posterior.mean
        self.eligible: np.ndarray | None = None
        """The arms this slot's choice is limited to (the balanced opening's formats), or None."""

    def prepare(self, at: datetime, history: Sequence[PastPost]) -> None:
        pairs = [tuple(a.split(":", 1)) for a in self.arms]
        self.rows = self.design.arm_rows(at, history, pairs)  # type: ignore[arg-type]
        self.at, self.history = at, history
        self.eligible = None
        if self.posterior.opening_format_posts > 0:
            posted = Counter(past.format for past in history)
            fewest = min(posted[f] for f, _ in pairs)
            if fewest < self.posterior.opening_format_posts:
                self.eligible = np.array([posted[f] == fewest for f, _ in pairs])

    def _rows(self) -> np.ndarray:
        if self.rows is None:
            raise RuntimeError("call prepare(at, history) before choosing an arm")
        return self.rows

    def select(self) -> int:
        beta = self.posterior.draw(self.rng)
        values = self.posterior.value(self._rows(), beta)
        self.last_sample, self.last_beta = values, beta
        if self.eligible is not None:
            return int(np.where(self.eligible, values, -np.inf).argmax())
        return int(values.argmax())

    def choice_probabilities(
        self, n_samples: int = 1000, available: np.ndarray | None = None
    ) -> np.ndarray:
        """P(each arm is the argmax) under the posterior (Monte Carlo, its own generator); with
        ``available``, the argmax among those arms."""
        rng = np.random.default_rng(int(self.rng.integers(2**32)))
        draws = self.posterior.value(self._rows(), self.posterior.draw(rng, n_samples))
        if self.eligible is not None:
            eligible = self.eligible if available is None else self.eligible & available
            if eligible.any():
                available = eligible
        return argmax_shares(draws, available)

    def score_texts(self, fmt: str, topic: str, texts: Sequence[str]) -> np.ndarray:
        """The sampled reward of each candidate text of the chosen arm (same coefficient draw)."""
        if self.at is None:
            raise RuntimeError("call prepare(at, history) before scoring candidates")
        recent = self.design.recent_words(self.at, self.history)
        rows = np.vstack(
            [
                self.design.row(fmt, topic, self.at, self.history, t, recent_words=recent)
                for t in texts
            ]
        )
        return self.posterior.value(rows, self.last_beta)
