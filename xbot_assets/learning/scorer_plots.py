"""The scorer's held-out ROC curve and calibration plot as one PNG, for Dagster metadata.

Dagster's metadata has no image type; a Markdown value with the PNG embedded as a ``data:`` URI
renders as an image in the asset's metadata ("[Show Markdown]"), so an analyst sees the plots
without a notebook. A cold-start scorer has no held-out posts to plot; its image says how many
labelled posts it has and needs instead (flagged as a cold start, never a flat curve).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates of the held-out predictions (None-free, both classes)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return fpr, tpr


def scorer_plots_png(holdout: pd.DataFrame, calibration: pd.DataFrame) -> bytes | None:
    """ROC (left) and calibration (right) of the held-out posts; None when they cannot be drawn
    (cold start, or the held-out posts are all one class)."""
    if holdout.empty or holdout["y"].nunique() < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = holdout["y"].to_numpy(dtype=int)
    p = holdout["p"].to_numpy(dtype=float)
    fpr, tpr = roc_points(y, p)
    fig, (roc, cal) = plt.subplots(1, 2, figsize=(8, 3.6))
    try:
        roc.plot(fpr, tpr, color="#1d9bf0", label="scorer")
        roc.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance")
        roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (held out)")
        roc.legend(loc="lower right")
        cal.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect")
        if len(calibration):
            cal.plot(
                calibration["mean_predicted"],
                calibration["observed_rate"],
                marker="o",
                color="#1d9bf0",
                label="scorer",
            )
        cal.set(
            xlabel="mean predicted probability",
            ylabel="observed rate",
            title=f"Calibration ({len(y)} held-out posts)",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        cal.legend(loc="upper left")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def cold_start_png(labelled: int, positives: int, needed: int) -> bytes:
    """What a cold-start scorer has instead of a ROC curve: the labelled posts so far by class
    against the number it needs to train, so the page says how far off a trained model is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.4))
    try:
        ax.barh([0], [positives], color="#1d9bf0", label="beat the rolling median")
        ax.barh([0], [labelled - positives], left=[positives], color="#c7d3dd", label="did not")
        ax.axvline(needed, color="#d9534f", linestyle="--", label=f"needed to train ({needed})")
        ax.set(
            xlim=(0, max(needed, labelled) * 1.05),
            yticks=[],
            xlabel="labelled posts",
            title=f"Cold start: {labelled} of {needed} labelled posts; the ROC and calibration "
            "plots appear once the scorer trains",
        )
        ax.title.set_fontsize(9)
        fig.legend(loc="lower center", fontsize=7, ncols=3, frameon=False)
        fig.tight_layout(rect=(0, 0.14, 1, 1))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def scorer_plots_markdown(
    holdout: pd.DataFrame,
    calibration: pd.DataFrame,
    *,
    labelled: int = 0,
    positives: int = 0,
    needed: int | None = None,
) -> str:
    """Markdown with the plots embedded as a PNG ``data:`` URI. The Dagster UI shows a long
    Markdown value behind "[Show Markdown]" and renders ``data:`` images there (its sanitiser
    allows the ``data`` protocol for ``src``). At a cold start the image is the labelled-post
    count against ``needed``, titled as a cold start."""
    png = scorer_plots_png(holdout, calibration)
    if png is not None:
        alt = "ROC and calibration of the held-out posts"
    else:
        if needed is None:
            from xbot_assets.learning.scorer import MIN_TRAINING_ROWS

            needed = MIN_TRAINING_ROWS
        png = cold_start_png(labelled, positives, needed)
        alt = f"Cold start: {labelled} of {needed} labelled posts, no ROC or calibration yet"
    data = base64.b64encode(png).decode()
    return f"![{alt}](data:image/png;base64,{data})"
