"""The safety guard: the one place that decides whether a text may be posted.

The model never decides; :func:`check` does, on the final text, with stable machine-readable
reason codes (see :data:`REASONS`) so an analyst can count rejections by cause in ``candidates``.
Every layer runs (no early exit) so a verdict lists all problems at once. Secrets and personal
data found in a text are never echoed in a verdict: details name the kind, not the value.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from rapidfuzz import fuzz, process

from xbot_assets.content.length import MAX_WEIGHTED_LENGTH, urls_in, weighted_length
from xbot_assets.content.normalize import (
    BIDI_CONTROLS,
    INVISIBLE_CHARS,
    deleet_variants,
    fold,
    for_dedup,
)
from xbot_assets.content.profanity import find_profanity, toxicity_scores
from xbot_assets.content.vocabulary import MAX_THREAD_PARTS, MIN_THREAD_PARTS

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


# --- patterns -------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_EMAIL_OBFUSCATED = re.compile(
    r"(?<![\w.+-])[\w.+-]+\s*(?:\[at\]|\(at\)|\{at\}|\s+at\s+)\s*[\w-]+\s*(?:\[dot\]|\(dot\)|\{dot\}|\s+dot\s+)"
    r"\s*[a-z]{2,}\b",
    re.IGNORECASE,
)
_PHONE = re.compile(
    r"(?<![\w/.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])?\d{3,4}[\s.-]?\d{3,5}"
    r"(?![\w/])"
)
_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?![\w/])")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_SECRETS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "an OpenAI-style key",
        re.compile(r"\bsk-(?:proj-|ant-|live-|test-|svcacct-)?[A-Za-z0-9_-]{16}"),
    ),
    (
        "a GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20}|github_pat_[A-Za-z0-9_]{20})"),
    ),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10}")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{30}")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{20}")),
    ("a Stripe key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10}")),
    ("an xAI key", re.compile(r"\bxai-[A-Za-z0-9]{20}")),
    ("an X bearer token", re.compile(r"(?<!A)AAAAAAAAAAAAAAAAAAAAA(?=[A-Za-z0-9%]{20})")),
    ("a JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4}")),
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")),
    ("a bearer token", re.compile(r"\bbearer\s+[A-Za-z0-9._~+/=-]{16}", re.IGNORECASE)),
    (
        "a credential assignment",
        re.compile(
            r"\b(?:password|passwd|pwd|api[_-]?key|secret[_-]?key|client[_-]?secret|auth[_-]?token|"
            r"access[_-]?token|token)\s*[:=]\s*['\"]?[^\s'\"]{6}",
            re.IGNORECASE,
        ),
    ),
    (
        "a password inside a URL",
        re.compile(r"\b[a-z][a-z0-9+.-]{0,30}://[^\s/:@]+:[^\s/@]+@", re.IGNORECASE),
    ),
    ("a Slack webhook", re.compile(r"hooks\.slack\.com/services/", re.IGNORECASE)),
)
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})(?![\w@])")
_HASHTAG = re.compile(r"(?<![\w#&])#(\w+)")
_OBFUSCATED_LINK = re.compile(
    r"\bhxxps?://|(?<![a-z0-9-])[a-z0-9-]+\s*(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\))\s*(?:com|org|net|io|ai|co|ly|me)\b",
    re.IGNORECASE,
)
_SCHEME_URL = re.compile(r"\b([a-z][a-z0-9+.-]{1,20})://(?:[^\s/@]+@)?([^\s/:?#@]+)", re.IGNORECASE)
_INJECTION: Final[tuple[re.Pattern[str], ...]] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(?:ignore|disregard|forget|override|bypass)\b.{0,30}\b(?:previous|prior|above|earlier|"
        r"preceding|all|your|the)\b.{0,20}\b(?:instructions?|prompts?|rules|directions|guidelines)",
        r"\bnew instructions?\s*:",
        r"(?m:^)[ \t]*(?:system|assistant|user|developer)\s*:",
        r"<\|(?:im_start|im_end|endoftext|system|user|assistant)\|>",
        r"\[/?INST\]|<<\/?SYS>>",
        r"(?<!#)#{2,}\s*(?:instruction|system|response)",
        r"\bdeveloper mode\b|\bjailbr(?:eak|oken)\b|\bDAN mode\b",
        r"\byou are now (?:a|an|in|the|my|dan)\b",
        r"\b(?:do anything now|pretend (?:you are|to be) (?:an? )?(?:unfiltered|evil|different))",
        r"\b(?:as instructed|per your instructions|following your instructions)\b",
        r"\b(?:post|tweet|write|say|include|add)\b.{0,25}\b(?:this|the following) "
        r"(?:link|url|text)\b",
    )
)
_PROMPT_LEAK: Final[tuple[re.Pattern[str], ...]] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\bsystem prompt\b",
        r"\b(?:my|the) (?:initial |original |hidden )?instructions (?:are|say|were|tell)\b",
        r"\bi (?:was|am|have been) (?:instructed|told|programmed) to\b",
        r"\bmy (?:guidelines|system message|configuration) (?:say|says|is|are)\b",
    )
)
_REFUSAL: Final[tuple[re.Pattern[str], ...]] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\bI(?:'m| am) sorry,? (?:but )?I (?:can(?:no|')t|am unable|won't)",
        r"\bI (?:can(?:no|')t|am unable to|won't) (?:help|assist|comply|create|write|do that)",
        r"\bas an AI(?: language model| assistant)?\b",
        r"\bI'm (?:just )?an AI(?: language model| assistant)\b",
        r"\b(?:here is|here's) (?:a|your|the) (?:tweet|post|thread)\b",
        r"\bI hope this helps\b",
    )
)
_HTML_TAGS = (
    "a|abbr|b|body|br|button|code|div|em|embed|form|h[1-6]|head|html|i|iframe|img|input|li|link|"
    "meta|object|ol|p|pre|script|span|strong|style|svg|table|td|tr|u|ul"
)
_MARKUP: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("HTML", re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>", re.IGNORECASE)),
    ("an HTML entity", re.compile(r"&(?:lt|gt|amp|quot|nbsp|#\d{2,5});")),
    # link text stops at "[" too: else 100k "[" cost 200 steps each (issue 17 item 10)
    ("a Markdown link", re.compile(r"!?\[[^\[\]\n]{1,200}\]\([^()\s]{1,500}\)")),
    ("a code fence", re.compile(r"```")),
    ("Markdown bold", re.compile(r"\*\*[^*\n]{1,100}\*\*|__[^_\n]{1,100}__")),
    ("a Markdown heading", re.compile(r"(?:^|\n)#{1,6} \S")),
    ("a script URI", re.compile(r"\b(?:javascript|vbscript|data):", re.IGNORECASE)),
    ("JSON", re.compile(r"^\s*[\[{]\s*\"[A-Za-z_]+\"\s*:")),
)
_TEMPLATE: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"\{\{.{0,200}?\}\}|\{%.{0,200}?%\}|\$\{[^}]{0,200}\}"),
    re.compile(r"\{[a-z_]{2,30}\}"),
    re.compile(
        r"\[(?:insert|your|link|name|topic|placeholder|url|todo)\b[^\]]{0,200}\]", re.IGNORECASE
    ),
    re.compile(r"<(?:insert|your|placeholder|topic|name|link)[^<>]*>", re.IGNORECASE),
    re.compile(r"\b(?i:lorem ipsum)\b|\bTODO:|\bXXX\b|\bTBD\b"),
)
_LATIN = re.compile(r"[A-Za-z]")
_WORD_RUN = re.compile(r"\w+")
_NON_DIGIT = re.compile(r"\D")
_PHONE_SHAPE = re.compile(r"[\s().+-]")
_HTTP_URL = re.compile(r"https?://\S+")
_NOT_TOPIC_WORD = re.compile(r"[^\w/-]+")
_CHAR_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"))
_NGRAM = 5


def _is_emoji_context(char: str) -> bool:
    if not char:
        return False
    code = ord(char)
    return (
        unicodedata.category(char) in ("So", "Sk")
        or 0x1F000 <= code <= 0x1FAFF
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0x2600 <= code <= 0x27BF
    )


def _character_findings(text: str) -> list[tuple[str, str]]:
    """Control, bidi, invisible and mixed-script characters."""
    found: list[tuple[str, str]] = []
    in_tag_sequence = False
    for i, char in enumerate(text):
        code = ord(char)
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS:
            found.append(("bidi_control", f"U+{code:04X} at {i}"))
        elif char == "\u200d":
            prev = text[i - 1] if i else ""
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if not (_is_emoji_context(prev) and _is_emoji_context(nxt)):
                found.append(("invisible_chars", f"zero-width joiner outside an emoji at {i}"))
        elif 0xE0020 <= code <= 0xE007F:
            # Tag characters only spell subdivision flags right after U+1F3F4.
            in_tag_sequence = in_tag_sequence or (i > 0 and text[i - 1] == "\U0001f3f4")
            if not in_tag_sequence:
                found.append(("invisible_chars", f"tag character U+{code:04X} at {i}"))
            if code == 0xE007F:
                in_tag_sequence = False
        elif char in INVISIBLE_CHARS or (category == "Cf" and not 0xFE00 <= code <= 0xFE0F):
            found.append(("invisible_chars", f"U+{code:04X} at {i}"))
        elif (category == "Cc" and char not in "\n\t") or category in ("Co", "Cn", "Cs"):
            found.append(("control_chars", f"U+{code:04X} at {i}"))
    for word in _WORD_RUN.findall(unicodedata.normalize("NFKC", text)):
        if _LATIN.search(word) and any(
            unicodedata.name(c, "").startswith(("CYRILLIC", "GREEK", "ARMENIAN")) for c in word
        ):
            found.append(("mixed_script", f"word mixing scripts: {word!r}"))
    return found


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _entropy(token: str) -> float:
    counts: dict[str, int] = {}
    for c in token:
        counts[c] = counts.get(c, 0) + 1
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _pii_and_secret_findings(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    normalized = unicodedata.normalize("NFKC", text)
    if _EMAIL.search(normalized) or _EMAIL_OBFUSCATED.search(normalized):
        found.append(("pii_email", "an email address"))
    for match in [*_PHONE.finditer(normalized), *_PHONE_INTERNATIONAL.finditer(normalized)]:
        digits = _NON_DIGIT.sub("", match.group(0))
        has_shape = bool(_PHONE_SHAPE.search(match.group(0)))
        if 10 <= len(digits) <= 15 and (has_shape or len(digits) in (10, 11)):
            found.append(("pii_phone", "a phone number"))
            break
    for match in _CARD.finditer(normalized):
        digits = _NON_DIGIT.sub("", match.group(0))
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            found.append(("pii_card", "a payment card number"))
            break
    if _SSN.search(normalized):
        found.append(("pii_ssn", "a national identity number"))
    for kind, pattern in _SECRETS:
        if pattern.search(normalized):
            found.append(("secret", kind))
    without_urls = _HTTP_URL.sub(" ", normalized)
    for token in _LONG_TOKEN.findall(without_urls):
        mixed = sum(bool(p.search(token)) for p in _CHAR_CLASSES) >= 3
        if mixed and _entropy(token) >= 4.0:
            found.append(("secret", "a high-entropy token"))
            break
    return found


def _domain_of(url: str) -> str:
    parsed = urlsplit(url if "://" in url else f"https://{url}")
    return (parsed.hostname or "").lower().removeprefix("www.")


def _link_and_mention_findings(text: str, config: GuardConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    allowed = tuple(d.lower().removeprefix("www.") for d in config.allowed_domains)
    for url in urls_in(text):
        domain = _domain_of(url)
        if not any(domain == d or domain.endswith("." + d) for d in allowed):
            found.append(("link_not_allowed", f"link to {domain or url!r}"))
    for match in _SCHEME_URL.finditer(text):
        if match.group(1).lower() in ("http", "https"):
            continue  # already seen by twitter-text's extractor above
        domain = match.group(2).lower()
        if not any(domain == d or domain.endswith("." + d) for d in allowed):
            found.append(("link_not_allowed", f"{match.group(1)} link to {domain!r}"))
    if _OBFUSCATED_LINK.search(text):
        found.append(("link_not_allowed", "an obfuscated link"))
    normalized = unicodedata.normalize("NFKC", text)
    allowed_handles = {h.lower().lstrip("@") for h in config.allowed_mentions}
    for handle in _MENTION.findall(_EMAIL.sub(" ", normalized)):
        if handle.lower() not in allowed_handles:
            found.append(("mention_not_allowed", f"@{handle}"))
    hashtags = [t for t in _HASHTAG.findall(normalized) if not t.isdigit()]
    if len(hashtags) > config.max_hashtags:
        found.append(
            ("too_many_hashtags", f"{len(hashtags)} hashtags (at most {config.max_hashtags})")
        )
    return found


_BAIT_SEPARATORS = re.compile(r"[\W_]+")
_BAIT_WORDS: Final[tuple[re.Pattern[str], ...]] = (
    # X for X trades: follow4follow, f4f, like for like, l4l, rt4rt, sub4sub, s4s, follow 2 follow
    re.compile(
        r"\b(?:(?:f|follow|fol)\s?(?:4|for|2)\s?(?:f|follow|fol)|(?:l|like)\s?(?:4|for)\s?(?:l|like)|"
        r"rt\s?(?:4|for)\s?rt|(?:retweet|repost)\s?(?:4|for)\s?(?:retweet|repost)|"
        r"sub\s?4\s?sub|s4s|(?:follow|fb)\s?back\s?(?:4|for)\s?follow)\b"
    ),
    # contest bait: RT to win, retweet & follow to win, like + rt 2 enter, follow to enter
    re.compile(
        r"\b(?:r\s?t|retweet|repost|follow|like|share)(?:\s(?:and|n|or|\w{1,10})){0,3}"
        r"\s(?:to|2)\s(?:win|enter)\b"
    ),
    # giveaways paid in follows: "giveaway ... follow and rt", "follow us for the giveaway"
    re.compile(r"\bgiveaway(?:\s\w{1,15}){0,6}\s(?:follow|rt|retweet)\s(?:and|me|us|rt|like)\b"),
    re.compile(r"\b(?:follow|rt|retweet)\s(?:me|us)(?:\s\w{1,15}){0,3}\s(?:giveaway|win)\b"),
    re.compile(r"\b(?:teamfollowback|followback|ifollowback|followtrain|follow train)\b"),
    # the trade written with an emoji or symbol between: "follow🔁follow", "like ➕ like"
    re.compile(r"\b(follow|like|retweet)\s\1\b"),
)
_BAIT_SQUEEZED = re.compile(
    r"follow(?:4|for)follow|like(?:4|for)like|retweet(?:to|2)win|follow(?:to|2)win|sub4sub"
)
"""Spaced-out forms (``f o l l o w 4 f o l l o w``), matched with every separator removed."""


def _bait_findings(text: str) -> list[tuple[str, str]]:
    """Engagement bait and follow-trading spam, through spacing, leetspeak, look-alikes and emoji.

    X's rules treat "follow for follow" and "RT to win" as platform manipulation; a bot account
    that posts them risks suspension, so they get their own reason code.
    """
    folded = fold(unicodedata.normalize("NFKC", text))
    words = " ".join(_BAIT_SEPARATORS.sub(" ", folded).split())
    forms = {words}
    for variant in ("i", "l"):
        forms.add(" ".join(_deleet_word(w, variant) for w in words.split()))
    for form in forms:
        if any(p.search(form) for p in _BAIT_WORDS) or _BAIT_SQUEEZED.search(form.replace(" ", "")):
            return [("engagement_bait", "engagement bait or follow-trading")]
    return []


def _deleet_word(word: str, variant: str) -> str:
    """A leetspeak reading of one word; short trade tokens (f4f, l4l) and numbers stay as is."""
    if len(word) <= 3 or not any(c.isalpha() for c in word):
        return word
    readings = sorted(deleet_variants(word))
    return readings[0] if variant == "i" or len(readings) == 1 else readings[-1]


def _words(text: str) -> str:
    return " " + " ".join(_NOT_TOPIC_WORD.sub(" ", fold(text)).split()) + " "


def _topic_findings(text: str, config: GuardConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    words = _words(text)
    for topic in config.banned_topics:
        phrase = " ".join(fold(topic).split())
        if phrase and f" {phrase} " in words:
            found.append(("banned_topic", f"banned topic {topic!r}"))
    for word in config.extra_blocked_words:
        if f" {fold(word).strip()} " in words:
            found.append(("profanity", f"blocked word {word!r}"))
    return found


def is_injection(text: str) -> bool:
    """Whether untrusted text (a trend, a reply) carries instructions aimed at the model."""
    return any(p.search(text) for p in _INJECTION)


def _ngrams(text: str, n: int = _NGRAM) -> set[tuple[str, ...]]:
    words = for_dedup(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _untrusted_findings(text: str, untrusted: Sequence[str]) -> list[tuple[str, str]]:
    """Does the text carry payload from an untrusted input that tried to instruct the model?"""
    found: list[tuple[str, str]] = []
    text_folded = fold(text)
    text_grams = _ngrams(text)
    for source in untrusted:
        if not is_injection(source):
            continue
        payload = {u.lower() for u in urls_in(source)}
        payload |= {u.lower().rstrip(".,;:!?)") for u in _HTTP_URL.findall(source)}
        payload |= {"@" + h.lower() for h in _MENTION.findall(source)}
        payload |= {"#" + h.lower() for h in _HASHTAG.findall(source)}
        if any(p in text_folded for p in payload) or text_grams & _ngrams(source):
            found.append(("follows_untrusted_input", "repeats payload of an injected instruction"))
            break
    return found


def _injection_findings(text: str, config: GuardConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    normalized = unicodedata.normalize("NFKC", text)
    if is_injection(normalized):
        found.append(("prompt_injection", "instruction-following residue"))
    folded = fold(normalized)
    if any(p.search(normalized) for p in _PROMPT_LEAK) or any(
        m and fold(m) in folded for m in config.prompt_markers
    ):
        found.append(("system_prompt_leak", "mentions or quotes the system prompt"))
    if any(p.search(normalized) for p in _REFUSAL):
        found.append(("refusal_text", "assistant boilerplate or a refusal"))
    for kind, pattern in _MARKUP:
        if pattern.search(normalized):
            found.append(("markup", kind))
    if any(p.search(normalized) for p in _TEMPLATE):
        found.append(("template_residue", "an unfilled slot or placeholder"))
    return found


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
    findings += _character_findings(text)
    findings += [(hit.code, f"{hit.code}: {hit.word!r}") for hit in find_profanity(text)]
    findings += _pii_and_secret_findings(text)
    findings += _link_and_mention_findings(text, config)
    findings += _topic_findings(text, config)
    findings += _bait_findings(text)
    findings += _injection_findings(text, config)
    findings += _untrusted_findings(text, untrusted)
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
