"""Synthetic post texts that follow the shared conventions, for sandbox reports and tests.

Not the bot's generator (that lives in ``xbot_assets/content/``): this only produces varied,
realistic-looking texts of a chosen format and topic so the sandbox's own statistics and tests
exercise the text classifier the way real posts would.
"""

from __future__ import annotations

import numpy as np

from xbot_assets.sandbox.features import TOPIC_KEYWORDS

_SUBJECTS: dict[str, tuple[str, ...]] = {
    topic: tuple(k for k in words if " " not in k or len(k) < 20)
    for topic, words in TOPIC_KEYWORDS.items()
}
_FILLER = (
    "teams", "weeks", "shipping", "small", "boring", "clear", "faster", "cheaper", "simple",
    "mistakes", "lessons", "tradeoffs", "defaults", "review", "docs", "metrics", "costs",
    "latency", "users", "feedback", "ideas", "plans", "budget", "tools", "process", "quality",
    "debt", "tests", "errors", "scale", "growth", "learning", "writing", "reading", "notes",
    "before", "after", "today", "this", "year", "every", "morning", "quietly", "rarely",
)  # fmt: skip


def _phrase(rng: np.random.Generator, words: int) -> str:
    return " ".join(str(w) for w in rng.choice(_FILLER, size=words, replace=False))


def make_post_text(fmt: str, topic: str, rng: np.random.Generator) -> str:
    """A varied text that the sandbox classifies as ``fmt`` (not ``thread``) and ``topic``."""
    subject = str(rng.choice(_SUBJECTS[topic]))
    body = _phrase(rng, int(rng.integers(6, 14)))
    if fmt == "how_to":
        return f"How to get {subject} right: {body}."
    if fmt == "hot_take":
        return f"Hot take: {subject} is overrated, {body}."
    if fmt == "question":
        return f"What is your take on {subject} and {body}?"
    if fmt == "list":
        items = [_phrase(rng, 3) for _ in range(3)]
        return f"{subject} notes:\n1. {items[0]}\n2. {items[1]}\n3. {items[2]}"
    return f"{subject.capitalize()} {body}."
