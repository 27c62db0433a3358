"""Fault tests against throwaway servers the tests start themselves (issue 5, "Done when").

(1) Redis killed or flushed at random moments 20 times while 1,000 items flow (200 posts through
    the caps and their 800 events): nothing lost, no cap exceeded, the brake held.
(2) Postgres stopped (immediate, like a crash) while 1,000 events flow: events buffered in Redis,
    then synced: nothing lost, nothing duplicated.

The same scenarios run longer from ``benchmarks/hot_path_faults.py``.
"""

from __future__ import annotations

from tests.hotpath.harness import load_harness


def test_redis_killed_or_flushed_20_times_loses_nothing(pg_url, tmp_path):
    harness = load_harness()
    result = harness.redis_chaos(pg_url, tmp_path, posts=200, faults=20, seed=5)
    faults = [f for f in result.faults if "killed" in f or "flushed" in f]
    assert len(faults) >= 20, result.faults
    assert result.items_total == 1000
    assert result.posted == 200, "posts lost"
    assert result.metrics_rows == 600, "metric snapshots lost or doubled"
    assert result.audit_rows == 200, "audit events lost or doubled"
    assert result.attempts == 200 and result.duplicate_attempts == 0, "a post claimed twice"
    assert result.cap_violations == [], "a rate cap was exceeded"
    assert result.brake_kept and result.claims_during_brake == 0, "the brake did not hold"
    assert result.unprefixed_keys == [], "a Redis key bypassed the key helper"


def test_postgres_outage_buffers_then_syncs_exactly_once():
    harness = load_harness()
    result = harness.postgres_outage("redis://127.0.0.1:6379/0", posts=500, outage_ticks=6)
    assert any("postgres stopped" in f for f in result.faults)
    assert any("sync waited" in f for f in result.faults), "the outage was never observed"
    buffered = int(result.faults[-1].split()[0])
    assert buffered > 0, "nothing was buffered during the outage"
    assert result.items_total == 1000
    assert result.metrics_rows == 500, "metric snapshots lost"
    assert result.audit_rows == 500, "audit events lost"
    assert result.duplicate_attempts == 0, "duplicated rows"
