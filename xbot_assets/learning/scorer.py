"""The engagement scorer: will this post beat the account's rolling median reward?

A calibrated logistic regression (scikit-learn pipeline) on :mod:`features`; evaluated on the
most recent posts it did not see (a time split, so the figures say how it does on tomorrow's
posts), compared with a prior-only baseline (every post gets the base rate), and explained by a
statsmodels coefficient table with confidence intervals. Models are saved with skops (no
pickle: loading a file cannot run code) together with the feature schema and versions; a file
whose schema differs from the running code is refused with a message saying to retrain.

Saving and loading take a path: the only file I/O in the learning layer, called by the assets.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from xbot_assets.learning.features import (
    CATEGORICAL_FEATURES,
    FEATURE_SCHEMA,
    FEATURE_VERSION,
    NUMERIC_FEATURES,
    post_features,
    rolling_median_label,
)

SCORER_VERSION = "1"
MIN_TRAINING_ROWS = 40
"""Below this many labelled posts (or with one class only) the scorer is the prior-only baseline."""


class ScorerError(Exception):
    """A saved scorer that cannot be used; the message says what to do."""


class PriorOnlyScorer:
    """Every post gets the base rate: the cold-start scorer and the baseline to beat."""

    def __init__(self, base_rate: float = 0.5) -> None:
        self.base_rate = float(base_rate)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        p = np.full(len(features), self.base_rate)
        return np.column_stack([1 - p, p])


def build_pipeline(seed: int = 0) -> CalibratedClassifierCV:
    """One-hot categoricals + scaled numerics -> L2 logistic regression, sigmoid-calibrated."""
    preprocess = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", min_frequency=3),
                list(CATEGORICAL_FEATURES),
            ),
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
        ]
    )
    model = Pipeline(
        [
            ("features", preprocess),
            ("logit", LogisticRegression(C=0.5, max_iter=2000, random_state=seed)),
        ]
    )
    return CalibratedClassifierCV(model, method="sigmoid", cv=3)


@dataclass
class ScorerReport:
    """A trained scorer (or the cold-start baseline) with its held-out figures."""

    model: Any
    cold_start: bool
    training_rows: int
    test_rows: int
    base_rate: float
    metrics: dict[str, float | None]
    baseline_metrics: dict[str, float | None]
    calibration: pd.DataFrame
    coefficients: pd.DataFrame
    reason: str = ""
    schema: dict[str, Any] = field(default_factory=lambda: dict(FEATURE_SCHEMA))
    holdout: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["y", "p"]))
    """Held-out labels ``y`` and predicted probabilities ``p`` (for ROC and calibration plots)."""

    @property
    def beats_baseline(self) -> bool:
        """Held-out log loss strictly below the prior-only baseline's (cold start: False)."""
        model_loss, base_loss = self.metrics.get("log_loss"), self.baseline_metrics.get("log_loss")
        if self.cold_start or model_loss is None or base_loss is None:
            return False
        return model_loss < base_loss

    def metadata(self) -> dict[str, Any]:
        """Plain values for Dagster metadata (the asset turns tables into markdown)."""
        return {
            "cold_start": self.cold_start,
            "reason": self.reason,
            "training_rows": self.training_rows,
            "test_rows": self.test_rows,
            "base_rate": round(self.base_rate, 4),
            **{k: _round(v) for k, v in self.metrics.items()},
            **{f"baseline_{k}": _round(v) for k, v in self.baseline_metrics.items()},
            "beats_baseline": self.beats_baseline,
            "feature_version": FEATURE_VERSION,
            "scorer_version": SCORER_VERSION,
        }


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """AUC (None with one class), log loss and Brier score of probabilities ``p``."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None
    return {
        "auc": auc,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 5) -> pd.DataFrame:
    """Predicted versus observed rate per quantile bin of the predictions."""
    if len(y) == 0:
        return pd.DataFrame(columns=["bin", "posts", "mean_predicted", "observed_rate"])
    frame = pd.DataFrame({"y": y, "p": p})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), min(bins, len(frame)), labels=False)
    table = frame.groupby("bin").agg(
        posts=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean")
    )
    return table.reset_index().round(4)


def coefficient_table(features: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """statsmodels logit coefficients with 95 % intervals, for analysts (odds-ratio scale too).

    Categoricals are dummy-coded against their most common level. A design that statsmodels
    cannot fit (separation, a singular matrix) is fitted with a small ridge penalty instead and
    reported without intervals, flagged in the ``note`` column.
    """
    # The narrow import: statsmodels.api pulls in plotting and takes seconds more to load.
    from statsmodels.discrete.discrete_model import Logit

    design_parts = []
    for name in CATEGORICAL_FEATURES:
        column = features[name].astype(str)
        reference = column.value_counts().idxmax()
        dummies = pd.get_dummies(column, prefix=name, dtype=float)
        design_parts.append(dummies.drop(columns=f"{name}_{reference}"))
    numeric = features[list(NUMERIC_FEATURES)].astype(float)
    spread = numeric.std(ddof=0).replace(0, np.nan)
    design_parts.append(((numeric - numeric.mean()) / spread).dropna(axis=1, how="all"))
    design = pd.concat(design_parts, axis=1)
    design = design.loc[:, design.std(ddof=0) > 0]
    design.insert(0, "const", 1.0)
    design = _drop_collinear(design)
    note = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = Logit(y, design).fit(disp=0, maxiter=100)
            params, conf = fit.params, fit.conf_int(0.05)
            pvalues = fit.pvalues
            if not np.all(np.isfinite(conf.to_numpy())):
                raise ValueError("non-finite intervals")
        except (np.linalg.LinAlgError, ValueError):
            fit = Logit(y, design).fit_regularized(disp=0, alpha=1.0, maxiter=500)
            params = fit.params
            conf = pd.DataFrame(np.nan, index=params.index, columns=[0, 1])
            pvalues = pd.Series(np.nan, index=params.index)
            note = "ridge fit, no intervals (separation or collinearity)"
    table = pd.DataFrame(
        {
            "feature": params.index,
            "coef": params.to_numpy(),
            "ci95_low": conf.iloc[:, 0].to_numpy(),
            "ci95_high": conf.iloc[:, 1].to_numpy(),
            "p_value": pvalues.to_numpy(),
            "odds_ratio": np.exp(params.to_numpy()),
        }
    )
    table["note"] = note
    return table.round(4)


def _drop_collinear(design: pd.DataFrame, tol: float = 1e-8) -> pd.DataFrame:
    """Keep a linearly independent set of columns (pivoted QR), constant first.

    Features that are functions of others (a hook type that always goes with one format) make
    the design singular; dropping them keeps the table estimable and honest.
    """
    from scipy.linalg import qr

    values = design.to_numpy(dtype=float)
    _, r, pivot = qr(values, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    rank = int((diag > tol * diag.max()).sum()) if diag.size else 0
    keep = sorted(pivot[:rank].tolist())
    return design.iloc[:, keep]


def to_markdown(frame: pd.DataFrame, max_rows: int = 60) -> str:
    """A markdown table for Dagster metadata (no optional dependency needed)."""
    frame = frame.head(max_rows)
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *rows])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def labelled_posts(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Posts with a label, oldest first: (outcome rows, labels, features)."""
    if outcomes.empty:
        empty = post_features(pd.DataFrame({"format": [], "text": []}))
        return outcomes, np.array([], dtype=int), empty
    frame = outcomes.copy()
    if "beats_median" in frame and frame["beats_median"].notna().any():
        label = frame["beats_median"].astype(float)
    else:
        label = rolling_median_label(frame)
    frame = frame.loc[label.notna()]
    if "posted_at" in frame:
        frame = frame.assign(_t=pd.to_datetime(frame["posted_at"], utc=True))
        frame = frame.sort_values("_t", kind="stable").drop(columns="_t")
    y = label.loc[frame.index].astype(int).to_numpy()
    return frame, y, pd.DataFrame()


