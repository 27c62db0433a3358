"""The main job's summary and HTML report: reward over time against a random policy, posterior
means, the best slots. Images are embedded, so the report is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from xbot_assets.config import Settings
from xbot_assets.learning.rewards import engagement_reward

HORIZON_ORDER = ("1h", "6h", "24h", "72h")


@dataclass(frozen=True)
class PostReward:
    """One posted root post and the reward of its latest snapshot in the store."""

    account_id: int
    post_id: int
    arm: str
    posted_at: datetime
    horizon: str
    collected_at: datetime
    reward: float
    impressions: int
    follows: int


def bot_rewards(
    store: Any, *, since: datetime | None = None, account_id: int | None = None
) -> list[PostReward]:
    """Every posted root post (of one account, or all) with its latest snapshot's reward."""
    accounts = [a.id for a in store.list_accounts()] if account_id is None else [account_id]
    latest: dict[int, Any] = {}
    for snap in store.list_metrics(account_id=account_id):
        have = latest.get(snap.tweet_id)
        if have is None or HORIZON_ORDER.index(snap.horizon) > HORIZON_ORDER.index(have.horizon):
            latest[snap.tweet_id] = snap
    out: list[PostReward] = []
    for acc in accounts:
        for post in store.list_posts(acc, status="posted", since=None, limit=100_000):
            if post.thread_position != 0 or post.posted_at is None:
                continue
            if since is not None and post.posted_at < since:
                continue
            snap = latest.get(post.id)
            if snap is None:
                continue
            metrics = {k: getattr(snap, k) for k in snap.__dataclass_fields__}
            out.append(
                PostReward(
                    account_id=acc,
                    post_id=post.id,
                    arm=post.arm or "unknown",
                    posted_at=post.posted_at,
                    horizon=snap.horizon,
                    collected_at=snap.collected_at,
                    reward=engagement_reward(metrics),
                    impressions=int(snap.impressions or 0),
                    follows=int(snap.follows or 0),
                )
            )
    return sorted(out, key=lambda r: (r.posted_at, r.post_id))


def random_policy_rewards(
    settings: Settings, bot: list[PostReward], arms: list[str]
) -> list[float]:
    """Replay the bot's posting times with uniformly random arms in a fresh sandbox of the same
    scenario and seed; each random post is measured at the same age as the bot's snapshot."""
    from xbot_assets.content.candidates import generate_candidates
    from xbot_assets.content.offline import OfflineGenerator
    from xbot_assets.sandbox import SandboxX, SimClock

    if not bot:
        return []
    rng = np.random.default_rng(settings.sandbox_seed)
    sandbox = SandboxX(settings.sandbox_scenario, settings.sandbox_seed, SimClock(bot[0].posted_at))
    account = sandbox.account()
    generator = OfflineGenerator()
    made: list[tuple[str, PostReward]] = []
    recent: list[str] = []
    for i, post in enumerate(bot):
        arm = arms[int(rng.integers(len(arms)))]
        batch = generate_candidates(generator, arm, n=3, base_seed=10_000 + i, recent=recent)
        chosen = next((c for c in batch if c.accepted), batch[0])
        if not chosen.parts:
            continue
        sandbox.clock.set(post.posted_at)
        body = sandbox.create_tweet(chosen.parts[0], token=account.user_token)
        root = str(body["data"]["id"])
        parent = root
        for part in chosen.parts[1:]:
            reply = sandbox.create_tweet(part, parent, token=account.user_token)
            parent = str(reply["data"]["id"])
        recent.extend(chosen.parts)
        made.append((root, post))
    sandbox.clock.set(max(p.collected_at for p in bot))
    rewards = []
    for root, post in made:
        metrics = sandbox.post_metrics(root, at=post.collected_at)
        rewards.append(engagement_reward(metrics))
    return rewards


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def summarise(
    settings: Settings, store: Any, *, since: datetime, until: datetime
) -> dict[str, Any]:
    """The figures the main job prints and reports, all read back from the store."""
    from xbot_assets.engine.decide import load_models
    from xbot_assets.engine.planner import hour_scheduler

    bot = bot_rewards(store, since=since)
    posts_by_account: dict[str, int] = {}
    for account in store.list_accounts():
        posted = [
            p
            for p in store.list_posts(account.id, status="posted", limit=100_000)
            if p.thread_position == 0 and p.posted_at is not None and p.posted_at >= since
        ]
        posts_by_account[account.handle] = len(posted)
    models = load_models(settings)
    primary = bot_rewards(store, since=since, account_id=_primary_id(store, settings))
    random_rewards = random_policy_rewards(settings, primary, models.arms)
    frame = models.sampler.to_frame(models.arms).sort_values("mean", ascending=False)
    learned = store.get_config("learned", {}) or {}
    hours: list[dict[str, Any]] = []
    primary_id = _primary_id(store, settings)
    if primary_id is not None:
        tz = store.get_account(primary_id).timezone
        slots = hour_scheduler(store, settings, primary_id, tz, seed=0).to_frame()
        slots = slots[~slots["quiet"]].sort_values("mean", ascending=False)
        hours = [
            {"hour": str(r["arm"]), "mean": float(r["mean"]), "trials": float(r["trials"])}
            for _, r in slots.iterrows()
        ]
    bot_primary = [r.reward for r in primary]
    return {
        "from": since.isoformat(),
        "until": until.isoformat(),
        "posts": sum(posts_by_account.values()),
        "posts_by_account": posts_by_account,
        "measured_posts": len(bot),
        "snapshots_by_horizon": dict(
            sorted({h: sum(1 for r in bot if r.horizon == h) for h in HORIZON_ORDER}.items())
        ),
        "bot_mean_reward": _mean(bot_primary),
        "random_mean_reward": _mean(random_rewards),
        "lift_vs_random": (
            _mean(bot_primary) / _mean(random_rewards) - 1.0 if _mean(random_rewards) else None
        ),
        "bot_rewards": bot_primary,
        "random_rewards": random_rewards,
        "follows": sum(r.follows for r in primary),
        "posteriors_cold_start": models.posteriors_cold,
        "top_arms": [
            {"arm": str(r["arm"]), "mean": float(r["mean"]), "trials": float(r["trials"])}
            for _, r in frame.head(5).iterrows()
        ],
        "posterior_means": {str(r["arm"]): float(r["mean"]) for _, r in frame.iterrows()},
        "best_topics": list(learned.get("best_topics", [])),
        "best_slots": hours[:5],
        "all_slots": hours,
    }


