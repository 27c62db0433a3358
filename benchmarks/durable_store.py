"""Durable store throughput: enqueue, claim+mark posted, metric upserts, on SQLite and Postgres.

What the bot's hot loops cost against the durable store alone (no Redis), measured in one run on
this machine for both engines:

- ``enqueue``: ``enqueue_post`` one at a time (one transaction each);
- ``claim_post_cycle``: ``claim_next_due`` + ``mark_posted`` (two transactions: the at-most-once
  protocol's store work per post);
- ``metrics_upsert``: ``upsert_metrics`` in batches of 500 snapshots (multi-row statements);
- ``metrics_due``: one ``metrics_due("1h")`` query over every posted post;
- SQLite once more with one connection per transaction, to measure what pooling buys (closing
  the last connection to a WAL database checkpoints it).

Postgres runs as the ``xbot_staging`` role (row-level security on), in a database of its own that
is dropped afterwards. Usage::

    .venv/bin/python benchmarks/durable_store.py            # 500 posts per engine
    .venv/bin/python benchmarks/durable_store.py --posts 200 --no-write   # quick mode

Figures go to ``benchmarks/results/durable_store.json`` (unless ``--no-write``).

``--content-hashes`` measures instead the read the refill makes once per slot,
``content_hashes(account_id)`` (the frozenset of every content hash the account has a post for),
on one account's history grown to each of ``--sizes`` posts (1k, 10k, 100k), on both engines: the
median time per call over ``--calls`` calls after one warm-up call, and its bytes (the hex digests
the query returns, and the frozenset's size in Python). The history is written in bulk (multi-row
inserts of posted rows shaped as ``enqueue_post`` writes them, each text unique), not through
``enqueue_post`` one post at a time (100k posts would take about 7 minutes on SQLite and half an
hour on Postgres); each size is measured after ``ANALYZE`` (Postgres: ``VACUUM ANALYZE``, what
autovacuum does to a table that grew, so the unique key's index can be read alone). Another
account with as many posts shares the table; then one account of a fleet (``FLEET``: 50 accounts
of 2,000 posts added beside them) is read. Each size also times the same query on the driver's
own cursor (``driver_median_ms``: the floor without SQLAlchemy's rows) and records the plan.
Figures go to ``benchmarks/results/durable_store_content_hashes.json``::

    nice -n 5 .venv/bin/python benchmarks/durable_store.py --content-hashes
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is a folder of the repository's root
    sys.path.insert(0, str(ROOT))

from benchmarks._postgres import throwaway_database  # noqa: E402
from xbot_assets.store.durable import DurableStore  # noqa: E402
from xbot_assets.store.durable import schema as s  # noqa: E402
from xbot_assets.store.durable.engine import make_engine  # noqa: E402
from xbot_assets.store.durable.migrate import upgrade  # noqa: E402
from xbot_assets.store.durable.models import MetricSnapshot  # noqa: E402
from xbot_assets.store.hot.dedup import content_hash  # noqa: E402
from xbot_assets.vocabulary import HORIZONS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "durable_store.json"
HASHES_RESULTS = RESULTS.with_name("durable_store_content_hashes.json")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SIZES = (1_000, 10_000, 100_000)
"""Posts of the account whose ``content_hashes`` is read (``--content-hashes``)."""
BULK_ROWS = 2_000
"""Rows per multi-row insert while the history grows."""
FLEET = (50, 2_000)
"""Accounts and posts each added after the sizes: one fleet account's read in a large table
(50 accounts at 4 posts a day fill 100k rows in under 1.4 years; each has 2,000 posts then)."""


def _measure(store: DurableStore, posts: int) -> dict[str, Any]:
    acc = store.ensure_account("bench_bot")
    out: dict[str, Any] = {"posts": posts}

    start = time.perf_counter()
    for i in range(posts):
        store.enqueue_post(
            acc.id, f"benchmark post number {i}", arm="single:python", scheduled_at=T0
        )
    elapsed = time.perf_counter() - start
    out["enqueue_per_s"] = round(posts / elapsed, 1)

    start = time.perf_counter()
    ids: list[int] = []
    for i in range(posts):
        claim = store.claim_next_due(acc.id, now=T0 + timedelta(minutes=1))
        assert claim is not None
        store.mark_posted(
            claim.post.id,
            x_id=str(10_000 + i),
            attempt_id=claim.attempt_id,
            posted_at=T0 + timedelta(seconds=i),
        )
        ids.append(claim.post.id)
    elapsed = time.perf_counter() - start
    out["claim_post_cycles_per_s"] = round(posts / elapsed, 1)

    snaps = [
        MetricSnapshot(tweet_id=pid, horizon=h, collected_at=T0 + timedelta(days=4), impressions=i)
        for i, pid in enumerate(ids)
        for h in HORIZONS
    ]
    start = time.perf_counter()
    for k in range(0, len(snaps), 500):
        store.upsert_metrics(snaps[k : k + 500])
    elapsed = time.perf_counter() - start
    out["metric_rows_upserted_per_s"] = round(len(snaps) / elapsed, 1)

    start = time.perf_counter()
    due = store.metrics_due("1h", now=T0 + timedelta(days=5), limit=100_000)
    out["metrics_due_ms"] = round((time.perf_counter() - start) * 1000, 2)
    assert due == []  # every post has its 1h snapshot
    return out


def run(posts: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": _machine(),
        "measured_at": datetime.now(UTC).isoformat(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        with DurableStore.from_url(url, environment="local") as store:
            results["sqlite"] = _measure(store, posts)
        # The same work with one connection per transaction (what a NullPool engine does).
        url = f"sqlite:///{tmp}/bench_unpooled.db"
        upgrade(url)
        with DurableStore(make_engine(url), "local") as store:
            results["sqlite_one_connection_per_transaction"] = _measure(store, posts)
        pooled, unpooled = results["sqlite"], results["sqlite_one_connection_per_transaction"]
        results["sqlite_pooled_speedup"] = {
            k: round(pooled[k] / unpooled[k], 2)
            for k in ("enqueue_per_s", "claim_post_cycles_per_s")
        }
    with throwaway_database("xbot_bench_store") as url:
        upgrade(url)
        with DurableStore.from_url(url, environment="staging") as store:
            results["postgres"] = _measure(store, posts)
    return results


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def _grow(store: DurableStore, account_id: int, handle: str, start: int, stop: int) -> None:
    """Posts ``start``..``stop - 1`` of the account, posted, each with a text of its own."""
    t = s.tweets
    with store.engine.begin() as conn:
        for first in range(start, stop, BULK_ROWS):
            rows = []
            for i in range(first, min(first + BULK_ROWS, stop)):
                body = (
                    f"{handle} post {i}: a benchmark text about python and data, long enough to "
                    "look like a post (about 120 characters) #bench"
                )
                at = T0 + timedelta(hours=6 * i)
                rows.append({
                    "environment": store.environment, "account_id": account_id,
                    "text": body, "content_hash": content_hash(body), "status": "posted",
                    "x_id": str(10_000_000 + i), "thread_position": 0, "thread_size": 1,
                    "arm": "single:python", "format": "single", "topic": "python",
                    "score": None, "scores": {}, "scheduled_at": at, "attempt_count": 1,
                    "posted_at": at, "metadata": {}, "created_at": at, "updated_at": at,
                })  # fmt: skip
            conn.execute(t.insert(), rows)


def _timed_calls(read: Callable[[], frozenset[str]], calls: int) -> tuple[list[float], Any]:
    """One warm-up call, then ``calls`` timed calls (ms each) and the last answer."""
    answer = read()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        answer = read()
        times.append((time.perf_counter() - start) * 1000)
    return times, answer


def _driver_query(store: DurableStore, account_id: int, prefix: str = "") -> list[tuple[Any, ...]]:
    """The query ``content_hashes`` runs, on the driver's own cursor (no SQLAlchemy rows): the
    floor a leaner read could reach; ``prefix`` (EXPLAIN ...) reads its plan instead."""
    mark = "?" if store.dialect == "sqlite" else "%s"
    sql = f"SELECT content_hash FROM tweets WHERE environment = {mark} AND account_id = {mark}"
    with store.engine.connect() as conn:  # on Postgres: the environment's role, as the store
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"{prefix}{sql}", (store.environment, account_id))
        return list(cursor.fetchall())


def _driver_hashes(store: DurableStore, account_id: int) -> frozenset[str]:
    return frozenset(str(r[0]) for r in _driver_query(store, account_id))


def _row(size: int, calls: int, times: list[float], driver: list[float], answer: Any) -> Any:
    python_bytes = sys.getsizeof(answer) + sum(sys.getsizeof(h) for h in answer)
    return {
        "posts": size, "calls": calls,
        "median_ms": round(statistics.median(times), 2),
        "min_ms": round(min(times), 2), "max_ms": round(max(times), 2),
        "driver_median_ms": round(statistics.median(driver), 2),
        "payload_bytes": sum(len(h) for h in answer),
        "python_bytes": python_bytes,
        "python_bytes_per_post": round(python_bytes / size, 1),
    }  # fmt: skip


def _measure_content_hashes(
    store: DurableStore, sizes: tuple[int, ...], calls: int, analyze: Callable[[], None]
) -> dict[str, Any]:
    """``content_hashes`` of one account at each size of its history (grown in place, with a
    neighbour account of the same size in the table); then one account of a fleet of
    ``FLEET[0]`` accounts of ``FLEET[1]`` posts each added beside them."""
    accounts = {h: store.ensure_account(h).id for h in ("bench_bot", "bench_neighbour")}
    out: dict[str, Any] = {"sizes": []}
    have = 0
    for size in sizes:
        for handle, account_id in accounts.items():
            _grow(store, account_id, handle, have, size)
        have = size
        analyze()
        me = accounts["bench_bot"]
        times, answer = _timed_calls(partial(store.content_hashes, me), calls)
        assert len(answer) == size  # the account's own hashes only, every one of them
        driver, raw = _timed_calls(partial(_driver_hashes, store, me), calls)
        assert raw == answer
        out["sizes"].append(_row(size, calls, times, driver, answer))
        print(f"  {store.dialect:10s} {out['sizes'][-1]}", flush=True)
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    out["plan_at_largest"] = [" ".join(str(c) for c in r) for r in _driver_query(
        store, accounts["bench_bot"], explain)]  # fmt: skip
    count, each = FLEET
    fleet = [store.ensure_account(f"bench_fleet_{k}").id for k in range(count)]
    for k, account_id in enumerate(fleet):
        _grow(store, account_id, f"bench_fleet_{k}", 0, each)
    analyze()
    times, answer = _timed_calls(partial(store.content_hashes, fleet[0]), calls)
    assert len(answer) == each
    driver, _ = _timed_calls(partial(_driver_hashes, store, fleet[0]), calls)
    out["fleet_account"] = {
        "accounts": count, "table_rows": count * each + 2 * have,
        **_row(each, calls, times, driver, answer),
    }  # fmt: skip
    print(f"  {store.dialect:10s} fleet {out['fleet_account']}", flush=True)
    return out


def run_content_hashes(sizes: tuple[int, ...], calls: int) -> dict[str, Any]:
    """``content_hashes`` at each size on SQLite (a file in a temporary folder) and Postgres
    (a throwaway database, as the ``xbot_staging`` role)."""
    results: dict[str, Any] = {
        "benchmark": "durable_store content_hashes",
        "what": "DurableStore.content_hashes(account_id): the refill's one read per slot",
        "machine": _machine(),
        "measured_at": datetime.now(UTC).isoformat(),
        "note": "one run on a shared 2-core machine: absolute times are noisy",
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench_hashes.db"
        upgrade(url)
        with DurableStore.from_url(url, environment="local") as store:

            def analyze_sqlite() -> None:
                with store.engine.begin() as conn:
                    conn.execute(text("ANALYZE"))

            results["sqlite"] = _measure_content_hashes(store, sizes, calls, analyze_sqlite)
    with throwaway_database("xbot_bench_store") as url:
        upgrade(url)
        with DurableStore.from_url(url, environment="staging") as store:

            def analyze_postgres() -> None:  # as the database's owner, not the store's role
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE tweets")

            results["postgres"] = _measure_content_hashes(store, sizes, calls, analyze_postgres)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--content-hashes",
        action="store_true",
        help="measure content_hashes(account_id) at --sizes posts instead",
    )
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--calls", type=int, default=9, help="timed calls per size (median)")
    args = parser.parse_args()
    if args.content_hashes:
        try:
            sizes = tuple(sorted(int(n) for n in args.sizes.split(",")))
        except ValueError:
            parser.error(f"--sizes {args.sizes!r}: comma-separated post counts (1000,10000)")
        if not sizes or sizes[0] < 1 or args.calls < 1:
            parser.error("--sizes and --calls: at least one size and one call, each above 0")
        results, out = run_content_hashes(sizes, args.calls), HASHES_RESULTS
    else:
        results, out = run(args.posts), RESULTS
    dumped = json.dumps(results, indent=2)
    print(dumped)
    if not args.no_write:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumped + "\n")


if __name__ == "__main__":
    main()
