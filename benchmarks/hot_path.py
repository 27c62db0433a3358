"""Hot-path benchmark: stream throughput and batched sync vs naive inserts, in one run.

1. **Stream enqueue + acknowledge** on a ``StreamQueue`` (Redis Streams, consumer group):
   batches of entries are added with one pipelined round trip, read with XREADGROUP and
   acknowledged with one XACK per batch. Reported as messages/s through the whole cycle.
   Goal: >= 20,000 messages/s.
2. **``sync_to_supabase`` batched vs naive**: the same events (metric snapshots and audit rows)
   written to the same Postgres (a database of its own) by
   - the sync worker: read a batch from the stream, one multi-row ``INSERT ... ON CONFLICT`` per
     table in one transaction, one XACK;
   - a naive writer: one row per statement and per transaction (what the fallback path does for
     a single event, and what the seed bot did for every event).
   Goal: batched >= 10x the naive rows/s.

Usage::

    .venv/bin/python benchmarks/hot_path.py            # full run, writes results/hot_path.json
    .venv/bin/python benchmarks/hot_path.py --quick    # seconds; for tests

Needs the machine's Redis (127.0.0.1:6379) and Postgres (127.0.0.1:5432); uses its own key
prefix and database and removes both afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._postgres import pg_admin_url, throwaway_database  # noqa: E402
from benchmarks.hotpath_harness import ThrowawayRedis, create_account, queue_posts  # noqa: E402
from xbot_assets.store.durable.engine import make_engine  # noqa: E402
from xbot_assets.store.durable.migrate import upgrade  # noqa: E402
from xbot_assets.store.durable.schema import audit_log, tweet_metrics, tweets  # noqa: E402
from xbot_assets.store.hot.dual import DualStoreManager  # noqa: E402
from xbot_assets.store.hot.event_writers import WRITERS  # noqa: E402
from xbot_assets.store.hot.keys import KeySpace, connect_redis, scan_delete  # noqa: E402
from xbot_assets.store.hot.streams import StreamQueue  # noqa: E402
from xbot_assets.vocabulary import HORIZONS  # noqa: E402

REDIS_URL = os.environ.get("XBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).resolve().parent / "results" / "hot_path.json"
STREAM_GOAL = 20_000
SYNC_RATIO_GOAL = 10.0


def _server_cpu_s(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def bench_stream(total: int, batch: int, redis_url: str | None = None) -> dict[str, Any]:
    """Enqueue + read + ack ``total`` messages in pipelined batches; messages/s, and the CPU
    seconds both sides spent per message (a figure that does not depend on the machine's load
    when the Redis server is our own)."""
    client = connect_redis(redis_url or REDIS_URL)
    keys = KeySpace(f"bench:{uuid.uuid4().hex[:8]}:")
    queue = StreamQueue(client, keys, "analytics_processing")
    queue.ensure_groups()
    payload = {"candidate_id": 123456, "arm": "how_to:python", "score": 0.42}
    try:
        # warm-up (connections, script cache)
        queue.enqueue_many([(None, payload)] * batch)
        queue.ack(queue.read("bench", count=batch))
        enqueue_s = cycle_s = 0.0
        done = 0
        server_cpu0, client_cpu0 = _server_cpu_s(client), time.process_time()
        started = time.perf_counter()
        while done < total:
            t0 = time.perf_counter()
            queue.enqueue_many([(f"c{done + i}", payload) for i in range(batch)])
            enqueue_s += time.perf_counter() - t0
            messages = queue.read("bench", count=batch)
            acked = queue.ack(messages)
            assert acked == len(messages) == batch, (acked, len(messages))
            done += batch
        cycle_s = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu0
        server_cpu = _server_cpu_s(client) - server_cpu0
        stats = queue.stats()
        assert stats["pending"] == 0
        trimmed = queue.trim()
    finally:
        scan_delete(client, keys)
        client.close()
    return {
        "messages": done,
        "batch": batch,
        "enqueue_ack_msgs_per_s": round(done / cycle_s),
        "enqueue_only_msgs_per_s": round(done / enqueue_s),
        "seconds": round(cycle_s, 3),
        "client_cpu_us_per_msg": round(client_cpu / done * 1e6, 2),
        "server_cpu_us_per_msg": round(server_cpu / done * 1e6, 2),
        "msgs_per_cpu_second": round(done / (client_cpu + server_cpu)),
        "trimmed_after": trimmed,
        "goal_msgs_per_s": STREAM_GOAL,
        "goal_met": done / cycle_s >= STREAM_GOAL,
    }


def _events(manager: DualStoreManager, ids: list[int], account: int, start: int, n: int) -> None:
    """Emit ``n`` events (a metric snapshot and an audit row per post, alternating)."""
    now = datetime(2026, 3, 2, tzinfo=UTC)
    horizons = HORIZONS
    for i in range(start, start + n):
        if i % 2 == 0:
            post = ids[(i // 2) % len(ids)]
            manager.record_metric_snapshot(
                tweet_id=post,
                account_id=account,
                horizon=horizons[(i // (2 * len(ids))) % 4],
                metrics={"impressions": 100 + i, "likes": i % 9, "replies": i % 3},
                collected_at=now + timedelta(seconds=i),
                source="bench",
            )
        else:
            manager.record_audit_event(
                event_type="bench.event",
                component="bench",
                actor="bench",
                data={"i": i},
                event_id=f"bench-{i}",
                occurred_at=now + timedelta(seconds=i),
            )


def bench_sync(
    batched_rows: int, naive_rows: int, sync_batch: int, posts: int = 2500
) -> dict[str, Any]:
    """Rows/s of the batched sync worker vs one-row-at-a-time inserts, same Postgres."""
    with throwaway_database("xbot_bench_hotpath") as url:
        return _bench_sync_in(url, batched_rows, naive_rows, sync_batch, posts)


def _bench_sync_in(
    url: str, batched_rows: int, naive_rows: int, sync_batch: int, posts: int
) -> dict[str, Any]:
    """:func:`bench_sync` in the database at ``url``."""
    client = connect_redis(REDIS_URL)
    keys = KeySpace(f"bench:{uuid.uuid4().hex[:8]}:")
    try:
        upgrade(url)
        engine = make_engine(url)
        now = datetime(2026, 3, 2, tzinfo=UTC)
        account = create_account(engine, "local", "bench", now)
        ids = queue_posts(engine, "local", account, [f"bench {i}" for i in range(posts)], now)
        with engine.begin() as conn:
            conn.execute(update(tweets).values(status="posted", posted_at=now))
        manager = DualStoreManager(engine, "local", client, keys, consumer="bench")

        # batched: events into the stream as during a store outage (emits write the store
        # directly while it is up; not timed: the producers' side), then the worker
        producer = DualStoreManager(engine, "local", client, keys, consumer="producer")

        def buffer(kind: str, rows: list[dict[str, Any]], keys_: list[str]) -> str:
            assert producer._buffer(kind, rows, keys_)  # type: ignore[arg-type]
            return "buffered"

        producer._emit = buffer  # type: ignore[method-assign,assignment]
        _events(producer, ids, account, 0, batched_rows)
        started = time.perf_counter()
        synced = 0
        while True:
            report = manager.sync_once(max_rows=sync_batch)
            if report.acked == 0:
                break
            synced += report.acked
        batched_s = time.perf_counter() - started
        assert synced == batched_rows, (synced, batched_rows)

        # naive: the same kind of rows, one statement and one transaction per row
        direct = DualStoreManager(engine, "local", None, keys, consumer="naive")
        captured: list[tuple[str, dict[str, Any]]] = []

        def capture(kind: str, rows: list[dict[str, Any]], keys_: list[str]) -> str:
            captured.extend((kind, row) for row in rows)
            return "captured"

        direct._emit = capture  # type: ignore[method-assign,assignment]
        _events(direct, ids, account, batched_rows + 1, naive_rows)
        started = time.perf_counter()
        for kind, row in captured:
            with engine.begin() as conn:
                WRITERS[kind](conn, [row])
        naive_s = time.perf_counter() - started
        with engine.connect() as conn:
            metric_rows = conn.execute(select(func.count()).select_from(tweet_metrics)).scalar_one()
            audit_rows = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        engine.dispose()
    finally:
        scan_delete(client, keys)
        client.close()
    batched_rate = batched_rows / batched_s
    naive_rate = naive_rows / naive_s
    return {
        "batched_rows": batched_rows,
        "batched_rows_per_s": round(batched_rate),
        "sync_batch": sync_batch,
        "naive_rows": naive_rows,
        "naive_rows_per_s": round(naive_rate),
        "ratio": round(batched_rate / naive_rate, 1),
        "rows_in_tables": {"tweet_metrics": int(metric_rows), "audit_log": int(audit_rows)},
        "goal_ratio": SYNC_RATIO_GOAL,
        "goal_met": batched_rate / naive_rate >= SYNC_RATIO_GOAL,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Both measurements in one run; returns the figures (also what is written to JSON)."""
    own_redis = "XBOT_BENCH_REDIS_URL" not in os.environ
    with tempfile.TemporaryDirectory() as tmp:
        server = ThrowawayRedis(Path(tmp)) if own_redis else None
        if server is not None:
            server.start()
        try:
            stream = bench_stream(
                total=20_000 if quick else 200_000,
                batch=1000,
                redis_url=server.url if server is not None else None,
            )
        finally:
            if server is not None:
                server.kill()
    stream["redis_server"] = "own throwaway redis-server" if own_redis else REDIS_URL
    sync = bench_sync(
        batched_rows=4_000 if quick else 40_000,
        naive_rows=400 if quick else 4_000,
        sync_batch=1000,
    )
    with psycopg.connect(pg_admin_url()) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()
    client = connect_redis(REDIS_URL)
    redis_version = client.info("server").get("redis_version")
    client.close()
    return {
        "benchmark": "hot_path",
        "mode": "quick" if quick else "full",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis": redis_version,
            "postgres": pg_version[0] if pg_version else None,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "stream": stream,
        "sync_to_supabase": sync,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON path (default {RESULTS})")
    args = parser.parse_args()
    figures = run(quick=args.quick)
    out = args.out or (None if args.quick else RESULTS)
    text = json.dumps(figures, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
