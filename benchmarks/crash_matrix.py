"""The posting crash matrix: SIGKILL the posting process at named points and at random times.

For every round: posts (singles, and a 3-part thread every few rounds) are queued in a SQLite
durable store; a posting process (forked, so it starts in milliseconds) runs the real posting
service with the ``api`` poster against the sandbox X's HTTP server, which runs in a thread of
this process so that killing the poster never kills the sandbox. The poster kills itself with
SIGKILL at the chosen point (``XBOT_CRASH_AT``: before the claim, after the claim, after the
"sent" mark, after the request is sent, after X answered, after the id is recorded). Then,
after a grace period, the reconciler (one guarded retry allowed) and a fresh poster run.

Two more kinds of rounds (issue 17 item 1), each posting through a real forked subprocess that
the harness SIGKILLs:

- **repeated kills**: the same post (a single, or every 4th round a 3-part thread) is killed 2 or
  3 times in a row, each kill at a random named point (the points where a process can stop for
  a while: ``after_mark``, an instant between a commit and a socket write, is left to the
  random-time kills, which hit it at its true width) or at a random time, with the reconciler
  run after each kill; then one unkilled poster recovers;
- **random kills**: one SIGKILL per round at a uniformly random time within a calibrated
  posting process's lifetime (not only at the named points).

Both run on SQLite and on Postgres (a database of their own, as the bot's row-level-security
role). "Stranded" counts posts that ended without reaching X although every attempt of theirs
provably never left the process (``unsent``): the failure the "sent" mark removes. Posts whose
attempt was possibly sent and that X never showed end ``unknown`` by design (a person decides);
they are counted apart as ``unknown_possibly_sent``, and as lost.

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
    .venv/bin/python benchmarks/crash_matrix.py --only kills --kill-rounds 100  # kill rounds only
Writes ``benchmarks/results/crash_matrix.json`` (``--only`` keeps the other part's recorded runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is a folder of the repository's root
    sys.path.insert(0, str(ROOT))

from benchmarks._postgres import throwaway_database  # noqa: E402
from xbot_assets.config import load_settings  # noqa: E402
from xbot_assets.posting.crashpoints import CRASH_ENV, CRASH_POINTS, CRASH_SKIP_ENV  # noqa: E402
from xbot_assets.posting.factory import make_poster, open_ledger, post_due, reconcile  # noqa: E402
from xbot_assets.posting.sendtime import SCHEDULE_CONFIG_KEY  # noqa: E402
from xbot_assets.sandbox.platform import APP_BEARER_TOKEN, SandboxX  # noqa: E402
from xbot_assets.sandbox.server import running_server  # noqa: E402
from xbot_assets.store.durable.migrate import upgrade  # noqa: E402
from xbot_assets.store.durable.schema import post_attempts  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "crash_matrix.json"
GRACE = timedelta(seconds=0.1)
"""Longer than the sandbox takes to finish a request whose client was killed."""
WORKER_GRACE = timedelta(seconds=3600)
"""The posting processes never reconcile: only the harness does, once they are dead."""
REPEAT_POINTS = ("before_claim", "after_claim", "after_send", "after_answer", "after_record")
"""Named points of the repeated-kill rounds (``after_mark`` is left to the random times)."""


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


@contextlib.contextmanager
def _store(backend: str, folder: Path, label: str) -> Iterator[str]:
    """A migrated durable store for one run: a SQLite file, or a Postgres database of its own."""
    if backend == "sqlite":
        db_path = folder / f"crash_{label}.db"
        url = f"sqlite:///{db_path}"
        upgrade(url)
        # One idle connection held open for the whole run: SQLite then skips the WAL checkpoint
        # that closing the last connection triggers, which otherwise dominates each short process.
        keepalive = sqlite3.connect(db_path)
        keepalive.execute("SELECT 1").fetchall()
        try:
            yield url
        finally:
            keepalive.close()
        return
    if backend != "postgres":
        raise ValueError("backend must be sqlite or postgres")
    with throwaway_database("xbot_crash") as url:
        upgrade(url)
        yield url


@dataclass
class _World:
    settings: Any
    ledger: Any
    account: int
    poster: Any
    sandbox: SandboxX


@contextlib.contextmanager
def _world(backend: str, folder: Path, label: str, seed: int) -> Iterator[_World]:
    sandbox = SandboxX(scenario="default", seed=seed)
    with _store(backend, folder, label) as database_url, running_server(sandbox) as base_url:
        settings = load_settings(env_file=None, **_settings_values(base_url, database_url, sandbox))
        ledger = open_ledger(settings)
        account = ledger.ensure_account(settings.x_handle, x_user_id=settings.x_user_id)
        # The matrix posts "now" on the wall clock and is about crashes, not about when to post:
        # without this, every post found at night is moved out of the quiet hours (23-07).
        ledger.set_config(
            SCHEDULE_CONFIG_KEY,
            {"quiet_start_hour": 0, "quiet_end_hour": 0},
            actor="crash_matrix",
            now=datetime.now(UTC),
        )
        poster = make_poster(settings)  # the "fresh poster" of every recovery (and warms TLS)
        try:
            yield _World(settings, ledger, account, poster, sandbox)
        finally:
            poster.close()
            ledger.engine.dispose()


def _outcome(world: _World, expected: list[str]) -> dict[str, Any]:
    """Duplicates, lost, stranded and the rest, from the store's rows and the sandbox's posts."""
    rows = world.ledger.rows(world.account)
    sandbox = world.sandbox
    on_x = Counter(p.text for p in sandbox.posts_of())
    statuses = Counter(r["status"] for r in rows)
    with world.ledger.engine.connect() as conn:
        states: dict[int, set[str | None]] = {}
        for tweet_id, state in conn.execute(
            post_attempts.select()
            .with_only_columns(post_attempts.c.tweet_id, post_attempts.c.send_state)
            .where(post_attempts.c.account_id == world.account)
        ):
            states.setdefault(int(tweet_id), set()).add(state)
    not_out = [r for r in rows if r["status"] != "posted" and on_x.get(r["text"], 0) == 0]
    stranded = [r for r in not_out if states.get(r["id"], set()) <= {"unsent"}]
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
        "thread_parts_checked": sum(1 for r in rows if r["thread_parent_id"] is not None),
        "broken_reply_chains": broken_chains,
        "queued_texts": len(expected),
        "posts_on_sandbox": sum(on_x.values()),
        "duplicate_posts": sum(n - 1 for n in on_x.values() if n > 1),
        "duplicate_attempts_refused": int(sandbox.counters["posts_refused"]),
        "lost_posts": sum(1 for text in expected if on_x.get(text, 0) != 1)
        + sum(1 for r in rows if r["status"] != "posted"),
        "stranded_posts": len(stranded),
        "unknown_possibly_sent": sum(1 for r in not_out if r["status"] == "unknown")
        - sum(1 for r in stranded if r["status"] == "unknown"),
        "left_in_posting": statuses.get("posting", 0),
        "row_statuses": dict(statuses),
        "write_requests": int(sandbox.counters["write_requests"]),
    }


def _settle(world: _World, stats: Counter[str]) -> None:
    """The harness's reconciler pass after a kill (grace waited, one guarded retry allowed)."""
    time.sleep(GRACE.total_seconds())
    report = reconcile(
        world.settings, ledger=world.ledger, poster=world.poster, grace=GRACE, guarded_retry=True
    )
    stats["found"] += len(report.found)
    stats["requeued"] += len(report.requeued)
    stats["unsent"] += len(report.unsent)
    stats["unknown"] += len(report.unknown)


