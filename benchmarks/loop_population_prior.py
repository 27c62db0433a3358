"""Fit the loop benchmark's population prior from other accounts' posts (issue 16).

What ``xbot prior fit`` does from a store of experienced accounts, here from ``loop.py`` runs on
audiences the benchmark never scores: seeds 100 and up of the same scenario (each seed is a
different audience of the same niche, ``jitter`` in the scenario file). The posts are what the
bot sees through the sandbox's API (counts at 1/6/24/72 h), never the sandbox's parameters, and
they go through the product's own ``learning/population_prior.fit_population_prior``. The
policy that posts them defaults to ``random``: a pooled dataset of posts, as an analyst would
collect, with every arm and text form represented.

Run:
    nice -n 10 .venv/bin/python benchmarks/loop_population_prior.py --seeds 100-115 --days 90 \\
        --out benchmarks/results/population_prior.json
then ``benchmarks/loop.py --prior benchmarks/results/population_prior.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script
from benchmarks import loop
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.learning.account_policy import AccountHistory
from xbot_assets.learning.population_prior import (
    KNOWN_GROUPS,
    after_last_post,
    fit_population_prior,
    save_prior,
)

HELD_OUT_FROM = 100
"""The benchmark scores seeds 0-7 (and fleets of them); priors come from seeds >= this."""


def account_of(job: tuple[str, int, int, str]) -> tuple[AccountHistory, str]:
    """One held-out audience's posts, as the bot stored them, 72 h after the last one."""
    scenario, seed, days, policy = job
    run = loop.Loop(scenario, seed, days, policy)
    run.run()
    now = run.slots[-1] + timedelta(hours=73)
    history = run.history(now, with_metrics=True)
    account = AccountHistory(f"seed{seed}", run.sandbox.params.timezone, history,
                             run.horizon_pairs(now))  # fmt: skip
    return account, now.isoformat()


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = (int(x) for x in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="100-115", help="held-out seeds: 100-115 or 100,101")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--policy", default="random", choices=loop.POLICIES)
    parser.add_argument("--groups", default="text", help=f"from {', '.join(KNOWN_GROUPS)}")
    parser.add_argument("--sd", type=float, default=0.1, help="prior SD of the groups")
    parser.add_argument("--with-formats", action="store_true")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if min(seeds) < HELD_OUT_FROM:
        parser.error(
            f"seeds below {HELD_OUT_FROM} are the ones the loop benchmark scores: a prior fitted "
            "on them would be scored on its own data; use --seeds 100-115"
        )
    jobs = [(args.scenario, s, args.days, args.policy) for s in seeds]
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        done: list[tuple[AccountHistory, Any]] = pool.map(account_of, jobs)
    accounts = [a for a, _ in done]
    now = after_last_post(accounts, default=datetime.now(UTC))
    groups = [g for g in args.groups.split(",") if g]
    prior = fit_population_prior(
        accounts, now=now, formats=FORMATS, topics=DEFAULT_TOPICS, groups=groups,
        group_sd=dict.fromkeys(groups, args.sd), with_formats=args.with_formats,
    )  # fmt: skip
    prior.source.update(
        {"scenario": args.scenario, "seeds": args.seeds, "days": args.days, "policy": args.policy,
         "command": "benchmarks/loop_population_prior.py " + " ".join(argv or sys.argv[1:])}
    )  # fmt: skip
    save_prior(prior, args.out)
    print(prior.describe(), "->", args.out)
    for name, mean in prior.effect_means.items():
        print(f"  {name:20s} {mean:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
