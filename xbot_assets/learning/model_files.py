"""Where the learning assets keep their fitted models, and how the policy loads them.

The engine (``engine/decide.py``) and the Dagster assets (``defs/learning.py``) both read these
files; keeping the loaders here lets the engine load models without importing Dagster wiring.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xbot_assets.files import write_atomic  # model files are replaced whole: see xbot_assets/files


class ModelFileMissing(FileNotFoundError):
    """A model asset has not been materialised yet (the policy then acts on its prior)."""


def models_dir(settings: Any) -> Path:
    """``$XBOT_HOME/models/<APP_ENV>``, created on first use."""
    path = Path(settings.xbot_home) / "models" / settings.app_env
    path.mkdir(parents=True, exist_ok=True)
    return path


def posteriors_path(settings: Any, objective: str) -> Path:
    return models_dir(settings) / f"arm_posteriors_{objective}.json"


def account_posteriors_path(settings: Any, objective: str, handle: str) -> Path:
    """One account's own ``arm_posteriors`` (written when the environment has many accounts)."""
    folder = models_dir(settings) / "accounts"
    folder.mkdir(exist_ok=True)
    return folder / f"arm_posteriors_{objective}_{handle.lower()}.json"


def factored_path(settings: Any, objective: str) -> Path:
    """The main account's factored posterior (the one file a single account has)."""
    return models_dir(settings) / f"factored_posteriors_{objective}.json"


def account_factored_path(settings: Any, objective: str, handle: str) -> Path:
    """One account's own factored posterior (written when the environment has many accounts)."""
    folder = models_dir(settings) / "accounts"
    folder.mkdir(exist_ok=True)
    return folder / f"factored_posteriors_{objective}_{handle.lower()}.json"


def pooled_factored_path(settings: Any, objective: str) -> Path:
    """The pooled fit over every account: what an account acts on before its own file exists
    (added after the last fit). Written only when the environment has many accounts."""
    return models_dir(settings) / f"factored_posteriors_pooled_{objective}.json"


def factored_file(settings: Any, objective: str) -> Path:
    """The factored posterior ``settings.x_handle``'s decisions load: its own file, else the
    pooled fit, else the main account's file (a single account: always that one)."""
    own = account_factored_path(settings, objective, settings.x_handle)
    if own.exists():
        return own
    pooled = pooled_factored_path(settings, objective)
    return pooled if pooled.exists() else factored_path(settings, objective)


def write_factored(path: Path, posterior: Any, horizon: Any) -> Path:
    """Save a factored posterior with the horizon model it was fitted with."""
    return write_atomic(
        path, json.dumps({**posterior.to_dict(), "horizon_model": horizon.to_dict()})
    )


def remove_account_factored(settings: Any, objective: str) -> list[Path]:
    """Delete the per-account and pooled files (back to one account: they would be stale)."""
    pooled = pooled_factored_path(settings, objective)
    removed = [pooled] if pooled.exists() else []
    if removed:
        pooled.unlink()
    return removed + prune_account_files(settings, "factored_posteriors", objective, keep=())


def prune_account_files(
    settings: Any, kind: str, objective: str, *, keep: Iterable[str]
) -> list[Path]:
    """Delete the per-account ``kind`` files (``factored_posteriors``, ``arm_posteriors``) of
    every account not in ``keep``. An account's own file wins over the shared one when its runs
    load a model, so a file no fit rewrites any more (the account left the fit, or the
    environment is back to one account) would otherwise be loaded, stale, for good."""
    wanted = {f"{kind}_{objective}_{handle.lower()}.json" for handle in keep}
    folder = models_dir(settings) / "accounts"
    stale = sorted(p for p in folder.glob(f"{kind}_{objective}_*.json") if p.name not in wanted)
    for path in stale:
        path.unlink()
    return stale


def load_posteriors(settings: Any, objective: str = "engagement") -> tuple[Any, list[str]]:
    """The Beta sampler ``arm_posteriors`` saved, and its arms.

    Raises:
        ModelFileMissing: ``arm_posteriors`` has not been materialised.
    """
    from xbot_assets.learning.bandits import ThompsonSampler

    path = posteriors_path(settings, objective)
    own = account_posteriors_path(settings, objective, settings.x_handle)
    if own.exists():  # many accounts: this account's own posteriors, fitted on its posts alone
        path = own
    if not path.exists():
        raise ModelFileMissing(f"no posteriors at {path}: materialise arm_posteriors first")
    data = json.loads(path.read_text())
    sampler = ThompsonSampler(
        len(data["arms"]), prior=tuple(data["prior"]), seed=settings.sandbox_seed
    )
    sampler.successes = np.array(data["successes"], dtype=float)
    sampler.failures = np.array(data["failures"], dtype=float)
    return sampler, list(data["arms"])


def load_factored(settings: Any, objective: str = "engagement", path: Path | None = None) -> Any:
    """The factored posterior ``factored_posteriors`` saved for ``settings.x_handle``
    (:func:`factored_file`, unless the caller already resolved it: ``path``).

    Raises:
        ModelFileMissing: ``factored_posteriors`` has not been materialised.
    """
    from xbot_assets.learning.posterior import FactoredPosterior

    path = path or factored_file(settings, objective)
    try:
        text = path.read_text()
    except FileNotFoundError:  # never written, or pruned by a refit since it was resolved
        raise ModelFileMissing(
            f"no factored posterior at {path}: materialise factored_posteriors"
        ) from None
    return FactoredPosterior.from_dict(json.loads(text))
