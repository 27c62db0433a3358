"""Pair two sets of per-seed loop figures: the paired difference, its 95 % interval and t.

Why: a screen of the loop benchmark (``benchmarks/loop.py --fit ...``) is judged against a base
run on the same seeds, and a confirmation on new seeds (``--first-seed``) is pooled with it.
Until 7 December 2026 those pairings and pools came from scripts outside the repository; this is
the one committed way to recompute every "minus base" figure in ``benchmarks/README.md``.

A source names one policy's per-seed figures (expected reward per post, the mean over its learner
streams) in one of two kinds of file:

- ``FILE[:POLICY]``: raw runs, as ``loop.py`` writes them to ``<out>.partial.json`` (a list of
  ``{scenario, seed, days, policies}``); the policy defaults to ``ours``;
- ``FILE#ROW``: a row of an experiments file (``results/loop_*_experiments.json``, ``runs``), its
  ``ours_per_seed`` on its ``seeds``; ``FILE#ROW@base``: the row's ``base_ours_per_seed``.

Pairs are matched by seed (for raw runs, also by ``--scenario`` and ``--days``); ``--pair`` may
be given several times (seeds 0-7, then 8-15, ...) and the pool is paired over all of them.
``--oracle FILE`` adds each side's ratio to ``oracle_greedy``'s mean on the same seeds.
``--month K`` pairs the K-th 30-day block of each run instead of the whole run (raw runs of
``loop.py`` from 7 December 2026 on, which record ``by_month``): where a long run's ratio comes
from.

Run (B: the text prior's 90-day row)::

    .venv/bin/python benchmarks/pair.py --days 90 --oracle benchmarks/results/loop.partial.json \\
        --pair /tmp/screen.partial.json \\
        "benchmarks/results/loop_prior_experiments.json#P_default90:default:90"
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats


def paired(diff: np.ndarray) -> dict[str, Any]:
    """Mean of paired per-seed differences, its t and 95 % interval (t distribution over the
    seeds), and the seeds where the difference is positive."""
    out: dict[str, Any] = {"mean": round(float(diff.mean()), 5), "t": None, "ci95": None,
                           "seeds_positive": int((diff > 0).sum())}  # fmt: skip
    if len(diff) > 1:
        se = float(diff.std(ddof=1)) / math.sqrt(len(diff))
        half = float(stats.t.ppf(0.975, len(diff) - 1)) * se
        if se > 0:
            out["t"] = round(float(diff.mean()) / se, 2)
        out["ci95"] = [round(float(diff.mean()) - half, 5), round(float(diff.mean()) + half, 5)]
    return out


class SourceError(ValueError):
    """A source that names no per-seed figures (bad file, row, policy or no matching runs)."""


def per_seed(spec: str, *, scenario: str, days: int, month: int | None = None) -> dict[int, float]:
    """Seed -> figure of one source (see the module docstring for ``spec``); with ``month``
    (1 = the first 30 days), that block's figure of raw runs."""
    path_part, _, row = spec.partition("#")
    policy = "ours"
    if not row and ":" in Path(path_part).name:
        path_part, _, policy = path_part.rpartition(":")
    path = Path(path_part)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SourceError(
            f"{path}: no such file; give a loop.py partial file or results file"
        ) from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if row and month is not None:
        raise SourceError(f"{spec}: --month reads raw runs (FILE[:POLICY]), not a results row")
    if row:
        row, _, side = row.partition("@")
        if side not in ("", "base"):
            raise SourceError(f"{spec}: after '@' only 'base' (the row's base_ours_per_seed)")
        runs = data.get("runs") if isinstance(data, dict) else None
        if not isinstance(runs, dict) or row not in runs:
            known = ", ".join(sorted(runs)) if isinstance(runs, dict) else "none"
            raise SourceError(f"{path}: no row {row!r} under 'runs' (rows: {known})")
        key = "base_ours_per_seed" if side else "ours_per_seed"
        entry = runs[row]
        if key not in entry:
            raise SourceError(f"{path}#{row}: the row has no {key}")
        return {int(s): float(v) for s, v in zip(entry["seeds"], entry[key], strict=True)}
    if not isinstance(data, list):
        raise SourceError(
            f"{path}: not raw runs (a loop.py <out>.partial.json list); for a results file "
            "name its row as FILE#ROW"
        )
    out: dict[int, float] = {}
    for run in data:
        if run.get("scenario") != scenario or int(run.get("days", -1)) != days:
            continue
        figures = run.get("policies", {}).get(policy)
        if figures is None:
            continue
        if month is None:
            out[int(run["seed"])] = float(figures["mean_expected_reward"])
            continue
        months = figures.get("by_month")
        if months is None:
            raise SourceError(
                f"{path}: {policy!r} has no by_month (a run before 7 December 2026): rerun it "
                "with today's loop.py"
            )
        if not 1 <= month <= len(months):
            raise SourceError(f"{path}: --month {month}, but {policy!r} has {len(months)} months")
        out[int(run["seed"])] = float(months[month - 1])
    if not out:
        raise SourceError(
            f"{path}: no {policy!r} runs for {scenario}, {days} days; check --scenario, --days "
            "and the policy after ':'"
        )
    return out


