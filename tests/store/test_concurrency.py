"""Real concurrency: several processes claiming at once never claim the same post."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from xbot_assets.store.durable import DurableStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WORKERS = 3
POSTS = 24
HOLD_S = 0.02


def _claim_until_empty(url: str, account_id: int, barrier: Any, out: Any, name: str) -> None:
    store = DurableStore.from_url(url, environment="staging", check_schema=False)
    claimed: list[int] = []
    try:
        barrier.wait(timeout=60)
        while True:
            claim = store.claim_next_due(account_id, now=T0, worker=name)
            if claim is None:
                break
            claimed.extend(p.id for p in claim.parts)
            time.sleep(HOLD_S)  # "posting": gives the other workers time to run on a busy box
        out.put((name, claimed, None))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put((name, claimed, repr(exc)))
    finally:
        store.close()


def _race(url: str) -> None:
    store = DurableStore.from_url(url, environment="staging")
    try:
        acc = store.ensure_account("race_bot")
        expected: set[int] = set()
        for i in range(POSTS):
            if i % 6 == 0:
                expected.update(
                    p.id
                    for p in store.enqueue_thread(
                        acc.id, [f"thread {i} 1/2", f"thread {i} 2/2"], scheduled_at=T0
                    )
                )
            else:
                expected.add(store.enqueue_post(acc.id, f"post {i}", scheduled_at=T0).id)
        ctx = mp.get_context("fork")
        barrier = ctx.Barrier(WORKERS)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_claim_until_empty, args=(url, acc.id, barrier, out, f"w{i}"))
            for i in range(WORKERS)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        errors = [r for r in results if r[2] is not None]
        assert not errors, errors
        counts = Counter(pid for _, claimed, _ in results for pid in claimed)
        assert set(counts) == expected, "every post claimed"
        assert max(counts.values()) == 1, "no post claimed twice"
        # Several workers really took part (the race happened), and every claim is recorded once.
        assert sum(1 for _, claimed, _ in results if claimed) >= 2, results
        roots = [p for p in store.list_posts(acc.id, limit=1000) if p.thread_position == 0]
        for post in roots:
            assert post.status == "posting"
            assert len(store.list_attempts(post.id)) == 1
    finally:
        store.close()


def test_processes_claiming_at_once_never_share_a_post_on_postgres(pg_url: str) -> None:
    _race(pg_url)


def test_processes_claiming_at_once_never_share_a_post_on_sqlite(sqlite_url: str) -> None:
    _race(sqlite_url)


def _migrate(url: str, barrier: Any, out: Any) -> None:
    from xbot_assets.store.durable.migrate import upgrade

    try:
        barrier.wait(timeout=60)
        out.put(upgrade(url).current)
    except Exception as exc:
        out.put(repr(exc))


def _migrate_at_once(url: str) -> None:
    from xbot_assets.store.durable.migrate import head_revision

    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_migrate, args=(url, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == [head_revision(), head_revision()], results


def test_two_migrations_at_once_on_a_fresh_sqlite_file_both_succeed(tmp_path: Any) -> None:
    _migrate_at_once(f"sqlite:///{tmp_path}/fresh.db")


def test_two_migrations_at_once_on_a_fresh_postgres_database_both_succeed(
    empty_pg_url: str,
) -> None:
    _migrate_at_once(empty_pg_url)


def _use_inherited(store: DurableStore, account_id: int, out: Any) -> None:
    try:
        out.put(store.enqueue_post(account_id, "written by the child").id)
    except Exception as exc:
        out.put(repr(exc))


def test_a_store_inherited_through_fork_reconnects_and_the_parent_keeps_working(
    store: DurableStore,
) -> None:
    acc = store.ensure_account("fork_bot")  # the parent's pool now holds an open connection
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_use_inherited, args=(store, acc.id, out))
    child.start()
    written = out.get(timeout=60)
    child.join(timeout=30)
    assert isinstance(written, int), written
    # The parent's own (pooled) connection was neither used nor closed by the child.
    assert store.get_post(written).text == "written by the child"
    assert store.enqueue_post(acc.id, "written by the parent").id != written
