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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.durable.models import MetricSnapshot
from xbot_assets.vocabulary import HORIZONS

RESULTS = Path(__file__).resolve().parent / "results" / "durable_store.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


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
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        },
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
    name = f"xbot_bench_store_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        upgrade(url)
        with DurableStore.from_url(url, environment="staging") as store:
            results["postgres"] = _measure(store, posts)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = run(args.posts)
    text = json.dumps(results, indent=2)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
