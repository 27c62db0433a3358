"""Fleet loop benchmark: do accounts that learn together (issue #22's per-account policy) learn
faster than an account alone, measured by the truth? (issue #16, "what any learner must pay")

``benchmarks/loop.py`` measures one account learning from nothing; its bound
(``oracle_after_N``) shows that no learner reaches 0.90 of the oracle in 30 days unless it acts
like the truth within about 20 posts. An owner running several accounts has more information
per post than that: ``learning/account_policy.py`` (the code ``factored_posteriors`` runs) fits
a pooled posterior over all the owner's accounts and centres each account's own fit on it. This
benchmark measures that, with the same decision code as ``loop.py``:

* a fleet of K accounts in one sandbox (scenario + seed), each with an audience of its own
  (``add_account(audience_jitter=J)``: its topic and format effects are the scenario's plus its
  own normal offsets of SD J, seeded by its handle), 2,000 followers, 4 posts a day at its own
  slot times (shared by every policy, so the pairing holds per account);
* policies, each on a fresh sandbox of the same scenario, seed and accounts:

  ``random``         uniform arm per post (the paired replay)
  ``ours_alone``     ``loop.py``'s ``ours``, every account fitted on its own posts only
  ``ours_fleet``     every 6 h one ``fit_accounts`` over all the accounts (pooled fit, each
                     account's own fit centred on it; the pooled fit below 10 own posts), each
                     account deciding with its own posterior through ``decide_post``
  ``oracle_greedy``  the fair oracle of ``loop.py``, per account with its own audience's truth

Metric: the true expected reward per post of each account (read after the decision, never by a
policy), averaged over the fleet per seed; paired differences over seeds, t, seeds up, and the
ratio to the oracle. Per-account figures are kept in the raw runs.

Run: nice -n 10 .venv/bin/python benchmarks/loop_fleet.py --seeds 8 --days 30 --accounts 4 \
         --jitter 0.4 --out benchmarks/results/loop_fleet.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script
from benchmarks import loop  # the loop benchmark: the same policies, sandbox, arms and delays
from benchmarks.pair import paired  # per-seed paired statistics, shared with pair.py
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.learning.account_policy import MIN_OWN_POSTS, AccountHistory, fit_accounts
from xbot_assets.learning.factored import FitConfig
from xbot_assets.sandbox import SandboxX, SimClock
from xbot_assets.sandbox.admin import MAX_AUDIENCE_JITTER

POLICIES = ("random", "ours_alone", "ours_fleet", "oracle_greedy")
"""The fleet's policies (``loop.py``'s Loop plays each account; see the module docstring)."""
LOOP_POLICY = {"random": "random", "ours_alone": "ours", "ours_fleet": "ours",
               "oracle_greedy": "oracle_greedy"}  # fmt: skip
FOLLOWERS = 2000
"""Every account's followers: the default scenario's own account's."""
FLEET_FIT: dict[str, Any] = {}
"""``fit_accounts`` keywords of ``ours_fleet`` (``--min-own-posts``)."""


def fleet_handles(accounts: int) -> list[str]:
    return [f"fleet_{k}" for k in range(accounts)]


STREAMS = 1
"""Learner streams per seed (``--streams``): ``ours_alone`` and ``ours_fleet`` run this many times
with their own random streams and a seed's figure is the mean; random and the oracle run once."""
LEARNERS = ("ours_alone", "ours_fleet")


def run_fleet(
    scenario: str,
    seed: int,
    days: int,
    policy: str,
    accounts: int,
    jitter: float,
    stream: int = 0,
) -> dict[str, Any]:
    """One policy's run of the whole fleet on a fresh sandbox: per-account truth per post
    (``stream``: the learners' random stream, as ``loop.py --streams``)."""
    sandbox = SandboxX(scenario, seed)
    sandbox.clock = SimClock(sandbox.params.start)
    handles = fleet_handles(accounts)
    for handle in handles:
        sandbox.add_account(handle, followers=FOLLOWERS, audience_jitter=jitter)
    members = [
        loop.Loop(scenario, seed, days, LOOP_POLICY[policy], sandbox=sandbox, handle=handle,
                  account_index=k + 1, stream=stream)
        for k, handle in enumerate(handles)
    ]  # fmt: skip
    results = [loop.RunResult() for _ in members]
    events = sorted(
        (slot, k, index) for k, member in enumerate(members)
        for index, slot in enumerate(member.slots)
    )  # fmt: skip
    started = time.process_time()
    next_refit = sandbox.params.start
    for slot, k, index in events:
        while next_refit <= slot:
            if policy == "ours_fleet":
                refit_fleet(members, next_refit, sandbox.params.timezone)
            else:
                for member in members:
                    member.refit(next_refit)
            next_refit += timedelta(hours=loop.REFIT_HOURS)
        members[k].play(index, slot, results[k])
    seconds = time.process_time() - started
    per_account = {
        handle: {
            "mean_expected_reward": float(np.mean(r.rewards)) if r.rewards else float("nan"),
            "posts": len(r.rewards),
            "skipped": r.skipped,
            "fallbacks": r.fallbacks,
            "already_posted": r.already_posted,
            "own_effects": [
                round(float(v), 4)
                for part in sandbox.audience.account_effects(sandbox.account(handle))
                for v in part
            ],
        }
        for handle, r in zip(handles, results, strict=True)
    }
    rewards = [v for r in results for v in r.rewards]
    return {
        "mean_expected_reward": float(np.mean(
            [a["mean_expected_reward"] for a in per_account.values()]
        )),
        "posts": len(rewards),
        "skipped": sum(r.skipped for r in results),
        # loop.py's per-run counters, summed over the fleet (each account's are in "accounts").
        "fallbacks": sum(r.fallbacks for r in results),
        "already_posted": sum(r.already_posted for r in results),
        "cpu_seconds": round(seconds, 2),
        "accounts": per_account,
    }  # fmt: skip


