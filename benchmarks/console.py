"""Operator console page loads with 1,000 queued posts and 100,000 recent ones (paged).

Builds a SQLite store shaped like the engine's (each queued post with its candidate batch of 5,
each recent post with 4 metric snapshots, a 60-arm posteriors file), serves the console on
loopback and measures, per page:

- the server's response time (time to the full HTML body over HTTP, logged in; median and p95
  of ``--repeat`` requests, after one warm-up request);
- Chromium's load event (``loadEventEnd - startTime`` of the navigation entry, images and CSS
  included; median of 5) when Debian's Chromium is present.

Target: every page under 300 ms. Usage::

    nice -n 5 .venv/bin/python benchmarks/console.py            # writes results/console.json
    .venv/bin/python benchmarks/console.py --queued 100 --recent 2000 --no-write   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import insert

from xbot_assets.config import load_settings
from xbot_assets.console.app import create_app
from xbot_assets.console.auth import issue_token
from xbot_assets.console.server import running_console
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.durable.migrate import upgrade
from xbot_assets.store.durable.schema import METRIC_NAMES, candidates, tweet_metrics, tweets
from xbot_assets.store.hot.dedup import content_hash

RESULTS = Path(__file__).parent / "results" / "console.json"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HANDLE = "bench"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TARGET_MS = 300.0


def build(root: Path, queued: int, recent: int) -> tuple[Any, Any, str]:
    settings = load_settings(env_file=None, XBOT_HOME=str(root), APP_ENV="local")
    upgrade(settings.resolved_database_url)
    store = DurableStore.from_settings(settings)
    account = store.ensure_account(HANDLE, timezone="Europe/Berlin", now=T0)
    rng = np.random.default_rng(7)
    arms = [f"{f}:{t}" for f in FORMATS for t in DEFAULT_TOPICS]
    base = {
        "environment": "local",
        "account_id": account.id,
        "thread_position": 0,
        "thread_size": 1,
        "attempt_count": 0,
    }
    with store.engine.begin() as conn:
        rows, cands = [], []
        for i in range(queued):
            arm = arms[i % len(arms)]
            text = f"Queued post {i} about {arm.split(':')[1]}: a practical tip worth sharing."
            batch = f"b{i}"
            rows.append(
                {
                    **base,
                    "text": text,
                    "content_hash": content_hash(text),
                    "status": "queued",
                    "arm": arm,
                    "format": arm.split(":")[0],
                    "topic": arm.split(":")[1],
                    "score": float(rng.uniform(0.01, 0.06)),
                    "scores": {"engagement_scorer": 0.03, "sampled_value": 0.04},
                    "scheduled_at": T0 + timedelta(minutes=50 * i),
                    "metadata": {
                        "policy": "thompson_sampling",
                        "propensity": 0.04,
                        "sampled_values": {arm: 0.04},
                        "candidate_batch": batch,
                        "candidates": 5,
                    },
                    "created_at": T0,
                    "updated_at": T0,
                }
            )
            for k in range(5):
                cands.append(
                    {
                        "environment": "local",
                        "account_id": account.id,
                        "batch_id": batch,
                        "text": f"{text} ({k})",
                        "content_hash": content_hash(f"{text} ({k})"),
                        "arm": arm,
                        "score": float(rng.uniform(0.01, 0.06)),
                        "guard_passed": True,
                        "guard_reasons": [],
                        "chosen": k == 0,
                        "metadata": {},
                        "created_at": T0,
                    }
                )
        for start in range(0, len(rows), 500):
            conn.execute(insert(tweets), rows[start : start + 500])
        for start in range(0, len(cands), 500):
            conn.execute(insert(candidates), cands[start : start + 500])
        for start in range(0, recent, 5000):
            chunk: list[dict[str, Any]] = []  # insert rows: a column name to its value
            for i in range(start, min(recent, start + 5000)):
                arm = arms[i % len(arms)]
                text = f"Posted post {i} on {arm}: what we learned this week."
                at = T0 - timedelta(minutes=45 * (i + 1))
                chunk.append(
                    {
                        **base,
                        "text": text,
                        "content_hash": content_hash(text),
                        "status": "posted",
                        "x_id": str(10**15 + i),
                        "arm": arm,
                        "score": 0.03,
                        "scores": {"engagement_scorer": 0.03, "sampled_value": 0.04},
                        "scheduled_at": at,
                        "posted_at": at,
                        "metadata": {"propensity": 0.04},
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            returned = conn.execute(insert(tweets).returning(tweets.c.id), chunk)
            ids = [int(inserted.id) for inserted in returned]
            snaps = []
            for tweet_id, row in zip(ids, chunk, strict=True):
                for h, hours in (("1h", 1), ("6h", 6), ("24h", 24), ("72h", 72)):
                    impressions = int(rng.integers(100, 5000))
                    snap = dict.fromkeys(METRIC_NAMES, 0)
                    snap.update(impressions=impressions, likes=int(impressions * 0.02))
                    snaps.append(
                        {
                            "environment": "local",
                            "tweet_id": tweet_id,
                            "account_id": account.id,
                            "horizon": h,
                            "collected_at": row["posted_at"] + timedelta(hours=hours),
                            **snap,
                        }
                    )
            for s in range(0, len(snaps), 2000):
                conn.execute(insert(tweet_metrics), snaps[s : s + 2000])
    models = root / "models" / "local"
    models.mkdir(parents=True, exist_ok=True)
    (models / "arm_posteriors_engagement.json").write_text(
        json.dumps(
            {
                "arms": arms,
                "prior": [1.0, 30.0],
                "successes": rng.uniform(1, 60, len(arms)).tolist(),
                "failures": rng.uniform(500, 2000, len(arms)).tolist(),
            }
        )
    )
    token = issue_token(store.engine, "local", label="bench", created_by="bench", now=T0)
    return settings, store, token


def deep_cursor(store: Any, page: int) -> str:
    """The keyset cursor that opens recent page ``page`` (what "older" links carry)."""
    from urllib.parse import quote

    from sqlalchemy import select

    with store.engine.connect() as conn:
        row = conn.execute(
            select(tweets.c.posted_at, tweets.c.id)
            .where(tweets.c.status == "posted", tweets.c.thread_position == 0)
            .order_by(tweets.c.posted_at.desc(), tweets.c.id.desc())
            .offset((page - 1) * 50 - 1)
            .limit(1)
        ).one()
    return quote(f"{row.posted_at.isoformat()}~{int(row.id)}")


def login(client: httpx.Client, token: str) -> None:
    page = client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = client.post("/login", data={"csrf": nonce, "token": token})
    assert done.status_code == 303, done.text


def server_times(client: httpx.Client, path: str, repeat: int) -> dict[str, float]:
    first = client.get(path)
    assert first.status_code == 200, (path, first.status_code)
    samples = []
    cpu_start = time.process_time()
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        response.read()
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    cpu_ms = (time.process_time() - cpu_start) * 1000 / repeat
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 1),
        # CPU of this process (server thread + HTTP client) per request: moves less with the
        # host's load than wall time does
        "cpu_ms_per_request": round(cpu_ms, 1),
        "bytes": len(first.content),
    }


def chromium_times(base_url: str, token: str, paths: list[str]) -> dict[str, float] | None:
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(base_url=base_url).new_page()
        page.goto("/login")
        page.fill("#token", token)
        page.click("#login")
        page.wait_for_url("**/queue")
        for path in paths:
            page.goto(path, wait_until="load")  # warm-up (figure caches, CSS)
            samples = []
            for _ in range(5):
                page.goto(path, wait_until="load")
                samples.append(
                    page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return n.loadEventEnd - n.startTime; }"
                    )
                )
            out[path] = round(statistics.median(samples), 1)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--recent", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]  # other work on the host inflates every figure
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        settings, store, token = build(Path(tmp), args.queued, args.recent)
        build_s = time.perf_counter() - started
        app = create_app(settings, store=store, clock=lambda: T0)
        last_queue = -(-args.queued // 25)
        last_recent = -(-args.recent // 50)
        paths = {
            "queue (page 1)": f"/a/{HANDLE}/queue",
            f"queue (last page, {last_queue})": f"/a/{HANDLE}/queue?page={last_queue}",
            "recent (page 1)": f"/a/{HANDLE}/recent",
            f"recent (last page, {last_recent})": (
                f"/a/{HANDLE}/recent?page={last_recent}&cursor={deep_cursor(store, last_recent)}"
            ),
            "learning": f"/a/{HANDLE}/learning",
            "learning figure: arms.png (cached)": f"/a/{HANDLE}/learning/arms.png",
            "learning figure: hours.png (cached)": f"/a/{HANDLE}/learning/hours.png",
            "controls": f"/a/{HANDLE}/controls",
        }
        with running_console(app) as base_url:
            with httpx.Client(base_url=base_url, timeout=600) as client:
                login(client, token)
                cold = {}
                for name in ("arms", "hours"):
                    start = time.perf_counter()
                    client.get(f"/a/{HANDLE}/learning/{name}.png").raise_for_status()
                    cold[f"{name}.png"] = round((time.perf_counter() - start) * 1000, 1)
                server = {
                    name: server_times(client, path, args.repeat) for name, path in paths.items()
                }
            browser_paths = [p for n, p in paths.items() if not n.startswith("learning figure")]
            chromium = chromium_times(base_url, token, browser_paths)
        store.close()
    worst = max(v["median_ms"] for v in server.values())
    worst_cpu = max(v["cpu_ms_per_request"] for v in server.values())
    result: dict[str, Any] = {
        "what": "console page loads, SQLite store, logged in, on loopback",
        "queued_posts": args.queued,
        "recent_posts": args.recent,
        "metric_snapshots": args.recent * 4,
        "page_size": {"queue": 25, "recent": 50},
        "repeat": args.repeat,
        "build_store_s": round(build_s, 1),
        "server_response_ms": server,
        "figure_first_render_ms": cold,
        "chromium_load_event_ms": (
            {name: chromium[path] for name, path in paths.items() if path in chromium}
            if chromium
            else "Chromium not found"
        ),
        "target_ms": TARGET_MS,
        "worst_server_median_ms": worst,
        "meets_target_server": worst < TARGET_MS,
        "worst_cpu_ms_per_request": worst_cpu,
        "meets_target_cpu": worst_cpu < TARGET_MS,
        "meets_target_chromium": (max(chromium.values()) < TARGET_MS if chromium else None),
        "machine": f"{platform.machine()}, {platform.python_version()}, shared 2-core host",
        "load_average_1m_at_start_and_end": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    if not args.no_write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
