"""Throwaway servers and fault scenarios of the hot path (used by tests, scripts and benchmarks).

- :class:`ThrowawayRedis`: ``redis-server`` on a free port, no persistence; kill, restart, flush.
- :class:`ThrowawayPostgres`: ``initdb`` into a temporary folder and ``pg_ctl`` on a free port (as
  the ``postgres`` OS user when run as root); stop and start again at will.
- :func:`redis_chaos` and :func:`postgres_outage`: the two fault scenarios of issue 5, returning
  a report dict with the counts the tests assert (lost, duplicated, caps exceeded, brake kept).

Killing these servers harms nothing else: they live in their own folders and ports.
Run the scenarios from the command line with ``benchmarks/hot_path_faults.py``.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, func, insert, select, update

from xbot_assets.store.durable.schema import (
    accounts,
    audit_log,
    post_attempts,
    tweet_metrics,
    tweets,
)
from xbot_assets.store.hot.dedup import content_hash
from xbot_assets.store.hot.dual import DualStoreManager, StoresUnavailableError
from xbot_assets.store.hot.keys import KeySpace, connect_redis
from xbot_assets.store.hot.ratelimit import RateCaps
from xbot_assets.store.hot.streams import QueuePolicy
from xbot_assets.vocabulary import HORIZONS


def free_port() -> int:
    """A TCP port free on loopback right now (bind port 0 and read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not come up within {timeout_s} s")


class ThrowawayRedis:
    """A private ``redis-server`` (no RDB, no AOF) that a fault test may kill and restart.

    ``persistent=True`` turns on the AOF with ``appendfsync always`` (every acknowledged write is
    on disk in ``workdir``, so it survives a kill and restart; a flush still deletes it).
    """

    def __init__(self, workdir: Path, *, persistent: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = connect_redis(self.url, socket_timeout_s=0.5, connect_timeout_s=0.5)

        def _up() -> bool:
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        _wait(_up, 10, "redis-server")
        probe.close()

    def kill(self) -> None:
        """SIGKILL: everything in memory is gone (no persistence)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def flushall(self) -> None:
        client = connect_redis(self.url)
        client.flushall()
        client.close()

    def __enter__(self) -> ThrowawayRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install PostgreSQL server binaries")
    return path


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temporary folder, on a free port.

    As root, ``initdb`` and ``pg_ctl`` run as the ``postgres`` OS user (PostgreSQL refuses root).
    """

    def __init__(self, max_connections: int | None = None) -> None:
        self.max_connections = max_connections
        """The server's max_connections (None: PostgreSQL's default, 100)."""
        self.root = Path(tempfile.mkdtemp(prefix="xbot_pg_"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")
        self.sockdir.mkdir()
        if self._as_user:
            shutil.chown(self.sockdir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def init(self) -> None:
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c shared_buffers=32MB"
        )
        if self.max_connections is not None:
            opts += f" -c max_connections={self.max_connections}"
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-w",
            "-t",
            "30",
            "-l",
            str(self.root / "log.txt"),
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: like a crash; ``fast``: clean)."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


# --- seeding -----------------------------------------------------------------------------------


def create_account(engine: Engine, environment: str, handle: str, now: datetime) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(accounts).values(
                environment=environment,
                handle=handle,
                metadata={},
                created_at=now,
                updated_at=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def queue_posts(
    engine: Engine,
    environment: str,
    account_id: int,
    texts: Sequence[str],
    scheduled_at: datetime,
) -> list[int]:
    """Insert ``queued`` single posts (one multi-row insert); returns their ids in order."""
    rows = [
        {
            "environment": environment,
            "account_id": account_id,
            "text": text,
            "content_hash": content_hash(text),
            "status": "queued",
            "thread_position": 0,
            "thread_size": 1,
            "scores": {},
            "scheduled_at": scheduled_at,
            "metadata": {},
            "created_at": scheduled_at,
            "updated_at": scheduled_at,
        }
        for text in texts
    ]
    with engine.begin() as conn:
        conn.execute(insert(tweets), rows)
        found = conn.execute(
            select(tweets.c.id)
            .where(tweets.c.account_id == account_id, tweets.c.environment == environment)
            .order_by(tweets.c.id)
        ).all()
    return [int(r.id) for r in found][-len(texts) :]


# --- invariants ----------------------------------------------------------------------------------


def max_in_window(times: Sequence[datetime], window: timedelta) -> int:
    """Most timestamps in any half-open window of ``window`` (independent of the limiter)."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def min_gap(times: Sequence[datetime]) -> timedelta | None:
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return min(gaps) if gaps else None


def cap_violations(times: Sequence[datetime], caps: RateCaps) -> list[str]:
    out = []
    if max_in_window(times, timedelta(hours=1)) > caps.posts_per_hour:
        out.append("posts_per_hour")
    if max_in_window(times, timedelta(days=1)) > caps.posts_per_day:
        out.append("posts_per_day")
    gap = min_gap(times)
    if gap is not None and gap < caps.min_spacing:
        out.append("min_spacing")
    return out


# --- the scenarios -------------------------------------------------------------------------------


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FlowResult:
    posted: int
    posts_total: int
    items_total: int
    metrics_rows: int
    audit_rows: int
    attempts: int
    duplicate_attempts: int
    cap_violations: list[str]
    brake_kept: bool
    claims_during_brake: int
    faults: list[str]
    ticks: int
    unprefixed_keys: list[str]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


EVENT_HORIZONS = HORIZONS[:3]  # the horizons the event benchmark writes


def _tick(
    manager: DualStoreManager, clock: SimClock, stats: dict[str, int], brake_on: bool
) -> None:
    """One step of the bot: take due posts, claim, "post", then record its events: a metric
    snapshot per horizon in :data:`EVENT_HORIZONS` and one audit row (4 events per post)."""
    for ticket in manager.next_posts(count=4):
        try:
            result = manager.claim_post(ticket, worker="fault-test")
        except StoresUnavailableError:
            continue
        if result.status == "claimed":
            if brake_on:
                stats["claims_during_brake"] += 1
            assert result.attempt_id is not None
            manager.record_posted(ticket.tweet_id, result.attempt_id, f"x{ticket.tweet_id}")
            for horizon in EVENT_HORIZONS:
                manager.record_metric_snapshot(
                    tweet_id=ticket.tweet_id,
                    account_id=ticket.account_id,
                    horizon=horizon,
                    metrics={"impressions": 100 + ticket.tweet_id, "likes": ticket.tweet_id % 7},
                    collected_at=clock.now,
                    source="fault-test",
                )
            manager.record_audit_event(
                event_type="post.posted",
                component="fault-test",
                actor="fault-test",
                data={"tweet_id": ticket.tweet_id},
                event_id=f"posted-{ticket.tweet_id}",
            )
        manager.settle(ticket, result)


def _collect(engine: Engine, environment: str, account_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(tweets.c.status, tweets.c.posting_started_at).where(
                tweets.c.account_id == account_id, tweets.c.environment == environment
            )
        ).all()
        metrics = conn.execute(select(func.count()).select_from(tweet_metrics)).scalar_one()
        audits = conn.execute(
            select(func.count()).where(audit_log.c.event_type == "post.posted")
        ).scalar_one()
        attempts = conn.execute(select(func.count()).select_from(post_attempts)).scalar_one()
        per_tweet = conn.execute(
            select(post_attempts.c.tweet_id, func.count())
            .group_by(post_attempts.c.tweet_id)
            .having(func.count() > 1)
        ).all()
    return {
        "posted": sum(1 for r in rows if r.status == "posted"),
        "times": [r.posting_started_at for r in rows if r.posting_started_at is not None],
        "metrics": int(metrics),
        "audits": int(audits),
        "attempts": int(attempts),
        "dup_attempts": len(per_tweet),
    }


def redis_chaos(
    pg_url: str,
    workdir: Path,
    *,
    posts: int = 200,
    faults: int = 20,
    seed: int = 5,
    caps: RateCaps | None = None,
) -> FlowResult:
    """Scenario (1): ``posts`` posts and their events (4 per post: ``5 * posts`` items) flow
    while Redis is killed or flushed ``faults`` times at random ticks.

    The brake is engaged for a stretch (with a flush inside it) and must hold throughout.
    """
    items = posts
    from xbot_assets.store.durable.engine import make_engine

    rng = random.Random(seed)
    caps = caps or RateCaps(posts_per_hour=6, posts_per_day=120, min_spacing=timedelta(minutes=10))
    clock = SimClock(datetime(2026, 3, 2, tzinfo=UTC))
    engine = make_engine(pg_url)
    started = time.perf_counter()
    with ThrowawayRedis(workdir) as server:
        client = connect_redis(server.url, socket_timeout_s=0.5, connect_timeout_s=0.3)
        keys = KeySpace(f"chaos:{uuid.uuid4().hex[:6]}:")
        manager = DualStoreManager(
            engine,
            "local",
            client,
            keys,
            caps=caps,
            clock=clock,
            consumer="w1",
            posts_policy=QueuePolicy(idle_ms=200),
            redis_retry_s=0.05,
            reconcile_every=50,
        )
        account = create_account(engine, "local", f"chaos_{uuid.uuid4().hex[:6]}", clock.now)
        ids = queue_posts(
            engine, "local", account, [f"chaos post number {i}" for i in range(items)], clock.now
        )
        for tweet_id in ids:
            manager.enqueue_post(tweet_id, account)
        # Post at most one per tick (10 simulated minutes), so ~items ticks are needed.
        expected_ticks = items + 40
        fault_ticks = sorted(rng.sample(range(3, items), faults))
        brake_from, brake_to = items // 3, items // 3 + 12
        fault_log: list[str] = []
        stats = {"claims_during_brake": 0}
        brake_kept = True
        down_until = -1
        tick = 0
        while tick < expected_ticks * 3:
            if tick == down_until:
                server.start()
                fault_log.append(f"tick {tick}: redis restarted")
            if tick in fault_ticks:
                if rng.random() < 0.5 and down_until < tick:
                    server.kill()
                    down_until = tick + rng.randint(1, 6)
                    fault_log.append(f"tick {tick}: redis killed")
                elif server.proc is not None:
                    server.flushall()
                    fault_log.append(f"tick {tick}: redis flushed")
            if tick == brake_from:
                manager.brake.engage("fault test: stop everything", actor="fault-test")
            if tick == brake_from + 5 and server.proc is not None:
                server.flushall()
                fault_log.append(f"tick {tick}: redis flushed while the brake is on")
            brake_on = brake_from <= tick < brake_to
            if brake_on and not manager.brake.status().engaged:
                brake_kept = False
            if tick == brake_to:
                manager.brake.release("fault test: resume", actor="fault-test")
            _tick(manager, clock, stats, brake_on)
            manager.sync_once()
            clock.now += timedelta(minutes=10)
            tick += 1
            if tick >= expected_ticks and tick % 10 == 0:
                seen = _collect(engine, "local", account)
                if seen["posted"] >= items:
                    break
        if server.proc is None:
            server.start()
        for _ in range(50):
            manager.sync_once()
            if manager.outbox_size == 0:
                break
        foreign = [k for k in client.scan_iter(count=1000) if not k.startswith(keys.prefix)]
        client.close()
    seen = _collect(engine, "local", account)
    engine.dispose()
    return FlowResult(
        posted=seen["posted"],
        posts_total=items,
        items_total=items * (1 + len(EVENT_HORIZONS) + 1),
        metrics_rows=seen["metrics"],
        audit_rows=seen["audits"],
        attempts=seen["attempts"],
        duplicate_attempts=seen["dup_attempts"],
        cap_violations=cap_violations(seen["times"], caps),
        brake_kept=brake_kept,
        claims_during_brake=stats["claims_during_brake"],
        faults=fault_log,
        ticks=tick,
        unprefixed_keys=foreign,
        seconds=round(time.perf_counter() - started, 2),
    )


def postgres_outage(
    redis_url: str,
    *,
    posts: int = 500,
    outage_ticks: int = 8,
    seed: int = 11,
) -> FlowResult:
    """Scenario (2): events flow while a throwaway Postgres is stopped for a while.

    ``posts`` posts are claimed and posted; then, 50 posts a tick, each emits a metric snapshot
    and an audit event (``2 * posts`` items; plus one replayed snapshot a tick). In the middle
    Postgres is stopped (immediate, like a crash) for ``outage_ticks`` ticks: events must wait
    in Redis and land once it is back, each exactly once.
    """
    items = posts
    from xbot_assets.store.durable.engine import make_engine
    from xbot_assets.store.durable.migrate import upgrade

    rng = random.Random(seed)
    caps = RateCaps(posts_per_hour=100_000, posts_per_day=1_000_000, min_spacing=timedelta(0))
    clock = SimClock(datetime(2026, 3, 2, tzinfo=UTC))
    started = time.perf_counter()
    with ThrowawayPostgres() as pg:
        upgrade(pg.url)
        engine = make_engine(pg.url)
        client = connect_redis(redis_url)
        keys = KeySpace(f"pgout:{uuid.uuid4().hex[:6]}:")
        manager = DualStoreManager(
            engine,
            "local",
            client,
            keys,
            caps=caps,
            clock=clock,
            consumer="w1",
            sync_policy=QueuePolicy(idle_ms=60_000),
        )
        account = create_account(engine, "local", "outage", clock.now)
        ids = queue_posts(
            engine, "local", account, [f"outage post {i}" for i in range(items)], clock.now
        )
        per_tick = 50
        # The posts are on X already (the claim path is scenario 1's subject): their events flow.
        with engine.begin() as conn:
            conn.execute(
                update(tweets)
                .where(tweets.c.id.in_(ids))
                .values(status="posted", posted_at=clock.now, posting_started_at=clock.now)
            )
        ticks = (items + per_tick - 1) // per_tick
        outage_start = max(1, ticks // 3)
        fault_log: list[str] = []
        buffered_during_outage = 0
        for tick in range(ticks + outage_ticks + 5):
            if tick == outage_start:
                pg.stop("immediate")
                fault_log.append(f"tick {tick}: postgres stopped")
            if tick == outage_start + outage_ticks:
                pg.start()
                fault_log.append(f"tick {tick}: postgres started")
            batch = ids[tick * per_tick : (tick + 1) * per_tick]
            for tweet_id in batch:
                route = manager.record_metric_snapshot(
                    tweet_id=tweet_id,
                    account_id=account,
                    horizon="1h",
                    metrics={"impressions": tweet_id, "likes": rng.randint(0, 5)},
                    collected_at=clock.now,
                    source="outage",
                )
                manager.record_audit_event(
                    event_type="post.posted",
                    component="outage",
                    actor="outage",
                    data={"tweet_id": tweet_id},
                    event_id=f"posted-{tweet_id}",
                )
                if outage_start <= tick < outage_start + outage_ticks and route == "buffered":
                    buffered_during_outage += 1
            # A replayed snapshot (a collector retry) must not duplicate anything.
            if batch:
                manager.record_metric_snapshot(
                    tweet_id=batch[0],
                    account_id=account,
                    horizon="1h",
                    metrics={"impressions": batch[0]},
                    collected_at=clock.now,
                    source="outage",
                )
            report = manager.sync_once(max_rows=500)
            if report.durable_down:
                fault_log.append(f"tick {tick}: sync waited (durable store down)")
            clock.now += timedelta(minutes=1)
        for _ in range(100):
            report = manager.sync_once(max_rows=1000)
            queue = manager.sync_queue
            if report.acked == 0 and queue is not None and queue.stats()["pending"] == 0:
                break
        seen = _collect(engine, "local", account)
        if os.environ.get("XBOT_HARNESS_DEBUG"):
            with engine.connect() as conn:
                have = {r[0] for r in conn.execute(select(tweet_metrics.c.tweet_id))}
            missing = sorted(set(ids) - have)
            print("missing", len(missing), missing[:3], missing[-3:], "ids", ids[0], ids[-1])
        with engine.connect() as conn:
            distinct_metric_keys = conn.execute(
                select(func.count()).select_from(
                    select(tweet_metrics.c.tweet_id, tweet_metrics.c.horizon).distinct().subquery()
                )
            ).scalar_one()
        engine.dispose()
        from xbot_assets.store.hot.keys import scan_delete

        scan_delete(client, keys)
        client.close()
    result = FlowResult(
        posted=seen["posted"],
        posts_total=items,
        items_total=2 * items,
        metrics_rows=seen["metrics"],
        audit_rows=seen["audits"],
        attempts=seen["attempts"],
        duplicate_attempts=seen["dup_attempts"] + (seen["metrics"] - int(distinct_metric_keys)),
        cap_violations=[],
        brake_kept=True,
        claims_during_brake=0,
        faults=[*fault_log, f"{buffered_during_outage} events buffered during the outage"],
        ticks=ticks + outage_ticks + 5,
        unprefixed_keys=[],
        seconds=round(time.perf_counter() - started, 2),
    )
    return result
