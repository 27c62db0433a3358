"""Threads: 2 to 8 parts, hook first, each part within X's limit, numbered or not.

The seed joined threads into one tweet; here a thread stays a list of parts until the poster
replies part to part. Numbering (``1/5``) is added here, after generation, so its weight is
counted in each part's length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from xbot_assets.content.length import MAX_WEIGHTED_LENGTH, truncate_to_fit, weighted_length
from xbot_assets.content.vocabulary import MAX_THREAD_PARTS, MIN_THREAD_PARTS

_NUMBER_PREFIX = re.compile(r"^\s*\(?\d{1,2}\s*/\s*\d{0,2}\)?[.:]?\s+")


class ThreadError(ValueError):
    """Parts that cannot form a thread (too few, too many)."""


def strip_numbering(part: str) -> str:
    """Remove a leading ``1/5``, ``(2/5)`` or ``3/`` number."""
    return _NUMBER_PREFIX.sub("", part, count=1)


def number_parts(parts: Sequence[str]) -> list[str]:
    """Prefix each part with ``i/n`` (any existing numbering replaced)."""
    total = len(parts)
    return [f"{i}/{total} {strip_numbering(p).strip()}" for i, p in enumerate(parts, start=1)]


def fit_parts(parts: Sequence[str], limit: int = MAX_WEIGHTED_LENGTH) -> list[str]:
    """Cut every part that is over ``limit`` at a word boundary (used for offline text only)."""
    return [p if weighted_length(p) <= limit else truncate_to_fit(p, limit) for p in parts]


def make_thread(
    parts: Sequence[str], *, numbered: bool, limit: int = MAX_WEIGHTED_LENGTH, fit: bool = False
) -> list[str]:
    """Assemble final thread parts: validate the count, number them, optionally fit lengths.

    Args:
        parts: the parts in order, hook first.
        numbered: add ``i/n`` prefixes.
        limit: the per-part weighted length limit.
        fit: truncate over-long parts (offline text) instead of leaving them for the guard.

    Raises:
        ThreadError: fewer than 2 or more than 8 non-empty parts.
    """
    cleaned = [strip_numbering(p).strip() for p in parts if p and p.strip()]
    if not MIN_THREAD_PARTS <= len(cleaned) <= MAX_THREAD_PARTS:
        raise ThreadError(
            f"a thread needs {MIN_THREAD_PARTS}-{MAX_THREAD_PARTS} parts, got {len(cleaned)}"
        )
    if numbered:
        # Reserve room for the prefix before numbering so the fitted text keeps its number.
        prefix_room = len(f"{len(cleaned)}/{len(cleaned)} ")
        if fit:
            cleaned = fit_parts(cleaned, limit - prefix_room)
        return number_parts(cleaned)
    return fit_parts(cleaned, limit) if fit else cleaned
