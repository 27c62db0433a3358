"""The one place that names Redis keys, so every key carries the environment prefix.

The seed bot defined prefixes and never applied them: staging and production shared dedup keys
and queues. Here every module that touches Redis builds its keys with a :class:`KeySpace`, and a
test scans ``xbot_assets/`` for Redis calls whose key is a literal (or an f-string) instead.

Also home of :func:`connect_redis` (the one way to open a client from settings) and
:func:`scan_delete` (prefix-scoped clean-up with SCAN: the ``KEYS`` command blocks the server and is
never used).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from xbot_assets.config import Settings

_FORBIDDEN_IN_PART = ("*", "?", "[", "]", " ", "\n")


class KeyError_(ValueError):
    """A key part that would let one key address another (glob characters, blanks, empty)."""


@dataclass(frozen=True)
class KeySpace:
    """Builds prefixed Redis keys: ``KeySpace("stg:").key("dedup", h) == "stg:dedup:<h>"``.

    Attributes:
        prefix: the environment prefix (``local:``, ``stg:``, ``prod:`` or a test's own), ending
            with ``:``.
    """

    prefix: str

    def __post_init__(self) -> None:
        if not self.prefix or not self.prefix.endswith(":"):
            raise KeyError_(
                f"Redis prefix {self.prefix!r} must be non-empty and end with ':' (e.g. 'local:')"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySpace:
        """The key space of this process: ``settings.resolved_redis_prefix``."""
        return cls(settings.resolved_redis_prefix)

    def key(self, *parts: str | int) -> str:
        """Join ``parts`` with ``:`` under the prefix; refuse glob characters and blanks."""
        if not parts:
            raise KeyError_("a Redis key needs at least one part after the prefix")
        texts = [str(p) for p in parts]
        for text in texts:
            if not text or any(ch in text for ch in _FORBIDDEN_IN_PART):
                raise KeyError_(
                    f"Redis key part {text!r} is empty or holds a glob character or blank; "
                    "hash or encode it first"
                )
        return self.prefix + ":".join(texts)

    def pattern(self, *parts: str) -> str:
        """A SCAN ``MATCH`` pattern for the keys under ``parts`` (all of the prefix if none)."""
        return self.prefix + "".join(f"{p}:" for p in parts) + "*"

    def strip(self, full_key: str) -> str:
        """The part of ``full_key`` after the prefix (for display)."""
        if not full_key.startswith(self.prefix):
            raise KeyError_(f"key {full_key!r} is not under prefix {self.prefix!r}")
        return full_key[len(self.prefix) :]


def connect_redis(
    url: str, *, socket_timeout_s: float = 2.0, connect_timeout_s: float = 1.0
) -> redis.Redis:
    """A client with short timeouts: a dead Redis must fail fast so callers fall back to the
    durable store instead of hanging. Strings are decoded (UTF-8)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        retry_on_timeout=False,
        health_check_interval=0,
    )


def redis_from_settings(settings: Settings) -> redis.Redis | None:
    """The hot store of this process, or ``None`` when REDIS_URL is unset (fallback path)."""
    if not settings.redis_url:
        return None
    return connect_redis(settings.redis_url)


def scan_keys(client: redis.Redis, keys: KeySpace, *parts: str, count: int = 500) -> Iterator[str]:
    """Every key under ``keys.pattern(*parts)``, found with SCAN (never ``KEYS``)."""
    yield from client.scan_iter(match=keys.pattern(*parts), count=count)


def scan_delete(client: redis.Redis, keys: KeySpace, *parts: str, batch: int = 500) -> int:
    """Delete every key under the prefix (and ``parts``); returns how many went. Uses SCAN."""
    deleted = 0
    pending: list[str] = []
    for name in scan_keys(client, keys, *parts, count=batch):
        pending.append(name)
        if len(pending) >= batch:
            deleted += int(client.unlink(*pending))
            pending.clear()
    if pending:
        deleted += int(client.unlink(*pending))
    return deleted
