"""Candidate generation: for a chosen arm, N guarded candidates with verdicts and scores.

:func:`generate_candidates` is pure apart from what the generator does: it asks the generator N
times (different seeds), runs the safety guard on each result, checks the text reads as the arm
that was chosen, scores the accepted ones with the scorer passed in (the learning layer's, so
content does not depend on learning), and returns every candidate, accepted or not, with its
reasons. Nothing here raises for bad model output: a failure is a rejected candidate.
:func:`record_candidates` stores a batch in the durable store's ``candidates`` table so an
analyst can see what was rejected and why.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from xbot_assets.content.base import (
    DEFAULT_VOICE,
    GenerationRequest,
    GenerationResult,
    Generator,
    Usage,
)
from xbot_assets.content.length import MAX_WEIGHTED_LENGTH
from xbot_assets.content.safety import GuardConfig, Moderator, Verdict, check, check_thread
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, Arm, infer_arm

if TYPE_CHECKING:
    from xbot_assets.store.durable import DurableStore

log = logging.getLogger(__name__)

DEFAULT_CANDIDATES: Final[int] = 5
CANDIDATE_REASONS: Final[dict[str, str]] = {
    "wrong_arm": "the text does not read as the arm that was chosen (format/topic conventions)",
    "already_posted": "the account queued or posted this exact text before (the store's unique "
    "key refuses it)",
}
"""Reasons the candidate step adds to the guard's and the generators' codes."""

Scorer = Callable[["Candidate"], float]
Known = Callable[[Sequence[str]], bool]
"""Whether the account already queued or posted a text (its parts): the store's unique key."""
"""Scores an accepted candidate (higher is better): the learning layer's scorer, adapted."""


@dataclass(frozen=True)
class Candidate:
    """One generated candidate and what the guard said about it.

    Attributes:
        arm: the arm it was generated for (``"format:topic"``).
        parts: the post as one part, or the thread's parts (empty when generation failed).
        verdict: the guard's (or the generator's) verdict; ``verdict.ok`` means postable.
        seed: the generator seed that produced it.
        generator: ``offline`` or ``openai``.
        model: the model name, if any.
        inferred_arm: the arm a reader infers from the text.
        hook: the opening line.
        usage: tokens and cost of producing it.
        score: the scorer's value (accepted candidates only).
        raw: the raw model answer for failures worth reading (truncated).
        created_at: when it was generated (UTC).
    """

    arm: str
    parts: tuple[str, ...]
    verdict: Verdict
    seed: int
    generator: str
    model: str | None = None
    inferred_arm: str | None = None
    hook: str = ""
    usage: Usage = field(default_factory=Usage)
    score: float | None = None
    raw: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def accepted(self) -> bool:
        """Whether the guard lets it be posted."""
        return self.verdict.ok

    @property
    def reasons(self) -> list[str]:
        return list(self.verdict.reasons)

    @property
    def is_thread(self) -> bool:
        return Arm.parse(self.arm).format == "thread"

    @property
    def text(self) -> str:
        """The text for display and the candidates table (thread parts joined by blank lines)."""
        return "\n\n".join(self.parts)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready details for the ``candidates.metadata`` column."""
        return {
            "parts": list(self.parts),
            "seed": self.seed,
            "model": self.model,
            "inferred_arm": self.inferred_arm,
            "hook": self.hook,
            "verdict": self.verdict.to_dict(),
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "cost_usd": round(self.usage.cost_usd, 8),
            },
            "raw": self.raw,
        }


def _merge(verdict: Verdict, extra: Sequence[tuple[str, str]]) -> Verdict:
    if not extra:
        return verdict
    reasons = sorted(set(verdict.reasons) | {code for code, _ in extra})
    return replace(
        verdict, ok=False, reasons=reasons, details=[*verdict.details, *(d for _, d in extra)]
    )


def _guard(
    result: GenerationResult,
    arm: Arm,
    recent: list[str],
    config: GuardConfig,
    untrusted: Sequence[str],
    moderator: Moderator | None,
    topics: Sequence[str],
) -> tuple[Verdict, str | None]:
    if not result.ok:
        code = result.error or "empty_output"
        return Verdict.reject(code, result.error_detail or code), None
    parts = list(result.parts)
    if arm.format == "thread":
        verdict = check_thread(
            parts, recent=recent, config=config, untrusted=untrusted, moderator=moderator
        )
    else:
        extra: list[tuple[str, str]] = []
        if len(parts) != 1:
            extra.append(("wrong_arm", f"a {arm.format} post must be one part, got {len(parts)}"))
        verdict = check(
            "\n\n".join(parts), recent=recent, config=config, untrusted=untrusted,
            moderator=moderator,
        )  # fmt: skip
        verdict = _merge(verdict, extra)
    inferred = infer_arm(parts, (*topics, arm.topic))
    if inferred != str(arm):
        verdict = _merge(verdict, [("wrong_arm", f"reads as {inferred}, chosen {arm}")])
    return verdict, inferred


def generate_candidates(
    generator: Generator,
    arm: Arm | str,
    *,
    n: int = DEFAULT_CANDIDATES,
    base_seed: int = 0,
    recent: Iterable[str] = (),
    guard_config: GuardConfig | None = None,
    scorer: Scorer | None = None,
    moderator: Moderator | None = None,
    voice: str = DEFAULT_VOICE,
    topics: Sequence[str] = DEFAULT_TOPICS,
    recent_winners: Sequence[str | Mapping[str, Any]] = (),
    untrusted_context: Sequence[str] = (),
    numbered_threads: bool = True,
    thread_parts: int | None = None,
    known: Known | None = None,
) -> list[Candidate]:
    """Generate ``n`` candidates for ``arm``, each guarded, accepted ones scored.

    Args:
        generator: any :class:`~xbot_assets.content.base.Generator` (offline or OpenAI).
        arm: the arm the policy chose.
        n: how many candidates to ask for (a spent AI budget stops the batch early).
        base_seed: seeds are ``base_seed .. base_seed + n - 1``.
        recent: texts of recent and queued posts, newest first as the store returns them
            (near-duplicate check; the generator is asked
            to avoid them too). Accepted candidates of this batch are added as it goes.
        guard_config: the guard's configuration (from bot_config).
        scorer: scores accepted candidates (the learning layer's scorer); errors leave the
            score empty and are logged, they do not reject or crash.
        moderator: the optional moderation layer for the guard.
        voice, topics, recent_winners: context for the generator (from bot_config and the
            performance views).
        untrusted_context: trends and replies (quoted to the model; the guard checks that
            nothing from an injection found in them comes back).
        numbered_threads, thread_parts: thread shape.
        known: whether the account already queued or posted a text (the store's unique key,
            which refuses a repeat however old): such a candidate is rejected
            (``already_posted``), so the choice goes to one that can be queued.

    Returns:
        Every candidate in generation order, accepted or rejected.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n}): ask for one candidate or more")
    chosen = Arm.parse(arm)
    config = guard_config or GuardConfig()
    # Every text the guard compares with, newest first: this batch's accepted parts, then the
    # recent posts as the store returns them (generators that show only a few, OpenAI's 5,
    # show the latest; the guard's similarity is a max, so the order is only for them).
    seen = list(recent)
    untrusted = tuple(untrusted_context)
    out: list[Candidate] = []
    for offset in range(n):
        seed = base_seed + offset
        request = GenerationRequest(
            arm=chosen,
            seed=seed,
            voice=voice,
            topics=tuple(topics),
            recent_winners=tuple(recent_winners),
            untrusted_context=untrusted,
            thread_parts=thread_parts,
            numbered_threads=numbered_threads,
            max_weighted_length=config.max_weighted_length or MAX_WEIGHTED_LENGTH,
            avoid_texts=tuple(seen),
            near_duplicate_threshold=config.near_duplicate_threshold,
        )
        try:
            result = generator.generate(request)
        except Exception as exc:  # a generator must not raise; if one does, the run goes on
            log.exception("generator %s raised for %s", getattr(generator, "name", "?"), chosen)
            result = GenerationResult.failure(
                str(chosen), "generator_crashed", f"generator raised {type(exc).__name__}",
                generator=str(getattr(generator, "name", "unknown")),
            )  # fmt: skip
        verdict, inferred = _guard(result, chosen, seen, config, untrusted, moderator, topics)
        if verdict.ok and known is not None and known(result.parts):
            verdict = replace(
                verdict, ok=False, reasons=["already_posted"],
                details=["the account queued or posted this exact text before"],
            )  # fmt: skip
        candidate = Candidate(
            arm=str(chosen),
            parts=tuple(result.parts),
            verdict=verdict,
            seed=seed,
            generator=result.generator,
            model=result.model,
            inferred_arm=inferred,
            hook=result.hook,
            usage=result.usage,
            raw=result.raw if not verdict.ok else None,
        )
        if candidate.accepted:
            seen[:0] = reversed(candidate.parts)
            if scorer is not None:
                candidate = replace(candidate, score=_score(scorer, candidate))
        out.append(candidate)
        if result.error == "budget_exhausted":
            break
    return out


