"""Run the hot path's fault scenarios from the command line (repeatable; longer than the tests).

(1) Redis killed or flushed at random moments while posts and their events flow: 0 lost, caps
    never exceeded, the brake held, every key under the prefix.
(2) Postgres stopped (immediate, like a crash) while events flow: buffered in Redis, then synced;
    0 lost, 0 duplicated.

Both run against throwaway servers started here (``redis-server`` on a free port with no
persistence; ``initdb`` into a temporary folder + ``pg_ctl`` on a free port, as the ``postgres``
OS user when run as root), so killing them harms nothing else.

Usage::

    .venv/bin/python benchmarks/hot_path_faults.py                 # 1,000 posts (5,000 items)
    .venv/bin/python benchmarks/hot_path_faults.py --posts 200 --faults 20 --seed 7

Exit code 1 if any invariant failed. Writes ``benchmarks/results/hot_path_faults.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.hotpath_harness import (
    ThrowawayPostgres,
    ThrowawayRedis,
    postgres_outage,
    redis_chaos,
)
from xbot_assets.store.durable.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results" / "hot_path_faults.json"


def check_chaos(result: Any, posts: int) -> list[str]:
    problems = []
    if result.posted != posts:
        problems.append(f"posts lost: {posts - result.posted}")
    if result.metrics_rows != 3 * posts or result.audit_rows != posts:
        problems.append(f"events lost or doubled: {result.metrics_rows}, {result.audit_rows}")
    if result.duplicate_attempts or result.attempts != posts:
        problems.append("a post was claimed twice")
    if result.cap_violations:
        problems.append(f"caps exceeded: {result.cap_violations}")
    if not result.brake_kept or result.claims_during_brake:
        problems.append("the brake did not hold")
    if result.unprefixed_keys:
        problems.append(f"keys outside the prefix: {result.unprefixed_keys[:5]}")
    return problems


def check_outage(result: Any, posts: int) -> list[str]:
    problems = []
    if result.metrics_rows != posts or result.audit_rows != posts:
        problems.append(f"events lost: {result.metrics_rows}, {result.audit_rows} of {posts}")
    if result.duplicate_attempts:
        problems.append("duplicated rows")
    if not any("sync waited" in f for f in result.faults):
        problems.append("the outage was never observed")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1000, help="posts in scenario 1")
    parser.add_argument("--faults", type=int, default=20, help="Redis kills/flushes")
    parser.add_argument("--events", type=int, default=1000, help="posts whose events flow in 2")
    parser.add_argument("--outage-ticks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    report: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp, ThrowawayPostgres() as pg:
        upgrade(pg.url)
        chaos = redis_chaos(pg.url, Path(tmp), posts=args.posts, faults=args.faults, seed=args.seed)
    chaos_problems = check_chaos(chaos, args.posts)
    report["redis_chaos"] = {**chaos.as_dict(), "problems": chaos_problems}
    with tempfile.TemporaryDirectory() as tmp, ThrowawayRedis(Path(tmp)) as redis_server:
        outage = postgres_outage(
            redis_server.url, posts=args.events, outage_ticks=args.outage_ticks, seed=args.seed
        )
    outage_problems = check_outage(outage, args.events)
    report["postgres_outage"] = {**outage.as_dict(), "problems": outage_problems}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    summary = {
        "redis_chaos": {
            k: report["redis_chaos"][k]
            for k in (
                "items_total",
                "posted",
                "metrics_rows",
                "audit_rows",
                "cap_violations",
                "brake_kept",
                "seconds",
                "problems",
            )
        },
        "postgres_outage": {
            k: report["postgres_outage"][k]
            for k in (
                "items_total",
                "metrics_rows",
                "audit_rows",
                "duplicate_attempts",
                "seconds",
                "problems",
            )
        },
        "faults_injected": sum(1 for f in chaos.faults if "killed" in f or "flushed" in f),
    }
    print(json.dumps(summary, indent=2))
    return 1 if chaos_problems or outage_problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
