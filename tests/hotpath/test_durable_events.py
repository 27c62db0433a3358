"""Events are durable when their ``record_*`` call returns (issue 17 item 2).

The emitter is a real subprocess that exits before the sync runs, as a Dagster run does; Redis
is a throwaway ``redis-server`` of the test's own, flushed, killed and restarted at will.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.hotpath.harness import load_harness
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.durable.schema import audit_log, tweet_metrics, tweets
from xbot_assets.store.hot.dual import DualStoreManager
from xbot_assets.store.hot.keys import KeySpace, connect_redis

ROOT = Path(__file__).resolve().parents[2]
POSTS = 200
HORIZONS = ("1h", "6h", "24h", "72h")
EVENTS = POSTS * (len(HORIZONS) + 1)  # 1,000: four snapshots and one audit row per post

EMITTER = """
import json, sys
from collections import Counter
from datetime import UTC, datetime
from xbot_assets.store.hot.dual import DualStoreManager
from xbot_assets.store.durable.engine import make_engine
from xbot_assets.store.hot.keys import KeySpace, connect_redis

url, redis_url, prefix, account, ids = sys.argv[1:6]
manager = DualStoreManager(
    make_engine(url), "local", connect_redis(redis_url), KeySpace(prefix), consumer="emitter"
)
at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
routes = Counter()
for tid in map(int, ids.split(",")):
    for horizon in ("1h", "6h", "24h", "72h"):
        routes[manager.record_metric_snapshot(
            tweet_id=tid, account_id=int(account), horizon=horizon,
            metrics={"impressions": tid, "likes": 1}, collected_at=at, source="emitter",
        )] += 1
    routes[manager.record_audit_event(
        event_type="post.posted", component="emitter", actor="emitter",
        data={"tweet_id": tid}, event_id=f"emitted-{tid}", occurred_at=at,
    )] += 1
print(json.dumps(routes))
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed_posts(url: str) -> tuple[int, list[int]]:
    harness = load_harness()
    engine = make_engine(url)
    try:
        from datetime import UTC, datetime

        now = datetime(2026, 3, 2, tzinfo=UTC)
        account = harness.create_account(engine, "local", "emitter_test", now)
        ids = harness.queue_posts(
            engine, "local", account, [f"durable event post {i}" for i in range(POSTS)], now
        )
        with engine.begin() as conn:
            conn.execute(update(tweets).where(tweets.c.id.in_(ids)).values(status="posted"))
        return account, ids
    finally:
        engine.dispose()


def _emit_in_a_process_that_exits(
    store_url: str, redis_url: str, prefix: str, account: int, ids: list[int]
) -> dict[str, int]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            EMITTER,
            store_url,
            redis_url,
            prefix,
            str(account),
            ",".join(map(str, ids)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _sync_and_count(url: str, redis_url: str, prefix: str) -> tuple[int, int]:
    engine = make_engine(url)
    client = connect_redis(redis_url)
    try:
        DualStoreManager(engine, "local", client, KeySpace(prefix), consumer="sync").drain()
        with engine.connect() as conn:
            metrics = conn.execute(select(func.count()).select_from(tweet_metrics)).scalar_one()
            audits = conn.execute(
                select(func.count()).where(audit_log.c.event_type == "post.posted")
            ).scalar_one()
        return int(metrics), int(audits)
    finally:
        client.close()
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_emitter_exits_redis_flushed_and_restarted_then_sync_loses_nothing(
    backend, tmp_path, request
):
    """Guards issue 17 item 2: events emitted for ``sync_to_supabase`` lived only in Redis and
    in the emitting process's memory; the emitter exited, Redis was flushed and restarted, and
    the sync found nothing: 1,000 of 1,000 lost. Now each emit is in the durable store when it
    returns (the store is up), so the same sequence loses 0."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'xbot.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_url")
    account, ids = _seed_posts(url)
    harness = load_harness()
    with harness.ThrowawayRedis(tmp_path) as server:  # no persistence, like the machine's Redis
        routes = _emit_in_a_process_that_exits(url, server.url, "emit:", account, ids)
        assert sum(routes.values()) == EVENTS
        server.flushall()
        server.kill()
        server.start()
        metrics, audits = _sync_and_count(url, server.url, "emit:")
    assert (metrics, audits) == (POSTS * len(HORIZONS), POSTS), "events lost"


def test_store_down_events_wait_in_a_persistent_redis_across_a_restart(tmp_path, pg_url):
    """The store is down while a process emits and exits: the events wait in Redis (XADD
    confirmed), which is killed and restarted; with an fsync-always AOF they are still there and
    the sync writes every one once the store is back. (Without persistence, or after a flush,
    nothing can bring back events that existed only in Redis: see ``store/hot/dual.py``.)"""
    account, ids = _seed_posts(pg_url)
    down_url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere"
    harness = load_harness()
    with harness.ThrowawayRedis(tmp_path, persistent=True) as server:
        routes = _emit_in_a_process_that_exits(down_url, server.url, "emit:", account, ids)
        assert routes == {"buffered": EVENTS}
        server.kill()  # SIGKILL: only what the AOF holds comes back
        server.start()
        metrics, audits = _sync_and_count(pg_url, server.url, "emit:")
    assert (metrics, audits) == (POSTS * len(HORIZONS), POSTS), "events lost"
