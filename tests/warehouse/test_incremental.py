"""The incremental marts give exactly what a full rebuild gives, and leave old rows alone.

Raw tables are written through the extraction's own writers (``upsert_batches``), step by step
as loads arrive in production: new posts, a queued post published later, snapshots reaching
their 6h/24h/72h horizons days after posting, a re-collected snapshot, a post loaded a day late
with an older posting time, two accounts in different time zones. After every step the marts
are refreshed incrementally with dbt (through ``xbot-dbt``); at the end a full rebuild of a copy
must hold the same rows in every mart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from xbot_assets.warehouse.dbt_env import dbt_env_vars
from xbot_assets.warehouse.extract import rows_to_batch, upsert_batches
from xbot_assets.warehouse.project import DBT_PROJECT_DIR
from xbot_assets.warehouse.raw_schema import column_names, create_raw_tables
from xbot_assets.warehouse.views import create_view, discover_views

pytestmark = pytest.mark.xdist_group("dbt_incremental")

XBOT_DBT = str(Path(sys.executable).parent / "xbot-dbt")
T0 = datetime(2026, 3, 2, tzinfo=UTC)
HORIZONS = (("1h", 1), ("6h", 6), ("24h", 24), ("72h", 72))
ARMS = [f"{f}:{t}" for f in ("single", "thread", "question") for t in ("ai", "python")]
TEXTS = [
    "How to profile #python code? Start with cProfile",
    "Hot take: most dashboards are never read",
    "Why do models drift after launch?",
    "3 ways to cut LLM costs https://example.com/llm",
    "Stop tuning before you have a baseline",
    "Small teams ship faster than big ones",
]
MARTS = [
    ("marts", "fct_posts"),
    ("marts", "fct_post_outcomes"),
    ("marts", "mart_post_outcomes_daily"),
    ("marts", "mart_arm_performance"),
    ("marts", "mart_hourly_engagement"),
    ("marts", "mart_follower_growth"),
]


@dataclass
class World:
    """What has been loaded so far, to know which snapshots are due."""

    rng: np.random.Generator
    next_id: int = 1
    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    snapshots: set[tuple[int, str]] = field(default_factory=set)
    queued: list[int] = field(default_factory=list)


def _post(world: World, account: int, posted_at: datetime | None, **extra: Any) -> dict[str, Any]:
    pid = world.next_id
    world.next_id += 1
    arm = ARMS[int(world.rng.integers(len(ARMS)))]
    row = {
        "post_id": pid, "account_id": account, "account": f"acct{account}",
        "environment": "local", "status": "posted" if posted_at else "queued",
        "x_post_id": str(10_000 + pid) if posted_at else None, "thread_root_id": None,
        "thread_position": 0, "thread_size": 1,
        "text": f"{TEXTS[int(world.rng.integers(len(TEXTS)))]} {pid}",
        "arm": arm, "format": arm.split(":")[0], "topic": arm.split(":")[1],
        "content_source": None, "policy": "thompson",
        "predicted_score": float(world.rng.random()), "propensity": 1 / len(ARMS),
        "scheduled_at": posted_at or T0,
        "created_at": (posted_at or T0) - timedelta(minutes=5), "posted_at": posted_at,
        "updated_at": posted_at or T0,
    }  # fmt: skip
    row.update(extra)
    world.posts[pid] = row
    return row


def _snapshot(world: World, pid: int, horizon: str, at: datetime) -> dict[str, Any]:
    base = 100 + int(world.rng.integers(2000))
    share = {"1h": 0.3, "6h": 0.6, "24h": 0.9, "72h": 1.0}[horizon]
    impressions = int(base * share)

    def part(rate: float) -> int:
        return int(world.rng.binomial(impressions, rate))

    return {
        "post_id": pid, "account_id": world.posts[pid]["account_id"], "environment": "local",
        "horizon": horizon, "impressions": impressions, "likes": part(0.03),
        "reposts": part(0.005), "replies": part(0.004), "quotes": part(0.001),
        "bookmarks": part(0.002), "profile_clicks": part(0.004), "follows": part(0.001),
        "negative_feedback": part(0.0005), "reports": 0, "source": "test", "collected_at": at,
    }  # fmt: skip


def _write(con: duckdb.DuckDBPyConnection, table: str, key: list[str], rows: list[dict]) -> None:
    if not rows:
        return
    names = column_names(table)
    batch = rows_to_batch([tuple(r[n] for n in names) for r in rows], table)
    upsert_batches(con, table, key, iter([batch]))


def _load_step(path: Path, world: World, day: int, *, recollect: bool = True) -> None:
    """One day of loads: new posts (threads, queued ones, a late one), due snapshots, followers,
    and (``recollect``) three snapshots collected again, of posts picked at random."""
    rng = world.rng
    start = T0 + timedelta(days=day)
    end = start + timedelta(days=1)
    posts: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    for account in (1, 2):
        for _ in range(int(rng.integers(6, 14))):
            at = start + timedelta(seconds=int(rng.integers(86_000)))
            if rng.random() < 0.15:  # a three-part thread: root + 2 parts
                root = _post(world, account, at, thread_size=3)
                root["thread_root_id"] = root["post_id"]
                posts.append(root)
                for position in (1, 2):
                    part = _post(world, account, at + timedelta(seconds=position),
                                 thread_root_id=root["post_id"], thread_position=position,
                                 thread_size=3)  # fmt: skip
                    posts.append(part)
            else:
                post = _post(world, account, at)
                posts.append(post)
                if rng.random() < 0.5:
                    candidates.append({
                        "candidate_id": post["post_id"], "account_id": account,
                        "environment": "local", "batch_id": f"b{day}", "arm": post["arm"],
                        "format": post["format"], "topic": post["topic"],
                        "content_source": "openai" if rng.random() < 0.5 else "offline",
                        "predicted_score": 0.5, "guard_passed": True, "chosen": True,
                        "post_id": post["post_id"], "created_at": at - timedelta(minutes=10),
                    })  # fmt: skip
        queued = _post(world, account, None)
        posts.append(queued)
        world.queued.append(queued["post_id"])
    if day >= 1:  # yesterday's queued posts are published today (same ids, new status)
        for pid in world.queued[:-2]:
            row = world.posts[pid]
            at = start + timedelta(hours=int(rng.integers(1, 20)))
            row.update(status="posted", posted_at=at, x_post_id=str(10_000 + pid), updated_at=at)
            posts.append(row)
        world.queued = world.queued[-2:]
    if day >= 2:  # a post loaded a day late, posted before posts already measured
        posts.append(_post(world, 1, start - timedelta(days=2, hours=-3)))
    snapshots: list[dict[str, Any]] = []
    for pid, row in world.posts.items():
        if row["status"] != "posted":
            continue
        for horizon, hours in HORIZONS:
            at = row["posted_at"] + timedelta(hours=hours, minutes=7)
            if at < end and (pid, horizon) not in world.snapshots:
                world.snapshots.add((pid, horizon))
                snapshots.append(_snapshot(world, pid, horizon, at))
    old = sorted(world.snapshots) if recollect else []
    for i in rng.choice(len(old), size=min(3, len(old)), replace=False) if old else []:
        pid, horizon = old[int(i)]  # re-collected: a newer row for the same post and horizon
        snapshots.append(_snapshot(world, pid, horizon, end - timedelta(minutes=int(i) + 1)))
    followers = [
        {"snapshot_id": day * 10 + a, "account_id": a, "environment": "local",
         "collected_at": end - timedelta(minutes=1), "followers_count": 1000 + day * 7 * a,
         "following_count": 50}
        for a in (1, 2)
    ]  # fmt: skip
    con = duckdb.connect(str(path))
    try:
        create_raw_tables(con)
        if day == 0:
            _write(con, "accounts", ["account_id"], [
                {"account_id": 1, "account": "acct1", "environment": "local", "x_user_id": "1",
                 "timezone": "Europe/Paris", "active": True, "created_at": T0},
                {"account_id": 2, "account": "acct2", "environment": "local", "x_user_id": "2",
                 "timezone": "America/New_York", "active": True, "created_at": T0},
            ])  # fmt: skip
        _write(con, "posts", ["post_id"], posts)
        _write(con, "candidates", ["candidate_id"], candidates)
        # Snapshots are appended (a re-collected one sits beside the old one, as in raw).
        names = column_names("tweet_metrics")
        batch = pa.Table.from_batches(  # noqa: F841 - read by DuckDB by name
            [rows_to_batch([tuple(s[n] for n in names) for s in snapshots], "tweet_metrics")]
        )
        con.execute(f"insert into raw.tweet_metrics ({', '.join(names)}) "
                    f"select {', '.join(names)} from batch")  # fmt: skip
        _write(con, "follower_snapshots", ["snapshot_id"], followers)
    finally:
        con.close()


def _dbt(path: Path, target: Path, *args: str) -> None:
    env = {**os.environ, **dbt_env_vars("local", path), "DBT_TARGET_PATH": str(target)}
    proc = subprocess.run(
        [XBOT_DBT, *args, "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target", "local"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def _rows(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> list[tuple]:
    columns = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? "
        "and column_name <> '_loaded_at' order by column_name",
        [catalog, schema, table],
    ).fetchall()
    select = ", ".join(f"round({n}, 9)" if t == "DOUBLE" else n for n, t in columns)
    return sorted(
        con.execute(f"select {select} from {catalog}.{schema}.{table}").fetchall(),
        key=repr,
    )


def test_incremental_refreshes_match_a_full_rebuild(tmp_path: Path) -> None:
    world = World(rng=np.random.default_rng(20261128))
    path, target = tmp_path / "inc.duckdb", tmp_path / "target"
    _load_step(path, world, 0)
    _dbt(path, target, "build")  # the first build is a full one
    for day in range(1, 5):
        _load_step(path, world, day)
        _dbt(path, target, "build" if day == 4 else "run")  # data tests on incremental tables

    full = tmp_path / "full.duckdb"
    shutil.copy(path, full)
    _dbt(full, tmp_path / "target_full", "run", "--full-refresh")

    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute(f"attach '{full}' as full_build (read_only)")
        for schema, table in MARTS:
            incremental = _rows(con, "inc", schema, table)
            rebuilt = _rows(con, "full_build", schema, table)
            assert incremental == rebuilt, f"{schema}.{table} differs from a full rebuild"
        n_outcomes = len(_rows(con, "inc", "marts", "fct_post_outcomes"))
        measured = con.execute(
            "select count(*) from marts.fct_post_outcomes where final_horizon = '72h'"
        ).fetchone()
        late = con.execute(
            "select count(*) from marts.fct_post_outcomes where beats_median = 1"
        ).fetchone()
    finally:
        con.close()
    # The data exercised what it should: many posts, finished ones, and labels of both kinds.
    assert n_outcomes > 60
    assert measured is not None and measured[0] > 20
    assert late is not None and 0 < late[0] < n_outcomes


DIRECT = {
    # The two views that read the daily sums, recomputed from every post directly.
    "vw_learning_performance": (
        "select account, day, n_posts, mean_reward, beats_median_rate, mean_predicted_score, "
        "score_reward_corr from views.vw_learning_performance",
        "select account, posted_date_local, count(*), round(avg(reward), 6), "
        "round(avg(beats_median), 4), round(avg(predicted_score), 6), "
        "round(corr(predicted_score, reward), 4) from marts.fct_post_outcomes "
        "where final_horizon is not null group by all",
    ),
    "vw_content_sources_perf": (
        "select * from views.vw_content_sources_perf",
        "select account, content_source, count(*), sum(impressions), round(sum(likes + reposts "
        "+ replies + quotes + bookmarks + profile_clicks)::double / nullif(sum(impressions), 0), "
        "6), round(avg(reward), 6), round(avg(beats_median), 4), sum(follows) "
        "from marts.fct_post_outcomes where final_horizon is not null group by all",
    ),
}


def test_views_over_the_daily_sums_equal_aggregates_over_every_post(tmp_path: Path) -> None:
    world = World(rng=np.random.default_rng(11))
    path, target = tmp_path / "inc.duckdb", tmp_path / "target"
    for day in range(3):
        _load_step(path, world, day)
        _dbt(path, target, "build" if day == 0 else "run")
    con = duckdb.connect(str(path))
    try:
        for view in discover_views():
            create_view(con, view)
        for name, (from_view, direct) in DIRECT.items():
            got = sorted(con.execute(from_view).fetchall(), key=repr)
            expected = sorted(con.execute(direct).fetchall(), key=repr)
            assert got == expected, name
            assert len(got) > 1
    finally:
        con.close()


def test_an_incremental_refresh_leaves_older_rows_untouched(tmp_path: Path) -> None:
    world = World(rng=np.random.default_rng(7))
    path, target = tmp_path / "inc.duckdb", tmp_path / "target"
    for day in range(5):  # day-0 posts have all four snapshots by the end of day 3
        _load_step(path, world, day, recollect=False)
    _dbt(path, target, "build")
    # Mark the first day's rows (finished days ago): a refresh that rebuilt them would lose them.
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "update marts.fct_post_outcomes set text = 'untouched' where posted_at < ?",
            [T0 + timedelta(days=1)],
        )
        con.execute(
            "update marts.mart_post_outcomes_daily set account = 'untouched' where posted_day < ?",
            [(T0 + timedelta(days=1)).date()],
        )
        marked = con.execute(
            "select count(*) from marts.fct_post_outcomes where text = 'untouched'"
        ).fetchone()
        before = con.execute("select count(*) from marts.fct_post_outcomes").fetchone()
    finally:
        con.close()
    assert marked is not None and marked[0] > 0

    _load_step(path, world, 5, recollect=False)  # its late post is from day 3
    _dbt(path, target, "run")

    con = duckdb.connect(str(path), read_only=True)
    try:
        still = con.execute(
            "select count(*) from marts.fct_post_outcomes where text = 'untouched'"
        ).fetchone()
        daily = con.execute(
            "select count(*) from marts.mart_post_outcomes_daily where account = 'untouched'"
        ).fetchone()
        after = con.execute("select count(*) from marts.fct_post_outcomes").fetchone()
    finally:
        con.close()
    assert still == marked
    assert daily is not None and daily[0] > 0
    assert after is not None and before is not None and after[0] > before[0]
