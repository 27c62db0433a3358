"""The dbt reward weights must equal the learning layer's one definition."""

from __future__ import annotations

from xbot_assets.learning.rewards import REWARD_WEIGHTS
from xbot_assets.warehouse.reward_seed import SEED_PATH, read_seed, render_seed


def test_dbt_seed_weights_equal_python_constants() -> None:
    assert read_seed() == REWARD_WEIGHTS, (
        "dbt/seeds/reward_weights.csv differs from learning/rewards.py REWARD_WEIGHTS: run "
        "`python -m xbot_assets.warehouse.reward_seed`"
    )


def test_seed_file_is_exactly_what_the_generator_writes() -> None:
    assert SEED_PATH.read_text() == render_seed()


def test_render_changes_when_a_weight_changes() -> None:
    changed = dict(REWARD_WEIGHTS, replies=1.0)
    assert render_seed(changed) != render_seed()
