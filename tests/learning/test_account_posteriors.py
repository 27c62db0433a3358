"""Many accounts, each its own learning: with posts of several accounts in the warehouse,
``arm_posteriors`` also fits each account's posteriors on its posts alone, and an account's runs
load its own; a single account's learning is exactly the pooled fit (nothing else written)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from tests.learning.test_assets import _materialize, _meta, _TestSettings, _write_warehouse
from xbot_assets.defs.learning import arm_posteriors, factored_posteriors
from xbot_assets.learning import model_files
from xbot_assets.learning.synthetic import synthetic_post_outcomes

if TYPE_CHECKING:
    from xbot_assets.store.durable import DurableStore


def _outcomes(handle: str, seed: int) -> pd.DataFrame:
    frame = synthetic_post_outcomes(200, seed=seed).drop(columns=["propensity"])
    return frame.assign(account=handle, post_id=[f"{handle}-{p}" for p in frame["post_id"]])


def test_each_account_gets_and_loads_its_own_posteriors(tmp_path: Path) -> None:
    settings = _TestSettings(home=str(tmp_path)).get()
    _write_warehouse(settings, pd.concat([_outcomes("acct_a", 5), _outcomes("acct_b", 9)]))
    result = _materialize(tmp_path, [arm_posteriors])
    per_account = _meta(result, "arm_posteriors")["per_account"]
    assert isinstance(per_account, dict)  # JSON metadata: {handle: its fit}
    assert set(per_account) == {"acct_a", "acct_b"}
    assert all(v["posts"] == 200 for v in per_account.values())
    own = {}
    for handle in ("acct_a", "acct_b"):
        sampler, _ = model_files.load_posteriors(settings.model_copy(update={"x_handle": handle}))
        own[handle] = sampler.successes / (sampler.successes + sampler.failures)
    pooled, _ = model_files.load_posteriors(settings)  # X_HANDLE has no posts: the pooled fit
    assert not np.allclose(own["acct_a"], own["acct_b"])
    pooled_rate = pooled.successes / (pooled.successes + pooled.failures)
    assert not np.allclose(own["acct_a"], pooled_rate)


def test_one_account_learns_exactly_the_pooled_fit(tmp_path: Path) -> None:
    """Nothing per account is written, and an account's own file left by an older fit of many
    accounts is removed: it would win over the pooled file in every run, stale for good."""
    settings = _TestSettings(home=str(tmp_path)).get()
    stale = model_files.account_posteriors_path(settings, "engagement", settings.x_handle)
    stale.write_text(json.dumps({"arms": ["single:ai"], "prior": [1, 1], "successes": [9.0],
                                 "failures": [1.0]}))  # fmt: skip
    _write_warehouse(settings, _outcomes(settings.x_handle, 5))
    result = _materialize(tmp_path, [arm_posteriors])
    assert _meta(result, "arm_posteriors")["per_account"] == {}
    assert not list((model_files.models_dir(settings) / "accounts").glob("*.json"))
    _, arms = model_files.load_posteriors(settings)
    assert len(arms) > 1  # the pooled fit's arms, not the stale file's one


def _posted(store: DurableStore, handle: str, n: int, start: datetime, first_id: int) -> None:
    """``n`` posted roots of ``handle``, 8 h apart, each with a 6 h snapshot."""
    from xbot_assets.store.durable.models import MetricSnapshot

    account = store.ensure_account(handle, now=start)
    for i in range(n):
        at = start + timedelta(hours=8 * i)
        topic = ("ai", "python", "startups")[i % 3]
        post = store.enqueue_post(account.id, f"{handle} post {i} on {topic}",
                                  arm=f"single:{topic}", scheduled_at=at, now=at)  # fmt: skip
        claim = store.claim_next_due(account.id, now=at)
        assert claim is not None
        store.mark_posted(post.id, x_id=str(first_id + i), attempt_id=claim.attempt_id, now=at)
        store.upsert_metrics([MetricSnapshot(post.id, "6h", at + timedelta(hours=6),
                                             impressions=800, likes=10 + (i % 3) * 5,
                                             replies=2, account_id=account.id)])  # fmt: skip


def _main_and_new_account(settings: Any) -> datetime:
    """The store holds the main account with 12 posts and ``acct_new`` with 3; returns the
    time by which all have a snapshot."""
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(settings.resolved_database_url)
    store = DurableStore.from_settings(settings)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    _posted(store, settings.x_handle, 12, start, 1000)
    _posted(store, "acct_new", 3, start + timedelta(minutes=30), 2000)
    store.close()
    return start + timedelta(hours=8 * 12)


def test_factored_posteriors_fits_each_account_and_flags_a_new_ones_cold_start(
    tmp_path: Path,
) -> None:
    """One run: the main account (12 posts) acts on its own fit, a new account (3 posts) on the
    pooled fit, flagged cold; each account's decisions load its own file."""
    from xbot_assets.engine.decide import load_models

    settings = _TestSettings(home=str(tmp_path)).get()
    now = _main_and_new_account(settings)
    # an account of an earlier fit that no longer takes part: its own file must not outlive it
    gone = settings.model_copy(update={"x_handle": "acct_gone"})
    gone_file = model_files.account_factored_path(settings, "engagement", "acct_gone")
    gone_file.write_text("{}")
    result = _materialize(tmp_path, [factored_posteriors], now=now)
    assert not gone_file.exists()
    assert model_files.factored_file(gone, "engagement").name.startswith(
        "factored_posteriors_pooled"
    )
    meta = _meta(result, "factored_posteriors")
    per_account = meta["per_account"]
    assert isinstance(per_account, dict)  # JSON metadata: {handle: its fit}
    main, new = per_account[settings.x_handle], per_account["acct_new"]
    assert main["acting_on"] == "own" and main["own_posts"] == 12 and not main["cold_start"]
    assert main["prior"] == "pooled effects"
    assert new["acting_on"] == "pooled" and new["own_posts"] == 3 and new["cold_start"]
    assert meta["cold_start_accounts"] == "acct_new" and meta["pooled_posts"] == 15
    assert meta["posts"] == 12  # the main file: the main account's own posterior
    models = {h: load_models(settings.model_copy(update={"x_handle": h}))
              for h in (settings.x_handle, "acct_new")}  # fmt: skip
    assert (
        models["acct_new"].posterior_file == "accounts/factored_posteriors_engagement_acct_new.json"
    )
    assert models["acct_new"].posterior.posts == 15  # the pooled fit
    assert models[settings.x_handle].posterior.posts == 12
    assert not np.allclose(models["acct_new"].posterior.mean,
                           models[settings.x_handle].posterior.mean)  # fmt: skip
    # the batch refill's path: each account's refill decides with its own file
    from xbot_assets.engine.decide import refill
    from xbot_assets.engine.runtime import build_runtime, forget_sandboxes
    from xbot_assets.engine.sensing import forget_stores

    try:
        for handle in (settings.x_handle, "acct_new"):
            runtime = build_runtime(settings, handle=handle, now=now)
            report = refill(runtime, n_candidates=2, max_slots=1)
            runtime.close()
            assert report.queued
            assert report.posterior_file == f"accounts/factored_posteriors_engagement_{handle}.json"
    finally:
        forget_stores()
        forget_sandboxes()