def refit_fleet(members: list[Any], now: datetime, timezone: str) -> None:
    """The product's per-account fit (``fit_accounts``) over the fleet, each account acting on
    its own posterior (``factored_posteriors`` does the same in one run)."""
    histories = [
        AccountHistory(m.handle, timezone, m.history(now, with_metrics=True), m.horizon_pairs(now))
        for m in members
    ]
    fitted = fit_accounts(
        histories, now=now, formats=FORMATS, topics=DEFAULT_TOPICS,
        config=FitConfig(**loop.FIT_OVERRIDES), main_timezone=timezone, **FLEET_FIT,
    )  # fmt: skip
    for member in members:
        member.use_posterior(fitted.accounts[member.handle].posterior)


def merge_streams(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One seed's figures from its streams' runs: means of the rewards (fleet and per account),
    sums of the counters, and each stream's fleet mean under ``per_stream``."""
    if len(runs) == 1:
        return runs[0]
    counters = ("posts", "skipped", "fallbacks", "already_posted")
    accounts = {}
    for handle, first in runs[0]["accounts"].items():
        mine = [r["accounts"][handle] for r in runs]
        accounts[handle] = {
            **first,
            "mean_expected_reward": float(np.mean([a["mean_expected_reward"] for a in mine])),
            **{key: sum(a[key] for a in mine) for key in counters},
        }
    return {
        "mean_expected_reward": float(np.mean([r["mean_expected_reward"] for r in runs])),
        **{key: sum(r[key] for r in runs) for key in counters},
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in runs), 2),
        "streams": len(runs),
        "per_stream": [round(r["mean_expected_reward"], 6) for r in runs],
        "accounts": accounts,
    }  # fmt: skip


def run_job(job: tuple[str, int, int, tuple[str, ...], int, float]) -> dict[str, Any]:
    scenario, seed, days, policies, accounts, jitter = job
    return {
        "scenario": scenario, "seed": seed, "days": days, "accounts": accounts, "jitter": jitter,
        "policies": {
            p: merge_streams([
                run_fleet(scenario, seed, days, p, accounts, jitter, stream=k)
                for k in range(STREAMS if p in LEARNERS else 1)
            ])
            for p in policies
        },
    }  # fmt: skip


