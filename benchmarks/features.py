"""Feature build benchmark: the scorer's features for 1M posts of ``fct_post_outcomes``,
pandas against polars.

Both read the same DuckDB warehouse file and produce the same columns (a test keeps them equal):

- **pandas**: ``con.execute(...).df()`` then ``learning.features.post_features`` (what the
  scorer asset runs today);
- **polars**: ``warehouse.features_frame``: DuckDB's Arrow table into a polars LazyFrame, one
  lazy query, ``collect()``; no pandas frame in between.

The posts are synthetic (``learning.synthetic.synthetic_post_outcomes``, 20,000 posts repeated
with new ids and times to reach the size) and a quarter have no ``hook_type`` and a third no
``hour_local``, so the text and time rules are exercised, not only the stored columns. Each
engine runs ``--repeat`` times; the median wall time, CPU time and peak memory growth are
recorded with the machine's load (2 shared cores).

Usage::

    .venv/bin/python benchmarks/features.py                  # 1M posts
    .venv/bin/python benchmarks/features.py --posts 100000   # quick mode

Figures go to ``benchmarks/results/features.json`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xbot_assets.learning.synthetic import synthetic_post_outcomes  # noqa: E402
from xbot_assets.warehouse.features_frame import outcome_features  # noqa: E402

BLOCK = 20_000
TIMEZONE = "Europe/Paris"


def build_warehouse(path: Path, posts: int) -> None:
    """``marts.fct_post_outcomes`` with ``posts`` rows in a fresh DuckDB file."""
    block = synthetic_post_outcomes(BLOCK, seed=7).drop(columns=["beats_median"])
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema marts")
        con.register("block", block)
        repeats = -(-posts // BLOCK)
        con.execute(
            f"""
            create table marts.fct_post_outcomes as
            select * replace (
                b.post_id || '_' || r.i as post_id,
                b.posted_at + to_days(cast(r.i * 90 as integer)) as posted_at,
                case when hash(b.post_id || r.i) % 4 = 0 then null else b.hook_type end
                    as hook_type,
                case when hash(b.post_id || r.i) % 3 = 0 then null else b.hour_local end
                    as hour_local
            )
            from block b, range({repeats}) r(i)
            order by posted_at
            limit {posts}
            """
        )
    finally:
        con.close()


def measure(path: Path, engine: str) -> dict[str, float]:
    """One feature build: wall and CPU seconds, rows."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        frame = outcome_features(con, "local", timezone=TIMEZONE, engine=engine)  # type: ignore[arg-type]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        con.close()
    return {"seconds": wall, "cpu_seconds": cpu, "rows": float(len(frame))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "warehouse.duckdb"
        started = time.perf_counter()
        build_warehouse(path, args.posts)
        print(f"warehouse with {args.posts:,} posts in {time.perf_counter() - started:.1f} s")
        runs: dict[str, list[dict[str, float]]] = {"pandas": [], "polars": []}
        for _ in range(args.repeat):
            for engine in runs:  # interleaved, so load changes hit both alike
                result = measure(path, engine)
                assert result["rows"] == args.posts, result
                runs[engine].append(result)
                print(f"{engine}: {result['seconds']:.2f} s (cpu {result['cpu_seconds']:.2f} s)")
    summary = {
        engine: {
            "median_seconds": round(statistics.median(r["seconds"] for r in rs), 3),
            "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in rs), 3),
            "posts_per_second": round(args.posts / statistics.median(r["seconds"] for r in rs)),
            "runs_seconds": [round(r["seconds"], 3) for r in rs],
        }
        for engine, rs in runs.items()
    }
    faster = min(summary, key=lambda e: summary[e]["median_seconds"])
    slower = max(summary, key=lambda e: summary[e]["median_seconds"])
    speedup = summary[slower]["median_seconds"] / summary[faster]["median_seconds"]
    out: dict[str, Any] = {
        "benchmark": "feature build over fct_post_outcomes (scorer features)",
        "posts": args.posts,
        "timezone": TIMEZONE,
        "repeat": args.repeat,
        "engines": summary,
        "faster": faster,
        "speedup": round(speedup, 2),
        "default_engine": "polars",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
    }
    print(json.dumps(out, indent=1))
    if not args.no_write:
        target = ROOT / "benchmarks" / "results" / "features.json"
        target.write_text(json.dumps(out, indent=1) + "\n")
        print(f"written to {target}")


if __name__ == "__main__":
    main()
