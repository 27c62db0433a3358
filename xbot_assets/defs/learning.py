"""Learning assets: the engagement scorer, the arm posteriors, offline policy evaluation and the
learned config. Thin wiring: the logic is in ``xbot_assets/learning/`` (pure, tested alone).

Every asset reads ``marts.fct_post_outcomes`` from the DuckDB warehouse named by the settings
(``xbot_settings`` resource, read at run time). With no posts yet (cold start) each asset still
materialises: the scorer is the prior-only baseline and the posteriors are the prior, flagged
``cold_start`` in the metadata. Model files go under ``XBOT_HOME/models/<APP_ENV>/``.

Why one file of about 540 lines: five assets of one Dagster group and the loaders the engine uses to
read what they wrote (thin wrappers over ``learning/model_files.py`` that raise ``dg.Failure``);
one asset per module is the split once one of them holds more than wiring.
"""

import json
from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from xbot_assets.config import Settings
from xbot_assets.defs.health import reports_health
from xbot_assets.defs.resources import OWNERS, XbotRuntime, XbotSettings
from xbot_assets.defs.simtime import simulated
from xbot_assets.files import write_atomic
from xbot_assets.learning import model_files
from xbot_assets.learning.model_files import models_dir
from xbot_assets.ops.learning_status import record_model_promotion, record_policy_estimates
from xbot_assets.store.durable import DurableStore
from xbot_assets.vocabulary import DEFAULT_TOPICS, FORMATS

FCT_POST_OUTCOMES = dg.AssetKey(["fct_post_outcomes"])
OUTCOMES_RELATION = "marts.fct_post_outcomes"
LEARNED_CONFIG_KEY = "learned"
GROUP = "learning"


# --- helpers (I/O lives here, not in the learning layer) ------------------------------------


def read_post_outcomes(settings: Settings) -> tuple[pd.DataFrame, str]:
    """Rows of ``fct_post_outcomes`` for this environment, and a note when there are none."""
    from xbot_assets.warehouse.duck import warehouse

    path = settings.resolved_warehouse_path
    if not path.exists():
        return pd.DataFrame(), f"no warehouse at {path} yet (cold start)"
    with warehouse(path, read_only=True) as con:
        found = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_post_outcomes'"
        ).fetchone()
        if not found or not found[0]:
            return pd.DataFrame(), "fct_post_outcomes is not built yet (cold start)"
        frame = con.execute(
            f"select * from {OUTCOMES_RELATION} where environment = ? order by posted_at",  # noqa: S608
            [settings.app_env],
        ).df()
    if "is_final" in frame:
        frame = frame[frame["is_final"].fillna(0).astype(int) == 1]
    note = "" if len(frame) else "no posts with final (72h) metrics yet (cold start)"
    return frame.reset_index(drop=True), note


def _record_for_operators(settings: Settings, write: Callable[[DurableStore], None]) -> None:
    """Leave the figures operators watch (/metrics) in the durable store, with an audit row.

    The health server runs in another process and can only export what the learning assets
    leave in the store (``xbot_assets.ops.learning_status``).
    """
    store = DurableStore.from_settings(settings)
    try:
        write(store)
    finally:
        store.close()


def arms_for(outcomes: pd.DataFrame) -> list[str]:
    """Formats x topics: the default account topics plus any topic seen in the data."""
    topics = list(DEFAULT_TOPICS)
    if "topic" in outcomes:
        topics += sorted(set(outcomes["topic"].dropna().astype(str)) - set(topics) - {"other"})
    return [f"{f}:{t}" for f in FORMATS for t in topics]


def _md(frame: pd.DataFrame) -> dg.MetadataValue:
    from xbot_assets.learning.scorer import to_markdown

    return dg.MetadataValue.md(to_markdown(frame) if len(frame) else "_(empty)_")


SCORER_AUC_FLOOR = 0.6
"""Deploy the scorer only above this held-out AUC. 0.5 is chance; with the 20-40 held-out posts
of a month the AUC's standard error is about 0.08, so 0.6 is the lowest value that is more than
one standard error above chance: below it the ranking is indistinguishable from noise (the
shipped scorer's 0.15-0.76 spread was exactly that)."""


