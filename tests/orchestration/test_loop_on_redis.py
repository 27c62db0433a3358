"""The main job on the hot path (issue 19): Redis in front, the durable store decides.

Two short runs of the same seed (2 simulated days, one account), shared by every test here: on
the store alone, and through a throwaway Redis that is flushed and killed twice mid-run. Both
must leave the same store apart from timestamps (``ops.store_diff``): the same posts, attempts,
candidates, metric snapshots and audit rows. The Redis run must have used Redis for what the hot
path promises (tickets, dedup, rate counters: counted with ``INFO commandstats`` over its clean
first part, up to the first flush), and it must have lost, doubled and over-posted nothing.

Why two runs and not three: a clean Redis run was the third; the faulty run is a Redis run too
(clean until its first flush), and each 2-day main job costs minutes of the suite.

Never the shared Redis: each run gets its own ``redis-server`` on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.orchestration.conftest import make_env, restore_env

pytestmark = [
    pytest.mark.xdist_group("loop_on_redis"),
    pytest.mark.timeout(3600),  # two 2-day main jobs in the first test's setup
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

DAYS = 2.0
POSTS_PER_DAY = 4
REBUILD_EVERY_H = 48
PREFIX = "hotpath-test:"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayRedis:
    """A ``redis-server`` of this test alone, without persistence, that can die and come back."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/3"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started += 1
        for _ in range(100):
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("throwaway redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def flush(self) -> None:
        self.client().flushall()

    def commandstats(self) -> dict[str, int]:
        stats: dict[str, Any] = self.client().info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}

    def stop(self) -> None:
        if self.proc is not None:
            self.kill()


@dataclass
class CleanPart:
    """What the Redis run had done before its first fault, and the commands Redis served."""

    commands: dict[str, int]
    queued_rows: int
    posted: list[dict[str, Any]]


@dataclass
class LoopRun:
    contents: dict[str, list[tuple[Any, ...]]]
    posted: list[dict[str, Any]]
    sandbox_posts: int
    caps: Any
    redis_events: list[str]
    clean: CleanPart | None


def _posted_and_queued(store: Any, handle: str) -> tuple[list[dict[str, Any]], int]:
    """The account's posted rows (id, X id, thread position, claim time) and all its rows."""
    account = store.get_account_by_handle(handle)
    posted = [
        {"id": p.id, "x_id": p.x_id, "position": p.thread_position, "at": p.posting_started_at}
        for p in store.list_posts(account.id, status="posted", limit=10_000)
    ]
    return posted, len(store.list_posts(account.id, limit=10_000))


def _run(root: Path, redis_server: ThrowawayRedis | None, faults: bool = False) -> LoopRun:
    from xbot_assets.config import load_settings
    from xbot_assets.engine.runtime import forget_sandboxes, shared_sandbox
    from xbot_assets.engine.sensing import forget_stores
    from xbot_assets.ops.store_diff import store_contents
    from xbot_assets.posting.hotpath import forget_hot_clients
    from xbot_assets.posting.ledger import RateCaps
    from xbot_assets.runner import run_main
    from xbot_assets.store.durable import DurableStore

    _made, saved = make_env(root)
    events: list[str] = []
    clean: list[CleanPart] = []
    try:
        forget_sandboxes()
        forget_stores()
        forget_hot_clients()
        if redis_server is not None:
            os.environ["REDIS_URL"] = redis_server.url
            os.environ["REDIS_PREFIX"] = PREFIX
        settings = load_settings(env_file=None)
        plan: list[tuple[float, str]] = []
        if faults:  # (fraction of the run, action): flushed and killed twice, back each time
            # The first flush waits until the first day's afternoon (the account's quiet hours
            # end at 07:00), so the clean part before it has posted; each outage lasts 15 %.
            plan = [
                (0.35, "flush"),
                (0.40, "kill"),
                (0.55, "start"),
                (0.65, "flush"),
                (0.70, "kill"),
                (0.85, "start"),
            ]
        start: list[datetime] = []

        def on_tick(now: datetime) -> None:
            if not start:
                start.append(now)
            done = (now - start[0]) / timedelta(days=DAYS)
            if plan and plan[0][0] <= done and not clean:  # the clean part ends here
                assert redis_server is not None
                store = DurableStore.from_settings(settings)
                try:
                    posted, queued = _posted_and_queued(store, settings.x_handle)
                finally:
                    store.close()
                clean.append(CleanPart(redis_server.commandstats(), queued, posted))
            while plan and plan[0][0] <= done:
                _fraction, action = plan.pop(0)
                assert redis_server is not None
                getattr(redis_server, action)()
                events.append(f"{action}@{now.isoformat()}")

        run_main(
            settings,
            days=DAYS,
            posts_per_day=POSTS_PER_DAY,
            rebuild_every_hours=REBUILD_EVERY_H,
            progress=False,
            report_dir=root / "reports",
            on_tick=on_tick,
        )
        store = DurableStore.from_settings(settings)
        try:
            contents = store_contents(store.engine, settings.app_env)
            posted, _queued = _posted_and_queued(store, settings.x_handle)
        finally:
            store.close()
        on_x = len(shared_sandbox(settings).posts_of(settings.x_handle))
        return LoopRun(
            contents,
            posted,
            on_x,
            RateCaps.from_settings(settings),
            events,
            clean[0] if clean else None,
        )
    finally:
        forget_hot_clients()
        forget_stores()
        forget_sandboxes()
        restore_env(saved)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoopRun]]:
    """The two runs of the same seed (store only; Redis, flushed and killed twice)."""
    out: dict[str, LoopRun] = {}
    out["store"] = _run(tmp_path_factory.mktemp("store_only"), None)
    server = ThrowawayRedis(tmp_path_factory.mktemp("faults_redis"))
    server.start()
    try:
        out["faults"] = _run(tmp_path_factory.mktemp("faults"), server, faults=True)
    finally:
        server.stop()
    yield out


