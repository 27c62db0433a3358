"""The main job's summary and HTML report: reward over time against a random policy, posterior
means, the best slots. Images are embedded, so the report is one file that opens anywhere.

Why one module of about 530 lines: the printed summary and the HTML report show the same
figures (expected reward against paired random and oracle-greedy, the deciding posterior and
its cold-start flag), and keeping both renderings beside the one place that computes them is
what keeps the two from drifting apart.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from xbot_assets.config import Settings
from xbot_assets.files import write_atomic
from xbot_assets.learning.rewards import REWARD_WEIGHTS, engagement_reward
from xbot_assets.vocabulary import HORIZONS as HORIZON_ORDER


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


@dataclass(frozen=True)
class Replay:
    """A reference policy replayed at the bot's posting times in a fresh sandbox of the same
    scenario and seed: each post's expected reward (the sandbox's truth) and, where the bot's
    post was measured, the realised reward at the same age."""

    name: str
    expected: list[float]
    realised: list[float]


Chooser = Callable[[Any, int, list[str], list[str], datetime], Any]
"""``(sandbox, i, arms, recent texts, when) -> Candidate``: a reference policy's pick."""


def _random_chooser(seed: int) -> Chooser:
    from xbot_assets.content.candidates import generate_candidates
    from xbot_assets.content.offline import OfflineGenerator

    rng = np.random.default_rng(seed)
    generator = OfflineGenerator()

    def choose(sandbox: Any, i: int, arms: list[str], recent: list[str], when: datetime) -> Any:
        arm = arms[int(rng.integers(len(arms)))]
        batch = generate_candidates(generator, arm, n=3, base_seed=10_000 + i, recent=recent)
        return next((c for c in batch if c.accepted), batch[0])

    return choose


def _oracle_chooser() -> Chooser | None:
    """Oracle-greedy (true effects, fatigue, near-duplicates), when the sandbox ships it
    (``xbot_assets/sandbox/oracle_greedy.py``): one candidate per arm, the best by truth."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("xbot_assets.sandbox.oracle_greedy") is None:
        return None
    oracle = importlib.import_module("xbot_assets.sandbox.oracle_greedy")
    choice = getattr(oracle, "oracle_greedy_choice", None)
    if choice is None:
        return None
    from xbot_assets.content.candidates import generate_candidates
    from xbot_assets.content.offline import OfflineGenerator

    generator = OfflineGenerator()

    def choose(sandbox: Any, i: int, arms: list[str], recent: list[str], when: datetime) -> Any:
        pool: list[Any] = []
        for k, arm in enumerate(arms):
            batch = generate_candidates(
                generator, arm, n=1, base_seed=20_000 + i * 100 + k, recent=recent
            )
            pool.extend(c for c in batch if c.accepted and c.parts)
        if not pool:
            return None
        texts = [(c.parts[0], len(c.parts) > 1) for c in pool]
        best, _values = choice(sandbox, texts, REWARD_WEIGHTS, at=when)
        return pool[best]

    return choose


def replay_policy(
    settings: Settings, name: str, bot: list[PostTruth], arms: list[str], choose: Chooser
) -> Replay:
    """Post ``choose``'s pick at each of the bot's posting times in a fresh sandbox of the same
    scenario and seed; score each with the sandbox's truth (and its metrics at the bot's age)."""
    from xbot_assets.sandbox import SandboxX, SimClock

    if not bot:
        return Replay(name, [], [])
    sandbox = SandboxX(settings.sandbox_scenario, settings.sandbox_seed, SimClock(bot[0].posted_at))
    account = sandbox.account()
    recent: list[str] = []
    made: list[tuple[str, PostTruth]] = []
    for i, post in enumerate(bot):
        sandbox.clock.set(post.posted_at)
        chosen = choose(sandbox, i, arms, recent, post.posted_at)
        if chosen is None or not chosen.parts:
            continue
        body = sandbox.create_tweet(chosen.parts[0], token=account.user_token)
        root = str(body["data"]["id"])
        parent = root
        for part in chosen.parts[1:]:
            reply = sandbox.create_tweet(part, parent, token=account.user_token)
            parent = str(reply["data"]["id"])
        recent.extend(chosen.parts)
        made.append((root, post))
    expected = [sandbox.expected_reward(root, REWARD_WEIGHTS) for root, _ in made]
    measured = [(root, p) for root, p in made if p.measured_at is not None]
    realised: list[float] = []
    if measured:
        sandbox.clock.set(max(p.measured_at for _, p in measured if p.measured_at is not None))
        for root, post in measured:
            metrics = sandbox.post_metrics(root, at=post.measured_at)
            realised.append(engagement_reward(metrics))
    return Replay(name, expected, realised)


def random_policy_rewards(
    settings: Settings, bot: list[PostReward], arms: list[str]
) -> list[float]:
    """Realised rewards of a uniformly random policy replayed at the bot's measured posts'
    times, each measured at the same age as the bot's snapshot (noisy: see ``replay_policy``)."""
    truths = [PostTruth(r.post_id, r.arm, r.posted_at, 0.0, r.collected_at, r.reward) for r in bot]
    return replay_policy(
        settings, "random", truths, arms, _random_chooser(settings.sandbox_seed)
    ).realised