# --- engagement_scorer -----------------------------------------------------------------------


@dg.asset(
    deps=[FCT_POST_OUTCOMES],
    group_name=GROUP,
    kinds={"python", "scikitlearn"},
    owners=OWNERS,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(
            "no_worse_than_prior_only_baseline",
            asset="engagement_scorer",
            description="Held-out log loss of the scorer is no worse than the base rate's.",
        )
    ],
)
@reports_health("learning:engagement_scorer")
def engagement_scorer(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings
) -> dg.MaterializeResult:
    """Will a post beat the account's rolling median reward? A calibrated logistic regression.

    Ranks candidate posts before one is queued. Trained on the oldest posts, judged on the newest
    it has not seen (AUC, log loss, Brier, calibration), with a statsmodels coefficient table
    for analysts. If it does worse than the prior-only baseline on held-out posts, the baseline is
    deployed instead and the check fails.
    """
    from xbot_assets.learning.scorer import (
        PriorOnlyScorer,
        save_scorer,
        scorer_accounts,
        train_scorer,
    )
    from xbot_assets.learning.scorer_plots import scorer_plots_markdown

    settings = xbot_settings.get()
    outcomes, note = read_post_outcomes(settings)
    report = train_scorer(outcomes, timezone=settings.account_timezone)
    model_loss = report.metrics.get("log_loss")
    baseline_loss = report.baseline_metrics.get("log_loss")
    worse = (
        not report.cold_start
        and model_loss is not None
        and baseline_loss is not None
        and model_loss > baseline_loss
    )
    auc = report.metrics.get("auc")
    below_floor = not report.cold_start and (auc is None or auc < SCORER_AUC_FLOOR)
    deployed = "logistic_regression"
    if report.cold_start:
        deployed = "prior_only_baseline (cold start)"
    elif worse:
        report.model = PriorOnlyScorer(report.base_rate)
        deployed = "prior_only_baseline (the model did worse on held-out posts)"
    elif below_floor:
        report.model = PriorOnlyScorer(report.base_rate)
        deployed = (
            f"prior_only_baseline (held-out AUC {auc} below the floor {SCORER_AUC_FLOOR}: "
            "candidates keep the generator's order)"
        )
    path = save_scorer(report, models_dir(settings) / "engagement_scorer.skops")
    _record_for_operators(
        settings,
        lambda store: record_model_promotion(
            store, model="engagement_scorer", deployed=deployed, metrics=report.metrics
        ),
    )
    if report.cold_start:
        context.log.warning("engagement_scorer cold start: %s", report.reason or note)
    metadata: dict[str, Any] = {
        **{k: v for k, v in report.metadata().items() if v is not None},
        "deployed": deployed,
        "auc_floor": SCORER_AUC_FLOOR,
        "used_in_decisions": "no: engine/decide.py ranks candidates with the factored "
        "posterior's text covariates (benchmarks/loop.py, ours vs ours_no_rank)",
        "accounts": dg.MetadataValue.json(scorer_accounts(outcomes)),
        "note": note or report.reason,
        "model_path": dg.MetadataValue.path(str(path)),
        "calibration": _md(report.calibration),
        "plots": dg.MetadataValue.md(
            scorer_plots_markdown(
                report.holdout,
                report.calibration,
                labelled=report.training_rows,
                positives=round(report.training_rows * report.base_rate),
            )
        ),
        "coefficients": _md(report.coefficients),
    }
    check = dg.AssetCheckResult(
        check_name="no_worse_than_prior_only_baseline",
        passed=not worse,
        metadata={
            "cold_start": report.cold_start,
            "log_loss": model_loss if model_loss is not None else "n/a",
            "baseline_log_loss": baseline_loss if baseline_loss is not None else "n/a",
            "test_rows": report.test_rows,
        },
        description=(
            "cold start: the scorer is the prior-only baseline"
            if report.cold_start
            else "held-out log loss vs the base rate's"
        ),
    )
    return simulated(dg.MaterializeResult(metadata=metadata, check_results=[check]))


