"""Fill open slots: for each, run the content policy and queue the chosen post.

One decision = Thompson sampling over the factored posterior (``factored_posteriors``: draw the
format, topic, time, recency and text effects, score every arm at the slot against the account's
real history, pick the best, with the propensity of that choice), generate N candidates for it,
guard them, rank the accepted ones with the same coefficient draw (their text covariates:
similarity to the last posts, length, hashtags, ...), record every candidate, and queue the
winner with its arm, sampled values and propensity in its metadata. The logic is the learning
layer's :class:`ContentPolicy` / :class:`FactoredThompson` and the content layer's
:func:`generate_candidates`; this module only wires them to the store.

:func:`decide_post` is the store-free core (the loop benchmark calls it directly, so what the
benchmark measures is what the jobs run). The independent Beta sampler stays as the
``thompson_beta`` baseline (``Models.policy``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from xbot_assets.content.candidates import (
    Candidate,
    Known,
    generate_candidates,
    record_candidates,
)
from xbot_assets.content.factory import build_guard_config, build_moderator
from xbot_assets.content.safety import DUPLICATE_WINDOW, GuardConfig, Moderator
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, FORMATS
from xbot_assets.engine.history import account_history
from xbot_assets.engine.planner import open_slots, stable_seed
from xbot_assets.engine.runtime import Runtime
from xbot_assets.learning.design import PastPost
from xbot_assets.learning.factored import FitConfig, fit_factored
from xbot_assets.learning.policy import ContentPolicy, PolicyDecision
from xbot_assets.learning.posterior import FactoredPosterior, FactoredThompson

log = logging.getLogger(__name__)

DEFAULT_N_CANDIDATES = 5
POLICY_NAME = "factored_thompson"
BASELINE_POLICY = "thompson_beta"
CANDIDATE_CHOICE = True
"""Rank a batch's candidates with the model's text covariates (False: the generator's order).
Kept on because the loop benchmark measures a gain from it (benchmarks/README.md)."""


@dataclass
class Models:
    """The latest model assets the policy acts with.

    Attributes:
        posterior: the factored posterior (the prior when ``posteriors_cold``).
        arms: ``format:topic`` arms the policy chooses among.
        sampler: the independent Beta sampler (the ``thompson_beta`` baseline and reports).
        scorer: the engagement scorer when its held-out AUC passed the floor, else None
            (reported by its asset; the decision ranks candidates with the posterior).
        policy: ``factored_thompson`` (default) or ``thompson_beta`` (the baseline).
        objective: ``engagement`` or ``growth``.
        candidate_choice: rank candidates with the posterior's text covariates.
        posterior_file: which file ``posterior`` was loaded from.
    """

    posterior: FactoredPosterior
    arms: list[str]
    sampler: Any
    scorer: Any = None
    posteriors_cold: bool = True
    scorer_cold: bool = True
    policy: str = POLICY_NAME
    objective: str = "engagement"
    candidate_choice: bool = CANDIDATE_CHOICE
    posterior_file: str = "prior"
    """The model file the posterior came from (``accounts/...`` for an account's own), or
    ``prior``; recorded in each queued post's metadata."""


@dataclass
class RefillReport:
    """What one refill did, for the run's metadata."""

    slots: int = 0
    queued: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    candidates: int = 0
    rejected: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    """Rejected candidates by reason (``already_posted``, ``near_duplicate``, ...)."""
    arms: list[str] = field(default_factory=list)
    posterior_file: str = ""
    """The factored posterior's file the account's decisions used (its own with many accounts)."""


def default_arms(topics: Sequence[str] = DEFAULT_TOPICS) -> list[str]:
    return [f"{f}:{t}" for f in FORMATS for t in topics]


def prior_models(
    *,
    objective: str = "engagement",
    timezone: str = "UTC",
    now: datetime | None = None,
    config: FitConfig | None = None,
) -> Models:
    """The cold-start models: the factored prior and a uniform Beta sampler (flagged cold).
    ``config``: the fit's settings (a population prior centres it), else the objective's."""
    from xbot_assets.learning.bandits import ThompsonSampler

    arms = default_arms()
    posterior = fit_factored(
        [],
        now=now or datetime.now().astimezone(),
        formats=FORMATS,
        topics=DEFAULT_TOPICS,
        timezone=timezone,
        config=config or FitConfig(objective=objective),
    )
    sampler = ThompsonSampler(len(arms), prior=(1.0, 1.0))
    return Models(posterior, arms, sampler, objective=objective)


def load_models(settings: Any, *, cache: Any = None) -> Models:
    """The latest ``factored_posteriors`` of ``settings.x_handle``'s account (its own file with
    many accounts, ``model_files.factored_file``) and baseline ``arm_posteriors``; the prior
    when they have not been materialised yet (the cold start, flagged). ``cache``: the hot
    path's posterior cache (``posting.hotpath.posterior_cache``).

    The prior (and ``LEARNING_PRIOR_FILE``, :func:`cold_start_config`) is built only when no
    saved posterior loads: every refill calls this, and a saved posterior already carries the
    population prior its refit was centred on."""
    from xbot_assets.learning.bandits import ThompsonSampler
    from xbot_assets.learning.model_files import (
        ModelFileMissing,
        factored_file,
        load_factored,
        load_posteriors,
        models_dir,
    )
    from xbot_assets.posting.hotpath import cached_posterior

    objective = getattr(settings, "learning_objective", "engagement")
    path = factored_file(settings, objective)
    try:
        try:
            cached = cached_posterior(path, cache)
            posterior = cached if cached is not None else load_factored(settings, objective, path)
        except (ModelFileMissing, FileNotFoundError):
            # A refit prunes an account's own file when the account leaves the fit or the
            # environment is back to one account; between resolving and reading it, the file
            # to read is the one it falls back to now (pooled or main), not the prior.
            again = factored_file(settings, objective)
            if again == path:
                raise
            path = again
            posterior = load_factored(settings, objective, path)
    except (ModelFileMissing, FileNotFoundError, ValueError) as exc:
        log.info("factored posteriors not loaded (%s): acting on the prior", exc)
        models = prior_models(
            objective=objective,
            timezone=settings.account_timezone,
            config=cold_start_config(settings),
        )
    else:
        arms = [f"{f}:{t}" for f in posterior.formats for t in posterior.topics]
        models = Models(
            posterior,
            arms,
            ThompsonSampler(len(arms), prior=(1.0, 1.0)),
            posteriors_cold=posterior.cold_start,
            objective=objective,
            posterior_file=str(path.relative_to(models_dir(settings))),
        )
    try:
        sampler, arms = load_posteriors(settings)
        if arms == models.arms:
            models.sampler = sampler
    except ModelFileMissing:
        pass  # the uniform Beta sampler the models start with
    return models


def cold_start_config(settings: Any) -> FitConfig:
    """The cold-start prior's settings: centred on ``LEARNING_PRIOR_FILE`` when it is set. A
    bad file does not stop posting (the refit fails on it with what to do): the model's own
    prior, with a warning."""
    from xbot_assets.engine.refit import fit_setup
    from xbot_assets.learning.population_prior import PriorError

    try:
        return fit_setup(settings).config
    except PriorError as exc:
        log.warning("acting on the model's own prior: %s", exc)
        return FitConfig(objective=getattr(settings, "learning_objective", "engagement"))


def decide_post(
    models: Models,
    *,
    slot: datetime,
    now: datetime,
    history: Sequence[PastPost],
    generator: Any,
    seed: int,
    recent: Sequence[str] = (),
    n_candidates: int = DEFAULT_N_CANDIDATES,
    guard_config: GuardConfig | None = None,
    moderator: Moderator | None = None,
    known: Known | None = None,
) -> tuple[PolicyDecision, list[Candidate], Candidate | None]:
    """Run the content policy once for ``slot`` (no store, no I/O besides the generator).

    Args:
        history: the account's root posts before the slot, oldest first (posted and queued),
            for the recency covariates; never the candidate batch.
        seed: makes the draws and the generator reproducible.
        recent: recent texts for the guard's near-duplicate check.
        guard_config: the operator's guard settings (bot_config); the defaults when None.
        moderator: the OpenAI moderation layer when a key is set.
        known: whether the account already queued or posted a text (rejected as
            ``already_posted``; :func:`decide_slot` reads the store once per slot,
            :func:`stored_texts`).
    """
    rng = np.random.default_rng(seed)
    made: list[Candidate] = []
    topics = sorted({a.split(":", 1)[1] for a in models.arms})
    chooser: Any
    if models.policy == BASELINE_POLICY:
        chooser = models.sampler
        chooser.rng = rng
    else:
        chooser = FactoredThompson(models.posterior, models.arms, rng=rng)
        chooser.prepare(slot, history)

    def generate(*, format: str, topic: str, n: int) -> list[Candidate]:
        batch = generate_candidates(
            generator,
            f"{format}:{topic}",
            n=n,
            base_seed=seed % 1_000_000,
            recent=recent,
            guard_config=guard_config or GuardConfig(),
            moderator=moderator,
            topics=topics,
            known=known,
        )
        made.extend(batch)
        return batch

    def guard(text: str) -> tuple[bool, str]:
        found = next(c for c in made if c.text == text)
        return found.accepted, "; ".join(found.reasons)

    def score(rows: list[dict[str, Any]]) -> np.ndarray:
        if not models.candidate_choice or not isinstance(chooser, FactoredThompson):
            return np.zeros(len(rows))  # the generator's order
        roots = []
        for row in rows:
            found = next(c for c in made if c.text == row["text"])
            roots.append(found.parts[0] if found.parts else row["text"])
        return chooser.score_texts(rows[0]["format"], rows[0]["topic"], roots)

    policy = ContentPolicy(
        models.arms,
        chooser,
        generate=generate,
        guard=guard,
        score=score,
        n_candidates=n_candidates,
        propensity_samples=500,
        settings={
            "policy": models.policy,
            "objective": models.objective,
            "posteriors_cold_start": models.posteriors_cold,
            "posterior_file": models.posterior_file,
            "candidate_ranking": (
                "posterior text covariates"
                if models.candidate_choice and models.policy != BASELINE_POLICY
                else "generator order"
            ),
        },
    )
    decision = policy.decide(now=now, slot=slot)
    scored = [
        replace(c, score=r.score) if r.score is not None else c
        for c, r in zip(made, decision.candidates, strict=True)
    ]
    chosen = next((c for c in scored if c.text == decision.chosen_text and c.accepted), None)
    return decision, scored, chosen


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
    history: Sequence[PastPost] | None = None,
    guard_config: GuardConfig | None = None,
    moderator: Moderator | None = None,
) -> tuple[PolicyDecision, list[Candidate], Candidate | None]:
    """Run the content policy once for ``slot`` against the account's history; writes nothing.

    ``guard_config`` None reads the operator's guard settings from the store's bot_config.
    """
    if guard_config is None:
        guard_config = build_guard_config(store)
    if history is None:
        history = account_history(store, account_id, before=slot, with_metrics=False)
    return decide_post(
        models,
        slot=slot,
        now=runtime.now(),
        history=[p for p in history if p.posted_at < slot],
        generator=generator,
        seed=stable_seed(runtime.handle, slot.isoformat()),
        recent=recent or (),
        n_candidates=n_candidates,
        guard_config=guard_config,
        moderator=moderator,
        known=stored_texts(store, account_id),
    )


def stored_texts(store: Any, account_id: int) -> Known:
    """The store's answer to :data:`~xbot_assets.content.candidates.Known` for one slot: the
    account's content hashes read once (``content_hashes``, one query), each candidate checked
    against them as it is generated, not one ``find_post_by_hash`` query per candidate."""
    from xbot_assets.store.hot.dedup import content_hash

    held = store.content_hashes(account_id)

    def known(parts: Sequence[str]) -> bool:
        # The hash of a text's parts joined by a space, as enqueue computes it.
        return content_hash(" ".join(parts)) in held

    return known


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
    metadata: dict[str, Any] = {
        "policy": decision.settings.get("policy", POLICY_NAME),
        "propensity": decision.propensity,
        "arm_index": decision.arm_index,
        "sampled_values": decision.sampled_values,
        "decided_at": decision.decided_at.isoformat(),
        "slot": decision.slot.isoformat(),
        "candidate_batch": batch,
        "candidates": len(decision.candidates),
        # Arms drawn first whose candidates all failed the guard (policy.py MAX_ARMS_TRIED).
        "exhausted_arms": decision.exhausted_arms,
        "generator": chosen.generator,
        "settings": decision.settings,
    }
    if decision.eligible_arms is not None:  # the opening limited the draw: say to which arms
        metadata["eligible_arms"] = decision.eligible_arms
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


def _parts(chosen: Candidate) -> list[str]:
    """The texts :func:`_enqueue` queues for ``chosen`` (their hash is the durable key)."""
    if chosen.is_thread and len(chosen.parts) > 1:
        return list(chosen.parts)
    return [chosen.text]


def refill(
    runtime: Runtime,
    *,
    n_candidates: int = DEFAULT_N_CANDIDATES,
    max_slots: int | None = None,
    not_before: datetime | None = None,
) -> RefillReport:
    """Fill every open slot of the coming 24 hours for the runtime's account (none before
    ``not_before``: on a deployment, a slot nearer than a posting run's start-up cannot be kept,
    so it is left for the next refill instead of going out late)."""
    from xbot_assets.posting.hotpath import (
        config_cache,
        posterior_cache,
        remember_queued,
        seen_before,
    )
    from xbot_assets.store.durable.errors import DuplicatePostError

    store = runtime.store()
    hot = runtime.hot_path(store)
    account_id = runtime.account_id(store)
    timezone = store.get_account(account_id).timezone
    now = runtime.now()
    config = config_cache(store, hot)  # the schedule's bot_config read through the hot cache
    slots = open_slots(config, runtime.settings, account_id, now=now, timezone=timezone)
    if not_before is not None:
        slots = [slot for slot in slots if slot >= not_before]
    if max_slots is not None:
        slots = slots[:max_slots]
    report = RefillReport(slots=len(slots))
    if not slots:
        return report
    models = load_models(runtime.settings, cache=posterior_cache(runtime.settings, hot=hot))
    report.posterior_file = models.posterior_file
    generator = runtime.generator(store)
    # The operator's guard settings, read at every refill so a change applies to the next one.
    guard_config = build_guard_config(store)
    moderator = build_moderator(runtime.settings, generator)
    recent = store.recent_texts(account_id, since=now - DUPLICATE_WINDOW)
    history = account_history(store, account_id, with_metrics=False)
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
            history=history,
            guard_config=guard_config,
            moderator=moderator,
        )
        batch = uuid.uuid4().hex
        report.candidates += len(candidates)
        report.rejected += sum(not c.accepted for c in candidates)
        for reason in (r for c in candidates if not c.accepted for r in c.reasons):
            report.rejections[reason] = report.rejections.get(reason, 0) + 1
        if chosen is None:
            record_candidates(store, account_id, candidates, batch_id=batch, now=runtime.now())
            report.skipped.append(f"{slot.isoformat()}: {decision.skipped_reason}")
            continue
        try:
            # Redis remembers every queued text (TTL) and answers first; the durable unique
            # key has the last word on the texts it does not remember.
            if seen_before(hot, account_id, _parts(chosen)):
                raise DuplicatePostError("the chosen text was already queued (hot dedup)")
            posts = _enqueue(store, account_id, decision, chosen, batch, now=runtime.now())
            remember_queued(hot, account_id, posts, now=runtime.now())
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
        # Newest first, as the store returns them: a generator that is shown only the latest
        # few (OpenAI's prompt lists 5) must see the slot queued a moment ago first.
        recent[:0] = chosen.parts
        history = sorted(
            [*history, PastPost(slot, decision.format, decision.topic, chosen.parts[0])],
            key=lambda p: p.posted_at,
        )
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
