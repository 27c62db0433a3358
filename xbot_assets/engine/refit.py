"""Refit the policy's factored posteriors from the durable store: every account's own, in one run.

``factored_posteriors`` (``defs/learning.py``) calls :func:`refit_factored`: read every active
account's history, fit the pooled and per-account posteriors (``learning/account_policy.py``),
and write the files the decision path loads (``learning/model_files.py``):

* one account: only ``factored_posteriors_<objective>.json``, fitted exactly as before;
* many accounts: ``accounts/factored_posteriors_<objective>_<handle>.json`` for each, the pooled
  fit (``factored_posteriors_pooled_<objective>.json``, for an account added after this fit),
  and the main account's file (its own posterior, kept for whatever reads it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from xbot_assets.learning import model_files
from xbot_assets.learning.account_policy import (
    MIN_OWN_POSTS,
    AccountFit,
    AccountsFit,
    arm_values,
    best_arm,
    fit_accounts,
)
from xbot_assets.learning.design import PastPost
from xbot_assets.learning.factored import FitConfig
from xbot_assets.learning.posterior import FactoredPosterior

DEFAULT_PRIOR = "model default (zero-centred)"


@dataclass
class Refit:
    """What one refit wrote, for the asset's metadata."""

    main: FactoredPosterior
    """The main account's posterior (the pooled fit when it has no store row)."""
    main_path: Path
    main_best_arm: str
    fit: AccountsFit
    histories: dict[str, list[PastPost]] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    """Per account, the file written for it (many accounts only)."""
    prior: str = DEFAULT_PRIOR
    """What the fit's prior is centred on (``LEARNING_PRIOR_FILE``)."""

    def per_account(self, now: datetime, arms: list[tuple[str, str]]) -> dict[str, Any]:
        """Per account: own posts, what it acts on, its best arm now, cold start, its file."""
        out: dict[str, Any] = {}
        for handle, account in self.fit.accounts.items():
            out[handle] = {
                "own_posts": account.own_posts,
                "acting_on": account.acting_on,
                "prior": account.prior,
                "cold_start": account.cold_start,
                "best_arm": best_arm(account.posterior, now, self.histories[handle], arms),
                "file": self.paths[handle].name if handle in self.paths else "(main file)",
                "note": account.describe(),
            }
        return out


@dataclass(frozen=True)
class FitSetup:
    """The fit's settings and what its prior is, from one read of ``LEARNING_PRIOR_FILE``."""

    config: FitConfig
    prior: str = DEFAULT_PRIOR
    """For the refit's metadata: the population prior's groups and file, or the default."""
    population: bool = False
    """Centred on a population prior (each account's fit says so)."""


def fit_setup(settings: Any) -> FitSetup:
    """The fit's settings: the objective, centred on the population prior when one is set
    (``LEARNING_PRIOR_FILE``; a bad file raises :class:`PriorError` with what to do)."""
    config = FitConfig(objective=getattr(settings, "learning_objective", "engagement"))
    path = getattr(settings, "learning_prior_file", None)
    if path is None:
        return FitSetup(config)
    from xbot_assets.learning.population_prior import load_prior

    prior = load_prior(path)
    return FitSetup(prior.fit_config(config), f"{prior.describe()}, {Path(path).name}", True)


def read_and_fit(
    settings: Any,
    store: Any,
    now: datetime,
    formats: list[str],
    topics: list[str],
    setup: FitSetup,
) -> tuple[AccountsFit, dict[str, list[PastPost]]]:
    """Every active account's history from ``store``, fitted as of ``now`` with ``setup``
    (:func:`fit_setup`)."""
    from xbot_assets.engine.history import learning_histories

    accounts = learning_histories(store, now=now, default_timezone=settings.account_timezone)
    main = next((a for a in accounts if a.handle == settings.x_handle), None)
    if not accounts:  # no account row yet: the main account's prior
        from xbot_assets.learning.account_policy import AccountHistory

        accounts = [AccountHistory(settings.x_handle, settings.account_timezone, [])]
    fit = fit_accounts(
        accounts,
        now=now,
        formats=formats,
        topics=topics,
        config=setup.config,
        main_timezone=main.timezone if main else accounts[0].timezone,
        min_own_posts=MIN_OWN_POSTS,
        prior_label="population prior" if setup.population else "default",
    )
    return fit, {a.handle: a.history for a in accounts}


def refit_factored(
    settings: Any, store: Any, now: datetime, formats: list[str], topics: list[str]
) -> Refit:
    """Fit and write every account's factored posterior; drop the stale cached copies."""
    from xbot_assets.posting.hotpath import posterior_cache

    objective = settings.learning_objective
    setup = fit_setup(settings)
    fit, histories = read_and_fit(settings, store, now, formats, topics, setup)
    main_fit: AccountFit | None = fit.accounts.get(settings.x_handle)
    main = main_fit.posterior if main_fit is not None else fit.pooled
    written: dict[str, Path] = {}
    if len(fit.accounts) > 1:
        for handle, account in fit.accounts.items():
            path = model_files.account_factored_path(settings, objective, handle)
            written[handle] = model_files.write_factored(path, account.posterior, fit.horizon)
        pooled = model_files.pooled_factored_path(settings, objective)
        written_pooled = model_files.write_factored(pooled, fit.pooled, fit.horizon)
        stale = [written_pooled, *written.values()]
        # an account no longer active would reload its last own fit if it came back
        stale += model_files.prune_account_files(
            settings, "factored_posteriors", objective, keep=fit.accounts
        )
    else:
        stale = model_files.remove_account_factored(settings, objective)
    main_path = model_files.write_factored(
        model_files.factored_path(settings, objective), main, fit.horizon
    )
    cache = posterior_cache(settings)
    for path in [main_path, *stale]:
        cache.invalidate(path.stem)  # the policy's cached copies are stale now
    arms = [(f, t) for f in formats for t in topics]
    main_history = histories.get(settings.x_handle, [])
    values = arm_values(main, now, main_history, arms)
    best = arms[int(values.argmax())]
    return Refit(main, main_path, f"{best[0]}:{best[1]}", fit, histories, written, setup.prior)