# --- arm_posteriors -------------------------------------------------------------------------


class PosteriorConfig(dg.Config):
    objective: str = "engagement"
    """``engagement`` (X-weighted engagements per impression) or ``growth`` (follows)."""
    discount: float = 1.0
    """Evidence discount per post (1: never forget; 0.999: half-life of ~700 posts)."""


@dg.asset(
    deps=[FCT_POST_OUTCOMES],
    group_name=GROUP,
    kinds={"python", "scipy"},
    owners=OWNERS,
    automation_condition=dg.AutomationCondition.eager(),
)
@reports_health("learning:arm_posteriors")
def arm_posteriors(
    context: dg.AssetExecutionContext, config: PosteriorConfig, xbot_settings: XbotSettings
) -> dg.MaterializeResult:
    """What each format x topic earns, as Thompson-sampling posteriors the policy samples from.

    Beta posteriors with an empirical-Bayes prior fitted on the account's history, one post
    worth at most the fitted number of effective impressions. ``p_best`` is the probability
    the policy will choose each arm now.
    """
    from xbot_assets.learning.engine import fit_arm_posteriors

    settings = xbot_settings.get()
    outcomes, note = read_post_outcomes(settings)
    arms = arms_for(outcomes)
    if config.objective not in ("engagement", "growth"):
        raise dg.Failure(f"objective {config.objective!r} is unknown: use engagement or growth")
    sampler, info = fit_arm_posteriors(
        outcomes,
        arms,
        objective=config.objective,  # type: ignore[arg-type]
        discount=config.discount,
        seed=settings.sandbox_seed,
    )
    frame = sampler.to_frame(arms)
    path = models_dir(settings) / f"arm_posteriors_{config.objective}.json"
    model_files.write_atomic(
        path,
        json.dumps(
            {
                "arms": arms,
                "prior": list(sampler.prior),
                "successes": sampler.successes.tolist(),
                "failures": sampler.failures.tolist(),
                "pulls": sampler.pulls.tolist(),
                **{k: v for k, v in info.items() if k != "prior"},
            },
            indent=1,
        ),
    )
    if info["cold_start"]:
        context.log.warning("arm_posteriors cold start: %s", note or "no evidence yet")
    top = frame.sort_values("p_best", ascending=False)
    per_account = fit_account_posteriors(settings, outcomes, arms, config)
    return simulated(
        dg.MaterializeResult(
            metadata={
                "per_account": dg.MetadataValue.json(per_account),
                "cold_start": bool(info["cold_start"]),
                "note": note,
                "objective": config.objective,
                "posts": int(info["posts"]),
                "prior_alpha": round(sampler.prior[0], 4),
                "prior_beta": round(sampler.prior[1], 4),
                "max_trials_per_post": float(info["max_trials"]),
                "best_arm": str(top["arm"].iloc[0])
                + (" (cold start: the posterior is the prior)" if info["cold_start"] else ""),
                "posteriors": _md(top.round(6)),
                "path": dg.MetadataValue.path(str(path)),
            }
        )
    )


