"""The safety guard: the one place that decides whether a text may be posted.

The model never decides; :func:`check` does, on the final text, with stable machine-readable
reason codes (see :data:`REASONS`) so an analyst can count rejections by cause in ``candidates``.
Every layer runs (no early exit) so a verdict lists all problems at once. Secrets and personal
data found in a text are never echoed in a verdict: details name the kind, not the value.

The pattern layers (characters, personal data and secrets, links, bait, topics, injection) are
in :mod:`xbot_assets.content.detectors`; this module holds the settings, the model layers, the
near-duplicate check and the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, Final, Protocol

from rapidfuzz import fuzz, process

from xbot_assets.content.detectors import (
    bait_findings,
    character_findings,
    injection_findings,
    link_and_mention_findings,
    pii_and_secret_findings,
    topic_findings,
    untrusted_findings,
)
from xbot_assets.content.detectors import (
    is_injection as is_injection,  # part of the guard's API
)
from xbot_assets.content.length import MAX_WEIGHTED_LENGTH, weighted_length
from xbot_assets.content.normalize import for_dedup
from xbot_assets.content.profanity import find_profanity, toxicity_scores
from xbot_assets.content.vocabulary import MAX_THREAD_PARTS, MIN_THREAD_PARTS

DUPLICATE_WINDOW: Final = timedelta(days=7)
"""How far back a new post is compared with the account's posts, at least. X refuses a post
whose text equals one of the account's recent posts (the sandbox: 168 h, the scenario's
``platform.duplicate_window_hours``), so the near-duplicate check covers every post of the
window as well as the 50 newest rows (``store.durable.posts.recent_texts_query``): 50 rows of
thread parts reached back only 3-6 days, and a thread part repeating one from 6 days ago
passed the guard and was refused mid-thread."""

REASONS: Final[dict[str, str]] = {
    "empty": "the text is empty or whitespace",
    "too_long": "over X's weighted length limit (twitter-text v3)",
    "control_chars": "control, private-use or unassigned characters",
    "bidi_control": "bidirectional override/isolate characters (can disguise text)",
    "invisible_chars": "zero-width or invisible characters (can hide words from filters)",
    "mixed_script": "a word mixes Latin with look-alike letters of another script",
    "profanity": "profanity (word list, with leetspeak, spacing and repetition tricks undone)",
    "slur": "a slur against a group",
    "harassment": "harassment or incitement to self-harm",
    "toxicity_model": "the offensive-language model scores it above the threshold",
    "moderation_flagged": "the OpenAI moderation endpoint flagged it",
    "moderation_unavailable": "the moderation layer was configured but could not answer",
    "pii_email": "an email address",
    "pii_phone": "a phone number",
    "pii_card": "a payment card number",
    "pii_ssn": "a national identity number",
    "secret": "an API key, token, password or private key",
    "link_not_allowed": "a link to a domain not on the allowlist",
    "mention_not_allowed": "an @mention not on the allowlist",
    "too_many_hashtags": "more hashtags than configured",
    "banned_topic": "a banned topic from bot_config",
    "near_duplicate": "too similar to a recent post (or another part of the thread)",
    "prompt_injection": "instruction-following residue (e.g. 'ignore previous instructions')",
    "system_prompt_leak": "talks about or quotes the system prompt",
    "refusal_text": "a model refusal or assistant boilerplate instead of a post",
    "markup": "HTML, Markdown or JSON markup that X would show literally",
    "template_residue": "an unfilled template slot or placeholder",
    "follows_untrusted_input": "repeats links, handles or phrases from an injected instruction",
    "engagement_bait": "engagement bait or follow-trading spam (f4f, like4like, 'RT to win')",
    "thread_too_short": "a thread needs at least 2 parts",
    "thread_too_long": "a thread has at most 8 parts",
}
"""Every reason code the guard can return, with what it means. Codes are stable."""

DEFAULT_BANNED_TOPICS: Final[tuple[str, ...]] = (
    "election", "elections", "abortion", "gun control", "terrorism", "suicide", "self-harm",
)  # fmt: skip
DEFAULT_PROMPT_MARKERS: Final[tuple[str, ...]] = (
    "you write posts for an x account",
    "ghostwriter for",
    "return json matching the schema",
    "untrusted_input",
)
"""Distinctive phrases of xbot's own system prompt: seeing one in a post means it leaked."""


