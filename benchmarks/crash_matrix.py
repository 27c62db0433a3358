"""The posting crash matrix: SIGKILL the posting process at each of five points, then recover.

For every round: posts (singles, and a 3-part thread every few rounds) are queued in a SQLite
durable store; a posting process (forked, so it starts in milliseconds) runs the real posting
service with the ``api`` poster against the sandbox X's HTTP server, which runs in a thread of
this process so that killing the poster never kills the sandbox. The poster kills itself with
SIGKILL at the chosen point (``XBOT_CRASH_AT``: before the claim, after the claim, after the
request is sent, after X answered, after the id is recorded). Then, after a grace period, the
reconciler (one guarded retry allowed) and a fresh poster run.

With ``--posters 2`` two posting processes run at once, racing for the same queue (each round
then queues one more single post), and both are killed at the point.

Checked after every round, and summed:
- duplicate posts on the sandbox (same text twice) and duplicate attempts (creates X refused as
  duplicates: a blind retry would show up here even though the sandbox refuses it) -> 0;
- lost posts: a queued text that is not on the sandbox exactly once, or a row not ``posted`` -> 0;
- rows still in ``posting`` after recovery -> 0;
- thread parts whose post on the sandbox does not reply to the previous part's post -> 0.

Usage:
    .venv/bin/python benchmarks/crash_matrix.py              # 100 rounds per point, 1 and 2 posters
    .venv/bin/python benchmarks/crash_matrix.py --rounds 20  # quicker
Writes ``benchmarks/results/crash_matrix.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from xbot_assets.config import load_settings
from xbot_assets.posting.crashpoints import CRASH_ENV, CRASH_POINTS, CRASH_SKIP_ENV
from xbot_assets.posting.factory import make_poster, open_ledger, post_due, reconcile
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN, SandboxX
from xbot_assets.sandbox.server import running_server
from xbot_assets.store.migrate import upgrade

RESULTS = Path(__file__).resolve().parent / "results" / "crash_matrix.json"
GRACE = timedelta(seconds=0.1)
"""Longer than the sandbox takes to finish a request whose client was killed."""
WORKER_GRACE = timedelta(seconds=3600)
"""The posting processes never reconcile: only the harness does, once they are dead."""


def _settings_values(base_url: str, database_url: str, sandbox: SandboxX) -> dict[str, Any]:
    account = sandbox.account()
    return {
        "app_env": "local",
        "poster": "api",
        "x_api_base_url": base_url,
        "x_oauth2_user_token": account.user_token,
        "x_bearer_token": APP_BEARER_TOKEN,
        "x_handle": account.handle,
        "x_user_id": account.id,
        "database_url": database_url,
        "max_posts_per_hour": 1_000_000,
        "max_posts_per_day": 1_000_000,
        "min_spacing_minutes": 0,
        "max_replies_per_hour": 1_000_000,
    }


def _poster_process(settings: Any, ledger: Any, crash_at: str | None, skip: int = 0) -> None:
    """Body of a forked posting process: post what is due; die at the ``skip+1``-th ``crash_at``.

    The settings and the ledger (its engine holds no open connection: SQLite uses NullPool) come
    from the parent through fork, like a warm worker process; the poster is built here.
    """
    if crash_at:
        os.environ[CRASH_ENV] = crash_at
        os.environ[CRASH_SKIP_ENV] = str(skip)
    else:
        os.environ.pop(CRASH_ENV, None)
    post_due(settings, ledger=ledger, grace=WORKER_GRACE, guarded_retry=False, alert=lambda m: None)
    os._exit(0)


def _text(rng: random.Random, label: str) -> str:
    words = " ".join(f"{rng.getrandbits(40):010x}" for _ in range(6))
    return f"{label} {words}"


def run_crash_matrix(
    rounds: int = 20,
    *,
    posters: int = 1,
    points: tuple[str, ...] = CRASH_POINTS,
    thread_every: int = 4,
    workdir: Path | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Run ``rounds`` rounds at each crash point and return the counts (see module docstring).

    Args:
        rounds: rounds per crash point.
        posters: how many posting processes run at once (1 or 2), each killed at the point.
        points: the crash points to test.
        thread_every: every n-th round queues a 3-part thread; with one poster it is queued
            alone and the kill hits its part 1, 2 or 3 in turn (a crash in mid-thread).
        workdir: where the SQLite store goes (a temporary folder if None).
        seed: seed of the random post texts.
    """
    if posters not in (1, 2):
        raise ValueError("posters must be 1 or 2")
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    folder = Path(tmp.name) if tmp else Path(workdir)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / f"crash_{posters}_{seed}.db"
    database_url = f"sqlite:///{db_path}"
    upgrade(database_url)
    # One idle connection held open for the whole run: SQLite then skips the WAL checkpoint
    # that closing the last connection triggers, which otherwise dominates each short process.
    keepalive = sqlite3.connect(db_path)
    keepalive.execute("SELECT 1").fetchall()
    sandbox = SandboxX(scenario="default", seed=seed)
    per_point: dict[str, dict[str, int]] = {}
    expected: list[str] = []
    started = time.perf_counter()
    try:
        with running_server(sandbox) as base_url:
            values = _settings_values(base_url, database_url, sandbox)
            settings = load_settings(env_file=None, **values)
            ledger = open_ledger(settings)
            account = ledger.ensure_account(settings.x_handle, x_user_id=settings.x_user_id)
            poster = make_poster(settings)  # the "fresh poster" of every recovery (and warms TLS)
            for point in points:
                stats = Counter(rounds=0, killed=0, found=0, requeued=0, unknown=0)
                for index in range(rounds):
                    now = datetime.now(UTC)
                    batch: list[list[str]] = []
                    skip = 0
                    if posters == 1 and index % thread_every == 0:
                        # a thread alone: the kill hits part 1, 2 or 3 (mid-thread crashes)
                        skip = (index // thread_every) % 3
                        stats["thread_rounds"] += 1
                        stats[f"killed_at_part_{skip + 1}"] += 1
                    else:
                        batch.append([_text(rng, f"crash {point} {index} single")])
                    if posters == 2:
                        batch.append([_text(rng, f"crash {point} {index} second")])
                    if index % thread_every == 0:
                        batch.append(
                            [_text(rng, f"crash {point} {index} thread {k}/3") for k in (1, 2, 3)]
                        )
                    for parts in batch:
                        ledger.enqueue(account, parts, scheduled_at=now)
                        expected.extend(parts)
                    procs = [
                        ctx.Process(target=_poster_process, args=(settings, ledger, point, skip))
                        for _ in range(posters)
                    ]
                    for proc in procs:
                        proc.start()
                    for proc in procs:
                        proc.join(timeout=60)
                        if proc.is_alive():
                            proc.kill()
                            raise RuntimeError(f"a posting process hung at {point}")
                    stats["killed"] += sum(int(p.exitcode == -9) for p in procs)
                    time.sleep(GRACE.total_seconds())
                    report = reconcile(
                        settings, ledger=ledger, poster=poster, grace=GRACE, guarded_retry=True
                    )
                    stats["found"] += len(report.found)
                    stats["requeued"] += len(report.requeued)
                    stats["unknown"] += len(report.unknown)
                    post_due(
                        settings, ledger=ledger, poster=poster, grace=GRACE, guarded_retry=True
                    )
                    stats["rounds"] += 1
                    # keep the sandbox's own anti-spam rules (posts per hour) out of the way
                    sandbox.advance(timedelta(minutes=30))
                per_point[point] = dict(stats)
            rows = ledger.rows(account)
            poster.close()
            ledger.engine.dispose()
    finally:
        keepalive.close()
        if tmp is not None:
            tmp.cleanup()
    on_x = Counter(p.text for p in sandbox.posts_of())
    statuses = Counter(r["status"] for r in rows)
    duplicates = sum(n - 1 for n in on_x.values() if n > 1)
    lost = sum(1 for text in expected if on_x.get(text, 0) != 1) + sum(
        1 for r in rows if r["status"] != "posted"
    )
    by_id = {r["id"]: r for r in rows}
    broken_chains = 0
    for row in rows:
        if row["thread_parent_id"] is None or row["x_id"] is None:
            continue
        parent = by_id[row["thread_parent_id"]]
        post = sandbox.post(row["x_id"])
        if post is None or post.reply_to is None or post.reply_to.id != parent["x_id"]:
            broken_chains += 1
    return {
        "posters": posters,
        "thread_parts_checked": sum(1 for r in rows if r["thread_parent_id"] is not None),
        "broken_reply_chains": broken_chains,
        "rounds_per_point": rounds,
        "points": per_point,
        "queued_texts": len(expected),
        "posts_on_sandbox": sum(on_x.values()),
        "duplicate_posts": duplicates,
        "duplicate_attempts_refused": int(sandbox.counters["posts_refused"]),
        "lost_posts": lost,
        "left_in_posting": statuses.get("posting", 0),
        "row_statuses": dict(statuses),
        "write_requests": int(sandbox.counters["write_requests"]),
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="rounds per crash point")
    parser.add_argument("--posters", type=int, choices=(1, 2), nargs="*", default=[1, 2])
    args = parser.parse_args()
    results = [run_crash_matrix(args.rounds, posters=p) for p in args.posters]
    for result in results:
        print(json.dumps({k: v for k, v in result.items() if k != "points"}, indent=None))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"measured_at": datetime.now(UTC).isoformat(), "runs": results}, indent=2) + "\n"
    )
    print(f"wrote {RESULTS}")
    bad = [r for r in results if r["duplicate_posts"] or r["lost_posts"] or r["left_in_posting"]]
    bad += [r for r in results if r["broken_reply_chains"]]
    bad += [r for r in results if r["duplicate_attempts_refused"]]
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
