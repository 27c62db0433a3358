"""Loop benchmark: does the bot's real decision code earn more than random, measured by truth?

Each run plays one policy for N days against a fresh in-process sandbox (scenario + seed) with
the delays of the real loop: 4 posts a day at slot times drawn per (scenario, seed) and shared by
every policy (so "random" is the paired replay at the same times); a post's counts become visible
as snapshots at 1 h / 6 h / 24 h / 72 h; learners refit every 6 h from what is visible then.

Every policy posts as the account can: never the same text twice, however old (the durable
store's unique key on account and content hash, which ``decide_slot`` passes to the candidates as
``known``; the sandbox alone refuses a repeat only within its 168 h duplicate window). A
candidate the account already posted is rejected (``already_posted``, counted per run) before the
choice, so a policy takes the next candidate, or the next arm where it falls back.

Policies (every one posts through the same offline generator and safety guard):
  random            uniform arm, the generator's first accepted candidate
  seed_heuristic    the seed project's heuristic (benchmarks/learning.py), fed 72 h outcomes
  epsilon_greedy    10 % random else best pooled reward per impression, fed 72 h outcomes
  thompson_beta     the independent Beta sampler (learning/engine.py fit_arm_posteriors,
                    engine/decide.py baseline) refit every 6 h from 72 h outcomes
  ours              engine/decide.py decide_post: factored Thompson sampling refit every 6 h
                    from snapshots >= 6 h old (horizon model), candidates ranked by the model
  ours_no_rank      the same, candidates in the generator's order (does ranking gain?)
  oracle_greedy     the reference: what the bot could post if it knew the truth. The arm with
                    the highest true value at the slot (sandbox/oracle_greedy.py on 3 fixed
                    representative texts per arm: topic, format, time, fatigue, novelty), then
                    the truly best of the same N_CANDIDATES candidates the bot gets for that arm
                    (same generator, same seed). Fair: the bot's own choice set.
Diagnostics (benchmarks/README.md "Where the gap to the oracle is"; --diagnose records the truth
of each slot's best arm, chosen arm, candidate batch and choice):
  oracle_greedy_wide  the previous reference: 2 candidates of each of the truly best 3 arms (6
                    candidates over 3 arms, a larger choice set than the bot's 5 in 1 arm)
  oracle_arm        the truly best arm, the generator's first candidate (the arm alone)
  ours_truth_text   ours' arm, then the truly best of its candidates (ours + a perfect ranker)
  random_truth_text uniform arm, the truly best of 5 candidates (the text alone)
  oracle_after_N    random arms (first candidate) for the first N posts (8, 16, 24), then the
                    fair oracle: what a learner must pay if it needed N posts to learn the truth

Metric: the TRUE expected reward per post (``SandboxX.expected_reward`` with REWARD_WEIGHTS),
read only here, after the run decided. Reported per policy: mean over seeds, paired difference
vs random (mean, SD over seeds, t), seeds positive, and the ratio to oracle-greedy.

What the learners see: ``--bot-view real_x`` hides ``negative_feedback`` and ``reports`` from them
(0, as the collector stores them on real X); ``--without-negatives`` is a diagnostic world whose
reward has no negative terms at all (truth and learners alike).

Run:  nice -n 5 .venv/bin/python benchmarks/loop.py               (8 seeds x 30 and 90 days)
      .venv/bin/python benchmarks/loop.py --quick --out /tmp/q.json  (tests: 1 seed, 6 days)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pair import paired  # noqa: E402
from xbot_assets.content.candidates import Candidate, generate_candidates  # noqa: E402
from xbot_assets.content.offline import OfflineGenerator  # noqa: E402
from xbot_assets.content.safety import DUPLICATE_WINDOW  # noqa: E402
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS  # noqa: E402
from xbot_assets.engine.decide import (  # noqa: E402
    BASELINE_POLICY,
    Models,
    decide_post,
    default_arms,
)
from xbot_assets.instigation import next_cron_tick  # noqa: E402
from xbot_assets.learning.design import PastPost  # noqa: E402
from xbot_assets.learning.engine import fit_arm_posteriors  # noqa: E402
from xbot_assets.learning.factored import FitConfig, fit_factored  # noqa: E402
from xbot_assets.learning.horizon import HorizonModel  # noqa: E402
from xbot_assets.learning.objective import reward_of  # noqa: E402
from xbot_assets.learning.policy import MAX_ARMS_TRIED  # noqa: E402
from xbot_assets.learning.rewards import REWARD_WEIGHTS  # noqa: E402
from xbot_assets.runner import STORE_FED_CRON  # noqa: E402
from xbot_assets.sandbox import SandboxX, SimClock  # noqa: E402
from xbot_assets.sandbox.errors import SandboxError  # noqa: E402
from xbot_assets.sandbox.oracle_greedy import oracle_greedy_choice  # noqa: E402
from xbot_assets.store.durable.posts import RECENT_ROWS_AT_LEAST  # noqa: E402
from xbot_assets.store.hot.dedup import content_hash  # noqa: E402
from xbot_assets.warehouse.collector import SANDBOX_ANALYTICS_FIELDS  # noqa: E402

ORACLE_AFTER = ("oracle_after_8", "oracle_after_16", "oracle_after_24")
"""``oracle_after_N``: a learner that knows the truth after N random posts (a bound)."""
POSTS_PER_DAY = 4
REFIT_HOURS = 6
HORIZONS = (("1h", 1.0), ("6h", 6.0), ("24h", 24.0), ("72h", 72.0))
POLICIES = (
    "random",
    "seed_heuristic",
    "epsilon_greedy",
    "thompson_beta",
    "ours",
    "ours_no_rank",
    "oracle_greedy",
    # Diagnostics of the gap to the oracle (benchmarks/README.md "Where the gap is"):
    "oracle_greedy_wide",
    "oracle_arm",
    "ours_truth_text",
    "random_truth_text",
    # Bounds on what learning must cost (README "Closing the gap"): random arms for the first
    # N posts, then the fair oracle (true arm values, best of the same 5 candidates).
    *ORACLE_AFTER,
)
N_CANDIDATES = 5
ARMS = default_arms()
FIT_OVERRIDES: dict[str, Any] = {}
"""``--fit key=value`` settings of ours' FitConfig (experiments; set before workers fork)."""
BOT_VIEWS = ("sandbox", "real_x")
"""What the learners see of a post's counts (``--bot-view``). ``sandbox``: every metric,
including ``negative_feedback`` and ``reports`` from the sandbox's analytics extension.
``real_x``: those two read 0, as the collector stores them on real X, which has no such field
(warehouse/collector.py): the figure a user on real X gets. The truth is the same in both."""
BOT_VIEW = "sandbox"
"""``--bot-view`` (set before workers fork)."""
DECISION_LEAD_HOURS = 0.0
"""``--decision-lead-hours``: decide each slot's post with the learners as they were this long
before it. The product's refill fills every open slot of the coming 24 hours
(``engine/planner.py`` ``PLAN_HORIZON``), so a real post is chosen 2-24 h ahead (mean 16 h in
a real run), with the posteriors of then; 0 decides at the slot (set before workers fork)."""
TIMINGS = ("exact", "collector")
"""``--timing``: when the learners see counts and refit. ``exact``: each post's snapshot at
exactly 1/6/24/72 h, refits every :data:`REFIT_HOURS` from the start. ``collector``: as the
product takes them (``engine/collect.py``): a snapshot is taken when it is due at the 6-hourly
collection (00, 06, 12, 18 UTC) or right after a post goes out, holds the counts *of that
moment* under the due horizon's label (a post first collected 9 h old gets its 1 h and 6 h
snapshots then, both with its 9 h counts), and ``factored_posteriors`` refits at its 4-hourly
cron (``runner.STORE_FED_CRON``). It changes what ``ours`` learns from; the baselines keep their
exact 72 h outcomes."""
TIMING = "exact"
"""``--timing`` (set before workers fork)."""
STREAMS = 1
"""``--streams``: random streams per policy and seed, averaged into the seed's figure. One
learner's month depends on its own draws as much as on the world: on ``default``, 30 days,
the same seed gives ``ours`` 0.069 to 0.099 on four streams (SD about 0.007 a seed), so one
stream a seed adds that noise to every comparison and to a single seed's figure (set before
workers fork)."""
COLLECT_EVERY = timedelta(hours=6)
"""The metrics schedule's period (``collect_account_metrics_schedule``, from 00 UTC)."""