def summarise(runs: list[dict[str, Any]], policies: tuple[str, ...]) -> dict[str, Any]:
    """Per policy: the fleet mean over seeds, paired with random, and the ratio to the oracle
    (``loop.py``'s statistics on the per-seed fleet means), plus the per-account ratio. The
    counters (skipped, fallbacks, already_posted) are summed over the accounts and seeds; a run
    copied by ``--reuse`` from a file written before they were kept counts 0 fallbacks and
    already_posted."""
    rows = [{"seed": r["seed"], "policies": {
        p: {**r["policies"][p], "chosen_index": [], "n_accepted": [],
            "skipped": sum(a["skipped"] for a in r["policies"][p]["accounts"].values()),
            "top_arm_share": 0.0}
        for p in policies}} for r in runs]  # fmt: skip
    summary = loop.summarise(rows, policies)
    if "random" in policies:
        for p in policies:
            if p != "random":
                diff = np.array(summary["policies"][p]["per_seed"]) - np.array(
                    summary["policies"]["random"]["per_seed"]
                )
                summary["policies"][p]["ci95_vs_random"] = paired(diff)["ci95"]
    if "oracle_greedy" in policies:
        for p in policies:
            ratios = [
                a["mean_expected_reward"] / r["policies"]["oracle_greedy"]["accounts"][h][
                    "mean_expected_reward"]
                for r in runs for h, a in r["policies"][p]["accounts"].items()
            ]  # fmt: skip
            summary["policies"][p]["account_ratio_to_oracle"] = {
                "mean": round(float(np.mean(ratios)), 4),
                "min": round(float(np.min(ratios)), 4),
                "max": round(float(np.max(ratios)), 4),
            }
    for p in policies:  # the fleet against each account alone: needs no oracle run
        if p.startswith("ours") and "ours_alone" in policies and p != "ours_alone":
            diff = np.array(summary["policies"][p]["per_seed"]) - np.array(
                summary["policies"]["ours_alone"]["per_seed"]
            )
            summary["policies"][p]["diff_vs_ours_alone"] = paired(diff)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seeds", default="8", help="a count (0..N-1) or a list: 0,3,5")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.4,
        help="SD of each account's own topic/format offsets (deploy-local's 0.4)",
    )
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=loop.ROOT / "benchmarks" / "results" / "loop_fleet.json"
    )
    parser.add_argument(
        "--fit",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a FitConfig field of ours (experiments)",
    )
    parser.add_argument(
        "--min-own-posts",
        type=int,
        default=MIN_OWN_POSTS,
        help="own posts before an account of ours_fleet acts on its own fit",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        help="a previous <out>.json whose --reuse-policies runs are copied per seed"
        " (the runs are deterministic per seed and policy: rerun what changed)",
    )
    parser.add_argument("--reuse-policies", default="")
    parser.add_argument(
        "--streams", type=int, default=1,
        help="runs per seed of each learner (ours_alone, ours_fleet), each with its own random"
        " stream; a seed's figure is their mean (random and the oracle run once)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    global STREAMS
    if args.streams < 1:
        parser.error("--streams must be 1 or more (1: the benchmark's own stream only)")
    STREAMS = args.streams
    FLEET_FIT.update(min_own_posts=args.min_own_posts)
    for item in args.fit:
        key, _, value = item.partition("=")
        loop.FIT_OVERRIDES[key] = json.loads(value)
    if args.accounts < 2:
        parser.error("--accounts must be at least 2 (one account alone is benchmarks/loop.py)")
    if not 0 <= args.jitter <= MAX_AUDIENCE_JITTER:
        parser.error(f"--jitter must be between 0 and {MAX_AUDIENCE_JITTER} (deploy-local: 0.4)")
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.min_own_posts < 0:
        parser.error("--min-own-posts must be 0 or more")
    policies = tuple(p for p in args.policies.split(",") if p)
    unknown = set(policies) - set(POLICIES)
    if unknown:
        parser.error(f"unknown policies {sorted(unknown)}: choose from {', '.join(POLICIES)}")
    if "random" not in policies:
        policies = ("random", *policies)
    try:
        seeds = (
            [int(s) for s in args.seeds.split(",")] if "," in args.seeds
            else list(range(int(args.seeds)))
        )  # fmt: skip
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: a count (8) or a comma-separated list (0,3,5)")
    if not seeds:
        parser.error("--seeds: at least one seed")
    reused: dict[int, dict[str, Any]] = {}
    copy = tuple(p for p in args.reuse_policies.split(",") if p)
    if args.reuse is not None and copy:
        try:
            old = json.loads(args.reuse.read_text())
            shape = (old["accounts"], old["audience_jitter"], old["days"], old["scenario"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--reuse {args.reuse}: not a loop_fleet.py result ({exc})")
        if shape != (args.accounts, args.jitter, args.days, args.scenario):
            parser.error("--reuse: a run of other accounts, jitter, days or scenario")
        missing = sorted({p for r in old["runs"] for p in copy if p not in r["policies"]})
        if missing:
            parser.error(f"--reuse: {args.reuse} has no runs of {missing}; rerun them instead")
        reused = {r["seed"]: {p: r["policies"][p] for p in copy} for r in old["runs"]}
    jobs = [
        (args.scenario, s, args.days,
         tuple(p for p in policies if not (s in reused and p in reused[s])),
         args.accounts, args.jitter)
        for s in seeds
    ]  # fmt: skip
    started = time.time()
    partial = args.out.with_suffix(".partial.json")
    runs: list[dict[str, Any]] = []
    if args.processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            for run in pool.imap_unordered(run_job, jobs, chunksize=1):
                runs.append(run)
                partial.write_text(json.dumps(runs))
    else:
        for job in jobs:
            runs.append(run_job(job))
            partial.write_text(json.dumps(runs))
    for run in runs:
        for p, entry in reused.get(run["seed"], {}).items():
            run["policies"].setdefault(p, {**entry, "reused_from": str(args.reuse)})
    runs.sort(key=lambda r: r["seed"])
    summary = summarise(runs, policies)
    results = {
        "benchmark": "loop_fleet",
        "metric": "true expected reward per post, mean over the fleet's accounts",
        "scenario": args.scenario, "days": args.days, "accounts": args.accounts,
        "audience_jitter": args.jitter, "seeds": seeds, "posts_per_day": loop.POSTS_PER_DAY,
        "refit_hours": loop.REFIT_HOURS, "summary": summary,
        "wall_seconds": round(time.time() - started, 1),
        "command": "benchmarks/loop_fleet.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:]),
        "fit_config": {**FitConfig().__dict__, **loop.FIT_OVERRIDES},
        "fleet_fit": FLEET_FIT,
        "streams": STREAMS,
        "runs": runs,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    for p, e in summary["policies"].items():
        print(
            f"  {p:14s} {e['mean']:.5f}  diff {e.get('diff_vs_random', 0):+.5f} t {e.get('t')} "
            f"up {e.get('seeds_positive')} /oracle {e.get('ratio_to_oracle')} "
            f"vs alone {e.get('diff_vs_ours_alone')}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