def compare(
    pairs: list[tuple[dict[int, float], dict[int, float]]],
    oracle: dict[int, float] | None = None,
) -> dict[str, Any]:
    """The pooled paired comparison of ``a - b`` over every pair's common seeds."""
    a_values: list[float] = []
    b_values: list[float] = []
    seeds: list[int] = []
    for a, b in pairs:
        common = sorted(set(a) & set(b))
        if not common:
            raise SourceError(f"no common seeds: {sorted(a)} against {sorted(b)}")
        seeds += common
        a_values += [a[s] for s in common]
        b_values += [b[s] for s in common]
    if len(set(seeds)) != len(seeds):
        raise SourceError(f"a seed appears in two pairs: {seeds}; pool disjoint seeds")
    a_arr, b_arr = np.array(a_values), np.array(b_values)
    out: dict[str, Any] = {
        "seeds": seeds,
        "a": round(float(a_arr.mean()), 5),
        "b": round(float(b_arr.mean()), 5),
        "a_minus_b": paired(a_arr - b_arr),
    }
    if oracle is not None:
        missing = [s for s in seeds if s not in oracle]
        if missing:
            raise SourceError(f"the oracle has no runs for seeds {missing}")
        scale = float(np.mean([oracle[s] for s in seeds]))
        out["oracle"] = round(scale, 5)
        out["a_ratio_to_oracle"] = round(float(a_arr.mean()) / scale, 4)
        out["b_ratio_to_oracle"] = round(float(b_arr.mean()) / scale, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pair", nargs=2, action="append", metavar=("A", "B"), required=True,
        help="sources FILE[:POLICY], FILE#ROW or FILE#ROW@base; repeat to pool disjoint seeds",
    )  # fmt: skip
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--oracle", help="raw runs holding oracle_greedy on the same seeds")
    parser.add_argument("--out", type=Path, help="also write the comparison here as JSON")
    parser.add_argument(
        "--month", type=int, help="pair the K-th 30-day block of raw runs (1 = days 0-29)"
    )
    args = parser.parse_args(argv)
    if args.month is not None and args.month < 1:
        parser.error(f"--month {args.month}: give 1 for days 0-29, 2 for days 30-59, ...")
    where: dict[str, Any] = {"scenario": args.scenario, "days": args.days, "month": args.month}
    try:
        pairs = [(per_seed(a, **where), per_seed(b, **where)) for a, b in args.pair]
        oracle = per_seed(f"{args.oracle}:oracle_greedy", **where) if args.oracle else None
        result = compare(pairs, oracle)
    except SourceError as exc:
        print(f"pair.py: {exc}", file=sys.stderr)
        return 2
    diff = result["a_minus_b"]
    line = f"{len(result['seeds'])} seeds: a {result['a']:.5f}, b {result['b']:.5f}, "
    line += f"a - b {diff['mean']:+.5f}"
    if diff["ci95"]:
        line += f" (95 % CI {diff['ci95'][0]:+.5f} to {diff['ci95'][1]:+.5f}, t {diff['t']})"
    line += f", {diff['seeds_positive']}/{len(result['seeds'])} seeds up"
    if oracle is not None:
        line += f"; to the oracle: a {result['a_ratio_to_oracle']}, b {result['b_ratio_to_oracle']}"
    print(line)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
