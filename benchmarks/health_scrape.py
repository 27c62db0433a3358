"""What a /metrics scrape and a /readyz probe cost as the durable store grows.

A SQLite store (the embedded default) is filled with ``n`` posted posts (one attempt each), four
metrics snapshots per post, five candidates per post (a fifth rejected by the guard, each with
~200 characters of text) and two audit rows per post, for a small and a large ``n``. For each
size it measures, in one process:

- the readiness checks (:func:`run_checks`), median of several runs;
- the first scrape of a fresh collector (it reads every candidate once to seed its running
  guard-rejection totals) and the median of later scrapes (only new candidates are read).

The figure that matters is the steady-state scrape at the large size, and the ratio large/small:
the steady scrape never reads post or candidate text, so it grows with the number of rows
aggregated, not with their size.

Usage:
    .venv/bin/python benchmarks/health_scrape.py            # 2,000 and 40,000 posts
    .venv/bin/python benchmarks/health_scrape.py --quick    # 200 and 2,000 posts
Writes ``benchmarks/results/health_scrape.json`` (not with --quick unless --out is given).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from xbot_assets.config import load_settings  # noqa: E402
from xbot_assets.health.checks import HealthContext, run_checks  # noqa: E402
from xbot_assets.health.metrics import DurableStateCollector  # noqa: E402
from xbot_assets.store.durable.engine import make_engine  # noqa: E402
from xbot_assets.store.durable.migrate import upgrade  # noqa: E402
from xbot_assets.store.durable.schema import (  # noqa: E402
    accounts,
    audit_log,
    candidates,
    post_attempts,
    tweet_metrics,
    tweets,
)
from xbot_assets.vocabulary import HORIZONS  # noqa: E402

FILLER = "How to keep a data pipeline honest: test the inputs, not only the outputs. " * 3


def fill(engine: Engine, n: int) -> None:
    """``n`` posted posts with attempts, 4 snapshots each, 5 candidates each, 2 audit rows each."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        account_id = conn.execute(
            insert(accounts).values(
                environment="local",
                handle="bench",
                timezone="UTC",
                active=True,
                metadata={},
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        batch = 2000
        for start in range(0, n, batch):
            ids = range(start + 1, min(n, start + batch) + 1)
            conn.execute(
                insert(tweets),
                [
                    {
                        "id": i,
                        "environment": "local",
                        "account_id": account_id,
                        "text": f"{i} {FILLER}"[:280],
                        "content_hash": f"h{i}",
                        "status": "posted",
                        "x_id": str(10_000 + i),
                        "arm": "how_to:python",
                        "scores": {},
                        "scheduled_at": now - timedelta(minutes=n - i + 30),
                        "posted_at": now - timedelta(minutes=n - i + 30),
                        "metadata": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(post_attempts),
                [
                    {
                        "environment": "local",
                        "attempt_id": f"a{i}",
                        "tweet_id": i,
                        "account_id": account_id,
                        "started_at": now,
                        "finished_at": now,
                        "outcome": "posted",
                        "x_id": str(10_000 + i),
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(tweet_metrics),
                [
                    {
                        "environment": "local",
                        "tweet_id": i,
                        "account_id": account_id,
                        "horizon": h,
                        "impressions": 100,
                        "likes": 3,
                        "collected_at": now - timedelta(minutes=5),
                    }
                    for i in ids
                    for h in HORIZONS
                ],
            )
            conn.execute(
                insert(candidates),
                [
                    {
                        "environment": "local",
                        "account_id": account_id,
                        "text": f"{i}.{k} {FILLER}"[:280],
                        "content_hash": f"c{i}.{k}",
                        "guard_passed": k != 0,
                        "guard_reasons": [] if k else ["near_duplicate"],
                        "metadata": {},
                        "created_at": now,
                    }
                    for i in ids
                    for k in range(5)
                ],
            )
            conn.execute(
                insert(audit_log),
                [
                    {
                        "environment": "local",
                        "event_id": f"e{i}.{k}",
                        "occurred_at": now,
                        "event_type": "post.posted" if k else "config.changed",
                        "component": "posting",
                        "actor": "posting",
                        "data": {"tweet_id": i},
                    }
                    for i in ids
                    for k in range(2)
                ],
            )


def timed(fn: Any, repeat: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), runs


def measure(n: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(env_file=None, xbot_home=Path(tmp), app_env="local")
        url = settings.resolved_database_url
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        fill(engine, n)
        fill_s = time.perf_counter() - started
        ctx = HealthContext(settings, engine=engine)
        ready_ms, _ = timed(lambda: run_checks(ctx), repeat)
        collector = DurableStateCollector(ctx)
        first_ms, _ = timed(lambda: list(collector.collect()), 1)
        steady_ms, _ = timed(lambda: list(collector.collect()), repeat)
        report = run_checks(ctx)
        engine.dispose()
    return {
        "posts": n,
        "candidates": 5 * n,
        "metric_snapshots": 4 * n,
        "audit_rows": 2 * n,
        "fill_s": round(fill_s, 2),
        "readyz_checks_ms_median": round(ready_ms, 2),
        "readyz_status": report.status,
        "first_scrape_ms": round(first_ms, 2),
        "steady_scrape_ms_median": round(steady_ms, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    small, large = (200, 2000) if args.quick else (2000, 40_000)
    rows = [measure(small, args.repeat), measure(large, args.repeat)]
    result = {
        "benchmark": "health_scrape",
        "engine": "sqlite",
        "quick": args.quick,
        "sizes": rows,
        "ratio_large_small_posts": large / small,
        "ratio_steady_scrape_large_small": round(
            rows[1]["steady_scrape_ms_median"] / rows[0]["steady_scrape_ms_median"], 2
        ),
        "ratio_readyz_large_small": round(
            rows[1]["readyz_checks_ms_median"] / rows[0]["readyz_checks_ms_median"], 2
        ),
        "measured_at": datetime.now(UTC).isoformat(),
    }
    out = args.out or (None if args.quick else ROOT / "benchmarks/results/health_scrape.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