def test_many_accounts_start_from_the_population_prior_in_one_refit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LEARNING_PRIOR_FILE with many accounts: the pooled fit, each account's own fit and the
    files each account's decisions load are centred on it, and the metadata says so per account."""
    from xbot_assets.engine.decide import load_models
    from xbot_assets.learning.population_prior import PopulationPrior, save_prior

    path = save_prior(PopulationPrior("engagement", {"hashtags": -0.2}, {"text": 0.1}),
                      tmp_path / "prior.json")  # fmt: skip
    monkeypatch.setenv("LEARNING_PRIOR_FILE", str(path))
    settings = _TestSettings(home=str(tmp_path)).get()
    assert settings.learning_prior_file == path
    result = _materialize(tmp_path, [factored_posteriors], now=_main_and_new_account(settings))
    meta = _meta(result, "factored_posteriors")
    assert "population prior" in str(meta["prior"]) and "prior.json" in str(meta["prior"])
    per_account = meta["per_account"]
    assert isinstance(per_account, dict)
    assert per_account[settings.x_handle]["prior"] == "pooled effects, population prior"
    assert per_account["acct_new"]["prior"] == "population prior"
    for handle in (settings.x_handle, "acct_new"):
        models = load_models(settings.model_copy(update={"x_handle": handle}))
        assert models.posterior_file.startswith("accounts/")
        index = models.posterior.design.names.index("hashtags")
        # no post has a hashtag: the effect stays where the prior put it
        assert models.posterior.mean[index] == pytest.approx(-0.2)


def test_the_scorer_says_it_is_pooled_and_over_which_accounts(tmp_path: Path) -> None:
    from xbot_assets.defs.learning import engagement_scorer
    from xbot_assets.store.durable.migrate import upgrade

    settings = _TestSettings(home=str(tmp_path)).get()
    upgrade(settings.resolved_database_url)
    _write_warehouse(settings, pd.concat([_outcomes("acct_a", 5), _outcomes("acct_b", 9)]))
    accounts = _meta(_materialize(tmp_path, [engagement_scorer]), "engagement_scorer")["accounts"]
    assert isinstance(accounts, dict)  # JSON metadata
    assert accounts["posts_by_account"] == {"acct_a": 200, "acct_b": 200}
    assert accounts["per_account_model"] is False and "pooled" in accounts["why"]
