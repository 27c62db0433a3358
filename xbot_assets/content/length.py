"""X's weighted tweet length (twitter-text v3), the limit every post and thread part must fit.

X does not count characters: URLs count 23 whatever their length, most CJK characters and emoji
count 2, the rest 1, after Unicode NFC normalisation. Counting ``len(text)`` would let a post
through that X rejects (or reject one X accepts), so every length decision in xbot goes through
:func:`weighted_length`. The counting itself is twitter-text-parser's, a port of X's library.
"""

from __future__ import annotations

import unicodedata
import warnings
from functools import lru_cache
from typing import Final

with warnings.catch_warnings():
    # twitter-text-parser imports pkg_resources, which warns about its own deprecation.
    warnings.simplefilter("ignore")
    from twitter_text import extract_urls, parse_tweet

MAX_WEIGHTED_LENGTH: Final[int] = 280
"""X's limit for one post (non-premium accounts)."""

URL_WEIGHT: Final[int] = 23
"""What any URL counts for, as X shortens it to a t.co link."""


@lru_cache(maxsize=4096)
def weighted_length(text: str) -> int:
    """The length X counts for ``text`` (twitter-text v3 weighting, NFC-normalised).

    Args:
        text: the post text as it will be sent.

    Returns:
        The weighted length; a post is accepted when it is at most :data:`MAX_WEIGHTED_LENGTH`.
    """
    return int(parse_tweet(unicodedata.normalize("NFC", text)).weightedLength)


def fits(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> bool:
    """Whether ``text`` is within X's limit (empty text fits but is rejected by the guard)."""
    return weighted_length(text) <= limit


def urls_in(text: str) -> list[str]:
    """The URLs X would link in ``text``, including bare domains such as ``example.com``."""
    return list(extract_urls(unicodedata.normalize("NFC", text)))


def truncate_to_fit(text: str, limit: int = MAX_WEIGHTED_LENGTH, ellipsis: str = "…") -> str:
    """Cut ``text`` at a word boundary so it fits ``limit``, adding ``ellipsis`` when cut."""
    text = unicodedata.normalize("NFC", text)
    if weighted_length(text) <= limit:
        return text
    words = text.split(" ")
    while words:
        words.pop()
        candidate = " ".join(words).rstrip(" ,;:") + ellipsis
        if weighted_length(candidate) <= limit:
            return candidate
    # A single enormous word: cut by characters.
    out = ""
    for char in text:
        if weighted_length(out + char + ellipsis) > limit:
            break
        out += char
    return out + ellipsis
