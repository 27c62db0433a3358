"""The factored Bayesian policy: one Gaussian linear model of the per-post reward, sampled by
Thompson sampling over every arm at the slot.

Why factored: 24 independent arms each see two or three posts a month, so each arm's posterior
stays wide (or, with a strong fitted prior, wrongly narrow). A model with additive format, topic,
hour and weekday effects shares evidence across arms (every ``thread:*`` post informs the thread
effect), and its recency covariates let it see what the audience punishes: the same topic or
format again soon, and text similar to the last posts.

The model (all effects additive on the reward scale)::

    reward_i = x_i . beta + e_i,   e_i ~ Normal(0, v_i),   beta ~ Normal(0, diag(prior_sd^2))
    v_i = (sigma0^2 + kappa / impressions_i) * 2^(age_i / half_life)

``x_i``: intercept; format and topic one-hots; local-hour harmonics and weekend; recency covariates
from the account's own history before the post (decayed counts of same-topic posts at 12 h and
48 h half-lives, "topic not seen for 7 days", decayed same-format count); text covariates of the
post (max word-Jaccard similarity to the last week's posts, near-duplicate flag, length, hashtags,
link, number). ``v_i`` is the calibrated noise model: a content-quality term ``sigma0^2`` plus a
counting term ``kappa / impressions`` (fewer impressions, noisier rate), both fitted by method of
moments on the residuals; old posts are down-weighted (half-life) so drifting tastes are tracked.

The reward is :func:`reward_of` (signed, X-weighted engagements per impression; or the ``growth``
objective), **winsorised** at median +/- 4 robust SD (:func:`winsorise`): a viral post counts as
a very good post, not as forty. The same function gives the reward everywhere (fit, policy,
reports). Partial snapshots (>= 6 h old) are projected to their final counts by
:class:`HorizonModel`, so posteriors do not wait for the 72 h snapshot.

Two models share this design, the posterior type and the Thompson sampler (``FitConfig.model``):
``counts`` (the default since 6 December 2026, :mod:`~xbot_assets.learning.counts`) learns the
same effects on the log-rate scale from every engagement count with impressions as exposure and
values an arm as the expected X-weighted reward (:meth:`FactoredPosterior.value`), which learns
arms faster than the reward's noise allows (benchmarks/README.md, "The count model");
``reward_parts`` is the linear model of the reward described above, kept for comparison.

Pure: numpy only, no I/O. The sandbox's truth is never read here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from xbot_assets.learning.bandits import argmax_shares
from xbot_assets.learning.counts import NEG_PRIOR_EVENTS, _posterior  # one Gaussian update
from xbot_assets.learning.rewards import GROWTH_WEIGHTS, REWARD_WEIGHTS

Objective = Literal["engagement", "growth"]
OBJECTIVES: tuple[str, ...] = ("engagement", "growth")
MODEL_VERSION = "2"
"""2: the count model (``kind``, ``extras``) since 6 December 2026; a saved version 1 file is
refused (the decision path then acts on the prior until ``factored_posteriors`` refits)."""

TOPIC_HALF_LIVES_H: tuple[float, ...] = (12.0, 48.0)
FORMAT_HALF_LIFE_H = 24.0
NOVELTY_WINDOW = timedelta(days=7)
NEAR_DUPLICATE = 0.5
"""Word-Jaccard similarity from which a text counts as a near-duplicate of a recent post."""
WINSOR_K = 4.0
"""Winsorise rewards at median +/- WINSOR_K robust standard deviations (1.4826 x MAD)."""
DEFAULT_SCALE: dict[str, float] = {"engagement": 0.05, "growth": 0.001}
"""Typical reward magnitude per objective, used to set priors before any data (cold start)."""
MIN_HORIZON_HOURS = 6.0
"""Snapshots younger than this are too noisy to learn from (1 h holds ~30 % of the counts)."""
DEFAULT_HORIZON_SHARE: dict[str, float] = {"1h": 0.30, "6h": 0.75, "24h": 0.985, "72h": 1.0}
"""Share of the final (72 h) counts a snapshot holds, before enough completed posts fit it.
Measured on completed posts in the sandbox review (issue 16: 75 % at 6 h, 98.5 % at 24 h)."""
HORIZON_HOURS: dict[str, float] = {"1h": 1.0, "6h": 6.0, "24h": 24.0, "72h": 72.0}

_WORD = re.compile(r"[a-z0-9']+")
_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_LINK = re.compile(r"https?://", re.IGNORECASE)
_NUMBER = re.compile(r"\d")


# --- the objective ---------------------------------------------------------------------------


def objective_weights(objective: str) -> dict[str, float]:
    """The metric weights of an objective (engagement: X's heavy-ranker weights)."""
    if objective == "engagement":
        return dict(REWARD_WEIGHTS)
    if objective == "growth":
        return dict(GROWTH_WEIGHTS)
    raise ValueError(f"unknown objective {objective!r}: use one of {OBJECTIVES}")


def reward_of(metrics: Mapping[str, Any], objective: str = "engagement") -> float | None:
    """Signed weighted engagements per impression (None when nobody saw the post yet)."""
    impressions = float(metrics.get("impressions") or 0)
    if impressions <= 0:
        return None
    weights = objective_weights(objective)
    total = sum(w * float(metrics.get(m) or 0) for m, w in weights.items())
    return total / impressions


def reward_components(
    metrics: Mapping[str, Any], objective: str = "engagement"
) -> dict[str, float] | None:
    """:func:`reward_of` split into parts that sum to it: every positive-weight metric together
    (``positive``), and each negative-weight metric on its own (``negative_feedback``,
    ``reports``). None when nobody saw the post yet.

    Why: a report weighs -369 and arrives about once in 400 impressions, so one report moves a
    post's reward by about -1; the rare negative counts carry most of a post's reward noise
    (SD ~0.1 each vs ~0.05 for all positive metrics together) but little of the difference
    between arms. Fitted apart, each part gets its own noise and a prior scaled to its own
    mean, so the rare parts stop drowning the arm effects the positive part measures.
    """
    impressions = float(metrics.get("impressions") or 0)
    if impressions <= 0:
        return None
    weights = objective_weights(objective)
    out = {"positive": 0.0}
    for metric, weight in weights.items():
        value = weight * float(metrics.get(metric) or 0) / impressions
        if weight >= 0:
            out["positive"] += value
        else:
            out[metric] = value
    return out


def component_names(objective: str) -> tuple[str, ...]:
    """The reward parts of an objective (see :func:`reward_components`)."""
    negative = tuple(m for m, w in objective_weights(objective).items() if w < 0)
    return ("positive", *negative)


def winsorise(values: np.ndarray, k: float = WINSOR_K) -> tuple[np.ndarray, tuple[float, float]]:
    """Values limited to median +/- k robust SD; also returns the bounds.

    Not clipping at 0: negative rewards (negative feedback, reports) keep their sign. With fewer
    than 5 values nothing is changed (no robust scale yet).
    """
    v = np.asarray(values, dtype=float)
    if v.size < 5:
        return v.copy(), (-math.inf, math.inf)
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    if mad <= 0:
        return v.copy(), (-math.inf, math.inf)
    lo, hi = med - k * mad, med + k * mad
    return np.clip(v, lo, hi), (lo, hi)


# --- the horizon model -----------------------------------------------------------------------


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


# --- history and features --------------------------------------------------------------------


@dataclass(frozen=True)
class PastPost:
    """One posted root post of the account, as the bot knows it.

    Attributes:
        posted_at: when it went out (aware).
        format, topic: its arm.
        text: the root's text.
        metrics: its latest snapshot's counts (None: no snapshot yet).
        horizon: that snapshot's horizon (``6h``, ``24h``, ``72h``, ...).
    """

    posted_at: datetime
    format: str
    topic: str
    text: str
    metrics: Mapping[str, Any] | None = None
    horizon: str | None = None


def words_of(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def max_similarity(words: frozenset[str], others: Sequence[frozenset[str]]) -> float:
    """Largest word-Jaccard similarity of ``words`` to any of ``others``."""
    if not words:
        return 0.0
    best = 0.0
    for other in others:
        if other:
            best = max(best, len(words & other) / len(words | other))
    return best


def text_covariates(text: str, recent_words: Sequence[frozenset[str]]) -> np.ndarray:
    """[max similarity, near-duplicate, length/280, (length/280)^2, hashtags, link, number]."""
    sim = max_similarity(words_of(text), recent_words)
    length = min(len(text), 560) / 280.0
    return np.array(
        [
            sim,
            float(sim >= NEAR_DUPLICATE),
            length,
            length * length,
            min(len(_HASHTAG.findall(text)), 5),
            float(bool(_LINK.search(text))),
            float(bool(_NUMBER.search(text))),
        ]
    )


TEXT_NAMES = ("similarity", "near_duplicate", "length", "length_sq", "hashtags", "link", "number")
TIME_NAMES = ("hour_sin", "hour_cos", "hour_sin2", "hour_cos2", "weekend")
RECENCY_NAMES = ("topic_recent_12h", "topic_recent_48h", "topic_novel", "format_recent_24h")


class Design:
    """Builds model rows for arms at a time, against the account's history before that time."""

    def __init__(
        self,
        formats: Sequence[str],
        topics: Sequence[str],
        timezone: str = "UTC",
        *,
        interactions: bool = False,
        topic_half_lives: Sequence[float] = TOPIC_HALF_LIVES_H,
    ):
        self.formats, self.topics = list(formats), list(topics)
        self.tz = ZoneInfo(timezone)
        self.interactions = interactions
        if len(topic_half_lives) != 2 or min(topic_half_lives) <= 0:
            raise ValueError(
                f"topic_half_lives {tuple(topic_half_lives)}: give two positive hours, "
                "e.g. (12, 48)"
            )
        self.topic_half_lives = tuple(float(h) for h in topic_half_lives)
        recency = [f"topic_recent_{h:g}h" for h in self.topic_half_lives] + list(RECENCY_NAMES[2:])
        pairs = [f"{f}:{t}" for f in self.formats for t in self.topics] if interactions else []
        self.names = (
            ["intercept"]
            + [f"format={f}" for f in self.formats]
            + [f"topic={t}" for t in self.topics]
            + list(TIME_NAMES)
            + recency
            + list(TEXT_NAMES)
            + [f"arm={a}" for a in pairs]
        )
        self.n_features = len(self.names)
        self.groups = (
            ["intercept"]
            + ["format"] * len(self.formats)
            + ["topic"] * len(self.topics)
            + ["time"] * len(TIME_NAMES)
            + ["recency"] * len(RECENCY_NAMES)
            + ["text"] * len(TEXT_NAMES)
            + ["arm"] * len(pairs)
        )
        self.text_start = 1 + len(self.formats) + len(self.topics) + len(TIME_NAMES)
        self.text_start += len(RECENCY_NAMES)

    def time_block(self, at: datetime) -> np.ndarray:
        local = at.astimezone(self.tz)
        angle = 2 * math.pi * (local.hour + local.minute / 60.0) / 24.0
        return np.array(
            [
                math.sin(angle),
                math.cos(angle),
                math.sin(2 * angle),
                math.cos(2 * angle),
                float(local.weekday() >= 5),
            ]
        )

    def recency_block(
        self, at: datetime, history: Sequence[PastPost]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per topic ``[recent_12h, recent_48h, novel]`` and per format ``[recent_24h]``."""
        topic_block = np.zeros((len(self.topics), 3))
        topic_block[:, 2] = 1.0
        format_block = np.zeros(len(self.formats))
        t_index = {t: i for i, t in enumerate(self.topics)}
        f_index = {f: i for i, f in enumerate(self.formats)}
        for past in reversed(history):
            age = at - past.posted_at
            if age > NOVELTY_WINDOW:
                break
            if age.total_seconds() < 0:
                continue
            hours = age.total_seconds() / 3600.0
            ti = t_index.get(past.topic)
            if ti is not None:
                topic_block[ti, 0] += 0.5 ** (hours / self.topic_half_lives[0])
                topic_block[ti, 1] += 0.5 ** (hours / self.topic_half_lives[1])
                topic_block[ti, 2] = 0.0
            fi = f_index.get(past.format)
            if fi is not None:
                format_block[fi] += 0.5 ** (hours / FORMAT_HALF_LIFE_H)
        return topic_block, format_block

    @staticmethod
    def recent_words(at: datetime, history: Sequence[PastPost]) -> list[frozenset[str]]:
        out = []
        for past in reversed(history):
            if at - past.posted_at > NOVELTY_WINDOW:
                break
            if past.posted_at <= at:
                out.append(words_of(past.text))
        return out

    def row(
        self,
        fmt: str,
        topic: str,
        at: datetime,
        history: Sequence[PastPost],
        text: str | None = None,
        *,
        recent_words: Sequence[frozenset[str]] | None = None,
    ) -> np.ndarray:
        """One post's row (history: the account's posts before ``at``, oldest first)."""
        rows = self.arm_rows(at, history, [(fmt, topic)])
        if text is not None:
            words = recent_words if recent_words is not None else self.recent_words(at, history)
            t0 = self.text_start
            rows[0, t0 : t0 + len(TEXT_NAMES)] = text_covariates(text, words)
        return rows[0]

    def arm_rows(
        self, at: datetime, history: Sequence[PastPost], arms: Sequence[tuple[str, str]]
    ) -> np.ndarray:
        """Rows for each ``(format, topic)`` at ``at``; text covariates at a fresh text's (0)."""
        topic_block, format_block = self.recency_block(at, history)
        time = self.time_block(at)
        nf, nt = len(self.formats), len(self.topics)
        rows = np.zeros((len(arms), self.n_features))
        rows[:, 0] = 1.0
        base = 1 + nf + nt
        rows[:, base : base + len(TIME_NAMES)] = time
        rec = base + len(TIME_NAMES)
        for i, (fmt, topic) in enumerate(arms):
            if fmt in self.formats:
                fi = self.formats.index(fmt)
                rows[i, 1 + fi] = 1.0
                rows[i, rec + 3] = format_block[fi]
            if topic in self.topics:
                ti = self.topics.index(topic)
                rows[i, 1 + nf + ti] = 1.0
                rows[i, rec : rec + 3] = topic_block[ti]
            else:
                rows[i, rec + 2] = 1.0
            if self.interactions and fmt in self.formats and topic in self.topics:
                pair = self.formats.index(fmt) * nt + self.topics.index(topic)
                rows[i, self.text_start + len(TEXT_NAMES) + pair] = 1.0
        # A typical fresh text: the generator's median length (about 150 of 280), no hashtags.
        text0 = rec + len(RECENCY_NAMES)
        rows[:, text0 + 2] = 0.55
        rows[:, text0 + 3] = 0.55**2
        return rows


# --- the posterior ---------------------------------------------------------------------------


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
    components: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per reward part (:func:`reward_components`): its mean, fitted noise SD and prior scale."""
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
            from xbot_assets.learning.counts import value

            return value(rows, theta, self.extras)
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
            kind=str(data.get("kind", "reward")),
            extras=dict(data.get("extras") or {}),
        )


@dataclass
class FitConfig:
    """Knobs of :func:`fit_factored` (defaults are what the loop benchmark measures)."""

    objective: str = "engagement"
    min_horizon_hours: float = MIN_HORIZON_HOURS
    half_life_days: float = 45.0
    """Evidence half-life: a post this old counts half (tracks drifting tastes)."""
    effect_prior_scale: float = 0.5
    """Prior SD of a format/topic effect, as a fraction of the typical reward."""
    model: str = "counts"
    """``counts``: arm effects from every engagement count (:mod:`~xbot_assets.learning.counts`,
    the default since 6 December 2026); ``reward_parts``: the linear model of the reward in
    three parts (positive, negative feedback, reports), kept as the comparison."""
    count_prior_sd: dict[str, float] = field(default_factory=dict)
    """Overrides of the count model's log-scale prior SD per design group
    (:data:`~xbot_assets.learning.counts.LOG_PRIOR_SD`)."""
    count_prior_mean: dict[str, float] = field(default_factory=dict)
    """Prior means of named effects in the count model (log scale; 0 when not given)."""
    arm_interactions: bool = False
    """Add a format x topic effect per arm, shrunk towards 0 (the additive model) by a prior
    of ``interaction_prior_scale`` x the typical reward: the audience's effects multiply."""
    interaction_prior_scale: float = 0.25
    exploration: float = 0.25
    """Scale of the Thompson draws' spread around the posterior mean (1: plain Thompson
    sampling). Loop benchmark, default, 30 days, seeds 0-3: the reward-parts model measured
    best at 0.5 (+0.006 per post over 1.0; 0.0637 at 0.25 against 0.0713 at 0.5); the count
    model, whose posterior is better informed, at 0.25 (0.0779, against 0.0731 at 0.5 and 0.0620
    at 0.1: too greedy locks onto an early leader). With ~120 posts a month, plain draws spend
    too many posts on arms the posterior already ranks low."""
    exploration_late: float | None = None
    """Experiment (off: None): the spread scale falls linearly from ``exploration`` at 0 fitted
    posts to this at ``exploration_posts`` (explore while the arms are unknown, exploit once
    they are); benchmarks/README.md "Closing the gap" has its figures."""
    exploration_posts: int = 120
    topic_half_lives: tuple[float, ...] = TOPIC_HALF_LIVES_H
    neg_prior_events: float = NEG_PRIOR_EVENTS
    """Count model: pseudo-events pulling a format's negative rate towards the pooled rate
    (:data:`~xbot_assets.learning.counts.NEG_PRIOR_EVENTS`)."""
    """Half-lives (hours) of the two decayed same-topic exposure covariates (the fatigue)."""
    format_exploration: float | None = None
    """Experiment (off: None): a separate spread scale for the format effects and the formats'
    negative rates, so rarely posted formats are still tried (how_to got 2 posts of 120)."""

    def exploration_at(self, posts: int) -> float:
        """The draws' spread scale after ``posts`` fitted posts (the schedule, if any)."""
        if self.exploration_late is None:
            return self.exploration
        share = min(max(posts / max(self.exploration_posts, 1), 0.0), 1.0)
        return self.exploration + share * (self.exploration_late - self.exploration)


def _prior_sd(design: Design, scale: float, config: FitConfig) -> np.ndarray:
    sd = np.empty(design.n_features)
    for i, group in enumerate(design.groups):
        if group == "intercept":
            sd[i] = 4.0 * scale
        elif group in ("format", "topic"):
            sd[i] = config.effect_prior_scale * scale
        elif group == "arm":
            sd[i] = config.interaction_prior_scale * scale
        elif group == "time":
            sd[i] = 0.3 * scale
        else:  # recency and text covariates: one unit (a recent post, full similarity)
            sd[i] = 0.5 * scale
    return sd


def training_rows(
    history: Sequence[PastPost],
    design: Design,
    *,
    now: datetime,
    objective: str,
    horizon_model: HorizonModel,
    min_horizon_hours: float = MIN_HORIZON_HOURS,
    cache: dict[Any, np.ndarray] | None = None,
    counts: dict[str, list[Any]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(X, reward parts ``[n, parts]``, impressions, age in days, horizons used) of the posts
    usable at ``now``; the parts are :func:`component_names` (they sum to the reward).

    ``counts``, when given, receives per post the projected counts of the objective's metrics
    (``counts``), projected impressions (``impressions``) and the observed share of the
    projected counts (``observed``), for the count model (:mod:`~xbot_assets.learning.counts`).
    """
    names = component_names(objective)
    metrics = list(objective_weights(objective))
    xs, ys, imps, ages = [], [], [], []
    used: dict[str, int] = {}
    for i, post in enumerate(history):
        if post.metrics is None or post.horizon is None:
            continue
        if HORIZON_HOURS.get(post.horizon, 0.0) < min_horizon_hours:
            continue
        if now - post.posted_at < timedelta(hours=min_horizon_hours):
            continue
        projected = horizon_model.project(post.metrics, post.horizon)
        parts = reward_components(projected, objective)
        if parts is None:
            continue
        key = (post.posted_at, post.text, post.format, post.topic)
        row = cache.get(key) if cache is not None else None
        if row is None:
            row = design.row(post.format, post.topic, post.posted_at, history[:i], post.text)
            if cache is not None:
                cache[key] = row
        xs.append(row)
        ys.append([parts[c] for c in names])
        imps.append(max(float(post.metrics.get("impressions") or 0), 1.0))
        if counts is not None:
            raw = sum(float(post.metrics.get(m) or 0) for m in metrics)
            proj = sum(float(projected.get(m) or 0) for m in metrics)
            share = raw / proj if proj > 0 else horizon_model.share(post.horizon, metrics[0])
            counts.setdefault("counts", []).append([float(projected.get(m) or 0) for m in metrics])
            counts.setdefault("impressions", []).append(float(projected.get("impressions") or 0))
            counts.setdefault("observed", []).append(min(max(share, 0.05), 1.0))
        ages.append((now - post.posted_at).total_seconds() / 86400.0)
        used[post.horizon] = used.get(post.horizon, 0) + 1
    p = design.n_features
    return (
        np.array(xs).reshape(-1, p),
        np.array(ys, dtype=float).reshape(-1, len(names)),
        np.array(imps, dtype=float),
        np.array(ages, dtype=float),
        used,
    )


def _fit_part(
    x: np.ndarray,
    y: np.ndarray,
    imps: np.ndarray,
    decay: np.ndarray,
    design: Design,
    config: FitConfig,
    *,
    rare: bool,
) -> dict[str, Any]:
    """Posterior of one reward part, with its noise ``sigma0^2 + kappa / impressions`` fitted
    by method of moments on the residuals.

    The positive part's prior scale is its robust spread or level, as for a whole reward. A
    rare negative part's effects are multiplicative on a small mean rate, so its prior scale is
    its mean (not its noise: a report's -1 is noise, not a difference between arms).
    """
    n = len(y)
    floor_scale = DEFAULT_SCALE[config.objective] / 5
    y_w, bounds = winsorise(y)
    if rare:
        scale = float(max(abs(np.mean(y_w)), floor_scale))
    else:
        scale = float(max(abs(np.median(y_w)), np.std(y_w), floor_scale))
    prior_sd = _prior_sd(design, scale, config)
    prior_mean = np.zeros(design.n_features)
    prior_mean[0] = float(np.mean(y_w) if rare else np.median(y_w))
    sigma0_sq = max(float(np.var(y_w)) if n > 1 else scale**2, (0.1 * scale) ** 2)
    kappa = 0.0
    mean, cov = prior_mean, np.diag(prior_sd**2)
    for _ in range(3):
        var = (sigma0_sq + kappa / imps) * decay
        mean, cov = _posterior(x, y_w, var, prior_sd, prior_mean)
        if n < 10:
            break
        resid_sq = (y_w - x @ mean) ** 2
        basis = np.column_stack([np.ones(n), 1.0 / imps])
        coef, *_ = np.linalg.lstsq(basis, resid_sq, rcond=None)
        floor = max(0.05 * float(np.mean(resid_sq)), (0.1 * scale) ** 2)
        sigma0_sq = max(float(coef[0]), floor)
        kappa = max(float(coef[1]), 0.0)
        # Leverage: the residuals are smaller than the noise by about (n - p_eff) / n.
        p_eff = float(np.trace(cov @ ((x.T / var) @ x)))
        inflate = n / max(n - p_eff, 1.0)
        sigma0_sq *= inflate
        kappa *= inflate
    return {
        "mean": mean, "cov": cov, "prior_sd": prior_sd, "sigma0_sq": sigma0_sq,
        "kappa": kappa, "bounds": bounds, "scale": scale,
    }  # fmt: skip


def fit_factored(
    history: Sequence[PastPost],
    *,
    now: datetime,
    formats: Sequence[str],
    topics: Sequence[str],
    timezone: str = "UTC",
    config: FitConfig | None = None,
    horizon_model: HorizonModel | None = None,
    cache: dict[Any, np.ndarray] | None = None,
) -> FactoredPosterior:
    """The posterior given every post whose latest snapshot is >= ``min_horizon_hours`` old.

    Args:
        history: the account's posted roots, oldest first (posts without metrics still count
            for the recency covariates of later posts).
        now: the fit time; posts younger than the minimum horizon are not evidence yet.
        cache: optional dict reused across refits (a past post's row never changes).
    """
    config = config or FitConfig()
    objective_weights(config.objective)  # validates the name
    horizon_model = horizon_model or HorizonModel()
    if config.model not in ("counts", "reward_parts"):
        raise ValueError(f"unknown model {config.model!r}: use counts or reward_parts")
    design = Design(
        formats, topics, timezone, interactions=config.arm_interactions,
        topic_half_lives=config.topic_half_lives,
    )  # fmt: skip
    count_data: dict[str, list[Any]] = {}
    x, y, imps, ages, used = training_rows(
        history,
        design,
        now=now,
        objective=config.objective,
        horizon_model=horizon_model,
        min_horizon_hours=config.min_horizon_hours,
        cache=cache,
        counts=count_data,
    )
    n = len(y)
    if config.model == "counts":
        return _fit_count_model(
            design, x, count_data, ages, used, now=now, config=config, timezone=timezone
        )
    if not n:
        # The cold start: the prior of the whole reward at the objective's typical scale.
        scale = DEFAULT_SCALE[config.objective]
        prior_sd = _prior_sd(design, scale, config)
        prior_mean = np.zeros(design.n_features)
        prior_mean[0] = scale
        mean, cov = prior_mean, np.diag(prior_sd**2)
        sigma0_sq, kappa, bounds = scale**2, 0.0, (-math.inf, math.inf)
        components: dict[str, dict[str, float]] = {}
    else:
        # One model per reward part (reward_components): the posterior of the reward is the sum
        # of the parts' independent Gaussian posteriors, so draws and arm scores stay linear.
        decay = 2.0 ** (ages / config.half_life_days)
        mean = np.zeros(design.n_features)
        cov = np.zeros((design.n_features, design.n_features))
        prior_sd = np.zeros(design.n_features)
        sigma0_sq, kappa, bounds, components = 0.0, 0.0, (-math.inf, math.inf), {}
        for j, part in enumerate(component_names(config.objective)):
            fitted = _fit_part(x, y[:, j], imps, decay, design, config, rare=part != "positive")
            mean += fitted["mean"]
            cov += fitted["cov"]
            prior_sd = np.sqrt(prior_sd**2 + fitted["prior_sd"] ** 2)
            sigma0_sq += fitted["sigma0_sq"]
            kappa += fitted["kappa"]
            if part == "positive":
                bounds = fitted["bounds"]
            components[part] = {
                "mean_reward": round(float(np.mean(y[:, j])), 6),
                "noise_sd": round(math.sqrt(fitted["sigma0_sq"]), 6),
                "prior_scale": round(fitted["scale"], 6),
            }
    return FactoredPosterior(
        names=design.names,
        formats=list(formats),
        topics=list(topics),
        timezone=timezone,
        objective=config.objective,
        mean=np.asarray(mean, dtype=float),
        cov=np.asarray(cov, dtype=float),
        prior_sd=prior_sd,
        sigma0_sq=float(sigma0_sq),
        kappa=float(kappa),
        posts=n,
        winsor=bounds,
        horizons_used=used,
        fitted_at=now.isoformat(),
        components=components,
        exploration=config.exploration_at(n),
        format_exploration=config.format_exploration,
    )


def _fit_count_model(
    design: Design,
    x: np.ndarray,
    data: Mapping[str, list[Any]],
    ages: np.ndarray,
    used: dict[str, int],
    *,
    now: datetime,
    config: FitConfig,
    timezone: str,
) -> FactoredPosterior:
    """The count model's posterior (:mod:`~xbot_assets.learning.counts`) as a FactoredPosterior."""
    from xbot_assets.learning.counts import fit_counts

    weights = objective_weights(config.objective)
    metrics = list(weights)
    n = len(x)
    fit = fit_counts(
        x,
        np.array(data.get("counts", []), dtype=float).reshape(n, len(metrics)),
        np.maximum(np.array(data.get("impressions", []), dtype=float), 1.0),
        np.array(data.get("observed", []), dtype=float),
        2.0 ** (ages / config.half_life_days),
        groups=design.groups,
        names=design.names,
        formats=design.formats,
        weights=weights,
        metrics=metrics,
        prior_sd_overrides=config.count_prior_sd,
        prior_means=config.count_prior_mean,
        neg_prior_events=config.neg_prior_events,
    )
    return FactoredPosterior(
        names=fit.names,
        formats=list(design.formats),
        topics=list(design.topics),
        timezone=timezone,
        objective=config.objective,
        mean=fit.mean,
        cov=fit.cov,
        prior_sd=fit.prior_sd,
        sigma0_sq=fit.sigma0_sq,
        kappa=0.0,
        posts=n,
        horizons_used=used,
        fitted_at=now.isoformat(),
        components=fit.components,
        exploration=config.exploration_at(n),
        format_exploration=config.format_exploration,
        kind="counts",
        extras=fit.extras,
    )


# --- Thompson sampling over it ---------------------------------------------------------------


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

    def prepare(self, at: datetime, history: Sequence[PastPost]) -> None:
        pairs = [tuple(a.split(":", 1)) for a in self.arms]
        self.rows = self.design.arm_rows(at, history, pairs)  # type: ignore[arg-type]
        self.at, self.history = at, history

    def _rows(self) -> np.ndarray:
        if self.rows is None:
            raise RuntimeError("call prepare(at, history) before choosing an arm")
        return self.rows

    def select(self) -> int:
        beta = self.posterior.draw(self.rng)
        values = self.posterior.value(self._rows(), beta)
        self.last_sample, self.last_beta = values, beta
        return int(values.argmax())

    def choice_probabilities(
        self, n_samples: int = 1000, available: np.ndarray | None = None
    ) -> np.ndarray:
        """P(each arm is the argmax) under the posterior (Monte Carlo, its own generator); with
        ``available``, the argmax among those arms."""
        rng = np.random.default_rng(int(self.rng.integers(2**32)))
        draws = self.posterior.value(self._rows(), self.posterior.draw(rng, n_samples))
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
