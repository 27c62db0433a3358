"""The safety guard's detectors: the pattern layers of :func:`~xbot_assets.content.safety.check`.

Each ``*_findings`` function looks at one final text for one family of problems (characters,
personal data and secrets, links and mentions, bait, banned topics, prompt injection and model
residue, payload from untrusted inputs) and returns ``(reason code, detail)`` pairs; the codes
are those of :data:`~xbot_assets.content.safety.REASONS`. ``safety`` runs them all and decides.
Details name the kind of a secret or personal datum, never its value.

Every pattern here is searched in linear time (``tests/content/test_regex_linear.py`` finds them
by introspection).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from xbot_assets.content.length import urls_in
from xbot_assets.content.normalize import (
    BIDI_CONTROLS,
    INVISIBLE_CHARS,
    deleet_variants,
    fold,
    for_dedup,
)

if TYPE_CHECKING:
    from xbot_assets.content.safety import GuardConfig

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


def character_findings(text: str) -> list[tuple[str, str]]:
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


def pii_and_secret_findings(text: str) -> list[tuple[str, str]]:
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


def link_and_mention_findings(text: str, config: GuardConfig) -> list[tuple[str, str]]:
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


def bait_findings(text: str) -> list[tuple[str, str]]:
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


def topic_findings(text: str, config: GuardConfig) -> list[tuple[str, str]]:
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


def untrusted_findings(text: str, untrusted: Sequence[str]) -> list[tuple[str, str]]:
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


def injection_findings(text: str, config: GuardConfig) -> list[tuple[str, str]]:
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
