"""The one protocol every generator follows, and the plain data it takes and returns.

A generator never raises for bad model output or a spent budget: it returns a
:class:`GenerationResult` whose ``error`` is a stable reason code (see :data:`GENERATION_ERRORS`),
so the candidate step records a rejected candidate and the run goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from xbot_assets.content.length import MAX_WEIGHTED_LENGTH
from xbot_assets.content.vocabulary import DEFAULT_TOPICS, Arm

DEFAULT_VOICE: Final[str] = (
    "Practical and friendly. Concrete numbers and examples, no hype, no clickbait, no insults."
)

GENERATION_ERRORS: Final[dict[str, str]] = {
    "invalid_json": "the model's answer was not valid JSON",
    "missing_fields": "the model's answer lacked required fields or had wrong types",
    "refusal": "the model refused to write the post",
    "empty_output": "the model returned no text",
    "wrong_arm": "the post does not read as the arm that was asked for",
    "budget_exhausted": "the daily AI budget is spent",
    "api_error": "the model API failed after the bounded retries",
    "timeout": "the model API did not answer in time",
    "truncated": "the model stopped before finishing (length limit)",
    "generator_crashed": "the generator raised instead of returning a result",
}
"""Reason codes a generator may return instead of text."""


@dataclass(frozen=True)
class GenerationRequest:
    """What to write.

    Attributes:
        arm: the arm the policy chose (``"how_to:python"`` or an :class:`Arm`).
        seed: makes the offline generator deterministic; varies candidates.
        voice: the account's voice, from bot_config (trusted, written by the operator).
        topics: the account's topics, from bot_config.
        recent_winners: what worked recently (plain data from the performance views), shown to
            the model as examples. Each item a text or a mapping with at least ``text``.
        untrusted_context: trends, replies and other text from outside; reaches the model only
            as quoted data, never as instructions.
        thread_parts: desired number of parts for a thread (2-8); ``None``: the generator picks.
        numbered_threads: prefix thread parts with ``1/5``-style numbers.
        max_weighted_length: the length limit for each post or part.
        avoid_texts: recent and queued posts the output must not repeat, newest first (the
            guard rejects near-duplicates; generators try not to write them in the first place).
        near_duplicate_threshold: the guard's similarity threshold (0-100), for that purpose.
    """

    arm: Arm | str
    seed: int = 0
    voice: str = DEFAULT_VOICE
    topics: tuple[str, ...] = DEFAULT_TOPICS
    recent_winners: tuple[str | Mapping[str, Any], ...] = ()
    untrusted_context: tuple[str, ...] = ()
    thread_parts: int | None = None
    numbered_threads: bool = True
    max_weighted_length: int = MAX_WEIGHTED_LENGTH
    avoid_texts: tuple[str, ...] = ()
    near_duplicate_threshold: float = 90.0

    @property
    def parsed_arm(self) -> Arm:
        """The arm as an :class:`Arm` (raises :class:`~xbot_assets.content.vocabulary.ArmError`)."""
        return Arm.parse(self.arm)


@dataclass(frozen=True)
class Usage:
    """Tokens and money one generation cost (zero for the offline generator)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )


@dataclass(frozen=True)
class GenerationResult:
    """A generated post or thread, or the reason there is none.

    Attributes:
        arm: the arm that was asked for (``"format:topic"``).
        parts: the post text as one part, or the thread parts in order (hook first).
        format: the format the generator says it wrote.
        topic: the topic the generator says it wrote about.
        hook: the opening line meant to stop the scroll.
        generator: ``offline`` or ``openai``.
        model: the model name (``None`` offline).
        usage: tokens and cost.
        error: a :data:`GENERATION_ERRORS` code when there is no usable output.
        error_detail: one line for the analyst (never a secret).
        raw: the raw model answer, kept for the candidates table (truncated).
    """

    arm: str
    parts: tuple[str, ...] = ()
    format: str = ""
    topic: str = ""
    hook: str = ""
    generator: str = ""
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    error_detail: str = ""
    raw: str | None = None

    @property
    def ok(self) -> bool:
        """True when there is text to guard (the guard still decides whether it is posted)."""
        return self.error is None and bool(self.parts)

    @property
    def is_thread(self) -> bool:
        return len(self.parts) > 1 or self.format == "thread"

    @property
    def text(self) -> str:
        """The post text, or the thread's parts joined by blank lines (for display only)."""
        return "\n\n".join(self.parts)

    @classmethod
    def failure(
        cls,
        arm: str,
        error: str,
        detail: str,
        *,
        generator: str,
        model: str | None = None,
        usage: Usage | None = None,
        raw: str | None = None,
    ) -> GenerationResult:
        """A result with no usable output (the run goes on; the candidate is rejected)."""
        assert error in GENERATION_ERRORS, error
        return cls(
            arm=arm,
            generator=generator,
            model=model,
            usage=usage or Usage(),
            error=error,
            error_detail=detail,
            raw=raw[:2000] if raw else raw,
        )


@runtime_checkable
class Generator(Protocol):
    """Writes one post or thread for a request. Never raises for bad output or budget."""

    name: str

    def generate(self, request: GenerationRequest) -> GenerationResult: ...
