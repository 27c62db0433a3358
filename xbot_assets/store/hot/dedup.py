"""Content-hash dedup: one normalising hash for the whole bot, and a Redis pre-check with a TTL.

:func:`content_hash` is THE hash of a post's text: the durable store's unique index, the posting
protocol and this cache all use it, so "the same post" means the same thing everywhere. Text is
normalised first so that trivial variants count as duplicates:

- Unicode NFC (composed and decomposed accents are one text), invisible zero-width characters
  dropped (the emoji joiner U+200D is kept: it changes which emoji is shown);
- every run of whitespace (spaces, tabs, newlines, no-break spaces) becomes one space, ends
  stripped;
- lower case, except inside URLs, whose path and query are case-sensitive (only their scheme and
  host are lowered).

:class:`DedupCache` is only a fast pre-check in front of the durable unique index: it answers
"seen" only for hashes remembered after a durable insert succeeded, and "not seen" whenever Redis
cannot answer, so the durable index always has the last word.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import redis

from xbot_assets.store.hot.keys import KeySpace

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30 * 86_400
"""How long a posted text blocks its duplicates in the fast path (the durable index: forever)."""

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u2060\ufeff\u00ad"))
_WHITESPACE = re.compile(r"\s+", re.UNICODE)
_URL = re.compile(r"https?://\S+", re.IGNORECASE)


def _lower_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment)
    )


def normalize_text(text: str) -> str:
    """The canonical form of a post's text (see the module docstring for the rules)."""
    text = unicodedata.normalize("NFC", text).translate(_ZERO_WIDTH)
    text = _WHITESPACE.sub(" ", text).strip()
    pieces: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        pieces.append(text[last : match.start()].lower())
        pieces.append(_lower_url(match.group(0)))
        last = match.end()
    pieces.append(text[last:].lower())
    return "".join(pieces)


def content_hash(text: str) -> str:
    """SHA-256 hex digest of :func:`normalize_text`: the bot's one identity of a post's text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


class DedupCache:
    """Remembered content hashes in Redis with a TTL.

    Args:
        client: the hot store, or ``None`` (every answer is then "not seen").
        keys: the key space (environment prefix), so staging never blocks production's texts.
        ttl_s: how long a remembered hash lives.
    """

    def __init__(
        self, client: redis.Redis | None, keys: KeySpace, *, ttl_s: int = DEFAULT_TTL_S
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s

    def key(self, digest: str) -> str:
        """The Redis key of one content hash."""
        return self.keys.key("dedup", digest)

    def seen(self, digest: str) -> bool:
        """True if this hash was remembered; False if not, or if Redis cannot answer."""
        return self.seen_many([digest])[0]

    def seen_many(self, digests: Sequence[str]) -> list[bool]:
        """:meth:`seen` for many hashes in one round trip (a batch of candidates)."""
        if self.client is None or not digests:
            return [False] * len(digests)
        try:
            pipe = self.client.pipeline(transaction=False)
            for digest in digests:
                pipe.exists(self.key(digest))
            return [bool(flag) for flag in pipe.execute()]
        except redis.RedisError as exc:
            log.warning("dedup pre-check skipped, Redis unavailable: %s", type(exc).__name__)
            return [False] * len(digests)

    def is_duplicate_text(self, text: str) -> bool:
        """Pre-check of a text: True only if its hash was remembered."""
        return self.seen(content_hash(text))

    def remember(self, digest: str) -> bool:
        """Remember a hash after the durable insert succeeded; False if Redis is unavailable."""
        if self.client is None:
            return False
        try:
            self.client.set(self.key(digest), "1", ex=self.ttl_s)
        except redis.RedisError as exc:
            log.warning("dedup remember skipped, Redis unavailable: %s", type(exc).__name__)
            return False
        return True

    def forget(self, digest: str) -> None:
        """Drop a remembered hash (an operator deleted the post and wants to allow it again)."""
        if self.client is not None:
            self.client.delete(self.key(digest))
