"""Many accounts, each its own learning: with posts of several accounts in the warehouse,
``arm_posteriors`` also fits each account's posteriors on its posts alone, and an account's runs
load its own; a single account's learning is exactly the pooled fit (nothing else written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.learning.test_assets import _materialize, _meta, _TestSettings, _write_warehouse
from xbot_assets.defs.learning import arm_posteriors
from xbot_assets.learning import model_files
from xbot_assets.learning.synthetic import synthetic_post_outcomes


def _outcomes(handle: str, seed: int) -> pd.DataFrame:
    frame = synthetic_post_outcomes(200, seed=seed).drop(columns=["propensity"])
    return frame.assign(account=handle, post_id=[f"{handle}-{p}" for p in frame["post_id"]])


def test_each_account_gets_and_loads_its_own_posteriors(tmp_path: Path) -> None:
    settings = _TestSettings(home=str(tmp_path)).get()
    _write_warehouse(settings, pd.concat([_outcomes("acct_a", 5), _outcomes("acct_b", 9)]))
    result = _materialize(tmp_path, [arm_posteriors])
    per_account = _meta(result, "arm_posteriors")["per_account"]
    assert set(per_account) == {"acct_a", "acct_b"}  # type: ignore[arg-type]
    assert all(v["posts"] == 200 for v in per_account.values())  # type: ignore[union-attr]
    own = {}
    for handle in ("acct_a", "acct_b"):
        sampler, _ = model_files.load_posteriors(settings.model_copy(update={"x_handle": handle}))
        own[handle] = sampler.successes / (sampler.successes + sampler.failures)
    pooled, _ = model_files.load_posteriors(settings)  # X_HANDLE has no posts: the pooled fit
    assert not np.allclose(own["acct_a"], own["acct_b"])
    pooled_rate = pooled.successes / (pooled.successes + pooled.failures)
    assert not np.allclose(own["acct_a"], pooled_rate)


def test_one_account_learns_exactly_the_pooled_fit(tmp_path: Path) -> None:
    settings = _TestSettings(home=str(tmp_path)).get()
    _write_warehouse(settings, _outcomes(settings.x_handle, 5))
    result = _materialize(tmp_path, [arm_posteriors])
    assert _meta(result, "arm_posteriors")["per_account"] == {}
    assert not list((model_files.models_dir(settings) / "accounts").glob("*.json"))
