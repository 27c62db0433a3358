"""A small read-through cache in Redis for what every decision reads: the latest posteriors, hot
config. With a TTL, and invalidated by whoever writes the value.

Values are JSON. A name's entry is keyed by a *version* the caller gives (e.g. the model file's
size and modification time): a new version is a new key, so a reader never takes an old value
for a new one even if the writer's invalidation was lost (Redis down at that moment); the TTL
then bounds how long the old key lingers. Redis trouble is never an error: the loader is called.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import redis

from xbot_assets.store.hot.keys import KeySpace

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 300


class HotCache:
    """JSON values in Redis under ``<prefix>cache:<name>:<version>``.

    Args:
        client: the hot store, or None (every read calls the loader).
        keys: the key space.
        ttl_s: how long a cached value lives.
    """

    def __init__(
        self, client: redis.Redis | None, keys: KeySpace, *, ttl_s: int = DEFAULT_TTL_S
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.hits = 0
        self.misses = 0

    def _key(self, name: str, version: str) -> str:
        return self.keys.key("cache", name, version)

    def get_json(self, name: str, version: str, load: Callable[[], Any]) -> Any:
        """The cached value of ``name`` at ``version``, else ``load()`` (cached unless None)."""
        key = self._key(name, version)
        if self.client is not None:
            try:
                raw = self.client.get(key)
            except redis.RedisError as exc:
                log.warning("cache read skipped, Redis unavailable: %s", type(exc).__name__)
                return load()
            if raw is not None:
                self.hits += 1
                return json.loads(str(raw))
        self.misses += 1
        value = load()
        if value is not None and self.client is not None:
            try:
                self.client.set(key, json.dumps(value, separators=(",", ":")), ex=self.ttl_s)
            except redis.RedisError as exc:
                log.warning("cache write skipped, Redis unavailable: %s", type(exc).__name__)
        return value

    def invalidate(self, name: str) -> int:
        """Drop every cached version of ``name`` (the writer calls this after a change)."""
        if self.client is None:
            return 0
        try:
            found = list(self.client.scan_iter(match=self.keys.pattern("cache", name), count=100))
            return int(self.client.delete(*found)) if found else 0
        except redis.RedisError as exc:
            log.warning("cache not invalidated, Redis unavailable: %s", type(exc).__name__)
            return 0


CONFIG_TTL_S = 30
"""Config read through the cache is at most this old when a writer did not invalidate it (one
that changed ``bot_config`` without the hot path, e.g. with Redis unset)."""


class HotConfig:
    """``bot_config`` reads of the loop through the cache; writes through it invalidate.

    Wraps a durable store (anything with ``get_config``/``set_config``); every other attribute
    is the store's, so it can stand in for the store where the loop reads its config.
    """

    def __init__(self, store: Any, cache: HotCache) -> None:
        self._store = store
        self._cache = cache

    @staticmethod
    def cache_name(key: str) -> str:
        return "config_" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)

    def get_config(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (cached for :data:`CONFIG_TTL_S`), or ``default``."""
        boxed = self._cache.get_json(
            self.cache_name(key), "v", lambda: {"value": self._store.get_config(key)}
        )
        value = boxed.get("value") if isinstance(boxed, dict) else None
        return default if value is None else value

    def set_config(self, key: str, value: Any, **kwargs: Any) -> None:
        """Write through to the store, then drop the cached value."""
        self._store.set_config(key, value, **kwargs)
        self._cache.invalidate(self.cache_name(key))

    def invalidate(self, key: str) -> None:
        self._cache.invalidate(self.cache_name(key))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