@dataclass(frozen=True)
class PostTruth:
    """One posted root post of the bot: its expected reward by the sandbox's truth and, when
    measured, its realised reward (latest snapshot)."""

    post_id: int
    arm: str
    posted_at: datetime
    expected: float
    measured_at: datetime | None
    realised: float | None


def bot_truth(store: Any, sandbox: Any, account_id: int, since: datetime) -> list[PostTruth]:
    """The account's posted root posts since ``since`` with their expected reward (truth, for
    evaluation only) and realised reward, oldest first."""
    realised = {r.post_id: r for r in bot_rewards(store, since=since, account_id=account_id)}
    out: list[PostTruth] = []
    for post in store.list_posts(account_id, status="posted", limit=100_000):
        if post.thread_position != 0 or post.posted_at is None or post.posted_at < since:
            continue
        if not post.x_id:
            continue
        snap = realised.get(post.id)
        out.append(
            PostTruth(
                post_id=post.id,
                arm=post.arm or "unknown",
                posted_at=post.posted_at,
                expected=sandbox.expected_reward(post.x_id, REWARD_WEIGHTS),
                measured_at=snap.collected_at if snap else None,
                realised=snap.reward if snap else None,
            )
        )
    return sorted(out, key=lambda t: (t.posted_at, t.post_id))


