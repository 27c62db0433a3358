"""The shared vocabulary of formats, topics and arms, and how a post's text reveals its arm.

The sandbox audience (and, in spirit, the real platform) infers a post's format and topic from its
text alone. The offline generator writes text that follows these conventions, and the candidate
step checks that a generated post really reads as the arm the policy chose; otherwise the learning
loop would credit the wrong arm. The sandbox keeps its own copy of these rules (it imports nothing
from xbot), so this module is the content layer's mirror of the shared conventions; the format and
topic names themselves live in ``xbot_assets/vocabulary.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from xbot_assets.vocabulary import ALL_TOPICS, DEFAULT_TOPICS, FORMATS

TOPIC_KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
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
"""Keywords per topic: case-insensitive, whole words; the topic with most hits wins."""

MAX_THREAD_PARTS: Final[int] = 8
MIN_THREAD_PARTS: Final[int] = 2


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    # "Whole words": not preceded or followed by a word character. Keywords such as "A/B test"
    # or "product-market fit" contain non-word characters, so \b alone would be wrong at the ends.
    return re.compile(r"(?<!\w)" + re.escape(keyword) + r"(?!\w)", re.IGNORECASE)


_TOPIC_PATTERNS: Final[dict[str, tuple[re.Pattern[str], ...]]] = {
    topic: tuple(_keyword_pattern(k) for k in words) for topic, words in TOPIC_KEYWORDS.items()
}

_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|-|•)")


class ArmError(ValueError):
    """An arm string that is not ``"<format>:<topic>"`` with a known format."""


@dataclass(frozen=True, order=True)
class Arm:
    """One arm of the bandit: a post format crossed with a topic, written ``"format:topic"``."""

    format: str
    topic: str

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ArmError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if self.topic not in TOPIC_KEYWORDS:
            raise ArmError(f"unknown topic {self.topic!r}: use one of {', '.join(ALL_TOPICS)}")

    @classmethod
    def parse(cls, value: str | Arm) -> Arm:
        """Read ``"how_to:python"`` (or return an :class:`Arm` unchanged)."""
        if isinstance(value, Arm):
            return value
        fmt, sep, topic = str(value).partition(":")
        if not sep:
            raise ArmError(
                f"arm {value!r} must be written '<format>:<topic>', e.g. 'how_to:python'"
            )
        return cls(fmt.strip(), topic.strip())

    def __str__(self) -> str:
        return f"{self.format}:{self.topic}"


def all_arms(topics: tuple[str, ...] | list[str] = DEFAULT_TOPICS) -> list[Arm]:
    """Every format x topic arm for the given topics (format-major order)."""
    return [Arm(fmt, topic) for fmt in FORMATS for topic in topics]


def topic_hits(text: str) -> dict[str, int]:
    """How many keyword occurrences of each topic the text contains."""
    return {
        topic: sum(len(p.findall(text)) for p in patterns)
        for topic, patterns in _TOPIC_PATTERNS.items()
    }


def infer_topic(text: str, topics: tuple[str, ...] | list[str] = ALL_TOPICS) -> str:
    """The topic a reader infers: most keyword hits, ties to the first listed, none: ``other``."""
    hits = topic_hits(text)
    best, best_hits = "other", 0
    for topic in ALL_TOPICS:
        if topic in topics and hits[topic] > best_hits:
            best, best_hits = topic, hits[topic]
    return best


def infer_format(text: str, *, has_self_replies: bool = False) -> str:
    """The format a reader infers from a post's text (a thread root: ``has_self_replies``)."""
    if has_self_replies:
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


def infer_arm(
    parts: list[str] | tuple[str, ...], topics: tuple[str, ...] | list[str] = ALL_TOPICS
) -> str:
    """The arm a reader infers for a post (one part) or a thread (the root decides the topic)."""
    if not parts:
        return "single:other"
    fmt = infer_format(parts[0], has_self_replies=len(parts) > 1)
    return f"{fmt}:{infer_topic(parts[0], topics)}"