def _score(scorer: Scorer, candidate: Candidate) -> float | None:
    try:
        return float(scorer(candidate))
    except Exception:  # a broken scorer must not stop generation; the pick falls back to order
        log.exception("the candidate scorer failed for %s", candidate.arm)
        return None


def pick_best(candidates: Sequence[Candidate]) -> Candidate | None:
    """The accepted candidate with the highest score (unscored ones last, ties by order)."""
    accepted = [c for c in candidates if c.accepted]
    if not accepted:
        return None
    return max(
        enumerate(accepted),
        key=lambda ic: (ic[1].score is not None, ic[1].score or 0.0, -ic[0]),
    )[1]


def _stored_text(candidate: Candidate) -> str:
    if candidate.parts and any(p.strip() for p in candidate.parts):
        return candidate.text
    # The table needs text: keep what the model said (if anything) so the analyst sees it.
    code = candidate.verdict.reasons[0] if candidate.verdict.reasons else "no_text"
    raw = (candidate.raw or "").strip()
    return f"[no usable text: {code}] {raw}".strip()[:4000]


def record_candidates(
    store: DurableStore,
    account_id: int,
    candidates: Sequence[Candidate],
    *,
    batch_id: str | None = None,
    chosen: Candidate | None = None,
    why: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Store a batch in ``candidates`` (text, arm, generator, score, verdict and reasons).

    Args:
        store: the durable store.
        account_id: the account the batch was generated for.
        candidates: the batch from :func:`generate_candidates`.
        batch_id: groups the batch (a new UUID when omitted).
        chosen: the candidate picked for posting (its row gets ``chosen`` and ``why``).
        why: the reason it was picked.
        now: the caller's clock (``created_at`` of every row; default: the wall clock).

    Returns:
        The new row ids, in the order given.
    """
    from xbot_assets.store.durable.models import CandidateInput

    batch = batch_id or uuid.uuid4().hex
    rows = [
        CandidateInput(
            text=_stored_text(c),
            guard_passed=c.accepted,
            arm=c.arm,
            score=c.score,
            guard_reasons=list(c.verdict.reasons),
            chosen=c is chosen,
            why=why if c is chosen else None,
            generator=c.generator or None,
            metadata=c.metadata(),
        )
        for c in candidates
    ]
    return store.record_candidates(account_id, rows, batch_id=batch, now=now)
