"""The engine on a simulated clock writes simulated times only, so the warehouse's incremental
raw extraction (``updated_at``/``created_at`` watermarks) misses nothing in the main job.

The engine is driven directly (refill, post, collect metrics, reconcile) hour by hour through
``build_runtime(now=...)``, as the main job's runs do, against the sandbox X and a real store.
The wall clock here is far from January 2026, so one wall-clock stamp shows up at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from tests.orchestration.conftest import Env
from xbot_assets.store.durable import schema as s
from xbot_assets.warehouse import load
from xbot_assets.warehouse.raw_schema import create_raw_tables

pytestmark = pytest.mark.xdist_group("orchestration_simulated_clock")

START = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
"""Every time the simulated run writes lies in January 2026 (slots are at most a day ahead)."""

TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("created_at", "updated_at"),
    "tweets": ("created_at", "updated_at", "scheduled_at", "posting_started_at", "posted_at"),
    "post_attempts": ("started_at", "finished_at"),
    "candidates": ("created_at",),
    "tweet_metrics": ("collected_at",),
    "audit_log": ("occurred_at",),
    "bot_config": ("updated_at",),
}


def _hour(settings: Any, now: datetime) -> None:
    """One simulated hour of the engine: reconcile and post what is due, collect due metrics,
    refill the coming day's open slots (what the main job's runs do at that time)."""
    from xbot_assets.engine.decide import refill
    from xbot_assets.engine.runtime import build_runtime
    from xbot_assets.posting.factory import post_due
    from xbot_assets.warehouse.collector import collect_due_metrics, record_followers

    runtime = build_runtime(settings, now=now)
    poster = runtime.poster()
    try:
        post_due(runtime.settings, poster=poster, clock=runtime.now)
        store = runtime.store()
        reader = runtime.reader()
        collect_due_metrics(store, reader, now=runtime.now(), account_id=runtime.account_id(store))
        record_followers(store, reader, now=runtime.now())
        refill(runtime, n_candidates=3)
    finally:
        poster.close()
        runtime.close()


def _run_hours(settings: Any, start: datetime, hours: int) -> None:
    for i in range(hours):
        _hour(settings, start + timedelta(hours=i))


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite may hand back text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _times_outside_window(settings: Any) -> list[tuple[str, str, int, datetime]]:
    """Every stamped time of this environment outside the simulated window."""
    engine = sa.create_engine(settings.resolved_database_url)
    outside: list[tuple[str, str, int, datetime]] = []
    try:
        with engine.connect() as conn:
            for name, columns in TIME_COLUMNS.items():
                table = s.metadata.tables[name]
                rows = conn.execute(
                    sa.select(table.c.id, *(table.c[c] for c in columns)).where(
                        table.c.environment == settings.app_env
                    )
                ).all()
                for row in rows:
                    for column in columns:
                        value = getattr(row, column)
                        if value is None:
                            continue
                        when = _as_utc(value)
                        if not WINDOW[0] <= when < WINDOW[1]:
                            outside.append((name, column, int(row.id), when))
    finally:
        engine.dispose()
    return outside


def _row_counts(settings: Any) -> dict[str, int]:
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return {
                name: int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(s.metadata.tables[name])
                    ).scalar_one()
                )
                for name in TIME_COLUMNS
            }
    finally:
        engine.dispose()


def _store_posts(store: Any) -> dict[int, tuple[Any, ...]]:
    engine = store.engine
    t = s.tweets
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.id, t.c.status, t.c.x_id, t.c.updated_at, t.c.posted_at).where(
                t.c.environment == store.environment
            )
        ).all()
    return {
        int(r.id): (
            r.status,
            r.x_id,
            _as_utc(r.updated_at),
            None if r.posted_at is None else _as_utc(r.posted_at),
        )
        for r in rows
    }


def _raw_posts(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[Any, ...]]:
    rows = con.execute(
        "select post_id, status, x_post_id, updated_at, posted_at from raw.posts"
    ).fetchall()
    return {
        int(pid): (
            status,
            x_id,
            _as_utc(updated),
            None if posted is None else _as_utc(posted),
        )
        for pid, status, x_id, updated, posted in rows
    }


def test_a_simulated_run_stamps_only_simulated_times(env: Env) -> None:
    _run_hours(env.settings, START, 5)

    counts = _row_counts(env.settings)
    # The steps wrote to every table the check covers (else the check proves nothing).
    for table in ("accounts", "tweets", "post_attempts", "candidates", "audit_log"):
        assert counts[table] > 0, f"the simulated hours wrote no {table} rows"
    outside = _times_outside_window(env.settings)
    assert not outside, f"store writes stamped outside the simulated window: {outside[:10]}"


def test_incremental_raw_load_after_simulated_updates_picks_up_every_changed_post(
    env: Env,
) -> None:
    from xbot_assets.engine.sensing import cached_store

    _run_hours(env.settings, START, 4)
    store = cached_store(env.settings)
    con = duckdb.connect()
    create_raw_tables(con)
    first = load.load_posts(store, con, full=False)
    assert first.source == "first load" and first.rows > 0
    load.load_candidates(store, con, full=False)
    before = _store_posts(store)
    watermark = max(v[2] for v in before.values())

    # More simulated hours: queued posts become posted, new slots are refilled.
    _run_hours(env.settings, START + timedelta(hours=4), 6)
    after = _store_posts(store)
    changed = {pid for pid, row in after.items() if before.get(pid) != row}
    assert changed, "the later hours changed posts (else the check proves nothing)"
    assert {after[pid][0] for pid in changed} >= {"posted"}

    second = load.load_posts(store, con, full=False)
    assert second.source.startswith("changed since")
    assert _raw_posts(con) == after, "the incremental load skipped changed posts"
    # Every change is stamped after the last load (so the watermark cannot skip it), and the
    # load read the rows stamped since the watermark, not the whole table.
    assert all(after[pid][2] >= watermark for pid in changed)
    assert second.rows == sum(1 for row in after.values() if row[2] >= watermark) < len(after)
    load.load_candidates(store, con, full=False)
    store_candidates = {c.id: (c.chosen, c.tweet_id) for c in store.list_candidates(
        store.get_account_by_handle(env.settings.x_handle).id, limit=10_000
    )}  # fmt: skip
    raw_candidates = {
        int(cid): (bool(chosen), None if tid is None else int(tid))
        for cid, chosen, tid in con.execute(
            "select candidate_id, chosen, post_id from raw.candidates"
        ).fetchall()
    }
    assert raw_candidates == store_candidates
    assert load.warehouse_counts(con)["posts"] == load.store_counts(store)["posts"]
