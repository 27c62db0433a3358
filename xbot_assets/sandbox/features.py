"""Text-to-features: how the sandbox audience "reads" a post, following the shared conventions.

The real platform infers what a post is about from its text; the sandbox does the same, so the bot
can only influence outcomes through what it writes (never through a hidden label). The offline
generator writes text that follows these conventions (see the common brief): topic keywords,
format markers, and the surface features (length, hashtags, links, numbers, emoji).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xbot_assets.sandbox.vocabulary import OTHER_TOPIC, TOPICS

TOPIC_KEYWORDS: dict[str, tuple[str, ...]] = {
    "ai": (
        "AI",
        "LLM",
        "LLMs",
        "GPT",
        "machine learning",
        "neural",
        "agents",
        "prompt",
        "model",
        "models",
    ),
    "python": ("Python", "pip", "pandas", "numpy", "pytest", "asyncio", "typing", "decorator"),
    "data_science": (
        "data science",
        "dataset",
        "statistics",
        "regression",
        "SQL",
        "notebook",
        "analytics",
        "A/B test",
    ),
    "startups": (
        "startup",
        "startups",
        "founder",
        "founders",
        "fundraising",
        "seed round",
        "product-market fit",
        "MVP",
        "customers",
    ),
    "productivity": ("productivity", "focus", "habits", "deep work"),
    "career": ("career", "interview", "promotion", "hiring", "resume"),
    "open_source": ("open source", "maintainer", "GitHub", "pull request"),
    "devops": ("Kubernetes", "Docker", "CI", "deploy", "observability"),
}
"""Keywords per topic, matched case-insensitively as whole words."""


def _keyword_pattern(keyword: str) -> str:
    # Whole word: no letter/digit/underscore immediately before or after (works for "A/B test",
    # "product-market fit" and multi-word phrases where \b would misbehave on punctuation).
    return r"(?<![\w])" + re.escape(keyword) + r"(?![\w])"


_TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {
    topic: re.compile("|".join(_keyword_pattern(k) for k in words), re.IGNORECASE)
    for topic, words in TOPIC_KEYWORDS.items()
}
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|[-•])\s")
_EMOJI = re.compile(
    "[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f2ff\U0001f900-\U0001f9ff]"
)


@dataclass(frozen=True, slots=True)
class TextFeatures:
    """What the audience reads from one post's text.

    Attributes:
        topic: one of :data:`TOPICS` or ``"other"``.
        format: one of :data:`FORMATS`.
        weighted_length: X's weighted length (twitter-text v3: URLs count 23, CJK/emoji 2).
        hashtag_count: number of ``#word`` hashtags.
        has_link: an ``http://`` or ``https://`` link is present.
        has_number: a digit is present.
        has_emoji: an emoji is present.
    """

    topic: str
    format: str
    weighted_length: int
    hashtag_count: int
    has_link: bool
    has_number: bool
    has_emoji: bool


def classify_topic(text: str) -> str:
    """The topic with the most keyword hits (ties: first in :data:`TOPICS`; none: ``other``)."""
    best, best_hits = OTHER_TOPIC, 0
    for topic in TOPICS:
        hits = len(_TOPIC_PATTERNS[topic].findall(text))
        if hits > best_hits:
            best, best_hits = topic, hits
    return best


def classify_format(text: str, *, is_thread: bool = False) -> str:
    """The post's format from its text; ``thread`` only when the caller knows it has self-replies.

    Args:
        text: the post text.
        is_thread: True when the post is the root of a reply chain by the same account.
    """
    if is_thread:
        return "thread"
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered.startswith("how to"):
        return "how_to"
    if lowered.startswith(("hot take:", "unpopular opinion:")):
        return "hot_take"
    if sum(1 for line in stripped.splitlines() if _LIST_LINE.match(line)) >= 3:
        return "list"
    if stripped.endswith("?"):
        return "question"
    return "single"


# twitter-text v3 configuration: code points in these ranges weigh 100, all others 200
# (scale 100); every URL counts as 23 characters.
_LIGHT_RANGES: tuple[tuple[int, int], ...] = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_URL_LENGTH = 23
_EMOJI_JOINERS = frozenset({0x200D, 0xFE0F, 0xFE0E})


def _char_weight(code: int) -> int:
    for low, high in _LIGHT_RANGES:
        if low <= code <= high:
            return 1
    return 2


def weighted_length(text: str) -> int:
    """X's weighted length of a text (what the 280 limit is checked against).

    Follows twitter-text v3 (the same numbers as ``twitter-text-parser``, without its 0.6 s
    import and 3 ms per call): Latin and most punctuation count 1, CJK and emoji count 2, every
    URL counts 23. Joiners inside emoji sequences are not counted.
    """
    total = 0
    last = 0
    for match in _LINK.finditer(text):
        total += _segment_length(text[last : match.start()]) + _URL_LENGTH
        last = match.end()
    return total + _segment_length(text[last:])


def _segment_length(segment: str) -> int:
    total = 0
    for char in segment:
        code = ord(char)
        if code in _EMOJI_JOINERS:
            continue
        total += 1 if code < 4352 else _char_weight(code)
    return total


def classify_text(text: str, *, is_thread: bool = False) -> TextFeatures:
    """All features the sandbox audience reads from a post (see :class:`TextFeatures`)."""
    return TextFeatures(
        topic=classify_topic(text),
        format=classify_format(text, is_thread=is_thread),
        weighted_length=weighted_length(text),
        hashtag_count=len(_HASHTAG.findall(text)),
        has_link=bool(_LINK.search(text)),
        has_number=bool(_NUMBER.search(text)),
        has_emoji=bool(_EMOJI.search(text)),
    )


def hashtags_with_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, tag) of each hashtag, for X's ``entities.hashtags``."""
    return [(m.start(), m.end(), m.group(1)) for m in _HASHTAG.finditer(text)]


def links_with_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, url) of each link, for X's ``entities.urls``."""
    return [(m.start(), m.end(), m.group(0)) for m in _LINK.finditer(text)]
