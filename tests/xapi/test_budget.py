"""The X API gate: one call per window at X_API_CALLS_PER_15MIN=1, the monthly read budget
bounds the collector (requests counted at the sandbox), posting stops at the write budget.

Driven through the engine's own entry points (``post_and_report`` = post_job's op,
``collect_account`` = the collector's op) against the in-process sandbox X and a real store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.orchestration.conftest import Env, make_env, restore_env
from xbot_assets.store.budget import XApiCaps, XApiUsageLedger
from xbot_assets.warehouse.collector import plan_within_budget

START = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)
RELAXED = {
    "max_posts_per_hour": 20,
    "max_posts_per_day": 100,
    "min_spacing_minutes": 0,
}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    from xbot_assets.engine.runtime import forget_sandboxes
    from xbot_assets.engine.sensing import forget_stores

    made, saved = make_env(tmp_path)
    try:
        yield made
    finally:
        forget_stores()
        forget_sandboxes()
        restore_env(saved)


def _settings(env: Env, **updates: Any) -> Any:
    return env.settings.model_copy(update={**RELAXED, **updates})


def _queue(settings: Any, texts: list[str], at: datetime) -> None:
    from xbot_assets.engine.runtime import build_runtime

    runtime = build_runtime(settings, now=at)
    store = runtime.store()
    account = runtime.account_id(store)
    for text in texts:
        store.enqueue_post(account, text, arm="single:python", scheduled_at=at, now=at)


def _post(settings: Any, at: datetime) -> Any:
    from xbot_assets.engine.reporting import post_and_report
    from xbot_assets.engine.runtime import build_runtime

    runtime = build_runtime(settings, now=at)
    poster = runtime.poster()
    try:
        return post_and_report(runtime, poster)
    finally:
        poster.close()
        runtime.close()


def _collect(settings: Any, at: datetime) -> Any:
    from xbot_assets.engine.collect import collect_account
    from xbot_assets.engine.runtime import build_runtime

    runtime = build_runtime(settings, now=at)
    try:
        return collect_account(runtime)
    finally:
        runtime.close()


def _sandbox(settings: Any) -> Any:
    from xbot_assets.engine.runtime import shared_sandbox

    return shared_sandbox(settings)


TEXTS = [f"Tip {i}: pin dependency {name} before the release." for i, name in enumerate(
    ["pytest", "numpy", "polars", "duckdb", "httpx", "pydantic", "ruff", "mypy"]
)]  # fmt: skip


def test_one_x_api_call_per_window_at_a_cap_of_one(env: Env) -> None:
    settings = _settings(env, x_api_calls_per_15min=1)
    _queue(settings, TEXTS[:5], START)
    sandbox = _sandbox(settings)
    before = sandbox.counters["write_requests"]
    run = _post(settings, START)
    assert sandbox.counters["write_requests"] - before == 1  # not 5
    assert len(run.posted) == 1
    held = [o for o in run.outcomes if o.status == "released"]
    assert held and "x_api_calls_per_15min" in (held[0].reason or "")
    # the same window: nothing more goes out; the next window: exactly one more
    _post(settings, START + timedelta(minutes=5))
    assert sandbox.counters["write_requests"] - before == 1
    _post(settings, START + timedelta(minutes=15))
    assert sandbox.counters["write_requests"] - before == 2


def test_the_collector_stays_within_the_monthly_read_budget(env: Env) -> None:
    reads_per_month = 7
    settings = _settings(env, x_api_reads_per_month=reads_per_month)
    sandbox = _sandbox(settings)
    # eight posts, one an hour, then collection every hour for four days
    for i, text in enumerate(TEXTS):
        at = START + timedelta(hours=i)
        _queue(settings, [text], at)
        _post(settings, at)
    assert sandbox.counters["posts_created"] == len(TEXTS)
    reads_before = sandbox.counters["requests"] - sandbox.counters["write_requests"]
    for hour in range(1, 4 * 24):
        _collect(settings, START + timedelta(hours=hour))
    reads = sandbox.counters["requests"] - sandbox.counters["write_requests"] - reads_before
    assert 0 < reads <= reads_per_month
    store = _store(settings)
    usage = XApiUsageLedger(store.engine, "local", XApiCaps.from_settings(settings)).usage(START)
    assert usage.reads == reads_per_month and usage.reads_left == 0
    # the 1h snapshots were served before the 72h ones were
    by_horizon = {h: 0 for h in ("1h", "6h", "24h", "72h")}
    for snap in store.list_metrics():
        by_horizon[snap.horizon] += 1
    assert by_horizon["1h"] >= by_horizon["72h"]


def test_posting_stops_at_the_monthly_write_budget(env: Env) -> None:
    settings = _settings(env, x_api_writes_per_month=2)
    _queue(settings, TEXTS[:4], START)
    sandbox = _sandbox(settings)
    for minutes in (0, 20, 40, 60):
        _post(settings, START + timedelta(minutes=minutes))
    assert sandbox.counters["posts_created"] == 2
    store = _store(settings)
    queued = store.list_posts(store.list_accounts()[0].id, status="queued")
    assert len(queued) == 2
    # released until the first of next month, when the budget renews
    assert any(p.scheduled_at >= datetime(2026, 2, 1, tzinfo=UTC) for p in queued)


def _store(settings: Any) -> Any:
    from xbot_assets.engine.sensing import cached_store

    return cached_store(settings)


def test_plan_drops_the_72h_snapshots_before_the_1h_ones() -> None:
    due = {"1h": 150, "6h": 40, "24h": 30, "72h": 250}
    assert plan_within_budget(due, 1000, 2) == due
    assert plan_within_budget(due, 6, 2) == {"1h": 150, "6h": 40, "24h": 0, "72h": 0}
    assert plan_within_budget(due, 3, 1) == {"1h": 150, "6h": 40, "24h": 0, "72h": 0}
    assert plan_within_budget(due, 2, 2) == {"1h": 100, "6h": 0, "24h": 0, "72h": 0}
    assert plan_within_budget(due, 0, 2) == {"1h": 0, "6h": 0, "24h": 0, "72h": 0}


def test_the_ledger_enforces_window_month_and_spend(tmp_path: Path) -> None:
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    store = DurableStore.from_url(url)
    caps = XApiCaps(
        calls_per_15min=2, reads_per_month=3, writes_per_month=1,
        read_cost_usd=0.5, write_cost_usd=1.0, usd_per_month=10.0,
    )  # fmt: skip
    ledger = XApiUsageLedger(store.engine, "local", caps)
    t = START
    assert ledger.reserve("read", t) and ledger.reserve("write", t)
    window = ledger.reserve("read", t)
    assert not window and window.reason == "x_api_calls_per_15min"
    assert window.retry_at == START + timedelta(minutes=15)
    later = t + timedelta(minutes=15)
    assert ledger.reserve("read", later)
    assert not ledger.reserve("write", later)  # the month's one write is used
    assert ledger.reserve("read", later + timedelta(minutes=15))
    month = ledger.reserve("read", later + timedelta(minutes=30))
    assert not month and month.reason == "x_api_reads_per_month"
    assert month.retry_at == datetime(2026, 2, 1, tzinfo=UTC)
    usage = ledger.usage(t)
    assert (usage.reads, usage.writes, usage.cost_usd, usage.denied) == (3, 1, 2.5, 3)
    assert ledger.reserve("read", datetime(2026, 2, 1, tzinfo=UTC))  # a new month
    spend = XApiUsageLedger(store.engine, "local", XApiCaps(read_cost_usd=4.0, usd_per_month=5))
    assert spend.reserve("read", datetime(2026, 3, 1, tzinfo=UTC))
    refused = spend.reserve("read", datetime(2026, 3, 1, 1, tzinfo=UTC))
    assert not refused and refused.reason == "x_api_usd_per_month"
    store.close()


def test_redis_limiter_counts_the_window_across_processes(tmp_path: Path) -> None:
    """With REDIS_URL, the Redis counter (``acquire_x_api_call``) goes in front of the durable
    ledger: two gates on two separate stores still share one 15-minute window."""
    import uuid

    import redis

    from xbot_assets.config import load_settings
    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade
    from xbot_assets.store.hot.keys import scan_keys
    from xbot_assets.xapi.budget import XApiGate

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"guardhealth-{uuid.uuid4().hex[:8]}:"
    settings = load_settings(
        env_file=None, app_env="local", xbot_home=tmp_path, redis_url=None,
        redis_prefix=prefix, x_api_calls_per_15min=1,
    )  # fmt: skip
    gates = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.db"
        upgrade(url)
        gates.append(
            XApiGate.for_store(
                settings, DurableStore.from_url(url), lambda: START, redis_client=client
            )
        )
    try:
        assert gates[0].acquire("read")
        refused = gates[1].acquire("read")
        assert not refused and refused.reason == "x_api_calls_per_15min"
        assert gates[1].ledger.usage(START).reads == 0  # refused before the durable ledger
    finally:
        from xbot_assets.store.hot.keys import KeySpace

        for key in scan_keys(client, KeySpace(prefix)):
            client.delete(key)
        client.close()


def test_concurrent_reservations_never_pass_the_cap_on_postgres(pg_database: str) -> None:
    """Eight threads racing for a month of 20 reads on Postgres (row lock ``FOR UPDATE``, as
    the ``xbot_staging`` role under row-level security): exactly 20 are granted."""
    from concurrent.futures import ThreadPoolExecutor

    from xbot_assets.store.durable import DurableStore
    from xbot_assets.store.durable.migrate import upgrade

    upgrade(pg_database)
    store = DurableStore.from_url(pg_database, environment="staging")
    ledger = XApiUsageLedger(
        store.engine, "staging", XApiCaps(calls_per_15min=1000, reads_per_month=20)
    )
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            granted = sum(pool.map(lambda _: bool(ledger.reserve("read", START)), range(40)))
        assert granted == 20
        usage = ledger.usage(START)
        assert (usage.reads, usage.denied) == (20, 20)
    finally:
        store.close()