def train_scorer(
    outcomes: pd.DataFrame,
    *,
    timezone: str = "UTC",
    test_fraction: float = 0.25,
    seed: int = 0,
) -> ScorerReport:
    """Train on the oldest posts, evaluate on the newest, then refit on all for deployment.

    Args:
        outcomes: rows of ``fct_post_outcomes`` (``beats_median`` or ``reward`` + ``posted_at``).
        timezone: the account's time zone (features).
        test_fraction: share of the most recent labelled posts held out.
        seed: random seed of the model.

    Returns:
        A :class:`ScorerReport`; with too little data (or one class) the model is the
        prior-only baseline and ``cold_start`` is True with the reason.
    """
    frame, y, _ = labelled_posts(outcomes)
    features = post_features(frame, timezone=timezone) if len(frame) else frame
    n = len(y)
    base_rate = float(y.mean()) if n else 0.5
    empty_cal = calibration_table(np.array([]), np.array([]))
    empty_coef = pd.DataFrame(columns=["feature", "coef", "ci95_low", "ci95_high", "p_value"])
    n_test = max(1, round(n * test_fraction)) if n else 0
    y_train, y_test = y[: n - n_test], y[n - n_test :]
    reason = ""
    if n < MIN_TRAINING_ROWS:
        reason = f"{n} labelled posts, fewer than {MIN_TRAINING_ROWS}: using the base rate"
    elif len(np.unique(y_train)) < 2 or min(np.bincount(y_train, minlength=2)) < 3:
        reason = "the training posts are (almost) all one class: using the base rate"
    if reason:
        return ScorerReport(
            model=PriorOnlyScorer(base_rate),
            cold_start=True,
            training_rows=n,
            test_rows=0,
            base_rate=base_rate,
            metrics={"auc": None, "log_loss": None, "brier": None},
            baseline_metrics={"auc": None, "log_loss": None, "brier": None},
            calibration=empty_cal,
            coefficients=empty_coef,
            reason=reason,
        )
    x_train, x_test = features.iloc[: n - n_test], features.iloc[n - n_test :]
    held_out_model = build_pipeline(seed).fit(x_train, y_train)
    p_test = held_out_model.predict_proba(x_test)[:, 1]
    train_rate = float(y_train.mean())
    baseline_p = np.full(len(y_test), train_rate)
    final_model = build_pipeline(seed).fit(features, y)
    return ScorerReport(
        model=final_model,
        cold_start=False,
        training_rows=n,
        test_rows=len(y_test),
        base_rate=base_rate,
        metrics=classification_metrics(y_test, p_test),
        baseline_metrics=classification_metrics(y_test, baseline_p),
        calibration=calibration_table(y_test, p_test),
        coefficients=coefficient_table(features, y),
        holdout=pd.DataFrame({"y": y_test, "p": p_test}),
    )


