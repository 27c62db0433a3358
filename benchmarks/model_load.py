"""What a refill's model load costs: a saved posterior against the cold start's prior.

Every refill (``refill_candidates_job``) calls ``engine/decide.load_models``. Until 7 December
2026 it built the cold-start prior's fit and read ``LEARNING_PRIOR_FILE`` on every call, even
when a saved posterior then loaded; now it does both only when no saved posterior loads
(``cold_start_config``). This measures, in one run, the wall time of:

* ``warm``: ``load_models`` with a saved posterior of a month of posts (the hot path now);
* ``cold``: ``load_models`` with no saved posterior, centred on the population prior file
  (the prior's fit built, the file read: what a new account pays until its first refit);
* ``before``: the old hot path, i.e. the prior built and the file read, then the saved
  posterior loaded (``prior_models(config=cold_start_config(...))`` followed by ``warm``).

The ratio ``before / warm`` is the saving per refill. No posterior cache (Redis) here: the
file is read each time, the embedded default's path.

    nice -n 10 .venv/bin/python benchmarks/model_load.py [--repeats 30]

Writes ``benchmarks/results/model_load.json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script
from benchmarks.account_refit import POSTS_PER_ACCOUNT, START, synthetic_account
from xbot_assets.config import load_settings
from xbot_assets.engine import decide
from xbot_assets.learning import model_files
from xbot_assets.learning.factored import fit_factored
from xbot_assets.learning.horizon import HorizonModel
from xbot_assets.vocabulary import DEFAULT_TOPICS, FORMATS

PRIOR_FILE = Path(__file__).resolve().parent / "results" / "population_prior.json"


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls (one warm-up call first: imports, disk cache)."""
    call()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def measure(home: Path, repeats: int) -> dict[str, list[float]]:
    settings = load_settings(env_file=None, xbot_home=home, app_env="local",
                             learning_prior_file=str(PRIOR_FILE))  # fmt: skip
    cold = timed(lambda: decide.load_models(settings), repeats)
    account = synthetic_account("bench", 0, POSTS_PER_ACCOUNT)
    saved = fit_factored(account.history, now=START + timedelta(days=33), formats=FORMATS,
                         topics=DEFAULT_TOPICS, timezone="UTC")  # fmt: skip
    model_files.models_dir(settings).mkdir(parents=True, exist_ok=True)
    model_files.write_factored(model_files.factored_path(settings, "engagement"), saved,
                               HorizonModel())  # fmt: skip
    warm = timed(lambda: decide.load_models(settings), repeats)
    assert decide.load_models(settings).posterior.posts == POSTS_PER_ACCOUNT

    def before() -> None:
        decide.prior_models(objective="engagement", timezone=settings.account_timezone,
                            config=decide.cold_start_config(settings))  # fmt: skip
        decide.load_models(settings)

    return {"cold": cold, "warm": warm, "before": timed(before, repeats)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=PRIOR_FILE.parent / "model_load.json")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be 1 or more (the median of that many calls is reported)")
    with tempfile.TemporaryDirectory() as home:
        runs = measure(Path(home), args.repeats)
    ms = {k: round(1000 * statistics.median(v), 2) for k, v in runs.items()}
    result = {
        "benchmark": "model_load",
        "what": "engine/decide.load_models wall time per call (median ms), one run",
        "repeats": args.repeats,
        "posts_in_saved_posterior": POSTS_PER_ACCOUNT,
        "prior_file": "benchmarks/results/population_prior.json",
        "median_ms": ms,
        "before_over_warm": round(ms["before"] / ms["warm"], 2),
        "cold_over_warm": round(ms["cold"] / ms["warm"], 2),
        "machine": {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
        "command": "benchmarks/model_load.py " + " ".join(argv or sys.argv[1:]),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median_ms"]), "before/warm", result["before_over_warm"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
