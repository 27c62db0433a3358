"""A new account's prior from what other accounts learnt: the population prior.

Why: one account's month (about 120 posts) cannot learn what every account's audience shares.
A post's reward is dominated by noise (per-post quality, rare negative events), so effects of
0.05-0.1 on the log scale, like a text's form (length, hashtags, a number, similarity to recent
posts), stay inside the posterior's spread for months, and the candidate ranker acts on noise.
Those effects come from the platform and its readers, not from one account's followers, so they
are learnt once across many accounts' posts and handed to a new account as its prior's centre,
with a narrow spread (:data:`DEFAULT_GROUP_SD`). Its own posts still move it.

What is in a prior (fitted by :func:`fit_population_prior`, stored as JSON):

* ``effect_means``: the pooled count-model fit's log-scale effects of the chosen design groups
  (by default only ``text``: the loop benchmark measured that part, benchmarks/README.md,
  "A prior from other accounts");
* ``group_sd``: the prior SD of those groups in the new account's fit;
* ``negative_log_ratio`` and ``mix_share`` (optional, ``--with-formats``): each format's
  negative-feedback and report rate relative to the account's pooled rate, and its mix of
  positive metrics, from the posts' final (72 h) counts.

Pure apart from :func:`load_prior`/:func:`save_prior` (one JSON file); the store is read by the
caller (``engine/history.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from xbot_assets.learning.account_policy import AccountHistory, fit_accounts
from xbot_assets.learning.factored import FitConfig
from xbot_assets.learning.objective import objective_weights

PRIOR_VERSION = 1
DEFAULT_GROUPS: tuple[str, ...] = ("text",)
"""Design groups a prior centres by default: the text's form, which every account's readers
share (what the loop benchmark measured as the gain; topics and formats are an account's own)."""
DEFAULT_GROUP_SD: dict[str, float] = {"text": 0.1}
"""Prior SD (log scale) around the population's effects: 0.1 is about +-10 % of the engagement
rate, so an account whose readers differ moves off the prior within a few dozen posts, while
noise of single posts does not (the model's default for text is 0.3, centred on 0)."""
FORMAT_PRIOR_EVENTS = 8.0
"""Pseudo-events behind a prior's per-format negative rates (the model's own default, 2, pulls
towards the account's pooled rate; the population knows each format's excess better)."""
KNOWN_GROUPS = ("format", "topic", "time", "recency", "text")


class PriorError(ValueError):
    """A population prior that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class PopulationPrior:
    """What other accounts learnt, as the centre of a new account's count-model prior."""

    objective: str
    effect_means: dict[str, float]
    group_sd: dict[str, float]
    negative_log_ratio: dict[str, float] = field(default_factory=dict)
    """``metric:format`` -> log of the format's rate over the account's pooled rate."""
    mix_share: dict[str, list[float]] = field(default_factory=dict)
    """format -> share of each positive metric of the objective (its weights' order)."""
    negative_prior_events: float = FORMAT_PRIOR_EVENTS
    source: dict[str, Any] = field(default_factory=dict)
    """Where it came from: accounts, posts, fitted at (shown in the posterior's metadata)."""
    version: int = PRIOR_VERSION

    def fit_config(self, config: FitConfig) -> FitConfig:
        """``config`` with this prior's centres and spreads (explicit settings of ``config``
        win, so an experiment can still override one effect)."""
        if config.objective != self.objective:
            raise PriorError(
                f"the population prior was fitted for the {self.objective!r} objective, the "
                f"account learns {config.objective!r}: fit one for it with `xbot prior fit "
                f"--out FILE` under LEARNING_OBJECTIVE={config.objective}, or unset "
                "LEARNING_PRIOR_FILE"
            )
        changes: dict[str, Any] = {
            "count_prior_mean": {**self.effect_means, **config.count_prior_mean},
            "count_prior_sd": {**self.group_sd, **config.count_prior_sd},
        }
        if self.negative_log_ratio:
            changes["neg_prior_log_ratio"] = {
                **self.negative_log_ratio,
                **config.neg_prior_log_ratio,
            }
            changes["neg_prior_events"] = self.negative_prior_events
        if self.mix_share:
            changes["mix_prior_share"] = {**self.mix_share, **config.mix_prior_share}
        return replace(config, **changes)

    def describe(self) -> str:
        parts = [f"effects of {', '.join(sorted(self.group_sd)) or 'no group'}"]
        if self.negative_log_ratio or self.mix_share:
            parts.append("formats' negative rates and metric mix")
        posts = self.source.get("posts")
        accounts = self.source.get("accounts")
        return f"population prior ({'; '.join(parts)}; from {posts} posts of {accounts} accounts)"


def after_last_post(accounts: Sequence[AccountHistory], default: datetime) -> datetime:
    """When a prior is fitted: just after the newest post's final (72 h) snapshot, so every post
    counts and ages run from the store's own last post, not the wall clock (a simulated run's
    posts can lie months behind, or ahead of, it); ``default`` when there are no posts."""
    latest = max((p.posted_at for a in accounts for p in a.history), default=None)
    return default if latest is None else latest + timedelta(hours=73)


def fit_population_prior(
    accounts: Sequence[AccountHistory],
    *,
    now: datetime,
    formats: Sequence[str],
    topics: Sequence[str],
    objective: str = "engagement",
    groups: Sequence[str] = DEFAULT_GROUPS,
    group_sd: Mapping[str, float] | None = None,
    with_formats: bool = False,
    min_posts: int = 200,
) -> PopulationPrior:
    """The pooled fit of ``accounts`` as a prior for a new account.

    Args:
        groups: design groups whose effects the prior centres (:data:`KNOWN_GROUPS`).
        group_sd: their prior SD (default :data:`DEFAULT_GROUP_SD`, 0.1 for a group not named).
        with_formats: also each format's negative rates and metric mix (final counts).
        min_posts: evidence posts the accounts must have together; fewer gives a prior no
            better than the model's own, so it is refused.
    """
    unknown = sorted(set(groups) - set(KNOWN_GROUPS))
    if unknown:
        raise PriorError(f"unknown design groups {unknown}: choose from {list(KNOWN_GROUPS)}")
    config = FitConfig(objective=objective)
    fit = fit_accounts(
        accounts, now=now, formats=formats, topics=topics, config=config,
        main_timezone=accounts[0].timezone if accounts else "UTC",
    )  # fmt: skip
    pooled = fit.pooled
    if pooled.posts < min_posts:
        raise PriorError(
            f"{pooled.posts} posts with a snapshot at least 6 h old across {len(accounts)} "
            f"accounts; a population prior needs at least {min_posts}: post longer, or fit "
            "it from a store with more accounts"
        )
    if pooled.kind != "counts":
        raise PriorError(f"a population prior needs the count model, not {pooled.kind!r}")
    design_groups = dict(zip(pooled.design.names, pooled.design.groups, strict=True))
    means = {
        name: round(float(pooled.mean[i]), 6)
        for i, name in enumerate(pooled.design.names)
        if design_groups[name] in groups
    }
    sds = {g: float((group_sd or {}).get(g, DEFAULT_GROUP_SD.get(g, 0.1))) for g in groups}
    ratio: dict[str, float] = {}
    mix: dict[str, list[float]] = {}
    finals = [p for a in accounts for p in a.history if p.metrics and p.horizon == "72h"]
    if with_formats:
        ratio, mix = _format_rates(finals, formats, objective)
    return PopulationPrior(
        objective=objective,
        effect_means=means,
        group_sd=sds,
        negative_log_ratio=ratio,
        mix_share=mix,
        source={
            "accounts": len(accounts),
            "posts": pooled.posts,
            "final_posts": len(finals),
            "fitted_at": now.isoformat(),
            "groups": list(groups),
        },
    )


def _format_rates(
    posts: Sequence[Any], formats: Sequence[str], objective: str
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Per format: log rate ratios of the negative metrics and the positive metrics' shares."""
    weights = objective_weights(objective)
    positive = [m for m, w in weights.items() if w > 0]
    negative = [m for m, w in weights.items() if w < 0]
    sums: dict[str, dict[str, float]] = {f: {} for f in formats}
    for post in posts:
        if post.format not in sums:
            continue
        row = sums[post.format]
        for metric in [*positive, *negative, "impressions"]:
            row[metric] = row.get(metric, 0.0) + float(post.metrics.get(metric) or 0)
    total = {m: sum(r.get(m, 0.0) for r in sums.values()) for m in [*negative, "impressions"]}
    ratio: dict[str, float] = {}
    mix: dict[str, list[float]] = {}
    for fmt, row in sums.items():
        if row.get("impressions", 0.0) <= 0:
            continue
        # Half a pseudo-event shared out by exposure: no events at all (real X reports no
        # negative feedback, warehouse/collector.py) gives every format the pooled rate.
        share = row["impressions"] / total["impressions"]
        for metric in negative:
            mine = (row.get(metric, 0.0) + 0.5 * share) / row["impressions"]
            pooled = (total[metric] + 0.5) / total["impressions"]
            ratio[f"{metric}:{fmt}"] = round(math.log(mine / pooled), 6)
        counts = [row.get(m, 0.0) for m in positive]
        if sum(counts) > 0:
            mix[fmt] = [round(c / sum(counts), 6) for c in counts]
    return ratio, mix


def save_prior(prior: PopulationPrior, path: Path) -> Path:
    from xbot_assets.files import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(asdict(prior), indent=1, sort_keys=True))


def load_prior(path: Path | str) -> PopulationPrior:
    """Read and check a prior file; a bad one is refused with what to do, never half-used."""
    path = Path(path)
    hint = "fit one with `xbot prior fit --out FILE`, or unset LEARNING_PRIOR_FILE"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise PriorError(f"LEARNING_PRIOR_FILE {path}: no such file; {hint}") from None
    except (OSError, ValueError) as exc:
        raise PriorError(f"LEARNING_PRIOR_FILE {path}: not readable JSON ({exc}); {hint}") from None
    if not isinstance(raw, dict) or raw.get("version") != PRIOR_VERSION:
        raise PriorError(
            f"LEARNING_PRIOR_FILE {path}: not a version {PRIOR_VERSION} population prior; {hint}"
        )
    try:
        prior = PopulationPrior(
            objective=str(raw["objective"]),
            effect_means={str(k): float(v) for k, v in raw["effect_means"].items()},
            group_sd={str(k): float(v) for k, v in raw["group_sd"].items()},
            negative_log_ratio={
                str(k): float(v) for k, v in (raw.get("negative_log_ratio") or {}).items()
            },
            mix_share={
                str(k): [float(x) for x in v] for k, v in (raw.get("mix_share") or {}).items()
            },
            negative_prior_events=float(raw.get("negative_prior_events", FORMAT_PRIOR_EVENTS)),
            source=dict(raw.get("source") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PriorError(f"LEARNING_PRIOR_FILE {path}: malformed ({exc!r}); {hint}") from None
    try:  # an unknown objective is the file's fault: a PriorError, which never stops posting
        weights = objective_weights(prior.objective)
    except ValueError as exc:
        raise PriorError(f"LEARNING_PRIOR_FILE {path}: {exc}; {hint}") from None
    positive = [m for m, w in weights.items() if w > 0]
    if any(len(share) != len(positive) for share in prior.mix_share.values()):
        raise PriorError(
            f"LEARNING_PRIOR_FILE {path}: a format's metric mix must have {len(positive)} "
            f"shares ({', '.join(positive)}); {hint}"
        )
    numbers = [*prior.effect_means.values(), *prior.group_sd.values(),
               *prior.negative_log_ratio.values(), prior.negative_prior_events,
               *(x for share in prior.mix_share.values() for x in share)]  # fmt: skip
    if (
        not all(math.isfinite(v) for v in numbers)
        or any(sd <= 0 for sd in prior.group_sd.values())
        or prior.negative_prior_events < 0
    ):
        raise PriorError(
            f"LEARNING_PRIOR_FILE {path}: effects, ratios, shares and event counts must be "
            f"finite, spreads positive and event counts not negative; {hint}"
        )
    return prior
