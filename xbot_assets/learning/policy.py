"""The content policy: slot -> arm (sampled) -> N candidates -> guard -> score -> the best one.

Every step is recorded in a :class:`PolicyDecision` (the slot, the arm, every arm's sampled
value, the probability the policy had of choosing that arm, every candidate with its guard
verdict and score) so that the decision can be audited and evaluated off-policy later.

Content generation and the safety guard live in ``xbot_assets.content``; they are passed in as
callables, so this module stays free of I/O and can be tested with plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from xbot_assets.learning.contextual_bandit import FeatureSpace, LaplaceLogisticSampler
from xbot_assets.learning.scheduler import SlotScheduler

Generate = Callable[..., Sequence[Any]]
"""``generate(format=..., topic=..., n=...)`` -> candidate texts (or objects with ``.text``)."""
Guard = Callable[[str], Any]
"""``guard(text)`` -> bool, ``(allowed, reason)``, or an object with ``allowed``/``ok``."""
Score = Callable[[list[dict[str, Any]]], np.ndarray]
"""Candidate rows (format, topic, text, posted_at, ...) -> probability each beats the median."""


MAX_ARMS_TRIED = 4
"""Arms a decision tries, in the order of its one posterior draw, before it skips the slot.

An arm whose candidates all fail the guard (a template generator out of fresh text for it, the
near-duplicate rule against recent posts) cannot be posted now; the next arm of the same draw
is Thompson sampling over the arms that can. Without it the learner, which cannot see that an
arm ran dry, drew the same arm slot after slot and skipped 286 of 2,880 slots in the loop
benchmark's 90 days (benchmarks/README.md). Four bounds the generator calls (each a paid
OpenAI request on that generator) per slot."""


class ArmChooser(Protocol):
    """What the policy needs from a bandit: one sampled choice and its propensities.

    After :meth:`select`, ``last_sample`` (when the chooser has it) holds that draw's value of
    every arm, which orders the arms the decision falls back on; ``eligible`` (when the chooser
    has it and it is not None) marks the arms its choice is limited to, which the decision
    falls back on first (the factored sampler's balanced opening).
    """

    def select(self) -> int: ...

    def choice_probabilities(
        self, n_samples: int = 2000, available: np.ndarray | None = None
    ) -> np.ndarray: ...


@dataclass
class CandidateRecord:
    text: str
    allowed: bool
    guard_reason: str
    score: float | None


@dataclass
class PolicyDecision:
    """One decision, everything needed to audit it and evaluate other policies on it."""

    decided_at: datetime
    slot: datetime
    arm: str
    arm_index: int
    propensity: float
    sampled_values: dict[str, float]
    candidates: list[CandidateRecord] = field(default_factory=list)
    chosen_text: str | None = None
    chosen_score: float | None = None
    skipped_reason: str = ""
    exhausted_arms: list[str] = field(default_factory=list)
    """Arms tried first whose candidates all failed the guard (the chosen arm came next)."""
    eligible_arms: list[str] | None = None
    """The arms the chooser limited this draw to (the balanced opening), None when unlimited:
    the chosen arm is the highest of ``sampled_values`` among these, not among all arms."""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return self.arm.split(":", 1)[0]

    @property
    def topic(self) -> str:
        return self.arm.split(":", 1)[1] if ":" in self.arm else "other"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the store (datetimes as ISO strings)."""
        out = asdict(self)
        out["decided_at"] = self.decided_at.isoformat()
        out["slot"] = self.slot.isoformat()
        return out


def guard_verdict(result: Any) -> tuple[bool, str]:
    """Normalise whatever the guard returns to ``(allowed, reason)``."""
    if isinstance(result, bool):
        return result, "" if result else "blocked"
    if isinstance(result, tuple) and result and isinstance(result[0], bool):
        return result[0], str(result[1]) if len(result) > 1 else ""
    for name in ("allowed", "ok", "passed", "is_safe"):
        if hasattr(result, name):
            allowed = bool(getattr(result, name))
            reasons = getattr(result, "reasons", None) or getattr(result, "reason", "")
            if isinstance(reasons, list | tuple):
                reasons = "; ".join(str(r) for r in reasons)
            return allowed, str(reasons or "")
    raise TypeError(
        f"the guard returned {type(result).__name__}: return a bool, (allowed, reason) or an "
        "object with an 'allowed' attribute"
    )


def _text_of(candidate: Any) -> str:
    if isinstance(candidate, str):
        return candidate
    if isinstance(candidate, Mapping):
        return str(candidate.get("text", ""))
    text = getattr(candidate, "text", None)
    if text is None:
        raise TypeError(f"a candidate of type {type(candidate).__name__} has no text")
    if isinstance(text, list | tuple):  # a thread: score its first post
        return str(text[0]) if text else ""
    return str(text)


class ContextualChooser:
    """Adapter: a :class:`LaplaceLogisticSampler` choosing among arms for the current slot."""

    def __init__(
        self, sampler: LaplaceLogisticSampler, arms: Sequence[str], slot_level: str | None = None
    ) -> None:
        self.sampler, self.arms = sampler, list(arms)
        self.slot_level = slot_level
        self.last_sample: np.ndarray = np.full(len(self.arms), np.nan)

    @property
    def space(self) -> FeatureSpace:
        return self.sampler.space

    def design(self) -> np.ndarray:
        rows = []
        for arm in self.arms:
            fmt, topic = arm.split(":", 1)
            levels = {"format": fmt, "topic": topic}
            if self.slot_level is not None:
                levels["slot"] = self.slot_level
            rows.append(levels)
        return self.space.design(rows)

    def select(self) -> int:
        logits = self.sampler.sample_logits(self.design())
        self.last_sample = 1.0 / (1.0 + np.exp(-logits))
        return int(logits.argmax())

    def choice_probabilities(
        self, n_samples: int = 2000, available: np.ndarray | None = None
    ) -> np.ndarray:
        return self.sampler.choice_probabilities(self.design(), n_samples, available)


class ContentPolicy:
    """Choose what to post next and record why.

    Args:
        arms: arm names ``"<format>:<topic>"`` in the chooser's order.
        chooser: the bandit (a ThompsonSampler, DriftAwareThompson or ContextualChooser).
        generate: candidate generator (``xbot_assets.content``).
        guard: safety guard (``xbot_assets.content``).
        score: the engagement scorer over candidate rows.
        n_candidates: candidates generated per decision.
        propensity_samples: posterior re-samples used to estimate the propensity.
        settings: what to record about this policy's configuration (for evaluation).
        scheduler: picks the slot when :meth:`decide` is given none (``SlotScheduler``).
    """

    def __init__(
        self,
        arms: Sequence[str],
        chooser: ArmChooser,
        *,
        generate: Generate,
        guard: Guard,
        score: Score,
        n_candidates: int = 5,
        propensity_samples: int = 2000,
        settings: dict[str, Any] | None = None,
        scheduler: SlotScheduler | None = None,
    ) -> None:
        if n_candidates < 1:
            raise ValueError("n_candidates must be at least 1")
        self.arms = list(arms)
        self.chooser = chooser
        self.generate, self.guard, self.score = generate, guard, score
        self.n_candidates = n_candidates
        self.propensity_samples = propensity_samples
        self.settings = dict(settings or {})
        self.scheduler = scheduler

    def decide(
        self, *, now: datetime, slot: datetime | None = None, taken: list[datetime] | None = None
    ) -> PolicyDecision:
        """Run the whole step once; the decision says what to queue (or why nothing is).

        Args:
            now: the decision time (UTC).
            slot: when the post should go out; by default the scheduler's next slot after
                ``now`` (respecting ``taken`` times), else ``now``.
            taken: times already planned or posted (for the scheduler's spacing).
        """
        if slot is None and self.scheduler is not None:
            slot = self.scheduler.next_slot(now, taken=taken)
        slot = slot or now
        propensities = self.chooser.choice_probabilities(self.propensity_samples)
        index = self.chooser.select()
        draws = getattr(self.chooser, "last_sample", None)
        if draws is None:
            draws = getattr(getattr(self.chooser, "sampler", None), "last_sample", None)
        sampled = (
            {a: round(float(v), 8) for a, v in zip(self.arms, draws, strict=True)}
            if draws is not None
            else {}
        )
        # The arms in the order of this one draw: the first is the choice, the rest are where
        # it falls back when an arm has nothing that passes the guard (MAX_ARMS_TRIED).
        order = [index]
        eligible = getattr(self.chooser, "eligible", None)
        if draws is not None and np.all(np.isfinite(draws)):
            order += [int(i) for i in np.argsort(-np.asarray(draws), kind="stable") if i != index]
            if eligible is not None:  # a limited choice falls back inside its arms first
                order = [index, *sorted(order[1:], key=lambda i: not eligible[i])]
        available = np.ones(len(self.arms), dtype=bool)
        limited = None if eligible is None else [self.arms[i] for i in np.flatnonzero(eligible)]
        decision = PolicyDecision(
            decided_at=now, slot=slot, arm=self.arms[index], arm_index=index, propensity=0.0,
            sampled_values=sampled, settings=self.settings, eligible_arms=limited,
        )  # fmt: skip
        texts: list[str] = []
        allowed_rows: list[dict[str, Any]] = []
        allowed_idx: list[int] = []
        generated = False
        for index in order[:MAX_ARMS_TRIED]:
            decision.arm, decision.arm_index = self.arms[index], index
            fmt, topic = decision.format, decision.topic
            batch = [
                _text_of(c) for c in self.generate(format=fmt, topic=topic, n=self.n_candidates)
            ]
            for text in batch:
                ok, reason = guard_verdict(self.guard(text))
                decision.candidates.append(CandidateRecord(text, ok, reason, None))
                if ok:
                    allowed_idx.append(len(texts))
                    allowed_rows.append(
                        {"format": fmt, "topic": topic, "text": text, "posted_at": slot}
                    )
                texts.append(text)
            # No text at all (an empty batch, or only failed generations: an API error, a spent
            # AI budget) is a failing generator, not a dry arm: no point paying it for more arms.
            generated = any(batch)
            if allowed_rows or not generated:
                break
            decision.exhausted_arms.append(decision.arm)
            available[index] = False
        if not allowed_rows:
            decision.arm, decision.arm_index = self.arms[order[0]], order[0]
            decision.propensity = max(float(propensities[order[0]]), 1 / self.propensity_samples)
            if generated:
                reason = "no candidate passed the guard"
            else:  # the failures' codes (api_error, budget_exhausted, ...), from the guard
                codes = sorted({c.guard_reason for c in decision.candidates if not c.text} - {""})
                reason = "the generator returned nothing" + (
                    f" ({', '.join(codes)})" if codes else ""
                )
            if decision.exhausted_arms:
                reason += f" (arms tried: {', '.join(decision.exhausted_arms)})"
            decision.skipped_reason = reason
            return decision
        if not available.all():  # a fallback: Thompson sampling over the arms that can post
            propensities = self.chooser.choice_probabilities(self.propensity_samples, available)
        # Never 0: the arm was chosen, so its probability is at least one in the samples.
        decision.propensity = max(
            float(propensities[decision.arm_index]), 1.0 / self.propensity_samples
        )
        scores = np.asarray(self.score(allowed_rows), dtype=float)
        for i, s in zip(allowed_idx, scores, strict=True):
            decision.candidates[i].score = round(float(s), 6)
        best = allowed_idx[int(scores.argmax())]
        decision.chosen_text = texts[best]
        decision.chosen_score = decision.candidates[best].score
        return decision