def paired_difference(a: list[float], b: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of ``a - b`` over pairs with a t interval (pairs share a posting time), and the lift
    ``mean(a) / mean(b) - 1`` with the same interval scaled by ``mean(b)`` (``b``'s mean taken
    as known: a slightly narrow interval for the lift)."""
    from scipy import stats

    n = min(len(a), len(b))
    out: dict[str, Any] = {"n": n, "diff": None, "low": None, "high": None, "t": None}
    out.update({"lift": None, "lift_low": None, "lift_high": None})
    if n < 2:
        return out
    d = np.asarray(a[:n]) - np.asarray(b[:n])
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    out.update(
        {"diff": mean, "low": mean - half, "high": mean + half, "level": level,
         "t": mean / (sd / np.sqrt(n)) if sd > 0 else None}
    )  # fmt: skip
    base = float(np.mean(b[:n]))
    if base > 0:
        out.update(
            {"lift": mean / base, "lift_low": (mean - half) / base,
             "lift_high": (mean + half) / base}
        )  # fmt: skip
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def summarise(
    settings: Settings, store: Any, *, since: datetime, until: datetime
) -> dict[str, Any]:
    """The figures the main job prints and reports, read back from the store and scored with
    the sandbox's truth (evaluation only: no decision path reads it)."""
    from xbot_assets.engine.decide import load_models
    from xbot_assets.engine.planner import hour_scheduler
    from xbot_assets.engine.runtime import shared_sandbox

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
    arms = list(models.arms)
    primary_id = _primary_id(store, settings)
    primary = bot_rewards(store, since=since, account_id=primary_id)
    truth = (
        bot_truth(store, shared_sandbox(settings), primary_id, since)
        if primary_id is not None
        else []
    )
    replays = [
        replay_policy(settings, "random", truth, arms, _random_chooser(settings.sandbox_seed))
    ]
    oracle = _oracle_chooser()
    if oracle is not None:
        replays.append(replay_policy(settings, "oracle-greedy", truth, arms, oracle))
    bot_expected = [t.expected for t in truth]
    expected = {"bot": _mean(bot_expected)} | {r.name: _mean(r.expected) for r in replays}
    random_replay = replays[0]
    posts_per_arm: dict[str, int] = {}
    for r in bot:
        posts_per_arm[r.arm] = posts_per_arm.get(r.arm, 0) + 1
    from xbot_assets.engine.history import account_history

    recent = (
        account_history(store, primary_id, before=until, with_metrics=False)
        if primary_id is not None
        else []
    )
    cold, arm_rows = deciding_arms(models, at=until, posts_per_arm=posts_per_arm, history=recent)
    learned = store.get_config("learned", {}) or {}
    hours: list[dict[str, Any]] = []
    if primary_id is not None:
        tz = store.get_account(primary_id).timezone
        slots = hour_scheduler(store, settings, primary_id, tz, seed=0).to_frame()
        slots = slots[~slots["quiet"]].sort_values("mean", ascending=False)
        hours = [
            {"hour": str(r["arm"]), "mean": float(r["mean"]), "trials": float(r["trials"])}
            for _, r in slots.iterrows()
        ]
    bot_primary = [r.reward for r in primary]
    realised_pairs = paired_difference(bot_primary, random_replay.realised)
    return {
        "from": since.isoformat(),
        "until": until.isoformat(),
        "posts": sum(posts_by_account.values()),
        "posts_by_account": posts_by_account,
        "measured_posts": len(bot),
        "snapshots_by_horizon": dict(
            sorted({h: sum(1 for r in bot if r.horizon == h) for h in HORIZON_ORDER}.items())
        ),
        "expected_reward": expected,
        "expected_posts": len(bot_expected),
        "bot_expected": bot_expected,
        "random_expected": random_replay.expected,
        "reference_expected": {r.name: r.expected for r in replays},
        "vs_random": paired_difference(bot_expected, random_replay.expected),
        "vs_oracle": (
            paired_difference(bot_expected, replays[1].expected) if len(replays) > 1 else None
        ),
        "bot_mean_reward": _mean(bot_primary),
        "random_mean_reward": _mean(random_replay.realised),
        "lift_vs_random": realised_pairs["lift"],
        "realised_vs_random": realised_pairs,
        "bot_rewards": bot_primary,
        "random_rewards": random_replay.realised,
        "follows": sum(r.follows for r in primary),
        "posteriors_cold_start": cold,
        "top_arms": arm_rows[:5],
        "posterior_means": {r["arm"]: r["mean"] for r in arm_rows},
        "best_topics": list(learned.get("best_topics", [])),
        "best_slots": hours[:5],
        "all_slots": hours,
    }


def deciding_arms(
    models: Any,
    *,
    at: datetime,
    posts_per_arm: dict[str, int] | None = None,
    history: Sequence[Any] = (),
) -> tuple[bool, list[dict[str, Any]]]:
    """(cold start, arms best first) from the posterior that decides the posts.

    The factored posterior (``factored_posteriors``) decides unless the baseline Beta sampler
    was chosen (``Models.policy``); the report shows that one, so its "COLD START" flag and its
    best arms are those of the model acting, not of the Beta ``arm_posteriors`` (whose cold
    flag stays set while the dbt rebuild has not run, although the factored model has learned).
    A factored arm's value is its expected reward under the posterior (``value_summary``: for
    the count model, its positive events' value plus its negative rates) at ``at`` for a fresh
    text after the account's ``history`` (its recency covariates as the policy would see them;
    with no history, as if nothing had been posted: an extrapolation the count model's log
    scale amplifies), with its posterior SD.
    """
    from xbot_assets.engine.decide import BASELINE_POLICY

    counts = posts_per_arm or {}
    arms = list(models.arms)
    if getattr(models, "policy", None) == BASELINE_POLICY:
        frame = models.sampler.to_frame(arms).sort_values("mean", ascending=False)
        no_evidence = "trials" in frame and float(frame["trials"].sum()) <= 0
        rows = [
            {"arm": str(r["arm"]), "mean": float(r["mean"]), "trials": float(r["trials"])}
            for _, r in frame.iterrows()
        ]
        return bool(no_evidence), rows
    posterior = models.posterior
    pairs = [tuple(a.split(":", 1)) for a in arms]
    design_rows = posterior.design.arm_rows(at, list(history), pairs)
    means, sds = posterior.value_summary(design_rows)
    order = np.argsort(-means, kind="stable")
    rows = [
        {"arm": arms[i], "mean": float(means[i]), "sd": float(sds[i]),
         "trials": float(counts.get(arms[i], 0))}
        for i in order
    ]  # fmt: skip
    return bool(posterior.cold_start), rows


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
    lines = [("bot", summary.get("bot_expected", []))]
    lines += [(f"{k} (same times)", v) for k, v in summary.get("reference_expected", {}).items()]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, values in lines:
        if values:
            cumulative = np.cumsum(values) / np.arange(1, len(values) + 1)
            ax.plot(cumulative, label=name)
    ax.set_xlabel("post")
    ax.set_ylabel("running mean expected reward")
    if any(values for _, values in lines):
        ax.legend()
    images.append(("Expected reward over time (sandbox truth, running mean per post)", _png(fig)))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bot, rnd = summary["bot_rewards"], summary["random_rewards"]
    for name, values in (("bot", bot), ("random policy", rnd)):
        if values:
            cumulative = np.cumsum(values) / np.arange(1, len(values) + 1)
            ax.plot(cumulative, label=name)
    ax.set_xlabel("post")
    ax.set_ylabel("running mean realised reward")
    if bot or rnd:
        ax.legend()
    images.append(("Realised reward (noisy: SD ~0.2 per post)", _png(fig)))
    plt.close(fig)
    means = summary["posterior_means"]
    if means:
        cold = summary.get("posteriors_cold_start")
        fig, ax = plt.subplots(figsize=(8, 5))
        names = list(means)[::-1]
        ax.barh(names, [means[n] for n in names])
        ax.set_xlabel("posterior mean reward per post (the deciding model)")
        title = "Posterior means per arm (format:topic)"
        if cold:
            ax.set_title("COLD START: prior only, no data yet")
            title += " - COLD START: prior only"
        images.append((title, _png(fig)))
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


def _interval(pair: dict[str, Any] | None, key: str = "diff", pct: bool = False) -> str:
    if not pair or pair.get(key) is None:
        return "n/a (fewer than 2 posts)"
    low_key, high_key = ("lift_low", "lift_high") if key == "lift" else ("low", "high")
    level = round(100 * float(pair.get("level", 0.95)))
    if pct:
        return f"{pair[key]:+.0%} ({level}% CI {pair[low_key]:+.0%} to {pair[high_key]:+.0%})"
    return f"{pair[key]:+.4f} ({level}% CI {pair[low_key]:+.4f} to {pair[high_key]:+.4f})"


COLD_START = (
    "COLD START: the deciding posterior has no finished post yet; the arm figures below are "
    "the prior"
)


def summary_lines(result: Any) -> list[str]:
    """The summary the CLI prints."""
    s = result.summary
    expected = s.get("expected_reward", {})
    refs = ", ".join(f"{k} {v:.4f}" for k, v in expected.items() if k != "bot")
    lines = [
        f"simulated {s['from'][:16]} -> {s['until'][:16]} in {result.seconds:.0f} s "
        f"({sum(result.runs_by_job.values())} Dagster runs, {result.deduplicated} de-duplicated "
        f"by run key, {len(result.failed_runs)} failed)",
        f"posts: {s['posts']} ({', '.join(f'@{k} {v}' for k, v in s['posts_by_account'].items())}),"
        f" {s['measured_posts']} measured, {s['follows']} follows",
        f"expected reward per post (sandbox truth, {s.get('expected_posts', 0)} posts): "
        f"bot {expected.get('bot', 0.0):.4f} vs {refs} (same times)",
        f"bot - random (paired): {_interval(s.get('vs_random'))}; lift "
        f"{_interval(s.get('vs_random'), 'lift', pct=True)}",
    ]
    if s.get("vs_oracle"):
        lines.append(f"bot - oracle-greedy (paired): {_interval(s['vs_oracle'])}")
    lines.append(
        f"realised reward per post (noisy, SD ~0.2 a post): bot {s['bot_mean_reward']:.4f} vs "
        f"random {s['random_mean_reward']:.4f}; lift "
        f"{_interval(s.get('realised_vs_random'), 'lift', pct=True)}"
    )
    if s.get("posteriors_cold_start"):
        lines.append(COLD_START)
    lines += [
        "best arms (posterior mean"
        + (", prior only" if s.get("posteriors_cold_start") else "")
        + "): "
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
    write_atomic(
        path,
        "<!doctype html><html><head><meta charset='utf-8'><title>xbot main job</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}"
        "td{padding:2px 8px}</style></head><body>"
        f"<h1>xbot main job: {html.escape(s['from'][:10])} to {html.escape(s['until'][:10])}</h1>"
        + (
            f"<p class='cold'><strong>{html.escape(COLD_START)}</strong></p>"
            if s.get("posteriors_cold_start")
            else ""
        )
        + f"<ul>{rows}</ul><h2>Dagster runs by job</h2><table>{runs}</table>{images}"
        "</body></html>",
    )  # replaced whole: a browser open on the folder never shows half a report
    return path