def _primary_id(store: Any, settings: Settings) -> int | None:
    for account in store.list_accounts():
        if account.handle == settings.x_handle:
            return int(account.id)
    return None


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(summary: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images: list[tuple[str, str]] = []
    bot, rnd = summary["bot_rewards"], summary["random_rewards"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, values in (("bot (Thompson sampling)", bot), ("random policy", rnd)):
        if values:
            cumulative = np.cumsum(values) / np.arange(1, len(values) + 1)
            ax.plot(cumulative, label=name)
    ax.set_xlabel("post")
    ax.set_ylabel("running mean reward")
    ax.legend()
    images.append(("Reward over time (running mean per post)", _png(fig)))
    plt.close(fig)
    means = summary["posterior_means"]
    if means:
        fig, ax = plt.subplots(figsize=(8, 5))
        names = list(means)[::-1]
        ax.barh(names, [means[n] for n in names])
        ax.set_xlabel("posterior mean of the engagement rate")
        images.append(("Posterior means per arm (format:topic)", _png(fig)))
        plt.close(fig)
    slots = summary["all_slots"]
    if slots:
        ordered = sorted(slots, key=lambda s: s["hour"])
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.bar([s["hour"][:2] for s in ordered], [s["mean"] for s in ordered])
        ax.set_xlabel("local hour")
        ax.set_ylabel("posterior mean")
        images.append(("Posting hours (slot posteriors)", _png(fig)))
        plt.close(fig)
    return images


def summary_lines(result: Any) -> list[str]:
    """The summary the CLI prints."""
    s = result.summary
    lift = s.get("lift_vs_random")
    lines = [
        f"simulated {s['from'][:16]} -> {s['until'][:16]} in {result.seconds:.0f} s "
        f"({sum(result.runs_by_job.values())} Dagster runs, {result.deduplicated} de-duplicated "
        f"by run key, {len(result.failed_runs)} failed)",
        f"posts: {s['posts']} ({', '.join(f'@{k} {v}' for k, v in s['posts_by_account'].items())}),"
        f" {s['measured_posts']} measured, {s['follows']} follows",
        f"mean reward per post: bot {s['bot_mean_reward']:.4f} vs random policy "
        f"{s['random_mean_reward']:.4f}" + (f" ({lift:+.0%})" if lift is not None else ""),
        "best arms (posterior mean): "
        + ", ".join(f"{a['arm']} {a['mean']:.4f}" for a in s["top_arms"][:3]),
        "best hours: " + ", ".join(f"{h['hour']} {h['mean']:.4f}" for h in s["best_slots"][:3]),
    ]
    if s.get("best_topics"):
        lines.append("learned config best topics: " + ", ".join(s["best_topics"]))
    return lines


def write_report(result: Any, folder: Path) -> Path:
    """Write ``main_job_<time>.html`` with the summary and the plots embedded."""
    folder.mkdir(parents=True, exist_ok=True)
    s = result.summary
    path = folder / f"main_job_{datetime.now().strftime('%Y%m%dT%H%M%S')}.html"
    rows = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(result))
    runs = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
        for k, v in sorted(result.runs_by_job.items())
    )
    images = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{data}'/>"
        for title, data in _plots(s)
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>xbot main job</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}"
        "td{padding:2px 8px}</style></head><body>"
        f"<h1>xbot main job: {html.escape(s['from'][:10])} to {html.escape(s['until'][:10])}</h1>"
        f"<ul>{rows}</ul><h2>Dagster runs by job</h2><table>{runs}</table>{images}"
        "</body></html>",
        encoding="utf-8",
    )
    return path
