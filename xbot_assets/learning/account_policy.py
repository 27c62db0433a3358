"""Every account's own factored posterior, fitted in one pass over all accounts.

Accounts of one deployment have audiences of their own (the sandbox's per-account jitter; on X,
each account's followers), so each account acts on a posterior fitted on its own posts. A new
account does not start from nothing: it belongs to the same owner, whose style (what topics,
formats, times and texts work) the pooled fit over every account has learnt. So:

* **below** :data:`MIN_OWN_POSTS` evidence posts of its own, an account acts on the *pooled*
  posterior (in its own time zone). Below 10 posts the count model cannot fit an account's own
  content noise (``learning/counts.py`` skips it under 10) and its own negative-feedback rates
  rest on about one event; the pooled fit has both from all the owner's accounts;
* **from** :data:`MIN_OWN_POSTS` on, it acts on its own fit, whose prior is *centred on the
  pooled effects* (the count model's ``count_prior_mean``) with the model's usual prior SDs, so
  its own posts move it exactly as fast as a fresh account's would, but from the owner's style
  rather than from zero (empirical-Bayes shrinkage towards the pool). The pooled fit includes the
  account's own posts, a small double count when there are many accounts (one account's share of
  the pool), larger with two; it only moves the prior mean, never narrows the prior.

One account: the pooled fit *is* its fit, exactly as before this module (nothing else fitted).
Rows are built once per account (its own recency, text and time-zone covariates) and shared by
the pooled and the account's fit through ``fit_factored``'s row cache, so the pooled fit never
mixes one account's posts into another's recency. One process fits every account: the cost per
account is its own posts' rows and one fit, flat in the number of accounts.

Pure: no I/O (the store reads are ``engine/history.py``, the files ``learning/model_files.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from xbot_assets.learning.design import Design, PastPost
from xbot_assets.learning.factored import FitConfig, fit_factored, training_rows
from xbot_assets.learning.horizon import HorizonModel
from xbot_assets.learning.posterior import FactoredPosterior

MIN_OWN_POSTS = 10
"""Evidence posts (a snapshot >= 6 h old) an account needs before it acts on its own fit."""

ACTING_ON = ("own", "pooled", "prior")
"""What an account's posterior is: its own fit, the pooled fallback, or the prior (no evidence
in any account)."""


@dataclass
class AccountHistory:
    """What the fit needs of one account (read from the store by ``engine/history.py``)."""

    handle: str
    timezone: str
    history: list[PastPost]
    """Root posts, oldest first (posted and queued; queued ones only shape recency)."""
    pairs: list[tuple[str, Any, Any]] = field(default_factory=list)
    """``(horizon, partial, final)`` counts of completed posts (the horizon model)."""


@dataclass
class AccountFit:
    """One account's posterior and how it came about (the asset's per-account metadata)."""

    handle: str
    posterior: FactoredPosterior
    own_posts: int
    """Its own evidence posts (snapshot >= 6 h old) at the fit."""
    acting_on: str
    """One of :data:`ACTING_ON`."""
    prior: str
    """``pooled effects``, ``population prior`` (``LEARNING_PRIOR_FILE``) or ``default`` (the
    model's zero-centred prior)."""

    @property
    def cold_start(self) -> bool:
        """True while the account does not act on a fit of enough posts of its own."""
        return self.acting_on != "own"

    def describe(self, min_own_posts: int = MIN_OWN_POSTS) -> str:
        if self.acting_on == "own":
            return f"own fit of {self.own_posts} posts (prior: {self.prior})"
        if self.acting_on == "pooled":
            return (
                f"pooled fit of all accounts ({self.posterior.posts} posts): "
                f"{self.own_posts} own posts < {min_own_posts}"
            )
        return "prior: no evidence in any account yet"


@dataclass
class AccountsFit:
    """The pooled posterior, the horizon model and every account's own fit."""

    pooled: FactoredPosterior
    horizon: HorizonModel
    accounts: dict[str, AccountFit]


def evidence(history: Sequence[PastPost], now: datetime) -> list[PastPost]:
    """The posts a fit at ``now`` reads: measured ones and those already out (recency)."""
    return [p for p in history if p.metrics is not None or p.posted_at < now]


def pooled_prior_means(pooled: FactoredPosterior) -> dict[str, float]:
    """The pooled fit's log-scale effects as prior means (the count model's; the intercept is
    always the account's own median, so it is left out)."""
    if pooled.kind != "counts":
        return {}
    names = pooled.design.names
    return {n: float(m) for n, m in zip(names, pooled.mean[: len(names)], strict=True)
            if n != "intercept"}  # fmt: skip


def fit_accounts(
    accounts: Sequence[AccountHistory],
    *,
    now: datetime,
    formats: Sequence[str],
    topics: Sequence[str],
    config: FitConfig,
    main_timezone: str,
    min_own_posts: int = MIN_OWN_POSTS,
    prior_label: str = "default",
) -> AccountsFit:
    """Fit the pooled posterior and each account's own in one pass.

    Args:
        accounts: every active account (one: its fit is the pooled one, nothing more).
        main_timezone: the pooled posterior's time zone (the main account's); each account's
            fallback copy carries its own.
        min_own_posts: own evidence posts from which an account acts on its own fit.
        prior_label: what ``config``'s prior is (``population prior`` when
            ``LEARNING_PRIOR_FILE`` set its means), for each account's :attr:`AccountFit.prior`.
    """
    horizon = HorizonModel.fit([pair for a in accounts for pair in a.pairs])
    cache: dict[Any, np.ndarray] = {}
    own_posts: dict[str, int] = {}
    for account in accounts:
        design = Design(formats, topics, account.timezone, interactions=config.arm_interactions)
        x, *_ = training_rows(
            evidence(account.history, now), design, now=now, objective=config.objective,
            horizon_model=horizon, min_horizon_hours=config.min_horizon_hours, cache=cache,
        )  # fmt: skip
        own_posts[account.handle] = len(x)
    merged = sorted(
        (p for a in accounts for p in evidence(a.history, now)), key=lambda p: p.posted_at
    )
    pooled = fit_factored(
        merged, now=now, formats=formats, topics=topics, timezone=main_timezone,
        config=config, horizon_model=horizon, cache=cache,
    )  # fmt: skip
    fits: dict[str, AccountFit] = {}
    if len(accounts) == 1:
        (only,) = accounts
        acting = "own" if pooled.posts else "prior"
        fits[only.handle] = AccountFit(only.handle, pooled, pooled.posts, acting, prior_label)
        return AccountsFit(pooled, horizon, fits)
    for account in accounts:
        own = own_posts[account.handle]
        others = pooled.posts - own
        if own < min_own_posts and others > 0:
            # The pooled effects, but the account's own exploration: the schedule follows how
            # much this account has posted, not the whole fleet (a new account in an old fleet
            # still explores as a new account).
            fallback = replace(
                pooled, timezone=account.timezone, exploration=config.exploration_at(own)
            )
            fits[account.handle] = AccountFit(account.handle, fallback, own, "pooled", prior_label)
            continue
        means = pooled_prior_means(pooled) if others > 0 else {}
        account_config = (
            replace(config, count_prior_mean={**means, **config.count_prior_mean})
            if means
            else config
        )
        posterior = fit_factored(
            evidence(account.history, now), now=now, formats=formats, topics=topics,
            timezone=account.timezone, config=account_config, horizon_model=horizon, cache=cache,
        )  # fmt: skip
        fits[account.handle] = AccountFit(
            account.handle,
            posterior,
            own,
            "own" if posterior.posts else "prior",
            (
                "pooled effects" + (f", {prior_label}" if prior_label != "default" else "")
                if means
                else prior_label
            ),
        )
    return AccountsFit(pooled, horizon, fits)


def arm_values(
    posterior: FactoredPosterior,
    now: datetime,
    history: Sequence[PastPost],
    arms: Sequence[tuple[str, str]],
) -> np.ndarray:
    """Each arm's expected reward now under the posterior mean, against the account's history."""
    rows = posterior.design.arm_rows(now, history, arms)
    return np.asarray(posterior.value(rows, posterior.mean))


def best_arm(
    posterior: FactoredPosterior,
    now: datetime,
    history: Sequence[PastPost],
    arms: Sequence[tuple[str, str]],
) -> str:
    """``format:topic`` of the arm with the highest expected reward now."""
    fmt, topic = arms[int(np.argmax(arm_values(posterior, now, history, arms)))]
    return f"{fmt}:{topic}"