def fit_account_posteriors(
    settings: Settings, outcomes: pd.DataFrame, arms: list[str], config: PosteriorConfig
) -> dict[str, dict[str, Any]]:
    """With posts of more than one account: each account's own posteriors, fitted on its posts
    alone over the same arms, saved where ``model_files.load_posteriors`` finds them for that
    account's runs (each account learns its own audience; the pooled fit stays the fallback).
    One account: nothing written, so a single account's learning is exactly the pooled one."""
    from xbot_assets.learning.engine import fit_arm_posteriors

    many = "account" in outcomes and outcomes["account"].nunique() >= 2
    # Only the files this fit writes stay (one account: none; its runs load the pooled file).
    handles = [str(h) for h in outcomes["account"].unique()] if many else []
    model_files.prune_account_files(settings, "arm_posteriors", config.objective, keep=handles)
    if not many:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for handle, rows in outcomes.groupby("account"):
        sampler, info = fit_arm_posteriors(
            rows.reset_index(drop=True), arms, objective=config.objective,  # type: ignore[arg-type]
            discount=config.discount, seed=settings.sandbox_seed,
        )  # fmt: skip
        frame = sampler.to_frame(arms).sort_values("p_best", ascending=False)
        write_atomic(
            model_files.account_posteriors_path(settings, config.objective, str(handle)),
            json.dumps({"arms": arms, "prior": list(sampler.prior),
                        "successes": sampler.successes.tolist(),
                        "failures": sampler.failures.tolist(), "pulls": sampler.pulls.tolist(),
                        **{k: v for k, v in info.items() if k != "prior"}}, indent=1)
        )  # fmt: skip
        out[str(handle)] = {
            "posts": int(info["posts"]),
            "best_arm": str(frame["arm"].iloc[0]),
            "p_best": round(float(frame["p_best"].iloc[0]), 4),
        }
    return out


def load_posteriors(settings: Settings, objective: str = "engagement") -> tuple[Any, list[str]]:
    """The sampler saved by :func:`arm_posteriors` (a Dagster failure when it is missing)."""
    try:
        return model_files.load_posteriors(settings, objective)
    except model_files.ModelFileMissing as exc:
        raise dg.Failure(str(exc)) from None


# --- factored_posteriors ---------------------------------------------------------------------

FACTORED_CRON = "0 */4 * * *"
"""Refit every 4 hours: new 6 h and 24 h snapshots arrive all the time, and a refit is cheap."""