_BENCH: Any = None


def _load_learning_bench() -> Any:
    global _BENCH
    if _BENCH is not None:
        return _BENCH
    spec = importlib.util.spec_from_file_location(
        "_learning_bench", ROOT / "benchmarks" / "learning.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["_learning_bench"] = module
    spec.loader.exec_module(module)
    _BENCH = module
    return module


def slot_times(
    scenario: str, seed: int, days: int, start: datetime, account: int = 0
) -> list[datetime]:
    """4 slot times a day between 08:00 and 22:00 local, spaced >= 2 h, shared by all policies
    (``account`` > 0: another account's own times, for the fleet benchmark)."""
    key = [seed, 0x510, len(scenario)] + ([account] if account else [])
    rng = np.random.default_rng(key)
    out: list[datetime] = []
    for day in range(days):
        base = start + timedelta(days=day)
        while True:
            minutes = np.sort(rng.integers(8 * 60, 22 * 60, POSTS_PER_DAY))
            if np.all(np.diff(minutes) >= 120):
                break
        out.extend(base + timedelta(minutes=int(m)) for m in minutes)
    return out


@dataclass
class Posted:
    post_id: str
    arm: str
    at: datetime
    text: str
    chosen_index: int
    n_accepted: int


@dataclass
class RunResult:
    rewards: list[float] = field(default_factory=list)
    arms: list[str] = field(default_factory=list)
    skipped: int = 0
    fallbacks: int = 0  # slots posted on a later arm of the draw (the drawn ones had run dry)
    already_posted: int = 0  # candidates rejected because the account had posted their text
    chosen_index: list[int] = field(default_factory=list)
    n_accepted: list[int] = field(default_factory=list)
    seconds: float = 0.0
    diagnostics: list[list[float]] = field(default_factory=list)
    days: list[int] = field(default_factory=list)
    """Each post's day of the run (0 = the first), beside ``rewards``: the figures by month."""


MONTH_DAYS = 30
"""The block ``by_month`` averages over: a 90-day run's figure is the mean of three months, so
the months say where a long run's ratio to the oracle comes from (pair.py ``--month``)."""


def by_month(results: list[RunResult]) -> list[float]:
    """Mean expected reward per post in each :data:`MONTH_DAYS` block, the mean over streams."""
    months = max((d // MONTH_DAYS for r in results for d in r.days), default=-1) + 1
    per_stream = [
        [float(np.mean([x for x, d in zip(r.rewards, r.days, strict=True)
                        if d // MONTH_DAYS == m] or [np.nan])) for m in range(months)]
        for r in results
    ]  # fmt: skip
    return [round(float(np.nanmean(col)), 6) for col in zip(*per_stream, strict=True)]


class Loop:
    """One policy's run against a fresh sandbox."""

    def __init__(
        self,
        scenario: str,
        seed: int,
        days: int,
        policy: str,
        diagnose: bool = False,
        *,
        sandbox: SandboxX | None = None,
        handle: str | None = None,
        account_index: int = 0,
        stream: int = 0,
    ) -> None:
        """``sandbox``/``handle``/``account_index``: one account of a fleet sharing a sandbox
        (``benchmarks/loop_fleet.py``); by default the scenario's own account, alone.
        ``stream``: the policy's random stream (``--streams``; 0 is the benchmark's own)."""
        if sandbox is None:
            sandbox = SandboxX(scenario, seed)
            sandbox.clock = SimClock(sandbox.params.start)
        self.sandbox = sandbox
        self.handle = handle
        self.account = self.sandbox.account(handle)
        self.policy = policy
        self.seed = seed
        self.start = self.sandbox.params.start
        self.slots = slot_times(scenario, seed, days, self.start, account_index)
        self.generator = OfflineGenerator()
        extra = [account_index] if account_index else []
        extra += [0x4D, stream] if stream else []
        self.rng = np.random.default_rng([seed, POLICIES.index(policy), 0x100B, *extra])
        self.posted: list[Posted] = []
        self.recent: list[tuple[datetime, str]] = []  # (posted at, text) of every part
        # The durable store's unique key: the content hash of every text the account queued,
        # however old (a repeat is refused for good, not only within X's duplicate window).
        self.hashes: set[str] = set()
        self.fell_back = False  # this slot's decision passed over arms that had run dry
        self.refused: set[tuple[str, int]] = set()  # this slot's (arm, seed) already posted
        self.cache: dict[Any, np.ndarray] = {}
        # --timing collector: post id -> horizon -> (collected at, counts then)
        self.stored: dict[str, dict[str, tuple[datetime, dict[str, int]]]] = {}
        day = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        self.next_collect = day + COLLECT_EVERY * math.ceil((self.start - day) / COLLECT_EVERY)
        self.models: Models | None = None
        self.baseline: Any = None
        self.representative: dict[str, tuple[str, bool]] = {}
        self.representatives: dict[str, list[tuple[str, bool]]] = {}
        self.last_batch: list[Candidate] = []
        self.diagnose = diagnose
        self.fed: int = 0  # posts already fed to the per-post baselines (72 h outcomes)
        if policy in ("seed_heuristic", "epsilon_greedy"):
            bench = _load_learning_bench()
            self.baseline = (
                bench.SeedHeuristic(ARMS, seed + 1)
                if policy == "seed_heuristic"
                else bench.EpsilonGreedy(len(ARMS), seed + 1)
            )

    # --- what the bot can see ---------------------------------------------------------------
    def counts(self, post: Posted, hours: float) -> dict[str, int]:
        """The post's counts ``hours`` after it, as the collector would store them (BOT_VIEW)."""
        return self.counts_at(post, post.at + timedelta(hours=hours))

    def counts_at(self, post: Posted, at: datetime) -> dict[str, int]:
        metrics = self.sandbox.post_metrics(post.post_id, at=at)
        if BOT_VIEW == "real_x":
            metrics.update(dict.fromkeys(SANDBOX_ANALYTICS_FIELDS, 0))
        return metrics

    def collect(self, now: datetime) -> None:
        """``--timing collector``: store every snapshot due at ``now`` with the counts of now."""
        for post in self.posted:
            have = self.stored.setdefault(post.post_id, {})
            due = [h for h, hours in HORIZONS
                   if h not in have and post.at + timedelta(hours=hours) <= now]  # fmt: skip
            if due:
                counts = self.counts_at(post, now)
                for h in due:
                    have[h] = (now, counts)

    def collect_until(self, now: datetime) -> None:
        """Run the 6-hourly collections due up to ``now`` (``--timing collector``)."""
        while self.next_collect <= now:
            self.collect(self.next_collect)
            self.next_collect += COLLECT_EVERY

    def snapshot(self, post: Posted, now: datetime) -> tuple[str, dict[str, int]] | None:
        if TIMING == "collector":
            stored = self.stored.get(post.post_id, {})
            seen = [(h, stored[h][1]) for h, _ in HORIZONS if h in stored and stored[h][0] <= now]
            return seen[-1] if seen else None
        visible = [(h, hours) for h, hours in HORIZONS if post.at + timedelta(hours=hours) <= now]
        if not visible:
            return None
        horizon, hours = visible[-1]
        return horizon, self.counts(post, hours)

    def history(self, now: datetime, *, with_metrics: bool) -> list[PastPost]:
        out = []
        for post in self.posted:
            snap = self.snapshot(post, now) if with_metrics else None
            fmt, topic = post.arm.split(":", 1)
            out.append(
                PastPost(post.at, fmt, topic, post.text, snap[1] if snap else None,
                         snap[0] if snap else None)
            )  # fmt: skip
        return out

    def finals(self, now: datetime) -> pd.DataFrame:
        rows = []
        for post in self.posted:
            if post.at + timedelta(hours=72) > now:
                continue
            metrics = self.counts(post, 72)
            fmt, topic = post.arm.split(":", 1)
            rows.append({**metrics, "arm": post.arm, "format": fmt, "topic": topic,
                         "posted_at": post.at})  # fmt: skip
        return pd.DataFrame(rows)

    # --- refits -----------------------------------------------------------------------------
    def horizon_pairs(self, now: datetime) -> list[tuple[str, Any, Any]]:
        """``(horizon, partial, final)`` counts of the posts complete at ``now``."""
        pairs: list[tuple[str, Any, Any]] = []
        if TIMING == "collector":
            for post in self.posted:
                stored = self.stored.get(post.post_id, {})
                if "72h" in stored and stored["72h"][0] <= now:
                    final = stored["72h"][1]
                    pairs.extend((h, c, final) for h, (_, c) in stored.items() if h != "72h")
            return pairs
        for post in self.posted:
            if post.at + timedelta(hours=72) <= now:
                final = self.counts(post, 72)
                for h, hours in HORIZONS[:-1]:
                    pairs.append((h, self.counts(post, hours), final))
        return pairs

    def use_posterior(self, posterior: Any) -> None:
        """Act on ``posterior`` (ours' Thompson sampling, as ``engine/decide.py`` does)."""
        from xbot_assets.learning.bandits import ThompsonSampler

        self.models = Models(
            posterior, ARMS, ThompsonSampler(len(ARMS)), posteriors_cold=posterior.cold_start,
            candidate_choice=self.policy == "ours",
        )  # fmt: skip

    def refit(self, now: datetime) -> None:
        if self.policy in ("ours", "ours_no_rank", "ours_truth_text"):
            history = self.history(now, with_metrics=True)
            posterior = fit_factored(
                history, now=now, formats=FORMATS, topics=DEFAULT_TOPICS,
                timezone=self.sandbox.params.timezone, config=FitConfig(**FIT_OVERRIDES),
                horizon_model=HorizonModel.fit(self.horizon_pairs(now)), cache=self.cache,
            )  # fmt: skip
            self.use_posterior(posterior)
        elif self.policy == "thompson_beta":
            sampler, _info = fit_arm_posteriors(self.finals(now), ARMS, seed=self.seed)
            posterior = fit_factored([], now=now, formats=FORMATS, topics=DEFAULT_TOPICS)
            self.models = Models(posterior, ARMS, sampler, policy=BASELINE_POLICY)
        elif self.baseline is not None:
            for post in self.posted[self.fed :]:
                if post.at + timedelta(hours=72) > now:
                    break
                metrics = self.counts(post, 72)
                weighted = (reward_of(metrics) or 0.0) * max(metrics["impressions"], 1)
                self.baseline.update(ARMS.index(post.arm), self.fed, "", weighted,
                                     float(metrics["impressions"]))  # fmt: skip
                self.fed += 1

    # --- one slot ---------------------------------------------------------------------------
    def recent_texts(self, slot: datetime) -> list[str]:
        """The parts posted within the guard's duplicate window before ``slot``, and never
        fewer than the 50 newest (as the refill reads them: ``recent_texts_query``)."""
        since = slot - DUPLICATE_WINDOW
        if len(self.recent) >= RECENT_ROWS_AT_LEAST:
            since = min(since, self.recent[-RECENT_ROWS_AT_LEAST][0])
        return [text for at, text in reversed(self.recent) if at >= since]

    def known(self, parts: Sequence[str]) -> bool:
        """Whether the account already queued this text: the store's unique key on (account,
        content hash), with the hash the product computes (``decide_slot``, ``enqueue``)."""
        return content_hash(" ".join(parts)) in self.hashes

    def note_refused(self, candidates: Sequence[Candidate]) -> None:
        """Count this slot's candidates rejected as already posted (once per arm and seed: the
        first-candidate policies regenerate candidate 0 when they ask for more)."""
        self.refused.update(
            (c.arm, c.seed) for c in candidates if "already_posted" in c.verdict.reasons
        )

    def batch(
        self, arm: str, seed: int, slot: datetime, n: int = N_CANDIDATES, *, posting: bool = True
    ) -> list[Candidate]:
        """``n`` guarded candidates for ``arm`` at ``slot``. ``posting``: candidates the policy
        may post, so a text the account already posted is rejected (``already_posted``), as the
        product does; False for the oracles' representative texts, which only value an arm."""
        batch = generate_candidates(
            self.generator, arm, n=n, base_seed=seed, recent=self.recent_texts(slot),
            topics=DEFAULT_TOPICS, known=self.known if posting else None,
        )  # fmt: skip
        if posting:
            self.note_refused(batch)
        return batch

    def choose(self, slot: datetime, index: int) -> tuple[str, Candidate | None, int, int]:
        seed = int(self.rng.integers(1_000_000))
        if self.policy in ("ours", "ours_no_rank", "thompson_beta", "ours_truth_text"):
            assert self.models is not None
            history = self.history(slot, with_metrics=False)
            decision, candidates, chosen = decide_post(
                self.models, slot=slot, now=slot, history=history, generator=self.generator,
                seed=seed, recent=self.recent_texts(slot), n_candidates=N_CANDIDATES,
                known=self.known,
            )  # fmt: skip
            self.note_refused(candidates)
            accepted = [c for c in candidates if c.accepted]
            self.last_batch = accepted
            self.fell_back = bool(decision.exhausted_arms) and chosen is not None
            if self.policy == "ours_truth_text" and accepted:
                pick = int(np.argmax(self.truth(accepted, slot)))
                return decision.arm, accepted[pick], pick, len(accepted)
            pos = accepted.index(chosen) if chosen in accepted else -1
            return decision.arm, chosen, pos, len(accepted)
        if self.policy == "oracle_greedy_wide":
            return self.oracle_choice(slot, seed)
        informed = self.policy in ORACLE_AFTER and len(self.posted) >= int(
            self.policy.rsplit("_", 1)[1]
        )
        if self.policy in ("oracle_greedy",) or informed:
            # As the bot does (learning/policy.py MAX_ARMS_TRIED): an arm with no candidate
            # that passes the guard is passed over for the next truly best one.
            order = np.argsort(-self.arm_values(slot), kind="stable")[:MAX_ARMS_TRIED]
            for tried, i in enumerate(order):
                arm = ARMS[int(i)]
                accepted = [c for c in self.batch(arm, seed, slot) if c.accepted]
                if accepted:
                    self.fell_back = tried > 0
                    break
            self.last_batch = accepted
            if not accepted:
                return arm, None, 0, 0
            pick = int(np.argmax(self.truth(accepted, slot)))
            return arm, accepted[pick], pick, len(accepted)
        if self.policy == "oracle_arm":
            arm = ARMS[int(np.argmax(self.arm_values(slot)))]
        elif self.policy in ("random", "random_truth_text", *ORACLE_AFTER):
            arm = ARMS[int(self.rng.integers(len(ARMS)))]
        else:
            arm = ARMS[self.baseline.select(index, "")]
        if self.policy == "random_truth_text":
            accepted = [c for c in self.batch(arm, seed, slot) if c.accepted]
            self.last_batch = accepted
            if not accepted:
                return arm, None, 0, 0
            pick = int(np.argmax(self.truth(accepted, slot)))
            return arm, accepted[pick], pick, len(accepted)
        # The generator's first accepted candidate (ask for more only when the first fails).
        for n in (1, 3):
            accepted = [c for c in self.batch(arm, seed, slot, n=n) if c.accepted]
            if accepted:
                return arm, accepted[0], 0, len(accepted)
        return arm, None, 0, 0

    # --- the truth, for the reference policies and the diagnostics only --------------------
    def truth(self, candidates: list[Candidate], slot: datetime) -> np.ndarray:
        """True expected reward of each candidate if posted at ``slot`` (never seen by ours)."""
        _, values = oracle_greedy_choice(
            self.sandbox, [(c.parts[0], c.is_thread) for c in candidates], REWARD_WEIGHTS,
            handle=self.handle, at=slot,
        )  # fmt: skip
        return values

    def arm_values(self, slot: datetime) -> np.ndarray:
        """True value of each arm at ``slot``: the mean over 3 fixed representative texts of it
        (topic, format, time, fatigue and novelty; the text effects averaged over 3 texts)."""
        if not self.representatives:
            for arm in ARMS:
                texts = []
                for k in range(3):
                    batch = [
                        c
                        for c in self.batch(arm, 7_000_000 + k, slot, n=1, posting=False)
                        if c.accepted
                    ]
                    if batch:
                        texts.append((batch[0].parts[0], batch[0].is_thread))
                self.representatives[arm] = texts
        values = np.full(len(ARMS), -np.inf)
        for i, arm in enumerate(ARMS):
            texts = self.representatives[arm]
            if texts:
                _, truth = oracle_greedy_choice(
                    self.sandbox, texts, REWARD_WEIGHTS, handle=self.handle, at=slot
                )
                values[i] = float(truth.mean())
        return values

    def diagnostics(self, slot: datetime, arm: str, chosen: Candidate) -> list[float]:
        """Truth at the slot, before posting: [best arm, chosen arm, batch mean, batch best,
        chosen text] (arm values: mean of 3 representative texts; batch: the accepted
        candidates the policy chose among, or the chosen one alone)."""
        arms = self.arm_values(slot)
        batch = self.last_batch or [chosen]
        values = self.truth(batch, slot)
        mine = float(self.truth([chosen], slot)[0])
        return [float(arms.max()), float(arms[ARMS.index(arm)]), float(values.mean()),
                float(values.max()), mine]  # fmt: skip

    def oracle_choice(self, slot: datetime, seed: int) -> tuple[str, Candidate | None, int, int]:
        """``oracle_greedy_wide`` (the reference until 6 December 2026): truth-greedy in two
        stages. Rank every arm by the true value of one representative text of it at the slot
        (fatigue, novelty, time), then generate 2 fresh candidates for each of the best 3 arms
        and post the one with the highest true value (6 candidates over 3 arms)."""
        if not self.representative:
            for arm in ARMS:
                batch = [
                    c for c in self.batch(arm, 7_000_000, slot, n=2, posting=False) if c.accepted
                ]
                self.representative[arm] = (batch[0].parts[0], batch[0].is_thread)
        _, values = oracle_greedy_choice(
            self.sandbox, [self.representative[a] for a in ARMS], REWARD_WEIGHTS,
            handle=self.handle, at=slot,
        )  # fmt: skip
        best: tuple[float, str, Candidate | None, int, int] = (-math.inf, ARMS[0], None, -1, 0)
        for i in np.argsort(-values)[:3]:
            arm = ARMS[int(i)]
            accepted = [c for c in self.batch(arm, seed, slot, n=2) if c.accepted]
            if not accepted:
                continue
            pick, cand_values = oracle_greedy_choice(
                self.sandbox, [(c.parts[0], c.is_thread) for c in accepted], REWARD_WEIGHTS,
                handle=self.handle, at=slot,
            )  # fmt: skip
            if cand_values[pick] > best[0]:
                best = (float(cand_values[pick]), arm, accepted[pick], pick, len(accepted))
        return best[1], best[2], best[3], best[4]

    def post(self, slot: datetime, arm: str, chosen: Candidate, pos: int, n_acc: int) -> bool:
        self.sandbox.clock.set(slot)
        # Queued before it is posted, as enqueue does: the hash stays known even if X refuses.
        self.hashes.add(content_hash(" ".join(chosen.parts)))
        token = self.account.user_token
        try:
            body = self.sandbox.create_tweet(chosen.parts[0], token=token)
            root = str(body["data"]["id"])
            parent = root
            for part in chosen.parts[1:]:
                parent = str(self.sandbox.create_tweet(part, parent, token=token)["data"]["id"])
        except SandboxError:
            return False
        self.posted.append(Posted(root, arm, slot, chosen.parts[0], pos, n_acc))
        self.recent.extend((slot, part) for part in chosen.parts)
        return True

    def run(self) -> RunResult:
        result = RunResult()
        started = time.process_time()
        next_refit = self.start
        lead = timedelta(hours=DECISION_LEAD_HOURS)
        for index, slot in enumerate(self.slots):
            # The learners as they were ``lead`` before the slot (at least the first fit).
            while next_refit <= max(slot - lead, self.start):
                if TIMING == "collector":
                    self.collect_until(next_refit)
                self.refit(next_refit)
                next_refit = self.after_refit(next_refit)
            if TIMING == "collector":
                self.collect_until(slot)
            self.play(index, slot, result)
            if TIMING == "collector":
                self.collect(slot)  # the posting run collects right after it posts
        result.seconds = time.process_time() - started
        return result

    def after_refit(self, at: datetime) -> datetime:
        """The next refit: :data:`REFIT_HOURS` later, or (``--timing collector``) the next tick
        of ``factored_posteriors``' cron."""
        if TIMING == "collector":
            return next_cron_tick(STORE_FED_CRON, at)
        return at + timedelta(hours=REFIT_HOURS)

    def play(self, index: int, slot: datetime, result: RunResult) -> None:
        """Choose and post the slot's post; record its truth (read after the decision)."""
        self.last_batch, self.fell_back, self.refused = [], False, set()
        arm, chosen, pos, n_acc = self.choose(slot, index)
        result.fallbacks += self.fell_back
        result.already_posted += len(self.refused)
        if self.diagnose and chosen is not None:
            result.diagnostics.append(self.diagnostics(slot, arm, chosen))
        if chosen is None or not self.post(slot, arm, chosen, pos, n_acc):
            result.skipped += 1
            return
        post = self.posted[-1]
        result.rewards.append(self.sandbox.expected_reward(post.post_id, REWARD_WEIGHTS))
        result.days.append((post.at - self.start).days)
        result.arms.append(arm)
        result.chosen_index.append(pos)
        result.n_accepted.append(n_acc)


def run_job(job: tuple[str, int, int, tuple[str, ...], bool]) -> dict[str, Any]:
    scenario, seed, days, policies, diagnose = job
    out: dict[str, Any] = {}
    for policy in policies:
        streams = [
            Loop(scenario, seed, days, policy, diagnose, stream=k).run() for k in range(STREAMS)
        ]
        means = [float(np.mean(r.rewards)) if r.rewards else float("nan") for r in streams]
        shares = [Counter(r.arms).most_common(1)[0][1] / len(r.arms) for r in streams if r.arms]
        out[policy] = {
            # the seed's figure: the mean over its learner streams (one stream: that stream's)
            "mean_expected_reward": float(np.mean(means)),
            "posts": sum(len(r.rewards) for r in streams),
            "skipped": sum(r.skipped for r in streams),
            "fallbacks": sum(r.fallbacks for r in streams),
            "already_posted": sum(r.already_posted for r in streams),
            "top_arm_share": round(float(np.mean(shares)), 3) if shares else 0,
            "chosen_index": [i for r in streams for i in r.chosen_index],
            "n_accepted": [n for r in streams for n in r.n_accepted],
            "cpu_seconds": round(sum(r.seconds for r in streams), 2),
            "streams": STREAMS,
            "by_month": by_month(streams),
        }
        if STREAMS > 1:
            out[policy]["per_stream"] = [round(m, 6) for m in means]
        diagnostics = [row for r in streams for row in r.diagnostics]
        if diagnostics:
            d = np.array(diagnostics)
            out[policy]["diagnostics"] = {
                "best_arm": float(d[:, 0].mean()),
                "chosen_arm": float(d[:, 1].mean()),
                "batch_mean": float(d[:, 2].mean()),
                "batch_best": float(d[:, 3].mean()),
                "chosen_text": float(d[:, 4].mean()),
            }
    return {"scenario": scenario, "seed": seed, "days": days, "policies": out}


def summarise(runs: list[dict[str, Any]], policies: tuple[str, ...]) -> dict[str, Any]:
    per = {p: np.array([r["policies"][p]["mean_expected_reward"] for r in runs]) for p in policies}
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "policies": {}}
    oracle = per.get("oracle_greedy")
    for p in policies:
        values = per[p]
        entry: dict[str, Any] = {
            "mean": round(float(values.mean()), 5),
            "per_seed": [round(float(v), 5) for v in values],
        }
        if p != "random" and "random" in per:
            diff = values - per["random"]
            stats = paired(diff)  # the paired statistics pair.py and loop_fleet.py report
            entry.update(
                diff_vs_random=stats["mean"],
                diff_sd=round(float(diff.std(ddof=1)), 5) if len(diff) > 1 else None,
                t=stats["t"],
                seeds_positive=stats["seeds_positive"],
            )
        if oracle is not None:
            entry["ratio_to_oracle"] = round(float(values.mean() / oracle.mean()), 4)
        if "thompson_beta" in per and p != "thompson_beta":
            entry["diff_vs_thompson_beta"] = round(float((values - per["thompson_beta"]).mean()), 5)
        indices = [i for r in runs for i in r["policies"][p]["chosen_index"]]
        multi = [
            i
            for r in runs
            for i, n in zip(
                r["policies"][p]["chosen_index"], r["policies"][p]["n_accepted"], strict=True
            )
            if n > 1
        ]
        if multi:
            entry["candidate_index_share"] = {
                str(k): round(v / len(multi), 3) for k, v in sorted(Counter(multi).items())
            }
        entry["posts"] = int(np.sum([r["policies"][p]["posts"] for r in runs]))
        entry["skipped"] = int(np.sum([r["policies"][p]["skipped"] for r in runs]))
        entry["fallbacks"] = int(np.sum([r["policies"][p].get("fallbacks", 0) for r in runs]))
        entry["already_posted"] = int(
            np.sum([r["policies"][p].get("already_posted", 0) for r in runs])
        )
        entry["top_arm_share"] = round(
            float(np.mean([r["policies"][p]["top_arm_share"] for r in runs])), 3
        )
        entry["cpu_seconds"] = round(
            float(np.sum([r["policies"][p]["cpu_seconds"] for r in runs])), 1
        )
        del indices
        diags = [r["policies"][p].get("diagnostics") for r in runs]
        if all(diags):
            entry["diagnostics"] = {
                k: round(float(np.mean([d[k] for d in diags])), 5) for k in diags[0]
            }
        out["policies"][p] = entry
    return out


def goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's done-when targets, each with the measured figures and whether it holds
    (only for the runs that include ``ours``: a bound or diagnostic run has no targets)."""
    found = []
    d30 = summary.get("default:30")
    if d30 and "ours" in d30["policies"]:
        o = d30["policies"]["ours"]
        ratio = o.get("ratio_to_oracle") or 0.0
        found.append(
            {
                "goal": "default 30 d: ours - random >= +0.008, t >= 3, >= 7/8 up, /oracle >= 0.90",
                "diff": o["diff_vs_random"],
                "t": o["t"],
                "seeds_positive": o["seeds_positive"],
                "ratio_to_oracle": o.get("ratio_to_oracle"),
                "met": bool(
                    o["diff_vs_random"] >= 0.008
                    and (o["t"] or 0) >= 3
                    and o["seeds_positive"] >= 7
                    and ratio >= 0.90
                ),
            }
        )
    d90 = summary.get("default:90")
    if d90 and "ours" in d90["policies"]:
        o = d90["policies"]["ours"]
        found.append(
            {
                "goal": "default 90 d: ours / oracle >= 0.95",
                "ratio_to_oracle": o.get("ratio_to_oracle"),
                "met": bool((o.get("ratio_to_oracle") or 0.0) >= 0.95),
            }
        )
    for scenario in ("drift", "cold_start"):
        s = summary.get(f"{scenario}:30")
        if s and "ours" in s["policies"]:
            o = s["policies"]["ours"]
            vs_ts = o.get("diff_vs_thompson_beta")
            found.append(
                {
                    "goal": f"{scenario} 30 d: ours > random in >= 6/8 seeds, beats thompson_beta",
                    "seeds_positive": o["seeds_positive"],
                    "diff_vs_thompson_beta": vs_ts,
                    "met": bool(o["seeds_positive"] >= 6 and (vs_ts or 0) > 0),
                }
            )
    return found


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(summary)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pols = summary[key]["policies"]
        names = list(pols)
        means = [pols[n]["mean"] for n in names]
        per_seed = [pols[n]["per_seed"] for n in names]
        ax.bar(range(len(names)), means, color="#8aa")
        for i, vals in enumerate(per_seed):
            ax.scatter([i] * len(vals), vals, s=8, color="k", zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        lo = min(min(v) for v in per_seed)
        ax.set_ylim(lo * 0.9, max(max(v) for v in per_seed) * 1.03)
        ax.set_title(key.replace(":", ", ") + " days", fontsize=9)
        ax.set_ylabel("true expected reward per post")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prior_overrides(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with a population prior file applied (``--prior``): the FitConfig fields
    it sets, as LEARNING_PRIOR_FILE sets them in the product (``engine/refit.fit_setup``)."""
    from xbot_assets.learning.population_prior import load_prior

    applied = load_prior(path).fit_config(FitConfig(**overrides))
    default = FitConfig()
    return {k: v for k, v in applied.__dict__.items() if v != getattr(default, k)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 6 days, default only")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument(
        "--first-seed", type=int, default=0,
        help="seeds run from this one (a confirmation on seeds the screens never saw: 8)",
    )  # fmt: skip
    parser.add_argument("--days", default="30,90", help="comma-separated run lengths")
    parser.add_argument("--scenarios", default="default,drift,cold_start")
    parser.add_argument("--long-scenarios", default="default", help="scenarios run at > 30 days")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loop.json")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="record the truth of each slot's best arm, chosen arm, candidates and choice",
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs of <out>.partial.json, run the rest"
    )
    parser.add_argument(
        "--seeds-done-only",
        action="store_true",
        help="summarise <out>.partial.json as it is (seeds finished so far), run nothing",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        help="raw runs (a <out>.partial.json) whose --reuse-policies results are copied, not rerun"
        " (the loop is deterministic per scenario, seed and policy: only changed policies rerun)",
    )
    parser.add_argument("--reuse-policies", default="", help="comma-separated policies to copy")
    parser.add_argument(
        "--prior",
        type=Path,
        default=None,
        help="a population prior (xbot prior fit, or benchmarks/loop_population_prior.py) that "
        "centres ours' fit, as LEARNING_PRIOR_FILE does in the product",
    )
    parser.add_argument(
        "--fit",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a FitConfig field of ours (experiments), e.g. arm_interactions=true",
    )
    parser.add_argument(
        "--bot-view",
        choices=BOT_VIEWS,
        default="sandbox",
        help="real_x: the learners see negative_feedback and reports as 0, as on real X",
    )
    parser.add_argument(
        "--without-negatives",
        action="store_true",
        help="diagnostic world: the negative metrics weigh 0 in the reward (truth and bot alike)",
    )
    parser.add_argument(
        "--decision-lead-hours",
        type=float,
        default=0.0,
        help="decide each post with the learners as they were this long before its slot "
        "(the real refill decides up to 24 h ahead; default 0: at the slot)",
    )
    parser.add_argument(
        "--timing",
        choices=TIMINGS,
        default="exact",
        help="collector: snapshots when the product's collector takes them (6-hourly and after "
        "each post, counts of that moment) and refits at the 4-hourly cron; exact: at 1/6/24/72 h",
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=1,
        help="random streams per policy and seed (each seed's figure is their mean; 1: the "
        "benchmark's own stream, as before)",
    )
    args = parser.parse_args(argv)
    global BOT_VIEW, DECISION_LEAD_HOURS, TIMING, STREAMS
    BOT_VIEW = args.bot_view
    TIMING = args.timing
    if not 1 <= args.streams <= 64:
        parser.error("--streams must be a whole number from 1 to 64")
    STREAMS = args.streams
    if args.seeds < 1 or args.first_seed < 0:
        parser.error("--seeds must be 1 or more and --first-seed 0 or more (seeds 0-7 are scored)")
    if not 0 <= args.decision_lead_hours <= 24 * 30:  # also refuses nan and inf
        parser.error("--decision-lead-hours must be a number of hours from 0 to 720")
    DECISION_LEAD_HOURS = args.decision_lead_hours
    if args.without_negatives:
        if args.reuse is not None:
            parser.error("--without-negatives changes every policy's truth: it cannot --reuse")
        # Process-wide on purpose (the workers fork after this): the weights are the one
        # definition every learner and the truth read, so the world has no negative terms.
        for name in SANDBOX_ANALYTICS_FIELDS:
            REWARD_WEIGHTS[name] = 0.0
    reads_counts = {
        p for p in (q for q in args.reuse_policies.split(",") if q)
        if p not in ("random", "random_truth_text") and not p.startswith("oracle")
    }  # fmt: skip
    changed = [f"--bot-view {BOT_VIEW}"] if BOT_VIEW != "sandbox" else []
    changed += [f"--timing {TIMING}"] if TIMING != "exact" else []
    if changed and reads_counts:
        parser.error(
            f"{' and '.join(changed)} changes what {sorted(reads_counts)} learn from: rerun "
            "them (only random and the oracle policies, which read no counts, can be reused)"
        )
    for item in args.fit:
        key, _, value = item.partition("=")
        FIT_OVERRIDES[key] = json.loads(value)
    unknown_fit = set(FIT_OVERRIDES) - set(FitConfig.__dataclass_fields__)
    if unknown_fit:
        parser.error(f"unknown --fit keys {sorted(unknown_fit)}")
    if args.prior is not None:
        from xbot_assets.learning.population_prior import PriorError

        try:
            FIT_OVERRIDES.update(prior_overrides(args.prior, FIT_OVERRIDES))
        except PriorError as exc:
            parser.error(str(exc))
    policies = tuple(p for p in args.policies.split(",") if p)
    unknown = set(policies) - set(POLICIES)
    if unknown:
        parser.error(f"unknown policies {sorted(unknown)}: choose from {', '.join(POLICIES)}")
    if "random" not in policies:
        policies = ("random", *policies)  # the paired reference is always run
    if args.quick:
        seeds, days_list, scenarios = [0], [6], ["default"]
        long_scenarios: set[str] = set()
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        days_list = [int(d) for d in args.days.split(",")]
        scenarios = args.scenarios.split(",")
        long_scenarios = set(args.long_scenarios.split(","))
    jobs = [
        (scenario, seed, days, policies, args.diagnose)
        for days in days_list
        for scenario in scenarios
        if days <= 30 or scenario in long_scenarios or args.quick
        for seed in seeds
    ]
    started = time.time()
    partial = args.out.with_suffix(".partial.json")
    runs: list[dict[str, Any]] = []
    if args.seeds_done_only:
        jobs = []
        args.resume = True
    if args.resume and partial.exists():
        runs = json.loads(partial.read_text())
        done = {(r["scenario"], r["seed"], r["days"]) for r in runs}
        jobs = [j for j in jobs if (j[0], j[1], j[2]) not in done]
    reused: dict[tuple[str, int, int], dict[str, Any]] = {}
    copy = tuple(p for p in args.reuse_policies.split(",") if p)
    if args.reuse is not None and copy:
        for run in json.loads(args.reuse.read_text()):
            if all(p in run["policies"] for p in copy):
                kept = {run["policies"][p].get("streams", 1) for p in copy}
                if kept != {STREAMS}:
                    parser.error(
                        f"--reuse {args.reuse}: its runs have {sorted(kept)} stream(s) a seed, "
                        f"this run {STREAMS}: rerun with --streams {min(kept)} or without --reuse"
                    )
                key = (run["scenario"], run["seed"], run["days"])
                reused[key] = {p: run["policies"][p] for p in copy}
        jobs = [
            (j[0], j[1], j[2], tuple(p for p in j[3] if p not in copy), j[4])
            if (j[0], j[1], j[2]) in reused
            else j
            for j in jobs
        ]
    ordered = sorted(jobs, key=lambda j: (-j[2], j[1], j[0]))
    if args.processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            for run in pool.imap_unordered(run_job, ordered, chunksize=1):
                runs.append(run)
                partial.write_text(json.dumps(runs))  # a long run can be summarised early
    else:
        for job in ordered:
            runs.append(run_job(job))
            partial.write_text(json.dumps(runs))
    for run in runs:
        for p, entry in reused.get((run["scenario"], run["seed"], run["days"]), {}).items():
            run["policies"].setdefault(p, {**entry, "reused_from": str(args.reuse)})
    summary: dict[str, Any] = {}
    for days in days_list:
        for scenario in scenarios:
            group = sorted(
                (r for r in runs if r["scenario"] == scenario and r["days"] == days),
                key=lambda r: r["seed"],
            )
            if group:
                summary[f"{scenario}:{days}"] = summarise(group, policies)
    results: dict[str, Any] = {
        "benchmark": "loop",
        "mode": "quick" if args.quick else "full",
        "metric": "true expected reward per post (SandboxX.expected_reward, REWARD_WEIGHTS)",
        "posts_per_day": POSTS_PER_DAY,
        "refit_hours": REFIT_HOURS,
        "candidates_per_batch": N_CANDIDATES,
        "summary": summary,
        "goals": goals(summary),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "benchmarks/loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "fit_config": {**FitConfig().__dict__, **FIT_OVERRIDES},
        "prior": str(args.prior) if args.prior is not None else None,
        "bot_view": BOT_VIEW,
        "decision_lead_hours": DECISION_LEAD_HOURS,
        "timing": TIMING,
        "streams": STREAMS,
        "reward_weights": dict(REWARD_WEIGHTS),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    if not args.no_plot:
        plot(summary, args.out.with_suffix(".png"))
    for key, s in summary.items():
        print(key)
        for p, e in s["policies"].items():
            print(
                f"  {p:15s} {e['mean']:.5f}  diff {e.get('diff_vs_random', 0):+.5f} "
                f"t {e.get('t')} up {e.get('seeds_positive')} /oracle {e.get('ratio_to_oracle')}"
            )
            if "diagnostics" in e:
                print("      " + "  ".join(f"{k} {v:.4f}" for k, v in e["diagnostics"].items()))
    for g in results["goals"]:
        print(("MET  " if g["met"] else "MISS ") + g["goal"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
