"""The scorer's held-out ROC curve and calibration plot as one PNG, for Dagster metadata.

Dagster's metadata has no image type; a Markdown value with the PNG embedded as a ``data:`` URI
renders as an image on the asset's page, so an analyst sees the plots without a notebook.
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


def scorer_plots_markdown(holdout: pd.DataFrame, calibration: pd.DataFrame) -> str:
    """Markdown with the plots embedded (or a line saying why there are none)."""
    png = scorer_plots_png(holdout, calibration)
    if png is None:
        return "_No plots: too few held-out posts of both classes (cold start)._"
    data = base64.b64encode(png).decode()
    return f"![ROC and calibration of the held-out posts](data:image/png;base64,{data})"