def test_redis_run_leaves_the_store_only_runs_store(runs: dict[str, LoopRun]) -> None:
    from xbot_assets.ops.store_diff import diff_contents

    store_only, on_redis = runs["store"], runs["faults"]
    assert len(store_only.posted) >= DAYS * POSTS_PER_DAY - 2  # the run did post
    assert len(on_redis.posted) == len(store_only.posted)
    assert diff_contents(store_only.contents, on_redis.contents) == []


def test_posting_run_uses_the_hot_path(runs: dict[str, LoopRun]) -> None:
    """Counted on the server over the Redis run's clean part (up to its first flush): if the
    loop skipped Redis, these stay at zero."""
    clean = runs["faults"].clean
    assert clean is not None
    commands = clean.commands
    posted = len(clean.posted)
    roots = sum(1 for p in clean.posted if p["position"] == 0)
    assert roots >= 1  # the clean part did post: the counts below are not vacuous
    # tickets: one per queued row, waiting in the delayed set until the slot (or XADD if due)
    assert commands.get("zadd", 0) + commands.get("xadd", 0) >= clean.queued_rows
    assert commands.get("xreadgroup", 0) >= posted  # workers read the due tickets
    assert commands.get("xack", 0) >= posted  # and settle them from the durable rows
    # rate counters: hour and day buckets bumped per root post, read by every precheck
    assert commands.get("incr", 0) + commands.get("incrby", 0) >= 2 * roots  # redis-py: INCRBY
    assert commands.get("get", 0) >= roots
    # dedup: every queued text remembered (SET with a TTL), every chosen text checked first
    assert commands.get("exists", 0) >= roots
    assert commands.get("set", 0) >= roots


def test_kill_and_flush_twice_lose_and_double_nothing(runs: dict[str, LoopRun]) -> None:
    from xbot_assets.ops.store_diff import diff_contents

    store_only, faulty = runs["store"], runs["faults"]
    assert [e.split("@")[0] for e in faulty.redis_events] == [
        "flush",
        "kill",
        "start",
        "flush",
        "kill",
        "start",
    ]
    # 0 lost, every snapshot in the store: the same store as the run without Redis at all
    assert diff_contents(store_only.contents, faulty.contents) == []
    # 0 duplicated: one X id per posted row, and X holds as many posts as the store says
    x_ids = [p["x_id"] for p in faulty.posted]
    assert len(set(x_ids)) == len(x_ids)
    assert faulty.sandbox_posts == len(faulty.posted)
    # caps never exceeded, in any sliding window
    caps = faulty.caps
    roots = sorted(p["at"] for p in faulty.posted if p["position"] == 0)
    for i, at in enumerate(roots):
        in_hour = [t for t in roots[i:] if t < at + timedelta(hours=1)]
        in_day = [t for t in roots[i:] if t < at + timedelta(days=1)]
        assert len(in_hour) <= caps.max_posts_per_hour
        assert len(in_day) <= caps.max_posts_per_day
        if i:
            assert at - roots[i - 1] >= caps.min_spacing
