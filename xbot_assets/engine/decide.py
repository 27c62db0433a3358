"""Fill open slots: for each, run the content policy and queue the chosen post.

One decision = sample an arm from the latest ``arm_posteriors`` (Thompson sampling, with the
propensity of that choice), generate N candidates for it, guard them, score the accepted ones
with the latest ``engagement_scorer``, pick the best, record every candidate, and queue the
winner with its arm, scores, sampled values and propensity in its metadata, so offline policy
evaluation can re-weight it later. The logic is the learning layer's :class:`ContentPolicy`
and the content layer's :func:`generate_candidates`; this module only wires them to the store.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from xbot_assets.content.candidates import Candidate, generate_candidates, record_candidates
from xbot_assets.content.safety import GuardConfig
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.engine.planner import open_slots, stable_seed
from xbot_assets.engine.runtime import Runtime
from xbot_assets.learning.policy import ContentPolicy, PolicyDecision

log = logging.getLogger(__name__)

DEFAULT_N_CANDIDATES = 5
POLICY_NAME = "thompson_sampling"


@dataclass
class Models:
    """The latest model assets the policy acts with."""

    sampler: Any
    arms: list[str]
    scorer: Any
    posteriors_cold: bool
    scorer_cold: bool


@dataclass
class RefillReport:
    """What one refill did, for the run's metadata."""

    slots: int = 0
    queued: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    candidates: int = 0
    rejected: int = 0
    arms: list[str] = field(default_factory=list)


def load_models(settings: Any) -> Models:
    """The latest ``arm_posteriors`` and ``engagement_scorer`` (uniform prior / base rate when
    they have not been materialised yet: the cold start)."""
    import dagster as dg

    from xbot_assets.defs.learning import load_posteriors, models_dir
    from xbot_assets.learning.bandits import ThompsonSampler
    from xbot_assets.learning.scorer import PriorOnlyScorer, ScorerError, load_scorer

    try:
        sampler, arms = load_posteriors(settings)
        posteriors_cold = False
    except dg.Failure:
        arms = [f"{f}:{t}" for f in FORMATS for t in DEFAULT_TOPICS]
        sampler = ThompsonSampler(len(arms), prior=(1.0, 1.0))
        posteriors_cold = True
    try:
        scorer, info = load_scorer(models_dir(settings) / "engagement_scorer.skops")
        scorer_cold = bool(info.get("cold_start"))
    except ScorerError:
        scorer, scorer_cold = PriorOnlyScorer(0.5), True
    return Models(sampler, arms, scorer, posteriors_cold, scorer_cold)


def decide_slot(
    runtime: Runtime,
    store: Any,
    account_id: int,
    slot: datetime,
    models: Models,
    *,
    generator: Any,
    timezone: str,
    n_candidates: int = DEFAULT_N_CANDIDATES,
    recent: list[str] | None = None,
) -> tuple[PolicyDecision, list[Candidate], Candidate | None]:
    """Run the content policy once for ``slot``; nothing is written here."""
    from xbot_assets.learning.scorer import score_posts

    handle = runtime.handle
    seed = stable_seed(handle, slot.isoformat())
    models.sampler.rng = np.random.default_rng(seed)
    made: list[Candidate] = []

    def generate(*, format: str, topic: str, n: int) -> list[Candidate]:
        batch = generate_candidates(
            generator,
            f"{format}:{topic}",
            n=n,
            base_seed=seed % 1_000_000,
            recent=recent or (),
            guard_config=GuardConfig(),
            topics=sorted({a.split(":", 1)[1] for a in models.arms}),
        )
        made.extend(batch)
        return batch

    def guard(text: str) -> tuple[bool, str]:
        found = next(c for c in made if c.text == text)
        return found.accepted, "; ".join(found.reasons)

    def score(rows: list[dict[str, Any]]) -> np.ndarray:
        return score_posts(models.scorer, rows, timezone=timezone)

    policy = ContentPolicy(
        models.arms,
        models.sampler,
        generate=generate,
        guard=guard,
        score=score,
        n_candidates=n_candidates,
        settings={
            "policy": POLICY_NAME,
            "posteriors_cold_start": models.posteriors_cold,
            "scorer_cold_start": models.scorer_cold,
        },
    )
    decision = policy.decide(now=runtime.now(), slot=slot)
    scored = [
        replace(c, score=r.score) if r.score is not None else c
        for c, r in zip(made, decision.candidates, strict=True)
    ]
    chosen = next((c for c in scored if c.text == decision.chosen_text and c.accepted), None)
    return decision, scored, chosen


