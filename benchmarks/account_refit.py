"""What refitting every account's own factored posterior costs, per account, in one run.

``factored_posteriors`` fits the pooled posterior and each account's own in one process
(``learning/account_policy.py``: rows built once per account and shared by both fits). This
measures the CPU seconds of that fit (``fit_accounts``, no store reads) for K accounts of a month
of posts each (120, four a day), against one account's single fit: the per-account cost should
stay flat as accounts are added (each account adds its rows and one fit; the pooled fit grows
with the total posts, one fit for all).

    nice -n 10 .venv/bin/python benchmarks/account_refit.py [--quick]

Writes ``benchmarks/results/account_refit.json`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from xbot_assets.learning.account_policy import AccountHistory, fit_accounts
from xbot_assets.learning.design import PastPost
from xbot_assets.learning.factored import FitConfig
from xbot_assets.vocabulary import DEFAULT_TOPICS, FORMATS

START = datetime(2026, 1, 5, tzinfo=UTC)
POSTS_PER_ACCOUNT = 120
"""A month at four posts a day."""


def synthetic_account(handle: str, seed: int, posts: int) -> AccountHistory:
    """A month of posts every 6 h on random arms, Poisson counts at the account's own rates."""
    rng = np.random.default_rng(seed)
    topic_effect = rng.normal(0.0, 0.4, len(DEFAULT_TOPICS))
    history = []
    for i in range(posts):
        at = START + timedelta(hours=6 * i, minutes=int(rng.integers(60)))
        t, f = int(rng.integers(len(DEFAULT_TOPICS))), int(rng.integers(len(FORMATS)))
        rate = 0.03 * np.exp(topic_effect[t])
        metrics = {"impressions": 1000, "likes": int(rng.poisson(1000 * rate)),
                   "replies": int(rng.poisson(100 * rate)),
                   "negative_feedback": int(rng.poisson(1.0))}  # fmt: skip
        text = f"{FORMATS[f]} post {i} of {handle} about {DEFAULT_TOPICS[t]}"
        history.append(PastPost(at, FORMATS[f], DEFAULT_TOPICS[t], text, metrics, "72h"))
    return AccountHistory(handle, "UTC", history)


def cpu_of_fit(accounts: list[AccountHistory], now: datetime) -> float:
    """CPU seconds (this process) of one ``fit_accounts`` over ``accounts``."""
    start = time.process_time()
    fit_accounts(accounts, now=now, formats=FORMATS, topics=DEFAULT_TOPICS,
                 config=FitConfig(), main_timezone="UTC")  # fmt: skip
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1, 2 and 4 accounts, 40 posts")
    parser.add_argument("--repeats", type=int, default=3, help="best of N per size")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "account_refit.json")  # fmt: skip
    args = parser.parse_args()
    sizes = (1, 2, 4) if args.quick else (1, 5, 20, 50)
    posts = 40 if args.quick else POSTS_PER_ACCOUNT
    rows = []
    for k in sizes:
        accounts = [synthetic_account(f"acct_{i:03d}", i, posts) for i in range(k)]
        now = max(p.posted_at for a in accounts for p in a.history) + timedelta(days=1)
        best = min(cpu_of_fit(accounts, now) for _ in range(args.repeats))
        rows.append({"accounts": k, "posts_per_account": posts, "cpu_s": round(best, 4),
                     "cpu_s_per_account": round(best / k, 4)})  # fmt: skip
        print(json.dumps(rows[-1]))
    single = rows[0]["cpu_s_per_account"]
    result = {
        "mode": "quick" if args.quick else "full",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": round(os.getloadavg()[0], 2),
        "what": "CPU s of fit_accounts (pooled + every account's own fit, no store reads), "
        "best of repeats; per-account cost relative to one account's single fit",
        "sizes": rows,
        "per_account_vs_single": {
            str(r["accounts"]): round(r["cpu_s_per_account"] / single, 2) for r in rows
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["per_account_vs_single"]))


if __name__ == "__main__":
    main()
