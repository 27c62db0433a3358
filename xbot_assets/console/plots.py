"""The learning page's figures (the ones the notebooks draw), as PNG bytes.

Drawn with matplotlib's object API (``Figure`` + Agg canvas: no pyplot global state, safe in a
server thread) and cached by the data they show, so a page view costs a lookup.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

_CACHE: dict[str, bytes] = {}
_LOCK = threading.Lock()
MAX_CACHE = 64


def _cached(kind: str, data: Any, draw: Callable[[], bytes]) -> bytes:
    key = kind + hashlib.sha256(json.dumps(data, default=str).encode()).hexdigest()
    with _LOCK:
        found = _CACHE.get(key)
    if found is not None:
        return found
    png = draw()
    with _LOCK:
        if len(_CACHE) >= MAX_CACHE:
            _CACHE.clear()
        _CACHE[key] = png
    return png


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=80, bbox_inches="tight")
    return out.getvalue()


def interval_chart(
    rows: Sequence[dict[str, Any]], *, label: str, title: str, limit: int = 25
) -> bytes:
    """Posterior means with 90 % intervals, one row per arm (best ``limit`` by mean)."""
    shown: list[dict[str, Any]] = [
        {
            "name": str(r[label]),
            "mean": float(r["mean"]),
            "low": float(r["ci90_low"]),
            "high": float(r["ci90_high"]),
        }
        for r in list(rows)[:limit]
    ]

    def draw() -> bytes:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, max(2.0, 0.26 * len(shown) + 0.8)))
        ax = fig.add_subplot()
        names = [r["name"] for r in shown][::-1]
        means = [r["mean"] for r in shown][::-1]
        lows = [r["mean"] - r["low"] for r in shown][::-1]
        highs = [r["high"] - r["mean"] for r in shown][::-1]
        ax.errorbar(means, range(len(shown)), xerr=[lows, highs], fmt="o", color="#1d9bf0")
        ax.set_yticks(range(len(shown)), names, fontsize=8)
        ax.set_xlabel("posterior mean engagement rate (90 % interval)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)

    return _cached("interval", [title, shown], draw)


def hour_chart(rows: Sequence[dict[str, Any]], *, title: str) -> bytes:
    """Posterior mean per local hour with 90 % intervals; quiet hours greyed."""
    shown: list[dict[str, Any]] = [
        {
            "hour": int(str(r["arm"])[:2]),
            "mean": float(r["mean"]),
            "low": float(r["ci90_low"]),
            "high": float(r["ci90_high"]),
            "quiet": bool(r.get("quiet")),
        }
        for r in rows
    ]

    def draw() -> bytes:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 2.6))
        ax = fig.add_subplot()
        for r in shown:
            color = "#bbbbbb" if r["quiet"] else "#1d9bf0"
            ax.errorbar(
                r["hour"],
                r["mean"],
                yerr=[[r["mean"] - r["low"]], [r["high"] - r["mean"]]],
                fmt="o",
                color=color,
            )
        ax.set_xticks(range(0, 24, 2))
        ax.set_xlabel("local hour (grey: quiet hours)")
        ax.set_ylabel("engagement rate")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        return _png(fig)

    return _cached("hours", [title, shown], draw)
