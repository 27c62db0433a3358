"""``benchmarks/durable_store.py --content-hashes`` at toy sizes: it reads one account's hashes
(every one, and only that account's) on both engines, through the unique key's index, and drops
the Postgres database it made."""

from __future__ import annotations

import pytest

from tests.store.conftest import pg_admin


def test_the_content_hashes_benchmark_reads_each_accounts_own_hashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import durable_store

    monkeypatch.setattr(durable_store, "FLEET", (3, 20))
    monkeypatch.setattr(durable_store, "BULK_ROWS", 7)  # several multi-row inserts per size
    with pg_admin() as conn:
        before = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    results = durable_store.run_content_hashes((10, 40), calls=2)
    for engine in ("sqlite", "postgres"):
        measured = results[engine]
        assert [row["posts"] for row in measured["sizes"]] == [10, 40]
        for row in measured["sizes"]:  # 64 hex characters a post, its own posts only
            assert row["payload_bytes"] == 64 * row["posts"]
            assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        fleet = measured["fleet_account"]
        assert (fleet["accounts"], fleet["posts"], fleet["table_rows"]) == (3, 20, 3 * 20 + 2 * 40)
        assert fleet["payload_bytes"] == 64 * 20
        plan = " ".join(measured["plan_at_largest"])
        assert "COVERING INDEX" in plan or "Index Only Scan" in plan, plan
    with pg_admin() as conn:
        after = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {n for n in after - before if n.startswith("xbot_bench_store_")} == set()
