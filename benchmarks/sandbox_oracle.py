"""Speed of the sandbox: oracle samplers (for learning benchmarks) and a simulated month of posting.

Run: ``.venv/bin/python benchmarks/sandbox_oracle.py [--quick]``; writes
``benchmarks/results/sandbox_oracle.json``. Figures are per-call times measured in one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from xbot_assets.sandbox import FORMATS, SandboxX
from xbot_assets.sandbox.oracle import Oracle
from xbot_assets.sandbox.textgen import make_post_text

RESULTS = Path(__file__).parent / "results" / "sandbox_oracle.json"


def run(quick: bool = False) -> dict[str, object]:
    """Measure and return the figures (also written to the results file unless quick)."""
    n = 5_000 if quick else 100_000
    oracle = Oracle("drift", seed=7)
    rng = np.random.default_rng(0)
    arms = rng.integers(0, len(oracle.arms), n)
    hours = rng.integers(0, 24, n)
    started = time.perf_counter()
    for i in range(n):
        fmt, topic = oracle.arms[arms[i]].split(":")
        oracle.sample(fmt, topic, int(hours[i]), i % 7, oracle.epoch + timedelta(hours=i / 50), rng)
    scalar_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    oracle.sample_batch(arms, hours, 2, None, rng, days=np.linspace(0, 30, n))
    batch_us = (time.perf_counter() - started) / n * 1e6
    posts = 60 if quick else 300
    sandbox = SandboxX("default", seed=7)
    token = sandbox.account().user_token
    ids: list[str] = []
    started = time.perf_counter()
    for i in range(posts):
        sandbox.clock.advance(timedelta(hours=2, minutes=24))
        text = make_post_text(FORMATS[i % 6 if i % 6 else 2], "python", rng)
        ids.append(sandbox.create_tweet(text, token=token)["data"]["id"])
        if i % 4 == 0:  # the collector reads recent posts often
            sandbox.get_tweets(ids[-100:], "public_metrics,non_public_metrics", token=token)
    month_s = time.perf_counter() - started
    figures: dict[str, object] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "quick": quick,
        "oracle_sample_us_per_call": round(scalar_us, 2),
        "oracle_sample_batch_us_per_post": round(batch_us, 3),
        "decisions_20k_x_8_policies_seconds_scalar": round(scalar_us * 160_000 / 1e6, 2),
        "sandbox_posts": posts,
        "sandbox_month_seconds_posts_and_reads": round(month_s, 3),
        "sandbox_ms_per_post_with_reads": round(month_s / posts * 1000, 3),
    }
    if not quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run, nothing written")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