@dataclass(frozen=True)
class GuardConfig:
    """What the guard allows. Build it from bot_config with :meth:`from_mapping`.

    Attributes:
        max_weighted_length: X's limit (280 unless the account has a longer one).
        max_hashtags: more than this many ``#tags`` is rejected.
        allowed_domains: link domains allowed (subdomains included); empty: no links at all.
        allowed_mentions: handles (without ``@``) that may be mentioned; empty: no mentions.
        banned_topics: words or phrases that must not appear (matched on folded whole words).
        near_duplicate_threshold: rapidfuzz similarity (0-100) at or above which a text is a
            near-duplicate of a recent post.
        use_toxicity_model: run alt-profanity-check as a second layer.
        toxicity_threshold: its probability at or above which a text is rejected.
        moderation_fail_closed: when a moderation layer is given and fails, reject.
        prompt_markers: phrases of the system prompt whose presence means a leak.
        extra_blocked_words: more words to reject as profanity (whole words, folded).
    """

    max_weighted_length: int = MAX_WEIGHTED_LENGTH
    max_hashtags: int = 2
    allowed_domains: tuple[str, ...] = ()
    allowed_mentions: tuple[str, ...] = ()
    banned_topics: tuple[str, ...] = DEFAULT_BANNED_TOPICS
    near_duplicate_threshold: float = 90.0
    use_toxicity_model: bool = True
    toxicity_threshold: float = 0.9
    moderation_fail_closed: bool = True
    prompt_markers: tuple[str, ...] = DEFAULT_PROMPT_MARKERS
    extra_blocked_words: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GuardConfig:
        """Build from bot_config values: keys as the field names, optionally ``guard.``-prefixed.

        Values may be native or JSON strings (bot_config stores text); lists may also be
        comma-separated strings. Unknown keys are ignored (bot_config holds other settings).

        Raises:
            ValueError: a value of the wrong type, naming the key to fix.
        """
        if not values:
            return cls()
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for raw_key, raw_value in values.items():
            key = raw_key.removeprefix("guard.").removeprefix("guard_")
            if key not in known:
                continue
            default = getattr(cls(), key)
            value = raw_value
            if isinstance(value, str) and not isinstance(default, str):
                stripped = value.strip()
                try:
                    value = json.loads(stripped) if stripped else ()
                except json.JSONDecodeError:
                    value = [v.strip() for v in stripped.split(",") if v.strip()]
            try:
                if isinstance(default, tuple):
                    if isinstance(value, str):
                        value = [value]
                    value = tuple(str(v).strip().lower().lstrip("@") for v in value)
                elif isinstance(default, bool):
                    value = value if isinstance(value, bool) else str(value).lower() == "true"
                elif isinstance(default, int):
                    value = int(value)
                elif isinstance(default, float):
                    value = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"bot_config key {raw_key!r} has a value of the wrong type for the safety "
                    f"guard (expected {type(default).__name__}): fix it in bot_config"
                ) from None
            kwargs[key] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one text or thread.

    Attributes:
        ok: True when the text may be posted.
        reasons: sorted unique reason codes (keys of :data:`REASONS`); empty when ok.
        details: human-readable findings, never containing a secret or personal datum.
        weighted_length: X's weighted length (of the longest part for a thread).
        toxicity: the model's score when it ran (max over parts).
    """

    ok: bool
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    weighted_length: int = 0
    toxicity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the ``candidates`` table and logs."""
        return {
            "ok": self.ok,
            "reasons": list(self.reasons),
            "details": list(self.details),
            "weighted_length": self.weighted_length,
            "toxicity": self.toxicity,
        }

    @classmethod
    def reject(cls, reason: str, detail: str = "") -> Verdict:
        """A rejection for a reason found outside the text (e.g. a malformed model answer)."""
        return cls(ok=False, reasons=[reason], details=[detail or reason])


@dataclass(frozen=True)
class ModerationResult:
    """A moderation layer's answer: flagged or not, and which categories."""

    flagged: bool
    categories: tuple[str, ...] = ()


class Moderator(Protocol):
    """An extra moderation layer (the OpenAI moderation endpoint when a key is set)."""

    def __call__(self, text: str) -> ModerationResult: ...


class OpenAIModerator:
    """The OpenAI moderation endpoint through the same ``openai`` client as the generator."""

    def __init__(self, client: Any, model: str = "omni-moderation-latest") -> None:
        self.client = client
        self.model = model

    def __call__(self, text: str) -> ModerationResult:
        response = self.client.moderations.create(model=self.model, input=text)
        result = response.results[0]
        categories = result.categories
        raw = categories.model_dump() if hasattr(categories, "model_dump") else dict(categories)
        flagged_categories = tuple(sorted(k for k, v in raw.items() if v))
        return ModerationResult(flagged=bool(result.flagged), categories=flagged_categories)


def similarity(text: str, others: Iterable[str]) -> float:
    """The highest similarity (0-100) of ``text`` to any of ``others``, on normalised text.

    The max of rapidfuzz's ``ratio`` (edit distance) and ``token_sort_ratio`` (same words in
    another order), over :func:`~xbot_assets.content.normalize.for_dedup` forms, so case,
    punctuation, URLs and thread numbering do not hide a repeat.
    """
    candidate = for_dedup(text)
    choices = [r for r in (for_dedup(x) for x in others) if r]
    if not candidate or not choices:
        return 0.0
    best = 0.0
    for scorer in (fuzz.ratio, fuzz.token_sort_ratio):
        found = process.extractOne(candidate, choices, scorer=scorer)
        if found is not None:
            best = max(best, float(found[1]))
    return best


def _near_duplicate(text: str, recent: Iterable[str], threshold: float) -> tuple[str, str] | None:
    score = similarity(text, recent)
    if score >= threshold:
        return ("near_duplicate", f"{score:.0f}% similar to a recent post")
    return None