@dg.asset(
    group_name=GROUP,
    automation_condition=(
        dg.AutomationCondition.cron_tick_passed(FACTORED_CRON)
        & ~dg.AutomationCondition.in_progress()
    ),
)
@reports_health("learning:factored_posteriors")
def factored_posteriors(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.MaterializeResult:
    """The policy's factored Bayesian posterior: format, topic, time, recency and text effects,
    one per account.

    Refit every few hours straight from the durable store (each root post's latest snapshot at
    least 6 h old, projected to its final counts by the horizon model fitted on completed posts),
    so new evidence reaches the policy within hours, without waiting for the 72 h snapshot or the
    dbt rebuild. ``cold_start`` is true while the posterior is the prior. The model is the count
    model (``learning/counts.py``: arm effects from every engagement count, valued as the
    X-weighted reward), the same code the loop benchmark measures. With many accounts each gets
    its own posterior in this one run (``per_account``: own posts, what it acts on, best arm): a
    fit of its own posts with the pooled effects as its prior, or the pooled fit of every
    account until it has 10 posts of its own (``learning/account_policy.py``).
    """
    from xbot_assets.content.vocabulary import DEFAULT_TOPICS as TOPICS
    from xbot_assets.content.vocabulary import FORMATS as ALL_FORMATS
    from xbot_assets.engine.refit import refit_factored

    settings = xbot_settings.get()
    now = xbot_runtime.now()
    store = DurableStore.from_settings(settings)
    from xbot_assets.learning.population_prior import PriorError

    try:
        refit = refit_factored(settings, store, now, list(ALL_FORMATS), list(TOPICS))
    except PriorError as exc:  # LEARNING_PRIOR_FILE: the message says what to do
        raise dg.Failure(str(exc)) from None
    finally:
        store.close()
    posterior = refit.main
    effects = pd.DataFrame(
        [
            {"effect": k, **{m: round(v, 5) for m, v in e.items()}}
            for k, e in posterior.effects().items()
        ]
    )
    cold = posterior.cold_start
    if cold:
        context.log.warning("factored_posteriors cold start: no post with a >= 6 h snapshot yet")
    arms = [(f, t) for f in ALL_FORMATS for t in TOPICS]
    per_account = refit.per_account(now, arms) if refit.paths else {}
    cold_accounts = sorted(h for h, a in refit.fit.accounts.items() if a.cold_start)
    return simulated(
        dg.MaterializeResult(
            metadata={
                "cold_start": cold,
                "objective": settings.learning_objective,
                "posts": posterior.posts,
                "accounts": len(refit.fit.accounts),
                "pooled_posts": refit.fit.pooled.posts,
                "per_account": dg.MetadataValue.json(per_account),
                "cold_start_accounts": ", ".join(cold_accounts) if per_account else "",
                "horizons_used": json.dumps(posterior.horizons_used),
                "horizon_shares_fitted_from": json.dumps(refit.fit.horizon.fitted_from),
                "model": posterior.kind,
                "prior": refit.prior,
                "components": json.dumps(posterior.components),
                "noise_sigma0": round(float(np.sqrt(posterior.sigma0_sq)), 6),
                "noise_kappa": round(posterior.kappa, 6),
                "best_arm_now": refit.main_best_arm + (" (cold start: the prior)" if cold else ""),
                "effects": _md(effects),
                "path": dg.MetadataValue.path(str(refit.main_path)),
            }
        )
    )


def load_factored(settings: Settings, objective: str = "engagement") -> Any:
    """The posterior saved by :func:`factored_posteriors` (a Dagster failure when missing)."""
    try:
        return model_files.load_factored(settings, objective)
    except model_files.ModelFileMissing as exc:
        raise dg.Failure(str(exc)) from None


# --- offline_policy_evaluation -----------------------------------------------------------------


@dg.asset(
    deps=[FCT_POST_OUTCOMES, dg.AssetKey("engagement_scorer"), dg.AssetKey("arm_posteriors")],
    group_name=GROUP,
    kinds={"python", "numpy"},
    owners=OWNERS,
    automation_condition=dg.AutomationCondition.eager(),
)
@reports_health("learning:offline_policy_evaluation")
def offline_policy_evaluation(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings
) -> dg.MaterializeResult:
    """What alternative policies would have earned on the posts we logged, with 95 % intervals.

    IPS, self-normalised IPS and doubly robust estimates for: random, greedy on the scorer, the
    current Thompson sampler, and the sampler with stronger discounting. Judge a change here
    before it goes live. Needs the logged propensity per post; without it the logging
    probabilities are estimated from arm frequencies (flagged).
    """
    from xbot_assets.learning.engine import fit_arm_posteriors
    from xbot_assets.learning.ope import (
        arm_mean_reward_model,
        compare_policies,
        fixed_policy,
        greedy_policy,
        uniform_policy,
    )
    from xbot_assets.learning.scorer import ScorerError, load_scorer, score_posts

    settings = xbot_settings.get()
    outcomes, note = read_post_outcomes(settings)
    if outcomes.empty or len(outcomes) < 10:
        return simulated(
            dg.MaterializeResult(
                metadata={
                    "cold_start": True,
                    "note": note or f"{len(outcomes)} logged posts: too few to evaluate",
                }
            )
        )
    arms = arms_for(outcomes)
    logged = outcomes.copy()
    if "arm" not in logged or logged["arm"].isna().any():
        logged["arm"] = logged["format"].astype(str) + ":" + logged["topic"].astype(str)
    logged = logged[logged["arm"].isin(arms)].reset_index(drop=True)
    propensity_note = "logged propensities"
    if "propensity" not in logged or logged["propensity"].isna().any():
        freq = logged["arm"].value_counts(normalize=True)
        logged["propensity"] = logged["arm"].map(freq).astype(float)
        propensity_note = (
            "no logged propensities: estimated from arm frequencies (assumes a stationary "
            "randomised logger; record the policy's propensity to remove this assumption)"
        )
    n = len(logged)
    policies: dict[str, np.ndarray] = {"random": uniform_policy(n, len(arms))}
    try:
        model, _ = load_scorer(models_dir(settings) / "engagement_scorer.skops")
        counterfactual = np.column_stack(
            [
                score_posts(
                    model,
                    logged.assign(
                        format=arm.split(":")[0], topic=arm.split(":")[1], hook_type=None
                    ),
                    timezone=settings.account_timezone,
                )
                for arm in arms
            ]
        )
        policies["greedy_scorer"] = greedy_policy(counterfactual)
    except ScorerError as exc:
        context.log.warning("greedy_scorer skipped: %s", exc)
    current, _ = fit_arm_posteriors(logged, arms, seed=settings.sandbox_seed)
    policies["thompson_current"] = fixed_policy(current.choice_probabilities(4000), n)
    forgetful, _ = fit_arm_posteriors(logged, arms, discount=0.99, seed=settings.sandbox_seed)
    policies["thompson_discount_0.99"] = fixed_policy(forgetful.choice_probabilities(4000), n)
    table = compare_policies(
        logged, arms, policies, reward_predictions=arm_mean_reward_model(logged, arms)
    )
    best = table[table["estimator"] == "dr"].sort_values("value", ascending=False)
    values = {str(p): float(v) for p, v in zip(best["policy"], best["value"], strict=True)}
    regret = (
        max(values.values()) - values["thompson_current"] if "thompson_current" in values else None
    )
    _record_for_operators(
        settings,
        lambda store: record_policy_estimates(store, regret_estimate=regret, values=values),
    )
    return simulated(
        dg.MaterializeResult(
            metadata={
                "cold_start": False,
                "logged_posts": n,
                "propensities": propensity_note,
                "best_by_dr": str(best["policy"].iloc[0]) if len(best) else "n/a",
                "regret_estimate": regret if regret is not None else "n/a",
                "estimates": _md(table),
            }
        )
    )


# --- learned_config ------------------------------------------------------------------------


@dg.asset(
    deps=[dg.AssetKey("arm_posteriors"), FCT_POST_OUTCOMES],
    group_name=GROUP,
    kinds={"python"},
    owners=OWNERS,
    automation_condition=dg.AutomationCondition.eager(),
)
@reports_health("learning:learned_config")
def learned_config(
    context: dg.AssetExecutionContext, xbot_settings: XbotSettings, xbot_runtime: XbotRuntime
) -> dg.MaterializeResult:
    """What the bot learned (best topics, best hours, format weights), written to bot_config.

    Operators read it in the store (key ``learned``) and every write leaves an audit_log entry.
    """
    from xbot_assets.learning.engine import evidence_table
    from xbot_assets.learning.engine import learned_config as build_config
    from xbot_assets.learning.scheduler import ScheduleConfig, SlotScheduler

    settings = xbot_settings.get()
    outcomes, note = read_post_outcomes(settings)
    sampler, arms = load_posteriors(settings)
    slots = SlotScheduler(ScheduleConfig(timezone=settings.account_timezone), seed=0)
    if not outcomes.empty:
        evidence = evidence_table(outcomes)
        for hour, s, n in zip(
            evidence["hour_local"], evidence["successes"], evidence["trials"], strict=True
        ):
            if hour is not None and not pd.isna(hour) and n > 0:
                slots.update(int(hour), float(min(s, n)), float(n))
    config = build_config(sampler, arms, slot_sampler=slots.sampler)
    store = DurableStore.from_settings(settings)
    store.set_config(
        LEARNED_CONFIG_KEY,
        config,
        actor="learning_engine",
        reason=f"learned from {len(outcomes)} posts" + (f" ({note})" if note else ""),
        now=xbot_runtime.now(),
    )
    return simulated(
        dg.MaterializeResult(
            metadata={
                "cold_start": bool(config["cold_start"]),
                "note": note,
                "best_topics": ", ".join(config["best_topics"]),
                "best_slots": ", ".join(str(h) for h in config.get("best_slots", [])) or "none yet",
                "config": dg.MetadataValue.json(config),
            }
        )
    )


defs = dg.Definitions(
    assets=[
        engagement_scorer,
        arm_posteriors,
        factored_posteriors,
        offline_policy_evaluation,
        learned_config,
    ]
)
