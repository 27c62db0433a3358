"""The learning assets materialise on a real DuckDB warehouse, and on an empty one (cold start)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from xbot_assets.config import Settings, load_settings
from xbot_assets.defs.learning import (
    arm_posteriors,
    engagement_scorer,
    factored_posteriors,
    learned_config,
    load_factored,
    offline_policy_evaluation,
)
from xbot_assets.defs.resources import XbotRuntime, XbotSettings
from xbot_assets.learning.scorer import load_scorer
from xbot_assets.learning.synthetic import synthetic_post_outcomes


class _TestSettings(XbotSettings):
    home: str

    def get(self) -> Settings:
        return load_settings(env_file=None, xbot_home=Path(self.home), app_env="local")


def _write_warehouse(settings: Settings, frame: pd.DataFrame) -> None:
    settings.resolved_warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.resolved_warehouse_path))
    try:
        con.execute("create schema if not exists marts")
        con.register(
            "frame", frame.assign(is_final=1, beats_median=frame["beats_median"].astype(float))
        )
        con.execute("create or replace table marts.fct_post_outcomes as select * from frame")
    finally:
        con.close()


def _materialize(
    tmp_path: Path, assets: list[dg.AssetsDefinition], *, now: datetime | None = None
) -> dg.ExecuteInProcessResult:
    """Materialise ``assets`` on the settings of ``tmp_path``; ``now``: the run's simulated
    clock (the store's snapshots are read as of then), else the wall clock."""
    return dg.materialize(
        assets,
        resources={
            "xbot_settings": _TestSettings(home=str(tmp_path)),
            "xbot_runtime": XbotRuntime(simulated_now=now.isoformat() if now else None),
        },
        raise_on_error=True,
    )


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    event = result.asset_materializations_for_node(key)[0]
    return {k: v.value for k, v in event.metadata.items()}


def test_assets_learn_from_the_warehouse_and_write_bot_config(tmp_path: Path) -> None:
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade

    settings = _TestSettings(home=str(tmp_path)).get()
    upgrade(settings.resolved_database_url)
    outcomes = synthetic_post_outcomes(400, seed=5).drop(columns=["propensity"])
    _write_warehouse(settings, outcomes)
    result = _materialize(
        tmp_path, [engagement_scorer, arm_posteriors, offline_policy_evaluation, learned_config]
    )
    assert result.success
    scorer = _meta(result, "engagement_scorer")
    assert scorer["cold_start"] is False and scorer["training_rows"] == 399
    for name in ("auc", "log_loss", "brier", "calibration", "coefficients"):
        assert name in scorer
    assert "| feature | coef | ci95_low |" in str(scorer["coefficients"])
    # The ROC and calibration plots: a real PNG embedded in the Markdown metadata.
    plots = str(scorer["plots"])
    assert plots.startswith("![ROC and calibration") and "data:image/png;base64," in plots
    png = base64.b64decode(plots.split("base64,", 1)[1].rstrip(")"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 1 and checks[0].passed
    _model, info = load_scorer(Path(str(scorer["model_path"])))
    assert info["cold_start"] is False
    posteriors = _meta(result, "arm_posteriors")
    assert posteriors["cold_start"] is False and posteriors["posts"] == 400
    ope = _meta(result, "offline_policy_evaluation")
    assert "frequencies" in str(ope["propensities"])  # no logged propensities: flagged
    assert "greedy_scorer" in str(ope["estimates"]) and "thompson_current" in str(ope["estimates"])
    # learned_config: written to bot_config with an audit_log entry.
    store = DurableStore.from_settings(settings)
    learned = store.get_config("learned")
    assert learned["cold_start"] is False and len(learned["best_topics"]) == 3
    assert learned["best_slots"]
    events = store.list_audit()
    assert any(getattr(e, "event_type", None) == "config_changed" for e in events)
    # what operators watch on /metrics: the promoted model's AUC and the regret estimate
    promoted = store.get_config("model.engagement_scorer")
    assert promoted["deployed"] == "logistic_regression"
    assert promoted["auc"] == pytest.approx(scorer["auc"], abs=1e-4)  # metadata is rounded
    assert any(getattr(e, "event_type", None) == "model.promoted" for e in events)
    estimates = store.get_config("policy.estimates")
    assert estimates["regret_estimate"] == pytest.approx(ope["regret_estimate"])
    assert estimates["regret_estimate"] >= 0
    assert set(estimates["values"]) >= {"random", "thompson_current"}


def test_assets_cold_start_without_a_warehouse(tmp_path: Path) -> None:
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(_TestSettings(home=str(tmp_path)).get().resolved_database_url)
    with pytest.raises(dg.Failure, match="materialise arm_posteriors first"):
        _materialize(tmp_path, [learned_config])
    result = _materialize(tmp_path, [engagement_scorer, arm_posteriors, offline_policy_evaluation])
    assert result.success
    assert _meta(result, "engagement_scorer")["cold_start"] is True
    assert "prior_only" in str(_meta(result, "engagement_scorer")["deployed"])
    # No held-out posts to plot: the image says how far off training is, flagged as a cold start.
    plots = str(_meta(result, "engagement_scorer")["plots"])
    assert plots.startswith("![Cold start: 0 of 40 labelled posts") and "ROC" in plots
    png = base64.b64decode(plots.split("base64,", 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG")
    assert result.get_asset_check_evaluations()[0].passed
    posteriors = _meta(result, "arm_posteriors")
    assert posteriors["cold_start"] is True and posteriors["prior_alpha"] == 1.0
    assert "cold start" in str(posteriors["best_arm"])
    assert _meta(result, "offline_policy_evaluation")["cold_start"] is True


def test_factored_posteriors_refit_from_store_snapshots(tmp_path: Path) -> None:
    """Cold start flags the prior; then >= 6 h snapshots in the store (no warehouse, no 72 h
    snapshot) are evidence, and the policy can load what was saved."""
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade
    from xbot_assets.store.durable.models import MetricSnapshot

    settings = _TestSettings(home=str(tmp_path)).get()
    upgrade(settings.resolved_database_url)
    cold = _materialize(tmp_path, [factored_posteriors])
    meta = _meta(cold, "factored_posteriors")
    assert meta["cold_start"] is True and "cold start" in str(meta["best_arm_now"])

    store = DurableStore.from_settings(settings)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    account = store.ensure_account(settings.x_handle, now=start)
    for i in range(12):
        at = start + timedelta(hours=8 * i)
        topic = ("ai", "python", "startups")[i % 3]
        post = store.enqueue_post(
            account.id, f"post {i} on {topic}", arm=f"single:{topic}", scheduled_at=at, now=at
        )
        claim = store.claim_next_due(account.id, now=at)
        assert claim is not None
        store.mark_posted(post.id, x_id=str(1000 + i), attempt_id=claim.attempt_id, now=at)
        store.upsert_metrics(
            [MetricSnapshot(post.id, "6h", at + timedelta(hours=6), impressions=800,
                            replies=3 + i % 3, likes=10, account_id=account.id)]
        )  # fmt: skip
    store.close()
    result = _materialize(tmp_path, [factored_posteriors], now=start + timedelta(hours=8 * 12))
    meta = _meta(result, "factored_posteriors")
    assert meta["cold_start"] is False and meta["posts"] == 12
    assert "6h" in str(meta["horizons_used"]) and "cold start" not in str(meta["best_arm_now"])
    posterior = load_factored(settings)
    assert posterior.posts == 12 and not posterior.cold_start