def score_posts(
    model: Any, posts: pd.DataFrame | list[dict[str, Any]], **kwargs: Any
) -> np.ndarray:
    """Probability each post (or candidate) beats the median; kwargs go to ``post_features``."""
    features = post_features(posts, **kwargs)
    return np.asarray(model.predict_proba(features)[:, 1], dtype=float)


# --------------------------------------------------------------------------------------------
# Persistence (skops, not pickle)
# --------------------------------------------------------------------------------------------

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "xbot_assets.learning.scorer.PriorOnlyScorer")


def save_scorer(report: ScorerReport, path: Path) -> Path:
    """Write the model with its feature schema and versions as a skops file."""
    import skops.io as sio

    path.parent.mkdir(parents=True, exist_ok=True)
    bundle = {
        "model": report.model
        if not isinstance(report.model, PriorOnlyScorer)
        else {"prior_only": True, "base_rate": report.base_rate},
        "schema": report.schema,
        "scorer_version": SCORER_VERSION,
        "sklearn_version": sklearn.__version__,
        "cold_start": report.cold_start,
        "base_rate": report.base_rate,
    }
    from xbot_assets.files import replaced_whole

    with replaced_whole(path) as tmp:  # the posting path may be loading it
        sio.dump(bundle, tmp)
    return path


def load_scorer(path: Path) -> tuple[Any, dict[str, Any]]:
    """Load a skops scorer file; returns (model with ``predict_proba``, bundle info).

    Only scikit-learn and numpy types are trusted; anything else in the file is refused.

    Raises:
        ScorerError: missing file, untrusted content or a schema that differs from the code.
    """
    import skops.io as sio

    if not path.exists():
        raise ScorerError(f"no scorer at {path}: materialise the engagement_scorer asset first")
    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if refused:
        raise ScorerError(
            f"{path} holds types that are not trusted ({', '.join(refused[:5])}): "
            "delete it and retrain the engagement_scorer asset"
        )
    bundle = sio.load(path, trusted=untrusted)
    if bundle.get("schema") != FEATURE_SCHEMA or bundle.get("scorer_version") != SCORER_VERSION:
        raise ScorerError(
            f"{path} was trained with another feature schema or scorer version: "
            "retrain the engagement_scorer asset"
        )
    model = bundle["model"]
    if isinstance(model, dict) and model.get("prior_only"):
        model = PriorOnlyScorer(float(model["base_rate"]))
    info = {k: v for k, v in bundle.items() if k != "model"}
    return model, info


SCORER_POOLED_WHY = (
    "pooled over accounts: it ranks no decision (used_in_decisions), its features are each "
    "account's own (local hour from the account's time zone, hours since the account's own "
    "last post on the topic) and its label is beating the account's own rolling median, so "
    "what it pools is how text and timing features predict a post beating its own account"
)


def scorer_accounts(outcomes: pd.DataFrame) -> dict[str, Any]:
    """Which accounts' posts the (pooled) scorer was trained on, and why pooled is enough."""
    counts = outcomes["account"].value_counts() if "account" in outcomes else pd.Series()
    return {"posts_by_account": {str(k): int(v) for k, v in counts.items()},
            "per_account_model": False, "why": SCORER_POOLED_WHY}  # fmt: skip