def _enqueue(
    store: Any,
    account_id: int,
    decision: PolicyDecision,
    chosen: Candidate,
    batch: str,
    *,
    now: datetime,
) -> list[Any]:
    sampled = decision.sampled_values.get(decision.arm)
    metadata = {
        "policy": POLICY_NAME,
        "propensity": decision.propensity,
        "arm_index": decision.arm_index,
        "sampled_values": decision.sampled_values,
        "decided_at": decision.decided_at.isoformat(),
        "slot": decision.slot.isoformat(),
        "candidate_batch": batch,
        "candidates": len(decision.candidates),
        "generator": chosen.generator,
        "settings": decision.settings,
    }
    scores = {"engagement_scorer": chosen.score, "sampled_value": sampled}
    common: dict[str, Any] = {
        "arm": decision.arm,
        "scheduled_at": decision.slot,
        "score": chosen.score,
        "scores": scores,
        "metadata": metadata,
        "now": now,
    }
    if chosen.is_thread and len(chosen.parts) > 1:
        return list(store.enqueue_thread(account_id, list(chosen.parts), **common))
    return [store.enqueue_post(account_id, chosen.text, **common)]


def refill(
    runtime: Runtime,
    *,
    n_candidates: int = DEFAULT_N_CANDIDATES,
    max_slots: int | None = None,
) -> RefillReport:
    """Fill every open slot of the coming 24 hours for the runtime's account."""
    from xbot_assets.store.errors import DuplicatePostError

    store = runtime.store()
    account_id = runtime.account_id(store)
    timezone = store.get_account(account_id).timezone
    now = runtime.now()
    slots = open_slots(store, runtime.settings, account_id, now=now, timezone=timezone)
    if max_slots is not None:
        slots = slots[:max_slots]
    report = RefillReport(slots=len(slots))
    if not slots:
        return report
    models = load_models(runtime.settings)
    generator = runtime.generator(store)
    recent = [p.text for p in store.list_posts(account_id, limit=50)]
    for slot in slots:
        decision, candidates, chosen = decide_slot(
            runtime,
            store,
            account_id,
            slot,
            models,
            generator=generator,
            timezone=timezone,
            n_candidates=n_candidates,
            recent=recent,
        )
        batch = uuid.uuid4().hex
        report.candidates += len(candidates)
        report.rejected += sum(not c.accepted for c in candidates)
        if chosen is None:
            record_candidates(store, account_id, candidates, batch_id=batch, now=runtime.now())
            report.skipped.append(f"{slot.isoformat()}: {decision.skipped_reason}")
            continue
        try:
            posts = _enqueue(store, account_id, decision, chosen, batch, now=runtime.now())
        except DuplicatePostError:
            record_candidates(store, account_id, candidates, batch_id=batch, now=runtime.now())
            report.skipped.append(f"{slot.isoformat()}: the chosen text was already queued")
            continue
        why = (
            f"best score {chosen.score} of {len(candidates)} for arm {decision.arm} "
            f"(propensity {decision.propensity:.3f})"
        )
        ids = record_candidates(store, account_id, candidates, batch_id=batch, now=runtime.now())
        chosen_id = ids[candidates.index(chosen)]
        store.mark_candidate_chosen(chosen_id, tweet_id=posts[0].id, why=why)
        recent.extend(chosen.parts)
        report.queued.append(int(posts[0].id))
        report.arms.append(decision.arm)
    log.info(
        "refill %s: %s slots, %s queued, %s skipped",
        runtime.handle,
        report.slots,
        len(report.queued),
        len(report.skipped),
    )
    return report
