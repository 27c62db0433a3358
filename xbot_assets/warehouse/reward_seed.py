"""The dbt seed of reward weights, generated from the one definition in ``learning/rewards.py``.

dbt reads ``dbt/seeds/reward_weights.csv``; ``python -m xbot_assets.warehouse.reward_seed``
rewrites it from :data:`xbot_assets.learning.rewards.REWARD_WEIGHTS`, and a test fails whenever
the two differ, so the warehouse's reward can never drift from the learning code's.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from xbot_assets.learning.rewards import REWARD_WEIGHTS
from xbot_assets.warehouse.project import DBT_PROJECT_DIR

SEED_PATH = DBT_PROJECT_DIR / "seeds" / "reward_weights.csv"


def render_seed(weights: dict[str, float] | None = None) -> str:
    """The seed's CSV text: one ``metric,weight`` row per weighted engagement."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "weight"])
    for metric, weight in (weights or REWARD_WEIGHTS).items():
        writer.writerow([metric, repr(float(weight))])
    return out.getvalue()


def read_seed(path: Path = SEED_PATH) -> dict[str, float]:
    """The weights the dbt seed holds."""
    with path.open(newline="") as handle:
        return {row["metric"]: float(row["weight"]) for row in csv.DictReader(handle)}


def write_seed(path: Path = SEED_PATH) -> Path:
    """Rewrite the seed from the Python constants."""
    path.write_text(render_seed())
    return path


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print(write_seed())
