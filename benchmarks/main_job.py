"""The main job's wall time and Dagster per-run overheads (`xbot run` in a throwaway home).

Runs ``run_main`` for ``--days`` simulated days (default 30; ``--quick``: 2) with a fresh store,
warehouse, sandbox journal and DAGSTER_HOME under a temp folder, and writes
``benchmarks/results/main_job.json``: total seconds, seconds per simulated day, runs and seconds
per job (mean per-run cost), the sensor/schedule evaluation time per tick, the machine's load
average, and the summary's reward figures against the random policy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--quick", action="store_true", help="2 simulated days")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "main_job.json")
    args = parser.parse_args(argv)
    days = 2.0 if args.quick else args.days
    with tempfile.TemporaryDirectory(prefix="xbot_main_job_") as tmp:
        root = Path(tmp)
        os.environ.update(
            {
                "APP_ENV": "local",
                "XBOT_HOME": str(root / "xbot_home"),
                "DAGSTER_HOME": str(root / "dagster_home"),
            }
        )
        for name in ("DATABASE_URL", "WAREHOUSE_PATH", "REDIS_URL", "POSTER", "GENERATOR"):
            os.environ.pop(name, None)
        started = time.perf_counter()
        from xbot_assets.config import ensure_dagster_home, load_settings
        from xbot_assets.runner import run_main
        from xbot_assets.store.durable.migrate import upgrade

        ensure_dagster_home()
        settings = load_settings(env_file=None)
        upgrade(settings.resolved_database_url)
        imported = time.perf_counter() - started
        load_before = os.getloadavg()
        result = run_main(settings, days=days, progress=False)
        load_after = os.getloadavg()
    runs = sum(result.runs_by_job.values())
    tick_seconds = (result.seconds - result.run_seconds) / max(result.ticks, 1)
    figures = {
        "simulated_days": days,
        "seconds_total": round(result.seconds + imported, 1),
        "seconds_run_main": round(result.seconds, 1),
        "seconds_per_simulated_day": round(result.seconds / days, 2),
        "dagster_runs": runs,
        "runs_by_job": result.runs_by_job,
        "seconds_by_job": result.seconds_by_job,
        "mean_seconds_per_run_by_job": {
            k: round(result.seconds_by_job[k] / n, 2) for k, n in result.runs_by_job.items()
        },
        "seconds_in_runs": round(result.run_seconds, 1),
        "ticks": result.ticks,
        "seconds_per_tick_outside_runs": round(tick_seconds, 3),
        "failed_runs": len(result.failed_runs),
        "deduplicated_requests": result.deduplicated,
        "posts": result.summary["posts"],
        "expected_reward_per_post": result.summary["expected_reward"],
        "bot_minus_random_expected": result.summary["vs_random"],
        "bot_mean_reward": round(result.summary["bot_mean_reward"], 5),
        "random_mean_reward": round(result.summary["random_mean_reward"], 5),
        "lift_vs_random": result.summary["lift_vs_random"],
        "top_arms": result.summary["top_arms"][:3],
        "best_slots": result.summary["best_slots"][:3],
        "load_average_1m_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
        "cpus": os.cpu_count(),
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 1 if result.failed_runs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
