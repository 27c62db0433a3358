"""The scorer learns real signal, beats the prior-only baseline, and saves without pickle."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbot_assets.learning.features import FEATURE_SCHEMA, post_features, rolling_median_label
from xbot_assets.learning.scorer import (
    PriorOnlyScorer,
    ScorerError,
    ScorerReport,
    load_scorer,
    save_scorer,
    score_posts,
    to_markdown,
    train_scorer,
)
from xbot_assets.learning.synthetic import synthetic_post_outcomes, true_arm_rates


@pytest.fixture(scope="module")
def outcomes() -> pd.DataFrame:
    return synthetic_post_outcomes(500, seed=3)


@pytest.fixture(scope="module")
def report(outcomes: pd.DataFrame) -> ScorerReport:
    return train_scorer(outcomes)


def test_features_read_text_time_and_topic_recency() -> None:
    posts = pd.DataFrame(
        {
            "account": ["a", "a", "a"],
            "posted_at": pd.to_datetime(
                ["2026-03-02T07:00Z", "2026-03-02T19:30Z", "2026-03-03T07:00Z"], utc=True
            ),
            "topic": ["python", "ai", "python"],
            "format": ["how_to", "question", "list"],
            "text": [
                "How to test asyncio code with pytest https://x.test #python",
                "Which LLM do you trust?",
                "3 Python habits:\n1. typing\n2. pytest\n3. ruff",
            ],
        }
    )
    feats = post_features(posts, timezone="Europe/Paris")
    assert list(feats.columns) == FEATURE_SCHEMA["categorical"] + FEATURE_SCHEMA["numeric"]
    assert feats["hook_type"].tolist() == ["how_to", "question", "number"]
    assert feats["has_link"].tolist() == [1.0, 0.0, 0.0]
    assert feats["n_hashtags"].tolist() == [1.0, 0.0, 0.0]
    assert feats["daypart"].tolist() == ["morning", "evening", "morning"]  # 08:00, 20:30 Paris
    # The second python post came 24 h after the first; the others had no earlier same topic.
    assert feats["log_hours_since_topic"].iloc[2] == pytest.approx(np.log1p(24.0))
    assert feats["log_hours_since_topic"].iloc[0] == feats["log_hours_since_topic"].iloc[1]
    with pytest.raises(ValueError, match="ACCOUNT_TIMEZONE"):
        post_features(posts, timezone="Mars/Olympus")


def test_rolling_median_label_matches_its_definition() -> None:
    frame = pd.DataFrame(
        {
            "account": ["a"] * 4,
            "posted_at": pd.date_range("2026-01-01", periods=4, freq="h", tz="UTC"),
            "reward": [1.0, 3.0, 2.0, 2.5],
        }
    )
    label = rolling_median_label(frame)
    assert np.isnan(label.iloc[0])
    assert label.iloc[1:].tolist() == [1.0, 0.0, 1.0]  # 3>1, 2<median(1,3)=2? no, 2.5>2


def test_scorer_beats_prior_only_baseline_on_data_with_signal(
    outcomes: pd.DataFrame, report: ScorerReport
) -> None:
    assert not report.cold_start
    assert report.beats_baseline
    assert report.metrics["auc"] is not None and report.metrics["auc"] > 0.62
    brier, baseline_brier = report.metrics["brier"], report.baseline_metrics["brier"]
    assert brier is not None and baseline_brier is not None and brier < baseline_brier
    assert report.calibration["posts"].sum() == report.test_rows
    # The coefficient table has intervals and names the features analysts care about.
    table = report.coefficients
    assert table["ci95_low"].notna().all() and (table["ci95_low"] <= table["coef"]).all()
    assert "| feature | coef |" in to_markdown(table)
    # The best arm's posts score higher than the worst arm's.
    rates = true_arm_rates(3)
    best, worst = max(rates, key=rates.__getitem__), min(rates, key=rates.__getitem__)
    scores = score_posts(report.model, outcomes)
    assert scores[outcomes["arm"] == best].mean() > scores[outcomes["arm"] == worst].mean()


def test_scorer_does_not_beat_baseline_on_noise(outcomes: pd.DataFrame) -> None:
    noise = outcomes.copy()
    noise["beats_median"] = np.random.default_rng(0).random(len(noise)) < 0.5
    report = train_scorer(noise)
    assert report.metrics["auc"] is not None and report.metrics["auc"] < 0.62


def test_cold_start_is_the_prior_only_baseline_and_flagged(outcomes: pd.DataFrame) -> None:
    report = train_scorer(outcomes.head(12))
    assert report.cold_start and "fewer than" in report.reason
    assert isinstance(report.model, PriorOnlyScorer)
    assert report.metadata()["cold_start"] is True
    empty = train_scorer(outcomes.head(0))
    assert empty.cold_start and empty.training_rows == 0


def test_save_and_load_round_trip_without_pickle(
    outcomes: pd.DataFrame, report: ScorerReport, tmp_path: Path
) -> None:
    path = save_scorer(report, tmp_path / "scorer.skops")
    with zipfile.ZipFile(path) as archive:  # skops files are zip archives of JSON + arrays
        names = archive.namelist()
        assert "schema.json" in names
        assert not any(name.endswith(".pkl") for name in names)
    model, info = load_scorer(path)
    assert info["schema"] == FEATURE_SCHEMA
    np.testing.assert_allclose(
        score_posts(model, outcomes.head(20)), score_posts(report.model, outcomes.head(20))
    )
    cold = save_scorer(train_scorer(outcomes.head(5)), tmp_path / "cold.skops")
    cold_model, cold_info = load_scorer(cold)
    assert cold_info["cold_start"] and isinstance(cold_model, PriorOnlyScorer)


def test_load_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScorerError, match="materialise the engagement_scorer"):
        load_scorer(tmp_path / "nope.skops")
