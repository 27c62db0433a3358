"""Outcome distributions of every scenario: the table and plot in the sandbox README.

Run ``.venv/bin/python -m xbot_assets.sandbox.report [--png PATH]``: each scenario posts 300
varied posts (random format and topic, one every 1-5 hours) through the in-process platform,
then prints a Markdown table of the 72h outcomes and writes a PNG of their distributions.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import numpy as np

from xbot_assets.sandbox.platform import SandboxX
from xbot_assets.sandbox.scenario import SCENARIOS
from xbot_assets.sandbox.textgen import make_post_text
from xbot_assets.sandbox.vocabulary import ENGAGEMENT_ACTIONS, FORMATS


def simulate(scenario: str, seed: int = 7, posts: int = 300) -> dict[str, np.ndarray]:
    """Post ``posts`` varied posts and return each metric's 72h counts (plus follower path)."""
    sandbox = SandboxX(scenario, seed=seed)
    token = sandbox.account().user_token
    rng = np.random.default_rng(seed)
    ids = []
    formats = [f for f in FORMATS if f != "thread"]
    followers = [sandbox.followers()]
    for _ in range(posts):
        sandbox.clock.advance(timedelta(minutes=int(rng.integers(60, 300))))
        text = make_post_text(
            str(rng.choice(formats)), str(rng.choice(sandbox.params.account_topics)), rng
        )
        ids.append(sandbox.create_tweet(text, token=token)["data"]["id"])
        followers.append(sandbox.followers())
    sandbox.clock.advance(timedelta(days=4))
    rows = [sandbox.post_metrics(post_id) for post_id in ids]
    out = {m: np.array([r[m] for r in rows], dtype=float) for m in rows[0]}
    out["followers"] = np.array([*followers, sandbox.followers()], dtype=float)
    return out


def summarize(name: str, data: dict[str, np.ndarray]) -> dict[str, float]:
    """The figures of one table row."""
    impressions = data["impressions"]
    rate = sum(data[m] for m in ENGAGEMENT_ACTIONS) / np.maximum(impressions, 1)
    median = float(np.median(impressions))
    return {
        "scenario": name,  # type: ignore[dict-item]
        "imp_p10": float(np.percentile(impressions, 10)),
        "imp_p50": median,
        "imp_p90": float(np.percentile(impressions, 90)),
        "imp_max": float(impressions.max()),
        "mean_over_median": float(impressions.mean() / max(median, 1)),
        "viral_share": float((impressions > 10 * median).mean()),
        "er_p10": float(np.percentile(rate, 10)),
        "er_p50": float(np.median(rate)),
        "er_p90": float(np.percentile(rate, 90)),
        "er_in_range": float(((rate >= 0.005) & (rate <= 0.08)).mean()),
        "zero_engagement": float((rate == 0).mean()),
        "followers_start": float(data["followers"][0]),
        "followers_end": float(data["followers"][-1]),
    }


def markdown(rows: list[dict[str, float]]) -> str:
    """The README table."""
    lines = [
        "| scenario | impressions p10 / p50 / p90 / max | mean/median | >10x median "
        "| engagement rate p10 / p50 / p90 | ER in 0.5-8% | zero-ER posts | followers start→end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['imp_p10']:.0f} / {r['imp_p50']:.0f} / {r['imp_p90']:.0f}"
            f" / {r['imp_max']:.0f} | {r['mean_over_median']:.2f} | {r['viral_share']:.1%} "
            f"| {r['er_p10']:.2%} / {r['er_p50']:.2%} / {r['er_p90']:.2%} "
            f"| {r['er_in_range']:.0%} | {r['zero_engagement']:.0%} "
            f"| {r['followers_start']:.0f}→{r['followers_end']:.0f} |"
        )
    return "\n".join(lines)


def plot(data: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    """Histograms of log impressions and engagement rate per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, d in data.items():
        imp = d["impressions"]
        rate = sum(d[m] for m in ENGAGEMENT_ACTIONS) / np.maximum(imp, 1)
        axes[0].hist(np.log10(np.maximum(imp, 1)), bins=40, histtype="step", label=name)
        axes[1].hist(rate[imp >= 50] * 100, bins=np.linspace(0, 12, 49), histtype="step",
                     label=name)  # fmt: skip
    axes[0].set_xlabel("log10 impressions at 72h")
    axes[0].set_ylabel("posts")
    axes[1].set_xlabel("engagement rate % (posts with >= 50 impressions)")
    for ax in axes:
        ax.legend()
    fig.suptitle("Sandbox X: outcomes of 300 varied posts per scenario (seed 7)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--png", type=Path, default=Path(__file__).parent / "outcomes.png")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = {name: simulate(name, args.seed) for name in SCENARIOS}
    print(markdown([summarize(name, d) for name, d in data.items()]))
    plot(data, args.png)


if __name__ == "__main__":
    main()
