"""Every account's own factored posterior in one pass (``learning/account_policy.py``): accounts
with opposite audiences learn opposite topic effects; a new account acts on the pooled fit until
it has enough posts of its own, then on its own fit with the pooled effects as its prior; one
account is exactly the single fit the policy always had."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from xbot_assets.learning.account_policy import (
    MIN_OWN_POSTS,
    AccountHistory,
    AccountsFit,
    best_arm,
    fit_accounts,
)
from xbot_assets.learning.design import PastPost
from xbot_assets.learning.factored import FitConfig, fit_factored
from xbot_assets.learning.horizon import HorizonModel
from xbot_assets.learning.posterior import FactoredPosterior

FORMATS = ("single", "thread")
TOPICS = ("ai", "python", "startups")
START = datetime(2026, 1, 5, tzinfo=UTC)
BASE_RATE = 0.03


def _history(topic_effect: dict[str, float], n: int, seed: int, *, offset_min: int = 0
             ) -> list[PastPost]:  # fmt: skip
    """Posts every 6 h cycling the arms; likes and replies ~ Poisson at the audience's rate."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        at = START + timedelta(hours=6 * i, minutes=offset_min)
        topic, fmt = TOPICS[i % len(TOPICS)], FORMATS[(i // len(TOPICS)) % len(FORMATS)]
        rate = BASE_RATE * np.exp(topic_effect[topic])
        metrics = {"impressions": 1000, "likes": int(rng.poisson(1000 * rate)),
                   "replies": int(rng.poisson(100 * rate))}  # fmt: skip
        out.append(PastPost(at, fmt, topic, f"{fmt} post {i} on {topic} {seed}", metrics, "72h"))
    return out


LIKES_AI = {"ai": 0.7, "python": 0.0, "startups": -0.7}
LIKES_STARTUPS = {"ai": -0.7, "python": 0.0, "startups": 0.7}


def _fit(*accounts: AccountHistory, now: datetime) -> AccountsFit:
    return fit_accounts(accounts, now=now, formats=FORMATS, topics=TOPICS,
                        config=FitConfig(), main_timezone=accounts[0].timezone)  # fmt: skip


def _contrast(posterior: FactoredPosterior) -> float:
    effects = posterior.effects()
    return float(effects["topic=ai"]["mean"] - effects["topic=startups"]["mean"])


def test_accounts_with_opposite_audiences_learn_opposite_effects() -> None:
    a = AccountHistory("acct_a", "UTC", _history(LIKES_AI, 60, seed=1))
    b = AccountHistory("acct_b", "Europe/Paris", _history(LIKES_STARTUPS, 60, seed=2, offset_min=7))
    now = START + timedelta(days=20)
    fit = _fit(a, b, now=now)
    own_a, own_b = fit.accounts["acct_a"], fit.accounts["acct_b"]
    assert own_a.acting_on == own_b.acting_on == "own" and not own_a.cold_start
    assert own_a.own_posts == own_b.own_posts == 60 and fit.pooled.posts == 120
    assert own_a.prior == "pooled effects"
    assert _contrast(own_a.posterior) > 0.8 and _contrast(own_b.posterior) < -0.8
    assert abs(_contrast(fit.pooled)) < 0.5  # the two cancel
    assert own_b.posterior.timezone == "Europe/Paris"
    arms = [(f, t) for f in FORMATS for t in TOPICS]
    assert best_arm(own_a.posterior, now, a.history, arms).endswith(":ai")
    assert best_arm(own_b.posterior, now, b.history, arms).endswith(":startups")


def test_a_new_account_acts_on_the_pooled_fit_until_it_has_its_own_posts() -> None:
    owner = AccountHistory("acct_a", "UTC", _history(LIKES_AI, 90, seed=3))
    few = _history(LIKES_STARTUPS, MIN_OWN_POSTS - 1, seed=4, offset_min=5)
    now = START + timedelta(days=25)
    fit = _fit(owner, AccountHistory("acct_new", "Asia/Tokyo", few), now=now)
    new = fit.accounts["acct_new"]
    assert new.acting_on == "pooled" and new.cold_start and new.own_posts == MIN_OWN_POSTS - 1
    assert np.array_equal(new.posterior.mean, fit.pooled.mean)
    assert new.posterior.timezone == "Asia/Tokyo"  # the pooled effects, its own local hours
    assert "pooled fit" in new.describe()

    more = _history(LIKES_STARTUPS, MIN_OWN_POSTS + 2, seed=4, offset_min=5)
    fit = _fit(owner, AccountHistory("acct_new", "Asia/Tokyo", more), now=now)
    new = fit.accounts["acct_new"]
    assert new.acting_on == "own" and new.prior == "pooled effects" and not new.cold_start
    # The pooled prior pulls a 12-post account towards the owner's taste (ai over startups)
    # compared with the same posts fitted from the zero-centred prior.
    alone = fit_factored(more, now=now, formats=FORMATS, topics=TOPICS, timezone="Asia/Tokyo",
                         horizon_model=fit.horizon)  # fmt: skip
    assert _contrast(new.posterior) > _contrast(alone) + 0.05


def test_a_new_account_on_the_pooled_fit_explores_by_its_own_post_count() -> None:
    """The exploration schedule follows the account's own posts, not the fleet's: a new account
    acting on an old fleet's pooled fit draws as widely as a new account."""
    config = FitConfig(exploration_hold_posts=0, exploration_posts=100)  # falls from post 0
    owner = AccountHistory("acct_a", "UTC", _history(LIKES_AI, 90, seed=3))
    few = AccountHistory("acct_new", "UTC", _history(LIKES_STARTUPS, 3, seed=4, offset_min=5))
    fit = fit_accounts((owner, few), now=START + timedelta(days=25), formats=FORMATS,
                       topics=TOPICS, config=config, main_timezone="UTC")  # fmt: skip
    new = fit.accounts["acct_new"]
    assert new.acting_on == "pooled" and new.own_posts == 3 and fit.pooled.posts == 93
    assert new.posterior.exploration == config.exploration_at(3)
    assert new.posterior.exploration > fit.pooled.exploration + 0.1  # 0.24 against 0.14
    assert np.array_equal(new.posterior.mean, fit.pooled.mean)


def test_one_account_is_exactly_its_single_fit() -> None:
    history = _history(LIKES_AI, 40, seed=5)
    now = START + timedelta(days=12)
    fit = _fit(AccountHistory("solo", "Europe/Paris", history), now=now)
    single = fit_factored(history, now=now, formats=FORMATS, topics=TOPICS,
                          timezone="Europe/Paris", horizon_model=HorizonModel())  # fmt: skip
    (only,) = fit.accounts.values()
    assert only.posterior is fit.pooled and only.acting_on == "own"
    assert np.array_equal(only.posterior.mean, single.mean)
    assert np.array_equal(only.posterior.cov, single.cov)


def test_no_evidence_anywhere_is_the_prior_for_every_account() -> None:
    fit = _fit(AccountHistory("a", "UTC", []), AccountHistory("b", "UTC", []), now=START)
    assert {f.acting_on for f in fit.accounts.values()} == {"prior"}
    assert all(f.cold_start and f.prior == "default" for f in fit.accounts.values())


def test_the_pooled_fit_keeps_each_accounts_recency_its_own() -> None:
    """Two accounts posting the same topics minutes apart, the second to an audience twice as
    engaged: merged naively, each of its posts would see the other's same-topic post minutes
    earlier as its own recent post, and the pooled fit would credit that recency with the
    second audience's higher rate. Kept apart, both accounts' recency is alike and its effect
    stays near zero."""
    twice = {t: e + np.log(2.0) for t, e in LIKES_AI.items()}
    a = _history(LIKES_AI, 45, seed=6)
    b = _history(twice, 45, seed=7, offset_min=2)
    now = START + timedelta(days=15)
    fit = _fit(AccountHistory("a", "UTC", a), AccountHistory("b", "UTC", b), now=now)
    names = fit.pooled.names
    kept_apart = fit.pooled.mean[names.index("topic_recent_12h")]
    merged = fit_factored(sorted(a + b, key=lambda p: p.posted_at), now=now, formats=FORMATS,
                          topics=TOPICS)  # fmt: skip
    naive = merged.mean[names.index("topic_recent_12h")]
    assert abs(kept_apart) < 0.15 < naive


def test_an_accounts_decisions_load_its_own_file_else_the_pooled_else_the_main(
    tmp_path: Path,
) -> None:
    from xbot_assets.config import load_settings
    from xbot_assets.learning import model_files

    settings = load_settings(env_file=None, xbot_home=tmp_path, app_env="local")
    a = settings.model_copy(update={"x_handle": "Acct_A"})
    assert model_files.factored_file(a, "engagement") == model_files.factored_path(a, "engagement")
    pooled = model_files.pooled_factored_path(a, "engagement")
    pooled.write_text("{}")
    assert model_files.factored_file(a, "engagement") == pooled  # added after the last fit
    own = model_files.account_factored_path(a, "engagement", "acct_a")
    own.write_text("{}")
    assert model_files.factored_file(a, "engagement") == own
    other = model_files.account_factored_path(a, "engagement", "acct_b")
    other.write_text("{}")
    growth = model_files.account_factored_path(a, "growth", "acct_c")
    growth.write_text("{}")
    kept = ["Acct_A"]  # handles as the store spells them
    assert model_files.prune_account_files(a, "factored_posteriors", "engagement", keep=kept) == [
        other
    ]
    assert own.exists() and growth.exists()
    assert set(model_files.remove_account_factored(a, "engagement")) == {own, pooled}
    assert growth.exists()  # another objective's files are its own fit's business
    assert model_files.factored_file(a, "engagement") == model_files.factored_path(a, "engagement")


def test_the_refit_benchmarks_quick_mode_reports_cost_per_account(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "account_refit.json"
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "account_refit.py"), "--quick",
         "--repeats", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["accounts"] for r in result["sizes"]] == [1, 2, 4]
    assert all(r["cpu_s"] > 0 for r in result["sizes"])
    assert set(result["per_account_vs_single"]) == {"1", "2", "4"}


def test_model_files_are_replaced_whole_never_written_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refill loads the model files while a refit writes them: until a write is complete the
    old file stays whole (a half-written one would not parse, and the refill would act on the
    cold-start prior), and no temporary file is left behind."""
    import os

    from xbot_assets.config import load_settings
    from xbot_assets.engine.decide import prior_models
    from xbot_assets.learning import model_files
    from xbot_assets.learning.horizon import HorizonModel
    from xbot_assets.learning.scorer import load_scorer, save_scorer, train_scorer
    from xbot_assets.learning.synthetic import synthetic_post_outcomes

    settings = load_settings(env_file=None, xbot_home=tmp_path, app_env="local")
    path = model_files.factored_path(settings, "engagement")
    posterior = prior_models(now=START).posterior
    model_files.write_factored(path, posterior, HorizonModel())
    before = path.read_text()
    scorer_path = tmp_path / "scorer.skops"
    report = train_scorer(synthetic_post_outcomes(5, seed=1))  # the cold-start baseline
    save_scorer(report, scorer_path)
    scorer_before = scorer_path.read_bytes()

    def interrupted(src: object, dst: object) -> None:
        raise OSError("the machine stopped mid-write")

    newer = HorizonModel(shares={"6h": {"likes": 0.7}}, fitted_from={"6h": 12})
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError):
        model_files.write_factored(path, posterior, newer)
    with pytest.raises(OSError):
        save_scorer(report, scorer_path)
    assert path.read_text() == before  # the old posterior, whole
    assert scorer_path.read_bytes() == scorer_before
    monkeypatch.undo()
    model_files.write_factored(path, posterior, newer)
    assert json.loads(path.read_text())["horizon_model"] != json.loads(before)["horizon_model"]
    load_scorer(scorer_path)
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []  # nor the interrupted ones