def _recover(world: _World) -> None:
    """Reconcile, then post everything due with a fresh (unkilled) poster."""
    for _ in range(3):
        time.sleep(GRACE.total_seconds())
        run = post_due(
            world.settings,
            ledger=world.ledger,
            poster=world.poster,
            grace=GRACE,
            guarded_retry=True,
        )
        if not any(o.status in ("posted", "released") for o in run.outcomes):
            counts = world.ledger.status_counts(world.account)
            if not counts.get("queued") and not counts.get("posting"):
                return


def run_crash_matrix(
    rounds: int = 20,
    *,
    posters: int = 1,
    points: tuple[str, ...] = CRASH_POINTS,
    thread_every: int = 4,
    workdir: Path | None = None,
    seed: int = 1,
    backend: str = "sqlite",
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
        backend: ``sqlite`` or ``postgres`` (a database of its own on 127.0.0.1:5432).
    """
    if posters not in (1, 2):
        raise ValueError("posters must be 1 or 2")
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(seed)
    per_point: dict[str, dict[str, int]] = {}
    expected: list[str] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        folder = (
            Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        folder.mkdir(parents=True, exist_ok=True)
        world = stack.enter_context(_world(backend, folder, f"{posters}_{seed}", seed))
        settings, ledger, account = world.settings, world.ledger, world.account
        for point in points:
            stats: Counter[str] = Counter(
                rounds=0, killed=0, found=0, requeued=0, unsent=0, unknown=0
            )
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
                _settle(world, stats)
                post_due(
                    settings, ledger=ledger, poster=world.poster, grace=GRACE, guarded_retry=True
                )
                stats["rounds"] += 1
                # keep the sandbox's own anti-spam rules (posts per hour) out of the way
                world.sandbox.advance(timedelta(minutes=30))
            per_point[point] = dict(stats)
        outcome = _outcome(world, expected)
    return {
        "backend": backend,
        "posters": posters,
        "rounds_per_point": rounds,
        "points": per_point,
        **outcome,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _calibrate(world: _World, ctx: Any, rng: random.Random, samples: int = 5) -> float:
    """Median lifetime (s) of an unkilled posting process that posts one single post."""
    lifetimes = []
    for i in range(samples):
        world.ledger.enqueue(
            world.account, [_text(rng, f"calibration {i}")], scheduled_at=datetime.now(UTC)
        )
        proc = ctx.Process(target=_poster_process, args=(world.settings, world.ledger, None))
        began = time.perf_counter()
        proc.start()
        proc.join(timeout=60)
        lifetimes.append(time.perf_counter() - began)
        world.sandbox.advance(timedelta(minutes=30))
    return float(statistics.median(lifetimes))


def _kill_once(
    world: _World, ctx: Any, rng: random.Random, lifetime_s: float, named: str | None, skip: int
) -> bool:
    """One posting process, SIGKILLed at ``named`` (itself) or at a random time (by us).

    Returns whether it died by SIGKILL (False: it finished before the kill came).
    """
    proc = ctx.Process(target=_poster_process, args=(world.settings, world.ledger, named, skip))
    proc.start()
    if named is None:
        time.sleep(rng.uniform(0.0, lifetime_s))
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
        raise RuntimeError("a posting process hung")
    return proc.exitcode == -signal.SIGKILL


def run_kill_rounds(
    rounds: int = 20,
    *,
    mode: str = "repeated",
    backend: str = "sqlite",
    thread_every: int = 4,
    workdir: Path | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Rounds of repeated kills of the same post, or of one kill at a random time.

    Args:
        rounds: how many posts (or threads) go through the kills.
        mode: ``repeated`` (2 or 3 kills in a row per post, each at a random named point or a
            random time, the reconciler after each) or ``random`` (one kill per round at a
            uniformly random time of a posting process's calibrated lifetime).
        backend: ``sqlite`` or ``postgres``.
        thread_every: every n-th round queues a 3-part thread instead of a single post.
        workdir: where the SQLite store goes (a temporary folder if None).
        seed: seed of the texts, kill counts, points and times.
    """
    if mode not in ("repeated", "random"):
        raise ValueError("mode must be repeated or random")
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(seed)
    stats: Counter[str] = Counter(
        rounds=0, kills=0, killed=0, found=0, requeued=0, unsent=0, unknown=0
    )
    expected: list[str] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        folder = (
            Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        folder.mkdir(parents=True, exist_ok=True)
        world = stack.enter_context(_world(backend, folder, f"{mode}_{seed}", seed))
        lifetime = _calibrate(world, ctx, rng)
        calibration_texts = {p.text for p in world.sandbox.posts_of()}
        for index in range(rounds):
            is_thread = index % thread_every == 0
            parts = (
                [_text(rng, f"{mode} {index} thread {k}/3") for k in (1, 2, 3)]
                if is_thread
                else [_text(rng, f"{mode} {index} single")]
            )
            world.ledger.enqueue(world.account, parts, scheduled_at=datetime.now(UTC))
            expected.extend(parts)
            kills = rng.choice((2, 3)) if mode == "repeated" else 1
            stats[f"rounds_with_{kills}_kills"] += 1
            stats["thread_rounds"] += int(is_thread)
            for _ in range(kills):
                named: str | None = None
                skip = 0
                if mode == "repeated" and rng.random() < 0.5:
                    named = rng.choice(REPEAT_POINTS)
                    skip = rng.randrange(3) if is_thread else 0
                stats["kills"] += 1
                stats["named_kills" if named else "random_time_kills"] += 1
                # a thread lives ~3 times longer: spread the random times over all of it
                died = _kill_once(
                    world, ctx, rng, lifetime * (len(parts) if is_thread else 1), named, skip
                )
                stats["killed"] += int(died)
                _settle(world, stats)
            _recover(world)
            stats["rounds"] += 1
            world.sandbox.advance(timedelta(minutes=30))
        outcome = _outcome(world, expected)
        outcome["posts_on_sandbox"] -= len(calibration_texts)
        outcome["row_statuses"]["posted"] = outcome["row_statuses"].get("posted", 0) - len(
            calibration_texts
        )
    return {
        "backend": backend,
        "mode": mode,
        "rounds": rounds,
        "process_lifetime_ms": round(lifetime * 1000, 1),
        "stats": dict(stats),
        **outcome,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _bad(result: dict[str, Any]) -> bool:
    keys = ("duplicate_posts", "lost_posts", "stranded_posts", "left_in_posting")
    return any(result[k] for k in keys) or bool(result["broken_reply_chains"])


def _save(part: str, results: list[dict[str, Any]]) -> None:
    """Write one part into the results file, keeping the other part (read-modify-write under a
    lock, so a run of the named points and a run of the kill rounds can go side by side)."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "xbot_crash_matrix.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data[part] = results
        data[f"{part}_measured_at"] = datetime.now(UTC).isoformat()
        RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="rounds per crash point")
    parser.add_argument("--posters", type=int, choices=(1, 2), nargs="*", default=[1, 2])
    parser.add_argument("--kill-rounds", type=int, default=100, help="rounds per kill mode")
    parser.add_argument(
        "--backends", nargs="*", choices=("sqlite", "postgres"), default=["sqlite", "postgres"]
    )
    parser.add_argument(
        "--only", choices=("points", "kills"), default=None, help="run one part, keep the other"
    )
    args = parser.parse_args()
    done: list[dict[str, Any]] = []
    if args.only != "kills":
        runs: list[dict[str, Any]] = []
        for posters in args.posters:
            runs.append(run_crash_matrix(args.rounds, posters=posters))
            _save("runs", runs)  # after each run: a long benchmark keeps what it measured
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "points"}), flush=True)
        done += runs
    if args.only != "points":
        kills: list[dict[str, Any]] = []
        plan = [(m, b) for m in ("repeated", "random") for b in args.backends]
        for seed, (mode, backend) in enumerate(plan, start=7):
            kills.append(run_kill_rounds(args.kill_rounds, mode=mode, backend=backend, seed=seed))
            _save("kill_rounds", kills)
            print(json.dumps(kills[-1]), flush=True)
        done += kills
    print(f"wrote {RESULTS}")
    bad = [r for r in done if _bad(r)]
    bad += [r for r in done if "points" in r and r.get("duplicate_attempts_refused")]
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