def _collect(
    text: str,
    recent: Iterable[str],
    config: GuardConfig,
    untrusted: Sequence[str],
) -> tuple[list[tuple[str, str]], int]:
    """All findings for one text except the model layers (batched by the callers)."""
    if not isinstance(text, str):
        raise TypeError(f"the guard checks text (str), got {type(text).__name__}")
    findings: list[tuple[str, str]] = []
    if not text.strip():
        findings.append(("empty", "empty text"))
        return findings, 0
    length = weighted_length(text)
    if length > config.max_weighted_length:
        findings.append(("too_long", f"weighted length {length} > {config.max_weighted_length}"))
    findings += character_findings(text)
    findings += [(hit.code, f"{hit.code}: {hit.word!r}") for hit in find_profanity(text)]
    findings += pii_and_secret_findings(text)
    findings += link_and_mention_findings(text, config)
    findings += topic_findings(text, config)
    findings += bait_findings(text)
    findings += injection_findings(text, config)
    findings += untrusted_findings(text, untrusted)
    if dup := _near_duplicate(text, recent, config.near_duplicate_threshold):
        findings.append(dup)
    return findings, length


def _model_findings(
    texts: list[str], config: GuardConfig, moderator: Moderator | None
) -> tuple[list[list[tuple[str, str]]], float | None]:
    per_text: list[list[tuple[str, str]]] = [[] for _ in texts]
    toxicity: float | None = None
    live = [i for i, t in enumerate(texts) if t.strip()]
    if config.use_toxicity_model and live:
        scores = toxicity_scores([texts[i] for i in live])
        toxicity = max(scores)
        for i, score in zip(live, scores, strict=True):
            if score >= config.toxicity_threshold:
                per_text[i].append(("toxicity_model", f"offensive-language score {score:.2f}"))
    if moderator is not None:
        for i in live:
            try:
                result = moderator(texts[i])
            except Exception as exc:  # any client failure: the layer did not answer
                if config.moderation_fail_closed:
                    per_text[i].append(
                        ("moderation_unavailable", f"moderation failed: {type(exc).__name__}")
                    )
                continue
            if result.flagged:
                cats = ", ".join(result.categories) or "unspecified"
                per_text[i].append(("moderation_flagged", f"moderation flagged: {cats}"))
    return per_text, toxicity


def _verdict(findings: list[tuple[str, str]], length: int, toxicity: float | None) -> Verdict:
    reasons = sorted({code for code, _ in findings})
    details = list(dict.fromkeys(detail for _, detail in findings))
    return Verdict(
        ok=not reasons, reasons=reasons, details=details, weighted_length=length, toxicity=toxicity
    )


def check(
    text: str,
    *,
    recent: Iterable[str] = (),
    config: GuardConfig | None = None,
    untrusted: Sequence[str] = (),
    moderator: Moderator | None = None,
) -> Verdict:
    """Decide whether ``text`` may be posted as one post.

    Args:
        text: the exact text that would be posted.
        recent: texts of recent posts (and queued ones) for the near-duplicate check.
        config: what is allowed (defaults: no links, no mentions, 2 hashtags, 280).
        untrusted: the untrusted inputs (trends, replies) the generator was shown; text that
            repeats the payload of an injection found in them is rejected.
        moderator: an extra moderation layer (e.g. :class:`OpenAIModerator` when a key is set).

    Returns:
        A :class:`Verdict`; ``ok`` only when no layer found anything.
    """
    config = config or GuardConfig()
    findings, length = _collect(text, recent, config, untrusted)
    model, toxicity = _model_findings([text], config, moderator)
    return _verdict(findings + model[0], length, toxicity)


def check_thread(
    parts: Sequence[str],
    *,
    recent: Iterable[str] = (),
    config: GuardConfig | None = None,
    untrusted: Sequence[str] = (),
    moderator: Moderator | None = None,
) -> Verdict:
    """Decide whether a thread may be posted: 2-8 parts, each passing :func:`check`.

    Parts are also compared with each other (a thread that repeats itself is a near-duplicate).
    Details carry the part number (``part 2: ...``).
    """
    config = config or GuardConfig()
    parts = list(parts)
    findings: list[tuple[str, str]] = []
    if len(parts) < MIN_THREAD_PARTS:
        findings.append(("thread_too_short", f"{len(parts)} part(s), at least {MIN_THREAD_PARTS}"))
    if len(parts) > MAX_THREAD_PARTS:
        findings.append(("thread_too_long", f"{len(parts)} parts, at most {MAX_THREAD_PARTS}"))
    recent = list(recent)
    longest = 0
    for index, part in enumerate(parts, start=1):
        part_findings, length = _collect(part, [*recent, *parts[: index - 1]], config, untrusted)
        longest = max(longest, length)
        findings += [(code, f"part {index}: {detail}") for code, detail in part_findings]
    model, toxicity = _model_findings(parts, config, moderator)
    for index, part_model in enumerate(model, start=1):
        findings += [(code, f"part {index}: {detail}") for code, detail in part_model]
    return _verdict(findings, longest, toxicity)
