"""`make run` against `make run REDIS=1` on the same seed: same posts, same store (issue 19).

Runs the main job twice in fresh folders, first on the store alone, then through this machine's
Redis (DB 12, a prefix of its own, as `make run REDIS=1` does), each in its own process, then
compares the two stores with ``xbot_assets.ops.store_diff`` (apart from timestamps and random
ids) and records the Redis commands the second run sent (``INFO commandstats`` of its DB is not
separable on a shared server, so the run's keys are counted instead, before clean-up).

    python benchmarks/redis_parity.py --days 30            # writes results/redis_parity.json

Nothing of the shared Redis is touched outside the run's own prefix, which is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/12"
PREFIX = "xbot-parity:"


def _run(folder: Path, days: float, redis: bool) -> dict[str, Any]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "REDIS_PREFIX", "DATABASE_URL", "WAREHOUSE_PATH")
    }
    env.update(
        APP_ENV="local",
        XBOT_HOME=str(folder / "xbot_home"),
        DAGSTER_HOME=str(folder / "dagster_home"),
    )
    if redis:
        env.update(REDIS_URL=REDIS_URL, REDIS_PREFIX=PREFIX)
    (folder / "dagster_home").mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "xbot_assets.cli"]
    subprocess.run([*cli, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run(
        [*cli, "run", "--days", str(days), "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"xbot run failed ({'redis' if redis else 'store'}):\n{done.stderr[-3000:]}"
        )
    return {"seconds": round(seconds, 1), "summary": done.stdout.strip().splitlines()[-12:]}


def _contents(folder: Path) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from xbot_assets.ops.store_diff import store_contents

    engine = create_engine(f"sqlite:///{folder / 'xbot_home' / 'xbot.db'}")
    try:
        return store_contents(engine, "local")
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/redis_parity.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import redis

    from xbot_assets.ops.store_diff import diff_contents
    from xbot_assets.store.hot.keys import KeySpace, scan_delete

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    scan_delete(client, KeySpace(PREFIX))
    with tempfile.TemporaryDirectory(prefix="xbot-parity-") as tmp:
        store_dir, redis_dir = Path(tmp) / "store", Path(tmp) / "redis"
        store_run = _run(store_dir, args.days, redis=False)
        redis_run = _run(redis_dir, args.days, redis=True)
        keys_left = sum(1 for _ in client.scan_iter(match=f"{PREFIX}*", count=500))
        left, right = _contents(store_dir), _contents(redis_dir)
        differences = diff_contents(left, right)
    removed = scan_delete(client, KeySpace(PREFIX))
    posted = {
        name: sum(1 for row in rows["tweets"] if "posted" in row)
        for name, rows in (("store", left), ("redis", right))
    }
    result = {
        "days": args.days,
        "rows": {
            name: {t: len(r) for t, r in c.items()}
            for name, c in (("store", left), ("redis", right))
        },
        "posted": posted,
        "differences": differences,
        "equal": not differences,
        "redis_keys_after_run": keys_left,
        "redis_keys_removed": removed,
        "store_run": store_run,
        "redis_run": redis_run,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("days", "posted", "equal")}, default=str))
    if differences:
        print("\n".join(differences[:20]))


if __name__ == "__main__":
    main()
